"""Softmax and attention in NumPy (docs/semantics.md §9-§12, §14).

Masks are bool with True = keep / may attend (the opposite of PyTorch's boolean
attn_mask). Shapes: B batch, T query length, S key/value length.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32

# Keras's Softmax layer and the MHA softmax path put this in masked logits.
_KERAS_MASK_VALUE = F32(-1e9)
# keras.ops.dot_product_attention (the MHA fused path) uses -0.7 * float32 max, so a
# fully masked row becomes uniform over the keys instead of NaN. sdpa uses it too.
_FUSED_MASK_VALUE = F32(-0.7 * float(np.finfo(np.float32).max))


def _stable_softmax(x, axis):
    """exp(x - max) / sum over `axis`, with the ±inf/NaN policy of docs/semantics.md §15."""
    if not np.isfinite(x).all():
        return np.moveaxis(_policy_softmax(np.moveaxis(x, axis, -1), None), -1, axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _policy_softmax(x, keep):
    """Softmax over the last axis of the entries where `keep` (None: all), §15's policy.

    Entries not kept get 0, and so does every entry of a row with none kept. A kept NaN makes
    the row's kept entries NaN. When the largest kept value m is +inf, or every kept value is
    -inf, the kept entries equal to m share the weight equally (the limit of the softmax, where
    exp(x - max) would give inf - inf = NaN); otherwise exp(x - m) / sum.
    """
    k = np.ones(x.shape, bool) if keep is None else np.broadcast_to(keep, x.shape)
    nan_row = (np.isnan(x) & k).any(axis=-1, keepdims=True)
    xs = np.where(k & ~np.isnan(x), x, -np.inf).astype(x.dtype, copy=False)
    m = np.max(xs, axis=-1, keepdims=True)
    any_kept = k.any(axis=-1, keepdims=True)
    at_inf = np.isinf(m) & any_kept
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.where(k & ~at_inf, np.exp(xs - np.where(at_inf, 0, m)), 0)
    e = np.where(at_inf, (k & (xs == m)).astype(e.dtype), e)
    total = np.sum(e, axis=-1, keepdims=True)
    w = e / np.where(total == 0, 1, total)
    w = np.where(nan_row & k, np.nan, w)
    return w.astype(x.dtype, copy=False)


def _attended_sum(weights, v, attended):
    """sum over the attended keys j of weights[..., t, j] * v[..., j, :] (§15).

    A key that is not attended contributes nothing, also when its value row holds NaN or inf
    (a plain weights @ v would give 0 * NaN = NaN there). An attended one contributes as IEEE
    arithmetic says, even with a zero weight.
    """
    finite = np.isfinite(v)
    if finite.all():
        return weights @ v
    out = weights @ np.where(finite, v, 0).astype(v.dtype, copy=False)
    bad = ~finite.all(axis=-1)  # (..., S): keys with a special value somewhere
    idx = np.nonzero(bad.reshape(-1, bad.shape[-1]).any(axis=0))[0]
    vb = v[..., idx, :]
    vnf = np.where(np.isfinite(vb), 0, vb)[..., None, :, :]  # (..., 1, k, Dv)
    ab = np.broadcast_to(attended, weights.shape)[..., idx][..., None]  # (..., T, k, 1)
    with np.errstate(invalid="ignore"):
        term = np.where(ab, weights[..., idx][..., None] * vnf, 0).sum(axis=-2)
        return (out + term).astype(v.dtype, copy=False)


def _attend(scores, v, allowed, rule):
    """softmax(scores masked per `rule`) @ v, and the weights, with §15's policy.

    scores (..., T, S) float32 (scaled), v (..., S, Dv), allowed broadcastable to scores (True =
    may attend) or None. rule: "fused" (a fully masked row attends uniformly to all keys),
    "subtract" (Keras Attention: masked scores lowered by 1e9 and kept, the non-finite ones
    left out; a fully masked row keeps them all) or "softmax_layer" (a fully masked row has
    zero weights). Only called when a score or a value is not finite; the finite case keeps
    Keras's own formulas in the callers.
    """
    a = np.ones(scores.shape, bool) if allowed is None else np.broadcast_to(allowed, scores.shape)
    any_a = a.any(axis=-1, keepdims=True)
    if rule == "fused":
        logits = np.where(any_a, scores, F32(0))
        attended = a | ~any_a
    elif rule == "subtract":
        with np.errstate(invalid="ignore"):
            logits = np.where(a, scores, scores - F32(1e9))
        attended = a | ~any_a
        # Keras's formula keeps the masked keys in the softmax, lowered by 1e9: their weight
        # is 0 unless every score the row may attend is below theirs (all -inf, say). Those
        # with a finite score stay in; a masked NaN or inf is left out (§15), and a masked
        # key's value reaches the row only through a weight that is not 0.
        weights = _policy_softmax(logits.astype(F32, copy=False), attended | np.isfinite(scores))
        return _attended_sum(weights, v, attended | (weights != 0)), weights
    else:
        logits, attended = scores, a
    weights = _policy_softmax(logits.astype(F32, copy=False), attended)
    return _attended_sum(weights, v, attended), weights


def _all_finite(*arrays):
    return all(np.isfinite(x).all() for x in arrays)


def softmax(x, axis, mask):
    """Keras Softmax layer: masked entries become -1e9 before and 0 after the softmax.

    axis is an int or a tuple of ints (a softmax over several axes at once).
    """
    if x.size == 0:  # np.max has no identity for an empty reduction axis
        return np.zeros(x.shape, F32)
    if mask is not None:
        x = np.where(mask, x, _KERAS_MASK_VALUE)
    if isinstance(axis, tuple) and len(axis) > 1 and not np.isfinite(x).all():
        # §15's policy over the axes taken together: move them last and flatten them.
        axes = [a % x.ndim for a in axis]
        rest = [a for a in range(x.ndim) if a not in axes]
        xt = np.transpose(x, rest + axes)
        flat = _policy_softmax(xt.reshape(*xt.shape[: len(rest)], -1), None)
        y = np.transpose(flat.reshape(xt.shape), np.argsort(rest + axes))
    else:
        # exp(x - max) / sum, also over several axes: Keras's layer computes
        # exp(x - logsumexp(x)) there, whose float32 log-sum is rounded to the spacing of the
        # max (1e7 logits: every weight of a 2 x 3 slice exp(-2), summing to 0.81);
        # docs/semantics.md §12.
        y = _stable_softmax(x, axis)
    if mask is not None:
        y = np.where(mask, y, F32(0))
    return y.astype(F32, copy=False)


def _causal(t_len, s_len):
    """(T, S) lower triangle, top-left aligned: row i may attend to column j iff j <= i.

    The callers skip it when the scores are empty (B = 0 or no heads): T x S may then be
    far larger than memory, and nothing is masked."""
    return np.tril(np.ones((t_len, s_len), dtype=bool))


def _luong_mask(query_mask, value_mask, use_causal_mask, t_len, s_len):
    """The (B or 1, T or 1, S) score mask of Keras Attention / AdditiveAttention."""
    mask = None
    if value_mask is not None:
        mask = value_mask[:, None, :]
    if use_causal_mask:
        causal = _causal(t_len, s_len)[None]
        mask = causal if mask is None else mask & causal
    return mask


def _luong_finish(scores, value, query_mask, mask):
    """Masked softmax over S, weights @ value, zero the rows of masked queries."""
    if not _all_finite(scores, value):
        out, weights = _attend(scores, value, mask, "subtract")
        if query_mask is not None:
            out = out * query_mask[:, :, None]
        return out.astype(F32, copy=False), weights
    if mask is not None:
        # Keras subtracts 1e9 from masked scores (in float32) rather than replacing them.
        scores = scores - F32(1e9) * (~mask).astype(F32)
    weights = _stable_softmax(scores, axis=-1).astype(F32, copy=False)
    out = weights @ value
    if query_mask is not None:
        out = out * query_mask[:, :, None]
    return out.astype(F32, copy=False), weights


def attention(query, value, key, scale, score_mode, concat_weight, query_mask, value_mask, causal):
    """Keras Attention (Luong). query (B, T, D), key (B, S, D), value (B, S, Dv).

    Returns (output (B, T, Dv), weights (B, T, S)).
    """
    if score_mode == "dot":
        scores = query @ np.swapaxes(key, -1, -2)
        if scale is not None:
            scores = scores * F32(scale)
    else:  # "concat": w * sum_d tanh(scale * (q_d + k_d))
        pre = F32(1) if scale is None else F32(scale)
        scores = F32(concat_weight) * _tanh_score_sum(query, key, pre, None)
    causal = causal and scores.size > 0
    mask = _luong_mask(query_mask, value_mask, causal, query.shape[1], key.shape[1])
    return _luong_finish(scores.astype(F32, copy=False), value, query_mask, mask)


def _tanh_score_sum(query, key, pre, weight):
    """scores[b, i, j] = sum_d weight[d] * tanh(pre * (query[b, i, d] + key[b, j, d])).

    pre None means 1, weight None means all ones. The (B, T, S, D) sum is formed a few query
    rows at a time, so the temporary stays near 32 MiB whatever T is.
    """
    b, t_len, d = query.shape
    s_len = key.shape[1]
    scores = np.empty((b, t_len, s_len), F32)
    step = max(1, (8 << 20) // max(1, b * s_len * d))
    for i in range(0, t_len, step):
        summed = query[:, i : i + step, None, :] + key[:, None, :, :]  # (B, step, S, D)
        if pre is not None:
            summed *= pre
        np.tanh(summed, out=summed)
        scores[:, i : i + step] = np.sum(summed, axis=-1) if weight is None else summed @ weight
    return scores


def additive_attention(query, value, key, scale, query_mask, value_mask, causal):
    """Keras AdditiveAttention (Bahdanau). scores[b,i,j] = sum_d scale[d] tanh(q[b,i,d] + k[b,j,d]).

    scale is a (D,) vector or None (all ones). Returns (output, weights).
    """
    scores = _tanh_score_sum(query, key, None, scale)
    causal = causal and scores.size > 0
    mask = _luong_mask(query_mask, value_mask, causal, query.shape[1], key.shape[1])
    return _luong_finish(scores.astype(F32, copy=False), value, query_mask, mask)


def _shared_heads_repeated(k, v, heads):
    """Grouped-query attention's k and v (..., G, S, ·): each head repeated for its
    heads / G query heads (axis -3), so that query head h reads head h // (heads / G)."""
    if k.ndim < 3 or k.shape[-3] == heads:
        return k, v
    r = heads // k.shape[-3]
    return np.repeat(k, r, axis=-3), np.repeat(v, r, axis=-3)


