"""Every op against golden fixtures made with Keras itself (tests/golden/make_golden.py).

Each case stores the fastlayers call (op name, array arguments, keyword arguments)
and the outputs Keras computed. The cases run on the NumPy path and, where the
C++ path serves the op, on C++ as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close_to_keras, backends_for, cpp_serves, run_on

import fastlayers

GOLDEN = Path(__file__).parent / "golden"
FAMILIES = ("dense", "conv2d", "recurrent", "attention")


def _load_cases():
    cases = []
    for family in FAMILIES:
        path = GOLDEN / f"{family}.npz"
        with np.load(path, allow_pickle=False) as data:
            files = {k: data[k] for k in data.files}
        names = sorted({k.split(".", 1)[0] for k in files if not k.startswith("__")})
        for name in names:
            op = str(files[f"{name}.op"])
            kwargs = json.loads(str(files[f"{name}.kwargs"]))
            args, lists, outs = {}, {}, {}
            for key, value in files.items():
                parts = key.split(".")
                if parts[0] != name:
                    continue
                if parts[1] == "args" and len(parts) == 3:
                    args[parts[2]] = value
                elif parts[1] == "args" and len(parts) == 4:
                    lists.setdefault(parts[2], {})[int(parts[3])] = value
                elif parts[1] == "out":
                    outs[int(parts[2])] = value
            for arg, items in lists.items():
                args[arg] = [items[i] for i in sorted(items)]
            outputs = [outs[i] for i in sorted(outs)]
            cases.append((f"{family}/{name}", op, args, kwargs, outputs))
    return cases


CASES = _load_cases()


def _function(op):
    if op.startswith("activation:"):
        return op.split(":", 1)[1], getattr(fastlayers.activations, op.split(":", 1)[1])
    return op, getattr(fastlayers, op)


def _params():
    for case_id, op, args, kwargs, outputs in CASES:
        # fastlayers.activations.<name> is its own op, with its own C++ status.
        base = "activations." + op.split(":", 1)[1] if op.startswith("activation:") else op
        for backend in backends_for(base):
            if backend == "cpp" and not cpp_serves(_function(op)[1], **args, **kwargs):
                continue  # refused calls are checked in test_runtime.py
            yield pytest.param(backend, op, args, kwargs, outputs, id=f"{case_id}-{backend}")


def test_fixtures_cover_every_op():
    ops = {op for _, op, _, _, _ in CASES}
    for name in (
        "dense",
        "flatten",
        "conv2d",
        "lstm",
        "lstm_cell",
        "gru",
        "softmax",
        "attention",
        "additive_attention",
        "scaled_dot_product_attention",
        "multi_head_attention",
    ):
        assert name in ops, f"no golden fixture for {name}"
    assert sum(op.startswith("activation:") for op in ops) >= 20


@pytest.mark.parametrize("backend,op,args,kwargs,outputs", list(_params()))
def test_matches_keras(backend, op, args, kwargs, outputs):
    _, fn = _function(op)
    result = run_on(backend, fn, **args, **kwargs)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    assert len(results) == len(outputs), f"{len(results)} outputs, Keras gave {len(outputs)}"
    for i, (got, want) in enumerate(zip(results, outputs)):
        assert got.dtype == np.float32, f"output {i} has dtype {got.dtype}"
        assert got.shape == want.shape, f"output {i}: shape {got.shape}, Keras {want.shape}"
        # Keras computes in float32 too; allow float32 rounding of reductions.
        assert_close_to_keras(got, want, err_msg=f"output {i} of {op}")
