"""Attention and masked softmax at the sizes the C++ kernels block over.

The C++ attention (csrc/ops/attention.cpp) is flash-style: blocks of 48 query rows x 256
keys with an online softmax, causal block skipping, and no T x S buffer unless the
attention weights are requested. These tests aim at its boundaries: T and S at, below,
above and multiples of 48 and 256, head dims around the vector widths, leading dims,
broadcast masks, masks whose only allowed keys sit in one key block, fully masked rows
(uniform over all S keys, also those the causal mask hides, under the "fused" rule), a
long sequence, a custom scale and non-contiguous inputs. They use the public functional
API only and run on every backend of ``backends_for(op)`` ("numpy" and "cpp").

References: the vectorized float64 functions ``*_f64`` of tests/naive_seq_attn.py (the
loop references there are too slow at these sizes); the first tests check them against
the loop references on small shapes, fully masked rows included.
"""

from __future__ import annotations

import math

import naive_seq_attn as naive
import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, backends_for, mha_weights, randn, run_on

import fastlayers as fl

F32 = np.float32
SDPA = "scaled_dot_product_attention"
MHA = "multi_head_attention"


def _amax(*arrays):
    return max([float(np.max(np.abs(a))) for a in arrays if a is not None and np.size(a)] + [0.0])


def only_cpp(op):
    """["cpp"] when the C++ path serves ``op`` in this run, else [] (the test is not made)."""
    return [b for b in backends_for(op) if b == "cpp"]


# ----------------------------------------------------------------- sdpa helpers


def sdpa_magnitude(q, k, v, scale=None):
    """Output error ~ (error of a logit ~ |q||k| scale) * |v|."""
    sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else abs(scale)
    return max(1.0, _amax(q) * _amax(k) * sc) * max(1.0, _amax(v))


def check_sdpa(got, q, k, v, err_msg="", **kw):
    expected = naive.sdpa_f64(q, k, v, **kw)
    assert np.all(np.isfinite(got)), "non-finite output"
    assert_close(
        got,
        expected,
        k=q.shape[-1] + k.shape[-2],
        magnitude=sdpa_magnitude(q, k, v, kw.get("scale")),
        err_msg=err_msg,
    )


def make_qkv(rng, lead, t, s, d, dv, scale=1.0):
    return (
        randn(rng, *lead, t, d, scale=scale),
        randn(rng, *lead, s, d),
        randn(rng, *lead, s, dv),
    )


# --------------------------------------------------- the float64 references agree


def _small_masked_cases(rng):
    b, t, s = 2, 5, 4
    vm = rng.random((b, s)) > 0.4
    vm[0] = False  # batch 0: every row fully masked
    qm = rng.random((b, t)) > 0.3
    am = rng.random((b, t, s)) > 0.4
    am[1, 2] = False
    return b, t, s, vm, qm, am


@pytest.mark.parametrize("causal", [False, True])
def test_f64_references_match_loop_references(causal, rng):
    b, t, s, vm, qm, am = _small_masked_cases(rng)
    d, dv = 3, 2
    q, k, v = randn(rng, b, t, d, scale=0.5), randn(rng, b, s, d), randn(rng, b, s, dv)
    tight = dict(rtol=1e-12, atol=1e-12)

    kw = dict(mask=am, is_causal=causal, scale=0.7)
    np.testing.assert_allclose(
        naive.sdpa_f64(q, k, v, **kw), naive.scaled_dot_product_attention(q, k, v, **kw), **tight
    )
    for mode in ("dot", "concat"):
        kw = dict(
            scale=0.8,
            score_mode=mode,
            concat_score_weight=0.6 if mode == "concat" else None,
            query_mask=qm,
            value_mask=vm,
            use_causal_mask=causal,
        )
        got, want = naive.attention_f64(q, v, k, **kw), naive.attention(q, v, k, **kw)
        # The loop reference replaces masked scores: compare rows with an allowed key.
        ok = vm[:, None, :] & (np.tril(np.ones((t, s), bool)) if causal else np.ones((t, s), bool))
        rows = ok.any(axis=-1)
        np.testing.assert_allclose(got[0][rows], want[0][rows], **tight)
        np.testing.assert_allclose(got[1][rows], want[1][rows], **tight)
        # Fully masked rows: Keras's float32 "score - 1e9" is uniform for small scores.
        np.testing.assert_allclose(got[1][~rows], 1.0 / s, rtol=1e-12)
    sc = randn(rng, d)
    for scale in (None, sc):
        kw = dict(scale=scale, query_mask=qm, value_mask=vm, use_causal_mask=causal)
        got = naive.additive_attention_f64(q, v, k, **kw)
        want = naive.additive_attention(q, v, k, **kw)
        np.testing.assert_allclose(got[0][rows], want[0][rows], **tight)
        np.testing.assert_allclose(got[1][~rows], 1.0 / s, rtol=1e-12)

    query, value, key, mkw = make_mha(rng, b, t, s, True, "bts")
    mkw["attention_mask"] = am
    mkw["use_causal_mask"] = causal
    for flag in (False, True):
        got = naive.multi_head_attention_f64(query, value, key, return_attention_scores=flag, **mkw)
        want = naive.multi_head_attention(query, value, key, return_attention_scores=flag, **mkw)
        np.testing.assert_allclose(got[0], want[0], **tight)
        np.testing.assert_allclose(got[1], want[1], **tight)


