"""The public ops of fastlayers: Keras 3 semantics, float32, batch first, NHWC images.

Every op does three things: check its arguments once (``check_<op>`` in
fastlayers/_validation.py), choose the path (:func:`fastlayers._backend.resolve`:
C++ when the compiled core serves the call, else NumPy; see
:func:`fastlayers.set_backend`), and run it (fastlayers/_cpp/ or fastlayers/_numpy/,
one module per op family in each). The ``run_<op>`` functions are the choose-and-run
half, which layers call with their checked arguments and their weights packed once.

``check_<op>`` takes the op's own arguments by name, so an op passes ``**locals()``:
every argument it was called with, and nothing else (it is the op's first statement).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend, _checks, _symbolic
from . import _validation as V
from ._cpp import attention as _cpp_attention
from ._cpp import conv2d as _cpp_conv2d
from ._cpp import dense as _cpp_dense
from ._cpp import experts as _cpp_experts
from ._cpp import normalization as _cpp_normalization
from ._cpp import pooling as _cpp_pooling
from ._cpp import recurrent as _cpp_recurrent
from ._cpp import softmax as _cpp_softmax
from ._cpp import transpose as _cpp_transpose
from ._numpy import attention as _np_attention
from ._numpy import conv2d as _np_conv2d
from ._numpy import dense as _np_dense
from ._numpy import experts as _np_experts
from ._numpy import normalization as _np_normalization
from ._numpy import pooling as _np_pooling
from ._numpy import recurrent as _np_recurrent

ArrayLike = Any

__all__ = [
    "matmul",
    "dense",
    "flatten",
    "conv2d",
    "conv1d",  # convpool
    "depthwise_conv2d",  # convpool
    "conv2d_transpose",
    "lstm",
    "lstm_cell",
    "gru",
    "simple_rnn",
    "softmax",
    "attention",
    "additive_attention",
    "scaled_dot_product_attention",
    "multi_head_attention",
    "layer_norm",
]


def _cpp(op: str, unsupported: str | None = None) -> bool:
    """True when this call of ``op`` runs on the C++ path (see _backend.resolve)."""
    return _backend.resolve(op, unsupported) == "cpp"


# -------------------------------------------------------------------------- matmul


def _item_key(key: Any) -> tuple:
    """A basic index (ints, slices with int bounds, None, ...) as a tuple, checked."""
    keys = key if isinstance(key, tuple) else (key,)
    for k in keys:
        ok = (k is None or k is Ellipsis
              or isinstance(k, (int, np.integer)) and not isinstance(k, bool)
              or isinstance(k, slice) and all(
                  v is None or isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                  for v in (k.start, k.stop, k.step)))
        if not ok:
            raise TypeError(
                f"get_item: indices must be ints, slices with int bounds, None or ..., got "
                f"{k!r} (index arrays and masks are not supported)")
    if sum(k is Ellipsis for k in keys) > 1:
        raise ValueError(f"get_item: an index can only have one ellipsis, got {key!r}")
    return keys


@_symbolic.symbolic_op
def get_item(x: ArrayLike, key: Any) -> np.ndarray:
    """``x[key]`` with basic indexing (NumPy's and Keras's: ints, slices, None, ...), a new
    array of x's dtype. Symbolic tensors index with it (``inp[:, 0]`` in a model, as on
    Keras's tensors). An index out of range is a ``ValueError``."""
    keys = _item_key(key)
    a = np.asarray(x)
    try:
        return np.array(a[keys], copy=True)
    except IndexError as e:
        raise ValueError(f"get_item: {key!r} of an array of shape {a.shape}: {e}") from None


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
        transpose_b=True)``: queries times keys).

    Returns
    -------
    y : float32 array (broadcast batch..., M, N)
    """
    # Called again with arrays of the same shapes: the kept runner (see _sdpa_direct). Only
    # for a batch of matrices: a 2-D b has no runner (its checked call is one product already).
    plain = (transpose_b is False or transpose_b is True) and type(b) is np.ndarray and b.ndim > 2
    if plain:
        key = _plain_f32_key(a, b, transpose_b)
        run = _kept_runner(_matmul_direct, key)
        if run is not None:
            return run(a, b)
    args = V.check_matmul(a, b, transpose_b)
    cpp = _cpp("matmul")
    try:
        out = _cpp_dense.matmul(args) if cpp else _np_dense.matmul(args.a, args.b)
    except MemoryError as e:  # an output under the size limit that this host cannot hold
        shape = (*args.batch, args.a.shape[-2], args.b.shape[-1])
        raise ValueError(f"matmul: the output {shape} is too large to create ({e})") from None
    if cpp and plain and key is not None:
        _keep_direct(_matmul_direct, key, lambda: _matmul_runner(a, b, transpose_b=transpose_b))
    return out


# Direct matmul calls with a batch of matrices (a 2-D b has no runner): as _sdpa_direct.
_matmul_direct: list = [None, None]


def _matmul_runner(a: Any, b: Any, *, transpose_b: bool = False) -> Any:
    """The shape-plan runner of a matmul call (models/shape_plan.py), or None."""
    if not _cpp("matmul"):
        return None
    run = _cpp_dense.matmul_runner(V.check_matmul(a, b, transpose_b))
    if run is None or not transpose_b:
        return run
    return lambda a, b: run(a, np.ascontiguousarray(np.swapaxes(b, -1, -2)))


matmul.__plan_runner__ = _matmul_runner  # type: ignore[attr-defined]


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

    The C++ path reads ``kernel`` in place for up to 8 rows of x and packs it per call for
    more (an L2-sized block at a time up to a few hundred rows, docs/performance.md §3);
    :class:`fastlayers.layers.Dense` packs it once, when its weights are set (faster when
    the same weights serve many calls).
    """
    fused = 0 if activation is None else _backend.cpp_activation_ids().get(activation) \
        if activation.__class__ is str else None
    if (
        fused is not None and _backend._core is not None and _checks.unchanged(x)
        and _checks.unchanged(kernel) and x.ndim == 2 and kernel.ndim == 2
        and x.shape[1] == kernel.shape[0]
        and (bias is None or (_checks.unchanged(bias) and bias.shape == kernel.shape[1:]))
        and x.size <= _checks.MAX_ELEMENTS and kernel.size <= _checks.MAX_ELEMENTS
        and _backend._current() != "numpy"
    ):
        # The usual call (float32 arrays the checks would pass unchanged, a 2-D x, an
        # activation the core fuses): what the checks and run_dense would do, without their
        # Python (4.6 us of a (1, 16) x (16, 16) call against NumPy's 1.8; an audit).
        return _backend._core.dense_unpacked(x, kernel, bias, fused)
    return run_dense(V.check_dense(x, kernel, bias, activation))


