"""Conv1D, DepthwiseConv2D, SeparableConv2D, the pooling layers, ZeroPadding1D/2D and
Cropping1D/2D: Keras fixtures at edge shapes on both paths, float64 references written from
the rules, models built in code with Keras's weights, symbolic use, and bad arguments.

Fixtures: tests/golden/convpool_layers.npz and models_convpool.npz (with the model files),
made by tests/golden/make_models_convpool.py. The conv layers run on conv2d (C++ path when
the core is there); max and average pooling run the C++ pool2d or NumPy, bit for bit the
same (tested below); global pooling, padding and cropping run NumPy under every backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, backends_for
from golden_models import assert_keras_outputs, golden, read_layer_cases

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

F32 = np.float32
HERE = Path(__file__).parent / "golden"
BACKENDS = backends_for("conv2d")
CONV = ("Conv1D", "DepthwiseConv2D", "SeparableConv2D")


LAYER_CASES = read_layer_cases("convpool_layers.npz")


def _make(meta):
    return getattr(L, meta["class_name"])(**meta["config"])


# ------------------------------------------------------------------- Keras layer fixtures


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    meta, x, weights, mask, y = LAYER_CASES[case]
    layer = _make(meta)
    if weights:
        layer.set_weights(weights)
    with fl.use_backend(backend):
        got = layer(x) if mask is None else layer(x, mask=mask)
    assert got.dtype == F32 and got.shape == y.shape
    k = max([1, x.shape[1]] + [math.prod(w.shape[:-1]) for w in weights])
    assert_close(got, y, k=k, magnitude=float(np.abs(x).max()) + 1.0)
    if meta["class_name"] == "GlobalAveragePooling1D" and mask is not None:
        assert np.isnan(got).any() == (~mask).all(axis=1).any()  # 0/0 as in Keras
    if meta["class_name"] in CONV and backend == "cpp":
        assert layer._packed is not None  # packed once, used by the C++ path


def test_fixture_cases_cover_the_edges():
    names = set(LAYER_CASES)
    refs = {m["ref"] for m, *_ in LAYER_CASES.values()}
    assert {"keras", "torch-tf-rule"} <= refs
    assert {
        "c1_causal_dil",
        "c1_causal_len1",
        "ap2_same_asym",
        "mp2_stride_gt_pool",
        "gap1_mask",
        "dw_9ch_mult2",
        "sep_same_stride",
    } <= names
    classes = {m["class_name"] for m, *_ in LAYER_CASES.values()}
    assert set(CONV) <= classes and len(classes) == 15


# ----------------------------------------------------------------- float64 references


def _naive_pool(x, pool, strides, padding, mode):
    """Loops over output pixels, float64; x (N, H, W, C)."""
    n, h, w, c = x.shape
    outs, befores = [], []
    for size, p, s in zip((h, w), pool, strides):
        if padding == "valid":
            outs.append((size - p) // s + 1)
            befores.append(0)
        else:
            o = -(-size // s)
            outs.append(o)
            befores.append(max((o - 1) * s + p - size, 0) // 2)
    y = np.zeros((n, outs[0], outs[1], c))
    for i in range(outs[0]):
        r0 = i * strides[0] - befores[0]
        rows = slice(max(r0, 0), min(r0 + pool[0], h))
        for j in range(outs[1]):
            c0 = j * strides[1] - befores[1]
            win = x[:, rows, max(c0, 0) : min(c0 + pool[1], w)].astype(np.float64)
            y[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return y


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(
    "shape, pool, strides",
    [
        ((1, 1, 1, 1), (1, 1), (1, 1)),
        ((2, 7, 5, 3), (2, 2), (2, 2)),
        ((1, 13, 11, 2), (3, 4), (2, 5)),
        ((1, 6, 9, 1), (2, 3), (3, 1)),
        ((3, 8, 8, 4), (5, 5), (1, 1)),
        ((1, 17, 3, 2), (4, 1), (4, 2)),
    ],
)
def test_pool2d_matches_the_rule(shape, pool, strides, padding, mode, rng, any_backend):
    x = rng.standard_normal(shape).astype(F32)
    cls = L.MaxPooling2D if mode == "max" else L.AveragePooling2D
    if padding == "valid" and (shape[1] < pool[0] or shape[2] < pool[1]):
        with pytest.raises(ValueError, match="smaller than pool_size"):
            cls(pool, strides, padding)(x)
        return
    got = cls(pool, strides, padding)(x)
    assert_close(got, _naive_pool(x, pool, strides, padding, mode), k=math.prod(pool))


@pytest.mark.parametrize("mode", ["max", "average"])
def test_pool1d_is_pool2d_of_height_1(mode, rng):
    x = rng.standard_normal((2, 11, 3)).astype(F32)
    one = (L.MaxPooling1D if mode == "max" else L.AveragePooling1D)(4, 3, "same")(x)
    two = (L.MaxPooling2D if mode == "max" else L.AveragePooling2D)((1, 4), (1, 3), "same")
    np.testing.assert_array_equal(one, two(x[:, None])[:, 0])


def test_max_pool_padding_never_wins_and_nan_propagates():
    x = np.full((1, 3, 3, 1), -5.0, F32)
    assert (L.MaxPooling2D(2, padding="same")(x) == -5.0).all()
    x[0, 0, 0, 0] = np.nan
    y = L.MaxPooling2D(2, padding="same")(x)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 1, 1, 0])


# ------------------------------------------------- pooling: C++ kernel = NumPy, bit for bit

needs_core = pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(),
                                reason="the C++ pool2d needs the compiled core")


@needs_core
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(
    "shape, pool, strides",
    [
        ((1, 1, 1, 1), (1, 1), (1, 1)),
        ((2, 30, 30, 32), (2, 2), (2, 2)),
        ((1, 13, 11, 7), (3, 3), (2, 2)),
        ((1, 9, 9, 17), (3, 2), (1, 3)),
        ((3, 5, 8, 1), (5, 7), (4, 1)),
        ((1, 2, 3, 31), (3, 4), (5, 6)),  # window taller and wider than the input (clipped)
        ((2, 6, 3, 9), (2, 5), (1, 2)),  # only wider
        ((2, 8, 8, 33), (8, 8), (8, 8)),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_pool2d_cpp_equals_numpy_bitwise(shape, pool, strides, padding, mode, threads, rng):
    """Edge shapes (1, primes, vector widths +- 1, window = input, stride > window): the
    C++ kernel folds the taps as the NumPy code does, so the bits are equal, specials too."""
    x = rng.standard_normal(shape).astype(F32)
    if padding == "valid" and (shape[1] < pool[0] or shape[2] < pool[1]):
        for backend in ("cpp", "numpy"):
            with fl.use_backend(backend), pytest.raises(ValueError, match="smaller than pool"):
                (L.MaxPooling2D if mode == "max" else L.AveragePooling2D)(pool, strides,
                                                                           padding)(x)
        return
    flat = x.reshape(-1)
    flat[:: 7] = -0.0
    flat[2:: 7] = 0.0  # -0 / +0 ties: NumPy's maximum takes the second operand
    flat[3:: 11] = np.inf
    flat[5:: 13] = -np.inf
    flat[1:: 17] = np.nan
    layer = (L.MaxPooling2D if mode == "max" else L.AveragePooling2D)(pool, strides, padding)
    before = fl.get_num_threads()
    fl.set_num_threads(threads)
    try:
        with fl.use_backend("cpp"):
            got = layer(x)
    finally:
        fl.set_num_threads(before)
    with fl.use_backend("numpy"):
        want = layer(x)
    assert got.dtype == F32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32) * ~np.isnan(got),
                                  want.view(np.uint32) * ~np.isnan(want))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@needs_core
@pytest.mark.parametrize(
    "args, err, match",
    [
        ((np.ones((1, 2, 2), F32), (1, 1), (1, 1), (0, 0, 0, 0), False), ValueError, "ndim"),
        ((np.ones((1, 2, 2, 1)), (1, 1), (1, 1), (0, 0, 0, 0), False), TypeError, "float32"),
        ((np.ones((1, 2, 2, 1), F32), (0, 1), (1, 1), (0, 0, 0, 0), False), ValueError, "pool"),
        ((np.ones((1, 2, 2, 1), F32), (1, 1), (1, -1), (0, 0, 0, 0), False), ValueError,
         "strides"),
        ((np.ones((1, 2, 2, 1), F32), (1, 1), (1, 1), (0, -1, 0, 0), False), ValueError, "pads"),
        ((np.ones((1, 2, 2, 1), F32), (3, 1), (1, 1), (0, 0, 0, 0), False), ValueError,
         "smaller than the window"),
        ((np.ones((1, 2, 2, 1), F32), (2**40, 1), (1, 1), (0, 0, 0, 0), True), ValueError,
         "pool"),
        ((np.ones((1, 2, 2, 1), F32), (1, 1), (1, 1), (2**70, 0, 0, 0), True), ValueError,
         "pads"),
        ((np.ones((1, 2, 2, 1), F32), (1, 1), (1,), (0, 0, 0, 0), True), ValueError, "strides"),
        ((np.ones((1, 2, 2, 1), F32), (1, 1.5), (1, 1), (0, 0, 0, 0), True), TypeError, "pool"),
        ((np.ones((1, 4, 2, 1), F32)[:, ::2], (1, 1), (1, 1), (0, 0, 0, 0), True), ValueError,
         "contiguous"),
        ((np.ones((1, 2, 2, 8), F32), (2**31 - 1, 2**31 - 1), (1, 1),
          (2**31 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1), True), ValueError, "overflow"),
    ],
)
def test_core_pool2d_rejects_bad_arguments(args, err, match):
    from fastlayers import _core

    with pytest.raises(err, match=match):
        _core.pool2d(*args)


@needs_core
@pytest.mark.parametrize("average", [False, True])
def test_pool2d_signed_zero_ties_and_denormals(average):
    """Ties of -0 and +0 follow NumPy (the later tap wins) on both paths. Denormals: the C++
    kernel runs with FTZ/DAZ (docs/architecture.md §7) and counts them as zero; NumPy keeps
    them (the documented difference, docs/semantics.md §21)."""
    layer = (L.AveragePooling2D if average else L.MaxPooling2D)((1, 2))
    zeros = np.array([[[[-0.0, 0.0], [0.0, -0.0]]]], F32).transpose(0, 1, 3, 2)  # (1,1,2,2)
    for backend in ("cpp", "numpy"):
        with fl.use_backend(backend):
            y = layer(zeros)
        assert y.shape == (1, 1, 1, 2)
        if not average:
            np.testing.assert_array_equal(np.signbit(y[0, 0, 0]), [False, True])
    # (1, 1, 2, 1): a denormal, then 0 (max: under DAZ the denormal compares as 0 and the
    # tie takes the later tap) or the denormal twice (average: the sum is flushed).
    tiny = np.array([[[[1e-39], [1e-39 if average else 0.0]]]], F32)
    with fl.use_backend("numpy"):
        assert layer(tiny)[0, 0, 0, 0] == F32(1e-39)
    with fl.use_backend("cpp"):
        assert layer(tiny)[0, 0, 0, 0] == 0


@needs_core
def test_core_pool2d_huge_pads_read_nothing_outside():
    """Windows far outside the input read no memory (padding only): max gives -inf there,
    average the zero-padding sum 0 divided by the count NumPy's formula gives (not positive
    here: zero either way); the last window meets the input."""
    from fastlayers import _core

    x = np.ones((1, 2, 2, 3), F32)
    for average, outside in ((False, -np.inf), (True, 0.0)):
        y = _core.pool2d(x, (2, 2), (2**20, 2**20), (2**30, 0, 0, 0), average)
        assert y.shape == (1, 1025, 1, 3)
        np.testing.assert_array_equal(y[0, :1024], np.full((1024, 1, 3), outside, F32))
        np.testing.assert_array_equal(y[0, 1024], np.ones((1, 3), F32))


@needs_core
@pytest.mark.parametrize("pads", [(4, 4, 4, 4), (7, 0, 0, 7), (0, 9, 9, 0), (9, 9, 9, 9)])
@pytest.mark.parametrize("average", [False, True])
def test_core_pool2d_windows_of_padding_alone_give_numpys_bits(pads, average):
    """Windows that cover no input pixel (pads larger than the window; the layers never make
    them, the core op takes them): max -inf, average 0 divided by the count of covered pixels
    (0: NaN; negative: -0), bit for bit as the NumPy path's function."""
    from fastlayers import _core
    from fastlayers._numpy import pooling

    x = np.random.default_rng(2).standard_normal((1, 6, 5, 3)).astype(F32)
    got = _core.pool2d(x, (2, 2), (3, 3), pads, average)
    with np.errstate(invalid="ignore"):
        want = (pooling.avg_pool2d if average else pooling.max_pool2d)(
            x, (2, 2), (3, 3), pads, got.shape[1:3])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    if average:  # the cases show both: a count of 0 and a negative one
        assert np.isnan(got).any() or np.signbit(got[got == 0]).any()


