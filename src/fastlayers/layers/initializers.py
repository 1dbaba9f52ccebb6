"""Keras's default weight initializers, drawn with NumPy (values follow Keras's
distributions but not its random streams)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

F32 = np.float32

INITIALIZERS = (
    "zeros",
    "ones",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
)

# name -> (scale, mode) of Keras's VarianceScaling subclasses
_VARIANCE_SCALING = {
    "glorot": (1.0, "fan_avg"),
    "he": (2.0, "fan_in"),
    "lecun": (1.0, "fan_in"),
}


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as Keras's ``compute_fans``.

    Rank 0: (1, 1); rank 1: (n, n); rank 2: (rows, cols); higher ranks are treated
    as convolution kernels (..., in, out) with receptive field prod(shape[:-2]).
    """
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def check_initializer(init: Any, owner: str, name: str):
    """A Keras initializer name (case-insensitive) or a callable ``f(shape, dtype=None)``."""
    if callable(init):
        return init
    if isinstance(init, str) and init.strip().lower() in INITIALIZERS:
        return init.strip().lower()
    raise ValueError(
        f"{owner}: unknown {name} {init!r}; expected one of {list(INITIALIZERS)} or a callable "
        "f(shape, dtype=None)"
    )


def _truncated_normal(rng: np.random.Generator, shape, stddev: float) -> np.ndarray:
    """Normal(0, stddev) values redrawn until they lie within two standard deviations."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return stddev * z


def _orthogonal(rng: np.random.Generator, shape) -> np.ndarray:
    """Keras's OrthogonalInitializer (gain 1): QR of a normal matrix, sign-fixed by diag(R).

    The matrix is (max(r, c), min(r, c)) with r = prod(shape[:-1]), c = shape[-1], and
    is transposed when r < c, so a (u, 4u) recurrent kernel has orthonormal rows.
    """
    if len(shape) < 2:
        raise ValueError(f"the orthogonal initializer needs a shape of rank >= 2, got {shape}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape)


def initial_value(
    init: Any,
    shape: Sequence[int],
    rng: np.random.Generator,
    fans: tuple[int, int] | None = None,
) -> np.ndarray:
    """A float32 array of ``shape`` drawn from the initializer ``init`` (a name or callable).

    ``fans`` overrides :func:`compute_fans` (Keras's EinsumDense does so for MHA kernels).
    """
    shape = tuple(int(s) for s in shape)
    if callable(init):
        # The caller checks the shape. (Not ascontiguousarray: it makes a 0-d array 1-d.)
        return np.array(init(shape, dtype="float32"), dtype=F32, order="C")
    if init == "zeros":
        value = np.zeros(shape)
    elif init == "ones":
        value = np.ones(shape)
    elif init == "orthogonal":
        value = _orthogonal(rng, shape)
    elif init == "random_normal":
        value = 0.05 * rng.standard_normal(shape)
    elif init == "random_uniform":
        value = rng.uniform(-0.05, 0.05, shape)
    elif init == "truncated_normal":
        value = _truncated_normal(rng, shape, 0.05)
    else:  # variance scaling: glorot / he / lecun, uniform / normal
        family, distribution = init.split("_")
        scale, mode = _VARIANCE_SCALING[family]
        fan_in, fan_out = fans if fans is not None else compute_fans(shape)
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
        scale = scale / max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            value = rng.uniform(-limit, limit, shape)
        else:  # Keras's "normal" is a truncated normal, stddev corrected for the truncation
            value = _truncated_normal(rng, shape, math.sqrt(scale) / 0.87962566103423978)
    return np.array(value, dtype=F32, order="C")


def weight_spec(name: str, shape: tuple, init: Any, fans: tuple[int, int] | None = None):
    """(name, shape, make) for a layer's weight list; ``make(rng)`` draws its initial value."""
    return (name, shape, lambda rng: initial_value(init, shape, rng, fans))