# ------------------------------------------------------------ sdpa: shapes and tiles

# The blocks of the C++ driver (csrc/ops/attention.cpp): 48 query rows, 512 keys.
QUERY_BLOCK, KEY_BLOCK = 48, 512

# (T, S, D, Dv, leading dims): T and S around the 48-row and 512-key blocks, T != S,
# D and Dv around the vector widths.
SDPA_SHAPES = [
    (1, 1, 1, 1, ()),
    (1, 257, 64, 64, (2,)),
    (2, 513, 3, 17, ()),
    (5, 7, 8, 3, (2, 3, 2)),
    (7, 16, 17, 1, (3,)),
    (16, 17, 65, 8, ()),
    (17, 16, 3, 65, (2, 2)),
    (47, 48, 64, 64, (2,)),
    (48, 49, 8, 8, (1, 2)),
    (49, 47, 65, 3, ()),
    (95, 96, 17, 64, ()),
    (96, 95, 1, 8, (2,)),
    (97, 255, 64, 65, ()),
    (255, 256, 8, 17, ()),
    (256, 257, 64, 64, ()),
    (257, 511, 3, 8, ()),
    (511, 2, 17, 3, ()),
    (513, 97, 64, 1, ()),
    (48, 513, 65, 65, ()),
    (96, 512, 16, 16, ()),
    (50, 1025, 8, 9, ()),
    (2, 5, 1, 64, (2, 3, 2)),
]


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("t,s,d,dv,lead", SDPA_SHAPES, ids=lambda p: str(p).replace(" ", ""))
def test_sdpa_tile_edges(backend, t, s, d, dv, lead, causal, rng):
    q, k, v = make_qkv(rng, lead, t, s, d, dv)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, is_causal=causal)
    assert got.shape == lead + (t, dv)
    check_sdpa(got, q, k, v, is_causal=causal)


# mask shapes for leading dims (B, H) = (2, 3); "(T,1)" masks make whole rows fully masked.
SDPA_MASKS = {
    "ts": lambda b, h, t, s: (t, s),
    "b1ts": lambda b, h, t, s: (b, 1, t, s),
    "1s": lambda b, h, t, s: (1, s),
    "bht1": lambda b, h, t, s: (b, h, t, 1),
    "t1": lambda b, h, t, s: (t, 1),
    "bhts": lambda b, h, t, s: (b, h, t, s),
}


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("t,s", [(49, 257), (97, 47), (1, 513), (48, 256)], ids=str)
@pytest.mark.parametrize("mask_kind", list(SDPA_MASKS))
def test_sdpa_broadcast_masks(backend, mask_kind, t, s, causal, rng):
    b, h, d, dv = 2, 3, 17, 8
    q, k, v = make_qkv(rng, (b, h), t, s, d, dv, scale=3.0)  # large logits
    mask = rng.random(SDPA_MASKS[mask_kind](b, h, t, s)) > 0.3
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=causal)
    check_sdpa(got, q, k, v, mask=mask, is_causal=causal)


