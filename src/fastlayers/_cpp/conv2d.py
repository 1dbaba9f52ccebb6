"""Conv2D on the C++ path (NHWC; elementwise activations fused in the GEMM's epilogue), and
Conv2DTranspose as one stride-1 conv2d per output phase."""

from __future__ import annotations

import numpy as np

from .. import _backend
from ._alloc import empty_f32
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


def conv3d_reads_in_place(packed, kd):
    """Whether :func:`conv3d` serves a Conv3D with the layer's depth-stacked ``packed``
    kernel (kh, kw, kd * cg, F): it runs the indirect GEMM and cg >= 16. With fewer channels
    per group the stacked conv2d is as fast or faster (its chunks are longer: 7.3 against
    8.0 ms at (1, 16, 112, 112, 3) -> 16, a tie at 8 and 16; docs/performance.md §11)."""
    return packed is not None and packed.indirect and packed.kernel_shape[2] // kd >= 16


def conv3d_runner(a, depth_pads, kd, sd, dd, packed):
    """Conv3D read in place by the indirect GEMM, as a function of x (N, D, H, W, C) alone,
    for inputs shaped as the checked ``a`` (``_validation.check_conv3d(stack=False)``): the
    geometry bound in, nothing of ``a`` kept (not its input). Returns (N, OD, OH, OW, F),
    bitwise the conv2d of the depth-stacked input."""
    core = _backend._core
    fused = fused_id(a.activation)
    act = a.activation
    strides, dilation = (sd,) + tuple(a.strides), (dd,) + tuple(a.dilation)
    pads = tuple(depth_pads) + tuple(a.pads)  # (C++ computes the same output size)
    if fused is not None:
        return lambda x: core.conv3d(x, packed, kd, strides, dilation, pads, fused)
    return lambda x: apply_after(act, core.conv3d(x, packed, kd, strides, dilation, pads, 0))


def conv3d(a, depth_pads, kd, sd, dd, packed):
    """:func:`conv3d_runner` called once on ``a.x``."""
    return conv3d_runner(a, depth_pads, kd, sd, dd, packed)(a.x)


class RowBlocks(list):
    """A Conv2DTranspose whose kernel equals its strides, packed (:func:`pack_conv2d_transpose`):
    one 1x1 PackedConv per kernel row ry, (C, kw * F), the bias repeated kw times.

    With kernel == strides (U-Net's 2x2 stride 2) the output phases do not overlap: input
    pixel (i, j) alone makes output pixels (kh*i + ry, kw*j + rx), and with no padding and no
    output_padding the kw pixels kw*j .. kw*j + kw - 1 of output row kh*i + ry are kw*F
    contiguous floats. So row ry of the kernel is one 1x1 convolution of x whose output pixels
    are the whole rows kh*i + ry: each GEMM row is written once, in place, with kw times the
    columns of a phase (docs/performance.md §5). Each output float is the same chain as its
    phase's (bias, then the C products in order), so the same bits."""


def _row_blocks_apply(kernel_shape, strides, groups):
    """Whether :class:`RowBlocks` packs this kernel (kh, kw, F, C): kernel == strides, groups 1."""
    return groups == 1 and tuple(kernel_shape[:2]) == tuple(strides)


def pack_conv2d_transpose(kernel, bias, strides, groups=1):
    """A Conv2DTranspose kernel (kh, kw, F, C), or (kh, kw, F // groups, C) with groups, and
    bias, packed once: as :class:`RowBlocks` when the kernel equals the strides (groups 1),
    otherwise as the stride-1 convolutions of its output phases (:func:`_phases`):
    [(ry, rx, PackedConv)], each grouped as the transposed convolution is."""
    if _row_blocks_apply(kernel.shape, strides, groups):
        kh, kw, f, c = kernel.shape
        rows = kernel.transpose(0, 3, 1, 2).reshape(kh, 1, 1, c, kw * f)  # (ry; C, (rx, F))
        tiled = None if bias is None else np.tile(bias, kw)
        return RowBlocks(pack_conv2d(np.ascontiguousarray(rows[ry]), tiled, 1)
                         for ry in range(kh))
    return [(ry, rx, pack_conv2d(sub, bias, groups))
            for ry, rx, sub in _phases(kernel, strides, groups)]


def _phases(kernel, strides, groups=1):
    """The output phases of a transposed convolution: [(ry, rx, sub-kernel)].

    Output row oy takes input row i through tap a when oy + top = i*sh + a*dh. With a stride
    (dh = 1 then), the rows with (oy + top) % sh == ry use only the taps a = ry, ry + sh, ...:
    they are a stride-1 convolution of x with those taps reversed. With sh = 1 there is one
    phase, all taps reversed (dilated by dh). sub is (Jy, Jx, C, F), conv2d's layout; a phase
    with no taps (a stride larger than the kernel) is left out: its pixels get the bias only.
    With groups, kernel (kh, kw, F // groups, C): sub is conv2d's grouped layout (Jy, Jx,
    C // groups, F), group g's filters after group g - 1's, each from its own input group.
    """
    kh, kw, _, c = kernel.shape
    sh, sw = strides
    cg = c // groups
    out = []
    for ry in range(min(sh, kh)):
        ay = np.arange(ry, kh, sh)[::-1]
        for rx in range(min(sw, kw)):
            ax = np.arange(rx, kw, sw)[::-1]
            taps = kernel[ay][:, ax]  # (Jy, Jx, F // groups, C)
            sub = np.concatenate([taps[..., g * cg:(g + 1) * cg].transpose(0, 1, 3, 2)
                                  for g in range(groups)], axis=-1)
            out.append((ry, rx, np.ascontiguousarray(sub)))
    return out


