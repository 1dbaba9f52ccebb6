"""Model-level benchmark cases (docs/benchmarks.md §12): whole Keras models, each at batch 1
(latency) and batch 64 (throughput).

Paths:

- ``numpy`` / ``cpp``: the model as a fastlayers user has it: the Keras model saved to a
  ``.keras`` file in a temporary directory and read back with ``fastlayers.load_model``
  (without Keras, the same architecture built with fastlayers' functional API and its own
  initial weights); called as ``model(x)`` with that backend forced;
- ``keras``: the Keras 3 model itself on its torch backend, ``model(x, training=False)``
  under ``torch.no_grad()`` (a plain call would also record autograd history);
- ``keras-predict``: ``model.predict(x, batch_size=len(x), verbose=0)``, one batch;
- ``torch``: the same model written in PyTorch (``eval()``, ``torch.inference_mode()``) with
  the same weights, converted once outside the timed loop.

Every path's outputs are compared with the NumPy path's (all of a model's outputs) before
anything is timed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

import fastlayers as fl

from .cases import F, torch

F32 = np.float32
FASTLAYERS_PATHS = ("numpy", "cpp")
KERAS_PATHS = ("keras", "keras-predict")

_KERAS: list[Any] = []  # [module or None, error or None], filled on first use


def keras_module() -> tuple[Any, str | None]:
    """``(keras, None)`` with Keras 3 imported on the torch backend (KERAS_BACKEND is set to
    ``torch`` unless already set), or ``(None, reason)``."""
    if not _KERAS:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        try:
            import keras

            _KERAS[:] = [keras, None]
        except Exception as exc:  # pragma: no cover - depends on the environment
            _KERAS[:] = [None, f"{type(exc).__name__}: {exc}".splitlines()[0]]
    return _KERAS[0], _KERAS[1]


def keras_line() -> str | None:
    """The header's line on the Keras peer, or None without Keras."""
    keras, _ = keras_module()
    if keras is None:
        return None
    return f"{keras.__version__}, backend {keras.backend.backend()}"


# ------------------------------------------------------------------------ architectures
#
# Each builder takes a namespace ``ns`` (Input, Model, layers, matmul_t, softmax) so that
# one function builds the Keras model and the fastlayers model alike. Every layer with
# weights is named: the PyTorch versions fetch their weights by layer name.


def _seed_dense(ns):
    # The seed article's fully connected example: Dense acts on the last axis of images.
    inp = ns.Input(shape=(32, 32, 3))
    hidden = ns.layers.Dense(8, activation="relu", name="hidden")(inp)
    out = ns.layers.Dense(2, name="out")(ns.layers.Flatten()(hidden))
    return ns.Model(inp, out)


def _seed_conv(ns):
    inp = ns.Input(shape=(32, 32, 3))
    conv = ns.layers.Conv2D(8, (3, 3), activation="relu", name="conv")(inp)
    out = ns.layers.Dense(2, name="out")(ns.layers.Flatten()(conv))
    return ns.Model(inp, out)


def _seed_lstm(ns):
    inp = ns.Input(shape=(5, 2))
    seq, h, c = ns.layers.LSTM(8, return_state=True, name="lstm")(inp)
    out = ns.layers.Dense(2, name="out")(seq)
    return ns.Model(inp, [out, h, c])


def _seed_attention(ns):
    # The seed's single head without scaling: scores q k^T, softmax, times v.
    q_in = ns.Input(shape=(None, 32))
    k_in = ns.Input(shape=(None, 32))
    v_in = ns.Input(shape=(1, 32))
    q = ns.layers.Dense(4, name="q")(q_in)
    k = ns.layers.Dense(4, name="k")(k_in)
    v = ns.layers.Dense(4, name="v")(v_in)
    score = ns.matmul_t(q, k)
    attention = ns.softmax(score)
    output = ns.matmul(attention, v)
    return ns.Model([q_in, k_in, v_in], [score, attention, output])


