"""The functional API (Input, Model), Sequential and symbolic ops, against Keras.

tests/golden/models.npz holds whole Keras models' weights (in Keras's get_weights
order), inputs and outputs (tests/golden/make_golden_models.py). Each test builds the
same model with fastlayers - the seed article's code with only the imports swapped -
loads the weights with set_weights, and compares on both paths.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from conftest import NUMPY_ONLY
from golden_models import assert_keras_outputs, golden

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers.layers import GRU, LSTM, Attention, Conv2D, Dense, Flatten

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def check_against_keras(case: str, mdl, backend: str) -> None:
    weights = golden(case, "weights")
    assert [w.shape for w in mdl.get_weights()] == [w.shape for w in weights]
    mdl.set_weights(weights)
    inputs = golden(case, "inputs")
    with fl.use_backend(backend):
        got = mdl(inputs if len(inputs) > 1 else inputs[0])
    assert_keras_outputs(case, got)


# ---- the seed article's four examples, as written, imports swapped -----------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_fully_connected(backend):
    x = golden("seed_dense", "inputs")[0]
    inp = Input(shape=x.shape[1:])
    hidden = Dense(8, activation="relu")(inp)
    flat = Flatten()(hidden)
    out = Dense(2)(flat)
    mdl = Model(inputs=inp, outputs=out)
    check_against_keras("seed_dense", mdl, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_conv(backend):
    x = golden("seed_conv", "inputs")[0]
    inp = Input(shape=x.shape[1:])
    conv = Conv2D(8, (3, 3), activation="relu")(inp)
    flat = Flatten()(conv)
    out = Dense(2)(flat)
    mdl = Model(inputs=inp, outputs=out)
    check_against_keras("seed_conv", mdl, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_lstm_with_states(backend):
    x = golden("seed_lstm", "inputs")[0]
    inp = Input(shape=x.shape[1:])
    lstm, hstate, cstate = LSTM(8, return_sequences=False, return_state=True)(inp)
    out = Dense(2)(lstm)
    mdl = Model(inputs=inp, outputs=[out, hstate, cstate])
    check_against_keras("seed_lstm", mdl, backend)
    out, hstate, cstate = mdl(x)
    assert hstate.shape == cstate.shape == (1, 8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_attention_head(backend):
    qry, key, values = golden("seed_attention", "inputs")
    q_in = Input(shape=(None, 32))
    k_in = Input(shape=(None, 32))
    v_in = Input(shape=(1, 32))
    q = Dense(4, activation="linear")(q_in)
    k = Dense(4, activation="linear")(k_in)
    v = Dense(4, activation="linear")(v_in)
    score = fl.matmul(q, k, transpose_b=True)
    attention = fl.softmax(score, axis=-1)
    output = fl.matmul(attention, v)
    mdl = Model(inputs=[q_in, k_in, v_in], outputs=[score, attention, output])
    check_against_keras("seed_attention", mdl, backend)
    # The article then calls the same model with 8 queries instead of 16.
    sc, attn, out = mdl([qry[:, :8], key, values])
    assert (sc.shape, attn.shape, out.shape) == ((4, 8, 1), (4, 8, 1), (4, 8, 4))


# ---- Sequential, shared layers, nested models, several inputs and outputs -----------


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential(backend):
    mdl = Sequential([Input(shape=(10,)), Dense(16, activation="gelu"),
                      Dense(4, activation="softmax")])
    check_against_keras("sequential_mlp", mdl, backend)
    assert [x.name for x in mdl.layers] == [mdl.layers[0].name, mdl.layers[1].name]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_input", [True, False])
def test_sequential_takes_its_one_input_in_a_list(backend, with_input):
    """[x] and (x,) are x, as for Keras's Sequential and fastlayers' Model: they read as one
    array with a leading axis of 1 (a shape error with an Input, a (1, 3, 2) result
    without one)."""
    layers = [Dense(5, activation="relu"), Dense(2)]
    mdl = Sequential(([Input(shape=(4,))] if with_input else []) + layers)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with fl.use_backend(backend):
        want = mdl(x)
        assert want.shape == (3, 2)
        for given in ([x], (x,)):
            np.testing.assert_array_equal(mdl(given), want)
            # (NumPy's BLAS may round a 2-row batch otherwise)
            np.testing.assert_allclose(mdl.predict(given, batch_size=2), want, rtol=1e-6,
                                       atol=1e-7)
            np.testing.assert_array_equal(mdl.predict_on_batch(given), want)
        for two in ([x, x], (x, x)):
            with pytest.raises(ValueError, match="takes one input, got a .* of 2 inputs"):
                mdl(two)
    # A list of numbers is one input, NumPy scalars too (a review find: they have a shape)
    col = Sequential([Input(shape=(1,)), Dense(2)])
    want = col(np.array([[2.0], [3.0]], np.float32))
    for given in ([2.0, 3.0], list(np.array([2.0, 3.0], np.float32)), [[2.0], [3.0]]):
        np.testing.assert_array_equal(col(given), want)
    np.testing.assert_array_equal(col([np.float32(2.0)]), want[:1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_layer_nested_model_two_inputs_two_outputs(backend):
    inner_in = Input(shape=(6, 4))
    inner = Model(inner_in, GRU(4, return_sequences=True)(inner_in), name="inner")
    a_in = Input(shape=(6, 4), name="a")
    b_in = Input(shape=(6, 4), name="b")
    shared = Dense(4, activation="tanh", name="shared")
    ha = inner(shared(a_in))
    hb = shared(b_in)
    att = Attention()([ha, hb])
    out1 = Dense(3, name="head1")(Flatten()(att))
    out2 = LSTM(2, name="head2")(hb)
    mdl = Model([a_in, b_in], [out1, out2])
    check_against_keras("shared_nested_multi", mdl, backend)
    a, b = golden("shared_nested_multi", "inputs")
    by_name = mdl({"a": a, "b": b})
    np.testing.assert_array_equal(by_name[0], mdl([a, b])[0])
    assert mdl.get_layer("shared") is shared
    assert mdl.get_layer("inner") is inner


# ---- model behaviour ------------------------------------------------------------------


def _small_model():
    inp = Input(shape=(3,), name="x")
    mid = Dense(5, activation="relu", seed=1)(inp)
    return Model(inp, [Dense(2, seed=2)(mid), mid])


def test_predict_batches_and_concatenates(capsys):
    mdl = _small_model()
    x = np.random.default_rng(0).standard_normal((70, 3)).astype(np.float32)
    whole = mdl(x)
    for bs in (None, 1, 7, 32, 70, 100):
        got = mdl.predict(x, batch_size=bs)
        assert isinstance(got, list) and len(got) == 2
        for g, w in zip(got, whole):
            np.testing.assert_array_equal(g, w)  # rows are independent: batching is exact
    assert capsys.readouterr().err == ""
    mdl.predict(x, batch_size=32, verbose=1)
    err = capsys.readouterr().err
    assert "3/3" in err and "[" in err
    with pytest.raises(ValueError, match="batch_size"):
        mdl.predict(x, batch_size=0)


def test_predict_progress_and_verbose_values(capsys, monkeypatch):
    """verbose as Keras takes it: 1 / True / "auto" a bar on stderr, redrawn at most every
    0.1 s (it was redrawn for every batch: 625 updates for 20,000 rows), with an estimate of
    the time left; 2 one line at the end; 0 / False / None / "silent" nothing; anything else
    a ValueError (it was taken as 1)."""
    from fastlayers.models import base

    mdl = _small_model()
    x = np.zeros((50, 3), np.float32)
    clock = iter(np.arange(0.0, 100.0, 0.04))  # each batch "takes" 0.04 s
    monkeypatch.setattr(base.time, "perf_counter", lambda: float(next(clock)))
    mdl.predict(x, batch_size=1, verbose="auto")
    err = capsys.readouterr().err
    draws = err.count("\r")
    last = err.rsplit("\r", 1)[1]
    assert last.rstrip(" \n") == "50/50 [" + "=" * 30 + "] 2.0s" and last.endswith("\n")
    assert len(last) - 1 >= len(err.rsplit("\r", 2)[1])  # padded over the longer line before
    assert 15 <= draws <= 25 and "ETA" in err  # every 0.1 s of 2 s, not 50 times
    monkeypatch.undo()
    mdl.predict(x, batch_size=7, verbose=2)
    err = capsys.readouterr().err
    assert err.startswith("8/8 - ") and err.count("\n") == 1 and "[" not in err
    for quiet in (0, False, None, "silent"):
        mdl.predict(x, verbose=quiet)
    assert capsys.readouterr().err == ""
    for bad in (3, -1, "bogus", 1.0):
        with pytest.raises(ValueError, match="verbose must be"):
            mdl.predict(x, verbose=bad)


@pytest.mark.parametrize("bad", ["abc", None, np.array(["a", "b"]), [None, None]])
def test_predict_of_something_not_an_array(bad):
    """predict("abc") said the inputs' batch sizes differ (ValueError); it names the type."""
    with pytest.raises(TypeError, match="predict takes arrays of real numbers"):
        _small_model().predict(bad)


