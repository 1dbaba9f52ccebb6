"""Keras configs and JSON: ``get_config`` of a loaded model (it was ``{'name'}`` only: a
Keras-user audit), ``to_json``, and ``fastlayers.models.model_from_json`` (Keras's
architecture-then-weights workflow), checked against Keras itself: Keras reads what
fastlayers writes, and the models compute Keras's predictions."""

from __future__ import annotations

import copy
import importlib.util
import json

import numpy as np
import pytest

import fastlayers as fl

keras = pytest.importorskip("keras")
if importlib.util.find_spec("h5py") is None:
    pytest.skip('h5py is not installed (pip install "fastlayers[keras]")',
                allow_module_level=True)


def _functional():
    img = keras.Input((12, 12, 3), name="img")
    meta = keras.Input((4,), name="meta")
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(img)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    h = keras.layers.Concatenate(name="cat")([h, keras.layers.Dense(5, name="fc_meta")(meta)])
    out = keras.layers.Dense(3, activation="softmax", name="pred")(h)
    return keras.Model({"img": img, "meta": meta}, out, name="two_inputs")


def _sequential():
    return keras.Sequential([keras.Input((7, 3)), keras.layers.LSTM(5, name="lstm"),
                             keras.layers.Dense(2, name="out")], name="seq")


