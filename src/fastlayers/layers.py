"""Keras-like layer classes that hold weights and run the functional ops.

Each class mirrors a Keras 3 layer: the same constructor arguments (those that
change inference; training-only ones such as ``dropout`` or ``kernel_regularizer``
are accepted and ignored), the same weights in the same order and shapes
(``get_weights`` / ``set_weights``), the same call arguments and the same outputs
(SEMANTICS.md). Unknown constructor arguments raise ``TypeError``.

A layer builds lazily, on its first call or on an explicit ``build(input_shape)``,
creating its weights with Keras's default initializers (glorot_uniform kernels,
orthogonal recurrent kernels, zero biases, ...). The values follow Keras's
distributions but not its random streams; pass ``seed=<int>`` for reproducible
values. ``set_weights`` builds an unbuilt layer from the weight shapes.

The weights a layer holds are read-only float32 C-contiguous arrays; they change
only through ``build`` and ``set_weights``, which call :meth:`Layer._on_weights_set`
once. That is where the C++ path packs the weights, never per call.

>>> import numpy as np, fastlayers as fl
>>> layer = fl.layers.Dense(4, activation="relu", seed=0)
>>> layer(np.ones((2, 3))).shape
(2, 4)
>>> [w.shape for w in layer.get_weights()]
[(3, 4), (4,)]
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from . import _symbolic
from . import _backend
from . import _validation as V
from . import functional as F

__all__ = [
    "Layer",
    "Dense",
    "Flatten",
    "Conv2D",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Attention",
    "AdditiveAttention",
    "MultiHeadAttention",
    "Softmax",
]

F32 = np.float32
Shape = tuple[Optional[int], ...]

# ----------------------------------------------------------------------- initializers

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


def _check_initializer(init: Any, owner: str, name: str):
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


# ------------------------------------------------------------------------- helpers

_name_counts: dict[str, int] = {}


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _auto_name(cls_name: str) -> str:
    """Keras-style unique names: dense, dense_1, dense_2, ..."""
    base = _snake_case(cls_name)
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _positive_int(value: Any, owner: str, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _bool(value: Any, owner: str, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _seed(value: Any, owner: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: seed must be an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{owner}: seed must be >= 0, got {value}")
    return int(value)


def _not_supported(value: Any, default: Any, owner: str, name: str, why: str = "") -> None:
    if value != default:
        extra = f" ({why})" if why else ""
        raise NotImplementedError(
            f"{owner}: {name}={value!r} is not supported by fastlayers{extra}; "
            f"only {name}={default!r}"
        )


def _shape_tuple(shape: Any) -> Shape:
    return tuple(None if s is None else int(s) for s in shape)


# --------------------------------------------------------------------------- base


class Layer:
    """Base class: naming, lazy build, weights in Keras order, config and repr.

    Subclasses define ``call`` and, if they have weights, ``_weight_specs`` (the
    weights for an input shape) and ``_input_shape_from_weights`` (the inverse, so
    that ``set_weights`` can build an unbuilt layer).

    Parameters
    ----------
    name : str, optional
        Defaults to the snake_case class name with a counter (``dense``, ``dense_1``).
    trainable, autocast, activity_regularizer, input_shape, input_dim
        Accepted for Keras compatibility; they do not affect inference.
    dtype : None or "float32"
        fastlayers computes in float32, as Keras does by default.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        autocast: bool = True,
        activity_regularizer: Any = None,
        input_shape: Any = None,
        input_dim: Any = None,
        **kwargs: Any,
    ) -> None:
        cls = type(self).__name__
        if kwargs:
            raise TypeError(f"{cls}: unrecognized keyword arguments: {sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{cls}: name must be a str, got {type(name).__name__}")
        if dtype is not None:
            try:  # a dtype, a dtype name, or a Keras DTypePolicy (which has .name)
                is_f32 = np.dtype(getattr(dtype, "name", dtype)) == np.float32
            except TypeError:
                is_f32 = False
            if not is_f32:
                raise ValueError(f"{cls}: fastlayers computes in float32; got dtype={dtype!r}")
        self.name: str = name if name is not None else _auto_name(cls)
        self.trainable = _bool(trainable, cls, "trainable")
        self.seed: int | None = None
        self.built = False
        self._input_shape: Any = None
        self._weight_values: list[np.ndarray] = []
        self._weight_map: dict[str, np.ndarray] = {}

    # ---- to be provided by subclasses with weights --------------------------------
    def _weight_specs(self, input_shape: Any) -> list[tuple[str, tuple[int, ...], Callable]]:
        """[(name, shape, make)] in Keras order; ``make(rng)`` draws the initial value."""
        return []

    def _weight_names(self) -> list[str]:
        """The weight names in Keras order. They depend on the config only."""
        return [name for name, _, _ in self._weight_specs(None)]

    def _input_shape_from_weights(self, shapes: list[tuple[int, ...]]) -> Any:
        """An input shape under which ``shapes`` are the layer's weight shapes."""
        return None

    # ---- building and weights -------------------------------------------------------
    def _owner(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape`` with the default initializers.

        Dimensions may be None except those the weights depend on. Random initializers
        draw from ``numpy.random.default_rng(self.seed)``.
        """
        self._create_weights(input_shape)

    def _create_weights(self, input_shape: Any) -> None:
        specs = self._weight_specs(input_shape)
        rng = np.random.default_rng(self.seed)
        values = [make(rng) for _, _, make in specs]
        for (name, shape, _), value in zip(specs, values):
            if value.shape != tuple(shape):  # a user initializer returning the wrong shape
                raise ValueError(
                    f"{self._owner()}: initial value of {name!r} has shape {value.shape}, "
                    f"expected {tuple(shape)}"
                )
        self._input_shape = input_shape
        self.built = True
        self._store(values)

    def _store(self, values: list[np.ndarray]) -> None:
        for value in values:
            value.flags.writeable = False  # weights change only through set_weights
        self._weight_values = values
        self._weight_map = dict(zip(self._weight_names(), values))
        for name, value in self._weight_map.items():
            setattr(self, name.replace("/", "_"), value)
        self._on_weights_set()

    def _on_weights_set(self) -> None:
        """Hook called once whenever the weights change (build, set_weights).

        The C++ path packs the weights here, so that calls never repack them.
        """

    def _weight(self, name: str) -> np.ndarray | None:
        """The weight called ``name``, or None if the config has no such weight."""
        return self._weight_map.get(name)

    @property
    def weights(self) -> list[np.ndarray]:
        """The weights in Keras order, as read-only float32 arrays ([] before build)."""
        return list(self._weight_values)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras order ([] before build)."""
        return [w.copy() for w in self._weight_values]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights from arrays in Keras order (see each layer's docstring).

        The count and every shape are checked (ValueError naming the layer and the
        weight); the arrays are copied to float32 C-contiguous. An unbuilt layer is
        built from the weight shapes.
        """
        owner = self._owner()
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"{owner}: set_weights expects a list of arrays, got {type(weights).__name__}"
            )
        names = self._weight_names()
        if len(weights) != len(names):
            raise ValueError(
                f"{owner}: set_weights expected {len(names)} arrays {names}, got {len(weights)}"
            )
        arrays = []
        for name, w in zip(names, weights):
            a = V.array(w, owner, f"weight {name!r}")
            arrays.append(np.array(a, dtype=F32, order="C", copy=True))
        shapes = [a.shape for a in arrays]
        input_shape = self._input_shape
        if not self.built:
            input_shape = self._input_shape_from_weights(shapes)
        expected = [tuple(shape) for _, shape, _ in self._weight_specs(input_shape)]
        for i, (name, got, want) in enumerate(zip(names, shapes, expected)):
            if got != want:
                raise ValueError(f"{owner}: weight {i} {name!r} has shape {got}, expected {want}")
        self._input_shape = input_shape
        self.built = True
        self._store(arrays)

    def _shape_of(self, shapes: list[tuple[int, ...]], i: int, rank: int) -> tuple[int, ...]:
        """shapes[i], checked to have ``rank`` (for _input_shape_from_weights)."""
        if len(shapes[i]) != rank:
            name = self._weight_names()[i]
            raise ValueError(
                f"{self._owner()}: weight {i} {name!r} has shape {shapes[i]}, expected rank {rank}"
            )
        return shapes[i]

    def count_params(self) -> int:
        """The number of weight values (the layer must be built)."""
        if not self.built:
            raise ValueError(f"{self._owner()}: the layer is not built yet")
        return int(sum(w.size for w in self._weight_values))

    # ---- config ---------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (name included); ``cls.from_config(config)`` rebuilds
        the layer without its weights."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        config = self.get_config()
        params = inspect.signature(type(self).__init__).parameters
        items = []
        for key, value in config.items():
            p = params.get(key)
            if (
                p is not None
                and p.default is not inspect.Parameter.empty
                and _same(p.default, value)
            ):
                continue  # defaults are left out
            items.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(items)})"

    # ---- calling --------------------------------------------------------------------
    def call(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the layer: ``layer(...)`` is ``layer.call(...)`` (see each layer).

        Called with symbolic tensors (``fastlayers.Input`` and what layers make of it), the
        layer records a node of a model's graph and returns symbolic outputs instead.
        """
        if _symbolic.any_symbolic(args, kwargs):
            return _symbolic.symbolic_call(self.call, args, kwargs, layer=self, label=self.name)
        return self.call(*args, **kwargs)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - arrays and odd objects are simply "not the default"
        return False


# -------------------------------------------------------------------------- Dense


class Dense(Layer):
    """Fully connected layer: ``activation(inputs @ kernel + bias)`` (Keras ``Dense``).

    Parameters
    ----------
    units : int
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform" and "zeros".
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    lora_rank, lora_alpha, quantization_config
        Must be None (LoRA and quantized Dense are not supported).

    Weights: ``kernel`` (input_dim, units), then ``bias`` (units,) if use_bias.

    Call: ``layer(inputs)`` with inputs (batch, ..., input_dim), rank >= 2; returns
    float32 (batch, ..., units).
    """

    _packed = None  # the kernel packed for the C++ GEMM, set by _on_weights_set

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = _positive_int(units, owner, "units")
        V.activation(activation, owner)
        self.activation = activation
        self.use_bias = _bool(use_bias, owner, "use_bias")
        self.kernel_initializer = _check_initializer(
            kernel_initializer, owner, "kernel_initializer"
        )
        self.bias_initializer = _check_initializer(bias_initializer, owner, "bias_initializer")
        _not_supported(lora_rank, None, owner, "lora_rank")
        _not_supported(lora_alpha, None, owner, "lora_alpha")
        _not_supported(quantization_config, None, owner, "quantization_config")
        self.seed = _seed(seed, owner)

    def _weight_specs(self, input_shape):
        d = None if input_shape is None else input_shape[-1]
        specs = [weight_spec("kernel", (d, self.units), self.kernel_initializer)]
        if self.use_bias:
            specs.append(weight_spec("bias", (self.units,), self.bias_initializer))
        return specs

    def _input_shape_from_weights(self, shapes):
        return (None, self._shape_of(shapes, 0, 2)[0])

    def build(self, input_shape: Shape) -> None:
        """Create kernel (input_shape[-1], units) and bias (units,)."""
        input_shape = _shape_tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"{self._owner()}: build needs a known last dim, got {input_shape}")
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        V.min_rank(x, self._owner(), "inputs", 2, "(batch, ..., input_dim)")
        if not self.built:
            self.build(x.shape)
        kernel = self._weight("kernel")
        if x.shape[-1] != kernel.shape[0]:
            raise ValueError(
                f"{self._owner()}: inputs have shape {x.shape}, expected (..., {kernel.shape[0]})"
            )
        act = V.activation(self.activation, self._owner())
        return F._dense_run(x, kernel, self._weight("bias"), act, self._packed)

    def _on_weights_set(self) -> None:
        # Pack the kernel (bias folded in) once for the C++ GEMM; calls reuse it.
        self._packed = None
        if _backend.core_available():
            self._packed = _backend._core.PackedDense(self._weight("kernel"), self._weight("bias"))

    def get_config(self):
        return {
            "name": self.name,
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "seed": self.seed,
        }


# ------------------------------------------------------------------------ Flatten


def _data_format(value: Any, owner: str) -> str:
    if value is None:
        return "channels_last"  # Keras reads ~/.keras/keras.json; fastlayers does not
    if not isinstance(value, str) or value.lower() not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{owner}: data_format must be 'channels_last', 'channels_first' or None, got {value!r}"
        )
    return value.lower()


