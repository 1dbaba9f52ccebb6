"""What the PyTorch converter's parts share: the converted values (``_T``, a tensor and
whether its channels are last; ``_C``, a complex tensor as two; ``_Dim``, a size known
only at run time), the helpers on them, and the tables of known modules, functions,
methods and dtypes. The rules use them (torch_fx.py, torch_rules_modules.py,
torch_rules_tensors.py) and so does the tracer (torch_fx.py)."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _backend
from .. import _symbolic as S
from .._cpp.transpose import transpose_batched
from ..layers import (
    Permute,
    Reshape,
)
from .torch_model import (
    TorchConversionError,
)
from .torch_ops import (
    _KEEP_DTYPE,
    _LOGICAL,
    _MORE_BINARY,
    _REDUCTIONS,
    _SIZE_OPS,
    _UNARY,
    torch_permute,
    torch_reshape,
)

F32 = np.float32

# ------------------------------------------------------------------ conversion


class _T:
    """A converted tensor: the symbolic tensor and whether its channel axis (PyTorch's
    axis 1) is moved to the end (``cl``: NLC / NHWC)."""

    __slots__ = ("sym", "cl")

    def __init__(self, sym: S.SymbolicTensor, cl: bool = False):
        self.sym = sym
        self.cl = cl

    @property
    def ndim(self) -> int:
        return self.sym.ndim

    @property
    def torch_shape(self) -> tuple:
        s = self.sym.shape
        return (s[0], s[-1], *s[1:-1]) if self.cl else s


class _C:
    """A complex tensor of the converted graph: float32 pairs, PyTorch's shape with a last
    axis of 2 (real, imaginary), the layout of torch.view_as_real, always in PyTorch's axis
    order. It is not a _T: only _Converter.complex_call takes it, and refuses what it does
    not convert, so no other conversion can read the pairs' axis as data."""

    __slots__ = ("sym",)

    def __init__(self, sym: S.SymbolicTensor):
        self.sym = sym

    @property
    def ndim(self) -> int:
        return self.sym.ndim - 1


class _Dim:
    """A size unknown until run time: axis ``axis`` (PyTorch's numbering) of tensor ``t``,
    then Python's integer ``ops`` on it in order, ((op, int), ...) with op "add", "sub",
    "mul" or "floordiv" (DeBERTa's ``q.size(0) // heads``, the batch of a (B * heads, T, d)
    tensor; torch_ops._run_shape computes them)."""

    __slots__ = ("t", "axis", "ops")

    def __init__(self, t: _T, axis: int, ops: tuple = ()):
        self.t = t
        self.axis = axis
        self.ops = ops

    def __repr__(self) -> str:  # in refusals: "torch.eye of <a size known only ...>"
        ops = "".join(f" {_SIZE_OPS[op][0]} {k}" for op, k in self.ops)
        return f"<a size known only at run time (the batch's: size({self.axis}){ops})>"

    def then(self, op: str, k: Any) -> _Dim:
        """This size, then ``op`` with the int ``k`` (refused for anything else)."""
        if (not isinstance(k, (int, np.integer)) or isinstance(k, bool)
                or (op == "floordiv" and k <= 0)):
            raise TorchConversionError(
                f"from_torch: {op} of a size known only at run time (the batch size) and "
                f"{k!r} (a positive int for //, an int for +, - and *)")
        return _Dim(self.t, self.axis, self.ops + ((op, int(k)),))


class _Unknown:
    """A comparison involving a size known only at run time (the batch size): an assert on
    it is not checked at conversion; any other use is refused (_build)."""


class _Assumed(_Unknown):
    """A comparison of the batch size with 0 or 1 (``if batch_size != 1``, ``if
    x.shape[0] > 1``), whose answer is ``value`` for every batch of 2 or more rows. A branch
    on it is taken as for 2 or more rows; the converted model then computes that path at
    any batch, and from_torch checks it against the module at batch 1
    (_check_batch_of_one)."""

    def __init__(self, value: bool):
        self.value = value


def _batch_multiple(d: _Dim) -> int | None:
    """k where run-time size ``d`` is k times the batch size for every batch (an axis of
    batch x heads, SymbolicTensor.mult, times or exactly divided by ints), else None."""
    mult = S._mult(d.t.sym)
    k = mult[_axis_in_layout(d.t, d.axis)] if mult else 1
    if not k:
        return None  # an axis of 2B - 1 rows, B * B, ...: no multiple of the batch
    for op, c in d.ops:
        if op == "mul":
            k *= c
        elif op == "floordiv" and k % c == 0:
            k //= c
        else:
            return None  # + or -, or a division with a remainder for some batch sizes
    return k


def _same_size(u: Any, v: Any) -> bool:
    """Whether two sizes, one of them known only at run time, are equal for every batch:
    the same axis read the same way, or the same multiple of the batch of tensors computed
    from one and the same input (XGLM checks that its (B * heads, T, S) scores have
    B * heads rows). Tensors computed from several inputs are not compared: each input may
    be given another batch size."""
    if not (isinstance(u, _Dim) and isinstance(v, _Dim)):
        return False
    if u.t is v.t and u.axis == v.axis and u.ops == v.ops:
        return True
    k = _batch_multiple(u)
    roots = _roots(u.t.sym)
    return (k is not None and k == _batch_multiple(v) and len(roots) == 1
            and roots == _roots(v.t.sym))


def _compare_sizes(a: Any, b: Any, op: str) -> Any:
    """Two shapes (tuples of ints and run-time sizes) compared as Python compares tuples;
    _Unknown only when the answer depends on a run-time size."""
    if op not in ("eq", "ne"):
        if any(isinstance(v, (_Dim, _Unknown)) for v in (*a, *b)):
            return _Unknown()
        return getattr(operator, op)(tuple(a), tuple(b))
    equal: Any = len(a) == len(b)
    if equal:
        for u, v in zip(a, b):
            if isinstance(u, _Dim) or isinstance(v, _Dim):
                if not _same_size(u, v):
                    equal = _Unknown()  # unless a known pair differs, below
            elif u != v:
                equal = False
                break
    if isinstance(equal, _Unknown) or op == "eq":
        return equal
    return not equal