def _small_cnn(ns):
    L = ns.layers
    inp = ns.Input(shape=(32, 32, 3))
    x = L.Conv2D(32, 3, activation="relu", name="conv1")(inp)
    x = L.MaxPooling2D(name="pool1")(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(name="pool2")(x)
    x = L.Dense(128, activation="relu", name="fc1")(L.Flatten()(x))
    return ns.Model(inp, L.Dense(10, activation="softmax", name="fc2")(x))


TEXT_VOCAB, TEXT_EMBED, TEXT_STEPS, TEXT_UNITS = 20000, 128, 100, 64


def _text_bilstm(ns):
    L = ns.layers
    inp = ns.Input(shape=(TEXT_STEPS,), dtype="int32")
    x = L.Embedding(TEXT_VOCAB, TEXT_EMBED, mask_zero=True, name="embed")(inp)
    x = L.Bidirectional(L.LSTM(TEXT_UNITS), name="bilstm")(x)
    return ns.Model(inp, L.Dense(1, activation="sigmoid", name="out")(x))


ENC_STEPS, ENC_DIM, ENC_HEADS, ENC_FFN = 128, 256, 4, 1024


def _transformer_encoder(ns):
    # Post-norm encoder block: self-attention + residual + LayerNormalization, then a
    # Dense FFN (gelu) + residual + LayerNormalization.
    L = ns.layers
    inp = ns.Input(shape=(ENC_STEPS, ENC_DIM))
    att = L.MultiHeadAttention(ENC_HEADS, ENC_DIM // ENC_HEADS, name="mha")(inp, inp)
    h = L.LayerNormalization(name="ln1")(L.Add(name="res1")([inp, att]))
    f = L.Dense(ENC_FFN, activation="gelu", name="ffn1")(h)
    f = L.Dense(ENC_DIM, name="ffn2")(f)
    return ns.Model(inp, L.LayerNormalization(name="ln2")(L.Add(name="res2")([h, f])))


# ------------------------------------------------------------------------ inputs


def _images(rng, batch):
    return [rng.random((batch, 32, 32, 3)).astype(F32)]


def _seed_sequence(rng, batch):
    # The article's (1, 5, 2) sequence, then random rows of the same scale.
    x = rng.random((batch, 5, 2)).astype(F32)
    x[0] = np.array([[0, 0], [2, 20], [4, 40], [6, 60], [8, 80]], F32) / 100.0
    return [x]


def _seed_qkv(rng, batch):
    return [rng.random((batch, 16, 32)).astype(F32), rng.random((batch, 1, 32)).astype(F32),
            rng.random((batch, 1, 32)).astype(F32)]


def _sequence(rng, batch):
    return [rng.standard_normal((batch, ENC_STEPS, ENC_DIM)).astype(F32)]


def _token_ids(rng, batch):
    """Token ids padded at the end with 0 (``pad_sequences(padding="post")``), lengths
    20..100 (the first row 73 long, so batch 1 has padding too)."""
    lengths = rng.integers(20, TEXT_STEPS + 1, size=batch)
    lengths[0] = 73
    ids = rng.integers(1, TEXT_VOCAB, size=(batch, TEXT_STEPS)).astype(np.int32)
    ids[np.arange(TEXT_STEPS)[None, :] >= lengths[:, None]] = 0
    return [ids]


# ------------------------------------------------------------------------ PyTorch versions
#
# ``w(name)`` gives a layer's Keras weights (a list of arrays). Each returns a function of
# the input tensors (NHWC images as Keras has them; the convs view them as NCHW tensors in
# channels_last memory, which is the same bytes) returning the outputs.


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _linear(ws):
    return _t(ws[0].T), _t(ws[1])


def _torch_seed_dense(w):
    w1, b1 = _linear(w("hidden"))
    w2, b2 = _linear(w("out"))

    def run(x):
        h = torch.relu(F.linear(x, w1, b1))
        return F.linear(h.reshape(h.shape[0], -1), w2, b2)

    return run


def _conv_weight(k):
    return _t(k).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)


def _nhwc_flat(y):
    # (B, C, H, W) in channels_last memory -> Keras's Flatten order (H, W, C): a view.
    return y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)


def _torch_seed_conv(w):
    kc, bc = w("conv")
    kc, bc = _conv_weight(kc), _t(bc)
    w2, b2 = _linear(w("out"))

    def run(x):
        y = torch.relu(F.conv2d(x.permute(0, 3, 1, 2), kc, bc))
        return F.linear(_nhwc_flat(y), w2, b2)

    return run


