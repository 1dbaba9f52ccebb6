"""Folding a BatchNormalization into the Dense, Conv2D or DepthwiseConv2D before it, for
execution only.

At inference a BatchNormalization over the channel (last) axis is ``y * s + t`` with
``s = gamma / sqrt(moving_variance + epsilon)`` and ``t = beta - moving_mean * s``. When
its input ``y`` is the output of a Dense or Conv2D with a linear activation,
``y = x @ W + b``, the two layers are one layer with the kernel ``W * s`` (each output
channel scaled) and the bias ``(b - moving_mean) * s + beta``. A model runs that layer
instead of the pair: one GEMM pass, no second sweep over the activations. A
DepthwiseConv2D's output channel ``c * m + j`` comes from ``kernel[:, :, c, j]``, so its
kernel is scaled by ``s`` reshaped to (C, m); MobileNet's and EfficientNet's blocks are
DepthwiseConv2D (no bias) then BatchNormalization, 17 of MobileNetV2's 52. An elementwise
activation layer right after the pair (``fused_activation``) becomes the folded layer's
own activation, applied as the kernel finishes each tile (docs/architecture.md §13). A
ZeroPadding2D that only a "valid" Conv2D or DepthwiseConv2D reads (``absorbs_padding``)
runs inside that conv, with or without a BatchNormalization after it: the conv pads as it
reads instead of reading a padded copy. Without a BatchNormalization, an activation layer
that alone reads a linear producer's output fuses into it the same way
(``takes_activation``).

A pair is folded when

* the producer is exactly a ``Dense``, a channels-last ``Conv2D`` (any ``groups``) or a
  channels-last ``DepthwiseConv2D`` with a linear activation, and the BatchNormalization
  normalizes the last axis of that producer's output;
* the producer's output is consumed by the BatchNormalization alone (not by another layer,
  not a model output); in a ``Sequential`` the next layer is the only consumer.

Nothing of the model changes: ``layers``, ``get_weights``, ``summary`` and the layers
themselves are Keras's. The folded weights are computed (in float64, rounded once to
float32) and packed on first use and cached per model; they are recomputed whenever the
producer's or the BatchNormalization's weight arrays are replaced (``set_weights``,
``load_weights``: a layer's weight arrays are read-only and only ever replaced), so a
result is never stale. The model executors call :func:`functional_plan` /
:func:`sequential_plan` (docs/architecture.md §13).
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Iterator
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import _backend, _checks
from .. import _symbolic as S
from .. import _validation as V
from .. import functional as F
from .._cpp import pack_conv2d, pack_dense
from .._numpy import activations as _np_act
from ..layers.conv import Conv2D, DepthwiseConv2D
from ..layers.core import Activation, Dense
from ..layers.normalization import BatchNormalization, ReLU
from ..layers.padding import ZeroPadding2D

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("folding", default=True)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run models without folding inside the block (for tests and comparisons); the block's
    setting applies to the thread or task that entered it (it was process-wide, and two
    threads' overlapping blocks left folding off for good; a concurrency audit)."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


_PRODUCERS = (Dense, Conv2D, DepthwiseConv2D)


def _own_call(layer: Any) -> bool:
    """Whether ``layer.call`` was replaced on the object (a patch or a spy): such a layer
    always runs its call, never inside a fold (as Layer._offered_runner offers no runner)."""
    return "call" in getattr(layer, "__dict__", {})


def _linear(layer: Any) -> bool:
    return layer.activation is None or layer.activation == "linear"


def _out_channels(producer: Any) -> int:
    if type(producer) is Dense:
        return producer.units
    if type(producer) is Conv2D:
        return producer.filters
    kernel = producer._weight("kernel")  # DepthwiseConv2D: (kh, kw, C, m)
    return kernel.shape[2] * kernel.shape[3]


def fused_activation(layer: Any) -> str | None:
    """The elementwise activation an activation layer applies, when the producer can apply it
    as its own activation instead (in its kernel's epilogue where the core has it): a
    ``ReLU`` that is relu, relu6 or Keras's leaky_relu, an ``Activation`` of an elementwise
    name (not softmax and the other row activations, not a callable); else None."""
    if _own_call(layer):
        return None
    if type(layer) is ReLU:
        name = layer._core_name()
    elif type(layer) is Activation and isinstance(layer.activation, str):
        name = layer.activation
    else:
        return None
    elementwise = name in _np_act.ACTIVATIONS and name not in _np_act.ROW_ACTIVATIONS
    return name if elementwise else None


def foldable(producer: Any, bn: Any, out_ndim: int | None) -> bool:
    """Whether ``bn`` applied to the output (of rank ``out_ndim``, None if unknown) of
    ``producer`` folds into it."""
    if type(producer) not in _PRODUCERS or type(bn) is not BatchNormalization:
        return False
    if _own_call(producer) or _own_call(bn):
        return False
    if not (producer.built and bn.built and _linear(producer)):
        return False
    if type(producer) is not Dense and producer.data_format != "channels_last":
        return False
    if bn.axis != -1 and (out_ndim is None or bn.axis != out_ndim - 1):
        return False
    return bn.channel_count() == _out_channels(producer)


def absorbs_padding(pad: Any, producer: Any) -> bool:
    """Whether the ZeroPadding2D ``pad`` runs inside ``producer``, the conv that alone reads
    its output: the conv then pads its input itself (explicit pads in the C++ conv, padding
    columns read as zeros by its kernels) instead of reading a padded copy. Keras's
    MobileNet, EfficientNet and ResNet pad this way before their strided convs."""
    return (type(pad) is ZeroPadding2D and pad.built and pad.data_format == "channels_last"
            and not _own_call(pad) and not _own_call(producer)
            and type(producer) in (Conv2D, DepthwiseConv2D) and producer.built
            and producer.data_format == "channels_last" and producer.padding == "valid")


def takes_activation(producer: Any) -> bool:
    """Whether the activation layer that alone reads ``producer``'s output (with no
    BatchNormalization between them) can run as its activation: a built, linear Dense or
    channels-last Conv2D or DepthwiseConv2D. A model converted from PyTorch has its
    BatchNormalizations folded into the convs already, and a ReLU after each. Also a built
    BatchNormalization that follows no producer (DenseNet's and pre-activation ResNets'
    BN -> ReLU -> conv): the activation then runs in its one pass over the channels."""
    if type(producer) is BatchNormalization:
        return producer.built and not _own_call(producer)
    return (type(producer) in _PRODUCERS and producer.built and _linear(producer)
            and not _own_call(producer)
            and (type(producer) is Dense or producer.data_format == "channels_last"))


class Fold:
    """A producer run as one layer with what surrounds it: the BatchNormalization folded
    into it (``bn``, or None), the activation layer after them (or right after the producer,
    without a ``bn``) when it fuses (``activation``, else "linear": the producer's own
    activation, read on every call), and the ZeroPadding2D before it when it absorbs it
    (``pad``, or None: :func:`absorbs_padding`). ``span``: how many layers of a Sequential
    it stands for."""

    def __init__(self, producer: Any, bn: Any = None, activation: str = "linear",
                 pad: Any = None) -> None:
        self.producer = producer
        self.bn = bn
        self.pad = pad
        self.activation = activation
        self.span = 1 + (bn is not None) + (activation != "linear") + (pad is not None)
        # (source weight arrays, epsilon, kernel, bias, packed), replaced as one tuple: a call
        # running while another thread sets new weights sees one consistent fold, old or new.
        self._state: tuple = ((), None, None, None, None)

    def _current(self) -> tuple:
        state = self._state
        bn = self.bn
        source = tuple(self.producer.weights) + (() if bn is None else tuple(bn.weights))
        epsilon = None if bn is None else bn.epsilon
        if (len(source) == len(state[0]) and all(a is b for a, b in zip(source, state[0]))
                and state[1] == epsilon):
            return state  # the same arrays and epsilon as last time (arrays are replaced)
        if bn is None:  # the producer's own weights, and its own packing of them
            p = self.producer
            state = (source, None, p._weight("kernel"), p._weight("bias"), p._packed)
            self._state = state
            return state
        kernel, bias = fold_weights(self.producer, bn)
        packed = None
        if _backend.core_available():
            if type(self.producer) is Dense:
                packed = pack_dense(kernel, bias)
            elif type(self.producer) is Conv2D:
                packed = pack_conv2d(kernel, bias, self.producer.groups)
            else:
                packed = pack_conv2d(V.depthwise_kernel4(kernel), bias, kernel.shape[2])
        self._state = state = (source, epsilon, kernel, bias, packed)
        return state

    def runner(self, x: Any) -> Callable | None:
        """A model's shape plan (models/shape_plan.py): this fold as a function of inputs
        shaped as ``x`` alone, its checks and geometry done once (C++ path only; else
        None). The plan is dropped when any weight is replaced (its key holds the layers'
        epoch), so the packed weights it holds are never stale."""
        if type(self.producer) is BatchNormalization or not _checks.unchanged(x):
            return None  # (the checks would convert x: no runner, shape_plan)
        a, packed = self._checked(x)
        if packed is None:
            return None
        return F.dense_runner(a, packed) if type(self.producer) is Dense \
            else F.conv2d_runner(a, packed)

    def __call__(self, x: Any) -> np.ndarray:
        if type(self.producer) is BatchNormalization:  # with the activation after it
            return self.producer._normalize(x, self.activation)
        a, packed = self._checked(x)
        return F.run_dense(a, packed) if type(self.producer) is Dense \
            else F.run_conv2d(a, packed)

    def _checked(self, x: Any) -> tuple:
        """(the producer's checked arguments for x with the folded weights and the fused
        activation, the packed weights or None)."""
        kernel, bias, packed = self._current()[2:]
        p = self.producer
        # With nothing fused the producer keeps its own activation (which may be set after
        # the fold was made; a fold with a BatchNormalization or a fused activation is only
        # planned while it is linear).
        fused = self.bn is not None or self.activation != "linear"
        act = self.activation if fused else p.activation
        pads = None
        if self.pad is not None:  # ((top, bottom), (left, right)) -> (top, bottom, left, right)
            pads = (*self.pad.padding[0], *self.pad.padding[1])
        if type(p) is Dense:
            a = V.check_dense(x, kernel, bias, act, op=p._owner(), x_name="inputs")
        elif type(p) is Conv2D:
            a = V.check_conv2d(x, kernel, bias, p.strides, p.padding, p.dilation_rate,
                               p.groups, act, op=p._owner(), x_name="inputs", pads=pads)
        else:
            a = V.check_depthwise_conv2d(x, kernel, bias, p.strides, p.padding,
                                         p.dilation_rate, act, op=p._owner(),
                                         x_name="inputs", pads=pads)
        return a, packed


def fold_weights(producer: Any, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """The folded (kernel, bias), float32: ``W * s`` over the output channels (the last
    axis of a Dense or Conv2D kernel, the last two of a DepthwiseConv2D's (kh, kw, C, m):
    channel c * m + j) and ``(b - mean) * s + beta``."""
    f64 = np.float64
    mean = bn._weight("moving_mean").astype(f64)
    var = bn._weight("moving_variance").astype(f64)
    gamma = bn._weight("gamma")
    beta = bn._weight("beta")
    s = 1.0 / np.sqrt(var + bn.epsilon)
    if gamma is not None:
        s = s * gamma.astype(f64)
    b = producer._weight("bias")
    b = np.zeros_like(mean) if b is None else b.astype(f64)
    bias = (b - mean) * s + (0.0 if beta is None else beta.astype(f64))
    kernel = producer._weight("kernel").astype(f64)
    if type(producer) is DepthwiseConv2D:
        kernel = kernel * s.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * s
    return (np.ascontiguousarray(kernel, dtype=np.float32),
            np.ascontiguousarray(bias, dtype=np.float32))


# One dict per model: (id(producer), id(bn), activation, id(pad)) -> Fold, "candidates" -> the
# graph's pairs (_candidates) and "chains" -> its sole-reader pairs (_chains).
# Weak, so that the cache neither keeps a model alive nor travels with it (pickling,
# deepcopy). A pair run with and without a fused activation (a shared producer) has one Fold,
# with its own packed weights, per activation.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fold(model: Any, producer: Any, bn: Any, activation: str = "linear",
          pad: Any = None) -> Fold:
    folds = _CACHE.setdefault(model, {})
    key = (id(producer), id(bn), activation, id(pad))
    fold = folds.get(key)
    if fold is None or fold.producer is not producer or fold.bn is not bn or fold.pad is not pad:
        fold = folds[key] = Fold(producer, bn, activation, pad)
    return fold


def sequential_plan(model: Any) -> dict[int, Callable]:
    """For a Sequential: {index in the stack: the Fold to run instead of the layers from
    there on (its span): a ZeroPadding2D the producer absorbs, the producer, the
    BatchNormalization folded into it and the activation layer after that when it fuses, or
    without a BatchNormalization the activation layer right after the producer}.
    The executor runs a fold only when no implicit mask comes in."""
    if not _enabled.get():
        return {}
    stack = model._stack
    outputs = model._outputs  # symbolic outputs (with an Input first), else []
    plan: dict[int, Callable] = {}
    i = 0
    while i < len(stack):
        pad = None
        if i + 1 < len(stack) and absorbs_padding(stack[i], stack[i + 1]):
            pad = stack[i]
        j = i + (pad is not None)  # the producer
        producer = stack[j]
        nxt, nxt2 = (stack[k] if k < len(stack) else None for k in (j + 1, j + 2))
        ndim = len(outputs[j + 1].shape) if len(outputs) > j + 1 else (
            4 if type(producer) in (Conv2D, DepthwiseConv2D) else None)
        # An activation layer not built yet runs as a layer once (it is then built).
        if nxt is not None and foldable(producer, nxt, ndim):  # nxt: a BatchNormalization
            act = fused_activation(nxt2) if nxt2 is not None and nxt2.built else None
            plan[i] = _fold(model, producer, nxt, act or "linear", pad)
            i += plan[i].span
            continue
        act = None  # an activation layer right after the producer
        if nxt is not None and nxt.built and takes_activation(producer):
            act = fused_activation(nxt)
        if pad is not None or act:
            plan[i] = _fold(model, producer, None, act or "linear", pad)
            i += plan[i].span
        else:
            i += 1
    return plan


def _graph(model: Any) -> tuple[dict[int, list[Any]], set[int]]:
    """(tensor id -> the nodes that read it, the ids of the model's outputs)."""
    readers: dict[int, list[Any]] = {}
    for node in model._nodes:
        for t in node.inputs:
            readers.setdefault(t.id, []).append(node)
    return readers, {t.id for t in model.outputs}


def _sole_reader(t: Any, graph: tuple, only_argument: bool = True) -> Any:
    """The node that alone reads tensor ``t``, as its first argument and only input, when t
    is not a model output (and, with ``only_argument``, as its one argument, no keywords);
    else None."""
    readers, outputs = graph
    users = readers.get(t.id, [])
    if t.id in outputs or len(users) != 1:
        return None
    user = users[0]
    if not user.args or user.args[0] is not t or [u.id for u in user.inputs] != [t.id]:
        return None
    if only_argument and (len(user.args) != 1 or user.kwargs):
        return None
    return user


def _candidates(model: Any) -> list[tuple[Any, Any, int, Any]]:
    """(producer node, bn node, output rank, activation node or None) for every pair whose
    graph allows a fold: the producer's one output is read by the BatchNormalization node
    alone, as its inputs, and is not a model output; the activation node, when the
    BatchNormalization's output is likewise read by one node alone, with one input (whether
    its layer fuses is asked per call). Computed once per model (its graph does not change)."""
    folds = _CACHE.setdefault(model, {})
    cached = folds.get("candidates")
    if cached is not None:
        return cached
    graph = _graph(model)
    pairs = []
    for node in model._nodes:
        if type(node.layer) not in _PRODUCERS or len(node.outputs) != 1:
            continue
        t = node.outputs[0]
        user = _sole_reader(t, graph, only_argument=False)
        if user is None or type(user.layer) is not BatchNormalization:
            continue
        if len(node.args) != 1 or not isinstance(node.args[0], S.SymbolicTensor):
            continue
        act_node = None
        if len(user.outputs) == 1:
            act_node = _sole_reader(user.outputs[0], graph)
        pairs.append((node, user, len(t.shape), act_node))
    folds["candidates"] = pairs
    return pairs


def _chains(model: Any) -> tuple[dict[int, Any], dict[int, Any]]:
    """({id(node): the node before it}, {id(node): the node after it}) for every two nodes
    where the second alone reads the first's one output, as its one argument (no
    keywords), the first takes one tensor argument (no keywords), and that output is no
    model output: a padding before a producer, an activation after one (whether the layers
    allow it, :func:`absorbs_padding` and :func:`takes_activation`, is asked per call).
    Computed once per model."""
    folds = _CACHE.setdefault(model, {})
    cached = folds.get("chains")
    if cached is not None:
        return cached
    graph = _graph(model)
    before, after = {}, {}
    for node in model._nodes:
        if len(node.outputs) != 1 or len(node.args) != 1 or node.kwargs or not isinstance(
                node.args[0], S.SymbolicTensor):
            continue
        user = _sole_reader(node.outputs[0], graph)
        if user is not None:
            before[id(user)] = node
            after[id(node)] = user
    folds["chains"] = before, after
    return before, after


def functional_plan(model: Any) -> dict[int, Callable]:
    """For a functional Model: {id(node): f(values) -> the node's outputs} for the nodes
    that run folded: the producer runs the Fold (the folded layer, with the fused activation
    when there is one, padding its input itself when it absorbs a ZeroPadding2D); the
    BatchNormalization and the activation node pass their input, already normalized and
    activated, through; an absorbed padding node passes its input on unpadded, for the
    producer alone to read."""
    if not _enabled.get():
        return {}
    plan: dict[int, FoldStep] = {}
    pads, nexts = _chains(model)
    done: set[int] = set()

    def padding_of(node: Any) -> Any:
        pad_node = pads.get(id(node))
        return pad_node if pad_node is not None and absorbs_padding(pad_node.layer,
                                                                    node.layer) else None

    def add(node: Any, fold: Fold, pad_node: Any) -> None:
        source = node.args[0]
        plan[id(node)] = FoldStep(lambda values, f=fold, t=source: [f(values[t.id])],
                                  None if pad_node is None else source.id, fold, source.id)
        if pad_node is not None:  # the producer pads: the padding node hands x on as it is
            plan[id(pad_node)] = FoldStep(
                lambda values, t=pad_node.args[0]: [values[t.id]], None)
        done.add(id(node))

    for node, bn_node, ndim, act_node in _candidates(model):
        if not foldable(node.layer, bn_node.layer, ndim):
            continue
        act = None  # an op node (no layer) or an unbuilt layer does not fuse
        if act_node is not None and act_node.layer is not None and act_node.layer.built:
            act = fused_activation(act_node.layer)
        pad_node = padding_of(node)
        fold = _fold(model, node.layer, bn_node.layer, act or "linear",
                     None if pad_node is None else pad_node.layer)
        add(node, fold, pad_node)
        done.add(id(bn_node))  # (not a BatchNormalization of its own below)
        produced = node.outputs[0]
        plan[id(bn_node)] = FoldStep(lambda values, t=produced: [values[t.id]], produced.id)
        if act:  # the activation ran in the producer's kernel: its node passes the value on
            plan[id(act_node)] = FoldStep(lambda values, t=bn_node.outputs[0]: [values[t.id]],
                                          produced.id)
    for node in model._nodes:  # no BatchNormalization: a padding, an activation, or both
        if id(node) in done:
            continue
        pad_node = padding_of(node)
        act_node = nexts.get(id(node))
        act = None
        if act_node is not None and act_node.layer is not None and act_node.layer.built and (
                takes_activation(node.layer)):
            act = fused_activation(act_node.layer)
        if pad_node is None and act is None:
            continue
        add(node, _fold(model, node.layer, None, act or "linear",
                        None if pad_node is None else pad_node.layer), pad_node)
        if act:  # the activation ran in the producer's kernel: its node passes the value on
            produced = node.outputs[0]
            plan[id(act_node)] = FoldStep(lambda values, t=produced: [values[t.id]],
                                          produced.id)
    return plan


class FoldStep(NamedTuple):
    """One node of a functional plan: ``run(values)`` gives the node's outputs. ``after`` is
    None for a step that starts a fold (the folded producer, or the padding node it absorbs),
    and else the id of the tensor whose step must have run folded for this one to be right:
    the producer's output for the BatchNormalization and a fused activation node, the
    padding node's output for a producer that pads (the padding passed x on unpadded). The
    executor starts a fold only when no implicit mask comes in (docs/architecture.md §13),
    so the masks need no special case: none comes in, none goes out."""

    run: Callable[[dict], list]
    after: int | None
    fold: Fold | None = None  # the producer's step: its fold, and the id of the tensor it reads
    source: int | None = None
