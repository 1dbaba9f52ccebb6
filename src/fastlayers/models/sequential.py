"""``Sequential``: a plain stack of layers, each called on the output of the one before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _masking
from .. import _symbolic as S
from ..layers.base import Layer
from . import folding, shape_plan
from .base import BaseModel, InputLayer, _not_the_callers, input_masks, numbers_only
from .functional import _shape_str

_F32 = np.dtype(np.float32)


class Sequential(BaseModel):
    """A stack of layers: ``Sequential([Dense(8, activation="relu"), Dense(2)])``.

    The list may start with ``fastlayers.Input(shape)`` (or an ``InputLayer``); then the
    output shapes are known at once and ``summary()`` works before the first call.
    Otherwise the layers are built by the first call, as in Keras.
    """

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None,
                 **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self._stack: list[Layer] = []
        self._input: InputLayer | None = None
        self._outputs: list[S.SymbolicTensor] = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or, first of all, an Input)."""
        if isinstance(layer, S.SymbolicTensor) and layer.node is not None and isinstance(
            layer.node.layer, InputLayer
        ):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._input is not None or self._stack:
                raise ValueError(f"{self._owner()}: an Input can only be the first entry")
            self._input = layer
            self._outputs = [layer.output]
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{self._owner()}: add expects a fastlayers layer, got {type(layer).__name__}"
            )
        if any(other is not layer and other.name == layer.name for other in self._stack):
            raise ValueError(
                f"{self._owner()}: the name {layer.name!r} is already the name of a layer of "
                f"this model; all layer names must be unique, as in Keras (rename one first: "
                f"layer.name = '{layer.name}_2')")
        declared = layer.__dict__.get("_declared_input_shape")
        if declared is not None and self._input is None and not self._stack:
            # Dense(4, input_shape=(5,)) first: the model's Input, as Keras 3 makes it
            self.add(InputLayer(declared))
        self._stack.append(layer)
        self.__dict__.pop("_shape_plans", None)  # plans of the shorter stack
        if self._outputs:
            out = layer(self._outputs[-1])
            if not isinstance(out, S.SymbolicTensor):
                raise ValueError(
                    f"{self._owner()}: every layer of a Sequential model must return one "
                    f"tensor; {layer.name!r} returns {len(out)}"
                )
            self._outputs.append(out)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # the layers' calls on the Input's tensor, in order (Layer.output; a layer drops its
        # own first call when pickled)
        for t in self._outputs[1:]:
            t.node.layer.__dict__.setdefault("_first_node", t.node)

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the input (as Keras lists them for Sequential)."""
        return list(self._stack)

    @property
    def inputs(self) -> list[S.SymbolicTensor]:
        """The Input's tensor in a list (empty without an Input), as a Model's."""
        return [self._input.output] if self._input is not None else []

    @property
    def input(self) -> S.SymbolicTensor:
        """The Input's tensor (``model.inputs[0]``); an AttributeError without an Input.
        Keras 3 has this only for functional models (Keras 2 had it for Sequential too)."""
        return self._only(self.inputs, "input")

    @property
    def output(self) -> S.SymbolicTensor:
        """The last layer's symbolic output (``model.outputs[0]``); an AttributeError without
        an Input."""
        return self._only(self.outputs, "output")

    def _only(self, tensors: list[S.SymbolicTensor], what: str) -> S.SymbolicTensor:
        if not tensors:
            raise AttributeError(f"{self._owner()} has no {what}: it has no Input (give it "
                                 "fastlayers.Input(shape) first, an input_shape, or build it)")
        return tensors[0]

    @property
    def outputs(self) -> list[S.SymbolicTensor]:
        """The last layer's symbolic output in a list (empty without an Input)."""
        return self._outputs[-1:] if self._input is not None and self._stack else []

    def pop(self, rebuild: bool = True) -> Layer:
        """Remove and return the last layer (Keras's ``pop``; ``rebuild`` is accepted as
        Keras's: the outputs are always those of the remaining layers)."""
        if not self._stack:
            raise ValueError(f"{self._owner()}: pop on a model without layers")
        layer = self._stack.pop()
        if len(self._outputs) > len(self._stack) + 1:
            self._outputs.pop()
        self.__dict__.pop("_shape_plans", None)  # plans of the longer stack
        return layer

    @property
    def built(self) -> bool:  # type: ignore[override]
        return all(layer.built for layer in self._stack)

    @built.setter
    def built(self, value: bool) -> None:
        pass  # derived from the layers

    def call(self, x: Any, mask: Any = None, training: Any = None) -> Any:
        """Run the layers in turn on ``x``; ``mask`` optionally gives the Keras mask of
        ``x``, which flows from layer to layer with the implicit masks. ``training`` is
        accepted as Keras's and ignored (inference)."""
        return _not_the_callers(self._run_with_masks(x, mask)[0], x)

    def build(self, input_shape: Any = None) -> None:
        """Build the layers for inputs of ``input_shape`` (the batch axis first, as Keras's
        ``build``), as starting the list with ``Input(input_shape[1:])`` would: weights, and
        the output shapes for ``summary()``."""
        if input_shape is None:
            raise ValueError(f"{self._owner()}: build needs an input_shape (batch axis first)")
        shape = tuple(input_shape)
        if len(shape) < 1:
            raise ValueError(f"{self._owner()}: build needs the batch axis and a sample's "
                             f"shape, got {input_shape!r}")
        if self._input is not None:
            if tuple(self._input.shape[1:]) != shape[1:]:
                raise ValueError(f"{self._owner()}: built already for inputs of shape "
                                 f"{self._input.shape}, got build({input_shape!r})")
            return
        stack = self._stack
        self._stack = []
        try:
            self.add(InputLayer(shape[1:]))
            for layer in stack:
                self.add(layer)
        except Exception:
            self._stack, self._input, self._outputs = stack, None, []  # as before the call
            raise

    def get_config(self) -> dict[str, Any]:
        """The name and the layers (``{"class_name", "config"}`` each, an Input first when
        the model has one), as Keras's; ``Sequential.from_config`` rebuilds the model
        without its weights. A model loaded from a Keras file, JSON or config: the Keras
        config it was made from, under the model's current name, while its layers are those
        it was made with (after ``pop`` or ``add``, or a layer renamed: its own config)."""
        config = self._current_keras_config()
        if config is not None:
            return config
        layers = ([self._input] if self._input is not None else []) + self._stack
        return {"name": self.name,
                "layers": [{"class_name": type(x).__name__, "config": x.get_config()}
                           for x in layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """The model of ``config``: its own ``get_config()``, or a Keras Sequential's
        (``keras_model.get_config()``, made as ``load_model`` makes it), without the
        weights (``set_weights`` sets them)."""
        config = dict(config)
        entries = config.get("layers")
        if entries is None:
            raise ValueError("Sequential.from_config: the config has no 'layers' (a config of "
                             "Sequential.get_config)")
        from ..io.keras_config import build_model  # noqa: PLC0415 (io imports models)

        if isinstance(entries, list) and any(isinstance(e, dict) and "module" in e
                                             for e in entries):
            # Keras's serialized layers ({"module", "class_name", "config", ...})
            return build_model({"class_name": "Sequential", "config": config})
        try:
            return cls._from_own_config(config)
        except (TypeError, ValueError) as own:
            # a Keras config written without "module" entries (tf.keras 2): Keras's reading
            try:
                return build_model({"class_name": "Sequential", "config": config})
            except Exception:  # noqa: BLE001 (neither reading: the first error is the one)
                raise own from None

    @classmethod
    def _from_own_config(cls, config: dict[str, Any]) -> Sequential:
        """from_config of a config of Sequential.get_config."""
        from .. import layers as L  # noqa: PLC0415 (the layer classes, by class name)

        config = dict(config)
        entries = config.pop("layers")
        made = []
        for entry in entries:
            if isinstance(entry, Layer):
                made.append(entry)
                continue
            name = entry.get("class_name") if isinstance(entry, dict) else None
            klass = InputLayer if name == "InputLayer" else (
                cls if name == "Sequential" else getattr(L, str(name), None))
            if not (isinstance(klass, type) and issubclass(klass, Layer)):
                raise ValueError(f"Sequential.from_config: unknown layer class {name!r} (a "
                                 "fastlayers layer's config; Keras's configs load with "
                                 "fastlayers.load_model)")
            try:
                made.append(klass.from_config(entry["config"]))
            except TypeError as e:
                raise ValueError(f"Sequential.from_config: {name} of {entry['config']!r:.80}: "
                                 f"{e} (a fastlayers config; Keras's models load with "
                                 "fastlayers.load_model)") from None
        return cls(made, **config)

    def __repr__(self) -> str:
        return f"Sequential(name={self.name!r}, layers={[x.name for x in self._stack]})"

    def _run_with_masks(self, x: Any, mask: Any = None) -> tuple[Any, list[Any]]:
        """The output and its implicit mask (in a one-element list).

        An input with the dtype, shape and layout of an earlier call runs that call's shape
        plan instead (models/shape_plan.py): the same kernels without the checks."""
        if isinstance(x, (list, tuple)) and x and not numbers_only(x):
            # Its one input given in a list, [x] or (x,), as Keras's Sequential and Model
            # take it (it read as one array with a leading axis of 1: a wrong shape, or a
            # wrong result without an Input); a list of several inputs is refused as Keras
            # does. A list of numbers (NumPy scalars too), or of lists of numbers, is one
            # input, as Model reads it (base.numbers_only).
            if len(x) > 1:
                raise ValueError(f"{self._owner()}: takes one input, got a {type(x).__name__} "
                                 f"of {len(x)} inputs")
            x = x[0]
        record = False
        if mask is None and type(x) is np.ndarray:
            dtype = _F32 if self._input is None else self._input.input_dtype
            key = shape_plan.signature([x], [dtype], [None if self._input is None
                                                      else len(self._input.shape)])
            plan, record = shape_plan.lookup(self, key)
            if plan is not None:
                try:
                    return plan.run([x])[plan.output_id], [None]
                except shape_plan.Stale:  # an intermediate unlike the recorded one
                    shape_plan.drop(self, key)
        if self._input is not None:
            x = self._input.check(x)
        if mask is not None:
            (mask,) = input_masks(mask, [x], self._owner())
        # A shape plan being recorded: one step per layer run, reading the id of its input.
        steps: list | None = [] if record else None
        cur = 0
        fresh = False  # the current x is a new array made by a runner (views of it are safe)
        folded = folding.sequential_plan(self)  # BatchNormalization folds (models/folding.py)
        skip = 0  # the BatchNormalization (and fused activation) after a folded producer
        for i, layer in enumerate(self._stack):
            x_in = x
            if skip:
                skip -= 1  # its input is normalized already; no mask came in or goes out
                continue
            elif i in folded and mask is None:
                x = folded[i](x)  # the producer with the BatchNormalization folded in
                skip = folded[i].span - 1
                step = folded[i]
                if steps is not None:  # its runner, the checks done once, for the plan
                    runner = step.runner(x_in)
                    step = step if runner is None else shape_plan.guarded(runner, (x_in,))
                fresh = False
            elif mask is None and _masking.mask_free(layer):
                # No mask comes in and none can come out: what _masked_call would do, less
                # its bookkeeping (one None per output).
                layer._build_custom((x,), {})  # (a custom layer's own build, first)
                x = layer.call(x)
                if isinstance(x, (list, tuple)) and len(x) != 1:
                    mask = [None] * len(x)
                    steps = None
                step = None
                if steps is not None:
                    step = shape_plan.runner_of(None, layer, (x_in,), {})
                    if step is not None and getattr(step, "returns_view", False) and not fresh:
                        step = None
                fresh = shape_plan.makes_fresh(step)
                step = layer.call if step is None else shape_plan.guarded(step, (x_in,))
            else:
                mask_in = mask
                layer._build_custom((x,), {})
                x, out_masks = layer._masked_call(
                    layer.call, (x,), {}, (_masking.Leaf(mask),), {}
                )
                mask = out_masks[0] if len(out_masks) == 1 else out_masks
                if mask_in is not None or any(m is not None for m in out_masks):
                    steps = None  # masks: the general executor's business
                step = layer.call  # no mask in or out (as a Model's plan runs such a node)
                fresh = False
            if steps is not None:
                steps.append((lambda v, f=step, j=cur: f(v[j]), (cur + 1,), False))
                cur += 1
        if steps is not None:
            plan = shape_plan.Plan([0], steps, [(j,) for j in range(cur)], keep=[cur])
            plan.output_id = cur
            shape_plan.store(self, key, plan)
        return x, [mask]

    def _summary_rows(self) -> list[tuple[str, str, int]]:
        if not self._outputs:
            if not self.built:
                raise ValueError(
                    f"{self._owner()}: summary() needs the output shapes; start the list with "
                    "fastlayers.Input(shape) or call the model once"
                )
            return [(f"{x.name} ({type(x).__name__})", "?", x.count_params())
                    for x in self._stack]
        return [
            (f"{x.name} ({type(x).__name__})", _shape_str([t.shape]), x.count_params())
            for x, t in zip(self._stack, self._outputs[1:])
        ]