def test_global_average_pooling1d_mask_rules(rng):
    x = rng.standard_normal((2, 4, 3)).astype(F32)
    x[0, 1] = np.nan  # a masked step may hold NaN: it counts as 0
    mask = np.array([[1, 0, 1, 1], [1, 1, 1, 1]])
    y = L.GlobalAveragePooling1D()(x, mask=mask)
    assert_close(y[0], x[0, [0, 2, 3]].mean(axis=0))
    assert_close(y[1], x[1].mean(axis=0))
    np.testing.assert_array_equal(y, L.GlobalAveragePooling1D()(x, mask=mask.astype(bool)))
    assert L.GlobalAveragePooling1D.supports_masking is True
    assert L.GlobalAveragePooling1D().compute_mask(x, mask) is None
    for cls in (
        L.GlobalMaxPooling1D,
        L.GlobalAveragePooling2D,
        L.MaxPooling1D,
        L.Conv1D,
        L.ZeroPadding1D,
        L.Cropping1D,
        L.DepthwiseConv2D,
        L.SeparableConv2D,
    ):
        assert cls.supports_masking is False


# ------------------------------------------------------------- the conv layers on conv2d


def test_conv1d_is_conv2d_of_height_1(rng, any_backend):
    x = rng.standard_normal((2, 9, 4)).astype(F32)
    layer = L.Conv1D(6, 3, padding="same", groups=2, activation="relu", seed=1)
    kernel, bias = layer.build(x.shape) or layer.get_weights()
    want = fl.conv2d(x[:, None], kernel[None], bias, padding="same", groups=2, activation="relu")
    np.testing.assert_array_equal(layer(x), want[:, 0])


