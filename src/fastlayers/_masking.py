"""Keras's implicit masks inside models: how a layer call receives them and what it passes on.

Keras 3 attaches a mask to a tensor (``_keras_mask``); ``Layer.__call__``
(keras/src/layers/layer.py) reads the masks of the arguments, hands them to ``call`` and
sets the masks of the outputs. NumPy arrays cannot carry a mask, so fastlayers keeps the
masks beside the arrays, in the model executors (models/functional.py,
models/sequential.py), and runs each layer call through :func:`masked_call`, which does
what ``Layer.__call__`` does (docs/architecture.md §12 (Masks), docs/semantics.md §22
(Masks)):

1. If exactly one argument of the call is a tensor (an array, or a list/tuple/dict of
   them) and ``call`` has a ``mask`` parameter left at None, ``mask`` receives that
   argument's mask, in its structure (a list for Attention's ``[query, value]``). If
   several arguments are tensors, each ``<name>`` whose ``call`` has a ``<name>_mask``
   parameter left at None receives its mask (MultiHeadAttention's query/value/key).
2. The "previous mask" is the ``mask`` keyword so filled (or given), else the mask of the
   first argument.
3. After the call, if the layer's ``supports_masking``, its outputs get
   ``layer.compute_mask(first_argument, previous_mask)`` (flattened over the outputs);
   otherwise their masks are None. Ops that are not layers produce no masks.

The executors describe a call's arguments by a *mirror*: the arguments' structure with
every tensor replaced by a :class:`Leaf` holding its mask, None kept, and anything else
replaced by :data:`NOT_TENSOR`. This module imports nothing else of fastlayers.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np


class Leaf:
    """One tensor in a mirror of a call's arguments: holds the tensor's mask (or None)."""

    __slots__ = ("mask",)

    def __init__(self, mask: Any = None) -> None:
        self.mask = mask

    def __repr__(self) -> str:
        return f"Leaf(mask={'None' if self.mask is None else np.shape(self.mask)})"


class _NotTensor:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_TENSOR"


#: A mirror's stand-in for an argument that is neither a tensor nor None (a flag, a number).
NOT_TENSOR = _NotTensor()

_CONTAINERS = (list, tuple, dict)


def mirror(obj: Any, as_leaf: Callable[[Any], Leaf | None]) -> Any:
    """``obj`` with its containers kept and each leaf x replaced by ``as_leaf(x)`` (a
    :class:`Leaf` for a tensor, None for anything else, which becomes NOT_TENSOR);
    None stays None."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(mirror(o, as_leaf) for o in obj)
    if isinstance(obj, dict):
        return {k: mirror(v, as_leaf) for k, v in obj.items()}
    if obj is None:
        return None
    leaf = as_leaf(obj)
    return NOT_TENSOR if leaf is None else leaf


def array_leaf(x: Any) -> Leaf | None:
    """``as_leaf`` for arrays without masks: a Leaf(None) for an ndarray."""
    return Leaf(None) if isinstance(x, np.ndarray) else None


def masks_of(m: Any) -> Any:
    """The masks in a mirror, in its structure (None for non-tensors)."""
    if isinstance(m, Leaf):
        return m.mask
    if isinstance(m, (list, tuple)):
        return type(m)(masks_of(o) for o in m)
    if isinstance(m, dict):
        return {k: masks_of(v) for k, v in m.items()}
    return None


def flatten(obj: Any) -> list[Any]:
    """The leaves of nested lists/tuples/dicts, None counting as a leaf (Keras's tree)."""
    if isinstance(obj, (list, tuple)):
        return [leaf for o in obj for leaf in flatten(o)]
    if isinstance(obj, dict):
        return [leaf for k in sorted(obj) for leaf in flatten(obj[k])]
    return [obj]


