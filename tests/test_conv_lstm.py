"""ConvLSTM1D and ConvLSTM2D against Keras itself: models saved by Keras (.keras and legacy
.h5) load and predict Keras's outputs on both paths; the layer called with masks and initial
states as Keras's layer is; edge shapes; bad inputs. Needs keras and h5py (the CI step that
installs torch and keras runs it)."""

from __future__ import annotations

import importlib.util
import pickle
import re

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers.io.keras_config import make_layer

keras = pytest.importorskip("keras")
if importlib.util.find_spec("h5py") is None:
    pytest.skip('h5py is not installed (pip install "fastlayers[keras]")',
                allow_module_level=True)

L = keras.layers
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def _randomized(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.normal(size=w.shape) * 0.3).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _listed(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


# (make the Keras layer, one input row's shape)
CASES = {
    "same_sequences": (lambda: L.ConvLSTM2D(4, 3, padding="same", return_sequences=True),
                       (5, 6, 7, 3)),
    "strided_states": (lambda: L.ConvLSTM2D(3, (3, 2), strides=2, return_state=True),
                       (4, 9, 8, 2)),
    "dilated_backwards": (lambda: L.ConvLSTM2D(
        2, 3, dilation_rate=2, go_backwards=True, return_sequences=True, activation="relu",
        recurrent_activation="hard_sigmoid"), (3, 8, 8, 2)),
    "channels_first_no_bias": (lambda: L.ConvLSTM2D(
        3, 3, padding="same", data_format="channels_first", return_sequences=True,
        use_bias=False), (4, 2, 6, 5)),
    "one_step_one_filter": (lambda: L.ConvLSTM2D(1, 1), (1, 3, 5, 1)),
    "prime_sizes": (lambda: L.ConvLSTM2D(7, (2, 3), padding="same", unit_forget_bias=False,
                                         return_sequences=True), (3, 11, 13, 5)),
    "conv1d_same": (lambda: L.ConvLSTM1D(5, 3, padding="same", return_sequences=True),
                    (6, 10, 3)),
    "conv1d_channels_first": (lambda: L.ConvLSTM1D(2, 2, strides=2,
                                                   data_format="channels_first",
                                                   return_state=True), (4, 3, 9)),
}


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_saved_models_predict_keras_outputs(tmp_path, case, fmt):
    make, shape = CASES[case]
    inp = keras.Input(shape)
    model = _randomized(keras.Model(inp, make()(inp)), len(case))
    x = np.random.default_rng(1).normal(size=(3,) + shape).astype(np.float32)
    want = _listed(model.predict(x, verbose=0))
    path = tmp_path / f"m.{fmt}"
    model.save(path)
    for backend in BACKENDS:
        with fl.use_backend(backend):
            loaded = fl.load_model(path)
            got = _listed(loaded.predict(x, batch_size=2))
            assert [g.shape for g in got] == [w.shape for w in want]
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-6)
            # the same batches: on the NumPy backend BLAS's sums may change with the batch
            # size (docs/scaling.md §3), which is not what this checks; the C++ path's may
            # not (a row's bits do not depend on its batch), so there the whole input too
            again = pickle.loads(pickle.dumps(loaded))
            for g, w in zip(_listed(again.predict(x, batch_size=2)), got):
                np.testing.assert_array_equal(g, w)
            if backend == "cpp":
                for g, w in zip(_listed(again.predict(x)), got):
                    np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("backend", BACKENDS)
def test_masks_and_initial_states_as_keras(backend, zero_output):
    """The layer called directly, with a (batch, timesteps) mask (masked steps keep the
    states and repeat the previous output, or give zeros) and initial states, against
    Keras's layer with the same weights and arguments."""
    rng = np.random.default_rng(4)
    k = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True,
                     zero_output_for_mask=zero_output)
    x = rng.normal(size=(2, 5, 4, 6, 2)).astype(np.float32)
    mask = np.array([[True, False, True, True, False], [False, True, True, False, True]])
    h0 = rng.normal(size=(2, 4, 6, 3)).astype(np.float32)
    c0 = rng.normal(size=(2, 4, 6, 3)).astype(np.float32)
    k.build(x.shape)
    _randomized(k, 9)
    want = [keras.ops.convert_to_numpy(v) for v in k(x, initial_state=[h0, c0], mask=mask)]
    ours = make_layer({"class_name": "ConvLSTM2D", "config": k.get_config()})
    ours.build(x.shape)
    ours.set_weights(k.get_weights())
    with fl.use_backend(backend):
        got = ours(x, initial_state=[h0, c0], mask=mask)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-6)


def test_the_paths_agree_and_calls_repeat_bit_for_bit():
    layer = fl.layers.ConvLSTM2D(6, 3, padding="same", return_sequences=True, seed=3)
    x = np.random.default_rng(0).normal(size=(2, 4, 9, 7, 5)).astype(np.float32)
    with fl.use_backend("numpy"):
        ref = layer(x)
    if not NUMPY_ONLY:
        with fl.use_backend("cpp"):
            got = layer(x)
            np.testing.assert_array_equal(layer(x), got)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert ref.shape == (2, 4, 9, 7, 6) and ref.dtype == np.float32
    assert [w.shape for w in layer.get_weights()] == [(3, 3, 5, 24), (3, 3, 6, 24), (24,)]
    np.testing.assert_array_equal(layer.get_weights()[2][6:12], np.ones(6))  # forget bias


def test_bad_arguments_and_inputs_say_what():
    layer = fl.layers.ConvLSTM2D(2, 3, name="cl")
    x = np.zeros((1, 2, 5, 5, 3), np.float32)
    for call, exc, match in [
            (lambda: layer(np.zeros((1, 5, 5, 3), np.float32)), ValueError, "rank 5"),
            (lambda: layer(np.zeros((1, 0, 5, 5, 3), np.float32)), ValueError,
             "no timesteps"),
            (lambda: layer(x, mask=np.ones((1, 3), bool)), ValueError, "mask must be bool"),
            (lambda: layer(x, initial_state=[np.zeros((1, 3, 3, 2))]), ValueError,
             re.escape("[h, c]")),
            (lambda: layer(x, initial_state=[np.zeros((1, 4, 4, 2))] * 2), ValueError,
             "shape of one output step"),
            (lambda: layer(np.zeros((1, 2, 5, 5, 4), np.float32)), ValueError, "channels"),
            (lambda: fl.layers.ConvLSTM2D(2, 3, stateful=True), NotImplementedError,
             "stateful"),
            (lambda: fl.layers.ConvLSTM2D(2, 3, strides=2, dilation_rate=2), ValueError,
             "strides > 1 together with dilation_rate > 1"),
            (lambda: fl.layers.ConvLSTM2D(2, 3, padding="causal"), ValueError, "padding"),
            (lambda: fl.layers.ConvLSTM2D(0, 3), ValueError, "filters"),
            (lambda: fl.layers.ConvLSTM1D(2, (3, 3)), ValueError, "kernel_size")]:
        with pytest.raises(exc, match=match):
            call()
    assert layer(x).shape == (1, 3, 3, 2)  # (1, 2, 5, 5, 3) -> (1, 3, 3, 2)
