"""The benchmark's own logic (python -m fastlayers.bench): the environment it re-executes
with, the header facts, FLOP counts, % of peak and the table. No timing is asserted."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import pytest

import fastlayers
from fastlayers.bench import machine, report
from fastlayers.bench.cases import COMPUTE_BOUND_IDS, all_cases

PINS = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}


# ------------------------------------------------------------------------ environment


def test_child_environment_drops_the_pins_and_marks_the_child():
    env, removed = machine.child_environment(dict(PINS, HOME="/h"), keep_blas_env=False)
    assert removed == ["OPENBLAS_CORETYPE=Haswell", "OPENBLAS_L2_SIZE=512"]
    assert not set(PINS) & set(env)
    assert env["HOME"] == "/h"
    assert env[machine.CHILD_MARK] == "1"
    assert env[machine.THREAD_TIMEOUT_VAR] == machine.THREAD_TIMEOUT_VALUE
    assert env[machine.SCRUBBED_MARK] == "OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512"
    # The child runs with that environment and does not re-execute again.
    assert machine.child_environment(env, keep_blas_env=False) == (None, [])


def test_child_environment_keeps_the_pins_on_request():
    env, removed = machine.child_environment(dict(PINS), keep_blas_env=True)
    assert removed == []
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["OPENBLAS_L2_SIZE"] == "512"
    assert machine.SCRUBBED_MARK not in env
    assert env[machine.THREAD_TIMEOUT_VAR] == machine.THREAD_TIMEOUT_VALUE
    # Nothing to change: no re-execution at all.
    done = dict(PINS, OPENBLAS_THREAD_TIMEOUT="4")
    assert machine.child_environment(done, keep_blas_env=True) == (None, [])


def test_one_pin_alone_is_removed_too():
    env, removed = machine.child_environment(
        {"OPENBLAS_L2_SIZE": "1024", "OPENBLAS_THREAD_TIMEOUT": "4"}, keep_blas_env=False
    )
    assert removed == ["OPENBLAS_L2_SIZE=1024"]
    assert "OPENBLAS_L2_SIZE" not in env
    assert machine.child_environment({"OPENBLAS_THREAD_TIMEOUT": "4"}, False) == (None, [])


def test_blas_env_line_says_which_state():
    assert "runs pinned kernels" in machine.blas_env_line(PINS)
    line = machine.blas_env_line({machine.SCRUBBED_MARK: "OPENBLAS_CORETYPE=Haswell"})
    assert line.startswith("none (OPENBLAS_CORETYPE=Haswell removed")
    assert machine.blas_env_line({}) == "none"


# ------------------------------------------------------------------------ CPU facts

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC 9R45
flags\t\t: fpu avx2

processor\t: 1
model name\t: something else
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""


def test_cpu_model_from_cpuinfo():
    assert machine.cpu_model(X86_CPUINFO) == "AMD EPYC 9R45 (family 26, model 2)"
    arm = machine.cpu_model(ARM_CPUINFO)
    assert arm.endswith("(implementer 0x41, part 0xd40)")
    assert not arm.startswith("0 ")  # "processor: 0" is a CPU number, not a name
    assert machine.cpu_model("") != ""  # falls back to platform


def test_physical_cores_counts_smt_siblings_once(tmp_path):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no sched_getaffinity on this platform")
    cpus = sorted(os.sched_getaffinity(0))
    for i, c in enumerate(cpus):  # pairs of logical CPUs share one core
        topo = tmp_path / f"cpu{c}" / "topology"
        topo.mkdir(parents=True)
        (topo / "core_id").write_text(f"{i // 2}\n")
        (topo / "physical_package_id").write_text("0\n")
    assert machine.physical_cores(str(tmp_path)) == (len(cpus) + 1) // 2
    (tmp_path / f"cpu{cpus[0]}" / "topology" / "core_id").unlink()
    assert machine.physical_cores(str(tmp_path)) is None


def test_blas_libraries_report_the_kernel_family():
    pytest.importorskip("threadpoolctl")
    libs = machine.blas_libraries()
    assert libs, "numpy is loaded, so threadpoolctl should see its BLAS"
    line = machine.blas_line(libs[0])
    assert libs[0]["internal_api"] in line and "architecture" in line


# ------------------------------------------------------------------------ peak


def test_measure_peak_takes_the_best_probe_run():
    runs = iter([90.0, 110.0, 100.0])
    calls = []

    def probe(isa, seconds):
        calls.append((isa, seconds))
        return next(runs)

    core = types.SimpleNamespace(fma_peak_probe=probe)
    peak, how = machine.measure_peak(core, "avx2", seconds=0.01, tries=3)
    assert peak == 110.0
    assert calls == [("avx2", 0.01)] * 3
    assert "fma_peak_probe('avx2')" in how


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_measure_peak_rejects_a_useless_number(value):
    core = types.SimpleNamespace(fma_peak_probe=lambda isa, s: value)
    peak, how = machine.measure_peak(core, "avx2", seconds=0.01, tries=1)
    assert peak is None and "no usable number" in how


def test_measure_peak_survives_a_failing_probe():
    def probe(isa, seconds):
        raise ValueError(f"no probe for {isa}")

    peak, how = machine.measure_peak(types.SimpleNamespace(fma_peak_probe=probe), "neon")
    assert peak is None and how == "probe failed (ValueError: no probe for neon)"


def test_no_probe_means_no_peak():
    peak, how = machine.measure_peak(types.SimpleNamespace(), "avx2")
    assert peak is None and how.startswith("probe unavailable")
    assert machine.measure_peak(None, None)[0] is None


def test_peak_units_and_percent():
    assert machine.peak_units(1, 2) == 1
    assert machine.peak_units(4, 2) == 2  # SMT threads share a core's FMA units
    assert machine.peak_units(3, None) == 3
    # 2e9 flops in 0.02 s = 100 GFLOP/s = 50 % of 200.
    assert machine.percent_of_peak(2e9, 0.02, 200.0) == pytest.approx(50.0)
    assert machine.percent_of_peak(2e9, None, 200.0) is None
    assert machine.percent_of_peak(2e9, 0.02, None) is None


def _info(**kw):
    base = {
        "version": "0.0",
        "core_available": True,
        "isa": "avx2",
        "isas_built": ["scalar", "avx2"],
        "isas_supported": ["scalar", "avx2"],
        "ops_in_cpp": ["dense"],
        "cpu_features": {"avx2": True, "avx512f": False},
        "numpy": np.__version__,
    }
    return dict(base, **kw)


def _header(peak, threads=2, cores=2, blas=None):
    return dict(
        machine.header_items(
            _info(),
            threads,
            cpu="CPU X",
            logical=2,
            cores=cores,
            blas=blas,
            environ={},
            torch_desc=None,
            peak=peak,
            peak_how="probe unavailable (test)" if peak is None else "probe (test)",
        )
    )


def test_header_items():
    h = _header(None)
    assert "isa avx2" in h["fastlayers"]
    assert h["cpu"].startswith("CPU X; 2 logical CPUs on 2 cores; features: avx2")
    assert "avx512f" not in h["cpu"]
    assert h["threads"] == "2 on every path"
    assert h["numpy BLAS"].startswith("unknown")
    assert h["torch"] == "not available"
    assert h["FMA peak"].startswith("probe unavailable") and "no % of peak" in h["FMA peak"]
    lib = {"internal_api": "openblas", "version": "0.3", "architecture": "Zen", "num_threads": 2}
    h = _header(100.0, threads=4, cores=2, blas=[lib])
    assert h["numpy BLAS"].startswith("openblas 0.3, architecture Zen, 2 threads")
    assert "100.0 GFLOP/s on 1 core" in h["FMA peak"] and "of 200.0 (2 cores)" in h["FMA peak"]


# ------------------------------------------------------------------------ cases


def test_compute_bound_ids_are_cases():
    ids = {c.id for c in all_cases()}
    assert COMPUTE_BOUND_IDS <= ids
    for memory_bound in (
        "dense-1", "conv-seed", "lstm-b1", "gru-b1", "rnn-b1", "lstm-seed", "attn-seed",
        "decode-t1", "decode-t4", "dwconv-112", "dwconv-14",
    ):
        assert memory_bound not in COMPUTE_BOUND_IDS


def _expected_flops(case):
    """The FLOPs (2 per multiply-add) from the case's arrays and its NumPy output."""
    d = case.inputs
    if case.op == "dense":
        m, k = d["x"].shape
        return 2.0 * m * k * d["kernel"].shape[1]
    if case.op == "conv2d":
        with fastlayers.use_backend("numpy"):
            out = case.call(d)
        kh, kw, c, _ = d["kernel"].shape
        if "depthwise" in case.desc:  # kernel (kh, kw, C, 1): one channel per output
            return 2.0 * out.size * kh * kw
        return 2.0 * out.size * kh * kw * c
    if case.op == "conv2d_transpose":  # every input pixel through every tap
        n, h, w, c = d["x"].shape
        kh, kw, f, _ = d["kernel"].shape
        return 2.0 * n * h * w * c * kh * kw * f
    if case.op in ("lstm", "gru", "simple_rnn"):
        b, t, f = d["x"].shape
        u = d["recurrent_kernel"].shape[0]
        gates = d["kernel"].shape[1] // u
        return 2.0 * b * t * gates * u * (f + u)
    if case.op == "scaled_dot_product_attention":
        b, h, t, dim = d["q"].shape
        s = d["k"].shape[2]
        pairs = t * s if "causal" not in case.desc else t * (t + 1) / 2 + t * (s - t)
        return 4.0 * b * h * pairs * dim
    if case.op == "rms_norm":
        return 4.0 * d["x"].size
    if case.op == "resize":  # a multiply-add per tap with a nonzero weight, per axis
        with fastlayers.use_backend("numpy"):
            out = case.call(d)
        n, h, w, c = d["x"].shape
        oh, ow = out.shape[1:3]

        def taps(n_in, n_out):  # all outputs' taps: 2 each, or the antialias window's pixels
            # (bounds in float64 here, float32 in the resize)
            if "antialias" not in case.desc:
                return 2 * n_out
            scale = n_in / n_out
            s = max(scale, 1.0)
            centres = (np.arange(n_out) + 0.5) * scale
            first = np.maximum((centres - s + 0.5).astype(int), 0)
            return int(np.sum(np.minimum((centres + s + 0.5).astype(int), n_in) - first))

        return 2.0 * n * c * (h * taps(w, ow) + ow * taps(h, oh))
    raise AssertionError(case.op)