def test_causal_conv1d_never_reads_the_future(rng, any_backend):
    x = rng.standard_normal((1, 12, 3)).astype(F32)
    layer = L.Conv1D(4, 3, padding="causal", dilation_rate=3, seed=2)
    y = layer(x)
    x2 = x.copy()
    x2[:, 7:] = 100.0
    np.testing.assert_array_equal(layer(x2)[:, :7], y[:, :7])
    kernel, bias = layer.get_weights()
    padded = np.pad(x, ((0, 0), (6, 0), (0, 0)))  # dilation * (k - 1) zeros at the start
    want = sum(padded[:, 3 * t : 3 * t + 12] @ kernel[t] for t in range(3)) + bias
    assert_close(y, want, k=9, magnitude=3.0)


@pytest.mark.parametrize("channels, mult", [(7, 1), (8, 1), (15, 2), (16, 1), (17, 3)])
def test_depthwise_paths_agree(channels, mult, rng):
    if NUMPY_ONLY:
        pytest.skip("NumPy-only run requested (FASTLAYERS_TEST_NUMPY_ONLY=1)")
    x = rng.standard_normal((2, 9, 8, channels)).astype(F32)
    layer = L.DepthwiseConv2D(3, padding="same", depth_multiplier=mult, seed=3)
    layer.build(x.shape)
    kernel, bias = layer.get_weights()
    with fl.use_backend("numpy"):
        a = layer(x)
    with fl.use_backend("cpp"):
        b = layer(x)
    # float64 reference: output channel c * mult + m is channel c with kernel[:, :, c, m]
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((2, 9, 8, channels, mult))
    for i in range(3):
        for j in range(3):
            want += xp[:, i : i + 9, j : j + 8, :, None] * kernel[i, j]
    want = want.reshape(2, 9, 8, channels * mult) + bias
    assert_close(a, want, k=9, magnitude=3.0)
    assert_close(b, want, k=9, magnitude=3.0)


