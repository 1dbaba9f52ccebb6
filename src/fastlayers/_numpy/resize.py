"""Upsampling by whole factors (Keras ``UpSampling1D/2D``; docs/semantics.md §25) and
resizing to any size (Keras ``Resizing``, ``CenterCrop``; docs/semantics.md §27).

The taps (which input pixels and weights make each output pixel) are computed here for
both paths; the C++ path applies them with the core's ``resample_axis``
(fastlayers/_cpp/resize.py, passed as ``apply_taps``), in the same order as
:func:`_apply_taps`. Nearest-neighbour upsampling and resizing are gathers, NumPy on both
paths.
"""

from __future__ import annotations

import functools

import numpy as np


def upsample_nearest(x, factors):
    """Each pixel repeated: x (N, H, W, C) -> (N, H*fh, W*fw, C), i.e. y[n, i, j] =
    x[n, i // fh, j // fw]."""
    fh, fw = factors
    n, h, w, c = x.shape
    y = np.empty((n, h, fh, w, fw, c), np.float32)
    y[...] = x[:, :, None, :, None, :]
    return y.reshape(n, h * fh, w * fw, c)


def upsample_bilinear(x, factors, apply_taps=None):
    """Bilinear interpolation with half-pixel centres, no antialiasing: x (N, H, W, C) ->
    (N, H*fh, W*fw, C). Output row i samples input row p = max((i + 0.5) / fh - 0.5, 0):
    rows lo = floor(p) and hi = min(lo + 1, H - 1), weights 1 - t and t with t = p - lo
    (what TensorFlow's, JAX's and PyTorch's resizes give when enlarging). The taps of
    :func:`resize_images`: positions in float32 as PyTorch computes them, columns first.
    Always a new array."""
    return resize_images(x, (x.shape[1] * factors[0], x.shape[2] * factors[1]), "bilinear",
                         apply_taps=apply_taps)


# ------------------------------------------------------------------ resizing to any size
#
# Keras's Resizing on the PyTorch backend is torch.nn.functional.interpolate (bilinear with
# align_corners=False, "nearest" as "nearest-exact"); TensorFlow's and JAX's resizes give
# the same samples. The source positions are computed in float32, as PyTorch computes them
# for float32 images, with the scale in / out.


