"""Convolution layers: Conv2D."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .._cpp import pack_conv2d
from .base import (
    WEIGHT_TRAINING_ARGS,
    Layer,
    Shape,
    _positive_int,
    _shape_tuple,
)
from .core import _data_format
from .initializers import weight_spec

# ------------------------------------------------------------------------- Conv2D


class Conv2D(Layer):
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
        owner = type(self).__name__
        self.filters = _positive_int(filters, owner, "filters")
        self.kernel_size = V.int_tuple(kernel_size, owner, "kernel_size")
        self.strides = V.int_tuple(strides, owner, "strides")
        self.dilation_rate = V.int_tuple(dilation_rate, owner, "dilation_rate")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(
                f"{owner}: padding must be 'valid' or 'same', got {padding!r} "
                "('causal' is for Conv1D only)"
            )
        self.padding = padding.lower()
        self.data_format = _data_format(data_format, owner)
        self.groups = _positive_int(groups, owner, "groups")
        if self.filters % self.groups:
            raise ValueError(
                f"{owner}: filters ({self.filters}) must be divisible by groups ({self.groups})"
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: strides > 1 together with dilation_rate > 1 is not allowed (as in "
                f"Keras); got strides {self.strides} and dilation_rate {self.dilation_rate}"
            )
        V.activation(activation, owner)
        self.activation = activation
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)

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

    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, 4)[2] * self.groups
        return (
            (None, c, None, None) if self.data_format == "channels_first" else (None, None, None, c)
        )

    def build(self, input_shape: Shape) -> None:
        """Create kernel (kh, kw, C // groups, filters) and bias (filters,)."""
        input_shape = _shape_tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner()}: input_shape must have rank 4, got {input_shape}")
        c = input_shape[self._channel_axis()]
        if c is None or c % self.groups:
            raise ValueError(
                f"{self._owner()}: the number of input channels ({c}) must be known and "
                f"divisible by groups ({self.groups})"
            )
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        channels_first = self.data_format == "channels_first"
        a = V.check_conv2d(
            inputs,
            None,
            None,
            self.strides,
            self.padding,
            self.dilation_rate,
            self.groups,
            self.activation,
            op=self._owner(),
            x_name="inputs",
            channels_first=channels_first,
            build=self._ready,
        )
        y = F.run_conv2d(a, self._packed)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if channels_first else y

    def _pack(self):  # one GEMM operand per group, the bias folded in
        return pack_conv2d(self._weight("kernel"), self._weight("bias"), self.groups)
