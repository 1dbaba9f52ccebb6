"""Padding and cropping layers: ZeroPadding1D/2D/3D, Cropping1D/2D/3D (docs/semantics.md
§21, §30).

No arithmetic: they run the same NumPy code under every backend, except that a channels-last
ZeroPadding's output is allocated by the core when it is loaded, under every backend (64-byte
aligned, as the core's own outputs: the conv that reads it next, a strided depthwise conv in
MobileNet, then loads whole cache lines).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend
from .. import _checks as C
from .. import _validation as V
from .._cpp._alloc import empty_f32
from .base import Layer
from .core import _data_format


def _pair(value: Any, owner: str, name: str) -> tuple[int, int]:
    """An int n -> (n, n), or a pair of ints in [0, 2**36] (more could never be allocated; an
    int beyond int64 made NumPy's pad raise a bare TypeError that named neither)."""
    return V.int_tuple(value, owner, name, n=2, minimum=0, maximum=C.MAX_ELEMENTS)


_AXES_NAMES = {2: "(top, bottom), (left, right)", 3: "(front, back), (top, bottom), (left, right)"}


def _pairs(value: Any, owner: str, name: str, n: int = 2) -> tuple:
    """int, one int per spatial axis (symmetric) or one (before, after) pair per axis, as
    Keras reads them, for ``n`` spatial axes: a tuple of n pairs."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return (_pair(value, owner, name),) * n
    if not isinstance(value, (tuple, list)) or len(value) != n:
        sym = "height, width" if n == 2 else "depth, height, width"
        raise ValueError(
            f"{owner}: {name} must be an int, a tuple of {n} ints (symmetric {sym}) or "
            f"a tuple of {n} tuples of 2 ints ({_AXES_NAMES[n]}), got {value!r}"
        )
    return tuple(_pair(v, owner, f"{name}[{i}]") for i, v in enumerate(value))


def _zero_pad(x: np.ndarray, pads: tuple) -> np.ndarray:
    """``np.pad`` of x (N, *spatial, C) with zeros, one (before, after) pair per spatial axis.
    x (float32: the layers convert their inputs) goes into an aligned array from the core
    when it is loaded: its borders zeroed, the interior copied once. np.pad's own array starts
    16 bytes into a cache line."""
    if not _backend.core_available():
        return np.pad(x, ((0, 0), *pads, (0, 0)))
    spatial = x.shape[1:-1]
    y = empty_f32((x.shape[0], *(s + a + b for s, (a, b) in zip(spatial, pads)), x.shape[-1]))
    everything = (slice(None),) * y.ndim
    for axis, (a, b) in enumerate(pads, start=1):  # the border slabs (corners twice)
        if a:
            y[everything[:axis] + (slice(0, a),)] = 0.0
        if b:
            y[everything[:axis] + (slice(y.shape[axis] - b, None),)] = 0.0
    y[(slice(None), *(slice(a, a + s) for s, (a, _) in zip(spatial, pads)))] = x
    return y


class _Spatial(Layer):
    rank = 2
    supports_masking = False

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _nhwc(self, inputs: Any, cf: bool) -> np.ndarray:
        """The inputs channels last, a 1D input with a height of 1: (N, H, W, C), or
        (N, D, H, W, C) for the 3D layers."""
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        if self.rank == 1:
            what = "(batch, channels, steps)" if cf else "(batch, steps, channels)"
        elif self.rank == 2:
            what = "(N, C, H, W)" if cf else "(batch, height, width, channels)"
        else:
            what = "(N, C, D, H, W)" if cf else "(batch, depth, height, width, channels)"
        V.rank(x, owner, "inputs", self.rank + 2, what)
        self._ready(x.shape)
        x = np.moveaxis(x, 1, -1) if cf else x
        return x[:, None] if self.rank == 1 else x

    def _volume_shape(self, shape: tuple, axis_size) -> tuple | None:
        """A 3D layer's symbolic output shape: ``axis_size(i, size)`` for spatial axis i (a
        size below 1: None, and the zero run reports the problem), batch and channels kept."""
        if len(shape) != 5:
            return None
        self._ready((2 if shape[0] is None else shape[0], *shape[1:]))
        first = 2 if self.data_format == "channels_first" else 1
        out = list(shape)
        for i in range(3):
            out[first + i] = axis_size(i, shape[first + i])
            if out[first + i] < 1:
                return None
        return tuple(out)

    def _back(self, y: np.ndarray, cf: bool) -> np.ndarray:
        y = y[:, 0] if self.rank == 1 else y
        return np.ascontiguousarray(np.moveaxis(y, -1, 1) if cf else y)


class ZeroPadding1D(_Spatial):
    """Zeros before and after the steps (Keras ``ZeroPadding1D``).

    padding : int or (before, after); data_format : "channels_last" (default),
    "channels_first" or None. Call: (N, T, C) -> float32 (N, before + T + after, C).
    """

    rank = 1
    config_keys = ("padding", "data_format")

    def __init__(self, padding: Any = 1, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.padding = _pair(padding, owner, "padding")
        self.data_format = _data_format(data_format, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        cf = self.data_format == "channels_first"
        x = self._nhwc(inputs, cf)
        with V.allocating(self._owner(), f"the output of padding {self.padding}"):
            y = _zero_pad(x, ((0, 0), self.padding))
        return self._back(y, cf)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py), channels_last: ``call``'s padding."""
        if self.data_format == "channels_first":
            return None
        pads = ((0, 0), self.padding)
        return lambda x: _zero_pad(x[:, None], pads)[:, 0]