def test_separable_is_depthwise_then_pointwise(rng, any_backend):
    x = rng.standard_normal((1, 7, 6, 3)).astype(F32)
    sep = L.SeparableConv2D(
        5, 3, strides=2, padding="same", depth_multiplier=2, activation="tanh", seed=4
    )
    sep.build(x.shape)
    dw_kernel, pw_kernel, bias = sep.get_weights()
    dw = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False)
    dw.set_weights([dw_kernel])
    want = fl.conv2d(dw(x), pw_kernel, bias, activation="tanh")
    assert_close(sep(x), want, k=6)
    assert [w.shape for w in sep.weights] == [(3, 3, 3, 2), (1, 1, 6, 5), (5,)]


# ------------------------------------------------------------------ models and loading


def _code_model(case):
    if case == "convpool_cnn_nested":
        block = Sequential(
            [
                Input(shape=(14, 14, 3)),
                L.Conv2D(4, 3, activation="relu"),
                L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                L.MaxPooling2D(2),
            ]
        )
        inp = Input(shape=(13, 11, 3))
        h = block(L.ZeroPadding2D(((1, 0), (1, 2)))(inp))
        h = L.SeparableConv2D(6, 3, padding="same", activation="relu")(h)
        h = L.Cropping2D(((1, 0), (0, 1)))(L.MaxPooling2D(3, strides=2, padding="same")(h))
        h = L.AveragePooling2D(2, strides=1)(h)
        out1 = L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(h))
        out2 = L.Dense(2)(L.Flatten()(L.GlobalMaxPooling2D(keepdims=True)(h)))
        return Model(inp, [out1, out2])
    assert case == "convpool_text_sequential"
    return Sequential(
        [
            Input(shape=(20, 4)),
            L.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu"),
            L.Conv1D(6, 3, padding="causal", dilation_rate=4, groups=2),
            L.MaxPooling1D(2),
            L.ZeroPadding1D((2, 1)),
            L.Conv1D(5, 4, strides=2, padding="same", activation="tanh"),
            L.AveragePooling1D(2, strides=1),
            L.Cropping1D((1, 0)),
            L.GlobalAveragePooling1D(),
            L.Dense(2),
        ]
    )


