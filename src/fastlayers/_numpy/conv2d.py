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
    sh, sw = strides
    dh, dw = dilation
    oh, ow = out_hw
    top, bottom, left, right = pads
    fg = f // groups

    # Zero padding; "same" puts the odd extra pixel at the bottom/right (TensorFlow rule).
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))

    # im2col: for every kernel tap (a, b), the strided slice of input pixels it meets.
    # cols[n, i, j, a*kw + b, ch] = xp[n, i*sh + a*dh, j*sw + b*dw, ch]
    taps = [
        xp[:, a * dh : a * dh + (oh - 1) * sh + 1 : sh, b * dw : b * dw + (ow - 1) * sw + 1 : sw, :]
        for a in range(kh)
        for b in range(kw)
    ]
    cols = np.stack(taps, axis=3)  # (N, OH, OW, kh*kw, C)
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
