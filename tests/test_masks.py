"""Keras's implicit masks: Embedding(mask_zero), Masking, and how models pass masks on.

Whole models are compared with Keras 3 (tests/golden/make_models_masks.py wrote
masks.npz and models_masks.npz; the latter's model files are also loaded by
tests/test_load_keras.py). Each case is built here with fastlayers, layer for layer, and
run on both paths. docs/semantics.md §22 states the rules.
"""

from __future__ import annotations

import copy
import pickle

import golden_models
import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
GOLDEN = golden_models.read(("masks.npz", "models_masks.npz"))


def golden(case: str, part: str) -> list[np.ndarray]:
    return golden_models.parts(GOLDEN, case, part)


VOCAB = 11


# ---- the Keras models, built with fastlayers ---------------------------------------------


def masks_emb_lstm():
    inp = Input(shape=(None,), dtype="int32", name="ids")
    e = L.Embedding(VOCAB, 4, mask_zero=True)(inp)
    return Model(inp, L.Dense(2)(L.LSTM(5)(e)))


def masks_emb_bigru_lstm():
    inp = Input(shape=(7,), dtype="int32")
    e = L.Embedding(VOCAB, 3, mask_zero=True)(inp)
    seq = L.Bidirectional(L.GRU(4, return_sequences=True))(e)
    d = L.Dropout(0.2)(L.Dense(4, activation="tanh")(seq))
    return Model(inp, L.LSTM(3)(d))


def masks_masking_lstm():
    inp = Input(shape=(6, 3))
    masked = L.Masking(mask_value=0.0)(inp)
    inner = Sequential([L.LSTM(4, return_sequences=True), L.Activation("relu")])
    return Model(inp, L.GRU(2)(inner(masked)))


def masks_emb_mha():
    inp = Input(shape=(7,), dtype="int32")
    e = L.Embedding(VOCAB, 6, mask_zero=True)(inp)
    a = L.MultiHeadAttention(num_heads=2, key_dim=3)(e, e)
    c = L.MultiHeadAttention(num_heads=1, key_dim=2)(a, a, use_causal_mask=True)
    return Model(inp, [a, L.Dense(2)(c)])


def masks_emb_attention():
    q_in = Input(shape=(7,), dtype="int32", name="q_ids")
    v_in = Input(shape=(7,), dtype="int32", name="v_ids")
    qe = L.Embedding(VOCAB, 4, mask_zero=True)(q_in)
    ve = L.Embedding(VOCAB, 4, mask_zero=True)(v_in)
    dot = L.Attention(use_scale=True)([qe, ve])
    add = L.AdditiveAttention()([qe, ve, ve])
    return Model([q_in, v_in], [dot, L.LSTM(3)(add)])


def masks_states():
    inp = Input(shape=(7,), dtype="int32")
    e = L.Embedding(VOCAB, 3, mask_zero=True)(inp)
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(e)
    out, hf, hb = L.Bidirectional(L.GRU(2, return_state=True), merge_mode="sum")(seq)
    bi2 = L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode=None)(seq)
    last = L.GRU(2, go_backwards=True)(bi2[1])
    return Model(inp, [seq, h, c, out, hf, hb, last])


def masks_nested():
    inner_in = Input(shape=(7,), dtype="int32")
    inner = Model(inner_in, L.Embedding(VOCAB, 3, mask_zero=True)(inner_in))
    head = Sequential([Input(shape=(7, 3)), L.Dense(3), L.LSTM(2)])
    inp = Input(shape=(7,), dtype="int32")
    e = inner(inp)
    flat = L.Dense(2)(L.Flatten()(e))
    return Model(inp, [head(e), L.LSTM(2)(e), flat])


def masks_initial_state():
    inp = Input(shape=(7,), dtype="int32")
    h_in = Input(shape=(3,))
    e = L.Embedding(VOCAB, 2, mask_zero=True)(inp)
    seq = L.GRU(3, return_sequences=True)(e, initial_state=h_in)
    return Model([inp, h_in], [seq, L.LSTM(2)(seq)])


CASES = {f.__name__: f for f in (masks_emb_lstm, masks_emb_bigru_lstm, masks_masking_lstm,
                                   masks_emb_mha, masks_emb_attention, masks_states,
                                   masks_nested, masks_initial_state)}


def assert_like_keras(case: str, got) -> None:
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    want = golden(case, "out")
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32
        finite_max = float(np.abs(w[np.isfinite(w)]).max(initial=0.0))
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * max(1.0, finite_max))


