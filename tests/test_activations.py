"""fastlayers.activations against float64 references built from the ``math`` module.

Elementwise activations are checked one element at a time over a grid of
awkward values (0, +-1e-3, +-1, +-20, +-88, +-100, NaN); softmax, log_softmax,
sparsemax and glu along each axis. NaN in gives NaN out for every elementwise
activation. Each test runs on every backend that serves ``activations.<name>``.
"""

from __future__ import annotations

import math
import re

import naive_dense_conv as naive
import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, backends_for, run_on
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastlayers as fl
from fastlayers import _backend
from fastlayers import activations as A

ROW = ("softmax", "log_softmax", "sparsemax", "glu")
ELEMENTWISE = tuple(n for n in A.NAMES if n not in ROW) + ("gelu_tanh",)

# 0, +-1e-3, +-1, +-20, +-88, +-100, the kinks of relu6/hard_sigmoid/sparse_plus, then NaN.
MAGNITUDES = [0, 1e-3, 0.5, 1, 2.5, 3, 6, 20, 88, 100]
GRID = np.array([sign * m for m in MAGNITUDES for sign in (1, -1)] + [np.nan], np.float32)


def _cases(names):
    return [(b, n) for n in names for b in backends_for(f"activations.{n}")]


def _expected(name, x):
    """The float64 reference rounded to float32 (so that exp(100) is inf, as in float32)."""
    with np.errstate(over="ignore"):
        return naive.elementwise(name, x).astype(np.float32)


def test_names_cover_keras_and_aliases():
    assert set(ROW) | {"linear", "relu", "gelu", "swish", "hard_swish"} <= set(A.NAMES)
    assert set(A.NAMES) == set(naive.SCALAR) - {"gelu_tanh"} | set(ROW)


@pytest.mark.skipif(not _backend.core_available(), reason="no compiled core")
def test_cpp_activations_are_the_cores_table():
    """fastlayers.activations takes the C++ path for exactly the core's elementwise table
    (aliases included) and softmax; the row activations without a kernel refuse "cpp"."""
    assert set(_backend.CPP_ACTIVATIONS) == set(_backend.cpp_activation_ids()) | {"softmax"}
    assert set(_backend.CPP_ACTIVATIONS) <= set(ELEMENTWISE) | {"softmax"}
    x = np.ones((2, 4), np.float32)
    for name in ("log_softmax", "sparsemax", "glu"):
        with pytest.raises(NotImplementedError, match=f"activations.{name}: the C"):
            run_on("cpp", getattr(A, name), x)


@pytest.mark.parametrize("backend,name", [c for c in _cases(ELEMENTWISE) if c[0] == "cpp"])
def test_cpp_activation_is_the_dense_epilogue(backend, name, rng):
    """On the C++ path activations.<name> runs the kernel that Dense fuses: the same bits as
    Dense with an identity kernel (x * 1 + 0 is exact) and that activation (gelu_tanh, which
    Dense does not take: the core's kernel itself), odd sizes and a 0-d input included."""
    for shape in [(1, 37), (3, 5, 17), (2, 1000)]:
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        eye = np.eye(shape[-1], dtype=np.float32)
        zero = np.zeros(shape[-1], np.float32)
        got = run_on(backend, getattr(A, name), x)
        if name == "gelu_tanh":  # not a Keras activation name: Dense has no such argument
            want = _backend._core.activate(x, _backend.cpp_activation_ids()[name])
        else:
            want = run_on(backend, fl.dense, x, eye, zero, activation=name)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    y0 = run_on(backend, getattr(A, name), np.float32(0.75))
    assert y0.shape == () and y0.dtype == np.float32
    assert y0 == run_on(backend, getattr(A, name), np.array([0.75], np.float32))[0]


# ------------------------------------------------------------------------ elementwise


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend,name", _cases(ELEMENTWISE))
def test_elementwise_matches_math_reference(backend, name):
    y = run_on(backend, getattr(A, name), GRID)
    assert_close(y, _expected(name, GRID))
    assert np.isnan(y[-1]), f"{name}(nan) must be nan"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend,name", _cases(ELEMENTWISE))
def test_elementwise_dense_sweep(backend, name):
    x = np.linspace(-12, 12, 2401, dtype=np.float32)
    assert_close(run_on(backend, getattr(A, name), x), _expected(name, x))


