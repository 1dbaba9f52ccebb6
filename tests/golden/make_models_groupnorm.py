#!/usr/bin/env python
"""Make the Keras fixtures of GroupNormalization.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_groupnorm.py

It writes

* ``models_groupnorm.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: a small
  functional conv net and a Sequential 1D model with GroupNormalization layers, in the layout
  of make_golden_models.py. Every case name starts with ``groupnorm_``.
* ``groupnorm_layers.npz``: single GroupNormalization layers at edge shapes, in the layout
  of make_models_convpool.py's ``convpool_layers.npz`` (every ``ref`` is "keras").
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


def groupnorm_convnet():
    x = np.random.default_rng(31).standard_normal((2, 7, 6, 3)).astype(F32)
    inp = Input(shape=(7, 6, 3), name="image")
    h = layers.Conv2D(8, 3, padding="same")(inp)
    h = layers.GroupNormalization(groups=4)(h)
    h = layers.Activation("silu")(h)
    h = layers.Conv2D(6, 3, strides=2, padding="same")(h)
    h = layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False)(h)
    h = layers.Activation("relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    return Model(inp, layers.Dense(3, activation="softmax")(h)), [x]


def groupnorm_sequence():
    x = np.random.default_rng(32).standard_normal((3, 9, 4)).astype(F32)
    model = Sequential(
        [
            Input(shape=(9, 4)),
            layers.Conv1D(6, 3, padding="same"),
            layers.GroupNormalization(groups=2, scale=False),
            layers.Dense(5),
            layers.GroupNormalization(groups=1),
        ]
    )
    return model, [x]


MODELS = {"groupnorm_convnet": groupnorm_convnet, "groupnorm_sequence": groupnorm_sequence}


def _gn(groups, **kw):
    return {"groups": groups, **kw}


# name: (class name, constructor arguments, input shape)
LAYERS = {
    "gn_image_g4": ("GroupNormalization", _gn(4), (2, 5, 6, 8)),
    "gn_image_g1": ("GroupNormalization", _gn(1), (2, 3, 4, 6)),
    "gn_image_instance": ("GroupNormalization", _gn(-1), (2, 4, 3, 5)),
    "gn_image_prime": ("GroupNormalization", _gn(7, epsilon=1e-5), (1, 3, 5, 21)),
    "gn_one_pixel": ("GroupNormalization", _gn(2), (3, 1, 1, 6)),
    "gn_sequence": ("GroupNormalization", _gn(3), (2, 7, 9)),
    "gn_vector": ("GroupNormalization", _gn(4), (5, 16)),
    "gn_channels_first": ("GroupNormalization", _gn(2, axis=1), (2, 6, 3, 4)),
    "gn_axis_middle": ("GroupNormalization", _gn(3, axis=2), (2, 4, 6, 5)),
    "gn_no_affine": ("GroupNormalization", _gn(2, center=False, scale=False), (2, 4, 4, 4)),
    "gn_5d": ("GroupNormalization", _gn(2, epsilon=0.1), (1, 2, 3, 2, 4)),
}


def make_layers() -> dict[str, np.ndarray]:
    """The cases of LAYERS (keras_model_files.layer_cases, seeds from 3000)."""
    return layer_cases(LAYERS, 3000)


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_groupnorm.npz", write_models(MODELS, HERE))
    write_npz(HERE / "groupnorm_layers.npz", make_layers())


if __name__ == "__main__":
    main()