def _block_mask(kind, t, s):
    m = np.zeros((t, s), bool)
    if kind == "last_key":
        m[:, s - 1] = True
    elif kind == "first_key":
        m[:, 0] = True
    elif kind == "block_boundary":
        m[:, [KEY_BLOCK - 1, KEY_BLOCK]] = True
    elif kind == "last_block":
        m[:, 2 * KEY_BLOCK :] = True
    elif kind == "alternate_blocks":
        m[0::2, :KEY_BLOCK] = True
        m[1::2, KEY_BLOCK:] = True
    elif kind == "rows_by_block":  # query block i may see key block i only
        for i in range(t):
            j0 = (i // QUERY_BLOCK) * KEY_BLOCK
            m[i, j0 : j0 + KEY_BLOCK] = True
    return m


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize(
    "kind",
    ["last_key", "first_key", "block_boundary", "last_block", "alternate_blocks", "rows_by_block"],
)
def test_sdpa_allowed_keys_in_one_key_block(backend, kind, causal, rng):
    # Rows whose allowed keys all lie in a block after (or before) the blocks holding
    # the row maximum; with causal, many rows end up fully masked and must attend
    # uniformly to all S keys, including the ones the causal mask would skip. Three key
    # blocks, the last one partial; query block 3 is allowed no key in rows_by_block.
    t, s = 145, 2 * KEY_BLOCK + 176
    q, k, v = make_qkv(rng, (2,), t, s, 9, 5, scale=4.0)
    mask = _block_mask(kind, t, s)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=causal)
    check_sdpa(got, q, k, v, mask=mask, is_causal=causal)


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("t,s", [(97, 513), (513, 97), (49, 49)], ids=str)
def test_sdpa_fully_masked_rows_with_causal_are_uniform_over_all_keys(backend, t, s, rng):
    b = 2
    q, k, v = make_qkv(rng, (b,), t, s, 16, 7, scale=30.0)  # a "subtract" rule is not uniform
    mask = np.ones((b, t, 1), bool)
    dead = [r for r in (0, 1, 46, 47, 48, 95, 96, t - 1) if r < t]
    mask[0, dead] = False
    mask[1, t // 2] = False
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=True)
    assert np.all(np.isfinite(got))
    mean_v = v.astype(np.float64).mean(axis=-2)  # (B, Dv): uniform over all S keys
    amv = _amax(v)
    assert_close(got[0, dead], np.broadcast_to(mean_v[0], (len(dead), 7)), k=s, magnitude=amv)
    assert_close(got[1, t // 2], mean_v[1], k=s, magnitude=amv)
    check_sdpa(got, q, k, v, mask=mask, is_causal=True)
    # Everything masked, with and without causal: every row is mean(v).
    none = np.zeros((t, s), bool)
    for causal in (False, True):
        got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=none, is_causal=causal)
        assert_close(got, np.broadcast_to(mean_v[:, None], got.shape), k=s, magnitude=amv)


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_sdpa_long_sequence(backend, causal, rng):
    t = s = 2048
    q, k, v = make_qkv(rng, (1,), t, s, 64, 64)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, is_causal=causal)
    check_sdpa(got, q, k, v, is_causal=causal)


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("scale", [0.0, 0.01, 1.0, 2.5, -0.7])
@pytest.mark.parametrize("t,s", [(49, 257), (257, 49)], ids=str)
def test_sdpa_custom_scale(backend, scale, t, s, rng):
    q, k, v = make_qkv(rng, (2,), t, s, 17, 9)
    mask = rng.random((t, s)) > 0.2
    for causal in (False, True):
        kw = dict(mask=mask, is_causal=causal, scale=scale)
        got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, **kw)
        check_sdpa(got, q, k, v, err_msg=f"causal={causal}", **kw)
    # scale = 0: equal logits, so every row with an allowed key averages its allowed v.
    if scale == 0.0:
        got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, scale=0.0)
        mean_v = np.broadcast_to(v.astype(np.float64).mean(axis=-2, keepdims=True), got.shape)
        assert_close(got, mean_v, k=s, magnitude=_amax(v))


def _noncontig_views(q, k, v):
    """The same values as q (transposed storage), k (negative strides), v (a strided slice
    of a wider array, with the leading dims transposed)."""
    qv = np.ascontiguousarray(np.swapaxes(q, -1, -2)).swapaxes(-1, -2)
    kv = np.ascontiguousarray(k[..., ::-1, ::-1])[..., ::-1, ::-1]
    wide = np.zeros(v.shape[:-1] + (2 * v.shape[-1] + 1,), F32)
    wide[..., 1::2] = v
    vt = np.ascontiguousarray(np.swapaxes(wide, 0, 1)).swapaxes(0, 1)[..., 1::2]
    for a, b in ((qv, q), (kv, k), (vt, v)):
        assert not a.flags.c_contiguous and np.array_equal(a, b)
    assert kv.strides[-1] < 0 and kv.strides[-2] < 0
    return qv, kv, vt


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("t,s,d,dv", [(49, 257, 17, 8), (96, 95, 64, 65), (3, 5, 3, 2)], ids=str)
def test_sdpa_non_contiguous_inputs(backend, t, s, d, dv, rng):
    q, k, v = make_qkv(rng, (2, 3), t, s, d, dv)
    mask = rng.random((2, 1, t, s)) > 0.3
    mask_view = np.ascontiguousarray(mask[..., ::-1])[..., ::-1]
    qv, kv, vt = _noncontig_views(q, k, v)
    for causal in (False, True):
        kw = dict(is_causal=causal, scale=0.3)
        got = run_on(backend, fl.scaled_dot_product_attention, qv, kv, vt, mask=mask_view, **kw)
        check_sdpa(got, q, k, v, mask=mask, **kw)
        want = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask, **kw)
        assert_close(got, want, k=d + s, magnitude=sdpa_magnitude(q, k, v, 0.3))


# ------------------------------------------------------ Attention / AdditiveAttention

TS_PAIRS = [(1, 1), (1, 257), (47, 48), (48, 49), (49, 47), (257, 1), (257, 257)]
TS_IDS = [f"t{t}-s{s}" for t, s in TS_PAIRS]


