"""Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot,
and their functional forms (``add``, ``concatenate``, ``dot``, ...), as in Keras 3.

Every merge layer takes a list of arrays. The elementwise ones (Add ... Minimum) follow
Keras's ``Merge`` rules (keras/src/layers/merging/base_merge.py, docs/semantics.md §
"Merging layers"):

* every input has rank >= 1 and the same batch size (axis 0 never broadcasts);
* the other axes broadcast as in NumPy, right-aligned: an input of lower rank gets size-1
  axes inserted right after the batch axis (Keras expands it at axis 1);
* incompatible shapes raise ``ValueError`` naming the layer and the shapes.

Masks (the implicit Keras masks, one entry per input, each None or a bool array of the
input's shape without its last axis): ``compute_mask`` is Keras's ``Merge.compute_mask``
(None unless every input has a mask, then the logical OR of the masks); Maximum and
Minimum let a masked entry take the other inputs' value, Multiply treats a masked entry as
1 and zeroes the entries masked in every input, as Keras's merge functions do. Concatenate
concatenates the masks (an input without a mask counts as all True). Dot has no output
mask.

Which path runs: the elementwise layers and Concatenate are NumPy on every backend
(memory-bound elementwise work with nothing for the C++ kernels to add); Dot's product is
``fastlayers.matmul``, which runs in C++ where the backend allows. When the core is loaded,
Add, Subtract, Average, Concatenate, and Multiply, Maximum and Minimum without masks, write
into an array the core allocates
(:func:`_new_f32`): the same values, in memory that is 64-byte aligned and, inside a model,
most likely still cached (docs/architecture.md §8; a residual Add's output is as large as a
conv's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend
from .. import _validation as V
from .. import functional as F
from .._cpp._alloc import empty_f32
from .base import Layer, _bool

F32 = np.float32

__all__ = [
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
    "add",
    "subtract",
    "multiply",
    "average",
    "maximum",
    "minimum",
    "concatenate",
    "dot",
]


def _input_list(layer: Layer, inputs: Any) -> list[np.ndarray]:
    owner = layer._owner()
    if not isinstance(inputs, (list, tuple)):
        raise ValueError(
            f"{owner}: a merge layer is called on a list of inputs, got "
            f"{type(inputs).__name__}"
        )
    if len(inputs) < 1:
        raise ValueError(f"{owner}: a merge layer needs at least 1 input, got an empty list")
    xs = [V.array(x, owner, f"inputs[{i}]") for i, x in enumerate(inputs)]
    for i, x in enumerate(xs):
        V.min_rank(x, owner, f"inputs[{i}]", 1, "(batch, ...)")
    return xs


def _same_batch(owner: str, xs: list[np.ndarray]) -> None:
    if len({x.shape[0] for x in xs}) > 1:
        raise ValueError(
            f"{owner}: cannot merge inputs with different batch sizes; got shapes "
            f"{[x.shape for x in xs]}"
        )


def _mask_list(owner: str, mask: Any, n: int) -> list[np.ndarray | None]:
    """The call's mask argument as one entry (None or bool array) per input."""
    if mask is None:
        return [None] * n
    if not isinstance(mask, (list, tuple)):
        raise ValueError(
            f"{owner}: mask must be a list with one entry (an array or None) per input, got "
            f"{type(mask).__name__}"
        )
    if len(mask) != n:
        raise ValueError(f"{owner}: mask has {len(mask)} entries for {n} inputs")
    return [None if m is None else V.bool_mask(m, owner, f"mask[{i}]") for i, m in enumerate(mask)]


def _expand_mask(owner: str, m: np.ndarray, x: np.ndarray, i: int) -> np.ndarray:
    """Keras's ``broadcast_to(expand_dims(mask, -1), x.shape)``."""
    try:
        return np.broadcast_to(m[..., None], x.shape)
    except ValueError:
        raise ValueError(
            f"{owner}: mask[{i}] of shape {m.shape} does not fit inputs[{i}] of shape "
            f"{x.shape} (expected the input's shape without its last axis)"
        ) from None


