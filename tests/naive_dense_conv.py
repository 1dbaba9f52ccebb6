"""Float64 naive references for dense, flatten, the activations and conv2d.

Written to be obviously right rather than fast, and deliberately unlike
fastlayers/_numpy: Python loops over output positions, the ``math`` module per
element, explicit bounds checks instead of a padded copy, a bisection for
sparsemax. Every function takes the float32 values the ops compute on (inputs are
rounded to float32 first, as the ops do) and returns a float64 array.

Semantics: Keras 3 (docs/semantics.md §2-§5). NaN in gives NaN out for every
elementwise activation (``_nan_in_nan_out``), as IEEE arithmetic propagates it.
"""

from __future__ import annotations

import math

import numpy as np

NAN = float("nan")
SELU_ALPHA = 1.6732632423543772848
SELU_SCALE = 1.0507009873554804934


def as_f32_values(a) -> np.ndarray:
    """The float32 values an op computes on, held in float64."""
    return np.asarray(a).astype(np.float32).astype(np.float64)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---------------------------------------------------------------- activations, scalar


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _sigmoid(v: float) -> float:
    # exp of a non-positive number never overflows.
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _softplus(v: float) -> float:
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def _hard_sigmoid(v: float) -> float:
    return min(max(v / 6.0 + 0.5, 0.0), 1.0)


def _tanh_shrink(v: float) -> float:
    # x - tanh(x); for |x| < 0.01 its Taylor series, where the difference cancels
    if abs(v) < 0.01:
        return v**3 / 3.0 - 2.0 * v**5 / 15.0 + 17.0 * v**7 / 315.0
    return v - math.tanh(v)


def _squareplus(v: float, b: float = 4.0) -> float:
    # (x + sqrt(x^2 + b)) / 2, written as b / (2 (sqrt(x^2 + b) - x)) for x < 0 so
    # that the reference itself does not cancel.
    s = math.sqrt(v * v + b) if abs(v) < 1e150 else abs(v)
    return (v + s) / 2.0 if v >= 0 else b / (2.0 * (s - v))


SCALAR = {
    "linear": lambda v: v,
    "relu": lambda v: v if v > 0 else 0.0,
    "relu6": lambda v: min(v if v > 0 else 0.0, 6.0),
    "leaky_relu": lambda v: v if v >= 0 else 0.2 * v,
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    # Exact GELU, 0.5 x (1 + erf(x / sqrt 2)); erfc keeps it accurate for x << 0.
    "gelu": lambda v: 0.5 * v * math.erfc(-v / math.sqrt(2.0)),
    # 0.5 x (1 + tanh z) = x sigmoid(2z): the sigmoid form does not cancel for x << 0
    "gelu_tanh": lambda v: v * _sigmoid(2.0 * math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)),
    "silu": lambda v: v * _sigmoid(v),
    "elu": lambda v: v if v >= 0 else math.expm1(v),
    "selu": lambda v: SELU_SCALE * (v if v >= 0 else SELU_ALPHA * math.expm1(v)),
    "softplus": _softplus,
    "softsign": lambda v: v / (1.0 + abs(v)),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda v: v * _hard_sigmoid(v),
    "mish": lambda v: v * math.tanh(_softplus(v)),
    "exponential": _exp,
    "celu": lambda v: max(v, 0.0) + math.expm1(min(v, 0.0)),
    "log_sigmoid": lambda v: -_softplus(-v),
    "tanh_shrink": lambda v: _tanh_shrink(v),
    "hard_tanh": lambda v: min(max(v, -1.0), 1.0),
    "soft_shrink": lambda v: v - 0.5 if v > 0.5 else (v + 0.5 if v < -0.5 else 0.0),
    "hard_shrink": lambda v: v if abs(v) > 0.5 else 0.0,
    "sparse_plus": lambda v: 0.0 if v <= -1 else (v if v >= 1 else (v + 1.0) ** 2 / 4.0),
    "squareplus": _squareplus,
    "sparse_sigmoid": lambda v: min(max(0.5 * (v + 1.0), 0.0), 1.0),
}
SCALAR["swish"] = SCALAR["silu"]
SCALAR["hard_swish"] = SCALAR["hard_silu"]


def _nan_in_nan_out(fn):
    return lambda v: NAN if math.isnan(v) else fn(v)


def elementwise(name: str, x) -> np.ndarray:
    """Apply the elementwise activation ``name`` to every element, one at a time."""
    fn = _nan_in_nan_out(SCALAR[name])
    x = as_f32_values(x)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        out[idx] = fn(float(x[idx]))
    return out


# ------------------------------------------------------------- activations, along axis


def _softmax_1d(row):
    m = max(row) if not any(math.isnan(v) for v in row) else NAN
    if math.isinf(m):  # docs/semantics.md §15: the entries at m = +-inf share the weight
        hits = [1.0 if v == m else 0.0 for v in row]
        return [h / sum(hits) for h in hits]
    e = [math.exp(v - m) for v in row]
    s = math.fsum(e)
    return [v / s for v in e]


