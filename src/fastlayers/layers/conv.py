"""Convolution layers: Conv2D, Conv1D, Conv3D, DepthwiseConv2D, DepthwiseConv1D,
SeparableConv2D, SeparableConv1D, Conv2DTranspose, Conv1DTranspose, Conv3DTranspose."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import _checks
from .. import _validation as V
from .. import functional as F
from .._cpp import pack_conv2d
from .._cpp.conv2d import pack_conv2d_transpose
from .._numpy import activations as _np_act
from .base import (
    WEIGHT_TRAINING_ARGS,
    Layer,
    Shape,
    _bool,
    _positive_int,
    _shape_tuple,
)
from .core import _data_format
from .initializers import check_initializer, weight_spec

# ------------------------------------------------------------------------- Conv2D


class _GroupedConv(Layer):
    """What Conv1D and Conv2D share: the channel axis, the grouped kernel
    (*kernel_size, C // groups, filters) with its bias (filters,), and the build check."""

    input_rank: int  # of the layer's input: 3 for Conv1D, 4 for Conv2D

    def _channel_axis(self) -> int:
        return 1 if self.data_format == "channels_first" else -1

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else input_shape[self._channel_axis()]
        cg = None if c is None else c // self.groups
        specs = [
            weight_spec("kernel", (*self.kernel_size, cg, self.filters), self.kernel_initializer)
        ]
        if self.use_bias:
            specs.append(weight_spec("bias", (self.filters,), self.bias_initializer))
        return specs

    def build(self, input_shape: Shape) -> None:
        """Create kernel (*kernel_size, C // groups, filters) and bias (filters,)."""
        input_shape = _shape_tuple(input_shape)
        rank = self.input_rank
        if len(input_shape) != rank:
            raise ValueError(
                f"{self._owner()}: input_shape must have rank {rank}, got {input_shape}"
            )
        c = input_shape[self._channel_axis()]
        if c is None or c % self.groups:
            raise ValueError(
                f"{self._owner()}: the number of input channels ({c}) must be known and "
                f"divisible by groups ({self.groups})"
            )
        self._create_weights(input_shape)


def _conv_arguments(layer: Layer, filters, kernel_size, strides, padding, data_format,
                    dilation_rate, activation, *, rank: int = 2,
                    paddings: tuple = ("valid", "same"), hint: str = "") -> None:
    """Check and set what Conv1D, Conv2D and Conv2DTranspose take alike (``rank`` spatial
    axes; ``paddings`` the accepted values, ``hint`` added to the message of a bad one)."""
    owner = type(layer).__name__
    layer.filters = _positive_int(filters, owner, "filters")
    # Sizes the kernels take as int32 (an int64 stride such as 2**63 would otherwise reach the
    # weight packing of the transposed convolutions, whose np.arange turns it into floats).
    big = V.MAX_INT32
    layer.kernel_size = V.int_tuple(kernel_size, owner, "kernel_size", n=rank, maximum=big)
    layer.strides = V.int_tuple(strides, owner, "strides", n=rank, maximum=big)
    layer.dilation_rate = V.int_tuple(dilation_rate, owner, "dilation_rate", n=rank,
                                      maximum=big)
    if not isinstance(padding, str) or padding.lower() not in paddings:
        accepted = ", ".join(repr(p) for p in paddings[:-1]) + f" or {paddings[-1]!r}"
        raise ValueError(f"{owner}: padding must be {accepted}, got {padding!r}{hint}")
    layer.padding = padding.lower()
    layer.data_format = _data_format(data_format, owner)
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ValueError(
            f"{owner}: strides > 1 together with dilation_rate > 1 is not allowed (as in "
            f"Keras); got strides {layer.strides} and dilation_rate {layer.dilation_rate}"
        )
    V.activation(activation, owner)
    layer.activation = activation


def _groups(layer: Layer, groups) -> int:
    owner = type(layer).__name__
    groups = _positive_int(groups, owner, "groups")
    if layer.filters % groups:
        raise ValueError(
            f"{owner}: filters ({layer.filters}) must be divisible by groups ({groups})"
        )
    return groups


class Conv2D(_GroupedConv):
    """2D convolution (Keras ``Conv2D``).

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : "valid" or "same" (case-insensitive)
        "same" puts the extra pixel of odd padding at the bottom/right.
    data_format : "channels_last" (default; NHWC), "channels_first" (NCHW) or None
        The kernel layout is the same for both.
    dilation_rate : int or (int, int)
        Strides > 1 together with dilation > 1 raise ValueError, as in Keras.
    groups : int
        Input channels and filters must be divisible by it.
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    lora_rank, lora_alpha : must be None

    Weights: ``kernel`` (kh, kw, in_channels // groups, filters), then ``bias``
    (filters,) if use_bias.

    Call: ``layer(inputs)`` with inputs (N, H, W, C) (channels_last) or (N, C, H, W)
    (channels_first); returns float32 (N, OH, OW, filters) or (N, filters, OH, OW).
    """

    config_keys = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "groups",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "seed",
    )
    call_weights = ("kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS
    unsupported_args = {"lora_rank": None, "lora_alpha": None}
    input_rank = 4

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _conv_arguments(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                        activation, hint=" ('causal' is for Conv1D only)")
        self.groups = _groups(self, groups)
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)


    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, 4)[2] * self.groups
        return (
            (None, c, None, None) if self.data_format == "channels_first" else (None, None, None, c)
        )

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        return _call_image_conv(self, inputs, V.check_conv2d, F.run_conv2d, self.strides,
                                self.padding, self.dilation_rate, self.groups)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        got = _symbolic_geometry(self, shape)
        if got is None:
            return None
        (kernel, _), nhwc = got
        geometry = V.conv2d_geometry(self._owner(), nhwc, kernel.shape, self.strides,
                                     self.padding, self.dilation_rate, self.groups)
        return _symbolic_out(self, shape[0], geometry[3], kernel.shape[3])

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        if self.data_format == "channels_first" or self._packed is None:
            return None
        a = V.check_conv2d(inputs, None, None, self.strides, self.padding, self.dilation_rate,
                           self.groups, self.activation, op=self._owner(), x_name="inputs",
                           build=self._ready)
        return F.conv2d_runner(a, self._packed)

    def _pack(self):  # one GEMM operand per group, the bias folded in
        return pack_conv2d(self._weight("kernel"), self._weight("bias"), self.groups)


