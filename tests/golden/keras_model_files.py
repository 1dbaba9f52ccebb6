"""Writing Keras models and single layers as fixtures: what make_models_convpool.py and
make_models_decoder.py share (the older make_models_*.py scripts keep their own copies).

Imported by those scripts (run by hand with Keras installed), never by the tests.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import torch

F32 = np.float32


def write_models(models: dict[str, Callable], here: Path,
                 training: bool | None = None) -> dict[str, np.ndarray]:
    """Build each ``models[name]()`` -> (model, inputs), give it seeded uniform weights in
    [-0.5, 0.5], save it to ``here/models/<name>.keras``, ``.h5`` (Keras 3's legacy HDF5
    writer) and ``.weights.h5``, and return the arrays ``<name>.weights.<i>``,
    ``<name>.inputs.<i>`` and ``<name>.out.<i>`` (Keras's outputs, called with
    ``training=training`` when it is given) in the layout of make_golden_models.py."""
    out: dict[str, np.ndarray] = {}
    (here / "models").mkdir(exist_ok=True)
    for name, make in models.items():
        keras.utils.set_random_seed(0)
        model, inputs = make()
        rng = np.random.default_rng(len(name) * 7919)
        weights = [rng.uniform(-0.5, 0.5, w.shape).astype(F32) for w in model.get_weights()]
        model.set_weights(weights)
        call_kwargs = {} if training is None else {"training": training}
        result = model(inputs if len(inputs) > 1 else inputs[0], **call_kwargs)
        outs = result if isinstance(result, (list, tuple)) else [result]
        for i, w in enumerate(weights):
            out[f"{name}.weights.{i}"] = w
        for i, x in enumerate(inputs):
            out[f"{name}.inputs.{i}"] = x
        for i, y in enumerate(outs):
            out[f"{name}.out.{i}"] = keras.ops.convert_to_numpy(y).astype(F32)
        model.save(here / "models" / f"{name}.keras")
        model.save(here / "models" / f"{name}.h5")
        model.save_weights(here / "models" / f"{name}.weights.h5")
    return out


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` and ``__meta__.versions`` (what made them) into a compressed .npz."""
    versions = json.dumps(
        {
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "argv": sys.argv[1:],
        }
    )
    np.savez_compressed(path, **arrays, **{"__meta__.versions": np.array(versions)})


def layer_cases(specs: dict[str, tuple], seed: int,
                reference: Callable[[str, dict, tuple, np.ndarray], Any] | None = None
                ) -> dict[str, np.ndarray]:
    """Single Keras layers as fixtures. ``specs``: name -> (class name, constructor
    arguments, input shape[, mask]); case i draws x and uniform weights in [-0.5, 0.5] from
    seed ``seed + i``. One float32 array per case: x, the weights (Keras order), the mask
    (as 0/1, when the call takes one) and y, flattened and concatenated in that order;
    ``__cases__`` (JSON) gives per case the class name, the arguments, the shapes and ``ref``.
    y is the Keras layer's output ("keras"), unless ``reference(class name, arguments, shape,
    x)`` returns (y, ref) for the case."""
    out: dict[str, np.ndarray] = {}
    cases = {}
    for i, (name, spec) in enumerate(specs.items()):
        cls, cfg, shape = spec[:3]
        mask = None if len(spec) < 4 else np.array(spec[3], dtype=bool)
        rng = np.random.default_rng(seed + i)
        x = rng.standard_normal(shape).astype(F32)
        layer = getattr(keras.layers, cls)(**cfg)
        layer.build(shape)
        weights = [rng.uniform(-0.5, 0.5, w.shape).astype(F32) for w in layer.get_weights()]
        layer.set_weights(weights)
        y = layer(x) if mask is None else layer(x, mask=mask)
        y = keras.ops.convert_to_numpy(y).astype(F32)
        ref = "keras"
        other = None if reference is None else reference(cls, cfg, shape, x)
        if other is not None:
            y, ref = other
        parts = [x, *weights] + ([] if mask is None else [mask.astype(F32)]) + [y]
        cases[name] = {
            "class_name": cls,
            "config": cfg,
            "ref": ref,
            "x": x.shape,
            "weights": [w.shape for w in weights],
            "y": y.shape,
            "mask": None if mask is None else mask.shape,
        }
        out[name] = np.concatenate([p.ravel() for p in parts])
    out["__cases__"] = np.array(json.dumps(cases))
    return out
