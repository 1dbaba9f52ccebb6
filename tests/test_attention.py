"""attention, additive_attention, scaled_dot_product_attention and multi_head_attention
against the naive float64 reference (tests/naive_seq_attn.py).

The reference replaces masked scores by -1e9 where Keras's Attention layers
subtract 1e9 in float32; the two agree on every row with at least one unmasked
key, so the reference comparisons keep one key unmasked per row and fully masked
rows are tested on their own (uniform weights, finite output).
"""

from __future__ import annotations

import math
import re

import naive_seq_attn as naive
import numpy as np
import pytest
from conftest import assert_close, backends_for, mha_weights, randn, run_on
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl

F32 = np.float32


def _amax(*arrays):
    return max([float(np.max(np.abs(a))) for a in arrays if a is not None and np.size(a)] + [0.0])


def op_backends(*ops):
    """(op, backend) pairs: each op on the backends that serve it."""
    return [pytest.param(op, b, id=f"{op}-{b}") for op in ops for b in backends_for(op)]


ALL_OPS = (
    "attention",
    "additive_attention",
    "scaled_dot_product_attention",
    "multi_head_attention",
)


def luong_magnitude(q, k, v, scale=None, score_mode="dot", weight=None):
    """Error of the output ~ (error of a score) * |v|; a dot score sums |q||k| products."""
    if score_mode == "dot":
        s = _amax(q) * _amax(k) * (1.0 if scale is None else abs(scale))
    else:
        s = 1.0 if weight is None else abs(weight)  # tanh is bounded by 1
    return max(1.0, s) * max(1.0, _amax(v))


def check_pair(actual, expected, k, magnitude):
    out, weights = actual
    e_out, e_weights = expected
    assert_close(out, e_out, k=k, magnitude=magnitude, err_msg="output")
    assert_close(weights, e_weights, k=k, magnitude=magnitude, err_msg="weights")


# --------------------------------------------------------------- Keras Attention

# (B, Tq, Tv, D, Dv, separate key, scale, query_mask, value_mask, causal)
LUONG_CASES = {
    "self": (2, 3, 3, 4, 4, False, None, False, False, False),
    "tq_ne_tv_key_ne_value_dv_ne_dim": (2, 4, 6, 3, 5, True, None, False, False, False),
    "t1_s1": (3, 1, 1, 5, 2, True, None, False, False, False),
    "tq1": (2, 1, 5, 3, 4, True, 0.5, False, True, False),
    "tv1": (2, 5, 1, 3, 4, True, None, True, False, False),
    "scale": (2, 4, 5, 6, 3, True, 0.37, False, False, False),
    "value_mask": (3, 4, 7, 4, 2, True, None, False, True, False),
    "query_mask": (3, 5, 4, 4, 6, True, None, True, False, False),
    "both_masks": (2, 6, 5, 3, 3, True, 1.7, True, True, False),
    "causal_tq_lt_tv": (2, 3, 6, 4, 5, True, None, False, False, True),
    "causal_tq_gt_tv": (2, 7, 4, 4, 5, True, None, False, False, True),
    "causal_all_masks": (2, 5, 5, 3, 2, True, 0.8, True, True, True),
    "large_dim": (1, 9, 17, 33, 16, True, None, False, True, False),
}


def make_luong(rng, b, tq, tv, d, dv, sep_key, qmask, vmask):
    q, v = randn(rng, b, tq, d), randn(rng, b, tv, dv)
    k = randn(rng, b, tv, d) if sep_key else None
    if not sep_key:
        v = randn(rng, b, tv, d)  # key defaults to value, so value needs dim D
    qm = rng.random((b, tq)) > 0.4 if qmask else None
    vm = None
    if vmask:
        vm = rng.random((b, tv)) > 0.4
        vm[:, 0] = True  # every row keeps a key (also under the causal mask)
    return q, v, k, qm, vm


@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("score_mode", ["dot", "concat"])
@pytest.mark.parametrize("case", list(LUONG_CASES), ids=list(LUONG_CASES))
def test_attention_matches_reference(backend, score_mode, case, rng):
    b, tq, tv, d, dv, sep_key, scale, qmask, vmask, causal = LUONG_CASES[case]
    q, v, k, qm, vm = make_luong(rng, b, tq, tv, d, dv, sep_key, qmask, vmask)
    weight = 0.6 if score_mode == "concat" else None
    kw = dict(
        scale=scale,
        score_mode=score_mode,
        concat_score_weight=weight,
        query_mask=qm,
        value_mask=vm,
        use_causal_mask=causal,
    )
    out, weights = run_on(backend, fl.attention, q, v, k, return_attention_scores=True, **kw)
    expected = naive.attention(q, v, k, **kw)
    kk = d + tv
    check_pair(
        (out, weights),
        expected,
        kk,
        luong_magnitude(q, k if sep_key else v, v, scale, score_mode, weight),
    )
    assert out.shape == (b, tq, v.shape[2]) and weights.shape == (b, tq, tv)
    only_out = run_on(backend, fl.attention, q, v, k, **kw)
    np.testing.assert_array_equal(only_out, out)


@pytest.mark.parametrize("backend", backends_for("attention"))
def test_attention_concat_defaults_and_weight(backend, rng):
    """concat_score_weight defaults to 1 (Keras's initial value) and scales the scores."""
    q, v, k, _, _ = make_luong(rng, 2, 3, 4, 5, 2, True, False, False)
    _, w1 = run_on(
        backend, fl.attention, q, v, k, score_mode="concat", return_attention_scores=True
    )
    _, w1b = run_on(
        backend,
        fl.attention,
        q,
        v,
        k,
        score_mode="concat",
        concat_score_weight=1,
        return_attention_scores=True,
    )
    np.testing.assert_array_equal(w1, w1b)
    _, w3 = run_on(
        backend,
        fl.attention,
        q,
        v,
        k,
        score_mode="concat",
        concat_score_weight=3.0,
        scale=0.25,
        return_attention_scores=True,
    )
    _, e3 = naive.attention(q, v, k, score_mode="concat", concat_score_weight=3.0, scale=0.25)
    assert_close(w3, e3, k=9, magnitude=3.0)
    assert np.max(np.abs(w3 - w1)) > 1e-3