class ZeroPadding2D(_Spatial):
    """Zeros around the image (Keras ``ZeroPadding2D``).

    padding : int, (sym_height, sym_width) or ((top, bottom), (left, right));
    data_format : "channels_last" (default), "channels_first" or None.
    Call: (N, H, W, C) -> float32 (N, top + H + bottom, left + W + right, C).
    """

    config_keys = ("padding", "data_format")

    def __init__(
        self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.padding = _pairs(padding, owner, "padding", n=self.rank)
        self.data_format = _data_format(data_format, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        cf = self.data_format == "channels_first"
        x = self._nhwc(inputs, cf)
        with V.allocating(self._owner(), f"the output of padding {self.padding}"):
            y = _zero_pad(x, self.padding)
        return self._back(y, cf)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py), channels_last: ``call``'s padding."""
        if self.data_format == "channels_first":
            return None
        pads = self.padding
        return lambda x: _zero_pad(x, pads)


def _crop(owner: str, x: np.ndarray, crops) -> np.ndarray:
    """x (N, *spatial, C) without crops, one (before, after) pair per spatial axis;
    ValueError if nothing would remain (as in Keras)."""
    for axis, (a, b) in enumerate(crops, start=1):
        if a + b >= x.shape[axis]:
            raise ValueError(
                f"{owner}: cropping {crops if len(crops) > 1 else crops[0]} must leave at least "
                f"one pixel; inputs have {x.shape[axis]} along that axis"
            )
    return x[(slice(None),) + tuple(slice(a, x.shape[i] - b)
                                    for i, (a, b) in enumerate(crops, start=1))]


class Cropping1D(_Spatial):
    """Drop steps at the start and the end (Keras ``Cropping1D``).

    cropping : int or (start, end). Call: (N, T, C) -> float32 (N, T - start - end, C);
    ValueError if start + end >= T (as in Keras).
    """

    rank = 1
    config_keys = ("cropping",)
    data_format = "channels_last"

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = _pair(cropping, type(self).__name__, "cropping")

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._nhwc(inputs, False)
        if sum(self.cropping) >= x.shape[2]:
            raise ValueError(
                f"{self._owner()}: cropping {self.cropping} must be smaller than the input "
                f"length {x.shape[2]}"
            )
        return self._back(_crop(self._owner(), x, ((0, 0), self.cropping)), False)


class Cropping2D(_Spatial):
    """Drop rows and columns at the borders (Keras ``Cropping2D``).

    cropping : int, (sym_height, sym_width) or ((top, bottom), (left, right));
    data_format : "channels_last" (default), "channels_first" or None.
    Call: (N, H, W, C) -> float32 (N, H - top - bottom, W - left - right, C); ValueError if
    an axis would be left empty (as in Keras).
    """

    config_keys = ("cropping", "data_format")

    def __init__(
        self, cropping: Any = ((0, 0), (0, 0)), data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.cropping = _pairs(cropping, owner, "cropping", n=self.rank)
        self.data_format = _data_format(data_format, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        cf = self.data_format == "channels_first"
        x = self._nhwc(inputs, cf)
        return self._back(_crop(self._owner(), x, self.cropping), cf)


class ZeroPadding3D(ZeroPadding2D):
    """Zeros around a volume (Keras ``ZeroPadding3D``).

    padding : int, (sym_depth, sym_height, sym_width) or ((front, back), (top, bottom),
    (left, right)) (default 1 everywhere); data_format : "channels_last" (default),
    "channels_first" or None.
    Call: (N, D, H, W, C) -> float32 (N, D + front + back, H + top + bottom, W + left +
    right, C).
    """

    rank = 3

    def __init__(
        self, padding: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None,
        **kwargs: Any
    ) -> None:
        super().__init__(padding, data_format, **kwargs)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        return self._volume_shape(shape, lambda i, size: size + sum(self.padding[i]))


class Cropping3D(Cropping2D):
    """Drop planes at the borders of a volume (Keras ``Cropping3D``).

    cropping : int, (sym_depth, sym_height, sym_width) or ((front, back), (top, bottom),
    (left, right)) (default 1 everywhere); data_format : "channels_last" (default),
    "channels_first" or None.
    Call: (N, D, H, W, C) -> float32 with each axis shortened by its pair; ValueError if an
    axis would be left empty (as in Keras).
    """

    rank = 3

    def __init__(
        self, cropping: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None,
        **kwargs: Any
    ) -> None:
        super().__init__(cropping, data_format, **kwargs)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        return self._volume_shape(shape, lambda i, size: size - sum(self.cropping[i]))
