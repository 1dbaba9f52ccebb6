"""Folding a BatchNormalization into the Dense, Conv2D or DepthwiseConv2D before it, and the
activation layer after it into the same layer (fastlayers/models/folding.py).

The folded model must equal the unfolded one (``folding.disabled()``) within float32
rounding and Keras's outputs (tests/golden/models_norm.npz, made by
tests/golden/make_models_norm.py); a BatchNormalization that cannot be folded (after an
activation, on a shared output, on another axis, as a model output) runs as a layer; the
model still shows Keras's layers and weights, and new weights are folded again.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import NUMPY_ONLY
from golden_models import assert_keras_outputs, golden

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers.layers import (
    ELU,
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    LayerNormalization,
    LeakyReLU,
    Normalization,
    PReLU,
    ReLU,
    Rescaling,
    ZeroPadding2D,
)
from fastlayers.models import folding

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
MODELS = Path(__file__).parent / "golden" / "models"
F32 = np.float32


def _list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _plan(model):
    if isinstance(model, Sequential):
        return folding.sequential_plan(model)
    return folding.functional_plan(model)


def _folded_layers(model):
    """The names of the producer layers that run folded."""
    plan = _plan(model)
    if isinstance(model, Sequential):
        return sorted(model.layers[i].name for i, f in plan.items()
                      if isinstance(f, folding.Fold))
    nodes = {id(n): n for n in model._nodes}
    return sorted(nodes[k].layer.name for k in plan
                  if type(nodes[k].layer).__name__ in ("Dense", "Conv2D", "DepthwiseConv2D"))


def assert_fold_equals_unfolded(model, x, backend, k=64):
    with fl.use_backend(backend):
        folded = _list(model(x))
        with folding.disabled():
            assert _plan(model) == {}
            plain = _list(model(x))
    assert len(folded) == len(plain)
    for a, b in zip(folded, plain):
        assert a.dtype == F32 and a.shape == b.shape
        # float32 rounding of the two ways: |a - b| within a few ulps of the values seen
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * k * max(1.0, float(
            np.abs(b).max(initial=0.0))))
    return folded


# ---- the Keras models -------------------------------------------------------------------


def _sequential_in_code():
    """norm_sequential written with fastlayers (make_models_norm.py)."""
    return Sequential([
        Input(shape=(7, 7, 3)),
        Rescaling([1.0 / 127.5, 1.0 / 100.0, 1.0 / 64.0], offset=-1.0),
        Normalization(),
        Conv2D(5, 3, padding="same"),
        BatchNormalization(),
        ReLU(),
        Conv2D(5, 3, groups=5, strides=2),
        BatchNormalization(center=False, epsilon=1e-5),
        Flatten(),
        Dense(7, use_bias=False),
        BatchNormalization(scale=False),
    ])


def _functional_in_code():
    inp = Input(shape=(5, 8))
    h = BatchNormalization()(Dense(6)(inp))
    h = LayerNormalization(epsilon=1e-6)(LeakyReLU(negative_slope=0.1)(h))
    r = PReLU(shared_axes=[1])(BatchNormalization()(Dense(4, activation="relu")(h)))
    s = ELU(alpha=0.7)(ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)(h))
    a = Normalization(mean=[0.1, -0.3, 0.0, 1.0, 2.0, 0.5],
                      variance=[1.0, 4.0, 0.25, 1.0, 2.0, 0.5], invert=True)(s)
    return Model(inp, [r, a])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case, make, folds", [
    ("norm_sequential", _sequential_in_code, 3),
    ("norm_functional", _functional_in_code, 1),
])
def test_code_models_fold_and_match_keras(case, make, folds, backend):
    model = make()
    model.set_weights(golden(case, "weights"))
    assert len(_folded_layers(model)) == folds
    x = golden(case, "inputs")[0]
    out = assert_fold_equals_unfolded(model, x, backend)
    assert_keras_outputs(case, out if len(out) > 1 else out[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_loaded_models_fold_what_can_be_folded(backend):
    pytest.importorskip("h5py")
    seq = fl.load_model(MODELS / "norm_sequential.keras")
    assert _folded_layers(seq) == sorted(x.name for x in seq.layers
                                         if type(x) in (Conv2D, Dense))
    fun = fl.load_model(MODELS / "norm_functional.h5")
    assert _folded_layers(fun) == ["d_fold"]  # not d_relu: its BatchNormalization follows a relu
    for case, model in (("norm_sequential", seq), ("norm_functional", fun)):
        out = assert_fold_equals_unfolded(model, golden(case, "inputs")[0], backend)
        assert_keras_outputs(case, out if len(out) > 1 else out[0])
        # The model still shows Keras's layers and weights.
        assert sum(type(x) is BatchNormalization for x in model.layers) == (
            3 if case == "norm_sequential" else 2)
        for a, b in zip(model.get_weights(), golden(case, "weights")):
            np.testing.assert_array_equal(a, b)
        lines = []
        model.summary(print_fn=lines.append)
        assert "BatchNormalization" in lines[0]


# ---- what does not fold -------------------------------------------------------------------


def _random_weight(name, shape, rng):
    """Seeded values for a weight by its name (the BatchNormalization statistics not trivial)."""
    if name == "moving_variance":
        return rng.uniform(0.3, 2.0, shape)
    if name == "gamma":
        return rng.uniform(0.5, 1.5, shape)
    return rng.uniform(-0.5, 0.5, shape)


def _random_bn_weights(model, rng):
    model.set_weights([_random_weight(name, w.shape, rng) for layer in model.layers
                       for name, w in zip(layer._weight_names(), layer.get_weights())])


def _layer_by_layer(x, *layers):
    for layer in layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_cannot_fold_runs_unfolded(backend, rng):
    inp = Input(shape=(5, 6))
    d_relu, bn_relu = Dense(4, activation="relu"), BatchNormalization()  # after an activation
    d_shared, bn_shared, side = Dense(4), BatchNormalization(), Dense(2)  # shared output
    d_axis, bn_axis = Dense(4), BatchNormalization(axis=1)  # not the channel axis
    d_out, bn_out = Dense(4), BatchNormalization()  # the Dense output is a model output
    d_ok, bn_ok = Dense(3), BatchNormalization(axis=2)  # positive axis = the last one: folds
    shared = d_shared(inp)
    dense_out = d_out(inp)
    outs = [bn_relu(d_relu(inp)), bn_shared(shared), side(shared), bn_axis(d_axis(inp)),
            dense_out, bn_out(dense_out), bn_ok(d_ok(inp))]
    model = Model(inp, outs)
    _random_bn_weights(model, rng)
    assert _folded_layers(model) == [d_ok.name]
    x = rng.standard_normal((3, 5, 6)).astype(F32)
    got = assert_fold_equals_unfolded(model, x, backend)
    with fl.use_backend(backend):
        want = [_layer_by_layer(x, d_relu, bn_relu), _layer_by_layer(x, d_shared, bn_shared),
                _layer_by_layer(x, d_shared, side), _layer_by_layer(x, d_axis, bn_axis),
                d_out(x), _layer_by_layer(x, d_out, bn_out)]
    for g, w in zip(got[:6], want):  # the unfolded ones: exactly the layers' own results
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_folds_only_linear_last_axis_pairs(backend, rng):
    model = Sequential([
        Input(shape=(6, 6, 4)),
        Conv2D(6, 3, data_format="channels_first"),  # channels_first: BN on axis -1 is W
        BatchNormalization(),
        Conv2D(4, 1, activation="tanh"), BatchNormalization(),  # after tanh
        Conv2D(4, 3, groups=4, padding="same"), BatchNormalization(axis=3),  # folds
        BatchNormalization(),  # BN after BN: not a producer
        Flatten(), Dense(5), ReLU(), BatchNormalization(),
    ])
    _random_bn_weights(model, rng)
    # The Dense folds no BatchNormalization (a ReLU comes first) but takes the ReLU as its own
    # activation (test_an_activation_right_after_a_producer_fuses).
    assert _folded_layers(model) == sorted([model.layers[4].name, model.layers[8].name])
    assert _plan(model)[8].bn is None and _plan(model)[8].activation == "relu"
    assert_fold_equals_unfolded(model, rng.standard_normal((2, 6, 6, 4)).astype(F32), backend)


def test_an_unbuilt_sequential_folds_once_built(rng):
    model = Sequential([Dense(4), BatchNormalization()])
    assert _plan(model) == {}
    x = rng.standard_normal((2, 3)).astype(F32)
    first = model(x)
    assert len(_plan(model)) == 1  # the Dense (its BatchNormalization runs inside it)
    np.testing.assert_allclose(model(x), first, rtol=1e-6, atol=1e-6)


# ---- new weights are folded again -----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_weights_are_folded_again(backend, rng, tmp_path):
    model = _sequential_in_code()
    model.set_weights(golden("norm_sequential", "weights"))
    x = golden("norm_sequential", "inputs")[0]
    with fl.use_backend(backend):
        before = model(x)
    weights = model.get_weights()
    bn = model.layers[3]
    new = [w * 1.5 + 0.25 for w in bn.get_weights()]
    bn.set_weights(new)  # one layer's weights, set directly
    after = assert_fold_equals_unfolded(model, x, backend)[0]
    assert not np.allclose(after, before)
    model.set_weights(weights)  # the whole model, back to Keras's
    with fl.use_backend(backend):
        np.testing.assert_allclose(model(x), before, rtol=1e-6, atol=1e-6)
    pytest.importorskip("h5py")
    bn.set_weights(new)
    model.load_weights(MODELS / "norm_sequential.weights.h5")
    with fl.use_backend(backend):
        assert_keras_outputs("norm_sequential", model(x))
    conv = model.layers[2]  # the producer's weights too
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    assert_fold_equals_unfolded(model, x, backend)


def test_folded_models_pickle_and_copy(rng):
    model = _functional_in_code()
    model.set_weights(golden("norm_functional", "weights"))
    x = golden("norm_functional", "inputs")[0]
    before = _list(model(x))
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert len(_folded_layers(clone)) == 1
        for a, b in zip(_list(clone(x)), before):
            np.testing.assert_array_equal(a, b)


def test_fold_weights_formula(rng):
    dense = Dense(3)
    dense.set_weights([rng.standard_normal((4, 3)), rng.standard_normal(3)])
    bn = BatchNormalization(epsilon=0.01)
    gamma, beta, mean = rng.standard_normal((3, 3))
    var = rng.uniform(0.5, 2.0, 3)
    bn.set_weights([gamma, beta, mean, var])
    kernel, bias = folding.fold_weights(dense, bn)
    s = gamma.astype(F32).astype(np.float64) / np.sqrt(var.astype(F32).astype(np.float64) + 0.01)
    np.testing.assert_allclose(kernel, dense.kernel * s, rtol=1e-6)
    np.testing.assert_allclose(bias, (dense.bias - mean.astype(F32)) * s + beta.astype(F32),
                               rtol=1e-6, atol=1e-7)


# ---- a mask that flows: no fold ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_fold_while_a_mask_flows(backend, rng):
    """Embedding(mask_zero) -> Dense -> BatchNormalization -> LSTM: the pair is in the plan,
    but the executors must run it unfolded so that the mask still reaches the LSTM (a fold
    would drop it: the LSTM would then read the padded steps)."""
    from fastlayers.layers import LSTM, Embedding

    emb, dense, bn, lstm = (Embedding(10, 4, mask_zero=True, seed=1), Dense(5, seed=2),
                            BatchNormalization(), LSTM(3, seed=3))
    seq = Sequential([Input(shape=(6,), dtype="int32"), emb, dense, bn, lstm])
    _random_bn_weights(seq, rng)
    inp = Input(shape=(6,), dtype="int32")
    fun = Model(inp, lstm(bn(dense(emb(inp)))))
    # The pair inside a nested model, which receives the mask from the outer one.
    inner = Sequential([Input(shape=(6, 4)), dense, bn])
    nested = Model(inp, lstm(inner(emb(inp))))
    x = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 0, 0, 0, 0], [7, 8, 9, 1, 2, 3]])
    with fl.use_backend(backend):
        h = bn(dense(emb(x)))
        want = lstm(h, mask=emb.compute_mask(x))
        unmasked = lstm(h)
        assert _folded_layers(inner) == [dense.name]
        for model in (seq, fun, nested):
            if model is not nested:
                assert _folded_layers(model) == [dense.name]  # foldable, were no mask there
            got = model(x)
            np.testing.assert_array_equal(got, want)
            assert not np.allclose(got[:2], unmasked[:2])  # the mask mattered


# ---- DepthwiseConv2D -> BatchNormalization (MobileNet's blocks) ------------------------------


def test_fold_weights_formula_depthwise(rng):
    """Output channel c * m + j of a depthwise conv is kernel[:, :, c, j]: scaled by s[c*m + j]."""
    dw = DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)
    dw.build((1, 5, 5, 3))
    dw.set_weights([rng.standard_normal((3, 3, 3, 2))])
    bn = BatchNormalization(epsilon=0.01)
    bn.build((1, 3, 3, 6))
    gamma, beta, mean = rng.standard_normal((3, 6))
    var = rng.uniform(0.5, 2.0, 6)
    bn.set_weights([gamma, beta, mean, var])
    kernel, bias = folding.fold_weights(dw, bn)
    s = gamma.astype(F32).astype(np.float64) / np.sqrt(var.astype(F32).astype(np.float64) + 0.01)
    want = dw.get_weights()[0].copy()
    for c in range(3):
        for j in range(2):
            want[:, :, c, j] *= s[c * 2 + j]
    np.testing.assert_allclose(kernel, want, rtol=1e-6)
    np.testing.assert_allclose(bias, -mean.astype(F32) * s + beta.astype(F32), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_folds_depthwise(backend, rng):
    model = Sequential([
        Input(shape=(7, 9, 4)),
        DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, padding="same"),
        BatchNormalization(),  # folds
        ReLU(max_value=6.0),
        DepthwiseConv2D(3, strides=2, data_format="channels_first"),  # BN on axis -1 is W
        BatchNormalization(),
        DepthwiseConv2D(3, activation="relu"), BatchNormalization(),  # after relu
    ])
    _random_bn_weights(model, rng)
    assert _folded_layers(model) == [model.layers[0].name]
    assert_fold_equals_unfolded(model, rng.standard_normal((2, 7, 9, 4)).astype(F32), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_depthwise_folds_match_keras(backend, rng, tmp_path):
    """A MobileNet-style block written in Keras, saved and loaded: both DepthwiseConv2D ->
    BatchNormalization pairs run folded and give Keras's outputs."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    inp = keras.Input((11, 13, 5))
    h = L.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, padding="same", name="dw1")(inp)
    h = L.ReLU(6.0)(L.BatchNormalization(name="bn1")(h))
    h = L.DepthwiseConv2D(3, strides=2, name="dw2")(L.ZeroPadding2D(((0, 1), (0, 1)))(h))
    out = L.BatchNormalization(epsilon=1e-3, name="bn2")(h)
    ref = keras.Model(inp, out)
    for w in ref.weights:
        w.assign(_random_weight(w.path.rsplit("/", 1)[-1], w.shape, rng).astype(F32))
    path = tmp_path / "dw_bn.keras"
    ref.save(path)
    x = rng.standard_normal((2, 11, 13, 5)).astype(F32)
    want = keras.ops.convert_to_numpy(ref(x))
    model = fl.load_model(path)
    assert _folded_layers(model) == ["dw1", "dw2"]
    assert len(_fused_activation_layers(model)) == 1  # the ReLU(6) after bn1
    assert [p for p, _ in _padding_folds(model)] == ["dw2"]  # dw2 pads its input itself
    got = assert_fold_equals_unfolded(model, x, backend)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---- the activation layer after a folded pair runs in the producer's kernel -----------------


