"""The base class of every layer, and the argument helpers the layer families share."""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import re
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

from .. import _backend, _checks, _masking, _symbolic
from .. import _validation as V
from .initializers import check_initializer, initial_value

F32 = np.float32
Shape = tuple[Optional[int], ...]

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


# Keras constructor arguments of layers with a kernel and a bias that only matter in training.
WEIGHT_TRAINING_ARGS = (
    "kernel_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "bias_constraint",
)


# Keras Layer constructor arguments every layer accepts and ignores (no effect on inference).
_KERAS_BASE_IGNORED = ("autocast", "activity_regularizer", "input_shape", "input_dim")


def _declared_shape(shape: Any, owner: str) -> tuple:
    """A layer's ``input_shape`` (one sample's shape, None for a free axis) or
    ``(input_dim,)``, checked."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if isinstance(dims, np.ndarray) and dims.ndim == 1 and dims.dtype.kind in "iu":
        dims = tuple(int(d) for d in dims)
    if not isinstance(dims, (tuple, list)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0)
            for d in dims):
        raise TypeError(f"{owner}: input_shape must be a tuple of positive ints or None "
                        f"(one sample's shape), got {shape!r}")
    return tuple(None if d is None else int(d) for d in dims)


def _custom_build(cls: type) -> bool:
    """Whether the nearest ``build`` of cls is defined outside fastlayers (a user's Keras-style
    layer); fastlayers' own layers build inside their calls."""
    for klass in cls.__mro__:
        if "build" in klass.__dict__:
            return not (klass.__module__ or "").startswith("fastlayers.")
    return False


#: Numbers each layer as it is made (Layer.__init__).
_layers_made = itertools.count()


@functools.lru_cache(maxsize=1024)  # (asked on every attribute assignment of every layer)
def _custom_composite(cls: type) -> bool:
    """Whether instances of cls track the layers held in their attributes, as Keras's layers
    do: a user's class written directly on ``Layer`` (not a subclass of one of fastlayers'
    layers or models, which hold their inner layers their own way)."""
    for klass in cls.__mro__:
        if (klass.__module__ or "").startswith("fastlayers."):
            return klass is Layer
    return False


def _held_layers(value: Any) -> bool:
    """Whether an attribute value is what Keras tracks for sub-layers: a Layer, or a list,
    tuple or dict (nested ones too) holding one, or an empty list or dict (layers added later
    count)."""
    if isinstance(value, Layer):
        return True
    if isinstance(value, dict):
        return not value or any(_held_layers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return (not value and isinstance(value, list)) or any(_held_layers(v) for v in value)
    return False


def _layers_held_by(value: Any) -> list[Any]:
    """The layers an attribute value holds: itself, or a container's layers in its order
    (nested containers' in place)."""
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        return [layer for v in items for layer in _layers_held_by(v)]
    return []


class _TrackedList(list):
    """A list a custom layer holds (Keras's TrackedList): a layer put into it is tracked by
    the layer at once, so the tracking order is the order of the appends."""

    def __init__(self, items: Any = (), owner: Any = None):
        super().__init__(_tracked_value(v, owner) for v in items)
        self._owner = owner

    def _added(self, values: Any) -> None:
        owner = getattr(self, "_owner", None)  # (None while unpickling: the items come first)
        if owner is not None:
            for layer in _layers_held_by(list(values)):
                owner._track(layer)

    def append(self, value: Any) -> None:
        value = _tracked_value(value, getattr(self, "_owner", None))
        super().append(value)
        self._added([value])

    def insert(self, index: Any, value: Any) -> None:
        value = _tracked_value(value, getattr(self, "_owner", None))
        super().insert(index, value)
        self._added([value])

    def extend(self, values: Any) -> None:
        values = [_tracked_value(v, getattr(self, "_owner", None)) for v in values]
        super().extend(values)
        self._added(values)

    def __iadd__(self, values: Any) -> Any:
        self.extend(values)
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            value = [_tracked_value(v, getattr(self, "_owner", None)) for v in value]
            super().__setitem__(index, value)
            self._added(value)
        else:
            value = _tracked_value(value, getattr(self, "_owner", None))
            super().__setitem__(index, value)
            self._added([value])


class _TrackedDict(dict):
    """A dict a custom layer holds (Keras's TrackedDict): a layer put into it is tracked by
    the layer at once."""

    def __init__(self, items: Any = (), owner: Any = None):
        super().__init__((k, _tracked_value(v, owner)) for k, v in dict(items).items())
        self._owner = owner

    def __setitem__(self, key: Any, value: Any) -> None:
        value = _tracked_value(value, getattr(self, "_owner", None))
        super().__setitem__(key, value)
        owner = getattr(self, "_owner", None)  # (None while unpickling: the items come first)
        if owner is not None:
            for layer in _layers_held_by(value):
                owner._track(layer)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


def _tracked_value(value: Any, owner: Any) -> Any:
    """A list or dict put into a custom layer's attribute (or into one it holds) as the
    tracked kind (a copy of it, as Keras's wrappers are: the layer then sees what is added
    to it); anything else as it is."""
    if owner is None:
        return value
    if type(value) is list:
        return _TrackedList(value, owner)
    if type(value) is dict:
        return _TrackedDict(value, owner)
    return value


#: Base-class bookkeeping a custom layer's attributes are never tracked under.
_UNTRACKED = frozenset({"_weight_values", "_weight_map", "_input_shape", "_call_weight_values",
                        "_packed", "_added"})


def _weight_names_of(layer: Any) -> list[str]:
    """The weight names of a layer, or of a model's layers in its weights order."""
    if hasattr(layer, "_weight_layers"):
        return [n for sub in layer._weight_layers() for n in _weight_names_of(sub)]
    return layer._weight_names()


def _spread_list(run: Callable) -> Callable:
    """A list layer's runner (``_runner(*arrays)``, models/shape_plan.py) as a function of
    the list, as a direct call has it (``layer([x, y])``)."""
    def run_list(xs: Any) -> Any:
        return run(*xs)

    return run_list


def _shapes_of(x: Any) -> Any:
    """The shape Keras's Layer.__call__ gives build: the first argument's (None for an
    unknown size of a symbolic tensor), a list of them for a list or tuple."""
    if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float)):
        return [_shapes_of(e) for e in x]
    return tuple(np.shape(x)) if not isinstance(x, _symbolic.SymbolicTensor) else x.shape



