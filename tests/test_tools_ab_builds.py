"""tools/ab_builds.py: two builds timed in turn give a row per shape, and bad arguments are
refused (the times themselves are measurements, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import TOOLS, load_tool

_TOOL = TOOLS / "ab_builds.py"


@pytest.fixture(scope="module")
def tool():
    return load_tool("ab_builds")


def test_table_rows_for_the_installed_build_against_itself(tool):
    # Workers are other processes: this process's thread counts are not touched.
    out = subprocess.run(
        [sys.executable, str(_TOOL), "--a", "", "--b", "", "--rounds", "2", "--threads", "2",
         "--only", "conv-seed,softmax-1x64"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    assert re.search(r"^# a: .*fastlayers", out, re.M) and re.search(r"^# b: .*fastlayers",
                                                                      out, re.M)
    assert "2 thread(s), 2 turns each" in out
    for cid in ("conv-seed", "softmax-1x64"):
        row = re.search(rf"^\| {cid} \| ([0-9.]+) ms \| [0-9.]+ ms \| ([0-9.]+) ms \| [0-9.]+ "
                        rf"ms \| ([0-9.]+) \| ([0-9.]+) \[[0-9.]+-[0-9.]+\] \|$", out, re.M)
        assert row, f"no row for {cid} in:\n{out}"
        assert float(row.group(1)) > 0 and float(row.group(2)) > 0


def test_every_case_runs_on_the_installed_build(tool):
    import fastlayers as fl

    small = {"conv-seed", "lstm-seed", "gru-seed", "attn-seed", "softmax-1x64", "dense-1"}
    cases = tool.make_cases(fl)
    assert small <= set(cases)
    for cid in sorted(small):
        out = np.asarray(cases[cid]()())
        assert out.dtype == np.float32 and out.size > 0 and np.isfinite(out).all(), cid


@pytest.mark.parametrize("argv, message", [
    (["--b", ""], "--a is required"),
    (["--a", "", "--only", "gemm-256,nope"], "unknown case ids: nope"),
    (["--a", "", "--threads", "0"], "at least 1"),
    (["--a", "", "--rounds", "0"], "at least 1"),
])
def test_bad_arguments(tool, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_path_without_fastlayers_is_refused(tmp_path):
    # (it would time the installed build against itself and print ratios near 1)
    run = subprocess.run(
        [sys.executable, str(_TOOL), "--a", str(tmp_path), "--rounds", "1", "--only",
         "softmax-1x64"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert f"no fastlayers under {str(tmp_path)!r}" in run.stderr


def test_a_worker_that_dies_is_named(tool):
    class Dead:  # a worker whose output ended: its process exited
        where = "/somewhere/fastlayers/__init__.py"

        class stdin:  # noqa: N801 - a stand-in for the pipe
            write = flush = staticmethod(lambda *a: None)

        class stdout:  # noqa: N801
            readline = staticmethod(lambda: "")

        @staticmethod
        def wait():
            return -11

    with pytest.raises(SystemExit, match=r"build a \(/somewhere/fastlayers/__init__.py\) died "
                                         r"on conv-seed \(exit status -11\)"):
        tool.ask(Dead(), "a", "conv-seed", 1)
