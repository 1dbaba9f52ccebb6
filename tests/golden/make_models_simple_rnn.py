#!/usr/bin/env python
"""Make the Keras fixtures of SimpleRNN.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_simple_rnn.py

It writes

* ``models_simple_rnn.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: a masked
  text model (Embedding with mask_zero, SimpleRNN, Bidirectional SimpleRNN) and a functional
  model passing one SimpleRNN's state to another, in the layout of make_golden_models.py.
  Every case name starts with ``simple_rnn_``.
* ``simple_rnn_layers.npz``: single SimpleRNN layers at edge shapes (some with a mask), in the
  layout of make_models_convpool.py's ``convpool_layers.npz`` (every ``ref`` is "keras").
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from keras import Input, Model, Sequential, layers  # noqa: E402
from keras_model_files import layer_cases, write_models, write_npz  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def simple_rnn_text():
    ids = np.array([[3, 7, 1, 9, 0, 0], [5, 2, 8, 4, 6, 1], [0, 0, 2, 2, 0, 3]], np.int32)
    model = Sequential(
        [
            Input(shape=(6,), dtype="int32"),
            layers.Embedding(10, 4, mask_zero=True),
            layers.SimpleRNN(5, return_sequences=True),
            layers.Bidirectional(layers.SimpleRNN(3, activation="relu")),
            layers.Dense(2, activation="softmax"),
        ]
    )
    return model, [ids]


def simple_rnn_state():
    x = np.random.default_rng(41).standard_normal((2, 5, 3)).astype(F32)
    inp = Input(shape=(5, 3), name="steps")
    seq, h = layers.SimpleRNN(4, return_sequences=True, return_state=True)(inp)
    last = layers.SimpleRNN(4, go_backwards=True, use_bias=False)(seq, initial_state=[h])
    out = layers.Dense(3)(last)
    return Model(inp, [out, h]), [x]


MODELS = {"simple_rnn_text": simple_rnn_text, "simple_rnn_state": simple_rnn_state}


def _rnn(units, **kw):
    return {"units": units, **kw}


_MASK = [[True, True, False, True], [False, True, True, False]]

# name: (class name, constructor arguments, input shape[, mask])
LAYERS = {
    "srnn_last": ("SimpleRNN", _rnn(4), (2, 5, 3)),
    "srnn_sequences": ("SimpleRNN", _rnn(3, return_sequences=True), (3, 7, 2)),
    "srnn_relu_backwards": (
        "SimpleRNN", _rnn(4, activation="relu", go_backwards=True, return_sequences=True),
        (2, 4, 3),
    ),
    "srnn_linear_no_bias": ("SimpleRNN", _rnn(3, activation=None, use_bias=False), (2, 3, 5)),
    "srnn_one_unit_one_step": ("SimpleRNN", _rnn(1), (1, 1, 1)),
    "srnn_prime": ("SimpleRNN", _rnn(17, return_sequences=True), (2, 13, 7)),
    "srnn_mask_sequences": ("SimpleRNN", _rnn(3, return_sequences=True), (2, 4, 3), _MASK),
    "srnn_mask_last": ("SimpleRNN", _rnn(3), (2, 4, 3), _MASK),
    "srnn_mask_backwards": (
        "SimpleRNN", _rnn(2, go_backwards=True, return_sequences=True), (2, 4, 3), _MASK
    ),
}


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_simple_rnn.npz", write_models(MODELS, HERE))
    write_npz(HERE / "simple_rnn_layers.npz", layer_cases(LAYERS, 4000))


if __name__ == "__main__":
    main()
