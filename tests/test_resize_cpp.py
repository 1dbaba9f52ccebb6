"""The C++ path of Resizing's and bilinear UpSampling2D's taps (the core's resample_axis,
csrc/ops/resize.cpp): the same bits as the NumPy path wherever an output has at most 32 taps
(the same products and sums in the same order), close to it for the longer lists of large
antialiased shrinks (NumPy's dot products sum in their own order), the same bits for any
thread count, at edge sizes (1, primes, the unrolled channel counts 1-4 and 5), and the
binding's checks of indices, counts and arrays. PyTorch's own results are compared on both
paths in tests/test_preprocessing.py and tests/test_decoder.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers import _backend
from fastlayers import layers as L

pytestmark = pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(),
                                reason="no compiled core")
F32 = np.float32


def _both(layer, x):
    with fl.use_backend("numpy"):
        want = layer(x)
    with fl.use_backend("cpp"):
        got = layer(x)
    return got, want


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 17])
@pytest.mark.parametrize("h,w,oh,ow", [(1, 1, 3, 2), (7, 5, 1, 1), (13, 11, 29, 31),
                                       (31, 29, 13, 11), (16, 16, 15, 17), (2, 64, 2, 9)])
@pytest.mark.parametrize("antialias", [False, True])
def test_cpp_gives_the_numpy_bits(rng, c, h, w, oh, ow, antialias):
    x = (rng.standard_normal((2, h, w, c)) * 3.0).astype(F32)
    got, want = _both(L.Resizing(oh, ow, antialias=antialias), x)
    assert got.dtype == F32 and got.shape == (2, oh, ow, c)
    np.testing.assert_array_equal(got, want)


def test_cpp_upsampling_gives_the_numpy_bits(rng):
    x = rng.standard_normal((2, 5, 7, 3)).astype(F32)
    for size in [(2, 2), (1, 3), (3, 1)]:
        got, want = _both(L.UpSampling2D(size, interpolation="bilinear"), x)
        np.testing.assert_array_equal(got, want)
    cf = L.UpSampling2D((2, 3), data_format="channels_first", interpolation="bilinear")
    got, want = _both(cf, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(got, want)


def test_cpp_special_values_and_signed_zeros():
    """inf * 0 taps are NaN on both paths; a -0 sum gets the NumPy path's "+ 0" for padded
    tap lists (antialias), so the zeros' signs agree too."""
    x = np.array([[-0.0, -0.0, -0.0, np.inf, 1.0, -0.0, -0.0, -0.0, np.nan, 2.0, -0.0]],
                 F32).reshape(1, 1, 11, 1)
    for n in (1, 2, 3, 4, 5, 7, 11, 20):
        for antialias in (False, True):
            got, want = _both(L.Resizing(1, n, antialias=antialias), x)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_cpp_long_tap_lists_and_threads(rng):
    """Shrinking 300 -> 7 with antialias gives each output 80+ taps: NumPy sums them with dot
    products, so the paths agree to rounding; C++ keeps its bits for 1 and 2 threads."""
    x = rng.standard_normal((3, 300, 300, 2)).astype(F32)
    layer = L.Resizing(7, 9, antialias=True)
    before = fl.get_num_threads()
    try:
        with fl.use_backend("cpp"):
            fl.set_num_threads(1)
            one = layer(x)
            fl.set_num_threads(2)
            two = layer(x)
            big = L.Resizing(97, 101)(x)
            fl.set_num_threads(1)
            big_one = L.Resizing(97, 101)(x)
    finally:
        fl.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(big, big_one)
    with fl.use_backend("numpy"):
        np.testing.assert_allclose(one, layer(x), rtol=0, atol=2e-6)


def _call(x=None, idx=None, w=None, count=None):
    x = np.ones((2, 5, 3), F32) if x is None else x
    idx = np.array([[0, 1], [3, 4]], np.int64) if idx is None else idx
    w = np.full((2, 2), 0.5, F32) if w is None else w
    count = np.array([2, 1], np.int64) if count is None else count
    return _backend._core.resample_axis(x, idx, w, count)


def test_binding_computes_the_taps():
    x = np.arange(2 * 5 * 3, dtype=F32).reshape(2, 5, 3)
    y = _call(x, idx=np.array([[0, 1], [3, 4]], np.int64), count=np.array([2, 1], np.int64))
    np.testing.assert_array_equal(y[:, 0], (x[:, 0] + x[:, 1]) * 0.5)
    np.testing.assert_array_equal(y[:, 1], x[:, 3] * 0.5)  # tap 1 of output 1 is padding
    # the padding tap may hold any index: it is never read
    y2 = _call(x, idx=np.array([[0, 1], [3, 10**12]], np.int64),
               count=np.array([2, 1], np.int64))
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(idx=np.array([[0, 5], [3, 4]], np.int64)), ValueError, "outside the axis"),
    (dict(idx=np.array([[0, -1], [3, 4]], np.int64)), ValueError, "outside the axis"),
    (dict(count=np.array([0, 1], np.int64)), ValueError, r"count\[0\] = 0"),
    (dict(count=np.array([2, 3], np.int64)), ValueError, r"count\[1\] = 3"),
    (dict(count=np.array([2], np.int64)), ValueError, "count must have shape"),
    (dict(count=np.array([2, 1], np.int32)), TypeError, "int64"),
    (dict(idx=np.array([[0, 1], [3, 4]], np.int32)), TypeError, "int64"),
    (dict(idx=np.array([[0, 1, 2], [3, 4, 4]], np.int64)), ValueError, "idx must have shape"),
    (dict(idx=np.zeros((2, 4), np.int64)[:, ::2]), ValueError, "C-contiguous"),
    (dict(idx=[[0, 1], [3, 4]]), TypeError, "numpy.ndarray"),
    (dict(w=np.ones((2, 2))), TypeError, "float32"),
    (dict(w=np.ones((2, 0), F32), idx=np.ones((2, 0), np.int64)), ValueError, "one tap"),
    (dict(x=np.ones((5, 3), F32)), ValueError, "ndim 3"),
    (dict(x=np.ones((2, 0, 3), F32)), ValueError, "outside the axis"),
])
def test_binding_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        _call(**kwargs)