def _is_float(sym: S.SymbolicTensor) -> bool:
    return sym.dtype == np.float32


def _permute(sym: S.SymbolicTensor, perm: tuple) -> S.SymbolicTensor:
    """sym transposed by ``perm``: a Keras ``Permute`` when the batch axis stays first."""
    perm = tuple(int(p) for p in perm)
    if perm[0] == 0 and len(perm) > 1 and _is_float(sym):
        return Permute(perm[1:])(sym)
    return torch_permute(sym, perm)


def _to_torch(t: _T) -> _T:
    if not t.cl:
        return t
    r = t.ndim
    shape = t.sym.shape
    if all(d == 1 for d in shape[1:-1]) and shape[-1] is not None:
        # the channel axis moves over size-1 axes only: the same values in the same order
        return _T(_reshape(t.sym, ((0, 0), shape[-1], *shape[1:-1])), False)
    return _T(_permute(t.sym, (0, r - 1, *range(1, r - 1))), False)


def _permuted(t: _T, dims: tuple) -> _T:
    """``t.permute(dims)`` (PyTorch's axes) from the layout t is stored in: no copy where
    that layout already is the result's, in PyTorch's order or channels-last (a stored NHWC
    tensor's permute(0, 2, 3, 1) is itself, and so is the permute(0, 3, 1, 2) back: ConvNeXt's
    blocks and LayerNorm2d), else one transpose of the stored axes."""
    r = t.ndim
    stored = (0, *range(2, r), 1) if t.cl else tuple(range(r))  # PyTorch axis of each
    take = tuple(stored.index(d) for d in dims)  # result axis i is stored axis take[i]
    if take == tuple(range(r)):
        return _T(t.sym, False)
    if r >= 3 and tuple(take[c] for c in (0, *range(2, r), 1)) == tuple(range(r)):
        return _T(t.sym, True)  # the result, channels-last, is t's storage
    return _T(_permute(t.sym, take), False)


def _to_cl(t: _T) -> _T:
    if t.cl or t.ndim < 3:
        return t
    r = t.ndim
    return _T(_permute(t.sym, (0, *range(2, r), 1)), True)


def _reshape(sym: S.SymbolicTensor, spec: tuple, refs: tuple = ()) -> S.SymbolicTensor:
    """sym reshaped by ``spec`` (see torch_reshape): a Keras ``Reshape`` when the batch
    axis is kept as it is and the other sizes are fixed (one may be -1)."""
    rest = spec[1:]
    if (spec and spec[0] == (0, 0) and not refs and _is_float(sym)
            and all(isinstance(e, int) for e in rest)):
        return Reshape(rest)(sym)
    out = torch_reshape(sym, *refs, spec=spec)
    if -1 in spec and isinstance(out.shape[spec.index(-1)], int):
        # The size -1 stands for is fixed (the examples fix it): written as that number, so
        # that an empty batch reshapes too (NumPy cannot infer -1 beside a size 0: an audit
        # found BERT's head split, x.view(B, T, -1, d), refusing 0 rows).
        fixed = tuple(out.shape[i] if e == -1 else e for i, e in enumerate(spec))
        out = torch_reshape(sym, *refs, spec=fixed)
    return out


def _roots(sym: S.SymbolicTensor) -> frozenset:
    """The ids of the model inputs that ``sym`` is computed from."""
    found: set[int] = set()
    seen: set[int] = set()
    stack = [sym]
    while stack:
        t = stack.pop()
        if t.id in seen:
            continue
        seen.add(t.id)
        if t.node is None or not t.node.inputs:
            found.add(t.id)
        else:
            stack.extend(t.node.inputs)
    return frozenset(found)


def _same_batch(a: _T, b: _T) -> bool:
    """Whether a Keras merge (whose batch axis never broadcasts) computes ``a op b``: float
    tensors of one rank whose batch axis is one size, or free and from the same inputs (so
    it cannot differ at run time, where PyTorch would broadcast it)."""
    if a.ndim != b.ndim or a.ndim < 1 or not (_is_float(a.sym) and _is_float(b.sym)):
        return False
    na, nb = a.sym.shape[0], b.sym.shape[0]
    if na is None and nb is None:
        return _roots(a.sym) == _roots(b.sym)
    return na is not None and na == nb


def _legacy_dim(t: _T, dim: Any) -> Any:
    """``dim``, or PyTorch's legacy implicit one for softmax-like calls when it is None: 0 for
    tensors of rank 0, 1 and 3, else 1."""
    if dim is None:
        return 0 if t.ndim in (0, 1, 3) else 1
    return dim


def _reduction_axes(t: _T, torch_axes: list, keepdim: bool) -> tuple[_T, tuple, bool]:
    """A reduction of PyTorch's ``torch_axes`` of t: (the tensor to reduce, its axes as
    stored, whether the result is channels-last). A channels-last tensor is reduced in
    place when the result is in PyTorch's order or keeps the layout (global pooling
    x.mean((2, 3)) of an image), else after a transpose back."""
    r = t.ndim
    kept = r - len(torch_axes)
    in_order = keepdim or 1 in torch_axes or kept <= 2  # the stored order is PyTorch's
    if t.cl and 0 not in torch_axes and in_order:
        return t, tuple(sorted(_axis_in_layout(t, d) for d in torch_axes)), keepdim
    return _to_torch(t), tuple(sorted(torch_axes)), False


