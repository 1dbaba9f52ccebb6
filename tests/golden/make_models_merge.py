#!/usr/bin/env python
"""Make the Keras fixtures of the merge topic (issue 12): merging, shape and wrapper layers.

Run by hand (never in CI) from the repository root, with Keras and torch installed
(``pip install keras h5py torch==2.13.0``):

    KERAS_BACKEND=torch python tests/golden/make_models_merge.py

Writes

* ``tests/golden/models_merge.npz`` and ``tests/golden/models/<case>.keras``, ``.h5``
  (Keras 3's legacy writer) and ``.weights.h5``: whole models, in the layout of
  make_golden_models.py (``<case>.weights.<i>`` in Keras get_weights order,
  ``<case>.inputs.<i>``, ``<case>.out.<i>``), every case named ``merge_...``. The model and
  loader tests (tests/golden_models.py, tests/test_load_keras.py) pick them up.
* ``tests/golden/merge_layers.npz``: single layers called by Keras on seeded inputs, with
  implicit masks attached to the inputs where a case has them (Keras reads them from the
  tensors). Per case ``<case>``, to keep the file small: ``<case>.meta`` (JSON: the Keras
  class, its constructor arguments, and the shapes of the arrays below),
  ``<case>.floats`` (the inputs, the weights of a wrapped layer in Keras order, then the
  output, raveled and joined) and ``<case>.bools`` (the masks of the inputs that have one,
  then the mask Keras attaches to the output if it attaches one, then what Keras's
  ``layer.compute_mask(inputs, masks)`` returns when called directly, if not None; the meta
  also records Keras's ``supports_masking``). tests/test_merge.py reads them.
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
from keras.src.backend.common.masking import get_keras_mask, set_keras_mask  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32


# ---- whole models ------------------------------------------------------------------------


def merge_branches():
    # Two inputs; two Dense branches merged by every merge layer (some through the
    # functional forms); ranks broadcast; Dot with normalize and with an axes pair; a
    # nested Sequential (Permute, TimeDistributed(Dense)).
    rng = np.random.default_rng(10)
    b = rng.standard_normal((3, 6)).astype(F32)
    s = rng.standard_normal((3, 4, 6)).astype(F32)
    b_in, s_in = Input((6,), name="b"), Input((4, 6), name="s")
    d1 = layers.Dense(6, activation="tanh", name="branch1")(b_in)
    d2 = layers.Dense(6, name="branch2")(b_in)
    add3 = layers.add([d1, d2, b_in])
    sub = layers.Subtract()([d1, d2])
    mul = layers.Multiply()([d1, d2])
    avg = layers.average([d1, d2, b_in])
    mx = layers.Maximum()([d1, d2])
    mn = layers.minimum([d1, d2])
    cat = layers.Concatenate()([add3, sub, mul, avg, mx, mn])  # (B, 36)
    ranked = layers.Add()([d1, s_in])  # (B, 6) + (B, 4, 6): axes inserted after the batch
    cos = layers.Dot(axes=1, normalize=True)([d1, d2])  # (B, 1)
    pair = layers.Dot(axes=(1, -2))([s_in, ranked])  # (B, 6, 6): sums over the 4 axis
    head = Sequential([layers.Permute((2, 1)), layers.TimeDistributed(layers.Dense(2))],
                      name="head")
    return Model([b_in, s_in], [cat, cos, head(pair)]), [b, s]


def merge_sequential_td():
    # Sequential on a 5-D input: TimeDistributed(Conv2D), Reshape with -1,
    # TimeDistributed(Dense), Flatten, RepeatVector, Permute.
    x = np.random.default_rng(12).standard_normal((2, 3, 5, 4, 2)).astype(F32)
    model = Sequential([
        Input((3, 5, 4, 2)),
        layers.TimeDistributed(layers.Conv2D(3, 3, activation="relu")),  # (B, 3, 3, 2, 3)
        layers.Reshape((3, -1)),  # (B, 3, 18)
        layers.TimeDistributed(layers.Dense(4, activation="tanh")),  # (B, 3, 4)
        layers.Flatten(),  # (B, 12)
        layers.RepeatVector(2),  # (B, 2, 12)
        layers.Permute((2, 1)),  # (B, 12, 2)
    ])
    return model, [x]


CASES = {f.__name__: f for f in (merge_branches, merge_sequential_td)}


def write_models() -> None:
    out: dict[str, np.ndarray] = {}
    (HERE / "models").mkdir(exist_ok=True)
    for name, make in CASES.items():
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
    out["__meta__.versions"] = np.array(json.dumps(_versions()))
    np.savez_compressed(HERE / "models_merge.npz", **out)


# ---- single layers, with masks -----------------------------------------------------------

_RNG = np.random.default_rng(20)


def _x(*shape):
    return _RNG.standard_normal(shape).astype(F32)


def _m(*shape):
    return _RNG.random(shape) < 0.6


# case -> (class name, constructor kwargs, inputs, masks (None = no mask), wrapped layer)
def layer_cases() -> dict:
    cases: dict = {}
    for cls in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        cases[f"{cls}_masks"] = (cls, {}, [_x(2, 5, 3), _x(2, 5, 3)], [_m(2, 5), _m(2, 5)])
        cases[f"{cls}_one_mask"] = (cls, {}, [_x(3, 4, 2), _x(3, 4, 2)], [None, _m(3, 4)])
        if cls != "Add":
            cases[f"{cls}_first_mask"] = (cls, {}, [_x(1, 7, 5), _x(1, 7, 5)],
                                          [_m(1, 7), None])
        if cls in ("Add", "Multiply", "Maximum"):
            cases[f"{cls}_broadcast"] = (cls, {}, [_x(2, 1, 3), _x(2, 5, 3)],
                                         [_m(2, 1), _m(2, 5)])
            cases[f"{cls}_ranks"] = (cls, {}, [_x(3, 4), _x(3, 5, 4)], [None, None])
            cases[f"{cls}_three"] = (cls, {}, [_x(2, 3, 4), _x(2, 3, 4), _x(2, 3, 4)],
                                     [_m(2, 3), None, _m(2, 3)])
        if cls in ("Average", "Minimum"):
            cases[f"{cls}_three"] = (cls, {}, [_x(2, 3, 4), _x(2, 3, 4), _x(2, 3, 4)],
                                     [_m(2, 3), _m(2, 3), _m(2, 3)])
    cases["Add_one_input"] = ("Add", {}, [_x(2, 3)], [None])
    cases["Concatenate_masks_axis1"] = ("Concatenate", {"axis": 1},
                                        [_x(2, 3, 4), _x(2, 5, 4)], [_m(2, 3), None])
    cases["Concatenate_masks_last"] = ("Concatenate", {"axis": -1},
                                       [_x(2, 3, 4), _x(2, 3, 2)], [_m(2, 3), _m(2, 3)])
    cases["Concatenate_mask_rank"] = ("Concatenate", {"axis": 1},
                                      [_x(2, 3, 4), _x(2, 2, 4)], [None, _m(2, 2, 4)])
    cases["Concatenate_axis0"] = ("Concatenate", {"axis": 0}, [_x(2, 3), _x(1, 3)],
                                  [None, None])
    cases["Concatenate_rank2"] = ("Concatenate", {}, [_x(1, 1), _x(1, 7), _x(1, 2)],
                                  [None, None, None])
    cases["Dot_vector_matrix"] = ("Dot", {"axes": (1, 1)}, [_x(2, 4), _x(2, 4, 3)],
                                  [None, None])
    cases["Dot_matrix_vector"] = ("Dot", {"axes": (2, 1)}, [_x(2, 5, 4), _x(2, 4)],
                                  [None, None])
    cases["Dot_pair"] = ("Dot", {"axes": (1, 2)}, [_x(2, 3, 5), _x(2, 7, 3)], [None, None])
    cases["Dot_rank4"] = ("Dot", {"axes": (1, 3)}, [_x(2, 3, 2, 5), _x(2, 4, 2, 3)],
                          [None, None])
    cases["Dot_negative"] = ("Dot", {"axes": -1}, [_x(1, 17, 8), _x(1, 16, 8)],
                             [_m(1, 17), None])
    zero = _x(3, 4)
    zero[1] = 0.0
    cases["Dot_normalize"] = ("Dot", {"axes": 1, "normalize": True}, [zero, _x(3, 4)],
                              [None, None])
    cases["Dot_normalize_pair"] = ("Dot", {"axes": (2, 1), "normalize": True},
                                   [_x(2, 3, 6), _x(2, 6, 5)], [None, None])
    cases["Reshape_infer"] = ("Reshape", {"target_shape": (-1, 3)}, [_x(2, 4, 3, 2)],
                              [_m(2, 4, 3)])
    cases["Permute_3"] = ("Permute", {"dims": (3, 1, 2)}, [_x(2, 3, 4, 5)], [_m(2, 3, 4)])
    cases["RepeatVector_1"] = ("RepeatVector", {"n": 1}, [_x(3, 4)], [None])
    cases["RepeatVector_5"] = ("RepeatVector", {"n": 5}, [_x(2, 3)], [_m(2)])
    cases["Flatten_rank2"] = ("Flatten", {}, [_x(3, 4)], [None])
    cases["Flatten_rank1"] = ("Flatten", {}, [_x(3)], [None])
    cases["Flatten_masked"] = ("Flatten", {}, [_x(2, 3, 4)], [_m(2, 3)])
    cases["TimeDistributed_dense_mask"] = (
        "TimeDistributed", {"layer": ("Dense", {"units": 3, "activation": "relu"})},
        [_x(2, 4, 5)], [_m(2, 4)])
    cases["TimeDistributed_lstm_mask"] = (
        "TimeDistributed", {"layer": ("LSTM", {"units": 3})}, [_x(2, 3, 5, 2)],
        [_m(2, 3, 5)])
    cases["TimeDistributed_conv"] = (
        "TimeDistributed", {"layer": ("Conv2D", {"filters": 2, "kernel_size": 3,
                                                  "padding": "same"})},
        [_x(1, 2, 5, 4, 3)], [None])
    return cases


def _keras_layer(cls: str, kwargs: dict):
    kwargs = dict(kwargs)
    if "layer" in kwargs:
        inner_cls, inner_kwargs = kwargs.pop("layer")
        kwargs["layer"] = getattr(layers, inner_cls)(**inner_kwargs)
    return getattr(layers, cls)(**kwargs)


def write_layers() -> None:
    out: dict[str, np.ndarray] = {}
    for case, (cls, kwargs, inputs, masks) in layer_cases().items():
        keras.utils.set_random_seed(0)
        layer = _keras_layer(cls, kwargs)
        tensors = [keras.ops.convert_to_tensor(x) for x in inputs]
        for t, m in zip(tensors, masks):
            if m is not None:
                set_keras_mask(t, keras.ops.convert_to_tensor(m))
        arg = tensors if len(tensors) > 1 or cls in ("Add", "Subtract", "Multiply", "Average",
                                                    "Maximum", "Minimum", "Concatenate",
                                                    "Dot") else tensors[0]
        if layer.weights == [] and cls == "TimeDistributed":
            layer.build(tensors[0].shape)
        if cls == "TimeDistributed":
            rng = np.random.default_rng(len(case))
            layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(F32)
                               for w in layer.get_weights()])
        y = layer(arg)
        weights = [keras.ops.convert_to_numpy(w) for w in layer.get_weights()]
        result = keras.ops.convert_to_numpy(y).astype(F32)
        ymask = get_keras_mask(y)
        floats = list(inputs) + weights + [result]
        bools = [m for m in masks if m is not None]
        if ymask is not None:
            bools.append(keras.ops.convert_to_numpy(ymask).astype(bool))
        # Keras's compute_mask called directly on the same inputs and masks (eager tensors).
        given = [None if m is None else keras.ops.convert_to_tensor(m) for m in masks]
        if all(m is None for m in masks):
            given = None
        elif not isinstance(arg, list):
            given = given[0]
        direct = layer.compute_mask(arg, given)
        if direct is not None:
            bools.append(keras.ops.convert_to_numpy(direct).astype(bool))
        meta = {"class_name": cls, "kwargs": kwargs, "single": not isinstance(arg, list),
                "inputs": [list(x.shape) for x in inputs],
                "weights": [list(w.shape) for w in weights], "out": list(result.shape),
                "masks": [None if m is None else list(m.shape) for m in masks],
                "outmask": None if ymask is None else list(np.shape(ymask)),
                "compute_mask": None if direct is None else list(direct.shape),
                "supports_masking": bool(layer.supports_masking)}
        out[f"{case}.meta"] = np.array(json.dumps(meta))
        out[f"{case}.floats"] = np.concatenate([a.ravel() for a in floats]).astype(F32)
        if bools:
            out[f"{case}.bools"] = np.concatenate([a.ravel() for a in bools])
    out["__meta__.versions"] = np.array(json.dumps(_versions()))
    np.savez_compressed(HERE / "merge_layers.npz", **out)
    print(len(layer_cases()), "layer cases")


def _versions() -> dict:
    meta = {"keras": keras.__version__, "backend": keras.backend.backend(),
            "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:
        pass
    return meta


if __name__ == "__main__":
    write_models()
    write_layers()
