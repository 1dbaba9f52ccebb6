"""The benchmark's reports: the JSON document (--json, --load), the comparison of two runs
(--compare, --fail-on-regression), the speedup plot (--plot) and the ONNX Runtime peer.
No timing is asserted: only the structure of what is written and the arithmetic on
hand-made numbers."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest

import fastlayers as fl
from fastlayers.bench import ort, results
from fastlayers.bench import plot as bench_plot
from fastlayers.bench.__main__ import main
from fastlayers.bench.cases import (
    _conv_case,
    _dense_case,
    _gru_case,
    _lstm_case,
    _sdpa_case,
    _softmax_case,
    check,
    torch,
)

NUMBER = (int, float)


# ------------------------------------------------------------------------ --json


def _run_json(tmp_path, capsys, paths):
    out = tmp_path / "run.json"
    argv = ["--only", "softmax-1x64,dense-1", "--paths", ",".join(paths), "--threads", "1"]
    assert main(argv + ["--repeats", "2", "--json", str(out)]) == 0
    assert f"results written to {out}" in capsys.readouterr().out
    return json.loads(out.read_text())


def test_json_document_keys_and_types(tmp_path, capsys):
    paths = ["numpy", "cpp", "torch", "ort"]
    doc = _run_json(tmp_path, capsys, paths)
    assert doc["schema_version"] == 1 and doc["tool"] == "fastlayers.bench"
    assert doc["mode"] == "quick"
    assert isinstance(doc["date"], str) and doc["date"].endswith("Z") and len(doc["date"]) == 20

    m = doc["machine"]
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert m["threads"] == 1
    assert isinstance(m["logical_cpus"], int) and m["logical_cpus"] >= 1
    assert m["physical_cores"] is None or isinstance(m["physical_cores"], int)
    info = fl.runtime_info()
    assert m["isa"] == info["isa"]
    assert isinstance(m["isas_built"], list) and isinstance(m["ops_in_cpp"], list)
    v = m["versions"]
    assert set(v) == {"python", "numpy", "fastlayers", "torch", "onnxruntime"}
    assert v["python"] == ".".join(map(str, sys.version_info[:3]))
    assert v["numpy"] == np.__version__ and v["fastlayers"] == fl.__version__
    for peer in ("torch", "onnxruntime"):
        assert v[peer] is None or isinstance(v[peer], str)
    assert v["onnxruntime"] == ort.version()
    if m["blas"] is not None:  # threadpoolctl installed: the kernel family is said
        assert m["blas"] and all(
            set(lib) == {"internal_api", "version", "architecture", "num_threads", "filepath"}
            for lib in m["blas"]
        )
    assert isinstance(m["blas_pin"], str) and isinstance(m["fma_peak_how"], str)
    assert m["fma_peak_gflops"] is None or m["fma_peak_gflops"] > 0
    assert isinstance(m["peak_units"], int) and m["peak_units"] >= 1
    if m["fma_peak_gflops"] is None:
        assert m["peak_total_gflops"] is None
    else:
        assert m["peak_total_gflops"] == pytest.approx(m["fma_peak_gflops"] * m["peak_units"])

    assert [c["id"] for c in doc["cases"]] == ["dense-1", "softmax-1x64"]
    for case in doc["cases"]:
        assert set(case) == {"id", "op", "shape", "flops", "compute_bound", "paths"}
        assert isinstance(case["op"], str) and isinstance(case["shape"], str)
        assert isinstance(case["flops"], float) and case["flops"] > 0
        assert case["compute_bound"] is False  # neither shape is bounded by the FMA peak
        expected = {"numpy"} | ({"cpp"} if fl.core_available() else set())
        expected |= {"torch"} if torch is not None else set()
        expected |= {"ort"} if ort.available() else set()
        assert set(case["paths"]) == expected
        for stats in case["paths"].values():
            assert set(stats) == {
                "median_s", "p10_s", "p90_s", "repeats", "gflops", "percent_of_peak"
            }
            assert stats["repeats"] == 2
            assert 0 < stats["p10_s"] <= stats["median_s"] <= stats["p90_s"]
            assert stats["gflops"] == pytest.approx(case["flops"] / stats["median_s"] / 1e9)
            assert stats["percent_of_peak"] is None  # null where not compute-bound
    assert results.validate(doc) is doc


def test_path_stats_percentiles_and_peak():
    s = results.path_stats([4.0, 1.0, 3.0, 2.0, 5.0], flops=2e9, compute_bound=True,
                           peak_total=2.0)
    assert s["median_s"] == 3.0 and s["repeats"] == 5
    assert s["p10_s"] == pytest.approx(1.4) and s["p90_s"] == pytest.approx(4.6)
    assert s["gflops"] == pytest.approx(2 / 3)
    assert s["percent_of_peak"] == pytest.approx(100 / 3)
    assert results.path_stats([1.0], 1e9, False, 2.0)["percent_of_peak"] is None
    assert results.path_stats([1.0], 1e9, True, None)["percent_of_peak"] is None
    with pytest.raises(ValueError, match="no samples"):
        results.path_stats([], 1.0, True, 1.0)


# ------------------------------------------------------------------------ hand-made runs


def _doc(times: dict[str, dict[str, float]], **machine) -> dict:
    """A schema-1 document with the given median seconds per case and path."""
    cases = []
    for cid, per_path in times.items():
        paths = {
            p: {"median_s": t, "p10_s": t, "p90_s": t, "repeats": 3, "gflops": 1e-9 / t,
                "percent_of_peak": None}
            for p, t in per_path.items()
        }
        cases.append({"id": cid, "op": "dense", "shape": "x", "flops": 1.0,
                      "compute_bound": False, "paths": paths})
    mach = {"cpu": "CPU X", "isa": "avx2", "threads": 2,
            "versions": {"python": "3", "numpy": "2", "fastlayers": "0.1.0", "torch": None,
                         "onnxruntime": None}}
    mach.update(machine)
    return {"schema_version": 1, "tool": "fastlayers.bench", "date": "2026-01-01T00:00:00Z",
            "mode": "quick", "machine": mach, "cases": cases}


BASE = _doc({
    "gemm-256": {"numpy": 1.0, "cpp": 0.50, "torch": 2.0, "ort": 1.0},
    "dense-1": {"numpy": 1.0, "cpp": 0.10, "torch": 1.0},
    "conv-seed": {"numpy": 1.0, "cpp": 0.20},
    "old-case": {"numpy": 1.0, "cpp": 1.0},
})
NEW = _doc({
    "gemm-256": {"numpy": 1.05, "cpp": 0.60, "torch": 2.0, "ort": 1.5},  # cpp 1.2x: flagged
    "dense-1": {"numpy": 0.5, "cpp": 0.11, "torch": 1.3},  # cpp 1.1x: not over 10 %
    "conv-seed": {"numpy": 1.0, "cpp": 0.10},  # faster
    "new-case": {"numpy": 1.0},
}, cpu="CPU Y")


def _rows_by(rows):
    return {(r["id"], r["path"]): r for r in rows}


def test_compare_ratios_and_flags():
    rows = results.compare(BASE, NEW)
    by = _rows_by(rows)
    assert set(by) == {
        ("gemm-256", "numpy"), ("gemm-256", "cpp"), ("gemm-256", "torch"), ("gemm-256", "ort"),
        ("dense-1", "numpy"), ("dense-1", "cpp"), ("dense-1", "torch"),
        ("conv-seed", "numpy"), ("conv-seed", "cpp"),
    }
    assert by["gemm-256", "cpp"]["ratio"] == pytest.approx(1.2)
    assert by["gemm-256", "cpp"]["regression"] is True
    assert by["gemm-256", "numpy"]["regression"] is False  # 1.05
    assert by["gemm-256", "ort"]["ratio"] == pytest.approx(1.5)
    assert by["gemm-256", "ort"]["regression"] is True
    assert by["dense-1", "cpp"]["ratio"] == pytest.approx(1.1)
    assert by["dense-1", "cpp"]["regression"] is False  # exactly 10 % is not "over"
    assert by["dense-1", "torch"]["regression"] is True
    assert by["conv-seed", "cpp"]["ratio"] == pytest.approx(0.5)
    assert by["conv-seed", "cpp"]["base_s"] == 0.2 and by["conv-seed", "cpp"]["new_s"] == 0.1
    # Only fastlayers' own paths count as its regressions; the peers' are context.
    assert [(r["id"], r["path"]) for r in results.regressions(rows)] == [("gemm-256", "cpp")]
    assert results.unmatched(BASE, NEW) == (["old-case"], ["new-case"])
    assert results.machine_differences(BASE, NEW) == ["cpu: 'CPU X' -> 'CPU Y'"]
    # A stricter threshold flags dense-1/cpp too; a looser one nothing.
    strict = _rows_by(results.compare(BASE, NEW, threshold=0.05))
    assert strict["dense-1", "cpp"]["regression"] is True
    assert not results.regressions(results.compare(BASE, NEW, threshold=0.5))
    with pytest.raises(ValueError, match="threshold"):
        results.compare(BASE, NEW, threshold=-0.1)


def test_compare_table():
    rows = results.compare(BASE, NEW)
    lines = results.format_compare(rows, "base.json", "new.json", 0.10)
    assert lines[0].startswith("compare: new.json vs base.json")
    head = lines[1].split()
    assert head[:3] == ["id", "numpy", "new/base"]
    body = {line.split()[0]: line for line in lines[3:]}
    assert set(body) == {"gemm-256", "dense-1", "conv-seed"}
    assert "1.20!" in body["gemm-256"] and body["gemm-256"].endswith("REGRESSION")
    assert "1.50!" in body["gemm-256"]  # the ort ratio, flagged too
    assert "1.10" in body["dense-1"] and "1.10!" not in body["dense-1"]
    assert "1.30!" in body["dense-1"] and not body["dense-1"].endswith("REGRESSION")
    assert "0.50" in body["conv-seed"] and "REGRESSION" not in body["conv-seed"]
    md = results.format_compare(rows, "b", "n", 0.10, markdown=True)
    table = [line for line in md if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1 and len(table) == 2 + 3


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_main_compare_exit_status(tmp_path, capsys):
    base = _write(tmp_path, "base.json", BASE)
    new = _write(tmp_path, "new.json", NEW)
    assert main(["--load", new, "--compare", base]) == 0  # flagged, but no exit status asked
    out = capsys.readouterr().out
    assert "note: the runs differ in cpu: 'CPU X' -> 'CPU Y'" in out
    assert f"note: only in {base}: old-case" in out and f"note: not in {base}: new-case" in out
    assert "1 regression(s) over 10% on numpy/cpp: gemm-256/cpp 1.20x" in out
    assert main(["--load", new, "--compare", base, "--fail-on-regression"]) == 1
    capsys.readouterr()
    # No regression of numpy/cpp (the base against itself): exit 0 even when asked to fail.
    assert main(["--load", base, "--compare", base, "--fail-on-regression"]) == 0
    assert "no numpy/cpp time regressed by more than 10%" in capsys.readouterr().out
    # The threshold is an option.
    assert main(["--load", new, "--compare", base, "--threshold", "0.25",
                 "--fail-on-regression"]) == 0
    capsys.readouterr()


def test_main_rejects_bad_result_files(tmp_path, capsys):
    bad_version = copy.deepcopy(BASE)
    bad_version["schema_version"] = 99
    no_median = copy.deepcopy(BASE)
    del no_median["cases"][0]["paths"]["cpp"]["median_s"]
    bad_path = copy.deepcopy(BASE)
    bad_path["cases"][0]["paths"]["jax"] = bad_path["cases"][0]["paths"]["cpp"]
    new = _write(tmp_path, "new.json", NEW)
    for name, doc, message in (
        ("v.json", bad_version, "schema_version is 99"),
        ("m.json", no_median, "paths.cpp.median_s missing"),
        ("p.json", bad_path, "paths.jax: unknown path"),
    ):
        with pytest.raises(SystemExit):
            main(["--load", new, "--compare", _write(tmp_path, name, doc)])
        assert message in capsys.readouterr().err
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(SystemExit):
        main(["--load", str(tmp_path / "text.json")])
    assert "not JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--load", new, "--fail-on-regression"])
    assert "--fail-on-regression needs --compare" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--only", "no-such-case"])
    assert "no case id starts with that" in capsys.readouterr().err


def test_load_prints_the_table_and_rewrites_the_json(tmp_path, capsys):
    new = _write(tmp_path, "new.json", NEW)
    again = tmp_path / "again.json"
    assert main(["--load", new, "--json", str(again)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"results of {new}: 2026-01-01T00:00:00Z, CPU Y, isa avx2, 2 thread")
    row = next(line for line in out.splitlines() if line.startswith("gemm-256"))
    # numpy 1.05 / cpp 0.60, torch 2.0 / 0.60, ort 1.5 / 0.60
    assert row.split()[-4:] == ["1.75x", "3.33x", "2.50x", "0.0"]
    assert json.loads(again.read_text()) == NEW


# ------------------------------------------------------------------------ --plot


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "speedups.png"
    bench_plot.plot_speedups(NEW, str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # Through the command line, from a results file.
    out2 = tmp_path / "cli.png"
    assert main(["--load", _write(tmp_path, "new.json", NEW), "--plot", str(out2)]) == 0
    assert f"speedup plot written to {out2}" in capsys.readouterr().out
    assert out2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_speedups_data():
    ids, per_peer = bench_plot.speedups(NEW)
    assert ids == ["gemm-256", "dense-1", "conv-seed"]  # new-case has no cpp time
    assert per_peer["numpy"] == pytest.approx([1.75, 0.5 / 0.11, 10.0])
    assert per_peer["torch"][:2] == pytest.approx([2.0 / 0.6, 1.3 / 0.11])
    assert per_peer["torch"][2] is None
    assert per_peer["ort"][0] == pytest.approx(2.5) and per_peer["ort"][1:] == [None, None]
    only_numpy = _doc({"a": {"numpy": 1.0}})
    assert bench_plot.speedups(only_numpy) == ([], {})


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"fastlayers\[plot\]"):
        bench_plot.plot_speedups(NEW, str(tmp_path / "x.png"))
    with pytest.raises(ImportError, match=r"fastlayers\[plot\]"):  # before any timing
        main(["--only", "softmax-1x64", "--plot", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------ the ORT peer

SMALL_CASES = [
    _dense_case("d-relu", 7, 13, 17, "relu"),
    _dense_case("d-none", 1, 5, 3, None),
    _conv_case("c-same-s2", 2, 11, 9, 3, 5, 3, stride=2, padding="same"),
    _conv_case("c-dil", 1, 13, 12, 4, 6, 3, padding="same", dilation=2),
    _conv_case("c-valid", 1, 6, 7, 2, 3, 2),
    _lstm_case("l", 3, 5, 4, 7),
    _gru_case("g", 2, 6, 3, 5),
    _sdpa_case("a", 2, 3, 7, 11, 4),
    _sdpa_case("a-causal", 1, 2, 9, 9, 8, causal=True),
    _softmax_case("s", 5, 31),
]


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("threads", [1, 2])
def test_ort_peer_matches_fastlayers(case, threads):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    case.setup()
    with fl.use_backend("numpy"):
        reference = np.asarray(case.call(case.inputs))
    got = case.runner("ort", threads)()
    assert got.shape == reference.shape
    check(case, "ort", got, reference)
    # A wrong graph must fail the check (the check can fail): perturb one weight.
    if "kernel" in case.inputs:
        broken = copy.copy(case)
        broken.inputs = dict(case.inputs, kernel=case.inputs["kernel"] * 1.01)
        with pytest.raises(AssertionError):
            check(case, "ort", broken.runner("ort", threads)(), reference)


def test_ort_session_threads():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from onnx import helper

    model = ort.make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [ort._f32("x", (2,))], [ort._f32("y", (2,))], [], "relu",
    )
    opts = ort.session(model, 3).get_session_options()
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert "intra-op 3 threads, inter-op 1" in ort.describe(3)


def test_ort_missing_is_a_note(monkeypatch, capsys):
    from fastlayers.bench import cases

    monkeypatch.setattr(ort, "onnxruntime", None)
    monkeypatch.setattr(ort, "ORT_ERROR", "ModuleNotFoundError: No module named 'onnxruntime'")
    assert cases.all_cases()[0].runner("ort") is None
    assert main(["--only", "softmax-1x64", "--paths", "numpy,ort", "--threads", "1",
                 "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    header = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert header["onnxruntime"].strip() == "not available"
    assert "onnxruntime peer not available (ModuleNotFoundError" in out
    assert "fastlayers[onnx]" in out
