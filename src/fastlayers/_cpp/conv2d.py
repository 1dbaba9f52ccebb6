"""Conv2D on the C++ path (NHWC; elementwise activations fused in the GEMM's epilogue), and
Conv2DTranspose: its products on the C++ GEMM, then the NumPy col2im."""

from __future__ import annotations

import numpy as np

from .. import _backend
from .._numpy.conv2d import add_taps
from .activations import activate, apply_after, fused_id


def pack_conv2d(kernel, bias, groups):
    """kernel (kh, kw, C // groups, F) and bias (F,) or None packed once: one GEMM operand
    per group, bias folded in (``_core.PackedConv``)."""
    return _backend._core.PackedConv(kernel, bias, groups)


def conv2d_runner(a, packed):
    """:func:`conv2d` with a layer's packed kernel for inputs shaped as the checked ``a``,
    as a function of x alone (a model's shape plan, models/shape_plan.py): the geometry
    (strides, dilation, pads) computed once. Same calls, same bits."""
    core = _backend._core
    fused = fused_id(a.activation)
    act, strides, dilation, pads, groups = a.activation, a.strides, a.dilation, a.pads, a.groups
    if fused is not None:
        return lambda x: core.conv2d(x, packed, None, strides, dilation, pads, groups, fused)
    return lambda x: apply_after(
        act, core.conv2d(x, packed, None, strides, dilation, pads, groups, 0)
    )


def conv2d(a, packed=None):
    """conv2d on checked arguments (``_validation.Conv2DArgs``): x (N, H, W, C) ->
    (N, OH, OW, F). ``packed`` is the layer's :func:`pack_conv2d`, or None (raw kernel)."""
    fused = fused_id(a.activation)
    kernel, bias = (a.kernel, a.bias) if packed is None else (packed, None)
    y = _backend._core.conv2d(
        a.x, kernel, bias, a.strides, a.dilation, a.pads, a.groups, fused or 0
    )
    return y if fused is not None else apply_after(a.activation, y)


def pack_conv2d_transpose(kernel):
    """A Conv2DTranspose kernel (kh, kw, F, C) as the GEMM operand (C, kh*kw*F) of every
    pixel's per-tap products, packed once (``_core.PackedDense``, no bias: the bias is
    added after the taps)."""
    return _backend._core.PackedDense(_tap_matrix(kernel), None)


def _tap_matrix(kernel):
    """(kh, kw, F, C) -> (C, kh*kw*F): column (a*kw + b)*F + f holds kernel[a, b, f, :]."""
    kh, kw, f, c = kernel.shape
    return np.ascontiguousarray(kernel.transpose(3, 0, 1, 2).reshape(c, kh * kw * f))


def conv2d_transpose(a, packed=None):
    """conv2d_transpose on checked arguments (``_validation.Conv2DTransposeArgs``): the
    products x (N*H*W, C) @ (C, kh*kw*F) on the core's GEMM (the layer's
    :func:`pack_conv2d_transpose`, or the raw kernel read in place or packed per call), then
    ``_numpy.conv2d.add_taps`` places them (memory-bound, kh*kw strided adds) and the bias and
    activation follow as on the NumPy path, the activation on the core's kernel when it has
    one (docs/performance.md §5)."""
    core = _backend._core
    n, h, w, c = a.x.shape
    kh, kw, f, _ = a.kernel.shape
    x2 = a.x.reshape(n * h * w, c)
    if packed is None:
        taps = core.dense_unpacked(x2, _tap_matrix(a.kernel), None, 0)
    else:
        taps = core.dense(x2, packed, 0)
    y = add_taps(taps.reshape(n, h, w, kh, kw, f), a.strides, a.dilation, a.offsets, a.out_hw)
    if a.bias is not None:
        y += a.bias
    if fused_id(a.activation) is not None:
        return activate(y, a.activation)
    return apply_after(a.activation, y)