@pytest.mark.parametrize("backend,name", _cases(A.NAMES))
def test_get_returns_the_named_function(backend, name, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    fn = A.get(name)
    assert callable(fn)
    np.testing.assert_array_equal(run_on(backend, fn, x), run_on(backend, getattr(A, name), x))


def test_get_none_and_callables():
    x = np.array([-1.5, 0.0, 2.0], np.float32)
    np.testing.assert_array_equal(A.get(None)(x), x)

    def double(v):
        return 2 * v

    assert A.get(double) is double
    np.testing.assert_array_equal(A.get("ReLU")(x), A.relu(x))


@pytest.mark.parametrize("backend", backends_for("activations.gelu"))
def test_gelu_is_the_exact_erf_form(backend):
    x = np.linspace(-4, 4, 81, dtype=np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)])
    y = run_on(backend, A.gelu, x)
    assert_close(y, exact)
    # The tanh approximation differs by up to ~4.7e-4: far more than the tolerance.
    gap = np.abs(y - run_on(backend, A.gelu_tanh, x)).max()
    assert 1e-4 < gap < 5e-4
    assert y[np.searchsorted(x, 1.0)] == pytest.approx(0.8413447, abs=1e-7)


@pytest.mark.parametrize("backend", backends_for("activations.leaky_relu"))
def test_leaky_relu_slope_is_0_2(backend):
    y = run_on(backend, A.leaky_relu, np.array([-10, -1, 0, 3], np.float32))
    np.testing.assert_allclose(y, [-2, -0.2, 0, 3], rtol=1e-7)


@pytest.mark.parametrize("backend", backends_for("activations.hard_sigmoid"))
def test_hard_sigmoid_is_x_over_6_plus_half(backend):
    # tf.keras 2 used 0.2 x + 0.5, which gives 1.0 at 2.5 and 0.7 at 1.
    y = run_on(backend, A.hard_sigmoid, np.array([-4, -3, 0, 1, 2.5, 3, 4], np.float32))
    np.testing.assert_allclose(y, [0, 0, 0.5, 1 / 6 + 0.5, 2.5 / 6 + 0.5, 1, 1], rtol=1e-6)


@pytest.mark.parametrize("alias,name", [("swish", "silu"), ("hard_swish", "hard_silu")])
def test_aliases_are_identical(alias, name, rng):
    x = (rng.standard_normal(257) * 8).astype(np.float32)
    for backend in backends_for(f"activations.{alias}"):
        want = run_on(backend, getattr(A, name), x)
        np.testing.assert_array_equal(run_on(backend, getattr(A, alias), x), want)


