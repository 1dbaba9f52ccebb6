"""The public benchmark shapes (docs/benchmarks.md §7) and how each path runs them.

A :class:`Case` makes its inputs once and offers one callable per path:
``numpy`` and ``cpp`` run fastlayers with that backend forced; ``torch`` runs the
equivalent PyTorch op (CPU, channels_last for convs) when torch is importable; ``ort``
runs an ONNX graph of the op in ONNX Runtime (CPU) when onnxruntime is importable
(:mod:`fastlayers.bench.ort`). Every path must give the same numbers: :func:`check`
compares each against the NumPy path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import fastlayers as fl
from fastlayers import _backend
from fastlayers._checks import conv_transpose_length
from fastlayers._numpy import resize

from . import ort

try:  # optional peer
    import torch
    import torch.nn.functional as F

    TORCH_ERROR: str | None = None
except Exception as exc:  # pragma: no cover - depends on the environment
    torch = None
    F = None
    TORCH_ERROR = f"{type(exc).__name__}: {exc}"


@dataclass
class Case:
    id: str
    op: str
    desc: str
    flops: float
    make: Callable[[np.random.Generator], dict[str, Any]]
    call: Callable[[dict[str, Any]], Any]
    torch_prepare: Callable[[dict[str, Any]], Callable[[], Any]] | None = None
    quick: bool = True
    # (inputs, threads) -> a no-argument callable running the op's ONNX graph in onnxruntime
    ort_prepare: Callable[[dict[str, Any], int], Callable[[], Any]] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def compute_bound(self) -> bool:
        """Whether this shape is bounded by the FMA peak (the bench then reports its % of it)."""
        return self.id in COMPUTE_BOUND_IDS

    def setup(self, seed: int = 0) -> None:
        if not self.inputs:
            self.inputs = self.make(np.random.default_rng(seed))

    def runner(self, path: str, threads: int | None = None) -> Callable[[], Any] | None:
        """A no-argument callable running this case on ``path``, or None if unavailable.

        ``threads`` is for the ``ort`` path, whose thread count is fixed when its session is
        made (default: fastlayers' thread count); the other paths use the threads set."""
        self.setup()
        if path in ("numpy", "cpp"):
            if path == "cpp" and (self.op not in _backend.CPP_OPS or not fl.core_available()):
                return None

            def run(path=path):
                with fl.use_backend(path):
                    return self.call(self.inputs)

            return run
        if path == "torch":
            if torch is None or self.torch_prepare is None:
                return None
            return self.torch_prepare(self.inputs)
        if path == "ort":
            if not ort.available() or self.ort_prepare is None:
                return None
            return self.ort_prepare(self.inputs, threads or fl.get_num_threads())
        raise ValueError(f"unknown path {path!r}")


def _conv_transpose_case(cid, n, h, w, c, f, k, stride, padding, quick=True):
    def make(rng):
        d = {
            "x": _rand(rng, n, h, w, c),
            "kernel": _rand(rng, k, k, f, c, scale=1 / math.sqrt(k * k * c)),
            "bias": _rand(rng, f),
        }
        d["layer"] = fl.layers.Conv2DTranspose(
            f, k, strides=stride, padding=padding, activation="relu"
        )
        d["layer"].set_weights([d["kernel"], d["bias"]])
        return d

    def call(d):
        return d["layer"](d["x"])

    # PyTorch's ConvTranspose2d(padding=p, output_padding=op) is Keras's rule with the first
    # output row at -p and (H - 1)*s - 2p + k + op rows: the same output when p is Keras's
    # offset and op makes up the length (docs/semantics.md §25).
    (oh, _), top = _transpose_geometry(h, k, stride, padding)
    out_pad = oh - ((h - 1) * stride - 2 * top + k)

    def torch_prepare(d):
        if not 0 <= out_pad < stride:
            raise ValueError(f"{cid}: no ConvTranspose2d computes Keras's {padding!r} here")
        cl = torch.channels_last
        x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2).contiguous(memory_format=cl)
        wt = torch.from_numpy(d["kernel"]).permute(3, 2, 0, 1).contiguous()  # (C, F, kh, kw)
        b = torch.from_numpy(d["bias"])

        def run():
            y = F.conv_transpose2d(x, wt, b, stride=stride, padding=top, output_padding=out_pad)
            return torch.relu(y).permute(0, 2, 3, 1)

        return run

    flops = 2.0 * n * h * w * c * f * k * k
    desc = f"({n}, {h}, {w}, {c}) -> {f}, {k}x{k}, stride {stride}, {padding}"
    return Case(cid, "conv2d_transpose", desc, flops, make, call, torch_prepare, quick)