@pytest.mark.parametrize(
    "case",
    [c for c in all_cases() if c.op != "softmax"],
    ids=lambda c: c.id,
)
def test_flop_counts(case):
    case.setup()
    expected = _expected_flops(case)
    # The bench counts causal attention as half the T x S square: within 1/T of exact.
    rel = 1.0 / case.inputs["q"].shape[2] if "causal" in case.desc else 1e-12
    if "antialias" in case.desc:  # the float32 window bounds can take a pixel more or less
        rel = 0.02
    assert math.isclose(case.flops, expected, rel_tol=rel)


# ------------------------------------------------------------------------ report


def test_rows_and_markdown():
    times = {"numpy": 0.004, "cpp": 0.002, "torch": 0.003, "ort": 0.001}
    cells = report.row_cells("gemm-x", "x", 2e8, True, times, peak_total=200.0)
    assert cells[2:] == [
        "4.00 ms", "2.00 ms", "3.00 ms", "1.00 ms", "2.00x", "1.50x", "0.50x", "100.0", "50 %"
    ]
    not_bound = report.row_cells("dense-1", "x", 2e8, False, times, peak_total=200.0)
    assert not_bound[-1] == ""
    no_peak = report.row_cells("gemm-x", "x", 2e8, True, times, peak_total=None)
    assert len(no_peak) == len(report.columns(False))
    only_numpy = report.row_cells("a", "b", 1e6, True, {"numpy": 1e-4}, peak_total=200.0)
    # No cpp: no ratio, no % peak.
    assert only_numpy[3:] == ["-", "-", "-", "-", "-", "-", "10.0", ""]
    for with_peak, row in ((True, cells), (False, no_peak)):
        head = report.format_table_head(with_peak, markdown=True)
        line = report.format_row(row, markdown=True)
        assert head[0].count("|") == head[1].count("|") == line.count("|")
        text = report.format_table_head(with_peak, markdown=False)[0]
        assert text.split()[-1] == ("peak" if with_peak else "GFLOP/s")
    with pytest.raises(ValueError, match="cells"):
        report.format_row(["a"], markdown=False)


