"""Attention on the C++ path: one blocked kernel (``_core.attention``) for every variant."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend
from ._alloc import empty_f32

# Mask rules of _core.attention (csrc/include/fastlayers/ops.h, MaskRule).
RULE_FUSED, RULE_SUBTRACT, RULE_SOFTMAX_LAYER = 0, 1, 2


def run_attention(q, k, v, mask, causal, rule, want_weights, heads_last=False, *,
                  scale=1.0, additive=False, pre=1.0, post=1.0, add_w=None):
    """Run ``_core.attention`` on (B, H, rows, cols) views.

    ``mask`` is a bool array broadcastable to (B, H, T, S) or None. Returns
    (out (B, H, T, Dv), weights (B, H, T, S) or None); with ``heads_last`` ``out`` is a
    view of (B, T, H, Dv) memory, the layout multi-head attention's output projection
    reads. The score arguments are those of ``_core.attention``: dot scores
    ``scale * q.k``, or ``additive`` ones ``post * sum(add_w * tanh(pre * (q + k)))``.
    """
    b, h, t_len, _ = q.shape
    s_len, dv = v.shape[2], v.shape[3]
    if heads_last:
        out = empty_f32((b, t_len, h, dv)).transpose(0, 2, 1, 3)
    else:
        out = empty_f32((b, h, t_len, dv))
    weights = empty_f32((b, h, t_len, s_len)) if want_weights else None
    if mask is not None:
        mask = np.broadcast_to(mask, (b, h, t_len, s_len))
        if s_len > 1 and mask.strides[3] != 1:
            mask = np.ascontiguousarray(mask)
    # by position: keyword matching costs more than the kernels of a small head
    _backend._core.attention(
        q, k, v, out, weights, mask, causal, rule, scale, additive, pre, post, add_w
    )
    return out, weights


def _luong(a, **score):
    """Attention / AdditiveAttention: one head, 1e9 subtracted when masked.
    Returns (output (B, Tq, Dv), weights (B, Tq, Tv) or None)."""
    mask = None if a.value_mask is None else a.value_mask[:, None, None, :]
    out, weights = run_attention(
        a.query[:, None],
        a.key[:, None],
        a.value[:, None],
        mask,
        a.causal,
        RULE_SUBTRACT,
        a.return_scores,
        **score,
    )
    out = out[:, 0]
    if a.query_mask is not None:
        out *= a.query_mask[:, :, None]
    return out, None if weights is None else weights[:, 0]


def attention(a):
    """attention or additive_attention on checked arguments (``_validation.LuongArgs``)
    -> (out, weights or None)."""
    if a.score_mode == "additive":
        return _luong(a, additive=True, add_w=a.scale)
    pre = 1.0 if a.scale is None else a.scale
    if a.score_mode == "dot":
        return _luong(a, scale=pre)
    return _luong(a, additive=True, pre=pre, post=a.concat_score_weight)


def _batch_heads(lead):
    """sdpa's leading dims as (B, H): the last one is H, the others merge into B."""
    return (math.prod(lead[:-1]), lead[-1]) if lead else (1, 1)


def scaled_dot_product_attention(a):
    """scaled_dot_product_attention on checked arguments (``_validation.SDPAArgs``).

    The leading dims become (B, H): the last one is H, the others merge into B (a view
    of the C-contiguous arrays validation returns).
    """
    q, k, v, mask = a.q, a.k, a.v, a.mask
    if q.ndim == 4:  # already (B, H, T, D): no views to make
        return run_attention(q, k, v, mask, a.causal, RULE_FUSED, False, scale=a.scale)[0]
    lead = q.shape[:-2]
    bh = _batch_heads(lead)
    t_len, s_len = q.shape[-2], k.shape[-2]
    if mask is not None:
        mask = np.broadcast_to(mask, lead + (t_len, s_len)).reshape(bh + (t_len, s_len))
    out, _ = run_attention(
        q.reshape(bh + q.shape[-2:]),
        # (B, G) for grouped-query k and v: _core.attention reads them in place for H / G
        # query heads each
        k.reshape(_batch_heads(k.shape[:-2]) + k.shape[-2:]),
        v.reshape(_batch_heads(v.shape[:-2]) + v.shape[-2:]),
        mask,
        a.causal,
        RULE_FUSED,
        False,
        scale=a.scale,
    )
    return out.reshape(lead + (t_len, v.shape[-1]))


