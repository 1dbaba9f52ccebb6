#!/usr/bin/env python
"""Make the Keras fixtures of the decoder topic: Conv2DTranspose, Conv1DTranspose,
UpSampling1D/2D.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_decoder.py

It writes

* ``models_decoder.npz`` and ``models/<case>.keras`` / ``.h5`` (Keras 3's legacy writer) /
  ``.weights.h5``: whole models (a small U-Net with both upsampling layers, and a
  Sequential autoencoder), in the layout of make_golden_models.py: ``<case>.weights.<i>``
  (Keras get_weights order, seeded uniform values in [-0.5, 0.5]), ``<case>.inputs.<i>``,
  ``<case>.out.<i>``. Every case name starts with ``decoder_``.
* ``decoder_layers.npz``: single layers at edge shapes, in the layout of
  make_models_convpool.py's ``convpool_layers.npz`` (every ``ref`` is "keras").

Keras 3.15's Conv2DTranspose gives the same outputs on its torch and JAX backends for every
case here (checked when these files were made: kernels 1-5, strides 1-3, both paddings,
output_padding None/0/1/2, dilation 1-2).
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


# ------------------------------------------------------------------------------- models


def decoder_unet():
    # Functional: two levels down, then up once by Conv2DTranspose and once by bilinear
    # UpSampling2D, with skip connections.
    x = np.random.default_rng(21).standard_normal((2, 8, 12, 3)).astype(F32)
    inp = Input(shape=(8, 12, 3), name="image")
    d1 = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    p1 = layers.MaxPooling2D(2)(d1)
    d2 = layers.Conv2D(6, 3, padding="same", activation="relu")(p1)
    p2 = layers.MaxPooling2D(2)(d2)
    b = layers.Conv2D(8, 3, padding="same", activation="relu")(p2)
    u2 = layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(b)
    c2 = layers.Concatenate()([u2, d2])
    u1 = layers.UpSampling2D(2, interpolation="bilinear")(c2)
    c1 = layers.Concatenate()([u1, d1])
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(c1)
    out = layers.Conv2D(2, 1, activation="softmax")(h)
    return Model(inp, out), [x]


def decoder_autoencoder():
    # Sequential: a dense bottleneck, then Conv2DTranspose with "valid" padding, an
    # output_padding, a stride-1 dilated one, nearest UpSampling2D and UpSampling1D at the end.
    x = np.random.default_rng(22).standard_normal((3, 6, 6, 2)).astype(F32)
    model = Sequential(
        [
            Input(shape=(6, 6, 2)),
            layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(3 * 3 * 5, activation="relu"),
            layers.Reshape((3, 3, 5)),
            layers.Conv2DTranspose(4, 3, strides=2, output_padding=1, activation="tanh"),
            layers.Conv2DTranspose(3, 2, dilation_rate=2, padding="same"),
            layers.UpSampling2D((1, 2)),
            layers.Conv2DTranspose(2, (2, 3), strides=(2, 1), padding="valid", use_bias=False),
            layers.Reshape((-1, 2)),
            layers.UpSampling1D(2),
        ]
    )
    return model, [x]


MODELS = {f.__name__: f for f in (decoder_unet, decoder_autoencoder)}


# ------------------------------------------------------------------------------- layers

def _ct(filters, kernel, **kw):
    return {"filters": filters, "kernel_size": kernel, **kw}


# name: (class name, constructor arguments, input shape)
LAYERS = {
    "ct_valid": ("Conv2DTranspose", _ct(4, 3), (2, 5, 4, 3)),
    "ct_same_s2": ("Conv2DTranspose", _ct(3, 3, strides=2, padding="same"), (2, 5, 7, 2)),
    "ct_same_s2_k2": ("Conv2DTranspose", _ct(3, 2, strides=2, padding="same"), (1, 3, 4, 2)),
    "ct_valid_s2_k2": ("Conv2DTranspose", _ct(5, 2, strides=2), (2, 4, 3, 3)),
    "ct_valid_k1_s3": ("Conv2DTranspose", _ct(2, 1, strides=3), (1, 3, 2, 4)),
    "ct_same_k4_s3": ("Conv2DTranspose", _ct(2, 4, strides=3, padding="same"), (1, 4, 5, 3)),
    "ct_outpad_valid": (
        "Conv2DTranspose", _ct(3, 3, strides=2, output_padding=1), (1, 4, 5, 2)
    ),
    "ct_outpad_same": (
        "Conv2DTranspose", _ct(3, 3, strides=(2, 3), padding="same", output_padding=(1, 2)),
        (2, 3, 4, 2),
    ),
    "ct_outpad0_same_even": (
        "Conv2DTranspose", _ct(2, 4, strides=2, padding="same", output_padding=0), (1, 5, 3, 2)
    ),
    "ct_dilated": ("Conv2DTranspose", _ct(3, 3, dilation_rate=2), (1, 4, 5, 2)),
    "ct_dilated_same": (
        "Conv2DTranspose", _ct(2, (2, 3), dilation_rate=(2, 1), padding="same"), (1, 5, 4, 3)
    ),
    "ct_rect_kernel": ("Conv2DTranspose", _ct(4, (1, 5), strides=(3, 1)), (1, 2, 3, 2)),
    "ct_1x1_input": ("Conv2DTranspose", _ct(3, 3, strides=2, padding="same"), (2, 1, 1, 5)),
    "ct_1ch_prime": ("Conv2DTranspose", _ct(1, 5, strides=2), (1, 7, 11, 1)),
    "ct_17ch": ("Conv2DTranspose", _ct(17, 3, strides=2, padding="same"), (1, 3, 5, 16)),
    "ct_relu_nobias": (
        "Conv2DTranspose", _ct(4, 3, activation="relu", use_bias=False), (2, 3, 3, 2)
    ),
    "ct_softmax": ("Conv2DTranspose", _ct(5, 2, strides=2, activation="softmax"), (1, 2, 3, 2)),
    "ct_channels_first": (
        "Conv2DTranspose", _ct(3, 3, strides=2, padding="same", data_format="channels_first"),
        (2, 2, 4, 5),
    ),
    "ct_channels_first_softmax": (
        "Conv2DTranspose",
        _ct(3, 2, strides=2, data_format="channels_first", activation="softmax"),
        (1, 2, 3, 4),
    ),
    "conv_channels_first_softmax": (
        "Conv2D",
        {"filters": 3, "kernel_size": 2, "data_format": "channels_first", "activation": "softmax"},
        (1, 2, 4, 5),
    ),
    "ct1_valid": ("Conv1DTranspose", _ct(3, 3), (2, 7, 2)),
    "ct1_same_s2": ("Conv1DTranspose", _ct(4, 3, strides=2, padding="same"), (2, 5, 3)),
    "ct1_outpad_s3": ("Conv1DTranspose", _ct(2, 4, strides=3, output_padding=2), (1, 4, 3)),
    "ct1_dilated_same": (
        "Conv1DTranspose", _ct(3, 3, dilation_rate=2, padding="same", activation="relu"), (1, 6, 2)
    ),
    "ct1_len1_k1": ("Conv1DTranspose", _ct(5, 1, strides=2), (3, 1, 4)),
    "ct1_channels_first_softmax": (
        "Conv1DTranspose",
        _ct(3, 2, strides=2, data_format="channels_first", activation="softmax"),
        (2, 4, 5),
    ),
    "up2_default": ("UpSampling2D", {}, (2, 3, 4, 2)),
    "up2_rect": ("UpSampling2D", {"size": (3, 1)}, (1, 2, 5, 3)),
    "up2_1x1": ("UpSampling2D", {"size": 4}, (2, 1, 1, 1)),
    "up2_channels_first": ("UpSampling2D", {"size": (2, 3), "data_format": "channels_first"},
                           (1, 3, 2, 4)),
    "up2_bilinear": ("UpSampling2D", {"interpolation": "bilinear"}, (2, 4, 5, 3)),
    "up2_bilinear_rect": (
        "UpSampling2D", {"size": (3, 5), "interpolation": "bilinear"}, (1, 3, 2, 2)
    ),
    "up2_bilinear_1px": ("UpSampling2D", {"size": 3, "interpolation": "bilinear"}, (1, 1, 2, 2)),
    "up2_bilinear_cf": (
        "UpSampling2D",
        {"size": (2, 4), "interpolation": "bilinear", "data_format": "channels_first"},
        (2, 2, 3, 4),
    ),
    "up1_default": ("UpSampling1D", {}, (2, 5, 3)),
    "up1_size3_len1": ("UpSampling1D", {"size": 3}, (3, 1, 2)),
}


def make_layers() -> dict[str, np.ndarray]:
    """The cases of LAYERS (keras_model_files.layer_cases, seeds from 2000)."""
    return layer_cases(LAYERS, 2000)


def make_models() -> dict[str, np.ndarray]:
    return write_models(MODELS, HERE)


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format and conv-transpose notices
    write_npz(HERE / "models_decoder.npz", make_models())
    write_npz(HERE / "decoder_layers.npz", make_layers())


if __name__ == "__main__":
    main()