# ------------------------------------------- Conv1D, DepthwiseConv2D, SeparableConv2D (convpool)
#
# All three run on ``functional.run_conv2d`` (so on the C++ path when the core is there): Conv1D
# is a conv2d of height 1, DepthwiseConv2D a conv2d with groups = input channels, and
# SeparableConv2D a depthwise conv2d followed by a 1x1 conv2d. Their kernels are reshaped
# (views, no copy) to conv2d's layout (kh, kw, C // groups, F) and packed once per layer.


def _channels_back(y: np.ndarray, channels_first: bool) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if channels_first else y


def _split_activation(layer: Layer) -> tuple[Any, Any]:
    """(the activation the conv op runs, the one applied after the layout is restored).

    Keras applies a layer's activation to its output in the layer's data_format. An
    elementwise one gives the same values either way, so the op runs it (fused in the C++
    epilogue). A row activation (softmax, log_softmax, sparsemax, glu: along the last axis)
    or a callable must see channels_first output as (N, F, OH, OW), the width last, so it
    runs afterwards (docs/semantics.md §21).
    """
    act = V.activation(layer.activation, layer._owner())
    if layer.data_format == "channels_first" and (callable(act) or act in _np_act.ROW_ACTIVATIONS):
        return None, act
    return act, None


def _image_conv_args(layer: Layer, inputs: Any, check: Any, *geometry: Any) -> tuple:
    """(the checked arguments, the activation to apply after the op) of Conv2D's and
    Conv2DTranspose's call: ``check`` (``_validation.check_conv2d`` or
    ``check_conv2d_transpose``) with the layer's ``geometry`` arguments and its weights, the
    activation split by :func:`_split_activation`."""
    act, after = _split_activation(layer)
    a = check(inputs, None, None, *geometry, act, op=layer._owner(), x_name="inputs",
              channels_first=layer.data_format == "channels_first", build=layer._ready)
    return a, after


def _call_image_conv(layer: Layer, inputs: Any, check: Any, run: Any, *geometry: Any) -> Any:
    """The call of Conv2D and Conv2DTranspose: :func:`_image_conv_args`, then ``run``
    (``functional.run_conv2d[_transpose]``) with the layer's packed weights, the layout back,
    and a row activation after it."""
    a, after = _image_conv_args(layer, inputs, check, *geometry)
    y = _channels_back(run(a, layer._packed), layer.data_format == "channels_first")
    return _activate_after(y, after)


def _activate_after(y: np.ndarray, act: Any) -> np.ndarray:
    """``act`` from :func:`_split_activation` on the layer's output (None: nothing to do)."""
    if act is None:
        return y
    if act == "softmax":  # the op, which C++ serves; the others as the C++ conv path runs them
        return F.softmax(y, axis=-1)
    return _np_act.apply(act, y)


def _symbolic_geometry(layer: Layer, shape: tuple) -> tuple | None:
    """For ``_symbolic_output_shape``: (the call weights after building as a zero run would,
    the input shape as NHWC with the batch known) for a rank-4 input, or None when the
    output shape cannot be computed here (an activation that may change it)."""
    act = V.activation(layer.activation, layer._owner())
    if len(shape) != 4 or callable(act) or act == "glu":
        return None
    concrete = (2 if shape[0] is None else shape[0], *shape[1:])
    weights = layer._ready(concrete)
    if layer.data_format == "channels_first":
        concrete = (concrete[0], concrete[2], concrete[3], concrete[1])
    return weights, concrete


def _symbolic_out(layer: Layer, batch: Any, out_hw: tuple, filters: int) -> tuple:
    if layer.data_format == "channels_first":
        return (batch, filters, *out_hw)
    return (batch, *out_hw, filters)


