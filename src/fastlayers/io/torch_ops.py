"""The ops of models converted by ``fastlayers.from_torch`` (io/torch_fx.py).

Module-level functions, so that a converted model pickles them by name and unpickles and
runs without PyTorch. Each takes and returns NumPy arrays in the layout the converter chose
(channels-last after a convolution); decorated with ``symbolic_op``, a call on symbolic
tensors records a node of the converted functional Model instead. Those that a model's
shape plan can run without their checks name a runner factory (``_plan_runner``;
models/shape_plan.py). What each computes, against PyTorch: docs/semantics.md §24.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _backend
from .. import _symbolic as S
from .. import _validation as V
from .. import activations as _fl_act
from .. import functional as FL
from .._cpp import activations as _cpp_act
from .._cpp import attention as _cpp_attention
from .._cpp import normalization as _cpp_norm
from .._cpp import resize as _cpp_resize
from .._numpy import activations as _act
from .._numpy import resize as _np_resize
from ._einsum import matmul_form

F32 = np.float32


@S.symbolic_op
def torch_permute(x, perm):
    """``x.permute(perm)`` as a contiguous array (layout changes at the model's edges)."""
    return FL.run_permute(np.asarray(x), tuple(perm))


# Shape-plan runners of these ops (models/shape_plan.py; each ``op.__plan_runner__``): called
# with a recorded call's arguments once its checks passed, they return a function of the same
# arguments (float32 arrays the plan guards, constants as recorded) that computes the same
# bits with less Python around it.


def _view_runner(fn):
    """``fn`` marked as possibly returning a view of its input (a plan runs it only on a new
    array that nothing else reads)."""
    fn.returns_view = True
    return fn


def _plan_runner(op, factory):
    """``factory`` as ``op``'s runner factory; it takes the op's constants (numbers, None,
    strings) as the op does (shape_plan.runner_of)."""
    factory.binds_constants = True
    op.__plan_runner__ = factory


def _torch_permute_runner(x, perm):
    perm = tuple(perm)

    def run(x, _perm):  # a copy, also where the op's transposed view is contiguous already
        return FL.run_permute(x, perm)

    return run


_plan_runner(torch_permute, _torch_permute_runner)


# Python's integer ops on a run-time size (a spec entry's ops): their sign, their function.
_SIZE_OPS = {"add": ("+", lambda v, k: v + k), "sub": ("-", lambda v, k: v - k),
             "mul": ("*", lambda v, k: v * k), "floordiv": ("//", lambda v, k: v // k)}


def _run_shape(spec, arrays):
    """A size ``spec`` (ints, or (j, axis): the size of axis ``axis`` of ``arrays[j]`` at run
    time, or (j, axis, ops): that size, then Python's ((op, int), ...) on it in order, as
    ``q.size(0) // heads``) as ints; torch_reshape, torch_expand and torch_full pass (x or
    None, *refs)."""
    def size(e):
        if isinstance(e, int):
            return e
        v = arrays[e[0]].shape[e[1]]
        for op, k in (e[2] if len(e) > 2 else ()):
            v = _SIZE_OPS[op][1](v, k)
        return v

    return [size(e) for e in spec]


@S.symbolic_op
def torch_reshape(x, *refs, spec):
    """``x.reshape(shape)``; ``spec`` entries are ints, -1, or (j, axis): the size of axis
    ``axis`` of ``(x, *refs)[j]`` at run time (a batch size read with ``x.size(0)``)."""
    shape = _run_shape(spec, (x, *refs))
    return np.ascontiguousarray(np.reshape(np.asarray(x), shape))


def _torch_reshape_output(x, *refs, spec):
    """The symbolic output of torch_reshape when zero runs cannot find it: a size read from
    another tensor that is unknown (the batch) while x's unknown size is a multiple of it
    (Swin's window reverse: windows (B * nW, ws * ws, C) viewed as (B, H/ws, W/ws, ws, ws,
    C)). Those sizes stay unknown; with a -1 among them there is no answer (None)."""
    dims = tuple(e if isinstance(e, int) else (x, *refs)[e[0]].shape[e[1]] for e in spec)
    if None not in dims or -1 in dims:
        return None
    known_in = math.prod(d for d in x.shape if d is not None)
    known_out = math.prod(d for d in dims if d is not None)
    if known_in and known_out and known_in % known_out and known_out % known_in:
        return None  # no batch sizes make the sizes agree: the zero run's error stands
    return dims, x.dtype


torch_reshape.__symbolic_output__ = _torch_reshape_output


def _torch_reshape_runner(x, *refs, spec):
    shape = tuple(_run_shape(spec, (x, *refs)))  # the refs' shapes are guarded
    return _view_runner(lambda x, *_refs: x.reshape(shape))


_plan_runner(torch_reshape, _torch_reshape_runner)


@S.symbolic_op
def torch_index(x, key):
    """``x[key]`` with basic indexing (ints, slices, None, Ellipsis), in PyTorch's layout."""
    return np.ascontiguousarray(np.asarray(x)[key])


@S.symbolic_op
def torch_gather_index(x, *indices, key):
    """``x[key]`` with integer index tensors (advanced indexing, as HuggingFace's mask
    functions ``padding_mask[batch_idx, kv_idx]`` do): ``key`` holds ints, slices, None,
    Ellipsis, constant int arrays, and ``_INDEX`` where the next of ``indices`` goes. As in
    PyTorch, an int selects its axis first; then NumPy's rules for the index arrays are
    PyTorch's: they broadcast, and their axes go where the first one is, or first when
    slices separate them. (NumPy would count an int as one of the index arrays:
    ``x[:, 0, :, idx]`` would put idx's axes first.)"""
    it = iter(indices)
    full = tuple(np.asarray(next(it)) if k is _INDEX else k for k in key)
    x = np.asarray(x)
    try:
        if any(type(k) is int for k in full):
            x = x[tuple(k if type(k) is int or k is Ellipsis else slice(None)
                        for k in full if k is not None)]
            full = tuple(k for k in full if type(k) is not int)
        return np.ascontiguousarray(x[full])
    except IndexError as e:
        # (HuggingFace's padding_mask[batch_idx, kv_idx] with a mask of another batch than
        # the ids': PyTorch took another branch for such inputs than for the examples')
        raise ValueError(
            f"indexing a tensor of shape {x.shape} failed ({e}): the converted model follows "
            "the code PyTorch ran for the example inputs, whose sizes agreed where these "
            "do not (a mask of batch 1 for ids of batch 3, say); give the inputs the same "
            "batch sizes as each other, or convert with examples shaped as these") from None


class _IndexSlot:
    """torch_gather_index: a place in the key that an input fills. One instance, _INDEX,
    compared by identity: a pickled model's key holds the same one (``__reduce__`` names
    it), as a copy of a string marker would not be."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_INDEX"

    def __repr__(self) -> str:
        return "<index tensor>"


_INDEX = _IndexSlot()


@S.symbolic_op
def torch_index_put(x, value, *indices, key):
    """``x[key] = value`` on a copy of x (PyTorch writes x itself; the converter points
    what reads x afterwards at this result): ``key`` as torch_gather_index's, index tensors
    (integer, or boolean masks) in the ``_INDEX`` slots; value a number or an array that
    broadcasts to the indexed part, cast to x's dtype as PyTorch casts it."""
    it = iter(indices)
    full = tuple(np.asarray(next(it)) if k is _INDEX else k for k in key)
    out = np.array(x, copy=True)
    out[full] = np.asarray(value).astype(out.dtype, copy=False)
    return out


@S.symbolic_op
def torch_arange(*refs, spec, start, step, dtype):
    """``torch.arange(start, end, step)`` whose end is a size known only at run time (the
    batch size: HuggingFace's ``torch.arange(batch_size)``); ``spec`` is (j, axis) as in
    torch_full."""
    (end,) = _run_shape(spec, (None, *refs))
    return np.arange(start, end, step).astype(dtype)


@S.symbolic_op
def torch_copy(x):
    """A new array holding x: a converted model's output that is one of its inputs or
    another of its outputs (two permutes of one stored tensor are that tensor), so that no
    output shares memory with an input or another output."""
    return np.array(x, copy=True)


@S.symbolic_op
def torch_prelu(x, alpha, axis):
    """``nn.PReLU`` as PyTorch's kernel computes it: x where x > 0, else alpha * x, alpha (1,)
    or one per entry of ``axis`` (the channels) of the stored array. Not Keras's relu(x) -
    alpha * relu(-x) (``_numpy.normalization.prelu``), which gives NaN for x > 0 when alpha is
    inf or NaN."""
    x = np.asarray(x, F32)
    shape = [1] * x.ndim
    if alpha.size > 1:
        shape[axis] = alpha.size
    with np.errstate(invalid="ignore"):  # 0 * -inf: NaN, as in PyTorch, without a warning
        return np.where(x > 0, x, alpha.reshape(shape) * x).astype(F32)


_REDUCTIONS = {"mean": np.mean, "sum": np.sum, "amax": np.amax, "amin": np.amin}


@S.symbolic_op
def torch_reduce(x, op, axes, keepdims, to_float=False):
    """``x.mean / sum / amax / amin(dim, keepdim)`` over ``axes`` of the stored array: float32
    for floats and with ``to_float`` (PyTorch's dtype=torch.float32; a mean or sum accumulated
    as NumPy does, pairwise); otherwise, for integers and booleans, as PyTorch, a sum in int64
    and a max or min in their own dtype."""
    x = np.asarray(x)
    if x.dtype.kind in "biu" and op != "mean" and not to_float:
        x = x.astype(np.int64) if op == "sum" else x
        return np.asarray(_REDUCTIONS[op](x, axis=axes, keepdims=keepdims))
    return np.asarray(_REDUCTIONS[op](x.astype(F32, copy=False), axis=axes, keepdims=keepdims),
                      F32)


@S.symbolic_op
def torch_max_dim(x, axis, keepdims, largest):
    """``torch.max / min(x, dim, keepdim)``: (values, indices) along ``axis`` of the stored
    array, the index of the first extreme as PyTorch returns it (of the first NaN, which
    both propagate), int64; the values in x's dtype (float32 for floats)."""
    x = np.asarray(x)
    x = x.astype(F32, copy=False) if x.dtype.kind == "f" else x
    pick, where = (np.max, np.argmax) if largest else (np.min, np.argmin)
    values = np.asarray(pick(x, axis=axis, keepdims=keepdims))
    return values, np.asarray(where(x, axis=axis, keepdims=keepdims)).astype(np.int64)


@S.symbolic_op
def torch_topk(x, k, axis, largest):
    """``torch.topk(x, k, dim, largest)``: (values, int64 indices) of the k largest (or
    smallest) along ``axis`` of the stored array, from the extreme on (PyTorch's sorted order;
    its unsorted order is unspecified, this one is as good); of equal values the lower index
    first (PyTorch does not specify which of them it picks: it may differ); NaN ranks above
    every number, as in PyTorch's topk."""
    x = np.asarray(x)
    x = x.astype(F32, copy=False) if x.dtype.kind == "f" else x
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"topk: k = {k} is out of range for an axis of size {x.shape[axis]}")
    if x.dtype.kind == "f":  # NaN first by a key of its own (it ties with no inf)
        nan = np.isnan(x)
        key = np.where(nan, F32(0), -x if largest else x)
        order = np.lexsort((key, ~nan if largest else nan), axis=axis)
    else:  # (~x: -x - 1, decreasing without overflow)
        key = ~x.astype(np.int64) if largest else x.astype(np.int64)
        order = np.argsort(key, axis=axis, kind="stable")
    index = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, index, axis=axis), index.astype(np.int64)


@S.symbolic_op
def torch_arg_extreme(x, axis, keepdims, largest):
    """``torch.argmax / argmin(x, dim, keepdim)``: int64 indices of the first extreme along
    ``axis`` of the stored array, or of the flattened array when axis is None (the
    PyTorch-order flattening: the caller passes x in PyTorch's layout then)."""
    x = np.asarray(x)
    where = np.argmax if largest else np.argmin
    if axis is None:
        out = where(x.reshape(-1))
        return np.asarray(out, np.int64).reshape((1,) * x.ndim if keepdims else ())
    return np.asarray(where(x, axis=axis, keepdims=keepdims), np.int64)


@S.symbolic_op
def torch_stat(x, op, axes, keepdims, correction=1, p=2.0):
    """``var`` / ``std`` (dividing by n - ``correction``, accumulated in float64),
    ``prod``, ``logsumexp``, the vector norms ``norm1`` / ``norm2`` / ``norminf``, ``norm0``
    (the count of nonzero entries, NaN counted), ``normninf`` (the smallest magnitude) and
    ``normp`` (any other finite p: (Σ|x|^p)^(1/p)), ``any`` and ``all`` over ``axes`` of the
    stored array: float32 for floats; a prod of integers in int64 and any / all as bool, as
    PyTorch."""
    x = np.asarray(x)
    if op in ("any", "all"):
        return np.asarray(getattr(np, op)(x, axis=axes, keepdims=keepdims))
    if op == "prod" and x.dtype.kind in "biu":
        return np.asarray(np.prod(x.astype(np.int64), axis=axes, keepdims=keepdims))
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if op in ("var", "std"):
            n = math.prod(x.shape[a] for a in axes)
            mean = x64.mean(axis=axes, keepdims=True)
            out = ((x64 - mean) ** 2).sum(axis=axes, keepdims=keepdims) / max(n - correction, 0)
            out = np.sqrt(out) if op == "std" else out
        elif op == "prod":
            out = np.prod(x64, axis=axes, keepdims=keepdims)
        elif op == "logsumexp":
            m = np.max(x64, axis=axes, keepdims=True)
            m = np.where(np.isinf(m), 0.0, m)  # all -inf, or an inf: PyTorch's shift of 0
            s = np.log(np.exp(x64 - m).sum(axis=axes, keepdims=True)) + m
            out = s if keepdims else np.squeeze(s, axis=axes)
        elif op == "norm1":
            out = np.abs(x64).sum(axis=axes, keepdims=keepdims)
        elif op == "norminf":
            out = np.abs(x64).max(axis=axes, keepdims=keepdims)
        elif op == "norm0":
            out = (x64 != 0).sum(axis=axes, keepdims=keepdims)
        elif op == "normninf":
            out = np.abs(x64).min(axis=axes, keepdims=keepdims)
        elif op == "normp":
            out = (np.abs(x64) ** p).sum(axis=axes, keepdims=keepdims) ** (1.0 / p)
        else:  # norm2
            out = np.sqrt((x64 * x64).sum(axis=axes, keepdims=keepdims))
    return np.asarray(out, F32)


@S.symbolic_op
def torch_cosine_similarity(a, b, axis, eps):
    """``F.cosine_similarity``: a·b / (max(‖a‖, eps) · max(‖b‖, eps)) along ``axis`` of the
    broadcast shape, accumulated in float64."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    na = np.maximum(np.sqrt((a * a).sum(axis=axis)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(axis=axis)), eps)
    return np.asarray((a * b).sum(axis=axis) / (na * nb), F32)


@S.symbolic_op
def torch_one_hot(ids, classes):
    """``F.one_hot(ids, classes)``: int64 (..., classes); ids outside [0, classes) raise
    ValueError, as PyTorch raises."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= classes):
        raise ValueError(f"one_hot: class values must be in [0, {classes}), got values from "
                         f"{ids.min()} to {ids.max()}")
    return (ids[..., None] == np.arange(classes)).astype(np.int64)


@S.symbolic_op
def torch_tri(x, diagonal, upper):
    """``torch.tril`` / ``triu``: zeros above (below) the diagonal of the last two axes."""
    x = np.asarray(x)
    return np.triu(x, diagonal) if upper else np.tril(x, diagonal)


def _index_in_range(index, n, what, low=0, where=""):
    """Raises ValueError for an index below ``low`` or at or past ``n``."""
    if index.size and (index.min() < low or index.max() >= n):
        raise ValueError(f"{what}: an index out of range for size {n}{where} "
                         f"(from {index.min()} to {index.max()})")


@S.symbolic_op
def torch_take(x, index, axis, along):
    """``torch.gather`` (``along``: index has x's rank; x is first cut to index's sizes on
    the other axes, as PyTorch reads only those) and ``index_select`` (a 1-D index). An
    index out of range raises ValueError."""
    x, index = np.asarray(x), np.asarray(index)
    if index.dtype.kind not in "iu":
        raise ValueError(f"gather / index_select: the index must be integers, got {index.dtype}")
    _index_in_range(index, x.shape[axis], "gather / index_select")
    if not along:
        return np.take(x, index, axis=axis)
    cut = tuple(slice(None) if a == axis else slice(0, s) for a, s in enumerate(index.shape))
    return np.take_along_axis(x[cut], index.astype(np.intp), axis=axis)


_SCATTER_UFUNCS = {"sum": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}
_SCATTER_IDENTITY = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}


