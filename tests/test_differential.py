"""Differential tests: every public op, the C++ path against the NumPy path, on random valid
shapes and arguments drawn by hypothesis, with inputs in every layout and dtype the API
accepts (C order, Fortran order, negative strides, 0-stride broadcast views; float32,
float64, float16, integers).

Budget: the "ci" profile (the default) runs a fixed, derandomized set of examples per op so
the whole file takes well under a minute on 2 cores; the "long" profile draws many more, at
random, when run by hand::

    HYPOTHESIS_PROFILE=long pytest tests/test_differential.py --hypothesis-show-statistics

Tolerances (conftest.tolerance): both paths compute in float32 but sum in different orders
(blocked GEMM vs NumPy's BLAS), so a result that is a sum of k products of size up to m may
differ by about sqrt(k) * m * 1e-6 absolute (random-walk rounding of k float32 adds; the
factor 1e-6 is 8 float32 epsilons) plus 1e-5 relative (the exp/tanh/sigmoid kernels are within
a few ulp of libm). Recurrent ops compound this over T steps (the state feeds back through a
contracting tanh/sigmoid), so their k is (F + u) * T. Attention normalizes by the softmax sum:
its outputs are weighted means of v, bounded by max|v|, with k = S * (D + Dv).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, run_on, tolerance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlayers as fl

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays green or red for a reason
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

pytestmark = pytest.mark.skipif(NUMPY_ONLY, reason="needs the C++ path (NumPy-only run)")

F32 = np.float32


# ------------------------------------------------------------------- inputs and layouts


def _values(rng, shape, dtype, scale=1.0):
    """Random values of `shape` in `dtype` (integers: small ones, so float32 holds them)."""
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-3, 4, size=shape).astype(dtype)
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _layout(x, kind):
    """The values of x (or, for "broadcast", of a view made from them) in another layout."""
    if kind == "c" or x.ndim == 0:
        return np.ascontiguousarray(x)
    if kind == "f":
        return np.asfortranarray(x)
    if kind == "neg":  # negative strides on the first and last axes, same values
        flip = (slice(None, None, -1),) if x.ndim == 1 else (slice(None, None, -1), Ellipsis,
                                                              slice(None, None, -1))
        return np.ascontiguousarray(x[flip])[flip]
    # "broadcast": a 0-stride view along the first axis (the values of row 0 repeated)
    return np.broadcast_to(x[:1], x.shape)


LAYOUTS = st.sampled_from(["c", "f", "neg", "broadcast"])
DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32])


@st.composite
def _inputs(draw, shapes, scale=1.0, dtypes=DTYPES):
    """Arrays of the given shapes, each in a drawn layout and dtype."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = []
    for shape in shapes:
        x = _values(rng, shape, draw(dtypes), scale)
        out.append(_layout(x, draw(LAYOUTS)))
    return out