def _axis_in_layout(t: _T, axis: int) -> int:
    """PyTorch's axis number -> the axis of the array as stored."""
    r = t.ndim
    axis = axis + r if axis < 0 else axis
    if not 0 <= axis < r:
        raise ValueError(f"from_torch: axis {axis} out of range for rank {r}")
    if not t.cl or axis == 0:
        return axis
    return r - 1 if axis == 1 else axis - 1


def _np(tensor: Any) -> np.ndarray | None:
    if tensor is None:
        return None
    return tensor.detach().cpu().numpy().astype(F32)


def _np_view(tensor: Any) -> np.ndarray | None:
    """_np without the copy when the tensor is float32 already: its memory, for arrays that
    go straight to ``set_weights``, which copies them (a model's large kernels were copied
    once more: 0.7 of 10.6 s of a 0.2 GB model's conversion)."""
    if tensor is None:
        return None
    return tensor.detach().cpu().numpy().astype(F32, copy=False)


def _kernel_of(weight: Any) -> np.ndarray:
    """A Linear's (out, in) weight (a tensor or an array) as Keras's (in, out) kernel: a new
    C-contiguous float32 array. Transposed by the core's blocked transpose where it is there:
    NumPy's copy of a transposed view goes down its columns, 11 ms for a (3072, 768) weight
    against 3 (BERT-base's 73 Linear layers: 0.85 s of its conversion's 2.4-4.5)."""
    w = _np_view(weight) if not isinstance(weight, np.ndarray) else weight.astype(F32, copy=False)
    if _backend.core_available() and w.ndim == 2 and w.size >= 4096:
        w = np.ascontiguousarray(w)  # (a no-op for a parameter's own memory)
        return transpose_batched(w[None])[0]
    return np.ascontiguousarray(w.T)


def _bn_scale_shift(mod: Any) -> tuple[np.ndarray, np.ndarray]:
    """An eval-mode BatchNorm as y = x·scale + shift per channel (float64)."""
    def f64(tensor: Any) -> np.ndarray | None:
        return None if tensor is None else tensor.detach().cpu().numpy().astype(np.float64)

    return _scale_shift(f64(mod.running_mean), f64(mod.running_var), mod.eps, f64(mod.weight),
                        f64(mod.bias))


def _scale_shift(mean: np.ndarray, var: np.ndarray, eps: float, weight: np.ndarray | None,
                 bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Normalization by running statistics, then weight and bias (None: 1 and 0), as
    y = x·scale + shift per channel (float64)."""
    scale = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    if weight is not None:
        scale = scale * np.asarray(weight, np.float64)
    shift = -np.asarray(mean, np.float64) * scale
    if bias is not None:
        shift = shift + np.asarray(bias, np.float64)
    return scale, shift


def _is_number(v: Any) -> bool:
    """An int or float argument (not a bool, not a tensor)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_constants(what: str, **arrays: Any) -> None:
    """Refuse a function argument that must be known at conversion (a parameter, a buffer or
    a constant: a NumPy array here; None is allowed) but is computed in the graph."""
    for name, value in arrays.items():
        if value is not None and not isinstance(value, np.ndarray):
            raise TorchConversionError(
                f"from_torch: {what}'s {name} must be a parameter or a constant, got "
                f"{'a computed tensor' if isinstance(value, _T) else type(value).__name__}"
            )


def _single(v: Any) -> int:
    """An int or a 1-tuple (a 1-D module's kernel_size, stride, ...) as an int."""
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _triple(v: Any) -> tuple[int, int, int]:
    return (int(v),) * 3 if isinstance(v, int) else tuple(int(e) for e in v)


def _pool3d_problem(mod: Any) -> str | None:
    """Why a MaxPool3d / AvgPool3d converts not (Keras's "valid" 3D pooling only), or None."""
    if _triple(mod.padding) != (0, 0, 0):
        return f"padding={mod.padding!r} (0 only)"
    if _triple(getattr(mod, "dilation", 1)) != (1, 1, 1):
        return f"dilation={mod.dilation!r} (1 only)"
    if mod.ceil_mode:
        return "ceil_mode=True"
    if getattr(mod, "return_indices", False):
        return "return_indices=True"
    if getattr(mod, "divisor_override", None):
        return f"divisor_override={mod.divisor_override!r}"
    return None


def _public_name(torch: Any, cls: type) -> str:
    for mod_name, mod in (("torch.nn", torch.nn),):
        if getattr(mod, cls.__name__, None) is cls:
            return f"{mod_name}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _fn_name(torch: Any, fn: Any) -> str:
    """A readable qualified name of a called function: torch.stack, operator.floordiv."""
    name = getattr(fn, "__name__", None) or repr(fn)
    for prefix, mod in (("torch.nn.functional", torch.nn.functional), ("torch", torch),
                        ("operator", operator)):
        try:
            if getattr(mod, name, None) is fn:
                return f"{prefix}.{name}"
        except TypeError:
            pass
    mod_name = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or name
    return f"{mod_name}.{qual}" if mod_name else qual


# Activation modules -> the Keras activation computing the same.
_ACT_MODULES = {"ReLU": "relu", "SiLU": "silu", "Tanh": "tanh", "Sigmoid": "sigmoid",
                "ReLU6": "relu6", "Hardswish": "hard_silu", "Hardsigmoid": "hard_sigmoid",
                "Mish": "mish", "Softsign": "softsign", "SELU": "selu",
                "LogSigmoid": "log_sigmoid", "Tanhshrink": "tanh_shrink"}
# Activation modules with parameters -> [(parameter values, Keras activation)]: those values
# only (PyTorch's defaults where the two libraries agree, and Hardtanh(0, 6), MobileNet's relu6).
_ACT_VARIANTS = {
    "ELU": [({"alpha": 1.0}, "elu")],
    "CELU": [({"alpha": 1.0}, "celu")],
    "Softplus": [({"beta": 1.0, "threshold": 20.0}, "softplus")],
    "Hardtanh": [({"min_val": -1.0, "max_val": 1.0}, "hard_tanh"),
                 ({"min_val": 0.0, "max_val": 6.0}, "relu6")],
    "Hardshrink": [({"lambd": 0.5}, "hard_shrink")],
    "Softshrink": [({"lambd": 0.5}, "soft_shrink")],
}


def _variant(variants: list, values: dict) -> str | None:
    """The Keras activation of the variant whose parameters ``values`` match, or None."""
    for params, act in variants:
        if all(values.get(k, v) == v for k, v in params.items()):
            return act
    return None


def _variants_text(variants: list) -> str:
    return " or ".join(", ".join(f"{k}={v!r}" for k, v in params.items())
                       for params, _ in variants)


_PARAM_RULE = "numbers, and not an alpha or beta of 0, which PyTorch's formula divides by"


def _param_values(module: str, values: dict) -> tuple | None:
    """The parameters of an activation module (in _ACT_VARIANTS' order, PyTorch's defaults
    for those not given) as floats for torch_param_activation, or None when one is not a
    number, or is an alpha or beta of 0 (a division by zero in PyTorch's formula)."""
    order = list(dict.fromkeys(k for params, _ in _ACT_VARIANTS[module] for k in params))
    defaults = _ACT_VARIANTS[module][0][0]
    got = [values.get(k, defaults[k]) for k in order]
    if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in got):
        return None
    if module in ("CELU", "Softplus") and float(got[0]) == 0:
        return None
    return tuple(float(v) for v in got)


