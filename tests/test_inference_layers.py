"""The layers that are trivial at inference, against Keras's inference behaviour: the
identity regularizers (fastlayers/layers/regularization.py) and Activation (layers/core.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers import _backend
from fastlayers._numpy import activations as np_act
from fastlayers.layers import (
    Activation,
    ActivityRegularization,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
)

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]

IDENTITY = [
    (Dropout, {"rate": 0.5, "noise_shape": (None, 1, 4), "seed": 3}, (2, 3, 4)),
    (SpatialDropout1D, {"rate": 0.2}, (2, 3, 4)),
    (SpatialDropout2D, {"rate": 0.2, "data_format": "channels_last"}, (2, 3, 4, 5)),
    (GaussianNoise, {"stddev": 0.3, "seed": 1}, (2, 7)),
    (GaussianDropout, {"rate": 0.4}, (2, 7)),
    (ActivityRegularization, {"l1": 0.01, "l2": 0.02}, (2, 7)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls, kwargs, shape", IDENTITY)
def test_identity_at_inference(cls, kwargs, shape, backend):
    x = np.random.default_rng(0).standard_normal(shape)  # float64 in, float32 out
    layer = cls(**kwargs, name="reg")
    with fl.use_backend(backend):
        y = layer(x, training=False)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32))
    assert layer.weights == [] and layer.count_params() == 0
    config = layer.get_config()
    assert config["name"] == "reg"
    for key, value in kwargs.items():
        assert config[key] == value
    assert cls.from_config(config).get_config() == config


def test_identity_layers_in_a_model():
    inp = fl.Input(shape=(3, 4))
    out = Dropout(0.5)(SpatialDropout1D(0.1)(inp))
    mdl = fl.Model(inp, fl.layers.Dense(2, seed=0)(out))
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(mdl(x), mdl.layers[-1](x))


@pytest.mark.parametrize("cls, kwargs, exc", [
    (Dropout, {"rate": 1.5}, ValueError),
    (Dropout, {"rate": "0.5"}, TypeError),
    (Dropout, {"rate": 0.5, "seed": 1.5}, TypeError),
    (Dropout, {"rate": 0.5, "noise_shape": 3}, TypeError),
    (GaussianNoise, {"stddev": -1.0}, ValueError),
    (GaussianDropout, {"rate": True}, TypeError),
    (SpatialDropout2D, {"rate": 0.1, "data_format": "nchw"}, ValueError),
    (ActivityRegularization, {"l1": float("nan")}, ValueError),
    (Activation, {"activation": "nope"}, ValueError),
    (Dropout, {"rate": 0.1, "unknown": 1}, TypeError),
])
def test_bad_arguments(cls, kwargs, exc):
    with pytest.raises(exc):
        cls(**kwargs)


def test_spatial_dropout_data_format_as_keras_standardizes_it():
    """Keras lower-cases data_format and makes None channels_last (its default)."""
    assert SpatialDropout2D(0.1, data_format="Channels_First").data_format == "channels_first"
    assert SpatialDropout2D(0.1).get_config()["data_format"] == "channels_last"


def test_spatial_dropout_checks_the_rank():
    with pytest.raises(ValueError, match="rank 4"):
        SpatialDropout2D(0.1)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="rank 3"):
        SpatialDropout1D(0.1)(np.ones((2, 3), np.float32))


ELEMENTWISE = sorted(n for n in np_act.ACTIVATIONS if n not in np_act.ROW_ACTIVATIONS)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_matches_the_numpy_definition(name):
    x = (np.random.default_rng(1).standard_normal((3, 40)) * 4).astype(np.float32)
    want = np_act.ACTIVATIONS[name](x)
    with fl.use_backend("numpy"):
        np.testing.assert_array_equal(Activation(name)(x), want)
    if not NUMPY_ONLY and name in _backend.cpp_activation_ids():
        with fl.use_backend("cpp"):
            got = Activation(name)(x)
        finite_max = np.abs(want[np.isfinite(want)]).max(initial=0.0)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * max(1.0, finite_max))


@pytest.mark.parametrize("name", sorted(np_act.ROW_ACTIVATIONS))
def test_axis_activations_use_the_last_axis(name):
    x = np.random.default_rng(2).standard_normal((2, 3, 6)).astype(np.float32)
    with fl.use_backend("numpy"):
        np.testing.assert_array_equal(Activation(name)(x), np_act.ACTIVATIONS[name](x, axis=-1))
    if not NUMPY_ONLY and name == "softmax":
        with fl.use_backend("cpp"):
            got = Activation(name)(x)
        np.testing.assert_allclose(got, np_act.ACTIVATIONS[name](x, axis=-1), rtol=1e-6,
                                   atol=1e-7)
    elif not NUMPY_ONLY:  # NumPy under every backend (docs/architecture.md §4)
        with fl.use_backend("cpp"):
            np.testing.assert_array_equal(Activation(name)(x),
                                          np_act.ACTIVATIONS[name](x, axis=-1))


def test_activation_callable_and_config():
    layer = Activation(lambda t: 2 * t)
    np.testing.assert_array_equal(layer(np.ones((1, 2))), np.full((1, 2), 2, np.float32))
    relu = Activation("ReLU", name="act")
    assert relu.get_config() == {"name": "act", "activation": "relu"}
    np.testing.assert_array_equal(relu(np.array([[-1.0, 2.0]])), [[0.0, 2.0]])
