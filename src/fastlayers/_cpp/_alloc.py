"""Output arrays of the C++ path that Python allocates (the core allocates its own).

From 4 KiB on they come from the core, 64-byte aligned, as the core's own outputs: NumPy starts
a large array 16 bytes into a cache line, so that every 64-byte vector a later op loads from it
straddles two lines (csrc/bindings/bindings.h, ``new_f32_shape``, has the measurements).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _backend


def empty_f32(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialized C-contiguous float32 array of ``shape``."""
    core = _backend._core
    if math.prod(shape) * 4 < core.ALIGNED_OUTPUT_BYTES:  # the core would return np.empty's
        return np.empty(shape, np.float32)
    return core.empty_f32(shape)


def contiguous_f32(a: np.ndarray) -> np.ndarray:
    """``np.ascontiguousarray`` of a float32 array, a copy of it into :func:`empty_f32`."""
    return a if a.flags.c_contiguous else copy_f32(a)


def copy_f32(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of a float32 array, into :func:`empty_f32`."""
    out = empty_f32(a.shape)
    np.copyto(out, a)
    return out
