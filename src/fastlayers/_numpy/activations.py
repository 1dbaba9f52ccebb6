"""Keras 3 activations in NumPy (docs/semantics.md §2), computed in float32.

Each function takes a float32 array and returns a float32 array of the same
shape. The string names are Keras's; a string always means the function's
default parameters (e.g. ``leaky_relu`` has slope 0.2, ``gelu`` is the exact
erf form).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

F32 = np.float32


def linear(x):
    return x


def relu(x):
    return np.maximum(x, F32(0))


def relu6(x):
    return np.minimum(np.maximum(x, F32(0)), F32(6))


def leaky_relu(x):
    # The string "leaky_relu" means negative_slope=0.2 (the LeakyReLU layer defaults to 0.3).
    return np.where(x >= 0, x, F32(0.2) * x).astype(F32)


def sigmoid(x):
    # exp(-|x|) never overflows; reflect for negative x.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, F32(1) / (F32(1) + e), e / (F32(1) + e)).astype(F32)


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    if x.size and not np.isfinite(x).all():  # the ±inf/NaN policy (docs/semantics.md §15)
        from .attention import _policy_softmax

        return np.moveaxis(_policy_softmax(np.moveaxis(x, axis, -1), None), -1, axis)
    # initial=-inf: an empty axis gives an empty result instead of a reduction error.
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # the sum is >= 1 unless the axis is empty
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _erfc(z):
    """Complementary error function with relative error below 1.2e-7 for all z.

    The Chebyshev-fitted form exp(-z^2 + P(t)) * t, t = 1/(1 + |z|/2) (Numerical
    Recipes' erfcc coefficients), evaluated in float64. NumPy has no erf of its
    own and the runtime dependency is numpy only.
    """
    z = np.asarray(z, dtype=np.float64)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (
                        0.27886807
                        + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                    )
                )
            )
        )
    )
    r = t * np.exp(-a * a + poly)
    return np.where(z >= 0, r, 2.0 - r)


def erf(x):
    """The error function in float32: 1 - erfc(x), but for |x| < 0.5 its Maclaurin series
    2/sqrt(pi) (x - x^3/3 + x^5/10 - ...) in float64 (12 terms: relative error below 1e-15
    there), where 1 - erfc(x) cancels (erf(1e-6) was 2.7 % off, erf(0) -3e-8)."""
    z = np.asarray(x, dtype=np.float64)
    out = 1.0 - _erfc(z)
    small = np.abs(z) < 0.5
    if np.any(small):
        zs = np.where(small, z, 0.0)
        z2 = zs * zs
        term, total = zs, zs
        for n in range(1, 12):  # term_n = (-1)^n z^(2n+1) / (n! (2n+1))
            term = term * (-z2) / n
            total = total + term / (2 * n + 1)
        # (copysign: erf(-0) is -0, which the sum of -0 and +0 terms loses)
        out = np.where(small, np.copysign(total * (2.0 / np.sqrt(np.pi)), z), out)
    return out.astype(F32)


def _limits_at_inf(fn):
    """For a function whose formula meets -inf * 0, inf / inf or inf - inf at +-inf and then
    puts the limit in its place: NumPy's "invalid value" warning for that intermediate NaN
    is not the caller's concern."""

    @functools.wraps(fn)
    def quiet(x, *args):
        with np.errstate(invalid="ignore"):
            return fn(x, *args)

    return quiet


def _minus_zero_at_minus_inf(x, y):
    """y with its limit at x = -inf, -0, where the formula multiplies -inf by 0 (NaN): the
    functions x * g(x) with g(-inf) = 0 (docs/semantics.md §15; Keras gives NaN there)."""
    return np.where(x == -np.inf, F32(-0.0), y).astype(F32)


@_limits_at_inf
def gelu(x):
    # Exact form 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2); the erfc form
    # keeps relative accuracy for large negative x.
    return _minus_zero_at_minus_inf(x, 0.5 * x * _erfc(-np.asarray(x, np.float64) / np.sqrt(2.0)))


@_limits_at_inf
def gelu_tanh(x):
    # The tanh approximation (keras.ops.gelu's default, approximate=True):
    # 0.5 x (1 + tanh(z)), z = sqrt(2/pi) (x + 0.044715 x^3), written x / (1 + exp(-2z)) (the
    # same function) in float64: 1 + tanh(z) cancels for x << 0 (x = -5.42 gave -1.6e-7 for
    # -1.1e-8).
    x64 = np.asarray(x, np.float64)
    z = np.sqrt(2.0 / np.pi) * (x64 + 0.044715 * x64**3)
    with np.errstate(over="ignore"):  # exp(-2z) = inf for x << 0: the limit, -0
        y = x64 / (1.0 + np.exp(-2.0 * z))
    return _minus_zero_at_minus_inf(x, y)


@_limits_at_inf
def silu(x):
    return _minus_zero_at_minus_inf(x, x * sigmoid(x))


def elu(x, alpha=1.0):
    return np.where(x >= 0, x, F32(alpha) * np.expm1(np.minimum(x, F32(0)))).astype(F32)


_SELU_ALPHA = 1.6732632423543772848
_SELU_SCALE = 1.0507009873554804934


def selu(x):
    return (F32(_SELU_SCALE) * elu(x, _SELU_ALPHA)).astype(F32)


def softplus(x):
    return np.logaddexp(x, F32(0)).astype(F32)


@_limits_at_inf
def softsign(x):
    # inf / inf at +-inf: the limit there is +-1.
    return np.where(np.isinf(x), np.sign(x), x / (F32(1) + np.abs(x))).astype(F32)


def hard_sigmoid(x):
    # Keras 3: clip(x/6 + 0.5, 0, 1) (tf.keras 2 used 0.2 x + 0.5), computed as (x + 3) / 6:
    # x + 3 is exact near -3, where x/6 + 0.5 cancels (2.8e6 float32 steps off there).
    return np.clip((x + F32(3)) / F32(6), F32(0), F32(1)).astype(F32)


@_limits_at_inf
def hard_silu(x):
    return _minus_zero_at_minus_inf(x, x * hard_sigmoid(x))


@_limits_at_inf
def mish(x):
    return _minus_zero_at_minus_inf(x, x * np.tanh(softplus(x)))


def exponential(x):
    return np.exp(x)


def celu(x, alpha=1.0):
    a = F32(alpha)
    return (np.maximum(x, F32(0)) + a * np.expm1(np.minimum(x, F32(0)) / a)).astype(F32)


def log_sigmoid(x):
    return (-softplus(-x)).astype(F32)


def tanh_shrink(x):
    # x - tanh(x) in float64; below |x| = 0.01 by its Taylor series x^3/3 - 2x^5/15 +
    # 17x^7/315 (relative error < 1e-14), where the difference cancels (tanh_shrink(1e-4)
    # was 0 in float32 for 3.3e-13).
    x64 = np.asarray(x, np.float64)
    small = np.abs(x64) < 0.01
    xs = np.where(small, x64, 0.0)  # (the series of the large x is not used: not computed)
    series = xs**3 / 3.0 - 2.0 * xs**5 / 15.0 + 17.0 * xs**7 / 315.0
    return np.where(small, series, x64 - np.tanh(x64)).astype(F32)


def hard_tanh(x):
    return np.clip(x, F32(-1), F32(1)).astype(F32)


def soft_shrink(x, threshold=0.5):
    # x - clip(x) is x - t above t, x + t below -t, 0 in between, and NaN for NaN.
    t = F32(threshold)
    return (x - np.clip(x, -t, t)).astype(F32)


def hard_shrink(x, threshold=0.5):
    # Written so that NaN (which fails every comparison) passes through.
    return np.where(np.abs(x) <= F32(threshold), F32(0), x).astype(F32)


def sparse_plus(x):
    # 0 for x <= -1, x for x >= 1, (x + 1)^2 / 4 in between.
    mid = F32(0.25) * (x + F32(1)) ** 2
    return np.where(x <= -1, F32(0), np.where(x >= 1, x, mid)).astype(F32)


@_limits_at_inf
def squareplus(x, b=4.0):
    # (x + s) / 2 with s = sqrt(x^2 + b) cancels for x << 0; there use the equal
    # b / (2 (s - x)) = b / (2 (s + |x|)), which does not.
    # In float64, so that x * x does not overflow for |x| > 1.8e19 (squareplus(1e30) = 1e30).
    x64 = np.asarray(x, np.float64)
    s = np.sqrt(x64 * x64 + b)
    return np.where(x64 >= 0, (x64 + s) / 2, b / (2 * (s + np.abs(x64)))).astype(F32)


def sparse_sigmoid(x):
    return np.clip(F32(0.5) * (x + F32(1)), F32(0), F32(1)).astype(F32)


def sparsemax(x, axis=-1):
    """Euclidean projection onto the simplex along ``axis`` (Martins & Astudillo 2016)."""
    if x.shape[axis] == 0:
        return x.copy()
    # Shifted by the row's max (the projection does not change): without it the support test
    # below lost every element of [1e8, 1e8 + 16] and overflowed on [1e30, -1e30].
    x = np.moveaxis(x, axis, -1)
    with np.errstate(invalid="ignore"):  # a row with +inf: inf - inf, NaN as before
        x = (x - np.max(x, axis=-1, keepdims=True)).astype(F32)
    z = -np.sort(-x, axis=-1)  # descending
    k = np.arange(1, x.shape[-1] + 1, dtype=F32)
    cumsum = np.cumsum(z, axis=-1)
    support = (F32(1) + k * z) > cumsum
    k_z = np.sum(support, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumsum, k_z - 1, axis=-1) - F32(1)) / k_z.astype(F32)
    return np.moveaxis(np.maximum(x - tau, F32(0)).astype(F32), -1, axis)