@pytest.mark.parametrize("op,backend", op_backends("attention", "additive_attention"))
def test_query_mask_zeroes_output_rows_not_scores(backend, op, rng):
    q, v, k, _, _ = make_luong(rng, 2, 4, 5, 3, 6, True, False, False)
    qm = np.array([[True, False, True, False], [False, True, True, True]])
    f = getattr(fl, op)
    out, weights = run_on(backend, f, q, v, k, query_mask=qm, return_attention_scores=True)
    out_all, weights_all = run_on(backend, f, q, v, k, return_attention_scores=True)
    np.testing.assert_array_equal(out[~qm], 0)
    np.testing.assert_array_equal(out[qm], out_all[qm])
    np.testing.assert_array_equal(weights, weights_all)  # the scores are not zeroed
    np.testing.assert_allclose(weights[~qm].sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("op,backend", op_backends("attention", "additive_attention"))
@pytest.mark.parametrize("tq,tv", [(3, 6), (6, 3), (4, 4), (1, 5), (5, 1)])
def test_causal_mask_is_top_left_aligned(backend, op, tq, tv, rng):
    q, v, k, _, _ = make_luong(rng, 2, tq, tv, 3, 2, True, False, False)
    _, w = run_on(
        backend, getattr(fl, op), q, v, k, use_causal_mask=True, return_attention_scores=True
    )
    allowed = np.arange(tv)[None, :] <= np.arange(tq)[:, None]
    assert np.all(w[:, ~allowed] == 0)
    assert np.all(w[:, allowed] > 0)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize(
    "op,kw",
    [
        ("attention", {}),
        ("attention", {"scale": 2.0}),
        ("attention", {"score_mode": "concat", "concat_score_weight": 2.0}),
        ("additive_attention", {}),
        ("additive_attention", {"scale": np.array([0.5, -1.0, 2.0], F32)}),
    ],
    ids=["dot", "dot_scaled", "concat", "additive", "additive_scaled"],
)
def test_fully_masked_rows_are_uniform_and_finite(backend, op, kw, rng):
    """Keras subtracts 1e9 in float32; s - 1e9 rounds to -1e9 for |s| < 32, so a fully
    masked row gets uniform weights and the output is the mean of the values."""
    q, v, k, _, _ = make_luong(rng, 3, 4, 5, 3, 2, True, False, False)
    q *= 0.25
    assert _amax(q) * _amax(k) * 3 * 2.0 < 32  # the |s| < 32 premise, for every mode here
    vm = rng.random((3, 5)) > 0.4
    vm[:, 0] = True
    vm[1] = False  # every row of sample 1 is fully masked
    qm = np.ones((3, 4), bool)
    qm[1, 2] = False
    out, w = run_on(
        backend,
        getattr(fl, op),
        q,
        v,
        k,
        value_mask=vm,
        query_mask=qm,
        return_attention_scores=True,
        **kw,
    )
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
    np.testing.assert_allclose(w[1], np.full((4, 5), 0.2), rtol=1e-6)
    mean_v = v[1].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(out[1, [0, 1, 3]], np.tile(mean_v, (3, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[1, 2], 0)
    # The other samples still match the reference.
    expected = getattr(naive, op)(
        q[[0, 2]], v[[0, 2]], k[[0, 2]], value_mask=vm[[0, 2]], query_mask=qm[[0, 2]], **kw
    )
    check_pair((out[[0, 2]], w[[0, 2]]), expected, 8, luong_magnitude(q, k, v, 2.0))


@pytest.mark.parametrize("backend", backends_for("attention"))
def test_masked_scores_are_subtracted_in_float32(backend):
    """Keras-exact: a fully masked row with scores 40 apart. float32 s - 1e9 moves in
    steps of 64, so the scores become [-1e9, -1e9 + 64]: weights [e^-64, 1] / (1 + e^-64).
    Replacing by -1e9 would give [0.5, 0.5] and subtracting in float64 [e^-40, 1]."""
    q = np.array([[[1.0]]], F32)
    k = np.array([[[0.0], [40.0]]], F32)
    v = np.array([[[1.0], [3.0]]], F32)
    _, w = run_on(
        backend,
        fl.attention,
        q,
        v,
        k,
        value_mask=np.zeros((1, 2), bool),
        return_attention_scores=True,
    )
    s = (np.array([0.0, 40.0], F32) - F32(1e9)).astype(np.float64)
    assert s[1] - s[0] == 64.0
    e = np.exp(s - s.max())
    np.testing.assert_allclose(w[0, 0], e / e.sum(), rtol=1e-5, atol=0)


# ------------------------------------------------------------ AdditiveAttention


@pytest.mark.parametrize("backend", backends_for("additive_attention"))
@pytest.mark.parametrize("with_scale", [False, True])
@pytest.mark.parametrize("case", list(LUONG_CASES), ids=list(LUONG_CASES))
def test_additive_attention_matches_reference(backend, with_scale, case, rng):
    b, tq, tv, d, dv, sep_key, _, qmask, vmask, causal = LUONG_CASES[case]
    q, v, k, qm, vm = make_luong(rng, b, tq, tv, d, dv, sep_key, qmask, vmask)
    scale = randn(rng, d) if with_scale else None
    kw = dict(scale=scale, query_mask=qm, value_mask=vm, use_causal_mask=causal)
    out, weights = run_on(
        backend, fl.additive_attention, q, v, k, return_attention_scores=True, **kw
    )
    expected = naive.additive_attention(q, v, k, **kw)
    mag = max(1.0, _amax(scale) if with_scale else 1.0) * max(1.0, _amax(v))
    check_pair((out, weights), expected, d + tv, mag)
    np.testing.assert_array_equal(run_on(backend, fl.additive_attention, q, v, k, **kw), out)


# ---------------------------------------------------- scaled_dot_product_attention

# (q shape, S, Dv, mask shape or None, causal, scale)
SDPA_CASES = {
    "rank2": ((3, 4), 5, 6, None, False, None),
    "rank2_mask_causal": ((6, 4), 5, 2, (6, 5), True, None),
    "rank3": ((2, 3, 4), 5, 2, None, False, None),
    "rank3_mask_bts": ((2, 3, 4), 5, 2, (2, 3, 5), False, 0.1),
    "rank4": ((2, 3, 4, 8), 6, 5, None, False, None),
    "rank4_mask_ts": ((2, 3, 4, 8), 6, 5, (4, 6), False, None),
    "rank4_mask_b1ts": ((2, 3, 4, 8), 6, 5, (2, 1, 4, 6), True, None),
    "rank4_mask_1h1s": ((2, 3, 4, 8), 6, 5, (1, 3, 1, 6), False, 0.7),
    "rank5": ((2, 1, 3, 4, 5), 7, 3, (2, 1, 1, 4, 7), True, None),
    "t1": ((2, 1, 4), 5, 3, None, True, None),
    "s1": ((2, 5, 4), 1, 3, None, True, None),
    "t1_s1": ((1, 1, 1), 1, 1, None, False, None),
    "causal_t_lt_s": ((2, 3, 4), 7, 2, None, True, 2.0),
    "causal_t_gt_s": ((2, 7, 4), 3, 2, None, True, None),
    "long_row": ((1, 2, 65), 130, 17, (2, 130), False, None),
}


def make_sdpa(rng, q_shape, s, dv, mask_shape):
    lead, d = q_shape[:-2], q_shape[-1]
    q, k, v = randn(rng, *q_shape), randn(rng, *lead, s, d), randn(rng, *lead, s, dv)
    mask = None
    if mask_shape is not None:
        mask = rng.random(mask_shape) > 0.4
        mask[..., 0] = True  # no fully masked rows in the reference comparisons
    return q, k, v, mask


@pytest.mark.parametrize("backend", backends_for("scaled_dot_product_attention"))
@pytest.mark.parametrize("case", list(SDPA_CASES), ids=list(SDPA_CASES))
def test_sdpa_matches_reference(backend, case, rng):
    q_shape, s, dv, mask_shape, causal, scale = SDPA_CASES[case]
    q, k, v, mask = make_sdpa(rng, q_shape, s, dv, mask_shape)
    kw = dict(mask=mask, is_causal=causal, scale=scale)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, **kw)
    expected = naive.scaled_dot_product_attention(q, k, v, **kw)
    d = q_shape[-1]
    sc = 1 / math.sqrt(d) if scale is None else scale
    assert_close(got, expected, k=d + s, magnitude=max(1, _amax(q) * _amax(k) * sc) * _amax(v))
    assert got.shape == q_shape[:-1] + (dv,)


@pytest.mark.parametrize("backend", backends_for("scaled_dot_product_attention"))
def test_sdpa_default_scale_and_int_mask(backend, rng):
    q, k, v, _ = make_sdpa(rng, (2, 3, 4, 9), 5, 2, None)
    mask = (rng.random((4, 5)) > 0.5).astype(np.int32)
    mask[:, 1] = 1
    a = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask)
    b = run_on(
        backend, fl.scaled_dot_product_attention, q, k, v, mask=mask.astype(bool), scale=1 / 3
    )
    assert_close(a, b, k=14, magnitude=10)
    c = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask.astype(bool), scale=1.0)
    assert np.max(np.abs(a - c)) > 1e-3


