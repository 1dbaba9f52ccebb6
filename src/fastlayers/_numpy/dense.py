"""Dense and Flatten in NumPy (docs/semantics.md §3, §4)."""

from __future__ import annotations

import math

import numpy as np

from . import activations


def dense(x, kernel, bias, activation):
    """y = activation(x @ kernel + bias).

    x (..., K), kernel (K, N), bias (N,) or None -> y (..., N). Only the last axis
    of x is contracted; the leading axes are kept.
    """
    y = np.matmul(x, kernel)
    if bias is not None:
        y += bias
    return activations.apply(activation, y)


def flatten(x):
    """(B, d1, ..., dn) -> (B, d1*...*dn) in row-major order; (B,) -> (B, 1)."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def matmul(a, b):
    """a (..., M, K) @ b (..., K, N) -> (broadcast batch..., M, N), float32."""
    return np.matmul(a, b)