def _fused_activation_layers(model):
    """The names of the activation layers that run fused into a folded producer."""
    plan = _plan(model)
    if isinstance(model, Sequential):
        return sorted(model.layers[i + f.span - 1].name for i, f in plan.items()
                      if f.activation != "linear")
    nodes = {id(n): n for n in model._nodes}
    return sorted(nodes[k].layer.name for k in plan
                  if type(nodes[k].layer).__name__ in ("ReLU", "Activation"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_fuses_the_activation_after_a_fold(backend, rng):
    model = Sequential([
        Input(shape=(6, 7, 3)),
        Conv2D(8, 3, padding="same"), BatchNormalization(), ReLU(max_value=6.0),  # relu6
        DepthwiseConv2D(3, use_bias=False), BatchNormalization(), ReLU(threshold=0.1),  # no
        Conv2D(4, 1), BatchNormalization(), Activation("swish"),  # fuses
        Flatten(),
        Dense(5), BatchNormalization(), ReLU(negative_slope=0.2),  # Keras's leaky_relu
    ])
    _random_bn_weights(model, rng)
    assert _folded_layers(model) == sorted(model.layers[i].name for i in (0, 3, 6, 10))
    assert _fused_activation_layers(model) == sorted(
        model.layers[i].name for i in (2, 8, 12))
    x = rng.standard_normal((2, 6, 7, 3)).astype(F32) * 3
    got = assert_fold_equals_unfolded(model, x, backend)[0]
    with fl.use_backend(backend), folding.disabled():
        want = _layer_by_layer(x, *model.layers)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_functional_fuses_only_a_sole_reader(backend, rng):
    inp = Input(shape=(5, 5, 4))
    conv_a, bn_a, act_a = Conv2D(6, 3, padding="same"), BatchNormalization(), Activation("swish")
    conv_b, bn_b, relu_b = Conv2D(6, 3, padding="same"), BatchNormalization(), ReLU()
    conv_c, bn_c, act_c = Conv2D(6, 1), BatchNormalization(), Activation("softmax")
    conv_d, bn_d, relu_d = Conv2D(6, 1), BatchNormalization(), ReLU(negative_slope=0.2)
    conv_e, bn_e, relu_e, side = Conv2D(6, 1), BatchNormalization(), ReLU(), Dense(2)
    a = act_a(bn_a(conv_a(inp)))  # fuses (swish twice would show)
    normed = bn_b(conv_b(inp))  # a model output as well as the ReLU's input: no fusion
    b = relu_b(normed)
    c = act_c(bn_c(conv_c(inp)))  # softmax is a row activation: not in the kernel
    d = relu_d(bn_d(conv_d(inp)))  # fuses as leaky_relu (twice would show)
    normed_e = bn_e(conv_e(inp))  # read by a ReLU and a Dense: no fusion
    model = Model(inp, [a, b, normed, c, d, relu_e(normed_e), side(normed_e)])
    _random_bn_weights(model, rng)
    assert _folded_layers(model) == sorted(
        [conv_a.name, conv_b.name, conv_c.name, conv_d.name, conv_e.name])
    assert _fused_activation_layers(model) == sorted([act_a.name, relu_d.name])
    x = rng.standard_normal((2, 5, 5, 4)).astype(F32)
    for _ in range(3):  # the first call records a shape plan, the next ones replay it
        got = assert_fold_equals_unfolded(model, x, backend)
        with fl.use_backend(backend), folding.disabled():
            want = [_layer_by_layer(x, conv_a, bn_a, act_a), _layer_by_layer(x, conv_b, bn_b)]
            want.append(relu_b(want[1]))
            want.append(_layer_by_layer(x, conv_d, bn_d, relu_d))
            want.append(side(_layer_by_layer(x, conv_e, bn_e)))
        for g, w in zip([got[0], got[2], got[1], got[4], got[6]], want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_shared_pair_folds_with_and_without_its_activation(backend, rng):
    """One Dense + BatchNormalization called at two sites, a ReLU after one of them: two
    folds of the same pair, one with the activation."""
    in_a, in_b = Input(shape=(4,)), Input(shape=(4,))
    dense, bn, relu = Dense(5), BatchNormalization(), ReLU(negative_slope=0.2)
    model = Model([in_a, in_b], [relu(bn(dense(in_a))), bn(dense(in_b))])
    _random_bn_weights(model, rng)
    assert _fused_activation_layers(model) == [relu.name]
    xa, xb = rng.standard_normal((2, 3, 4)).astype(F32)
    for _ in range(2):
        got = assert_fold_equals_unfolded(model, [xa, xb], backend)
        with fl.use_backend(backend), folding.disabled():
            np.testing.assert_allclose(got[0], _layer_by_layer(xa, dense, bn, relu), rtol=1e-5,
                                       atol=1e-6)
            np.testing.assert_allclose(got[1], _layer_by_layer(xb, dense, bn), rtol=1e-5,
                                       atol=1e-6)
        assert (got[1] < 0).any()  # the second site is not activated


def test_an_unbuilt_activation_runs_once_as_a_layer(rng):
    """A Sequential without an Input whose producer and BatchNormalization are built: the new
    ReLU runs as a layer on the first call (and is built by it), fused from the second."""
    dense, bn = Dense(3), BatchNormalization()
    dense.build((None, 4))
    bn.build((None, 3))
    model = Sequential([dense, bn, ReLU()])
    _random_bn_weights(model, rng)
    assert _fused_activation_layers(model) == []
    x = rng.standard_normal((2, 4)).astype(F32)
    first = model(x)
    assert model.built and model.layers[2].built
    assert _fused_activation_layers(model) == [model.layers[2].name]
    np.testing.assert_allclose(model(x), first, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sequential", [True, False])
def test_fused_folds_replay_in_shape_plans(backend, sequential, rng):
    """A model called again with one input shape replays a recorded plan, where a fold runs
    as its runner (its checks done once): the same results on every replay, and new weights
    (which drop the plan) are used at once."""
    layers = [DepthwiseConv2D(3, use_bias=False, padding="same"), BatchNormalization(),
              ReLU(max_value=6.0), Conv2D(5, 1), BatchNormalization(), Activation("swish"),
              Flatten(), Dense(3), BatchNormalization()]
    if sequential:
        model = Sequential([Input(shape=(6, 6, 4)), *layers])
    else:
        inp = Input(shape=(6, 6, 4))
        model = Model(inp, _layer_by_layer(inp, *layers))
    _random_bn_weights(model, rng)
    x = rng.standard_normal((2, 6, 6, 4)).astype(F32)
    with fl.use_backend(backend):
        for _ in range(2):
            with folding.disabled():
                want = _layer_by_layer(x, *layers)
            for _ in range(4):  # recorded on the second call, replayed on the next ones
                np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
            _random_bn_weights(model, rng)  # new weights: the next round must use them


def _plans(model):
    cache = model.__dict__.get("_shape_plans", {})
    return len(cache.get("plans", {})), len(cache.get("failed", ()))


@pytest.mark.parametrize("sequential", [True, False])
def test_replays_run_the_folds_runners(sequential, rng, monkeypatch):
    """From the third call with one input shape the plan's runners serve the folds (no
    Fold.__call__); a float64 Input keeps its plan (the runner is not taken for an input the
    checks would convert, as for any layer)."""
    for dtype in ("float32", "float64"):
        layers = [Conv2D(5, 3, padding="same"), BatchNormalization(), ReLU(),
                  Flatten(), Dense(3), BatchNormalization()]
        if sequential:
            model = Sequential([Input(shape=(6, 6, 4), dtype=dtype), *layers])
        else:
            inp = Input(shape=(6, 6, 4), dtype=dtype)
            model = Model(inp, _layer_by_layer(inp, *layers))
        _random_bn_weights(model, rng)
        x = rng.standard_normal((2, 6, 6, 4)).astype(dtype)
        calls = []
        real = folding.Fold.__call__
        monkeypatch.setattr(folding.Fold, "__call__",
                            lambda self, a, c=calls, r=real: c.append(1) or r(self, a))
        with fl.use_backend("cpp"):
            got = [model(x) for _ in range(5)]
        monkeypatch.setattr(folding.Fold, "__call__", real)
        assert _plans(model) == (1, 0), dtype
        for g in got[1:]:
            np.testing.assert_array_equal(g, got[0])
        if dtype == "float32":
            assert len(calls) == 2 * 2  # two folds, on the first two calls only


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_epsilon_is_folded_again(backend, rng):
    dense, bn = Dense(3), BatchNormalization()
    model = Sequential([Input(shape=(4,)), dense, bn])
    _random_bn_weights(model, rng)
    x = rng.standard_normal((2, 4)).astype(F32)
    with fl.use_backend(backend):
        for _ in range(3):
            model(x)
        bn.epsilon = 10.0
        for _ in range(3):
            with folding.disabled():
                want = _layer_by_layer(x, dense, bn)
            np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-6)


# ---- a ZeroPadding2D absorbed by the conv that alone reads it --------------------------------


def _padding_folds(model):
    """(producer name, its padding layer's name) of every fold that pads its input itself."""
    plan = _plan(model)
    folds = plan.values() if isinstance(model, Sequential) else (
        s.fold for s in plan.values() if s.fold is not None)
    return sorted((f.producer.name, f.pad.name) for f in folds if f.pad is not None)


def _pad_then(pads, conv, bn=None, act=None, shape=(9, 10, 6)):
    """Sequential [Input, ZeroPadding2D(pads), conv, (bn), (act)] and its layer-by-layer
    twin's parts."""
    pad = ZeroPadding2D(pads)
    layers = [pad, conv] + [x for x in (bn, act) if x is not None]
    return Sequential([Input(shape), *layers]), layers


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pads, conv", [
    (((0, 1), (0, 1)), lambda: DepthwiseConv2D(3, strides=2, use_bias=False)),  # MobileNet
    (3, lambda: Conv2D(4, 7, strides=2, activation="relu")),  # ResNet's stem
    (((2, 0), (1, 3)), lambda: Conv2D(5, (2, 3), dilation_rate=(2, 1))),
    (((1, 1), (0, 0)), lambda: DepthwiseConv2D(3, depth_multiplier=2, activation="tanh")),
])
def test_a_padding_before_a_valid_conv_is_absorbed(backend, pads, conv, rng):
    """No BatchNormalization: the conv alone pads (same weights, same bits as the padded copy:
    a padding tap is fma(0, w, acc) either way)."""
    model, layers = _pad_then(pads, conv())
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    assert _padding_folds(model) == [(layers[1].name, layers[0].name)]
    x = rng.standard_normal((2, 9, 10, 6)).astype(F32)
    with fl.use_backend(backend):
        want = _layer_by_layer(x, *layers)
        for _ in range(3):  # the general executor, then the recorded plan
            np.testing.assert_array_equal(model(x), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("depthwise", [True, False])
def test_a_padding_before_a_folded_pair_is_absorbed(backend, depthwise, rng):
    conv = DepthwiseConv2D(3, strides=2) if depthwise else Conv2D(6, 3, strides=2)
    model, layers = _pad_then(((0, 1), (0, 1)), conv, BatchNormalization(), ReLU(6.0))
    _random_bn_weights(model, rng)
    assert _padding_folds(model) == [(layers[1].name, layers[0].name)]
    assert _fused_activation_layers(model) == [layers[3].name]
    x = rng.standard_normal((2, 9, 10, 6)).astype(F32)
    with fl.use_backend(backend):
        want = folding.Fold(conv, layers[2], "relu6")(_layer_by_layer(x, layers[0]))
        for _ in range(3):
            np.testing.assert_array_equal(model(x), want)
    assert_fold_equals_unfolded(model, x, backend)


def test_a_padding_makes_room_for_a_kernel_larger_than_the_input(rng):
    model, layers = _pad_then(2, Conv2D(3, 5), shape=(1, 2, 4))
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    assert _padding_folds(model) == [(layers[1].name, layers[0].name)]
    x = rng.standard_normal((3, 1, 2, 4)).astype(F32)
    np.testing.assert_array_equal(model(x), _layer_by_layer(x, *layers))
    assert model(x).shape == (3, 1, 2, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_cannot_absorb_its_padding_pads_first(backend, rng):
    """A padding read by two layers, a model output, a conv with 'same' padding, a
    channels_first padding, a padding before a pooling layer: no absorption, same results."""
    inp = Input((8, 8, 4))
    shared = ZeroPadding2D(1)(inp)
    a = Conv2D(3, 3)(shared)
    b = DepthwiseConv2D(3)(shared)
    out_pad = ZeroPadding2D(((0, 1), (0, 1)))(a)
    c = Conv2D(2, 3)(out_pad)
    d = Conv2D(2, 3, padding="same")(ZeroPadding2D(1)(b))
    e = Conv2D(2, 3, data_format="channels_first")(
        ZeroPadding2D(1, data_format="channels_first")(b))
    f = fl.layers.MaxPooling2D(3, strides=2)(ZeroPadding2D(1)(a))
    model = Model(inp, [c, out_pad, d, e, f])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    assert _padding_folds(model) == []
    x = rng.standard_normal((2, 8, 8, 4)).astype(F32)
    with fl.use_backend(backend):
        got = model(x)
        with folding.disabled():
            want = model(x)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", BACKENDS)
def test_functional_absorbs_paddings_and_replays_them(backend, rng):
    """MobileNetV2's stride-2 block shape: expand, pad, strided depthwise, project, with and
    without BatchNormalization; a padding that a Model input feeds directly."""
    inp = Input((12, 12, 4))
    h = ZeroPadding2D(((0, 1), (0, 1)))(inp)
    h = Conv2D(8, 3, strides=2, name="stem")(h)
    h = ReLU(6.0)(BatchNormalization(name="bn0")(Conv2D(16, 1, name="expand")(h)))
    h = ZeroPadding2D(((0, 1), (0, 1)), name="pad1")(h)
    h = ReLU(6.0)(BatchNormalization(name="bn1")(DepthwiseConv2D(3, strides=2, name="dw")(h)))
    out = BatchNormalization(name="bn2")(Conv2D(6, 1, name="project")(h))
    model = Model(inp, out)
    _random_bn_weights(model, rng)
    names = [(p, z) for p, z in _padding_folds(model)]
    assert [p for p, _ in names] == ["dw", "stem"] and ("dw", "pad1") in names
    x = rng.standard_normal((2, 12, 12, 4)).astype(F32)
    with fl.use_backend(backend):
        first = model(x)
        for _ in range(3):
            np.testing.assert_array_equal(model(x), first)
    assert_fold_equals_unfolded(model, x, backend)


@pytest.mark.parametrize("sequential", [True, False])
def test_a_padding_fold_follows_the_convs_config_and_weights(sequential, rng):
    """The conv that absorbs a padding keeps its own activation and weights: set after the
    fold was made (and a plan recorded), they apply on the next call."""
    pad, conv = ZeroPadding2D(((0, 1), (0, 1))), Conv2D(8, 3, strides=2)
    if sequential:
        model = Sequential([Input((9, 9, 3)), pad, conv])
    else:
        inp = Input((9, 9, 3))
        model = Model(inp, conv(pad(inp)))
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    x = rng.standard_normal((2, 9, 9, 3)).astype(F32)
    for _ in range(3):
        model(x)
    assert _padding_folds(model) == [(conv.name, pad.name)]
    conv.activation = "relu"
    np.testing.assert_array_equal(model(x), _layer_by_layer(x, pad, conv))
    assert model(x).min() == 0.0
    conv.set_weights([w * 2 for w in conv.get_weights()])
    np.testing.assert_array_equal(model(x), _layer_by_layer(x, pad, conv))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layers, fused", [
    (lambda: [Conv2D(6, 3, padding="same"), ReLU(6.0)], "relu6"),
    (lambda: [DepthwiseConv2D(3, depth_multiplier=2), Activation("gelu")], "gelu"),
    (lambda: [ZeroPadding2D(((0, 1), (0, 1))), Conv2D(4, 3, strides=2), ReLU()], "relu"),
    (lambda: [Flatten(), Dense(7), Activation("swish")], "swish"),
])
def test_an_activation_right_after_a_producer_fuses(backend, layers, fused, rng):
    """No BatchNormalization: a linear producer takes the activation layer after it as its
    own (applied as its kernel finishes each tile); the same bits as the two layers."""
    layers = layers()
    model = Sequential([Input((8, 9, 3)), *layers])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    folds = [f for f in _plan(model).values()]
    assert len(folds) == 1 and folds[0].bn is None and folds[0].activation == fused
    x = rng.standard_normal((2, 8, 9, 3)).astype(F32)
    with fl.use_backend(backend):
        want = _layer_by_layer(x, *layers)
        for _ in range(3):  # the general executor, then the plan
            np.testing.assert_array_equal(model(x), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_activation_fuses_only_after_a_linear_sole_producer(backend, rng):
    """Not fused: after a producer with its own activation, after a channels_first conv, when
    another node reads the producer's output, when the producer's output is a model output;
    a producer whose activation is set later stops fusing."""
    inp = Input((8, 8, 3))
    a = Conv2D(4, 3, activation="tanh")(inp)
    b = Activation("tanh")(a)  # not idempotent: applied twice would show
    c = Conv2D(4, 3, data_format="channels_first")(inp)
    d = Activation("tanh")(c)
    e = Conv2D(4, 1, name="shared")(inp)
    f = fl.layers.Add()([Activation("tanh")(e), e])
    o = Conv2D(4, 1, name="output")(inp)  # a model output itself
    p = Activation("tanh")(o)
    g = Conv2D(4, 1, name="fuses")(inp)
    h = ReLU()(g)
    model = Model(inp, [b, d, f, o, p, h])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    assert _fused_activation_layers(model) == [h.node.layer.name]
    x = rng.standard_normal((2, 8, 8, 3)).astype(F32)
    with fl.use_backend(backend):
        with folding.disabled():
            want = model(x)
        for _ in range(3):
            for got, w in zip(model(x), want):
                np.testing.assert_array_equal(got, w)
        model.get_layer("fuses").activation = "sigmoid"  # ReLU(sigmoid(.)) from now on
        assert _fused_activation_layers(model) == []
        with folding.disabled():
            want = model(x)
        for got, w in zip(model(x), want):
            np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_fuses_an_activation_only_after_a_linear_channels_last_producer(backend,
                                                                                   rng):
    model = Sequential([
        Input((8, 8, 3)),
        Conv2D(4, 3, activation="tanh"), Activation("tanh"),  # its own activation first
        Conv2D(4, 1, data_format="channels_first"), Activation("tanh"),  # channels_first
        Conv2D(4, 1), Activation("tanh"),  # fuses
    ])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    assert _fused_activation_layers(model) == [model.layers[5].name]
    x = rng.standard_normal((2, 8, 8, 3)).astype(F32)
    with fl.use_backend(backend):
        want = _layer_by_layer(x, *model.layers)
        for _ in range(3):
            np.testing.assert_array_equal(model(x), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("producer", [lambda: Dense(4), lambda: Conv2D(4, 1)])
def test_a_mask_keeps_a_producer_and_its_activation_apart(backend, producer, rng):
    """Masking -> producer -> Activation: the mask reaches the producer, which then runs as
    a layer, and the activation after it must run too, also after a Conv2D, which passes no
    mask on (the activation's pass-through would have skipped it)."""
    inp = Input((5, 6, 3))
    h = Activation("tanh")(producer()(fl.layers.Masking(0.0)(inp)))
    model = Model(inp, h)
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    x = rng.standard_normal((2, 5, 6, 3)).astype(F32)
    x[0, 2:] = 0.0
    with fl.use_backend(backend):
        with folding.disabled():
            want = model(x)
        for _ in range(3):
            np.testing.assert_array_equal(model(x), want)


def _replaced_call(layer):
    """The layer with its call replaced on the object: it doubles the result."""
    call = layer.call
    layer.call = lambda *args, **kwargs: call(*args, **kwargs) * np.float32(2)
    return layer


@pytest.mark.parametrize("which", ["producer", "activation", "bn", "padding"])
@pytest.mark.parametrize("sequential", [True, False])
def test_a_call_replaced_on_a_layer_is_never_folded_away(which, sequential, rng):
    layers = [ZeroPadding2D(1), Conv2D(4, 3), BatchNormalization(), ReLU()]
    if which == "activation":
        layers = [Conv2D(4, 3), ReLU()]
    index = {"padding": 0, "producer": 1, "bn": 2, "activation": 1}[which]
    _replaced_call(layers[index])
    if sequential:
        model = Sequential([Input((7, 7, 3)), *layers])
    else:
        inp = Input((7, 7, 3))
        h = inp
        for layer in layers:
            h = layer(h)
        model = Model(inp, h)
    _random_bn_weights(model, rng)
    x = rng.standard_normal((2, 7, 7, 3)).astype(F32)
    with folding.disabled():
        want = model(x)
    for _ in range(3):
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
    assert _own_call_untouched(model, layers[index])


def _own_call_untouched(model, layer):
    """No fold of the model's plan holds the layer whose call was replaced."""
    plan = _plan(model)
    folds = plan.values() if isinstance(model, Sequential) else (
        s.fold for s in plan.values() if s.fold is not None)
    return all(layer not in (f.producer, f.bn, f.pad) for f in folds) and (
        layer.name not in _fused_activation_layers(model))


def test_a_batch_normalization_followed_by_an_op_folds(rng):
    """A folded pair whose output an op (no layer) reads: the op is not an activation."""
    inp = Input((6, 6, 3))
    model = Model(inp, fl.functional.flatten(BatchNormalization()(Conv2D(4, 3)(inp))))
    _random_bn_weights(model, rng)
    x = rng.standard_normal((2, 6, 6, 3)).astype(F32)
    assert len(_folded_layers(model)) == 1
    with folding.disabled():
        want = model(x)
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def _random_bn(layer, c, rng):
    layer.build((None, c) if layer.axis in (-1, 1) else (None,) * layer.axis + (c,))
    layer.set_weights([rng.uniform(0.5, 1.5, c).astype(F32), rng.standard_normal(c).astype(F32),
                       rng.standard_normal(c).astype(F32), rng.uniform(0.2, 2, c).astype(F32)])
    return layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act, fused", [
    (lambda: ReLU(), "relu"), (lambda: Activation("gelu"), "gelu"),
    (lambda: ReLU(6.0), "relu6"), (lambda: Activation("softmax"), None),
])
@pytest.mark.parametrize("axis", [-1, 3, 1])
def test_a_batch_normalization_alone_takes_the_activation_after_it(backend, act, fused, axis,
                                                                   rng, monkeypatch):
    """DenseNet's pre-activation BN -> ReLU -> conv, after a Concatenate (no producer to fold
    into): the BatchNormalization takes the activation layer that alone reads it, in one pass
    on C++ (channel_affine_lastdim with the activation's id); softmax (a row activation) does
    not fuse. The bits of the layers run one by one, in a functional model and a Sequential,
    on the general executor and the shape plan."""
    from fastlayers._cpp import normalization as cpp_norm

    calls = []
    real = cpp_norm.channel_affine
    monkeypatch.setattr(cpp_norm, "channel_affine",
                        lambda x, s, b, ax, a=0: calls.append(a) or real(x, s, b, ax, a))
    inp = Input((5, 4, 3) if axis != 1 else (7, 4, 3))
    both = fl.layers.Concatenate(axis=axis)([inp, inp])
    bn = _random_bn(BatchNormalization(axis=axis), both.shape[axis], rng)
    act_layer = act()
    out = Conv2D(2, 1, data_format="channels_first" if axis == 1 else "channels_last")(
        act_layer(bn(both)))
    model = Model(inp, out)
    conv = model.layers[-1]
    conv.set_weights([rng.standard_normal(w.shape).astype(F32) for w in conv.get_weights()])
    seq = Sequential([Input(both.shape[1:]), bn, act_layer])
    x = rng.standard_normal((2, *inp.shape[1:])).astype(F32)
    xx = np.concatenate([x, x], axis=axis)
    fold = [f for f in folding.functional_plan(model).values() if f.fold is not None]
    seq_folds = list(folding.sequential_plan(seq).values())
    if fused is None:
        assert fold == [] and seq_folds == []
    else:
        assert [f.fold.activation for f in fold] == [fused] == [f.activation for f in seq_folds]
        assert fold[0].fold.producer is bn and seq_folds[0].producer is bn
    with fl.use_backend(backend):
        want_seq = act_layer(bn(xx))
        want = conv(want_seq)
        for _ in range(3):  # the general executor, then the plan
            np.testing.assert_array_equal(model(x), want)
            np.testing.assert_array_equal(seq(xx), want_seq)
    if backend == "cpp" and fused is not None:
        ids = fl._backend.cpp_activation_ids()
        assert calls.count(ids[fused]) == 6  # 3 model calls, 3 Sequential calls
