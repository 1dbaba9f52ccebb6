"""LayerNormalization, RMSNormalization, UnitNormalization and GroupNormalization on the C++
path: the row drivers (csrc/ops/layer_norm.cpp) and the NHWC group driver
(csrc/ops/group_norm.cpp)."""

from __future__ import annotations

import math

import numpy as np

from .. import _backend
from ._alloc import contiguous_f32


def layer_norm(a):
    """layer_norm on checked arguments (``_validation.LayerNormArgs``): the normalized axes
    moved last and flattened into one, gamma and beta into vectors, then the core's row
    driver."""
    n = math.prod(a.x.shape[i] for i in a.axes)
    gamma = None if a.gamma is None else a.gamma.reshape(n)
    beta = None if a.beta is None else a.beta.reshape(n)
    return _over_last_axes(a.x, a.axes, lambda rows: _backend._core.layer_norm_lastdim(
        rows, gamma, beta, a.epsilon))


def layer_norm_runner(a):
    """layer_norm over x's last axes as a function ``run(x, gamma, beta)`` of arrays of the
    shapes in ``a`` (checked arguments; a model's shape plan, models/shape_plan.py): the core
    call :func:`layer_norm` makes for them. None when the axes are not the last ones or x is
    empty (those calls take other paths)."""
    x = a.x
    if tuple(a.axes) != tuple(range(x.ndim - len(a.axes), x.ndim)) or x.size == 0:
        return None
    n = math.prod(x.shape[i] for i in a.axes)
    rows, shape, eps = x.size // n, x.shape, a.epsilon
    core = _backend._core

    def run(x, gamma, beta):
        return core.layer_norm_lastdim(x.reshape(rows, n),
                                       None if gamma is None else gamma.reshape(n),
                                       None if beta is None else beta.reshape(n),
                                       eps).reshape(shape)

    return run


def _over_last_axes(x, axes, run):
    """``run(rows)`` on x with ``axes`` moved last (a transpose only when they are not the last
    ones already) and flattened into one: rows (..., n) -> the same shape; x's shape back."""
    lead = [i for i in range(x.ndim) if i not in axes]
    n = math.prod(x.shape[i] for i in axes)
    if tuple(axes) == tuple(range(x.ndim - len(axes), x.ndim)):
        return run(x.reshape(math.prod(x.shape[: x.ndim - len(axes)]), n)).reshape(x.shape)
    order = lead + list(axes)
    xm = np.ascontiguousarray(x.transpose(order)).reshape(math.prod(x.shape[i] for i in lead), n)
    y = run(xm).reshape(tuple(x.shape[i] for i in order))
    return contiguous_f32(y.transpose(np.argsort(order)))


def channel_affine(x, scale, shift, axis, act_id=0):
    """``x * scale + shift`` along ``axis`` of checked float32 x (scale, shift (C,) float32),
    then the activation ``act_id`` (0: none): an inference BatchNormalization, in one pass
    over rows of channels (the NumPy path's bits: the product rounded, then the sum)."""
    return _over_last_axes(x, [axis % x.ndim], lambda rows: _backend._core.channel_affine_lastdim(
        rows, scale, shift, act_id))


def rms_norm(x, scale, axes, epsilon):
    """RMSNormalization of checked float32 x over its trailing ``axes`` (scale of x's shape
    over them, or None): the core's row driver, the squares summed in double."""
    n = math.prod(x.shape[i] for i in axes)
    s = None if scale is None else scale.reshape(n)
    return _over_last_axes(x, axes, lambda rows: _backend._core.rms_norm_lastdim(
        rows, s, epsilon))


def unit_norm(x, axes):
    """UnitNormalization of checked float32 x over ``axes`` (any positions, moved last)."""
    return _over_last_axes(x, sorted(axes), lambda rows: _backend._core.rms_norm_lastdim(
        rows, None, 0.0, unit=True))


def group_norm(x, gamma, beta, groups, axis, epsilon):
    """GroupNormalization of x with the channels on ``axis`` (checked: not the batch axis,
    ``groups`` divides them): moved last (a copy only when they are not last already), the
    other non-batch axes flattened into pixels, then the core's driver."""
    xl = np.ascontiguousarray(np.moveaxis(x, axis, -1))  # no copy when already so
    rows = xl.reshape(xl.shape[0], -1, xl.shape[-1])
    y = _backend._core.group_norm_nhwc(rows, gamma, beta, groups, epsilon).reshape(xl.shape)
    return y if axis == x.ndim - 1 else contiguous_f32(np.moveaxis(y, -1, axis))