@S.symbolic_op
def torch_scatter(x, index, src, axis, reduce, include_self):
    """PyTorch's scatter family on a copy of x (the converter points later reads of an
    in-place form's tensor at it): for every position p of ``index`` (an integer array of
    x's rank, no larger than x on the other axes, nor than src on any), the element of x at p
    with its ``axis`` coordinate replaced by ``index[p]`` receives ``src[p]`` (src an array,
    or one number for every position).

    ``reduce`` None replaces (``scatter``; where positions meet, the last one in row-major
    order of index wins, which PyTorch leaves unspecified); "sum", "prod", "amax", "amin"
    and "mean" combine, in that order (``scatter_add`` is "sum", ``scatter_reduce`` takes
    them all), starting from x's value (``include_self``) or from the scattered values
    alone; the mean divides by the count, x's value counted when included. NaN propagates
    through amax and amin. An index out of range, a negative one included (as PyTorch
    refuses it), raises ValueError."""
    x, index, src = np.asarray(x), np.asarray(index), np.asarray(src)
    if index.dtype.kind not in "iu":
        raise ValueError(f"scatter: the index must be integers, got {index.dtype}")
    beyond_x = any(i > d for a, (i, d) in enumerate(zip(index.shape, x.shape)) if a != axis)
    beyond_src = src.ndim and (src.ndim != x.ndim or any(
        i > d for i, d in zip(index.shape, src.shape)))
    if index.ndim != x.ndim or beyond_x or beyond_src:
        raise ValueError(f"scatter: an index of shape {index.shape} for a tensor of shape "
                         f"{x.shape} along dim {axis} and a source of shape {src.shape} (the "
                         "index may not be larger than the tensor on the other dims, nor than "
                         "the source on any)")
    _index_in_range(index, x.shape[axis], "scatter", where=f" along dim {axis}")  # (-1 too)
    out = np.array(x, copy=True)
    if index.size == 0:
        return out
    where = list(np.indices(index.shape, sparse=True))
    where[axis] = index
    where = tuple(where)
    if src.ndim:
        src = src[tuple(slice(0, s) for s in index.shape)]
    src = np.broadcast_to(src.astype(out.dtype, copy=False), index.shape)
    if reduce is None:
        out[where] = src
        return out
    if not include_self:
        ident = _SCATTER_IDENTITY[reduce]
        if out.dtype.kind in "iu" and reduce in ("amax", "amin"):
            info = np.iinfo(out.dtype)
            ident = info.min if reduce == "amax" else info.max
        out[where] = ident
    if reduce == "mean":
        count = np.zeros(out.shape, np.int64)
        np.add.at(count, where, 1)
        np.add.at(out, where, src)
        hit = count > 0
        count += 1 if include_self else 0
        out[hit] = out[hit] / count[hit].astype(out.dtype)
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        _SCATTER_UFUNCS[reduce].at(out, where, src)
    return out


@S.symbolic_op
def torch_index_add(x, index, source, axis, alpha, mode):
    """``index_add`` (mode "add": x's slices at ``index`` along ``axis`` plus alpha times
    source's slices, in index order), ``index_copy`` ("copy": replaced; where an index repeats,
    the last wins) and ``index_fill`` ("fill": source one number) on a copy of x; ``index`` a
    1-D integer array (or a number). An index out of range raises ValueError, a negative one
    too but for index_fill, which counts it from the end (as PyTorch's three do)."""
    x = np.asarray(x)
    index = np.asarray(index).reshape(-1)
    if index.dtype.kind not in "iu":
        raise ValueError(f"index_{mode}: the index must be integers, got {index.dtype}")
    n = x.shape[axis]
    low = -n if mode == "fill" else 0  # (PyTorch's index_fill alone wraps a negative index)
    _index_in_range(index, n, f"index_{mode}", low, where=f" along dim {axis}")
    index = np.where(index < 0, index + n, index)
    out = np.array(x, copy=True)
    moved = np.moveaxis(out, axis, 0)  # a view: writes land in out
    if mode == "fill":
        moved[index] = np.asarray(source).astype(out.dtype)
        return out
    src = np.moveaxis(np.asarray(source), axis, 0)
    if src.shape[0] != index.size or src.shape[1:] != moved.shape[1:]:
        raise ValueError(f"index_{mode}: a source of shape {np.asarray(source).shape} for "
                         f"{index.size} indices into shape {x.shape} along dim {axis}")
    src = src.astype(out.dtype, copy=False)
    if mode == "copy":
        moved[index] = src
    else:
        if alpha != 1:
            src = src * np.asarray(alpha).astype(out.dtype)
        np.add.at(moved, index, src)
    return out


@S.symbolic_op
def torch_take_along(x, index, axis):
    """``torch.take_along_dim(x, index, dim)``: x and index broadcast against each other on
    the other axes, then x's values at index along ``axis`` (torch_take's checks: an index
    out of range, negative ones included, raises ValueError, where PyTorch 2.13 wraps it
    around the axis without a word)."""
    x, index = np.asarray(x), np.asarray(index)
    if x.ndim != index.ndim:
        raise ValueError(f"take_along_dim: an index of rank {index.ndim} for a tensor of rank "
                         f"{x.ndim}")
    try:
        shape = np.broadcast_shapes(*(tuple(1 if a == axis else d for a, d in enumerate(s))
                                      for s in (x.shape, index.shape)))
    except ValueError as e:
        raise ValueError(f"take_along_dim: shapes {x.shape} and {index.shape} do not "
                         f"broadcast: {e}") from None

    def spread(a):
        return np.broadcast_to(a, shape[:axis] + (a.shape[axis],) + shape[axis + 1:])

    try:
        return torch_take.__wrapped_op__(spread(x), spread(index), axis, True)
    except ValueError as e:  # (said as take_along_dim, not gather)
        raise ValueError(str(e).replace("gather / index_select", "take_along_dim")) from None


@S.symbolic_op
def torch_embedding_bag(ids, table, mode, padding_idx):
    """``nn.EmbeddingBag`` of a 2-D (bags, length) id tensor, each row a bag: the sum, mean
    or max of its rows of ``table`` (torch_embedding_bags' reduction, which see)."""
    return torch_embedding_bags(ids, None, None, table, mode, padding_idx, False)


def _bag_bounds(ids, offsets, include_last):
    """(starts, ends) of the bags of 1-D ids cut at ``offsets`` (the last bag running to the
    end, or with ``include_last`` the offsets holding its end too); PyTorch's rules on offsets
    as ValueErrors."""
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise ValueError(f"EmbeddingBag: offsets must be a 1-D integer array, got shape "
                         f"{offsets.shape} and dtype {offsets.dtype}")
    n = ids.size
    if offsets.size and offsets[0] != 0:
        raise ValueError(f"EmbeddingBag: offsets[0] must be 0 (the first bag starts at the "
                         f"first id), got {offsets[0]}")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("EmbeddingBag: offsets must not decrease")
    if offsets.size and offsets[-1] > n:
        raise ValueError(f"EmbeddingBag: offsets[-1] = {offsets[-1]} is past the {n} ids")
    if include_last:
        # (PyTorch's contract: the last offset is the number of ids. It does not check it,
        # and then its modes disagree: sum stops at the offset, max runs to the end.)
        if offsets.size == 0 or offsets[-1] != n:
            raise ValueError(f"EmbeddingBag: with include_last_offset the last offset must be "
                             f"the number of ids, {n}; got offsets {offsets.tolist()[-3:]}")
        return offsets[:-1], offsets[1:]
    return offsets, np.append(offsets[1:], n).astype(offsets.dtype)


