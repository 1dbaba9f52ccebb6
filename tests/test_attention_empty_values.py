"""Attention with Dv = 0 still computes the weights it is asked for (they used to come back
as an uninitialized buffer on the C++ path: values like +-3.4e38 instead of 1/3)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backends_for, run_on

import fastlayers as fl


@pytest.mark.parametrize("backend", backends_for("attention"))
@pytest.mark.parametrize("op", [fl.attention, fl.additive_attention])
@pytest.mark.parametrize("t", [1, 3, 8, 9, 20])
def test_weights_with_empty_values(backend, op, t):
    rng = np.random.default_rng(t)
    q = rng.random((2, t, 4), np.float32)
    k = rng.random((2, 5, 4), np.float32)
    v = np.ones((2, 5, 0), np.float32)
    out, w = run_on(backend, op, q, v, k, return_attention_scores=True)
    assert out.shape == (2, t, 0) and w.shape == (2, t, 5)
    _, want = run_on("numpy", op, q, np.ones((2, 5, 1), np.float32), k,
                     return_attention_scores=True)  # the weights do not depend on v
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    # Identical keys: uniform weights, exactly as the reproducer expects.
    _, w = run_on(backend, op, np.ones((1, 2, 4)), np.ones((1, 3, 0)), np.ones((1, 3, 4)),
                  return_attention_scores=True)
    np.testing.assert_allclose(w, 1 / 3, rtol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_zero_feature_dimension_is_refused_on_every_path(backend):
    # D = 0 gave a result on NumPy and an error from C++; both paths now refuse it alike.
    q0, k0, v0 = np.ones((1, 2, 0)), np.ones((1, 3, 0)), np.ones((1, 3, 2))
    with fl.use_backend(backend):
        for op in (fl.attention, fl.additive_attention):
            with pytest.raises(ValueError, match="feature dimension >= 1"):
                op(q0, v0, k0)
        with pytest.raises(ValueError, match="feature dimension >= 1"):
            fl.multi_head_attention(
                np.ones((1, 2, 0)), np.ones((1, 3, 4)), query_kernel=np.ones((0, 2, 2)),
                key_kernel=np.ones((4, 2, 2)), value_kernel=np.ones((4, 2, 2)),
                output_kernel=np.ones((2, 2, 0)),
            )
