"""Naive float64 references for the recurrent, softmax and attention ops.

Written from docs/semantics.md §6-§12, §14 with explicit Python loops over batch, time,
heads, rows and units, scalar ``math`` functions and Python floats: deliberately
not the vectorized code of fastlayers/_numpy, so that a shared mistake is
unlikely. Slow; use small shapes.

Masking rules encoded here (where a float64 computation needs a rule of its own):

* Recurrent: a masked step keeps the state and repeats the previously emitted
  output, which is zero before the first unmasked step (Keras torch/TF backends).
* Softmax layer: masked logits are replaced by -1e9, masked outputs set to 0.
* Attention / AdditiveAttention: Keras subtracts 1e9 from masked scores in
  float32. Here a masked score is *replaced* by -1e9, which gives the same
  weights for every row with at least one unmasked key. Fully masked rows differ
  (float32 rounding of s - 1e9 makes Keras's row uniform), so compare this
  reference only on rows with an unmasked key and test fully masked rows apart.
* scaled_dot_product_attention and the MHA path without scores: a fully masked
  row attends uniformly to all S keys.
* MHA with return_attention_scores: a fully masked row has all-zero weights.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

MASKED_LOGIT = -1e9


# ----------------------------------------------------------------------- scalars


def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


ACTIVATIONS = {
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda v: v if v > 0.0 else 0.0,
    "hard_sigmoid": lambda v: min(1.0, max(0.0, v / 6.0 + 0.5)),  # Keras 3 form
    "linear": lambda v: v,
}


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _lists(a):
    return None if a is None else _f64(a).tolist()


def _dot(a, b):
    s = 0.0
    for p, q in zip(a, b):
        s += p * q
    return s


def _softmax_list(vals):
    """Softmax of a list of Python floats (max-shifted)."""
    top = max(vals)
    e = [math.exp(v - top) for v in vals]
    total = sum(e)
    return [v / total for v in e]


def _col(matrix, j):
    return [row[j] for row in matrix]


# --------------------------------------------------------------------- recurrent


def _lstm_step(x_t, h, c, w, r, b, act, ract):
    """One LSTM step on Python lists: x_t (F,), h, c (u,), w (F, 4u), r (u, 4u), b (4u,)."""
    u = len(h)
    z = [b[j] + _dot(x_t, _col(w, j)) + _dot(h, _col(r, j)) for j in range(4 * u)]
    h_new, c_new = [], []
    for m in range(u):
        i_g = ract(z[m])
        f_g = ract(z[u + m])
        g_g = act(z[2 * u + m])
        o_g = ract(z[3 * u + m])
        cm = f_g * c[m] + i_g * g_g
        c_new.append(cm)
        h_new.append(o_g * act(cm))
    return h_new, c_new


def lstm_cell(x_t, h, c, kernel, recurrent_kernel, bias=None):
    """One step, tanh / sigmoid. Returns (h, c), each float64 (B, u)."""
    x_t, h, c = _lists(x_t), _lists(h), _lists(c)
    w, r = _lists(kernel), _lists(recurrent_kernel)
    u = len(r)
    b = _lists(bias) if bias is not None else [0.0] * (4 * u)
    hs, cs = [], []
    for s in range(len(x_t)):
        hn, cn = _lstm_step(x_t[s], h[s], c[s], w, r, b, math.tanh, _sigmoid)
        hs.append(hn)
        cs.append(cn)
    return np.array(hs, np.float64).reshape(-1, u), np.array(cs, np.float64).reshape(-1, u)


def _run_sequence(x, mask, go_backwards, u, states0, step):
    """Drive ``step(x_t, states) -> (h, states)`` over every sample.

    Returns (outputs (B, T, u) in processing order, final states per sample).
    """
    n_batch, t_len = len(x), (len(x[0]) if len(x) else 0)
    outputs = np.zeros((n_batch, t_len, u), np.float64)
    finals = []
    for s in range(n_batch):
        states = [list(st[s]) for st in states0]
        emitted = [0.0] * u  # the previously emitted output
        order = list(range(t_len))
        if go_backwards:
            order.reverse()
        for k, t in enumerate(order):
            if mask is None or mask[s][t]:
                emitted, states = step(x[s][t], states)
            outputs[s, k] = emitted
        finals.append(states)
    return outputs, finals


def _state_arrays(finals, n_states, n_batch, u):
    return [
        np.array([f[i] for f in finals], np.float64).reshape(n_batch, u) for i in range(n_states)
    ]


def lstm(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    initial_state=None,
    mask=None,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    activation="tanh",
    recurrent_activation="sigmoid",
):
    x = _f64(x)
    n_batch, _, _ = x.shape
    w, r = _lists(kernel), _lists(recurrent_kernel)
    u = len(r)
    b = _lists(bias) if bias is not None else [0.0] * (4 * u)
    act, ract = ACTIVATIONS[activation], ACTIVATIONS[recurrent_activation]
    if initial_state is None:
        states0 = [[[0.0] * u] * n_batch, [[0.0] * u] * n_batch]
    else:
        states0 = [_lists(initial_state[0]), _lists(initial_state[1])]
    m = None if mask is None else np.asarray(mask, bool).tolist()

    def step(x_t, states):
        h, c = _lstm_step(x_t, states[0], states[1], w, r, b, act, ract)
        return h, [h, c]

    outs, finals = _run_sequence(x.tolist(), m, go_backwards, u, states0, step)
    out = outs if return_sequences else outs[:, -1]
    if return_state:
        return (out, *_state_arrays(finals, 2, n_batch, u))
    return out


def gru(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    initial_state=None,
    mask=None,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    reset_after=True,
    activation="tanh",
    recurrent_activation="sigmoid",
):
    x = _f64(x)
    n_batch = x.shape[0]
    w, r = _lists(kernel), _lists(recurrent_kernel)
    u = len(r)
    act, ract = ACTIVATIONS[activation], ACTIVATIONS[recurrent_activation]
    if bias is None:
        b_in, b_rec = [0.0] * (3 * u), [0.0] * (3 * u)
    elif reset_after:
        b_in, b_rec = _lists(bias)
    else:
        b_in, b_rec = _lists(bias), [0.0] * (3 * u)
    if initial_state is None:
        states0 = [[[0.0] * u] * n_batch]
    else:
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        states0 = [_lists(h0)]
    m = None if mask is None else np.asarray(mask, bool).tolist()

    def step(x_t, states):
        h = states[0]
        xz = [b_in[j] + _dot(x_t, _col(w, j)) for j in range(3 * u)]
        new = []
        if reset_after:
            hz = [b_rec[j] + _dot(h, _col(r, j)) for j in range(3 * u)]
            for mm in range(u):
                z = ract(xz[mm] + hz[mm])
                rr = ract(xz[u + mm] + hz[u + mm])
                cand = act(xz[2 * u + mm] + rr * hz[2 * u + mm])
                new.append(z * h[mm] + (1.0 - z) * cand)
        else:
            zs = [ract(xz[mm] + _dot(h, _col(r, mm))) for mm in range(u)]
            rs = [ract(xz[u + mm] + _dot(h, _col(r, u + mm))) for mm in range(u)]
            rh = [rs[mm] * h[mm] for mm in range(u)]
            for mm in range(u):
                cand = act(xz[2 * u + mm] + _dot(rh, _col(r, 2 * u + mm)))
                new.append(zs[mm] * h[mm] + (1.0 - zs[mm]) * cand)
        return new, [new]

    outs, finals = _run_sequence(x.tolist(), m, go_backwards, u, states0, step)
    out = outs if return_sequences else outs[:, -1]
    if return_state:
        return (out, *_state_arrays(finals, 1, n_batch, u))
    return out


# ----------------------------------------------------------------------- softmax


def softmax(x, axis=-1, mask=None):
    """Keras Softmax layer in float64: each slice over ``axis`` (int or tuple) at a time."""
    x = _f64(x)
    nd = x.ndim
    axes = tuple(sorted({a % nd for a in (axis if isinstance(axis, (tuple, list)) else (axis,))}))
    keep = np.ones(x.shape, bool)
    if mask is not None:
        mask = np.asarray(mask)
        mask = mask if mask.dtype == bool else mask > 0.5
        keep = np.broadcast_to(mask, x.shape)
    out = np.zeros(x.shape, np.float64)
    others = [d for d in range(nd) if d not in axes]
    for outer in itertools.product(*(range(x.shape[d]) for d in others)):
        cells = []
        for inner in itertools.product(*(range(x.shape[d]) for d in axes)):
            idx = [0] * nd
            for d, i in zip(others, outer):
                idx[d] = i
            for d, i in zip(axes, inner):
                idx[d] = i
            cells.append(tuple(idx))
        if not cells:
            continue
        vals = [float(x[c]) if keep[c] else MASKED_LOGIT for c in cells]
        for c, p in zip(cells, _softmax_list(vals)):
            out[c] = p if keep[c] else 0.0
    return out


# --------------------------------------------------------------------- attention


def _masked_row_weights(scores, allowed):
    """Softmax over the allowed entries of one row (replace rule), zeros elsewhere
    is implied by exp(-1e9 - max) == 0 when at least one entry is allowed."""
    return _softmax_list([s if a else MASKED_LOGIT for s, a in zip(scores, allowed)])


def _luong(query, value, key, score, query_mask, value_mask, use_causal_mask):
    q, v = _lists(query), _lists(value)
    k = v if key is None else _lists(key)
    n_batch, t_len, s_len = len(q), len(q[0]) if q else 0, len(v[0]) if v else 0
    dv = _f64(value).shape[2]
    out = np.zeros((n_batch, t_len, dv), np.float64)
    weights = np.zeros((n_batch, t_len, s_len), np.float64)
    for b in range(n_batch):
        for i in range(t_len):
            scores = [score(q[b][i], k[b][j]) for j in range(s_len)]
            allowed = [
                (value_mask is None or bool(value_mask[b][j])) and (not use_causal_mask or j <= i)
                for j in range(s_len)
            ]
            w = _masked_row_weights(scores, allowed)
            weights[b, i] = w
            if query_mask is not None and not query_mask[b][i]:
                continue  # output row stays 0; the weights are kept
            for e in range(dv):
                out[b, i, e] = sum(w[j] * v[b][j][e] for j in range(s_len))
    return out, weights


def attention(
    query,
    value,
    key=None,
    *,
    scale=None,
    score_mode="dot",
    concat_score_weight=None,
    query_mask=None,
    value_mask=None,
    use_causal_mask=False,
):
    """Keras Attention; returns (output (B, Tq, Dv), weights (B, Tq, Tv)) in float64."""
    if score_mode == "dot":

        def score(qv, kv):
            s = _dot(qv, kv)
            return s * scale if scale is not None else s

    else:
        wgt = 1.0 if concat_score_weight is None else float(concat_score_weight)
        sc = 1.0 if scale is None else float(scale)

        def score(qv, kv):
            return wgt * sum(math.tanh(sc * (a + c)) for a, c in zip(qv, kv))

    return _luong(query, value, key, score, _lists(query_mask), _lists(value_mask), use_causal_mask)


def additive_attention(
    query, value, key=None, *, scale=None, query_mask=None, value_mask=None, use_causal_mask=False
):
    """Keras AdditiveAttention; returns (output, weights) in float64."""
    dim = _f64(query).shape[2]
    sc = [1.0] * dim if scale is None else _lists(scale)

    def score(qv, kv):
        return sum(sc[d] * math.tanh(qv[d] + kv[d]) for d in range(dim))

    return _luong(query, value, key, score, _lists(query_mask), _lists(value_mask), use_causal_mask)


def _attend_uniform_if_empty(scores, allowed):
    if any(allowed):
        return _masked_row_weights(scores, allowed)
    return [1.0 / len(scores)] * len(scores)


def scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale) v over any leading dims; fully masked rows are uniform."""
    q, k, v = _f64(q), _f64(k), _f64(v)
    lead = q.shape[:-2]
    t_len, d = q.shape[-2:]
    s_len, dv = v.shape[-2:]
    sc = 1.0 / math.sqrt(d) if scale is None else float(scale)
    allowed_all = np.ones(lead + (t_len, s_len), bool)
    if mask is not None:
        allowed_all = np.broadcast_to(np.asarray(mask) != 0, lead + (t_len, s_len))
    n = int(np.prod(lead, dtype=np.int64))
    q3 = q.reshape(n, t_len, d).tolist()
    k3 = k.reshape(n, s_len, d).tolist()
    v3 = v.reshape(n, s_len, dv).tolist()
    a3 = allowed_all.reshape(n, t_len, s_len).tolist()
    out = np.zeros((n, t_len, dv), np.float64)
    for b in range(n):
        for i in range(t_len):
            scores = [_dot(q3[b][i], k3[b][j]) * sc for j in range(s_len)]
            allowed = [a3[b][i][j] and (not is_causal or j <= i) for j in range(s_len)]
            w = _attend_uniform_if_empty(scores, allowed)
            for e in range(dv):
                out[b, i, e] = sum(w[j] * v3[b][j][e] for j in range(s_len))
    return out.reshape(lead + (t_len, dv))


