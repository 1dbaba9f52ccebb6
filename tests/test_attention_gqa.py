"""Grouped-query attention in ``scaled_dot_product_attention(..., enable_gqa=True)``.

k and v have G heads (dim -3) where q has H, G dividing H; query head h reads key/value head
h // (H / G), as PyTorch's ``enable_gqa``. The C++ path reads each key/value head in place
for its H / G query heads (``Rows4::group`` in csrc/include/fastlayers/ops.h) and packs it
once for them; the NumPy path repeats k and v. Checked here:

- against PyTorch's own ``enable_gqa`` (where torch is installed) and the float64 reference
  on the repeated k and v, on both paths, on the decode driver (T <= 8) and the blocked one,
  with causal and boolean masks, any number of leading dims;
- bitwise: the C++ path with G heads gives the bits of the same call with k and v repeated,
  for 1 and 3 threads, and so does the direct-call runner;
- bad calls raise ``ValueError`` / ``TypeError`` naming the problem, also through
  ``_core.attention`` directly.

(Keras's GroupedQueryAttention layer, which runs the same C++ path, is tested against Keras
in tests/test_group_query_attention.py.)
"""

from __future__ import annotations

import naive_seq_attn as naive
import numpy as np
import pytest
from conftest import backends_for, randn, run_on
from test_attention_cpp import check_sdpa

import fastlayers as fl
from fastlayers import _backend

SDPA = "scaled_dot_product_attention"
F32 = np.float32


def only_cpp():
    return [b for b in backends_for(SDPA) if b == "cpp"]


def grouped_qkv(rng, lead, h, g, t, s, d, dv):
    """q (*lead, H, T, D), k (*lead, G, S, D), v (*lead, G, S, Dv)."""
    return (randn(rng, *lead, h, t, d, scale=0.5), randn(rng, *lead, g, s, d),
            randn(rng, *lead, g, s, dv))


def repeated(x, h):
    """k or v with each of its heads repeated for its h / G query heads (the definition)."""
    return np.repeat(x, h // x.shape[-3], axis=-3)


# (lead, H, G, T, S, D, Dv): decode (T <= 8) and blocked (T > 8) drivers, S around the
# 256-key chunks, a prime head count, G = 1 (multi-query) and G = H (plain attention). The
# decode driver runs m query heads of a key/value head as one head of m*T rows where
# m*T <= 8 for a divisor m of H/G > 1: the first three cases (T 1, m 2; T 2, m 4; T 4, m 2).
CASES = [
    ((2,), 4, 2, 1, 300, 16, 16),
    ((1,), 8, 2, 2, 300, 16, 16),
    ((2,), 8, 4, 4, 257, 8, 8),
    ((1,), 6, 3, 5, 257, 8, 12),
    ((), 8, 1, 7, 31, 16, 16),
    ((2,), 6, 2, 9, 40, 16, 17),
    ((1,), 4, 4, 33, 64, 32, 32),
    ((2, 3), 6, 3, 20, 13, 8, 8),
    ((1,), 7, 1, 50, 97, 4, 5),
    ((1,), 4, 2, 100, 513, 64, 64),
]


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_gqa_matches_the_float64_reference(backend, case, causal, rng):
    lead, h, g, t, s, d, dv = case
    q, k, v = grouped_qkv(rng, lead, h, g, t, s, d, dv)
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, is_causal=causal,
                 enable_gqa=True)
    assert got.shape == lead + (h, t, dv)
    check_sdpa(got, q, repeated(k, h), repeated(v, h), is_causal=causal)


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("case", CASES[:5], ids=str)
def test_gqa_with_a_mask(backend, case, rng):
    lead, h, g, t, s, d, dv = case
    q, k, v = grouped_qkv(rng, lead, h, g, t, s, d, dv)
    mask = rng.random(lead + (h, t, s)) > 0.3
    mask[..., 0] = True
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, mask=mask,
                 enable_gqa=True)
    want = naive.sdpa_f64(q, repeated(k, h), repeated(v, h), mask=mask)
    check_sdpa(got, q, repeated(k, h), repeated(v, h), mask=mask)
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_gqa_matches_torch(backend, case, causal, rng):
    torch = pytest.importorskip("torch")
    lead, h, g, t, s, d, dv = case
    if not lead:  # PyTorch's enable_gqa wants (..., H, L, E) with a batch dim
        lead = (1,)
    q, k, v = grouped_qkv(rng, lead, h, g, t, s, d, dv)
    with torch.no_grad():
        want = torch.nn.functional.scaled_dot_product_attention(
            *(torch.from_numpy(x) for x in (q, k, v)), is_causal=causal, enable_gqa=True
        ).numpy()
    got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, is_causal=causal,
                 enable_gqa=True)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("backend", only_cpp())
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("threads", [1, 3])
def test_gqa_gives_the_bits_of_repeated_heads(backend, case, threads, rng):
    lead, h, g, t, s, d, dv = case
    q, k, v = grouped_qkv(rng, lead, h, g, t, s, d, dv)
    shared_mask = rng.random((t, s)) > 0.2  # one mask for every head (head stride 0)
    head_mask = rng.random(lead + (h, t, s)) > 0.2  # one per head (rows that follow on)
    saved = fl.get_num_threads()
    fl.set_num_threads(threads)
    try:
        for kw in ({}, {"is_causal": True}, {"mask": shared_mask}, {"mask": head_mask}):
            got = run_on(backend, fl.scaled_dot_product_attention, q, k, v, enable_gqa=True,
                         **kw)
            want = run_on(backend, fl.scaled_dot_product_attention, q, repeated(k, h),
                          repeated(v, h), **kw)
            np.testing.assert_array_equal(got, want, err_msg=str(kw))
    finally:
        fl.set_num_threads(saved)


