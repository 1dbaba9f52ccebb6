"""Whole Keras models' weights, inputs and outputs, read the same way by the model and the
file-loading tests. Not a test module (no test_ prefix).

The cases come from every ``tests/golden/models*.npz``: ``models.npz`` (made by
tests/golden/make_golden_models.py) and one file per topic, ``models_<topic>.npz`` (made by
``make_models_<topic>.py``). Case names are unique across the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).parent / "golden"


def read(paths) -> dict[str, np.ndarray]:
    """The case arrays of the given .npz files (names in tests/golden/ or paths), merged; an
    array name found in two files is an error."""
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        path = GOLDEN_DIR / path
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                if key.startswith("__"):
                    continue
                if key in arrays:
                    raise ValueError(f"{path.name}: case array {key!r} is also in another file")
                arrays[key] = data[key]
    return arrays


def parts(arrays: dict[str, np.ndarray], case: str, part: str) -> list[np.ndarray]:
    """The arrays ``<case>.<part>.0``, ``.1``, ... of ``arrays`` (part: weights, inputs or
    out)."""
    out, i = [], 0
    while f"{case}.{part}.{i}" in arrays:
        out.append(arrays[f"{case}.{part}.{i}"])
        i += 1
    return out


GOLDEN = read(sorted(GOLDEN_DIR.glob("models*.npz")))
CASES = sorted({k.split(".")[0] for k in GOLDEN})


def golden(case: str, part: str) -> list[np.ndarray]:
    """The arrays ``<case>.<part>.0``, ``.1``, ... of the model cases."""
    return parts(GOLDEN, case, part)


def assert_keras_outputs(case: str, got) -> None:
    """``got`` (an array or a list of them) equals Keras's outputs to float32 rounding."""
    got = got if isinstance(got, list) else [got]
    want = golden(case, "out")
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32
        finite_max = float(np.abs(w[np.isfinite(w)]).max(initial=0.0))
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * max(1.0, finite_max))


def read_layer_cases(name: str) -> dict[str, tuple]:
    """The single-layer cases of ``tests/golden/<name>`` (the layout of
    make_models_convpool.py's ``convpool_layers.npz``): case -> (meta, x, weights, mask or
    None, y)."""
    with np.load(GOLDEN_DIR / name, allow_pickle=False) as data:
        meta = json.loads(str(data["__cases__"]))
        cases = {}
        for case, m in meta.items():
            shapes = [m["x"], *m["weights"]] + ([m["mask"]] if m["mask"] else []) + [m["y"]]
            ends = np.cumsum([math.prod(s) for s in shapes])
            flat = data[case]
            assert ends[-1] == flat.size, case
            parts = [p.reshape(s) for p, s in zip(np.split(flat, ends[:-1]), shapes)]
            weights = parts[1 : 1 + len(m["weights"])]
            mask = parts[-2].astype(bool) if m["mask"] else None
            cases[case] = (m, parts[0], weights, mask, parts[-1])
    return cases


def run_layer_case(cases: dict[str, tuple], case: str, backend: str):
    """The fastlayers layer of a single-layer case (its Keras class name and config, the
    case's weights) called on the case's x under ``backend``: (output, Keras's y, x, weights)."""
    import fastlayers as fl
    from fastlayers import layers as L

    meta, x, weights, _, y = cases[case]
    layer = getattr(L, meta["class_name"])(**meta["config"])
    if weights:
        layer.set_weights(weights)
    with fl.use_backend(backend):
        return layer(x), y, x, weights
