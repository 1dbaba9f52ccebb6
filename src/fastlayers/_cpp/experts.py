"""The experts of a mixture-of-experts block on the C++ path: the NumPy path's routing
(_numpy/experts.py), each expert's two products on the GEMM engine with its weights packed
once, the activation in the core's kernels."""

from __future__ import annotations

import numpy as np

from .. import _backend
from .._numpy.experts import combine, route
from .activations import activate, apply_after, fused_id
from .dense import pack_dense


def pack_experts(gate_up, gate_up_bias, down, down_bias):
    """Each expert's (first, second) projection packed for the GEMM engine."""
    def bias(b, e):
        return None if b is None else b[e]

    return [(pack_dense(gate_up[e], bias(gate_up_bias, e)), pack_dense(down[e], bias(down_bias, e)))
            for e in range(gate_up.shape[0])]


def _gate(h, activation, gated):
    """act(gate) * up (or act(h) ungated) with the core's activation kernel where it has one."""
    def act(v):
        return activate(v, activation) if fused_id(activation) is not None else apply_after(
            activation, v)

    if not gated:
        return act(h)
    half = h.shape[-1] // 2
    return act(np.ascontiguousarray(h[:, :half])) * h[:, half:]


def experts(a, packed):
    """experts on checked arguments (``_validation.ExpertsArgs``) with the layer's
    :func:`pack_experts`: x (N, H) -> (N, H)."""
    core = _backend._core
    n, k = a.index.shape
    order, bounds = route(a.index, len(packed))
    y = np.zeros((n * k, a.x.shape[-1]), np.float32)
    for e, (first, second) in enumerate(packed):
        pairs = order[bounds[e]:bounds[e + 1]]
        if pairs.size == 0:
            continue
        h = core.dense(np.ascontiguousarray(a.x[pairs // k]), first, 0)
        y[pairs] = core.dense(np.ascontiguousarray(_gate(h, a.activation, a.gated)), second, 0)
    return combine(y, a.weights)