def dense_runner(a: V.DenseArgs, packed: Any) -> Any:
    """The shape-plan runner (models/shape_plan.py) of ``run_dense(a, packed)`` for a
    layer's packed kernel: on the C++ path, else None."""
    if packed is None or not _cpp("dense"):
        return None
    return _cpp_dense.dense_runner(a.x.shape, packed, a.activation)


def run_dense(a: V.DenseArgs, packed: Any = None) -> np.ndarray:
    """dense on checked arguments; ``packed``: the layer's kernel from ``_cpp.dense.pack_dense``."""
    if _cpp("dense"):
        return _cpp_dense.dense(a, packed)
    return _np_dense.dense(*a)


@_symbolic.symbolic_op
def flatten(x: ArrayLike) -> np.ndarray:
    """Flatten all but the batch axis in row-major (channels-last) order (Keras ``Flatten``).

    x (B, d1, ..., dn) -> (B, d1*...*dn); a 1-D x (B,) becomes (B, 1). The result
    is a new array; flatten does no arithmetic, so it runs the same on every backend.
    """
    return run_flatten(V.check_flatten(x), x)


def run_flatten(x: np.ndarray, original: Any) -> np.ndarray:
    """flatten on a checked x. A pure reshape: no arithmetic, so it is the same under every
    backend. The result never shares memory with the caller's array ``original``."""
    y = _np_dense.flatten(x)
    # may_share_memory: a bounds test (np.shares_memory solves an exact, sometimes slow,
    # problem); a false positive only costs a copy.
    return y.copy() if np.may_share_memory(y, original) else y


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
    return run_conv2d(V.check_conv2d(**locals()))


def conv2d_runner(a: V.Conv2DArgs, packed: Any) -> Any:
    """The shape-plan runner (models/shape_plan.py) of ``run_conv2d(a, packed)`` for a
    layer's packed kernel: on the C++ path, else None."""
    return _cpp_conv2d.conv2d_runner(a, packed) if packed is not None and _cpp("conv2d") else None


