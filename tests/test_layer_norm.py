"""fastlayers.layer_norm (Keras LayerNormalization's math) on both paths: against a float64
reference at edge shapes (1, primes, the 16 lanes +- 1), C++ against NumPy, the same bits for
any thread count and for a row alone or in a batch, and bad inputs. Keras's own outputs are
compared in tests/test_norm_layers.py (the LayerNormalization layer runs this op)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY, backends_for

import fastlayers as fl
from fastlayers import _backend

F32 = np.float32
BACKENDS = backends_for("layer_norm")


def _ref(x, axes, gamma, beta, eps):
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


CASES = [
    ((1, 1), -1), ((1, 2), -1), ((3, 15), -1), ((3, 16), -1), ((3, 17), -1), ((2, 31), -1),
    ((5, 768), -1), ((7, 1, 33), [1, 2]), ((2, 3, 5, 7), [1, 3]), ((2, 3, 5), [0, 2]),
    ((4, 6, 9), [-1, 1]), ((13,), 0), ((3, 5, 2), 1),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_against_float64(shape, axis, affine, backend, rng):
    axes = tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, list) else [axis])))
    wshape = tuple(shape[a] for a in axes)
    x = (rng.standard_normal(shape) * 3.0 + 2.0).astype(F32)
    gamma = rng.uniform(0.5, 1.5, wshape).astype(F32) if affine else None
    beta = rng.standard_normal(wshape).astype(F32) if affine else None
    with fl.use_backend(backend):
        y = fl.layer_norm(x, gamma, beta, axis=axis, epsilon=1e-5)
    assert y.dtype == F32 and y.shape == x.shape
    np.testing.assert_allclose(y, _ref(x, axes, gamma, beta, 1e-5), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_large_offset_and_constant_rows(backend, rng):
    # The two-pass variance with x - mean rounded once (the mean as hi + lo floats) is
    # accurate with |mean| >> std, where E[x^2] - E[x]^2 would lose every digit and a float32
    # mean would shift the outputs by up to 3e-4 of a std; a constant row gives beta
    # (epsilon > 0).
    x = (rng.standard_normal((4, 50)) * 0.1 + 1000.0).astype(F32)  # var 0.01, x² ~ 1e6
    x[3] = 7.0
    beta = rng.standard_normal(50).astype(F32)
    with fl.use_backend(backend):
        y = fl.layer_norm(x, None, beta)
    np.testing.assert_allclose(y[:3], _ref(x[:3], (1,), None, beta, 1e-3), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(y[3], beta)
    with fl.use_backend(backend):
        assert fl.layer_norm(np.zeros((0, 5), F32)).shape == (0, 5)
        assert fl.layer_norm(np.zeros((3, 0), F32)).shape == (3, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale, offset, n, eps", [
    (1e-2, 1e4, 64, 1e-6),  # the float32 rounding of the mean was 5 % of the spread
    (1e-19, 0.0, 8, 0.0),  # squares below FLT_MIN: flushed in float32, epsilon 0 gave inf
    (1e-18, 0.0, 33, 0.0),
    (1e20, 0.0, 17, 1e-3),  # squares above float32's max: the output was beta
    (1e30, -3e30, 16, 1e-3),
    (1.0, 100.0, 300_000, 1e-3),  # a long row: float32 sums lost digits
])
def test_layer_norm_accurate_at_extreme_scales(backend, rng, scale, offset, n, eps):
    """Statistics in double and x - mean rounded once: within a few float32 steps of the
    float64 result at any scale and offset (an audit measured 1.8e-3 relative error at 1e-18,
    +-inf at 1e-19 with epsilon 0, beta at 1e20, and 900 steps on rows of 4e6 values)."""
    x = (rng.standard_normal((3, n)) * scale + offset).astype(F32)
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    b = rng.standard_normal(n).astype(F32)
    with fl.use_backend(backend):
        y = fl.layer_norm(x, g, b, epsilon=eps)
    want = _ref(x, (1,), g, b, eps)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [1e4, 0.0])
@pytest.mark.parametrize("first", [0.0, 2.0, 7.5, 9.0, 1e3, 1e6])
def test_layer_norm_first_element_far_from_the_mean(backend, rng, offset, first):
    """The C++ path takes the mean and variance from the moments about the row's first
    element in one pass, and makes the second pass over the deviations when that element lies
    more than 8 standard deviations from the mean (docs/performance.md, LayerNormalization):
    accurate on both sides of that bound, with the first element anywhere."""
    n = 768
    x = rng.standard_normal((4, n)) * 0.5 + offset
    x[:, 0] = x[:, 1:].mean(axis=1) + first * x[:, 1:].std(axis=1) * np.array([1, -1, 1, -1])
    x = x.astype(F32)
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    b = rng.standard_normal(n).astype(F32)
    with fl.use_backend(backend):
        y = fl.layer_norm(x, g, b, epsilon=1e-6)
    np.testing.assert_allclose(y, _ref(x, (1,), g, b, 1e-6), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale, gamma", [(1e36, 1e-4), (1e34, -3e-5), (3e37, 1e-30)])
def test_layer_norm_small_gamma_at_large_deviations(backend, rng, scale, gamma):
    """1 / sqrt(var) a normal float but its product with a small gamma a denormal: the C++
    path's float32 factor was flushed to zero (FTZ) and the output was beta, where the true
    one is ~ gamma * (x - mean) / std. Such a row multiplies in double now, its elements of
    gamma 1 too (all within float32 rounding of float64)."""
    n = 40
    x = (np.clip(rng.standard_normal((3, n)), -1.5, 1.5) * scale).astype(F32)
    g = rng.uniform(0.5, 1.5, n).astype(F32)
    g[::7] = gamma
    b = rng.standard_normal(n).astype(F32)
    b[::7] = 0.0  # (gamma 1e-30 gives ~1e-30: below an ulp of a beta of order 1)
    with fl.use_backend(backend):
        y = fl.layer_norm(x, g, b, epsilon=1e-3)
    want = _ref(x, (1,), g, b, 1e-3)
    assert np.all(y[:, ::7] != 0.0)  # not flushed to beta
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * abs(gamma))


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_small_gamma_next_to_nan(backend, rng):
    """The double multiplication of the rows that need it is decided per row: a NaN row in
    the batch, or a NaN gamma entry, switched it off on the NumPy path for every row (2.3e-2
    off where the row alone was 8.7e-8; a review)."""
    x = (np.clip(rng.standard_normal((3, 16)), -1.5, 1.5) * 1e36).astype(F32)
    x[0] = np.nan
    g = np.ones(16, F32)
    g[::4] = 1e-8
    g[1] = np.nan
    with fl.use_backend(backend):
        y = fl.layer_norm(x, g, None, epsilon=1e-3)
    want = _ref(x, (1,), g, None, 1e-3)
    assert np.isnan(y[0]).all() and np.isnan(y[:, 1]).all()
    np.testing.assert_allclose(y[1:], want[1:], rtol=1e-6, atol=0)  # (NaN where want is)


@pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(), reason="no compiled core")
def test_layer_norm_cpp_bitwise_threads_and_rows(rng):
    x = rng.standard_normal((257, 300)).astype(F32)
    g, b = rng.standard_normal((2, 300)).astype(F32)
    before = fl.get_num_threads()
    try:
        with fl.use_backend("cpp"):
            fl.set_num_threads(1)
            one = fl.layer_norm(x, g, b)
            fl.set_num_threads(2)
            two = fl.layer_norm(x, g, b)
            alone = fl.layer_norm(x[100:101], g, b)
            nonlast = fl.layer_norm(np.ascontiguousarray(x.T), g, b, axis=0)
    finally:
        fl.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(alone, one[100:101])
    np.testing.assert_array_equal(nonlast, one.T)  # axes moved last: the same rows
    with fl.use_backend("numpy"):
        np.testing.assert_allclose(fl.layer_norm(x, g, b), one, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(), reason="no compiled core")
def test_layer_norm_binding_checks_without_converting():
    core = _backend._core
    with pytest.raises(TypeError):
        core.layer_norm_lastdim(np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="gamma"):
        core.layer_norm_lastdim(np.ones((2, 3), F32), np.ones(4, F32))
    with pytest.raises(ValueError, match="epsilon"):
        core.layer_norm_lastdim(np.ones((2, 3), F32), None, None, -1.0)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(x=np.ones((2, 3)), axis=2), ValueError, "axis 2 is out of range"),
    (dict(x=np.ones((2, 3)), axis=[1, -1]), ValueError, "repeated"),
    (dict(x=np.ones((2, 3)), axis=[]), ValueError, "empty"),
    (dict(x=np.ones((2, 3)), axis=True), TypeError, "axis"),
    (dict(x=np.ones((2, 3)), axis=1.0), TypeError, "axis"),
    (dict(x=np.ones((2, 3)), gamma=np.ones(2)), ValueError, "gamma has shape"),
    (dict(x=np.ones((2, 3)), beta=np.ones((1, 3))), ValueError, "beta has shape"),
    (dict(x=np.ones((2, 3)), epsilon=-1e-5), ValueError, "epsilon"),
    (dict(x=np.ones((2, 3)), epsilon=float("nan")), ValueError, "epsilon"),
    (dict(x=np.ones((2, 3)), epsilon="small"), TypeError, "epsilon"),
    (dict(x=np.float32(1.0)), ValueError, "rank"),
    (dict(x="text"), TypeError, "x"),
    (dict(x=np.ones((2, 3), complex)), TypeError, "x"),
    # float32 arrays, which the call's fast path (last axis, arrays passed unchanged) sees
    (dict(x=np.ones((2, 3), F32), gamma=np.ones(2, F32)), ValueError, "gamma has shape"),
    (dict(x=np.ones((2, 3), F32), beta=np.ones((1, 3), F32)), ValueError, "beta has shape"),
    (dict(x=np.ones((2, 3), F32), gamma=np.ones(3)), None, None),  # float64 gamma: converted
    (dict(x=np.ones((2, 3), F32), epsilon=-1e-5), ValueError, "epsilon"),
    (dict(x=np.ones((2, 3), F32), epsilon=float("inf")), ValueError, "epsilon"),
    (dict(x=np.ones((2, 3), F32), epsilon=float("nan")), ValueError, "epsilon"),
    (dict(x=np.float32(1.0)), ValueError, "rank"),
    (dict(x=np.ones((), F32)), ValueError, "rank"),
])
def test_layer_norm_bad_inputs(kwargs, exc, match):
    if exc is None:
        assert fl.layer_norm(**kwargs).shape == kwargs["x"].shape
        return
    with pytest.raises(exc, match=f"layer_norm.*{match}"):
        fl.layer_norm(**kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1,), (1, 1), (3, 17), (2, 3, 768), (4, 0), (0, 5)])
def test_layer_norm_usual_call_as_the_checked_one(backend, shape, rng, monkeypatch):
    """The usual call (last axis, float32 arrays, a float epsilon) skips the checks' Python
    (functional.layer_norm): the same bits as the call spelled so that it takes them."""
    if backend == "cpp":  # the usual call must not reach the checks (a review)
        from fastlayers import _validation

        def checks(*args, **kwargs):
            raise AssertionError("the usual call ran the checks")

        real = _validation.check_layer_norm
        monkeypatch.setattr(_validation, "check_layer_norm", checks)
        with fl.use_backend("cpp"):
            fl.layer_norm(rng.standard_normal((2, 5)).astype(F32), epsilon=1e-5)
        monkeypatch.setattr(_validation, "check_layer_norm", real)
    x = rng.standard_normal(shape).astype(F32)
    g = rng.uniform(0.5, 1.5, shape[-1]).astype(F32)
    b = rng.standard_normal(shape[-1]).astype(F32)
    with fl.use_backend(backend):
        for args in [(g, b), (None, b), (g, None), (None, None)]:
            fast = fl.layer_norm(x, *args, epsilon=1e-5)
            checked = fl.layer_norm(x, *args, axis=[len(shape) - 1], epsilon=1e-5)
            assert fast.shape == x.shape and fast.dtype == F32
            np.testing.assert_array_equal(fast, checked)
            if x.size:
                assert not np.shares_memory(fast, x)


def test_layer_norm_in_a_model():
    inp = fl.Input(shape=(4, 6))
    out = fl.layer_norm(fl.layers.Dense(6, seed=0)(inp), np.full(6, 2.0, F32), axis=-1)
    model = fl.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((3, 4, 6)).astype(F32)
    np.testing.assert_allclose(model(x), fl.layer_norm(model.layers[1](x), np.full(6, 2.0)),
                               rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps", [1e-40, 1e-45, 3e-39])
def test_layer_norm_epsilon_outside_float32_range(backend, rng, eps):
    """epsilon is a double on the C++ path too: as a float32, one below FLT_MIN was flushed to
    zero (a constant row gave NaN where Keras and PyTorch give beta, a tiny spread was 51 %
    off; an audit). (One above FLT_MAX gives beta within float32 rounding either way.)"""
    x = (rng.standard_normal((3, 16)) * 1e-10 + 5.0).astype(F32)
    x[0] = 7.0  # constant
    b = rng.standard_normal(16).astype(F32)
    with fl.use_backend(backend):
        y = fl.layer_norm(x, None, b, epsilon=eps)
        yg = fl.layers.GroupNormalization(groups=2, epsilon=eps)(x.reshape(3, 1, 16))
    want = _ref(x, (1,), None, b, eps)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.abs(want[1:] - b).max())
    np.testing.assert_array_equal(y[0], b)
    wantg = _ref(x.reshape(3, 2, 8), (2,), None, None, eps).reshape(3, 1, 16)
    np.testing.assert_allclose(yg, wantg, rtol=1e-5, atol=1e-5 * np.abs(wantg).max())
    assert not np.isnan(yg).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_and_group_norm_quiet_on_special_rows(backend):
    """A constant row with epsilon 0 (0 / 0) and a row with inf give NaN without a
    RuntimeWarning on either path (the NumPy path warned where the C++ path is silent)."""
    x = np.ones((3, 8), F32)
    x[1, 2] = np.inf
    x[2] = np.arange(8)
    import warnings
    with warnings.catch_warnings(), fl.use_backend(backend):
        warnings.simplefilter("error")
        y = fl.layer_norm(x, epsilon=0.0)
        yg = fl.layers.GroupNormalization(groups=2, epsilon=0.0)(x.reshape(3, 1, 8))
    assert np.isnan(y[:2]).all() and np.isfinite(y[2]).all()
    assert np.isnan(yg[:2, :, :4]).all() and np.isfinite(yg[2]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_epsilon_as_the_layers_and_the_function_take_it(backend, rng):
    """The function and the normalization layers take the same epsilons: any real number
    (a Fraction was refused by the function) and a 0-d real array (refused by the layers),
    with the result of the float (an audit)."""
    from fractions import Fraction
    x = rng.standard_normal((3, 8)).astype(F32)
    with fl.use_backend(backend):
        want = fl.layer_norm(x, epsilon=1e-3)
        layer_want = fl.layers.LayerNormalization(epsilon=1e-3)(x)
        for eps in (Fraction(1, 1000), np.array(1e-3), np.float32(1e-3)):
            np.testing.assert_allclose(fl.layer_norm(x, epsilon=eps), want, rtol=1e-6)
            layer = fl.layers.LayerNormalization(epsilon=eps)
            assert type(layer.epsilon) is float
            np.testing.assert_allclose(layer(x), layer_want, rtol=1e-6)
        for bad in (np.array([1e-3]), np.array(1e-3 + 0j), 1e-3j):
            with pytest.raises(TypeError, match="epsilon must be a real number"):
                fl.layer_norm(x, epsilon=bad)
            with pytest.raises(TypeError, match="epsilon must be a real number"):
                fl.layers.LayerNormalization(epsilon=bad)
