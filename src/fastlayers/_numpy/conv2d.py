"""2D convolution in NumPy by im2col + matmul (docs/semantics.md §5).

Layouts: x (N, H, W, C) NHWC; kernel (kh, kw, C/groups, F); bias (F,);
y (N, OH, OW, F). Group g reads input channels [g*cg, (g+1)*cg) and writes
filters [g*fg, (g+1)*fg).
"""

from __future__ import annotations

import numpy as np

from . import activations


def conv2d(x, kernel, bias, strides, dilation, pads, out_hw, groups, activation):
    n, _, _, c = x.shape
    kh, kw, cg, f = kernel.shape
    oh, ow = out_hw
    top, _, left, _ = pads  # (bottom and right follow from out_hw)
    fg = f // groups

    # im2col: for every kernel tap (a, b), the input pixels it meets, or the zero padding
    # ("same" puts the odd extra pixel at the bottom/right, TensorFlow's rule):
    # cols[n, i, j, a*kw + b, ch] = x[n, i*sh + a*dh - top, j*sw + b*dw - left, ch], or 0
    # outside the image (strides (sh, sw), dilation (dh, dw)). Each tap copies only its
    # in-image window into the zeros (_tap_windows), so no padded copy of x is made (with a
    # large dilation under "same" it would dwarf the output).
    cols = np.zeros((n, oh, ow, kh * kw, c), x.dtype)
    for a, b, (i, j), (r, q) in _tap_windows((kh, kw), strides, dilation, (top, left), out_hw,
                                             x.shape[1:3]):
        cols[:, i, j, a * kw + b] = x[:, r, q]
    pixels = n * oh * ow

    if groups == 1:
        # One GEMM: (pixels, kh*kw*C) @ (kh*kw*C, F); the kernel's memory order matches.
        y = cols.reshape(pixels, kh * kw * c) @ kernel.reshape(kh * kw * c, f)
    else:
        # A batch of GEMMs, one per group: (G, pixels, kh*kw*cg) @ (G, kh*kw*cg, fg).
        a_g = cols.reshape(pixels, kh * kw, groups, cg).transpose(2, 0, 1, 3)
        a_g = a_g.reshape(groups, pixels, kh * kw * cg)
        k_g = kernel.reshape(kh * kw * cg, groups, fg).transpose(1, 0, 2)
        y = np.matmul(a_g, k_g).transpose(1, 0, 2).reshape(pixels, f)

    y = y.reshape(n, oh, ow, f)
    if bias is not None:
        y += bias
    return activations.apply(activation, y)


def _tap_windows(kernel_hw, strides, dilation, offsets, count_hw, bound_hw):
    """For each kernel tap (a, b) in row-major order that reaches anything: (a, b, the
    positions (i, j) of the [0, count) grid as slices, the positions (i*sh + a*dh - top,
    j*sw + b*dw - left) they meet in the [0, bound) grid as strided slices). im2col walks it
    with the output as the grid of positions and the image as the bound; col2im
    (conv2d_transpose) the other way round."""
    (kh, kw), (sh, sw), (dh, dw), (top, left) = kernel_hw, strides, dilation, offsets
    for a in range(kh):
        i0, i1 = _in_image(a * dh - top, sh, count_hw[0], bound_hw[0])
        for b in range(kw):
            j0, j1 = _in_image(b * dw - left, sw, count_hw[1], bound_hw[1])
            if i0 < i1 and j0 < j1:
                r0, c0 = i0 * sh + a * dh - top, j0 * sw + b * dw - left
                yield a, b, (slice(i0, i1), slice(j0, j1)), (
                    slice(r0, r0 + (i1 - i0 - 1) * sh + 1, sh),
                    slice(c0, c0 + (j1 - j0 - 1) * sw + 1, sw),
                )


def _in_image(offset, stride, count, bound):
    """The positions [i0, i1) of [0, count) for which offset + i * stride lies in [0, bound),
    for one kernel tap along one axis: in im2col the output positions whose input pixel is in
    the image; in col2im (conv2d_transpose) the input positions that land in the output."""
    i0 = min(count, max(0, -(offset // stride)))  # ceil(-offset / stride), at least 0
    i1 = max(i0, min(count, (bound - 1 - offset) // stride + 1)) if bound > 0 else i0
    return i0, i1


# ------------------------------------------------------------------- conv2d_transpose


def conv2d_transpose(x, kernel, bias, strides, dilation, offsets, out_hw, activation,
                     groups=1):
    """Transposed convolution (Keras ``Conv2DTranspose``; docs/semantics.md §25).

    x (N, H, W, C), kernel (kh, kw, F, C), bias (F,) or None -> y (N, OH, OW, F). Input pixel
    (i, j) seen through tap (a, b) adds x[n, i, j] @ kernel[a, b].T to output pixel
    (i*sh + a*dh - top, j*sw + b*dw - left) when that lies inside the output.

    Computed as one GEMM, every pixel times every tap's (C, F) matrix, then the taps'
    products added into the output at their positions (col2im).

    With ``groups`` (PyTorch's), kernel is (kh, kw, F // groups, C): each group of C // groups
    input channels is transposed-convolved with its slice of the kernel alone, into its
    group of F // groups filters.
    """
    if groups > 1:
        cg = x.shape[3] // groups
        parts = [conv2d_transpose(x[..., g * cg:(g + 1) * cg], kernel[..., g * cg:(g + 1) * cg],
                                  None, strides, dilation, offsets, out_hw, "linear")
                 for g in range(groups)]
        return finish_transpose(np.concatenate(parts, axis=-1), bias, activation)
    n, h, w, c = x.shape
    kh, kw, f, _ = kernel.shape
    # (C, kh*kw*F): column (a*kw + b)*F + f holds kernel[a, b, f, :].
    wcat = kernel.transpose(3, 0, 1, 2).reshape(c, kh * kw * f)
    taps = (x.reshape(n * h * w, c) @ wcat).reshape(n, h, w, kh, kw, f)
    return finish_transpose(add_taps(taps, strides, dilation, offsets, out_hw), bias, activation)


def add_taps(taps, strides, dilation, offsets, out_hw):
    """col2im: y[n, i*sh + a*dh - top, j*sw + b*dw - left] += taps[n, i, j, a, b] over the
    taps in row-major order (a, b), dropping what falls outside (OH, OW)."""
    n, h, w, kh, kw, f = taps.shape
    y = np.zeros((n, *out_hw, f), np.float32)
    for a, b, (i, j), (r, q) in _tap_windows((kh, kw), strides, dilation, offsets, (h, w),
                                             out_hw):
        y[:, r, q] += taps[:, i, j, a, b]
    return y


def finish_transpose(y, bias, activation):
    """The bias after all taps (Keras adds it to the convolution's result), then the
    activation."""
    if bias is not None:
        y += bias
    return activations.apply(activation, y)
