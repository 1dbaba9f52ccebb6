"""TimeDistributed: one layer applied to every time step (Keras 3 ``TimeDistributed``), and
SpectralNormalization (the layer it wraps, as Keras runs it at inference)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _validation as V
from .base import Layer, Shape, _shape_tuple, deserialize_layer

__all__ = ["SpectralNormalization", "TimeDistributed"]


def _is_model(layer: Any) -> bool:
    from ..models.base import BaseModel  # (models import the layers: looked up lazily)

    return isinstance(layer, BaseModel)


def _takes_mask(layer: Layer) -> bool:
    try:
        return "mask" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step of its input (Keras ``TimeDistributed``).

    Parameters
    ----------
    layer : Layer
        The wrapped layer (used as is, not copied), e.g. ``Dense(8)`` or ``Conv2D(4, 3)``,
        or a ``Model`` / ``Sequential`` (a frame encoder run on every frame: it takes and
        returns one array). Anything else raises ValueError (as in Keras).

    Call: ``layer(inputs, mask=None)`` with inputs (batch, time, ...), rank >= 3. The batch
    and time axes are merged, the wrapped layer runs once on (batch * time, ...) and the
    result is split back to (batch, time, ...): the same numbers as Keras's loop over the
    time steps, since every wrapped layer treats samples independently at inference. A
    ``mask`` (batch, time, ...) is passed on, as (batch * time, ...), to a wrapped layer
    whose ``call`` takes a mask; ``compute_mask`` returns the input mask unchanged (Keras 3
    does not ask the wrapped layer). The wrapped layer must return one array.

    Weights: the wrapped layer's, in its order (``get_weights``/``set_weights`` pass
    through). Path: whatever the wrapped layer runs (Dense and Conv2D: C++ where the
    backend allows).
    """

    supports_masking = True

    def __init__(self, layer: Any, **kwargs: Any) -> None:
        owner = type(self).__name__
        layer = deserialize_layer(layer, owner)
        super().__init__(**kwargs)
        self.layer: Layer = layer

    # ---- weights: the wrapped layer's ------------------------------------------------
    @property
    def built(self) -> bool:  # type: ignore[override]
        return self.layer.built

    @built.setter
    def built(self, value: bool) -> None:  # the base constructor sets it; derived here
        pass

    def _child_shape(self, input_shape: Any) -> Shape:
        shape = _shape_tuple(input_shape)
        if len(shape) < 3:
            raise ValueError(
                f"{self._owner()}: inputs must have rank >= 3 (batch, time, ...), got shape "
                f"{shape}"
            )
        b, t = shape[0], shape[1]
        return ((None if b is None or t is None else b * t),) + shape[2:]

    def build(self, input_shape: Shape) -> None:
        """Build the wrapped layer for one time step: (batch, *input_shape[2:])."""
        if not self.layer.built:
            self.layer.build(self._child_shape(input_shape))

    @property
    def weights(self) -> list[np.ndarray]:
        return self.layer.weights

    def get_weights(self) -> list[np.ndarray]:
        return self.layer.get_weights()

    def _wrapped_leaves(self) -> list[tuple[str, Layer]]:
        """(path, layer) of the layers holding weights inside a wrapped model, in its weight
        order ('encoder/conv2d'); [("", the layer)] for a wrapped layer."""
        def walk(layer: Any, path: str) -> list[tuple[str, Layer]]:
            inner = getattr(layer, "layer", None) if isinstance(layer, TimeDistributed) else None
            if inner is not None and _is_model(inner):
                layer = inner
            if not _is_model(layer):
                return [(path, layer)]
            return [leaf for sub in layer._unique_weight_layers()
                    for leaf in walk(sub, f"{path}{sub.name}/")]

        return walk(self.layer, "")

    def _weight_names(self) -> list[str]:
        return [f"{path}{name}" for path, layer in self._wrapped_leaves()
                for name in layer._weight_names()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._check_weight_list(weights)
        try:
            self.layer.set_weights(list(weights))
        except ValueError as exc:
            raise ValueError(f"{self._owner()}: {exc}") from None

    def count_params(self) -> int:
        return self.layer.count_params()

    @property
    def non_trainable_weight_names(self) -> frozenset[str]:  # type: ignore[override]
        """The wrapped layer's (the weights are its own: a legacy .h5 file orders them so);
        of a wrapped model, its layers' as _weight_names names them."""
        return frozenset(f"{path}{name}" for path, layer in self._wrapped_leaves()
                         for name in layer.non_trainable_weight_names)

    def _sublayers(self) -> list[Layer]:
        return [self.layer]

    def _trainable_mask(self) -> list[bool]:
        return self.layer._trainable_mask()

    # ---- call ---------------------------------------------------------------------------
    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        V.min_rank(x, owner, "inputs", 3, "(batch, time, ...)")
        b, t = x.shape[:2]
        kwargs: dict[str, Any] = {}
        if mask is not None:

            def fits(shape):
                if len(shape) < 2 or shape[:2] != (b, t):
                    raise ValueError(
                        f"{owner}: mask of shape {shape} does not fit inputs of shape "
                        f"{x.shape}: its first two axes must be (batch, time) = ({b}, {t})"
                    )

            m = V.bool_mask(mask, owner, "mask", check=fits)
            if _takes_mask(self.layer):
                kwargs["mask"] = m.reshape((b * t,) + m.shape[2:])
        y = self.layer(x.reshape((b * t,) + x.shape[2:]), **kwargs)
        if not isinstance(y, np.ndarray):
            raise ValueError(
                f"{owner}: the wrapped layer {self.layer.name!r} must return one array, got "
                f"{type(y).__name__}"
            )
        if y.ndim < 1 or y.shape[0] != b * t:
            raise ValueError(
                f"{owner}: the wrapped layer {self.layer.name!r} returned shape {y.shape} for "
                f"{b * t} samples"
            )
        return y.reshape((b, t) + y.shape[1:])

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Keras 3: the input mask, unchanged."""
        return mask

    # ---- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": {"class_name": type(self.layer).__name__, "config": self.layer.get_config()},
        }

    def __repr__(self) -> str:
        return f"TimeDistributed(name={self.name!r}, layer={self.layer!r})"


# The layers with a ``kernel`` that Keras's SpectralNormalization takes, by class name
# (looked up lazily: the package imports this module). Keras also takes an Embedding (its
# ``embeddings``), but casts the wrapper's output to its input's dtype, so it returns the
# embeddings truncated to the ids' integer type: refused here rather than reproduced.
_SPECTRAL_LAYERS = ("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
                    "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D",
                    "DepthwiseConv2D")


class SpectralNormalization(Layer):
    """A layer whose kernel was trained with spectral normalization (Keras
    ``SpectralNormalization``), run as Keras runs it at inference: the wrapped layer, with
    the kernel it holds.

    Keras's wrapper divides the kernel by its largest singular value (estimated by power
    iteration from ``vector_u``) and writes the result back into the wrapped layer's kernel
    at each training step only; its inference call is the wrapped layer's. So a trained
    model's file holds the normalized kernel, and fastlayers runs it as it is.

    Parameters
    ----------
    layer : Layer
        Dense, EinsumDense, a convolution, transposed or depthwise convolution (the layers
        with a ``kernel``; anything else raises ValueError). Used as is, not copied.
        An Embedding raises NotImplementedError: Keras's wrapper casts its output to the
        ids' integer dtype, which truncates the embeddings.
    power_iterations : int >= 1
        Training only (kept in the config).

    Weights (Keras order): the wrapped layer's, with ``vector_u`` (1, kernel.shape[-1])
    after its kernel: ``[kernel, vector_u, bias]`` for a Dense with a bias.

    Call: ``layer(inputs)``: the wrapped layer's call and shapes.
    """

    non_trainable_weight_names = frozenset({"vector_u"})

    def __init__(self, layer: Any, power_iterations: int = 1, **kwargs: Any) -> None:
        owner = type(self).__name__
        layer = deserialize_layer(layer, owner)
        super().__init__(**kwargs)
        if type(layer).__name__ == "Embedding":
            raise NotImplementedError(
                f"{owner} of an Embedding: Keras casts its output to the ids' integer dtype "
                "(the embeddings truncated to integers); fastlayers does not reproduce that")
        if _is_model(layer) or type(layer).__name__ not in _SPECTRAL_LAYERS:
            raise ValueError(
                f"{owner}: wrapping {type(layer).__name__} is not supported (Keras's wrapper "
                f"takes a layer with a 'kernel'; fastlayers wraps {', '.join(_SPECTRAL_LAYERS)})")
        if (isinstance(power_iterations, (bool, np.bool_))
                or not isinstance(power_iterations, (int, np.integer)) or power_iterations < 1):
            raise ValueError(f"{owner}: power_iterations must be an int >= 1, got "
                             f"{power_iterations!r}")
        self.layer: Layer = layer
        self.power_iterations = int(power_iterations)
        self.__dict__["_vector_u"] = None

    # ---- weights: the wrapped layer's, and vector_u after its kernel ---------------------
    @property
    def built(self) -> bool:  # type: ignore[override]
        return self.layer.built and self.__dict__.get("_vector_u") is not None

    @built.setter
    def built(self, value: bool) -> None:  # the base constructor sets it; derived here
        pass

    def _kernel_index(self) -> int:
        return self.layer._weight_names().index("kernel")

    def _u_shape(self) -> tuple[int, int]:
        return (1, int(self.layer.weights[self._kernel_index()].shape[-1]))

    def build(self, input_shape: Shape) -> None:
        """Build the wrapped layer, and draw ``vector_u`` as Keras does (a truncated normal,
        stddev 0.02; it is read in training only)."""
        if not self.layer.built:
            self.layer.build(input_shape)
        rng = np.random.default_rng(self.seed)
        u = np.clip(rng.normal(0.0, 0.02, self._u_shape()), -0.04, 0.04).astype(np.float32)
        self._set_u(u)

    def _set_u(self, u: np.ndarray) -> None:
        u.flags.writeable = False
        self.__dict__["_vector_u"] = u

    @property
    def weights(self) -> list[np.ndarray]:
        if not self.built:
            return []
        inner, k = self.layer.weights, self._kernel_index()
        return inner[:k + 1] + [self.__dict__["_vector_u"]] + inner[k + 1:]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def _weight_names(self) -> list[str]:
        names, k = self.layer._weight_names(), self._kernel_index()
        return names[:k + 1] + ["vector_u"] + names[k + 1:]

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._check_weight_list(weights)
        k = self._kernel_index()
        weights = list(weights)
        try:
            self.layer.set_weights(weights[:k + 1] + weights[k + 2:])
        except ValueError as exc:
            raise ValueError(f"{self._owner()}: {exc}") from None
        u = V.array(weights[k + 1], self._owner(), "weight 'vector_u'").copy()
        if u.shape != self._u_shape():
            raise ValueError(f"{self._owner()}: weight {k + 1} 'vector_u' has shape {u.shape}, "
                             f"expected {self._u_shape()}")
        self._set_u(u)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self._owner()}: the layer is not built yet")
        return self.layer.count_params() + int(self.__dict__["_vector_u"].size)

    def _sublayers(self) -> list[Layer]:
        return [self.layer]

    def _trainable_mask(self) -> list[bool]:
        mask, k = self.layer._trainable_mask(), self._kernel_index()
        return mask[:k + 1] + [False] + mask[k + 1:]

    # ---- call and config ----------------------------------------------------------------
    def call(self, inputs: Any, training: Any = None) -> Any:
        y = self.layer(inputs)  # (builds the wrapped layer on its first call)
        if self.__dict__["_vector_u"] is None:
            self.build(None)
        return y

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": {"class_name": type(self.layer).__name__, "config": self.layer.get_config()},
            "power_iterations": self.power_iterations,
        }

    def __repr__(self) -> str:
        return f"SpectralNormalization(name={self.name!r}, layer={self.layer!r})"