def _is_tensor_arg(m: Any) -> bool:
    """Keras's CallSpec: a tensor, or a non-empty structure whose leaves are tensors or None."""
    if isinstance(m, Leaf):
        return True
    if isinstance(m, _CONTAINERS) and len(m) > 0:
        leaves = flatten(m)
        return all(isinstance(x, Leaf) or x is None for x in leaves)
    return False


def _any_mask(m: Any) -> bool:
    return any(isinstance(x, Leaf) and x.mask is not None for x in flatten(m))


_signatures: dict[Any, inspect.Signature] = {}


def _signature(fn: Callable) -> inspect.Signature:
    key = getattr(fn, "__func__", fn)
    sig = _signatures.get(key)
    if sig is None:
        sig = inspect.signature(fn)
        _signatures[key] = sig
    return sig


def _output_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _spread(masks: Any, n: int) -> list[Any]:
    """Output masks (any structure) as one entry per output, as Keras zips them."""
    if masks is None:
        return [None] * n
    flat = flatten(masks)
    return (flat + [None] * n)[:n]


def first_mask(fn: Callable, margs: tuple, mkwargs: dict) -> Any:
    """The mask of the first argument of a call, from its mirror (None if unbound)."""
    try:
        bound = _signature(fn).bind(*margs, **mkwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    if not bound.arguments:
        return None
    return masks_of(next(iter(bound.arguments.values())))


def masked_call(layer: Any, fn: Callable, args: tuple, kwargs: dict, margs: tuple,
                mkwargs: dict, run: Callable | None = None) -> tuple[Any, list[Any]]:
    """Call ``fn(*args, **kwargs)`` (a layer's ``call``) as Keras's ``Layer.__call__``
    does with implicit masks; ``margs``/``mkwargs`` mirror the arguments (module
    docstring). ``run`` replaces ``fn`` for the call itself (same signature).

    Returns the outputs and a list with one mask (or None) per output.
    """
    run = fn if run is None else run
    default_masks = type(layer).compute_mask is _default_compute_mask
    if default_masks and not _any_mask((margs, mkwargs)):
        # No mask comes in and the layer makes none: Keras would hand the call Nones.
        out = run(*args, **kwargs)
        return out, [None] * len(_output_list(out))
    sig = _signature(fn)
    try:
        bound = sig.bind(*margs, **mkwargs)
    except TypeError:  # the call itself reports its wrong arguments
        out = run(*args, **kwargs)
        return out, [None] * len(_output_list(out))
    positional = set(list(sig.parameters)[: len(margs)])
    bound.apply_defaults()
    arguments = bound.arguments
    params = sig.parameters
    tensor_names = [name for name, m in arguments.items() if _is_tensor_arg(m)]
    kwargs = dict(kwargs)

    def fill(name: str, value: Any) -> None:
        if name in params and name not in positional and arguments.get(name) is None:
            kwargs[name] = value

    if len(tensor_names) == 1:
        fill("mask", masks_of(arguments[tensor_names[0]]))
    elif len(tensor_names) > 1:
        for name in tensor_names:
            fill(f"{name}_mask", masks_of(arguments[name]))
    previous = kwargs.get("mask")
    first_value = None
    if previous is None and arguments:
        previous = masks_of(next(iter(arguments.values())))
    real = sig.bind(*args, **kwargs)
    if real.arguments:
        first_value = next(iter(real.arguments.values()))
    out = run(*args, **kwargs)
    n = len(_output_list(out))
    if not layer.supports_masking:
        return out, [None] * n
    return out, _spread(layer.compute_mask(first_value, previous), n)


def _default_compute_mask(self: Any, inputs: Any, mask: Any = None) -> Any:
    """Keras's default: the mask passes through a layer that supports masking."""
    return mask if self.supports_masking else None


def mask_free(layer: Any) -> bool:
    """Whether a call of ``layer`` without incoming masks gives outputs without masks and
    needs no mask work: the default compute_mask and the default ``_masked_call``."""
    cls = type(layer)
    return cls.compute_mask is _default_compute_mask and getattr(
        cls._masked_call, "_default_masked_call", False)
