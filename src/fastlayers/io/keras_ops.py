"""The Keras 3 ops that a functional model's config records, run on arrays.

Keras 3 records every ``keras.ops`` call on symbolic tensors as a node of the graph, saved
with the module it comes from (``keras.src.ops.numpy``, ``.nn``, ``.math``, ``.core``,
``.linalg``), its class name and its config: ``x + y`` is an ``Add`` node, ``x[:, 0]`` a
``GetItem``, ``ops.mean(x, axis=1)`` a ``Mean`` with ``{"axis": 1}``. ``keras_op(name,
config, *args)`` computes one of them as Keras does, with NumPy (the activations with
``fastlayers.activations``, as the Keras layers with those activations run here);
``OPS`` lists the names. Dtypes follow Keras's rules for float32 models: a float tensor or
a Python float makes the result float32, ints stay ints, comparisons give bool. The
loader (keras_config.py) builds one node per recorded op (docs/semantics.md §29).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import activations as _fl_act
from .._numpy import activations as _act
from .._numpy import normalization as _np_norm
from .._symbolic import symbolic_op

F32 = np.float32


def _axes(axis: Any) -> Any:
    """A config's axis as NumPy takes it (a recorded list as a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, bool))


def _floats(*xs: Any) -> list[Any]:
    """The operands, all float32 arrays when any is a float (an array or a Python number),
    else arrays and Python ints (weak, as in Keras: an int32 tensor plus 1 stays int32)."""
    out = [x if _number(x) else np.asarray(x) for x in xs]
    if any(isinstance(x, float) or isinstance(x, np.ndarray) and x.dtype.kind == "f"
           for x in out):
        return [np.asarray(x, F32) if _number(x) else x.astype(F32, copy=False) for x in out]
    if any(isinstance(x, int) and not isinstance(x, bool) for x in xs):
        # a bool tensor with a Python int: int32 in Keras
        out = [np.asarray(x, np.int32) if isinstance(x, np.ndarray) and x.dtype == np.bool_
               else x for x in out]
    return out


def _accumulator(dtype: np.dtype) -> np.dtype:
    """The dtype of Keras's sum or cumsum of ``dtype``: bools and ints narrower than 32 bits
    add up in int32."""
    return np.dtype(np.int32) if dtype.kind in "biu" and dtype.itemsize < 4 else dtype


def _binary(fn: Callable) -> Callable:
    def run(config: dict, x: Any, y: Any) -> np.ndarray:
        a, b = _floats(x, y)
        with np.errstate(all="ignore"):
            out = np.asarray(fn(a, b))
        return out.astype(F32) if out.dtype.kind == "f" else out
    return run


def _unary(fn: Callable, keep_int: bool = False) -> Callable:
    """fn elementwise: float32, or with ``keep_int`` ints (and bools) in their dtype."""
    def run(config: dict, x: Any) -> np.ndarray:
        a = np.asarray(x)
        if keep_int and a.dtype.kind in "biu":
            return np.asarray(fn(a))
        with np.errstate(all="ignore"):
            return np.asarray(fn(a.astype(F32, copy=False)), F32)
    return run


def _activation(name: str) -> Callable:
    fn = getattr(_fl_act, name)
    return lambda config, x: fn(np.asarray(x, F32))


def _reduction(fn: Callable, to_float: bool = False) -> Callable:
    """A reduction over config's axis / keepdims: floats (and with ``to_float``, the mean,
    every input) in float32, ints in their own dtype (a sum of int32 is int32, as Keras's)."""
    def run(config: dict, x: Any) -> np.ndarray:
        axis = _axes(config.get("axis"))
        a = np.asarray(x)
        if axis == ():
            return a.copy()  # over no axis: x itself, as Keras's torch backend returns it
        if to_float or a.dtype.kind == "f":
            a = a.astype(F32, copy=False)
        keep = bool(config.get("keepdims", False))
        if fn is np.sum:
            return np.asarray(np.sum(a, axis=axis, keepdims=keep, dtype=_accumulator(a.dtype)))
        return np.asarray(fn(a, axis=axis, keepdims=keep)).astype(a.dtype)
    return run


