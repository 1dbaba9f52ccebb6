"""Dense on the C++ path: the GEMM engine, elementwise activations fused in its epilogue."""

from __future__ import annotations

import math

from .. import _backend
from .activations import apply_after, fused_id


def pack_dense(kernel, bias):
    """kernel (K, N) and bias (N,) or None packed once for the GEMM (``_core.PackedDense``)."""
    return _backend._core.PackedDense(kernel, bias)


def dense(a, packed=None):
    """dense on checked arguments (``_validation.DenseArgs``): x (..., K) -> (..., N).

    ``packed`` is the layer's :func:`pack_dense`, or None: the core then reads the kernel
    in place for up to 32 rows of x and packs it per call for more.
    """
    core = _backend._core
    x2 = a.x.reshape(math.prod(a.x.shape[:-1]), a.x.shape[-1])  # a view: x is C-contiguous
    fused = fused_id(a.activation)
    if packed is None:
        y = core.dense_unpacked(x2, a.kernel, a.bias, fused or 0)
    else:
        y = core.dense(x2, packed, fused or 0)
    if fused is None:
        y = apply_after(a.activation, y)
    return y.reshape(a.x.shape[:-1] + (y.shape[-1],))  # glu halves the last axis
