"""Max and average pooling in NumPy (docs/semantics.md §21).

The C++ kernel (csrc/ops/pooling.cpp) follows this code tap for tap: the same bits on both
paths. Layout: x (N, H, W, C)
NHWC; a 1D op is the 2D one with H = 1. The result is built tap by tap: for each offset in
the window, one strided slice of the (padded) input is folded in with np.maximum / np.add,
so no patch matrix is built. The offsets that read padding in every window are skipped
(:func:`_clipped`): the work and the padding do not grow with a window larger than the input.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def pool_geometry(size: int, pool: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(out, before, after) of one spatial axis; the caller checked ``size >= pool`` for
    "valid". "same": ceil(size / stride) outputs, the odd padding pixel after (TF rule)."""
    if padding == "valid":
        return (size - pool) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + pool - size, 0)
    return out, total // 2, total - total // 2


def _clipped(size: int, pool: int, stride: int, out: int, before: int) -> tuple[int, int, int]:
    """(taps, before, after) of one axis once the window offsets that read padding in
    every window are dropped: offsets below ``before - (out - 1) * stride`` (left of the
    input even in the last window) and from ``size + before`` on (right of it even in the
    first). Each window keeps the input pixels it covers, in the same order; a dropped tap
    changed nothing but the sign of a zero sum (see :func:`avg_pool2d`)."""
    lo = max(0, before - (out - 1) * stride)
    taps = min(pool, size + before) - lo
    before -= lo
    return taps, before, max(0, (out - 1) * stride + taps - before - size)


def _geometry(x: np.ndarray, pool, strides, pads, out_hw):
    """(taps, pads) of :func:`_clipped` for both axes: taps (rows, cols), pads (top,
    bottom, left, right)."""
    (th, top, bottom), (tw, left, right) = (
        _clipped(size, p, s, o, before)
        for size, p, s, o, before in zip(x.shape[1:3], pool, strides, out_hw, pads[::2])
    )
    return (th, tw), (top, bottom, left, right)


def _taps(xp: np.ndarray, pool, strides, out_hw):
    """For each window offset (a, b), the strided slice of xp it meets:
    tap[n, i, j, c] = xp[n, i * sh + a, j * sw + b, c]."""
    (ph, pw), (sh, sw), (oh, ow) = pool, strides, out_hw
    for a in range(ph):
        for b in range(pw):
            yield xp[:, a : a + (oh - 1) * sh + 1 : sh, b : b + (ow - 1) * sw + 1 : sw]


def max_pool2d(x: np.ndarray, pool, strides, pads, out_hw) -> np.ndarray:
    """Max over each window; padding is -inf, so it never wins (NaN propagates)."""
    pool, pads = _geometry(x, pool, strides, pads, out_hw)
    top, bottom, left, right = pads
    xp = x
    if any(pads):
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    taps = _taps(xp, pool, strides, out_hw)
    y = np.array(next(taps), dtype=F32, order="C")
    for tap in taps:
        np.maximum(y, tap, out=y)
    return y


def _counts(size: int, pool: int, stride: int, out: int, before: int) -> np.ndarray:
    """How many input pixels (not padding) each window of one axis covers."""
    start = np.arange(out) * stride - before
    return (np.minimum(start + pool, size) - np.maximum(start, 0)).astype(F32)


def avg_pool2d(x: np.ndarray, pool, strides, pads, out_hw) -> np.ndarray:
    """Mean over each window of the input pixels it covers: padding is not counted
    (Keras's rule on TensorFlow and JAX)."""
    taps_hw, pads = _geometry(x, pool, strides, pads, out_hw)
    top, bottom, left, right = pads
    xp = x
    if any(pads):
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    taps = _taps(xp, taps_hw, strides, out_hw)
    y = np.array(next(taps), dtype=F32, order="C")
    for tap in taps:
        np.add(y, tap, out=y)
    ch = _counts(x.shape[1], taps_hw[0], strides[0], out_hw[0], top)
    cw = _counts(x.shape[2], taps_hw[1], strides[1], out_hw[1], left)
    if taps_hw != tuple(pool):
        # The dropped taps added 0: in a window that covers padding, a sum of -0 was +0
        # (as on the C++ path, csrc/ops/pooling.cpp).
        padded = (ch < pool[0])[:, None] | (cw < pool[1])[None, :]
        np.add(y, F32(0), out=y, where=padded[None, :, :, None])
    if not any(pads):
        y /= F32(taps_hw[0] * taps_hw[1])
        return y
    y /= (ch[:, None] * cw[None, :])[None, :, :, None]
    return y


