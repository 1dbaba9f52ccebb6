"""Convolutional recurrent layers: ConvLSTM1D and ConvLSTM2D (Keras's).

An LSTM whose input and recurrent transformations are convolutions: at each step, for the
gate blocks [i | f | c | o] of the filters axis,

    z = conv(x_t, kernel, strides, padding, dilation) + bias + conv(h, recurrent_kernel, "same")
    i, f, o = recurrent_activation(z_i, z_f, z_o)
    c = f * c + i * activation(z_c)
    h = o * activation(c)

(Keras's ``ConvLSTMCell``; docs/semantics.md §32). The input convolution of every step runs
as one conv2d over the batch and time axes together (the steps do not depend on each other
there); the recurrent one step by step. Both run on ``functional.run_conv2d`` with kernels
packed once, so on the C++ path when the core is there; the gate arithmetic is NumPy's.
ConvLSTM1D is ConvLSTM2D over images of height 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import activations as _activations
from .. import functional as F
from .._cpp import pack_conv2d
from .._numpy import activations as _np_act
from .base import F32, WEIGHT_TRAINING_ARGS, Layer, Shape, _bool, _shape_tuple
from .conv import _conv_arguments
from .initializers import check_initializer, initial_value, weight_spec


def _activation_fn(act: Any) -> Any:
    """An elementwise activation as a function of an array: the named ones on the kernels of
    ``fastlayers.activations``, a callable checked as a layer's activation is."""
    if callable(act):
        return lambda x: _np_act.apply(act, x)
    return _activations.get(act)


