"""layers.Experts, the expert MLPs of a mixture-of-experts block, on both paths.

References: a per-token loop written here (each token through each expert it chose, one
after the other, in float64), and transformers' own experts modules run by PyTorch
(MixtralExperts, Qwen2MoeExperts: the eager loop HuggingFace wrote), when installed.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import backends_for, run_on

import fastlayers as fl
from fastlayers.layers import Experts

BACKENDS = backends_for("experts")


def _silu(v):
    return v / (1 + np.exp(-v))


def _gelu_tanh(v):
    return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))


ACTS = {"silu": _silu, "relu": lambda v: np.maximum(v, 0),
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)), _gelu_tanh: _gelu_tanh}


def _reference(x, index, weights, w, activation, gated, use_bias):
    """Each token through its chosen experts, one at a time, in float64."""
    w = [a.astype(np.float64) for a in w]
    first, first_b, down, down_b = (w[0], w[1], w[2], w[3]) if use_bias else (
        w[0], None, w[1], None)
    act = ACTS[activation]
    out = np.zeros((x.shape[0], x.shape[1]), np.float64)
    for n in range(x.shape[0]):
        for j in range(index.shape[1]):
            e = index[n, j]
            h = x[n].astype(np.float64) @ first[e] + (0 if first_b is None else first_b[e])
            if gated:
                i = h.shape[0] // 2
                h = act(h[:i]) * h[i:]
            else:
                h = act(h)
            out[n] += weights[n, j] * (h @ down[e] + (0 if down_b is None else down_b[e]))
    return out


def _case(rng, tokens, hidden, units, experts, k, use_bias=False, gated=True,
          activation="silu", seed=0):
    layer = Experts(experts, units, activation=activation, gated=gated, use_bias=use_bias,
                    seed=seed)
    layer.build((None, hidden))
    if use_bias:  # (zeros by default)
        w = layer.get_weights()
        w[1] = rng.standard_normal(w[1].shape).astype(np.float32) * 0.1
        w[3] = rng.standard_normal(w[3].shape).astype(np.float32) * 0.1
        layer.set_weights(w)
    x = rng.standard_normal((tokens, hidden)).astype(np.float32)
    index = np.array([rng.permutation(experts)[:k] for _ in range(tokens)],
                     np.int64).reshape(tokens, k)
    weights = rng.random((tokens, k)).astype(np.float32)
    return layer, x, index, weights


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tokens,hidden,units,experts,k", [
    (1, 8, 4, 1, 1),  # one token, one expert
    (7, 16, 6, 4, 2),
    (13, 17, 5, 3, 3),  # primes; every expert for every token
    (29, 32, 15, 8, 2),  # 15, 17 columns: a 16-wide panel plus and minus one
    (64, 24, 17, 6, 1),
    (0, 8, 4, 2, 2),  # no tokens
])
def test_against_a_per_token_loop(rng, backend, tokens, hidden, units, experts, k):
    layer, x, index, weights = _case(rng, tokens, hidden, units, experts, k)
    got = run_on(backend, layer, x, index, weights)
    want = _reference(x, index, weights, layer.get_weights(), "silu", True, False)
    assert got.dtype == np.float32 and got.shape == (tokens, hidden)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", ["silu", "relu", "sigmoid", _gelu_tanh])  # a callable
def test_variants(rng, backend, gated, use_bias, activation):
    layer, x, index, weights = _case(rng, 11, 12, 7, 5, 2, use_bias=use_bias, gated=gated,
                                     activation=activation)
    got = run_on(backend, layer, x, index, weights)
    want = _reference(x, index, weights, layer.get_weights(), activation, gated, use_bias)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unused_experts_leading_axes_and_one_expert_for_all(rng, backend):
    layer, x, index, weights = _case(rng, 12, 8, 4, 6, 2)
    index[:] = [3, 1]  # experts 0, 2, 4, 5 unused
    got = run_on(backend, layer, x, index, weights)
    want = _reference(x, index, weights, layer.get_weights(), "silu", True, False)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    # (batch, time, hidden) with (batch, time, k): the rows of both leading axes
    got3 = run_on(backend, layer, x.reshape(3, 4, 8), index.reshape(3, 4, 2),
                  weights.reshape(3, 4, 2))
    np.testing.assert_array_equal(got3, got.reshape(3, 4, 8))
    # a 1-D x is one row; the same expert chosen twice counts twice
    one = run_on(backend, layer, x[0], np.array([2, 2]), np.array([0.5, 0.25], np.float32))
    want1 = _reference(x[:1], np.array([[2, 2]]), np.array([[0.5, 0.25]]),
                       layer.get_weights(), "silu", True, False)[0]
    np.testing.assert_allclose(one, want1, rtol=2e-5, atol=2e-5)


def test_both_paths_agree_and_the_model_path(rng):
    layer, x, index, weights = _case(rng, 40, 16, 9, 5, 2)
    outs = [run_on(b, layer, x, index, weights) for b in BACKENDS]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-6)
    i, j, w = fl.Input((16,)), fl.Input((2,), dtype="int64"), fl.Input((2,))
    model = fl.Model([i, j, w], layer(i, j, w))
    np.testing.assert_allclose(model([x, index, weights]), outs[0], rtol=1e-5, atol=1e-6)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again([x, index, weights]), model([x, index, weights]))
    assert layer.count_params() == 5 * (16 * 18 + 9 * 16)


def test_bad_inputs(rng):
    layer, x, index, weights = _case(rng, 4, 8, 4, 3, 2)
    for backend in BACKENDS:
        with fl.use_backend(backend):
            with pytest.raises(ValueError, match="expert number 3 is out of range for 3"):
                layer(x, np.full((4, 2), 3), weights)
            with pytest.raises(ValueError, match="expert number -1 is out of range"):
                layer(x, np.full((4, 2), -1), weights)
            with pytest.raises(TypeError, match="index must hold integers"):
                layer(x, index.astype(np.float32), weights)
            with pytest.raises(ValueError, match="its last axis must be the experts' input"):
                layer(x[:, :7], index, weights)
            with pytest.raises(ValueError, match="index has shape"):
                layer(x, index[:3], weights[:3])
            with pytest.raises(ValueError, match="weights"):
                layer(x, index, weights[:, :1])
            with pytest.raises(TypeError):
                layer(x, "0", weights)
    with pytest.raises(ValueError, match="num_experts"):
        Experts(0, 4)
    with pytest.raises(ValueError, match="elementwise"):
        Experts(2, 4, activation="softmax")
    with pytest.raises(TypeError, match="gated"):
        Experts(2, 4, gated="yes")
    with pytest.raises(ValueError, match=r"'down_kernel' has shape \(3, 4, 9\), expected"):
        layer.set_weights([np.zeros((3, 8, 8), np.float32), np.zeros((3, 4, 9), np.float32)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", ["MixtralExperts", "Qwen2MoeExperts"])
def test_against_transformers_experts(rng, backend, cls):
    """HuggingFace's own experts module (its eager loop over the experts hit, index_add_),
    run by PyTorch, with the same weights in its (E, out, in) layout."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if cls == "MixtralExperts":
        cfg = transformers.MixtralConfig(hidden_size=24, intermediate_size=10,
                                         num_local_experts=6, num_experts_per_tok=2)
        mod = transformers.models.mixtral.modeling_mixtral.MixtralExperts(cfg)
    else:
        cfg = transformers.Qwen2MoeConfig(hidden_size=24, moe_intermediate_size=10,
                                          num_experts=6, num_experts_per_tok=2)
        mod = transformers.models.qwen2_moe.modeling_qwen2_moe.Qwen2MoeExperts(cfg)
    cfg._experts_implementation = "eager"
    with torch.no_grad():
        mod.gate_up_proj.normal_(0, 0.2)
        mod.down_proj.normal_(0, 0.2)
    x = rng.standard_normal((37, 24)).astype(np.float32)
    index = np.stack([rng.permutation(6)[:2] for _ in range(37)])
    weights = rng.random((37, 2)).astype(np.float32)
    with torch.no_grad():
        want = mod(torch.from_numpy(x), torch.from_numpy(index), torch.from_numpy(weights))
    layer = Experts(6, 10, activation="silu")
    layer.set_weights([mod.gate_up_proj.detach().numpy().transpose(0, 2, 1),
                       mod.down_proj.detach().numpy().transpose(0, 2, 1)])
    got = run_on(backend, layer, x, index, weights)
    np.testing.assert_allclose(got, want.numpy(), rtol=2e-5, atol=2e-5)