def _transpose_geometry(h, k, stride, padding):
    length, top = conv_transpose_length(h, k, stride, 1, padding, None)
    return (length, length), top


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def check(case: Case, path: str, result: Any, reference: np.ndarray) -> None:
    """Assert that ``result`` (from ``path``) matches the NumPy path's ``reference``."""
    got = _first(result)
    if torch is not None and isinstance(got, torch.Tensor):
        got = got.detach().contiguous().numpy()
    got = np.asarray(got)
    assert got.shape == reference.shape, f"{case.id}/{path}: shape {got.shape} != {reference.shape}"
    scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    np.testing.assert_allclose(
        got, reference, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{case.id} on {path}"
    )


# ------------------------------------------------------------------------ builders

F32 = np.float32


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


def _dense_case(cid, m, k, n, activation, quick=True):
    def make(rng):
        d = {
            "x": _rand(rng, m, k),
            "kernel": _rand(rng, k, n, scale=1 / math.sqrt(k)),
            "bias": _rand(rng, n) if activation else None,
        }
        # A layer holds its weights pre-packed for the C++ kernels (packed once, here).
        d["layer"] = fl.layers.Dense(n, activation=activation, use_bias=activation is not None)
        d["layer"].set_weights([d["kernel"]] + ([d["bias"]] if activation else []))
        return d

    def call(d):
        return d["layer"](d["x"])

    def torch_prepare(d):
        x = torch.from_numpy(d["x"])
        w = torch.from_numpy(np.ascontiguousarray(d["kernel"].T))  # nn.Linear layout (out, in)
        b = None if d["bias"] is None else torch.from_numpy(d["bias"])
        if activation == "relu":
            return lambda: torch.relu(F.linear(x, w, b))
        return lambda: F.linear(x, w, b)

    def ort_prepare(d, threads):
        return ort.dense(d["x"], d["kernel"], d["bias"], activation, threads)

    desc = f"x ({m}, {k}) -> {n}" + (f", {activation}" if activation else "")
    return Case(cid, "dense", desc, 2.0 * m * k * n, make, call, torch_prepare, quick, ort_prepare)


def _conv_case(cid, n, h, w, c, f, k, stride=1, padding="valid", dilation=1, quick=True):
    def make(rng):
        d = {
            "x": _rand(rng, n, h, w, c),
            "kernel": _rand(rng, k, k, c, f, scale=1 / math.sqrt(k * k * c)),
            "bias": _rand(rng, f),
        }
        # A layer holds its filters pre-packed for the C++ kernels (packed once, here), as
        # torch_prepare converts torch's weights once.
        d["layer"] = fl.layers.Conv2D(
            f,
            k,
            strides=stride,
            padding=padding,
            dilation_rate=dilation,
            activation="relu",
        )
        d["layer"].set_weights([d["kernel"], d["bias"]])
        return d

    def call(d):
        return d["layer"](d["x"])

    eff = (k - 1) * dilation + 1
    if padding == "same":
        oh, ow = math.ceil(h / stride), math.ceil(w / stride)
        ph = max((oh - 1) * stride + eff - h, 0)
        pw = max((ow - 1) * stride + eff - w, 0)
        pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # F.pad order: W then H
    else:
        oh, ow = (h - eff) // stride + 1, (w - eff) // stride + 1
        pads = (0, 0, 0, 0)

    def torch_prepare(d):
        cl = torch.channels_last
        x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2).contiguous(memory_format=cl)
        wt = torch.from_numpy(d["kernel"]).permute(3, 2, 0, 1).contiguous(memory_format=cl)
        b = torch.from_numpy(d["bias"])
        symmetric = pads[0] == pads[1] and pads[2] == pads[3]

        def run():
            xi = x if symmetric else F.pad(x, pads)
            pad = (pads[2], pads[0]) if symmetric else 0
            y = torch.relu(F.conv2d(xi, wt, b, stride=stride, padding=pad, dilation=dilation))
            return y.permute(0, 2, 3, 1)

        return run

    def ort_prepare(d, threads):
        top_left_bottom_right = (pads[2], pads[0], pads[3], pads[1])
        return ort.conv2d(
            d["x"], d["kernel"], d["bias"], stride, top_left_bottom_right, dilation, True, threads
        )

    flops = 2.0 * n * oh * ow * f * k * k * c
    desc = f"({n}, {h}, {w}, {c}) -> {f}, {k}x{k}, {padding}"
    if stride > 1:
        desc += f", stride {stride}"
    if dilation > 1:
        desc += f", dilation {dilation}"
    return Case(cid, "conv2d", desc, flops, make, call, torch_prepare, quick, ort_prepare)


