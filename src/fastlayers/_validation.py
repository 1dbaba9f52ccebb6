"""Argument checking shared by both paths.

Every op has one ``check_<op>`` here, called once per call by
the functional op or by the layer, before either path runs; it returns the normalised
arguments as a named tuple that both paths take. Wrong types raise ``TypeError``;
wrong ranks, shapes and argument values raise ``ValueError``. Messages name the op
(or the layer), the argument, the shape seen and the shape expected. Arrays come
back as C-contiguous float32 (any real dtype is accepted, as in Keras), masks as
C-contiguous bool.

A layer passes ``build``: a hook called with the input's shape(s) once the input
passed its checks, which builds the layer if needed and returns its weights in the
order of the check's weight arguments (those are then None in the call).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from . import _checks as C
from ._checks import (  # re-exported: layers and activations use them too
    F32 as F32,
)
from ._checks import (
    MAX_INT32 as MAX_INT32,
)
from ._checks import (
    activation as activation,
)
from ._checks import (
    allocating as allocating,
)
from ._checks import (
    array as array,
)
from ._checks import (
    bool_mask as bool_mask,
)
from ._checks import (
    broadcastable as broadcastable,
)
from ._checks import (
    conv2d_geometry as conv2d_geometry,
)
from ._checks import (
    flag as flag,
)
from ._checks import (
    int_tuple as int_tuple,
)
from ._checks import (
    min_rank as min_rank,
)
from ._checks import (
    optional_array as optional_array,
)
from ._checks import (
    rank as rank,
)
from ._checks import (
    real_scalar as real_scalar,
)
from ._checks import (
    shape_is as shape_is,
)

# ------------------------------------------------------------------ check_<op>: dense, conv2d

Build = Optional[Callable[..., tuple]]
Array = np.ndarray
OptArray = Optional[np.ndarray]


class DenseArgs(NamedTuple):
    x: Array  # (..., K)
    kernel: Array  # (K, N)
    bias: OptArray  # (N,)
    activation: Any  # a Keras name or a callable


def check_dense(x, kernel, bias, activation, *, op="dense", x_name="x", build: Build = None):
    x = C.array(x, op, x_name)
    C.min_rank(x, op, x_name, 2, "(batch, ..., features)")
    if build is not None:
        kernel, bias = build(x.shape)
    kernel = C.array(kernel, op, "kernel")
    bias = C.optional_array(bias, op, "bias")
    act = C.activation(activation, op)
    C.rank(kernel, op, "kernel", 2, "(input_dim, units)")
    if kernel.shape[0] != x.shape[-1]:
        raise ValueError(
            f"{op}: kernel has shape {kernel.shape}, expected ({x.shape[-1]}, units) "
            f"to match the last axis of {x_name} {x.shape}"
        )
    if bias is not None:
        C.shape_is(bias, op, "bias", (kernel.shape[1],), "(units,)")
    return DenseArgs(x, kernel, bias, act)


def check_flatten(x, *, op="flatten", x_name="x", channels_first=False, build: Build = None):
    """x as float32 (batch, ...); with channels_first the channel axis 1 moves last."""
    x = C.array(x, op, x_name)
    C.min_rank(x, op, x_name, 1, "(batch, ...)")
    if build is not None:
        build(x.shape)
    return np.moveaxis(x, 1, -1) if channels_first and x.ndim > 2 else x


class MatmulArgs(NamedTuple):
    a: Array  # (..., M, K)
    b: Array  # (..., K, N), already transposed when transpose_b was asked
    batch: tuple  # the broadcast batch shape


def check_matmul(a, b, transpose_b, *, op="matmul"):
    a = C.array(a, op, "a")
    b = C.array(b, op, "b")
    transpose_b = C.flag(transpose_b, op, "transpose_b")
    C.min_rank(a, op, "a", 2, "(..., M, K)")
    C.min_rank(b, op, "b", 2, "(..., N, K)" if transpose_b else "(..., K, N)")
    k_axis = -1 if transpose_b else -2
    if a.shape[-1] != b.shape[k_axis]:
        raise ValueError(
            f"{op}: a {a.shape} and b {b.shape} do not chain: a's last axis ({a.shape[-1]}) "
            f"must equal b's {'last' if transpose_b else 'second-to-last'} axis "
            f"({b.shape[k_axis]})"
        )
    try:  # (equal batch axes, the usual case, skip NumPy's general rule)
        batch = a.shape[:-2] if a.shape[:-2] == b.shape[:-2] else np.broadcast_shapes(
            a.shape[:-2], b.shape[:-2]
        )
    except ValueError:
        raise ValueError(
            f"{op}: the batch axes of a {a.shape[:-2]} and b {b.shape[:-2]} do not broadcast"
        ) from None
    n = b.shape[-2] if transpose_b else b.shape[-1]
    C.elements(math.prod((*batch, a.shape[-2], n)), op, f"the output {(*batch, a.shape[-2], n)}")
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return MatmulArgs(a, b, tuple(batch))


class Conv2DArgs(NamedTuple):
    x: Array  # (N, H, W, C)
    kernel: Array  # (kh, kw, C // groups, F)
    bias: OptArray  # (F,)
    strides: tuple  # (sh, sw)
    dilation: tuple  # (dh, dw)
    pads: tuple  # (top, bottom, left, right)
    out_hw: tuple  # (OH, OW)
    groups: int
    activation: Any


def _image_op_arrays(x, kernel, bias, activation, op, x_name, channels_first, build, layout):
    """What conv2d and conv2d_transpose check first: x as a rank-4 float32 array (NHWC; a
    channels_first x transposed), the layer built from its shape (``build``), the kernel
    (rank 4, ``layout`` names its axes), the bias and the activation."""
    x = C.array(x, op, x_name)
    what = "(N, C, H, W)" if channels_first else "(batch, height, width, channels)"
    C.rank(x, op, x_name, 4, what)
    if build is not None:
        kernel, bias = build(x.shape)
    if channels_first:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    kernel = C.array(kernel, op, "kernel")
    bias = C.optional_array(bias, op, "bias")
    act = C.activation(activation, op)
    C.rank(kernel, op, "kernel", 4, layout)
    return x, kernel, bias, act


def check_conv2d(
    x,
    kernel,
    bias,
    strides,
    padding,
    dilation_rate,
    groups,
    activation,
    *,
    op="conv2d",
    x_name="x",
    channels_first=False,
    build: Build = None,
    pads=None,
):
    """With channels_first, x is (N, C, H, W) and comes back transposed to NHWC. ``pads``
    (top, bottom, left, right): zeros around x first, the padding rule then applied to the
    padded size (a ZeroPadding2D absorbed by a model's fold, models/folding.py)."""
    x, kernel, bias, act = _image_op_arrays(
        x, kernel, bias, activation, op, x_name, channels_first, build,
        "(kh, kw, in_channels // groups, filters)",
    )
    return _conv2d_args(op, x, kernel, bias, strides, padding, dilation_rate, groups, act,
                        pads=pads)


class Conv2DTransposeArgs(NamedTuple):
    x: Array  # (N, H, W, C)
    kernel: Array  # (kh, kw, F, C): Keras's Conv2DTranspose layout
    bias: OptArray  # (F,)
    strides: tuple  # (sh, sw)
    dilation: tuple  # (dh, dw)
    offsets: tuple  # (top, left): input pixel (i, j), tap (a, b) -> (i*sh + a*dh - top, ...)
    out_hw: tuple  # (OH, OW)
    activation: Any
    groups: int = 1  # kernel (kh, kw, F // groups, C) when above 1


def check_conv2d_transpose(
    x,
    kernel,
    bias,
    strides,
    padding,
    output_padding,
    dilation_rate,
    activation,
    *,
    op="conv2d_transpose",
    x_name="x",
    channels_first=False,
    build: Build = None,
    groups=1,
):
    """With channels_first, x is (N, C, H, W) and comes back transposed to NHWC. ``groups``
    (PyTorch's ConvTranspose2d groups): the kernel is (kh, kw, filters // groups, C), group g
    of the input channels making group g of the filters."""
    x, kernel, bias, act = _image_op_arrays(
        x, kernel, bias, activation, op, x_name, channels_first, build,
        "(kh, kw, filters // groups, in_channels)" if groups != 1 else
        "(kh, kw, filters, in_channels)",
    )
    strides, dilation, offsets, out_hw = C.conv2d_transpose_geometry(
        op, x.shape, kernel.shape, strides, padding, output_padding, dilation_rate
    )
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{op}: groups must be an int, got {type(groups).__name__}")
    groups = int(groups)
    if groups < 1 or x.shape[3] % groups:
        raise ValueError(f"{op}: groups must be >= 1 and divide the {x.shape[3]} input "
                         f"channels, got {groups}")
    f = kernel.shape[2] * groups
    if bias is not None:
        C.shape_is(bias, op, "bias", (f,), "(filters,)")
    C.elements(x.shape[0] * out_hw[0] * out_hw[1] * f, op, "the output")
    return Conv2DTransposeArgs(x, kernel, bias, strides, dilation, offsets, out_hw, act, groups)


# ------------------------------------------------------------------- check_<op>: recurrent


class RecurrentArgs(NamedTuple):
    cell: str  # "lstm", "gru" or "simple_rnn"
    x: Array  # (B, T, F)
    kernel: Array  # (F, G*u): G = 4 [i | f | c | o] (lstm), 3 [z | r | h] (gru), 1 (simple_rnn)
    recurrent_kernel: Array  # (u, G*u)
    bias: OptArray  # lstm (4u,); gru (2, 3u) if reset_after else (3u,); simple_rnn (u,)
    initial_state: tuple  # lstm (h0, c0), gru and simple_rnn (h0,); each (B, u)
    mask: OptArray  # bool (B, T)
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    activation: Any  # elementwise: a Keras name or a callable
    recurrent_activation: Any  # None for simple_rnn
    reset_after: bool | None  # gru only (None for lstm and simple_rnn)


def _state(s, op, name, b, u):
    s = C.array(s, op, name)
    C.shape_is(s, op, name, (b, u), "(batch, units)")
    return s


def _initial_state(cell, initial_state, op, b, u):
    """lstm: a list [h0, c0]; gru and simple_rnn: h0 or [h0]. Zeros by default."""
    if initial_state is None:
        h0 = np.zeros((b, u), F32)
        return (h0, np.zeros((b, u), F32)) if cell == "lstm" else (h0,)
    if cell != "lstm":
        if isinstance(initial_state, (list, tuple)):
            if len(initial_state) != 1:
                raise ValueError(
                    f"{op}: initial_state must be h0 or [h0], got {len(initial_state)} arrays"
                )
            initial_state = initial_state[0]
        return (_state(initial_state, op, "initial_state (h0)", b, u),)
    if isinstance(initial_state, np.ndarray) or not isinstance(initial_state, (list, tuple)):
        raise TypeError(
            f"{op}: initial_state must be a list [h0, c0], got {type(initial_state).__name__}"
        )
    if len(initial_state) != 2:
        raise ValueError(f"{op}: initial_state must be [h0, c0], got {len(initial_state)} arrays")
    return (
        _state(initial_state[0], op, "initial_state[0] (h0)", b, u),
        _state(initial_state[1], op, "initial_state[1] (c0)", b, u),
    )


def _check_recurrent(
    x,
    kernel,
    recurrent_kernel,
    bias,
    *,
    cell: str,
    initial_state,
    mask,
    return_sequences,
    return_state,
    go_backwards,
    reset_after,
    activation,
    recurrent_activation,
    op=None,
    x_name="x",
    build: Build = None,
) -> RecurrentArgs:
    """check_lstm, check_gru and check_simple_rnn: they differ in the gate count, the bias,
    the states and the activations."""
    op = op or cell
    x = C.array(x, op, x_name)
    C.rank(x, op, x_name, 3, "(batch, timesteps, features)")
    if x.shape[1] < 1:
        raise ValueError(f"{op}: {x_name} must have at least one time step, got shape {x.shape}")
    if build is not None:
        kernel, recurrent_kernel, bias = build(x.shape)
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    kernel = C.array(kernel, op, "kernel")
    recurrent_kernel = C.array(recurrent_kernel, op, "recurrent_kernel")
    columns = "units" if gates == 1 else f"{gates} * units"
    why = f"(units, {columns})"
    C.rank(recurrent_kernel, op, "recurrent_kernel", 2, why)
    u = recurrent_kernel.shape[0]
    C.shape_is(recurrent_kernel, op, "recurrent_kernel", (u, gates * u), why)
    C.shape_is(kernel, op, "kernel", (x.shape[2], gates * u), f"(features, {columns})")
    if u < 1:
        raise ValueError(f"{op}: units must be >= 1, got recurrent_kernel {recurrent_kernel.shape}")
    if mask is not None:
        mask = C.bool_mask(mask, op, "mask", shape=x.shape[:2], why="(batch, timesteps)")
    if cell == "gru":
        reset_after = C.flag(reset_after, op, "reset_after")
    bias = C.optional_array(bias, op, "bias")
    if bias is None:
        pass
    elif cell == "lstm":
        C.shape_is(bias, op, "bias", (4 * u,), "(4 * units,)")
    elif cell == "simple_rnn":
        C.shape_is(bias, op, "bias", (u,), "(units,)")
    elif reset_after:
        C.shape_is(bias, op, "bias", (2, 3 * u), "(2, 3 * units) with reset_after=True")
    else:
        C.shape_is(bias, op, "bias", (3 * u,), "(3 * units,) with reset_after=False")
    states = _initial_state(cell, initial_state, op, x.shape[0], u)
    return_sequences = C.flag(return_sequences, op, "return_sequences")
    return_state = C.flag(return_state, op, "return_state")
    go_backwards = C.flag(go_backwards, op, "go_backwards")
    act = C.activation(activation, op, "activation", elementwise=True)
    ract = None
    if cell != "simple_rnn":
        ract = C.activation(recurrent_activation, op, "recurrent_activation", elementwise=True)
    return RecurrentArgs(
        cell,
        x,
        kernel,
        recurrent_kernel,
        bias,
        states,
        mask,
        return_sequences,
        return_state,
        go_backwards,
        act,
        ract,
        reset_after,
    )


# check_lstm(x, kernel, recurrent_kernel, bias, *, <lstm's keywords>, op, x_name, build),
# check_gru(..., <gru's keywords (lstm's and reset_after)>, ...) and check_simple_rnn (lstm's
# without recurrent_activation): one check, three cells.
check_lstm = functools.partial(_check_recurrent, cell="lstm", reset_after=None)
check_gru = functools.partial(_check_recurrent, cell="gru")
check_simple_rnn = functools.partial(_check_recurrent, cell="simple_rnn", reset_after=None,
                                     recurrent_activation=None)


class LSTMCellArgs(NamedTuple):
    x_t: Array  # (B, F)
    h: Array  # (B, u)
    c: Array  # (B, u)
    kernel: Array  # (F, 4u)
    recurrent_kernel: Array  # (u, 4u)
    bias: OptArray  # (4u,)


def check_lstm_cell(x_t, h, c, kernel, recurrent_kernel, bias, *, op="lstm_cell"):
    x_t = C.array(x_t, op, "x_t")
    kernel = C.array(kernel, op, "kernel")
    recurrent_kernel = C.array(recurrent_kernel, op, "recurrent_kernel")
    C.rank(x_t, op, "x_t", 2, "(batch, features)")
    C.rank(recurrent_kernel, op, "recurrent_kernel", 2, "(units, 4 * units)")
    u = recurrent_kernel.shape[0]
    if u < 1:
        raise ValueError(f"{op}: units must be >= 1, got recurrent_kernel {recurrent_kernel.shape}")
    C.shape_is(recurrent_kernel, op, "recurrent_kernel", (u, 4 * u), "(units, 4 * units)")
    C.shape_is(kernel, op, "kernel", (x_t.shape[1], 4 * u), "(features, 4 * units)")
    b = x_t.shape[0]
    h = _state(h, op, "h", b, u)
    c = _state(c, op, "c", b, u)
    bias = C.optional_array(bias, op, "bias")
    if bias is not None:
        C.shape_is(bias, op, "bias", (4 * u,), "(4 * units,)")
    return LSTMCellArgs(x_t, h, c, kernel, recurrent_kernel, bias)


# -------------------------------------------------------------- check_<op>: softmax, attention


class SoftmaxArgs(NamedTuple):
    x: Array  # any shape, rank >= 1
    axes: tuple  # distinct non-negative axes
    mask: OptArray  # bool, broadcast to x's shape (a read-only view)


def check_softmax(x, axis, mask, *, op="softmax", build: Build = None):
    x = C.array(x, op, "x")
    C.min_rank(x, op, "x", 1)
    if build is not None:
        build(x.shape)
    if type(axis) is int and axis == -1 and mask is None:
        return SoftmaxArgs(x, (x.ndim - 1,), None)  # the usual call, with nothing to check
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    if len(items) == 0:
        raise ValueError(f"{op}: axis must not be empty")
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{op}: axis {a} is out of range for an input of rank {x.ndim}")
    axes = tuple(int(a) % x.ndim for a in items)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axis has repeated entries: {axis!r}")
    if mask is not None:
        fits = C.broadcasts_to(x.shape, op, "mask", f"x {x.shape}")
        mask = C.bool_mask(mask, op, "mask", threshold=True, check=fits)
        mask = np.broadcast_to(mask, x.shape)
    return SoftmaxArgs(x, axes, mask)


def _query_value_key(op, query, value, key, what=("dim", "dim_v", "dim")):
    """query (B, T, .), value (B, S, .), key (B, S, .) (value if None), checked alike."""
    query = C.array(query, op, "query")
    value = C.array(value, op, "value")
    key = value if key is None else C.array(key, op, "key")
    C.rank(query, op, "query", 3, f"(batch, Tq, {what[0]})")
    C.rank(value, op, "value", 3, f"(batch, Tv, {what[1]})")
    C.rank(key, op, "key", 3, f"(batch, Tv, {what[2]})")
    b, tv = value.shape[:2]
    if query.shape[0] != b or key.shape[0] != b:
        raise ValueError(
            f"{op}: batch sizes differ: query {query.shape}, value {value.shape}, key {key.shape}"
        )
    if key.shape[1] != tv:
        raise ValueError(
            f"{op}: key has shape {key.shape}, expected ({b}, {tv}, {what[2]}) like value"
        )
    if tv < 1:
        raise ValueError(f"{op}: value must have at least one time step, got {value.shape}")
    return query, value, key


class LuongArgs(NamedTuple):
    query: Array  # (B, Tq, D)
    value: Array  # (B, Tv, Dv)
    key: Array  # (B, Tv, D)
    query_mask: OptArray  # bool (B, Tq)
    value_mask: OptArray  # bool (B, Tv)
    causal: bool
    return_scores: bool
    score_mode: str  # "dot" or "concat" (attention), "additive" (additive_attention)
    scale: Any  # dot, concat: a float or None (no scaling); additive: a (D,) array or None
    concat_score_weight: float | None  # "concat" only: 1.0 by default


def _check_luong(
    query,
    value,
    key=None,
    *,
    additive: bool,
    scale=None,
    score_mode="dot",
    concat_score_weight=None,
    query_mask=None,
    value_mask=None,
    use_causal_mask=False,
    return_attention_scores=False,
    op,
    build: Build = None,
):
    """check_attention and check_additive_attention: they differ only in the score."""
    query, value, key = _query_value_key(op, query, value, key)
    if build is not None:
        weights = build([query.shape, value.shape, key.shape])
        scale, concat_score_weight = weights if len(weights) == 2 else (*weights, None)
    if query.shape[2] != key.shape[2]:
        raise ValueError(
            f"{op}: query has shape {query.shape} and key {key.shape}; their last dims must match"
        )
    if query.shape[2] == 0:  # no scores to compare: refused on both paths alike
        raise ValueError(
            f"{op}: query {query.shape} and key {key.shape} need a feature dimension >= 1"
        )
    if query_mask is not None:
        query_mask = C.bool_mask(
            query_mask, op, "query_mask", shape=query.shape[:2], why="(batch, Tq)"
        )
    if value_mask is not None:
        value_mask = C.bool_mask(
            value_mask, op, "value_mask", shape=value.shape[:2], why="(batch, Tv)"
        )
    causal = C.flag(use_causal_mask, op, "use_causal_mask")
    want_scores = C.flag(return_attention_scores, op, "return_attention_scores")
    common = (query, value, key, query_mask, value_mask, causal, want_scores)
    if additive:
        scale = C.optional_array(scale, op, "scale")
        if scale is not None:
            C.shape_is(scale, op, "scale", (query.shape[2],), "(dim,)")
        return LuongArgs(*common, "additive", scale, None)
    if not isinstance(score_mode, str) or score_mode not in ("dot", "concat"):
        raise ValueError(f"{op}: score_mode must be 'dot' or 'concat', got {score_mode!r}")
    scale = None if scale is None else C.real_scalar(scale, op, "scale")
    if score_mode == "dot":
        if concat_score_weight is not None:
            raise ValueError(f"{op}: concat_score_weight is only used with score_mode='concat'")
    elif concat_score_weight is None:
        concat_score_weight = 1.0
    else:
        concat_score_weight = C.real_scalar(concat_score_weight, op, "concat_score_weight")
    return LuongArgs(*common, score_mode, scale, concat_score_weight)


# check_attention(query, value, key=None, *, <attention's keywords>, op, build) and
# check_additive_attention(..., <additive_attention's keywords>, ...): one check, two scores.
check_attention = functools.partial(_check_luong, additive=False, op="attention")
check_additive_attention = functools.partial(_check_luong, additive=True, op="additive_attention")


class SDPAArgs(NamedTuple):
    q: Array  # (..., T, D)
    k: Array  # (..., S, D)
    v: Array  # (..., S, Dv)
    mask: OptArray  # bool, broadcastable to (..., T, S)
    causal: bool
    scale: float


def check_scaled_dot_product_attention(
    q, k, v, mask, is_causal, scale, enable_gqa=False, *, op="scaled_dot_product_attention"
):
    q = C.array(q, op, "q")
    k = C.array(k, op, "k")
    v = C.array(v, op, "v")
    C.min_rank(q, op, "q", 2, "(..., T, D)")
    C.min_rank(k, op, "k", 2, "(..., S, D)")
    C.min_rank(v, op, "v", 2, "(..., S, Dv)")
    lead = q.shape[:-2]
    gqa = C.flag(enable_gqa, op, "enable_gqa")
    if gqa and q.ndim >= 3 and k.shape[:-2] != lead:
        # grouped-query attention: k and v have G heads (dim -3), G dividing q's H; query
        # head h reads key/value head h // (H / G) (docs/semantics.md §11)
        g = k.shape[-3] if k.ndim == q.ndim else 0
        if (g < 1 or lead[-1] % g or k.shape[:-3] != lead[:-1]
                or v.shape[:-2] != k.shape[:-2]):
            raise ValueError(
                f"{op}: with enable_gqa, k and v need the leading dims of q but for their "
                f"head count (dim -3), one that divides q's: q {q.shape}, k {k.shape}, "
                f"v {v.shape}"
            )
    elif k.shape[:-2] != lead or v.shape[:-2] != lead:
        raise ValueError(
            f"{op}: q {q.shape}, k {k.shape} and v {v.shape} must share their leading dims"
            + ("" if gqa or q.ndim < 3 or k.ndim != q.ndim else
               " (enable_gqa=True lets k and v have fewer heads, dim -3)")
        )
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"{op}: k has shape {k.shape}, expected (..., S, {q.shape[-1]}) like q")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"{op}: v has shape {v.shape}, expected (..., {k.shape[-2]}, Dv) like k")
    if k.shape[-2] < 1:
        raise ValueError(f"{op}: k must have at least one key (S >= 1), got {k.shape}")
    if q.shape[-1] < 1:
        raise ValueError(f"{op}: q must have a feature dim D >= 1, got {q.shape}")
    if mask is not None:
        target = lead + (q.shape[-2], k.shape[-2])
        mask = C.bool_mask(mask, op, "mask", check=C.broadcasts_to(target, op, "mask", f"{target}"),
                           additive_refused=True)
    causal = C.flag(is_causal, op, "is_causal")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else C.real_scalar(scale, op, "scale")
    return SDPAArgs(q, k, v, mask, causal, scale)


