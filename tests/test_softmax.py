"""softmax (Keras Softmax layer): against the naive float64 reference and C++ vs NumPy.

The C++ path serves an int axis without a mask (it moves the axis last). Every
plain-call test runs on each backend of ``backends_for("softmax")`` and compares
with the float64 reference *and* directly with the NumPy path. Tuple axes and
masks run on "numpy" and, when the core serves softmax, on "auto" too, so that
they exercise C++ the day it serves them.
"""

from __future__ import annotations

import re

import naive_seq_attn as naive
import numpy as np
import pytest
from conftest import assert_close, backends_for, parallel_regions, run_on
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl

F32 = np.float32
BACKENDS = backends_for("softmax")
# Calls C++ does not serve yet (mask, several axes): "auto" picks C++ once it does.
BACKENDS_ANY_CALL = ["numpy"] + (["auto"] if "cpp" in BACKENDS else [])

# Around the vector widths (4, 8, 16 floats) and their multiples, plus long rows.
ROW_LENGTHS = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 1025]


def check(backend, x, axis=-1, mask=None, k=None):
    """Run on ``backend``; compare with the float64 reference and the NumPy path."""
    got = run_on(backend, fl.softmax, x, axis, mask)
    expected = naive.softmax(np.asarray(x, F32), axis, mask)
    if k is None:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        k = int(np.prod([np.shape(x)[a] for a in axes]))
    assert_close(got, expected, k=k)
    assert_close(got, run_on("numpy", fl.softmax, x, axis, mask), k=k)
    return got


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_rows_of_every_length(backend, n, rng):
    x = (3 * rng.standard_normal((5, n))).astype(F32)
    y = check(backend, x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_single_row_and_axis_zero(backend, n, rng):
    x = (2 * rng.standard_normal(n)).astype(F32)
    check(backend, x)
    check(backend, np.stack([x, -x], axis=1), axis=0, k=2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(40, 1025), (30000, 7), (5, 90, 400)], ids=str)
def test_many_rows_any_thread_count(backend, shape, rng):
    """Big enough to be split over threads (on C++ the parallel regions are counted); rows
    are independent, so the result is the same bits for any thread count
    (docs/architecture.md §6)."""
    x = (3 * rng.standard_normal(shape)).astype(F32)
    saved = fl.get_num_threads()
    try:
        results = []
        for n in sorted({1, 2, 3, saved}):
            fl.set_num_threads(n)
            with parallel_regions() as regions:
                results.append(run_on(backend, fl.softmax, x))
            assert backend == "numpy" or n == 1 or regions() > 0, f"{n} threads: no split"
    finally:
        fl.set_num_threads(saved)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert_close(results[0], numpy_formula(x), k=shape[-1])
    assert_close(results[0], run_on("numpy", fl.softmax, x), k=shape[-1])