def _new_f32(shape: tuple) -> np.ndarray:
    """An uninitialized float32 array: the core's (aligned, a recently freed block) when it
    is loaded, else NumPy's."""
    if not _backend.core_available():
        return np.empty(shape, F32)
    return empty_f32(shape)


def _chain_into(op: Any, xs: list[np.ndarray], shape: tuple | None = None) -> np.ndarray:
    """``op(...op(op(xs[0], xs[1]), xs[2])...)`` for two or more float32 arrays, into one new
    array of their broadcast shape (``shape`` when known): the values of the chain of NumPy
    calls."""
    out = _new_f32(np.broadcast_shapes(*(x.shape for x in xs)) if shape is None else shape)
    with np.errstate(over="ignore"):  # inf, as IEEE (and PyTorch, silently) has it: two
        op(xs[0], xs[1], out=out)     # masks of float32's lowest value added (GPT-Neo)
        for x in xs[2:]:
            op(out, x, out=out)
    return out


class _Merge(Layer):
    """The elementwise merge layers' shared checks, broadcasting and masks."""

    supports_masking = True
    _exactly: int | None = None  # the number of inputs the layer takes, if fixed
    _chain: Any = None  # the ufunc _merge chains over two or more inputs without masks
    _list_runner = True  # _runner takes the list of inputs (models/shape_plan.py)

    def _runner(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): two or more arrays of one rank, no
        mask - the chain of NumPy calls of ``_merge`` into a new array (so never a view of
        an input), as a function of the arrays."""
        op = self._chain
        if op is None or mask is not None or len(inputs) < 2 or len(
                {x.ndim for x in inputs}) > 1:
            return None
        # A subclass with a _merge of its own computes something else than the chain.
        owner = next(c for c in type(self).__mro__ if "_chain" in c.__dict__)
        if type(self)._merge is not owner._merge:
            return None
        shape = np.broadcast_shapes(*(x.shape for x in inputs))  # the guard fixes them
        return lambda *xs: _chain_into(op, xs, shape)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _check(self, inputs: Any) -> list[np.ndarray]:
        owner = self._owner()
        xs = _input_list(self, inputs)
        if self._exactly is not None and len(xs) != self._exactly:
            raise ValueError(
                f"{owner}: takes exactly {self._exactly} inputs, got {len(xs)}"
            )
        _same_batch(owner, xs)
        try:
            np.broadcast_shapes(*[x.shape[1:] for x in xs])
        except ValueError:
            raise ValueError(
                f"{owner}: inputs have incompatible shapes {[x.shape for x in xs]} (axes after "
                "the batch axis must be equal or 1, right-aligned)"
            ) from None
        if not self.built:
            self.build([x.shape for x in xs])
        return xs

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        """inputs: a list of arrays (batch, ...); mask: None or one entry per input."""
        xs = self._check(inputs)
        masks = _mask_list(self._owner(), mask, len(xs))
        rank = max(x.ndim for x in xs)
        if any(x.ndim != rank for x in xs):
            # Keras inserts axes after the batch axis; the expanded tensors carry no mask.
            xs = [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]
            masks = [None] * len(xs)
        out = self._merge(xs, masks)
        out = np.asarray(out, dtype=F32)
        return out if not any(np.shares_memory(out, x) for x in xs) else out.copy()

    def _merge(self, xs: list[np.ndarray], masks: list[np.ndarray | None]) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def compute_mask(self, inputs: Any, mask: Any = None) -> np.ndarray | None:
        """Keras's ``Merge.compute_mask``: None unless every input has a mask, then the
        logical OR of the masks (broadcast)."""
        if mask is None:
            return None
        owner = self._owner()
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{owner}: compute_mask: inputs must be a list")
        masks = _mask_list(owner, mask, len(inputs))
        if any(m is None for m in masks):
            return None
        try:
            out = np.logical_or.reduce(np.broadcast_arrays(*masks))
        except ValueError:
            raise ValueError(
                f"{owner}: compute_mask: the masks of shapes {[m.shape for m in masks]} do not "
                "broadcast together"
            ) from None
        return np.ascontiguousarray(out)


def _masked_extremum(op: Any, owner: str, xs: list[np.ndarray],
                     masks: list[np.ndarray | None]) -> np.ndarray:
    """Keras's ``Merge._apply_merge_op_and_or_mask``: a masked entry takes the value the
    others give (the first input's value where every input is masked)."""
    output = xs[0]
    out_mask = None if masks[0] is None else _expand_mask(owner, masks[0], xs[0], 0)
    for i in range(1, len(xs)):
        x = xs[i]
        m = None if masks[i] is None else _expand_mask(owner, masks[i], x, i)
        if m is not None:
            x = np.where(m, x, output)
        if out_mask is not None:
            output = np.where(out_mask, output, x)
        out_mask = np.logical_or(out_mask, m) if m is not None and out_mask is not None else None
        output = op(output, x)
    return output


class Add(_Merge):
    """Keras ``Add``: the elementwise sum of a list of inputs (summed left to right).

    Call: ``layer([x1, x2, ...])``, each (batch, ...) with one batch size, the other axes
    broadcasting as in NumPy (an input of lower rank gets size-1 axes after the batch axis);
    returns float32 of the broadcast shape. No weights. NumPy on every backend.
    """

    _chain = np.add

    def _merge(self, xs, masks):
        return xs[0] if len(xs) == 1 else _chain_into(np.add, xs)


class Subtract(_Merge):
    """Keras ``Subtract``: ``inputs[0] - inputs[1]`` (exactly two inputs).

    Call: ``layer([x1, x2])``, each (batch, ...) with one batch size, the other axes
    broadcasting as in NumPy (as Add); returns float32 of the broadcast shape. No weights. NumPy
    on every backend.
    """

    _exactly = 2
    _chain = np.subtract

    def _merge(self, xs, masks):
        return _chain_into(np.subtract, xs)


class Multiply(_Merge):
    """Keras ``Multiply``: the elementwise product of a list of inputs.

    With masks, a masked entry counts as 1; when every input has a mask, entries masked in
    all inputs are 0 (Keras's rule). Call: ``layer([x1, x2, ...], mask=None)``, each
    (batch, ...) with one batch size, the other axes broadcasting as in NumPy (as Add);
    returns float32 of the broadcast shape. No weights. NumPy on every backend.
    """

    _chain = np.multiply

    def _merge(self, xs, masks):
        if len(xs) > 1 and all(m is None for m in masks):
            return _chain_into(np.multiply, xs)
        owner = self._owner()
        all_masked = all(m is not None for m in masks)
        out = out_mask = None
        for i, (x, m) in enumerate(zip(xs, masks)):
            if m is not None:
                m = _expand_mask(owner, m, x, i)
                x = np.where(m, x, F32(1))
                if all_masked:
                    out_mask = m if out_mask is None else np.logical_or(out_mask, m)
            out = x if out is None else out * x
        if all_masked:
            out = np.where(out_mask, out, F32(0))
        return out


class Average(_Merge):
    """Keras ``Average``: the sum of the inputs (left to right) divided by their number.

    Call: ``layer([x1, x2, ...])``, each (batch, ...) with one batch size, the other axes
    broadcasting as in NumPy (as Add); returns float32 of the broadcast shape. No weights. NumPy
    on every backend.
    """

    def _merge(self, xs, masks):
        if len(xs) == 1:
            return xs[0] / F32(1)
        out = _chain_into(np.add, xs)
        return np.divide(out, F32(len(xs)), out=out)


class Maximum(_Merge):
    """Keras ``Maximum``: the elementwise maximum of a list of inputs.

    With masks, a masked entry is replaced by the value of the others (Keras's rule).
    Call: ``layer([x1, x2, ...], mask=None)``, each (batch, ...) with one batch size, the other
    axes broadcasting as in NumPy (as Add); returns float32 of the broadcast shape. No weights.
    NumPy on every backend.
    """

    _chain = np.maximum

    def _merge(self, xs, masks):
        if len(xs) > 1 and all(m is None for m in masks):
            return _chain_into(np.maximum, xs)
        return _masked_extremum(np.maximum, self._owner(), xs, masks)


class Minimum(_Merge):
    """Keras ``Minimum``: the elementwise minimum of a list of inputs (masks as Maximum).

    Call: ``layer([x1, x2, ...], mask=None)``, each (batch, ...) with one batch size, the other
    axes broadcasting as in NumPy (as Add); returns float32 of the broadcast shape. No weights.
    NumPy on every backend.
    """

    _chain = np.minimum

    def _merge(self, xs, masks):
        if len(xs) > 1 and all(m is None for m in masks):
            return _chain_into(np.minimum, xs)
        return _masked_extremum(np.minimum, self._owner(), xs, masks)


def _int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class Concatenate(Layer):
    """Keras ``Concatenate``: joins a list of inputs along ``axis``.

    Parameters
    ----------
    axis : int
        The axis to join along (default -1); negative counts from the end. Every input must
        have the same rank and the same sizes on every other axis.

    Call: ``layer([x1, x2, ...])``; returns float32. No weights. NumPy on every backend.

    Mask (Keras's ``Concatenate.compute_mask``): None when no input has one; else each
    input's mask (an input without one: all True) is broadcast to the input's shape when it
    has a lower rank, the masks are concatenated along ``axis``, and the result is the OR
    over the last axis.
    """

    config_keys = ("axis",)
    supports_masking = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not _int(axis):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"{self._owner()}: axis {self.axis} is out of range for inputs of rank {rank}"
            )
        return self.axis % rank

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        """inputs: a list of arrays of equal rank and equal shapes except along axis."""
        owner = self._owner()
        xs = _input_list(self, inputs)
        ranks = {x.ndim for x in xs}
        if len(ranks) > 1:
            raise ValueError(
                f"{owner}: inputs must have the same rank; got shapes {[x.shape for x in xs]}"
            )
        axis = self._axis(xs[0].ndim)
        rest = {x.shape[:axis] + x.shape[axis + 1:] for x in xs}
        if len(rest) > 1:
            raise ValueError(
                f"{owner}: inputs must have matching shapes except along the concatenation "
                f"axis {self.axis}; got shapes {[x.shape for x in xs]}"
            )
        if not self.built:
            self.build([x.shape for x in xs])
        shape = (*xs[0].shape[:axis], sum(x.shape[axis] for x in xs), *xs[0].shape[axis + 1:])
        return np.concatenate(xs, axis=axis, out=_new_f32(shape))

    _list_runner = True  # _runner takes the list of inputs (models/shape_plan.py)

    def _runner(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:
        """A model's shape plan (models/shape_plan.py): no mask - the arrays concatenated
        into a new array of the recorded shape, as ``call`` does."""
        if mask is not None:
            return None
        axis = self._axis(inputs[0].ndim)
        x0 = inputs[0]
        shape = (*x0.shape[:axis], sum(x.shape[axis] for x in inputs), *x0.shape[axis + 1:])

        def run(*xs: np.ndarray) -> np.ndarray:
            return np.concatenate(xs, axis=axis, out=_new_f32(shape))

        return run

    _symbolic_list_input = True

    def _symbolic_output_shape(self, shapes: Any) -> tuple | None:
        if not isinstance(shapes, list) or len({len(s) for s in shapes}) != 1:
            return None
        axis = self._axis(len(shapes[0]))
        if axis == 0 or len({s[:axis] + s[axis + 1:] for s in shapes}) != 1:
            return None  # a batch that adds up, or shapes the zero run refuses
        if not self.built:
            self.build([(2 if s[0] is None else s[0], *s[1:]) for s in shapes])
        return (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1:])

    def compute_mask(self, inputs: Any, mask: Any = None) -> np.ndarray | None:
        if mask is None:
            return None
        owner = self._owner()
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{owner}: compute_mask: inputs must be a list")
        masks = _mask_list(owner, mask, len(inputs))
        if all(m is None for m in masks):
            return None
        shapes = [np.shape(x) for x in inputs]
        full = []
        for i, (shape, m) in enumerate(zip(shapes, masks)):
            if m is None:
                full.append(np.ones(shape, dtype=bool))
            elif m.ndim < len(shape):
                try:
                    full.append(np.broadcast_to(m[..., None], shape))
                except ValueError:
                    raise ValueError(
                        f"{owner}: mask[{i}] of shape {m.shape} does not fit inputs[{i}] of "
                        f"shape {shape}"
                    ) from None
            else:
                full.append(m)
        try:
            joined = np.concatenate(full, axis=self.axis)
        except ValueError as e:  # numpy's AxisError is a ValueError
            raise ValueError(f"{owner}: compute_mask: the masks do not concatenate: {e}") from None
        return np.any(joined, axis=-1)