_IDENTITY_MODULES = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                     "FeatureAlphaDropout", "Identity")


# torch.nn modules whose forward is one call of a function from_torch converts, traced into
# that call rather than kept as a module call: its conversion (and its argument checks) is the
# function's.
_TRACED_INTO = frozenset({"CosineSimilarity", "PairwiseDistance", "LocalResponseNorm",
                          "Bilinear", "LPPool1d", "LPPool2d"})

# The keyword of the methods that take sizes as varargs or as one sequence.
_SIZES_KEYWORD = {"view": "size", "reshape": "shape", "permute": "dims", "expand": "size",
                  "repeat": "repeats"}

# PyTorch's NumPy-style aliases: the same function as the op each names (PyTorch's docs say
# "Alias for ..."), rewritten to it before a conversion (_canonical_aliases).
_METHOD_ALIASES = {
    "multiply": "mul", "subtract": "sub", "divide": "div", "true_divide": "div",
    "greater": "gt", "greater_equal": "ge", "less": "lt", "less_equal": "le",
    "not_equal": "ne", "absolute": "abs", "negative": "neg", "clip": "clamp", "fix": "trunc",
    "arctan": "atan", "arctan2": "atan2", "arcsin": "asin", "arccos": "acos",
    "arctanh": "atanh", "arcsinh": "asinh", "arccosh": "acosh", "broadcast_to": "expand",
}
_METHOD_ALIASES.update({f"{a}_": f"{b}_" for a, b in list(_METHOD_ALIASES.items())
                        if b != "expand"})
# Functions converted as the Tensor method of the same arguments (the tensor first).
_FUNCTIONS_AS_METHODS = ("masked_fill", "gt", "ge", "lt", "le", "eq", "ne")


_METHODS = frozenset({"relu", "sigmoid", "tanh", "softmax", "view", "reshape", "flatten",
                      "unflatten", "conj", "resolve_conj", "resolve_neg", "angle", "stft",
                      "size", "dim", "contiguous", "add", "mul", "sub", "div", "permute",
                      "transpose", "swapaxes", "swapdims", "split", "chunk", "matmul",
                      "bmm", "mm",
                      *_REDUCTIONS, *_UNARY, *_LOGICAL, "pow",
                      "clamp", "clip", "clamp_min", "clamp_max", "eq", "ne", "lt", "le", "gt",
                      "ge", "masked_fill", "float", "type_as", "unsqueeze", "squeeze",
                      "expand", "detach", "clone", "to", "repeat", "__getitem__", "flip",
                      "cumsum", "roll", "unbind", "new_zeros", "new_ones", "new_full", "max",
                      "min", "argmax", "argmin", "maximum", "minimum", "var", "std", "prod",
                      "logsumexp", "any", "all", "norm", "tril", "triu", "gather",
                      "index_select", "view_as", "reshape_as", "expand_as", "t", "numel",
                      "type", "log_softmax", "diff", "nan_to_num", "new_tensor", "long",
                      "int", "bool", "repeat_interleave", "baddbmm", "topk", "cumprod",
                      "movedim", "moveaxis", "tile", "narrow", "select", "tensor_split",
                      "lerp", "addcmul", "addcdiv", "fmod", "remainder", "atan2", "arctan2",
                      "sort", "argsort", "take_along_dim", "scatter", "scatter_add",
                      "scatter_reduce", "index_add", "index_copy", "index_fill", "unfold",
                      "double", "half", "cpu", "median", "nanmedian", "quantile",
                      "nanquantile", *_MORE_BINARY, "logit", "logcumsumexp", "cummax",
                      "cummin", "count_nonzero"})


# Tensor methods that write their tensor in place and convert as their out-of-place form
# (x.mul_(s) as x.mul(s)), later reads of x reading the result (_written_in_place): those that
# keep the tensor's shape and dtype (PyTorch refuses a result its dtype cannot hold).
_IN_PLACE_METHODS = frozenset(f"{name}_" for name in (
    "add", "sub", "mul", "div", "pow", "clamp", "clip", "clamp_min", "clamp_max",
    "masked_fill", "relu", "sigmoid", "tanh", "tril", "triu", "nan_to_num", "cumprod",
    "lerp", "addcmul", "addcdiv", "fmod", "remainder", "atan2", "arctan2", "cumsum",
    "scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy", "index_fill",
    "hypot", "copysign", "xlogy", "logit",
    *(n for n in _UNARY if n not in _KEEP_DTYPE)))

