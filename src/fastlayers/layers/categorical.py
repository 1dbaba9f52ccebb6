"""Keras's categorical preprocessing layers that need no vocabulary (docs/semantics.md §33):
Discretization (numbers into bins by boundaries) and CategoryEncoding (integer ids into
one-hot, multi-hot or count vectors).

Keras 3 computes both with its own ops on every backend, so a model that carries them (a
structured-data model taking its raw features) runs on Keras's torch backend, and here. The
vocabulary layers (IntegerLookup, StringLookup, Hashing, TextVectorization) run on
TensorFlow's tables in Keras, whatever the backend, and are not here.

What each computes is Keras's ``numerical_utils.encode_categorical_inputs`` as its torch
backend runs it:

- ``one_hot``: a last axis of size 1 is dropped first (rank 2 and more), then each id
  becomes a row of ``depth`` zeros with a one at the id; a negative id gives zeros.
- ``multi_hot``: the one-hot rows, their maximum over axis 1 (axis 0 of a rank-1 input, so a
  rank-1 input gives one vector for all of it, as in Keras).
- ``count``: their sum over that axis (each row times ``count_weights`` when given).

An id at or above ``depth`` is a ``ValueError`` (Keras's torch backend raises too). Float
ids are truncated toward zero, as Keras casts them; NaN and infinities count as negative
(ignored), as the cast gives the most negative integer there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Layer, _bool

__all__ = ["Discretization", "CategoryEncoding"]

_ENCODINGS = ("one_hot", "multi_hot", "count")


def _ids(x: np.ndarray, depth: int, owner: str) -> np.ndarray:
    """int64 ids of a numeric array (floats truncated toward zero, non-finite values -1);
    an id at or above ``depth`` is a ValueError."""
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            big = np.isfinite(x) & (x >= depth)
        if big.any():
            raise ValueError(f"{owner}: ids must be below {depth} (the number of tokens), got "
                             f"{float(x[big].max())}")
        x = np.where(np.isfinite(x), np.trunc(np.maximum(x, -1)), -1)
    elif x.size and x.max() >= depth:
        raise ValueError(f"{owner}: ids must be below {depth} (the number of tokens), got "
                         f"{int(x.max())}")
    return x.astype(np.int64)


def _encode(ids: np.ndarray, mode: str, depth: int, weights: np.ndarray | None = None
            ) -> np.ndarray:
    """Keras's encode_categorical_inputs (see the module's docstring) of int64 ids < depth."""
    if ids.ndim == 0:
        ids = ids[None]
        if weights is not None:
            weights = np.reshape(weights, (1,))
    if mode == "one_hot" and ids.ndim > 1 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    one = (ids[..., None] == np.arange(depth)).astype(np.float32)  # a negative id: zeros
    if mode == "one_hot":
        return one
    if weights is not None:
        one = one * np.asarray(weights, np.float32)[..., None]
    axis = 1 if ids.ndim > 1 else 0
    out = one.max(axis=axis, initial=0.0) if mode == "multi_hot" else one.sum(axis=axis)
    return np.asarray(out, np.float32)


def _numeric(inputs: Any, owner: str) -> np.ndarray:
    x = np.asarray(inputs)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: inputs must be numbers or booleans, got dtype {x.dtype}")
    return x


class Discretization(Layer):
    """Keras ``Discretization``: each number's bin among sorted ``bin_boundaries``.

    Bin i holds ``bin_boundaries[i-1] <= x < bin_boundaries[i]`` (the float32 boundaries,
    as Keras compares them): x below the first boundary is in bin 0, at or above the last
    in bin ``len(bin_boundaries)``; NaN is in the last bin (``torch.bucketize``'s answer on
    Keras's torch backend).

    Parameters
    ----------
    bin_boundaries : list of floats, non-decreasing
        The boundaries (a layer adapted in Keras has them in its config).
    num_bins : int, optional
        Kept from the config of an adapted layer; without ``bin_boundaries`` the layer
        cannot run (adapt it in Keras).
    epsilon : float
        Keras's adapt tolerance; kept for the config.
    output_mode : "int", "one_hot", "multi_hot" or "count"
        "int": int32 bin indices of the input's shape (Keras's dtype); the others encode the
        indices as CategoryEncoding does, with ``len(bin_boundaries) + 1`` tokens (float32).
    sparse : False
        Sparse outputs are not supported (nor on Keras's torch backend).

    Call: ``layer(inputs)`` on numbers (cast to float32 first, as Keras casts them).
    """

    config_keys = ("bin_boundaries", "num_bins", "epsilon", "output_mode", "sparse")

    def __init__(self, bin_boundaries: Any = None, num_bins: Any = None, epsilon: Any = 0.01,
                 output_mode: str = "int", sparse: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if output_mode not in ("int", *_ENCODINGS):
            raise ValueError(f"{owner}: output_mode must be one of 'int', "
                             f"{', '.join(map(repr, _ENCODINGS))}; got {output_mode!r}")
        if _bool(sparse, owner, "sparse"):
            raise ValueError(f"{owner}: sparse=True is not supported (nor on Keras's torch "
                             "backend)")
        if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, int)
                                     or num_bins < 0):
            raise ValueError(f"{owner}: num_bins must be an int >= 0, got {num_bins!r}")
        if num_bins is None and bin_boundaries is None:
            raise ValueError(f"{owner}: set either num_bins or bin_boundaries")
        # (Both come in the config of a layer adapted in Keras, whose from_config keeps the
        # boundaries: so both are taken here.)
        if bin_boundaries is not None:
            bins = np.asarray(bin_boundaries, np.float64)
            if bins.ndim != 1 or np.isnan(bins).any() or np.any(np.diff(bins) < 0):
                raise ValueError(f"{owner}: bin_boundaries must be a non-decreasing list of "
                                 f"numbers, got {bin_boundaries!r}")
            bin_boundaries = [float(b) for b in bins]
        self.bin_boundaries = bin_boundaries
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = False

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        if self.bin_boundaries is None:
            raise ValueError(f"{owner}: no bin_boundaries (num_bins={self.num_bins}): pass "
                             "bin_boundaries, or adapt the layer in Keras and save it")
        x = _numeric(inputs, owner).astype(np.float32)
        bins = np.asarray(self.bin_boundaries, np.float32)
        if not self.built:
            self.build(x.shape)
        index = np.searchsorted(bins, x, side="right")  # NaN sorts last: the last bin
        if self.output_mode == "int":
            return index.astype(np.int32)
        return _encode(index.astype(np.int64), self.output_mode, bins.size + 1)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)


class CategoryEncoding(Layer):
    """Keras ``CategoryEncoding``: integer ids in [0, num_tokens) as float32 vectors.

    Parameters
    ----------
    num_tokens : int >= 1
        The vectors' length; an id at or above it is a ``ValueError``.
    output_mode : "multi_hot" (default; "binary" is its old name), "one_hot" or "count"
        See the module's docstring. multi_hot and count of a rank-3 input or more are
        refused: Keras reduces axis 1 there, which is not the shape it declares for the
        layer's output.
    sparse : False
        Sparse outputs are not supported (nor on Keras's torch backend).

    Call: ``layer(inputs, count_weights=None)``; count_weights (count only) broadcast to the
    inputs' shape weight each id's count.
    """

    config_keys = ("num_tokens", "output_mode", "sparse")

    def __init__(self, num_tokens: Any = None, output_mode: str = "multi_hot",
                 sparse: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        output_mode = "multi_hot" if output_mode == "binary" else output_mode
        if output_mode not in _ENCODINGS:
            raise ValueError(f"{owner}: output_mode must be one of "
                             f"{', '.join(map(repr, _ENCODINGS))}; got {output_mode!r}")
        if num_tokens is None:
            raise ValueError(f"{owner}: num_tokens must be set")
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)) or (
                num_tokens < 1):
            raise ValueError(f"{owner}: num_tokens must be an int >= 1, got {num_tokens!r}")
        if _bool(sparse, owner, "sparse"):
            raise ValueError(f"{owner}: sparse=True is not supported (nor on Keras's torch "
                             "backend)")
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode
        self.sparse = False

    def call(self, inputs: Any, count_weights: Any = None, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = _numeric(inputs, owner)
        if not self.built:
            self.build(x.shape)
        if count_weights is not None:
            if self.output_mode != "count":
                raise ValueError(f"{owner}: count_weights is used by output_mode='count' only, "
                                 f"not {self.output_mode!r}")
            count_weights = _numeric(count_weights, owner).astype(np.float32)
            try:
                count_weights = np.broadcast_to(count_weights, x.shape)
            except ValueError:
                raise ValueError(f"{owner}: count_weights of shape {count_weights.shape} do not "
                                 f"broadcast to the inputs' {x.shape}") from None
        if self.output_mode != "one_hot" and x.ndim > 2:
            raise ValueError(
                f"{owner}: {self.output_mode} of a rank-{x.ndim} input is not supported: Keras "
                "reduces axis 1 there, which is not the output shape it declares; reshape the "
                "ids to (batch, ids) first")
        return _encode(_ids(x, self.num_tokens, owner), self.output_mode, self.num_tokens,
                       count_weights)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)
