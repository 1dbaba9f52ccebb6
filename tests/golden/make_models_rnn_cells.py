#!/usr/bin/env python
"""Make the Keras fixtures of Keras's RNN layer over its built-in cells (LSTMCell, GRUCell,
SimpleRNNCell), which fastlayers loads as the LSTM, GRU and SimpleRNN layers.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_rnn_cells.py

It writes ``models_rnn_cells.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5`` in
the layout of make_golden_models.py: three RNN layers in a row (an LSTMCell read backwards
with a hard-sigmoid recurrent activation, a GRUCell with reset_after=False, a SimpleRNNCell
returning its state), and an RNN over an LSTMCell behind a Masking layer. Every case name
starts with ``rnn_cells_``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from keras import Input, Model, layers  # noqa: E402
from keras_model_files import write_models, write_npz  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def rnn_cells_stack():
    x = np.random.default_rng(91).standard_normal((2, 6, 3)).astype(F32)
    inp = Input(shape=(6, 3), name="steps")
    h = layers.RNN(layers.LSTMCell(5, recurrent_activation="hard_sigmoid"),
                   return_sequences=True, go_backwards=True)(inp)
    h = layers.RNN(layers.GRUCell(4, reset_after=False), return_sequences=True)(h)
    out, state = layers.RNN(layers.SimpleRNNCell(3), return_state=True)(h)
    return Model(inp, [out, state]), [x]


def rnn_cells_masked():
    x = np.random.default_rng(92).standard_normal((3, 7, 4)).astype(F32)
    x[0, 5:] = 0.0  # padded steps, masked
    x[2, 2:] = 0.0
    inp = Input(shape=(7, 4), name="steps")
    h = layers.Masking(0.0)(inp)
    h = layers.RNN(layers.LSTMCell(6), return_sequences=True)(h)
    return Model(inp, layers.Dense(2)(h)), [x]


MODELS = {"rnn_cells_stack": rnn_cells_stack, "rnn_cells_masked": rnn_cells_masked}


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_rnn_cells.npz", write_models(MODELS, HERE))


if __name__ == "__main__":
    main()
