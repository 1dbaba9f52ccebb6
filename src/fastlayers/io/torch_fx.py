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
from ..models.functional import Input, Model
from . import torch_ops
from .torch_common import (
    _ACT_MODULES,
    _ACT_VARIANTS,
    _C,
    _FUNCTIONS_AS_METHODS,
    _IDENTITY_MODULES,
    _IN_PLACE_METHODS,
    _METHOD_ALIASES,
    _METHODS,
    _PARAM_RULE,
    _SIZES_KEYWORD,
    _T,
    _TRACED_INTO,
    _Assumed,
    _axis_in_layout,
    _batch_axis,
    _conv_transpose_problem,
    _Dim,
    _fn_name,
    _from_transformers,
    _input_dtype,
    _interpolate_problem,
    _is_experts,
    _leaves,
    _np_dtype,
    _pad_modules,
    _param_values,
    _pool3d_problem,
    _public_name,
    _refuse_bfloat16,
    _resize_arguments_problem,
    _rms_norm_classes,
    _sdpa_problems,
    _to_cl,
    _to_numpy_input,
    _to_torch,
    _to_torch_example,
    _torch_function_name,
    _triple,
    _Unknown,
    _variant,
)
from .torch_model import (
    TorchConversionError,
    TorchModel,
    _BatchOfOne,
    _near,
)
from .torch_ops import (
    _LOGICAL,
    _MORE_BINARY,
    _REDUCTIONS,
    _UNARY,
    _ValuesIndices,
    torch_copy,
    torch_glu,
    torch_param_activation,
    torch_threshold,
)
from .torch_rules_modules import _ModuleRules
from .torch_rules_tensors import _TensorRules

__all__ = ["from_torch", "TorchModel", "TorchConversionError"]


def __getattr__(name: str) -> Any:
    """The ops of converted models (``torch_*``, in torch_ops.py) by this module's name too:
    models pickled when the ops lived here name them so (tests/test_from_torch.py checks that
    each still resolves)."""
    if name.startswith("torch_") and hasattr(torch_ops, name):
        return getattr(torch_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

F32 = np.float32


class _Converter(_ModuleRules, _TensorRules):
    """One conversion: the graph's nodes checked (``check``: every problem listed at once),
    then converted node by node (_build asks ``call_module``, ``_function_handler``
    and ``method``). The rules are in torch_rules_modules.py and torch_rules_tensors.py."""

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
                    self.problems.append(self._method_problem(node))
        if self.problems:
            self.problems = list(dict.fromkeys(self.problems))  # (a submodule called twice)
            lines = "\n".join(f"  - {p}" for p in self.problems)
            raise TorchConversionError(
                f"from_torch: {type(self.module).__name__} uses {len(self.problems)} "
                f"module(s) or call(s) fastlayers cannot convert:\n{lines}\n"
                "See docs/semantics.md §24 for what converts."
            )

    def _method_problem(self, node: Any) -> str:
        """How check lists a method call without a converter: a TorchScript submodule's
        forward (fx keeps it as a method of the module, not a module call) by what it is."""
        owner = node.args[0] if node.args else None
        compiled = (_attr(self.gm, owner.target) if getattr(owner, "op", None) == "get_attr"
                    else None)
        if node.target == "forward" and isinstance(
                compiled, (self.torch.jit.ScriptModule, self.torch._C.ScriptModule)):
            # (fx reads the compiled module, ``head._c``, or keeps a copy of it by another name)
            name = next((n for n, m in self.module.named_modules()
                         if isinstance(m, self.torch.jit.ScriptModule) and m._c == compiled),
                        owner.target)
            return (f"{name} (a TorchScript submodule: torch.jit.script or trace "
                    "compiled it, and torch.fx cannot trace compiled code; put the Python "
                    "nn.Module it was made from in its place, with its state_dict loaded)")
        return f"{self._where(node)} (Tensor.{node.target})"

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
        norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
        if not isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, *norms)):
            return []
        calls = [n for n in self.gm.graph.nodes
                 if n.op == "call_module" and n.target == node.target]
        if len(calls) != 1:
            return []
        if isinstance(mod, norms):
            # A BatchNorm no conv folded (DenseNet's BN -> ReLU -> conv, a conv traced as
            # F.conv2d): the activation after it runs in its one pass over the channels
            # (torch_scale_shift).
            user = self._only_user(node)
            act = self._activation_of(user)
            if act is None:
                return []
            self.fuse = act
            return [user]
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
            torch.prod: lambda input, dim=None, keepdim=False, dtype=None: self.stat(  # noqa: A002
                "prod", self._accumulated_as(input, dtype, "prod"), dim, keepdim),
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
    failed: list = []  # the first call that failed on the examples while tracing
    try:
        gm = _trace(torch, traced, concrete or None, None if examples is None else dict(
            zip(names, _to_torch_example(torch, examples))), registered, failed)
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
        _batch_axis(torch, gm, p, ex) for p, ex in zip(placeholders, examples)]
    try:
        model = _build(torch, conv, gm, examples, name)
    except _BatchOfOne as e:
        e.axes = axes
        raise
    if failed:
        _refuse_failing_module(torch, module, examples, conv, failed[0])
    return model, conv, axes