def _model(case: str):
    mdl = CASES[case]()
    weights = golden(case, "weights")
    assert [w.shape for w in mdl.get_weights()] == [w.shape for w in weights]
    mdl.set_weights(weights)
    return mdl


def test_every_case_has_keras_outputs():
    assert sorted({k.split(".")[0] for k in GOLDEN}) == sorted(CASES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_models_pass_masks_like_keras(case, backend):
    mdl = _model(case)
    inputs = golden(case, "inputs")
    with fl.use_backend(backend):
        assert_like_keras(case, mdl(inputs if len(inputs) > 1 else inputs[0]))
        # predict splits the batch: the masks are split with it.
        assert_like_keras(case, mdl.predict(inputs if len(inputs) > 1 else inputs[0],
                                            batch_size=2))


@pytest.mark.parametrize("case", sorted(CASES))
def test_without_masks_the_results_differ(case):
    """The fixtures do exercise the masks: dropping them (mask_zero=False, a Masking
    value no step has) changes the outputs."""
    mdl = _model(case)
    for layer in _all_layers(mdl):
        if isinstance(layer, L.Embedding):
            layer.mask_zero = layer.supports_masking = False
        if isinstance(layer, L.Masking):
            layer.mask_value = 12345.0
    inputs = golden(case, "inputs")
    got = mdl(inputs if len(inputs) > 1 else inputs[0])
    got = got if isinstance(got, list) else [got]
    assert any(not np.allclose(g, w, atol=1e-4) for g, w in zip(got, golden(case, "out")))


def _all_layers(mdl):
    for layer in mdl.layers:
        yield layer
        if isinstance(layer, (Model, Sequential)):
            yield from _all_layers(layer)


def test_sequential_without_input_and_direct_masks(rng):
    """A Sequential built by its first call passes masks too; direct calls carry no mask
    (arrays cannot), so compute_mask gives the mask to pass by hand."""
    x = golden("masks_emb_lstm", "inputs")[0]
    mdl = _model("masks_emb_lstm")
    emb, lstm, dense = mdl.layers[1:]
    seq = Sequential([emb, lstm, dense])
    assert_like_keras("masks_emb_lstm", seq(x))
    by_hand = dense(lstm(emb(x), mask=emb.compute_mask(x)))
    assert_like_keras("masks_emb_lstm", by_hand)
    assert not np.allclose(dense(lstm(emb(x))), by_hand, atol=1e-4)


# ---- the protocol ----------------------------------------------------------------------


def test_supports_masking_values_follow_keras():
    yes = [L.Dense(2), L.Activation("relu"), L.Softmax(), L.Dropout(0.1),
           L.SpatialDropout1D(0.1), L.SpatialDropout2D(0.1), L.GaussianNoise(0.1),
           L.GaussianDropout(0.1), L.ActivityRegularization(), L.LSTM(2), L.GRU(2),
           L.Bidirectional(L.LSTM(2)), L.Attention(), L.AdditiveAttention(),
           L.MultiHeadAttention(1, 2), L.Masking(), L.Embedding(3, 2, mask_zero=True)]
    no = [L.Flatten(), L.Conv2D(2, 1), L.Embedding(3, 2)]
    assert all(layer.supports_masking for layer in yes)
    assert not any(layer.supports_masking for layer in no)
    m = np.array([[True, False]])
    assert L.Dense(2).compute_mask(None, m) is m
    assert L.Flatten().compute_mask(None, m) is None


def test_rnn_and_attention_compute_mask():
    m = np.array([[True, False, True]])
    assert L.LSTM(2).compute_mask(None, m) is None
    assert L.LSTM(2, return_sequences=True).compute_mask(None, m) is m
    assert L.LSTM(2, return_state=True).compute_mask(None, m) == [None, None, None]
    assert L.GRU(2, return_sequences=True, return_state=True).compute_mask(None, [m])[0] is m
    bi = L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode=None)
    assert bi.compute_mask(None, m) == (m, m)
    bi = L.Bidirectional(L.LSTM(2, return_state=True))
    assert bi.compute_mask(None, m) == [None] * 5
    np.testing.assert_array_equal(L.Attention().compute_mask(None, [m, None]), m)
    assert L.Attention().compute_mask(None, [None, m]) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_mask_argument(backend, rng):
    """model(x, mask=m) gives the inputs' masks, as Keras's call(mask=...)."""
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    m = np.array([[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0]], dtype=bool)
    inp = Input(shape=(6, 4))
    lstm = L.LSTM(3, return_sequences=True, seed=1)
    mdl = Model(inp, L.Dense(2, seed=2)(lstm(inp)))
    seq = Sequential([Input(shape=(6, 4)), lstm, mdl.layers[-1]])
    with fl.use_backend(backend):
        want = mdl.layers[-1](lstm(x, mask=m))
        np.testing.assert_array_equal(mdl(x, mask=m), want)
        np.testing.assert_array_equal(mdl(x, mask=[m]), want)
        np.testing.assert_array_equal(seq(x, mask=m), want)
        np.testing.assert_array_equal(mdl(x), mdl.layers[-1](lstm(x)))