def _inputs(rng, kind):
    if kind == "functional":
        return {"img": rng.standard_normal((2, 12, 12, 3)).astype(np.float32),
                "meta": rng.standard_normal((2, 4)).astype(np.float32)}
    return rng.standard_normal((3, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_model_from_json_then_weights_computes_keras(rng, tmp_path, kind):
    """keras_model.to_json() and its .weights.h5, read back by fastlayers: Keras's
    predictions (the Keras 2 era workflow of an architecture file and a weights file)."""
    km = _functional() if kind == "functional" else _sequential()
    weights = tmp_path / "w.weights.h5"
    km.save_weights(weights)
    model = fl.models.model_from_json(km.to_json())
    assert type(model).__name__ == ("Model" if kind == "functional" else "Sequential")
    model.load_weights(str(weights))
    x = _inputs(rng, kind)
    want = np.asarray(km.predict(x, verbose=0))
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_a_loaded_models_config_and_json_go_back_to_keras(rng, kind):
    """A loaded model's get_config is the Keras config it came from (under its current
    name): Keras's from_config and model_from_json take it and fastlayers' own do too; the
    models rebuilt from it compute the same with the same weights."""
    km = _functional() if kind == "functional" else _sequential()
    loaded = fl.load_model(km)
    config = loaded.get_config()
    assert config["name"] == km.name
    assert [entry["config"]["name"] for entry in config["layers"]] == [
        entry["config"]["name"] for entry in km.get_config()["layers"]]
    kind_cls = keras.Model if kind == "functional" else keras.Sequential
    fl_cls = fl.Model if kind == "functional" else fl.Sequential
    x = _inputs(rng, kind)
    want = np.asarray(km.predict(x, verbose=0))
    again_keras = kind_cls.from_config(copy.deepcopy(config))  # (Keras's empties it)
    again_keras.set_weights(loaded.get_weights())
    np.testing.assert_allclose(np.asarray(again_keras.predict(x, verbose=0)), want, rtol=1e-5,
                               atol=1e-6)
    again_fl = fl_cls.from_config(config)
    again_fl.set_weights(loaded.get_weights())
    np.testing.assert_allclose(again_fl.predict(x), want, rtol=1e-5, atol=1e-6)
    loaded.name = "renamed"
    text = loaded.to_json(indent=1)
    assert json.loads(text)["config"]["name"] == "renamed"
    from_json = keras.models.model_from_json(text)
    assert from_json.name == "renamed"
    from_json.set_weights(loaded.get_weights())
    np.testing.assert_allclose(np.asarray(from_json.predict(x, verbose=0)), want, rtol=1e-5,
                               atol=1e-6)
    ours = fl.models.model_from_json(text)
    ours.set_weights(loaded.get_weights())
    np.testing.assert_array_equal(ours.predict(x), loaded.predict(x))


def test_a_model_built_in_code_has_no_json():
    i = fl.Input((3,))
    model = fl.Model(i, fl.layers.Dense(2)(i))
    assert model.get_config() == {"name": model.name}
    with pytest.raises(NotImplementedError, match="to_json needs a Keras config"):
        model.to_json()


@pytest.mark.parametrize("text, error, match", [
    ("{not json", ValueError, "not valid JSON"),
    ('{"class_name": "Dense", "config": {}}', ValueError, "not a Keras model config"),
    (b"[1, 2]", ValueError, "not a Keras model config"),
    (42, TypeError, "takes the JSON text of a model"),
])
def test_model_from_json_refuses_what_is_not_a_model(text, error, match):
    with pytest.raises(error, match=match):
        fl.models.model_from_json(text)


def test_a_changed_loaded_model_no_longer_reports_its_file_config(rng):
    """After pop / add or a renamed layer, the config a loaded model was made from no longer
    describes it (a review: rebuilt from it, the old architecture took the weights and gave
    other outputs): a Sequential gives its own config again, a Model its name, and to_json
    says why it cannot."""
    loaded = fl.load_model(_sequential())
    assert "build_input_shape" in loaded.get_config()  # Keras's, as loaded
    loaded.pop()
    loaded.add(fl.layers.Dense(3, name="new_head"))
    config = loaded.get_config()
    assert [entry["config"]["name"] for entry in config["layers"]][-1] == "new_head"
    rebuilt = fl.Sequential.from_config(config)
    rebuilt.set_weights(loaded.get_weights())
    x = _inputs(rng, "sequential")
    np.testing.assert_array_equal(rebuilt.predict(x), loaded.predict(x))
    with pytest.raises(NotImplementedError, match="added or removed since"):
        loaded.to_json()
    model = fl.load_model(_functional())
    model.get_layer("conv").name = "conv_renamed"
    assert model.get_config() == {"name": model.name}
    with pytest.raises(NotImplementedError, match="added or removed since"):
        model.to_json()


def test_nested_and_from_config_models_write_json_keras_reads(rng):
    """A nested model of a loaded one keeps its Keras config too, and the JSON of a model
    made by from_config names Keras's module, so Keras 3 finds the class (a review:
    "Could not locate class 'Functional'")."""
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="in_d")],
                             name="inner")
    i = keras.Input((4,))
    km = keras.Model(i, keras.layers.Dense(2, name="top")(inner(i)), name="outer")
    loaded = fl.load_model(km)
    nested = loaded.get_layer("inner")
    assert nested.get_config()["name"] == "inner"
    x = rng.standard_normal((3, 4)).astype(np.float32)
    again = keras.models.model_from_json(nested.to_json())
    again.set_weights(nested.get_weights())
    np.testing.assert_allclose(np.asarray(again.predict(x, verbose=0)), nested.predict(x),
                               rtol=1e-6, atol=1e-6)
    made = fl.Model.from_config(copy.deepcopy(km.get_config()))
    made.set_weights(km.get_weights())
    back = keras.models.model_from_json(made.to_json())
    back.set_weights(made.get_weights())
    np.testing.assert_allclose(np.asarray(back.predict(x, verbose=0)),
                               np.asarray(km.predict(x, verbose=0)), rtol=1e-6, atol=1e-6)


def test_a_replaced_or_reconfigured_layer_also_invalidates_the_file_config(rng):
    """A head swapped for one of the same name, an activation changed, a layer frozen: the
    file's config no longer describes the model (a second review: the softmax head came back
    from the JSON)."""
    for change in ("replace", "activation", "trainable"):
        loaded = fl.load_model(_sequential())
        if change == "replace":
            loaded.pop()
            loaded.add(fl.layers.Dense(2, name="out"))
        elif change == "activation":
            loaded.get_layer("out").activation = "softmax"
        else:
            loaded.get_layer("lstm").trainable = False
        with pytest.raises(NotImplementedError, match="added or removed since"):
            loaded.to_json()
        again = fl.Sequential.from_config(loaded.get_config())
        again.set_weights(loaded.get_weights())
        x = _inputs(rng, "sequential")
        np.testing.assert_array_equal(again.predict(x), loaded.predict(x))