def _logsumexp(config: dict, x: Any) -> np.ndarray:
    """``ops.logsumexp``: log(sum(exp(x))) over the axes, shifted by the maximum (in float64,
    so no finite input overflows), float32; an axis of -inf only gives -inf."""
    a = np.asarray(x, np.float64)
    axis = _axes(config.get("axis"))
    top = np.max(a, axis=axis, keepdims=True) if a.size else np.zeros((1,) * a.ndim)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    if not config.get("keepdims", False):
        out = out.reshape(np.sum(a, axis=axis).shape)
    return np.asarray(out, F32)


def _normalize(config: dict, x: Any) -> np.ndarray:
    """``ops.normalize``: x / max(norm(x), epsilon) over the axes, as Keras computes it
    (order 2: x * min(rsqrt(sum(x^2)), 1 / epsilon)); epsilon defaults to Keras's 1e-7.
    The norms are summed in float64 (Keras's in float32: the results agree to float32
    rounding); problem() refuses matrix norms."""
    a = np.asarray(x, F32)
    if a.ndim == 0:
        a = a.reshape(1)
    axis, order = config.get("axis", -1), config.get("order", 2)
    axes = tuple(range(a.ndim)) if axis is None else tuple(np.atleast_1d(axis).tolist())
    eps = config.get("epsilon")
    eps = 1e-7 if eps is None else float(eps)
    if order == 2:
        return _np_norm.unit_normalization(a, axes, 1.0 / eps)
    with np.errstate(over="ignore", invalid="ignore"):
        norm = np.sum(np.abs(a.astype(np.float64)) ** order, axis=axes, keepdims=True)
        return np.asarray(a / np.maximum(norm ** (1.0 / order), eps).astype(F32), F32)