def _log_softmax_1d(row):
    m = max(row) if not any(math.isnan(v) for v in row) else NAN
    lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def _sparsemax_1d(row):
    # The threshold tau solves sum(max(z - tau, 0)) = 1; bisect for it, then make it
    # exact on the support found.
    lo, hi = max(row) - 1.0, max(row)
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if math.fsum(max(v - mid, 0.0) for v in row) > 1.0:
            lo = mid
        else:
            hi = mid
    support = [v for v in row if v > lo]
    tau = (math.fsum(support) - 1.0) / len(support)
    return [max(v - tau, 0.0) for v in row]


def _glu_1d(row):
    half = len(row) // 2
    return [a * _sigmoid(b) for a, b in zip(row[:half], row[half:])]


ROW = {
    "softmax": _softmax_1d,
    "log_softmax": _log_softmax_1d,
    "sparsemax": _sparsemax_1d,
    "glu": _glu_1d,
}


def along_axis(name: str, x, axis: int = -1) -> np.ndarray:
    """Apply the row activation ``name`` to every 1-D slice along ``axis``."""
    x = np.moveaxis(as_f32_values(x), axis, -1)
    fn = ROW[name]
    n_out = x.shape[-1] // 2 if name == "glu" else x.shape[-1]
    out = np.empty(x.shape[:-1] + (n_out,))
    for idx in np.ndindex(x.shape[:-1]):
        row = [float(v) for v in x[idx]]
        out[idx] = fn(row) if row else []
    return np.moveaxis(out, -1, axis)


def activation(name, y) -> np.ndarray:
    """A Keras activation name or None, applied the way dense/conv2d apply it."""
    if name is None:
        return as_f32_values(y)
    if name in ROW:
        return along_axis(name, y, -1)
    return elementwise(name, y)


# ---------------------------------------------------------------------- dense, flatten


def dense(x, kernel, bias=None, activation_name=None) -> np.ndarray:
    """y[..., u] = act(sum_k x[..., k] kernel[k, u] + bias[u]), one output at a time."""
    x = as_f32_values(x)
    kernel = as_f32_values(kernel)
    k, units = kernel.shape
    assert x.shape[-1] == k
    b = np.zeros(units) if bias is None else as_f32_values(bias)
    out = np.empty(x.shape[:-1] + (units,))
    for idx in np.ndindex(x.shape[:-1]):
        for u in range(units):
            out[idx + (u,)] = float(np.dot(x[idx], kernel[:, u])) + b[u]
    return activation(activation_name, out)


def flatten(x) -> np.ndarray:
    """(B, d1, ..., dn) -> (B, d1*...*dn), filled in row-major order; (B,) -> (B, 1)."""
    x = as_f32_values(x)
    inner = x.shape[1:]
    out = np.empty((x.shape[0], math.prod(inner)))
    for b in range(x.shape[0]):
        for pos, idx in enumerate(np.ndindex(inner)):
            out[b, pos] = x[(b,) + idx]
    return out


# ---------------------------------------------------------------------------- conv2d


def same_padding(n: int, k: int, s: int, d: int):
    """(out, before, after) of Keras/TensorFlow "same" padding along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return out, total // 2, total - total // 2


def conv2d(
    x,
    kernel,
    bias=None,
    strides=1,
    padding="valid",
    dilation_rate=1,
    groups=1,
    activation_name=None,
) -> np.ndarray:
    """NHWC convolution, one output pixel and group at a time (docs/semantics.md §5).

    y[n, i, j, g*fg + f] = bias + sum over taps (a, b) inside the image and channels
    c < cg of x[n, i*sh + a*dh - top, j*sw + b*dw - left, g*cg + c] * K[a, b, c, g*fg + f].
    Taps that fall in the zero padding are skipped.
    """
    x = as_f32_values(x)
    kernel = as_f32_values(kernel)
    n, h, w, c = x.shape
    kh, kw, cg, f = kernel.shape
    sh, sw = pair(strides)
    dh, dw = pair(dilation_rate)
    assert c == cg * groups and f % groups == 0
    fg = f // groups
    if padding.lower() == "valid":
        oh = (h - ((kh - 1) * dh + 1)) // sh + 1
        ow = (w - ((kw - 1) * dw + 1)) // sw + 1
        top = left = 0
    else:
        oh, top, _ = same_padding(h, kh, sh, dh)
        ow, left, _ = same_padding(w, kw, sw, dw)
    assert oh > 0 and ow > 0
    out = np.zeros((n, oh, ow, f))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for g in range(groups):
                    acc = np.zeros(fg)
                    for a in range(kh):
                        row = i * sh + a * dh - top
                        if not 0 <= row < h:
                            continue
                        for q in range(kw):
                            col = j * sw + q * dw - left
                            if not 0 <= col < w:
                                continue
                            pixel = x[b, row, col, g * cg : (g + 1) * cg]
                            acc += pixel @ kernel[a, q, :, g * fg : (g + 1) * fg]
                    out[b, i, j, g * fg : (g + 1) * fg] = acc
    if bias is not None:
        out += as_f32_values(bias)
    return activation(activation_name, out)