def multi_head_attention(
    query,
    value,
    key=None,
    *,
    query_kernel,
    key_kernel,
    value_kernel,
    output_kernel,
    query_bias=None,
    key_bias=None,
    value_bias=None,
    output_bias=None,
    attention_mask=None,
    use_causal_mask=False,
    return_attention_scores=False,
):
    """Keras MultiHeadAttention; returns (output (B, T, Dout), weights (B, N, T, S))."""
    query, value = _f64(query), _f64(value)
    key = value if key is None else _f64(key)
    wq, wk, wv, wo = (_f64(a) for a in (query_kernel, key_kernel, value_kernel, output_kernel))
    n_batch, t_len, _ = query.shape
    s_len = value.shape[1]
    n_heads, hk = wq.shape[1:]
    hv = wv.shape[2]
    d_out = wo.shape[2]

    def project(x, w, bias):  # (B, L, D) x (D, N, H) -> [b][n][l][h] lists
        _, length, dim = x.shape
        heads, width = w.shape[1:]
        res = [
            [[[0.0] * width for _ in range(length)] for _ in range(heads)] for _ in range(n_batch)
        ]
        xl, wl = x.tolist(), w.tolist()
        bl = None if bias is None else _lists(bias)
        for b in range(n_batch):
            for n in range(heads):
                for t in range(length):
                    for h in range(width):
                        acc = 0.0 if bl is None else bl[n][h]
                        for dd in range(dim):
                            acc += xl[b][t][dd] * wl[dd][n][h]
                        res[b][n][t][h] = acc
        return res

    qp = project(query, wq, query_bias)
    kp = project(key, wk, key_bias)
    vp = project(value, wv, value_bias)
    inv = 1.0 / math.sqrt(hk)
    am = None
    if attention_mask is not None:
        am = np.broadcast_to(np.asarray(attention_mask) != 0, (n_batch, t_len, s_len)).tolist()
    wol = wo.tolist()
    bo = [0.0] * d_out if output_bias is None else _lists(output_bias)
    out = np.zeros((n_batch, t_len, d_out), np.float64)
    weights = np.zeros((n_batch, n_heads, t_len, s_len), np.float64)
    for b in range(n_batch):
        for t in range(t_len):
            allowed = [
                (am is None or am[b][t][s]) and (not use_causal_mask or s <= t)
                for s in range(s_len)
            ]
            row_out = list(bo)
            for n in range(n_heads):
                qs = [val * inv for val in qp[b][n][t]]  # Keras scales the query
                scores = [_dot(qs, kp[b][n][s]) for s in range(s_len)]
                if any(allowed):
                    w = _masked_row_weights(scores, allowed)
                elif return_attention_scores:
                    w = [0.0] * s_len  # the softmax-layer path zeroes masked weights
                else:
                    w = [1.0 / s_len] * s_len  # the fused path attends uniformly
                weights[b, n, t] = w
                for h in range(hv):
                    o = sum(w[s] * vp[b][n][s][h] for s in range(s_len))
                    for e in range(d_out):
                        row_out[e] += o * wol[n][h][e]
            out[b, t] = row_out
    return out, weights