class Conv1D(_GroupedConv):
    """1D (temporal) convolution (Keras ``Conv1D``).

    Parameters
    ----------
    filters : int
    kernel_size : int or (int,)
    strides : int or (int,)
    padding : "valid", "same" or "causal" (case-insensitive)
        "same" puts the extra step of odd padding at the end; "causal" pads
        ``dilation_rate * (kernel_size - 1)`` zeros at the start and then runs "valid",
        so that output step t reads input steps up to t * stride only.
    data_format : "channels_last" (default; (batch, steps, channels)), "channels_first"
        ((batch, channels, steps)) or None. The kernel layout is the same for both.
    dilation_rate : int or (int,)
        Strides > 1 together with dilation > 1 raise ValueError, as in Keras.
    groups : int
        Input channels and filters must be divisible by it.
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    lora_rank, lora_alpha : must be None

    Weights: ``kernel`` (kernel_size, in_channels // groups, filters), then ``bias``
    (filters,) if use_bias.

    Call: ``layer(inputs)`` with inputs (N, T, C) -> float32 (N, T', filters) (or the
    channels_first layouts). Runs as a conv2d of height 1 (C++ path when available).
    """

    config_keys = Conv2D.config_keys
    call_weights = ("kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS
    unsupported_args = {"lora_rank": None, "lora_alpha": None}
    supports_masking = False
    input_rank = 3

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _conv_arguments(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                        activation, rank=1, paddings=("valid", "same", "causal"))
        self.groups = _groups(self, groups)
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)


    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, 3)[1] * self.groups
        return (None, c, None) if self.data_format == "channels_first" else (None, None, c)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        channels_first = self.data_format == "channels_first"
        act, after = _split_activation(self)
        a = V.check_conv1d(
            inputs,
            None,
            None,
            self.strides,
            self.padding,
            self.dilation_rate,
            self.groups,
            act,
            op=self._owner(),
            x_name="inputs",
            channels_first=channels_first,
            build=self._ready,
        )
        y = _channels_back(F.run_conv2d(a, self._packed)[:, 0], channels_first)
        return _activate_after(y, after)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py), channels_last: the conv2d runner on
        the (N, 1, T, C) view, as ``call`` runs it."""
        if self.data_format == "channels_first" or self._packed is None:
            return None
        a = V.check_conv1d(inputs, None, None, self.strides, self.padding, self.dilation_rate,
                           self.groups, _split_activation(self)[0], op=self._owner(),
                           x_name="inputs", build=self._ready)
        run = F.conv2d_runner(a, self._packed)
        return None if run is None else (lambda x: run(x[:, None])[:, 0])

    def _pack(self):
        kernel = self._weight("kernel")
        return pack_conv2d(kernel[None], self._weight("bias"), self.groups)


def _volume_geometry(layer: Layer, shape: tuple, channels) -> tuple | None:
    """For a 3D convolution's ``_symbolic_output_shape``: (the kernel after building as a
    zero run would, the input's (D, H, W)), or None when the zero run must say what is wrong
    or what comes out (not rank 5, an empty axis, input channels other than
    ``channels(kernel)``, an activation that may change the shape)."""
    act = V.activation(layer.activation, layer._owner())
    if len(shape) != 5 or callable(act) or act == "glu":
        return None
    concrete = (2 if shape[0] is None else shape[0], *shape[1:])
    kernel = layer._ready(concrete)[0]
    cf = layer.data_format == "channels_first"
    spatial = concrete[2:] if cf else concrete[1:4]
    if 0 in spatial or concrete[1 if cf else 4] != channels(kernel):
        return None
    return kernel, spatial


class Conv3D(_GroupedConv):
    """3D convolution (Keras ``Conv3D``), over depth, height and width.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int, int)
    strides : int or (int, int, int)
    padding : "valid" or "same" (case-insensitive)
        "same" puts the extra step of odd padding after, on each axis.
    data_format : "channels_last" (default; (N, D, H, W, C)), "channels_first"
        ((N, C, D, H, W)) or None. The kernel layout is the same for both.
    dilation_rate : int or (int, int, int)
        Strides > 1 together with dilation > 1 raise ValueError, as in Keras.
    groups : int
        Input channels and filters must be divisible by it.
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    lora_rank, lora_alpha : must be None

    Weights: ``kernel`` (kd, kh, kw, in_channels // groups, filters), then ``bias``
    (filters,) if use_bias.

    Call: ``layer(inputs)`` with inputs (N, D, H, W, C) -> float32 (N, OD, OH, OW, filters)
    (or the channels_first layouts). Runs as one conv2d over the input's depth windows
    stacked along the channels (kd times the input's memory; docs/semantics.md §30), on the
    C++ path when available; there, with 16 or more channels per group, the same convolution
    reads the input in place (no stacked copy, the same bits).
    """

    config_keys = Conv2D.config_keys
    call_weights = ("kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS
    unsupported_args = {"lora_rank": None, "lora_alpha": None}
    input_rank = 5

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = (1, 1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _conv_arguments(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                        activation, rank=3, hint=" ('causal' is for Conv1D only)")
        self.groups = _groups(self, groups)
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)

    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, 5)[3] * self.groups
        return (None, c, None, None, None) if self.data_format == "channels_first" else (
            None, None, None, None, c)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        channels_first = self.data_format == "channels_first"
        act, after = _split_activation(self)
        a, od, depth_pads = V.check_conv3d(inputs, None, None, self.strides, self.padding,
                                           self.dilation_rate, self.groups, act,
                                           op=self._owner(), x_name="inputs",
                                           channels_first=channels_first, build=self._ready,
                                           stack=False)
        y = F.run_conv3d(a, od, depth_pads, self._weight("kernel").shape[0], self.strides[0],
                         self.dilation_rate[0], self._packed, op=self._owner())
        return _activate_after(_channels_back(y, channels_first), after)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """Direct calls (docs/architecture.md §14): the checks once, then per call the C++
        conv3d reading x in place, or the depth stacking of this input shape (its copies
        planned here) and the conv2d runner."""
        if self.data_format == "channels_first" or self._packed is None:
            return None
        a, od, depth_pads = V.check_conv3d(inputs, None, None, self.strides, self.padding,
                                           self.dilation_rate, self.groups, self.activation,
                                           op=self._owner(), x_name="inputs",
                                           build=self._ready, stack=False)
        kd, sd, dd, groups = self._weight("kernel").shape[0], self.strides[0], \
            self.dilation_rate[0], self.groups
        direct = F.conv3d_runner(a, depth_pads, kd, sd, dd, self._packed)
        if direct is not None:
            return direct
        conv = F.conv2d_runner(a, self._packed)
        if conv is None:
            return None
        n, d = inputs.shape[:2]
        copies = V.depth_copies(d, kd, od, sd, dd, depth_pads[0])

        def run(x: np.ndarray) -> np.ndarray:
            y = conv(V.stack_depths(x, copies, od, kd, groups))
            return y.reshape(n, od, *y.shape[1:])

        return run

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        got = _volume_geometry(self, shape, lambda k: k.shape[3] * self.groups)
        if got is None:
            return None
        kernel, spatial = got
        out = [V.depth_geometry(self._owner(), size, k, s, d, self.padding)[0]
               for size, k, s, d in zip(spatial, kernel.shape[:3], self.strides,
                                        self.dilation_rate)]
        return _symbolic_out(self, shape[0], tuple(out), kernel.shape[4])

    def _pack(self):  # the conv2d of the depth-stacked input, one GEMM operand per group
        return pack_conv2d(V.conv3d_kernel4(self._weight("kernel")), self._weight("bias"),
                           self.groups)


class _DepthwiseBase(Layer):
    """What DepthwiseConv2D and SeparableConv2D share: the arguments of the depthwise step."""

    ignored_args = (
        "depthwise_regularizer",
        "pointwise_regularizer",
        "bias_regularizer",
        "depthwise_constraint",
        "pointwise_constraint",
        "bias_constraint",
    )
    supports_masking = False

    rank = 2  # spatial axes: 1 for DepthwiseConv1D and SeparableConv1D

    def _init_depthwise(self, kernel_size, strides, padding, data_format, dilation_rate,
                        depth_multiplier, activation, use_bias, bias_initializer) -> None:
        owner = type(self).__name__
        n = self.rank
        big = V.MAX_INT32  # as _conv_arguments
        self.kernel_size = V.int_tuple(kernel_size, owner, "kernel_size", n=n, maximum=big)
        self.strides = V.int_tuple(strides, owner, "strides", n=n, maximum=big)
        self.dilation_rate = V.int_tuple(dilation_rate, owner, "dilation_rate", n=n,
                                         maximum=big)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding.lower()
        self.data_format = _data_format(data_format, owner)
        self.depth_multiplier = _positive_int(depth_multiplier, owner, "depth_multiplier")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: strides > 1 together with dilation_rate > 1 is not supported (Keras's "
                f"TensorFlow backend rejects it too); got strides {self.strides} and "
                f"dilation_rate {self.dilation_rate}"
            )
        V.activation(activation, owner)
        self.activation = activation
        self.use_bias = _bool(use_bias, owner, "use_bias")
        self.bias_initializer = check_initializer(bias_initializer, owner, "bias_initializer")

    def _channel_axis(self) -> int:
        return 1 if self.data_format == "channels_first" else -1

    def build(self, input_shape: Shape) -> None:
        input_shape = _shape_tuple(input_shape)
        rank = self.rank + 2
        if len(input_shape) != rank:
            raise ValueError(
                f"{self._owner()}: input_shape must have rank {rank}, got {input_shape}"
            )
        if input_shape[self._channel_axis()] is None:
            raise ValueError(f"{self._owner()}: the number of input channels must be known")
        self._create_weights(input_shape)

    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, self.rank + 2)[self.rank]
        spatial = (None,) * self.rank
        if self.data_format == "channels_first":
            return (None, c, *spatial)
        return (None, *spatial, c)

    def _two_d(self) -> tuple:
        """(strides, dilation) of the 2D depthwise step (height 1 for the 1D layers)."""
        if self.rank == 2:
            return self.strides, self.dilation_rate
        return (1, *self.strides), (1, *self.dilation_rate)

    def _depthwise_args(self, inputs, activation):
        """The Conv2DArgs of the depthwise step (the layer built on the first call), and the
        layer's call weights (the 1D layers: on a height-1 view of the steps, their kernels
        given a height of 1)."""
        weights = []
        x = inputs
        if self.rank == 1:
            x = V.array(inputs, self._owner(), "inputs")
            cf = self.data_format == "channels_first"
            what = "(batch, channels, steps)" if cf else "(batch, steps, channels)"
            V.rank(x, self._owner(), "inputs", 3, what)
            x = x[:, :, None] if cf else x[:, None]

        def build(shape):
            if self.rank == 1:
                shape = (shape[0], shape[1], shape[3]) if cf else (shape[0], *shape[2:])
            weights.extend(self._ready(shape))
            c = shape[self._channel_axis()]
            if weights[0].shape[-2] != c:
                raise ValueError(
                    f"{self._owner()}: inputs have {c} channels, the layer was built for "
                    f"{weights[0].shape[-2]}"
                )
            kernel = weights[0] if self.rank == 2 else weights[0][None]
            return kernel, (weights[1] if len(weights) == 2 else None)  # Separable: no bias

        strides, dilation = self._two_d()
        a = V.check_depthwise_conv2d(
            x,
            None,
            None,
            strides,
            self.padding,
            dilation,
            activation,
            op=self._owner(),
            x_name="inputs",
            channels_first=self.data_format == "channels_first",
            build=build,
            steps=self.rank == 1,
        )
        return a, weights

    def _offers_runner(self) -> bool:
        """Whether ``_runner`` makes one: the 2D layers, channels last (where the activation
        runs in the op, row activations too: the channels are the last axis), packed."""
        return self.rank == 2 and self.data_format != "channels_first" and self._packed is not None

    def _back(self, y: np.ndarray) -> np.ndarray:
        """NHWC conv2d output -> the layer's layout (the height of 1 dropped for 1D)."""
        return _channels_back(y if self.rank == 2 else y[:, 0],
                              self.data_format == "channels_first")


class DepthwiseConv2D(_DepthwiseBase):
    """Depthwise 2D convolution (Keras ``DepthwiseConv2D``): each input channel is convolved
    with its own ``depth_multiplier`` filters.

    Parameters
    ----------
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : "valid" or "same" (case-insensitive); "same" as in Conv2D
    depth_multiplier : int
    data_format : "channels_last" (default), "channels_first" or None
    dilation_rate : int or (int, int)
        Strides > 1 together with dilation > 1 raise ValueError (Keras's TensorFlow backend
        rejects them too).
    activation : str, callable or None
    use_bias : bool
    depthwise_initializer, bias_initializer : str or callable
    seed : int, optional
    depthwise_regularizer, bias_regularizer, depthwise_constraint, bias_constraint
        Training only; ignored.

    Weights: ``kernel`` (kh, kw, C, depth_multiplier), then ``bias`` (C * depth_multiplier,)
    if use_bias. Output channel ``c * depth_multiplier + m`` is input channel c convolved with
    ``kernel[:, :, c, m]``.

    Call: inputs (N, H, W, C) -> float32 (N, OH, OW, C * depth_multiplier) (or NCHW).
    Runs as conv2d with groups = C (C++ path when available: its direct depthwise kernel).
    """

    config_keys = (
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
        "depthwise_initializer",
        "bias_initializer",
        "seed",
    )
    call_weights = ("kernel", "bias")

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_depthwise(kernel_size, strides, padding, data_format, dilation_rate,
                             depth_multiplier, activation, use_bias, bias_initializer)
        self.depthwise_initializer = check_initializer(
            depthwise_initializer, type(self).__name__, "depthwise_initializer"
        )

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else input_shape[self._channel_axis()]
        m = self.depth_multiplier
        specs = [weight_spec("kernel", (*self.kernel_size, c, m), self.depthwise_initializer)]
        if self.use_bias:
            specs.append(
                weight_spec("bias", (None if c is None else c * m,), self.bias_initializer)
            )
        return specs

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        act, after = _split_activation(self)
        a, _ = self._depthwise_args(inputs, act)
        return _activate_after(self._back(F.run_conv2d(a, self._packed)), after)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """Channels-last DepthwiseConv2D: the conv2d runner of the checked call
        (models/shape_plan.py, direct calls)."""
        if not self._offers_runner():
            return None
        a, _ = self._depthwise_args(inputs, _split_activation(self)[0])
        return F.conv2d_runner(a, self._packed)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        if self.rank == 1:
            return None  # a zero run: the steps are cheap
        got = _symbolic_geometry(self, shape)
        if got is None:
            return None
        (kernel, _), nhwc = got
        k4 = V.depthwise_kernel4(kernel)
        geometry = V.conv2d_geometry(self._owner(), nhwc, k4.shape, self.strides, self.padding,
                                     self.dilation_rate, kernel.shape[2])
        return _symbolic_out(self, shape[0], geometry[3], k4.shape[3])

    def _pack(self):
        kernel = self._weight("kernel")
        kernel = kernel if self.rank == 2 else kernel[None]
        return pack_conv2d(V.depthwise_kernel4(kernel), self._weight("bias"), kernel.shape[2])


class SeparableConv2D(_DepthwiseBase):
    """Depthwise separable 2D convolution (Keras ``SeparableConv2D``): a depthwise
    convolution (no bias, no activation) followed by a 1x1 convolution to ``filters``
    channels, then the bias and the activation.

    Parameters
    ----------
    filters : int
    kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier :
        of the depthwise step, as in :class:`DepthwiseConv2D`
    activation : str, callable or None
    use_bias : bool
    depthwise_initializer, pointwise_initializer, bias_initializer : str or callable
    seed : int, optional
    depthwise_regularizer, pointwise_regularizer, bias_regularizer, depthwise_constraint,
    pointwise_constraint, bias_constraint : training only; ignored.

    Weights (Keras's order): ``depthwise_kernel`` (kh, kw, C, depth_multiplier),
    ``pointwise_kernel`` (1, 1, C * depth_multiplier, filters), then ``bias`` (filters,) if
    use_bias.

    Call: inputs (N, H, W, C) -> float32 (N, OH, OW, filters) (or NCHW). Both steps run on
    conv2d (C++ path when available).
    """

    config_keys = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "depth_multiplier",
        "activation",
        "use_bias",
        "depthwise_initializer",
        "pointwise_initializer",
        "bias_initializer",
        "seed",
    )
    call_weights = ("depthwise_kernel", "pointwise_kernel", "bias")

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.filters = _positive_int(filters, owner, "filters")
        self._init_depthwise(kernel_size, strides, padding, data_format, dilation_rate,
                             depth_multiplier, activation, use_bias, bias_initializer)
        self.depthwise_initializer = check_initializer(
            depthwise_initializer, owner, "depthwise_initializer"
        )
        self.pointwise_initializer = check_initializer(
            pointwise_initializer, owner, "pointwise_initializer"
        )

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else input_shape[self._channel_axis()]
        m = self.depth_multiplier
        cm = None if c is None else c * m
        specs = [
            weight_spec("depthwise_kernel", (*self.kernel_size, c, m), self.depthwise_initializer),
            weight_spec("pointwise_kernel", (*(1,) * self.rank, cm, self.filters),
                        self.pointwise_initializer),
        ]
        if self.use_bias:
            specs.append(weight_spec("bias", (self.filters,), self.bias_initializer))
        return specs

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        a, weights = self._depthwise_args(inputs, None)  # no bias, linear
        pointwise, bias = (weights[1] if self.rank == 2 else weights[1][None]), weights[2]
        packed = self._packed or (None, None)
        mid = F.run_conv2d(a, packed[0])
        act, after = _split_activation(self)
        b = self._pointwise_args(mid, pointwise, bias, act)
        return _activate_after(self._back(F.run_conv2d(b, packed[1])), after)

    def _pointwise_args(self, mid: np.ndarray, pointwise: Any, bias: Any, act: Any) -> Any:
        """The checked arguments of the 1x1 step on the depthwise step's output ``mid``."""
        return V.check_conv2d(mid, pointwise, bias, 1, "valid", 1, 1, act, op=self._owner(),
                              x_name="inputs")

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """Channels-last SeparableConv2D: the depthwise step's conv2d runner, then the
        pointwise step's, as the checked call runs them."""
        if not self._offers_runner():
            return None
        act = _split_activation(self)[0]
        a, weights = self._depthwise_args(inputs, None)
        depthwise = F.conv2d_runner(a, self._packed[0])
        mid = np.empty((a.x.shape[0], *a.out_hw, a.kernel.shape[3]), np.float32)  # (untouched)
        b = self._pointwise_args(mid, weights[1], weights[2], act)
        pointwise = F.conv2d_runner(b, self._packed[1])
        if depthwise is None or pointwise is None:
            return None
        return lambda x: pointwise(depthwise(x))

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        if self.rank == 1:
            return None  # a zero run: the steps are cheap
        got = _symbolic_geometry(self, shape)
        if got is None:
            return None
        (depthwise, pointwise, _), nhwc = got
        k4 = V.depthwise_kernel4(depthwise)
        geometry = V.conv2d_geometry(self._owner(), nhwc, k4.shape, self.strides, self.padding,
                                     self.dilation_rate, depthwise.shape[2])
        if pointwise.shape[2] != k4.shape[3]:
            return None
        return _symbolic_out(self, shape[0], geometry[3], pointwise.shape[3])

    def _pack(self):
        depthwise = self._weight("depthwise_kernel")
        pointwise = self._weight("pointwise_kernel")
        if self.rank == 1:
            depthwise, pointwise = depthwise[None], pointwise[None]
        return (
            pack_conv2d(V.depthwise_kernel4(depthwise), None, depthwise.shape[2]),
            pack_conv2d(pointwise, self._weight("bias"), 1),
        )