class Flatten(Layer):
    """Flatten all but the batch axis (Keras ``Flatten``).

    Parameters
    ----------
    data_format : "channels_last" (default), "channels_first" or None
        With channels_first and rank > 2 the channel axis (1) is first moved to the
        end, so the flattened order is always the channels-last one.

    No weights. Call: ``layer(inputs)`` with inputs (batch, d1, ..., dn) -> float32
    (batch, d1 * ... * dn); a 1-D input (batch,) gives (batch, 1).
    """

    def __init__(self, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format, type(self).__name__)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        x = V.array(inputs, self._owner(), "inputs")
        if not self.built:
            self.build(x.shape)
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        return F.flatten(x)

    def get_config(self):
        return {"name": self.name, "data_format": self.data_format}


# ------------------------------------------------------------------------- Conv2D


class Conv2D(Layer):
    """2D convolution (Keras ``Conv2D``).

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : "valid" or "same" (case-insensitive)
        "same" puts the extra pixel of odd padding at the bottom/right.
    data_format : "channels_last" (default; NHWC), "channels_first" (NCHW) or None
        The kernel layout is the same for both.
    dilation_rate : int or (int, int)
        Strides > 1 together with dilation > 1 raise ValueError, as in Keras.
    groups : int
        Input channels and filters must be divisible by it.
    activation : str, callable or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or callable
    seed : int, optional
        Seeds the initializers (a fastlayers extension).
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
        Training only; ignored.
    lora_rank, lora_alpha : must be None

    Weights: ``kernel`` (kh, kw, in_channels // groups, filters), then ``bias``
    (filters,) if use_bias.

    Call: ``layer(inputs)`` with inputs (N, H, W, C) (channels_last) or (N, C, H, W)
    (channels_first); returns float32 (N, OH, OW, filters) or (N, filters, OH, OW).
    """

    _packed = None  # the filters packed for the C++ GEMM, set by _on_weights_set

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.filters = _positive_int(filters, owner, "filters")
        self.kernel_size = V.int_tuple(kernel_size, owner, "kernel_size")
        self.strides = V.int_tuple(strides, owner, "strides")
        self.dilation_rate = V.int_tuple(dilation_rate, owner, "dilation_rate")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(
                f"{owner}: padding must be 'valid' or 'same', got {padding!r} "
                "('causal' is for Conv1D only)"
            )
        self.padding = padding.lower()
        self.data_format = _data_format(data_format, owner)
        self.groups = _positive_int(groups, owner, "groups")
        if self.filters % self.groups:
            raise ValueError(
                f"{owner}: filters ({self.filters}) must be divisible by groups ({self.groups})"
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: strides > 1 together with dilation_rate > 1 is not allowed (as in "
                f"Keras); got strides {self.strides} and dilation_rate {self.dilation_rate}"
            )
        V.activation(activation, owner)
        self.activation = activation
        self.use_bias = _bool(use_bias, owner, "use_bias")
        self.kernel_initializer = _check_initializer(
            kernel_initializer, owner, "kernel_initializer"
        )
        self.bias_initializer = _check_initializer(bias_initializer, owner, "bias_initializer")
        _not_supported(lora_rank, None, owner, "lora_rank")
        _not_supported(lora_alpha, None, owner, "lora_alpha")
        self.seed = _seed(seed, owner)

    def _channel_axis(self) -> int:
        return 1 if self.data_format == "channels_first" else -1

    def _weight_specs(self, input_shape):
        c = None if input_shape is None else input_shape[self._channel_axis()]
        cg = None if c is None else c // self.groups
        specs = [
            weight_spec("kernel", (*self.kernel_size, cg, self.filters), self.kernel_initializer)
        ]
        if self.use_bias:
            specs.append(weight_spec("bias", (self.filters,), self.bias_initializer))
        return specs

    def _input_shape_from_weights(self, shapes):
        c = self._shape_of(shapes, 0, 4)[2] * self.groups
        return (
            (None, c, None, None) if self.data_format == "channels_first" else (None, None, None, c)
        )

    def build(self, input_shape: Shape) -> None:
        """Create kernel (kh, kw, C // groups, filters) and bias (filters,)."""
        input_shape = _shape_tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"{self._owner()}: input_shape must have rank 4, got {input_shape}")
        c = input_shape[self._channel_axis()]
        if c is None or c % self.groups:
            raise ValueError(
                f"{self._owner()}: the number of input channels ({c}) must be known and "
                f"divisible by groups ({self.groups})"
            )
        self._create_weights(input_shape)

    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        what = "(N, C, H, W)" if self.data_format == "channels_first" else "(N, H, W, C)"
        V.rank(x, owner, "inputs", 4, what)
        if not self.built:
            self.build(x.shape)
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        y = F._conv2d(
            x,
            self._weight("kernel"),
            self._weight("bias"),
            self.strides,
            self.padding,
            self.dilation_rate,
            self.groups,
            self.activation,
            self._packed,
        )
        if self.data_format == "channels_first":
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return y

    def _on_weights_set(self) -> None:
        # Pack the filters (bias folded in, one GEMM operand per group) once for C++.
        self._packed = None
        if _backend.core_available():
            self._packed = _backend._core.PackedConv(
                self._weight("kernel"), self._weight("bias"), self.groups
            )

    def get_config(self):
        return {
            "name": self.name,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "seed": self.seed,
        }


