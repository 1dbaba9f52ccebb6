"""The seed article's Keras examples, written with fastlayers' functional API.

The article builds each model with random Keras initial weights; here the weights
are drawn from a seeded rng, so the checks are the shapes the article prints, the
relations between outputs, and the dense and conv values against the float64 loops of
tests/naive_dense_conv.py (the ops are checked against Keras in test_golden.py).
"""

from __future__ import annotations

import naive_dense_conv as naive
import numpy as np
import pytest
from conftest import assert_close, backends_for, run_on

import fastlayers as fl


@pytest.fixture
def weights():
    rng = np.random.default_rng(42)

    def make(*shape):
        return rng.uniform(-0.3, 0.3, size=shape).astype(np.float32)

    return make


@pytest.mark.parametrize("backend", backends_for("dense"))
def test_dense_on_images_then_flatten(backend, weights):
    # 4 samples, 32x32 with 3 channels; Dense(8, relu) acts on the last axis only. The values
    # against the float64 loops of tests/naive_dense_conv.py (8192 inputs to the last Dense).
    x = np.random.default_rng(42).random((4, 32, 32, 3))
    k1, b1, k2, b2 = weights(3, 8), weights(8), weights(32 * 32 * 8, 2), weights(2)
    hidden = run_on(backend, fl.dense, x, k1, b1, activation="relu")
    assert hidden.shape == (4, 32, 32, 8) and hidden.min() >= 0
    assert_close(hidden, naive.dense(x, k1, b1, "relu"), k=3)
    flat = fl.flatten(hidden)
    assert flat.shape == (4, 32 * 32 * 8)
    np.testing.assert_array_equal(flat, naive.flatten(hidden))
    out = run_on(backend, fl.dense, flat, k2, b2)
    assert out.shape == (4, 2)
    assert_close(out, naive.dense(flat, k2, b2), k=8192, magnitude=0.3)


@pytest.mark.parametrize("backend", backends_for("conv2d"))
def test_conv_then_flatten_then_dense(backend, weights):
    x = np.random.default_rng(42).random((4, 32, 32, 3))
    k1, b1, k2, b2 = weights(3, 3, 3, 8), weights(8), weights(30 * 30 * 8, 2), weights(2)
    conv = run_on(backend, fl.conv2d, x, k1, b1, activation="relu")
    assert conv.shape == (4, 30, 30, 8)
    assert_close(conv, naive.conv2d(x, k1, b1, activation_name="relu"), k=27)
    out = run_on(backend, fl.dense, fl.flatten(conv), k2, b2)
    assert out.shape == (4, 2)
    assert_close(out, naive.dense(naive.flatten(conv), k2, b2), k=7200, magnitude=0.3)


def _seed_sequence():
    # [[0, 0], [2, 20], [4, 40], [6, 60], [8, 80]]: a (batch, timesteps, features) array
    x = np.zeros(10).astype(int)
    x[0::2] = np.arange(0, 10, 2)
    x[1::2] = np.arange(0, 100, 20)
    return x.reshape(1, 5, 2)


@pytest.mark.parametrize("backend", backends_for("lstm"))
def test_lstm_sequences_and_states(backend, weights):
    x = _seed_sequence()
    assert x.shape == (1, 5, 2)
    k, rk, b = weights(2, 32), weights(8, 32), weights(32)
    seq = run_on(backend, fl.lstm, x, k, rk, b, return_sequences=True)
    assert seq.shape == (1, 5, 8)
    out, h, c = run_on(backend, fl.lstm, x, k, rk, b, return_state=True)
    assert out.shape == h.shape == c.shape == (1, 8)
    assert_close(out, seq[:, -1])  # the last output is the last step of the sequence
    assert_close(h, out)
    assert np.all(np.abs(out) < 1)  # h = o * tanh(c) is in (-1, 1)
    y = run_on(backend, fl.dense, out, weights(8, 2), weights(2))
    assert y.shape == (1, 2)


@pytest.mark.parametrize("backend", backends_for("scaled_dot_product_attention"))
def test_single_attention_head(backend, weights):
    rng = np.random.default_rng(42)
    qry = rng.random((4, 16, 32)).astype("float32")
    key = rng.random((4, 1, 32)).astype("float32")
    values = rng.random((4, 1, 32)).astype("float32")
    q = fl.dense(qry, weights(32, 4), weights(4))
    k = fl.dense(key, weights(32, 4), weights(4))
    v = fl.dense(values, weights(32, 4), weights(4))
    score = q @ np.swapaxes(k, 1, 2)
    attention = fl.softmax(score, axis=-1)
    assert score.shape == attention.shape == (4, 16, 1)
    np.testing.assert_array_equal(attention, 1.0)  # one key: all weight on it
    output = attention @ v
    assert output.shape == (4, 16, 4)
    # The same head, unscaled, in one call:
    out = run_on(backend, fl.scaled_dot_product_attention, q, k, v, scale=1.0)
    assert_close(out, output, k=1, magnitude=float(np.abs(v).max()))


# The same examples with the Keras-like layer classes, as the article writes them.


def test_article_models_with_layer_classes():
    from fastlayers.layers import LSTM, Conv2D, Dense, Flatten

    x = np.random.default_rng(42).random((4, 32, 32, 3))
    hidden = Dense(8, activation="relu", seed=42)(x)
    assert hidden.shape == (4, 32, 32, 8)
    conv = Conv2D(8, (3, 3), activation="relu", seed=42)(x)
    assert conv.shape == (4, 30, 30, 8)
    out = Dense(2, seed=42)(Flatten()(conv))
    assert out.shape == (4, 2)

    seq = _seed_sequence()
    lstm_seq = LSTM(8, return_sequences=True, seed=42)(seq)
    assert lstm_seq.shape == (1, 5, 8)
    lstm, hstate, cstate = LSTM(8, return_sequences=False, return_state=True, seed=42)(seq)
    assert lstm.shape == hstate.shape == cstate.shape == (1, 8)
    assert Dense(2, seed=42)(lstm).shape == (1, 2)


def test_article_attention_head_with_layer_classes():
    from fastlayers.layers import Dense

    rng = np.random.default_rng(0)
    qry = rng.random((4, 16, 32)).astype("float32")
    key = rng.random((4, 1, 32)).astype("float32")
    values = rng.random((4, 1, 32)).astype("float32")
    q = Dense(4, activation="linear", seed=1)(qry)
    k = Dense(4, activation="linear", seed=2)(key)
    v = Dense(4, activation="linear", seed=3)(values)
    score = q @ np.swapaxes(k, 1, 2)
    attention = fl.softmax(score, axis=-1)
    output = attention @ v
    assert (score.shape, attention.shape, output.shape) == ((4, 16, 1), (4, 16, 1), (4, 16, 4))
