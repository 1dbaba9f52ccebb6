"""lstm, lstm_cell and gru against the naive float64 reference (tests/naive_seq_attn.py).

Every comparison runs on each backend that serves the op (``backends_for``). The
Keras golden fixtures live in test_golden.py; this file covers the argument
combinations, edge shapes, masks, dtypes and bad inputs.
"""

from __future__ import annotations

import itertools
import re

import naive_seq_attn as naive
import numpy as np
import pytest
from conftest import assert_close, backends_for, run_on
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl

F32 = np.float32


def _amax(*arrays):
    return max(float(np.max(np.abs(a))) if np.size(a) else 0.0 for a in arrays)


def make_rnn(rng, gates, b, t, f, u, *, bias_shape="default", state=False, mask=False):
    """Random float32 inputs for an RNN with ``gates`` blocks; weights scaled ~1/sqrt(fan_in)."""
    d = {
        "x": rng.standard_normal((b, t, f)).astype(F32),
        "kernel": (rng.standard_normal((f, gates * u)) / np.sqrt(max(f, 1))).astype(F32),
        "recurrent_kernel": (rng.standard_normal((u, gates * u)) / np.sqrt(u)).astype(F32),
    }
    if bias_shape == "default":
        bias_shape = (gates * u,)
    if bias_shape is not None:
        d["bias"] = (0.5 * rng.standard_normal(bias_shape)).astype(F32)
    if state:
        d["states"] = [
            rng.standard_normal((b, u)).astype(F32) for _ in range(2 if gates == 4 else 1)
        ]
    if mask:
        m = rng.random((b, t)) > 0.4
        if b > 0 and t > 1:
            m[0, :2] = False  # leading masked steps with a non-zero initial state
            m[-1, -1] = False
        d["mask"] = m
    return d


def rnn_magnitude(d, expected):
    """Bound on the products summed per gate: |x|*|W| and |h|*|R| (h from the reference)."""
    outs = expected if isinstance(expected, tuple) else (expected,)
    h = max(_amax(*outs), _amax(*d.get("states", [np.zeros(1)])), 1.0)
    return max(_amax(d["x"]) * _amax(d["kernel"]), h * _amax(d["recurrent_kernel"]), 1.0)


def check_outputs(actual, expected, k, magnitude):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, k=k, magnitude=magnitude, err_msg=f"output {i}")
    else:
        assert not isinstance(actual, tuple)
        assert_close(actual, expected, k=k, magnitude=magnitude)


def run_both(backend, op, d, **kwargs):
    """Run fastlayers and the reference on the same float32 data. Returns (actual, expected)."""
    fl_op, ref_op = getattr(fl, op), getattr(naive, op)
    args = (d["x"], d["kernel"], d["recurrent_kernel"], d.get("bias"))
    if "states" in d and "initial_state" not in kwargs:
        kwargs["initial_state"] = d["states"] if op == "lstm" else d["states"][0]
    if "mask" in d:
        kwargs["mask"] = d["mask"]
    actual = run_on(backend, fl_op, *args, **kwargs)
    expected = ref_op(*args, **kwargs)
    return actual, expected


# (op, backend) pairs: each recurrent op on the backends that serve it.
RNN_OP_BACKENDS = [
    pytest.param(op, b, id=f"{op}-{b}") for op in ("lstm", "gru") for b in backends_for(op)
]

FLAG_GRID = list(itertools.product([False, True], repeat=5))  # seq, state, back, init, mask


def _flag_id(flags):
    names = ("seq", "state", "back", "init", "mask")
    return "-".join(n for n, f in zip(names, flags) if f) or "plain"


# --------------------------------------------------------------------------- LSTM


@pytest.mark.parametrize("backend", backends_for("lstm"))
@pytest.mark.parametrize("flags", FLAG_GRID, ids=_flag_id)
def test_lstm_matches_reference(backend, flags, rng):
    seq, state, back, init, use_mask = flags
    d = make_rnn(rng, 4, 3, 5, 4, 6, state=init, mask=use_mask)
    actual, expected = run_both(
        backend, "lstm", d, return_sequences=seq, return_state=state, go_backwards=back
    )
    check_outputs(actual, expected, k=4 + 6, magnitude=rnn_magnitude(d, expected))
    out = actual[0] if state else actual
    assert out.shape == ((3, 5, 6) if seq else (3, 6))


