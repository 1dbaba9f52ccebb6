"""Which einsum equations are batched matrix products, for the loaders that run those as
``fastlayers.matmul`` (io/keras_config.py's Einsum op, io/torch_ops.py's torch_einsum)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=256)  # a converted model's einsum calls it on every call
def matmul_form(equation: str) -> bool | None:
    """For an einsum of two operands that is a batched matrix product with the same batch
    letters everywhere (spaces ignored): False for "...ik,...kj->...ij", True for
    "...ik,...jk->...ij" (the second operand transposed, as attention's q k^T); else None."""
    try:
        lhs, out = equation.replace(" ", "").split("->")
        a, b = lhs.split(",")
    except ValueError:
        return None
    n = len(a)
    if (n < 2 or len(b) != n or len(out) != n or "." in equation or len(set(a)) != n
            or a[:-2] != b[:-2] or a[:-2] != out[:-2] or out[-2] != a[-2]):
        return None
    k = a[-1]
    if b[-2:] == k + out[-1] and out[-1] not in a:
        return False
    if b[-2:] == out[-1] + k and out[-1] not in a:
        return True
    return None
