#!/usr/bin/env python
"""Make the Keras fixtures of the convpool topic: Conv1D, DepthwiseConv2D, SeparableConv2D,
the pooling layers, ZeroPadding1D/2D and Cropping1D/2D.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_convpool.py

It writes

* ``models_convpool.npz`` and ``models/<case>.keras`` / ``.h5`` (Keras 3's legacy writer) /
  ``.weights.h5``: whole models (a small functional CNN with a nested Sequential block,
  and a Sequential Conv1D text model), in the layout of make_golden_models.py:
  ``<case>.weights.<i>``
  (Keras get_weights order, seeded uniform values in [-0.5, 0.5]), ``<case>.inputs.<i>``,
  ``<case>.out.<i>``. Every case name starts with ``convpool_``.
* ``convpool_layers.npz``: single layers at edge shapes (see :func:`make_layers`); each
  case's ``ref`` is "keras" (the output of the Keras layer) or "torch-tf-rule".

"torch-tf-rule": Keras 3.15's torch backend computes AveragePooling with "same" padding
wrongly when the padding is asymmetric (it pads by repeating the edge values and counts
them; keras-team/keras#23233 fixed it later). The TensorFlow, JAX and NumPy backends
average over the input pixels only, and fastlayers does too; for those cases ``y`` is made
by PyTorch with that rule (zero padding, window sums divided by the count of input pixels).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import Input, Model, Sequential, layers  # noqa: E402
from keras_model_files import layer_cases, write_models, write_npz  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


# ------------------------------------------------------------------------------- models


def convpool_cnn_nested():
    # Functional, with a nested Sequential block; two outputs.
    x = np.random.default_rng(11).standard_normal((2, 13, 11, 3)).astype(F32)
    block = Sequential(
        [
            Input(shape=(14, 14, 3)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
            layers.MaxPooling2D(2),
        ],
        name="block",
    )
    inp = Input(shape=(13, 11, 3), name="image")
    h = block(layers.ZeroPadding2D(((1, 0), (1, 2)))(inp))
    h = layers.SeparableConv2D(6, 3, padding="same", activation="relu")(h)
    h = layers.MaxPooling2D(3, strides=2, padding="same")(h)
    h = layers.Cropping2D(((1, 0), (0, 1)))(h)
    h = layers.AveragePooling2D(2, strides=1)(h)
    avg = layers.GlobalAveragePooling2D()(h)
    mx = layers.GlobalMaxPooling2D(keepdims=True)(h)
    out1 = layers.Dense(3, activation="softmax")(avg)
    out2 = layers.Dense(2)(layers.Flatten()(mx))
    return Model(inp, [out1, out2]), [x]


def convpool_text_sequential():
    x = np.random.default_rng(14).standard_normal((3, 20, 4)).astype(F32)
    model = Sequential(
        [
            Input(shape=(20, 4)),
            layers.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu"),
            layers.Conv1D(6, 3, padding="causal", dilation_rate=4, groups=2),
            layers.MaxPooling1D(2),
            layers.ZeroPadding1D((2, 1)),
            layers.Conv1D(5, 4, strides=2, padding="same", activation="tanh"),
            layers.AveragePooling1D(2, strides=1),
            layers.Cropping1D((1, 0)),
            layers.GlobalAveragePooling1D(),
            layers.Dense(2),
        ]
    )
    return model, [x]


MODELS = {f.__name__: f for f in (convpool_cnn_nested, convpool_text_sequential)}


# ------------------------------------------------------------------------------- layers

# name: (class name, constructor arguments, input shape[, mask])
LAYERS = {
    "c1_valid": ("Conv1D", {"filters": 4, "kernel_size": 3}, (2, 7, 3)),
    "c1_same_stride": (
        "Conv1D",
        {"filters": 5, "kernel_size": 4, "strides": 3, "padding": "same"},
        (2, 11, 3),
    ),
    "c1_same_even": ("Conv1D", {"filters": 2, "kernel_size": 2, "padding": "same"}, (1, 6, 2)),
    "c1_causal_dil": (
        "Conv1D",
        {
            "filters": 3,
            "kernel_size": 3,
            "padding": "causal",
            "dilation_rate": 2,
            "activation": "relu",
        },
        (1, 13, 2),
    ),
    "c1_causal_stride": (
        "Conv1D",
        {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "causal"},
        (2, 5, 4),
    ),
    "c1_causal_len1": ("Conv1D", {"filters": 2, "kernel_size": 3, "padding": "causal"}, (2, 1, 3)),
    "c1_groups": (
        "Conv1D",
        {"filters": 6, "kernel_size": 3, "groups": 3, "padding": "same", "use_bias": False},
        (2, 5, 6),
    ),
    "c1_k1_t1": ("Conv1D", {"filters": 2, "kernel_size": 1}, (3, 1, 5)),
    "c1_kernel_eq_len": ("Conv1D", {"filters": 2, "kernel_size": 5}, (1, 5, 3)),
    "c1_channels_first": (
        "Conv1D",
        {"filters": 3, "kernel_size": 3, "data_format": "channels_first"},
        (2, 4, 7),
    ),
    "dw_basic": ("DepthwiseConv2D", {"kernel_size": 3}, (2, 7, 7, 3)),
    "dw_mult_same_stride": (
        "DepthwiseConv2D",
        {
            "kernel_size": (3, 2),
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 3,
            "activation": "relu",
        },
        (1, 8, 7, 2),
    ),
    "dw_dil_nobias": (
        "DepthwiseConv2D",
        {"kernel_size": 3, "dilation_rate": (2, 1), "depth_multiplier": 2, "use_bias": False},
        (1, 9, 6, 4),
    ),
    "dw_17ch_same": ("DepthwiseConv2D", {"kernel_size": 3, "padding": "same"}, (1, 5, 5, 17)),
    "dw_9ch_mult2": (
        "DepthwiseConv2D",
        {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
        (2, 4, 6, 9),
    ),
    "dw_1x1_input": ("DepthwiseConv2D", {"kernel_size": 3, "padding": "same"}, (1, 1, 1, 2)),
    "dw_channels_first": (
        "DepthwiseConv2D",
        {"kernel_size": 2, "depth_multiplier": 2, "data_format": "channels_first"},
        (1, 3, 5, 4),
    ),
    "sep_basic": ("SeparableConv2D", {"filters": 4, "kernel_size": 3}, (2, 6, 6, 3)),
    "sep_same_stride": (
        "SeparableConv2D",
        {
            "filters": 5,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 2,
            "activation": "tanh",
        },
        (1, 7, 8, 3),
    ),
    "sep_dil_nobias": (
        "SeparableConv2D",
        {"filters": 3, "kernel_size": 2, "dilation_rate": 2, "use_bias": False},
        (1, 7, 7, 2),
    ),
    "mp2_default": ("MaxPooling2D", {}, (2, 7, 5, 3)),
    "mp2_same_odd": (
        "MaxPooling2D",
        {"pool_size": 3, "strides": 2, "padding": "same"},
        (1, 7, 6, 2),
    ),
    "mp2_same_even": (
        "MaxPooling2D",
        {"pool_size": 2, "strides": 1, "padding": "same"},
        (1, 4, 5, 2),
    ),
    "mp2_stride_gt_pool": ("MaxPooling2D", {"pool_size": 2, "strides": 3}, (1, 8, 7, 2)),
    "mp2_1x1": ("MaxPooling2D", {"pool_size": 1}, (1, 1, 1, 3)),
    "mp2_rect_prime": ("MaxPooling2D", {"pool_size": (3, 2), "strides": (2, 3)}, (2, 11, 13, 1)),
    "mp2_channels_first": (
        "MaxPooling2D",
        {"pool_size": 2, "data_format": "channels_first"},
        (1, 2, 5, 4),
    ),
    "ap2_valid": ("AveragePooling2D", {"pool_size": (3, 2)}, (2, 7, 5, 3)),
    "ap2_same_sym": (
        "AveragePooling2D",
        {"pool_size": 3, "strides": 1, "padding": "same"},
        (1, 5, 5, 2),
    ),
    "ap2_same_asym": ("AveragePooling2D", {"pool_size": 2, "padding": "same"}, (1, 5, 7, 2)),
    "ap2_same_stride_gt_pool": (
        "AveragePooling2D",
        {"pool_size": 2, "strides": 3, "padding": "same"},
        (1, 7, 8, 2),
    ),
    "ap2_channels_first": (
        "AveragePooling2D",
        {"pool_size": 2, "strides": 1, "data_format": "channels_first"},
        (1, 2, 4, 3),
    ),
    "mp1_default": ("MaxPooling1D", {}, (1, 5, 2)),
    "mp1_same": ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 8, 3)),
    "mp1_len1": ("MaxPooling1D", {"pool_size": 1}, (2, 1, 3)),
    "ap1_valid_stride": ("AveragePooling1D", {"pool_size": 2, "strides": 3}, (1, 10, 2)),
    "ap1_same_sym": (
        "AveragePooling1D",
        {"pool_size": 3, "strides": 2, "padding": "same"},
        (1, 7, 2),
    ),
    "ap1_same_asym": (
        "AveragePooling1D",
        {"pool_size": 4, "strides": 1, "padding": "same"},
        (2, 6, 3),
    ),
    "ap1_same_len1": ("AveragePooling1D", {"pool_size": 3, "padding": "same"}, (1, 1, 2)),
    "gap1": ("GlobalAveragePooling1D", {}, (2, 7, 3)),
    "gap1_keepdims": ("GlobalAveragePooling1D", {"keepdims": True}, (2, 1, 3)),
    "gap1_mask": (
        "GlobalAveragePooling1D",
        {},
        (3, 5, 2),
        [[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]],
    ),
    "gap1_mask_cf": (
        "GlobalAveragePooling1D",
        {"data_format": "channels_first", "keepdims": True},
        (2, 3, 4),
        [[1, 1, 0, 0], [0, 1, 0, 1]],
    ),
    "gmp1": ("GlobalMaxPooling1D", {}, (2, 7, 3)),
    "gap2_keepdims": ("GlobalAveragePooling2D", {"keepdims": True}, (2, 3, 5, 2)),
    "gap2_channels_first": (
        "GlobalAveragePooling2D",
        {"data_format": "channels_first"},
        (2, 3, 5, 2),
    ),
    "gmp2": ("GlobalMaxPooling2D", {}, (2, 3, 5, 2)),
    "zp2_int": ("ZeroPadding2D", {"padding": 1}, (1, 2, 3, 2)),
    "zp2_sym": ("ZeroPadding2D", {"padding": (2, 1)}, (1, 2, 3, 2)),
    "zp2_asym": ("ZeroPadding2D", {"padding": ((1, 0), (2, 3))}, (2, 3, 1, 2)),
    "zp2_channels_first": (
        "ZeroPadding2D",
        {"padding": ((0, 1), (1, 0)), "data_format": "channels_first"},
        (1, 2, 3, 2),
    ),
    "zp1": ("ZeroPadding1D", {"padding": (0, 2)}, (2, 3, 2)),
    "crop1": ("Cropping1D", {"cropping": (1, 2)}, (2, 6, 2)),
    "crop2": ("Cropping2D", {"cropping": ((1, 0), (0, 2))}, (1, 4, 5, 2)),
    "crop2_int_cf": ("Cropping2D", {"cropping": 1, "data_format": "channels_first"}, (1, 2, 4, 3)),
}


def _same_pads(size, pool, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2


def torch_average_same(x, pool, strides):
    """Average pooling with "same" padding by the TensorFlow rule, computed by PyTorch:
    zero padding, window sums, divided by the number of input pixels in each window."""
    rank = len(pool)
    t = torch.from_numpy(x).movedim(-1, 1)  # channels first for torch
    pads = [_same_pads(s, p, st) for s, p, st in zip(x.shape[1:-1], pool, strides)]
    flat = [v for pair in reversed(pads) for v in pair]
    avg = torch.nn.functional.avg_pool1d if rank == 1 else torch.nn.functional.avg_pool2d
    n = float(np.prod(pool))
    sums = avg(torch.nn.functional.pad(t, flat), pool, strides) * n
    ones = torch.nn.functional.pad(torch.ones_like(t[:1, :1]), flat)
    counts = avg(ones, pool, strides) * n
    return (sums / counts).movedim(1, -1).numpy()


def _asymmetric_average(cls, cfg, shape):
    if not cls.startswith("AveragePooling") or cfg.get("padding") != "same":
        return False
    rank = 1 if cls.endswith("1D") else 2
    pool = cfg.get("pool_size", 2)
    pool = (pool,) * rank if isinstance(pool, int) else tuple(pool)
    strides = cfg.get("strides", pool)
    strides = (strides,) * rank if isinstance(strides, int) else tuple(strides)
    pads = [_same_pads(s, p, st) for s, p, st in zip(shape[1:-1], pool, strides)]
    return any(a != b for a, b in pads), pool, strides


def _torch_rule(cls, cfg, shape, x):
    """For AveragePooling with asymmetric "same" padding: PyTorch's y with the rule of the
    TensorFlow, JAX and NumPy backends (see the module docstring), else None."""
    asym = _asymmetric_average(cls, cfg, shape)
    if asym and asym[0]:
        return torch_average_same(x, asym[1], asym[2]).astype(F32), "torch-tf-rule"
    return None


def make_layers() -> dict[str, np.ndarray]:
    """The cases of LAYERS (keras_model_files.layer_cases, seeds from 1000)."""
    return layer_cases(LAYERS, 1000, _torch_rule)


def make_models() -> dict[str, np.ndarray]:
    return write_models(MODELS, HERE)


def main() -> None:
    write_npz(HERE / "models_convpool.npz", make_models())
    write_npz(HERE / "convpool_layers.npz", make_layers())


if __name__ == "__main__":
    main()
