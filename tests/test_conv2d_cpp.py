"""The C++ conv2d (fastlayers._core.conv2d, csrc/ops/conv2d.cpp) against the NumPy path.

These call the core directly, so they run whether or not "conv2d" is in CPP_OPS.
They aim at the driver's boundaries: pixel counts around its patch tiles (48..240
pixels, one tile below 240 pixels), patch lengths K around 16/256/512 multiples (the
GEMM's K block is 512), kernels larger than the input, empty batches, the 1x1
stride-1 no-copy path, groups, the indirect (igemm) path's kernel-row and tap chunks,
its column blocks and its K > 4096 fallback, and bitwise equality across thread counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close

import fastlayers as fl
from fastlayers import _backend
from fastlayers import _validation as V
from fastlayers._numpy import conv2d as np_conv2d

pytestmark = pytest.mark.skipif(
    NUMPY_ONLY or not _backend.core_available(), reason="compiled core not in this run"
)


def _geometry(x_shape, k_shape, strides=1, padding="valid", dilation_rate=1, groups=1):
    return V.conv2d_geometry("conv2d", x_shape, k_shape, strides, padding, dilation_rate, groups)


def _core_conv(x, kernel, bias, act_id=0, **kw):
    strides, dilation, pads, _, groups = _geometry(x.shape, kernel.shape, **kw)
    return _backend._core.conv2d(x, kernel, bias, strides, dilation, pads, groups, act_id)


def _numpy_conv(x, kernel, bias, act="linear", **kw):
    strides, dilation, pads, out_hw, groups = _geometry(x.shape, kernel.shape, **kw)
    return np_conv2d.conv2d(x, kernel, bias, strides, dilation, pads, out_hw, groups, act)


def _data(rng, x_shape, k_shape, bias=True):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[3]).astype(np.float32) if bias else None
    return x, k, b


def _compare(x, kernel, bias, act="linear", act_id=0, **kw):
    y = _core_conv(x, kernel, bias, act_id, **kw)
    want = _numpy_conv(x, kernel, bias, act, **kw)
    kh, kw_, cg, _ = kernel.shape
    mag = max(float(np.abs(x).max(initial=0) * np.abs(kernel).max()), 1.0)
    assert_close(y, want, k=kh * kw_ * cg, magnitude=mag)
    return y


# (x shape, kernel shape, kwargs): pixel counts N*OH*OW around the tile sizes, K around
# 16/256/512 multiples.
EDGE_CASES = {
    "pix239-k16": ((1, 1, 239, 16), (1, 1, 16, 5), dict(strides=1, padding="same")),
    "pix240-k27": ((1, 16, 15, 3), (3, 3, 3, 8), dict(padding="same")),
    "pix241-k18": ((1, 1, 241, 2), (3, 3, 2, 7), dict(padding="same")),
    "pix47-k256": ((1, 1, 47, 16), (4, 4, 16, 3), dict(padding="same")),
    "pix48-k255": ((1, 6, 8, 17), (3, 5, 17, 18), dict(padding="same")),
    "pix49-k257": ((1, 7, 7, 257), (1, 1, 257, 17), dict(strides=1, padding="same")),
    "pix289-k256-strided": ((1, 34, 34, 16), (4, 4, 16, 33), dict(strides=2, padding="same")),
    "pix480-k511": ((2, 12, 20, 73), (1, 7, 73, 16), dict(padding="same")),
    "pix481-k513": ((1, 13, 37, 57), (3, 3, 57, 20), dict(padding="same")),
    "pix961-k1024-f257": ((1, 31, 31, 64), (4, 4, 64, 257), dict(padding="same")),
    "pix576-k576-f64": ((1, 24, 24, 64), (3, 3, 64, 64), dict(padding="same")),
    "batch-split-tiles": ((5, 9, 11, 8), (3, 3, 8, 24), dict(padding="same")),
    "groups4-multi-tile": ((2, 17, 13, 12), (3, 3, 3, 8), dict(padding="same", groups=4)),
    "depthwise-multi-tile": ((1, 20, 20, 8), (3, 3, 1, 16), dict(padding="same", groups=8)),
    "depthwise-direct-45ch": ((2, 20, 19, 45), (3, 3, 1, 45), dict(padding="same", groups=45)),
    "depthwise-direct-stride2": ((1, 23, 24, 64), (3, 3, 1, 64), dict(strides=2, groups=64)),
    "depthwise-direct-dilated": ((1, 15, 16, 40), (5, 3, 1, 40), dict(dilation_rate=2, groups=40)),
    "depthwise-direct-1x1": ((2, 9, 9, 33), (1, 1, 1, 33), dict(groups=33)),
    # Multiplier > 1: one direct-kernel pass per plane of output channels c*m + j.
    "depthwise-mult3-45ch": ((2, 11, 9, 45), (3, 3, 1, 135), dict(padding="same", groups=45)),
    "depthwise-mult4-dilated-s2": (
        (1, 14, 13, 9),
        (5, 3, 1, 36),
        dict(strides=(1, 2), dilation_rate=1, padding="same", groups=9),
    ),
    "depthwise-mult2-dilated": ((1, 15, 16, 16), (3, 3, 1, 32), dict(dilation_rate=2, groups=16)),
    "one-channel-32-filters": ((1, 9, 9, 1), (3, 3, 1, 32), dict(padding="same")),
    "1x1-nocopy-groups": ((3, 11, 13, 12), (1, 1, 4, 9), dict(groups=3)),
    "1x1-nocopy-big": ((2, 17, 19, 33), (1, 1, 33, 70), {}),
    "1x1-stride2": ((2, 17, 19, 33), (1, 1, 33, 70), dict(strides=2, padding="same")),
    "dilation-rows": ((2, 15, 14, 5), (3, 2, 5, 6), dict(dilation_rate=(3, 2), padding="same")),
    # The indirect path: kernel-row chunks (C < 16) with clipped edge rows, the 12 x 8 tile,
    # tap chunks, tiles of 240 pixels +- 1, column blocks, and the im2col fallback (K > 4096).
    "rgb-stem-like-s2": ((1, 45, 47, 3), (3, 3, 3, 32), dict(strides=2, padding="same")),
    "rgb-seed-like-f8": ((4, 16, 17, 3), (3, 3, 3, 8), {}),
    "rgb-pix241-one-row": ((1, 1, 243, 3), (1, 3, 3, 5), {}),
    "rgb-pix239-one-row": ((1, 1, 241, 3), (1, 3, 3, 13), {}),
    "c7-left-pad-stride3": ((2, 11, 14, 7), (3, 5, 7, 9), dict(strides=3, padding="same")),
    "c16-taps-left-pad-stride3": ((1, 11, 14, 16), (3, 5, 16, 9), dict(strides=3, padding="same")),
    "f130-column-blocks": ((1, 9, 8, 64), (3, 3, 64, 130), dict(padding="same")),
    "k4680-im2col-fallback": ((1, 5, 4, 520), (3, 3, 520, 6), dict(padding="same")),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_core_conv2d_tile_edges(rng, case, bias):
    x_shape, k_shape, kw = EDGE_CASES[case]
    x, k, b = _data(rng, x_shape, k_shape, bias)
    _compare(x, k, b, **kw)


@pytest.mark.parametrize(
    "x_shape,k_shape,kw",
    [
        ((2, 2, 3, 3), (7, 7, 3, 5), dict(padding="same")),
        ((1, 1, 1, 4), (5, 3, 4, 2), dict(padding="same", strides=2)),
        ((1, 2, 2, 4), (3, 3, 2, 6), dict(padding="same", dilation_rate=2, groups=2)),
        ((3, 3, 2, 6), (6, 6, 1, 6), dict(padding="same", groups=6)),
        ((1, 4, 3, 2), (9, 8, 2, 20), dict(padding="same", strides=(3, 2))),
    ],
)
def test_core_conv2d_kernel_larger_than_input(rng, x_shape, k_shape, kw):
    x, k, b = _data(rng, x_shape, k_shape)
    _compare(x, k, b, **kw)


@pytest.mark.parametrize("pads", [(0, 2, 0, 0), (0, 0, 0, 3), (0, 1, 0, 1), (1, 0, 0, 0)])
@pytest.mark.parametrize("groups", [1, 3])
def test_core_conv2d_1x1_with_explicit_pads(rng, pads, groups):
    """A 1x1 kernel with pads the caller chose (Conv2DTranspose's phases pad below and right):
    the output has more pixels than x, so the no-copy 1x1 GEMM must not run. It did for
    bottom/right pads, reading past the end of x."""
    x, k, b = _data(rng, (2, 5, 4, 6), (1, 1, 6 // groups, 9))
    top, bottom, left, right = pads
    oh, ow = 5 + top + bottom, 4 + left + right
    y = _backend._core.conv2d(x, k, b, (1, 1), (1, 1), pads, groups, 0)
    want = np_conv2d.conv2d(x, k, b, (1, 1), (1, 1), pads, (oh, ow), groups, "linear")
    assert_close(y, want, k=6)


def test_core_conv2d_empty_batch():
    x = np.ones((0, 5, 6, 4), np.float32)
    k = np.ones((3, 3, 2, 6), np.float32)
    y = _core_conv(x, k, np.ones(6, np.float32), padding="same", groups=2)
    assert y.shape == (0, 5, 6, 6) and y.dtype == np.float32
    y = _core_conv(x, k[:1, :1], None, groups=2)  # 1x1 no-copy path
    assert y.shape == (0, 5, 6, 6)


@pytest.mark.parametrize(
    "x_shape,k_shape,kw",
    [
        ((3, 21, 23, 16), (3, 3, 16, 40), dict(padding="same")),  # many tiles
        ((1, 7, 7, 64), (3, 3, 64, 96), dict(padding="same")),  # one tile, GEMM threads inside
        ((2, 30, 30, 32), (1, 1, 32, 48), {}),  # 1x1 no-copy
        ((2, 19, 17, 12), (3, 3, 4, 12), dict(groups=3, strides=2, padding="same")),
        ((1, 33, 35, 6), (5, 5, 1, 6), dict(groups=6, padding="same")),
        ((2, 30, 31, 40), (3, 3, 1, 40), dict(groups=40, padding="same")),
        ((2, 30, 31, 40), (3, 3, 1, 80), dict(groups=40, padding="same")),  # multiplier 2
        ((1, 45, 47, 3), (3, 3, 3, 32), dict(strides=2, padding="same")),  # row chunks
        ((4, 20, 21, 3), (3, 3, 3, 8), {}),  # 12 x 8 tiles
        ((1, 9, 8, 64), (3, 3, 64, 130), dict(padding="same")),  # column blocks
        ((2, 13, 11, 24), (3, 3, 24, 20), dict(dilation_rate=2, padding="same")),  # tap chunks
    ],
)
def test_core_conv2d_bitwise_for_any_thread_count(rng, x_shape, k_shape, kw):
    x, k, b = _data(rng, x_shape, k_shape)
    old = fl.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            fl.set_num_threads(t)
            outs.append(_core_conv(x, k, b, **kw))
    finally:
        fl.set_num_threads(old)
    for y in outs[1:]:
        assert np.array_equal(outs[0], y)


@pytest.mark.parametrize(
    "c, groups, f", [(6, 2, 20), (6, 6, 6), (8, 8, 24)], ids=["gemm", "depthwise", "depthwise-m3"]
)
def test_core_conv2d_every_fused_activation(rng, c, groups, f):
    x, k, b = _data(rng, (2, 9, 10, c), (3, 3, c // groups, f))
    from fastlayers._numpy.activations import ACTIVATIONS

    names = [n for n in _backend.cpp_activation_ids() if n in ACTIVATIONS]
    assert len(names) >= 10
    for name in names:
        act_id = _backend.cpp_activation_ids()[name]
        y = _core_conv(x, k, b, act_id, padding="same", groups=groups)
        want = _numpy_conv(x, k, b, name, padding="same", groups=groups)
        mag = max(float(np.abs(x).max() * np.abs(k).max()), 1.0)
        assert_close(y, want, k=27, magnitude=mag, err_msg=name)


def test_packed_conv_matches_per_call_packing(rng):
    x, k, b = _data(rng, (2, 11, 9, 6), (3, 3, 3, 10))
    core = _backend._core
    packed = core.PackedConv(k, b, 2)
    assert packed.kernel_shape == (3, 3, 3, 10) and packed.groups == 2 and packed.has_bias
    assert packed.nbytes > 0 and "PackedConv" in repr(packed)
    strides, dilation, pads, _, groups = _geometry(x.shape, k.shape, padding="same", groups=2)
    y1 = core.conv2d(x, packed, None, strides, dilation, pads, groups, 0)
    y2 = core.conv2d(x, k, b, strides, dilation, pads, groups, 0)
    assert np.array_equal(y1, y2)
    with pytest.raises(ValueError, match="bias"):
        core.conv2d(x, packed, b, strides, dilation, pads, groups, 0)
    with pytest.raises(ValueError, match="groups"):
        core.conv2d(x, packed, None, strides, dilation, pads, 1, 0)


def test_core_conv2d_rejects_without_copying():
    core = _backend._core
    k = np.ones((3, 3, 2, 4), np.float32)
    args = ((1, 1), (1, 1), (1, 1, 1, 1), 1, 0)
    with pytest.raises(TypeError, match="float32"):
        core.conv2d(np.ones((1, 5, 5, 2)), k, None, *args)
    with pytest.raises(ValueError, match="C-contiguous"):
        core.conv2d(np.ones((1, 5, 5, 4), np.float32)[..., ::2], k, None, *args)
    with pytest.raises(ValueError, match="ndim"):
        core.conv2d(np.ones((5, 5, 2), np.float32), k, None, *args)
    with pytest.raises(ValueError, match="channels"):
        core.conv2d(np.ones((1, 5, 5, 3), np.float32), k, None, *args)
    with pytest.raises(ValueError, match="activation_id"):
        core.conv2d(np.ones((1, 5, 5, 2), np.float32), k, None, (1, 1), (1, 1), (1, 1, 1, 1), 1, -1)


# conv2d_into: the output written through a strided view (Conv2DTranspose's phases). Cases
# cover each algorithm: indirect (tap and row chunks, column blocks), tiles (K > 4096: the
# dense temporary), depthwise (groups == C), and the 1x1 kernel with a pad (through the indirect
# kernel; without one, the GEMM per output row: the next test).
INTO_CASES = {
    "indirect-taps": ((2, 9, 11, 24), (2, 2, 24, 20), 1),
    "indirect-rows": ((1, 13, 14, 3), (3, 3, 3, 8), 1),
    "indirect-columns": ((1, 6, 7, 64), (3, 3, 64, 130), 1),
    "tiles": ((1, 5, 6, 520), (3, 3, 520, 9), 1),
    "depthwise": ((2, 8, 9, 12), (3, 3, 1, 12), 12),
    "one-by-one": ((2, 7, 5, 16), (1, 1, 16, 23), 1),
    "grouped": ((1, 9, 10, 12), (2, 3, 4, 18), 3),
}


def _check_into_strided_view(x, packed, pads, act_id, want, threads):
    """conv2d_into through out = y[:, 1::2, 2::3, 1:F+1][:, :OH, :OW] of a larger array full
    of NaN, on ``threads`` threads: out gets ``want``'s bits (conv2d's), and no other element
    of y is written."""
    n, oh, ow, f = want.shape
    y = np.full((n, 2 * oh + 1, 3 * ow + 2, f + 3), np.nan, np.float32)
    out = y[:, 1::2, 2::3, 1 : f + 1][:, :oh, :ow]
    old = fl.get_num_threads()
    try:
        fl.set_num_threads(threads)
        assert _backend._core.conv2d_into(out, x, packed, (1, 1), (1, 1), pads, act_id) is None
    finally:
        fl.set_num_threads(old)
    assert np.array_equal(out, want)
    written = np.zeros(y.shape, bool)
    written[:, 1::2, 2::3, 1 : f + 1][:, :oh, :ow] = True
    assert np.isnan(y[~written]).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", list(INTO_CASES))
def test_core_conv2d_into_strided_view_equals_conv2d(rng, case, threads):
    """out = y[:, r::s, q::s][:, :OH, :OW] of a larger array: the view's elements get
    conv2d's bits (pads (top, left) given, the bottom and right zero as far as OH and OW
    reach), and no other element of y is written."""
    x_shape, k_shape, groups = INTO_CASES[case]
    x, k, b = _data(rng, x_shape, k_shape)
    top, left = 1, 0  # and 2 rows and 1 column of zeros after
    want = _backend._core.conv2d(x, k, b, (1, 1), (1, 1), (top, 2, left, 1), groups, 0)
    packed = _backend._core.PackedConv(k, b, groups)
    _check_into_strided_view(x, packed, (top, left), 0, want, threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_shape, k_shape, groups", [
    ((2, 7, 5, 16), (1, 1, 16, 23), 1),
    ((1, 9, 10, 12), (1, 1, 4, 18), 3),
    ((3, 1, 1, 1), (1, 1, 1, 1), 1),
    ((1, 40, 33, 24), (1, 1, 24, 40), 1),  # rows enough for both threads
])
def test_core_conv2d_into_one_by_one_gemm_per_row(rng, x_shape, k_shape, groups, threads):
    """A 1x1 kernel without pads (Conv2DTranspose's RowBlocks): one GEMM per output row and
    group, written through the view in place. conv2d's bits (tanh in the epilogue), and no
    other element of y is written."""
    x, k, b = _data(rng, x_shape, k_shape)
    tanh = _backend.cpp_activation_ids()["tanh"]
    want = _backend._core.conv2d(x, k, b, (1, 1), (1, 1), (0, 0, 0, 0), groups, tanh)
    packed = _backend._core.PackedConv(k, b, groups)
    _check_into_strided_view(x, packed, (0, 0), tanh, want, threads)


@pytest.mark.parametrize("case", ["indirect-taps", "tiles", "depthwise"])
def test_core_conv2d_into_strides_dilation_activation(rng, case):
    x_shape, k_shape, groups = INTO_CASES[case]
    x, k, b = _data(rng, x_shape, k_shape)
    act_id = _backend.cpp_activation_ids()["tanh"]
    want = _backend._core.conv2d(x, k, b, (2, 1), (1, 2), (1, 0, 2, 0), groups, act_id)
    y = np.zeros((want.shape[0], want.shape[1], 2 * want.shape[2], want.shape[3]), np.float32)
    packed = _backend._core.PackedConv(k, b, groups)
    _backend._core.conv2d_into(y[:, :, ::2], x, packed, (2, 1), (1, 2), (1, 2), act_id)
    assert np.array_equal(y[:, :, ::2], want)
    assert not y[:, :, 1::2].any()


def test_core_conv2d_into_dense_and_size_one_views(rng):
    """A dense out, and views whose size-1 dimensions have strides that are never used."""
    core = _backend._core
    x, k, b = _data(rng, (1, 4, 1, 5), (2, 1, 5, 6))
    packed = core.PackedConv(k, b)
    want = core.conv2d(x, k, b, (1, 1), (1, 1), (0, 0, 0, 0), 1, 0)
    out = np.empty_like(want)
    core.conv2d_into(out, x, packed, (1, 1), (1, 1), (0, 0))
    assert np.array_equal(out, want)
    big = np.zeros((3, 3, 4, 8), np.float32)
    view = big[1:2, :, 2:3, 1:7]  # N = 1 and OW = 1 taken from a larger array
    core.conv2d_into(view, x[:, :3], packed, (1, 1), (1, 1), (0, 0))
    assert np.array_equal(view, core.conv2d(x[:, :3], k, b, (1, 1), (1, 1), (0, 1, 0, 0), 1, 0))
    assert np.count_nonzero(big) == np.count_nonzero(view)


def test_core_conv2d_into_rejects_bad_arguments():
    core = _backend._core
    x = np.ones((1, 5, 5, 2), np.float32)
    k = np.ones((3, 3, 2, 4), np.float32)
    packed = core.PackedConv(k)
    args = ((1, 1), (1, 1), (1, 1))
    out = np.zeros((1, 5, 5, 4), np.float32)
    with pytest.raises(TypeError, match="PackedConv"):
        core.conv2d_into(out, x, k, *args)
    with pytest.raises(TypeError, match="float32"):
        core.conv2d_into(out.astype(np.float64), x, packed, *args)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        core.conv2d_into(out.tolist(), x, packed, *args)
    with pytest.raises(ValueError, match="shape"):
        core.conv2d_into(out[..., :3], x, packed, *args)
    with pytest.raises(ValueError, match="shape"):
        core.conv2d_into(np.zeros((2, 5, 5, 4), np.float32), x, packed, *args)
    with pytest.raises(ValueError, match="shape"):
        core.conv2d_into(out[:, :0], x, packed, *args)
    with pytest.raises(ValueError, match="contiguous last dim"):
        core.conv2d_into(np.zeros((1, 5, 5, 8), np.float32)[..., ::2], x, packed, *args)
    with pytest.raises(ValueError, match="writable"):
        ro = out.copy()
        ro.flags.writeable = False
        core.conv2d_into(ro, x, packed, *args)
    with pytest.raises(ValueError, match="overlap one another"):
        flat = np.zeros(200, np.float32)
        strides = (400, 40, 8, 4)  # pixels 2 floats apart, 4 channels each
        core.conv2d_into(np.lib.stride_tricks.as_strided(flat, (1, 5, 5, 4), strides), x,
                         packed, *args)
    with pytest.raises(ValueError, match="overlap x"):
        both = np.zeros((2, 5, 5, 2), np.float32)  # out = (1, 5, 5, 4) on x's memory
        core.conv2d_into(both.reshape(1, 5, 5, 4), both[1:], packed, *args)
    with pytest.raises(ValueError, match="pads"):
        core.conv2d_into(out, x, packed, (1, 1), (1, 1), (-1, 0))
    with pytest.raises(ValueError, match="strides and dilation"):
        core.conv2d_into(out, x, packed, (0, 1), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="channels"):
        core.conv2d_into(out, np.ones((1, 5, 5, 3), np.float32), packed, *args)
    with pytest.raises(ValueError, match="activation_id"):
        core.conv2d_into(out, x, packed, *args, -1)
    with pytest.raises(ValueError, match="x must have a height and a width of at least 1"):
        core.conv2d_into(out, np.ones((1, 0, 5, 2), np.float32), packed, *args)
    assert not out.any()
