"""Core layers: Dense, Flatten, Softmax."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend
from .. import _validation as V
from .. import functional as F
from .._cpp import activations as _cpp_act
from .._cpp import pack_dense
from .._numpy import activations as _np_act
from .base import (
    WEIGHT_TRAINING_ARGS,
    Layer,
    Shape,
    _positive_int,
)
from .initializers import weight_spec

# -------------------------------------------------------------------------- Dense


class Dense(Layer):
    """Fully connected layer: ``activation(inputs @ kernel + bias)`` (Keras ``Dense``).

    Parameters
    ----------
    units : int
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform" and "zeros".
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    lora_rank, lora_alpha, quantization_config
        Must be None (LoRA and quantized Dense are not supported).

    Weights: ``kernel`` (input_dim, units), then ``bias`` (units,) if use_bias.

    Call: ``layer(inputs)`` with inputs (batch, ..., input_dim), rank >= 2; returns
    float32 (batch, ..., units).
    """

    config_keys = (
        "units",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
        "seed",
    )
    call_weights = ("kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS
    unsupported_args = {"lora_rank": None, "lora_alpha": None, "quantization_config": None}
    supports_masking = True  # as Keras's Dense: the mask passes through

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = _positive_int(units, owner, "units")
        V.activation(activation, owner)
        self.activation = activation
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)

    def _weight_specs(self, input_shape):
        d = None if input_shape is None else input_shape[-1]
        specs = [weight_spec("kernel", (d, self.units), self.kernel_initializer)]
        if self.use_bias:
            specs.append(weight_spec("bias", (self.units,), self.bias_initializer))
        return specs

    def _input_shape_from_weights(self, shapes):
        return (None, self._shape_of(shapes, 0, 2)[0])

    def build(self, input_shape: Shape) -> None:
        """Create kernel (input_shape[-1], units) and bias (units,)."""
        self._create_weights_for_last_dim(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        a = V.check_dense(
            inputs,
            None,
            None,
            self.activation,
            op=self._owner(),
            x_name="inputs",
            build=self._ready,
        )
        return F.run_dense(a, self._packed)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        act = V.activation(self.activation, self._owner())
        if callable(act) or act == "glu":
            return None  # may change the shape: the zero run finds it
        kernel = self._ready((2 if shape[0] is None else shape[0], *shape[1:]))[0]
        if kernel.shape[0] != shape[-1]:
            return None
        return (*shape[:-1], kernel.shape[1])

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        if self._packed is None:
            return None
        a = V.check_dense(inputs, None, None, self.activation, op=self._owner(),
                          x_name="inputs", build=self._ready)
        return F.dense_runner(a, self._packed)

    def _pack(self):  # the kernel with the bias folded in, for the C++ GEMM
        return pack_dense(self._weight("kernel"), self._weight("bias"))


# ------------------------------------------------------------------------ Flatten


def _data_format(value: Any, owner: str) -> str:
    if value is None:
        return "channels_last"  # Keras reads ~/.keras/keras.json; fastlayers does not
    if not isinstance(value, str) or value.lower() not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{owner}: data_format must be 'channels_last', 'channels_first' or None, got {value!r}"
        )
    return value.lower()


class Flatten(Layer):
    """Flatten all but the batch axis (Keras ``Flatten``).

    Parameters
    ----------
    data_format : "channels_last" (default), "channels_first" or None
        With channels_first and rank > 2 the channel axis (1) is first moved to the
        end, so the flattened order is always the channels-last one.

    No weights. Call: ``layer(inputs)`` with inputs (batch, d1, ..., dn) -> float32
    (batch, d1 * ... * dn); a 1-D input (batch,) gives (batch, 1), and a 2-D input is
    returned as it is (a copy).

    Masks: Keras 3's Flatten does not support masking (an implicit mask stops here), so
    ``compute_mask`` returns None.
    """

    config_keys = ("data_format",)
    supports_masking = False  # merge topic (issue 12): as Keras 3

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format, type(self).__name__)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        channels_first = self.data_format == "channels_first"
        x = V.check_flatten(
            inputs,
            op=self._owner(),
            x_name="inputs",
            channels_first=channels_first,
            build=self._ready,
        )
        return F.run_flatten(x, inputs)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        if self.data_format == "channels_first" and np.ndim(inputs) > 2:
            return None
        shape = F.run_flatten(inputs[:0], inputs[:0]).shape[1:]  # the general rule, once

        def run(x: np.ndarray) -> np.ndarray:
            return x.reshape((x.shape[0],) + shape)

        run.returns_view = True  # type: ignore[attr-defined]  # see models/shape_plan.py
        return run


# ------------------------------------------------------------------------ Softmax


class Softmax(Layer):
    """Softmax (Keras ``Softmax`` layer).

    Parameters
    ----------
    axis : int or tuple of ints
        Several axes normalize over their joint extent.

    No weights. Call: ``layer(inputs, mask=None)``; mask broadcasts to inputs, True
    (or > 0.5) keeps an entry, masked entries are 0 in the output (a fully masked
    slice is all zeros). Returns float32 of the inputs' shape.
    """

    config_keys = ("axis",)
    supports_masking = True  # Keras: the mask passes through (and call uses it)

    def __init__(self, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, list):
            axis = tuple(axis)
        self.axis = axis

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        return F.run_softmax(V.check_softmax(inputs, self.axis, mask, build=self._ready))

    def _runner(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): fl.softmax's runner (the last axis,
        no mask, the C++ path), else None."""
        return F._softmax_runner(inputs, self.axis, mask)


class Activation(Layer):
    """Keras ``Activation``: applies an activation (a Keras name or a callable).

    Axis activations (softmax, log_softmax, ...) act on the last axis, as in Keras. The
    C++ path serves softmax and the names in the core's elementwise activation table;
    log_softmax, sparsemax and glu run in NumPy under every backend.
    """

    supports_masking = True  # as Keras's Activation: the mask passes through
    config_keys = ("activation",)

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = V.activation(activation, type(self).__name__)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        if not self.built:
            self.build(x.shape)
        act = self.activation
        if callable(act):  # its result keeps the inputs' shape, as Keras's output shape says
            return _np_act.apply(act, x)
        if act == "softmax":  # the softmax op, which C++ serves too
            V.min_rank(x, owner, "inputs", 1)
            return F.softmax(x, axis=-1)
        if act in _np_act.ROW_ACTIVATIONS:
            # log_softmax, sparsemax, glu: NumPy under every backend, as a layer with no C++
            # kernel runs (docs/architecture.md §4) and as Dense's epilogue runs them (under
            # `cpp` this layer raised where Dense(activation="log_softmax") ran; an audit)
            V.min_rank(x, owner, "inputs", 1)
            return _np_act.ACTIVATIONS[act](x, axis=-1)
        reason = None if _cpp_act.fused_id(act) is not None else (
            f"activation {act!r} is not in the core's table"
        )
        if _backend.resolve(owner, reason) == "cpp":
            return _cpp_act.activate(x, act)
        return _np_act.ACTIVATIONS[act](x)