def test_nested_lists_as_the_input_of_a_one_input_model():
    mdl = _small_model()
    rows = [[1.0, 2.0, 1.0], [0.5, -1.0, 2.0]]
    want = mdl(np.array(rows, np.float32))
    for got in (mdl(rows), mdl.predict(rows, batch_size=1),
                mdl([[np.float32(1), np.int64(2), np.True_], [0.5, -1.0, 2.0]])):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_predict_over_a_source_of_batches(capsys):
    """predict takes what Keras's predict takes besides arrays: an indexable dataset (a
    PyDataset's __len__ / __getitem__), a generator, an iterable (a DataLoader), batches
    unpacked as Keras does ((x,), (x, y), (x, y, w)); steps stops a generator. They were
    refused, or failed in NumPy (a Keras-user audit)."""
    mdl = _small_model()
    x = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    want = mdl(x)
    cuts = [x[0:4], x[4:8], x[8:10]]

    class Dataset:  # keras.utils.PyDataset's protocol
        def __len__(self):
            return len(cuts)

        def __getitem__(self, i):
            return cuts[i], np.zeros(len(cuts[i]))  # (x, y)

    class Loader:  # an iterable with a length, as a torch DataLoader
        def __len__(self):
            return len(cuts)

        def __iter__(self):
            return iter([(c,) for c in cuts])

    sources = [Dataset(), (c for c in cuts), Loader(), iter([[c, None, None] for c in cuts])]
    for source in sources:
        got = mdl.predict(source)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    got = mdl.predict((c for c in cuts), steps=2)
    np.testing.assert_array_equal(got[0], want[0][:8])
    assert capsys.readouterr().err == ""
    mdl.predict((c for c in cuts), verbose=1)
    assert re.search(r"\r3 batches - [0-9.]+s\n$", capsys.readouterr().err)
    mdl.predict(Dataset(), verbose=2)
    assert capsys.readouterr().err.startswith("3/3 - ")
    with pytest.raises(ValueError, match="no batches"):
        mdl.predict(iter([]))
    with pytest.raises(ValueError, match="a tuple of 4"):
        mdl.predict(iter([(x, x, x, x)]))


