"""LayerNormalization and GroupNormalization on the C++ path: the row driver
(csrc/ops/layer_norm.cpp) and the NHWC group driver (csrc/ops/group_norm.cpp)."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend


def layer_norm(a):
    """layer_norm on checked arguments (``_validation.LayerNormArgs``): the normalized axes
    are moved last (a transpose only when they are not the last ones already) and flattened
    into one, and gamma and beta into vectors, then the core's row driver runs."""
    x, axes = a.x, a.axes
    lead = [i for i in range(x.ndim) if i not in axes]
    n = math.prod(x.shape[i] for i in axes)
    gamma = None if a.gamma is None else a.gamma.reshape(n)
    beta = None if a.beta is None else a.beta.reshape(n)
    core = _backend._core
    if axes == tuple(range(x.ndim - len(axes), x.ndim)):
        rows = x.reshape(math.prod(x.shape[: x.ndim - len(axes)]), n)
        return core.layer_norm_lastdim(rows, gamma, beta, a.epsilon).reshape(x.shape)
    order = lead + list(axes)
    xm = np.ascontiguousarray(x.transpose(order)).reshape(
        tuple(x.shape[i] for i in lead) + (n,))
    y = core.layer_norm_lastdim(xm, gamma, beta, a.epsilon)
    y = y.reshape(tuple(x.shape[i] for i in order))
    return np.ascontiguousarray(y.transpose(np.argsort(order)))


def group_norm(x, gamma, beta, groups, axis, epsilon):
    """GroupNormalization of x with the channels on ``axis`` (checked: not the batch axis,
    ``groups`` divides them): moved last (a copy only when they are not last already), the
    other non-batch axes flattened into pixels, then the core's driver."""
    xl = np.ascontiguousarray(np.moveaxis(x, axis, -1))  # no copy when already so
    rows = xl.reshape(xl.shape[0], -1, xl.shape[-1])
    y = _backend._core.group_norm_nhwc(rows, gamma, beta, groups, epsilon).reshape(xl.shape)
    return y if axis == x.ndim - 1 else np.ascontiguousarray(np.moveaxis(y, -1, axis))
