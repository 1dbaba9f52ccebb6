"""conv2d against the float64 naive reference (tests/naive_dense_conv.py).

The reference loops over output pixels and skips taps in the zero padding; its
"same" split is pinned to the table of docs/semantics.md §5 below. Every test runs on
each backend that serves conv2d (``backends_for``). Keras golden fixtures are in
test_golden.py.
"""

from __future__ import annotations

import re

import naive_dense_conv as naive
import numpy as np
import pytest
from conftest import assert_close, backends_for, run_on
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import _validation as V

CONV = backends_for("conv2d")


def _weights(rng, x_shape, k_shape, bias=True):
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[3]).astype(np.float32) if bias else None
    return x, kernel, b


def _magnitude(x, kernel, bias=None):
    m = np.max(np.abs(x), initial=0.0) * np.max(np.abs(kernel), initial=0.0)
    if bias is not None:
        m = max(m, np.max(np.abs(bias), initial=0.0))
    return max(float(m), 1.0)


def _check(backend, x, kernel, bias=None, **kwargs):
    y = run_on(backend, fl.conv2d, x, kernel, bias, **kwargs)
    act = kwargs.pop("activation", None)
    want = naive.conv2d(x, kernel, bias, activation_name=act, **kwargs)
    kh, kw, cg, _ = kernel.shape
    assert_close(y, want, k=kh * kw * cg, magnitude=_magnitude(x, kernel, bias))
    return y


# ------------------------------------------------------------------- "same" padding

# (n, k, s, d, out, (before, after)) from docs/semantics.md §5: the extra pixel of odd
# total padding goes at the bottom/right.
SAME_TABLE = [
    (8, 2, 1, 1, 8, (0, 1)),
    (8, 4, 1, 1, 8, (1, 2)),
    (10, 2, 1, 2, 10, (1, 1)),
    (8, 3, 2, 1, 4, (0, 1)),
    (9, 3, 2, 1, 5, (1, 1)),
    (8, 2, 2, 1, 4, (0, 0)),
    (9, 2, 2, 1, 5, (0, 1)),
    (10, 5, 3, 1, 4, (2, 2)),
    (1, 3, 2, 1, 1, (1, 1)),
]


@pytest.mark.parametrize("n,k,s,d,out,pads", SAME_TABLE)
def test_same_padding_follows_the_tensorflow_split(n, k, s, d, out, pads):
    _, _, got_pads, out_hw, _ = V.conv2d_geometry(
        "conv2d", (1, n, n + 1, 1), (k, 1, 1, 1), s, "same", d, 1
    )
    assert out_hw[0] == out and got_pads[:2] == pads
    assert naive.same_padding(n, k, s, d) == (out, *pads)  # the reference agrees


@pytest.mark.parametrize("backend", CONV)
def test_same_padding_extra_pixel_is_bottom_right(backend):
    # A 2x2 all-ones kernel with "same": each output sums x[i:i+2, j:j+2], with
    # zeros past the bottom/right edge (none above or to the left).
    x = np.arange(1.0, 13.0).reshape(1, 3, 4, 1)
    y = run_on(backend, fl.conv2d, x, np.ones((2, 2, 1, 1)), padding="same")[0, :, :, 0]
    img = np.pad(x[0, :, :, 0], ((0, 1), (0, 1)))
    want = img[:-1, :-1] + img[1:, :-1] + img[:-1, 1:] + img[1:, 1:]
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("backend", CONV)
def test_padding_is_case_insensitive(backend, rng):
    x, kernel, bias = _weights(rng, (1, 5, 5, 2), (3, 3, 2, 2))
    same = run_on(backend, fl.conv2d, x, kernel, bias, padding="same")
    np.testing.assert_array_equal(run_on(backend, fl.conv2d, x, kernel, bias, padding="SAME"), same)
    valid = run_on(backend, fl.conv2d, x, kernel, bias)
    np.testing.assert_array_equal(
        run_on(backend, fl.conv2d, x, kernel, bias, padding="Valid"), valid
    )


# ------------------------------------------------------------------ shapes and values