# Limits at +-inf that every sensible float32 formula reaches (for the others, e.g.
# silu(-inf) = -inf * 0, IEEE gives NaN and Keras does too; that is not asserted).
INF_LIMITS = {
    "linear": (np.inf, -np.inf),
    "relu": (np.inf, 0),
    "relu6": (6, 0),
    "leaky_relu": (np.inf, -np.inf),
    "sigmoid": (1, 0),
    "tanh": (1, -1),
    "elu": (np.inf, -1),
    "selu": (np.inf, -naive.SELU_SCALE * naive.SELU_ALPHA),
    "celu": (np.inf, -1),
    "softplus": (np.inf, 0),
    "log_sigmoid": (0, -np.inf),
    "exponential": (np.inf, 0),
    "hard_sigmoid": (1, 0),
    "hard_tanh": (1, -1),
    "sparse_sigmoid": (1, 0),
    "sparse_plus": (np.inf, 0),
    "soft_shrink": (np.inf, -np.inf),
    "hard_shrink": (np.inf, -np.inf),
    "tanh_shrink": (np.inf, -np.inf),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend,name", _cases(INF_LIMITS))
def test_limits_at_infinity(backend, name):
    y = run_on(backend, getattr(A, name), np.array([np.inf, -np.inf], np.float32))
    np.testing.assert_allclose(y, np.array(INF_LIMITS[name], np.float32), rtol=1e-6)


@pytest.mark.parametrize("backend,name", _cases(ELEMENTWISE))
def test_elementwise_preserves_shape_for_rank_0_to_3(backend, name, rng):
    for shape in [(), (5,), (2, 3), (2, 3, 4), (0,), (3, 0, 2)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = run_on(backend, getattr(A, name), x)
        assert y.shape == shape and y.dtype == np.float32, (name, shape, y.shape)
        assert_close(y, _expected(name, x))
    assert run_on(backend, getattr(A, name), 0.25).shape == ()


# ------------------------------------------------------------------ dtypes and strides


@pytest.mark.parametrize("backend,name", _cases(A.NAMES))
def test_any_real_dtype_computes_in_float32(backend, name, rng):
    base = rng.standard_normal((3, 6)) * 3
    fn = getattr(A, name)
    for x in (base, base.astype(np.float16), np.round(base).astype(np.int32), base > 0):
        y = run_on(backend, fn, x)
        assert y.dtype == np.float32, (name, x.dtype)
        np.testing.assert_array_equal(y, run_on(backend, fn, x.astype(np.float32)))


@pytest.mark.parametrize("backend,name", _cases(A.NAMES))
def test_non_contiguous_inputs(backend, name, rng):
    base = rng.standard_normal((8, 12)).astype(np.float32)
    fn = getattr(A, name)
    for x in (base.T, base[::2], base[::-1, ::-2], base[:, 1::3]):
        assert not x.flags.c_contiguous
        np.testing.assert_array_equal(run_on(backend, fn, x), run_on(backend, fn, x.copy()))


# ------------------------------------------------------------------- along an axis

ROW_GRID = np.array(
    [[0, 1e-3, -1e-3, 1, -1, 20, -20, 88], [-88, 100, -100, 0.5, 2, -2, 3, 3], [7] * 8],
    np.float32,
)


@pytest.mark.parametrize("backend,name", _cases(ROW))
@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -3])
def test_row_activation_along_axis(backend, name, axis, rng):
    x = (rng.standard_normal((2, 4, 6)) * 3).astype(np.float32)
    x[1, 2, :] = [88, -88, 100, -100, 20, 0]
    y = run_on(backend, getattr(A, name), x, axis=axis)
    assert_close(y, naive.along_axis(name, x, axis), magnitude=1)
    expected_shape = list(x.shape)
    if name == "glu":
        expected_shape[axis] //= 2
    assert y.shape == tuple(expected_shape)


@pytest.mark.parametrize("backend,name", _cases(ROW))
def test_row_activation_extreme_rows(backend, name):
    y = run_on(backend, getattr(A, name), ROW_GRID)
    assert_close(y, naive.along_axis(name, ROW_GRID), magnitude=1)


