"""Discretization and CategoryEncoding (layers/categorical.py) against Keras 3's own layers on
its torch backend, on both paths: every output mode, edge values (boundaries, NaN, inf,
negative and float ids), input ranks 0 to 3, count_weights, a structured-data model saved by
Keras and loaded, and the errors Keras raises (docs/semantics.md §33)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import layers as L

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def _same(got, want):
    want = np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype,
                                                                 got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


BINS = [-1.5, 0.0, 0.1, 0.1, 2.0]  # a repeated boundary, and 0.1 (not a float32)
VALUES = np.array([-2.0, -1.5, -1.4999, 0.0, 0.09999, 0.1, 0.1000001, 1.9999, 2.0, 7.0,
                   np.nan, np.inf, -np.inf], np.float32)


@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
@pytest.mark.parametrize("shape", [(13,), (13, 1), (1, 13), (13, 2, 3)])
def test_discretization_matches_keras(any_backend, mode, shape):
    x = np.resize(VALUES, shape).astype(np.float32)
    if len(shape) == 3:
        x = np.random.default_rng(0).permutation(x.ravel()).reshape(shape)
    ref = keras.layers.Discretization(bin_boundaries=BINS, output_mode=mode)
    _same(L.Discretization(bin_boundaries=BINS, output_mode=mode)(x),
          keras.ops.convert_to_numpy(ref(x)))


def test_discretization_of_integers_and_a_scalar(any_backend):
    ref = keras.layers.Discretization(bin_boundaries=[1.0, 3.0])
    layer = L.Discretization(bin_boundaries=[1.0, 3.0])
    for x in (np.array([[0, 1, 2, 3, 4]], np.int64), np.array([True, False]), np.float32(2.0)):
        _same(layer(x), keras.ops.convert_to_numpy(ref(x)))


ENCODINGS = {
    "one_hot": [np.array([[1], [3], [-1], [0]]), np.array([1, 3, -2]), np.array([[1, 2]]),
                np.array([[1.7], [-1.7], [np.nan], [np.inf]], np.float32), np.array(2),
                np.array([[True], [False]]), np.zeros((2, 3, 1), np.int32)],
    "multi_hot": [np.array([[1, 1, -1], [3, 0, 0]]), np.array([1, 3]), np.array([[-5, 2]]),
                  np.array([[0.5, 2.9, np.nan]], np.float32), np.array(3, np.int32)],
    "count": [np.array([[1, 1, -1], [3, 0, 0]]), np.array([3, 3, 1]),
              np.array([[2.5, 2.0, -np.inf]], np.float32), np.array(0)],
}


@pytest.mark.parametrize("mode", list(ENCODINGS))
def test_category_encoding_matches_keras(any_backend, mode):
    ref = keras.layers.CategoryEncoding(num_tokens=4, output_mode=mode)
    layer = L.CategoryEncoding(num_tokens=4, output_mode=mode)
    for x in ENCODINGS[mode]:
        _same(layer(x), keras.ops.convert_to_numpy(ref(x)))


def test_category_encoding_count_weights_and_binary(any_backend):
    ref = keras.layers.CategoryEncoding(5, "count")
    layer = L.CategoryEncoding(5, "count")
    ids, w = np.array([[1, 2, 2, 4], [0, 0, 3, -1]]), np.array([[0.5, 2.0, 1.5, 3.0],
                                                               [1.0, 1.0, 2.0, 9.0]])
    _same(layer(ids, count_weights=w), keras.ops.convert_to_numpy(ref(ids, count_weights=w)))
    _same(layer(ids, count_weights=np.float32(2.0)), 2 * layer(ids))
    binary = L.CategoryEncoding(5, output_mode="binary")
    assert binary.output_mode == "multi_hot"
    _same(binary(ids), keras.ops.convert_to_numpy(keras.layers.CategoryEncoding(5)(ids)))


def test_ids_out_of_range_and_bad_arguments():
    with pytest.raises(ValueError, match="ids must be below 4"):
        L.CategoryEncoding(4, "one_hot")(np.array([[4]]))
    with pytest.raises(ValueError, match="ids must be below 4"):
        L.CategoryEncoding(4)(np.array([[1, 4.5]], np.float32))
    with pytest.raises(ValueError, match="count_weights is used by output_mode='count'"):
        L.CategoryEncoding(4)(np.array([[1]]), count_weights=np.ones((1, 1)))
    with pytest.raises(ValueError, match="do not broadcast"):
        L.CategoryEncoding(4, "count")(np.array([[1, 2]]), count_weights=np.ones(3))
    with pytest.raises(ValueError, match="rank-3 input is not supported"):
        L.CategoryEncoding(4, "count")(np.zeros((2, 3, 5), np.int64))
    with pytest.raises(TypeError, match="numbers or booleans"):
        L.CategoryEncoding(4)(np.array([["a"]]))
    with pytest.raises(TypeError, match="numbers or booleans"):
        L.Discretization(bin_boundaries=[0.0])(np.array(["1.5"]))
    for kw, message in [({"num_tokens": 0}, "int >= 1"), ({"num_tokens": None}, "must be set"),
                        ({"num_tokens": 3, "output_mode": "int"}, "output_mode"),
                        ({"num_tokens": 3, "sparse": True}, "sparse=True")]:
        with pytest.raises(ValueError, match=message):
            L.CategoryEncoding(**kw)
    for kw, message in [({}, "either num_bins or bin_boundaries"),
                        ({"bin_boundaries": [1.0, 0.0]}, "non-decreasing"),
                        ({"bin_boundaries": [0.0, np.nan]}, "non-decreasing"),
                        ({"num_bins": -1}, "int >= 0"),
                        ({"bin_boundaries": [0.0], "output_mode": "binary"}, "output_mode")]:
        with pytest.raises(ValueError, match=message):
            L.Discretization(**kw)
    with pytest.raises(ValueError, match="adapt the layer in Keras"):
        L.Discretization(num_bins=4)(np.zeros((2, 1), np.float32))


def test_adapted_config_loads_with_its_boundaries():
    """A layer adapted in Keras has num_bins and bin_boundaries in its config (Keras's
    from_config keeps the boundaries)."""
    cfg = {"bin_boundaries": [0.0, 1.0, 2.0], "num_bins": 4, "epsilon": 0.01,
           "output_mode": "int", "sparse": False, "name": "d"}
    layer = L.Discretization(**cfg)
    ref = keras.layers.Discretization.from_config(cfg)
    x = np.array([[-1.0, 0.5, 1.0, 3.0]], np.float32)
    _same(layer(x), keras.ops.convert_to_numpy(ref(x)))


def test_structured_data_model_from_a_keras_file(tmp_path, any_backend):
    """Raw features in, preprocessing inside the model, as Keras's structured-data examples
    build it; saved by Keras, loaded by fastlayers, compared with Keras's predictions."""
    pytest.importorskip("h5py")
    kl = keras.layers
    age = keras.Input((1,), name="age")
    code = keras.Input((1,), dtype="int64", name="code")
    tags = keras.Input((5,), dtype="int32", name="tags")
    feats = kl.Concatenate()([
        kl.Discretization(bin_boundaries=[18.0, 30.0, 45.0, 60.0], output_mode="one_hot")(age),
        kl.CategoryEncoding(7, "one_hot")(code),
        kl.CategoryEncoding(9, "count")(tags),
        kl.CategoryEncoding(9)(tags),
        kl.Normalization(mean=40.0, variance=100.0)(age)])
    hidden = kl.Dense(8, activation="relu")(feats)
    bucket = kl.Discretization(bin_boundaries=[20.0, 40.0])(age)
    model = keras.Model([age, code, tags], [kl.Dense(1, activation="sigmoid")(hidden), bucket])
    path = str(tmp_path / "tabular.keras")
    model.save(path)
    rng = np.random.default_rng(3)
    x = [rng.uniform(0, 80, (7, 1)).astype(np.float32), rng.integers(0, 7, (7, 1)),
         rng.integers(-1, 9, (7, 5)).astype(np.int32)]
    x[0][:2, 0] = [30.0, 60.0]  # on boundaries
    want = model.predict(x, verbose=0)
    loaded = fl.load_model(path)
    got = loaded(x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    _same(got[1], want[1])
    assert [type(layer).__name__ for layer in loaded.layers].count("CategoryEncoding") == 3
