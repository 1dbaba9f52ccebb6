"""fastlayers.layers: Keras golden fixtures, agreement with the functional ops, weights,
initializers, building, stateful RNNs and bad arguments.

The fixtures (tests/golden/layers.npz, made by tests/golden/make_golden_layers.py)
hold Keras layers run with weights set by set_weights. Comparisons run on every
backend that serves the layer's underlying op (``backends_for``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close_to_keras, backends_for, cpp_serves, run_on

import fastlayers
import fastlayers.functional as F
from fastlayers import layers as L

F32 = np.float32
GOLDEN = Path(__file__).parent / "golden" / "layers.npz"

# the functional op a layer class runs (Bidirectional: its inner layer's)
OPS = {
    "Dense": "dense",
    "Flatten": "flatten",
    "Conv2D": "conv2d",
    "LSTM": "lstm",
    "GRU": "gru",
    "Attention": "attention",
    "AdditiveAttention": "additive_attention",
    "MultiHeadAttention": "multi_head_attention",
    "Softmax": "softmax",
}


# --------------------------------------------------------------------------- fixtures


def _load_cases():
    with np.load(GOLDEN, allow_pickle=False) as data:
        files = {k: data[k] for k in data.files}
    cases = {}
    for name in sorted({k.split(".", 1)[0] for k in files if not k.startswith("__")}):
        weights, inputs, lists, outs = {}, {}, {}, {}
        for key, value in files.items():
            parts = key.split(".")
            if parts[0] != name:
                continue
            if parts[1] == "weights":
                weights[int(parts[2])] = value
            elif parts[1] == "inputs" and len(parts) == 3:
                inputs[parts[2]] = value
            elif parts[1] == "inputs":
                lists.setdefault(parts[2], {})[int(parts[3])] = value
            elif parts[1] == "out":
                outs[int(parts[2])] = value
        for arg, items in lists.items():
            inputs[arg] = [items[i] for i in sorted(items)]
        cases[name] = {
            "layer": str(files[f"{name}.layer"]),
            "config": json.loads(str(files[f"{name}.config"])),
            "call": json.loads(str(files[f"{name}.call"])),
            "weights": [weights[i] for i in sorted(weights)],
            "inputs": inputs,
            "outputs": [outs[i] for i in sorted(outs)],
        }
    return cases


CASES = _load_cases()


def _op(case):
    if case["layer"] == "Bidirectional":
        return OPS[case["config"]["layer"]["class_name"]]
    return OPS[case["layer"]]


def _make(case):
    return getattr(L, case["layer"]).from_config(case["config"])


def _calls(case):
    """[(inputs, call kwargs)] for each call of the case (stateful cases call several times)."""
    call = dict(case["call"])
    seq = call.pop("sequential_calls", None)
    if seq:
        return [({**case["inputs"], seq: x}, call) for x in case["inputs"][seq]]
    return [(case["inputs"], call)]


def _flat(result):
    return list(result) if isinstance(result, tuple) else [result]


def _run_case(layer, case):
    outs = []
    for inputs, call in _calls(case):
        outs.extend(_flat(layer(**inputs, **call)))
    return outs


def _assert_keras_close(got, want, what=""):
    assert got.dtype == F32, f"{what}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, Keras {want.shape}"
    assert_close_to_keras(got, want, err_msg=what)


def _fresh_run(case):
    layer = _make(case)
    layer.set_weights(case["weights"])
    return _run_case(layer, case)


def _golden_params():
    for name, case in CASES.items():
        for backend in backends_for(_op(case)):
            if backend == "cpp" and not cpp_serves(_fresh_run, case):
                continue  # e.g. Softmax with a mask; refusals are tested in test_runtime.py
            yield pytest.param(backend, name, id=f"{name}-{backend}")


def test_fixtures_cover_every_layer_class():
    classes = {c["layer"] for c in CASES.values()}
    assert classes == set(OPS) | {"Bidirectional"}
    bidi = [c for c in CASES.values() if c["layer"] == "Bidirectional"]
    merges = {
        (c["config"]["layer"]["class_name"], c["config"].get("merge_mode", "concat")) for c in bidi
    }
    assert merges == {
        (cls, m) for cls in ("LSTM", "GRU") for m in ("concat", "sum", "ave", "mul", None)
    }
    assert any("backward_layer" in c["config"] for c in bidi)
    assert any(c["call"].get("sequential_calls") for c in CASES.values() if c["layer"] == "LSTM")
    assert GOLDEN.stat().st_size < 300_000


@pytest.mark.parametrize("backend,name", list(_golden_params()))
def test_matches_keras(backend, name):
    case = CASES[name]
    outs = run_on(backend, _fresh_run, case)
    assert len(outs) == len(case["outputs"]), f"{len(outs)} outputs, Keras {len(case['outputs'])}"
    for i, (got, want) in enumerate(zip(outs, case["outputs"])):
        _assert_keras_close(got, want, f"{name} output {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_lazy_build_gives_keras_weight_shapes(name):
    """Built by its first call (no set_weights), a layer has Keras's weights, in order."""
    case = CASES[name]
    layer = _make(case)
    assert not layer.built and layer.get_weights() == []
    inputs, call = _calls(case)[0]
    with fastlayers.use_backend("numpy"):
        layer(**inputs, **call)
    assert layer.built
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in case["weights"]]
    assert all(w.dtype == F32 for w in layer.get_weights())


@pytest.mark.parametrize("name", sorted(CASES))
def test_set_weights_on_unbuilt_layer_builds_it(name):
    case = CASES[name]
    layer = _make(case)
    layer.set_weights(case["weights"])
    assert layer.built
    for got, want in zip(layer.get_weights(), case["weights"]):
        np.testing.assert_array_equal(got, want)


# -------------------------------------------------------- agreement with functional ops