def test_explicit_mask_wins_and_ops_drop_masks(rng):
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 0]])
    inp = Input(shape=(4,), dtype="int32")
    flags = Input(shape=(4,), dtype="bool")
    e = L.Embedding(5, 3, mask_zero=True, seed=1)(inp)
    lstm = L.LSTM(2, return_sequences=True, seed=2)
    explicit = lstm(e, mask=flags)
    through_op = L.LSTM(2, return_sequences=True, seed=3)(fl.softmax(e))  # ops: no mask
    mdl = Model([inp, flags], [explicit, through_op])
    f = np.ones((2, 4), dtype=bool)
    got_explicit, got_op = mdl([ids, f])
    emb = next(x for x in mdl.layers if isinstance(x, L.Embedding))
    np.testing.assert_array_equal(got_explicit, lstm(emb(ids), mask=f))
    np.testing.assert_array_equal(got_op, mdl.layers[-1](fl.softmax(emb(ids))))


def test_multi_head_attention_reads_the_implicit_query_mask_only():
    """Keras ignores an explicit query_mask and uses the query's own mask, also in a model."""
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 5]])
    inp = Input(shape=(4,), dtype="int32")
    qm = Input(shape=(4,), dtype="bool")
    emb = L.Embedding(6, 4, mask_zero=True, seed=1)
    e, e2 = emb(inp), emb(inp)  # (one tensor read twice would lose its mask after the first
    mha = L.MultiHeadAttention(2, 2, seed=2)  # MultiHeadAttention call, as in Keras: below)
    mdl = Model([inp, qm], [mha(e, e), mha(e2, e2, query_mask=qm)])
    a, b = mdl([ids, np.zeros((2, 4), bool)])
    np.testing.assert_array_equal(a, b)
    m = ids != 0
    ev = next(x for x in mdl.layers if isinstance(x, L.Embedding))(ids)
    want = mha(ev, ev, attention_mask=m[:, :, None] & m[:, None, :])
    np.testing.assert_allclose(a, want, rtol=1e-6, atol=1e-6)


def test_layers_in_models_summary_pickle_and_copy():
    mdl = _model("masks_emb_mha")
    x = golden("masks_emb_mha", "inputs")[0]
    lines: list[str] = []
    mdl.summary(print_fn=lines.append)
    assert "(Embedding)" in lines[0] and "(None, 7, 6)" in lines[0]
    for clone in (pickle.loads(pickle.dumps(mdl)), copy.deepcopy(mdl)):
        for a, b in zip(clone(x), mdl(x)):
            np.testing.assert_array_equal(a, b)


def test_loaded_mask_ops_pickle():
    pytest.importorskip("h5py")
    mdl = fl.load_model(golden_models.GOLDEN_DIR / "models" / "masks_masking_lstm.keras")
    x = golden("masks_masking_lstm", "inputs")[0]
    names = [type(x).__name__ for x in mdl.layers]
    assert "Masking" in names and "Sequential" in names
    clone = pickle.loads(pickle.dumps(mdl))
    np.testing.assert_array_equal(clone(x), mdl(x))
    assert_like_keras("masks_masking_lstm", mdl(x))


# ---- Embedding -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "int64",
                                   "uint64", "float16", "float32", "float64"])
def test_embedding_index_dtypes(backend, dtype):
    layer = L.Embedding(7, 3, seed=0)
    ids = np.array([[0, 6, 3], [1, 1, 5]])
    with fl.use_backend(backend):
        out = layer(ids.astype(dtype))
    assert out.dtype == np.float32 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, layer.embeddings[ids])


@pytest.mark.parametrize("shape", [(1,), (2, 1), (1, 7), (3, 5), (2, 3, 4), (0, 4)])
def test_embedding_shapes_and_mask(shape, rng):
    layer = L.Embedding(13, 5, mask_zero=True, seed=1)
    ids = rng.integers(0, 13, shape)
    out = layer(ids)
    assert out.shape == shape + (5,)
    np.testing.assert_array_equal(out, layer.get_weights()[0][ids])
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)
    assert L.Embedding(13, 5).compute_mask(ids) is None