def _torch_lstm(ws, units, bidirectional=False):
    """nn.LSTM from Keras LSTM weights (one or two directions): W_ih = kernel^T,
    W_hh = recurrent_kernel^T, bias_ih = bias, bias_hh = 0; gate order i, f, c, o in both."""
    f = ws[0].shape[0]
    layer = torch.nn.LSTM(f, units, batch_first=True, bidirectional=bidirectional)
    with torch.no_grad():
        for i, suffix in enumerate(["", "_reverse"][: 1 + bidirectional]):
            k, rk, b = ws[3 * i: 3 * i + 3]
            getattr(layer, f"weight_ih_l0{suffix}").copy_(_t(k.T))
            getattr(layer, f"weight_hh_l0{suffix}").copy_(_t(rk.T))
            getattr(layer, f"bias_ih_l0{suffix}").copy_(_t(b))
            getattr(layer, f"bias_hh_l0{suffix}").zero_()
    return layer.eval()


def _torch_seed_lstm(w):
    lstm = _torch_lstm(w("lstm"), 8)
    w2, b2 = _linear(w("out"))

    def run(x):
        _, (h, c) = lstm(x)
        return F.linear(h[0], w2, b2), h[0], c[0]

    return run


def _torch_seed_attention(w):
    (wq, bq), (wk, bk), (wv, bv) = (_linear(w(n)) for n in "qkv")

    def run(q, k, v):
        score = torch.matmul(F.linear(q, wq, bq), F.linear(k, wk, bk).transpose(1, 2))
        attention = torch.softmax(score, dim=-1)
        return score, attention, torch.matmul(attention, F.linear(v, wv, bv))

    return run


def _torch_small_cnn(w):
    (k1, b1), (k2, b2) = w("conv1"), w("conv2")
    k1, b1, k2, b2 = _conv_weight(k1), _t(b1), _conv_weight(k2), _t(b2)
    (w3, b3), (w4, b4) = _linear(w("fc1")), _linear(w("fc2"))

    def run(x):
        y = F.max_pool2d(torch.relu(F.conv2d(x.permute(0, 3, 1, 2), k1, b1)), 2)
        y = F.max_pool2d(torch.relu(F.conv2d(y, k2, b2)), 2)
        y = torch.relu(F.linear(_nhwc_flat(y), w3, b3))
        return torch.softmax(F.linear(y, w4, b4), dim=-1)

    return run


def _torch_text_bilstm(w):
    (table,) = w("embed")
    table = _t(table)
    lstm = _torch_lstm(w("bilstm"), TEXT_UNITS, bidirectional=True)
    w2, b2 = _linear(w("out"))
    pack = torch.nn.utils.rnn.pack_padded_sequence

    def run(ids):
        # Keras's mask_zero skips the padding steps; PyTorch's packed sequences do the same.
        lengths = (ids != 0).sum(dim=1)
        packed = pack(F.embedding(ids.long(), table), lengths, batch_first=True,
                      enforce_sorted=False)
        _, (h, _) = lstm(packed)
        return torch.sigmoid(F.linear(torch.cat([h[0], h[1]], dim=1), w2, b2))

    return run


def _torch_transformer_encoder(w):
    """nn.TransformerEncoderLayer (post-norm, batch_first, no dropout; in eval mode under
    inference_mode PyTorch runs its fused encoder kernel) with the Keras weights:
    MultiHeadAttention's (256, 4, 64) kernels as (256, 256) matrices, Keras's LayerNormalization
    epsilon 1e-3."""
    layer = torch.nn.TransformerEncoderLayer(
        ENC_DIM, ENC_HEADS, ENC_FFN, dropout=0.0, activation="gelu", layer_norm_eps=1e-3,
        batch_first=True)
    qk, qb, kk, kb, vk, vb, ok, ob = w("mha")

    def proj(k):  # (d_model, heads, head_dim) -> nn.Linear's (out, in)
        return k.reshape(ENC_DIM, ENC_DIM).T

    with torch.no_grad():
        att = layer.self_attn
        att.in_proj_weight.copy_(_t(np.concatenate([proj(qk), proj(kk), proj(vk)])))
        att.in_proj_bias.copy_(_t(np.concatenate([qb.ravel(), kb.ravel(), vb.ravel()])))
        att.out_proj.weight.copy_(_t(ok.reshape(ENC_DIM, ENC_DIM).T))
        att.out_proj.bias.copy_(_t(ob))
        for lin, name in ((layer.linear1, "ffn1"), (layer.linear2, "ffn2")):
            kernel, bias = w(name)
            lin.weight.copy_(_t(kernel.T))
            lin.bias.copy_(_t(bias))
        for norm, name in ((layer.norm1, "ln1"), (layer.norm2, "ln2")):
            gamma, beta = w(name)
            norm.weight.copy_(_t(gamma))
            norm.bias.copy_(_t(beta))
    layer.eval()
    return layer


