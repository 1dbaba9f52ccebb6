"""The public ops of fastlayers: Keras 3 semantics, float32, batch first, NHWC images.

Every op validates its arguments once (fastlayers/_validation.py), then runs on
the C++ path when the compiled core serves the call, else on the NumPy path
(fastlayers/_numpy/). See :func:`fastlayers.set_backend` to choose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend, _symbolic
from . import _validation as V
from ._numpy import activations as _np_activations
from ._numpy import attention as _np_attention
from ._numpy import conv2d as _np_conv2d
from ._numpy import dense as _np_dense
from ._numpy import recurrent as _np_recurrent

ArrayLike = Any

__all__ = [
    "dense",
    "flatten",
    "conv2d",
    "lstm",
    "lstm_cell",
    "gru",
    "softmax",
    "attention",
    "additive_attention",
    "scaled_dot_product_attention",
    "multi_head_attention",
]


# -------------------------------------------------------------------------- matmul


@_symbolic.symbolic_op
def matmul(a: ArrayLike, b: ArrayLike, *, transpose_b: bool = False) -> np.ndarray:
    """Batched matrix product with NumPy broadcasting (``tf.matmul``, ``keras.ops.matmul``).

    Parameters
    ----------
    a : array (..., M, K), rank >= 2
    b : array (..., K, N), rank >= 2; (..., N, K) with ``transpose_b=True``
        The leading (batch) axes of a and b broadcast against each other.
    transpose_b : bool
        Multiply by the transpose of b's last two axes (``tf.matmul(a, b,
        transpose_b=True)``, e.g. queries times keys).

    Returns
    -------
    y : float32 array (broadcast batch..., M, N)

    On the C++ path each product runs on the GEMM engine with b read in place for a few
    rows of a (one product per broadcast batch entry; a 2-D b takes all rows of a at once).
    """
    op = "matmul"
    a = V.array(a, op, "a")
    b = V.array(b, op, "b")
    transpose_b = V.flag(transpose_b, op, "transpose_b")
    V.min_rank(a, op, "a", 2, "(..., M, K)")
    V.min_rank(b, op, "b", 2, "(..., N, K)" if transpose_b else "(..., K, N)")
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"{op}: a {a.shape} and b {b.shape if not transpose_b else np.swapaxes(b, -1, -2).shape}"
            f" do not chain: a's last axis ({a.shape[-1]}) must equal b's "
            f"{'last' if transpose_b else 'second-to-last'} axis ({b.shape[-2]})"
        )
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: the batch axes of a {a.shape[:-2]} and b {b.shape[:-2]} do not broadcast"
        ) from None
    if _backend.resolve(op, None) == "numpy":
        return _np_dense.matmul(a, b)
    core = _backend._core
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if b.ndim == 2:  # one product over all rows of a
        rows = np.ascontiguousarray(a).reshape(-1, k)
        y = core.dense_unpacked(rows, np.ascontiguousarray(b), None, 0)
        return y.reshape(a.shape[:-1] + (n,))
    a_b = np.broadcast_to(a, batch + (m, k)).reshape(-1, m, k)
    b_b = np.broadcast_to(b, batch + (k, n)).reshape(-1, k, n)
    y = np.empty((a_b.shape[0], m, n), np.float32)
    for i in range(a_b.shape[0]):
        y[i] = core.dense_unpacked(
            np.ascontiguousarray(a_b[i]), np.ascontiguousarray(b_b[i]), None, 0
        )
    return y.reshape(batch + (m, n))


# --------------------------------------------------------------------------- dense


@_symbolic.symbolic_op
def dense(
    x: ArrayLike, kernel: ArrayLike, bias: ArrayLike | None = None, activation: Any = None
) -> np.ndarray:
    """Fully connected layer: ``activation(x @ kernel + bias)`` (Keras ``Dense``).

    Parameters
    ----------
    x : array (..., K), rank >= 2
        Only the last axis is contracted; leading axes are kept.
    kernel : array (K, N)
    bias : array (N,), optional
    activation : str, callable or None
        A Keras activation name (``"relu"``, ``"gelu"`` (exact), ``"leaky_relu"``
        (slope 0.2), ...); None means linear.

    Returns
    -------
    y : float32 array (..., N)

    The C++ path reads ``kernel`` in place for up to 32 rows of x and packs it per call
    for more; :class:`fastlayers.layers.Dense` packs it once, when its weights are set.
    """
    op = "dense"
    x = V.array(x, op, "x")
    kernel = V.array(kernel, op, "kernel")
    bias = V.optional_array(bias, op, "bias")
    act = V.activation(activation, op)
    V.min_rank(x, op, "x", 2, "(batch, ..., features)")
    V.rank(kernel, op, "kernel", 2, "(input_dim, units)")
    if kernel.shape[0] != x.shape[-1]:
        raise ValueError(
            f"{op}: kernel has shape {kernel.shape}, expected ({x.shape[-1]}, units) "
            f"to match the last axis of x {x.shape}"
        )
    if bias is not None:
        V.shape_is(bias, op, "bias", (kernel.shape[1],), "(units,)")
    return _dense_run(x, kernel, bias, act, None)


def _dense_run(x, kernel, bias, act, packed):
    """dense on validated arrays; ``packed`` is the kernel pre-packed for C++ (or None).

    On the C++ path elementwise activations run fused in the GEMM's epilogue and
    softmax in the softmax kernel; the other row activations (log_softmax, sparsemax,
    glu) and Python callables are applied to the GEMM's output afterwards.
    """
    if _backend.resolve("dense", None) == "numpy":
        return _np_dense.dense(x, kernel, bias, act)
    core = _backend._core
    k = kernel.shape[0]
    x2 = x.reshape(math.prod(x.shape[:-1]), k)  # a view: x is C-contiguous
    fused = None if callable(act) else _backend.cpp_activation_ids().get(act)
    if packed is None:
        # A kernel used once: the core reads it in place for a few rows, packs it otherwise.
        def run(act_id):
            return core.dense_unpacked(x2, kernel, bias, act_id)
    else:

        def run(act_id):
            return core.dense(x2, packed, act_id)

    if fused is not None:
        y = run(fused)
    elif act == "softmax":
        y = core.softmax_lastdim(run(0))
    else:
        y = _np_activations.apply(act, run(0))
    return y.reshape(x.shape[:-1] + (y.shape[-1],))  # glu halves the last axis


@_symbolic.symbolic_op
def flatten(x: ArrayLike) -> np.ndarray:
    """Flatten all but the batch axis in row-major (channels-last) order (Keras ``Flatten``).

    x (B, d1, ..., dn) -> (B, d1*...*dn); a 1-D x (B,) becomes (B, 1). The result
    is a new array; flatten does no arithmetic, so it runs the same on every backend.
    """
    op = "flatten"
    original = x
    x = V.array(x, op, "x")
    V.min_rank(x, op, "x", 1, "(batch, ...)")
    # A pure reshape: no arithmetic, so it is the same under every backend. The result
    # never shares memory with the caller's array.
    y = _np_dense.flatten(x)
    return y.copy() if np.shares_memory(y, original) else y


# -------------------------------------------------------------------------- conv2d


@_symbolic.symbolic_op
def conv2d(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: int | tuple[int, int] = 1,
    padding: str = "valid",
    dilation_rate: int | tuple[int, int] = 1,
    groups: int = 1,
    activation: Any = None,
) -> np.ndarray:
    """2D convolution on NHWC images (Keras ``Conv2D``, channels_last).

    Parameters
    ----------
    x : array (N, H, W, C)
    kernel : array (kh, kw, C // groups, F)
    bias : array (F,), optional
    strides, dilation_rate : int or (int, int)
        Strides > 1 together with dilation > 1 is rejected, as in Keras.
    padding : ``"valid"`` or ``"same"``
        ``"same"`` gives ceil(H / stride) rows; odd total padding puts the extra
        pixel at the bottom/right (the TensorFlow rule).
    groups : int
        C and F must both be divisible by it; ``groups == C`` is depthwise.
    activation : str, callable or None

    Returns
    -------
    y : float32 array (N, OH, OW, F)
    """
    return _conv2d(x, kernel, bias, strides, padding, dilation_rate, groups, activation, None)


def _conv2d(x, kernel, bias, strides, padding, dilation_rate, groups, activation, packed):
    """conv2d with ``packed``: the kernel and bias pre-packed for C++ (layers.Conv2D), or None."""
    op = "conv2d"
    x = V.array(x, op, "x")
    kernel = V.array(kernel, op, "kernel")
    bias = V.optional_array(bias, op, "bias")
    act = V.activation(activation, op)
    V.rank(x, op, "x", 4, "(batch, height, width, channels)")
    V.rank(kernel, op, "kernel", 4, "(kh, kw, in_channels // groups, filters)")
    strides_, dilation, pads, out_hw, groups = V.conv2d_geometry(
        op, x.shape, kernel.shape, strides, padding, dilation_rate, groups
    )
    if bias is not None:
        V.shape_is(bias, op, "bias", (kernel.shape[3],), "(filters,)")
    return _conv2d_run(x, kernel, bias, strides_, dilation, pads, out_hw, groups, act, packed)


def _conv2d_run(x, kernel, bias, strides, dilation, pads, out_hw, groups, act, packed):
    """conv2d on validated arrays and geometry; ``packed`` is a ``_core.PackedConv`` (or None).

    On the C++ path elementwise activations run fused in the GEMM's epilogue and
    softmax in the softmax kernel; the other row activations and Python callables are
    applied to the output afterwards (as in :func:`_dense_run`).
    """
    if _backend.resolve("conv2d", None) == "numpy":
        return _np_conv2d.conv2d(x, kernel, bias, strides, dilation, pads, out_hw, groups, act)
    core = _backend._core
    fused = None if callable(act) else _backend.cpp_activation_ids().get(act)
    if packed is not None:
        kernel, bias = packed, None
    y = core.conv2d(x, kernel, bias, strides, dilation, pads, groups, fused or 0)
    if fused is not None or act is None or act == "linear":
        return y
    if act == "softmax":
        return core.softmax_lastdim(y.reshape(-1, y.shape[-1])).reshape(y.shape)
    return _np_activations.apply(act, y)


# ------------------------------------------------------------------------ recurrent


def _recurrent_common(op, x, kernel, recurrent_kernel, gates, mask):
    x = V.array(x, op, "x")
    kernel = V.array(kernel, op, "kernel")
    recurrent_kernel = V.array(recurrent_kernel, op, "recurrent_kernel")
    V.rank(x, op, "x", 3, "(batch, timesteps, features)")
    if x.shape[1] < 1:
        raise ValueError(f"{op}: x must have at least one time step, got shape {x.shape}")
    V.rank(recurrent_kernel, op, "recurrent_kernel", 2, f"(units, {gates} * units)")
    u = recurrent_kernel.shape[0]
    V.shape_is(
        recurrent_kernel, op, "recurrent_kernel", (u, gates * u), f"(units, {gates} * units)"
    )
    V.shape_is(kernel, op, "kernel", (x.shape[2], gates * u), f"(features, {gates} * units)")
    if u < 1:
        raise ValueError(f"{op}: units must be >= 1, got recurrent_kernel {recurrent_kernel.shape}")
    if mask is not None:
        mask = V.bool_mask(mask, op, "mask")
        V.shape_is(mask, op, "mask", x.shape[:2], "(batch, timesteps)")
    return x, kernel, recurrent_kernel, u, mask


def _state(s, op, name, b, u):
    s = V.array(s, op, name)
    V.shape_is(s, op, name, (b, u), "(batch, units)")
    return s


def _rnn_cpp_reason(act, ract):
    """None when the C++ path serves these activations, else why not."""
    ids = _backend.cpp_activation_ids()
    for name, a in (("activation", act), ("recurrent_activation", ract)):
        if callable(a):
            return f"a callable {name}"
        if a not in ids:
            return f"{name} {a!r} is not in the core's activation table"
    return None


def _pack_lstm(kernel, recurrent_kernel, bias):
    """(PackedGates(kernel, 4, bias), PackedGates(recurrent_kernel, 4)) for ``_core.lstm``."""
    core = _backend._core
    return core.PackedGates(kernel, 4, bias), core.PackedGates(recurrent_kernel, 4)


def _pack_gru(kernel, recurrent_kernel, bias, reset_after):
    """(packed kernel, packed recurrent, packed recurrent_h or None) for ``_core.gru``.

    reset_after: the input bias goes with the kernel, the recurrent bias with the
    recurrent kernel. reset_before: the recurrent kernel is split into its [z | r] and
    [h] column blocks, because (r * h) multiplies the [h] block in a second GEMM.
    """
    core = _backend._core
    if reset_after:
        b_in, b_rec = (None, None) if bias is None else (bias[0], bias[1])
        return (
            core.PackedGates(kernel, 3, b_in),
            core.PackedGates(recurrent_kernel, 3, b_rec),
            None,
        )
    u = recurrent_kernel.shape[0]
    return (
        core.PackedGates(kernel, 3, bias),
        core.PackedGates(np.ascontiguousarray(recurrent_kernel[:, : 2 * u]), 2),
        core.PackedDense(np.ascontiguousarray(recurrent_kernel[:, 2 * u :])),
    )


@_symbolic.symbolic_op
def lstm(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    initial_state: Sequence[ArrayLike] | None = None,
    mask: ArrayLike | None = None,
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    activation: Any = "tanh",
    recurrent_activation: Any = "sigmoid",
):
    """LSTM over a sequence (Keras ``LSTM``); gate blocks ordered [i | f | c | o].

    Parameters
    ----------
    x : array (B, T, F)
    kernel : array (F, 4u)
    recurrent_kernel : array (u, 4u)
    bias : array (4u,), optional
    initial_state : [h0, c0], each (B, u); zeros by default
    mask : bool array (B, T), optional
        A masked step keeps the state and repeats the previous output (zeros before
        the first unmasked step).
    return_sequences : bool
        Return all outputs (B, T, u) instead of the last (B, u).
    return_state : bool
        Also return the final h and c.
    go_backwards : bool
        Consume the input from t = T-1 down to 0; the returned sequence stays in
        processing order.
    activation, recurrent_activation : str or callable (elementwise)

    Returns
    -------
    output, or (output, h, c) if return_state; float32.

    The C++ path serves every call whose activations are in the core's elementwise
    table (a callable runs on NumPy); it packs the kernels on every call (one unmasked
    step of up to 32 rows reads them in place instead, as :func:`lstm_cell` does), while
    :class:`fastlayers.layers.LSTM` packs them once, when its weights are set.
    """
    return _lstm(
        x,
        kernel,
        recurrent_kernel,
        bias,
        initial_state,
        mask,
        return_sequences,
        return_state,
        go_backwards,
        activation,
        recurrent_activation,
        None,
    )


def _lstm(
    x,
    kernel,
    recurrent_kernel,
    bias,
    initial_state,
    mask,
    return_sequences,
    return_state,
    go_backwards,
    activation,
    recurrent_activation,
    packed,
):
    """lstm with its arguments in order; ``packed`` is None or the (kernel, recurrent
    kernel) pair packed for C++ by :func:`_pack_lstm` (layers.LSTM packs once)."""
    op = "lstm"
    x, kernel, recurrent_kernel, u, mask = _recurrent_common(
        op, x, kernel, recurrent_kernel, 4, mask
    )
    b = x.shape[0]
    bias = V.optional_array(bias, op, "bias")
    if bias is not None:
        V.shape_is(bias, op, "bias", (4 * u,), "(4 * units,)")
    if initial_state is None:
        h0 = np.zeros((b, u), np.float32)
        c0 = np.zeros((b, u), np.float32)
    else:
        if isinstance(initial_state, np.ndarray) or not isinstance(initial_state, (list, tuple)):
            raise TypeError(
                f"{op}: initial_state must be a list [h0, c0], got {type(initial_state).__name__}"
            )
        if len(initial_state) != 2:
            raise ValueError(
                f"{op}: initial_state must be [h0, c0], got {len(initial_state)} arrays"
            )
        h0 = _state(initial_state[0], op, "initial_state[0] (h0)", b, u)
        c0 = _state(initial_state[1], op, "initial_state[1] (c0)", b, u)
    return_sequences = V.flag(return_sequences, op, "return_sequences")
    return_state = V.flag(return_state, op, "return_state")
    go_backwards = V.flag(go_backwards, op, "go_backwards")
    act = V.activation(activation, op, "activation", elementwise=True)
    ract = V.activation(recurrent_activation, op, "recurrent_activation", elementwise=True)
    if _backend.resolve(op, _rnn_cpp_reason(act, ract)) == "cpp":
        ids = _backend.cpp_activation_ids()
        if packed is None and x.shape[1] == 1 and mask is None:
            # One step with weights used once (streaming calls): _core.lstm_cell reads them in
            # place for up to 32 rows (packs them above), the same bits as the packed step.
            h, c = _backend._core.lstm_cell(
                x[:, 0], kernel, recurrent_kernel, bias, h0, c0, ids[act], ids[ract]
            )
            out = h.reshape(b, 1, u).copy() if return_sequences else h
        else:
            if packed is None:
                packed = _pack_lstm(kernel, recurrent_kernel, bias)
            out, h, c = _backend._core.lstm(
                x, *packed, h0, c0, mask, return_sequences, go_backwards, ids[act], ids[ract]
            )
    else:
        out, h, c = _np_recurrent.lstm(
            x,
            kernel,
            recurrent_kernel,
            bias,
            h0,
            c0,
            mask,
            return_sequences,
            go_backwards,
            act,
            ract,
        )
    if not return_state:
        return out
    return out, (h.copy() if h is out else h), c  # never hand out one array twice


@_symbolic.symbolic_op
def lstm_cell(
    x_t: ArrayLike,
    h: ArrayLike,
    c: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step (Keras ``LSTMCell``, tanh / sigmoid).

    x_t (B, F), h (B, u), c (B, u), kernel (F, 4u), recurrent_kernel (u, 4u),
    bias (4u,) -> (h_next, c_next), each (B, u).
    """
    op = "lstm_cell"
    x_t = V.array(x_t, op, "x_t")
    kernel = V.array(kernel, op, "kernel")
    recurrent_kernel = V.array(recurrent_kernel, op, "recurrent_kernel")
    V.rank(x_t, op, "x_t", 2, "(batch, features)")
    V.rank(recurrent_kernel, op, "recurrent_kernel", 2, "(units, 4 * units)")
    u = recurrent_kernel.shape[0]
    if u < 1:
        raise ValueError(f"{op}: units must be >= 1, got recurrent_kernel {recurrent_kernel.shape}")
    V.shape_is(recurrent_kernel, op, "recurrent_kernel", (u, 4 * u), "(units, 4 * units)")
    V.shape_is(kernel, op, "kernel", (x_t.shape[1], 4 * u), "(features, 4 * units)")
    b = x_t.shape[0]
    h = _state(h, op, "h", b, u)
    c = _state(c, op, "c", b, u)
    bias = V.optional_array(bias, op, "bias")
    if bias is not None:
        V.shape_is(bias, op, "bias", (4 * u,), "(4 * units,)")
    if _backend.resolve(op, None) == "numpy":
        return _np_recurrent.lstm_cell(x_t, h, c, kernel, recurrent_kernel, bias)
    ids = _backend.cpp_activation_ids()
    # The weights are read in place: packing them (as lstm does, once per sequence) would cost
    # more than the step itself.
    return _backend._core.lstm_cell(
        x_t, kernel, recurrent_kernel, bias, h, c, ids["tanh"], ids["sigmoid"]
    )


@_symbolic.symbolic_op
def gru(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    initial_state: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    reset_after: bool = True,
    activation: Any = "tanh",
    recurrent_activation: Any = "sigmoid",
):
    """GRU over a sequence (Keras ``GRU``); gate blocks ordered [z | r | h].

    Parameters
    ----------
    x : array (B, T, F)
    kernel : array (F, 3u)
    recurrent_kernel : array (u, 3u)
    bias : array (2, 3u) if reset_after (input bias; recurrent bias), else (3u,); optional
    initial_state : h0 (B, u) or [h0]; zeros by default
    mask, return_sequences, go_backwards, activation, recurrent_activation : as for :func:`lstm`
    return_state : bool
        Also return the final h.
    reset_after : bool
        True (Keras's default, PyTorch's form): the reset gate multiplies
        ``h @ R_h + b_rec_h``; False: it multiplies h before the matmul.

    Returns
    -------
    output, or (output, h) if return_state; float32.

    C++ path: as for :func:`lstm` (:class:`fastlayers.layers.GRU` packs once).
    """
    return _gru(
        x,
        kernel,
        recurrent_kernel,
        bias,
        initial_state,
        mask,
        return_sequences,
        return_state,
        go_backwards,
        reset_after,
        activation,
        recurrent_activation,
        None,
    )


def _gru(
    x,
    kernel,
    recurrent_kernel,
    bias,
    initial_state,
    mask,
    return_sequences,
    return_state,
    go_backwards,
    reset_after,
    activation,
    recurrent_activation,
    packed,
):
    """gru with its arguments in order; ``packed`` is None or the kernels packed for C++
    by :func:`_pack_gru` with the same reset_after (layers.GRU packs once)."""
    op = "gru"
    x, kernel, recurrent_kernel, u, mask = _recurrent_common(
        op, x, kernel, recurrent_kernel, 3, mask
    )
    b = x.shape[0]
    reset_after = V.flag(reset_after, op, "reset_after")
    bias = V.optional_array(bias, op, "bias")
    if bias is not None:
        expected = (2, 3 * u) if reset_after else (3 * u,)
        why = (
            "(2, 3 * units) with reset_after=True"
            if reset_after
            else "(3 * units,) with reset_after=False"
        )
        V.shape_is(bias, op, "bias", expected, why)
    if initial_state is None:
        h0 = np.zeros((b, u), np.float32)
    else:
        if isinstance(initial_state, (list, tuple)):
            if len(initial_state) != 1:
                raise ValueError(
                    f"{op}: initial_state must be h0 or [h0], got {len(initial_state)} arrays"
                )
            initial_state = initial_state[0]
        h0 = _state(initial_state, op, "initial_state (h0)", b, u)
    return_sequences = V.flag(return_sequences, op, "return_sequences")
    return_state = V.flag(return_state, op, "return_state")
    go_backwards = V.flag(go_backwards, op, "go_backwards")
    act = V.activation(activation, op, "activation", elementwise=True)
    ract = V.activation(recurrent_activation, op, "recurrent_activation", elementwise=True)
    if _backend.resolve(op, _rnn_cpp_reason(act, ract)) == "cpp":
        if packed is None:
            packed = _pack_gru(kernel, recurrent_kernel, bias, reset_after)
        ids = _backend.cpp_activation_ids()
        out, h = _backend._core.gru(
            x, *packed, h0, mask, return_sequences, go_backwards, reset_after, ids[act], ids[ract]
        )
        return (out, h) if return_state else out
    out, h = _np_recurrent.gru(
        x,
        kernel,
        recurrent_kernel,
        bias,
        h0,
        mask,
        return_sequences,
        go_backwards,
        reset_after,
        act,
        ract,
    )
    if not return_state:
        return out
    return out, (h.copy() if h is out else h)


# ------------------------------------------------------------------------- softmax


def _axes(axis, ndim, op):
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    if len(items) == 0:
        raise ValueError(f"{op}: axis must not be empty")
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for an input of rank {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis has repeated entries: {axis!r}")
    return tuple(out)


@_symbolic.symbolic_op
def softmax(x: ArrayLike, axis: int | Sequence[int] = -1, mask: ArrayLike | None = None):
    """Softmax along ``axis`` (Keras ``Softmax`` layer).

    Parameters
    ----------
    x : array of any rank >= 1
    axis : int or tuple of ints
        Several axes normalize over their joint extent.
    mask : array broadcastable to x, optional
        True (or > 0.5 for a non-bool mask) keeps an entry. Masked entries get
        -1e9 before and 0 after the softmax, so a fully masked slice is all zeros.

    Returns
    -------
    y : float32 array, the shape of x
    """
    op = "softmax"
    x = V.array(x, op, "x")
    V.min_rank(x, op, "x", 1)
    axes = _axes(axis, x.ndim, op)
    if mask is not None:
        mask = V.bool_mask(mask, op, "mask", threshold=True)
        if not V.broadcastable(mask.shape, x.shape):
            raise ValueError(f"{op}: mask of shape {mask.shape} does not broadcast to x {x.shape}")
        mask = np.broadcast_to(mask, x.shape)
    if _backend.resolve(op, None) == "cpp":
        return _softmax_cpp(x, axes, mask)
    return _np_attention.softmax(x, axes if len(axes) > 1 else axes[0], mask)


def _softmax_cpp(x, axes, mask):
    """Move the softmax axes last, flatten them into one, run the row kernel, move back."""
    core = _backend._core
    if axes == (x.ndim - 1,):
        # The usual case: x is C-contiguous already (validation), its rows are the last axis;
        # no transposes (they cost several times the kernel on small inputs).
        rows_shape = (math.prod(x.shape[:-1]), x.shape[-1])
        if mask is not None:
            mask = np.ascontiguousarray(mask).reshape(rows_shape)
        return core.softmax_lastdim(x.reshape(rows_shape), mask).reshape(x.shape)
    lead = [a for a in range(x.ndim) if a not in axes]
    order = lead + list(axes)
    n = math.prod(x.shape[a] for a in axes)
    rows_shape = tuple(x.shape[a] for a in lead) + (n,)
    xm = np.ascontiguousarray(x.transpose(order)).reshape(rows_shape)
    if mask is not None:
        mask = np.ascontiguousarray(mask.transpose(order)).reshape(rows_shape)
    y = core.softmax_lastdim(xm, mask)
    y = y.reshape(tuple(x.shape[a] for a in order))
    return np.ascontiguousarray(y.transpose(np.argsort(order)))


# ----------------------------------------------------------------------- attention

# Mask rules of _core.attention (csrc/include/fastlayers/ops.h, MaskRule).
_RULE_FUSED, _RULE_SUBTRACT, _RULE_SOFTMAX_LAYER = 0, 1, 2


def _attention_cpp(q, k, v, mask, causal, rule, want_weights, heads_last=False, **score):
    """Run ``_core.attention`` on (B, H, rows, cols) views.

    ``mask`` is a bool array broadcastable to (B, H, T, S) or None. Returns
    (out (B, H, T, Dv), weights (B, H, T, S) or None); with ``heads_last`` ``out`` is a
    view of (B, T, H, Dv) memory, the layout multi-head attention's output projection
    reads. ``score`` holds the score arguments of ``_core.attention`` (scale, or
    additive/pre/post/add_w).
    """
    b, h, t_len, _ = q.shape
    s_len, dv = v.shape[2], v.shape[3]
    if heads_last:
        out = np.empty((b, t_len, h, dv), np.float32).transpose(0, 2, 1, 3)
    else:
        out = np.empty((b, h, t_len, dv), np.float32)
    weights = np.empty((b, h, t_len, s_len), np.float32) if want_weights else None
    if mask is not None:
        mask = np.broadcast_to(mask, (b, h, t_len, s_len))
        if s_len > 1 and mask.strides[3] != 1:
            mask = np.ascontiguousarray(mask)
    _backend._core.attention(
        q,
        k,
        v,
        out,
        weights=weights,
        mask=mask,
        causal=causal,
        rule=rule,
        **score,
    )
    return out, weights


def _query_value_key(op, query, value, key):
    query = V.array(query, op, "query")
    value = V.array(value, op, "value")
    key = value if key is None else V.array(key, op, "key")
    V.rank(query, op, "query", 3, "(batch, Tq, dim)")
    V.rank(value, op, "value", 3, "(batch, Tv, dim_v)")
    V.rank(key, op, "key", 3, "(batch, Tv, dim)")
    b, tv = value.shape[:2]
    if query.shape[0] != b or key.shape[0] != b:
        raise ValueError(
            f"{op}: batch sizes differ: query {query.shape}, value {value.shape}, key {key.shape}"
        )
    if key.shape[1] != tv:
        raise ValueError(f"{op}: key has shape {key.shape}, expected ({b}, {tv}, dim) like value")
    if tv < 1:
        raise ValueError(f"{op}: value must have at least one time step, got {value.shape}")
    return query, value, key


def _luong_masks(op, query, value, query_mask, value_mask):
    if query_mask is not None:
        query_mask = V.bool_mask(query_mask, op, "query_mask")
        V.shape_is(query_mask, op, "query_mask", query.shape[:2], "(batch, Tq)")
    if value_mask is not None:
        value_mask = V.bool_mask(value_mask, op, "value_mask")
        V.shape_is(value_mask, op, "value_mask", value.shape[:2], "(batch, Tv)")
    return query_mask, value_mask


@_symbolic.symbolic_op
def attention(
    query: ArrayLike,
    value: ArrayLike,
    key: ArrayLike | None = None,
    *,
    scale: float | None = None,
    score_mode: str = "dot",
    concat_score_weight: float | None = None,
    query_mask: ArrayLike | None = None,
    value_mask: ArrayLike | None = None,
    use_causal_mask: bool = False,
    return_attention_scores: bool = False,
):
    """Dot-product (Luong) attention, Keras ``Attention``. Note the order: query, value, key.

    Parameters
    ----------
    query : array (B, Tq, D)
    value : array (B, Tv, Dv)
    key : array (B, Tv, D), optional; defaults to value
    scale : float, optional
        The value of Keras's scalar ``scale`` weight (use_scale=True); None means
        no scaling (use_scale=False).
    score_mode : ``"dot"`` or ``"concat"``
        concat: ``scores = w * sum_d tanh(scale * (q_d + k_d))``.
    concat_score_weight : float, optional
        w for score_mode="concat" (default 1.0, the Keras initial value).
    query_mask : bool (B, Tq), optional; masked query rows of the output are zero
    value_mask : bool (B, Tv), optional; masked keys get 1e9 subtracted from their scores
    use_causal_mask : bool
        Row i attends to keys j <= i (top-left aligned, also when Tq != Tv).
    return_attention_scores : bool
        Also return the attention weights (B, Tq, Tv).

    Returns
    -------
    output (B, Tq, Dv), or (output, weights); float32.
    """
    op = "attention"
    query, value, key = _query_value_key(op, query, value, key)
    if not isinstance(score_mode, str) or score_mode not in ("dot", "concat"):
        raise ValueError(f"{op}: score_mode must be 'dot' or 'concat', got {score_mode!r}")
    if query.shape[2] != key.shape[2]:
        raise ValueError(
            f"{op}: query has shape {query.shape} and key {key.shape}; their last dims must match"
        )
    scale_ = None if scale is None else V.real_scalar(scale, op, "scale")
    if score_mode == "dot":
        if concat_score_weight is not None:
            raise ValueError(f"{op}: concat_score_weight is only used with score_mode='concat'")
        weight = None
    else:
        weight = (
            1.0
            if concat_score_weight is None
            else V.real_scalar(concat_score_weight, op, "concat_score_weight")
        )
    query_mask, value_mask = _luong_masks(op, query, value, query_mask, value_mask)
    causal = V.flag(use_causal_mask, op, "use_causal_mask")
    want_scores = V.flag(return_attention_scores, op, "return_attention_scores")
    if _backend.resolve(op, None) == "cpp":
        if score_mode == "dot":
            score = {"scale": 1.0 if scale_ is None else scale_}
        else:
            score = {"additive": True, "pre": 1.0 if scale_ is None else scale_, "post": weight}
        out, weights = _luong_cpp(
            query, value, key, query_mask, value_mask, causal, want_scores, score
        )
    else:
        out, weights = _np_attention.attention(
            query, value, key, scale_, score_mode, weight, query_mask, value_mask, causal
        )
    return (out, weights) if want_scores else out


def _luong_cpp(query, value, key, query_mask, value_mask, causal, want_scores, score):
    """Attention / AdditiveAttention on the C++ path: one head, 1e9 subtracted when masked.
    Returns (output, weights or None)."""
    mask = None if value_mask is None else value_mask[:, None, None, :]
    out, weights = _attention_cpp(
        query[:, None],
        key[:, None],
        value[:, None],
        mask,
        causal,
        _RULE_SUBTRACT,
        want_scores,
        **score,
    )
    out = out[:, 0]
    if query_mask is not None:
        out *= query_mask[:, :, None]
    return out, None if weights is None else weights[:, 0]


@_symbolic.symbolic_op
def additive_attention(
    query: ArrayLike,
    value: ArrayLike,
    key: ArrayLike | None = None,
    *,
    scale: ArrayLike | None = None,
    query_mask: ArrayLike | None = None,
    value_mask: ArrayLike | None = None,
    use_causal_mask: bool = False,
    return_attention_scores: bool = False,
):
    """Additive (Bahdanau) attention, Keras ``AdditiveAttention``.

    ``scores[b, i, j] = sum_d scale[d] * tanh(query[b, i, d] + key[b, j, d])``; there
    are no projection matrices (apply :func:`dense` before, as Keras does).

    Parameters
    ----------
    query : array (B, Tq, D); value : array (B, Tv, Dv); key : array (B, Tv, D), optional
    scale : array (D,), optional
        Keras's ``scale`` weight (use_scale=True); None means use_scale=False.
    query_mask, value_mask, use_causal_mask, return_attention_scores : as in :func:`attention`

    Returns
    -------
    output (B, Tq, Dv), or (output, weights (B, Tq, Tv)); float32.
    """
    op = "additive_attention"
    query, value, key = _query_value_key(op, query, value, key)
    if query.shape[2] != key.shape[2]:
        raise ValueError(
            f"{op}: query has shape {query.shape} and key {key.shape}; their last dims must match"
        )
    scale = V.optional_array(scale, op, "scale")
    if scale is not None:
        V.shape_is(scale, op, "scale", (query.shape[2],), "(dim,)")
    query_mask, value_mask = _luong_masks(op, query, value, query_mask, value_mask)
    causal = V.flag(use_causal_mask, op, "use_causal_mask")
    want_scores = V.flag(return_attention_scores, op, "return_attention_scores")
    if _backend.resolve(op, None) == "cpp":
        score = {"additive": True, "add_w": scale}
        out, weights = _luong_cpp(
            query, value, key, query_mask, value_mask, causal, want_scores, score
        )
    else:
        out, weights = _np_attention.additive_attention(
            query, value, key, scale, query_mask, value_mask, causal
        )
    return (out, weights) if want_scores else out


@_symbolic.symbolic_op
def scaled_dot_product_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> np.ndarray:
    """``softmax(q @ k^T * scale + mask) @ v`` over any leading (batch, head, ...) dims.

    Parameters
    ----------
    q : array (..., T, D)
    k : array (..., S, D)
    v : array (..., S, Dv)
        The leading dims of q, k and v must be equal.
    mask : bool array broadcastable to (..., T, S), optional
        True = may attend (the opposite of PyTorch's boolean attn_mask).
    is_causal : bool
        Query i attends to keys j <= i (top-left aligned).
    scale : float, optional
        Default 1 / sqrt(D).

    A fully masked row attends uniformly to all keys (as keras.ops.dot_product_attention
    does); it is never NaN.

    Returns
    -------
    output : float32 array (..., T, Dv)
    """
    op = "scaled_dot_product_attention"
    q = V.array(q, op, "q")
    k = V.array(k, op, "k")
    v = V.array(v, op, "v")
    V.min_rank(q, op, "q", 2, "(..., T, D)")
    V.min_rank(k, op, "k", 2, "(..., S, D)")
    V.min_rank(v, op, "v", 2, "(..., S, Dv)")
    lead = q.shape[:-2]
    if k.shape[:-2] != lead or v.shape[:-2] != lead:
        raise ValueError(
            f"{op}: q {q.shape}, k {k.shape} and v {v.shape} must share their leading dims"
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
        mask = V.bool_mask(mask, op, "mask")
        target = lead + (q.shape[-2], k.shape[-2])
        if not V.broadcastable(mask.shape, target):
            raise ValueError(f"{op}: mask of shape {mask.shape} does not broadcast to {target}")
    causal = V.flag(is_causal, op, "is_causal")
    scale_ = 1.0 / math.sqrt(q.shape[-1]) if scale is None else V.real_scalar(scale, op, "scale")
    if _backend.resolve(op, None) == "numpy":
        return _np_attention.scaled_dot_product_attention(q, k, v, mask, causal, scale_)
    # Leading dims -> (B, H): the last one is H, the others merge into B (a view for the
    # C-contiguous arrays validation returns).
    bh = (math.prod(lead[:-1]), lead[-1]) if lead else (1, 1)
    t_len, s_len = q.shape[-2], k.shape[-2]
    if mask is not None:
        mask = np.broadcast_to(mask, lead + (t_len, s_len)).reshape(bh + (t_len, s_len))
    out, _ = _attention_cpp(
        q.reshape(bh + q.shape[-2:]),
        k.reshape(bh + k.shape[-2:]),
        v.reshape(bh + v.shape[-2:]),
        mask,
        causal,
        _RULE_FUSED,
        False,
        scale=scale_,
    )
    return out.reshape(lead + (t_len, v.shape[-1]))


@_symbolic.symbolic_op
def multi_head_attention(
    query: ArrayLike,
    value: ArrayLike,
    key: ArrayLike | None = None,
    *,
    query_kernel: ArrayLike,
    key_kernel: ArrayLike,
    value_kernel: ArrayLike,
    output_kernel: ArrayLike,
    query_bias: ArrayLike | None = None,
    key_bias: ArrayLike | None = None,
    value_bias: ArrayLike | None = None,
    output_bias: ArrayLike | None = None,
    attention_mask: ArrayLike | None = None,
    use_causal_mask: bool = False,
    return_attention_scores: bool = False,
):
    """Multi-head attention with Keras ``MultiHeadAttention`` weights (rank-3 inputs).

    Parameters
    ----------
    query : array (B, T, Dq); value : array (B, S, Dv); key : array (B, S, Dk), optional
    query_kernel : (Dq, N, key_dim); key_kernel : (Dk, N, key_dim)
    value_kernel : (Dv, N, value_dim); output_kernel : (N, value_dim, Dout)
    query_bias, key_bias : (N, key_dim); value_bias : (N, value_dim); output_bias : (Dout,)
    attention_mask : bool (B, T, S) or (T, S), optional; True = may attend
    use_causal_mask : bool
    return_attention_scores : bool
        Also return the weights (B, N, T, S), not averaged over heads.

    Fully masked rows follow Keras: uniform weights without return_attention_scores,
    all-zero weights (output = output_bias) with it.

    Returns
    -------
    output (B, T, Dout), or (output, weights); float32.
    """
    return _multi_head_attention(
        query,
        value,
        key,
        query_kernel,
        key_kernel,
        value_kernel,
        output_kernel,
        (query_bias, key_bias, value_bias, output_bias),
        attention_mask,
        use_causal_mask,
        return_attention_scores,
        None,
    )


def _pack_mha(wq, wk, wv, wo, bq, bk, bv, bo, pack=True):
    """The four projections of multi-head attention for the C++ path, as functions
    x (rows, D) -> (rows, N*H): on ``_core.PackedDense`` (bias folded) when ``pack`` (a
    layer, packed once), else reading the kernels in place (a functional call, where packing
    would cost more than the few rows of a short sequence). The same bits either way."""
    core = _backend._core

    def projection(w2, b):
        w2 = np.ascontiguousarray(w2)
        b = None if b is None else np.ascontiguousarray(b.reshape(-1))
        if pack:
            packed = core.PackedDense(w2, b)
            return lambda x2: core.dense(x2, packed, 0)
        return lambda x2: core.dense_unpacked(x2, w2, b, 0)

    def project_in(w, b):  # (D, N, H) -> (D, N*H)
        return projection(w.reshape(w.shape[0], -1), b)

    # (N, Hv, E) -> (N*Hv, E)
    return (
        project_in(wq, bq),
        project_in(wk, bk),
        project_in(wv, bv),
        projection(wo.reshape(-1, wo.shape[-1]), bo),
    )


def _mha_cpp(query, value, key, packed, n, hk, hv, dout, mask, causal, want_scores):
    """multi-head attention on the C++ path: three projection GEMMs, the heads in one
    attention call on strided views, the output projection GEMM."""
    b, t_len = query.shape[:2]

    def project(x, p, h):  # (B, L, D) -> (B, N, L, h), a view of (B, L, N, h) memory
        y = p(x.reshape(-1, x.shape[-1]))
        return y.reshape(x.shape[0], x.shape[1], n, h).transpose(0, 2, 1, 3)

    pq, pk, pv, po = packed
    if mask is not None:
        mask = mask[:, None] if mask.ndim == 3 else mask
    out, weights = _attention_cpp(
        project(query, pq, hk),
        project(key, pk, hk),
        project(value, pv, hv),
        mask,
        causal,
        _RULE_SOFTMAX_LAYER if want_scores else _RULE_FUSED,
        want_scores,
        heads_last=True,
        scale=1.0 / math.sqrt(hk),
    )
    o = out.transpose(0, 2, 1, 3).reshape(b * t_len, n * hv)  # a view: heads_last memory
    y = po(o).reshape(b, t_len, dout)
    return y, weights


def _multi_head_attention(
    query,
    value,
    key,
    query_kernel,
    key_kernel,
    value_kernel,
    output_kernel,
    biases,
    attention_mask,
    use_causal_mask,
    return_attention_scores,
    packed,
):
    """multi_head_attention with ``packed`` (from :func:`_pack_mha`, or None)."""
    op = "multi_head_attention"
    query = V.array(query, op, "query")
    value = V.array(value, op, "value")
    key = value if key is None else V.array(key, op, "key")
    V.rank(query, op, "query", 3, "(batch, T, Dq)")
    V.rank(value, op, "value", 3, "(batch, S, Dv)")
    V.rank(key, op, "key", 3, "(batch, S, Dk)")
    b, t_len, dq = query.shape
    s_len = value.shape[1]
    if value.shape[0] != b or key.shape[0] != b:
        raise ValueError(
            f"{op}: batch sizes differ: query {query.shape}, value {value.shape}, key {key.shape}"
        )
    if key.shape[1] != s_len:
        raise ValueError(f"{op}: key has shape {key.shape}, expected ({b}, {s_len}, Dk) like value")
    if s_len < 1:
        raise ValueError(f"{op}: value must have at least one time step, got {value.shape}")
    wq = V.array(query_kernel, op, "query_kernel")
    wk = V.array(key_kernel, op, "key_kernel")
    wv = V.array(value_kernel, op, "value_kernel")
    wo = V.array(output_kernel, op, "output_kernel")
    V.rank(wq, op, "query_kernel", 3, "(Dq, num_heads, key_dim)")
    V.rank(wk, op, "key_kernel", 3, "(Dk, num_heads, key_dim)")
    V.rank(wv, op, "value_kernel", 3, "(Dv, num_heads, value_dim)")
    V.rank(wo, op, "output_kernel", 3, "(num_heads, value_dim, Dout)")
    _, n, hk = wq.shape
    hv = wv.shape[2]
    V.shape_is(wq, op, "query_kernel", (dq, n, hk), "(Dq, num_heads, key_dim)")
    V.shape_is(wk, op, "key_kernel", (key.shape[2], n, hk), "(Dk, num_heads, key_dim)")
    V.shape_is(wv, op, "value_kernel", (value.shape[2], n, hv), "(Dv, num_heads, value_dim)")
    V.shape_is(wo, op, "output_kernel", (n, hv, wo.shape[2]), "(num_heads, value_dim, Dout)")
    if n < 1 or hk < 1 or hv < 1 or wo.shape[2] < 1:
        raise ValueError(f"{op}: num_heads, key_dim, value_dim and Dout must be >= 1")
    checked = []
    for name, bias, shape in zip(
        ("query_bias", "key_bias", "value_bias", "output_bias"),
        biases,
        ((n, hk), (n, hk), (n, hv), (wo.shape[2],)),
    ):
        bias = V.optional_array(bias, op, name)
        if bias is not None:
            V.shape_is(bias, op, name, shape)
        checked.append(bias)
    if attention_mask is not None:
        attention_mask = V.bool_mask(attention_mask, op, "attention_mask")
        if attention_mask.shape not in ((b, t_len, s_len), (t_len, s_len)):
            raise ValueError(
                f"{op}: attention_mask has shape {attention_mask.shape}, expected "
                f"{(b, t_len, s_len)} or {(t_len, s_len)}"
            )
    causal = V.flag(use_causal_mask, op, "use_causal_mask")
    want_scores = V.flag(return_attention_scores, op, "return_attention_scores")
    if _backend.resolve(op, None) == "cpp":
        if packed is None:
            packed = _pack_mha(wq, wk, wv, wo, *checked, pack=False)
        out, weights = _mha_cpp(
            query, value, key, packed, n, hk, hv, wo.shape[2], attention_mask, causal, want_scores
        )
    else:
        out, weights = _np_attention.multi_head_attention(
            query, value, key, wq, wk, wv, wo, *checked, attention_mask, causal, want_scores
        )
    return (out, weights) if want_scores else out
