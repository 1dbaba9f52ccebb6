"""tools/gemm_ceiling.py: its table has a row per library and size, and it refuses bad arguments
(the GFLOP/s themselves are measurements, never asserted)."""

from __future__ import annotations

import re

import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("gemm_ceiling")


def test_table_rows(tool, capsys):
    import fastlayers as fl

    def blas_threads():
        try:
            from threadpoolctl import threadpool_info
        except ImportError:
            return None
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}

    before, blas_before = fl.get_num_threads(), blas_threads()
    threads = 1 if before != 1 else 2
    assert tool.main(["--sizes", "17,32", "--rounds", "2", "--threads", str(threads)]) == 0
    # put back: the tests that follow keep their settings
    assert fl.get_num_threads() == before
    if blas_before is not None:  # (the run may load more libraries: torch's OpenMP)
        after = blas_threads()
        assert {k: after[k] for k in blas_before} == blas_before
    out = capsys.readouterr().out
    libs = ["fastlayers", "numpy"]
    try:
        import torch  # noqa: F401

        libs.append("torch")
    except ImportError:
        pass
    for lib in libs:
        for n in (17, 32):
            row = re.search(rf"^\| {lib} \| {n} \| ([0-9.]+) \| [0-9]+-[0-9]+ \| ([0-9]+) % \|$",
                            out, re.M)
            assert row, f"no row for {lib} at n = {n} in:\n{out}"
            assert float(row.group(1)) > 0
    assert "| mkl |" not in out  # only with --mkl
    assert re.search(r"FMA probe \(\w+, one core\): [0-9.]+ [0-9.]+ GFLOP/s", out)


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--rounds", "0"], ["--sizes", "0"],
                                  ["--sizes", "x"], ["--threads", "100000"]])
def test_bad_arguments(tool, argv):
    with pytest.raises(SystemExit) as e:
        tool.main(argv)
    assert e.value.code == 2


def test_missing_mkl_library(tool, capsys):
    with pytest.raises(SystemExit) as e:
        tool.main(["--sizes", "8", "--rounds", "1", "--mkl", "/nonexistent/libmkl_rt.so"])
    assert e.value.code == 2
    assert "not a loadable MKL runtime library" in capsys.readouterr().err