def sdpa_runner(a):
    """:func:`scaled_dot_product_attention` for q, k, v of ``a``'s shapes (C-contiguous float32,
    no mask) as a function of them alone: the views' shapes, the causal flag and the scale
    bound in, the same ``_core.attention`` call (models/shape_plan.py, functional.py)."""
    core = _backend._core
    lead, t_len, dv = a.q.shape[:-2], a.q.shape[-2], a.v.shape[-1]
    out_shape = lead + (t_len, dv)
    causal, scale = a.causal, a.scale

    if len(lead) == 2:  # already (B, H, T, D)

        def run(q, k, v):  # (the core allocates the output)
            return core.attention(q, k, v, None, None, None, causal, RULE_FUSED, scale, False,
                                  1.0, 1.0, None)

        return run
    qs, ks, vs = (_batch_heads(x.shape[:-2]) + x.shape[-2:] for x in (a.q, a.k, a.v))

    def run_views(q, k, v):
        out = core.attention(q.reshape(qs), k.reshape(ks), v.reshape(vs), None, None, None,
                             causal, RULE_FUSED, scale, False, 1.0, 1.0, None)
        return out.reshape(out_shape)

    return run_views


def pack_multi_head_attention(kernels, biases, pack=True):
    """The four projections (query, key, value, output) for the C++ path, as functions
    x (rows, D) -> (rows, N*H): on ``_core.PackedDense`` (bias folded) when ``pack`` (a
    layer, packed once), else reading the kernels in place (a functional call, where
    packing would cost more than the few rows of a short sequence). The same bits either
    way. kernels: (Dq, N, Hk), (Dk, G, Hk), (Dv, G, Hv), (N, Hv, E) (G key/value heads);
    biases to match or None."""
    core = _backend._core

    def projection(w2, b):
        w2 = np.ascontiguousarray(w2)
        b = None if b is None else np.ascontiguousarray(b.reshape(-1))
        if pack:
            packed = core.PackedDense(w2, b)
            return lambda x2: core.dense(x2, packed, 0)
        return lambda x2: core.dense_unpacked(x2, w2, b, 0)

    wq, wk, wv, wo = kernels
    bq, bk, bv, bo = biases
    return (
        projection(wq.reshape(wq.shape[0], -1), bq),  # (D, N, H) -> (D, N*H)
        projection(wk.reshape(wk.shape[0], -1), bk),
        projection(wv.reshape(wv.shape[0], -1), bv),
        projection(wo.reshape(-1, wo.shape[-1]), bo),  # (N, Hv, E) -> (N*Hv, E)
    )


def multi_head_attention(a, packed=None):
    """multi_head_attention on checked arguments (``_validation.MHAArgs``) -> (out, weights):
    three projection GEMMs, the heads in one attention call on strided views, the output
    projection GEMM. ``packed`` is the layer's :func:`pack_multi_head_attention`, or None."""
    if packed is None:
        packed = pack_multi_head_attention(a.kernels, a.biases, pack=False)
    wq, _, wv, wo = a.kernels
    _, n, hk = wq.shape
    hv, dout = wv.shape[2], wo.shape[2]
    b, t_len = a.query.shape[:2]

    def project(x, p, heads, h, scale=None):
        # (B, L, D) -> (B, heads, L, h), a view of (B, L, heads, h)
        y = p(x.reshape(-1, x.shape[-1]))
        if scale is not None:
            # Keras scales the projected query by 1/sqrt(key_dim), not the scores: its
            # roundings (and its overflows: q.k past float32's max where (q*s).k is not)
            y *= np.float32(scale)
        # grouped-query attention (heads < n): _core.attention reads each key/value head in
        # place for its n / heads query heads
        return y.reshape(x.shape[0], x.shape[1], heads, h).transpose(0, 2, 1, 3)

    pq, pk, pv, po = packed
    g = a.kernels[1].shape[1]
    mask = a.mask
    if mask is not None:
        mask = mask[:, None] if mask.ndim == 3 else mask
    out, weights = run_attention(
        project(a.query, pq, n, hk, scale=1.0 / math.sqrt(hk)),
        project(a.key, pk, g, hk),
        project(a.value, pv, g, hv),
        mask,
        a.causal,
        RULE_SOFTMAX_LAYER if a.return_scores else RULE_FUSED,
        a.return_scores,
        heads_last=True,
        scale=1.0,  # (applied to the query above)
    )
    o = out.transpose(0, 2, 1, 3).reshape(b * t_len, n * hv)  # a view: heads_last memory
    return po(o).reshape(b, t_len, dout), weights