def run_conv2d(a: V.Conv2DArgs, packed: Any = None) -> np.ndarray:
    """conv2d on checked arguments; ``packed``: the layer's ``_cpp.conv2d.pack_conv2d``."""
    if _cpp("conv2d"):
        return _cpp_conv2d.conv2d(a, packed)
    return _np_conv2d.conv2d(*a)


def conv3d_runner(a: V.Conv2DArgs, depth_pads: tuple, kd: int, sd: int, dd: int,
                  packed: Any) -> Any:
    """The shape-plan runner (models/shape_plan.py) of :func:`run_conv3d` where the C++ path
    reads x in place, as a function of x alone; else None."""
    if not (_cpp("conv2d") and _cpp_conv2d.conv3d_reads_in_place(packed, kd)):
        return None
    return _cpp_conv2d.conv3d_runner(a, depth_pads, kd, sd, dd, packed)


def run_conv3d(a: V.Conv2DArgs, od: int, depth_pads: tuple, kd: int, sd: int, dd: int,
               packed: Any = None, op: str = "conv3d") -> np.ndarray:
    """Conv3D on arguments checked by ``V.check_conv3d(..., stack=False)`` (x (N, D, H, W,
    C), channels last) -> (N, OD, OH, OW, F): on the C++ path the indirect GEMM reads x in
    place where it serves the layer's packed kernel, else the conv2d of the depth-stacked
    input (docs/semantics.md §30). The same bits either way."""
    if _cpp("conv2d") and _cpp_conv2d.conv3d_reads_in_place(packed, kd):
        return _cpp_conv2d.conv3d(a, depth_pads, kd, sd, dd, packed)
    n = a.x.shape[0]
    stacked = V.depth_stack(op, a.x, kd, od, sd, dd, depth_pads, a.groups)
    y = run_conv2d(a._replace(x=stacked), packed)
    return y.reshape(n, od, *y.shape[1:])


# ----------------------------------------------------------------- conv2d_transpose


@_symbolic.symbolic_op
def conv2d_transpose(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: int | tuple[int, int] = 1,
    padding: str = "valid",
    output_padding: int | tuple[int, int] | None = None,
    dilation_rate: int | tuple[int, int] = 1,
    activation: Any = None,
    groups: int = 1,
) -> np.ndarray:
    """Transposed 2D convolution on NHWC images (Keras ``Conv2DTranspose``, channels_last).

    Each input pixel (i, j) adds ``x[n, i, j] @ kernel[a, b].T`` to output pixel
    (i*sh + a*dh - top, j*sw + b*dw - left) for every tap (a, b): the gradient of a conv2d
    with respect to its input, used to upsample in decoders and U-Nets.

    Parameters
    ----------
    x : array (N, H, W, C)
    kernel : array (kh, kw, F, C), or (kh, kw, F // groups, C) with groups
        Keras's layout for this layer: filters before input channels.
    bias : array (F,), optional
    strides, dilation_rate : int or (int, int)
        Strides > 1 together with dilation > 1 is rejected, as in Keras.
    padding : ``"valid"`` or ``"same"``
        Without output_padding, "valid" gives (H - 1)*sh + max(kh_eff, sh) rows and "same"
        gives H*sh (kh_eff = (kh - 1)*dh + 1); docs/semantics.md §25 has the full rule.
    output_padding : int, (int, int) or None
        Extra rows/columns at the bottom/right; each must be smaller than its stride.
    activation : str, callable or None
    groups : int
        PyTorch's ``ConvTranspose2d`` groups (Keras's layer has none): group g of the
        C // groups input channels makes group g of the F // groups filters, with
        ``kernel[..., g*C//groups:(g+1)*C//groups]``.

    Returns
    -------
    y : float32 array (N, OH, OW, F)

    The NumPy path is one GEMM of every pixel by every tap's matrix, added into place
    (col2im); the C++ path splits the output into stride phases, each a stride-1 conv2d of x
    (docs/performance.md §5).
    """
    return run_conv2d_transpose(V.check_conv2d_transpose(**locals()))


def _cpp_serves_transpose(a: V.Conv2DTransposeArgs) -> bool:
    """Whether conv2d_transpose runs on the C++ path: the backend allows it and the kernel is
    finite (see :func:`run_conv2d_transpose`)."""
    return _cpp("conv2d_transpose") and bool(np.isfinite(a.kernel).all())


