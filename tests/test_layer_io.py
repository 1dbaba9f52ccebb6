"""Layer.input / Layer.output and Model.input / Model.output: the symbolic tensors of a
layer's first call in a graph, and the structures a model was made with, as Keras 3 has them.
Their use: a model's part up to a layer (feature extraction),
``fl.Model(model.input, model.get_layer(name).output)``, compared with the same code in
Keras on a file Keras saved (the tests that need keras skip without it; the CI step that
installs it runs them)."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers import layers

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def _small_model():
    inp = fl.Input((8,), name="x")
    h = layers.Dense(4, activation="relu", name="d1")(inp)
    out = layers.Dense(2, name="d2")(h)
    return fl.Model(inp, out), inp, h, out


def test_input_and_output_are_the_first_call_tensors():
    model, inp, h, out = _small_model()
    assert model.input is inp and model.output is out
    assert model.get_layer("d1").input is inp and model.get_layer("d1").output is h
    assert model.layers[0].output is inp and model.layers[0].input == []  # the InputLayer
    part = fl.Model(model.input, model.get_layer("d1").output)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    w1, b1 = model.get_layer("d1").get_weights()
    np.testing.assert_array_equal(part(x), fl.dense(x, w1, b1, activation="relu"))


def test_a_shared_layer_gives_its_first_call():
    inp = fl.Input((3,))
    shared = layers.Dense(3)
    first = shared(inp)
    second = shared(first)
    model = fl.Model(inp, [first, second])
    assert shared.output is first and shared.input is inp
    assert model.output == [first, second]


def test_structures_are_kept():
    a, b = fl.Input((3,), name="a"), fl.Input((2,), name="b")
    cat = layers.Concatenate()([a, b])
    model = fl.Model({"a": a, "b": b}, {"o": cat})
    assert model.input == {"a": a, "b": b} and model.output == {"o": cat}
    assert model.get_layer(cat.node.layer.name).input == [a, b]  # a call on two tensors
    listed = fl.Model([a], [layers.Dense(1)(a)])
    assert isinstance(listed.input, list) and isinstance(listed.output, list)


def test_sequential_input_and_layer_outputs():
    seq = fl.models.Sequential([fl.Input((8,)), layers.Dense(4, name="a"),
                                layers.Dense(2, name="b")])
    assert seq.input is seq.inputs[0] and seq.output is seq.outputs[0]
    part = fl.Model(seq.input, seq.get_layer("a").output)
    x = np.ones((2, 8), np.float32)
    np.testing.assert_array_equal(part(x), seq.get_layer("a")(x))


def test_never_called_is_an_attribute_error():
    with pytest.raises(AttributeError, match="'lone' has never been called on symbolic"):
        _ = layers.Dense(3, name="lone").output
    dense = layers.Dense(3)
    dense(np.ones((1, 2), np.float32))  # a call on an array records no graph
    assert not hasattr(dense, "input")
    with pytest.raises(AttributeError, match="has no input: it has no Input"):
        _ = fl.models.Sequential([layers.Dense(3)]).input
    with pytest.raises(AttributeError, match="has no output"):
        _ = fl.models.Sequential().output


def test_after_pickling_the_layers_give_their_calls_in_the_model():
    model, *_ = _small_model()
    again = pickle.loads(pickle.dumps(model))
    part = fl.Model(again.input, again.get_layer("d1").output)
    want = fl.Model(model.input, model.get_layer("d1").output)
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_array_equal(part(x), want(x))
    assert again.get_layer("d1").output in part.outputs
    lone = pickle.loads(pickle.dumps(model.get_layer("d2")))  # a layer alone: no graph
    assert not hasattr(lone, "output")
    # a shared layer keeps its first call; a Sequential its layers' calls
    x = fl.Input((4,))
    shared = layers.Dense(4, name="sh")
    first = shared(x)
    second = shared(layers.Dense(4, name="d1")(x))
    again = pickle.loads(pickle.dumps(fl.Model(x, layers.Add()([second, first]))))
    assert again.get_layer("sh").input is again.input
    seq = fl.models.Sequential([fl.Input((8,)), layers.Dense(4, name="a"), layers.Dense(2)])
    for copy_of in (pickle.loads(pickle.dumps(seq)), __import__("copy").deepcopy(seq)):
        part = fl.Model(copy_of.input, copy_of.get_layer("a").output)
        np.testing.assert_array_equal(part(np.ones((2, 8), np.float32)),
                                      seq.get_layer("a")(np.ones((2, 8), np.float32)))


# ---- against Keras, on files Keras saved -------------------------------------------------


@pytest.fixture
def keras():
    keras = pytest.importorskip("keras")
    if importlib.util.find_spec("h5py") is None:
        pytest.skip('h5py is not installed (pip install "fastlayers[keras]")')
    return keras


def _keras_models(keras):
    L = keras.layers
    inp = keras.Input((12, 12, 3), name="img")
    x = L.Conv2D(6, 3, activation="relu", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    skip = L.Conv2D(6, 1, name="c2")(x)
    x = L.Add(name="add")([L.Conv2D(6, 3, padding="same", name="c3")(x), skip])
    pooled = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, activation="softmax", name="head")(pooled)
    functional = keras.Model(inp, out)
    seq = keras.Sequential([keras.Input((7, 5)), L.LSTM(4, return_sequences=True, name="l"),
                            L.Dense(3, name="d"), L.GlobalMaxPooling1D(name="g")])
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    shared = L.Dense(5, name="shared")
    two = keras.Model({"a": a, "b": b},
                      L.Concatenate(name="cat")([shared(L.Dense(5, name="pa")(a)),
                                                 shared(L.Dense(5, name="pb")(b))]))
    return {"functional": (functional, ["c1", "bn", "add", "gap"]),
            "sequential": (seq, ["l", "d"]), "two_inputs": (two, ["shared", "pb", "cat"])}


def _inputs(model, rng, batch):
    shapes = {t.name: t.shape[1:] for t in model.inputs}
    xs = {k: rng.standard_normal((batch, *s)).astype(np.float32) for k, s in shapes.items()}
    return xs if len(xs) > 1 else next(iter(xs.values()))


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_parts_of_loaded_models_as_keras(tmp_path, keras, backend, fmt):
    from keras_weights import randomize

    rng = np.random.default_rng(2)
    for seed, (name, (model, names)) in enumerate(_keras_models(keras).items()):
        randomize(model, seed=seed)
        path = tmp_path / f"{name}.{fmt}"
        model.save(path)
        loaded = fl.load_model(path)
        for layer in names:
            # (Keras 3 has no Sequential.input: its inputs[0])
            k_in = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
            want_model = keras.Model(k_in, model.get_layer(layer).output)
            part = fl.Model(loaded.input, loaded.get_layer(layer).output)
            for batch in (1, 3):
                x = _inputs(model, rng, batch)
                want = np.asarray(want_model.predict(x, verbose=0))
                with fl.use_backend(backend):
                    got = part.predict(x)
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5,
                                           err_msg=f"{name}: up to {layer} ({fmt})")


# ---- trainable_weights / non_trainable_weights, against Keras ---------------------------


def test_trainable_weights_of_a_frozen_model():
    inp = fl.Input((3,))
    bn = layers.BatchNormalization()
    model = fl.Model(inp, bn(layers.Dense(2)(inp)), trainable=False)
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 6
    # Keras's constructor sets only the model's own flag (its setter is not called): the
    # layers stay trainable, and a model around this one lists their weights
    assert bn.trainable is True
    outer_in = fl.Input((3,))
    outer = fl.Model(outer_in, model(outer_in))
    assert [w.shape for w in outer.trainable_weights] == [(3, 2), (2,), (2,), (2,)]
    bn.trainable = False
    assert [w.shape for w in bn.non_trainable_weights] == [(2,)] * 4
    assert [w.shape for w in outer.trainable_weights] == [(3, 2), (2,)]
    model.trainable = True  # the setter sets every layer, as Keras's
    assert bn.trainable is True
    assert len(model.trainable_weights) == 4 and model._count_trainable_params() == 12


def test_trainable_weights_as_keras_through_freezing(tmp_path, keras):
    L = keras.layers
    inner = keras.Sequential([keras.Input((6,)), L.Dense(5, name="i1"),
                              L.BatchNormalization(name="ibn")], name="inner")
    inp = keras.Input((6,))
    x = L.Bidirectional(L.LSTM(3), name="bi")(L.Reshape((5, 1))(inner(inp)))
    shared = L.Dense(4, name="sh")
    y = shared(shared(L.Dense(4)(x)))
    y = L.TimeDistributed(L.BatchNormalization(), name="td")(L.Reshape((2, 2))(y))
    km = keras.Model(inp, y)
    km.save(tmp_path / "m.keras")
    fm = fl.load_model(tmp_path / "m.keras")

    def same(step):
        pairs = [(km, fm), *zip(km.layers, fm.layers),
                 (km.get_layer("inner").layers[1], fm.get_layer("inner").layers[1])]
        for k, f in pairs:
            for attr in ("trainable_weights", "non_trainable_weights"):
                want = [tuple(w.shape) for w in getattr(k, attr)]
                assert [w.shape for w in getattr(f, attr)] == want, (step, k.name, attr)
        assert fm._count_trainable_params() == sum(int(np.prod(w.shape))
                                                   for w in km.trainable_weights), step

    def both(get, value):
        get(km).trainable = value
        get(fm).trainable = value

    same("loaded")
    for name in ("inner", "bi", "sh", "td"):
        both(lambda m, name=name: m.get_layer(name), False)
        same(f"{name} frozen")
    both(lambda m: m, False)
    same("model frozen")
    both(lambda m: m, True)
    same("model unfrozen")
    both(lambda m: m.get_layer("inner"), False)
    both(lambda m: m.get_layer("inner").layers[1], True)
    same("inner frozen, its BatchNormalization not")
    both(lambda m: m.get_layer("td"), False)
    both(lambda m: m.get_layer("td").layer, True)
    same("wrapper frozen, its layer not")


def _frozen_layer(keras, kind, trainable):
    L = keras.layers
    return {
        "bidirectional": lambda: L.Bidirectional(L.LSTM(3), trainable=trainable),
        "time_distributed": lambda: L.TimeDistributed(L.BatchNormalization(),
                                                      trainable=trainable),
        "mha": lambda: L.MultiHeadAttention(2, 3, trainable=trainable),
        "gqa": lambda: L.GroupQueryAttention(4, 2, 1, trainable=trainable),
        "conv_lstm": lambda: L.ConvLSTM2D(2, 3, trainable=trainable),
        "lstm": lambda: L.LSTM(3, trainable=trainable),
        "dense": lambda: L.Dense(3, trainable=trainable),
    }[kind]()


@pytest.mark.parametrize("how", ["constructor", "setter", "setter then unfrozen"])
@pytest.mark.parametrize("kind", ["bidirectional", "time_distributed", "mha", "gqa",
                                  "conv_lstm", "lstm", "dense"])
def test_trainable_weights_of_loaded_frozen_layers_as_keras(tmp_path, keras, kind, how):
    # Keras's own load_model of the same file is the reference: a layer that keeps its
    # variables in layers of its own (MultiHeadAttention, ConvLSTM2D) made with
    # trainable=False leaves them trainable, and a file cannot tell the setter from that
    inp = keras.Input((3, 5, 5, 2) if kind == "conv_lstm" else (5, 4))
    layer = _frozen_layer(keras, kind, trainable=how != "constructor")
    out = layer(inp, inp) if kind in ("mha", "gqa") else layer(inp)
    model = keras.Model(inp, out)
    if how != "constructor":
        layer.trainable = False
    if how == "setter then unfrozen":
        layer.trainable = True
    for fmt in ("keras", "h5"):
        model.save(tmp_path / f"m.{fmt}")
        want = keras.models.load_model(tmp_path / f"m.{fmt}", compile=False)
        got = fl.load_model(tmp_path / f"m.{fmt}")
        for k, f in ((want, got), (want.layers[1], got.layers[1])):
            for attr in ("trainable_weights", "non_trainable_weights"):
                assert [w.shape for w in getattr(f, attr)] == [
                    tuple(w.shape) for w in getattr(k, attr)], (fmt, k.name, attr)