# ---------------------------------------------------------------------- recurrent


class _RNN(Layer):
    """What LSTM and GRU share: weights, the call, masks, stateful states."""

    _gates = 0  # column blocks of kernel: 4 for LSTM, 3 for GRU
    _packed = None  # the kernels packed for the C++ path, set by _on_weights_set
    _num_states = 0  # 2 ([h, c]) for LSTM, 1 ([h]) for GRU

    def _init_rnn(
        self,
        *,
        units,
        activation,
        recurrent_activation,
        use_bias,
        kernel_initializer,
        recurrent_initializer,
        bias_initializer,
        seed,
        return_sequences,
        return_state,
        go_backwards,
        stateful,
        zero_output_for_mask,
    ) -> None:
        owner = type(self).__name__
        self.units = _positive_int(units, owner, "units")
        V.activation(activation, owner, "activation", elementwise=True)
        V.activation(recurrent_activation, owner, "recurrent_activation", elementwise=True)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = _bool(use_bias, owner, "use_bias")
        self.kernel_initializer = _check_initializer(
            kernel_initializer, owner, "kernel_initializer"
        )
        self.recurrent_initializer = _check_initializer(
            recurrent_initializer, owner, "recurrent_initializer"
        )
        self.bias_initializer = _check_initializer(bias_initializer, owner, "bias_initializer")
        self.seed = _seed(seed, owner)
        self.return_sequences = _bool(return_sequences, owner, "return_sequences")
        self.return_state = _bool(return_state, owner, "return_state")
        self.go_backwards = _bool(go_backwards, owner, "go_backwards")
        self.stateful = _bool(stateful, owner, "stateful")
        self.zero_output_for_mask = _bool(zero_output_for_mask, owner, "zero_output_for_mask")
        self.states: list[np.ndarray] | None = None

    def _bias_spec(self):  # pragma: no cover - defined by LSTM and GRU
        raise NotImplementedError

    def _weight_specs(self, input_shape):
        d = None if input_shape is None else input_shape[-1]
        u, g = self.units, self._gates
        specs = [
            weight_spec("kernel", (d, g * u), self.kernel_initializer),
            weight_spec("recurrent_kernel", (u, g * u), self.recurrent_initializer),
        ]
        if self.use_bias:
            specs.append(self._bias_spec())
        return specs

    def _input_shape_from_weights(self, shapes):
        return (None, None, self._shape_of(shapes, 0, 2)[0])

    def build(self, sequences_shape: Shape) -> None:
        """Create kernel (features, g * units), recurrent_kernel (units, g * units) and bias."""
        sequences_shape = _shape_tuple(sequences_shape)
        if len(sequences_shape) != 3 or sequences_shape[-1] is None:
            raise ValueError(
                f"{self._owner()}: build needs a shape (batch, timesteps, features) with known "
                f"features, got {sequences_shape}"
            )
        self._create_weights(sequences_shape)

    def _run(self, x, initial_state, mask):  # pragma: no cover - defined by LSTM and GRU
        """The functional op with return_state=True: (output, *states)."""
        raise NotImplementedError

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: Any = None,
    ):
        """Run over ``sequences`` (batch, timesteps, features).

        initial_state: LSTM [h0, c0], GRU h0 or [h0], each (batch, units); zeros by
        default, or the kept states of a stateful layer. mask: bool (batch, timesteps).
        Returns output, or (output, *states) if return_state.
        """
        owner = self._owner()
        x = V.array(sequences, owner, "sequences")
        V.rank(x, owner, "sequences", 3, "(batch, timesteps, features)")
        if not self.built:
            self.build(x.shape)
        if mask is not None:
            mask = V.bool_mask(mask, owner, "mask")
        if self.stateful:
            batch = x.shape[0]
            if self.states is None:
                self.states = [np.zeros((batch, self.units), F32) for _ in range(self._num_states)]
            elif self.states[0].shape[0] != batch:
                raise ValueError(
                    f"{owner}: the layer is stateful with batch size {self.states[0].shape[0]}, "
                    f"got sequences of batch size {batch}"
                )
            if initial_state is None:
                initial_state = list(self.states)
        out, *states = self._run(x, initial_state, mask)
        if self.zero_output_for_mask and mask is not None:
            # Masked steps output 0 instead of repeating the previous output. The output
            # is in processing order, so with go_backwards the mask is reversed too.
            m = mask[:, ::-1] if self.go_backwards else mask
            if self.return_sequences:
                out = np.where(m[:, :, None], out, F32(0))
            else:
                out = np.where(m[:, -1:], out, F32(0))
        if self.stateful:
            self.states = [np.array(s, dtype=F32, copy=True) for s in states]
        return (out, *states) if self.return_state else out

    def reset_states(self) -> None:
        """Set the kept states of a stateful layer to zeros (keeping the batch size)."""
        if self.states is not None:
            self.states = [np.zeros_like(s) for s in self.states]

    reset_state = reset_states

    def _rnn_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation,
            "recurrent_activation": self.recurrent_activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "recurrent_initializer": self.recurrent_initializer,
            "bias_initializer": self.bias_initializer,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "zero_output_for_mask": self.zero_output_for_mask,
        }


