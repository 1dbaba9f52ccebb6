"""``compute_output_shape`` of layers and models against Keras's own (the Keras-user audit of
2026-12-06 found it missing): the same shapes for the same configs, the batch dimension
first, None where a size may vary; the layer left as it was (unbuilt stays unbuilt, no
``input`` / ``output`` from it); a shape the layer cannot take raises."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import layers as L

keras = pytest.importorskip("keras")

# (name, a function of the layers module making the layer, the input shape)
_CASES = [
    ("dense", lambda m: m.Dense(8), (None, 10, 4)),
    ("dense_fixed_batch", lambda m: m.Dense(3), (5, 7)),
    ("conv_same_stride", lambda m: m.Conv2D(6, 3, strides=2, padding="same"), (None, 17, 9, 3)),
    ("conv_valid_dilated", lambda m: m.Conv2D(4, 3, dilation_rate=2), (2, 13, 11, 5)),
    ("conv_unknown_size", lambda m: m.Conv2D(4, 3), (None, None, None, 3)),
    ("conv1d_causal", lambda m: m.Conv1D(5, 4, padding="causal"), (None, 12, 2)),
    ("conv_transpose", lambda m: m.Conv2DTranspose(3, 3, strides=2), (None, 7, 5, 2)),
    ("max_pool", lambda m: m.MaxPooling2D(3, strides=2), (None, 15, 12, 4)),
    ("global_avg", lambda m: m.GlobalAveragePooling2D(), (None, 6, 6, 8)),
    ("flatten", lambda m: m.Flatten(), (None, 3, 4, 5)),
    ("reshape", lambda m: m.Reshape((-1, 4)), (None, 6, 2)),
    ("lstm_sequences", lambda m: m.LSTM(7, return_sequences=True), (None, 9, 3)),
    ("lstm_states", lambda m: m.LSTM(5, return_state=True), (4, 6, 3)),
    ("gru_unknown_steps", lambda m: m.GRU(6), (None, None, 3)),
    ("bidirectional", lambda m: m.Bidirectional(m.LSTM(4, return_sequences=True)),
     (None, 5, 3)),
    ("time_distributed", lambda m: m.TimeDistributed(m.Dense(2)), (None, 4, 6)),
    ("embedding", lambda m: m.Embedding(50, 8), (None, 12)),
    ("concatenate", lambda m: m.Concatenate(), [(None, 3, 4), (None, 3, 2)]),
    ("add", lambda m: m.Add(), [(None, 5), (None, 5)]),
    ("layer_norm", lambda m: m.LayerNormalization(), (None, 4, 6)),
    ("zero_padding", lambda m: m.ZeroPadding2D(((1, 2), (0, 3))), (None, 4, 4, 1)),
    ("upsampling", lambda m: m.UpSampling2D(2), (None, 3, 5, 2)),
]


def _as_tuples(shape):
    if isinstance(shape, dict):
        return {k: _as_tuples(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and not all(
            d is None or isinstance(d, int) for d in shape):
        return tuple(_as_tuples(s) for s in shape)
    return tuple(shape)


@pytest.mark.parametrize("name", [c[0] for c in _CASES])
def test_layers_give_keras_shapes(name):
    _, make, shape = next(c for c in _CASES if c[0] == name)
    want = _as_tuples(make(keras.layers).compute_output_shape(shape))
    layer = make(L)
    got = layer.compute_output_shape(shape)
    assert _as_tuples(got) == want
    assert isinstance(got, tuple)
    assert not layer.built or not layer.weights  # left unbuilt (layers without weights may be)
    with pytest.raises(AttributeError, match="never been called"):
        _ = layer.output


def test_a_built_layer_keeps_its_weights_and_first_call():
    x = fl.Input((4,))
    dense = L.Dense(3)
    y = dense(x)
    weights = [w.copy() for w in dense.get_weights()]
    assert dense.compute_output_shape((None, 4)) == (None, 3)
    assert dense.compute_output_shape((7, 4)) == (7, 3)
    assert dense.output is y
    for a, b in zip(dense.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"kernel has shape \(4, 3\), expected \(5, units\)"):
        dense.compute_output_shape((None, 5))  # its kernel is (4, 3)


def test_models_give_keras_shapes():
    def build(m, api):
        img = api.Input((16, 16, 3), name="img")
        meta = api.Input((4,), name="meta")
        h = m.Conv2D(8, 3, strides=2, padding="same")(img)
        h = m.GlobalAveragePooling2D()(h)
        h = m.Concatenate()([h, m.Dense(5)(meta)])
        return api.Model({"img": img, "meta": meta}, [m.Dense(2)(h), m.Dense(1)(h)])

    shapes = {"img": (None, 16, 16, 3), "meta": (None, 4)}
    want = _as_tuples(build(keras.layers, keras).compute_output_shape(shapes))
    model = build(L, fl)
    assert _as_tuples(model.compute_output_shape(shapes)) == want
    seq = fl.Sequential([fl.Input((None, 3)), L.LSTM(4, return_sequences=True), L.Dense(2)])
    kseq = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                             keras.layers.Dense(2)])
    assert seq.compute_output_shape((8, 5, 3)) == tuple(kseq.compute_output_shape((8, 5, 3)))


@pytest.mark.parametrize("bad", ["(None, 4)", 4, [(None, 4), "x"], (None, 2.5)])
def test_bad_shapes_are_refused(bad):
    with pytest.raises(TypeError, match="compute_output_shape takes a shape"):
        L.Dense(2).compute_output_shape(bad)


def test_layers_of_several_tensors_take_their_shapes_as_arguments():
    """MultiHeadAttention's call takes query and value: Keras's compute_output_shape takes
    their shapes as two arguments (a review: refused in every form)."""
    for make in (lambda m: m.MultiHeadAttention(2, 4),
                 lambda m: m.MultiHeadAttention(2, 4, output_shape=6)):
        want = make(keras.layers).compute_output_shape((None, 5, 8), (None, 7, 3))
        assert make(L).compute_output_shape((None, 5, 8), (None, 7, 3)) == tuple(want)


def test_a_batch_of_zero_and_a_bad_shape_are_reported_as_given():
    assert L.Dense(2).compute_output_shape((0, 3)) == tuple(
        keras.layers.Dense(2).compute_output_shape((0, 3)))
    with pytest.raises(TypeError, match=r"got \(None, 2\.5\)"):
        L.Dense(2).compute_output_shape((None, 2.5))


def test_the_layers_a_custom_build_makes_are_not_left_built():
    """A custom layer whose build makes its layers: they were left built (with weights)
    while the layer said unbuilt (a Keras-user audit)."""
    class MakesInBuild(L.Layer):
        def build(self, input_shape):
            self.inner = L.Dense(3)

        def call(self, x):
            return self.inner(x)

    layer = MakesInBuild()
    assert layer.compute_output_shape((None, 5)) == (None, 3)
    assert not layer.built and not layer.weights
    x = np.ones((2, 7), np.float32)
    assert layer(x).shape == (2, 3) and [w.shape for w in layer.weights] == [(7, 3), (3,)]


def test_a_layer_the_build_takes_hold_of_keeps_its_weights_and_extra_shapes_are_refused():
    """compute_output_shape unbuilt a built layer that a custom build merely assigned (its
    weights were drawn again at the next call; a second review), and took an extra shape for
    a layer of one input as its training argument."""
    shared = L.Dense(3)
    x = np.ones((2, 5), np.float32)
    before = shared(x)

    class UsesShared(L.Layer):
        def build(self, input_shape):
            self.d = shared

        def call(self, x):
            return self.d(x)

    assert UsesShared().compute_output_shape((None, 5)) == (None, 3)
    assert shared.built
    np.testing.assert_array_equal(shared(x), before)
    with pytest.raises(TypeError, match="takes 1 shape"):
        L.Dense(2).compute_output_shape((None, 3), (None, 7))
