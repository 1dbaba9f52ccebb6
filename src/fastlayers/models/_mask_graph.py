"""The mask ops Keras records in a functional graph, for the order of ``Model.layers``.

Keras computes implicit masks on symbolic tensors while a functional model is built
(``Layer.__call__`` steps 6 and 7, docs/semantics.md §22): ``compute_mask`` runs Keras ops
(``not_equal``, ``any``, ``logical_or``, ``expand_dims``, ...) that become nodes of the
graph, and a mask handed to a layer's ``mask`` (or ``<name>_mask``) argument makes those
nodes parents of the layer's node. ``keras/src/ops/function.py`` (``map_graph``) orders
the layers by their depth in that graph, mask ops included, so a long mask computation
(a Concatenate's, a Merge's) can put a layer deeper than its data path alone would; that
order is the order of ``get_weights``.

fastlayers computes masks on arrays, when the model runs, so its graph has no such nodes.
This module rebuilds the shape of Keras's mask subgraph (which op reads which tensor or
mask) without computing anything: :func:`mask_parents` gives, for each layer node, the
mask ops Keras would list among its parents. Only the structure matters here, not the
values; the rules follow each Keras layer's ``compute_mask`` (Keras 3.15 sources named
below).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .. import _symbolic as S


class MaskOp:
    """One Keras op of a mask computation: reads ``parents`` (symbolic tensors or other
    MaskOps); ``ndim`` is the rank of the mask it makes."""

    __slots__ = ("parents", "ndim")

    def __init__(self, ndim: int, *parents: Any):
        self.parents = [p for p in parents if p is not None]
        self.ndim = ndim


def _ndim(m: Any) -> int:
    return m.ndim if isinstance(m, MaskOp) else len(m.shape)


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple)):
        return [leaf for x in obj for leaf in _leaves(x)]
    if isinstance(obj, dict):
        return [leaf for k in sorted(obj) for leaf in _leaves(obj[k])]
    return [obj]


def _map(obj: Any, fn: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(x, fn) for x in obj)
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return fn(obj)


def _is_tensor_arg(v: Any) -> bool:
    """Keras's CallSpec: a tensor, or a non-empty structure of tensors (and None)."""
    if isinstance(v, S.SymbolicTensor):
        return True
    if isinstance(v, (list, tuple, dict)) and len(v) > 0:
        leaves = _leaves(v)
        return all(isinstance(x, S.SymbolicTensor) or x is None for x in leaves)
    return False


def _compute_mask(layer: Any, inputs: Any, previous: Any) -> Any:
    """The structure of Keras's ``layer.compute_mask(inputs, previous)`` on symbolic
    tensors: None, a mask that passes through unchanged, or new MaskOps."""
    from .. import layers as L
    from .base import BaseModel

    if isinstance(layer, BaseModel) or not getattr(layer, "supports_masking", False):
        return None  # Keras drops the mask (nested models: supports_masking is False)
    if isinstance(layer, L.Embedding):  # embedding.py: not_equal(inputs, 0)
        return MaskOp(len(inputs.shape), inputs) if layer.mask_zero else None
    if isinstance(layer, L.Masking):  # masking.py: any(not_equal(inputs, v), axis=-1)
        return MaskOp(len(inputs.shape) - 1, MaskOp(len(inputs.shape), inputs))
    if isinstance(layer, L.Concatenate):  # merging/concatenate.py
        masks = list(previous) if isinstance(previous, (list, tuple)) else []
        if not masks or all(m is None for m in masks):
            return None
        parts = []
        for x, m in zip(inputs, masks):
            n = len(x.shape)
            if m is None:  # ones_like(x)
                parts.append(MaskOp(n, x))
            elif _ndim(m) < n:  # logical_or(expand_dims(m, -1), zeros_like(x))
                parts.append(MaskOp(n, MaskOp(_ndim(m) + 1, m), MaskOp(n, x)))
            else:
                parts.append(m)
        joined = MaskOp(max(_ndim(p) for p in parts), *parts)  # concatenate
        return MaskOp(joined.ndim - 1, joined)  # any(axis=-1)
    if isinstance(layer, L.Dot):
        return None
    merges = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
    if isinstance(layer, merges):  # merging/base_merge.py: logical_or, left to right
        masks = list(previous) if isinstance(previous, (list, tuple)) else []
        if not masks or any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = MaskOp(max(_ndim(out), _ndim(m)), out, m)
        return out
    if isinstance(layer, (L.Attention, L.AdditiveAttention)):  # convert_to_tensor(mask[0])
        q = previous[0] if isinstance(previous, (list, tuple)) and previous else None
        return None if q is None else MaskOp(_ndim(q), q)
    if isinstance(layer, (L.LSTM, L.GRU, L.SimpleRNN, L.Bidirectional)):  # rnn.py, bidir..py
        first = next((m for m in _leaves(previous) if m is not None), None)
        if not layer.return_sequences:
            return None
        if isinstance(layer, L.Bidirectional) and layer.merge_mode is None:
            return [first, first]  # one mask for each direction's output
        return first
    if type(layer).compute_mask is not L.Layer.compute_mask and not isinstance(
            layer, (L.TimeDistributed, L.MultiHeadAttention)):
        # A layer whose mask Keras computes with other ops: GlobalAveragePooling1D (none)
        # and the pass-through ones above are the only others.
        return None
    return previous  # Keras's default: the previous mask, unchanged