@S.symbolic_op
def torch_embedding_bags(ids, offsets, weights, table, mode, padding_idx, include_last):
    """``nn.EmbeddingBag`` with ``offsets`` (1-D ids cut into bags at them, PyTorch's rules:
    offsets[0] is 0, they do not decrease, ``include_last`` as the module's
    ``include_last_offset``, the last offset then the number of ids) or a 2-D (bags, length)
    id tensor, with ``per_sample_weights`` or not (``weights``, the shape of the ids, sum
    mode only: each row times its weight, rounded, then summed). The ids equal to
    ``padding_idx`` are left out (of the mean's count too), a bag with none left gives zeros;
    rows are summed in float32 in id order, the max propagates NaN. An id out of [0, rows)
    is a ValueError."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"EmbeddingBag: ids must be integers, got {ids.dtype}")
    if weights is not None:
        weights = np.asarray(weights, F32)
        if weights.shape != ids.shape:
            raise ValueError(f"EmbeddingBag: per_sample_weights of shape {weights.shape} for "
                             f"ids of shape {ids.shape} (they must match)")
        weights = weights.reshape(-1)
    if ids.ndim == 2:
        starts = np.arange(ids.shape[0]) * ids.shape[1]
        ends = starts + ids.shape[1]
        ids = ids.reshape(-1)
    else:
        starts, ends = _bag_bounds(ids, offsets, include_last)
    rows_n, dim = table.shape
    if ids.size and (ids.min() < 0 or ids.max() >= rows_n):
        raise ValueError(f"EmbeddingBag: an id out of range for {rows_n} rows (from "
                         f"{ids.min()} to {ids.max()})")
    bags = starts.size
    lengths = (ends - starts).astype(np.int64)
    maximum = mode == "max"
    out = np.full((bags, dim), -np.inf if maximum else 0.0, F32)
    count = np.zeros(bags, np.int64)
    # Position k of every bag at once, k = 0, 1, ...: each bag's rows are combined in id
    # order (PyTorch's), with one vectorized step per position rather than per id.
    for k in range(int(lengths.max(initial=0))):
        at = np.flatnonzero(lengths > k)
        where = starts[at] + k
        sel = ids[where]
        if padding_idx is not None:
            kept = sel != padding_idx
            at, where, sel = at[kept], where[kept], sel[kept]
        rows = table[sel]
        if weights is not None:
            rows = rows * weights[where][:, None]
        out[at] = np.maximum(out[at], rows) if maximum else out[at] + rows
        count[at] += 1
    count = count[:, None]
    if maximum:
        return np.where(count > 0, out, F32(0)).astype(F32)
    if mode == "sum":
        return out
    with np.errstate(all="ignore"):
        mean = out / count.astype(F32)
    return np.where(count > 0, mean, F32(0)).astype(F32)


def _torch_embedding_bags_output(ids, offsets, weights, table, mode, padding_idx,
                                 include_last):
    """The symbolic output of torch_embedding_bags with include_last_offset, whose zero runs
    fail (zero offsets never end at the ids' count): (bags, dim), the bags unknown; None
    (the zero run's error stands) for integer ids and offsets it refuses anyway."""
    if not include_last or np.dtype(ids.dtype).kind not in "iu":
        return None
    if isinstance(offsets, np.ndarray):  # a buffer: its own rules, whatever the ids
        if offsets.dtype.kind not in "iu" or offsets.ndim != 1 or (
                offsets.size and offsets[0] != 0) or np.any(np.diff(offsets) < 0):
            return None
    elif np.dtype(offsets.dtype).kind not in "iu":
        return None
    return (None, table.shape[1]), np.dtype(F32)


torch_embedding_bags.__symbolic_output__ = _torch_embedding_bags_output


@S.symbolic_op
def torch_nan_to_num(x, nan, posinf, neginf):
    """``torch.nan_to_num``: NaN, +inf and -inf replaced (the infinities by the dtype's
    largest and smallest values by default, as PyTorch)."""
    return np.nan_to_num(np.asarray(x), nan=nan, posinf=posinf, neginf=neginf)


@S.symbolic_op
def torch_diff(x, n, axis):
    """``torch.diff(x, n, dim)``: the n-th forward difference along ``axis``."""
    return np.diff(np.asarray(x), n=n, axis=axis)


class _ValuesIndices(tuple):
    """torch.max / min(x, dim)'s result: a pair with ``values`` and ``indices``."""

    @property
    def values(self) -> Any:
        return self[0]

    @property
    def indices(self) -> Any:
        return self[1]


@S.symbolic_op
def torch_activation(x, name, negative_slope=0.01):
    """An elementwise activation by name (relu, gelu, gelu_tanh, silu, tanh, sigmoid,
    leaky_relu with PyTorch's ``negative_slope``), float32, on any layout: the
    ``fastlayers.activations`` function (the C++ kernels where available), leaky_relu in
    NumPy. relu and relu6 of an integer tensor stay integer, as in PyTorch."""
    x = np.asarray(x)
    if name in ("relu", "relu6") and x.dtype.kind in "iu":
        y = np.maximum(x, x.dtype.type(0))
        return np.minimum(y, x.dtype.type(6)) if name == "relu6" else y
    x = x.astype(F32, copy=False)
    if name == "leaky_relu":
        return np.where(x >= 0, x, x * F32(negative_slope)).astype(F32)
    return getattr(_fl_act, name)(x)


@S.symbolic_op
def torch_softmax(x, axis):
    """Softmax over one axis as PyTorch computes it: fastlayers.softmax's values, but a slice
    holding +inf, or only -inf, is NaN (PyTorch's inf - inf) where fastlayers gives the limit
    (docs/semantics.md §15, §24: ``softmax(s.masked_fill(~valid, -inf)).nan_to_num(0)`` pools
    an empty set to zeros). axis None: a 0-d x as one element."""
    x = np.asarray(x, F32)
    if axis is None:
        return torch_softmax.__wrapped_op__(x.reshape(1), 0).reshape(())
    if x.size == 0:
        return np.empty(x.shape, F32)
    if _backend.resolve("softmax", None) == "cpp":  # the row kernel, its NaN rows left NaN
        last = axis in (-1, x.ndim - 1)
        xm = x if last and x.flags.c_contiguous else np.ascontiguousarray(np.moveaxis(x, axis, -1))
        y = _backend._core.softmax_lastdim(xm, None, False)
        return y if last else np.ascontiguousarray(np.moveaxis(y, -1, axis))
    with np.errstate(invalid="ignore"):  # NumPy's exp(x - max) / sum, as fastlayers' finite rows
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(F32, copy=False)


def _torch_softmax_runner(x, axis):
    if axis not in (-1, x.ndim - 1) or _backend.resolve("softmax", None) != "cpp":
        return None
    core = _backend._core
    return lambda x, _axis: core.softmax_lastdim(x, None, False)


_plan_runner(torch_softmax, _torch_softmax_runner)


@S.symbolic_op
def torch_binary(a, b, op):
    """a + b, a - b, a * b, a / b, a ** b, maximum or minimum with NumPy broadcasting;
    float32 unless both are ints. a & b, a | b, a ^ b of bools or ints (``bitwise_*``, as
    PyTorch: a float operand is an error) and ``logical_*`` (bool results)."""
    scalar = op == "pow" and isinstance(b, (int, float)) and not isinstance(b, bool)
    a = np.asarray(a)
    b_number = b
    b = np.asarray(b)
    if op.startswith("bitwise") and "f" in (a.dtype.kind, b.dtype.kind):
        raise TypeError(f"torch {op} of a float tensor (PyTorch refuses it too)")
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a = a.astype(F32, copy=False)
        b = b.astype(F32, copy=False)
    with np.errstate(all="ignore"):  # inf and NaN as IEEE arithmetic gives them, silently
        out = np.asarray(_pow_scalar(a, b_number) if scalar else _BINARY[op](a, b))
    return out.astype(F32) if out.dtype.kind == "f" else out


def _pow_scalar(a, e):
    """a ** e for a Python number e (not a 0-d tensor, which PyTorch raises with std::pow:
    NumPy's power) as PyTorch's CPU kernel computes a float tensor to a scalar power: 2 and
    3 by multiplication ((x * x) * x), 0.5 and -0.5 by sqrt, -1 and -2 by division; other
    powers by NumPy's power. (GPT-2's gelu takes x ** 3.0, which NumPy's power computes
    with powf, 55 ns an element here: 255 of a 560 ms forward.)"""
    if a.dtype.kind == "f":
        one = a.dtype.type(1)
        if e == 2:
            return a * a
        if e == 3:
            return a * a * a
        if e == 0.5:
            return np.sqrt(a)
        if e == -0.5:
            return one / np.sqrt(a)
        if e == -1:
            return one / a
        if e == -2:
            return one / (a * a)
    return np.power(a, np.asarray(e).astype(a.dtype) if a.dtype.kind == "f" else e)


_ARITHMETIC = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
               "pow": np.power, "maximum": np.maximum, "minimum": np.minimum}
# & | ^ of bool or integer tensors (masks), and torch.logical_and / or / xor (bool results)
_LOGICAL = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
            "bitwise_xor": np.bitwise_xor, "logical_and": np.logical_and,
            "logical_or": np.logical_or, "logical_xor": np.logical_xor}


def _floor_divide(a, b):
    """torch.div(a, b, rounding_mode="floor") and a // b: NumPy's floor_divide, Python's
    rule as PyTorch's for floats and integers. (An integer division by zero gives 0, where
    PyTorch raises: the shapes of a converted model are found on arrays of zeros.)"""
    return np.floor_divide(a, b)


def _trunc_divide(a, b):
    """torch.div(a, b, rounding_mode="trunc"): the quotient rounded toward zero (integers
    exactly, not through floats; by zero 0, as _floor_divide)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return np.trunc(np.true_divide(a, b))
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)))


# torch.div with rounding_mode "floor" (NumPy's floor_divide: Python's rule, as PyTorch's
# for floats and integers) or "trunc"; integers stay integers. torch.fmod (the remainder of
# the quotient truncated, C's fmod) and torch.remainder, a % b (of the floored quotient: the
# sign of b), as PyTorch's kernels compute them (fmod, then + b where the signs differ; an
# integer by zero gives 0 as _floor_divide); torch.atan2. (Not in _ARITHMETIC: the shape
# plan's float32 runner does not take them.)
_ROUNDED_DIV = {"floor_div": _floor_divide, "trunc_div": _trunc_divide, "fmod": np.fmod,
                "remainder": np.remainder, "atan2": np.arctan2}


def _xlogy(x, y):
    """torch.xlogy (and torch.special.xlogy): x · log(y), 0 where x is 0 unless y is NaN."""
    return np.where((x == 0) & (y == y), 0, x * np.log(y))


def _xlog1py(x, y):
    """torch.special.xlog1py: x · log1p(y), 0 where x is 0 unless y is NaN."""
    return np.where((x == 0) & (y == y), 0, x * np.log1p(y))


# Elementwise functions of two tensors (NumPy's own where it exists: NaN, inf and the
# roundings as PyTorch's within an ulp): fmax / fmin (a NaN operand loses, unlike maximum's),
# hypot, logaddexp (log(e^a + e^b)), logaddexp2, copysign, xlogy, xlog1py. Integer operands
# of fmax / fmin stay integers; the others give float32.
_MORE_BINARY = {"fmax": np.fmax, "fmin": np.fmin, "hypot": np.hypot,
                "logaddexp": np.logaddexp, "logaddexp2": np.logaddexp2,
                "copysign": np.copysign, "xlogy": _xlogy, "xlog1py": _xlog1py}
_BINARY = {**_ARITHMETIC, **_LOGICAL, **_ROUNDED_DIV, **_MORE_BINARY}


def _torch_binary_runner(a, b, op):
    """float32 arrays, or one and a number: the number as the float32 scalar torch_binary
    makes of it, bound."""
    if op not in _ARITHMETIC:
        return None  # bool results: the general executor
    fn = _BINARY[op]
    ca = None if isinstance(a, np.ndarray) else np.asarray(a).astype(F32)
    cb = None if isinstance(b, np.ndarray) else np.asarray(b).astype(F32)
    if ca is not None and cb is not None:
        return None
    if op == "pow" and cb is not None:  # a Python number as exponent: resolved once
        e = b

        def power(a, _b, _op):
            with np.errstate(all="ignore"):
                return np.asarray(_pow_scalar(a, e), F32)

        return power

    def run(a, b, _op):
        with np.errstate(all="ignore"):
            return np.asarray(fn(a if ca is None else ca, b if cb is None else cb), F32)

    return run


_plan_runner(torch_binary, _torch_binary_runner)


@S.symbolic_op
def torch_cat(xs, axis):
    """``torch.cat(xs, axis)``, in PyTorch's result dtype where the tensors' differ: float32
    if any is a float (NumPy would give float64 for float32 with int64), else int64, else
    bool."""
    arrays = [np.asarray(x) for x in xs]
    kinds = {a.dtype.kind for a in arrays}
    if len({a.dtype for a in arrays}) > 1:
        dtype = F32 if "f" in kinds else (np.int64 if kinds & set("iu") else np.bool_)
        arrays = [a.astype(dtype, copy=False) for a in arrays]
    return np.concatenate(arrays, axis=axis)


@S.symbolic_op
def torch_stack(xs, axis):
    """``torch.stack(xs, axis)`` (the final states of stacked recurrent layers)."""
    return np.stack([np.asarray(x) for x in xs], axis=axis)


def _pool_geometry(n, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    span = n + 2 * p - eff
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside
        out -= 1
    extra = max(0, (out - 1) * s + eff - (n + 2 * p))
    return out, extra


def _taps_in_reach(n, k, s, p, d, out):
    """(taps, extra) of a pooling axis without the taps that fall past the input and its
    padding for every window: with ceil_mode a window may be much larger than the input (HF
    EfficientNet's pooler is AvgPool2d(1280, ceil_mode=True) on a 7x7 map, a global mean).
    Those cells add nothing: 0 to a sum and to PyTorch's divisor, -inf to a max. Without them
    the padded copy and the tap loops no longer grow with the kernel (15.6 GiB for that
    pooler at batch 2)."""
    reach = n + 2 * p
    taps = min(k, (reach - 1) // d + 1)  # tap a is in reach for window 0 when a * d < reach
    return taps, max(0, (out - 1) * s + (taps - 1) * d + 1 - reach)


@S.symbolic_op
def torch_pool2d(x, kind, kernel, stride, padding, dilation=(1, 1), ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
    """PyTorch's ``max_pool2d`` / ``avg_pool2d`` on an NHWC array (padding symmetric, -inf
    for max and 0 for avg; ``ceil_mode``; the average's divisor as PyTorch counts it)."""
    x = np.asarray(x, F32)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, eh = _pool_geometry(h, kh, sh, ph, dh, ceil_mode)
    ow, ew = _pool_geometry(w, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"torch_pool2d: input {h}x{w} too small for a {kh}x{kw} window")
    kh, eh = _taps_in_reach(h, kh, sh, ph, dh, oh)
    kw, ew = _taps_in_reach(w, kw, sw, pw, dw, ow)
    if (dh, dw) == (1, 1) and (kind == "max" or (ph, pw, eh, ew) == (0, 0, 0, 0)
                               and not divisor_override):
        # The pooling layers' op (C++ under "auto"): the same taps folded in the same order
        # with -inf padding, so the same bits as the loop below (on C++ but for denormals,
        # flushed there, and a NaN's sign where NaNs of both signs meet in an average, as for
        # the pooling layers, semantics §21); an average without padding divides by the
        # window's size as PyTorch does.
        return FL.run_pool2d(np.ascontiguousarray(x), (kh, kw), (sh, sw),
                             (ph, ph + eh, pw, pw + ew), (oh, ow), kind != "max")
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (ph, ph + eh), (pw, pw + ew), (0, 0)), constant_values=fill)
    acc = None
    for a in range(kh):
        for b in range(kw):
            tap = xp[:, a * dh:a * dh + (oh - 1) * sh + 1:sh, b * dw:b * dw + (ow - 1) * sw + 1:sw]
            acc = tap.copy() if acc is None else (np.maximum(acc, tap) if kind == "max"
                                                   else acc + tap)
    if kind == "max":
        return np.ascontiguousarray(acc)
    if divisor_override:
        return (acc / F32(divisor_override)).astype(F32)
    # PyTorch divides by the window's cells inside input + padding (count_include_pad), or
    # inside the input only; cells added by ceil_mode past the padding never count.
    ones = np.zeros((h + 2 * ph + eh, w + 2 * pw + ew), F32)
    if count_include_pad:
        ones[:h + 2 * ph, :w + 2 * pw] = 1
    else:
        ones[ph:ph + h, pw:pw + w] = 1
    count = np.zeros((oh, ow), F32)
    for a in range(kh):
        for b in range(kw):
            count += ones[a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw]
    return (acc / count[None, :, :, None]).astype(F32)


