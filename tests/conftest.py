"""Shared test fixtures: backends, a seeded rng, and the one tolerance helper.

The suite must exercise the compiled core. If ``fastlayers._core`` did not import
(for instance because the uncompiled source tree shadows the installed package),
``test_runtime.py::test_compiled_core_is_used`` fails, unless a NumPy-only run is
asked for explicitly with ``FASTLAYERS_TEST_NUMPY_ONLY=1``. In that case the
"cpp" backend parameters are deselected and the run says so in its header.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

import fastlayers
from fastlayers import _backend

# Keras (an optional reference) on the PyTorch backend, the one the project installs: without
# this Keras picks TensorFlow, fails to import, and the tests that compare with it skip.
os.environ.setdefault("KERAS_BACKEND", "torch")

NUMPY_ONLY = os.environ.get("FASTLAYERS_TEST_NUMPY_ONLY", "") not in ("", "0")
# tools/sanitize.sh runs the suite on an ASan/TSan build: the tests that measure memory or
# limit the address space measure the sanitizer's shadow memory instead, and skip.
SANITIZER_RUN = os.environ.get("FASTLAYERS_SANITIZER_RUN", "") not in ("", "0")

# Ops the C++ path serves (for at least the plain case). Tests run "cpp" only for
# these; tests/test_runtime.py checks that every public op of fastlayers.functional either
# calls the compiled core under "cpp" (listed here) or is one that docs/architecture.md §4
# names as NumPy under every backend, so the list cannot silently fall behind the library.
CPP_OPS = _backend.CPP_OPS


def pytest_report_header(config):
    info = fastlayers.runtime_info()
    lines = [
        f"fastlayers {info['version']} from {info['package_path']}",
        f"compiled core: {'yes' if info['core_available'] else 'NO: ' + str(info['core_error'])}",
        f"isa: {info['isa']} (built {info['isas_built']}), threads: {info['num_threads']}",
    ]
    if NUMPY_ONLY:
        lines.append("FASTLAYERS_TEST_NUMPY_ONLY=1: the C++ path is not tested in this run")
    return lines


@pytest.fixture(autouse=True)
def _thread_counts_restored():
    """Every test leaves fastlayers' (and torch's, if loaded) thread count as it found it.
    A test that set 1 thread and kept it once made the rest of the suite run the C++ path on
    one thread only, so that no "same bits for any thread count" case compared anything."""
    import sys

    torch = sys.modules.get("torch")
    before = fastlayers.get_num_threads(), (torch.get_num_threads() if torch else None)
    yield
    torch = sys.modules.get("torch")
    after = fastlayers.get_num_threads(), (torch.get_num_threads() if torch else None)
    if before[0] != after[0] or (before[1] is not None and before[1] != after[1]):
        fastlayers.set_num_threads(before[0])
        if before[1] is not None:
            torch.set_num_threads(before[1])
        pytest.fail(f"the test changed the thread counts (fastlayers, torch) from {before} to "
                    f"{after} and did not restore them")


@contextlib.contextmanager
def parallel_regions():
    """Count the thread pool's parallel regions (run on more than one thread) opened inside
    the block: ``with parallel_regions() as regions: ...; assert regions() > 0``. The pool's
    contention backoff, which runs regions on one thread while the machine is busy, is off
    meanwhile, so that a test meant to split its work does split it."""
    if not _backend.core_available():
        yield lambda: 0
        return
    core = _backend._core
    was = core.contention_backoff()
    core.set_contention_backoff(False)
    start = core.pool_stats()["regions"]
    try:
        yield lambda: core.pool_stats()["regions"] - start
    finally:
        core.set_contention_backoff(was)


def backends_for(op: str):
    """The backends a test of ``op`` runs on: numpy always, cpp where C++ serves it."""
    names = ["numpy"]
    if op in CPP_OPS and not NUMPY_ONLY:
        names.append("cpp")
    return names


def cpp_serves(fn, *args, **kwargs) -> bool:
    """Whether the C++ path serves this exact call (an op may refuse some arguments,
    e.g. softmax with a mask). Probed by calling it under "cpp"; if the core is
    missing this returns True, so the "cpp" case is generated and fails loudly."""
    if not _backend.core_available():
        return True
    try:
        run_on("cpp", fn, *args, **kwargs)
    except NotImplementedError:
        return False
    return True


@pytest.fixture(autouse=True, scope="session")
def _contention_backoff_off():
    """The thread pool's units-split backoff (docs/architecture.md §7) sends LSTM/GRU units
    splits to the calling thread alone after one where the caller waited on a descheduled
    worker: on a loaded test machine it would quietly turn multi-thread tests into
    single-thread ones. The suite runs with it off; tests/test_thread_pool.py turns it on where
    it tests it."""
    if _backend._core is not None:
        _backend._core.set_contention_backoff(False)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# The backends a run tests: both, or NumPy's alone (FASTLAYERS_TEST_NUMPY_ONLY=1).
BACKENDS = ("numpy",) if NUMPY_ONLY else ("numpy", "cpp")
_pinned_backend: list[str] = []  # the backend any_backend gives the running test, if it asks


@pytest.fixture(params=["numpy", "cpp"])
def any_backend(request):
    """Both backends, for tests that check behaviour common to both (errors, dispatch)."""
    if request.param == "cpp" and NUMPY_ONLY:
        pytest.skip("NumPy-only run requested (FASTLAYERS_TEST_NUMPY_ONLY=1)")
    with fastlayers.use_backend(request.param):
        _pinned_backend.append(request.param)
        try:
            yield request.param
        finally:
            _pinned_backend.pop()


def backends_of_the_test() -> tuple[str, ...]:
    """The backends on which a helper checks a model it built once (from_torch's ``check``:
    one conversion, compared on each path; a converted model picks its path at every call):
    the one any_backend pins for the running test, else every backend of the run."""
    return (_pinned_backend[-1],) if _pinned_backend else BACKENDS


def tolerance(k: int = 1, magnitude: float = 1.0):
    """(rtol, atol) for comparing float32 results of a reduction of length ``k``.

    |a - b| <= atol + rtol * |b| with rtol = 1e-5 and atol = 1e-6 * sqrt(k) * magnitude,
    where magnitude bounds the size of the products being summed.
    """
    return 1e-5, 1e-6 * math.sqrt(max(k, 1)) * max(magnitude, 1e-30)


def assert_close(actual, expected, k: int = 1, magnitude: float = 1.0, err_msg: str = ""):
    """Compare with :func:`tolerance`; shapes and dtype float32 must match too."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.float32, f"result dtype is {actual.dtype}, expected float32"
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    rtol, atol = tolerance(k, magnitude)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def assert_close_to_keras(actual, expected, rtol: float = 1e-5, atol: float = 2e-6,
                          err_msg: str = ""):
    """Compare a float32 result with Keras's, each element against its own size:
    |a - b| <= rtol * |b| + atol * max(1, |b|). (A tolerance scaled by the largest element let
    the small outputs of an exponential, e^-20 next to e^20, be anything.)"""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.float32, f"{err_msg}: result dtype is {actual.dtype}"
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), finite, err_msg=f"{err_msg}: non-finite")
    np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg=err_msg)
    a, b = actual[finite].astype(np.float64), expected[finite].astype(np.float64)
    bound = rtol * np.abs(b) + atol * np.maximum(1.0, np.abs(b))
    bad = np.abs(a - b) > bound
    if bad.any():
        i = int(np.argmax(np.abs(a - b) - bound))
        raise AssertionError(
            f"{err_msg}: {int(bad.sum())} of {b.size} elements differ beyond rtol {rtol} + "
            f"atol {atol} x max(1, |want|); worst: got {a[i]!r}, want {b[i]!r}"
        )