def _keeps_kwargs(node: S.Node) -> bool:
    """Keras's fast path in ``Layer.__call__`` step 1 (no argument conversion)."""
    if node.kwargs or len(node.args) != 1 or not isinstance(node.args[0], S.SymbolicTensor):
        return False
    return np.dtype(node.args[0].dtype) == np.float32  # every layer computes in float32


def mask_parents(nodes: list[S.Node]) -> dict[int, list[Any]]:
    """For each layer node (by id) in ``nodes`` (in topological order), the parents Keras
    would record for it, in Keras's order: the tensors of its positional arguments, then
    those of its keyword arguments (by name, the implicit masks among them)."""
    masks: dict[int, Any] = {}  # tensor id -> symbolic mask (None, a tensor or a MaskOp)
    parents: dict[int, list[Any]] = {}

    def mask_of(x: Any) -> Any:
        return masks.get(x.id) if isinstance(x, S.SymbolicTensor) else None

    for node in nodes:
        layer = node.layer
        if layer is None:  # ops make no masks
            continue
        kwargs = dict(node.kwargs)
        try:
            sig = inspect.signature(layer.call)
            bound = sig.bind(*node.args, **node.kwargs)
        except (TypeError, ValueError):
            continue
        positional = set(list(sig.parameters)[: len(node.args)])
        bound.apply_defaults()
        arguments = bound.arguments
        tensor_names = [k for k, v in arguments.items() if _is_tensor_arg(v)]

        def fill(name: str, value: Any, sig=sig, arguments=arguments,
                 positional=positional, kwargs=kwargs) -> None:
            if name in sig.parameters and name not in positional and arguments.get(
                    name) is None:
                kwargs[name] = value

        if len(tensor_names) == 1:
            fill("mask", _map(arguments[tensor_names[0]], mask_of))
        else:
            for name in tensor_names:
                fill(f"{name}_mask", _map(arguments[name], mask_of))
        # Keras records the call's own keyword dict in the node, and the implicit masks
        # land in it only when Layer.__call__ did not convert the arguments (step 1
        # makes new dicts): one positional tensor already of the layer's dtype, no
        # keyword arguments. So `lstm(x)` lists x's mask ops as parents, while
        # `Attention()([q, v])` and `MultiHeadAttention()(q, v)` do not.
        recorded = kwargs if _keeps_kwargs(node) else node.kwargs
        parents[id(node)] = [p for p in _leaves(list(node.args)) + _leaves(recorded)
                             if isinstance(p, (S.SymbolicTensor, MaskOp))]
        previous = kwargs.get("mask")
        first = next(iter(arguments.values()), None)
        if previous is None:
            previous = _map(first, mask_of)
        out = _compute_mask(layer, first, previous)
        flat = _leaves(out) if isinstance(out, (list, tuple)) else [out]
        for t, m in zip(node.outputs, flat + [None] * len(node.outputs)):
            masks[t.id] = m
    return parents