# id: (x shape NHWC, kernel shape (kh, kw, C/groups, F), keyword arguments)
CASES = {
    "1x1": ((2, 5, 7, 3), (1, 1, 3, 4), {}),
    "1x1-same-stride2": ((1, 7, 6, 5), (1, 1, 5, 6), dict(padding="same", strides=2)),
    "1x1-pixel": ((3, 1, 1, 7), (1, 1, 7, 13), {}),
    "3x3-valid": ((2, 7, 7, 3), (3, 3, 3, 5), {}),
    "3x3-same": ((1, 13, 13, 4), (3, 3, 4, 7), dict(padding="same")),
    "3x3-same-primes": ((1, 7, 31, 3), (3, 3, 3, 13), dict(padding="same")),
    "5x5-valid": ((2, 9, 8, 2), (5, 5, 2, 3), {}),
    "2x2-same": ((2, 8, 9, 3), (2, 2, 3, 4), dict(padding="same")),
    "4x4-same": ((1, 8, 8, 2), (4, 4, 2, 3), dict(padding="same")),
    "2x3-rect-same": ((1, 6, 7, 2), (2, 3, 2, 3), dict(padding="same")),
    "kernel=input-valid": ((2, 5, 5, 3), (5, 5, 3, 2), {}),
    "5x5-same-larger-than-input": ((2, 3, 3, 2), (5, 5, 2, 3), dict(padding="same")),
    "4x4-same-larger-than-input": ((1, 3, 2, 2), (4, 4, 2, 2), dict(padding="same")),
    "7x7-same-on-1x1": ((2, 1, 1, 3), (7, 7, 3, 2), dict(padding="same")),
    "stride2-valid": ((2, 9, 8, 3), (3, 3, 3, 4), dict(strides=2)),
    "stride2-same": ((2, 9, 8, 3), (3, 3, 3, 4), dict(strides=2, padding="same")),
    "stride2-even-kernel-same": ((1, 9, 9, 2), (2, 2, 2, 3), dict(strides=2, padding="same")),
    "stride3-valid": ((1, 13, 11, 2), (3, 3, 2, 5), dict(strides=3)),
    "stride3-same": ((1, 10, 10, 2), (5, 5, 2, 2), dict(strides=3, padding="same")),
    "stride(3,2)-same": ((2, 10, 7, 3), (3, 2, 3, 4), dict(strides=(3, 2), padding="same")),
    "stride(3,2)-valid": ((1, 11, 9, 2), (3, 3, 2, 3), dict(strides=(3, 2))),
    "dilation2-valid": ((2, 9, 8, 3), (3, 3, 3, 4), dict(dilation_rate=2)),
    "dilation2-same": ((1, 10, 10, 2), (2, 2, 2, 3), dict(dilation_rate=2, padding="same")),
    "dilation(2,3)-valid": ((1, 11, 12, 2), (3, 3, 2, 3), dict(dilation_rate=(2, 3))),
    "dilation(2,3)-same": ((1, 7, 8, 2), (3, 3, 2, 3), dict(dilation_rate=(2, 3), padding="same")),
    "groups2": ((2, 7, 7, 4), (3, 3, 2, 6), dict(groups=2)),
    "groups2-same-stride2": ((1, 8, 9, 6), (3, 3, 3, 4), dict(groups=2, padding="same", strides=2)),
    "groups3-dilation2": (
        (1, 9, 9, 6),
        (2, 2, 2, 9),
        dict(groups=3, dilation_rate=2, padding="same"),
    ),
    "depthwise": ((2, 7, 7, 5), (3, 3, 1, 5), dict(groups=5)),
    "depthwise-multiplier2-same": ((1, 6, 6, 3), (3, 3, 1, 6), dict(groups=3, padding="same")),
    "channels16-filters17": ((1, 5, 5, 16), (3, 3, 16, 17), {}),
    "channels17-filters15": ((2, 4, 6, 17), (2, 2, 17, 15), dict(padding="same")),
    "channels5-filters7-tile6": ((1, 6, 7, 5), (3, 3, 5, 7), {}),
    "filters47": ((1, 5, 5, 3), (1, 1, 3, 47), {}),
    "filters48": ((1, 4, 4, 6), (2, 2, 6, 48), dict(padding="same")),
    "filters49-channels48": ((1, 3, 3, 48), (1, 1, 48, 49), {}),
    "pixels49": ((1, 7, 7, 1), (1, 1, 1, 1), {}),
    "pixels47": ((1, 1, 47, 2), (1, 3, 2, 3), dict(padding="same")),
    "pixels48": ((2, 6, 8, 2), (3, 3, 2, 2), dict(padding="same")),
    "batch3-wide": ((3, 2, 17, 2), (1, 3, 2, 2), {}),
    # C++ indirect path: kernel-row chunks (few channels), clipped rows at the edges, the
    # 12 x 8 tile (8 filters), tap chunks (16+ channels), column blocks (K * F > 64K floats).
    "rgb-stride2-same-right-edge": ((1, 10, 11, 3), (3, 3, 3, 32), dict(strides=2, padding="same")),
    "rgb-filters8-pixels112": ((2, 9, 10, 3), (3, 3, 3, 8), {}),
    "rgb-stride3-left-pad": ((1, 7, 13, 3), (3, 5, 3, 9), dict(strides=3, padding="same")),
    "channels15-row-dilation": (
        (1, 8, 9, 15),
        (3, 3, 15, 6),
        dict(dilation_rate=(2, 1), padding="same"),
    ),
    "channels16-taps-stride2": ((1, 9, 7, 16), (3, 3, 16, 5), dict(strides=2, padding="same")),
    "1x1-stride2-k2048-column-blocks": ((1, 3, 3, 2048), (1, 1, 2048, 40), dict(strides=2)),
}


