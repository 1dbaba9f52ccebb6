"""Max and average pooling in NumPy (docs/semantics.md §18).

They have no C++ kernel: they run this code under every backend. Layout: x (N, H, W, C)
NHWC; a 1D op is the 2D one with H = 1. Windows are strided views
(``sliding_window_view``), so no patch matrix is built.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32


def pool_geometry(size: int, pool: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(out, before, after) of one spatial axis; the caller checked ``size >= pool`` for
    "valid". "same": ceil(size / stride) outputs, the odd padding pixel after (TF rule)."""
    if padding == "valid":
        return (size - pool) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + pool - size, 0)
    return out, total // 2, total - total // 2


def _windows(xp: np.ndarray, pool, strides, out_hw) -> np.ndarray:
    """(N, OH, OW, C, ph, pw): the pooling windows of the padded xp, as a view."""
    win = sliding_window_view(xp, pool, axis=(1, 2))
    return win[:, : (out_hw[0] - 1) * strides[0] + 1 : strides[0],
               : (out_hw[1] - 1) * strides[1] + 1 : strides[1]]


def max_pool2d(x: np.ndarray, pool, strides, pads, out_hw) -> np.ndarray:
    """Max over each window; padding is -inf, so it never wins (NaN propagates)."""
    top, bottom, left, right = pads
    xp = x
    if any(pads):
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    return np.ascontiguousarray(_windows(xp, pool, strides, out_hw).max(axis=(-2, -1)))


def _counts(size: int, pool: int, stride: int, out: int, before: int) -> np.ndarray:
    """How many input pixels (not padding) each window of one axis covers."""
    start = np.arange(out) * stride - before
    return (np.minimum(start + pool, size) - np.maximum(start, 0)).astype(F32)


def avg_pool2d(x: np.ndarray, pool, strides, pads, out_hw) -> np.ndarray:
    """Mean over each window of the input pixels it covers: padding is excluded from the
    count (Keras's rule on TensorFlow and JAX)."""
    top, bottom, left, right = pads
    if not any(pads):
        y = _windows(x, pool, strides, out_hw).sum(axis=(-2, -1), dtype=F32)
        return (y / F32(pool[0] * pool[1])).astype(F32, copy=False)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    y = _windows(xp, pool, strides, out_hw).sum(axis=(-2, -1), dtype=F32)
    ch = _counts(x.shape[1], pool[0], strides[0], out_hw[0], top)
    cw = _counts(x.shape[2], pool[1], strides[1], out_hw[1], left)
    return (y / (ch[:, None] * cw[None, :])[None, :, :, None]).astype(F32, copy=False)
