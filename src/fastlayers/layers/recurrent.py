"""Recurrent layers: LSTM, GRU, SimpleRNN, the Bidirectional wrapper, and StackedRNN (Keras's
RNN of StackedRNNCells)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _masking
from .. import _validation as V
from .. import functional as F
from .._cpp import pack_gru, pack_lstm, pack_simple_rnn
from .base import (
    F32,
    WEIGHT_TRAINING_ARGS,
    Layer,
    Shape,
    _bool,
    _positive_int,
    _shape_tuple,
    deserialize_layer,
)
from .initializers import check_initializer, initial_value, weight_spec


class _RNN(Layer):
    """What LSTM, GRU and SimpleRNN share: the constructor, weights, the call, masks,
    stateful states.

    The arguments up to bias_initializer are positional, as in Keras; the rest are
    keyword-only here (each subclass adds its own: LSTM unit_forget_bias, GRU reset_after;
    SimpleRNN has no recurrent_activation).
    """

    _gates = 0  # column blocks of kernel: 4 for LSTM, 3 for GRU, 1 for SimpleRNN
    _num_states = 0  # 2 ([h, c]) for LSTM, 1 ([h]) for GRU and SimpleRNN
    config_keys = (
        "units",
        "activation",
        "recurrent_activation",
        "use_bias",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "seed",
        "return_sequences",
        "return_state",
        "go_backwards",
        "stateful",
        "zero_output_for_mask",
    )
    call_weights = ("kernel", "recurrent_kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS + (
        "recurrent_regularizer",
        "recurrent_constraint",
        "dropout",
        "recurrent_dropout",
        "unroll",
        "use_cudnn",
    )
    #: The layer's attributes its check_<op> takes as the op's keywords.
    call_options = ("return_sequences", "go_backwards", "activation", "recurrent_activation")
    _check = staticmethod(V.check_lstm)
    #: Keras's RNN consumes the mask and passes it on with the sequences (compute_mask).
    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = _positive_int(units, owner, "units")
        V.activation(activation, owner, "activation", elementwise=True)
        if self._gates > 1:
            V.activation(recurrent_activation, owner, "recurrent_activation", elementwise=True)
            self.recurrent_activation = recurrent_activation
        self.activation = activation
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)
        self.recurrent_initializer = check_initializer(
            recurrent_initializer, owner, "recurrent_initializer"
        )
        self.return_sequences = _bool(return_sequences, owner, "return_sequences")
        self.return_state = _bool(return_state, owner, "return_state")
        self.go_backwards = _bool(go_backwards, owner, "go_backwards")
        self.stateful = _bool(stateful, owner, "stateful")
        self.zero_output_for_mask = _bool(zero_output_for_mask, owner, "zero_output_for_mask")
        self.states: list[np.ndarray] | None = None

    def _bias_spec(self):  # pragma: no cover - defined by each cell
        raise NotImplementedError

    def _weight_specs(self, input_shape):
        d = None if input_shape is None else input_shape[-1]
        u, g = self.units, self._gates
        specs = [
            weight_spec("kernel", (d, g * u), self.kernel_initializer),
            weight_spec("recurrent_kernel", (u, g * u), self.recurrent_initializer),
        ]
        if self.use_bias:
            specs.append(self._bias_spec())
        return specs

    def _input_shape_from_weights(self, shapes):
        return (None, None, self._shape_of(shapes, 0, 2)[0])

    def build(self, sequences_shape: Shape) -> None:
        """Create kernel (features, g * units), recurrent_kernel (units, g * units) and bias."""
        sequences_shape = _shape_tuple(sequences_shape)
        if len(sequences_shape) != 3 or sequences_shape[-1] is None:
            raise ValueError(
                f"{self._owner()}: build needs a shape (batch, timesteps, features) with known "
                f"features, got {sequences_shape}"
            )
        self._create_weights(sequences_shape)

    def _kept_states(self, a):
        """The checked arguments ``a`` with the states a stateful layer kept, if it has any."""
        batch = a.x.shape[0]
        if self.states is None:
            self.states = [np.zeros((batch, self.units), F32) for _ in range(self._num_states)]
        elif self.states[0].shape[0] != batch:
            raise ValueError(
                f"{self._owner()}: the layer is stateful with batch size "
                f"{self.states[0].shape[0]}, got sequences of batch size {batch}"
            )
        return a._replace(initial_state=tuple(self.states))

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: Any = None,
    ):
        """Run over ``sequences`` (batch, timesteps, features).

        initial_state: LSTM [h0, c0], GRU and SimpleRNN h0 or [h0], each (batch, units);
        zeros by default, or the kept states of a stateful layer. mask: bool (batch, timesteps).
        Returns output, or (output, *states) if return_state.
        """
        a = self._checked(sequences, initial_state, mask)
        if self.stateful:
            if initial_state is None:
                a = self._kept_states(a)
            else:
                self._kept_states(a)  # the batch size check
        out, *states = F.run_recurrent(a, self._packed)
        if self.zero_output_for_mask and a.mask is not None:
            # Masked steps output 0 instead of repeating the previous output. The output
            # is in processing order, so with go_backwards the mask is reversed too.
            m = a.mask[:, ::-1] if self.go_backwards else a.mask
            if self.return_sequences:
                out = np.where(m[:, :, None], out, F32(0))
            else:
                out = np.where(m[:, -1:], out, F32(0))
        if self.stateful:
            self.states = [np.array(s, dtype=F32, copy=True) for s in states]
        return (out, *states) if self.return_state else out

    def _checked(self, sequences: Any, initial_state: Any, mask: Any) -> V.RecurrentArgs:
        return self._check(
            sequences,
            None,
            None,
            None,
            initial_state=initial_state,
            mask=mask,
            return_state=True,
            **{name: getattr(self, name) for name in self.call_options},
            op=self._owner(),
            x_name="sequences",
            build=self._ready,
        )

    def _runner(self, sequences: Any, initial_state: Any = None, mask: Any = None,
                training: Any = None) -> Any:
        if initial_state is not None or mask is not None or self.stateful:
            return None
        a = self._checked(sequences, None, None)
        return F.recurrent_runner(a, self._packed, self.return_state)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """As Keras's RNN: the output keeps the (first) mask if return_sequences, else has
        none; the states have none."""
        mask = _masking.flatten(mask)[0]
        out = mask if self.return_sequences else None
        return [out] + [None] * self._num_states if self.return_state else out

    def reset_states(self) -> None:
        """Set the kept states of a stateful layer to zeros (keeping the batch size)."""
        if self.states is not None:
            self.states = [np.zeros_like(s) for s in self.states]

    reset_state = reset_states


def _rnn_signature(name: str, default: Any) -> inspect.Signature:
    """_RNN.__init__'s signature with one more keyword-only parameter (LSTM's and GRU's
    constructors take their own by keyword and pass the rest on)."""
    sig = inspect.signature(_RNN.__init__)
    params = list(sig.parameters.values())
    extra = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation="bool")
    return sig.replace(parameters=params[:-1] + [extra] + params[-1:])


class LSTM(_RNN):
    """Long short-term memory layer (Keras ``LSTM``); gate blocks ordered [i | f | c | o].

    Parameters
    ----------
    units : int
    activation, recurrent_activation : str or callable (elementwise)
        Defaults "tanh" and "sigmoid".
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform", "orthogonal", "zeros".
    unit_forget_bias : bool
        Initialize the forget block of the bias to ones (only the initial value).
    seed : int, optional
        Seeds the initializers (in Keras it seeds dropout).
    return_sequences : bool
        Return all outputs (batch, timesteps, units) instead of the last (batch, units).
    return_state : bool
        Return (output, h, c).
    go_backwards : bool
        Consume the input from the last step; the output sequence stays in processing
        order.
    stateful : bool
        Keep the final [h, c] as the initial state of the next call (fixed batch size);
        :meth:`reset_states` zeroes them.
    zero_output_for_mask : bool
        Masked steps output 0 instead of repeating the previous output (Bidirectional
        sets this when returning sequences).
    dropout, recurrent_dropout, unroll, use_cudnn, and the regularizers and constraints
        Accepted and ignored (no effect on inference).

    Weights: ``kernel`` (features, 4u), ``recurrent_kernel`` (u, 4u), ``bias`` (4u,).

    Call: ``layer(sequences, initial_state=None, mask=None)``; see :meth:`_RNN.call`.
    """

    _gates = 4
    _num_states = 2
    config_keys = _RNN.config_keys + ("unit_forget_bias",)

    def __init__(self, *args: Any, unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit_forget_bias = _bool(unit_forget_bias, type(self).__name__, "unit_forget_bias")

    __init__.__signature__ = _rnn_signature("unit_forget_bias", True)  # what help() shows

    def _bias_spec(self):
        u = self.units

        def make(rng):
            if not self.unit_forget_bias:
                return initial_value(self.bias_initializer, (4 * u,), rng)
            return np.concatenate(
                [
                    initial_value(self.bias_initializer, (u,), rng),
                    np.ones(u, F32),
                    initial_value(self.bias_initializer, (2 * u,), rng),
                ]
            )

        return ("bias", (4 * u,), make)

    def _pack(self):  # kernel (bias folded in) and recurrent kernel as gate panels
        return pack_lstm(*self._call_weight_values)


class GRU(_RNN):
    """Gated recurrent unit layer (Keras ``GRU``); gate blocks ordered [z | r | h].

    Parameters
    ----------
    units, activation, recurrent_activation, use_bias, kernel_initializer,
    recurrent_initializer, bias_initializer, seed, return_sequences, go_backwards,
    stateful, zero_output_for_mask
        As for :class:`LSTM`.
    return_state : bool
        Return (output, h).
    reset_after : bool
        True (the default, and PyTorch's form): the reset gate multiplies
        ``h @ R_h + b_rec_h``; the bias is then (2, 3u): input bias, recurrent bias.
    dropout, recurrent_dropout, unroll, use_cudnn, and the regularizers and constraints
        Accepted and ignored.

    Weights: ``kernel`` (features, 3u), ``recurrent_kernel`` (u, 3u), ``bias`` (2, 3u)
    if reset_after else (3u,).

    Call: ``layer(sequences, initial_state=None, mask=None)``; initial_state is h0 or
    [h0], each (batch, u).
    """

    _gates = 3
    _num_states = 1
    config_keys = _RNN.config_keys + ("reset_after",)
    call_options = _RNN.call_options + ("reset_after",)
    _check = staticmethod(V.check_gru)

    def __init__(self, *args: Any, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset_after = _bool(reset_after, type(self).__name__, "reset_after")

    __init__.__signature__ = _rnn_signature("reset_after", True)  # what help() shows

    def _bias_spec(self):
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return ("bias", shape, lambda rng: initial_value(self.bias_initializer, shape, rng))

    def _pack(self):  # the kernels (biases folded in) as gate panels
        return pack_gru(*self._call_weight_values, self.reset_after)


class SimpleRNN(_RNN):
    """Fully connected recurrence (Keras ``SimpleRNN``; PyTorch ``nn.RNN``):
    ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    Parameters
    ----------
    units : int
    activation : str or callable (elementwise)
        Default "tanh"; None is linear.
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform", "orthogonal", "zeros".
    seed, return_sequences, go_backwards, stateful, zero_output_for_mask
        As for :class:`LSTM`.
    return_state : bool
        Return (output, h).
    dropout, recurrent_dropout, unroll, and the regularizers and constraints
        Accepted and ignored.

    Weights: ``kernel`` (features, u), ``recurrent_kernel`` (u, u), ``bias`` (u,).

    Call: ``layer(sequences, initial_state=None, mask=None)``; initial_state is h0 or
    [h0], each (batch, u). The C++ path packs the kernels once, when the weights are set, as
    :class:`LSTM` does (docs/semantics.md §26).
    """

    _gates = 1
    _num_states = 1
    config_keys = tuple(k for k in _RNN.config_keys if k != "recurrent_activation")
    call_options = ("return_sequences", "go_backwards", "activation")
    _check = staticmethod(V.check_simple_rnn)

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        if "recurrent_activation" in kwargs:  # the message the base gives other unknown names
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments: "
                            "['recurrent_activation'] (a SimpleRNN has no gates)")
        super().__init__(units, activation, None, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, **kwargs)

    def _bias_spec(self):
        shape = (self.units,)
        return ("bias", shape, lambda rng: initial_value(self.bias_initializer, shape, rng))

    def _pack(self):  # kernel (bias folded in) and recurrent kernel as one-gate panels
        return pack_simple_rnn(*self._call_weight_values)


_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


def _serialize(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


class Bidirectional(Layer):
    """Bidirectional wrapper for LSTM, GRU and SimpleRNN (Keras ``Bidirectional``).

    Parameters
    ----------
    layer : LSTM, GRU or SimpleRNN
        As in Keras, the forward layer is a fresh copy made from ``layer``'s config
        (its weights are not copied), and unless ``backward_layer`` is given the
        backward layer is another copy with ``go_backwards=True``. If ``layer`` has a
        seed, the backward copy uses seed + 1.
    merge_mode : "concat", "sum", "ave", "mul" or None
        How the two outputs combine; None returns both.
    weights : list of arrays, optional
        Initial weights (forward weights then backward weights).
    backward_layer : LSTM, GRU or SimpleRNN, optional
        Used as is (not copied). It must have the opposite go_backwards and the same
        return_sequences, return_state and stateful as ``layer``.

    Weights: the forward layer's weights, then the backward layer's.

    Call: ``layer(sequences, initial_state=None, mask=None)``.

    * initial_state is a flat list: the first half goes to the forward layer, the
      second to the backward layer (LSTM: [h_f, c_f, h_b, c_b]).
    * With return_sequences the backward output is flipped back to input time order,
      and masked steps output 0 in both directions.
    * Returns the merged output, or (output_f, output_b) with merge_mode None,
      followed by the forward then the backward states if return_state.
    """

    def __init__(
        self,
        layer: Any,
        merge_mode: str | None = "concat",
        weights: Sequence[Any] | None = None,
        backward_layer: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        layer = deserialize_layer(layer, owner)
        if not isinstance(layer, _RNN):
            raise ValueError(
                f"{owner}: layer must be an LSTM, GRU or SimpleRNN, got {type(layer).__name__}"
            )
        if backward_layer is not None:
            backward_layer = deserialize_layer(backward_layer, owner)
            if not isinstance(backward_layer, _RNN):
                raise ValueError(
                    f"{owner}: backward_layer must be an LSTM, GRU or SimpleRNN, got "
                    f"{type(backward_layer).__name__}"
                )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"{owner}: invalid merge_mode {merge_mode!r}; expected one of {_MERGE_MODES}"
            )
        super().__init__(**kwargs)
        config = layer.get_config()
        config["name"] = "forward_" + _remove_prefix(layer.name, "forward_")
        self.forward_layer: _RNN = type(layer).from_config(config)
        self._custom_backward = backward_layer is not None
        if backward_layer is None:
            config = layer.get_config()
            config["name"] = "backward_" + _remove_prefix(layer.name, "backward_")
            config["go_backwards"] = True
            if config["seed"] is not None:
                config["seed"] += 1  # not the forward layer's initial weights
            backward_layer = type(layer).from_config(config)
        self.backward_layer: _RNN = backward_layer
        fwd, bwd = self.forward_layer, self.backward_layer
        fwd.trainable = layer.trainable  # (Keras's copies take it with the config)
        if not self._custom_backward:
            bwd.trainable = layer.trainable
        if fwd.go_backwards == bwd.go_backwards:
            raise ValueError(
                f"{owner}: the forward and backward layers must have different go_backwards, "
                f"got {fwd.go_backwards} for both"
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(fwd, attr) != getattr(bwd, attr):
                raise ValueError(
                    f"{owner}: the forward and backward layers must have the same {attr}, got "
                    f"{getattr(fwd, attr)} (forward) and {getattr(bwd, attr)} (backward)"
                )
        # As Keras does: masked steps of returned sequences are zeros in both directions.
        fwd.zero_output_for_mask = fwd.return_sequences
        bwd.zero_output_for_mask = bwd.return_sequences
        self.merge_mode = merge_mode
        self.stateful = fwd.stateful
        self.return_sequences = fwd.return_sequences
        self.return_state = fwd.return_state
        if weights:
            self.set_weights(list(weights))

    supports_masking = True

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """As Keras's Bidirectional: with return_sequences the output(s) keep the mask
        (both outputs when merge_mode is None), else none; the states have none."""
        if isinstance(mask, list):
            mask = mask[0]
        if self.return_sequences:
            out: Any = (mask, mask) if self.merge_mode is None else mask
        else:
            out = (None, None) if self.merge_mode is None else None
        if self.return_state:
            n = self.forward_layer._num_states + self.backward_layer._num_states
            return _masking.flatten(out) + [None] * n
        return out

    # ---- weights: the forward layer's, then the backward layer's ---------------------
    @property
    def built(self) -> bool:  # type: ignore[override]
        return self.forward_layer.built and self.backward_layer.built

    @built.setter
    def built(self, value: bool) -> None:  # the base constructor sets it; derived here
        pass

    def build(self, sequences_shape: Shape) -> None:
        """Build the forward and backward layers for ``sequences_shape``."""
        self.forward_layer.build(sequences_shape)
        self.backward_layer.build(sequences_shape)
        self._on_weights_set()

    @property
    def weights(self) -> list[np.ndarray]:
        return self.forward_layer.weights + self.backward_layer.weights

    def get_weights(self) -> list[np.ndarray]:
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _weight_names(self) -> list[str]:
        return ["forward/" + n for n in self.forward_layer._weight_names()] + [
            "backward/" + n for n in self.backward_layer._weight_names()
        ]

    def set_weights(self, weights: Sequence[Any]) -> None:
        owner = self._owner()
        self._check_weight_list(weights)
        n = len(self.forward_layer._weight_names())
        try:
            self.forward_layer.set_weights(list(weights[:n]))
            self.backward_layer.set_weights(list(weights[n:]))
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}") from None
        self._on_weights_set()

    def count_params(self) -> int:
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    def _sublayers(self) -> list[Layer]:
        return [self.forward_layer, self.backward_layer]

    def _trainable_mask(self) -> list[bool]:
        return self.forward_layer._trainable_mask() + self.backward_layer._trainable_mask()

    # ---- call -------------------------------------------------------------------------
    def call(self, sequences, initial_state=None, mask=None, training=None):
        owner = self._owner()
        forward_state = backward_state = None
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray) or not isinstance(
                initial_state, (list, tuple)
            ):
                raise TypeError(
                    f"{owner}: initial_state must be a flat list of arrays, got "
                    f"{type(initial_state).__name__}"
                )
            n = self.forward_layer._num_states + self.backward_layer._num_states
            if len(initial_state) != n:
                raise ValueError(
                    f"{owner}: initial_state must hold {n} arrays (the forward states, then the "
                    f"backward states), got {len(initial_state)}"
                )
            half = len(initial_state) // 2
            forward_state = list(initial_state[:half])
            backward_state = list(initial_state[half:])
        y = self.forward_layer(sequences, initial_state=forward_state, mask=mask)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, mask=mask)
        states: tuple[np.ndarray, ...] = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = np.ascontiguousarray(y_rev[:, ::-1])
        if self.merge_mode == "concat":
            out: Any = (np.concatenate([y, y_rev], axis=-1),)
        elif self.merge_mode == "sum":
            out = (y + y_rev,)
        elif self.merge_mode == "ave":
            out = ((y + y_rev) / F32(2),)
        elif self.merge_mode == "mul":
            out = (y * y_rev,)
        else:
            out = (y, y_rev)
        result = out + states
        return result[0] if len(result) == 1 else result

    def _runner(self, sequences: Any, initial_state: Any = None, mask: Any = None,
                training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): the two layers' runners and the
        merge ``call`` makes, for one output (no states returned, a merge mode); None when
        either layer offers none (SimpleRNN, a stateful layer, initial states, a mask)."""
        if initial_state is not None or mask is not None or self.return_state or \
                self.merge_mode is None:
            return None
        forward = self.forward_layer._offered_runner(sequences)
        backward = self.backward_layer._offered_runner(sequences)
        if forward is None or backward is None:
            return None
        sequences_out, mode = self.return_sequences, self.merge_mode

        def run(x: np.ndarray) -> np.ndarray:
            y, y_rev = forward(x), backward(x)
            if sequences_out:
                y_rev = np.ascontiguousarray(y_rev[:, ::-1])
            if mode == "concat":
                return np.concatenate([y, y_rev], axis=-1)
            if mode == "sum":
                return y + y_rev
            if mode == "ave":
                return (y + y_rev) / F32(2)
            return y * y_rev

        return run

    def reset_states(self) -> None:
        """Zero the kept states of both (stateful) layers."""
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states

    @property
    def states(self) -> tuple[np.ndarray, ...] | None:
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def get_config(self):
        config = {
            "name": self.name,
            "layer": _serialize(self.forward_layer),
            "merge_mode": self.merge_mode,
        }
        if self._custom_backward:
            config["backward_layer"] = _serialize(self.backward_layer)
        return config

    def __repr__(self) -> str:
        items = [f"name={self.name!r}", f"layer={self.forward_layer!r}"]
        if self.merge_mode != "concat":
            items.append(f"merge_mode={self.merge_mode!r}")
        if self._custom_backward:
            items.append(f"backward_layer={self.backward_layer!r}")
        return f"Bidirectional({', '.join(items)})"


def _remove_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text


class StackedRNN(Layer):
    """Keras's ``RNN(StackedRNNCells([...]))``: cells run one after the other at each time
    step, as a stack of LSTM, GRU and SimpleRNN layers over the whole sequence.

    Parameters
    ----------
    cells : list of LSTM, GRU or SimpleRNN
        One layer per Keras cell, in order (a cell's arguments are its layer's: units,
        activations, use_bias, unit_forget_bias, reset_after). Copies are made from their
        configs (their weights are not copied, their return_sequences, return_state,
        go_backwards and masking flags are set here).
    return_sequences, return_state, go_backwards, zero_output_for_mask : bool
        As Keras's RNN. With go_backwards the sequence is processed from its end and the
        returned sequence is in processing order, as in Keras.

    At inference the stack is the same as one layer after the other, each over the whole
    sequence: at a masked step every cell keeps its state and repeats its previous output,
    so the next cell, masked at that step too, never reads it.

    Weights: each cell's (``kernel``, ``recurrent_kernel``, ``bias``), cell after cell.

    Call: ``layer(sequences, initial_state=None, mask=None)`` with sequences (batch, time,
    features), mask bool (batch, time), initial_state the cells' states in order, flat or one
    entry per cell (an LSTM's [h, c]). Returns the last cell's output ((batch, time, units)
    with return_sequences, else (batch, units)), or with return_state the tuple (output,
    states of cell 0, states of cell 1, ...): an LSTM's as the list [h, c], a GRU's and a
    SimpleRNN's as h alone, as Keras returns them.
    """

    _keras_class_name = "RNN"  # (Keras's layer: the paths of a .keras file's weights)
    supports_masking = True

    def __init__(self, cells: Any, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, zero_output_for_mask: bool = False,
                 **kwargs: Any) -> None:
        owner = type(self).__name__
        if isinstance(cells, (Layer, dict)) or not isinstance(cells, (list, tuple)) or not cells:
            raise TypeError(f"{owner}: cells must be a non-empty list of LSTM, GRU or SimpleRNN "
                            f"layers, got {type(cells).__name__}")
        made = []
        for cell in cells:
            cell = deserialize_layer(cell, owner)
            if not isinstance(cell, _RNN):
                raise ValueError(f"{owner}: every cell must be an LSTM, GRU or SimpleRNN, got "
                                 f"{type(cell).__name__}")
            if cell.stateful:
                raise NotImplementedError(f"{owner}: stateful cells are not supported")
            config = cell.get_config()
            config.update(return_sequences=True, return_state=True, go_backwards=False,
                          zero_output_for_mask=False)
            copy = type(cell).from_config(config)
            copy.trainable = cell.trainable
            made.append(copy)
        names = [c.name for c in made]
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}: the cells' names must differ, got {names}")
        super().__init__(**kwargs)
        self.cells: list[_RNN] = made
        self.return_sequences = _bool(return_sequences, owner, "return_sequences")
        self.return_state = _bool(return_state, owner, "return_state")
        self.go_backwards = _bool(go_backwards, owner, "go_backwards")
        self.zero_output_for_mask = _bool(zero_output_for_mask, owner, "zero_output_for_mask")

    # ---- weights: each cell's, in order ------------------------------------------------
    @property
    def built(self) -> bool:  # type: ignore[override]
        return all(c.built for c in self.cells)

    @built.setter
    def built(self, value: bool) -> None:  # the base constructor sets it; derived here
        pass

    def build(self, sequences_shape: Shape) -> None:
        """Build the cells: the first for ``sequences_shape``, each next one for the units of
        the one before."""
        shape = _shape_tuple(sequences_shape)
        for cell in self.cells:
            if not cell.built:
                cell.build(shape)
            shape = shape[:-1] + (cell.units,)
        self._on_weights_set()

    @property
    def weights(self) -> list[np.ndarray]:
        return [w for c in self.cells for w in c.weights]

    def get_weights(self) -> list[np.ndarray]:
        return [w for c in self.cells for w in c.get_weights()]

    def _weight_names(self) -> list[str]:
        return [f"{c.name}/{n}" for c in self.cells for n in c._weight_names()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._check_weight_list(weights)
        weights = list(weights)
        try:
            for cell in self.cells:
                n = len(cell._weight_names())
                cell.set_weights(weights[:n])
                weights = weights[n:]
        except ValueError as exc:
            raise ValueError(f"{self._owner()}: {exc}") from None
        self._on_weights_set()

    def count_params(self) -> int:
        return sum(c.count_params() for c in self.cells)

    def _sublayers(self) -> list[Layer]:
        return list(self.cells)

    def _trainable_mask(self) -> list[bool]:
        return [m for c in self.cells for m in c._trainable_mask()]

    @property
    def non_trainable_weight_names(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset()

    # ---- call -------------------------------------------------------------------------
    def _initial_states(self, initial_state: Any) -> list[Any]:
        """One entry per cell (None: zeros) from a flat or per-cell list."""
        if initial_state is None:
            return [None] * len(self.cells)
        owner = self._owner()
        if isinstance(initial_state, np.ndarray) or not isinstance(initial_state, (list, tuple)):
            raise TypeError(f"{owner}: initial_state must be a list of the cells' states, got "
                            f"{type(initial_state).__name__}")
        flat = [s for entry in initial_state
                for s in (entry if isinstance(entry, (list, tuple)) else [entry])]
        n = sum(c._num_states for c in self.cells)
        if len(flat) != n:
            raise ValueError(f"{owner}: initial_state must hold the cells' {n} states (an "
                             f"LSTM's h and c, a GRU's or SimpleRNN's h), got {len(flat)}")
        out = []
        for cell in self.cells:
            out.append(flat[:cell._num_states])
            flat = flat[cell._num_states:]
        return out

    def call(self, sequences: Any, initial_state: Any = None, mask: Any = None,
             training: Any = None) -> Any:
        owner = self._owner()
        x = V.array(sequences, owner, "sequences")
        V.rank(x, owner, "sequences", 3, "(batch, timesteps, features)")
        if mask is not None:
            mask = V.bool_mask(mask, owner, "mask", shape=x.shape[:2])
        inits = self._initial_states(initial_state)
        if self.go_backwards:  # processed from the end: each cell runs over the reversed time
            x = np.ascontiguousarray(x[:, ::-1])
            mask = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
        states: list[Any] = []
        h = x
        for cell, init in zip(self.cells, inits):
            h, *st = cell(h, initial_state=init, mask=mask)
            states.append(list(st) if cell._num_states > 1 else st[0])
        out = h if self.return_sequences else np.ascontiguousarray(h[:, -1])
        if self.zero_output_for_mask and mask is not None:  # (mask in processing order)
            out = np.where(mask[:, :, None] if self.return_sequences else mask[:, -1:], out,
                           F32(0))
        return (out, *states) if self.return_state else out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """As Keras's RNN: the output keeps the (first) mask if return_sequences, else has
        none; the states have none."""
        mask = _masking.flatten(mask)[0]
        out = mask if self.return_sequences else None
        if not self.return_state:
            return out
        return [out] + [None] * sum(c._num_states for c in self.cells)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "cells": [_serialize(c) for c in self.cells],
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "zero_output_for_mask": self.zero_output_for_mask}

    def __repr__(self) -> str:
        return f"StackedRNN(name={self.name!r}, cells={[c.name for c in self.cells]})"
