"""dense and flatten against the float64 naive reference (tests/naive_dense_conv.py).

Every test runs on each backend that serves the op (``backends_for``), so once C++
serves dense the same checks cover it. Keras golden fixtures are in test_golden.py.
"""

from __future__ import annotations

import re

import naive_dense_conv as naive
import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, backends_for, run_on
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _backend
from fastlayers.activations import NAMES

DENSE = backends_for("dense")
FLATTEN = backends_for("flatten")


def _weights(rng, lead, k, n, bias=True):
    x = rng.standard_normal(lead + (k,)).astype(np.float32)
    kernel = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return x, kernel, b


def _magnitude(x, kernel, bias=None):
    """A bound on the |terms| summed into one output."""
    m = np.max(np.abs(x), initial=0.0) * np.max(np.abs(kernel), initial=0.0)
    if bias is not None:
        m = max(m, np.max(np.abs(bias), initial=0.0))
    return max(float(m), 1.0)


def _check_dense(backend, x, kernel, bias=None, activation=None):
    y = run_on(backend, fl.dense, x, kernel, bias, activation=activation)
    want = naive.dense(x, kernel, bias, activation)
    assert_close(y, want, k=kernel.shape[0], magnitude=_magnitude(x, kernel, bias))
    return y


# ------------------------------------------------------------------ shapes and values

# (batch, input_dim, units): 1, primes, and the GEMM tile sizes 16 and 6 plus and minus one.
DENSE_SHAPES = [
    (1, 1, 1),
    (1, 7, 13),
    (7, 13, 31),
    (31, 1, 7),
    (5, 16, 17),
    (6, 15, 5),
    (7, 6, 16),
    (15, 17, 6),
    (16, 5, 15),
    (17, 31, 7),
    (47, 48, 49),
    (49, 47, 48),
    (48, 49, 47),
]


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("b,k,n", DENSE_SHAPES, ids=lambda v: str(v))
def test_dense_matches_naive(backend, rng, b, k, n):
    x, kernel, bias = _weights(rng, (b,), k, n)
    y = _check_dense(backend, x, kernel, bias)
    assert y.shape == (b, n)


@pytest.mark.parametrize("backend", DENSE)
def test_dense_without_bias(backend, rng):
    x, kernel, _ = _weights(rng, (13,), 17, 5, bias=False)
    _check_dense(backend, x, kernel, None)


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("lead", [(2, 3), (1, 1), (3, 7), (2, 3, 4), (1, 5, 1)], ids=str)
def test_dense_contracts_only_the_last_axis(backend, rng, lead):
    x, kernel, bias = _weights(rng, lead, 6, 7)
    y = _check_dense(backend, x, kernel, bias, "relu")
    assert y.shape == lead + (7,)


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("lead", [(0,), (0, 3), (2, 0), (0, 2, 3)], ids=str)
@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
def test_dense_empty_batch(backend, rng, lead, activation):
    x, kernel, bias = _weights(rng, lead, 5, 4)
    y = run_on(backend, fl.dense, x, kernel, bias, activation=activation)
    assert y.shape == lead + (4,)
    assert y.dtype == np.float32


@pytest.mark.parametrize("backend", DENSE)
def test_dense_empty_reduction_gives_activation_of_bias(backend, rng):
    x, kernel, bias = _weights(rng, (3,), 0, 4)
    y = run_on(backend, fl.dense, x, kernel, bias, activation="relu")
    np.testing.assert_array_equal(y, np.broadcast_to(np.maximum(bias, 0), (3, 4)))


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("activation", [None, "relu", "softmax", "log_softmax", "sparsemax"])
def test_dense_zero_units(backend, rng, activation):
    x, kernel, bias = _weights(rng, (3,), 5, 0)
    y = run_on(backend, fl.dense, x, kernel, bias, activation=activation)
    assert y.shape == (3, 0) and y.dtype == np.float32


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("activation", NAMES)
def test_dense_fused_activation(backend, rng, activation):
    x, kernel, bias = _weights(rng, (5, 3), 7, 6)  # 6 units: glu needs an even count
    _check_dense(backend, x, kernel, bias, activation)


@pytest.mark.parametrize("backend", DENSE)
def test_dense_activation_name_is_case_insensitive(backend, rng):
    x, kernel, bias = _weights(rng, (4,), 3, 5)
    lower = run_on(backend, fl.dense, x, kernel, bias, activation="relu")
    upper = run_on(backend, fl.dense, x, kernel, bias, activation="ReLU")
    np.testing.assert_array_equal(upper, lower)


