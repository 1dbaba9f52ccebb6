#!/usr/bin/env python
"""Make the golden fixtures in tests/golden/*.npz with Keras itself.

Run by hand (never in CI) from the repository root:

    pip install keras "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    KERAS_BACKEND=torch python tests/golden/make_golden.py            # all families
    KERAS_BACKEND=torch python tests/golden/make_golden.py conv2d     # one family

(Always pin torch: an unpinned `pip install torch` pulls gigabytes of CUDA.)
The committed files were made with Keras 3.15.1, torch 2.13.0+cpu and numpy
2.4.6; each file records the versions it was made with under the key
``__meta__.versions`` (a JSON string).

Files, one per op family: dense.npz (dense, flatten, activation:<name>),
conv2d.npz, recurrent.npz (lstm, lstm_cell, gru) and attention.npz (softmax,
attention, additive_attention, scaled_dot_product_attention,
multi_head_attention). Each case ``<case>`` stores

    <case>.op              0-d str: fastlayers functional op, or "activation:<name>"
    <case>.kwargs          0-d str: json of the non-array keyword arguments
    <case>.args.<name>     each array argument (a list argument as <name>.0, <name>.1, ...)
    <case>.out.<i>         the outputs in fastlayers return order
    <case>.keras           0-d str: the Keras code that produced the outputs

so a test can do ``getattr(fastlayers, op)(**args, **json.loads(kwargs))`` and
compare with the outputs. Weights are in Keras layouts, set explicitly with
``set_weights`` from a seeded generator (biases nonzero); inputs are float32
except in the cases that test dtype conversion.

Every case is also recomputed by an independent float64 NumPy reference (the
``ref_*`` functions below, written from docs/semantics.md) called with exactly the
stored arguments. If Keras and the reference disagree anywhere in a family
(max|keras - ref| / (1 + |ref|) > 1e-5), that family's file is not written and
the script exits with status 1. Exceptions, each saying so in its ``.keras``:

* scaled_dot_product_attention on rank-3 and rank-5 inputs stores the float64
  reference (keras.ops.dot_product_attention takes rank 4 only), cross-checked
  against Keras on the inputs reshaped to rank 4;
* sparsemax (act_sparsemax, dense_act_sparsemax) stores the correct sparsemax,
  because Keras 3.15.1's is wrong whenever the support has more than one
  element (keras-team/keras#23425, fixed by #23469). act_sparsemax_support1
  holds Keras's own output on inputs where it is right.

The arrays are deterministic (seeded per file); the .npz bytes are not (zip
timestamps), so rerunning shows the files as modified in git.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32
TOL = 1e-5  # mixed error max|keras - ref| / (1 + |ref|)
CASE_NAME = re.compile(r"^[a-z0-9_]+$")


def versions():
    v = {
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    if v["keras_backend"] == "torch":
        import torch

        v["torch"] = torch.__version__
    return v


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


# ---------------------------------------------------------------------------
# Fixture file with a save_case helper
# ---------------------------------------------------------------------------


class Fixture:
    """The cases of one .npz file."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.arrays = {}
        self.cases = []  # (case, op, max_error)
        self.failures = []

    # random data ----------------------------------------------------------
    def uniform(self, shape, lo=-1.0, hi=1.0):
        return self.rng.uniform(lo, hi, size=shape).astype(F32)

    def normal(self, shape, scale=1.0):
        return (scale * self.rng.standard_normal(size=shape)).astype(F32)

    def weights_like(self, layer, scale=0.5):
        """Random nonzero values for every weight of a built layer, in get_weights order."""
        return [self.uniform(w.shape, -scale, scale) for w in layer.get_weights()]

    # saving ---------------------------------------------------------------
    def save_case(self, case, op, args, outs, keras_desc, kwargs=None, ref=True):
        """Store one case. args: name -> array, or list of arrays, or None (omitted).

        outs are the Keras outputs in fastlayers return order. With ref=True the
        float64 reference REF[op] is called with exactly these args and kwargs
        and must agree with Keras.
        """
        kwargs = dict(kwargs or {})
        if not CASE_NAME.match(case):
            raise ValueError(f"bad case name {case!r}")
        if any(c == case for c, _, _ in self.cases):
            raise ValueError(f"duplicate case name {case!r}")
        outs = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        for i, o in enumerate(outs):
            if o.dtype != F32:
                raise TypeError(
                    f"{case}: output {i} has dtype {o.dtype}, Keras should give float32"
                )
        args = {k: v for k, v in args.items() if v is not None}

        err = float("nan")
        if ref:
            fn = REF[op.split(":")[0]]
            call_args = dict(args)
            if op.startswith("activation:"):
                call_args["name"] = op.split(":", 1)[1]
            want = fn(**call_args, **kwargs)
            want = list(want) if isinstance(want, (list, tuple)) else [want]
            if len(want) != len(outs):
                raise AssertionError(
                    f"{case}: reference gives {len(want)} outputs, Keras {len(outs)}"
                )
            err = 0.0
            for i, (o, w) in enumerate(zip(outs, want)):
                if o.shape != w.shape:
                    self.failures.append(f"{case}.out.{i}: shape {o.shape} vs reference {w.shape}")
                    continue
                e = float(np.max(np.abs(o - w) / (1.0 + np.abs(w)), initial=0.0))
                err = max(err, e)
                if not np.isfinite(o).all() or e > TOL:
                    self.failures.append(f"{case}.out.{i}: mixed error {e:.3g} > {TOL}")

        p = f"{case}."
        self.arrays[p + "op"] = np.array(op)
        self.arrays[p + "kwargs"] = np.array(json.dumps(kwargs, sort_keys=True))
        self.arrays[p + "keras"] = np.array(keras_desc)
        for name, v in args.items():
            if isinstance(v, (list, tuple)):
                for j, a in enumerate(v):
                    self.arrays[f"{p}args.{name}.{j}"] = np.asarray(a)
            else:
                self.arrays[f"{p}args.{name}"] = np.asarray(v)
        for i, o in enumerate(outs):
            self.arrays[f"{p}out.{i}"] = o
        self.cases.append((case, op, err))

    def write(self, directory):
        path = Path(directory) / f"{self.name}.npz"
        self.arrays["__meta__.versions"] = np.array(json.dumps(versions(), sort_keys=True))
        np.savez_compressed(path, **self.arrays)
        check_file(path)
        return path


def check_file(path):
    """Reload a written file without pickle and check the key layout."""
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        cases = {k[: -len(".op")] for k in keys if k.endswith(".op")}
        for c in cases:
            for suffix in ("op", "kwargs", "keras", "out.0"):
                assert f"{c}.{suffix}" in keys, (path, c, suffix)
            json.loads(str(z[f"{c}.kwargs"]))
        for k in keys:
            assert k == "__meta__.versions" or k.split(".")[0] in cases, k


# ---------------------------------------------------------------------------
# Independent float64 NumPy reference (from docs/semantics.md), called with the
# same arguments as the fastlayers functional API.
# ---------------------------------------------------------------------------


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sparsemax(x, axis=-1):
    x = np.moveaxis(x, axis, -1)
    z = -np.sort(-x, axis=-1)
    k = np.arange(1, x.shape[-1] + 1)
    cs = np.cumsum(z, axis=-1)
    kz = np.sum(1.0 + k * z > cs, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cs, kz - 1, axis=-1) - 1.0) / kz
    return np.moveaxis(np.maximum(x - tau, 0.0), -1, axis)


def _sparsemax_keras_3_15(x, axis=-1):
    """The formula in Keras 3.15.1 (every backend): tau sums *all* cumulative sums in the
    support instead of taking the k-th one. Wrong whenever the support has more than one
    element (keras-team/keras#23425, fixed by #23469). Used only to confirm the diagnosis."""
    x = np.moveaxis(x, axis, -1)
    z = -np.sort(-x, axis=-1)
    cs = np.cumsum(z, axis=-1)
    support = z - (cs - 1.0) / np.arange(1, x.shape[-1] + 1) > 0
    k = np.sum(support, axis=-1, keepdims=True)
    tau = (np.sum(np.where(support, cs, 0.0), axis=-1, keepdims=True) - 1.0) / k
    return np.moveaxis(np.maximum(x - tau, 0.0), -1, axis)


def _glu(x, axis=-1):
    a, b = np.split(x, 2, axis=axis)
    return a * _sigmoid(b)


_SELU_A, _SELU_L = 1.6732632423543772848, 1.0507009873554804934