def _recurrent_make_call(layer_cls, gates, bias_shape, b, t, f, u):
    """make, call and ort_prepare of an LSTM, GRU or SimpleRNN case: Keras-layout weights held
    by a layer, and the same weights in an ONNX LSTM/GRU/RNN node."""

    def make(rng):
        s = 1 / math.sqrt(u)
        d = {
            "x": _rand(rng, b, t, f),
            "kernel": _rand(rng, f, gates * u, scale=s),
            "recurrent_kernel": _rand(rng, u, gates * u, scale=s),
            "bias": _rand(rng, *bias_shape, scale=0.1),
        }
        # A layer holds its weights pre-packed for the C++ kernels (packed once, here).
        d["layer"] = layer_cls(u)
        d["layer"].set_weights([d["kernel"], d["recurrent_kernel"], d["bias"]])
        return d

    def call(d):
        return d["layer"](d["x"])

    def ort_prepare(d, threads):
        op = {4: "lstm", 3: "gru", 1: "rnn"}[gates]
        return ort.recurrent(op, d["x"], d["kernel"], d["recurrent_kernel"], d["bias"], threads)

    return make, call, ort_prepare


def _lstm_case(cid, b, t, f, u, quick=True):
    make, call, ort_prepare = _recurrent_make_call(fl.layers.LSTM, 4, (4 * u,), b, t, f, u)

    def torch_prepare(d):
        layer = torch.nn.LSTM(f, u, batch_first=True)
        with torch.no_grad():  # Keras -> torch: W_ih = kernel^T, W_hh = rk^T, b split
            layer.weight_ih_l0.copy_(torch.from_numpy(d["kernel"].T.copy()))
            layer.weight_hh_l0.copy_(torch.from_numpy(d["recurrent_kernel"].T.copy()))
            layer.bias_ih_l0.copy_(torch.from_numpy(d["bias"]))
            layer.bias_hh_l0.zero_()
        return _torch_last_output(layer, d["x"])

    flops = 2.0 * b * t * 4 * u * (f + u)
    desc = f"B {b}, T {t}, F {f}, U {u}"
    return Case(cid, "lstm", desc, flops, make, call, torch_prepare, quick, ort_prepare)


def _torch_last_output(layer, x):
    """A call of a torch recurrent layer (eval mode, no grad) returning the last step's output,
    which is what the Keras layers return without return_sequences."""
    layer.eval()
    xt = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            out, _ = layer(xt)
        return out[:, -1]

    return run


