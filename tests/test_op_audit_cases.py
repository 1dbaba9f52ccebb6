"""Single ops on inputs an audit as a NumPy drop-in user found mishandled (session 27): a
PyTorch-style additive float mask given to scaled_dot_product_attention, activations.linear
returning the caller's array, sparsemax on large magnitudes, and matmul's broadcast copies.
References: PyTorch, and the float64 definition for sparsemax."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers._cpp import dense as cpp_dense


def _qkv(rng, t=5, s=5, d=8):
    return (rng.standard_normal((2, t, d), dtype=np.float32),
            rng.standard_normal((2, s, d), dtype=np.float32),
            rng.standard_normal((2, s, d), dtype=np.float32))


@pytest.mark.parametrize("blocked", [-np.inf, -1e9, -1.0])
def test_sdpa_refuses_an_additive_float_mask(any_backend, rng, blocked):
    q, k, v = _qkv(rng)
    additive = np.triu(np.full((5, 5), blocked, np.float32), 1)  # PyTorch's causal attn_mask
    with pytest.raises(ValueError, match=r"product_attention: .*mask=\(attn_mask == 0\)"):
        fl.scaled_dot_product_attention(q, k, v, mask=additive)


def test_sdpa_numeric_masks_still_mean_nonzero(any_backend, rng):
    q, k, v = _qkv(rng)
    allowed = np.tril(np.ones((5, 5), bool))
    want = fl.scaled_dot_product_attention(q, k, v, mask=allowed)
    for numeric in (allowed.astype(np.float32), allowed.astype(np.int64)):
        np.testing.assert_array_equal(fl.scaled_dot_product_attention(q, k, v, mask=numeric), want)


def test_sdpa_bool_mask_matches_torch(any_backend, rng):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(rng)
    allowed = np.tril(np.ones((5, 5), bool))
    want = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=torch.from_numpy(allowed)).numpy()
    got = fl.scaled_dot_product_attention(q, k, v, mask=allowed)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [fl.activations.linear, fl.activations.get(None),
                                fl.activations.get("linear"), fl.activations.relu])
def test_activations_return_a_new_array(any_backend, rng, fn):
    x = rng.standard_normal((3, 4), dtype=np.float32)
    before = x.copy()
    y = fn(x)
    assert not np.may_share_memory(x, y)
    y[...] = 99.0
    np.testing.assert_array_equal(x, before)


def test_activations_never_return_the_callers_memory(any_backend, rng):
    class Wrapped:  # an array-like whose __array__ hands out its own buffer
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    held = rng.standard_normal((3, 4), dtype=np.float32)
    for fn in (fl.activations.linear, fl.activations.relu):
        assert not np.may_share_memory(fn(Wrapped(held)), held)
    if any_backend == "numpy":  # sparsemax has no C++ path
        empty = np.zeros((2, 0), np.float32)
        assert fl.activations.sparsemax(empty) is not empty  # (no memory to share)


def _sparsemax64(row):
    """The simplex projection in float64, by its definition (sort, support, threshold)."""
    z = np.sort(np.asarray(row, np.float64))[::-1]
    cums = np.cumsum(z)
    k = np.arange(1, z.size + 1)
    kz = k[1 + k * z > cums][-1]
    tau = (cums[kz - 1] - 1) / kz
    return np.maximum(np.asarray(row, np.float64) - tau, 0)


@pytest.mark.parametrize("row, want", [
    ([1e8, 1e8 + 16], [0.0, 1.0]),
    ([1e30, -1e30], [1.0, 0.0]),
    ([3e38, 3e38], [0.5, 0.5]),
    ([-3e38, -3e38, -3e38, -3e38], [0.25] * 4),
])
def test_sparsemax_large_magnitudes(row, want):  # NumPy only (no C++ sparsemax)
    got = fl.activations.sparsemax(np.array([row], np.float32))
    np.testing.assert_allclose(got[0], want, atol=1e-7)


def test_sparsemax_matches_the_float64_definition(rng):
    x = (rng.standard_normal((50, 13)) * rng.choice([0.1, 1.0, 30.0, 1e5], (50, 1))).astype(
        np.float32)
    got = fl.activations.sparsemax(x)
    for row, g in zip(x, got):
        np.testing.assert_allclose(g, _sparsemax64(row), atol=2e-6)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=2e-6)


@pytest.fixture
def cpp():
    """The C++ path (a missing core fails here loudly, as in the rest of the suite)."""
    if NUMPY_ONLY:
        pytest.skip("NumPy-only run requested (FASTLAYERS_TEST_NUMPY_ONLY=1)")
    with fl.use_backend("cpp"):
        yield


@pytest.mark.parametrize("a_shape, b_shape", [
    ((4, 7, 5), (1, 5, 3)),
    ((2, 3, 7, 5), (1, 1, 5, 3)),
    ((6, 1, 5), (1, 5, 17)),
])
def test_matmul_shared_b_is_the_batched_products(cpp, rng, a_shape, b_shape):
    """A b of batch size 1 runs as one product over a's rows: the same bits as the batched
    products with b copied to every entry."""
    a = rng.standard_normal(a_shape, dtype=np.float32)
    b = rng.standard_normal(b_shape, dtype=np.float32)
    full_b = np.ascontiguousarray(np.broadcast_to(b, a_shape[:-2] + b_shape[-2:]))
    np.testing.assert_array_equal(fl.matmul(a, b), fl.matmul(a, full_b))
    np.testing.assert_allclose(fl.matmul(a, b), np.matmul(a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((37, 1, 1, 1), (37, 1, 1)),      # the audit's (n, 1, 1, 1) @ (n, 1, 1): an outer batch
    ((5, 1, 4, 3), (7, 3, 2)),
    ((1, 9, 4, 3), (11, 1, 3, 2)),
    ((1, 6, 1, 4, 3), (5, 3, 2)),     # the first batch axis is 1: sliced along the second
])
def test_matmul_broadcast_in_slices(cpp, rng, monkeypatch, a_shape, b_shape):
    """Broadcast copies over the limit are made a slice of the first batch axis longer than 1
    at a time: the same bits as one call (each entry is its own chain)."""
    a = rng.standard_normal(a_shape, dtype=np.float32)
    b = rng.standard_normal(b_shape, dtype=np.float32)
    whole = fl.matmul(a, b)
    core = fl._backend._core
    batched = core.matmul_batched
    calls = []
    monkeypatch.setattr(core, "matmul_batched", lambda *args: calls.append(1) or batched(*args))
    monkeypatch.setattr(cpp_dense, "_BROADCAST_CHUNK_BYTES", 64)
    sliced = fl.matmul(a, b)
    assert len(calls) > 1  # sliced indeed
    np.testing.assert_array_equal(sliced, whole)
    np.testing.assert_allclose(whole, np.matmul(a, b), rtol=1e-5, atol=1e-5)
