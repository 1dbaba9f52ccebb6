"""The layers of issue 12 (fastlayers/layers/normalization.py): BatchNormalization,
LayerNormalization, ReLU, LeakyReLU, PReLU, ELU, Rescaling, Normalization, and the
Softmax layer's Keras axis and mask arguments.

* Against Keras itself: tests/golden/layers_norm.npz (tests/golden/make_models_norm.py),
  each layer rebuilt from Keras's serialized config by the model loader's ``make_layer``.
* Against float64 references written from the formulas, at edge shapes (1, primes, 16 +- 1).
* Bad arguments and inputs: a ValueError / TypeError naming the layer and the argument.

Every test runs on both backends; these layers compute in NumPy under every backend except
ReLU / LeakyReLU / ELU whose parameters are a core activation (docs/semantics.md §23).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import NUMPY_ONLY, parallel_regions

import fastlayers as fl
from fastlayers import _backend
from fastlayers.io.keras_config import make_layer
from fastlayers.layers import (
    ELU,
    BatchNormalization,
    LayerNormalization,
    LeakyReLU,
    Normalization,
    PReLU,
    ReLU,
    Rescaling,
    Softmax,
)

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
F32 = np.float32

with np.load(Path(__file__).parent / "golden" / "layers_norm.npz") as _data:
    GOLDEN = {k: _data[k] for k in _data.files}
CONFIGS = json.loads(str(GOLDEN["__configs__"]))
LAYER_CASES = sorted(CONFIGS)


def _parts(case: str, part: str) -> list[np.ndarray]:
    out, i = [], 0
    while f"{case}.{part}.{i}" in GOLDEN:
        out.append(GOLDEN[f"{case}.{part}.{i}"])
        i += 1
    return out


def _close(got, want, scale=2e-5):
    assert got.shape == want.shape and got.dtype == F32
    np.testing.assert_allclose(got, want, rtol=scale, atol=scale * max(1.0, float(
        np.abs(want).max(initial=0.0))))


# ------------------------------------------------------------------------ against Keras


def test_the_layer_fixtures_cover_every_layer():
    classes = {CONFIGS[c]["class_name"] for c in LAYER_CASES}
    assert classes == {"BatchNormalization", "LayerNormalization", "ReLU", "LeakyReLU",
                       "PReLU", "ELU", "Rescaling", "Normalization", "Softmax"}
    assert len(LAYER_CASES) >= 30


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_matches_keras(case, backend):
    layer = make_layer(CONFIGS[case])
    weights = _parts(case, "weights")
    if weights:
        layer.set_weights(weights)
        assert [w.shape for w in layer.get_weights()] == [w.shape for w in weights]
    x = GOLDEN[f"{case}.x"]
    kwargs = {"mask": GOLDEN[f"{case}.mask"]} if f"{case}.mask" in GOLDEN else {}
    with fl.use_backend(backend):
        y = layer(x, **kwargs)
        # a second call (the built layer, its weights already checked) gives the same bits
        np.testing.assert_array_equal(layer(x, **kwargs), y)
    _close(y, GOLDEN[f"{case}.y"], 5e-5 if case == "ln_big_mean" else 2e-5)
    if not weights:  # built by the call, from Keras's defaults: Keras's weight shapes
        assert [w.shape for w in layer.get_weights()] == [w.shape for w in weights]


def test_keras_configs_round_trip():
    for case in LAYER_CASES:
        layer = make_layer(CONFIGS[case])
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_keras2_config_names():
    leaky = make_layer({"class_name": "LeakyReLU", "config": {"name": "lr", "alpha": 0.25}})
    assert leaky.negative_slope == 0.25
    np.testing.assert_array_equal(leaky(np.array([[-4.0, 2.0]])), [[-1.0, 2.0]])
    bn = make_layer({"class_name": "BatchNormalization",
                     "config": {"name": "bn", "axis": [3], "momentum": 0.9}})
    assert bn.axis == 3


# -------------------------------------------------------- float64 references, edge shapes

EDGE_SHAPES = [(1, 1), (1, 2), (7, 1), (3, 13), (2, 15), (2, 16), (2, 17), (4, 3, 31)]


def _bn_ref(x, mean, var, gamma, beta, eps, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda v: np.asarray(v, np.float64).reshape(shape)  # noqa: E731
    y = (x.astype(np.float64) - r(mean)) / np.sqrt(r(var) + eps)
    if gamma is not None:
        y = y * r(gamma)
    if beta is not None:
        y = y + r(beta)
    return y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", EDGE_SHAPES)
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False),
                                           (False, False)])
def test_batch_normalization_edge_shapes(shape, center, scale, backend, rng):
    for axis in (-1, 0, len(shape) - 2):
        c = shape[axis]
        x = rng.standard_normal(shape).astype(F32)
        mean, beta = rng.standard_normal((2, c)).astype(F32)
        var, gamma = rng.uniform(0.2, 2.0, (2, c)).astype(F32)
        layer = BatchNormalization(axis=axis, center=center, scale=scale, epsilon=1e-4)
        layer.set_weights([w for w, keep in ((gamma, scale), (beta, center), (mean, True),
                                             (var, True)) if keep])
        with fl.use_backend(backend):
            y = layer(x)
        want = _bn_ref(x, mean, var, gamma if scale else None, beta if center else None,
                       1e-4, axis)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def _ln_ref(x, axes, gamma, beta, eps):
    x = x.astype(np.float64)
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=tuple(axes), keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", EDGE_SHAPES)
def test_layer_normalization_edge_shapes(shape, backend, rng):
    for axis in (-1, [0, len(shape) - 1], list(range(1, len(shape)))):
        axes = sorted(a % len(shape) for a in ([axis] if isinstance(axis, int) else axis))
        wshape = tuple(shape[a] for a in axes)
        x = (rng.standard_normal(shape) * 3 + 1).astype(F32)
        gamma = rng.uniform(0.5, 1.5, wshape).astype(F32)
        beta = rng.standard_normal(wshape).astype(F32)
        layer = LayerNormalization(axis=axis, epsilon=1e-5)
        layer.set_weights([gamma, beta])
        with fl.use_backend(backend):
            y = layer(x)
        np.testing.assert_allclose(y, _ln_ref(x, axes, gamma, beta, 1e-5), rtol=1e-5,
                                   atol=2e-5)


def test_layer_normalization_empty_and_constant_rows():
    ln = LayerNormalization()
    assert ln(np.zeros((0, 5), F32)).shape == (0, 5)
    y = LayerNormalization()(np.full((2, 4), 3.0, F32))  # zero variance: (x - mean) = 0, no NaN
    np.testing.assert_array_equal(y, np.zeros((2, 4), F32))


def _relu_ref(x, ns, mx, thr):
    x = x.astype(np.float64)
    y = np.where(x > thr, x, 0.0) if thr else np.maximum(x, 0.0)
    if mx is not None:
        y = np.minimum(y, mx)
    return y - ns * np.maximum(thr - x, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", EDGE_SHAPES)
def test_activation_layers_edge_shapes(shape, backend, rng):
    x = (rng.standard_normal(shape) * 4).astype(F32)
    x.flat[0] = 0.0
    cases = [
        (ReLU(), _relu_ref(x, 0.0, None, 0.0)),
        (ReLU(max_value=6.0), _relu_ref(x, 0.0, 6.0, 0.0)),
        (ReLU(negative_slope=0.2), _relu_ref(x, 0.2, None, 0.0)),
        (ReLU(max_value=1.5, negative_slope=0.1, threshold=0.7), _relu_ref(x, 0.1, 1.5, 0.7)),
        (ReLU(threshold=1.0), _relu_ref(x, 0.0, None, 1.0)),
        (LeakyReLU(), np.where(x >= 0, x, 0.3 * x.astype(np.float64))),
        (LeakyReLU(0.2), np.where(x >= 0, x, 0.2 * x.astype(np.float64))),
        (ELU(), np.where(x > 0, x, np.expm1(x.astype(np.float64)))),
        (ELU(0.4), np.where(x > 0, x, 0.4 * np.expm1(x.astype(np.float64)))),
        (Rescaling(0.5, offset=-2.0), x * 0.5 - 2.0),
    ]
    with fl.use_backend(backend):
        for layer, want in cases:
            y = layer(x)
            assert y.dtype == F32 and y.shape == x.shape
            np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-6, err_msg=repr(layer))


@pytest.mark.parametrize("backend", BACKENDS)
def test_prelu_and_normalization_edge_shapes(backend, rng):
    for shape in [(1, 1), (3, 13), (2, 5, 17), (2, 3, 1, 7)]:
        x = rng.standard_normal(shape).astype(F32)
        for shared in (None, [1], list(range(1, len(shape)))):
            layer = PReLU(shared_axes=shared)
            ashape = tuple(1 if shared and i + 1 in shared else d
                           for i, d in enumerate(shape[1:]))
            alpha = rng.uniform(-1, 1, ashape).astype(F32)
            layer.set_weights([alpha])
            with fl.use_backend(backend):
                y = layer(x)
            want = np.maximum(x, 0) - alpha * np.maximum(-x, 0)
            np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-7)
        mean = rng.standard_normal(shape[-1]).astype(F32)
        var = rng.uniform(0, 2, shape[-1]).astype(F32)
        var[0] = 0.0  # the 1e-7 floor of the standard deviation
        for invert in (False, True):
            layer = Normalization(invert=invert)
            layer.set_weights([mean, var, np.array(5)])
            std = np.maximum(np.sqrt(var.astype(np.float64)), 1e-7)
            want = mean + x * std if invert else (x - mean.astype(np.float64)) / std
            with fl.use_backend(backend):
                np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(), reason="no compiled core")
def test_core_activations_serve_the_matching_layers(monkeypatch):
    """ReLU(), ReLU(max_value=6), ReLU(negative_slope=0.2), LeakyReLU(0.2) and ELU() run the
    core's kernel under "cpp"; other parameters run NumPy."""
    from fastlayers._cpp import activations as cpp_act

    calls = []
    real = cpp_act.activate
    monkeypatch.setattr(cpp_act, "activate", lambda x, a: calls.append(a) or real(x, a))
    x = np.linspace(-8, 8, 33, dtype=F32).reshape(3, 11)
    with fl.use_backend("cpp"):
        for layer in (ReLU(), ReLU(max_value=6.0), ReLU(negative_slope=0.2), LeakyReLU(0.2),
                      ELU(), ReLU(threshold=0.1), LeakyReLU(), ELU(0.5)):
            layer(x)
    assert calls == ["relu", "relu6", "leaky_relu", "leaky_relu", "elu"]