# torch dtypes (by name) of casts and of constants built at conversion (torch.arange).
# int32 is computed as int64, which holds the same values (the converted model's integers
# are int64: RoBERTa's mask.int() position ids; past 2**31 PyTorch's int32 would wrap).
_NP_DTYPES = {"int64": np.int64, "long": np.int64, "int32": np.int64, "int": np.int64,
              "float32": np.float32, "float": np.float32, "bool": np.bool_}


def _np_dtype(dtype: Any) -> Any:
    """The NumPy dtype of a torch or NumPy dtype (by name), or None if not converted."""
    return _NP_DTYPES.get(str(dtype).replace("torch.", ""))


def _dim(dim: Any, rank: int, what: str) -> int:
    """PyTorch's dim (negative from the end) as an axis in [0, rank), or refused."""
    d = int(dim) + rank if int(dim) < 0 else int(dim)
    if not 0 <= d < rank:
        raise TorchConversionError(f"from_torch: {what} with dim={dim} of a rank-{rank} "
                                   "tensor")
    return d


def _sdpa_problems(attn_mask: Any = None, dropout_p: Any = 0.0, is_causal: Any = False,
                   scale: Any = None, enable_gqa: Any = False) -> str | None:
    """What of these scaled_dot_product_attention arguments does not convert, or None."""
    if not isinstance(dropout_p, (int, float)) or dropout_p != 0:
        return (f"dropout_p={dropout_p!r} (PyTorch drops weights at random even in eval "
                "mode; pass 0 outside training)")
    for name, v in (("is_causal", is_causal), ("enable_gqa", enable_gqa)):
        if not isinstance(v, bool):
            return f"{name}={v!r} (a bool known at conversion)"
    if scale is not None and not isinstance(scale, (int, float)):
        return f"scale={scale!r} (a number known at conversion)"
    return None


def _pool_padding_fits(what: str, k: tuple, p: tuple) -> None:
    """PyTorch's rule for its pools: the padding at most half the window (kernel // 2,
    undilated), or a TorchConversionError (PyTorch raises "pad should be smaller than or
    equal to half of kernel size"; a max pool's window could then hold padding alone,
    -inf). (The dilated window's own bound is weaker: it is not checked.)"""
    for kk, pp in zip(k, p):
        if pp > kk // 2:
            raise TorchConversionError(
                f"from_torch: {what} with padding {p} above half its window {k}: PyTorch "
                "refuses it ('pad should be smaller than or equal to half of kernel size')")


def _keras_transposes(mod: Any, out_pad: tuple) -> bool:
    """Whether fastlayers' Conv{1,2,3}DTranspose computes this nn.ConvTranspose with this
    output_padding: not both a stride and a dilation above 1, output_padding below the
    stride (Keras's rules), and groups in 1-D and 2-D only (the layers' extension)."""
    return ((mod.groups == 1 or len(mod.stride) < 3)
            and not (max(mod.stride) > 1 and max(mod.dilation) > 1)
            and all(o < s for o, s in zip(out_pad, mod.stride)))


def _conv_transpose_problem(mod: Any) -> str | None:
    """Why ``from_torch`` cannot convert this nn.ConvTranspose1d/2d/3d, or None (the 1-D and
    2-D ones Keras's layers do not compute are _Converter._conv_transpose_as_conv)."""
    stride, dilation = tuple(mod.stride), tuple(mod.dilation)
    out_pad = tuple(mod.output_padding)
    if mod.padding_mode != "zeros":
        return f"padding_mode={mod.padding_mode!r}"
    if len(stride) < 3:
        return None
    if mod.groups != 1:
        return f"groups={mod.groups} (of a ConvTranspose3d)"
    if max(stride) > 1 and max(dilation) > 1:
        return f"stride {stride} with dilation {dilation} (Keras refuses both > 1)"
    if any(o >= s for o, s in zip(out_pad, stride)):
        return f"output_padding {out_pad} not smaller than the stride {stride} (Keras's rule)"
    return None


def _pad_modules(nn: Any) -> dict:
    """The 1-D and 2-D padding modules -> their F.pad mode."""
    modes = {"Constant": "constant", "Zero": "constant", "Reflection": "reflect",
             "Replication": "replicate", "Circular": "circular"}
    return {getattr(nn, f"{kind}Pad{d}d"): mode for kind, mode in modes.items()
            for d in (1, 2) if hasattr(nn, f"{kind}Pad{d}d")}


def _rms_norm_classes(nn: Any) -> tuple:
    """nn.RMSNorm as a tuple for isinstance (empty before PyTorch 2.4, which added it)."""
    return tuple(c for c in (getattr(nn, "RMSNorm", None),) if c is not None)


def _interpolate_problem(mode: str, align_corners: Any) -> str | None:
    """Why ``from_torch`` cannot convert this resize mode, or None: "nearest",
    "nearest-exact", "area", and "bilinear", "bicubic" or (of a 3-D input) "linear", with or
    without align_corners."""
    if mode not in ("nearest", "nearest-exact", "bilinear", "linear", "bicubic", "area"):
        return (f"mode={mode!r} (nearest, nearest-exact, linear, bilinear, bicubic or area "
                "only)")
    if align_corners and mode not in ("bilinear", "linear", "bicubic"):
        return f"align_corners=True with mode={mode!r} (PyTorch refuses it)"
    return None