class LSTM(_RNN):
    """Long short-term memory layer (Keras ``LSTM``); gate blocks ordered [i | f | c | o].

    Parameters
    ----------
    units : int
    activation, recurrent_activation : str or callable (elementwise)
        Defaults "tanh" and "sigmoid".
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform", "orthogonal", "zeros".
    unit_forget_bias : bool
        Initialize the forget block of the bias to ones (only the initial value).
    seed : int, optional
        Seeds the initializers (in Keras it seeds dropout).
    return_sequences : bool
        Return all outputs (batch, timesteps, units) instead of the last (batch, units).
    return_state : bool
        Return (output, h, c).
    go_backwards : bool
        Consume the input from the last step; the output sequence stays in processing
        order.
    stateful : bool
        Keep the final [h, c] as the initial state of the next call (fixed batch size);
        :meth:`reset_states` zeroes them.
    zero_output_for_mask : bool
        Masked steps output 0 instead of repeating the previous output (Bidirectional
        sets this when returning sequences).
    dropout, recurrent_dropout, unroll, use_cudnn, and the regularizers and constraints
        Accepted and ignored (no effect on inference).

    Weights: ``kernel`` (features, 4u), ``recurrent_kernel`` (u, 4u), ``bias`` (4u,).

    Call: ``layer(sequences, initial_state=None, mask=None)``; see :meth:`_RNN.call`.
    """

    _gates = 4
    _num_states = 2

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        use_cudnn: Any = "auto",
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_rnn(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            zero_output_for_mask=zero_output_for_mask,
        )
        self.unit_forget_bias = _bool(unit_forget_bias, type(self).__name__, "unit_forget_bias")

    def _bias_spec(self):
        u = self.units

        def make(rng):
            if not self.unit_forget_bias:
                return initial_value(self.bias_initializer, (4 * u,), rng)
            return np.concatenate(
                [
                    initial_value(self.bias_initializer, (u,), rng),
                    np.ones(u, F32),
                    initial_value(self.bias_initializer, (2 * u,), rng),
                ]
            )

        return ("bias", (4 * u,), make)

    def _run(self, x, initial_state, mask):
        return F._lstm(
            x,
            self._weight("kernel"),
            self._weight("recurrent_kernel"),
            self._weight("bias"),
            initial_state,
            mask,
            self.return_sequences,
            True,
            self.go_backwards,
            self.activation,
            self.recurrent_activation,
            self._packed,
        )

    def _on_weights_set(self) -> None:
        # Pack kernel (bias folded in) and recurrent kernel once for the C++ path.
        self._packed = None
        if _backend.core_available():
            self._packed = F._pack_lstm(
                self._weight("kernel"), self._weight("recurrent_kernel"), self._weight("bias")
            )

    def get_config(self):
        return {"name": self.name, **self._rnn_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_RNN):
    """Gated recurrent unit layer (Keras ``GRU``); gate blocks ordered [z | r | h].

    Parameters
    ----------
    units, activation, recurrent_activation, use_bias, kernel_initializer,
    recurrent_initializer, bias_initializer, seed, return_sequences, go_backwards,
    stateful, zero_output_for_mask
        As for :class:`LSTM`.
    return_state : bool
        Return (output, h).
    reset_after : bool
        True (the default, and PyTorch's form): the reset gate multiplies
        ``h @ R_h + b_rec_h``; the bias is then (2, 3u): input bias, recurrent bias.
    dropout, recurrent_dropout, unroll, use_cudnn, and the regularizers and constraints
        Accepted and ignored.

    Weights: ``kernel`` (features, 3u), ``recurrent_kernel`` (u, 3u), ``bias`` (2, 3u)
    if reset_after else (3u,).

    Call: ``layer(sequences, initial_state=None, mask=None)``; initial_state is h0 or
    [h0], each (batch, u).
    """

    _gates = 3
    _num_states = 1

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        reset_after: bool = True,
        use_cudnn: Any = "auto",
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_rnn(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            zero_output_for_mask=zero_output_for_mask,
        )
        self.reset_after = _bool(reset_after, type(self).__name__, "reset_after")

    def _bias_spec(self):
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return ("bias", shape, lambda rng: initial_value(self.bias_initializer, shape, rng))

    def _run(self, x, initial_state, mask):
        return F._gru(
            x,
            self._weight("kernel"),
            self._weight("recurrent_kernel"),
            self._weight("bias"),
            initial_state,
            mask,
            self.return_sequences,
            True,
            self.go_backwards,
            self.reset_after,
            self.activation,
            self.recurrent_activation,
            self._packed,
        )

    def _on_weights_set(self) -> None:
        # Pack the kernels (biases folded in) once for the C++ path.
        self._packed = None
        if _backend.core_available():
            self._packed = F._pack_gru(
                self._weight("kernel"),
                self._weight("recurrent_kernel"),
                self._weight("bias"),
                self.reset_after,
            )

    def get_config(self):
        return {"name": self.name, **self._rnn_config(), "reset_after": self.reset_after}