@pytest.mark.parametrize("backend", DENSE)
def test_dense_callable_activation(backend, rng):
    x, kernel, bias = _weights(rng, (4,), 9, 5)
    y = run_on(backend, fl.dense, x, kernel, bias, activation=lambda z: 2 * z - 1)
    want = 2 * naive.dense(x, kernel, bias) - 1
    assert_close(y, want, k=9, magnitude=2 * _magnitude(x, kernel, bias))


@pytest.mark.parametrize("backend", DENSE)
def test_dense_callable_activation_must_keep_the_shape(backend, rng):
    x, kernel, bias = _weights(rng, (2,), 4, 3)

    def first_column(t):
        return t[..., :1]

    with pytest.raises(ValueError, match=r"activation 'first_column' returned shape \(2, 1\) "
                                         r"for an input of shape \(2, 3\)"):
        run_on(backend, fl.dense, x, kernel, bias, activation=first_column)
    with pytest.raises(ValueError, match="returned shape"):  # it was broadcast silently
        run_on(backend, fl.dense, x, kernel, bias, activation=lambda t: t[..., :1])
    with pytest.raises(ValueError, match="returned shape"):
        fl.layers.Activation(first_column)(x)
    # What is not an array of numbers is named as the activation's result (it was NumPy's
    # "could not convert string to float", which named neither).
    def word(t):
        return "x"

    with pytest.raises(TypeError, match=r"activation 'word' returned str, not an array"):
        run_on(backend, fl.dense, x, kernel, bias, activation=word)
    with pytest.raises(TypeError, match="returned dict"):
        fl.layers.Activation(lambda t: {"a": t})(x)


# ------------------------------------------------------------------------------ dtypes


def _in_dtype(rng, shape, dtype):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype == np.int32:
        return rng.integers(-3, 4, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_dense_inputs_of_any_real_dtype_compute_in_float32(backend, rng, dtype):
    x = _in_dtype(rng, (7, 13), dtype)
    kernel = _in_dtype(rng, (13, 5), dtype)
    bias = _in_dtype(rng, (5,), dtype)
    y = run_on(backend, fl.dense, x, kernel, bias)
    assert y.dtype == np.float32
    # Same bits as converting to float32 first: the float64 values are not used.
    f32 = [a.astype(np.float32) for a in (x, kernel, bias)]
    np.testing.assert_array_equal(y, run_on(backend, fl.dense, *f32))
    assert_close(y, naive.dense(x, kernel, bias), k=13, magnitude=_magnitude(*f32))


@pytest.mark.parametrize("backend", DENSE)
def test_dense_accepts_nested_lists(backend):
    y = run_on(backend, fl.dense, [[1, 2], [3, 4]], [[1, 0, 1], [0, 1, 1]], [0.5, 0, 0])
    np.testing.assert_array_equal(y, np.array([[1.5, 2, 3], [3.5, 4, 7]], np.float32))


@pytest.mark.parametrize("backend", DENSE)
def test_dense_non_contiguous_inputs(backend, rng):
    big_x = rng.standard_normal((18, 22)).astype(np.float32)
    big_k = rng.standard_normal((22, 18)).astype(np.float32)
    bias = rng.standard_normal(18).astype(np.float32)
    cases = {
        "transposed": (big_x[:, :7].T, big_k.T[:, :5], None),
        "[::2] slices": (big_x[::2], big_k[:, ::2], bias[::2]),
        "negative strides": (big_x[::-1, ::-1], big_k[::-1, ::-3], bias[::-3]),
        "rank 3 strided": (big_x.reshape(2, 9, 22)[:, ::3, 1::2], big_k[:11, ::-3], None),
    }
    for name, (x, kernel, b) in cases.items():
        assert not (x.flags.c_contiguous and kernel.flags.c_contiguous), name
        copies = [None if a is None else np.ascontiguousarray(a) for a in (x, kernel, b)]
        y = run_on(backend, fl.dense, x, kernel, b)
        np.testing.assert_array_equal(y, run_on(backend, fl.dense, *copies), err_msg=name)
        mag = _magnitude(x, kernel, b)
        assert_close(y, naive.dense(x, kernel, b), k=kernel.shape[0], magnitude=mag, err_msg=name)


# ---------------------------------------------------------------------- NaN and Inf


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "softmax"])
def test_dense_nan_and_inf_propagate(backend, rng, activation):
    x, kernel, bias = _weights(rng, (5,), 4, 6)
    x[1, 2] = np.nan  # row 1 -> NaN everywhere
    x[3, 0] = 0.0  # 0 * inf = NaN in column 4
    x[[0, 2, 4], 0] = 1.0  # 1 * inf = inf in column 4
    kernel[0, 4] = np.inf
    y = run_on(backend, fl.dense, x, kernel, bias, activation=activation)
    assert_close(y, naive.dense(x, kernel, bias, activation), k=4, magnitude=10)
    assert np.isnan(y[1]).all()
    assert np.isnan(y[3, 4])
    if activation is None or activation == "relu":
        assert (y[[0, 2, 4], 4] == np.inf).all()
    if activation != "softmax":
        # Elementwise activations keep the damage where it is.
        others = np.delete(np.delete(y, 1, axis=0), 4, axis=1)
        assert np.isfinite(others).all()