@pytest.mark.parametrize("backend", CONV)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("case", list(CASES))
def test_conv2d_matches_naive(backend, rng, case, bias):
    x_shape, k_shape, kw = CASES[case]
    x, kernel, b = _weights(rng, x_shape, k_shape, bias)
    _check(backend, x, kernel, b, **kw)


@pytest.mark.parametrize("backend", CONV)
@pytest.mark.parametrize("dilation", [2**20, (2**20, 2**14), (2**14, 2**20)], ids=str)
def test_same_padding_with_a_dilation_far_larger_than_the_image(backend, dilation, rng):
    """Under "same" a dilation d pads by d on each side; only the centre tap meets the image.
    The NumPy path no longer builds the padded image (terabytes here: MemoryError)."""
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    got = run_on(backend, fl.conv2d, x, k, padding="same", dilation_rate=dilation)
    assert_close(got, x @ k[1, 1], k=3)  # the centre tap alone


@pytest.mark.parametrize("backend", CONV)
@pytest.mark.parametrize(
    "kw,out_hw",
    [({}, (3, 4)), (dict(padding="same"), (5, 6)), (dict(padding="same", strides=2), (3, 3))],
    ids=["valid", "same", "same-stride2"],
)
def test_conv2d_empty_batch(backend, kw, out_hw):
    y = run_on(
        backend, fl.conv2d, np.ones((0, 5, 6, 4)), np.ones((3, 3, 2, 6)), np.ones(6), groups=2, **kw
    )
    assert y.shape == (0, *out_hw, 6) and y.dtype == np.float32


@pytest.mark.parametrize("backend", CONV)
@pytest.mark.parametrize(
    "activation",
    [
        "relu",
        "relu6",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "gelu",
        "silu",
        "hard_silu",
        "elu",
        "softmax",
    ],
)
def test_conv2d_fused_activation(backend, rng, activation):
    x, kernel, bias = _weights(rng, (2, 6, 5, 4), (3, 3, 2, 6))
    _check(backend, x, kernel, bias, padding="same", groups=2, activation=activation)


@pytest.mark.parametrize("backend", CONV)
def test_conv2d_callable_activation(backend, rng):
    x, kernel, bias = _weights(rng, (1, 5, 5, 2), (3, 3, 2, 3))
    y = run_on(backend, fl.conv2d, x, kernel, bias, activation=np.abs)
    assert_close(
        y, np.abs(naive.conv2d(x, kernel, bias)), k=18, magnitude=_magnitude(x, kernel, bias)
    )