def _nearest_taps(n_in: int, n_out: int):
    """Source index of each output along an axis: floor((i + 0.5) * in / out), at most
    in - 1 (the pixel whose extent holds the output pixel's centre), in exact integer
    arithmetic: floor((2i + 1) in / (2 out)). (PyTorch's float32 product can round across an
    exact tie, e.g. output 117 of 2 -> 235; see docs/semantics.md §27.)"""
    i = np.arange(n_out, dtype=np.int64)
    return np.minimum(((2 * i + 1) * n_in) // (2 * n_out), n_in - 1).astype(np.intp)


def _linear_taps(n_in: int, n_out: int):
    """Two taps per output (indices (out, 2), weights (out, 2)): half-pixel centres
    p = max((i + 0.5) * in / out - 0.5, 0), rows floor(p) and the next (clamped to the
    last), weights 1 - t and t with t = p - floor(p)."""
    scale = np.float32(n_in) / np.float32(n_out)
    # One rounding of (i + 0.5) * scale - 0.5, as PyTorch's fused multiply-add gives it: the
    # product of two float32 is exact in float64.
    centre = np.arange(n_out, dtype=np.float32) + np.float32(0.5)
    src = (centre.astype(np.float64) * np.float64(scale) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    lo = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    t = np.clip(src - lo.astype(np.float32), 0.0, 1.0).astype(np.float32)
    hi = np.minimum(lo + 1, n_in - 1)
    return np.stack([lo, hi], axis=1), np.stack([np.float32(1.0) - t, t], axis=1)


def _corner_taps(n_in: int, n_out: int):
    """The taps of PyTorch's ``align_corners=True`` (not a Keras mode: ``from_torch``'s
    interpolate): the first and last pixels' centres map onto each other, so output i samples
    p = i * (in - 1) / (out - 1) (0 for a single output), the scale a float32 quotient and p
    a float32 product as PyTorch computes them; rows floor(p) and the next (clamped), weights
    1 - t and t."""
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0.0)
    src = np.arange(n_out, dtype=np.float32) * scale
    lo = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    t = np.clip(src - lo.astype(np.float32), 0.0, 1.0).astype(np.float32)
    hi = np.minimum(lo + 1, n_in - 1)
    return np.stack([lo, hi], axis=1), np.stack([np.float32(1.0) - t, t], axis=1)


def _cubic_taps(n_in: int, n_out: int, align_corners: bool = False):
    """The taps of PyTorch's bicubic ``interpolate`` (not a Keras mode: Keras's "bicubic"
    depends on its backend): four per output, rows floor(p) - 1 .. floor(p) + 2 clamped to
    the image, weighted by Keys's cubic convolution with A = -0.75 at t = p - floor(p), as
    PyTorch's ``get_cubic_upsample_coefficients``. p = (i + 0.5) * in / out - 0.5, not
    clamped (one rounding, as for bilinear), or i * (in - 1) / (out - 1) with align_corners;
    the weights in float32 in PyTorch's operation order."""
    f32 = np.float32
    i = np.arange(n_out, dtype=f32)
    if align_corners:
        scale = f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else f32(0.0)
        src = i * scale
    else:
        scale = f32(n_in) / f32(n_out)
        src = ((i + f32(0.5)).astype(np.float64) * np.float64(scale) - 0.5).astype(f32)
    lo = np.floor(src)
    t = (src - lo).astype(f32)
    a = f32(-0.75)

    def near(x):  # |x| <= 1: ((A + 2) x - (A + 3)) x x + 1
        return ((a + f32(2)) * x - (a + f32(3))) * x * x + f32(1)

    def far(x):  # 1 < |x| < 2: ((A x - 5A) x + 8A) x - 4A
        return ((a * x - f32(5) * a) * x + f32(8) * a) * x - f32(4) * a

    w = np.stack([far(t + f32(1)), near(t), near(f32(1) - t), far((f32(1) - t) + f32(1))],
                 axis=1).astype(f32)
    base = lo.astype(np.intp)
    idx = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return idx.astype(np.intp), w


def _antialias_taps(n_in: int, n_out: int):
    """Taps of the triangle filter stretched over the scale when shrinking (PyTorch's and
    TensorFlow's antialiased bilinear): output i is centred at c = (i + 0.5) * in / out in
    input coordinates and takes the pixels j within the support s = max(in / out, 1) of c,
    weighted by max(0, 1 - |j + 0.5 - c| / s) and normalized to sum 1. Returns indices and
    weights (out, taps), padded with weight 0 where an output has fewer taps. The centre and
    the filter's argument are rounded to float32 step by step, as PyTorch computes them (a
    float64 centre moved outputs of a 39 -> 53 enlargement by up to 1e-5)."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    centre = scale * (np.arange(n_out, dtype=f32) + f32(0.5))
    first = np.maximum((centre - support + f32(0.5)).astype(np.intp), 0)
    end = np.minimum((centre + support + f32(0.5)).astype(np.intp), n_in)
    taps = int(np.max(end - first))
    j = first[:, None] + np.arange(taps)[None, :]
    arg = (j.astype(f32) - centre[:, None] + f32(0.5)) * invscale
    w = np.maximum(f32(0.0), f32(1.0) - np.abs(arg))
    valid = j < end[:, None]
    w[~valid] = 0.0
    total = np.zeros((n_out, 1), f32)
    for k in range(taps):  # summed in tap order, in float32
        total[:, 0] += w[:, k]
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    return np.minimum(j, n_in - 1), w.astype(f32), valid


def _apply_taps(x, idx, w, axis, valid=None):
    """sum_k x[idx[:, k]] * w[:, k] along ``axis``, the taps added in order. Every tap of an
    output counts, weight 0 included (x * 0 is NaN for an infinite x, as in PyTorch), except
    the ones ``valid`` marks as padding of a shorter list. Outputs with many taps (a large
    shrink) are computed output by output, each a dot product over its contiguous window."""
    n_out, taps = idx.shape
    if taps > 32:
        counts = taps if valid is None else valid.sum(axis=1)
        outs = []
        with np.errstate(invalid="ignore"):  # inf * 0: NaN, as in PyTorch
            for i in range(n_out):
                first, m = int(idx[i, 0]), int(counts[i])
                window = x[(slice(None),) * axis + (slice(first, first + m),)]
                outs.append(np.expand_dims(np.tensordot(window, w[i, :m], axes=([axis], [0])),
                                           axis))
        return np.concatenate(outs, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n_out
    y = None
    for k in range(taps):
        with np.errstate(invalid="ignore"):  # inf * 0: NaN, as in PyTorch
            term = np.take(x, idx[:, k], axis=axis) * w[:, k].reshape(shape)
        if valid is not None and not np.all(valid[:, k]):
            term = np.where(valid[:, k].reshape(shape), term, np.float32(0.0))
        y = term if y is None else y + term
    return y


@functools.lru_cache(maxsize=64)
def _taps(kind: str, n_in: int, n_out: int):
    """The taps of ``kind`` ("nearest", "linear", "antialias", "corners", "cubic",
    "cubic_corners") for one axis, made
    once per size pair (a model resizes its inputs to the same size call after call) and
    read-only."""
    make = {"nearest": _nearest_taps, "linear": _linear_taps, "antialias": _antialias_taps,
            "corners": _corner_taps, "cubic": _cubic_taps,
            "cubic_corners": lambda n_in, n_out: _cubic_taps(n_in, n_out, True)}
    made = make[kind](n_in, n_out)
    for a in made if isinstance(made, tuple) else (made,):
        a.setflags(write=False)
    return made


def resize_images(x, size, interpolation, antialias=False, apply_taps=None,
                  align_corners=False):
    """x (N, H, W, C) float32 resized to (N, size[0], size[1], C), H, W >= 1.

    interpolation "nearest" (the input pixel whose extent holds each output pixel's
    centre), "bilinear" (half-pixel centres, edges clamped; with ``antialias`` the
    triangle filter widens by the scale when shrinking, so every input pixel counts; with
    ``align_corners``, PyTorch's mode that maps the corner pixels onto each other) or
    "bicubic" (PyTorch's, :func:`_cubic_taps`; with or without ``align_corners``).
    Columns first, then rows (PyTorch's order). ``apply_taps`` (default :func:`_apply_taps`)
    applies the bilinear taps along an axis, with its signature. Always a new array."""
    apply_taps = _apply_taps if apply_taps is None else apply_taps
    y = x
    for axis, n_out in ((2, size[1]), (1, size[0])):
        n_in = y.shape[axis]
        if interpolation == "nearest":
            if n_in != n_out:  # (the same size maps each pixel to itself)
                y = np.take(y, _taps("nearest", n_in, n_out), axis=axis)
        elif interpolation == "bicubic":
            y = apply_taps(y, *_taps("cubic_corners" if align_corners else "cubic", n_in,
                                     n_out), axis)
        elif antialias:
            idx, w, valid = _taps("antialias", n_in, n_out)
            y = apply_taps(y, idx, w, axis, valid)
        elif align_corners:
            y = apply_taps(y, *_taps("corners", n_in, n_out), axis)
        else:  # also at the same size: weights 1 and 0, as PyTorch computes them
            y = apply_taps(y, *_taps("linear", n_in, n_out), axis)
    return y.copy() if y is x else y.astype(np.float32, copy=False)