def make_luong(rng, t, s, masks, b=2, d=8, dv=5):
    q = randn(rng, b, t, d, scale=0.5)  # |score| < 32: the Keras rule gives uniform rows
    v, k = randn(rng, b, s, dv), randn(rng, b, s, d)
    qm = vm = None
    if masks:
        qm = rng.random((b, t)) > 0.3
        vm = rng.random((b, s)) > 0.3
        vm[1] = False  # batch 1: every row fully masked
    return q, v, k, qm, vm


def luong_magnitude(q, k, v, op, scale=None, score_mode="dot", concat_score_weight=None):
    """Output error ~ (error of a score ~ the size of its summed terms) * |v|."""
    if op == "additive_attention":
        s = 1.0 if scale is None else float(np.sum(np.abs(scale)))  # |tanh| <= 1
    elif score_mode == "dot":
        s = _amax(q) * _amax(k) * (1.0 if scale is None else abs(scale))
    else:
        s = q.shape[-1] * (1.0 if concat_score_weight is None else abs(concat_score_weight))
    return max(1.0, s) * max(1.0, _amax(v))


def check_luong(got, want, q, k, v, op, kw):
    out, weights = got
    e_out, e_weights = want
    extra = {n: kw[n] for n in ("scale", "score_mode", "concat_score_weight") if n in kw}
    mag = luong_magnitude(q, k, v, op, **extra)
    kk = q.shape[-1] + k.shape[1]
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(weights))
    assert_close(out, e_out, k=kk, magnitude=mag, err_msg="output")
    assert_close(weights, e_weights, k=kk, magnitude=mag, err_msg="weights")


@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("variant", ["plain", "scale_masks_causal"])
@pytest.mark.parametrize("mode", ["dot", "concat"])
@pytest.mark.parametrize("t,s", TS_PAIRS, ids=TS_IDS)
def test_attention_tile_edges(backend, t, s, mode, variant, rng):
    masked = variant != "plain"
    q, v, k, qm, vm = make_luong(rng, t, s, masked)
    kw = dict(
        scale=0.7 if masked else None,
        score_mode=mode,
        concat_score_weight=0.6 if mode == "concat" else None,
        query_mask=qm,
        value_mask=vm,
        use_causal_mask=masked,
    )
    got = run_on(backend, fl.attention, q, v, k, return_attention_scores=True, **kw)
    want = naive.attention_f64(q, v, k, **kw)
    check_luong(got, want, q, k, v, "attention", kw)
    # Without scores C++ may take another (flash) path: same values, not the same bits.
    only_out = run_on(backend, fl.attention, q, v, k, **kw)
    check_luong((only_out, got[1]), want, q, k, v, "attention", kw)
    if masked:  # batch 1 is fully masked: uniform weights, output rows mean(v) or 0
        np.testing.assert_allclose(got[1][1], 1.0 / s, rtol=1e-5)
        mean_v = v[1].astype(np.float64).mean(axis=0) * qm[1][:, None]
        assert_close(got[0][1], mean_v, k=s, magnitude=_amax(v))


@pytest.mark.parametrize("backend", backends_for("additive_attention"))
@pytest.mark.parametrize("variant", ["plain", "masks_causal"])
@pytest.mark.parametrize("with_scale", [False, True], ids=["no_scale", "scale"])
@pytest.mark.parametrize("t,s", TS_PAIRS, ids=TS_IDS)
def test_additive_attention_tile_edges(backend, t, s, with_scale, variant, rng):
    masked = variant != "plain"
    q, v, k, qm, vm = make_luong(rng, t, s, masked, d=17)
    scale = randn(rng, 17, scale=0.5) if with_scale else None
    kw = dict(scale=scale, query_mask=qm, value_mask=vm, use_causal_mask=masked)
    got = run_on(backend, fl.additive_attention, q, v, k, return_attention_scores=True, **kw)
    want = naive.additive_attention_f64(q, v, k, **kw)
    check_luong(got, want, q, k, v, "additive_attention", kw)
    only_out = run_on(backend, fl.additive_attention, q, v, k, **kw)
    check_luong((only_out, got[1]), want, q, k, v, "additive_attention", kw)


# ------------------------------------------------------------------ MultiHeadAttention