# ------------------------------------------------------------------ dtypes and strides


def _in_dtype(rng, shape, dtype):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype == np.int32:
        return rng.integers(-3, 4, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("backend", CONV)
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_conv2d_inputs_of_any_real_dtype_compute_in_float32(backend, rng, dtype):
    x = _in_dtype(rng, (2, 6, 5, 4), dtype)
    kernel = _in_dtype(rng, (3, 2, 2, 4), dtype)
    bias = _in_dtype(rng, (4,), dtype)
    kw = dict(padding="same", groups=2)
    y = run_on(backend, fl.conv2d, x, kernel, bias, **kw)
    assert y.dtype == np.float32
    f32 = [a.astype(np.float32) for a in (x, kernel, bias)]
    np.testing.assert_array_equal(y, run_on(backend, fl.conv2d, *f32, **kw))
    assert_close(y, naive.conv2d(x, kernel, bias, **kw), k=12, magnitude=_magnitude(*f32))


@pytest.mark.parametrize("backend", CONV)
def test_conv2d_non_contiguous_inputs(backend, rng):
    big_x = rng.standard_normal((4, 12, 10, 6)).astype(np.float32)
    big_k = rng.standard_normal((3, 3, 6, 8)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    cases = {
        "NCHW transposed to NHWC": (
            big_x.transpose(0, 2, 1, 3)[:, :, :, :3],
            big_k[:, :, :3],
            None,
        ),
        "[::2] slices": (big_x[::2, ::2, :, ::2], big_k[:, :, ::2, ::2], bias[::4]),
        "negative strides": (big_x[::-1, ::-1, :, ::-1], big_k[::-1, :, ::-1], bias[::-2]),
        "kernel transposed view": (big_x, big_k.transpose(1, 0, 2, 3), None),
    }
    for name, (x, kernel, b) in cases.items():
        assert not (x.flags.c_contiguous and kernel.flags.c_contiguous), name
        copies = [None if a is None else np.ascontiguousarray(a) for a in (x, kernel, b)]
        y = run_on(backend, fl.conv2d, x, kernel, b, padding="same")
        np.testing.assert_array_equal(y, run_on(backend, fl.conv2d, *copies, padding="same"), name)
        want = naive.conv2d(x, kernel, b, padding="same")
        kh, kw, cg, _ = kernel.shape
        assert_close(y, want, k=kh * kw * cg, magnitude=_magnitude(x, kernel, b), err_msg=name)


# ---------------------------------------------------------------------- NaN and Inf


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", CONV)
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_conv2d_nan_and_inf_stay_in_their_receptive_field(backend, rng, activation):
    # groups=2: channels 0-1 feed filters 0-2, channels 2-3 feed filters 3-5.
    x, kernel, bias = _weights(rng, (2, 7, 7, 4), (3, 3, 2, 6))
    x[1, 3, 4, 0] = np.nan
    x[0, 0, 0, 3] = np.inf
    kernel[:, :, 1, 3:] = np.abs(kernel[:, :, 1, 3:])  # channel 3 meets positive weights only
    y = run_on(backend, fl.conv2d, x, kernel, bias, padding="same", groups=2, activation=activation)
    want = naive.conv2d(x, kernel, bias, padding="same", groups=2, activation_name=activation)
    assert_close(y, want, k=18, magnitude=_magnitude(x[np.isfinite(x)], kernel, bias))
    nan_field = np.zeros(y.shape, bool)
    nan_field[1, 2:5, 3:6, :3] = True  # 3x3 neighbourhood, filters of group 0
    assert np.isnan(y[nan_field]).all()
    inf_field = np.zeros(y.shape, bool)
    inf_field[0, 0:2, 0:2, 3:] = True  # top-left corner, filters of group 1
    if activation == "sigmoid":
        assert (y[inf_field] == 1).all()
    else:
        assert (y[inf_field] == np.inf).all()
    assert np.isfinite(y[~(nan_field | inf_field)]).all()


# ------------------------------------------------------------------------ C++ vs NumPy


@pytest.mark.parametrize("backend", CONV)
def test_conv2d_larger_problem_agrees_with_numpy_and_naive(backend, rng):
    """C++ against NumPy on a size where the C++ path tiles its im2col; the result
    does not depend on the thread count. Checked against the naive reference too."""
    x, kernel, bias = _weights(rng, (2, 19, 17, 16), (3, 3, 16, 33))
    kw = dict(padding="same", strides=(2, 1), activation="relu")
    y = run_on(backend, fl.conv2d, x, kernel, bias, **kw)
    mag = _magnitude(x, kernel, bias)
    assert_close(y, run_on("numpy", fl.conv2d, x, kernel, bias, **kw), k=144, magnitude=mag)
    want = naive.conv2d(x, kernel, bias, padding="same", strides=(2, 1), activation_name="relu")
    assert_close(y, want, k=144, magnitude=mag)
    threads = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        one = run_on(backend, fl.conv2d, x, kernel, bias, **kw)
    finally:
        fl.set_num_threads(threads)
    np.testing.assert_array_equal(one, y)


# ---------------------------------------------------------------------- property test


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (1, 1)
    if strides == (1, 1):
        dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    if padding == "valid":
        assume((kh - 1) * dilation[0] + 1 <= h and (kw - 1) * dilation[1] + 1 <= w)
    return dict(
        x_shape=(draw(st.integers(0, 2)), h, w, groups * cg),
        k_shape=(kh, kw, cg, groups * fg),
        kw=dict(strides=strides, dilation_rate=dilation, padding=padding, groups=groups),
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@pytest.mark.parametrize("backend", CONV)
@settings(max_examples=50, deadline=None)
@given(p=conv_problems())
def test_conv2d_property_matches_naive(backend, p):
    x, kernel, bias = _weights(
        np.random.default_rng(p["seed"]), p["x_shape"], p["k_shape"], p["bias"]
    )
    _check(backend, x, kernel, bias, **p["kw"])


# ------------------------------------------------------------------------- bad inputs

X = np.ones((1, 5, 5, 4), np.float32)
KERNEL = np.ones((3, 3, 4, 6), np.float32)
BIAS = np.ones(6, np.float32)

BAD_CONV = [
    # (id, arguments replacing the good ones, exception, message fragment)
    ("x rank 3", dict(x=np.ones((5, 5, 4))), ValueError, "conv2d: x must have rank 4"),
    ("x rank 5", dict(x=np.ones((1, 1, 5, 5, 4))), ValueError, "conv2d: x must have rank 4"),
    (
        "kernel rank 3",
        dict(kernel=np.ones((3, 4, 6))),
        ValueError,
        "conv2d: kernel must have rank 4",
    ),
    (
        "kernel in-channels",
        dict(kernel=np.ones((3, 3, 3, 6))),
        ValueError,
        "conv2d: kernel has shape (3, 3, 3, 6), expected (3, 3, 4, 6)",
    ),
    (
        "kernel in-channels with groups",
        dict(groups=2),
        ValueError,
        "conv2d: kernel has shape (3, 3, 4, 6), expected (3, 3, 2, 6) "
        "for input channels 4 and groups 2",
    ),
    (
        "groups not dividing channels",
        dict(groups=3, kernel=np.ones((3, 3, 1, 6))),
        ValueError,
        "conv2d: input channels (4) and filters (6) must both be divisible by groups (3)",
    ),
    (
        "groups not dividing filters",
        dict(groups=4, kernel=np.ones((3, 3, 1, 6))),
        ValueError,
        "must both be divisible by groups (4)",
    ),
    ("groups 0", dict(groups=0), ValueError, "conv2d: groups must be >= 1"),
    ("groups float", dict(groups=2.0), TypeError, "conv2d: groups must be an int"),
    (
        "bias length",
        dict(bias=np.ones(4)),
        ValueError,
        "conv2d: bias has shape (4,), expected (6,)",
    ),
    ("bias rank 2", dict(bias=np.ones((1, 6))), ValueError, "conv2d: bias has shape (1, 6)"),
    ("strides 0", dict(strides=0), ValueError, "conv2d: strides must be >= 1, got 0"),
    ("strides -1", dict(strides=(1, -1)), ValueError, "conv2d: strides must be >= 1"),
    (
        "strides 3-tuple",
        dict(strides=(1, 1, 1)),
        ValueError,
        "conv2d: strides must be an int or a tuple of 2 ints",
    ),
    ("strides float", dict(strides=1.5), TypeError, "conv2d: strides must be an int or a tuple"),
    ("strides str", dict(strides="2"), TypeError, "conv2d: strides must be an int or a tuple"),
    ("dilation 0", dict(dilation_rate=0), ValueError, "conv2d: dilation_rate must be >= 1"),
    (
        "dilation 3-tuple",
        dict(dilation_rate=(2, 2, 2)),
        ValueError,
        "conv2d: dilation_rate must be an int or a tuple of 2 ints",
    ),
    (
        "stride 2 with dilation 2",
        dict(strides=2, dilation_rate=2, padding="same"),
        ValueError,
        "conv2d: strides > 1 together with dilation_rate > 1 is not allowed",
    ),
    (
        "stride (1,2) with dilation (2,1)",
        dict(strides=(1, 2), dilation_rate=(2, 1), padding="same"),
        ValueError,
        "conv2d: strides > 1 together with dilation_rate > 1",
    ),
    ("padding full", dict(padding="full"), ValueError, "conv2d: padding must be 'valid' or 'same'"),
    (
        "padding causal",
        dict(padding="causal"),
        ValueError,
        "conv2d: padding must be 'valid' or 'same'",
    ),
    ("padding int", dict(padding=1), TypeError, "conv2d: padding must be 'valid' or 'same'"),
    ("padding None", dict(padding=None), TypeError, "conv2d: padding must be 'valid' or 'same'"),
    (
        "input smaller than kernel",
        dict(x=np.ones((1, 2, 5, 4))),
        ValueError,
        "conv2d: with padding 'valid' the input (H, W) = (2, 5) is smaller than the dilated kernel",
    ),
    (
        "input smaller than dilated kernel",
        dict(dilation_rate=(1, 3)),
        ValueError,
        "conv2d: with padding 'valid' the input (H, W) = (5, 5) "
        "is smaller than the dilated kernel (3, 7)",
    ),
    (
        "x empty height",
        dict(x=np.ones((1, 0, 5, 4)), padding="same"),
        ValueError,
        "conv2d: x has an empty spatial or channel dimension",
    ),
    (
        "kernel no filters",
        dict(kernel=np.ones((3, 3, 4, 0)), bias=None),
        ValueError,
        "conv2d: kernel has an empty dimension",
    ),
    (
        "unknown activation",
        dict(activation="relu7"),
        ValueError,
        "conv2d: unknown activation 'relu7'",
    ),
    ("activation int", dict(activation=1), TypeError, "conv2d: activation must be a str"),
    ("x complex", dict(x=X.astype(complex)), TypeError, "conv2d: x must have a real"),
    (
        "kernel complex",
        dict(kernel=KERNEL.astype(np.complex64)),
        TypeError,
        "conv2d: kernel must have a real",
    ),
    ("bias complex", dict(bias=BIAS.astype(complex)), TypeError, "conv2d: bias must have a real"),
    (
        "x object",
        dict(x=X.astype(object)),
        TypeError,
        "conv2d: x must have a real (bool, int or float) dtype, got dtype object",
    ),
    (
        "kernel str array",
        dict(kernel=KERNEL.astype(str)),
        TypeError,
        "conv2d: kernel must have a real",
    ),
    ("x str", dict(x="image"), TypeError, "conv2d: x must be an array of real numbers, got str"),
    ("x None", dict(x=None), TypeError, "conv2d: x is required, got None"),
    ("kernel None", dict(kernel=None), TypeError, "conv2d: kernel is required, got None"),
]


@pytest.mark.parametrize(
    "bad,exc,fragment", [c[1:] for c in BAD_CONV], ids=[c[0] for c in BAD_CONV]
)
def test_conv2d_bad_inputs(any_backend, bad, exc, fragment):
    args = dict(x=X, kernel=KERNEL, bias=BIAS, activation="relu")
    args.update(bad)
    with pytest.raises(exc, match=re.escape(fragment)):
        fl.conv2d(**args)