@pytest.mark.parametrize("backend,name", _cases(ROW))
def test_row_activation_shapes(backend, name, rng):
    for shape in [(4,), (1, 2), (3, 1, 2), (0, 4), (3, 0)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = run_on(backend, getattr(A, name), x)
        assert y.shape == shape[:-1] + ((shape[-1] // 2,) if name == "glu" else shape[-1:])
        assert_close(y, naive.along_axis(name, x))


@pytest.mark.parametrize("backend,name", _cases(("softmax", "sparsemax")))
def test_softmax_and_sparsemax_rows_are_distributions(backend, name, rng):
    x = (rng.standard_normal((5, 13)) * 4).astype(np.float32)
    y = run_on(backend, getattr(A, name), x)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-6)
    assert (y >= 0).all()
    if name == "sparsemax":
        assert (y == 0).any()


@pytest.mark.parametrize("backend,name", _cases(("sparsemax",)))
def test_sparsemax_is_the_simplex_projection(backend, name):
    """The projection, worked by hand: the threshold of the support's k-th cumulative sum
    (Keras 3.15.1 sums the support's cumulative sums, keras-team/keras#23425, and gives
    [0, 0, 0.25] for the first row; docs/semantics.md §2)."""
    x = np.array([[0.0, 0.5, 1.0], [0.1, 0.2, 0.3], [3.0, 0.0, -1.0]], np.float32)
    want = np.array([[0.0, 0.25, 0.75], [0.7 / 3, 1 / 3, 1.3 / 3], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(run_on(backend, A.sparsemax, x), want, atol=1e-7)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend,name", _cases(("softmax", "log_softmax", "glu")))
def test_nan_stays_in_its_row(backend, name, rng):
    x = rng.standard_normal((3, 6)).astype(np.float32)
    x[1, 4] = np.nan
    y = run_on(backend, getattr(A, name), x)
    assert_close(y, naive.along_axis(name, x))
    assert np.isnan(y[1]).any() and np.isfinite(y[[0, 2]]).all()


# ---------------------------------------------------------------------- property test


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(ELEMENTWISE),
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
        elements=st.floats(-150, 150, width=32) | st.just(float("nan")),
    ),
)
def test_elementwise_property_matches_math_reference(name, x):
    for backend in backends_for(f"activations.{name}"):
        y = run_on(backend, getattr(A, name), x)
        assert y.shape == x.shape
        assert_close(y, _expected(name, x))


# ------------------------------------------------------------------------- bad inputs

BAD = [
    ("get unknown", A.get, ("relu7",), {}, ValueError, "activations.get: unknown name 'relu7'"),
    ("get int", A.get, (3,), {}, TypeError, "activations.get: name must be a str"),
    ("x None", A.relu, (None,), {}, TypeError, "activations.relu: x is required, got None"),
    (
        "x complex",
        A.gelu,
        (np.ones(3, complex),),
        {},
        TypeError,
        "activations.gelu: x must have a real",
    ),
    (
        "x object",
        A.sigmoid,
        (np.array([1, None]),),
        {},
        TypeError,
        "activations.sigmoid: x must have a real (bool, int or float) dtype, got dtype object",
    ),
    (
        "x str",
        A.tanh,
        ("abc",),
        {},
        TypeError,
        "activations.tanh: x must be an array of real numbers",
    ),
    (
        "x str array",
        A.elu,
        (np.array(["a"]),),
        {},
        TypeError,
        "activations.elu: x must have a real",
    ),
    (
        "softmax rank 0",
        A.softmax,
        (np.float32(1),),
        {},
        ValueError,
        "activations.softmax: x must have rank >= 1",
    ),
    (
        "softmax axis out of range",
        A.softmax,
        (np.ones((2, 3)),),
        {"axis": 2},
        ValueError,
        "activations.softmax: axis 2 is out of range",
    ),
    (
        "log_softmax axis -3",
        A.log_softmax,
        (np.ones((2, 3)),),
        {"axis": -3},
        ValueError,
        "activations.log_softmax: axis -3 is out of range",
    ),
    (
        "sparsemax axis float",
        A.sparsemax,
        (np.ones((2, 3)),),
        {"axis": 1.0},
        TypeError,
        "activations.sparsemax: axis must be an int",
    ),
    (
        "softmax axis None",
        A.softmax,
        (np.ones((2, 3)),),
        {"axis": None},
        TypeError,
        "activations.softmax: axis must be an int",
    ),
    (
        "glu odd axis",
        A.glu,
        (np.ones((2, 3)),),
        {},
        ValueError,
        "activations.glu: the size of axis -1 must be even",
    ),
    (
        "glu x complex",
        A.glu,
        (np.ones((2, 4), complex),),
        {},
        TypeError,
        "activations.glu: x must have a real",
    ),
]


@pytest.mark.parametrize(
    "fn,args,kwargs,exc,fragment", [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_inputs(any_backend, fn, args, kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fn(*args, **kwargs)


_GLU_CALLS = [
    lambda: fl.dense(np.ones((2, 3), np.float32), np.ones((3, 5), np.float32), activation="glu"),
    lambda: fl.conv2d(
        np.ones((1, 4, 4, 2), np.float32), np.ones((3, 3, 2, 3), np.float32), activation="glu"
    ),
    lambda: fl.layers.Activation("glu")(np.ones((2, 7), np.float32)),
]


@pytest.mark.parametrize("call", _GLU_CALLS, ids=["dense", "conv2d", "Activation"])
def test_glu_as_a_layer_activation_needs_an_even_size(any_backend, call):
    """An odd number of units or filters: a clear ValueError (it was NumPy's 'array split
    does not result in an equal division')."""
    with fl.use_backend(any_backend), pytest.raises(ValueError, match="glu activation needs"):
        call()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name, lo, hi", [
    ("softplus", -87.33, -86.6),  # results in [FLT_MIN, 2 FLT_MIN): C++ flushed them to 0
    ("log_sigmoid", 86.6, 87.33),
    ("hard_sigmoid", -3.0, -2.99),  # x/6 + 0.5 cancels near -3 (NumPy path: 2.8e6 steps off)
    ("hard_silu", -3.0, -2.99),
    ("gelu_tanh", -9.0, -3.0),  # 0.5 x (1 + tanh z) cancels (NumPy path: 1.7e8 steps off)
    ("tanh_shrink", 1e-6, 1e-2),  # x - tanh x cancels (NumPy path: 0 for 3.3e-13)
])
def test_relative_accuracy_where_the_formulas_cancel(name, lo, hi):
    """Where the textbook formula loses the relative accuracy of a small result, both paths
    stay within a few float32 steps of the float64 reference (a numerics audit found the
    NumPy path up to 1.7e8 steps off, and the C++ softplus flushing results above FLT_MIN)."""
    x = np.linspace(lo, hi, 1001, dtype=np.float32)
    x = x[x != -3.0]  # (hard_sigmoid(-3) = 0 exactly)
    want = _expected(name, x)
    for backend in backends_for(f"activations.{name}"):
        got = run_on(backend, getattr(A, name), x)
        steps = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want).astype(np.float32))
        assert steps.max() <= 8, (backend, float(steps.max()), x[np.argmax(steps)])


@pytest.mark.parametrize("name", ["log_softmax", "sparsemax", "glu"])
def test_activation_layer_runs_row_activations_under_every_backend(name, rng):
    """An Activation layer of log_softmax, sparsemax or glu runs NumPy under `cpp` too, as
    Dense(activation=name) does (it raised NotImplementedError there; an audit), with the
    op's values."""
    x = rng.standard_normal((3, 4, 6)).astype(np.float32)
    with fl.use_backend("numpy"):
        want = getattr(A, name)(x)
    for backend in ("auto", "cpp", "numpy"):
        with fl.use_backend(backend):
            np.testing.assert_array_equal(fl.layers.Activation(name)(x), want)


@pytest.mark.skipif(NUMPY_ONLY, reason="the usual call's fast path needs the compiled core")
@pytest.mark.parametrize("name", ["relu", "gelu", "sigmoid", "linear", "hard_silu"])
@pytest.mark.parametrize("shape", [(1,), (1, 1), (3, 17), (2, 3, 768), (4, 0), (0, 5)])
def test_elementwise_usual_call_as_the_checked_one(name, shape, rng, monkeypatch):
    """The usual call (a C-contiguous float32 array, no parameters) skips the checks'
    Python: the same bits as the checked call (a float64 copy of x takes it), a new array,
    and the NumPy backend still runs NumPy."""
    from fastlayers import _validation

    real = _validation.array

    def checks(*args, **kwargs):
        raise AssertionError("the usual call ran the checks")

    fn = getattr(A, name)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    monkeypatch.setattr(_validation, "array", checks)
    with fl.use_backend("cpp"):
        fast = fn(x)
    monkeypatch.setattr(_validation, "array", real)
    with fl.use_backend("cpp"):
        checked = fn(x.astype(np.float64))
    assert fast.shape == x.shape and fast.dtype == np.float32
    np.testing.assert_array_equal(fast, checked)
    if x.size:
        assert not np.shares_memory(fast, x)
    with fl.use_backend("numpy"):
        np.testing.assert_array_equal(fn(x), _np_act_impl(name)(x))
    # what the fast path does not take goes through the checks as before
    with pytest.raises(TypeError):
        fn("not an array")
    np.testing.assert_array_equal(fn(x[..., ::-1] if x.ndim else x), checked[..., ::-1])


def _np_act_impl(name):
    from fastlayers._numpy import activations as np_act
    return np_act.ACTIVATIONS[name]


@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "tanh", "linear"])
def test_a_model_built_with_an_activation_function_pickles(name):
    """A model's node records the public function (fastlayers.activations.<name>), which
    pickles by its name: wrapping it for the usual call had made the node hold an inner
    function, and pickle refused the model (a review)."""
    import pickle

    i = fl.Input((4,))
    model = fl.Model(i, getattr(A, name)(fl.layers.Dense(3, seed=0)(i)))
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again(x), model(x))
    np.testing.assert_array_equal(model(x), getattr(A, name)(model.layers[1](x)))