def _one_hot(config: dict, x: Any) -> np.ndarray:
    """``ops.one_hot``: a new axis of num_classes (at ``axis``) with 1 at each index; an
    index out of [0, num_classes) gives a row of zeros (Keras's torch backend raises for
    one above the range, its other backends give zeros)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"Keras one_hot of {a.dtype} values")
    with np.errstate(invalid="ignore"):
        index = np.trunc(a).astype(np.int64) if a.dtype.kind == "f" else a.astype(np.int64)
    n = int(config["num_classes"])
    out = (index[..., None] == np.arange(n)).astype(np.dtype(config.get("dtype") or "float32"))
    axis = config.get("axis", -1)
    return out if axis == -1 else np.ascontiguousarray(np.moveaxis(out, -1, axis))


def _descending(a: np.ndarray) -> np.ndarray:
    """The order of the last axis from the largest, NaN first (torch.topk's), ties by
    position."""
    if a.dtype.kind != "f":  # ~ reverses the order of ints (~v = -v - 1) and of bools
        return np.argsort(~a, axis=-1, kind="stable")
    order = np.argsort(-a, axis=-1, kind="stable")  # NaN last ...
    nan_last = ~np.isnan(np.take_along_axis(a, order, axis=-1))
    return np.take_along_axis(order, np.argsort(nan_last, axis=-1, kind="stable"), -1)


def _top_k(config: dict, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``ops.top_k``: the k largest entries of the last axis, largest first, and their int32
    indices (ties by position; Keras leaves their order open)."""
    a = np.asarray(x)
    a = a.astype(F32) if a.dtype.kind == "f" else a
    k = config["k"]
    if a.ndim == 0 or not 0 <= k <= a.shape[-1]:
        raise ValueError(f"Keras top_k with k={k} of inputs of shape {a.shape}")
    order = _descending(a)[..., :k]
    return np.take_along_axis(a, order, axis=-1), order.astype(np.int32)


def _sorted(config: dict, x: Any, indices: bool) -> np.ndarray:
    """``ops.sort`` / ``ops.argsort`` (int32, stable) along ``axis``; None: flattened."""
    a = np.asarray(x)
    a = a.astype(F32) if a.dtype.kind == "f" else a
    axis = config.get("axis", -1)
    if a.ndim == 0:  # a scalar: itself, its index 0 (as Keras's torch backend)
        return np.zeros((), np.int32) if indices else a.copy()
    if axis is None:
        a, axis = a.reshape(-1), -1
    if indices:
        return np.argsort(a, axis=axis, kind="stable").astype(np.int32)
    return np.sort(a, axis=axis, kind="stable")


def _variance(std: bool) -> Callable:
    def run(config: dict, x: Any) -> np.ndarray:
        axis = _axes(config.get("axis"))
        a = np.asarray(x, np.float64)  # Keras's var: the population variance
        out = np.var(a, axis=axis, keepdims=bool(config.get("keepdims", False)))
        return np.asarray(np.sqrt(out) if std else out, F32)
    return run


def _arg(fn: Callable) -> Callable:
    def run(config: dict, x: Any) -> np.ndarray:
        out = fn(np.asarray(x), axis=config.get("axis"), keepdims=bool(config.get("keepdims")))
        return np.asarray(out, np.int32)  # Keras's argmax / argmin dtype
    return run


def _norm(config: dict, x: Any) -> np.ndarray:
    """``ops.norm(x, ord=None or 2, axis)``: the 2-norm of vectors along one axis, or of x
    flattened (ord None without an axis; problem() refuses the matrix norms), in float64
    then float32."""
    axis = _axes(config.get("axis"))  # two axes: the Frobenius norm
    a = np.asarray(x, np.float64)
    keep = bool(config.get("keepdims", False))
    if axis is None:
        out = np.sqrt((a * a).sum())
        return np.asarray(out.reshape((1,) * a.ndim) if keep else out, F32)
    return np.asarray(np.sqrt((a * a).sum(axis=axis, keepdims=keep)), F32)


def _item_key(key: Any) -> Any:
    """A GetItem key as Keras serializes it: slices as {"class_name": "__slice__"}, a
    list for a tuple of entries, ints, None and the ellipsis."""
    if isinstance(key, dict):
        kind = key.get("class_name")
        if kind == "__slice__":
            c = key.get("config", {})
            return slice(c.get("start"), c.get("stop"), c.get("step"))
        if kind == "__ellipsis__":
            return Ellipsis
        raise ValueError(f"Keras get_item with a key {key!r:.80}")
    if isinstance(key, (list, tuple)):
        return tuple(_item_key(k) for k in key)
    if key is None or isinstance(key, int) or key is Ellipsis:
        return key
    raise ValueError(f"Keras get_item with a key {key!r:.80}")


def _pad(config: dict, x: Any, constant_values: Any = None) -> np.ndarray:
    a = np.asarray(x)
    fill = 0 if constant_values is None else constant_values
    return np.pad(a, config["pad_width"], constant_values=a.dtype.type(fill))


def _leaky_relu(config: dict, x: Any) -> np.ndarray:
    a = np.asarray(x, F32)
    return np.where(a >= 0, a, a * F32(config.get("negative_slope", 0.2))).astype(F32)


def _gelu(config: dict, x: Any) -> np.ndarray:
    a = np.asarray(x, F32)
    return _fl_act.gelu_tanh(a) if config.get("approximate", True) else _fl_act.gelu(a)


def _round(config: dict, x: Any) -> np.ndarray:
    a = np.asarray(x)
    out = np.round(a.astype(F32, copy=False) if a.dtype.kind == "f" else a,
                   int(config.get("decimals", 0)))
    return np.asarray(out)


def _split(config: dict, x: Any) -> list[np.ndarray]:
    sections = config["indices_or_sections"]
    return [np.ascontiguousarray(p) for p in np.split(np.asarray(x), sections,
                                                      axis=config.get("axis", 0))]


OPS: dict[str, Callable[..., Any]] = {
    # arithmetic (x + y, x * 2.0, ...), comparisons, logic
    "Add": _binary(np.add), "Subtract": _binary(np.subtract), "Multiply": _binary(np.multiply),
    "TrueDivide": _binary(np.true_divide), "Divide": _binary(np.true_divide),
    "Power": _binary(np.power), "Maximum": _binary(np.maximum), "Minimum": _binary(np.minimum),
    "Greater": _binary(np.greater), "GreaterEqual": _binary(np.greater_equal),
    "Less": _binary(np.less), "LessEqual": _binary(np.less_equal), "Equal": _binary(np.equal),
    "LogicalAnd": _binary(np.logical_and),
    "LogicalNot": lambda config, x: np.logical_not(np.asarray(x)),
    # elementwise
    "Absolute": _unary(np.abs, True), "Abs": _unary(np.abs, True),
    "Negative": _unary(np.negative, True),
    "Square": _unary(lambda a: np.square(a.astype(np.int32) if a.dtype == np.bool_ else a),
                     True),
    "Relu": _unary(lambda a: np.maximum(a, a.dtype.type(0)), True),  # ints stay ints
    "Relu6": _unary(lambda a: np.clip(a, a.dtype.type(0), a.dtype.type(6)), True),
    "Sign": _unary(lambda a: a.copy() if a.dtype == np.bool_ else np.sign(a), True),
    "Sqrt": _unary(np.sqrt), "Exp": _unary(np.exp),
    # (floor and ceil of ints are float32 in Keras)
    "Log": _unary(np.log), "Expm1": _unary(np.expm1), "Log1p": _unary(np.log1p),
    "Reciprocal": _unary(np.reciprocal), "Sin": _unary(np.sin), "Cos": _unary(np.cos),
    "Tan": _unary(np.tan), "Tanh": _unary(np.tanh), "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil), "Rsqrt": _unary(lambda a: 1 / np.sqrt(a)),
    "Erf": _unary(_act.erf), "Round": _round,
    "StopGradient": _unary(np.copy, True),  # the identity at inference
    "Clip": lambda config, x: np.asarray(np.clip(*_floats(x, config["x_min"],
                                                           config["x_max"]))),
    "Cast": lambda config, x: np.asarray(x).astype(np.dtype(config["dtype"])),
    # activations (ops.nn), as the Keras layers' activations run here
    **{name: _activation(fn) for name, fn in (
        ("Sigmoid", "sigmoid"), ("Silu", "silu"), ("Softplus", "softplus"),
        ("HardSigmoid", "hard_sigmoid"), ("Selu", "selu"), ("Softsign", "softsign"),
        ("HardSilu", "hard_silu"))},
    "Gelu": _gelu, "LeakyRelu": _leaky_relu,
    "Elu": lambda config, x: np.asarray(_act.elu(np.asarray(x, F32),
                                                 F32(config.get("alpha", 1.0))), F32),
    "LogSoftmax": lambda config, x: np.asarray(
        _act.log_softmax(np.asarray(x, F32), axis=config.get("axis", -1)), F32),
    # reductions
    "Mean": _reduction(np.mean, to_float=True), "Sum": _reduction(np.sum),
    "Max": _reduction(np.max), "Min": _reduction(np.min), "Var": _variance(False),
    "Std": _variance(True),
    "Argmax": _arg(np.argmax), "Argmin": _arg(np.argmin), "Norm": _norm,
    "Logsumexp": _logsumexp, "Normalize": _normalize, "OneHot": _one_hot, "TopK": _top_k,
    "Sort": lambda config, x: _sorted(config, x, False),
    "Argsort": lambda config, x: _sorted(config, x, True),
    "Cumsum": lambda config, x: (lambda a: np.cumsum(  # of bools in int32, as Keras's
        a, axis=config.get("axis"), dtype=np.dtype(config.get("dtype") or (
            np.int32 if a.dtype == np.bool_ else a.dtype))))(np.asarray(*_floats(x))),
    # shapes and indexing
    "Reshape": lambda config, x: np.reshape(np.asarray(x), config["newshape"]).copy(),
    "Transpose": lambda config, x: np.ascontiguousarray(np.transpose(np.asarray(x),
                                                                     config.get("axes"))),
    "Squeeze": lambda config, x: np.squeeze(np.asarray(x), _axes(config.get("axis"))).copy(),
    "Moveaxis": lambda config, x: np.ascontiguousarray(
        np.moveaxis(np.asarray(x), config["source"], config["destination"])),
    "Swapaxes": lambda config, x: np.ascontiguousarray(
        np.swapaxes(np.asarray(x), config["axis1"], config["axis2"])),
    "Tile": lambda config, x: np.tile(np.asarray(x), config["repeats"]),
    "Repeat": lambda config, x: np.repeat(np.asarray(x), config["repeats"],
                                          axis=config.get("axis")),
    "Flip": lambda config, x: np.flip(np.asarray(x), _axes(config.get("axis"))).copy(),
    "Pad": _pad,
    "Stack": lambda config, xs: np.stack(_floats(*xs), axis=config.get("axis", 0)),
    "Split": _split,
    "Take": lambda config, x, indices: np.take(np.asarray(x), np.asarray(indices),
                                               axis=config.get("axis")),
    "Where": lambda config, c, x=None, y=None: np.asarray(np.where(np.asarray(c), *(
        (np.int32(x), np.int32(y)) if all(isinstance(v, int) for v in (x, y)) and not all(
            isinstance(v, bool) for v in (x, y)) else _floats(x, y)))),
    "GetItem": lambda config, x, key: np.ascontiguousarray(np.asarray(x)[_item_key(key)]),
}


@symbolic_op
def keras_int_matmul(x: Any, y: Any) -> np.ndarray:
    """``ops.matmul`` with an integer operand: NumPy's exact integer product (float32 when
    the other is a float), where fastlayers.matmul would compute in float32."""
    a, b = _floats(x, y)
    if a.dtype == b.dtype == np.int8:
        a, b = a.astype(np.int32), b.astype(np.int32)  # Keras's int8 product is int32
    return np.asarray(np.matmul(a, b))


def keras_matmul(x: Any, y: Any) -> Any:
    """``ops.matmul`` / ``x @ y`` as Keras computes it: fastlayers.matmul for floats; with an
    integer or bool operand NumPy's exact product (keras_int_matmul: ints stay ints). Arrays
    or symbolic tensors (each op records itself)."""
    from .. import functional as F  # noqa: PLC0415 (functional's ops import this lazily)

    if all(np.dtype(getattr(v, "dtype", np.float32)).kind == "f" for v in (x, y)):
        return F.matmul(x, y)
    return keras_int_matmul(x, y)


def problem(name: str, config: dict) -> str | None:
    """Why the op ``name`` with this config does not load (the loader lists it with the
    file's other problems), or None."""
    if name == "Norm":
        order, axis = config.get("ord"), config.get("axis")
        if order not in (None, 2, "fro") or order == 2 and (
                axis is None or isinstance(axis, list) and len(axis) > 1):
            return f"norm with ord={order!r}, axis={axis!r} (vector 2-norms and Frobenius only)"
    if name == "Normalize":
        order, axis = config.get("order", 2), config.get("axis", -1)
        if order != 2 and (axis is None or isinstance(axis, list) and len(axis) > 1):
            return f"normalize with order={order!r} over axis={axis!r} (a matrix norm)"
    if name == "OneHot" and (config.get("sparse") or config.get("axis", -1) < -1):
        return (f"one_hot with sparse={config.get('sparse')!r}, axis={config.get('axis')!r} "
                "(dense outputs, axis -1 or >= 0)")
    if name == "Logsumexp" and config.get("axis") in ((), []):
        return "logsumexp over axis=()"
    if name == "Pad" and config.get("mode", "constant") != "constant":
        return f"pad in mode {config.get('mode')!r} (constant only)"
    if name in ("Max", "Min") and config.get("initial") is not None:
        return f"{name.lower()} with an initial value"
    if name == "Std" and config.get("axis") in ((), []):
        return "std over axis=() (Keras's torch backend reduces every axis there)"
    return None


@symbolic_op
def keras_op(name: str, config: dict, *args: Any, **kwargs: Any) -> Any:
    """The Keras op ``name`` (a key of OPS) with its recorded ``config`` on arrays."""
    if name == "Where" and (len(args) < 3 or args[1] is None or args[2] is None):
        raise NotImplementedError("Keras where(condition) (nonzero) is not supported")
    try:
        return OPS[name](config, *args, **kwargs)
    except OverflowError as e:  # NumPy 2 refuses a Python int outside the tensor's dtype
        raise NotImplementedError(
            f"Keras {name} with a number outside its integer tensor's range (Keras wraps it "
            f"around; not supported): {e}") from e
