"""The experts of a mixture-of-experts block in NumPy (docs/semantics.md §31).

Each token goes through the k experts its router chose, and their outputs are summed with the
router's weights. Expert e is an MLP with its own weights:

    gated (Mixtral, Qwen-MoE, OLMoE):  h = x @ gate_up[e] + b        (H -> 2I)
                                       y = (act(h[:, :I]) * h[:, I:]) @ down[e] + b   (I -> H)
    ungated:                           y = act(x @ gate_up[e] + b) @ down[e] + b

and the output row of token n is  sum_j  weights[n, j] * y_{index[n, j]}(x[n])  over its k
slots j in order (HuggingFace's ``weighted.view(N, k, H).sum(1)``). Only the chosen experts
run: the (token, slot) pairs are grouped by expert, and each expert multiplies its rows at once.
"""

from __future__ import annotations

import numpy as np

from . import activations
from .dense import dense


def route(index, n_experts):
    """The (token, slot) pairs of ``index`` (N, k) grouped by expert: ``order`` holds the flat
    pair numbers n*k + j sorted by expert (stably, so in token order within an expert), and
    expert e's pairs are ``order[bounds[e]:bounds[e + 1]]``."""
    flat = index.reshape(-1)
    order = np.argsort(flat, kind="stable")
    bounds = np.zeros(n_experts + 1, np.intp)
    np.cumsum(np.bincount(flat, minlength=n_experts), out=bounds[1:])
    return order, bounds


def gate(h, activation, gated):
    """act(gate) * up on the first projection's output h (rows, 2I), or act(h) ungated."""
    if not gated:
        return activations.apply(activation, h)
    half = h.shape[-1] // 2
    return activations.apply(activation, h[:, :half]) * h[:, half:]


def combine(y, weights):
    """y (N*k, H), the experts' outputs for each (token, slot) pair -> (N, H): each scaled
    by its router weight and summed over the slots in order."""
    n, k = weights.shape
    y *= weights.reshape(-1, 1)
    return y.reshape(n, k, y.shape[-1]).sum(axis=1)


def experts(x, index, weights, gate_up, gate_up_bias, down, down_bias, activation, gated):
    """x (N, H) float32, index (N, k) ints in [0, E), weights (N, k) float32; gate_up
    (E, H, 2I) (gated) or (E, H, I), down (E, I, H), biases (E, 2I or I) and (E, H) or None
    -> (N, H) float32."""
    n, k = index.shape
    order, bounds = route(index, gate_up.shape[0])
    y = np.zeros((n * k, x.shape[-1]), np.float32)
    for e in range(gate_up.shape[0]):
        pairs = order[bounds[e]:bounds[e + 1]]
        if pairs.size == 0:
            continue
        h = dense(x[pairs // k], gate_up[e], None if gate_up_bias is None else gate_up_bias[e],
                  "linear")
        y[pairs] = dense(gate(h, activation, gated), down[e],
                         None if down_bias is None else down_bias[e], "linear")
    return combine(y, weights)