@S.symbolic_op
def torch_pool1d(x, kind, kernel, stride, padding, dilation=1, ceil_mode=False,
                 count_include_pad=True):
    """PyTorch's ``max_pool1d`` / ``avg_pool1d`` on an NLC array: torch_pool2d on a height
    of 1."""
    x = np.asarray(x, F32)[:, None]
    return torch_pool2d(x, kind, (1, kernel), (1, stride), (0, padding), (1, dilation),
                        ceil_mode, count_include_pad)[:, 0]


@S.symbolic_op
def torch_log_softmax(x, axis, negate=False):
    """log_softmax over one axis (of -x for ``negate``: log of Softmin), as PyTorch computes
    it: x - max - log(sum(exp(x - max))), the sum in float64."""
    x = np.asarray(x, F32)
    if negate:
        x = -x
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        total = np.sum(np.exp(shifted.astype(np.float64)), axis=axis, keepdims=True)
        return (shifted - np.log(total)).astype(F32)


@S.symbolic_op
def torch_pad(x, widths, mode, value=0.0):
    """``F.pad`` of the array as stored: ``widths`` (before, after) per axis; mode
    "constant" (``value``), "reflect" (about the edge value, not repeating it), "replicate"
    (the edge value) or "circular" (wrapping around)."""
    x = np.asarray(x)
    if mode == "constant":
        # np.pad's constant mode, without its overhead (20 us on a small array): the borders
        # filled axis by axis (corners more than once), then x copied in
        y = np.empty(tuple(s + a + b for s, (a, b) in zip(x.shape, widths)), x.dtype)
        fill = x.dtype.type(value)
        for axis, (a, b) in enumerate(widths):
            lead = (slice(None),) * axis
            if a:
                y[lead + (slice(0, a),)] = fill
            if b:
                y[lead + (slice(y.shape[axis] - b, None),)] = fill
        y[tuple(slice(a, a + s) for s, (a, _) in zip(x.shape, widths))] = x
        return y
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge",
                                   "circular": "wrap"}[mode])