def conv2d_transpose_runner(a: V.Conv2DTransposeArgs, packed: Any) -> Any:
    """The shape-plan runner (models/shape_plan.py) of ``run_conv2d_transpose(a, packed)``
    for a layer's packed kernel: on the C++ path, else None."""
    if packed is None or not _cpp_serves_transpose(a):
        return None
    return _cpp_conv2d.conv2d_transpose_runner(a, packed)


def run_conv2d_transpose(a: V.Conv2DTransposeArgs, packed: Any = None) -> np.ndarray:
    """conv2d_transpose on checked arguments; ``packed``: the layer's
    ``_cpp.conv2d.pack_conv2d_transpose``.

    A kernel with inf or NaN taps runs on the NumPy path: the C++ phases are convolutions
    that read zeros past the input's edges, and 0 * inf is NaN where Keras (a scatter of
    each input pixel's products) has none (docs/semantics.md §15)."""
    if _cpp_serves_transpose(a):
        return _cpp_conv2d.conv2d_transpose(a, packed)
    n, h, w, _ = a.x.shape
    kh, kw, f, _ = a.kernel.shape  # the NumPy path's products of every pixel and tap:
    _checks.elements(n * h * w * kh * kw * f, "conv2d_transpose", "the array of per-tap products")
    return _np_conv2d.conv2d_transpose(*a)


# ------------------------------------------------------------------------ permute

# A batched transpose at least this large runs in C++ (smaller ones, and ones with fewer
# than 8 rows or columns, NumPy copies as fast).
_TRANSPOSE_MIN_ELEMENTS = 1 << 14


def _batched_transpose_form(shape: tuple, perm: tuple) -> tuple | None:
    """(batch, rows, cols) when ``x.transpose(perm)`` is each batch item's (rows, cols)
    matrix transposed: the axes before k kept, the rest rotated (j..r-1 before k..j-1; NHWC
    -> NCHW is (0, 3, 1, 2)), else None."""
    r = len(perm)
    k = 0
    while k < r and perm[k] == k:
        k += 1
    if r - k < 2 or tuple(perm[k:]) != (*range(perm[k], r), *range(k, perm[k])):
        return None
    j = perm[k]
    return math.prod(shape[:k]), math.prod(shape[k:j]), math.prod(shape[j:])


def run_permute(x: np.ndarray, perm: tuple) -> np.ndarray:
    """``x.transpose(perm)`` as a new C-contiguous array (never a view of x). A large float32
    one that is a batched 2-D transpose (the NCHW <-> NHWC layout changes) runs on the C++
    path's transpose_batched, blocked for the cache (docs/performance.md §14): the same
    values."""
    form = _batched_transpose_form(x.shape, perm)
    if (form is not None and x.dtype == np.float32 and x.flags.c_contiguous
            and x.size >= _TRANSPOSE_MIN_ELEMENTS and min(form[1:]) >= 8
            and _backend.resolve("permute", None) == "cpp"):
        b, rows, cols = form
        y = _cpp_transpose.transpose_batched(x.reshape(b, rows, cols))
        return y.reshape(tuple(x.shape[p] for p in perm))
    y = np.ascontiguousarray(x.transpose(perm))
    return y.copy() if np.shares_memory(y, x) else y


# ------------------------------------------------------------------------- pooling


def run_pool2d(x: np.ndarray, pool: tuple, strides: tuple, pads: tuple, out_hw: tuple,
               average: bool) -> np.ndarray:
    """Max or average pooling of a checked C-contiguous float32 x (N, H, W, C); pads (top,
    bottom, left, right); out_hw the output size (layers/pooling.py computes the geometry).
    Both paths fold the taps in the same order: the same bits (docs/semantics.md §21)."""
    if _cpp("pool2d"):
        return _cpp_pooling.pool2d(x, pool, strides, pads, average)
    run = _np_pooling.avg_pool2d if average else _np_pooling.max_pool2d
    return run(x, pool, strides, pads, out_hw)


def pool2d_runner(pool: tuple, strides: tuple, pads: tuple, average: bool) -> Any:
    """The shape-plan runner (models/shape_plan.py) of ``run_pool2d``: C++ only, else None."""
    return _cpp_pooling.pool2d_runner(pool, strides, pads, average) if _cpp("pool2d") else None