# ------------------------------------------- vectorized float64 references (large shapes)
#
# The loop references above are too slow for sequences of hundreds or thousands of
# steps. These compute the same float64 quantities one (batch, head) matrix at a time,
# with masked entries dropped through -inf and fully masked rows handled explicitly
# (never by a large finite logit), so they do not share the NumPy path's mask trick.
# tests/test_attention_cpp.py checks them against the loop references above.


def _row_softmax_f64(scores, allowed, empty_rule):
    """Softmax over the allowed entries of each row of a float64 (T, S) matrix.

    Rows without an allowed entry follow ``empty_rule``: "uniform" (1/S everywhere) or
    "zero" (all zeros). Disallowed entries of the other rows get weight 0.
    """
    s = np.where(allowed, scores, -np.inf)
    any_allowed = allowed.any(axis=-1, keepdims=True)
    top = np.where(any_allowed, s.max(axis=-1, keepdims=True, initial=-np.inf), 0.0)
    e = np.exp(s - top)  # exp(-inf) = 0 for disallowed entries
    tot = e.sum(axis=-1, keepdims=True)
    w = e / np.where(any_allowed, tot, 1.0)
    fill = 1.0 / scores.shape[-1] if empty_rule == "uniform" else 0.0
    return np.where(any_allowed, w, fill)