@pytest.mark.parametrize("backend", backends_for("lstm"))
@pytest.mark.parametrize(
    "b,t,f,u",
    [(1, 1, 1, 1), (2, 1, 3, 7), (1, 4, 5, 9), (2, 3, 2, 17), (3, 2, 8, 1), (1, 7, 16, 8)],
)
def test_lstm_edge_shapes(backend, b, t, f, u, rng):
    d = make_rnn(rng, 4, b, t, f, u, state=True, mask=t > 1)
    actual, expected = run_both(backend, "lstm", d, return_sequences=True, return_state=True)
    check_outputs(actual, expected, k=f + u, magnitude=rnn_magnitude(d, expected))


@pytest.mark.parametrize("backend", backends_for("lstm"))
def test_lstm_relu_hard_sigmoid(backend, rng):
    d = make_rnn(rng, 4, 2, 6, 3, 5, state=True, mask=True)
    kw = dict(return_sequences=True, return_state=True, activation="relu")
    kw["recurrent_activation"] = "hard_sigmoid"
    actual, expected = run_both(backend, "lstm", d, **kw)
    check_outputs(actual, expected, k=3 + 5, magnitude=rnn_magnitude(d, expected))
    # The default activations give different numbers: the arguments are not ignored.
    default = run_on(backend, fl.lstm, d["x"], d["kernel"], d["recurrent_kernel"], d["bias"])
    assert np.max(np.abs(default - actual[0][:, -1])) > 1e-3


@pytest.mark.parametrize("backend", backends_for("lstm"))
def test_lstm_without_bias(backend, rng):
    d = make_rnn(rng, 4, 2, 4, 3, 5, bias_shape=None)
    actual, expected = run_both(backend, "lstm", d, return_sequences=True)
    check_outputs(actual, expected, k=8, magnitude=rnn_magnitude(d, expected))


# ---------------------------------------------------------------------------- GRU


@pytest.mark.parametrize("backend", backends_for("gru"))
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
@pytest.mark.parametrize("flags", FLAG_GRID, ids=_flag_id)
def test_gru_matches_reference(backend, reset_after, flags, rng):
    seq, state, back, init, use_mask = flags
    bias_shape = (2, 3 * 6) if reset_after else (3 * 6,)
    d = make_rnn(rng, 3, 3, 5, 4, 6, bias_shape=bias_shape, state=init, mask=use_mask)
    actual, expected = run_both(
        backend,
        "gru",
        d,
        return_sequences=seq,
        return_state=state,
        go_backwards=back,
        reset_after=reset_after,
    )
    check_outputs(actual, expected, k=4 + 6, magnitude=rnn_magnitude(d, expected))


@pytest.mark.parametrize("backend", backends_for("gru"))
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("b,t,f,u", [(1, 1, 1, 1), (2, 1, 3, 7), (1, 4, 5, 9), (2, 3, 2, 17)])
def test_gru_edge_shapes(backend, reset_after, b, t, f, u, rng):
    bias_shape = (2, 3 * u) if reset_after else (3 * u,)
    d = make_rnn(rng, 3, b, t, f, u, bias_shape=bias_shape, state=True, mask=t > 1)
    actual, expected = run_both(
        backend, "gru", d, return_sequences=True, return_state=True, reset_after=reset_after
    )
    check_outputs(actual, expected, k=f + u, magnitude=rnn_magnitude(d, expected))


@pytest.mark.parametrize("backend", backends_for("gru"))
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_relu_hard_sigmoid_no_bias(backend, reset_after, rng):
    d = make_rnn(rng, 3, 2, 6, 3, 5, bias_shape=None, state=True, mask=True)
    kw = dict(return_sequences=True, return_state=True, reset_after=reset_after)
    kw.update(activation="relu", recurrent_activation="hard_sigmoid")
    actual, expected = run_both(backend, "gru", d, **kw)
    check_outputs(actual, expected, k=3 + 5, magnitude=rnn_magnitude(d, expected))


@pytest.mark.parametrize("backend", backends_for("gru"))
def test_gru_bias_rows_are_input_then_recurrent(backend, rng):
    """reset_after=True: bias[1] sits inside r * (h @ R_h + b_rec_h); swapping the rows
    changes the result, and the reference (which uses the documented order) agrees."""
    d = make_rnn(rng, 3, 2, 4, 3, 5, bias_shape=(2, 15), state=True)
    actual, expected = run_both(backend, "gru", d, return_sequences=True)
    check_outputs(actual, expected, k=8, magnitude=rnn_magnitude(d, expected))
    swapped = run_on(
        backend,
        fl.gru,
        d["x"],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"][::-1],
        initial_state=d["states"][0],
        return_sequences=True,
    )
    assert np.max(np.abs(swapped - actual)) > 1e-3


