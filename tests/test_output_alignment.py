"""Outputs of the C++ path from 4 KiB on start on a 64-byte boundary, and are freed.

NumPy starts a large array 16 bytes into a cache line; the core allocates its outputs itself
(csrc/bindings/bindings.h, ``new_f32_shape``) so that the next op's 64-byte loads never
straddle two lines. The arrays are ordinary writable float32 arrays whose base is a capsule.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import SANITIZER_RUN

import fastlayers as fl
from fastlayers import _backend
from fastlayers._cpp._alloc import empty_f32

pytestmark = pytest.mark.skipif(not _backend.core_available(), reason="the C++ core's outputs")

RNG = np.random.default_rng(0)


def _unaligned(shape):
    """A C-contiguous float32 array of random values whose data is 16 bytes into a line."""
    size = int(np.prod(shape))
    buf = np.empty(size + 32, np.float32)
    start = ((16 - buf.ctypes.data % 64) % 64) // 4
    a = buf[start:start + size].reshape(shape)
    a[...] = RNG.standard_normal(shape, dtype=np.float32)
    assert a.ctypes.data % 64 == 16
    return a


X = _unaligned((2, 9, 11, 24))
SEQ = _unaligned((4, 9, 40))
Q = _unaligned((2, 3, 33, 16))
KERNEL = RNG.standard_normal((3, 3, 24, 20), dtype=np.float32)
W = RNG.standard_normal((40, 64), dtype=np.float32)


def _calls():
    """Each call is built once (a layer's weights are made once), then run on both paths."""
    dw = fl.layers.DepthwiseConv2D(3, padding="same")
    convt = fl.layers.Conv2DTranspose(8, 3, strides=2)
    ln = fl.layers.LayerNormalization()
    lstm = fl.layers.LSTM(48, return_sequences=True)
    mha = fl.layers.MultiHeadAttention(4, 16)
    return {
        "conv2d": lambda: fl.conv2d(X, KERNEL),
        "depthwise": lambda: dw(X),
        "conv2d_transpose": lambda: convt(X),
        "dense": lambda: fl.dense(SEQ, W),
        "relu": lambda: fl.activations.relu(X),
        "softmax": lambda: fl.softmax(X),
        "max_pool": lambda: fl.layers.MaxPooling2D(1)(X),
        "layer_norm": lambda: ln(X),
        "lstm": lambda: lstm(SEQ),
        "sdpa": lambda: fl.scaled_dot_product_attention(Q, Q, Q),
        "mha": lambda: mha(SEQ, SEQ),
    }


NAMES = sorted(_calls())


@pytest.mark.parametrize("name", NAMES)
def test_outputs_of_4_kib_and_more_are_64_byte_aligned(name):
    call = _calls()[name]
    with fl.use_backend("cpp"):
        y = call()
    with fl.use_backend("numpy"):
        want = call()
    assert y.nbytes >= 4096
    assert y.ctypes.data % 64 == 0, f"{name}: data at {y.ctypes.data % 64} bytes into a line"
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.flags.writeable
    np.testing.assert_allclose(y, want, rtol=2e-4, atol=2e-5)
    y[...] = 1.0  # an ordinary writable array
    assert float(y.sum()) == y.size


def test_empty_f32():
    big = empty_f32((3, 1024))
    assert big.shape == (3, 1024) and big.dtype == np.float32 and big.ctypes.data % 64 == 0
    assert big.flags.c_contiguous and big.flags.writeable
    small = empty_f32((2, 5))
    assert small.shape == (2, 5) and small.dtype == np.float32
    assert empty_f32((0, 4096)).shape == (0, 4096)
    with pytest.raises(ValueError):
        _backend._core.empty_f32((4096, -1))
    with pytest.raises(ValueError):  # 2**62 floats, 2**64 bytes: left to NumPy's own error
        _backend._core.empty_f32((2**31, 2**31))
    # The threshold: from 1024 floats (4 KiB) on, the core's own allocation (a capsule base).
    assert type(_backend._core.empty_f32((1024,)).base).__name__ == "PyCapsule"
    assert _backend._core.empty_f32((1023,)).base is None
    # The Python side reads the threshold from the core, so the two agree on both sides of it.
    assert _backend._core.ALIGNED_OUTPUT_BYTES == 4096
    assert type(empty_f32((32, 32)).base).__name__ == "PyCapsule"
    assert empty_f32((1023,)).base is None


def test_empty_f32_skips_the_core_below_the_threshold(monkeypatch):
    """Below 4 KiB the Python side makes NumPy's array itself (no call into the core)."""
    calls = []
    core = _backend._core

    class Core:
        ALIGNED_OUTPUT_BYTES = core.ALIGNED_OUTPUT_BYTES

        @staticmethod
        def empty_f32(shape):
            calls.append(shape)
            return core.empty_f32(shape)

    monkeypatch.setattr(_backend, "_core", Core)
    assert empty_f32((1023,)).shape == (1023,) and calls == []
    assert empty_f32((1024,)).shape == (1024,) and calls == [(1024,)]


FREE_CHILD = """
import resource, numpy as np, fastlayers as fl
x = np.ones((4, 128, 128, 64), np.float32)  # 16 MiB
with fl.use_backend("cpp"):
    fl.activations.relu(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(64):  # 1 GiB in all if the outputs were never freed
        y = fl.activations.relu(x)
        y[...] = 2.0  # touch every page
        del y
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


@pytest.mark.skipif(SANITIZER_RUN, reason="RSS includes the sanitizer's memory")
def test_aligned_outputs_are_freed():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fl.__file__)))
    r = subprocess.run([sys.executable, "-c", FREE_CHILD], env=env, capture_output=True,
                       text=True, timeout=300, cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr
    before_kib, after_kib = (int(v) for v in r.stdout.split())
    assert (after_kib - before_kib) * 1024 < 128 * 2**20, "the outputs' memory was not freed"


@pytest.mark.parametrize("shape, pads", [
    ((1, 112, 112, 96), ((0, 1), (0, 1))),  # MobileNet's pad before a stride-2 depthwise conv
    ((2, 5, 7, 3), ((2, 1), (0, 3))),
    ((1, 1, 9, 4), ((0, 0), (1, 2))),
    ((0, 4, 4, 2), ((1, 1), (1, 1))),
    ((1, 3, 3, 1), ((0, 0), (0, 0))),
])
def test_zero_padding_output_is_aligned_and_exact(shape, pads):
    x = RNG.standard_normal(shape).astype(np.float32)
    want = np.pad(x, ((0, 0), *pads, (0, 0)))
    y = fl.layers.ZeroPadding2D(pads)(x)
    assert y.dtype == np.float32 and y.shape == want.shape and y.flags.c_contiguous
    np.testing.assert_array_equal(y, want)
    if y.nbytes >= 4096:
        assert y.ctypes.data % 64 == 0
    rows = np.ascontiguousarray(x[:, 0])  # (N, steps, channels): the images' first rows
    y1 = fl.layers.ZeroPadding1D(pads[1])(rows)
    np.testing.assert_array_equal(y1, np.pad(rows, ((0, 0), pads[1], (0, 0))))


def test_zero_padding_converts_and_pads_channels_first():
    """A float64 input is converted (as every layer converts); channels_first pads H and W."""
    x = RNG.standard_normal((2, 3, 4, 5))
    y = fl.layers.ZeroPadding2D(1)(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.pad(x.astype(np.float32), ((0, 0), (1, 1), (1, 1), (0, 0))))
    y = fl.layers.ZeroPadding2D(((1, 0), (0, 2)), data_format="channels_first")(x)
    np.testing.assert_array_equal(y, np.pad(x.astype(np.float32), ((0, 0), (0, 0), (1, 0), (0, 2))))


# ---- the cache of recently freed output blocks (csrc/bindings/output_cache.cpp)

def _block(y):
    """The address of the malloc'd block behind a core output (its capsule base's pointer:
    the data itself starts at an offset that changes from one output to the next)."""
    import ctypes

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    base = y.base
    while isinstance(base, np.ndarray):  # a reshaped output: the capsule is further down
        base = base.base
    assert type(base).__name__ == "PyCapsule"
    return get(base, None)


@pytest.fixture
def output_cache():
    """The cache on, at its default limit, emptied before and after the test."""
    core = _backend._core
    limit, _ = core.output_cache_limit()
    core.output_cache_limit(0)
    core.output_cache_limit(limit)
    yield core
    core.output_cache_limit(0)
    core.output_cache_limit(limit)


def test_a_freed_output_block_serves_the_next_output_of_about_its_size(output_cache):
    x = RNG.standard_normal((64, 1000)).astype(np.float32)
    y = fl.activations.relu(x)
    where = _block(y)
    del y
    assert output_cache.output_cache_limit()[1] > x.nbytes  # kept, not freed
    z = fl.activations.relu(x[:40])  # 62.5 % of the size: the same block
    assert _block(z) == where and z.ctypes.data % 64 == 0
    np.testing.assert_array_equal(z, np.maximum(x[:40], 0))
    assert output_cache.output_cache_limit()[1] == 0
    del z
    w = fl.activations.relu(x[:30])  # under half the block: a new one, the block stays kept
    assert _block(w) != where
    assert output_cache.output_cache_limit()[1] > x.nbytes
    np.testing.assert_array_equal(w, np.maximum(x[:30], 0))


def test_an_output_over_32_mib_is_kept_by_default(output_cache):
    """The default limit (128 MiB) keeps a 40 MiB output's block: the next output of its
    size reuses it instead of faulting in a fresh mapping page by page."""
    limit, _ = output_cache.output_cache_limit()
    assert limit == 128 << 20
    x = np.ones((10, 1 << 20), np.float32)  # 40 MiB
    y = fl.activations.relu(x)
    where = _block(y)
    del y
    assert output_cache.output_cache_limit()[1] > x.nbytes
    z = fl.activations.relu(x)
    assert _block(z) == where
    np.testing.assert_array_equal(z, x)


def test_the_most_recently_freed_block_is_taken_first(output_cache):
    x = RNG.standard_normal((16, 1024)).astype(np.float32)
    a, b = fl.activations.relu(x), fl.activations.relu(x)
    where_a, where_b = _block(a), _block(b)
    del b
    del a  # freed last: taken first
    c = fl.activations.relu(x)
    d = fl.activations.relu(x)
    assert (_block(c), _block(d)) == (where_a, where_b)
    np.testing.assert_array_equal(c, d)


def test_output_cache_limit_frees_what_it_no_longer_allows(output_cache):
    x = np.ones((16, 1024), np.float32)
    arrays = [fl.activations.relu(x) for _ in range(4)]
    del arrays
    limit, held = output_cache.output_cache_limit()
    assert held >= 4 * x.nbytes and limit >= held
    # One block kept: the 64 KiB of data, two pages of slack for its offset, the size field.
    assert output_cache.output_cache_limit(x.nbytes + 12000) == (limit, x.nbytes + 8192 + 8)
    assert output_cache.output_cache_limit(np.int64(0)) == (x.nbytes + 12000, 0)
    y = fl.activations.relu(x)  # with the cache off, outputs are malloc'd and freed as before
    del y
    assert output_cache.output_cache_limit() == (0, 0)


def test_output_cache_limit_rejects_bad_arguments():
    core = _backend._core
    for bad in ("1", 1.5, True, np.bool_(True), np.float32(4096)):
        with pytest.raises(TypeError, match="max_bytes must be an int or None"):
            core.output_cache_limit(bad)
    for bad in (-1, 2**70, -(2**70), np.int64(-5)):
        with pytest.raises(ValueError, match=rf"max_bytes must be in \[0, 2\*\*63\), got {bad}"):
            core.output_cache_limit(bad)


def test_outputs_from_cached_blocks_never_overlap_live_ones(output_cache):
    """Arrays of many sizes made and dropped in a random order: every live output keeps its
    own values (no block is handed out twice), and every one is 64-byte aligned."""
    rng = np.random.default_rng(3)
    live = []
    for step in range(400):
        if live and rng.random() < 0.5:
            y, fill = live.pop(int(rng.integers(len(live))))
            assert (y == fill).all()
            continue
        n = int(rng.integers(1024, 40000))
        y = fl.activations.relu(np.full(n, 0.0, np.float32))
        assert y.ctypes.data % 64 == 0
        y[...] = float(step)
        live.append((y, float(step)))
    for y, fill in live:
        assert (y == fill).all()


@pytest.mark.parametrize("name, make, want", [
    ("Add", lambda: fl.layers.Add(), lambda a, b, c: a + b + c),
    ("Multiply", lambda: fl.layers.Multiply(), lambda a, b, c: a * b * c),
    ("Average", lambda: fl.layers.Average(), lambda a, b, c: (a + b + c) / np.float32(3)),
    ("Concatenate", lambda: fl.layers.Concatenate(axis=1),
     lambda a, b, c: np.concatenate([a, np.broadcast_to(b, a.shape), c], axis=1)),
    ("Maximum", lambda: fl.layers.Maximum(), lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    ("Minimum", lambda: fl.layers.Minimum(), lambda a, b, c: np.minimum(np.minimum(a, b), c)),
    ("Subtract", lambda: fl.layers.Subtract(), lambda a, b, c: a - b),  # two inputs
])
def test_merge_outputs_are_aligned_and_exact(name, make, want):
    """The merge layers write NumPy's values into an array from the core (a residual Add in
    a model then reads and writes cached memory): the same bits as NumPy's own chain, with
    broadcasting, on either backend."""
    a = _unaligned((2, 9, 11, 24))
    b = RNG.standard_normal((2, 1, 11, 24)).astype(np.float32)
    if name == "Concatenate":
        b = np.ascontiguousarray(np.broadcast_to(b, a.shape))
    c = RNG.standard_normal((2, 9, 11, 24)).astype(np.float32)
    a[0, 0, 0, :3] = np.nan  # NaN propagates as in NumPy's own chain
    for backend in ("cpp", "numpy"):
        with fl.use_backend(backend):
            y = make()([a, b] if name == "Subtract" else [a, b, c])
        assert y.dtype == np.float32 and y.flags.c_contiguous and y.ctypes.data % 64 == 0
        np.testing.assert_array_equal(y, want(a, b, c))


def test_large_outputs_start_at_staggered_page_offsets(output_cache):
    """From 64 KiB on, consecutive outputs start at different offsets into their pages, none
    near NumPy's 16 bytes (a streaming kernel whose input and output share the low 12 address
    bits is slowed by 4K aliasing); all 64-byte aligned. Smaller ones are not staggered."""
    x = np.ones((64, 1024), np.float32)  # 256 KiB
    offsets = []
    for _ in range(8):
        y = fl.activations.relu(x)
        assert y.ctypes.data % 64 == 0
        offsets.append(y.ctypes.data % 4096)
    for a, b in zip(offsets, offsets[1:]):
        assert abs(a - b) >= 512, offsets
    assert all(512 <= o <= 4096 - 512 for o in offsets), offsets
    big = fl.activations.relu(x)
    assert big.ctypes.data - _block(big) >= 512 + 8  # past a page boundary, then the offset
    for _ in range(4):
        small = fl.activations.relu(np.ones(2048, np.float32))  # 8 KiB
        assert small.ctypes.data % 64 == 0 and small.ctypes.data - _block(small) < 72
