#!/usr/bin/env python
"""Make tests/golden/integ.npz, models_integ.npz and models/integ_*: the cross-layer Keras
models of issue 12 (tests/integ_models.py builds them for Keras and for fastlayers alike).

Run by hand (never in CI) from the repository root, with Keras and torch installed:

    KERAS_BACKEND=torch python tests/golden/make_models_integ.py [case ...]

As tests/golden/make_golden_models.py: each model gets seeded random weights (uniform in
[-0.5, 0.5]) with ``set_weights`` and runs on seeded inputs; the npz stores
``<case>.weights.<i>`` (Keras get_weights order), ``<case>.inputs.<i>`` and
``<case>.out.<i>``, and ``<case>.layer_classes`` (JSON: the classes of ``model.layers``
in Keras's order). The models of FILE_CASES are also saved as ``models/<case>.keras``,
``.h5`` (Keras 3's legacy writer) and ``.weights.h5`` and stored in models_integ.npz (the
loader tests read them); the others go to integ.npz only (small fixtures). Token inputs hold
padding zeros at the end, the start and the middle of sequences, and one all-padding
sequence; Masking inputs have zero steps at the same kinds of places.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from integ_models import CASES, FILE_CASES, VOCAB  # noqa: E402

F32 = np.float32

# Padding (0) trailing, leading, in the middle, none at all, and everywhere.
TOKENS = np.array(
    [
        [3, 7, 1, 0, 0, 0, 0],
        [0, 0, 5, 2, 9, 4, 10],
        [6, 0, 8, 0, 0, 2, 1],
        [4, 4, 2, 7, 1, 3, 5],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.int32,
)


def tokens(seed: int, pattern: np.ndarray = TOKENS) -> np.ndarray:
    """``pattern`` with other ids at the same non-padding positions (the zeros stay)."""
    ids = np.random.default_rng(seed).integers(1, VOCAB, pattern.shape).astype(np.int32)
    return np.where(pattern == 0, 0, ids).astype(np.int32)


def masked_floats(seed: int, shape: tuple) -> np.ndarray:
    """Floats (B, T, F) with all-zero steps at the end, start and middle (B >= 3)."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(F32)
    x[0, -2:] = 0.0
    x[1, :2] = 0.0
    x[2, 2] = 0.0
    x[2, 3, 0] = 0.0  # one zero feature only: the step is kept
    return x


def inputs_of(name: str) -> list[np.ndarray]:
    if name == "integ_merge_lstm":
        # b's padding at other positions than a's, so the ORed masks differ from both.
        return [tokens(1), tokens(2, TOKENS[[1, 2, 0, 4, 3]][:, ::-1])]
    if name == "integ_td":
        grid = tokens(3, np.array([[[1, 1, 0, 0, 0], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]],
                                   [[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]],
                                   [[1, 1, 1, 1, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1]]] * 2)[:5])
        return [tokens(4), grid]
    if name == "integ_masking_merges":
        return [masked_floats(15, (4, 5, 2))]
    if name == "integ_seq_masking_td_gru":
        return [masked_floats(5, (4, 6, 3))]
    if name == "integ_multi_nested":
        return [tokens(6), tokens(7, TOKENS[:, ::-1]), masked_floats(8, (5, 5, 3))]
    if name == "integ_cnn":
        rng = np.random.default_rng(9)
        return [rng.standard_normal((3, 9, 8, 3)).astype(F32),
                rng.standard_normal((3, 10, 2)).astype(F32)]
    if name in ("integ_more_merges", "integ_mask_ops", "integ_mha_merges"):
        six = TOKENS[:, 1:]
        return [tokens(10, six), tokens(11, six[[2, 0, 1, 4, 3], ::-1])]
    if name == "integ_td_embedding":
        grid = tokens(12, np.random.default_rng(13).integers(0, 2, (3, 4, 5)))
        grid[0, 1] = 0  # a row of padding only
        x = np.random.default_rng(14).standard_normal((3, 4, 5, 2)).astype(F32)
        x[grid == 0] = 0.0
        return [grid, x]
    return [tokens(len(name))]


def main(selected: list[str]):
    unknown = sorted(set(selected) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {sorted(CASES)}")
    npzs = {True: HERE / "models_integ.npz", False: HERE / "integ.npz"}
    outs_by_file: dict[bool, dict[str, np.ndarray]] = {True: {}, False: {}}
    for with_files, npz in npzs.items():
        if selected and npz.exists():
            with np.load(npz) as old:
                outs_by_file[with_files] = {
                    k: old[k] for k in old.files if k.split(".")[0] not in selected}
    (HERE / "models").mkdir(exist_ok=True)
    for name, make in CASES.items():
        if selected and name not in selected:
            continue
        with_files = name in FILE_CASES
        out = outs_by_file[with_files]
        keras.utils.set_random_seed(0)
        model = make(keras)
        inputs = inputs_of(name)
        rng = np.random.default_rng(len(name) * 7919)
        weights = [rng.uniform(-0.5, 0.5, w.shape).astype(F32) for w in model.get_weights()]
        model.set_weights(weights)
        result = model(inputs if len(inputs) > 1 else inputs[0])
        outs = result if isinstance(result, (list, tuple)) else [result]
        for i, w in enumerate(weights):
            out[f"{name}.weights.{i}"] = w
        # The order of model.layers (Keras's map_graph: depth, mask ops included) fixes the
        # order of get_weights; the tests compare fastlayers' with it.
        out[f"{name}.layer_classes"] = np.array(json.dumps(
            [type(layer).__name__ for layer in model.layers]))
        for i, x in enumerate(inputs):
            out[f"{name}.inputs.{i}"] = x
        for i, y in enumerate(outs):
            out[f"{name}.out.{i}"] = keras.ops.convert_to_numpy(y).astype(F32)
        if with_files:
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
    for with_files, npz in npzs.items():
        out = outs_by_file[with_files]
        out["__meta__.versions"] = np.array(json.dumps(meta))
        np.savez_compressed(npz, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
