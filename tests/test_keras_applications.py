"""Models of ``keras.applications``, built by Keras with random weights, saved by Keras
(.keras and legacy .h5) and loaded here, compared with Keras's own predictions on both paths;
and the layers those models define for themselves (ConvNeXt's LayerScale and
StochasticDepth, fastlayers/layers/applications.py) on their own.

Needs keras and h5py (the CI step that installs torch and keras runs it)."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import numpy as np
import pytest
from conftest import NUMPY_ONLY, run_on
from keras_weights import randomize

import fastlayers as fl

keras = pytest.importorskip("keras")
if importlib.util.find_spec("h5py") is None:
    pytest.skip('h5py is not installed (pip install "fastlayers[keras]")',
                allow_module_level=True)

from keras.src.applications.convnext import ConvNeXt  # noqa: E402  (the models' builder)

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def _small_convnext(drop_path_rate):
    """ConvNeXt as keras.applications builds it, with one block per stage and narrow
    channels so that the test stays small; ``drop_path_rate > 0`` puts StochasticDepth
    layers in the residual branches (Activation("linear") otherwise)."""
    keras.utils.set_random_seed(7)
    model = ConvNeXt(depths=[1, 2, 1, 1], projection_dims=[8, 16, 24, 32],
                     drop_path_rate=drop_path_rate, input_shape=(32, 40, 3), weights=None,
                     classes=5, classifier_activation="softmax", name="convnext_small_test")
    randomize(model, scaled=True)
    return model


@pytest.fixture(scope="module", params=[0.0, 0.25], ids=["no-drop-path", "drop-path"])
def convnext_files(request, tmp_path_factory):
    model = _small_convnext(request.param)
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 40, 3)).astype(np.float32)
    want = keras.ops.convert_to_numpy(model(x, training=False))
    folder = tmp_path_factory.mktemp("convnext")
    paths = {fmt: str(folder / f"m.{fmt}") for fmt in ("keras", "h5")}
    for path in paths.values():
        model.save(path)
    return request.param, paths, x, want


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_convnext_matches_keras(convnext_files, fmt, backend):
    drop_path_rate, paths, x, want = convnext_files
    model = fl.load_model(paths[fmt])
    classes = {type(layer).__name__ for layer in model.layers}
    assert "LayerScale" in classes
    assert ("StochasticDepth" in classes) == (drop_path_rate > 0)
    got = run_on(backend, model.predict, x)
    assert got.shape == want.shape == (3, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_convnext_config_has_the_application_layers(convnext_files):
    """The file really holds keras.applications' LayerScale (so the test above tests it)."""
    _, paths, _, _ = convnext_files
    config = json.loads(zipfile.ZipFile(paths["keras"]).read("config.json"))
    modules = {layer["class_name"]: layer.get("module")
               for layer in config["config"]["layers"]}
    assert modules["LayerScale"] == "keras.src.applications.convnext"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_inception_resnet_blocks_match_keras(tmp_path, fmt, backend):
    """keras.applications' own Inception-ResNet blocks (each ends in a CustomScaleLayer:
    x + branch * scale), as InceptionResNetV2 stacks them, on a small input."""
    from keras.src.applications.inception_resnet_v2 import inception_resnet_block

    keras.utils.set_random_seed(3)
    inp = keras.Input((9, 7, 24))
    x = inception_resnet_block(inp, 0.17, "block35", 1)
    x = inception_resnet_block(x, 0.1, "block17", 2)
    x = inception_resnet_block(x, 1.0, "block8", 3, activation=None)
    model = keras.Model(inp, x)
    randomize(model, scaled=True)
    path = str(tmp_path / f"irv2.{fmt}")
    model.save(path)
    x = np.random.default_rng(2).normal(size=(2, 9, 7, 24)).astype(np.float32)
    loaded = fl.load_model(path)
    assert sum(type(la).__name__ == "CustomScaleLayer" for la in loaded.layers) == 3
    got = run_on(backend, loaded.predict, x)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), rtol=1e-4, atol=1e-4)


APPLICATIONS = {  # small but whole keras.applications models (a few seconds each)
    "MobileNetV3Small": lambda: keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=5, classifier_activation=None),
    "EfficientNetV2B0": lambda: keras.applications.EfficientNetV2B0(
        input_shape=(32, 32, 3), weights=None, classes=5, classifier_activation="softmax"),
    "MobileNetV2-avg": lambda: keras.applications.MobileNetV2(
        input_shape=(40, 32, 3), alpha=0.35, weights=None, include_top=False, pooling="avg"),
}


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_applications_match_keras(tmp_path, name):
    """Whole models as keras.applications builds them (preprocessing, squeeze-excite, hard
    swish, fused MBConv, depthwise convs, global pooling), every weight random, through a
    .keras file: built, saved and loaded once, predicted on each path."""
    keras.utils.set_random_seed(11)
    model = APPLICATIONS[name]()
    randomize(model, scaled=True)
    path = str(tmp_path / "model.keras")
    model.save(path)
    x = np.random.default_rng(5).uniform(0, 255, (2,) + model.input_shape[1:]).astype(
        np.float32)
    want = keras.ops.convert_to_numpy(model(x))
    loaded = fl.load_model(path)
    scale = max(1.0, float(np.abs(want[np.isfinite(want)]).max(initial=0.0)))
    for backend in BACKENDS:
        got = run_on(backend, loaded.predict, x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=backend)