class MHAArgs(NamedTuple):
    query: Array  # (B, T, Dq)
    value: Array  # (B, S, Dv)
    key: Array  # (B, S, Dk)
    # (Dq, N, Hk), (Dk, G, Hk), (Dv, G, Hv), (N, Hv, Dout): G = N, or G key/value heads
    # shared by N / G query heads each (grouped-query attention)
    kernels: tuple
    biases: tuple  # (N, Hk), (G, Hk), (G, Hv), (Dout,); each may be None
    mask: OptArray  # bool (B, T, S) or (T, S) (the given mask broadcast); True = may attend
    causal: bool
    return_scores: bool


_MHA_KERNELS = (
    ("query_kernel", "(Dq, num_heads, key_dim)"),
    ("key_kernel", "(Dk, kv_heads, key_dim), kv_heads dividing num_heads"),
    ("value_kernel", "(Dv, kv_heads, value_dim), kv_heads dividing num_heads"),
    ("output_kernel", "(num_heads, value_dim, Dout)"),
)


def check_multi_head_attention(
    query,
    value,
    key,
    query_kernel,
    key_kernel,
    value_kernel,
    output_kernel,
    query_bias,
    key_bias,
    value_bias,
    output_bias,
    attention_mask,
    use_causal_mask,
    return_attention_scores,
    *,
    value_mask=None,
    key_mask=None,
    sliding_window=None,
    op="multi_head_attention",
    build: Build = None,
):
    """The layer's value_mask and key_mask (B, S) and sliding_window are ANDed into the
    attention mask."""
    query, value, key = _query_value_key(op, query, value, key, ("Dq", "Dv", "Dk"))
    (b, t_len, dq), s_len = query.shape, value.shape[1]
    if dq == 0 or value.shape[2] == 0 or key.shape[2] == 0:
        raise ValueError(
            f"{op}: query {query.shape}, value {value.shape} and key {key.shape} need a "
            "feature dimension >= 1"
        )
    kernels = (query_kernel, key_kernel, value_kernel, output_kernel)
    biases = (query_bias, key_bias, value_bias, output_bias)
    if build is not None:
        weights = build(query.shape, value.shape, key.shape)
        kernels, biases = weights[:4], weights[4:]
    kernels = tuple(C.array(w, op, name) for w, (name, _) in zip(kernels, _MHA_KERNELS))
    for w, (name, what) in zip(kernels, _MHA_KERNELS):
        C.rank(w, op, name, 3, what)
    wq, wk, wv, wo = kernels
    _, n, hk = wq.shape
    hv, dout, g = wv.shape[2], wo.shape[2], wk.shape[1]
    if n < 1 or hk < 1 or hv < 1 or dout < 1:
        raise ValueError(f"{op}: num_heads, key_dim, value_dim and Dout must be >= 1")
    if g < 1 or n % g:
        g = n  # kv_heads must divide num_heads: the shape message names num_heads then
    expected = ((dq, n, hk), (key.shape[2], g, hk), (value.shape[2], g, hv), (n, hv, dout))
    for w, (name, what), shape in zip(kernels, _MHA_KERNELS, expected):
        C.shape_is(w, op, name, shape, what)
    names = ("query_bias", "key_bias", "value_bias", "output_bias")
    biases = tuple(C.optional_array(bias, op, name) for bias, name in zip(biases, names))
    for bias, name, shape in zip(biases, names, ((n, hk), (g, hk), (g, hv), (dout,))):
        if bias is not None:
            C.shape_is(bias, op, name, shape)
    mask = attention_mask
    if mask is not None:

        full = (b, t_len, s_len)

        def fits(shape):
            # (B, T, S), (T, S) shared by the batch, or a shape that broadcasts to (B, T, S)
            # as Keras's masks do: a padding mask (B, 1, S) for every query
            if not (len(shape) <= 3 and all(
                    got in (want, 1) for got, want in zip(shape[::-1], full[::-1]))):
                raise ValueError(
                    f"{op}: attention_mask has shape {shape}, expected {full}, "
                    f"{(t_len, s_len)} or a shape that broadcasts to {full} such as "
                    f"{(b, 1, s_len)}"
                )

        mask = C.bool_mask(mask, op, "attention_mask", check=fits)
        if mask.ndim < 3:
            mask = np.ascontiguousarray(np.broadcast_to(mask, full[1:]))
    for name, m in (("value_mask", value_mask), ("key_mask", key_mask)):
        if m is not None:
            m = C.bool_mask(m, op, name, shape=(b, s_len), why="(batch, S)")
            mask = m[:, None, :] if mask is None else mask & m[:, None, :]
    if sliding_window is not None:
        band = np.abs(np.arange(t_len)[:, None] - np.arange(s_len)[None, :]) < sliding_window
        mask = band if mask is None else mask & band
    if mask is not None and mask.ndim == 3:
        mask = np.ascontiguousarray(np.broadcast_to(mask, (b, t_len, s_len)))
    causal = C.flag(use_causal_mask, op, "use_causal_mask")
    return_scores = C.flag(return_attention_scores, op, "return_attention_scores")
    return MHAArgs(query, value, key, kernels, biases, mask, causal, return_scores)