_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


def _deserialize(config: Any, owner: str) -> Layer:
    """A layer from {"class_name": ..., "config": {...}} (the form Bidirectional stores)."""
    if isinstance(config, Layer):
        return config
    if not isinstance(config, dict) or set(config) != {"class_name", "config"}:
        raise TypeError(
            f"{owner}: expected a layer or {{'class_name': ..., 'config': ...}}, got {config!r}"
        )
    cls = {"LSTM": LSTM, "GRU": GRU}.get(config["class_name"])
    if cls is None:
        raise ValueError(f"{owner}: unsupported layer class {config['class_name']!r}")
    return cls.from_config(config["config"])


def _serialize(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


class Bidirectional(Layer):
    """Bidirectional wrapper for LSTM and GRU (Keras ``Bidirectional``).

    Parameters
    ----------
    layer : LSTM or GRU
        As in Keras, the forward layer is a fresh copy made from ``layer``'s config
        (its weights are not copied), and unless ``backward_layer`` is given the
        backward layer is another copy with ``go_backwards=True``. If ``layer`` has a
        seed, the backward copy uses seed + 1.
    merge_mode : "concat", "sum", "ave", "mul" or None
        How the two outputs combine; None returns both.
    weights : list of arrays, optional
        Initial weights (forward weights then backward weights).
    backward_layer : LSTM or GRU, optional
        Used as is (not copied). It must have the opposite go_backwards and the same
        return_sequences, return_state and stateful as ``layer``.

    Weights: the forward layer's weights, then the backward layer's.

    Call: ``layer(sequences, initial_state=None, mask=None)``.

    * initial_state is a flat list: the first half goes to the forward layer, the
      second to the backward layer (LSTM: [h_f, c_f, h_b, c_b]).
    * With return_sequences the backward output is flipped back to input time order,
      and masked steps output 0 in both directions.
    * Returns the merged output, or (output_f, output_b) with merge_mode None,
      followed by the forward then the backward states if return_state.
    """

    def __init__(
        self,
        layer: Any,
        merge_mode: str | None = "concat",
        weights: Sequence[Any] | None = None,
        backward_layer: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        layer = _deserialize(layer, owner)
        if not isinstance(layer, _RNN):
            raise ValueError(f"{owner}: layer must be an LSTM or GRU, got {type(layer).__name__}")
        if backward_layer is not None:
            backward_layer = _deserialize(backward_layer, owner)
            if not isinstance(backward_layer, _RNN):
                raise ValueError(
                    f"{owner}: backward_layer must be an LSTM or GRU, got "
                    f"{type(backward_layer).__name__}"
                )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"{owner}: invalid merge_mode {merge_mode!r}; expected one of {_MERGE_MODES}"
            )
        super().__init__(**kwargs)
        config = layer.get_config()
        config["name"] = "forward_" + _remove_prefix(layer.name, "forward_")
        self.forward_layer: _RNN = type(layer).from_config(config)
        self._custom_backward = backward_layer is not None
        if backward_layer is None:
            config = layer.get_config()
            config["name"] = "backward_" + _remove_prefix(layer.name, "backward_")
            config["go_backwards"] = True
            if config["seed"] is not None:
                config["seed"] += 1  # not the forward layer's initial weights
            backward_layer = type(layer).from_config(config)
        self.backward_layer: _RNN = backward_layer
        fwd, bwd = self.forward_layer, self.backward_layer
        if fwd.go_backwards == bwd.go_backwards:
            raise ValueError(
                f"{owner}: the forward and backward layers must have different go_backwards, "
                f"got {fwd.go_backwards} for both"
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(fwd, attr) != getattr(bwd, attr):
                raise ValueError(
                    f"{owner}: the forward and backward layers must have the same {attr}, got "
                    f"{getattr(fwd, attr)} (forward) and {getattr(bwd, attr)} (backward)"
                )
        # As Keras does: masked steps of returned sequences are zeros in both directions.
        fwd.zero_output_for_mask = fwd.return_sequences
        bwd.zero_output_for_mask = bwd.return_sequences
        self.merge_mode = merge_mode
        self.stateful = fwd.stateful
        self.return_sequences = fwd.return_sequences
        self.return_state = fwd.return_state
        if weights:
            self.set_weights(list(weights))

    # ---- weights: the forward layer's, then the backward layer's ---------------------
    @property
    def built(self) -> bool:  # type: ignore[override]
        return self.forward_layer.built and self.backward_layer.built

    @built.setter
    def built(self, value: bool) -> None:  # the base constructor sets it; derived here
        pass

    def build(self, sequences_shape: Shape) -> None:
        """Build the forward and backward layers for ``sequences_shape``."""
        self.forward_layer.build(sequences_shape)
        self.backward_layer.build(sequences_shape)
        self._on_weights_set()

    @property
    def weights(self) -> list[np.ndarray]:
        return self.forward_layer.weights + self.backward_layer.weights

    def get_weights(self) -> list[np.ndarray]:
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _weight_names(self) -> list[str]:
        return ["forward/" + n for n in self.forward_layer._weight_names()] + [
            "backward/" + n for n in self.backward_layer._weight_names()
        ]

    def set_weights(self, weights: Sequence[Any]) -> None:
        owner = self._owner()
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"{owner}: set_weights expects a list of arrays, got {type(weights).__name__}"
            )
        names = self._weight_names()
        if len(weights) != len(names):
            raise ValueError(
                f"{owner}: set_weights expected {len(names)} arrays {names}, got {len(weights)}"
            )
        n = len(self.forward_layer._weight_names())
        try:
            self.forward_layer.set_weights(list(weights[:n]))
            self.backward_layer.set_weights(list(weights[n:]))
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}") from None
        self._on_weights_set()

    def count_params(self) -> int:
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    # ---- call -------------------------------------------------------------------------
    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: Any = None,
    ):
        owner = self._owner()
        forward_state = backward_state = None
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray) or not isinstance(
                initial_state, (list, tuple)
            ):
                raise TypeError(
                    f"{owner}: initial_state must be a flat list of arrays, got "
                    f"{type(initial_state).__name__}"
                )
            n = self.forward_layer._num_states + self.backward_layer._num_states
            if len(initial_state) != n:
                raise ValueError(
                    f"{owner}: initial_state must hold {n} arrays (the forward states, then the "
                    f"backward states), got {len(initial_state)}"
                )
            half = len(initial_state) // 2
            forward_state = list(initial_state[:half])
            backward_state = list(initial_state[half:])
        y = self.forward_layer(sequences, initial_state=forward_state, mask=mask)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, mask=mask)
        states: tuple[np.ndarray, ...] = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = np.ascontiguousarray(y_rev[:, ::-1])
        if self.merge_mode == "concat":
            out: Any = (np.concatenate([y, y_rev], axis=-1),)
        elif self.merge_mode == "sum":
            out = (y + y_rev,)
        elif self.merge_mode == "ave":
            out = ((y + y_rev) / F32(2),)
        elif self.merge_mode == "mul":
            out = (y * y_rev,)
        else:
            out = (y, y_rev)
        result = out + states
        return result[0] if len(result) == 1 else result

    def reset_states(self) -> None:
        """Zero the kept states of both (stateful) layers."""
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states

    @property
    def states(self) -> tuple[np.ndarray, ...] | None:
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def get_config(self):
        config = {
            "name": self.name,
            "layer": _serialize(self.forward_layer),
            "merge_mode": self.merge_mode,
        }
        if self._custom_backward:
            config["backward_layer"] = _serialize(self.backward_layer)
        return config

    def __repr__(self) -> str:
        items = [f"name={self.name!r}", f"layer={self.forward_layer!r}"]
        if self.merge_mode != "concat":
            items.append(f"merge_mode={self.merge_mode!r}")
        if self._custom_backward:
            items.append(f"backward_layer={self.backward_layer!r}")
        return f"Bidirectional({', '.join(items)})"