def randn(rng, *shape, scale=1.0):
    """Standard-normal float32 array of ``shape``, times ``scale``."""
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def mha_weights(rng, dq, dk, dv, n, hk, hv, dout, biases):
    """Keras MultiHeadAttention weights as keyword arguments of multi_head_attention:
    kernels scaled by 1/sqrt(fan-in), and the four biases when ``biases``."""
    kw = dict(
        query_kernel=randn(rng, dq, n, hk, scale=1 / math.sqrt(dq)),
        key_kernel=randn(rng, dk, n, hk, scale=1 / math.sqrt(dk)),
        value_kernel=randn(rng, dv, n, hv, scale=1 / math.sqrt(dv)),
        output_kernel=randn(rng, n, hv, dout, scale=1 / math.sqrt(n * hv)),
    )
    if biases:
        kw.update(
            query_bias=randn(rng, n, hk, scale=0.3),
            key_bias=randn(rng, n, hk, scale=0.3),
            value_bias=randn(rng, n, hv, scale=0.3),
            output_bias=randn(rng, dout),
        )
    return kw


def run_on(backend: str, fn, *args, **kwargs):
    """Call ``fn`` with ``backend`` in force."""
    with fastlayers.use_backend(backend):
        return fn(*args, **kwargs)


def pytest_collection_modifyitems(config, items):
    if not _backend.core_available() and not NUMPY_ONLY:
        # Loud, not silent: the core test fails and every C++ comparison below errors
        # with NotImplementedError naming the missing core.
        config.issue_config_time_warning(
            pytest.PytestWarning(
                "fastlayers._core did not import: "
                f"{_backend.CORE_ERROR}. Install the package (pip install .) and run pytest "
                "from an environment where the installed package is imported, or set "
                "FASTLAYERS_TEST_NUMPY_ONLY=1 for a NumPy-only run."
            ),
            stacklevel=2,
        )


# The repository's tools/ (scripts, not a package), for the tests of tools/*.py.
TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load_tool(name: str):
    """``tools/<name>.py`` imported as a module (its functions called in-process)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
