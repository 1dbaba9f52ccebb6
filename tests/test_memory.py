"""Peak memory of the C++ kernels stays near input + output (docs/architecture.md §8).

Measured in a child process with the kernel's peak resident set size (ru_maxrss), which
counts native allocations that tracemalloc cannot see.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from conftest import SANITIZER_RUN

import fastlayers
from fastlayers import _backend

# Under a sanitizer the resident set holds its shadow memory and quarantine: not measurable.
pytestmark = pytest.mark.skipif(SANITIZER_RUN, reason="RSS includes the sanitizer's memory")

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


SDPA_CHILD = """
import resource, sys, numpy as np, fastlayers as fl
causal = sys.argv[1] == "causal"
t = s = 16384
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, n, 64), dtype=np.float32) for n in (t, s, s))
with fl.use_backend("cpp"):
    fl.scaled_dot_product_attention(q[:, :600], k[:, :600], v[:, :600], is_causal=causal)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y = fl.scaled_dot_product_attention(q, k, v, is_causal=causal)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert np.isfinite(y).all()
print(before, after, y.nbytes, q.nbytes + k.nbytes + v.nbytes)
"""


@pytest.mark.skipif(
    not _backend.core_available(),
    reason="needs the compiled core: measures the C++ scaled_dot_product_attention",
)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_sdpa_long_sequence_holds_no_t_by_s_buffer(causal):
    # One head, T = S = 16384, D = 64: q, k, v and the output are 4 MiB each, while a
    # T x S float32 score matrix would be 1 GiB. Allow the output plus a bounded scratch.
    # Forced to "cpp", so this measures the C++ kernel.
    env = dict(os.environ, PYTHONPATH=_PKG_PARENT, FASTLAYERS_NUM_THREADS="2")
    r = subprocess.run(
        [sys.executable, "-c", SDPA_CHILD, "causal" if causal else "full"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tempfile.gettempdir(),
    )
    assert r.returncode == 0, r.stderr
    before_kib, after_kib, out_bytes, in_bytes = (int(v) for v in r.stdout.split())
    growth = (after_kib - before_kib) * 1024
    assert growth < out_bytes + 64 * 2**20, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB for a {out_bytes / 2**20:.0f} MiB output "
        f"(inputs {in_bytes / 2**20:.0f} MiB; a T x S float32 buffer is 1024 MiB)"
    )
