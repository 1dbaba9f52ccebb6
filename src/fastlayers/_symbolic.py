"""Symbolic tensors: what flows between layers while a functional model is defined.

``fastlayers.Input(shape)`` returns a :class:`SymbolicTensor`. A layer or a functional op
called with one (anywhere in its arguments, also inside lists, tuples and dicts) does not
compute anything: it records a :class:`Node` - the callable, its arguments with the
symbolic tensors in them, and the symbolic outputs - and returns the outputs. A
``Model(inputs, outputs)`` later replays the recorded nodes on real arrays.

Output shapes are found by running the callable once on zeros, with every unknown
dimension (None: the batch, a variable sequence length) set to 2, and once more with it
set to 3 when there is any: a dimension that differs between the two runs is unknown in
the output too. This also builds the layers (creates their weights), as calling a Keras
layer on a Keras tensor does. The layers whose zero runs would cost real work on large
known sizes (Dense, the convolutions, 2D pooling, upsampling, Concatenate) compute their
output shape
instead (``Layer._symbolic_output_shape``), when the only unknown dimension is the batch;
they build themselves as the zero run would.

When a model runs, :meth:`Node.run` can also carry Keras's implicit masks from node to
node (``_masking``; docs/architecture.md §12 (Masks)).

This module imports nothing else of fastlayers but ``_masking`` (which imports nothing),
so that layers and ops can use it.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Callable

import numpy as np

from . import _masking

_ids = itertools.count()

# The end of the error of a call that fails for every size tried for its unknown dimensions
# (symbolic_call); from_torch, whose users make no Input, says it in its own words.
UNKNOWN_SIZES_HINT = "give Input the fixed sizes you know"


def _keras_binary(name: str) -> tuple:
    """The operator and its reflected form (``x + 1``, ``1 + x``) recording the Keras op
    ``name`` (SymbolicTensor._op)."""
    def op(self: Any, other: Any) -> Any:
        return self._op(name, self, other)

    def reflected(self: Any, other: Any) -> Any:
        return self._op(name, other, self)

    return op, reflected


class SymbolicTensor:
    """A placeholder for an array inside a model definition.

    Attributes
    ----------
    shape : tuple
        The shape with None for unknown dimensions (the batch, variable lengths).
    dtype : numpy.dtype
        The dtype of the values (float32 unless an Input says otherwise).
    name : str
        A readable name: the input's name, or the producing layer's name.
    node : Node or None
        The node that produces this tensor (None for a model input).
    index : int
        Which output of ``node`` this is.
    mult : tuple or None
        For each unknown dimension, how many times the batch size it is (a converted
        PyTorch model's batch and heads merged into one axis, (B * H, T, d), has 12 there for
        12 heads), or 0 where it is no multiple of it (2B - 1 rows); None: once, for all.
        (Read it with ``_mult``: a tensor pickled before it existed has none.)
    """

    __slots__ = ("shape", "dtype", "name", "node", "index", "id", "mult")

    def __init__(self, shape: tuple, dtype: Any, name: str, node: Node | None, index: int = 0,
                 mult: tuple | None = None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.node = node
        self.index = index
        self.id = next(_ids)
        self.mult = mult if mult is not None and any(k != 1 for k in mult) else None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype.name} name={self.name!r}>"

    def __len__(self) -> int:
        raise TypeError(
            "a symbolic tensor has no length: it stands for arrays that a model computes "
            "later; call the model on real arrays to get values"
        )

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            f"{self!r} is symbolic (from fastlayers.Input): it has no values. Use it in "
            "layers and fastlayers ops to define a Model, then call the model on arrays."
        )

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} is symbolic: it has no truth value")

    def __iter__(self) -> Any:  # (not by __getitem__ with 0, 1, 2, ... without end)
        raise TypeError(f"{self!r} is symbolic: it cannot be iterated; index it (x[:, 0])")

    # Arithmetic, indexing and @ on symbolic tensors, as on Keras's KerasTensors: each records
    # the op Keras records for it (io/keras_ops.py: Keras's dtype rules, a Python int weak
    # against an int tensor), or fastlayers.matmul; docs/semantics.md §29. (No == or !=: a
    # tensor compares by identity, as the graph code needs.)
    __array_ufunc__ = None  # np.float32(2) * x: NumPy defers to x.__rmul__

    def _op(self, name: str, *args: Any) -> Any:
        from .io.keras_ops import keras_op  # noqa: PLC0415 (keras_ops imports this module)

        # A NumPy scalar operand as the Python number it holds: weak, as Keras takes it (an
        # int32 tensor times np.int64(2) stays int32).
        args = tuple(a.item() if isinstance(a, np.generic) else a for a in args)
        return symbolic_call(keras_op, (name, {}, *args), {}, label=name.lower())

    __add__, __radd__ = _keras_binary("Add")
    __sub__, __rsub__ = _keras_binary("Subtract")
    __mul__, __rmul__ = _keras_binary("Multiply")
    __truediv__, __rtruediv__ = _keras_binary("TrueDivide")
    __pow__, __rpow__ = _keras_binary("Power")

    def __neg__(self) -> Any:
        return self._op("Negative", self)

    def __abs__(self) -> Any:
        return self._op("Absolute", self)

    def __matmul__(self, other: Any) -> Any:
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return _matmul(other, self)

    def __getitem__(self, key: Any) -> Any:
        from .functional import _item_key, get_item  # noqa: PLC0415

        _item_key(key)  # (a bad key's error before the node is recorded)
        return get_item(self, key)


def _matmul(a: Any, b: Any) -> Any:
    """``a @ b`` of symbolic tensors, as Keras's (keras_ops.keras_matmul)."""
    from .io.keras_ops import keras_matmul  # noqa: PLC0415 (keras_ops imports this module)

    return keras_matmul(a, b)


