"""ONNX Runtime (CPU) as a peer of the benchmark: one small ONNX graph per case, built
offline with the ``onnx`` package's helper API from the same Keras-layout weights the other
paths use (docs/benchmarks.md §10).

The graphs: ``Gemm`` (dense with a bias) or ``MatMul`` (no bias), then ``Relu``; ``Conv``
(NCHW, ONNX's layout: the input is transposed once outside the timed loop, as PyTorch's
input is converted once, and the output is returned as an NHWC view); ``LSTM``/``GRU``
(time-major, ONNX's layout, gates reordered from Keras's); ``Softmax``; attention as
``Mul`` (scale on q) + ``MatMul`` + ``Softmax`` + ``MatMul`` (plus an ``Add`` of a constant
mask when causal). A session runs with ``intra_op_num_threads`` = the bench's threads and
``inter_op_num_threads`` = 1 on the CPU execution provider.

``onnxruntime`` and ``onnx`` are optional (``pip install "fastlayers[onnx]"``):
:data:`ORT_ERROR` says why the peer is missing.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

try:  # optional peer
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    ORT_ERROR: str | None = None
except Exception as exc:  # pragma: no cover - depends on the environment
    onnx = None
    onnxruntime = None
    ORT_ERROR = f"{type(exc).__name__}: {exc}"

OPSET = 17  # Softmax on one axis (13+), LSTM/GRU/Conv/Gemm unchanged since
IR_VERSION = 8  # the IR version that goes with opset 17; onnxruntime reads it


def available() -> bool:
    return onnxruntime is not None


def version() -> str | None:
    return None if onnxruntime is None else str(onnxruntime.__version__)


def describe(threads: int) -> str | None:
    """The header line of the ORT peer: version, execution provider, threads."""
    if onnxruntime is None:
        return None
    return (
        f"{onnxruntime.__version__} (onnx {onnx.__version__}), CPUExecutionProvider, "
        f"intra-op {threads} thread{'s' if threads != 1 else ''}, inter-op 1"
    )


def _f32(name: str, shape) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _init(name: str, array: np.ndarray) -> Any:
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def make_model(nodes, inputs, outputs, initializers, name: str):
    """An ONNX model (opset 17) of ``nodes``; checked by ``onnx.checker``."""
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fastlayers.bench"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def session(model, threads: int):
    """A CPU inference session of ``model`` on ``threads`` intra-op threads, inter-op 1."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def _runner(model, threads: int, feeds: dict[str, np.ndarray], post=None) -> Callable[[], Any]:
    sess = session(model, threads)
    out_name = sess.get_outputs()[0].name
    feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}

    if post is None:
        return lambda: sess.run([out_name], feeds)[0]
    return lambda: post(sess.run([out_name], feeds)[0])


# ------------------------------------------------------------------------ one graph per op


def dense(x, kernel, bias, activation, threads: int):
    """``x (m, k) @ kernel (k, n) + bias``, then relu if asked: Gemm or MatMul (+ Relu)."""
    m, k = x.shape
    n = kernel.shape[1]
    inits = [_init("W", kernel)]
    if bias is not None:
        inits.append(_init("B", bias))
        nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["z"])]
    else:
        nodes = [helper.make_node("MatMul", ["x", "W"], ["z"])]
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["z"], ["y"]))
    elif activation is None:
        nodes[-1].output[0] = "y"
    else:
        raise ValueError(f"ort.dense: no graph for activation {activation!r}")
    model = make_model(nodes, [_f32("x", (m, k))], [_f32("y", (m, n))], inits, "dense")
    return _runner(model, threads, {"x": x})


def conv2d(x, kernel, bias, strides, pads, dilation, relu: bool, threads: int):
    """NHWC ``x`` and Keras's ``(kh, kw, C, F)`` kernel as an ONNX ``Conv`` (NCHW, OIHW).

    ``pads`` = (top, left, bottom, right). The input is transposed to NCHW once, here; the
    runner returns the output as an NHWC view (no copy)."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    attrs = dict(
        kernel_shape=[kh, kw],
        strides=[strides, strides],
        dilations=[dilation, dilation],
        pads=[pads[0], pads[1], pads[2], pads[3]],
    )
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["z" if relu else "y"], **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["z"], ["y"]))
    oh = (h + pads[0] + pads[2] - (kh - 1) * dilation - 1) // strides + 1
    ow = (w + pads[1] + pads[3] - (kw - 1) * dilation - 1) // strides + 1
    model = make_model(
        nodes,
        [_f32("x", (n, c, h, w))],
        [_f32("y", (n, f, oh, ow))],
        [_init("W", kernel.transpose(3, 2, 0, 1)), _init("B", bias)],
        "conv2d",
    )
    nchw = x.transpose(0, 3, 1, 2)
    return _runner(model, threads, {"x": nchw}, lambda y: y.transpose(0, 2, 3, 1))


# Keras's LSTM gate blocks are [i | f | c | o]; ONNX's are (i, o, f, c).
_LSTM_ORDER = (0, 3, 1, 2)


def _blocks(a: np.ndarray, units: int, order) -> np.ndarray:
    """The last axis's ``units``-wide gate blocks of ``a`` in ``order``."""
    return np.concatenate([a[..., g * units : (g + 1) * units] for g in order], axis=-1)