ACT = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: (
        0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    ),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "elu": lambda x: np.where(x >= 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: _SELU_L * np.where(x >= 0, x, _SELU_A * np.expm1(np.minimum(x, 0.0))),
    "softplus": lambda x: np.logaddexp(x, 0.0),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hard_silu": lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hard_swish": lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "mish": lambda x: x * np.tanh(np.logaddexp(x, 0.0)),
    "exponential": np.exp,
    "celu": lambda x: np.maximum(x, 0.0) + np.expm1(np.minimum(x, 0.0)),
    "log_sigmoid": lambda x: -np.logaddexp(-x, 0.0),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "sparse_plus": lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, x, 0.25 * (x + 1) ** 2)),
    "squareplus": lambda x: 0.5 * (x + np.sqrt(x * x + 4.0)),
    "sparse_sigmoid": lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, 1.0, 0.5 * (x + 1))),
    "sparsemax": _sparsemax,
    "glu": _glu,
}


def _act(name):
    return ACT["linear" if name is None else name]


def ref_activation(x, name):
    return _act(name)(_f64(x))


def ref_dense(x, kernel, bias=None, activation=None):
    y = _f64(x) @ _f64(kernel)
    if bias is not None:
        y = y + _f64(bias)
    return _act(activation)(y)


def ref_flatten(x):
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def ref_conv2d(
    x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1, activation=None
):
    x, kernel = _f64(x), _f64(kernel)
    n, h, w, c = x.shape
    kh, kw, cg, nf = kernel.shape
    assert cg * groups == c and nf % groups == 0
    (sh, sw), (dh, dw) = _pair(strides), _pair(dilation_rate)

    def geometry(size, k, s, d):
        eff = (k - 1) * d + 1
        if padding.lower() == "valid":
            return (size - eff) // s + 1, (0, 0)
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        return out, (total // 2, total - total // 2)  # extra pixel bottom/right

    ho, ph = geometry(h, kh, sh, dh)
    wo, pw = geometry(w, kw, sw, dw)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    fg = nf // groups
    y = np.zeros((n, ho, wo, nf))
    for g in range(groups):
        for a in range(kh):
            for b in range(kw):
                patch = xp[
                    :,
                    a * dh : a * dh + (ho - 1) * sh + 1 : sh,
                    b * dw : b * dw + (wo - 1) * sw + 1 : sw,
                    g * cg : (g + 1) * cg,
                ]
                y[..., g * fg : (g + 1) * fg] += patch @ kernel[a, b, :, g * fg : (g + 1) * fg]
    if bias is not None:
        y = y + _f64(bias)
    return _act(activation)(y)


def _run_rnn(step, x, states, mask, go_backwards, return_sequences):
    """Generic Keras RNN loop. Masked steps keep the states; the output repeats.

    Keras backends differ on what a masked step outputs (docs/semantics.md §6): the
    previously emitted output (zero before the first unmasked step; torch, tf)
    or the carried h (numpy, jax). Both are computed and must agree, so no
    fixture depends on the backend.
    """
    b, t_len, _ = x.shape
    prev_out = np.zeros_like(states[0])
    outs = []
    for t in range(t_len - 1, -1, -1) if go_backwards else range(t_len):
        out, new_states = step(x[:, t], states)
        if mask is not None:
            m = np.asarray(mask)[:, t][:, None].astype(bool)
            out_carried_h = np.where(m, out, states[0])
            out = np.where(m, out, prev_out)
            assert np.array_equal(out, out_carried_h), "masked-output rule is backend dependent"
            new_states = [np.where(m, ns, s) for ns, s in zip(new_states, states)]
        states, prev_out = new_states, out
        outs.append(out)
    seq = np.stack(outs, axis=1)
    return (seq if return_sequences else prev_out), states


def _lstm_step(kernel, recurrent_kernel, bias, act, ract):
    u = recurrent_kernel.shape[0]

    def step(x_t, states):
        h, c = states
        z = x_t @ kernel + h @ recurrent_kernel
        if bias is not None:
            z = z + bias
        i, f, g, o = (z[:, k * u : (k + 1) * u] for k in range(4))
        c = ract(f) * c + ract(i) * act(g)
        h = ract(o) * act(c)
        return h, [h, c]

    return step


def ref_lstm(
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
    b, u = x.shape[0], recurrent_kernel.shape[0]
    if initial_state is None:
        states = [np.zeros((b, u)), np.zeros((b, u))]
    else:
        states = [_f64(s) for s in initial_state]
    step = _lstm_step(
        _f64(kernel),
        _f64(recurrent_kernel),
        _f64(bias),
        _act(activation),
        _act(recurrent_activation),
    )
    out, (h, c) = _run_rnn(step, x, states, mask, go_backwards, return_sequences)
    return [out, h, c] if return_state else out


def ref_lstm_cell(x_t, h, c, kernel, recurrent_kernel, bias=None):
    step = _lstm_step(_f64(kernel), _f64(recurrent_kernel), _f64(bias), np.tanh, _sigmoid)
    _, (h, c) = step(_f64(x_t), [_f64(h), _f64(c)])
    return h, c


def ref_gru(
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
    x, kernel, rk, bias = _f64(x), _f64(kernel), _f64(recurrent_kernel), _f64(bias)
    b, u = x.shape[0], rk.shape[0]
    act, ract = _act(activation), _act(recurrent_activation)
    if bias is None:
        bi = bh = np.zeros(3 * u)
    elif reset_after:
        bi, bh = bias
    else:
        bi, bh = bias, np.zeros(3 * u)

    def step(x_t, states):
        (h,) = states
        xz = x_t @ kernel + bi
        blk = lambda a, k: a[:, k * u : (k + 1) * u]  # noqa: E731
        if reset_after:
            hz = h @ rk + bh
            z = ract(blk(xz, 0) + blk(hz, 0))
            r = ract(blk(xz, 1) + blk(hz, 1))
            hh = act(blk(xz, 2) + r * blk(hz, 2))
        else:
            z = ract(blk(xz, 0) + h @ rk[:, :u])
            r = ract(blk(xz, 1) + h @ rk[:, u : 2 * u])
            hh = act(blk(xz, 2) + (r * h) @ rk[:, 2 * u :])
        h = z * h + (1.0 - z) * hh
        return h, [h]

    h0 = np.zeros((b, u)) if initial_state is None else _f64(initial_state)
    out, (h,) = _run_rnn(step, x, [h0], mask, go_backwards, return_sequences)
    return [out, h] if return_state else out


def ref_softmax(x, axis=-1, mask=None):
    x = _f64(x)
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    if mask is not None:
        mask = np.asarray(mask)
        mask = mask if mask.dtype == bool else mask > 0.5
        x = np.where(mask, x, -1e9)
    y = np.exp(x - np.max(x, axis=axes, keepdims=True))
    y = y / np.sum(y, axis=axes, keepdims=True)
    if mask is not None:
        y = np.where(mask, y, 0.0)
    return y


def _causal(t, s):
    return np.tril(np.ones((t, s), dtype=bool))  # j <= i, top-left aligned


def _luong(scores, value, query_mask, value_mask, use_causal_mask, return_attention_scores):
    """Shared tail of Attention and AdditiveAttention: masks, softmax, query-mask zeroing."""
    b, tq, tv = scores.shape
    allowed = np.ones((b, tq, tv), dtype=bool)
    if value_mask is not None:
        allowed &= np.asarray(value_mask, dtype=bool)[:, None, :]
    if use_causal_mask:
        allowed &= _causal(tq, tv)
    w = _softmax(np.where(allowed, scores, -1e9))  # fully masked row -> uniform
    out = w @ _f64(value)
    if query_mask is not None:
        out = np.where(np.asarray(query_mask, dtype=bool)[..., None], out, 0.0)
    return (out, w) if return_attention_scores else out


def ref_attention(
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
    return_attention_scores=False,
):
    q, v = _f64(query), _f64(value)
    k = v if key is None else _f64(key)
    if score_mode == "dot":
        s = q @ np.swapaxes(k, -1, -2)
        if scale is not None:
            s = s * scale
    else:
        summed = q[:, :, None, :] + k[:, None, :, :]
        if scale is not None:
            summed = scale * summed
        w = 1.0 if concat_score_weight is None else concat_score_weight
        s = w * np.sum(np.tanh(summed), axis=-1)
    return _luong(s, v, query_mask, value_mask, use_causal_mask, return_attention_scores)


def ref_additive_attention(
    query,
    value,
    key=None,
    *,
    scale=None,
    query_mask=None,
    value_mask=None,
    use_causal_mask=False,
    return_attention_scores=False,
):
    q, v = _f64(query), _f64(value)
    k = v if key is None else _f64(key)
    sc = 1.0 if scale is None else _f64(scale)
    s = np.sum(sc * np.tanh(q[:, :, None, :] + k[:, None, :, :]), axis=-1)
    return _luong(s, v, query_mask, value_mask, use_causal_mask, return_attention_scores)


def ref_scaled_dot_product_attention(q, k, v, *, mask=None, is_causal=False, scale=None):
    q, k, v = _f64(q), _f64(k), _f64(v)
    t, s_len, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    allowed = np.ones((t, s_len), dtype=bool)
    if mask is not None:
        allowed = allowed & np.asarray(mask, dtype=bool)
    if is_causal:
        allowed = allowed & _causal(t, s_len)
    allowed = np.broadcast_to(allowed, s.shape)
    assert allowed.any(axis=-1).all(), "sdpa fixtures must not contain fully masked rows"
    return _softmax(np.where(allowed, s, -np.inf)) @ v


def ref_multi_head_attention(
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
    query, value = _f64(query), _f64(value)
    key = value if key is None else _f64(key)

    def proj(x, kernel, bias):
        y = np.einsum("btd,dnh->btnh", x, _f64(kernel))
        return y if bias is None else y + _f64(bias)

    q = proj(query, query_kernel, query_bias) / math.sqrt(query_kernel.shape[-1])
    k = proj(key, key_kernel, key_bias)
    v = proj(value, value_kernel, value_bias)
    s = np.einsum("btnh,bsnh->bnts", q, k)
    b, n, t, s_len = s.shape
    allowed = np.ones((b, t, s_len), dtype=bool)
    if attention_mask is not None:
        allowed = allowed & np.asarray(attention_mask, dtype=bool)
    if use_causal_mask:
        allowed = allowed & _causal(t, s_len)
    allowed = allowed[:, None]
    w = _softmax(np.where(allowed, s, -1e9))  # fully masked row -> uniform (fused path)
    if return_attention_scores:
        w = np.where(allowed, w, 0.0)  # softmax-layer path: fully masked row -> zeros
    o = np.einsum("bnts,bsnh->btnh", w, v)
    out = np.einsum("btnh,nhe->bte", o, _f64(output_kernel))
    if output_bias is not None:
        out = out + _f64(output_bias)
    return (out, w) if return_attention_scores else out


REF = {
    "activation": ref_activation,
    "dense": ref_dense,
    "flatten": ref_flatten,
    "conv2d": ref_conv2d,
    "lstm": ref_lstm,
    "lstm_cell": ref_lstm_cell,
    "gru": ref_gru,
    "softmax": ref_softmax,
    "attention": ref_attention,
    "additive_attention": ref_additive_attention,
    "scaled_dot_product_attention": ref_scaled_dot_product_attention,
    "multi_head_attention": ref_multi_head_attention,
}


# ---------------------------------------------------------------------------
# Helpers to describe the Keras code
# ---------------------------------------------------------------------------


def call_repr(fn, *pos, **kw):
    parts = [str(p) for p in pos] + [f"{k}={v!r}" for k, v in kw.items()]
    return f"{fn}({', '.join(parts)})"


# ---------------------------------------------------------------------------
# dense.npz: dense, flatten, activations
# ---------------------------------------------------------------------------

# Strings Keras 3.15 accepts as `activation=`. "threshold" is also looked up
# but needs two required arguments, so it cannot be used as a string.
ACTIVATION_NAMES = """
    linear relu relu6 leaky_relu sigmoid tanh softmax log_softmax gelu silu swish elu selu
    softplus softsign hard_sigmoid hard_silu hard_swish mish exponential celu log_sigmoid
    tanh_shrink hard_tanh soft_shrink hard_shrink sparse_plus squareplus sparse_sigmoid
    sparsemax glu
""".split()
ROW_ACTIVATIONS = {"softmax", "log_softmax", "sparsemax", "glu"}


def dense_case(fx, case, x, units, activation="__default__", use_bias=True, note=""):
    """keras.layers.Dense(units, activation, use_bias) with random weights scaled so
    that the pre-activations span about [-8, 8]."""
    cfg = {"use_bias": use_bias}
    kwargs = {}
    if activation != "__default__":
        cfg["activation"] = activation
        kwargs["activation"] = activation
    layer = keras.layers.Dense(units, **cfg)
    layer.build(x.shape)
    din = x.shape[-1]
    kernel = fx.uniform((din, units))
    z = np.asarray(x, np.float64) @ kernel
    kernel = (kernel * (7.5 / max(np.max(np.abs(z)), 1e-3))).astype(F32)
    bias = fx.uniform((units,), -0.5, 0.5) if use_bias else None
    layer.set_weights([kernel, bias] if use_bias else [kernel])
    y = to_np(layer(x))
    desc = call_repr("keras.layers.Dense", units, **cfg) + f"(x{note})"
    if activation == "sparsemax":
        # Keras 3.15.1's sparsemax is wrong (keras-team/keras#23425): store the Keras
        # pre-activation passed through the correct sparsemax instead.
        linear = keras.layers.Dense(units, use_bias=use_bias)
        linear.build(x.shape)
        linear.set_weights(layer.get_weights())
        z = to_np(linear(x)).astype(np.float64)
        desc = (
            call_repr("keras.layers.Dense", units, use_bias=use_bias) + f"(x{note}), then sparsemax"
        )
        y, desc = sparsemax_instead_of_keras(fx, y, z, desc)
    fx.save_case(case, "dense", {"x": x, "kernel": kernel, "bias": bias}, y, desc, kwargs)


def make_dense(fx):
    for name in ACTIVATION_NAMES:
        x = fx.uniform((8, 5), -8, 8)
        dense_case(fx, f"dense_act_{name}", x, 6, activation=name)
    dense_case(fx, "dense_act_none", fx.uniform((8, 5), -8, 8), 6, activation=None)
    dense_case(fx, "dense_default_activation", fx.uniform((4, 5), -8, 8), 3)
    dense_case(fx, "dense_rank3", fx.uniform((2, 3, 5), -8, 8), 4, activation="relu")
    dense_case(fx, "dense_rank4", fx.uniform((2, 3, 2, 5), -8, 8), 4, activation="tanh")
    dense_case(fx, "dense_no_bias", fx.uniform((4, 5), -8, 8), 3, use_bias=False)
    dense_case(fx, "dense_no_bias_gelu", fx.uniform((4, 5), -8, 8), 3, "gelu", use_bias=False)
    dense_case(fx, "dense_batch1", fx.uniform((1, 5), -8, 8), 4, activation="sigmoid")
    dense_case(fx, "dense_units1", fx.uniform((4, 5), -8, 8), 1, activation="relu")
    dense_case(fx, "dense_din1", fx.uniform((4, 1), -8, 8), 3)
    dense_case(fx, "dense_prime_13_7", fx.uniform((5, 13), -8, 8), 7, activation="silu")
    dense_case(fx, "dense_wide_64_33", fx.uniform((3, 64), -2, 2), 33, activation="relu")
    x64 = fx.rng.uniform(-8, 8, size=(4, 5))  # float64 input, float32 output
    dense_case(fx, "dense_float64_input", x64, 3, activation="tanh", note=" float64")
    xi = fx.rng.integers(-5, 6, size=(4, 5)).astype(np.int32)
    dense_case(fx, "dense_int32_input", xi, 3, activation="relu", note=" int32")


def sparsemax_instead_of_keras(fx, y_keras, z, desc):
    """Return the correct sparsemax of z (float32) and a description saying why."""
    buggy = _sparsemax_keras_3_15(z)
    e = float(np.max(np.abs(y_keras - buggy)))
    if e > 1e-5:
        fx.failures.append(f"sparsemax: Keras does not match its known 3.15 formula ({e})")
    y = _sparsemax(z).astype(F32)
    diff = float(np.max(np.abs(y - y_keras)))
    desc += (
        f" -- output NOT from Keras: keras.activations.sparsemax in Keras "
        f"{keras.__version__} is wrong when the support has more than one element "
        f"(keras-team/keras#23425, fixed by #23469; here it differs by up to {diff:.3f}). "
        f"Stored: the Martins & Astudillo sparsemax in float64 of the Keras pre-activation."
    )
    return y, desc


def make_activations(fx):
    # zero, tiny, the kinks of the piecewise activations (0.5, 1, 3, 6) and large values
    pos = np.array([1e-3, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 3.0, 6.0, 8.0, 20.0], dtype=F32)
    special = np.concatenate([[0.0], np.stack([pos, -pos], axis=1).ravel()]).astype(F32)
    x1 = np.concatenate([special, fx.uniform((9,), -8, 8)])  # 32 values
    x2 = np.concatenate([special, fx.uniform((9,), -4, 4)])
    x2 = x2[fx.rng.permutation(32)].reshape(4, 8)  # rows mix large and small values
    for name in ACTIVATION_NAMES + ["gelu_tanh"]:
        x = x2 if name in ROW_ACTIVATIONS else x1
        if name == "gelu_tanh":
            y = to_np(keras.activations.gelu(x, approximate=True))
            desc = "keras.activations.gelu(x, approximate=True)"
        else:
            y = to_np(keras.activations.get(name)(x))
            desc = f"keras.activations.get({name!r})(x)"
            if name == "sparsemax":
                y, desc = sparsemax_instead_of_keras(fx, y, x.astype(np.float64), desc)
        fx.save_case(f"act_{name}", f"activation:{name}", {"x": x}, y, desc)
    # sparsemax where the support is a single element: there Keras 3.15.1 is right
    xs = np.array([[4.0, 1.0, -2.0, 0.5], [-1.0, -3.0, 2.5, 0.0], [0.3, 9.0, 7.5, -8.0]], F32)
    y = to_np(keras.activations.sparsemax(xs))
    fx.save_case(
        "act_sparsemax_support1",
        "activation:sparsemax",
        {"x": xs},
        y,
        "keras.activations.sparsemax(x), inputs whose support has one element "
        "(the only case Keras 3.15.1 computes correctly)",
    )
    # a 2-D input for some elementwise ones (shape preserved)
    for name in ["relu", "gelu", "sigmoid", "hard_silu"]:
        y = to_np(keras.activations.get(name)(x2))
        fx.save_case(
            f"act_{name}_2d",
            f"activation:{name}",
            {"x": x2},
            y,
            f"keras.activations.get({name!r})(x) on a (4, 8) input",
        )


def make_flatten(fx):
    for case, shape in [
        ("flatten_rank4_nhwc", (2, 3, 4, 5)),
        ("flatten_rank2", (3, 7)),
        ("flatten_rank1", (5,)),
        ("flatten_rank5", (2, 2, 3, 2, 3)),
        ("flatten_rank3", (2, 1, 6)),
    ]:
        x = fx.normal(shape)
        y = to_np(keras.layers.Flatten()(x))
        fx.save_case(case, "flatten", {"x": x}, y, f"keras.layers.Flatten()(x), x {shape}")


# ---------------------------------------------------------------------------
# conv2d.npz
# ---------------------------------------------------------------------------


def conv_case(
    fx,
    case,
    x_shape,
    filters,
    kernel_size,
    strides=None,
    padding=None,
    dilation_rate=None,
    groups=None,
    activation=None,
    use_bias=True,
    dtype=F32,
):
    kwargs = {}
    for k, v in [
        ("strides", strides),
        ("padding", padding),
        ("dilation_rate", dilation_rate),
        ("groups", groups),
        ("activation", activation),
    ]:
        if v is not None:
            kwargs[k] = list(v) if isinstance(v, tuple) else v
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    layer = keras.layers.Conv2D(filters, kernel_size, use_bias=use_bias, **cfg)
    layer.build(x_shape)
    ws = fx.weights_like(layer)
    layer.set_weights(ws)
    x = fx.normal(x_shape).astype(dtype)
    y = to_np(layer(x))
    desc = call_repr("keras.layers.Conv2D", filters, kernel_size, use_bias=use_bias, **cfg)
    desc += f"(x), x {x_shape}" + ("" if dtype == F32 else f" {np.dtype(dtype).name}")
    args = {"x": x, "kernel": ws[0], "bias": ws[1] if use_bias else None}
    fx.save_case(case, "conv2d", args, y, desc, kwargs)


def make_conv2d(fx):
    c = conv_case
    # the seed example
    c(
        fx,
        "conv_seed_4x32x32x3_f8_k3_relu",
        (4, 32, 32, 3),
        8,
        3,
        padding="valid",
        activation="relu",
    )
    c(fx, "conv_k3_valid", (2, 7, 6, 3), 4, 3)
    c(fx, "conv_k3_same", (2, 7, 6, 3), 4, 3, padding="same")
    c(fx, "conv_k1x1", (2, 5, 4, 6), 3, 1)
    c(fx, "conv_k1x1_stride2_same", (2, 5, 4, 3), 2, 1, strides=2, padding="same")
    # even kernels (same: the extra pixel at bottom/right)
    c(fx, "conv_k2_same_n8", (2, 8, 8, 2), 3, 2, padding="same")
    c(fx, "conv_k2_valid", (2, 8, 7, 2), 3, 2)
    c(fx, "conv_k4_same_n8", (2, 8, 8, 2), 3, 4, padding="same")
    c(fx, "conv_k4_valid", (1, 8, 9, 2), 3, 4)
    c(fx, "conv_k4x2_same", (2, 7, 8, 3), 2, (4, 2), padding="same")
    c(fx, "conv_k2x4_same", (2, 7, 8, 3), 2, (2, 4), padding="same")
    c(fx, "conv_k4x2_valid", (2, 7, 8, 3), 2, (4, 2))
    # strides (docs/semantics.md §5 table rows)
    c(fx, "conv_k3_s2_same_n8", (2, 8, 8, 3), 4, 3, strides=2, padding="same")
    c(fx, "conv_k3_s2_same_n9", (2, 9, 9, 3), 4, 3, strides=2, padding="same")
    c(fx, "conv_k3_s2_valid_n9", (2, 9, 8, 3), 4, 3, strides=2)
    c(fx, "conv_k2_s2_same_n8", (2, 8, 8, 2), 3, 2, strides=2, padding="same")
    c(fx, "conv_k2_s2_same_n9", (2, 9, 9, 2), 3, 2, strides=2, padding="same")
    c(fx, "conv_k5_s3_same_n10", (1, 10, 10, 2), 3, 5, strides=3, padding="same")
    c(fx, "conv_k3_s3_valid", (2, 10, 11, 2), 3, 3, strides=3)
    c(fx, "conv_k3_s3x2_same", (2, 9, 8, 3), 4, 3, strides=(3, 2), padding="same")
    c(fx, "conv_k3_s3x2_valid", (2, 9, 8, 3), 4, 3, strides=(3, 2))
    c(fx, "conv_k3_s2_same_upper", (1, 8, 7, 2), 2, 3, strides=2, padding="SAME")
    # dilation
    c(fx, "conv_k2_d2_same_n10", (2, 10, 10, 2), 3, 2, dilation_rate=2, padding="same")
    c(fx, "conv_k3_d2_valid", (2, 9, 9, 2), 3, 3, dilation_rate=2)
    c(fx, "conv_k3_d2_same", (2, 8, 9, 2), 3, 3, dilation_rate=2, padding="same")
    c(fx, "conv_k3_d2x3_same", (2, 9, 10, 2), 3, 3, dilation_rate=(2, 3), padding="same")
    c(fx, "conv_k3_d2x3_valid", (2, 9, 10, 2), 3, 3, dilation_rate=(2, 3))
    # groups
    c(fx, "conv_groups2", (2, 6, 6, 4), 6, 3, groups=2, padding="same")
    c(fx, "conv_groups4", (2, 6, 5, 8), 4, 3, groups=4)
    c(fx, "conv_depthwise6", (2, 6, 6, 6), 6, 3, groups=6, padding="same")
    c(fx, "conv_depthwise6_mult2", (1, 5, 5, 6), 12, 3, groups=6, strides=2, padding="same")
    c(fx, "conv_groups2_k1", (2, 4, 4, 4), 2, 1, groups=2)
    # input smaller than the kernel (same padding)
    c(fx, "conv_small_input_2x2_k3_same", (2, 2, 2, 3), 4, 3, padding="same")
    c(fx, "conv_small_input_1x1_k3_s2_same", (2, 1, 1, 3), 4, 3, strides=2, padding="same")
    c(fx, "conv_small_input_3x2_k5x4_same", (1, 3, 2, 2), 3, (5, 4), padding="same")
    # odd sizes, channels, batch, bias, activations
    c(fx, "conv_odd_sizes_c5_f7", (3, 7, 5, 5), 7, 3, padding="same")
    c(fx, "conv_prime_c7_f5_k5", (1, 11, 9, 7), 5, 5)
    c(fx, "conv_c1", (3, 6, 6, 1), 2, 3, padding="same")
    c(fx, "conv_f1", (2, 6, 6, 3), 1, 3)
    c(fx, "conv_batch1", (1, 6, 5, 3), 4, 3)
    c(fx, "conv_batch3", (3, 6, 5, 3), 4, 3, padding="same")
    c(fx, "conv_no_bias", (2, 6, 6, 3), 4, 3, use_bias=False)
    c(
        fx,
        "conv_no_bias_groups2_s2",
        (2, 7, 7, 4),
        4,
        3,
        strides=2,
        groups=2,
        use_bias=False,
        padding="same",
    )
    c(fx, "conv_relu", (2, 6, 6, 3), 4, 3, activation="relu", padding="same")
    c(fx, "conv_tanh", (2, 6, 6, 3), 4, 3, activation="tanh")
    c(fx, "conv_gelu", (2, 6, 6, 3), 4, 3, activation="gelu", strides=2)
    c(
        fx,
        "conv_sigmoid_d2",
        (2, 7, 7, 3),
        4,
        3,
        activation="sigmoid",
        dilation_rate=2,
        padding="same",
    )
    c(fx, "conv_valid_output_1x1", (2, 3, 3, 2), 3, 3)
    c(fx, "conv_float64_input", (2, 6, 6, 3), 4, 3, padding="same", dtype=np.float64)
    c(fx, "conv_wide_c16_f32", (1, 6, 6, 16), 32, 3, padding="same")


# ---------------------------------------------------------------------------
# recurrent.npz: lstm, lstm_cell, gru
# ---------------------------------------------------------------------------

MASK_PATTERNS = {
    "all": lambda t: np.ones(t, bool),
    "trailing": lambda t: np.arange(t) < t - 2,
    "leading": lambda t: np.arange(t) >= 2,
    "middle": lambda t: ~np.isin(np.arange(t), [2, 3]),
    "none": lambda t: np.zeros(t, bool),
    "first_only": lambda t: np.arange(t) == 0,
    "last_only": lambda t: np.arange(t) == t - 1,
    "alternate": lambda t: np.arange(t) % 2 == 0,
}


def make_mask(patterns, t):
    return np.stack([MASK_PATTERNS[p](t) for p in patterns])


def rnn_case(
    fx,
    kind,
    case,
    *,
    b=3,
    t=6,
    d=4,
    units=5,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    initial_state=False,
    mask=None,
    use_bias=True,
    activation=None,
    recurrent_activation=None,
    reset_after=None,
    x=None,
    dtype=F32,
    scale=0.5,
):
    """kind 'lstm' or 'gru'. mask: list of MASK_PATTERNS names (one per sample) or None."""
    cls = keras.layers.LSTM if kind == "lstm" else keras.layers.GRU
    kwargs = {}
    for k, v in [
        ("return_sequences", return_sequences),
        ("return_state", return_state),
        ("go_backwards", go_backwards),
    ]:
        if v:
            kwargs[k] = True
    for k, v in [
        ("activation", activation),
        ("recurrent_activation", recurrent_activation),
        ("reset_after", reset_after),
    ]:
        if v is not None:
            kwargs[k] = v
    layer = cls(units, use_bias=use_bias, **kwargs)
    if x is None:
        x = fx.normal((b, t, d)).astype(dtype)
    b, t, d = x.shape
    layer(x[:, :1].astype(F32))  # build
    ws = fx.weights_like(layer, scale)
    layer.set_weights(ws)
    args = {"x": x, "kernel": ws[0], "recurrent_kernel": ws[1], "bias": ws[2] if use_bias else None}
    call = {}
    call_desc = "x"
    if mask is not None:
        m = make_mask(mask, t)
        if initial_state:
            # Keras backends disagree on leading masked steps with a nonzero state.
            first = m[:, -1] if go_backwards else m[:, 0]
            assert first.all(), f"{case}: leading masked step with a nonzero initial state"
        args["mask"] = call["mask"] = m
        call_desc += ", mask=mask"
    if initial_state:
        if kind == "lstm":
            st = [fx.normal((b, units), 0.5), fx.normal((b, units), 0.5)]
            args["initial_state"] = st
            call["initial_state"] = st
            call_desc += ", initial_state=[h0, c0]"
        else:
            h0 = fx.normal((b, units), 0.5)
            args["initial_state"] = h0
            call["initial_state"] = [h0]
            call_desc += ", initial_state=[h0]"
    y = layer(x, **call)
    outs = [to_np(o) for o in y] if return_state else [to_np(y)]
    desc = call_repr(f"keras.layers.{cls.__name__}", units, use_bias=use_bias, **kwargs)
    desc += f"({call_desc}), x {tuple(x.shape)}"
    if dtype != F32:
        desc += f" {np.dtype(dtype).name}"
    if mask is not None:
        desc += f", mask rows {mask}"
    fx.save_case(case, kind, args, outs, desc, kwargs)


def make_lstm(fx):
    r = lambda case, **kw: rnn_case(fx, "lstm", case, **kw)  # noqa: E731
    # The seed example (inputs as in the article: ints-as-floats up to 80).
    xs = np.zeros(10, dtype=F32)
    xs[0::2] = np.arange(0, 10, 2)
    xs[1::2] = np.arange(0, 100, 20)
    xs = xs.reshape(1, 5, 2)
    r("lstm_seed_article", x=xs, units=8, return_state=True, scale=0.3)
    xb = np.concatenate([xs, xs + 1, 0.5 * xs, -xs[:, ::-1]]).astype(F32)
    r("lstm_seed_batch4", x=xb, units=8, return_state=True, scale=0.3)
    r("lstm_last")
    r("lstm_seq", return_sequences=True)
    r("lstm_state", return_state=True)
    r("lstm_seq_state", return_sequences=True, return_state=True)
    r("lstm_backwards", go_backwards=True)
    r("lstm_backwards_seq_state", go_backwards=True, return_sequences=True, return_state=True)
    r("lstm_initial_state", initial_state=True, return_sequences=True, return_state=True)
    r("lstm_initial_state_last", initial_state=True)
    r(
        "lstm_initial_state_backwards",
        initial_state=True,
        go_backwards=True,
        return_sequences=True,
        return_state=True,
    )
    pats = ["all", "trailing", "leading", "middle", "none"]  # zero initial state
    r("lstm_mask", b=5, mask=pats, return_sequences=True, return_state=True)
    r("lstm_mask_last", b=5, mask=pats)
    r(
        "lstm_mask_backwards",
        b=5,
        mask=pats,
        go_backwards=True,
        return_sequences=True,
        return_state=True,
    )
    r("lstm_mask_backwards_last", b=5, mask=pats, go_backwards=True)
    r(
        "lstm_mask_leading_zero_state",
        b=3,
        mask=["leading", "last_only", "none"],
        return_sequences=True,
        return_state=True,
    )
    r(
        "lstm_mask_initial_state",
        b=4,
        mask=["all", "trailing", "middle", "first_only"],
        initial_state=True,
        return_sequences=True,
        return_state=True,
    )
    r(
        "lstm_mask_initial_state_backwards",
        b=4,
        mask=["all", "leading", "middle", "last_only"],
        initial_state=True,
        go_backwards=True,
        return_sequences=True,
        return_state=True,
    )
    r("lstm_mask_alternate", b=2, mask=["alternate", "all"], return_sequences=True)
    r("lstm_no_bias", use_bias=False, return_sequences=True, return_state=True)
    r(
        "lstm_relu_hard_sigmoid",
        activation="relu",
        recurrent_activation="hard_sigmoid",
        return_sequences=True,
        return_state=True,
    )
    r("lstm_t1", t=1, return_sequences=True, return_state=True)
    r("lstm_t1_initial_state", t=1, initial_state=True, return_state=True)
    r("lstm_b1", b=1, return_sequences=True)
    r("lstm_units1", units=1, return_sequences=True, return_state=True)
    r("lstm_units7", units=7, d=3, return_sequences=True)
    r("lstm_units9", units=9, d=5, return_state=True)
    r("lstm_d1", d=1, units=4, return_sequences=True)
    r("lstm_t50", b=2, t=50, d=3, units=4, return_sequences=True, return_state=True)
    r("lstm_float64_input", dtype=np.float64, return_state=True)


def make_lstm_cell(fx):
    for case, b, d, units in [
        ("lstm_cell_b1", 1, 4, 5),
        ("lstm_cell_b3", 3, 4, 5),
        ("lstm_cell_b3_d7", 3, 7, 5),
        ("lstm_cell_units1", 2, 3, 1),
    ]:
        cell = keras.layers.LSTMCell(units)
        cell.build((None, d))
        ws = fx.weights_like(cell)
        cell.set_weights(ws)
        x_t, h, c = fx.normal((b, d)), fx.normal((b, units), 0.5), fx.normal((b, units), 0.5)
        _, (h1, c1) = cell(x_t, [h, c])
        args = {
            "x_t": x_t,
            "h": h,
            "c": c,
            "kernel": ws[0],
            "recurrent_kernel": ws[1],
            "bias": ws[2],
        }
        desc = f"keras.layers.LSTMCell({units})(x_t, [h, c]) -> new states [h, c], B={b}"
        fx.save_case(case, "lstm_cell", args, [to_np(h1), to_np(c1)], desc)
    # without bias
    cell = keras.layers.LSTMCell(5, use_bias=False)
    cell.build((None, 4))
    ws = fx.weights_like(cell)
    cell.set_weights(ws)
    x_t, h, c = fx.normal((3, 4)), fx.normal((3, 5), 0.5), fx.normal((3, 5), 0.5)
    _, (h1, c1) = cell(x_t, [h, c])
    args = {"x_t": x_t, "h": h, "c": c, "kernel": ws[0], "recurrent_kernel": ws[1]}
    fx.save_case(
        "lstm_cell_no_bias",
        "lstm_cell",
        args,
        [to_np(h1), to_np(c1)],
        "keras.layers.LSTMCell(5, use_bias=False)(x_t, [h, c])",
    )


def make_gru(fx):
    for ra in (True, False):
        tag = "" if ra else "_ra_false"

        def r(case, tag=tag, ra=ra, **kw):
            rnn_case(fx, "gru", case + tag, reset_after=ra, **kw)

        r("gru_last")
        r("gru_seq", return_sequences=True)
        r("gru_state", return_state=True)
        r("gru_seq_state", return_sequences=True, return_state=True)
        r("gru_backwards", go_backwards=True, return_sequences=True, return_state=True)
        r("gru_initial_state", initial_state=True, return_sequences=True, return_state=True)
        r("gru_initial_state_backwards", initial_state=True, go_backwards=True, return_state=True)
        pats = ["all", "trailing", "leading", "middle", "none"]
        r("gru_mask", b=5, mask=pats, return_sequences=True, return_state=True)
        r(
            "gru_mask_backwards",
            b=5,
            mask=pats,
            go_backwards=True,
            return_sequences=True,
            return_state=True,
        )
        r(
            "gru_mask_initial_state",
            b=3,
            mask=["all", "trailing", "middle"],
            initial_state=True,
            return_sequences=True,
            return_state=True,
        )
        r("gru_no_bias", use_bias=False, return_sequences=True)
        r("gru_t1", t=1, return_sequences=True, return_state=True)
        r("gru_units1", units=1, return_sequences=True, return_state=True)
        r("gru_units9", units=9, d=5, return_sequences=True)
    rnn_case(fx, "gru", "gru_default_reset_after")  # reset_after not given -> True
    rnn_case(
        fx,
        "gru",
        "gru_relu_hard_sigmoid",
        activation="relu",
        recurrent_activation="hard_sigmoid",
        return_sequences=True,
    )
    rnn_case(fx, "gru", "gru_b1", b=1, return_sequences=True)
    rnn_case(fx, "gru", "gru_units7", units=7, d=3, return_state=True)
    rnn_case(fx, "gru", "gru_t50", b=2, t=50, d=3, units=4, return_sequences=True)
    rnn_case(fx, "gru", "gru_float64_input", dtype=np.float64, return_state=True)


def make_recurrent(fx):
    make_lstm(fx)
    make_lstm_cell(fx)
    make_gru(fx)


# ---------------------------------------------------------------------------
# attention.npz: softmax, attention, additive_attention, sdpa, mha
# ---------------------------------------------------------------------------


def softmax_case(fx, case, x, axis=None, mask=None, note=""):
    kwargs = {} if axis is None else {"axis": axis}
    layer = keras.layers.Softmax(axis=-1 if axis is None else axis)
    y = to_np(layer(x, mask=mask) if mask is not None else layer(x))
    desc = f"keras.layers.Softmax(axis={-1 if axis is None else axis!r})(x"
    desc += (", mask=mask)" if mask is not None else ")") + f", x {x.shape}" + note
    fx.save_case(case, "softmax", {"x": x, "mask": mask}, y, desc, kwargs)


def make_softmax(fx):
    s = softmax_case
    s(fx, "softmax_last", fx.normal((3, 7), 2.0))
    s(fx, "softmax_axis1_rank3", fx.normal((2, 4, 5), 2.0), axis=1)
    s(fx, "softmax_axis_neg2", fx.normal((2, 4, 5), 2.0), axis=-2)
    s(fx, "softmax_axis0", fx.normal((4, 3), 2.0), axis=0)
    s(fx, "softmax_axes_1_2", fx.normal((2, 3, 4), 2.0), axis=[1, 2])
    s(fx, "softmax_axes_0_2", fx.normal((2, 3, 4), 2.0), axis=[0, 2])
    s(fx, "softmax_axis_list1", fx.normal((2, 3, 4), 2.0), axis=[1])
    s(fx, "softmax_rank4", fx.normal((2, 2, 3, 5), 2.0))
    s(fx, "softmax_rank1", fx.normal((6,), 2.0))
    s(fx, "softmax_n1", fx.normal((3, 1), 2.0))
    s(fx, "softmax_large_values", fx.normal((3, 6), 300.0))
    m = fx.rng.random((2, 1, 6)) > 0.3
    m[:, 0, 0] = True
    s(fx, "softmax_mask_bool_broadcast", fx.normal((2, 3, 6), 2.0), mask=m)
    m = fx.rng.random((3, 7)) > 0.4
    m[:, 0] = True
    s(fx, "softmax_mask_bool", fx.normal((3, 7), 2.0), mask=m)
    s(
        fx,
        "softmax_mask_lower_rank",
        fx.normal((3, 7), 2.0),
        mask=np.array([1, 0, 1, 1, 0, 1, 1], bool),
        note=", mask (7,)",
    )
    mf = (fx.rng.random((3, 7)) > 0.4).astype(F32)
    mf[:, 1] = 1.0
    s(fx, "softmax_mask_float", fx.normal((3, 7), 2.0), mask=mf, note=", float 0/1 mask")
    mq = np.tile(np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.6], F32), (2, 1))
    s(
        fx,
        "softmax_mask_float_fractional",
        fx.normal((2, 6), 2.0),
        mask=mq,
        note=", float mask with 0.25/0.5/0.75 (kept iff > 0.5)",
    )
    mz = np.ones((3, 5), bool)
    mz[1] = False
    mz[2, 3] = False
    s(fx, "softmax_fully_masked_row", fx.normal((3, 5), 2.0), mask=mz, note=", row 1 fully masked")
    ma = fx.rng.random((2, 1, 4)) > 0.3
    ma[0, 0, 1] = True
    ma[1] = False
    s(
        fx,
        "softmax_axes_1_2_mask",
        fx.normal((2, 3, 4), 2.0),
        axis=[1, 2],
        mask=ma,
        note=", sample 1 fully masked",
    )


def luong_case(
    fx,
    case,
    cls,
    *,
    b=2,
    tq=3,
    tv=4,
    dim=5,
    dv=None,
    key=False,
    scale=None,
    score_mode=None,
    concat_score_weight=None,
    query_mask=None,
    value_mask=None,
    causal=False,
    scores=False,
):
    """keras.layers.Attention or AdditiveAttention. For Attention, scale is a float;
    for AdditiveAttention, scale=True means a random scale vector."""
    additive = cls is keras.layers.AdditiveAttention
    q = fx.normal((b, tq, dim))
    v = fx.normal((b, tv, dv or dim))
    k = fx.normal((b, tv, dim)) if key else None
    cfg = {"use_scale": scale is not None}
    if score_mode is not None:
        cfg["score_mode"] = score_mode
    layer = cls(**cfg)
    inputs = [q, v] + ([k] if key else [])
    layer(inputs)  # build
    kwargs = {}
    args = {"query": q, "value": v, "key": k}
    weights = []
    if additive:
        if scale is not None:
            sv = fx.uniform((dim,), -1.5, 1.5)
            weights.append(sv)
            args["scale"] = sv
    else:
        if scale is not None:
            weights.append(np.array(scale, F32))
            kwargs["scale"] = scale
        if score_mode == "concat":
            if concat_score_weight is not None:
                weights.append(np.array(concat_score_weight, F32))
                kwargs["concat_score_weight"] = concat_score_weight
            else:
                weights.append(np.array(1.0, F32))  # the Keras default init
        if score_mode is not None:
            kwargs["score_mode"] = score_mode
    assert len(weights) == len(layer.get_weights())
    if weights:
        layer.set_weights(weights)
    call = {}
    if query_mask is not None or value_mask is not None:
        call["mask"] = [query_mask, value_mask]
        args["query_mask"], args["value_mask"] = query_mask, value_mask
    if causal:
        call["use_causal_mask"] = kwargs["use_causal_mask"] = True
    if scores:
        call["return_attention_scores"] = kwargs["return_attention_scores"] = True
    y = layer(inputs, **call)
    outs = [to_np(o) for o in y] if scores else [to_np(y)]
    w_desc = []
    if scale is not None:
        w_desc.append(f"scale={'random vector' if additive else scale}")
    if score_mode == "concat":
        w_desc.append(f"concat_score_weight={concat_score_weight or 1.0}")
    desc = call_repr(f"keras.layers.{cls.__name__}", **cfg)
    desc += f"([query, value{', key' if key else ''}]"
    desc += "".join(
        f", {n}={call[n]}" for n in ("use_causal_mask", "return_attention_scores") if n in call
    )
    if "mask" in call:
        desc += ", mask=[query_mask, value_mask]"
    desc += f"); Tq={tq} Tv={tv} dim={dim} dv={dv or dim}"
    if w_desc:
        desc += "; weights set: " + ", ".join(w_desc)
    op = "additive_attention" if additive else "attention"
    fx.save_case(case, op, args, outs, desc, kwargs)


def make_attention_layers(fx):
    A, AA = keras.layers.Attention, keras.layers.AdditiveAttention

    def qmask(b, t, off=(1, -1)):
        m = np.ones((b, t), bool)
        m[0, off[1]] = False
        if b > 1:
            m[1, off[0]] = False
        return m

    def vmask(b, t):
        m = fx.rng.random((b, t)) > 0.4
        m[:, 0] = True
        return m

    def vmask_full(b, t):
        m = vmask(b, t)
        m[1] = False  # sample 1: every value masked
        return m

    for scores in (False, True):
        sfx = "_scores" if scores else ""

        def a(case, sfx=sfx, scores=scores, **kw):
            luong_case(fx, case + sfx, A, scores=scores, **kw)

        a("attn_dot")
        a("attn_dot_scale", scale=0.7)
        a("attn_concat", score_mode="concat")
        a("attn_concat_scale_weight", score_mode="concat", scale=0.7, concat_score_weight=1.3)
        a("attn_concat_weight", score_mode="concat", concat_score_weight=1.3)
        a("attn_tq_gt_tv", tq=5, tv=3)
        a("attn_key_dv_ne_dim", key=True, dv=6)
        a("attn_query_mask", query_mask=qmask(2, 3))
        a("attn_value_mask", value_mask=vmask(2, 4))
        a("attn_both_masks", query_mask=qmask(2, 3), value_mask=vmask(2, 4), key=True, dv=3)
        a("attn_causal_tq_lt_tv", tq=3, tv=5, causal=True)
        a("attn_causal_tq_gt_tv", tq=5, tv=3, causal=True)
        a("attn_causal_value_mask", tq=4, tv=4, causal=True, value_mask=vmask(2, 4))
        a("attn_fully_masked_row", value_mask=vmask_full(2, 4))
        a(
            "attn_concat_masks_causal",
            score_mode="concat",
            scale=0.7,
            query_mask=qmask(2, 4),
            value_mask=vmask(2, 5),
            tq=4,
            tv=5,
            causal=True,
        )

        def aa(case, sfx=sfx, scores=scores, **kw):
            luong_case(fx, case + sfx, AA, scores=scores, **kw)

        aa("addattn_scale", scale=True)
        aa("addattn_no_scale")
        aa("addattn_key", scale=True, key=True, dv=6)
        aa("addattn_masks", scale=True, query_mask=qmask(2, 3), value_mask=vmask(2, 4))
        aa("addattn_causal_tq_lt_tv", scale=True, tq=3, tv=5, causal=True)
        aa("addattn_causal_tq_gt_tv", tq=5, tv=3, causal=True)
        aa("addattn_fully_masked_row", scale=True, value_mask=vmask_full(2, 4))
    luong_case(fx, "attn_batch1_tq1", A, b=1, tq=1, tv=4, scale=0.7, scores=True)
    luong_case(fx, "attn_tv1", A, b=2, tq=3, tv=1)
    luong_case(fx, "addattn_batch1_tq1", AA, b=1, tq=1, tv=3, scale=True, scores=True)


def sdpa_case(
    fx,
    case,
    q_shape,
    k_shape,
    v_shape,
    mask=None,
    is_causal=False,
    scale=None,
    via_reference=False,
    qscale=1.0,
):
    """keras.ops.dot_product_attention on (B, T, N, H); ours is (..., N, T, H)."""
    q, k, v = fx.normal(q_shape, qscale), fx.normal(k_shape), fx.normal(v_shape)
    kwargs = {}
    if is_causal:
        kwargs["is_causal"] = True
    if scale is not None:
        kwargs["scale"] = scale
    args = {"q": q, "k": k, "v": v, "mask": mask}

    def keras_rank4(q4, k4, v4, m4):
        tr = lambda a: np.ascontiguousarray(np.swapaxes(a, 1, 2))  # noqa: E731
        y = keras.ops.dot_product_attention(
            tr(q4), tr(k4), tr(v4), mask=m4, scale=scale, is_causal=is_causal
        )
        return tr(to_np(y))

    if not via_reference:
        y = keras_rank4(q, k, v, mask)
        desc = (
            f"keras.ops.dot_product_attention(q, k, v, mask=mask, scale={scale}, "
            f"is_causal={is_causal}) on (B, T, N, H) = our (B, N, T, H) transposed"
        )
        fx.save_case(case, "scaled_dot_product_attention", args, y, desc, kwargs)
        return
    # rank 3 / rank 5: store the float64 reference, cross-check with Keras on a rank-4 view
    y = ref_scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)
    y = y.astype(F32)
    lead = q.shape[:-2]
    flat = lambda a: a.reshape((-1, 1) + a.shape[-2:])  # noqa: E731
    mflat = None
    if mask is not None:
        mb = np.broadcast_to(mask, lead + (q.shape[-2], k.shape[-2]))
        mflat = flat(np.ascontiguousarray(mb))
    yk = keras_rank4(flat(q), flat(k), flat(v), mflat).reshape(y.shape)
    e = float(np.max(np.abs(yk - y) / (1 + np.abs(y))))
    if e > TOL:
        fx.failures.append(f"{case}: Keras on the rank-4 view differs from the reference by {e}")
    desc = (
        f"float64 NumPy reference (rank {q.ndim}; Keras takes rank 4 only), cast to float32; "
        f"checked against keras.ops.dot_product_attention on the inputs reshaped to "
        f"(prod(leading), T, 1, D) (error {e:.1e}); "
        f"mask={'given' if mask is not None else None}, scale={scale}, is_causal={is_causal}"
    )
    fx.save_case(case, "scaled_dot_product_attention", args, y, desc, kwargs)


def make_sdpa(fx):
    s = sdpa_case

    def rmask(shape, keep_first=True):
        m = fx.rng.random(shape) > 0.4
        if keep_first:
            m[..., 0] = True
        return m

    s(fx, "sdpa_basic", (2, 3, 4, 8), (2, 3, 4, 8), (2, 3, 4, 8))
    s(fx, "sdpa_t_ne_s", (2, 2, 5, 4), (2, 2, 3, 4), (2, 2, 3, 4))
    s(fx, "sdpa_dv_ne_d", (2, 2, 4, 4), (2, 2, 6, 4), (2, 2, 6, 7))
    s(fx, "sdpa_mask_b1ts", (2, 3, 4, 4), (2, 3, 5, 4), (2, 3, 5, 4), mask=rmask((2, 1, 4, 5)))
    s(fx, "sdpa_mask_ts", (2, 3, 4, 4), (2, 3, 5, 4), (2, 3, 5, 4), mask=rmask((4, 5)))
    s(fx, "sdpa_mask_bhts", (2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6), mask=rmask((2, 2, 3, 5)))
    s(fx, "sdpa_causal", (2, 2, 4, 4), (2, 2, 4, 4), (2, 2, 4, 4), is_causal=True)
    s(fx, "sdpa_causal_t_lt_s", (2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 4), is_causal=True)
    s(fx, "sdpa_causal_t_gt_s", (2, 2, 5, 4), (2, 2, 3, 4), (2, 2, 3, 4), is_causal=True)
    s(
        fx,
        "sdpa_causal_and_mask",
        (2, 2, 4, 4),
        (2, 2, 6, 4),
        (2, 2, 6, 4),
        is_causal=True,
        mask=rmask((2, 1, 4, 6)),
    )
    s(fx, "sdpa_scale", (2, 2, 4, 4), (2, 2, 5, 4), (2, 2, 5, 4), scale=0.3)
    s(
        fx,
        "sdpa_scale_mask",
        (1, 2, 4, 8),
        (1, 2, 5, 8),
        (1, 2, 5, 3),
        scale=1.7,
        mask=rmask((4, 5)),
    )
    s(fx, "sdpa_t1_s1", (2, 2, 1, 4), (2, 2, 1, 4), (2, 2, 1, 4))
    s(fx, "sdpa_t1", (2, 2, 1, 4), (2, 2, 5, 4), (2, 2, 5, 4), is_causal=True)
    s(fx, "sdpa_seed_b4_h1_t16_s1_d4", (4, 1, 16, 4), (4, 1, 1, 4), (4, 1, 1, 4))
    s(fx, "sdpa_d1", (2, 1, 3, 1), (2, 1, 4, 1), (2, 1, 4, 2))
    s(fx, "sdpa_large_logits", (1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 8), qscale=10.0)
    s(fx, "sdpa_rank3", (2, 4, 4), (2, 5, 4), (2, 5, 3), via_reference=True)
    s(
        fx,
        "sdpa_rank3_mask_causal",
        (2, 4, 4),
        (2, 6, 4),
        (2, 6, 4),
        is_causal=True,
        mask=rmask((2, 4, 6)),
        via_reference=True,
    )
    s(fx, "sdpa_rank5", (2, 2, 2, 3, 4), (2, 2, 2, 5, 4), (2, 2, 2, 5, 3), via_reference=True)
    s(
        fx,
        "sdpa_rank5_mask_ts_scale",
        (2, 1, 2, 3, 4),
        (2, 1, 2, 5, 4),
        (2, 1, 2, 5, 4),
        mask=rmask((3, 5)),
        scale=0.5,
        via_reference=True,
    )
    s(
        fx,
        "sdpa_rank5_mask_broadcast_causal",
        (2, 3, 2, 4, 4),
        (2, 3, 2, 4, 4),
        (2, 3, 2, 4, 2),
        mask=rmask((2, 1, 1, 4, 4)),
        is_causal=True,
        via_reference=True,
    )


MHA_ARG_NAMES = {
    "query/kernel": "query_kernel",
    "query/bias": "query_bias",
    "key/kernel": "key_kernel",
    "key/bias": "key_bias",
    "value/kernel": "value_kernel",
    "value/bias": "value_bias",
    "attention_output/kernel": "output_kernel",
    "attention_output/bias": "output_bias",
}


def mha_case(
    fx,
    case,
    *,
    num_heads=2,
    key_dim=3,
    value_dim=None,
    output_shape=None,
    use_bias=True,
    b=2,
    t=3,
    s=4,
    dq=5,
    dv=6,
    dk=None,
    attention_mask=None,
    causal=False,
    scores=False,
):
    query, value = fx.normal((b, t, dq)), fx.normal((b, s, dv))
    key = fx.normal((b, s, dk)) if dk else None
    cfg = {"num_heads": num_heads, "key_dim": key_dim}
    if value_dim is not None:
        cfg["value_dim"] = value_dim
    if output_shape is not None:
        cfg["output_shape"] = output_shape
    if not use_bias:
        cfg["use_bias"] = False
    layer = keras.layers.MultiHeadAttention(**cfg)
    layer(query, value, key)  # build
    ws = fx.weights_like(layer, 0.6)
    layer.set_weights(ws)
    args = {"query": query, "value": value, "key": key}
    for w, a in zip(layer.weights, ws):
        name = "/".join(w.path.split("/")[-2:])
        args[MHA_ARG_NAMES[name]] = a
    kwargs, call = {}, {}
    if attention_mask is not None:
        args["attention_mask"] = call["attention_mask"] = attention_mask
    if causal:
        kwargs["use_causal_mask"] = call["use_causal_mask"] = True
    if scores:
        kwargs["return_attention_scores"] = call["return_attention_scores"] = True
    y = layer(query, value, key, **call)
    outs = [to_np(o) for o in y] if scores else [to_np(y)]
    desc = call_repr("keras.layers.MultiHeadAttention", **cfg)
    desc += f"(query, value{', key' if dk else ''}"
    if attention_mask is not None:
        desc += f", attention_mask={attention_mask.shape}"
    desc += "".join(
        f", {k}=True" for k in ("use_causal_mask", "return_attention_scores") if k in call
    )
    desc += f"); query {query.shape} value {value.shape}" + (f" key {key.shape}" if dk else "")
    if scores:
        desc += "; softmax-layer path"
    fx.save_case(case, "multi_head_attention", args, outs, desc, kwargs)


def make_mha(fx):
    def amask(shape, full_row=False):
        m = fx.rng.random(shape) > 0.4
        m[..., 0] = True
        if full_row:
            m[1, 1, :] = False  # sample 1, query 1: nothing to attend
        return m

    m = mha_case
    for scores in (False, True):
        sfx = "_scores" if scores else ""
        m(fx, "mha_basic" + sfx, scores=scores)
        m(fx, "mha_causal" + sfx, causal=True, scores=scores)
        m(fx, "mha_attention_mask" + sfx, attention_mask=amask((2, 3, 4)), scores=scores)
        # Fully masked row: fused path -> uniform weights; scores path -> zero weights.
        m(fx, "mha_fully_masked_row" + sfx, attention_mask=amask((2, 3, 4), True), scores=scores)
        m(fx, "mha_key_value_dims" + sfx, dk=7, dv=6, key_dim=3, value_dim=4, scores=scores)
    m(fx, "mha_self_attention", s=3, dv=5)
    m(fx, "mha_causal_t_gt_s", t=5, s=3, causal=True)
    m(fx, "mha_causal_and_mask", t=4, s=4, causal=True, attention_mask=amask((2, 4, 4)))
    m(fx, "mha_attention_mask_2d", attention_mask=amask((3, 4)))
    m(fx, "mha_output_shape", output_shape=8)
    m(fx, "mha_output_shape_value_dim", output_shape=2, value_dim=5, key_dim=2)
    m(fx, "mha_no_bias", use_bias=False)
    m(fx, "mha_no_bias_scores_mask", use_bias=False, scores=True, attention_mask=amask((2, 3, 4)))
    m(fx, "mha_3heads", num_heads=3, key_dim=4, scores=True)
    m(fx, "mha_3heads_fused", num_heads=3, key_dim=2, dk=4)
    m(fx, "mha_key_dim1", key_dim=1)
    m(fx, "mha_key_dim1_scores", key_dim=1, scores=True)
    m(fx, "mha_t1", t=1)
    m(fx, "mha_t1_s1_scores", t=1, s=1, scores=True)
    m(fx, "mha_1head", num_heads=1, key_dim=4)
    m(fx, "mha_batch1", b=1, causal=True, scores=True)


def make_attention(fx):
    make_softmax(fx)
    make_attention_layers(fx)
    make_sdpa(fx)
    make_mha(fx)


def make_dense_file(fx):
    make_dense(fx)
    make_activations(fx)
    make_flatten(fx)


FAMILIES = {
    "dense": (make_dense_file, 101),
    "conv2d": (make_conv2d, 202),
    "recurrent": (make_recurrent, 303),
    "attention": (make_attention, 404),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("families", nargs="*", help=f"some of {list(FAMILIES)} (default: all)")
    p.add_argument("--out", default=str(HERE), help="output directory (default: %(default)s)")
    p.add_argument("--list", action="store_true", help="list the cases of each file")
    opts = p.parse_args(argv)
    unknown = set(opts.families) - set(FAMILIES)
    if unknown:
        p.error(f"unknown families {sorted(unknown)}; choose from {list(FAMILIES)}")
    if keras.backend.backend() not in ("torch", "numpy", "jax", "tensorflow"):
        sys.exit("set KERAS_BACKEND")
    keras.utils.set_random_seed(0)
    print(f"versions: {json.dumps(versions())}")
    failed = False
    total = 0
    for name in opts.families or list(FAMILIES):
        make, seed = FAMILIES[name]
        fx = Fixture(name, seed)
        make(fx)
        if fx.failures:
            failed = True
            print(f"\n{name}: {len(fx.failures)} disagreement(s) with the float64 reference:")
            for f in fx.failures:
                print("  ", f)
            print(f"{name}.npz NOT written")
            continue
        path = fx.write(opts.out)
        size = path.stat().st_size
        total += size
        worst = max(fx.cases, key=lambda c: c[2])
        ops = sorted({op.split(":")[0] for _, op, _ in fx.cases})
        print(
            f"{path.name}: {len(fx.cases)} cases ({', '.join(ops)}), {size / 1024:.1f} KiB, "
            f"worst mixed error vs float64 reference {worst[2]:.2e} ({worst[0]})"
        )
        if opts.list:
            for case, op, err in fx.cases:
                print(f"    {case:45s} {op:32s} {err:.1e}")
    print(f"total {total / 1024:.1f} KiB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