def _remove_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text


# ---------------------------------------------------------------------- attention


def _unpack_qvk(layer: Layer, inputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    owner = layer._owner()
    if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
        raise ValueError(
            f"{owner}: inputs must be a list [query, value] or [query, value, key], got "
            f"{type(inputs).__name__}"
            + (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple)) else "")
        )
    q = V.array(inputs[0], owner, "query")
    v = V.array(inputs[1], owner, "value")
    k = v if len(inputs) < 3 else V.array(inputs[2], owner, "key")
    V.rank(q, owner, "query", 3, "(batch, Tq, dim)")
    V.rank(v, owner, "value", 3, "(batch, Tv, dim_v)")
    V.rank(k, owner, "key", 3, "(batch, Tv, dim)")
    return q, v, k


def _unpack_masks(layer: Layer, mask: Any) -> tuple[Any, Any]:
    if mask is None:
        return None, None
    if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
        raise ValueError(
            f"{layer._owner()}: mask must be a list [query_mask, value_mask] (either may be "
            f"None), got {mask!r}"
        )
    return mask[0], mask[1]


class Attention(Layer):
    """Dot-product (Luong) attention (Keras ``Attention``).

    Parameters
    ----------
    use_scale : bool
        Multiply the scores by a learned scalar ``scale`` (initialized to 1).
    score_mode : "dot" or "concat"
        concat: ``scores = concat_score_weight * sum_d tanh(scale * (q_d + k_d))``.
    dropout : float
        Training only; ignored.
    seed : int, optional

    Weights: ``scale`` () if use_scale, then ``concat_score_weight`` () if
    score_mode="concat"; both initialized to 1.

    Call: ``layer([query, value] or [query, value, key], mask=None,
    return_attention_scores=False, use_causal_mask=False)``, with query
    (B, Tq, dim), value (B, Tv, dv), key (B, Tv, dim) (defaults to value), and
    mask [query_mask (B, Tq), value_mask (B, Tv)] (either may be None). Returns the
    output (B, Tq, dv), or (output, scores (B, Tq, Tv)).
    """

    def __init__(
        self,
        use_scale: bool = False,
        score_mode: str = "dot",
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.use_scale = _bool(use_scale, owner, "use_scale")
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{owner}: score_mode must be 'dot' or 'concat', got {score_mode!r}")
        self.score_mode = score_mode
        self.dropout = dropout
        self.seed = _seed(seed, owner)

    def _weight_specs(self, input_shape):
        specs = []
        if self.use_scale:
            specs.append(weight_spec("scale", (), "ones"))
        if self.score_mode == "concat":
            specs.append(weight_spec("concat_score_weight", (), "ones"))
        return specs

    def build(self, input_shape: Any) -> None:
        """Create ``scale`` and/or ``concat_score_weight`` (scalars); input_shape unused."""
        self._create_weights(input_shape)

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: Any = None,
        return_attention_scores: bool = False,
        use_causal_mask: bool = False,
    ):
        q, v, k = _unpack_qvk(self, inputs)
        query_mask, value_mask = _unpack_masks(self, mask)
        if not self.built:
            self.build([q.shape, v.shape, k.shape])
        scale = self._weight("scale")
        weight = self._weight("concat_score_weight")
        return F.attention(
            q,
            v,
            k,
            scale=None if scale is None else float(scale),
            score_mode=self.score_mode,
            concat_score_weight=None if weight is None else float(weight),
            query_mask=query_mask,
            value_mask=value_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
        )

    def get_config(self):
        return {
            "name": self.name,
            "use_scale": self.use_scale,
            "score_mode": self.score_mode,
            "dropout": self.dropout,
            "seed": self.seed,
        }


