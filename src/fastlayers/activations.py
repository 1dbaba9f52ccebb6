"""Keras activations by name: ``fastlayers.activations.relu(x)``, ``get("gelu")``.

Each function converts x to float32 and returns a float32 array of the same
shape. ``softmax``, ``log_softmax``, ``sparsemax`` and ``glu`` act along an axis
(the last by default); the others are elementwise. Definitions follow Keras 3:
``gelu`` is the exact erf form (``gelu_tanh`` is the tanh approximation),
``leaky_relu`` has slope 0.2, ``hard_sigmoid`` is clip(x/6 + 1/2, 0, 1). As in
``keras.activations``, the functions take Keras's parameters too (``relu(x,
negative_slope=0.0, max_value=None, threshold=0.0)``, ``leaky_relu(x, negative_slope=0.2)``,
``elu``/``celu`` ``alpha``, ``gelu`` ``approximate``, the shrinks' ``threshold``,
``squareplus`` ``b``; and ``threshold(x, threshold, default_value)``).

The elementwise ones and ``softmax`` run on the C++ kernels (threaded, the same ones that
Dense and Conv2D fuse; docs/performance.md §8) when the compiled core is there, else in
NumPy (``fastlayers.use_backend("numpy")`` asks for NumPy); ``log_softmax``, ``sparsemax``
and ``glu`` run in NumPy.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import numpy as np

from . import _backend, _symbolic
from . import _checks as C
from . import _validation as V
from ._cpp import activations as _cpp_act
from ._numpy import activations as _np_act
from ._numpy import normalization as _np_norm

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


# The parameters Keras's functions take, in Keras's order, with Keras's defaults (a string
# activation means the defaults, as keras.activations.get does; docs/semantics.md §2).
_PARAMS = {
    "relu": (("negative_slope", 0.0), ("max_value", None), ("threshold", 0.0)),
    "leaky_relu": (("negative_slope", 0.2),),
    "elu": (("alpha", 1.0),), "celu": (("alpha", 1.0),),
    "gelu": (("approximate", False),),
    "hard_shrink": (("threshold", 0.5),), "soft_shrink": (("threshold", 0.5),),
    "squareplus": (("b", 4.0),),
}


def _bind(name, args, kwargs):
    """The parameters of activation ``name`` from a call's extra arguments (Keras's names,
    positional in Keras's order), checked: finite reals (max_value may be None), gelu's
    ``approximate`` a bool."""
    op = f"activations.{name}"
    spec = _PARAMS.get(name, ())
    if len(args) > len(spec):
        plural = "s" if spec else ""
        raise TypeError(f"{op} takes {len(spec) + 1} positional argument{plural} (x"
                        + "".join(f", {k}" for k, _ in spec) + f"), got {len(args) + 1}")
    values = dict(spec)
    positional = {key for (key, _), _ in zip(spec, args)}
    for (key, _), value in zip(spec, args):
        values[key] = value
    for key, value in kwargs.items():
        if key not in values:
            known = ", ".join(k for k, _ in spec) or "none"
            raise TypeError(f"{op}: unexpected argument {key!r} (its parameters: {known})")
        if key in positional:
            raise TypeError(f"{op}: got {key!r} twice")
        values[key] = value
    for key, value in values.items():
        if key == "approximate":
            values[key] = C.flag(value, op, key)
        elif value is not None or key != "max_value":
            v = C.real_scalar(value, op, key)
            if not np.isfinite(v):
                raise ValueError(f"{op}: {key} must be finite, got {v}")
            values[key] = v
    return values


def _with_parameters(name, x, p):
    """Activation ``name`` at parameters ``p`` other than Keras's defaults: the core's kernel
    where they name another activation it has (relu with max_value 6 is relu6, with slope 0.2
    leaky_relu; gelu approximate is gelu_tanh), else the NumPy formula at those values."""
    if name == "gelu":
        return _run_elementwise("gelu_tanh", x, _np_act.gelu_tanh)
    if name == "relu":
        slope, top, t = p["negative_slope"], p["max_value"], p["threshold"]
        named = _np_norm.relu_activation_name(slope, top, t)  # (the ReLU layer's rule)
        if named is not None:
            return _run_elementwise(named, x, _np_act.ACTIVATIONS[named])
        return _np_norm.relu(x, slope, top, t)
    if name == "leaky_relu":
        return _np_norm.leaky_relu(x, p["negative_slope"])
    if name in ("elu", "celu"):
        return _np_act.ACTIVATIONS[name](x, p["alpha"])
    if name in ("hard_shrink", "soft_shrink"):
        return _np_act.ACTIVATIONS[name](x, p["threshold"])
    return _np_act.squareplus(x, p["b"])


def _elementwise(name):
    impl = _np_act.ACTIVATIONS[name]
    spec = _PARAMS.get(name, ())
    defaults = dict(spec)

    def fn(x, *args, **kwargs):
        a = V.array(x, f"activations.{name}", "x")  # may be the caller's memory (a view)
        p = _bind(name, args, kwargs) if args or kwargs else None
        if p is None or p == defaults:
            y = _run_elementwise(name, a, impl)
        else:
            y = _with_parameters(name, a, p)
        # A new array on both paths, never the caller's (linear's NumPy form is the identity).
        return y.copy() if np.may_share_memory(a, y) else y

    fn.__name__ = fn.__qualname__ = name
    # What help() and IDEs show: Keras's parameters by name (the function takes them
    # positionally in that order, or by keyword)
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
           for k, d in spec])
    params = "".join(f", {k}={d!r}" for k, d in spec)
    fn.__doc__ = (f"``{name}(x{params})``: Keras's ``{name}`` activation, elementwise: a "
                  "float32 array in, the same shape out (docs/semantics.md §2)."
                  + (" At other parameters than these defaults it runs Keras's formula in "
                     "NumPy (but where they name another activation the core has)."
                     if spec else ""))
    return fn


@_symbolic.symbolic_op
def threshold(x, threshold, default_value):
    """Keras ``activations.threshold``: ``x`` where x > threshold, else ``default_value``,
    float32, elementwise, in NumPy. NaN stays NaN, as with Keras's torch backend (PyTorch's
    ``F.threshold``; its NumPy backend gives the default value there)."""
    op = "activations.threshold"
    a = V.array(x, op, "x")
    t = C.real_scalar(threshold, op, "threshold")
    d = C.real_scalar(default_value, op, "default_value")
    if not (np.isfinite(t) and np.isfinite(d)):
        raise ValueError(f"{op}: threshold and default_value must be finite, got {t}, {d}")
    return np.where((a > np.float32(t)) | np.isnan(a), a, np.float32(d)).astype(np.float32)


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


def _usual_call_first(name, op):
    """``op`` with the usual call of an activation the core serves first: a float32 array
    the checks would pass unchanged, no parameters, not the NumPy backend. That call runs
    the core's kernel at once, which is what the checks and ``_run_elementwise`` would do
    (2.1 us of a small call's Python before, against 0.24 us for the kernel call; an
    audit); any other call goes through ``op``."""
    fid = _cpp_act.fused_id(name)  # None without the core (no ids)
    if fid is None:
        return op
    activate = _backend._core.activate

    @functools.wraps(op)
    def usual_first(x, *args, **kwargs):
        if (not args and not kwargs and C.unchanged(x) and x.ndim
                and x.size <= C.MAX_ELEMENTS and _backend._current() != "numpy"):
            return activate(x, fid).reshape(x.shape)  # a new array, as the checked call's
        return op(x, *args, **kwargs)

    op.__public__ = usual_first  # what a model's node records (it pickles by this name)
    return usual_first


# Each function also takes a symbolic tensor (fastlayers.Input and what layers make of it):
# it then records the call in the model being defined, as keras.activations.* does.
for _name in NAMES:
    if _name in _np_act.ROW_ACTIVATIONS:
        globals()[_name] = _symbolic.symbolic_op(_along_axis(_name))
    else:
        globals()[_name] = _usual_call_first(_name, _symbolic.symbolic_op(_elementwise(_name)))


@_symbolic.symbolic_op
def gelu_tanh(x):
    """GELU, tanh approximation (``keras.ops.gelu``'s default ``approximate=True``)."""
    x = V.array(x, "activations.gelu_tanh", "x")
    return _run_elementwise("gelu_tanh", x, _np_act.gelu_tanh)


__all__ = ["get", "NAMES", "gelu_tanh", "threshold", *NAMES]