def _refuse_failing_module(torch: Any, module: Any, examples: list, conv: _Converter,
                           node: Any) -> None:
    """Refuses a module that PyTorch cannot run on its examples, when a call failed on them
    while tracing (fx node ``node``; _ExampleRun.record): converted, it
    would fail only when called, in NumPy's words (``a + b[:, :, None]`` of (2, 5) and
    (2, 6): a fuzzing find). The module runs on the examples in the dtypes the converted
    model takes (float32, int64, bool), as the trace's run had them, and also as given when
    they differ (a float64 module converts, in float32); refused when both fail. When PyTorch
    runs it, the failure was the fake tensors' own, as most are: converted as before."""
    runs = [_to_torch_example(torch, examples)]
    given = _as_given(torch, examples)
    if any(a.dtype != b.dtype for a, b in zip(_leaves(torch, runs[0]), _leaves(torch, given))):
        runs.append(given)
    extra = {"use_cache": False} if _hf_cache_argument(module, len(examples)) else {}
    errors = []
    for inputs in runs:
        buffers = _buffer_bytes(module)
        saved = _attributes(module)
        try:
            # (the module's state as after the trace: its buffers, attributes and hooks put
            # back, and the random numbers a forward may draw before it fails)
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                module(*inputs, **extra)
            return
        except Exception as e:
            errors.append(f"{type(e).__name__}: {_located(e)}")
        finally:
            _restore_buffers(module, buffers)
            _restore_attributes(saved)
    if node.op == "call_module":
        what = f"{node.target} ({type(conv.gm.get_submodule(node.target)).__name__})"
    elif node.op == "call_function":
        what = f"{conv._where(node)} ({_fn_name(torch, node.target)})"
    else:
        what = f"{conv._where(node)} (Tensor.{node.target})"
    if len(errors) > 1 and errors[1] != errors[0]:
        errors[1] = f"; with the examples in their own dtypes: {errors[1]}"
    else:
        del errors[1:]
    raise TorchConversionError(
        f"from_torch: {type(module).__name__} fails in PyTorch on its example inputs (the "
        f"converted model would fail when called): {''.join(errors)}. (While tracing, the "
        f"first call to fail on the examples' shapes was {what}.)")


def _as_given(torch: Any, examples: Any) -> Any:
    """The examples (_to_numpy_input) as tensors of their own dtypes."""
    if isinstance(examples, (tuple, list)):
        return tuple(_as_given(torch, e) for e in examples)
    return torch.from_numpy(np.array(examples))


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
           registered: dict | None = None, failed: list | None = None) -> Any:
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
    would not run.

    ``failed`` (if given) gets the node of the first call that failed on the examples in
    the trace made (_ExampleRun.failed), if one did."""
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
        prefix = package + "."
        # (by name first, over the keys: thousands of modules are loaded, few of them the
        # package's; a (name, module) tuple for each costs more, in allocations and the
        # collections of the garbage collector they start, than the rest of the scan)
        for name in [n for n in list(sys.modules) if n == package or n.startswith(prefix)]:
            g = getattr(sys.modules.get(name), "__dict__", None)
            if isinstance(g, dict) and "range" not in g:
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
            if graph is not None and failed is not None and run.failed is not None:
                failed.append(run.failed)
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
        # the node of the first call that failed on the examples' shapes and dtypes for
        # another reason than data or a value not known (_refuse_failing_module)
        self.failed: Any = None
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
        except KeyError:  # not known: an input without an example, or an argument not known
            return
        except Exception as e:
            # Not known either. Most such failures are the fake tensors' (a value that
            # depends on data; fx's immutable lists and the numbers _scalar passes, which
            # PyTorch's own call would not get); but the module itself may fail on its
            # examples, which would convert and fail only when called: the first such call
            # is kept, and PyTorch runs the module on the examples when the conversion is
            # done (_refuse_failing_module).
            from torch._subclasses import fake_tensor

            data = (fake_tensor.DataDependentOutputException,
                    fake_tensor.DynamicOutputShapeException,
                    fake_tensor.UnsupportedOperatorException)
            if self.failed is None and not isinstance(e, data):
                self.failed = node
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
            axis = _batch_axis(torch, gm, node, None if examples is None else examples[i])

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
