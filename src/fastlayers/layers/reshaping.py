"""Shape layers: Reshape, Permute, RepeatVector (Keras 3; Flatten is in ``core``).

They move values without arithmetic: the same values on every backend (Permute's large
NCHW <-> NHWC copies run the C++ path's blocked transpose, functional.run_permute).
Their results never share memory with the caller's array. None of them supports masking
in Keras 3 (``supports_masking`` is False: an implicit mask stops at them), and so here:
``compute_mask`` returns None (docs/semantics.md, "Shape layers").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _validation as V
from .. import functional as FL
from .base import Layer

__all__ = ["Reshape", "Permute", "RepeatVector"]


def _int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class _Shape(Layer):
    """A layer without weights that drops the implicit mask, as Keras 3's shape layers do."""

    supports_masking = False

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def _input(self, inputs: Any) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        V.min_rank(x, self._owner(), "inputs", 1, "(batch, ...)")
        return x

    @staticmethod
    def _own(y: np.ndarray, original: Any) -> np.ndarray:
        y = np.ascontiguousarray(y)
        return y.copy() if np.shares_memory(y, original) else y


class Reshape(_Shape):
    """Keras ``Reshape``: each sample to ``target_shape``.

    Parameters
    ----------
    target_shape : tuple of int
        The shape of one sample (without the batch axis). One entry may be -1: it is
        inferred from the sample's size. Other entries are >= 0.

    Call: ``layer(inputs)`` with inputs (batch, ...) -> float32 (batch, *target_shape), in
    row-major order. A sample size that does not fit raises ValueError. No weights.
    """

    config_keys = ("target_shape",)

    def __init__(self, target_shape: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (list, tuple)) or not all(_int(d) for d in target_shape):
            raise TypeError(f"Reshape: target_shape must be a tuple of ints, got {target_shape!r}")
        target_shape = tuple(int(d) for d in target_shape)
        if any(d < -1 for d in target_shape) or target_shape.count(-1) > 1:
            raise ValueError(
                "Reshape: every entry of target_shape must be >= 0, or -1 for a single unknown "
                f"one; got {target_shape}"
            )
        self.target_shape = target_shape

    def _resolved(self, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
        # Python ints: exact for any target_shape (np.prod overflows, or wraps in int64)
        size = math.prod(sample_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise ValueError(
                    f"{self._owner()}: cannot reshape samples of shape {sample_shape} ({size} "
                    f"values) to target_shape {self.target_shape}"
                )
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(
                f"{self._owner()}: cannot reshape samples of shape {sample_shape} ({size} "
                f"values) to target_shape {self.target_shape} ({known} values)"
            )
        return self.target_shape

    # Its symbolic output shape is computed also for unknown sizes past the batch: the zero
    # runs cannot tell a -1 that follows them from a size that equals the run's fill
    # (Reshape((-1, 4, 2)) of (None, None, 4) is (None, None, 4, 2); the zero runs made it
    # (None, 1, 4, None), and a Dense after it was refused: a review of session 38).
    _symbolic_unknown_ok = True

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        if not self.built:
            self.build(tuple(shape))  # (as the zero run's call would)
        sample = tuple(shape[1:])
        if any(d is None for d in sample):
            if -1 not in self.target_shape:
                return None  # the zero run checks the sizes it can
            return (shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        return (shape[0],) + self._resolved(sample)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._input(inputs)
        target = self._resolved(x.shape[1:])
        if not self.built:
            self.build(x.shape)
        return self._own(x.reshape((x.shape[0],) + target), inputs)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): the copy in the recorded shape that
        ``call`` makes."""
        shape = (inputs.shape[0],) + self._resolved(inputs.shape[1:])
        return lambda x: self._own(x.reshape(shape), x)


class Permute(_Shape):
    """Keras ``Permute``: reorders the axes of each sample.

    Parameters
    ----------
    dims : tuple of int
        A permutation of 1..n (1-based: the batch axis 0 stays first). ``(2, 1)`` swaps
        the two axes after the batch axis.

    Call: ``layer(inputs)`` with inputs of rank n + 1 -> float32
    ``inputs.transpose(0, *dims)``. No weights.
    """

    config_keys = ("dims",)

    def __init__(self, dims: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(dims, (list, tuple)) or not all(_int(d) for d in dims):
            raise TypeError(f"Permute: dims must be a tuple of ints, got {dims!r}")
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Permute: dims must be a permutation of 1..n (1-based, the batch axis "
                f"excluded), got {dims}"
            )
        self.dims = dims

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._input(inputs)
        V.rank(x, self._owner(), "inputs", len(self.dims) + 1, f"(dims={self.dims})")
        if not self.built:
            self.build(x.shape)
        return FL.run_permute(x, (0,) + self.dims)

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): the transposed copy ``call`` makes."""
        perm = (0,) + self.dims
        return lambda x: FL.run_permute(x, perm)


class RepeatVector(_Shape):
    """Keras ``RepeatVector``: repeats each input vector ``n`` times.

    Parameters
    ----------
    n : int >= 1

    Call: ``layer(inputs)`` with inputs (batch, features) -> float32
    (batch, n, features). No weights.
    """

    config_keys = ("n",)

    def __init__(self, n: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not _int(n):
            raise TypeError(f"RepeatVector: n must be an int, got {n!r}")
        if n < 1:
            raise ValueError(f"RepeatVector: n must be a positive integer, got {n}")
        self.n = int(n)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._input(inputs)
        V.rank(x, self._owner(), "inputs", 2, "(batch, features)")
        if not self.built:
            self.build(x.shape)
        with V.allocating(self._owner(), f"the output of n={self.n} repeats"):
            return np.ascontiguousarray(np.repeat(x[:, None, :], self.n, axis=1))
