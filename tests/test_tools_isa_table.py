"""tools/isa_table.py: the medians and ratios of its table, from bench JSON written here."""

from __future__ import annotations

import json

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("isa_table")


def _stats(median_s, pct=None):
    return {
        "median_s": median_s,
        "p10_s": median_s,
        "p90_s": median_s,
        "repeats": 1,
        "gflops": 1.0,
        "percent_of_peak": pct,
    }


def _run(isa, threads, cpp_s, numpy_s, torch_s=None, pct=None, peak=100.0, extra=None):
    """A bench JSON (schema 1) with a compute-bound case 'gemm-x', a case 'tiny' and, if
    given, a case `extra` (a compute-bound case timed like gemm-x)."""
    paths = {"cpp": _stats(cpp_s, pct), "numpy": _stats(numpy_s)}
    if torch_s is not None:
        paths["torch"] = _stats(torch_s)
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

    def case(cid, bound, case_paths):
        return {
            "id": cid,
            "op": "dense",
            "shape": "s",
            "flops": 1.0,
            "compute_bound": bound,
            "paths": case_paths,
        }

    cases = [case("gemm-x", True, paths), case("tiny", False, {"cpp": _stats(2e-6)})]
    if extra:
        cases.append(case(extra, True, paths))
    return {
        "schema_version": 1,
        "date": "2026-12-04",
        "mode": "full",
        "machine": machine,
        "cases": cases,
    }


def _write(out, rnd, isa, threads, data):
    (out / f"r{rnd}_{isa}_t{threads}.json").write_text(json.dumps(data))