def _gru_case(cid, b, t, f, u, quick=True):
    """Keras GRU (reset_after=True, the default) against torch.nn.GRU, which computes the same
    thing with the gate blocks ordered (r, z, n) instead of [z | r | h]."""
    make, call, ort_prepare = _recurrent_make_call(fl.layers.GRU, 3, (2, 3 * u), b, t, f, u)

    def torch_prepare(d):
        layer = torch.nn.GRU(f, u, batch_first=True)
        order = np.r_[u : 2 * u, 0:u, 2 * u : 3 * u]  # [z r h] -> (r, z, n)

        def t_(a):
            return torch.from_numpy(np.ascontiguousarray(a))

        with torch.no_grad():
            layer.weight_ih_l0.copy_(t_(d["kernel"][:, order].T))
            layer.weight_hh_l0.copy_(t_(d["recurrent_kernel"][:, order].T))
            layer.bias_ih_l0.copy_(t_(d["bias"][0, order]))
            layer.bias_hh_l0.copy_(t_(d["bias"][1, order]))
        return _torch_last_output(layer, d["x"])

    flops = 2.0 * b * t * 3 * u * (f + u)
    desc = f"B {b}, T {t}, F {f}, U {u}"
    return Case(cid, "gru", desc, flops, make, call, torch_prepare, quick, ort_prepare)


def _simple_rnn_case(cid, b, t, f, u, quick=True):
    """Keras SimpleRNN (tanh) against torch.nn.RNN, which computes the same with the bias
    split in two (b_ih + b_hh)."""
    make, call, ort_prepare = _recurrent_make_call(fl.layers.SimpleRNN, 1, (u,), b, t, f, u)

    def torch_prepare(d):
        layer = torch.nn.RNN(f, u, batch_first=True)
        with torch.no_grad():  # Keras -> torch: W_ih = kernel^T, W_hh = rk^T
            layer.weight_ih_l0.copy_(torch.from_numpy(d["kernel"].T.copy()))
            layer.weight_hh_l0.copy_(torch.from_numpy(d["recurrent_kernel"].T.copy()))
            layer.bias_ih_l0.copy_(torch.from_numpy(d["bias"]))
            layer.bias_hh_l0.zero_()
        return _torch_last_output(layer, d["x"])

    flops = 2.0 * b * t * u * (f + u)
    desc = f"B {b}, T {t}, F {f}, U {u}"
    return Case(cid, "simple_rnn", desc, flops, make, call, torch_prepare, quick, ort_prepare)


def _sdpa_case(cid, b, h, t, s, d, causal=False, quick=True):
    def make(rng):
        return {
            "q": _rand(rng, b, h, t, d),
            "k": _rand(rng, b, h, s, d),
            "v": _rand(rng, b, h, s, d),
        }

    def call(x):
        return fl.scaled_dot_product_attention(x["q"], x["k"], x["v"], is_causal=causal)

    def torch_prepare(x):
        q, k, v = (torch.from_numpy(x[n]) for n in "qkv")
        if causal and t != s:
            raise ValueError("torch's is_causal is top-left aligned only for T == S")
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def ort_prepare(x, threads):
        return ort.attention(x["q"], x["k"], x["v"], causal, threads)

    flops = 4.0 * b * h * t * s * d * (0.5 if causal else 1.0)
    desc = f"B {b}, H {h}, T {t}, S {s}, D {d}" + (", causal" if causal else "")
    return Case(
        cid, "scaled_dot_product_attention", desc, flops, make, call, torch_prepare, quick,
        ort_prepare,
    )


def _softmax_case(cid, rows, n, quick=True):
    def make(rng):
        return {"x": _rand(rng, rows, n, scale=3.0)}

    def call(d):
        return fl.softmax(d["x"])

    def torch_prepare(d):
        x = torch.from_numpy(d["x"])
        return lambda: torch.softmax(x, dim=-1)

    def ort_prepare(d, threads):
        return ort.softmax(d["x"], threads)

    # About 4 flops an element (subtract, exp, add, multiply); exp counts as one.
    return Case(
        cid,
        "softmax",
        f"x ({rows}, {n}), last axis",
        4.0 * rows * n,
        make,
        call,
        torch_prepare,
        quick,
        ort_prepare,
    )


