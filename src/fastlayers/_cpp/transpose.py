"""The batched transpose of the C++ path (``_core.transpose_batched``,
csrc/ops/transpose.cpp): the NCHW <-> NHWC copies at a converted model's edges."""

from __future__ import annotations

from .. import _backend


def transpose_batched(x):
    """x (batch, rows, cols) C-contiguous float32 -> a new (batch, cols, rows) array."""
    return _backend._core.transpose_batched(x)