# The keys of a serialized layer: fastlayers' get_config form has class_name and config;
# Keras's adds the others, of which fastlayers needs none.
_SERIALIZED_KEYS = frozenset({"class_name", "config", "module", "registered_name",
                              "build_config", "compile_config", "shared_object_id"})


def deserialize_layer(config: Any, owner: str) -> Layer:
    """A layer given to a wrapper (TimeDistributed, Bidirectional, StackedRNN's cells): the
    layer itself, or one made from its serialized form ``{"class_name": ..., "config":
    {...}}`` (fastlayers' or Keras's, whose "module", "registered_name" and "build_config"
    keys are not needed) with the fastlayers layer class of that name. Anything else, an
    unknown key or class: a ValueError naming the wrapper."""
    if isinstance(config, Layer):
        return config
    if not isinstance(config, dict) or not {"class_name", "config"} <= set(config):
        # (a ValueError, as Keras's wrappers raise for an argument that is not a layer)
        raise ValueError(f"{owner}: layer must be a fastlayers layer instance (or its "
                         f"{{'class_name': ..., 'config': ...}}), got {type(config).__name__}")
    extra = set(config) - _SERIALIZED_KEYS
    if extra:
        raise ValueError(f"{owner}: a serialized layer has the keys class_name, config (and "
                         f"Keras's {sorted(_SERIALIZED_KEYS - {'class_name', 'config'})}), "
                         f"got also {sorted(extra)}")
    from .. import layers as L  # noqa: PLC0415 (the package imports this module)

    cls = getattr(L, str(config["class_name"]), None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"{owner}: unknown layer class {config['class_name']!r}")
    return cls.from_config(dict(config["config"]))