class _ConvLSTM(Layer):
    """What ConvLSTM1D and ConvLSTM2D share (``rank`` spatial axes)."""

    _sublayer_variables = True  # Keras's cell (made without the layer's trainable)
    rank = 2
    config_keys = (
        "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
        "activation", "recurrent_activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "unit_forget_bias", "seed",
        "return_sequences", "return_state", "go_backwards", "zero_output_for_mask",
    )
    ignored_args = WEIGHT_TRAINING_ARGS + (
        "recurrent_regularizer", "recurrent_constraint", "dropout", "recurrent_dropout",
        "unroll",
    )
    unsupported_args = {"stateful": False}
    supports_masking = True  # a (batch, timesteps) mask, as Keras's RNN takes

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        _conv_arguments(self, filters, kernel_size, strides, padding, data_format,
                        dilation_rate, activation, rank=self.rank)
        V.activation(activation, owner, "activation", elementwise=True)
        V.activation(recurrent_activation, owner, "recurrent_activation", elementwise=True)
        self.recurrent_activation = recurrent_activation
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)
        self.recurrent_initializer = check_initializer(
            recurrent_initializer, owner, "recurrent_initializer")
        self.unit_forget_bias = _bool(unit_forget_bias, owner, "unit_forget_bias")
        self.return_sequences = _bool(return_sequences, owner, "return_sequences")
        self.return_state = _bool(return_state, owner, "return_state")
        self.go_backwards = _bool(go_backwards, owner, "go_backwards")
        self.zero_output_for_mask = _bool(zero_output_for_mask, owner, "zero_output_for_mask")

    # ---- weights ----------------------------------------------------------------------
    def _channel_axis(self) -> int:
        return 2 if self.data_format == "channels_first" else -1

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else input_shape[self._channel_axis()]
        f = self.filters
        specs = [
            weight_spec("kernel", (*self.kernel_size, c, 4 * f), self.kernel_initializer),
            weight_spec("recurrent_kernel", (*self.kernel_size, f, 4 * f),
                        self.recurrent_initializer),
        ]
        if self.use_bias:
            def make(rng):
                if not self.unit_forget_bias:
                    return initial_value(self.bias_initializer, (4 * f,), rng)
                return np.concatenate([initial_value(self.bias_initializer, (f,), rng),
                                       np.ones(f, F32),
                                       initial_value(self.bias_initializer, (2 * f,), rng)])

            specs.append(("bias", (4 * f,), make))
        return specs

    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, self.rank + 2)[self.rank]
        shape = [None] * (self.rank + 3)
        shape[self._channel_axis()] = c
        return tuple(shape)

    def build(self, input_shape: Shape) -> None:
        """Create kernel (*kernel_size, C, 4 filters), recurrent_kernel (*kernel_size,
        filters, 4 filters) and bias (4 filters,), for inputs (batch, timesteps, *spatial, C)
        (channels_last) or (batch, timesteps, C, *spatial)."""
        input_shape = _shape_tuple(input_shape)
        if len(input_shape) != self.rank + 3 or input_shape[self._channel_axis()] is None:
            raise ValueError(
                f"{self._owner()}: build needs a shape of rank {self.rank + 3} (batch, "
                f"timesteps, {self.rank} spatial axes and channels) with known channels, got "
                f"{input_shape}")
        self._create_weights(input_shape)

    def _kernels_2d(self) -> tuple[np.ndarray, np.ndarray]:
        """kernel and recurrent_kernel as conv2d kernels (kh, kw, C, 4F)."""
        k, rk = self._weight("kernel"), self._weight("recurrent_kernel")
        if self.rank == 1:
            k, rk = k[None], rk[None]
        return k, rk

    def _pack(self):  # (the input convolution's kernel and bias, the recurrent kernel)
        kernel, recurrent = self._kernels_2d()
        return pack_conv2d(kernel, self._weight("bias"), 1), pack_conv2d(recurrent, None, 1)

    # ---- the call -----------------------------------------------------------------------
    def _geometry(self) -> tuple:
        if self.rank == 1:
            return ((1, self.strides[0]), (1, self.dilation_rate[0]))
        return self.strides, self.dilation_rate

    def _to_nhwc(self, a: np.ndarray, batch_time: int) -> np.ndarray:
        """(batch[, time], *spatial, C) in the layer's data format -> channels-last images,
        with a height of 1 for ConvLSTM1D."""
        if self.data_format == "channels_first":
            a = np.moveaxis(a, batch_time, -1)
        return a[..., None, :, :] if self.rank == 1 else a

    def _from_nhwc(self, a: np.ndarray, batch_time: int) -> np.ndarray:
        if self.rank == 1:
            a = a[..., 0, :, :]
        if self.data_format == "channels_first":
            a = np.moveaxis(a, -1, batch_time)
        return np.ascontiguousarray(a)

    def call(self, inputs: Any, initial_state: Any = None, mask: Any = None,
             training: Any = None):
        """Run over ``inputs`` (batch, timesteps, *spatial, channels) (channels_first:
        (batch, timesteps, channels, *spatial)).

        initial_state: [h0, c0], each shaped as one step of the output; zeros by default.
        mask: bool (batch, timesteps); a masked step keeps the states and repeats the
        previous output (zeros before the first; zeros with zero_output_for_mask), as Keras's
        RNN. Returns the output
        (batch, [timesteps,] *out_spatial, filters) (channels_first: filters before the
        spatial axes), or (output, h, c) if return_state.
        """
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        if x.ndim != self.rank + 3:
            raise ValueError(f"{owner}: inputs must have rank {self.rank + 3} (batch, "
                             f"timesteps, {self.rank} spatial axes, channels), got shape "
                             f"{x.shape}")
        if not self.built:
            self.build(x.shape)
        c_in = self._weight("kernel").shape[self.rank]
        if x.shape[self._channel_axis()] != c_in:
            raise ValueError(f"{owner}: inputs of shape {x.shape} have "
                             f"{x.shape[self._channel_axis()]} channels, the kernel {c_in}")
        n, t = x.shape[:2]
        if t == 0:
            raise ValueError(f"{owner}: inputs with no timesteps, shape {x.shape}")
        images = self._to_nhwc(x, 2)
        strides, dilation = self._geometry()
        kernel, recurrent = self._kernels_2d()
        a = V.check_conv2d(images.reshape(n * t, *images.shape[2:]), kernel,
                           self._weight("bias"), strides, self.padding, dilation, 1, None,
                           op=owner, x_name="inputs")
        packed_in, packed_rec = self._packed if self._packed is not None else (None, None)
        z_in = F.run_conv2d(a, packed_in)
        z_in = z_in.reshape(n, t, *z_in.shape[1:])
        step_shape = z_in.shape[:1] + z_in.shape[2:-1] + (self.filters,)
        h, c = self._initial(initial_state, step_shape)
        m = None if mask is None else self._mask(mask, n, t)
        act, ract = (_activation_fn(self.activation),
                     _activation_fn(self.recurrent_activation))
        f = self.filters
        order = range(t - 1, -1, -1) if self.go_backwards else range(t)
        outputs = []
        out = np.zeros(step_shape, F32)
        for step in order:
            r = V.check_conv2d(h, recurrent, None, 1, "same", 1, 1, None, op=owner,
                               x_name="the recurrent state")
            z = z_in[:, step] + F.run_conv2d(r, packed_rec)
            i, fg, o = ract(z[..., :f]), ract(z[..., f:2 * f]), ract(z[..., 3 * f:])
            c_new = fg * c + i * act(z[..., 2 * f:3 * f])
            h_new = o * act(c_new)
            if m is None:
                h, c, out = h_new, c_new, h_new
            else:
                keep = m[:, step].reshape((n,) + (1,) * (h.ndim - 1))
                h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
                out = np.where(keep, h_new, 0.0 if self.zero_output_for_mask else out)
            if self.return_sequences:
                outputs.append(out)
        y = np.stack(outputs, axis=1) if self.return_sequences else out
        y = self._from_nhwc(y.astype(F32, copy=False), 2 if self.return_sequences else 1)
        if not self.return_state:
            return y
        return y, self._from_nhwc(h, 1), self._from_nhwc(c, 1)

    def _initial(self, initial_state: Any, step_shape: tuple) -> tuple:
        if initial_state is None:
            return np.zeros(step_shape, F32), np.zeros(step_shape, F32)
        owner = self._owner()
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
            raise ValueError(f"{owner}: initial_state must be [h, c], got "
                             f"{type(initial_state).__name__}")
        states = []
        for s, name in zip(initial_state, ("h", "c")):
            s = self._to_nhwc(V.array(s, owner, f"initial_state {name}"), 1)
            if s.shape != step_shape:
                want = self._from_nhwc(np.empty(step_shape, F32), 1).shape
                raise ValueError(f"{owner}: initial_state {name} must have the shape of one "
                                 f"output step, {want}, got "
                                 f"{self._from_nhwc(s, 1).shape}")
            states.append(np.ascontiguousarray(s, dtype=F32))
        return states[0], states[1]

    def _mask(self, mask: Any, n: int, t: int) -> np.ndarray:
        m = np.asarray(mask)
        if m.dtype != np.bool_ or m.shape != (n, t):
            raise ValueError(f"{self._owner()}: mask must be bool (batch, timesteps) = "
                             f"{(n, t)}, got {m.dtype} {m.shape}")
        return m

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """As Keras's RNN: the output keeps the mask if return_sequences, else has none."""
        out = mask if self.return_sequences else None
        return [out, None, None] if self.return_state else out


