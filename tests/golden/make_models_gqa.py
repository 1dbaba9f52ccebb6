#!/usr/bin/env python
"""Make the Keras fixtures of GroupQueryAttention (Keras's GroupedQueryAttention).

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_gqa.py

It writes ``models_gqa.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5`` in the
layout of make_golden_models.py: a causal self-attention decoder block with 6 query heads on
2 key/value heads, and a cross-attention with one shared key/value head (multi-query), a
separate key input, an attention mask and no biases. Every case name starts with ``gqa_``.
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


def gqa_decoder_block():
    x = np.random.default_rng(81).standard_normal((2, 7, 12)).astype(F32)
    inp = Input(shape=(7, 12), name="tokens")
    att = layers.GroupQueryAttention(head_dim=4, num_query_heads=6, num_key_value_heads=2)
    h = layers.Add()([inp, att(inp, inp, use_causal_mask=True)])
    h = layers.LayerNormalization()(h)
    return Model(inp, layers.Dense(5)(h)), [x]


def gqa_cross_multi_query():
    rng = np.random.default_rng(82)
    q = rng.standard_normal((2, 5, 8)).astype(F32)
    v = rng.standard_normal((2, 9, 8)).astype(F32)
    k = rng.standard_normal((2, 9, 10)).astype(F32)
    mask = (rng.random((2, 5, 9)) > 0.3).astype(F32)
    qi = Input(shape=(5, 8), name="query")
    vi = Input(shape=(9, 8), name="value")
    ki = Input(shape=(9, 10), name="key")
    mi = Input(shape=(5, 9), name="mask")
    att = layers.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=1,
                                     use_bias=False)
    out, scores = att(qi, vi, ki, attention_mask=mi, return_attention_scores=True)
    return Model([qi, vi, ki, mi], [out, scores]), [q, v, k, mask]


MODELS = {"gqa_decoder_block": gqa_decoder_block, "gqa_cross_multi_query": gqa_cross_multi_query}


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_gqa.npz", write_models(MODELS, HERE))


if __name__ == "__main__":
    main()
