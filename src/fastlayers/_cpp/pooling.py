"""Max and average pooling on the C++ path (``_core.pool2d``, csrc/ops/pooling.cpp).

The kernel folds a window's taps in the order fastlayers/_numpy/pooling.py does, so both
paths give the same bits (docs/semantics.md §21)."""

from __future__ import annotations

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
