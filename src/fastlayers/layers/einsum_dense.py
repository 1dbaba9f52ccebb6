"""EinsumDense (Keras ``EinsumDense``): a dense layer written as an einsum equation, the
projection inside Keras's MultiHeadAttention and many transformer blocks
(docs/semantics.md §28).

``y = activation(einsum(equation, inputs, kernel) + bias)``. The equation is Keras's
``"X,Y->Z"``, ``"...X,Y->...Z"`` or ``"X...,Y->Z..."``. Most equations are a plain matrix
product once the inputs and the kernel are flattened: the input's letters are the output's
leading letters followed by the contracted ones, and the kernel's are the contracted ones
followed by the output's trailing letters (``"abc,cd->abd"``, ``"abc,cde->abde"``,
``"abcd,cde->abe"``). Those run the dense op (the C++ GEMM with the bias and activation
fused, or NumPy); any other equation runs ``numpy.einsum`` under every backend.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import numpy as np

from .. import _validation as V
from .. import functional as F
from .._cpp import pack_dense
from .._numpy import activations as _np_act
from .base import WEIGHT_TRAINING_ARGS, Layer, Shape, _shape_tuple
from .initializers import weight_spec

F32 = np.float32

__all__ = ["EinsumDense"]

# Activations over an axis (the last), not value by value.
_AXIS_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")


class _Spec(NamedTuple):
    """An equation's letters: x (inputs), w (kernel), y (output), and where "..." stands:
    "left" (before x and y), "right" (after them) or None."""

    x: str
    w: str
    y: str
    ellipsis: str | None


def _parse(equation: Any, owner: str) -> _Spec:
    """Keras's three forms, checked as Keras checks them (every output letter comes from
    the inputs or the kernel; every kernel letter is in the inputs or the output)."""
    if not isinstance(equation, str):
        raise TypeError(f"{owner}: equation must be a string, got {type(equation).__name__}")
    eq = equation.replace(" ", "")
    forms = ((r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", None),
             (r"\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)", "left"),
             (r"([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\.", "right"))
    for pattern, ellipsis in forms:
        m = re.fullmatch(pattern, eq)
        if m:
            spec = _Spec(*m.groups(), ellipsis)
            break
    else:
        raise ValueError(
            f"{owner}: invalid einsum equation {equation!r}; equations must be in the form "
            "X,Y->Z, ...X,Y->...Z or X...,Y->Z..."
        )
    for part, letters in (("inputs", spec.x), ("kernel", spec.w), ("output", spec.y)):
        if len(set(letters)) != len(letters):
            raise ValueError(f"{owner}: equation {equation!r} repeats a letter in its {part}")
    for c in spec.y:
        if c not in spec.x and c not in spec.w:
            raise ValueError(
                f"{owner}: output letter {c!r} of {equation!r} is neither in the inputs nor in "
                "the kernel"
            )
    for c in spec.w:
        if c not in spec.x and c not in spec.y:
            raise ValueError(
                f"{owner}: kernel letter {c!r} of {equation!r} is neither in the inputs nor in "
                "the output (the kernel must be fully specified)"
            )
    return spec


class _Plan(NamedTuple):
    """A dense-like equation as one matrix product: inputs (..., *contracted) reshaped to
    (M, K) times ``kernel`` (K, N), N the product of ``out_dims``."""

    contracted: int  # the number of trailing input axes summed over
    kernel: np.ndarray  # (K, N), a view of the layer's kernel
    bias: np.ndarray | None  # (N,): the bias over out_dims when folded, else None
    out_dims: tuple  # the kernel's output dims (the output's trailing axes)
    fold_bias: bool  # the bias (if any) lives on out_dims only: folded into the GEMM


def _dense_plan(spec: _Spec, kernel: np.ndarray, bias: np.ndarray | None) -> _Plan | None:
    """The flattening that makes the einsum a matrix product, or None."""
    if spec.ellipsis == "right":
        return None
    contracted = "".join(c for c in spec.x if c in spec.w and c not in spec.y)
    free = "".join(c for c in spec.x if c not in spec.w)
    outs = "".join(c for c in spec.w if c not in spec.x)
    if (spec.x != free + contracted or spec.w != contracted + outs or spec.y != free + outs
            or not contracted):
        return None
    n = len(contracted)
    out_dims = tuple(kernel.shape[n:])
    fold = bias is None or bias.ndim <= len(outs)
    flat_bias = None
    if fold and bias is not None:
        flat_bias = np.ascontiguousarray(np.broadcast_to(bias, out_dims).reshape(-1), F32)
    k2 = kernel.reshape(math.prod(kernel.shape[:n]), math.prod(out_dims))
    return _Plan(n, k2, flat_bias, out_dims, fold)


class EinsumDense(Layer):
    """A dense layer given as an einsum equation (Keras ``EinsumDense``).

    Parameters
    ----------
    equation : str
        "X,Y->Z", "...X,Y->...Z" or "X...,Y->Z..." (X the inputs' letters, Y the
        kernel's, Z the output's), e.g. "abc,cde->abde".
    output_shape : int or tuple
        The output's shape without the batch axis (and without the axes "..." stands for);
        None for an axis whose size comes from the inputs.
    activation : str, callable or None
    bias_axes : str or None
        Output letters that carry a bias (e.g. "de"); None: no bias.
    kernel_initializer, bias_initializer : str or callable
    seed : int, optional
    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint : ignored.
    lora_rank, lora_alpha, quantization_config, gptq_unpacked_column_size : must be None.

    Weights (Keras's shapes): ``kernel`` with one axis per kernel letter (the input's size
    for a contracted letter, the output's for the others), then ``bias`` if bias_axes: the
    output's axes from the first bias letter on, 1 where a letter has no bias (and 1 for
    each axis "..." stands for on the right).

    Call: ``layer(inputs)``; returns float32 of the output shape (the batch first).
    """

    config_keys = ("equation", "output_shape", "activation", "bias_axes",
                   "kernel_initializer", "bias_initializer", "seed")
    call_weights = ("kernel", "bias")
    ignored_args = WEIGHT_TRAINING_ARGS
    unsupported_args = {"lora_rank": None, "lora_alpha": None, "quantization_config": None,
                        "gptq_unpacked_column_size": None}
    supports_masking = False

    def __init__(
        self,
        equation: str,
        output_shape: Any,
        activation: Any = None,
        bias_axes: str | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self._spec = _parse(equation, owner)
        self.equation = equation
        shape = (output_shape,) if isinstance(output_shape, (int, np.integer)) else output_shape
        if not isinstance(shape, (tuple, list)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1)
            for d in shape
        ):
            raise ValueError(
                f"{owner}: output_shape must be an int >= 1 or a tuple of ints >= 1 and None, "
                f"got {output_shape!r}"
            )
        self.output_shape = tuple(None if d is None else int(d) for d in shape)
        if bias_axes is not None:
            if not isinstance(bias_axes, str) or not bias_axes:
                raise ValueError(f"{owner}: bias_axes must be None or output letters, got "
                                 f"{bias_axes!r}")
            missing = [c for c in bias_axes if c not in self._spec.y]
            if missing:
                raise ValueError(
                    f"{owner}: bias letters {missing} are not in the output "
                    f"{self._spec.y!r} of {equation!r}"
                )
        self.bias_axes = bias_axes
        V.activation(activation, owner)
        self.activation = activation
        self._init_weight_args(bias_axes is not None, kernel_initializer, bias_initializer)

    _gemm: _Plan | None = None  # set with the weights (_on_weights_set)

    def _config_changed(self, name: str) -> None:
        if name == "equation":
            self._spec = _parse(self.equation, type(self).__name__)
            if self.built:
                try:
                    self._on_weights_set()
                except ValueError:
                    # The weights do not fit the new equation (until set_weights): no
                    # matrix-product form, and a call's shape check says what is wrong.
                    self._gemm = self._packed = None

    # ---- shapes (Keras's rules) -----------------------------------------------------------
    def _shapes(self, input_shape: tuple) -> tuple[tuple, tuple | None, tuple]:
        """(kernel shape, bias shape or None, full output shape) for inputs of
        ``input_shape`` (the batch may be None)."""
        owner, spec = self._owner(), self._spec
        elided = len(input_shape) - len(spec.x)
        if elided < 0 or (elided > 0 and spec.ellipsis is None):
            raise ValueError(
                f"{owner}: inputs of rank {len(input_shape)} do not fit the equation "
                f"{self.equation!r} (its inputs have {len(spec.x)} letters)"
            )
        shape = list(self.output_shape)
        trailing = list(input_shape[len(spec.x):])
        if (spec.ellipsis == "right" and elided > 0 and len(shape) == len(spec.y) - 1 + elided
                and all(d is None or t is None or d == t
                        for d, t in zip(shape[-elided:], trailing))):
            # output_shape with the ellipsis's axes too ('ab...,bc->ac...', (5, 3) for inputs
            # (B, 6, 3)), against Keras's documented rule: Keras computes the same product
            # (its kernel takes the letters' sizes alone), so it is taken as (5,)
            shape = shape[:-elided]
        out = [input_shape[0], *shape]
        if spec.ellipsis == "left":
            out[1:1] = input_shape[1:elided]
        else:
            out += trailing
        if len(out) != len(spec.y) + max(elided, 0):
            raise ValueError(
                f"{owner}: output_shape {self.output_shape} does not fit the output "
                f"{spec.y!r} of {self.equation!r}"
            )
        first = elided if spec.ellipsis == "left" else 0
        x_dim = {c: input_shape[first + i] for i, c in enumerate(spec.x)}
        y_dim = {c: out[first + i] for i, c in enumerate(spec.y)}
        for c, d in x_dim.items():
            if c in y_dim and y_dim[c] is not None and d is not None and y_dim[c] != d:
                raise ValueError(
                    f"{owner}: the inputs have {d} on letter {c!r}, output_shape says "
                    f"{y_dim[c]}"
                )
            if c in y_dim and y_dim[c] is None:
                y_dim[c] = d
        full = list(out)
        if spec.ellipsis == "left":
            for i, c in enumerate(spec.y):
                full[elided + i] = y_dim[c]
        else:
            for i, c in enumerate(spec.y):
                full[i] = y_dim[c]
        kernel = tuple(y_dim[c] if c in y_dim else x_dim[c] for c in spec.w)
        bias = None
        if self.bias_axes is not None:
            first = min(spec.y.index(c) for c in self.bias_axes)
            bias = tuple(y_dim[c] if c in self.bias_axes else 1 for c in spec.y[first:])
            if spec.ellipsis != "left":
                bias += (1,) * elided
        return kernel, bias, tuple(full)

    def _weight_specs(self, input_shape):
        if input_shape is None:
            specs = [weight_spec("kernel", None, self.kernel_initializer)]
            if self.use_bias:
                specs.append(weight_spec("bias", None, self.bias_initializer))
            return specs
        kernel, bias, _ = self._shapes(tuple(input_shape))
        # Keras's fans: the kernel's axes that are input letters, and those that are output
        # letters (initializers' input_axes and output_axes).
        fan_in = math.prod(d for c, d in zip(self._spec.w, kernel) if c in self._spec.x)
        fan_out = math.prod(d for c, d in zip(self._spec.w, kernel) if c in self._spec.y)
        specs = [weight_spec("kernel", kernel, self.kernel_initializer, (fan_in, fan_out))]
        if bias is not None:
            specs.append(weight_spec("bias", bias, self.bias_initializer))
        return specs

    def _input_shape_from_weights(self, shapes):
        """An input shape that gives these weights: the contracted letters' sizes from the
        kernel, the others unknown (the checks at the first call compare the rest)."""
        kernel = shapes[0] if shapes else ()
        spec = self._spec
        if len(kernel) != len(spec.w):
            raise ValueError(
                f"{self._owner()}: the kernel must have {len(spec.w)} axes for "
                f"{self.equation!r}, got shape {tuple(kernel)}"
            )
        sizes = dict(zip(spec.w, kernel))
        x = [sizes.get(c) for c in spec.x]
        if spec.ellipsis == "left":  # "..." holds the batch at least
            return tuple([None] + x)
        if spec.ellipsis == "right" and self.bias_axes is not None and len(shapes) > 1:
            # the bias has a 1 for each axis "..." stands for
            first = min(spec.y.index(c) for c in self.bias_axes)
            x += [None] * max(len(shapes[1]) - len(spec.y[first:]), 0)
        return tuple(x)

    def build(self, input_shape: Shape) -> None:
        """Create the kernel and bias for inputs of ``input_shape``."""
        input_shape = _shape_tuple(input_shape)
        kernel, bias, _ = self._shapes(input_shape)
        if any(d is None for d in kernel + (bias or ())):
            raise ValueError(
                f"{self._owner()}: build needs the sizes the weights depend on; input_shape "
                f"{input_shape} and output_shape {self.output_shape} leave kernel {kernel}"
            )
        self._create_weights(input_shape)

    # ---- calls --------------------------------------------------------------------------
    def call(self, inputs: Any, training: Any = None) -> np.ndarray:
        owner = self._owner()
        x = V.array(inputs, owner, "inputs")
        kernel, bias = self._ready(x.shape)
        want_kernel, want_bias, out_shape = self._shapes(x.shape)
        if kernel.shape != want_kernel or (bias is not None and bias.shape != want_bias):
            raise ValueError(
                f"{owner}: inputs of shape {x.shape} need kernel {want_kernel}"
                + (f" and bias {want_bias}" if bias is not None else "")
                + f", the layer holds {kernel.shape}"
                + (f" and {bias.shape}" if bias is not None else "")
            )
        plan = self._gemm
        if plan is None or x.size == 0:
            y = np.einsum(self.equation, x, kernel, optimize=True).astype(F32, copy=False)
            y = y if bias is None else y + bias
            return _activate(np.ascontiguousarray(y, dtype=F32), self.activation, owner)
        # The GEMM's epilogue applies an activation to each value alone: one that looks at
        # a whole axis (softmax) or a callable runs after the reshape, on Keras's axes.
        act = V.activation(self.activation, owner)
        fuse = plan.fold_bias and not callable(act) and act not in _AXIS_ACTIVATIONS
        lead = x.shape[:x.ndim - plan.contracted]
        x2 = x.reshape(math.prod(lead), plan.kernel.shape[0])
        a = V.check_dense(x2, plan.kernel, plan.bias, act if fuse else None, op=owner,
                          x_name="inputs")
        y = F.run_dense(a, self._packed).reshape(*lead, *plan.out_dims)
        if not plan.fold_bias and bias is not None:
            y = y + bias
        return y if fuse else _activate(np.ascontiguousarray(y, dtype=F32), act, owner)

    def _on_weights_set(self) -> None:
        # The matrix-product form of the weights, made once per set_weights (the GEMM's
        # packed copy below is made from it).
        self._gemm = _dense_plan(self._spec, self._weight("kernel"), self._weight("bias"))
        super()._on_weights_set()

    def _symbolic_output_shape(self, shape: tuple) -> tuple | None:
        try:
            kernel, bias, out = self._shapes(shape)
        except ValueError:
            return None  # the zero run raises the call's error
        act = V.activation(self.activation, self._owner())
        if callable(act) or act == "glu" or any(d is None for d in kernel):
            return None
        self._ready((2 if shape[0] is None else shape[0], *shape[1:]))
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_gemm", None)  # views of the weights, made again on load
        return state

    def _pack(self):  # the flattened kernel with the bias folded in, when dense-like
        plan = self._gemm
        if plan is None or not plan.fold_bias:
            return None
        return pack_dense(plan.kernel, plan.bias)


def _activate(y: np.ndarray, activation: Any, owner: str) -> np.ndarray:
    """The layer's activation after an einsum (NumPy's, as the other layers' unfused ones)."""
    act = V.activation(activation, owner)
    return y if act is None or act == "linear" else _np_act.apply(act, y)