def _uniform(rng, shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(F32)


def _randomize(layer, rng):
    layer.set_weights([_uniform(rng, w.shape, -0.5, 0.5) for w in layer.get_weights()])


@pytest.mark.parametrize("backend", backends_for("dense"))
def test_dense_is_the_dense_op(backend, rng):
    x = _uniform(rng, (2, 3, 5))
    layer = L.Dense(4, activation="tanh")
    layer(x)
    _randomize(layer, rng)
    k, b = layer.get_weights()
    np.testing.assert_array_equal(
        run_on(backend, layer, x), run_on(backend, F.dense, x, k, b, "tanh")
    )
    nb = L.Dense(3, use_bias=False, seed=1)
    np.testing.assert_array_equal(
        run_on(backend, nb, x[0]), run_on(backend, F.dense, x[0], nb.kernel)
    )


@pytest.mark.parametrize("backend", backends_for("conv2d"))
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_is_the_conv2d_op(backend, data_format, rng):
    layer = L.Conv2D(
        6,
        (3, 2),
        strides=2,
        padding="same",
        groups=2,
        activation="relu",
        data_format=data_format,
        seed=3,
    )
    x = _uniform(rng, (2, 7, 6, 4))  # NHWC
    xin = x.transpose(0, 3, 1, 2) if data_format == "channels_first" else x
    got = run_on(backend, layer, xin)
    k, b = layer.get_weights()
    assert k.shape == (3, 2, 2, 6)  # the kernel layout does not depend on data_format
    want = run_on(
        backend, F.conv2d, x, k, b, strides=2, padding="same", groups=2, activation="relu"
    )
    if data_format == "channels_first":
        want = want.transpose(0, 3, 1, 2)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_flatten_is_the_flatten_op(rng):
    x = _uniform(rng, (2, 3, 4, 5))
    np.testing.assert_array_equal(L.Flatten()(x), F.flatten(x))
    np.testing.assert_array_equal(
        L.Flatten(data_format="channels_first")(x), F.flatten(np.moveaxis(x, 1, -1))
    )
    assert L.Flatten()(np.arange(3.0)).shape == (3, 1)


@pytest.mark.parametrize("backend", backends_for("lstm"))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_is_the_lstm_op(backend, go_backwards, return_sequences, rng):
    x = _uniform(rng, (3, 6, 4))
    mask = rng.random((3, 6)) > 0.3
    h0 = [_uniform(rng, (3, 5)), _uniform(rng, (3, 5))]
    layer = L.LSTM(
        5,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        activation="relu",
        seed=2,
    )
    layer(x)
    _randomize(layer, rng)
    got = run_on(backend, layer, x, initial_state=h0, mask=mask)
    want = run_on(
        backend,
        F.lstm,
        x,
        *layer.get_weights(),
        initial_state=h0,
        mask=mask,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        activation="relu",
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", backends_for("gru"))
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_is_the_gru_op(backend, reset_after, rng):
    x = _uniform(rng, (2, 5, 3))
    mask = rng.random((2, 5)) > 0.3
    layer = L.GRU(4, reset_after=reset_after, return_sequences=True, return_state=True, seed=0)
    layer(x)
    _randomize(layer, rng)
    assert layer.bias.shape == ((2, 12) if reset_after else (12,))
    h0 = _uniform(rng, (2, 4))
    got = run_on(backend, layer, x, initial_state=[h0], mask=mask)
    want = run_on(
        backend,
        F.gru,
        x,
        *layer.get_weights(),
        initial_state=h0,
        mask=mask,
        return_sequences=True,
        return_state=True,
        reset_after=reset_after,
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", backends_for("lstm"))
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional_is_two_lstm_ops(backend, merge_mode, rng):
    x = _uniform(rng, (3, 6, 4))
    mask = np.ones((3, 6), bool)
    mask[1, -2:] = False
    mask[2, :2] = False
    states = [_uniform(rng, (3, 5)) for _ in range(4)]
    layer = L.Bidirectional(
        L.LSTM(5, return_sequences=True, return_state=True), merge_mode=merge_mode
    )
    layer(x)
    _randomize(layer, rng)
    w = layer.get_weights()
    got = _flat(run_on(backend, layer, x, initial_state=states, mask=mask))
    y, hf, cf = run_on(
        backend,
        F.lstm,
        x,
        *w[:3],
        initial_state=states[:2],
        mask=mask,
        return_sequences=True,
        return_state=True,
    )
    yb, hb, cb = run_on(
        backend,
        F.lstm,
        x,
        *w[3:],
        initial_state=states[2:],
        mask=mask,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
    )
    y = np.where(mask[:, :, None], y, 0)  # masked steps output 0 inside Bidirectional
    yb = np.where(mask[:, :, None], yb[:, ::-1], 0)  # flipped back to input time
    merged = {
        "concat": [np.concatenate([y, yb], -1)],
        "sum": [y + yb],
        "ave": [(y + yb) / 2],
        "mul": [y * yb],
        None: [y, yb],
    }[merge_mode]
    want = merged + [hf, cf, hb, cb]
    assert len(got) == len(want)
    for g, ww in zip(got, want):
        assert g.dtype == F32
        np.testing.assert_allclose(g, ww, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", backends_for("attention"))
def test_attention_is_the_attention_op(backend, rng):
    q, v, k = _uniform(rng, (2, 3, 4)), _uniform(rng, (2, 5, 2)), _uniform(rng, (2, 5, 4))
    qm, vm = rng.random((2, 3)) > 0.3, rng.random((2, 5)) > 0.3
    layer = L.Attention(use_scale=True, score_mode="concat")
    layer.set_weights([np.float32(0.7), np.float32(1.3)])
    assert (layer.scale.shape, layer.concat_score_weight.shape) == ((), ())
    got = run_on(
        backend, layer, [q, v, k], mask=[qm, vm], return_attention_scores=True, use_causal_mask=True
    )
    want = run_on(
        backend,
        F.attention,
        q,
        v,
        k,
        scale=0.7,
        score_mode="concat",
        concat_score_weight=1.3,
        query_mask=qm,
        value_mask=vm,
        use_causal_mask=True,
        return_attention_scores=True,
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # a None entry in the mask list, and the default (no scale, dot) layer
    plain = L.Attention()
    np.testing.assert_array_equal(
        run_on(backend, plain, [q, v, k], mask=[None, vm]),
        run_on(backend, F.attention, q, v, k, value_mask=vm),
    )
    assert plain.get_weights() == []


@pytest.mark.parametrize("backend", backends_for("additive_attention"))
def test_additive_attention_is_the_op(backend, rng):
    q, v = _uniform(rng, (2, 3, 4)), _uniform(rng, (2, 5, 4))
    vm = rng.random((2, 5)) > 0.3
    layer = L.AdditiveAttention(seed=0)
    got = run_on(backend, layer, [q, v], mask=[None, vm])
    assert layer.scale.shape == (4,)
    want = run_on(backend, F.additive_attention, q, v, scale=layer.scale, value_mask=vm)
    np.testing.assert_array_equal(got, want)
    assert L.AdditiveAttention(use_scale=False).get_weights() == []


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
@pytest.mark.parametrize("use_bias", [True, False])
def test_multi_head_attention_is_the_op(backend, use_bias, rng):
    q, v, k = _uniform(rng, (2, 4, 6)), _uniform(rng, (2, 5, 3)), _uniform(rng, (2, 5, 2))
    vm = rng.random((2, 5)) > 0.2
    km = rng.random((2, 5)) > 0.2
    am = rng.random((2, 4, 5)) > 0.2
    layer = L.MultiHeadAttention(
        3, 2, value_dim=4, output_shape=7, use_bias=use_bias, sliding_window=3, seed=5
    )
    layer(q, v, k)
    _randomize(layer, rng)
    got = run_on(
        backend,
        layer,
        q,
        v,
        k,
        value_mask=vm,
        key_mask=km,
        attention_mask=am,
        return_attention_scores=True,
        use_causal_mask=True,
    )
    band = np.abs(np.arange(4)[:, None] - np.arange(5)[None, :]) < 3
    mask = am & vm[:, None, :] & km[:, None, :] & band
    w = dict(
        zip(
            [
                "query/kernel",
                "query/bias",
                "key/kernel",
                "key/bias",
                "value/kernel",
                "value/bias",
                "attention_output/kernel",
                "attention_output/bias",
            ]
            if use_bias
            else ["query/kernel", "key/kernel", "value/kernel", "attention_output/kernel"],
            layer.get_weights(),
        )
    )
    want = run_on(
        backend,
        F.multi_head_attention,
        q,
        v,
        k,
        query_kernel=w["query/kernel"],
        key_kernel=w["key/kernel"],
        value_kernel=w["value/kernel"],
        output_kernel=w["attention_output/kernel"],
        query_bias=w.get("query/bias"),
        key_bias=w.get("key/bias"),
        value_bias=w.get("value/bias"),
        output_bias=w.get("attention_output/bias"),
        attention_mask=mask,
        use_causal_mask=True,
        return_attention_scores=True,
    )
    for g, ww in zip(got, want):
        np.testing.assert_array_equal(g, ww)
    assert got[0].shape == (2, 4, 7) and got[1].shape == (2, 3, 4, 5)


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
def test_multi_head_attention_ignores_query_mask_like_keras(backend, rng):
    x = _uniform(rng, (2, 4, 6))
    layer = L.MultiHeadAttention(2, 3, seed=0)
    qm = np.zeros((2, 4), bool)
    np.testing.assert_array_equal(
        run_on(backend, layer, x, x, query_mask=qm), run_on(backend, layer, x, x)
    )


@pytest.mark.parametrize("backend", backends_for("multi_head_attention"))
def test_multi_head_attention_dropout_takes_the_softmax_path(backend, rng):
    """As Keras: with dropout > 0 a fully masked row attends to nothing (output = bias)."""
    q, v = _uniform(rng, (1, 3, 4)), _uniform(rng, (1, 5, 4))
    mask = np.ones((1, 3, 5), bool)
    mask[0, 1] = False
    fused = L.MultiHeadAttention(2, 2, seed=1)
    dropped = L.MultiHeadAttention(2, 2, dropout=0.5, seed=1)
    fused(q, v)
    _randomize(fused, rng)
    dropped.set_weights(fused.get_weights())
    a = run_on(backend, fused, q, v, attention_mask=mask)
    b = run_on(backend, dropped, q, v, attention_mask=mask)
    np.testing.assert_array_equal(a[0, [0, 2]], b[0, [0, 2]])
    np.testing.assert_allclose(b[0, 1], dropped.attention_output_bias, rtol=0, atol=1e-7)
    assert not np.allclose(a[0, 1], b[0, 1])


@pytest.mark.parametrize("backend", backends_for("softmax"))
def test_softmax_is_the_softmax_op(backend, rng):
    x = _uniform(rng, (2, 3, 4), -3, 3)
    np.testing.assert_array_equal(
        run_on(backend, L.Softmax(axis=1), x), run_on(backend, F.softmax, x, axis=1)
    )
    m = rng.random((2, 3, 4)) > 0.3
    with fastlayers.use_backend("numpy"):  # masks are NumPy-only for now
        np.testing.assert_array_equal(
            L.Softmax(axis=[1, 2])(x, mask=m), F.softmax(x, axis=(1, 2), mask=m)
        )


# ----------------------------------------------------------------- weights get / set


# name -> (make the layer, make its call arguments from an rng)
LAYER_FACTORIES = {
    "Dense": (lambda: L.Dense(3, seed=0), lambda r: (_uniform(r, (2, 4)),)),
    "Conv2D": (lambda: L.Conv2D(4, 3, seed=0), lambda r: (_uniform(r, (1, 5, 5, 2)),)),
    "LSTM": (lambda: L.LSTM(3, seed=0), lambda r: (_uniform(r, (2, 4, 5)),)),
    "GRU": (lambda: L.GRU(3, seed=0), lambda r: (_uniform(r, (2, 4, 5)),)),
    "Bidirectional": (
        lambda: L.Bidirectional(L.GRU(3, seed=0)),
        lambda r: (_uniform(r, (2, 4, 5)),),
    ),
    "Attention": (
        lambda: L.Attention(use_scale=True, score_mode="concat"),
        lambda r: ([_uniform(r, (2, 3, 4)), _uniform(r, (2, 5, 4))],),
    ),
    "AdditiveAttention": (
        lambda: L.AdditiveAttention(seed=0),
        lambda r: ([_uniform(r, (2, 3, 4)), _uniform(r, (2, 5, 4))],),
    ),
    "MultiHeadAttention": (
        lambda: L.MultiHeadAttention(2, 3, seed=0),
        lambda r: (_uniform(r, (2, 3, 4)), _uniform(r, (2, 5, 6))),
    ),
}


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_get_set_weights_round_trip(kind, rng):
    make, inputs = LAYER_FACTORIES[kind]
    layer = make()
    args = inputs(rng)
    layer(*args)
    new = [rng.uniform(-1, 1, w.shape) for w in layer.get_weights()]  # float64 in
    new = [np.asfortranarray(w) if w.ndim > 1 else w for w in new]
    layer.set_weights(new)
    got = layer.get_weights()
    assert len(got) == len(new)
    for g, n, w in zip(got, new, layer.weights):
        assert g.dtype == F32 and g.flags.c_contiguous
        np.testing.assert_array_equal(g, n.astype(F32))
        assert w.dtype == F32 and w.flags.c_contiguous and not w.flags.writeable
    # get_weights returns copies; set_weights copies its arguments
    before = layer(*args)
    got[0][...] = 0
    new[0][...] = 0
    np.testing.assert_array_equal(layer(*args), before)
    with pytest.raises(ValueError):
        layer.weights[0][...] = 0  # read-only: weights change only through set_weights
    # a second layer given the first one's weights computes the same thing
    other = make()
    other.set_weights(layer.get_weights())
    for a, b in zip(_flat(other(*args)), _flat(layer(*args))):
        np.testing.assert_array_equal(a, b)


def test_set_weights_never_keeps_the_callers_memory(rng):
    """set_weights copies float32 C-contiguous arrays, and views of other memory (rows of a
    larger array, a buffer): only arrays its own conversion made are kept without a copy."""
    cases = {
        "float32 C": lambda base, raw: base[:3].copy(),
        "rows of a larger array": lambda base, raw: base[:3],
        "a buffer": lambda base, raw: np.frombuffer(raw, F32).reshape(3, 4),
        "Fortran order": lambda base, raw: np.asfortranarray(base[:3]),
        "float64": lambda base, raw: base[:3].astype(np.float64),
    }
    class Holder:  # hands out an array it keeps (as xarray does): third review, 2026-12-06
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    cases["an object's own array"] = lambda base, raw: Holder(base[:3].copy())
    for name, make in cases.items():
        base = rng.uniform(-1, 1, (6, 4)).astype(F32)
        raw = bytearray(base[:3].tobytes())
        kernel = make(base, raw)
        layer = L.Dense(4, use_bias=False)
        layer.set_weights([kernel])
        want = base[:3].copy()
        if isinstance(kernel, Holder):
            assert kernel.a.flags.writeable  # left as it was
            kernel = kernel.a
        kernel[...] = 7
        base[...] = 7
        raw[:] = bytes(len(raw))
        np.testing.assert_array_equal(layer.weights[0], want, err_msg=name)


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
def test_set_weights_wrong_count_or_shape_names_the_layer(kind, rng):
    make, inputs = LAYER_FACTORIES[kind]
    built = make()
    built(*inputs(rng))
    weights = built.get_weights()
    for layer in (make(), built):  # unbuilt and built
        name = layer.name
        with pytest.raises(
            ValueError,
            match=rf"{type(layer).__name__} '{name}'.*expected "
            rf"{len(weights)} arrays",
        ):
            layer.set_weights(weights[:-1])
        with pytest.raises(ValueError, match=rf"'{name}'.*expected {len(weights)} arrays"):
            layer.set_weights(weights + [weights[0]])
        for i in range(len(weights)):
            bad = list(weights)
            bad[i] = np.zeros(weights[i].shape + (2,), F32)
            with pytest.raises(ValueError, match=rf"'{name}'.*(weight|rank)"):
                layer.set_weights(bad)
        with pytest.raises(TypeError):
            layer.set_weights(np.zeros(3))
    # the failed calls left the built layer as it was
    for a, b in zip(built.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_set_weights_message_names_layer_weight_and_shapes():
    layer = L.LSTM(4, name="enc")
    k, r, b = np.zeros((3, 16)), np.zeros((4, 16)), np.zeros(16)
    with pytest.raises(ValueError, match=r"LSTM 'enc'.*'recurrent_kernel'.*\(5, 16\).*\(4, 16\)"):
        layer.set_weights([k, np.zeros((5, 16)), b])
    with pytest.raises(ValueError, match=r"LSTM 'enc'.*'bias'.*\(12,\).*\(16,\)"):
        layer.set_weights([k, r, np.zeros(12)])
    assert not layer.built
    bidi = L.Bidirectional(L.LSTM(4, name="enc"), name="bi")
    with pytest.raises(ValueError, match=r"Bidirectional 'bi'.*LSTM 'backward_enc'.*'bias'"):
        bidi.set_weights([k, r, b, k, r, np.zeros(3)])
    with pytest.raises(ValueError, match=r"Bidirectional 'bi'.*expected 6 arrays"):
        bidi.set_weights([k, r, b])


def test_set_weights_builds_from_weight_shapes(rng):
    layer = L.Conv2D(6, 3, groups=2, data_format="channels_first")
    layer.set_weights([np.zeros((3, 3, 2, 6)), np.zeros(6)])
    assert layer.built
    assert layer(np.ones((1, 4, 5, 5))).shape == (1, 6, 3, 3)
    mha = L.MultiHeadAttention(2, 3, value_dim=5, use_bias=False, output_shape=4)
    mha.set_weights(
        [np.zeros((7, 2, 3)), np.zeros((6, 2, 3)), np.zeros((8, 2, 5)), np.zeros((2, 5, 4))]
    )
    assert mha(np.ones((1, 2, 7)), np.ones((1, 3, 8)), np.ones((1, 3, 6))).shape == (1, 2, 4)
    dense = L.Dense(2)
    dense.set_weights([np.ones((3, 2)), np.zeros(2)])
    np.testing.assert_array_equal(dense(np.ones((1, 3))), [[3, 3]])


def test_bidirectional_constructor_weights_argument(rng):
    w = [_uniform(rng, s) for s in [(3, 12), (4, 12), (2, 12)] * 2]
    layer = L.Bidirectional(L.GRU(4), weights=w)
    assert layer.built
    for a, b in zip(layer.get_weights(), w):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ building, initializers


def test_lazy_and_explicit_build_shapes():
    d = L.Dense(5)
    d.build((None, 7))
    assert [w.shape for w in d.weights] == [(7, 5), (5,)]
    c = L.Conv2D(8, (3, 2), groups=4, data_format="channels_first")
    c.build((None, 12, 9, 9))
    assert [w.shape for w in c.weights] == [(3, 2, 3, 8), (8,)]
    lstm = L.LSTM(6, use_bias=False)
    lstm.build((None, None, 4))
    assert [w.shape for w in lstm.weights] == [(4, 24), (6, 24)]
    gru = L.GRU(6, reset_after=False)
    gru.build((2, 3, 4))
    assert [w.shape for w in gru.weights] == [(4, 18), (6, 18), (18,)]
    bi = L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(2, go_backwards=True))
    bi.build((None, 5, 4))
    assert [w.shape for w in bi.weights] == [(4, 12), (3, 12), (12,), (4, 8), (2, 8), (8,)]
    mha = L.MultiHeadAttention(4, 8, value_dim=6, output_shape=5)
    mha.build((None, 3, 16), (None, 4, 12))
    assert [w.shape for w in mha.weights] == [
        (16, 4, 8),
        (4, 8),
        (12, 4, 8),
        (4, 8),
        (12, 4, 6),
        (4, 6),
        (4, 6, 5),
        (5,),
    ]
    add = L.AdditiveAttention()
    add.build([(None, 3, 7), (None, 4, 7)])
    assert [w.shape for w in add.weights] == [(7,)]
    for layer in (L.Softmax(), L.Flatten()):
        layer(np.ones((2, 3)))
        assert layer.built and layer.weights == []


def test_layer_names_and_weight_attributes():
    a, b = L.GRU(2), L.GRU(2)
    assert a.name != b.name and a.name.startswith("gru")
    assert L.MultiHeadAttention(1, 1).name.startswith("multi_head_attention")
    assert L.Conv2D(1, 1).name.startswith("conv2d")
    mha = L.MultiHeadAttention(2, 3, seed=0)
    mha.build((None, 3, 4), (None, 5, 6))
    assert mha.query_kernel.shape == (4, 2, 3) and mha.attention_output_bias.shape == (4,)
    bi = L.Bidirectional(L.LSTM(2, name="rnn"))
    assert (bi.forward_layer.name, bi.backward_layer.name) == ("forward_rnn", "backward_rnn")


def test_seeded_init_is_reproducible():
    def weights(layer, *shapes):
        layer.build(*shapes)
        return layer.get_weights()

    for make, shapes in [
        (lambda s: L.Dense(7, seed=s), [(None, 5)]),
        (lambda s: L.Conv2D(4, 3, seed=s), [(None, 8, 8, 3)]),
        (lambda s: L.LSTM(4, seed=s), [(None, None, 3)]),
        (lambda s: L.GRU(4, seed=s), [(None, None, 3)]),
        (lambda s: L.Bidirectional(L.LSTM(4, seed=s)), [(None, None, 3)]),
        (lambda s: L.AdditiveAttention(seed=s), [[(None, 2, 5), (None, 3, 5)]]),
        (lambda s: L.MultiHeadAttention(2, 3, seed=s), [(None, 2, 4), (None, 3, 4)]),
    ]:
        a, b, c = weights(make(1), *shapes), weights(make(1), *shapes), weights(make(2), *shapes)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert any(not np.array_equal(x, z) for x, z in zip(a, c) if np.any(x != x.flat[0]))
        u1, u2 = weights(make(None), *shapes), weights(make(None), *shapes)
        assert not np.array_equal(u1[0], u2[0])
    bi = L.Bidirectional(L.LSTM(4, seed=3))
    bi.build((None, None, 3))
    w = bi.get_weights()
    assert not np.array_equal(w[0], w[3])  # the backward copy does not repeat the forward


def _glorot_limit(fan_in, fan_out):
    return math.sqrt(6.0 / (fan_in + fan_out))


def _assert_uniform(w, limit):
    assert np.max(np.abs(w)) <= limit * (1 + 1e-6)
    assert np.max(np.abs(w)) > 0.9 * limit
    assert abs(float(np.std(w)) - limit / math.sqrt(3)) < 0.06 * limit
    assert abs(float(np.mean(w))) < 5 * limit / math.sqrt(3 * w.size)  # 5 standard errors


def test_glorot_uniform_statistics():
    d = L.Dense(300, seed=0)
    d.build((None, 200))
    _assert_uniform(d.kernel, _glorot_limit(200, 300))
    assert not d.bias.any()
    c = L.Conv2D(32, (3, 5), seed=0)
    c.build((None, 9, 9, 16))
    _assert_uniform(c.kernel, _glorot_limit(16 * 15, 32 * 15))  # receptive field 15
    g = L.Conv2D(32, 3, groups=4, seed=0)
    g.build((None, 9, 9, 16))
    _assert_uniform(g.kernel, _glorot_limit(4 * 9, 32 * 9))
    lstm = L.LSTM(32, seed=0)
    lstm.build((None, None, 48))
    _assert_uniform(lstm.kernel, _glorot_limit(48, 128))
    # MHA kernels use the EinsumDense axes as fans (Keras 3): (D, N, H) -> (D, N*H)
    mha = L.MultiHeadAttention(4, 16, value_dim=8, output_shape=24, seed=0)
    mha.build((None, 2, 64), (None, 3, 40))
    _assert_uniform(mha.query_kernel, _glorot_limit(64, 64))
    _assert_uniform(mha.value_kernel, _glorot_limit(40, 32))
    _assert_uniform(mha.attention_output_kernel, _glorot_limit(32, 24))
    for b in (mha.query_bias, mha.key_bias, mha.value_bias, mha.attention_output_bias):
        assert not b.any()
    add = L.AdditiveAttention(seed=0)
    add.build([(None, 2, 600), (None, 3, 600)])
    _assert_uniform(add.scale, _glorot_limit(600, 600))


def test_recurrent_kernels_are_orthogonal_and_forget_bias_is_one():
    u, f = 16, 5
    lstm = L.LSTM(u, seed=0)
    lstm.build((None, None, f))
    r = lstm.recurrent_kernel.astype(np.float64)
    assert r.shape == (u, 4 * u)
    # Keras orthogonalizes the whole (u, 4u) matrix: its rows are orthonormal ...
    np.testing.assert_allclose(r @ r.T, np.eye(u), atol=1e-5)
    # ... and the four (u, u) gate blocks together: sum_g R_g R_g^T = I.
    blocks = [r[:, g * u : (g + 1) * u] for g in range(4)]
    np.testing.assert_allclose(sum(b @ b.T for b in blocks), np.eye(u), atol=1e-5)
    bias = lstm.bias.reshape(4, u)
    np.testing.assert_array_equal(bias, [[0] * u, [1] * u, [0] * u, [0] * u])  # i f c o
    no_ufb = L.LSTM(u, unit_forget_bias=False, seed=0)
    no_ufb.build((None, None, f))
    assert not no_ufb.bias.any()
    gru = L.GRU(u, seed=0)
    gru.build((None, None, f))
    r = gru.recurrent_kernel.astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(u), atol=1e-5)
    assert gru.bias.shape == (2, 3 * u) and not gru.bias.any()
    # a tall matrix gets orthonormal columns
    q = L.initial_value("orthogonal", (12, 5), np.random.default_rng(0)).astype(np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-5)
    att = L.Attention(use_scale=True, score_mode="concat")
    att.build(None)
    assert [float(w) for w in att.weights] == [1.0, 1.0]


def test_compute_fans_matches_keras_rule():
    assert L.compute_fans(()) == (1, 1)
    assert L.compute_fans((7,)) == (7, 7)
    assert L.compute_fans((3, 4)) == (3, 4)
    assert L.compute_fans((3, 5, 2, 8)) == (30, 120)


def test_other_initializers_and_callables():
    layer = L.Dense(
        4, kernel_initializer="ones", bias_initializer=lambda shape, dtype=None: np.full(shape, 0.5)
    )
    layer.build((None, 3))
    np.testing.assert_array_equal(layer.kernel, np.ones((3, 4)))
    np.testing.assert_array_equal(layer.bias, np.full(4, 0.5))
    he = L.Dense(400, kernel_initializer="he_normal", seed=0)
    he.build((None, 300))
    std = math.sqrt(2 / 300)
    assert abs(float(np.std(he.kernel)) - std) < 0.05 * std
    assert np.max(np.abs(he.kernel)) <= 2 * std / 0.87962566103423978 + 1e-6
    with pytest.raises(ValueError, match="kernel_initializer"):
        L.Dense(2, kernel_initializer="nope")
    bad = L.Dense(2, kernel_initializer=lambda shape, dtype=None: np.zeros(3))
    with pytest.raises(ValueError, match="initial value of 'kernel'"):
        bad.build((None, 3))


# ----------------------------------------------------------------------- the packing hook


class _Counting(L.Dense):
    calls = 0

    def _on_weights_set(self):
        type(self).calls += 1


def test_weights_are_packed_once_when_set_never_per_call(rng):
    _Counting.calls = 0
    layer = _Counting(3)
    x = _uniform(rng, (2, 4))
    for _ in range(3):
        layer(x)
    assert _Counting.calls == 1  # the build
    layer.set_weights(layer.get_weights())
    for _ in range(3):
        layer(x)
    assert _Counting.calls == 2
    with pytest.raises(ValueError):
        layer.set_weights([np.zeros((5, 3)), np.zeros(3)])
    assert _Counting.calls == 2  # a rejected set_weights changes nothing


def test_bidirectional_hooks_reach_inner_layers(rng, monkeypatch):
    seen = []
    monkeypatch.setattr(L.LSTM, "_on_weights_set", lambda self: seen.append(self.name))
    bi = L.Bidirectional(L.LSTM(2, name="x"))
    x = _uniform(rng, (1, 3, 2))
    bi(x)
    bi(x)
    assert sorted(seen) == ["backward_x", "forward_x"]
    bi.set_weights(bi.get_weights())
    assert len(seen) == 4


# ------------------------------------------------------------------------ stateful RNNs


@pytest.mark.parametrize("backend", backends_for("lstm"))
@pytest.mark.parametrize("cls", [L.LSTM, L.GRU])
def test_stateful_rnn_carries_state_and_resets(backend, cls, rng):
    x1, x2 = _uniform(rng, (2, 3, 4)), _uniform(rng, (2, 5, 4))
    stateful = cls(3, stateful=True, return_sequences=True, seed=0)
    plain = cls(3, return_sequences=True, seed=0)
    with fastlayers.use_backend(backend):
        y1 = stateful(x1)
        y2 = stateful(x2)
        whole = plain(np.concatenate([x1, x2], axis=1))
        np.testing.assert_allclose(np.concatenate([y1, y2], 1), whole, rtol=1e-6, atol=1e-7)
        assert len(stateful.states) == (2 if cls is L.LSTM else 1)
        stateful.reset_states()
        assert not any(s.any() for s in stateful.states)
        np.testing.assert_array_equal(stateful(x1), y1)
        # an explicit initial state overrides the kept one
        h0 = [np.zeros((2, 3), F32)] * len(stateful.states)
        np.testing.assert_array_equal(stateful(x1, initial_state=h0), y1)
        with pytest.raises(ValueError, match="stateful with batch size 2"):
            stateful(_uniform(rng, (3, 3, 4)))
        stateful.reset_state()  # the Keras 3 name


@pytest.mark.parametrize("backend", backends_for("lstm"))
def test_stateful_bidirectional(backend, rng):
    x = _uniform(rng, (2, 4, 3))
    bi = L.Bidirectional(L.LSTM(3, stateful=True, return_sequences=True, seed=0))
    with fastlayers.use_backend(backend):
        first = bi(x)
        assert len(bi.states) == 4
        assert not np.array_equal(bi(x), first)
        bi.reset_states()
        np.testing.assert_array_equal(bi(x), first)


def test_zero_output_for_mask_on_a_single_layer(rng):
    x = _uniform(rng, (2, 5, 3))
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], bool)
    for go_backwards in (False, True):
        kw = dict(units=4, go_backwards=go_backwards, seed=0)
        seq = L.LSTM(return_sequences=True, zero_output_for_mask=True, **kw)(x, mask=mask)
        m = mask[:, ::-1] if go_backwards else mask  # outputs are in processing order
        assert not seq[~m].any()
        ref = L.LSTM(return_sequences=True, **kw)(x, mask=mask)
        np.testing.assert_array_equal(seq[m], ref[m])
        last = L.LSTM(zero_output_for_mask=True, **kw)(x, mask=mask)
        assert not last[~m[:, -1]].any()  # the last processed step is masked: output 0


# ---------------------------------------------------------------------- config, repr, errors


ALL_CLASSES = [
    L.Dense,
    L.Flatten,
    L.Conv2D,
    L.LSTM,
    L.GRU,
    L.Attention,
    L.AdditiveAttention,
    L.MultiHeadAttention,
    L.Softmax,
]
REQUIRED = {
    L.Dense: (3,),
    L.Conv2D: (3, 2),
    L.LSTM: (3,),
    L.GRU: (3,),
    L.MultiHeadAttention: (2, 3),
}


@pytest.mark.parametrize("cls", ALL_CLASSES + [L.Bidirectional])
def test_unknown_constructor_kwarg_is_a_type_error(cls):
    args = (L.LSTM(2),) if cls is L.Bidirectional else REQUIRED.get(cls, ())
    with pytest.raises(TypeError, match=rf"{cls.__name__}: unrecognized keyword.*not_an_arg"):
        cls(*args, not_an_arg=1)
    # the base Keras kwargs are accepted
    layer = cls(*args, name="x", trainable=False, dtype="float32")
    assert layer.name == "x"


def test_training_only_kwargs_are_accepted():
    L.Dense(2, kernel_regularizer="l2", bias_constraint=object(), activity_regularizer="l1")
    L.Conv2D(2, 3, kernel_regularizer="l2", kernel_constraint=object())
    L.LSTM(
        2,
        dropout=0.2,
        recurrent_dropout=0.1,
        unroll=True,
        use_cudnn=False,
        recurrent_regularizer="l2",
    )
    L.GRU(2, dropout=0.2, recurrent_dropout=0.1, unroll=True, use_cudnn=False)
    L.Attention(dropout=0.1, seed=3)
    L.AdditiveAttention(dropout=0.1)
    L.MultiHeadAttention(2, 3, dropout=0.1, flash_attention=False, kernel_regularizer="l2")


def test_unsupported_or_bad_constructor_arguments():
    with pytest.raises(ValueError, match="float32"):
        L.Dense(2, dtype="float16")
    with pytest.raises(ValueError, match="units"):
        L.Dense(0)
    with pytest.raises(ValueError, match="activation"):
        L.Dense(2, activation="nope")
    with pytest.raises(ValueError, match="elementwise"):
        L.LSTM(2, activation="softmax")
    with pytest.raises(NotImplementedError, match="lora_rank"):
        L.Dense(2, lora_rank=4)
    with pytest.raises(ValueError, match="strides > 1 together with dilation"):
        L.Conv2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        L.Conv2D(3, 3, groups=2)
    with pytest.raises(ValueError, match="causal"):
        L.Conv2D(3, 3, padding="causal")
    with pytest.raises(ValueError, match="data_format"):
        L.Conv2D(3, 3, data_format="NCHW")
    with pytest.raises(ValueError, match="divisible by groups"):
        L.Conv2D(4, 3, groups=2).build((None, 5, 5, 3))
    with pytest.raises(ValueError, match="score_mode"):
        L.Attention(score_mode="general")
    with pytest.raises(NotImplementedError, match="use_gate"):
        L.MultiHeadAttention(2, 3, use_gate=True)
    with pytest.raises(NotImplementedError, match="output_shape"):
        L.MultiHeadAttention(2, 3, output_shape=(2, 3))
    with pytest.raises(NotImplementedError, match="attention_axes"):
        L.MultiHeadAttention(2, 3, attention_axes=(2,))
    assert L.MultiHeadAttention(2, 3, attention_axes=-2).attention_axes == (1,)
    # wrong types and values are TypeError / ValueError, not NotImplementedError
    for bad in ("nope", 1.5, object(), float("nan"), [2.0], True):
        with pytest.raises(TypeError, match="MultiHeadAttention: output_shape must be an int"):
            L.MultiHeadAttention(2, 3, output_shape=bad)
    for bad in (0, (-1,), [0, 3]):
        with pytest.raises(ValueError, match="MultiHeadAttention: output_shape"):
            L.MultiHeadAttention(2, 3, output_shape=bad)
    with pytest.raises(ValueError, match="output_shape must not be empty"):
        L.MultiHeadAttention(2, 3, output_shape=())
    assert L.MultiHeadAttention(2, 3, output_shape=[np.int64(5)]).output_shape == 5
    for bad in ("nope", -0.5, 1j, (1, "2"), False):
        with pytest.raises(TypeError, match="MultiHeadAttention: attention_axes must be an int"):
            L.MultiHeadAttention(2, 3, attention_axes=bad)
    with pytest.raises(ValueError, match="attention_axes must not be empty"):
        L.MultiHeadAttention(2, 3, attention_axes=[])
    with pytest.raises(NotImplementedError, match="attention_axes"):
        L.MultiHeadAttention(2, 3, attention_axes=(1, 2))  # valid in Keras (rank-4 inputs)
    for axes in ((4,), (-5,), (-3,), (0,)):  # not the time axis of a rank-3 input
        with pytest.raises(NotImplementedError, match="attention_axes"):
            L.MultiHeadAttention(2, 3, attention_axes=axes)
    with pytest.raises(ValueError, match="sliding_window"):
        L.MultiHeadAttention(2, 3, sliding_window=0)
    with pytest.raises(TypeError, match="seed"):
        L.Dense(2, seed=1.5)


def test_bidirectional_arguments():
    with pytest.raises(ValueError, match="merge_mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="LSTM, GRU or SimpleRNN"):
        L.Bidirectional(L.Dense(2))
    with pytest.raises(ValueError, match="go_backwards"):
        L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2))
    with pytest.raises(ValueError, match="return_sequences"):
        L.Bidirectional(
            L.LSTM(2), backward_layer=L.LSTM(2, go_backwards=True, return_sequences=True)
        )
    with pytest.raises(ValueError, match="go_backwards"):  # as Keras: both copies go backwards
        L.Bidirectional(L.LSTM(2, go_backwards=True))
    bi = L.Bidirectional(L.LSTM(2))
    x = np.ones((1, 3, 2), F32)
    with pytest.raises(ValueError, match="initial_state must hold 4 arrays"):
        bi(x, initial_state=[np.zeros((1, 2))] * 2)
    # as Keras, the forward layer is a fresh copy: the given layer's weights are not used
    inner = L.LSTM(2, seed=0)
    inner(x)
    bi = L.Bidirectional(inner)
    assert not bi.built
    # a custom backward layer is used as is (with its weights) and gets zero_output_for_mask
    back = L.GRU(3, go_backwards=True, return_sequences=True)
    back(x)
    bi = L.Bidirectional(L.GRU(2, return_sequences=True), backward_layer=back)
    assert bi.backward_layer is back and back.zero_output_for_mask
    assert bi(x).shape == (1, 3, 5)


def test_call_argument_errors(rng):
    att = L.Attention()
    q = _uniform(rng, (1, 2, 3))
    with pytest.raises(ValueError, match=r"\[query, value\]"):
        att(q)
    with pytest.raises(ValueError, match=r"\[query, value\]"):
        att([q])
    with pytest.raises(ValueError, match="mask must be a list"):
        att([q, q], mask=np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="rank 3"):
        L.LSTM(2)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="rank >= 2"):
        L.Dense(2)(np.ones(3))
    layer = L.Dense(2)
    with pytest.raises(ValueError, match=r"inputs must have rank >= 2"):
        layer(np.ones(3))
    assert not layer.built  # a rejected input does not build the layer
    mha = L.MultiHeadAttention(2, 2)
    with pytest.raises(ValueError, match="attention_mask"):
        mha(q, q, attention_mask=np.ones((1, 2, 3), bool))
    with pytest.raises(ValueError, match="value_mask"):
        mha(q, q, value_mask=np.ones((1, 3), bool))


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip_and_repr(name):
    layer = _make(CASES[name])
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    assert repr(layer).startswith(f"{type(layer).__name__}(name=")