def glu(x, axis=-1):
    """Gated linear unit: split ``axis`` in two halves a, b and return a * sigmoid(b)."""
    if x.shape[axis] % 2:  # also reached as the activation of a layer (Dense units, filters)
        raise ValueError(
            f"the glu activation needs an even size on axis {axis}, got shape {x.shape}"
        )
    a, b = np.split(x, 2, axis=axis)
    return (a * sigmoid(b)).astype(F32)


# Keras name -> function. Elementwise ones first; softmax, log_softmax, sparsemax and
# glu act along the last axis.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": linear,
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "gelu": gelu,
    "silu": silu,
    "swish": silu,
    "elu": elu,
    "selu": selu,
    "softplus": softplus,
    "softsign": softsign,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
    "mish": mish,
    "exponential": exponential,
    "celu": celu,
    "log_sigmoid": log_sigmoid,
    "tanh_shrink": tanh_shrink,
    "hard_tanh": hard_tanh,
    "soft_shrink": soft_shrink,
    "hard_shrink": hard_shrink,
    "sparse_plus": sparse_plus,
    "squareplus": squareplus,
    "sparse_sigmoid": sparse_sigmoid,
    "sparsemax": sparsemax,
    "glu": glu,
}

# Activations that mix values along the last axis (not elementwise).
ROW_ACTIVATIONS = frozenset({"softmax", "log_softmax", "sparsemax", "glu"})


def apply(name, x):
    """Apply a validated activation (a Keras name or a callable) to a float32 array."""
    if callable(name):
        out = name(x)
        try:
            y = np.asarray(out, dtype=F32)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"activation {getattr(name, '__name__', name)!r} returned "
                f"{type(out).__name__}, not an array of numbers ({e})"
            ) from None
        if y.shape != x.shape:  # NumPy would broadcast it silently into what follows
            raise ValueError(
                f"activation {getattr(name, '__name__', name)!r} returned shape {y.shape} for "
                f"an input of shape {x.shape}; a callable activation must keep the shape"
            )
        return y
    return np.asarray(ACTIVATIONS[name](x), dtype=F32)
