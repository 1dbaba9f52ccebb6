"""The thread pool never hangs (issue: deadlock when a region finds only the caller).

Each case runs in a subprocess with a time limit, so a regression fails the test instead
of freezing the suite. The work that ends up on the calling thread alone (the OS refused
to create threads, or another thread just shrank the pool) used to run while holding the
pool's region lock; a parallel_for nested in it (the GEMM inside a conv2d tile or an LSTM
input projection) then waited on that lock forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import NUMPY_ONLY, SANITIZER_RUN

pytestmark = pytest.mark.skipif(NUMPY_ONLY, reason="the C++ thread pool is not in this run")


def _run(
    code: str, timeout: float, shell_prefix: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {}))
    if shell_prefix:
        # && : if the limits cannot be set here, the test fails instead of running unlimited.
        cmd = ["bash", "-c", f'{shell_prefix} && exec "{sys.executable}" -c "$0"', code]
    else:
        cmd = [sys.executable, "-c", code]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: no result within {timeout} s")


def test_resizing_the_pool_while_threads_compute():
    # 3 threads run conv2d (nested GEMM regions) while the main thread flips the pool between
    # 1 and 2 threads as fast as it can. Before the fix this hung in 5 of 5 runs.
    code = textwrap.dedent(
        """
        import threading
        import numpy as np, fastlayers as fl
        x = np.ones((1, 16, 16, 64), np.float32); k = np.ones((9, 9, 64, 32), np.float32)
        want = fl.conv2d(x, k, padding="same")
        bad = []
        def work():
            for _ in range(40):
                bad.append(not np.array_equal(fl.conv2d(x, k, padding="same"), want))
        ts = [threading.Thread(target=work) for _ in range(3)]
        for t in ts: t.start()
        i = 0
        while any(t.is_alive() for t in ts):  # resize only while the workers compute
            fl.set_num_threads(1 + i % 2); i += 1
        for t in ts: t.join()
        print(i, len(bad), sum(bad))
        """
    )
    r = _run(code, timeout=60)
    assert r.returncode == 0, r.stderr
    resizes, calls, mismatches = map(int, r.stdout.split())
    assert resizes >= 1 and calls == 120 and mismatches == 0


# Computes a few ops several times (with the pool asked for CHILD_THREADS, default 2) and
# prints, as JSON: a digest of every output's bytes, the RuntimeWarnings seen,
# get_num_threads() at the end, and whether this process can start a Python thread at all.
_NO_THREADS_CHILD = textwrap.dedent(
    """
    import hashlib, json, os, threading, warnings
    import numpy as np, fastlayers as fl
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fl.set_num_threads(int(os.environ.get("CHILD_THREADS", "2")))
        rng = np.random.default_rng(5)
        r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
        x, k, rk = r(1, 200, 256), r(256, 1024), r(256, 1024)
        xg, kg, rg = r(2, 30, 64), r(64, 3 * 157), r(157, 3 * 157)
        xc, kc = r(1, 8, 8, 512), r(3, 3, 512, 8)
        xd, kd = r(64, 256), r(256, 256)
        digest = hashlib.sha256()
        for _ in range(3):  # the warning comes once, however many calls follow
            for y in (fl.lstm(x, k, rk, return_sequences=True),
                      fl.gru(xg, kg, rg, return_sequences=True),
                      fl.conv2d(xc, kc), fl.dense(xd, kd)):
                digest.update(np.ascontiguousarray(y).tobytes())
        threads = fl.get_num_threads()
    t = threading.Thread(target=lambda: None)
    try:  # the premise: this process cannot start a thread
        t.start(); t.join(); started = "thread-started"
    except RuntimeError:
        started = "no-threads"
    print(json.dumps(dict(
        digest=digest.hexdigest(), threads=threads, started=started,
        warnings=[(w.category.__name__, str(w.message)) for w in caught])))
    """
)


@pytest.mark.skipif(SANITIZER_RUN, reason="a sanitizer's shadow memory needs the address space")
def test_no_threads_to_be_had():
    # An 4 GB stack per thread inside a 3 GB address space: the OS refuses every new thread,
    # so each region runs on the caller alone; LSTM's input projection nests a GEMM region.
    # The pool says so once (a RuntimeWarning), caps itself at the 1 thread it has, and its
    # results are those of a normal run on 1 thread, bit for bit.
    r = _run(_NO_THREADS_CHILD, timeout=120,
             shell_prefix="ulimit -s 4000000 && ulimit -v 3000000")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["started"] == "no-threads"
    assert got["threads"] == 1
    assert len(got["warnings"]) == 1, got["warnings"]
    category, message = got["warnings"][0]
    assert category == "RuntimeWarning"
    assert "refused to start a thread" in message and "run on 1 thread instead of 2" in message
    want = _run(_NO_THREADS_CHILD, timeout=120, env={"CHILD_THREADS": "1"})
    assert want.returncode == 0, want.stderr
    normal = json.loads(want.stdout)
    assert normal["started"] == "thread-started" and normal["warnings"] == []
    assert normal["threads"] == 1
    assert got["digest"] == normal["digest"]
