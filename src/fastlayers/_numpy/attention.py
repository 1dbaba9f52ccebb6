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
    # Rows holding +inf (or only -inf) give NaN, as IEEE arithmetic says; no warning.
    with np.errstate(invalid="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax(x, axis, mask):
    """Keras Softmax layer: masked entries become -1e9 before and 0 after the softmax.

    axis is an int or a tuple of ints (a softmax over several axes at once).
    """
    if x.size == 0:  # np.max has no identity for an empty reduction axis
        return np.zeros(x.shape, F32)
    if mask is not None:
        x = np.where(mask, x, _KERAS_MASK_VALUE)
    if isinstance(axis, tuple) and len(axis) > 1:
        m = np.max(x, axis=axis, keepdims=True)
        lse = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
        y = np.exp(x - lse)
    else:
        y = _stable_softmax(x, axis)
    if mask is not None:
        y = np.where(mask, y, F32(0))
    return y.astype(F32, copy=False)


def _causal(t_len, s_len):
    """(T, S) lower triangle, top-left aligned: row i may attend to column j iff j <= i."""
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
    mask = _luong_mask(query_mask, value_mask, causal, query.shape[1], key.shape[1])
    return _luong_finish(scores.astype(F32, copy=False), value, query_mask, mask)


def scaled_dot_product_attention(q, k, v, mask, is_causal, scale):
    """softmax(q @ k^T * scale, masked) @ v over any leading dims.

    q (..., T, D), k (..., S, D), v (..., S, Dv), mask broadcastable to (..., T, S).
    Masked logits are set to -0.7 * float32 max (keras.ops.dot_product_attention),
    so a fully masked row attends uniformly instead of giving NaN.
    """
    scores = (q @ np.swapaxes(k, -1, -2)) * F32(scale)
    allowed = mask
    if is_causal:
        causal = _causal(q.shape[-2], k.shape[-2])
        allowed = causal if allowed is None else allowed & causal
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

    query (B, T, Dq), value (B, S, Dv), key (B, S, Dk); wq (Dq, N, H), wk (Dk, N, H),
    wv (Dv, N, Hv), wo (N, Hv, Dout). Returns (output (B, T, Dout), weights (B, N, T, S)).

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
    q = q * F32(1.0 / np.sqrt(wq.shape[-1]))  # Keras scales the query, not the logits
    scores = q @ np.swapaxes(k, -1, -2)  # (B, N, T, S)

    mask = None  # (B or 1, 1, T, S)
    if attention_mask is not None:
        m = attention_mask if attention_mask.ndim == 3 else attention_mask[None]
        mask = m[:, None]
    if causal:
        c = _causal(query.shape[1], key.shape[1])[None, None]
        mask = c if mask is None else mask & c

    if return_scores:
        weights = softmax(scores, -1, None if mask is None else np.broadcast_to(mask, scores.shape))
    else:
        if mask is not None:
            scores = np.where(mask, scores, _FUSED_MASK_VALUE)
        weights = _stable_softmax(scores, axis=-1).astype(F32, copy=False)

    o = (weights @ v).transpose(0, 2, 1, 3)  # (B, T, N, Hv)
    b, t_len = o.shape[:2]
    # Explicit sizes: a -1 cannot be inferred when B or T is 0.
    o = o.reshape(b, t_len, wo.shape[0] * wo.shape[1])
    out = o @ wo.reshape(-1, wo.shape[-1])  # (B, T, Dout)
    if bo is not None:
        out += bo
    return out.astype(F32, copy=False), weights