def _resize_arguments_problem(size: Any, scale_factor: Any, mode: str,
                              antialias: Any) -> str | None:
    """What PyTorch itself refuses in an interpolate's arguments (so a module that cannot
    run does not convert), or None."""
    if (size is None) == (scale_factor is None):
        return "giving both size and scale_factor (or neither)"
    if antialias and mode != "bilinear":
        return f"antialias=True with mode={mode!r}"
    for name, value in (("size", size), ("scale_factor", scale_factor)):
        if value is None:
            continue
        pair = value if isinstance(value, (tuple, list)) else (value, value)
        if len(pair) != 2 or any(v is None or float(v) <= 0 for v in pair):
            return f"{name}={value!r} (two positive values, or one for both axes)"
    return None


def _resize_output(size: Any, scale_factor: Any, in_hw: tuple, factors: Any,
                   recompute: Any) -> tuple[int, int] | None:
    """The output (height, width) of an interpolate that Keras's Resizing computes alike
    (source positions at in / out), or None: a size; a scale factor of a known input size
    when PyTorch's 1 / scale_factor is in / out in float32 (whole factors, 0.5, ...), or with
    recompute_scale_factor=True (PyTorch then uses in / out too). The output size is
    floor(in * scale_factor), as PyTorch's."""
    if size is not None:
        pair = size if isinstance(size, (tuple, list)) else (size, size)
        return (int(pair[0]), int(pair[1]))
    if any(d is None for d in in_hw):
        return None
    if factors is not None:
        return (in_hw[0] * factors[0], in_hw[1] * factors[1])
    pair = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
    out = tuple(int(math.floor(d * float(f))) for d, f in zip(in_hw, pair))
    if min(out) < 1:
        return None
    same = all(np.float32(1.0 / float(f)) == np.float32(d) / np.float32(o)
               for d, f, o in zip(in_hw, pair, out))
    return out if recompute or same else None


