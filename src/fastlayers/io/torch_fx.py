"""Convert a PyTorch module to a fastlayers model: ``fastlayers.from_torch(module, examples)``.

The module is traced with ``torch.fx`` (so any ``nn.Module`` whose ``forward`` fx can trace
works, not only ``nn.Sequential``), and each node of the graph becomes a fastlayers layer
(``Dense``, ``Conv1D``, ``Conv2D``, ``LSTM``, ``GRU``, ``SimpleRNN``, ``Bidirectional``,
``Embedding``, the normalization, pooling, padding, merge and shape layers, where one
computes what PyTorch does) or one of the small ops of torch_ops.py, recorded on symbolic
tensors into a functional ``Model``. The
weights are converted to Keras layouts as docs/semantics.md §13 says; what converts and
what does not is in docs/semantics.md §24.

The result takes and returns what the module does (NCHW / NCL arrays, the same tuple
structure, float32 NumPy arrays) and computes in fastlayers' layouts inside: an image tensor
is kept channels-last (NHWC) from the first convolution on and turned back to channels-first
only where an op needs PyTorch's order (flatten, view, Linear over the last axis, the
outputs).

PyTorch is needed only to convert: this module never imports it at import time, and the
converted model (its ops are the module-level functions of torch_ops.py) runs and
unpickles without it.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import math
import operator
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _symbolic as S
from ..layers import (
    GRU,
    LSTM,
    AdaptiveAveragePooling1D,
    AdaptiveAveragePooling2D,
    AdaptiveMaxPooling1D,
    AdaptiveMaxPooling2D,
    Add,
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    Bidirectional,
    Concatenate,
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    Cropping1D,
    Cropping2D,
    Cropping3D,
    Dense,
    Embedding,
    Experts,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling3D,
    GroupNormalization,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
    Multiply,
    Permute,
    Reshape,
    Resizing,
    RMSNormalization,
    SimpleRNN,
    Subtract,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from ..layers.base import Layer, _positive_int
from ..models.base import BaseModel, _Progress
from ..models.functional import Input, Model

# Every op of converted models (torch_ops.py); models pickled when the ops lived in this
# module name them here (tests/test_from_torch.py checks that each still resolves).
from .torch_ops import (
    _INDEX,
    _KEEP_DTYPE,
    _LOGICAL,
    _MORE_BINARY,
    _QUANTILE_METHODS,
    _REDUCTIONS,
    _SIZE_OPS,
    _UNARY,
    MultiheadAttentionWeights,
    _ValuesIndices,
    legacy_nearest_indices,
    torch_activation,
    torch_affine_grid,
    torch_arange,
    torch_arg_extreme,
    torch_batch_stats_norm,
    torch_bilinear,
    torch_binary,
    torch_bmm,
    torch_cast,
    torch_cat,
    torch_cdist,
    torch_channel_shuffle,
    torch_clamp,
    torch_compare,
    torch_complex_binary,
    torch_complex_unary,
    torch_copy,
    torch_cosine_similarity,
    torch_cumextreme,
    torch_cumprod,
    torch_cumsum,
    torch_diff,
    torch_dilate_pad,
    torch_einsum,
    torch_embedding_bag,
    torch_embedding_bags,
    torch_expand,
    torch_fft,
    torch_flip,
    torch_fold,
    torch_full,
    torch_gather_index,
    torch_glu,
    torch_grid_sample,
    torch_index,
    torch_index_add,
    torch_index_put,
    torch_layer_norm,
    torch_lerp,
    torch_local_response_norm,
    torch_log_softmax,
    torch_logcumsumexp,
    torch_logit,
    torch_lstm_projected,
    torch_masked_fill,
    torch_matmul,
    torch_max_dim,
    torch_median,
    torch_multihead_attention,
    torch_nan_to_num,
    torch_nearest_index,
    torch_normalize,
    torch_one_hot,
    torch_pad,
    torch_param_activation,
    torch_permute,
    torch_pixel_shuffle,
    torch_pool1d,
    torch_pool2d,
    torch_prelu,
    torch_quantile,
    torch_reduce,
    torch_repeat,
    torch_repeat_interleave,
    torch_repeat_sized,
    torch_reshape,
    torch_resize_corners,
    torch_resize_cubic,
    torch_roll,
    torch_round_decimals,
    torch_scale_shift,
    torch_scatter,
    torch_sdpa,
    torch_softmax,
    torch_stack,
    torch_stat,
    torch_stft,
    torch_take,
    torch_take_along,
    torch_threshold,
    torch_topk,
    torch_tri,
    torch_unary,
    torch_unflatten,
    torch_unfold,
    torch_where,
    torch_windows,
    torch_zero_padded,
)

__all__ = ["from_torch", "TorchModel", "TorchConversionError"]

F32 = np.float32


class TorchConversionError(NotImplementedError):
    """A module uses layers or calls that ``from_torch`` cannot convert (all are listed)."""


class _BatchOfOne(TorchConversionError):
    """A branch on whether the batch size is 1, taken for 1 row by the trace of 1-row
    examples: from_torch converts again from examples of 2 rows (``axes``: each example's
    batch axis, set by _convert)."""

    axes: list | None = None


# ------------------------------------------------------------------ the converted model


def _input_array(value: Any) -> Any:
    """One input of a converted model as an array: nested lists of numbers as one array (as
    for an ndarray: a list was taken for a list of inputs, (2, 3) became (1, 2, 3)), a torch
    tensor detached (one that requires grad cannot give its values to NumPy)."""
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if type(value).__module__.split(".")[0] == "torch" and callable(getattr(value, "detach",
                                                                             None)):
        return value.detach().cpu().numpy()
    return value


class TorchModel(BaseModel):
    """A model converted by :func:`from_torch`: called like the PyTorch module.

    ``model(x1, x2, ...)`` takes the module's positional tensor arguments as arrays in
    PyTorch's layouts and returns the module's structure (one array, or nested tuples and
    lists of arrays, None where the module returns None). ``model.inner`` is the
    functional :class:`~fastlayers.Model` that computes it (flat list of outputs);
    ``layers``, ``get_weights``, ``summary`` and ``predict`` come from it.

    ``get_weights`` lists the weights of the layers the conversion made (Dense, Conv, LSTM,
    Embedding, ...), not those it holds as constants of its ops (a LayerNorm's, a
    MultiheadAttention's, a standalone BatchNorm's, a PReLU's), so it is not the module's
    ``state_dict``; ``set_weights`` is refused: for new weights, load them into the PyTorch
    module and convert it again.
    """

    #: A model holding this one refuses set_weights and load_weights too (BaseModel).
    _refuses_set_weights = True

    def set_weights(self, weights: Any) -> None:
        """Refused: a converted model holds some of its module's parameters as constants of
        its ops, which set_weights would leave as they were (a concurrency audit found a
        model given another's weights 0.16 off, without a word). Load the weights into the
        PyTorch module (``load_state_dict``) and convert it again with ``fl.from_torch``."""
        raise NotImplementedError(
            f"{self._owner()}: set_weights of a converted PyTorch module is refused (it would "
            "reach only the layers the conversion made, not the parameters it holds as "
            "constants: LayerNorm, MultiheadAttention, ...); load the new weights into the "
            "module (load_state_dict) and convert it again with fl.from_torch")

    # Called as a layer of another model (``y = tm(fl.Input(...))``) it is one layer whose
    # call is the module's: it neither takes nor makes Keras masks (a nested Keras model
    # passes its inner graph's masks on; a PyTorch module has none), so Layer's masked call.
    _masked_call = Layer._masked_call

    def __init__(self, inner: Model, template: Any, input_template: tuple = (),
                 name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.inner = inner
        self.template = template
        self.input_template = input_template or tuple(range(len(inner.inputs)))
        self.built = True

    @property
    def layers(self):
        return self.inner.layers

    def _summary_rows(self):
        return self.inner._summary_rows()

    def get_config(self):
        return {"name": self.name}

    def _rebuild(self, flat: list[np.ndarray]) -> Any:
        """The module's structure (``template``: indices into ``flat``) with the arrays."""
        return S.Nested(self.template)(flat)

    def _flat_inputs(self, inputs: tuple) -> list[Any]:
        """The arguments, nested as the module takes them, as the inner model's list."""
        n = len(self.input_template)
        if len(inputs) != n:
            raise ValueError(f"{self._owner()}: expected {n} positional inputs, got "
                             f"{len(inputs)}")
        flat: list[Any] = [None] * len(self.inner.inputs)

        def walk(tmpl: Any, value: Any, where: str) -> None:
            if isinstance(tmpl, int):
                flat[tmpl] = _input_array(value)
                return
            if not isinstance(value, (tuple, list)) or len(value) != len(tmpl):
                raise ValueError(f"{self._owner()}: input {where} must be a tuple of "
                                 f"{len(tmpl)} arrays")
            for j, (t, v) in enumerate(zip(tmpl, value)):
                walk(t, v, f"{where}[{j}]")

        for i, (tmpl, value) in enumerate(zip(self.input_template, inputs)):
            walk(tmpl, value, str(i))
        return flat

    def _run_inner(self, flat_inputs: list) -> list:
        """The inner Model's outputs as a list (one output comes back alone from a Model:
        Keras's unpack_singleton; a model pickled before that was so has no opt-out flag)."""
        out = self.inner(flat_inputs)
        return [out] if len(self.inner.outputs) == 1 and not isinstance(out, list) else out

    def call(self, *inputs: Any) -> Any:
        flat = self._run_inner(self._flat_inputs(inputs))
        return self._rebuild(list(flat))

    def _check_batch_rows(self, outs: list, out_axes: list, rows: int, per_row: list) -> None:
        """predict's test of one batch's outputs: rows in a fixed whole ratio to the batch's
        (``per_row``, set by the first batch; 0: none) join as the whole call's would
        (logits.reshape(-1, V) of (B, T, V): T rows a sample); any other count means the
        module moves rows across samples (a cat, a slice along the batch). Rows folded into
        another axis join on axis 0 only: x.reshape(2, -1) of a (B, 6) x joins on axis 1,
        where its columns are not the batch's."""
        for i, (out, axis, t) in enumerate(zip(outs, out_axes, self.inner.outputs)):
            got = out.shape[axis]
            if per_row[i] is None:
                whole = got and got % rows == 0 and (axis == 0 or got == rows)
                per_row[i] = got // rows if whole else 0
            if per_row[i] == 0 or got != per_row[i] * rows:
                raise ValueError(
                    f"{self._owner()}: output {t.name!r} has {got} rows on its batch axis for "
                    f"a batch of {rows}: the module mixes the samples of a batch (a slice or "
                    "cat along it), so predict cannot run it in batches; call the model on "
                    "the whole arrays instead")

    def _check_sample_major(self, outs: list, first: list, per_row: list) -> None:
        """predict's test of outputs with k > 1 rows a sample on axis 0: they join as the
        whole call's only if each sample's k rows come together (logits.reshape(-1, V) of
        (B, T, V)); with heads first, x.permute(2, 0, 1, 3).reshape(-1, T, d), the rows of
        the samples alternate. The first batch's first k rows against the first sample's
        own call (``first``: its inputs)."""
        alone = self._run_inner(first)
        for i, (out, k, t) in enumerate(zip(outs, per_row, self.inner.outputs)):
            if k <= 1:
                continue
            want, got = alone[i], out[:k]
            # (fastlayers at two batch sizes: the same sums but for the GEMM's blocking)
            if want.shape != got.shape or not _near(got, want, 1e-4):
                raise ValueError(
                    f"{self._owner()}: output {t.name!r} has {k} rows a sample, but not one "
                    "sample's rows after another (the batch merged behind another axis, as "
                    "heads first); predict cannot join it from batches: call the model on "
                    "the whole arrays instead")

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = 0) -> Any:
        """Run in batches of ``batch_size`` (default 32) along axis 0 of every input and
        join the results along each output's batch axis (axis 1 for the (layers, B, H)
        states of recurrent layers). ``x`` is one array, or a tuple with one entry per
        positional input (or a list of as many). Returns the module's structure.

        As Keras's ``predict``, this takes each sample's outputs to depend on that sample
        alone. A module that computes across the batch (a softmax, cumsum, mean or flip over
        it) gives other numbers in batches: call the model on the whole arrays. Outputs with
        a fixed number of rows per sample (``logits.reshape(-1, V)``) join as the whole call's
        when each sample's rows come together (checked on the first batch against its first
        sample alone); refused: rows that do not follow the batch's (a slice along it shorter
        than a batch), rows of the samples alternating (a cat along the batch, heads merged
        in front of it), and an output with the batch on two axes ((B, B) similarities). (A
        slice of ``batch_size`` rows or more cannot be told apart: call such a model on the
        whole arrays.)"""
        owner = self._owner()
        refusal = getattr(self, "predict_refusal", None)  # (models pickled before it: None)
        if refusal:
            raise ValueError(
                f"{owner}: predict splits every input along axis 0, but {refusal}: call the "
                "model on the whole arrays instead (or give the layer batch_first inputs with "
                "the batch on axis 0)")
        fixed = [t.name for t in self.inner.inputs if not t.shape or t.shape[0] is not None]
        if fixed:
            raise ValueError(
                f"{owner}: predict splits every input along axis 0, but the batch of "
                f"inputs {fixed} is not on axis 0 (seq-first layers, attention masks); call "
                "the model on the whole arrays instead"
            )
        batch_size = 32 if batch_size is None else _positive_int(batch_size, owner, "batch_size")
        # several inputs: a tuple, or a list of as many (Keras's predict takes a list)
        n_in = len(self.input_template)
        if n_in > 1 and isinstance(x, list) and len(x) != n_in and all(
                isinstance(a, np.ndarray) for a in x):
            raise ValueError(f"{owner}: expected {n_in} inputs, got a list of {len(x)} arrays")
        several = n_in > 1 and (isinstance(x, tuple) or isinstance(x, list) and len(x) == n_in)
        xs = tuple(x) if several else (x,)
        arrays = [np.asarray(a) for a in self._flat_inputs(xs)]
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        if any(a.ndim == 0 or a.shape[0] != n for a in arrays):
            raise ValueError(f"{owner}: predict needs every input to have the same batch "
                             f"size; got shapes {[a.shape for a in arrays]}")
        starts = range(0, max(n, 1), batch_size)
        out_axes = []
        for t in self.inner.outputs:
            free = [i for i, d in enumerate(t.shape) if d is None]
            if not free:
                raise ValueError(f"{owner}: output {t.name!r} has no batch axis to join "
                                 "batches on; call the model on the whole arrays instead")
            if len(free) > 1 and len(starts) > 1:
                # CLIP's logits_per_image (B, B): every image against every text
                raise ValueError(f"{owner}: output {t.name!r} has the batch size on axes "
                                 f"{free} (its samples meet each other), so predict cannot "
                                 "join it from batches; call the model on the whole arrays")
            out_axes.append(free[0])
        bar = None if verbose in (0, False, None, "silent") else _Progress(len(starts),
                                                                            sys.stderr)
        results = []
        per_row: list[Any] = [None] * len(out_axes)  # each output's rows per input row
        for step, lo in enumerate(starts):
            results.append(self._run_inner([a[lo:lo + batch_size] for a in arrays]))
            rows = min(batch_size, n - lo)
            if len(starts) > 1 and rows:  # (one call: the whole call's outputs as they are)
                self._check_batch_rows(results[-1], out_axes, rows, per_row)
                if step == 0 and rows > 1 and any(k > 1 for k in per_row):
                    self._check_sample_major(results[-1], [a[:1] for a in arrays], per_row)
            if bar is not None:
                bar.update(step + 1)
        flat = [np.concatenate([r[i] for r in results], axis=axis)
                for i, axis in enumerate(out_axes)]
        return self._rebuild(flat)


def _near(got: np.ndarray, want: np.ndarray, tol: float) -> bool:
    """Whether ``got`` is within ``tol`` times the scale of ``want`` (1 + its largest finite
    magnitude) of it everywhere, NaN where it has NaN and the same infinities."""
    finite = np.abs(want[np.isfinite(want)])
    scale = 1.0 + (float(finite.max()) if finite.size else 0.0)
    return bool(np.allclose(got, want, rtol=0.0, atol=tol * scale, equal_nan=True))


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
    return torch_reshape(sym, *refs, spec=spec)


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


class _Converter:
    def __init__(self, torch: Any, module: Any, graph_module: Any):
        self.torch = torch
        self.nn = torch.nn
        self.F = torch.nn.functional
        self.module = module
        self.gm = graph_module
        self.layers: dict[str, Any] = {}  # one fastlayers layer per module (shared weights)
        self.problems: list[str] = []
        self._canonical_aliases()
        self.constant = _constant_nodes(graph_module.graph)  # computed by PyTorch (_fold)
        self.assumed: list[str] = []  # where a branch took 2+ rows for the batch (_Assumed)
        # seq-first layers whose time axis is the converted model's free axis: calls work,
        # predict (which splits that axis) is refused (_seq_first_batch)
        self.predict_refusals: list[str] = []

    def _canonical_aliases(self) -> None:
        """Rewrite the calls of PyTorch's aliases (torch.multiply, x.greater, torch.arctan,
        torch.broadcast_to, ...) as calls of the ops they name, and a function that converts
        as a method only (torch.masked_fill(x, m, v), torch.gt(x, y)) as that method of its
        first argument, so that one handler serves each (a PyTorch-user audit found ConvBERT
        refused for torch.multiply alone, Falcon with ALiBi for torch.masked_fill)."""
        torch = self.torch
        for node in self.gm.graph.nodes:
            if node.op == "call_method" and node.target in _METHOD_ALIASES:
                node.target = _METHOD_ALIASES[node.target]
                continue
            if node.op != "call_function":
                continue
            name = getattr(node.target, "__name__", None)
            if name is None or getattr(torch, name, None) is not node.target:
                continue
            name = _METHOD_ALIASES.get(name, name)
            canonical = getattr(torch, name, None)
            if canonical is not None and self._function_handler(canonical) is not None:
                node.target = canonical
            elif (name in _METHODS and node.args and isinstance(node.args[0], torch.fx.Node)
                  and (name != node.target.__name__ or name in _FUNCTIONS_AS_METHODS)):
                node.op, node.target = "call_method", name

    # ---- names and checks ---------------------------------------------------------
    def _where(self, node: Any) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        path = ""
        for value in stack.values():
            path = value[0] if isinstance(value, tuple) else str(value)
        return f"{path}.{node.name}" if path else node.name

    def _module_problems(self, qual: str, mod: Any) -> list[str]:
        nn = self.nn
        cls = _public_name(self.torch, type(mod))
        bad: list[str] = []

        def no(what: str) -> None:
            bad.append(f"{qual} ({cls}): {what} is not supported")

        if isinstance(mod, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            why = _conv_transpose_problem(mod)
            if why:
                no(why)
        elif isinstance(mod, nn.Upsample):
            why = _interpolate_problem(mod.mode, mod.align_corners)
            if why:
                no(why)
            why = _resize_arguments_problem(mod.size, mod.scale_factor, mod.mode, False)
            if why:
                no(why)
        elif isinstance(mod, nn.Conv3d):
            if mod.padding_mode != "zeros":
                no(f"padding_mode={mod.padding_mode!r} (zeros only for Conv3d)")
        elif isinstance(mod, (nn.MaxPool3d, nn.AvgPool3d)):
            why = _pool3d_problem(mod)
            if why:
                no(why)
        elif isinstance(mod, (nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)):
            if _triple(mod.output_size) != (1, 1, 1):
                no(f"output_size={mod.output_size!r} (1 only for the 3D adaptive pools)")
            if getattr(mod, "return_indices", False):
                no("return_indices=True")
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                              nn.SyncBatchNorm)):
            if not mod.track_running_stats or mod.running_mean is None:
                no("track_running_stats=False (batch statistics at inference)")
        elif isinstance(mod, nn.MultiheadAttention):
            if mod.bias_k is not None:
                no("add_bias_kv=True")
            if mod.add_zero_attn:
                no("add_zero_attn=True")
        elif isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
            if mod.return_indices:
                no("return_indices=True")
        elif isinstance(mod, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)):
            if mod.return_indices:
                no("return_indices=True")
        elif isinstance(mod, nn.Embedding):
            if mod.max_norm is not None:
                no("max_norm (it renormalizes the table at lookup)")
        elif isinstance(mod, nn.EmbeddingBag):
            if mod.max_norm is not None:
                no("max_norm (it renormalizes the table at lookup)")
        elif isinstance(mod, nn.Transformer):
            if not isinstance(mod.encoder, nn.TransformerEncoder) or not isinstance(
                    mod.decoder, nn.TransformerDecoder):
                no("a custom_encoder or custom_decoder")
            else:
                bad += self._module_problems(f"{qual}.encoder", mod.encoder)
                bad += self._module_problems(f"{qual}.decoder", mod.decoder)
        elif isinstance(mod, (nn.TransformerEncoder, nn.TransformerDecoder)):
            for i, sub in enumerate(mod.layers):
                bad += self._module_problems(f"{qual}.layers.{i}", sub)
            if mod.norm is not None and not isinstance(mod.norm, nn.LayerNorm):
                bad += self._module_problems(f"{qual}.norm", mod.norm)
        elif isinstance(mod, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            act = mod.activation
            if not (act in (self.F.relu, self.F.gelu)
                    or isinstance(act, (nn.ReLU, nn.GELU))):
                no(f"activation={act!r} (relu or gelu only)")
            bad += self._module_problems(f"{qual}.self_attn", mod.self_attn)
            if isinstance(mod, nn.TransformerDecoderLayer):
                bad += self._module_problems(f"{qual}.multihead_attn", mod.multihead_attn)
        elif type(mod).__name__ in _ACT_VARIANTS and self._module_known(mod):
            variants = _ACT_VARIANTS[type(mod).__name__]
            values = {k: getattr(mod, k) for params, _ in variants for k in params}
            if _param_values(type(mod).__name__, values) is None:
                no(", ".join(f"{k}={v!r}" for k, v in values.items())
                   + f" ({_PARAM_RULE})")
        elif _is_experts(mod):
            bad += [f"{qual} ({cls}): {why}" for why in self._experts_problems(mod)]
        elif not self._module_known(mod):
            bad.append(f"{qual} ({cls})")
        return bad

    def _activation_module(self, mod: Any) -> str | None:
        """The Keras activation an activation module computes (exactly that class, with
        parameters it has a variant for), or None."""
        name = type(mod).__name__
        if getattr(self.nn, name, None) is not type(mod):
            return None
        if name in _ACT_MODULES:
            return _ACT_MODULES[name]
        if name in _ACT_VARIANTS:
            variants = _ACT_VARIANTS[name]
            return _variant(variants, {k: getattr(mod, k) for p, _ in variants for k in p})
        return None

    def _module_known(self, mod: Any) -> bool:
        nn = self.nn
        known = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d,
                 nn.BatchNorm3d, nn.SyncBatchNorm, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool3d,
                 nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.GELU,
                 nn.Softmax, nn.LeakyReLU, nn.PReLU, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d,
                 nn.AdaptiveMaxPool2d,
                 nn.Flatten, nn.LSTM, nn.GRU, nn.RNN, nn.MultiheadAttention,
                 nn.LSTMCell, nn.GRUCell, nn.RNNCell,
                 nn.TransformerEncoderLayer, nn.TransformerEncoder, nn.Embedding,
                 nn.EmbeddingBag,
                 nn.TransformerDecoderLayer, nn.TransformerDecoder, nn.Transformer,
                 nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Upsample,
                 _rms_norm_classes(nn),
                 nn.MaxPool1d, nn.AvgPool1d, nn.LogSoftmax, nn.Softmin, nn.Softmax2d,
                 nn.RReLU, nn.GLU, nn.Threshold, *_pad_modules(nn), nn.PixelShuffle,
                 nn.PixelUnshuffle, nn.ChannelShuffle, nn.Unflatten, nn.Unfold, nn.Fold)
        name = type(mod).__name__
        if _is_experts(mod):
            return True
        return isinstance(mod, known) or (
            getattr(nn, name, None) is type(mod)
            and (name in _ACT_MODULES or name in _ACT_VARIANTS or name in _IDENTITY_MODULES)
        )

    def check(self) -> None:
        known = _known_at_conversion(self.torch, self.gm.graph, self.constant)
        for node in self.gm.graph.nodes:
            if node.op == "call_method" and node.target == "copy_":
                why = _overwrite_problem(self.torch, self.gm, node)
                if why is not None:
                    self.problems.append(f"{self._where(node)} (Tensor.copy_) {why}")
                continue
            if node in self.constant:
                continue  # computed by PyTorch at conversion (_fold)
            if node.op == "call_module":
                self.problems += self._module_problems(node.target,
                                                       self.gm.get_submodule(node.target))
            elif node.op == "call_function":
                handler = self._function_handler(node.target)
                if handler is None and (_plain_call(node) or node in known):
                    continue  # size arithmetic, or constants: computed at conversion (_build)
                if handler is None:
                    self.problems.append(
                        f"{self._where(node)} ({_fn_name(self.torch, node.target)})"
                        + _record_class_hint(node.target))
                elif hasattr(handler, "argument_problems"):
                    bad = handler.argument_problems(node.args[1:], node.kwargs)
                    if bad is not None:
                        self.problems.append(f"{self._where(node)} "
                                             f"({_fn_name(self.torch, node.target)}): {bad} "
                                             "is not supported")
            elif node.op == "call_method":
                if node.target not in _METHODS and node.target not in _IN_PLACE_METHODS and (
                        node not in known):
                    self.problems.append(f"{self._where(node)} (Tensor.{node.target})")
        if self.problems:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            raise TorchConversionError(
                f"from_torch: {type(self.module).__name__} uses {len(self.problems)} "
                f"module(s) or call(s) fastlayers cannot convert:\n{lines}\n"
                "See docs/semantics.md §24 for what converts."
            )

    # ---- values -------------------------------------------------------------------
    def _tensor(self, v: Any, what: str) -> _T:
        if isinstance(v, _T):
            return v
        raise TorchConversionError(f"from_torch: {what} must be a tensor, got {type(v).__name__}")

    def _mask(self, m: Any, what: str, batched: bool = False) -> Any:
        """An attention mask argument: None, the symbolic tensor of a traced value, or the
        array of a constant (a registered buffer, a mask made from constants in forward). A
        ``batched`` one (a key padding mask, (B, S)) may not be a constant: it would fix the
        batch size the converted model leaves free."""
        if m is None:
            return m
        if isinstance(m, np.ndarray):
            if batched:
                raise TorchConversionError(
                    f"from_torch: {what} is a constant (a buffer, or made from constants), "
                    "which fixes the batch size; pass it as an input, or compute it from one")
            return m
        return _to_torch(self._tensor(m, what)).sym

    #: A prefix the layers' names leave out (the wrapper a forward was traced through).
    name_prefix = ""

    def _layer_name(self, qual: str) -> str:
        if self.name_prefix and qual.startswith(self.name_prefix):
            return qual[len(self.name_prefix):]
        return qual

    #: The activation to fuse into the Dense or Conv2D being converted (set by _build).
    fuse: str | None = None

    #: The eval-mode BatchNorm folded into the Conv being converted (set by _build).
    fold: Any = None

    def _only_user(self, node: Any) -> Any:
        """The one node that uses ``node``, if it takes ``node`` as its only argument."""
        if len(node.users) != 1:
            return None
        (user,) = node.users
        if not user.args or user.args[0] is not node or len(user.args) > 1 or any(
            k != "inplace" for k in user.kwargs
        ):
            return None
        return user

    def plan_fusion(self, node: Any) -> list[Any]:
        """For a Linear or Conv node whose module is called once: set :attr:`fold` (a
        BatchNorm right after a conv, folded into its kernel and bias) and :attr:`fuse`
        (the activation after that, run in the layer's epilogue); return the nodes that
        the layer then computes."""
        self.fold = self.fuse = None
        nn = self.nn
        mod = self.gm.get_submodule(node.target)
        if not isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return []
        calls = [n for n in self.gm.graph.nodes
                 if n.op == "call_module" and n.target == node.target]
        if len(calls) != 1:
            return []
        done = []
        tail = node
        user = self._only_user(node)
        if user is not None and user.op == "call_module" and not isinstance(mod, nn.Linear):
            bn = self.gm.get_submodule(user.target)
            # (isinstance: a subclass, torch's ParametrizedConv2d of a parametrized conv)
            kind = next((b for c, b in ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d),
                                        (nn.Conv3d, nn.BatchNorm3d)) if isinstance(mod, c)), None)
            # (SyncBatchNorm, of any rank, computes BatchNorm's affine in eval mode)
            if (kind is not None and isinstance(bn, (kind, nn.SyncBatchNorm))
                    and bn.track_running_stats
                    and bn.running_mean is not None
                    # (a BatchNorm of other channels than the conv's is not folded: the
                    # op's own check then names it)
                    and bn.running_mean.numel() == mod.out_channels):
                self.fold = bn
                done.append(user)
                tail = user
        act = self._activation_of(self._only_user(tail))
        if act is not None:
            self.fuse = act
            done.append(self._only_user(tail))
        return done

    def _activation_of(self, user: Any) -> str | None:
        """The Keras name of the activation ``user`` computes, if the C++ epilogue runs it."""
        if user is None:
            return None
        nn, torch, F = self.nn, self.torch, self.F
        if user.op == "call_module":
            sub = self.gm.get_submodule(user.target)
            act = self._activation_module(sub)
            if act is not None:
                return act
            if isinstance(sub, nn.GELU) and sub.approximate == "none":
                return "gelu"
            return None
        if user.op == "call_function":
            table = {F.relu: "relu", torch.relu: "relu", F.gelu: "gelu", F.silu: "silu",
                     torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid",
                     F.sigmoid: "sigmoid"}
            try:
                return table.get(user.target)
            except TypeError:
                return None
        if user.op == "call_method" and user.target in ("relu", "tanh", "sigmoid"):
            return user.target
        return None

    # ---- modules ------------------------------------------------------------------
    def call_module(self, qual: str, mod: Any, args: tuple, kwargs: dict) -> Any:
        nn = self.nn
        name = type(mod).__name__
        if name in _IDENTITY_MODULES:
            return args[0]
        if _is_experts(mod):
            return self.experts(qual, mod, *args, **kwargs)
        act = self._activation_module(mod)
        if act is not None:
            return self.activation(args[0], act)
        if name in _ACT_VARIANTS and getattr(nn, name, None) is type(mod):
            variants = _ACT_VARIANTS[name]
            return self.param_activation(args[0], name, {
                k: getattr(mod, k) for p, _ in variants for k in p})
        if isinstance(mod, nn.GELU):
            return self.activation(args[0], "gelu_tanh" if mod.approximate == "tanh" else "gelu")
        if isinstance(mod, nn.LeakyReLU):
            return self.activation(args[0], "leaky_relu", mod.negative_slope)
        if isinstance(mod, nn.Softmax):
            return self.softmax(args[0], mod.dim)
        if isinstance(mod, nn.Softmax2d):  # over the channels of (N, C, H, W) or (C, H, W)
            return self.softmax(args[0], -3)
        if isinstance(mod, nn.LogSoftmax):
            return self.log_softmax(args[0], mod.dim, what=f"{qual} ({name})")
        if isinstance(mod, nn.Softmin):
            return self.softmin(args[0], mod.dim)
        if isinstance(mod, nn.RReLU):  # eval: the mean slope
            return self.activation(args[0], "leaky_relu", (mod.lower + mod.upper) / 2)
        if isinstance(mod, nn.GLU):
            t = self._tensor(args[0], qual)
            return _T(torch_glu(t.sym, _axis_in_layout(t, mod.dim)), t.cl)
        if isinstance(mod, nn.Threshold):
            t = self._tensor(args[0], qual)
            return _T(torch_threshold(t.sym, mod.threshold, mod.value), t.cl)
        pads = _pad_modules(nn)
        if type(mod) in pads:
            return self.pad(args[0], mod.padding, pads[type(mod)], getattr(mod, "value", 0.0),
                            f"{qual} ({name})")
        if isinstance(mod, (nn.Unfold, nn.Fold)):
            return self.im2col(args[0], mod.kernel_size, mod.dilation, mod.padding, mod.stride,
                               getattr(mod, "output_size", None), f"{qual} ({name})")
        if isinstance(mod, (nn.PixelShuffle, nn.PixelUnshuffle)):
            inverse = isinstance(mod, nn.PixelUnshuffle)
            r = mod.downscale_factor if inverse else mod.upscale_factor
            return self.pixel_shuffle(args[0], r, inverse, f"{qual} ({name})")
        if isinstance(mod, nn.ChannelShuffle):
            t = _to_cl(self._tensor(args[0], qual))
            c = t.sym.shape[-1]
            if t.ndim < 3 or (c is not None and c % mod.groups):
                raise TorchConversionError(
                    f"from_torch: {qual} (ChannelShuffle) of {mod.groups} groups for an input "
                    f"of shape {t.torch_shape}"
                )
            return _T(torch_channel_shuffle(t.sym, mod.groups), True)
        if isinstance(mod, nn.Unflatten):
            return self.unflatten(args[0], mod.dim, mod.unflattened_size, qual)
        if isinstance(mod, (nn.MaxPool1d, nn.AvgPool1d)):
            kind = "max" if isinstance(mod, nn.MaxPool1d) else "avg"
            return self.pool1d(args[0], kind, mod.kernel_size, mod.stride, mod.padding,
                               getattr(mod, "dilation", 1), mod.ceil_mode,
                               getattr(mod, "count_include_pad", True), f"{qual} ({name})")
        if isinstance(mod, nn.PReLU):
            return self.prelu(args[0], _np(mod.weight), f"{qual} (PReLU)")
        if isinstance(mod, nn.Linear):
            return self.linear(qual, mod, args[0])
        if isinstance(mod, nn.Conv2d):
            return self.conv2d(qual, mod, args[0])
        if isinstance(mod, nn.Conv1d):
            return self.conv1d(qual, mod, args[0])
        if isinstance(mod, nn.Conv3d):
            return self.conv3d(qual, mod, args[0])
        if isinstance(mod, (nn.MaxPool3d, nn.AvgPool3d)):
            return self.pool3d(qual, mod, args[0])
        if isinstance(mod, (nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)):
            t = _to_cl(self._tensor(args[0], qual))
            if t.ndim != 5:
                raise TorchConversionError(f"from_torch: {qual} ({name}) needs a batched 5-D "
                                           f"input, got rank {t.ndim}")
            cls = GlobalMaxPooling3D if isinstance(mod, nn.AdaptiveMaxPool3d) \
                else GlobalAveragePooling3D
            return _T(cls(keepdims=True)(t.sym), True)
        if isinstance(mod, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return self.conv_transpose(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.Upsample):
            return self.upsample(args[0], mod.size, mod.scale_factor, mod.mode,
                                 mod.align_corners, what=f"{qual} ({name})",
                                 recompute_scale_factor=mod.recompute_scale_factor)
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)):
            return self.batch_norm(mod, args[0])
        if isinstance(mod, nn.LayerNorm):
            return self.layer_norm(mod, args[0])
        if isinstance(mod, nn.GroupNorm):
            return self._module_norm(qual, mod, args[0], mod.num_groups)
        if isinstance(mod, _rms_norm_classes(nn)):
            return self.rms_norm(args[0], mod.normalized_shape, _np(mod.weight), mod.eps, qual,
                                 f"{qual} ({name})")
        if isinstance(mod, (nn.InstanceNorm1d, nn.InstanceNorm2d)):
            return self.instance_norm(qual, mod, args[0])
        if isinstance(mod, nn.MaxPool2d):
            return self.pool(args[0], "max", mod.kernel_size, mod.stride, mod.padding,
                             mod.dilation, mod.ceil_mode)
        if isinstance(mod, nn.AvgPool2d):
            return self.pool(args[0], "avg", mod.kernel_size, mod.stride, mod.padding, 1,
                             mod.ceil_mode, mod.count_include_pad, mod.divisor_override)
        if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d,
                            nn.AdaptiveMaxPool2d)):
            kind = "max" if isinstance(mod, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)) \
                else "avg"
            rank = 1 if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)) else 2
            return self.adaptive(args[0], mod.output_size, kind, rank, f"{qual} ({name})")
        if isinstance(mod, nn.Flatten):
            return self.flatten(args[0], mod.start_dim, mod.end_dim)
        if isinstance(mod, (nn.LSTM, nn.GRU, nn.RNN)):
            return self.recurrent(qual, mod, *args, **kwargs)
        if isinstance(mod, (nn.LSTMCell, nn.GRUCell, nn.RNNCell)):
            return self.cell(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.MultiheadAttention):
            return self.mha(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.TransformerEncoderLayer):
            return self.encoder_layer(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.TransformerEncoder):
            return self.encoder(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.TransformerDecoderLayer):
            return self.decoder_layer(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.TransformerDecoder):
            return self.decoder(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.Transformer):
            return self.transformer(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.EmbeddingBag):
            return self.embedding_bag(qual, mod, *args, **kwargs)
        if isinstance(mod, nn.Embedding):
            t = self._tensor(args[0], f"{qual} input")
            layer = self.layers.get(qual)
            if layer is None:
                layer = Embedding(mod.num_embeddings, mod.embedding_dim, name=qual)
                layer.set_weights([_np_view(mod.weight)])
                self.layers[qual] = layer
            return _T(layer(t.sym), False)
        raise TorchConversionError(f"from_torch: {qual} ({name}) is not supported")

    def embedding_bag(self, qual: str, mod: Any, input: Any, offsets: Any = None,  # noqa: A002
                      per_sample_weights: Any = None) -> _T:
        """``nn.EmbeddingBag`` in sum, mean or max mode: of a 2-D (bags, length) id tensor
        (each row a bag; torch_embedding_bag), or of 1-D ids cut into bags at ``offsets`` (a
        traced tensor or a constant), or with ``per_sample_weights`` (sum mode, as PyTorch;
        torch_embedding_bags). The arguments PyTorch refuses are refused."""
        pad = mod.padding_idx
        if pad is not None and pad < 0:  # (set after the constructor, which normalizes it:
            pad += mod.num_embeddings    # PyTorch's kernel normalizes it at lookup too)
        if offsets is not None or per_sample_weights is not None:
            return self._bags(f"{qual} (EmbeddingBag)", input, _np(mod.weight), mod.mode, pad,
                              mod.include_last_offset, offsets, per_sample_weights)
        t = _to_torch(self._tensor(input, f"{qual} input"))
        if t.ndim != 2 or t.torch_shape[1] == 0:
            self._refuse(f"{qual} (EmbeddingBag) of an input of shape {t.torch_shape} (2-D ids, "
                         "each row a bag of at least one id)")
        return _T(torch_embedding_bag(t.sym, _np(mod.weight).astype(F32), mod.mode, pad),
                  False)

    def _bags(self, what: str, ids: Any, table: np.ndarray, mode: str, pad: Any,
              include_last: Any, offsets: Any, per_sample_weights: Any) -> _T:
        """torch_embedding_bags of 1-D ids with offsets, or 2-D ids (each row a bag), the
        offsets and per-sample weights traced or constants; PyTorch's refusals refused."""
        t = _to_torch(self._tensor(ids, f"{what} input"))
        if (t.ndim == 1) != (offsets is not None) or t.ndim not in (1, 2):
            self._refuse(f"{what} of {t.ndim}-D ids "
                         f"{'with' if offsets is not None else 'without'} offsets (1-D ids "
                         "take offsets, 2-D ids none, as in PyTorch)")
        if per_sample_weights is not None and mode != "sum":
            self._refuse(f"{what} with per_sample_weights in mode {mode!r} (PyTorch takes them "
                         "in mode 'sum' only)")
        off = None if offsets is None else self._operand(offsets, f"{what} offsets")
        weights = None if per_sample_weights is None else self._operand(
            per_sample_weights, f"{what} per_sample_weights")
        return _T(torch_embedding_bags(t.sym, off, weights, table.astype(F32), mode, pad,
                                       bool(include_last)), False)

    def f_embedding_bag(self, input: Any, weight: Any, offsets: Any = None,  # noqa: A002
                        max_norm: Any = None, norm_type: Any = 2, scale_grad_by_freq: Any = False,
                        mode: Any = "mean", sparse: Any = False, per_sample_weights: Any = None,
                        include_last_offset: Any = False, padding_idx: Any = None) -> _T:
        """``F.embedding_bag`` with a parameter or buffer table: nn.EmbeddingBag's
        conversion (torch_embedding_bags)."""
        if not isinstance(weight, np.ndarray) or weight.ndim != 2 or weight.dtype.kind != "f":
            self._refuse("embedding_bag with a table that is not a 2-D float parameter or "
                         "buffer")
        if max_norm is not None:
            self._refuse("embedding_bag with max_norm (it renormalizes the table at lookup)")
        if mode not in ("sum", "mean", "max"):
            self._refuse(f"embedding_bag with mode={mode!r}")
        rows = weight.shape[0]
        pad = padding_idx
        if pad is not None and not -rows <= pad < rows:
            raise TorchConversionError(f"from_torch: embedding_bag's padding_idx {pad} is not "
                                       f"in [-{rows}, {rows}) (PyTorch raises too)")
        if pad is not None and pad < 0:  # (PyTorch counts it from the end of the table)
            pad += rows
        t = self._tensor(input, "embedding_bag input")
        if t.ndim == 2 and t.torch_shape[1] == 0:
            self._refuse("embedding_bag of 2-D ids of width 0 (each row a bag of at least one "
                         "id)")
        return self._bags("embedding_bag", input, weight, mode, pad, include_last_offset,
                          offsets, per_sample_weights)

    def activation(self, x: Any, name: str, slope: float = 0.01) -> _T:
        t = self._tensor(x, name)
        if name == "leaky_relu":
            return _T(torch_activation(t.sym, name, float(slope)), t.cl)
        return _T(torch_activation(t.sym, name), t.cl)

    def _float32_only(self, what: str, dtype: Any) -> None:
        """Refuses a softmax's ``dtype`` other than float32 (PyTorch would compute and
        return another dtype)."""
        if dtype is not None and dtype is not self.torch.float32:
            self._refuse(f"{what} with dtype={dtype}")

    def softmax(self, x: Any, dim: Any, dtype: Any = None) -> _T:
        self._float32_only("softmax", dtype)
        t = self._tensor(x, "softmax")
        dim = _legacy_dim(t, dim)
        if t.ndim == 0:  # PyTorch takes dim 0 or -1 of a 0-d tensor as its one element
            if int(dim) not in (0, -1):
                raise TorchConversionError(f"from_torch: softmax over dim {dim} of a 0-d tensor")
            return _T(torch_softmax(t.sym, None), t.cl)
        return _T(torch_softmax(t.sym, _axis_in_layout(t, int(dim))), t.cl)

    def linear(self, qual: str, mod: Any, x: Any) -> _T:
        t = _to_torch(self._tensor(x, qual))
        layer = self.layers.get(qual)
        if layer is None:
            layer = Dense(mod.out_features, use_bias=mod.bias is not None,
                          activation=self.fuse, name=self._layer_name(qual))
            w = [_np_view(mod.weight).T]
            if mod.bias is not None:
                w.append(_np_view(mod.bias))
            layer.set_weights(w)
            self.layers[qual] = layer
        return _T(layer(t.sym), False)

    def _conv(self, qual: str, mod: Any, t: _T, kernel: np.ndarray, ks: tuple, stride: tuple,
              dilation: tuple, padding: Any) -> _T:
        """A Conv1D on an NLC, a Conv2D on an NHWC or a Conv3D on an NDHWC tensor (by
        len(ks)), with PyTorch's integer padding ("same" where Keras pads the same, else zero
        padding + "valid") and stride together with dilation."""
        rank = len(ks)
        x = t.sym
        if isinstance(padding, str):
            pad_mode = padding  # "same" needs stride 1 in PyTorch: Keras's split then
        elif all(s == 1 and 2 * p == d * (k - 1)
                 for s, p, d, k in zip(stride, padding, dilation, ks)) and any(padding):
            # Stride 1 and p on both sides of an odd dilated kernel: Keras's "same" pads the
            # same (p, p), without the ZeroPadding layer's copy of the input. The padding taps
            # are zeros in the same FMA chains either way: the same bits.
            pad_mode = "same"
        else:
            pad_mode = "valid"
            if any(padding):
                pads = tuple((p, p) for p in padding)
                pad_cls = {1: lambda: ZeroPadding1D(pads[0]), 2: lambda: ZeroPadding2D(pads),
                           3: lambda: ZeroPadding3D(pads)}[rank]
                x = pad_cls()(x)
        both = any(s > 1 for s in stride) and any(d > 1 for d in dilation)
        layer = self.layers.get(qual)
        if layer is None:
            cls = {1: Conv1D, 2: Conv2D, 3: Conv3D}[rank]
            layer = cls(mod.out_channels, ks, strides=(1,) * rank if both else stride,
                        padding=pad_mode, dilation_rate=dilation, groups=mod.groups,
                        use_bias=mod.bias is not None or self.fold is not None,
                        activation=self.fuse, name=self._layer_name(qual))
            w = [kernel]
            if mod.bias is not None:
                w.append(_np(mod.bias))
            if self.fold is not None:  # conv -> BatchNorm: scale the filters, shift the bias
                scale, shift = _bn_scale_shift(self.fold)
                bias = mod.bias.detach().cpu().numpy() if mod.bias is not None else 0.0
                w = [(kernel * scale).astype(F32), (bias * scale + shift).astype(F32)]
            layer.set_weights(w)
            self.layers[qual] = layer
        y = layer(x)
        if both:  # Keras refuses stride > 1 with dilation > 1: stride 1, then subsample
            y = torch_index(y, (slice(None), *(slice(None, None, s) for s in stride)))
        return _T(y, True)

    def _mode_padded(self, qual: str, mod: Any, x: Any) -> tuple[Any, bool]:
        """A conv's input padded as its ``padding_mode`` says ("reflect", "replicate",
        "circular": PyTorch pads with F.pad, then convolves unpadded), and whether it was."""
        if mod.padding_mode == "zeros":
            return x, False
        pads = tuple(mod._reversed_padding_repeated_twice)  # PyTorch's own F.pad argument
        return self.pad(x, pads, mod.padding_mode, None, f"{qual} (padding_mode)"), True

    def conv2d(self, qual: str, mod: Any, x: Any) -> _T:
        x, padded = self._mode_padded(qual, mod, x)
        t = _to_cl(self._tensor(x, qual))
        if t.ndim != 4:
            raise TorchConversionError(f"from_torch: {qual} (Conv2d) needs a 4-D (N, C, H, W) "
                                       f"input, got rank {t.ndim}")
        kernel = _np(mod.weight).transpose(2, 3, 1, 0)
        pad = (0, 0) if padded else mod.padding if isinstance(mod.padding, str) else \
            _pair(mod.padding)
        return self._conv(qual, mod, t, kernel, _pair(mod.kernel_size), _pair(mod.stride),
                          _pair(mod.dilation), pad)

    def conv3d(self, qual: str, mod: Any, x: Any) -> _T:
        if mod.padding_mode != "zeros":
            raise TorchConversionError(f"from_torch: {qual} (Conv3d): padding_mode="
                                       f"{mod.padding_mode!r} is not supported")
        t = _to_cl(self._tensor(x, qual))
        if t.ndim != 5:
            raise TorchConversionError(f"from_torch: {qual} (Conv3d) needs a 5-D (N, C, D, H, "
                                       f"W) input, got rank {t.ndim}")
        kernel = _np(mod.weight).transpose(2, 3, 4, 1, 0)  # (F, C/g, kd, kh, kw) -> Keras's
        pad = mod.padding if isinstance(mod.padding, str) else _triple(mod.padding)
        return self._conv(qual, mod, t, kernel, _triple(mod.kernel_size), _triple(mod.stride),
                          _triple(mod.dilation), pad)

    def pool3d(self, qual: str, mod: Any, x: Any) -> _T:
        """nn.MaxPool3d / nn.AvgPool3d without padding, dilation or ceil_mode: Keras's
        "valid" MaxPooling3D / AveragePooling3D on the channels-last tensor."""
        name = type(mod).__name__
        why = _pool3d_problem(mod)
        if why:
            raise TorchConversionError(f"from_torch: {qual} ({name}): {why} is not supported")
        t = _to_cl(self._tensor(x, qual))
        if t.ndim != 5:
            raise TorchConversionError(f"from_torch: {qual} ({name}) needs a batched 5-D input, "
                                       f"got rank {t.ndim}")
        k = _triple(mod.kernel_size)
        s = k if mod.stride is None or (isinstance(mod.stride, (list, tuple)) and not mod.stride) \
            else _triple(mod.stride)
        cls = MaxPooling3D if isinstance(mod, self.nn.MaxPool3d) else AveragePooling3D
        return _T(cls(k, s, padding="valid")(t.sym), True)

    def conv1d(self, qual: str, mod: Any, x: Any) -> _T:
        x, padded = self._mode_padded(qual, mod, x)
        t = _to_cl(self._tensor(x, qual))
        if t.ndim != 3:
            raise TorchConversionError(f"from_torch: {qual} (Conv1d) needs a 3-D (N, C, L) "
                                       f"input, got rank {t.ndim}")
        kernel = _np(mod.weight).transpose(2, 1, 0)  # (F, C/g, k) -> (k, C/g, F)
        pad = (0,) if padded else mod.padding if isinstance(mod.padding, str) else \
            (int(mod.padding[0]),)
        return self._conv(qual, mod, t, kernel, (int(mod.kernel_size[0]),),
                          (int(mod.stride[0]),), (int(mod.dilation[0]),), pad)

    def conv_transpose(self, qual: str, mod: Any, x: Any, output_size: Any = None) -> _T:
        """nn.ConvTranspose2d (1d, 3d): a Conv2DTranspose (Conv1DTranspose, Conv3DTranspose)
        with "valid" padding
        and the module's output_padding (or the one a call's ``output_size`` implies, as
        PyTorch computes it), then PyTorch's integer padding cropped from both sides
        (docs/semantics.md §24)."""
        rank = len(mod.kernel_size)
        name = type(mod).__name__
        t = _to_cl(self._tensor(x, qual))
        what = f"from_torch: {qual} ({name})"
        if t.ndim != rank + 2:
            layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[rank]
            raise TorchConversionError(
                f"{what} needs a {rank + 2}-D {layout} input, got rank {t.ndim}"
            )
        why = _conv_transpose_problem(mod)
        if why:
            raise TorchConversionError(f"{what}: {why} is not supported")
        stride, dilation, kernel = tuple(mod.stride), tuple(mod.dilation), tuple(mod.kernel_size)
        pad, out_pad = tuple(mod.padding), tuple(mod.output_padding)
        in_size = t.sym.shape[1 : 1 + rank]
        # (n - 1)*s - 2p + d*(k - 1) + 1: the output without output_padding
        least = [None if n is None else (n - 1) * s - 2 * p + d * (k - 1) + 1
                 for n, s, p, d, k in zip(in_size, stride, pad, dilation, kernel)]
        if output_size is not None:
            size = list(output_size)
            # PyTorch takes the spatial sizes, or those after N and C
            size = size[-rank:] if len(size) in (rank, rank + 2) else []
            if len(size) != rank or any(v is None or not isinstance(v, (int, np.integer))
                                        for v in size + least):
                raise TorchConversionError(
                    f"{what}: output_size={output_size!r} is supported with sizes known at "
                    "conversion only"
                )
            out_pad = tuple(int(v) - m for v, m in zip(size, least))
            if any(o < 0 or o >= s for o, s in zip(out_pad, stride)):
                raise TorchConversionError(  # (PyTorch's rule for output_size, and Keras's)
                    f"{what}: output_size={output_size!r} needs output_padding {out_pad}, not "
                    f"in [0, stride {stride})"
                )
        if any(m is not None and m + o < 1 for m, o in zip(least, out_pad)):
            raise TorchConversionError(
                f"{what}: its padding {pad} leaves no output for an input of size {in_size}"
            )
        if rank < 3 and not _keras_transposes(mod, out_pad):
            return _T(self._conv_transpose_as_conv(qual, mod, t.sym, out_pad), True)
        key = qual if out_pad == tuple(mod.output_padding) else (
            f"{qual}_output_padding_{'_'.join(str(o) for o in out_pad)}"
        )
        layer = self.layers.get(key)
        if layer is None:
            cls = {1: Conv1DTranspose, 2: Conv2DTranspose, 3: Conv3DTranspose}[rank]
            grouped = {} if mod.groups == 1 else {"groups": mod.groups}
            layer = cls(mod.out_channels, kernel, strides=stride, padding="valid",
                        output_padding=out_pad, dilation_rate=dilation,
                        use_bias=mod.bias is not None, name=self._layer_name(key), **grouped)
            # (C, F / groups, *k) -> (*k, F / groups, C)
            w = [_np(mod.weight).transpose(*range(2, 2 + rank), 1, 0)]
            if mod.bias is not None:
                w.append(_np(mod.bias))
            layer.set_weights(w)
            self.layers[key] = layer
        y = layer(t.sym)
        if any(pad):
            pairs = tuple((p, p) for p in pad)
            crop = {1: lambda: Cropping1D(pad * 2), 2: lambda: Cropping2D(pairs),
                    3: lambda: Cropping3D(pairs)}[rank]()
            y = crop(y)
        return _T(y, True)

    def _conv_transpose_as_conv(self, qual: str, mod: Any, x: Any, out_pad: tuple) -> Any:
        """A ConvTranspose1d / 2d the transposed layers do not compute (a stride with a
        dilation, output_padding not below the stride) as the convolution it is the gradient
        of: x with stride - 1 zeros between its pixels and d·(k - 1) - p zeros around it
        (output_padding more at the end; torch_dilate_pad), then a Conv1D / Conv2D of the
        same groups and dilation, stride 1, each group's kernel flipped and transposed (a
        depthwise one runs the C++ depthwise kernel)."""
        rank, groups = len(mod.kernel_size), mod.groups
        kernel, dilation = tuple(mod.kernel_size), tuple(mod.dilation)
        pads = tuple((d * (k - 1) - p, d * (k - 1) - p + o) for k, d, p, o in zip(
            kernel, dilation, mod.padding, out_pad))
        key = f"{qual}#conv_of_transpose"
        layer = self.layers.get(key)
        if layer is None:
            w = _np(mod.weight).astype(F32)  # (C, F / groups, *kernel)
            c, fg = w.shape[:2]
            w = w.reshape(groups, c // groups, fg, *kernel)[(..., *(slice(None, None, -1),) * rank)]
            # (G, C/G, F/G, *k) -> (*k, C/G, G, F/G) -> (*k, C/G, F)
            w = w.transpose(*range(3, 3 + rank), 1, 0, 2).reshape(*kernel, c // groups,
                                                                 groups * fg)
            cls = Conv1D if rank == 1 else Conv2D
            layer = cls(groups * fg, kernel, padding="valid", dilation_rate=dilation,
                        groups=groups, use_bias=mod.bias is not None,
                        name=self._layer_name(key))
            layer.set_weights([np.ascontiguousarray(w)] + (
                [] if mod.bias is None else [_np(mod.bias).astype(F32)]))
            self.layers[key] = layer
        return layer(torch_dilate_pad(x, tuple(mod.stride), pads))

    def upsample(self, x: Any, size: Any, scale_factor: Any, mode: str, align_corners: Any,
                 antialias: bool = False, what: str = "interpolate",
                 recompute_scale_factor: Any = None, one_d: bool = False) -> _T:
        """nn.Upsample / F.interpolate of a 4-D input: "bicubic" (PyTorch's, with or without
        align_corners) as torch_resize_cubic; "nearest", "nearest-exact" or "bilinear" without
        align_corners (half-pixel centres, as Keras): UpSampling2D for whole factors, else
        Resizing to the output size ("nearest-exact" is Keras's
        "nearest"; PyTorch's legacy "nearest" off whole factors picks its own source rows
        and columns: torch_nearest_index); bilinear with align_corners: torch_resize_corners
        to the output size. A 3-D (N, C, L) input ("linear", "nearest", "nearest-exact") is
        resized as (N, C, 1, L)."""
        where = f"from_torch: {what}"
        if mode == "area":
            why = _interpolate_problem(mode, align_corners)
            if why or antialias:
                raise TorchConversionError(f"{where}: {why or 'antialias with area'} is not "
                                           "supported")
            return self.area(x, size, scale_factor, what)
        if self._tensor(x, what).ndim == 3 and mode in ("nearest", "nearest-exact", "linear"):
            # (N, C, L): as (N, C, 1, L), its height kept (bilinear is then linear along L)
            def pair(v: Any, one: Any) -> Any:
                return None if v is None else (one, v[0] if isinstance(v, (tuple, list)) else v)

            try:
                out = self.upsample(self.unsqueeze(x, 2), pair(size, 1),
                                    pair(scale_factor, 1.0),
                                    "bilinear" if mode == "linear" else mode, align_corners,
                                    antialias, what, recompute_scale_factor, one_d=True)
            except TorchConversionError as e:
                raise TorchConversionError(
                    f"{where} of a 3-D (N, C, L) input with size={size!r}, scale_factor="
                    f"{scale_factor!r}, mode={mode!r} (resized as (N, C, 1, L), where: {e})"
                ) from e
            return self.squeeze(out, 2)
        t = _to_cl(self._tensor(x, what))
        if t.ndim != 4 or mode == "linear":
            raise TorchConversionError(f"{where} needs a 4-D (N, C, H, W) input (or a 3-D "
                                       f"(N, C, L) one for mode='linear', 'nearest' or "
                                       f"'nearest-exact'), got rank {t.ndim}")
        why = _interpolate_problem(mode, align_corners) or _resize_arguments_problem(
            size, scale_factor, mode, antialias)
        if why:
            raise TorchConversionError(f"{where}: {why} is not supported")
        in_hw = t.sym.shape[1:3]
        if mode == "bicubic":
            if antialias:
                raise TorchConversionError(f"{where}: bicubic with antialias=True (another "
                                           "filter in PyTorch) is not supported")
            # align_corners: the positions follow from the sizes alone (any scale factor);
            # else PyTorch samples at 1 / scale_factor, which must be in / out (as bilinear)
            out = _resize_output(size, scale_factor, in_hw,
                                 _whole_factors(size, scale_factor, in_hw),
                                 True if align_corners else recompute_scale_factor)
            if out is None:
                raise TorchConversionError(
                    f"{where} with mode='bicubic', size={size!r}, scale_factor="
                    f"{scale_factor!r}: PyTorch samples at 1 / scale_factor, which is not in / "
                    "out here (or a size is known only at run time); a size, or "
                    "recompute_scale_factor=True, converts")
            return _T(torch_resize_cubic(t.sym, out, bool(align_corners)), True)
        if align_corners:  # bilinear (checked): any size, every scale factor
            if antialias:
                raise TorchConversionError(f"{where}: antialias with align_corners=True is not "
                                           "supported")
            # (the sampling positions follow from the sizes alone, so any scale factor)
            out = _resize_output(size, scale_factor, in_hw, None, recompute=True)
            if out is None:
                raise TorchConversionError(f"{where}: align_corners=True with an output size "
                                           "below 1 or one known only at run time")
            return _T(torch_resize_corners(t.sym, out), True)
        factors = _whole_factors(size, scale_factor, in_hw)
        interpolation = "bilinear" if mode == "bilinear" else "nearest"
        if factors is not None and not antialias:
            return _T(UpSampling2D(factors, interpolation=interpolation)(t.sym), True)
        if mode == "nearest" and not any(d is None for d in in_hw):
            # PyTorch's legacy nearest: source index min(floor(o · s), in - 1) per axis
            sizes = size if isinstance(size, (tuple, list)) else (size, size)
            scales = (scale_factor if isinstance(scale_factor, (tuple, list))
                      else (scale_factor, scale_factor))
            if size is None:
                sizes = tuple(int(math.floor(d * float(f))) for d, f in zip(in_hw, scales))
            if recompute_scale_factor or size is not None:
                scales = (None, None)
            if min(int(o) for o in sizes) >= 1:
                rows, cols = (legacy_nearest_indices(d, int(o), None if f is None else float(f),
                                                     shortcuts=not one_d)
                              for d, o, f in zip(in_hw, sizes, scales))
                return _T(torch_nearest_index(t.sym, rows, cols), True)
        out = _resize_output(size, scale_factor, in_hw, factors, recompute_scale_factor)
        if mode == "nearest" or out is None:
            raise TorchConversionError(
                f"{where} with size={size!r}, scale_factor={scale_factor!r} is not supported "
                "with " + (
                    "mode='nearest' (PyTorch's legacy nearest): only whole scale factors (or a "
                    "size that is a whole multiple of a known input size); 'nearest-exact', "
                    "Keras's nearest, converts at any size" if mode == "nearest" else
                    "this scale factor: PyTorch samples at 1 / scale_factor, Keras's Resizing "
                    "at in / out, which differ here; a size, or recompute_scale_factor=True, "
                    "converts"
                )
            )
        return _T(Resizing(*out, interpolation=interpolation, antialias=bool(antialias))(t.sym),
                  True)

    def batch_norm(self, mod: Any, x: Any) -> _T:
        scale, shift = _bn_scale_shift(mod)
        return self._channel_affine(x, scale, shift, "batch_norm")

    def _channel_affine(self, x: Any, scale: np.ndarray, shift: np.ndarray, what: str) -> _T:
        """x·scale + shift per channel (axis 1 of PyTorch's (N, C, *) or (N, C)), on the
        channels-last tensor."""
        t = self._tensor(x, what)
        if t.ndim < 2:
            raise TorchConversionError(f"from_torch: {what} needs an input (N, C, *), got rank "
                                       f"{t.ndim}")
        if t.ndim >= 3:
            t = _to_cl(t)
        channels = t.sym.shape[-1]
        if channels is not None and channels != scale.size:
            raise TorchConversionError(f"from_torch: {what} has statistics for {scale.size} "
                                       f"channels, the input has {channels}")
        return _T(torch_scale_shift(t.sym, scale.astype(F32), shift.astype(F32)), t.cl)

    def _statistics_arguments(self, what: str, flag_name: str, flag: Any, eps: Any,
                              weight: Any, bias: Any, running_mean: Any,
                              running_var: Any) -> bool:
        """Checks a functional batch or instance norm's arguments; returns ``flag``: whether
        it normalizes by the input's own statistics (else by the running ones)."""
        _check_constants(what, running_mean=running_mean, running_var=running_var,
                         weight=weight, bias=bias)
        if not isinstance(flag, bool) or not _is_number(eps):
            self._refuse(f"{what} with {flag_name}={flag!r}, eps={eps!r}")
        return flag

    def _by_running_statistics(self, what: str, x: Any, running_mean: Any, running_var: Any,
                               weight: Any, bias: Any, eps: Any) -> _T:
        """The per-channel affine of running statistics (an eval-mode BatchNorm's)."""
        if running_mean is None or running_var is None:
            raise TorchConversionError(f"from_torch: {what} by running statistics needs "
                                       "running_mean and running_var, as PyTorch does")
        return self._channel_affine(
            x, *_scale_shift(running_mean, running_var, float(eps), weight, bias), what)

    def f_batch_norm(self, input: Any, running_mean: Any, running_var: Any,  # noqa: A002
                     weight: Any = None, bias: Any = None, training: Any = False,
                     momentum: Any = 0.1, eps: Any = 1e-5) -> _T:
        """``F.batch_norm``: with ``training`` false, the per-channel affine of the running
        statistics (an eval-mode BatchNorm's); with it true, the batch's own statistics
        (torch_batch_stats_norm; the running statistics are not updated, as a converted model
        keeps no state)."""
        x = input
        if not self._statistics_arguments("batch_norm", "training", training, eps, weight,
                                          bias, running_mean, running_var):
            return self._by_running_statistics("batch_norm", x, running_mean, running_var,
                                               weight, bias, eps)
        t = _to_torch(self._tensor(x, "batch_norm"))
        if t.ndim < 2:
            raise TorchConversionError(f"from_torch: batch_norm needs an input (N, C, *), got "
                                       f"rank {t.ndim}")
        return _T(torch_batch_stats_norm(t.sym, weight, bias, float(eps)), False)

    def f_instance_norm(self, input: Any, running_mean: Any = None,  # noqa: A002
                        running_var: Any = None, weight: Any = None, bias: Any = None,
                        use_input_stats: Any = True, momentum: Any = 0.1,
                        eps: Any = 1e-5) -> _T:
        """``F.instance_norm``: each sample's channels normalized by their own statistics
        (GroupNormalization with one group per channel, as nn.InstanceNorm); with
        ``use_input_stats`` false, the running statistics' affine (as batch_norm)."""
        x = input
        if not self._statistics_arguments("instance_norm", "use_input_stats", use_input_stats,
                                          eps, weight, bias, running_mean, running_var):
            return self._by_running_statistics("instance_norm", x, running_mean, running_var,
                                               weight, bias, eps)
        if self._tensor(x, "instance_norm").ndim < 3:
            raise TorchConversionError("from_torch: instance_norm needs an input (N, C, *) of "
                                       "rank 3 or more")
        self._spatial_values(x, "instance_norm")
        return self.group_norm(x, -1, float(eps), weight, bias, what="instance_norm")

    def prelu(self, x: Any, alpha: Any, what: str = "prelu") -> _T:
        """``nn.PReLU`` / ``F.prelu``: alpha one number, or one per channel (axis 1)."""
        _check_constants(what, weight=alpha)
        alpha = np.asarray(alpha, F32).reshape(-1)
        t = self._tensor(x, what)
        if alpha.size > 1 and (t.ndim < 2 or t.sym.shape[_axis_in_layout(t, 1)] != alpha.size):
            raise TorchConversionError(
                f"from_torch: {what} has {alpha.size} parameters for an input of "
                f"shape {t.sym.shape} (channels on axis 1)"
            )
        axis = _axis_in_layout(t, 1) if t.ndim >= 2 else 0
        return _T(torch_prelu(t.sym, alpha, axis), t.cl)

    def local_response_norm(self, input: Any, size: Any, alpha: Any = 1e-4,  # noqa: A002
                            beta: Any = 0.75, k: Any = 1.0) -> _T:
        """``F.local_response_norm`` (``nn.LocalResponseNorm`` traces into it) across the
        channels of an (N, C, *) input, on the tensor as stored."""
        x = input
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 1
                and all(_is_number(v) for v in (alpha, beta, k))):
            self._refuse(f"local_response_norm with size={size!r}, alpha={alpha!r}, "
                         f"beta={beta!r}, k={k!r}")
        t = self._tensor(x, "local_response_norm")
        if t.ndim < 3:
            raise TorchConversionError("from_torch: local_response_norm needs an input "
                                       f"(N, C, *) of rank 3 or more, got rank {t.ndim}")
        return _T(torch_local_response_norm(t.sym, size, float(alpha), float(beta), float(k),
                                            _axis_in_layout(t, 1)), t.cl)

    def affine_grid(self, theta: Any, size: Any, align_corners: Any = None) -> _T:
        """``F.affine_grid(theta, size)`` of a 2-D size (N, C, H, W): the sampling grid
        (N, H, W, 2) of theta's affine transforms (torch_affine_grid), H and W known at
        conversion (``x.size()`` of a model's input gives them), N theta's own."""
        where = "from_torch: affine_grid"
        if not isinstance(size, (tuple, list)) or len(size) != 4:
            raise TorchConversionError(
                f"{where} of size {size!r}: only a 2-D size (N, C, H, W) converts (a 3-D "
                "grid for a 5-D input does not)")
        n, _, h, w = size
        if not all(isinstance(d, int) for d in (h, w)):
            raise TorchConversionError(f"{where}: the output height and width must be known "
                                       f"at conversion, got {h!r} and {w!r}")
        if min(h, w) <= 0:
            raise TorchConversionError(f"{where}: expected a non-zero, positive output size, "
                                       f"got {tuple(size)!r} (PyTorch refuses it)")
        if align_corners not in (None, True, False):
            self._refuse(f"affine_grid with align_corners={align_corners!r}")
        t = _to_torch(self._tensor(theta, "affine_grid"))
        if t.ndim != 3 or tuple(t.sym.shape[1:]) != (2, 3) or not _is_float(t.sym):
            raise TorchConversionError(
                f"{where}: theta must be a float (N, 2, 3) tensor for a 2-D size, got "
                f"{t.sym.dtype} {tuple(t.sym.shape)}")
        if not isinstance(n, _Dim):  # theta's batch is the model's, which stays free
            raise TorchConversionError(
                f"{where} with the batch {n!r} written in its size fixes the batch axis, "
                "which a converted model leaves free; take it from the input (x.size(), or "
                "(x.size(0), C, H, W))")
        # The normalized positions of the output pixels, from PyTorch itself (its linspace
        # rounds by its vector width; a nearest sample exactly halfway between two pixels
        # takes its side): the grid of the identity transform.
        eye = self.torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        base = self.F.affine_grid(eye, (1, 1, h, w), align_corners=bool(align_corners))
        return _T(torch_affine_grid(t.sym, base[0].numpy(), None), False)

    def grid_sample(self, input: Any, grid: Any, mode: Any = "bilinear",  # noqa: A002
                    padding_mode: Any = "zeros", align_corners: Any = None) -> _T:
        """``F.grid_sample`` of a 4-D (N, C, H, W) input at a grid (N, H_out, W_out, 2):
        torch_grid_sample on the channels-last input, every mode ("bilinear", "nearest",
        "bicubic") and padding_mode ("zeros", "border", "reflection")."""
        where = "from_torch: grid_sample"
        if mode not in ("bilinear", "nearest", "bicubic"):
            raise TorchConversionError(f"{where}: mode {mode!r} (PyTorch takes 'bilinear', "
                                       "'nearest' or 'bicubic')")
        if padding_mode not in ("zeros", "border", "reflection"):
            raise TorchConversionError(f"{where}: padding_mode {padding_mode!r} (PyTorch "
                                       "takes 'zeros', 'border' or 'reflection')")
        if align_corners not in (None, True, False):
            self._refuse(f"grid_sample with align_corners={align_corners!r}")
        x = _to_cl(self._tensor(input, "grid_sample"))
        g = _to_torch(self._tensor(grid, "grid_sample grid"))
        if x.ndim != 4 or not _is_float(x.sym):
            raise TorchConversionError(
                f"{where} of a {x.sym.dtype} input of rank {x.ndim}: only a float 4-D "
                "(N, C, H, W) input converts (a 5-D one does not)")
        if g.ndim != 4 or g.sym.shape[-1] != 2 or not _is_float(g.sym):
            raise TorchConversionError(
                f"{where}: the grid must be a float (N, H_out, W_out, 2) tensor for a 4-D "
                f"input, got {g.sym.dtype} {tuple(g.sym.shape)}")
        return _T(torch_grid_sample(x.sym, g.sym, mode, padding_mode, bool(align_corners)),
                  True)

    # ---- complex tensors (_C) ----------------------------------------------------------
    def view_as_complex(self, input: Any) -> _C:  # noqa: A002
        """``torch.view_as_complex`` of a float tensor whose last axis is 2 (a rotary
        embedding's x.reshape(..., -1, 2))."""
        t = _to_torch(self._tensor(input, "view_as_complex"))
        if not _is_float(t.sym) or t.ndim < 2 or t.sym.shape[-1] != 2:
            raise TorchConversionError(
                "from_torch: view_as_complex needs a float tensor whose last axis is 2, got "
                f"{t.sym.dtype} {tuple(t.sym.shape)}")
        return _C(t.sym)

    def fft(self, kind: str, input: Any, n: Any = None, dim: Any = -1,  # noqa: A002
            norm: Any = None) -> Any:
        """``torch.fft.fft`` / ``ifft`` / ``rfft`` / ``irfft`` of a real or complex tensor
        along one axis (torch_fft, NumPy's FFT): complex results are _C, irfft's real."""
        cx = isinstance(input, _C)
        if cx:
            sym, rank = input.sym, input.ndim
        else:
            t = _to_torch(self._tensor(input, kind))
            if not _is_float(t.sym):
                raise TorchConversionError(f"from_torch: {kind} of a {t.sym.dtype} tensor "
                                           "(a float or complex one converts)")
            sym, rank = t.sym, t.ndim
        if kind == "rfft" and cx:
            raise TorchConversionError("from_torch: rfft of a complex tensor (PyTorch "
                                       "refuses it)")
        if norm not in (None, "backward", "ortho", "forward") or not (
                n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1)):
            self._refuse(f"{kind} with n={n!r}, norm={norm!r}")
        if not isinstance(dim, int) or isinstance(dim, bool):
            self._refuse(f"{kind} with dim={dim!r} (one axis)")
        axis = _dim(dim, rank, kind)
        out = torch_fft(sym, kind, n, axis, norm, cx)
        return _T(out, False) if kind == "irfft" else _C(out)

    def stft(self, input: Any, n_fft: Any, hop_length: Any = None,  # noqa: A002
             win_length: Any = None, window: Any = None, center: Any = True,
             pad_mode: Any = "reflect", normalized: Any = False, onesided: Any = None,
             return_complex: Any = None, align_to_window: Any = None) -> Any:
        """``torch.stft`` of signals (B, L) with a constant window (a buffer, or made in
        forward from constants: torch.hann_window(n)): (B, n_fft // 2 + 1, frames) complex
        (_C), or its view_as_real pairs with return_complex=False (torch_stft)."""
        t = _to_torch(self._tensor(input, "stft"))
        if t.ndim != 2 or not _is_float(t.sym):
            raise TorchConversionError("from_torch: stft of a float (B, L) batch of signals "
                                       f"converts, got {t.sym.dtype} {tuple(t.sym.shape)}")
        ok = isinstance(n_fft, int) and not isinstance(n_fft, bool) and n_fft >= 1
        hop = n_fft // 4 if ok and hop_length is None else hop_length
        win = n_fft if win_length is None else win_length
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                             for v in (hop, win)) or win > n_fft:
            raise TorchConversionError(
                f"from_torch: stft with n_fft={n_fft!r}, hop_length={hop_length!r}, "
                f"win_length={win_length!r} (whole numbers, win_length at most n_fft)")
        if pad_mode not in ("reflect", "constant", "replicate", "circular") or (
                align_to_window not in (None, False)) or return_complex is None:
            self._refuse(f"stft with pad_mode={pad_mode!r}, align_to_window="
                         f"{align_to_window!r}, return_complex={return_complex!r}")
        _check_constants("stft", window=window)
        w = np.ones(win, F32) if window is None else np.asarray(window, F32).reshape(-1)
        if w.size != win:
            raise TorchConversionError(f"from_torch: stft with a window of {w.size} values "
                                       f"for win_length {win}")
        length = t.sym.shape[1]
        pad = n_fft // 2 if center else 0
        if length is not None and ((center and pad_mode == "reflect" and pad >= length)
                                   or length + 2 * pad < n_fft):
            raise TorchConversionError(
                f"from_torch: stft of signals of {length} samples with n_fft {n_fft} "
                f"(center={bool(center)}, pad_mode={pad_mode!r}): too short, as PyTorch "
                "says too")
        left = (n_fft - win) // 2  # PyTorch centres a shorter window in zeros
        full = np.zeros(n_fft, F32)
        full[left:left + win] = w
        out = torch_stft(t.sym, n_fft, hop, full, bool(center), pad_mode, bool(normalized),
                         True if onesided is None else bool(onesided))
        return _C(out) if return_complex else _T(out, False)

    def complex_call(self, kind: str, target: Any, args: tuple, kwargs: dict,
                     where: str) -> Any:
        """A call with a complex tensor (_C) among its arguments: the arithmetic (add, sub,
        mul, div), abs, angle, real, imag, conj, view_as_real, the FFTs, and the sizes of a
        complex tensor; anything else is refused."""
        name = target if kind == "call_method" else getattr(target, "__name__", str(target))
        try:
            return self._complex_call(kind, target, args, kwargs, where, name)
        except TypeError as e:  # arguments a conversion does not take (out=, a typo)
            raise TorchConversionError(f"from_torch: {where} ({name}) of a complex tensor "
                                       f"with these arguments: {e}") from e

    def _complex_call(self, kind: str, target: Any, args: tuple, kwargs: dict, where: str,
                      name: str) -> Any:
        """complex_call's dispatch; the tensor arguments by position or by PyTorch's names
        (input, other)."""
        torch = self.torch
        kwargs = dict(kwargs)
        if "input" in kwargs and kind == "call_function":
            args = (kwargs.pop("input"), *args)
        if "other" in kwargs and len(args) == 1:
            args = (*args, kwargs.pop("other"))
        if kwargs.get("alpha", 1) == 1:
            kwargs.pop("alpha", None)
        arith = {operator.mul: "mul", operator.add: "add", operator.sub: "sub",
                 operator.truediv: "div", torch.mul: "mul", torch.add: "add", torch.sub: "sub",
                 torch.div: "div"}
        parts = {torch.abs: "abs", torch.angle: "angle", torch.real: "real",
                 torch.imag: "imag", torch.conj: "conj"}
        ffts = {torch.fft.fft: "fft", torch.fft.ifft: "ifft", torch.fft.irfft: "irfft"}
        if kind == "call_module":  # (its name may be a method's: self.conj = nn.Identity())
            raise TorchConversionError(
                f"from_torch: {where} ({type(self.gm.get_submodule(target)).__name__}) of a "
                "complex tensor is not supported (a module takes real tensors)")
        op = arith.get(target) if kind == "call_function" else (
            target if target in ("mul", "add", "sub", "div") else None)
        if op is not None and len(args) == 2 and not kwargs:
            return self._complex_binary(args[0], args[1], op)
        part = parts.get(target) if kind == "call_function" else (
            target if target in ("abs", "angle", "conj") else None)
        if part is not None and len(args) == 1 and not kwargs and isinstance(args[0], _C):
            out = torch_complex_unary(args[0].sym, part)
            return _C(out) if part == "conj" else _T(out, False)
        if (target in (torch.resolve_conj, torch.resolve_neg) or target in (
                "resolve_conj", "resolve_neg", "contiguous", "clone")) and len(args) == 1:
            return args[0]  # (conj above is computed at once: nothing left to resolve)
        if target is operator.getitem and len(args) == 2 and isinstance(args[0], _C):
            return self._complex_index(args[0], args[1])
        if kind == "call_function" and target is torch.view_as_real and len(args) == 1:
            return _T(args[0].sym, False)
        if kind == "call_function" and target in ffts and args and isinstance(args[0], _C):
            return self.fft(ffts[target], *args, **kwargs)
        if target is getattr and len(args) == 2 and isinstance(args[0], _C):
            c, attr = args
            if attr in ("real", "imag"):
                return _T(torch_complex_unary(c.sym, attr), False)
            if attr == "shape":
                return self.size(_T(c.sym, False))[:-1]
            if attr == "ndim":
                return c.ndim
        if kind == "call_method" and target in ("size", "dim") and args and isinstance(
                args[0], _C):
            if target == "dim":
                return args[0].ndim
            sizes = self.size(_T(args[0].sym, False))[:-1]
            if not args[1:] and not kwargs:
                return sizes
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            return sizes[_dim(dim, len(sizes), "size")]
        raise TorchConversionError(
            f"from_torch: {where} ({name}) of a complex tensor is not supported (complex "
            "tensors convert through view_as_complex, view_as_real, +, -, *, /, abs, angle, "
            "real, imag, conj, torch.fft.fft / ifft / rfft / irfft and torch.stft; return "
            "torch.view_as_real(z) or z.abs() rather than a complex tensor)")

    def _complex_index(self, c: _C, key: Any) -> _C:
        """``z[key]`` of a complex tensor with basic indexing (ints, slices, None, one
        Ellipsis: Whisper's stft[..., :-1]): the key spelled out over z's axes, then the
        pairs' axis kept whole."""
        key = key if isinstance(key, tuple) else (key,)
        if not all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in key) or (
                sum(k is Ellipsis for k in key) > 1):
            self._refuse(f"indexing a complex tensor with {key!r} (ints, slices, None and "
                         "one Ellipsis)")
        used = sum(k is not None and k is not Ellipsis for k in key)
        if used > c.ndim:
            raise TorchConversionError(f"from_torch: an index of {used} axes for a complex "
                                       f"tensor of rank {c.ndim}")
        if Ellipsis in key:
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (c.ndim - used) + key[i + 1:]
        else:
            key = key + (slice(None),) * (c.ndim - used)
        out = self.getitem(_T(c.sym, False), key + (slice(None),))
        return _C(out.sym)

    def _complex_binary(self, a: Any, b: Any, op: str) -> _C:
        """a op b with a complex tensor: the other operand a complex tensor, a real tensor,
        or a constant (a complex buffer such as a rotary embedding's freqs_cis, or a
        number)."""
        def operand(v: Any) -> tuple[Any, bool]:
            if isinstance(v, _C):
                return v.sym, True
            if isinstance(v, _T):
                t = _to_torch(v)
                if not _is_float(t.sym):
                    raise TorchConversionError(f"from_torch: {op} of a complex tensor and a "
                                               f"{t.sym.dtype} one")
                return t.sym, False
            if isinstance(v, (bool, np.bool_)) or not isinstance(
                    v, (int, float, complex, np.ndarray, np.number)):
                raise TorchConversionError(f"from_torch: {op} of a complex tensor and a "
                                           f"{type(v).__name__}")
            arr = np.asarray(v)
            if arr.dtype.kind not in "iufc":
                raise TorchConversionError(f"from_torch: {op} of a complex tensor and a "
                                           f"{arr.dtype} constant")
            return arr.astype(np.complex64), False

        (x, cx), (y, cy) = operand(a), operand(b)
        return _C(torch_complex_binary(x, y, op, (cx, cy)))

    def cdist(self, x1: Any, x2: Any, p: Any = 2.0,
              compute_mode: Any = "use_mm_for_euclid_dist_if_necessary") -> _T:
        """``torch.cdist``: p-norm distances between the rows of x1 (*, P, M) and x2
        (*, R, M) (torch_cdist in float64; compute_mode picks the p = 2 form as PyTorch's
        does, "if_necessary" by size)."""
        modes = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                 "donot_use_mm_for_euclid_dist")
        if not _is_number(p) or p < 0 or compute_mode not in modes:
            self._refuse(f"cdist with p={p!r}, compute_mode={compute_mode!r}")
        a, b = (self._operand(v, "cdist") for v in (x1, x2))  # a memory bank may be a buffer
        sa, sb = np.shape(a), np.shape(b)
        if len(sa) < 2 or len(sb) < 2 or (None not in (sa[-1], sb[-1]) and sa[-1] != sb[-1]):
            raise TorchConversionError(f"from_torch: cdist needs x1 (*, P, M) and x2 (*, R, M) "
                                       f"with the same M, got {sa} and {sb}")
        mm = {"use_mm_for_euclid_dist": True, "donot_use_mm_for_euclid_dist": False}.get(
            compute_mode)
        return _T(torch_cdist(a, b, float(p), mm), False)

    def f_bilinear(self, input1: Any, input2: Any, weight: Any, bias: Any = None) -> _T:
        """``F.bilinear`` (``nn.Bilinear`` traces into it): torch_bilinear with the weight
        (out, in1, in2) and bias (out,) known at conversion."""
        _check_constants("bilinear", weight=weight, bias=bias)
        if weight is None or weight.ndim != 3 or (bias is not None and
                                                  bias.shape != weight.shape[:1]):
            raise TorchConversionError(
                f"from_torch: bilinear needs a weight (out, in1, in2) and a bias (out,), got "
                f"{None if weight is None else weight.shape} and "
                f"{None if bias is None else bias.shape}")
        a, b = (_to_torch(self._tensor(v, "bilinear")) for v in (input1, input2))
        if (a.sym.shape[-1:], b.sym.shape[-1:]) != (weight.shape[1:2], weight.shape[2:]):
            raise TorchConversionError(
                f"from_torch: bilinear needs inputs (*, {weight.shape[1]}) and "
                f"(*, {weight.shape[2]}), got {a.sym.shape} and {b.sym.shape}")
        return _T(torch_bilinear(a.sym, b.sym, weight.astype(F32),
                                 None if bias is None else bias.astype(F32)), False)

    def median(self, ignore_nan: bool, input: Any, dim: Any = None,  # noqa: A002
               keepdim: Any = False) -> Any:
        """``torch.median`` / ``nanmedian`` and the methods: of everything (a 0-d value), or
        along a dim ((values, indices); torch_median)."""
        name = "nanmedian" if ignore_nan else "median"
        t = self._tensor(input, name)
        if dim is None:
            return _T(torch_median(_to_torch(t).sym, None, False, ignore_nan), False)
        t, axes, cl = _reduction_axes(t, [_dim(dim, t.ndim, name)], bool(keepdim))
        res = torch_median(t.sym, axes[0], bool(keepdim), ignore_nan)
        return _ValuesIndices((_T(res[0], cl), _T(res[1], cl)))

    def quantile(self, ignore_nan: bool, input: Any, q: Any, dim: Any = None,  # noqa: A002
                 keepdim: Any = False, *, interpolation: Any = "linear") -> _T:
        """``torch.quantile`` / ``nanquantile`` and the methods (torch_quantile): q a number
        or a 1-D tensor known at conversion."""
        name = "nanquantile" if ignore_nan else "quantile"
        if isinstance(q, _T) or interpolation not in _QUANTILE_METHODS or (
                not _is_number(q) and np.asarray(q).ndim > 1):
            self._refuse(f"{name} with q={q if not isinstance(q, _T) else 'a computed tensor'}"
                         f", interpolation={interpolation!r} (q a number or a 0-D or 1-D "
                         "constant)")
        q = float(q) if _is_number(q) else np.asarray(q, np.float32)
        if np.isnan(q).any() or np.min(q, initial=0.0) < 0 or np.max(q, initial=0.0) > 1:
            raise TorchConversionError(f"from_torch: {name} needs q in [0, 1], got {q!r} "
                                       "(PyTorch raises too)")
        t = _to_torch(self._tensor(input, name))
        axis = None if dim is None else _dim(dim, t.ndim, name)
        return _T(torch_quantile(t.sym, q, axis, bool(keepdim), interpolation, ignore_nan),
                  False)

    def layer_norm(self, mod: Any, x: Any) -> _T:
        t = _to_torch(self._tensor(x, "layer_norm"))
        return _T(torch_layer_norm(t.sym, _np(mod.weight), _np(getattr(mod, "bias", None)),
                                   len(mod.normalized_shape), float(mod.eps)), False)

    def group_norm(self, x: Any, groups: int, eps: float, weight: Any, bias: Any,
                   qual: str | None = None, what: str = "group_norm") -> _T:
        """``nn.GroupNorm`` / ``F.group_norm`` on (N, C, *): GroupNormalization on the
        channels-last tensor (the same groups of consecutive channels; PyTorch's eps), with
        gamma = weight and beta = bias when given (arrays). ``groups`` -1: one per channel (an
        instance norm). A module's layer is made once (``qual``), a function's per call."""
        t = self._tensor(x, what)
        if t.ndim >= 3:
            t = _to_cl(t)
        layer = self.layers.get(qual) if qual is not None else None
        if layer is None:
            _check_constants(what, weight=weight, bias=bias)
            layer = GroupNormalization(groups, epsilon=float(eps), center=bias is not None,
                                       scale=weight is not None,
                                       name=None if qual is None else self._layer_name(qual))
            weights = [np.asarray(w, F32) for w in (weight, bias) if w is not None]
            if weights:
                layer.set_weights(weights)
            if qual is not None:
                self.layers[qual] = layer
        return _T(layer(t.sym), t.cl)

    def _module_norm(self, qual: str, mod: Any, x: Any, groups: int) -> _T:
        """group_norm with an nn.GroupNorm's or InstanceNorm's eps and affine weights. Without
        weights, one layer per call: PyTorch lets such a module run on any channel count,
        and a Keras layer is built for one."""
        if not mod.affine:
            return self.group_norm(x, groups, mod.eps, None, None, what=qual)
        return self.group_norm(x, groups, mod.eps, _np(mod.weight), _np(mod.bias), qual, qual)

    def instance_norm(self, qual: str, mod: Any, x: Any) -> _T:
        """``nn.InstanceNorm1d`` / ``2d`` on a batched (N, C, L) / (N, C, H, W): in eval mode
        with running statistics the per-channel affine of a BatchNorm, else each sample's
        channels normalized alone (GroupNormalization with one group per channel)."""
        rank = 3 if isinstance(mod, self.nn.InstanceNorm1d) else 4
        if self._tensor(x, qual).ndim != rank:
            raise TorchConversionError(
                f"from_torch: {qual} ({type(mod).__name__}) needs a batched rank-{rank} input"
            )
        if mod.track_running_stats and mod.running_mean is not None:
            return self.batch_norm(mod, x)
        self._spatial_values(x, f"{qual} ({type(mod).__name__})")
        return self._module_norm(qual, mod, x, -1)

    def _spatial_values(self, x: Any, what: str) -> None:
        """An instance norm by the input's statistics needs more than one position per
        channel (PyTorch raises for one): refused when the examples fix a single one."""
        t = _to_torch(self._tensor(x, what))
        sizes = t.sym.shape[2:]
        if None not in sizes and math.prod(sizes) == 1:
            raise TorchConversionError(
                f"from_torch: {what} normalizes each channel over its positions, and the input "
                f"{tuple(t.sym.shape)} has one per channel (PyTorch raises: expected more than "
                "1 spatial element)")

    def _layer_norm_fn(self, x: Any, normalized_shape: Any, weight: Any = None,
                       bias: Any = None, eps: float = 1e-5) -> _T:
        """``F.layer_norm``: over the last len(normalized_shape) axes, weight and bias arrays
        (parameters or constants) or None."""
        t = _to_torch(self._tensor(x, "layer_norm"))
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        _check_constants("layer_norm", weight=weight, bias=bias)
        return _T(torch_layer_norm(t.sym, weight, bias, len(tuple(shape)), float(eps)), False)

    def rms_norm(self, x: Any, normalized_shape: Any, weight: Any, eps: Any,
                 qual: str | None = None, what: str = "rms_norm") -> _T:
        """``nn.RMSNorm`` / ``F.rms_norm``: RMSNormalization over the last
        len(normalized_shape) axes of the tensor in PyTorch's layout, scale = weight (ones
        without); eps None is the float32 machine epsilon, as PyTorch takes it. A module's
        layer is made once (``qual``), a function's per call."""
        t = _to_torch(self._tensor(x, what))
        layer = self.layers.get(qual) if qual is not None else None
        if layer is None:
            _check_constants(what, weight=weight)
            shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                     else tuple(int(d) for d in normalized_shape))
            n = len(shape)
            if not 1 <= n <= t.ndim or tuple(t.sym.shape[t.ndim - n:]) != shape:
                raise TorchConversionError(
                    f"from_torch: {what}: normalized_shape {shape} is not the last axes of the "
                    f"input {tuple(t.sym.shape)}"
                )
            eps = float(np.finfo(np.float32).eps) if eps is None else float(eps)
            layer = RMSNormalization(axis=list(range(-n, 0)), epsilon=eps,
                                     name=None if qual is None else self._layer_name(qual))
            layer.set_weights([np.ones(shape, F32) if weight is None
                               else np.asarray(weight, F32).reshape(shape)])
            if qual is not None:
                self.layers[qual] = layer
        return _T(layer(t.sym), False)

    def pool(self, x: Any, kind: str, k: Any, s: Any, p: Any, d: Any = 1,
             ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: Any = None) -> _T:
        t = _to_cl(self._tensor(x, f"{kind}_pool2d"))
        if t.ndim != 4:
            raise TorchConversionError(f"from_torch: {kind}_pool2d needs a 4-D input")
        _pool_padding_fits(f"{kind}_pool2d", _pair(k), _pair(p))
        s = k if s is None or (isinstance(s, (list, tuple)) and not s) else s
        if _pair(p) == (0, 0) and _pair(d) == (1, 1) and not ceil_mode and not divisor_override:
            # no padding, no dilation: Keras's "valid" pooling computes the same
            cls = MaxPooling2D if kind == "max" else AveragePooling2D
            return _T(cls(_pair(k), _pair(s), padding="valid")(t.sym), True)
        return _T(torch_pool2d(t.sym, kind, _pair(k), _pair(s), _pair(p), _pair(d),
                               bool(ceil_mode), bool(count_include_pad), divisor_override), True)

    def lp_pool(self, dims: int, input: Any, norm_type: Any, kernel_size: Any,  # noqa: A002
                stride: Any = None, ceil_mode: Any = False) -> _T:
        """``F.lp_pool1d`` / ``F.lp_pool2d`` (``nn.LPPool1d`` / ``2d`` trace into them) in
        PyTorch's own steps: the p-th powers average-pooled (no padding), times the window
        size, sign(out)·relu(|out|) to the power 1/p; p = ±inf the largest (or, negated, the
        smallest) magnitude."""
        what = f"lp_pool{dims}d"
        if not _is_number(norm_type) or norm_type == 0:
            self._refuse(f"{what} with norm_type={norm_type!r} (a nonzero number)")
        rank = self._tensor(input, what).ndim
        if rank != dims + 2:
            layout = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
            raise TorchConversionError(f"from_torch: {what} needs a batched {dims + 2}-D "
                                       f"input {layout}, got rank {rank}")

        def pool(v: Any, kind: str) -> _T:
            if dims == 1:
                return self.pool1d(v, kind, kernel_size, stride, 0, 1, ceil_mode, what=what)
            return self.pool(v, kind, kernel_size, stride, 0, 1, ceil_mode)

        if math.isinf(norm_type):
            if norm_type > 0:
                return pool(self.unary(input, "abs"), "max")
            return self.unary(pool(self.unary(self.unary(input, "abs"), "neg"), "max"), "neg")
        out = pool(self.binary(input, norm_type, "pow"), "avg")
        out = self.binary(self.unary(out, "sign"),
                          self.activation(self.unary(out, "abs"), "relu"), "mul")
        size = _single(kernel_size) if dims == 1 else math.prod(_pair(kernel_size))
        return self.binary(self.binary(out, size, "mul"), 1.0 / norm_type, "pow")

    def pool1d(self, x: Any, kind: str, k: Any, s: Any, p: Any, d: Any = 1,
               ceil_mode: bool = False, count_include_pad: bool = True,
               what: str = "pool1d") -> _T:
        """``nn.MaxPool1d`` / ``nn.AvgPool1d`` and their functions on (N, C, L): Keras's
        "valid" MaxPooling1D / AveragePooling1D without padding, dilation or ceil_mode, else
        PyTorch's rule on NLC (torch_pool1d)."""
        t = self._tensor(x, what)
        if t.ndim != 3:
            raise TorchConversionError(f"from_torch: {what} needs a batched 3-D input, got "
                                       f"rank {t.ndim}")
        t = _to_cl(t)
        k, p, d = _single(k), _single(p), _single(d)
        _pool_padding_fits(what, (k,), (p,))
        s = k if s is None or (isinstance(s, (list, tuple)) and not s) else _single(s)
        if p == 0 and d == 1 and not ceil_mode:
            cls = MaxPooling1D if kind == "max" else AveragePooling1D
            return _T(cls(k, s, padding="valid")(t.sym), True)
        return _T(torch_pool1d(t.sym, kind, k, s, p, d, bool(ceil_mode),
                               bool(count_include_pad)), True)

    def log_softmax(self, x: Any, dim: Any, negate: bool = False,
                    what: str = "log_softmax", dtype: Any = None) -> _T:
        """``log_softmax`` over ``dim`` (PyTorch's numbering); ``negate``: of -x."""
        self._float32_only(what, dtype)
        t = self._tensor(x, what)
        if t.ndim == 0:
            raise TorchConversionError(f"from_torch: {what} of a 0-d tensor")
        axis = _axis_in_layout(t, int(_legacy_dim(t, dim)))
        return _T(torch_log_softmax(t.sym, axis, negate), t.cl)

    def softmin(self, x: Any, dim: Any, dtype: Any = None) -> _T:
        self._float32_only("softmin", dtype)
        t = self._tensor(x, "softmin")
        if t.ndim == 0:
            raise TorchConversionError("from_torch: softmin of a 0-d tensor")
        axis = _axis_in_layout(t, int(_legacy_dim(t, dim)))
        return _T(torch_softmax(torch_binary(t.sym, -1.0, "mul"), axis), t.cl)

    def pad(self, x: Any, pad: Any, mode: str = "constant", value: Any = None,
            what: str = "pad") -> _T:
        """``F.pad`` and the padding modules: ``pad`` (before, after) pairs from the last
        axis backwards, PyTorch's order; the tensor keeps its layout."""
        t = self._tensor(x, what)
        where = f"from_torch: {what}"
        if mode not in ("constant", "reflect", "replicate", "circular"):
            raise TorchConversionError(f"{where}: mode={mode!r} is not supported")
        pad = tuple(int(v) for v in pad)
        if len(pad) % 2 or len(pad) // 2 > t.ndim:
            raise TorchConversionError(f"{where}: pad {pad} for a tensor of rank {t.ndim}")
        if any(v < 0 for v in pad):
            raise TorchConversionError(f"{where}: negative padding {pad} (cropping) is not "
                                       "supported")
        if mode != "constant" and not (len(pad) // 2 <= 3
                                       and t.ndim - 2 <= len(pad) // 2 <= t.ndim - 1):
            raise TorchConversionError(  # PyTorch's rule for the non-constant modes
                f"{where}: {mode} padding of {len(pad) // 2} axes of a rank-{t.ndim} tensor "
                "(PyTorch pads the last 1, 2 or 3 axes of a tensor with 1 or 2 more)"
            )
        widths = [(0, 0)] * t.ndim
        for i in range(len(pad) // 2):
            axis = _axis_in_layout(t, t.ndim - 1 - i)
            before, after = pad[2 * i], pad[2 * i + 1]
            size = t.sym.shape[axis]
            # (reflect needs a wider axis, circular one as wide; replicate any but an empty one)
            limit = {"reflect": size, "circular": size + 1, "replicate": 1 if size == 0 else None,
                     "constant": None}[mode] if size is not None else None
            if limit is not None and max(before, after) >= limit:
                raise TorchConversionError(
                    f"{where}: {mode} padding {(before, after)} of an axis of size {size} "
                    "(PyTorch refuses it too)"
                )
            widths[axis] = (before, after)
        value = 0.0 if value is None else float(value)
        return _T(torch_pad(t.sym, tuple(widths), mode, value), t.cl)

    def pixel_shuffle(self, x: Any, r: int, inverse: bool, what: str) -> _T:
        t = self._tensor(x, what)
        if t.ndim != 4:
            raise TorchConversionError(f"from_torch: {what} needs a batched 4-D input")
        t = _to_cl(t)
        h, w, c = t.sym.shape[1:]
        r = int(r)
        bad = (c is not None and c % (r * r)) if not inverse else (
            any(d is not None and d % r for d in (h, w)))
        if r < 1 or bad:
            raise TorchConversionError(
                f"from_torch: {what} by {r} of an input of shape {t.torch_shape}"
            )
        return _T(torch_pixel_shuffle(t.sym, r, inverse), True)

    def im2col(self, x: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
               stride: Any = 1, output_size: Any = None, what: str = "unfold") -> _T:
        """``nn.Unfold`` / ``F.unfold`` of a batched (N, C, H, W) input (torch_unfold), or with
        ``output_size``, ``nn.Fold`` / ``F.fold`` of an (N, C * kh * kw, L) one (torch_fold);
        both in PyTorch's layout."""
        t = _to_torch(self._tensor(x, what))
        want = 3 if output_size is not None else 4
        if t.ndim != want:
            raise TorchConversionError(
                f"from_torch: {what} needs a batched {want}-D input, got rank {t.ndim}")
        try:
            kernel, dil, pad, step = (_pair(v) for v in (kernel_size, dilation, padding, stride))
        except (TypeError, ValueError, IndexError) as e:
            raise TorchConversionError(f"from_torch: {what} with kernel_size, dilation, "
                                       "padding and stride not ints or pairs of ints") from e
        if min(kernel + dil + step) < 1 or min(pad) < 0:
            raise TorchConversionError(
                f"from_torch: {what} with kernel_size {kernel}, dilation {dil}, padding {pad}, "
                f"stride {step} (positive sizes, padding of 0 or more)")
        if output_size is None:
            return _T(torch_unfold(t.sym, kernel, dil, pad, step), False)
        try:
            out = _pair(output_size)
        except (TypeError, ValueError, IndexError) as e:
            raise TorchConversionError(f"from_torch: {what} with output_size={output_size!r}"
                                       " (an int or a pair of ints known at conversion)") from e
        return _T(torch_fold(t.sym, out, kernel, dil, pad, step), False)

    def windows(self, x: Any, dimension: Any, size: Any, step: Any) -> _T:
        """``Tensor.unfold(dimension, size, step)``: sliding windows (torch_windows), in
        PyTorch's layout."""
        t = _to_torch(self._tensor(x, "unfold"))
        if not all(isinstance(v, (int, np.integer)) for v in (dimension, size, step)):
            raise TorchConversionError("from_torch: Tensor.unfold with a dimension, size or "
                                       "step known only at run time")
        if size < 0 or step < 1:
            raise TorchConversionError(f"from_torch: Tensor.unfold with size {size} and step "
                                       f"{step} (a size of 0 or more, a step of 1 or more)")
        axis = _dim(dimension, t.ndim, "unfold")
        return _T(torch_windows(t.sym, axis, int(size), int(step)), False)

    def area(self, x: Any, size: Any, scale_factor: Any, what: str) -> _T:
        """``interpolate(mode="area")`` of a 3-D or 4-D input: PyTorch's adaptive average
        pooling to the output size, floor(in * scale_factor) per axis from a scale factor."""
        t = self._tensor(x, what)
        rank = t.ndim - 2
        if rank not in (1, 2):
            raise TorchConversionError(f"from_torch: {what} with mode='area' needs a 3-D or "
                                       f"4-D input, got rank {t.ndim}")
        if (size is None) == (scale_factor is None):
            raise TorchConversionError(f"from_torch: {what} with mode='area' needs a size or "
                                       "a scale_factor (one of them)")
        if size is not None:
            return self.adaptive(x, size, "avg", rank, what)
        factors = (scale_factor if isinstance(scale_factor, (tuple, list))
                   else (scale_factor,) * rank)
        in_sizes = _to_cl(t).sym.shape[1:1 + rank]
        if len(factors) != rank or any(d is None for d in in_sizes):
            raise TorchConversionError(
                f"from_torch: {what} with mode='area', scale_factor={scale_factor!r} of an "
                f"input of spatial size {tuple(in_sizes)} (a factor per axis of a size known "
                "at conversion)")
        sizes = tuple(int(math.floor(d * float(f))) for d, f in zip(in_sizes, factors))
        return self.adaptive(x, sizes, "avg", rank, what)

    def adaptive(self, x: Any, output_size: Any, kind: str, rank: int, what: str) -> _T:
        """``nn.AdaptiveAvgPool1d/2d``, ``nn.AdaptiveMaxPool1d/2d`` and their functions on a
        batched input: the adaptive pooling layer of that rank on the channels-last tensor
        (a 2-D average to 1 x 1: GlobalAveragePooling2D). A None in ``output_size`` keeps
        that axis's size, as in PyTorch."""
        t = self._tensor(x, what)
        if t.ndim != rank + 2:
            raise TorchConversionError(
                f"from_torch: {what} needs a batched rank-{rank + 2} input, got rank {t.ndim}"
            )
        t = _to_cl(t)
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * rank
        in_sizes = t.sym.shape[1:1 + rank]
        if (len(sizes) != rank or any(o is None and (d is None or rank == 1)
                                      for o, d in zip(sizes, in_sizes))
                or any(o is not None and int(o) < 1 for o in sizes)):
            raise TorchConversionError(
                f"from_torch: {what} with output_size={output_size!r} for an input of spatial "
                f"size {tuple(in_sizes)}"
            )
        sizes = tuple(int(d if o is None else o) for o, d in zip(sizes, in_sizes))
        if kind == "avg" and sizes == (1, 1):
            return self.global_avg(x)
        cls = {("avg", 1): AdaptiveAveragePooling1D, ("avg", 2): AdaptiveAveragePooling2D,
               ("max", 1): AdaptiveMaxPooling1D, ("max", 2): AdaptiveMaxPooling2D}[kind, rank]
        return _T(cls(sizes)(t.sym), True)

    def global_avg(self, x: Any) -> _T:
        t = _to_cl(self._tensor(x, "adaptive_avg_pool2d"))
        return _T(GlobalAveragePooling2D(keepdims=True)(t.sym), True)

    def flatten(self, x: Any, start_dim: int = 0, end_dim: int = -1) -> _T:
        t = _to_torch(self._tensor(x, "flatten"))
        r = t.ndim
        if r == 0:
            return _T(torch_reshape(t.sym, spec=(1,)), False)
        start = start_dim + r if start_dim < 0 else start_dim
        end = end_dim + r if end_dim < 0 else end_dim
        shape = t.sym.shape
        spec: list[Any] = []
        for i in range(start):
            spec.append((0, i) if shape[i] is None else shape[i])
        merged = shape[start:end + 1]
        spec.append(-1 if any(m is None for m in merged) else int(np.prod(merged, dtype=int)))
        for i in range(end + 1, r):
            spec.append((0, i) if shape[i] is None else shape[i])
        return _T(_reshape(t.sym, tuple(spec)), False)

    def reshape(self, x: Any, shape: Any) -> _T:
        t = _to_torch(self._tensor(x, "view/reshape"))
        refs, spec = self._sizes(shape, "view/reshape", keep=True, own=t)
        return _T(_reshape(t.sym, tuple(spec), tuple(refs)), False)

    def size(self, x: Any, dim: Any = None) -> Any:
        t = self._tensor(x, "size")
        shape = t.torch_shape
        if dim is None:
            return tuple(_Dim(t, i) if d is None else d for i, d in enumerate(shape))
        dim = int(dim) + len(shape) if int(dim) < 0 else int(dim)
        return _Dim(t, dim) if shape[dim] is None else shape[dim]

    def binary(self, a: Any, b: Any, op: str) -> Any:
        if op in ("add", "sub", "mul") and isinstance(a, _Dim) and not isinstance(b, _T):
            return a.then(op, b)  # x.size(0) * heads: computed at run time
        if op in ("add", "mul") and isinstance(b, _Dim) and not isinstance(a, _T):
            return b.then(op, a)
        if isinstance(a, (_Dim, _Unknown)) or isinstance(b, (_Dim, _Unknown)):
            hint = (" (a batch size divided: write it with //, as in B = windows.shape[0] // "
                    "(H * W // ws // ws), or let view / reshape infer it with -1)"
                    if op == "div" else "")
            raise TorchConversionError(
                "from_torch: arithmetic on a size known only at run time (the batch size) is "
                f"not supported ({op}){hint}"
            )
        if not isinstance(a, _T) and not isinstance(b, _T):
            fn = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
                  "div": operator.truediv, "pow": operator.pow, "maximum": max,
                  "minimum": min, "bitwise_and": operator.and_, "bitwise_or": operator.or_,
                  "bitwise_xor": operator.xor, "logical_and": lambda x, y: bool(x and y),
                  "logical_or": lambda x, y: bool(x or y),
                  "logical_xor": lambda x, y: bool(x) != bool(y),
                  "floor_div": operator.floordiv,
                  "trunc_div": lambda x, y: math.trunc(x / y), "fmod": math.fmod,
                  "remainder": operator.mod, "atan2": math.atan2}[op]
            return fn(a, b)  # numbers (sizes); constants are PyTorch's (_build)
        ta = a if isinstance(a, _T) else None
        tb = b if isinstance(b, _T) else None
        if ta is not None and tb is not None:
            if ta.cl != tb.cl or ta.ndim != tb.ndim:
                ta, tb = _to_torch(ta), _to_torch(tb)
            merge = {"add": Add, "sub": Subtract, "mul": Multiply}.get(op)
            if merge is not None and _same_batch(ta, tb):
                return _T(merge()([ta.sym, tb.sym]), ta.cl)
            return _T(torch_binary(ta.sym, tb.sym, op), ta.cl)
        t = ta if ta is not None else tb
        other = b if ta is not None else a
        if isinstance(other, np.ndarray) and other.ndim:
            if t.cl:
                if other.ndim > t.ndim:
                    t = _to_torch(t)
                else:
                    full = other.reshape((1,) * (t.ndim - other.ndim) + other.shape)
                    r = t.ndim
                    other = np.ascontiguousarray(full.transpose(0, *range(2, r), 1))
        if isinstance(other, np.ndarray) and other.dtype.kind == "f":
            other = other.astype(F32)
        if ta is not None:
            return _T(torch_binary(t.sym, other, op), t.cl)
        return _T(torch_binary(other, t.sym, op), t.cl)

    def unflatten(self, x: Any, dim: int, sizes: Any, what: str = "unflatten") -> _T:
        """``x.unflatten(dim, sizes)``, ``torch.unflatten`` and ``nn.Unflatten``: axis ``dim``
        (in PyTorch's order) split into ``sizes`` (one of them may be -1)."""
        t = _to_torch(self._tensor(x, what))
        axis = int(dim) + t.ndim if int(dim) < 0 else int(dim)
        return _T(torch_unflatten(t.sym, axis, tuple(int(v) for v in sizes)), False)

    def _no_constants(self, xs: Any, what: str) -> None:
        """Refuse a constant (made in the forward, or a parameter) among tensors to
        concatenate: the converted graph concatenates its own tensors only."""
        if any(isinstance(x, np.ndarray) for x in xs):
            self._refuse(f"{what} of a constant tensor (made in the forward, or a parameter) "
                         "with the inputs' tensors; make it from them first "
                         "(torch.zeros_like(x[:1]) instead of torch.zeros(1, n))")

    def cat(self, xs: Any, dim: int = 0) -> _T:
        self._no_constants(xs, "cat")
        ts = [self._tensor(x, "cat") for x in xs]
        if not (all(t.cl for t in ts) and len({t.ndim for t in ts}) == 1):
            ts = [_to_torch(t) for t in ts]
        axis = _axis_in_layout(ts[0], int(dim))
        if axis != 0 and all(_is_float(t.sym) for t in ts):
            return _T(Concatenate(axis=axis)([t.sym for t in ts]), ts[0].cl)
        return _T(torch_cat([t.sym for t in ts], axis), ts[0].cl)

    def getitem(self, obj: Any, key: Any) -> Any:
        if isinstance(obj, (tuple, list)):
            return obj[key]
        key = _int_bounds(key)
        if isinstance(obj, np.ndarray):  # a parameter or buffer, indexed as PyTorch indexes
            keys = key if isinstance(key, tuple) else (key,)
            if (len(keys) == 1 and isinstance(keys[0], _T) and obj.ndim == 2
                    and obj.dtype.kind == "f" and np.dtype(keys[0].sym.dtype).kind in "iu"):
                # a table's rows picked by an integer tensor (Whisper's decoder positions,
                # self.weight[position_ids]): the lookup of an Embedding (whose index must be
                # in [0, rows): PyTorch's wraps a negative one)
                return self.f_embedding(keys[0], obj)
            if any(isinstance(k, _T) for k in keys):
                raise TorchConversionError("from_torch: a parameter or buffer indexed by a "
                                           "tensor other than a 2-D table's rows by integers "
                                           "(an Embedding does that lookup)")
            if _by_run_time_size(keys):
                raise TorchConversionError(
                    "from_torch: a parameter or buffer indexed by the batch size (known only "
                    "at run time)"
                )
            return self.torch.from_numpy(np.array(obj))[key].numpy()
        if isinstance(obj, _T):
            keys = key if isinstance(key, tuple) else (key,)
            if obj.cl and all(isinstance(k, slice) or k is Ellipsis for k in keys) and (
                    sum(k is Ellipsis for k in keys) <= 1
                    and len(keys) - (Ellipsis in keys) <= obj.ndim):
                # slices only: slice the channels-last array, axis by axis, in its layout
                n = obj.ndim - (len(keys) - 1 if Ellipsis in keys else len(keys))
                full: list[Any] = []
                for k in keys:
                    full.extend([slice(None)] * n if k is Ellipsis else [k])
                full += [slice(None)] * (obj.ndim - len(full))
                if all(all(v is None or isinstance(v, int) for v in (k.start, k.stop, k.step))
                       for k in full):
                    cl_key = (full[0], *full[2:], full[1])
                    return _T(torch_index(obj.sym, cl_key), True)
            t = _to_torch(obj)
            if any(isinstance(k, _T) or (isinstance(k, np.ndarray) and k.ndim != 1)
                   for k in keys):
                return self._gather_index(t, keys)
            # a constant index tensor of ints (x[:, torch.tensor([0, 2])]) as the list it holds
            keys = tuple(k.tolist() if isinstance(k, np.ndarray) and k.ndim == 1
                         and k.dtype.kind in "iu" else k for k in keys)
            lists = [k for k in keys if isinstance(k, (list, tuple))]
            if (len(lists) > 1 and not any(type(k) is int for k in keys) and all(
                    v and all(type(e) is int for e in v) for v in lists)):
                # several constant index arrays and no int (DLRM's Z[:, li, lj]): NumPy's
                # advanced indexing, which is PyTorch's without an int beside the arrays
                # (adjacent arrays broadcast in place, separated ones move first in both)
                try:
                    np.broadcast_shapes(*(np.shape(v) for v in lists))
                except ValueError:
                    raise TorchConversionError(
                        f"from_torch: tensor indexing with index arrays of lengths "
                        f"{[len(v) for v in lists]}, which do not broadcast (PyTorch refuses "
                        "them too)") from None
                for axis, k in enumerate(keys):
                    size = t.sym.shape[axis] if axis < t.ndim else None
                    if isinstance(k, (list, tuple)) and size is not None and not all(
                            -size <= e < size for e in k):
                        raise TorchConversionError(
                            f"from_torch: tensor indexing with {list(k)} on an axis of size "
                            f"{size} (out of range: PyTorch refuses it too)")
                return self._gather_index(t, tuple(
                    np.asarray(k, np.int64) if isinstance(k, (list, tuple)) else k
                    for k in keys))
            plain: list[Any] = []
            for k in keys:
                if isinstance(k, slice):
                    ok = all(v is None or isinstance(v, int) for v in (k.start, k.stop, k.step))
                elif isinstance(k, (list, tuple)):
                    # one list of ints and no int index (nanoGPT's x[:, [-1], :]): there
                    # NumPy's indexing is PyTorch's (with an int too, NumPy moves the list's
                    # axis first); kept as an array (fx's immutable list would need torch)
                    ok = (all(isinstance(v, int) and not isinstance(v, bool) for v in k)
                          and sum(isinstance(o, (list, tuple)) for o in keys) == 1
                          and not any(isinstance(o, int) for o in keys))
                    k = np.asarray(k, np.intp) if ok else k
                else:
                    ok = k is None or k is Ellipsis or isinstance(k, int)
                if not ok:
                    what = ("a tensor (a boolean mask or computed indices: the result's "
                            "shape would depend on the values)" if isinstance(k, _T) else repr(k))
                    raise TorchConversionError(
                        f"from_torch: tensor indexing with {what} is not supported (ints, "
                        "slices with int bounds, None, ... and one list of ints without an "
                        "int index are)"
                    )
                plain.append(k)
            key = tuple(plain) if isinstance(key, tuple) else plain[0]
            return _T(torch_index(t.sym, key), False)
        raise TorchConversionError(f"from_torch: cannot index a {type(obj).__name__}")

    def _gather_index(self, t: _T, keys: tuple) -> _T:
        """``t[keys]`` with integer index tensors, traced or constant (torch_gather_index);
        a boolean one is refused (the result's shape would depend on the values)."""
        key, indices = self._index_key(keys, masks=False)
        return _T(torch_gather_index(t.sym, *indices, key=key), False)

    def _index_key(self, keys: tuple, masks: bool) -> tuple[tuple, list]:
        """(key, index tensors) of an index with tensors in it, as torch_gather_index and
        torch_index_put take them: each traced tensor an _INDEX slot. Integer tensors, and
        boolean ones where ``masks`` (a write, x[mask] = v, keeps the shape; a read's shape
        would depend on the values)."""
        key: list[Any] = []
        indices = []
        for k in keys:
            if isinstance(k, _T):
                if k.sym.dtype.kind not in ("iub" if masks else "iu"):
                    raise TorchConversionError(
                        f"from_torch: tensor indexing with a {k.sym.dtype} tensor (a boolean "
                        "mask: the result's shape would depend on the values)")
                indices.append(_to_torch(k).sym)
                key.append(_INDEX)
            elif isinstance(k, np.ndarray) and k.dtype.kind not in ("iub" if masks else "iu"):
                raise TorchConversionError(
                    f"from_torch: tensor indexing with a constant {k.dtype} array")
            elif isinstance(k, (_Dim, _Unknown)) or (isinstance(k, slice) and not all(
                    v is None or isinstance(v, (int, np.integer))
                    for v in (k.start, k.stop, k.step))):
                raise TorchConversionError(f"from_torch: tensor indexing with {k!r}")
            else:
                key.append(k)
        return tuple(key), indices

    def set_item(self, x: Any, key: Any, value: Any) -> Any:
        """``x[key] = value``: the written tensor, a new value that the later readers of x
        take (_build, as for the other in-place writes, with their aliasing checks). On a
        constant with a constant key and value, computed here (BEiT's relative position
        index built in forward); else an op (torch_index_put: Wav2Vec2's
        ``mask[(torch.arange(b), lengths - 1)] = 1``, ``scores[mask] = -inf``)."""
        keys = _int_bounds(key if isinstance(key, tuple) else (key,))
        if isinstance(value, (_Dim, _Unknown)):
            self._refuse("x[key] = value with the batch size as the value")
        arrays = any(isinstance(k, (_T, list, tuple)) or (isinstance(k, np.ndarray) and k.ndim)
                     for k in keys)
        if (arrays and any(type(k) is int for k in keys)
                and (isinstance(value, _T) or np.ndim(value) > 0)):
            self._refuse("x[key] = an array with an int beside index arrays (NumPy, which "
                         "runs the converted model, would place the indexed axes otherwise "
                         "than PyTorch)")
        traced = [k for k in keys if isinstance(k, _T)] + (
            [value] if isinstance(value, _T) else [])
        if isinstance(x, np.ndarray) and not traced:
            if _by_run_time_size(keys):
                self._refuse("x[key] = value on a constant, by the batch size")
            out = np.array(x, copy=True)
            out[keys] = value
            return out
        base = x if isinstance(x, np.ndarray) else _to_torch(self._tensor(x, "x[key] = value")).sym
        index, indices = self._index_key(keys, masks=True)
        val = _to_torch(value).sym if isinstance(value, _T) else value
        return _T(torch_index_put(base, val, *indices, key=index), False)

    def reduce(self, op: str, *args: Any, **kwargs: Any) -> _T:
        """``mean``, ``sum``, ``amax``, ``amin`` (x, dim, keepdim; also PyTorch's aliases
        ``input``, ``axis``, ``keepdims``) over ``dim``: an int, a list or tuple of ints, or
        None (every axis). On a channels-last tensor the axes are mapped to the stored layout
        (no copy), as long as the result is in PyTorch's order or keeps the layout: global
        pooling x.mean((2, 3)) of an image is a reduction of the NHWC array."""
        for alias, name in (("input", "x"), ("axis", "dim"), ("keepdims", "keepdim")):
            if alias in kwargs:
                kwargs[name] = kwargs.pop(alias)
        try:
            given = dict(zip(("x", "dim", "keepdim"), args), **kwargs)
        except TypeError:  # one argument given twice
            raise TorchConversionError(f"from_torch: {op} with arguments {args}, {kwargs}"
                                       ) from None
        x, dim, keepdim = given.pop("x", None), given.pop("dim", None), given.pop("keepdim", False)
        dtype = given.pop("dtype", None)
        if given or len(args) > 3:
            raise TorchConversionError(f"from_torch: {op} with arguments {sorted(given)}")
        if dtype is not None and dtype is not self.torch.float32:
            raise TorchConversionError(f"from_torch: {op} with dtype={dtype!r}")
        t = self._tensor(x, op)
        if op == "mean" and dtype is None and t.sym.dtype.kind != "f":
            # PyTorch: "mean(): could not infer output dtype" unless a dtype is given
            raise TorchConversionError(f"from_torch: mean of a {t.sym.dtype} tensor")
        to_float = dtype is not None
        r = t.ndim
        dims = range(r) if dim is None or (isinstance(dim, (list, tuple)) and not dim) else (
            dim if isinstance(dim, (list, tuple)) else (dim,))
        if not all(isinstance(d, (int, np.integer)) for d in dims):
            raise TorchConversionError(f"from_torch: {op} over dim={dim!r} (ints only)")
        named = [int(d) % r if -r <= int(d) < r else int(d) for d in dims]
        torch_axes = sorted(set(named))
        if any(not 0 <= d < r for d in torch_axes):
            raise TorchConversionError(f"from_torch: {op} over dim={dim!r} for rank {r}")
        if len(torch_axes) != len(named):
            raise TorchConversionError(f"from_torch: {op} over dim={dim!r} names an axis twice")
        t, axes, cl = _reduction_axes(t, torch_axes, bool(keepdim))
        return _T(torch_reduce(t.sym, op, axes, bool(keepdim), to_float), cl)

    def extreme(self, largest: bool, x: Any, *args: Any, **kwargs: Any) -> Any:
        """``torch.max / min`` and the methods: of everything (x), along a dim ((values,
        indices), also by keyword; ``.values`` / ``.indices`` or [0] / [1]), or the
        elementwise maximum / minimum with another tensor."""
        name = "max" if largest else "min"
        given = dict(zip(("dim", "keepdim"), args), **kwargs)
        other = given.pop("other", None)
        if isinstance(given.get("dim"), (_T, np.ndarray)):
            other = given.pop("dim")
        if other is not None:
            if given:
                self._refuse(f"{name} with arguments {sorted(given)}")
            return self.binary(x, other, "maximum" if largest else "minimum")
        dim, keepdim = given.pop("dim", None), bool(given.pop("keepdim", False))
        if given:
            self._refuse(f"{name} with arguments {sorted(given)}")
        if dim is None:
            return self.reduce("amax" if largest else "amin", x)
        t = self._tensor(x, name)
        t, axes, cl = _reduction_axes(t, [_dim(dim, t.ndim, name)], keepdim)
        res = torch_max_dim(t.sym, axes[0], keepdim, largest)
        return _ValuesIndices((_T(res[0], cl), _T(res[1], cl)))

    def arg_extreme(self, largest: bool, x: Any, dim: Any = None, keepdim: Any = False) -> _T:
        """``torch.argmax / argmin`` and the methods (dim None: the index into the tensor
        flattened in PyTorch's order)."""
        name = "argmax" if largest else "argmin"
        t = self._tensor(x, name)
        if dim is None:
            return _T(torch_arg_extreme(_to_torch(t).sym, None, bool(keepdim), largest), False)
        t, axes, cl = _reduction_axes(t, [_dim(dim, t.ndim, name)], bool(keepdim))
        return _T(torch_arg_extreme(t.sym, axes[0], bool(keepdim), largest), cl)

    def stat(self, op: str, x: Any, dim: Any = None, keepdim: Any = False,
             correction: Any = 1, p: float = 2.0) -> _T:
        """torch_stat's reductions over PyTorch's ``dim`` (an int, a sequence, or None: all),
        on the layout as stored where the result allows (_reduction_axes)."""
        t = self._tensor(x, op)
        empty = isinstance(dim, (list, tuple)) and not dim
        if empty and op in ("any", "all", "logsumexp"):
            # over no dim: PyTorch reduces nothing there (any / all: x != 0), every dim for
            # the others
            if op == "logsumexp":
                self._refuse("logsumexp over dim=()")
            return self.compare(t, 0, "ne")
        dims = range(t.ndim) if dim is None or empty else (
            dim if isinstance(dim, (list, tuple)) else (dim,))
        axes = [_dim(d, t.ndim, op) for d in dims]
        if len(set(axes)) != len(axes):
            self._refuse(f"{op} over dim={dim!r}, which names an axis twice")
        t, stored, cl = _reduction_axes(t, sorted(axes), bool(keepdim))
        return _T(torch_stat(t.sym, op, stored, bool(keepdim), correction, p), cl)

    def variance(self, op: str, x: Any, dim: Any = None, unbiased: Any = None,
                 keepdim: Any = False, *, correction: Any = None, **kwargs: Any) -> Any:
        """``var`` / ``std`` (dim, unbiased, keepdim, or correction=); ``var_mean`` /
        ``std_mean`` give (that, the mean)."""
        if isinstance(dim, bool):  # x.var(False): the old (unbiased) form without a dim
            dim, unbiased = None, dim
        if unbiased is not None and correction is not None:
            self._refuse(f"{op} with both unbiased and correction")
        c = correction if correction is not None else (0 if unbiased is False else 1)
        if kwargs or not isinstance(c, (int, float)):
            self._refuse(f"{op} with arguments {sorted(kwargs) or c!r}")
        stat = op.split("_")[0]
        out = self.stat(stat, x, dim, keepdim, float(c))
        if op.endswith("_mean"):
            return (out, self.reduce("mean", x, dim if dim is not None else [], keepdim))
        return out

    def pairwise_distance(self, x1: Any, x2: Any, p: Any = 2.0, eps: Any = 1e-6,
                          keepdim: Any = False) -> _T:
        """``F.pairwise_distance``: PyTorch's ``norm(x1 - x2 + eps, p, dim=-1, keepdim)``."""
        if not isinstance(eps, (int, float)) or isinstance(eps, bool):
            self._refuse(f"pairwise_distance with eps={eps!r}")
        diff = self.binary(self.binary(x1, x2, "sub"), float(eps), "add")
        return self.norm(diff, p, -1, keepdim)

    def norm(self, x: Any, p: Any = "fro", dim: Any = None, keepdim: Any = False,
             dtype: Any = None, matrix: bool = False) -> _T:
        """``Tensor.norm`` / ``torch.norm`` / ``vector_norm`` as vector norms over ``dim``:
        p 2 (or "fro", None), 1, inf, -inf, 0 or any other finite p (torch_stat).
        ``matrix`` (``torch.linalg.norm``): over two dims, or of a 2-D tensor without dim,
        PyTorch computes a matrix norm, of which only the Frobenius one (ord None or "fro":
        the 2-norm of the entries) converts."""
        op = {"fro": "norm2", None: "norm2", 2: "norm2", 1: "norm1", 0: "norm0",
              math.inf: "norminf", -math.inf: "normninf"}.get(
            p if not isinstance(p, float) or math.isinf(p)
            else (int(p) if p in (0.0, 1.0, 2.0) else p))
        if op is None and _is_number(p) and math.isfinite(p):
            op = "normp"  # any other finite p: (Σ|x|^p)^(1/p)
        if op is None or dtype is not None:
            self._refuse(f"norm with p={p!r}" + ("" if dtype is None else f", dtype={dtype}"))
        if matrix and p not in (None, "fro"):
            two = (isinstance(dim, (list, tuple)) and len(dim) == 2) or (
                dim is None and self._tensor(x, "norm").ndim == 2)
            if two:
                self._refuse(f"torch.linalg.norm with ord={p!r} over two dims (a matrix norm; "
                             "ord None or 'fro' converts)")
        return self.stat(op, x, dim, keepdim, p=float(p) if op == "normp" else 2.0)

    def cosine_similarity(self, x1: Any, x2: Any, dim: Any = 1, eps: Any = 1e-8) -> _T:
        """``F.cosine_similarity`` (``nn.CosineSimilarity`` traces into it); either operand
        may be a parameter or a buffer (a cosine classifier's class vectors)."""
        a, b = (self._operand(v, "cosine_similarity") for v in (x1, x2))
        rank = max(np.ndim(a), np.ndim(b))
        return _T(torch_cosine_similarity(a, b, _dim(dim, rank, "cosine_similarity"),
                                          float(eps)), False)

    def _operand(self, v: Any, what: str) -> Any:
        """A traced tensor's symbolic value in PyTorch's layout, or a constant (a parameter,
        a buffer: a NumPy array) as float32."""
        if isinstance(v, np.ndarray):
            return v.astype(F32) if v.dtype.kind == "f" else v
        return _to_torch(self._tensor(v, what)).sym

    def one_hot(self, x: Any, num_classes: Any = -1) -> _T:
        if not isinstance(num_classes, int) or num_classes < 1:
            self._refuse(f"one_hot with num_classes={num_classes!r} (the count, which "
                         "PyTorch otherwise reads from the values)")
        t = _to_torch(self._tensor(x, "one_hot"))
        return _T(torch_one_hot(t.sym, num_classes), False)

    def tri(self, upper: bool, x: Any, diagonal: Any = 0) -> _T:
        t = _to_torch(self._tensor(x, "triu" if upper else "tril"))
        return _T(torch_tri(t.sym, int(diagonal), upper), False)

    def take(self, along: bool, x: Any, dim: Any, index: Any, **kwargs: Any) -> _T:
        """``gather`` (along) / ``index_select``, the index a tensor or a constant."""
        what = "gather" if along else "index_select"
        if kwargs.pop("sparse_grad", False) or kwargs:
            self._refuse(f"{what} with arguments {sorted(kwargs)}")
        if not along and isinstance(x, np.ndarray) and isinstance(index, _T):
            # rows of a parameter or buffer by a traced index (M2M100's sinusoidal positions,
            # table.index_select(0, ids)): the lookup table[ids], an Embedding
            if isinstance(dim, (int, np.integer)) and dim % max(1, x.ndim) == 0:
                return self.getitem(x, index)
            self._refuse(f"index_select of a parameter or buffer along dim {dim} by a traced "
                         "index (along dim 0 it converts)")
        t = _to_torch(self._tensor(x, what))
        idx = _to_torch(index).sym if isinstance(index, _T) else np.asarray(index)
        return _T(torch_take(t.sym, idx, _dim(dim, t.ndim, what), along), False)

    def _index_operand(self, index: Any, what: str) -> Any:
        """An index argument: a traced tensor (in PyTorch's layout) or a constant array."""
        if isinstance(index, _T):
            idx = _to_torch(index).sym
        elif isinstance(index, np.ndarray) or isinstance(index, (list, tuple)):
            idx = np.asarray(index)
        else:
            self._refuse(f"{what} with an index of type {type(index).__name__}")
        if idx.dtype.kind not in "iu":
            raise TorchConversionError(f"from_torch: {what} with a {idx.dtype} index (PyTorch "
                                       "takes int64 indices)")
        return idx

    def _meshgrid_of_inputs(self, *args: Any, **kwargs: Any) -> Any:
        """torch.meshgrid of constants is computed at conversion (_fold); of tensors computed
        from the inputs it is refused."""
        self._refuse("torch.meshgrid of tensors computed from the inputs (of constants only)")

    def _base_operand(self, x: Any, what: str) -> Any:
        """The tensor a scatter or index op writes into, in PyTorch's layout: traced, or a
        constant (``torch.zeros(B, C).scatter_(1, ids, 1.0)``, computed at conversion)."""
        if isinstance(x, np.ndarray):
            return x
        return _to_torch(self._tensor(x, what)).sym

    def _source_operand(self, src: Any, dtype: Any, what: str, name: str) -> Any:
        """A source argument of x's ``dtype``: a traced tensor, a constant array or a number
        (PyTorch refuses a tensor of another dtype)."""
        if isinstance(src, _T):
            src = _to_torch(src).sym
        elif isinstance(src, (bool, int, float)):
            return src
        elif not isinstance(src, np.ndarray):
            self._refuse(f"{what} with a {name} of type {type(src).__name__}")
        if src.dtype != dtype:
            raise TorchConversionError(f"from_torch: {what} of a {dtype} tensor with a "
                                       f"{src.dtype} {name} (PyTorch refuses it too)")
        return src

    def scatter(self, kind: str, input: Any, dim: Any, index: Any, *args: Any,  # noqa: A002
                **kwargs: Any) -> _T:
        """``scatter`` (src or value, optional ``reduce="add" | "multiply"``),
        ``scatter_add`` and ``scatter_reduce`` (reduce, include_self): torch_scatter."""
        base = self._base_operand(input, kind)
        names = {"scatter": ("src",), "scatter_add": ("src",),
                 "scatter_reduce": ("src", "reduce", "include_self")}[kind]
        given = dict(zip(names, args))
        if len(args) > len(names):
            self._refuse(f"{kind} with {len(args) + 3} positional arguments")
        if kind == "scatter" and "value" in kwargs:
            given["src"] = kwargs.pop("value")
        for key in list(kwargs):
            if key in names or (kind == "scatter" and key == "reduce"):
                given[key] = kwargs.pop(key)
        if kwargs or "src" not in given:
            self._refuse(f"{kind} with arguments {sorted(kwargs) or 'without a source'}")
        reduce, include_self = None, True
        if kind == "scatter_add":
            reduce = "sum"
        elif kind == "scatter" and given.get("reduce") is not None:
            reduce = {"add": "sum", "multiply": "prod"}.get(given["reduce"])
            if reduce is None:
                self._refuse(f"scatter with reduce={given['reduce']!r} (add or multiply)")
        elif kind == "scatter_reduce":
            reduce = given.get("reduce")
            if reduce not in ("sum", "prod", "mean", "amax", "amin"):
                self._refuse(f"scatter_reduce with reduce={reduce!r}")
            include_self = given.get("include_self", True)
            if not isinstance(include_self, bool):
                self._refuse(f"scatter_reduce with include_self={include_self!r}")
        dtype = base.dtype
        if reduce == "mean" and dtype.kind != "f":
            self._refuse(f"scatter_reduce mean of a {dtype} tensor")
        if dtype == np.bool_ and reduce is not None:
            self._refuse(f"{kind} of a bool tensor with a reduction")
        axis = _dim(dim, base.ndim, kind)
        idx = self._index_operand(index, kind)
        if idx.ndim != base.ndim:
            raise TorchConversionError(f"from_torch: {kind} with an index of rank {idx.ndim} "
                                       f"for a tensor of rank {base.ndim} (PyTorch refuses it)")
        src = self._source_operand(given["src"], dtype, kind, "source")
        if not isinstance(src, (bool, int, float)) and src.ndim != base.ndim:
            raise TorchConversionError(f"from_torch: {kind} with a source of rank {src.ndim} "
                                       f"for a tensor of rank {base.ndim} (PyTorch refuses it)")
        return _T(torch_scatter(base, idx, src, axis, reduce, include_self), False)

    def index_add(self, mode: str, input: Any, dim: Any, index: Any, *args: Any,  # noqa: A002
                  **kwargs: Any) -> _T:
        """``index_add`` (source, alpha), ``index_copy`` (source) and ``index_fill`` (a
        number): torch_index_add."""
        what = f"index_{mode}"
        base = self._base_operand(input, what)
        key = "value" if mode == "fill" else "source"
        names = (key, "alpha") if mode == "add" else (key,)
        if len(args) > len(names):
            self._refuse(f"{what} with {len(args) + 3} positional arguments")
        given = dict(zip(names, args))
        for k in list(kwargs):
            if k in names:
                given[k] = kwargs.pop(k)
        if kwargs or key not in given:
            self._refuse(f"{what} with arguments {sorted(kwargs) or 'without a ' + key}")
        dtype = base.dtype
        alpha = given.get("alpha", 1)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or (
                dtype.kind != "f" and not isinstance(alpha, int)):
            self._refuse(f"{what} with alpha={alpha!r} (a number, an integer for an integer "
                         "tensor)")
        idx = self._index_operand(index, what)
        if idx.ndim > 1:
            raise TorchConversionError(f"from_torch: {what} with an index of rank {idx.ndim} "
                                       "(PyTorch takes a vector)")
        src = given[key]
        if mode == "fill":
            if isinstance(src, _T) or not isinstance(src, (bool, int, float)):
                self._refuse("index_fill with a tensor value (a number only)")
            if dtype.kind in "iub" and (not math.isfinite(src) or src != int(src) or not (
                    np.iinfo(np.int64).min <= int(src) <= np.iinfo(np.int64).max)):
                raise TorchConversionError(  # (NaN would become int64's minimum)
                    f"from_torch: index_fill of a {dtype} tensor with {src!r} (PyTorch refuses "
                    "a value the dtype cannot hold)")
        else:
            src = self._source_operand(src, dtype, what, "source")
        axis = _dim(dim, base.ndim, what)
        return _T(torch_index_add(base, idx, src, axis, alpha, mode), False)

    def f_embedding(self, ids: Any, weight: Any, padding_idx: Any = None, max_norm: Any = None,
                    norm_type: Any = 2.0, scale_grad_by_freq: Any = False,
                    sparse: Any = False) -> _T:
        """``F.embedding(ids, weight)`` with a parameter weight: an Embedding layer."""
        if not isinstance(weight, np.ndarray) or weight.ndim != 2 or max_norm is not None:
            self._refuse("F.embedding with a weight that is not a 2-D parameter, or max_norm")
        layer = Embedding(weight.shape[0], weight.shape[1])
        layer.set_weights([weight.astype(F32)])
        return _T(layer(_to_torch(self._tensor(ids, "embedding")).sym), False)

    def diff(self, x: Any, n: Any = 1, dim: Any = -1, prepend: Any = None,
             append: Any = None) -> _T:
        if not isinstance(n, int) or n < 1:
            self._refuse("diff with n < 1")
        if any(isinstance(v, (int, float)) for v in (prepend, append)):
            self._refuse("diff with a number to prepend or append (tensors only)")
        if prepend is not None or append is not None:  # PyTorch's: cat along dim, then diff
            x = self.cat([v for v in (prepend, x, append) if v is not None], dim)
        t = _to_torch(self._tensor(x, "diff"))
        return _T(torch_diff(t.sym, n, _dim(dim, t.ndim, "diff")), False)

    def like(self, kind: str, x: Any, other: Any) -> Any:
        """``view_as`` / ``reshape_as`` / ``expand_as``: x to ``other``'s sizes."""
        size = self.size(other)
        return self.expand(x, *size) if kind == "expand" else self.reshape(x, size)

    def nan_to_num(self, x: Any, nan: Any = 0.0, posinf: Any = None, neginf: Any = None) -> _T:
        t = self._tensor(x, "nan_to_num")
        return _T(torch_nan_to_num(t.sym, nan, posinf, neginf), t.cl)

    def numel(self, x: Any) -> int:
        size = self.size(x)
        if any(isinstance(d, _Dim) for d in size):
            raise TorchConversionError("from_torch: numel of a tensor with the batch axis "
                                       "(arithmetic on a size known only at run time)")
        return math.prod(size)

    def permute(self, x: Any, *dims: Any) -> _T:
        t = self._tensor(x, "permute")
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return _permuted(t, tuple(int(d) % t.ndim for d in dims))

    def _swap(self, x: Any, *args: Any, **kwargs: Any) -> _T:
        """transpose and its aliases swapaxes / swapdims, whose keywords differ (dim0 and
        dim1, axis0 and axis1)."""
        names = [("dim0", "dim1"), ("axis0", "axis1")]
        for a, b in names:
            if a in kwargs or b in kwargs:
                rest = list(args) + [kwargs.pop(a, None), kwargs.pop(b, None)]
                args = tuple(v for v in rest if v is not None)
        if kwargs or len(args) != 2:
            raise TorchConversionError(f"from_torch: transpose needs two dims, got {args} "
                                       f"{kwargs}")
        return self.transpose(x, *args)

    def transpose(self, x: Any, dim0: int, dim1: int) -> _T:
        t = self._tensor(x, "transpose")
        perm = list(range(t.ndim))
        a, b = int(dim0) % t.ndim, int(dim1) % t.ndim
        perm[a], perm[b] = perm[b], perm[a]
        return _permuted(t, tuple(perm))

    # ---- recurrent --------------------------------------------------------------------
    def recurrent(self, qual: str, mod: Any, x: Any, hx: Any = None) -> Any:
        is_lstm = isinstance(mod, self.nn.LSTM)
        kind = "lstm" if is_lstm else "rnn" if isinstance(mod, self.nn.RNN) else "gru"
        t = _to_torch(self._tensor(x, qual))
        if t.ndim != 3:
            raise TorchConversionError(
                f"from_torch: {qual} ({type(mod).__name__}) needs a batched 3-D input, got "
                f"rank {t.ndim}"
            )
        if not mod.batch_first:
            self._seq_first_batch(t, f"{qual} ({type(mod).__name__})")
        seq = t.sym if mod.batch_first else torch_permute(t.sym, (1, 0, 2))
        dirs = 2 if mod.bidirectional else 1
        nl, hid = mod.num_layers, mod.hidden_size
        states: list[Any] = []
        if hx is not None:
            parts = list(hx) if is_lstm else [hx]
            states = [_to_torch(self._tensor(p, f"{qual} state")).sym for p in parts]
        if is_lstm and getattr(mod, "proj_size", 0):
            out, h, c = self._projected_lstm(mod, seq, states)
            out = out if mod.batch_first else torch_permute(out, (1, 0, 2))
            return (_T(out, False), (_T(h, False), _T(c, False)))
        finals: list[list[Any]] = [[] for _ in range(2 if is_lstm else 1)]
        for layer_i in range(nl):
            key = f"{qual}#{layer_i}"
            layer = self.layers.get(key)
            if layer is None:
                base = f"{self._layer_name(qual)}_l{layer_i}"
                if kind == "rnn":  # nonlinearity "tanh" or "relu"
                    cell = SimpleRNN(hid, mod.nonlinearity, return_sequences=True,
                                     return_state=True, name=base)
                else:
                    cls = LSTM if is_lstm else GRU
                    cell = cls(hid, return_sequences=True, return_state=True, name=base)
                weights = self._rnn_weights(mod, layer_i, "", kind)
                if dirs == 2:
                    layer = Bidirectional(cell, name=base + "_bidirectional")
                    weights += self._rnn_weights(mod, layer_i, "_reverse", kind)
                else:
                    layer = cell
                layer.set_weights(weights)
                self.layers[key] = layer
            init = None
            if states:
                init = []
                for d in range(dirs):
                    for s in states:
                        init.append(torch_index(s, layer_i * dirs + d))
            res = layer(seq, initial_state=init) if init is not None else layer(seq)
            seq = res[0]
            per_dir = len(res[1:]) // dirs
            for d in range(dirs):
                for j in range(per_dir):
                    finals[j].append(res[1 + d * per_dir + j])
        out = seq if mod.batch_first else torch_permute(seq, (1, 0, 2))
        stacked = [_T(torch_stack(f, 0), False) for f in finals]
        if is_lstm:
            return (_T(out, False), (stacked[0], stacked[1]))
        return (_T(out, False), stacked[0])

    @staticmethod
    def _projected_lstm(mod: Any, seq: Any, states: list) -> tuple:
        """nn.LSTM with proj_size (batch-first ``seq``; ``states`` [h0, c0] or empty): each
        layer and direction a torch_lstm_projected of PyTorch's weights, the directions'
        outputs concatenated as the next layer's input; (outputs, h_n, c_n)."""
        dirs = 2 if mod.bidirectional else 1
        finals_h, finals_c = [], []
        for layer_i in range(mod.num_layers):
            outs = []
            for d in range(dirs):
                def get(name: str, d: int = d, layer_i: int = layer_i) -> Any:
                    p = getattr(mod, f"{name}_l{layer_i}{'_reverse' if d else ''}", None)
                    return None if p is None else _np(p).astype(F32)

                w_ih = get("weight_ih")
                bias = (get("bias_ih") + get("bias_hh") if mod.bias
                        else np.zeros(w_ih.shape[0], F32))
                k = layer_i * dirs + d
                h0, c0 = ((torch_index(states[0], k), torch_index(states[1], k)) if states
                          else (None, None))
                res = torch_lstm_projected(seq, h0, c0, w_ih, get("weight_hh"), bias,
                                           get("weight_hr"), bool(d))
                outs.append(res[0])
                finals_h.append(res[1])
                finals_c.append(res[2])
            seq = outs[0] if dirs == 1 else torch_cat(outs, 2)
        return seq, torch_stack(finals_h, 0), torch_stack(finals_c, 0)

    def cell(self, qual: str, mod: Any, x: Any, hx: Any = None) -> Any:
        """nn.LSTMCell / GRUCell / RNNCell, one step: the Keras LSTM / GRU / SimpleRNN of
        the same weights over a sequence of one step from the state ``hx`` (zeros when
        None), its final state returned ((h, c) for the LSTM). A loop over time steps that
        calls it (``for t in range(x.size(1))``) is unrolled by the trace."""
        nn = self.nn
        kind = ("lstm" if isinstance(mod, nn.LSTMCell) else
                "gru" if isinstance(mod, nn.GRUCell) else "rnn")
        t = _to_torch(self._tensor(x, qual))
        if t.ndim != 2:
            raise TorchConversionError(f"from_torch: {qual} ({type(mod).__name__}) needs a "
                                       f"batched 2-D input, got rank {t.ndim}")
        layer = self.layers.get(qual)
        if layer is None:
            name = self._layer_name(qual)
            if kind == "rnn":
                layer = SimpleRNN(mod.hidden_size, mod.nonlinearity, return_state=True,
                                  name=name)
            else:
                layer = (LSTM if kind == "lstm" else GRU)(mod.hidden_size, return_state=True,
                                                          name=name)
            layer.set_weights(self._rnn_weights(mod, None, "", kind))
            self.layers[qual] = layer
        seq = Reshape((1, t.torch_shape[1]))(t.sym)
        if hx is None:
            res = layer(seq)
        else:
            parts = list(hx) if kind == "lstm" else [hx]
            res = layer(seq, initial_state=[
                _to_torch(self._tensor(p, f"{qual} state")).sym for p in parts])
        if kind == "lstm":
            return (_T(res[1], False), _T(res[2], False))
        return _T(res[1], False)

    @staticmethod
    def _rnn_weights(mod: Any, layer_i: int | None, suffix: str, kind: str
                     ) -> list[np.ndarray]:
        """Keras's weights of layer ``layer_i`` of an nn.LSTM, GRU or RNN (``kind`` "lstm",
        "gru" or "rnn"; None: of an LSTMCell, GRUCell or RNNCell): the kernels transposed,
        the two biases summed (the GRU's kept apart for reset_after, its gates reordered)."""
        def get(name: str) -> np.ndarray | None:
            layer = "" if layer_i is None else f"_l{layer_i}"
            p = getattr(mod, f"{name}{layer}{suffix}", None)
            return _np(p)

        w_ih, w_hh = get("weight_ih"), get("weight_hh")
        b_ih, b_hh = get("bias_ih"), get("bias_hh")
        g = w_ih.shape[0]
        if b_ih is None:
            b_ih = np.zeros(g, F32)
            b_hh = np.zeros(g, F32)
        if kind != "gru":  # the gates already in Keras's order
            return [w_ih.T.copy(), w_hh.T.copy(), (b_ih + b_hh).astype(F32)]
        h = g // 3

        def order(a: np.ndarray) -> np.ndarray:  # PyTorch (r, z, n) -> Keras (z, r, h)
            return np.concatenate([a[h:2 * h], a[:h], a[2 * h:]], axis=0)

        return [order(w_ih).T.copy(), order(w_hh).T.copy(),
                np.stack([order(b_ih), order(b_hh)])]

    # ---- attention ------------------------------------------------------------------
    # HuggingFace's experts modules: the class names of activations they take (ACT2CLS),
    # beside torch.nn's (_activation_module); each checked numerically (_experts_activation).
    _HF_ACTIVATIONS = {"SiLUActivation": "silu", "GELUActivation": "gelu",
                       "GELUTanh": "gelu_tanh", "NewGELUActivation": "gelu_tanh",
                       "FastGELUActivation": "gelu_tanh"}

    def _experts_activation(self, act: Any) -> Any:
        """The fastlayers activation an experts module's ``act_fn`` computes, or None: a
        torch.nn activation module, or one of HuggingFace's classes by name, in both cases
        checked against fastlayers' on -30..30 (a parametrized variant would differ)."""
        from .._numpy import activations

        name = self._activation_module(act) if isinstance(act, self.nn.Module) else None
        name = name or self._HF_ACTIVATIONS.get(type(act).__name__)
        if name is None:
            return None
        if name == "gelu_tanh":  # not a Keras name: the function, which pickles by name
            name = activations.gelu_tanh
        x = np.linspace(-30, 30, 6001, dtype=np.float32)
        with self.torch.no_grad():
            got = act(self.torch.from_numpy(x)).numpy()
        want = activations.apply(name, x)
        return name if np.allclose(got, want, rtol=1e-5, atol=1e-6) else None

    def _experts_problems(self, mod: Any) -> list[str]:
        """What keeps a HuggingFace experts module (_is_experts) from converting."""
        from transformers.integrations import moe

        bad = []
        if getattr(mod, "has_post_expert_norm", False):
            bad.append("a norm after each expert (has_post_expert_norm) is not supported")
        if getattr(type(mod), "_apply_gate", moe._default_apply_gate) is not \
                moe._default_apply_gate:  # (GPT-OSS's clamped, interleaved gate)
            bad.append(f"its own gate ({type(mod).__name__}._apply_gate) is not supported")
        elif self._experts_activation(getattr(mod, "act_fn", None)) is None:
            act = getattr(mod, "act_fn", None)
            bad.append(f"the activation {type(act).__name__} is not supported")
        return bad

    def experts(self, qual: str, mod: Any, hidden_states: Any, top_k_index: Any,
                top_k_weights: Any) -> _T:
        """A HuggingFace experts module (Mixtral, Qwen2/3-MoE, OLMoE, ...): an ``Experts``
        layer with its weights, each expert's kernels in the (input, output) layout."""
        layer = self.layers.get(qual)
        if layer is None:
            gated, bias = bool(mod.has_gate), bool(mod.has_bias)
            first = _np_view(mod.gate_up_proj if gated else mod.up_proj)
            down = _np_view(mod.down_proj)
            if not mod.is_transposed:  # (E, out, in) as nn.Linear's weights
                first, down = first.transpose(0, 2, 1), down.transpose(0, 2, 1)
            units = down.shape[1]
            layer = Experts(first.shape[0], units, activation=self._experts_activation(
                mod.act_fn), gated=gated, use_bias=bias, name=self._layer_name(qual))
            weights = [first]
            if bias:
                weights.append(_np_view(mod.gate_up_proj_bias if gated else mod.up_proj_bias))
            weights.append(down)
            if bias:
                weights.append(_np_view(mod.down_proj_bias))
            try:
                layer.set_weights(weights)
            except ValueError as e:
                raise TorchConversionError(f"from_torch: {qual}: {e}") from e
            self.layers[qual] = layer
        x, index, weights = (_to_torch(self._tensor(v, qual)).sym
                             for v in (hidden_states, top_k_index, top_k_weights))
        return _T(layer(x, index, weights), False)

    def topk(self, x: Any, k: Any, dim: Any = -1, largest: Any = True, sorted: Any = True,  # noqa: A002
             ) -> Any:
        """``torch.topk`` and the method: (values, indices) along ``dim`` (``.values`` /
        ``.indices`` or [0] / [1]), k known at conversion."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            self._refuse("topk with a k that is not a number known at conversion")
        t = self._tensor(x, "topk")
        res = torch_topk(t.sym, int(k), _axis_in_layout(t, _dim(dim, t.ndim, "topk")),
                         bool(largest))
        return _ValuesIndices((_T(res[0], t.cl), _T(res[1], t.cl)))

    def sort(self, x: Any, dim: Any = -1, descending: Any = False, stable: Any = False) -> Any:
        """``torch.sort`` and the method: (values, indices) along ``dim`` (an axis whose size
        the examples fix), topk of all of it: of equal values the lower index first, as
        PyTorch's stable sort (its unstable one does not say); NaN above every number, so
        last ascending and first descending, as PyTorch."""
        t = self._tensor(x, "sort")
        d = _dim(dim, t.ndim, "sort")
        n = t.torch_shape[d]
        if n is None:
            self._refuse("sort along an axis whose size is known only at run time (the batch)")
        if t.sym.dtype == np.bool_:
            self._refuse("sort of a bool tensor")
        res = torch_topk(t.sym, n, _axis_in_layout(t, d), bool(descending))
        return _ValuesIndices((_T(res[0], t.cl), _T(res[1], t.cl)))

    def argsort(self, x: Any, dim: Any = -1, descending: Any = False,
                stable: Any = False) -> _T:
        """``torch.argsort``: sort's indices."""
        return self.sort(x, dim, descending, stable)[1]

    def take_along_dim(self, x: Any, indices: Any, dim: Any = None) -> _T:
        """``torch.take_along_dim(x, indices, dim)`` with a dim: x and indices broadcast on
        the other axes (torch_take_along); without one (over the flattened tensor) refused."""
        if dim is None:
            self._refuse("take_along_dim without a dim (over the flattened tensor)")
        # (a parameter or buffer, a NumPy array here, picked per sample by traced indices)
        src = x if isinstance(x, np.ndarray) else _to_torch(self._tensor(x, "take_along_dim")).sym
        idx = _to_torch(indices).sym if isinstance(indices, _T) else np.asarray(indices)
        return _T(torch_take_along(src, idx, _dim(dim, len(src.shape), "take_along_dim")),
                  False)

    def _mha_weights(self, mod: Any) -> dict[str, Any]:
        e = mod.embed_dim
        if mod.in_proj_weight is not None:
            w = _np(mod.in_proj_weight)
            wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = (_np(mod.q_proj_weight), _np(mod.k_proj_weight),
                          _np(mod.v_proj_weight))
        if mod.in_proj_bias is not None:
            b = _np(mod.in_proj_bias)
            bq, bk, bv = b[:e], b[e:2 * e], b[2 * e:]
        else:
            bq = bk = bv = None
        return MultiheadAttentionWeights(
            wq=wq.T.copy(), bq=bq, wk=wk.T.copy(), bk=bk, wv=wv.T.copy(), bv=bv,
            wo=_np(mod.out_proj.weight).T.copy(), bo=_np(mod.out_proj.bias))

    def mha(self, qual: str, mod: Any, query: Any, key: Any, value: Any,
            key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
            average_attn_weights: bool = True, is_causal: bool = False) -> Any:
        self._needs_mask(qual, is_causal, attn_mask, "is_causal", "attn_mask")
        ts = []
        for v, what in ((query, "query"), (key, "key"), (value, "value")):
            t = _to_torch(self._tensor(v, f"{qual} {what}"))
            if t.ndim != 3:
                raise TorchConversionError(
                    f"from_torch: {qual} (MultiheadAttention) needs batched 3-D inputs"
                )
            if not mod.batch_first:
                self._seq_first_batch(t, f"{qual} {what}")
            ts.append(t.sym if mod.batch_first else torch_permute(t.sym, (1, 0, 2)))
        masks = [self._mask(key_padding_mask, f"{qual} key_padding_mask", batched=True),
                 self._mask(attn_mask, f"{qual} mask")]
        res = torch_multihead_attention(
            *ts, *masks, weights=self._mha_weights(mod), num_heads=mod.num_heads,
            need_weights=bool(need_weights), average=bool(average_attn_weights),
        )
        out, weights = (res[0], res[1]) if need_weights else (res, None)
        if not mod.batch_first:
            out = torch_permute(out, (1, 0, 2))
        return (_T(out, False), None if weights is None else _T(weights, False))

    def _seq_first_batch(self, t: _T, qual: str) -> None:
        """Notes a seq-first (T, B, ...) input whose free axis, the converted model's batch,
        is its time axis: an unbatched sentence viewed as (T, 1, E) (PyTorch's LSTM tagger
        tutorial), a batch-first tensor fed to a seq-first layer, or a way from the input
        that the search for the batch axis (_batch_axis) does not follow. Calls compute what
        PyTorch computes; predict, which would cut the sequences at its batch boundaries and
        run each piece alone (silently wrong: an audit, December 2026), is refused."""
        shape = t.sym.shape
        if len(shape) >= 2 and shape[0] is None and shape[1] is not None:
            self.predict_refusals.append(
                f"{qual} is seq-first (batch_first=False) and its input's axis 0, its time "
                f"axis, is the converted model's free axis (axis 1, its batch, is fixed at "
                f"{shape[1]})")

    # ---- transformer layers: PyTorch's forward composed (eval: no dropout) --------------
    def _sequence(self, x: Any, qual: str, batch_first: bool) -> _T:
        """A layer's (B, T, E) or (T, B, E) input as a batch-first tensor."""
        t = _to_torch(self._tensor(x, qual))
        if t.ndim != 3:
            raise TorchConversionError(f"from_torch: {qual} needs a batched 3-D input")
        if not batch_first:
            self._seq_first_batch(t, qual)
        return self._to_layout(t, batch_first)  # (swapping T and B is its own inverse)

    def _attention_block(self, qual: str, mha: Any, h: _T, memory: _T, key_padding_mask: Any,
                         attn_mask: Any) -> _T:
        """``mha(h, memory, memory)`` on batch-first tensors, without weights (a layer's
        _sa_block or _mha_block)."""
        masks = [self._mask(key_padding_mask, f"{qual} key_padding_mask", batched=True),
                 self._mask(attn_mask, f"{qual} mask")]
        out = torch_multihead_attention(
            h.sym, memory.sym, memory.sym, *masks, weights=self._mha_weights(mha),
            num_heads=mha.num_heads, need_weights=False, average=True,
        )
        return _T(out, False)

    def _feed_forward(self, qual: str, mod: Any, h: _T) -> _T:
        """A layer's _ff_block: linear2(activation(linear1(h)))."""
        act = mod.activation
        act_name = "relu" if (act is self.F.relu or isinstance(act, self.nn.ReLU)) else (
            "gelu_tanh" if getattr(act, "approximate", "none") == "tanh" else "gelu"
        )
        if act_name in ("relu", "gelu"):
            # in linear1's epilogue, as a Linear followed by the activation module is
            self.fuse = act_name
            try:
                h = self.linear(f"{qual}.linear1", mod.linear1, h)
            finally:
                self.fuse = None
        else:
            h = self.activation(self.linear(f"{qual}.linear1", mod.linear1, h), act_name)
        return self.linear(f"{qual}.linear2", mod.linear2, h)

    @staticmethod
    def _needs_mask(qual: str, flag: Any, mask: Any, flag_name: str, mask_name: str) -> None:
        """A causal hint without its mask: refused, as PyTorch refuses it."""
        if flag and mask is None:
            raise TorchConversionError(
                f"from_torch: {qual}: {flag_name} needs {mask_name} (as in PyTorch)")

    @staticmethod
    def _to_layout(x: _T, batch_first: bool) -> _T:
        """A batch-first result back in the layer's layout ((T, B, E) when not batch_first),
        or a (T, B, E) input to batch-first."""
        return x if batch_first else _T(torch_permute(x.sym, (1, 0, 2)), False)

    def _residual_blocks(self, mod: Any, x: _T, blocks: list) -> _T:
        """x through (norm, block) pairs: x + block(norm(x)) each with norm_first, else
        norm(x + block(x))."""
        for norm, block in blocks:
            if mod.norm_first:
                x = self.binary(x, block(self.layer_norm(norm, x)), "add")
            else:
                x = self.layer_norm(norm, self.binary(x, block(x), "add"))
        return x

    def encoder_layer(self, qual: str, mod: Any, src: Any, src_mask: Any = None,
                      src_key_padding_mask: Any = None, is_causal: bool = False) -> _T:
        self._needs_mask(qual, is_causal, src_mask, "is_causal", "src_mask")
        batch_first = mod.self_attn.batch_first
        x = self._sequence(src, qual, batch_first)
        x = self._residual_blocks(mod, x, [
            (mod.norm1, lambda h: self._attention_block(
                f"{qual}.self_attn", mod.self_attn, h, h, src_key_padding_mask, src_mask)),
            (mod.norm2, lambda h: self._feed_forward(qual, mod, h)),
        ])
        return self._to_layout(x, batch_first)

    def decoder_layer(self, qual: str, mod: Any, tgt: Any, memory: Any, tgt_mask: Any = None,
                      memory_mask: Any = None, tgt_key_padding_mask: Any = None,
                      memory_key_padding_mask: Any = None, tgt_is_causal: Any = False,
                      memory_is_causal: Any = False) -> _T:
        """``nn.TransformerDecoderLayer``: self-attention over tgt (tgt_mask, e.g.
        nn.Transformer.generate_square_subsequent_mask), attention over memory, feed-forward,
        each with its norm as norm_first says."""
        self._needs_mask(qual, tgt_is_causal, tgt_mask, "tgt_is_causal", "tgt_mask")
        self._needs_mask(qual, memory_is_causal, memory_mask, "memory_is_causal", "memory_mask")
        batch_first = mod.self_attn.batch_first
        x = self._sequence(tgt, qual, batch_first)
        mem = self._sequence(memory, f"{qual} memory", batch_first)
        x = self._residual_blocks(mod, x, [
            (mod.norm1, lambda h: self._attention_block(
                f"{qual}.self_attn", mod.self_attn, h, h, tgt_key_padding_mask, tgt_mask)),
            (mod.norm2, lambda h: self._attention_block(
                f"{qual}.multihead_attn", mod.multihead_attn, h, mem, memory_key_padding_mask,
                memory_mask)),
            (mod.norm3, lambda h: self._feed_forward(qual, mod, h)),
        ])
        return self._to_layout(x, batch_first)

    def decoder(self, qual: str, mod: Any, tgt: Any, memory: Any, tgt_mask: Any = None,
                memory_mask: Any = None, tgt_key_padding_mask: Any = None,
                memory_key_padding_mask: Any = None, tgt_is_causal: Any = None,
                memory_is_causal: Any = False) -> _T:
        """``nn.TransformerDecoder``: its layers with the same masks, then its norm."""
        self._needs_mask(qual, tgt_is_causal, tgt_mask, "tgt_is_causal", "tgt_mask")
        x = tgt
        for i, layer in enumerate(mod.layers):
            x = self.decoder_layer(f"{qual}.layers.{i}", layer, x, memory, tgt_mask,
                                   memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                                   bool(tgt_is_causal), bool(memory_is_causal))
        return x if mod.norm is None else self.layer_norm(mod.norm, x)

    def transformer(self, qual: str, mod: Any, src: Any, tgt: Any, src_mask: Any = None,
                    tgt_mask: Any = None, memory_mask: Any = None,
                    src_key_padding_mask: Any = None, tgt_key_padding_mask: Any = None,
                    memory_key_padding_mask: Any = None, src_is_causal: Any = None,
                    tgt_is_causal: Any = None, memory_is_causal: Any = False) -> _T:
        """``nn.Transformer``: its encoder on src, then its decoder on tgt and that memory."""
        memory = self.encoder(f"{qual}.encoder", mod.encoder, src, src_mask,
                              src_key_padding_mask, src_is_causal)
        return self.decoder(f"{qual}.decoder", mod.decoder, tgt, memory, tgt_mask,
                            memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                            tgt_is_causal, memory_is_causal)

    def encoder(self, qual: str, mod: Any, src: Any, mask: Any = None,
                src_key_padding_mask: Any = None, is_causal: Any = None) -> _T:
        """``nn.TransformerEncoder``: its layers, then its norm. With a key padding mask
        and no mask, PyTorch's inference path (``use_nested_tensor``) returns 0 at padded
        steps before the norm when the padding is at the end of every row; so does this."""
        self._needs_mask(qual, is_causal, mask, "is_causal", "mask")
        x = src
        for i, layer in enumerate(mod.layers):
            x = self.encoder_layer(f"{qual}.layers.{i}", layer, x, mask, src_key_padding_mask,
                                   bool(is_causal))
        nested = (getattr(mod, "use_nested_tensor", False)
                  and self.torch.backends.mha.get_fastpath_enabled()
                  and src_key_padding_mask is not None and mask is None)
        if nested:
            t = _to_torch(self._tensor(x, qual))
            kpm = _to_torch(self._tensor(src_key_padding_mask, f"{qual} mask"))
            batch_first = mod.layers[0].self_attn.batch_first
            seq = t.sym if batch_first else torch_permute(t.sym, (1, 0, 2))
            seq = torch_zero_padded(seq, kpm.sym, bool(getattr(mod, "mask_check", True)))
            x = _T(seq if batch_first else torch_permute(seq, (1, 0, 2)), False)
        if mod.norm is not None:
            x = self.layer_norm(mod.norm, x)
        return x

    def sdpa(self, query: Any, key: Any, value: Any, attn_mask: Any = None,
             dropout_p: Any = 0.0, is_causal: Any = False, scale: Any = None,
             enable_gqa: Any = False) -> _T:
        """``F.scaled_dot_product_attention`` (see torch_sdpa)."""
        bad = _sdpa_problems(attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if bad is not None:
            raise TorchConversionError(f"from_torch: scaled_dot_product_attention with {bad}")
        q, k, v = (_to_torch(self._tensor(x, f"scaled_dot_product_attention {what}")).sym
                   for x, what in ((query, "query"), (key, "key"), (value, "value")))
        mask = attn_mask
        if isinstance(mask, _T):
            mask = _to_torch(mask).sym
        elif mask is not None and not isinstance(mask, np.ndarray):
            raise TorchConversionError(
                f"from_torch: scaled_dot_product_attention with an attn_mask of type "
                f"{type(mask).__name__}"
            )
        return _T(torch_sdpa(q, k, v, mask, is_causal=bool(is_causal),
                             scale=None if scale is None else float(scale),
                             gqa=bool(enable_gqa)), False)

    def matmul(self, a: Any, b: Any = None, *, other: Any = None, mat2: Any = None,
               strict: str | None = None) -> Any:
        """``matmul`` / ``bmm`` / ``mm`` (torch functions and Tensor methods; the second
        operand by position, ``other=`` or ``mat2=``); ``strict``: "bmm" or "mm", whose
        operands do not broadcast: torch_bmm checks them at each new shape when both are
        traced tensors. (Against a parameter or constant the batch stays free, as for any
        op with one: the shapes are probed at batches of 2, 1, 8 and 16, not the
        example's, and a batch of 1 broadcasts, as before.)"""
        b = other if b is None else b
        b = mat2 if b is None else b
        ops = [_to_torch(x).sym if isinstance(x, _T) else np.asarray(x) for x in (a, b)]
        if strict is not None and isinstance(a, _T) and isinstance(b, _T):
            return _T(torch_bmm(*ops, strict), False)
        return _T(torch_matmul(*ops), False)

    def f_linear(self, x: Any, weight: Any, bias: Any = None) -> _T:
        """``F.linear(x, weight, bias)`` with a parameter (or buffer) weight: a Dense layer
        of its own."""
        if not isinstance(weight, np.ndarray) or weight.ndim != 2 or not (
                bias is None or isinstance(bias, np.ndarray)):
            raise TorchConversionError(
                "from_torch: F.linear needs a 2-D parameter or buffer as weight (and bias)"
            )
        t = _to_torch(self._tensor(x, "linear"))
        layer = Dense(weight.shape[0], use_bias=bias is not None)
        layer.set_weights([weight.T.astype(F32)] + ([bias.astype(F32)] if bias is not None
                                                     else []))
        return _T(layer(t.sym), False)

    def einsum(self, equation: Any, *operands: Any) -> Any:
        if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
            operands = tuple(operands[0])
        if not isinstance(equation, str):
            raise TorchConversionError("from_torch: einsum needs its equation first")
        xs = [_to_torch(x).sym if isinstance(x, _T) else np.asarray(x) for x in operands]
        return _T(torch_einsum(equation, *xs), False)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        if a is None or b is None:
            raise TorchConversionError("from_torch: torch.where(condition) (nonzero) is not "
                                       "supported; torch.where(condition, x, y) is")
        ops = [_to_torch(v).sym if isinstance(v, _T) else v for v in (condition, a, b)]
        return _T(torch_where(*ops), False)

    # ---- views and copies composed of the ops above (movedim, tile, narrow, select,
    # tensor_split) and elementwise functions of two or three tensors ------------------
    def movedim(self, x: Any, source: Any, destination: Any) -> _T:
        """``torch.movedim`` / ``moveaxis``: a permute that puts axes ``source`` at
        ``destination``, the others keeping their order."""
        t = self._tensor(x, "movedim")
        src = list(source) if isinstance(source, (tuple, list)) else [source]
        dst = list(destination) if isinstance(destination, (tuple, list)) else [destination]
        src = [_dim(d, t.ndim, "movedim") for d in src]
        dst = [_dim(d, t.ndim, "movedim") for d in dst]
        if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
            raise TorchConversionError(f"from_torch: movedim({source}, {destination}) (as "
                                       "many distinct source dims as destinations)")
        order: list[Any] = [None] * t.ndim
        for s, d in zip(src, dst):
            order[d] = s
        rest = iter(i for i in range(t.ndim) if i not in src)
        return _permuted(t, tuple(o if o is not None else next(rest) for o in order))

    def tile(self, x: Any, *dims: Any, **kwargs: Any) -> Any:
        """``torch.tile``: repeat, with ones prepended to the repeats for a tensor of more
        axes, or axes of size one prepended to the tensor for more repeats."""
        if "dims" in kwargs and not dims:
            dims = (kwargs.pop("dims"),)
        if kwargs:
            raise TypeError(f"tile got unexpected keywords {sorted(kwargs)}")
        reps = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        t = self._tensor(x, "tile")
        for _ in range(len(reps) - t.ndim):
            t = self.unsqueeze(t, 0)
        return self.repeat(t, (1,) * (t.ndim - len(reps)) + tuple(reps))

    def _along(self, t: _T, dim: Any, what: str) -> tuple[int, Any]:
        d = _dim(dim, t.ndim, what)
        return d, t.torch_shape[d]

    def narrow(self, x: Any, dim: Any, start: Any, length: Any) -> Any:
        """``torch.narrow``: x[..., start:start + length, ...] along ``dim`` (a negative start
        counts from the end, of an axis whose size the examples fix)."""
        t = self._tensor(x, "narrow")
        d, n = self._along(t, dim, "narrow")
        if not all(isinstance(v, (int, np.integer)) for v in (start, length)) or (
                start < 0 and n is None):
            raise TorchConversionError(f"from_torch: narrow({dim}, {start}, {length}) (start "
                                       "and length known at conversion)")
        start = int(start) + (n if start < 0 else 0)
        if start < 0 or length < 0 or (n is not None and start + length > n):
            raise TorchConversionError(f"from_torch: narrow({dim}, {start}, {length}) of an "
                                       f"axis of size {n} (PyTorch refuses it too)")
        return self.getitem(t, (slice(None),) * d + (slice(start, start + int(length)),))

    def select(self, x: Any, dim: Any, index: Any) -> Any:
        """``torch.select``: x[..., index, ...] along ``dim``."""
        t = self._tensor(x, "select")
        d, _ = self._along(t, dim, "select")
        return self.getitem(t, (slice(None),) * d + (index,))

    def tensor_split(self, x: Any, indices_or_sections: Any = None, dim: Any = 0, *,
                     sections: Any = None, indices: Any = None) -> tuple:
        """``torch.tensor_split``: ``sections`` pieces (the first n % sections one longer),
        or the pieces between ``indices`` (Python's slices: clipped, maybe empty), along an
        axis whose size the examples fix."""
        given = [v for v in (indices_or_sections, sections, indices) if v is not None]
        if len(given) != 1 or (sections is not None and not isinstance(sections, int)):
            raise TorchConversionError("from_torch: tensor_split needs one of "
                                       "indices_or_sections, sections (an int) or indices")
        indices_or_sections = given[0]
        t = self._tensor(x, "tensor_split")
        d, n = self._along(t, dim, "tensor_split")
        if n is None:
            raise TorchConversionError("from_torch: tensor_split along an axis whose size is "
                                       "known only at run time")
        if isinstance(indices_or_sections, (int, np.integer)):
            k = int(indices_or_sections)
            if k <= 0:
                raise TorchConversionError(f"from_torch: tensor_split into {k} sections")
            sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
            bounds = [sum(sizes[:i]) for i in range(k + 1)]
            pairs = list(zip(bounds[:-1], bounds[1:]))
        else:
            cuts = [int(i) for i in indices_or_sections]
            pairs = list(zip([0, *cuts], [*cuts, n]))
        return tuple(self.getitem(t, (slice(None),) * d + (slice(a, b),)) for a, b in pairs)

    def cumprod(self, x: Any, dim: Any, dtype: Any = None) -> _T:
        return self._cumulative("cumprod", torch_cumprod, x, dim, dtype)

    def lerp(self, start: Any, end: Any, weight: Any) -> _T:
        """``torch.lerp``: both forms of PyTorch's kernel (torch_lerp; it fuses their
        multiply-adds: within an ulp), on tensors in PyTorch's layout."""
        ts = [_to_torch(v).sym if isinstance(v, _T) else (
            np.asarray(v, F32) if isinstance(v, np.ndarray) else v)
            for v in (self._tensor(start, "lerp"), end, weight)]
        if isinstance(ts[2], (_Dim, _Unknown)) or isinstance(ts[1], (_Dim, _Unknown)):
            raise TorchConversionError("from_torch: lerp by a size known only at run time")
        return _T(torch_lerp(*ts), False)

    def addc(self, name: str, x: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Any:
        """``torch.addcmul`` / ``addcdiv``: x + value · t1 · t2 (or / t2), as (value · t1) ·
        t2, then x + (PyTorch's vectorized kernel fuses the last multiply-add: within an ulp);
        integers stay integers."""
        if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
            raise TorchConversionError(f"from_torch: {name} with value={value!r} (a number)")
        def integral(v: Any) -> bool:  # an integer (or bool) tensor, array or number
            kind = (v.sym.dtype if isinstance(v, _T) else np.asarray(v).dtype).kind
            return kind in "iub"

        if name == "addcdiv" and integral(tensor1) and integral(tensor2):
            raise TorchConversionError("from_torch: addcdiv of integer tensors (PyTorch "
                                       "refuses it too)")
        if isinstance(value, float) and all(map(integral, (x, tensor1, tensor2))):
            value = int(value)  # PyTorch casts it to the integer tensors' type (toward zero)
        scaled = self.binary(tensor1, value, "mul") if value != 1 else tensor1
        both = self.binary(scaled, tensor2, "mul" if name == "addcmul" else "div")
        return self.binary(x, both, "add")

    def unsqueeze(self, x: Any, dim: int) -> _T:
        t = _to_torch(self._tensor(x, "unsqueeze"))
        d = _dim(dim, t.ndim + 1, "unsqueeze")
        return self.getitem(t, (slice(None),) * d + (None,))

    def squeeze(self, x: Any, dim: Any = None) -> _T:
        t = _to_torch(self._tensor(x, "squeeze"))
        shape = t.torch_shape
        if dim is None:
            if any(d is None for d in shape):
                raise TorchConversionError(
                    "from_torch: squeeze() of a tensor with an axis free at run time (the "
                    "batch: PyTorch drops it when it is 1); name the axes, squeeze(dim)"
                )
            dims = [i for i, d in enumerate(shape) if d == 1]
        else:
            dims = list(dim) if isinstance(dim, (tuple, list)) else [dim]
            dims = [_dim(d, len(shape), "squeeze") for d in dims]
            if any(shape[d] is None for d in dims):
                raise TorchConversionError(
                    "from_torch: squeeze of the axis free at run time (the batch)"
                )
            dims = [d for d in dims if shape[d] == 1]
        if not dims:
            return t
        return self.getitem(t, tuple(0 if i in dims else slice(None)
                                     for i in range(len(shape))))

    def stack(self, tensors: Any, dim: int = 0) -> _T:
        self._no_constants(tensors, "stack")
        ts = [self._tensor(x, "stack") for x in tensors]
        d = _dim(dim, ts[0].ndim + 1, "stack")
        return self.cat([self.unsqueeze(t, d) for t in ts], d)

    def expand(self, x: Any, *sizes: Any) -> _T:
        """``x.expand(sizes)`` (-1 keeps a size; a size read from an input at run time, as
        ViT's ``cls_token.expand(B, -1, -1)``): a broadcast copy."""
        if isinstance(x, _T):
            base: Any = _to_torch(x).sym
        elif isinstance(x, np.ndarray):
            base = x
        else:
            raise TorchConversionError(f"from_torch: expand of a {type(x).__name__}")
        refs, spec = self._sizes(sizes, "expand", keep=True)
        return _T(torch_expand(base, *refs, spec=tuple(spec)), False)

    def _sizes(self, size: tuple, what: str, keep: bool = False, own: _T | None = None
               ) -> tuple[list, list]:
        """A size given as ints and sizes read from inputs (one sequence or several
        arguments) as torch_reshape's, torch_full's and torch_expand's (refs, spec): an int,
        or (j, axis) for axis ``axis`` of refs[j - 1] at run time, j = 0 for ``own`` (the
        tensor being reshaped); ``keep``: -1 allowed."""
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        refs: list[Any] = []
        spec: list[Any] = []
        for e in size:
            if isinstance(e, _Dim):
                # read where the tensor is stored (no transpose for a channels-last one)
                axis = _axis_in_layout(e.t, e.axis)
                if own is not None and e.t.sym is own.sym:
                    j = 0
                else:
                    refs.append(e.t.sym)
                    j = len(refs)
                spec.append((j, axis, e.ops) if e.ops else (j, axis))
            elif isinstance(e, (int, np.integer)) and int(e) >= (-1 if keep else 0):
                spec.append(int(e))
            else:
                raise TorchConversionError(f"from_torch: {what} with a size {e!r}")
        return refs, spec

    def full(self, size: tuple, value: Any, dtype: Any = None, device: Any = None,
             layout: Any = None, requires_grad: Any = False, pin_memory: Any = False, *,
             infer: bool = False) -> Any:
        """``torch.zeros / ones / full``: a constant, or an op when a size is read from an
        input (``torch.zeros(x.size(0), 4)``). The dtype: float32, or with ``infer``
        (torch.full) PyTorch's from the fill value (bool, int64 or float32)."""
        if not isinstance(value, (int, float, bool, np.number)):
            raise TorchConversionError("from_torch: torch.full with a tensor fill value")
        if dtype is None:
            np_dtype = F32
            if infer and isinstance(value, (bool, np.bool_)):
                np_dtype = np.bool_
            elif infer and isinstance(value, (int, np.integer)):
                np_dtype = np.int64
        else:
            np_dtype = _np_dtype(dtype)
            if np_dtype is None:
                raise TorchConversionError(f"from_torch: torch.full with dtype={dtype}")
        refs, spec = self._sizes(size, "torch.zeros/ones/full")
        if not refs:
            return np.full(spec, value, np_dtype)
        return _T(torch_full(*refs, spec=tuple(spec), value=value, dtype=np.dtype(np_dtype)),
                  False)

    def new_full(self, x: Any, size: Any, fill_value: Any, dtype: Any = None,
                 **kwargs: Any) -> Any:
        """``x.new_zeros / new_ones / new_full(size)``: torch.full with x's dtype."""
        t = self._tensor(x, "new_full")
        size = tuple(size) if isinstance(size, (tuple, list)) else (size,)
        return self.full(size, fill_value, dtype=t.sym.dtype if dtype is None else dtype,
                         **kwargs)

    def addmm(self, bias: Any, x: Any, weight: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        """``torch.addmm(bias, x, w)`` = bias + x @ w (GPT-2's Conv1D of HuggingFace): with
        a parameter w (and bias), a Dense layer of its own, else a matmul and an add."""
        if beta != 1 or alpha != 1:
            self._refuse(f"addmm with beta={beta!r}, alpha={alpha!r}")
        if isinstance(weight, np.ndarray) and weight.ndim == 2 and (
                bias is None or isinstance(bias, np.ndarray) and bias.shape == weight.shape[1:]):
            return self.f_linear(x, weight.T, bias)
        return self.binary(bias, self.matmul(x, weight), "add")

    def baddbmm(self, x: Any, batch1: Any, batch2: Any, *, beta: Any = 1,
                alpha: Any = 1) -> Any:
        """``torch.baddbmm(x, b1, b2, beta=, alpha=)`` = beta * x + alpha * (b1 @ b2)
        (BLOOM's alibi scores); with beta 0, x is not read (PyTorch ignores even its NaN)."""
        if not all(isinstance(v, (int, float)) for v in (beta, alpha)):
            self._refuse(f"baddbmm with beta={beta!r}, alpha={alpha!r}")
        for b in (x, batch1, batch2):
            dtype = b.sym.dtype if isinstance(b, _T) else np.asarray(b).dtype
            if dtype != np.float32:
                self._refuse(f"baddbmm of a {dtype} tensor (float32 ones are converted)")
        if any((b.ndim if isinstance(b, _T) else np.ndim(b)) != 3 for b in (batch1, batch2)):
            self._refuse("baddbmm of batches that are not 3-D (PyTorch refuses them)")
        product = self.matmul(batch1, batch2)
        if alpha != 1:
            product = self.binary(product, alpha, "mul")
        if beta == 0:
            return product
        return self.binary(x if beta == 1 else self.binary(x, beta, "mul"), product, "add")

    def repeat_interleave(self, x: Any, repeats: Any, dim: Any = None, *,
                          output_size: Any = None) -> Any:
        """``x.repeat_interleave(r, dim)`` with an int r along an axis the examples fix
        (GPT-J's and CodeGen's rotary sin / cos): NumPy's repeat. (``output_size``, a hint
        of the result's length to PyTorch, is not needed.)"""
        t = _to_torch(self._tensor(x, "repeat_interleave"))
        if dim is None or not isinstance(repeats, (int, np.integer)) or int(repeats) < 0:
            self._refuse(f"repeat_interleave with repeats={repeats!r}, dim={dim!r} (an int "
                         "number of repeats along one axis is)")
        axis = _dim(dim, t.ndim, "repeat_interleave")
        if t.torch_shape[axis] is None:
            self._refuse("repeat_interleave along the batch axis")
        return _T(torch_repeat_interleave(t.sym, int(repeats), axis), False)

    def full_like(self, x: Any, value: Any, dtype: Any = None, **kwargs: Any) -> Any:
        t = self._tensor(x, "full_like")
        size = self.size(t)
        return self.full(size, value, dtype=t.sym.dtype if dtype is None else dtype)

    def to(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """``x.to(dtype)`` / ``x.to(device)`` / ``x.to(other)`` / keywords: a cast or x."""
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, (_T, np.ndarray)):
                dtype = a.sym.dtype if isinstance(a, _T) else a.dtype
            elif isinstance(a, self.torch.dtype):
                dtype = a  # cast refuses the dtypes it does not convert (int16, float16, ...)
        return x if dtype is None else self.cast(x, dtype)

    def repeat(self, x: Any, *reps: Any) -> Any:
        if len(reps) == 1 and isinstance(reps[0], (tuple, list)):
            reps = tuple(reps[0])
        sized = any(isinstance(r, _Dim) for r in reps)
        # (a constant repeated by a size read at run time: DeBERTa's relative position
        # projections, repeat(q.size(0) // heads, 1, 1))
        base = x if sized and isinstance(x, np.ndarray) else _to_torch(
            self._tensor(x, "repeat")).sym
        if len(reps) < base.ndim:
            raise TorchConversionError("from_torch: repeat with fewer sizes than the tensor "
                                       "has axes (PyTorch refuses it)")
        if sized:
            refs, spec = self._sizes(reps, "repeat")
            return _T(torch_repeat_sized(base, *refs, spec=tuple(spec)), False)
        if not all(isinstance(r, (int, np.integer)) and int(r) >= 0 for r in reps):
            raise TorchConversionError(f"from_torch: repeat by {reps!r} (ints >= 0, or sizes "
                                       "read from tensors)")
        return _T(torch_repeat(base, tuple(int(r) for r in reps)), False)

    def _axes(self, t: _T, dims: Any, what: str) -> tuple:
        """PyTorch dims (an int or a sequence) as axes of the stored array."""
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        return tuple(_axis_in_layout(t, _dim(d, t.ndim, what)) for d in dims)

    def normalize(self, x: Any, p: Any, dim: Any, eps: Any) -> _T:
        t = self._tensor(x, "normalize")
        if not isinstance(p, (int, float)) or p <= 0:
            raise TorchConversionError(f"from_torch: normalize with p={p!r} (a number > 0)")
        return _T(torch_normalize(t.sym, float(p), self._axes(t, dim, "normalize"),
                                  float(eps)), t.cl)

    def flip(self, x: Any, dims: Any) -> _T:
        t = self._tensor(x, "flip")
        return _T(torch_flip(t.sym, self._axes(t, dims, "flip")), t.cl)

    def cumsum(self, x: Any, dim: Any, dtype: Any = None) -> _T:
        return self._cumulative("cumsum", torch_cumsum, x, dim, dtype)

    def logcumsumexp(self, x: Any, dim: Any) -> _T:
        """``torch.logcumsumexp(x, dim)`` and the method (torch_logcumsumexp)."""
        t = self._tensor(x, "logcumsumexp")
        return _T(torch_logcumsumexp(t.sym, self._axes(t, dim, "logcumsumexp")[0]), t.cl)

    def cum_extreme(self, largest: bool, x: Any, dim: Any) -> Any:
        """``torch.cummax`` / ``cummin(x, dim)`` and the methods: (values, indices), as
        ``.values`` / ``.indices`` or [0] / [1] (torch_cumextreme)."""
        what = "cummax" if largest else "cummin"
        t = self._tensor(x, what)
        res = torch_cumextreme(t.sym, self._axes(t, dim, what)[0], largest)
        return _ValuesIndices((_T(res[0], t.cl), _T(res[1], t.cl)))

    def count_nonzero(self, x: Any, dim: Any = None) -> _T:
        """``torch.count_nonzero(x, dim)`` and the method: int64 counts of the elements that
        are not 0 (NaN counts) over ``dim`` (an int, a sequence, or None: all)."""
        nonzero = self.compare(self._tensor(x, "count_nonzero"), 0, "ne")
        return self.reduce("sum", nonzero, dim)

    def logit(self, x: Any, eps: Any = None) -> _T:
        """``torch.logit(x, eps)`` / ``torch.special.logit`` and the method (torch_logit)."""
        if eps is not None and (isinstance(eps, bool) or not isinstance(
                eps, (int, float, np.floating))):
            self._refuse(f"logit with eps={eps!r} (a number known at conversion)")
        t = self._tensor(x, "logit")
        return _T(torch_logit(t.sym, None if eps is None else float(eps)), t.cl)

    def at_least(self, rank: int, *tensors: Any) -> Any:
        """``torch.atleast_1d`` / ``2d`` / ``3d``: each tensor with axes of size 1 added as
        NumPy's atleast_*d adds them (a 1-D one becomes (1, n), then (1, n, 1); a 2-D one
        (m, n, 1)); one tensor gives a tensor, several (or a sequence) a tuple."""
        if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
            return tuple(self.at_least(rank, t) for t in tensors[0])
        if len(tensors) != 1:
            return tuple(self.at_least(rank, t) for t in tensors)
        t = self._tensor(tensors[0], f"atleast_{rank}d")
        if t.ndim == 0:
            return self.reshape(t, ((1,) * rank,))
        if rank >= 2 and t.ndim == 1:
            t = self.unsqueeze(t, 0)
        if rank == 3 and t.ndim == 2:
            t = self.unsqueeze(t, 2)
        return t

    def stack_along(self, kind: str, tensors: Any) -> _T:
        """``torch.hstack`` / ``vstack`` (``row_stack``) / ``dstack`` / ``column_stack``:
        torch.cat of the tensors made at least 1-D (along axis 0 if they are 1-D, else 1),
        2-D (axis 0) or 3-D (axis 2); column_stack makes a 0-D or 1-D tensor a column (n, 1),
        then concatenates along axis 1."""
        if not isinstance(tensors, (tuple, list)) or not tensors:
            self._refuse(f"{kind} of {type(tensors).__name__} (a non-empty sequence of "
                         "tensors)")
        self._no_constants(tensors, kind)
        if kind == "column_stack":
            ts = [self._tensor(x, kind) for x in tensors]
            cols = [self.reshape(t, ((1, 1),)) if t.ndim == 0 else
                    self.unsqueeze(t, 1) if t.ndim == 1 else t for t in ts]
            return self.cat(cols, 1)
        rank = {"hstack": 1, "vstack": 2, "row_stack": 2, "dstack": 3}[kind]
        ts = [self.at_least(rank, x) for x in tensors]
        dim = {"hstack": 0 if ts[0].ndim == 1 else 1, "vstack": 0, "row_stack": 0,
               "dstack": 2}[kind]
        return self.cat(ts, dim)

    def _cumulative(self, what: str, op: Any, x: Any, dim: Any, dtype: Any) -> _T:
        """``cumsum`` / ``cumprod`` (``op``: torch_cumsum / torch_cumprod) along ``dim``."""
        if dtype is not None:
            raise TorchConversionError(f"from_torch: {what} with dtype={dtype}")
        t = self._tensor(x, what)
        return _T(op(t.sym, self._axes(t, dim, what)[0]), t.cl)

    def roll(self, x: Any, shifts: Any, dims: Any = None) -> _T:
        for s in shifts if isinstance(shifts, (tuple, list)) else (shifts,):
            if not isinstance(s, (int, np.integer)):
                raise TorchConversionError("from_torch: roll by a size known only at run time "
                                           "(shifts known at conversion only)")
        if dims is None:  # over the flattened tensor, in PyTorch's order
            t = _to_torch(self._tensor(x, "roll"))
            return _T(torch_roll(t.sym, shifts, None), False)
        t = self._tensor(x, "roll")
        return _T(torch_roll(t.sym, shifts, self._axes(t, dims, "roll")), t.cl)

    def unary(self, x: Any, name: str, *, decimals: Any = 0) -> Any:
        """An elementwise function (_UNARY) of a tensor (its layout kept) or a number; round
        with ``decimals`` (torch_round_decimals). (Calls on parameters and buffers alone are
        computed by PyTorch, _build / _fold.)"""
        if decimals:
            t = self._tensor(x, name)
            if name != "round" or not isinstance(decimals, (int, np.integer)) or (
                    t.sym.dtype.kind != "f"):
                raise TorchConversionError(f"from_torch: {name} with decimals={decimals!r} "
                                           "(round of a float tensor, by an int)")
            return _T(torch_round_decimals(t.sym, int(decimals)), t.cl)
        if isinstance(x, (int, float)) and name in ("neg", "abs"):
            return -x if name == "neg" else abs(x)  # a size or a number
        if isinstance(x, _Dim):
            raise TorchConversionError(f"from_torch: {name} of a size known only at run "
                                       "time (the batch size)")
        t = self._tensor(x, name)
        return _T(torch_unary(t.sym, name), t.cl)

    def clamp(self, x: Any, min: Any = None, max: Any = None) -> Any:  # noqa: A002
        if min is None and max is None:
            raise TorchConversionError("from_torch: clamp without min and max (PyTorch "
                                       "refuses it)")
        if any(isinstance(v, (_T, np.ndarray)) for v in (min, max)):
            # tensor bounds: torch.minimum(torch.maximum(x, min), max), as PyTorch computes
            if min is not None:
                x = self.binary(x, min, "maximum")
            return x if max is None else self.binary(x, max, "minimum")
        t = self._tensor(x, "clamp")
        return _T(torch_clamp(t.sym, min, max), t.cl)

    def compare(self, a: Any, b: Any, op: str) -> Any:
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
            if isinstance(a, list) != isinstance(b, list):  # a shape is never a list
                if op in ("eq", "ne"):
                    return op == "ne"
                raise TorchConversionError(f"from_torch: {op} of a tuple and a list")
            return _compare_sizes(a, b, op)  # x.shape == y.shape, x.shape[1:] == (4, 3)
        if any(isinstance(v, (_Dim, _Unknown)) for v in (a, b)):
            if any(isinstance(v, (_T, np.ndarray)) for v in (a, b)):
                raise TorchConversionError("from_torch: a tensor compared with the batch size "
                                           "(known only at run time)")
            if op in ("eq", "ne") and _same_size(a, b):
                return op == "eq"
            for u, v, apply in ((a, b, lambda x, y: (x, y)), (b, a, lambda x, y: (y, x))):
                if (isinstance(u, _Dim) and not u.ops and isinstance(v, int)
                        and not isinstance(v, bool) and v <= 1):
                    # the batch against 0 or 1: the same answer for any batch of 2 or more
                    return _Assumed(bool(getattr(operator, op)(*apply(2, v))))
            return _Unknown()  # x.size(0) == y.size(0): left to run time
        if not any(isinstance(v, (_T, np.ndarray)) for v in (a, b)):
            return getattr(operator, op)(a, b)  # Python's rules (numbers)
        ops = [_to_torch(x).sym if isinstance(x, _T) else x for x in (a, b)]
        return _T(torch_compare(*ops, op), False)

    def masked_fill(self, x: Any, mask: Any, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()  # a 0-d parameter or buffer
        if not isinstance(value, (int, float, bool, np.number)):
            raise TorchConversionError("from_torch: masked_fill with a tensor value (a "
                                       "number only)")
        m = _to_torch(mask).sym if isinstance(mask, _T) else np.asarray(mask)
        if isinstance(x, np.ndarray):  # a parameter or buffer filled by a tensor's mask
            return _T(torch_masked_fill(x, m, value), False)
        t = _to_torch(self._tensor(x, "masked_fill"))
        return _T(torch_masked_fill(t.sym, m, value), False)

    def cast(self, x: Any, dtype: Any) -> Any:
        """``.float()`` / ``.type_as(y)`` / ``.to(dtype)``: float32, int64 or bool (int32 as
        int64: _NP_DTYPES)."""
        target = _np_dtype(dtype)
        if target is None:
            raise TorchConversionError(f"from_torch: a cast to {dtype} (float32, int64, int32 "
                                       "or bool)")
        if isinstance(x, np.ndarray):
            return x.astype(target)
        t = self._tensor(x, "cast")
        if t.sym.dtype == target:
            return t
        return _T(torch_cast(t.sym, np.dtype(target)), t.cl)

    def split(self, x: Any, split_size_or_sections: Any = None, dim: int = 0, *,
              split_size: Any = None) -> tuple:
        """``torch.split`` / ``Tensor.split``: slices of an axis whose size is known."""
        if split_size_or_sections is None:
            split_size_or_sections = split_size  # Tensor.split's keyword
        t = self._tensor(x, "split")
        shape = t.torch_shape
        d = _dim(dim, len(shape), "split")
        n = shape[d]
        if n is None:
            raise TorchConversionError(
                "from_torch: split along an axis whose size is known only at run time"
            )
        if isinstance(split_size_or_sections, (int, np.integer)):
            size = int(split_size_or_sections)
            if size <= 0 and n > 0:
                raise TorchConversionError(f"from_torch: split with size {size}")
            sizes = [min(size, n - i) for i in range(0, n, size)] if n else [0]
        else:
            sizes = [int(e) for e in split_size_or_sections]
            if sum(sizes) != n or any(e < 0 for e in sizes):
                raise TorchConversionError(
                    f"from_torch: split sections {sizes} for an axis of size {n}"
                )
        parts, start = [], 0
        for size in sizes:
            key = (slice(None),) * d + (slice(start, start + size),)
            parts.append(self.getitem(t, key))
            start += size
        return tuple(parts)

    def unbind(self, x: Any, dim: int = 0) -> tuple:
        """``torch.unbind`` / ``Tensor.unbind``: x[..., i, ...] for each i along an axis whose
        size is known (Swin's ``q, k, v = qkv.unbind(0)``)."""
        t = self._tensor(x, "unbind")
        d = _dim(dim, t.ndim, "unbind")
        n = t.torch_shape[d]
        if n is None:
            raise TorchConversionError(
                "from_torch: unbind along an axis whose size is known only at run time"
            )
        return tuple(self.getitem(t, (slice(None),) * d + (i,)) for i in range(n))

    def chunk(self, x: Any, chunks: int, dim: int = 0) -> tuple:
        """``torch.chunk``: PyTorch's pieces of ceil(n / chunks) (so maybe fewer)."""
        t = self._tensor(x, "chunk")
        chunks = int(chunks)
        d = _dim(dim, t.ndim, "chunk")
        n = t.torch_shape[d]
        if chunks <= 0 or n is None:
            raise TorchConversionError(
                f"from_torch: chunk({chunks}, dim={dim}) of a tensor of shape "
                f"{t.torch_shape} (chunks > 0, along an axis of known size)"
            )
        if n == 0:  # PyTorch: `chunks` empty pieces
            return tuple(self.getitem(t, (slice(None),) * d + (slice(0, 0),))
                         for _ in range(chunks))
        return self.split(t, -(-n // chunks), d)

    def tensor_of(self, data: Any, dtype: Any = None, device: Any = None,
                  requires_grad: Any = False, pin_memory: Any = False) -> np.ndarray:
        """``torch.tensor`` of numbers known at conversion, with a dtype fx records from a
        traced tensor (GPT-Neo's ``torch.tensor(finfo.min, dtype=w.dtype)``): a constant, in
        PyTorch's default dtypes (float32, int64, bool) unless given."""
        if any(not isinstance(v, (bool, int, float, np.number))
               for v in _leaves(self.torch, data)):
            self._refuse("torch.tensor of tensors or of the batch size (numbers known at "
                         "conversion only)")
        value = np.asarray(data)
        np_dtype = _np_dtype(dtype) if dtype is not None else (
            F32 if value.dtype.kind == "f" else np.bool_ if value.dtype.kind == "b"
            else np.int64)
        if np_dtype is None:
            self._refuse(f"torch.tensor with dtype={dtype}")
        return value.astype(np_dtype)

    def eye(self, n: Any, m: Any = None, dtype: Any = None, **kwargs: Any) -> np.ndarray:
        """``torch.eye`` of sizes known at conversion: a constant (float32 unless given)."""
        kwargs.pop("device", None)
        kwargs.pop("layout", None)
        kwargs.pop("requires_grad", None)
        kwargs.pop("pin_memory", None)
        np_dtype = F32 if dtype is None else _np_dtype(dtype)
        if kwargs or np_dtype is None or not all(
                isinstance(v, (int, np.integer)) for v in (n, n if m is None else m)):
            sizes = f"{n!r}" if m is None else f"{n!r}, {m!r}"
            self._refuse(f"torch.eye of {sizes}{'' if dtype is None else f' as {dtype}'} "
                         "(sizes known at conversion, float32, int64 or bool)")
        return np.eye(int(n), None if m is None else int(m), dtype=np_dtype)

    def arange(self, *args: Any, dtype: Any = None, device: Any = None, **kwargs: Any
               ) -> np.ndarray:
        """``torch.arange`` of sizes known at conversion: a constant."""
        kwargs.pop("layout", None)
        kwargs.pop("pin_memory", None)
        kwargs.pop("requires_grad", None)
        given = dict(zip(("start", "end", "step"), args if len(args) > 1 else (0, *args)))
        given.update(kwargs)
        values = [given.get("start", 0), given.get("end"), given.get("step", 1)]
        if isinstance(values[1], _Dim) and all(isinstance(v, (int, np.integer))
                                               for v in (values[0], values[2])):
            # up to the batch size (HuggingFace's torch.arange(batch_size)): an op
            np_dtype = np.int64 if dtype is None else _np_dtype(dtype)
            if np_dtype is None:
                raise TorchConversionError(f"from_torch: torch.arange with dtype={dtype}")
            refs, spec = self._sizes((values[1],), "torch.arange")
            return _T(torch_arange(*refs, spec=tuple(spec), start=int(values[0]),
                                   step=int(values[2]), dtype=np.dtype(np_dtype)), False)
        if values[1] is None or not all(isinstance(v, (int, float, np.integer, np.floating))
                                        for v in values):
            raise TorchConversionError(
                "from_torch: torch.arange needs bounds known at conversion (not the batch "
                f"size), got {args}, {kwargs}"
            )
        if dtype is None:
            exact = all(isinstance(v, (int, np.integer)) for v in values)
            np_dtype = np.int64 if exact else np.float32
        else:
            np_dtype = _np_dtype(dtype)
            if np_dtype is None:
                raise TorchConversionError(f"from_torch: torch.arange with dtype={dtype}")
        return np.arange(*values).astype(np_dtype)

    # ---- functions and methods ------------------------------------------------------
    def _function_handler(self, fn: Any) -> Any:
        """The handler of a called function (check and _build ask it for every node), or
        None; the table is built once per conversion."""
        table = self.__dict__.get("_handlers")
        if table is None:
            table = self._handlers = self._handler_table()
        if (getattr(fn, "__name__", None) == "stochastic_depth"
                and getattr(fn, "__module__", "") == "torchvision.ops.stochastic_depth"):
            return self.stochastic_depth  # fx-wrapped by torchvision (torch need not import it)
        try:
            return table.get(fn)
        except TypeError:  # an unhashable target
            return None

    def stochastic_depth(self, input: Any, p: Any, mode: Any,  # noqa: A002
                         training: Any = True) -> Any:
        """torchvision's ``stochastic_depth`` (EfficientNet, ConvNeXt, Swin): the identity in
        eval mode (``StochasticDepth`` passes ``self.training``) or with p = 0; in training it
        drops rows at random, which is refused."""
        if training and float(p) != 0.0:
            self._refuse(f"torchvision's stochastic_depth with training=True and p={p}")
        return self._tensor(input, "stochastic_depth")

    def f_conv(self, rank: int, input: Any, weight: Any, bias: Any = None,  # noqa: A002
               stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: Any = 1) -> _T:
        """``F.conv1d`` / ``conv2d`` / ``conv3d`` with a parameter (or buffer, or weights
        computed from them, as a weight-standardized conv does) as weight: a Conv layer of its
        own, as the nn module gets. A subclass of nn.Conv2d defined outside torch.nn is traced
        into and reaches this call."""
        what = f"F.conv{rank}d"
        if not isinstance(weight, np.ndarray) or weight.ndim != rank + 2 or not (
                bias is None or isinstance(bias, np.ndarray)):
            raise TorchConversionError(
                f"from_torch: {what} needs a {rank + 2}-D parameter or buffer as weight (and "
                "bias), or one computed from them")
        t = _to_cl(self._tensor(input, what))
        if t.ndim != rank + 2:
            raise TorchConversionError(f"from_torch: {what} needs a batched {rank + 2}-D input, "
                                       f"got rank {t.ndim}")

        def per_axis(v: Any) -> tuple:
            if isinstance(v, (tuple, list)):
                return tuple(int(e) for e in v) if len(v) == rank else tuple(int(v[0]) for _ in
                                                                             range(rank))
            return (int(v),) * rank

        kernel = weight.transpose(*range(2, rank + 2), 1, 0).astype(F32)  # (k..., C/g, F)
        self._f_convs = getattr(self, "_f_convs", 0) + 1
        mod = types.SimpleNamespace(
            out_channels=int(weight.shape[0]), groups=int(groups),
            bias=None if bias is None else self.torch.from_numpy(np.array(bias, F32)))
        pad = padding if isinstance(padding, str) else per_axis(padding)
        return self._conv(f"{what}_{self._f_convs}", mod, t, kernel,
                          tuple(int(k) for k in weight.shape[2:]), per_axis(stride),
                          per_axis(dilation), pad)

    def _special_table(self) -> dict:
        """Handlers of torch.special's functions that have a counterpart here (the others,
        gammaln, digamma, erfinv, the Bessel functions but i0, ..., are refused)."""
        sp = self.torch.special
        table = {
            sp.expit: lambda input: self.activation(input, "sigmoid"),  # noqa: A002
            sp.logit: lambda input, eps=None: self.logit(input, eps),  # noqa: A002
            sp.logsumexp: lambda input, dim, keepdim=False: self.stat(  # noqa: A002
                "logsumexp", input, dim, keepdim),
            sp.softmax: lambda input, dim, dtype=None: self.softmax(input, dim, dtype),  # noqa: A002
            sp.log_softmax: lambda input, dim, dtype=None: self.log_softmax(  # noqa: A002
                input, dim, dtype=dtype),
            sp.round: lambda input, decimals=0: self.unary(  # noqa: A002
                input, "round", decimals=decimals),
        }
        for name in ("erf", "erfc", "expm1", "exp2", "log1p", "sinc", "i0", "ndtr", "entr"):
            table[getattr(sp, name)] = lambda input, name=name: self.unary(input, name)  # noqa: A002
        for name in ("xlogy", "xlog1py"):
            table[getattr(sp, name)] = lambda input, other, name=name: self.binary(  # noqa: A002
                input, other, name)
        return table

    def _handler_table(self) -> dict:
        torch, F = self.torch, self.F
        table = {
            F.relu: lambda x, inplace=False: self.activation(x, "relu"),
            torch.relu: lambda x: self.activation(x, "relu"),
            F.gelu: lambda x, approximate="none": self.activation(
                x, "gelu_tanh" if approximate == "tanh" else "gelu"),
            F.silu: lambda x, inplace=False: self.activation(x, "silu"),
            torch.tanh: lambda x: self.activation(x, "tanh"),
            F.tanh: lambda x: self.activation(x, "tanh"),
            torch.sigmoid: lambda x: self.activation(x, "sigmoid"),
            F.sigmoid: lambda x: self.activation(x, "sigmoid"),
            F.leaky_relu: lambda x, negative_slope=0.01, inplace=False: self.activation(
                x, "leaky_relu", negative_slope),
            F.relu6: self._act_fn([({}, "relu6")]),
            F.hardswish: self._act_fn([({}, "hard_silu")]),
            F.hardsigmoid: self._act_fn([({}, "hard_sigmoid")]),
            F.mish: self._act_fn([({}, "mish")]),
            F.softsign: self._act_fn([({}, "softsign")]),
            F.selu: self._act_fn([({}, "selu")]),
            F.logsigmoid: self._act_fn([({}, "log_sigmoid")]),
            F.elu: self._act_fn(_ACT_VARIANTS["ELU"], "ELU"),
            F.celu: self._act_fn(_ACT_VARIANTS["CELU"], "CELU"),
            F.softplus: self._act_fn(_ACT_VARIANTS["Softplus"], "Softplus"),
            F.hardtanh: self._act_fn(_ACT_VARIANTS["Hardtanh"], "Hardtanh"),
            F.hardshrink: self._act_fn(_ACT_VARIANTS["Hardshrink"], "Hardshrink"),
            F.softshrink: self._act_fn(_ACT_VARIANTS["Softshrink"], "Softshrink"),
            F.softmax: lambda x, dim=None, _stacklevel=3, dtype=None: self.softmax(
                x, dim, dtype),
            torch.softmax: lambda x, dim, dtype=None: self.softmax(x, dim, dtype),
            F.dropout: self._dropout_fn(),
            torch.unflatten: lambda input, dim, sizes: self.unflatten(  # noqa: A002
                input, dim, sizes),
            torch.flatten: lambda x, start_dim=0, end_dim=-1: self.flatten(x, start_dim,
                                                                            end_dim),
            torch.reshape: lambda x, shape: self.reshape(x, (shape,)),
            F.max_pool2d: lambda x, kernel_size, stride=None, padding=0, dilation=1,
            ceil_mode=False, return_indices=False: self.pool(
                x, "max", kernel_size, stride, padding, dilation, ceil_mode),
            F.avg_pool2d: lambda x, kernel_size, stride=None, padding=0, ceil_mode=False,
            count_include_pad=True, divisor_override=None: self.pool(
                x, "avg", kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                divisor_override),
            F.adaptive_avg_pool1d: lambda x, output_size: self.adaptive(
                x, output_size, "avg", 1, "adaptive_avg_pool1d"),
            F.adaptive_avg_pool2d: lambda x, output_size: self.adaptive(
                x, output_size, "avg", 2, "adaptive_avg_pool2d"),
            # (with return_indices=True fx records *_with_indices, which does not convert)
            F.adaptive_max_pool1d: lambda x, output_size, return_indices=False: self.adaptive(
                x, output_size, "max", 1, "adaptive_max_pool1d"),
            F.adaptive_max_pool2d: lambda x, output_size, return_indices=False: self.adaptive(
                x, output_size, "max", 2, "adaptive_max_pool2d"),
            F.layer_norm: self._layer_norm_fn,
            F.log_softmax: lambda x, dim=None, _stacklevel=3, dtype=None: self.log_softmax(
                x, dim, dtype=dtype),
            torch.log_softmax: lambda x, dim, dtype=None: self.log_softmax(x, dim, dtype=dtype),
            F.softmin: lambda x, dim=None, _stacklevel=3, dtype=None: self.softmin(
                x, dim, dtype),
            F.pad: lambda x, pad, mode="constant", value=None: self.pad(x, pad, mode, value),
            F.unfold: lambda input, kernel_size, dilation=1, padding=0, stride=1: (  # noqa: A002
                self.im2col(input, kernel_size, dilation, padding, stride)),
            F.fold: lambda input, output_size, kernel_size, dilation=1, padding=0, stride=1: (  # noqa: A002
                self.im2col(input, kernel_size, dilation, padding, stride, output_size,
                            "fold")),
            F.pixel_shuffle: lambda x, upscale_factor: self.pixel_shuffle(
                x, upscale_factor, False, "pixel_shuffle"),
            F.pixel_unshuffle: lambda x, downscale_factor: self.pixel_shuffle(
                x, downscale_factor, True, "pixel_unshuffle"),
            F.glu: lambda x, dim=-1: self._glu_fn(x, dim),
            F.threshold: lambda x, threshold, value, inplace=False: self._threshold_fn(
                x, threshold, value),
            F.max_pool1d: lambda x, kernel_size, stride=None, padding=0, dilation=1,
            ceil_mode=False, return_indices=False: self.pool1d(
                x, "max", kernel_size, stride, padding, dilation, ceil_mode) if not
            return_indices else self._refuse("max_pool1d with return_indices=True"),
            F.avg_pool1d: lambda x, kernel_size, stride=None, padding=0, ceil_mode=False,
            count_include_pad=True: self.pool1d(x, "avg", kernel_size, stride, padding, 1,
                                                ceil_mode, count_include_pad),
            **({F.rms_norm: lambda x, normalized_shape, weight=None, eps=None: self.rms_norm(
                x, normalized_shape, weight, eps)} if hasattr(F, "rms_norm") else {}),
            F.group_norm: lambda x, num_groups, weight=None, bias=None, eps=1e-5: (
                self.group_norm(x, num_groups, eps, weight, bias)),
            F.interpolate: lambda x, size=None, scale_factor=None, mode="nearest",
            align_corners=None, recompute_scale_factor=None, antialias=False: self.upsample(
                x, size, scale_factor, mode, align_corners, antialias,
                recompute_scale_factor=recompute_scale_factor),
            operator.add: lambda a, b: self.binary(a, b, "add"),
            operator.iadd: lambda a, b: self.binary(a, b, "add"),
            torch.add: lambda input, other, alpha=1: self._arith(  # noqa: A002
                "add", input, other, alpha=alpha),
            operator.sub: lambda a, b: self.binary(a, b, "sub"),
            torch.sub: lambda input, other, alpha=1: self._arith(  # noqa: A002
                "sub", input, other, alpha=alpha),
            operator.mul: lambda a, b: self.binary(a, b, "mul"),
            operator.imul: lambda a, b: self.binary(a, b, "mul"),
            operator.isub: lambda a, b: self.binary(a, b, "sub"),
            operator.itruediv: lambda a, b: self.binary(a, b, "div"),
            torch.mul: lambda input, other: self.binary(input, other, "mul"),  # noqa: A002
            operator.truediv: lambda a, b: self.binary(a, b, "div"),
            torch.div: lambda input, other, rounding_mode=None: self._arith(  # noqa: A002
                "div", input, other, rounding_mode=rounding_mode),
            operator.floordiv: self._int_floordiv,
            operator.ifloordiv: self._int_floordiv,
            torch.mean: lambda *a, **k: self.reduce("mean", *a, **k),
            torch.sum: lambda *a, **k: self.reduce("sum", *a, **k),
            torch.amax: lambda *a, **k: self.reduce("amax", *a, **k),
            torch.max: lambda input, *a, **k: self.extreme(True, input, *a, **k),  # noqa: A002
            torch.min: lambda input, *a, **k: self.extreme(False, input, *a, **k),  # noqa: A002
            torch.maximum: lambda input, other: self.binary(input, other, "maximum"),  # noqa: A002
            torch.minimum: lambda input, other: self.binary(input, other, "minimum"),  # noqa: A002
            torch.argmax: lambda input, dim=None, keepdim=False: self.arg_extreme(  # noqa: A002
                True, input, dim, keepdim),
            torch.topk: self.topk,
            torch.sort: lambda input, dim=-1, descending=False, stable=False: self.sort(  # noqa: A002
                input, dim, descending, stable),
            torch.argsort: lambda input, dim=-1, descending=False, stable=False: self.argsort(  # noqa: A002
                input, dim, descending, stable),
            torch.take_along_dim: lambda input, indices, dim=None: self.take_along_dim(  # noqa: A002
                input, indices, dim),
            torch.argmin: lambda input, dim=None, keepdim=False: self.arg_extreme(  # noqa: A002
                False, input, dim, keepdim),
            **{getattr(torch, op): (lambda input, *a, op=op, **k: self.variance(  # noqa: A002
                op, input, *a, **k)) for op in ("var", "std", "var_mean", "std_mean")},
            torch.prod: lambda input, dim=None, keepdim=False, dtype=None: (  # noqa: A002
                self.stat("prod", input, dim, keepdim) if dtype is None
                else self._refuse("prod with a dtype")),
            torch.logsumexp: lambda input, dim, keepdim=False: self.stat(  # noqa: A002
                "logsumexp", input, dim, keepdim),
            torch.any: lambda input, dim=None, keepdim=False: self.stat(  # noqa: A002
                "any", input, dim, keepdim),
            torch.all: lambda input, dim=None, keepdim=False: self.stat(  # noqa: A002
                "all", input, dim, keepdim),
            torch.norm: lambda input, p="fro", dim=None, keepdim=False, out=None, dtype=None: (  # noqa: A002
                self.norm(input, p, dim, keepdim, dtype)),
            torch.linalg.norm: lambda input, ord=None, dim=None, keepdim=False, dtype=None: (  # noqa: A002
                self.norm(input, ord, dim, keepdim, dtype, matrix=True)),
            torch.linalg.vector_norm: lambda x, ord=2, dim=None, keepdim=False, dtype=None: (
                self.norm(x, ord, dim, keepdim, dtype)),
            F.cosine_similarity: self.cosine_similarity,
            F.pairwise_distance: self.pairwise_distance,
            F.batch_norm: self.f_batch_norm,
            F.instance_norm: self.f_instance_norm,
            F.prelu: lambda input, weight: self.prelu(input, weight),  # noqa: A002
            F.local_response_norm: self.local_response_norm,
            torch.cdist: self.cdist,
            F.affine_grid: self.affine_grid,
            torch.view_as_complex: self.view_as_complex,
            # (these of a complex tensor are complex_call's; of a real one:)
            torch.view_as_real: lambda input: self._refuse(  # noqa: A002
                "view_as_real of a real tensor (PyTorch refuses it)"),
            torch.real: lambda input: self._tensor(input, "real"),  # noqa: A002
            torch.imag: lambda input: self._refuse(  # noqa: A002
                "imag of a real tensor (PyTorch refuses it)"),
            torch.angle: lambda input: self._refuse("angle of a real tensor"),  # noqa: A002
            torch.conj: lambda input: self._tensor(input, "conj"),  # noqa: A002
            torch.resolve_conj: lambda input: self._tensor(input, "resolve_conj"),  # noqa: A002
            torch.resolve_neg: lambda input: self._tensor(input, "resolve_neg"),  # noqa: A002
            torch.fft.fft: functools.partial(self.fft, "fft"),
            torch.fft.ifft: functools.partial(self.fft, "ifft"),
            torch.fft.rfft: functools.partial(self.fft, "rfft"),
            torch.fft.irfft: functools.partial(self.fft, "irfft"),
            torch.stft: self.stft,
            F.lp_pool1d: functools.partial(self.lp_pool, 1),
            F.lp_pool2d: functools.partial(self.lp_pool, 2),
            F.grid_sample: self.grid_sample,
            F.bilinear: self.f_bilinear,
            torch.median: functools.partial(self.median, False),
            torch.nanmedian: functools.partial(self.median, True),
            torch.quantile: functools.partial(self.quantile, False),
            torch.nanquantile: functools.partial(self.quantile, True),
            F.one_hot: self.one_hot,
            torch.tril: lambda input, diagonal=0: self.tri(False, input, diagonal),  # noqa: A002
            torch.triu: lambda input, diagonal=0: self.tri(True, input, diagonal),  # noqa: A002
            torch.gather: lambda input, dim, index, **k: self.take(  # noqa: A002
                True, input, dim, index, **k),
            torch.index_select: lambda input, dim, index: self.take(  # noqa: A002
                False, input, dim, index),
            torch.scatter: functools.partial(self.scatter, "scatter"),
            torch.scatter_add: functools.partial(self.scatter, "scatter_add"),
            torch.scatter_reduce: functools.partial(self.scatter, "scatter_reduce"),
            torch.index_add: functools.partial(self.index_add, "add"),
            torch.index_copy: functools.partial(self.index_add, "copy"),
            torch.index_fill: functools.partial(self.index_add, "fill"),
            F.embedding: self.f_embedding,
            F.embedding_bag: self.f_embedding_bag,
            torch.diff: self.diff,
            torch.outer: lambda input, vec2: self.binary(  # noqa: A002
                self.unsqueeze(input, 1), self.unsqueeze(vec2, 0), "mul"),
            torch.transpose: lambda input, dim0, dim1: self.transpose(input, dim0, dim1),  # noqa: A002
            torch.permute: lambda input, dims: self.permute(input, dims),  # noqa: A002
            torch.nan_to_num: lambda input, nan=0.0, posinf=None, neginf=None: (  # noqa: A002
                self.nan_to_num(input, nan, posinf, neginf)),
            torch.amin: lambda *a, **k: self.reduce("amin", *a, **k),
            F.scaled_dot_product_attention: self._sdpa_fn(),
            operator.neg: lambda x: self.unary(x, "neg"),
            operator.abs: lambda x: self.unary(x, "abs"),  # abs(x): ModernBERT
            operator.invert: lambda x: self.unary(x, "bitwise_not"),  # ~mask
            **{fn: (lambda a, b, op=op: self.binary(a, b, op)) for fn, op in (
                (operator.and_, "bitwise_and"), (operator.or_, "bitwise_or"),
                (operator.xor, "bitwise_xor"))},
            **{getattr(torch, op): (lambda input, other, op=op: self.binary(  # noqa: A002
                input, other, op)) for op in _LOGICAL},
            F.linear: lambda x, weight, bias=None: self.f_linear(x, weight, bias),
            F.conv1d: functools.partial(self.f_conv, 1),
            F.conv2d: functools.partial(self.f_conv, 2),
            F.conv3d: functools.partial(self.f_conv, 3),
            torch.swapaxes: lambda input, axis0, axis1: self.transpose(  # noqa: A002
                input, axis0, axis1),
            torch.swapdims: lambda input, dim0, dim1: self.transpose(  # noqa: A002
                input, dim0, dim1),
            torch.bmm: functools.partial(self.matmul, strict="bmm"),
            torch.mm: functools.partial(self.matmul, strict="mm"),
            torch.einsum: self.einsum,
            torch.where: lambda condition, input=None, other=None: self.where(  # noqa: A002
                condition, input, other),
            torch.stack: lambda tensors, dim=0: self.stack(tensors, dim),
            F.normalize: lambda input, p=2.0, dim=1, eps=1e-12, out=None: self.normalize(  # noqa: A002
                input, p, dim, eps),
            torch.flip: lambda input, dims: self.flip(input, dims),  # noqa: A002
            torch.cumsum: lambda input, dim, dtype=None: self.cumsum(input, dim, dtype),  # noqa: A002
            torch.cumprod: lambda input, dim, dtype=None: self.cumprod(input, dim, dtype),  # noqa: A002
            torch.logcumsumexp: lambda input, dim: self.logcumsumexp(input, dim),  # noqa: A002
            torch.cummax: lambda input, dim: self.cum_extreme(True, input, dim),  # noqa: A002
            torch.cummin: lambda input, dim: self.cum_extreme(False, input, dim),  # noqa: A002
            torch.count_nonzero: lambda input, dim=None: self.count_nonzero(input, dim),  # noqa: A002
            torch.logit: lambda input, eps=None: self.logit(input, eps),  # noqa: A002
            **{getattr(torch, f"atleast_{r}d"): functools.partial(self.at_least, r)
               for r in (1, 2, 3)},
            # (with a list or tuple torch.atleast_*d calls _VF's, which fx records)
            **{getattr(torch._VF, f"atleast_{r}d"): functools.partial(self.at_least, r)
               for r in (1, 2, 3) if hasattr(torch._VF, f"atleast_{r}d")},
            **{getattr(torch, kind): (lambda tensors, kind=kind: self.stack_along(
                kind, tensors)) for kind in ("hstack", "vstack", "row_stack", "dstack",
                                             "column_stack") if hasattr(torch, kind)},
            **{getattr(torch, op): (lambda input, other, op=op: self.binary(  # noqa: A002
                input, other, op)) for op in _MORE_BINARY if hasattr(torch, op)},
            **self._special_table(),
            torch.movedim: lambda input, source, destination: self.movedim(  # noqa: A002
                input, source, destination),
            torch.moveaxis: lambda input, source, destination: self.movedim(  # noqa: A002
                input, source, destination),
            torch.tile: lambda input, dims: self.tile(input, dims),  # noqa: A002
            torch.narrow: lambda input, dim, start, length: self.narrow(  # noqa: A002
                input, dim, start, length),
            torch.select: lambda input, dim, index: self.select(input, dim, index),  # noqa: A002
            torch.tensor_split: lambda input, *a, **k: self.tensor_split(input, *a, **k),  # noqa: A002
            torch.lerp: lambda input, end, weight: self.lerp(input, end, weight),  # noqa: A002
            torch.addcmul: lambda input, tensor1, tensor2, *, value=1: self.addc(  # noqa: A002
                "addcmul", input, tensor1, tensor2, value=value),
            torch.addcdiv: lambda input, tensor1, tensor2, *, value=1: self.addc(  # noqa: A002
                "addcdiv", input, tensor1, tensor2, value=value),
            torch.fmod: lambda input, other: self.binary(input, other, "fmod"),  # noqa: A002
            torch.remainder: lambda input, other: self.binary(input, other, "remainder"),  # noqa: A002
            operator.mod: lambda a, b: self.binary(a, b, "remainder"),
            torch.atan2: lambda input, other: self.binary(input, other, "atan2"),  # noqa: A002
            torch.arctan2: lambda input, other: self.binary(input, other, "atan2"),  # noqa: A002
            torch.roll: lambda input, shifts, dims=None: self.roll(input, shifts, dims),  # noqa: A002
            torch.unsqueeze: lambda x, dim: self.unsqueeze(x, dim),
            torch.unbind: lambda input, dim=0: self.unbind(input, dim),  # noqa: A002
            torch.addmm: self.addmm,
            torch.baddbmm: self.baddbmm,
            torch.repeat_interleave: self.repeat_interleave,
            torch.squeeze: lambda x, dim=None: self.squeeze(x, dim),
            math.sqrt: self._math_sqrt,
            torch._assert: self._assert,
            _specialized: self._specialized,
            operator.not_: self._not,
            operator.pow: lambda a, b: self.binary(a, b, "pow"),
            operator.ipow: lambda a, b: self.binary(a, b, "pow"),
            torch.pow: lambda x, exponent: self.binary(x, exponent, "pow"),
            torch.clamp: lambda x, min=None, max=None: self.clamp(x, min, max),
            torch.clip: lambda x, min=None, max=None: self.clamp(x, min, max),
            **{getattr(operator, op): (lambda a, b, op=op: self.compare(a, b, op))
               for op in ("eq", "ne", "lt", "le", "gt", "ge")},
            **{getattr(torch, name): (lambda input, name=name, **k: self.unary(  # noqa: A002
                input, name, **k)) for name in _UNARY},
            operator.matmul: self.matmul,
            torch.matmul: self.matmul,
            torch.split: lambda tensor, split_size_or_sections, dim=0: self.split(
                tensor, split_size_or_sections, dim),
            torch.chunk: lambda x, chunks, dim=0: self.chunk(x, chunks, dim),
            torch.arange: self.arange,
            torch.tensor: self.tensor_of,
            operator.setitem: self.set_item,
            # computed by PyTorch at conversion when their arguments are constants (_fold)
            torch.meshgrid: self._meshgrid_of_inputs,
            # (torch.meshgrid([a, b]) with a list: fx records the call inside, _VF's)
            torch._VF.meshgrid: self._meshgrid_of_inputs,
            torch.eye: self.eye,
            # (the size by position or as size=...: torch.zeros(size=(n, n)))
            torch.zeros: lambda *size, **kw: self.full(size or (kw.pop("size"),), 0, **kw),
            torch.ones: lambda *size, **kw: self.full(size or (kw.pop("size"),), 1, **kw),
            torch.full: lambda size, fill_value, **kw: self.full((size,), fill_value, **kw,
                                                                 infer=True),
            torch.zeros_like: lambda x, **kw: self.full_like(x, 0, **kw),
            torch.ones_like: lambda x, **kw: self.full_like(x, 1, **kw),
            torch.full_like: lambda x, fill_value, **kw: self.full_like(x, fill_value, **kw),
            torch.clone: lambda x, **kw: x,
            torch.cat: lambda tensors, dim=0: self.cat(tensors, dim),
            torch.concat: lambda tensors, dim=0: self.cat(tensors, dim),
            operator.getitem: self.getitem,
            getattr: self._getattr,
        }
        if hasattr(torch, "concatenate"):
            table[torch.concatenate] = lambda tensors, axis=0: self.cat(tensors, axis)
        # fx's check that an argument left at its default None is None at run time
        assert_none = getattr(getattr(torch.fx, "_symbolic_trace", None), "_assert_is_none",
                              None)
        if assert_none is not None:
            table[assert_none] = lambda value, *args, **kwargs: None
        return table

    def param_activation(self, x: Any, module: str, values: dict) -> _T:
        """An activation module's formula at parameter values no Keras activation takes
        (torch_param_activation), elementwise on the tensor as stored."""
        params = _param_values(module, values)
        if params is None:
            raise TorchConversionError(f"from_torch: {module} with {values} ({_PARAM_RULE})")
        t = self._tensor(x, module)
        refused = (
            "of an integer tensor" if t.sym.dtype.kind in "iub" and module != "Hardtanh"
            else "with min_val > max_val" if module == "Hardtanh" and params[0] > params[1]
            else "with a negative lambd" if module == "Softshrink" and params[0] < 0 else None)
        if refused:
            raise TorchConversionError(f"from_torch: {module} {refused} (PyTorch refuses it "
                                       "too)")
        return _T(torch_param_activation(t.sym, module, params), t.cl)

    def _act_fn(self, variants: list, module: str | None = None) -> Any:
        """A handler for an activation function of torch.nn.functional: Keras's activation of
        the variant (parameter values in PyTorch's order, activation) its arguments match,
        else the module's own formula at those values (param_activation). Its
        ``argument_problems`` lets ``check`` list bad arguments with the other problems."""
        order = list(dict.fromkeys(k for params, _ in variants for k in params))

        def values(args: tuple, kwargs: dict) -> dict:
            return dict(zip(order, args), **{k: v for k, v in kwargs.items() if k != "inplace"})

        def argument_problems(args: tuple, kwargs: dict) -> str | None:
            given = values(args, kwargs)
            unknown = [k for k in given if k not in order]
            if not unknown and (_variant(variants, given) is not None or (
                    module is not None and _param_values(module, given) is not None)):
                return None
            shown = ", ".join(f"{k}={v!r}" for k, v in given.items())
            return f"{shown} ({_PARAM_RULE})" if order else shown

        def run(x: Any, *args: Any, **kwargs: Any) -> _T:
            bad = argument_problems(args, kwargs)
            if bad is not None:
                raise TorchConversionError(f"from_torch: arguments {bad} are not supported")
            given = values(args, kwargs)
            act = _variant(variants, given)
            if act is None and module is not None:
                return self.param_activation(x, module, given)
            return self.activation(x, act)

        run.argument_problems = argument_problems  # type: ignore[attr-defined]
        return run

    def _dropout_fn(self) -> Any:
        """F.dropout: the identity when ``training`` is false (``training=self.training`` in
        eval mode); with its default True PyTorch drops at random even in eval mode, which
        ``check`` lists with the other problems."""
        def run(x: Any, p: Any = 0.5, training: Any = True, inplace: Any = False) -> Any:
            if training:
                raise TorchConversionError("from_torch: F.dropout with training=True")
            return x

        def argument_problems(args: tuple, kwargs: dict) -> str | None:
            if _dropout_training((None, *args), kwargs):
                return ("training=True (PyTorch drops at random even in eval mode; pass "
                        "training=self.training)")
            return None

        run.argument_problems = argument_problems  # type: ignore[attr-defined]
        return run

    def _sdpa_fn(self) -> Any:
        """The handler of F.scaled_dot_product_attention, whose ``argument_problems`` lets
        ``check`` list a dropout or a non-constant flag with the other problems."""
        def run(*args: Any, **kwargs: Any) -> _T:
            return self.sdpa(*args, **kwargs)

        def argument_problems(args: tuple, kwargs: dict) -> str | None:
            # (a flag computed from sizes, HuggingFace's is_causal = q_length > 1 and ...,
            # is known only at conversion, and checked there)
            named = ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
            given = {**dict(zip(named, args[2:])), **kwargs}
            return _sdpa_problems(**{k: v for k, v in given.items() if k in named and not (
                isinstance(v, self.torch.fx.Node) and v.meta.get("fl_sized"))})

        run.argument_problems = argument_problems  # type: ignore[attr-defined]
        return run

    def _glu_fn(self, x: Any, dim: int) -> _T:
        t = self._tensor(x, "glu")
        return _T(torch_glu(t.sym, _axis_in_layout(t, int(dim))), t.cl)

    def _threshold_fn(self, x: Any, threshold: float, value: float) -> _T:
        t = self._tensor(x, "threshold")
        return _T(torch_threshold(t.sym, float(threshold), float(value)), t.cl)

    def _refuse(self, what: str) -> Any:
        raise TorchConversionError(f"from_torch: {what} is not supported")

    def _assert(self, condition: Any, message: Any = None) -> None:
        """``assert`` in a forward (traced as torch._assert): checked at conversion when it
        is about sizes and numbers; an assert on tensor values is refused."""
        if isinstance(condition, _Unknown):
            return None  # about the batch size: PyTorch checks it at run time, not here
        if isinstance(condition, (_T, _Dim)):
            raise TorchConversionError(
                "from_torch: an assert on tensor values (checked only at run time in PyTorch)"
            )
        if not bool(np.all(condition)):
            raise ValueError(f"from_torch: the module's assert fails for the examples: "
                             f"{message}")

    def _specialized(self, value: Any, expected: Any, where: str) -> None:
        """A branch, int() or float() the trace decided with the examples' sizes (_trace):
        refused when it depends on the batch size, else checked. A test of whether the batch
        is 0 or 1 (_Assumed) is taken as for 2 or more rows, and from_torch checks batch 1."""
        if isinstance(value, _Assumed):
            if type(expected)(value.value) != expected:
                raise _BatchOfOne(
                    f"from_torch: {where or 'the forward'} decides whether the batch size is 1, "
                    "and the examples have 1 row: convert with examples of 2 or more rows")
            self.assumed.append(where or "the forward")
            return
        batch, tensor = _run_time_leaves(self.torch, value)
        if batch:
            raise TorchConversionError(
                f"from_torch: {where or 'the forward'} decides on the batch size (an if, "
                "int(), float() or range() of it, or torch.tensor of it), which the "
                "converted model leaves free")
        if tensor:
            raise TorchConversionError(
                f"from_torch: {where or 'the forward'} decides on tensor values")
        _specialized(value, expected, where)

    def _not(self, x: Any) -> Any:
        """``not cond`` of a traced ``assert not cond`` (_trace)."""
        if isinstance(x, _Assumed):
            return _Assumed(not x.value)
        if isinstance(x, _Unknown):
            return x
        if isinstance(x, (_T, _Dim)):
            raise TorchConversionError("from_torch: `not` of a tensor or of the batch size")
        return not bool(np.all(x))

    def _math_sqrt(self, x: Any) -> float:
        """``math.sqrt`` of a size known at conversion (an attention scale)."""
        if isinstance(x, (int, float, np.integer, np.floating)):
            return math.sqrt(x)
        raise TorchConversionError(
            "from_torch: math.sqrt is supported on sizes known at conversion (Python numbers)"
        )

    def _int_floordiv(self, a: Any, b: Any) -> Any:
        if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
            return int(a) // int(b)
        if isinstance(a, _Dim):
            return a.then("floordiv", b)  # q.size(0) // heads: computed at run time
        if isinstance(a, _T) or isinstance(b, _T):
            return self.binary(a, b, "floor_div")  # x // 2 on a tensor: PyTorch's floor
        raise TorchConversionError(
            "from_torch: // is supported on sizes known at conversion (Python ints) only"
        )

    def _arith(self, op: str, a: Any, other: Any, alpha: Any = 1,
               rounding_mode: Any = None) -> Any:
        """torch.add / sub (a +- alpha * other, the product rounded first) and div, as
        functions and as methods."""
        if rounding_mode is not None:
            if op != "div" or rounding_mode not in ("floor", "trunc"):
                self._refuse(f"{op} with rounding_mode={rounding_mode!r}")
            op = f"{rounding_mode}_div"  # Wav2Vec2's output lengths from its input lengths
        if alpha != 1:
            other = self.binary(other, alpha, "mul")
        return self.binary(a, other, op)

    def _getattr(self, obj: Any, name: str) -> Any:
        if isinstance(obj, _T) and name == "shape":
            return self.size(obj)
        if isinstance(obj, _T) and name == "ndim":
            return obj.ndim
        if isinstance(obj, _T) and name == "device":
            return None  # only passed on (torch.arange(..., device=x.device)): one device
        if isinstance(obj, _ValuesIndices) and name in ("values", "indices"):
            return getattr(obj, name)
        if isinstance(obj, _T) and name == "mT":
            return self.transpose(obj, -2, -1)
        if isinstance(obj, _T) and name == "T":
            return obj if obj.ndim < 2 else self.permute(obj, tuple(range(obj.ndim))[::-1])
        if isinstance(obj, _T) and name == "dtype":
            return obj.sym.dtype  # passed on to .to(dtype=...), torch.full(..., dtype=...)
        if isinstance(obj, _T) and name == "data":
            return obj  # the same values, without autograd (none here)
        raise TorchConversionError(f"from_torch: attribute {name!r} of a tensor")

    def method(self, name: str, x: Any, *args: Any, **kwargs: Any) -> Any:
        if name in _IN_PLACE_METHODS:  # x.mul_(s): x.mul(s), which later reads of x read
            out = self.method(name[:-1], x, *args, **kwargs)
            before, after = (v.sym.dtype if isinstance(v, _T) else None for v in (x, out))
            if before != after:
                raise TorchConversionError(
                    f"from_torch: Tensor.{name} of a {before} tensor gives {after}")
            if isinstance(x, _T) and isinstance(out, _T) and x.torch_shape != out.torch_shape:
                raise TorchConversionError(  # (a broadcast the tensor cannot hold)
                    f"from_torch: Tensor.{name} of a tensor of shape {x.torch_shape} gives "
                    f"shape {out.torch_shape} (PyTorch refuses it too)")
            return out
        if name in ("relu", "sigmoid", "tanh"):
            return self.activation(x, name)
        if name == "stft":
            return self.stft(x, *args, **kwargs)
        if name in ("conj", "resolve_conj", "resolve_neg"):  # (of a complex one: complex_call)
            return self._tensor(x, name)
        if name == "angle":
            self._refuse("angle of a real tensor")
        if name == "softmax":
            dim = args[0] if args else kwargs.get("dim")
            return self.softmax(x, dim, args[1] if len(args) > 1 else kwargs.get("dtype"))
        if name in _SIZES_KEYWORD and not args and _SIZES_KEYWORD[name] in kwargs:
            # x.view(size=(2, 3)) as x.view((2, 3)); x.permute(dims=...), x.expand(size=...)
            args = (kwargs.pop(_SIZES_KEYWORD[name]),)
        if name in ("view", "reshape"):
            if kwargs:
                raise TypeError(f"Tensor.{name} got unexpected keywords {sorted(kwargs)}")
            return self.reshape(x, args)
        if name == "flatten":
            return self.flatten(x, *args, **kwargs)
        if name == "unflatten":
            return self.unflatten(x, *args, **kwargs)
        if name == "size":
            return self.size(x, *args, **kwargs)
        if name == "dim":
            return self._tensor(x, "dim").ndim
        if name == "flip":
            return self.flip(x, args if len(args) != 1 else args[0]) if args else self.flip(
                x, kwargs["dims"])
        if name == "cumsum":
            return self.cumsum(x, *args, **kwargs)
        if name in ("cumprod", "movedim", "moveaxis", "tile", "narrow", "select",
                    "tensor_split", "lerp", "sort", "argsort", "take_along_dim"):
            return getattr(self, {"moveaxis": "movedim"}.get(name, name))(x, *args, **kwargs)
        if name in ("addcmul", "addcdiv"):
            return self.addc(name, x, *args, **kwargs)
        if name in ("median", "nanmedian"):
            return self.median(name == "nanmedian", x, *args, **kwargs)
        if name in ("quantile", "nanquantile"):
            return self.quantile(name == "nanquantile", x, *args, **kwargs)
        if name in ("fmod", "remainder", "atan2", "arctan2", *_MORE_BINARY):
            other = args[0] if args else kwargs["other"]
            return self.binary(x, other, "atan2" if name == "arctan2" else name)
        if name == "logit":
            return self.logit(x, *args, **kwargs)
        if name == "logcumsumexp":
            return self.logcumsumexp(x, *args, **kwargs)
        if name in ("cummax", "cummin"):
            return self.cum_extreme(name == "cummax", x, *args, **kwargs)
        if name == "count_nonzero":
            return self.count_nonzero(x, *args, **kwargs)
        if name == "roll":
            return self.roll(x, *args, **kwargs)
        if name == "unfold":
            return self.windows(x, *args, **kwargs)
        if name == "__getitem__":  # a buffer (a tensor while tracing) indexed by a size
            return self.getitem(x, *args)
        if name in ("contiguous", "detach", "clone"):
            return x  # a converted graph has no storage to share or gradients to keep
        if name == "to":
            return self.to(x, *args, **kwargs)
        if name == "repeat":
            return self.repeat(x, *args, **kwargs)
        if name in ("add", "sub", "mul", "div"):
            return self._arith(name, x, *args, **kwargs)
        if name == "permute":
            return self.permute(x, *args, **kwargs)
        if name in ("transpose", "swapaxes", "swapdims"):
            return self._swap(x, *args, **kwargs)
        if name in _REDUCTIONS:
            return self.reduce(name, x, *args, **kwargs)
        if name in ("max", "min"):
            return self.extreme(name == "max", x, *args, **kwargs)
        if name in ("argmax", "argmin"):
            return self.arg_extreme(name == "argmax", x, *args, **kwargs)
        if name == "topk":
            return self.topk(x, *args, **kwargs)
        if name in ("maximum", "minimum"):
            return self.binary(x, args[0] if args else kwargs["other"], name)
        if name in ("var", "std"):
            return self.variance(name, x, *args, **kwargs)
        if name in ("prod", "logsumexp", "any", "all"):
            return self._function_handler(getattr(self.torch, name))(x, *args, **kwargs)
        if name == "norm":
            return self.norm(x, *args, **kwargs)
        if name in ("tril", "triu"):
            return self.tri(name == "triu", x, *args, **kwargs)
        if name in ("gather", "index_select"):
            return self.take(name == "gather", x, *args, **kwargs)
        if name in ("scatter", "scatter_add", "scatter_reduce"):
            return self.scatter(name, x, *args, **kwargs)
        if name in ("index_add", "index_copy", "index_fill"):
            return self.index_add(name[6:], x, *args, **kwargs)
        if name in ("view_as", "reshape_as", "expand_as"):
            return self.like(name[:-3], x, *args, **kwargs)
        if name == "t":
            t = self._tensor(x, "t")
            return t if t.ndim < 2 else self.transpose(t, 0, 1)
        if name == "numel":
            return self.numel(x)
        if name == "type" and (args or kwargs):
            return self.cast(x, args[0] if args else kwargs["dtype"])
        if name == "log_softmax":
            dim = args[0] if args else kwargs.get("dim")
            if dim is None:
                self._refuse("Tensor.log_softmax without a dim")
            return self.log_softmax(x, dim, dtype=args[1] if len(args) > 1
                                    else kwargs.get("dtype"))
        if name == "diff":
            return self.diff(x, *args, **kwargs)
        if name == "nan_to_num":
            return self.nan_to_num(x, *args, **kwargs)
        if name == "new_tensor":
            dtype = kwargs.get("dtype")
            np_dtype = self._tensor(x, "new_tensor").sym.dtype if dtype is None else _np_dtype(
                dtype)
            if np_dtype is None or set(kwargs) - {"data", "dtype", "device", "requires_grad"}:
                self._refuse(f"Tensor.new_tensor with {kwargs}")
            return np.asarray(args[0] if args else kwargs["data"], dtype=np_dtype)
        if name == "split":
            return self.split(x, *args, **kwargs)
        if name == "chunk":
            return self.chunk(x, *args, **kwargs)
        if name == "unbind":
            return self.unbind(x, *args, **kwargs)
        if name in ("new_zeros", "new_ones"):
            size = args if len(args) != 1 else args[0]
            if not args:
                size = kwargs.pop("size")
            return self.new_full(x, size, 0 if name == "new_zeros" else 1, **kwargs)
        if name == "new_full":
            return self.new_full(x, *args, **kwargs)
        if name in ("matmul", "bmm", "mm"):
            return self.matmul(x, *args, strict=None if name == "matmul" else name, **kwargs)
        if name == "repeat_interleave":
            return self.repeat_interleave(x, *args, **kwargs)
        if name == "baddbmm":
            return self.baddbmm(x, *args, **kwargs)
        if name in _UNARY:
            return self.unary(x, name, *args, **kwargs)  # (round's decimals; others refused)
        if name == "pow":
            return self.binary(x, args[0] if args else kwargs["exponent"], "pow")
        if name in _LOGICAL:
            return self.binary(x, args[0] if args else kwargs["other"], name)
        if name in ("clamp", "clip"):
            return self.clamp(x, *args, **kwargs)
        if name in ("clamp_min", "clamp_max"):
            bound = args[0] if args else kwargs["min" if name == "clamp_min" else "max"]
            return self.clamp(x, bound, None) if name == "clamp_min" else self.clamp(x, None,
                                                                                  bound)
        if name in ("eq", "ne", "lt", "le", "gt", "ge"):
            return self.compare(x, args[0] if args else kwargs["other"], name)
        if name == "masked_fill":
            return self.masked_fill(x, *args, **kwargs)
        if name in ("float", "long", "int", "bool", "double", "half"):
            # (float64 and float16 computed in float32, as every float here: _CAST_DTYPES)
            return self.cast(x, {"float": "float32", "long": "int64", "int": "int64",
                                 "bool": "bool", "double": "float32",
                                 "half": "float32"}[name])
        if name == "cpu":
            return x  # a converted model's arrays are on the CPU
        if name == "unsqueeze":
            return self.unsqueeze(x, *args, **kwargs)
        if name == "squeeze":
            return self.squeeze(x, *args, **kwargs)
        if name == "expand":
            return self.expand(x, *args, **kwargs)
        if name == "type_as":
            other = args[0] if args else kwargs["other"]
            dtype = other.dtype if isinstance(other, np.ndarray) else self._tensor(
                other, "type_as").sym.dtype
            return self.cast(x, dtype)
        raise TorchConversionError(f"from_torch: Tensor.{name}")  # pragma: no cover


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


def _batch_axis(torch: Any, gm: Any, node: Any) -> int | None:
    """The axis of input ``node`` that is the batch (left free in the converted model), from
    how the module uses it: seq-first recurrent and attention inputs and recurrent states
    carry the batch on axis 1, an attention mask carries none; 0 when nothing says."""
    axis = _batch_axis_used(torch, gm, node, 0)
    return 0 if axis is _UNSEEN else axis


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
    return weak[0] if weak else _UNSEEN


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


def from_torch(module: Any, example_inputs: Any = None, name: str | None = None) -> TorchModel:
    """Convert a PyTorch ``nn.Module`` to a fastlayers model that runs without PyTorch.

    The module is traced with ``torch.fx`` (its ``forward`` must be traceable: no Python
    control flow on tensor values or on the batch size; what the examples fix, such as a
    shape's length, ranks, dtypes and the other sizes, may be used in Python code, see
    docs/semantics.md §24); its parameters and buffers are read in eval mode
    (BatchNorm running statistics, Dropout as identity). The converted model is called
    like the module, with arrays in PyTorch's layouts (NCHW images, NCL sequences,
    (T, B, F) for seq-first recurrent layers), and returns the module's output structure
    as float32 NumPy arrays. Inside it computes in fastlayers' layouts (NHWC), with one
    transpose at each edge. It pickles, and unpickles and runs without torch.

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : tensor, array, or tuple of them
        One example per positional argument of ``forward`` (arguments left out keep
        their defaults). Their shapes fix every input axis but the batch axis, which
        stays free. Without examples, the shapes are inferred when each input goes
        first to a Linear, LSTM/GRU/RNN, MultiheadAttention, TransformerEncoderLayer or
        Embedding; otherwise a ValueError asks for examples.
    name : str, optional
        The converted model's name.

    Returns
    -------
    TorchModel

    Raises
    ------
    ImportError
        torch is not installed (``pip install "fastlayers[torch]"``).
    TorchConversionError
        (a NotImplementedError) listing every module and call that does not convert,
        by qualified name, e.g. ``layer3.0.pool (torch.nn.FractionalMaxPool2d)``.

    What converts is listed in docs/semantics.md §24.
    """
    try:
        import torch
        import torch.fx
    except ImportError as e:  # pragma: no cover - exercised without torch
        raise ImportError(
            "fastlayers.from_torch needs PyTorch to read the module (only to convert; the "
            "converted model runs without it): pip install \"fastlayers[torch]\""
        ) from e
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: module must be a torch.nn.Module, got "
                        f"{type(module).__name__}")
    module = _unwrapped(torch, module)
    if example_inputs is not None and not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    _refuse_bfloat16(torch, module, example_inputs)
    examples = None if example_inputs is None else [
        _to_numpy_input(torch, x) for x in example_inputs]

    training = {m: m.training for m in module.modules()}
    module.eval()
    # HuggingFace models inside the module (a user's wrapper around a GPT-2 that does not
    # pass use_cache=False) traced without a KV cache too: their configs' use_cache False
    # while converting (restored after)
    configs = {id(c): (c, c.use_cache) for m in module.modules() if _from_transformers(m)
               for c in [getattr(m, "config", None)]
               if c is not None and getattr(c, "use_cache", None) is True}
    for config, _ in configs.values():
        config.use_cache = False
    try:
        hooked = _run_or_refuse_hooks(torch, module)
        try:
            model, conv, axes = _convert(torch, module, examples, name, hooked)
        except _BatchOfOne as e:
            # a branch on whether the batch is 1, which 1-row examples take for 1 row: the
            # trace of 2 rows (the same examples twice) takes the path of any larger batch
            axes = e.axes
            model, conv, axes = _convert(torch, module, _take_rows(examples, axes, [0, 0]),
                                         name, hooked)
        if conv.assumed:
            rows = _rows(examples, axes)
            for row in range(min(rows, 4)):  # (1-row examples were traced as 2: row 0)
                _check_batch_of_one(torch, module, model, _take_rows(examples, axes, [row]),
                                    conv.assumed)
        return model
    finally:
        for m, flag in training.items():
            m.train(flag)
        for config, flag in configs.values():
            config.use_cache = flag


def _unwrapped(torch: Any, module: Any) -> Any:
    """The module a training or compiling wrapper holds (nn.DataParallel's and
    DistributedDataParallel's ``module``, torch.compile's original), which is what runs; a
    TorchScript module and torch.export's ``module()``, which torch.fx cannot trace, are
    refused by name."""
    nn = torch.nn
    while True:
        if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            module = module.module
        elif type(module).__name__ == "OptimizedModule" and isinstance(
                getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            break
    if isinstance(module, torch.jit.ScriptModule):
        raise TorchConversionError(
            "from_torch: a TorchScript module (torch.jit.script, trace or load) holds compiled "
            "code, which torch.fx cannot trace: convert the Python nn.Module it was made from "
            "(with its state_dict loaded)")
    if isinstance(module, torch.fx.GraphModule) and hasattr(module, "_in_spec"):
        raise TorchConversionError(
            "from_torch: the module of a torch.export program cannot be traced again by "
            "torch.fx: convert the nn.Module that was exported")
    return module


@contextlib.contextmanager
def _tensor_attributes_as_buffers(torch: Any, module: Any) -> Iterator[None]:
    """Tensors kept as plain attributes of the module or its submodules (``self.pe = pe``
    where ``register_buffer`` was meant, Llama's ``self.freqs_cis``) registered as
    non-persistent buffers for _trace's second trace, then put back as they were: that trace
    records them as graph attributes, as the buffers, so that a size read from an input can
    slice one (``self.pe[:, :x.size(1)]``); as plain tensors fx's trace fails there."""
    moved = []
    try:
        for mod in module.modules():
            for key, value in list(vars(mod).items()):
                if (isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter)
                        and not key.startswith("__") and key not in mod._buffers
                        and not hasattr(type(mod), key)):  # (register_buffer refuses those)
                    del mod.__dict__[key]
                    moved.append((mod, key, value))
                    try:
                        mod.register_buffer(key, value, persistent=False)
                    except (KeyError, TypeError, AttributeError):  # left as it was
                        moved.pop()
                        mod.__dict__[key] = value
        yield
    finally:
        for mod, key, value in moved:
            mod._buffers.pop(key, None)
            mod._non_persistent_buffers_set.discard(key)
            mod.__dict__[key] = value


def _record_class_hint(target: Any) -> str:
    """What to say of a call fx recorded that builds a NamedTuple or a dataclass (a forward
    returning ``Pred(logits, emb)``), else ''."""
    import dataclasses

    if isinstance(target, type) and (
            (issubclass(target, tuple) and hasattr(target, "_fields"))
            or dataclasses.is_dataclass(target)):
        kind = "a dataclass" if dataclasses.is_dataclass(target) else "a NamedTuple"
        return (f": {kind}, which a converted model does not return (it returns arrays in "
                "tuples, lists and dicts): return a tuple or a dict of the tensors instead")
    return ""


def _weight_hook(torch: Any, hook: Any) -> bool:
    """Whether a forward pre-hook is one of torch's that recompute a weight from others
    before each call (old-style ``weight_norm``, ``spectral_norm``, and ``prune``): it reads
    no input and writes only that plain attribute."""
    from torch.nn.utils import prune
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    return isinstance(hook, (WeightNorm, SpectralNorm, prune.BasePruningMethod))


def _run_or_refuse_hooks(torch: Any, module: Any) -> dict[int, str]:
    """The forward hooks of ``module`` (in eval mode) that the converted model would lose:
    those on the module itself and global ones refused here, those on its torch.nn layers
    returned ({id(layer): what}) for _refuse_hooked, once the trace says which layers the
    forward calls; torch's weight-recomputing pre-hooks (_weight_hook) run once first. An
    uninitialized lazy module (LazyLinear: PyTorch's own pre-hook makes its weights on the
    first call) is refused with that said.

    fx traces through ``Module.__call__`` of a module it traces into, hooks included, but a
    torch.nn layer is one node (converted from its weights) and the module converted is
    traced from its ``forward``: their hooks would not run. A weight that a pre-hook
    recomputes before each call (``weight = g * v / |v|`` of old-style ``weight_norm``) is
    stale until the next forward (after ``load_state_dict``, the constructor's), so the hook
    runs here as that forward would run it (spectral_norm in eval mode: no power
    iteration)."""
    from torch.nn.modules import module as module_mod
    from torch.nn.modules.lazy import LazyModuleMixin

    problems = []
    if module_mod._global_forward_hooks or module_mod._global_forward_pre_hooks:
        problems.append("global forward hooks (torch.nn.modules.module."
                        "register_module_forward_hook / register_module_forward_pre_hook)")
    tracer = torch.fx.Tracer()
    hooked: dict[int, str] = {}
    for qual, m in module.named_modules():
        if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params():
            raise TorchConversionError(
                f"from_torch: {repr(qual) if qual else 'the module'} ({type(m).__name__}) "
                "has not been initialized: call the module once on an input before "
                "converting it")
        pre, post = list(m._forward_pre_hooks.values()), list(m._forward_hooks.values())
        if not pre and not post:
            continue
        weights = [h for h in pre if _weight_hook(torch, h)]
        with torch.no_grad():
            for hook in weights:
                hook(m, ())
        if qual and not (_is_experts(m) or tracer.is_leaf_module(m, qual)):
            continue  # traced through its __call__: what its hooks do is recorded
        others = _hook_count(torch, m)
        if others and not qual:
            problems.append(f"{others} forward hook(s) on the module converted "
                            f"({type(m).__name__})")
        elif others:  # refused if the trace calls it (_refuse_hooked)
            hooked[id(m)] = f"{others} forward hook(s) on {qual} ({type(m).__name__})"
    if problems:
        _refuse_hooks(problems)
    return hooked


def _hook_count(torch: Any, m: Any) -> int:
    """The forward hooks and pre-hooks of ``m`` but torch's weight-recomputing ones
    (_weight_hook)."""
    pre = [h for h in m._forward_pre_hooks.values() if not _weight_hook(torch, h)]
    return len(pre) + len(m._forward_hooks)


def _refuse_hooks(problems: list[str]) -> None:
    raise TorchConversionError(
        f"from_torch: {'; '.join(problems)}: fastlayers converts what torch.nn layers and "
        "the module's forward compute, and would not run these hooks. Remove them "
        "(handle.remove()) or move what they do into a forward (docs/semantics.md §24)")


def _refuse_hooked(gm: Any, hooked: dict[int, str]) -> None:
    """Refuse the hooked layers (_run_or_refuse_hooks) that the trace ``gm`` calls (a hook
    on a layer the forward never calls changes nothing)."""
    if not hooked:
        return
    called = [hooked[id(gm.get_submodule(n.target))] for n in gm.graph.nodes
              if n.op == "call_module" and id(gm.get_submodule(n.target)) in hooked]
    if called:
        _refuse_hooks(list(dict.fromkeys(called)))


def _convert(torch: Any, module: Any, examples: Any, name: Any,
             hooked: dict[int, str] | None = None) -> tuple:
    """(the converted model, its _Converter, the batch axis of each example input) of
    ``module`` (in eval mode) traced with ``examples`` (from_torch)."""
    import inspect

    signature = inspect.signature(module.forward).parameters.values()
    params = [p for p in signature if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in signature)
    concrete = None
    if examples is not None:
        if len(examples) > len(params) and not varargs:
            raise ValueError(
                f"from_torch: {len(examples)} example inputs for a forward with "
                f"{len(params)} positional arguments"
            )
        concrete = {p.name: p.default for p in params[len(examples):]
                    if p.default is not p.empty}
        # Keyword-only arguments (forward(self, x, *, scale=2.0)) keep their defaults, as a
        # positional one left out does; one without a default cannot be called without it.
        keyword_only = [p for p in signature if p.kind == p.KEYWORD_ONLY]
        required = [p.name for p in keyword_only if p.default is p.empty]
        if required:
            raise ValueError(
                f"from_torch: {type(module).__name__}.forward has keyword-only arguments "
                f"without defaults ({', '.join(required)}), which example inputs cannot "
                "give: convert a wrapper whose forward passes them, e.g. forward(self, x): "
                f"return self.model(x, {required[0]}=...)")
        concrete.update({p.name: p.default for p in keyword_only})
    traced = module
    unwrapped_names = False
    names = [p.name for p in params]
    count = len(examples) if examples is not None else 1
    # A HuggingFace model is traced as called with use_cache=False: with its config's default
    # (True for decoders) it returns a DynamicCache, which fx cannot record, and fastlayers
    # has no KV cache to give (docs/semantics.md §24).
    no_cache = examples is not None and _hf_cache_argument(module, count)
    cache = [n for n in names[:count] if n in ("cache", "past_key_values")]
    if cache and _from_transformers(module):
        raise ValueError(
            f"from_torch: {type(module).__name__}.forward takes ({', '.join(names[:count])}, "
            f"...) in that order, so example {names.index(cache[0]) + 1} would be its "
            f"{cache[0]!r} (a KV cache, which fastlayers does not have). Pass the attention "
            "mask by keyword, through a wrapper: forward(self, ids, mask): return "
            "self.model(ids, attention_mask=mask)")
    if no_cache and concrete is not None:
        concrete["use_cache"] = False
    if varargs and examples is not None:
        # forward(self, *inputs): fx traces a forward from its code object, whose *inputs
        # it cannot bind to the examples; traced through a call with them, as a user's
        # wrapper would call it
        names = [f"a{i}" for i in range(count)]
        traced = _wrap_call(torch, module, names)
        concrete = None
    elif examples is not None and any(p.kind == p.VAR_KEYWORD for p in signature):
        # forward(self, x, **kwargs): fx makes **kwargs one traced value, and a forward that
        # passes it on (self.inner(x, **kwargs): OwlViT's and SAM's vision models) fails to
        # iterate it; traced through a call with the examples, where kwargs is {}. (Its
        # layers keep the module's own names: the wrapper's "module." is left out.)
        names = names[:count]
        traced = _wrap_call(torch, module, names, "use_cache=False" if no_cache else "")
        concrete = None
        unwrapped_names = True
    elif torch.fx.Tracer().is_leaf_module(module, ""):
        # fx would trace into a torch.nn module's own forward: wrap it, so that it is
        # one call_module node (named "module") as inside a model.
        names = [f"a{i}" for i in range(count)]
        traced = _wrap_call(torch, module, names)
        concrete = None
    elif concrete and not all(v is None or isinstance(v, (bool, int, float, str))
                              for v in concrete.values()):
        # A default that is no plain constant (a tuple, a list, a tensor) cannot go into
        # fx's concrete_args (it fails on them): traced through a call of the module with
        # the examples, so that the forward itself takes its defaults.
        names = names[:count]
        traced = _wrap_call(torch, module, names, "use_cache=False" if no_cache else "")
        concrete = None
    elif _decorated(module.forward):
        # fx traces a forward from its own code object, which a decorator's wrapper
        # (forward(self, *args, **kwargs), as HuggingFace's can_return_tuple) does not
        # describe: traced through a call of the module, as a user's wrapper would.
        names = names[:count]
        traced = _wrap_call(torch, module, names, "use_cache=False" if no_cache else "")
        concrete = None
    buffers = _buffer_bytes(module)
    tensors = _tensor_attributes(module)
    registered: dict[int, str] = {}  # layers the trace called with hooks the forward added
    try:
        gm = _trace(torch, traced, concrete or None, None if examples is None else dict(
            zip(names, _to_torch_example(torch, examples))), registered)
    except Exception as e:
        raise TorchConversionError(
            f"from_torch: torch.fx could not trace {type(module).__name__}: "
            f"{_located(e)}. The forward must be traceable by torch.fx: no Python "
            "control flow (if, for, while, int(), float()) on tensor values, or on sizes "
            "when no example inputs fix them (docs/semantics.md §24)."
        ) from e
    finally:
        changed = _restore_buffers(module, buffers)
        written = _restore_tensors(tensors)
    if changed or written:
        what = " and ".join(([f"buffer(s) {changed}"] if changed else [])
                            + ([f"tensor attribute(s) {written}"] if written else []))
        raise TorchConversionError(
            f"from_torch: the forward of {type(module).__name__} writes its {what} in place "
            "(the module would change from call to call; they are restored)")
    if -1 in registered:  # global hooks the forward registered
        _refuse_hooks([registered.pop(-1)])
    _refuse_hooked(gm, {**registered, **(hooked or {})})
    conv = _Converter(torch, module, gm)
    if unwrapped_names:
        conv.name_prefix = "module."
    conv.check()
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    axes = None if examples is None else [
        _batch_axis(torch, gm, p) for p in placeholders[:len(examples)]]
    try:
        return _build(torch, conv, gm, examples, name), conv, axes
    except _BatchOfOne as e:
        e.axes = axes
        raise


def _rows(examples: list, axes: list) -> int:
    """The examples' batch size (1 when no example has a batch axis)."""
    def first(ex: Any, axis: Any) -> int | None:
        if isinstance(ex, tuple):
            return next((n for n in (first(e, axis) for e in ex) if n is not None), None)
        return None if axis is None or axis >= ex.ndim else ex.shape[axis]

    return next((n for n in (first(ex, a) for ex, a in zip(examples, axes)) if n), 1)


def _take_rows(examples: list, axes: list, rows: list[int]) -> list:
    """``examples`` with the given rows of each one's batch axis (``axes``, _batch_axis)."""
    def take(ex: Any, axis: Any) -> Any:
        if isinstance(ex, tuple):
            return tuple(take(e, axis) for e in ex)
        if axis is None or axis >= ex.ndim:
            return ex
        return np.take(ex, rows, axis=axis)

    return [take(ex, axis) for ex, axis in zip(examples, axes)]


def _check_batch_of_one(torch: Any, module: Any, model: TorchModel, examples: list,
                        where: list[str]) -> None:
    """The converted model against ``module`` on one row of the examples (``examples``),
    for a model whose forward decides whether the batch size is 1 (at ``where``), converted
    on the path of 2 or more rows (_Assumed). Nearly always that path computes the same at
    batch 1 (an ``expand`` left out, a ``squeeze`` that changes nothing); a forward whose
    batch-1 path computes something else on the examples' rows is refused. (A test on
    data, not a proof: a batch-1 path that differs only for other values passes it.)"""
    buffers = _buffer_bytes(module)
    extra = {"use_cache": False} if _hf_cache_argument(module, len(examples)) else {}
    try:
        with torch.no_grad():
            expected = module(*_to_torch_example(torch, examples), **extra)
    except Exception as e:
        raise TorchConversionError(
            f"from_torch: {where[0]} decides whether the batch size is 1, and the module "
            f"fails on 1 row of the examples, where the converted model would be checked: "
            f"{type(e).__name__}: {e}") from e
    finally:
        _restore_buffers(module, buffers)
    got = model(*examples)

    def leaves(obj: Any) -> list:
        if obj is None:
            return []
        if isinstance(obj, dict):  # also a HuggingFace ModelOutput
            return [v for o in obj.values() for v in leaves(o)]
        if isinstance(obj, (tuple, list)):
            return [v for o in obj for v in leaves(o)]
        if isinstance(obj, torch.Tensor):
            obj = obj.detach().cpu().numpy()
        return [np.asarray(obj, dtype=np.float64)]

    want, have = leaves(expected), leaves(got)
    if len(want) != len(have) or any(a.shape != b.shape for a, b in zip(want, have)):
        found = "outputs of other shapes"
    else:  # (PyTorch's arithmetic against fastlayers' through the whole model: 1e-3)
        found = "" if all(_near(b, a, 1e-3) for a, b in zip(want, have)) else "other values"
    if found:
        raise TorchConversionError(
            f"from_torch: {', '.join(dict.fromkeys(where))} decide(s) whether the batch size "
            "is 1. The converted model computes the module's path for 2 or more rows at any batch, "
            f"and at batch 1 that gives {found} than the module's own path: not converted")


def _assert_test(frame: Any) -> bool | None:
    """How ``frame`` uses the truth value it is taking, when that is an ``assert``'s test:
    True for ``assert cond`` (the jump over the raise is taken when the value is true), False
    for ``assert not cond``, None for anything else (an ``if``, a ``while``, ...). The test
    is the next conditional jump - the current instruction on Python 3.9-3.12, the one after
    TO_BOOL or COMPARE_OP on 3.13 - followed by loading AssertionError."""
    import dis

    insts = list(dis.get_instructions(frame.f_code))
    at = next((i for i, inst in enumerate(insts) if inst.offset == frame.f_lasti), None)
    if at is None:
        return None
    for inst, nxt in zip(insts[at:at + 3], insts[at + 1:at + 4]):
        if "JUMP" in inst.opname and "_IF_" in inst.opname:
            if not (nxt.opname == "LOAD_ASSERTION_ERROR"
                    or (nxt.opname == "LOAD_GLOBAL" and nxt.argval == "AssertionError")):
                return None
            if inst.opname.endswith("IF_TRUE"):
                return True
            return False if inst.opname.endswith("IF_FALSE") else None
        if inst.opname not in ("TO_BOOL", "COMPARE_OP", "EXTENDED_ARG", "NOT_TAKEN"):
            return None
    return None


def _refuse_unknown(torch: Any, args: Any, kwargs: Any) -> None:
    """A comparison with the batch size (_Unknown) may only be asserted."""
    if any(isinstance(v, _Unknown) for v in _leaves(torch, (args, kwargs))):
        raise TorchConversionError("from_torch: a comparison with the batch size (known "
                                   "only at run time) used other than in an assert or a "
                                   "branch on whether it is 1")


# The factories whose calls of numbers alone make constants (their handlers, or PyTorch).
_FACTORIES = ("arange", "linspace", "zeros", "ones", "full", "eye", "tensor", "hann_window",
              "hamming_window", "blackman_window", "bartlett_window", "kaiser_window")


def _known_at_conversion(torch: Any, graph: Any, constant: set) -> set:
    """The nodes whose values the conversion knows or computes, so that a call of them alone
    is computed then (by PyTorch, _fold) and needs no converter of its own: the constants
    (reads of parameters and buffers), factories of numbers (torch.arange(8)), sizes
    (x.shape[1]: a batch size among them makes the call's handler, or its refusal at build,
    decide), ``x.device`` (one device), and calls of these alone (the frequencies of a
    rotary embedding made in forward, torch.polar of them). Not random draws or
    uninitialized memory (torch.randn(n), torch.empty(n)): those the check lists."""
    factories = {getattr(torch, name) for name in _FACTORIES}
    known = set(constant)
    for node in graph.nodes:
        if node.op not in ("call_function", "call_method") or node.target is torch._assert:
            continue
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__",
                                                                     "")
        if _random_call(name, node.args, node.kwargs) or name in ("empty", "empty_like"):
            continue
        inputs = node.all_input_nodes
        if node.meta.get("fl_sized") or (node.target is getattr and node.args[1:2] == (
                "device",)):
            known.add(node)
        elif inputs and all(n in known for n in inputs) or (
                not inputs and node.op == "call_function" and node.target in factories):
            known.add(node)
    return known


def _constant_nodes(graph: Any) -> set:
    """The call nodes that read parameters and buffers only (no input of the module): fx
    records them because buffers are graph attributes (_trace), and PyTorch itself computes
    them at conversion (_fold), whatever they call."""
    constant: set = set()
    computed: set = set()  # buffers overwritten with a value computed from the inputs
    for node in graph.nodes:
        # (asserts stay with the converter, which reports a failed one)
        checks = node.op == "call_function" and getattr(node.target, "__name__", "") == "_assert"
        if node.op == "get_attr":
            if node.target not in computed:
                constant.add(node)
        elif node.op == "call_method" and node.target == "copy_" and node.args and getattr(
                node.args[0], "op", None) == "get_attr":  # (_overwrite_problem)
            dst = node.args[0]
            if all(n in constant for n in node.all_input_nodes):
                constant.add(node)
                computed.discard(dst.target)
            else:  # read from here on, the buffer holds a value of the converted graph
                computed.add(dst.target)
                constant.discard(dst)
        elif (node.op in ("call_function", "call_method", "call_module") and not checks
                and node.all_input_nodes and all(n in constant for n in node.all_input_nodes)):
            constant.add(node)
    return constant


# PyTorch's random functions (their in-place forms end with "_" and are refused as such).
_RANDOM = frozenset({"rand", "rand_like", "randn", "randn_like", "randint", "randint_like",
                     "randperm", "bernoulli", "normal", "multinomial", "poisson",
                     "gumbel_softmax"})


# The random factories and in-place draws that fx would run while tracing when their arguments
# are known (torch.randn(4), torch.empty(4).normal_()) and keep as constants (_tracing_patches).
_RANDOM_FACTORIES = ("rand", "randn", "randint", "randperm", "normal", "bernoulli",
                     "multinomial", "poisson", "rand_like", "randn_like", "randint_like")
_RANDOM_IN_PLACE = ("normal_", "uniform_", "random_", "bernoulli_", "exponential_",
                    "geometric_", "log_normal_", "cauchy_")


def _dropout_training(args: Any, kwargs: Any) -> bool:
    """Whether a dropout call (input, p, training, ...) drops: its flag (``training``, or
    ``train`` for torch.dropout and its kin), by default true."""
    for key in ("training", "train"):
        if key in kwargs:
            return bool(kwargs[key])
    return bool(args[2]) if len(args) > 2 else True


def _random_call(name: str, args: Any, kwargs: Any) -> bool:
    """Whether a call draws random numbers: _RANDOM, any dropout while training, and
    rrelu while training (F.rrelu(input, lower, upper, training=False))."""
    if name in _RANDOM:
        return True
    if "dropout" in name:
        return _dropout_training(args, kwargs)
    if name == "rrelu":
        return bool(kwargs.get("training", args[3] if len(args) > 3 else False))
    return False


def _is_complex(v: Any) -> bool:
    """A complex tensor of the converted graph (_C), or a complex constant: a complex
    parameter or buffer (a NumPy array here), or a Python complex number."""
    return isinstance(v, (_C, complex, np.complexfloating)) or (
        isinstance(v, np.ndarray) and v.dtype.kind == "c")


def _foldable(torch: Any, args: Any, kwargs: Any) -> bool:
    """Whether a call's arguments are known at conversion: a parameter or buffer (a NumPy
    array here) and numbers, no tensor or size of the converted graph."""
    leaves = _leaves(torch, (args, kwargs))
    return any(isinstance(v, np.ndarray) for v in leaves) and not any(
        isinstance(v, (_T, _C, _Dim, _Unknown, S.SymbolicTensor)) for v in leaves)


def _numpy_of(torch: Any, t: Any) -> np.ndarray:
    """A constant tensor's values as a NumPy array: conj() and neg() resolved (lazy bits
    NumPy cannot read), bfloat16 as the float32 of the same values (NumPy has no bfloat16;
    the converted model computes in float32)."""
    t = t.detach().cpu().resolve_conj().resolve_neg()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def _fold(torch: Any, gm: Any, node: Any, args: Any, kwargs: Any) -> Any:
    """A call on values known at conversion (_constant_nodes, _foldable) computed by
    PyTorch, as NumPy arrays (tuples of results keep their type: ``buf.max(0).values``).
    In-place and random calls are refused: the first would change a copy that later reads
    do not see, the second would be drawn once at conversion."""
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    in_place = (name.endswith("_") and not name.endswith("__") and getattr(
        node.target, "__module__", None) not in ("_operator", "operator"))  # not and_, or_
    random = _random_call(name, args, kwargs)
    if node.op != "call_module" and (in_place or random):
        raise TorchConversionError(f"from_torch: {name} of a parameter or buffer (in-place or "
                                   "random: not computed at conversion)")

    def convert(v: Any, leaf: Any) -> Any:
        if isinstance(v, (tuple, list)):
            items = [convert(e, leaf) for e in v]
            return type(v)(items) if hasattr(type(v), "n_fields") or type(v) in (
                tuple, list) else tuple(items)
        if isinstance(v, dict):
            return {k: convert(e, leaf) for k, e in v.items()}
        return leaf(v)

    def to_torch(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return torch.from_numpy(np.array(v))
        if isinstance(v, np.dtype):  # a traced tensor's dtype (x.to(y.dtype) of a constant)
            return getattr(torch, v.name, v)
        return v

    def to_numpy(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return _numpy_of(torch, v)
        return tuple(v) if isinstance(v, torch.Size) else v

    args = convert(args, to_torch)
    kwargs = convert(kwargs, to_torch)
    try:
        with torch.no_grad():
            if node.op == "call_function":
                out = node.target(*args, **kwargs)
            elif node.op == "call_method":
                out = getattr(args[0], node.target)(*args[1:], **kwargs)
            else:
                out = gm.get_submodule(node.target)(*args, **kwargs)
    except Exception as e:  # PyTorch's own error, as it would raise it at run time
        raise TorchConversionError(f"from_torch: {node.name}, computed by PyTorch at "
                                   f"conversion on values known then, fails: {e}") from e
    return to_numpy(out) if isinstance(out, torch.Size) else convert(out, to_numpy)


def _trace(torch: Any, root: Any, concrete: Any, examples: dict | None = None,
           registered: dict | None = None) -> Any:
    """``torch.fx.symbolic_trace`` with asserts traced as ``torch._assert`` calls (a check
    of a size, as nanoGPT's ``assert t <= block_size``, is then evaluated at conversion;
    fx's own ``trace_asserts`` misses Python 3.11's bytecode; _assert_test), and, when tracing
    with buffers as tensors fails, with buffers as graph attributes (so a size read from an
    input can slice one; what is computed from buffers alone is then PyTorch's, _fold).

    ``examples`` (forward's parameter name -> example tensor) are run through the trace as it
    is recorded (_ExampleRun), so that what the examples fix is known while tracing: the
    length of a shape (``(*x.shape[:-1], -1, d)``, ``for t in x.chunk(3)``) and a condition
    on ranks and dtypes alone (``if mask.ndim == 2``, ``if x.dtype != w.dtype``), which is
    the same for every input the converted model takes.

    ``registered`` (if given) gets {id(layer): what} of each torch.nn layer (a call_module
    node) that the trace called while it had forward hooks it did not have before the trace:
    a forward that registers a hook on its first call (the hooks it registered are removed
    afterwards, with the attributes it set: _restore_attributes), which the layer's node
    would not run."""
    import inspect

    before = {id(m): _hook_count(torch, m) for m in root.modules()}
    found: dict[int, str] = {}
    from torch.nn.modules import module as module_mod

    global_hooks = (module_mod._global_forward_hooks, module_mod._global_forward_pre_hooks)
    global_before = [set(hooks) for hooks in global_hooks]
    global_added = [0]

    class Tracer(torch.fx.Tracer):
        proxy_buffer_attributes = False

        def is_leaf_module(self, m: Any, qualified_name: str) -> bool:
            # HuggingFace's experts route tokens by their values (nonzero, a loop over the
            # experts hit): one call, converted whole (_Converter.experts). The torch.nn
            # modules whose forward is one functional call are traced into it (_TRACED_INTO).
            if type(m).__name__ in _TRACED_INTO and getattr(torch.nn, type(m).__name__,
                                                            None) is type(m):
                return False
            return _is_experts(m) or super().is_leaf_module(m, qualified_name)

        def to_bool(self, obj: Any) -> bool:
            static = run.static_value(obj)
            if static is not None:
                return bool(static[0])
            frame = inspect.currentframe()
            caller = frame.f_back.f_back if frame and frame.f_back else None  # Proxy.__bool__'s
            test = None if caller is None else _assert_test(caller)
            if test is None:
                if run.sized_value(obj) is not None:
                    return run.specialize(self, obj, bool, caller)
                return super().to_bool(obj)
            if not test:  # assert not cond: the trace goes on with cond false
                obj = self.create_proxy("call_function", operator.not_, (obj,), {})
            where = f"{caller.f_code.co_filename}:{caller.f_lineno}"
            self.create_proxy("call_function", torch._assert, (obj, where), {})
            return test

        def iter(self, obj: Any) -> Iterator:
            n = run.length(obj)
            if n is None:
                return super().iter(obj)
            return iter([obj[i] for i in range(n)])

        def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any,
                         *rest: Any, **kw: Any) -> Any:
            proxy = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
            run.record(self, proxy.node, args, kwargs)
            return proxy

        def proxy(self, node: Any) -> Any:
            return Proxy(node, self)

        # While the examples run (_ExampleRun.record), module calls and parameters are
        # PyTorch's own, not recorded.
        def call_module(self, m: Any, forward: Any, args: Any, kwargs: Any) -> Any:
            if run.busy:
                return forward(*args, **kwargs)
            sized_range(type(m), forward)
            try:
                self.path_of_module(m)
            except NameError:
                # a module that is not the traced one's submodule (HuggingFace 5's functions
                # made modules by the kernels package, apply_rotary_pos_emb): traced through
                return forward(*args, **kwargs)
            if self.is_leaf_module(m, self.path_of_module(m)):
                added = _hook_count(torch, m) - before.get(id(m), 0)
                if added > 0:
                    found[id(m)] = (f"{added} forward hook(s) registered on "
                                    f"{self.path_of_module(m)} ({type(m).__name__}) by the "
                                    "forward while converting (its first call)")
            return super().call_module(m, forward, args, kwargs)

        def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
            if run.busy:
                return attr_val
            return super().getattr(attr, attr_val, parameter_proxy_cache)

    def length(proxy: Any) -> int:  # len() of a shape or a tuple the examples fix
        n = run.length(proxy)
        if n is not None:
            return n
        value = run.values.get(proxy.node)
        if isinstance(value, torch.Tensor) and value.ndim >= 1:
            # len(tensor) is its size(0), as int(x.size(0)): the examples' value, guarded (the
            # tutorial's generate_square_subsequent_mask(len(src)) of a seq-first src)
            frame = inspect.currentframe()
            return run.specialize(proxy.tracer, proxy.size(0), int,
                                  frame.f_back if frame else None)
        return torch.fx.Proxy.__len__(proxy)

    def number(kind: Any) -> Any:  # int() or float() of a size (guarded)
        def convert(proxy: Any, caller: Any = None) -> Any:
            if run.sized_value(proxy) is None:
                node = getattr(proxy, "node", None)
                if node is not None and node.op == "get_attr":
                    # float(self.scale) of a one-element parameter or buffer: its value, fixed
                    # at conversion as every parameter is
                    value = _raw_attribute(proxy.tracer.root, str(node.target))
                    if isinstance(value, torch.Tensor) and value.numel() == 1:
                        return kind(value.detach().item())
                raise TypeError(f"{kind.__name__}() of a traced value: the examples do not "
                                "fix it (a tensor's values; of a value computed from "
                                "parameters alone, .item() is computed at conversion)")
            frame = inspect.currentframe()
            if caller is None and frame is not None:
                caller = frame.f_back
            return run.specialize(proxy.tracer, proxy, kind, caller)
        return convert

    real_tensor = torch.tensor

    def tensor(data: Any, *args: Any, **kwargs: Any) -> Any:
        # torch.tensor of sizes (DeBERTa's torch.tensor(q.size(-1), dtype=torch.float)), which
        # fx cannot record: made of the examples' numbers, each guarded as int() is
        proxies = [v for v in _leaves(torch, data) if isinstance(v, torch.fx.Proxy)]
        if proxies and all(run.sized_value(p) is not None
                           and isinstance(run.sized_value(p)[0], (bool, int, float))
                           for p in proxies):
            frame = inspect.currentframe()
            caller = frame.f_back if frame else None
            data = torch.fx.node.map_aggregate(data, lambda v: run.specialize(
                v.tracer, v, type(run.sized_value(v)[0]), caller) if isinstance(
                    v, torch.fx.Proxy) else v)
        return real_tensor(data, *args, **kwargs)

    real_range = builtins.range
    ranged: list[dict] = []  # the module globals given range_of_sizes (taken back after)
    packages: set[str] = set()

    def sized_range(cls: type, forward: Any) -> None:
        # range() of sizes in the code of the packages that define the traced module class
        # ``cls`` and its ``forward`` (a base class's: inherited), helpers anywhere in them
        # included (transformers, or the user's own): those modules' name for range is
        # range_of_sizes while tracing. (Not builtins: code elsewhere, in other threads
        # too, keeps the type range.)
        code = inspect.unwrap(getattr(forward, "__func__", forward))
        for owner in (cls, code):
            inject((getattr(owner, "__module__", None) or "").split(".")[0])

    def inject(package: str) -> None:
        if not package or package in packages or package in ("torch", "builtins"):
            return
        packages.add(package)
        for name, mod in list(sys.modules.items()):
            g = getattr(mod, "__dict__", None)
            if (name == package or name.startswith(package + ".")) and isinstance(g, dict) \
                    and "range" not in g:
                g["range"] = range_of_sizes
                ranged.append(g)

    class RangeType(type):
        # range() of sizes the examples fix (``for t in range(x.size(1))``: a loop over time
        # steps, unrolled), each guarded as int() is; isinstance(r, range) still holds.
        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, real_range)

        def __subclasscheck__(cls, sub: Any) -> bool:
            return issubclass(sub, real_range)

        def __call__(cls, *args: Any) -> Any:
            if any(isinstance(a, torch.fx.Proxy) for a in args):
                frame = inspect.currentframe()
                caller = frame.f_back if frame else None
                args = tuple(number(int)(a, caller) if isinstance(a, torch.fx.Proxy) else a
                             for a in args)
            return real_range(*args)

    class range_of_sizes(metaclass=RangeType):  # noqa: N801 - the traced modules' range
        pass

    class Proxy(torch.fx.Proxy):
        __len__ = length
        __int__ = number(int)
        __float__ = number(float)

        def __setitem__(self, key: Any, value: Any) -> None:
            # x[key] = value: recorded as operator.setitem, an in-place write (_Converter.
            # set_item; _build points the later readers of x at its result)
            self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})

        def __getattr__(self, k: str) -> Any:
            if k in ("ndim", "dim", "ndimension"):
                # A tensor's rank is the example's at every call (a converted model's inputs
                # keep their examples' ranks), so a plain int: [(0, 0)] * x.ndim (LongT5),
                # axis %= x.dim() (Funnel) are Python arithmetic, not traced values.
                value = run.values.get(self.node)
                if isinstance(value, torch.Tensor):
                    return value.ndim if k == "ndim" else (lambda: value.ndim)
            return Attribute(self, k)

    class Attribute(torch.fx.proxy.Attribute):
        __len__ = length
        __int__ = number(int)
        __float__ = number(float)

        def __getattr__(self, k: str) -> Any:
            if k in ("type", "index") and self.attr == "device":
                # one device, the CPU: torch.autocast(device_type=x.device.type) (HuggingFace's
                # maybe_autocast), if x.device.type == "mps"; its index is None
                return "cpu" if k == "type" else None
            return Attribute(self, k)

    # Buffers as tensors first (fx computes what reads them alone, as it always did: len(buf),
    # buf.sum() in Python code); as graph attributes when that fails (a buffer sliced by a
    # size read from the input, self.bias[:, :, :T, :T]).
    # (The forward then runs twice while tracing.)
    saved = _attributes(root)
    graph = None
    with _tracing_patches(torch):
        try:
            torch.tensor = tensor
            sized_range(type(root), type(root).forward)
            run = _ExampleRun(torch, examples)
            found.clear()
            tracer = Tracer()
            graph = tracer.trace(root, concrete_args=concrete)
        except Exception as first:
            _restore_attributes(saved)
            run = _ExampleRun(torch, examples)
            found.clear()
            tracer = type("BufferTracer", (Tracer,), {"proxy_buffer_attributes": True})()
            try:
                with _tensor_attributes_as_buffers(torch, root):
                    graph = tracer.trace(root, concrete_args=concrete)
            except Exception as second:
                if str(second) == str(first):
                    raise
                raise RuntimeError(f"{_located(first)} (and with buffers as graph attributes: "
                                   f"{_located(second)})") from None
        finally:
            # Global module hooks the forward registered (on its first call, say; in either
            # attempt): removed, also after a failed trace, as the module's own are
            # (_restore_attributes), and refused below (key -1): no layer node runs them.
            for hooks, keys in zip(global_hooks, global_before):
                for key in [k for k in hooks if k not in keys]:
                    del hooks[key]
                    global_added[0] += 1
            # (the constants fx itself set on the root for the graph stay: get_attr nodes)
            _restore_attributes(saved, keep=[] if graph is None else [
                n.target for n in graph.nodes if n.op == "get_attr"])
            # The patched torch.tensor and the Tracer refer to the example run, which refers
            # to the graph and the module: a cache that kept one (_tracing_patches) keeps
            # nothing else.
            run = None
            torch.tensor = real_tensor
            for g in ranged:
                if g.get("range") is range_of_sizes:
                    del g["range"]
    added = global_added[0]
    if added:
        found[-1] = (f"{added} global forward hook(s) (register_module_forward_hook / "
                     "register_module_forward_pre_hook) registered by the forward while "
                     "converting")
    if registered is not None:
        registered.update(found)
    return torch.fx.GraphModule(tracer.root, graph, type(root).__name__)


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


class _Contents:
    """A dict, list, set or deque attribute and what it held (_attributes)."""

    __slots__ = ("obj", "items")

    def __init__(self, obj: Any, items: Any) -> None:
        self.obj, self.items = obj, items


def _contents(value: Any, depth: int = 0) -> Any:
    """``value``, or for a dict, list, set, deque or tuple (subclasses too: defaultdict,
    Counter, OrderedDict) a _Contents of it, with those nested in it (8 levels)."""
    import collections

    if depth > 8 or not isinstance(value, (dict, list, set, collections.deque, tuple)):
        return value
    if isinstance(value, set):
        return _Contents(value, list(value))
    if isinstance(value, dict):
        return _Contents(value, {k: _contents(v, depth + 1) for k, v in value.items()})
    return _Contents(value, [_contents(v, depth + 1) for v in value])


def _put_back(snap: Any) -> Any:
    """The object _contents saw, with its contents put back where a trace changed them
    (compared by identity: a trace's Proxies compare as traced values). A tuple's own items
    cannot change, the containers in it can; a container that refuses (a HuggingFace
    ModelOutput's update raises) is left as it is."""
    if not isinstance(snap, _Contents):
        return snap
    obj = snap.obj
    try:
        if isinstance(obj, dict):
            want = {k: _put_back(v) for k, v in snap.items.items()}
            if list(obj) != list(want) or any(obj[k] is not v for k, v in want.items()):
                obj.clear()
                obj.update(want)
        elif isinstance(obj, set):
            if {id(x) for x in obj} != {id(y) for y in snap.items}:
                obj.clear()
                obj.update(snap.items)
        elif isinstance(obj, tuple):
            for v in snap.items:
                _put_back(v)
        else:  # a list or a deque
            want = [_put_back(v) for v in snap.items]
            if len(obj) != len(want) or any(a is not b for a, b in zip(obj, want)):
                obj.clear()
                obj.extend(want)
    except Exception:  # noqa: BLE001 - put back what can be; a fixed container stays
        pass
    return obj


def _attributes(root: Any) -> list:
    """Each module of ``root`` with a shallow copy of its attributes and the contents of the
    containers among them (_contents), but torch.nn.Module's own bookkeeping (its parameter,
    buffer, submodule and hook dicts: _restore_buffers checks the buffers)."""
    import torch

    own = set(torch.nn.Module().__dict__)
    return [(m, dict(m.__dict__), {k: _contents(v) for k, v in m.__dict__.items()
                                   if k not in own},
             {k: list(v) for k, v in m.__dict__.items() if "hooks" in k and isinstance(v, dict)})
            for m in root.modules()]


def _restore_attributes(saved: list, keep: list | tuple = ()) -> None:
    """Put back the plain attributes a traced forward set or added, and the contents of the
    dicts, lists, sets and deques among them (``self.stats["mean"] = y.mean()`` stored a
    Proxy; ``self._memo``, nested containers too), but the ones named in ``keep`` (qualified
    names from the root: the tensor constants fx sets on it for its graph). HuggingFace's
    longrope RoPE caches ``self.long_inv_freq`` on its first call: traced, that is a Proxy of
    the trace, which the module called afterwards (or traced again) would compute with.
    Containers whose contents did not change are left alone. Hooks a traced forward
    registered are removed: HuggingFace installs its hidden-state capturing hooks on a model's
    first call and marks the model (an attribute, put back above), so a model first called by
    the trace got a second set at its next call (hidden_states[-2] was another layer's,
    in the converted model and in the module; a PyTorch-user audit)."""
    root = saved[0][0]
    kept = set()
    for name in keep:
        owner, _, attr = name.rpartition(".")
        try:
            kept.add((id(root.get_submodule(owner) if owner else root), attr))
        except AttributeError:
            continue
    for m, before, inside, hooks in saved:
        for k, keys in hooks.items():
            registered = m.__dict__.get(k)
            if isinstance(registered, dict) and len(registered) != len(keys):
                for key in [key for key in registered if key not in set(keys)]:
                    del registered[key]
        now = m.__dict__
        for k in [k for k in now if k not in before and (id(m), k) not in kept]:
            del now[k]
        for k, v in before.items():
            if k not in now or now[k] is not v:
                now[k] = v
        for snap in inside.values():
            _put_back(snap)


class _ExampleRun:
    """The examples run alongside a trace: each recorded node's value on them, and whether
    it is *static*: fixed by the ranks and dtypes of the inputs alone (``x.ndim``,
    ``x.dim()``, ``x.dtype`` and what is computed from those and constants), so the same for
    every input of the converted model, whatever its batch size; or *sized*: a plain value
    computed from sizes too (guarded: ``specialize``). Nothing here may depend on a tensor's
    values, so the examples run as PyTorch's fake tensors (shapes and dtypes, no data): no
    memory for the intermediates, nothing written to the module, no random numbers drawn.
    A value PyTorch cannot compute so (one that depends on data: ``nonzero``, ``.item()``)
    is not known. Without examples nothing is known."""

    _STATIC_ATTRS = frozenset({"ndim", "dtype"})
    # dtypes a converted model computes in, so a condition on them holds at run time too
    _DTYPES = ("float32", "int64", "bool")

    def __init__(self, torch: Any, examples: dict | None) -> None:
        self.torch = torch
        self.examples = examples
        self.values: dict = {}  # node -> its value on the examples
        self.static: set = set()
        self.sized: set = set()  # plain values from sizes, ranks, dtypes and constants
        self.busy = False  # computing a value (the tracer records nothing meanwhile)
        if examples is not None:
            from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

            # (real tensors met on the way, the parameters, become fake as they are used)
            self.mode = FakeTensorMode(allow_non_fake_inputs=True)
            self.FakeTensor = FakeTensor
            self.examples = {k: torch.fx.node.map_aggregate(v, self._fake)
                             for k, v in examples.items()}

    def _fake(self, v: Any) -> Any:
        return self.mode.from_tensor(v) if isinstance(v, self.torch.Tensor) else v

    def _value(self, a: Any) -> Any:
        if isinstance(a, self.torch.fx.Proxy):
            return self.values[a.node]  # KeyError: not known
        if isinstance(a, self.torch.fx.Node):
            return self.values[a]
        return a

    def _scalar(self, a: Any) -> Any:
        """An argument after the first as the fake run takes it: a constant 0-d tensor (not
        traced: DeBERTa's ``span = torch.tensor(min(size, m))``, then ``x[m - span:m + span]``
        and ``torch.clamp(p, 0, 2 * span - 1)``) as its Python number, which a fake tensor's
        op cannot read, and which PyTorch's type promotion treats alike."""
        a = self._value(a)
        if (isinstance(a, self.torch.Tensor) and a.ndim == 0
                and not isinstance(a, self.FakeTensor)):
            return a.item()
        return a

    def record(self, tracer: Any, node: Any, args: Any, kwargs: Any) -> None:
        if self.examples is None or node.op == "output":
            return
        torch = self.torch
        self.busy = True
        try:
            args = torch.fx.node.map_aggregate(args[:1], self._value) + \
                torch.fx.node.map_aggregate(args[1:], self._scalar)
            kwargs = torch.fx.node.map_aggregate(kwargs, self._scalar)
            with torch.no_grad(), self.mode:
                if node.op == "placeholder":
                    value = self.examples[node.target]
                elif node.op == "get_attr":
                    value = tracer.root
                    for part in node.target.split("."):
                        value = getattr(value, part)
                    value = self._fake(value)  # a later in-place op writes the fake
                elif node.op == "call_function":
                    value = node.target(*args, **kwargs)
                elif node.op == "call_method":
                    value = getattr(args[0], node.target)(*args[1:], **kwargs)
                else:  # call_module
                    module = tracer.root.get_submodule(node.target)
                    if _is_experts(module):  # routes by values (nonzero): the tokens' shape
                        value = torch.empty_like(args[0])
                    else:
                        value = module(*args, **kwargs)
        except Exception:  # not known (an input without an example, a failing call)
            return
        finally:
            self.busy = False
        self.values[node] = value
        if self._is_sized(node, value):
            self.sized.add(node)
            node.meta["fl_sized"] = True  # the converter computes it in Python (_plain_call)
            if self._is_static(node, value):
                self.static.add(node)

    def _is_static(self, node: Any, value: Any) -> bool:
        """Of a sized node (_is_sized): whether ranks and dtypes alone fix it."""
        torch = self.torch
        if isinstance(value, torch.dtype):
            if str(value).rpartition(".")[2] not in self._DTYPES:
                return False
        elif not isinstance(value, (bool, int, float, str)):  # a shape, a tuple of sizes
            return False
        if node.op == "call_method" and node.target == "dim":
            return True
        if (node.op == "call_function" and node.target is getattr
                and node.args[1] in self._STATIC_ATTRS):
            return True
        # Otherwise static only as a Python function (_is_sized checked that) of static values
        if node.op != "call_function":
            return False
        inputs = node.all_input_nodes
        return bool(inputs) and all(n in self.static for n in inputs)

    def _is_sized(self, node: Any, value: Any) -> bool:
        """Whether ``value`` is a plain value (a number, a shape, a dtype, ...) computed from
        sizes, ranks, dtypes and constants alone, never from a tensor's values."""
        torch = self.torch

        def plain(v: Any) -> bool:
            if isinstance(v, (tuple, list)):
                return all(plain(e) for e in v)
            return isinstance(v, (bool, int, float, str, torch.dtype, torch.Size)) or v is None

        if not plain(value):
            return False
        if node.op == "call_method":
            return node.target in ("size", "dim") and isinstance(
                self.values.get(node.args[0]), torch.Tensor)
        if node.op != "call_function":
            return False
        if node.target is getattr:
            return node.args[1] in ("shape", "ndim", "dtype") and isinstance(
                self.values.get(node.args[0]), torch.Tensor)
        if (getattr(node.target, "__module__", None) or "") not in _PYTHON_MODULES:
            return False
        inputs = node.all_input_nodes
        return bool(inputs) and all(n in self.sized for n in inputs)

    def sized_value(self, obj: Any) -> tuple | None:
        """(value,) of a proxy that is a plain value computed from sizes (_is_sized)."""
        return self._known(obj, self.sized)

    def specialize(self, tracer: Any, obj: Any, kind: Any, frame: Any) -> Any:
        """``kind(value)`` of a sized proxy (a branch's truth value, int(), float()): the
        trace goes on with the examples' value, and records a guard (_specialized) that the
        conversion checks: it refuses a value that depends on the batch size, which the
        converted model leaves free."""
        value = kind(self.values[obj.node])
        where = "" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"
        tracer.create_proxy("call_function", _specialized, (obj, value, where), {})
        return value

    def static_value(self, obj: Any) -> tuple | None:
        """(value,) of a proxy that is static, else None."""
        return self._known(obj, self.static)

    def _known(self, obj: Any, nodes: set) -> tuple | None:
        if not isinstance(obj, self.torch.fx.Proxy) or obj.node not in nodes:
            return None
        return (self.values[obj.node],)

    def length(self, obj: Any) -> int | None:
        """The length of a proxy whose value on the examples is a shape (its rank) or a tuple
        of tensors, else None. (A tuple whose length depends on the batch size comes from a
        split along the batch axis, which the conversion refuses.)"""
        value = self.values.get(obj.node) if isinstance(obj, self.torch.fx.Proxy) else None
        if isinstance(value, self.torch.Size) or (
                isinstance(value, (tuple, list))
                and all(isinstance(v, self.torch.Tensor) for v in value)):
            return len(value)
        return None


# The modules of the Python functions that may compute on sizes (_ExampleRun._is_sized).
_PYTHON_MODULES = frozenset({"_operator", "operator", "math", "builtins"})


def _plain_call(node: Any) -> bool:
    """Whether fx node ``node`` is arithmetic on sizes (operator, math or builtins on values
    that the examples' run found computed from sizes, ranks and dtypes alone: ``w % 4``,
    ``math.ceil(h / p)``), which the conversion computes in Python."""
    module = getattr(node.target, "__module__", None) or ""
    return (node.op == "call_function" and bool(node.meta.get("fl_sized"))
            and module in _PYTHON_MODULES)


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


def _run_time_leaves(torch: Any, value: Any) -> tuple[bool, bool]:
    """Whether ``value`` (a converted argument, maybe nested) holds (a size known only at
    run time, a traced tensor)."""
    leaves = _leaves(torch, value)
    return (any(isinstance(v, (_Dim, _Unknown)) for v in leaves),
            any(isinstance(v, (_T, _C, S.SymbolicTensor)) for v in leaves))


def _specialized(value: Any, expected: Any, where: str) -> None:
    """The guard of a branch, int() or float() that the trace took with the examples' value
    (_ExampleRun.specialize): ``value`` (computed from sizes, ranks and dtypes) must give
    ``expected``."""
    got = type(expected)(value)
    if got != expected:
        raise TorchConversionError(
            f"from_torch: {where or 'the forward'} decided on what the examples fix (a size, "
            f"rank or dtype), {expected!r} while tracing but {got!r} when converted")


def _located(e: BaseException) -> str:
    """``e``'s message with the line of the traced code it came from: the innermost frame
    of its traceback outside torch and fastlayers (the user's or a library's forward)."""
    import linecache
    import os

    import torch

    skip = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, sys.modules[
        __name__.partition(".")[0]]))
    where = None
    tb = e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(skip) and not code.co_filename.startswith("<"):
            where = (code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if where is None:
        if str(e).startswith("argument of type"):  # fx's create_arg, on a forward's output
            return (f"{e} (torch.fx records tensors, numbers, strings and their tuples, lists "
                    "and dicts; HuggingFace models return a DynamicCache unless called with "
                    "use_cache=False)")
        return str(e)
    line = linecache.getline(*where).strip()
    hint = ""
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(os.path.join("nn", "utils", "rnn.py")):
            hint = (". Packed sequences (pack_padded_sequence) do not convert: run the "
                    "recurrent layer on the padded batch (and mask or pick its outputs by "
                    "length in NumPy), or convert it without the packing")
            break
        tb = tb.tb_next
    return f"{e} (at {where[0]}:{where[1]}: {line}){hint}"


_TRACING = threading.Lock()


@contextlib.contextmanager
def _tracing_patches(torch: Any) -> Iterator[None]:
    """What fx's trace of a forward needs from torch beyond fx itself, put back after it:

    - ``torch.finfo(x.dtype)`` of a traced tensor is float32's (HuggingFace's
      ``(1.0 - mask) * torch.finfo(x.dtype).min``): the dtype is a proxy then, which the real
      finfo refuses, and a converted model computes its floats in float32. Other arguments go
      to the real finfo.
    - ``x += y`` (and ``-=``, ``*=``, ``/=``) on a traced tensor is recorded as the in-place
      operator, not as ``x + y`` (_AUGMENTED).
    - ``torch.ones(T, T)``, ``zeros`` and ``empty`` with sizes read from an input (a causal
      mask's ``torch.ones(T, T)``): fx refuses the varargs form when a size is a proxy
      ("ones() takes 1 positional argument but 2 were given") and traces the tuple form,
      which is the same call; such a call is passed on as ``torch.ones((T, T))``.
    - PyTorch's fake tensors do not log the errors of the calls they cannot compute: the
      example run (_ExampleRun) expects some (a value that depends on data is not known)."""
    import logging

    with _TRACING:  # one trace at a time (fx's tracing is not thread-safe either)
        # torch.overrides and torch._dynamo (which fx imports) compute their tables of
        # torch's functions once, on first use, and keep them (functools.cache). Computed
        # during a trace, they would hold the patched functions below in place of torch's
        # own for good (torch.compile would then not know torch.tensor), and through
        # _trace's torch.tensor the trace and the whole module converted: the first
        # conversion in a process kept its PyTorch model alive (_trace drops that link too).
        import torch._dynamo.trace_rules as rules

        for table in (torch.overrides.get_ignored_functions,
                      torch.overrides.get_default_nowrap_functions,
                      torch.overrides.get_testing_overrides,
                      torch.overrides._get_overridable_functions,
                      torch.overrides._get_tensor_methods,
                      rules.get_torch_obj_rule_map, rules.get_tensor_method):
            table()
        fake_log = logging.getLogger("torch._subclasses.fake_tensor")
        was_disabled = fake_log.disabled
        fake_log.disabled = True
        real_finfo = torch.finfo

        def finfo(type: Any = None) -> Any:  # noqa: A002 - torch.finfo's own parameter name
            if isinstance(type, torch.fx.Proxy):
                return real_finfo(torch.float32)
            return real_finfo() if type is None else real_finfo(type)

        def sized(real: Any) -> Any:
            def factory(*size: Any, **kwargs: Any) -> Any:
                if len(size) > 1 and any(isinstance(d, torch.fx.Proxy) for d in size):
                    return real(tuple(size), **kwargs)
                return real(*size, **kwargs)
            return factory

        def in_place(op: Any) -> Any:
            def method(self: Any, other: Any) -> Any:
                return self.tracer.create_proxy("call_function", op, (self, other), {})
            return method

        tracing = [threading.get_ident()]  # emptied when the trace ends

        def drawn(name: str, real: Any) -> Any:
            def draw(*args: Any, **kwargs: Any) -> Any:
                # (other threads draw as usual while this one traces: the patch is global;
                # and a reference kept after the trace, `from torch import randn` imported
                # while tracing, draws as usual then)
                if threading.get_ident() in tracing and not any(
                        isinstance(v, torch.fx.Proxy) for v in (*args, *kwargs.values())):
                    raise TorchConversionError(
                        f"from_torch: torch.{name} in forward draws random numbers, which a "
                        "converted model cannot (it would return the one draw made while "
                        "converting on every call)")
                if name in ("rand", "randn") and len(args) > 1 and any(
                        isinstance(v, torch.fx.Proxy) for v in args):
                    # sizes read from the input (ViTMAE's torch.rand(batch, T)): fx records
                    # the tuple form only (as for torch.ones), then refuses it as random
                    return real(tuple(args), **kwargs)
                return real(*args, **kwargs)  # recorded by fx, then refused as random
            return draw

        saved = {n: getattr(torch, n) for n in ("finfo", "ones", "zeros", "empty",
                                                 *_RANDOM_FACTORIES)}
        # (torch.Tensor inherits them from TensorBase: put back by removing the patch)
        saved_methods = {n: torch.Tensor.__dict__.get(n) for n in _RANDOM_IN_PLACE}
        proxy = torch.fx.Proxy
        saved_proxy = {n: proxy.__dict__.get(n) for n, _ in _AUGMENTED}
        torch.finfo = finfo
        for n in ("ones", "zeros", "empty"):
            setattr(torch, n, sized(saved[n]))
        # (a draw with sizes known at conversion is made by fx while tracing and kept as a
        # constant: refused here; torch.empty(4).normal_() too)
        for n in _RANDOM_FACTORIES:
            setattr(torch, n, drawn(n, saved[n]))
        for n in saved_methods:
            setattr(torch.Tensor, n, drawn(f"Tensor.{n}", getattr(torch.Tensor, n)))
        for n, op in _AUGMENTED:
            setattr(proxy, n, in_place(op))
        try:
            yield
        finally:
            tracing.clear()
            fake_log.disabled = was_disabled
            for n, f in saved.items():
                setattr(torch, n, f)
            for n, f in saved_methods.items():
                if f is None:
                    delattr(torch.Tensor, n)
                else:
                    setattr(torch.Tensor, n, f)
            for n, f in saved_proxy.items():
                if f is None:
                    delattr(proxy, n)
                else:
                    setattr(proxy, n, f)


# x += y on a traced tensor: fx's Proxy has no __iadd__, so Python falls back to __add__ and fx
# records x + y, losing that PyTorch changed x itself (skip = h; h += f(h); h + skip reads
# the new h twice). While tracing, these record the in-place operator (_written_in_place).
_AUGMENTED = (("__iadd__", operator.iadd), ("__isub__", operator.isub),
              ("__imul__", operator.imul), ("__itruediv__", operator.itruediv),
              ("__ipow__", operator.ipow), ("__ifloordiv__", operator.ifloordiv),
              ("__iand__", operator.iand), ("__ior__", operator.ior),
              ("__ixor__", operator.ixor))


def _buffer_bytes(module: Any) -> dict:
    """Each buffer and a copy of it: fx traces with buffers as real tensors, so a forward that
    writes one in place (``self.count += 1``) writes it while tracing."""
    return {name: (b, b.detach().clone()) for name, b in module.named_buffers() if b is not None}


def _tensor_attributes(module: Any) -> dict:
    """Each tensor held as a plain attribute (not a parameter or buffer: ``self.count =
    torch.zeros(())``) by its qualified name, with a copy of it (_restore_tensors)."""
    import torch

    return {(f"{prefix}.{k}" if prefix else k): (v, v.detach().clone())
            for prefix, m in module.named_modules() for k, v in vars(m).items()
            if isinstance(v, torch.Tensor) and not isinstance(v, torch.nn.Parameter)}


def _put_back_in_place(t: Any, copy: Any) -> bool:
    """Whether tensor ``t`` differs from ``copy`` (bytes compared, so a NaN equals itself;
    or resized), and if so put back: in its own memory, so its views see the old values
    again (``set_`` only to undo a resize)."""
    import torch

    def raw(v: Any) -> Any:
        flat = v.detach().contiguous().reshape(-1)  # (a strided tensor: view needs stride 1)
        return flat.view(torch.uint8) if v.dtype != torch.bool else flat

    def plain(v: Any) -> bool:  # (a quantized or conjugate view cannot be viewed as bytes)
        return (v.layout == torch.strided and not v.is_quantized and not v.is_conj()
                and not v.is_neg())

    if t.shape == copy.shape and (torch.equal(raw(t), raw(copy)) if plain(t) and plain(copy)
                                  else torch.equal(t, copy)):
        return False
    with torch.no_grad():
        if t.shape == copy.shape:
            t.copy_(copy)
        else:
            t.set_(copy)
    return True


def _restore_tensors(saved: dict) -> list[str]:
    """The names of the tensor attributes the trace wrote in place (``self.count.add_(1)``
    runs while tracing: no graph node follows it), each put back."""
    return [name for name, (t, copy) in saved.items() if _put_back_in_place(t, copy)]


def _restore_buffers(module: Any, saved: dict) -> list[str]:
    """The names of the buffers the trace changed since ``_buffer_bytes`` - written in place,
    resized, or replaced by another tensor (``self.steps = self.steps + 1``) - each put back
    as it was (_put_back_in_place)."""
    changed = []
    for name, (b, copy) in saved.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if owner._buffers.get(attr) is not b:
            changed.append(name)
            owner._buffers[attr] = b
        elif _put_back_in_place(b, copy):
            changed.append(name)
    return changed


def _decorated(forward: Any) -> bool:
    """Whether a bound ``forward`` is a decorator's wrapper of the function it describes
    (``functools.wraps``: ``__wrapped__``)."""
    return hasattr(getattr(forward, "__func__", forward), "__wrapped__")


def _wrap_call(torch: Any, module: Any, names: list[str], keywords: str = "") -> Any:
    """A module whose forward(*names) calls ``module`` with them, positionally (a torch.nn
    leaf, or a module whose forward is decorated), and ``keywords`` ("use_cache=False")."""
    names = ", ".join(names)
    call = ", ".join(part for part in (names, keywords) if part)
    scope: dict[str, Any] = {}
    exec(f"def forward(self, {names}):\n    return self.module({call})\n", scope)  # noqa: S102
    wrapper = type("Wrapped" + type(module).__name__, (torch.nn.Module,),
                   {"forward": scope["forward"]})()
    wrapper.module = module
    return wrapper


def _hf_cache_argument(module: Any, given: int) -> bool:
    """Whether ``module`` is a HuggingFace model whose forward takes ``use_cache`` and the
    examples (``given`` positional inputs) do not pass it."""
    import inspect

    if not _from_transformers(module):
        return False  # (a composite model's config may hold use_cache in its text_config)
    params = list(inspect.signature(module.forward).parameters)
    return "use_cache" in params and "use_cache" not in params[:given]


def _infer_input(torch: Any, gm: Any, node: Any) -> tuple[tuple, Any]:
    nn = torch.nn
    for user in node.users:
        if user.op == "call_module":
            mod = gm.get_submodule(user.target)
            if isinstance(mod, nn.MultiheadAttention):  # query, key or value
                widths = {"query": mod.embed_dim, "key": mod.kdim, "value": mod.vdim}
                names = [n for n, a in zip(widths, user.args) if a is node] + [
                    n for n, a in user.kwargs.items() if a is node and n in widths]
                if names:
                    return (None, widths[names[0]]), np.float32
        if user.op == "call_module" and user.args and user.args[0] is node:
            mod = gm.get_submodule(user.target)
            if isinstance(mod, nn.Linear):
                return (mod.in_features,), np.float32
            if isinstance(mod, nn.Embedding):
                return (None,), np.int64
            if isinstance(mod, (nn.LSTM, nn.GRU, nn.RNN)):
                return (None, mod.input_size), np.float32
            if isinstance(mod, nn.TransformerEncoderLayer):
                return (None, mod.linear1.in_features), np.float32
            if isinstance(mod, nn.TransformerEncoder):
                return (None, mod.layers[0].linear1.in_features), np.float32
    raise ValueError(
        f"from_torch: cannot infer the shape of input {node.name!r}; pass example_inputs"
    )


def _index_template(value: Any, inputs: list[Any]) -> Any:
    """The input structure with each tensor replaced by its index among ``inputs``."""
    if isinstance(value, tuple):
        return tuple(_index_template(v, inputs) for v in value)
    return next(i for i, t in enumerate(inputs) if t is value.sym)


# Calls that write their first argument in place (besides those with inplace=True): x += y.
_IN_PLACE_OPERATORS = (operator.setitem, operator.iadd, operator.isub, operator.imul,
                       operator.itruediv,
                       operator.ipow, operator.ifloordiv, operator.iand, operator.ior,
                       operator.ixor)
# Calls whose result may share the memory of their first argument (a view, or the tensor
# itself: x.float() of a float32 x, contiguous, an Identity or eval Dropout): a write to
# either changes the other in PyTorch.
_VIEW_METHODS = frozenset({
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "transpose", "permute",
    "t", "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "select", "split", "chunk",
    "unbind", "movedim", "moveaxis", "swapaxes", "swapdims", "diagonal", "contiguous",
    "detach", "__getitem__", "float", "to", "type", "type_as", "tensor_split", "as_strided",
    "long", "int", "bool", "double", "half",  # (the tensor itself when of that dtype)
    "unfold",  # (Tensor.unfold's windows overlap in its input's memory)
    "cpu",  # (the tensor itself on the CPU)
    # complex views: view_as_real / view_as_complex reinterpret the same memory, conj and
    # resolve_conj may return the tensor itself (_C)
    "view_as_real", "view_as_complex", "conj", "resolve_conj", "resolve_neg",
})
# The dtype each cast method gives, as the converted model holds it (int32 as int64, float64
# and float16 as float32: _NP_DTYPES); a tensor of another dtype is copied (_shares).
_CAST_DTYPES = {"long": np.int64, "int": np.int64, "bool": np.bool_, "float": np.float32,
                "double": np.float32, "half": np.float32}
_SHARING_MODULES = frozenset({*_IDENTITY_MODULES, "Flatten", "Unflatten"})
# Functions that return their input in eval (torch.nn.functional's dropouts, torchvision's
# stochastic_depth), and the attributes that are views (x.T: fx records getattr(x, "T")).
_SHARING_FUNCTIONS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d",
                                "alpha_dropout", "feature_alpha_dropout", "stochastic_depth"})
_VIEW_ATTRIBUTES = frozenset({"T", "mT", "H", "mH", "data", "real", "imag"})
# The parts of sort's, topk's and max / min's (values, indices): fx records each read of
# s.values as a node of its own, so a write through one must count as a write to the pair.
_PAIR_ATTRIBUTES = frozenset({"values", "indices"})
# Calls whose results are slices that do not overlap (a write to one leaves the others).
# Calls whose results are parts that do not overlap: the slices of a split, and the
# (values, indices) of topk and of max / min along a dim (new tensors).
_SPLITS = frozenset({"split", "chunk", "unbind", "tensor_split", "topk", "max", "min", "sort"})


def _written_in_place(torch: Any, gm: Any, node: Any) -> Any:
    """The fx node whose tensor ``node`` writes in place (``x += y``, ``F.relu(x,
    inplace=True)``, a module made with ``inplace=True``, ``x.mul_(s)``: _IN_PLACE_METHODS),
    or None. (The other ``*_`` methods are refused before this.)"""
    if not node.args or not isinstance(node.args[0], torch.fx.Node):
        return None
    if node.op == "call_module":
        inplace = getattr(gm.get_submodule(node.target), "inplace", False) is True
        return node.args[0] if inplace else None
    if node.op == "call_method":
        return node.args[0] if node.target in _IN_PLACE_METHODS else None
    if node.op != "call_function":
        return None
    if node.target in _IN_PLACE_OPERATORS:
        return node.args[0]
    flag = node.kwargs.get("inplace")
    if flag is None and getattr(node.target, "__module__", None) == "torch.nn.functional":
        # (only torch.nn.functional's functions take inplace: no signature read for others)
        import inspect

        try:  # passed by position: F.relu(x, True), F.dropout(x, 0.1, False, True)
            flag = inspect.signature(node.target).bind(*node.args, **node.kwargs).arguments.get(
                "inplace")
        except (TypeError, ValueError):  # no signature (a builtin), or not bindable
            flag = None
    return node.args[0] if flag is True else None


def _same_key(torch: Any, gm: Any, a: Any, b: Any) -> bool:
    """Whether two fx index keys are the same: equal, but for constant index tensors, which
    fx records once for each use (x[:, torch.tensor([1, 3])] += 1)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return (isinstance(a, tuple) == isinstance(b, tuple) and len(a) == len(b)
                and all(_same_key(torch, gm, u, v) for u, v in zip(a, b)))
    if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node):
        if a is b:
            return True
        if a.op == b.op == "get_attr":
            u, v = (_attr(gm, n.target) for n in (a, b))
            return (isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor)
                    and u.shape == v.shape and u.dtype == v.dtype and bool(torch.equal(u, v)))
        return False
    if isinstance(a, slice) and isinstance(b, slice):
        return all(_same_key(torch, gm, u, v) for u, v in ((a.start, b.start),
                                                            (a.stop, b.stop), (a.step, b.step)))
    return type(a) is type(b) and a == b  # (0 is not False: x[False] adds an axis)


def _attr(gm: Any, target: str) -> Any:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _shares(torch: Any, gm: Any, node: Any, env: dict | None = None) -> bool:
    """Whether ``node``'s result may share the memory of its first argument (_VIEW_METHODS,
    _SHARING_MODULES, indexing). A cast method (``.long()``) shares only when its input
    has that dtype already, as far as ``env`` (the converted values) tells."""
    if node.op == "call_method":
        cast = _CAST_DTYPES.get(node.target)
        if cast is not None and env is not None and node.args:
            value = env.get(node.args[0])
            dtype = value.sym.dtype if isinstance(value, _T) else getattr(value, "dtype", None)
            if dtype is not None and np.dtype(dtype) != np.dtype(cast):
                return False  # a copy in PyTorch
        return node.target in _VIEW_METHODS
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__ in _SHARING_MODULES
    if node.op != "call_function":
        return False
    name = _torch_function_name(torch, node.target)
    return (node.target is operator.getitem
            or name in _VIEW_METHODS or name in _SHARING_FUNCTIONS
            or node.target is getattr and len(node.args) > 1
            and (node.args[1] in _VIEW_ATTRIBUTES or node.args[1] in _PAIR_ATTRIBUTES))


def _splits(node: Any) -> bool:
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", None)
    return node.op in ("call_method", "call_function") and name in _SPLITS


def _check_in_place(torch: Any, gm: Any, node: Any, group: list, order: dict, same: dict,
                    where: str, env: dict | None = None) -> None:
    """Refuse an in-place write by ``node`` that the converted model cannot follow. ``group``
    holds the nodes that are the written tensor itself (it, and the results of earlier
    in-place writes to it), which _build points at the new value; ``same`` maps each node
    written in place so far to its group. Refused: a write to a parameter or buffer (PyTorch's
    module would change from call to call), and a write when a tensor that may share its
    memory (a view of it or of what it views, made before the write, through any chain of
    views, casts that return their input, eval dropouts and indexing, and the earlier names
    of those) is read after it. The other slices of a split do not overlap the written one."""
    for member in group:
        if member.op == "get_attr":
            raise TorchConversionError(
                f"from_torch: {where} writes the parameter or buffer {member.target!r} in "
                "place (the module would change from call to call)")
        expanded = (member.op == "call_method" and member.target in ("expand", "expand_as")) or (
            member.op == "call_function" and member.target is torch.broadcast_to)
        src, out = ((env or {}).get(n) for n in (member.args[0] if member.args else None,
                                                 member))
        if expanded and isinstance(src, _T) and isinstance(out, _T) and (
                src.torch_shape == out.torch_shape):
            expanded = False  # an expand that grows nothing is the tensor itself
        if expanded:
            raise TorchConversionError(  # its elements share memory: PyTorch refuses the write
                f"from_torch: {where} writes {member.name}, an expanded tensor, in place "
                "(PyTorch refuses it too)")
    here = order[node]
    # x[k] += v: fx records t = x[k]; t += v; x[k] = t, the last node right after the write.
    # x itself is then written with t's values: read after that, it is the write-back's
    # result, which _build gives it (the other views of x are still refused).
    back = next((u for u in node.users if u.target is operator.setitem
                 and len(u.args) == 3 and u.args[2] is node), None)
    view = node.args[0]
    between = [] if back is None else [n for n in gm.graph.nodes
                                       if here < order[n] < order[back]]
    if back is None or any(n.op != "get_attr" for n in between) or not (
            view.target is operator.getitem and view.args[0] is back.args[0]
            and _same_key(torch, gm, view.args[1], back.args[1])):
        back = None  # (only constants, the key's index tensors, made in between)
    seen = set(group)
    todo = [(member, "down") for member in group]
    while todo:
        n, came = todo.pop()
        near = []
        if not (came == "up" and _splits(n)):  # from a slice up to its split: not siblings
            near += [(u, "down") for u in n.users
                     if u is not node and order[u] < here and _shares(torch, gm, u, env)]
        if _shares(torch, gm, n, env) and n.args and isinstance(n.args[0], torch.fx.Node):
            near.append((n.args[0], "up"))
        for m, way in near:
            for alias in same.get(m, [m]):
                if alias in seen:
                    continue
                seen.add(alias)
                todo.append((alias, way))
                if any(order[u] > here and not (back is not None and alias is back.args[0]
                                                and order[u] >= order[back])
                       for u in alias.users):
                    raise TorchConversionError(
                        f"from_torch: {where} writes {node.args[0].name} in place, and "
                        f"{alias.name}, which shares its memory in PyTorch, is read after it; "
                        "write it out of place (y = f(x) rather than an in-place call or +=)")


def _overwrite_problem(torch: Any, gm: Any, node: Any) -> str | None:
    """Why a ``Tensor.copy_`` node cannot be converted, or None when it overwrites a buffer
    that the forward reads only after the write, as Phi-3's longrope RoPE does
    (``self.inv_freq.copy_(torch.where(seq_len > original, long, short))``, then the rotary
    embedding reads ``self.inv_freq``). Each call then computes from the value it wrote
    itself, whatever the previous call left in the buffer, so the converted model computes
    what PyTorch does: the later reads read the written value (_build). A write into a
    parameter, a computed tensor, or a buffer read before it (that read would see what the
    previous call wrote) is refused."""
    dst = node.args[0] if node.args else None
    if not (isinstance(dst, torch.fx.Node) and dst.op == "get_attr"):
        return "into a computed tensor: write it out of place"
    value = _attr(gm, dst.target)
    if isinstance(value, torch.nn.Parameter) or not isinstance(value, torch.Tensor):
        return (f"into the parameter {dst.target!r}: the module would change from call to "
                "call")
    if len(node.args) != 2 or set(node.kwargs) - {"non_blocking"}:
        return "with these arguments"
    memory = value.untyped_storage().data_ptr()
    for n in gm.graph.nodes:
        other = _attr(gm, n.target) if n.op == "get_attr" and n.target != dst.target else None
        if isinstance(other, torch.Tensor) and other.untyped_storage().data_ptr() == memory:
            # a view of the buffer made before the write (fx keeps it as a constant), or a
            # buffer registered as one: PyTorch reads the written values through it
            return (f"into the buffer {dst.target!r}, whose memory {n.target!r} shares (a "
                    "view of it): reads through that would see the written values")
        sub = gm.get_submodule(n.target) if n.op == "call_module" else None
        if sub is not None and any(
                t.untyped_storage().data_ptr() == memory
                for t in [*sub.parameters(), *sub.buffers()]):  # (non-persistent ones too)
            # a module converted whole (BatchNorm's running_mean) takes the buffer's value at
            # conversion, not what the forward wrote before calling it
            return (f"into the buffer {dst.target!r}, which the module {n.target!r} reads: "
                    "converted with the value the buffer has at conversion")
    for n in gm.graph.nodes:
        if n is node:
            return None
        if n.op == "get_attr" and n.target == dst.target and any(
                u is not node for u in n.users) and (n is not dst or _used_before(dst, node)):
            break
    return (f"into the buffer {dst.target!r}, which the forward reads before it: that read "
            "would see what the previous call wrote")


def _used_before(value: Any, node: Any) -> bool:
    """Whether a node other than ``node`` that comes before it in the graph uses ``value``."""
    before = node.prev
    users = set(value.users) - {node}
    while before.op != "root":
        if before in users:
            return True
        before = before.prev
    return False


def _overwrite(conv: _Converter, old: np.ndarray, src: Any, where: str) -> Any:
    """The value of a buffer after ``buffer.copy_(src)`` (_overwrite_problem): src broadcast
    to the buffer's shape and cast to its dtype, as PyTorch's copy_ does."""
    if isinstance(src, _T):
        src = _to_torch(src)
        if tuple(src.sym.shape) != old.shape:
            raise TorchConversionError(
                f"from_torch: {where} (Tensor.copy_) writes a tensor of shape "
                f"{tuple(src.sym.shape)} into a buffer of shape {old.shape}: only the same "
                "shape is supported for a value computed from the inputs")
        return conv.cast(src, old.dtype) if np.dtype(src.sym.dtype) != old.dtype else src
    try:
        return np.array(np.broadcast_to(np.asarray(src), old.shape), dtype=old.dtype)
    except ValueError as e:
        raise TorchConversionError(f"from_torch: {where} (Tensor.copy_): {e}") from e


def _batch_hint(text: str) -> str:
    """A symbolic run's error (a call failing at every size tried for the unknown
    dimensions) said for a PyTorch user, who makes no Input: the unknown dimension is the
    batch axis."""
    return text.replace(
        S.UNKNOWN_SIZES_HINT,
        "the unknown one is the batch axis, which a converted model leaves free; if the module "
        "runs on the examples, this call fixes or splits the batch axis (a view(5, -1, d) of "
        "it, say), which from_torch cannot convert")


def _raw_attribute(root: Any, target: str) -> Any:
    """The parameter, buffer or attribute at the dotted ``target`` of module ``root``, read
    from the modules' own dicts (while fx traces, attribute reads of modules return its
    proxies); None if there is none."""
    obj = root
    for part in target.split("."):
        d = getattr(obj, "__dict__", {})
        for store in ("_parameters", "_buffers", "_modules"):
            if part in d.get(store, {}):
                obj = d[store][part]
                break
        else:
            obj = d.get(part)
    return obj


def _specialized_default(torch: Any, node: Any) -> tuple | None:
    """(value,) for the placeholder of a forward argument that fx traced as its non-tensor
    default (``forward(self, x, scale=2.0)`` with an example for x only: concrete_args), which
    holds the default and is read only by an ``assert arg == default``; else None."""
    if not node.args or not node.users:
        return None
    for user in node.users:
        if user.op != "call_function" or user.target is not operator.eq or not all(
                u.op == "call_function" and u.target is torch._assert for u in user.users):
            return None
    return (node.args[0],)


def _unique_layer_names(inputs: list[Any], outputs: list[Any]) -> None:
    """Give every layer of the converted graph a name of its own (a Model refuses two layers
    of one name, as Keras does): the layers made for functional calls (F.linear's Dense,
    F.embedding's Embedding, ...) take auto-names (``dense``) that a module of the same
    attribute name (``self.dense``) has too. The first in Keras's order keeps its name (a
    module's layers come before the calls that read their outputs), the others get the
    first free ``<name>_<k>``."""
    from ..models.functional import _layers_of

    layers, _ = _layers_of(inputs, outputs)
    taken = {layer.name for layer in layers}
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            k = 1
            while f"{layer.name}_{k}" in taken:
                k += 1
            layer.name = f"{layer.name}_{k}"
            taken.add(layer.name)
        seen.add(layer.name)


def _build(torch: Any, conv: _Converter, gm: Any, examples: Any, name: Any) -> TorchModel:
    env: dict[Any, Any] = {}
    inputs: list[Any] = []
    in_template: list[Any] = []
    fused: set[Any] = set()
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    order = {n: i for i, n in enumerate(gm.graph.nodes)}  # for in-place writes
    same: dict[Any, list] = {}  # a node -> the nodes that are its tensor (in-place results)
    overwritten: dict[str, Any] = {}  # a buffer's target -> what the forward wrote into it
    if examples is not None and len(examples) < len(placeholders):
        # An argument left at its default keeps a placeholder that only fx's checks read: for
        # None, _assert_is_none; for another value (traced as a constant), an assert that it
        # equals the default, which the placeholder holds (_specialized_default). Any other
        # argument needs an example.
        missing = [p.name for p in placeholders[len(examples):]
                   if _specialized_default(torch, p) is None
                   and any(getattr(u.target, "__name__", "") != "_assert_is_none"
                           for u in p.users)]
        if missing:
            raise ValueError(f"from_torch: no example input for {missing}")

    def load(a: Any) -> Any:
        return torch.fx.node.map_arg(a, lambda n: env[n])

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            i = len(in_template)
            if examples is not None and i >= len(examples):
                default = _specialized_default(torch, node)  # left at its default (above)
                env[node] = None if default is None else default[0]
                continue
            axis = _batch_axis(torch, gm, node)

            def make(ex: Any, label: str, axis: Any = axis) -> Any:
                if isinstance(ex, (tuple, list)):
                    return tuple(make(e, f"{label}_{j}", axis) for j, e in enumerate(ex))
                if ex.ndim == 0:
                    raise ValueError(f"from_torch: input {label!r} must have a batch axis")
                dtype = _input_dtype(ex)
                shape: list[Any] = list(ex.shape)
                if axis is not None and axis < len(shape):
                    shape[axis] = None
                inp = Input(tuple(shape[1:]), dtype=dtype, name=label, batch_size=shape[0])
                inp.node.layer.accept_same_kind_only()
                inputs.append(inp)
                return _T(inp, False)

            if examples is not None:
                value = make(examples[i], node.name)
            else:
                shape, dtype = _infer_input(torch, gm, node)
                if axis == 1:  # (T, B, F): seq-first
                    shape = (None,) + tuple(shape[1:]) if len(shape) > 1 else (None,)
                inp = Input(shape, dtype=dtype, name=node.name)
                inp.node.layer.accept_same_kind_only()
                inputs.append(inp)
                value = _T(inp, False)
            env[node] = value
            in_template.append(_index_template(value, inputs))
        elif node.op == "get_attr":
            if node.target in overwritten:  # read after the forward wrote it (_overwrite)
                env[node] = overwritten[node.target]
                continue
            obj = gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            env[node] = _numpy_of(torch, obj) if isinstance(obj, torch.Tensor) else obj
        elif node.op == "call_method" and node.target == "copy_":  # checked: _overwrite_problem
            dst = node.args[0]
            overwritten[dst.target] = env[node] = env[dst] = _overwrite(
                conv, env[dst], load(node.args[1]), conv._where(node))
        elif node in fused:
            env[node] = env[node.args[0]]  # folded into the layer before it (BN, activation)
        elif node.op in ("call_function", "call_method", "call_module"):
            args, kwargs = load(node.args), load(node.kwargs)
            checks = node.target in (torch._assert, operator.not_, _specialized)
            # (x[key] = value writes x: never computed on copies by PyTorch, _fold)
            if node.target is not operator.setitem and (
                    node in conv.constant or (not checks and _foldable(torch, args, kwargs))):
                # parameters and buffers alone, or with sizes known at conversion (a buffer
                # indexed by x.size(1)): computed by PyTorch
                env[node] = _fold(torch, gm, node, args, kwargs)
                continue
            where = conv._where(node)
            if any(_is_complex(v) for v in _leaves(torch, (args, kwargs))):
                # a complex tensor, or a complex constant with the converted graph's values
                env[node] = conv.complex_call(node.op, node.target, args, kwargs, where)
                continue
            if _plain_call(node) and conv._function_handler(node.target) is None:
                if any(_run_time_leaves(torch, (args, kwargs))):  # (arrays alone: folded)
                    raise TorchConversionError(
                        f"from_torch: {where} ({_fn_name(torch, node.target)}) of the batch "
                        "size or of a tensor: only sizes known at conversion are supported")
                env[node] = node.target(*args, **kwargs)
                continue
            try:
                if not checks:
                    _refuse_unknown(torch, args, kwargs)
                if node.op == "call_module":
                    fused.update(conv.plan_fusion(node))
                    try:
                        env[node] = conv.call_module(node.target, gm.get_submodule(node.target),
                                                     args, kwargs)
                    finally:
                        conv.fuse = conv.fold = None
                else:
                    try:
                        if node.op == "call_function":
                            handler = conv._function_handler(node.target)
                            if handler is None:  # known at check (_known_at_conversion)
                                if any(_run_time_leaves(torch, (args, kwargs))):
                                    raise TorchConversionError(
                                        f"from_torch: {where} ({_fn_name(torch, node.target)}"
                                        ") of values known only at run time (the batch size "
                                        "or a tensor)")
                                # numbers alone (torch.logspace(0, 1, x.shape[1])): PyTorch's
                                env[node] = _fold(torch, gm, node, args, kwargs)
                                continue
                            env[node] = handler(*args, **kwargs)
                        else:
                            env[node] = conv.method(node.target, *args, **kwargs)
                    except TypeError as e:  # arguments a handler does not take
                        what = (_fn_name(torch, node.target) if node.op == "call_function"
                                else f"Tensor.{node.target}")
                        raise TorchConversionError(f"from_torch: {where} ({what}) with these "
                                                   f"arguments: {_batch_hint(str(e))}") from e
            except (ValueError, TypeError) as e:
                if S.UNKNOWN_SIZES_HINT not in str(e):
                    raise
                # A call that fails for every batch size tried: said for a PyTorch user, who
                # makes no Input (the same exception type: the inputs may just not fit, as in
                # PyTorch; or the call splits the batch axis, view(5, -1, d)).
                if node.op == "call_module":
                    qual, what = node.target, type(gm.get_submodule(node.target)).__name__
                else:
                    qual, what = where, (_fn_name(torch, node.target)
                                         if node.op == "call_function"
                                         else f"Tensor.{node.target}")
                raise type(e)(f"from_torch: {qual} ({what}): {_batch_hint(str(e))}") from e
            except TorchConversionError as e:
                # Say where, when the handler's message does not (a module's qualified name,
                # or the fx node of a call: "layers.0.h_2", the forward's variable h).
                text = str(e)
                qual = node.target if node.op == "call_module" else where
                if qual not in text:
                    raise type(e)(f"{text} (at {where})") from e
                raise
            written = _written_in_place(torch, gm, node)
            if written is not None and isinstance(env.get(written), (_T, np.ndarray)):
                # PyTorch changed the tensor itself: what reads it, or an earlier in-place
                # result of it, from here on reads the result (y = l(x); z = relu_(y);
                # z + y is 2·relu(l(x)); z += 1 then changes y too).
                group = same.get(written, [written])
                _check_in_place(torch, gm, node, group, order, same, where, env)
                group.append(node)
                for member in group:
                    same[member] = group
                    env[member] = env[node]
        elif node.op == "output":
            result = load(node.args[0])
    flat: list[Any] = []

    def template(obj: Any) -> Any:
        if obj is None:
            return None
        if isinstance(obj, _T):
            flat.append(_to_torch(obj).sym)
            return len(flat) - 1
        # plain containers: fx's immutable ones would make the model need torch to unpickle
        if isinstance(obj, tuple):
            return tuple(template(o) for o in obj)
        if isinstance(obj, list):
            return [template(o) for o in obj]
        if isinstance(obj, dict):
            return {k: template(v) for k, v in obj.items()}
        if isinstance(obj, _C):
            raise TorchConversionError(
                "from_torch: an output of the module is a complex tensor; a converted model "
                "returns float32 arrays: return torch.view_as_real(z), or z.abs()")
        if isinstance(obj, np.ndarray):
            why = ("a constant: a tensor computed from parameters and buffers alone, not from "
                   "the inputs (keep it outside the converted model, e.g. read it from the "
                   "module)")
        else:
            why = f"a {type(obj).__name__} (a size or a number known at conversion)"
        raise TorchConversionError(
            f"from_torch: an output of the module is {why}; outputs may be tensors computed "
            "from the inputs, in tuples, lists and dicts, and None"
        )

    tmpl = template(result)
    if not flat:
        raise TorchConversionError("from_torch: the module returns no tensor")
    # Outputs that are inputs or repeated need a node of their own in a Model, and a copy
    # of their own: a caller who writes into one output changes no other, nor an input.
    seen: set[int] = set()
    for i, t in enumerate(flat):
        if t.id in seen or t.node is None or t in inputs:
            flat[i] = torch_copy(t)
        seen.add(flat[i].id)
    _unique_layer_names(inputs, flat)
    inner = Model(inputs, flat, name=(name + "_graph") if name else None)
    model = TorchModel(inner, tmpl, tuple(in_template), name=name)
    model.predict_refusal = "; ".join(dict.fromkeys(conv.predict_refusals)) or None
    return model
