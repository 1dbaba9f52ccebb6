"""Layers and models pickle and deep-copy: weights and config travel, the packed weights of
the C++ path are rebuilt on load (they belong to the compiled core, and their layout may
depend on the machine's ISA). Results after a round trip are bitwise those before."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

RNG = np.random.default_rng(5)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


CASES = {
    "Dense": (lambda: L.Dense(7, activation="gelu", seed=1), lambda: [_x(3, 5)]),
    "Flatten": (lambda: L.Flatten(), lambda: [_x(2, 3, 4)]),
    "Softmax": (lambda: L.Softmax(axis=-1), lambda: [_x(2, 9)]),
    "Conv2D": (lambda: L.Conv2D(6, 3, padding="same", seed=2), lambda: [_x(2, 7, 7, 3)]),
    "Conv2D-depthwise": (lambda: L.Conv2D(4, 3, groups=4, seed=3), lambda: [_x(1, 6, 6, 4)]),
    "LSTM": (lambda: L.LSTM(5, return_sequences=True, seed=4), lambda: [_x(2, 6, 3)]),
    "GRU": (lambda: L.GRU(5, return_state=True, seed=5), lambda: [_x(2, 6, 3)]),
    "Bidirectional": (lambda: L.Bidirectional(L.LSTM(4, seed=6)), lambda: [_x(2, 5, 3)]),
    "Attention": (lambda: L.Attention(), lambda: [[_x(2, 4, 6), _x(2, 5, 6)]]),
    "AdditiveAttention": (lambda: L.AdditiveAttention(), lambda: [[_x(2, 4, 6), _x(2, 5, 6)]]),
    "Activation": (lambda: L.Activation("swish"), lambda: [_x(2, 9)]),
    "Dropout": (lambda: L.Dropout(0.5, seed=1), lambda: [_x(2, 9)]),
    "SpatialDropout2D": (lambda: L.SpatialDropout2D(0.2), lambda: [_x(1, 3, 3, 2)]),
    "GaussianNoise": (lambda: L.GaussianNoise(0.1), lambda: [_x(2, 9)]),
    "GaussianDropout": (lambda: L.GaussianDropout(0.1), lambda: [_x(2, 9)]),
    "ActivityRegularization": (lambda: L.ActivityRegularization(l1=0.1), lambda: [_x(2, 9)]),
    # merge topic (issue 12)
    "Add": (lambda: L.Add(), lambda: [[_x(2, 3), _x(2, 1, 3)]]),
    "Subtract": (lambda: L.Subtract(), lambda: [[_x(2, 3), _x(2, 3)]]),
    "Multiply": (lambda: L.Multiply(), lambda: [[_x(2, 3), _x(2, 3)]]),
    "Average": (lambda: L.Average(), lambda: [[_x(2, 3), _x(2, 3), _x(2, 3)]]),
    "Maximum": (lambda: L.Maximum(), lambda: [[_x(2, 3), _x(2, 3)]]),
    "Minimum": (lambda: L.Minimum(), lambda: [[_x(2, 3), _x(2, 3)]]),
    "Concatenate": (lambda: L.Concatenate(axis=1), lambda: [[_x(2, 3, 2), _x(2, 1, 2)]]),
    "Dot": (lambda: L.Dot(axes=(1, 2), normalize=True), lambda: [[_x(2, 3, 4), _x(2, 5, 3)]]),
    "Reshape": (lambda: L.Reshape((-1, 2)), lambda: [_x(2, 3, 4)]),
    "Permute": (lambda: L.Permute((2, 1)), lambda: [_x(2, 3, 4)]),
    "RepeatVector": (lambda: L.RepeatVector(3), lambda: [_x(2, 4)]),
    "TimeDistributed-Dense": (lambda: L.TimeDistributed(L.Dense(3, seed=8)),
                              lambda: [_x(2, 4, 5)]),
    "TimeDistributed-Conv2D": (lambda: L.TimeDistributed(L.Conv2D(2, 3, seed=9)),
                               lambda: [_x(1, 2, 5, 5, 3)]),
    "MultiHeadAttention": (
        lambda: L.MultiHeadAttention(num_heads=2, key_dim=3, seed=7),
        lambda: [_x(2, 4, 6), _x(2, 5, 6)],
    ),
    # convpool
    "Conv1D": (lambda: L.Conv1D(4, 3, padding="causal", dilation_rate=2, seed=8),
               lambda: [_x(2, 9, 3)]),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, seed=9),
                        lambda: [_x(1, 6, 6, 3)]),
    "SeparableConv2D": (lambda: L.SeparableConv2D(5, 3, padding="same", seed=10),
                        lambda: [_x(1, 6, 6, 3)]),
    "MaxPooling1D": (lambda: L.MaxPooling1D(3, padding="same"), lambda: [_x(2, 7, 3)]),
    "MaxPooling2D": (lambda: L.MaxPooling2D(), lambda: [_x(1, 5, 5, 2)]),
    "AveragePooling1D": (lambda: L.AveragePooling1D(2), lambda: [_x(2, 7, 3)]),
    "AveragePooling2D": (lambda: L.AveragePooling2D(3, 2, "same"), lambda: [_x(1, 5, 5, 2)]),
    "GlobalAveragePooling1D": (lambda: L.GlobalAveragePooling1D(), lambda: [_x(2, 7, 3)]),
    "GlobalAveragePooling2D": (lambda: L.GlobalAveragePooling2D(), lambda: [_x(1, 5, 5, 2)]),
    "GlobalMaxPooling1D": (lambda: L.GlobalMaxPooling1D(keepdims=True), lambda: [_x(2, 7, 3)]),
    "GlobalMaxPooling2D": (lambda: L.GlobalMaxPooling2D(), lambda: [_x(1, 5, 5, 2)]),
    "ZeroPadding1D": (lambda: L.ZeroPadding1D(2), lambda: [_x(2, 7, 3)]),
    "ZeroPadding2D": (lambda: L.ZeroPadding2D(((1, 0), (2, 1))), lambda: [_x(1, 5, 5, 2)]),
    "Cropping1D": (lambda: L.Cropping1D(1), lambda: [_x(2, 7, 3)]),
    "Cropping2D": (lambda: L.Cropping2D(1), lambda: [_x(1, 5, 5, 2)]),
    # masks (issue 12)
    "Embedding": (lambda: L.Embedding(9, 4, mask_zero=True, seed=8),
                  lambda: [np.array([[1, 0, 8], [3, 3, 0]])]),
    "Masking": (lambda: L.Masking(mask_value=0.5), lambda: [_x(2, 4, 3)]),
    # norm (issue 12)
    "BatchNormalization": (lambda: L.BatchNormalization(axis=1, center=False),
                           lambda: [_x(2, 3, 5)]),
    "LayerNormalization": (lambda: L.LayerNormalization(axis=[1, 2]), lambda: [_x(2, 3, 5)]),
    "ReLU": (lambda: L.ReLU(max_value=2.0, threshold=0.5), lambda: [_x(2, 9)]),
    "LeakyReLU": (lambda: L.LeakyReLU(0.1), lambda: [_x(2, 9)]),
    "PReLU": (lambda: L.PReLU(alpha_initializer="random_uniform", shared_axes=[1], seed=3),
              lambda: [_x(2, 3, 5)]),
    "ELU": (lambda: L.ELU(0.5), lambda: [_x(2, 9)]),
    "Rescaling": (lambda: L.Rescaling([1.0, 2.0, 3.0], offset=0.5), lambda: [_x(2, 3)]),
    "Normalization": (lambda: L.Normalization(axis=None, mean=1.0, variance=2.0),
                      lambda: [_x(2, 3)]),
    "Normalization-weights": (lambda: L.Normalization(), lambda: [_x(2, 3)]),
}


def _outputs(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _unaligned_round_trip(obj):
    """Pickle protocol 5 with out-of-band buffers, each handed back one byte past a 64-byte
    boundary (Dask's transfers between workers may deliver them at any offset)."""
    buffers = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    moved = []
    for b in buffers:
        raw = b.raw()
        store = np.zeros(raw.nbytes + 65, np.uint8)
        start = (-store.ctypes.data) % 64 + 1
        store[start:start + raw.nbytes] = np.frombuffer(raw, np.uint8)
        moved.append(memoryview(store[start:start + raw.nbytes]))
    return pickle.loads(data, buffers=moved)


def _clone(obj, how):
    if how == "pickle":
        return pickle.loads(pickle.dumps(obj))
    if how == "unaligned":
        return _unaligned_round_trip(obj)
    return copy.deepcopy(obj)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "unaligned"])
