"""The 3D layers (Conv3D, Conv3DTranspose, MaxPooling3D, AveragePooling3D,
GlobalMax/AveragePooling3D, ZeroPadding3D, Cropping3D, UpSampling3D): Keras fixtures at edge
shapes on both paths, PyTorch's own conv3d and 3D pools, symbolic models, from_torch, and bad
arguments.

Fixtures: tests/golden/volume_layers.npz and models_volumes.npz (with the model files, which
tests/test_load_keras.py loads), made by tests/golden/make_models_volumes.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close
from golden_models import read_layer_cases, run_layer_case

import fastlayers as fl
from fastlayers import Input, Model
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
LAYER_CASES = read_layer_cases("volume_layers.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    got, y, x, weights = run_layer_case(LAYER_CASES, case, backend)
    assert np.isfinite(y).all()
    k = weights[0][..., 0].size if weights else 27
    assert_close(got, y, k=k, magnitude=float(np.abs(x).max()))


def test_fixture_cases_cover_the_edges():
    assert {"conv3d_groups", "conv3d_dilated", "conv3d_same_strides", "conv3d_depth_one",
            "conv3d_channels_first", "convT3d_output_padding", "convT3d_stride_over_kernel",
            "convT3d_channels_first", "maxpool3d_same", "avgpool3d_same", "gavg3d_keepdims_cf",
            "zeropad3d", "crop3d", "upsample3d"} <= set(LAYER_CASES)


def _torch_same(x, kernel, strides, dilation, fill=0.0):
    """x (N, C, D, H, W) padded with ``fill`` as Keras's "same" (the extra step after)."""
    import torch

    pads = []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    flat = [p for pair in reversed(pads) for p in pair]
    return torch.nn.functional.pad(x, flat, value=fill)


# 16+ channels per group: the C++ path reads x in place (test_conv3d_in_place_*).
IN_PLACE_CASES = [  # (shape, filters, kernel, strides, dilation, padding, groups)
    ((2, 6, 9, 10, 16), 40, (3, 3, 3), (1, 1, 1), (1, 1, 1), "same", 1),
    ((1, 7, 8, 9, 32), 20, (3, 2, 3), (2, 2, 2), (1, 1, 1), "same", 2),
    ((1, 9, 7, 8, 17), 31, (2, 3, 2), (1, 1, 1), (2, 1, 3), "valid", 1),
    ((1, 1, 13, 11, 19), 16, (1, 3, 3), (1, 3, 2), (1, 1, 1), "same", 1),
    ((3, 4, 5, 6, 24), 7, (4, 2, 2), (1, 2, 1), (1, 1, 1), "same", 1),  # even depth, 7 filters
]


@pytest.mark.parametrize("shape,filters,kernel,strides,dilation,padding,groups", [
    ((2, 5, 6, 7, 4), 3, (3, 3, 3), (1, 1, 1), (1, 1, 1), "valid", 1),
    ((1, 9, 8, 7, 6), 4, (2, 3, 2), (2, 3, 1), (1, 1, 1), "same", 2),
    ((2, 7, 5, 6, 3), 6, (3, 1, 2), (1, 1, 1), (3, 1, 2), "same", 3),
    ((1, 1, 17, 16, 5), 2, (1, 3, 3), (1, 2, 2), (1, 1, 1), "valid", 1),
    ((1, 4, 4, 4, 32), 33, (3, 3, 3), (1, 1, 1), (1, 1, 1), "same", 1),
] + IN_PLACE_CASES)
def test_conv3d_matches_torch(any_backend, rng, shape, filters, kernel, strides, dilation,
                              padding, groups):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(F32)
    layer = L.Conv3D(filters, kernel, strides, padding, dilation_rate=dilation, groups=groups,
                     bias_initializer="glorot_uniform", seed=3)
    got = layer(x)
    k, b = layer.get_weights()
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3)
    if padding == "same":
        xt = _torch_same(xt, kernel, strides, dilation)
    want = torch.nn.functional.conv3d(
        xt, torch.from_numpy(k).permute(4, 3, 0, 1, 2), torch.from_numpy(b), stride=strides,
        dilation=dilation, groups=groups).permute(0, 2, 3, 4, 1).numpy()
    assert_close(got, want, k=int(np.prod(kernel)) * shape[-1] // groups,
                 magnitude=float(np.abs(x).max()))


