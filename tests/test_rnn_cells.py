"""Keras's ``RNN(cell)`` over its built-in cells, loaded as the LSTM, GRU and SimpleRNN
layers (the models of tests/golden/make_models_rnn_cells.py are loaded and compared with
Keras by tests/test_load_keras.py; here zero_output_for_mask and Bidirectional, against the
Keras model itself), and the RNNs fastlayers refuses, each with its reason.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers import layers as L

keras = pytest.importorskip("keras")


def _save(model, path):
    model.save(path)
    return path


def test_rnn_of_a_cell_is_the_cells_layer(tmp_path):
    inp = keras.Input((4, 3))
    out = keras.layers.RNN(keras.layers.GRUCell(5, reset_after=True), go_backwards=True,
                           name="backwards_gru")(inp)
    path = _save(keras.Model(inp, out), tmp_path / "gru.keras")
    model = fl.load_model(path)
    layer = model.get_layer("backwards_gru")
    assert isinstance(layer, L.GRU) and layer.units == 5 and layer.go_backwards
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    want = keras.models.load_model(path).predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)


def _flat(out):
    return [a for o in out for a in _flat(o)] if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("backend", ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_stacked_cells(tmp_path, backend, return_sequences, go_backwards, fmt):
    """RNN(StackedRNNCells([LSTMCell, GRUCell, LSTMCell])) with a Masking layer's mask, its
    states returned as Keras nests them ((output, [h, c], h, [h, c])), the sequence's mask
    reaching a pooling after it (it was refused): a StackedRNN of the cells' layers."""
    rng = np.random.default_rng(int(return_sequences) * 2 + int(go_backwards))
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    x[0, 4:] = 0.0
    x[1, 1] = 0.0  # a masked step inside the sequence
    inp = keras.Input((6, 4))
    cells = [keras.layers.LSTMCell(5), keras.layers.GRUCell(3, reset_after=False),
             keras.layers.LSTMCell(2)]
    out = keras.layers.RNN(keras.layers.StackedRNNCells(cells), return_state=True,
                           return_sequences=return_sequences,
                           go_backwards=go_backwards)(keras.layers.Masking(0.0)(inp))
    pooled = (keras.layers.GlobalAveragePooling1D()(out[0]) if return_sequences
              else keras.layers.Dense(2)(out[0]))
    kmodel = keras.Model(inp, [pooled, out])
    for w in kmodel.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32) * 0.5)
    want = kmodel.predict(x, verbose=0)
    model = fl.load_model(_save(kmodel, tmp_path / f"stacked.{fmt}"))
    assert isinstance(model.get_layer(kmodel.layers[2].name), L.StackedRNN)
    with fl.use_backend(backend):
        got = model.predict(x)
    assert isinstance(got[1][1], list) and isinstance(got[1][2], np.ndarray)  # [h, c], h
    for a, b in zip(_flat(got), _flat(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_stacked_cells_initial_state_and_zero_output(tmp_path):
    """initial_state per cell (nested as Keras takes it), zero_output_for_mask set, against
    Keras."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    x[1, 3:] = 0.0
    inp, h0, c0, g0 = (keras.Input((5, 3)), keras.Input((4,)), keras.Input((4,)),
                       keras.Input((2,)))
    rnn = keras.layers.RNN(keras.layers.StackedRNNCells(
        [keras.layers.LSTMCell(4), keras.layers.SimpleRNNCell(2)]), return_sequences=True,
        zero_output_for_mask=True)
    kmodel = keras.Model([inp, h0, c0, g0], rnn(keras.layers.Masking(0.0)(inp),
                                                initial_state=[[h0, c0], g0]))
    for w in kmodel.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32) * 0.5)
    xs = [x] + [rng.standard_normal((2, n)).astype(np.float32) for n in (4, 4, 2)]
    want = kmodel.predict(xs, verbose=0)
    model = fl.load_model(_save(kmodel, tmp_path / "stacked_init.keras"))
    got = model.predict(xs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_stacked_cells_refused_with_the_reason(tmp_path):
    """A Bidirectional of a stack is refused (fastlayers' wraps LSTM, GRU, SimpleRNN)."""
    inp = keras.Input((4, 3))
    stacked = keras.layers.RNN(keras.layers.StackedRNNCells(
        [keras.layers.LSTMCell(4), keras.layers.LSTMCell(2)]))
    path = _save(keras.Model(inp, keras.layers.Bidirectional(stacked)(inp)),
                 tmp_path / "bidirectional_stacked.keras")
    with pytest.raises(NotImplementedError, match="Bidirectional"):
        fl.load_model(path)


def test_zero_output_for_mask_and_bidirectional(tmp_path):
    """RNN(cell, zero_output_for_mask=True) (masked steps output zeros), and RNN(cell) inside
    Bidirectional (which sets it when returning sequences), on masked inputs."""
    inp = keras.Input((5, 3))
    h = keras.layers.Masking(0.0)(inp)
    first = keras.layers.RNN(keras.layers.LSTMCell(4), zero_output_for_mask=True,
                             return_sequences=True)(h)
    h = keras.layers.Bidirectional(keras.layers.RNN(keras.layers.GRUCell(3),
                                                    return_sequences=True))(first)
    out = keras.layers.Bidirectional(keras.layers.RNN(keras.layers.SimpleRNNCell(2)),
                                     merge_mode="sum")(h)
    x = np.random.default_rng(1).standard_normal((3, 5, 3)).astype(np.float32)
    x[0, 3:] = 0.0
    x[2, 1:] = 0.0
    model = keras.Model(inp, [first, h, out])  # masked steps of `first` are zeros
    want = model.predict(x, verbose=0)
    assert not np.any(want[0][2, 1:])
    for suffix in (".keras", ".h5"):  # (Keras itself cannot read this .h5 back: NotEqual)
        path = _save(model, tmp_path / f"masked{suffix}")
        got = fl.load_model(path).predict(x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_a_custom_cell_is_refused(tmp_path):
    path = tmp_path / "custom.keras"
    inp = keras.Input((4, 3))
    _save(keras.Model(inp, keras.layers.RNN(keras.layers.LSTMCell(2))(inp)), path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    rnn = next(c for c in config["config"]["layers"] if c["class_name"] == "RNN")
    rnn["config"]["cell"]["module"] = "my_project.cells"
    rnn["config"]["cell"]["class_name"] = "MyCell"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.raises(NotImplementedError, match="MyCell"):
        fl.load_model(path)
