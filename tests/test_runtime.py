"""The compiled core is really used; backend choice, threads and runtime_info behave."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import CPP_OPS, NUMPY_ONLY

import fastlayers
from fastlayers import _backend


def test_compiled_core_is_used():
    """Fails when the package was imported without its compiled core.

    Typical cause: a build that failed to compile the core, or a source tree on
    sys.path ahead of the installed package (the src layout prevents that in the root).
    Set FASTLAYERS_TEST_NUMPY_ONLY=1 to ask for a NumPy-only run explicitly.
    """
    if NUMPY_ONLY:
        assert os.environ.get("FASTLAYERS_TEST_NUMPY_ONLY") not in (None, "", "0")
        return
    info = fastlayers.runtime_info()
    assert info["core_available"], (
        f"fastlayers._core did not import ({info['core_error']}); fastlayers was imported "
        f"from {info['package_path']}"
    )
    assert info["isa"] in info["isas_built"]
    assert info["isa"] in info["isas_supported"]


def _has_core():
    return _backend.core_available() and not NUMPY_ONLY


needs_core = pytest.mark.skipif(not _has_core(), reason="compiled core not in this run")


def test_backend_names_and_context_manager():
    assert fastlayers.get_backend() == "auto"
    with fastlayers.use_backend("numpy"):
        assert fastlayers.get_backend() == "numpy"
        with fastlayers.use_backend("CPP"):
            assert fastlayers.get_backend() == "cpp"
        assert fastlayers.get_backend() == "numpy"
    assert fastlayers.get_backend() == "auto"


def test_set_backend_persists_and_restores():
    fastlayers.set_backend("numpy")
    try:
        assert fastlayers.get_backend() == "numpy"
    finally:
        fastlayers.set_backend("auto")
    assert fastlayers.get_backend() == "auto"


@pytest.mark.parametrize(
    "bad,exc", [("gpu", ValueError), ("", ValueError), (1, TypeError), (None, TypeError)]
)
def test_bad_backend_names(bad, exc):
    with pytest.raises(exc, match="backend"):
        fastlayers.set_backend(bad)
    with pytest.raises(exc, match="backend"):
        with fastlayers.use_backend(bad):
            pass


def test_set_backend_is_process_wide():
    """set_backend reaches every thread, also one started later; a use_backend block still
    wins inside itself (docs/semantics.md §16)."""
    seen = []
    before = fastlayers.get_backend()
    fastlayers.set_backend("numpy")
    try:
        t = threading.Thread(target=lambda: seen.append(fastlayers.get_backend()))
        t.start()
        t.join()
        with fastlayers.use_backend("cpp"):
            fastlayers.set_backend("auto")
            assert fastlayers.get_backend() == "cpp"
        assert fastlayers.get_backend() == "auto"
    finally:
        fastlayers.set_backend(before)
    assert seen == ["numpy"]


def test_use_backend_is_per_thread():
    seen = []
    with fastlayers.use_backend("numpy"):
        t = threading.Thread(target=lambda: seen.append(fastlayers.get_backend()))
        t.start()
        t.join()
    assert seen == ["auto"]


ALL_OPS = {
    "dense": lambda: fastlayers.dense(np.ones((2, 3)), np.ones((3, 4))),
    "conv2d": lambda: fastlayers.conv2d(np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 5))),
    "conv2d_transpose": lambda: fastlayers.conv2d_transpose(
        np.ones((1, 4, 4, 2)), np.ones((3, 3, 5, 2)), strides=2
    ),
    "lstm": lambda: fastlayers.lstm(np.ones((1, 2, 3)), np.ones((3, 8)), np.ones((2, 8))),
    "lstm_cell": lambda: fastlayers.lstm_cell(
        np.ones((1, 3)), np.ones((1, 2)), np.ones((1, 2)), np.ones((3, 8)), np.ones((2, 8))
    ),
    "gru": lambda: fastlayers.gru(np.ones((1, 2, 3)), np.ones((3, 6)), np.ones((2, 6))),
    "softmax": lambda: fastlayers.softmax(np.ones((2, 3))),
    "matmul": lambda: fastlayers.matmul(np.ones((2, 2, 3)), np.ones((2, 4, 3)), transpose_b=True),
    "attention": lambda: fastlayers.attention(np.ones((1, 2, 3)), np.ones((1, 4, 3))),
    "additive_attention": lambda: fastlayers.additive_attention(
        np.ones((1, 2, 3)), np.ones((1, 4, 3))
    ),
    "scaled_dot_product_attention": lambda: fastlayers.scaled_dot_product_attention(
        np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 5))
    ),
    "multi_head_attention": lambda: fastlayers.multi_head_attention(
        np.ones((1, 2, 3)),
        np.ones((1, 4, 3)),
        query_kernel=np.ones((3, 2, 2)),
        key_kernel=np.ones((3, 2, 2)),
        value_kernel=np.ones((3, 2, 2)),
        output_kernel=np.ones((2, 2, 3)),
    ),
    "layer_norm": lambda: fastlayers.layer_norm(np.arange(12.0).reshape(3, 4)),
    "conv1d": lambda: fastlayers.conv1d(np.ones((1, 6, 2)), np.ones((3, 2, 5))),
    "depthwise_conv2d": lambda: fastlayers.depthwise_conv2d(np.ones((1, 4, 4, 3)),
                                                            np.ones((3, 3, 3, 2))),
    "flatten": lambda: fastlayers.flatten(np.ones((2, 3, 4))),
    "simple_rnn": lambda: fastlayers.simple_rnn(np.ones((1, 2, 3)), np.ones((3, 4)),
                                                np.ones((4, 4))),
}
# The public ops that compute in NumPy under every backend, "cpp" included, as
# docs/architecture.md §4 names them (data movement).
NUMPY_EVERYWHERE = {"flatten"}
# Public ops served by another op's kernel (conv1d is a conv2d of height 1).
SERVED_AS = {"conv1d": "conv2d", "depthwise_conv2d": "conv2d"}


def _core_calls(fn):
    """fn's result and the names of the compiled core's functions it called (a profile hook
    sees every call into an extension function, whichever module holds a reference to it)."""
    calls = []

    def hook(frame, event, arg):
        if event == "c_call" and getattr(arg, "__module__", None) == "fastlayers._core":
            calls.append(arg.__name__)

    sys.setprofile(hook)
    try:
        out = fn()
    finally:
        sys.setprofile(None)
    return out, calls


def test_every_public_op_is_in_the_table():
    from fastlayers import functional

    assert set(ALL_OPS) == set(functional.__all__)


@needs_core
@pytest.mark.parametrize("op", sorted(ALL_OPS))
def test_cpp_backend_runs_cpp_or_numpy_as_documented(op):
    """Under "cpp" an op that C++ serves (conftest.CPP_OPS, or the op whose kernel serves it)
    calls the compiled core and gives the NumPy path's values; an op documented as NumPy under
    every backend calls no core function and gives the NumPy values; no other op exists."""
    served = SERVED_AS.get(op, op) in CPP_OPS
    assert served != (op in NUMPY_EVERYWHERE), op
    with fastlayers.use_backend("cpp"):
        out, calls = _core_calls(ALL_OPS[op])
    with fastlayers.use_backend("numpy"):
        want = ALL_OPS[op]()
    outs = out if isinstance(out, (tuple, list)) else [out]
    wants = want if isinstance(want, (tuple, list)) else [want]
    for o, w in zip(outs, wants):
        np.testing.assert_allclose(o, w, rtol=1e-5, atol=1e-5)
    assert bool(calls) == served, (op, calls)


@needs_core
def test_cpp_softmax_serves_masks_and_several_axes():
    """Masked and multi-axis softmax run in C++ (no refusal) and give the Keras values."""
    with fastlayers.use_backend("cpp"):
        out = fastlayers.softmax(np.ones((2, 3)), mask=np.array([True, False, True]))
        np.testing.assert_allclose(out, [[0.5, 0, 0.5]] * 2)
        out = fastlayers.softmax(np.ones((2, 3)), axis=(0, 1))
        np.testing.assert_allclose(out, np.full((2, 3), 1 / 6), rtol=1e-6)


def test_auto_and_numpy_agree_on_every_op():
    for op, call in ALL_OPS.items():
        with fastlayers.use_backend("numpy"):
            want = call()
        got = call()  # auto
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=op)


def test_runtime_info_keys():
    info = fastlayers.runtime_info()
    for key in (
        "version",
        "backend",
        "core_available",
        "core_error",
        "isa",
        "isas_built",
        "num_threads",
        "cpu_features",
        "package_path",
        "output_cache",
    ):
        assert key in info
    assert info["version"] == fastlayers.__version__
    assert info["num_threads"] == fastlayers.get_num_threads()


def test_show_runtime_prints(capsys):
    fastlayers.show_runtime()
    out = capsys.readouterr().out
    assert "version" in out and fastlayers.__version__ in out and "num_threads" in out


def test_num_threads_roundtrip_and_errors():
    before = fastlayers.get_num_threads()
    try:
        fastlayers.set_num_threads(3)
        assert fastlayers.get_num_threads() == 3
        x = np.random.default_rng(0).standard_normal((64, 129)).astype(np.float32)
        y3 = fastlayers.softmax(x)
        fastlayers.set_num_threads(1)
        y1 = fastlayers.softmax(x)
        np.testing.assert_array_equal(y1, y3)  # bitwise identical for any thread count
    finally:
        fastlayers.set_num_threads(before)
    for bad, exc in (
        (0, ValueError),
        (-2, ValueError),
        (1.5, TypeError),
        ("2", TypeError),
        (True, TypeError),
        (np.True_, TypeError),
        (2**40, ValueError),
        (4096, ValueError),
        (_backend.max_threads() + 1, ValueError),
    ):
        with pytest.raises(exc, match="set_num_threads"):
            fastlayers.set_num_threads(bad)


def test_set_num_threads_takes_numpy_integers_up_to_the_cap():
    before = fastlayers.get_num_threads()
    try:
        fastlayers.set_num_threads(np.int64(1))
        assert fastlayers.get_num_threads() == 1
        fastlayers.set_num_threads(_backend.max_threads())
        assert fastlayers.get_num_threads() == _backend.max_threads()
    finally:
        fastlayers.set_num_threads(before)
    assert _backend.max_threads() == min(4096, 4 * _backend._default_threads())


def test_default_threads_follow_a_cgroup_quota(monkeypatch):
    monkeypatch.setattr(_backend, "_cgroup_cpu_limit", lambda: 1)
    assert _backend._default_threads() == 1
    monkeypatch.setattr(_backend, "_cgroup_cpu_limit", lambda: None)
    assert _backend._default_threads() == len(os.sched_getaffinity(0))


def test_cgroup_quota_parsing(tmp_path, monkeypatch):
    import builtins

    files = {}
    real_open = builtins.open

    def fake_open(path, *a, **k):
        if str(path).startswith("/sys/fs/cgroup"):
            if path not in files:
                raise FileNotFoundError(path)
            return io.StringIO(files[path])
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert _backend._cgroup_cpu_limit() is None
    files["/sys/fs/cgroup/cpu.max"] = "150000 100000\n"
    assert _backend._cgroup_cpu_limit() == 2
    files["/sys/fs/cgroup/cpu.max"] = "max 100000\n"
    assert _backend._cgroup_cpu_limit() is None
    del files["/sys/fs/cgroup/cpu.max"]
    files["/sys/fs/cgroup/cpu/cpu.cfs_quota_us"] = "100000\n"
    files["/sys/fs/cgroup/cpu/cpu.cfs_period_us"] = "100000\n"
    assert _backend._cgroup_cpu_limit() == 1


# `python -c` puts the current directory on sys.path; run children elsewhere, with the
# folder this process imported fastlayers from first on their path, so that they import
# the same fastlayers as this process.
_CHILD_CWD = tempfile.gettempdir()
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastlayers.__file__)))


def _run(code, text=True, args=(), **env):
    path = os.pathsep.join(p for p in (_PKG_PARENT, os.environ.get("PYTHONPATH")) if p)
    full = dict(os.environ, PYTHONPATH=path, **env)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=full,
        capture_output=True,
        text=text,
        timeout=120,
        cwd=_CHILD_CWD,
    )


def test_env_backend_and_threads():
    r = _run(
        "import fastlayers as f; print(f.get_backend(), f.get_num_threads())",
        FASTLAYERS_BACKEND="numpy",
        FASTLAYERS_NUM_THREADS="3",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["numpy", "3"]


def test_threads_follow_omp_num_threads_unless_fastlayers_says_otherwise():
    # OMP_NUM_THREADS (set by Dask's nanny, job schedulers) is followed when
    # FASTLAYERS_NUM_THREADS is not set; the latter wins; unusable values are ignored.
    code = (
        "import fastlayers as f, fastlayers._backend as b; "
        "print(f.get_num_threads(), b.max_threads())"
    )
    r = _run(code, OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "1"
    r = _run(code, OMP_NUM_THREADS="1", FASTLAYERS_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "3"
    default = _run(code, OMP_NUM_THREADS="")
    assert default.returncode == 0, default.stderr
    for junk in ("0", "4,2", "many", "-1", "\u00b2"):  # "²" is isdigit() but no int
        r = _run(code, OMP_NUM_THREADS=junk)
        assert r.returncode == 0, r.stderr
        assert r.stdout == default.stdout, junk
    limit = default.stdout.split()[1]
    r = _run(code, OMP_NUM_THREADS="9" * 20)  # capped at max_threads(), not refused
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [limit, limit]


def test_env_bad_values_fail_clearly():
    r = _run("import fastlayers", FASTLAYERS_BACKEND="fast")
    assert r.returncode != 0 and "FASTLAYERS_BACKEND" in r.stderr
    r = _run("import fastlayers", FASTLAYERS_NUM_THREADS="many")
    assert r.returncode != 0 and "FASTLAYERS_NUM_THREADS" in r.stderr
    r = _run("import fastlayers", FASTLAYERS_NUM_THREADS="9" * 20)
    assert r.returncode != 0 and "FASTLAYERS_NUM_THREADS must be an integer in [1," in r.stderr


@needs_core
def test_isa_cap_env():
    r = _run(
        "import fastlayers as f; i = f.runtime_info(); print(i['isa'], i['isa_cap'])",
        FASTLAYERS_ISA="scalar",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["scalar", "scalar"]
    # A name that is no ISA is refused at import, as for FASTLAYERS_BACKEND (it used to be
    # reported only in runtime_info()).
    r = _run("import fastlayers", FASTLAYERS_ISA="sse9")
    assert r.returncode != 0
    assert "FASTLAYERS_ISA must be one of scalar, avx2, avx512, neon, got 'sse9'" in r.stderr


def test_isa_cap_name_is_checked_without_the_core():
    """Without the compiled core FASTLAYERS_ISA selects nothing, but a name that is no ISA is
    still refused (a typo would otherwise pass unseen until a machine with the core)."""
    no_core = "import sys\nsys.modules['fastlayers._core'] = None\nimport fastlayers as f\n"
    for bad in ("sse9", " "):
        r = _run(no_core + "print(f.core_available())", FASTLAYERS_ISA=bad)
        assert r.returncode != 0 and "FASTLAYERS_ISA must be one of" in r.stderr
    r = _run(no_core + "print(f.core_available())", FASTLAYERS_ISA=" AVX2 ")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False" and "Warning" not in r.stderr


def _bits(a):
    """The float32 bits of a, with every NaN mapped to one pattern (payloads may differ)."""
    a = np.asarray(a, np.float32)
    return np.where(np.isnan(a), np.float32(np.nan), a).view(np.uint32)


@needs_core
def test_isas_give_identical_bits():
    """Every supported ISA (scalar, avx2, avx512, ...) gives the same bits on every op: dense with
    every activation, every activation kernel, conv2d, lstm, lstm_cell, gru, softmax, layer_norm
    and every attention op (tests/cross_isa_child.py), since each kernel family runs one
    algorithm with one summation order on all ISAs (docs/architecture.md); on 1 thread and on
    2, against scalar on 1 thread."""
    child = Path(__file__).with_name("cross_isa_child.py").read_text()
    supported = fastlayers.runtime_info()["isas_supported"]
    assert "scalar" in supported
    results = {}
    for isa in supported:
        for threads in (1, 2):
            r = _run(child, text=False, FASTLAYERS_ISA=isa, args=[str(threads)])
            assert r.returncode == 0, r.stderr.decode()
            with np.load(io.BytesIO(r.stdout)) as z:
                results[isa, threads] = {k: z[k] for k in z.files}
            assert str(results[isa, threads].pop("isa")) == isa
    ref = results["scalar", 1]
    assert len(ref) > 60
    for isa, res in results.items():
        assert res.keys() == ref.keys()
        for key, want in ref.items():
            got = res[key]
            assert got.shape == want.shape, (isa, key)
            diff = _bits(got) != _bits(want)
            assert not diff.any(), (
                f"{isa} vs scalar, {key}: {int(diff.sum())} of {diff.size} differ, max abs "
                f"{float(np.nanmax(np.abs(got.astype(np.float64) - want)))}"
            )


@needs_core
def test_interpreter_exits_after_threaded_work():
    r = _run(
        "import numpy as np, fastlayers as f\n"
        "f.set_num_threads(2)\n"
        "x = np.ones((4096, 256), np.float32)\n"
        "for _ in range(3): f.softmax(x)\n"
        "print('ok')\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


@needs_core
@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512", "neon"])
def test_each_supported_isa_can_be_chosen(isa):
    """Every ISA this CPU supports is selectable (blanks and case ignored); the others fall back
    to the best supported one with a message naming the cap."""
    supported = fastlayers.runtime_info()["isas_supported"]
    r = _run(
        "import fastlayers as f\ni = f.runtime_info()\n"
        "print(i['isa'])\nprint(i['isa_cap_message'])",
        FASTLAYERS_ISA=f" {isa.upper()} ",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    if isa in supported:
        assert lines[0] == isa and lines[1:] in ([], [""])
        assert "RuntimeWarning" not in r.stderr
    else:
        assert lines[0] == supported[-1]
        assert isa.upper() in lines[1] and "not supported" in lines[1]
        assert "RuntimeWarning" in r.stderr and "not supported" in r.stderr


@needs_core
def test_avx512_level_follows_cpu_features():
    info = fastlayers.runtime_info()
    if "avx512" not in info["isas_built"]:
        pytest.skip("this build has no avx512 kernels (not an x86-64 build)")
    f = info["cpu_features"]
    full = all(f[k] for k in ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"))
    assert ("avx512" in info["isas_supported"]) == full
    if full and info["isa_cap"] is None:
        assert info["isa"] == "avx512"  # the default where present


@needs_core
def test_fma_peak_probe():
    from fastlayers import _core

    for isa in fastlayers.runtime_info()["isas_supported"]:
        gflops = _core.fma_peak_probe(isa, 0.02)
        assert 0.1 < gflops < 1e4, (isa, gflops)
    with pytest.raises(ValueError, match="sse9"):
        _core.fma_peak_probe("sse9", 0.01)


def test_output_cache_limit_public_setter():
    """fastlayers.set_output_cache_limit sets what the core keeps of freed outputs (0 frees
    it all) and runtime_info reports it; bad values raise naming the function."""
    before = fastlayers.runtime_info()["output_cache"]["limit"]
    try:
        if not fastlayers.core_available():
            assert fastlayers.set_output_cache_limit(1 << 20) == 0
            assert fastlayers.runtime_info()["output_cache"] == {"limit": 0, "held": 0}
        else:
            assert fastlayers.set_output_cache_limit(np.int64(1 << 20)) == before
            y = fastlayers.activations.relu(np.ones((64, 1024), np.float32))
            del y
            info = fastlayers.runtime_info()["output_cache"]
            assert info["limit"] == 1 << 20 and info["held"] > 64 * 1024 * 4 - 1
            # one block over the limit is kept besides (the last freed), and reused
            held = info["held"]
            big = fastlayers.activations.relu(np.ones((1024, 1024), np.float32))  # 4 MiB
            del big
            assert fastlayers.runtime_info()["output_cache"]["held"] >= held + (4 << 20)
            again = fastlayers.activations.relu(np.ones((1024, 1024), np.float32))
            assert fastlayers.runtime_info()["output_cache"]["held"] < held + (4 << 20)
            del again
            assert fastlayers.set_output_cache_limit(0) == 1 << 20
            assert fastlayers.runtime_info()["output_cache"] == {"limit": 0, "held": 0}
            assert fastlayers.set_output_cache_limit(2**80) == 0
            assert fastlayers.runtime_info()["output_cache"]["limit"] == 2**63 - 1  # the cap
    finally:
        fastlayers.set_output_cache_limit(before)
    for bad, exc in ((-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError),
                     (None, TypeError)):
        with pytest.raises(exc, match="set_output_cache_limit: max_bytes"):
            fastlayers.set_output_cache_limit(bad)


def test_output_cache_limit_without_the_core(monkeypatch):
    monkeypatch.setattr(_backend, "_core", None)
    assert fastlayers.set_output_cache_limit(1 << 20) == 0
    with pytest.raises(ValueError, match="set_output_cache_limit"):
        fastlayers.set_output_cache_limit(-1)