def _rms_norm_case(cid, rows, n, quick=True):
    def make(rng):
        return {"x": _rand(rng, rows, n), "scale": _rand(rng, n) + F32(1.0)}

    def call(d):
        layer = d.get("layer")
        if layer is None:
            layer = d["layer"] = fl.layers.RMSNormalization(epsilon=1e-6)
            layer.set_weights([d["scale"]])
        return layer(d["x"])

    def torch_prepare(d):
        x, w = torch.from_numpy(d["x"]), torch.from_numpy(d["scale"])
        return lambda: F.rms_norm(x, (n,), w, 1e-6)

    # About 4 flops an element (square, add; multiply twice).
    return Case(cid, "rms_norm", f"x ({rows}, {n}), last axis, scale", 4.0 * rows * n, make,
                call, torch_prepare, quick)


def _resize_case(cid, n, h, w, c, oh, ow, antialias, quick=True):
    def make(rng):
        return {"x": _rand(rng, n, h, w, c)}

    def call(d):
        layer = d.get("layer")
        if layer is None:  # made once, as a model holds it
            layer = d["layer"] = fl.layers.Resizing(oh, ow, antialias=antialias)
        return layer(d["x"])

    def torch_prepare(d):
        x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2)  # channels_last memory, as ours
        return lambda: F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False,
                                     antialias=antialias).permute(0, 2, 3, 1)

    def taps(n_in, n_out):  # the multiply-adds along an axis, all outputs
        if not antialias:
            return 2 * n_out
        return int(resize._antialias_taps(n_in, n_out)[2].sum())

    # A multiply-add per tap: columns on (n, h, ow, c), then rows on (n, oh, ow, c).
    flops = 2.0 * n * c * (h * taps(w, ow) + ow * taps(h, oh))
    desc = f"({n}, {h}, {w}, {c}) -> {oh}x{ow}, bilinear{', antialias' if antialias else ''}"
    return Case(cid, "resize", desc, flops, make, call, torch_prepare, quick)