def _causal_f64(t_len, s_len):
    return np.arange(s_len)[None, :] <= np.arange(t_len)[:, None]


def sdpa_f64(q, k, v, *, mask=None, is_causal=False, scale=None):
    """Vectorized float64 scaled_dot_product_attention; fully masked rows are uniform
    over all S keys (including keys the causal mask hides)."""
    q, k, v = _f64(q), _f64(k), _f64(v)
    lead = q.shape[:-2]
    t_len, d = q.shape[-2:]
    s_len, dv = v.shape[-2:]
    sc = 1.0 / math.sqrt(d) if scale is None else float(scale)
    allowed = np.ones(lead + (t_len, s_len), bool)
    if mask is not None:
        allowed = np.broadcast_to(np.asarray(mask) != 0, allowed.shape)
    if is_causal:
        allowed = allowed & _causal_f64(t_len, s_len)
    n = int(np.prod(lead, dtype=np.int64))
    q3, k3, v3 = q.reshape(n, t_len, d), k.reshape(n, s_len, d), v.reshape(n, s_len, dv)
    a3 = allowed.reshape(n, t_len, s_len)
    out = np.empty((n, t_len, dv), np.float64)
    for b in range(n):
        w = _row_softmax_f64(q3[b] @ k3[b].T * sc, a3[b], "uniform")
        out[b] = w @ v3[b]
    return out.reshape(lead + (t_len, dv))


