"""Decode attention: a few queries (T = 1..8) over a long key sequence.

The C++ path serves these calls with csrc/ops/attention_decode.cpp: K and V read in place,
the keys cut into fixed chunks of 256 whose partial softmaxes are merged in chunk order, so
the bits do not depend on the thread count. These tests aim at that driver's edges - T
around 8 (9 takes the blocked driver), S at 1, primes and around the 256-key chunks, a long
sequence, key masks, fully masked rows, causal masks (top-left aligned: query t sees keys
s <= t, also for T < S), NaN in a key - on every backend of ``backends_for(op)``, against
the float64 references of tests/naive_seq_attn.py, against each other (cpp vs numpy), and
against PyTorch where it is installed. Thread counts 1, 2 and 3 must give identical bits.
"""

from __future__ import annotations

import naive_seq_attn as naive
import numpy as np
import pytest
from conftest import assert_close, backends_for, randn, run_on
from test_attention_cpp import (
    check_sdpa,
    make_mha,
    make_qkv,
    mha_k,
    mha_magnitude,
    sdpa_magnitude,
)

import fastlayers as fl

SDPA = "scaled_dot_product_attention"
MHA = "multi_head_attention"

DECODE_T = [1, 2, 3, 5, 8, 9]  # 9: just past the decode driver (the blocked one)
DECODE_S = [1, 2, 13, 97, 255, 256, 257, 600, 4096]


def only_cpp(op):
    return [b for b in backends_for(op) if b == "cpp"]


def key_mask(rng, lead, t, s, kind):
    """(lead..., T, S) or broadcastable keep-masks: "keys" masks whole keys (the same for
    every query), "rows" is per query with one fully masked row, "chunk" keeps only keys
    inside the second 256-key chunk for some rows (the others' chunks are fully masked)."""
    if kind == "keys":
        m = rng.random(lead[:1] + (1,) * (len(lead) - 1) + (1, s)) > 0.3
        m[..., 0] = True  # no fully masked rows here
        return m
    m = rng.random(lead + (t, s)) > 0.3
    if kind == "rows":
        m[..., t // 2, :] = False
    elif kind == "chunk":
        m[..., ::2, :] = False
        m[..., ::2, 256:300] = s > 300
    return m


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("s", DECODE_S)
@pytest.mark.parametrize("t", DECODE_T)
def test_decode_sdpa_shapes(backend, t, s, rng):
    q, k, v = make_qkv(rng, (2, 3), t, s, 64, 64)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v)
    check_sdpa(got, q, k, v)


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("d,dv", [(1, 1), (3, 17), (15, 16), (17, 8), (33, 65), (128, 64)])
@pytest.mark.parametrize("t,s", [(1, 257), (4, 513), (8, 31)], ids=str)
def test_decode_sdpa_head_dims(backend, t, s, d, dv, rng):
    q, k, v = make_qkv(rng, (2,), t, s, d, dv)
    for scale in (None, 0.3, -0.7, 0.0):
        got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, scale=scale)
        check_sdpa(got, q, k, v, scale=scale, err_msg=f"scale={scale}")


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("kind", ["keys", "rows", "chunk"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("t,s", [(1, 1), (1, 600), (4, 257), (7, 1031), (8, 4096)], ids=str)
def test_decode_sdpa_masks(backend, t, s, kind, causal, rng):
    q, k, v = make_qkv(rng, (2, 2), t, s, 32, 16)
    mask = key_mask(rng, (2, 2), t, s, kind)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=causal)
    check_sdpa(got, q, k, v, mask=mask, is_causal=causal)


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("t,s", [(1, 1), (3, 5), (4, 4096), (8, 300)], ids=str)
def test_decode_causal_is_top_left_aligned(backend, t, s, rng):
    """Query t sees keys 0..t, even with S > T: with unit values in those keys only, every
    output is exactly that mean; a fully masked causal row is uniform over all S keys."""
    q, k, _ = make_qkv(rng, (1,), t, s, 16, 4)
    v = np.zeros((1, s, 4), np.float32)
    v[0, : min(s, t), :] = 1.0
    v[0, t:, :] = 1000.0  # keys no row may see: any weight on them shows
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, is_causal=True)
    np.testing.assert_allclose(got, 1.0, rtol=2e-6)
    mask = np.ones((t, s), bool)
    mask[0, 0] = False  # row 0's only causal key: fully masked, attends to all S keys
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=True)
    want = v[0].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5)
    check_sdpa(got, q, k, v, mask=mask, is_causal=True)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy on NaN input