MODEL_CASES = ["convpool_cnn_nested", "convpool_text_sequential"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_built_in_code_with_keras_weights(case, backend):
    mdl = _code_model(case)
    mdl.set_weights(golden(case, "weights"))
    with fl.use_backend(backend):
        assert_keras_outputs(case, mdl.predict(golden(case, "inputs")[0]))
    text = _summary(mdl)
    n = sum(w.size for w in golden(case, "weights"))
    assert "Total params" in text and f"{n:,}" in text


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", MODEL_CASES)
def test_weights_file_into_a_model_built_in_code(case, backend):
    pytest.importorskip("h5py")
    mdl = _code_model(case)
    mdl.load_weights(HERE / "models" / f"{case}.weights.h5")
    for g, w in zip(mdl.get_weights(), golden(case, "weights")):
        np.testing.assert_array_equal(g, w)
    with fl.use_backend(backend):
        assert_keras_outputs(case, mdl(golden(case, "inputs")[0]))


def _summary(mdl):
    lines = []
    mdl.summary(print_fn=lines.append)
    return "\n".join(lines)


def test_symbolic_shapes_with_unknown_steps():
    inp = Input(shape=(None, 5))
    h = L.Conv1D(4, 3, padding="causal", seed=1)(inp)
    h = L.MaxPooling1D(2, padding="same")(h)
    out = L.GlobalAveragePooling1D()(h)
    mdl = Model(inp, out)
    x = np.random.default_rng(0).standard_normal((2, 9, 5)).astype(F32)
    assert mdl(x).shape == (2, 4)
    assert mdl(x[:, :4]).shape == (2, 4)
    assert [w.shape for w in mdl.get_weights()] == [(3, 5, 4), (4,)]


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_config_round_trip(case):
    layer = _make(LAYER_CASES[case][0])
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert repr(clone).startswith(type(layer).__name__)


def test_keras_config_values_are_read():
    from fastlayers.io.keras_config import make_layer

    cfg = {
        "class_name": "SeparableConv2D",
        "config": {
            "name": "sep",
            "filters": 3,
            "kernel_size": [3, 3],
            "strides": [1, 1],
            "padding": "same",
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "depth_multiplier": 1,
            "activation": "relu",
            "use_bias": True,
            "depthwise_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
            },
            "pointwise_initializer": {"class_name": "GlorotUniform", "config": {}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "depthwise_regularizer": None,
            "pointwise_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "depthwise_constraint": None,
            "pointwise_constraint": None,
            "bias_constraint": None,
            "trainable": True,
            "dtype": "float32",
        },
    }
    layer = make_layer(cfg)
    assert isinstance(layer, L.SeparableConv2D) and layer.padding == "same"
    pool = make_layer(
        {
            "class_name": "MaxPool2D",
            "config": {
                "name": "p",
                "pool_size": [2, 2],
                "padding": "valid",
                "strides": [2, 2],
                "data_format": "channels_last",
                "trainable": True,
            },
        }
    )
    assert isinstance(pool, L.MaxPooling2D) and pool.strides == (2, 2)


# ------------------------------------------------------------------------- bad arguments

BAD_CONSTRUCTORS = [
    (L.Conv1D, dict(filters=2, kernel_size=3, padding="full"), ValueError, "padding"),
    (L.Conv1D, dict(filters=2, kernel_size=(3, 3)), ValueError, "kernel_size"),
    (L.Conv1D, dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), ValueError, "strides"),
    (L.Conv1D, dict(filters=5, kernel_size=3, groups=2), ValueError, "groups"),
    (L.Conv1D, dict(filters=0, kernel_size=3), ValueError, "filters"),
    (L.Conv1D, dict(filters=2, kernel_size=0), ValueError, "kernel_size"),
    (L.Conv1D, dict(filters=2, kernel_size=3, lora_rank=4), NotImplementedError, "lora_rank"),
    (L.DepthwiseConv2D, dict(kernel_size=3, padding="causal"), ValueError, "padding"),
    (L.DepthwiseConv2D, dict(kernel_size=3, depth_multiplier=0), ValueError, "depth_multiplier"),
    (L.DepthwiseConv2D, dict(kernel_size=3, strides=2, dilation_rate=2), ValueError, "strides"),
    (L.DepthwiseConv2D, dict(kernel_size=3, data_format="nhwc"), ValueError, "data_format"),
    (
        L.DepthwiseConv2D,
        dict(kernel_size=3, depthwise_initializer="nope"),
        ValueError,
        "depthwise_initializer",
    ),
    (L.SeparableConv2D, dict(filters=2, kernel_size=3, padding=1), ValueError, "padding"),
    (L.SeparableConv2D, dict(filters=2, kernel_size=3, bogus=1), TypeError, "bogus"),
    (L.MaxPooling2D, dict(pool_size=0), ValueError, "pool_size"),
    (L.MaxPooling2D, dict(pool_size=(2, 2, 2)), ValueError, "pool_size"),
    (L.MaxPooling2D, dict(pool_size=2.5), TypeError, "pool_size"),
    (L.AveragePooling1D, dict(pool_size=2, strides=0), ValueError, "strides"),
    (L.AveragePooling2D, dict(padding="full"), ValueError, "padding"),
    (L.MaxPooling1D, dict(padding="causal"), ValueError, "padding"),
    (L.GlobalAveragePooling1D, dict(keepdims=1), TypeError, "keepdims"),
    (L.GlobalMaxPooling2D, dict(data_format="x"), ValueError, "data_format"),
    (L.ZeroPadding2D, dict(padding=(1, 2, 3)), ValueError, "padding"),
    (L.ZeroPadding2D, dict(padding=-1), ValueError, "padding"),
    (L.ZeroPadding1D, dict(padding=(1, -1)), ValueError, "padding"),
    (L.Cropping2D, dict(cropping=((1, 2, 3), (0, 0))), ValueError, "cropping"),
    (L.Cropping1D, dict(cropping="1"), TypeError, "cropping"),
]


