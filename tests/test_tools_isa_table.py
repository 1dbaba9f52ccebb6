"""tools/isa_table.py: the medians and ratios of its table, from bench JSON written here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_TOOL = Path(__file__).resolve().parent.parent / "tools" / "isa_table.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("isa_table", _TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(isa, threads, cpp_s, numpy_s, torch_s=None, pct=None, peak=100.0):
    """A bench JSON with one compute-bound case 'gemm-x' and one other case 'tiny'."""
    paths = {"cpp": {"median_s": cpp_s, "percent_of_peak": pct}, "numpy": {"median_s": numpy_s}}
    if torch_s is not None:
        paths["torch"] = {"median_s": torch_s}
    machine = {
        "cpu": "Test CPU",
        "isa": isa,
        "threads": threads,
        "versions": {"numpy": "9.9", "torch": "1.0"},
        "blas": [{"internal_api": "openblas", "architecture": "Haswell"}],
        "blas_pin": "none",
        "torch_cpu_capability": "AVX2",
        "peak_total_gflops": peak,
    }
    cases = [
        {"id": "gemm-x", "compute_bound": True, "paths": paths},
        {"id": "tiny", "compute_bound": False, "paths": {"cpp": {"median_s": 2e-6}}},
    ]
    return {"machine": machine, "cases": cases}


def _write(out, rnd, isa, threads, data):
    (out / f"r{rnd}_{isa}_t{threads}.json").write_text(json.dumps(data))


def _row(table, cid):
    (line,) = [ln for ln in table.splitlines() if ln.startswith(f"| {cid} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_medians_ratios_and_isa_speed(tool, tmp_path):
    # avx512: cpp 1, 2, 3 ms -> median 2 ms; numpy/cpp ratios 0.9, 1.5, 1.2 -> 1.2x;
    # torch/cpp 3, 0.5, 1 -> 1.0x (median of the per-run ratios, not of the times).
    for rnd, (cpp, npy, trc, pct) in enumerate(
        [(1e-3, 0.9e-3, 3e-3, 80.0), (2e-3, 3e-3, 1e-3, 90.0), (3e-3, 3.6e-3, 3e-3, 70.0)], 1
    ):
        _write(tmp_path, rnd, "avx512", 1, _run("avx512", 1, cpp, npy, trc, pct, peak=200.0))
        # avx2: 4 ms each run, numpy 2 ms (0.5x, bold), no torch path.
        _write(tmp_path, rnd, "avx2", 1, _run("avx2", 1, 4e-3, 2e-3, None, 40.0, peak=100.0))
    runs = tool.load_runs(tmp_path)
    assert sorted(runs) == [("avx2", 1), ("avx512", 1)]
    assert [r["cases"][0]["paths"]["cpp"]["median_s"] for r in runs[("avx512", 1)]] == [
        1e-3,
        2e-3,
        3e-3,
    ]
    table = tool.render(runs, ["avx512", "avx2"])
    assert "median of 3 run(s); Test CPU" in table
    assert "avx512 200.0, avx2 100.0" in table
    assert _row(table, "gemm-x") == [
        "gemm-x",
        "2.00 ms",
        "1.20x",
        "1.00x",
        "80 %",
        "4.00 ms",
        "**0.50x**",
        "-",
        "40 %",
        "2.00x",
    ]
    # Not compute-bound: no % of peak; peers not timed: "-"; equal times: 1.00x.
    assert _row(table, "tiny") == ["tiny", "2.0 us", "-", "-", "", "2.0 us", "-", "-", "", "1.00x"]
    # The other order compares avx2 with avx512 (its time / theirs).
    assert _row(tool.render(runs, ["avx2", "avx512"]), "gemm-x")[-1] == "**0.50x**"


def test_thread_counts_get_their_own_tables(tool, tmp_path):
    _write(tmp_path, 1, "avx2", 1, _run("avx2", 1, 2e-3, 2e-3))
    _write(tmp_path, 1, "avx2", 2, _run("avx2", 2, 1e-3, 2e-3))
    table = tool.render(tool.load_runs(tmp_path), ["avx2"])
    assert "### 1 thread(s)" in table and "### 2 thread(s)" in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| gemm-x |")]
    assert [r.split("|")[2].strip() for r in rows] == ["2.00 ms", "1.00 ms"]


def test_bad_arguments_are_refused(tool, tmp_path, capsys):
    for argv in (
        [],  # neither --out nor --load
        ["--out", str(tmp_path), "--load", str(tmp_path)],
        ["--load", str(tmp_path)],  # no run files there
        ["--load", str(tmp_path / "missing")],
        ["--out", str(tmp_path), "--isas", "avx2,AVX2"],
        ["--out", str(tmp_path), "--threads", "0"],
        ["--out", str(tmp_path), "--threads", "two"],
        ["--out", str(tmp_path), "--rounds", "0"],
        ["--out", str(tmp_path), "--paths", "numpy,torch"],
    ):
        with pytest.raises(SystemExit) as exc:
            tool.main(argv)
        assert exc.value.code == 2, argv
    assert "error:" in capsys.readouterr().err


def test_a_real_run_of_one_case(tool, tmp_path, capsys):
    """The tool drives the bench: one short case on the scalar level (every build has it)."""
    import fastlayers as fl

    if not fl.core_available():
        pytest.skip("the compiled core is not installed (the table times its C++ path)")
    argv = ["--out", str(tmp_path), "--isas", "scalar", "--threads", "1", "--rounds", "1"]
    argv += ["--repeats", "1", "--only", "softmax-1x64", "--paths", "cpp,numpy"]
    assert tool.main(argv) == 0
    data = json.loads((tmp_path / "r1_scalar_t1.json").read_text())
    assert data["machine"]["isa"] == "scalar"
    assert [c["id"] for c in data["cases"]] == ["softmax-1x64"]
    row = _row(capsys.readouterr().out, "softmax-1x64")
    assert row[0] == "softmax-1x64" and row[1].endswith("us") and row[2].endswith("x")