@pytest.mark.skipif(NUMPY_ONLY, reason="the C++ path (FASTLAYERS_TEST_NUMPY_ONLY=1 asked none)")
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("case", IN_PLACE_CASES)
def test_conv3d_in_place_is_the_stacked_conv2d(rng, case, activation):
    """With 16+ channels per group the C++ path reads x in place (functional.run_conv3d): the
    bits of the conv2d of the depth-stacked input, on every ISA (the same chains), channels
    first too, and from a layer's direct-call runner."""
    from fastlayers import _validation as V
    from fastlayers import functional as Fn
    from fastlayers._cpp import conv2d as cpp_conv

    shape, filters, kernel, strides, dilation, padding, groups = case
    x = rng.standard_normal(shape).astype(F32)
    layer = L.Conv3D(filters, kernel, strides, padding, dilation_rate=dilation, groups=groups,
                     activation=activation, bias_initializer="glorot_uniform", seed=5)
    with fl.use_backend("cpp"):
        got = layer(x)
        packed, kd = layer._packed, kernel[0]
        # The path under test ran, where the ISA has an indirect GEMM (all but NEON).
        assert cpp_conv.conv3d_reads_in_place(packed, kd) == packed.indirect
        a, od, depth = V.check_conv3d(x, None, None, strides, padding, dilation, groups,
                                      activation, build=layer._ready)
        stacked = Fn.run_conv2d(a, packed).reshape(shape[0], od, *got.shape[2:])
        np.testing.assert_array_equal(got, stacked)
        cf = L.Conv3D(filters, kernel, strides, padding, data_format="channels_first",
                      dilation_rate=dilation, groups=groups, activation=activation)
        cf.build((None, shape[-1]) + shape[1:4])
        cf.set_weights(layer.get_weights())
        got_cf = cf(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
        np.testing.assert_array_equal(got_cf, np.moveaxis(got, -1, 1))
        runner = layer._runner(x)
        assert runner is not None
        np.testing.assert_array_equal(runner(x), got)


@pytest.mark.skipif(NUMPY_ONLY, reason="the C++ path (FASTLAYERS_TEST_NUMPY_ONLY=1 asked none)")
def test_conv3d_in_place_refuses_bad_calls(rng):
    """_core.conv3d's own checks: a clear ValueError or TypeError, never a crash."""
    from fastlayers import _backend

    core = _backend._core
    kernel4 = rng.standard_normal((3, 3, 3 * 16, 8)).astype(F32)  # kd 3, cg 16
    packed = core.PackedConv(kernel4, None, 1)
    x = rng.standard_normal((1, 4, 5, 5, 16)).astype(F32)
    good = dict(kd=3, strides=(1, 1, 1), dilation=(1, 1, 1), pads=(1, 1, 1, 1, 1, 1))
    if not packed.indirect:  # no indirect kernel (NEON): every kernel is refused, by name
        with pytest.raises(ValueError, match="indirect"):
            core.conv3d(x, packed, **good)
        return
    assert core.conv3d(x, packed, **good).shape == (1, 4, 5, 5, 8)
    assert core.conv3d(x[:0], packed, **good).shape == (0, 4, 5, 5, 8)
    # A left pad near the int64 limit with a stride that leaves one output column, all of it
    # padding: only zero rows are read, so the output is the bias (none: 0). The column range
    # once overflowed here and wrote before the pointer table.
    far = core.conv3d(x, packed, **{**good, "strides": (1, 1, 3 * 2**61),
                                    "pads": (1, 1, 1, 1, 2**62, 0)})
    assert far.shape == (1, 4, 5, 1, 8) and not far.any()
    packed2 = core.PackedConv(rng.standard_normal((1, 1, 16, 4)).astype(F32), None, 1)
    far2 = core.conv2d(x[0], packed2, None, (1, 3 * 2**61), (1, 1), (0, 0, 2**62, 0), 1, 0)
    assert far2.shape == (4, 5, 1, 4) and not far2.any()  # conv2d's builder shares the range
    # The same with 3 channels (kernel-row chunks, clipped ones expanded into scratch): a far
    # left pad, and a stride of 2**62 whose second output column lies wholly in the padding.
    k3 = core.PackedConv(rng.standard_normal((1, 3, 3, 4)).astype(F32), None, 1)
    x3 = rng.standard_normal((1, 4, 5, 3)).astype(F32)
    far3 = core.conv2d(x3, k3, None, (1, 3 * 2**61), (1, 1), (0, 0, 2**62, 0), 1, 0)
    assert far3.shape == (1, 4, 1, 4) and not far3.any()
    far4 = core.conv2d(x3, k3, None, (1, 2**62), (1, 1), (0, 0, 1, 2**62), 1, 0)
    near = core.conv2d(x3, k3, None, (1, 1), (1, 1), (0, 0, 1, 1), 1, 0)
    assert far4.shape == (1, 4, 2, 4) and not far4[:, :, 1].any()
    np.testing.assert_array_equal(far4[:, :, 0], near[:, :, 0])
    bad = [
        (dict(kd=5), ValueError, "does not divide"),
        (dict(kd=0), ValueError, "does not divide"),
        (dict(kd=1), ValueError, "channels"),  # 48 stacked channels per tap, x has 16
        (dict(strides=(1, 0, 1)), ValueError, ">= 1"),
        (dict(dilation=(1, 1, -1)), ValueError, ">= 1"),
        (dict(pads=(1, 1, 1, 1, -1, 1)), ValueError, ">= 0"),
        (dict(pads=(0, 0, 0, 0, 0, 0), dilation=(3, 1, 1)), ValueError, "smaller"),
        (dict(pads=(1, 1, 1)), (ValueError, TypeError), "pads"),
        (dict(pads=(1, 1, 1, 1, 2**63 - 1, 2**63 - 1)), ValueError, "overflow|fit|size"),
    ]
    for change, error, words in bad:
        with pytest.raises(error, match=words):
            core.conv3d(x, packed, **{**good, **change})
    with pytest.raises(TypeError, match="PackedConv"):
        core.conv3d(x, kernel4, **good)
    with pytest.raises(ValueError, match=r"x must have ndim 5, got 4"):
        core.conv3d(x[0], packed, **good)  # rank 4
    with pytest.raises(TypeError, match="x must be a float32 array, got dtype float64"):
        core.conv3d(x.astype(np.float64), packed, **good)
    with pytest.raises(ValueError, match="empty"):
        core.conv3d(x[:, :, :0], packed, **good)
    tiles = core.PackedConv(rng.standard_normal((3, 3, 3 * 520, 2)).astype(F32), None, 1)
    assert not tiles.indirect  # K > 4096: the expanded tiles, not in place
    with pytest.raises(ValueError, match="indirect"):
        core.conv3d(np.zeros((1, 3, 3, 3, 520), F32), tiles, **good)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,pool,strides,padding", [
    ((2, 5, 6, 7, 3), (2, 2, 2), None, "valid"),
    ((1, 7, 5, 9, 2), (3, 2, 3), (2, 1, 2), "same"),
    ((2, 4, 4, 4, 5), (3, 3, 3), (1, 1, 1), "same"),
    ((1, 1, 6, 5, 4), (1, 3, 2), (1, 2, 2), "valid"),
])
def test_pooling3d_matches_torch(any_backend, rng, mode, shape, pool, strides, padding):
    """PyTorch's pools on Keras's "same" windows: max pads -inf, the average counts only
    the input voxels (count_include_pad=False), as Keras does."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(F32)
    cls = L.MaxPooling3D if mode == "max" else L.AveragePooling3D
    got = cls(pool, strides, padding)(x)
    strides = pool if strides is None else strides
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3)
    if padding == "same":
        padded = _torch_same(xt, pool, strides, (1, 1, 1),
                             fill=-float("inf") if mode == "max" else 0.0)
        if mode == "max":
            want = torch.nn.functional.max_pool3d(padded, pool, strides)
        else:  # the sum over the input voxels over their count
            ones = _torch_same(torch.ones_like(xt[:1, :1]), pool, strides, (1, 1, 1))
            want = (torch.nn.functional.avg_pool3d(padded, pool, strides)
                    / torch.nn.functional.avg_pool3d(ones, pool, strides))
    else:
        f = torch.nn.functional.max_pool3d if mode == "max" else torch.nn.functional.avg_pool3d
        want = f(xt, pool, strides)
    assert_close(got, want.permute(0, 2, 3, 4, 1).numpy(), k=int(np.prod(pool)))


def test_pooling3d_special_values(any_backend):
    x = np.zeros((1, 4, 2, 2, 1), F32)
    x[0, 0, 0, 0, 0] = np.nan
    x[0, 2, 1, 1, 0] = np.inf
    x[0, 3, 0, 0, 0] = -np.inf
    mx = L.MaxPooling3D(2)(x)
    av = L.AveragePooling3D(2)(x)
    assert np.isnan(mx[0, 0, 0, 0, 0]) and mx[0, 1, 0, 0, 0] == np.inf
    assert np.isnan(av[0, 0, 0, 0, 0]) and np.isnan(av[0, 1, 0, 0, 0])  # inf + -inf


def test_upsampling_padding_cropping_are_exact(rng):
    x = rng.standard_normal((2, 3, 4, 5, 2)).astype(F32)
    up = L.UpSampling3D((2, 1, 3))(x)
    np.testing.assert_array_equal(up, x.repeat(2, 1).repeat(3, 3))
    pad = L.ZeroPadding3D(((1, 2), (0, 1), (2, 0)))(x)
    np.testing.assert_array_equal(pad, np.pad(x, ((0, 0), (1, 2), (0, 1), (2, 0), (0, 0))))
    np.testing.assert_array_equal(L.Cropping3D(((1, 2), (0, 1), (2, 0)))(pad), x)
    cf = L.Cropping3D(1, data_format="channels_first")(np.ascontiguousarray(
        np.moveaxis(x, -1, 1)))
    np.testing.assert_array_equal(cf, np.moveaxis(x[:, 1:-1, 1:-1, 1:-1], -1, 1))
    np.testing.assert_array_equal(L.GlobalMaxPooling3D()(x), x.max(axis=(1, 2, 3)))


def test_symbolic_model_infers_the_shapes(rng):
    inp = Input(shape=(6, 10, 9, 2))
    shapes = []
    h = inp
    for layer in [L.Conv3D(4, 3, strides=(2, 1, 1), padding="same", activation="relu", seed=0),
                  L.MaxPooling3D((1, 2, 2)), L.AveragePooling3D(3, strides=2, padding="same"),
                  L.UpSampling3D(2), L.ZeroPadding3D(1), L.Cropping3D(((0, 1), (1, 0), (0, 0))),
                  L.GlobalAveragePooling3D(keepdims=True)]:
        h = layer(h)
        shapes.append(tuple(h.shape))
    assert shapes == [(None, 3, 10, 9, 4), (None, 3, 5, 4, 4), (None, 2, 3, 2, 4),
                      (None, 4, 6, 4, 4), (None, 6, 8, 6, 4), (None, 5, 7, 6, 4),
                      (None, 1, 1, 1, 4)]
    model = Model(inp, h)
    x = rng.standard_normal((2, 6, 10, 9, 2)).astype(F32)
    y = model.predict(x)
    assert y.shape == (2, 1, 1, 1, 4) and np.isfinite(y).all()
    step = x
    for layer in model.layers[1:]:
        step = layer(step)
    np.testing.assert_array_equal(y, step)


def test_conv3d_config_weights_and_pickle(rng):
    import pickle

    layer = L.Conv3D(5, (1, 2, 3), padding="same", groups=1, seed=4)
    x = rng.standard_normal((1, 2, 3, 4, 3)).astype(F32)
    y = layer(x)
    assert [w.shape for w in layer.get_weights()] == [(1, 2, 3, 3, 5), (5,)]
    again = L.Conv3D.from_config(layer.get_config())
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x), y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(layer))(x), y)


@pytest.mark.parametrize("make, error, fragment", [
    (lambda: L.Conv3D(2, (3, 3)), ValueError, "kernel_size"),
    (lambda: L.Conv3D(2, 3, padding="causal"), ValueError, "padding"),
    (lambda: L.Conv3D(2, 3, strides=2, dilation_rate=2), ValueError, "dilation"),
    (lambda: L.Conv3D(3, 3, groups=2), ValueError, "groups"),
    (lambda: L.Conv3D(0, 3), ValueError, "filters"),
    (lambda: L.MaxPooling3D((2, 2)), ValueError, "pool_size"),
    (lambda: L.AveragePooling3D(2, padding="full"), ValueError, "padding"),
    (lambda: L.ZeroPadding3D((1, 2)), ValueError, "padding"),
    (lambda: L.Cropping3D(((1, 1), (1, 1))), ValueError, "cropping"),
    (lambda: L.UpSampling3D((2, 2)), ValueError, "size"),
    (lambda: L.UpSampling3D(2.5), TypeError, "size"),
])
def test_bad_arguments(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: L.Conv3D(2, 3)(np.ones((1, 4, 4, 4), F32)), ValueError, "rank"),
    (lambda: L.Conv3D(2, 3)(np.ones((1, 2, 4, 4, 1), F32)), ValueError, "depth 2"),
    (lambda: L.Conv3D(2, 3)(np.ones((1, 4, 2, 4, 1), F32)), ValueError, "smaller than"),
    (lambda: L.Conv3D(2, 2, groups=2)(np.ones((1, 3, 3, 3, 3), F32)), ValueError, "groups"),
    (lambda: L.Conv3D(2, 1)("volume"), TypeError, "Conv3D"),
    (lambda: L.MaxPooling3D(3)(np.ones((1, 2, 4, 4, 1), F32)), ValueError, "smaller than"),
    (lambda: L.AveragePooling3D(2)(np.ones((1, 0, 4, 4, 1), F32)), ValueError, "empty"),
    (lambda: L.Cropping3D(((1, 1), (0, 0), (0, 0)))(np.ones((1, 2, 3, 3, 1), F32)),
     ValueError, "at least one"),
    (lambda: L.GlobalMaxPooling3D()(np.ones((1, 2, 2, 1), F32)), ValueError, "rank"),
    (lambda: L.GlobalAveragePooling3D()(np.ones((1, 2, 2, 1), F32)), ValueError, "rank 5"),
    (lambda: L.GlobalAveragePooling3D()(np.array([[[[["a"]]]]])), TypeError, "real"),
    (lambda: L.UpSampling3D(2)(np.ones((1, 2, 2, 1), F32)), ValueError, "rank"),
])
def test_bad_calls(any_backend, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


def test_an_absurd_depth_stack_is_refused_before_allocating():
    """The depth-stacked input is kd times the input: 2**22 voxels through 2**15 depth taps
    is more than the 2**36 elements any array may have, refused before NumPy allocates."""
    layer = L.Conv3D(1, (2**15, 1, 1), padding="same", use_bias=False, seed=0)
    with pytest.raises(ValueError, match="Conv3D.*the depth-stacked input is too large"):
        layer(np.zeros((1, 2**22, 1, 1, 1), F32))


# ------------------------------------------------------------------------------ from_torch


def test_from_torch_converts_a_3d_network(rng):
    """Conv3d (integer and "same" padding, stride, dilation, groups), BatchNorm3d folded into
    the conv before it, MaxPool3d, AvgPool3d and AdaptiveAvgPool3d(1): PyTorch's outputs on
    both paths."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn = nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8)
            self.pool = nn.MaxPool3d((1, 2, 2))
            self.c2 = nn.Conv3d(8, 6, 3, stride=(2, 1, 1), groups=2, bias=False)
            self.c3 = nn.Conv3d(6, 4, 3, padding="same", dilation=(2, 1, 1))
            self.avg, self.glob = nn.AvgPool3d(2), nn.AdaptiveAvgPool3d(1)
            self.bn2 = nn.BatchNorm3d(4)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            h = self.pool(torch.relu(self.bn(self.c1(x))))
            h = self.avg(self.c3(torch.relu(self.c2(h))))
            return self.fc(self.glob(self.bn2(h)).flatten(1))

    net = Net().eval()
    with torch.no_grad():
        for bn in (net.bn, net.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.from_numpy(rng.standard_normal((2, 3, 6, 10, 12)).astype(F32))
    model = fl.from_torch(net, x)
    with torch.no_grad():
        want = net(x).numpy()
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("Conv3D") == 3 and "BatchNormalization" not in names
    for backend in BACKENDS:
        with fl.use_backend(backend):
            assert_close(model.predict(x.numpy()), want, k=216, magnitude=4.0)


@pytest.mark.parametrize("make, match", [
    (lambda nn: nn.Conv3d(2, 2, 3, padding=1, padding_mode="reflect"), "padding_mode"),
    (lambda nn: nn.MaxPool3d(2, padding=1), "padding"),
    (lambda nn: nn.AvgPool3d(2, ceil_mode=True), "ceil_mode"),
    (lambda nn: nn.AdaptiveAvgPool3d(2), "output_size"),
])
def test_from_torch_refuses_what_it_cannot_convert(make, match):
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    with pytest.raises(TorchConversionError, match=match):
        fl.from_torch(torch.nn.Sequential(make(torch.nn)), torch.zeros(1, 2, 4, 4, 4))


@pytest.mark.parametrize("shape,filters,kernel,strides,padding,output_padding", [
    ((2, 3, 4, 5, 3), 2, (3, 3, 3), (1, 1, 1), 0, 0),
    ((1, 4, 3, 5, 4), 3, (2, 3, 2), (2, 1, 2), 0, (1, 0, 0)),
    ((1, 3, 5, 4, 2), 4, (3, 3, 3), (2, 2, 2), 1, (1, 1, 0)),
    ((1, 2, 3, 3, 33), 32, (2, 2, 2), (2, 2, 2), 0, 0),
])
def test_from_torch_conv_transpose3d(any_backend, rng, shape, filters, kernel, strides, padding,
                                     output_padding):
    """nn.ConvTranspose3d as Conv3DTranspose with "valid" padding and PyTorch's integer
    padding cropped from both sides."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    mod = torch.nn.ConvTranspose3d(shape[-1], filters, kernel, strides, padding,
                                   output_padding).eval()
    x = torch.from_numpy(rng.standard_normal(shape).astype(F32)).permute(0, 4, 1, 2, 3)
    model = fl.from_torch(torch.nn.Sequential(mod), x)
    with torch.no_grad():
        want = mod(x).numpy()
    assert "Conv3DTranspose" in [type(layer).__name__ for layer in model.layers]
    assert_close(model.predict(x.numpy()), want, k=int(np.prod(kernel)) * shape[-1],
                 magnitude=float(x.abs().max()))


def _conv3d_transpose_by_taps(layer, x):
    """Conv3DTranspose as the sum of its depth taps: zeros, each tap's Conv2DTranspose of every
    depth slice added into the output depths it reaches, then the bias and the activation."""
    from fastlayers import _validation as V
    from fastlayers import functional as F

    kernel, bias = layer.get_weights() if layer.use_bias else (layer.get_weights()[0], None)
    n, d, h, w, c = x.shape
    kd, f = kernel.shape[0], kernel.shape[3]
    od, front = layer._depth(d, kd)
    op2 = None if layer.output_padding is None else layer.output_padding[1:]
    a = V.check_conv2d_transpose(x.reshape(n * d, h, w, c), kernel[0], None, layer.strides[1:],
                                 layer.padding, op2, layer.dilation_rate[1:], None)
    oh, ow = a.out_hw
    sd, dd = layer.strides[0], layer.dilation_rate[0]
    y = np.zeros((n, od, oh, ow, f), F32)
    for t in range(kd):
        slices = F.run_conv2d_transpose(a._replace(kernel=kernel[t])).reshape(n, d, oh, ow, f)
        for i in range(d):
            o = i * sd + t * dd - front
            if 0 <= o < od:
                y[:, o] += slices[:, i]
    if bias is not None:
        y += bias
    assert layer.activation in (None, "relu"), layer.activation
    return np.maximum(y, 0) if layer.activation is not None else y


@pytest.mark.parametrize("specials", [False, True], ids=["plain", "specials"])
@pytest.mark.parametrize("shape,kernel,strides,padding,output_padding,use_bias,act", [
    ((2, 3, 4, 5, 6), 2, 2, "valid", None, True, "relu"),   # taps within one stride
    ((1, 4, 3, 3, 5), (2, 3, 1), (2, 1, 3), "valid", None, True, None),
    ((1, 2, 3, 2, 4), 1, 3, "valid", None, True, None),      # depths no tap reaches
    ((1, 2, 3, 2, 4), 1, 3, "valid", None, False, None),
    ((1, 3, 2, 2, 3), (2, 2, 2), (3, 2, 2), "same", None, False, None),
    ((1, 3, 2, 3, 3), 2, 2, "valid", (1, 1, 0), True, None),  # output padding: one more depth
    ((1, 3, 3, 3, 2), 3, 2, "same", None, True, None),       # taps overlap: the added path
], ids=str)
def test_conv3d_transpose_gives_the_bits_of_its_taps_added(any_backend, rng, monkeypatch,
                                                           shape, kernel, strides, padding,
                                                           output_padding, use_bias, act,
                                                           specials):
    """Where each output depth gets one tap at most, the layer writes that tap's slices (and
    the bias) instead of adding them into zeros: the same bits, signed zeros included (a
    bias of -0 and +0 entries; with ``specials`` each tap's Conv2DTranspose result gets -0,
    +0, NaN, -inf and a denormal in some entries, which no real product gives here: its
    chains start at +0)."""
    from fastlayers import functional as F

    if specials:
        plain = F.run_conv2d_transpose

        def with_specials(*args, **kwargs):
            out = plain(*args, **kwargs).copy()
            flat = out.reshape(-1)
            values = np.array([-0.0, 0.0, np.nan, -np.inf, -1e-45], F32)
            flat[::7][:len(flat[::7])] = np.resize(values, len(flat[::7]))
            return out

        monkeypatch.setattr(F, "run_conv2d_transpose", with_specials)
    x = rng.standard_normal(shape).astype(F32)
    layer = L.Conv3DTranspose(3, kernel, strides=strides, padding=padding,
                              output_padding=output_padding, use_bias=use_bias,
                              activation=act, seed=2)
    layer.build(x.shape)
    weights = layer.get_weights()
    if use_bias:
        weights[1] = np.array([-0.0, 0.0, 0.5], F32)
    layer.set_weights(weights)
    got = layer(x)
    want = _conv3d_transpose_by_taps(layer, x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_conv3d_transpose_bad_calls_and_shapes(any_backend):
    layer = L.Conv3DTranspose(2, 2, strides=2)
    with pytest.raises(ValueError, match="rank"):
        layer(np.ones((1, 2, 2, 2), F32))
    with pytest.raises(ValueError, match="output_padding"):
        L.Conv3DTranspose(2, 2, strides=(2, 2, 1), output_padding=(1, 1, 1))
    with pytest.raises(ValueError, match="dilation"):
        L.Conv3DTranspose(2, 2, strides=(2, 1, 1), dilation_rate=(1, 1, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        L.Conv3DTranspose(2, (2, 2))
    y = layer(np.ones((1, 3, 1, 2, 4), F32))
    assert y.shape == (1, 6, 2, 4, 2)
    inp = Input(shape=(3, None, 2, 4))
    assert tuple(L.Conv3DTranspose(2, 3, strides=2, padding="same")(inp).shape) == (
        None, 6, None, 4, 2)


def test_huge_windows_dilations_and_upsampling_cost_no_memory(any_backend):
    """A depth window or dilation far larger than the input pads nothing beyond the windows
    that read the input (the 2D layers' rule), and a model definition with UpSampling3D
    computes its shape instead of running the layer: each well under 10 MB traced."""
    import tracemalloc

    x = np.arange(8, dtype=F32).reshape(1, 2, 2, 2, 1)
    tracemalloc.start()
    try:
        avg = L.AveragePooling3D((2**24, 1, 1), strides=1, padding="same")(x)
        mx = L.MaxPooling3D((2**24, 1, 1), padding="same")(x)
        conv = L.Conv3D(1, (3, 1, 1), dilation_rate=(2**22, 1, 1), padding="same",
                        use_bias=False, kernel_initializer="ones")(x)
        sym = L.UpSampling3D(2)(Input((32, 64, 64, 16)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, peak
    np.testing.assert_array_equal(avg, np.broadcast_to(x.mean(axis=1, keepdims=True), x.shape))
    np.testing.assert_array_equal(mx, x[:, 1:])
    np.testing.assert_array_equal(conv, x)  # only the centre tap reads the input
    assert tuple(sym.shape) == (None, 64, 128, 128, 16)


def test_symbolic_3d_convolutions_check_the_input_channels():
    """A layer built on 3 channels and called on a symbolic input of 4 is refused at the
    definition (the zero run reports it), as Conv2D and Conv2DTranspose are."""
    for layer in (L.Conv3D(2, 2, seed=0), L.Conv3DTranspose(2, 2, seed=0)):
        layer(np.zeros((1, 2, 2, 2, 3), F32))
        with pytest.raises(ValueError, match="kernel has shape"):
            layer(Input(shape=(2, 2, 2, 4)))
    with pytest.raises(ValueError, match="Conv3D.*inputs has an empty spatial"):
        L.Conv3D(2, 1)(np.zeros((1, 2, 0, 2, 3), F32))
    with pytest.raises(ValueError, match="Conv3DTranspose.*inputs has an empty spatial"):
        L.Conv3DTranspose(2, 1)(np.zeros((1, 2, 0, 2, 3), F32))


@pytest.mark.parametrize("layer", [L.MaxPooling3D(2), L.AveragePooling3D(3, 2, "same"),
                                   L.MaxPooling3D(2, data_format="channels_first")])
def test_3d_pooling_computes_its_symbolic_shape(layer):
    """The shape comes from the layer's hook, not from running it on zeros."""
    shape = (None, 3, 8, 8, 8) if layer.data_format == "channels_first" else (None, 8, 8, 8, 3)
    assert layer._offered_output_shape(shape) is not None