@pytest.mark.parametrize("backend", backends_for("scaled_dot_product_attention"))
def test_sdpa_fully_masked_row_is_uniform_over_s(backend, rng):
    q, k, v, _ = make_sdpa(rng, (2, 2, 3, 4), 5, 3, None)
    q *= 30  # large scores: a "subtract" rule would not give a uniform row
    mask = np.ones((2, 2, 3, 5), bool)
    mask[0, 1, 2] = False
    mask[1, :, 0] = False
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask)
    assert np.all(np.isfinite(got))
    mean_v = v.astype(np.float64).mean(axis=-2)  # (2, 2, 3)
    np.testing.assert_allclose(got[0, 1, 2], mean_v[0, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1, :, 0], mean_v[1], rtol=1e-5, atol=1e-6)
    expected = naive.scaled_dot_product_attention(q, k, v, mask=mask)
    assert_close(got, expected, k=9, magnitude=_amax(q) * _amax(k) / 2 * _amax(v))


# --------------------------------------------------------------- MultiHeadAttention

# (B, T, S, Dq, Dv, Dk or None (key = value), heads, key_dim, value_dim, Dout, biases,
#  attention_mask: None | "ts" | "bts", causal)
MHA_CASES = {
    "self_1head": (2, 4, 4, 6, 6, None, 1, 3, 3, 6, True, None, False),
    "3heads_key_ne_value": (2, 3, 5, 4, 6, 5, 3, 2, 4, 7, True, None, False),
    "value_dim_ne_key_dim": (2, 4, 3, 5, 5, None, 2, 3, 6, 5, True, None, False),
    "dout_ne_dq_no_bias": (2, 3, 4, 4, 3, 2, 3, 2, 2, 6, False, None, False),
    "mask_ts": (2, 4, 5, 4, 4, None, 3, 2, 3, 4, True, "ts", False),
    "mask_bts": (3, 4, 5, 4, 2, 3, 2, 4, 3, 5, True, "bts", False),
    "causal": (2, 5, 5, 4, 4, None, 3, 2, 2, 4, True, None, True),
    "causal_t_lt_s_mask": (2, 3, 6, 4, 4, 5, 1, 4, 4, 3, True, "bts", True),
    "causal_t_gt_s": (2, 6, 3, 4, 4, None, 3, 2, 2, 4, False, None, True),
    "t1_s1": (2, 1, 1, 3, 3, None, 3, 2, 2, 3, True, None, False),
}