def _whole_factors(size: Any, scale_factor: Any, in_hw: tuple) -> tuple[int, int] | None:
    """The (rows, cols) factors of an nn.Upsample / F.interpolate, when they are whole
    numbers >= 1; else None."""
    if scale_factor is not None:
        pair = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
        if len(pair) != 2 or any(float(f) != int(f) or int(f) < 1 for f in pair):
            return None
        return (int(pair[0]), int(pair[1]))
    pair = size if isinstance(size, (tuple, list)) else (size, size)
    if size is None or len(pair) != 2 or any(d is None for d in in_hw):
        return None
    if any(int(o) < 1 or int(o) % d for o, d in zip(pair, in_hw)):
        return None
    return (int(pair[0]) // in_hw[0], int(pair[1]) // in_hw[1])


def _batch_axis(torch: Any, gm: Any, node: Any, example: Any = None) -> int | None:
    """The axis of input ``node`` that is the batch (left free in the converted model), from
    how the module uses it: seq-first recurrent and attention inputs and recurrent states
    carry the batch on axis 1, an attention mask carries none; 0 when nothing says.
    ``example``: the input's example, a tuple for a tuple input (its tensors share the
    axis)."""
    axis = _batch_axis_used(torch, gm, node, 0)
    if axis is _UNSEEN and isinstance(example, (tuple, list)):
        axis = _tuple_batch_axis(torch, gm, node, example)
    return 0 if axis is _UNSEEN else axis


def _tuple_batch_axis(torch: Any, gm: Any, node: Any, example: Any) -> Any:
    """The batch axis of a tuple input (``example`` its example) unpacked in the forward
    (``h, c = state``, then ``self.lstm(x, (h, c))``): its tensors are fx's ``state[i]``, and
    what uses them says where their batch is. (The tuple passed on whole is a use of the
    input itself: _batch_axis_used. Followed for tuple inputs only: ``x[0]`` of a tensor
    drops an axis.)"""
    for user in node.users:
        if not (user.op == "call_function" and user.target is operator.getitem
                and isinstance(user.args[1], int) and -len(example) <= user.args[1]
                < len(example)):
            continue
        axis = _batch_axis_used(torch, gm, user, 0)
        part = example[user.args[1]]
        if axis is _UNSEEN and isinstance(part, (tuple, list)):  # ((h, c), x)
            axis = _tuple_batch_axis(torch, gm, user, part)
        if axis is not _UNSEEN:
            return axis
    return _UNSEEN


_UNSEEN = object()  # _batch_axis_used: no use of the value says where its batch is

# What a value may go through on its way to the layer that says where its batch is (token ids
# through their Embedding, then scaled and added to positions, as a seq-first translation
# model does; features through a Linear and an activation): the leading axes stay where they
# are. Functions by name in torch and torch.nn.functional, methods by name, modules by class
# name in torch.nn (_keeps_leading_axes).
_AXES_KEPT_BY = (operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
                 operator.isub, operator.imul, operator.itruediv)
_ELEMENTWISE = frozenset({
    "relu", "relu6", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "celu",
    "hardswish", "hardsigmoid", "hardtanh", "mish", "softplus", "softsign", "tanhshrink",
    "logsigmoid", "dropout", "exp", "abs", "neg", "float", "contiguous", "clone", "detach",
})
# Methods that keep the leading axes too: the casts (token ids cast with .long() before their
# Embedding, as PyTorch's nn.Transformer translation tutorial does).
_CASTS = frozenset({"long", "int", "bool", "to", "type", "type_as"})
_LAST_AXIS_FUNCTIONS = frozenset({"linear", "layer_norm", "rms_norm", "softmax", "log_softmax"})
_KEEPING_MODULES = frozenset({
    "Embedding", "Dropout", "Identity", "LayerNorm", "RMSNorm", "Linear", "ReLU", "ReLU6",
    "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "SELU", "CELU", "Hardswish",
    "Hardsigmoid", "Hardtanh", "Mish", "Softplus", "Softsign", "Tanhshrink", "LogSigmoid",
})


def _torch_function_name(torch: Any, fn: Any) -> str | None:
    """The name of a function of torch's (``torch.*``, ``torch.nn.functional.*``, a builtin
    torch exports, torchvision's), or None for any other callable."""
    name = getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", "") or ""
    if name and (module.startswith("torch") or fn is getattr(torch, name, None)):
        return name
    return None


def _keeps_leading_axes(torch: Any, gm: Any, user: Any, node: Any) -> bool:
    """Whether fx node ``user`` gives a value whose leading axes are those of ``node`` (one of
    its inputs): arithmetic, an elementwise function or method, or a last-axis layer taking
    ``node`` first. A softmax or normalization over another axis keeps them too."""
    if user.op == "call_function":
        if user.target in _AXES_KEPT_BY:
            return True
        name = _torch_function_name(torch, user.target)
        return ((name in _ELEMENTWISE or name in _LAST_AXIS_FUNCTIONS)
                and bool(user.args) and user.args[0] is node)
    if user.op == "call_method":
        return ((user.target in _ELEMENTWISE or user.target in _CASTS)
                and bool(user.args) and user.args[0] is node)
    if user.op == "call_module":
        mod = gm.get_submodule(user.target)
        cls = type(mod)
        return (cls.__name__ in _KEEPING_MODULES and getattr(torch.nn, cls.__name__, None) is cls
                and bool(user.args) and user.args[0] is node)
    return False


def _moved_axis(torch: Any, user: Any, node: Any) -> Any:
    """For a user that moves ``node``'s axes (``transpose`` / ``swapaxes`` / ``swapdims`` with
    non-negative dims, ``permute``, ``t()``; functions and methods), a function from an axis of
    the result to the axis of ``node`` it came from; else None."""
    fn = user.target if user.op == "call_function" else None
    name = user.target if user.op == "call_method" else _torch_function_name(torch, fn)
    args = list(user.args)
    if not args or args[0] is not node or user.kwargs:
        return None
    if name in ("transpose", "swapaxes", "swapdims") and len(args) == 3 and all(
            isinstance(d, int) and d >= 0 for d in args[1:]):
        a, b = args[1], args[2]
        return lambda k: b if k == a else a if k == b else k
    if name == "t" and len(args) == 1:
        return lambda k: 1 - k if k in (0, 1) else k
    if name == "permute":
        dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
        if dims and all(isinstance(d, int) and d >= 0 for d in dims):
            return lambda k: dims[k] if k < len(dims) else None
    return None


def _batch_axis_used(torch: Any, gm: Any, node: Any, depth: int) -> Any:
    nn = torch.nn
    through = []
    moved = []  # (user, its axis -> node's axis)
    weak = []  # what a batched matrix product says (its operands' axis 0), if nothing else
    joined = []  # (a torch.cat of node, its dim)
    for user in node.users:
        if _keeps_leading_axes(torch, gm, user, node):
            through.append(user)
            continue
        move = _moved_axis(torch, user, node)
        if move is not None:
            moved.append((user, move))
            continue
        name = (user.target if user.op == "call_method"
                else _torch_function_name(torch, user.target) if user.op == "call_function"
                else None)
        dim = _cat_dim(user, node) if name in ("cat", "concat", "concatenate") else None
        if dim is not None:
            joined.append((user, dim))
            continue
        if name == "bmm" and node in user.args[:2]:
            weak.append(0)  # the chatbot tutorial's attn_weights.bmm(outputs.transpose(0, 1))
            continue
        if user.op != "call_module":
            continue
        mod = gm.get_submodule(user.target)
        pos = [i for i, a in enumerate(user.args) if a is node]
        kw = [k for k, a in user.kwargs.items() if a is node]
        if isinstance(mod, (nn.LSTM, nn.GRU, nn.RNN)):
            if pos == [0]:
                return 0 if mod.batch_first else 1
            return 1  # an initial state (layers·dirs, B, H)
        if isinstance(mod, nn.MultiheadAttention):
            names = ["query", "key", "value", "key_padding_mask", "need_weights", "attn_mask"]
            used = [names[i] for i in pos if i < len(names)] + kw
            if "attn_mask" in used:
                return None
            if "key_padding_mask" in used:
                return 0
            return 0 if mod.batch_first else 1
        names = _transformer_arguments(nn, mod)
        if names is not None:
            used = [names[i] for i in pos if i < len(names)] + kw
            if any(n.endswith("key_padding_mask") for n in used):
                return 0
            if any(n.endswith("mask") for n in used):
                return None  # an attention mask (T, S): no batch axis
            if isinstance(mod, nn.Transformer):
                batch_first = mod.batch_first
            else:
                batch_first = (mod.layers[0] if hasattr(mod, "layers") else mod
                               ).self_attn.batch_first
            return 0 if batch_first else 1
    if depth < 8:
        for user in through:
            axis = _batch_axis_used(torch, gm, user, depth + 1)
            if axis is not _UNSEEN:
                return axis
        for user, move in moved:
            axis = _batch_axis_used(torch, gm, user, depth + 1)
            if isinstance(axis, int) and move(axis) is not None:
                return move(axis)
        # A cat keeps the axes other than its dim where they are: a class token prepended
        # along the time axis of a seq-first input, torch.cat([cls.expand(1, x.size(1), -1),
        # x]), before a seq-first layer. (Taken as axis 0 before, the time axis, x.size(1)
        # was the examples' batch, and the token a constant the cat refused: fuzzing find.)
        for user, dim in joined:
            axis = _batch_axis_used(torch, gm, user, depth + 1)
            if isinstance(axis, int) and axis != dim:
                return axis
    return weak[0] if weak else _UNSEEN


def _cat_dim(user: Any, node: Any) -> int | None:
    """The dim of ``torch.cat`` call ``user`` when ``node`` is one of the tensors it joins
    and the dim is a non-negative int (a negative one counts from an end the graph does not
    know), else None."""
    tensors = user.args[0] if user.args else user.kwargs.get("tensors")
    dim = user.args[1] if len(user.args) > 1 else user.kwargs.get(
        "dim", user.kwargs.get("axis", 0))
    if (not isinstance(tensors, (list, tuple)) or not any(t is node for t in tensors)
            or isinstance(dim, bool) or not isinstance(dim, int) or dim < 0):
        return None
    return dim


def _transformer_arguments(nn: Any, mod: Any) -> list[str] | None:
    """The positional argument names of a torch.nn transformer module's forward, or None for
    other modules."""
    if isinstance(mod, nn.TransformerEncoderLayer):
        return ["src", "src_mask", "src_key_padding_mask"]
    if isinstance(mod, nn.TransformerEncoder):
        return ["src", "mask", "src_key_padding_mask"]
    if isinstance(mod, (nn.TransformerDecoderLayer, nn.TransformerDecoder)):
        return ["tgt", "memory", "tgt_mask", "memory_mask", "tgt_key_padding_mask",
                "memory_key_padding_mask"]
    if isinstance(mod, nn.Transformer):
        return ["src", "tgt", "src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
                "tgt_key_padding_mask", "memory_key_padding_mask"]
    return None


def _refuse_bfloat16(torch: Any, module: Any, example_inputs: Any) -> None:
    """bfloat16 has no NumPy dtype: a module or example holding it is refused by name (a
    converted model computes in float32; float16 ones convert)."""
    def leaves(x: Any) -> Iterator[Any]:
        if isinstance(x, (tuple, list)):
            for e in x:
                yield from leaves(e)
        elif isinstance(x, torch.Tensor):
            yield x

    named = [*module.named_parameters(), *module.named_buffers()]
    where = [name for name, t in named if t is not None and t.dtype == torch.bfloat16]
    if any(t.dtype == torch.bfloat16 for t in leaves(example_inputs or ())):
        where.insert(0, "an example input")
    if where:
        raise TorchConversionError(
            f"from_torch: bfloat16 tensors ({', '.join(where[:3])}"
            f"{', ...' if len(where) > 3 else ''}) have no NumPy dtype; convert "
            "module.float() with float32 examples (the converted model computes in float32)")


def _to_numpy_input(torch: Any, x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return tuple(_to_numpy_input(torch, e) for e in x)
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, dict):
        raise TypeError(
            "from_torch: an example input is a dict; a converted model takes arrays, and "
            "tuples or lists of them, as positional arguments. Convert a wrapper: "
            "forward(self, x, y): return self.model({'x': x, 'y': y})")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"from_torch: an example input must be a tensor or an array (or a "
                        f"tuple of them), got {type(x).__name__}") from e
    if a.dtype.kind not in "biuf":  # objects, strings, complex numbers, dates
        raise TypeError(f"from_torch: an example input must be a tensor or an array of "
                        f"numbers or bools (or a tuple of them), got {type(x).__name__} of "
                        f"dtype {a.dtype}")
    return a


