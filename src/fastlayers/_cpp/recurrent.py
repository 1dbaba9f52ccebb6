"""LSTM, GRU and SimpleRNN on the C++ path: the kernels packed as gate panels, the time loop
in C++."""

from __future__ import annotations

import numpy as np

from .. import _backend
from ._alloc import copy_f32
from .activations import unsupported_elementwise


def unsupported(a):
    """None when the C++ path serves this lstm, gru or simple_rnn call, else why not."""
    if a.cell == "simple_rnn":  # no recurrent_activation
        return unsupported_elementwise(a.activation, "linear")
    return unsupported_elementwise(a.activation, a.recurrent_activation)


def pack_lstm(kernel, recurrent_kernel, bias):
    """(PackedGates(kernel, 4, bias), PackedGates(recurrent_kernel, 4)) for ``_core.lstm``."""
    core = _backend._core
    return core.PackedGates(kernel, 4, bias), core.PackedGates(recurrent_kernel, 4)


def pack_simple_rnn(kernel, recurrent_kernel, bias):
    """(PackedGates(kernel, 1, bias), PackedGates(recurrent_kernel, 1)) for
    ``_core.simple_rnn``."""
    core = _backend._core
    return core.PackedGates(kernel, 1, bias), core.PackedGates(recurrent_kernel, 1)


def pack_gru(kernel, recurrent_kernel, bias, reset_after):
    """(packed kernel, packed recurrent, packed recurrent_h or None) for ``_core.gru``.

    reset_after: the input bias goes with the kernel, the recurrent bias with the
    recurrent kernel. reset_before: the recurrent kernel is split into its [z | r] and
    [h] column blocks, because (r * h) multiplies the [h] block in a second GEMM.
    """
    core = _backend._core
    if reset_after:
        b_in, b_rec = (None, None) if bias is None else (bias[0], bias[1])
        return (
            core.PackedGates(kernel, 3, b_in),
            core.PackedGates(recurrent_kernel, 3, b_rec),
            None,
        )
    u = recurrent_kernel.shape[0]
    return (
        core.PackedGates(kernel, 3, bias),
        core.PackedGates(np.ascontiguousarray(recurrent_kernel[:, : 2 * u]), 2),
        core.PackedDense(np.ascontiguousarray(recurrent_kernel[:, 2 * u :])),
    )


def run(a, packed=None):
    """lstm, gru or simple_rnn (``a.cell``) on checked arguments
    (``_validation.RecurrentArgs``): (out, h, c) or (out, h). ``packed``: the layer's
    :func:`pack_lstm`, :func:`pack_gru` or :func:`pack_simple_rnn`."""
    return {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn}[a.cell](a, packed)


def lstm(a, packed=None):
    """lstm on checked arguments -> (out, h, c).

    ``packed`` is the layer's :func:`pack_lstm`, or None: the kernels are then packed for
    this call, except for one unmasked step, where ``_core.lstm_cell`` reads them in place
    for up to 32 rows (the same bits as the packed step).
    """
    core = _backend._core
    ids = _backend.cpp_activation_ids()
    act, ract = ids[a.activation], ids[a.recurrent_activation]
    h0, c0 = a.initial_state
    if packed is None and a.x.shape[1] == 1 and a.mask is None:
        h, c = core.lstm_cell(a.x[:, 0], a.kernel, a.recurrent_kernel, a.bias, h0, c0, act, ract)
        out = copy_f32(h.reshape(h.shape[0], 1, h.shape[1])) if a.return_sequences else h
        return out, h, c
    if packed is None:
        packed = pack_lstm(a.kernel, a.recurrent_kernel, a.bias)
    return core.lstm(a.x, *packed, h0, c0, a.mask, a.return_sequences, a.go_backwards, act, ract)


def runner(a, packed, return_state):
    """:func:`run` with the layer's ``packed`` weights and zero initial states for sequences
    shaped as ``a.x``, as a function of them alone (see ``functional.recurrent_runner``):
    the activation ids and flags looked up once. Same calls, same bits."""
    core = _backend._core
    ids = _backend.cpp_activation_ids()
    act = ids[a.activation]
    seqs, backwards = a.return_sequences, a.go_backwards
    zeros = np.zeros((a.x.shape[0], a.recurrent_kernel.shape[0]), np.float32)
    zeros.flags.writeable = False  # read by every call, written by none (h0, c0 are inputs)
    if a.cell == "simple_rnn":
        w_in, w_rec = packed

        def run(x):
            return core.simple_rnn(x, w_in, w_rec, zeros, None, seqs, backwards, act)
    elif a.cell == "lstm":
        w_in, w_rec = packed
        ract = ids[a.recurrent_activation]

        def run(x):
            return core.lstm(x, w_in, w_rec, zeros, zeros, None, seqs, backwards, act, ract)
    else:
        w_in, w_rec, w_rec_h = packed
        reset_after = a.reset_after
        ract = ids[a.recurrent_activation]

        def run(x):
            return core.gru(x, w_in, w_rec, w_rec_h, zeros, None, seqs, backwards, reset_after,
                            act, ract)

    if not return_state:
        return lambda x: run(x)[0]

    def run_with_states(x):
        out, *states = run(x)
        if states[0] is out:  # as functional.run_recurrent: never one array twice
            states[0] = states[0].copy()
        return (out, *states)

    return run_with_states


def lstm_cell(a):
    """One LSTM step on checked arguments (``_validation.LSTMCellArgs``) -> (h, c).

    The weights are read in place: packing them (as lstm does, once per sequence) would
    cost more than the step itself.
    """
    ids = _backend.cpp_activation_ids()
    return _backend._core.lstm_cell(
        a.x_t, a.kernel, a.recurrent_kernel, a.bias, a.h, a.c, ids["tanh"], ids["sigmoid"]
    )


def gru(a, packed=None):
    """gru on checked arguments -> (out, h). ``packed`` is the
    layer's :func:`pack_gru` (same reset_after), or None (packed for this call)."""
    if packed is None:
        packed = pack_gru(a.kernel, a.recurrent_kernel, a.bias, a.reset_after)
    ids = _backend.cpp_activation_ids()
    return _backend._core.gru(
        a.x,
        *packed,
        *a.initial_state,
        a.mask,
        a.return_sequences,
        a.go_backwards,
        a.reset_after,
        ids[a.activation],
        ids[a.recurrent_activation],
    )


def simple_rnn(a, packed=None):
    """simple_rnn on checked arguments -> (out, h). ``packed`` is the layer's
    :func:`pack_simple_rnn`, or None (packed for this call)."""
    if packed is None:
        packed = pack_simple_rnn(a.kernel, a.recurrent_kernel, a.bias)
    return _backend._core.simple_rnn(
        a.x,
        *packed,
        *a.initial_state,
        a.mask,
        a.return_sequences,
        a.go_backwards,
        _backend.cpp_activation_ids()[a.activation],
    )