def test_layer_round_trip(name, how):
    make, inputs = CASES[name]
    layer = make()
    args = inputs()
    before = _outputs(layer(*args))
    clone = _clone(layer, how)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    for a, b in zip(clone.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    after = _outputs(clone(*args))
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    if clone.weights:
        assert not clone.weights[0].flags.writeable  # still read-only
        assert clone._packed is not None or not fl.core_available() or layer._packed is None


def test_model_with_ops_round_trip():
    q_in, k_in = Input(shape=(None, 8)), Input(shape=(None, 8))
    q, k = L.Dense(4, seed=1)(q_in), L.Dense(4, seed=2)(k_in)
    w = fl.softmax(fl.matmul(q, k, transpose_b=True), axis=-1)
    out = L.LSTM(3, seed=3)(fl.matmul(w, k))
    mdl = Model([q_in, k_in], [out, w])
    seq = Sequential([Input(shape=(6,)), L.Dense(4, seed=4), L.Dense(2, seed=5)])
    x = [_x(2, 5, 8), _x(2, 7, 8)]
    for m, args in ((mdl, x), (seq, _x(3, 6))):
        before = _outputs(m(args))
        for clone in (_clone(m, "pickle"), _clone(m, "deepcopy"), _clone(m, "unaligned")):
            after = _outputs(clone(args))
            assert len(after) == len(before)
            for a, b in zip(after, before):
                np.testing.assert_array_equal(a, b)
            assert [x.name for x in clone.layers] == [x.name for x in m.layers]
