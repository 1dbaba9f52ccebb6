"""Upsampling layers: UpSampling1D, UpSampling2D, UpSampling3D (docs/semantics.md §25, §30).

Data movement (nearest: NumPy under every backend) or two multiply-adds per value
(bilinear: the taps of ``_numpy/resize.py``, applied by the core's ``resample_axis`` under
"auto" and "cpp", ``_cpp/resize.py``, else by NumPy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .._cpp import resize as _cpp_resize
from .._numpy import resize
from .core import _data_format
from .padding import _Spatial

_INTERPOLATIONS = ("nearest", "bilinear")
# Keras's other resize methods (and tf.keras 2's last two)
_KERAS_ONLY = ("bicubic", "lanczos3", "lanczos5", "area", "gaussian", "mitchellcubic")


def interpolation_name(value: Any, owner: str) -> str:
    """A resize method fastlayers has ("nearest", "bilinear"; any case), lower-cased. Keras's
    others raise NotImplementedError (a loaded model lists them), other names ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{owner}: interpolation must be a string, got {type(value).__name__}")
    if value.lower() not in _INTERPOLATIONS:
        keras_has = value.lower() in _KERAS_ONLY
        raise (NotImplementedError if keras_has else ValueError)(
            f"{owner}: interpolation {value!r} is "
            f"{'not supported' if keras_has else 'unknown'}; fastlayers has "
            f"{' and '.join(repr(i) for i in _INTERPOLATIONS)}"
        )
    return value.lower()


class UpSampling1D(_Spatial):
    """Each step repeated ``size`` times (Keras ``UpSampling1D``).

    size : int. Call: (N, T, C) -> float32 (N, T * size, C).
    """

    rank = 1
    config_keys = ("size",)

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = V.int_tuple(size, type(self).__name__, "size", n=1)[0]

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._nhwc(inputs, False)
        with V.allocating(self._owner(), f"the output of upsampling by {self.size}"):
            y = resize.upsample_nearest(x, (1, self.size))
        return self._back(y, False)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): the copy ``call`` makes."""
        factors, out = (1, self.size), (inputs.shape[0], inputs.shape[1] * self.size,
                                         inputs.shape[2])
        return lambda x: resize.upsample_nearest(x[:, None], factors).reshape(out)


class UpSampling2D(_Spatial):
    """Rows and columns enlarged by whole factors (Keras ``UpSampling2D``).

    size : int or (rows, cols); data_format : "channels_last" (default), "channels_first" or
    None; interpolation : "nearest" (repeat each pixel) or "bilinear" (half-pixel centres,
    edges clamped; Keras's other resize methods raise NotImplementedError, unknown names
    ValueError).
    Call: (N, H, W, C) -> float32 (N, H * rows, W * cols, C).
    """

    config_keys = ("size", "data_format", "interpolation")

    def __init__(
        self,
        size: Any = (2, 2),
        data_format: str | None = None,
        interpolation: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.size = V.int_tuple(size, owner, "size")
        self.data_format = _data_format(data_format, owner)
        self.interpolation = interpolation_name(interpolation, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        cf = self.data_format == "channels_first"
        x = self._nhwc(inputs, cf)
        nearest = self.interpolation == "nearest"
        with V.allocating(self._owner(), f"the output of upsampling by {self.size}"):
            if nearest:
                y = resize.upsample_nearest(np.ascontiguousarray(x), self.size)
            else:
                y = resize.upsample_bilinear(x, self.size, _cpp_resize.taps())
        return self._back(y, cf)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): channels last, what ``call``
        computes (the taps' kernel of this backend bound); channels first: None."""
        if self.data_format == "channels_first":
            return None
        size = self.size
        if self.interpolation == "nearest":
            return lambda x: resize.upsample_nearest(x, size)
        taps = _cpp_resize.taps()
        return lambda x: resize.upsample_bilinear(x, size, taps)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        if len(shape) != 4:
            return None
        self._ready((2 if shape[0] is None else shape[0], *shape[1:]))
        fh, fw = self.size
        if self.data_format == "channels_first":
            return (shape[0], shape[1], shape[2] * fh, shape[3] * fw)
        return (shape[0], shape[1] * fh, shape[2] * fw, shape[3])


class UpSampling3D(_Spatial):
    """Depth, rows and columns enlarged by whole factors, each voxel repeated (Keras
    ``UpSampling3D``).

    size : int or (depth, rows, cols) (default 2 each); data_format : "channels_last"
    (default), "channels_first" or None.
    Call: (N, D, H, W, C) -> float32 (N, D * depth, H * rows, W * cols, C).
    """

    rank = 3
    config_keys = ("size", "data_format")

    def __init__(self, size: Any = (2, 2, 2), data_format: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.size = V.int_tuple(size, owner, "size", n=3)
        self.data_format = _data_format(data_format, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        cf = self.data_format == "channels_first"
        x = self._nhwc(inputs, cf)
        n, d, h, w, c = x.shape
        fd, fh, fw = self.size
        with V.allocating(self._owner(), f"the output of upsampling by {self.size}"):
            y = np.empty((n, d, fd, h, fh, w, fw, c), np.float32)
            y[...] = x[:, :, None, :, None, :, None, :]
        return self._back(y.reshape(n, d * fd, h * fh, w * fw, c), cf)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        return self._volume_shape(shape, lambda i, size: size * self.size[i])
