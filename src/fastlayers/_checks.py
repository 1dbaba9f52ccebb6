"""Checks of single arguments: the building blocks of fastlayers/_validation.py.

Wrong types raise ``TypeError``; wrong ranks, shapes and values raise ``ValueError``,
naming the op (or layer), the argument, the shape seen and the shape expected.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ._numpy.activations import ACTIVATIONS

F32 = np.float32
# The float32 dtype object: arrays of native float32 share it, so ``x.dtype is _F32_DTYPE``
# is the fast test (an equal but distinct dtype, e.g. big-endian float32, takes the slow path).
_F32_DTYPE = np.dtype(np.float32)


def _shape(a) -> str:
    return str(tuple(a.shape))


# The most elements an array argument that must be converted or scanned, a weight or an
# Embedding output may have (256 GiB of float32, beyond any one host's model): larger ones
# are refused before any work (docs/semantics.md §1). Without it a 0-stride broadcast view of
# an absurd shape would be copied or scanned element by element (hours), and an absurd
# hyper-parameter would fail inside NumPy with a MemoryError that names neither the op nor
# the argument. An array passed on as it is (float32, C-contiguous, aligned: an np.memmap
# too) is not counted: it costs nothing.
MAX_ELEMENTS = 2**36


def elements(n: int, op: str, what: str) -> None:
    """ValueError if ``n``, the element count of ``what``, exceeds :data:`MAX_ELEMENTS`."""
    if n > MAX_ELEMENTS:
        raise ValueError(
            f"{op}: {what} is too large ({n} elements; at most {MAX_ELEMENTS} are accepted)"
        )


def size(a: np.ndarray, op: str, name: str) -> None:
    """ValueError if the array argument ``a`` has more than :data:`MAX_ELEMENTS` elements."""
    elements(a.size, op, f"{name} of shape {_shape(a)}")


def unchanged(x: Any) -> bool:
    """Whether :func:`array` hands ``x`` on as it is: a C-contiguous, aligned ndarray (not a
    subclass) of native float32, what the kernels take. Calls that skip the checks (shape
    plans, direct layer and op calls) take only such arrays. (``_core.plain_f32_shapes``,
    csrc/bindings/bind_runtime.cpp, makes the same checks for the key of a direct op call;
    tests/test_direct_calls.py holds the two to the same answers.)"""
    if type(x) is not np.ndarray:
        return False
    dtype = x.dtype
    if dtype is not _F32_DTYPE and dtype != _F32_DTYPE:  # identity first: the usual case
        return False  # (an equal dtype object, e.g. an unpickled array's, is float32 too)
    flags = x.flags
    return flags.c_contiguous and flags.aligned


def array(x: Any, op: str, name: str) -> np.ndarray:
    """Convert ``x`` to a C-contiguous float32 array or raise TypeError."""
    if unchanged(x):
        return x  # already what the kernels take (the common case: a layer's own weights)
    if x is None:
        raise TypeError(f"{op}: {name} is required, got None")
    if isinstance(x, np.ndarray):
        a = x
    else:
        if isinstance(x, (str, bytes, dict, set)):
            raise TypeError(
                f"{op}: {name} must be an array of real numbers, got {type(x).__name__}"
            )
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{op}: {name} could not be converted to an array: {exc}") from None
    kind = a.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"{op}: {name} must have a real (bool, int or float) dtype, got dtype {a.dtype}"
        )
    flags = a.flags
    if not (a.dtype == F32 and flags.c_contiguous and flags.aligned):  # else shared, not copied
        size(a, op, name)
    # Not np.ascontiguousarray: it turns a 0-d array into shape (1,). Native byte order and
    # alignment are what the C++ kernels require; a misaligned view is copied.
    try:
        out = np.asarray(a, dtype=F32, order="C")
    except (ValueError, MemoryError) as exc:
        # e.g. a 0-stride broadcast view of a huge shape: NumPy's own message ("iterator is
        # too large", "Unable to allocate ...") names neither the op nor the argument.
        raise ValueError(
            f"{op}: {name} of shape {_shape(a)} is too large to convert to a float32 array "
            f"({exc})"
        ) from None
    return out if out.flags.aligned else out.copy()


def optional_array(x: Any, op: str, name: str) -> np.ndarray | None:
    return None if x is None else array(x, op, name)


def real_array(x: Any, op: str, name: str, what: str = "an array of real numbers") -> np.ndarray:
    """``x`` as an array of its own real (bool, int or float) dtype, or TypeError."""
    if isinstance(x, np.ndarray):
        a = x
    else:
        if isinstance(x, (str, bytes, dict, set)):
            raise TypeError(f"{op}: {name} must be {what}, got {type(x).__name__}")
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{op}: {name} could not be converted to an array: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{op}: {name} must be {what}, got dtype {a.dtype}")
    size(a, op, name)
    return a


def bool_mask(
    mask: Any,
    op: str,
    name: str,
    threshold: bool = False,
    *,
    shape: tuple[int, ...] | None = None,
    why: str = "",
    check: Callable[[tuple[int, ...]], None] | None = None,
    additive_refused: bool = False,
) -> np.ndarray:
    """Convert a mask to bool. Non-bool masks mean ``mask != 0``, or ``mask > 0.5``
    when ``threshold`` (the Keras Softmax rule). The mask's shape is checked before it is
    converted or copied (a wrong shape, e.g. a huge broadcast view, costs no work): it must
    be ``shape`` (``why`` says what that is), and ``check(mask_shape)`` must pass. With
    ``additive_refused`` a float mask with a negative value is a ValueError: that is
    PyTorch's additive attn_mask (0 = attend, -inf = blocked), which ``!= 0`` would read
    exactly inverted."""
    if isinstance(mask, (str, bytes, dict, set)):
        raise TypeError(f"{op}: {name} must be a boolean array, got {type(mask).__name__}")
    m = real_array(mask, op, name, "a bool or numeric array")
    if shape is not None:
        shape_is(m, op, name, shape, why)
    if check is not None:
        check(m.shape)
    if additive_refused and m.dtype.kind == "f" and bool(np.any(m < 0)):
        raise ValueError(
            f"{op}: {name} is boolean (True = may attend; a numeric mask means {name} != 0), "
            f"but this float {name} has negative values, as PyTorch's additive attn_mask "
            f"(0 = attend, -inf = blocked) has; pass {name}=(attn_mask == 0) for such a mask"
        )
    if m.dtype.kind != "b":
        m = m > 0.5 if threshold else m != 0
    return np.ascontiguousarray(m, dtype=bool)


def rank(a: np.ndarray, op: str, name: str, expected: int, what: str = "") -> None:
    if a.ndim != expected:
        desc = f" {what}" if what else ""
        raise ValueError(f"{op}: {name} must have rank {expected}{desc}, got shape {_shape(a)}")


def min_rank(a: np.ndarray, op: str, name: str, minimum: int, what: str = "") -> None:
    if a.ndim < minimum:
        desc = f" {what}" if what else ""
        raise ValueError(f"{op}: {name} must have rank >= {minimum}{desc}, got shape {_shape(a)}")


def shape_is(a: np.ndarray, op: str, name: str, expected: tuple[int, ...], why: str = "") -> None:
    if tuple(a.shape) != tuple(expected):
        reason = f" ({why})" if why else ""
        raise ValueError(f"{op}: {name} has shape {_shape(a)}, expected {tuple(expected)}{reason}")


@contextlib.contextmanager
def allocating(op: str, what: str) -> Iterator[None]:
    """Around a NumPy call that makes a new array from sizes the user chose (a padding, a
    repeat count): NumPy's errors for a size it cannot allocate ("array is too big",
    "Maximum allowed dimension exceeded", "Unable to allocate ...", a C long overflow) name
    neither the op nor the argument, so they become a ValueError that does."""
    try:
        yield
    except (ValueError, MemoryError, OverflowError) as exc:
        raise ValueError(f"{op}: {what} is too large to create ({exc})") from None


def flag(value: Any, op: str, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


# The largest stride or dilation accepted (TensorFlow keeps them as int32 attributes).
MAX_INT32 = 2**31 - 1


def int_tuple(
    value: Any, op: str, name: str, n: int = 2, minimum: int = 1, maximum: int | None = None
) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints, each in [``minimum``, ``maximum``]."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got bool")
    if isinstance(value, (int, np.integer)):
        items = (int(value),) * n
    elif isinstance(value, (tuple, list)):
        if not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value
        ):
            raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
        if len(value) != n:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
        items = tuple(int(v) for v in value)
    else:
        raise TypeError(
            f"{op}: {name} must be an int or a tuple of {n} ints, got {type(value).__name__}"
        )
    if any(v < minimum for v in items):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    if maximum is not None and any(v > maximum for v in items):
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {value!r}")
    return items


def activation(act: Any, op: str, name: str = "activation", elementwise: bool = False):
    """A Keras activation name (case-insensitive), None (linear) or a callable."""
    if act is None:
        return "linear"
    if callable(act):
        return act
    if isinstance(act, str) and act in ACTIVATIONS and not (elementwise and act in _ROW_ACTS):
        return act  # already a key (the common case)
    if not isinstance(act, str):
        raise TypeError(f"{op}: {name} must be a str, a callable or None, got {type(act).__name__}")
    key = act.strip().lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown {name} {act!r}; expected one of {sorted(ACTIVATIONS)}")
    if elementwise and key in _ROW_ACTS:
        raise ValueError(f"{op}: {name} must be elementwise here, got {act!r}")
    return key


_ROW_ACTS = ("softmax", "log_softmax", "sparsemax", "glu")


def real_scalar(value: Any, op: str, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
            return float(value)
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    if isinstance(value, complex) or np.iscomplexobj(value):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # a Python int or Fraction beyond the float range
        raise ValueError(f"{op}: {name} is too large for a float, got {value!r}") from None


def broadcastable(mask_shape: Sequence[int], target: Sequence[int]) -> bool:
    """True if an array of ``mask_shape`` broadcasts to ``target`` (NumPy rules)."""
    if len(mask_shape) > len(target):
        return False
    for m, t in zip(reversed(mask_shape), reversed(target)):
        if m != 1 and m != t:
            return False
    return True


def broadcasts_to(
    target: Sequence[int], op: str, name: str, what: str
) -> Callable[[tuple[int, ...]], None]:
    """A shape check (``bool_mask``'s ``check``): the shape must broadcast to ``target``
    (``what`` names it in the message)."""

    def check(shape: tuple[int, ...]) -> None:
        if not broadcastable(shape, target):
            raise ValueError(f"{op}: {name} of shape {shape} does not broadcast to {what}")

    return check


# ----------------------------------------------------------------------- conv2d geometry


def _strides_padding_dilation(op: str, strides, padding, dilation_rate):
    """The arguments conv2d and conv2d_transpose share, checked: (strides, dilation, padding
    in lower case)."""
    sh, sw = int_tuple(strides, op, "strides", maximum=MAX_INT32)
    dh, dw = int_tuple(dilation_rate, op, "dilation_rate", maximum=MAX_INT32)
    if not isinstance(padding, str):
        raise TypeError(f"{op}: padding must be 'valid' or 'same', got {type(padding).__name__}")
    pad = padding.lower()
    if pad not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be 'valid' or 'same', got {padding!r}")
    if (sh > 1 or sw > 1) and (dh > 1 or dw > 1):
        raise ValueError(
            f"{op}: strides > 1 together with dilation_rate > 1 is not allowed (as in Keras); "
            f"got strides {(sh, sw)} and dilation_rate {(dh, dw)}"
        )
    return (sh, sw), (dh, dw), pad


def conv2d_geometry(
    op: str,
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    strides,
    padding,
    dilation_rate,
    groups,
    steps: bool = False,
):
    """Check conv2d arguments and return (strides, dilation, pads, out_hw, groups).

    pads = (top, bottom, left, right) following the TensorFlow rule: the extra
    pixel of odd total padding goes at the bottom/right. ``steps``: the call is a 1-D
    convolution on a height of 1, and the messages speak of its length and kernel.
    """
    (sh, sw), (dh, dw), pad = _strides_padding_dilation(op, strides, padding, dilation_rate)
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{op}: groups must be an int, got {type(groups).__name__}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"{op}: groups must be >= 1, got {groups}")
    _, h, w, c = x_shape
    kh, kw, cg, f = kernel_shape
    if h < 1 or w < 1 or c < 1:
        raise ValueError(
            f"{op}: x has an empty spatial or channel dimension, shape {tuple(x_shape)}"
        )
    if kh < 1 or kw < 1 or f < 1 or cg < 1:
        raise ValueError(f"{op}: kernel has an empty dimension, shape {tuple(kernel_shape)}")
    if c % groups or f % groups:
        raise ValueError(
            f"{op}: input channels ({c}) and filters ({f}) must both be divisible by "
            f"groups ({groups})"
        )
    if cg != c // groups:
        raise ValueError(
            f"{op}: kernel has shape {tuple(kernel_shape)}, expected ({kh}, {kw}, {c // groups}, "
            f"{f}) for input channels {c} and groups {groups}"
        )
    eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if max(eff_h, eff_w) > MAX_INT32:
        what = (f"{eff_w} (kernel {kw}, dilation_rate {dw})" if steps else
                f"{(eff_h, eff_w)} (kernel {(kh, kw)}, dilation_rate {(dh, dw)})")
        raise ValueError(f"{op}: the dilated kernel {what} is larger than {MAX_INT32}")
    if pad == "valid":
        oh = (h - eff_h) // sh + 1 if h >= eff_h else 0
        ow = (w - eff_w) // sw + 1 if w >= eff_w else 0
        if oh <= 0 or ow <= 0:
            what = (f"input length {w} is smaller than the dilated kernel {eff_w}" if steps else
                    f"input (H, W) = {(h, w)} is smaller than the dilated kernel "
                    f"{(eff_h, eff_w)}")
            raise ValueError(
                f"{op}: with padding 'valid' the {what}; the output would be empty"
            )
        pads = (0, 0, 0, 0)
    else:
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
        ph = max((oh - 1) * sh + eff_h - h, 0)
        pw = max((ow - 1) * sw + eff_w - w, 0)
        pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    return (sh, sw), (dh, dw), pads, (oh, ow), groups


def conv_transpose_length(n: int, k: int, s: int, d: int, padding: str, op_pad: int | None):
    """The output length of a transposed convolution along one axis, and the offset of
    input step 0's first tap in it: input step i, tap t lands on output i * s + t * d -
    offset (docs/semantics.md §25). Keras 3's rule (its JAX padding arguments; the TensorFlow
    and torch backends agree)."""
    ke = (k - 1) * d + 1
    if padding == "valid":
        extra = max(ke, s) - ke if op_pad is None else op_pad
        return (n - 1) * s + ke + extra, 0
    pad_len = s + ke - 2 if op_pad is None else ke + ke % 2 - 2 + op_pad
    before = min(pad_len // 2 + pad_len % 2, ke - 1)
    length = n * s if op_pad is None else (n - 1) * s + ke % 2 + op_pad
    return length, ke - 1 - before


def conv2d_transpose_geometry(
    op: str,
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    strides,
    padding,
    output_padding,
    dilation_rate,
):
    """Check conv2d_transpose arguments; return (strides, dilation, offsets, out_hw).

    kernel_shape is Keras's (kh, kw, filters, in_channels); offsets = (top, left) as in
    :func:`conv_transpose_length`.
    """
    (sh, sw), (dh, dw), pad = _strides_padding_dilation(op, strides, padding, dilation_rate)
    if output_padding is None:
        oph = opw = None
    else:
        oph, opw = int_tuple(output_padding, op, "output_padding", minimum=0)
        if oph >= sh or opw >= sw:
            raise ValueError(
                f"{op}: output_padding must be smaller than strides in each dimension (as in "
                f"Keras); got output_padding {(oph, opw)} and strides {(sh, sw)}"
            )
    _, h, w, c = x_shape
    kh, kw, f, kc = kernel_shape
    if h < 1 or w < 1 or c < 1:
        raise ValueError(
            f"{op}: x has an empty spatial or channel dimension, shape {tuple(x_shape)}"
        )
    if kh < 1 or kw < 1 or f < 1 or kc < 1:
        raise ValueError(f"{op}: kernel has an empty dimension, shape {tuple(kernel_shape)}")
    if kc != c:
        raise ValueError(
            f"{op}: kernel has shape {tuple(kernel_shape)}, expected ({kh}, {kw}, {f}, {c}): "
            f"(kh, kw, filters, in_channels) for input channels {c}"
        )
    if max((kh - 1) * dh + 1, (kw - 1) * dw + 1) > MAX_INT32:
        raise ValueError(
            f"{op}: the dilated kernel (kernel {(kh, kw)}, dilation_rate {(dh, dw)}) is larger "
            f"than {MAX_INT32}"
        )
    oh, top = conv_transpose_length(h, kh, sh, dh, pad, oph)
    ow, left = conv_transpose_length(w, kw, sw, dw, pad, opw)
    if oh < 1 or ow < 1:  # "same" with output_padding 0 and an even kernel can give 0 rows
        raise ValueError(
            f"{op}: the output would be empty ({(oh, ow)}) for input (H, W) = {(h, w)}, "
            f"kernel {(kh, kw)}, strides {(sh, sw)}, padding {pad!r}, output_padding "
            f"{output_padding!r}"
        )
    return (sh, sw), (dh, dw), (top, left), (oh, ow)