def make_mha(rng, b, t, s, biases, mask_kind, dq=6, dv=5, dk=7, n=2, hk=8, hv=4, dout=3):
    """key_dim != value_dim, Dout != Dq, a separate key of its own width."""
    query, value, key = randn(rng, b, t, dq), randn(rng, b, s, dv), randn(rng, b, s, dk)
    kw = mha_weights(rng, dq, dk, dv, n, hk, hv, dout, biases)
    if mask_kind is not None:
        m = rng.random((t, s) if mask_kind == "ts" else (b, t, s)) > 0.3
        m[..., t // 2, :] = False  # a fully masked row (in every batch for "ts")
        if mask_kind == "bts":
            m[-1, -1, :] = False
        kw["attention_mask"] = m
    return query, value, key, kw


def mha_magnitude(query, value, key, kw):
    hk = kw["query_kernel"].shape[2]
    qh = _amax(query) * _amax(kw["query_kernel"]) * query.shape[2] + _amax(kw.get("query_bias"))
    kh = _amax(key) * _amax(kw["key_kernel"]) * key.shape[2] + _amax(kw.get("key_bias"))
    vh = _amax(value) * _amax(kw["value_kernel"]) * value.shape[2] + _amax(kw.get("value_bias"))
    return max(1.0, qh * kh / math.sqrt(hk)) * max(1.0, vh * _amax(kw["output_kernel"]))


def mha_k(query, value, key, kw):
    """Reduction length: a projection, a row of S keys, the N*Hv output contraction."""
    n, hv = kw["output_kernel"].shape[:2]
    return max(query.shape[2], value.shape[2], key.shape[2]) + value.shape[1] + n * hv


MHA_VARIANTS = {
    "bias_nomask": (True, None, False),
    "nobias_mask_bts": (False, "bts", False),
    "bias_mask_ts_causal": (True, "ts", True),
    "nobias_causal": (False, None, True),
}


@pytest.mark.parametrize("backend", backends_for(MHA))
@pytest.mark.parametrize("scores", [False, True], ids=["fused", "with_scores"])
@pytest.mark.parametrize("variant", list(MHA_VARIANTS))
@pytest.mark.parametrize("t,s", TS_PAIRS, ids=TS_IDS)
def test_mha_tile_edges(backend, t, s, variant, scores, rng):
    biases, mask_kind, causal = MHA_VARIANTS[variant]
    query, value, key, kw = make_mha(rng, 2, t, s, biases, mask_kind)
    kw["use_causal_mask"] = causal
    res = run_on(
        backend, fl.multi_head_attention, query, value, key, return_attention_scores=scores, **kw
    )
    e_out, e_w = naive.multi_head_attention_f64(
        query, value, key, return_attention_scores=scores, **kw
    )
    out = res[0] if scores else res
    kk, mag = mha_k(query, value, key, kw), mha_magnitude(query, value, key, kw)
    assert out.shape == (2, t, 3) and np.all(np.isfinite(out))
    assert_close(out, e_out, k=kk, magnitude=mag, err_msg="output")
    if scores:
        assert res[1].shape == (2, 2, t, s)
        assert_close(res[1], e_w, k=kk, magnitude=mag, err_msg="weights")
    if mask_kind is not None:
        row = kw["attention_mask"][..., t // 2, :]
        assert not row.any()
        if scores:  # softmax-layer rule: zero weights, the output row is the output bias
            np.testing.assert_array_equal(res[1][:, :, t // 2], 0)
            bias = kw.get("output_bias", np.zeros(3, F32))
            np.testing.assert_allclose(out[:, t // 2], np.broadcast_to(bias, (2, 3)), 0, 1e-6)


@pytest.mark.parametrize("backend", backends_for(MHA))
@pytest.mark.parametrize("t,s", [(49, 257), (257, 49), (1, 48)], ids=str)
def test_mha_fully_masked_rows_under_both_rules(backend, t, s, rng):
    query, value, key, kw = make_mha(rng, 2, t, s, True, "bts")
    query *= 10  # large logits: uniform and softmax(scores) differ clearly
    mask = kw["attention_mask"]
    dead = [r for r in (0, 47, 48, t - 1) if r < t]
    mask[0, dead] = False
    kw["use_causal_mask"] = True
    out_f = run_on(backend, fl.multi_head_attention, query, value, key, **kw)
    out_s, w = run_on(
        backend, fl.multi_head_attention, query, value, key, return_attention_scores=True, **kw
    )
    assert np.all(np.isfinite(out_f)) and np.all(np.isfinite(out_s)) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(w[0][:, dead], 0)
    np.testing.assert_allclose(
        out_s[0, dead], np.broadcast_to(kw["output_bias"], (len(dead), 3)), 0, 1e-6
    )
    kk, mag = mha_k(query, value, key, kw), mha_magnitude(query, value, key, kw)
    for flag, got in ((False, out_f), (True, out_s)):
        e_out, _ = naive.multi_head_attention_f64(
            query, value, key, return_attention_scores=flag, **kw
        )
        assert_close(got, e_out, k=kk, magnitude=mag, err_msg=f"scores={flag}")
    # The fused rule is uniform over all S keys, also those the causal mask hides.
    vp = np.einsum("bsd,dnh->bnsh", value.astype(np.float64), kw["value_kernel"].astype(np.float64))
    vp += kw["value_bias"].astype(np.float64)[None, :, None, :]
    o = vp.mean(axis=2)  # (B, N, Hv)
    uniform = np.einsum("nh,nhe->e", o[0], kw["output_kernel"].astype(np.float64))
    uniform += kw["output_bias"]
    np.testing.assert_allclose(out_f[0, dead], np.broadcast_to(uniform, (len(dead), 3)), 1e-4, 1e-4)


# -------------------------------------------------------------------------- softmax

# (shape, axis, mask shape or None): sizes around 8, 16 and 256.
SOFTMAX_CASES = [
    ((9, 257), -1, (9, 257)),
    ((9, 255), -1, (1, 255)),
    ((256, 9), 0, (256, 1)),
    ((15, 17, 3), (0, 1), (1, 17, 1)),
    ((2, 255, 16), (1, 2), (2, 1, 16)),
    ((17, 8, 7), (0, 2), (17, 8, 7)),
    ((3, 16, 17), (0, 1, 2), None),
    ((7, 9, 257), (-1, 0), (9, 1)),
    ((2, 257, 8), (1,), (257, 8)),
    ((4, 3, 15, 17), (1, 3), (4, 1, 15, 1)),
]


@pytest.mark.parametrize("backend", backends_for("softmax"))
@pytest.mark.parametrize("shape,axis,mask_shape", SOFTMAX_CASES, ids=str)
def test_softmax_masks_and_axes_at_tile_edges(backend, shape, axis, mask_shape, rng):
    x = randn(rng, *shape, scale=4.0)
    mask = None
    if mask_shape is not None:
        mask = rng.random(mask_shape) > 0.3
        mask[(0,) * len(mask_shape)] = False
        if len(mask_shape) > 1 and mask_shape[0] > 1:
            mask[1] = False  # a fully masked slice (or part of one)
    got = run_on(backend, fl.softmax, x, axis, mask)
    axes = axis if isinstance(axis, tuple) else (axis,)
    k = int(np.prod([shape[a] for a in axes]))
    assert_close(got, naive.softmax(x, axis, mask), k=k)
    if mask is not None:
        assert np.all(got[~np.broadcast_to(mask, shape)] == 0)


# ------------------------------------------------------------ threads and C++ vs NumPy


def _sdpa_calls(rng):
    q, k, v = make_qkv(rng, (2, 3), 97, 513, 64, 17)
    mask = rng.random((2, 1, 97, 513)) > 0.2
    mask[0, 0, 5] = False
    for causal in (False, True):
        yield (
            f"sdpa causal={causal}",
            fl.scaled_dot_product_attention,
            (q, k, v),
            dict(mask=mask, is_causal=causal),
        )
    q, k, v = make_qkv(rng, (1,), 1000, 1000, 64, 64)
    yield "sdpa long causal", fl.scaled_dot_product_attention, (q, k, v), dict(is_causal=True)


def _mha_calls(rng):
    query, value, key, kw = make_mha(rng, 2, 145, 300, True, "bts")
    for scores in (False, True):
        yield (
            f"mha scores={scores}",
            fl.multi_head_attention,
            (query, value, key),
            dict(return_attention_scores=scores, use_causal_mask=True, **kw),
        )


@pytest.mark.parametrize(
    "op,backend", [pytest.param(op, "cpp", id=f"{op}-cpp") for op in (SDPA, MHA) if only_cpp(op)]
)
def test_cpp_attention_is_bitwise_identical_for_any_thread_count(op, backend, rng):
    calls = list(_sdpa_calls(rng) if op == SDPA else _mha_calls(rng))
    old = fl.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            fl.set_num_threads(n)
            results.append([run_on(backend, fn, *args, **kw) for _, fn, args, kw in calls])
    finally:
        fl.set_num_threads(old)
    assert fl.get_num_threads() == old
    for other in results[1:]:
        for (name, *_), a, b in zip(calls, results[0], other):
            a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
            for x, y in zip(a, b):
                assert np.array_equal(x, y), name


def _cpp_numpy_cases():
    cases = []
    for op in ("attention", "additive_attention", SDPA, MHA):
        cases += [pytest.param(op, id=op)] if "cpp" in backends_for(op) else []
    return cases


@pytest.mark.parametrize("op", _cpp_numpy_cases())
@pytest.mark.parametrize("t,s", [(1, 257), (48, 49), (257, 47)], ids=str)
def test_cpp_and_numpy_agree(op, t, s, rng):
    if op == SDPA:
        q, k, v = make_qkv(rng, (2, 2), t, s, 65, 17, scale=2.0)
        mask = rng.random((2, 1, t, s)) > 0.3
        for causal in (False, True):
            kw = dict(mask=mask, is_causal=causal)
            a = run_on("cpp", fl.scaled_dot_product_attention, q, k, v, **kw)
            b = run_on("numpy", fl.scaled_dot_product_attention, q, k, v, **kw)
            assert_close(a, b, k=65 + s, magnitude=sdpa_magnitude(q, k, v))
        return
    if op == MHA:
        query, value, key, kw = make_mha(rng, 2, t, s, True, "bts")
        mag, kk = mha_magnitude(query, value, key, kw), mha_k(query, value, key, kw)
        kw["use_causal_mask"] = True
        for scores in (False, True):
            a, b = (
                run_on(be, fl.multi_head_attention, query, value, key,
                       return_attention_scores=scores, **kw)
                for be in ("cpp", "numpy")
            )  # fmt: skip
            for x, y in zip(a if scores else (a,), b if scores else (b,)):
                assert_close(x, y, k=kk, magnitude=mag, err_msg=f"scores={scores}")
        return
    q, v, k, qm, vm = make_luong(rng, t, s, True, d=17)
    fn = getattr(fl, op)
    if op == "additive_attention":
        extras = [dict(scale=randn(rng, 17, scale=0.5)), dict()]
    else:
        extras = [dict(scale=0.7), dict(score_mode="concat", concat_score_weight=0.6, scale=0.5)]
    for extra in extras:
        kw = dict(query_mask=qm, value_mask=vm, use_causal_mask=True, **extra)
        a = run_on("cpp", fn, q, v, k, return_attention_scores=True, **kw)
        b = run_on("numpy", fn, q, v, k, return_attention_scores=True, **kw)
        mag = luong_magnitude(q, k, v, op, **extra)
        for x, y in zip(a, b):
            assert_close(x, y, k=17 + s, magnitude=mag, err_msg=str(extra))


@pytest.mark.parametrize("backend", only_cpp("softmax"))
@pytest.mark.parametrize("shape,axis,mask_shape", SOFTMAX_CASES[:6], ids=str)
def test_cpp_and_numpy_agree_softmax_masked(backend, shape, axis, mask_shape, rng):
    x = randn(rng, *shape, scale=4.0)
    mask = None if mask_shape is None else rng.random(mask_shape) > 0.3
    axes = axis if isinstance(axis, tuple) else (axis,)
    k = int(np.prod([shape[a] for a in axes]))
    got, want = (run_on(be, fl.softmax, x, axis, mask) for be in ("cpp", "numpy"))
    assert_close(got, want, k=k)


# ------------------------------------------------------ NaN / inf propagate, as in NumPy


def _nan_cases(rng):
    """(name, callable(q, k, v)) for every attention op; q (B, T, D), k/v (B, S, D)."""
    n, h = 2, 2
    wq, wk, wv = (randn(rng, 4, n, h) for _ in range(3))
    wo = randn(rng, n, h, 4)

    def mha(q, k, v, scores):
        return fl.multi_head_attention(
            q,
            v,
            k,
            query_kernel=wq,
            key_kernel=wk,
            value_kernel=wv,
            output_kernel=wo,
            return_attention_scores=scores,
        )

    return [
        ("sdpa", lambda q, k, v: fl.scaled_dot_product_attention(q, k, v)),
        ("sdpa_causal", lambda q, k, v: fl.scaled_dot_product_attention(q, k, v, is_causal=True)),
        ("attention", lambda q, k, v: fl.attention(q, v, k)),
        ("attention_scores", lambda q, k, v: fl.attention(q, v, k, return_attention_scores=True)),
        ("concat", lambda q, k, v: fl.attention(q, v, k, score_mode="concat")),
        ("additive", lambda q, k, v: fl.additive_attention(q, v, k)),
        ("mha", lambda q, k, v: mha(q, k, v, False)),
        ("mha_scores", lambda q, k, v: mha(q, k, v, True)),
    ]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy on NaN input
@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["q", "k"])
@pytest.mark.parametrize("case", range(8))
def test_nan_and_inf_scores_give_nan_rows(backend, bad, where, case, rng):
    """A NaN or +inf reaching a score makes the affected rows NaN on both paths (never a
    silently finite "fully masked" row): a bad query row spoils that row, a bad key all rows.
    (The tanh scores of concat/additive attention stay finite for inf inputs.)"""
    name, fn = _nan_cases(rng)[case]
    q, k, v = randn(rng, 1, 5, 4), randn(rng, 1, 300, 4), randn(rng, 1, 300, 4)
    if where == "q":
        q[0, 2, :] = bad
    else:
        k[0, 0, :] = bad
    res = run_on(backend, fn, q, k, v)
    out = res[0] if isinstance(res, tuple) else res
    if bad == np.inf and name in ("concat", "additive"):
        assert np.isfinite(out).all(), name  # tanh(inf) = 1: the scores stay finite
    elif bad == np.inf:
        # inf in q or k gives scores of +-inf, or NaN where inf - inf meets in the dot: the
        # +inf ones share the weight (docs/semantics.md §15), a NaN spoils its row. Both paths
        # agree on which rows are NaN and on the others' values.
        ref = run_on("numpy", fn, q, k, v)
        ref = ref[0] if isinstance(ref, tuple) else ref
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref), err_msg=name)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5, equal_nan=True)
        if where == "q":
            assert np.isfinite(np.delete(out[0], 2, axis=0)).all(), name
    elif bad == np.inf and name in ("concat", "additive"):
        assert np.isfinite(out).all(), name  # tanh(inf) = 1: the scores stay finite
    elif where == "q":
        assert np.isnan(out[0, 2]).all(), name
        assert np.isfinite(np.delete(out[0], 2, axis=0)).all(), name
    else:
        assert np.isnan(out).all(), name


# ------------------------------------ _core.attention: direct calls fail cleanly


@pytest.fixture
def core():
    """The compiled core: a NumPy-only run (FASTLAYERS_TEST_NUMPY_ONLY=1) skips these tests;
    any other run without the core fails them."""
    from fastlayers import _backend

    if NUMPY_ONLY:
        pytest.skip("FASTLAYERS_TEST_NUMPY_ONLY=1: the C++ path is not tested in this run")
    if not _backend.core_available():
        pytest.fail("fastlayers._core did not import")
    return _backend._core


def test_core_attention_rejects_unsafe_views(core, rng):
    q, k, v = randn(rng, 1, 1, 8, 4), randn(rng, 1, 1, 600, 4), randn(rng, 1, 1, 600, 4)
    out = np.empty((1, 1, 8, 4), F32)
    core.attention(q, k, v, out)  # the valid call works
    with pytest.raises(ValueError, match="overlap"):
        core.attention(q, k, v, q)  # out aliases q: results would be wrong
    w = np.empty((1, 1, 8, 600), F32)
    with pytest.raises(ValueError, match="overlap"):
        core.attention(q, k, v, out, weights=w, mask=w[..., :600].view(np.uint8)[..., :600])
    with pytest.raises(ValueError, match="zero"):
        zero_row_stride = np.lib.stride_tricks.as_strided(
            np.empty(4, F32), (1, 1, 8, 4), (0, 0, 0, 4)
        )
        core.attention(q, k, v, zero_row_stride)  # threads would race on one row
    raw = np.zeros(8 * 4 * 4 + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, F32, 32, offset=1).reshape(1, 1, 8, 4)
    with pytest.raises(ValueError, match="aligned"):
        core.attention(misaligned, k, v, out)
    with pytest.raises(TypeError, match="float32"):
        core.attention(q.astype(np.float64), k, v, out)
    with pytest.raises(ValueError, match="ndim 4"):
        core.attention(q[0], k, v, out)


def test_core_attention_rejects_sizes_it_cannot_address(core):
    # Zero-stride views: tiny in memory, but packing k and v would need ~2^61 bytes.
    one = np.zeros(1, F32)
    big = np.lib.stride_tricks.as_strided
    q = big(one, (2**20, 2**20, 1, 1), (0, 0, 0, 0))
    kv = big(one, (2**20, 2**20, 2**19, 1), (0, 0, 0, 0))
    out = big(np.zeros(1, F32), (2**20, 2**20, 1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError):
        core.attention(q, kv, kv, out)


@pytest.mark.parametrize("backend", backends_for(MHA))
def test_mha_same_array_for_every_kernel(backend, rng):
    """One (4, 4, 4) array passed as all four kernels (D = N = H = E) is packed right."""
    w = randn(rng, 4, 4, 4)
    x = randn(rng, 2, 6, 4)
    got = run_on(
        backend,
        fl.multi_head_attention,
        x,
        x,
        x,
        query_kernel=w,
        key_kernel=w,
        value_kernel=w,
        output_kernel=w.copy(),
    )
    same = run_on(
        backend,
        fl.multi_head_attention,
        x,
        x,
        x,
        query_kernel=w,
        key_kernel=w,
        value_kernel=w,
        output_kernel=w,
    )
    np.testing.assert_array_equal(got, same)


@pytest.mark.parametrize("biases", [True, False], ids=["bias", "no_bias"])
def test_mha_functional_is_bitwise_the_packed_layer(core, biases, rng):
    """fl.multi_head_attention reads its kernels in place (few rows), the layer packs them
    once: the same FMA chains, so the same bits."""
    query, value, key, kw = make_mha(rng, 2, 5, 7, biases, None)
    got = run_on("cpp", fl.multi_head_attention, query, value, key, **kw)
    n, hk = kw["query_kernel"].shape[1:]
    layer = fl.layers.MultiHeadAttention(
        n,
        hk,
        value_dim=kw["value_kernel"].shape[2],
        output_shape=kw["output_kernel"].shape[2],
        use_bias=biases,
    )
    layer.build(query.shape, value.shape, key.shape)
    names = [
        "query_kernel",
        "query_bias",
        "key_kernel",
        "key_bias",
        "value_kernel",
        "value_bias",
        "output_kernel",
        "output_bias",
    ]
    layer.set_weights([kw[name] for name in names if name in kw])
    with fl.use_backend("cpp"):
        want = layer(query, value, key)
    np.testing.assert_array_equal(got, want)