@pytest.mark.parametrize("backend", backends_for("gru"))
def test_gru_initial_state_h0_or_list(backend, rng):
    d = make_rnn(rng, 3, 2, 4, 3, 5, bias_shape=(2, 15))
    h0 = rng.standard_normal((2, 5)).astype(F32)
    args = (d["x"], d["kernel"], d["recurrent_kernel"], d["bias"])
    as_array = run_on(backend, fl.gru, *args, initial_state=h0, return_state=True)
    as_list = run_on(backend, fl.gru, *args, initial_state=[h0], return_state=True)
    as_tuple = run_on(backend, fl.gru, *args, initial_state=(h0,), return_state=True)
    for other in (as_list, as_tuple):
        np.testing.assert_array_equal(as_array[0], other[0])
        np.testing.assert_array_equal(as_array[1], other[1])
    expected = naive.gru(*args, initial_state=h0, return_state=True)
    check_outputs(as_array, expected, k=8, magnitude=rnn_magnitude(d, expected))


# ------------------------------------------------------------------ mask semantics


@pytest.mark.parametrize("op,backend", RNN_OP_BACKENDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_steps_repeat_previous_output(backend, op, go_backwards, rng):
    """Spelled out, independently of the reference: masked steps keep the state and
    repeat the last emitted output, which is 0 before the first unmasked step even
    with a non-zero initial state (Keras torch/TF backends)."""
    gates = 4 if op == "lstm" else 3
    d = make_rnn(rng, gates, 2, 6, 3, 4, bias_shape=(2, 12) if op == "gru" else "default")
    states = [rng.standard_normal((2, 4)).astype(F32) for _ in range(gates - 2)]
    mask = np.array([[0, 0, 1, 0, 1, 1], [1, 0, 0, 1, 1, 0]], bool)
    init = states if op == "lstm" else states[0]
    args = (d["x"], d["kernel"], d["recurrent_kernel"], d["bias"])
    seq, *final = run_on(
        backend,
        getattr(fl, op),
        *args,
        initial_state=init,
        mask=mask,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
    )
    order = list(range(6))[::-1] if go_backwards else list(range(6))
    for s in range(2):
        emitted = np.zeros(4, F32)
        for k, t in enumerate(order):
            if mask[s, t]:
                assert np.max(np.abs(seq[s, k] - emitted)) > 0  # a real step changes h
                emitted = seq[s, k]
            else:
                np.testing.assert_array_equal(seq[s, k], emitted, err_msg=f"sample {s} step {k}")
    # Sample 1 (forward) / sample 0 (backward) ends on a masked step: the final h is
    # still the last emitted output.
    np.testing.assert_array_equal(final[0], seq[:, -1])
    expected = getattr(naive, op)(
        *args,
        initial_state=init,
        mask=mask,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
    )
    check_outputs((seq, *final), expected, k=7, magnitude=rnn_magnitude(d, expected))


@pytest.mark.parametrize("op,backend", RNN_OP_BACKENDS)
def test_fully_masked_sample_keeps_initial_state(backend, op, rng):
    gates = 4 if op == "lstm" else 3
    d = make_rnn(rng, gates, 3, 5, 3, 4, bias_shape=(2, 12) if op == "gru" else "default")
    states = [rng.standard_normal((3, 4)).astype(F32) for _ in range(gates - 2)]
    mask = rng.random((3, 5)) > 0.3
    mask[1] = False
    mask[0, 0] = mask[2, 0] = True
    res = run_on(
        backend,
        getattr(fl, op),
        d["x"],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
        initial_state=states if op == "lstm" else states[0],
        mask=mask,
        return_sequences=True,
        return_state=True,
    )
    seq, finals = res[0], res[1:]
    np.testing.assert_array_equal(seq[1], np.zeros((5, 4), F32))
    for got, init in zip(finals, states):
        np.testing.assert_array_equal(got[1], init[1])
        assert np.all(np.abs(got[[0, 2]] - init[[0, 2]]).max(axis=1) > 0)
    assert np.all(np.isfinite(seq))


@pytest.mark.parametrize("op,backend", RNN_OP_BACKENDS)
def test_all_true_mask_equals_no_mask(backend, op, rng):
    gates = 4 if op == "lstm" else 3
    d = make_rnn(rng, gates, 2, 5, 3, 4, bias_shape=(2, 12) if op == "gru" else "default")
    args = (d["x"], d["kernel"], d["recurrent_kernel"], d["bias"])
    f = getattr(fl, op)
    a = run_on(backend, f, *args, return_sequences=True, go_backwards=True)
    b = run_on(
        backend, f, *args, return_sequences=True, go_backwards=True, mask=np.ones((2, 5), np.int64)
    )
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op,backend", RNN_OP_BACKENDS)
def test_go_backwards_keeps_processing_order(backend, op, rng):
    """go_backwards == the forward op on the time-reversed input (and reversed mask);
    the returned sequence is not flipped back."""
    gates = 4 if op == "lstm" else 3
    d = make_rnn(rng, gates, 2, 5, 3, 4, bias_shape=(2, 12) if op == "gru" else "default")
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], bool)
    f = getattr(fl, op)
    back = run_on(
        backend,
        f,
        d["x"],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
        mask=mask,
        return_sequences=True,
        go_backwards=True,
    )
    fwd = run_on(
        backend,
        f,
        d["x"][:, ::-1],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
        mask=mask[:, ::-1],
        return_sequences=True,
    )
    np.testing.assert_allclose(back, fwd, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------- empty batch


@pytest.mark.parametrize("backend", backends_for("lstm"))
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_lstm_empty_batch(backend, seq, with_mask, rng):
    d = make_rnn(rng, 4, 0, 3, 2, 5)
    kw = {"mask": np.zeros((0, 3), bool)} if with_mask else {}
    out, h, c = run_on(
        backend,
        fl.lstm,
        d["x"],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
        return_sequences=seq,
        return_state=True,
        **kw,
    )
    assert out.shape == ((0, 3, 5) if seq else (0, 5)) and out.dtype == F32
    assert h.shape == c.shape == (0, 5) and h.dtype == c.dtype == F32


@pytest.mark.parametrize("backend", backends_for("gru"))
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_empty_batch(backend, seq, reset_after, rng):
    d = make_rnn(rng, 3, 0, 3, 2, 5, bias_shape=(2, 15) if reset_after else (15,))
    out, h = run_on(
        backend,
        fl.gru,
        d["x"],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
        initial_state=np.zeros((0, 5)),
        return_sequences=seq,
        return_state=True,
        reset_after=reset_after,
    )
    assert out.shape == ((0, 3, 5) if seq else (0, 5)) and out.dtype == F32
    assert h.shape == (0, 5) and h.dtype == F32


@pytest.mark.parametrize("op", ["lstm", "gru"])
@pytest.mark.parametrize("seq", [False, True])
def test_empty_batch_runs_no_time_step(op, seq, monkeypatch):
    """B = 0: the NumPy path returns at once rather than run T steps of nothing (T = 10**6
    took ~20 s, and T = 2**31 hours); no gate is evaluated."""
    import fastlayers._numpy.recurrent as np_rnn

    def no_step(*args, **kwargs):
        raise AssertionError("a time step ran for an empty batch")

    monkeypatch.setattr(np_rnn.activations, "apply", no_step)
    g = 4 if op == "lstm" else 3
    x = np.zeros((0, 10**6, 3), F32)
    kernel, rec = np.ones((3, g * 2), F32), np.ones((2, g * 2), F32)
    with fl.use_backend("numpy"):
        got = getattr(fl, op)(x, kernel, rec, return_sequences=seq, return_state=True)
    assert got[0].shape == ((0, 10**6, 2) if seq else (0, 2))
    assert all(s.shape == (0, 2) for s in got[1:])


@pytest.mark.parametrize("backend", backends_for("lstm_cell"))
def test_lstm_cell_empty_batch(backend, rng):
    d = make_rnn(rng, 4, 0, 1, 3, 2)
    h, c = run_on(
        backend,
        fl.lstm_cell,
        d["x"][:, 0],
        np.zeros((0, 2)),
        np.zeros((0, 2)),
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
    )
    assert h.shape == c.shape == (0, 2) and h.dtype == c.dtype == F32


# ------------------------------------------------------------------ long sequence


@pytest.mark.parametrize("op,backend", RNN_OP_BACKENDS)
def test_long_sequence_does_not_drift(backend, op, rng):
    """T = 1000 stays within the tolerance of a *single* step times 10.

    Why 10: with weights ~ N(0, 1/fan_in) the recurrence is contractive (forget /
    update gates < 1, sigmoid' <= 1/4, tanh' <= 1), so each step's float32 rounding
    error (~1e-7) is damped geometrically instead of summed; a contraction factor
    <= 0.9 bounds the total by 1 / (1 - 0.9) = 10 step errors. Measured: ~2.5e-7,
    against atol = 1e-6 * sqrt(F + u) * 10 = 2.6e-5. An error that grew linearly with
    T (say a stale or mis-rounded state, ~1e-7 per step) would exceed it.
    """
    f, u = 3, 4
    gates = 4 if op == "lstm" else 3
    d = make_rnn(rng, gates, 2, 1000, f, u, bias_shape=(2, 12) if op == "gru" else "default")
    actual, expected = run_both(backend, op, d, return_sequences=True, return_state=True)
    check_outputs(actual, expected, k=f + u, magnitude=10.0)


# ---------------------------------------------------------------------- lstm_cell


@pytest.mark.parametrize("backend", backends_for("lstm_cell"))
@pytest.mark.parametrize("b,f,u", [(1, 1, 1), (3, 4, 7), (2, 5, 9), (4, 3, 17)])
def test_lstm_cell_matches_reference_and_one_lstm_step(backend, b, f, u, rng):
    d = make_rnn(rng, 4, b, 1, f, u, state=True)
    h0, c0 = d["states"]
    h, c = run_on(
        backend, fl.lstm_cell, d["x"][:, 0], h0, c0, d["kernel"], d["recurrent_kernel"], d["bias"]
    )
    eh, ec = naive.lstm_cell(d["x"][:, 0], h0, c0, d["kernel"], d["recurrent_kernel"], d["bias"])
    mag = rnn_magnitude(d, (eh, ec))
    assert_close(h, eh, k=f + u, magnitude=mag)
    assert_close(c, ec, k=f + u, magnitude=mag)
    _, lh, lc = run_on(
        backend,
        fl.lstm,
        d["x"],
        d["kernel"],
        d["recurrent_kernel"],
        d["bias"],
        initial_state=[h0, c0],
        return_state=True,
    )
    assert_close(h, lh, k=f + u, magnitude=mag)
    assert_close(c, lc, k=f + u, magnitude=mag)


@pytest.mark.parametrize("backend", backends_for("lstm_cell"))
def test_lstm_cell_without_bias(backend, rng):
    d = make_rnn(rng, 4, 2, 1, 3, 5, bias_shape=None, state=True)
    h0, c0 = d["states"]
    h, c = run_on(backend, fl.lstm_cell, d["x"][:, 0], h0, c0, d["kernel"], d["recurrent_kernel"])
    eh, ec = naive.lstm_cell(d["x"][:, 0], h0, c0, d["kernel"], d["recurrent_kernel"])
    assert_close(h, eh, k=8, magnitude=rnn_magnitude(d, (eh, ec)))
    assert_close(c, ec, k=8, magnitude=rnn_magnitude(d, (eh, ec)))


# ------------------------------------------------------------ dtype / contiguity


@pytest.mark.parametrize("op,backend", RNN_OP_BACKENDS)
def test_dtype_and_layout_do_not_change_results(backend, op, rng):
    gates = 4 if op == "lstm" else 3
    d = make_rnn(rng, gates, 3, 4, 5, 6, bias_shape=(2, 18) if op == "gru" else "default")
    f = getattr(fl, op)
    kw = dict(return_sequences=True, return_state=True)
    ref = run_on(backend, f, d["x"], d["kernel"], d["recurrent_kernel"], d["bias"], **kw)
    x64 = d["x"].astype(np.float64)
    as_f64 = run_on(
        backend,
        f,
        x64,
        d["kernel"].astype(np.float64),
        d["recurrent_kernel"].astype(np.float64),
        d["bias"].astype(np.float64),
        **kw,
    )
    # Non-contiguous views of the same values: every other row of a bigger array,
    # a transposed copy transposed back, and a Fortran-ordered kernel.
    big = np.zeros((6, 4, 10), F32)
    big[::2, :, ::2] = d["x"]
    rk_t = np.ascontiguousarray(d["recurrent_kernel"].T).T
    strided = run_on(
        backend, f, big[::2, :, ::2], np.asfortranarray(d["kernel"]), rk_t, d["bias"], **kw
    )
    for res in (as_f64, strided):
        for a, e in zip(res, ref):
            assert a.dtype == F32
            np.testing.assert_array_equal(a, e)
    xi = rng.integers(-3, 4, size=(3, 4, 5))
    from_int = run_on(backend, f, xi, d["kernel"], d["recurrent_kernel"], d["bias"], **kw)
    from_f32 = run_on(
        backend, f, xi.astype(F32), d["kernel"], d["recurrent_kernel"], d["bias"], **kw
    )
    for a, e in zip(from_int, from_f32):
        assert a.dtype == F32
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("backend", backends_for("lstm_cell"))
def test_lstm_cell_dtype_and_layout(backend, rng):
    d = make_rnn(rng, 4, 3, 1, 4, 5, state=True)
    h0, c0 = d["states"]
    ref = run_on(
        backend, fl.lstm_cell, d["x"][:, 0], h0, c0, d["kernel"], d["recurrent_kernel"], d["bias"]
    )
    wide = np.zeros((3, 8), F32)
    wide[:, ::2] = d["x"][:, 0]
    x_view = wide[:, ::2]  # a strided view
    assert not x_view.flags.c_contiguous
    got = run_on(
        backend,
        fl.lstm_cell,
        x_view,
        h0.astype(np.float64),
        np.asfortranarray(c0),
        d["kernel"].astype(np.float64),
        d["recurrent_kernel"],
        list(d["bias"]),
    )
    for a, e in zip(got, ref):
        assert a.dtype == F32
        np.testing.assert_array_equal(a, e)


# ------------------------------------------------------------------ property test


@settings(max_examples=40, deadline=None)
@given(
    op=st.sampled_from(["lstm", "gru_after", "gru_before"]),
    b=st.integers(1, 3),
    t=st.integers(1, 6),
    f=st.integers(1, 5),
    u=st.integers(1, 6),
    flags=st.tuples(*[st.booleans()] * 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_recurrent_property_matches_reference(op, b, t, f, u, flags, seed):
    seq, state, back, init, use_mask = flags
    rng = np.random.default_rng(seed)
    gates = 4 if op == "lstm" else 3
    bias_shape = {"lstm": (4 * u,), "gru_after": (2, 3 * u), "gru_before": (3 * u,)}[op]
    d = make_rnn(rng, gates, b, t, f, u, bias_shape=bias_shape, state=init, mask=use_mask)
    kw = dict(return_sequences=seq, return_state=state, go_backwards=back)
    if op != "lstm":
        kw["reset_after"] = op == "gru_after"
    for backend in backends_for("lstm" if op == "lstm" else "gru"):
        actual, expected = run_both(backend, op.split("_")[0], d, **dict(kw))
        check_outputs(actual, expected, k=f + u, magnitude=rnn_magnitude(d, expected))


# --------------------------------------------------------------------- bad inputs

B, T, FEAT, U = 2, 3, 4, 5


def _lstm_args():
    z = np.zeros
    return dict(
        x=z((B, T, FEAT)), kernel=z((FEAT, 4 * U)), recurrent_kernel=z((U, 4 * U)), bias=z((4 * U,))
    )


def _gru_args():
    z = np.zeros
    return dict(
        x=z((B, T, FEAT)),
        kernel=z((FEAT, 3 * U)),
        recurrent_kernel=z((U, 3 * U)),
        bias=z((2, 3 * U)),
    )


_H = np.zeros((B, U))
_COMMON_BAD = [
    # (kwargs, exception, message fragment); {op} is replaced by the op name
    (dict(x=np.zeros((B, FEAT))), ValueError, "{op}: x must have rank 3"),
    (dict(x=np.zeros((B, T, FEAT, 1))), ValueError, "{op}: x must have rank 3"),
    (dict(x=np.zeros((B, 0, FEAT))), ValueError, "{op}: x must have at least one time step"),
    (dict(x=np.zeros((B, T, FEAT + 1))), ValueError, "{op}: kernel has shape"),
    (dict(kernel=np.zeros((FEAT,))), ValueError, "{op}: kernel has shape"),
    (dict(recurrent_kernel=np.zeros((U, 2 * U))), ValueError, "{op}: recurrent_kernel has shape"),
    (dict(recurrent_kernel=np.zeros((U + 1, 4 * U))), ValueError, "{op}: recurrent_kernel"),
    (dict(recurrent_kernel=np.zeros((U,))), ValueError, "{op}: recurrent_kernel must have rank 2"),
    (dict(mask=np.ones((B, T + 1), bool)), ValueError, "{op}: mask has shape"),
    (dict(mask=np.ones((B, T, 1), bool)), ValueError, "{op}: mask has shape"),
    (dict(mask=np.ones(T, bool)), ValueError, "{op}: mask has shape"),
    (dict(mask=np.array([["a"] * T] * B)), TypeError, "{op}: mask"),
    (dict(x=np.zeros((B, T, FEAT), complex)), TypeError, "{op}: x must have a real"),
    (dict(kernel=np.zeros((FEAT, 4 * U), complex)), TypeError, "{op}: kernel must have a real"),
    (dict(x=np.full((B, T, FEAT), "a")), TypeError, "{op}: x must have a real"),
    (dict(x="abc"), TypeError, "{op}: x must be an array"),
    (dict(x=[[[1.0, 2.0]], [[1.0]]]), TypeError, "{op}: x"),
    (dict(x=np.array([None] * 3, dtype=object)), TypeError, "{op}: x must have a real"),
    (dict(x=None), TypeError, "{op}: x is required"),
    (dict(kernel=None), TypeError, "{op}: kernel is required"),
    (dict(recurrent_kernel=None), TypeError, "{op}: recurrent_kernel is required"),
    (dict(return_sequences="yes"), TypeError, "{op}: return_sequences must be a bool"),
    (dict(return_state=1), TypeError, "{op}: return_state must be a bool"),
    (dict(go_backwards=None), TypeError, "{op}: go_backwards must be a bool"),
    (dict(activation="nope"), ValueError, "{op}: unknown activation 'nope'"),
    (dict(recurrent_activation="swishy"), ValueError, "{op}: unknown recurrent_activation"),
    (dict(activation="softmax"), ValueError, "{op}: activation must be elementwise"),
    (dict(activation=3), TypeError, "{op}: activation must be a str"),
]


def _fill(table, op, gates):
    rows = []
    for kwargs, exc, frag in table:
        kw = dict(kwargs)
        if "kernel" in kw and kw["kernel"] is not None and kw["kernel"].ndim == 2:
            kw["kernel"] = np.zeros((FEAT, gates * U), kw["kernel"].dtype)
        if "recurrent_kernel" in kw and kw["recurrent_kernel"] is not None:
            rk = kw["recurrent_kernel"]
            if rk.shape == (U + 1, 4 * U):
                kw["recurrent_kernel"] = np.zeros((U + 1, gates * U))
        rows.append(pytest.param(kw, exc, frag.format(op=op), id=f"{op}-{frag.format(op=op)}"))
    return rows


LSTM_BAD = _fill(_COMMON_BAD, "lstm", 4) + [
    pytest.param(kw, exc, frag, id=frag)
    for kw, exc, frag in [
        (dict(bias=np.zeros((4 * U - 1,))), ValueError, "lstm: bias has shape"),
        (dict(bias=np.zeros((2, 4 * U))), ValueError, "lstm: bias has shape"),
        (dict(bias=np.zeros(4 * U, complex)), TypeError, "lstm: bias must have a real"),
        (
            dict(recurrent_kernel=np.zeros((0, 0)), kernel=np.zeros((FEAT, 0)), bias=None),
            ValueError,
            "lstm: units must be >= 1",
        ),
        (dict(initial_state=np.zeros((2, B, U))), TypeError, "lstm: initial_state must be a list"),
        (dict(initial_state=_H), TypeError, "lstm: initial_state must be a list"),
        (dict(initial_state=[_H]), ValueError, "lstm: initial_state must be [h0, c0]"),
        (dict(initial_state=[_H, _H, _H]), ValueError, "lstm: initial_state must be [h0, c0]"),
        (
            dict(initial_state=[np.zeros((B, U + 1)), _H]),
            ValueError,
            "lstm: initial_state[0] (h0) has shape",
        ),
        (
            dict(initial_state=[_H, np.zeros((B + 1, U))]),
            ValueError,
            "lstm: initial_state[1] (c0) has shape",
        ),
        (
            dict(initial_state=[_H, np.zeros(U)]),
            ValueError,
            "lstm: initial_state[1] (c0) has shape",
        ),
        (dict(initial_state=[None, _H]), TypeError, "lstm: initial_state[0] (h0) is required"),
        (dict(initial_state=[_H, _H.astype(complex)]), TypeError, "lstm: initial_state[1] (c0)"),
    ]
]


GRU_BAD = _fill(_COMMON_BAD, "gru", 3) + [
    pytest.param(kw, exc, frag, id=frag)
    for kw, exc, frag in [
        (dict(bias=np.zeros((3 * U,))), ValueError, "gru: bias has shape"),
        (dict(bias=np.zeros((2, 3 * U)), reset_after=False), ValueError, "gru: bias has shape"),
        (dict(bias=np.zeros((1, 3 * U))), ValueError, "gru: bias has shape"),
        (dict(bias=np.zeros((2, 3 * U + 1))), ValueError, "gru: bias has shape"),
        (dict(reset_after="no"), TypeError, "gru: reset_after must be a bool"),
        (dict(initial_state=[_H, _H]), ValueError, "gru: initial_state must be h0 or [h0]"),
        (dict(initial_state=[]), ValueError, "gru: initial_state must be h0 or [h0]"),
        (dict(initial_state=np.zeros((B, U + 1))), ValueError, "gru: initial_state (h0) has shape"),
        (dict(initial_state=np.zeros((1, B, U))), ValueError, "gru: initial_state (h0) has shape"),
        (
            dict(initial_state=[np.zeros((B + 1, U))]),
            ValueError,
            "gru: initial_state (h0) has shape",
        ),
        (dict(initial_state="h0"), TypeError, "gru: initial_state (h0)"),
    ]
]


@pytest.mark.parametrize("kwargs,exc,fragment", LSTM_BAD)
def test_lstm_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.lstm(**{**_lstm_args(), **kwargs})


@pytest.mark.parametrize("kwargs,exc,fragment", GRU_BAD)
def test_gru_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.gru(**{**_gru_args(), **kwargs})


def _cell_args():
    z = np.zeros
    return dict(
        x_t=z((B, FEAT)),
        h=z((B, U)),
        c=z((B, U)),
        kernel=z((FEAT, 4 * U)),
        recurrent_kernel=z((U, 4 * U)),
        bias=z((4 * U,)),
    )


CELL_BAD = [
    (dict(x_t=np.zeros((B, 1, FEAT))), ValueError, "lstm_cell: x_t must have rank 2"),
    (dict(x_t=np.zeros((B, FEAT + 1))), ValueError, "lstm_cell: kernel has shape"),
    (dict(kernel=np.zeros((FEAT, 3 * U))), ValueError, "lstm_cell: kernel has shape"),
    (
        dict(recurrent_kernel=np.zeros((U, 3 * U))),
        ValueError,
        "lstm_cell: recurrent_kernel has shape",
    ),
    (
        dict(recurrent_kernel=np.zeros((U, 4 * U, 1))),
        ValueError,
        "lstm_cell: recurrent_kernel must have rank 2",
    ),
    (dict(h=np.zeros((B, U + 1))), ValueError, "lstm_cell: h has shape"),
    (dict(c=np.zeros((B + 1, U))), ValueError, "lstm_cell: c has shape"),
    (dict(c=np.zeros((U,))), ValueError, "lstm_cell: c has shape"),
    (dict(bias=np.zeros((2, 4 * U))), ValueError, "lstm_cell: bias has shape"),
    (dict(h=None), TypeError, "lstm_cell: h is required"),
    (dict(x_t=None), TypeError, "lstm_cell: x_t is required"),
    (dict(x_t=np.zeros((B, FEAT), complex)), TypeError, "lstm_cell: x_t must have a real"),
    (dict(c=np.full((B, U), "x")), TypeError, "lstm_cell: c must have a real"),
    (
        dict(recurrent_kernel=np.zeros((0, 0)), kernel=np.zeros((FEAT, 0)), bias=None),
        ValueError,
        "lstm_cell: units must be >= 1",
    ),
]


@pytest.mark.parametrize("kwargs,exc,fragment", CELL_BAD, ids=[r[2] for r in CELL_BAD])
def test_lstm_cell_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.lstm_cell(**{**_cell_args(), **kwargs})
