"""Conv2D on the C++ path (NHWC; elementwise activations fused in the GEMM's epilogue)."""

from __future__ import annotations

from .. import _backend
from .activations import apply_after, fused_id


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