class AdditiveAttention(Layer):
    """Additive (Bahdanau) attention (Keras ``AdditiveAttention``).

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])``; there
    are no projection matrices.

    Parameters
    ----------
    use_scale : bool
        Default True: a learned ``scale`` vector (dim,), glorot_uniform-initialized.
    dropout : float
        Training only; ignored.
    seed : int, optional

    Weights: ``scale`` (dim,) if use_scale.

    Call: as :class:`Attention`.
    """

    def __init__(
        self,
        use_scale: bool = True,
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.use_scale = _bool(use_scale, owner, "use_scale")
        self.dropout = dropout
        self.seed = _seed(seed, owner)

    def _weight_specs(self, input_shape):
        if not self.use_scale:
            return []
        dim = None if input_shape is None else input_shape[0][-1]
        return [weight_spec("scale", (dim,), "glorot_uniform")]

    def _input_shape_from_weights(self, shapes):
        if not self.use_scale:
            return None
        dim = self._shape_of(shapes, 0, 1)[0]
        return [(None, None, dim), (None, None, None)]

    def build(self, input_shape: Any) -> None:
        """Create ``scale`` (dim,) from input_shape = [query_shape, value_shape(, key_shape)]."""
        self._create_weights([_shape_tuple(s) for s in input_shape])

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: Any = None,
        return_attention_scores: bool = False,
        use_causal_mask: bool = False,
    ):
        q, v, k = _unpack_qvk(self, inputs)
        query_mask, value_mask = _unpack_masks(self, mask)
        if not self.built:
            self.build([q.shape, v.shape, k.shape])
        return F.additive_attention(
            q,
            v,
            k,
            scale=self._weight("scale"),
            query_mask=query_mask,
            value_mask=value_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
        )

    def get_config(self):
        return {
            "name": self.name,
            "use_scale": self.use_scale,
            "dropout": self.dropout,
            "seed": self.seed,
        }