class Node:
    """One recorded call: ``fn(*args, **kwargs)`` with symbolic tensors among the arguments.

    ``layer`` is the layer (or model) that was called, or None for a functional op, whose
    function is then ``fn``. ``inputs`` lists the symbolic tensors found in the arguments,
    in order; ``outputs`` the symbolic tensors it returned; ``structure`` says whether
    the call returned one array (None), a list or tuple of them (``list``, ``tuple``), or a
    nesting of dicts, lists and tuples (a :class:`Nested`: a converted PyTorch module that
    returns a HuggingFace ``ModelOutput`` returns a dict). ``deletes_masks`` is set on the
    MultiHeadAttention calls read from a Keras 3 file, which delete their inputs' implicit
    masks when they run, as Keras 3's do (docs/semantics.md §22); it belongs to the node, so
    a model built over a loaded model's tensors (feature extraction) keeps it.
    """

    __slots__ = ("fn", "layer", "args", "kwargs", "inputs", "outputs", "structure", "label",
                 "_flat", "deletes_masks")

    def __init__(self, fn: Callable, layer: Any, args: tuple, kwargs: dict, label: str):
        self.fn = fn
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.inputs = collect(args, kwargs)
        self.outputs: list[SymbolicTensor] = []
        self.structure: type | Nested | None = None
        self.label = label
        self._flat = _flat_plan(args, kwargs)
        self.deletes_masks = False

    def _arguments(self, values: dict[int, Any]) -> tuple[tuple, dict]:
        """The call's arguments with each symbolic tensor replaced by its value."""
        flat = self._flat
        if flat is not None:  # the common case: tensors only as direct positional arguments
            return tuple(values[a.id] if sym else a for sym, a in flat), self.kwargs
        return substitute(self.args, values), substitute(self.kwargs, values)

    def run(self, values: dict[int, Any], masks: dict[int, Any] | None = None) -> list[Any]:
        """Call ``fn`` with each symbolic argument replaced by ``values[tensor.id]``.

        With ``masks`` (tensor id -> implicit mask or None), a layer's call receives the
        masks of its arguments and the masks of the outputs are stored there
        (``Layer._masked_call``); an op's outputs get no mask, as in Keras.
        """
        args, kwargs = self._arguments(values)
        if masks is None or self.layer is None or (
            _masking.mask_free(self.layer) and _no_mask(masks, self.inputs)
        ):  # no mask comes in and none can come out: a plain call
            # An op's arguments are arrays now: call the op itself, past symbolic_op's check
            # for symbolic arguments (the node keeps the public op, which pickles by name).
            out = getattr(self.fn, "__wrapped_op__", self.fn)(*args, **kwargs)
            out_masks = None
        else:
            def as_leaf(x: Any) -> _masking.Leaf | None:
                if isinstance(x, SymbolicTensor):
                    return _masking.Leaf(masks.get(x.id))
                return _masking.array_leaf(x)

            out, out_masks = self.layer._masked_call(
                self.fn, args, kwargs, _masking.mirror(self.args, as_leaf),
                _masking.mirror(self.kwargs, as_leaf),
            )
        structure = self.structure
        if structure is None:
            outs = [out]
        elif structure.__class__ is Nested:
            outs = structure.flatten(out, self.label)
        else:
            outs = list(out)
        if masks is not None:
            for i, t in enumerate(self.outputs):
                masks[t.id] = None if out_masks is None or i >= len(out_masks) else out_masks[i]
        return outs