@pytest.mark.parametrize("cls, kwargs, error, match", BAD_CONSTRUCTORS)
def test_bad_constructor_arguments(cls, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        cls(**kwargs)
    assert cls.__name__ in str(info.value)


BAD_CALLS = [
    (lambda: L.Conv1D(2, 3), (2, 5, 3, 1), "rank 3"),
    (lambda: L.Conv1D(2, 5), (1, 3, 2), "smaller than the dilated kernel"),
    (lambda: L.Conv1D(2, 3, dilation_rate=2), (1, 4, 2), "smaller than the dilated kernel"),
    (lambda: L.DepthwiseConv2D(3), (1, 2, 5, 1), "smaller than the dilated kernel"),
    (lambda: L.DepthwiseConv2D(3), (5, 5, 3), "rank 4"),
    (lambda: L.SeparableConv2D(2, 4), (1, 3, 3, 1), "smaller than the dilated kernel"),
    (lambda: L.MaxPooling2D(3), (1, 2, 5, 1), "smaller than pool_size"),
    (lambda: L.AveragePooling1D(4), (1, 3, 2), "smaller than pool_size"),
    (lambda: L.MaxPooling2D(), (2, 3, 1), "rank 4"),
    (lambda: L.MaxPooling1D(), (2, 3, 1, 1), "rank 3"),
    (lambda: L.GlobalAveragePooling2D(), (2, 3), "rank 4"),
    (lambda: L.GlobalMaxPooling1D(), (2, 0, 3), "empty"),
    (lambda: L.Cropping1D((2, 2)), (1, 4, 2), "cropping"),
    (lambda: L.Cropping2D(((1, 1), (0, 0))), (1, 2, 5, 1), "cropping"),
    (lambda: L.ZeroPadding2D(), (1, 2, 3), "rank 4"),
]


@pytest.mark.parametrize("make, shape, match", BAD_CALLS)
def test_bad_calls(make, shape, match, any_backend):
    layer = make()
    with pytest.raises(ValueError, match=match) as info:
        layer(np.zeros(shape, F32))
    assert type(layer).__name__ in str(info.value)


def test_channels_must_match_the_weights(any_backend):
    for layer, good, bad in [
        (L.Conv1D(2, 3, seed=1), (1, 5, 3), (1, 5, 4)),
        (L.DepthwiseConv2D(2, seed=1), (1, 4, 4, 3), (1, 4, 4, 2)),
        (L.SeparableConv2D(2, 2, seed=1), (1, 4, 4, 3), (1, 4, 4, 5)),
    ]:
        layer(np.zeros(good, F32))
        with pytest.raises(ValueError, match="channels"):
            layer(np.zeros(bad, F32))


def test_bad_masks():
    layer = L.GlobalAveragePooling1D()
    x = np.zeros((2, 4, 3), F32)
    with pytest.raises(ValueError, match="mask has shape"):
        layer(x, mask=np.ones((2, 3), bool))
    with pytest.raises(TypeError, match="mask"):
        layer(x, mask="yes")


def test_bad_weights():
    with pytest.raises(ValueError, match="kernel"):
        L.DepthwiseConv2D(3).set_weights([np.zeros((3, 3, 2)), np.zeros(2)])
    layer = L.SeparableConv2D(4, 3)
    layer.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match="pointwise_kernel"):
        layer.set_weights([np.zeros((3, 3, 2, 1)), np.zeros((1, 1, 3, 4)), np.zeros(4)])