# --------------------------------------- check_<op>: conv1d, depthwise_conv2d (convpool)


def _conv2d_args(op, x, kernel4, bias, strides, padding, dilation_rate, groups, act, pads=None,
                 steps=False):
    """Conv2DArgs for an NHWC x and a conv2d kernel (kh, kw, cg, F), the geometry checked by
    conv2d_geometry; ``pads`` (top, bottom, left, right): zeros around x before the padding
    rule, which then applies to the padded size (with "valid", the pads alone); ``steps``: a
    1-D convolution on a height of 1 (its messages in 1-D terms)."""
    shape = x.shape
    if pads is not None:  # the geometry of the padded input
        shape = (shape[0], shape[1] + pads[0] + pads[1], shape[2] + pads[2] + pads[3], shape[3])
    strides, dilation, rule_pads, out_hw, groups = C.conv2d_geometry(
        op, shape, kernel4.shape, strides, padding, dilation_rate, groups, steps=steps
    )
    if bias is not None:
        C.shape_is(bias, op, "bias", (kernel4.shape[3],), "(filters,)")
    pads = rule_pads if pads is None else tuple(p + r for p, r in zip(pads, rule_pads))
    return Conv2DArgs(x, kernel4, bias, strides, dilation, pads, out_hw, groups, act)


