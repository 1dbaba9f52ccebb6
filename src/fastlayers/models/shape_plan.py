"""Shape plans: a model's graph specialized to the input shapes of a call, for the C++ path.

The general executors (``Model._run_with_masks``, ``Sequential._run_with_masks``) run every
node through its layer's or op's public call, which checks every argument on every call:
types, ranks, shapes, the activation name, the weights, the backend. On small inputs those
checks cost more than the arithmetic (the seed's attention model is six nodes on a few
hundred numbers: its kernels take about 10 us, the checks several times that).

A plan is what one general run learned, kept for the calls that would learn it again. The
second time a model sees the same input signature, its general run is recorded: after each
node ran (no implicit mask anywhere), the node is asked for a *runner*, a function of arrays
alone that makes the C++ call the general path made, with what the checks computed for
these shapes bound in (reshapes, strides, pads, the packed weights, the activation id). A
runner is used only if every array it was recorded with was already what the checks hand on
unchanged (a C-contiguous, aligned float32 ndarray; for Embedding, integer indices:
``_runner_array``), and it re-checks the class, dtype, shape, layout and alignment of its
arrays on every call (a few attribute reads): if an intermediate
ever differs (a custom layer whose output depends on values), the plan is dropped and the
call runs the general executor. A folded producer runs as its fold's runner
(``folding.Fold.runner``), the BatchNormalization and fused activation after it as
pass-throughs. A node that offers no runner (a NumPy-only layer, a nested model, a subclass
that overrides ``call``) keeps its general call in the plan.

A plan serves the calls whose inputs are arrays of the same dtypes and shapes, C-contiguous
and aligned, under the same backend, with no layer's weights or config attributes set
anywhere since (:func:`fastlayers.layers.base.layers_epoch`). Plans are a cache: never
pickled, at most :data:`MAX_PLANS` per model, all dropped when the weights, a layer's
config, the backend or folding change; a model whose signatures keep evicting each other
stops recording, and a signature whose plan failed a guard is not recorded again.
``disabled()`` turns plans off in a block (tests compare both executors bit for bit).
docs/architecture.md §14.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

from .. import _backend, _checks
from .. import _symbolic as S
from ..layers import base as layer_base
from . import folding

MAX_PLANS = 16
_F32 = np.dtype(np.float32)
_enabled = _backend.fast_calls  # shared with direct layer and op calls (docs/architecture.md §14)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run models with the general executor, and layers called directly with their checked
    ``call``, only inside the block (tests, comparisons); the block's setting applies to the
    thread or task that entered it."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


class Stale(Exception):
    """A runner met arrays unlike the ones it was recorded with: drop the plan."""


def signature(arrays: list[Any], dtypes: list[np.dtype],
              ranks: list[int | None] | None = None) -> tuple | None:
    """The key of a plan for these model inputs, or None when they cannot use one: each
    must be an ndarray of exactly its input's dtype (and rank, where ``ranks`` gives it: an
    array of another rank is adjusted by the input check, Keras's squeeze or expand, which a
    plan would skip), C-contiguous and aligned (what the input check would hand on
    unchanged)."""
    if not _enabled.get() or not _backend.core_available():
        return None
    backend = _backend._current()
    if backend == "numpy":
        return None
    key = [backend, layer_base.layers_epoch(), folding._enabled.get()]  # the cache's "context"
    for i, (a, dtype) in enumerate(zip(arrays, dtypes)):
        if type(a) is not np.ndarray or a.dtype != dtype:
            return None
        if ranks is not None and ranks[i] is not None and a.ndim != ranks[i]:
            return None
        flags = a.flags
        if not (flags.c_contiguous and flags.aligned):
            return None
        key.append(a.shape)
    return tuple(key)


class Plan:
    """The steps of one specialized call: ``steps`` is a list of ``(run, out_ids, many)``
    where ``run(values)`` gives the node's output (a sequence of outputs when ``many``).

    ``reads`` (one tuple of tensor ids per step: what its ``run`` reads) and ``keep`` (the
    ids the caller takes from the result: the model's outputs) let a run drop each tensor
    after the last step that reads it, so that its array is freed while the call goes on:
    the next layers' outputs then reuse memory that is still in cache, where a call that
    held every intermediate to its end wrote each output into memory last touched a whole
    call earlier (docs/performance.md §12)."""

    __slots__ = ("input_ids", "steps", "output_id", "frees", "_run_steps")

    def __init__(self, input_ids: list[int], steps: list[tuple[Callable, tuple, bool]],
                 reads: list[tuple] | None = None, keep: Any = ()):
        self.input_ids = input_ids
        self.steps = steps
        self.output_id: int | None = None  # a Sequential's result
        self.frees = None if reads is None else _last_uses(input_ids, steps, reads, set(keep))
        drops = self.frees or [()] * len(steps)
        # What run() walks: (run, the output id or the ids, many, the ids to drop after it).
        self._run_steps = [(run, out_ids if many else out_ids[0], many, drop)
                           for (run, out_ids, many), drop in zip(steps, drops)]

    def run(self, arrays: list[np.ndarray]) -> dict[int, Any]:
        """The values of the kept tensors (of every tensor when the plan has no ``reads``);
        raises :class:`Stale` if a runner's guard failed."""
        values = dict(zip(self.input_ids, arrays))
        for run, out_id, many, drop in self._run_steps:
            if many:
                outs = run(values)
                if len(outs) != len(out_id):  # a layer whose output count changed
                    raise Stale
                for i, v in zip(out_id, outs):
                    values[i] = v
                outs = v = None
            else:
                values[out_id] = run(values)
            for i in drop:  # the values dict holds what is still read
                del values[i]
        return values


def _last_uses(input_ids: list[int], steps: list[tuple], reads: list[tuple],
               keep: set[int]) -> list[tuple]:
    """For each step, the tensors to drop after it: those it reads or makes that no later
    step reads and the caller does not keep."""
    last: dict[int, int] = {i: -1 for i in input_ids}
    for k, ((_, out_ids, _), ids) in enumerate(zip(steps, reads)):
        for i in ids:
            last[i] = k
        for i in out_ids:
            last[i] = k
    frees: list[list[int]] = [[] for _ in steps]
    for i, k in last.items():
        if i not in keep and k >= 0:
            frees[k].append(i)
    return [tuple(f) for f in frees]


# ------------------------------------------------------------------- the cache on a model


def lookup(model: Any, key: tuple | None) -> tuple[Plan | None, bool]:
    """(the plan for ``key`` or None, whether to record one on this call): a signature is
    recorded the second time it is seen, and not at all once the model's plans have
    evicted each other more than ``2 * MAX_PLANS`` times (its shapes keep changing)."""
    if key is None:
        return None, False
    cache = model.__dict__.get("_shape_plans")
    if cache is None or cache["context"] != key[:3]:
        # New weights, layer config, backend or folding setting: every plan is stale. Start
        # afresh (not evictions: a model whose weights change keeps recording).
        cache = {"context": key[:3], "plans": {}, "seen": {}, "evicted": 0, "failed": set()}
        model.__dict__["_shape_plans"] = cache
    plan = cache["plans"].get(key)
    if plan is not None:
        return plan, False
    if cache["evicted"] > 2 * MAX_PLANS or key in cache["failed"]:
        return None, False
    seen = cache["seen"]
    if key in seen:
        return None, True
    if len(seen) >= 4 * MAX_PLANS:
        seen.clear()
    seen[key] = True
    return None, False


def store(model: Any, key: tuple, plan: Plan) -> None:
    cache = model.__dict__.get("_shape_plans")
    if cache is None:
        return
    plans = cache["plans"]
    while len(plans) >= MAX_PLANS:
        try:
            plans.pop(next(iter(plans)), None)  # the oldest; another thread may race us
        except (StopIteration, RuntimeError):
            break
        cache["evicted"] += 1
    plans[key] = plan


def drop(model: Any, key: tuple) -> None:
    """A guard failed: forget the plan and never record this signature again (its
    intermediates vary with the values). The nodes the plan ran before the failure run
    again in the general executor: a custom layer's side effects happen twice on that
    one call."""
    cache = model.__dict__.get("_shape_plans")
    if cache is not None:
        cache["plans"].pop(key, None)
        cache["failed"].add(key)


def plans_of(model: Any) -> dict:
    """The model's plans by key (for tests and inspection)."""
    cache = model.__dict__.get("_shape_plans")
    return {} if cache is None else cache["plans"]


# ------------------------------------------------------------------ steps from a general run


def runner_of(fn: Any, layer: Any, args: tuple, kwargs: dict,
              taken: tuple | None = None) -> Callable | None:
    """The runner the layer (``layer._runner``) or the public op (its ``__plan_runner__``)
    offers for a call with these arguments, or None. The runner is called with the same
    positional arguments, the arrays changed for each call's. ``taken``: the positions that
    hold arrays (default all), each of which must be one the checks hand on unchanged; the
    others are an op's constants, the same on every call, passed only to a factory marked
    ``binds_constants`` (it takes them as the op does, converting what needs converting).
    A layer subclass that overrides ``call`` without its own ``_runner`` gets none: the
    runner would skip the override."""
    if taken is None:
        taken = tuple(range(len(args)))
    if not all(_runner_array(layer, args[k]) for k in taken):
        return None
    if layer is not None:
        return layer._offered_runner(*args, **kwargs) if len(taken) == len(args) else None
    factory = getattr(fn, "__plan_runner__", None)
    if factory is None or len(taken) != len(args) and not getattr(factory, "binds_constants",
                                                                  False):
        return None
    return factory(*args, **kwargs)


def _runner_array(layer: Any, a: Any) -> bool:
    """Whether a runner may be recorded with the array ``a``: one the checks hand on
    unchanged (C-contiguous aligned float32), or, for a layer whose inputs are indices
    (``_runner_takes_indices``: Embedding), a C-contiguous aligned ndarray of an integer
    dtype (its runner checks the values on every call)."""
    if _checks.unchanged(a):
        return True
    return (getattr(layer, "_runner_takes_indices", False) and type(a) is np.ndarray
            and a.dtype.kind in "iu" and a.flags.c_contiguous and a.flags.aligned)


def _unlike(x: Any, shape: tuple, dtype: np.dtype = _F32) -> bool:
    """Whether x is not what a runner was recorded with: a C-contiguous aligned ndarray of
    this shape and dtype (float32 but for the indices of _runner_array). (A misaligned view
    from a custom layer would make a C++ runner raise where the general call copies.)"""
    if x.__class__ is not np.ndarray or x.shape != shape or x.dtype != dtype:
        return True
    flags = x.flags
    return not (flags.c_contiguous and flags.aligned)


def guarded(runner: Callable, args: tuple) -> Callable:
    """``runner`` that first checks its array arguments are of the class, dtype, shape and
    layout they had when it was recorded (raises :class:`Stale` otherwise)."""
    shapes = tuple(a.shape for a in args)
    dtypes = tuple(a.dtype for a in args)
    if len(args) == 1:
        shape0, dtype0 = shapes[0], dtypes[0]

        def run1(x: Any) -> Any:
            if _unlike(x, shape0, dtype0):
                raise Stale
            return runner(x)

        run1.returns_view = getattr(runner, "returns_view", False)  # type: ignore[attr-defined]
        return run1

    def run(*xs: Any) -> Any:
        for x, shape, dtype in zip(xs, shapes, dtypes):
            if _unlike(x, shape, dtype):
                raise Stale
        return runner(*xs)

    run.returns_view = getattr(runner, "returns_view", False)  # type: ignore[attr-defined]
    return run


def _general(node: S.Node) -> Callable[[dict], list]:
    def general(values: dict[int, Any]) -> list:  # the node's public call, checks and all
        return node.run(values)

    return general


def node_step(node: S.Node, values: dict[int, Any],
              fresh: Callable[[int], bool]) -> tuple[Callable, tuple, bool]:
    """The plan step of a node that ran plainly (no mask): its guarded runner on the tensors
    it reads when it offers one, else its general call. ``values`` holds the arrays of the
    recording run. ``fresh(tensor_id)``: whether that tensor is a new array that only this
    node reads and that is no model output, so that a runner returning a view of it
    (Flatten) cannot make an output share memory with an input or another output."""
    out_ids = tuple(t.id for t in node.outputs)
    many = node.structure is not None
    flat = node._flat
    general = _general(node), out_ids, True
    if isinstance(node.structure, S.Nested):
        return general  # a runner would return the nesting: the node's call flattens it
    if node.kwargs and node.layer is not None and set(node.kwargs) - {"training"}:
        return general
    if flat is None:
        # A merge layer's [x1, x2, ...]: its runner takes the arrays as its arguments.
        flat = _list_argument(node)
        if flat is None:
            return general
        args = tuple(values[a.id] for _, a in flat)
        taken = tuple(range(len(args)))
        runner = node.layer._offered_runner(list(args), **node.kwargs) if all(
            _checks.unchanged(a) for a in args) else None
    else:
        args, kwargs = node._arguments(values)
        # The arrays among the arguments (tensors, and constants that are arrays) are guarded;
        # an op's other constants (numbers, None, strings) are passed as they are.
        taken = tuple(k for k, (sym, a) in enumerate(flat) if sym or isinstance(a, np.ndarray))
        runner = runner_of(node.fn, node.layer, args, kwargs, taken)
    if runner is None:
        return general
    if getattr(runner, "returns_view", False) and not all(fresh(a.id) for sym, a in flat if sym):
        return general
    ids = tuple(a.id for sym, a in flat if sym)
    if ids and len(ids) == len(flat):  # the usual case: every argument is a tensor
        run = guarded(runner, args)
        if len(ids) == 1:
            i0 = ids[0]
            return (lambda v: run(v[i0])), out_ids, many
        return (lambda v: run(*[v[i] for i in ids])), out_ids, many
    refs = [(sym, a.id if sym else a) for sym, a in flat]
    # the tensors' recorded shapes and dtypes (constants never change)
    shapes = [(k, args[k].shape, args[k].dtype) for k in taken if flat[k][0]]

    def run_mixed(v: dict[int, Any]) -> Any:
        full = [v[a] if sym else a for sym, a in refs]
        for k, shape, dtype in shapes:
            if _unlike(full[k], shape, dtype):
                raise Stale
        return runner(*full)

    return run_mixed, out_ids, many


def _list_argument(node: S.Node) -> tuple | None:
    """``((True, tensor), ...)`` for a layer that takes a list of inputs (a merge layer,
    Concatenate: ``_list_runner``) called on one list or tuple of tensors alone
    (``Add()([x, y])``); its runner takes those arrays as its arguments. Else None."""
    if (node.layer is None or not getattr(node.layer, "_list_runner", False)
            or len(node.args) != 1 or not isinstance(node.args[0], (list, tuple))):
        return None
    items = node.args[0]
    if not items or not all(isinstance(a, S.SymbolicTensor) for a in items):
        return None
    return tuple((True, a) for a in items)


def is_runner_step(run: Callable) -> bool:
    """Whether a recorded step runs a runner (not a node's general call)."""
    return getattr(run, "__name__", "") != "general"


def makes_fresh(run: Callable | None) -> bool:
    """Whether a runner returns a new array (the C++ calls do), not a view of its input:
    a view runner after it cannot alias anything the caller sees."""
    return run is not None and is_runner_step(run) and not getattr(run, "returns_view", False)
