"""The PyTorch converter's rules for ``torch.nn`` modules and the functions that are one
layer (linear, the convolutions, pooling, normalization, upsampling, the recurrent layers,
attention and the transformer layers): ``_ModuleRules``, a part of ``_Converter``
(torch_fx.py), each rule a method that takes the node's converted arguments and
returns its converted value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..layers import (
    GRU,
    LSTM,
    AveragePooling3D,
    Bidirectional,
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
    GlobalAveragePooling3D,
    GlobalMaxPooling3D,
    MaxPooling3D,
    Reshape,
    Resizing,
    SimpleRNN,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from .torch_common import (
    _ACT_VARIANTS,
    _IDENTITY_MODULES,
    _T,
    _axis_in_layout,
    _bn_scale_shift,
    _check_constants,
    _conv_transpose_problem,
    _Dim,
    _dim,
    _interpolate_problem,
    _is_experts,
    _is_float,
    _is_number,
    _keras_transposes,
    _kernel_of,
    _legacy_dim,
    _np,
    _np_dtype,
    _np_view,
    _pad_modules,
    _pair,
    _pool3d_problem,
    _resize_arguments_problem,
    _resize_output,
    _rms_norm_classes,
    _scale_shift,
    _sdpa_problems,
    _to_cl,
    _to_torch,
    _triple,
    _whole_factors,
)
from .torch_model import (
    TorchConversionError,
)
from .torch_ops import (
    MultiheadAttentionWeights,
    _ValuesIndices,
    torch_activation,
    torch_affine_grid,
    torch_batch_stats_norm,
    torch_bmm,
    torch_cat,
    torch_channel_shuffle,
    torch_dilate_pad,
    torch_einsum,
    torch_embedding_bag,
    torch_embedding_bags,
    torch_glu,
    torch_grid_sample,
    torch_index,
    torch_local_response_norm,
    torch_lstm_projected,
    torch_matmul,
    torch_multihead_attention,
    torch_nearest_index,
    torch_permute,
    torch_prelu,
    torch_resize_corners,
    torch_resize_cubic,
    torch_scale_shift,
    torch_sdpa,
    torch_softmax,
    torch_stack,
    torch_take_along,
    torch_threshold,
    torch_topk,
    torch_where,
    torch_zero_padded,
)

F32 = np.float32



class _ModuleRules:
    """The module and layer rules of ``_Converter`` (a mixin: ``self`` is the converter)."""

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
        return another dtype). By name: a traced tensor's ``x.dtype`` is the NumPy dtype here
        (HF Funnel's ``softmax(x.float(), dtype=x.dtype)``; _Converter._getattr)."""
        if dtype is not None and _np_dtype(dtype) is not np.float32:
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
            w = [_kernel_of(mod.weight)]
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
        align_corners) as torch_resize_cubic; "nearest" and "nearest-exact" of a known input
        size: the rows and columns PyTorch picks (_nearest_indices), as UpSampling2D where
        they are o // f, else torch_nearest_index; "nearest-exact" of a size known only at
        run time, and "bilinear" without align_corners (half-pixel centres, as Keras):
        UpSampling2D for whole factors, else Resizing to the output size (Keras's "nearest"
        is the exact rule); bilinear with align_corners: torch_resize_corners to the output
        size. A 3-D (N, C, L) input ("linear", "nearest", "nearest-exact") is
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
        if mode in ("nearest", "nearest-exact") and not any(d is None for d in in_hw):
            picked = self._nearest_indices(in_hw, size, scale_factor, mode,
                                           recompute_scale_factor, one_d, where)
            if picked is not None:
                rows, cols = picked
                if factors is not None and all(np.array_equal(ix, np.arange(ix.size) // f)
                                               for ix, f in zip(picked, factors)):
                    return _T(UpSampling2D(factors, interpolation="nearest")(t.sym), True)
                return _T(torch_nearest_index(t.sym, rows, cols), True)
        if factors is not None and not antialias:
            return _T(UpSampling2D(factors, interpolation=interpolation)(t.sym), True)
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

    def _nearest_indices(self, in_hw: tuple, size: Any, scale_factor: Any, mode: str,
                         recompute: Any, one_d: bool, where: str) -> Any:
        """The source row and column of each output row and column of PyTorch's "nearest" or
        "nearest-exact" resize of an image of ``in_hw``, as PyTorch itself picks them at
        conversion: its F.interpolate, with the call's size, scale factor and mode, of a
        contiguous NCHW float32 index image (a plane of row numbers and one of column
        numbers; with ``one_d``, a (1, 1, L) ramp through its 1-D kernel). PyTorch computes
        the positions in float32 and lands on the other pixel at some exact ties, where
        Keras's nearest (the exact rule) and o // f for whole factors differ from it (an
        audit: 1.6 % of square size pairs up to 100 in nearest-exact, factors >= 41 in
        nearest). Its 2-D kernel's pick along one axis depends on the other axis's output
        size too (2 x 2 -> 83 x W: row 41 is pixel 0 below W = 46, pixel 1 from there), so
        both axes are resized at once; its picks for channels-last inputs of 16 or more
        channels differ again (not followed: a converted model takes arrays in PyTorch's
        default layout). None for an output size below 1 (refused later, as PyTorch does)."""
        torch, F = self.torch, self.F
        h, w = in_hw
        kw: dict = {"mode": mode, "recompute_scale_factor": recompute}
        if size is not None:
            outs = tuple(int(o) for o in (size if isinstance(size, (tuple, list))
                                          else (size, size)))
            kw["size"] = outs[1:] if one_d else outs
        else:
            scales = tuple(float(f) for f in (scale_factor if isinstance(
                scale_factor, (tuple, list)) else (scale_factor, scale_factor)))
            outs = tuple(math.floor(n * f) for n, f in zip(in_hw, scales))
            kw["scale_factor"] = scales[1:] if one_d else scales
        if min(outs) < 1:
            return None
        # float32, as the model's images (PyTorch computes the positions in the input's
        # dtype); its integers are exact up to 2**24 rows or columns
        if one_d:  # (N, C, L) resized as (N, C, 1, L): the height stays
            image = torch.arange(w, dtype=torch.float32).reshape(1, 1, w)
        else:
            image = torch.stack(torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                               torch.arange(w, dtype=torch.float32),
                                               indexing="ij"))[None]
        try:
            with torch.no_grad():
                got = F.interpolate(image, **kw).numpy().astype(np.int64)
        except (RuntimeError, ValueError) as e:
            raise TorchConversionError(f"{where}: PyTorch refuses the resize ({e})") from e
        if one_d:
            return np.zeros(1, np.int64), got[0, 0]
        return got[0, 0, :, 0], got[0, 1, 0, :]

    def batch_norm(self, mod: Any, x: Any) -> _T:
        scale, shift = _bn_scale_shift(mod)
        return self._channel_affine(x, scale, shift, "batch_norm", self.fuse)

    def _channel_affine(self, x: Any, scale: np.ndarray, shift: np.ndarray, what: str,
                        activation: str | None = None) -> _T:
        """x·scale + shift per channel (axis 1 of PyTorch's (N, C, *) or (N, C)), on the
        channels-last tensor; then ``activation`` (a name, or None), which the plan of the
        conversion took from the module after it (plan_fusion)."""
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
        return _T(torch_scale_shift(t.sym, scale.astype(F32), shift.astype(F32), activation),
                  t.cl)

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
        layer.set_weights([_kernel_of(weight)] + ([bias.astype(F32)] if bias is not None
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