# ------------------------------------------------------- fl.conv1d, fl.depthwise_conv2d

_OP_ARGS = ("strides", "padding", "dilation_rate", "groups", "activation")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "case",
    sorted(
        c
        for c, (m, *_) in LAYER_CASES.items()
        if m["class_name"] in ("Conv1D", "DepthwiseConv2D")
        and m["config"].get("data_format") is None
    ),
)
def test_functional_ops_match_keras(case, backend):
    meta, x, weights, _, y = LAYER_CASES[case]
    kwargs = {k: v for k, v in meta["config"].items() if k in _OP_ARGS}
    with fl.use_backend(backend):
        if meta["class_name"] == "Conv1D":
            got = fl.conv1d(x, *weights, **kwargs)
        else:
            got = fl.depthwise_conv2d(x, *weights, **kwargs)
    mult = meta["config"].get("depth_multiplier", 1)
    if mult != 1:  # the op has no depth_multiplier argument: it is the kernel's last axis
        assert weights[0].shape[-1] == mult
    assert_close(got, y, k=math.prod(weights[0].shape[:-1]), magnitude=float(np.abs(x).max()))


def test_functional_ops_take_symbolic_tensors(rng):
    kernel = rng.standard_normal((3, 4, 6)).astype(F32)
    dw = rng.standard_normal((3, 3, 2, 2)).astype(F32)
    a_in, b_in = Input(shape=(None, 4)), Input(shape=(5, 5, 2))
    mdl = Model(
        [a_in, b_in],
        [fl.conv1d(a_in, kernel, padding="causal"), fl.depthwise_conv2d(b_in, dw, padding="same")],
    )
    a = rng.standard_normal((2, 7, 4)).astype(F32)
    b = rng.standard_normal((1, 5, 5, 2)).astype(F32)
    y1, y2 = mdl([a, b])
    np.testing.assert_array_equal(y1, fl.conv1d(a, kernel, padding="causal"))
    np.testing.assert_array_equal(y2, fl.depthwise_conv2d(b, dw, padding="same"))


BAD_OPS = [
    (
        lambda: fl.conv1d(np.ones((2, 5)), np.ones((3, 2, 4))),
        ValueError,
        "conv1d: x must have rank 3",
    ),
    (lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 2))), ValueError, "kernel must have rank 3"),
    (
        lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 3, 4))),
        ValueError,
        r"expected \(3, 2, 4\)",
    ),
    (
        lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 2, 4)), padding="full"),
        ValueError,
        "padding",
    ),
    (lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 2, 4)), padding=0), TypeError, "padding"),
    (
        lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 2, 4)), strides=(1, 1)),
        ValueError,
        "strides",
    ),
    (lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 2, 4)), np.ones(3)), ValueError, "bias"),
    (lambda: fl.conv1d(np.ones((1, 2, 2)), np.ones((3, 2, 4))), ValueError, "dilated kernel"),
    (
        lambda: fl.conv1d(np.ones((1, 5, 4)), np.ones((3, 2, 3)), groups=2),
        ValueError,
        "divisible by groups",
    ),
    (
        lambda: fl.conv1d(np.ones((1, 5, 2)), np.ones((3, 2, 4)), strides=2, dilation_rate=2),
        ValueError,
        "strides",
    ),
    (
        lambda: fl.depthwise_conv2d(np.ones((1, 5, 5, 2)), np.ones((3, 3, 3, 1))),
        ValueError,
        "depthwise_conv2d: kernel has shape",
    ),
    (
        lambda: fl.depthwise_conv2d(np.ones((1, 5, 5, 2)), np.ones((3, 3, 2))),
        ValueError,
        "kernel must have rank 4",
    ),
    (
        lambda: fl.depthwise_conv2d(np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 2)), np.ones(2)),
        ValueError,
        "bias",
    ),
    (
        lambda: fl.depthwise_conv2d(np.ones((1, 2, 5, 2)), np.ones((3, 3, 2, 1))),
        ValueError,
        "dilated kernel",
    ),
    (lambda: fl.depthwise_conv2d(np.ones((1, 5, 5, 2)), "k"), TypeError, "kernel"),
]


