"""The Keras functional API: ``Input``, ``Model(inputs, outputs)``.

A model is the graph of nodes that layers and ops recorded when they were called on
symbolic tensors (fastlayers/_symbolic.py). Calling the model replays those nodes in
order on real arrays: each node runs its layer (or op) on the arrays computed for its
inputs, so the model computes exactly what the same calls would compute one by one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _symbolic as S
from ..layers.base import Layer, _auto_name
from . import _mask_graph, folding, shape_plan
from .base import (
    BaseModel,
    InputLayer,
    _not_the_callers,
    _unpack_single,
    input_masks,
    numbers_only,
)


def Input(shape: Sequence[Any], dtype: Any = None, name: str | None = None,
          batch_size: int | None = None) -> S.SymbolicTensor:  # noqa: N802 - Keras's name
    """A model input: a symbolic tensor of shape ``(batch_size, *shape)``.

    Parameters
    ----------
    shape : tuple of int or None
        The shape of one sample, without the batch axis; None marks a dimension that
        may vary between calls (e.g. a sequence length).
    dtype : dtype, optional
        float32 by default; integer dtypes for inputs such as token ids.
    name : str, optional
        The input's name (used by ``model({"name": array})`` and in ``summary()``).
    batch_size : int, optional
        A fixed batch size, a positive int of at most 2**36 (the size limit, semantics
        §1); None (the default) lets any batch size through.
    """
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"Input: shape must be a tuple of ints or None, got {shape!r}")
    dims = []
    for d in shape:
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer))
                              or d < 0):
            raise ValueError(f"Input: shape must hold non-negative ints or None, got {shape!r}")
        dims.append(None if d is None else int(d))
    layer = InputLayer(shape=tuple(dims), dtype=dtype, name=name, batch_size=batch_size)
    return layer.output


def _fold_plan_step(step: Any, values: dict, out_id: int) -> tuple:
    """The shape-plan step of a node that ran folded: for the producer its fold's guarded
    runner (checks done once) when it offers one, else the step as it ran."""
    if step.fold is not None:
        x = values[step.source]
        runner = step.fold.runner(x)
        if runner is not None:
            run = shape_plan.guarded(runner, (x,))
            src = step.source
            return (lambda v: run(v[src])), (out_id,), False
    return step.run, (out_id,), True


class Model(BaseModel):
    """A model of the Keras functional API.

    ``Model(inputs, outputs)``: ``inputs`` is one symbolic tensor from ``Input``, or a
    list, tuple or dict of them (nested as Keras allows: ``[a, [b, c]]``); ``outputs`` is
    one symbolic tensor or such a structure of them, computed from the inputs by layers
    and fastlayers ops. ``model.inputs`` and ``model.outputs`` list them flat in Keras's
    order (depth first, a dict's entries by sorted key). ``model(x)`` takes arrays in the
    structure of ``inputs`` (or flat in that order) and returns arrays in the structure of
    ``outputs``; one output given in a list or tuple comes back alone, as in Keras 3.

    Example::

        inp = fl.Input(shape=(5, 2))
        seq, h, c = fl.layers.LSTM(8, return_state=True)(inp)
        out = fl.layers.Dense(2)(seq)
        model = fl.Model(inp, [out, h, c])
        out, h, c = model(x)          # x (batch, 5, 2)
    """

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, **kwargs: Any):
        # Keras 3 names functional models "functional", "functional_1", ...
        super().__init__(name=name if name is not None else _auto_name("Functional"), **kwargs)
        self._input_struct = inputs
        self._output_struct = outputs
        self.inputs = _tensor_list(inputs, "inputs")
        self.outputs = _tensor_list(outputs, "outputs")
        for t in self.inputs:
            if not _is_input(t):
                raise ValueError(
                    f"Model: inputs must be tensors made by fastlayers.Input; {t!r} is the "
                    f"output of {t.node.label if t.node else 'nothing known'}"
                )
        nodes = _topological_nodes(self.inputs, self.outputs)
        self._layers, keras_order = _layers_of(self.inputs, self.outputs)
        _refuse_duplicate_names(self._layers, self._owner())
        # run in Keras's order (also an order in which every node follows those it reads):
        # the masks a MultiHeadAttention deletes are then gone for the same readers as there
        ours = {id(n) for n in nodes}
        self._nodes = [n for n in keras_order if id(n) in ours]
        if len(self._nodes) != len(nodes):  # (cannot happen: the same walk from the outputs)
            self._nodes = nodes
        self.built = True

    def __getstate__(self) -> dict[str, Any]:
        """The nodes first, in their order (each after the nodes it reads): pickle then finds
        every node's inputs already written, and its recursion stays as shallow as one node
        however deep the graph. (From the outputs it went back layer by layer, and a graph
        600 layers deep passed Python's recursion limit.)"""
        state = super().__getstate__()
        nodes = state.pop("_nodes")
        # the layers' first calls that are nodes of this graph (Layer.output; a layer drops
        # its own when pickled: it may belong to another graph), put back by __setstate__
        ours = {id(n) for n in nodes}
        firsts = [(n.layer, n) for n in (getattr(layer, "__dict__", {}).get("_first_node")
                                         for layer in {id(n.layer): n.layer for n in nodes
                                                       if n.layer is not None}.values())
                  if n is not None and id(n) in ours]
        return {"_nodes": nodes, **state, "_first_nodes": firsts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        firsts = state.pop("_first_nodes", [])
        super().__setstate__(state)
        self.__dict__.setdefault("_input_struct", self.inputs)  # (pickled before it was kept)
        for layer, node in firsts:
            layer.__dict__.setdefault("_first_node", node)

    def get_config(self) -> dict[str, Any]:
        """A model loaded from a Keras file, JSON or config (``load_model``,
        ``model_from_json``, ``from_config``): the Keras config it was made from (its
        ``layers``, ``input_layers`` and ``output_layers``, which ``Model.from_config`` and
        Keras's own take), under the model's current name, while its layers are those it was
        made with. A model built in code (or one whose layers were renamed since): the name
        only (its graph is not written as a config; a model is copied with ``pickle``, its
        weights with ``get_weights``)."""
        config = self._current_keras_config()
        return {"name": self.name} if config is None else config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """The model of a Keras functional model's config (``keras_model.get_config()``:
        its layers, ``input_layers`` and ``output_layers``), made as ``load_model`` makes
        it, without the weights::

            model = fl.Model.from_config(keras_model.get_config())
            model.set_weights(keras_model.get_weights())

        What cannot be made raises as in ``load_model`` (NotImplementedError, listing it)."""
        if not (isinstance(config, dict) and "layers" in config
                and "input_layers" in config and "output_layers" in config):
            raise ValueError(
                "Model.from_config takes a Keras functional model's config (keras_model."
                "get_config(): its 'layers', 'input_layers' and 'output_layers'); got "
                f"{sorted(config) if isinstance(config, dict) else type(config).__name__}. "
                "A fastlayers Model is copied with pickle.")
        from ..io.keras_config import build_model  # noqa: PLC0415 (io imports models)

        return build_model({"class_name": "Functional", "config": config})

    @property
    def input(self) -> Any:
        """The inputs as the model was made with them (a tensor, a list or a dict), as Keras's
        ``Model.input``."""
        return self._input_struct

    @property
    def output(self) -> Any:
        """The outputs as the model was made with them (a tensor, a list or a dict), as
        Keras's ``Model.output``. ``fl.Model(model.input, model.get_layer(name).output)``
        is the part of the model up to that layer."""
        return self._output_struct

    @property
    def output_names(self) -> list[str]:
        """The names of the layers that make the outputs, in the order of ``outputs``, as
        Keras's ``Model.output_names`` (an op's output: the op's label)."""
        return [t.node.layer.name if t.node.layer is not None else t.node.label
                for t in self.outputs]

    # ---- structure ------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers (each once, ops left out) in the order Keras lists them, which is
        also the order of ``get_weights``."""
        return list(self._layers)

    def _summary_rows(self) -> list[tuple[str, str, int]]:
        rows = []
        for t in self.inputs:
            layer = _input_layer_of(t)
            rows.append((f"{layer.name} (InputLayer)", _shape_str([t.shape]), 0))
        # A layer called more than once (shared) is one row, as in Keras (it was a row per
        # call, each with the layer's parameters, which the total counts once); its output
        # shape "multiple" when its calls' differ, as tf.keras 2 showed it (Keras 3 shows
        # its last call's).
        shapes: dict[int, set[str]] = {}
        for node in self._nodes:
            if node.layer is not None:
                shapes.setdefault(id(node.layer), set()).add(
                    _shape_str([o.shape for o in node.outputs]))
        listed: set[int] = set()
        for node in self._nodes:
            if node.layer is not None:
                if id(node.layer) in listed:
                    continue
                listed.add(id(node.layer))
                label = f"{node.layer.name} ({type(node.layer).__name__})"
                params = node.layer.count_params() if node.layer.built else 0
                seen = shapes[id(node.layer)]
                shape = next(iter(seen)) if len(seen) == 1 else "multiple"
            else:
                label = f"{node.label} (op)"
                params = 0
                shape = _shape_str([o.shape for o in node.outputs])
            rows.append((label, shape, params))
        return rows

    # ---- calling --------------------------------------------------------------------
    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
        """Run the graph on ``inputs``; ``mask`` optionally gives the inputs' Keras masks
        (one per input, in the inputs' order, None for none), as Keras's ``mask=``. One
        output given in a list or tuple (``Model(i, [y])``) comes back alone, as Keras 3
        returns it. ``training`` is accepted as Keras's and ignored (inference)."""
        return _unpack_single(_not_the_callers(self._run_with_masks(inputs, mask)[0], inputs))

    def _run_with_masks(self, inputs: Any, mask: Any = None) -> tuple[Any, list[Any]]:
        """The outputs and their implicit masks (one per output, in ``self.outputs``
        order): the recorded nodes replayed with the masks flowing between them.

        Inputs with the dtypes, shapes and layout of an earlier call run that call's shape
        plan instead (models/shape_plan.py): the same kernels without the checks."""
        record = False
        if mask is None:
            plain = self._plain_inputs(inputs)
            key = shape_plan.signature(plain, self._input_dtypes(),
                                       [len(t.shape) for t in self.inputs]) if plain else None
            plan, record = shape_plan.lookup(self, key)
            if plan is not None:
                try:
                    values = plan.run(plain)
                    return S.substitute(self._output_struct, values), [None] * len(self.outputs)
                except shape_plan.Stale:  # an intermediate unlike the recorded one
                    shape_plan.drop(self, key)
        arrays = self._match_inputs(inputs)
        values: dict[int, Any] = {t.id: a for t, a in zip(self.inputs, arrays)}
        masks: dict[int, Any] = {
            t.id: m for t, m in zip(self.inputs, input_masks(mask, self.inputs, self._owner()))
        }
        steps: list | None = [] if record else None  # a shape plan, being recorded
        reads: list[tuple] = []  # the tensors each recorded step reads
        fresh: set[int] = set()  # tensors that are new arrays made by a runner
        folded = folding.functional_plan(self)  # BatchNormalization folds (models/folding.py)
        through: set[int] = set()  # outputs of the nodes that ran folded (FoldStep.after)
        # Each value is dropped after its last reader (an output is never dropped), so that
        # its memory returns while the call goes on (docs/architecture.md §8).
        left = dict(self._readers())
        for node in self._nodes:
            step = folded.get(id(node))
            if step is not None and (
                step.after in through if step.after is not None
                else all(masks.get(t.id) is None for t in node.inputs)
            ):
                outs = step.run(values)
                through.update(t.id for t in node.outputs)
                for t in node.outputs:
                    masks[t.id] = None
                if steps is not None:
                    steps.append(_fold_plan_step(step, values, node.outputs[0].id))
                    reads.append(tuple(t.id for t in node.inputs))
            else:
                outs = node.run(values, masks)
                if node.layer is not None and node.layer._deletes_input_masks and (
                        getattr(node, "deletes_masks", False)
                        or self.__dict__.get("_deletes_masks")):  # (a pickle of 0.1.0's)
                    # A node read from a Keras 3 file (Node.deletes_masks): Keras's
                    # MultiHeadAttention deletes the masks of its query, value and key tensors
                    # when it runs, so the nodes that read them later see none
                    # (docs/semantics.md §22). (Not in a model built in code: there Keras's
                    # single-argument calls keep the masks they recorded when the graph was
                    # built, which this executor does not trace.)
                    for t in node.layer._mask_deleted_inputs(node.args, node.kwargs):
                        masks[t.id] = None
                if steps is not None:
                    if any(masks.get(t.id) is not None for t in node.outputs):
                        steps = None  # an implicit mask: the general executor's business
                    else:
                        step = shape_plan.node_step(node, values, self._fresh_test(fresh))
                        steps.append(step)
                        reads.append(tuple(t.id for t in node.inputs))
                        if shape_plan.makes_fresh(step[0]):
                            fresh.update(t.id for t in node.outputs)
            for t, v in zip(node.outputs, outs):
                if left.get(t.id, 0) > 0:  # else nothing reads it (an unused state output)
                    values[t.id] = v
            outs = v = None  # the values dict holds what is still read
            for t in node.inputs:
                left[t.id] -= 1
                if left[t.id] == 0:
                    del values[t.id]
                    masks.pop(t.id, None)
        if steps is not None:
            plan = shape_plan.Plan([t.id for t in self.inputs], steps, reads,
                                   keep=[t.id for t in self.outputs])
            shape_plan.store(self, key, plan)
        return S.substitute(self._output_struct, values), [masks[t.id] for t in self.outputs]

    def _plain_inputs(self, inputs: Any) -> list[Any] | None:
        """The inputs as a list in input order when given as one array (one input) or a
        list or tuple of one array per input (also of one: ``model([x])``, as a converted
        PyTorch model calls its inner model), else None (the general path sorts it out;
        signature() refuses entries that are not arrays, such as nested lists of numbers)."""
        if type(inputs) is np.ndarray:
            return [inputs] if len(self.inputs) == 1 else None
        if _is_nested(self.__dict__.get("_input_struct")):
            return None  # the general path flattens them
        if type(inputs) in (list, tuple) and len(inputs) == len(self.inputs):
            return list(inputs)
        return None

    def _input_dtypes(self) -> list[np.dtype]:
        """The Inputs' dtypes (fixed with the graph: computed once, every call reads them)."""
        dtypes = self.__dict__.get("_in_dtypes")
        if dtypes is None:
            dtypes = self.__dict__["_in_dtypes"] = [
                _input_layer_of(t).input_dtype for t in self.inputs
            ]
        return dtypes

    def _fresh_test(self, fresh: set[int]) -> Any:
        """For shape_plan.node_step: whether a tensor is a new array made by a runner, read
        by one node only and not a model output (a view of it cannot alias anything the
        caller sees)."""
        readers = self._readers()
        return lambda tid: tid in fresh and readers.get(tid, 0) == 1

    def _readers(self) -> dict[int, int]:
        """{tensor id: how many nodes read it, a model output counting as one more}
        (fixed with the graph: computed once)."""
        readers = self.__dict__.get("_reader_counts")
        if readers is None:
            readers = {}
            for node in self._nodes:
                for t in node.inputs:
                    readers[t.id] = readers.get(t.id, 0) + 1
            for t in self.outputs:
                readers[t.id] = readers.get(t.id, 0) + 1  # an output counts as a reader
            self.__dict__["_reader_counts"] = readers
        return readers

    def _warn_extra_inputs(self, inputs: dict, names: list[str]) -> None:
        """Entries of a dict of inputs that no input takes (a "label" beside the features)
        are left out with a warning, as Keras leaves them out (it warns for a model made with
        a dict of inputs, and is silent for one made with a list)."""
        extra = [k for k in inputs if k not in names]
        if extra:
            warnings.warn(
                f"{self._owner()}: inputs {extra} are not inputs of the model (its inputs are "
                f"{sorted(names)}) and are left out", stacklevel=2)

    def _match_inputs(self, inputs: Any) -> list[Any]:
        n = len(self.inputs)
        struct = self.__dict__.get("_input_struct")
        if _is_nested(struct) and isinstance(inputs, (list, tuple, dict)):
            # inputs nested as the model's (Model([a, [b]], ...) called on [x, [y]]), a dict
            # by input name, or flat in the order of model.inputs
            names = [_input_layer_of(t).name for t in self.inputs]
            if _matches_structure(inputs, struct):
                arrays = flatten_structure(inputs, "inputs")
            elif isinstance(inputs, dict) and set(names) <= set(inputs):
                self._warn_extra_inputs(inputs, names)
                arrays = [inputs[name] for name in names]
            elif isinstance(inputs, (list, tuple)) and len(inputs) == n and not any(
                    isinstance(i, dict) for i in inputs):
                arrays = list(inputs)
            else:
                raise ValueError(
                    f"{self._owner()}: the inputs must be nested as the model's "
                    f"{_describe_structure(struct)}, or be a dict by input name or a flat "
                    f"list in the order {names}; got {_describe_structure(inputs)}")
        elif isinstance(inputs, dict):
            by_name = {_input_layer_of(t).name: t for t in self.inputs}
            missing = [k for k in by_name if k not in inputs]
            extra = [k for k in inputs if k not in by_name]
            if missing:
                raise ValueError(
                    f"{self._owner()}: inputs by name {sorted(by_name)}; missing {missing}, "
                    f"unknown {extra}"
                )
            self._warn_extra_inputs(inputs, list(by_name))
            arrays = [inputs[_input_layer_of(t).name] for t in self.inputs]
        elif isinstance(inputs, (list, tuple)) and inputs and (n > 1 or not numbers_only(inputs)):
            if n > 1 and isinstance(struct, dict) and list(struct) != sorted(struct):
                # (Keras refuses this too, and takes a list where the dict's keys are sorted:
                # a list is matched in the sorted order, which is not the dict's here)
                raise ValueError(
                    f"{self._owner()}: the model was made with a dict of inputs; pass them as "
                    f"a dict by name {sorted(_input_layer_of(t).name for t in self.inputs)}, "
                    f"not as a {type(inputs).__name__}")
            arrays = list(inputs)  # one entry per input
        else:
            arrays = [inputs]  # one input, as an array or as nested lists of numbers
        if len(arrays) != n:
            raise ValueError(
                f"{self._owner()}: expected {n} inputs "
                f"{[_input_layer_of(t).name for t in self.inputs]}, got {len(arrays)}"
            )
        out = []
        for t, a in zip(self.inputs, arrays):
            out.append(_input_layer_of(t).check(a))
        return out


def _is_input(t: S.SymbolicTensor) -> bool:
    return t.node is not None and isinstance(t.node.layer, InputLayer)


def _input_layer_of(t: S.SymbolicTensor) -> InputLayer:
    return t.node.layer  # type: ignore[return-value]


def _sorted_keys(struct: dict, what: str) -> list:
    try:
        return sorted(struct)
    except TypeError:
        raise TypeError(f"Model: the keys of the {what} dict must be of one kind that "
                        f"sorts (strings), got {list(struct)!r}") from None


def flatten_structure(struct: Any, what: str, _in_dict: bool = False) -> list[Any]:
    """The leaves of nested lists, tuples and dicts in the order of Keras's tree.flatten:
    depth first, a dict's values in the order of its sorted keys. That is the order of
    model.inputs / model.outputs, and so of the layers and of get_weights.

    A dict inside another dict (at any depth) whose keys are not in sorted order is refused:
    Keras's backends order it differently (torch's tree keeps its insertion order, optree's
    sorts it), and a file does not say which backend numbered its outputs."""
    if isinstance(struct, dict):
        keys = _sorted_keys(struct, what)
        if _in_dict and keys != list(struct):
            raise NotImplementedError(
                f"Model: {what} holds a dict inside a dict with keys {list(struct)} not in "
                "sorted order; Keras's backends flatten such a dict in different orders (torch "
                "as inserted, JAX and TensorFlow sorted), so which output is which is "
                "ambiguous. Give its keys in sorted order, or use a list")
        return [leaf for k in keys for leaf in flatten_structure(struct[k], what, True)]
    if isinstance(struct, (list, tuple)):
        return [leaf for item in struct for leaf in flatten_structure(item, what, _in_dict)]
    return [struct]


def _matches_structure(given: Any, struct: Any) -> bool:
    """Whether ``given`` is nested as ``struct`` (the same dict keys and list lengths; any
    value where ``struct`` has a tensor but a dict)."""
    if isinstance(struct, dict):
        return (isinstance(given, dict) and set(given) == set(struct)
                and all(_matches_structure(given[k], struct[k]) for k in struct))
    if isinstance(struct, (list, tuple)):
        return (isinstance(given, (list, tuple)) and len(given) == len(struct)
                and all(_matches_structure(g, s) for g, s in zip(given, struct)))
    return not isinstance(given, dict)


def _describe_structure(struct: Any) -> str:
    """A structure's shape for a message: [x, {'a': x, 'b': [x, x]}]."""
    if isinstance(struct, dict):
        return "{" + ", ".join(f"{k!r}: {_describe_structure(v)}" for k, v in struct.items()) + "}"
    if isinstance(struct, (list, tuple)) and not (struct and all(
            isinstance(v, (int, float)) for v in struct)):
        inner = ", ".join(_describe_structure(v) for v in struct)
        return f"[{inner}]" if isinstance(struct, list) else f"({inner})"
    return "x"


def _is_nested(struct: Any) -> bool:
    """Whether a list, tuple or dict holds another one (Model([a, [b, c]]))."""
    items = struct.values() if isinstance(struct, dict) else struct
    return isinstance(struct, (list, tuple, dict)) and any(
        isinstance(item, (list, tuple, dict)) for item in items)


def _tensor_list(struct: Any, what: str) -> list[S.SymbolicTensor]:
    if not isinstance(struct, (S.SymbolicTensor, list, tuple, dict)):
        raise TypeError(
            f"Model: {what} must be a symbolic tensor, or lists, tuples or dicts of them "
            f"(nested as Keras allows), got {type(struct).__name__}"
        )
    items = flatten_structure(struct, what)
    if not items:
        raise ValueError(f"Model: {what} is empty")
    for t in items:
        if not isinstance(t, S.SymbolicTensor):
            raise TypeError(
                f"Model: every element of {what} must be a symbolic tensor (from "
                f"fastlayers.Input or a layer called on one), got {type(t).__name__}"
            )
    return items


def _topological_nodes(inputs: list[S.SymbolicTensor],
                       outputs: list[S.SymbolicTensor]) -> list[S.Node]:
    """The nodes between inputs and outputs, each after the nodes it depends on: a
    depth-first walk from the outputs, a node listed once its inputs' nodes are (with a
    stack of its own, not Python's: an EfficientNetV2L is 1031 layers deep)."""
    input_ids = {t.id for t in inputs}
    order: list[S.Node] = []
    done: set[int] = set()
    active: set[int] = set()

    def node_of(t: S.SymbolicTensor) -> S.Node | None:
        """The node computing t, or None for one of the model's inputs."""
        if t.id in input_ids:
            return None
        if _is_input(t):
            raise ValueError(
                f"Model: the graph is disconnected: {t.node.layer.name!r} is needed to "
                f"compute the outputs but is not among the model's inputs"
            )
        return t.node

    for t in outputs:
        root = node_of(t)
        if root is None or id(root) in done:
            continue
        stack = [(root, 0)]  # (node, index of the next input to visit)
        active.add(id(root))
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node_of(node.inputs[i])
                if child is None or id(child) in done:
                    continue
                if id(child) in active:  # cannot happen with tensors made once; never loop
                    raise ValueError("Model: the graph has a cycle")
                active.add(id(child))
                stack.append((child, 0))
            else:
                stack.pop()
                active.discard(id(node))
                done.add(id(node))
                order.append(node)
    return order


def _refuse_duplicate_names(layers: list[Layer], owner: str) -> None:
    """Two layers (distinct objects) of one name in a model are refused, as Keras refuses
    them: ``get_layer`` and the weights by name could not tell them apart (two loaded copies
    of one file, nested in one model, gave get_layer the first)."""
    seen: dict[str, int] = {}
    for layer in layers:
        seen[layer.name] = seen.get(layer.name, 0) + 1
    for name, count in seen.items():
        if count > 1:
            raise ValueError(
                f"{owner}: the name {name!r} is used {count} times in the model; all layer "
                f"names must be unique, as in Keras (rename one first: layer.name = "
                f"'{name}_2')")


def _layers_of(inputs: list[S.SymbolicTensor],
               outputs: list[S.SymbolicTensor]) -> tuple[list[Layer], list[S.Node]]:
    """The layers in Keras's order, which fixes the order of ``get_weights``, and the nodes in
    the order Keras runs them.

    Keras (keras/src/ops/function.py, map_graph) walks the graph depth-first from the
    outputs, numbering each operation when it first meets it; the depth of a node is its
    distance from the outputs (the largest, over all paths, and over all calls of a shared
    layer). Operations are listed by decreasing depth, ties by that first-meeting number.
    Keras's graph also holds the ops that computed implicit masks, parents of the layers
    that received them (_mask_graph.py); they count for the depths, so the same walk is
    done here over the data and mask parents. Ops and mask ops are dropped from the list.
    """
    input_ids = {t.id for t in inputs}
    extra = _mask_graph.mask_parents(_topological_nodes(inputs, outputs))
    first_seen: dict[int, int] = {}
    owners: dict[int, Any] = {}
    post_order: list[Any] = []
    finished: set[int] = set()

    def key_of(node: Any) -> int:
        if isinstance(node, _mask_graph.MaskOp):
            return id(node)
        return id(node.layer) if node.layer is not None else id(node)

    def parents_of(node: Any) -> list[Any]:
        if isinstance(node, _mask_graph.MaskOp):
            return node.parents
        return extra.get(id(node), node.inputs)

    def enter(item: Any) -> Any:
        """Number ``item``'s node when first met; (node, the parents to visit) or None."""
        node = item if isinstance(item, _mask_graph.MaskOp) else item.node
        if node is None or id(node) in finished:
            return None
        key = key_of(node)
        owners[key] = None if isinstance(node, _mask_graph.MaskOp) else node.layer
        first_seen.setdefault(key, len(first_seen))
        if isinstance(node, _mask_graph.MaskOp) or item.id not in input_ids:
            return node, list(parents_of(node))
        return node, []

    def node_of(item: Any) -> Any:
        return item if isinstance(item, _mask_graph.MaskOp) else item.node

    for t in outputs:  # depth-first, each node finished after its parents (a stack of its own)
        top = enter(t)
        stack = [] if top is None else [(*top, 0)]
        while stack:
            node, parents, i = stack[-1]
            if i < len(parents):
                stack[-1] = (node, parents, i + 1)
                below = enter(parents[i])
                if below is not None:
                    stack.append((*below, 0))
            else:
                stack.pop()
                finished.add(id(node))
                post_order.append(node)
    node_depth: dict[int, int] = {}
    op_depth: dict[int, int] = {}
    for node in reversed(post_order):
        key = key_of(node)
        depth = max(node_depth.setdefault(id(node), 0), op_depth.get(key, 0))
        op_depth[key] = depth
        node_depth[id(node)] = depth
        for parent in parents_of(node):
            pnode = node_of(parent)
            if pnode is not None and id(pnode) in finished:
                node_depth[id(pnode)] = max(depth + 1, node_depth.get(id(pnode), 0))
    for t in inputs:  # inputs that no output needs still count, first among equals
        key = id(_input_layer_of(t))
        if key not in op_depth:
            owners[key] = _input_layer_of(t)
            op_depth[key] = 0
            first_seen[key] = -1
    order = sorted(op_depth, key=lambda k: (-op_depth[k], first_seen[k]))
    layers = [owners[k] for k in order if owners[k] is not None]
    # The order in which Keras's Functional runs the nodes: by decreasing depth, ties in the
    # order map_graph first set their depths (node_depth's insertion order). It decides which
    # reader of a tensor comes after a MultiHeadAttention that deleted its mask.
    ids = {id(n): n for n in post_order}
    runs = sorted(node_depth, key=lambda i: -node_depth[i])  # (stable: insertion order)
    return layers, [ids[i] for i in runs if not isinstance(ids[i], _mask_graph.MaskOp)]


def _shape_str(shapes: list[tuple]) -> str:
    def one(s: tuple) -> str:
        inner = ", ".join("None" if d is None else str(d) for d in s)
        return f"({inner},)" if len(s) == 1 else f"({inner})"

    return one(shapes[0]) if len(shapes) == 1 else "[" + ", ".join(one(s) for s in shapes) + "]"
