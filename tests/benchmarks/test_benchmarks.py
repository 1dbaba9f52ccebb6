"""pytest-benchmark groups, one per public shape of docs/benchmarks.md §7: numpy vs cpp vs
torch vs ONNX Runtime.

Each benchmark asserts that its path gives the NumPy path's numbers, so
``pytest --benchmark-disable`` runs these as tests. Timings:
``pytest tests/benchmarks --benchmark-only`` (or ``python -m fastlayers.bench``).
The cpp path appears for the ops the compiled core serves, torch when importable, ort when
onnxruntime and onnx are importable.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastlayers
from fastlayers.bench import ort
from fastlayers.bench.cases import all_cases, check, torch

NUMPY_ONLY = os.environ.get("FASTLAYERS_TEST_NUMPY_ONLY", "") not in ("", "0")

CASES = {case.id: case for case in all_cases()}
_REFERENCE = {}


def _paths(case):
    paths = ["numpy"]
    if case.op in fastlayers._backend.CPP_OPS and not NUMPY_ONLY:
        paths.append("cpp")  # errors loudly if the core is missing
    if torch is not None and case.torch_prepare is not None:
        paths.append("torch")
    if ort.available() and case.ort_prepare is not None:
        paths.append("ort")
    return paths


def _params():
    for cid, case in CASES.items():
        for path in _paths(case):
            yield pytest.param(cid, path, id=f"{cid}-{path}")


def _reference(case):
    if case.id not in _REFERENCE:
        _REFERENCE[case.id] = np.asarray(case.runner("numpy")())
    return _REFERENCE[case.id]


@pytest.mark.parametrize("cid,path", list(_params()))
def test_benchmark(benchmark, cid, path):
    case = CASES[cid]
    benchmark.group = f"{cid}: {case.desc}"
    benchmark.extra_info["flops"] = case.flops
    case.setup()
    if path in ("torch", "ort"):
        result = benchmark(case.runner(path))
    else:
        # The backend is set around the timed loop, not per call (the cpp path raises
        # NotImplementedError if the core cannot serve the case).
        with fastlayers.use_backend(path):
            result = benchmark(case.call, case.inputs)
    check(case, path, result, _reference(case))
