"""Layers that Keras's application models define for themselves: ConvNeXt's ``LayerScale``
and ``StochasticDepth`` (``keras.applications.convnext``) and InceptionResNetV2's
``CustomScaleLayer`` (``keras.applications.inception_resnet_v2``).

They are not in ``keras.layers``, but those ``keras.applications`` models hold them, so
such a model saved by Keras loads here unchanged (docs/semantics.md §29).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V
from .base import Layer, _positive_int
from .initializers import weight_spec
from .normalization import _real
from .regularization import _Identity, _rate

__all__ = ["CustomScaleLayer", "LayerScale", "StochasticDepth"]


class LayerScale(Layer):
    """ConvNeXt's ``LayerScale``: ``inputs * gamma``, a learned scale per channel.

    Parameters
    ----------
    init_values : float
        The initial value of every entry of ``gamma`` (Keras's ConvNeXt uses 1e-6).
    projection_dim : int
        The number of channels: the size of the inputs' last axis.

    Weights: ``gamma`` of shape (projection_dim,).

    Call: ``layer(inputs)`` with inputs of shape (..., projection_dim); float32 of the
    inputs' shape. The scale broadcasts over every other axis, as Keras's ``x * gamma``.
    """

    # (supports_masking stays False: Keras's LayerScale keeps Layer's default, so a mask
    # stops there, and the layers after it see none)

    config_keys = ("init_values", "projection_dim")

    def __init__(self, init_values: float, projection_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.init_values = _real(init_values, owner, "init_values")
        self.projection_dim = _positive_int(projection_dim, owner, "projection_dim")

    def _weight_specs(self, input_shape):
        value = self.init_values
        return [weight_spec("gamma", (self.projection_dim,),
                            lambda shape, dtype=None: np.full(shape, value, np.float32))]

    def _input_shape_from_weights(self, shapes):
        return (None, self.projection_dim)

    def build(self, input_shape: Any) -> None:
        """Create ``gamma``, (projection_dim,), filled with ``init_values``."""
        self._check_channels(tuple(input_shape), "input_shape")
        self._create_weights(input_shape)

    def _check_channels(self, shape: tuple, what: str) -> None:
        if len(shape) < 1 or shape[-1] not in (None, self.projection_dim):
            raise ValueError(
                f"{self._owner()}: {what} {shape} must end in projection_dim = "
                f"{self.projection_dim}"
            )

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        self._check_channels(x.shape, "inputs of shape")
        if not self.built:
            self.build(x.shape)
        return x * self._weight("gamma")


class StochasticDepth(_Identity):
    """ConvNeXt's ``StochasticDepth``: drops a residual branch in training, the identity at
    inference. Parameters: drop_path_rate in [0, 1]."""

    config_keys = ("drop_path_rate",)

    def __init__(self, drop_path_rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drop_path_rate = _rate(drop_path_rate, type(self).__name__, "drop_path_rate")


class CustomScaleLayer(Layer):
    """InceptionResNetV2's ``CustomScaleLayer``: ``inputs[0] + inputs[1] * scale``, a block's
    residual branch scaled and added to its input.

    Parameters
    ----------
    scale : float

    No weights. Call: ``layer([x, residual])`` with two arrays that broadcast together
    (NumPy's rule, as Keras's ``+``); float32 of the broadcast shape. The product is float32
    with ``scale`` rounded to float32, as Keras's torch backend multiplies.
    """

    config_keys = ("scale",)

    def __init__(self, scale: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = _real(scale, type(self).__name__, "scale")

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"{owner}: takes a list of two arrays [x, residual], got "
                             f"{type(inputs).__name__}"
                             + (f" of {len(inputs)}" if isinstance(inputs, (list, tuple))
                                else ""))
        x, residual = (V.array(v, owner, f"inputs[{i}]") for i, v in enumerate(inputs))
        try:
            np.broadcast_shapes(x.shape, residual.shape)
        except ValueError:
            raise ValueError(f"{owner}: inputs of shapes {x.shape} and {residual.shape} do not "
                             "broadcast together") from None
        if not self.built:
            self.build(x.shape)
        return x + residual * np.float32(self.scale)
