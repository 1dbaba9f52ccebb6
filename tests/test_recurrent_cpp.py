"""lstm, lstm_cell, gru and simple_rnn on the C++ path: against the NumPy path, thread-count
reproducibility, empty batches, fallbacks, the layers' pre-packed weights and the
argument checks of the private bindings (``_core.lstm``, ``_core.gru``, ``_core.simple_rnn``).

The op-level comparisons with the float64 reference and the Keras fixtures are in
test_recurrent.py and test_golden.py (which run "cpp" once the ops are in CPP_OPS).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, parallel_regions, run_on

import fastlayers as fl
from fastlayers import _backend, layers
from fastlayers._cpp import pack_lstm

F32 = np.float32

pytestmark = pytest.mark.skipif(
    not _backend.core_available() or NUMPY_ONLY, reason="compiled core not in this run"
)


def _data(rng, gates, b, t, f, u, bias_shape, mask=True, state=True):
    d = {
        "x": rng.standard_normal((b, t, f)).astype(F32),
        "kernel": (rng.standard_normal((f, gates * u)) / np.sqrt(f)).astype(F32),
        "recurrent_kernel": (rng.standard_normal((u, gates * u)) / np.sqrt(u)).astype(F32),
        "bias": None if bias_shape is None else (0.5 * rng.standard_normal(bias_shape)).astype(F32),
    }
    kw = {}
    if state:
        states = [rng.standard_normal((b, u)).astype(F32) for _ in range(2 if gates == 4 else 1)]
        kw["initial_state"] = states if gates == 4 else states[0]
    if mask:
        m = rng.random((b, t)) > 0.3
        if b > 0 and t > 2:
            m[0, :2] = False  # leading masked steps with a non-zero initial state
            m[-1, -1] = False
        kw["mask"] = m
    return d, kw


def _call(op, d, **kw):
    fn = getattr(fl, op)
    return fn(d["x"], d["kernel"], d["recurrent_kernel"], d["bias"], **kw)


def _compare(op, d, kw, magnitude=4.0):
    got = run_on("cpp", _call, op, d, **kw)
    want = run_on("numpy", _call, op, d, **kw)
    k = d["x"].shape[2] + d["recurrent_kernel"].shape[0]
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for i, (a, e) in enumerate(zip(got, want)):
        assert_close(a, e, k=k, magnitude=magnitude, err_msg=f"{op} output {i}")
    return got


# (op, extra kwargs, bias shape for u units)
VARIANTS = [
    pytest.param("lstm", {}, lambda u: (4 * u,), id="lstm"),
    pytest.param("gru", {"reset_after": True}, lambda u: (2, 3 * u), id="gru_after"),
    pytest.param("gru", {"reset_after": False}, lambda u: (3 * u,), id="gru_before"),
    pytest.param("simple_rnn", {}, lambda u: (u,), id="simple_rnn"),
]


def _gates(op):
    return {"lstm": 4, "gru": 3, "simple_rnn": 1}[op]


# -------------------------------------------------------------- C++ vs NumPy


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("u", [1, 7, 9, 17])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cpp_matches_numpy_masks_units(op, extra, bias, u, go_backwards, rng):
    d, kw = _data(rng, _gates(op), 3, 6, 5, u, bias(u))
    kw.update(extra, return_sequences=True, return_state=True, go_backwards=go_backwards)
    _compare(op, d, kw)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("seq", [False, True])
def test_cpp_long_sequence_does_not_drift(op, extra, bias, seq, rng):
    """T = 1000, C++ against NumPy: the contractive recurrence damps each step's rounding
    (see test_recurrent.py::test_long_sequence_does_not_drift for the bound)."""
    d, kw = _data(rng, _gates(op), 3, 1000, 6, 17, bias(17))
    kw.update(extra, return_sequences=seq, return_state=True)
    _compare(op, d, kw, magnitude=10.0)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize(
    "act,ract", [("relu", "hard_sigmoid"), ("gelu", "sigmoid"), ("softsign", "linear")]
)
def test_cpp_activation_table(op, extra, bias, act, ract, rng):
    d, kw = _data(rng, _gates(op), 2, 7, 4, 9, bias(9))
    kw.update(extra, return_sequences=True, activation=act)
    if op != "simple_rnn":  # which has no recurrent_activation
        kw["recurrent_activation"] = ract
    _compare(op, d, kw, magnitude=10.0)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
def test_cpp_without_bias(op, extra, bias, rng):
    d, kw = _data(rng, _gates(op), 2, 5, 3, 16, None)
    kw.update(extra, return_sequences=True, return_state=True)
    _compare(op, d, kw)


@pytest.mark.parametrize("b,f,u", [(1, 1, 1), (3, 4, 7), (5, 33, 17), (0, 3, 4)])
def test_cpp_lstm_cell_matches_numpy(b, f, u, rng):
    x = rng.standard_normal((b, f)).astype(F32)
    h, c = rng.standard_normal((2, b, u)).astype(F32)
    kernel = (rng.standard_normal((f, 4 * u)) / np.sqrt(f)).astype(F32)
    rk = (rng.standard_normal((u, 4 * u)) / np.sqrt(u)).astype(F32)
    bias = rng.standard_normal(4 * u).astype(F32)
    got = run_on("cpp", fl.lstm_cell, x, h, c, kernel, rk, bias)
    want = run_on("numpy", fl.lstm_cell, x, h, c, kernel, rk, bias)
    for a, e in zip(got, want):
        assert_close(a, e, k=f + u, magnitude=4.0)


@pytest.mark.parametrize(
    "b,f,u",
    [(1, 128, 256), (4, 7, 16), (5, 9, 17), (9, 64, 33), (2, 1, 1), (32, 5, 17), (33, 5, 17)],
)
@pytest.mark.parametrize("with_bias", [True, False])
def test_cpp_lstm_cell_is_bitwise_one_lstm_step(b, f, u, with_bias, rng):
    # lstm_cell reads the kernels in place; lstm packs them. The FMA chains are the same, so
    # are the bits (batch rows go 4 at a time in the cell's kernel: b = 5, 9 cover the tails).
    x = rng.standard_normal((b, f)).astype(F32)
    h, c = rng.standard_normal((2, b, u)).astype(F32)
    kernel = (rng.standard_normal((f, 4 * u)) / np.sqrt(f)).astype(F32)
    rk = (rng.standard_normal((u, 4 * u)) / np.sqrt(u)).astype(F32)
    bias = rng.standard_normal(4 * u).astype(F32) if with_bias else None
    ch, cc = run_on("cpp", fl.lstm_cell, x, h, c, kernel, rk, bias)
    ids = _backend.cpp_activation_ids()
    packed = pack_lstm(kernel, rk, bias)
    _, lh, lc = _backend._core.lstm(
        x[:, None], *packed, h, c, None, False, False, ids["tanh"], ids["sigmoid"]
    )
    assert np.array_equal(ch, lh) and np.array_equal(cc, lc)
    # fl.lstm with one step and raw weights takes the cell's in-place path: the same bits.
    out, sh, sc = run_on(
        "cpp",
        fl.lstm,
        x[:, None],
        kernel,
        rk,
        bias,
        initial_state=[h, c],
        return_state=True,
        return_sequences=True,
    )
    assert np.array_equal(out[:, 0], lh) and np.array_equal(sh, lh) and np.array_equal(sc, lc)
    assert not np.shares_memory(out, sh)


def test_cpp_lstm_cell_flushes_subnormals_like_lstm():
    # Every kernel call runs with flush-to-zero; the cell's in-place path too (a subnormal
    # c = 5e-40 here would differ from lstm's 0).
    ids = _backend.cpp_activation_ids()
    x = np.full((1, 1), 1e-39, F32)
    k, rk, z = np.ones((1, 4), F32), np.zeros((1, 4), F32), np.zeros((1, 1), F32)
    ch, cc = _backend._core.lstm_cell(x, k, rk, None, z, z, ids["tanh"], ids["sigmoid"])
    packed = pack_lstm(k, rk, None)
    _, lh, lc = _backend._core.lstm(
        x[:, None].copy(), *packed, z, z, None, False, False, ids["tanh"], ids["sigmoid"]
    )
    assert np.array_equal(ch, lh) and np.array_equal(cc, lc)


# ------------------------------------------------------------------ threads


@pytest.fixture
def restore_threads():
    n = fl.get_num_threads()
    yield
    fl.set_num_threads(n)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("b,t,f,u", [(1, 20, 64, 256), (48, 10, 32, 64), (7, 5, 9, 17)])
def test_cpp_bitwise_identical_for_1_and_2_threads(
    op, extra, bias, b, t, f, u, rng, restore_threads
):
    d, kw = _data(rng, _gates(op), b, t, f, u, bias(u))
    kw.update(extra, return_sequences=True, return_state=True, go_backwards=True)
    results = []
    for n in (1, 2):
        fl.set_num_threads(n)
        results.append(run_on("cpp", _call, op, d, **kw))
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)


# Shapes for each way csrc/ops/recurrent.h splits a sequence over threads: hidden units
# (B = 1..2: 16-unit blocks per thread, claimed step by step; 97, 129 and 157 leave a partial
# last block; a GRU of 65 units at B 1 is too small to split), batch rows (B = 13: 7 + 6 rows,
# register blocks 4 + 3 and 6 with the 6-row kernels, 7 and 6 with the AVX-512 one; u = 65),
# and one thread (small layers: the last shape, and a SimpleRNN of 97 units at B 1, 9409
# multiply-adds a step: recurrent.h plan_split). A SimpleRNN counts u² multiply-adds per row
# and step (the LSTM 4u²), so B 13 is a units split for it and B 40, u 65 its rows split
# (20 + 20 rows: at least 16 per thread). The splits are checked to happen (the thread pool's
# parallel regions are counted).
SPLIT_SHAPES = [(1, 7, 16, 129), (2, 6, 8, 157), (1, 6, 4, 97), (13, 5, 6, 65), (40, 5, 6, 65),
                (1, 5, 3, 33)]


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("b,t,f,u", SPLIT_SHAPES)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cpp_thread_splits_bitwise_and_match_numpy(
    op, extra, bias, b, t, f, u, go_backwards, rng, restore_threads
):
    d, kw = _data(rng, _gates(op), b, t, f, u, bias(u))
    if b == 1:  # a masked step in the middle of a batch-1 sequence as well
        kw["mask"][0, t // 2] = False
    kw.update(extra, return_sequences=True, return_state=True, go_backwards=go_backwards)
    results = []
    for n in (1, 2, 3):
        fl.set_num_threads(n)
        with parallel_regions() as regions:
            results.append(run_on("cpp", _call, op, d, **kw))
        one_thread = (b, u) == (1, 33) or (op, b, u) == ("simple_rnn", 1, 97)
        assert n == 1 or one_thread or regions() > 0, f"{n} threads: no split"
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)
    fl.set_num_threads(2)
    _compare(op, d, kw)
    last = run_on("cpp", _call, op, d, **{**kw, "return_sequences": False})
    np.testing.assert_array_equal(last[0], results[0][0][:, -1])


# Shapes whose input projection is cut into time chunks (csrc/ops/recurrent.h: kXwChunkBytes =
# 256 KiB of xw per chunk; step by step when a chunk has at least as many rows as steps, else
# row by row). B 3, u 64: 85 steps (lstm) or 113 (gru) a chunk, row by row with a short last
# chunk, on one thread and in the units split on two (each thread projects its unit blocks in a
# chunk's first step). B 48, u 32: on one thread 10 (lstm) or 14 (gru) steps, step by step; on
# two, rows 24 + 24, lstm 21 steps step by step, gru 28 row by row. B 49: rows 25 + 24.
# B 40, u 32: lstm on two threads rows 20 + 20, 25 steps row by row; gru a units split, 17 steps.
# B 4, u 512: 8 (lstm) or 10 (gru) steps of 256 KiB raised to 16 (kMinChunkRows: fewer rows
# than 16), row by row, on one thread and in the units split. B 2, F 300, u 512: the lstm's W
# (2.34 MiB) is over kChunkedMaxWBytes, so one GEMM on one thread, but a units-split item's
# slice (300 KiB; the gru's 225 KiB) is not: chunks of 16 steps on two threads (the gru's W,
# 1.76 MiB, is chunked on both, 21 steps).
CHUNK_SHAPES = [
    (3, 200, 5, 64),
    (48, 50, 7, 32),
    (49, 50, 7, 32),
    (40, 50, 7, 32),
    (4, 40, 3, 512),
    (2, 24, 300, 512),
]


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("b,t,f,u", CHUNK_SHAPES)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_projection_time_chunks_bitwise_step_by_step(
    op, extra, bias, b, t, f, u, go_backwards, threads, rng, restore_threads
):
    """A sequence equals its steps called one by one, state carried (each such call projects
    one step): the same bits whichever way the projection was cut into chunks."""
    fl.set_num_threads(threads)
    d, kw = _data(rng, _gates(op), b, t, f, u, bias(u), mask=False)
    kw.update(extra, return_state=True)
    out, *final = run_on(
        "cpp", _call, op, d, return_sequences=True, go_backwards=go_backwards, **kw
    )
    state = kw.pop("initial_state")
    for k in range(t):
        step = {**d, "x": d["x"][:, [t - 1 - k if go_backwards else k]]}
        o, *st = run_on("cpp", _call, op, step, initial_state=state, **kw)
        np.testing.assert_array_equal(out[:, k], o, err_msg=f"step {k}")
        state = st if op == "lstm" else st[0]
    for a, e in zip(final, st):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("b,t,f,u", CHUNK_SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_projection_time_chunks_masked_match_numpy(
    op, extra, bias, b, t, f, u, threads, rng, restore_threads
):
    fl.set_num_threads(threads)
    d, kw = _data(rng, _gates(op), b, t, f, u, bias(u))
    kw.update(extra, return_sequences=True, return_state=True, go_backwards=True)
    _compare(op, d, kw)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("alone", ["closed at 0", "closed at 17", "run alone"])
def test_cpp_units_split_on_one_thread_projects_slices_same_bits(
    op, extra, bias, alone, rng, restore_threads
):
    """B 2, F 400, u 530 (34 unit blocks: 8 slices of 4 and one of 2) on two threads: a units
    split, whose time chunks (16 steps, lstm; 20, gru) are sized for its items' slices of W
    (400 KiB, lstm; 300 KiB, gru). Run on one thread - closed by the test hook after the first
    chunk's projection or within the second, or the whole region on the caller alone, as the
    backoff does, from chunk 0 - the caller projects all unit blocks of a chunk at once, slice
    by slice (recurrent.h, InputProjection: all of W, 3.3 or 2.5 MiB, is over
    kChunkedMaxWBytes). The bits of one thread, and the slicing did happen. The SimpleRNN's
    one gate needs F 1100 for a W over the limit (2.3 MiB; slices of 275 KiB), and T 100 for
    more than one chunk (60 steps): both closes fall in its first chunk, and the caller
    projects the second."""
    core = _backend._core
    t, f = (100, 1100) if op == "simple_rnn" else (40, 400)
    d, kw = _data(rng, _gates(op), 2, t, f, 530, bias(530))
    kw.update(extra, return_sequences=True, return_state=True, go_backwards=alone != "run alone")
    fl.set_num_threads(1)
    want = run_on("cpp", _call, op, d, **kw)
    fl.set_num_threads(2)
    closes = core._debug_units_split_closes()
    sliced = core._debug_recurrent_sliced_projections()
    if alone == "run alone":
        got = core._debug_run_alone(lambda: run_on("cpp", _call, op, d, **kw))
    else:
        core._debug_units_split_close_at(int(alone.split()[-1]))
        try:
            got = run_on("cpp", _call, op, d, **kw)
        finally:
            core._debug_units_split_close_at(-1)
        assert core._debug_units_split_closes() == closes + 1  # the split ran, and was closed
    assert core._debug_recurrent_sliced_projections() > sliced
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)


# (b, t, f, u, threads, failing steps): chunks of 85 (lstm) / 113 (gru) steps on one thread and
# in the units split on two (B 3, u 64), so step 130 is in the second chunk of both; the rows
# split (B 48, u 32: 24 + 24 rows, chunks of 21 or 28 steps); one GEMM over the whole sequence
# (B 2, F 300, u 512 on one thread: the lstm's W is over kChunkedMaxWBytes; B 2, u 16 on two:
# a one-thread plan on a two-thread pool). A SimpleRNN (u² multiply-adds per row and step)
# splits B 48, u 32 by units and runs B 3, u 64 on one thread: B 48, u 128 is its rows split
# (and the others'). Failing chunk 0 (phase 0 of the units split), a later chunk, the last step.
PROJECTION_FAILURES = [
    (3, 200, 5, 64, 1, (0, 130, 199)),
    (3, 200, 5, 64, 2, (0, 130, 199)),
    (48, 50, 7, 32, 2, (0, 30, 49)),
    (48, 50, 7, 128, 2, (0, 30, 49)),
    (2, 24, 300, 512, 1, (0, 23)),
    (2, 10, 4, 16, 2, (0, 9)),
]

# Runs in a subprocess (a hang fails the test instead of freezing the suite): for each variant,
# direction and failing step, the call must raise MemoryError and the next call give the bits
# of a call made before any failure. Prints the list of what went wrong (JSON).
_PROJECTION_FAILURE_CHILD = """
import json, sys
import numpy as np, fastlayers as fl
from fastlayers import _backend
b, t, f, u, threads, fail_at = json.loads(sys.argv[1])
hook = _backend._core._debug_recurrent_projection_fail_at
_backend._core.set_contention_backoff(False)  # as in the suite (conftest.py): no quiet 1 thread
rng = np.random.default_rng(0)
fl.set_num_threads(threads)
x = rng.standard_normal((b, t, f)).astype(np.float32)
bad = []
for op, gates, extra in (("lstm", 4, {}), ("gru", 3, {"reset_after": True}),
                         ("gru", 3, {"reset_after": False}), ("simple_rnn", 1, {})):
    k = (rng.standard_normal((f, gates * u)) / np.sqrt(f)).astype(np.float32)
    r = (rng.standard_normal((u, gates * u)) / np.sqrt(u)).astype(np.float32)
    bias = rng.standard_normal((2, 3 * u) if extra.get("reset_after") else (gates * u,))
    bias = bias.astype(np.float32)
    for backwards in (False, True):
        def call():
            with fl.use_backend("cpp"):
                return getattr(fl, op)(x, k, r, bias, return_sequences=True, return_state=True,
                                       go_backwards=backwards, **extra)
        want = call()
        name = f"{op}{extra} go_backwards={backwards}"
        for step in list(fail_at) + [t]:  # step t: no such step, nothing fails
            hook(step)
            try:
                call()
                raised = False
            except MemoryError:
                raised = True
            finally:
                hook(-1)
            if raised != (step < t):
                bad.append(f"{name} step {step}: raised {raised}")
            if any(not np.array_equal(a, e) for a, e in zip(call(), want)):
                bad.append(f"{name} step {step}: other bits after it")
