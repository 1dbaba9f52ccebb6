#!/usr/bin/env python
"""Make tests/golden/models_norm.npz, tests/golden/models/norm_*.{keras,h5,weights.h5} and
tests/golden/layers_norm.npz: Keras models and layers with the normalization, activation
and preprocessing layers of issue 12 (BatchNormalization, LayerNormalization, ReLU,
LeakyReLU, PReLU, ELU, Softmax, Rescaling, Normalization).

Run by hand (never in CI) from the repository root, with Keras and torch installed:

    KERAS_BACKEND=torch python tests/golden/make_models_norm.py

Models (as tests/golden/make_golden_models.py writes them: ``<case>.weights.<i>`` in Keras's
get_weights order, ``<case>.inputs.<i>``, ``<case>.out.<i>``): every weight is set to seeded
random values by its name, so that the BatchNormalization statistics are not the trivial
initial ones: moving_variance / variance uniform in [0.3, 2] (> 0), gamma in [0.5, 1.5],
PReLU's alpha in [0, 0.5], Normalization's count 10, the rest uniform in [-0.5, 0.5].

Layers (layers_norm.npz): for case ``<c>``, ``<c>.x``, ``<c>.weights.<i>``, ``<c>.y`` (and
``<c>.mask``), at edge shapes (1 and primes); ``__configs__`` holds every case's serialized
Keras layer (class_name and config) as one JSON object.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import Input, Model, Sequential, layers  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def norm_sequential():
    # A conv net: preprocessing, Conv2D -> BN -> ReLU, a depthwise Conv2D (groups) -> BN,
    # Dense -> BN: every BN here folds into the layer before it.
    x = np.random.default_rng(11).uniform(0, 255, (2, 7, 7, 3)).astype(F32)
    model = Sequential([
        Input(shape=(7, 7, 3)),
        layers.Rescaling([1.0 / 127.5, 1.0 / 100.0, 1.0 / 64.0], offset=-1.0),
        layers.Normalization(),  # adapted: weights mean, variance, count
        layers.Conv2D(5, 3, padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2D(5, 3, groups=5, strides=2),
        layers.BatchNormalization(center=False, epsilon=1e-5),
        layers.Flatten(),
        layers.Dense(7, use_bias=False),
        layers.BatchNormalization(scale=False),
    ])
    return model, [x]


def norm_functional():
    # Dense -> BN (folds); Dense(relu) -> BN (does not fold); LayerNormalization; the
    # activation layers; a Normalization given its statistics. (Fixtures are kept small: the
    # other variants are layer-level cases below and code-built models in
    # tests/test_norm_models.py.)
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((3, 5, 8)) * 2.0 + 0.5).astype(F32)
    inp = Input(shape=(5, 8), name="seq")
    h = layers.BatchNormalization(name="bn_fold")(layers.Dense(6, name="d_fold")(inp))
    h = layers.LeakyReLU(negative_slope=0.1, name="leaky")(h)
    h = layers.LayerNormalization(epsilon=1e-6, name="ln1")(h)
    r = layers.BatchNormalization(name="bn_after_relu")(
        layers.Dense(4, activation="relu", name="d_relu")(h))
    r = layers.PReLU(shared_axes=[1], name="prelu")(r)
    s = layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2, name="relu_all")(h)
    s = layers.ELU(alpha=0.7, name="elu")(s)
    a = layers.Normalization(mean=[0.1, -0.3, 0.0, 1.0, 2.0, 0.5],
                             variance=[1.0, 4.0, 0.25, 1.0, 2.0, 0.5], invert=True,
                             name="norm_given")(s)
    return Model(inp, [r, a]), [x]


CASES = {f.__name__: f for f in (norm_sequential, norm_functional)}


def random_weights(model, seed):
    rng = np.random.default_rng(seed)
    out = []
    for v in model.weights:
        name = v.path.split("/")[-1]
        shape = tuple(v.shape)
        if name in ("moving_variance", "variance"):
            w = rng.uniform(0.3, 2.0, shape)
        elif name == "gamma":
            w = rng.uniform(0.5, 1.5, shape)
        elif name == "alpha":
            w = rng.uniform(0.0, 0.5, shape)
        elif name == "count":
            w = np.full(shape, 10)
        else:
            w = rng.uniform(-0.5, 0.5, shape)
        out.append(np.asarray(w, dtype=keras.backend.standardize_dtype(v.dtype)))
    return out


# ---- layer-level cases: (name, layer, input shape, input scale, input offset) -------------

def layer_cases():
    return [
        ("bn_1x1", layers.BatchNormalization(), (1, 1)),
        ("bn_3x13", layers.BatchNormalization(epsilon=1e-5), (3, 13)),
        ("bn_axis1_rank4", layers.BatchNormalization(axis=1), (2, 7, 3, 5)),
        ("bn_noscale_nocenter", layers.BatchNormalization(center=False, scale=False),
         (2, 5, 17)),
        ("ln_1x1", layers.LayerNormalization(), (1, 1)),
        ("ln_2x31", layers.LayerNormalization(epsilon=1e-6), (2, 31)),
        ("ln_axes_1_3", layers.LayerNormalization(axis=[1, 3]), (2, 3, 5, 7)),
        ("ln_axes_mixed", layers.LayerNormalization(axis=[-1, 1]), (2, 3, 5)),
        # (axis=-2 alone is not here: Keras's torch backend hands a single axis that is not
        # the last to torch's layer_norm, which then normalizes the wrong axis and fails.)
        ("ln_big_mean", layers.LayerNormalization(), (3, 17)),
        ("relu_all", layers.ReLU(max_value=2.5, negative_slope=0.05, threshold=1.0), (3, 13)),
        ("relu_prime", layers.ReLU(negative_slope=0.4), (1, 7)),
        ("relu_threshold", layers.ReLU(threshold=0.5), (2, 5)),
        ("relu_max6", layers.ReLU(max_value=6.0), (2, 5)),
        ("relu_slope_max", layers.ReLU(negative_slope=0.3, max_value=2.0), (3, 7)),
        ("leaky_1", layers.LeakyReLU(negative_slope=0.01), (1, 1)),
        ("leaky_02", layers.LeakyReLU(negative_slope=0.2), (3, 7)),
        ("elu_default", layers.ELU(), (2, 11)),
        ("softmax_axes", layers.Softmax(axis=[1, 2]), (2, 3, 5)),
        ("prelu_rank4", layers.PReLU(shared_axes=[1, 2]), (2, 3, 5, 7)),
        ("prelu_rank2", layers.PReLU(), (3, 13)),
        ("elu_big", layers.ELU(alpha=2.0), (5, 7)),
        ("rescale_scalar", layers.Rescaling(0.25, offset=3.0), (2, 7)),
        ("rescale_lists", layers.Rescaling([1.0, 2.0, 3.0], offset=[0.0, -1.0, 1.0]),
         (2, 5, 3)),
        ("normalization_axis_m1", layers.Normalization(), (4, 13)),
        ("normalization_axes", layers.Normalization(axis=(1, 2)), (2, 3, 5)),
        ("normalization_none", layers.Normalization(axis=None), (3, 7)),
        ("normalization_invert", layers.Normalization(invert=True), (2, 5)),
        ("normalization_given", layers.Normalization(axis=(1, 2), mean=[1.0, 2.0, 3.0],
                                                     variance=[0.5, 1.0, 2.0]), (2, 4, 3)),
        ("normalization_zero_var", layers.Normalization(mean=[0.5, 0.0],
                                                        variance=[0.0, 1.0]), (3, 2)),
        ("softmax_mask", layers.Softmax(axis=-1), (2, 3, 7)),
    ]


def make_layers(out):
    rng = np.random.default_rng(21)
    configs = {}
    for name, layer, shape in layer_cases():
        x = rng.standard_normal(shape).astype(F32) * 2.0
        if name == "ln_big_mean":
            x = x + 100.0
        if name.startswith("relu") and x.size >= 3:
            x.flat[:3] = [0.0, 1.0, 2.5]  # on the threshold and on max_value
        layer.build(shape)
        if layer.weights:
            layer.set_weights(random_weights(layer, len(name) * 31))
        kwargs = {}
        if name == "softmax_mask":
            mask = rng.random((3, 7)) > 0.4
            mask[1] = False  # a fully masked row gives zeros
            kwargs["mask"] = mask
            out[f"{name}.mask"] = mask
        y = keras.ops.convert_to_numpy(layer(x, **kwargs)).astype(F32)
        configs[name] = keras.saving.serialize_keras_object(layer)
        out[f"{name}.x"] = x
        for i, w in enumerate(layer.get_weights()):
            out[f"{name}.weights.{i}"] = np.asarray(w)
        out[f"{name}.y"] = y
        print(name, shape, [w.shape for w in layer.get_weights()])
    out["__configs__"] = np.array(json.dumps(configs))


def main():
    out: dict[str, np.ndarray] = {}
    (HERE / "models").mkdir(exist_ok=True)
    for k, (name, make) in enumerate(CASES.items()):
        keras.utils.set_random_seed(0)
        model, inputs = make()
        weights = random_weights(model, 1000 + k)
        model.set_weights(weights)
        result = model(inputs if len(inputs) > 1 else inputs[0])
        outs = result if isinstance(result, (list, tuple)) else [result]
        for i, w in enumerate(model.get_weights()):
            out[f"{name}.weights.{i}"] = np.asarray(w)
        for i, x in enumerate(inputs):
            out[f"{name}.inputs.{i}"] = x
        for i, y in enumerate(outs):
            out[f"{name}.out.{i}"] = keras.ops.convert_to_numpy(y).astype(F32)
        model.save(HERE / "models" / f"{name}.keras")
        model.save(HERE / "models" / f"{name}.h5")  # Keras 3's legacy HDF5 writer
        model.save_weights(HERE / "models" / f"{name}.weights.h5")
        print(name, [tuple(o.shape) for o in outs])
    meta = {"keras": keras.__version__, "backend": keras.backend.backend(),
            "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:
        pass
    out["__meta__.versions"] = np.array(json.dumps(meta))
    np.savez_compressed(HERE / "models_norm.npz", **out)
    lay: dict[str, np.ndarray] = {"__meta__.versions": np.array(json.dumps(meta))}
    make_layers(lay)
    np.savez_compressed(HERE / "layers_norm.npz", **lay)


if __name__ == "__main__":
    main()
