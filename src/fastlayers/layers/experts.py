"""The experts of a mixture-of-experts block (a fastlayers layer; Keras has none).

What it computes: docs/semantics.md §31 and fastlayers/_numpy/experts.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as F
from .._checks import activation as _activation
from .._cpp.experts import pack_experts
from .base import Layer, _bool, _positive_int
from .initializers import weight_spec


class Experts(Layer):
    """The expert MLPs of a mixture-of-experts block, each token through the experts its
    router chose, summed with the router's weights (HuggingFace's ``MixtralExperts``,
    ``Qwen2MoeExperts``, ``OlmoeExperts``, ...; ``from_torch`` converts those to this).

    Parameters
    ----------
    num_experts : int
        E, the number of experts.
    units : int
        I, each expert's hidden size.
    activation : str or callable
        Elementwise; default "silu".
    gated : bool
        True (default): the first projection gives 2I values, ``act(gate) * up`` of its two
        halves (gate first) goes into the second. False: ``act`` of its I values.
    use_bias : bool
        Default False.
    kernel_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform" (fans H and I) and "zeros".

    Weights: ``gate_up_kernel`` (E, H, 2I) (gated) or (E, H, I), ``gate_up_bias`` (E, 2I or
    I) if use_bias, ``down_kernel`` (E, I, H), ``down_bias`` (E, H) if use_bias; expert e's
    kernels are ``[e]``, in the Keras (input, output) layout.

    Call: ``layer(x, index, weights)`` with x (..., H) float32, index (..., k) integers in
    [0, E) (the experts chosen for each row, a router's top k) and weights (..., k) (their
    router weights); returns float32 (..., H):
    ``out[n] = sum_j weights[n, j] * expert_{index[n, j]}(x[n])``. Only the chosen experts
    run, each on all its rows at once.
    """

    config_keys = ("num_experts", "units", "activation", "gated", "use_bias",
                   "kernel_initializer", "bias_initializer", "seed")
    call_weights = ("gate_up_kernel", "gate_up_bias", "down_kernel", "down_bias")

    def __init__(self, num_experts: int, units: int, activation: Any = "silu",
                 gated: bool = True, use_bias: bool = False,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_experts = _positive_int(num_experts, owner, "num_experts")
        self.units = _positive_int(units, owner, "units")
        self.activation = _activation(activation, owner, elementwise=True)
        self.gated = _bool(gated, owner, "gated")
        self._init_weight_args(use_bias, kernel_initializer, bias_initializer)

    def _weight_specs(self, input_shape):
        h = None if input_shape is None else input_shape[-1]
        e, i = self.num_experts, self.units
        first = 2 * i if self.gated else i
        specs = [weight_spec("gate_up_kernel", (e, h, first), self.kernel_initializer, (h, i))]
        if self.use_bias:
            specs.append(weight_spec("gate_up_bias", (e, first), self.bias_initializer))
        specs.append(weight_spec("down_kernel", (e, i, h), self.kernel_initializer, (i, h)))
        if self.use_bias:
            specs.append(weight_spec("down_bias", (e, h), self.bias_initializer))
        return specs

    def _input_shape_from_weights(self, shapes):
        return (None, self._shape_of(shapes, 0, 3)[1])

    def build(self, input_shape: Any) -> None:
        """Create the weights for x of ``input_shape`` (..., H)."""
        self._create_weights_for_last_dim(input_shape)

    def call(self, x: Any, index: Any, weights: Any) -> np.ndarray:
        owner = self._owner()
        if not self.built:
            self.build(np.shape(x))
        a = V.check_experts(x, index, weights, hidden=self._weight("gate_up_kernel").shape[1],
                            num_experts=self.num_experts, activation=self.activation,
                            gated=self.gated, op=owner)
        return F.run_experts(a, self._call_weight_values, self._packed)

    def _pack(self):  # each expert's two kernels (biases folded in), for the C++ GEMM
        return pack_experts(*self._call_weight_values)