# ------------------------------------------------------------------------- flatten

FLATTEN_SHAPES = [
    (3,),
    (1, 1),
    (2, 3, 4),
    (1, 5, 1, 7),
    (2, 2, 3, 2, 2),
    (0, 3, 4),
    (3, 0, 2),
    (0,),
]


@pytest.mark.parametrize("backend", FLATTEN)
@pytest.mark.parametrize("shape", FLATTEN_SHAPES, ids=str)
def test_flatten_matches_naive(backend, rng, shape):
    x = rng.standard_normal(shape)
    y = run_on(backend, fl.flatten, x)
    expected_shape = (shape[0], int(np.prod(shape[1:])))
    assert y.shape == expected_shape
    assert_close(y, naive.flatten(x))


@pytest.mark.parametrize("backend", FLATTEN)
def test_flatten_keeps_channels_last_order(backend):
    # NHWC (1, 2, 2, 3): pixel (0, 0) channels first, then pixel (0, 1), ...
    x = np.arange(12).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(run_on(backend, fl.flatten, x), np.arange(12.0)[None])


@pytest.mark.parametrize("backend", FLATTEN)
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_flatten_dtypes_and_strides(backend, rng, dtype):
    base = _in_dtype(rng, (4, 6, 5), dtype)
    for x in (base, base[::2], base[:, ::-1], base.transpose(2, 0, 1)):
        y = run_on(backend, fl.flatten, x)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, naive.flatten(x).astype(np.float32))


# ------------------------------------------------------------------------ C++ vs NumPy


@pytest.mark.parametrize("backend", DENSE)
def test_dense_larger_problem_agrees_with_numpy_and_naive(backend, rng):
    """C++ against NumPy on a size where the C++ path blocks and threads its GEMM;
    the result does not depend on the thread count. Rows are spot-checked against
    the naive reference on every backend."""
    x, kernel, bias = _weights(rng, (3, 67), 130, 97)
    y = run_on(backend, fl.dense, x, kernel, bias, activation="gelu")
    mag = _magnitude(x, kernel, bias)
    assert_close(y, run_on("numpy", fl.dense, x, kernel, bias, activation="gelu"), 130, mag)
    rows = (slice(None), [0, 1, 16, 33, 66])
    assert_close(y[rows], naive.dense(x[rows], kernel, bias, "gelu"), k=130, magnitude=mag)
    threads = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        one = run_on(backend, fl.dense, x, kernel, bias, activation="gelu")
    finally:
        fl.set_num_threads(threads)
    np.testing.assert_array_equal(one, y)


@pytest.mark.parametrize("backend", DENSE)
@pytest.mark.parametrize("b", [7, 8, 13, 14])
def test_dense_rows_4_kib_apart_against_a_large_kernel(backend, rng, b):
    """8-14 rows of x 4 KiB apart (K = 1024) against a kernel of more than 1 MiB: on AVX-512
    the C++ path packs them into one register block (csrc/gemm/gemm.cpp, run_block), which
    reads them in place in blocks of at most 7 elsewhere; rows agree with the naive product,
    on 1 and 2 threads alike."""
    x, kernel, bias = _weights(rng, (b,), 1024, 333)
    y = _check_dense(backend, x, kernel, bias)
    threads = fl.get_num_threads()
    try:
        fl.set_num_threads(1 if threads > 1 else 2)
        np.testing.assert_array_equal(run_on(backend, fl.dense, x, kernel, bias), y)
    finally:
        fl.set_num_threads(threads)


# --------------------------------------------------------------------- property test