# ---------------------------------------------------- conv1d, depthwise_conv2d (convpool)


@_symbolic.symbolic_op
def conv1d(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: int | tuple[int] = 1,
    padding: str = "valid",
    dilation_rate: int | tuple[int] = 1,
    groups: int = 1,
    activation: Any = None,
) -> np.ndarray:
    """1D convolution over steps (Keras ``Conv1D``, channels_last): conv2d of height 1.

    Parameters
    ----------
    x : array (N, T, C)
    kernel : array (k, C // groups, F)
    bias : array (F,), optional
    strides, dilation_rate : int or (int,)
        Strides > 1 together with dilation > 1 is rejected, as in Keras.
    padding : ``"valid"``, ``"same"`` or ``"causal"``
        "causal" pads ``dilation_rate * (k - 1)`` zeros before the first step, then runs
        "valid": y[t] reads x up to step t * stride only.
    groups : int
    activation : str, callable or None

    Returns
    -------
    y : float32 array (N, T', F). Runs on conv2d's path (C++ when the core serves conv2d).
    """
    a = V.check_conv1d(**locals())
    return run_conv2d(a)[:, 0]


@_symbolic.symbolic_op
def depthwise_conv2d(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: int | tuple[int, int] = 1,
    padding: str = "valid",
    dilation_rate: int | tuple[int, int] = 1,
    activation: Any = None,
) -> np.ndarray:
    """Depthwise 2D convolution on NHWC images (Keras ``DepthwiseConv2D``).

    Parameters
    ----------
    x : array (N, H, W, C)
    kernel : array (kh, kw, C, m), Keras's layout (m = depth multiplier)
    bias : array (C * m,), optional
    strides, dilation_rate, padding, activation : as for :func:`conv2d`

    Returns
    -------
    y : float32 array (N, OH, OW, C * m); channel c * m + j is input channel c convolved
    with ``kernel[:, :, c, j]``. Runs as conv2d with groups = C (C++ path: its direct
    depthwise kernel).
    """
    return run_conv2d(V.check_depthwise_conv2d(**locals()))


# ------------------------------------------------------------------------ recurrent


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
    return run_recurrent(V.check_lstm(**locals()))


def run_recurrent(a: V.RecurrentArgs, packed: Any = None):
    """lstm, gru or simple_rnn (``a.cell``) on checked arguments; ``packed``: the layer's
    ``_cpp.recurrent.pack_lstm``, ``pack_gru`` or ``pack_simple_rnn``."""
    if _cpp(a.cell, _cpp_recurrent.unsupported(a)):
        out, *states = _cpp_recurrent.run(a, packed)
    else:
        numpy_cell = getattr(_np_recurrent, a.cell)
        # simple_rnn has no recurrent_activation; gru alone takes reset_after
        extra = () if a.cell == "simple_rnn" else (a.recurrent_activation,)
        extra += () if a.reset_after is None else (a.reset_after,)
        out, *states = numpy_cell(
            a.x,
            a.kernel,
            a.recurrent_kernel,
            a.bias,
            *a.initial_state,
            a.mask,
            a.return_sequences,
            a.go_backwards,
            a.activation,
            *extra,
        )
    if not a.return_state:
        return out
    if states[0] is out:  # h is the output without return_sequences: never one array twice
        states[0] = states[0].copy()
    return (out, *states)


def recurrent_runner(a: V.RecurrentArgs, packed: Any, return_state: bool) -> Any:
    """For a layer's repeated calls (models/shape_plan.py, ``Layer.__call__``): what
    :func:`run_recurrent` computes on ``a`` (no mask, zero initial states), as a function
    of sequences of ``a.x``'s shape alone, returning (out, *states) when ``return_state``,
    else out. None off the C++ path."""
    if packed is None:
        return None
    if not _cpp(a.cell, _cpp_recurrent.unsupported(a)):
        return None
    return _cpp_recurrent.runner(a, packed, return_state)


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
    a = V.check_lstm_cell(**locals())
    if _cpp("lstm_cell"):
        return _cpp_recurrent.lstm_cell(a)
    return _np_recurrent.lstm_cell(*a)


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
    return run_recurrent(V.check_gru(**locals()))


