"""Normalization layers (BatchNormalization, LayerNormalization, GroupNormalization,
RMSNormalization, UnitNormalization), the activation layers with parameters (ReLU,
LeakyReLU, PReLU, ELU) and the preprocessing layers that are arithmetic at inference
(Rescaling, Normalization).

What each computes is Keras 3's formula at inference (docs/semantics.md §23).
LayerNormalization runs the ``layer_norm`` op (C++ row driver or NumPy), RMSNormalization
and UnitNormalization the ``rms_norm`` and ``unit_norm`` row drivers or NumPy,
GroupNormalization the C++ NHWC driver (``group_norm``) or NumPy; BatchNormalization runs on
the C++ path as one pass of x * scale + shift (``channel_affine_lastdim``: NumPy's product,
then sum, so the same bits but for subnormals, which C++ flushes). ReLU, LeakyReLU
and ELU whose parameters are those of a Keras activation name in the core's table (relu,
relu6, leaky_relu with slope 0.2, elu with alpha 1) run that kernel under "auto" and "cpp".
The others compute with fastlayers/_numpy/normalization.py under every backend (the core
has no kernel for them). A BatchNormalization right after a linear Dense or Conv2D inside a
model is folded into that layer's packed weights, so it runs in the C++ GEMM
(fastlayers/models/folding.py, docs/architecture.md §13).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend
from .. import _validation as V
from .. import functional as F
from .._cpp import activations as _cpp_act
from .._cpp import normalization as _cpp_norm
from .._numpy import activations as _np_act
from .._numpy import normalization as _np_norm
from .base import Layer, _bool
from .initializers import INITIALIZERS, check_initializer, weight_spec

F32 = np.float32

__all__ = [
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "RMSNormalization",
    "UnitNormalization",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Rescaling",
    "Normalization",
]


# ------------------------------------------------------------------------------ helpers


def _initializer(value: Any, owner: str, name: str):
    """A Keras initializer: a name, a callable, or a serialized Keras initializer without
    arguments ({"class_name": "Zeros", ...}, as configs store them)."""
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        from .base import _snake_case

        key = _snake_case(value["class_name"])
        if key in INITIALIZERS and not value.get("config"):
            value = key
    return check_initializer(value, owner, name)


def _real(value: Any, owner: str, name: str, minimum: float | None = None,
          strict: bool = False) -> float:
    value = V.real_scalar(value, owner, name)  # the functional ops' rule: the same values
    if not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        op = ">" if strict else ">="
        raise ValueError(f"{owner}: {name} must be {op} {minimum}, got {value!r}")
    return value


def _int_axis(value: Any, owner: str, name: str = "axis") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    return int(value)


def _axis_list(value: Any, owner: str) -> int | list[int]:
    """An int, or a non-empty list of distinct ints (a tuple becomes a list, as in Keras)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{owner}: axis must not be empty")
        return [_int_axis(a, owner) for a in value]
    return _int_axis(value, owner)


def _positions(axes: list[int], ndim: int, owner: str, what: str = "inputs") -> list[int]:
    """The non-negative positions of ``axes`` in an array of rank ``ndim`` (checked)."""
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{owner}: axis {a} is out of range for {what} of rank {ndim}"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{owner}: axis {axes} names the same axis twice for rank {ndim}")
    return out


def _rank_for(axes: list[int]) -> int:
    """The smallest rank in which ``axes`` name distinct axes (to place weights whose
    shapes are known before any input was seen)."""
    ndim = max([a + 1 for a in axes if a >= 0] + [-a for a in axes if a < 0] + [1])
    while len({a % ndim for a in axes}) != len(axes):
        ndim += 1
    return ndim


def _shape_over_axes(layer: Layer, shapes: list) -> tuple:
    """An input shape (the smallest rank) whose sizes over ``layer._axes()`` are those of
    the first weight, the rest unknown: set_weights's build of LayerNormalization and
    RMSNormalization."""
    axes = layer._axes()
    want = layer._shape_of(shapes, 0, len(axes))
    shape = [None] * _rank_for(axes)
    for a, d in zip(axes, want):
        shape[a] = d
    return tuple(shape)


def _set_affine_args(layer: Layer, epsilon: Any, center: Any, scale: Any,
                     beta_initializer: Any, gamma_initializer: Any) -> None:
    """epsilon, center, scale and the beta / gamma initializers of a normalization layer,
    checked and set on ``layer``."""
    owner = type(layer).__name__
    layer.epsilon = _real(epsilon, owner, "epsilon", minimum=0.0)
    layer.center = _bool(center, owner, "center")
    layer.scale = _bool(scale, owner, "scale")
    layer.beta_initializer = _initializer(beta_initializer, owner, "beta_initializer")
    layer.gamma_initializer = _initializer(gamma_initializer, owner, "gamma_initializer")


