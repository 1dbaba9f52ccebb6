"""The adaptive poolings (AdaptiveMaxPooling1D/2D, AdaptiveAveragePooling1D/2D): Keras
fixtures at edge shapes, PyTorch's own adaptive pools and from_torch, a float64 reference
from the definition, symbolic models, and bad arguments; and the global poolings (C++ column
kernels, channels last, with the NumPy path's bits). The adaptive ones run the core's
adaptive_pool2d under "auto" and "cpp".

Fixtures: tests/golden/adaptive_layers.npz and models_adaptive.npz (with the model files,
which tests/test_load_keras.py loads), made by tests/golden/make_models_adaptive.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close
from golden_models import read_layer_cases, run_layer_case

import fastlayers as fl
from fastlayers import Input, Model
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
LAYER_CASES = read_layer_cases("adaptive_layers.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    got, y, x, _ = run_layer_case(LAYER_CASES, case, backend)
    assert_close(got, y, k=16, magnitude=float(np.abs(x).max()))


def test_fixture_cases_cover_the_edges():
    assert {"avg2d_divides", "avg2d_uneven", "avg2d_larger", "avg2d_one", "max2d_larger",
            "avg1d_one_step", "max1d_channels_first", "avg2d_channels_first"} <= set(LAYER_CASES)


def _reference(x, out, mode):
    """float64 loops over the output cells, from PyTorch's definition of the windows."""
    n, h, w, c = x.shape
    y = np.zeros((n, *out, c))
    for i in range(out[0]):
        r0, r1 = math.floor(i * h / out[0]), math.ceil((i + 1) * h / out[0])
        for j in range(out[1]):
            c0, c1 = math.floor(j * w / out[1]), math.ceil((j + 1) * w / out[1])
            win = x[:, r0:r1, c0:c1]
            y[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return y


@pytest.mark.parametrize("h,w,oh,ow", [(1, 1, 1, 1), (1, 1, 3, 2), (7, 7, 7, 7), (13, 17, 5, 4),
                                       (16, 16, 15, 17), (31, 3, 2, 7), (224, 1, 7, 1)])
@pytest.mark.parametrize("mode", ["max", "average"])
def test_against_the_definition(any_backend, rng, h, w, oh, ow, mode):
    x = rng.standard_normal((2, h, w, 3)).astype(F32)
    cls = L.AdaptiveMaxPooling2D if mode == "max" else L.AdaptiveAveragePooling2D
    got = cls((oh, ow))(x)
    want = _reference(x.astype(np.float64), (oh, ow), mode)
    if mode == "max":
        np.testing.assert_array_equal(got, want.astype(F32))
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["max", "average"])
def test_1d_is_2d_on_a_height_of_one(any_backend, rng, mode):
    x = rng.standard_normal((2, 19, 4)).astype(F32)
    one = (L.AdaptiveMaxPooling1D if mode == "max" else L.AdaptiveAveragePooling1D)(7)
    two = (L.AdaptiveMaxPooling2D if mode == "max" else L.AdaptiveAveragePooling2D)((1, 7))
    np.testing.assert_array_equal(one(x), two(x[:, None])[:, 0])


def test_special_values(any_backend, rng):
    import warnings

    x = rng.standard_normal((1, 4, 4, 2)).astype(F32)
    x[0, 1, 1, 1] = -np.inf  # with the +inf below in one window: NaN, and no warning
    x[0, 0, 0, 0] = np.nan
    x[0, 3, 3, 1] = np.inf
    x[0, 2, 2, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        avg = L.AdaptiveAveragePooling2D(2)(x)
        whole = L.AdaptiveAveragePooling2D(1)(x)
    assert np.isnan(avg[0, 0, 0, 0]) and avg[0, 1, 1, 1] == np.inf
    assert np.isnan(whole[0, 0, 0, 1])
    assert np.isnan(L.AdaptiveMaxPooling2D(2)(x)[0, 0, 0, 0])  # NaN propagates, as in torch


_CLASSES = {("max", 1): L.AdaptiveMaxPooling1D, ("average", 1): L.AdaptiveAveragePooling1D,
            ("max", 2): L.AdaptiveMaxPooling2D, ("average", 2): L.AdaptiveAveragePooling2D}


@pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(), reason="no compiled core")
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,out", [((2, 14, 14, 5), (7, 7)), ((1, 13, 17, 3), (5, 4)),
                                       ((3, 7, 7, 1), (7, 7)), ((1, 5, 3, 17), (9, 8)),
                                       ((2, 31, 29, 16), (1, 1)), ((2, 19, 4), (7,)),
                                       ((1, 1, 2), (3,)), ((1, 224, 224, 3), (7, 7)),
                                       ((2, 14, 14, 70), (7, 7)), ((1, 9, 10, 131), (4, 3))])