def test_main_prints_a_markdown_table(capsys):
    from fastlayers.bench.__main__ import main

    assert (
        main(["--only", "softmax-1x64", "--paths", "numpy,cpp", "--threads", "1", "--markdown"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("- fastlayers: ")
    rows = [line for line in out if line.startswith("| softmax-1x64 |")]
    assert len(rows) == 1
    head = next(line for line in out if line.startswith("| id |"))
    assert rows[0].count("|") == head.count("|")


def test_main_rejects_bad_arguments(capsys):
    from fastlayers.bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["--threads", "0"])
    with pytest.raises(SystemExit):
        main(["--only", "softmax-1x64", "--paths", "numpy,jax"])
    assert "unknown path" in capsys.readouterr().err


# ------------------------------------------------------------------------ the re-execution

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastlayers.__file__)))


def _bench(*args, **env):
    path = os.pathsep.join(p for p in (_PKG_PARENT, os.environ.get("PYTHONPATH")) if p)
    full = {k: v for k, v in os.environ.items() if k not in PINS and k != machine.CHILD_MARK}
    full.update(PYTHONPATH=path, **env)
    cmd = [sys.executable, "-m", "fastlayers.bench", "--only", "softmax-1x64"]
    r = subprocess.run(
        cmd + ["--paths", "numpy", "--threads", "1", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_bench_reexecutes_without_the_pins():
    out = _bench(**PINS)
    first = out.splitlines()[0]
    assert first.startswith("bench: re-running without OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE")
    pin = next(line for line in out.splitlines() if line.startswith("BLAS pin:"))
    value = pin.split(":", 1)[1].strip()
    assert value.startswith("none (OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512 removed")


class _Reexec(Exception):
    pass


def test_keep_blas_env_flag_reaches_the_decision(monkeypatch, capsys):
    from fastlayers.bench.__main__ import main

    seen = []

    def fake_reexec(env, removed):
        seen.append((env, removed))
        raise _Reexec

    monkeypatch.setattr(machine, "reexec", fake_reexec)
    monkeypatch.delenv(machine.CHILD_MARK, raising=False)
    for k, v in PINS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(machine.THREAD_TIMEOUT_VAR, "4")
    args = ["--only", "softmax-1x64", "--paths", "numpy", "--threads", "1"]
    with pytest.raises(_Reexec):
        main(args, allow_reexec=True)
    env, removed = seen[0]
    assert removed == ["OPENBLAS_CORETYPE=Haswell", "OPENBLAS_L2_SIZE=512"]
    assert not set(PINS) & set(env)
    # Kept: nothing to change, so this process runs the benchmark itself, pinned.
    assert main(args + ["--keep-blas-env"], allow_reexec=True) == 0
    assert len(seen) == 1
    assert "OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512 set" in capsys.readouterr().out