def test_inputs_as_lists_of_numbers_inside_containers():
    """A dict or list of inputs may give an input as nested lists of numbers, in a call and
    in predict (predict took the dict's lists apart: "same batch size; got shapes [(1,),
    ...]"; [lists, array] failed in NumPy)."""
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    mdl = Model({"a": a, "b": b}, Dense(2, seed=3)(fl.layers.Concatenate()([a, b])))
    xa = np.arange(8, dtype=np.float32).reshape(4, 2)
    xb = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    want = mdl({"a": xa, "b": xb})
    for inputs in ({"a": xa.tolist(), "b": xb.tolist()}, [xa.tolist(), xb], [xa, xb.tolist()]):
        np.testing.assert_array_equal(mdl(inputs), want)
        np.testing.assert_array_equal(mdl.predict(inputs, batch_size=3), want)


def test_summary_lists_layers_shapes_and_params():
    mdl = _small_model()
    lines = []
    mdl.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "x (InputLayer)" in text and "(None, 3)" in text
    assert "(None, 5)" in text and "(None, 2)" in text
    assert f"Total params: {3 * 5 + 5 + 5 * 2 + 2:,}" in text
    # Keras's other arguments run as written, and give the same table
    again = []
    mdl.summary(print_fn=again.append, expand_nested=True, show_trainable=True,
                positions=[0.3, 0.6, 1.0], layer_range=None)
    assert again == lines


def test_summary_lists_a_shared_layer_once():
    """As Keras: one row for a layer called on several inputs (it was a row per call, each
    with the layer's 10 parameters); its output shape "multiple" when the calls' differ."""
    a, b, c = Input(shape=(4,), name="a"), Input(shape=(4,), name="b"), Input(shape=(3, 4))
    shared = Dense(2, name="shared")
    for outputs, shape in (([shared(a), shared(b)], "(None, 2)"),
                           ([shared(a), shared(b), shared(c)], "multiple")):
        mdl = Model([a, b, c][:len(outputs)], outputs)
        printed = []
        mdl.summary(print_fn=printed.append)
        lines = "\n".join(printed).splitlines()
        rows = [line for line in lines if "shared (Dense)" in line]
        assert len(rows) == 1 and shape in rows[0] and rows[0].endswith(" 10"), lines
        assert any("Total params: 10" in line for line in lines)


