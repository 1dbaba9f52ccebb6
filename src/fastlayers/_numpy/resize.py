"""Upsampling by whole factors (Keras ``UpSampling1D/2D``; docs/semantics.md §25).

Memory-bound data movement with at most two multiply-adds per output value, so there is no
C++ kernel: every backend runs this code.
"""

from __future__ import annotations

import numpy as np


def upsample_nearest(x, factors):
    """Each pixel repeated: x (N, H, W, C) -> (N, H*fh, W*fw, C), i.e. y[n, i, j] =
    x[n, i // fh, j // fw]."""
    fh, fw = factors
    n, h, w, c = x.shape
    y = np.empty((n, h, fh, w, fw, c), np.float32)
    y[...] = x[:, :, None, :, None, :]
    return y.reshape(n, h * fh, w * fw, c)


def upsample_bilinear(x, factors):
    """Bilinear interpolation with half-pixel centres, no antialiasing: x (N, H, W, C) ->
    (N, H*fh, W*fw, C). Output row i samples input row p = max((i + 0.5) / fh - 0.5, 0):
    rows lo = floor(p) and hi = min(lo + 1, H - 1), weights 1 - t and t with t = p - lo
    (what TensorFlow's, JAX's and PyTorch's resizes give when enlarging; the weights are
    PyTorch's, so an inf gives inf or NaN where PyTorch's does). Rows first, then columns.
    Always a new array."""
    y = _linear_axis(x, factors[0], axis=1)
    y = _linear_axis(y, factors[1], axis=2)
    return y.copy() if y is x else y


def _linear_axis(x, factor, axis):
    length = x.shape[axis]
    if factor == 1:
        return x
    pos = np.maximum((np.arange(length * factor, dtype=np.float64) + 0.5) / factor - 0.5, 0.0)
    lo = np.floor(pos).astype(np.intp)  # <= length - 1: pos < length - 0.5
    hi = np.minimum(lo + 1, length - 1)
    shape = [1] * x.ndim
    shape[axis] = pos.size
    t = (pos - lo).astype(np.float32).reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - t) + np.take(x, hi, axis=axis) * t