print(json.dumps(bad))
"""


@pytest.mark.parametrize("b,t,f,u,threads,fail_at", PROJECTION_FAILURES)
def test_cpp_failed_projection_raises_and_leaves_the_pool_usable(b, t, f, u, threads, fail_at):
    """The input projection's GEMM may fail to allocate (std::bad_alloc, test hook) in any time
    chunk, on any thread: the call raises MemoryError on the caller (no hang: no thread waits
    for a partner that gave up; none lets the exception escape), and the next calls compute the
    same bits. LSTM, GRU (both resets) and SimpleRNN, both directions."""
    import json
    import subprocess
    import sys

    args = json.dumps([b, t, f, u, threads, list(fail_at)])
    try:
        res = subprocess.run(
            [sys.executable, "-c", _PROJECTION_FAILURE_CHILD, args],
            capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("hung: no result within 120 s")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout) == []


# --------------------------------------------------------------- edge cases


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("use_mask", [False, True])
def test_cpp_empty_batch(op, extra, bias, seq, use_mask, rng):
    d, kw = _data(rng, _gates(op), 0, 3, 2, 5, bias(5), mask=use_mask)
    kw.update(extra, return_sequences=seq, return_state=True)
    out, *states = run_on("cpp", _call, op, d, **kw)
    assert out.shape == ((0, 3, 5) if seq else (0, 5)) and out.dtype == F32
    assert all(s.shape == (0, 5) and s.dtype == F32 for s in states)


def test_core_empty_batch_ignores_packed_contents():
    """B = 0 returns before any kernel runs (the outputs are merely shaped)."""
    core = _backend._core
    ids = core.activation_ids()
    pk = core.PackedGates(np.zeros((3, 8), F32), 4)
    pr = core.PackedGates(np.zeros((2, 8), F32), 4)
    z = np.zeros((0, 2), F32)
    out, h, c = core.lstm(
        np.zeros((0, 4, 3), F32), pk, pr, z, z, None, True, False, ids["tanh"], ids["sigmoid"]
    )
    assert out.shape == (0, 4, 2) and h.shape == c.shape == (0, 2)


@pytest.mark.parametrize("op,extra,bias", VARIANTS)
def test_cpp_all_true_mask_is_bitwise_no_mask(op, extra, bias, rng):
    d, kw = _data(rng, _gates(op), 4, 6, 5, 9, bias(9), mask=False)
    kw.update(extra, return_sequences=True, return_state=True)
    a = run_on("cpp", _call, op, d, **kw)
    b = run_on("cpp", _call, op, d, mask=np.ones((4, 6), bool), **kw)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------- fallbacks


@pytest.mark.parametrize("op,extra,bias,which", [
    pytest.param(*v.values, which, id=f"{v.id}-{which}")
    for v in VARIANTS for which in ("activation", "recurrent_activation")
    if v.values[0] != "simple_rnn" or which == "activation"])
def test_callable_activation_not_served_by_cpp(op, extra, bias, which, rng):
    d, kw = _data(rng, _gates(op), 2, 4, 3, 5, bias(5))
    kw.update(extra, return_sequences=True)
    kw[which] = np.tanh if which == "activation" else (lambda v: 1 / (1 + np.exp(-v)))
    with pytest.raises(NotImplementedError, match=f"{op}.*callable {which}"):
        run_on("cpp", _call, op, d, **kw)
    got = run_on("auto", _call, op, d, **kw)  # falls back to NumPy
    want = run_on("numpy", _call, op, d, **kw)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ layers


@pytest.mark.parametrize(
    "cls,kw",
    [
        (layers.LSTM, {}),
        (layers.GRU, {"reset_after": True}),
        (layers.GRU, {"reset_after": False}),
        (layers.SimpleRNN, {}),
    ],
)
def test_layers_pack_once_and_match_functional(cls, kw, rng):
    layer = cls(7, return_sequences=True, return_state=True, seed=3, **kw)
    x = rng.standard_normal((3, 5, 4)).astype(F32)
    layer.build(x.shape)
    packed = layer._packed
    assert packed is not None
    with fl.use_backend("cpp"):
        got = layer(x)
        assert layer._packed is packed  # calls never repack
    w = layer.get_weights()
    fn = {layers.LSTM: fl.lstm, layers.GRU: fl.gru, layers.SimpleRNN: fl.simple_rnn}[cls]
    want = run_on("cpp", fn, x, *w, return_sequences=True, return_state=True, **kw)
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)
    # New weights: packed again.
    layer.set_weights([v + F32(0.25) for v in w])
    assert layer._packed is not packed
    with fl.use_backend("cpp"):
        moved = layer(x)
    assert np.max(np.abs(moved[0] - got[0])) > 1e-3
    numpy_res = run_on("numpy", layer, x)
    for a, e in zip(moved, numpy_res):
        assert_close(a, e, k=11, magnitude=4.0)


# ------------------------------------------------------- binding argument checks


def _core_lstm_args():
    core = _backend._core
    ids = core.activation_ids()
    b, t, f, u = 2, 3, 4, 5
    return dict(
        x=np.zeros((b, t, f), F32),
        packed_kernel=core.PackedGates(np.zeros((f, 4 * u), F32), 4),
        packed_recurrent=core.PackedGates(np.zeros((u, 4 * u), F32), 4),
        h0=np.zeros((b, u), F32),
        c0=np.zeros((b, u), F32),
        mask=None,
        return_sequences=False,
        go_backwards=False,
        activation_id=ids["tanh"],
        recurrent_activation_id=ids["sigmoid"],
    )


LSTM_CORE_BAD = [
    ({"x": np.zeros((2, 3, 4))}, TypeError, "lstm: x must be a float32 array"),
    ({"x": np.zeros((2, 3, 8), F32)[:, :, ::2]}, ValueError, "lstm: x must be C-contiguous"),
    ({"x": np.zeros((2, 4), F32)}, ValueError, "lstm: x must have shape"),
    ({"x": [[[0.0]]]}, TypeError, "lstm: x must be a numpy.ndarray"),
    ({"x": np.zeros((2, 3, 5), F32)}, ValueError, "lstm: packed_kernel must be packed from"),
    ({"h0": np.zeros((2, 6), F32)}, ValueError, "lstm: h0 must have shape (2, 5)"),
    ({"c0": np.zeros((3, 5), F32)}, ValueError, "lstm: c0 must have shape (2, 5)"),
    ({"c0": np.zeros((2, 5), np.float64)}, TypeError, "lstm: c0 must be a float32 array"),
    ({"mask": np.ones((2, 4), bool)}, ValueError, "lstm: mask must have shape (2, 3)"),
    ({"mask": np.ones((2, 3), np.int64)}, TypeError, "lstm: mask must be a bool or uint8"),
    ({"mask": np.ones((3, 2), bool).T}, ValueError, "lstm: mask must be C-contiguous"),
    ({"activation_id": 999}, ValueError, "lstm: activation_id must be in"),
    ({"recurrent_activation_id": -1}, ValueError, "lstm: recurrent_activation_id must be in"),
]


def _core_lstm_cell_args():
    ids = _backend._core.activation_ids()
    b, f, u = 2, 4, 5
    return dict(
        x=np.zeros((b, f), F32),
        kernel=np.zeros((f, 4 * u), F32),
        recurrent_kernel=np.zeros((u, 4 * u), F32),
        bias=None,
        h0=np.zeros((b, u), F32),
        c0=np.zeros((b, u), F32),
        activation_id=ids["tanh"],
        recurrent_activation_id=ids["sigmoid"],
    )


LSTM_CELL_CORE_BAD = [
    ({"x": np.zeros((2, 4))}, TypeError, "lstm_cell: x must be a float32 array"),
    ({"x": np.zeros((2, 1, 4), F32)}, ValueError, "lstm_cell: x must have shape"),
    ({"kernel": np.zeros((3, 20), F32)}, ValueError, "lstm_cell: kernel must have shape (4, 20)"),
    ({"kernel": np.zeros((20, 4), F32).T}, ValueError, "lstm_cell: kernel must be C-contiguous"),
    (
        {"recurrent_kernel": np.zeros((5, 21), F32)},
        ValueError,
        "lstm_cell: recurrent_kernel must have shape (u, 4u), got (5, 21)",
    ),
    ({"bias": np.zeros(19, F32)}, ValueError, "lstm_cell: bias must have shape (20,)"),
    ({"bias": np.zeros(20, np.int32)}, TypeError, "lstm_cell: bias must be a float32 array"),
    ({"h0": np.zeros((2, 6), F32)}, ValueError, "lstm_cell: h0 must have shape (2, 5)"),
    ({"c0": np.zeros((1, 5), F32)}, ValueError, "lstm_cell: c0 must have shape (2, 5)"),
    ({"c0": [[0.0] * 5] * 2}, TypeError, "lstm_cell: c0 must be a numpy.ndarray"),
    ({"activation_id": 999}, ValueError, "lstm_cell: activation_id must be in"),
]


@pytest.mark.parametrize("bad,exc,frag", LSTM_CELL_CORE_BAD, ids=[r[2] for r in LSTM_CELL_CORE_BAD])
def test_core_lstm_cell_rejects_bad_arguments(bad, exc, frag):
    args = {**_core_lstm_cell_args(), **bad}
    with pytest.raises(exc, match=re.escape(frag)):
        _backend._core.lstm_cell(**args)


@pytest.mark.parametrize("bad,exc,frag", LSTM_CORE_BAD, ids=[r[2] for r in LSTM_CORE_BAD])
def test_core_lstm_rejects_bad_arguments(bad, exc, frag):
    args = {**_core_lstm_args(), **bad}
    with pytest.raises(exc, match=re.escape(frag)):
        _backend._core.lstm(**args)


def test_packed_gates_properties_and_errors():
    core = _backend._core
    p = core.PackedGates(np.ones((3, 4 * 17), F32), 4, np.zeros(4 * 17, F32))
    assert (p.k, p.units, p.gates, p.has_bias) == (3, 17, 4, True)
    # ceil(17/16) = 2 blocks of 4 gates x 16 columns, K rows, plus the padded bias.
    assert p.nbytes == 4 * (2 * 4 * 16 * 3 + 2 * 4 * 16)
    assert "PackedGates(k=3, gates=4, units=17, bias=True)" == repr(p)
    with pytest.raises(ValueError, match="gates must be in"):
        core.PackedGates(np.ones((3, 8), F32), 0)
    with pytest.raises(ValueError, match="must be a multiple of gates"):
        core.PackedGates(np.ones((3, 10), F32), 4)
    with pytest.raises(ValueError, match="bias must have shape"):
        core.PackedGates(np.ones((3, 8), F32), 4, np.ones(7, F32))
    with pytest.raises(TypeError, match="float32"):
        core.PackedGates(np.ones((3, 8)), 4)
    with pytest.raises(
        ValueError, match=re.escape("from a (4, 20) kernel with 4 gates, got (4, 12) with 3 gates")
    ):
        args = _core_lstm_args()
        core.lstm(**{**args, "packed_kernel": core.PackedGates(np.ones((4, 12), F32), 3)})


def test_core_lstm_accepts_uint8_mask():
    args = _core_lstm_args()
    out_bool = _backend._core.lstm(**{**args, "mask": np.ones((2, 3), bool)})
    out_u8 = _backend._core.lstm(**{**args, "mask": np.ones((2, 3), np.uint8)})
    for a, e in zip(out_bool, out_u8):
        np.testing.assert_array_equal(a, e)


def test_core_gru_checks_packed_shapes():
    core = _backend._core
    ids = core.activation_ids()
    b, t, f, u = 2, 3, 4, 5
    x = np.zeros((b, t, f), F32)
    h0 = np.zeros((b, u), F32)
    pk = core.PackedGates(np.zeros((f, 3 * u), F32), 3)
    full = core.PackedGates(np.zeros((u, 3 * u), F32), 3)
    zr = core.PackedGates(np.zeros((u, 2 * u), F32), 2)
    hh = core.PackedDense(np.zeros((u, u), F32))
    act = (ids["tanh"], ids["sigmoid"])
    out, h = core.gru(x, pk, full, None, h0, None, True, False, True, *act)
    assert out.shape == (b, t, u) and h.shape == (b, u)
    out, h = core.gru(x, pk, zr, hh, h0, None, False, False, False, *act)
    assert out.shape == (b, u)
    with pytest.raises(ValueError, match="packed_recurrent_h must be None"):
        core.gru(x, pk, full, hh, h0, None, True, False, True, *act)
    with pytest.raises(ValueError, match="packed_recurrent_h .* is required"):
        core.gru(x, pk, zr, None, h0, None, True, False, False, *act)
    with pytest.raises(ValueError, match="packed_recurrent must be packed from a \\(5, 10\\)"):
        core.gru(x, pk, full, hh, h0, None, True, False, False, *act)
    with pytest.raises(TypeError, match="packed_recurrent_h must be a PackedDense"):
        core.gru(x, pk, zr, zr, h0, None, True, False, False, *act)
    with pytest.raises(ValueError, match="packed_recurrent_h must be packed from a \\(5, 5\\)"):
        core.gru(
            x, pk, zr, core.PackedDense(np.zeros((5, 6), F32)), h0, None, True, False, False, *act
        )
    plain = core.PackedDense(np.zeros((f, 3 * u), F32))
    with pytest.raises(TypeError):  # a plain PackedDense is not gate-interleaved
        core.gru(x, plain, full, None, h0, None, True, False, True, *act)


def _core_simple_rnn_args():
    core = _backend._core
    b, t, f, u = 2, 3, 4, 5
    return dict(
        x=np.zeros((b, t, f), F32),
        packed_kernel=core.PackedGates(np.zeros((f, u), F32), 1),
        packed_recurrent=core.PackedGates(np.zeros((u, u), F32), 1),
        h0=np.zeros((b, u), F32),
        mask=None,
        return_sequences=False,
        go_backwards=False,
        activation_id=core.activation_ids()["tanh"],
    )


SIMPLE_RNN_CORE_BAD = [
    ({"x": np.zeros((2, 3, 4))}, TypeError, "simple_rnn: x must be a float32 array"),
    ({"x": np.zeros((2, 3, 8), F32)[:, :, ::2]}, ValueError,
     "simple_rnn: x must be C-contiguous"),
    ({"x": np.zeros((2, 4), F32)}, ValueError, "simple_rnn: x must have shape"),
    ({"x": np.zeros((2, 3, 5), F32)}, ValueError,
     "simple_rnn: packed_kernel must be packed from a (5, 5) kernel with 1 gates, got (4, 5)"),
    ({"packed_kernel": "w"}, TypeError, "incompatible function arguments"),
    ({"packed_recurrent": "PackedGates4"}, ValueError,
     "simple_rnn: packed_recurrent must be packed from a (5, 5) kernel with 1 gates, got (5, 20) "
     "with 4 gates"),
    ({"h0": np.zeros((2, 6), F32)}, ValueError, "simple_rnn: h0 must have shape (2, 5)"),
    ({"h0": None}, TypeError, "simple_rnn: h0 must be a numpy.ndarray"),
    ({"mask": np.ones((2, 4), bool)}, ValueError, "simple_rnn: mask must have shape (2, 3)"),
    ({"mask": np.ones((2, 3), np.float32)}, TypeError, "simple_rnn: mask must be a bool or uint8"),
    ({"activation_id": 999}, ValueError, "simple_rnn: activation_id must be in"),
]


@pytest.mark.parametrize("bad,exc,frag", SIMPLE_RNN_CORE_BAD,
                         ids=[r[2] for r in SIMPLE_RNN_CORE_BAD])
def test_core_simple_rnn_rejects_bad_arguments(bad, exc, frag):
    core = _backend._core
    if bad.get("packed_recurrent") == "PackedGates4":  # an LSTM's recurrent kernel
        bad = {"packed_recurrent": core.PackedGates(np.zeros((5, 20), F32), 4)}
    args = {**_core_simple_rnn_args(), **bad}
    with pytest.raises(exc, match=re.escape(frag)):
        core.simple_rnn(**args)


def test_core_simple_rnn_shapes_and_uint8_mask():
    core = _backend._core
    args = _core_simple_rnn_args()
    out, h = core.simple_rnn(**{**args, "return_sequences": True})
    assert out.shape == (2, 3, 5) and h.shape == (2, 5) and out.dtype == h.dtype == F32
    a = core.simple_rnn(**{**args, "mask": np.ones((2, 3), bool)})
    b = core.simple_rnn(**{**args, "mask": np.ones((2, 3), np.uint8)})
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
