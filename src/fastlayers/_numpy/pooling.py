"""Max and average pooling in NumPy (docs/semantics.md §21).

The C++ kernel (csrc/ops/pooling.cpp) follows this code tap for tap: the same bits on both
paths. Layout: x (N, H, W, C)
NHWC; a 1D op is the 2D one with H = 1. The result is built tap by tap: for each offset in
the window, one strided slice of the (padded) input is folded in with np.maximum / np.add,
so no patch matrix is built.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def pool_geometry(size: int, pool: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(out, before, after) of one spatial axis; the caller checked ``size >= pool`` for
    "valid". "same": ceil(size / stride) outputs, the odd padding pixel after (TF rule)."""
    if padding == "valid":
        return (size - pool) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + pool - size, 0)
    return out, total // 2, total - total // 2


def _taps(xp: np.ndarray, pool, strides, out_hw):
    """For each window offset (a, b), the strided slice of xp it meets:
    tap[n, i, j, c] = xp[n, i * sh + a, j * sw + b, c]."""
    (ph, pw), (sh, sw), (oh, ow) = pool, strides, out_hw
    for a in range(ph):
        for b in range(pw):
            yield xp[:, a : a + (oh - 1) * sh + 1 : sh, b : b + (ow - 1) * sw + 1 : sw]


def max_pool2d(x: np.ndarray, pool, strides, pads, out_hw) -> np.ndarray:
    """Max over each window; padding is -inf, so it never wins (NaN propagates)."""
    top, bottom, left, right = pads
    xp = x
    if any(pads):
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    taps = _taps(xp, pool, strides, out_hw)
    y = np.array(next(taps), dtype=F32, order="C")
    for tap in taps:
        np.maximum(y, tap, out=y)
    return y


def _counts(size: int, pool: int, stride: int, out: int, before: int) -> np.ndarray:
    """How many input pixels (not padding) each window of one axis covers."""
    start = np.arange(out) * stride - before
    return (np.minimum(start + pool, size) - np.maximum(start, 0)).astype(F32)


def avg_pool2d(x: np.ndarray, pool, strides, pads, out_hw) -> np.ndarray:
    """Mean over each window of the input pixels it covers: padding is not counted
    (Keras's rule on TensorFlow and JAX)."""
    top, bottom, left, right = pads
    xp = x
    if any(pads):
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    taps = _taps(xp, pool, strides, out_hw)
    y = np.array(next(taps), dtype=F32, order="C")
    for tap in taps:
        np.add(y, tap, out=y)
    if not any(pads):
        y /= F32(pool[0] * pool[1])
        return y
    ch = _counts(x.shape[1], pool[0], strides[0], out_hw[0], top)
    cw = _counts(x.shape[2], pool[1], strides[1], out_hw[1], left)
    y /= (ch[:, None] * cw[None, :])[None, :, :, None]
    return y