def _no_mask(masks: dict[int, Any], tensors: list[SymbolicTensor]) -> bool:
    for t in tensors:
        if masks.get(t.id) is not None:
            return False
    return True


def _flat_plan(args: tuple, kwargs: dict) -> tuple | None:
    """``((is_symbolic, arg), ...)`` when the symbolic tensors of a call are all direct
    positional arguments (none inside a container, none among the keyword arguments), so
    that :meth:`Node.run` can substitute them without walking the structure; else None."""
    if not isinstance(args, tuple) or collect(kwargs):
        return None
    plan = []
    for a in args:
        if isinstance(a, SymbolicTensor):
            plan.append((True, a))
        elif isinstance(a, _CONTAINERS) and collect(a):
            return None
        else:
            plan.append((False, a))
    return tuple(plan)


def _walk(obj: Any, fn: Callable[[Any], Any]) -> Any:
    """obj with every leaf x replaced by fn(x), through lists, tuples and dicts."""
    if isinstance(obj, SymbolicTensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_walk(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _walk(v, fn) for k, v in obj.items()}
    return obj


def collect(*objs: Any) -> list[SymbolicTensor]:
    """The symbolic tensors inside objs (nested lists, tuples, dicts), in order, once each."""
    found: dict[int, SymbolicTensor] = {}

    def visit(t: SymbolicTensor) -> SymbolicTensor:
        found.setdefault(t.id, t)
        return t

    for obj in objs:
        _walk(obj, visit)
    return list(found.values())


_CONTAINERS = (list, tuple, dict)


def any_symbolic(args: tuple, kwargs: dict) -> bool:
    """Whether a symbolic tensor appears anywhere in the arguments of a call.

    Every op call goes through this, so the common case (arrays and scalars only) costs a
    type check per argument and nothing more.
    """
    for obj in args:
        cls = obj.__class__
        if cls is SymbolicTensor or (cls in _CONTAINERS and collect(obj)):
            return True
    if kwargs:
        for obj in kwargs.values():
            cls = obj.__class__
            if cls is SymbolicTensor or (cls in _CONTAINERS and collect(obj)):
                return True
    return False


def substitute(obj: Any, values: dict[int, Any]) -> Any:
    """obj with every symbolic tensor t replaced by values[t.id]."""
    return _walk(obj, lambda t: values[t.id])


def _concrete(shape: tuple, fill: int, mult: tuple | None = None) -> tuple:
    """``shape`` with each unknown dimension ``fill`` times its multiple of the batch."""
    return tuple((fill * ((mult[i] or 1) if mult else 1)) if d is None else d
                 for i, d in enumerate(shape))


def _mult(t: SymbolicTensor) -> tuple | None:
    return getattr(t, "mult", None)


class Nested:
    """The structure of a call's outputs that are not one array nor a flat list or tuple of
    arrays: dicts, lists and tuples nested, arrays (and None) at the leaves. ``template`` is
    that structure with each array replaced by its index in the flat list of outputs."""

    __slots__ = ("template",)

    def __init__(self, template: Any):
        self.template = template

    def __getstate__(self) -> Any:
        return self.template

    def __setstate__(self, template: Any) -> None:
        self.template = template

    @staticmethod
    def of(out: Any) -> tuple[list[Any], Nested]:
        """The leaves of ``out`` in order (dicts in their keys' order) and its structure."""
        leaves: list[Any] = []

        def walk(obj: Any) -> Any:
            if isinstance(obj, dict):
                return {k: walk(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [walk(v) for v in obj]
            if isinstance(obj, tuple):  # a named tuple too: rebuilt as a plain tuple
                return tuple(walk(v) for v in obj)
            if obj is None:
                return None
            leaves.append(obj)
            return len(leaves) - 1

        return leaves, Nested(walk(out))

    def flatten(self, out: Any, label: str) -> list[Any]:
        """The leaves of ``out``, which must have this structure (else a ValueError)."""
        leaves: list[Any] = []

        def walk(tmpl: Any, obj: Any) -> None:
            if isinstance(tmpl, dict):
                if not isinstance(obj, dict) or list(obj) != list(tmpl):
                    raise ValueError(self._changed(label, obj))
                for k, v in tmpl.items():
                    walk(v, obj[k])
            elif isinstance(tmpl, (list, tuple)):
                if not isinstance(obj, (list, tuple)) or len(obj) != len(tmpl):
                    raise ValueError(self._changed(label, obj))
                for t, o in zip(tmpl, obj):
                    walk(t, o)
            elif tmpl is None:
                if obj is not None:
                    raise ValueError(self._changed(label, obj))
            else:
                leaves.append(obj)

        walk(self.template, out)
        return leaves

    def _changed(self, label: str, obj: Any) -> str:
        return (f"{label}: returned {type(obj).__name__} where the model recorded the "
                f"structure {self.template!r} (indices of its outputs)")

    def __call__(self, leaves: list[Any]) -> Any:
        """The structure with its leaves put back."""
        def walk(tmpl: Any) -> Any:
            if tmpl is None:
                return None
            if isinstance(tmpl, int):
                return leaves[tmpl]
            if isinstance(tmpl, dict):
                return {k: walk(v) for k, v in tmpl.items()}
            return type(tmpl)(walk(v) for v in tmpl)

        return walk(self.template)


def _as_outputs(out: Any, label: str) -> tuple[list[np.ndarray], type | Nested | None]:
    if isinstance(out, dict) or (
        isinstance(out, (list, tuple))
        and any(o is None or isinstance(o, (list, tuple, dict)) for o in out)
    ):
        arrays, structure = Nested.of(out)
    elif isinstance(out, (list, tuple)):
        arrays, structure = list(out), type(out)
    else:
        arrays, structure = [out], None
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(
                f"{label}: a layer or op used in a model must return arrays, got "
                f"{type(a).__name__}"
            )
    return arrays, structure


def _layer_output_shape(layer: Any, args: tuple, kwargs: dict) -> tuple | None:
    """The output shape a layer computes for a call on one float32 symbolic tensor (or a list
    of them), known but for the batch (None: run it on zeros instead, which also reports
    what is wrong)."""
    if layer is None or kwargs or len(args) != 1:
        return None
    arg = args[0]
    offered = getattr(layer, "_offered_output_shape", None)
    if offered is None:
        return None
    if isinstance(arg, SymbolicTensor):
        tensors, shape = [arg], arg.shape
    elif (
        layer._symbolic_list_input and isinstance(arg, list) and arg
        and all(isinstance(t, SymbolicTensor) for t in arg)
    ):
        tensors, shape = arg, [t.shape for t in arg]  # a merging layer's list of inputs
    else:
        return None
    # (Reshape: a -1 of unknown sizes; its output is float32 for any input dtype)
    unknown_ok = getattr(layer, "_symbolic_unknown_ok", False)
    for t in tensors:
        if len(t.shape) < 2 or (t.dtype != np.float32 and not unknown_ok) or (
                any(d is None for d in t.shape[1:]) and not unknown_ok):
            return None
    try:
        out = offered(shape)
    except (ValueError, TypeError):
        return None  # the zero run raises it again, with the context of the call
    from ._checks import MAX_ELEMENTS  # (here: this module imports only _masking at load)

    if out is None or math.prod(2 if d is None else d for d in out) > MAX_ELEMENTS:
        return None  # too large: the zero run says so, as before
    return tuple(out)


def symbolic_call(fn: Callable, args: tuple, kwargs: dict, *, layer: Any = None,
                  label: str) -> Any:
    """Record ``fn(*args, **kwargs)`` as a node and return its symbolic outputs.

    ``label`` names the layer or op in errors and in the names of the outputs.
    """
    node = Node(fn, layer, args, kwargs, label)
    shape = _layer_output_shape(layer, args, kwargs)
    if shape is not None:
        # a layer keeps the batch axis: its multiple of the batch too
        firsts = {(_mult(t) or (1,))[0] for t in node.inputs}
        mult = (firsts.pop(),) + (1,) * (len(shape) - 1) if len(firsts) == 1 else None
        node.outputs = [SymbolicTensor(shape, np.dtype(np.float32), label, node, 0, mult)]
        return node.outputs[0]
    has_unknown = any(d is None for t in node.inputs for d in t.shape)

    def zeros(t: SymbolicTensor, fill: int) -> np.ndarray:
        # A fixed size beyond what the ops accept (Input(shape=(2**36,)), a batch_shape of
        # 2**40 in a model file) is refused here by name, before NumPy tries to allocate it.
        from ._checks import allocating, elements

        # (at least at fill 2: the retry at fill 1 below must not let a size refused at 2
        # through at half of it; the larger fills are checked as they are)
        what = f"the input of shape {t.shape}"
        elements(math.prod(_concrete(t.shape, max(fill, 2), _mult(t))), label, what)
        with allocating(label, what):
            return np.zeros(_concrete(t.shape, fill, _mult(t)), t.dtype)

    kept = _kept_states(layer)

    def run(fill: int) -> tuple[list[np.ndarray], type | None]:
        values = {t.id: zeros(t, fill) for t in node.inputs}
        try:
            return _as_outputs(fn(*substitute(args, values), **substitute(kwargs, values)),
                               label)
        finally:
            for owner, states in kept:  # the zero runs leave a stateful RNN's states as
                owner.__dict__["states"] = states  # they were (zeros, or none yet)

    # a layer built by this call (its weights made for the sizes of the zero run), and the
    # unbuilt layers inside it (a Bidirectional's, a nested model's)
    builds = layer is not None and has_unknown and not getattr(layer, "built", True)
    fresh = _unbuilt_parts(layer) if builds else []
    try:
        arrays, structure = run(2)
        fill = 2
    except (ValueError, TypeError) as first:
        if not has_unknown:
            raise
        # An unknown dimension that must match a fixed one of size 1 (a single key, say), or
        # be larger than a window (a valid convolution's kernel): try 1, 8 and 16 before
        # giving up, and report the error of the first attempt if they all fail.
        for fill in (1, 8, 16):
            try:
                arrays, structure = run(fill)
                break
            except (ValueError, TypeError):
                continue
        else:
            # Unknown sizes that are not equal (a batch and a multiple of it): the op's own
            # rule for its output, if it has one (``op.__symbolic_output__(*args, **kwargs)``
            # -> (shape, dtype), a list of those for an op returning a tuple, or None).
            hook = getattr(fn, "__symbolic_output__", None)
            out = None if hook is None else hook(*args, **kwargs)
            if out is not None:
                several = isinstance(out, list)
                specs = list(out) if several else [out]
                node.structure = tuple if several else None
                node.outputs = [
                    SymbolicTensor(shape, dtype, f"{label}:{i}" if several else label, node, i)
                    for i, (shape, dtype) in enumerate(specs)]
                return tuple(node.outputs) if several else node.outputs[0]
            got = ", ".join(str(t.shape) for t in node.inputs)
            message = (f"{first} (while calling {label} on symbolic inputs of shapes {got}; "
                       f"unknown dimensions were tried as 2, 1, 8 and 16: {UNKNOWN_SIZES_HINT})")
            try:
                again = type(first)(message)
            except TypeError:  # an exception class whose constructor takes other arguments
                again = (ValueError if isinstance(first, ValueError) else TypeError)(message)
            raise again from first
    out_shapes = [list(a.shape) for a in arrays]
    dtypes = [a.dtype for a in arrays]
    if has_unknown:
        # Dimensions that follow an unknown input dimension change with it: run again with
        # another size and mark those that moved as unknown. If the second size is refused,
        # every dimension equal to the fill is taken as unknown.
        # With an unknown size beyond the batch, a third, larger one catches what two
        # neighbouring ones miss: a pooling window of 2 gives 1 for both 2 and 3 inputs (a
        # third run that fails is not used).
        try:
            again, _ = run(fill + 1)
        except (ValueError, TypeError):
            again = None
            # (the layer, or a layer it holds: a custom layer without a build of its own
            # is marked built only after its call)
            if builds and any(getattr(part, "built", False) for part in fresh):
                _refuse_weights_of_unknown_sizes(fresh, node, label, run, fill)
        later = None
        if again is not None and any(d is None for t in node.inputs for d in t.shape[1:]):
            try:
                later, _ = run(fill + 7)
            except (ValueError, TypeError):
                later = None

        mults = [[1] * len(s) for s in out_shapes]

        def differs(other, i, k, d):
            return (len(other) <= i or len(other[i].shape) != len(out_shapes[i])
                    or other[i].shape[k] != d)

        for i, shape in enumerate(out_shapes):
            for k, d in enumerate(shape):
                moved = again is None or differs(again, i, k, d) or (
                    later is not None and differs(later, i, k, d))
                if moved and (again is not None or d == fill):
                    shape[k] = None
                    # k times the batch (fill) at both sizes: k; any other size that moves
                    # (2B - 1, B * B) has no multiple: 0
                    whole = (again is not None and d % fill == 0
                             and not differs(again, i, k, d // fill * (fill + 1)))
                    mults[i][k] = d // fill if whole else 0
    else:
        mults = [[1] * len(s) for s in out_shapes]
    out_shapes = [tuple(s) for s in out_shapes]
    node.structure = structure
    node.outputs = [
        SymbolicTensor(s, dt, label if len(out_shapes) == 1 else f"{label}:{i}", node, i,
                       tuple(mults[i]))
        for i, (s, dt) in enumerate(zip(out_shapes, dtypes))
    ]
    if structure is None:
        return node.outputs[0]
    return structure(node.outputs)


def _parts(layer: Any) -> list[Any]:
    """``layer`` and the layers inside it (a wrapper's, a nested model's), each once."""
    parts, stack, seen = [], [layer], set()
    while stack:
        part = stack.pop()
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        parts.append(part)
        subs = getattr(part, "_sublayers", None)
        if callable(subs):
            stack.extend(subs())
    return parts


def _kept_states(layer: Any) -> list[tuple[Any, Any]]:
    """(layer, its states) of the stateful RNNs in ``layer`` (itself, a Bidirectional's or a
    nested model's layers): the zero runs of a symbolic call must not change them. A stateful
    layer with weights started its first real call in a model from the zero run's states, and
    one in a model of open batch size kept the zero run's batch of 2 (a concurrency audit)."""
    return [(part, part.__dict__["states"]) for part in _parts(layer)
            if getattr(part, "stateful", False) is True
            and "states" in getattr(part, "__dict__", {})]


def _unbuilt_parts(layer: Any) -> list[Any]:
    """The unbuilt layers in ``layer`` (itself, a wrapper's, a nested model's layers; not
    the models themselves, whose graphs stay): those a symbolic call builds."""
    return [part for part in _parts(layer)
            if not getattr(part, "built", True) and not hasattr(part, "_weight_layers")]


def _refuse_weights_of_unknown_sizes(fresh: list[Any], node: Node, label: str,
                                     run: Callable[[int], Any], fill: int) -> None:
    """A layer that this symbolic call built, and that then failed at another size of the
    unknown dimensions: if, its layers (``fresh``) built anew at that size, it runs, it
    depends on an unknown dimension (Dense or LSTM on an unknown last axis, inside a wrapper
    or a nested model too) and was built for a placeholder size: refused, as Keras refuses
    it, with those layers left unbuilt. Otherwise they are rebuilt at ``fill`` and the call
    goes on."""
    for part in fresh:
        part._unbuild()
    try:
        run(fill + 1)
    except (ValueError, TypeError):
        for part in fresh:
            part._unbuild()
        run(fill)  # (it ran at fill before)
        return
    weighted = any(getattr(part, "_weight_values", None) for part in fresh)
    for part in fresh:
        part._unbuild()
    got = ", ".join(str(t.shape) for t in node.inputs)
    what = "its weights depend on" if weighted else "it needs the size of"
    raise ValueError(
        f"{label}: {what} an input dimension that is unknown (None) in the input shapes "
        f"{got}; {UNKNOWN_SIZES_HINT} (the last axis of a Dense or LSTM input, the channels "
        "of a convolution's)")


def symbolic_op(fn: Callable) -> Callable:
    """Decorator for a functional op: called with a symbolic tensor anywhere in its
    arguments, the op records a node (as a layer would) instead of computing."""
    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        if any_symbolic(args, kwargs):
            # The node keeps the public op (not fn), so that a model pickles it by name: this
            # op, or the function that wraps it under its name (__public__, as
            # fastlayers.activations' usual-call paths do).
            return symbolic_call(getattr(op, "__public__", op), args, kwargs,
                                 label=fn.__name__)
        return fn(*args, **kwargs)

    op.__wrapped_op__ = fn  # type: ignore[attr-defined]
    return op