def _to_torch_example(torch: Any, examples: Any) -> Any:
    """The examples (``_to_numpy_input``) as tensors of the dtypes the converted model's
    inputs take (float32, bool or int64: _build), so that the dtypes seen while tracing
    are those the converted model computes in."""
    if isinstance(examples, (tuple, list)):
        return tuple(_to_torch_example(torch, e) for e in examples)
    return torch.from_numpy(np.array(examples, dtype=_input_dtype(examples)))


def _input_dtype(example: np.ndarray) -> Any:
    """The dtype of the converted model's input for an example: float32 for floats, bool,
    else int64 (ids, indices); a complex example is refused (a model's complex tensors are
    made inside it, _C)."""
    kind = example.dtype.kind
    if kind == "c":
        raise TorchConversionError(
            f"from_torch: a complex example input ({example.dtype}) is not supported; pass "
            "torch.view_as_real(x) and make it complex in forward (torch.view_as_complex)")
    return np.float32 if kind == "f" else np.bool_ if kind == "b" else np.int64


def _from_transformers(module: Any) -> bool:
    """Whether ``module``'s class is HuggingFace transformers' own."""
    return type(module).__module__.startswith("transformers.")


def _is_experts(mod: Any) -> bool:
    """Whether ``mod`` is a HuggingFace experts module: a class transformers decorates with
    ``use_experts_implementation`` (MixtralExperts, Qwen2MoeExperts, OlmoeExperts, ...),
    forward(hidden (N, H), top_k_index (N, k), top_k_weights (N, k)) with 3-D weights."""
    return (_from_transformers(mod)
            and all(hasattr(mod, a) for a in ("has_gate", "has_bias", "is_transposed",
                                               "down_proj"))
            and getattr(mod.down_proj, "ndim", 0) == 3)


def _int_bounds(key: Any) -> Any:
    """An index whose slice bounds that are constant 0-d integer tensors (computed at
    conversion: DeBERTa's ``x[m - span:m + span]``, span a torch.tensor of a size) are ints,
    as PyTorch reads them."""
    def bound(v: Any) -> Any:
        if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu":
            return int(v)
        return v

    if isinstance(key, tuple):
        return tuple(_int_bounds(k) for k in key)
    if isinstance(key, slice):
        return slice(bound(key.start), bound(key.stop), bound(key.step))
    return key


def _leaves(torch: Any, value: Any) -> list:
    """The leaves of ``value``: its values inside tuples, lists, dicts and slices."""
    leaves: list = []
    torch.fx.node.map_aggregate(value, leaves.append)
    return leaves


def _by_run_time_size(keys: tuple) -> bool:
    """Whether an index uses a size known only at run time (as an index or a slice bound)."""
    return any(isinstance(k, (_Dim, _Unknown)) or (isinstance(k, slice) and any(
        isinstance(v, _Dim) for v in (k.start, k.stop, k.step))) for k in keys)
