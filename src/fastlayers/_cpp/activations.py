"""Activations on the C++ path: which ones a kernel runs fused, and the rest applied after."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend
from .._numpy import activations as _np_activations
from ._alloc import contiguous_f32


def fused_id(act):
    """The core's id of an elementwise activation (fused in a kernel), or None for a row
    activation (softmax, log_softmax, sparsemax, glu) or a Python callable."""
    return None if callable(act) else _backend.cpp_activation_ids().get(act)


def apply_after(act, y):
    """``act`` applied to a kernel's linear output ``y`` (an activation without a fused id):
    softmax on the core's row kernel, the others (log_softmax, sparsemax, glu, callables)
    in NumPy."""
    if act == "softmax":
        rows = y.reshape(math.prod(y.shape[:-1]), y.shape[-1])  # not -1: y may be empty
        return _backend._core.softmax_lastdim(rows).reshape(y.shape)
    return _np_activations.apply(act, y)


def unsupported_elementwise(act, ract):
    """None when both activations (activation, recurrent_activation) have a fused id, else
    why the C++ path does not serve the call (for ``_backend.resolve``)."""
    ids = _backend.cpp_activation_ids()
    for name, a in (("activation", act), ("recurrent_activation", ract)):
        if callable(a):
            return f"a callable {name}"
        if a not in ids:
            return f"{name} {a!r} is not in the core's activation table"
    return None


def activate(x, act):
    """An elementwise activation with a fused id, on the core's kernel: float32 x -> same shape
    (a 0-d x too: np.ascontiguousarray makes it 1-d)."""
    return _backend._core.activate(np.ascontiguousarray(x), fused_id(act)).reshape(x.shape)


def softmax(x, axis):
    """softmax of float32 x (rank >= 1) along one axis, on the core's row kernel."""
    xm = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    y = _backend._core.softmax_lastdim(xm, None)
    return y if axis in (-1, x.ndim - 1) else contiguous_f32(np.moveaxis(y, -1, axis))