@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("j", [0, 3, 255, 256, 700])
def test_decode_nan_key_reaches_exactly_the_rows_that_attend_it(backend, bad, j, rng):
    """A NaN (or +inf) in key j makes row t NaN exactly when row t may attend key j: not
    when a mask or the causal mask hides it, also when it is the only key of its chunk the
    row keeps (the chunk's max is then -inf with a NaN score)."""
    t, s = 8, 800
    q, k, v = make_qkv(rng, (1, 2), t, s, 16, 8)
    k[..., j, :] = bad
    mask = np.ones((1, 2, t, s), bool)
    mask[..., 1, j] = False  # row 1 may not attend key j
    mask[..., 2, (j // 256) * 256 : (j // 256 + 1) * 256] = False
    mask[..., 2, j] = True  # row 2 keeps key j alone in its chunk
    mask[..., 3, :] = False
    mask[..., 3, j] = True  # row 3 keeps key j only
    mask[..., 4, :] = False  # row 4 keeps nothing: uniform over all keys, finite
    for causal in (False, True):
        got = run_on(
            backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=causal
        )
        for row in range(t):
            # (a fully masked row - row 4, and row 3 under causal for j > 3 - is the mean
            # of v: never NaN)
            may = bool(mask[0, 0, row, j]) and (not causal or j <= row)
            nan = np.isnan(got[0, :, row])
            if bad != bad:
                assert nan.all() if may else not nan.any(), (causal, row)
            else:
                # inf in a key gives a score of +-inf or NaN (inf - inf inside the dot); a
                # +inf score takes all the weight (docs/semantics.md §15). Only a row that
                # may attend the key is touched; both paths agree.
                assert may or not nan.any(), (causal, row)
        ref = run_on("numpy", fl.scaled_dot_product_attention, q, k, v, mask=mask,
                     is_causal=causal)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("t,s", [(1, 1), (3, 257), (8, 600)], ids=str)
def test_decode_keras_attention_with_scores(backend, t, s, rng):
    """Keras Attention (the subtract rule: masked keys stay in the softmax, score - 1e9),
    with and without the weights: the output is the same bits either way."""
    q, v, k = randn(rng, 2, t, 8, scale=0.5), randn(rng, 2, s, 5), randn(rng, 2, s, 8)
    vm = rng.random((2, s)) > 0.3
    vm[1] = False  # batch 1: every row fully masked
    qm = rng.random((2, t)) > 0.3
    for causal in (False, True):
        kw = dict(scale=0.7, query_mask=qm, value_mask=vm, use_causal_mask=causal)
        out, w = run_on(backend, fl.attention, q, v, k, return_attention_scores=True, **kw)
        e_out, e_w = naive.attention_f64(q, v, k, **kw)
        mag = max(1.0, 0.7 * np.abs(q).max() * np.abs(k).max()) * max(1.0, np.abs(v).max())
        assert_close(out, e_out, k=8 + s, magnitude=mag, err_msg=f"causal={causal}")
        assert_close(w, e_w, k=8 + s, magnitude=mag, err_msg=f"causal={causal}")
        only = run_on(backend, fl.attention, q, v, k, **kw)
        if backend == "cpp":
            np.testing.assert_array_equal(only, out)
        else:
            assert_close(only, e_out, k=8 + s, magnitude=mag)


@pytest.mark.parametrize("backend", backends_for(MHA))
@pytest.mark.parametrize("t,s", [(1, 300), (4, 1), (8, 513)], ids=str)
def test_decode_mha(backend, t, s, rng):
    query, value, key, kw = make_mha(rng, 2, t, s, True, "bts")
    mag, kk = mha_magnitude(query, value, key, kw), mha_k(query, value, key, kw)
    for causal in (False, True):
        kw["use_causal_mask"] = causal
        out, w = run_on(
            backend, fl.multi_head_attention, query, value, key, return_attention_scores=True, **kw
        )
        e_out, e_w = naive.multi_head_attention_f64(
            query, value, key, return_attention_scores=True, **kw
        )
        assert_close(out, e_out, k=kk, magnitude=mag, err_msg=f"causal={causal}")
        assert_close(w, e_w, k=kk, magnitude=mag, err_msg=f"causal={causal}")
        # Without scores a fully masked row is uniform over the keys (keras.ops rule), with
        # them all zero (Softmax layer): the reference without scores.
        only = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
        e_only = naive.multi_head_attention_f64(query, value, key, **kw)[0]
        assert_close(only, e_only, k=kk, magnitude=mag, err_msg=f"causal={causal}")


# ------------------------------------------------------------ threads and C++ vs NumPy


def _decode_calls(rng):
    for t, s in ((1, 4096), (4, 1031), (8, 16384)):
        q, k, v = make_qkv(rng, (1, 3), t, s, 64, 64)
        mask = key_mask(rng, (1, 3), t, s, "rows")
        yield f"sdpa t={t} s={s}", fl.scaled_dot_product_attention, (q, k, v), {}
        yield f"sdpa t={t} s={s} mask", fl.scaled_dot_product_attention, (q, k, v), dict(mask=mask)
        yield f"sdpa t={t} s={s} causal", fl.scaled_dot_product_attention, (q, k, v), dict(
            mask=mask, is_causal=True
        )
    q, v, k = randn(rng, 2, 5, 8), randn(rng, 2, 2000, 5), randn(rng, 2, 2000, 8)
    vm = rng.random((2, 2000)) > 0.3
    yield "attention scores", fl.attention, (q, v, k), dict(
        value_mask=vm, return_attention_scores=True
    )
    query, value, key, kw = make_mha(rng, 2, 3, 1500, True, "bts")
    yield "mha scores", fl.multi_head_attention, (query, value, key), dict(
        return_attention_scores=True, **kw
    )
    yield "mha", fl.multi_head_attention, (query, value, key), kw


@pytest.mark.parametrize("backend", only_cpp(SDPA))
def test_decode_is_bitwise_identical_for_any_thread_count(backend, rng):
    calls = list(_decode_calls(rng))
    old = fl.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            fl.set_num_threads(n)
            results.append([run_on(backend, fn, *args, **kw) for _, fn, args, kw in calls])
    finally:
        fl.set_num_threads(old)
    for other in results[1:]:
        for (name, *_), a, b in zip(calls, results[0], other):
            a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
            for x, y in zip(a, b):
                assert np.isfinite(x).all(), name
                assert np.array_equal(x, y), name


@pytest.mark.parametrize("backend", only_cpp(SDPA))
@pytest.mark.parametrize("t", [1, 4, 8])
def test_decode_cpp_and_numpy_agree(backend, t, rng):
    q, k, v = make_qkv(rng, (2, 2), t, 2053, 64, 48, scale=2.0)
    mask = key_mask(rng, (2, 2), t, 2053, "rows")
    for causal in (False, True):
        kw = dict(mask=mask, is_causal=causal)
        a = run_on("cpp", fl.scaled_dot_product_attention, q, k, v, **kw)
        b = run_on("numpy", fl.scaled_dot_product_attention, q, k, v, **kw)
        assert_close(a, b, k=64 + 2053, magnitude=sdpa_magnitude(q, k, v))


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("t,s", [(1, 4096), (4, 257), (8, 1000)], ids=str)
def test_decode_matches_torch(backend, t, s, rng):
    """torch.nn.functional.scaled_dot_product_attention (bool attn_mask: True = attend, as
    here; is_causal top-left aligned), on masks without fully masked rows (NaN in torch)."""
    torch = pytest.importorskip("torch")
    q, k, v = make_qkv(rng, (2, 4), t, s, 64, 64)
    mask = key_mask(rng, (2, 4), t, s, "keys")
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    cases = [
        (dict(), dict()),
        (dict(mask=mask), dict(attn_mask=torch.from_numpy(np.ascontiguousarray(mask)))),
        (dict(is_causal=True), dict(is_causal=True)),
    ]
    for ours, theirs in cases:
        got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, **ours)
        with torch.no_grad():
            want = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **theirs).numpy()
        assert_close(got, want, k=64 + s, magnitude=sdpa_magnitude(q, k, v), err_msg=str(ours))