def pool_depth(x: np.ndarray, pool: int, stride: int, pads: tuple, out: int,
               average: bool) -> np.ndarray:
    """The depth step of 3D pooling: x (N, D, ...) (each depth slice pooled in 2D already)
    -> (N, out, ...), output o over depths o * stride - pads[0] ... + pool - 1 inside [0, D).
    Max: padding is -inf (it never wins; NaN propagates). Average: the mean of the covered
    slices (padding not counted), summed in float32 in depth order."""
    d = x.shape[1]
    # the window offsets that read padding in every window dropped (:func:`_clipped`), so
    # the padding is at most the input's depth whatever the pool size
    taps, before, after = _clipped(d, pool, stride, out, pads[0])
    fill = np.float32(0.0) if average else np.float32(-np.inf)
    xp = np.pad(x, ((0, 0), (before, after)) + ((0, 0),) * (x.ndim - 2), constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(xp, taps, axis=1)[:, ::stride][:, :out]
    if not average:
        return np.ascontiguousarray(windows.max(axis=-1))
    covered = np.pad(np.ones(d, np.float32), (before, after))
    counts = np.lib.stride_tricks.sliding_window_view(covered, taps)[::stride][:out].sum(axis=1)
    with np.errstate(invalid="ignore"):  # +inf and -inf in one window: NaN, no warning
        total = windows.sum(axis=-1, dtype=np.float32)
    shape = (1, out) + (1,) * (x.ndim - 2)
    return np.ascontiguousarray(total / counts.reshape(shape), dtype=np.float32)


def adaptive_windows(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive pooling windows along one axis: output i pools input
    [floor(i * size / out), ceil((i + 1) * size / out)) (Keras's adaptive pooling layers run
    PyTorch's op on its torch backend and the same windows on the others)."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def adaptive_pool(x: np.ndarray, output_size, mode: str) -> np.ndarray:
    """Adaptive max or average pooling of x (N, *spatial, C) to (N, *output_size, C), one
    spatial axis after the other (the windows are products of per-axis windows). An average
    sums its window in float64, the first axis's inputs, then those sums along the next, and
    divides once by the window's size (as PyTorch, which sums in double). An axis that ``out``
    divides has disjoint windows of in / out: one reshaped reduction (14 -> 7, torchvision's
    VGG; the same windows and values, about twice as fast). x is made C-contiguous first: the
    order of NumPy's reductions follows the memory layout (a channels_first layer hands a
    moved-axis view, whose contiguous axis W NumPy would sum pairwise)."""
    x = np.ascontiguousarray(x)
    y = x
    counts = []
    for axis, out in enumerate(output_size, start=1):
        n_in = y.shape[axis]
        with np.errstate(invalid="ignore"):  # +inf and -inf in one window: NaN, no warning
            if n_in % out == 0:
                split = y.reshape(*y.shape[:axis], out, n_in // out, *y.shape[axis + 1:])
                y = reduce_in_order(mode, split, axis + 1)
                counts.append(np.full(out, n_in // out))
                continue
            start, end = adaptive_windows(n_in, out)
            parts = []
            for s, e in zip(start, end):
                index = (slice(None),) * axis + (slice(s, e),)
                window = y[index]
                parts.append(reduce_in_order(mode, window, axis, keepdims=True))
            y = np.concatenate(parts, axis=axis)
            counts.append(end - start)
    if mode != "max":  # the window sizes, (*output_size), broadcast over N and C
        size = counts[0].astype(np.float64)
        for c in counts[1:]:
            size = np.multiply.outer(size, c)
        with np.errstate(invalid="ignore"):
            y /= size[..., None]  # in place: y is a float64 sum made above
    return y.astype(F32, copy=True) if y is x else y.astype(F32, copy=False)


def reduce_in_order(mode: str, a: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """The maximum, or the float64 sum, of ``a`` along ``axis`` with its elements folded in
    order (the sum from 0): the order of the adaptive and global poolings' C++ kernels. NumPy
    reduces an outer axis that way, but when every axis after ``axis`` has size one (one
    channel) ``axis`` is its contiguous inner loop, which it reduces pairwise (sums) or with
    its vector loop (maxima: ties of -0 and +0, NaN signs): accumulate keeps the order there
    (``+ 0.0``: a sum of -0 alone is +0, as from 0)."""
    if all(d == 1 for d in a.shape[axis + 1:]):
        if mode == "max":
            total = np.maximum.accumulate(a, axis=axis).take([-1], axis=axis)
        else:
            total = np.add.accumulate(a, axis=axis, dtype=np.float64).take([-1], axis=axis) + 0.0
        return total if keepdims else np.squeeze(total, axis=axis)
    if mode == "max":
        return a.max(axis=axis, keepdims=keepdims)
    return a.sum(axis=axis, keepdims=keepdims, dtype=np.float64)


def global_pool(x: np.ndarray, mode: str, axis: int) -> np.ndarray:
    """Global pooling of float32 x (N, pixels, C) (axis 1) or (N, C, pixels) (axis 2) over the
    pixels. "average": the float64 sum divided once by the count; "max": NumPy's maximum
    folded over the pixels (NaN propagates). Over axis 1 the pixels are folded in order
    (:func:`reduce_in_order`), as the C++ kernel (``_core.global_pool``) does, so the two give
    the same bits."""
    if mode == "max":
        return reduce_in_order("max", x, 1) if axis == 1 else np.maximum.reduce(x, axis=axis)
    total = (reduce_in_order("average", x, 1) if axis == 1
             else x.sum(axis=axis, dtype=np.float64))
    return (total / np.float64(x.shape[axis])).astype(np.float32)
