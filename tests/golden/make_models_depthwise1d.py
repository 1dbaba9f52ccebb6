#!/usr/bin/env python
"""Make the Keras fixtures of DepthwiseConv1D, SeparableConv1D and the identity layers
Identity, AlphaDropout and SpatialDropout3D.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_depthwise1d.py

It writes

* ``models_depthwise1d.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: a small
  keyword-spotting-style 1D net, in the layout of make_golden_models.py (Keras's outputs with
  training=False). Every case name starts with ``depthwise1d_``.
* ``depthwise1d_layers.npz``: single layers at edge shapes, in the layout of
  make_models_convpool.py's ``convpool_layers.npz`` (every ``ref`` is "keras"; the dropout
  layers called with training=False).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import Input, Model, layers  # noqa: E402
from keras_model_files import layer_cases, write_models, write_npz  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def depthwise1d_keyword_net():
    x = np.random.default_rng(51).standard_normal((2, 23, 5)).astype(F32)
    inp = Input(shape=(23, 5), name="frames")
    h = layers.SeparableConv1D(8, 3, padding="same", activation="relu")(inp)
    h = layers.DepthwiseConv1D(3, strides=2, depth_multiplier=2, use_bias=False)(h)
    h = layers.AlphaDropout(0.1)(h)
    h = layers.Identity()(h)
    h = layers.SeparableConv1D(6, 2, dilation_rate=2, activation="gelu")(h)
    h = layers.GlobalAveragePooling1D()(h)
    return Model(inp, layers.Dense(4, activation="softmax")(h)), [x]


MODELS = {"depthwise1d_keyword_net": depthwise1d_keyword_net}

# name: (class name, constructor arguments, input shape)
LAYERS = {
    "dw1d_valid": ("DepthwiseConv1D", {"kernel_size": 3}, (2, 9, 4)),
    "dw1d_same_stride": (
        "DepthwiseConv1D", {"kernel_size": 3, "strides": 2, "padding": "same",
                            "depth_multiplier": 2}, (2, 10, 3)),
    "dw1d_dilated": (
        "DepthwiseConv1D", {"kernel_size": 2, "dilation_rate": 3, "padding": "same",
                            "activation": "relu"}, (1, 7, 5)),
    "dw1d_channels_first": (
        "DepthwiseConv1D", {"kernel_size": 4, "data_format": "channels_first",
                            "use_bias": False}, (2, 3, 11)),
    "dw1d_kernel_is_input": ("DepthwiseConv1D", {"kernel_size": 5}, (3, 5, 2)),
    "dw1d_prime_channels": (
        "DepthwiseConv1D", {"kernel_size": 3, "padding": "same", "depth_multiplier": 3},
        (2, 13, 17)),
    "sep1d_valid": ("SeparableConv1D", {"filters": 6, "kernel_size": 3}, (2, 9, 4)),
    "sep1d_same_stride": (
        "SeparableConv1D", {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same",
                            "depth_multiplier": 2, "activation": "tanh"}, (2, 10, 3)),
    "sep1d_channels_first": (
        "SeparableConv1D", {"filters": 4, "kernel_size": 2, "data_format": "channels_first",
                            "dilation_rate": 2, "use_bias": False}, (2, 3, 8)),
    "sep1d_one_step": ("SeparableConv1D", {"filters": 3, "kernel_size": 1}, (4, 1, 2)),
    "identity": ("Identity", {}, (2, 3, 4)),
    "alpha_dropout": ("AlphaDropout", {"rate": 0.3}, (3, 5)),
    "spatial_dropout_3d": ("SpatialDropout3D", {"rate": 0.4}, (1, 2, 3, 2, 4)),
}


def _training_false(cls, cfg, shape, x):
    """The dropout layers' reference: Keras's call with training=False; None (the plain call)
    for the others."""
    if "Dropout" not in cls:
        return None
    layer = getattr(keras.layers, cls)(**cfg)
    return keras.ops.convert_to_numpy(layer(x, training=False)).astype(F32), "keras"


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_depthwise1d.npz", write_models(MODELS, HERE, training=False))
    write_npz(HERE / "depthwise1d_layers.npz", layer_cases(LAYERS, 5000, _training_false))


if __name__ == "__main__":
    main()
