"""Image preprocessing layers (docs/semantics.md §27): Resizing and CenterCrop, which
compute at inference, and Keras's random augmentation layers (RandomFlip, RandomRotation,
RandomZoom, ...), which are the identity at inference.

Models often carry their preprocessing and augmentation inside (``Rescaling``, then
``RandomFlip`` and ``RandomRotation`` for training, ``Resizing`` to the network's size);
these layers let such models load and run unchanged. Inputs are images, batched
(N, H, W, C) or single (H, W, C) (channels first with ``data_format="channels_first"``),
returned as float32. The resizes' taps are computed in fastlayers/_numpy/resize.py; the
core's ``resample_axis`` applies the bilinear ones under "auto" and "cpp"
(fastlayers/_cpp/resize.py), NumPy otherwise; nearest is a NumPy gather on both paths.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import _checks
from .. import _validation as V
from .._cpp import resize as _cpp_resize
from .._numpy import resize
from .base import Layer, _bool, _positive_int
from .core import _data_format
from .upsampling import interpolation_name

__all__ = [
    "Resizing",
    "CenterCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
    "RandomGrayscale",
    "RandomHue",
    "RandomSaturation",
    "RandomSharpness",
    "RandomShear",
    "RandomErasing",
    "RandomGaussianBlur",
    "RandomPerspective",
    "RandomInvert",
    "RandomPosterization",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomElasticTransform",
    "Solarization",
    "AugMix",
    "RandAugment",
    "CutMix",
    "MixUp",
]


class _ImageLayer(Layer):
    """Images in, float32 images out: the shared input checks and layout moves."""

    supports_masking = False
    data_format = "channels_last"

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _images(self, inputs: Any) -> tuple[np.ndarray, bool]:
        """(N, H, W, C) float32 and whether the inputs were a single image (rank 3)."""
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        cf = self.data_format == "channels_first"
        if x.ndim not in (3, 4):
            what = "(N, C, H, W) or (C, H, W)" if cf else "(N, H, W, C) or (H, W, C)"
            raise ValueError(f"{owner}: inputs must be images {what}, got shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        single = x.ndim == 3
        x = x[None] if single else x
        return (np.moveaxis(x, 1, -1) if cf else x), single

    def _back(self, y: np.ndarray, single: bool) -> np.ndarray:
        if self.data_format == "channels_first":
            y = np.moveaxis(y, -1, 1)
        return np.ascontiguousarray(y[0] if single else y, dtype=np.float32)

    def _spatial_axes(self, rank: int) -> tuple[int, int]:
        first = rank - (2 if self.data_format == "channels_first" else 3)
        return first, first + 1

    def _sized_output_shape(self, shape: tuple) -> tuple | None:
        """The symbolic output shape of a layer whose images become (height, width)."""
        if len(shape) not in (3, 4):
            return None  # the zero run raises the call's error
        out = list(shape)
        i, j = self._spatial_axes(len(shape))
        out[i], out[j] = self.height, self.width
        return tuple(out)


class Resizing(_ImageLayer):
    """Resizes images to ``(height, width)`` (Keras ``Resizing``).

    Parameters
    ----------
    height, width : int >= 1
        The output size.
    interpolation : "bilinear" (default) or "nearest"
        "bilinear": half-pixel centres, edges clamped (PyTorch's ``interpolate`` with
        ``align_corners=False``, TensorFlow's ``resize``); "nearest": the input pixel whose
        extent holds each output pixel's centre. Keras's "bicubic", "lanczos3", "lanczos5"
        and "area" raise NotImplementedError.
    crop_to_aspect_ratio : bool
        First crop the largest centred window of the target's aspect ratio (no distortion).
    pad_to_aspect_ratio : bool
        First pad with ``fill_value`` to the target's aspect ratio, as Keras does: the same
        number of rows (or columns) on both sides. Not with crop_to_aspect_ratio.
    fill_mode : "constant"
        The only mode Keras's resize has.
    fill_value : float
        The padding value (default 0.0).
    antialias : bool
        With "bilinear", widen the filter when shrinking so that every input pixel counts
        (ignored with "nearest", as in Keras).
    data_format : "channels_last" (default), "channels_first" or None.

    Call: (N, H, W, C) or (H, W, C) -> float32 (N, height, width, C) or (height, width, C).
    Integer images are rounded (half to even) and clipped to their type's range after the
    resize, as Keras does (it returns them in that type; here as float32 values).
    """

    config_keys = ("height", "width", "interpolation", "crop_to_aspect_ratio",
                   "pad_to_aspect_ratio", "fill_mode", "fill_value", "antialias",
                   "data_format")

    def __init__(
        self,
        height: int,
        width: int,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        pad_to_aspect_ratio: bool = False,
        fill_mode: str = "constant",
        fill_value: float = 0.0,
        antialias: bool = False,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.height = _positive_int(height, owner, "height")
        self.width = _positive_int(width, owner, "width")
        self.interpolation = interpolation_name(interpolation, owner)
        self.crop_to_aspect_ratio = _bool(crop_to_aspect_ratio, owner, "crop_to_aspect_ratio")
        self.pad_to_aspect_ratio = _bool(pad_to_aspect_ratio, owner, "pad_to_aspect_ratio")
        if self.crop_to_aspect_ratio and self.pad_to_aspect_ratio:
            raise ValueError(
                f"{owner}: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True"
            )
        if fill_mode != "constant":
            raise ValueError(f"{owner}: fill_mode must be 'constant', got {fill_mode!r}")
        self.fill_mode = fill_mode
        if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, numbers.Real):
            raise TypeError(f"{owner}: fill_value must be a real number, got {fill_value!r}")
        self.fill_value = float(fill_value)
        self.antialias = _bool(antialias, owner, "antialias")
        self.data_format = _data_format(data_format, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        dtype = _integer_dtype(inputs)
        x, single = self._images(inputs)
        y = self._resize(x)
        if dtype is not None:
            # Keras rounds the resized integer images (half to even) and casts them back
            # with saturation; the values are returned as float32, as every output here.
            info = np.iinfo(dtype)
            y = np.clip(np.round(y), info.min, info.max).astype(np.float32)
        return self._back(y, single)

    def _resize(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        th, tw = self.height, self.width
        if h == 0 or w == 0:
            raise ValueError(f"{self._owner()}: cannot resize images of {h} x {w} pixels")
        if self.crop_to_aspect_ratio:
            x = _crop_to_aspect(x, th, tw)
        elif self.pad_to_aspect_ratio:
            # Keras's integer arithmetic: the padded height (or width) of the target's ratio,
            # then half the difference (rounded down) on each side.
            ph = max(h, int(float(w * th) / tw))
            pw = max(w, int(float(h * tw) / th))
            top, left = int(float(ph - h) / 2), int(float(pw - w) / 2)
            _checks.elements(n * (h + 2 * top) * (w + 2 * left) * c, self._owner(),
                             "the padded images")
            with V.allocating(self._owner(), "the padded images"):
                x = np.pad(x, ((0, 0), (top, top), (left, left), (0, 0)),
                           constant_values=np.float32(self.fill_value))
        if x.shape[0] == 0:
            return np.zeros((0, th, tw, c), np.float32)
        return _resized(self._owner(), x, (th, tw), self.interpolation, self.antialias)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        return self._sized_output_shape(shape)


def _integer_dtype(inputs: Any) -> np.dtype | None:
    """The inputs' dtype if it is an integer one (also for a tensor of another library
    that NumPy can read), else None."""
    try:
        dtype = inputs.dtype if isinstance(inputs, np.ndarray) else np.asarray(inputs).dtype
    except (TypeError, ValueError, RuntimeError):
        return None  # the input checks report what is wrong with it
    return dtype if dtype.kind in "iu" else None


def _resized(owner: str, x: np.ndarray, size: tuple, interpolation: str,
             antialias: bool) -> np.ndarray:
    """resize.resize_images, its output and the columns-resized intermediate refused first
    when too large (an absurd height or width could otherwise exhaust the memory)."""
    n, h, _, c = x.shape
    what = f"the output of resizing to {size[0]} x {size[1]}"
    _checks.elements(n * max(h, size[0]) * size[1] * c, owner, what)
    with V.allocating(owner, what):
        return resize.resize_images(x, size, interpolation, antialias, _cpp_resize.taps())


def _crop_to_aspect(x: np.ndarray, th: int, tw: int) -> np.ndarray:
    """The centred window of x (N, H, W, C) with the aspect ratio th : tw, as large as fits
    (Keras's integer arithmetic for its size and start)."""
    h, w = x.shape[1], x.shape[2]
    ch = max(min(h, int(float(w * th) / tw)), 1)
    cw = max(min(w, int(float(h * tw) / th)), 1)
    top, left = int(float(h - ch) / 2), int(float(w - cw) / 2)
    return x[:, top : top + ch, left : left + cw]


class CenterCrop(_ImageLayer):
    """Crops the centre ``(height, width)`` of images (Keras ``CenterCrop``).

    An image at least as large as the target on both axes is cropped (the window starts
    at half the difference, rounded down); a smaller one is first cropped to the target's
    aspect ratio and then resized to it with "bilinear" (Keras's ``smart_resize``).

    Parameters: height, width (ints >= 1), data_format ("channels_last" (default),
    "channels_first" or None).

    Call: (N, H, W, C) or (H, W, C) -> float32 (N, height, width, C) or (height, width, C).
    """

    config_keys = ("height", "width", "data_format")

    def __init__(self, height: int, width: int, data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.height = _positive_int(height, owner, "height")
        self.width = _positive_int(width, owner, "width")
        self.data_format = _data_format(data_format, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x, single = self._images(inputs)
        n, h, w, c = x.shape
        th, tw = self.height, self.width
        if h >= th and w >= tw:
            top, left = (h - th) // 2, (w - tw) // 2
            return self._back(x[:, top : top + th, left : left + tw], single)
        if h == 0 or w == 0:
            raise ValueError(f"{self._owner()}: cannot resize images of {h} x {w} pixels")
        if n == 0:
            return self._back(np.zeros((0, th, tw, c), np.float32), single)
        y = _resized(self._owner(), _crop_to_aspect(x, th, tw), (th, tw), "bilinear", False)
        return self._back(y, single)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        return self._sized_output_shape(shape)


# ------------------------------------------------------ random augmentation layers
#
# Keras applies them in training only: with training=False (every inference call, and
# every call of a loaded model) each returns its images unchanged, as float32. Here they
# are always the identity. Their constructor arguments are Keras's, in Keras's order, with
# Keras's defaults (data_format, which Keras takes as a keyword of its base class, last
# where Keras's own list lacks it); they are kept for get_config and only their types are
# checked (data_format, seed and RandomFlip's mode fully): none changes an inference output.

_REQUIRED = object()  # marks a constructor argument without a default


class _Augmentation(_ImageLayer):
    """The identity at inference; ``_args`` lists Keras's constructor arguments in order,
    as (name, default) with _REQUIRED for the required ones."""

    _args: tuple[tuple[str, Any], ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self).__name__
        names = [name for name, _ in self._args]
        if len(args) > len(names):
            raise TypeError(
                f"{cls}: takes at most {len(names)} positional arguments, got {len(args)}"
            )
        values = dict(zip(names, args))
        for name in names[len(args):]:
            if name in kwargs:
                values[name] = kwargs.pop(name)
        twice = sorted(set(names[: len(args)]) & set(kwargs))
        if twice:
            raise TypeError(f"{cls}: got multiple values for {twice}")
        missing = [n for n, d in self._args if d is _REQUIRED and n not in values]
        if missing:
            raise TypeError(f"{cls}: missing required arguments: {missing}")
        seed = values.pop("seed", None)
        super().__init__(seed=seed, **kwargs)  # name, dtype, trainable; unknown: TypeError
        for name, default in self._args:
            if name == "seed":
                continue
            value = values.get(name, default)
            if name == "data_format":
                value = _data_format(value, cls)
            else:
                _check_augmentation_arg(value, cls, name)
                value = _plain(value)
            setattr(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.config_keys = tuple(name for name, _ in cls._args)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x, single = self._images(inputs)
        return self._back(x, single)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        return shape if len(shape) in (3, 4) else None


def _plain(value: Any) -> Any:
    """A config value as JSON would hold it: NumPy scalars as Python numbers, tuples as
    lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _check_augmentation_arg(value: Any, owner: str, name: str) -> None:
    """A number, a string, a bool, None, or a list/tuple of numbers (Keras's argument
    types for these layers); anything else is a TypeError."""
    def number(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))

    if value is None or isinstance(value, (str, bool, np.bool_)) or number(value):
        return
    if isinstance(value, (list, tuple)) and all(number(v) for v in value):
        return
    raise TypeError(
        f"{owner}: {name} must be a number, a string, a bool, None or a tuple of numbers, "
        f"got {value!r}"
    )


_FILL = (("fill_mode", "reflect"), ("interpolation", "bilinear"), ("seed", None),
         ("fill_value", 0.0), ("data_format", None))
_RANGE = (0, 255)


class RandomFlip(_Augmentation):
    """Keras ``RandomFlip``: random flips in training; the identity at inference.
    mode: "horizontal", "vertical" or "horizontal_and_vertical" (default)."""

    _args = (("mode", "horizontal_and_vertical"), ("seed", None), ("data_format", None))
    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.mode not in self._MODES:
            raise ValueError(
                f"RandomFlip: mode must be one of {', '.join(map(repr, self._MODES))}, got "
                f"{self.mode!r}"
            )


class RandomRotation(_Augmentation):
    """Keras ``RandomRotation``: the identity at inference."""

    _args = (("factor", _REQUIRED), *_FILL)


class RandomZoom(_Augmentation):
    """Keras ``RandomZoom``: the identity at inference."""

    _args = (("height_factor", _REQUIRED), ("width_factor", None), *_FILL)


class RandomTranslation(_Augmentation):
    """Keras ``RandomTranslation``: the identity at inference."""

    _args = (("height_factor", _REQUIRED), ("width_factor", _REQUIRED), *_FILL)


class RandomContrast(_Augmentation):
    """Keras ``RandomContrast``: the identity at inference."""

    _args = (("factor", _REQUIRED), ("value_range", _RANGE), ("seed", None),
             ("data_format", None))


class RandomBrightness(_Augmentation):
    """Keras ``RandomBrightness``: the identity at inference."""

    _args = (("factor", _REQUIRED), ("value_range", _RANGE), ("seed", None),
             ("data_format", None))


class RandomGrayscale(_Augmentation):
    """Keras ``RandomGrayscale``: the identity at inference."""

    _args = (("factor", 0.5), ("data_format", None), ("seed", None))


_FACTOR_RANGE = (("factor", _REQUIRED), ("value_range", _RANGE), ("data_format", None),
                 ("seed", None))


class RandomHue(_Augmentation):
    """Keras ``RandomHue``: the identity at inference."""

    _args = _FACTOR_RANGE


class RandomSaturation(_Augmentation):
    """Keras ``RandomSaturation``: the identity at inference."""

    _args = _FACTOR_RANGE


class RandomSharpness(_Augmentation):
    """Keras ``RandomSharpness``: the identity at inference."""

    _args = _FACTOR_RANGE


class RandomColorDegeneration(_Augmentation):
    """Keras ``RandomColorDegeneration``: the identity at inference."""

    _args = _FACTOR_RANGE


class RandomPosterization(_Augmentation):
    """Keras ``RandomPosterization``: the identity at inference."""

    _args = _FACTOR_RANGE


class RandomShear(_Augmentation):
    """Keras ``RandomShear``: the identity at inference."""

    _args = (("x_factor", 0.0), ("y_factor", 0.0), ("interpolation", "bilinear"),
             ("fill_mode", "reflect"), ("fill_value", 0.0), ("data_format", None),
             ("seed", None))


class RandomErasing(_Augmentation):
    """Keras ``RandomErasing``: the identity at inference."""

    _args = (("factor", 1.0), ("scale", (0.02, 0.33)), ("fill_value", None),
             ("value_range", _RANGE), ("seed", None), ("data_format", None))


class RandomGaussianBlur(_Augmentation):
    """Keras ``RandomGaussianBlur``: the identity at inference."""

    _args = (("factor", 1.0), ("kernel_size", 3), ("sigma", 1.0), ("value_range", _RANGE),
             ("data_format", None), ("seed", None))


class RandomPerspective(_Augmentation):
    """Keras ``RandomPerspective``: the identity at inference."""

    _args = (("factor", 1.0), ("scale", 1.0), ("interpolation", "bilinear"),
             ("fill_value", 0.0), ("seed", None), ("data_format", None))


class RandomInvert(_Augmentation):
    """Keras ``RandomInvert``: the identity at inference."""

    _args = (("factor", 1.0), ("value_range", _RANGE), ("seed", None), ("data_format", None))


class RandomColorJitter(_Augmentation):
    """Keras ``RandomColorJitter``: the identity at inference."""

    _args = (("value_range", _RANGE), ("brightness_factor", None), ("contrast_factor", None),
             ("saturation_factor", None), ("hue_factor", None), ("seed", None),
             ("data_format", None))


class RandomElasticTransform(_Augmentation):
    """Keras ``RandomElasticTransform``: the identity at inference."""

    _args = (("factor", 1.0), ("scale", 1.0), ("interpolation", "bilinear"),
             ("fill_mode", "reflect"), ("fill_value", 0.0), ("value_range", _RANGE),
             ("seed", None), ("data_format", None))


class Solarization(_Augmentation):
    """Keras ``Solarization``: the identity at inference."""

    _args = (("addition_factor", 0.0), ("threshold_factor", 0.0), ("value_range", _RANGE),
             ("seed", None), ("data_format", None))


class AugMix(_Augmentation):
    """Keras ``AugMix``: the identity at inference."""

    _args = (("value_range", _RANGE), ("num_chains", 3), ("chain_depth", 3), ("factor", 0.3),
             ("alpha", 1.0), ("all_ops", True), ("interpolation", "bilinear"), ("seed", None),
             ("data_format", None))


class RandAugment(_Augmentation):
    """Keras ``RandAugment``: the identity at inference."""

    _args = (("value_range", _RANGE), ("num_ops", 2), ("factor", 0.5),
             ("interpolation", "bilinear"), ("seed", None), ("data_format", None))


class CutMix(_Augmentation):
    """Keras ``CutMix``: the identity at inference."""

    _args = (("factor", 1.0), ("seed", None), ("data_format", None))


class MixUp(_Augmentation):
    """Keras ``MixUp``: the identity at inference."""

    _args = (("alpha", 0.2), ("data_format", None), ("seed", None))