class DepthwiseConv1D(DepthwiseConv2D):
    """Depthwise 1D convolution (Keras ``DepthwiseConv1D``): DepthwiseConv2D on a height of 1.

    Parameters as DepthwiseConv2D, each of ``kernel_size``, ``strides``, ``dilation_rate`` an
    int or a 1-tuple; padding "valid" or "same"; data_format "channels_last" ((batch, steps,
    channels)) or "channels_first" ((batch, channels, steps)).

    Weights: ``kernel`` (kernel_size, C, depth_multiplier), then ``bias``
    (C * depth_multiplier,) if use_bias. Call: (N, T, C) -> float32 (N, T', C *
    depth_multiplier) (or the channels_first layouts).
    """

    rank = 1

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:  # DepthwiseConv2D's, with Keras's 1D defaults
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, **kwargs)


class SeparableConv1D(SeparableConv2D):
    """Depthwise separable 1D convolution (Keras ``SeparableConv1D``): SeparableConv2D on a
    height of 1.

    Parameters as SeparableConv2D, each of ``kernel_size``, ``strides``, ``dilation_rate``
    an int or a 1-tuple; padding "valid" or "same"; data_format "channels_last" ((batch,
    steps, channels)) or "channels_first" ((batch, channels, steps)).

    Weights (Keras's order): ``depthwise_kernel`` (kernel_size, C, depth_multiplier),
    ``pointwise_kernel`` (1, C * depth_multiplier, filters), then ``bias`` (filters,) if
    use_bias. Call: (N, T, C) -> float32 (N, T', filters) (or the channels_first layouts).
    """

    rank = 1

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:  # SeparableConv2D's, with Keras's 1D defaults
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer,
                         pointwise_initializer, bias_initializer, **kwargs)


