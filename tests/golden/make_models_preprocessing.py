#!/usr/bin/env python
"""Make the Keras fixtures of the image preprocessing layers (Resizing, CenterCrop, the
random augmentations) and of RMSNormalization and UnitNormalization.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_preprocessing.py

It writes

* ``models_preprocessing.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: an
  image classifier that rescales, augments and resizes inside the model, and a sequence
  model with RMSNormalization and UnitNormalization, in the layout of make_golden_models.py
  (Keras's outputs with training=False, what predict gives). Every case name starts with
  ``preprocessing_``.
* ``preprocessing_layers.npz``: single layers at edge shapes, in the layout of
  make_models_convpool.py's ``convpool_layers.npz``; every ``ref`` is "keras" (the Keras
  layer called with training=False).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import Input, Model, Sequential, layers  # noqa: E402
from keras_model_files import layer_cases, write_models, write_npz  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def preprocessing_classifier():
    x = np.random.default_rng(41).uniform(0, 255, (2, 20, 24, 3)).astype(F32)
    inp = Input(shape=(20, 24, 3), name="image")
    h = layers.Rescaling(1.0 / 255)(inp)
    h = layers.RandomFlip("horizontal")(h)
    h = layers.RandomRotation(0.1)(h)
    h = layers.RandomZoom(0.2, 0.1)(h)
    h = layers.RandomContrast(0.2)(h)
    h = layers.Resizing(16, 16, crop_to_aspect_ratio=True)(h)
    h = layers.Conv2D(6, 3, activation="relu")(h)
    h = layers.CenterCrop(10, 12)(h)
    h = layers.GlobalAveragePooling2D()(h)
    return Model(inp, layers.Dense(3, activation="softmax")(h)), [x]


def preprocessing_sequence():
    x = np.random.default_rng(42).standard_normal((3, 7, 6)).astype(F32)
    model = Sequential(
        [
            Input(shape=(7, 6)),
            layers.Dense(8),
            layers.RMSNormalization(),
            layers.Dense(5),
            layers.RMSNormalization(axis=[-2, -1], epsilon=1e-3),
            layers.UnitNormalization(),
        ]
    )
    return model, [x]


MODELS = {
    "preprocessing_classifier": preprocessing_classifier,
    "preprocessing_sequence": preprocessing_sequence,
}

# name: (class name, constructor arguments, input shape)
LAYERS = {
    "resize_bilinear_down": ("Resizing", {"height": 8, "width": 9}, (2, 17, 19, 3)),
    "resize_bilinear_up": ("Resizing", {"height": 11, "width": 16}, (2, 5, 7, 3)),
    "resize_bilinear_mixed": ("Resizing", {"height": 3, "width": 29}, (1, 13, 11, 2)),
    "resize_nearest_down": (
        "Resizing", {"height": 7, "width": 5, "interpolation": "nearest"}, (2, 16, 13, 3)),
    "resize_nearest_up": (
        "Resizing", {"height": 13, "width": 10, "interpolation": "nearest"}, (1, 4, 3, 2)),
    "resize_antialias_down": (
        "Resizing", {"height": 5, "width": 7, "antialias": True}, (2, 23, 31, 3)),
    "resize_antialias_up": (
        "Resizing", {"height": 9, "width": 12, "antialias": True}, (1, 4, 5, 2)),
    "resize_crop_aspect": (
        "Resizing", {"height": 8, "width": 8, "crop_to_aspect_ratio": True}, (2, 12, 20, 3)),
    "resize_pad_aspect_wide": (
        "Resizing", {"height": 6, "width": 12, "pad_to_aspect_ratio": True,
                     "fill_value": 0.5}, (1, 10, 10, 2)),
    "resize_pad_aspect_tall": (
        "Resizing", {"height": 12, "width": 5, "pad_to_aspect_ratio": True}, (1, 9, 8, 2)),
    "resize_channels_first": (
        "Resizing", {"height": 6, "width": 4, "data_format": "channels_first"}, (2, 3, 9, 7)),
    "resize_single_image": ("Resizing", {"height": 5, "width": 6}, (11, 9, 3)),
    "resize_to_one_pixel": ("Resizing", {"height": 1, "width": 1}, (2, 6, 5, 3)),
    "resize_from_one_pixel": ("Resizing", {"height": 5, "width": 4}, (2, 1, 1, 3)),
    "resize_same_size": ("Resizing", {"height": 7, "width": 6}, (1, 7, 6, 4)),
    "crop_center": ("CenterCrop", {"height": 5, "width": 6}, (2, 12, 11, 3)),
    "crop_center_exact": ("CenterCrop", {"height": 12, "width": 11}, (1, 12, 11, 2)),
    "crop_smaller_resizes": ("CenterCrop", {"height": 9, "width": 14}, (2, 12, 10, 3)),
    "crop_channels_first": (
        "CenterCrop", {"height": 4, "width": 3, "data_format": "channels_first"},
        (2, 3, 9, 8)),
    "crop_single_image": ("CenterCrop", {"height": 3, "width": 4}, (7, 8, 2)),
    "rms_last": ("RMSNormalization", {}, (2, 5, 8)),
    "rms_two_axes": ("RMSNormalization", {"axis": [-2, -1], "epsilon": 1e-3}, (3, 4, 5)),
    "rms_vector_prime": ("RMSNormalization", {"epsilon": 1e-5}, (3, 17)),
    "rms_one_feature": ("RMSNormalization", {}, (4, 1)),
    "unit_last": ("UnitNormalization", {}, (2, 5, 8)),
    "unit_two_axes": ("UnitNormalization", {"axis": [1, 2]}, (2, 3, 4, 5)),
    "unit_one_feature": ("UnitNormalization", {}, (5, 1)),
    "flip_horizontal": ("RandomFlip", {"mode": "horizontal"}, (2, 6, 5, 3)),
    "rotation": ("RandomRotation", {"factor": 0.2, "fill_mode": "constant"}, (2, 6, 5, 3)),
    "zoom": ("RandomZoom", {"height_factor": (-0.2, 0.3)}, (2, 6, 5, 3)),
    "translation": (
        "RandomTranslation", {"height_factor": 0.1, "width_factor": 0.2}, (6, 5, 3)),
    "contrast": ("RandomContrast", {"factor": 0.3}, (2, 6, 5, 3)),
    "brightness": ("RandomBrightness", {"factor": 0.2, "value_range": (0, 1)}, (2, 6, 5, 3)),
    "grayscale": ("RandomGrayscale", {"factor": 0.7}, (2, 6, 5, 3)),
    "hue": ("RandomHue", {"factor": 0.2}, (2, 6, 5, 3)),
    "erasing": ("RandomErasing", {"factor": 0.5}, (2, 6, 5, 3)),
    "mixup": ("MixUp", {"alpha": 0.3}, (2, 6, 5, 3)),
}


def _training_false(cls, cfg, shape, x):
    """The augmentation layers' reference: Keras's call with training=False (what predict and
    every call of a loaded model make); None (the plain call) for the others."""
    if not cls.startswith(("Random", "Mix")):
        return None
    layer = getattr(keras.layers, cls)(**cfg)
    return keras.ops.convert_to_numpy(layer(x, training=False)).astype(F32), "keras"


def make_layers() -> dict[str, np.ndarray]:
    """The cases of LAYERS (keras_model_files.layer_cases, seeds from 4000)."""
    return layer_cases(LAYERS, 4000, reference=_training_false)


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_preprocessing.npz", write_models(MODELS, HERE, training=False))
    write_npz(HERE / "preprocessing_layers.npz", make_layers())


if __name__ == "__main__":
    main()