SHAPES = [(7,), (3, 17), (9, 2), (2, 9, 5), (4, 1, 33), (2, 3, 4, 33), (3, 2, 16, 5), (1, 1, 1, 1)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_axis_of_rank_1_to_4(backend, shape, rng):
    x = (3 * rng.standard_normal(shape)).astype(F32)
    for axis in range(-len(shape), len(shape)):
        check(backend, x, axis)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_integer_axis(backend, rng):
    x = rng.standard_normal((3, 4, 5)).astype(F32)
    np.testing.assert_array_equal(
        run_on(backend, fl.softmax, x, np.int64(1)), run_on(backend, fl.softmax, x, 1)
    )


# ------------------------------------------------------------------ special values


def numpy_formula(x, axis=-1):
    """exp(x - max) / sum in float64 on the float32 input, with the policy of
    docs/semantics.md §15: a NaN anywhere in a slice makes the whole slice NaN; when the
    max is +inf (or the slice is all -inf) the entries equal to the max share the weight
    equally (the limit), where exp(x - max) would give inf - inf = NaN; -inf entries next
    to finite ones give 0."""
    x = np.asarray(x, F32).astype(np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - m)
        e = e / np.sum(e, axis=axis, keepdims=True)
    hits = (x == m).astype(np.float64)
    limit = hits / np.sum(hits, axis=axis, keepdims=True)
    return np.where(np.isinf(m), limit, e)


def _special_rows(n, rng):
    """Named (rows, n) float32 arrays; special values in the first, middle and last slot
    so that both a vector body and its tail see them."""
    base = rng.standard_normal((3, n)).astype(F32)
    slots = sorted({0, n // 2, n - 1})
    cases = {}

    def put(name, value):
        x = np.repeat(base, len(slots), axis=0)
        for r, s in enumerate(slots):
            x[3 * r : 3 * r + 3, s] = value
        cases[name] = x

    put("nan", np.nan)
    put("pos_inf", np.inf)
    put("neg_inf", -np.inf)
    put("big_1e4", 1e4)
    put("minus_1e4", -1e4)
    put("minus_1e30", -1e30)
    put("plus_1e30", 1e30)
    huge = base.copy()
    huge[:, ::2] = 1e4 + rng.standard_normal((3, (n + 1) // 2)).astype(F32)
    huge[:, 1::2] = -1e4
    cases["mixed_1e4"] = huge
    cases["all_neg_inf"] = np.full((2, n), -np.inf, F32)
    cases["all_minus_1e30"] = np.full((2, n), -1e30, F32)
    cases["all_equal_1e4"] = np.full((2, n), 1e4, F32)
    if n > 1:
        one_hot = np.full((2, n), -np.inf, F32)
        one_hot[0, n - 1] = 3.0
        one_hot[1, 0] = -7.0
        cases["one_finite"] = one_hot
    return cases


# NumPy warns about inf - inf; the NaN it produces is the behaviour under test.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 3, 8, 17, 33, 1000, 1025])
def test_special_values_follow_the_numpy_formula(backend, n, rng):
    for name, x in _special_rows(n, rng).items():
        expected = numpy_formula(x)
        got = run_on(backend, fl.softmax, x)
        assert_close(got, expected, k=n, err_msg=name)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=name)
        assert_close(got, run_on("numpy", fl.softmax, x), k=n, err_msg=name)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_special_values_on_a_moved_axis(backend, rng):
    x = rng.standard_normal((17, 3, 5)).astype(F32)
    x[4, 0, 1] = np.nan
    x[0, 1, 2] = np.inf
    x[16, 2, :] = -np.inf
    x[:, 2, 3] = -1e30
    x[3, 1, 4] = 1e4
    got = run_on(backend, fl.softmax, x, 0)
    expected = numpy_formula(x, axis=0)
    assert_close(got, expected, k=17)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[:, 0, 1]).all() and not np.isnan(got[:, 1, 1]).any()
    assert got[0, 1, 2] == 1.0 and (np.delete(got[:, 1, 2], 0) == 0).all()  # +inf: the limit


# ----------------------------------------------------------------------- empty


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (2, 0, 3), (0, 3, 4), (3, 4, 0)], ids=str)
def test_empty_arrays(backend, shape):
    x = np.zeros(shape, F32)
    for axis in range(-len(shape), len(shape)):
        y = run_on(backend, fl.softmax, x, axis)
        assert y.shape == shape and y.dtype == F32


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
def test_empty_arrays_with_mask_or_axes(backend):
    x = np.zeros((2, 0, 3), F32)
    assert run_on(backend, fl.softmax, x, (0, 1)).shape == (2, 0, 3)
    y = run_on(backend, fl.softmax, x, 1, np.ones((1, 3), bool))
    assert y.shape == (2, 0, 3) and y.dtype == F32


# ------------------------------------------------------------ dtype and layout


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend, rng):
    big = (3 * rng.standard_normal((10, 40))).astype(F32)
    views = {
        "strided": big[::2, ::3],
        "transposed": big.T,
        "reversed": big[:, ::-1],
        "fortran": np.asfortranarray(big),
        "offset": big[1:, 5:],
    }
    for name, view in views.items():
        for axis in (0, -1):
            got = run_on(backend, fl.softmax, view, axis)
            ref = run_on(backend, fl.softmax, np.ascontiguousarray(view), axis)
            np.testing.assert_array_equal(got, ref, err_msg=name)
            assert_close(got, naive.softmax(view, axis), k=view.shape[axis], err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_int_and_bool_inputs_give_float32(backend, rng):
    x64 = 3 * rng.standard_normal((4, 19))
    got = run_on(backend, fl.softmax, x64)
    assert got.dtype == F32
    # The cast to float32 happens first, as in Keras.
    np.testing.assert_array_equal(got, run_on(backend, fl.softmax, x64.astype(F32)))
    xi = rng.integers(-5, 6, size=(3, 2, 9))
    for axis in (0, 1, 2):
        got = run_on(backend, fl.softmax, xi, axis)
        assert got.dtype == F32
        np.testing.assert_array_equal(got, run_on(backend, fl.softmax, xi.astype(F32), axis))
        assert_close(got, naive.softmax(xi, axis), k=xi.shape[axis])
    xb = np.array([[True, False, False]])
    assert_close(run_on(backend, fl.softmax, xb), naive.softmax(xb.astype(F32)), k=3)
    as_list = run_on(backend, fl.softmax, [[1, 2, 3], [0.5, 0.5, 0.5]])
    assert_close(as_list, naive.softmax(np.array([[1, 2, 3], [0.5, 0.5, 0.5]])), k=3)


# --------------------------------------------------------------- several axes


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
@pytest.mark.parametrize(
    "axis", [(0, 1), (1, 2), (0, 2), (-1, 0), (0, 1, 2), (2, 1), [1, 2], (1,), [-1]], ids=str
)
def test_several_axes(backend, axis, rng):
    x = (3 * rng.standard_normal((3, 4, 5))).astype(F32)
    y = check(backend, x, axis)
    axes = tuple(a % 3 for a in axis)
    np.testing.assert_allclose(y.sum(axis=axes), 1.0, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
@pytest.mark.parametrize("big", [1e4, 1e7, 3e38, -3e38], ids=str)
def test_several_axes_with_large_logits(backend, big):
    """Max-shifted over the joint extent (docs/semantics.md §12), not Keras's exp(x -
    logsumexp(x)): at 1e7 that rounds the log-sum away and gives exp(-2) to every entry of a
    2 x 3 slice (sum 0.81). Equal logits share the weight equally, whatever their size."""
    x = np.full((2, 3, 4), big, F32)
    x[1, 2, 3] = 0.5 * big if big > 0 else 1.1 * big  # far below the rest of slice 3
    y = check(backend, x, (0, 1))
    np.testing.assert_allclose(y[:, :, :3], 1 / 6, rtol=1e-6)
    want3 = np.full((2, 3), 1 / 5, F32)
    want3[1, 2] = 0.0
    np.testing.assert_allclose(y[:, :, 3], want3, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
def test_one_element_axis_tuple_equals_int(backend, rng):
    x = rng.standard_normal((3, 4, 5)).astype(F32)
    np.testing.assert_array_equal(
        run_on(backend, fl.softmax, x, (1,)), run_on(backend, fl.softmax, x, 1)
    )


# ----------------------------------------------------------------------- masks


MASK_SHAPES = [(4, 9), (9,), (1, 9), (4, 1), (1, 1), ()]


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
@pytest.mark.parametrize("mask_shape", MASK_SHAPES, ids=str)
@pytest.mark.parametrize("axis", [-1, 0, (0, 1)], ids=str)
def test_broadcast_bool_masks(backend, mask_shape, axis, rng):
    x = (3 * rng.standard_normal((4, 9))).astype(F32)
    mask = rng.random(mask_shape) > 0.3
    if mask.ndim == 2 and mask.shape == (4, 9):
        mask[1, :] = False  # a fully masked row
    got = check(backend, x, axis, mask)
    full = np.broadcast_to(mask, x.shape)
    assert np.all(got[~full] == 0)


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
def test_fully_masked_slice_is_zero_not_uniform(backend, rng):
    x = rng.standard_normal((3, 6)).astype(F32)
    mask = np.ones((3, 6), bool)
    mask[1] = False
    got = run_on(backend, fl.softmax, x, -1, mask)
    np.testing.assert_array_equal(got[1], np.zeros(6, F32))
    assert_close(got, naive.softmax(x, -1, mask), k=6)
    got0 = run_on(backend, fl.softmax, x, 0, np.zeros((3, 1), bool))
    np.testing.assert_array_equal(got0, np.zeros((3, 6), F32))


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
def test_numeric_masks_use_threshold_one_half(backend, rng):
    x = rng.standard_normal((2, 5)).astype(F32)
    fmask = np.array([[0.4, 0.6, 1.0, 0.0, 0.51], [0.5, 2.0, -1.0, 0.9, 0.49]])
    got = run_on(backend, fl.softmax, x, -1, fmask)
    as_bool = run_on(backend, fl.softmax, x, -1, fmask > 0.5)
    np.testing.assert_array_equal(got, as_bool)
    assert got[0, 0] == 0 and got[1, 0] == 0 and got[0, 4] > 0
    imask = np.array([[1, 0, 1, 1, 0]])
    np.testing.assert_array_equal(
        run_on(backend, fl.softmax, x, -1, imask), run_on(backend, fl.softmax, x, -1, imask > 0)
    )


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
def test_mask_beats_large_logits(backend):
    """Masked logits are replaced (not offset): a masked 1e10 does not win."""
    x = np.array([[1e10, 0.0, 1.0]], F32)
    got = run_on(backend, fl.softmax, x, -1, np.array([False, True, True]))
    assert_close(got, naive.softmax(x, -1, np.array([False, True, True])), k=3)
    assert got[0, 0] == 0


@pytest.mark.parametrize("backend", BACKENDS_ANY_CALL)
def test_mask_with_non_contiguous_and_float64(backend, rng):
    x = (3 * rng.standard_normal((8, 12))).astype(np.float64)
    mask = rng.random((8, 12)) > 0.5
    got = run_on(backend, fl.softmax, x[::2, ::3], 0, mask[::2, ::3])
    ref = run_on(
        backend,
        fl.softmax,
        np.ascontiguousarray(x[::2, ::3], F32),
        0,
        np.ascontiguousarray(mask[::2, ::3]),
    )
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == F32


# ---------------------------------------------------------------- property test


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_softmax_property_matches_reference(shape, data):
    nd = len(shape)
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = (4 * rng.standard_normal(shape)).astype(F32)
    axis = data.draw(st.integers(-nd, nd - 1))
    for backend in BACKENDS:
        check(backend, x, axis)
    axes = data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    mask_shape = tuple(data.draw(st.sampled_from([1, d])) for d in shape)
    mask = rng.random(mask_shape) > 0.3
    for backend in BACKENDS_ANY_CALL:
        got = check(backend, x, tuple(axes), mask)
        assert np.all(np.isfinite(got)) and np.all((got >= 0) & (got <= 1))


# --------------------------------------------------------------------- bad inputs

_X = np.zeros((2, 4))
SOFTMAX_BAD = [
    (dict(x=np.float32(1.0)), ValueError, "softmax: x must have rank >= 1"),
    (dict(x=np.zeros(())), ValueError, "softmax: x must have rank >= 1"),
    (dict(axis=2), ValueError, "softmax: axis 2 is out of range"),
    (dict(axis=-3), ValueError, "softmax: axis -3 is out of range"),
    (dict(axis=(0, 5)), ValueError, "softmax: axis 5 is out of range"),
    (dict(axis=(0, 0)), ValueError, "softmax: axis has repeated entries"),
    (dict(axis=(1, -1)), ValueError, "softmax: axis has repeated entries"),
    (dict(axis=()), ValueError, "softmax: axis must not be empty"),
    (dict(axis=1.0), TypeError, "softmax: axis must be an int"),
    (dict(axis=(0, 1.0)), TypeError, "softmax: axis must be an int"),
    (dict(axis=True), TypeError, "softmax: axis must be an int"),
    (dict(axis=np.bool_(False)), TypeError, "softmax: axis must be an int"),
    (dict(axis="0"), TypeError, "softmax: axis must be an int"),
    (dict(axis=None), TypeError, "softmax: axis must be an int"),
    (dict(mask=np.ones(3, bool)), ValueError, "softmax: mask of shape (3,) does not broadcast"),
    (dict(mask=np.ones((4, 2), bool)), ValueError, "softmax: mask of shape (4, 2)"),
    (dict(mask=np.ones((1, 2, 4), bool)), ValueError, "softmax: mask of shape (1, 2, 4)"),
    (dict(mask=np.ones((2, 4), complex)), TypeError, "softmax: mask must be a bool"),
    (dict(mask=np.full((2, 4), "y")), TypeError, "softmax: mask must be a bool"),
    (dict(mask="yes"), TypeError, "softmax: mask must be a boolean array"),
    (dict(x=np.zeros((2, 4), complex)), TypeError, "softmax: x must have a real"),
    (dict(x=np.array([1 + 2j])), TypeError, "softmax: x must have a real"),
    (dict(x=np.array(["a", "b"])), TypeError, "softmax: x must have a real"),
    (dict(x="ab"), TypeError, "softmax: x must be an array"),
    (dict(x=[[1.0], [1.0, 2.0]]), TypeError, "softmax: x could not be converted"),
    (dict(x=np.array([None, 1.0], dtype=object)), TypeError, "softmax: x must have a real"),
    (dict(x=None), TypeError, "softmax: x is required"),
]


@pytest.mark.parametrize("kwargs,exc,fragment", SOFTMAX_BAD, ids=[r[2] for r in SOFTMAX_BAD])
def test_softmax_bad_inputs(any_backend, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.softmax(**{"x": _X, **kwargs})


def test_softmax_over_an_axis_of_one(any_backend):
    """A row of one element (attention over a single key): exactly 1, also at +-inf (the
    policy of docs/semantics.md §15); NaN stays NaN. The C++ path has a shortcut for it."""
    x = np.array([[0.5], [-3e38], [np.inf], [-np.inf], [np.nan], [0.0]], np.float32)
    with fl.use_backend(any_backend):
        y = fl.softmax(np.repeat(x[None], 5000, axis=0))  # (5000, 6, 1): threads too
    want = np.array([1, 1, 1, 1, np.nan, 1], np.float32)[None, :, None]
    np.testing.assert_array_equal(y, np.broadcast_to(want, y.shape))


@pytest.mark.parametrize("shape", [(1,), (64,), (1, 64), (3, 17), (2, 3, 33), (2, 1, 3, 1025)],
                         ids=str)
def test_the_plain_call_shortcut_gives_the_checked_bits(any_backend, shape, rng):
    """``fl.softmax(x)`` on a C-contiguous float32 array skips the checks (functional.softmax);
    the same axis spelled as a tuple takes them. Same bits, on every backend."""
    x = rng.standard_normal(shape).astype(F32)
    got = fl.softmax(x)
    want = fl.softmax(x, (x.ndim - 1,))
    assert got.dtype == F32 and got.shape == x.shape and not np.shares_memory(got, x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(fl.softmax(x, np.int64(-1)), want)
    with pytest.raises(ValueError, match=re.escape("softmax: x must have rank >= 1")):
        fl.softmax(np.zeros((), F32))
