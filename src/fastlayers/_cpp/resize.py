"""Resizing's and bilinear UpSampling2D's taps on the C++ path: the core's ``resample_axis``
(csrc/ops/resize.cpp) applies the taps that fastlayers/_numpy/resize.py computes, in the
order of its ``_apply_taps`` (docs/semantics.md §27)."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend


def apply_taps(x, idx, w, axis, valid=None):
    """``_numpy.resize._apply_taps`` in C++: sum_k x[idx[:, k]] * w[:, k] along ``axis`` of
    float32 x, in tap order; ``valid`` (out, taps) marks the padding at the end of shorter
    tap lists (a prefix of each row is valid). Returns a new float32 array."""
    n_out, taps = idx.shape
    count = (np.full(n_out, taps, np.int64) if valid is None
             else valid.sum(axis=1).astype(np.int64))
    shape = x.shape
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(
        math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))
    y = _backend._core.resample_axis(rows, np.ascontiguousarray(idx, dtype=np.int64),
                                     np.ascontiguousarray(w, dtype=np.float32), count)
    return y.reshape(shape[:axis] + (n_out,) + shape[axis + 1:])


def taps():
    """:func:`apply_taps` when the backend takes C++ for the op ``resize``, else None (the
    NumPy path's own)."""
    return apply_taps if _backend.resolve("resize", None) == "cpp" else None