def scaled_dot_product_attention(q, k, v, mask, is_causal, scale):
    """softmax(q @ k^T * scale, masked) @ v over any leading dims.

    q (..., T, D), k (..., S, D), v (..., S, Dv), mask broadcastable to (..., T, S).
    Masked logits are set to -0.7 * float32 max (keras.ops.dot_product_attention),
    so a fully masked row attends uniformly instead of giving NaN. k and v may have G
    heads (dim -3) where q has H, G dividing H (grouped-query attention): each is
    repeated for its H / G query heads.
    """
    k, v = _shared_heads_repeated(k, v, q.shape[-3] if q.ndim >= 3 else 1)
    scores = (q @ np.swapaxes(k, -1, -2)) * F32(scale)
    allowed = mask
    if is_causal and scores.size:
        causal = _causal(q.shape[-2], k.shape[-2])
        allowed = causal if allowed is None else allowed & causal
    if not _all_finite(scores, v):
        return _attend(scores.astype(F32, copy=False), v, allowed, "fused")[0]
    if allowed is not None:
        scores = np.where(allowed, scores, _FUSED_MASK_VALUE)
    weights = _stable_softmax(scores, axis=-1)
    return (weights @ v).astype(F32, copy=False)


def multi_head_attention(
    query,
    value,
    key,
    wq,
    wk,
    wv,
    wo,
    bq,
    bk,
    bv,
    bo,
    attention_mask,
    causal,
    return_scores,
):
    """Keras MultiHeadAttention on rank-3 inputs (docs/semantics.md §11).

    query (B, T, Dq), value (B, S, Dv), key (B, S, Dk); wq (Dq, N, H), wk (Dk, G, H),
    wv (Dv, G, Hv), wo (N, Hv, Dout), G dividing N: key/value head j serves query heads
    j * N/G ... (j + 1) * N/G - 1 (grouped-query attention; G = N is plain multi-head).
    Returns (output (B, T, Dout), weights (B, N, T, S)).

    Fully masked rows follow Keras's two code paths: with return_scores (the
    softmax-layer path) their weights are all zero; without (the fused path) they
    are uniform over S.
    """

    def project(x, w, b):  # (B, L, D) @ (D, N, H) -> (B, N, L, H)
        y = (x @ w.reshape(w.shape[0], -1)).reshape(x.shape[0], x.shape[1], *w.shape[1:])
        if b is not None:
            y += b
        return y.transpose(0, 2, 1, 3)

    q = project(query, wq, bq)
    k = project(key, wk, bk)
    v = project(value, wv, bv)
    k, v = _shared_heads_repeated(k, v, q.shape[1])
    q = q * F32(1.0 / np.sqrt(wq.shape[-1]))  # Keras scales the query, not the logits
    scores = q @ np.swapaxes(k, -1, -2)  # (B, N, T, S)

    mask = None  # (B or 1, 1, T, S)
    if attention_mask is not None:
        m = attention_mask if attention_mask.ndim == 3 else attention_mask[None]
        mask = m[:, None]
    if causal and scores.size:
        c = _causal(query.shape[1], key.shape[1])[None, None]
        mask = c if mask is None else mask & c

    if not _all_finite(scores, v):
        rule = "softmax_layer" if return_scores else "fused"
        o, weights = _attend(scores.astype(F32, copy=False), v, mask, rule)
    elif return_scores:
        weights = softmax(scores, -1, None if mask is None else np.broadcast_to(mask, scores.shape))
        o = weights @ v
    else:
        if mask is not None:
            scores = np.where(mask, scores, _FUSED_MASK_VALUE)
        weights = _stable_softmax(scores, axis=-1).astype(F32, copy=False)
        o = weights @ v

    o = o.transpose(0, 2, 1, 3)  # (B, T, N, Hv)
    b, t_len = o.shape[:2]
    # Explicit sizes: a -1 cannot be inferred when B or T is 0.
    o = o.reshape(b, t_len, wo.shape[0] * wo.shape[1])
    out = o @ wo.reshape(-1, wo.shape[-1])  # (B, T, Dout)
    if bo is not None:
        out += bo
    return out.astype(F32, copy=False), weights
