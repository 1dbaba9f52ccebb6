"""Keras activations by name: ``fastlayers.activations.relu(x)``, ``get("gelu")``.

Each function converts x to float32 and returns a float32 array of the same
shape. ``softmax``, ``log_softmax``, ``sparsemax`` and ``glu`` act along an axis
(the last by default); the others are elementwise. Definitions follow Keras 3:
``gelu`` is the exact erf form (``gelu_tanh`` is the tanh approximation),
``leaky_relu`` has slope 0.2, ``hard_sigmoid`` is clip(x/6 + 1/2, 0, 1).

The elementwise ones and ``softmax`` run on the C++ kernels (threaded, the same ones that
Dense and Conv2D fuse; docs/performance.md §8) when the compiled core is there, else in
NumPy (``fastlayers.use_backend("numpy")`` asks for NumPy); ``log_softmax``, ``sparsemax``
and ``glu`` run in NumPy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import _backend
from . import _validation as V
from ._cpp import activations as _cpp_act
from ._numpy import activations as _np_act

NAMES = tuple(sorted(_np_act.ACTIVATIONS))


def get(name) -> Callable[[np.ndarray], np.ndarray]:
    """The activation function for a Keras name (None means linear), or a callable as is."""
    key = V.activation(name, "activations.get", "name")
    return key if callable(key) else globals()[key]


def _run_elementwise(name, x, impl):
    """``impl(x)`` (NumPy) or the core's kernel for activation ``name`` on float32 array x."""
    op = f"activations.{name}"
    served = _cpp_act.fused_id(name) is not None  # no core: no ids
    if _backend.resolve(op, None if served else "not implemented in C++ yet") == "cpp":
        return _cpp_act.activate(x, name)
    return impl(x)


# The parameters Keras's functions take, fixed here at Keras's defaults (a string activation
# means them, as keras.activations.get does; docs/semantics.md §2).
_FIXED = {
    "relu": "negative_slope=0, no max_value, threshold=0",
    "leaky_relu": "negative_slope=0.2",
    "elu": "alpha=1", "celu": "alpha=1",
    "gelu": "approximate=False, the exact erf form; gelu_tanh is the tanh one",
    "hard_shrink": "threshold=0.5", "soft_shrink": "threshold=0.5",
    "squareplus": "b=4",
}


def _elementwise(name):
    impl = _np_act.ACTIVATIONS[name]

    def fn(x):
        a = V.array(x, f"activations.{name}", "x")  # may be the caller's memory (a view)
        y = _run_elementwise(name, a, impl)
        # A new array on both paths, never the caller's (linear's NumPy form is the identity).
        return y.copy() if np.may_share_memory(a, y) else y

    fn.__name__ = fn.__qualname__ = name
    fixed = f" With Keras's defaults: {_FIXED[name]}." if name in _FIXED else ""
    fn.__doc__ = (f"Keras ``{name}`` activation, elementwise: float32 array in, same shape "
                  f"out.{fixed} (docs/semantics.md §2)")
    return fn


def _along_axis(name):
    impl = _np_act.ACTIVATIONS[name]

    def fn(x, axis=-1):
        op = f"activations.{name}"
        x = V.array(x, op, "x")
        V.min_rank(x, op, "x", 1)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int, got {type(axis).__name__}")
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"{op}: axis {axis} is out of range for an input of rank {x.ndim}")
        if name == "glu" and x.shape[axis] % 2:
            raise ValueError(f"{op}: the size of axis {axis} must be even, got shape {x.shape}")
        reason = None if name == "softmax" else "not implemented in C++ yet"
        if _backend.resolve(op, reason) == "cpp":  # the core's row kernel
            return _cpp_act.softmax(x, axis)
        return impl(x, axis=axis)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Keras ``{name}`` activation along ``axis`` (default the last)."
    return fn


for _name in NAMES:
    globals()[_name] = (
        _along_axis(_name) if _name in _np_act.ROW_ACTIVATIONS else _elementwise(_name)
    )


def gelu_tanh(x):
    """GELU, tanh approximation (``keras.ops.gelu``'s default ``approximate=True``)."""
    x = V.array(x, "activations.gelu_tanh", "x")
    return _run_elementwise("gelu_tanh", x, _np_act.gelu_tanh)


__all__ = ["get", "NAMES", "gelu_tanh", *NAMES]