@_symbolic.symbolic_op
def simple_rnn(
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
    activation: Any = "tanh",
):
    """A fully connected recurrence (Keras ``SimpleRNN``; PyTorch ``nn.RNN``):
    ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    Parameters
    ----------
    x : array (B, T, F)
    kernel : array (F, u)
    recurrent_kernel : array (u, u)
    bias : array (u,), optional
    initial_state : h0 (B, u) or [h0]; zeros by default
    mask, return_sequences, go_backwards : as for :func:`lstm`
    return_state : bool
        Also return the final h.
    activation : str or callable (elementwise), default "tanh"; None is linear

    Returns
    -------
    output, or (output, h) if return_state; float32.

    C++ path: as for :func:`lstm` (the kernels packed on every call;
    :class:`fastlayers.layers.SimpleRNN` packs them once).
    """
    return run_recurrent(V.check_simple_rnn(**locals()))


# ------------------------------------------------------------------------- softmax


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
    if (
        axis.__class__ is int and axis == -1 and mask is None and _backend._core is not None
        and _checks.unchanged(x) and x.ndim and _backend._current() != "numpy"
    ):
        # The usual call on an array the checks would pass unchanged: what they and
        # run_softmax would do, without their cost (they are most of a small call's time).
        return _cpp_softmax.lastdim(x)
    return run_softmax(V.check_softmax(x, axis, mask))


def _softmax_runner(x: Any, axis: Any = -1, mask: Any = None) -> Any:
    """The shape-plan runner of a softmax call (models/shape_plan.py): the last axis, no
    mask, on the C++ path; else None."""
    if mask is not None or not _cpp("softmax"):
        return None
    a = V.check_softmax(x, axis, None)
    if a.axes != (a.x.ndim - 1,):
        return None
    return _cpp_softmax.lastdim_runner()


softmax.__plan_runner__ = _softmax_runner  # type: ignore[attr-defined]


def run_softmax(a: V.SoftmaxArgs) -> np.ndarray:
    """softmax on checked arguments."""
    if _cpp("softmax"):
        return _cpp_softmax.softmax(a)
    return _np_attention.softmax(a.x, a.axes if len(a.axes) > 1 else a.axes[0], a.mask)


# ----------------------------------------------------------------------- attention


def _with_scores(out, weights, return_scores):
    return (out, weights) if return_scores else out


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
        w for score_mode="concat"; None (the default) means 1.0, the Keras initial value.
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
    return run_attention(V.check_attention(**locals()))


def run_attention(a: V.LuongArgs):
    """attention or additive_attention (``a.score_mode`` "additive") on checked arguments."""
    if _cpp("additive_attention" if a.score_mode == "additive" else "attention"):
        out, weights = _cpp_attention.attention(a)
    elif a.score_mode == "additive":
        out, weights = _np_attention.additive_attention(
            a.query, a.value, a.key, a.scale, a.query_mask, a.value_mask, a.causal
        )
    else:
        out, weights = _np_attention.attention(
            a.query,
            a.value,
            a.key,
            a.scale,
            a.score_mode,
            a.concat_score_weight,
            a.query_mask,
            a.value_mask,
            a.causal,
        )
    return _with_scores(out, weights, a.return_scores)


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
    return run_attention(V.check_additive_attention(**locals()))


@_symbolic.symbolic_op
def scaled_dot_product_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> np.ndarray:
    """``softmax(q @ k^T * scale + mask) @ v`` over any leading (batch, head, ...) dims.

    Parameters
    ----------
    q : array (..., T, D)
    k : array (..., S, D)
    v : array (..., S, Dv)
        The leading dims of q, k and v must be equal (but see ``enable_gqa``).
    mask : bool array broadcastable to (..., T, S), optional
        True = may attend, as PyTorch's boolean ``attn_mask`` of
        ``F.scaled_dot_product_attention`` (``nn.MultiheadAttention``'s is the opposite). A
        numeric mask means ``mask != 0``; it is not added to the scores, and a float mask with
        negative values (PyTorch's additive form) raises ``ValueError``.
    is_causal : bool
        Query i attends to keys j <= i (top-left aligned).
    scale : float, optional
        Default 1 / sqrt(D).
    enable_gqa : bool
        Grouped-query attention, as PyTorch's ``enable_gqa``: k and v may have G heads
        (dim -3) where q has H, G dividing H; query head h reads key/value head
        h // (H / G). The C++ path reads them in place (no repeated copy).

    A fully masked row attends uniformly to all keys (as keras.ops.dot_product_attention
    does); it is never NaN.

    Returns
    -------
    output : float32 array (..., T, Dv)
    """
    plain = (mask is None and scale is None and (is_causal is False or is_causal is True)
             and (enable_gqa is False or enable_gqa is True))
    if plain:
        key = _plain_f32_key(q, k, v, (is_causal, enable_gqa))
        run = _kept_runner(_sdpa_direct, key)
        if run is not None:
            return run(q, k, v)
    a = V.check_scaled_dot_product_attention(q, k, v, mask, is_causal, scale, enable_gqa)
    if _cpp("scaled_dot_product_attention"):
        out = _cpp_attention.scaled_dot_product_attention(a)
        if plain and key is not None:
            _keep_direct(_sdpa_direct, key, lambda: _cpp_attention.sdpa_runner(a))
        return out
    return _np_attention.scaled_dot_product_attention(*a)


