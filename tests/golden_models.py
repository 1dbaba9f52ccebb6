"""Whole Keras models' weights, inputs and outputs (tests/golden/models.npz, made by
tests/golden/make_golden_models.py), read the same way by the model and the file-loading
tests. Not a test module (no test_ prefix)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GOLDEN = np.load(Path(__file__).parent / "golden" / "models.npz")
CASES = sorted({k.split(".")[0] for k in GOLDEN.files if not k.startswith("__")})


def golden(case: str, part: str) -> list[np.ndarray]:
    """The arrays ``<case>.<part>.0``, ``.1``, ... (part: weights, inputs or out)."""
    out, i = [], 0
    while f"{case}.{part}.{i}" in GOLDEN:
        out.append(GOLDEN[f"{case}.{part}.{i}"])
        i += 1
    return out


def assert_keras_outputs(case: str, got) -> None:
    """``got`` (an array or a list of them) equals Keras's outputs to float32 rounding."""
    got = got if isinstance(got, list) else [got]
    want = golden(case, "out")
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(w).max())))