def test_embedding_bool_and_lists_and_weights():
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    layer = L.Embedding(4, 2, weights=table)
    np.testing.assert_array_equal(layer([[3, 0]]), table[[[3, 0]]])
    np.testing.assert_array_equal(layer(np.array([True, False])), table[[1, 0]])
    layer = L.Embedding(4, 2, weights=[table])
    np.testing.assert_array_equal(layer.get_weights()[0], table)
    assert layer.get_config() == {"name": layer.name, "input_dim": 4, "output_dim": 2,
                                  "embeddings_initializer": "uniform", "mask_zero": False,
                                  "seed": None}
    first = L.Embedding(50, 40, seed=3)
    first.build()
    values = first.get_weights()[0]
    assert values.shape == (50, 40) and np.abs(values).max() <= 0.05  # Keras's "uniform"


@pytest.mark.parametrize(
    "ids, match",
    [
        (np.array([[1.5, 2.0]]), "whole numbers"),
        (np.array([[0.0, -0.25]], dtype=np.float32), "whole numbers"),
        (np.array([[np.nan, 1.0]]), "whole numbers"),
        (np.array([[np.inf]]), "whole numbers"),
        (np.array([[-1, 2]]), r"index -1 is out of range for input_dim=6"),
        (np.array([[6]]), r"index 6 is out of range for input_dim=6"),
        (np.array([[2 ** 40]]), "out of range"),
        (np.array([[-1.0]]), "out of range"),
    ],
)
def test_embedding_bad_indices(ids, match):
    layer = L.Embedding(6, 2, seed=0)
    with pytest.raises(ValueError, match=match) as info:
        layer(ids)
    assert "Embedding" in str(info.value)


def test_embedding_bad_arguments():
    with pytest.raises(TypeError, match="Embedding.*inputs"):
        L.Embedding(6, 2)("ab")
    with pytest.raises(TypeError, match="Embedding.*inputs"):
        L.Embedding(6, 2)(np.array([1 + 2j]))
    for bad in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="Embedding: input_dim"):
            L.Embedding(bad, 2)
        with pytest.raises(ValueError, match="Embedding: output_dim"):
            L.Embedding(2, bad)
    with pytest.raises(TypeError, match="Embedding: mask_zero"):
        L.Embedding(3, 2, mask_zero=1)
    with pytest.raises(ValueError, match="embeddings_initializer"):
        L.Embedding(3, 2, embeddings_initializer="nope")
    with pytest.raises(NotImplementedError, match="lora_rank"):
        L.Embedding(3, 2, lora_rank=4)
    with pytest.raises(ValueError, match=r"weight 0 'embeddings' has shape \(2, 2\)"):
        L.Embedding(3, 2, weights=np.zeros((2, 2)))


def test_embedding_out_of_range_inside_a_model():
    inp = Input(shape=(3,), dtype="int32")
    mdl = Model(inp, L.LSTM(2, seed=1)(L.Embedding(4, 2, mask_zero=True, seed=0)(inp)))
    with pytest.raises(ValueError, match="index 9 is out of range"):
        mdl(np.array([[1, 9, 0]]))


# ---- Masking ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_masking_values(backend):
    x = np.array([[[0, 0], [1, np.nan], [np.inf, 0], [0, -0.0], [0.5, 0.5]]], np.float32)
    with fl.use_backend(backend):
        out = L.Masking()(x)
        np.testing.assert_array_equal(L.Masking().compute_mask(x),
                                      [[False, True, True, False, True]])
        np.testing.assert_array_equal(out, np.where([[[0], [1], [1], [0], [1]]], x, 0))
        half = L.Masking(mask_value=0.5)
        np.testing.assert_array_equal(half.compute_mask(x), [[True] * 4 + [False]])
        np.testing.assert_array_equal(half(x)[0, 4], [0, 0])
        inf = L.Masking(mask_value=np.inf)  # masked inf steps become 0, not NaN
        y = np.array([[[np.inf, np.inf], [1, 2]]], np.float32)
        np.testing.assert_array_equal(inf(y), [[[0, 0], [1, 2]]])
        # NaN equals nothing, not even a NaN mask_value: every step is kept.
        assert L.Masking(mask_value=np.nan).compute_mask(np.full((1, 2, 2), np.nan)).all()


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3), (2, 5, 7), (3, 2, 4, 5)])
def test_masking_shapes(shape, rng):
    x = rng.integers(0, 2, shape).astype(np.float32)
    layer = L.Masking()
    assert layer(x).shape == shape and layer.compute_mask(x).shape == shape[:-1]
    assert layer.get_config() == {"name": layer.name, "mask_value": 0.0}