class Layer:
    """Base class: naming, lazy build, weights in Keras order, config and repr.

    Subclasses define ``call`` and declare ``config_keys`` (and ``ignored_args``,
    ``unsupported_args``); with weights they also define ``_weight_specs`` (the weights
    for an input shape), ``_input_shape_from_weights`` (the inverse, so that
    ``set_weights`` can build an unbuilt layer), ``call_weights`` and ``_pack``.

    Parameters
    ----------
    name : str, optional
        Defaults to the snake_case class name with a counter (``dense``, ``dense_1``).
    trainable, autocast, activity_regularizer
        Accepted for Keras compatibility; they do not affect inference.
    input_shape, input_dim
        One sample's shape (or its size): on the first layer of a ``Sequential`` it makes
        the model's Input, as Keras 3 does; elsewhere ignored, as in Keras.
    dtype : None or "float32"
        fastlayers computes in float32, as Keras does by default.
    seed : int, optional
        Seeds the initializers (a fastlayers extension); only the layers that list
        "seed" in ``config_keys`` take it.
    """

    #: The weights Keras creates with ``trainable=False`` (statistics, not parameters:
    #: BatchNormalization's moving mean and variance). They order a legacy .h5 file's
    #: nested-model weights (io/keras_files.py) and count as non-trainable in ``summary()``.
    non_trainable_weight_names: frozenset[str] = frozenset()
    #: Keras constructor arguments that only matter in training: accepted and ignored.
    ignored_args: tuple[str, ...] = ()
    #: Keras constructor arguments fastlayers does not support: name -> the one value allowed.
    unsupported_args: dict[str, Any] = {}

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        cls = type(self).__name__
        if seed is not None and "seed" not in self.config_keys:
            kwargs["seed"] = seed  # only the layers with seed in their config take one
        # Keras 3 still takes input_shape / input_dim on the first layer of a Sequential
        # (with a warning): Sequential.add makes the Input from it.
        declared = kwargs.get("input_shape")
        if declared is None and kwargs.get("input_dim") is not None:
            declared = (kwargs["input_dim"],)
        if declared is not None:
            self.__dict__["_declared_input_shape"] = _declared_shape(declared, cls)
        unsupported = {key: kwargs.pop(key) for key in self.unsupported_args if key in kwargs}
        unknown = sorted(set(kwargs) - set(self.ignored_args) - set(_KERAS_BASE_IGNORED))
        if unknown:
            raise TypeError(f"{cls}: unrecognized keyword arguments: {unknown}")
        for key, value in unsupported.items():
            _not_supported(value, self.unsupported_args[key], cls, key)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{cls}: name must be a str, got {type(name).__name__}")
        if dtype is not None:
            policy = getattr(dtype, "name", dtype)
            try:  # a dtype, a dtype name, or a Keras DTypePolicy (which has .name)
                # (Keras's mixed policies keep float32 weights: computed in float32 here, as a
                # loaded file of such a model is)
                is_f32 = policy in ("mixed_float16", "mixed_bfloat16") or (
                    np.dtype(policy) == np.float32)
            except TypeError:
                is_f32 = False
            if not is_f32:
                raise ValueError(f"{cls}: fastlayers computes in float32; got dtype={dtype!r}")
        keras_class = type(self).__dict__.get("_keras_class_name")  # (not a subclass's)
        self.name: str = name if name is not None else _auto_name(keras_class or cls)
        self.trainable = _bool(trainable, cls, "trainable")
        self.seed: int | None = _seed(seed, cls)
        self.built = False
        self.__dict__["_made"] = next(_layers_made)  # (compute_output_shape: made since)
        self._input_shape: Any = None
        self._weight_values: list[np.ndarray] = []
        self._weight_map: dict[str, np.ndarray] = {}

    def _init_weight_args(self, use_bias, kernel_initializer, bias_initializer) -> None:
        """Check and set the constructor arguments of a layer with a kernel and a bias."""
        owner = type(self).__name__
        self.use_bias = _bool(use_bias, owner, "use_bias")
        self.kernel_initializer = check_initializer(kernel_initializer, owner, "kernel_initializer")
        self.bias_initializer = check_initializer(bias_initializer, owner, "bias_initializer")

    # ---- to be provided by subclasses with weights --------------------------------
    def _weight_specs(self, input_shape: Any) -> list[tuple[str, tuple[int, ...], Callable]]:
        """[(name, shape, make)] in Keras order; ``make(rng)`` draws the initial value."""
        return []

    def _weight_names(self) -> list[str]:
        """The weight names in Keras order. They depend on the config only (a custom
        layer's: those of its add_weight calls, in their order)."""
        added = self.__dict__.get("_added")
        if added is not None:
            own = [name for name, _, _ in added]
        else:
            own = [name for name, _, _ in self._weight_specs(None)]
        # a custom layer's sub-layers (its attributes, as Keras tracks them): theirs after
        # (those with weights: a layer tracked but never built, one replaced before its first
        # call say, has none, as in Keras)
        return own + [f"{sub.name}/{n}" for sub in self._tracked_layers() if sub.weights
                      for n in _weight_names_of(sub)]

    def _tracked_layers(self) -> list[Layer]:
        """The layers a custom layer has held in its attributes (``self.att =
        MultiHeadAttention(...)``, a list, tuple or dict holding layers), each once, in
        Keras's tracking order, which orders their weights after the layer's own: each layer
        from when it was first held (assigned, or put into a held list or dict), and kept
        there, as Keras's tracker keeps it (assigned again, swapped, deleted: its place
        stays, and a layer no longer held still counts, as in Keras)."""
        return list(self.__dict__.get("_track_order", ()))

    def _track(self, layer: Layer) -> None:
        """Track ``layer`` (at the end of the order, unless tracked already)."""
        order = self.__dict__.setdefault("_track_order", [])
        if layer is not self and all(held is not layer for held in order):
            order.append(layer)

    # ---- Keras-style custom layers: build() and add_weight() --------------------------
    def add_weight(self, shape: Any = None, initializer: Any = None, dtype: Any = None,
                   trainable: bool = True, autocast: bool = True, regularizer: Any = None,
                   constraint: Any = None, aggregation: Any = "none",
                   overwrite_with_gradient: bool = False, name: str | None = None
                   ) -> np.ndarray:
        """A weight of a custom layer, as Keras's ``Layer.add_weight`` makes one (call it in
        the layer's ``build``, which fastlayers calls before the first call, with the input's
        shape, as Keras does).

        Returns a read-only float32 array of ``shape`` (default ``()``), drawn from
        ``initializer`` (a Keras initializer name or a callable ``f(shape, dtype)``; default
        "glorot_uniform", as Keras's for float weights). The layer's weights
        (``get_weights`` / ``set_weights``) are its added weights in Keras's order: the
        trainable ones in the order made, then the others; ``set_weights`` writes into these
        arrays in place, so every reference to one (``self.w = self.add_weight(...)``, a list
        of them) sees the new values. ``trainable`` counts in ``trainable_weights``; the
        other training arguments are accepted and ignored. Only float32 (``dtype`` None or
        "float32") is computed.
        """
        owner = self._owner()
        if dtype is not None and np.dtype(dtype) != np.float32:
            raise ValueError(f"{owner}: add_weight computes in float32; got dtype={dtype!r}")
        shape = () if shape is None else _shape_tuple(shape)
        if any(d is None for d in shape):
            raise ValueError(f"{owner}: add_weight needs a known shape, got {shape}")
        added = self.__dict__.setdefault("_added", [])
        if name is None:
            name = "variable" if not added else f"variable_{len(added)}"
        if any(n == name for n, _, _ in added):
            raise ValueError(f"{owner}: add_weight: a weight named {name!r} exists already")
        init = check_initializer("glorot_uniform" if initializer is None else initializer,
                                 owner, "initializer")
        rng = self.__dict__.setdefault("_added_rng", np.random.default_rng(self.seed))
        _checks.elements(math.prod(shape), owner, f"weight {name!r} of shape {shape}")
        value = initial_value(init, shape, rng)
        if value.shape != shape:  # a callable initializer returning another shape
            raise ValueError(f"{owner}: initial value of {name!r} has shape {value.shape}, "
                             f"expected {shape}")
        value.flags.writeable = False
        entry = (name, value, _bool(trainable, owner, "trainable"))
        # Keras's order: the trainable weights, then the others (each in the order made)
        at = len(added) if not entry[2] else next(
            (i for i, (_, _, t) in enumerate(added) if not t), len(added))
        added.insert(at, entry)
        self._weight_values = [v for _, v, _ in added]
        self._weight_map = {n: v for n, v, _ in added}
        return value

    def _build_custom(self, args: tuple, kwargs: dict) -> None:
        """An unbuilt custom layer's own ``build`` (a Keras-style layer: Keras's
        Layer.__call__ calls it with the shape of the first argument, a list of shapes for a
        list), before its first call: its add_weight calls. A build that fails part-way is
        undone, so that a call on other inputs may build again."""
        if self.built or not _custom_build(type(self)):
            return
        before = dict(self.__dict__)
        for key in ("_added", "_weight_values"):  # (lists build appends to)
            if isinstance(before.get(key), list):
                before[key] = list(before[key])
        if isinstance(before.get("_weight_map"), dict):
            before["_weight_map"] = dict(before["_weight_map"])
        try:
            self.build(_shapes_of(args[0] if args else next(iter(kwargs.values()), None)))
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        self.built = True

    def _set_added_weights(self, weights: Sequence[Any]) -> None:
        """set_weights of a layer whose weights come from add_weight: each array is written
        into its weight in place (attributes holding it see the values)."""
        owner = self._owner()
        # (its own weights: not its layers')
        names = self._check_weight_list(weights, [name for name, _, _ in self.__dict__["_added"]])
        new = [V.array(w, owner, f"weight {name!r}") for name, w in zip(names, weights)]
        for i, (name, a, (_, have, _)) in enumerate(zip(names, new, self.__dict__["_added"])):
            if a.shape != have.shape:
                raise ValueError(f"{owner}: weight {i} {name!r} has shape {a.shape}, expected "
                                 f"{have.shape}")
        added = self.__dict__["_added"]
        for i, (a, (name, have, trainable)) in enumerate(zip(new, added)):
            try:  # in place: every reference to the weight (a list of them, a view) sees it
                have.flags.writeable = True
                have[...] = a
                have.flags.writeable = False
                continue
            except ValueError:  # a read-only buffer (unpickled out of band): a copy, put in
                pass  # the attributes that held the old array
            value = np.array(a, dtype=np.float32, order="C")
            value.flags.writeable = False
            added[i] = (name, value, trainable)
            for attr, held in list(self.__dict__.items()):
                if held is have:
                    self.__dict__[attr] = value
        self._weight_values = [v for _, v, _ in added]
        self._weight_map = {n: v for n, v, _ in added}
        self._on_weights_set()

    def _set_held_weights(self, weights: Sequence[Any], subs: list[Layer]) -> None:
        """set_weights of a custom layer holding layers: its own weights first, then each held
        layer's, in ``weights`` order; every count and shape is checked before any changes.
        The layer must be built (called once, or in a model), as its held layers' weights
        exist only then."""
        owner = self._owner()
        if not self.built:
            if not isinstance(weights, (list, tuple)):
                self._check_weight_list(weights, [])  # (its TypeError)
            raise ValueError(f"{owner}: set_weights of a layer holding other layers needs it "
                             "built (call it once, or use it in a model, first)")
        current = [list(self._weight_values)] + [sub.weights for sub in subs]
        names = self._weight_names()
        if len(names) != sum(len(c) for c in current):  # (held layers not built yet)
            names = [f"weight {i}" for i in range(sum(len(c) for c in current))]
        self._check_weight_list(weights, names,
                                f"(its own {len(current[0])}, then its layers')")
        for i, (have, new) in enumerate(zip([w for c in current for w in c], weights)):
            if np.shape(new) != have.shape:
                raise ValueError(f"{owner}: weight {i} {names[i] if i < len(names) else ''!r} "
                                 f"has shape {np.shape(new)}, expected {have.shape}")
        start = 0
        for part, target in zip(current, [None, *subs]):
            values = list(weights[start:start + len(part)])
            start += len(part)
            if not values:
                continue
            if target is None:
                self._set_added_weights(values)
            else:
                target.set_weights(values)

    def _input_shape_from_weights(self, shapes: list[tuple[int, ...]]) -> Any:
        """An input shape under which ``shapes`` are the layer's weight shapes."""
        return None

    # ---- building and weights -------------------------------------------------------
    def _owner(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape`` with the default initializers.

        Dimensions may be None except those the weights depend on. Random initializers
        draw from ``numpy.random.default_rng(self.seed)``. A custom layer whose ``build``
        made weights with ``add_weight`` and then calls ``super().build(input_shape)`` (the
        Keras idiom) keeps them.
        """
        if self.__dict__.get("_added") is not None:
            self.built = True
            return
        self._create_weights(input_shape)

    def _create_weights_for_last_dim(self, input_shape: Any) -> None:
        """``build`` of a layer whose weights depend on its input's last axis alone (Dense,
        Experts): that axis must be known."""
        input_shape = _shape_tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"{self._owner()}: build needs a known last dim, got {input_shape}")
        self._create_weights(input_shape)

    def _create_weights(self, input_shape: Any) -> None:
        specs = self._weight_specs(input_shape)
        rng = np.random.default_rng(self.seed)
        values = []
        for name, shape, make in specs:
            what = f"weight {name!r} of shape {tuple(shape)}"
            # An absurd units / filters / kernel size / input shape: refused before the
            # initializer allocates (NumPy's MemoryError or "array is too big" would name
            # neither the layer nor the weight), with the limit of array arguments.
            _checks.elements(math.prod(int(d) for d in shape), self._owner(), what)
            try:
                values.append(make(rng))
            except MemoryError as exc:  # below the limit, but more than this machine has
                raise ValueError(
                    f"{self._owner()}: {what} is too large to create ({exc})"
                ) from None
        for (name, shape, _), value in zip(specs, values):
            if value.shape != tuple(shape):  # a user initializer returning the wrong shape
                raise ValueError(
                    f"{self._owner()}: initial value of {name!r} has shape {value.shape}, "
                    f"expected {tuple(shape)}"
                )
        self._input_shape = input_shape
        self.built = True
        self._store(values)

    def _unbuild(self) -> None:
        """Back to the unbuilt state (no weights): a symbolic call that built the layer for
        a placeholder size of an unknown dimension its weights depend on undoes it
        (_symbolic.symbolic_call)."""
        for attr in self.__dict__.pop("_weight_attrs", ()):
            self.__dict__.pop(attr, None)
        added = self.__dict__.pop("_added", None)  # a custom layer's add_weight weights
        if added:
            ids = {id(v) for _, v, _ in added}
            for attr in [k for k, v in self.__dict__.items() if id(v) in ids]:
                del self.__dict__[attr]
        self.__dict__.pop("_added_rng", None)
        self.built = False
        self._input_shape = None
        self._weight_values = []
        self._weight_map = {}
        self._call_weight_values = ()
        self._packed = None

    def _store(self, values: list[np.ndarray]) -> None:
        for value in values:
            value.flags.writeable = False  # weights change only through set_weights
        self._weight_values = values
        self._weight_map = dict(zip(self._weight_names(), values))
        attrs = []
        for name, value in self._weight_map.items():
            attrs.append(name.replace("/", "_"))
            object.__setattr__(self, attrs[-1], value)  # (read-only to users: __setattr__)
        self.__dict__["_weight_attrs"] = frozenset(attrs)
        self._call_weight_values = tuple(self._weight_map.get(n) for n in self.call_weights)
        self._on_weights_set()

    _packed: Any = None  # the weights packed for the C++ path by _pack, or None

    def _pack(self) -> Any:
        """The weights packed for the C++ path (a ``_cpp.<family>.pack_<op>``), or None."""
        return None

    def _on_weights_set(self) -> None:
        """Hook called once whenever the weights change (build, set_weights).

        The C++ path packs the weights here (:meth:`_pack`), so that calls never repack them.
        """
        self._packed = self._pack() if _backend.core_available() else None
        _layers_epoch[0] += 1  # the models' shape plans hold packed weights: drop them
        self.__dict__.pop("_direct", None)  # this layer's own runner holds the old ones

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Count the constructors running on an object (a subclass's __init__ calls its
        # parent's), so that __setattr__ can tell construction from a later assignment.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self: Layer, *args: Any, **kw: Any) -> None:
            d = self.__dict__
            d["_init_depth"] = d.get("_init_depth", 0) + 1
            try:
                init(self, *args, **kw)
            finally:
                d["_init_depth"] -= 1

        cls.__init__ = __init__  # type: ignore[method-assign]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_weight_attrs", ()):
            # (Keras's layers have no setter either; here the value would be ignored: the
            # calls read the stored and packed weights)
            raise AttributeError(
                f"{self._owner()}: the weight {name!r} is set with set_weights (all of the "
                f"layer's weights, in Keras's order: {list(self._weight_map)}), not by "
                "assignment")
        after_init = name in self.config_keys and not self.__dict__.get("_init_depth", 1)
        if after_init and type(self).__module__.startswith("fastlayers.") and not getattr(
            _probing, "on", False
        ):
            # A config attribute of a fastlayers layer set after construction
            # (``pool.pool_size = (0, 0)``): checked and normalized as the constructor does,
            # by a probe layer made from the new config, so a bad value is the constructor's
            # clear error here rather than a failure (or a wrong result) at the next call.
            # Not for subclasses defined elsewhere (their constructor and get_config need not
            # round-trip), and not inside a probe.
            _probing.on = True
            try:
                config = {**self.get_config(), name: value, "name": self.name}
                value = getattr(type(self).from_config(config), name)
            finally:
                _probing.on = False
        object.__setattr__(self, name, value)
        if _custom_composite(type(self)):
            # Keras tracks the layers a layer holds: their weights are the layer's too
            # (after its own), a file keeps them under the attribute's name, and what is done
            # to the layer (trainable, the checks of a model definition) reaches them.
            tracked = self.__dict__.get("_tracked")
            if tracked is not None:
                tracked.pop(name, None)
            if name not in _UNTRACKED and _held_layers(value):
                if tracked is None:
                    tracked = self.__dict__["_tracked"] = {}
                value = _tracked_value(value, self)
                object.__setattr__(self, name, value)
                tracked[name] = value
                for layer in _layers_held_by(value):
                    self._track(layer)
        if name == "trainable" and not self.__dict__.get("_init_depth", 1):
            self.__dict__["_variables_trainable"] = bool(value)  # (_sublayer_variables)
            for layer in self._sublayers():  # as Keras's setter: the layers inside too
                layer.trainable = value
        if after_init:
            self._config_changed(name)
        # A shape plan may have bound the old value in (models/shape_plan.py). Not during
        # construction, and not for run-time state such as a stateful RNN's ``states``.
        if name in self.config_keys and self.__dict__.get("built"):
            _layers_epoch[0] += 1

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        tracked = self.__dict__.get("_tracked")
        if tracked is not None:
            tracked.pop(name, None)  # (its layers stay tracked, as in Keras)

    def _config_changed(self, name: str) -> None:
        """Hook called after the config attribute ``name`` was set on a constructed layer:
        layers that derive state from it in the constructor or build refresh it here."""

    #: Whether _symbolic_output_shape takes the list of input shapes (Concatenate).
    _symbolic_list_input = False

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        """The output shape of ``call`` on an input of ``shape`` (the batch may be None, the
        rest is known), building the layer as a call would; None when the layer offers
        none (the default), and then a model definition runs the layer on zeros instead
        (``_symbolic.symbolic_call``). Defined by the layers whose zero runs cost real work
        on large sizes; docs/architecture.md §2 (``_symbolic.py``)."""
        return None

    def _offered_output_shape(self, shape: Any) -> tuple | None:
        """:meth:`_symbolic_output_shape`, or None when a subclass overrides ``call`` without
        its own hook, or ``call`` was replaced on this object: the hook would not know what
        that call returns."""
        if "call" in self.__dict__:
            return None
        owner = next(c for c in type(self).__mro__ if "_symbolic_output_shape" in c.__dict__)
        if type(self).call is not owner.__dict__.get("call", owner.call):
            return None
        return self._symbolic_output_shape(shape)

    def _runner(self, *args: Any, **kwargs: Any) -> Callable | None:
        """For a model's shape plan (models/shape_plan.py): a function of arrays alone that
        computes what ``call(*args, **kwargs)`` just computed, for arguments of the same
        shapes and dtypes, skipping the checks; None (the default) when the layer offers
        none for this call. Asked only after that call succeeded, with no mask involved."""
        return None

    # ---- pickling and copying: weights and config travel, packed weights are rebuilt ------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the packed weights: those are objects of the compiled core (their
        layout may depend on the ISA of the machine), so they are packed again on load."""
        state = self.__dict__.copy()
        state.pop("_packed", None)
        state.pop("_shape_plans", None)  # a model's cache of closures (models/shape_plan.py)
        state.pop("_direct", None)  # the runner of direct calls (__call__)
        state.pop("_direct_seen", None)
        state.pop("_reader_counts", None)
        # the first symbolic call's node may belong to another graph than the one pickled: a
        # model puts back those of its own graph (models/functional.py, __setstate__)
        state.pop("_first_node", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_init_depth", 0)  # a layer pickled before the counter
        if self.built and self._weight_values and "_added" not in state:
            # (a custom layer's added weights are plain arrays its attributes share: as they
            # came, no packing)
            # Stored as set_weights stores them (read-only, packed). Pickle protocol 5 hands
            # arrays over in out-of-band buffers, which may start at any byte (Dask's transfers
            # between workers): the C++ packing needs float-aligned weights, so those are
            # copied.
            self._store([v if v.flags.aligned else np.array(v) for v in self._weight_values])

    #: The weights a call passes to its op's check_<op>, in the check's order (None for a
    #: weight the config leaves out).
    call_weights: tuple[str, ...] = ()
    _call_weight_values: tuple = ()  # those weights, set with them (_store)

    def _ready(self, *input_shape: Any) -> tuple:
        """The ``build`` hook of ``_validation.check_<op>``: build on the first call (the
        input passed its checks), then return the :attr:`call_weights`."""
        if not self.built:
            self.build(*input_shape)
        return self._call_weight_values

    def _weight(self, name: str) -> np.ndarray | None:
        """The weight called ``name``, or None if the config has no such weight."""
        return self._weight_map.get(name)

    @property
    def weights(self) -> list[np.ndarray]:
        """The weights in Keras order, as read-only float32 arrays ([] before build); a custom
        layer's own, then those of the layers it holds, as Keras orders them."""
        subs = self._tracked_layers()
        own = list(self._weight_values)
        return own + [w for sub in subs for w in sub.weights] if subs else own

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras order ([] before build)."""
        return [w.copy() for w in self.weights]

    def _check_weight_list(self, weights: Any, names: list[str] | None = None,
                           what: str = "") -> list[str]:
        """The weight names (``names``, default ``_weight_names()``), once ``weights`` is
        checked to be a list of as many arrays (``what`` says which, in the error)."""
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"{self._owner()}: set_weights expects a list of arrays, got "
                f"{type(weights).__name__}"
            )
        names = self._weight_names() if names is None else names
        if len(weights) != len(names):
            raise ValueError(
                f"{self._owner()}: set_weights expected {len(names)} arrays "
                f"{what or names}, got {len(weights)}"
            )
        return names

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set the weights from arrays in Keras order (see each layer's docstring).

        The count and every shape are checked (ValueError naming the layer and the
        weight); the arrays are copied to float32 C-contiguous. An unbuilt layer is
        built from the weight shapes.
        """
        subs = self._tracked_layers()
        if subs:
            self._set_held_weights(weights, subs)
            return
        if self.__dict__.get("_added") is not None:
            self._set_added_weights(weights)
            return
        owner = self._owner()
        names = self._check_weight_list(weights)
        arrays = []
        for name, w in zip(names, weights):
            a = V.array(w, owner, f"weight {name!r}")
            # For an ndarray w, V.array gives w itself (or a view of it) when w is float32 and
            # C-contiguous already, else a new array, which is kept as it is (a converted
            # model's transposed kernels were copied twice). Anything else (a torch tensor,
            # an object whose __array__ hands out an array it keeps) is copied.
            new = isinstance(w, np.ndarray) and a is not w and a.flags.owndata
            arrays.append(a if new else a.copy())
        shapes = [a.shape for a in arrays]
        input_shape = self._input_shape
        if not self.built and names:  # a layer without weights has no shape to infer
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

    def compute_output_shape(self, input_shape: Any, *more_shapes: Any) -> Any:
        """The shape of the output for an input of ``input_shape``, as Keras's
        ``compute_output_shape``: shapes with the batch dimension first, None for a size
        that may vary (``layer.compute_output_shape((None, 10, 4))`` -> ``(None, 10, 8)``).

        ``input_shape`` is one shape (a tuple or list of ints and None), or a list, tuple or
        dict of them for a layer or model of several inputs (a merging layer's list, a
        model's named inputs); a layer whose call takes several tensors takes their shapes
        as several arguments, as Keras's (``mha.compute_output_shape(query_shape,
        value_shape)``). The result has the structure of the output: a tuple for one
        output, a tuple (list, dict) of tuples for several (an LSTM with
        ``return_state=True``).

        Computed as a model definition computes it (the layer called on symbolic inputs
        of those shapes, float32, or int32 where the layer takes integers only, such as
        Embedding), and the layer is left as it was: an unbuilt layer is not built by it (nor
        are the layers its build made), and its ``input`` / ``output`` are not this call's.
        A shape the layer cannot take raises the ValueError its call would."""
        from .. import _symbolic
        from ..models.functional import Input

        def one(shape: Any) -> bool:
            return isinstance(shape, (tuple, list)) and all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool))
                for d in shape)

        zero_batch = []

        def inputs(shape: Any, dtype: Any) -> Any:
            def make(shape: Any) -> Any:
                if not one(shape) or len(shape) < 1:
                    raise TypeError(
                        f"{self._owner()}: compute_output_shape takes a shape (a tuple of "
                        f"ints or None, the batch first) or a list / dict of them, got "
                        f"{input_shape!r}" + (f" and {more_shapes!r}" if more_shapes else ""))
                batch = None if shape[0] is None else int(shape[0])
                if batch == 0:
                    zero_batch.append(True)  # (Input takes none: 0 put back below)
                return Input(tuple(shape[1:]), dtype=dtype, batch_size=batch or None)

            if one(shape):
                return make(shape)
            if isinstance(shape, dict):
                return {k: make(v) for k, v in shape.items()}
            if isinstance(shape, (list, tuple)) and shape:
                return [make(s) for s in shape]
            return make(shape)

        if more_shapes:
            params = [p for p in inspect.signature(self.call).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                      and p.name not in ("training", "mask")]
            if 1 + len(more_shapes) > len(params):
                raise TypeError(
                    f"{self._owner()}: compute_output_shape takes {len(params)} shape(s), one "
                    f"per tensor its call takes, got {1 + len(more_shapes)}")

        def call(dtype: Any) -> Any:
            zero_batch.clear()
            args = [inputs(s, dtype) for s in (input_shape, *more_shapes)]
            return self(*args)

        fresh = _symbolic._unbuilt_parts(self)
        made_before = next(_layers_made)  # (the layers a custom build makes come after)
        first = "_first_node" in self.__dict__
        try:
            try:
                out = call(np.float32)
            except TypeError:  # a layer of integer inputs (Embedding, CategoryEncoding)
                for part in fresh:
                    part._unbuild()
                out = call(np.int32)
        finally:
            # the layers built by the call: those unbuilt before, and those its build made
            # (not a built layer the build merely took hold of)
            made = [p for p in _symbolic._parts(self)
                    if p.__dict__.get("_made", -1) > made_before
                    and not hasattr(p, "_weight_layers")]
            for part in fresh + made:
                part._unbuild()
            if not first:
                self.__dict__.pop("_first_node", None)

        def shape_of(t: Any) -> Any:
            if isinstance(t, _symbolic.SymbolicTensor):
                shape = tuple(t.shape)
                return (0, *shape[1:]) if zero_batch and shape and shape[0] is None else shape
            if isinstance(t, dict):
                return {k: shape_of(v) for k, v in t.items()}
            if isinstance(t, (list, tuple)):
                return type(t)(shape_of(v) for v in t) if type(t) in (list, tuple) else tuple(
                    shape_of(v) for v in t)
            return t

        return shape_of(out)

    def count_params(self) -> int:
        """The number of weight values (the layer must be built)."""
        if not self.built:
            raise ValueError(f"{self._owner()}: the layer is not built yet")
        return int(sum(w.size for w in self.weights))

    def _sublayers(self) -> list[Layer]:
        """The layers this one holds and calls (a model's, a wrapper's; those a custom layer
        holds in its attributes)."""
        return self._tracked_layers()

    #: Whether Keras's call of this layer deletes the masks of some of its input tensors,
    #: so that the layers reading them after it in a model see none (_mask_deleted_inputs).
    _deletes_input_masks = False

    def _mask_deleted_inputs(self, args: tuple, kwargs: dict) -> list:
        """The symbolic tensors among a recorded call's arguments whose masks Keras's call
        deletes (with ``_deletes_input_masks``)."""
        return []

    #: The class name of Keras's layer when it differs (its auto-names: "grouped_query_attention").
    _keras_class_name: str | None = None

    #: Whether Keras's layer of this class keeps its variables in layers of its own, made in
    #: its constructor (MultiHeadAttention's EinsumDense layers, ConvLSTM2D's cell): built
    #: with ``trainable=False``, its variables stay trainable (a model lists them so); only
    #: a later ``layer.trainable = ...`` sets them.
    _sublayer_variables = False

    def _trainable_mask(self) -> list[bool]:
        """Per weight of ``weights``, its trainable flag as Keras keeps it on the variable:
        none of a frozen layer's, else those not in ``non_trainable_weight_names``. A layer
        holding other layers' weights gives theirs: the flags are the layers' own (setting
        ``trainable`` sets those inside too), and only the layer or model asked
        (``trainable_weights``) applies its own ``trainable`` on top, as Keras does."""
        on = (self.__dict__.get("_variables_trainable", True) if self._sublayer_variables
              else self.trainable)
        added = self.__dict__.get("_added")
        subs = self._tracked_layers()
        if subs:  # a custom layer holding layers: its own flags, then theirs
            own = [on and t for _, _, t in added] if added is not None else (
                [on] * len(self._weight_values))
            return own + [t for sub in subs for t in sub._trainable_mask()]
        if added is not None:  # a custom layer's add_weight(trainable=...)
            return [on and t for _, _, t in added]
        names, count = self._weight_names(), len(self.weights)
        if len(names) != count:  # weights held elsewhere, or not built: as they are
            return [on] * count
        return [on and name not in self.non_trainable_weight_names for name in names]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        """The weights Keras lists as trainable (not a BatchNormalization's moving statistics;
        none of a layer with ``trainable = False``), in ``weights`` order."""
        if not self.trainable:
            return []
        return [w for w, t in zip(self.weights, self._trainable_mask()) if t]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        """The other weights, in ``weights`` order."""
        if not self.trainable:
            return self.weights
        return [w for w, t in zip(self.weights, self._trainable_mask()) if not t]

    def _count_trainable_params(self) -> int:
        """The weight values Keras counts as trainable (``summary()``)."""
        return int(sum(w.size for w in self.trainable_weights))

    # ---- config ---------------------------------------------------------------------
    #: The constructor arguments get_config returns (after "name"), each an attribute of the
    #: same name. A new layer lists its own; a subclass extends its parent's tuple.
    config_keys: tuple[str, ...] = ()

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (name included); ``cls.from_config(config)`` rebuilds
        the layer without its weights."""
        return {"name": self.name, **{key: getattr(self, key) for key in self.config_keys}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """The layer of ``config``: its own ``get_config()``, or a Keras layer's (serialized
        initializers and dtype policies, as ``keras_layer.get_config()`` gives them), read as
        ``load_model`` reads it: the initializers, regularizers and constraints are not
        read (the weights come with ``set_weights``), so the new layer's build draws them
        with fastlayers' defaults."""
        if any(isinstance(v, dict) and ("class_name" in v or "module" in v)
               for v in config.values()):
            from ..io.keras_config import Unsupported, _layer_kwargs  # noqa: PLC0415

            try:
                return cls(**_layer_kwargs(cls, {"class_name": cls.__name__, "config": config}))
            except Unsupported as e:
                raise ValueError(f"{cls.__name__}.from_config: {e}") from None
        return cls(**config)

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        """The constructor defaults, the subclass's over its parents' (for __repr__)."""
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__[:-1]):  # object last
            for key, p in inspect.signature(klass.__init__).parameters.items():
                if p.default is not inspect.Parameter.empty:
                    defaults[key] = p.default
        return defaults

    def __repr__(self) -> str:
        defaults = self._defaults()
        items = [
            f"{key}={value!r}"
            for key, value in self.get_config().items()
            if not (key in defaults and _same(defaults[key], value))  # defaults are left out
        ]
        return f"{type(self).__name__}({', '.join(items)})"

    # ---- masks (Keras's implicit masks; docs/architecture.md §12 (Masks)) ----------
    #: Whether the layer passes masks on (Keras's ``supports_masking``): its outputs get
    #: ``compute_mask(inputs, mask)`` inside a model; False drops the masks it receives.
    supports_masking: bool = False

    #: ``compute_mask(inputs, mask=None)``: the mask(s) of the outputs, given the first
    #: argument of the call and the incoming mask. The default passes ``mask`` on when
    #: :attr:`supports_masking`, else returns None; a layer that makes or changes masks
    #: (Embedding, Masking, LSTM, ...) overrides it (and sets ``supports_masking``).
    compute_mask = _masking._default_compute_mask

    def _masked_call(self, fn: Callable, args: tuple, kwargs: dict, margs: tuple,
                     mkwargs: dict) -> tuple[Any, list[Any]]:
        """Run ``fn(*args, **kwargs)`` (this layer's call) inside a model, with the implicit
        masks described by the mirrors ``margs``/``mkwargs``: returns the outputs and one
        mask (or None) per output (``_masking.masked_call``). Layers that need the masks
        differently (MultiHeadAttention, nested models) override it."""
        return _masking.masked_call(self, fn, args, kwargs, margs, mkwargs)

    _masked_call._default_masked_call = True  # type: ignore[attr-defined]  # mask_free

    # ---- symbolic inputs and outputs -------------------------------------------------
    @property
    def input(self) -> Any:
        """The symbolic tensor the layer was first called on in a model's graph (a list of
        them if that call took several), as Keras's ``Layer.input``.

        With ``output``, it picks a part of a model: ``fl.Model(model.input,
        model.get_layer("pool").output)`` gives that layer's features."""
        return self._first_call_tensors("inputs", "input")

    @property
    def output(self) -> Any:
        """The symbolic tensor the layer's first call in a model's graph returned (a list of
        them if it returned several), as Keras's ``Layer.output``."""
        return self._first_call_tensors("outputs", "output")

    def _first_call_tensors(self, which: str, what: str) -> Any:
        node = self.__dict__.get("_first_node")
        if node is None:
            raise AttributeError(f"The layer {self.name!r} has never been called on symbolic "
                                 f"tensors (fastlayers.Input and what layers make of it) and "
                                 f"thus has no defined {what}.")
        tensors = list(getattr(node, which))
        return tensors[0] if len(tensors) == 1 else tensors

    # ---- calling --------------------------------------------------------------------
    def call(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the layer: ``layer(...)`` is ``layer.call(...)`` (see each layer).

        Called with symbolic tensors (``fastlayers.Input`` and what layers make of it), the
        layer records a node of a model's graph and returns symbolic outputs instead.

        Masks: arrays carry no mask, so a direct call gets only the masks passed to it
        (``mask=...``); inside a ``Model`` or ``Sequential`` the implicit masks flow from
        layer to layer as in Keras (docs/semantics.md §22 (Masks)).

        Called again and again with one float32 array of one shape (C-contiguous), or a
        merge layer or ``Concatenate`` with one list of such arrays, the layer skips the
        checks from the third call on where it offers a runner: the same C++ or NumPy call,
        the same bits (docs/architecture.md §14, "Direct layer calls")."""
        direct = self.__dict__.get("_direct")
        if direct is not None and len(args) == 1 and not kwargs:
            # (first: a signature is only ever of ndarrays, never symbolic, and a key is
            # noted only after a call that built the layer)
            x = args[0]
            if (
                self._direct_signature(x) == direct[0] and direct[1] == _layers_epoch[0]
                and direct[2] == _backend._current() and _backend.fast_calls.get()
                and _backend._core is not None
            ):
                run = direct[3]
                return self.call(x) if run is None else run(x)
        self._build_custom(args, kwargs)
        if _symbolic.any_symbolic(args, kwargs):
            out = _symbolic.symbolic_call(self.call, args, kwargs, layer=self, label=self.name)
            if "_first_node" not in self.__dict__:  # (input and output: Keras's first call)
                self.__dict__["_first_node"] = _symbolic.collect(out)[0].node
            self._called_custom()
            return out
        if len(args) != 1 or kwargs:
            out = self.call(*args, **kwargs)
            self._called_custom()
            return out
        x = args[0]
        out = self.call(x)
        self._called_custom()
        self._note_direct_call(x)
        return out

    def _called_custom(self) -> None:
        """A custom layer is built once it has been called, as Keras's (whose default build
        only marks it): a layer without a build of its own, holding layers that its call
        built, then has its weights (set_weights, a file's)."""
        if not self.built and _custom_composite(type(self)):
            self.built = True

    def _note_direct_call(self, x: Any) -> None:
        """After a plain call ``layer(x)`` succeeded: the second call in a row with an array of
        the same shape (float32, C-contiguous, aligned; for a list layer, a list of such arrays
        of the same shapes: :meth:`_direct_signature`), backend and :func:`layers_epoch`
        keeps the layer's runner (:meth:`_offered_runner`) for the calls that follow, so
        that they skip the checks (or the fact that it offers none, so they do not ask
        again). One signature per layer; any other call goes the general way.
        docs/architecture.md §14."""
        signature = self._direct_signature(x)
        if _backend._core is None or not _backend.fast_calls.get() or signature is None:
            return
        backend = _backend._current()
        if backend == "numpy":
            return
        key = (signature, _layers_epoch[0], backend)
        if self.__dict__.get("_direct_seen") != key:
            self.__dict__["_direct_seen"] = key  # (not __setattr__: no config attribute)
            return
        try:
            run = self._offered_runner(x)
        except Exception:  # noqa: BLE001 - a cache: the call itself succeeded
            run = None
        if getattr(run, "returns_view", False):
            run = None  # the runner returns a view where the call may not (Flatten)
        if run is not None and type(x) is not np.ndarray:  # a list layer's runner takes *xs
            run = _spread_list(run)
        self.__dict__["_direct"] = key + (run,)

    def _direct_signature(self, x: Any) -> tuple | None:
        """What a direct call's key holds of its argument (:meth:`_note_direct_call`): the
        shape of an array that the checks hand on as it is (``_checks.unchanged``); for a
        layer that takes a list of inputs (``_list_runner``: the merges, Concatenate), a
        list or tuple of two or more such arrays gives ``("list", shapes)``. Anything else:
        None, and the call takes the checks."""
        if _checks.unchanged(x):
            return x.shape
        if (type(x) is list or type(x) is tuple) and len(x) > 1 and getattr(
                self, "_list_runner", False) and all(_checks.unchanged(a) for a in x):
            return ("list", tuple(a.shape for a in x))
        return None

    def _offered_runner(self, *args: Any, **kwargs: Any) -> Callable | None:
        """:meth:`_runner` for these arguments, or None when a subclass overrides ``call``
        without its own ``_runner``, or ``call`` was replaced on this object (a patch, a spy):
        the runner would skip it."""
        if "call" in self.__dict__:
            return None
        owner = next(c for c in type(self).__mro__ if "_runner" in c.__dict__)
        if type(self).call is not owner.__dict__.get("call", owner.call):
            return None
        return self._runner(*args, **kwargs)


_probing = threading.local()  # .on: Layer.__setattr__ is making a probe layer on this thread

_layers_epoch = [0]  # how many times any layer's weights or public attributes were set


def layers_epoch() -> int:
    """A number that changes whenever any layer's weights are set (build, set_weights,
    loading, unpickling) or a config attribute of a built layer is assigned
    (``activation``, ``strides``, ...): a model's shape plans are valid for one value of
    it. Process-wide: a change anywhere clears every model's plans on its next call."""
    return _layers_epoch[0]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - arrays and odd objects are simply "not the default"
        return False
