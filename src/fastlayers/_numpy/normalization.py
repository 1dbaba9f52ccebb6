"""NumPy reference of the normalization layers and the parameterized activation layers:
BatchNormalization, LayerNormalization, GroupNormalization, RMSNormalization,
UnitNormalization, Rescaling, Normalization, ReLU, LeakyReLU, PReLU, ELU. Each function
takes checked float32 arrays and returns float32 arrays of the shape of ``x``; the
formulas are Keras 3's (docs/semantics.md §23).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A vector v reshaped to broadcast along ``axis`` of an array of rank ``ndim``."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def batch_norm_affine(mean, variance, gamma, beta, epsilon):
    """BatchNormalization at inference as a per-channel affine map ``x * scale + shift``.

    ``scale = gamma / sqrt(variance + epsilon)`` and ``shift = beta - mean * scale``
    (gamma 1 and beta 0 when absent), in float32 as Keras computes them
    (keras.ops.batch_normalization). Returns (scale, shift), each (C,) float32.
    """
    inv = (F32(1.0) / np.sqrt(variance + F32(epsilon))).astype(F32)
    scale = inv if gamma is None else inv * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    return scale.astype(F32), shift.astype(F32)


def affine(x, scale, shift, axis):
    """``x * scale + shift`` with scale and shift (C,) along ``axis`` of x."""
    s = _along(scale, axis, x.ndim)
    b = _along(shift, axis, x.ndim)
    return (x * s + b).astype(F32, copy=False)


def layer_normalization(x, gamma, beta, axes, epsilon):
    """Keras LayerNormalization (rms_scaling=False) over the sorted ``axes`` of x.

    The mean and the biased variance ``mean((x - mean)^2)`` over ``axes`` (the two-pass form),
    then ``(x - mean) * (gamma / sqrt(variance + epsilon)) + beta``; gamma and beta have the
    shape of x over ``axes`` (None: 1 and 0). The statistics are summed in float64 and
    ``x - mean`` is rounded once (:func:`_centered`), so a large offset or a long row costs
    no accuracy; the output is computed in float32. Quiet, as the C++ path is, where a constant
    row with epsilon 0 divides by zero and a row with inf makes NaN.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _layer_normalization(x, gamma, beta, tuple(axes), epsilon)