class Dot(Layer):
    """Keras ``Dot``: the dot product of two inputs along one axis of each, per sample.

    Parameters
    ----------
    axes : int or (int, int)
        The axis of each input to contract (one int: the same for both); negative axes count
        from the end of each input; the batch axis 0 cannot be one of them.
    normalize : bool
        L2-normalize each input along its axis first (Keras: ``x * min(1/sqrt(sum(x**2)),
        1e7)``), so that the result is the cosine similarity.

    Call: ``layer([x, y])`` with x (batch, ...) and y (batch, ...), rank >= 2, the same
    batch size and the same size on the contracted axes. Keras's ``batch_dot``: the result
    has x's axes without the contracted one, then y's axes without the batch axis and the
    contracted one; a result of rank 1 becomes (batch, 1). E.g. x (B, 3, 5), y (B, 10, 3),
    axes (1, 2) -> (B, 5, 10). Returns float32. No weights, no output mask.

    Path: the normalization is NumPy; the product is ``fastlayers.matmul`` (C++ where the
    backend allows).
    """

    config_keys = ("axes", "normalize")
    supports_masking = True

    def __init__(self, axes: Any, normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot: axes must be an int or two ints, got {axes!r}")
            if not all(_int(a) for a in axes):
                raise ValueError(f"Dot: axes must hold two integers, got {axes!r}")
            axes = (int(axes[0]), int(axes[1]))
        elif _int(axes):
            axes = int(axes)
        else:
            raise TypeError(f"Dot: axes must be an int or a pair of ints, got {axes!r}")
        self.axes = axes
        self.normalize = _bool(normalize, "Dot", "normalize")

    def build(self, input_shape: Any) -> None:
        self._create_weights(input_shape)

    def _resolve_axes(self, x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
        owner = self._owner()
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        out = []
        for name, a, arr in (("inputs[0]", pair[0], x), ("inputs[1]", pair[1], y)):
            if not -arr.ndim <= a < arr.ndim:
                raise ValueError(
                    f"{owner}: axis {a} is out of range for {name} of shape {arr.shape}"
                )
            a %= arr.ndim
            if a == 0:
                raise ValueError(
                    f"{owner}: cannot take the dot product over the batch axis 0 (axes="
                    f"{self.axes!r}, {name} of shape {arr.shape})"
                )
            out.append(a)
        return out[0], out[1]

    def call(self, inputs: Any, mask: Any = None, training: Any = None) -> np.ndarray:
        owner = self._owner()
        xs = _input_list(self, inputs)
        if len(xs) != 2:
            raise ValueError(f"{owner}: takes exactly 2 inputs, got {len(xs)}")
        x, y = xs
        for i, a in enumerate(xs):
            V.min_rank(a, owner, f"inputs[{i}]", 2, "(batch, ...)")
        _same_batch(owner, xs)
        ax, ay = self._resolve_axes(x, y)
        if x.shape[ax] != y.shape[ay]:
            raise ValueError(
                f"{owner}: incompatible shapes {x.shape} and {y.shape}: axis {ax} of the first "
                f"({x.shape[ax]}) must equal axis {ay} of the second ({y.shape[ay]})"
            )
        if not self.built:
            self.build([x.shape, y.shape])
        if self.normalize:
            x, y = _l2_normalize(x, ax), _l2_normalize(y, ay)
        b, d = x.shape[0], x.shape[ax]
        xm = np.moveaxis(x, ax, -1)  # (B, x rest..., D)
        ym = np.moveaxis(y, ay, 1)  # (B, D, y rest...)
        x_rest, y_rest = xm.shape[1:-1], ym.shape[2:]
        p, q = int(np.prod(x_rest, dtype=np.int64)), int(np.prod(y_rest, dtype=np.int64))
        out = F.matmul(xm.reshape(b, p, d), ym.reshape(b, d, q))
        out = out.reshape((b,) + x_rest + y_rest)
        if out.ndim == 1:
            out = out.reshape(b, 1)
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        """Keras's Dot has no output mask."""
        return None


def _l2_normalize(x: np.ndarray, axis: int) -> np.ndarray:
    """Keras's ``ops.normalize(x, axis)`` (order 2): x * min(rsqrt(sum(x**2)), 1/epsilon)."""
    square_sum = np.sum(np.square(x), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = F32(1) / np.sqrt(square_sum)
    return x * np.minimum(inv, F32(1e7))


# ---- the functional forms (keras.layers.add, ...) ---------------------------------------


def add(inputs: Any, **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)`` (Keras ``keras.layers.add``): ``inputs`` a list of
    arrays (batch, ...) that broadcast as :class:`Add` says; returns float32 of the
    broadcast shape."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Any, **kwargs: Any) -> Any:
    """``Subtract(**kwargs)(inputs)`` (Keras ``keras.layers.subtract``): ``inputs`` a list of
    arrays (batch, ...) that broadcast as :class:`Subtract` says; returns float32 of the
    broadcast shape."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Any, **kwargs: Any) -> Any:
    """``Multiply(**kwargs)(inputs)`` (Keras ``keras.layers.multiply``): ``inputs`` a list of
    arrays (batch, ...) that broadcast as :class:`Multiply` says; returns float32 of the
    broadcast shape."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Any, **kwargs: Any) -> Any:
    """``Average(**kwargs)(inputs)`` (Keras ``keras.layers.average``): ``inputs`` a list of
    arrays (batch, ...) that broadcast as :class:`Average` says; returns float32 of the
    broadcast shape."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Any, **kwargs: Any) -> Any:
    """``Maximum(**kwargs)(inputs)`` (Keras ``keras.layers.maximum``): ``inputs`` a list of
    arrays (batch, ...) that broadcast as :class:`Maximum` says; returns float32 of the
    broadcast shape."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Any, **kwargs: Any) -> Any:
    """``Minimum(**kwargs)(inputs)`` (Keras ``keras.layers.minimum``): ``inputs`` a list of
    arrays (batch, ...) that broadcast as :class:`Minimum` says; returns float32 of the
    broadcast shape."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Any, axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis, **kwargs)(inputs)`` (Keras ``keras.layers.concatenate``):
    ``inputs`` a list of arrays of one rank whose shapes agree but along ``axis``; returns
    float32 with the sizes along ``axis`` added."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: Any, axes: Any = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """``Dot(axes, normalize, **kwargs)(inputs)`` (Keras ``keras.layers.dot``): ``inputs``
    [x, y], each (batch, ...), rank >= 2; the batched dot product over ``axes`` (one axis
    of each, or one for both), with ``normalize`` the cosine; shapes as :class:`Dot`."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
