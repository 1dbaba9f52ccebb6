"""NaN and +-inf through every attention op and softmax, both paths (docs/semantics.md §15).

A query row's output (and weights) is NaN exactly when a NaN reaches it: through its own
query, or through a key or value row it may attend (the mask and the causal rule allow it;
a fully masked row of the fused and subtract rules attends every key, §14). A NaN in a row
it may not attend never reaches it, whatever block or chunk the kernels put the rows in.
A +inf logit takes the weight (shared equally by several), never NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backends_for, run_on

import fastlayers as fl

F32 = np.float32


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


def _ops(rng, d):
    """(name, fn(q, k, v, mask (T, S) bool or None, causal), rule) for every attention op.
    rule: how a fully masked row treats the keys: "fused" (uniform over all keys whatever
    the scores: a NaN value reaches it, a NaN key does not), "subtract" (scores lowered by
    1e9, all kept: both reach it), "none" (zero weights: nothing reaches it)."""
    n, h = 2, 3
    wq, wk, wv = (_randn(rng, d, n, h) for _ in range(3))
    wo = _randn(rng, n, h, d)

    def mha(scores):
        def f(q, k, v, mask, causal):
            return fl.multi_head_attention(
                q, v, k, query_kernel=wq, key_kernel=wk, value_kernel=wv, output_kernel=wo,
                attention_mask=mask, use_causal_mask=causal, return_attention_scores=scores)
        return f

    def luong(fn, **kw):
        def f(q, k, v, mask, causal):
            vm = None if mask is None else mask[0][None]  # value_mask (B, S): row 0's mask
            return fn(q, v, k, value_mask=vm, use_causal_mask=causal, **kw)
        return f

    return {
        "sdpa": (lambda q, k, v, mask, causal: fl.scaled_dot_product_attention(
            q, k, v, mask=mask, is_causal=causal), "fused"),
        "attention": (luong(fl.attention, return_attention_scores=True), "subtract"),
        "attention_concat": (luong(fl.attention, score_mode="concat"), "subtract"),
        "additive": (luong(fl.additive_attention, return_attention_scores=True), "subtract"),
        "mha": (mha(False), "fused"),
        "mha_scores": (mha(True), "none"),
    }


def _outputs(res):
    return list(res) if isinstance(res, tuple) else [res]


def _allowed(name, mask, causal, t, s):
    a = np.ones((t, s), bool)
    if mask is not None:
        a &= mask[0][None] if name in ("attention", "attention_concat", "additive") else mask
    if causal:
        a &= np.tril(np.ones((t, s), bool))
    return a


OPS = ["sdpa", "attention", "attention_concat", "additive", "mha", "mha_scores"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("t,s,j", [(20, 20, 9), (5, 300, 3), (100, 100, 50), (7, 600, 299)],
                         ids=str)
@pytest.mark.parametrize("where", ["k", "v"])
def test_nan_reaches_exactly_the_rows_that_may_attend_it(backend, name, causal, masked, t, s,
                                                         j, where, rng):
    fn, rule = _ops(rng, 8)[name]
    q, k, v = _randn(rng, 1, t, 8), _randn(rng, 1, s, 8), _randn(rng, 1, s, 8)
    (k if where == "k" else v)[0, j, 1] = np.nan
    mask = None
    if masked:
        mask = rng.random((t, s)) < 0.7
        mask[:, j] = rng.random(t) < 0.5  # some rows may attend key j, some may not
        mask[0] = mask[0] if name not in ("attention", "attention_concat", "additive") else (
            rng.random(s) < 0.7)
        mask[1, :] = False  # a fully masked row (value_mask ops: row 0's mask for all rows)
    out = _outputs(run_on(backend, fn, q, k, v, mask, causal))
    ref = _outputs(run_on("numpy", fn, q, k, v, mask, causal))
    allowed = _allowed(name, mask, causal, t, s)
    for row in range(t):
        full = not allowed[row].any()
        may = allowed[row, j] or (full and (rule == "subtract" or (rule, where) == ("fused", "v")))
        got = np.isnan(out[0][0, row])
        assert got.any() == may, (row, may)  # (a NaN in v column 1 reaches column 1 only)
    for o, r in zip(out, ref):
        np.testing.assert_array_equal(np.isnan(o), np.isnan(r))
        np.testing.assert_allclose(o, r, rtol=2e-5, atol=2e-5, equal_nan=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("t,s", [(3, 5), (20, 20), (100, 300)], ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_inf_logits_share_the_weight(backend, t, s, causal, rng):
    """A +inf logit takes all the weight, two share it; a -inf one gets none; a row whose
    logits are all -inf spreads its weight equally (the limit), on both paths."""
    q, k, v = _randn(rng, 1, t, 4), _randn(rng, 1, s, 4), _randn(rng, 1, s, 4)
    q[0, :, 1:] = 0.0
    q[0, :, 0] = 1.0
    k[0, :, 0] = rng.standard_normal(s)
    k[0, 0, 0] = np.inf  # every row: key 0 has logit +inf
    k[0, 2 % s, 0] = np.inf
    out = run_on(backend, fl.scaled_dot_product_attention, q, k, v, is_causal=causal)
    ref = run_on("numpy", fl.scaled_dot_product_attention, q, k, v, is_causal=causal)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    want = np.where(np.arange(t)[:, None] >= 2, (v[0, 0] + v[0, 2 % s]) / 2, v[0, 0])
    if not causal:
        want = np.broadcast_to((v[0, 0] + v[0, 2 % s]) / 2 if s > 2 else v[0, 0], want.shape)
    np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-6)
    # all logits -inf: uniform over the keys the row may attend
    q2 = np.ones((1, t, 4), F32)
    k2 = np.full((1, s, 4), -np.inf, F32)
    out = run_on(backend, fl.scaled_dot_product_attention, q2, k2, v, is_causal=causal)
    lim = np.arange(t)[:, None] >= np.arange(s)[None] if causal else np.ones((t, s), bool)
    want = (lim / lim.sum(1, keepdims=True)) @ v[0].astype(np.float64)
    np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("t,s", [(1, 2), (3, 40), (20, 17), (5, 600), (12, 300)], ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("nan_in", ["", "masked_key", "masked_value"])
def test_luong_masked_keys_take_the_weight_when_every_allowed_score_is_minus_inf(
        backend, t, s, causal, nan_in, rng):
    """Keras's Attention subtracts 1e9 from the masked scores and keeps them in the softmax,
    so when every score a row may attend is -inf its weight goes to the masked keys:
    softmax([-inf, 1 - 1e9]) = [0, 1] (Keras 3.15 gives that; the NumPy path gave [1, 0],
    the C++ path [0, 1]). A masked key whose score is NaN is left out (§15), and a masked
    value row reaches the output only through a weight that is not 0. Both drivers (T <= 8
    decode, blocked) and several key chunks."""
    q = np.zeros((1, t, 2), F32)
    q[0, :, 0] = 1.0
    k = np.zeros((1, s, 2), F32)
    k[0, :, 0] = rng.standard_normal(s) * 3
    allowed = rng.random(s) < 0.4
    allowed[0] = True
    allowed[-1] = s == 1
    k[0, allowed, 0] = -np.inf  # every allowed score is -inf
    v = _randn(rng, 1, s, 3)
    masked = np.nonzero(~allowed)[0]
    if nan_in == "masked_key":
        k[0, masked[0], 0] = np.nan
    elif nan_in == "masked_value":
        v[0, masked[-1], 1] = np.nan
    out, w = run_on(backend, fl.attention, q, v, k, value_mask=allowed[None],
                    use_causal_mask=causal, return_attention_scores=True)
    # Keras's formula, its float32 subtraction included (1e9 - x rounds to a multiple of 64)
    for row in range(t):
        may = allowed & (np.arange(s) <= row if causal else True)
        scores = k[0, :, 0].astype(F32)
        lowered = np.where(may, scores, (scores - F32(1e9)).astype(F32)).astype(np.float64)
        keep = may | np.isfinite(scores)
        if not may.any():  # a fully masked row keeps every score (NaN included)
            keep = np.ones(s, bool)
        if np.isnan(lowered[keep]).any():
            assert np.isnan(out[0, row]).all() and np.isnan(w[0, row, keep]).all()
            continue
        lk = np.where(keep, lowered, -np.inf)
        if lk.max() == -np.inf:
            want_w = keep / keep.sum()
        else:
            e = np.where(keep, np.exp(lk - lk.max()), 0)
            want_w = e / e.sum()
        np.testing.assert_allclose(w[0, row], want_w, rtol=1e-6, atol=1e-7)
        adds = may | (want_w != 0)  # the value rows that reach the output
        want = (want_w[adds, None] * v[0, adds].astype(np.float64)).sum(0)
        np.testing.assert_allclose(out[0, row], want, rtol=1e-5, atol=1e-6, equal_nan=True)
        reached = nan_in == "masked_value" and want_w[masked[-1]] != 0
        assert np.isnan(out[0, row, 1]) == reached


@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("t,s,j", [(1, 5, 0), (3, 40, 17), (20, 5, 4), (100, 300, 290)],
                         ids=str)
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("logit", [2.50000138e10, 9.634372e9])
def test_sdpa_huge_finite_logits_take_the_weight(backend, t, s, j, tie, logit, rng):
    """Logits of 2.55e9 and 9.83e8 (scale 1/sqrt(96)): the largest takes all the weight (two
    tied ones share it): v's row, on both paths and in both C++ drivers (decode for t <= 8).
    The C++ exp pass applies the scale itself only below 2^30 (attention_decode.h
    score_row_max): above, fma(x, scale, -max) could exceed 0 by half an ulp of the max (up to
    128 at 2.55e9), and exp(108) came out as the weight -1.1e-30; at 9.83e8 the excess (up to
    32, here 31.9996) is still exact in the exp, and the result equals v's row to rounding."""
    d = 96
    q = np.zeros((1, t, d), F32)
    q[0, :, 0] = F32(logit)
    k = np.zeros((1, s, d), F32)
    k[0, :, 0] = 0.5
    k[0, j, 0] = 1.0
    if tie:
        k[0, j - 1, 0] = 1.0
    v = _randn(rng, 1, s, 4)
    out = run_on(backend, fl.scaled_dot_product_attention, q, k, v)
    if tie:
        want = (v[0, j] + v[0, j - 1]) * F32(0.5)
        np.testing.assert_allclose(out[0], np.broadcast_to(want, (t, 4)), rtol=1e-6, atol=1e-7)
    elif logit / np.sqrt(d) >= 2.0**30:  # scaled first: exp(0) = 1, every other weight 0
        np.testing.assert_array_equal(out[0], np.broadcast_to(v[0, j], (t, 4)))
    else:
        np.testing.assert_allclose(out[0], np.broadcast_to(v[0, j], (t, 4)), rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", backends_for("softmax"))
@pytest.mark.parametrize("n", [1, 5, 16, 33, 300])
def test_masked_softmax_special_values(backend, n, rng):
    """The softmax op with a mask: a masked NaN or +inf is dropped; a kept +inf takes the
    weight; a kept NaN spoils its row's kept entries (masked ones stay 0)."""
    x = _randn(rng, 6, n)
    mask = np.ones((6, n), bool)
    x[0, 0] = np.nan
    mask[0, 0] = False
    x[1, n - 1] = np.inf
    mask[1, n - 1] = False
    x[2, n // 2] = np.inf
    x[3, 0] = np.nan
    mask[3, n - 1] = n == 1
    x[4, :] = -np.inf
    got = run_on(backend, fl.softmax, x, -1, mask)
    ref = run_on("numpy", fl.softmax, x, -1, mask)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    if n > 1:
        assert np.isfinite(got[0]).all() and got[0, 0] == 0
        assert np.isfinite(got[1]).all() and got[1, n - 1] == 0
    assert got[2, n // 2] == 1.0 and got[2].sum() == 1.0
    assert np.isnan(got[3, 0]) and (n == 1 or got[3, n - 1] == 0)
    np.testing.assert_allclose(got[4], np.full(n, 1 / n), rtol=1e-6)


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
@pytest.mark.parametrize("scores", [False, True])
def test_mha_scales_the_query_as_keras_does(backend, scores):
    """Keras's MultiHeadAttention multiplies the projected query by 1/sqrt(key_dim), then
    takes q.k (semantics §11; its scores path; without scores Keras 3.15-torch runs
    ops.dot_product_attention, which gives NaN for this input). Scores whose q.k passes
    float32's max but whose scaled ones do not stay finite: the larger key takes all the
    weight on both of fastlayers' paths. The C++ path scaled q.k after the product: both
    scores +inf, weights tied at 0.5 / 0.5 (robustness audit, session 37)."""
    key_dim = 4  # scale 0.5
    q = np.zeros((1, 1, 4), np.float32)
    q[0, 0, 0] = 2e19
    k = np.zeros((1, 2, 4), np.float32)
    k[0, 0, 0], k[0, 1, 0] = 2e19, 2.5e19  # q.k 4e38 and 5e38; scaled 2e38 and 2.5e38
    v = np.zeros((1, 2, 4), np.float32)
    v[0, 0, 1] = v[0, 1, 2] = 1.0
    eye = np.eye(4, dtype=np.float32)
    kw = dict(query_kernel=eye.reshape(4, 1, key_dim), key_kernel=eye.reshape(4, 1, key_dim),
              value_kernel=eye.reshape(4, 1, 4), output_kernel=eye.reshape(1, 4, 4))
    with fl.use_backend(backend), np.errstate(over="ignore"):
        got = fl.multi_head_attention(q, v, k, return_attention_scores=scores, **kw)
    out = got[0] if scores else got
    np.testing.assert_array_equal(out[0, 0], [0.0, 0.0, 1.0, 0.0])
    if scores:
        np.testing.assert_array_equal(got[1][0, 0, 0], [0.0, 1.0])
