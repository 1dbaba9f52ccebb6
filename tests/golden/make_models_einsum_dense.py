#!/usr/bin/env python
"""Make the Keras fixtures of EinsumDense.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_einsum_dense.py

It writes

* ``models_einsum_dense.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: a
  small attention-style block whose projections are EinsumDense layers, in the layout of
  make_golden_models.py. Every case name starts with ``einsum_dense_``.
* ``einsum_dense_layers.npz``: single layers, one per kind of equation (plain dense, the
  multi-head projections in and out, both ellipses, contractions that are not a matrix
  product after flattening, biases on some axes only, axis activations), in the layout of
  make_models_convpool.py's ``convpool_layers.npz``; every ``ref`` is "keras".
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from keras import Input, Model, layers  # noqa: E402
from keras_model_files import layer_cases, write_models, write_npz  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def einsum_dense_block():
    x = np.random.default_rng(71).standard_normal((2, 6, 8)).astype(F32)
    inp = Input(shape=(6, 8), name="tokens")
    h = layers.EinsumDense("abc,cd->abd", (None, 16), bias_axes="d", activation="relu")(inp)
    heads = layers.EinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de")(h)
    merged = layers.EinsumDense("abcd,cde->abe", (None, 8), bias_axes="e")(heads)
    h = layers.LayerNormalization()(layers.Add()([inp, merged]))
    out = layers.EinsumDense("...b,bc->...c", 3, activation="softmax")(h)
    return Model(inp, out), [x]


MODELS = {"einsum_dense_block": einsum_dense_block}


def _ed(equation, output_shape, **kw):
    return {"equation": equation, "output_shape": output_shape, **kw}


# name: (class name, constructor arguments, input shape)
LAYERS = {
    "ed_dense_2d": ("EinsumDense", _ed("ab,bc->ac", 7, bias_axes="c"), (3, 5)),
    "ed_dense_no_bias": ("EinsumDense", _ed("ab,bc->ac", 1), (4, 17)),
    "ed_dense_3d_relu": (
        "EinsumDense", _ed("abc,cd->abd", (None, 6), bias_axes="d", activation="relu"),
        (2, 4, 5)),
    "ed_heads_in": ("EinsumDense", _ed("abc,cde->abde", (None, 3, 4), bias_axes="de"),
                    (2, 5, 6)),
    "ed_heads_out": ("EinsumDense", _ed("abcd,cde->abe", (None, 7), bias_axes="e"),
                     (2, 5, 3, 4)),
    "ed_heads_in_bias_last": (
        "EinsumDense", _ed("abc,cde->abde", (None, 3, 4), bias_axes="e"), (2, 5, 6)),
    "ed_left_ellipsis": ("EinsumDense", _ed("...b,bc->...c", 7, bias_axes="c"), (2, 3, 6)),
    "ed_left_ellipsis_rank2": (
        "EinsumDense", _ed("...b,bc->...c", 4, activation="tanh"), (3, 6)),
    "ed_right_ellipsis": (
        "EinsumDense", _ed("ab...,bc->ac...", (7,), bias_axes="c"), (2, 6, 3, 4)),
    "ed_bias_on_free_axis": (
        "EinsumDense", _ed("abc,cd->abd", (4, 6), bias_axes="b"), (2, 4, 5)),
    "ed_batched_kernel": ("EinsumDense", _ed("abc,bcd->abd", (4, 3), bias_axes="d"),
                          (2, 4, 5)),
    "ed_transposed_kernel": ("EinsumDense", _ed("abc,dc->abd", (None, 3)), (2, 4, 5)),
    "ed_permuted_output": ("EinsumDense", _ed("abc,cd->adb", (6, 4), bias_axes="d"),
                           (2, 4, 5)),
    "ed_softmax_heads": (
        "EinsumDense", _ed("abc,cde->abde", (None, 2, 3), bias_axes="e",
                           activation="softmax"), (2, 4, 5)),
    "ed_gelu_heads": (
        "EinsumDense", _ed("abc,cde->abde", (None, 2, 3), bias_axes="de", activation="gelu"),
        (2, 4, 5)),
}


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_einsum_dense.npz", write_models(MODELS, HERE))
    write_npz(HERE / "einsum_dense_layers.npz", layer_cases(LAYERS, 7000))


if __name__ == "__main__":
    main()