def make_mha(rng, b, t, s, dq, dv, dk, n, hk, hv, dout, biases, mask_kind):
    query, value = randn(rng, b, t, dq), randn(rng, b, s, dv)
    key = None if dk is None else randn(rng, b, s, dk)
    dk_ = dv if dk is None else dk
    kw = mha_weights(rng, dq, dk_, dv, n, hk, hv, dout, biases)
    if mask_kind is not None:
        m = rng.random((t, s) if mask_kind == "ts" else (b, t, s)) > 0.4
        m[..., 0] = True
        kw["attention_mask"] = m
    return query, value, key, kw


def mha_magnitude(query, value, key, kw):
    """Output error ~ (score error ~ |q_h||k_h|/sqrt(key_dim)) * |v_h| * |W_o| summed."""
    key = value if key is None else key
    hk = kw["query_kernel"].shape[2]
    qh = _amax(query) * _amax(kw["query_kernel"]) * query.shape[2] + _amax(kw.get("query_bias"))
    kh = _amax(key) * _amax(kw["key_kernel"]) * key.shape[2] + _amax(kw.get("key_bias"))
    vh = _amax(value) * _amax(kw["value_kernel"]) * value.shape[2] + _amax(kw.get("value_bias"))
    return max(1.0, qh * kh / math.sqrt(hk)) * max(1.0, vh * _amax(kw["output_kernel"]))


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
@pytest.mark.parametrize("case", list(MHA_CASES), ids=list(MHA_CASES))
def test_mha_matches_reference(backend, case, rng):
    b, t, s, dq, dv, dk, n, hk, hv, dout, biases, mask_kind, causal = MHA_CASES[case]
    query, value, key, kw = make_mha(rng, b, t, s, dq, dv, dk, n, hk, hv, dout, biases, mask_kind)
    kw["use_causal_mask"] = causal
    out, w = run_on(
        backend, fl.multi_head_attention, query, value, key, return_attention_scores=True, **kw
    )
    e_out, e_w = naive.multi_head_attention(query, value, key, return_attention_scores=True, **kw)
    kk = max(dq, dv, dk or 0) + s + n * hv
    mag = mha_magnitude(query, value, key, kw)
    assert_close(out, e_out, k=kk, magnitude=mag, err_msg="output")
    assert_close(w, e_w, k=kk, magnitude=mag, err_msg="weights")
    assert out.shape == (b, t, dout) and w.shape == (b, n, t, s)
    # Without scores (Keras's fused path) the output is the same: no fully masked rows.
    only_out = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
    assert_close(only_out, e_out, k=kk, magnitude=mag)


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
@pytest.mark.parametrize("biases", [True, False])
def test_mha_fully_masked_rows_follow_both_keras_paths(backend, biases, rng):
    query, value, key, kw = make_mha(rng, 2, 4, 5, 4, 3, 6, 3, 2, 3, 5, biases, "bts")
    mask = kw["attention_mask"]
    mask[0, 1] = False
    mask[1, 3] = False
    kw["use_causal_mask"] = True  # with mask[..., 0] True no other row is fully masked
    out_s, w = run_on(
        backend, fl.multi_head_attention, query, value, key, return_attention_scores=True, **kw
    )
    # Softmax-layer path: zero weights, so the output row is the output bias.
    np.testing.assert_array_equal(w[0, :, 1], 0)
    np.testing.assert_array_equal(w[1, :, 3], 0)
    bias = kw["output_bias"] if biases else np.zeros(5, F32)
    np.testing.assert_allclose(out_s[0, 1], bias, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out_s[1, 3], bias, rtol=0, atol=1e-7)
    # Fused path: uniform weights over S; never NaN.
    out_f = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
    assert np.all(np.isfinite(out_f)) and np.all(np.isfinite(out_s))
    kk, mag = 4 + 5 + 9, mha_magnitude(query, value, key, kw)
    for flag, got in ((True, out_s), (False, out_f)):
        e_out, e_w = naive.multi_head_attention(
            query, value, key, return_attention_scores=flag, **kw
        )
        assert_close(got, e_out, k=kk, magnitude=mag, err_msg=f"scores={flag}")
    assert_close(
        w,
        naive.multi_head_attention(query, value, key, return_attention_scores=True, **kw)[1],
        k=kk,
        magnitude=mag,
    )
    assert np.max(np.abs(out_f[0, 1] - out_s[0, 1])) > 1e-3
    np.testing.assert_array_equal(out_f[:, 0], out_s[:, 0])  # unmasked rows agree


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
def test_mha_mask_ts_equals_broadcast_bts(backend, rng):
    query, value, key, kw = make_mha(rng, 3, 4, 5, 4, 4, None, 2, 3, 3, 4, True, "ts")
    a = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
    kw["attention_mask"] = np.broadcast_to(kw["attention_mask"], (3, 4, 5))
    b = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
    kw["attention_mask"] = kw["attention_mask"].astype(np.int8)  # 0/1 masks are accepted
    c = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# ----------------------------------------------------------------------- empty batch