# ------------------------------------------------------------------------ the cases


@dataclass
class ModelSpec:
    name: str
    desc: str
    build: Callable[[Any], Any]
    inputs: Callable[[np.random.Generator, int], list[np.ndarray]]
    torch_model: Callable[[Callable[[str], list[np.ndarray]]], Callable[..., Any]]


SPECS = [
    ModelSpec("seed-dense", "seed: Dense 8 relu on (32, 32, 3), Flatten, Dense 2",
              _seed_dense, _images, _torch_seed_dense),
    ModelSpec("seed-conv", "seed: Conv2D 8 3x3 relu on (32, 32, 3), Flatten, Dense 2",
              _seed_conv, _images, _torch_seed_conv),
    ModelSpec("seed-lstm", "seed: LSTM 8 (state out) on (5, 2), Dense 2",
              _seed_lstm, _seed_sequence, _torch_seed_lstm),
    ModelSpec("seed-attention", "seed: 1 head, q (16, 32), k/v (1, 32), d 4",
              _seed_attention, _seed_qkv, _torch_seed_attention),
    ModelSpec("cnn", "(32, 32, 3): Conv 32, pool, Conv 64, pool, Dense 128, 10",
              _small_cnn, _images, _torch_small_cnn),
    ModelSpec("text-bilstm", "ids (100,): Embedding 20000x128 mask_zero, BiLSTM 64, Dense 1",
              _text_bilstm, _token_ids, _torch_text_bilstm),
]
if hasattr(fl.layers, "LayerNormalization"):  # the normalization layers (issue 12)
    SPECS.append(ModelSpec(
        "transformer", "(128, 256): MHA 4 heads + res + LN, FFN 1024 gelu + res + LN",
        _transformer_encoder, _sequence, _torch_transformer_encoder))

BATCHES = (1, 64)


def _fl_namespace():
    return SimpleNamespace(
        Input=fl.Input, Model=fl.Model, layers=fl.layers, softmax=fl.softmax,
        matmul=fl.matmul, matmul_t=lambda a, b: fl.matmul(a, b, transpose_b=True),
    )


def _keras_namespace(keras):
    ops = keras.ops
    return SimpleNamespace(
        Input=keras.Input, Model=keras.Model, layers=keras.layers,
        softmax=lambda x: ops.softmax(x, axis=-1), matmul=ops.matmul,
        # One operation with inputs (q, k), as fl.matmul(q, k, transpose_b=True) is.
        matmul_t=lambda a, b: ops.einsum("btd,bsd->bts", a, b),
    )


def _perturbed(weights, rng):
    """The initial weights with noise on every vector (biases, which start at zero), so
    that a bias mixed up between paths shows."""
    return [w + rng.normal(0.0, 0.05, w.shape).astype(w.dtype) if w.ndim == 1 else w
            for w in weights]


@dataclass
class BuiltModel:
    """One architecture, built once for all its cases: the fastlayers model, the Keras
    model (or None), and the layer weights by name for the PyTorch version."""

    fl_model: Any
    keras_model: Any
    weights_by_layer: dict[str, list[np.ndarray]]


_BUILT: dict[str, BuiltModel] = {}