# ------------------------------------------------------------------------------ Softmax


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_layer_takes_keras_axis_lists_and_masks(backend, rng):
    x = rng.standard_normal((2, 3, 5)).astype(F32)
    layer = make_layer({"class_name": "Softmax", "config": {"name": "sm", "axis": [1, 2]}})
    with fl.use_backend(backend):
        y = layer(x)
        np.testing.assert_allclose(y.sum(axis=(1, 2)), 1.0, rtol=1e-6)
        mask = np.array([1.0, 0.7, 0.2, 0.0, 0.9], F32)  # Keras: > 0.5 keeps an entry
        ym = Softmax()(x, mask=mask)
    assert np.all(ym[..., [2, 3]] == 0)
    e = np.exp(x[..., [0, 1, 4]].astype(np.float64))
    np.testing.assert_allclose(ym[..., [0, 1, 4]], e / e.sum(-1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="mask"):
        Softmax()(x, mask=np.ones((2, 4, 5), bool))


# -------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("make, exc, match", [
    (lambda: BatchNormalization(epsilon=-1e-3), ValueError, "epsilon"),
    (lambda: BatchNormalization(epsilon=float("nan")), ValueError, "epsilon"),
    (lambda: BatchNormalization(axis=1.5), TypeError, "axis"),
    (lambda: BatchNormalization(axis=[1, 2]), TypeError, "axis"),
    (lambda: BatchNormalization(center=1), TypeError, "center"),
    (lambda: BatchNormalization(moving_mean_initializer="nope"), ValueError,
     "moving_mean_initializer"),
    (lambda: BatchNormalization(bogus=1), TypeError, "bogus"),
    (lambda: BatchNormalization(renorm=1), TypeError, "renorm"),
    (lambda: LayerNormalization(epsilon=-1.0), ValueError, "epsilon"),
    (lambda: LayerNormalization(axis=[]), ValueError, "axis"),
    (lambda: LayerNormalization(axis="last"), TypeError, "axis"),
    (lambda: LayerNormalization(rms_scaling=1), TypeError, "rms_scaling"),
    (lambda: LayerNormalization(scale="yes"), TypeError, "scale"),
    (lambda: ReLU(max_value=-1.0), ValueError, "max_value"),
    (lambda: ReLU(negative_slope=-0.1), ValueError, "negative_slope"),
    (lambda: ReLU(threshold=-0.5), ValueError, "threshold"),
    (lambda: ReLU(negative_slope=None), TypeError, "negative_slope"),
    (lambda: LeakyReLU(negative_slope=-0.3), ValueError, "negative_slope"),
    (lambda: LeakyReLU(alpha="0.3"), TypeError, "negative_slope"),
    (lambda: ELU(alpha=float("inf")), ValueError, "alpha"),
    (lambda: PReLU(shared_axes=[0]), ValueError, "shared_axes"),
    (lambda: PReLU(shared_axes=1.0), TypeError, "shared_axes"),
    (lambda: Rescaling("half"), TypeError, "scale"),
    (lambda: Rescaling(1.0, offset=[1.0, float("nan")]), ValueError, "offset"),
    (lambda: Normalization(mean=1.0), ValueError, "together"),
    (lambda: Normalization(mean=[1.0, 2.0], variance=[1.0]), ValueError, "same shape"),
    (lambda: Normalization(axis=-1, mean=[[1.0]], variance=[[1.0]]), ValueError, "rank"),
    (lambda: Normalization(mean=[0.0], variance=[-1.0]), ValueError, "variance"),
    (lambda: Normalization(invert=1), TypeError, "invert"),
])
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_call_inputs_name_the_layer_and_the_argument():
    x = np.ones((2, 3, 4), F32)
    with pytest.raises(ValueError, match=r"BatchNormalization 'bn'.*axis 3 is out of range"):
        BatchNormalization(axis=3, name="bn")(x)
    bn = BatchNormalization(name="bn2")
    bn(x)
    with pytest.raises(ValueError, match=r"'bn2'.*5 channels"):
        bn(np.ones((2, 5), F32))
    with pytest.raises(TypeError, match=r"'bn2'.*inputs"):
        bn("x")
    with pytest.raises(ValueError, match=r"LayerNormalization.*axis -4 is out of range"):
        LayerNormalization(axis=-4)(x)
    with pytest.raises(ValueError, match="same axis twice"):
        LayerNormalization(axis=[2, -1])(x)
    ln = LayerNormalization(axis=[1, 2])
    ln(x)
    with pytest.raises(ValueError, match="the weights"):
        ln(np.ones((2, 4, 3), F32))
    p = PReLU(name="p")
    p(x)
    with pytest.raises(ValueError, match=r"'p'.*do not match alpha"):
        p(np.ones((2, 3, 5), F32))
    with pytest.raises(ValueError, match="rank >= 2"):
        PReLU()(np.ones(3, F32))
    with pytest.raises(ValueError, match="out of range"):
        PReLU(shared_axes=[3])(x)
    with pytest.raises(ValueError, match="scale of shape"):
        Rescaling([1.0, 2.0])(x)
    with pytest.raises(ValueError, match="out of range"):
        Normalization(axis=5)(x)
    nz = Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[1.0, 1.0])
    with pytest.raises(ValueError, match="does not match inputs"):
        nz(x)


