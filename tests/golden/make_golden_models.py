#!/usr/bin/env python
"""Make tests/golden/models.npz and tests/golden/models/*.keras: whole Keras models.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_golden_models.py [case ...]

Each model is built with the Keras functional API or Sequential, given seeded random
weights (uniform in [-0.5, 0.5]) with ``set_weights``, and run on seeded inputs. The
test (tests/test_models.py) builds the same model with fastlayers - the seed article's
code with only the imports swapped - sets the weights in Keras's ``get_weights`` order
and compares the outputs. Each model is also saved as ``models/<case>.keras`` for the
model-file loader.

Each case ``<case>`` stores ``<case>.weights.<i>`` (Keras get_weights order),
``<case>.inputs.<i>`` (the inputs in the model's input order) and ``<case>.out.<i>``
(the outputs in the model's output order). ``__meta__.versions`` records the versions.

For the model-file loader (tests/test_load_keras.py) each model is also written with
Keras 3's legacy HDF5 writer (``models/<case>.h5``) and as weights only
(``models/<case>.weights.h5``), and ``models/unsupported.keras`` holds a model with a
Lambda layer and a custom layer class, which fastlayers must refuse.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import Input, Model, Sequential, layers, ops  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


def seed_dense():
    # The article's fully connected example (4 images 32x32x3; Dense acts on the last axis).
    x = np.random.default_rng(42).random((4, 32, 32, 3)).astype(F32)
    inp = Input(shape=x.shape[1:])
    hidden = layers.Dense(8, activation="relu")(inp)
    flat = layers.Flatten()(hidden)
    out = layers.Dense(2)(flat)
    return Model(inputs=inp, outputs=out), [x]


def seed_conv():
    x = np.random.default_rng(42).random((4, 32, 32, 3)).astype(F32)
    inp = Input(shape=x.shape[1:])
    conv = layers.Conv2D(8, (3, 3), activation="relu")(inp)
    flat = layers.Flatten()(conv)
    out = layers.Dense(2)(flat)
    return Model(inputs=inp, outputs=out), [x]


def seed_lstm():
    x = np.zeros(10).astype(int)
    x[0::2] = np.arange(0, 10, 2)
    x[1::2] = np.arange(0, 100, 20)
    x = x.reshape(1, 5, 2).astype(F32) / 100.0
    inp = Input(shape=x.shape[1:])
    lstm, hstate, cstate = layers.LSTM(8, return_sequences=False, return_state=True)(inp)
    out = layers.Dense(2)(lstm)
    return Model(inputs=inp, outputs=[out, hstate, cstate]), [x]


def seed_attention():
    # The article's single head without scaling (its typos fixed: k from k_in).
    rng = np.random.default_rng(42)
    qry = rng.random((4, 16, 32)).astype(F32)
    key = rng.random((4, 1, 32)).astype(F32)
    values = rng.random((4, 1, 32)).astype(F32)
    q_in = Input(shape=(None, 32))
    k_in = Input(shape=(None, 32))
    v_in = Input(shape=(1, 32))
    q = layers.Dense(4, activation="linear")(q_in)
    k = layers.Dense(4, activation="linear")(k_in)
    v = layers.Dense(4, activation="linear")(v_in)
    # tf.matmul(q, k, transpose_b=True): one operation with inputs (q, k), as fl.matmul is,
    # so that Keras orders the layers (and get_weights) the same way.
    score = ops.einsum("btd,bsd->bts", q, k)
    attention = ops.softmax(score, axis=-1)
    output = ops.matmul(attention, v)
    return Model(inputs=[q_in, k_in, v_in], outputs=[score, attention, output]), [qry, key, values]


def sequential_mlp():
    x = np.random.default_rng(1).standard_normal((5, 10)).astype(F32)
    model = Sequential([Input(shape=(10,)), layers.Dense(16, activation="gelu"),
                        layers.Dense(4, activation="softmax")])
    return model, [x]


def shared_nested_multi():
    # Two inputs, a shared layer called on both, a nested model, two outputs.
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 6, 4)).astype(F32)
    b = rng.standard_normal((3, 6, 4)).astype(F32)
    inner_in = Input(shape=(6, 4))
    inner = Model(inner_in, layers.GRU(4, return_sequences=True)(inner_in), name="inner")
    a_in = Input(shape=(6, 4), name="a")
    b_in = Input(shape=(6, 4), name="b")
    shared = layers.Dense(4, activation="tanh", name="shared")
    ha = inner(shared(a_in))
    hb = shared(b_in)
    att = layers.Attention()([ha, hb])
    out1 = layers.Dense(3, name="head1")(layers.Flatten()(att))
    out2 = layers.LSTM(2, name="head2")(hb)
    return Model([a_in, b_in], [out1, out2]), [a, b]


def mixed_layers():
    # Layers fastlayers runs, as the loader meets them in files: Bidirectional,
    # MultiHeadAttention, AdditiveAttention, identity-at-inference layers, Activation,
    # the Softmax layer and a nested Sequential.
    x = np.random.default_rng(3).standard_normal((2, 6, 4)).astype(F32)
    inp = Input(shape=(6, 4), name="seq_in")
    bi = layers.Bidirectional(layers.GRU(3, return_sequences=True))(inp)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(bi, bi)
    add = layers.AdditiveAttention()([mha, bi])
    drop = layers.Dropout(0.3)(add)
    act = layers.Activation("relu")(drop)
    noisy = layers.GaussianNoise(0.1)(layers.Softmax(axis=1)(act))
    head = Sequential([layers.Dense(3, activation="tanh"), layers.GaussianDropout(0.2),
                       layers.Dense(2)], name="head")
    return Model(inp, [head(noisy), layers.ActivityRegularization(l2=0.01)(bi)]), [x]


def conv_sequential():
    x = np.random.default_rng(4).standard_normal((3, 9, 9, 2)).astype(F32)
    model = Sequential([Input(shape=(9, 9, 2)),
                        layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                        layers.SpatialDropout2D(0.2), layers.Flatten(),
                        layers.Dense(3, activation="softmax")])
    return model, [x]


def nested_twice():
    # A nested functional model with a frozen layer (Keras's legacy files then list its
    # trainable weights first), called twice; its second call is a model output, which
    # Keras's config counts from 1 (node 0 is the nested model's own).
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(F32)
    inner_in = Input(shape=(4,))
    frozen = layers.Dense(5, activation="relu", name="frozen")
    inner = Model(inner_in, layers.Dense(4, name="live")(frozen(inner_in)), name="twice")
    frozen.trainable = False
    inp = Input(shape=(4,), name="x")
    once = inner(inp)
    return Model(inp, [inner(once), layers.Dense(2, name="side")(once)]), [x]


CASES = {f.__name__: f for f in (seed_dense, seed_conv, seed_lstm, seed_attention,
                                   sequential_mlp, shared_nested_multi, mixed_layers,
                                   conv_sequential, nested_twice)}


@keras.saving.register_keras_serializable(package="fastlayers_tests")
class TimesTwo(layers.Layer):
    """A custom layer class: fastlayers cannot know what it computes."""

    def call(self, x):
        return x * 2.0


def unsupported():
    inp = Input(shape=(4,), name="u_in")
    hidden = layers.Dense(3)(inp)
    doubled = TimesTwo(name="times_two")(hidden)
    shifted = layers.Lambda(lambda t: t + 1.0, name="plus_one")(doubled)
    return Model(inp, layers.Dense(2)(shifted))


def main(selected: list[str]):
    """Write every case, or only the cases named on the command line (the others keep
    their arrays and files, so that adding a case does not rewrite them all)."""
    unknown = sorted(set(selected) - set(CASES) - {"unsupported"})
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {sorted(CASES)} and unsupported")
    out: dict[str, np.ndarray] = {}
    if selected:
        with np.load(HERE / "models.npz") as old:
            out = {k: old[k] for k in old.files if k.split(".")[0] not in selected}
    (HERE / "models").mkdir(exist_ok=True)
    for name, make in CASES.items():
        if selected and name not in selected:
            continue
        keras.utils.set_random_seed(0)
        model, inputs = make()
        rng = np.random.default_rng(len(name) * 7919)
        weights = [rng.uniform(-0.5, 0.5, w.shape).astype(F32) for w in model.get_weights()]
        model.set_weights(weights)
        result = model(inputs if len(inputs) > 1 else inputs[0])
        outs = result if isinstance(result, (list, tuple)) else [result]
        for i, w in enumerate(weights):
            out[f"{name}.weights.{i}"] = w
        for i, x in enumerate(inputs):
            out[f"{name}.inputs.{i}"] = x
        for i, y in enumerate(outs):
            out[f"{name}.out.{i}"] = keras.ops.convert_to_numpy(y).astype(F32)
        model.save(HERE / "models" / f"{name}.keras")
        model.save(HERE / "models" / f"{name}.h5")  # Keras 3's legacy HDF5 writer
        model.save_weights(HERE / "models" / f"{name}.weights.h5")
        print(name, [o.shape for o in outs])
    if not selected or "unsupported" in selected:
        unsupported().save(HERE / "models" / "unsupported.keras")
    meta = {"keras": keras.__version__, "backend": keras.backend.backend(),
            "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:
        pass
    out["__meta__.versions"] = np.array(json.dumps(meta))
    np.savez_compressed(HERE / "models.npz", **out)


if __name__ == "__main__":
    main(sys.argv[1:])