def test_cpp_gives_the_numpy_bits(rng, mode, shape, out):
    """The same windows, the same float64 sums in the same order (rows, then columns), the
    same max fold: identical results, the signs of zeros and NaN included, for 1 and 2
    threads."""
    x = rng.standard_normal(shape).astype(F32)
    flat = x.reshape(-1)
    flat[::7] = 0.0
    flat[3::11] = -0.0
    flat[5::97] = np.nan
    flat[6::89] = np.inf
    layer = _CLASSES[mode, len(out)](out)
    with fl.use_backend("numpy"):
        want = layer(x)
    before = fl.get_num_threads()
    try:
        with fl.use_backend("cpp"):
            got = [fl.set_num_threads(t) or layer(x) for t in (1, 2)]
    finally:
        fl.set_num_threads(before)
    for g in got:
        assert g.dtype == F32 and g.shape == want.shape
        np.testing.assert_array_equal(g, want)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(want))


def assert_paths_give_the_same_bits(layer, x):
    """The layer's NumPy and C++ paths give the same values, NaN and zero signs included."""
    with fl.use_backend("numpy"):
        want = layer(x)
    with fl.use_backend("cpp"):
        got = layer(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(), reason="no compiled core")
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,out", [((2, 41, 1, 1), (3, 1)), ((2, 1, 41, 1), (1, 3)),
                                       ((2, 41, 1), (3,)), ((1, 16, 17, 1), (1, 1)),
                                       ((2, 40, 1), (5,)), ((1, 16, 1, 3), (1, 1))])
def test_one_channel_sums_in_order(rng, mode, shape, out):
    """With one channel the summed axis is NumPy's contiguous inner loop, which it reduces
    pairwise (sums) or with its vector loop (maxima): the NumPy path folds it in order, as the
    C++ kernels do (the review of 18967f2: [2**60, 1, ..., -2**60] gave 0.0625 against 0).
    Averages: values that cancel, and windows all -0 (the first image; in order from 0: +0).
    Maxima: negative values with zeros of both signs (ties) and NaNs of both signs (which one
    propagates)."""
    x = rng.standard_normal(shape).astype(F32)
    flat = x.reshape(-1)
    if mode == "average":
        flat[::5] = F32(2.0**60)
        flat[2::5] = F32(-2.0**60)
        flat[3::13] = -0.0
        flat[4::17] = 0.0
        x[0] = -0.0  # the first image: every window all -0
    else:
        np.negative(np.abs(flat), out=flat)
        flat[::3] = -0.0
        flat[1::3] = 0.0
        flat[5::11] = np.nan
        flat[7::13] = -np.nan
    assert_paths_give_the_same_bits(_CLASSES[mode, len(out)](out), x)


@pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(), reason="no compiled core")
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,out", [((1, 3, 16, 16), (1, 1)), ((2, 5, 9, 17), (2, 3)),
                                       ((2, 4, 33), (3,))])
def test_channels_first_gives_the_numpy_bits(rng, mode, shape, out):
    """channels_first hands the NumPy path a moved-axis view whose contiguous axis is W, which
    NumPy reduced pairwise: it pools a C-contiguous copy (the review of 6e3fe68..3544603:
    1/256 against 0 for 2**60, 1, -2**60 along W)."""
    x = rng.standard_normal(shape).astype(F32)
    x[..., ::5] = F32(2.0**60)
    x[..., 2::5] = F32(-2.0**60)
    if mode == "max":
        x[..., 3::7] = np.nan
        x[..., 4::7] = -np.nan
    assert_paths_give_the_same_bits(
        _CLASSES[mode, len(out)](out, data_format="channels_first"), x)


def test_one_channel_window_of_sixteen_in_order(any_backend):
    """The review's case: 2**60 + 1 - 2**60 over 16 taps in order is 0 (pairwise: 1/16)."""
    x = np.zeros((1, 1, 16, 1), F32)
    x[0, 0, 0], x[0, 0, 1], x[0, 0, 8] = 2.0**60, 1.0, -(2.0**60)
    assert L.AdaptiveAveragePooling2D(1)(x)[0, 0, 0, 0] == 0.0
    assert L.AdaptiveAveragePooling1D(1)(x[:, 0])[0, 0, 0] == 0.0


@pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(), reason="no compiled core")
@pytest.mark.parametrize("args, error, match", [
    ((np.ones((1, 2, 2, 3)), (1, 1), True), TypeError, "float32"),
    ((np.ones((2, 2, 3), F32), (1, 1), True), ValueError, "ndim 4"),
    ((np.ones((1, 2, 2, 3), F32), (0, 1), True), ValueError, "output_size must be >= 1"),
    ((np.ones((1, 2, 2, 3), F32), (1, -4), False), ValueError, "output_size must be >= 1"),
    ((np.ones((1, 0, 2, 3), F32), (1, 1), False), ValueError, "empty spatial axis"),
    ((np.ones((1, 2, 2, 3), F32), (2**31, 1), False), ValueError, "below 2"),
    ((np.ones((1, 2, 2, 3), F32), (2**30, 2**30), False), ValueError, "too big"),
    ((np.ones((4, 1, 1, 2**20), F32), (2**30, 2**30), False), ValueError, "overflows int64"),
    ((np.ones((1, 2, 2, 3), F32), (1, 2, 3), False), ValueError, "output_size"),
    ((np.ones((1, 4, 2, 3), F32)[:, ::2], (1, 1), False), ValueError, "C-contiguous"),
])
def test_binding_refuses_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        fl._backend._core.adaptive_pool2d(*args)


@pytest.mark.parametrize("make", [lambda: L.AdaptiveAveragePooling2D(3),
                                  lambda: L.AdaptiveMaxPooling1D(2),
                                  lambda: L.AdaptiveAveragePooling1D(2)])
def test_empty_spatial_axes_and_wrong_ranks_are_refused(make):
    layer = make()
    rank = layer.rank + 2
    with pytest.raises(ValueError, match="empty spatial axis"):
        layer(np.zeros((1,) + (0,) * (rank - 2) + (3,), F32))
    with pytest.raises(ValueError, match="rank"):
        layer(np.zeros((2,) * (rank + 1), F32))


@pytest.mark.parametrize("make, error, fragment", [
    (lambda: L.AdaptiveAveragePooling2D(0), ValueError, "output_size"),
    (lambda: L.AdaptiveAveragePooling2D((2, 3, 4)), ValueError, "output_size"),
    (lambda: L.AdaptiveMaxPooling1D((2, 2)), ValueError, "output_size"),
    (lambda: L.AdaptiveMaxPooling2D(2.5), TypeError, "output_size"),
    (lambda: L.AdaptiveMaxPooling2D(2, data_format="NHWC"), ValueError, "data_format"),
])
def test_bad_arguments(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


def test_an_absurd_output_size_is_refused_by_name():
    with pytest.raises(ValueError, match="AdaptiveMaxPooling2D.*too large"):
        L.AdaptiveMaxPooling2D(200000)(np.zeros((1, 2, 2, 3), F32))  # > 2**36 outputs


def test_config_and_symbolic_model(rng):
    layer = L.AdaptiveAveragePooling2D(3, name="grid")
    assert layer.get_config() == {"name": "grid", "output_size": (3, 3),
                                  "data_format": "channels_last"}
    inp = Input((13, 11, 4))
    out = L.Flatten()(L.AdaptiveMaxPooling2D((2, 5))(inp))
    assert tuple(out.shape) == (None, 40)
    x = rng.standard_normal((3, 13, 11, 4)).astype(F32)
    np.testing.assert_array_equal(Model(inp, out).predict(x),
                                  L.AdaptiveMaxPooling2D((2, 5))(x).reshape(3, 40))


def test_from_torch_adaptive_pools(rng):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.avg = torch.nn.AdaptiveAvgPool2d((5, None))
            self.max = torch.nn.AdaptiveMaxPool2d(3)
            self.gap = torch.nn.AdaptiveAvgPool2d(1)
            self.avg1 = torch.nn.AdaptiveAvgPool1d(4)
            self.row = torch.nn.AdaptiveAvgPool2d((1, 5))

        def forward(self, x):
            flat = x.flatten(2)
            return (self.avg(x), self.max(x), self.gap(x), self.row(x),
                    functional.adaptive_avg_pool2d(x, (7, 2)),
                    functional.adaptive_max_pool1d(flat, 6), self.avg1(flat))

    x = torch.from_numpy(rng.standard_normal((2, 3, 11, 9)).astype(F32))
    net = Net()
    model = fl.from_torch(net, (x,))
    got = model.predict(x.numpy())
    want = net(x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda nn: nn.AdaptiveMaxPool2d(3, return_indices=True), "return_indices"),
    (lambda nn: nn.AdaptiveAvgPool2d((0, 2)), "output_size=\\(0, 2\\)"),
])
def test_from_torch_refusals(make, match):
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    with pytest.raises(TorchConversionError, match=match):
        fl.from_torch(make(torch.nn), (torch.randn(1, 2, 8, 8),))


def test_from_torch_refuses_a_1d_pool_to_none():
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    with pytest.raises(TorchConversionError, match="output_size=None"):
        fl.from_torch(torch.nn.AdaptiveAvgPool1d(None), (torch.randn(1, 2, 8),))


# --------------------------------------------------------------- the global poolings

