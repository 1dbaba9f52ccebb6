"""GroupQueryAttention (Keras's GroupedQueryAttention): a float64 reference written from the
definition (query head u reads key/value head u // (Nq / Nkv)), Keras itself when it is
installed, masks and causal masks, the weights, and bad arguments, on both paths.

Keras models holding the layer (tests/golden/make_models_gqa.py) are loaded by
tests/test_load_keras.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close

import fastlayers as fl
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def _reference(q, v, k, weights, nq, nkv, mask=None, causal=False):
    """float64: the projections, the key/value heads repeated, softmax(q k^T / sqrt(h))
    over the kept keys, the output projection."""
    wq, bq, wk, bk, wv, bv, wo, bo = [w.astype(np.float64) for w in weights]
    qh = np.einsum("btd,dnh->btnh", q, wq) + bq
    kh = np.repeat(np.einsum("bsd,dnh->bsnh", k, wk) + bk, nq // nkv, axis=2)
    vh = np.repeat(np.einsum("bsd,dnh->bsnh", v, wv) + bv, nq // nkv, axis=2)
    scores = np.einsum("btnh,bsnh->bnts", qh, kh) / np.sqrt(wq.shape[-1])
    keep = np.ones(scores.shape[-2:], bool) if mask is None else mask[:, None]
    if causal:
        keep = keep & np.tril(np.ones(scores.shape[-2:], bool))
    scores = np.where(keep, scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    out = np.einsum("bnts,bsnh->btnh", p, vh)
    return np.einsum("btnh,nhe->bte", out, wo) + bo, p


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nq,nkv,causal,masked", [(6, 2, False, False), (4, 4, True, False),
                                                  (8, 1, False, True), (6, 3, True, True)])
def test_against_the_definition(rng, backend, nq, nkv, causal, masked):
    q = rng.standard_normal((2, 5, 7)).astype(F32)
    v = rng.standard_normal((2, 6, 9)).astype(F32)
    k = rng.standard_normal((2, 6, 11)).astype(F32)
    layer = L.GroupQueryAttention(4, nq, nkv, seed=3)
    layer.build(q.shape, v.shape, k.shape)
    # every weight random, the biases too (a tiled instead of repeated key/value bias shows)
    weights = [(rng.standard_normal(w.shape) * 0.5).astype(F32) for w in layer.get_weights()]
    layer.set_weights(weights)
    mask = rng.random((2, 5, 6)) > 0.3 if masked else None
    if masked:
        mask[:, :, 0] = True  # no fully masked row (§14 covers those)
    with fl.use_backend(backend):
        out, scores = layer(q, v, k, attention_mask=mask, use_causal_mask=causal,
                            return_attention_scores=True)
    want, p = _reference(q.astype(np.float64), v.astype(np.float64), k.astype(np.float64),
                         weights, nq, nkv, mask, causal)
    assert_close(out, want.astype(F32), k=64, magnitude=4.0)
    assert_close(scores, p.astype(F32), k=8)
    assert scores.shape == (2, nq, 5, 6)


def _repeated_heads_layer(layer, nq, nkv):
    """The same layer as plain multi-head attention: each key/value head's kernel and bias
    repeated for its nq / nkv query heads (GroupQueryAttention with nkv = nq)."""
    wq, bq, wk, bk, wv, bv, wo, bo = layer.get_weights()
    r = nq // nkv
    flat = L.GroupQueryAttention(layer.head_dim, nq, nq)
    flat.set_weights([wq, bq, np.repeat(wk, r, axis=1), np.repeat(bk, r, axis=0),
                      np.repeat(wv, r, axis=1), np.repeat(bv, r, axis=0), wo, bo])
    return flat


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("t,s", [(1, 300), (2, 33), (3, 600), (9, 40)], ids=str)
@pytest.mark.parametrize("nq,nkv", [(8, 2), (6, 3), (4, 1)])
def test_shared_heads_give_the_bits_of_repeated_ones(rng, backend, t, s, nq, nkv):
    """Few queries (the decode driver, which runs the query heads of a key/value head
    together where their rows allow: T = 1 here, as the layer's heads-last views) and more:
    on the C++ path the bits of the layer whose key/value heads are repeated, which reads no
    head twice. (The NumPy path's projections are BLAS products of other widths there: close,
    not bitwise.)"""
    q = rng.standard_normal((2, t, 12)).astype(F32)
    v = rng.standard_normal((2, s, 10)).astype(F32)
    layer = L.GroupQueryAttention(8, nq, nkv, seed=5)
    layer.build(q.shape, v.shape)
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(F32)
                       for w in layer.get_weights()])
    flat = _repeated_heads_layer(layer, nq, nkv)
    with fl.use_backend(backend):
        for kw in ({}, {"return_attention_scores": True}):
            got, want = layer(q, v, **kw), flat(q, v, **kw)
            for g, w in zip(*((got, want) if kw else ((got,), (want,)))):
                if backend == "cpp":
                    np.testing.assert_array_equal(g, w)
                else:
                    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        got = layer(q, v)
    want64, _ = _reference(q.astype(np.float64), v.astype(np.float64), v.astype(np.float64),
                           layer.get_weights(), nq, nkv)
    assert_close(got, want64.astype(F32), k=64, magnitude=4.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_keras(rng, backend):
    keras = pytest.importorskip("keras")
    q = rng.standard_normal((2, 5, 8)).astype(F32)
    v = rng.standard_normal((2, 7, 8)).astype(F32)
    ref = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=6,
                                           num_key_value_heads=2)
    ref(q, v)
    weights = [rng.standard_normal(w.shape).astype(F32) * 0.5 for w in ref.get_weights()]
    ref.set_weights(weights)
    want = keras.ops.convert_to_numpy(ref(q, v, use_causal_mask=True))
    layer = L.GroupQueryAttention(4, 6, 2)
    layer.set_weights(weights)
    with fl.use_backend(backend):
        got = layer(q, v, use_causal_mask=True)
    assert_close(got, want, k=64, magnitude=4.0)


def test_weights_config_and_pickle(rng):
    layer = L.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2,
                                  name="gqa")
    layer.build((1, 2, 5), (1, 3, 6))
    assert [w.shape for w in layer.get_weights()] == [
        (5, 4, 3), (4, 3), (6, 2, 3), (2, 3), (6, 2, 3), (2, 3), (4, 3, 5), (5,)]
    config = layer.get_config()
    assert config == {"name": "gqa", "head_dim": 3, "num_query_heads": 4,
                      "num_key_value_heads": 2, "dropout": 0.0, "use_bias": True,
                      "sliding_window": None, "kernel_initializer": "glorot_uniform",
                      "bias_initializer": "zeros", "seed": None}
    q, v = rng.standard_normal((2, 2, 5)).astype(F32), rng.standard_normal((2, 3, 6))
    again = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(again(q, v), layer(q, v))
    fresh = L.GroupQueryAttention(**{k: v for k, v in config.items() if k != "name"})
    fresh.set_weights(layer.get_weights())  # builds from the weights' shapes
    np.testing.assert_array_equal(fresh(q, v), layer(q, v))


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"head_dim": 4, "num_query_heads": 6, "num_key_value_heads": 4}, ValueError,
     "divisible"),
    ({"head_dim": 0, "num_query_heads": 2, "num_key_value_heads": 1}, ValueError, "head_dim"),
    ({"head_dim": 4, "num_query_heads": 2, "num_key_value_heads": 1, "use_gate": True},
     NotImplementedError, "use_gate"),
    ({"head_dim": 4, "num_query_heads": 2, "num_key_value_heads": 1, "dropout": 2.0},
     ValueError, "dropout"),
    ({"head_dim": 4, "num_query_heads": 2, "num_key_value_heads": 1, "num_heads": 2},
     TypeError, "unrecognized"),
])
def test_bad_arguments(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        L.GroupQueryAttention(**kwargs)


def test_bad_calls():
    layer = L.GroupQueryAttention(4, 2, 1)
    with pytest.raises(ValueError, match="rank|shape"):
        layer(np.zeros((2, 5), F32), np.zeros((2, 5), F32))
    layer(np.zeros((2, 3, 5), F32), np.zeros((2, 4, 6), F32))
    with pytest.raises(ValueError, match=r"query_kernel has shape \(5, 2, 4\), expected"):
        layer(np.zeros((2, 3, 7), F32), np.zeros((2, 4, 6), F32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_explicit_query_mask_is_used_as_keras_does(rng, backend):
    """Keras's GroupedQueryAttention uses query_mask (MultiHeadAttention ignores it)."""
    keras = pytest.importorskip("keras")
    q = rng.standard_normal((2, 4, 6)).astype(F32)
    v = rng.standard_normal((2, 3, 6)).astype(F32)
    query_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    ref = keras.layers.GroupQueryAttention(head_dim=3, num_query_heads=4,
                                           num_key_value_heads=2)
    ref(q, v)
    weights = [rng.standard_normal(w.shape).astype(F32) * 0.5 for w in ref.get_weights()]
    ref.set_weights(weights)
    layer = L.GroupQueryAttention(3, 4, 2)
    layer.set_weights(weights)
    for scores in (False, True):
        want = ref(q, v, query_mask=query_mask, return_attention_scores=scores)
        with fl.use_backend(backend):
            got = layer(q, v, query_mask=query_mask, return_attention_scores=scores)
        want = [keras.ops.convert_to_numpy(w) for w in want] if scores else \
            [keras.ops.convert_to_numpy(want)]
        for g, w in zip(got if scores else [got], want):
            assert_close(g, w, k=32, magnitude=4.0)
    with fl.use_backend(backend):
        assert not np.array_equal(layer(q, v, query_mask=query_mask), layer(q, v))


def test_dropout_survives_loading_from_a_file(tmp_path, rng):
    """dropout > 0 sends a fully masked query row down Keras's softmax path (zero weights,
    the output bias): the loader must keep it for GroupQueryAttention as for
    MultiHeadAttention."""
    keras = pytest.importorskip("keras")
    q_in = keras.Input((4, 6))
    m_in = keras.Input((4, 3))
    v_in = keras.Input((3, 6))
    att = keras.layers.GroupQueryAttention(head_dim=3, num_query_heads=4,
                                           num_key_value_heads=2, dropout=0.3)
    model = keras.Model([q_in, v_in, m_in], att(q_in, v_in, attention_mask=m_in))
    weights = [rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()]
    model.set_weights(weights)
    path = tmp_path / "gqa.keras"
    model.save(path)
    q = rng.standard_normal((2, 4, 6)).astype(F32)
    v = rng.standard_normal((2, 3, 6)).astype(F32)
    mask = np.ones((2, 4, 3), F32)
    mask[0, 1] = 0.0  # query row 1 of sample 0 attends to nothing
    want = model.predict([q, v, mask], verbose=0)
    loaded = fl.load_model(path)
    assert [la.dropout for la in loaded.layers if isinstance(la, L.GroupQueryAttention)] == [0.3]
    assert_close(loaded.predict([q, v, mask]), want, k=32, magnitude=4.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nq,nkv", [(6, 2), (4, 1), (3, 3), (8, 4)])
def test_functional_op_takes_fewer_key_value_heads(rng, backend, nq, nkv):
    """fl.multi_head_attention with key/value kernels of G heads (grouped-query attention)
    is the op with each of those heads repeated for its nq / nkv query heads; the projection
    runs once per key/value head. A G that does not divide the query heads is refused."""
    b, t, s, d, h = 2, 5, 7, 12, 4
    q, v = rng.standard_normal((b, t, d)).astype(F32), rng.standard_normal((b, s, d)).astype(F32)
    wq = rng.standard_normal((d, nq, h)).astype(F32)
    wo = rng.standard_normal((nq, h, d)).astype(F32)
    wk, wv = rng.standard_normal((2, d, nkv, h)).astype(F32)
    bk, bv = rng.standard_normal((2, nkv, h)).astype(F32)
    r = nq // nkv
    kw = dict(query_kernel=wq, output_kernel=wo, use_causal_mask=True,
              return_attention_scores=True)
    with fl.use_backend(backend):
        got, got_w = fl.multi_head_attention(q, v, key_kernel=wk, value_kernel=wv,
                                             key_bias=bk, value_bias=bv, **kw)
        want, want_w = fl.multi_head_attention(
            q, v, key_kernel=np.repeat(wk, r, axis=1), value_kernel=np.repeat(wv, r, axis=1),
            key_bias=np.repeat(bk, r, axis=0), value_bias=np.repeat(bv, r, axis=0), **kw)
        assert got.shape == (b, t, d) and got_w.shape == (b, nq, t, s)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-5, atol=1e-6)
        if nq > 1:
            with pytest.raises(ValueError, match="kv_heads dividing num_heads"):
                fl.multi_head_attention(q, v, key_kernel=wk[:, :1].repeat(nq + 1, axis=1),
                                        value_kernel=wv[:, :1].repeat(nq + 1, axis=1), **kw)


def test_the_layer_keeps_its_key_value_heads(rng):
    """The layer's call weights are its own (G key/value heads): nothing repeated in memory."""
    layer = L.GroupQueryAttention(head_dim=4, num_query_heads=6, num_key_value_heads=2)
    x = rng.standard_normal((1, 3, 8)).astype(F32)
    layer(x, x)
    kernels = [w.shape for w in layer._call_weight_values[:4]]
    assert kernels == [(8, 6, 4), (8, 2, 4), (8, 2, 4), (6, 4, 8)]