def test_masking_bad_inputs():
    with pytest.raises(ValueError, match=r"Masking.*inputs must have rank >= 2"):
        L.Masking()(np.zeros(3))
    with pytest.raises(TypeError, match="Masking.*inputs"):
        L.Masking()("abc")
    with pytest.raises(TypeError, match="Masking: mask_value"):
        L.Masking(mask_value="0")
    with pytest.raises(TypeError, match="Masking: mask_value"):
        L.Masking(mask_value=True)


# ---- bad masks ---------------------------------------------------------------------------


def test_bad_mask_arguments_and_shapes(rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    inp = Input(shape=(5, 3))
    mdl = Model(inp, L.LSTM(2, seed=1)(inp))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\), which does not fit"):
        mdl(x, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="a mask needs a batch axis"):
        mdl(x, mask=True)
    with pytest.raises(TypeError, match="mask"):
        mdl(x, mask="yes")
    # A mask that fits the input's leading axes but not what LSTM takes: LSTM says so.
    with pytest.raises(ValueError, match="LSTM.*mask"):
        mdl(x, mask=np.ones((2, 5, 3), bool))
    q, v = Input(shape=(5, 3)), Input(shape=(4, 3))
    att = Model([q, v], L.Attention()([q, v]))
    with pytest.raises(ValueError, match="one mask"):
        att([x, x[:, :4]], mask=[np.ones((2, 5), bool)])
    with pytest.raises(ValueError, match=r"does not fit an input of shape \(None, 4, 3\)"):
        att([x, x[:, :4]], mask=[None, np.ones((2, 5), bool)])
    # A direct call checks the masks it is given.
    with pytest.raises(ValueError, match="value_mask"):
        L.Attention()([x, x[:, :4]], mask=[None, np.ones((2, 5), bool)])
    with pytest.raises(ValueError, match="mask must be a list"):
        L.Attention()([x, x], mask=np.ones((2, 5), bool))


def test_implicit_mask_that_does_not_fit_the_softmax_layer(rng):
    """Keras hands Softmax the (batch, steps) mask of a (batch, steps, features) input;
    it does not broadcast unless steps == features, and both refuse it."""
    inp = Input(shape=(4, 3))
    mdl = Model(inp, L.Softmax()(L.Masking()(inp)))
    with pytest.raises(ValueError, match="softmax: mask of shape"):
        mdl(rng.standard_normal((2, 4, 3)).astype(np.float32))


# ---- edge shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch, steps", [(1, 1), (1, 2), (3, 13), (2, 17), (5, 16)])
def test_masked_models_equal_masked_direct_calls(backend, batch, steps, rng):
    """Embedding -> Bidirectional(LSTM) -> Dense -> GRU and -> Attention, with random
    padding (also whole padded rows), equal the layers called one by one with the masks
    passed by hand."""
    ids = rng.integers(0, 4, (batch, steps))
    ids[0, -1] = 0
    inp = Input(shape=(None,), dtype="int32")
    emb = L.Embedding(4, 4, mask_zero=True, seed=1)
    bi = L.Bidirectional(L.LSTM(2, return_sequences=True, seed=2))
    dense = L.Dense(4, seed=3)
    gru = L.GRU(3, seed=4)
    att = L.Attention()
    e = emb(inp)
    h = dense(bi(e))
    mdl = Model(inp, [gru(h), att([h, e])])
    m = ids != 0
    with fl.use_backend(backend):
        got_gru, got_att = mdl(ids)
        ev = emb(ids)
        hv = dense(bi(ev, mask=m))
        np.testing.assert_array_equal(got_gru, gru(hv, mask=m))
        np.testing.assert_array_equal(got_att, att([hv, ev], mask=[m, m]))


def test_rnn_with_initial_state_runs_unmasked_like_keras(rng):
    ids = np.array([[1, 0, 2, 0], [0, 3, 3, 0]])
    h0 = rng.standard_normal((2, 3)).astype(np.float32)
    inp, h_in = Input(shape=(4,), dtype="int32"), Input(shape=(3,))
    emb = L.Embedding(4, 2, mask_zero=True, seed=1)
    gru = L.GRU(3, return_sequences=True, seed=2)
    lstm = L.LSTM(2, seed=3)
    seq = gru(emb(inp), initial_state=h_in)
    mdl = Model([inp, h_in], [seq, lstm(seq)])
    got_seq, got_last = mdl([ids, h0])
    want_seq = gru(emb(ids), initial_state=h0)  # no mask: two tensor arguments
    np.testing.assert_array_equal(got_seq, want_seq)
    np.testing.assert_array_equal(got_last, lstm(want_seq, mask=ids != 0))  # mask passed on