@pytest.mark.parametrize("backend", DENSE)
@settings(max_examples=50, deadline=None)
@given(
    lead=st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
    k=st.integers(1, 9),
    n=st.integers(1, 9),
    use_bias=st.booleans(),
    activation=st.sampled_from([None, "relu", "tanh", "gelu", "elu", "softmax"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_property_matches_naive(backend, lead, k, n, use_bias, activation, seed):
    x, kernel, bias = _weights(np.random.default_rng(seed), lead, k, n, use_bias)
    y = _check_dense(backend, x, kernel, bias, activation)
    assert y.shape == lead + (n,)


# ------------------------------------------------------------------------- bad inputs

X = np.ones((2, 3), np.float32)
KERNEL = np.ones((3, 4), np.float32)
BIAS = np.ones(4, np.float32)

BAD_DENSE = [
    # (id, arguments replacing the good ones, exception, message fragment)
    ("x rank 1", dict(x=np.ones(3)), ValueError, "dense: x must have rank >= 2"),
    ("x rank 0", dict(x=np.float32(1)), ValueError, "dense: x must have rank >= 2"),
    (
        "kernel rank 3",
        dict(kernel=np.ones((3, 4, 1))),
        ValueError,
        "dense: kernel must have rank 2",
    ),
    ("kernel rank 1", dict(kernel=np.ones(3)), ValueError, "dense: kernel must have rank 2"),
    (
        "kernel rows != features",
        dict(kernel=np.ones((5, 4))),
        ValueError,
        "dense: kernel has shape (5, 4), expected (3, units)",
    ),
    ("bias length", dict(bias=np.ones(5)), ValueError, "dense: bias has shape (5,), expected (4,)"),
    ("bias rank 2", dict(bias=np.ones((1, 4))), ValueError, "dense: bias has shape (1, 4)"),
    (
        "unknown activation",
        dict(activation="relu7"),
        ValueError,
        "dense: unknown activation 'relu7'",
    ),
    ("activation int", dict(activation=3), TypeError, "dense: activation must be a str"),
    ("activation list", dict(activation=["relu"]), TypeError, "dense: activation must be a str"),
    ("x complex", dict(x=X.astype(complex)), TypeError, "dense: x must have a real"),
    (
        "kernel complex",
        dict(kernel=KERNEL.astype(np.complex64)),
        TypeError,
        "dense: kernel must have a real",
    ),
    ("bias complex", dict(bias=BIAS.astype(complex)), TypeError, "dense: bias must have a real"),
    (
        "x object",
        dict(x=np.array([[1, None, 2]], dtype=object)),
        TypeError,
        "dense: x must have a real (bool, int or float) dtype, got dtype object",
    ),
    ("x str array", dict(x=np.array([["a", "b", "c"]])), TypeError, "dense: x must have a real"),
    ("kernel str", dict(kernel="abc"), TypeError, "dense: kernel must be an array of real numbers"),
    ("x ragged", dict(x=[[1, 2, 3], [4]]), TypeError, "dense: x could not be converted"),
    ("x None", dict(x=None), TypeError, "dense: x is required, got None"),
    ("kernel None", dict(kernel=None), TypeError, "dense: kernel is required, got None"),
]


@pytest.mark.parametrize(
    "bad,exc,fragment", [c[1:] for c in BAD_DENSE], ids=[c[0] for c in BAD_DENSE]
)
def test_dense_bad_inputs(any_backend, bad, exc, fragment):
    args = dict(x=X, kernel=KERNEL, bias=BIAS, activation="relu")
    args.update(bad)
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.dense(**args)


BAD_FLATTEN = [
    ("rank 0", np.float32(2), ValueError, "flatten: x must have rank >= 1"),
    ("None", None, TypeError, "flatten: x is required, got None"),
    ("complex", np.ones((2, 3), complex), TypeError, "flatten: x must have a real"),
    ("object", np.array([[1, "a"]], dtype=object), TypeError, "flatten: x must have a real"),
    ("str", "abc", TypeError, "flatten: x must be an array of real numbers, got str"),
]


@pytest.mark.parametrize(
    "x,exc,fragment", [c[1:] for c in BAD_FLATTEN], ids=[c[0] for c in BAD_FLATTEN]
)
def test_flatten_bad_inputs(any_backend, x, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.flatten(x)


# -------------------------------------------- functional dense: kernel read in place


# The compiled core: a NumPy-only run (FASTLAYERS_TEST_NUMPY_ONLY=1) skips these; any other run
# without the core fails them (run_on "cpp" raises).
needs_core = pytest.mark.skipif(NUMPY_ONLY, reason="FASTLAYERS_TEST_NUMPY_ONLY=1: no C++ path")


@needs_core
@pytest.mark.parametrize(
    "m,k,n",
    [(1, 2048, 300), (5, 257, 513), (8, 64, 40), (9, 600, 700), (31, 300, 17),
     (32, 256, 256), (33, 40, 257), (3, 0, 9), (12, 0, 20), (289, 33, 70)],
    ids=str,
)
@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
@pytest.mark.parametrize("threads", [1, 2])
def test_functional_dense_is_bitwise_the_packed_layer(rng, m, k, n, activation, threads):
    # fl.dense reads its kernel in place for up to 8 rows, packs it block by block per call
    # up to an M block (several K blocks at K = 600) and whole for more; the layer packs it
    # once. The FMA chains are the same, so are the bits, on any number of threads.
    x = rng.standard_normal((m, k)).astype(np.float32)
    kernel = (rng.standard_normal((k, n)) / np.sqrt(max(k, 1))).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    layer = fl.layers.Dense(n, activation=activation)
    layer.build(x.shape)
    layer.set_weights([kernel, bias])
    saved = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        with fl.use_backend("cpp"):
            want = layer(x)
        fl.set_num_threads(threads)
        got = run_on("cpp", fl.dense, x, kernel, bias, activation=activation)
    finally:
        fl.set_num_threads(saved)
    assert np.array_equal(got, want)


DENSE_UNPACKED_BAD = [
    ({"x": np.zeros((2, 3))}, TypeError, "dense: x must be a float32 array"),
    ({"kernel": np.zeros((4, 5), np.float32)}, ValueError, "dense: kernel must have shape (3,"),
    ({"kernel": np.zeros((5, 3), np.float32).T}, ValueError, "dense: kernel must be C-contiguous"),
    ({"bias": np.zeros(4, np.float32)}, ValueError, "dense: bias must have shape (5,) to match"),
    ({"activation_id": 10_000}, ValueError, "dense: activation_id must be in"),
]


@needs_core
@pytest.mark.parametrize("bad,exc,frag", DENSE_UNPACKED_BAD, ids=[r[2] for r in DENSE_UNPACKED_BAD])
def test_core_dense_unpacked_rejects_bad_arguments(bad, exc, frag):
    args = dict(
        x=np.zeros((2, 3), np.float32),
        kernel=np.zeros((3, 5), np.float32),
        bias=None,
        activation_id=0,
    )
    args.update(bad)
    with pytest.raises(exc, match=re.escape(frag)):
        _backend._core.dense_unpacked(**args)


@pytest.mark.skipif(NUMPY_ONLY, reason="the usual call's fast path needs the compiled core")
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (1, 16, 16), (0, 5, 3), (3, 0, 4), (3, 4, 0),
                                     (32, 17, 5), (33, 17, 5), (7, 300, 129)])
@pytest.mark.parametrize("activation", [None, "relu", "gelu", "linear"])
def test_dense_usual_call_as_the_checked_one(m, k, n, activation, monkeypatch):
    """The usual call (2-D float32 arrays the checks pass unchanged, an activation the core
    fuses) skips the checks' Python: the same bits as the checked call (float64 copies take
    it), with and without bias; what it does not take goes through the checks."""
    from fastlayers import _validation

    rng = np.random.default_rng(m * 100 + k * 10 + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    real = _validation.check_dense

    def checks(*args, **kwargs):
        raise AssertionError("the usual call ran the checks")

    for bias in (b, None):
        monkeypatch.setattr(_validation, "check_dense", checks)
        with fl.use_backend("cpp"):
            fast = fl.dense(x, w, bias, activation)
        monkeypatch.setattr(_validation, "check_dense", real)
        with fl.use_backend("cpp"):
            checked = fl.dense(x.astype(np.float64), w.astype(np.float64),
                               None if bias is None else bias.astype(np.float64), activation)
        assert fast.shape == (m, n) and fast.dtype == np.float32
        np.testing.assert_array_equal(fast, checked)
    with pytest.raises(ValueError, match="kernel has shape"):
        fl.dense(x, w[:0] if k else np.ones((1, n), np.float32), b, activation)
    with pytest.raises(ValueError, match="bias"):
        fl.dense(x, w, np.ones(n + 1, np.float32), activation)