def test_weights_round_trip_and_order():
    mdl = _small_model()
    w = mdl.get_weights()
    assert [a.shape for a in w] == [(3, 5), (5,), (5, 2), (2,)]
    new = [np.full_like(a, 0.5) for a in w]
    mdl.set_weights(new)
    for a, b in zip(mdl.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected 4 arrays"):
        mdl.set_weights(new[:3])
    with pytest.raises(TypeError, match=r"set_weights expects a list of arrays, got ndarray"):
        mdl.set_weights(new[0])


def test_symbolic_errors_are_clear():
    inp = Input(shape=(4,))
    with pytest.raises(ValueError, match="dense"):
        fl.dense(inp, np.ones((5, 2)))  # 4 features, kernel for 5
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(inp) + 1
    with pytest.raises(ValueError, match="disconnected"):
        other = Input(shape=(4,))
        Model(inp, Dense(2)(other))
    with pytest.raises(TypeError, match="outputs"):
        Model(inp, np.ones(3))
    with pytest.raises(ValueError, match="Input"):
        Model(Dense(2)(inp), inp)
    mdl = Model(inp, Dense(2)(inp))
    with pytest.raises(ValueError, match=r"expected shape \(None, 4\)"):
        mdl(np.ones((2, 5)))
    with pytest.raises(ValueError, match="expected 1 inputs"):
        mdl([np.ones((2, 4)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="no layer named"):
        mdl.get_layer("nope")
    with pytest.raises(ValueError, match="shape"):
        Input(shape=(-1,))


def test_unknown_dimensions_follow_the_inputs():
    inp = Input(shape=(None, 6))
    seq = LSTM(3, return_sequences=True)(inp)
    assert seq.shape == (None, None, 3)
    last = LSTM(3)(inp)
    assert last.shape == (None, 3)
    fixed = Input(shape=(7, 6), batch_size=2)
    assert Dense(3)(fixed).shape == (2, 7, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul(backend):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 1, 5, 7)).astype(np.float32)
    b = rng.standard_normal((3, 7, 4)).astype(np.float32)
    with fl.use_backend(backend):
        got = fl.matmul(a, b)
        assert got.shape == (2, 3, 5, 4)
        np.testing.assert_allclose(got, np.matmul(a.astype(np.float64), b), rtol=1e-5, atol=1e-5)
        bt = np.swapaxes(b, -1, -2).copy()
        np.testing.assert_allclose(fl.matmul(a, bt, transpose_b=True), got, rtol=1e-6,
                                   atol=1e-6)
        for m, k, n in [(1, 1, 1), (17, 31, 33), (6, 16, 15), (0, 3, 2), (5, 0, 3), (4, 3, 0)]:
            x = rng.standard_normal((m, k)).astype(np.float32)
            y = rng.standard_normal((k, n)).astype(np.float32)
            np.testing.assert_allclose(fl.matmul(x, y), x.astype(np.float64) @ y, rtol=1e-5,
                                       atol=1e-5)
    with pytest.raises(ValueError, match="do not chain"):
        fl.matmul(np.ones((2, 3)), np.ones((4, 2)))


@pytest.mark.parametrize("m", [1, 31, 32, 33, 47])  # 32 rows and fewer read b in place
@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_matmul_equals_its_entries(m, backend):
    # Each batch entry of a batched product has the bits of that entry's 2-D product (on C++,
    # one fl::gemm per entry in _core.matmul_batched; broadcast batch axes included).
    rng = np.random.default_rng(m)
    a = rng.standard_normal((3, 1, m, 19)).astype(np.float32)
    b = rng.standard_normal((2, 19, 17)).astype(np.float32)
    with fl.use_backend(backend):
        got = fl.matmul(a, b)
        for i in range(3):
            for j in range(2):
                np.testing.assert_array_equal(got[i, j], fl.matmul(a[i, 0], b[j]))
    np.testing.assert_allclose(got, np.matmul(a.astype(np.float64), b), rtol=1e-5, atol=1e-5)


# fl::gemm_batched's branches: small matrix-vector products as b^T A^T (A^T in one block of 32
# or 64 columns, or two: 80 and 100 rows), larger ones and other small products split over the
# threads (few rows read b in place in one column block; more than that block's 512 columns at
# 32 rows, or more than 32 rows, go through fl::gemm), a batch of one, k = 0, and few products
# of >= 1M multiply-adds each split by fl::gemm.
@pytest.mark.parametrize(
    "nb, m, k, n",
    [(3000, 8, 8, 1), (50, 100, 2, 1), (7, 80, 3, 1), (10, 40, 5, 1), (20, 40, 9, 1),
     (67, 3, 5, 7), (40, 32, 9, 512), (9, 32, 3, 513), (30, 33, 17, 16), (1, 5, 4, 3),
     (12, 4, 0, 6), (5, 7, 0, 1), (3, 96, 128, 96), (2, 128, 64, 129)],
)
@pytest.mark.skipif(NUMPY_ONLY, reason="a NumPy-only run has no compiled core")
def test_batched_matmul_bits_on_any_thread_count(nb, m, k, n):
    rng = np.random.default_rng(nb * 1000 + m)
    a = rng.standard_normal((nb, m, k)).astype(np.float32)
    b = rng.standard_normal((nb, k, n)).astype(np.float32)
    old = fl.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            fl.set_num_threads(threads)
            outs.append(fl.matmul(a, b))
        fl.set_num_threads(1)
        entries = [fl.matmul(a[i], b[i]) for i in range(nb)]
    finally:
        fl.set_num_threads(old)
    for got in outs:
        assert got.shape == (nb, m, n)
        for i in range(nb):
            np.testing.assert_array_equal(got[i], entries[i])
    np.testing.assert_allclose(outs[0], np.matmul(a.astype(np.float64), b), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(NUMPY_ONLY, reason="a NumPy-only run has no compiled core")
def test_core_batched_matmul_refuses_what_does_not_align():
    core = fl._backend._core
    with pytest.raises(ValueError, match="do not align"):
        core.matmul_batched(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="do not align"):
        core.matmul_batched(np.ones((2, 3, 4), np.float32), np.ones((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"a must have ndim 3, got 2"):
        core.matmul_batched(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="do not broadcast"):
        fl.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="rank"):
        fl.matmul(np.ones(3), np.ones((3, 2)))
    with pytest.raises(TypeError, match="real .* dtype, got dtype complex128"):
        fl.matmul(np.ones((2, 2), complex), np.ones((2, 2)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_inputs_and_outputs(backend):
    """Inputs and outputs nested in lists, tuples and dicts, as Keras allows: model.inputs /
    model.outputs flat in tree.flatten's order (dicts by sorted key), calls take the inputs
    nested or flat and return the outputs' nesting; a model with nested outputs works as a
    layer of another (its outputs indexed by that nesting)."""
    rng = np.random.default_rng(0)
    j, k, m = Input((4,), name="j"), Input((4,), name="k"), Input((2,), name="m")
    da, db, dc = Dense(3), Dense(2), Dense(1)
    a, b, c = da(j), db(k), dc(m)
    model = Model([j, (k, [m])], {"head": a, "aux": [b, (c,)]})
    assert [t.name for t in model.inputs] == ["j", "k", "m"]
    assert [t.shape[-1] for t in model.outputs] == [2, 1, 3]  # aux (b, c), then head
    xj, xk = (rng.standard_normal((5, 4)).astype(np.float32) for _ in range(2))
    xm = rng.standard_normal((5, 2)).astype(np.float32)
    with fl.use_backend(backend):
        want = {"head": da(xj), "aux": [db(xk), (dc(xm),)]}
        for given in ([xj, (xk, [xm])], [xj, xk, xm]):
            got = model(given)
            assert sorted(got) == ["aux", "head"] and isinstance(got["aux"][1], tuple)
            np.testing.assert_array_equal(got["head"], want["head"])
            np.testing.assert_array_equal(got["aux"][0], want["aux"][0])
            np.testing.assert_array_equal(got["aux"][1][0], want["aux"][1][0])
        with pytest.raises(ValueError, match="must be nested as the model's"):
            model([xj, [xk]])
        # as a layer: the nested outputs indexed by their nesting
        x2 = [Input((4,)), Input((4,)), Input((2,))]
        o = model([x2[0], (x2[1], [x2[2]])])
        outer = Model(x2, fl.layers.Concatenate()([o["head"], o["aux"][1][0]]))
        np.testing.assert_array_equal(
            outer([xj, xk, xm]), np.concatenate([want["head"], want["aux"][1][0]], axis=-1))
    with pytest.raises(TypeError, match="symbolic tensor"):
        Model(j, [a, [b, "c"]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_inputs_by_structure_by_name_or_flat(backend):
    """A model with nested inputs takes them nested as its own, as a dict by input name, or
    flat in the order of model.inputs; another nesting or other keys are a ValueError (a
    dict by input name was flattened by its sorted keys and misrouted silently; review,
    session 37). A dict inside a dict whose keys are not sorted is refused: Keras's backends
    order it differently."""
    z, y, x = Input((1,), name="z_in"), Input((1,), name="y_in"), Input((1,), name="x_in")
    model = Model({"a": z, "b": [y, x]},
                  fl.layers.Concatenate()([z, fl.layers.Dense(1, seed=3)(y), 100 * x]))
    vz, vy, vx = (np.full((2, 1), v, np.float32) for v in (1.0, 2.0, 3.0))
    with fl.use_backend(backend):
        want = model({"a": vz, "b": [vy, vx]})
        np.testing.assert_array_equal(want[:, 2], [300.0, 300.0])
        for given in ({"z_in": vz, "y_in": vy, "x_in": vx}, [vz, vy, vx]):
            np.testing.assert_array_equal(model(given), want)
        for bad in ({"q": vz, "r": [vy, vx]}, [vz, [vy, vx]], {"z_in": vz, "y_in": vy}):
            with pytest.raises(ValueError, match="must be nested as the model's"):
                model(bad)
    with pytest.raises(NotImplementedError, match="dict inside a dict"):
        Model([z, y, x], {"o": {"y": y, "x": x}})
    Model([z, y, x], {"o": {"x": x, "y": y}})  # sorted keys: the same order on every backend


class _ScaleShift(fl.layers.Layer):
    """A custom layer written as in Keras: build makes its weights with add_weight."""

    def __init__(self, power=1.0, **kwargs):
        super().__init__(**kwargs)
        self.power = power

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
        self.b = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="b",
                                 trainable=False)

    def call(self, x):
        return np.abs(x) ** self.power * self.w + self.b


def test_a_custom_layer_with_build_and_add_weight():
    """Keras's way of writing a layer: build (called before the first call, with the input's
    shape) and add_weight; its weights are those of its add_weight calls, in order, and
    set_weights writes into the arrays its attributes hold. It failed with "no attribute 'b'"
    (a Keras-user audit)."""
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    alone = _ScaleShift(2.0)
    np.testing.assert_array_equal(alone(x), x**2)  # built on the first call: w 1, b 0
    assert [w.shape for w in alone.get_weights()] == [(4,), (4,)]
    inp = Input(shape=(4,))
    layer = _ScaleShift(2.0, name="ss")
    mdl = Model(inp, Dense(2, seed=1)(layer(inp)))
    assert layer.built and mdl.count_params() == 8 + 10
    layer.set_weights([np.full(4, 2.0, np.float32), np.full(4, 0.5, np.float32)])
    np.testing.assert_allclose(layer.w, 2.0)  # the attribute sees set_weights
    np.testing.assert_allclose(layer(x), 2 * x**2 + 0.5, rtol=1e-6)
    np.testing.assert_allclose(mdl(x), mdl.layers[-1](2 * x**2 + 0.5), rtol=1e-6)
    assert len(layer.trainable_weights) == 1 and len(layer.non_trainable_weights) == 1
    again = pickle.loads(pickle.dumps(mdl))
    np.testing.assert_array_equal(again(x), mdl(x))
    with pytest.raises(ValueError, match="weight 1 'b' has shape"):
        layer.set_weights([np.ones(4, np.float32), np.ones(3, np.float32)])
    with pytest.raises(ValueError, match="exists already"):
        layer.add_weight(shape=(1,), name="w")
    with pytest.raises(ValueError, match="computes in float32"):
        layer.add_weight(shape=(1,), dtype="float64", name="z")
    with pytest.raises(ValueError, match="needs a known shape"):
        _ScaleShift()(Input(shape=(None,)))


def test_stateful_rnns_keep_their_states_through_a_model_definition():
    """Defining a model runs each layer on zeros (symbolic shapes); a stateful RNN kept those
    runs' states, so a layer with weights started its first real call from them (0.7-1.0 off)
    and, in a model of open batch size, accepted batch 2 only (a concurrency audit). The
    states are as before the definition: the zeros of reset_states, or none yet."""
    x = np.random.default_rng(0).standard_normal((3, 6, 3)).astype(np.float32)
    ref = LSTM(4, return_sequences=True, seed=1)
    ref(x)
    ref.set_weights([w + 0.5 for w in ref.get_weights()])
    lay = LSTM(4, return_sequences=True, stateful=True)
    lay(x)
    lay.set_weights(ref.get_weights())
    lay.reset_states()
    model = Sequential([Input(shape=(None, 3), batch_size=3), lay])
    assert all(not s.any() for s in lay.states)
    np.testing.assert_array_equal(model(x), ref(x))
    for batch in (3, 5):  # the first call sets the batch size (not the zero run's 2)
        gru = GRU(4, stateful=True)
        bi = fl.layers.Bidirectional(LSTM(2, stateful=True))
        inp = Input(shape=(None, 3))
        open_batch = Model(inp, [gru(inp), bi(inp)])
        assert gru.states is None and bi.forward_layer.states is None
        out = open_batch(np.ones((batch, 4, 3), np.float32))
        assert out[0].shape == (batch, 4) and gru.states[0].shape == (batch, 4)
        assert bi.forward_layer.states[0].shape == (batch, 2)


def test_folding_disabled_is_per_thread():
    """folding.disabled() applies to the thread that entered it, as shape_plan.disabled():
    it saved and restored one process-wide flag, so two threads' overlapping blocks left
    folding off for good (a concurrency audit)."""
    import threading

    from fastlayers.models import folding

    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with folding.disabled():
            a_in.set()
            b_in.wait()
        a_out.set()

    def b():
        a_in.wait()
        seen["other thread during A's block"] = folding._enabled.get()
        with folding.disabled():
            b_in.set()
            a_out.wait()
        seen["B after both blocks"] = folding._enabled.get()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"other thread during A's block": True, "B after both blocks": True}
    assert folding._enabled.get()


def test_review_rank_adjustment_and_predict_inputs():
    """Review of session 38: Keras's rank adjustment held on the first two calls only (the
    third replayed a shape plan recorded on the adjusted array: (1, 3, 1, 3) out, or a rank
    error); predict(steps=k) without batch_size runs all rows in k batches, as Keras's
    array adapter; a list of inputs all given as nested lists works in predict."""
    t = Input(shape=(None,), dtype="int32")
    emb = fl.layers.Embedding(10, 3, seed=1)
    for model in (Model(t, emb(t)), Sequential([Input(shape=(None,), dtype="int32"), emb])):
        ids = np.array([[1, 2, 3]], np.int32)
        want = model(ids)
        for _ in range(4):
            np.testing.assert_array_equal(model(ids[..., None]), want)
        many = np.random.default_rng(0).integers(0, 10, (70, 5)).astype(np.int32)
        np.testing.assert_array_equal(model.predict(many[..., None], batch_size=16),
                                      model(many))
    mdl = _small_model()
    x = np.random.default_rng(1).standard_normal((100, 3)).astype(np.float32)
    for steps in (1, 2, 3, 7):
        got = mdl.predict(x, steps=steps)
        assert got[0].shape == (100, 2)
        np.testing.assert_array_equal(got[0], mdl(x)[0])
    assert mdl.predict(x, steps=2, batch_size=10)[0].shape == (20, 2)
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    two = Model([a, b], Dense(2, seed=3)(fl.layers.Concatenate()([a, b])))
    xa, xb = np.ones((4, 2), np.float32), np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(two.predict([xa.tolist(), xb.tolist()]), two([xa, xb]))


def test_review_summary_takes_keras_line_length_first():
    mdl = _small_model()
    lines = []
    mdl.summary(lines.append, 90)
    wide = []
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as out:
        mdl.summary(90)  # Keras's order: line_length first
    wide = out.getvalue().rstrip("\n").split("\n")
    assert wide == "\n".join(lines).split("\n")


def test_review_sources_without_a_length():
    """A DataLoader of an IterableDataset has __len__ that raises TypeError: a source of
    unknown length (it was a TypeError)."""
    mdl = _small_model()
    x = np.random.default_rng(2).standard_normal((10, 3)).astype(np.float32)

    class NoLength:
        def __len__(self):
            raise TypeError("no len")

        def __iter__(self):
            return iter([x[:4], x[4:]])

    np.testing.assert_array_equal(mdl.predict(NoLength())[0], mdl(x)[0])


class _HalfBuilt(fl.layers.Layer):
    def build(self, input_shape):
        self.s = self.add_weight(shape=(1,), name="s", initializer="ones")
        self.v = self.add_weight(shape=(input_shape[-1],), name="v", initializer="ones")
        super().build(input_shape)  # the Keras idiom: keeps the added weights

    def call(self, x):
        return x * self.v * self.s


def test_review_custom_layers_edge_cases():
    """super().build() kept the weight list (it emptied it), a build that fails part-way is
    undone (the retry said "exists already"), and set_weights works on a layer unpickled from
    read-only out-of-band buffers (Dask's transfers)."""
    layer = _HalfBuilt()
    with pytest.raises(ValueError, match="needs a known shape"):
        layer(Input(shape=(None,)))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(layer(x), x)
    assert [w.shape for w in layer.get_weights()] == [(1,), (4,)] and layer.count_params() == 5
    buffers = []
    data = pickle.dumps(layer, protocol=5, buffer_callback=buffers.append)
    again = pickle.loads(data, buffers=[memoryview(b.raw()).toreadonly() for b in buffers])
    again.set_weights([np.full(1, 2.0, np.float32), np.full(4, 3.0, np.float32)])
    np.testing.assert_array_equal(again(x), 6 * x)
    np.testing.assert_array_equal(layer(x), x)  # the original is untouched


class _ListHeld(fl.layers.Layer):
    def build(self, input_shape):
        self.ws = [self.add_weight(shape=(input_shape[-1],), name=f"w{i}", initializer="ones")
                   for i in range(2)]

    def call(self, x):
        return x * self.ws[0] + self.ws[1]


def test_review2_custom_weights_held_in_a_list_and_lazy_sequentials():
    """set_weights writes into the added arrays, so weights held in a list (a Keras idiom)
    see the new values (a copy put in the attributes left the list's old ones: 8.0 off); a
    custom layer in a Sequential without an Input is built before its first call."""
    x = np.ones((2, 3), np.float32)
    layer = _ListHeld()
    layer(x)
    layer.set_weights([np.full(3, 2.0, np.float32), np.full(3, 5.0, np.float32)])
    np.testing.assert_array_equal(layer(x), 2 * x + 5)
    for model in (Sequential([_ListHeld()]), Sequential([Dense(3, seed=1), _ListHeld()])):
        assert model(x).shape == (2, 3) and model.predict(x).shape == (2, 3)


def test_predict_of_a_namedtuple_of_inputs():
    """A namedtuple of inputs, which a call takes, works in predict (rebuilding the batches
    called the namedtuple on one iterable: TypeError; a review of session 38)."""
    from collections import namedtuple

    Pair = namedtuple("Pair", "a b")
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    model = Model([a, b], Dense(2, seed=3)(fl.layers.Concatenate()([a, b])))
    xa = np.arange(10, dtype=np.float32).reshape(5, 2)
    xb = np.arange(15, dtype=np.float32).reshape(5, 3) / 7
    want = model([xa, xb])
    np.testing.assert_array_equal(model(Pair(xa, xb)), want)
    np.testing.assert_array_equal(model.predict(Pair(xa, xb), batch_size=2), want)
    np.testing.assert_array_equal(model.predict(Pair(xa.tolist(), xb), batch_size=2), want)


# ---- session 39: outputs that were the caller's arrays; duplicate layer names --------------


def test_outputs_are_never_the_callers_arrays():
    """An output that is an input (or an identity layer's output on it, or a view of it: a
    Reshape) came back as the caller's own array: writing to the result wrote to the input
    (a Keras-user audit). Keras returns new tensors; so does fastlayers now, and an output
    computed from the input is not copied again."""
    x_in = Input((6,))
    flat = fl.layers.Reshape((2, 3))(x_in)
    dense = Dense(2)(x_in)
    model = Model(x_in, [x_in, fl.layers.Dropout(0.5)(x_in), flat, dense])
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    before = x.copy()
    for _ in range(3):  # the general executor, then the shape plan recorded and run
        outs = model(x)
        for out in outs[:3]:
            assert not np.may_share_memory(out, x)
            out[...] = -1.0
        np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(model(x)[0], x)
    seq = Sequential([Input((6,)), fl.layers.Dropout(0.1)])
    y = seq(x)
    assert not np.may_share_memory(y, x)
    np.testing.assert_array_equal(y, x)


def test_duplicate_layer_names_are_refused_as_in_keras():
    """Two distinct layers of one name in a model (two loaded copies of one file nested in a
    model): get_layer gave the first. Keras refuses it, and so does fastlayers, for Model and
    Sequential; one layer used twice is fine, and a renamed copy goes in."""
    def sub(name):
        i = Input((3,))
        return Model(i, Dense(2)(i), name=name)

    x = Input((3,))
    a, b = sub("m"), sub("m")
    with pytest.raises(ValueError, match="the name 'm' is used 2 times"):
        Model(x, [a(x), b(x)])
    b.name = "m_2"
    model = Model(x, [a(x), b(x)])
    assert model.get_layer("m_2") is b
    with pytest.raises(ValueError, match="'q' is already the name of a layer"):
        Sequential([Input((3,)), Dense(2, name="q"), Dense(2, name="q")])
    shared = Dense(3, name="s")
    assert len(Sequential([Input((3,)), shared, shared]).layers) == 2


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_dict_of_inputs_with_an_extra_entry(as_dict):
    """An entry that no input takes (a "label" beside the features) is left out with a
    warning, as Keras does (it was refused, "unknown ['label']"; an audit); a missing one is
    refused by name. Models made with a list of named inputs and with a dict of them."""
    a, b = fl.Input((3,), name="a"), fl.Input((2,), name="b")
    out = fl.layers.Dense(1)(fl.layers.Concatenate()([a, b]))
    model = fl.Model({"a": a, "b": b} if as_dict else [a, b], out)
    rng = np.random.default_rng(0)
    x = {"a": rng.standard_normal((4, 3)).astype("f"), "b": rng.standard_normal((4, 2)).astype("f")}
    want = model.predict(x)
    with pytest.warns(UserWarning, match=r"inputs \['label'\] are not inputs of the model"):
        got = model.predict({**x, "label": np.zeros((4, 1))})
    np.testing.assert_array_equal(got, want)
    with pytest.warns(UserWarning, match="left out"):
        np.testing.assert_array_equal(model({**x, "label": np.zeros((4, 1))}), model(x))
    with pytest.raises(ValueError, match=r"missing \['b'\], unknown \['label'\]"):
        model.predict({"a": x["a"], "label": np.zeros((4, 1))})
