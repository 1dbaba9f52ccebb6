#!/usr/bin/env python
"""Make the Keras fixtures of the adaptive pooling layers (AdaptiveMaxPooling1D/2D,
AdaptiveAveragePooling1D/2D).

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_adaptive.py

It writes

* ``models_adaptive.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: a conv net
  that pools to a fixed 3 x 3 grid before its classifier (as torchvision's VGG does to 7 x 7),
  in the layout of make_golden_models.py. Every case name starts with ``adaptive_``.
* ``adaptive_layers.npz``: single layers at edge shapes (output sizes that divide the input,
  that do not, larger than the input, of 1), in the layout of make_models_convpool.py's
  ``convpool_layers.npz``; every ``ref`` is "keras".
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


def adaptive_grid_classifier():
    x = np.random.default_rng(61).standard_normal((2, 13, 11, 3)).astype(F32)
    inp = Input(shape=(13, 11, 3), name="image")
    h = layers.Conv2D(4, 3, activation="relu")(inp)
    a = layers.AdaptiveAveragePooling2D(3)(h)
    m = layers.AdaptiveMaxPooling2D((3, 3))(h)
    h = layers.Flatten()(layers.Concatenate()([a, m]))
    return Model(inp, layers.Dense(5, activation="softmax")(h)), [x]


MODELS = {"adaptive_grid_classifier": adaptive_grid_classifier}

# name: (class name, constructor arguments, input shape)
LAYERS = {
    "avg2d_divides": ("AdaptiveAveragePooling2D", {"output_size": (3, 2)}, (2, 9, 8, 3)),
    "avg2d_uneven": ("AdaptiveAveragePooling2D", {"output_size": (4, 5)}, (2, 11, 13, 2)),
    "avg2d_larger": ("AdaptiveAveragePooling2D", {"output_size": 7}, (1, 5, 3, 2)),
    "avg2d_one": ("AdaptiveAveragePooling2D", {"output_size": 1}, (2, 6, 7, 3)),
    "avg2d_channels_first": (
        "AdaptiveAveragePooling2D", {"output_size": (2, 3), "data_format": "channels_first"},
        (2, 3, 7, 10)),
    "max2d_uneven": ("AdaptiveMaxPooling2D", {"output_size": (5, 4)}, (2, 11, 13, 2)),
    "max2d_larger": ("AdaptiveMaxPooling2D", {"output_size": (6, 2)}, (1, 4, 1, 3)),
    "max2d_channels_first": (
        "AdaptiveMaxPooling2D", {"output_size": 3, "data_format": "channels_first"},
        (1, 2, 8, 5)),
    "avg1d_uneven": ("AdaptiveAveragePooling1D", {"output_size": 6}, (2, 17, 3)),
    "avg1d_one_step": ("AdaptiveAveragePooling1D", {"output_size": 4}, (2, 1, 3)),
    "max1d_uneven": ("AdaptiveMaxPooling1D", {"output_size": 5}, (3, 13, 2)),
    "max1d_channels_first": (
        "AdaptiveMaxPooling1D", {"output_size": 2, "data_format": "channels_first"},
        (2, 3, 7)),
}


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_adaptive.npz", write_models(MODELS, HERE))
    write_npz(HERE / "adaptive_layers.npz", layer_cases(LAYERS, 6000))


if __name__ == "__main__":
    main()