@pytest.mark.parametrize("call, error, match", BAD_OPS)
def test_bad_op_arguments(call, error, match, any_backend):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "make, shape, out",
    [
        (lambda: L.Conv1D(2, 3, padding="causal", seed=1), (0, 5, 2), (0, 5, 2)),
        (lambda: L.DepthwiseConv2D(2, depth_multiplier=2, seed=1), (0, 3, 3, 2), (0, 2, 2, 4)),
        (lambda: L.SeparableConv2D(3, 2, seed=1), (0, 3, 3, 2), (0, 2, 2, 3)),
        (lambda: L.MaxPooling2D(), (0, 4, 5, 2), (0, 2, 2, 2)),
        (lambda: L.AveragePooling1D(2, padding="same"), (0, 5, 2), (0, 3, 2)),
        (lambda: L.GlobalAveragePooling1D(), (0, 3, 2), (0, 2)),
        (lambda: L.GlobalMaxPooling2D(keepdims=True), (0, 3, 3, 2), (0, 1, 1, 2)),
        (lambda: L.ZeroPadding2D(), (0, 2, 2, 1), (0, 4, 4, 1)),
        (lambda: L.Cropping1D(), (0, 3, 2), (0, 1, 2)),
    ],
)
def test_empty_batch(make, shape, out, any_backend):
    y = make()(np.zeros(shape, F32))
    assert y.shape == out and y.dtype == F32


@pytest.mark.parametrize(
    "make",
    [
        lambda df: L.SeparableConv2D(
            4, 3, padding="same", depth_multiplier=2, data_format=df, seed=5
        ),
        lambda df: L.MaxPooling1D(3, strides=2, padding="same", data_format=df),
        lambda df: L.AveragePooling1D(3, strides=2, padding="same", data_format=df),
        lambda df: L.GlobalMaxPooling1D(data_format=df),
        lambda df: L.ZeroPadding1D((1, 2), data_format=df),
    ],
)
def test_channels_first_is_a_transpose(make, rng, any_backend):
    first, last = make("channels_first"), make("channels_last")
    x = rng.standard_normal((2, 7, 5, 3)).astype(F32)
    if isinstance(
        first, (L.MaxPooling1D, L.AveragePooling1D, L.GlobalMaxPooling1D, L.ZeroPadding1D)
    ):
        x = x[:, 0]
    want = last(x)
    if first.weights or isinstance(first, L.SeparableConv2D):
        first.build((None, x.shape[-1], *x.shape[1:-1]))
        first.set_weights(last.get_weights())
    got = first(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
    np.testing.assert_array_equal(got, np.moveaxis(want, -1, 1) if want.ndim > 2 else want)


def _naive_conv1d(x, kernel, bias, stride, padding, dilation, groups):
    """Explicit loops in float64 from the rules: x (N, T, C), kernel (k, C/groups, F)."""
    n, t, c = x.shape
    k, cg, f = kernel.shape
    e = (k - 1) * dilation + 1
    if padding == "causal":
        before, after = e - 1, 0
    elif padding == "same":
        out = -(-t // stride)
        total = max((out - 1) * stride + e - t, 0)
        before, after = total // 2, total - total // 2
    else:
        before = after = 0
    xp = np.pad(x.astype(np.float64), ((0, 0), (before, after), (0, 0)))
    out = (t + before + after - e) // stride + 1
    fg = f // groups
    y = np.zeros((n, out, f)) + (0.0 if bias is None else bias)
    for o in range(out):
        for a in range(k):
            row = xp[:, o * stride + a * dilation]
            for g in range(groups):
                y[:, o, g * fg : (g + 1) * fg] += (
                    row[:, g * cg : (g + 1) * cg] @ kernel[a, :, g * fg : (g + 1) * fg]
                )
    return y


def _conv1d_grid():
    rng = np.random.default_rng(7)
    cases = []
    while len(cases) < 40:
        t = int(rng.choice([1, 2, 3, 7, 16, 17, 31]))
        k = int(rng.choice([1, 2, 3, 5]))
        padding = str(rng.choice(["valid", "same", "causal"]))
        stride, dilation = (int(rng.integers(1, 4)), 1)
        if rng.random() < 0.5:
            stride, dilation = 1, int(rng.integers(1, 4))
        groups = int(rng.choice([1, 2, 3]))
        if padding == "valid" and (k - 1) * dilation + 1 > t:
            continue
        cases.append((t, k, padding, stride, dilation, groups))
    return cases


@pytest.mark.parametrize("t, k, padding, stride, dilation, groups", _conv1d_grid())
def test_conv1d_matches_naive_loops(t, k, padding, stride, dilation, groups, rng, any_backend):
    c, f = 2 * groups, 3 * groups
    x = rng.standard_normal((2, t, c)).astype(F32)
    kernel = rng.standard_normal((k, c // groups, f)).astype(F32)
    bias = rng.standard_normal(f).astype(F32)
    got = fl.conv1d(x, kernel, bias, stride, padding, dilation, groups)
    want = _naive_conv1d(x, kernel, bias, stride, padding, dilation, groups)
    assert_close(got, want, k=k * c // groups, magnitude=3.0)
    layer = L.Conv1D(f, k, stride, padding, dilation_rate=dilation, groups=groups)
    layer.set_weights([kernel, bias])
    np.testing.assert_array_equal(layer(x), got)
