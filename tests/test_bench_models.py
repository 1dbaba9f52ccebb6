"""The model cases of python -m fastlayers.bench (docs/benchmarks.md §12): each model builds,
and its outputs on fastlayers' two paths match Keras (called and through predict) and the
PyTorch version on the same weights, at a small batch. No timing is asserted."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers.bench import report
from fastlayers.bench.cases import torch
from fastlayers.bench.models import SPECS, ModelCase, keras_module, model_cases

BATCH = 3  # small, and neither 1 nor 64 (the benchmark's batches)


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.name)
def case(request):
    c = ModelCase(request.param, BATCH)
    c.setup()
    return c


def _reference(case):
    with fl.use_backend("numpy"):
        return case.call()


def test_both_fastlayers_paths_agree(case):
    ref = _reference(case)
    outs = ref if isinstance(ref, list) else [ref]
    assert all(np.all(np.isfinite(o)) and o.shape[0] == BATCH for o in outs)
    if not fl.core_available():
        pytest.skip("the compiled core is not available")
    case.check_outputs("cpp", case.runner("cpp")(), ref)


@pytest.mark.parametrize("path", ["keras", "keras-predict"])
def test_keras_gives_the_same_outputs(case, path):
    keras, error = keras_module()
    if keras is None:
        pytest.skip(f"keras not available: {error}")
    # The fastlayers model was loaded from the .keras file the Keras model was saved to.
    assert case.built.keras_model is not None
    case.check_outputs(path, case.runner(path)(), _reference(case))


def test_torch_gives_the_same_outputs(case):
    if torch is None:
        pytest.skip("torch not available")
    case.check_outputs("torch", case.runner("torch")(), _reference(case))


def test_a_wrong_output_is_caught(case):
    ref = _reference(case)
    outs = ref if isinstance(ref, list) else [ref]
    bad = [o.copy() for o in outs]
    bad[-1].flat[0] += 0.5
    with pytest.raises(AssertionError):
        case.check_outputs("numpy", bad, ref)
    with pytest.raises(AssertionError, match="outputs"):
        case.check_outputs("numpy", outs + [outs[0]], ref)


def test_text_inputs_have_padding_and_every_length():
    c = ModelCase(next(s for s in SPECS if s.name == "text-bilstm"), 64)
    ids = c.spec.inputs(np.random.default_rng(0), 64)[0]
    lengths = (ids != 0).sum(axis=1)
    assert lengths[0] == 73 and lengths.min() >= 20 and lengths.max() <= 100
    for row, n in zip(ids, lengths):  # padded at the end: tokens, then zeros only
        assert np.all(row[:n] != 0) and np.all(row[n:] == 0)


def test_ids_and_batches():
    ids = [c.id for c in model_cases()]
    assert len(ids) == len(set(ids)) == 2 * len(SPECS)
    assert {c.batch for c in model_cases()} == {1, 64}
    assert all(i.startswith("model-") for i in ids)


def test_model_rows():
    times = {"numpy": 2e-3, "cpp": 1e-3, "keras": 5e-3, "keras-predict": 4e-3, "torch": 1.5e-3}
    cells = report.model_row_cells("model-x-b1", "x", times)
    assert cells[-2:] == ["4.00x", "1.50x"]  # over the faster Keras way
    assert report.model_row_cells("model-x-b1", "x", {"cpp": 1e-3})[-2:] == ["-", "-"]
    head = report.format_table_head(False, True, cols=report.MODEL_COLUMNS)
    line = report.format_row(cells, True, cols=report.MODEL_COLUMNS)
    assert head[0].count("|") == line.count("|")
    assert len(report.format_row(cells, False, cols=report.MODEL_COLUMNS)) > 0


def test_main_runs_the_model_cases_only(capsys, tmp_path):
    import json

    from fastlayers.bench.__main__ import main

    out_json = str(tmp_path / "run.json")
    args = ["--models", "--only", "model-seed-dense-b1", "--paths", "numpy,cpp", "--threads", "1",
            "--repeats", "1", "--markdown", "--json", out_json]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("| model-seed-dense-b1 |")]) == 1
    assert not [line for line in out if line.startswith("| softmax")]
    doc = json.load(open(out_json))
    assert doc["cases"] == [] and [m["id"] for m in doc["models"]] == ["model-seed-dense-b1"]
    assert set(doc["models"][0]["paths"]) <= {"numpy", "cpp"}
    # A saved run prints its model rows again.
    assert main(["--load", out_json, "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("| model-seed-dense-b1 |")]) == 1


def test_main_no_models_and_selection(capsys):
    from fastlayers.bench.__main__ import main

    args = ["--no-models", "--only", "softmax-1x64,model-seed", "--paths", "numpy", "--threads",
            "1", "--repeats", "1", "--markdown"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("| softmax-1x64 |")]
    assert not [line for line in out if line.startswith("| model-")]
    with pytest.raises(SystemExit):
        main(["--models", "--no-models"])
