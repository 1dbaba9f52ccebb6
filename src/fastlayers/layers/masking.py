"""The layers that make Keras's implicit masks: Embedding (``mask_zero``) and Masking.

Inside a ``Model`` or ``Sequential`` the masks they make flow to the layers after them
(docs/semantics.md §22 (Masks)); called directly on arrays, ``compute_mask`` gives the
mask to pass on by hand (``lstm(e, mask=emb.compute_mask(ids))``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _checks as C
from .base import F32, Layer, _bool, _positive_int
from .initializers import check_initializer, weight_spec

__all__ = ["Embedding", "Masking"]


def _initializer(value: Any, owner: str) -> Any:
    # Keras's "uniform" is RandomUniform(-0.05, 0.05), fastlayers' "random_uniform".
    return check_initializer("random_uniform" if value == "uniform" else value, owner,
                             "embeddings_initializer")


class Embedding(Layer):
    """Turns non-negative integer indices into rows of a table (Keras ``Embedding``).

    Parameters
    ----------
    input_dim : int
        Number of rows (the largest index + 1).
    output_dim : int
        Size of each row.
    embeddings_initializer : str or callable
        Default "uniform" (uniform in [-0.05, 0.05], as Keras).
    mask_zero : bool
        Index 0 is padding: the layer then makes the mask ``inputs != 0`` (same shape as
        the inputs), which the next layers of a model receive. Keras sets
        ``supports_masking = mask_zero``.
    weights : array (input_dim, output_dim) or [array], optional
        Initial table.
    embeddings_regularizer, embeddings_constraint, input_length
        Accepted and ignored (no effect on inference).
    lora_rank, lora_alpha, quantization_config : must be None

    Weights: ``embeddings`` (input_dim, output_dim).

    Call: ``layer(inputs)`` with inputs of any shape (batch, ...) holding indices: any
    integer dtype, bool, or floats that hold whole numbers (Keras casts to int32; a
    fraction, NaN or inf is a ValueError here rather than a silent truncation). An index
    outside [0, input_dim) is a ValueError. Returns float32 (*inputs.shape, output_dim).
    """

    config_keys = ("input_dim", "output_dim", "embeddings_initializer", "mask_zero", "seed")
    ignored_args = ("embeddings_regularizer", "embeddings_constraint", "input_length")
    unsupported_args = {"lora_rank": None, "lora_alpha": None, "quantization_config": None}

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        weights: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.input_dim = _positive_int(input_dim, owner, "input_dim")
        self.output_dim = _positive_int(output_dim, owner, "output_dim")
        _initializer(embeddings_initializer, owner)
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = _bool(mask_zero, owner, "mask_zero")
        self.supports_masking = self.mask_zero
        if weights is not None:
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def _weight_specs(self, input_shape):
        init = _initializer(self.embeddings_initializer, type(self).__name__)
        return [weight_spec("embeddings", (self.input_dim, self.output_dim), init)]

    def _input_shape_from_weights(self, shapes):
        return None

    def build(self, input_shape: Any = None) -> None:
        """Create ``embeddings`` (input_dim, output_dim); the input shape is not needed."""
        self._create_weights(input_shape)

    def _indices(self, inputs: Any) -> np.ndarray:
        """The inputs as an intp array of indices in [0, input_dim), or a clear error."""
        owner = self._owner()
        x = C.real_array(inputs, owner, "inputs", "an array of integer indices")
        # Before the range scan below: a huge 0-stride view would be scanned element by element.
        C.elements(x.size * self.output_dim, owner, f"the output for inputs of shape {x.shape}")
        if x.dtype.kind == "f":
            finite = np.isfinite(x)
            if not finite.all() or (x != np.trunc(x)).any():
                bad = x[~finite] if not finite.all() else x[x != np.trunc(x)]
                raise ValueError(
                    f"{owner}: inputs must hold whole numbers (indices); got "
                    f"{bad.flat[0].item()!r} in a {x.dtype} array"
                )
        if x.size:
            lo, hi = x.min(), x.max()
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"{owner}: index {bad.item()!r} is out of range for input_dim="
                    f"{self.input_dim} (indices must be in [0, {self.input_dim}))"
                )
        return x.astype(np.intp, copy=False)

    def call(self, inputs: Any) -> np.ndarray:
        idx = self._indices(inputs)
        if not self.built:
            self.build(idx.shape)
        table = self._weight_map["embeddings"]  # (its size was checked by _indices)
        with C.allocating(self._owner(), f"the output of shape {idx.shape + table.shape[1:]}"):
            return np.take(table, idx, axis=0).astype(F32, copy=False)

    #: A model's shape plan may record this layer's runner with integer arrays
    #: (models/shape_plan.py, _runner_array).
    _runner_takes_indices = True

    def _runner(self, inputs: Any) -> Any:
        """A model's shape plan (models/shape_plan.py): for integer indices, the range check
        and the gather ``call`` makes, on every call (the values change; an index out of
        range raises ``call``'s error); None for float or bool indices (checked by ``call``) and
        when ``_indices`` is overridden."""
        if inputs.dtype.kind not in "iu" or "_indices" in self.__dict__ or (
                type(self)._indices is not Embedding._indices):
            return None  # (a subclass or a patch that remaps indices: its call decides)
        table, rows = self._weight_map["embeddings"], self.input_dim

        def run(idx: np.ndarray) -> np.ndarray:
            if idx.size and (idx.min() < 0 or idx.max() >= rows):
                self._indices(idx)  # raises the error of call
            return np.take(table, idx, axis=0)

        return run

    def compute_mask(self, inputs: Any, mask: Any = None) -> np.ndarray | None:
        """``inputs != 0`` (bool, the inputs' shape) if mask_zero, else None."""
        if not self.mask_zero:
            return None
        return C.real_array(inputs, self._owner(), "inputs") != 0


class Masking(Layer):
    """Masks the time steps whose features all equal ``mask_value`` (Keras ``Masking``).

    Parameters
    ----------
    mask_value : float
        Default 0.0; compared in float32.

    No weights. Call: ``layer(inputs)`` with inputs (batch, ..., features), rank >= 2.
    Keeping = ``any(inputs != mask_value, axis=-1)``; the output is the inputs (float32)
    with the masked steps set to 0 (Keras's ``where``, so an inf or NaN in a masked step
    cannot leak out), and the mask ``keep`` (batch, ...) flows to the next layers of a
    model. NaN never equals mask_value, so a step holding a NaN is kept.
    """

    config_keys = ("mask_value",)
    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        try:
            value = C.real_scalar(mask_value, owner, "mask_value")
        except (TypeError, ValueError):
            raise TypeError(f"{owner}: mask_value must be a real number, got "
                            f"{mask_value!r}") from None
        self.mask_value = float(value)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _keep(self, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        owner = self._owner()
        x = C.array(inputs, owner, "inputs")
        C.min_rank(x, owner, "inputs", 2, "(batch, ..., features)")
        return x, np.any(x != F32(self.mask_value), axis=-1)

    def call(self, inputs: Any) -> np.ndarray:
        x, keep = self._keep(inputs)
        if not self.built:
            self.build(x.shape)
        return np.where(keep[..., None], x, F32(0))

    def compute_mask(self, inputs: Any, mask: Any = None) -> np.ndarray:
        """``any(inputs != mask_value, axis=-1)``: bool (batch, ...)."""
        return self._keep(inputs)[1]