def _row(table, cid):
    (line,) = [ln for ln in table.splitlines() if ln.startswith(f"| {cid} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_medians_ratios_and_isa_speed(tool, tmp_path):
    # avx512, rounds written out of order: cpp 1, 2, 6 ms -> median 2 ms (mean 3); numpy/cpp
    # ratios 0.9, 1.5, 1.2 -> 1.2x; torch/cpp 3, 0.5, 0.5 -> 0.50x (the median of the per-run
    # ratios; the median times would give 0.75x); % of peak 95, 72, 70 -> 72 %; peak 200, 150,
    # 300 -> 200.
    avx512 = [
        (1e-3, 0.9e-3, 3e-3, 95.0, 200.0),
        (2e-3, 3e-3, 1e-3, 72.0, 150.0),
        (6e-3, 7.2e-3, 3e-3, 70.0, 300.0),
    ]
    for rnd, (cpp, npy, trc, pct, peak) in zip((3, 1, 2), avx512):
        _write(tmp_path, rnd, "avx512", 1, _run("avx512", 1, cpp, npy, trc, pct, peak))
        # avx2: 4 ms each run, numpy 2 ms (0.50x, bold), no torch path.
        _write(tmp_path, rnd, "avx2", 1, _run("avx2", 1, 4e-3, 2e-3, None, 40.0))
    for name in ("r1_avx2_t1.json.bak", "notes.md", "xr1_avx2_t1.json"):
        (tmp_path / name).write_text("not a run")
    runs = tool.load_runs(tmp_path)
    assert sorted(runs) == [("avx2", 1), ("avx512", 1)]
    # Round order: rounds 1, 2, 3 were the 2nd, 3rd and 1st tuples.
    got = [r["cases"][0]["paths"]["cpp"]["median_s"] for r in runs[("avx512", 1)]]
    assert got == [2e-3, 6e-3, 1e-3]
    table = tool.render(runs, ["avx512", "avx2"])
    assert "Test CPU; runs: avx512 3, avx2 3" in table
    assert "avx512 200.0, avx2 100.0" in table
    assert _row(table, "gemm-x") == [
        "gemm-x",
        "2.00 ms",
        "1.20x",
        "**0.50x**",
        "72 %",
        "4.00 ms",
        "**0.50x**",
        "-",
        "40 %",
        "2.00x",
    ]
    # Not compute-bound: no % of peak; peers not timed: "-"; equal times: 1.00x.
    assert _row(table, "tiny") == ["tiny", "2.0 us", "-", "-", "", "2.0 us", "-", "-", "", "1.00x"]
    # The other order compares avx2 with avx512 (avx512's time / avx2's).
    assert _row(tool.render(runs, ["avx2", "avx512"]), "gemm-x")[-1] == "**0.50x**"


def test_bold_is_what_prints_below_one(tool):
    assert tool._fmt_ratio(0.996) == "1.00x"
    assert tool._fmt_ratio(0.994) == "**0.99x**"
    assert tool._fmt_ratio(1.0) == "1.00x"
    assert tool._fmt_ratio(None) == "-"


def test_uneven_runs_and_cases(tool, tmp_path):
    """A level with fewer runs, and a case only one level (or one round) ran, are shown."""
    _write(tmp_path, 1, "avx512", 1, _run("avx512", 1, 1e-3, 1e-3))
    _write(tmp_path, 2, "avx512", 1, _run("avx512", 1, 1e-3, 1e-3, extra="late"))
    _write(tmp_path, 1, "avx2", 1, _run("avx2", 1, 2e-3, 1e-3, extra="only-avx2"))
    table = tool.render(tool.load_runs(tmp_path), ["avx512", "avx2"])
    assert "runs: avx512 2, avx2 1" in table
    assert _row(table, "late")[1:3] == ["1.00 ms", "1.00x"]
    assert _row(table, "late")[5:] == ["-", "-", "-", "-", "-"]
    assert _row(table, "only-avx2")[1:5] == ["-", "-", "-", "-"]
    assert _row(table, "only-avx2")[5:7] == ["2.00 ms", "**0.50x**"]


def test_load_refuses_what_is_not_a_run(tool, tmp_path, capsys):
    (tmp_path / "r1_avx2_t1.json").write_text('{"cases": []}')
    with pytest.raises(SystemExit) as exc:
        tool.main(["--load", str(tmp_path)])
    assert exc.value.code == 2
    assert "r1_avx2_t1.json" in capsys.readouterr().err
    (tmp_path / "r1_avx2_t1.json").write_text("{truncated")
    with pytest.raises(SystemExit):
        tool.main(["--load", str(tmp_path)])
    assert "not JSON" in capsys.readouterr().err
    # A run file the OS cannot read (here a directory with a run file's name): an argparse
    # error naming it, not a traceback.
    (tmp_path / "r1_avx2_t1.json").unlink()
    (tmp_path / "r2_avx2_t1.json").mkdir()
    with pytest.raises(SystemExit) as exc:
        tool.main(["--load", str(tmp_path)])
    assert exc.value.code == 2
    assert "r2_avx2_t1.json" in capsys.readouterr().err


def test_times_of_a_second_or_more_print_in_seconds(tool, tmp_path):
    _write(tmp_path, 1, "avx2", 1, _run("avx2", 1, 2.5, 1.25))
    table = tool.render(tool.load_runs(tmp_path), ["avx2"])
    assert _row(table, "gemm-x")[1:3] == ["2.50 s", "**0.50x**"]


def test_thread_counts_get_their_own_tables(tool, tmp_path):
    _write(tmp_path, 1, "avx2", 1, _run("avx2", 1, 2e-3, 2e-3))
    _write(tmp_path, 1, "avx2", 2, _run("avx2", 2, 1e-3, 2e-3))
    table = tool.render(tool.load_runs(tmp_path), ["avx2"])
    assert "### 1 thread(s)" in table and "### 2 thread(s)" in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| gemm-x |")]
    assert [r.split("|")[2].strip() for r in rows] == ["2.00 ms", "1.00 ms"]


def test_bad_arguments_are_refused(tool, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
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
        ["--out", str(tmp_path), "--threads", "1,1"],
        ["--out", str(tmp_path / "a-file")],  # exists, not a directory
        ["--out", str(tmp_path / "a-file" / "sub")],  # a parent is not a directory
    ):
        with pytest.raises(SystemExit) as exc:
            tool.main(argv)
        assert exc.value.code == 2, argv
        assert "error:" in capsys.readouterr().err, argv
    # --out must not hold runs already: they would mix into the new table.
    _write(tmp_path, 1, "avx2", 1, _run("avx2", 1, 1e-3, 1e-3))
    with pytest.raises(SystemExit) as exc:
        tool.main(["--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "already holds runs" in capsys.readouterr().err


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
    assert row[1].endswith(" us") and row[2].endswith("x") and row[3] == "-"


def test_a_level_this_machine_does_not_run_stops_before_timing(tool, tmp_path, capsys):
    import fastlayers as fl

    if not fl.core_available():
        pytest.skip("the compiled core is not installed")
    supported = fl.runtime_info()["isas_supported"]
    missing = [i for i in ("avx2", "avx512", "neon") if i not in supported]
    argv = ["--out", str(tmp_path / "o"), "--isas", missing[0], "--threads", "1", "--rounds", "1"]
    assert tool.main(argv + ["--only", "softmax-1x64", "--paths", "cpp"]) == 1
    assert f"FASTLAYERS_ISA={missing[0]} runs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing was timed
    # A name that is no ISA: fastlayers itself refuses to import.
    argv[argv.index("--isas") + 1] = "sse9"
    assert tool.main(argv + ["--only", "softmax-1x64", "--paths", "cpp"]) == 1
    err = capsys.readouterr().err
    assert "FASTLAYERS_ISA must be one of" in err and "with FASTLAYERS_ISA=sse9 failed" in err
    assert not (tmp_path / "o").exists()