def _luong_f64(scores, value, query_mask, value_mask, use_causal_mask):
    """scores: float64 (B, T, S). A fully masked row follows Keras exactly: softmax of
    (float32(score) - 1e9) computed in float32, so ~uniform while |score| < 32."""
    v = _f64(value)
    n_batch, t_len, s_len = scores.shape
    allowed = np.ones((n_batch, t_len, s_len), bool)
    if value_mask is not None:
        allowed = allowed & (np.asarray(value_mask) != 0)[:, None, :]
    if use_causal_mask:
        allowed = allowed & _causal_f64(t_len, s_len)
    weights = np.empty((n_batch, t_len, s_len), np.float64)
    for b in range(n_batch):
        w = _row_softmax_f64(scores[b], allowed[b], "uniform")
        empty = ~allowed[b].any(axis=-1)
        if empty.any():
            shifted = (scores[b][empty].astype(np.float32) - np.float32(1e9)).astype(np.float64)
            shifted -= shifted.max(axis=-1, keepdims=True)
            e = np.exp(shifted)
            w[empty] = e / e.sum(axis=-1, keepdims=True)
        weights[b] = w
    out = weights @ v
    if query_mask is not None:
        out = out * (np.asarray(query_mask) != 0)[:, :, None]
    return out, weights


