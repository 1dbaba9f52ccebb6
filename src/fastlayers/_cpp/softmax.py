"""Softmax on the C++ path: the row kernel over the last axis."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend
from ._alloc import contiguous_f32


def softmax(a):
    """softmax on checked arguments (``_validation.SoftmaxArgs``): move the softmax axes
    last, flatten them into one, run the row kernel, move back."""
    core = _backend._core
    x, axes, mask = a.x, a.axes, a.mask
    if axes == (x.ndim - 1,):
        # The usual case: x is C-contiguous already (validation) and the kernel takes any
        # rank, normalizing over the last axis; no reshapes or transposes (on small inputs they
        # cost several times the kernel).
        return core.softmax_lastdim(x, None if mask is None else np.ascontiguousarray(mask))
    lead = [i for i in range(x.ndim) if i not in axes]
    order = lead + list(axes)
    n = math.prod(x.shape[i] for i in axes)
    rows_shape = tuple(x.shape[i] for i in lead) + (n,)
    xm = np.ascontiguousarray(x.transpose(order)).reshape(rows_shape)
    if mask is not None:
        mask = np.ascontiguousarray(mask.transpose(order)).reshape(rows_shape)
    y = core.softmax_lastdim(xm, mask)
    y = y.reshape(tuple(x.shape[i] for i in order))
    return contiguous_f32(y.transpose(np.argsort(order)))


def lastdim(x):
    """softmax over the last axis of a C-contiguous, aligned float32 array, no mask."""
    return _backend._core.softmax_lastdim(x, None)


def lastdim_runner():
    """softmax over the last axis without a mask, as a function of x alone (a model's shape
    plan, models/shape_plan.py): the call :func:`softmax` makes for it."""
    core = _backend._core
    return lambda x: core.softmax_lastdim(x, None)
