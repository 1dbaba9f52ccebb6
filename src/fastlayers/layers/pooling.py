"""Pooling layers: MaxPooling1D/2D, AveragePooling1D/2D, the global poolings and the
adaptive poolings (AdaptiveMaxPooling1D/2D, AdaptiveAveragePooling1D/2D).

Max and average pooling run ``functional.run_pool2d``: the C++ kernel (csrc/ops/pooling.cpp)
or ``fastlayers/_numpy/pooling.py``, which give the same bits. The adaptive poolings run the
core's ``adaptive_pool2d`` under "auto" and "cpp", else NumPy, again with the same bits. The
global poolings run the core's ``global_pool`` (channels last) under "auto" and "cpp", else
NumPy, with the same bits but for denormals (docs/semantics.md §21).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _backend, _checks
from .. import _validation as V
from .. import functional as F
from .._cpp import pooling as _cpp_pooling
from .._numpy import pooling as P
from .base import Layer, _bool
from .core import _data_format


def _padding(value: Any, owner: str) -> str:
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {value!r}")
    return value.lower()


class _Pooling(Layer):
    """Max or average pooling over ``rank`` spatial axes (1 or 2)."""

    rank = 2
    mode = "max"
    config_keys = ("pool_size", "strides", "padding", "data_format")
    supports_masking = False

    def __init__(
        self,
        pool_size: Any = 2,
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        # At most 2**31 - 1, as conv2d's strides (TensorFlow's int32 attributes): the C++
        # kernel takes no more, and the NumPy path would fail on it in np.pad.
        self.pool_size = V.int_tuple(
            pool_size, owner, "pool_size", n=self.rank, maximum=V.MAX_INT32
        )
        self.strides = (
            self.pool_size
            if strides is None
            else V.int_tuple(strides, owner, "strides", self.rank, maximum=V.MAX_INT32)
        )
        self.padding = _padding(padding, owner)
        self.data_format = _data_format(data_format, owner)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x, pool, strides, pads, out_hw = self._checked(inputs)
        y = F.run_pool2d(x, pool, strides, pads, out_hw, self.mode == "average")
        if self.rank == 1:
            y = y[:, 0]
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if self.cf else y

    def _checked(self, inputs: Any) -> tuple:
        """inputs checked and seen as (N, H, W, C) (a 1D input with H = 1), and the pooling
        geometry: pool, strides, pads (top, bottom, left, right), output (OH, OW)."""
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        cf = self.cf
        if self.rank == 1:
            what = "(batch, channels, steps)" if cf else "(batch, steps, channels)"
        else:
            what = "(N, C, H, W)" if cf else "(batch, height, width, channels)"
        V.rank(x, owner, "inputs", self.rank + 2, what)
        self._ready(x.shape)
        if cf:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        if self.rank == 1:
            x = x[:, None]
        pool = (1, *self.pool_size) if self.rank == 1 else self.pool_size
        strides = (1, *self.strides) if self.rank == 1 else self.strides
        spatial = x.shape[1:3]
        if self.padding == "valid" and any(s < p for s, p in zip(spatial, pool)):
            raise ValueError(
                f"{owner}: with padding 'valid' the input's spatial size "
                f"{spatial[1:] if self.rank == 1 else spatial} is smaller than pool_size "
                f"{self.pool_size}; the output would be empty"
            )
        if x.shape[-1] == 0 or 0 in spatial:
            raise ValueError(f"{owner}: inputs has an empty spatial or channel axis")
        (oh, top, bottom), (ow, left, right) = (
            P.pool_geometry(s, p, st, self.padding) for s, p, st in zip(spatial, pool, strides)
        )
        return x, tuple(pool), tuple(strides), (top, bottom, left, right), (oh, ow)

    @property
    def cf(self) -> bool:
        return self.data_format == "channels_first"

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        """The 2D and 3D layers' output shape (the 1D ones run on zeros)."""
        rank = self.rank
        if rank == 1 or len(shape) != rank + 2:
            return None
        self._ready((2 if shape[0] is None else shape[0], *shape[1:]))
        spatial = shape[2:] if self.cf else shape[1:1 + rank]
        channels = shape[1] if self.cf else shape[-1]
        if channels == 0 or 0 in spatial or (
            self.padding == "valid" and any(s < p for s, p in zip(spatial, self.pool_size))
        ):
            return None  # the zero run says what is wrong
        out = tuple(P.pool_geometry(s, p, st, self.padding)[0]
                    for s, p, st in zip(spatial, self.pool_size, self.strides))
        return (shape[0], channels, *out) if self.cf else (shape[0], *out, channels)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        if self.cf:
            return None
        _, pool, strides, pads, out_hw = self._checked(inputs)
        run = F.pool2d_runner(pool, strides, pads, self.mode == "average")
        if run is None or self.rank == 2:
            return run
        return lambda x: run(x[:, None])[:, 0]