def test_bad_weights_name_the_weight():
    bn = BatchNormalization(name="bn")
    with pytest.raises(ValueError, match="expected 4 arrays"):
        bn.set_weights([np.ones(3)] * 3)
    with pytest.raises(ValueError, match="rank 1"):
        bn.set_weights([np.ones((3, 1))] * 4)
    bn.set_weights([np.ones(3)] * 4)
    with pytest.raises(ValueError, match="'moving_variance' has shape"):
        bn.set_weights([np.ones(3)] * 3 + [np.ones(4)])
    ln = LayerNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match="rank 2"):
        ln.set_weights([np.ones(3), np.ones(3)])
    norm = Normalization()
    with pytest.raises(ValueError, match="expected 3 arrays"):
        norm.set_weights([np.ones(3), np.ones(3)])
    assert Normalization(mean=1.0, variance=1.0).get_weights() == []
    given = Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])
    with pytest.raises(ValueError, match="expected 0 arrays"):
        given.set_weights([np.ones(3)])
    given.set_weights([])  # no weights: nothing to set (it was an IndexError)
    np.testing.assert_allclose(given(np.ones((2, 3), np.float32)), [[0.0, -0.5, -2 / 3]] * 2,
                               rtol=1e-6)
    # alpha needs an axis per shared axis (it was an IndexError for a 0-d alpha)
    with pytest.raises(ValueError, match="'alpha' has shape .*expected rank >= 1"):
        PReLU().set_weights([np.float32(0.1)])
    with pytest.raises(ValueError, match=r"'alpha' has shape \(4,\), expected rank >= 2"):
        PReLU(shared_axes=[2]).set_weights([np.ones(4)])
    prelu = PReLU(shared_axes=[1])
    prelu.set_weights([np.full((1, 3), 0.5)])
    np.testing.assert_allclose(prelu(-np.ones((2, 4, 3), np.float32)), -0.5)


