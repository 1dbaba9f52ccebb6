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
    (N, H*fh, W*fw, C). Output row i samples input row (i + 0.5) / fh - 0.5, clamped to
    [0, H - 1] (what TensorFlow's, JAX's and PyTorch's resizes give when enlarging); rows
    first, then columns."""
    y = _linear_axis(x, factors[0], axis=1)
    return _linear_axis(y, factors[1], axis=2)


def _linear_axis(x, factor, axis):
    length = x.shape[axis]
    if factor == 1:
        return x
    pos = (np.arange(length * factor, dtype=np.float64) + 0.5) / factor - 0.5
    pos = np.clip(pos, 0.0, length - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, length - 1)
    frac = (pos - lo).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = frac.size
    frac = frac.reshape(shape)
    a = np.take(x, lo, axis=axis)
    b = np.take(x, hi, axis=axis)
    return a + (b - a) * frac
