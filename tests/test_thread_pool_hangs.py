"""The thread pool never hangs (issue: deadlock when a region finds only the caller).

Each case runs in a subprocess with a time limit, so a regression fails the test instead
of freezing the suite. The work that ends up on the calling thread alone (the OS refused
to create threads, or another thread just shrank the pool) used to run while holding the
pool's region lock; a parallel_for nested in it (the GEMM inside a conv2d tile or an LSTM
input projection) then waited on that lock forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import NUMPY_ONLY, SANITIZER_RUN

pytestmark = pytest.mark.skipif(NUMPY_ONLY, reason="the C++ thread pool is not in this run")


def _run(code: str, timeout: float, shell_prefix: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
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


@pytest.mark.skipif(SANITIZER_RUN, reason="a sanitizer's shadow memory needs the address space")
def test_no_threads_to_be_had():
    # An 4 GB stack per thread inside a 3 GB address space: the OS refuses every new thread,
    # so each region runs on the caller alone; LSTM's input projection nests a GEMM region.
    code = textwrap.dedent(
        """
        import numpy as np, fastlayers as fl
        k = np.ones((256, 1024), np.float32) * 0.01
        out = fl.lstm(np.ones((1, 200, 256), np.float32), k, k)
        y = fl.conv2d(np.ones((1, 8, 8, 512), np.float32), np.ones((3, 3, 512, 8), np.float32))
        import threading
        t = threading.Thread(target=lambda: None)
        try:  # the premise: this process cannot start a thread
            t.start(); t.join(); started = "thread-started"
        except RuntimeError:
            started = "no-threads"
        print(out.shape, y.shape, started)
        """
    )
    r = _run(code, timeout=120, shell_prefix="ulimit -s 4000000 && ulimit -v 3000000")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["(1,", "256)", "(1,", "6,", "6,", "8)", "no-threads"]