# ------------------------------------------------------------------ Conv2DTranspose


class Conv2DTranspose(Layer):
    """Transposed 2D convolution (Keras ``Conv2DTranspose``), the upsampling step of
    decoders and U-Nets (docs/semantics.md §25).

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : "valid" or "same" (case-insensitive)
        Without output_padding, "same" gives H * stride rows and "valid"
        (H - 1) * stride + max(kernel, stride) (kernel dilated by dilation_rate).
    output_padding : int, (int, int) or None
        Rows/columns added at the bottom/right; each smaller than its stride.
    data_format : "channels_last" (default; NHWC), "channels_first" (NCHW) or None
        The kernel layout is the same for both.
    dilation_rate : int or (int, int)
        Strides > 1 together with dilation > 1 raise ValueError, as in Keras.
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    groups : int
        PyTorch's ``ConvTranspose2d`` groups, a fastlayers extension (Keras's layer has
        none; ``from_torch`` uses it): dividing filters and the input channels; group g of
        the input channels makes group g of the filters. Not on Conv3DTranspose.

    Weights: ``kernel`` (kh, kw, filters, in_channels) (Keras's order for this layer:
    filters first; (kh, kw, filters // groups, in_channels) with groups), then ``bias``
    (filters,) if use_bias.

    Call: ``layer(inputs)`` with inputs (N, H, W, C) (channels_last) or (N, C, H, W)
    (channels_first); returns float32 (N, OH, OW, filters) or (N, filters, OH, OW). On the
    C++ path it runs as one stride-1 conv2d per output phase, their kernels packed once.
    """

    config_keys = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "output_padding",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "groups",
        "seed",
    )
    call_weights = ("kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS
    supports_masking = False
    input_rank = 4

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        groups: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        rank = self.input_rank - 2  # spatial axes: 2, or 1 for Conv1DTranspose
        _conv_arguments(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                        activation, rank=rank)
        if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
            raise TypeError(f"{owner}: groups must be an int, got {type(groups).__name__}")
        if groups < 1 or self.filters % groups or (groups > 1 and rank > 2):
            raise ValueError(f"{owner}: groups must be >= 1 and divide filters ({self.filters})"
                             f"{'' if rank <= 2 else ', and 1 in 3D'}, got {groups}")
        self.groups = int(groups)
        if output_padding is not None:
            output_padding = V.int_tuple(output_padding, owner, "output_padding", n=rank,
                                         minimum=0)
            if any(p >= s for p, s in zip(output_padding, self.strides)):
                each = " in each dimension" if rank > 1 else ""
                raise ValueError(
                    f"{owner}: output_padding must be smaller than strides{each} (as in "
                    f"Keras); got output_padding {output_padding} and strides {self.strides}"
                )
        self.output_padding = output_padding
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)

    def _channel_axis(self) -> int:
        return 1 if self.data_format == "channels_first" else -1

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else input_shape[self._channel_axis()]
        specs = [
            weight_spec("kernel", (*self.kernel_size, self.filters // self.groups, c),
                        self.kernel_initializer)
        ]
        if self.use_bias:
            specs.append(weight_spec("bias", (self.filters,), self.bias_initializer))
        return specs

    def build(self, input_shape: Shape) -> None:
        """Create kernel (*kernel_size, filters, C) and bias (filters,)."""
        input_shape = _shape_tuple(input_shape)
        rank = self.input_rank
        if len(input_shape) != rank:
            raise ValueError(
                f"{self._owner()}: input_shape must have rank {rank}, got {input_shape}"
            )
        if input_shape[self._channel_axis()] is None:
            raise ValueError(
                f"{self._owner()}: the number of input channels must be known, got "
                f"input_shape {input_shape}"
            )
        if input_shape[self._channel_axis()] % self.groups:
            raise ValueError(f"{self._owner()}: groups ({self.groups}) must divide the input "
                             f"channels, got input_shape {input_shape}")
        self._create_weights(input_shape)

    def _input_shape_from_weights(self, shapes):
        rank = self.input_rank
        c = self._shape_of(shapes, 0, rank)[-1]  # kernel (*kernel_size, filters, C)
        if self.data_format == "channels_first":
            return (None, c) + (None,) * (rank - 2)
        return (None,) * (rank - 1) + (c,)

    def _check_and_geometry(self) -> tuple:
        """The check and geometry arguments of :func:`_image_conv_args`."""
        return (functools.partial(V.check_conv2d_transpose, groups=self.groups), self.strides,
                self.padding, self.output_padding, self.dilation_rate)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        check, *geometry = self._check_and_geometry()
        return _call_image_conv(self, inputs, check, F.run_conv2d_transpose, *geometry)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """Channels last: the phases' conv2d_into calls planned once
        (``functional.conv2d_transpose_runner``)."""
        if self.data_format == "channels_first" or self._packed is None:
            return None
        a, _ = _image_conv_args(self, inputs, *self._check_and_geometry())  # (no activation after)
        return F.conv2d_transpose_runner(a, self._packed)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        got = _symbolic_geometry(self, shape)
        if got is None:
            return None
        (kernel, _), nhwc = got
        geometry = _checks.conv2d_transpose_geometry(
            self._owner(), nhwc, kernel.shape, self.strides, self.padding, self.output_padding,
            self.dilation_rate,
        )
        return _symbolic_out(self, shape[0], geometry[3], kernel.shape[2] * self.groups)

    def _pack(self):  # one conv2d per output phase, the bias folded in
        return pack_conv2d_transpose(self._weight("kernel"), self._weight("bias"), self.strides,
                                     self.groups)

    def _config_changed(self, name: str) -> None:
        if name == "strides" and self.built:  # the phases depend on the strides
            self._on_weights_set()


class Conv1DTranspose(Conv2DTranspose):
    """Transposed 1D convolution (Keras ``Conv1DTranspose``): Conv2DTranspose on a height of 1
    (docs/semantics.md §25).

    Parameters as Conv2DTranspose, each an int or a 1-tuple: ``kernel_size``, ``strides``,
    ``output_padding``, ``dilation_rate``; data_format "channels_last" ((batch, steps,
    channels)) or "channels_first" ((batch, channels, steps)).

    Weights: ``kernel`` (kernel_size, filters, in_channels), then ``bias`` (filters,) if
    use_bias. Call: (N, T, C) -> float32 (N, T', filters) (or the channels_first layouts).
    """

    input_rank = 3

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        groups: int = 1,
        **kwargs: Any,
    ) -> None:  # Conv2DTranspose's, with Keras's 1D defaults
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer,
                         bias_initializer, groups, **kwargs)

    def _two_d(self):
        """(strides, output_padding, dilation) of the Conv2DTranspose of height 1."""
        op = None if self.output_padding is None else (0, *self.output_padding)
        return (1, *self.strides), op, (1, *self.dilation_rate)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        channels_first = self.data_format == "channels_first"
        act, after = _split_activation(self)
        x = V.array(inputs, owner, "inputs")
        what = "(batch, channels, steps)" if channels_first else "(batch, steps, channels)"
        V.rank(x, owner, "inputs", 3, what)
        kernel, bias = self._ready(x.shape)
        if channels_first:
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        if x.shape[2] != kernel.shape[2]:
            raise ValueError(
                f"{owner}: inputs have {x.shape[2]} channels, but the kernel {kernel.shape} "
                f"(kernel_size, filters, in_channels) was built for {kernel.shape[2]}"
            )
        strides, out_pad, dilation = self._two_d()
        a = V.check_conv2d_transpose(x[:, None], kernel[None], bias, strides, self.padding,
                                     out_pad, dilation, act, op=owner, x_name="inputs",
                                     groups=self.groups)
        y = _channels_back(F.run_conv2d_transpose(a, self._packed)[:, 0], channels_first)
        return _activate_after(y, after)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        act = V.activation(self.activation, self._owner())
        if len(shape) != 3 or callable(act) or act == "glu":
            return None
        kernel = self._ready((2 if shape[0] is None else shape[0], *shape[1:]))[0]
        cf = self.data_format == "channels_first"
        steps, channels = (shape[2], shape[1]) if cf else (shape[1], shape[2])
        if channels != kernel.shape[2]:
            return None
        op = None if self.output_padding is None else self.output_padding[0]
        length, _ = _checks.conv_transpose_length(steps, kernel.shape[0], self.strides[0],
                                                  self.dilation_rate[0], self.padding, op)
        if length < 1:
            return None
        f = kernel.shape[1] * self.groups
        return (shape[0], f, length) if cf else (shape[0], length, f)

    def _pack(self):
        return pack_conv2d_transpose(self._weight("kernel")[None], self._weight("bias"),
                                     self._two_d()[0], self.groups)


