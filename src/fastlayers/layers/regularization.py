"""The regularization layers, identity at inference: Dropout, SpatialDropout1D/2D/3D,
GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization, and Identity.

They exist so that Keras models holding them run (and load from files) unchanged. Each
takes Keras's constructor arguments; the training-only ones are checked and kept in
``get_config`` but do not change the output: at inference Keras returns the input of
these layers as it is (docs/semantics.md).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import _validation as V
from .base import Layer
from .core import _data_format

__all__ = [
    "ActivityRegularization",
    "AlphaDropout",
    "Dropout",
    "GaussianDropout",
    "GaussianNoise",
    "Identity",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
]


def _rate(value: Any, owner: str, name: str, upper: float | None = 1.0) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if value < 0 or (upper is not None and value > upper) or not np.isfinite(value):
        bound = f"[0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"{owner}: {name} must be in {bound}, got {value!r}")
    return value


def _seed_or_none(value: Any, owner: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: seed must be an int or None, got {type(value).__name__}")
    return int(value)


class _Identity(Layer):
    """Returns its input (as float32): what these layers do outside training."""

    supports_masking = True  # every one of them passes the mask on in Keras

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        if not self.built:
            self.build(x.shape)
        return x

    def _runner(self, inputs: Any, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): the input itself, as ``call`` returns
        it; marked as a view, so that a plan uses it only where the input is a new array that
        this layer alone reads."""
        return _same


def _same(x: np.ndarray) -> np.ndarray:
    return x


_same.returns_view = True  # type: ignore[attr-defined]  # see models/shape_plan.py


class Dropout(_Identity):
    """Keras ``Dropout``: the identity at inference.

    Parameters: rate in [0, 1], noise_shape (None or a tuple), seed.
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.rate = _rate(rate, owner, "rate")
        if noise_shape is not None and not isinstance(noise_shape, (list, tuple)):
            raise TypeError(f"{owner}: noise_shape must be None or a tuple, got {noise_shape!r}")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = _seed_or_none(seed, owner)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}


class Identity(_Identity):
    """Keras ``Identity``: returns its input (as float32), the mask passed on."""


class AlphaDropout(Dropout):
    """Keras ``AlphaDropout``: the identity at inference.

    Parameters: rate in [0, 1], noise_shape (None or a tuple), seed.
    """


class _SpatialDropout(_Identity):
    _rank = 0

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.rate = _rate(rate, owner, "rate")
        self.data_format = _data_format(data_format, owner)  # as Keras: lower case, None last
        self.seed = _seed_or_none(seed, owner)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        V.rank(x, self._owner(), "inputs", self._rank)
        return super().call(x)

    # (the rank check passes again for arrays of the recorded shape)
    _runner = _Identity._runner

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, "rate": self.rate, "seed": self.seed}
        if self._rank >= 4:
            config["data_format"] = self.data_format
        return config


class SpatialDropout1D(_SpatialDropout):
    """Keras ``SpatialDropout1D``: the identity at inference; inputs (batch, steps, ch)."""

    _rank = 3

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(rate, None, seed, **kwargs)


class SpatialDropout2D(_SpatialDropout):
    """Keras ``SpatialDropout2D``: the identity at inference; inputs of rank 4."""

    _rank = 4


class SpatialDropout3D(_SpatialDropout):
    """Keras ``SpatialDropout3D``: the identity at inference; inputs of rank 5."""

    _rank = 5


class GaussianNoise(_Identity):
    """Keras ``GaussianNoise``: the identity at inference. Parameters: stddev >= 0, seed."""

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.stddev = _rate(stddev, owner, "stddev", upper=None)
        self.seed = _seed_or_none(seed, owner)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_Identity):
    """Keras ``GaussianDropout``: the identity at inference. Parameters: rate in [0, 1], seed."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.rate = _rate(rate, owner, "rate")
        self.seed = _seed_or_none(seed, owner)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "rate": self.rate, "seed": self.seed}


class ActivityRegularization(_Identity):
    """Keras ``ActivityRegularization``: adds a training loss only; the identity here."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.l1 = _rate(l1, owner, "l1", upper=None)
        self.l2 = _rate(l2, owner, "l2", upper=None)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "l1": self.l1, "l2": self.l2}