# Direct calls of an op again and again with arrays of the same shapes (a decode loop): the
# runner its shape plan would use, kept for one signature per op from the second sighting on
# (as Layer.__call__ does for a layer; docs/architecture.md §14, "Direct op calls").
_sdpa_direct: list = [None, None]  # [(key, runner) in use, key seen last]


def _plain_f32_key(*arrays_and_flag: Any) -> tuple | None:
    """The signature of arrays that are all C-contiguous aligned float32 ndarrays (and the
    flag after them) under the backend in force, or None (then no runner is used or kept)."""
    *arrays, flag = arrays_and_flag
    core = _backend._core
    if core is None or not _backend.fast_calls.get():
        return None
    # each array checked as _checks.unchanged does, in one call (bindings/bind_runtime.cpp)
    shapes = core.plain_f32_shapes(*arrays)
    return None if shapes is None else (*shapes, flag, _backend._current())


def _kept_runner(slot: list, key: tuple | None) -> Any:
    """The runner kept in ``slot`` for signature ``key``, or None."""
    kept = slot[0]
    return kept[1] if key is not None and kept is not None and kept[0] == key else None


def _keep_direct(slot: list, key: tuple, make: Any) -> None:
    """After a checked call with signature ``key`` succeeded on the C++ path: the second time
    in a row, keep ``make()`` (the runner) for that signature."""
    if slot[1] != key:
        slot[1] = key
        return
    try:
        run = make()
    except Exception:  # noqa: BLE001 - a cache: the call itself succeeded
        return
    if run is not None:
        slot[0] = (key, run)


def _sdpa_runner(q: Any, k: Any, v: Any, *, mask: Any = None, is_causal: Any = False,
                 scale: Any = None, enable_gqa: Any = False) -> Any:
    """The shape-plan runner of an sdpa call (models/shape_plan.py): no mask, on the C++
    path; else None."""
    if mask is not None or not _cpp("scaled_dot_product_attention"):
        return None
    return _cpp_attention.sdpa_runner(V.check_scaled_dot_product_attention(
        q, k, v, None, is_causal, scale, enable_gqa))


