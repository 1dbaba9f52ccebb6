"""+-inf, NaN and huge values through every elementwise activation: both paths give the
same values, and at +-inf the mathematical limit (docs/semantics.md §15), where Keras's
formulas give NaN (-inf * 0, inf / inf) or overflow (squareplus). The sign of a zero result
is not compared across paths (gelu(-0) is -0 on one and +0 on the other); the limits from
below at -inf are checked to be -0 on each path."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl

VALUES = np.array([-np.inf, np.inf, np.nan, -1e30, 1e30, 0.0, -0.0, -3.0, 3.0, 0.5], np.float32)
ELEMENTWISE = [
    n for n in fl.activations.NAMES if n not in ("softmax", "log_softmax", "sparsemax", "glu")
]
LIMIT_AT_MINUS_INF = ["gelu", "silu", "swish", "mish", "hard_silu", "hard_swish"]


def _on(backend, name, x):
    with fl.use_backend(backend):
        return fl.layers.Activation(name)(x[None])[0]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_both_paths_agree_on_special_values(name):
    want = _on("numpy", name, VALUES)
    if NUMPY_ONLY or fl._backend._core is None:
        pytest.skip("the C++ path is not in this run")
    try:
        got = _on("cpp", name, VALUES)
    except NotImplementedError:
        pytest.skip(f"{name} has no C++ kernel")
    # atol: the C++ kernels flush results whose exponential factor is below FLT_MIN.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy"] + ([] if NUMPY_ONLY else ["cpp"]))
def test_limits_at_infinity(backend):
    for name in LIMIT_AT_MINUS_INF:
        y = _on(backend, name, np.array([-np.inf, np.inf], np.float32))
        assert y[0] == 0 and np.signbit(y[0]), (name, y)  # -0: the limit from below
        assert y[1] == np.inf, (name, y)
    np.testing.assert_array_equal(_on(backend, "softsign", VALUES[:2]), [-1.0, 1.0])
    big = np.float32([1e30])
    np.testing.assert_array_equal(_on(backend, "squareplus", big), big)
    np.testing.assert_array_equal(_on(backend, "sigmoid", VALUES[:2]), [0.0, 1.0])
    np.testing.assert_array_equal(_on(backend, "tanh", VALUES[:2]), [-1.0, 1.0])
    assert np.isnan(_on(backend, "silu", np.float32([np.nan]))[0])  # NaN stays NaN


def _scatter_transpose(x, k, s, padding):
    """conv_transpose as Keras computes it, in float64: each input pixel's products with each
    tap added into the output (no tap multiplies anything but an input pixel)."""
    n, h, w, _ = x.shape
    kh, kw, f, _ = k.shape
    full = np.zeros((n, (h - 1) * s + kh, (w - 1) * s + kw, f))
    with np.errstate(invalid="ignore"):
        for i in range(h):
            for j in range(w):
                for a in range(kh):
                    for b in range(kw):
                        full[:, i * s + a, j * s + b] += x[:, i, j].astype(float) @ k[a, b].T
    if padding == "valid":
        return full
    top, left = max(kh - s, 0) // 2, max(kw - s, 0) // 2
    return full[:, top:top + h * s, left:left + w * s]


@pytest.mark.parametrize("backend", ["numpy"] + ([] if NUMPY_ONLY else ["cpp"]))
@pytest.mark.parametrize("special", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_transposed_conv_with_a_non_finite_tap(backend, special, padding):
    """An inf or NaN kernel tap reaches the outputs it touches and no others, as in Keras:
    the C++ path's phase convolutions multiplied the zeros past the input's edges by it and
    gave NaN at 3-5 of 36 outputs where Keras has a number (robustness audit, session 37)."""
    rng = np.random.default_rng(0)
    x = (np.abs(rng.standard_normal((2, 3, 4, 2))) + 0.1).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    k[2, 1, 0, 1] = special
    want = _scatter_transpose(x, k, 2, padding)
    with fl.use_backend(backend), np.errstate(invalid="ignore"):
        got = fl.conv2d_transpose(x, k, strides=2, padding=padding)
        layer = fl.layers.Conv2DTranspose(3, 3, strides=2, padding=padding, use_bias=False)
        layer.build(x.shape)
        layer.set_weights([k])
        from_layer = layer(x)
    for y in (got, from_layer):
        assert y.shape == want.shape
        np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)  # (equal_nan by default)
    # the 1-D layer (a height of 1) and the 3-D one (a depth of 1: one 2-D transposed conv)
    with fl.use_backend(backend), np.errstate(invalid="ignore"):
        one = fl.layers.Conv1DTranspose(3, 3, strides=2, padding=padding, use_bias=False)
        one.build((None, 4, 2))
        one.set_weights([k[1]])
        three = fl.layers.Conv3DTranspose(3, (1, 3, 3), strides=(1, 2, 2), padding=padding,
                                          use_bias=False)
        three.build((None, 1, 3, 4, 2))
        three.set_weights([k[None]])
        y1, y3 = one(x[:, 0]), three(x[:, None])[:, 0]
    want1 = _scatter_transpose(x[:, :1], k[1:2], 2, padding)[:, 0]
    if padding == "same":
        want1 = _scatter_transpose(x[:, :1], k[1:2], 2, "valid")[:, 0, :8]
    np.testing.assert_array_equal(np.isnan(y1), np.isnan(want1))
    np.testing.assert_allclose(y1, want1, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.isnan(y3), np.isnan(want))
    np.testing.assert_allclose(y3, want, rtol=1e-5, atol=1e-5)