@pytest.mark.parametrize("op,backend", op_backends(*ALL_OPS))
@pytest.mark.parametrize("b,t", [(0, 3), (2, 0)], ids=["empty_batch", "empty_queries"])
def test_empty_batch_and_empty_queries(op, backend, b, t, rng):
    q, v, k = np.zeros((b, t, 4)), np.zeros((b, 5, 3)), np.zeros((b, 5, 4))
    f = getattr(fl, op)
    if op == "scaled_dot_product_attention":
        out = run_on(backend, f, q, k, v, is_causal=True)
        assert out.shape == (b, t, 3) and out.dtype == F32
        return
    if op == "multi_head_attention":
        kw = make_mha(rng, 1, 1, 1, 4, 3, 4, 2, 3, 2, 6, True, None)[3]
        kw["use_causal_mask"] = True
        dout, w_shape = 6, (b, 2, t, 5)
    else:
        kw = {"use_causal_mask": True}
        dout, w_shape = 3, (b, t, 5)
    only_out = run_on(backend, f, q, v, k, **kw)
    out, w = run_on(backend, f, q, v, k, return_attention_scores=True, **kw)
    assert only_out.shape == out.shape == (b, t, dout) and w.shape == w_shape
    assert only_out.dtype == out.dtype == w.dtype == F32


@pytest.mark.parametrize("op,backend", op_backends(*ALL_OPS))
def test_empty_batch_with_a_huge_causal_mask(op, backend, rng):
    """B = 0 with T = S = 2**20: the causal mask (T x S, a TiB of bools) is never built, on
    either path; the NumPy path raised MemoryError."""
    n = 2**20
    q, v, k = np.zeros((0, n, 4), F32), np.zeros((0, n, 3), F32), np.zeros((0, n, 4), F32)
    f = getattr(fl, op)
    if op == "scaled_dot_product_attention":
        assert run_on(backend, f, q, k, v, is_causal=True).shape == (0, n, 3)
        return
    kw, dout = {}, 3
    if op == "multi_head_attention":
        kw, dout = make_mha(rng, 1, 1, 1, 4, 3, 4, 2, 3, 2, 6, True, None)[3], 6
    kw["use_causal_mask"] = True
    out, w = run_on(backend, f, q, v, k, return_attention_scores=True, **kw)
    assert out.shape == (0, n, dout) and w.size == 0


# ------------------------------------------------------------------ dtype / layout


def _strided(a):
    """The same values as a non-contiguous view (every other element of a bigger array)."""
    a = np.asarray(a)
    big = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
    big[tuple(slice(None, None, 2) for _ in a.shape)] = a
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    assert a.size <= 1 or not view.flags.c_contiguous
    return view


def _variants(arrays):
    """float64 copies, strided views and int-valued inputs of the same arrays."""
    return [
        [None if a is None else a.astype(np.float64) for a in arrays],
        [None if a is None else _strided(a) for a in arrays],
        [None if a is None else np.asfortranarray(a) for a in arrays],
    ]


@pytest.mark.parametrize("op,backend", op_backends(*ALL_OPS))
def test_dtype_and_layout_do_not_change_results(backend, op, rng):
    if op in ("attention", "additive_attention"):
        q, v, k, qm, vm = make_luong(rng, 2, 3, 4, 3, 5, True, True, True)
        f = getattr(fl, op)
        extra = {"scale": 0.5} if op == "attention" else {"scale": randn(rng, 3)}

        def call(arrays):
            return f(*arrays, query_mask=qm, value_mask=vm, return_attention_scores=True, **extra)

        arrays = [q, v, k]
    elif op == "scaled_dot_product_attention":
        arrays = list(make_sdpa(rng, (2, 3, 4, 5), 6, 2, None)[:3])

        def call(arrays):
            return (fl.scaled_dot_product_attention(*arrays, is_causal=True),)

    else:
        query, value, key, kw = make_mha(rng, 2, 3, 4, 4, 3, 5, 2, 2, 3, 4, True, "bts")
        names = list(kw)
        arrays = [query, value, key] + [kw[n] for n in names]

        def call(arrays):
            kws = dict(zip(names, arrays[3:]))
            return fl.multi_head_attention(*arrays[:3], return_attention_scores=True, **kws)

    ref = run_on(backend, call, arrays)
    for variant in _variants(arrays):
        got = run_on(backend, call, variant)
        for g, r in zip(got, ref):
            assert g.dtype == F32
            np.testing.assert_array_equal(g, r)
    ints = [rng.integers(-2, 3, size=a.shape) if a.dtype != bool else a for a in arrays]
    as_int = run_on(backend, call, ints)
    as_f32 = run_on(backend, call, [a.astype(F32) for a in ints])
    for g, r in zip(as_int, as_f32):
        assert g.dtype == F32
        np.testing.assert_array_equal(g, r)


# ------------------------------------------------------------------ property test