def _to_channels_last(x, channels_first):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_first else x


def check_conv1d(
    x,
    kernel,
    bias,
    strides,
    padding,
    dilation_rate,
    groups,
    activation,
    *,
    op="conv1d",
    x_name="x",
    channels_first=False,
    build: Build = None,
):
    """Conv1D as conv2d of height 1: Conv2DArgs with x (N, 1, T, C) and kernel (1, k, cg, F).
    "causal" pads dilation * (k - 1) zeros before the first step and runs "valid". With
    channels_first, x is (N, C, T)."""
    x = C.array(x, op, x_name)
    C.rank(x, op, x_name, 3, "(N, C, T)" if channels_first else "(batch, steps, channels)")
    if build is not None:
        kernel, bias = build(x.shape)
    x = _to_channels_last(x, channels_first)
    kernel = C.array(kernel, op, "kernel")
    bias = C.optional_array(bias, op, "bias")
    act = C.activation(activation, op)
    C.rank(kernel, op, "kernel", 3, "(kernel_size, in_channels // groups, filters)")
    (s,) = C.int_tuple(strides, op, "strides", n=1, maximum=C.MAX_INT32)
    (d,) = C.int_tuple(dilation_rate, op, "dilation_rate", n=1, maximum=C.MAX_INT32)
    if not isinstance(padding, str):
        raise TypeError(f"{op}: padding must be 'valid', 'same' or 'causal', got "
                        f"{type(padding).__name__}")
    pad = padding.lower()
    if pad not in ("valid", "same", "causal"):
        raise ValueError(f"{op}: padding must be 'valid', 'same' or 'causal', got {padding!r}")
    k, cg, f = kernel.shape
    # what conv2d_geometry would report of the height-1 image, in 1-D terms
    if 0 in x.shape[1:]:
        raise ValueError(f"{op}: {x_name} has an empty steps or channel axis, shape {x.shape}")
    if 0 in kernel.shape:
        raise ValueError(f"{op}: kernel has an empty dimension, shape {kernel.shape}")
    if s > 1 and d > 1:
        raise ValueError(
            f"{op}: strides > 1 together with dilation_rate > 1 is not allowed (as in Keras); "
            f"got strides {s} and dilation_rate {d}"
        )
    if isinstance(groups, (int, np.integer)) and not isinstance(groups, (bool, np.bool_)) \
            and groups >= 1 and cg * groups != x.shape[2]:
        raise ValueError(
            f"{op}: kernel has shape {kernel.shape}, expected ({k}, "
            f"{x.shape[2] // groups if x.shape[2] % groups == 0 else '?'}, {f}) for "
            f"{x.shape[2]} input channels and groups {groups}"
        )
    causal = (0, 0, d * (k - 1), 0) if pad == "causal" else None
    return _conv2d_args(
        op, x[:, None], kernel[None], bias, (1, s), "valid" if causal else pad, (1, d), groups,
        act, pads=causal, steps=True,
    )