scaled_dot_product_attention.__plan_runner__ = _sdpa_runner  # type: ignore[attr-defined]


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
    query_kernel : (Dq, N, key_dim); key_kernel : (Dk, G, key_dim)
    value_kernel : (Dv, G, value_dim); output_kernel : (N, value_dim, Dout)
        G = N, or G key/value heads dividing N, each shared by N / G query heads
        (grouped-query attention: query head u reads key/value head u // (N / G)).
    query_bias : (N, key_dim); key_bias : (G, key_dim); value_bias : (G, value_dim);
    output_bias : (Dout,)
    attention_mask : bool (B, T, S), optional; True = may attend. As in Keras, any shape
        that broadcasts to (B, T, S) is taken too: (T, S) for every batch row, (B, 1, S)
        (a padding mask) for every query.
    use_causal_mask : bool
    return_attention_scores : bool
        Also return the weights (B, N, T, S), not averaged over heads.

    Fully masked rows follow Keras: uniform weights without return_attention_scores,
    all-zero weights (output = output_bias) with it.

    Returns
    -------
    output (B, T, Dout), or (output, weights); float32.
    """
    return run_multi_head_attention(V.check_multi_head_attention(**locals()))


def run_multi_head_attention(a: V.MHAArgs, packed: Any = None):
    """multi_head_attention on checked arguments; ``packed``: the layer's projections from
    ``_cpp.attention.pack_multi_head_attention``."""
    if _cpp("multi_head_attention"):
        out, weights = _cpp_attention.multi_head_attention(a, packed)
    else:
        out, weights = _np_attention.multi_head_attention(
            a.query, a.value, a.key, *a.kernels, *a.biases, a.mask, a.causal, a.return_scores
        )
    return _with_scores(out, weights, a.return_scores)


# ------------------------------------------------------------------------- experts


def run_experts(a: V.ExpertsArgs, weights: tuple, packed: Any = None) -> np.ndarray:
    """The experts of a mixture-of-experts block (layers.Experts) on checked arguments:
    ``weights`` (gate_up, gate_up_bias, down, down_bias), ``packed`` the layer's
    ``_cpp.experts.pack_experts`` of them. x (N, H) -> (*lead, H)."""
    if _cpp("experts", None if packed is not None else "weights not packed"):
        y = _cpp_experts.experts(a, packed)
    else:
        y = _np_experts.experts(a.x, a.index, a.weights, *weights, a.activation, a.gated)
    return y.reshape(a.lead + (a.x.shape[-1],))


# ---------------------------------------------------------------------- layer_norm


@_symbolic.symbolic_op
def layer_norm(
    x: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-3,
) -> np.ndarray:
    """Layer normalization (Keras ``LayerNormalization`` with rms_scaling=False; the layer
    also takes rms_scaling=True).

    Over the axes in ``axis``: ``mean``, the biased ``var = mean((x - mean)^2)``, then
    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` in float32.

    Parameters
    ----------
    x : array of any rank >= 1
    gamma, beta : arrays of x's shape over the normalized axes, optional
        In increasing axis order: axis=(2, 0) takes (x.shape[0], x.shape[2]). None means
        1 and 0.
    axis : int or sequence of ints
        The normalized axes (default -1).
    epsilon : float >= 0

    Returns
    -------
    y : float32 array, the shape of x

    The C++ path runs the rownorm kernels (per ISA, the same bits on every ISA and thread
    count: docs/architecture.md §6), after moving the axes last when they are not already.
    """
    if (
        axis.__class__ is int and axis == -1 and epsilon.__class__ is float
        and 0.0 <= epsilon < math.inf and _backend._core is not None and _checks.unchanged(x)
        and x.ndim and x.size <= _checks.MAX_ELEMENTS
        and _last_axis_vector(gamma, x) and _last_axis_vector(beta, x)
        and _backend._current() != "numpy"
    ):
        # The usual call (the last axis, arrays the checks would pass unchanged): what they
        # and run_layer_norm would do, without their cost (most of a small call's time).
        return _backend._core.layer_norm_lastdim(x, gamma, beta, epsilon)
    return run_layer_norm(V.check_layer_norm(**locals()))


def _last_axis_vector(v: Any, x: np.ndarray) -> bool:
    """Whether v is None or a vector over x's last axis that the checks pass unchanged."""
    return v is None or (_checks.unchanged(v) and v.shape == x.shape[-1:])


def _layer_norm_runner(x: Any, gamma: Any = None, beta: Any = None, axis: Any = -1,
                       epsilon: Any = 1e-3) -> Any:
    """The shape-plan runner of a layer_norm call (models/shape_plan.py): the normalized axes
    last, on the C++ path; else None. It takes the call's positional arguments (gamma and
    beta may be tensors of the graph)."""
    if not _cpp("layer_norm") or not all(v is None or _checks.unchanged(v)
                                         for v in (gamma, beta)):
        return None  # a gamma or beta the checks convert (a list, float64): the general call
    run = _cpp_normalization.layer_norm_runner(V.check_layer_norm(x, gamma, beta, axis,
                                                                  epsilon))
    if run is None:
        return None
    return lambda x, gamma=gamma, beta=beta, *_: run(x, gamma, beta)


_layer_norm_runner.binds_constants = True  # type: ignore[attr-defined]  # axis, epsilon, None
layer_norm.__plan_runner__ = _layer_norm_runner  # type: ignore[attr-defined]


def run_layer_norm(a: V.LayerNormArgs) -> np.ndarray:
    """layer_norm on checked arguments."""
    if a.x.size == 0:
        return np.zeros(a.x.shape, np.float32)
    if _cpp("layer_norm"):
        return _cpp_normalization.layer_norm(a)
    return _np_normalization.layer_normalization(a.x, a.gamma, a.beta, a.axes, a.epsilon)