GLOBALS = [(L.GlobalAveragePooling1D, 1), (L.GlobalMaxPooling1D, 1),
           (L.GlobalAveragePooling2D, 2), (L.GlobalMaxPooling2D, 2),
           (L.GlobalAveragePooling3D, 3), (L.GlobalMaxPooling3D, 3)]


@pytest.mark.parametrize("cls,rank", GLOBALS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("c", [1, 7, 8, 16, 17, 33, 63, 64, 65, 257, 300])
def test_global_pooling_paths_give_the_same_bits_and_torchs_values(cls, rank, c, rng):
    """Channels last, the C++ kernels (every column width: vector blocks and masked tails)
    give the NumPy path's bits: the float64 sum of the positions in order divided once, and
    NumPy's maximum folded in order (NaN propagates; ties between -0 and +0 take the later);
    both agree with PyTorch's mean (in float64) and amax; keepdims only reshapes."""
    torch = pytest.importorskip("torch")
    spatial = (7, 3, 2)[:rank]
    x = (rng.standard_normal((3, *spatial, c)) * 4).astype(F32)
    flat = x.reshape(3, -1, c)
    flat[0, 2, 0] = np.nan
    flat[1, :, -1] = -0.0
    flat[1, 1::2, -1] = 0.0  # a column of zeros of both signs
    flat[2, 1, c // 2] = np.inf
    layer = cls()
    results = {}
    for b in BACKENDS:
        with fl.use_backend(b):
            results[b] = layer(x)
    ref = results["numpy"]
    assert ref.shape == (3, c) and ref.dtype == F32
    for got in results.values():
        np.testing.assert_array_equal(got.view(np.uint32)[~np.isnan(ref)],
                                      ref.view(np.uint32)[~np.isnan(ref)])
        assert np.array_equal(np.isnan(got), np.isnan(ref))
    xt = torch.from_numpy(flat.astype(np.float64))
    want = (xt.mean(dim=1) if "Average" in cls.__name__ else xt.amax(dim=1)).numpy()
    np.testing.assert_allclose(ref, want.astype(F32), rtol=2e-7, atol=1e-7)
    with fl.use_backend(BACKENDS[-1]):
        kept = cls(keepdims=True)(x)
    assert kept.shape == (3,) + (1,) * rank + (c,)
    np.testing.assert_array_equal(kept.reshape(3, c), ref)


def test_global_pooling_channels_first_and_empty_batch(rng):
    """channels_first runs NumPy under every backend (the same definition, its float64 sum
    in NumPy's pairwise order: equal after rounding to float32 but for a double rounding); an
    empty batch or no channels give empty outputs of the right shape."""
    x = rng.standard_normal((2, 5, 4, 3)).astype(F32)
    for cls in (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D):
        last = cls()(x)
        first = cls(data_format="channels_first")(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        np.testing.assert_allclose(first, last, rtol=1e-7, atol=0)
        for b in BACKENDS:
            with fl.use_backend(b):
                assert cls()(np.zeros((0, 4, 4, 3), F32)).shape == (0, 3)
                assert cls()(np.zeros((2, 4, 4, 0), F32)).shape == (2, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_pooling_one_channel_and_one_position_fold_in_order(backend):
    """One channel, where NumPy's own reductions run over its contiguous inner loop (pairwise
    sums, a vector maximum): both paths still add and compare the positions in order. A sum
    whose order shows ([2^40, 2^-14 x 62, -2^40]), zero
    ties of both signs (the later one wins), and one position; a mask of all True gives the
    unmasked bits. In order, every 2^-14 is absorbed by 2^40 (below half its ulp in double)
    and the mean is 0; NumPy's pairwise sum gave 5.3e-5."""
    x = np.array([2.0**40] + [2.0**-14] * 62 + [-(2.0**40)], F32).reshape(1, 64, 1)
    zeros = np.array([-0.0 if ch == "-" else 0.0 for ch in "----+-+--++-++-+-"], F32)
    with fl.use_backend(backend):
        avg = L.GlobalAveragePooling1D()(x)
        mx = L.GlobalMaxPooling1D()(zeros.reshape(1, 17, 1))
        one = L.GlobalMaxPooling2D()(np.array([[[[-0.0, 1.5, np.nan]]]], F32))
        masked = L.GlobalAveragePooling1D()(x, mask=np.ones((1, 64), bool))
    assert avg[0, 0] == 0 and not np.signbit(avg[0, 0])
    assert mx[0, 0] == 0 and np.signbit(mx[0, 0])  # the last position is -0
    assert np.signbit(one[0, 0]) and one[0, 1] == 1.5 and np.isnan(one[0, 2])
    np.testing.assert_array_equal(masked.view(np.uint32), avg.view(np.uint32))