_POOL_DOC = """{what} (Keras ``{name}``).

    Parameters
    ----------
    pool_size : int or tuple of {rank} ints (default {default})
    strides : int, tuple of {rank} ints, or None (default: pool_size)
    padding : "valid" or "same" (case-insensitive)
        "same" gives ceil(size / stride) outputs per axis; the odd padding pixel goes
        after (the TensorFlow rule). {pad_rule}
    data_format : "channels_last" (default), "channels_first" or None

    Call: inputs {shape_in} -> float32 {shape_out}. No weights. The C++ kernel and the
    NumPy code (``_numpy/pooling.py``) give the same bits.
    """

_MAX_RULE = "Padding never wins the max (it is -inf)."
_AVG_RULE = (
    "A window's mean is over the input pixels it covers: padding is not counted "
    "(docs/semantics.md §21)."
)


class MaxPooling1D(_Pooling):
    rank, mode = 1, "max"
    __doc__ = _POOL_DOC.format(
        what="Max pooling over steps",
        name="MaxPooling1D",
        rank=1,
        default=2,
        pad_rule=_MAX_RULE,
        shape_in="(N, T, C)",
        shape_out="(N, T', C)",
    )


class AveragePooling1D(_Pooling):
    rank, mode = 1, "average"
    __doc__ = _POOL_DOC.format(
        what="Average pooling over steps",
        name="AveragePooling1D",
        rank=1,
        default=2,
        pad_rule=_AVG_RULE,
        shape_in="(N, T, C)",
        shape_out="(N, T', C)",
    )