def _layer_normalization(x, gamma, beta, axes, epsilon):
    centered = _centered(x, np.mean(x, axis=axes, keepdims=True, dtype=np.float64))
    variance = np.mean(np.square(centered, dtype=np.float64), axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(variance + float(epsilon))
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    y = _scale_centered(centered, inv, None if gamma is None else gamma.reshape(shape))
    if beta is not None:
        y = y + beta.reshape(shape)
    return y.astype(F32, copy=False)


def _scale_centered(centered, inv, gamma):
    """``centered * (inv * gamma)`` in float32, the float64 ``inv`` (1 / the standard
    deviation, broadcasting against ``gamma``; gamma None: 1) rounded to float32 first, as the
    C++ kernels compute it. Where that factor is below the smallest normal float32 (deviations
    beyond ~1e38, or near 1e36 with a gamma of 1e-4) it would keep only some of its digits, or
    underflow to 0 and give beta (gamma 1e-30), so those elements multiply in float64, as the
    C++ path does for their row."""
    factor = inv.astype(F32) if gamma is None else inv.astype(F32) * gamma
    y = centered * factor
    smallest = np.finfo(F32).tiny
    g = None if gamma is None else np.abs(gamma)
    # (NaN, in a row or in gamma, is left out of the bound: it must not hide another row)
    bound = np.min(inv, initial=np.inf, where=~np.isnan(inv)) * (
        1.0 if g is None else np.min(g, initial=np.inf, where=(g != 0) & ~np.isnan(g)))
    if not bound < smallest:  # (the common case: no factor can be that small)
        return y
    wide = inv if gamma is None else inv * gamma.astype(np.float64)
    tiny = (np.abs(wide) < smallest) & (wide != 0)
    return np.where(tiny, (centered.astype(np.float64) * wide).astype(F32), y)


def _centered(x, mean):
    """``x - mean`` in float32 for a float64 mean, rounded once: the mean as two floats,
    ``hi`` (its float32 rounding) and ``lo`` (the rest), and ``(x - hi) - lo``. ``x - hi`` is
    exact where x is within a factor 2 of hi, so with a large offset (1e4 over a spread of
    0.01) the result is not shifted by the float32 rounding of the mean (up to 5 % of the
    spread there). The C++ kernels compute the same expression."""
    hi = mean.astype(F32)
    lo = (mean - hi).astype(F32)
    return (x - hi) - lo


def layer_normalization_rms_scaling(x, gamma, axes, epsilon):
    """Keras LayerNormalization(rms_scaling=True) over the sorted ``axes`` of x (deprecated in
    Keras, kept for the models saved with it).

    Despite the name it divides by the standard deviation, not the root mean square, and does
    not center: the biased variance over ``axes`` (two passes, in float32), then
    ``x * (1 / sqrt(variance + epsilon)) * gamma`` in Keras's order; gamma has the shape of x
    over ``axes`` (None: 1).
    """
    axes = tuple(axes)
    mean = np.mean(x, axis=axes, keepdims=True, dtype=F32)
    variance = np.mean(np.square(x - mean), axis=axes, keepdims=True, dtype=F32)
    y = x * (F32(1.0) / np.sqrt(variance + F32(epsilon)))
    if gamma is not None:
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        y = y * gamma.reshape(shape)
    return y.astype(F32, copy=False)


def group_normalization(x, gamma, beta, groups, axis, epsilon):
    """Keras GroupNormalization: the C channels on ``axis`` (not the batch axis) in ``groups``
    groups of C / groups consecutive channels; per sample and group, the mean and the biased
    variance over the group's channels and every other non-batch axis (two passes, the sums
    accumulated in float64), then ``(x - mean) * (gamma / sqrt(variance + epsilon)) + beta``
    per channel (gamma, beta (C,) or None: 1 and 0), in float32.

    The sums run over the pixels first, one channel per column (contiguous rows of C values),
    then over each group's channels: a strided reduction over (pixels, channels of a group)
    at once was 30-60x slower than PyTorch's GroupNorm. Quiet, as layer_normalization."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _group_normalization(x, gamma, beta, groups, axis, epsilon)


def _group_normalization(x, gamma, beta, groups, axis, epsilon):
    xl = np.moveaxis(x, axis, -1)
    n, c = xl.shape[0], xl.shape[-1]
    size = c // groups
    rows = xl.reshape(n, -1, c)  # (N, pixels, C); a copy only when axis was not last
    count = rows.shape[1] * size

    def group_mean(per_channel):  # (N, C) sums -> (N, C): the mean of each channel's group
        means = per_channel.reshape(n, groups, size).sum(axis=2) / count
        return np.repeat(means, size, axis=1)

    centered = _centered(rows, group_mean(rows.sum(axis=1, dtype=np.float64))[:, None, :])
    variance = group_mean(np.square(centered, dtype=np.float64).sum(axis=1))
    inv = 1.0 / np.sqrt(variance + float(epsilon))  # (N, C)
    y = _scale_centered(centered, inv[:, None, :], gamma)
    if beta is not None:
        y += beta
    return np.ascontiguousarray(np.moveaxis(y.reshape(xl.shape), -1, axis))


def relu_activation_name(negative_slope=0.0, max_value=None, threshold=0.0):
    """The Keras activation that ``relu`` at these parameters is, where there is one
    ("relu", "relu6", "leaky_relu": the C++ kernels run those), else None."""
    if threshold == 0.0 and negative_slope == 0.0:
        if max_value is None:
            return "relu"
        if max_value == 6.0:
            return "relu6"
    if threshold == 0.0 and max_value is None and negative_slope == 0.2:
        return "leaky_relu"
    return None


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras ``activations.relu`` with its three parameters (the ReLU layer).

    ``y = clip(x if x > threshold else 0, 0, max_value) - negative_slope * relu(threshold - x)``;
    with negative_slope != 0, max_value None and threshold 0 it is leaky_relu. Without a
    threshold the first term is relu(x) (NaN stays NaN).
    """
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return leaky_relu(x, negative_slope)
    if threshold != 0.0:
        y = np.where(x > F32(threshold), x, F32(0.0))
    else:
        y = np.maximum(x, F32(0.0))
    if max_value is not None:
        y = np.clip(y, F32(0.0), F32(max_value))
    if negative_slope != 0.0:
        neg = np.maximum(-x + F32(threshold), F32(0.0))
        y = y - F32(negative_slope) * neg
    return np.asarray(y, dtype=F32)


def leaky_relu(x, negative_slope):
    """``x`` where x >= 0, else ``negative_slope * x`` (torch's leaky_relu, Keras's)."""
    return np.where(x >= 0, x, F32(negative_slope) * x).astype(F32, copy=False)


def elu(x, alpha):
    """``x`` where x > 0, else ``alpha * (exp(x) - 1)`` (expm1)."""
    with np.errstate(over="ignore"):
        neg = F32(alpha) * np.expm1(np.minimum(x, F32(0.0)))
    return np.where(x > 0, x, neg).astype(F32, copy=False)


def prelu(x, alpha):
    """Keras PReLU: ``relu(x) - alpha * relu(-x)``, alpha broadcast over x[1:]."""
    return (np.maximum(x, F32(0.0)) - alpha * np.maximum(-x, F32(0.0))).astype(F32, copy=False)


def rescaling(x, scale, offset):
    """Keras Rescaling: ``x * scale + offset`` (scale and offset broadcast on the right)."""
    return (x * scale + offset).astype(F32, copy=False)


KERAS_EPSILON = F32(1e-7)  # keras.backend.epsilon(), the floor of Normalization's std


def normalization(x, mean, variance, invert):
    """Keras Normalization: ``(x - mean) / max(sqrt(variance), 1e-7)``, or with invert
    ``mean + x * max(sqrt(variance), 1e-7)``; mean and variance broadcast to x."""
    std = np.maximum(np.sqrt(variance), KERAS_EPSILON)
    y = mean + x * std if invert else (x - mean) / std
    return y.astype(F32, copy=False)


def rms_normalization(x, scale, axes, epsilon):
    """Keras RMSNormalization over ``axes`` of x: ``x * rsqrt(mean(x^2) + epsilon) * scale``.

    The mean of the squares is summed in float64 (float32 squares overflow above ~1.8e19
    and lose digits in long rows), its ``1 / sqrt(mean + epsilon)`` rounded to float32
    once; then the two float32 products in Keras's order. ``scale`` has the shape of x
    over ``axes`` (None: no scaling).
    """
    axes = tuple(axes)
    if x.size == 0:
        return np.zeros(x.shape, F32)
    mean_sq = np.mean(np.square(x, dtype=np.float64), axis=axes, keepdims=True)
    # epsilon 0: a zero row gives 0 * inf = NaN and a tiny one a factor beyond float32
    # (inf), as in Keras; no warnings.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = _times_factor(x, 1.0 / np.sqrt(mean_sq + float(F32(epsilon))))
    if scale is not None:
        shape = [1] * x.ndim
        for a, d in zip(sorted(axes), scale.shape):
            shape[a] = d
        y = y * scale.reshape(shape)
    return y.astype(F32, copy=False)


def _times_factor(x, inv):
    """x times its vector's float64 factor ``inv`` (x's shape with the normalized axes kept
    as 1): the factor rounded to float32, then one float32 product; vectors whose factor is
    below the smallest normal float32 (a norm, or a root mean square, above ~8.5e37)
    multiply in float64, as the C++ path does (a denormal factor would be flushed to zero
    there)."""
    small = ~(inv >= np.finfo(F32).tiny)  # NaN factors too: NaN either way
    y = (x * inv.astype(F32)).astype(F32, copy=False)
    if np.any(small):
        exact = (x.astype(np.float64) * inv).astype(F32)
        y = np.where(small, exact, y)
    return y


def unit_normalization(x, axes, bound=1e12):
    """Keras UnitNormalization: ``x * min(rsqrt(sum(x^2)), 1e12)`` over ``axes`` (a zero
    vector stays zero); with ``bound = 1 / epsilon``, Keras's ``ops.normalize`` of order 2.
    The sum of squares in float64, the factor rounded to float32 once."""
    sum_sq = np.sum(np.square(x, dtype=np.float64), axis=tuple(axes), keepdims=True)
    # A zero vector: 1/0 = inf, then the bound; an infinite element: inf * 0 = NaN, as in
    # Keras; no warnings.
    with np.errstate(divide="ignore", invalid="ignore"):
        return _times_factor(x, np.minimum(1.0 / np.sqrt(sum_sq), bound))