def _affine_specs(layer: Layer, shape: tuple | None) -> list:
    """The weight specs of ``gamma`` (if scale) and ``beta`` (if center), both of ``shape``,
    in Keras's order."""
    specs = []
    if layer.scale:
        specs.append(weight_spec("gamma", shape, layer.gamma_initializer))
    if layer.center:
        specs.append(weight_spec("beta", shape, layer.beta_initializer))
    return specs


class _NoWeights(Layer):
    """A layer without weights: built by its first call."""

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _input(self, inputs: Any) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        if not self.built:
            self.build(x.shape)
        return x


def _core_activation(x: np.ndarray, name: str | None, owner: str) -> np.ndarray | None:
    """``name`` on the core's elementwise kernel when the backend takes C++ for it, else None."""
    if name is None or _cpp_act.fused_id(name) is None:
        return None
    if _backend.resolve(owner, None) != "cpp":
        return None
    return _cpp_act.activate(x, name)


# ------------------------------------------------------------------ BatchNormalization


class BatchNormalization(Layer):
    """Batch normalization at inference (Keras ``BatchNormalization``).

    ``y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta`` along
    ``axis`` (computed as ``x * scale + shift`` with per-channel scale and shift).

    Parameters
    ----------
    axis : int
        The channel axis (default -1). Keras's BatchNormalization takes one int.
    momentum : float
        Training only (kept in the config).
    epsilon : float >= 0
        Default 1e-3.
    center, scale : bool
        Whether the layer has ``beta`` and ``gamma``.
    beta_initializer, gamma_initializer, moving_mean_initializer,
    moving_variance_initializer : str or callable
        Defaults "zeros", "ones", "zeros", "ones".
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint,
    renorm_clipping, renorm_momentum, synchronized
        Training only; ignored.
    renorm : bool
        Batch renormalization (Keras's ``renorm``): it changes training only. The layer
        holds its three extra statistics, so that a trained layer's weights load, and
        computes with ``moving_mean`` and ``moving_variance`` as Keras does at inference
        (Keras keeps ``moving_variance`` = relu(moving_stddev² − epsilon) as it trains).

    Weights (Keras order): ``gamma`` (C,) if scale, ``beta`` (C,) if center,
    ``moving_mean`` (C,), ``moving_variance`` (C,), and with renorm ``moving_stddev``,
    ``renorm_mean``, ``renorm_stddev`` (C,) each; C = inputs.shape[axis].

    Call: ``layer(inputs, training=None, mask=None)``: any rank > axis; returns float32 of
    the inputs' shape. ``training`` and ``mask`` do not change the inference result.

    Both paths compute ``x * scale + shift`` with the product rounded to float32, then the
    sum: the same bits (on C++ one pass, ``_core.channel_affine_lastdim``), but for subnormal
    inputs and results, which the C++ path flushes to zero (docs/architecture.md §7). Inside
    a model a BatchNormalization after a linear Dense or Conv2D is folded into it instead.
    """

    non_trainable_weight_names = frozenset(
        {"moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev"})

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = (
        "axis",
        "momentum",
        "epsilon",
        "center",
        "scale",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
        "renorm",
        "seed",
    )
    ignored_args = (
        "beta_regularizer",
        "gamma_regularizer",
        "beta_constraint",
        "gamma_constraint",
        "renorm_clipping",
        "renorm_momentum",
        "synchronized",
    )

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        renorm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.renorm = _bool(renorm, owner, "renorm")
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]  # Keras 2 configs store the axis as a one-element list
        self.axis = _int_axis(axis, owner)
        self.momentum = _real(momentum, owner, "momentum")
        _set_affine_args(self, epsilon, center, scale, beta_initializer, gamma_initializer)
        self.moving_mean_initializer = _initializer(
            moving_mean_initializer, owner, "moving_mean_initializer"
        )
        self.moving_variance_initializer = _initializer(
            moving_variance_initializer, owner, "moving_variance_initializer"
        )

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else (input_shape[self.axis],)
        specs = _affine_specs(self, c)
        specs.append(weight_spec("moving_mean", c, self.moving_mean_initializer))
        specs.append(weight_spec("moving_variance", c, self.moving_variance_initializer))
        if self.renorm:  # statistics of training only (Keras's initial values by default)
            specs.append(weight_spec("moving_stddev", c, "ones"))
            specs.append(weight_spec("renorm_mean", c, self.moving_mean_initializer))
            specs.append(weight_spec("renorm_stddev", c, "ones"))
        return specs

    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, 1)[0]
        ndim = _rank_for([self.axis])
        shape = [None] * ndim
        shape[self.axis] = c
        return tuple(shape)

    def build(self, input_shape: Any) -> None:
        """Create the weights, each (input_shape[axis],)."""
        input_shape = tuple(input_shape)
        _positions([self.axis], len(input_shape), self._owner(), "input_shape")
        if input_shape[self.axis] is None:
            raise ValueError(
                f"{self._owner()}: build needs a known size on axis {self.axis}, got "
                f"{input_shape}"
            )
        self._create_weights(input_shape)

    def channel_count(self) -> int:
        return int(self._weight("moving_mean").shape[0])

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift), each (C,) float32: the layer as ``x * scale + shift``."""
        return _np_norm.batch_norm_affine(
            self._weight("moving_mean"),
            self._weight("moving_variance"),
            self._weight("gamma"),
            self._weight("beta"),
            self.epsilon,
        )

    def _on_weights_set(self) -> None:
        self._affine = self.affine()
        super()._on_weights_set()

    def _config_changed(self, name: str) -> None:
        if name == "epsilon" and self.built:
            self._on_weights_set()  # scale and shift (and the packed kernel) use epsilon

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> np.ndarray:
        return self._normalize(inputs, "linear")

    def _normalize(self, inputs: Any, activation: str) -> np.ndarray:
        """The layer on ``inputs``, then the elementwise ``activation`` (a name; "linear" for
        none): a model's BatchNormalization with the activation layer that alone reads it
        (models/folding.py, DenseNet's and pre-activation ResNets' BN -> ReLU -> conv). On C++
        the activation runs in the same pass (on each block of rows while it is in L1), with
        the bits of the two layers run one after the other."""
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        (axis,) = _positions([self.axis], x.ndim, owner)
        if not self.built:
            self.build(x.shape)
        c = self.channel_count()
        if x.shape[axis] != c:
            raise ValueError(
                f"{owner}: inputs have {x.shape[axis]} channels on axis {self.axis} (shape "
                f"{x.shape}), the weights {c}"
            )
        scale, shift = self._affine
        if x.size == 0:
            return np.zeros(x.shape, F32)
        if _backend.resolve(owner, None) == "numpy":
            y = _np_norm.affine(x, scale, shift, axis)
            return y if activation == "linear" else _np_act.apply(activation, y)
        # C++: the channel axis moved last (a copy only when it is not), then one pass of
        # x * scale + shift per row of channels (the NumPy path's bits), the activation fused
        fused = _cpp_act.fused_id(activation)
        y = _cpp_norm.channel_affine(np.ascontiguousarray(x, dtype=F32), scale, shift, axis,
                                     fused or 0)
        return y if fused is not None else _cpp_act.apply_after(activation, y)


# ------------------------------------------------------------------ LayerNormalization


class LayerNormalization(Layer):
    """Layer normalization (Keras ``LayerNormalization``).

    Over the axes in ``axis``: ``mean`` and the biased ``variance = mean((x - mean)^2)``,
    then ``y = (x - mean) / sqrt(variance + epsilon) * gamma + beta``, in float32.
    With ``rms_scaling=True`` (deprecated in Keras, which warns that it scales by the
    variance, not the root mean square): ``y = x / sqrt(variance + epsilon) * gamma``, not
    centered, without ``beta`` and with ``gamma`` whatever ``scale`` says, as Keras computes
    it; that form runs on the NumPy path only. For a true RMS normalization use
    ``RMSNormalization``.

    Parameters
    ----------
    axis : int or list of ints
        The normalized axes (default -1); Keras sorts a list, and so do the weights.
    epsilon : float >= 0
        Default 1e-3.
    center, scale : bool
        Whether the layer has ``beta`` and ``gamma``.
    beta_initializer, gamma_initializer : str or callable
    beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint : ignored
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    rms_scaling : bool
        Default False; True is Keras's deprecated form above.

    Weights (Keras order): ``gamma`` if scale or rms_scaling, ``beta`` if center and not
    rms_scaling, each of shape ``tuple(input_shape[a] for a in sorted(axis))``.

    Call: ``layer(inputs)``; returns float32 of the inputs' shape.
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("axis", "epsilon", "center", "scale", "rms_scaling", "beta_initializer",
                   "gamma_initializer", "seed")
    ignored_args = ("beta_regularizer", "gamma_regularizer", "beta_constraint",
                    "gamma_constraint")

    def __init__(
        self,
        axis: Any = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        rms_scaling: bool = False,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.axis = _axis_list(axis, owner)
        _set_affine_args(self, epsilon, center, scale, beta_initializer, gamma_initializer)
        self.rms_scaling = _bool(rms_scaling, owner, "rms_scaling")

    def _axes(self) -> list[int]:
        """The axes as Keras keeps them after build: a sorted list."""
        return sorted(self.axis) if isinstance(self.axis, list) else [self.axis]

    def _weight_specs(self, input_shape):
        shape = None if input_shape is None else tuple(input_shape[a] for a in self._axes())
        if self.rms_scaling:  # Keras: gamma always, beta never
            return [weight_spec("gamma", shape, self.gamma_initializer)]
        return _affine_specs(self, shape)

    def _input_shape_from_weights(self, shapes):
        return _shape_over_axes(self, shapes)

    def build(self, input_shape: Any) -> None:
        """Create gamma and beta (as the constructor says), of shape ``input_shape`` over the
        sorted axes."""
        input_shape = tuple(input_shape)
        _positions(self._axes(), len(input_shape), self._owner(), "input_shape")
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        axes = self._axes()
        positions = _positions(axes, x.ndim, owner)
        if not self.built:
            self.build(x.shape)
        gamma, beta = self._weight("gamma"), self._weight("beta")
        w = gamma if gamma is not None else beta
        if w is not None and w.shape != tuple(x.shape[a] for a in axes):
            raise ValueError(
                f"{owner}: inputs of shape {x.shape} have {tuple(x.shape[a] for a in axes)} on "
                f"axis {self.axis}, the weights {w.shape}"
            )
        # Keras reshapes (does not transpose) gamma and beta to the input's shape over the
        # axes in position order; that only differs from their own shape for mixed signs.
        axes = tuple(sorted(positions))
        shape = tuple(x.shape[a] for a in axes)
        gamma = None if gamma is None else gamma.reshape(shape)
        beta = None if beta is None else beta.reshape(shape)
        if self.rms_scaling:
            if x.size == 0:
                return np.zeros(x.shape, np.float32)
            return _np_norm.layer_normalization_rms_scaling(x, gamma, axes, self.epsilon)
        return F.run_layer_norm(V.LayerNormArgs(x, gamma, beta, axes, self.epsilon))

    def _runner(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): the normalized axes last, on the
        C++ path - the core call of ``call`` with this layer's weights bound."""
        if mask is not None or self.rms_scaling or not F._cpp("layer_norm"):
            return None
        axes = tuple(sorted(_positions(self._axes(), inputs.ndim, self._owner())))
        shape = tuple(inputs.shape[a] for a in axes)
        gamma, beta = self._weight("gamma"), self._weight("beta")
        gamma = None if gamma is None else gamma.reshape(shape)
        beta = None if beta is None else beta.reshape(shape)
        run = F._cpp_normalization.layer_norm_runner(
            V.LayerNormArgs(inputs, gamma, beta, axes, self.epsilon))
        return None if run is None else (lambda x: run(x, gamma, beta))


# ------------------------------------------------------------------ GroupNormalization


class GroupNormalization(Layer):
    """Group normalization (Keras ``GroupNormalization``; PyTorch ``nn.GroupNorm`` on
    channels-last data).

    The C channels on ``axis`` form ``groups`` groups of C / groups consecutive channels.
    For each sample and group: the mean and the biased variance over the group's channels
    and every other non-batch axis, then ``y = (x - mean) / sqrt(variance + epsilon) * gamma
    + beta``, gamma and beta per channel, in float32. ``groups=-1`` (one channel per group)
    is instance normalization; ``groups=1`` normalizes each sample over all its values.

    Parameters
    ----------
    groups : int
        A positive divisor of the channel count (default 32), or -1: as many groups as
        channels (Keras then stores the channel count, as here after build).
    axis : int
        The channel axis (default -1); not the batch axis.
    epsilon : float >= 0
        Default 1e-3 (PyTorch's GroupNorm: 1e-5).
    center, scale : bool
        Whether the layer has ``beta`` and ``gamma``.
    beta_initializer, gamma_initializer : str or callable
    beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint : ignored
    seed : int, optional
        Seeds the initializers (a fastlayers extension).

    Weights (Keras order): ``gamma`` (C,) if scale, ``beta`` (C,) if center.

    Call: ``layer(inputs)`` on (batch, ..., C) (or C on ``axis``), rank >= 2; returns float32
    of the inputs' shape. The C++ path runs one NHWC driver (csrc/ops/group_norm.cpp; the
    channels moved last first when they are not), the NumPy path
    fastlayers/_numpy/normalization.py; they agree to float32 rounding (docs/semantics.md
    §23).
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("groups", "axis", "epsilon", "center", "scale", "beta_initializer",
                   "gamma_initializer", "seed")
    ignored_args = ("beta_regularizer", "gamma_regularizer", "beta_constraint",
                    "gamma_constraint")

    def __init__(
        self,
        groups: int = 32,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        groups = _int_axis(groups, owner, "groups")
        if groups < 1 and groups != -1:
            raise ValueError(
                f"{owner}: groups must be a positive integer, or -1 (one group per channel), "
                f"got {groups}"
            )
        self.groups = groups
        self.axis = _int_axis(axis, owner)
        _set_affine_args(self, epsilon, center, scale, beta_initializer, gamma_initializer)

    def _weight_specs(self, input_shape):
        return _affine_specs(self, None if input_shape is None else (input_shape[self.axis],))

    def _input_shape_from_weights(self, shapes):
        shape = [None] * max(2, _rank_for([self.axis]))
        shape[self.axis] = self._shape_of(shapes, 0, 1)[0]
        return tuple(shape)

    def _channel_axis(self, ndim: int, what: str) -> int:
        """The position of ``axis`` in an array of rank ``ndim`` (checked: not the batch)."""
        (axis,) = _positions([self.axis], ndim, self._owner(), what)
        if axis == 0:
            raise ValueError(
                f"{self._owner()}: axis {self.axis} is the batch axis of {what} of rank {ndim}"
            )
        return axis

    def _check_groups(self, c: int) -> None:
        if c < self.groups or c % self.groups:
            raise ValueError(
                f"{self._owner()}: groups ({self.groups}) must divide the number of channels "
                f"({c})"
            )

    def build(self, input_shape: Any) -> None:
        """Create gamma and beta, each (C,) with C = input_shape[axis]; groups=-1 becomes C."""
        input_shape = tuple(input_shape)
        c = input_shape[self._channel_axis(len(input_shape), "input_shape")]
        if c is None:
            raise ValueError(
                f"{self._owner()}: build needs a known size on axis {self.axis}, got "
                f"{input_shape}"
            )
        if self.groups == -1:
            self.groups = int(c)
        self._check_groups(int(c))
        self._channels = int(c)  # what later calls must have, also without gamma and beta
        self._create_weights(input_shape)

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        if len(shape) < 2 or not -len(shape) <= self.axis < len(shape):
            return None  # the zero run raises the call's error
        self._ready((2 if shape[0] is None else shape[0], *shape[1:]))
        return shape

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        if x.ndim < 2:
            raise ValueError(f"{owner}: inputs must have rank >= 2 (batch, ..., channels), "
                             f"got shape {x.shape}")
        axis = self._channel_axis(x.ndim, "inputs")
        if not self.built:
            self.build(x.shape)
        gamma, beta = self._weight("gamma"), self._weight("beta")
        w = gamma if gamma is not None else beta
        c = x.shape[axis]
        want = w.shape[0] if w is not None else getattr(self, "_channels", c)
        if c != want:
            raise ValueError(
                f"{owner}: inputs of shape {x.shape} have {c} channels on axis {self.axis}, "
                f"the layer was built for {want}"
            )
        if self.groups == -1:  # weights set before any build: set_weights builds without it
            self.groups = int(c)
        self._check_groups(c)
        if x.size == 0:
            return np.zeros(x.shape, F32)
        if _backend.resolve("group_norm", None) == "cpp":
            return _cpp_norm.group_norm(x, gamma, beta, self.groups, axis, self.epsilon)
        return _np_norm.group_normalization(x, gamma, beta, self.groups, axis, self.epsilon)


# ---------------------------------------------- RMSNormalization, UnitNormalization


class _AxesNorm(Layer):
    """A normalization over the axes in ``axis`` (an int or a list of ints, Keras sorts a
    list): the checks of the axes, shared by RMSNormalization and UnitNormalization."""

    def _axes(self) -> list[int]:
        return sorted(self.axis) if isinstance(self.axis, list) else [self.axis]

    def _input(self, inputs: Any) -> tuple[np.ndarray, list[int]]:
        """The inputs as float32 and the positions of the axes in them (built if not)."""
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        positions = _positions(self._axes(), x.ndim, owner)
        if not self.built:
            self.build(x.shape)
        return x, positions

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        axes = self._axes()
        if any(not -len(shape) <= a < len(shape) for a in axes):
            return None  # the zero run raises the call's error
        self._ready((2 if shape[0] is None else shape[0], *shape[1:]))
        return shape


class RMSNormalization(_AxesNorm):
    """Root-mean-square normalization (Keras ``RMSNormalization``; PyTorch ``nn.RMSNorm``).

    Over the axes in ``axis``: ``y = x * rsqrt(mean(x^2) + epsilon) * scale``, with no
    centring and no offset; the mean of the squares is summed in float64, the result is
    float32 (docs/semantics.md §23).

    Parameters
    ----------
    axis : int or list of ints
        The normalized axes (default -1): the last axis or the last few. Keras sorts a
        list, and so does the weight. Other axes raise NotImplementedError: Keras multiplies
        the scale into the last axes by broadcasting and its torch backend normalizes the
        last axes, so there Keras's result depends on its backend (or it fails).
    epsilon : float >= 0
        Default 1e-6 (PyTorch's RMSNorm: the float32 machine epsilon when None).

    Weights: ``scale`` of shape ``tuple(input_shape[a] for a in sorted(axis))``, ones by
    default.

    Call: ``layer(inputs)``; returns float32 of the inputs' shape. The C++ row driver under
    "auto" and "cpp", else fastlayers/_numpy/normalization.py.
    """

    config_keys = ("axis", "epsilon")

    def __init__(self, axis: Any = -1, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.axis = _axis_list(axis, owner)
        self.epsilon = _real(epsilon, owner, "epsilon", minimum=0.0)

    def _weight_specs(self, input_shape):
        shape = None if input_shape is None else tuple(input_shape[a] for a in self._axes())
        return [weight_spec("scale", shape, "ones")]

    def _input_shape_from_weights(self, shapes):
        return _shape_over_axes(self, shapes)

    def build(self, input_shape: Any) -> None:
        """Create ``scale``, of shape ``input_shape`` over the sorted axes."""
        input_shape = tuple(input_shape)
        self._check_trailing(len(input_shape), "input_shape")
        if any(input_shape[a] is None for a in self._axes()):
            raise ValueError(
                f"{self._owner()}: build needs known sizes on axis {self.axis}, got "
                f"{input_shape}"
            )
        self._create_weights(input_shape)

    def _check_trailing(self, ndim: int, what: str) -> list[int]:
        """The axes' positions, which must be the last ones (see the class docstring)."""
        positions = _positions(self._axes(), ndim, self._owner(), what)
        if sorted(positions) != list(range(ndim - len(positions), ndim)):
            raise NotImplementedError(
                f"{self._owner()}: axis {self.axis} is not the last axes of {what} of rank "
                f"{ndim}; Keras multiplies the scale into the last axes and its torch backend "
                "normalizes the last axes, so its result there depends on the backend"
            )
        if positions != sorted(positions):
            raise NotImplementedError(
                f"{self._owner()}: list the axes {self.axis} in increasing order; Keras sorts "
                f"them to {self._axes()} and cannot apply the scale of that shape"
            )
        return positions

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x, _ = self._input(inputs)
        positions = self._check_trailing(x.ndim, "inputs")
        scale = self._weight("scale")
        have = tuple(x.shape[a] for a in self._axes())
        if scale.shape != have:
            raise ValueError(
                f"{self._owner()}: inputs of shape {x.shape} have {have} on axis {self.axis}, "
                f"the weight 'scale' {scale.shape}"
            )
        if _backend.resolve("rms_norm", None) == "cpp":
            return _cpp_norm.rms_norm(x, scale, positions, self.epsilon)
        return _np_norm.rms_normalization(x, scale, positions, self.epsilon)


class UnitNormalization(_AxesNorm):
    """Scales each vector along ``axis`` to unit L2 norm (Keras ``UnitNormalization``).

    ``y = x * min(rsqrt(sum(x^2)), 1e12)`` over the axes in ``axis`` (default -1; an int or
    a list): a zero vector stays zero. The sum of squares is taken in float64, the result
    is float32. No weights. Call: ``layer(inputs)``; returns float32 of the inputs' shape
    (the C++ row driver under "auto" and "cpp", the axes moved last; else NumPy).
    """

    supports_masking = True  # as in Keras
    config_keys = ("axis",)

    def __init__(self, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = _axis_list(axis, type(self).__name__)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x, positions = self._input(inputs)
        if _backend.resolve("unit_norm", None) == "cpp":
            return _cpp_norm.unit_norm(x, positions)
        return _np_norm.unit_normalization(x, positions)


# ---------------------------------------------------------------- activation layers


class ReLU(_NoWeights):
    """Keras ``ReLU`` layer: ``keras.activations.relu`` with its parameters.

    ``y = min(x if x > threshold else 0, max_value) - negative_slope * max(threshold - x, 0)``
    (without threshold the first term is max(x, 0)); docs/semantics.md §23.

    Parameters: max_value (None or >= 0), negative_slope >= 0, threshold >= 0.
    No weights. Call: ``layer(inputs)``; float32 of the inputs' shape.
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("max_value", "negative_slope", "threshold")

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.max_value = None if max_value is None else _real(max_value, owner, "max_value", 0.0)
        self.negative_slope = _real(negative_slope, owner, "negative_slope", 0.0)
        self.threshold = _real(threshold, owner, "threshold", 0.0)

    def _core_name(self) -> str | None:
        return _np_norm.relu_activation_name(self.negative_slope, self.max_value,
                                             self.threshold)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._input(inputs)
        y = _core_activation(x, self._core_name(), self._owner())
        if y is not None:
            return y
        return _np_norm.relu(x, self.negative_slope, self.max_value, self.threshold)


class LeakyReLU(_NoWeights):
    """Keras ``LeakyReLU``: ``x`` where x >= 0, else ``negative_slope * x``.

    Parameters: negative_slope >= 0 (default 0.3); Keras 2's ``alpha`` is accepted for it.
    No weights. Call: ``layer(inputs)``; float32 of the inputs' shape.
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("negative_slope",)

    def __init__(self, negative_slope: float = 0.3, alpha: float | None = None,
                 **kwargs: Any) -> None:
        if alpha is not None:  # Keras 2's name, which Keras 3 still takes (and wins)
            negative_slope = alpha
        super().__init__(**kwargs)
        self.negative_slope = _real(negative_slope, type(self).__name__, "negative_slope", 0.0)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._input(inputs)
        name = "leaky_relu" if self.negative_slope == 0.2 else None
        y = _core_activation(x, name, self._owner())
        return y if y is not None else _np_norm.leaky_relu(x, self.negative_slope)


class ELU(_NoWeights):
    """Keras ``ELU``: ``x`` where x > 0, else ``alpha * (exp(x) - 1)``.

    Parameters: alpha (default 1.0). No weights. Call: ``layer(inputs)``.
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("alpha",)

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = _real(alpha, type(self).__name__, "alpha")

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = self._input(inputs)
        y = _core_activation(x, "elu" if self.alpha == 1.0 else None, self._owner())
        return y if y is not None else _np_norm.elu(x, self.alpha)


class PReLU(Layer):
    """Keras ``PReLU``: ``max(x, 0) - alpha * max(-x, 0)`` with a learned ``alpha``.

    Parameters
    ----------
    alpha_initializer : str or callable (default "zeros")
    shared_axes : None, int or list of ints
        Axes (counted with the batch axis as 0, so >= 1) along which alpha is shared.
    alpha_regularizer, alpha_constraint : ignored
    seed : int, optional
        Seeds the initializers (a fastlayers extension).

    Weights: ``alpha`` of shape inputs.shape[1:] with 1 on the shared axes.

    Call: ``layer(inputs)`` with inputs of rank >= 2; float32 of the inputs' shape.
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("alpha_initializer", "shared_axes", "seed")
    ignored_args = ("alpha_regularizer", "alpha_constraint")

    def __init__(self, alpha_initializer: Any = "zeros", shared_axes: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.alpha_initializer = _initializer(alpha_initializer, owner, "alpha_initializer")
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = shared_axes if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            axes = [_int_axis(a, owner, "shared_axes") for a in axes]
            if any(a < 1 for a in axes):
                raise ValueError(
                    f"{owner}: shared_axes count the batch axis as 0 and must be >= 1, got "
                    f"{shared_axes!r}"
                )
            self.shared_axes = axes

    def _weight_specs(self, input_shape):
        shape = None
        if input_shape is not None:
            dims = list(input_shape[1:])
            for a in self.shared_axes or []:
                dims[a - 1] = 1
            shape = tuple(dims)
        return [weight_spec("alpha", shape, self.alpha_initializer)]

    def _input_shape_from_weights(self, shapes):
        # alpha has one axis per input axis after the batch axis (inputs have rank >= 2),
        # including the shared ones
        rank = max([1, *(self.shared_axes or [])])
        if len(shapes[0]) < rank:
            raise ValueError(
                f"{self._owner()}: weight 0 'alpha' has shape {shapes[0]}, expected rank >= "
                f"{rank} (shared_axes={self.shared_axes})"
            )
        return (None, *shapes[0])

    def build(self, input_shape: Any) -> None:
        """Create alpha (input_shape[1:], 1 on the shared axes)."""
        input_shape = tuple(input_shape)
        owner = self._owner()
        if len(input_shape) < 2:
            raise ValueError(f"{owner}: inputs must have rank >= 2, got shape {input_shape}")
        for a in self.shared_axes or []:
            if a >= len(input_shape):
                raise ValueError(
                    f"{owner}: shared_axes {self.shared_axes} out of range for inputs of rank "
                    f"{len(input_shape)}"
                )
        for i, d in enumerate(input_shape[1:], start=1):
            if d is None and i not in (self.shared_axes or []):
                raise ValueError(
                    f"{owner}: build needs known sizes on the axes that are not shared, got "
                    f"{input_shape}"
                )
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        if not self.built:
            self.build(x.shape)
        alpha = self._weight("alpha")
        shared = set(self.shared_axes or [])
        ok = x.ndim == alpha.ndim + 1 and all(
            a == d or (a == 1 and i + 1 in shared) for i, (a, d) in enumerate(
                zip(alpha.shape, x.shape[1:]))
        )
        if not ok:
            raise ValueError(
                f"{owner}: inputs of shape {x.shape} do not match alpha {alpha.shape} "
                f"(shared_axes {self.shared_axes})"
            )
        return _np_norm.prelu(x, alpha)


# ---------------------------------------------------------------- preprocessing layers


def _numbers(value: Any, owner: str, name: str) -> Any:
    """A scalar or (nested) list of numbers, as given (Keras keeps it so in its config);
    a NumPy array becomes a list; Keras's serialized arrays are read."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        value = value.get("config", {}).get("value")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    a = V.array(value, owner, name)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return value


class Rescaling(_NoWeights):
    """Keras ``Rescaling``: ``inputs * scale + offset``.

    Parameters
    ----------
    scale, offset : float or list of floats
        Lists broadcast on the right (one value per channel of channels-last inputs).

    No weights. Call: ``layer(inputs)``; float32 of the inputs' shape.
    """

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("scale", "offset")

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.scale = _numbers(scale, owner, "scale")
        self.offset = _numbers(offset, owner, "offset")
        self._derive("scale")
        self._derive("offset")

    def _derive(self, name: str) -> None:
        """The float32 array call() applies for the attribute ``name`` (scale or offset)."""
        setattr(self, f"_{name}", V.array(getattr(self, name), self._owner(), name))

    def _config_changed(self, name: str) -> None:
        if name in ("scale", "offset"):
            self._derive(name)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = self._input(inputs)
        for name, v in (("scale", self._scale), ("offset", self._offset)):
            if not V.broadcastable(v.shape, x.shape):
                raise ValueError(
                    f"{owner}: {name} of shape {v.shape} does not broadcast to inputs {x.shape}"
                )
        return _np_norm.rescaling(x, self._scale, self._offset)


class Normalization(Layer):
    """Keras ``Normalization`` (preprocessing) at inference.

    ``y = (x - mean) / max(sqrt(variance), 1e-7)``; with invert
    ``y = mean + x * max(sqrt(variance), 1e-7)``.

    Parameters
    ----------
    axis : int, list of ints or None
        The axes that keep their own mean and variance (default -1: one per feature);
        None: one mean and variance for everything.
    mean, variance : float or array, optional
        Given together; then the layer has no weights. Otherwise the weights (Keras's
        ``adapt`` result) are ``mean`` and ``variance`` of shape
        ``tuple(input_shape[a] for a in kept axes, sorted)`` and ``count`` ().
    invert : bool

    Call: ``layer(inputs)``; float32 of the inputs' shape.
    """

    non_trainable_weight_names = frozenset({"mean", "variance", "count"})

    supports_masking = True  # Keras 3 passes the implicit mask through

    config_keys = ("axis", "invert")

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None,
                 invert: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if axis is None:
            self.axis: Any = None
        elif isinstance(axis, (list, tuple)):
            self.axis = [_int_axis(a, owner) for a in axis]
        else:
            self.axis = _int_axis(axis, owner)
        self.invert = _bool(invert, owner, "invert")
        if (mean is None) != (variance is None):
            raise ValueError(f"{owner}: mean and variance must be given together (or neither)")
        # Not self.mean: the weights of an adapted layer are set as attributes by their names.
        self.input_mean = None if mean is None else _numbers(mean, owner, "mean")
        self.input_variance = None if variance is None else _numbers(variance, owner, "variance")
        if self.input_mean is not None:
            m = V.array(self.input_mean, owner, "mean")
            v = V.array(self.input_variance, owner, "variance")
            if m.shape != v.shape:
                raise ValueError(
                    f"{owner}: mean {m.shape} and variance {v.shape} must have the same shape"
                )
            if m.ndim > len(self._keep):
                raise ValueError(
                    f"{owner}: mean has rank {m.ndim}, more than the {len(self._keep)} kept axes "
                    f"(axis={axis!r})"
                )
            if np.any(v < 0):
                raise ValueError(f"{owner}: variance must be >= 0")
            self._given = (m, v)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.input_mean, "variance": self.input_variance}

    @property
    def _keep(self) -> list[int]:
        """The kept axes as a list (axis None: none), whatever axis was set to last."""
        a = self.axis
        return [] if a is None else list(a) if isinstance(a, list) else [a]

    def _kept(self, ndim: int) -> list[int]:
        return sorted(_positions(self._keep, ndim, self._owner()))

    def _weight_specs(self, input_shape):
        if self.input_mean is not None:
            return []
        shape = None
        if input_shape is not None:
            shape = tuple(input_shape[a] for a in self._kept(len(input_shape)))
        return [
            weight_spec("mean", shape, "zeros"),
            weight_spec("variance", shape, "ones"),
            weight_spec("count", (), "zeros"),
        ]

    def _input_shape_from_weights(self, shapes):
        want = self._shape_of(shapes, 0, len(self._keep))
        ndim = _rank_for(self._keep) if self._keep else 1
        shape = [None] * ndim
        for a, d in zip(sorted(a % ndim for a in self._keep), want):
            shape[a] = d
        return tuple(shape)

    def build(self, input_shape: Any) -> None:
        input_shape = tuple(input_shape)
        for a in self._kept(len(input_shape)):
            if input_shape[a] is None:
                raise ValueError(
                    f"{self._owner()}: the kept axes need known sizes, got {input_shape}"
                )
        self._create_weights(input_shape)

    def _stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mean and variance reshaped to broadcast against x."""
        owner = self._owner()
        kept = self._kept(x.ndim)
        shape = [1] * x.ndim
        if self.input_mean is not None:
            m, v = self._given
            if m.ndim:
                for i in range(1, m.ndim + 1):  # Keras aligns them to the kept axes from the right
                    shape[kept[-i]] = m.shape[-i]
                if not V.broadcastable(shape, x.shape):
                    raise ValueError(
                        f"{owner}: mean of shape {m.shape} does not match inputs {x.shape} on "
                        f"axis {self.axis}"
                    )
            return m.reshape(shape), v.reshape(shape)
        m, v = self._weight("mean"), self._weight("variance")
        if m.shape != tuple(x.shape[a] for a in kept):
            raise ValueError(
                f"{owner}: inputs of shape {x.shape} have {tuple(x.shape[a] for a in kept)} on "
                f"axis {self.axis}, the weights {m.shape}"
            )
        for a in kept:
            shape[a] = x.shape[a]
        return m.reshape(shape), v.reshape(shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        self._kept(x.ndim)
        if not self.built:
            self.build(x.shape)
        mean, variance = self._stats(x)
        return _np_norm.normalization(x, mean, variance, self.invert)
