"""The PyTorch converter's rules for tensor functions and methods: complex tensors and FFTs,
reductions, indexing and scatter, shapes, views and copies, elementwise math, casts and
factories: ``_TensorRules``, a part of ``_Converter`` (torch_fx.py), each rule a
method that takes the node's converted arguments and returns its converted value."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..layers import (
    AdaptiveAveragePooling1D,
    AdaptiveAveragePooling2D,
    AdaptiveMaxPooling1D,
    AdaptiveMaxPooling2D,
    Add,
    AveragePooling1D,
    AveragePooling2D,
    Concatenate,
    Embedding,
    GlobalAveragePooling2D,
    GroupNormalization,
    MaxPooling1D,
    MaxPooling2D,
    Multiply,
    RMSNormalization,
    Subtract,
    ZeroPadding2D,
)
from .torch_common import (
    _C,
    _T,
    _Assumed,
    _axis_in_layout,
    _by_run_time_size,
    _check_constants,
    _compare_sizes,
    _Dim,
    _dim,
    _int_bounds,
    _is_float,
    _is_number,
    _leaves,
    _legacy_dim,
    _np,
    _np_dtype,
    _pair,
    _permuted,
    _pool_padding_fits,
    _reduction_axes,
    _reshape,
    _same_batch,
    _same_size,
    _single,
    _to_cl,
    _to_torch,
    _Unknown,
)
from .torch_model import (
    TorchConversionError,
)
from .torch_ops import (
    _INDEX,
    _QUANTILE_METHODS,
    _ValuesIndices,
    torch_arange,
    torch_arg_extreme,
    torch_bilinear,
    torch_binary,
    torch_cast,
    torch_cat,
    torch_cdist,
    torch_clamp,
    torch_compare,
    torch_complex_binary,
    torch_complex_unary,
    torch_cosine_similarity,
    torch_cumextreme,
    torch_cumprod,
    torch_cumsum,
    torch_diff,
    torch_expand,
    torch_fft,
    torch_flip,
    torch_fold,
    torch_full,
    torch_gather_index,
    torch_index,
    torch_index_add,
    torch_index_put,
    torch_layer_norm,
    torch_lerp,
    torch_log_softmax,
    torch_logcumsumexp,
    torch_logit,
    torch_masked_fill,
    torch_max_dim,
    torch_median,
    torch_nan_to_num,
    torch_normalize,
    torch_one_hot,
    torch_pad,
    torch_pixel_shuffle,
    torch_pool1d,
    torch_pool2d,
    torch_quantile,
    torch_reduce,
    torch_repeat,
    torch_repeat_interleave,
    torch_repeat_sized,
    torch_reshape,
    torch_roll,
    torch_round_decimals,
    torch_scatter,
    torch_softmax,
    torch_stat,
    torch_stft,
    torch_take,
    torch_tri,
    torch_unary,
    torch_unflatten,
    torch_unfold,
    torch_windows,
)

F32 = np.float32



class _TensorRules:
    """The tensor-function rules of ``_Converter`` (a mixin: ``self`` is the converter)."""

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
        self._check_normalized_shape("layer_norm", t, mod.normalized_shape)
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

    @staticmethod
    def _check_normalized_shape(what: str, t: _T, normalized_shape: Any) -> None:
        """A layer or RMS norm's ``normalized_shape`` must be the input's last axes (the
        batch axis, free in the converted model, among them is refused: an unbatched
        example, where it was an unclear error about gamma's shape)."""
        shape = tuple(int(d) for d in normalized_shape)
        n, have = len(shape), tuple(t.sym.shape)
        if 1 <= n <= len(have) and have[len(have) - n:] == shape:
            return
        batch = ("; it spans the batch axis (None), which the converted model leaves free: a "
                 "norm over the batch does not convert (an unbatched example makes its first "
                 "axis the batch: give a batched one)"
                 if 1 <= n <= len(have) and None in have[len(have) - n:] else "")
        raise TorchConversionError(f"from_torch: {what}: normalized_shape {shape} is not the "
                                   f"last axes of the input {have}{batch}")

    def _layer_norm_fn(self, x: Any, normalized_shape: Any, weight: Any = None,
                       bias: Any = None, eps: float = 1e-5) -> _T:
        """``F.layer_norm``: over the last len(normalized_shape) axes, weight and bias arrays
        (parameters or constants) or None."""
        t = _to_torch(self._tensor(x, "layer_norm"))
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self._check_normalized_shape("layer_norm", t, shape)
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
            self._check_normalized_shape(what, t, shape)
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
        if all(w == (0, 0) for w in widths):
            return t  # nothing to pad (HF MobileNetV2 pads before every conv, often by 0)
        if (mode == "constant" and value == 0.0 and not math.copysign(1.0, value) < 0
                and t.cl and t.ndim == 4 and t.sym.dtype == np.float32
                and widths[0] == widths[3] == (0, 0)):
            # +0.0 around a float32 NHWC image: a ZeroPadding2D, which a "valid" conv that
            # alone reads it runs inside itself (models/folding.py absorbs_padding): no padded
            # copy. (Not -0.0, nor an integer or bool tensor: ZeroPadding2D makes float32.)
            return _T(ZeroPadding2D((widths[1], widths[2]))(t.sym), True)
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
        sizes = tuple(int(v) for v in sizes)
        n = t.sym.shape[axis] if 0 <= axis < t.ndim else None
        if -1 in sizes and n is not None:
            # a -1 of an axis the examples fix, as its number: NumPy cannot infer it in an
            # empty batch (as _reshape, for x.view(B, T, -1, d))
            rest = math.prod(v for v in sizes if v != -1)
            if rest > 0 and n % rest == 0:
                sizes = tuple(n // rest if v == -1 else v for v in sizes)
        return _T(torch_unflatten(t.sym, axis, sizes), False)

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
        if dtype is not None and _np_dtype(dtype) is not np.float32:  # (x.dtype: NumPy's)
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
        """``cumsum`` / ``cumprod`` (``op``: torch_cumsum / torch_cumprod) along ``dim``; a
        ``dtype`` casts the input first, as PyTorch does (DETR's positional encoding:
        ``(~mask).cumsum(1, dtype=torch.float32)``)."""
        t = self._tensor(self._accumulated_as(x, dtype, what), what)
        return _T(op(t.sym, self._axes(t, dim, what)[0]), t.cl)

    def _accumulated_as(self, x: Any, dtype: Any, what: str) -> Any:
        """The input of a sum or product taken with ``dtype=``: x cast to it, as PyTorch casts
        before it accumulates; a number type only (a bool product is a bool in PyTorch, and
        its cumsum refuses bool)."""
        if dtype is None:
            return x
        if _np_dtype(dtype) is np.bool_:  # (torch.bool, or a traced x.dtype: NumPy's)
            raise TorchConversionError(f"from_torch: {what} with dtype=torch.bool")
        return self.cast(x, dtype)

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
