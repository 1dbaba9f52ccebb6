"""Max and average pooling, fixed, adaptive and global, on the C++ path (``_core.pool2d``,
``_core.adaptive_pool2d`` and ``_core.global_pool``, csrc/ops/pooling.cpp).

The kernels fold a window's taps in the order fastlayers/_numpy/pooling.py does, so both
paths give the same bits (docs/semantics.md §21)."""

from __future__ import annotations

import numpy as np

from .. import _backend


def pool2d(x, pool, strides, pads, average):
    """x (N, H, W, C) C-contiguous float32; pool, strides (rows, cols); pads (top, bottom,
    left, right) -> (N, OH, OW, C)."""
    return _backend._core.pool2d(x, tuple(pool), tuple(strides), tuple(pads), bool(average))


def pool2d_runner(pool, strides, pads, average):
    """:func:`pool2d` with its arguments bound, as a function of x alone (a model's shape
    plan, models/shape_plan.py)."""
    core = _backend._core
    pool, strides, pads, average = tuple(pool), tuple(strides), tuple(pads), bool(average)
    return lambda x: core.pool2d(x, pool, strides, pads, average)


def adaptive_pool(x, output_size, mode):
    """x (N, *spatial, C) float32 with 1 or 2 spatial axes pooled to (N, *output_size, C);
    mode "max" or "average". A 1-D input runs as an image one column wide."""
    one_d = x.ndim == 3
    x4 = x[:, :, None, :] if one_d else x
    size = (output_size[0], 1) if one_d else tuple(output_size)
    y = _backend._core.adaptive_pool2d(np.ascontiguousarray(x4, dtype=np.float32), size,
                                       mode == "average")
    return y[:, :, 0, :] if one_d else y


def global_pool(x, mode):
    """x (N, pixels, C) float32, channels last -> (N, C); mode "max" or "average"."""
    return _backend._core.global_pool(np.ascontiguousarray(x, dtype=np.float32),
                                      mode == "average")