def depth_geometry(op, d, kd, sd, dd, pad):
    """Along the depth axis of a 3D convolution or pooling: (output depth, pad before, pad
    after) for ``d`` inputs, a window of ``kd`` taps dilated by ``dd``, stride ``sd`` and
    padding "valid" or "same" (the extra step of odd padding after, as TensorFlow)."""
    eff = (kd - 1) * dd + 1
    if pad == "valid":
        if d < eff:
            raise ValueError(
                f"{op}: with padding 'valid' the input depth {d} is smaller than the dilated "
                f"window {eff}; the output would be empty"
            )
        return (d - eff) // sd + 1, 0, 0
    od = -(-d // sd)
    total = max((od - 1) * sd + eff - d, 0)
    return od, total // 2, total - total // 2


def depth_stack(op, x, taps, od, sd, dd, pads, groups):
    """x (N, D, H, W, C) as (N * od, H, W, taps * C): output depth step o reads input depths
    o * sd + a * dd - pads[0], a < taps (zeros outside), stacked along the channels group by
    group ([group][tap][channel of the group]), so that a 2D convolution with ``groups`` over
    it is the 3D one (docs/semantics.md §30). A new array, of taps * od / D times the input's
    size (the padding is never materialized)."""
    n, d, h, w, c = x.shape
    C.elements(n * od * h * w * taps * c, op, "the depth-stacked input")
    with allocating(op, "the depth-stacked input"):
        return stack_depths(x, depth_copies(d, taps, od, sd, dd, pads[0]), od, taps, groups)


def depth_copies(d, taps, od, sd, dd, front):
    """What :func:`depth_stack` copies for an input depth d: (tap a, output steps [o0, o1),
    the input slice i0 : i0 + (o1 - o0 - 1) * sd + 1 : sd) for every tap that reads any."""
    copies = []
    for a in range(taps):  # output o reads input i = o * sd + a * dd - front in [0, d)
        first = a * dd - front
        o0 = max(0, -(first // sd))  # the first o with o * sd + first >= 0
        o1 = min(od, (d - 1 - first) // sd + 1) if d - 1 - first >= 0 else 0
        if o1 > o0:
            i0 = o0 * sd + first
            copies.append((a, o0, o1, slice(i0, i0 + (o1 - o0 - 1) * sd + 1, sd)))
    return tuple(copies)


def stack_depths(x, copies, od, taps, groups):
    """:func:`depth_stack`'s array from its :func:`depth_copies` (no checks: a layer's
    direct-call runner keeps the copies of one input shape)."""
    n, _, h, w, c = x.shape
    out = np.zeros((n, od, h, w, groups, taps, c // groups), np.float32)
    for a, o0, o1, src in copies:
        out[:, o0:o1, :, :, :, a, :] = x[:, src].reshape(n, o1 - o0, h, w, groups, c // groups)
    return out.reshape(n * od, h, w, taps * c)


def conv3d_kernel4(kernel: np.ndarray) -> np.ndarray:
    """A Conv3D kernel (kd, kh, kw, cg, F) as the conv2d kernel (kh, kw, kd * cg, F) of
    :func:`depth_stack`'s channel order (a copy)."""
    kd, kh, kw, cg, f = kernel.shape
    return np.ascontiguousarray(kernel.transpose(1, 2, 0, 3, 4)).reshape(kh, kw, kd * cg, f)


def check_conv3d(
    x,
    kernel,
    bias,
    strides,
    padding,
    dilation_rate,
    groups,
    activation,
    *,
    op="conv3d",
    x_name="x",
    channels_first=False,
    build: Build = None,
    stack: bool = True,
):
    """Conv3D as a conv2d over the depth-stacked input (:func:`depth_stack`): (Conv2DArgs
    with x (N * OD, H, W, kd * C) and kernel (kh, kw, kd * cg, F), OD, (depth pad before,
    after)). With ``stack=False`` the args' x is the input itself, channels last (N, D, H, W,
    C), for the C++ path that reads it in place (functional.run_conv3d): the Conv2DArgs then
    hold the stacked conv2d's kernel and geometry beside a 5-D x. With channels_first, x is
    (N, C, D, H, W)."""
    x = C.array(x, op, x_name)
    C.rank(x, op, x_name, 5, "(N, C, D, H, W)" if channels_first else
           "(batch, depth, height, width, channels)")
    if build is not None:
        kernel, bias = build(x.shape)
    x = _to_channels_last(x, channels_first)
    kernel = C.array(kernel, op, "kernel")
    bias = C.optional_array(bias, op, "bias")
    act = C.activation(activation, op)
    C.rank(kernel, op, "kernel", 5, "(kd, kh, kw, in_channels // groups, filters)")
    sd, sh, sw = C.int_tuple(strides, op, "strides", n=3, maximum=C.MAX_INT32)
    dd, dh, dw = C.int_tuple(dilation_rate, op, "dilation_rate", n=3, maximum=C.MAX_INT32)
    kd, kh, kw, cg, f = kernel.shape
    n, d, h, w, c = x.shape
    if 0 in (d, h, w, c):
        raise ValueError(f"{op}: {x_name} has an empty spatial or channel axis, shape {x.shape} "
                         "(channels last)")
    # conv2d's checks (padding, groups, channels, the kernel's shape) on a depth slice first
    C.conv2d_geometry(op, (n, h, w, c), (kh, kw, cg, f), (sh, sw), padding, (dh, dw), groups)
    if max(sd, sh, sw) > 1 and max(dd, dh, dw) > 1:
        raise ValueError(
            f"{op}: strides > 1 together with dilation_rate > 1 is not allowed (as in Keras); "
            f"got strides {(sd, sh, sw)} and dilation_rate {(dd, dh, dw)}"
        )
    if kd < 1:
        raise ValueError(f"{op}: kernel has an empty dimension, shape {kernel.shape}")
    od, front, back = depth_geometry(op, d, kd, sd, dd, padding.lower())
    kernel4 = conv3d_kernel4(kernel)
    strides2, dilation2, pads2, out_hw, groups = C.conv2d_geometry(
        op, (n * od, h, w, kd * c), kernel4.shape, (sh, sw), padding, (dh, dw), groups)
    if bias is not None:
        C.shape_is(bias, op, "bias", (f,), "(filters,)")
    if stack:
        x = depth_stack(op, x, kd, od, sd, dd, (front, back), int(groups))
    args = Conv2DArgs(x, kernel4, bias, strides2, dilation2, pads2, out_hw, groups, act)
    return args, od, (front, back)


def depthwise_kernel4(kernel: np.ndarray) -> np.ndarray:
    """A depthwise kernel (kh, kw, C, m) as a conv2d kernel (kh, kw, 1, C * m) for groups = C:
    output channel c * m + j reads input channel c (Keras's order). A view."""
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, 1, c * m)


def check_depthwise_conv2d(
    x,
    kernel,
    bias,
    strides,
    padding,
    dilation_rate,
    activation,
    *,
    op="depthwise_conv2d",
    x_name="x",
    channels_first=False,
    build: Build = None,
    steps: bool = False,
    pads=None,
):
    """DepthwiseConv2D as conv2d with groups = C: Conv2DArgs with kernel (kh, kw, 1, C * m).
    With channels_first, x is (N, C, H, W). ``steps``: a 1-D layer's call on a height of 1
    (its messages in 1-D terms). ``pads``: as for check_conv2d."""
    x = C.array(x, op, x_name)
    what = "(N, C, H, W)" if channels_first else "(batch, height, width, channels)"
    C.rank(x, op, x_name, 4, what)
    if build is not None:
        kernel, bias = build(x.shape)[:2]
    x = _to_channels_last(x, channels_first)
    kernel = C.array(kernel, op, "kernel")
    bias = C.optional_array(bias, op, "bias")
    act = C.activation(activation, op)
    C.rank(kernel, op, "kernel", 4, "(kh, kw, in_channels, depth_multiplier)")
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"{op}: kernel has shape {kernel.shape}, expected ({kernel.shape[0]}, "
            f"{kernel.shape[1]}, {x.shape[3]}, depth_multiplier) for {x.shape[3]} input channels"
        )
    if x.shape[3] == 0:  # (conv2d's check would name the groups, C, that the user never gave)
        raise ValueError(f"{op}: x has no channels, shape {x.shape} (channels last)")
    return _conv2d_args(
        op, x, depthwise_kernel4(kernel), bias, strides, padding, dilation_rate, x.shape[3], act,
        pads=pads, steps=steps,
    )
# ------------------------------------------------------------------- check_<op>: layer_norm


class LayerNormArgs(NamedTuple):
    x: Array  # any shape, rank >= 1
    gamma: OptArray  # x's shape over `axes`, in axis order
    beta: OptArray  # the same
    axes: tuple  # distinct non-negative axes, sorted
    epsilon: float  # >= 0


def check_layer_norm(x, gamma, beta, axis, epsilon, *, op="layer_norm"):
    """x as float32 (rank >= 1), the axes as sorted non-negative positions, gamma and beta
    (optional) of x's shape over those axes, epsilon a finite real >= 0."""
    x = C.array(x, op, "x")
    C.min_rank(x, op, "x", 1)
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    if len(items) == 0:
        raise ValueError(f"{op}: axis must not be empty")
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or a list of ints, got {axis!r}")
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{op}: axis {a} is out of range for x of rank {x.ndim}")
    axes = tuple(sorted(int(a) % x.ndim for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axis has repeated entries: {axis!r}")
    eps = C.real_scalar(epsilon, op, "epsilon")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"{op}: epsilon must be a finite number >= 0, got {epsilon!r}")
    want = tuple(x.shape[a] for a in axes)
    gamma = C.optional_array(gamma, op, "gamma")
    beta = C.optional_array(beta, op, "beta")
    for name, w in (("gamma", gamma), ("beta", beta)):
        if w is not None:
            C.shape_is(w, op, name, want, f"x's shape over axes {axes}")
    return LayerNormArgs(x, gamma, beta, axes, eps)


# ------------------------------------------------------- check_experts (mixture of experts)


class ExpertsArgs(NamedTuple):
    x: Array  # (N, H) float32: the tokens, leading axes flattened
    index: Array  # (N, k) intp in [0, num_experts)
    weights: Array  # (N, k) float32
    activation: Any  # a Keras name
    gated: bool
    lead: tuple  # the leading axes of the inputs, for the output (lead + (H,))


def check_experts(x, index, weights, *, hidden, num_experts, activation, gated, op="experts"):
    """x (..., hidden) as float32; index (..., k) of integers in [0, num_experts) and
    weights (..., k) of the same shape, whose leading axes are x's; flattened to rows."""
    x = C.array(x, op, "x")
    C.min_rank(x, op, "x", 1, "(..., hidden)")
    if x.shape[-1] != hidden:
        raise ValueError(f"{op}: x has shape {x.shape}; its last axis must be the experts' "
                         f"input size {hidden}")
    index = C.real_array(index, op, "index", "an array of integer expert numbers")
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must hold integers (expert numbers), got dtype "
                        f"{index.dtype}")
    weights = C.array(weights, op, "weights")
    lead = x.shape[:-1]
    if index.ndim != x.ndim or index.shape[:-1] != lead:
        raise ValueError(f"{op}: index has shape {index.shape}, expected {lead + ('k',)}: "
                         f"the leading axes of x {x.shape} and the k experts of each row")
    C.shape_is(weights, op, "weights", index.shape, "index's shape: a weight per expert chosen")
    if index.size:
        lo, hi = index.min(), index.max()
        if lo < 0 or hi >= num_experts:
            raise ValueError(f"{op}: expert number {(lo if lo < 0 else hi).item()!r} is out of "
                             f"range for {num_experts} experts (index must be in "
                             f"[0, {num_experts}))")
    rows = math.prod(lead)
    return ExpertsArgs(x.reshape(rows, hidden), index.reshape(rows, index.shape[-1]).astype(
        np.intp, copy=False), weights.reshape(rows, index.shape[-1]), activation, gated, lead)