@pytest.mark.parametrize("backend", only_cpp())
def test_gqa_calls_again_take_the_runner_with_the_same_bits(backend, rng):
    q, k, v = grouped_qkv(rng, (2,), 8, 2, 1, 700, 64, 64)
    want = run_on(backend, fl.scaled_dot_product_attention, q, repeated(k, 8),
                  repeated(v, 8))
    with fl.use_backend(backend):
        for _ in range(4):  # the second call on keeps a runner; it must give the same bits
            np.testing.assert_array_equal(
                fl.scaled_dot_product_attention(q, k, v, enable_gqa=True), want)
        kept = fl.functional._sdpa_direct[0]
        assert kept is not None and kept[0][:3] == (q.shape, k.shape, v.shape)
        # the same shapes without enable_gqa are still refused (not served by that runner)
        with pytest.raises(ValueError, match="enable_gqa=True lets k and v have fewer heads"):
            fl.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("backend", backends_for(SDPA))
def test_gqa_flag_with_equal_heads_is_plain_attention(backend, rng):
    """The flag with G = H (accepted, nothing shared): the plain call's bits."""
    q, k, v = grouped_qkv(rng, (2,), 4, 4, 6, 9, 8, 8)
    np.testing.assert_array_equal(
        run_on(backend, fl.scaled_dot_product_attention, q, k, v, enable_gqa=True),
        run_on(backend, fl.scaled_dot_product_attention, q, k, v))


@pytest.mark.parametrize("backend", backends_for(SDPA))
@pytest.mark.parametrize("shapes,match", [
    # G does not divide H
    (((1, 6, 4, 8), (1, 4, 9, 8), (1, 4, 9, 8)), "one that divides q's"),
    # k and v head counts differ
    (((1, 6, 4, 8), (1, 2, 9, 8), (1, 3, 9, 8)), "one that divides q's"),
    # another leading dim differs
    (((2, 6, 4, 8), (1, 2, 9, 8), (1, 2, 9, 8)), "leading dims of q but for their head"),
    # k without the head dim
    (((1, 6, 4, 8), (9, 8), (9, 8)), "leading dims of q but for their head"),
    # no key/value heads at all
    (((1, 6, 4, 8), (1, 0, 9, 8), (1, 0, 9, 8)), "one that divides q's"),
], ids=["not-dividing", "k-v-differ", "batch-differs", "k-rank", "zero-heads"])
def test_gqa_bad_shapes_raise(backend, shapes, match, rng):
    q, k, v = (randn(rng, *s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        run_on(backend, fl.scaled_dot_product_attention, q, k, v, enable_gqa=True)


@pytest.mark.parametrize("backend", backends_for(SDPA))
def test_gqa_flag_and_default(backend, rng):
    q, k, v = grouped_qkv(rng, (1,), 4, 2, 3, 5, 8, 8)
    with pytest.raises(ValueError, match="enable_gqa=True lets k and v have fewer heads"):
        run_on(backend, fl.scaled_dot_product_attention, q, k, v)  # off by default
    with pytest.raises(TypeError, match="enable_gqa"):
        run_on(backend, fl.scaled_dot_product_attention, q, k, v, enable_gqa=1)


def test_gqa_zero_query_heads_give_an_empty_output(rng):
    q = randn(rng, 1, 0, 3, 8)
    k, v = randn(rng, 1, 2, 5, 8), randn(rng, 1, 2, 5, 4)
    for backend in backends_for(SDPA):
        out = run_on(backend, fl.scaled_dot_product_attention, q, k, v, enable_gqa=True)
        assert out.shape == (1, 0, 3, 4) and out.dtype == F32


@pytest.mark.skipif("cpp" not in backends_for(SDPA), reason="the C++ core is not built")
def test_core_attention_refuses_bad_head_groups(rng):
    core = _backend._core
    q = randn(rng, 1, 6, 4, 8)
    out = np.empty((1, 6, 4, 8), F32)
    for kh, vh in ((4, 4), (2, 3), (0, 0), (12, 12)):
        k, v = randn(rng, 1, kh, 9, 8), randn(rng, 1, vh, 9, 8)
        with pytest.raises(ValueError, match="G dividing H"):
            core.attention(q, k, v, out, None, None, False, 0, 1.0, False, 1.0, 1.0, None)
    # a group the bindings accept: 2 key/value heads for 6 query heads
    k, v = randn(rng, 1, 2, 9, 8), randn(rng, 1, 2, 9, 8)
    core.attention(q, k, v, out, None, None, False, 0, 1.0, False, 1.0, 1.0, None)
    want = fl.scaled_dot_product_attention(q, repeated(k, 6), repeated(v, 6), scale=1.0)
    np.testing.assert_array_equal(out, want)