class MaxPooling2D(_Pooling):
    rank, mode = 2, "max"
    __doc__ = _POOL_DOC.format(
        what="2D max pooling",
        name="MaxPooling2D",
        rank=2,
        default="(2, 2)",
        pad_rule=_MAX_RULE,
        shape_in="(N, H, W, C)",
        shape_out="(N, OH, OW, C)",
    )

    def __init__(
        self,
        pool_size: Any = (2, 2),
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_Pooling):
    rank, mode = 2, "average"
    __doc__ = _POOL_DOC.format(
        what="2D average pooling",
        name="AveragePooling2D",
        rank=2,
        default="(2, 2)",
        pad_rule=_AVG_RULE,
        shape_in="(N, H, W, C)",
        shape_out="(N, OH, OW, C)",
    )

    def __init__(
        self,
        pool_size: Any = (2, 2),
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _Pooling3D(_Pooling):
    """Max or average pooling over depth, height and width: the 2D pooling of every depth
    slice (``functional.run_pool2d``, C++ or NumPy), then the depth windows in NumPy (a
    window is a box, so its max is the max of its slices' maxima and its mean the mean of
    its slices' means over the same pixels; docs/semantics.md §30)."""

    rank = 3

    def __init__(
        self,
        pool_size: Any = (2, 2, 2),
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        V.rank(x, owner, "inputs", 5, "(N, C, D, H, W)" if self.cf else
               "(batch, depth, height, width, channels)")
        self._ready(x.shape)
        if self.cf:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        n, d, h, w, c = x.shape
        if c == 0 or 0 in (d, h, w):
            raise ValueError(f"{owner}: inputs has an empty spatial or channel axis")
        if self.padding == "valid" and any(
                s < p for s, p in zip((d, h, w), self.pool_size)):
            raise ValueError(
                f"{owner}: with padding 'valid' the input's spatial size {(d, h, w)} is smaller "
                f"than pool_size {self.pool_size}; the output would be empty"
            )
        (od, front, back), (oh, top, bottom), (ow, left, right) = (
            P.pool_geometry(s, p, st, self.padding)
            for s, p, st in zip((d, h, w), self.pool_size, self.strides))
        average = self.mode == "average"
        with V.allocating(owner, f"the output of pooling by {self.pool_size}"):
            slices = F.run_pool2d(x.reshape(n * d, h, w, c), self.pool_size[1:],
                                  self.strides[1:], (top, bottom, left, right), (oh, ow), average)
            y = P.pool_depth(slices.reshape(n, d, oh, ow, c), self.pool_size[0],
                             self.strides[0], (front, back), od, average)
        return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if self.cf else y

    # The shared hook, in this class's body: Layer._offered_output_shape uses a hook only
    # from the class that also defines the call.
    _symbolic_output_shape = _Pooling._symbolic_output_shape

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        return None


class MaxPooling3D(_Pooling3D):
    mode = "max"
    __doc__ = _POOL_DOC.format(
        what="3D max pooling",
        name="MaxPooling3D",
        rank=3,
        default="(2, 2, 2)",
        pad_rule=_MAX_RULE,
        shape_in="(N, D, H, W, C)",
        shape_out="(N, OD, OH, OW, C)",
    ).replace("The C++ kernel and the\n    NumPy code (``_numpy/pooling.py``) give the same bits.",
              "Each depth slice's 2D pooling runs the C++ kernel or NumPy, the depth\n"
              "    windows NumPy.")


class AveragePooling3D(_Pooling3D):
    mode = "average"
    __doc__ = MaxPooling3D.__doc__.replace("3D max pooling", "3D average pooling").replace(
        "MaxPooling3D", "AveragePooling3D").replace(_MAX_RULE, _AVG_RULE)


# ------------------------------------------------------------------------ global pooling


class _GlobalPooling(Layer):
    rank = 1
    mode = "max"
    config_keys = ("data_format", "keepdims")
    supports_masking = False

    def __init__(
        self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.data_format = _data_format(data_format, owner)
        self.keepdims = _bool(keepdims, owner, "keepdims")

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _axes(self) -> tuple[int, ...]:
        first = 2 if self.data_format == "channels_first" else 1
        return tuple(range(first, first + self.rank))

    def _checked(self, inputs: Any) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        V.rank(
            x,
            owner,
            "inputs",
            self.rank + 2,
            f"(batch, {self.rank} spatial axes, channels)"
            if self.data_format == "channels_last"
            else f"(batch, channels, {self.rank} spatial axes)",
        )
        if any(x.shape[a] == 0 for a in self._axes()):
            raise ValueError(f"{owner}: inputs has an empty spatial axis, shape {x.shape}")
        self._ready(x.shape)
        return x

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._checked(inputs)
        n, pixels = x.shape[0], math.prod(x.shape[a] for a in self._axes())
        if self.data_format == "channels_first":  # NumPy under every backend
            y = P.global_pool(x.reshape(n, x.shape[1], pixels), self.mode, axis=2)
        elif _backend.resolve("global_pool", None) == "cpp":
            y = _cpp_pooling.global_pool(x.reshape(n, pixels, x.shape[-1]), self.mode)
        else:
            y = P.global_pool(x.reshape(n, pixels, x.shape[-1]), self.mode, axis=1)
        if self.keepdims:
            ones = (1,) * self.rank
            y = y.reshape(y.shape + ones if self.data_format == "channels_first"
                          else y.shape[:1] + ones + y.shape[1:])
        return np.ascontiguousarray(y, dtype=np.float32)

    def _runner(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): channels last on the C++ path, the
        kernel ``call`` runs on the recorded shape's (N, pixels, C) view; else None."""
        if (mask is not None or self.data_format == "channels_first"
                or _backend.resolve("global_pool", None) != "cpp"):
            return None
        x = self._checked(inputs)
        rows = (x.shape[0], math.prod(x.shape[a] for a in self._axes()), x.shape[-1])
        out = (x.shape[0],) + (1,) * self.rank * self.keepdims + (x.shape[-1],)
        pool, average = _backend._core.global_pool, self.mode == "average"
        return lambda x: pool(x.reshape(rows), average).reshape(out)


_GLOBAL_DOC = """{what} (Keras ``{name}``).

    Parameters
    ----------
    data_format : "channels_last" (default), "channels_first" or None
    keepdims : bool
        Keep the pooled axes with size 1.

    Call: inputs {shape_in} -> float32 (N, C), or {shape_keep} with keepdims. No weights.
    The mean is the float64 sum over the positions divided once by their count; the max
    propagates NaN. Channels last runs on the C++ path when available (the NumPy path's
    bits, denormals aside - the C++ kernels flush them - and a NaN's sign bit where NaNs of
    both signs meet in a sum); channels_first in NumPy.{extra}
    """


class GlobalMaxPooling1D(_GlobalPooling):
    rank, mode = 1, "max"
    __doc__ = _GLOBAL_DOC.format(
        what="Max over steps",
        name="GlobalMaxPooling1D",
        shape_in="(N, T, C)",
        shape_keep="(N, 1, C)",
        extra="",
    )


class GlobalMaxPooling2D(_GlobalPooling):
    rank, mode = 2, "max"
    __doc__ = _GLOBAL_DOC.format(
        what="Max over height and width",
        name="GlobalMaxPooling2D",
        shape_in="(N, H, W, C)",
        shape_keep="(N, 1, 1, C)",
        extra="",
    )


class GlobalAveragePooling2D(_GlobalPooling):
    rank, mode = 2, "average"
    __doc__ = _GLOBAL_DOC.format(
        what="Mean over height and width",
        name="GlobalAveragePooling2D",
        shape_in="(N, H, W, C)",
        shape_keep="(N, 1, 1, C)",
        extra="",
    )


class GlobalMaxPooling3D(_GlobalPooling):
    rank, mode = 3, "max"
    __doc__ = _GLOBAL_DOC.format(
        what="Max over depth, height and width",
        name="GlobalMaxPooling3D",
        shape_in="(N, D, H, W, C)",
        shape_keep="(N, 1, 1, 1, C)",
        extra="",
    )


class GlobalAveragePooling3D(_GlobalPooling):
    rank, mode = 3, "average"
    __doc__ = _GLOBAL_DOC.format(
        what="Mean over depth, height and width",
        name="GlobalAveragePooling3D",
        shape_in="(N, D, H, W, C)",
        shape_keep="(N, 1, 1, 1, C)",
        extra="",
    )


class GlobalAveragePooling1D(_GlobalPooling):
    rank, mode = 1, "average"
    __doc__ = _GLOBAL_DOC.format(
        what="Mean over steps",
        name="GlobalAveragePooling1D",
        shape_in="(N, T, C)",
        shape_keep="(N, 1, C)",
        extra="""

    ``mask`` (bool (N, T), True = keep; numbers mean != 0), as in Keras: the mean is over
    the kept steps only (masked steps count as 0 even if they hold NaN); a row with no kept
    step is 0 / 0 = NaN, as in Keras. The layer consumes the mask (``compute_mask`` is None).""",
    )
    supports_masking = True

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        x = self._checked(inputs)
        if mask is None:
            return super().call(x)
        owner = self._owner()
        steps = 2 if self.data_format == "channels_first" else 1
        m = V.bool_mask(mask, owner, "mask", shape=(x.shape[0], x.shape[steps]),
                        why="(batch, steps)")
        m = m[:, None, :] if steps == 2 else m[:, :, None]
        # in float64 (channels last: the steps in order), divided once, as without a mask
        kept = np.where(m, x, np.float32(0))
        total = (P.reduce_in_order("average", kept, 1) if steps == 1
                 else kept.sum(axis=steps, dtype=np.float64))
        count = m.sum(axis=steps, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = (total / count).astype(np.float32)
        return np.ascontiguousarray(np.expand_dims(y, steps) if self.keepdims else y)

    _runner = _GlobalPooling._runner  # (None with a mask)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        """The mask stops here (as in Keras)."""
        return None


class _AdaptivePooling(Layer):
    """Pooling to a fixed output size, whatever the input's (Keras 3's adaptive pooling,
    PyTorch's ``nn.AdaptiveAvgPool2d`` and friends): output i of an axis of n inputs pools
    inputs floor(i n / out) ... ceil((i + 1) n / out) - 1 (windows of two sizes, which
    overlap when out does not divide n)."""

    rank = 2
    mode = "max"
    config_keys = ("output_size", "data_format")
    supports_masking = False

    def __init__(self, output_size: Any, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.output_size = V.int_tuple(output_size, owner, "output_size", n=self.rank)
        self.data_format = _data_format(data_format, owner)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        cf = self.data_format == "channels_first"
        spatial = "steps" if self.rank == 1 else "height, width"
        V.rank(x, owner, "inputs", self.rank + 2,
               f"(batch, channels, {spatial})" if cf else f"(batch, {spatial}, channels)")
        self._ready(x.shape)
        x = np.moveaxis(x, 1, -1) if cf else x
        if any(d == 0 for d in x.shape[1:-1]):
            raise ValueError(f"{owner}: inputs has an empty spatial axis, shape {x.shape}")
        # The output and the one-axis-pooled intermediate, refused before NumPy allocates
        # them (an absurd output_size could otherwise exhaust the memory).
        n, c = x.shape[0], x.shape[-1]
        out = self.output_size
        _checks.elements(n * out[0] * math.prod(x.shape[2:-1]) * c, owner,
                         f"the first axis pooled to {out[0]}")
        _checks.elements(n * math.prod(out) * c, owner, f"the output of pooling to {out}")
        with V.allocating(owner, f"the output of pooling to {out}"):
            if _backend.resolve("adaptive_pool", None) == "cpp":
                y = _cpp_pooling.adaptive_pool(x, out, self.mode)
            else:
                y = P.adaptive_pool(x, out, self.mode)
        return np.ascontiguousarray(np.moveaxis(y, -1, 1) if cf else y)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        if len(shape) != self.rank + 2 or any(d == 0 for d in shape[1:]):
            return None  # the zero run raises the call's error
        if self.data_format == "channels_first":
            return (shape[0], shape[1], *self.output_size)
        return (shape[0], *self.output_size, shape[-1])


_ADAPTIVE_DOC = """{what} to ``output_size`` (Keras ``{name}``; PyTorch ``{torch}``).

    Parameters
    ----------
    output_size : int or tuple of {rank} ints >= 1
    data_format : "channels_last" (default), "channels_first" or None

    Output i along an axis of n inputs pools inputs floor(i n / out) to ceil((i + 1) n / out)
    - 1, as PyTorch (and Keras) do. Call: {shape_in} -> float32 {shape_out}. No weights;
    NumPy under every backend{extra}.
    """


class AdaptiveMaxPooling1D(_AdaptivePooling):
    rank, mode = 1, "max"
    __doc__ = _ADAPTIVE_DOC.format(
        what="Max pooling", name="AdaptiveMaxPooling1D", torch="nn.AdaptiveMaxPool1d", rank=1,
        shape_in="(N, T, C)", shape_out="(N, out, C)", extra="")


class AdaptiveAveragePooling1D(_AdaptivePooling):
    rank, mode = 1, "average"
    __doc__ = _ADAPTIVE_DOC.format(
        what="Average pooling", name="AdaptiveAveragePooling1D",
        torch="nn.AdaptiveAvgPool1d", rank=1, shape_in="(N, T, C)", shape_out="(N, out, C)",
        extra=" (sums in float64)")


class AdaptiveMaxPooling2D(_AdaptivePooling):
    rank, mode = 2, "max"
    __doc__ = _ADAPTIVE_DOC.format(
        what="Max pooling", name="AdaptiveMaxPooling2D", torch="nn.AdaptiveMaxPool2d", rank=2,
        shape_in="(N, H, W, C)", shape_out="(N, out_h, out_w, C)", extra="")


class AdaptiveAveragePooling2D(_AdaptivePooling):
    rank, mode = 2, "average"
    __doc__ = _ADAPTIVE_DOC.format(
        what="Average pooling", name="AdaptiveAveragePooling2D",
        torch="nn.AdaptiveAvgPool2d", rank=2, shape_in="(N, H, W, C)",
        shape_out="(N, out_h, out_w, C)", extra=" (sums in float64)")