def test_repr_shows_non_default_config():
    assert repr(L.Dense(4, activation="relu", name="d")) == (
        "Dense(name='d', units=4, activation='relu')"
    )
    text = repr(
        L.Bidirectional(L.LSTM(3, return_sequences=True, name="r"), merge_mode="sum", name="b")
    )
    assert text.startswith("Bidirectional(name='b', layer=LSTM(name='forward_r', units=3, ")
    assert "merge_mode='sum'" in text
    assert repr(L.Conv2D(2, 3, strides=2, name="c")) == (
        "Conv2D(name='c', filters=2, kernel_size=(3, 3), strides=(2, 2), "
        "data_format='channels_last')"
    )


def test_layers_are_exported():
    assert "layers" in fastlayers.__all__
    assert fastlayers.layers is L
    for name in L.__all__:
        obj = getattr(L, name)
        # Layer classes, and Keras's functional forms of the merge layers (add, dot, ...).
        assert isinstance(obj, type) or (name.islower() and callable(obj)), name


# ------------------------------------------------- config attributes set after construction


@pytest.mark.parametrize(
    "make, name, value, fragment",
    [
        (lambda: L.MaxPooling2D(2), "pool_size", (0, 0), "pool_size"),
        (lambda: L.AveragePooling2D(2), "strides", (-1, -1), "strides"),
        (lambda: L.Conv2D(2, 3), "groups", 0, "groups"),
        (lambda: L.Cropping2D(1), "cropping", -1, "cropping"),
        (lambda: L.ZeroPadding2D(1), "padding", -2, "padding"),
        (lambda: L.RepeatVector(2), "n", -1, "n"),
        (lambda: L.Dense(3), "units", -5, "units"),
        (lambda: L.Dense(3), "activation", "no-such-activation", "activation"),
        (lambda: L.Activation("relu"), "activation", "no-such-activation", "activation"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_config_attribute_set_later_is_refused_at_once(make, name, value, fragment):
    """The constructor's checks apply to a later assignment too (a pooling of (0, 0) raised
    StopIteration at the call on the NumPy path, a negative cropping returned the input, and
    so on); the attribute keeps its old value."""
    layer = make()
    before = getattr(layer, name)
    with pytest.raises((ValueError, TypeError), match=fragment):
        setattr(layer, name, value)
    assert getattr(layer, name) == before


def test_a_config_attribute_set_later_is_normalized_and_used(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    pool = L.MaxPooling2D(2)
    pool.pool_size = 3  # normalized as the constructor does
    assert pool.pool_size == (3, 3)
    np.testing.assert_array_equal(pool(x), L.MaxPooling2D(3, strides=2)(x))

    r = L.Rescaling(2.0)
    r(x)
    r.scale, r.offset = 5.0, 1.0  # were ignored: the constructor's arrays were used
    np.testing.assert_array_equal(r(x), L.Rescaling(5.0, 1.0)(x))
    assert r.get_config()["scale"] == 5.0

    bn = L.BatchNormalization()
    bn.build(x.shape)
    w = [rng.uniform(0.5, 2.0, 3).astype(np.float32) for _ in range(4)]
    bn.set_weights(w)
    bn.epsilon = 0.5  # the scale and shift (and the packed kernel) are derived from it
    fresh = L.BatchNormalization(epsilon=0.5)
    fresh.build(x.shape)
    fresh.set_weights(w)
    np.testing.assert_array_equal(bn(x), fresh(x))


class _NoBias:
    """A mixin that sets a config attribute after the layer's constructor."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_bias = False


class _NoBiasDense(_NoBias, L.Dense):
    pass


class _ReluDense(L.Dense):
    """A user subclass that fixes a constructor argument (its config does not round-trip)."""

    def __init__(self, units, **kwargs):
        super().__init__(units, activation="relu", **kwargs)


def test_config_attributes_of_user_subclasses_are_set_as_before(rng):
    """The check is for fastlayers' own classes: a user's constructor and get_config need not
    round-trip through from_config (a probe of these raised TypeError, or recursed)."""
    assert _NoBiasDense(3).use_bias is False
    d = _ReluDense(2)
    d.units = 4
    assert d.units == 4
    x = rng.standard_normal((5, 3)).astype(np.float32)
    assert (d(x) >= 0).all() and d(x).shape == (5, 4)
    gru = L.GRU(3, return_sequences=True)

    class MyGRU(L.GRU):
        def __init__(self, units, **kwargs):
            super().__init__(units, return_sequences=True, **kwargs)

    bi = L.Bidirectional(gru, backward_layer=MyGRU(3, go_backwards=True))
    assert bi(rng.standard_normal((2, 4, 5)).astype(np.float32)).shape == (2, 4, 6)


def test_an_assignment_after_unpickling_an_older_layer_reaches_the_model(rng):
    """A layer pickled before the constructor counter existed has no _init_depth: it is a
    constructed layer, and a config assignment still invalidates the model's shape plans."""
    import pickle

    model = fastlayers.Sequential([fastlayers.Input((3,)), L.Dense(4)])
    model.set_weights([rng.standard_normal((3, 4)).astype(np.float32), np.zeros(4, np.float32)])
    model.layers[-1].__dict__.pop("_init_depth")  # the state an older version pickled
    model = pickle.loads(pickle.dumps(model))
    dense = model.layers[-1]
    x = rng.standard_normal((8, 3)).astype(np.float32)
    for _ in range(3):
        assert (model(x) < 0).any()  # a shape plan is recorded and used
    dense.activation = "relu"
    assert (model(x) >= 0).all()
    with pytest.raises(ValueError, match="activation"):
        dense.activation = "no-such-activation"


def test_normalization_axis_set_later_and_an_older_pickle(rng):
    """The kept axes follow `axis` when it is assigned later, and a layer pickled when they
    were a stored attribute (`_keep` in its state) uses its axis, not that stale entry."""
    import pickle

    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    n = L.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])  # axis -1: 4 features
    n.axis = 1  # now 3 features, the mean's size
    want = (x - np.array([1, 2, 3], np.float32)[:, None]) / np.array([1, 2, 3], np.float32)[:, None]
    np.testing.assert_allclose(n(x), want, rtol=1e-6)
    state = pickle.dumps(n)
    old = pickle.loads(state)
    old.__dict__["_keep"] = [-1]  # as an older version stored it
    np.testing.assert_array_equal(old(x), n(x))


def test_spectral_normalization_wraps_a_kernel_layer(rng):
    """fl.layers.SpectralNormalization: the wrapped layer's call; weights [kernel, vector_u,
    bias] (Keras's order), set and read through; bad wrapped layers and arguments refused;
    pickled and rebuilt from its config."""
    import pickle

    from fastlayers.layers import LSTM, Dense, Embedding, SpectralNormalization

    x = rng.standard_normal((3, 6)).astype(np.float32)
    inner = Dense(4)
    layer = SpectralNormalization(inner, power_iterations=2)
    w = [rng.standard_normal((6, 4)).astype(np.float32),
         rng.standard_normal((1, 4)).astype(np.float32),
         rng.standard_normal(4).astype(np.float32)]
    layer.set_weights(w)
    assert layer.built and layer.count_params() == 6 * 4 + 4 + 4
    for got, want in zip(layer.get_weights(), w, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(inner.get_weights()[0], w[0])
    np.testing.assert_array_equal(layer(x), inner(x))
    assert [a.shape for a in layer.non_trainable_weights] == [(1, 4)]
    again = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(again(x), layer(x))
    made = SpectralNormalization.from_config(layer.get_config())
    made.set_weights(w)
    np.testing.assert_array_equal(made(x), layer(x))
    fresh = SpectralNormalization(Dense(2, use_bias=False))
    fresh.build((None, 6))
    assert [a.shape for a in fresh.get_weights()] == [(6, 2), (1, 2)]
    i = fastlayers.Input((6,))  # built by its first (symbolic) call, as other layers
    model = fastlayers.Model(i, SpectralNormalization(Dense(3))(i))
    assert model.count_params() == 6 * 3 + 3 + 3 and len(model.non_trainable_weights) == 1
    with pytest.raises(ValueError, match="'vector_u' has shape"):
        layer.set_weights([w[0], np.zeros((1, 5), np.float32), w[2]])
    with pytest.raises(ValueError, match="expected 3 arrays"):
        layer.set_weights(w[:2])
    with pytest.raises(ValueError, match="wrapping LSTM is not supported"):
        SpectralNormalization(LSTM(3))
    with pytest.raises(NotImplementedError, match="Embedding"):
        SpectralNormalization(Embedding(5, 2))
    with pytest.raises(ValueError, match="power_iterations"):
        SpectralNormalization(Dense(2), power_iterations=0)


def test_signatures_show_the_parameters():
    """help() and IDEs see the constructors' and activations' parameters (LSTM and GRU
    showed (*args, unit_forget_bias=True, **kwargs), gelu (x, *args, **kwargs))."""
    import inspect

    for cls, own in ((fastlayers.layers.LSTM, "unit_forget_bias"),
                     (fastlayers.layers.GRU, "reset_after")):
        params = inspect.signature(cls).parameters
        assert list(params)[:2] == ["units", "activation"]
        assert {"return_sequences", "go_backwards", own} <= set(params)
    assert list(inspect.signature(fastlayers.activations.gelu).parameters) == ["x", "approximate"]
    assert str(inspect.signature(fastlayers.activations.relu)) == (
        "(x, negative_slope=0.0, max_value=None, threshold=0.0)")


def test_stacked_rnn_is_its_layers_one_after_the_other(rng):
    """fl.layers.StackedRNN (Keras's RNN of StackedRNNCells): the cells' layers one after
    the other over the whole sequence, the mask passed to each, go_backwards reversing the
    time once; states as Keras nests them; zero_output_for_mask; bad arguments."""
    from fastlayers.layers import GRU, LSTM, Dense, SimpleRNN, StackedRNN

    x = rng.standard_normal((3, 7, 4)).astype(np.float32)
    mask = np.ones((3, 7), bool)
    mask[0, 5:] = False
    mask[2, 2] = False
    cells = [LSTM(5, name="a"), GRU(3, name="b"), SimpleRNN(2, name="c")]
    stack = StackedRNN(cells, return_sequences=True, return_state=True, go_backwards=True,
                       zero_output_for_mask=True)
    stack.build(x.shape)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5
               for w in stack.get_weights()]
    stack.set_weights(weights)
    out, (h1, c1), h2, h3 = stack(x, mask=mask)
    # the same layers, one after the other on the reversed sequence
    h, m, states, at = x[:, ::-1], mask[:, ::-1], [], 0
    for cls, units in ((LSTM, 5), (GRU, 3), (SimpleRNN, 2)):
        layer = cls(units, return_sequences=True, return_state=True)
        n = len(layer._weight_names())
        layer.set_weights(weights[at:at + n])
        at += n
        h, *st = layer(np.ascontiguousarray(h), mask=np.ascontiguousarray(m))
        states += st
    np.testing.assert_array_equal(out, np.where(m[:, :, None], h, 0.0))
    for got, want in zip((h1, c1, h2, h3), states, strict=True):
        np.testing.assert_array_equal(got, want)
    assert stack.count_params() == sum(w.size for w in weights)
    assert stack.compute_mask(x, mask) == [mask, None, None, None, None]
    last, whole = StackedRNN(cells), StackedRNN(cells, return_sequences=True)
    last.set_weights(weights)
    whole.set_weights(weights)
    np.testing.assert_array_equal(last(x, mask=mask), whole(x, mask=mask)[:, -1])
    with pytest.raises(TypeError, match="non-empty list"):
        StackedRNN(LSTM(2))
    with pytest.raises(ValueError, match="LSTM, GRU or SimpleRNN"):
        StackedRNN([LSTM(2), Dense(3)])
    with pytest.raises(ValueError, match="names must differ"):
        StackedRNN([LSTM(2, name="x"), GRU(2, name="x")])
    with pytest.raises(ValueError, match="4 states"):
        stack(x, initial_state=[np.zeros((3, 5), np.float32)])


@pytest.mark.parametrize("wrapper", ["Bidirectional", "TimeDistributed"])
def test_wrappers_take_a_layer_or_its_serialized_form(wrapper):
    """One helper reads the wrapped layer for every wrapper (layers/base.deserialize_layer):
    the layer, fastlayers' {class_name, config} or Keras's form with its extra keys;
    anything else, an unknown key or class, a ValueError naming the wrapper (as Keras's)."""
    inner = L.LSTM(3)
    keras_form = {"module": "keras.layers", "class_name": "LSTM", "config": inner.get_config(),
                  "registered_name": None, "build_config": {"input_shape": [None, 5, 2]}}
    make = getattr(L, wrapper)
    shape = (2, 5, 2) if wrapper == "Bidirectional" else (2, 4, 5, 2)  # a sequence per step
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for given in (inner, {"class_name": "LSTM", "config": inner.get_config()}, keras_form):
        layer = make(given)
        assert isinstance(layer.forward_layer if wrapper == "Bidirectional" else layer.layer,
                          L.LSTM)
        assert layer(x).shape[0] == 2
    with pytest.raises(ValueError, match=f"{wrapper}: layer must be a fastlayers layer"):
        make(["LSTM"])
    with pytest.raises(ValueError, match=f"{wrapper}: a serialized layer .* got also "
                                         r"\['weights'\]"):
        make({**keras_form, "weights": []})
    with pytest.raises(ValueError, match=f"{wrapper}: unknown layer class 'NoSuchLayer'"):
        make({"class_name": "NoSuchLayer", "config": {}})
