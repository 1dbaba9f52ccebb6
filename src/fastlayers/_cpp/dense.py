"""Dense on the C++ path: the GEMM engine, elementwise activations fused in its epilogue."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend
from .activations import apply_after, fused_id


def pack_dense(kernel, bias):
    """kernel (K, N) and bias (N,) or None packed once for the GEMM (``_core.PackedDense``)."""
    return _backend._core.PackedDense(kernel, bias)


def dense(a, packed=None):
    """dense on checked arguments (``_validation.DenseArgs``): x (..., K) -> (..., N).

    ``packed`` is the layer's :func:`pack_dense`, or None: the core then reads the kernel
    in place for up to 8 rows of x and packs it per call for more (docs/performance.md §3).
    """
    core = _backend._core
    x2 = a.x.reshape(math.prod(a.x.shape[:-1]), a.x.shape[-1])  # a view: x is C-contiguous
    fused = fused_id(a.activation)
    if packed is None:
        y = core.dense_unpacked(x2, a.kernel, a.bias, fused or 0)
    else:
        y = core.dense(x2, packed, fused or 0)
    return _finish(y, fused, a.activation, a.x.shape[:-1])


def _finish(y, fused, activation, lead):
    """The core's rows y (M, N): the activation it could not fuse, then the leading axes."""
    if fused is None:
        y = apply_after(activation, y)
    return y.reshape(lead + (y.shape[-1],))  # glu halves the last axis


def dense_runner(x_shape, packed, activation):
    """:func:`dense` with a layer's packed kernel, for inputs of shape ``x_shape`` only, as a
    function of x alone: the shape arithmetic done once (a model's shape plan,
    models/shape_plan.py). Same calls, same bits."""
    core = _backend._core
    rows = (math.prod(x_shape[:-1]), x_shape[-1])
    lead = tuple(x_shape[:-1])
    fused = fused_id(activation)

    def run(x):
        return _finish(core.dense(x.reshape(rows), packed, fused or 0), fused, activation, lead)

    return run


def matmul_runner(a_args):
    """:func:`matmul` for arguments shaped as the checked ``a_args`` (``MatmulArgs``), as a
    function of the two raw operands (b untransposed when ``transpose_b``): see
    :func:`dense_runner`. None for a 2-D b (the general path is already one call)."""
    if a_args.b.ndim == 2:
        return None
    return _matmul_plan(a_args.a.shape, a_args.b.shape, a_args.batch)


def matmul(a):
    """matmul on checked arguments (``_validation.MatmulArgs``): a (..., M, K) @ b (..., K, N).

    A b shared by every entry is one product over all rows of a; otherwise one product per
    broadcast batch entry, looped in C++ (``_core.matmul_batched``). b is read in place for
    a few rows of a (packed per call for more).
    """
    run = _matmul_plan(a.a.shape, a.b.shape, a.batch)
    return run(np.ascontiguousarray(a.a), np.ascontiguousarray(a.b))  # (a transposed b)


# Broadcast copies of the operands (_batch3) beyond this many bytes are made a slice of the
# first batch axis at a time: (8192, 1, 1, 1) @ (8192, 1, 1) copied each operand 8192 times
# over (three times the output's memory; at 2**16 entries the process was killed).
_BROADCAST_CHUNK_BYTES = 64 << 20


def _matmul_plan(a_shape, b_shape, batch):
    """The call computing a (..., M, K) @ b (..., K, N) for operands of these shapes over the
    broadcast batch axes ``batch``, the shape arithmetic done once (each entry is one
    fl::gemm chain whichever call computes it: the same bits)."""
    core = _backend._core
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    if len(b_shape) == 2 or (a_shape[:-2] == batch and all(d == 1 for d in b_shape[:-2])):
        # One b for every entry ((K, N), or (1, ..., 1, K, N)): one product over all rows of
        # a, without copying b per entry.
        rows = math.prod(a_shape[:-1])  # not -1: K may be 0
        out_shape = a_shape[:-1] + (n,)
        return lambda a, b: core.dense_unpacked(
            np.ascontiguousarray(a).reshape(rows, k), np.ascontiguousarray(b).reshape(k, n),
            None, 0).reshape(out_shape)
    if len(a_shape) == 3 and a_shape[:1] == b_shape[:1] == batch:
        return core.matmul_batched  # (B, M, K) @ (B, K, N): the arrays as they are
    nb = math.prod(batch)  # not -1: a size-0 axis makes -1 ambiguous
    copied = (nb * m * k if a_shape[:-2] != batch else 0) + (
        nb * k * n if b_shape[:-2] != batch else 0
    )
    # Slices of the first batch axis longer than 1 (those before it are 1).
    axis = next((i for i, d in enumerate(batch) if d > 1), None)
    out_shape = batch + (m, n)
    if copied * 4 <= _BROADCAST_CHUNK_BYTES or axis is None:
        return lambda a, b: core.matmul_batched(
            _batch3(a, batch, nb), _batch3(b, batch, nb)).reshape(out_shape)
    step = max(1, _BROADCAST_CHUNK_BYTES // (copied * 4 // batch[axis]))
    return lambda a, b: _chunked(a, b, batch, axis, step, out_shape)


def _chunked(a, b, batch, axis, step, out_shape):
    """a @ b over the batch axes ``batch``, ``step`` entries of batch axis ``axis`` at a
    time, so that no broadcast copy exceeds _BROADCAST_CHUNK_BYTES."""
    core = _backend._core
    rank = len(batch) + 2
    a = a.reshape((1,) * (rank - a.ndim) + a.shape)
    b = b.reshape((1,) * (rank - b.ndim) + b.shape)
    out = np.empty(out_shape, np.float32)
    for i0 in range(0, batch[axis], step):
        i1 = min(batch[axis], i0 + step)
        at = (slice(None),) * axis + (slice(i0, i1),)
        sub = batch[:axis] + (i1 - i0,) + batch[axis + 1 :]
        part_a = a[at] if a.shape[axis] != 1 else a
        part_b = b[at] if b.shape[axis] != 1 else b
        nsub = math.prod(sub)
        out[at] = core.matmul_batched(
            _batch3(part_a, sub, nsub), _batch3(part_b, sub, nsub)
        ).reshape(sub + out_shape[-2:])
    return out


def _batch3(x, batch, nb):
    """x (..., r, c) as a C-contiguous (nb, r, c): a view of a C-contiguous x whose batch axes
    are ``batch`` already, else a copy (of x broadcast to them, or of a transposed view)."""
    shape = (nb,) + x.shape[-2:]
    if x.shape[:-2] != batch:
        x = np.broadcast_to(x, batch + x.shape[-2:])
    return np.ascontiguousarray(x.reshape(shape))
