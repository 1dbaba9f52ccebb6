"""SimpleRNN (layer and fl.simple_rnn): Keras fixtures at edge shapes with and without masks,
a float64 reference written from the definition, models built in code with Keras's weights
(a masked Embedding model with a Bidirectional SimpleRNN, and one SimpleRNN's state passed to
another), the stateful and config paths, and bad arguments, on both paths (the C++ driver,
csrc/ops/simple_rnn.cpp, and fastlayers/_numpy/recurrent.py). The C++ path against the NumPy
one, its thread splits, bits and the binding's checks: tests/test_recurrent_cpp.py. PyTorch's
nn.RNN is converted in tests/test_from_torch.py.

Fixtures: tests/golden/simple_rnn_layers.npz and models_simple_rnn.npz (with the model files,
which tests/test_load_keras.py loads), made by tests/golden/make_models_simple_rnn.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close
from golden_models import assert_keras_outputs, golden, read_layer_cases

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
LAYER_CASES = read_layer_cases("simple_rnn_layers.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    meta, x, weights, mask, y = LAYER_CASES[case]
    layer = L.SimpleRNN(**meta["config"])
    layer.set_weights(weights)
    with fl.use_backend(backend):
        got = layer(x, mask=mask)
    assert_close(got, y, k=x.shape[2] + weights[1].shape[0], magnitude=2.0)


def test_fixture_cases_cover_the_edges():
    assert {"srnn_one_unit_one_step", "srnn_prime", "srnn_mask_sequences", "srnn_mask_last",
            "srnn_mask_backwards", "srnn_linear_no_bias", "srnn_relu_backwards"} <= set(
        LAYER_CASES)
    assert sum(m["mask"] is not None for m, *_ in LAYER_CASES.values()) == 3


def _reference(x, kernel, recurrent, bias, h0, mask, act, go_backwards):
    """float64 loops over samples and steps, from the definition: (sequence, h)."""
    x, kernel, recurrent = (np.asarray(a, np.float64) for a in (x, kernel, recurrent))
    b, t_len, _ = x.shape
    u = recurrent.shape[0]
    h = np.zeros((b, u)) if h0 is None else np.asarray(h0, np.float64).copy()
    last = np.zeros((b, u))
    seq = np.zeros((b, t_len, u))
    steps = range(t_len - 1, -1, -1) if go_backwards else range(t_len)
    for k, t in enumerate(steps):
        for n in range(b):
            if mask is None or mask[n, t]:
                s = x[n, t] @ kernel + h[n] @ recurrent + (0 if bias is None else bias)
                h[n] = act(s)
                last[n] = h[n]
            seq[n, k] = last[n]
    return seq, h


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("b,t,f,u", [(1, 1, 1, 1), (3, 7, 5, 16), (2, 13, 3, 17), (5, 4, 8, 6)])
@pytest.mark.parametrize("variant", ["plain", "state-mask-backwards", "relu-no-bias"])
def test_op_against_float64_reference(rng, backend, b, t, f, u, variant):
    x = rng.standard_normal((b, t, f)).astype(F32)
    kernel = (rng.standard_normal((f, u)) / np.sqrt(f)).astype(F32)
    recurrent = (rng.standard_normal((u, u)) / np.sqrt(u)).astype(F32)
    bias = rng.standard_normal(u).astype(F32)
    h0 = mask = None
    act, name, backwards = np.tanh, "tanh", False
    if variant == "state-mask-backwards":
        h0 = rng.standard_normal((b, u)).astype(F32)
        mask = rng.random((b, t)) < 0.7
        backwards = True
    elif variant == "relu-no-bias":
        bias, act, name = None, (lambda s: np.maximum(s, 0)), "relu"
    with fl.use_backend(backend):
        seq, h = fl.simple_rnn(x, kernel, recurrent, bias, initial_state=h0, mask=mask,
                               return_sequences=True, return_state=True,
                               go_backwards=backwards, activation=name)
        last = fl.simple_rnn(x, kernel, recurrent, bias, initial_state=None if h0 is None
                             else [h0], mask=mask, go_backwards=backwards, activation=name)
    want_seq, want_h = _reference(x, kernel, recurrent, bias, h0, mask, act, backwards)
    np.testing.assert_allclose(seq, want_seq, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(last, seq[:, -1])
    assert seq.dtype == h.dtype == F32


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["simple_rnn_text", "simple_rnn_state"])
def test_model_built_in_code_with_keras_weights(case, backend):
    if case == "simple_rnn_text":
        mdl = Sequential([
            Input(shape=(6,), dtype="int32"),
            L.Embedding(10, 4, mask_zero=True),
            L.SimpleRNN(5, return_sequences=True),
            L.Bidirectional(L.SimpleRNN(3, activation="relu")),
            L.Dense(2, activation="softmax"),
        ])
    else:
        inp = Input(shape=(5, 3), name="steps")
        seq, h = L.SimpleRNN(4, return_sequences=True, return_state=True)(inp)
        last = L.SimpleRNN(4, go_backwards=True, use_bias=False)(seq, initial_state=[h])
        mdl = Model(inp, [L.Dense(3)(last), h])
    mdl.set_weights(golden(case, "weights"))
    with fl.use_backend(backend):
        assert_keras_outputs(case, mdl.predict(golden(case, "inputs")[0]))


def test_layer_config_state_and_pickle(rng):
    layer = L.SimpleRNN(3, activation="relu", return_state=True, seed=2)
    x = rng.standard_normal((2, 4, 5)).astype(F32)
    out, h = layer(x)
    config = layer.get_config()
    assert "recurrent_activation" not in config and config["activation"] == "relu"
    assert [w.shape for w in layer.get_weights()] == [(5, 3), (3, 3), (3,)]
    again = L.SimpleRNN.from_config(config)
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x)[0], out)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(layer))(x)[1], h)
    np.testing.assert_array_equal(out, h)  # without return_sequences the output is h


def test_stateful_carries_h_between_calls(rng):
    x = rng.standard_normal((2, 6, 3)).astype(F32)
    whole = L.SimpleRNN(4, seed=1)
    stateful = L.SimpleRNN(4, seed=1, stateful=True)
    want = whole(x)
    stateful(x[:, :2])
    stateful(x[:, 2:5])
    np.testing.assert_allclose(stateful(x[:, 5:]), want, rtol=1e-6, atol=1e-6)
    stateful.reset_states()
    np.testing.assert_array_equal(stateful.states[0], 0)


def test_bidirectional_and_unknown_sizes(rng):
    inp = Input(shape=(None, 3))
    out = L.Bidirectional(L.SimpleRNN(4, return_sequences=True, seed=3), merge_mode="sum")(inp)
    assert out.shape == (None, None, 4)
    mdl = Model(inp, out)
    x = rng.standard_normal((2, 5, 3)).astype(F32)
    bi = mdl.layers[-1]
    fwd = fl.simple_rnn(x, *bi.forward_layer.get_weights(), return_sequences=True)
    bwd = fl.simple_rnn(x, *bi.backward_layer.get_weights(), return_sequences=True,
                        go_backwards=True)
    np.testing.assert_allclose(mdl(x), fwd + bwd[:, ::-1], rtol=1e-6, atol=1e-6)


def test_bad_arguments():
    x = np.ones((2, 3, 4), F32)
    k, r, b = np.ones((4, 5), F32), np.ones((5, 5), F32), np.ones(5, F32)
    with pytest.raises(ValueError, match=r"recurrent_kernel has shape \(5, 10\), expected "
                       r"\(5, 5\) \(\(units, units\)\)"):
        fl.simple_rnn(x, k, np.ones((5, 10), F32))
    with pytest.raises(ValueError, match="kernel"):
        fl.simple_rnn(x, np.ones((3, 5), F32), r)
    with pytest.raises(ValueError, match=r"bias has shape \(10,\), expected \(5,\)"):
        fl.simple_rnn(x, k, r, np.ones(10, F32))
    with pytest.raises(ValueError, match="initial_state"):
        fl.simple_rnn(x, k, r, b, initial_state=np.ones((2, 4), F32))
    with pytest.raises(ValueError, match="h0 or \\[h0\\]"):
        fl.simple_rnn(x, k, r, b, initial_state=[np.ones((2, 5), F32)] * 2)
    with pytest.raises(ValueError, match="timesteps"):
        fl.simple_rnn(np.ones((2, 4), F32), k, r)
    with pytest.raises(ValueError, match="at least one time step"):
        fl.simple_rnn(np.ones((2, 0, 4), F32), k, r)
    with pytest.raises(ValueError, match="elementwise"):
        fl.simple_rnn(x, k, r, activation="softmax")
    with pytest.raises(ValueError, match="mask"):
        fl.simple_rnn(x, k, r, mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="recurrent_activation"):
        fl.simple_rnn(x, k, r, recurrent_activation="sigmoid")
    with pytest.raises(TypeError, match=r"unrecognized keyword arguments: \['recurrent_activ"):
        L.SimpleRNN(3, recurrent_activation="sigmoid")
    with pytest.raises(ValueError, match="units"):
        L.SimpleRNN(0)
    with pytest.raises(ValueError, match="unknown activation"):
        L.SimpleRNN(3, activation="nope")
    layer = L.SimpleRNN(5)
    layer(x)
    with pytest.raises(ValueError, match="kernel"):
        layer(np.ones((2, 3, 7), F32))