def attention_f64(
    query,
    value,
    key=None,
    *,
    scale=None,
    score_mode="dot",
    concat_score_weight=None,
    query_mask=None,
    value_mask=None,
    use_causal_mask=False,
):
    """Vectorized Keras Attention: (output, weights) in float64 (scores in float64, rounded
    to float32 only for the "subtract 1e9" rule of fully masked rows)."""
    q = _f64(query)
    k = _f64(value if key is None else key)
    if score_mode == "dot":
        s = np.einsum("btd,bsd->bts", q, k)
        if scale is not None:
            s = s * float(scale)
    else:
        wgt = 1.0 if concat_score_weight is None else float(concat_score_weight)
        sc = 1.0 if scale is None else float(scale)
        s = wgt * np.tanh(sc * (q[:, :, None, :] + k[:, None, :, :])).sum(axis=-1)
    return _luong_f64(s, value, query_mask, value_mask, use_causal_mask)


def additive_attention_f64(
    query, value, key=None, *, scale=None, query_mask=None, value_mask=None, use_causal_mask=False
):
    """Vectorized Keras AdditiveAttention: (output, weights) in float64."""
    q = _f64(query)
    k = _f64(value if key is None else key)
    sc = np.ones(q.shape[2]) if scale is None else _f64(scale)
    s = (np.tanh(q[:, :, None, :] + k[:, None, :, :]) * sc).sum(axis=-1)
    return _luong_f64(s, value, query_mask, value_mask, use_causal_mask)


def multi_head_attention_f64(
    query,
    value,
    key=None,
    *,
    query_kernel,
    key_kernel,
    value_kernel,
    output_kernel,
    query_bias=None,
    key_bias=None,
    value_bias=None,
    output_bias=None,
    attention_mask=None,
    use_causal_mask=False,
    return_attention_scores=False,
):
    """Vectorized Keras MultiHeadAttention: (output (B, T, Dout), weights (B, N, T, S)).
    Fully masked rows: all-zero weights with return_attention_scores, else uniform."""
    query, value = _f64(query), _f64(value)
    key = value if key is None else _f64(key)
    wq, wk, wv, wo = (_f64(a) for a in (query_kernel, key_kernel, value_kernel, output_kernel))
    n_batch, t_len, _ = query.shape
    s_len = value.shape[1]
    n_heads, hk = wq.shape[1:]

    def project(x, w, bias):  # (B, L, D) x (D, N, H) -> (B, N, L, H)
        y = np.einsum("bld,dnh->bnlh", x, w)
        return y if bias is None else y + _f64(bias)[None, :, None, :]

    qp = project(query, wq, query_bias) / math.sqrt(hk)
    kp = project(key, wk, key_bias)
    vp = project(value, wv, value_bias)
    allowed = np.ones((n_batch, t_len, s_len), bool)
    if attention_mask is not None:
        allowed = np.broadcast_to(np.asarray(attention_mask) != 0, allowed.shape)
    if use_causal_mask:
        allowed = allowed & _causal_f64(t_len, s_len)
    rule = "zero" if return_attention_scores else "uniform"
    weights = np.empty((n_batch, n_heads, t_len, s_len), np.float64)
    for b in range(n_batch):
        for n in range(n_heads):
            weights[b, n] = _row_softmax_f64(qp[b, n] @ kp[b, n].T, allowed[b], rule)
    o = np.einsum("bnts,bnsh->btnh", weights, vp)
    out = np.einsum("btnh,nhe->bte", o, wo)
    if output_bias is not None:
        out = out + _f64(output_bias)
    return out, weights