def build(spec: ModelSpec, seed: int = 0) -> BuiltModel:
    """The architecture of ``spec`` as Keras and fastlayers models with the same weights."""
    if spec.name in _BUILT:
        return _BUILT[spec.name]
    rng = np.random.default_rng(seed)
    keras, _ = keras_module()
    kmodel = None
    if keras is not None:
        keras.utils.set_random_seed(seed)
        kmodel = spec.build(_keras_namespace(keras))
        kmodel.set_weights(_perturbed(kmodel.get_weights(), rng))
        with tempfile.TemporaryDirectory(prefix="fastlayers-bench-") as tmp:
            path = os.path.join(tmp, f"{spec.name}.keras")
            kmodel.save(path)
            model = fl.load_model(path)  # what a user does with a trained model
        by_layer = {layer.name: [np.asarray(w) for w in layer.get_weights()]
                    for layer in kmodel.layers}
    else:
        model = spec.build(_fl_namespace())
        model.set_weights(_perturbed(model.get_weights(), rng))
        by_layer = {layer.name: layer.get_weights() for layer in model.layers}
    _BUILT[spec.name] = BuiltModel(model, kmodel, by_layer)
    return _BUILT[spec.name]


def _as_list(out) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _to_numpy(a) -> np.ndarray:
    if torch is not None and isinstance(a, torch.Tensor):
        return a.detach().cpu().contiguous().numpy()
    return np.asarray(a)


# Float32 models: every path rounds differently (summation order, exp/tanh, fused kernels);
# errors grow with depth and steps, so the bound is relative to the largest output.
RTOL, ATOL = 2e-4, 2e-4


@dataclass
class ModelCase:
    """One architecture at one batch size; the same protocol as cases.Case (``id``,
    ``runner(path)``, ``call(inputs)``, ``inputs``) plus ``check_outputs``."""

    spec: ModelSpec
    batch: int
    quick: bool = True
    inputs: list[np.ndarray] = field(default_factory=list)
    built: BuiltModel | None = None

    @property
    def id(self) -> str:
        return f"model-{self.spec.name}-b{self.batch}"

    @property
    def desc(self) -> str:
        return self.spec.desc

    def setup(self, seed: int = 0) -> None:
        if self.built is None:
            self.built = build(self.spec, seed)
            self.inputs = self.spec.inputs(np.random.default_rng(seed + 1), self.batch)

    def _fl_input(self):
        return self.inputs[0] if len(self.inputs) == 1 else list(self.inputs)

    def call(self, inputs=None) -> Any:
        """The fastlayers model on the case's inputs, on the current backend."""
        return self.built.fl_model(self._fl_input())

    def runner(self, path: str, threads: int | None = None) -> Callable[[], Any] | None:
        """A no-argument callable running this case on ``path``, or None if unavailable
        (``ort`` has no model cases). ``threads``: the threads set already serve."""
        self.setup()
        if path in FASTLAYERS_PATHS:
            if path == "cpp" and not fl.core_available():
                return None

            def run(path=path):
                with fl.use_backend(path):
                    return self.call()

            return run
        if path in KERAS_PATHS:
            kmodel = self.built.keras_model
            if kmodel is None:
                return None
            x = self._fl_input()
            if path == "keras":

                def run_keras():
                    with torch.no_grad():
                        return kmodel(x, training=False)

                return run_keras
            return lambda: kmodel.predict(x, batch_size=self.batch, verbose=0)
        if path == "torch":
            if torch is None:
                return None
            fn = self.spec.torch_model(self.built.weights_by_layer.__getitem__)
            xs = [torch.from_numpy(a) for a in self.inputs]

            def run_torch():
                with torch.inference_mode():
                    return fn(*xs)

            return run_torch
        if path == "ort":
            return None
        raise ValueError(f"unknown path {path!r}")

    def check_outputs(self, path: str, result: Any, reference: Any) -> None:
        """Assert that every output of ``path`` matches the reference path's."""
        got, want = _as_list(result), _as_list(reference)
        assert len(got) == len(want), f"{self.id}/{path}: {len(got)} outputs, not {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            g, w = _to_numpy(g), np.asarray(w)
            assert g.shape == w.shape, f"{self.id}/{path} output {i}: {g.shape} != {w.shape}"
            scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
            np.testing.assert_allclose(
                g, w, rtol=RTOL, atol=ATOL * scale, err_msg=f"{self.id} on {path}, output {i}"
            )


def model_cases() -> list[ModelCase]:
    """Every architecture of docs/benchmarks.md §12 at batch 1 and batch 64."""
    return [ModelCase(spec, b) for spec in SPECS for b in BATCHES]
