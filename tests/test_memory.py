"""Peak memory of the C++ kernels stays near input + output (DESIGN.md, Memory).

Measured in a child process with the kernel's peak resident set size (ru_maxrss), which
counts native allocations that tracemalloc cannot see.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

import fastlayers
from fastlayers import _backend

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastlayers.__file__)))

CONV_CHILD = """
import resource, numpy as np, fastlayers as fl
x = np.random.default_rng(0).standard_normal((1, 512, 512, 64), dtype=np.float32)
k = np.random.default_rng(1).standard_normal((3, 3, 64, 64), dtype=np.float32) * 0.05
with fl.use_backend("cpp"):
    fl.conv2d(x[:, :8, :8], k, padding="same")  # load everything once on a small input
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y = fl.conv2d(x, k, padding="same", activation="relu")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, y.nbytes, x.nbytes)
"""


@pytest.mark.skipif(
    not _backend.core_available() or "conv2d" not in _backend.CPP_OPS,
    reason="measures the C++ conv2d",
)
def test_conv2d_large_input_needs_no_im2col_matrix():
    # 1x512x512x64, 3x3 same: input and output are 64 MiB each; a full im2col matrix
    # would be 9x the input (576 MiB). Allow the output plus a bounded scratch.
    env = dict(os.environ, PYTHONPATH=_PKG_PARENT, FASTLAYERS_NUM_THREADS="2")
    r = subprocess.run(
        [sys.executable, "-c", CONV_CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert r.returncode == 0, r.stderr
    before_kib, after_kib, out_bytes, in_bytes = (int(v) for v in r.stdout.split())
    growth = (after_kib - before_kib) * 1024
    assert growth < out_bytes + 48 * 2**20, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB for a {out_bytes / 2**20:.0f} MiB output "
        f"(input {in_bytes / 2**20:.0f} MiB)"
    )
