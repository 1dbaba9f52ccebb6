"""RMSNormalization and UnitNormalization on both paths: the C++ row driver
(csrc/ops/layer_norm.cpp, the squares summed in double) against a float64 reference at edge
shapes (1, primes, its 8 lanes +- 1, long rows), against the NumPy path, the same bits for
any thread count and for a row alone or in a batch, special values, and the binding's checks.
Keras's own outputs are compared in tests/test_preprocessing.py (fixture cases on both
paths), PyTorch's RMSNorm there too."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY, backends_for

import fastlayers as fl
from fastlayers import _backend
from fastlayers import layers as L

F32 = np.float32
BACKENDS = backends_for("rms_norm")
needs_core = pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(),
                                reason="no compiled core")

# (shape, axis): row lengths 1, 7, 8, 9 (the driver's 8 double lanes), 15-17, primes, a long
# row, several trailing axes.
CASES = [
    ((1, 1), -1), ((3, 7), -1), ((3, 8), -1), ((3, 9), -1), ((2, 15), -1), ((2, 16), -1),
    ((2, 17), -1), ((5, 768), -1), ((2, 4099), -1), ((7, 1, 33), [1, 2]), ((13,), 0),
    ((2, 3, 5, 7), [2, 3]),
]


def _axes(shape, axis):
    return tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, list) else [axis])))


def _rms_ref(x, axes, scale, eps):
    x = x.astype(np.float64)
    y = x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    return y if scale is None else y * scale


def _unit_ref(x, axes):
    x = x.astype(np.float64)
    return x * np.minimum(1.0 / np.sqrt(np.sum(x * x, axis=axes, keepdims=True)), 1e12)


def _rms_layer(shape, axis, scale, epsilon):
    layer = L.RMSNormalization(axis=axis, epsilon=epsilon)
    layer.build(shape)
    if scale is not None:
        layer.set_weights([scale])
    return layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, axis", CASES)
def test_rms_normalization_against_float64(shape, axis, backend, rng):
    axes = _axes(shape, axis)
    bshape = [shape[a] if a in axes else 1 for a in range(len(shape))]
    x = (rng.standard_normal(shape) * 3.0 + 1.0).astype(F32)
    scale = rng.uniform(0.5, 1.5, tuple(shape[a] for a in axes)).astype(F32)
    with fl.use_backend(backend):
        y = _rms_layer(shape, axis, scale, 1e-5)(x)
    assert y.dtype == F32 and y.shape == x.shape
    np.testing.assert_allclose(y, _rms_ref(x, axes, scale.reshape(bshape), 1e-5), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, axis", CASES + [((3, 5, 2), 1), ((2, 3, 5), [0, 2])])
def test_unit_normalization_against_float64(shape, axis, backend, rng):
    x = rng.standard_normal(shape).astype(F32)
    with fl.use_backend(backend):
        y = L.UnitNormalization(axis=axis)(x)
    assert y.dtype == F32 and y.shape == x.shape
    np.testing.assert_allclose(y, _unit_ref(x, _axes(shape, axis)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_rows(backend):
    x = np.array([[3e20, -4e20, 0.0], [0.0, 0.0, 0.0], [np.nan, 1.0, 2.0],
                  [np.inf, 1.0, 2.0], [1e-30, 0.0, 0.0]], F32)
    with fl.use_backend(backend):
        rms0 = L.RMSNormalization(epsilon=0.0)(x)
        rms = L.RMSNormalization()(x)
        unit = L.UnitNormalization()(x)
        empty = (L.RMSNormalization()(np.zeros((0, 4), F32)),
                 L.UnitNormalization()(np.zeros((3, 0), F32)))
    # float32 squares would overflow: the double sum keeps the row
    np.testing.assert_allclose(rms0[0], np.array([3, -4, 0]) / np.sqrt(25 / 3), rtol=1e-6)
    np.testing.assert_allclose(unit[0], [0.6, -0.8, 0.0], rtol=1e-6)
    assert np.isnan(rms0[1]).all()  # 0 * rsqrt(0) = 0 * inf with epsilon 0, as in Keras
    np.testing.assert_array_equal(rms[1], 0.0)
    np.testing.assert_array_equal(unit[1], 0.0)  # 1 / 0 capped at 1e12
    for y in (rms, unit):
        assert np.isnan(y[2]).all()  # a NaN spreads over its row
        assert np.isnan(y[3, 0]) and (y[3, 1:] == 0.0).all()  # inf * 0 and 1 / inf
    np.testing.assert_allclose(unit[4], [1e-18, 0.0, 0.0], rtol=1e-6)  # the 1e12 bound
    assert [e.shape for e in empty] == [(0, 4), (3, 0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_whose_factor_is_below_the_smallest_normal_float(backend):
    """A norm (RMS) above ~8.5e37 makes its inverse a float32 denormal, which the C++ kernels' FTZ
    would flush to zero with the whole row: both paths multiply such rows in float64.
    Results below the smallest normal float are flushed on the C++ path, kept by NumPy."""
    x = np.array([[3e38, 1.0, 1.0, 1.0], [1e38] * 4, [-2e38, 2e38, 0.0, 1e30]], F32)
    with fl.use_backend(backend):
        rms = L.RMSNormalization(epsilon=0.0)(x)
        unit = L.UnitNormalization()(x)
    want_unit = _unit_ref(x, (1,))
    want_rms = _rms_ref(x, (1,), None, 0.0)
    normal = np.abs(want_unit) >= np.finfo(F32).tiny
    # one rounding of the float64 product: the float32 denormal factor was 1.9e-7 off
    np.testing.assert_allclose(unit[normal], want_unit[normal], rtol=1e-7)
    np.testing.assert_allclose(rms[np.abs(want_rms) >= np.finfo(F32).tiny],
                               want_rms[np.abs(want_rms) >= np.finfo(F32).tiny], rtol=1e-7)
    assert unit[0, 0] == pytest.approx(1.0) and rms[1, 0] == pytest.approx(1.0)
    tiny = ~normal & (want_unit != 0)
    assert (np.abs(unit[tiny]) <= np.finfo(F32).tiny).all()


@needs_core
@pytest.mark.parametrize("n", [1, 9, 64, 300, 4099])
def test_cpp_matches_numpy_and_keeps_its_bits(n, rng):
    """C++ against the NumPy path (the same float64 sums in another order, so the float32
    factor can differ by one rounding), and the same bits for 1 and 2 threads and for a row
    alone; a non-trailing UnitNormalization axis is moved last: the same rows."""
    x = (rng.standard_normal((257, n)) * 2.0).astype(F32)
    scale = rng.uniform(0.5, 1.5, n).astype(F32)
    rms_layer, unit_layer = _rms_layer(x.shape, -1, scale, 1e-6), L.UnitNormalization()
    before = fl.get_num_threads()
    try:
        with fl.use_backend("cpp"):
            fl.set_num_threads(1)
            one = rms_layer(x), unit_layer(x)
            fl.set_num_threads(2)
            two = rms_layer(x), unit_layer(x)
            alone = rms_layer(x[100:101]), unit_layer(x[100:101])
            moved = L.UnitNormalization(axis=0)(np.ascontiguousarray(x.T))
    finally:
        fl.set_num_threads(before)
    with fl.use_backend("numpy"):
        ref = rms_layer(x), unit_layer(x)
    for a, b, c, r in zip(one, two, alone, ref):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, a[100:101])
        np.testing.assert_allclose(a, r, rtol=2.5e-7, atol=0)
    np.testing.assert_array_equal(moved, one[1].T)


@needs_core
def test_binding_checks_without_converting():
    core = _backend._core
    with pytest.raises(TypeError):
        core.rms_norm_lastdim(np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="scale"):
        core.rms_norm_lastdim(np.ones((2, 3), F32), np.ones(4, F32))
    with pytest.raises(ValueError, match="epsilon"):
        core.rms_norm_lastdim(np.ones((2, 3), F32), None, -1.0)
    with pytest.raises(ValueError, match="epsilon"):
        core.rms_norm_lastdim(np.ones((2, 3), F32), None, float("nan"))
    with pytest.raises(ValueError, match="unit takes no scale"):
        core.rms_norm_lastdim(np.ones((2, 3), F32), np.ones(3, F32), 0.0, True)
    with pytest.raises(ValueError, match="ndim"):
        core.rms_norm_lastdim(np.ones((), F32))
    with pytest.raises(ValueError, match="C-contiguous"):  # refused, never copied
        core.rms_norm_lastdim(np.ones((4, 6), F32)[:, ::2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_raise_clearly(backend):
    with fl.use_backend(backend):
        with pytest.raises(TypeError, match="RMSNormalization"):
            L.RMSNormalization()("text")
        with pytest.raises(TypeError, match="UnitNormalization"):
            L.UnitNormalization()(np.ones((2, 3), complex))
        with pytest.raises(ValueError, match="RMSNormalization"):
            L.RMSNormalization()(np.float32(1.0))
