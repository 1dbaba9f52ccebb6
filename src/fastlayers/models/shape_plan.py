"""Shape plans: a model's graph specialized to the input shapes of a call, for the C++ path.

The general executors (``Model._run_with_masks``, ``Sequential._run_with_masks``) run every
node through its layer's or op's public call, which checks every argument on every call:
types, ranks, shapes, the activation name, the weights, the backend. On small inputs those
checks cost more than the arithmetic (the seed's attention model is six nodes on a few
hundred numbers: its kernels take about 10 us, the checks several times that).

A plan is what one general run learned, kept for the calls that would learn it again. After
a general run in which no implicit mask appeared, each node is asked for a *runner*: a
function of arrays alone that makes the C++ call the general path made, with what the
checks computed for these shapes bound in (reshapes, strides, pads, the packed weights, the
activation id). A node that offers none (a NumPy-only layer, a folded pair, a nested model)
keeps its general call in the plan. The plan then serves every later call whose inputs are
arrays of the same dtypes and shapes, C-contiguous and aligned, under the same backend,
with no weights replaced anywhere since: for such a call every check would pass the same
way and compute the same values, so the runners give the same bits as the general path.
Intermediate shapes follow from the input shapes (no layer's output shape depends on
values), and layers whose checks depend on values (Embedding's id range) offer no runner.

Plans are a cache: never pickled, dropped when any layer's weights change
(:func:`fastlayers.layers.base.weights_epoch`), at most :data:`MAX_PLANS` per model (a
model fed many sequence lengths keeps the latest). ``disabled()`` turns them off (tests
compare both executors bit for bit). docs/architecture.md §14.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

from .. import _backend
from .. import _symbolic as S
from ..layers import base as layer_base
from . import folding

MAX_PLANS = 8
_enabled = [True]


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run models with the general executor only inside the block (tests, comparisons)."""
    before = _enabled[0]
    _enabled[0] = False
    try:
        yield
    finally:
        _enabled[0] = before


def signature(arrays: list[Any], dtypes: list[np.dtype]) -> tuple | None:
    """The key of a plan for these model inputs, or None when they cannot use one: each
    must be an ndarray of exactly its input's dtype, C-contiguous and aligned (what the
    input check would hand on unchanged)."""
    if not _enabled[0] or not _backend.core_available() or _backend._current() == "numpy":
        return None
    key = [_backend._current(), layer_base.weights_epoch(), folding._enabled[0]]
    for a, dtype in zip(arrays, dtypes):
        if type(a) is not np.ndarray or a.dtype != dtype:
            return None
        flags = a.flags
        if not (flags.c_contiguous and flags.aligned):
            return None
        key.append(a.shape)
    return tuple(key)


class Plan:
    """The steps of one specialized call: ``steps`` is a list of ``(run, out_ids, many)``
    where ``run(values)`` gives the node's output (a sequence of outputs when ``many``)."""

    __slots__ = ("input_ids", "steps", "output_id")

    def __init__(self, input_ids: list[int], steps: list[tuple[Callable, tuple, bool]]):
        self.input_ids = input_ids
        self.steps = steps
        self.output_id: int | None = None  # a Sequential's result

    def run(self, arrays: list[np.ndarray]) -> dict[int, Any]:
        values = dict(zip(self.input_ids, arrays))
        for run, out_ids, many in self.steps:
            out = run(values)
            if many:
                for i, v in zip(out_ids, out):
                    values[i] = v
            else:
                values[out_ids[0]] = out
        return values


def lookup(model: Any, key: tuple | None) -> Plan | None:
    if key is None:
        return None
    plans = model.__dict__.get("_shape_plans")
    return None if plans is None else plans.get(key)


def store(model: Any, key: tuple, plan: Plan) -> None:
    plans = model.__dict__.setdefault("_shape_plans", {})
    while len(plans) >= MAX_PLANS:
        plans.pop(next(iter(plans)))  # the oldest
    plans[key] = plan


# ------------------------------------------------------------------ steps from a general run


def runner_of(fn: Any, layer: Any, args: tuple, kwargs: dict) -> Callable | None:
    """The runner the layer (``layer._runner``) or the public op (its ``__plan_runner__``)
    offers for a call with these array arguments, or None."""
    if layer is not None:
        return layer._runner(*args, **kwargs)
    factory = getattr(fn, "__plan_runner__", None)
    return None if factory is None else factory(*args, **kwargs)


def _general(node: S.Node) -> Callable[[dict], list]:
    def general(values: dict[int, Any]) -> list:  # the node's public call, checks and all
        return node.run(values)

    return general


def node_step(node: S.Node, values: dict[int, Any], owned: bool) -> tuple[Callable, tuple, bool]:
    """The plan step of a node that ran plainly (no mask): its runner on the tensors it
    reads when it offers one, else its general call. ``values`` holds the arrays of the
    recording run. ``owned``: the node's inputs are none of the model's inputs or outputs,
    so a runner that returns a view of its input (Flatten, Reshape) is allowed."""
    out_ids = tuple(t.id for t in node.outputs)
    many = node.structure is not None
    flat = node._flat
    general = _general(node), out_ids, True
    if flat is None or node.kwargs and node.layer is not None and set(node.kwargs) - {"training"}:
        return general
    args, kwargs = node._arguments(values)
    runner = runner_of(node.fn, node.layer, args, kwargs)
    if runner is None or (getattr(runner, "returns_view", False) and not owned):
        return general
    ids = tuple(a.id for sym, a in flat if sym)
    consts = [None if sym else a for sym, a in flat]
    if ids and len(ids) == len(flat):  # the usual case: every argument is a tensor
        if len(ids) == 1:
            i0 = ids[0]
            return (lambda v: runner(v[i0])), out_ids, many
        return (lambda v: runner(*[v[i] for i in ids])), out_ids, many
    syms = [(sym, a.id if sym else None) for sym, a in flat]

    def run(v: dict[int, Any]) -> Any:
        return runner(*[v[i] if sym else c for (sym, i), c in zip(syms, consts)])

    return run, out_ids, many