def _dwconv_case(cid, n, h, w, c, k, quick=True):
    """A 3x3-style depthwise conv, 'same', multiplier 1, relu (MobileNet's blocks)."""

    def make(rng):
        d = {
            "x": _rand(rng, n, h, w, c),
            "kernel": _rand(rng, k, k, c, 1, scale=1 / k),
            "bias": _rand(rng, c),
        }
        d["layer"] = fl.layers.DepthwiseConv2D(k, padding="same", activation="relu")
        d["layer"].set_weights([d["kernel"], d["bias"]])
        return d

    def call(d):
        return d["layer"](d["x"])

    def torch_prepare(d):
        cl = torch.channels_last
        x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2).contiguous(memory_format=cl)
        wt = torch.from_numpy(d["kernel"]).permute(2, 3, 0, 1).contiguous()  # (c, 1, k, k)
        b = torch.from_numpy(d["bias"])

        def run():
            y = torch.relu(F.conv2d(x, wt, b, padding=k // 2, groups=c))
            return y.permute(0, 2, 3, 1)

        return run

    flops = 2.0 * n * h * w * c * k * k
    desc = f"({n}, {h}, {w}, {c}), {k}x{k} depthwise, same"
    return Case(cid, "conv2d", desc, flops, make, call, torch_prepare, quick)  # groups = C


# The shapes whose time the FMA units bound (enough multiply-adds per byte moved, inputs
# reused from cache): every GEMM, dense with 64+ rows, the convs but the seed article's
# 8-filter toy and the depthwise ones (9 multiply-adds per input value read), the batched
# recurrent layers and long attention. dense-1, lstm-b1, gru-b1 and
# rnn-b1 stream their weights from memory or L2 once per row or step, the decode shapes their
# K and V once per call; attn-64's heads are short (64 x 64: per-head costs count); the seed
# shapes and softmax measure per-call overhead and memory.
COMPUTE_BOUND_IDS = frozenset(
    {
        "gemm-256",
        "gemm-1024",
        "gemm-2048",
        "dense-64",
        "dense-256",
        "conv-res",
        "conv-b8",
        "conv-stem",
        "conv-dil",
        "convT-k2",
        "convT-k4",
        "conv-1x1",
        "lstm-b32",
        "lstm-b64",
        "gru-b32",
        "gru-b64",
        "rnn-b32",
        "attn-256",
        "attn-1024",
        "attn-1024c",
    }
)


def all_cases() -> list[Case]:
    """The public shapes of docs/benchmarks.md §7, in its order."""
    return [
        _dense_case("gemm-256", 256, 256, 256, None),
        _dense_case("gemm-1024", 1024, 1024, 1024, None),
        _dense_case("gemm-2048", 2048, 2048, 2048, None, quick=False),
        _dense_case("dense-1", 1, 784, 512, "relu"),
        _dense_case("dense-64", 64, 784, 512, "relu"),
        _dense_case("dense-256", 256, 1024, 1024, "relu"),
        _conv_case("conv-seed", 4, 32, 32, 3, 8, 3),
        _conv_case("conv-res", 1, 56, 56, 64, 64, 3, padding="same"),
        _conv_case("conv-b8", 8, 28, 28, 32, 64, 3, padding="same"),
        _conv_case("conv-stem", 1, 224, 224, 3, 32, 3, stride=2, padding="same"),
        _conv_case("conv-dil", 1, 56, 56, 64, 64, 3, padding="same", dilation=2),
        _conv_case("conv-1x1", 1, 28, 28, 256, 256, 1),
        # Added (docs/benchmarks.md §7): MobileNet's depthwise convs, a large map with few
        # channels and a batch of small maps with many.
        _dwconv_case("dwconv-112", 1, 112, 112, 32, 3),
        _dwconv_case("dwconv-14", 8, 14, 14, 512, 3),
        _lstm_case("lstm-seed", 4, 3, 2, 8),
        _lstm_case("lstm-b32", 32, 100, 64, 128),
        _lstm_case("lstm-b1", 1, 200, 128, 256),
        _lstm_case("lstm-b64", 64, 50, 256, 512, quick=False),
        # Added (docs/benchmarks.md §7): the LSTM shapes for the GRU (reset_after, vs torch.nn.GRU).
        _gru_case("gru-seed", 4, 3, 2, 8),
        _gru_case("gru-b32", 32, 100, 64, 128),
        _gru_case("gru-b1", 1, 200, 128, 256),
        _gru_case("gru-b64", 64, 50, 256, 512, quick=False),
        # Added (docs/benchmarks.md §7): the LSTM shapes for SimpleRNN (vs torch.nn.RNN).
        _simple_rnn_case("rnn-b32", 32, 100, 64, 128),
        _simple_rnn_case("rnn-b1", 1, 200, 128, 256),
        _sdpa_case("attn-seed", 4, 1, 16, 1, 4),
        _sdpa_case("attn-256", 8, 8, 256, 256, 64),
        _sdpa_case("attn-1024", 1, 12, 1024, 1024, 64, quick=False),
        _sdpa_case("attn-1024c", 1, 12, 1024, 1024, 64, causal=True, quick=False),
        # Added (docs/benchmarks.md §7): issue 6's short sequences with many heads.
        _sdpa_case("attn-64", 8, 16, 64, 64, 64),
        # Added (docs/benchmarks.md §7): decode, a few queries over a long key sequence (the
        # decode driver; bound by bandwidth: K and V are read once per call).
        _sdpa_case("decode-t1", 1, 8, 1, 4096, 64),
        _sdpa_case("decode-t4", 1, 8, 4, 1024, 64),
        # Added (docs/benchmarks.md §7): transposed convolutions of U-Net decoders.
        _conv_transpose_case("convT-k2", 1, 32, 32, 256, 128, 2, 2, "valid"),
        _conv_transpose_case("convT-k4", 1, 64, 64, 64, 32, 4, 2, "same"),
        # Added (docs/benchmarks.md §7): the softmax inside attn-256, and a tiny call (overhead).
        _softmax_case("softmax-attn256", 8 * 8 * 256, 256),
        _softmax_case("softmax-1x64", 1, 64),
        # Added (docs/benchmarks.md §7): a transformer's RMSNormalization and an image model's
        # input Resizing, plain and antialiased (memory-bound).
        _rms_norm_case("rmsnorm-768", 32 * 128, 768),
        _resize_case("resize-112", 4, 224, 224, 3, 112, 112, False),
        _resize_case("resize-aa96", 4, 224, 224, 3, 96, 96, True),
    ]