class MultiHeadAttention(Layer):
    """Multi-head attention (Keras ``MultiHeadAttention``) on rank-3 inputs.

    Parameters
    ----------
    num_heads : int
    key_dim : int
        Size of each query/key head; the query is scaled by 1/sqrt(key_dim).
    value_dim : int, optional
        Size of each value head; defaults to key_dim.
    dropout : float
        Ignored at inference, except that, as in Keras, dropout > 0 makes a fully
        masked row attend to nothing (output = output bias) instead of uniformly.
    use_bias : bool
    output_shape : int or (int,), optional
        Output features; defaults to the query's last dim.
    attention_axes : None or (1,)
        Only attention over the time axis of rank-3 inputs is supported.
    sliding_window : int, optional
        Query i attends only to keys j with |i - j| < sliding_window.
    kernel_initializer, bias_initializer : str or callable
        Defaults "glorot_uniform" (fans from the EinsumDense input/output axes, as
        Keras) and "zeros".
    seed : int, optional
    use_gate : must be False
    flash_attention, regularizers, constraints
        Accepted and ignored.

    Weights (Keras order): query/kernel (Dq, N, key_dim), query/bias (N, key_dim),
    key/kernel (Dk, N, key_dim), key/bias, value/kernel (Dv, N, value_dim),
    value/bias (N, value_dim), attention_output/kernel (N, value_dim, Dout),
    attention_output/bias (Dout,); without the biases if use_bias=False. They are
    also attributes: ``query_kernel``, ``query_bias``, ...

    Call: ``layer(query, value, key=None, query_mask=None, value_mask=None,
    key_mask=None, attention_mask=None, return_attention_scores=False,
    use_causal_mask=False)`` with query (B, T, Dq), value (B, S, Dv), key (B, S, Dk).
    value_mask / key_mask (B, S) and attention_mask (B, T, S) or (T, S) are bool,
    True = may attend. As in Keras, an explicit query_mask is ignored. Returns the
    output (B, T, Dout), or (output, scores (B, N, T, S)).
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Any = None,
        attention_axes: Any = None,
        sliding_window: int | None = None,
        flash_attention: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        use_gate: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.num_heads = _positive_int(num_heads, owner, "num_heads")
        self.key_dim = _positive_int(key_dim, owner, "key_dim")
        self.value_dim = (
            self.key_dim if value_dim is None else _positive_int(value_dim, owner, "value_dim")
        )
        if (
            isinstance(dropout, (bool, np.bool_))
            or not isinstance(dropout, numbers.Real)
            or not (0 <= dropout <= 1)
        ):
            raise ValueError(f"{owner}: dropout must be a number in [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        if flash_attention and self.dropout > 0:
            raise ValueError(f"{owner}: dropout is not supported when flash attention is enabled")
        self.flash_attention = flash_attention
        self.use_bias = _bool(use_bias, owner, "use_bias")
        if output_shape is not None:
            dims = (output_shape,) if isinstance(output_shape, (int, np.integer)) else output_shape
            if not isinstance(dims, (list, tuple)) or len(dims) != 1:
                raise NotImplementedError(
                    f"{owner}: output_shape must be an int or a 1-tuple in fastlayers, got "
                    f"{output_shape!r}"
                )
            output_shape = _positive_int(dims[0], owner, "output_shape")
        self.output_shape = output_shape
        if attention_axes is not None:
            axes = (
                (attention_axes,)
                if isinstance(attention_axes, (int, np.integer))
                else (attention_axes)
            )
            if not isinstance(axes, (list, tuple)) or [int(a) % 3 for a in axes] != [1]:
                raise NotImplementedError(
                    f"{owner}: only attention over the time axis of rank-3 inputs is supported "
                    f"(attention_axes None or (1,)), got {attention_axes!r}"
                )
            attention_axes = (1,)
        self.attention_axes = attention_axes
        if sliding_window is not None:
            sliding_window = _positive_int(sliding_window, owner, "sliding_window")
        self.sliding_window = sliding_window
        self.kernel_initializer = _check_initializer(
            kernel_initializer, owner, "kernel_initializer"
        )
        self.bias_initializer = _check_initializer(bias_initializer, owner, "bias_initializer")
        _not_supported(use_gate, False, owner, "use_gate")
        self.seed = _seed(seed, owner)

    def _weight_specs(self, input_shape):
        dq, dv, dk = (
            (None, None, None)
            if input_shape is None
            else (input_shape[0][-1], input_shape[1][-1], input_shape[2][-1])
        )
        n, hk, hv = self.num_heads, self.key_dim, self.value_dim
        dout = self.output_shape if self.output_shape is not None else dq
        kinit, binit = self.kernel_initializer, self.bias_initializer
        specs = []
        for name, d_in, h in (("query", dq, hk), ("key", dk, hk), ("value", dv, hv)):
            # EinsumDense "btd,dnh->btnh": fan_in = d_in, fan_out = n * h
            specs.append(weight_spec(f"{name}/kernel", (d_in, n, h), kinit, (d_in, n * h)))
            if self.use_bias:
                specs.append(weight_spec(f"{name}/bias", (n, h), binit))
        # EinsumDense "btnh,nhe->bte": fan_in = n * hv, fan_out = dout
        specs.append(weight_spec("attention_output/kernel", (n, hv, dout), kinit, (n * hv, dout)))
        if self.use_bias:
            specs.append(weight_spec("attention_output/bias", (dout,), binit))
        return specs

    def _input_shape_from_weights(self, shapes):
        step = 2 if self.use_bias else 1
        dq = self._shape_of(shapes, 0, 3)[0]
        dk = self._shape_of(shapes, step, 3)[0]
        dv = self._shape_of(shapes, 2 * step, 3)[0]
        return ((None, None, dq), (None, None, dv), (None, None, dk))

    def build(self, query_shape: Shape, value_shape: Shape, key_shape: Shape | None = None):
        """Create the projections for query (B, T, Dq), value (B, S, Dv), key (B, S, Dk)."""
        shapes = [_shape_tuple(s) for s in (query_shape, value_shape, key_shape or value_shape)]
        for what, s in zip(("query", "value", "key"), shapes):
            if len(s) != 3 or s[-1] is None:
                raise ValueError(
                    f"{self._owner()}: {what}_shape must be (batch, T, dim) with a "
                    f"known dim, got {s}"
                )
        self._create_weights(tuple(shapes))

    def _kernels(self):
        return tuple(
            self._weight(f"{w}/kernel") for w in ("query", "key", "value", "attention_output")
        )

    def _biases(self):
        return tuple(
            self._weight(f"{w}/bias") for w in ("query", "key", "value", "attention_output")
        )

    def _on_weights_set(self) -> None:
        # Pack the four projections (biases folded in) once for the C++ GEMM.
        self._packed = None
        if _backend.core_available():
            self._packed = F._pack_mha(*self._kernels(), *self._biases())

    def _attention_mask(self, q, v, attention_mask, value_mask, key_mask):
        """AND of attention_mask, value_mask, key_mask and the sliding window: (B, T, S),
        (T, S), or None when there is none."""
        owner = self._owner()
        b, t, s = q.shape[0], q.shape[1], v.shape[1]
        mask = None
        if attention_mask is not None:
            mask = V.bool_mask(attention_mask, owner, "attention_mask")
            if mask.shape not in ((b, t, s), (t, s)):
                raise ValueError(
                    f"{owner}: attention_mask has shape {mask.shape}, expected {(b, t, s)} or "
                    f"{(t, s)}"
                )
        for name, m in (("value_mask", value_mask), ("key_mask", key_mask)):
            if m is not None:
                m = V.bool_mask(m, owner, name)
                V.shape_is(m, owner, name, (b, s), "(batch, S)")
                mask = m[:, None, :] if mask is None else mask & m[:, None, :]
        if self.sliding_window is not None:
            i = np.arange(t)[:, None]
            j = np.arange(s)[None, :]
            band = np.abs(i - j) < self.sliding_window
            mask = band if mask is None else mask & band
        if mask is not None and mask.ndim == 3:
            mask = np.ascontiguousarray(np.broadcast_to(mask, (b, t, s)))
        return mask

    def call(
        self,
        query: Any,
        value: Any,
        key: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        attention_mask: Any = None,
        return_attention_scores: bool = False,
        training: Any = None,
        use_causal_mask: bool = False,
    ):
        owner = self._owner()
        q = V.array(query, owner, "query")
        v = V.array(value, owner, "value")
        k = v if key is None else V.array(key, owner, "key")
        V.rank(q, owner, "query", 3, "(batch, T, Dq)")
        V.rank(v, owner, "value", 3, "(batch, S, Dv)")
        V.rank(k, owner, "key", 3, "(batch, S, Dk)")
        want_scores = _bool(return_attention_scores, owner, "return_attention_scores")
        if not self.built:
            self.build(q.shape, v.shape, k.shape)
        # query_mask is ignored, as in Keras (which overwrites it with the query's Keras mask).
        mask = self._attention_mask(q, v, attention_mask, value_mask, key_mask)
        # Keras takes its softmax path (fully masked rows -> zero weights) when scores are
        # returned or dropout > 0; the functional op does the same when asked for scores.
        softmax_path = want_scores or self.dropout > 0
        out = F._multi_head_attention(
            q,
            v,
            k,
            *self._kernels(),
            self._biases(),
            mask,
            use_causal_mask,
            softmax_path,
            self._packed,
        )
        if softmax_path and not want_scores:
            return out[0]
        return out

    def get_config(self):
        return {
            "name": self.name,
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self.output_shape,
            "attention_axes": self.attention_axes,
            "sliding_window": self.sliding_window,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "seed": self.seed,
        }


# ------------------------------------------------------------------------ Softmax


class Softmax(Layer):
    """Softmax (Keras ``Softmax`` layer).

    Parameters
    ----------
    axis : int or tuple of ints
        Several axes normalize over their joint extent.

    No weights. Call: ``layer(inputs, mask=None)``; mask broadcasts to inputs, True
    (or > 0.5) keeps an entry, masked entries are 0 in the output (a fully masked
    slice is all zeros). Returns float32 of the inputs' shape.
    """

    def __init__(self, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, list):
            axis = tuple(axis)
        self.axis = axis

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        if not self.built:
            self.build(np.shape(inputs))
        return F.softmax(inputs, axis=self.axis, mask=mask)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}