class Conv3DTranspose(Conv2DTranspose):
    """Transposed 3D convolution (Keras ``Conv3DTranspose``), the upsampling step of 3D
    U-Nets (docs/semantics.md §30).

    Parameters as Conv2DTranspose, with three entries per axis for ``kernel_size``,
    ``strides``, ``output_padding`` and ``dilation_rate``; ``data_format`` channels_last
    ((N, D, H, W, C)) or channels_first ((N, C, D, H, W)).

    Weights: ``kernel`` (kd, kh, kw, filters, in_channels), then ``bias`` (filters,) if
    use_bias.

    Call: inputs (N, D, H, W, C) -> float32 (N, OD, OH, OW, filters), each axis's length as
    Conv2DTranspose's rule gives it. Runs as one Conv2DTranspose of every depth slice per
    depth tap (C++ or NumPy), added into the output depths that tap reaches; then the bias
    and the activation. Where the taps span less than a stride, each output depth gets one
    tap at most: its slices are written with the bias instead (the same bits;
    docs/semantics.md §30).
    """

    input_rank = 5

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1, 1),
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1, 1),
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format,
                         dilation_rate, activation, use_bias, kernel_initializer,
                         bias_initializer, **kwargs)

    def _depth(self, d: int, kd: int) -> tuple[int, int]:
        """(output depth, offset) of the depth axis (_checks.conv_transpose_length)."""
        op = None if self.output_padding is None else self.output_padding[0]
        return _checks.conv_transpose_length(d, kd, self.strides[0], self.dilation_rate[0],
                                             self.padding, op)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        channels_first = self.data_format == "channels_first"
        act, after = _split_activation(self)
        x = V.array(inputs, owner, "inputs")
        V.rank(x, owner, "inputs", 5, "(N, C, D, H, W)" if channels_first else
               "(batch, depth, height, width, channels)")
        kernel, bias = self._ready(x.shape)
        if channels_first:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        n, d, h, w, c = x.shape
        kd, f = kernel.shape[0], kernel.shape[3]
        if 0 in (d, h, w, c):
            raise ValueError(f"{owner}: inputs has an empty spatial or channel axis, shape "
                             f"{x.shape} (channels last)")
        od, front = self._depth(d, kd)
        if od < 1:
            raise ValueError(f"{owner}: the output would have no depth for an input depth {d}")
        op2 = None if self.output_padding is None else self.output_padding[1:]
        a = V.check_conv2d_transpose(x.reshape(n * d, h, w, c), kernel[0], None,
                                     self.strides[1:], self.padding, op2,
                                     self.dilation_rate[1:], None, op=owner, x_name="inputs")
        oh, ow = a.out_hw
        _checks.elements(n * od * oh * ow * f, owner, "the output")
        sd, dd = self.strides[0], self.dilation_rate[0]
        # Taps within one stride (a 2x2x2 kernel with strides 2, say): each output depth gets
        # one tap at most, so a tap's slices are written (with the bias) instead of added
        # into zeros. The same bits: (0 + s) + b is s + (b + 0) for every s and b, signed
        # zeros included. One thread, Xeon: B 2, (4, 14, 14, 128) -> 64, 2x2x2, strides 2,
        # 2.06 -> 1.79-1.92 ms; (1, 8, 28, 28, 64) -> 32 3.35 -> 2.84-2.88 ms.
        disjoint = dd * (kd - 1) < sd
        b0 = np.zeros(f, np.float32) if bias is None else bias + np.float32(0)
        with V.allocating(owner, "the output"):
            y = np.empty((n, od, oh, ow, f), np.float32) if disjoint else \
                np.zeros((n, od, oh, ow, f), np.float32)
            covered = np.zeros(od, bool)
            packed = self._packed or [None] * kd
            for t in range(kd):  # input depth i, tap t -> output depth i * sd + t * dd - front
                i0 = max(0, -(-(front - t * dd) // sd))
                o0 = i0 * sd + t * dd - front
                count = min(d - i0, (od - 1 - o0) // sd + 1) if o0 < od else 0
                if count <= 0:
                    continue
                slices = F.run_conv2d_transpose(a._replace(kernel=kernel[t]), packed[t])
                part = slices.reshape(n, d, oh, ow, f)[:, i0:i0 + count]
                if disjoint:
                    np.add(part, b0, out=y[:, o0::sd][:, :count])
                    covered[o0::sd][:count] = True
                else:
                    y[:, o0::sd][:, :count] += part
        if disjoint:
            y[:, ~covered] = b0  # depths no tap reaches: 0 + b
        elif bias is not None:
            y += bias
        y = _activate_after(y, act)
        return _activate_after(_channels_back(y, channels_first), after)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        got = _volume_geometry(self, shape, lambda k: k.shape[4])
        if got is None:
            return None
        kernel, spatial = got
        ops = self.output_padding or (None, None, None)
        out = tuple(_checks.conv_transpose_length(size, k, s, dl, self.padding, op)[0]
                    for size, k, s, dl, op in zip(spatial, kernel.shape[:3], self.strides,
                                                  self.dilation_rate, ops))
        if min(out) < 1:
            return None  # the zero run says what is wrong
        return _symbolic_out(self, shape[0], out, kernel.shape[3])

    def _pack(self):  # per depth tap, the Conv2DTranspose of its (kh, kw, F, C) kernel
        kernel = self._weight("kernel")
        return [pack_conv2d_transpose(kernel[t], None, self.strides[1:])
                for t in range(kernel.shape[0])]