@S.symbolic_op
def torch_pixel_shuffle(x, r, inverse=False):
    """``pixel_shuffle`` on NHWC: channel c * r * r + i * r + j of pixel (h, w) goes to pixel
    (h * r + i, w * r + j), channel c (``inverse``: pixel_unshuffle, the way back)."""
    x = np.asarray(x, F32)
    n, h, w, c = x.shape
    if inverse:
        y = x.reshape(n, h // r, r, w // r, r, c).transpose(0, 1, 3, 5, 2, 4)
        return np.ascontiguousarray(y).reshape(n, h // r, w // r, c * r * r)
    y = x.reshape(n, h, w, c // (r * r), r, r).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(y).reshape(n, h * r, w * r, c // (r * r))


@S.symbolic_op
def torch_channel_shuffle(x, groups):
    """``ChannelShuffle`` on the last (channel) axis: the C = g * m channels read as (g, m)
    come out as (m, g)."""
    x = np.asarray(x, F32)
    g = groups
    y = x.reshape(*x.shape[:-1], g, x.shape[-1] // g).swapaxes(-1, -2)
    return np.ascontiguousarray(y).reshape(x.shape)


@S.symbolic_op
def torch_glu(x, axis):
    """``glu``: the first half of ``axis`` times the sigmoid of the second."""
    x = np.asarray(x, F32)
    a, b = np.split(x, 2, axis=axis)
    return (a * _act.ACTIVATIONS["sigmoid"](b)).astype(F32)


@S.symbolic_op
def torch_threshold(x, threshold, value):
    """``Threshold``: x where x > threshold, else ``value`` (NaN stays NaN, as in PyTorch)."""
    x = np.asarray(x, F32)
    return np.where((x > F32(threshold)) | np.isnan(x), x, F32(value)).astype(F32)


@S.symbolic_op
def torch_resize_corners(x, size):
    """``F.interpolate(mode="bilinear", align_corners=True)`` of an NHWC float32 x to
    ``size`` (out_h, out_w): the corner pixels' centres map onto each other (no Keras mode
    does this); the taps applied by the core's ``resample_axis`` on the C++ path."""
    return _np_resize.resize_images(np.asarray(x, F32), size, "bilinear",
                                    apply_taps=_cpp_resize.taps(), align_corners=True)


@S.symbolic_op
def torch_resize_cubic(x, size, align_corners):
    """``F.interpolate(mode="bicubic")`` of an NHWC float32 x to ``size`` (out_h, out_w):
    PyTorch's Keys cubic (A = -0.75), edges clamped, with or without align_corners (Keras's
    "bicubic" depends on its backend; this is PyTorch's alone); the taps applied by the
    core's ``resample_axis`` on the C++ path."""
    return _np_resize.resize_images(np.asarray(x, F32), size, "bicubic",
                                    apply_taps=_cpp_resize.taps(),
                                    align_corners=bool(align_corners))


@S.symbolic_op
def torch_unflatten(x, axis, sizes):
    """``unflatten``: axis ``axis`` split into ``sizes`` (one may be -1)."""
    x = np.asarray(x)
    return x.reshape(*x.shape[:axis], *sizes, *x.shape[axis + 1:])


@S.symbolic_op
def torch_scale_shift(x, scale, shift, activation=None):
    """x * scale + shift over the last axis (scale, shift float32 (C,)): an eval-mode
    BatchNorm, folded per channel; then ``activation`` (a name :func:`torch_activation`
    takes, or None). On C++ one pass (_cpp.normalization.channel_affine) with the activation
    in it when the core has its kernel: the bits of the affine (NumPy's product, then sum)
    and torch_activation run one after the other."""
    x = np.asarray(x, F32)
    # (torch_activation's leaky_relu takes PyTorch's slope; the core's kernel has Keras's)
    fused = None if activation in (None, "leaky_relu") else _cpp_act.fused_id(activation)
    if x.size and _backend.resolve("batch_norm", None) == "cpp":
        y = _cpp_norm.channel_affine(np.ascontiguousarray(x), scale, shift, -1, fused or 0)
        if activation is None or fused is not None:
            return y
    else:
        y = (x * scale + shift).astype(F32)
    return y if activation is None else torch_activation(y, activation)


@S.symbolic_op
def torch_layer_norm(x, weight, bias, naxes, eps):
    """PyTorch ``LayerNorm`` over the last ``naxes`` axes (biased variance): PyTorch's formula
    is Keras's (``fastlayers.layer_norm``, C++ under ``auto``), with PyTorch's eps."""
    x = np.asarray(x, F32)
    return FL.layer_norm(x, weight, bias, axis=tuple(range(x.ndim - naxes, x.ndim)),
                         epsilon=float(eps))


def _torch_layer_norm_runner(x, weight, bias, naxes, eps):
    return FL.layer_norm.__plan_runner__(x, weight, bias, tuple(range(x.ndim - naxes, x.ndim)),
                                         float(eps))


_plan_runner(torch_layer_norm, _torch_layer_norm_runner)


class MultiheadAttentionWeights(dict):
    """One ``nn.MultiheadAttention``'s weights in Keras layout: kernels (in, E) "wq", "wk",
    "wv", "wo" and biases (or None) "bq", "bk", "bv", "bo". On the C++ path the four
    projections are packed on first use (:meth:`projections`) and kept with the dict, as a
    layer keeps its packed weights; a pickle holds the arrays alone."""

    _packed: Any = None

    def projections(self, num_heads: int) -> Any:
        """``_cpp.attention.pack_multi_head_attention``'s four functions x (rows, in) ->
        (rows, out) for these weights, or None when the C++ core is not available."""
        if self._packed is None and _backend.core_available():
            self._packed = _cpp_attention.pack_multi_head_attention(
                *_keras_mha_weights(self, num_heads))
        return self._packed

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))


def _keras_mha_weights(w: dict, n: int) -> tuple:
    """(kernels, biases) of MHA weights ``w`` in fastlayers.multi_head_attention's shapes:
    (in, n, hd) x 3 and (n, hd, out); (n, hd) x 3 and (out,), or None."""
    hd = w["wq"].shape[1] // n
    kernels = (w["wq"].reshape(-1, n, hd), w["wk"].reshape(-1, n, hd),
               w["wv"].reshape(-1, n, hd), w["wo"].reshape(n, hd, -1))
    biases = tuple(None if w[k] is None else w[k].reshape(n, hd) for k in ("bq", "bk", "bv"))
    return kernels, biases + (w["bo"],)


def _mha_projections(weights: dict, num_heads: int) -> Any:
    """The packed projections of ``weights`` when attention runs on the C++ path, else None
    (also for a plain dict: a model converted before the weights had their own class)."""
    if not isinstance(weights, MultiheadAttentionWeights):
        return None
    cpp = _backend.resolve("multi_head_attention", None) == "cpp"
    return weights.projections(num_heads) if cpp else None


@S.symbolic_op
def torch_multihead_attention(query, key, value, key_padding_mask=None, attn_mask=None, *,
                              weights, num_heads, need_weights, average):
    """``nn.MultiheadAttention`` on batch-first inputs (B, T, E), (B, S, Ek), (B, S, Ev).

    ``weights``: a :class:`MultiheadAttentionWeights` (or a dict of the same keys). Masks
    follow PyTorch: boolean True = blocked, float = added to the scores;
    ``key_padding_mask`` (B, S), ``attn_mask`` (T, S) or (B·N, T, S). Returns the output
    (B, T, E), or (output, weights) with the weights averaged over heads (B, T, S) when
    ``average``, else (B, N, T, S).
    """
    q = np.asarray(query, F32)
    k = np.asarray(key, F32)
    v = np.asarray(value, F32)
    b, t, _ = q.shape
    s = k.shape[1]
    n = num_heads
    w = weights
    e = w["wq"].shape[1]
    hd = e // n
    packed = _mha_projections(w, n)
    masks_bool = all(m is None or np.asarray(m).dtype == np.bool_
                     for m in (key_padding_mask, attn_mask))
    if masks_bool and (attn_mask is None or np.asarray(attn_mask).ndim == 2):
        # Boolean masks shared by the heads: fastlayers' fused attention (Keras kernels,
        # True = may attend).
        allowed = None
        if attn_mask is not None:
            allowed = np.broadcast_to(~np.asarray(attn_mask), (b, t, s))
        if key_padding_mask is not None:
            kp = ~np.asarray(key_padding_mask)[:, None, :]
            allowed = kp if allowed is None else allowed & kp
        if allowed is not None:
            allowed = np.ascontiguousarray(np.broadcast_to(allowed, (b, t, s)))
        kernels, biases = _keras_mha_weights(w, n)
        checked = V.check_multi_head_attention(q, v, k, *kernels, *biases, allowed, False,
                                               need_weights)
        out = FL.run_multi_head_attention(checked, packed)
        if not need_weights:
            return out
        out, scores = out
        return out, (scores.mean(axis=1).astype(F32) if average else scores)
    # Float (additive) or per-head masks: the scores are formed here.
    if packed is None:
        qp, kp_, vp = (FL.dense(x, w["w" + c], w["b" + c]) for x, c in ((q, "q"), (k, "k"),
                                                                         (v, "v")))
    else:
        qp, kp_, vp = (p(x.reshape(-1, x.shape[-1])) for x, p in zip((q, k, v), packed))
    qh = qp.reshape(b, t, n, hd).transpose(0, 2, 1, 3) * F32(1.0 / math.sqrt(hd))
    kh = kp_.reshape(b, s, n, hd).transpose(0, 2, 1, 3)
    vh = vp.reshape(b, s, n, hd).transpose(0, 2, 1, 3)
    scores = np.matmul(qh, kh.transpose(0, 1, 3, 2)).astype(F32)
    for m, shape in ((attn_mask, None), (key_padding_mask, (b, 1, 1, s))):
        if m is None:
            continue
        m = np.asarray(m)
        add = np.where(m, F32(-np.inf), F32(0)) if m.dtype == np.bool_ else m.astype(F32)
        if shape is not None:
            add = add.reshape(shape)
        elif add.ndim == 3:
            if add.shape != (b * n, t, s):
                raise ValueError(
                    f"torch MultiheadAttention: a per-head attn_mask of shape {add.shape} needs "
                    f"(batch * num_heads, T, S) = ({b} * {n}, {t}, {s})")
            add = add.reshape(b, n, t, s)
        scores = scores + add
    probs = _act.softmax(scores.astype(F32), axis=-1)
    o = np.matmul(probs, vh).astype(F32).transpose(0, 2, 1, 3).reshape(b, t, e)
    out = FL.dense(o, w["wo"], w["bo"]) if packed is None else packed[3](o.reshape(b * t, e))
    out = out.reshape(b, t, out.shape[-1])  # (not -1: an empty batch has size 0)
    if not need_weights:
        return out
    return out, (probs.mean(axis=1).astype(F32) if average else probs)


def _torch_multihead_attention_output(query, key, value, key_padding_mask=None, attn_mask=None,
                                      *, weights, num_heads, need_weights, average):
    """The symbolic output of torch_multihead_attention when zero runs cannot find it: a
    per-head attn_mask (B·N, T, S) of fixed size (an input or a buffer) with the batch left
    free, which the zero runs' batch sizes do not fit (B·N is 6 for a batch of 3, say). The
    output is (B, T, E) all the same, with the weights (B, T, S) averaged or (B, N, T, S);
    a batch the mask does not fit raises when called."""
    if len(getattr(attn_mask, "shape", ())) != 3:
        return None
    b, t, s = query.shape[0], query.shape[1], key.shape[1]
    f32 = np.dtype(np.float32)
    out = ((b, t, weights["wo"].shape[1]), f32)
    if not need_weights:
        return out
    return [out, ((b, t, s) if average else (b, num_heads, t, s), f32)]


torch_multihead_attention.__symbolic_output__ = _torch_multihead_attention_output


@S.symbolic_op
def torch_zero_padded(x, key_padding_mask, check_left_aligned=True):
    """What ``nn.TransformerEncoder``'s nested-tensor path does to padded positions: x
    (B, T, E) with the steps where ``key_padding_mask`` (B, T) is True set to 0 - only when
    every row's padding is at its end (PyTorch's ``mask_check``; otherwise x unchanged)."""
    x = np.asarray(x, F32)
    pad = np.asarray(key_padding_mask)
    pad = pad if pad.dtype == np.bool_ else pad != 0
    keep = ~pad
    if check_left_aligned and keep.size:
        # left-aligned: once a step is padded, every later step is padded too
        if np.any(keep[:, 1:] & ~keep[:, :-1]):
            return x
    return np.where(keep[:, :, None], x, F32(0)).astype(F32)


@S.symbolic_op
def torch_sdpa(q, k, v, attn_mask=None, *, is_causal, scale, gqa):
    """``F.scaled_dot_product_attention`` as PyTorch's CPU kernels compute it in inference.

    q (..., L, E), k (..., S, E), v (..., S, Ev), leading dims broadcasting. ``attn_mask``
    broadcastable to (..., L, S): boolean (True = takes part) or float (added to the scaled
    scores); ``is_causal``: query i sees keys j <= i (top-left aligned), with the mask too
    (PyTorch's default CPU kernel combines them; its other kernels - 3-D inputs, a 3-D mask,
    broadcast k and v, E != Ev - refuse the pair). A row left with no key gives 0, as
    PyTorch's CPU kernels return. ``gqa``
    (``enable_gqa``): each k and v head serves q.shape[-3] / k.shape[-3] query heads.
    Returns (..., L, Ev) float32.
    """
    q, k, v = (np.asarray(a, F32) for a in (q, k, v))
    if gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        if k.shape[-3] == 0 or q.shape[-3] % k.shape[-3] or v.shape[-3] != k.shape[-3]:
            raise ValueError(f"scaled_dot_product_attention: enable_gqa with {q.shape[-3]} "
                             f"query heads and {k.shape[-3]} key, {v.shape[-3]} value heads")
        rep = q.shape[-3] // k.shape[-3]
    else:
        rep = 1
    mask = None if attn_mask is None else np.asarray(attn_mask)
    # Grouped k and v go to fastlayers' sdpa as they are (read in place); repeated for an
    # additive mask (scores formed here) or leading dims that broadcast.
    grouped = rep > 1 and (mask is None or mask.dtype == np.bool_) and (
        k.shape[:-3] == q.shape[:-3] and v.shape[:-3] == q.shape[:-3])
    if rep > 1 and not grouped:
        k, v = np.repeat(k, rep, axis=-3), np.repeat(v, rep, axis=-3)
    if not grouped:
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        q, k, v = (a if a.shape[:-2] == lead else
                   np.ascontiguousarray(np.broadcast_to(a, lead + a.shape[-2:]))
                   for a in (q, k, v))
    causal = np.tri(q.shape[-2], k.shape[-2], dtype=bool) if is_causal else None
    if mask is not None and mask.dtype != np.bool_:
        # An additive mask: the scores are formed here; a row of -inf scores gives 0.
        sc = F32(1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
        scores = FL.matmul(q, k, transpose_b=True) * sc + mask.astype(F32)
        if causal is not None:
            scores = np.where(causal, scores, F32(-np.inf))
        top = scores.max(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore"):
            e = np.exp(scores - np.where(np.isneginf(top), F32(0), top))
        total = e.sum(axis=-1, keepdims=True)
        p = (e / np.where(total > 0, total, F32(1))).astype(F32)
        return FL.matmul(p, v)
    out = FL.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=bool(is_causal),
                                          scale=scale, enable_gqa=grouped)
    if mask is not None:
        allowed = mask if causal is None else mask & causal
        dead = ~allowed.any(axis=-1, keepdims=True)  # (..., L or 1, 1)
        if dead.any():  # fastlayers attends uniformly there (§14), PyTorch's CPU gives 0
            out = np.where(dead, F32(0), out).astype(F32)
    return out


# Elementwise functions of one tensor: NumPy's, in float32 (neg, abs, square keep integers).
_UNARY = {
    "neg": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
    "rsqrt": lambda x: np.reciprocal(np.sqrt(x)), "reciprocal": np.reciprocal,
    "square": np.square, "sin": np.sin, "cos": np.cos, "log1p": np.log1p, "expm1": np.expm1,
    "tan": np.tan, "atan": np.arctan, "asin": np.arcsin, "acos": np.arccos, "sinh": np.sinh,
    "cosh": np.cosh, "log2": np.log2, "log10": np.log10, "exp2": np.exp2, "erf": _act.erf,
    # PyTorch's sign of NaN is 0; round is half to even, as NumPy's
    "sign": lambda x: np.where(x != x, x.dtype.type(0), np.sign(x)), "floor": np.floor,
    "ceil": np.ceil, "trunc": np.trunc, "round": np.round,
    "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
    "logical_not": np.logical_not, "bitwise_not": np.invert,  # ~mask
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "erfc": _act._erfc,  # (relative error below 1.2e-7 where 1 - erf(x) would cancel)
    "sinc": np.sinc,  # sin(pi x) / (pi x), 1 at 0
    "deg2rad": np.deg2rad, "rad2deg": np.rad2deg,
    "frac": lambda x: x - np.trunc(x),  # the sign of x, as PyTorch's
    "sgn": lambda x: np.where(x != x, x.dtype.type(0), np.sign(x)),  # sign, of a real tensor
    "positive": lambda x: x.copy(),
    "i0": lambda x: np.i0(x.astype(np.float64)),  # (NumPy's i0 is float64's)
    "signbit": np.signbit,
}
_KEEP_INT = ("neg", "abs", "square", "sign", "sgn", "floor", "ceil", "trunc", "round",
             "positive", "frac")
_KEEP_DTYPE = ("isnan", "isinf", "isfinite", "logical_not", "bitwise_not", "signbit")  # not cast


def _logit(x):
    """log(x / (1 - x)), as PyTorch's kernel computes it (torch_logit clamps first)."""
    return np.log(x / (1 - x))


def _entr(x):
    """torch.special.entr: -x · log(x) for x > 0, 0 at 0, -inf below; NaN stays NaN."""
    return np.where(x > 0, -x * np.log(np.where(x > 0, x, 1)),
                    np.where(x == 0, 0, np.where(x < 0, -np.inf, x)))


def _ndtr(x):
    """torch.special.ndtr: the standard normal distribution function, erfc(-x / sqrt 2) / 2
    (no cancellation in the left tail)."""
    return 0.5 * _act._erfc(-x.astype(np.float64) * (1.0 / math.sqrt(2.0)))


# torch.special's functions that are no torch.* function or Tensor method (torch_unary).
_SPECIAL_UNARY = {"ndtr": _ndtr, "entr": _entr, "logit": _logit}


@S.symbolic_op
def torch_unary(x, name):
    """``torch.<name>(x)`` elementwise (_UNARY): float32 (a float result of an integer
    tensor too, as PyTorch's exp, sqrt, ... give); neg, abs, square and the roundings keep
    integers; the predicates give bool. inf and NaN as IEEE arithmetic gives them, without
    NumPy's warnings."""
    x = np.asarray(x)
    fn = _UNARY[name] if name in _UNARY else _SPECIAL_UNARY[name]
    if name == "bitwise_not" and x.dtype.kind == "f":
        raise TypeError("torch bitwise_not (~) of a float tensor (PyTorch refuses it too)")
    if name in _KEEP_DTYPE:
        return np.asarray(fn(x))
    if x.dtype == np.bool_ and name in ("sign", "sgn", "square"):
        return x.astype(np.int64) if name == "square" else x.copy()  # PyTorch's dtypes
    if x.dtype.kind in "iu" and name in _KEEP_INT:
        return np.asarray(fn(x)) if name != "frac" else np.zeros_like(x)
    with np.errstate(all="ignore"):
        return np.asarray(fn(x.astype(F32, copy=False)), F32)


@S.symbolic_op
def torch_logit(x, eps):
    """``torch.logit(x, eps)``: log(x / (1 - x)) in float32, x clamped to [eps, 1 - eps]
    first when eps is not None (then 0 and 1 give finite values; NaN stays NaN)."""
    x = np.asarray(x).astype(F32, copy=False)
    if eps is not None:
        lo = F32(eps)
        x = np.where(x < lo, lo, np.where(x > F32(1) - lo, F32(1) - lo, x))
    with np.errstate(all="ignore"):
        return np.asarray(_logit(x), F32)


@S.symbolic_op
def torch_clamp(x, lo, hi):
    """``torch.clamp(x, min, max)`` (either bound may be None): NaN stays NaN; an integer
    tensor with a float bound is clamped as float32, as PyTorch promotes it."""
    x = np.asarray(x)
    if x.dtype.kind != "f" and any(isinstance(v, float) for v in (lo, hi)):
        x = x.astype(F32)
    if lo is not None:
        x = np.where(x < lo, x.dtype.type(lo), x)
    if hi is not None:
        x = np.where(x > hi, x.dtype.type(hi), x)
    return np.ascontiguousarray(x)


def _promoted(a, b):
    """a and b as arrays in the dtype PyTorch computes ``a op b`` in, for float32 models:
    float32 when either is a float (a tensor or a Python number: PyTorch casts a Python
    float to the tensor's float32, or an integer tensor to float32), else as they are."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return a.astype(F32, copy=False), b.astype(F32, copy=False)
    return a, b


@S.symbolic_op
def torch_compare(a, b, op):
    """a == b, !=, <, <=, >, >= with broadcasting, in PyTorch's dtype: a boolean tensor."""
    fn = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
          "gt": np.greater, "ge": np.greater_equal}[op]
    return np.asarray(fn(*_promoted(a, b)))


@S.symbolic_op
def torch_masked_fill(x, mask, value):
    """``x.masked_fill(mask, value)``: value where the (broadcast) boolean mask is True."""
    x = np.asarray(x)
    return np.where(np.asarray(mask, bool), x.dtype.type(value), x)


@S.symbolic_op
def torch_cast(x, dtype):
    """``x.float()``, ``x.type_as(y)``, ``x.to(dtype)``: x as float32, int64 or bool."""
    return np.asarray(x).astype(dtype)


@S.symbolic_op
def torch_expand(x, *refs, spec):
    """``x.expand(sizes)``: ``spec`` entries are ints, -1 (the size kept) or (j, axis), the
    size of axis ``axis`` of ``refs[j - 1]`` at run time (a batch size read with
    ``y.size(0)``), as in torch_reshape. A contiguous copy."""
    x = np.asarray(x)
    lead = len(spec) - x.ndim
    shape = [x.shape[i - lead] if e == -1 else e
             for i, e in enumerate(_run_shape(spec, (x, *refs)))]
    return np.ascontiguousarray(np.broadcast_to(x, shape))


@S.symbolic_op
def torch_full(*refs, spec, value, dtype):
    """``torch.full(size, value)`` (zeros, ones, ``*_like``): ``spec`` entries are ints or
    (j, axis), the size of axis ``axis`` of ``refs[j - 1]`` at run time (the batch size)."""
    return np.full(_run_shape(spec, (None, *refs)), value, dtype)


@S.symbolic_op
def torch_repeat_interleave(x, repeats, axis):
    """``x.repeat_interleave(repeats, axis)``: each entry along ``axis`` ``repeats`` times
    in a row (NumPy's repeat)."""
    return np.repeat(np.asarray(x), repeats, axis=axis)


@S.symbolic_op
def torch_repeat(x, reps):
    """``x.repeat(*reps)``: NumPy's tile (new leading axes for extra reps)."""
    return np.tile(np.asarray(x), reps)


@S.symbolic_op
def torch_repeat_sized(x, *refs, spec):
    """``x.repeat(*reps)`` where a count is a size read at run time (``spec`` as in
    torch_reshape: DeBERTa's ``repeat(q.size(0) // heads, 1, 1)``)."""
    reps = _run_shape(spec, (x, *refs))
    if any(r < 0 for r in reps):
        raise ValueError(f"torch_repeat_sized: a negative repeat count in {reps}")
    return np.tile(np.asarray(x), reps)


@S.symbolic_op
def torch_normalize(x, p, axis, eps):
    """``F.normalize``: x / max(||x||_p over ``axis``, eps), in float32 as PyTorch."""
    x = np.asarray(x, F32)
    with np.errstate(all="ignore"):
        if p == 2:
            norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
        elif p == 1:
            norm = np.sum(np.abs(x), axis=axis, keepdims=True)
        elif p == np.inf:
            norm = np.max(np.abs(x), axis=axis, keepdims=True)
        else:
            norm = np.sum(np.abs(x) ** F32(p), axis=axis, keepdims=True) ** F32(1.0 / p)
        return (x / np.maximum(norm, F32(eps))).astype(F32)


@S.symbolic_op
def torch_flip(x, axes):
    """``torch.flip(x, dims)`` over the stored array's ``axes`` (a copy)."""
    return np.ascontiguousarray(np.flip(np.asarray(x), axes))


@S.symbolic_op
def torch_cumsum(x, axis):
    """``torch.cumsum(x, dim)``: for floats PyTorch's CPU sums in float64 and rounds each
    result to float32 (the same values here); int64 for integers and booleans."""
    return _cumulate(np.cumsum, x, axis)


def _cumulate(fn, x, axis):
    """np.cumsum / np.cumprod as PyTorch's CPU computes them: floats in float64, each result
    rounded to float32; int64 for integers and booleans."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return fn(x, axis=axis, dtype=np.float64).astype(F32)
    return fn(x, axis=axis, dtype=np.int64)


@S.symbolic_op
def torch_round_decimals(x, decimals):
    """``torch.round(x, decimals=d)`` of a float tensor as PyTorch's kernel computes it in
    float32: rint(x · 10^d) / 10^d, or rint(x / 10^-d) · 10^-d for d < 0."""
    x = np.asarray(x, F32)
    ten = F32(10.0 ** abs(int(decimals)))
    with np.errstate(all="ignore"):
        out = np.rint(x / ten) * ten if decimals < 0 else np.rint(x * ten) / ten
    return np.asarray(out, F32)


@S.symbolic_op
def torch_param_activation(x, name, params):
    """PyTorch's activation modules at other parameter values than Keras's activations
    take, elementwise in float32 (``params`` in the module's order): ELU(alpha) x or
    alpha·(eˣ − 1), CELU(alpha) x or alpha·(e^(x/alpha) − 1), Softplus(beta, threshold)
    x where beta·x > threshold else log(1 + e^(beta·x)) / beta, Hardtanh(min_val, max_val)
    a clip (of an integer tensor an integer one), Hardshrink(lambd) 0 on [−lambd, lambd] else
    x, Softshrink(lambd) x ∓ lambd outside (−lambd, lambd) else 0. (The exponentials and
    logarithms round as NumPy's: within a few ulps of PyTorch's vectorized ones.)"""
    x = np.asarray(x)
    if x.dtype.kind in "iub":  # Hardtanh alone (_Converter.param_activation): PyTorch's
        lo, hi = (int(v) for v in params)  # integer clamp, its bounds cast toward zero
        return np.minimum(np.maximum(x.astype(np.int64), lo), hi)
    x = x.astype(F32, copy=False)
    p = [F32(v) for v in params]
    with np.errstate(all="ignore"):
        if name == "ELU":
            out = np.where(x > 0, x, p[0] * np.expm1(x))
        elif name == "CELU":  # (x times 1 / alpha, as PyTorch's kernel)
            out = np.where(x > 0, x, p[0] * np.expm1(x * (F32(1) / p[0])))
        elif name == "Softplus":
            bx = x * p[0]
            out = np.where(bx > p[1], x, np.log1p(np.exp(bx)) / p[0])
        elif name == "Hardtanh":
            out = np.minimum(np.maximum(x, p[0]), p[1])
        elif name == "Hardshrink":
            out = np.where((x >= -p[0]) & (x <= p[0]), F32(0), x)
        elif name == "Softshrink":  # (x · 0 inside: NaN stays NaN, as PyTorch's)
            out = np.where(x > p[0], x - p[0], np.where(x < -p[0], x + p[0], x * F32(0)))
        else:
            raise ValueError(f"torch_param_activation: unknown activation {name!r}")
    return np.asarray(out, F32)


@S.symbolic_op
def torch_nearest_index(x, rows, cols):
    """A channels-last (N, H, W, C) image resized by picking rows ``rows`` and columns
    ``cols``: PyTorch's own picks for "nearest" and "nearest-exact", taken from it at
    conversion (torch_rules_modules._nearest_indices)."""
    x = np.asarray(x)
    return np.ascontiguousarray(x[:, rows][:, :, cols])


@S.symbolic_op
def torch_logcumsumexp(x, axis):
    """``torch.logcumsumexp(x, dim)``: log(sum of exp(x) up to each index) along ``axis``,
    as log-add-exp steps in float64, rounded to float32 (-inf terms add nothing; NaN
    propagates)."""
    x = np.asarray(x).astype(np.float64)
    with np.errstate(all="ignore"):
        return np.logaddexp.accumulate(x, axis=axis).astype(F32)


@S.symbolic_op
def torch_cumextreme(x, axis, largest):
    """``torch.cummax`` / ``cummin(x, dim)`` along ``axis``: (the running maximum or
    minimum, the index where it was taken), as PyTorch's kernel walks: an element equal to
    the running value takes its place (the later index of a tie), and a NaN, once met, is the
    running value from there on (the index of the latest NaN: a NaN takes the place of a
    NaN, a number never does)."""
    x = np.asarray(x)
    n = x.shape[axis]
    xm = np.moveaxis(x, axis, -1)
    values = np.empty_like(xm)
    index = np.empty(xm.shape, np.int64)
    better = np.greater_equal if largest else np.less_equal
    if n:
        values[..., 0] = xm[..., 0]
        index[..., 0] = 0
        for i in range(1, n):  # (a walk along the axis: a loop of vector steps)
            v, prev = xm[..., i], values[..., i - 1]
            take = better(v, prev) | (v != v)
            values[..., i] = np.where(take, v, prev)
            index[..., i] = np.where(take, i, index[..., i - 1])
    return (np.ascontiguousarray(np.moveaxis(values, -1, axis)),
            np.ascontiguousarray(np.moveaxis(index, -1, axis)))


@S.symbolic_op
def torch_cumprod(x, axis):
    """``torch.cumprod(x, dim)``: as cumsum (_cumulate), products in float64 for floats."""
    return _cumulate(np.cumprod, x, axis)


@S.symbolic_op
def torch_lerp(start, end, weight):
    """``torch.lerp(start, end, weight)`` as PyTorch's kernel computes it: start + weight ·
    (end - start) where |weight| < 0.5, else end - (end - start) · (1 - weight); float32."""
    start, end = np.asarray(start, F32), np.asarray(end, F32)
    w = np.asarray(weight, F32)
    with np.errstate(all="ignore"):
        diff = end - start
        return np.asarray(np.where(np.abs(w) < F32(0.5), start + w * diff,
                                   end - diff * (F32(1) - w)), F32)


@S.symbolic_op
def torch_roll(x, shifts, axes):
    """``torch.roll(x, shifts, dims)`` (``axes`` None: over the flattened array): np.roll's
    values, axis by axis as two block copies (np.roll costs ~9 us on a small array)."""
    x = np.asarray(x)
    if axes is None:
        return np.roll(x, shifts)
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    axes = axes if isinstance(axes, (tuple, list)) else (axes,)
    out = x
    for s, axis in zip(shifts, axes):
        n = out.shape[axis]
        s = int(s) % n if n else 0
        if s:
            y = np.empty(out.shape, out.dtype)
            to, of = [slice(None)] * x.ndim, [slice(None)] * x.ndim
            to[axis], of[axis] = slice(s, None), slice(0, n - s)
            y[tuple(to)] = out[tuple(of)]
            to[axis], of[axis] = slice(0, s), slice(n - s, None)
            y[tuple(to)] = out[tuple(of)]
            out = y
    return out.copy() if out is x else np.ascontiguousarray(out)  # never x itself


@S.symbolic_op
def torch_where(cond, a, b):
    """``torch.where(cond, a, b)`` with broadcasting: float32 when a or b is a float."""
    a, b = np.asarray(a), np.asarray(b)
    out = np.where(np.asarray(cond, bool), a, b)
    return out.astype(F32) if out.dtype.kind == "f" else out


@S.symbolic_op
def torch_einsum(equation, *operands):
    """``torch.einsum(equation, *operands)``: a batched matrix product of two float32
    operands (attention's "bhid,bhjd->bhij" and "bhij,bhjd->bhid", MaxViT's) is
    fastlayers.matmul (the C++ GEMM, threaded); any other, NumPy's einsum, float32 for
    floats."""
    xs = [np.asarray(x) for x in operands]
    if len(xs) == 2 and all(x.dtype == F32 for x in xs):
        transposed = matmul_form(equation)
        # (einsum stretches a summed axis of size 1 in one operand; matmul does not)
        if transposed is not None and (
                xs[0].shape[-1] == xs[1].shape[-1 if transposed else -2]):
            return FL.matmul(xs[0], xs[1], transpose_b=transposed)
    out = np.asarray(np.einsum(equation, *xs, optimize=len(xs) > 2))
    return out.astype(F32) if out.dtype.kind == "f" else out


@S.symbolic_op
def torch_matmul(a, b):
    """``a @ b`` (``torch.matmul``): vectors as PyTorch takes them, batches broadcasting."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim >= 2 and b.ndim >= 2 and a.dtype == F32 and b.dtype == F32:
        return FL.matmul(a, b)
    return np.matmul(a, b).astype(np.result_type(a, b))


def _torch_matmul_runner(a, b):
    # float32 operands the plan guards, of rank 2 and more: fastlayers.matmul's runner
    return FL.matmul.__plan_runner__(a, b) if a.ndim >= 2 and b.ndim >= 2 else None


_plan_runner(torch_matmul, _torch_matmul_runner)


def _check_bmm(a, b, name):
    """torch.bmm's and torch.mm's shapes (they do not broadcast): both 3-D with one batch,
    or both 2-D, the inner sizes equal."""
    want = 3 if name == "bmm" else 2
    if (a.ndim != want or b.ndim != want or a.shape[-1] != b.shape[-2]
            or (want == 3 and a.shape[0] != b.shape[0])):
        what = "(b, n, m) and (b, m, p)" if want == 3 else "(n, m) and (m, p)"
        raise ValueError(f"{name}: expected {what} (no broadcasting, as PyTorch's), got "
                         f"{a.shape} and {b.shape}")


@S.symbolic_op
def torch_bmm(a, b, name):
    """``torch.bmm`` / ``torch.mm`` (``name``): :func:`torch_matmul` of operands of exactly
    PyTorch's shapes (a batch of 1 does not broadcast there)."""
    a, b = np.asarray(a), np.asarray(b)
    _check_bmm(a, b, name)
    return torch_matmul(a, b)


def _torch_bmm_runner(a, b, name):
    _check_bmm(a, b, name)  # (each new signature records a plan: its shapes are checked)
    run = _torch_matmul_runner(a, b)
    return None if run is None else (lambda a, b, _name: run(a, b))


_plan_runner(torch_bmm, _torch_bmm_runner)


@S.symbolic_op
def torch_windows(x, axis, size, step):
    """``x.unfold(axis, size, step)`` (Tensor.unfold): the windows of ``size`` elements
    every ``step`` along ``axis``, which keeps its place and counts the windows
    ((n - size) // step + 1); the window's elements are a new last axis."""
    x = np.asarray(x)
    n = x.shape[axis]
    if size > n:
        raise ValueError(f"unfold: a window of {size} elements does not fit an axis of size "
                         f"{n}")
    starts = np.arange((n - size) // step + 1) * step
    y = np.take(x, starts[:, None] + np.arange(size), axis=axis)  # (..., L, size, ...)
    return np.ascontiguousarray(np.moveaxis(y, axis + 1, -1))


def _patch_grid(hw, kernel, dilation, padding, stride, what):
    """The (rows, cols) of patch positions of an im2col over an (h, w) image padded by
    ``padding`` on each side, as PyTorch's unfold and fold count them."""
    grid = tuple((d + 2 * p - q * (k - 1) - 1) // s + 1
                 for d, k, q, p, s in zip(hw, kernel, dilation, padding, stride))
    if min(grid) < 1:
        raise ValueError(f"{what}: a {kernel} patch (dilation {dilation}) does not fit an "
                         f"input of {tuple(hw)} padded by {padding}")
    return grid


def _patch_index(grid, kernel, dilation, stride):
    """Row and column indices into the padded image, shaped (kh, kw, rows, cols)."""
    (gh, gw), (kh, kw), (dh, dw), (sh, sw) = grid, kernel, dilation, stride
    rows = (np.arange(kh) * dh)[:, None, None, None] + (np.arange(gh) * sh)[None, None, :, None]
    cols = (np.arange(kw) * dw)[None, :, None, None] + (np.arange(gw) * sw)[None, None, None, :]
    return rows, cols


@S.symbolic_op
def torch_unfold(x, kernel, dilation, padding, stride):
    """``F.unfold`` / ``nn.Unfold`` (im2col) of an (N, C, H, W) array: (N, C * kh * kw, L),
    row ``c * kh * kw + i * kw + j`` holding kernel tap (i, j) of channel c at each of the
    L patch positions (row-major); zero padding."""
    x = np.asarray(x)
    n, c, h, w = x.shape
    grid = _patch_grid((h, w), kernel, dilation, padding, stride, "unfold")
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    rows, cols = _patch_index(grid, kernel, dilation, stride)
    y = xp[:, :, rows, cols]  # (N, C, kh, kw, rows, cols)
    return np.ascontiguousarray(y).reshape(n, c * kernel[0] * kernel[1], grid[0] * grid[1])


@S.symbolic_op
def torch_fold(x, output_size, kernel, dilation, padding, stride):
    """``F.fold`` / ``nn.Fold`` (col2im), the adjoint of torch_unfold: an (N, C * kh * kw, L)
    array to (N, C, H, W) = ``output_size``, each column's taps added into their pixels
    (overlaps summed, taps that fall in the padding dropped). Float32 sums in the order of
    the taps (i, j), as PyTorch's CPU kernel adds them; the last digit may differ."""
    x = np.asarray(x)
    n, ck, length = x.shape
    kh, kw = kernel
    grid = _patch_grid(output_size, kernel, dilation, padding, stride, "fold")
    if ck % (kh * kw) or length != grid[0] * grid[1]:
        raise ValueError(f"fold: an input of shape {x.shape} does not hold {kh} x {kw} "
                         f"patches of whole channels at the {grid[0] * grid[1]} positions of "
                         f"an output of {tuple(output_size)}")
    c = ck // (kh * kw)
    (h, w), (ph, pw) = output_size, padding
    cols = x.reshape(n, c, kh, kw, grid[0], grid[1])
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype if x.dtype.kind == "f" else F32)
    rows_at, cols_at = _patch_index(grid, kernel, dilation, stride)
    for i in range(kh):
        for j in range(kw):  # within one tap, the positions never overlap (stride >= 1)
            out[:, :, rows_at[i, 0], cols_at[0, j]] += cols[:, :, i, j]
    return np.ascontiguousarray(out[:, :, ph:ph + h, pw:pw + w])


# ---- normalizations, distances and order statistics of functional PyTorch code -------------


@S.symbolic_op
def torch_batch_stats_norm(x, weight, bias, eps):
    """``F.batch_norm`` with batch statistics (``training=True``): x (N, C, *) in PyTorch's
    layout, each channel normalized by the mean and biased variance over the batch and every
    position, then weight and bias (C,) when given. Float64, rounded once to float32. One
    value per channel is a ``ValueError``, as PyTorch raises."""
    x64 = np.asarray(x, np.float64)
    axes = (0, *range(2, x64.ndim))
    if math.prod(x64.shape[a] for a in axes) <= 1 and x64.size:
        raise ValueError(f"batch_norm: expected more than 1 value per channel to take "
                         f"statistics of, got input shape {x64.shape}")
    mean = x64.mean(axis=axes, keepdims=True)
    centered = x64 - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    y = centered / np.sqrt(var + eps)
    shape = (1, -1) + (1,) * (x64.ndim - 2)
    if weight is not None:
        y = y * np.asarray(weight, np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(shape)
    return y.astype(F32)


@S.symbolic_op
def torch_local_response_norm(x, size, alpha, beta, k, axis):
    """``nn.LocalResponseNorm`` / ``F.local_response_norm`` along the channel ``axis`` of the
    stored array: x / (k + alpha · mean(x²))^beta, the mean over the ``size`` channels
    c - size//2 ... c + (size-1)//2, zeros beyond the edges counted (PyTorch divides the
    window's sum by ``size`` everywhere). Float64, rounded once."""
    x64 = np.asarray(x, np.float64)
    sq = np.moveaxis(x64 * x64, axis, -1)
    c = sq.shape[-1]
    window = np.zeros_like(sq)
    # each channel's sum over its window, added shift by shift (not a running sum, where one
    # NaN or inf would reach every later channel and large squares swamp small ones)
    with np.errstate(invalid="ignore", over="ignore"):
        for shift in range(-(size // 2), (size - 1) // 2 + 1):
            lo, hi = max(0, -shift), min(c, c - shift)  # channels j whose j + shift exists
            if lo < hi:
                window[..., lo:hi] += sq[..., lo + shift:hi + shift]
        div = np.moveaxis(window, -1, axis) / size
        return (x64 / (div * alpha + k) ** beta).astype(F32)


# Rows of x1 per block of a direct cdist: the (rows, R, M) float64 differences stay near 32 MB.
_CDIST_BLOCK_BYTES = 32 << 20
# A p = 2 cdist of more multiply-adds than this takes the matrix-product form.
_CDIST_DIRECT_MAX = 1 << 22


@S.symbolic_op
def torch_cdist(a, b, p, mm=None):
    """``torch.cdist(x1, x2, p)``: (*, P, M) and (*, R, M) -> (*, P, R), the batch axes
    broadcast; the p-norm of each difference of rows, p = 0 counting the entries that differ
    (NaN where one is NaN), p = inf their largest magnitude (NaN ones skipped: PyTorch's
    running max). Float64, rounded once: the differences themselves, or for p = 2 in the
    matrix-product form sqrt(max(|a|² + |b|² - 2 a·b, 0)) (PyTorch's own form for more than
    25 rows; in float64 exact to about 1e-8 of the norms) when ``mm`` says so (its
    compute_mode: True always, False never) or, with ``mm`` None, above 4M multiply-adds."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"cdist: x1 {a.shape} and x2 {b.shape} must be (*, P, M) and "
                         "(*, R, M) with the same M")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"cdist: the batch axes of x1 {a.shape} and x2 {b.shape} do not "
                         "broadcast") from None
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    rows, cols, m = a.shape[-2], b.shape[-2], a.shape[-1]
    n = math.prod(batch) * rows * cols * m
    if p == 2 and (mm if mm is not None else n > _CDIST_DIRECT_MAX):
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, as PyTorch
            d2 = ((a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :]
                  - 2.0 * np.matmul(a, np.swapaxes(b, -1, -2)))
            return np.sqrt(np.maximum(d2, 0.0)).astype(F32)
    out = np.empty(batch + (rows, cols))
    step = max(1, _CDIST_BLOCK_BYTES // max(1, 8 * math.prod(batch) * cols * m))
    for r0 in range(0, rows, step):
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(a[..., r0:r0 + step, None, :] - b[..., None, :, :])
            if p == 0:  # NaN where a difference is NaN, as PyTorch's min(ceil(|d|), 1)
                out[..., r0:r0 + step, :] = np.where(np.isnan(d).any(-1), np.nan,
                                                     (d != 0).sum(-1))
            elif p == 1:
                out[..., r0:r0 + step, :] = d.sum(-1)
            elif p == 2:
                out[..., r0:r0 + step, :] = np.sqrt((d * d).sum(-1))
            elif math.isinf(p):  # NaN differences skipped, as PyTorch's running max skips
                out[..., r0:r0 + step, :] = np.fmax.reduce(d, axis=-1, initial=0.0)
            else:
                out[..., r0:r0 + step, :] = (d ** p).sum(-1) ** (1.0 / p)
    return out.astype(F32)


@S.symbolic_op
def torch_bilinear(a, b, weight, bias):
    """``nn.Bilinear`` / ``F.bilinear``: y[..., o] = Σ_ij a[..., i] W[o, i, j] b[..., j]
    (+ bias[o]) for a (*, in1), b (*, in2) with the same leading axes, W (out, in1, in2):
    a · W as one float32 matrix product (*, out·in2), then the products with b summed."""
    a = np.asarray(a, F32)
    b = np.asarray(b, F32)
    out, in1, in2 = weight.shape
    if a.shape[:-1] != b.shape[:-1] or a.shape[-1:] != (in1,) or b.shape[-1:] != (in2,):
        raise ValueError(f"bilinear: inputs {a.shape} and {b.shape} for a weight of shape "
                         f"{weight.shape}: they must be (*, {in1}) and (*, {in2}) with the same "
                         "leading axes")
    lead = a.shape[:-1]
    t = a.reshape(-1, in1) @ np.ascontiguousarray(weight.transpose(1, 0, 2)).reshape(
        in1, out * in2)
    y = np.einsum("noj,nj->no", t.reshape(-1, out, in2), b.reshape(-1, in2))
    if bias is not None:
        y = y + bias
    return np.asarray(y, F32).reshape(lead + (out,))


@S.symbolic_op
def torch_median(x, axis, keepdims, ignore_nan):
    """``torch.median`` / ``nanmedian``: the lower median (element (n - 1) // 2 in sorted
    order) along ``axis`` of the stored array, or of all of it (axis None: a 0-d value);
    NaN where the slice holds one (``ignore_nan``: of its other values, NaN where it has
    none). Along an axis, (values, int64 indices): the index of the median element, of the
    first NaN for a NaN result; of equal values the one a stable sort puts at that rank
    (PyTorch leaves the choice among ties unspecified)."""
    x = np.asarray(x)
    x = x.astype(F32, copy=False) if x.dtype.kind == "f" else x
    whole = axis is None
    if whole:
        x = x.reshape(-1)
        axis = 0
    n = x.shape[axis]
    if n == 0:
        if whole and x.dtype.kind == "f":
            return np.asarray(np.nan, x.dtype)  # (an empty batch: PyTorch's NaN)
        raise ValueError("median: an empty axis has no median")
    order = np.argsort(x, axis=axis, kind="stable")  # NaN last
    if x.dtype.kind == "f":
        nans = np.isnan(x).sum(axis=axis, keepdims=True)
    else:
        nans = np.zeros_like(np.take(x, [0], axis=axis), dtype=np.int64)
    if ignore_nan:
        rank = np.maximum(n - nans - 1, 0) // 2  # all NaN: rank 0, a NaN
    else:
        # a NaN anywhere: the first NaN (the stable sort's first after the numbers)
        rank = np.where(nans > 0, n - nans, (n - 1) // 2)
    idx = np.take_along_axis(order, rank, axis=axis)
    values = np.take_along_axis(x, idx, axis=axis)
    if whole:
        return values.reshape(())
    if not keepdims:
        values, idx = np.squeeze(values, axis), np.squeeze(idx, axis)
    return values, idx.astype(np.int64)


_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


@S.symbolic_op
def torch_quantile(x, q, axis, keepdims, interpolation, ignore_nan):
    """``torch.quantile`` / ``nanquantile`` as PyTorch computes them, along ``axis`` of the
    stored array or of all of it (None): the values sorted (NaN last), the rank q·(n - 1)
    in float32 (n the count of non-NaN values for nanquantile; a slice holding NaN takes the
    last rank, so NaN, for quantile; an all-NaN slice rank 0), floored, ceiled or rounded
    (ties to even) by ``interpolation``, and "linear" / "midpoint" as PyTorch's float32
    lerp between the neighbours. A q array (1-D) puts its axis first. A q outside [0, 1] is
    a ``ValueError``, as PyTorch raises."""
    qs = np.asarray(q, F32)
    if qs.size and (np.isnan(qs).any() or qs.min() < 0 or qs.max() > 1):
        raise ValueError(f"quantile: q must be in [0, 1], got {q!r}")
    x = np.asarray(x, F32)
    rank = x.ndim
    whole = axis is None
    xs = np.sort(x.reshape(-1) if whole else np.moveaxis(x, axis, -1), axis=-1)
    n = xs.shape[-1]
    if n == 0:
        raise ValueError("quantile: an empty axis has no quantile")
    nan = np.isnan(xs)
    qv = qs.reshape(qs.shape + (1,) * xs.ndim)  # (Q, 1, ..., 1) or (1, ..., 1)
    if ignore_nan:
        count = (n - nan.sum(axis=-1, keepdims=True)).astype(F32)
        ranks = np.maximum(qv * (count - F32(1)), F32(0))  # all NaN: rank 0, a NaN
    else:
        ranks = np.where(nan.any(axis=-1, keepdims=True), F32(n - 1), qv * F32(n - 1))
    ranks = {"lower": np.floor, "higher": np.ceil, "nearest": np.round}.get(
        interpolation, lambda r: r)(ranks).astype(F32)
    xs = np.broadcast_to(xs, ranks.shape[:-1] + (n,))
    below = ranks.astype(np.int64)
    out = np.take_along_axis(xs, below, axis=-1)
    if interpolation in ("linear", "midpoint"):
        above = np.take_along_axis(xs, np.ceil(ranks).astype(np.int64), axis=-1)
        w = np.full_like(ranks, 0.5) if interpolation == "midpoint" else ranks - below
        with np.errstate(invalid="ignore"):
            out = np.where(w < 0.5, out + w * (above - out), above - (above - out) * (1 - w))
    out = out[..., 0]
    if keepdims:
        out = (np.reshape(out, qs.shape + (1,) * rank) if whole
               else np.expand_dims(out, axis + qs.ndim))
    return np.asarray(out, F32)


@S.symbolic_op
def torch_affine_grid(theta, base, batch):
    """``F.affine_grid(theta, (N, C, H, W))``: theta (N, 2, 3) -> the sampling grid
    (N, H, W, 2) for ``torch_grid_sample``: each output pixel's normalized position
    [x, y, 1] (``base`` (H, W, 2): x and y from -1 to 1 at the outer pixels' centres, or
    their outer edges without align_corners) times thetaᵀ, in float32. ``batch`` None:
    theta's; else N, which theta must have (PyTorch's batched product refuses another)."""
    theta = np.asarray(theta, F32)
    if theta.ndim != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"affine_grid: theta must be (N, 2, 3) for a 2-D size, got shape "
                         f"{theta.shape}")
    if batch is not None and theta.shape[0] != batch:
        raise ValueError(f"affine_grid: theta holds {theta.shape[0]} transforms for a size "
                         f"with batch {batch}")
    h, w = base.shape[:2]
    xy1 = np.concatenate([base, np.ones((h, w, 1), F32)], axis=-1).reshape(1, h * w, 3)
    with np.errstate(invalid="ignore", over="ignore"):
        grid = np.matmul(xy1, theta.transpose(0, 2, 1))
    return grid.reshape(theta.shape[0], h, w, 2).astype(F32, copy=False)


def _fma(a, b, c):
    """a·b + c rounded once to float32, as the fused multiply-add PyTorch's CPU kernels are
    compiled to (a·b of two float32 values is exact in float64)."""
    return (np.asarray(a, np.float64) * b + c).astype(F32)


# grid_sample's positions follow PyTorch's vectorized CPU kernel step by step, each a·b + c
# there a fused multiply-add (_fma), so that the pixels that rounding picks are PyTorch's.

def _grid_positions(g, size, align_corners):
    """Normalized grid coordinates (-1 and 1 the edges of the outer pixels, or their centres
    with align_corners) -> source positions along an axis of ``size`` pixels:
    (g + 1) · (size - 1) / 2, or (g + 1) · size / 2 - 1/2."""
    if align_corners:
        return (g + F32(1)) * F32((size - 1) / 2)
    return _fma(g + F32(1), F32(size / 2), F32(-0.5))


def _grid_padded(p, size, padding, align_corners):
    """Source positions kept inside the image by ``padding`` ("border": clamped to
    [0, size - 1], NaN to 0; "reflection": mirrored at the edges - the outer pixels' centres
    with align_corners, their outer edges without - then clamped; "zeros": as they are)."""
    if padding == "zeros":
        return p
    if padding == "reflection":
        low = F32(0) if align_corners else F32(-0.5)
        span2 = F32(2 * (size - 1)) if align_corners else F32(2 * size)
        if span2 <= 0:  # one pixel with align_corners: no span to mirror in
            return np.zeros_like(p)
        d = np.abs(p - low)
        extra = _fma(-np.trunc(d / span2), span2, d)  # d modulo the span, there and back
        p = np.minimum(extra, span2 - extra) + low
    return np.minimum(np.fmax(p, F32(0)), F32(size - 1))


def _grid_index(p):
    """Integer pixel indices of float positions that are whole already (truncated, as the
    CPU kernel converts them); a non-finite or out-of-range position becomes an index so far
    outside every image that its neighbours are outside too."""
    ok = np.isfinite(p) & (np.abs(p) < 2.0 ** 31)
    return np.where(ok, p, -2.0 ** 40).astype(np.int64)


def _grid_taps(n, h, w, iy, ix):
    """Row indices into the images flattened to (N·H·W + 1, C) of pixels (iy, ix), each
    (N, P): image n's pixel, or the zero row N·H·W after them where (iy, ix) is outside the
    image (PyTorch's masked gather reads 0 there, and 0 · weight is still NaN for a NaN
    weight)."""
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    flat = np.arange(n).reshape(-1, 1) * (h * w) + iy * w + ix
    return np.where(inside, flat, n * h * w).reshape(-1)


def _cubic_weights(t):
    """The four weights of PyTorch's Keys cubic (A = -0.75) at taps -1, 0, 1, 2 for
    fractions t (N, P), in float32 (PyTorch's compiled kernel fuses some of these steps in a
    way not reproduced here)."""
    a = F32(-0.75)

    def outer(v):  # 1 < v < 2
        return ((a * v - F32(5) * a) * v + F32(8) * a) * v - F32(4) * a

    def inner(v):  # v <= 1
        return ((a + F32(2)) * v - (a + F32(3))) * v * v + F32(1)

    return [outer(t + F32(1)), inner(t), inner(F32(1) - t), outer(F32(2) - t)]


@S.symbolic_op
def torch_grid_sample(x, grid, mode, padding, align_corners):
    """``F.grid_sample`` of an NHWC float32 x (N, H, W, C) at ``grid`` (N, Ho, Wo, 2) of
    normalized (x, y) positions: (N, Ho, Wo, C), in float32 as PyTorch's CPU kernel (the
    positions to its bits, and so the nearest pixels; the weighted sums without its fused
    multiply-adds, within a few float32 steps).
    ``mode`` "bilinear" (the 4 neighbours, weighted by the distances), "nearest" (the
    position rounded, ties to even) or "bicubic" (16 taps, PyTorch's Keys cubic,
    A = -0.75); ``padding`` "zeros" (taps outside the image read 0), "border" (positions
    clamped to the image) or "reflection" (mirrored into it). A NaN or infinite position
    gives NaN in the bicubic mode and in the bilinear one with zeros padding, reads 0 in the
    nearest mode with zeros padding, and is clamped into the image (NaN to 0) with border
    or reflection padding, as in PyTorch."""
    x = np.asarray(x, F32)
    grid = np.asarray(grid, F32)
    if x.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2:
        raise ValueError(f"grid_sample: needs a 4-D input and a 4-D grid (N, H_out, W_out, 2), "
                         f"got ranks {x.ndim} and {grid.ndim}, the grid's last axis "
                         f"{grid.shape[-1:]}")
    if grid.shape[0] != x.shape[0]:
        raise ValueError(f"grid_sample: the input's batch of {x.shape[0]} and the grid's "
                         f"{grid.shape[0]} differ")
    n, h, w, c = x.shape
    ho, wo = grid.shape[1:3]
    # the values: float32 taps over the images as rows (N·H·W + 1, C), the last row zeros
    # (_grid_taps), added in PyTorch's order without its fused multiply-adds, by the core's
    # resample_axis on the C++ path (the same bits as NumPy's)
    rows = np.concatenate([x.reshape(n * h * w, c), np.zeros((1, c), F32)])
    apply = _cpp_resize.taps() or _np_resize._apply_taps
    with np.errstate(invalid="ignore", over="ignore"):
        px = _grid_positions(grid[..., 0].reshape(n, ho * wo), w, align_corners)
        py = _grid_positions(grid[..., 1].reshape(n, ho * wo), h, align_corners)
        if mode == "bicubic":  # the taps' positions are padded one by one
            x0, y0 = np.floor(px), np.floor(py)
            wx, wy = _cubic_weights(px - x0), _cubic_weights(py - y0)
            cols = [_grid_index(_grid_padded(x0 + F32(k), w, padding, align_corners))
                    for k in (-1, 0, 1, 2)]
            ys = [_grid_index(_grid_padded(y0 + F32(k), h, padding, align_corners))
                  for k in (-1, 0, 1, 2)]
            # each of the 4 rows of taps summed along x (rows i of position p: 4p + i), then
            # the 4 sums along y
            idx = np.stack([np.stack([_grid_taps(n, h, w, iy, ix) for ix in cols], -1)
                            for iy in ys], 1).reshape(-1, 4)
            wxs = np.repeat(np.stack(wx, -1).reshape(-1, 1, 4), 4, axis=1).reshape(-1, 4)
            across = apply(rows, idx, wxs, 0)
            out = apply(across, np.arange(n * ho * wo * 4).reshape(-1, 4),
                        np.stack(wy, -1).reshape(-1, 4), 0)
        else:
            px = _grid_padded(px, w, padding, align_corners)
            py = _grid_padded(py, h, padding, align_corners)
            if mode == "nearest":
                idx = _grid_taps(n, h, w, _grid_index(np.rint(py)), _grid_index(np.rint(px)))
                out = rows[idx]
            else:  # bilinear: nw, ne, sw, se, each weighted by the opposite area
                x0, y0 = np.floor(px), np.floor(py)
                dx, dy = px - x0, py - y0
                ex, sy = F32(1) - dx, F32(1) - dy
                ix, iy = _grid_index(x0), _grid_index(y0)
                idx = np.stack([_grid_taps(n, h, w, iy + r, ix + q)
                                for r, q in ((0, 0), (0, 1), (1, 0), (1, 1))], -1)
                wts = np.stack([sy * ex, sy * dx, dy * ex, dy * dx], -1).reshape(-1, 4)
                out = apply(rows, idx, wts.astype(F32), 0)
    return out.reshape(n, ho, wo, c).astype(F32, copy=False)


@S.symbolic_op
def torch_dilate_pad(x, stride, pads):
    """The input of a transposed convolution written as a convolution: x channels-last
    (N, *spatial, C) with stride - 1 zeros between its pixels along each spatial axis, then
    ``pads`` (before, after) zeros at the ends (a negative count crops instead)."""
    x = np.asarray(x)
    n, *spatial, c = x.shape
    grown = [(size - 1) * s + 1 + max(b, 0) + max(a, 0) if size else max(b, 0) + max(a, 0)
             for size, s, (b, a) in zip(spatial, stride, pads)]
    out = np.zeros((n, *grown, c), x.dtype)
    out[(slice(None), *(slice(max(b, 0), max(b, 0) + (size - 1) * s + 1, s)
                        for size, s, (b, _) in zip(spatial, stride, pads)))] = x
    crop = tuple(slice(max(-b, 0), g - max(-a, 0)) for g, (b, a) in zip(grown, pads))
    return np.ascontiguousarray(out[(slice(None), *crop)])


# ---- complex tensors ----------------------------------------------------------------------
# A converted complex tensor is stored as float32 pairs: PyTorch's shape with a last axis of
# 2 (real, imaginary), the layout of torch.view_as_real (torch_common._C). These ops take such
# pairs (``cx`` says which operands are), compute in complex64 and return pairs, or real
# float32 arrays.

def _complex(a, is_pairs):
    """An operand as complex64: float32 pairs viewed as complex; a real array or number, or
    a complex constant, cast."""
    if is_pairs:
        a = np.ascontiguousarray(a, F32)
        if a.shape[-1:] != (2,):
            raise ValueError(f"complex op: expected (..., 2) pairs, got shape {a.shape}")
        return a.view(np.complex64)[..., 0]
    return np.asarray(a).astype(np.complex64)


def _pairs(c):
    """complex64 -> float32 pairs (..., 2)."""
    c = np.ascontiguousarray(c, np.complex64)
    return c.view(F32).reshape(c.shape + (2,))


@S.symbolic_op
def torch_complex_binary(a, b, op, cx):
    """``a op b`` (op "add", "sub", "mul" or "div") of complex tensors as pairs and real
    tensors or constants (``cx``: whether a and b are pairs), broadcast as PyTorch does, in
    complex64: a rotary embedding's x · freqs_cis, a spectrum scaled by a filter."""
    x, y = _complex(a, cx[0]), _complex(b, cx[1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = {"add": np.add, "sub": np.subtract, "mul": np.multiply,
               "div": np.divide}[op](x, y)
    return _pairs(out)


_COMPLEX_PARTS = {"abs": np.abs, "angle": np.angle, "real": np.real, "imag": np.imag}


@S.symbolic_op
def torch_complex_unary(a, name):
    """A function of a complex tensor given as pairs: "abs" (|z|, as hypot), "angle"
    (atan2(im, re)), "real", "imag" (float32), or "conj" (pairs)."""
    z = _complex(a, True)
    if name == "conj":
        return _pairs(np.conj(z))
    return np.asarray(_COMPLEX_PARTS[name](z), F32)


_FFTS = {"fft": np.fft.fft, "ifft": np.fft.ifft, "rfft": np.fft.rfft, "irfft": np.fft.irfft}


@S.symbolic_op
def torch_fft(x, kind, n, axis, norm, cx):
    """``torch.fft.fft`` / ``ifft`` / ``rfft`` / ``irfft`` along ``axis`` (PyTorch's
    numbering; the pairs' axis comes after it): x pairs when ``cx``, else real; ``n`` the
    length (None: the axis's), ``norm`` "backward", "ortho" or "forward" (NumPy's meaning is
    PyTorch's). irfft returns float32, the others pairs."""
    z = _complex(x, True) if cx else np.asarray(x, F32)
    if kind == "rfft" and np.iscomplexobj(z):
        raise ValueError("rfft: the input must be real")
    out = _FFTS[kind](z, n=n, axis=axis, norm=norm)
    return np.asarray(out, F32) if kind == "irfft" else _pairs(out)


@S.symbolic_op
def torch_stft(x, n_fft, hop, window, center, pad_mode, normalized, onesided):
    """``torch.stft(..., return_complex=True)`` of signals x (B, L): (B, freqs, frames) as
    pairs. With ``center`` the signal is padded by n_fft // 2 on both sides in ``pad_mode``
    (F.pad's: "reflect", "constant", "replicate" or "circular"); frame t is
    x[t·hop : t·hop + n_fft] times ``window`` (n_fft values: the given one centred in zeros,
    or ones), transformed by an FFT (the n_fft // 2 + 1 non-negative frequencies when
    ``onesided``), times n_fft^-1/2 when ``normalized``."""
    x = np.asarray(x, F32)
    if x.ndim != 2:
        raise ValueError(f"stft: expected signals (B, L), got shape {x.shape}")
    if center:
        p = n_fft // 2
        if pad_mode == "reflect" and p >= x.shape[1]:
            raise ValueError(f"stft: reflect padding of {p} needs more than {p} samples, "
                             f"got {x.shape[1]}")
        mode = {"reflect": "reflect", "constant": "constant", "replicate": "edge",
                "circular": "wrap"}[pad_mode]
        x = np.pad(x, ((0, 0), (p, p)), mode=mode)
    if x.shape[1] < n_fft:
        raise ValueError(f"stft: a signal of {x.shape[1]} samples (after padding) is shorter "
                         f"than n_fft {n_fft}")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=1)[:, ::hop]
    spec = (np.fft.rfft if onesided else np.fft.fft)(frames * window, axis=-1,
                                                       norm="ortho" if normalized else None)
    return _pairs(np.swapaxes(spec, 1, 2))


@S.symbolic_op
def torch_lstm_projected(x, h0, c0, w_ih, w_hh, bias, w_hr, reverse):
    """One layer and direction of ``nn.LSTM(proj_size=P)`` (an LSTM with projections, as in
    speech models), PyTorch's weights: x (B, T, F), h0 (B, P), c0 (B, U); w_ih (4U, F),
    w_hh (4U, P), bias (4U,) (the two biases summed), w_hr (P, U). Each step, gates
    [i f g o] = x_t·w_ihᵀ + h·w_hhᵀ + bias, c = σ(f)·c + σ(i)·tanh(g), h = (σ(o)·tanh(c))·w_hrᵀ;
    the steps in reverse order for the backward direction (outputs at their own steps).
    Returns (outputs (B, T, P), h (B, P), c (B, U)); the input projection is one product
    for all steps, then a step at a time: the products fastlayers' dense (the C++ GEMM on
    that path), the gates its sigmoid and tanh, from Python."""
    x = np.asarray(x, F32)
    if x.ndim != 3 or x.shape[2] != w_ih.shape[1]:
        raise ValueError(f"lstm: input of shape {x.shape}, expected (B, T, {w_ih.shape[1]})")
    n, steps, features = x.shape
    p, u = w_hr.shape
    h = np.zeros((n, p), F32) if h0 is None else np.asarray(h0, F32)
    c = np.zeros((n, u), F32) if c0 is None else np.asarray(c0, F32)
    for name, state, want in (("h0", h, (n, p)), ("c0", c, (n, u))):
        if state.shape != want:
            raise ValueError(f"lstm: the initial state {name} of a layer has shape "
                             f"{state.shape}, expected {want} for an input of batch {n}")
    w_hh_t, w_hr_t = np.ascontiguousarray(w_hh.T), np.ascontiguousarray(w_hr.T)
    xw = FL.dense(x.reshape(n * steps, features), np.ascontiguousarray(w_ih.T), bias)
    xw = xw.reshape(n, steps, 4 * u)
    out = np.empty((n, steps, p), F32)
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        z = xw[:, t] + FL.dense(h, w_hh_t)
        s = _fl_act.sigmoid(z)  # (g's too: one call; g takes tanh below)
        c = s[:, u:2 * u] * c + s[:, :u] * _fl_act.tanh(np.ascontiguousarray(z[:, 2 * u:3 * u]))
        h = FL.dense(s[:, 3 * u:] * _fl_act.tanh(c), w_hr_t)
        out[:, t] = h
    return out, h, c