def _phase_span(taps, d, s, r, offset, out_len):
    """Where phase r's convolution runs along one axis: (first output index, count, pad
    before, rows of x to skip), or None when the phase has no output there.

    Phase row q is output row q*s + r - offset and sums x[q - j*d] over its taps j (tap j
    reversed in the sub-kernel): a stride-1 convolution of x padded by (taps - 1)*d before
    (and by zeros after, as far as the count reaches). Its first row kept, q = first, is
    that convolution's row first - full + before: with a large offset the convolution starts
    inside x, ``skip`` rows down, with no padding.
    """
    first = -((r - offset) // s)  # the first q whose output row is >= 0
    end = (out_len - 1 + offset - r) // s + 1
    if end <= first:
        return None
    full = (taps - 1) * d
    before = max(0, full - first)
    skip = first - (full - before)  # > 0 only when before == 0
    return first * s + r - offset, end - first, before, skip


def conv2d_transpose(a, packed=None):
    """conv2d_transpose on checked arguments (``_validation.Conv2DTransposeArgs``): one
    stride-1 convolution per output phase (:func:`_phases`), each written by the core straight
    into its rows and columns of the output (``core.conv2d_into`` on the strided view), the bias
    and an elementwise activation in the convolutions' epilogue (docs/performance.md §5).
    ``packed`` is the layer's :func:`pack_conv2d_transpose`, or None (packed per call)."""
    return conv2d_transpose_runner(a, packed)(a.x)


def conv2d_transpose_runner(a, packed=None):
    """:func:`conv2d_transpose` for inputs shaped as the checked ``a``, as a function of x
    alone (a model's shape plan, a layer's direct calls; models/shape_plan.py): the phases'
    kernels, output views and paddings planned once, nothing of ``a`` kept but its geometry,
    kernel and bias. Same calls, same bits."""
    core = _backend._core
    n, h, w, _ = a.x.shape
    kh, kw, fg, _ = a.kernel.shape
    f = fg * a.groups
    (sh, sw), (dh, dw), (top, left), (oh, ow) = a.strides, a.dilation, a.offsets, a.out_hw
    act = a.activation
    row_blocks = (_row_blocks_apply(a.kernel.shape, a.strides, a.groups) and
                  (top, left) == (0, 0) and (oh, ow) == (kh * h, kw * w))
    if packed is None or isinstance(packed, RowBlocks) != row_blocks:
        # (a layer's RowBlocks with an output_padding: the phases, packed per call)
        packed = (pack_conv2d_transpose(a.kernel, a.bias, a.strides, a.groups) if row_blocks
                  else [(ry, rx, pack_conv2d(sub, a.bias, a.groups))
                        for ry, rx, sub in _phases(a.kernel, a.strides, a.groups)])
    if row_blocks:
        fused = fused_id(act)
        blocks = list(packed)

        def run_rows(x):
            y = empty_f32((n, oh, ow, f))
            rows = y.reshape(n, h, kh, w, kw * f)  # a view: output row kh*i + ry is rows[:, i, ry]
            for ry, kernel in enumerate(blocks):
                core.conv2d_into(rows[:, :, ry], x, kernel, (1, 1), (1, 1), (0, 0), fused or 0)
            return y if fused is not None else apply_after(act, y)

        return run_rows
    complete = kh >= sh and kw >= sw  # every output pixel is in a phase with taps
    fused = fused_id(act) if complete else None
    fill = None if complete else (0.0 if a.bias is None else a.bias)
    steps = []  # (kernel, output rows and columns, paddings, input rows and columns skipped)
    for ry, rx, kernel in packed:
        rows = _phase_span((kh - ry + sh - 1) // sh, dh, sh, ry, top, oh)
        cols = _phase_span((kw - rx + sw - 1) // sw, dw, sw, rx, left, ow)
        if rows is None or cols is None:
            continue
        oy, cy, ty, my = rows
        ox, cx, tx, mx = cols
        steps.append((kernel, (slice(None), slice(oy, oy + cy * sh, sh),
                               slice(ox, ox + cx * sw, sw)), (ty, tx), my, mx))

    def run_phases(x):
        y = empty_f32((n, oh, ow, f))
        if fill is not None:
            y[...] = fill
        for kernel, where, pads, my, mx in steps:
            # x from row my and column mx on (a copy only when that is not a contiguous
            # view). Keras's geometry skips at most one row or column, and only of an input
            # with more.
            xs = x if my == mx == 0 else np.ascontiguousarray(x[:, my:, mx:])
            core.conv2d_into(y[where], xs, kernel, (1, 1), (dh, dw), pads, fused or 0)
        if fused is not None:
            return y
        if fused_id(act) is not None:
            return activate(y, act)
        return apply_after(act, y)

    return run_phases