def recurrent(op: str, x, kernel, recurrent_kernel, bias, threads: int):
    """A Keras LSTM, GRU (reset_after=True) or SimpleRNN (tanh) as ONNX ``LSTM``/``GRU``/``RNN``
    (op "lstm", "gru" or "rnn") returning the last step's output ``(B, U)``. ONNX runs
    time-major: x is transposed to ``(T, B, F)`` once, here. Keras's [z | r | h] GRU blocks are
    ONNX's order already; ``linear_before_reset=1`` is reset_after=True. The biases: LSTM
    [Wb (its Keras bias) | Rb = 0], GRU [bias[0] | bias[1]], RNN [bias | 0] (its default
    activation is tanh)."""
    b, t, f = x.shape
    u = recurrent_kernel.shape[0]
    if op == "lstm":
        order = _LSTM_ORDER
        bias_onnx = np.concatenate([_blocks(bias, u, order), np.zeros(4 * u, np.float32)])
        attrs = {}
    elif op == "gru":
        order = (0, 1, 2)
        bias_onnx = np.concatenate([bias[0], bias[1]])
        attrs = {"linear_before_reset": 1}
    elif op == "rnn":
        order = (0,)
        bias_onnx = np.concatenate([bias, np.zeros(u, np.float32)])
        attrs = {}
    else:
        raise ValueError(f"ort.recurrent: unknown op {op!r}")
    w = _blocks(kernel, u, order).T[None]  # (1, gates*u, F)
    r = _blocks(recurrent_kernel, u, order).T[None]  # (1, gates*u, U)
    node = helper.make_node(
        op.upper(), ["x", "W", "R", "B"], ["", "y"], hidden_size=u, direction="forward", **attrs
    )
    model = make_model(
        [node],
        [_f32("x", (t, b, f))],
        [_f32("y", (1, b, u))],
        [_init("W", w), _init("R", r), _init("B", bias_onnx[None])],
        op,
    )
    return _runner(model, threads, {"x": x.transpose(1, 0, 2)}, lambda y: y[0])


def softmax(x, threads: int):
    """Softmax over the last axis."""
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    model = make_model([node], [_f32("x", x.shape)], [_f32("y", x.shape)], [], "softmax")
    return _runner(model, threads, {"x": x})


def attention(q, k, v, causal: bool, threads: int):
    """``softmax(q k^T / sqrt(D) [+ causal mask]) v`` for q ``(B, H, T, D)``, k and v
    ``(B, H, S, D)``: Mul + Transpose + MatMul + (Add) + Softmax + MatMul."""
    b, h, t, d = q.shape
    s = k.shape[2]
    inits = [_init("scale", np.array(1.0 / math.sqrt(d), np.float32))]
    nodes = [
        helper.make_node("Mul", ["q", "scale"], ["qs"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["qs", "kt"], ["scores"]),
    ]
    scores = "scores"
    if causal:
        if t != s:
            raise ValueError("ort.attention: the causal graph is for T == S only")
        allowed = np.arange(s)[None, :] <= np.arange(t)[:, None]  # key j <= query i
        inits.append(_init("mask", np.where(allowed, 0.0, -np.inf)))
        nodes.append(helper.make_node("Add", ["scores", "mask"], ["masked"]))
        scores = "masked"
    nodes += [
        helper.make_node("Softmax", [scores], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    model = make_model(
        nodes,
        [_f32("q", q.shape), _f32("k", k.shape), _f32("v", v.shape)],
        [_f32("y", (b, h, t, d))],
        inits,
        "attention",
    )
    return _runner(model, threads, {"q": q, "k": k, "v": v})