def _weights(draw, shapes, fan_in):
    """Float32 weights scaled by 1/sqrt(fan_in), C order (layers keep theirs contiguous)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return [_values(rng, s, F32, 1 / math.sqrt(max(fan_in, 1))) for s in shapes]


def _both(fn, *args, **kwargs):
    return run_on("cpp", fn, *args, **kwargs), run_on("numpy", fn, *args, **kwargs)


def _compare(got, want, k, magnitude=1.0, act=None):
    """assert_close, or for the exponential activation a relative comparison: e^z's error is
    e^z times z's, so a tolerance in absolute terms either fails the large outputs or lets
    the small ones be anything."""
    got = got if isinstance(got, (tuple, list)) else [got]
    want = want if isinstance(want, (tuple, list)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if act == "exponential":
            rtol, z_err = tolerance(k, magnitude)
            assert g.dtype == np.float32 and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=rtol + z_err, atol=1e-30)
        else:
            assert_close(g, w, k=k, magnitude=magnitude)


SIZES = st.integers(1, 9)
ACTS = st.sampled_from(
    [None, "relu", "sigmoid", "tanh", "gelu", "silu", "elu", "softplus", "leaky_relu",
     "hard_sigmoid", "mish", "softsign", "selu", "relu6", "exponential", "linear"]
)


# ----------------------------------------------------------------------------- the ops


@settings(PROFILE)
@given(st.data())
def test_matmul(data):
    batch = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    m, k, n = data.draw(SIZES), data.draw(st.integers(1, 40)), data.draw(SIZES)
    tb = data.draw(st.booleans())
    a, b = data.draw(_inputs([(*batch, m, k), (*batch, n, k) if tb else (*batch, k, n)]))
    got, want = _both(fl.matmul, a, b, transpose_b=tb)
    _compare(got, want, k, magnitude=9)  # integer inputs go up to 3 * 3


@settings(PROFILE)
@given(st.data())
def test_dense(data):
    lead = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    k, n = data.draw(st.integers(1, 70)), data.draw(st.integers(1, 40))
    (x,) = data.draw(_inputs([(*lead, k)]))
    kernel, bias = _weights(data.draw, [(k, n), (n,)], k)
    bias = bias if data.draw(st.booleans()) else None
    act = data.draw(ACTS)
    got, want = _both(fl.dense, x, kernel, bias, activation=act)
    _compare(got, want, k, magnitude=3, act=act)  # |x| <= 3 for integer inputs


@settings(PROFILE)
@given(st.data())
def test_activations_through_dense(data):
    """Every elementwise activation on both paths (C++ runs them fused into dense), at
    values spread over [-12, 12] so the saturated tails are hit."""
    n = data.draw(st.integers(1, 67))
    name = data.draw(st.sampled_from(sorted(set(fl.activations.NAMES) - {
        "softmax", "log_softmax", "sparsemax", "glu"})))
    (x,) = data.draw(_inputs([(3, n)], scale=4.0, dtypes=st.sampled_from([np.float32])))
    eye = np.eye(n, dtype=F32)
    got, want = _both(fl.dense, x, eye, activation=name)
    # identity kernel: each output is one product, exact on both paths; then the activation
    # (within a few ulp; exponential relative to each output)
    _compare(got, want, 1, magnitude=12, act=name)


@settings(PROFILE)
@given(st.data())
def test_conv2d(data):
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 6))
    groups = data.draw(st.sampled_from([g for g in (1, 2, 3, c) if c % g == 0]))
    f = groups * data.draw(st.integers(1, 4))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    dilated = data.draw(st.booleans())
    strides = (1, 1) if dilated else (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))) if dilated else 1
    padding = data.draw(st.sampled_from(["valid", "same"]))
    eff_h = (kh - 1) * (dilation[0] if dilated else 1) + 1
    eff_w = (kw - 1) * (dilation[1] if dilated else 1) + 1
    h = data.draw(st.integers(eff_h if padding == "valid" else 1, eff_h + 8))
    w = data.draw(st.integers(eff_w if padding == "valid" else 1, eff_w + 8))
    (x,) = data.draw(_inputs([(n, h, w, c)]))
    fan = kh * kw * (c // groups)
    kernel, bias = _weights(data.draw, [(kh, kw, c // groups, f), (f,)], fan)
    act = data.draw(ACTS)
    got, want = _both(fl.conv2d, x, kernel, bias if data.draw(st.booleans()) else None,
                      strides=strides, padding=padding, dilation_rate=dilation, groups=groups,
                      activation=act)
    _compare(got, want, fan, magnitude=3, act=act)



@settings(PROFILE)
@given(st.data())
def test_conv1d(data):
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 6))
    groups = data.draw(st.sampled_from([g for g in (1, 2, 3, c) if c % g == 0]))
    f = groups * data.draw(st.integers(1, 4))
    k = data.draw(st.integers(1, 5))
    dilated = data.draw(st.booleans())
    strides = 1 if dilated else data.draw(st.integers(1, 3))
    dilation = data.draw(st.integers(1, 3)) if dilated else 1
    padding = data.draw(st.sampled_from(["valid", "same", "causal"]))
    eff = (k - 1) * dilation + 1
    t = data.draw(st.integers(eff if padding == "valid" else 1, eff + 8))
    (x,) = data.draw(_inputs([(n, t, c)]))
    fan = k * (c // groups)
    kernel, bias = _weights(data.draw, [(k, c // groups, f), (f,)], fan)
    act = data.draw(ACTS)
    got, want = _both(fl.conv1d, x, kernel, bias if data.draw(st.booleans()) else None,
                      strides=strides, padding=padding, dilation_rate=dilation, groups=groups,
                      activation=act)
    _compare(got, want, fan, magnitude=3, act=act)


@settings(PROFILE)
@given(st.data())
def test_depthwise_conv2d(data):
    n, c, m = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 6)), data.draw(
        st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    dilated = data.draw(st.booleans())
    strides = (1, 1) if dilated else (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))) if dilated else (1, 1)
    padding = data.draw(st.sampled_from(["valid", "same"]))
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    h = data.draw(st.integers(eff_h if padding == "valid" else 1, eff_h + 8))
    w = data.draw(st.integers(eff_w if padding == "valid" else 1, eff_w + 8))
    (x,) = data.draw(_inputs([(n, h, w, c)]))
    kernel, bias = _weights(data.draw, [(kh, kw, c, m), (c * m,)], kh * kw)
    act = data.draw(ACTS)
    got, want = _both(fl.depthwise_conv2d, x, kernel, bias if data.draw(st.booleans()) else None,
                      strides=strides, padding=padding, dilation_rate=dilation, activation=act)
    _compare(got, want, kh * kw, magnitude=3, act=act)


@settings(PROFILE)
@given(st.data())
def test_layer_norm(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    nd = len(shape)
    axes = sorted(data.draw(st.sets(st.integers(0, nd - 1), min_size=1, max_size=nd)))
    given_axes = [a - nd if data.draw(st.booleans()) else a for a in axes]
    (x,) = data.draw(_inputs([shape]))
    sub = tuple(shape[a] for a in axes)
    gamma, beta = _weights(data.draw, [sub, sub], 1)
    epsilon = data.draw(st.sampled_from([1e-3, 1e-5, 0.5]))
    got, want = _both(fl.layer_norm, x, gamma if data.draw(st.booleans()) else None,
                      beta if data.draw(st.booleans()) else None,
                      axis=given_axes if len(given_axes) > 1 else given_axes[0], epsilon=epsilon)
    # mean and variance are sums over the k reduced entries; the output is (x - mean) * rstd
    # * gamma + beta with |x| <= 3 for integer inputs and |gamma| <= ~4
    k = math.prod(sub)
    _compare(got, want, k, magnitude=12)

def _recurrent_case(data, gates):
    b, t = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7))
    f, u = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    (x,) = data.draw(_inputs([(b, t, f)]))
    kernel, rec, bias = _weights(data.draw, [(f, gates * u), (u, gates * u), (gates * u,)],
                                 f + u)
    mask = None
    if data.draw(st.booleans()):
        mask = np.random.default_rng(data.draw(st.integers(0, 99))).random((b, t)) < 0.7
    kw = dict(mask=mask, return_sequences=data.draw(st.booleans()),
              return_state=data.draw(st.booleans()), go_backwards=data.draw(st.booleans()))
    return b, t, f, u, x, kernel, rec, bias, kw


@settings(PROFILE)
@given(st.data())
def test_lstm(data):
    b, t, f, u, x, kernel, rec, bias, kw = _recurrent_case(data, 4)
    if data.draw(st.booleans()):
        h0, c0 = data.draw(_inputs([(b, u), (b, u)]))
        kw["initial_state"] = [h0, c0]
    got, want = _both(fl.lstm, x, kernel, rec, bias if data.draw(st.booleans()) else None, **kw)
    _compare(got, want, (f + u) * t, magnitude=3)


@settings(PROFILE)
@given(st.data())
def test_gru(data):
    reset_after = data.draw(st.booleans())
    b, t, f, u, x, kernel, rec, bias, kw = _recurrent_case(data, 3)
    if reset_after:
        bias = np.stack([bias, bias[::-1]])
    if data.draw(st.booleans()):
        (h0,) = data.draw(_inputs([(b, u)]))
        kw["initial_state"] = h0
    got, want = _both(fl.gru, x, kernel, rec, bias if data.draw(st.booleans()) else None,
                      reset_after=reset_after, **kw)
    _compare(got, want, (f + u) * t, magnitude=3)


@settings(PROFILE)
@given(st.data())
def test_lstm_cell(data):
    b, f, u = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 20)), data.draw(
        st.integers(1, 20))
    x, h, c = data.draw(_inputs([(b, f), (b, u), (b, u)]))
    kernel, rec, bias = _weights(data.draw, [(f, 4 * u), (u, 4 * u), (4 * u,)], f + u)
    got, want = _both(fl.lstm_cell, x, h, c, kernel, rec, bias)
    _compare(got, want, f + u, magnitude=3)


@settings(PROFILE)
@given(st.data())
def test_softmax(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)))
    (x,) = data.draw(_inputs([shape], scale=3.0))
    nd = len(shape)
    axis = data.draw(st.one_of(
        st.integers(-nd, nd - 1),
        st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)))
    mask = None
    if data.draw(st.booleans()):
        mask = np.random.default_rng(data.draw(st.integers(0, 99))).random(shape) < 0.7
    got, want = _both(fl.softmax, x, axis, mask)
    _compare(got, want, int(np.prod(shape)))


def _qkv(data, t, s, d, dv, lead=(1,)):
    return data.draw(_inputs([(*lead, t, d), (*lead, s, d), (*lead, s, dv)]))


@settings(PROFILE)
@given(st.data())
def test_scaled_dot_product_attention(data):
    lead = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    t, s = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 300))
    d, dv = data.draw(st.integers(1, 16)), data.draw(st.integers(1, 16))
    q, k, v = _qkv(data, t, s, d, dv, lead)
    mask = None
    if data.draw(st.booleans()):
        mask = np.random.default_rng(data.draw(st.integers(0, 99))).random((t, s)) < 0.6
    causal = data.draw(st.booleans())
    got, want = _both(fl.scaled_dot_product_attention, q, k, v, mask=mask, is_causal=causal)
    _compare(got, want, s * (d + dv), magnitude=3)


def _luong_masks(data, b, t, s):
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    qm = rng.random((b, t)) < 0.8 if data.draw(st.booleans()) else None
    vm = rng.random((b, s)) < 0.7 if data.draw(st.booleans()) else None
    return qm, vm


@settings(PROFILE)
@given(st.data())
def test_attention(data):
    b, t, s = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 30)), data.draw(
        st.integers(1, 100))
    d, dv = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    q, k, v = _qkv(data, t, s, d, dv, (b,))
    qm, vm = _luong_masks(data, b, t, s)
    mode = data.draw(st.sampled_from(["dot", "concat"]))
    scale = data.draw(st.sampled_from([None, 0.5]))
    cw = 0.7 if mode == "concat" else None
    got, want = _both(fl.attention, q, v, k, query_mask=qm, value_mask=vm, scale=scale,
                      score_mode=mode, concat_score_weight=cw,
                      use_causal_mask=data.draw(st.booleans()), return_attention_scores=True)
    _compare(got, want, s * (d + dv), magnitude=9)


@settings(PROFILE)
@given(st.data())
def test_additive_attention(data):
    b, t, s = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 30)), data.draw(
        st.integers(1, 100))
    d, dv = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    q, k, v = _qkv(data, t, s, d, dv, (b,))
    qm, vm = _luong_masks(data, b, t, s)
    (scale,) = _weights(data.draw, [(d,)], 1)
    got, want = _both(fl.additive_attention, q, v, k,
                      scale=scale if data.draw(st.booleans()) else None, query_mask=qm,
                      value_mask=vm, use_causal_mask=data.draw(st.booleans()),
                      return_attention_scores=True)
    _compare(got, want, s * (d + dv), magnitude=3 * d)


@settings(PROFILE)
@given(st.data())
def test_multi_head_attention(data):
    b, t, s = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 20)), data.draw(
        st.integers(1, 40))
    dq, dk, dv = (data.draw(st.integers(1, 10)) for _ in range(3))
    n, hk, hv = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 8)), data.draw(
        st.integers(1, 8))
    dout = data.draw(st.integers(1, 10))
    query, key, value = data.draw(_inputs([(b, t, dq), (b, s, dk), (b, s, dv)]))
    wq, wk, wv, wo = _weights(data.draw, [(dq, n, hk), (dk, n, hk), (dv, n, hv), (n, hv, dout)],
                              8)
    biases = {}
    if data.draw(st.booleans()):
        bq, bk, bv, bo = _weights(data.draw, [(n, hk), (n, hk), (n, hv), (dout,)], 1)
        biases = dict(query_bias=bq, key_bias=bk, value_bias=bv, output_bias=bo)
    mask = None
    if data.draw(st.booleans()):
        mask = np.random.default_rng(data.draw(st.integers(0, 99))).random((b, t, s)) < 0.7
    got, want = _both(fl.multi_head_attention, query, value, key, query_kernel=wq,
                      key_kernel=wk, value_kernel=wv, output_kernel=wo, attention_mask=mask,
                      use_causal_mask=data.draw(st.booleans()),
                      return_attention_scores=data.draw(st.booleans()), **biases)
    _compare(got, want, (dq + dk + dv) * s * n * hv, magnitude=3)