# ----------------------------------------------------------------- models and symbols


def test_layers_in_a_model_summary_and_weights():
    inp = fl.Input(shape=(6, 4))
    h = LayerNormalization()(fl.layers.Dense(4, seed=1)(inp))
    h = BatchNormalization()(PReLU(shared_axes=[1])(h))
    h = Normalization(axis=None, mean=0.5, variance=2.0)(ELU()(LeakyReLU()(ReLU()(h))))
    model = fl.Model(inp, Rescaling(2.0)(h))
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    for name in ("layer_normalization", "batch_normalization", "p_re_lu", "elu", "rescaling"):
        assert name in text
    assert [w.shape for w in model.get_weights()] == [(4, 4), (4,), (4,), (4,), (1, 4), (4,),
                                                      (4,), (4,), (4,)]
    y = model(np.ones((3, 6, 4), F32))
    assert y.shape == (3, 6, 4) and y.dtype == F32


@pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(), reason="no compiled core")
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_normalization_cpp_is_the_channel_affine_kernel(monkeypatch, rng, threads):
    """Under "cpp" a BatchNormalization is the core's channel_affine_lastdim (one pass of
    x * scale + shift over rows of channels), for the last axis and (moved last) any other,
    with the NumPy path's bits: channel counts around the vector widths, a non-contiguous
    input, inf, NaN and signed zeros, and a shape large enough to be split over threads."""
    from fastlayers.layers import normalization as norm_module

    calls = []
    real = norm_module._cpp_norm.channel_affine
    monkeypatch.setattr(norm_module._cpp_norm, "channel_affine",
                        lambda x, *a: calls.append(x.shape) or real(x, *a))
    cases = [((5, 1, 17), -1), ((2, 7, 3, 5), 1), ((3, 2), 0), ((1, 1), -1), ((4, 15), -1),
             ((3, 16), -1), ((2, 33), -1), ((2, 9, 64), 2), ((8, 40, 40, 24), -1)]
    old = fl.get_num_threads()
    try:
        fl.set_num_threads(threads)
        for shape, axis in cases:
            c = shape[axis]
            layer = BatchNormalization(axis=axis)
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.standard_normal(c),
                               rng.standard_normal(c), rng.uniform(0.2, 2.0, c)])
            x = rng.standard_normal(shape).astype(F32)
            x.flat[:: max(1, x.size // 5)] = [np.inf, -np.inf, np.nan, -0.0, 0.0][
                : len(x.flat[:: max(1, x.size // 5)])]
            with fl.use_backend("cpp"), parallel_regions() as regions:
                got = layer(x)
                strided = layer(np.repeat(x, 2, axis=0)[::2])  # a non-contiguous view
            with fl.use_backend("numpy"):
                want = layer(x)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
            np.testing.assert_array_equal(strided.view(np.uint32), want.view(np.uint32))
            assert calls[-1] == x.shape
            if x.size >= 38400 and threads > 1:
                assert regions() > 0, "no split"
    finally:
        fl.set_num_threads(old)
    assert len(calls) == 2 * len(cases)


@pytest.mark.skipif(NUMPY_ONLY or not _backend.core_available(), reason="no compiled core")
def test_channel_affine_kernel_fuses_activations_and_refuses_bad_arguments(rng):
    """channel_affine_lastdim's activation is the act kernel on its output (the same bits as
    applying it after), and its bad arguments raise ValueError / TypeError."""
    core = _backend._core
    ids = _backend.cpp_activation_ids()
    x = rng.standard_normal((37, 19)).astype(F32)
    scale, shift = rng.standard_normal(19).astype(F32), rng.standard_normal(19).astype(F32)
    plain = core.channel_affine_lastdim(x, scale, shift)
    np.testing.assert_array_equal(plain, (x * scale + shift).astype(F32))
    for name in ("relu", "silu", "gelu", "sigmoid"):
        fused = core.channel_affine_lastdim(x, scale, shift, ids[name])
        with fl.use_backend("cpp"):
            np.testing.assert_array_equal(fused, fl.activations.get(name)(plain))
    with pytest.raises(ValueError, match="scale"):
        core.channel_affine_lastdim(x, scale[:18], shift)
    with pytest.raises(TypeError, match="required"):
        core.channel_affine_lastdim(x, None, shift)
    with pytest.raises(ValueError, match="act"):
        core.channel_affine_lastdim(x, scale, shift, 999)
    with pytest.raises(ValueError, match="ndim"):
        core.channel_affine_lastdim(np.array(1.0, F32), scale[:1], shift[:1])
    with pytest.raises(TypeError):
        core.channel_affine_lastdim(x.astype(np.float64), scale, shift)
    assert core.channel_affine_lastdim(np.zeros((0, 19), F32), scale, shift).shape == (0, 19)
    # Subnormals flush to zero on C++ (FTZ/DAZ, documented), where NumPy keeps them.
    tiny = np.full((4, 3), 1e-39, F32)
    ones, zeros = np.ones(3, F32), np.zeros(3, F32)
    assert not core.channel_affine_lastdim(tiny, ones, zeros).any()
    np.testing.assert_array_equal((tiny * ones + zeros).astype(F32), tiny)


@pytest.mark.parametrize("backend", ["numpy"] + ([] if NUMPY_ONLY else ["cpp"]))
@pytest.mark.parametrize("axis, shape", [(-1, (2, 3, 0)), (1, (2, 0, 3))])
def test_batch_normalization_without_channels(backend, axis, shape):
    """No channels: the empty output, as Keras gives it (the layer packed an empty depthwise
    kernel when built and refused with a message naming an internal class; an audit)."""
    layer = BatchNormalization(axis=axis)
    with fl.use_backend(backend):
        y = layer(np.zeros(shape, np.float32))
    assert y.shape == shape and y.dtype == np.float32 and len(layer.get_weights()) == 4