# ---- the layers on their own ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 7), (2, 3, 7), (2, 5, 4, 7), (1, 1, 1, 1, 7)])
def test_layer_scale_against_keras(shape, backend):
    from keras.src.applications.convnext import LayerScale as KerasLayerScale

    rng = np.random.default_rng(3)
    ref = KerasLayerScale(init_values=1e-6, projection_dim=7)
    x = rng.normal(size=shape).astype(np.float32)
    ref(x)
    gamma = rng.normal(size=(7,)).astype(np.float32)
    ref.set_weights([gamma])
    layer = fl.layers.LayerScale(init_values=1e-6, projection_dim=7)
    layer.set_weights(ref.get_weights())
    got = run_on(backend, layer, x)
    np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(ref(x)))


def test_layer_scale_weights_and_config():
    layer = fl.layers.LayerScale(0.5, 3)
    layer.build((None, 4, 3))
    (gamma,) = layer.get_weights()
    np.testing.assert_array_equal(gamma, np.full(3, 0.5, np.float32))
    assert layer.get_config() == {"name": layer.name, "init_values": 0.5, "projection_dim": 3}
    fresh = fl.layers.LayerScale(1e-6, 3)
    fresh.set_weights([np.arange(3, dtype=np.float32)])  # builds from the weight's shape
    np.testing.assert_array_equal(fresh(np.ones((2, 3), np.float32)), [[0, 1, 2]] * 2)


@pytest.mark.parametrize("kwargs, error", [
    ({"init_values": "1", "projection_dim": 3}, TypeError),
    ({"init_values": float("nan"), "projection_dim": 3}, ValueError),
    ({"init_values": 1e-6, "projection_dim": 0}, ValueError),
    ({"init_values": 1e-6, "projection_dim": 2.5}, ValueError),
])
def test_layer_scale_bad_arguments(kwargs, error):
    with pytest.raises(error):
        fl.layers.LayerScale(**kwargs)


def test_layer_scale_bad_inputs():
    layer = fl.layers.LayerScale(1e-6, 4)
    with pytest.raises(ValueError, match="projection_dim"):
        layer(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="projection_dim"):
        layer(np.float32(1.0))
    with pytest.raises(ValueError, match="shape"):
        layer.set_weights([np.ones(5, np.float32)])


def test_stochastic_depth_is_the_identity():
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    layer = fl.layers.StochasticDepth(0.3)
    np.testing.assert_array_equal(layer(x), x)
    assert layer.get_config()["drop_path_rate"] == 0.3
    for bad, error in ((1.5, ValueError), (-0.1, ValueError), ("0.1", TypeError)):
        with pytest.raises(error):
            fl.layers.StochasticDepth(bad)


def test_a_users_layer_scale_is_not_taken_for_keras_s(tmp_path):
    """A custom class of the same name (another module) is refused, not run as ConvNeXt's."""

    @keras.saving.register_keras_serializable(package="mine")
    class LayerScale(keras.layers.Layer):
        def __init__(self, init_values, projection_dim, **kwargs):
            super().__init__(**kwargs)
            self.init_values, self.projection_dim = init_values, projection_dim

        def build(self, _):
            self.gamma = self.add_weight(shape=(self.projection_dim,), initializer="ones")

        def call(self, x):
            return x + self.gamma  # not a scale

        def get_config(self):
            return {**super().get_config(), "init_values": self.init_values,
                    "projection_dim": self.projection_dim}

    inp = keras.Input((4,))
    model = keras.Model(inp, LayerScale(1e-6, 4)(inp))
    path = str(tmp_path / "custom.keras")
    model.save(path)
    with pytest.raises(NotImplementedError, match="LayerScale"):
        fl.load_model(path)


@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((1, 5), (1, 5)),
                                    ((2, 3, 4), (1, 4)), ((3, 1), (3, 7))])
def test_custom_scale_layer_against_keras(shapes):
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    rng = np.random.default_rng(4)
    a, b = (rng.normal(size=s).astype(np.float32) for s in shapes)
    want = keras.ops.convert_to_numpy(CustomScaleLayer(0.17)([a, b]))
    got = fl.layers.CustomScaleLayer(0.17)([a, b])
    np.testing.assert_array_equal(got, want)  # the same float32 product and sum


def test_custom_scale_layer_bad_inputs():
    layer = fl.layers.CustomScaleLayer(0.5)
    assert layer.get_config() == {"name": layer.name, "scale": 0.5}
    with pytest.raises(ValueError, match="list of two"):
        layer(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="list of two"):
        layer([np.ones((2, 3), np.float32)] * 3)
    with pytest.raises(ValueError, match="broadcast"):
        layer([np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)])
    with pytest.raises(TypeError):
        fl.layers.CustomScaleLayer("0.5")


@pytest.mark.parametrize("backend", BACKENDS)
def test_masks_stop_at_layer_scale_and_pass_stochastic_depth(tmp_path, backend):
    """Keras's LayerScale keeps Layer's default (no masking: the mask stops there);
    StochasticDepth returns its input, mask and all. An LSTM after each shows which."""
    from keras.src.applications.convnext import LayerScale
    from keras.src.applications.convnext import StochasticDepth as KerasStochasticDepth

    tokens = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(6, 4, mask_zero=True)(tokens)
    outs = [keras.layers.LSTM(3)(LayerScale(0.5, 4)(embedded)),
            keras.layers.LSTM(3)(KerasStochasticDepth(0.2)(embedded))]
    model = keras.Model(tokens, outs)
    model.save(tmp_path / "masks.keras")
    ids = np.array([[1, 2, 0, 0, 0], [3, 0, 4, 5, 0]], np.int32)
    loaded = fl.load_model(tmp_path / "masks.keras")
    got = run_on(backend, loaded, ids)
    for g, w in zip(got, model(ids)):
        np.testing.assert_allclose(g, keras.ops.convert_to_numpy(w), rtol=1e-5, atol=1e-6)