class ConvLSTM2D(_ConvLSTM):
    """2D convolutional LSTM (Keras ``ConvLSTM2D``); gate blocks ordered [i | f | c | o].

    Parameters
    ----------
    filters : int
    kernel_size, strides, dilation_rate : int or (int, int)
        Of the input convolution (the recurrent one has stride 1 and "same" padding).
    padding : "valid" or "same"
    data_format : "channels_last" (default) or "channels_first"
    activation, recurrent_activation : str or callable (elementwise)
        Defaults "tanh" and "sigmoid".
    use_bias, unit_forget_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable
    return_sequences, return_state, go_backwards, zero_output_for_mask : bool
        As for LSTM (the output sequence of go_backwards in processing order).
    stateful : must be False
    dropout, recurrent_dropout, unroll, the regularizers and constraints
        Accepted and ignored (no effect on inference).

    Weights: ``kernel`` (kh, kw, C, 4 filters), ``recurrent_kernel`` (kh, kw, filters,
    4 filters), ``bias`` (4 filters,).

    Call: ``layer(inputs, initial_state=None, mask=None)`` with inputs (N, T, H, W, C);
    returns float32 (N, [T,] OH, OW, filters), or (output, h, c) if return_state.
    """

    rank = 2


class ConvLSTM1D(_ConvLSTM):
    """1D convolutional LSTM (Keras ``ConvLSTM1D``): ConvLSTM2D over images of height 1.

    Inputs (N, T, L, C) (channels_first: (N, T, C, L)); kernel (k, C, 4 filters),
    recurrent_kernel (k, filters, 4 filters), bias (4 filters,). Parameters as ConvLSTM2D's,
    with single integers for kernel_size, strides and dilation_rate.
    """

    rank = 1