@settings(max_examples=40, deadline=None)
@given(
    op=st.sampled_from(["attention_dot", "attention_concat", "additive", "sdpa", "mha"]),
    b=st.integers(1, 3),
    t=st.integers(1, 5),
    s=st.integers(1, 5),
    d=st.integers(1, 6),
    dv=st.integers(1, 4),
    heads=st.integers(1, 3),
    use_mask=st.booleans(),
    causal=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_attention_property_matches_reference(op, b, t, s, d, dv, heads, use_mask, causal, seed):
    rng = np.random.default_rng(seed)
    if op == "sdpa":
        lead = (b, heads)
        q, k, v = randn(rng, *lead, t, d), randn(rng, *lead, s, d), randn(rng, *lead, s, dv)
        mask = rng.random((b, 1, t, s)) > 0.5 if use_mask else None
        scale = float(rng.uniform(0.1, 2.0))
        for backend in backends_for("scaled_dot_product_attention"):
            got = run_on(
                backend,
                fl.scaled_dot_product_attention,
                q,
                k,
                v,
                mask=mask,
                is_causal=causal,
                scale=scale,
            )
            expected = naive.scaled_dot_product_attention(
                q, k, v, mask=mask, is_causal=causal, scale=scale
            )
            assert np.all(np.isfinite(got))
            assert_close(got, expected, k=d + s, magnitude=max(1, 16 * scale) * _amax(v))
    elif op == "mha":
        query, value, key, kw = make_mha(
            rng, b, t, s, d, dv, d + 1, heads, dv, d, 3, use_mask, "bts" if use_mask else None
        )
        kw["use_causal_mask"] = causal
        for backend in backends_for("multi_head_attention"):
            out, w = run_on(
                backend,
                fl.multi_head_attention,
                query,
                value,
                key,
                return_attention_scores=True,
                **kw,
            )
            e_out, e_w = naive.multi_head_attention(
                query, value, key, return_attention_scores=True, **kw
            )
            mag = mha_magnitude(query, value, key, kw)
            kk = d + 1 + s + heads * d
            assert_close(out, e_out, k=kk, magnitude=mag)
            assert_close(w, e_w, k=kk, magnitude=mag)
    else:
        q, v, k, qm, vm = make_luong(rng, b, t, s, d, dv, True, use_mask, use_mask)
        if op == "additive":
            f, ref, kw = fl.additive_attention, naive.additive_attention, {"scale": randn(rng, d)}
            mag = max(1.0, _amax(kw["scale"])) * max(1.0, _amax(v))
        else:
            mode = op.split("_")[1]
            kw = {"score_mode": mode, "scale": float(rng.uniform(0.1, 2.0))}
            if mode == "concat":
                kw["concat_score_weight"] = float(rng.uniform(-2, 2))
            f, ref = fl.attention, naive.attention
            mag = luong_magnitude(q, k, v, kw["scale"], mode, kw.get("concat_score_weight"))
        kw.update(query_mask=qm, value_mask=vm, use_causal_mask=causal)
        for backend in backends_for(f.__name__):
            got = run_on(backend, f, q, v, k, return_attention_scores=True, **kw)
            check_pair(got, ref(q, v, k, **kw), d + s, mag)


# --------------------------------------------------------------------- bad inputs

Z = np.zeros


def _luong_args():
    return dict(query=Z((2, 3, 4)), value=Z((2, 5, 6)), key=Z((2, 5, 4)))


# Shared by attention and additive_attention; {op} becomes the op name.
_LUONG_BAD = [
    (dict(query=Z((3, 4))), ValueError, "{op}: query must have rank 3"),
    (dict(query=Z((2, 3, 4, 1))), ValueError, "{op}: query must have rank 3"),
    (dict(value=Z((2, 5))), ValueError, "{op}: value must have rank 3"),
    (dict(key=Z((2, 5, 4, 1))), ValueError, "{op}: key must have rank 3"),
    (dict(query=Z((3, 3, 4))), ValueError, "{op}: batch sizes differ"),
    (dict(key=Z((1, 5, 4))), ValueError, "{op}: batch sizes differ"),
    (dict(key=Z((2, 4, 4))), ValueError, "{op}: key has shape (2, 4, 4), expected (2, 5, dim)"),
    (
        dict(value=Z((2, 0, 6)), key=Z((2, 0, 4))),
        ValueError,
        "{op}: value must have at least one time step",
    ),
    (dict(key=Z((2, 5, 3))), ValueError, "{op}: query has shape (2, 3, 4) and key (2, 5, 3)"),
    (dict(key=None), ValueError, "{op}: query has shape (2, 3, 4) and key (2, 5, 6)"),
    (dict(query_mask=np.ones((2, 4), bool)), ValueError, "{op}: query_mask has shape (2, 4)"),
    (dict(query_mask=np.ones((2, 3, 1), bool)), ValueError, "{op}: query_mask has shape"),
    (dict(value_mask=np.ones((2, 3), bool)), ValueError, "{op}: value_mask has shape (2, 3)"),
    (dict(value_mask=np.ones((5,), bool)), ValueError, "{op}: value_mask has shape (5,)"),
    (dict(value_mask=np.full((2, 5), "t")), TypeError, "{op}: value_mask must be a bool"),
    (dict(query_mask=np.ones((2, 3), complex)), TypeError, "{op}: query_mask must be a bool"),
    (dict(use_causal_mask="yes"), TypeError, "{op}: use_causal_mask must be a bool"),
    (dict(return_attention_scores=1), TypeError, "{op}: return_attention_scores must be a bool"),
    (dict(query=Z((2, 3, 4), complex)), TypeError, "{op}: query must have a real"),
    (dict(value=np.full((2, 5, 6), "v")), TypeError, "{op}: value must have a real"),
    (dict(key="key"), TypeError, "{op}: key must be an array"),
    (dict(query=None), TypeError, "{op}: query is required"),
    (dict(value=None), TypeError, "{op}: value is required"),
]


def _expand(table, op):
    return [
        pytest.param(kw, exc, frag.format(op=op), id=frag.format(op=op)) for kw, exc, frag in table
    ]


ATTENTION_BAD = _expand(_LUONG_BAD, "attention") + _expand(
    [
        (dict(score_mode="cosine"), ValueError, "attention: score_mode must be 'dot' or 'concat'"),
        (dict(score_mode=None), ValueError, "attention: score_mode must be"),
        (dict(concat_score_weight=1.0), ValueError, "attention: concat_score_weight is only used"),
        (
            dict(score_mode="concat", concat_score_weight="1"),
            TypeError,
            "attention: concat_score_weight must be a real number",
        ),
        (dict(scale="2"), TypeError, "attention: scale must be a real number"),
        (dict(scale=[1.0]), TypeError, "attention: scale must be a real number"),
        (dict(scale=np.ones(1)), TypeError, "attention: scale must be a real number"),
        (dict(scale=True), TypeError, "attention: scale must be a real number"),
        (dict(scale=1j), TypeError, "attention: scale must be a real number"),
    ],
    "attention",
)

ADDITIVE_BAD = _expand(_LUONG_BAD, "additive_attention") + _expand(
    [
        (dict(scale=Z(5)), ValueError, "additive_attention: scale has shape (5,), expected (4,)"),
        (dict(scale=1.0), ValueError, "additive_attention: scale has shape ()"),
        (dict(scale=Z((1, 4))), ValueError, "additive_attention: scale has shape (1, 4)"),
        (dict(scale=Z(4, complex)), TypeError, "additive_attention: scale must have a real"),
        (dict(scale="s"), TypeError, "additive_attention: scale must be an array"),
    ],
    "additive_attention",
)


@pytest.mark.parametrize("kwargs,exc,fragment", ATTENTION_BAD)
def test_attention_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.attention(**{**_luong_args(), **kwargs})


@pytest.mark.parametrize("kwargs,exc,fragment", ADDITIVE_BAD)
def test_additive_attention_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.additive_attention(**{**_luong_args(), **kwargs})


SDPA = "scaled_dot_product_attention"
SDPA_BAD = [
    (dict(q=Z(4)), ValueError, f"{SDPA}: q must have rank >= 2"),
    (dict(k=Z(4)), ValueError, f"{SDPA}: k must have rank >= 2"),
    (dict(v=Z(6)), ValueError, f"{SDPA}: v must have rank >= 2"),
    (dict(q=Z((3, 3, 4))), ValueError, f"{SDPA}: q (3, 3, 4), k (2, 5, 4) and v (2, 5, 6) must"),
    (dict(q=Z((3, 4))), ValueError, "must share their leading dims"),
    (dict(v=Z((1, 2, 5, 6))), ValueError, "must share their leading dims"),
    (dict(k=Z((2, 5, 3))), ValueError, f"{SDPA}: k has shape (2, 5, 3), expected (..., S, 4)"),
    (dict(v=Z((2, 4, 6))), ValueError, f"{SDPA}: v has shape (2, 4, 6), expected (..., 5, Dv)"),
    (dict(k=Z((2, 0, 4)), v=Z((2, 0, 6))), ValueError, f"{SDPA}: k must have at least one key"),
    (dict(q=Z((2, 3, 0)), k=Z((2, 5, 0))), ValueError, f"{SDPA}: q must have a feature dim"),
    (dict(mask=np.ones((4, 5), bool)), ValueError, f"{SDPA}: mask of shape (4, 5) does not"),
    (dict(mask=np.ones((3, 3, 5), bool)), ValueError, f"{SDPA}: mask of shape (3, 3, 5)"),
    (dict(mask=np.ones((1, 2, 3, 5), bool)), ValueError, f"{SDPA}: mask of shape (1, 2, 3, 5)"),
    (dict(mask=np.ones((2, 3, 5), complex)), TypeError, f"{SDPA}: mask must be a bool"),
    (dict(mask="causal"), TypeError, f"{SDPA}: mask must be a boolean array"),
    (dict(is_causal="true"), TypeError, f"{SDPA}: is_causal must be a bool"),
    (dict(is_causal=None), TypeError, f"{SDPA}: is_causal must be a bool"),
    (dict(scale="0.5"), TypeError, f"{SDPA}: scale must be a real number"),
    (dict(scale=np.ones(2)), TypeError, f"{SDPA}: scale must be a real number"),
    (dict(q=Z((2, 3, 4), complex)), TypeError, f"{SDPA}: q must have a real"),
    (dict(k=np.full((2, 5, 4), "k")), TypeError, f"{SDPA}: k must have a real"),
    (dict(v=None), TypeError, f"{SDPA}: v is required"),
    (dict(q=None), TypeError, f"{SDPA}: q is required"),
]


@pytest.mark.parametrize("kwargs,exc,fragment", SDPA_BAD, ids=[r[2] for r in SDPA_BAD])
def test_sdpa_bad_inputs(any_backend, kwargs, exc, fragment):
    base = dict(q=Z((2, 3, 4)), k=Z((2, 5, 4)), v=Z((2, 5, 6)))
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.scaled_dot_product_attention(**{**base, **kwargs})


MHA = "multi_head_attention"


def _mha_args():
    # query (2, 3, 4), value (2, 5, 6), key (2, 5, 7); 3 heads, key_dim 2, value_dim 8, Dout 9
    return dict(
        query=Z((2, 3, 4)),
        value=Z((2, 5, 6)),
        key=Z((2, 5, 7)),
        query_kernel=Z((4, 3, 2)),
        key_kernel=Z((7, 3, 2)),
        value_kernel=Z((6, 3, 8)),
        output_kernel=Z((3, 8, 9)),
        query_bias=Z((3, 2)),
        key_bias=Z((3, 2)),
        value_bias=Z((3, 8)),
        output_bias=Z(9),
    )


MHA_BAD = [
    (dict(query=Z((3, 4))), ValueError, f"{MHA}: query must have rank 3"),
    (dict(value=Z((2, 5, 6, 1))), ValueError, f"{MHA}: value must have rank 3"),
    (dict(key=Z((5, 7))), ValueError, f"{MHA}: key must have rank 3"),
    (dict(query=Z((1, 3, 4))), ValueError, f"{MHA}: batch sizes differ"),
    (dict(key=Z((3, 5, 7))), ValueError, f"{MHA}: batch sizes differ"),
    (dict(key=Z((2, 4, 7))), ValueError, f"{MHA}: key has shape (2, 4, 7), expected (2, 5, Dk)"),
    (
        dict(value=Z((2, 0, 6)), key=Z((2, 0, 7))),
        ValueError,
        f"{MHA}: value must have at least one time step",
    ),
    (dict(query_kernel=Z((4, 6))), ValueError, f"{MHA}: query_kernel must have rank 3"),
    (dict(output_kernel=Z((24, 9))), ValueError, f"{MHA}: output_kernel must have rank 3"),
    (dict(query_kernel=Z((5, 3, 2))), ValueError, f"{MHA}: query_kernel has shape (5, 3, 2)"),
    (dict(key_kernel=Z((6, 3, 2))), ValueError, f"{MHA}: key_kernel has shape (6, 3, 2)"),
    (dict(key=None), ValueError, f"{MHA}: key_kernel has shape (7, 3, 2), expected (6, 3, 2)"),
    (dict(key_kernel=Z((7, 2, 2))), ValueError, f"{MHA}: key_kernel has shape (7, 2, 2)"),
    (dict(key_kernel=Z((7, 3, 3))), ValueError, f"{MHA}: key_kernel has shape (7, 3, 3)"),
    (dict(value_kernel=Z((7, 3, 8))), ValueError, f"{MHA}: value_kernel has shape (7, 3, 8)"),
    (dict(value_kernel=Z((6, 2, 8))), ValueError, f"{MHA}: value_kernel has shape (6, 2, 8)"),
    (dict(output_kernel=Z((3, 7, 9))), ValueError, f"{MHA}: output_kernel has shape (3, 7, 9)"),
    (dict(output_kernel=Z((2, 8, 9))), ValueError, f"{MHA}: output_kernel has shape (2, 8, 9)"),
    (dict(query_bias=Z((3, 3))), ValueError, f"{MHA}: query_bias has shape (3, 3)"),
    (dict(key_bias=Z(6)), ValueError, f"{MHA}: key_bias has shape (6,)"),
    (dict(value_bias=Z((3, 2))), ValueError, f"{MHA}: value_bias has shape (3, 2)"),
    (dict(output_bias=Z(4)), ValueError, f"{MHA}: output_bias has shape (4,), expected (9,)"),
    (
        dict(
            query_kernel=Z((4, 0, 2)),
            key_kernel=Z((7, 0, 2)),
            value_kernel=Z((6, 0, 8)),
            output_kernel=Z((0, 8, 9)),
            query_bias=None,
            key_bias=None,
            value_bias=None,
        ),
        ValueError,
        f"{MHA}: num_heads, key_dim, value_dim and Dout must be >= 1",
    ),
    (
        dict(attention_mask=np.ones((2, 3, 4), bool)),
        ValueError,
        f"{MHA}: attention_mask has shape (2, 3, 4), expected (2, 3, 5), (3, 5) or a shape "
        "that broadcasts to (2, 3, 5) such as (2, 1, 5)",
    ),
    (
        dict(attention_mask=np.ones((3, 3, 5), bool)),
        ValueError,
        f"{MHA}: attention_mask has shape (3, 3, 5)",
    ),
    (dict(attention_mask=np.ones((2, 5), bool)), ValueError, f"{MHA}: attention_mask has shape"),
    (dict(attention_mask=np.ones((2, 2, 5), bool)), ValueError, f"{MHA}: attention_mask has shape"),
    (dict(attention_mask=np.ones((4,), bool)), ValueError, f"{MHA}: attention_mask has shape"),
    (dict(attention_mask=np.ones((1, 1, 1, 5), bool)), ValueError,
     f"{MHA}: attention_mask has shape"),
    (
        dict(attention_mask=np.ones((2, 1, 3, 5), bool)),
        ValueError,
        f"{MHA}: attention_mask has shape",
    ),
    (dict(attention_mask=np.full((3, 5), "x")), TypeError, f"{MHA}: attention_mask must be a"),
    (dict(use_causal_mask=1), TypeError, f"{MHA}: use_causal_mask must be a bool"),
    (
        dict(return_attention_scores="no"),
        TypeError,
        f"{MHA}: return_attention_scores must be a bool",
    ),
    (dict(query=Z((2, 3, 4), complex)), TypeError, f"{MHA}: query must have a real"),
    (dict(value_kernel=Z((6, 3, 8), complex)), TypeError, f"{MHA}: value_kernel must have a real"),
    (dict(output_bias=np.full(9, "b")), TypeError, f"{MHA}: output_bias must have a real"),
    (dict(query=None), TypeError, f"{MHA}: query is required"),
    (dict(query_kernel=None), TypeError, f"{MHA}: query_kernel is required"),
    (dict(output_kernel=None), TypeError, f"{MHA}: output_kernel is required"),
]


@pytest.mark.parametrize("kwargs,exc,fragment", MHA_BAD, ids=[r[2] for r in MHA_BAD])
def test_mha_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.multi_head_attention(**{**_mha_args(), **kwargs})


def test_mha_kernels_are_keyword_only():
    args = _mha_args()
    with pytest.raises(TypeError):
        fl.multi_head_attention(args["query"], args["value"], args["key"], args["query_kernel"])
