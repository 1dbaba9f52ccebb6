#!/usr/bin/env python
"""Make the Keras fixtures of the 3D layers (Conv3D, Conv3DTranspose, MaxPooling3D,
AveragePooling3D, GlobalMax/AveragePooling3D, ZeroPadding3D, Cropping3D, UpSampling3D).

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_volumes.py

It writes

* ``models_volumes.npz`` and ``models/<case>.keras`` / ``.h5`` / ``.weights.h5``: a small
  video / volume classifier and a 3D U-Net-like block, in the layout of
  make_golden_models.py. Every case name starts with ``volume_``.
* ``volume_layers.npz``: single layers at edge shapes (a depth of 1, primes, stride and
  dilation on each axis, groups, odd "same" padding, channels first), in the layout of
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


def volume_video_classifier():
    x = np.random.default_rng(71).standard_normal((2, 6, 12, 11, 3)).astype(F32)
    inp = Input(shape=(6, 12, 11, 3), name="clip")
    h = layers.Conv3D(8, 3, padding="same", activation="relu")(inp)
    h = layers.MaxPooling3D((1, 2, 2))(h)
    h = layers.Conv3D(8, (3, 3, 3), strides=(2, 1, 1), activation="relu", groups=2)(h)
    h = layers.AveragePooling3D(2, padding="same")(h)
    a = layers.GlobalAveragePooling3D()(h)
    m = layers.GlobalMaxPooling3D()(h)
    h = layers.Concatenate()([a, m])
    return Model(inp, layers.Dense(4, activation="softmax")(h)), [x]


def volume_unet_block():
    x = np.random.default_rng(72).standard_normal((1, 8, 8, 8, 2)).astype(F32)
    inp = Input(shape=(8, 8, 8, 2), name="volume")
    d = layers.Conv3D(4, 3, padding="same", activation="relu")(inp)
    p = layers.MaxPooling3D(2)(d)
    b = layers.Conv3D(4, 3, padding="same", activation="relu", dilation_rate=2)(p)
    u = layers.UpSampling3D(2)(b)
    t = layers.Conv3DTranspose(3, 2, strides=2, activation="relu")(b)
    h = layers.Concatenate()([u, t, d])
    h = layers.ZeroPadding3D(((1, 0), (0, 1), (1, 1)))(h)
    h = layers.Cropping3D(((1, 0), (0, 1), (1, 1)))(h)
    return Model(inp, layers.Conv3D(1, 1, activation="sigmoid")(h)), [x]


MODELS = {"volume_video_classifier": volume_video_classifier,
          "volume_unet_block": volume_unet_block}

CF = {"data_format": "channels_first"}
# name: (class name, constructor arguments, input shape)
LAYERS = {
    "conv3d_valid": ("Conv3D", {"filters": 3, "kernel_size": 3}, (2, 5, 6, 7, 4)),
    "conv3d_same_strides": (
        "Conv3D", {"filters": 5, "kernel_size": (2, 3, 1), "strides": (2, 1, 3),
                   "padding": "same"}, (2, 7, 5, 8, 3)),
    "conv3d_dilated": (
        "Conv3D", {"filters": 2, "kernel_size": (3, 2, 2), "dilation_rate": (2, 1, 3),
                   "padding": "same", "activation": "relu"}, (1, 7, 4, 9, 2)),
    "conv3d_groups": (
        "Conv3D", {"filters": 6, "kernel_size": 2, "groups": 3, "use_bias": False},
        (2, 3, 4, 5, 6)),
    "conv3d_depth_one": ("Conv3D", {"filters": 4, "kernel_size": (1, 3, 3)}, (2, 1, 5, 5, 3)),
    "conv3d_channels_first": (
        "Conv3D", {"filters": 3, "kernel_size": 3, "padding": "same", **CF}, (2, 2, 4, 5, 3)),
    "conv3d_softmax_cf": (
        "Conv3D", {"filters": 3, "kernel_size": 1, "activation": "softmax", **CF},
        (1, 2, 3, 4, 5)),
    "convT3d_valid": ("Conv3DTranspose", {"filters": 3, "kernel_size": 3}, (2, 3, 4, 5, 3)),
    "convT3d_same_strides": (
        "Conv3DTranspose", {"filters": 4, "kernel_size": (2, 3, 1), "strides": (2, 1, 3),
                            "padding": "same"}, (2, 3, 4, 5, 2)),
    "convT3d_output_padding": (
        "Conv3DTranspose", {"filters": 2, "kernel_size": (3, 2, 2), "strides": 2,
                            "output_padding": (1, 0, 1)}, (1, 3, 4, 5, 3)),
    "convT3d_dilated": (
        "Conv3DTranspose", {"filters": 3, "kernel_size": 2, "dilation_rate": (2, 1, 2),
                            "padding": "same", "activation": "relu"}, (2, 3, 4, 5, 2)),
    "convT3d_stride_over_kernel": (
        "Conv3DTranspose", {"filters": 2, "kernel_size": 1, "strides": 3}, (1, 2, 2, 3, 2)),
    "convT3d_channels_first": (
        "Conv3DTranspose", {"filters": 2, "kernel_size": 3, "strides": (1, 2, 2),
                            "padding": "same", **CF}, (1, 3, 2, 4, 5)),
    "maxpool3d_valid": ("MaxPooling3D", {"pool_size": 2}, (2, 5, 6, 7, 3)),
    "maxpool3d_same": (
        "MaxPooling3D", {"pool_size": (3, 2, 3), "strides": (2, 1, 2), "padding": "same"},
        (2, 5, 4, 7, 2)),
    "maxpool3d_cf": ("MaxPooling3D", {"pool_size": (1, 2, 2), **CF}, (1, 3, 2, 4, 6)),
    "avgpool3d_valid": ("AveragePooling3D", {"pool_size": (2, 3, 2)}, (2, 4, 7, 5, 3)),
    # symmetric "same" padding on every axis: with an odd one Keras 3.15's torch backend
    # pads by repeating the edge and counts it (semantics §21); tests/test_volumes.py checks
    # the asymmetric windows against PyTorch with the TensorFlow rule
    "avgpool3d_same": (
        "AveragePooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 7, 9, 2)),
    "avgpool3d_cf": ("AveragePooling3D", {"pool_size": 2, "padding": "same", **CF},
                     (1, 2, 3, 5, 4)),
    "gmax3d": ("GlobalMaxPooling3D", {}, (2, 3, 4, 5, 3)),
    "gavg3d_keepdims_cf": ("GlobalAveragePooling3D", {"keepdims": True, **CF}, (2, 3, 4, 5, 2)),
    "zeropad3d": ("ZeroPadding3D", {"padding": ((1, 2), (0, 1), (3, 0))}, (1, 2, 3, 4, 2)),
    "zeropad3d_int_cf": ("ZeroPadding3D", {"padding": 1, **CF}, (1, 2, 2, 3, 4)),
    "crop3d": ("Cropping3D", {"cropping": ((1, 0), (1, 2), (0, 1))}, (2, 3, 5, 4, 2)),
    "crop3d_sym_cf": ("Cropping3D", {"cropping": (1, 0, 1), **CF}, (1, 2, 4, 3, 5)),
    "upsample3d": ("UpSampling3D", {"size": (2, 1, 3)}, (1, 2, 3, 2, 2)),
    "upsample3d_cf": ("UpSampling3D", {"size": 2, **CF}, (1, 2, 2, 3, 1)),
}


def main() -> None:
    warnings.simplefilter("ignore")  # Keras's legacy-format notices
    write_npz(HERE / "models_volumes.npz", write_models(MODELS, HERE))
    write_npz(HERE / "volume_layers.npz", layer_cases(LAYERS, 7000))


if __name__ == "__main__":
    main()
