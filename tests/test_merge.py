"""Merging, shape and wrapper layers (issue 12): Add, Subtract, Multiply, Average, Maximum,
Minimum, Concatenate, Dot, Reshape, Permute, RepeatVector, Flatten, TimeDistributed.

References: tests/golden/merge_layers.npz (single layers run by Keras 3 on seeded inputs,
with implicit masks attached, and the mask Keras attaches to the output) and the whole
models of tests/golden/models_merge.npz, both written by tests/golden/make_models_merge.py.
Every comparison runs on both backends. The loader tests (tests/test_load_keras.py) load
the model files of every case automatically.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close
from golden_models import assert_keras_outputs, golden

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

HERE = Path(__file__).parent / "golden"
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
HAVE_H5PY = importlib.util.find_spec("h5py") is not None
needs_h5py = pytest.mark.skipif(not HAVE_H5PY, reason="h5py is not installed")
RNG = np.random.default_rng(1212)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---- single layers against Keras --------------------------------------------------------


def _read_layer_cases() -> dict:
    cases = {}
    with np.load(HERE / "merge_layers.npz", allow_pickle=False) as data:
        names = sorted({k.rsplit(".", 1)[0] for k in data.files if not k.startswith("__")})
        for case in names:
            meta = json.loads(str(data[f"{case}.meta"]))
            floats = data[f"{case}.floats"]
            bools = data[f"{case}.bools"] if f"{case}.bools" in data.files else None
            pos = [0, 0]

            def take(shape, which, source, pos=pos):
                n = int(np.prod(shape, dtype=np.int64))
                out = source[pos[which]:pos[which] + n].reshape(shape)
                pos[which] += n
                return out

            inputs = [take(s, 0, floats) for s in meta["inputs"]]
            weights = [take(s, 0, floats) for s in meta["weights"]]
            out = take(meta["out"], 0, floats)
            masks = [None if s is None else take(s, 1, bools) for s in meta["masks"]]
            outmask = None if meta["outmask"] is None else take(meta["outmask"], 1, bools)
            direct = None if meta["compute_mask"] is None else take(meta["compute_mask"], 1,
                                                                    bools)
            assert pos[0] == floats.size and pos[1] == (0 if bools is None else bools.size)
            cases[case] = (meta, inputs, weights, out, masks, outmask, direct)
    return cases


LAYER_CASES = _read_layer_cases()


def _make(meta: dict):
    kwargs = dict(meta["kwargs"])
    if "layer" in kwargs:
        cls_name, inner = kwargs.pop("layer")
        kwargs["layer"] = getattr(L, cls_name)(**inner)
    return getattr(L, meta["class_name"])(**kwargs)


def test_layer_fixtures_cover_every_layer():
    classes = {c[0]["class_name"] for c in LAYER_CASES.values()}
    assert classes == {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                       "Concatenate", "Dot", "Reshape", "Permute", "RepeatVector", "Flatten",
                       "TimeDistributed"}
    assert len(LAYER_CASES) >= 45
    # Cases with masks whose output mask Keras computes exist for the merges and wrappers.
    assert sum(c[5] is not None for c in LAYER_CASES.values()) >= 15
    assert sum(c[6] is not None for c in LAYER_CASES.values()) >= 15


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    meta, inputs, weights, want, masks, want_mask, keras_direct = LAYER_CASES[case]
    layer = _make(meta)
    arg = inputs[0] if meta["single"] else list(inputs)
    mask = masks[0] if meta["single"] else list(masks)
    if weights:
        layer.build(inputs[0].shape)
        layer.set_weights(weights)
    kwargs = {}
    takes_mask = "mask" in inspect.signature(layer.call).parameters
    if takes_mask and any(m is not None for m in masks):
        kwargs["mask"] = mask
    with fl.use_backend(backend):
        got = layer(arg, **kwargs)
    k = max(x.shape[-1] for x in inputs)
    assert_close(got, want, k=k, magnitude=float(np.abs(want).max(initial=1.0)) * 4)
    # The output mask: the one Keras attached to its output. For a layer that supports
    # masking that is also what Keras's compute_mask returns when called directly on the
    # same inputs; a layer that does not (Keras's supports_masking False) drops the mask,
    # whatever its compute_mask says.
    assert layer.supports_masking == meta["supports_masking"]
    got_mask = layer.compute_mask(arg, mask if any(m is not None for m in masks) else None)
    if want_mask is None:
        assert got_mask is None
    else:
        assert got_mask is not None and got_mask.dtype == bool
        np.testing.assert_array_equal(got_mask, want_mask)
    if layer.supports_masking:
        if keras_direct is None:
            assert got_mask is None
        else:
            np.testing.assert_array_equal(got_mask, keras_direct)
    else:
        assert got_mask is None


def test_keras_masked_merge_rules_by_hand():
    """Maximum: a masked entry takes the other input's value; where both are masked, the
    first input's. Multiply: masked entries count as 1, entries masked in all inputs are 0.
    Output masks: OR."""
    a = np.array([[[1.0], [5.0], [2.0]]], np.float32)  # (1, 3, 1)
    b = np.array([[[3.0], [4.0], [7.0]]], np.float32)
    ma = np.array([[True, False, False]])
    mb = np.array([[False, True, False]])
    np.testing.assert_array_equal(L.Maximum()([a, b], mask=[ma, mb])[0, :, 0], [1, 4, 2])
    np.testing.assert_array_equal(L.Minimum()([a, b], mask=[ma, mb])[0, :, 0], [1, 4, 2])
    np.testing.assert_array_equal(L.Multiply()([a, b], mask=[ma, mb])[0, :, 0], [1, 4, 0])
    np.testing.assert_array_equal(L.Multiply()([a, b], mask=[ma, None])[0, :, 0], [3, 4, 7])
    np.testing.assert_array_equal(L.Add()([a, b], mask=[ma, mb])[0, :, 0], [4, 9, 9])
    np.testing.assert_array_equal(L.Maximum().compute_mask([a, b], [ma, mb]),
                                  [[True, True, False]])
    assert L.Maximum().compute_mask([a, b], [ma, None]) is None
    assert L.Add().compute_mask([a, b], None) is None
    assert L.Dot(axes=2).compute_mask([a, b], [ma, mb]) is None


# ---- edge shapes, both paths, against NumPy references ----------------------------------


def _batch_dot(x, y, ax, ay):
    """Keras's batch_dot written with einsum (float64)."""
    xm = np.moveaxis(x.astype(np.float64), ax, -1)
    ym = np.moveaxis(y.astype(np.float64), ay, 1)
    shape = (len(x),) + xm.shape[1:-1] + ym.shape[2:]
    p, q, k = int(np.prod(xm.shape[1:-1])), int(np.prod(ym.shape[2:])), x.shape[ax]
    out = np.einsum("bpk,bkq->bpq", xm.reshape(len(x), p, k),
                    ym.reshape(len(y), k, q)).reshape(shape)
    return out.reshape(len(x), 1) if out.ndim == 1 else out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("b, t, d, m", [(1, 1, 1, 1), (2, 7, 17, 5), (3, 1, 47, 1),
                                        (1, 49, 48, 33), (2, 5, 0, 3), (0, 3, 4, 2)])
def test_dot_edge_shapes(b, t, d, m, backend):
    x, y = _x(b, t, d), _x(b, d, m)
    with fl.use_backend(backend):
        got = L.Dot(axes=(2, 1))([x, y])
        got_vec = L.Dot(axes=1)([x[:, 0], y[:, :, 0]])
        got_neg = L.Dot(axes=(-1, -2))([x, y])
    assert_close(got, _batch_dot(x, y, 2, 1), k=d)
    assert_close(got_vec, _batch_dot(x[:, 0], y[:, :, 0], 1, 1), k=d)
    np.testing.assert_array_equal(got_neg, got)
    assert got.shape == (b, t, m) and got_vec.shape == (b, 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a_shape, b_shape", [((2, 5, 0), (2, 0, 3)), ((2, 0, 4), (2, 4, 0)),
                                              ((0, 2, 3), (0, 3, 2))])
def test_matmul_with_size_zero_axes(a_shape, b_shape, backend):
    """fl.matmul (Dot's product) with K, M, N or the batch 0: zeros or empty, on both paths
    (the C++ path once reshaped with -1, ambiguous when an axis is 0)."""
    a, b = _x(*a_shape), _x(*b_shape)
    with fl.use_backend(backend):
        got = fl.matmul(a, b)
    np.testing.assert_array_equal(got, np.matmul(a, b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dot_paths_agree_and_normalize(backend):
    x, y = _x(3, 31, 2, 5), _x(3, 4, 31)
    with fl.use_backend(backend):
        got = L.Dot(axes=(1, 2), normalize=True)([x, y])
    xn = x / np.sqrt((x.astype(np.float64) ** 2).sum(1, keepdims=True))
    yn = y / np.sqrt((y.astype(np.float64) ** 2).sum(2, keepdims=True))
    assert got.shape == (3, 2, 5, 4)
    assert_close(got, _batch_dot(xn, yn, 1, 2), k=31)
    zero = np.zeros((2, 3), np.float32)
    with fl.use_backend(backend):
        assert np.all(L.Dot(axes=1, normalize=True)([zero, _x(2, 3)]) == 0)  # no NaN


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shapes", [[(1, 1)], [(1, 1), (1, 1)], [(2, 7), (2, 1)],
                                    [(3, 5), (3, 4, 5), (3, 4, 1)], [(2, 1, 3), (2, 13, 1)],
                                    [(0, 4), (0, 4)], [(4,), (4, 3)]])
def test_elementwise_merges_broadcast_as_keras(shapes, backend):
    xs = [_x(*s) for s in shapes]
    rank = max(len(s) for s in shapes)
    # Keras inserts size-1 axes right after the batch axis of the lower-rank inputs.
    ex = [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]
    total = ex[0]
    for x in ex[1:]:
        total = total + x
    ref = {"Add": total, "Average": total / np.float32(len(xs)),
           "Maximum": np.maximum.reduce(np.broadcast_arrays(*ex)),
           "Minimum": np.minimum.reduce(np.broadcast_arrays(*ex)),
           "Multiply": np.multiply.reduce(np.broadcast_arrays(*ex))}
    if len(xs) == 2:
        ref["Subtract"] = ex[0] - ex[1]
    with fl.use_backend(backend):
        for name, want in ref.items():
            got = getattr(L, name)()(xs)
            assert got.dtype == np.float32 and got.shape == want.shape, name
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)
            assert not any(np.shares_memory(got, x) for x in xs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concatenate_edge_shapes(backend):
    with fl.use_backend(backend):
        for axis, shapes in [(-1, [(1, 1), (1, 1)]), (1, [(2, 0, 3), (2, 5, 3)]),
                             (0, [(1, 3), (2, 3)]), (2, [(2, 3, 7), (2, 3, 1), (2, 3, 2)]),
                             (-2, [(3, 2, 5), (3, 1, 5)]), (1, [(4, 3)])]:
            xs = [_x(*s) for s in shapes]
            got = L.Concatenate(axis=axis)(xs)
            np.testing.assert_array_equal(got, np.concatenate(xs, axis=axis))
            np.testing.assert_array_equal(L.concatenate(xs, axis=axis), got)


def test_concatenate_compute_mask_rules():
    a, b = _x(2, 3, 4), _x(2, 5, 4)
    ma = np.array([[True, False, True], [False, False, True]])
    got = L.Concatenate(axis=1).compute_mask([a, b], [ma, None])
    np.testing.assert_array_equal(got, np.concatenate([ma, np.ones((2, 5), bool)], axis=1))
    assert L.Concatenate().compute_mask([a, b], [None, None]) is None
    assert L.Concatenate().compute_mask([a, b], None) is None
    # Along the last axis the masks are joined per entry, then OR-ed over that axis.
    c = _x(2, 3, 2)
    mc = np.array([[False, True, False], [False, False, False]])
    np.testing.assert_array_equal(L.Concatenate().compute_mask([a, c], [ma, mc]), ma | mc)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shape_layers_edge_shapes(backend):
    with fl.use_backend(backend):
        x = _x(2, 3, 5, 7)
        np.testing.assert_array_equal(L.Reshape((-1,))(x), x.reshape(2, -1))
        np.testing.assert_array_equal(L.Reshape((7, -1, 3))(x), x.reshape(2, 7, 5, 3))
        np.testing.assert_array_equal(L.Reshape([105])(x), x.reshape(2, 105))
        assert L.Reshape((0, 4))(_x(3, 0)).shape == (3, 0, 4)
        assert L.Reshape((-1, 2))(_x(0, 6)).shape == (0, 3, 2)
        for dims in [(1, 2, 3), (3, 2, 1), (2, 3, 1)]:
            want = x.transpose((0,) + dims)
            got = L.Permute(dims)(x)
            np.testing.assert_array_equal(got, want)
            assert got.flags.c_contiguous and not np.shares_memory(got, x)
        v = _x(1, 1)
        np.testing.assert_array_equal(L.RepeatVector(1)(v), v[:, None])
        got = L.RepeatVector(13)(_x(3, 2))
        assert got.shape == (3, 13, 2) and np.all(got == got[:, :1])
        assert L.RepeatVector(2)(_x(0, 3)).shape == (0, 2, 3)
        f = _x(3, 4)
        flat = L.Flatten()(f)  # a 2-D input comes back as it is (a copy)
        np.testing.assert_array_equal(flat, f)
        assert not np.shares_memory(flat, f)
        assert L.Flatten()(_x(5)).shape == (5, 1)
        r = L.Reshape((5, 21))(x)
        assert not np.shares_memory(r, x)
    for layer in (L.Reshape((4,)), L.Permute((1,)), L.RepeatVector(2), L.Flatten()):
        assert layer.supports_masking is False
        assert layer.compute_mask(_x(2, 4), np.ones((2,), bool)) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_permute_of_layouts_on_both_paths(backend):
    """NHWC <-> NCHW and other rotations large enough for the C++ path's blocked transpose
    (functional.run_permute): the values of NumPy's transpose at tile edges (8 +- 1, primes),
    a fresh C-contiguous array, other dtypes and non-rotations by NumPy."""
    rng = np.random.default_rng(0)
    with fl.use_backend(backend):
        for shape, dims in [((2, 17, 31, 64), (3, 1, 2)), ((1, 64, 9, 127), (2, 3, 1)),
                            ((3, 8, 8, 257), (3, 1, 2)), ((1, 7, 2048, 9), (3, 1, 2)),
                            ((2, 128, 129), (2, 1)), ((1, 4096, 3), (2, 1)),
                            ((2, 16, 23, 5, 11), (3, 4, 1, 2)), ((2, 40, 50, 60), (2, 1, 3))]:
            x = rng.standard_normal(shape).astype(np.float32)
            x.flat[::97] = np.nan
            got = L.Permute(dims)(x)
            np.testing.assert_array_equal(got, x.transpose((0,) + dims))
            assert got.flags.c_contiguous and not np.shares_memory(got, x)
        y = np.arange(2 * 64 * 65, dtype=np.float64).reshape(2, 64, 65)
        np.testing.assert_array_equal(fl.functional.run_permute(y, (0, 2, 1)),
                                      y.transpose(0, 2, 1))
        strided = rng.standard_normal((2, 64, 130)).astype(np.float32)[:, :, ::2]
        np.testing.assert_array_equal(fl.functional.run_permute(strided, (0, 2, 1)),
                                      strided.transpose(0, 2, 1))


def test_the_permutations_that_are_batched_transposes():
    """functional.run_permute recognizes the rotations that are batched 2-D transposes."""
    form = fl.functional._batched_transpose_form
    assert form((2, 3, 4, 5), (0, 3, 1, 2)) == (2, 12, 5)  # NHWC -> NCHW
    assert form((2, 3, 4, 5), (0, 2, 3, 1)) == (2, 3, 20)  # NCHW -> NHWC
    assert form((2, 3, 4, 5), (1, 2, 3, 0)) == (1, 2, 60)  # the batch axis moves too
    assert form((6, 7), (1, 0)) == (1, 6, 7)
    for perm in [(0, 2, 1, 3), (0, 1, 2, 3), (1, 0, 2, 3), (2, 0, 1, 3), (0, 3, 2, 1)]:
        assert form((2, 3, 4, 5), perm) is None, perm


@pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(), reason="no C++ core in this run")
def test_permute_takes_the_core_transpose_where_it_is_one(monkeypatch):
    """Under "cpp" a large float32 batched transpose goes to the core; other permutations,
    small ones and the NumPy backend stay NumPy's."""
    calls = []
    real = fl.functional._cpp_transpose.transpose_batched
    monkeypatch.setattr(fl.functional._cpp_transpose, "transpose_batched",
                        lambda x: calls.append(x.shape) or real(x))
    x = np.random.default_rng(1).standard_normal((2, 32, 33, 16)).astype(np.float32)
    with fl.use_backend("cpp"):
        np.testing.assert_array_equal(L.Permute((3, 1, 2))(x), x.transpose(0, 3, 1, 2))
        L.Permute((2, 1, 3))(x)  # not a rotation: NumPy
        L.Permute((3, 1, 2))(x[:, :2, :2])  # too small: NumPy
    with fl.use_backend("numpy"):
        L.Permute((3, 1, 2))(x)
    assert calls == [(2, 32 * 33, 16)]


# ---- TimeDistributed --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_distributed_dense_and_conv(backend):
    x = _x(2, 5, 7)
    dense = L.Dense(3, activation="relu", seed=1)
    td = L.TimeDistributed(dense)
    video = _x(1, 3, 6, 5, 2)
    conv = L.Conv2D(4, 3, padding="same", seed=2)
    tdc = L.TimeDistributed(conv)
    with fl.use_backend(backend):
        got = td(x)
        want = np.stack([dense(x[:, i]) for i in range(5)], axis=1)
        gotc = tdc(video)
        wantc = np.stack([conv(video[:, i]) for i in range(3)], axis=1)
    assert_close(got, want, k=7)
    assert_close(gotc, wantc, k=18)
    assert td.get_weights()[0].shape == (7, 3) and td.count_params() == 24
    assert [w.shape for w in tdc.weights] == [(3, 3, 2, 4), (4,)]
    assert tdc.layer is conv  # the wrapped layer is used as is, as in Keras


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_distributed_passes_the_mask(backend):
    x = _x(2, 3, 4, 2)  # (batch, time, steps, features)
    mask = RNG.random((2, 3, 4)) < 0.7
    lstm = L.LSTM(3, seed=4)
    td = L.TimeDistributed(lstm)
    with fl.use_backend(backend):
        got = td(x, mask=mask)
        want = np.stack([lstm(x[:, i], mask=mask[:, i]) for i in range(3)], axis=1)
        unmasked = td(x)
    assert_close(got, want, k=4)
    assert not np.allclose(got, unmasked)  # the mask changed the result
    np.testing.assert_array_equal(td.compute_mask(x, mask), mask)
    assert td.compute_mask(x, None) is None
    # A wrapped layer without a mask argument runs unchanged.
    tdd = L.TimeDistributed(L.Dense(2, seed=3))
    np.testing.assert_array_equal(tdd(x, mask=mask), tdd(x))


def test_time_distributed_weights_and_config_round_trip():
    td = L.TimeDistributed(L.Dense(4, seed=5), name="td")
    assert not td.built and td.weights == []
    td.set_weights([np.ones((3, 4)), np.zeros(4)])  # builds the wrapped layer
    assert td.built and td(_x(2, 2, 3)).shape == (2, 2, 4)
    cfg = td.get_config()
    assert cfg["layer"]["class_name"] == "Dense" and cfg["name"] == "td"
    clone = L.TimeDistributed.from_config(cfg)
    assert isinstance(clone.layer, L.Dense) and clone.layer.units == 4
    assert "TimeDistributed(" in repr(td)


# ---- models built in code against Keras ---------------------------------------------------


def _merge_branches():
    b_in, s_in = Input((6,)), Input((4, 6))
    d1 = L.Dense(6, activation="tanh")(b_in)
    d2 = L.Dense(6)(b_in)
    cat = L.Concatenate()([L.add([d1, d2, b_in]), L.Subtract()([d1, d2]),
                           L.Multiply()([d1, d2]), L.average([d1, d2, b_in]),
                           L.Maximum()([d1, d2]), L.minimum([d1, d2])])
    ranked = L.Add()([d1, s_in])
    cos = L.Dot(axes=1, normalize=True)([d1, d2])
    pair = L.Dot(axes=(1, -2))([s_in, ranked])
    head = Sequential([L.Permute((2, 1)), L.TimeDistributed(L.Dense(2))])
    return Model([b_in, s_in], [cat, cos, head(pair)])


def _merge_sequential_td():
    return Sequential([
        Input((3, 5, 4, 2)),
        L.TimeDistributed(L.Conv2D(3, 3, activation="relu")),
        L.Reshape((3, -1)),
        L.TimeDistributed(L.Dense(4, activation="tanh")),
        L.Flatten(),
        L.RepeatVector(2),
        L.Permute((2, 1)),
    ])


CODE_MODELS = {"merge_branches": _merge_branches, "merge_sequential_td": _merge_sequential_td}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CODE_MODELS))
def test_models_built_in_code_match_keras(case, backend):
    mdl = CODE_MODELS[case]()
    mdl.set_weights(golden(case, "weights"))
    inputs = golden(case, "inputs")
    with fl.use_backend(backend):
        got = mdl(inputs if len(inputs) > 1 else inputs[0])
    assert_keras_outputs(case, list(got) if isinstance(got, (list, tuple)) else got)
    clone = pickle.loads(pickle.dumps(mdl))
    with fl.use_backend(backend):
        again = clone(inputs if len(inputs) > 1 else inputs[0])
    for a, b in zip(again if isinstance(again, list) else [again],
                    got if isinstance(got, list) else [got]):
        np.testing.assert_array_equal(a, b)


@needs_h5py
@pytest.mark.parametrize("suffix", [".weights.h5", ".h5", ".keras"])
@pytest.mark.parametrize("case", sorted(CODE_MODELS))
def test_load_weights_into_models_built_in_code(case, suffix):
    mdl = CODE_MODELS[case]()
    mdl.load_weights(HERE / "models" / f"{case}{suffix}")
    assert len(mdl.get_weights()) == len(golden(case, "weights"))
    for got, want in zip(mdl.get_weights(), golden(case, "weights")):
        np.testing.assert_array_equal(got, want)
    inputs = golden(case, "inputs")
    assert_keras_outputs(case, mdl.predict(inputs if len(inputs) > 1 else inputs[0]))


@needs_h5py
def test_loaded_models_hold_the_new_layers():
    seq = fl.load_model(HERE / "models" / "merge_sequential_td.keras")
    kinds = [type(x).__name__ for x in seq.layers]
    assert kinds == ["TimeDistributed", "Reshape", "TimeDistributed", "Flatten", "RepeatVector",
                     "Permute"]
    assert isinstance(seq.layers[0].layer, L.Conv2D) and seq.layers[2].layer.units == 4
    assert seq.layers[1].target_shape == (3, -1) and seq.layers[5].dims == (2, 1)
    mdl = fl.load_model(HERE / "models" / "merge_branches.h5")
    kinds = {type(x).__name__ for x in mdl.layers}
    assert {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
            "Dot", "Sequential"} <= kinds
    dots = [x for x in mdl.layers if isinstance(x, L.Dot)]
    assert sorted(str(d.axes) for d in dots) == ["(1, -2)", "1"]
    mdl.summary(print_fn=lambda text: None)


@needs_h5py
def test_time_distributed_of_an_unsupported_layer_is_listed(tmp_path):
    import zipfile

    src = HERE / "models" / "merge_sequential_td.keras"
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    cfg = json.loads(files["config.json"])
    td = next(x for x in cfg["config"]["layers"] if x["class_name"] == "TimeDistributed")
    td["config"]["layer"]["class_name"] = "ConvLSTM1D"
    files["config.json"] = json.dumps(cfg).encode()
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    with pytest.raises(NotImplementedError, match="TimeDistributed .*ConvLSTM1D"):
        fl.load_model(path)


# ---- pickling, functional forms, symbolic -----------------------------------------------


@pytest.mark.parametrize("make, args", [
    (lambda: L.Maximum(), lambda: [[_x(2, 3), _x(2, 3)]]),
    (lambda: L.Dot(axes=(1, 2), normalize=True), lambda: [[_x(2, 3, 4), _x(2, 5, 3)]]),
    (lambda: L.Concatenate(axis=1), lambda: [[_x(2, 3), _x(2, 1)]]),
    (lambda: L.TimeDistributed(L.Conv2D(2, 3, seed=1)), lambda: [_x(1, 2, 5, 5, 3)]),
])
def test_pickle_and_deepcopy(make, args):
    layer = make()
    a = args()
    before = layer(*a)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert clone.get_config() == layer.get_config()
        np.testing.assert_array_equal(clone(*a), before)


def test_functional_forms_make_layers_and_nodes():
    a, b = _x(2, 4), _x(2, 4)
    np.testing.assert_array_equal(L.add([a, b]), a + b)
    np.testing.assert_array_equal(L.subtract([a, b]), a - b)
    np.testing.assert_array_equal(L.multiply([a, b]), a * b)
    np.testing.assert_array_equal(L.maximum([a, b]), np.maximum(a, b))
    np.testing.assert_array_equal(L.minimum([a, b]), np.minimum(a, b))
    np.testing.assert_allclose(L.average([a, b]), (a + b) / 2)
    np.testing.assert_allclose(L.dot([a, b], axes=1), (a * b).sum(1, keepdims=True), rtol=1e-5)
    ia, ib = Input((4,)), Input((4,))
    out = L.concatenate([L.add([ia, ib], name="plus"), ib])
    assert out.shape == (None, 8)
    mdl = Model([ia, ib], out)
    assert mdl.get_layer("plus").name == "plus"
    np.testing.assert_array_equal(mdl([a, b]), np.concatenate([a + b, b], axis=1))


# ---- bad inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("call, exc, match", [
    (lambda: L.Add(name="a1")([_x(2, 3), _x(2, 4)]), ValueError, "Add 'a1'.*incompatible"),
    (lambda: L.Add()([_x(2, 3), _x(3, 3)]), ValueError, "different batch sizes"),
    (lambda: L.Maximum()([_x(2, 3, 4), _x(2, 5, 4)]), ValueError, "incompatible shapes"),
    (lambda: L.Add()(_x(2, 3)), ValueError, "list of inputs"),
    (lambda: L.Add()([]), ValueError, "at least 1 input"),
    (lambda: L.Add()([_x(2, 3), "x"]), TypeError, r"inputs\[1\]"),
    (lambda: L.Add()([np.float32(1.0), _x(2)]), ValueError, r"inputs\[0\].*rank >= 1"),
    (lambda: L.Subtract()([_x(2, 3)] * 3), ValueError, "exactly 2 inputs"),
    (lambda: L.Maximum()([_x(2, 3, 4)] * 2, mask=[np.ones((2, 4), bool), None]),
     ValueError, r"mask\[0\]"),
    (lambda: L.Add()([_x(2, 3)] * 2, mask=np.ones((2,), bool)), ValueError, "mask must be a list"),
    (lambda: L.Add().compute_mask([_x(3, 4), _x(3, 5, 4)],
                                  [np.ones(3, bool), np.ones((3, 5), bool)]),
     ValueError, "masks"),
    (lambda: L.Concatenate()([_x(2, 3, 4), _x(2, 5, 4)]), ValueError, "matching shapes"),
    (lambda: L.Concatenate(axis=1)([_x(2, 3, 4), _x(2, 5, 3)]), ValueError, "matching shapes"),
    (lambda: L.Concatenate()([_x(2, 3), _x(2, 3, 1)]), ValueError, "same rank"),
    (lambda: L.Concatenate(axis=3)([_x(2, 3), _x(2, 3)]), ValueError, "out of range"),
    (lambda: L.Concatenate(axis=1.0), TypeError, "axis must be an int"),
    (lambda: L.Dot(axes=0)([_x(2, 3), _x(2, 3)]), ValueError, "batch axis"),
    (lambda: L.Dot(axes=(1, 1))([_x(2, 3), _x(2, 4)]), ValueError, "incompatible shapes"),
    (lambda: L.Dot(axes=3)([_x(2, 3), _x(2, 3)]), ValueError, "out of range"),
    (lambda: L.Dot(axes=1)([_x(2), _x(2)]), ValueError, "rank >= 2"),
    (lambda: L.Dot(axes=1)([_x(2, 3)] * 3), ValueError, "exactly 2 inputs"),
    (lambda: L.Dot(axes=(1, 2, 3)), ValueError, "two ints"),
    (lambda: L.Dot(axes="1"), TypeError, "axes"),
    (lambda: L.Dot(axes=1, normalize="yes"), TypeError, "normalize"),
    (lambda: L.Reshape((5,), name="r")(_x(2, 3, 4)), ValueError, "Reshape 'r'.*target_shape"),
    (lambda: L.Reshape((5, -1))(_x(2, 3, 4)), ValueError, "cannot reshape"),
    (lambda: L.Reshape((0, -1))(_x(2, 3)), ValueError, "cannot reshape"),
    (lambda: L.Reshape((-1, -1)), ValueError, "single unknown"),
    (lambda: L.Reshape((-2, 3)), ValueError, ">= 0"),
    (lambda: L.Reshape("3"), TypeError, "tuple of ints"),
    (lambda: L.Permute((1, 3)), ValueError, "permutation"),
    (lambda: L.Permute((0, 1)), ValueError, "permutation"),
    (lambda: L.Permute((1, 1)), ValueError, "permutation"),
    (lambda: L.Permute(2), TypeError, "tuple of ints"),
    (lambda: L.Permute((2, 1))(_x(2, 3)), ValueError, "rank 3"),
    (lambda: L.RepeatVector(0), ValueError, "positive"),
    (lambda: L.RepeatVector(-3), ValueError, "positive"),
    (lambda: L.RepeatVector(2.0), TypeError, "int"),
    (lambda: L.RepeatVector(True), TypeError, "int"),
    (lambda: L.RepeatVector(2)(_x(2, 3, 4)), ValueError, "rank 2"),
    (lambda: L.TimeDistributed("dense"), ValueError, "fastlayers layer"),
    (lambda: L.TimeDistributed(np.ones(3)), ValueError, "fastlayers layer"),
    (lambda: L.TimeDistributed(L.Dense)(_x(2, 3, 4)), ValueError, "fastlayers layer"),
    (lambda: L.TimeDistributed({"class_name": "Nope", "config": {}}), ValueError, "Nope"),
    (lambda: L.TimeDistributed(L.Dense(2))(_x(2, 3)), ValueError, "rank >= 3"),
    (lambda: L.TimeDistributed(L.LSTM(2))(_x(2, 3, 4, 5), mask=np.ones((2, 4), bool)),
     ValueError, "mask of shape"),
    (lambda: L.TimeDistributed(L.LSTM(2, return_state=True))(_x(2, 3, 4, 5)),
     ValueError, "one array"),
    *[(lambda cls=cls: cls()([_x(2, 3), _x(2, 4)]), ValueError, "incompatible shapes")
      for cls in (L.Average, L.Minimum, L.Multiply)],
    *[(lambda cls=cls: cls()(_x(2, 3)), ValueError, "called on a list of inputs")
      for cls in (L.Average, L.Minimum, L.Multiply)],
    *[(lambda cls=cls: cls()([np.array([["a"]]), np.array([["b"]])]), TypeError,
       r"inputs\[0\] must have a real") for cls in (L.Average, L.Minimum, L.Multiply)],
])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@needs_h5py
@pytest.mark.parametrize("backend", BACKENDS)
def test_keras2_legacy_config_with_merges_and_time_distributed(tmp_path, backend):
    """A Keras 2 (tf.keras) legacy .h5: multi-input nodes as lists of [layer, node, tensor,
    kwargs], TimeDistributed's wrapped layer config without a module, Dot axes as a list."""
    import h5py

    kernel, bias = _x(6, 5), _x(5)

    def inp(name, shape):
        return {"class_name": "InputLayer", "name": name, "inbound_nodes": [],
                "config": {"batch_input_shape": [None, *shape], "dtype": "float32",
                           "sparse": False, "ragged": False, "name": name}}

    config = {"class_name": "Model", "config": {
        "name": "model",
        "layers": [
            inp("in_a", (3, 4)), inp("in_b", (3, 2)),
            {"class_name": "Concatenate", "name": "concatenate",
             "inbound_nodes": [[["in_a", 0, 0, {}], ["in_b", 0, 0, {}]]],
             "config": {"name": "concatenate", "trainable": True, "dtype": "float32",
                        "axis": -1}},
            {"class_name": "TimeDistributed", "name": "time_distributed",
             "inbound_nodes": [[["concatenate", 0, 0, {}]]],
             "config": {"name": "time_distributed", "trainable": True, "dtype": "float32",
                        "layer": {"class_name": "Dense", "config": {
                            "name": "dense", "trainable": True, "dtype": "float32",
                            "units": 5, "activation": "relu", "use_bias": True}}}},
            {"class_name": "Dot", "name": "dot",
             "inbound_nodes": [[["time_distributed", 0, 0, {}], ["in_a", 0, 0, {}]]],
             "config": {"name": "dot", "trainable": True, "dtype": "float32",
                        "axes": [1, 1], "normalize": False}},
        ],
        "input_layers": [["in_a", 0, 0], ["in_b", 0, 0]],
        "output_layers": [["time_distributed", 0, 0], ["dot", 0, 0]],
    }}
    path = tmp_path / "keras2_merge.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.15.0"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"in_a", b"in_b", b"concatenate", b"time_distributed",
                                  b"dot"]
        for name in ("in_a", "in_b", "concatenate", "dot"):
            g.create_group(name).attrs["weight_names"] = np.array([], dtype="S1")
        lg = g.create_group("time_distributed")
        names = ["time_distributed/kernel:0", "time_distributed/bias:0"]
        lg.attrs["weight_names"] = [n.encode() for n in names]
        for n, arr in zip(names, (kernel, bias)):
            lg.create_dataset(n, data=arr)
    mdl = fl.load_model(path)
    a, b = _x(2, 3, 4), _x(2, 3, 2)
    with fl.use_backend(backend):
        td, dotted = mdl([a, b])
    want_td = np.maximum(np.concatenate([a, b], -1).astype(np.float64) @ kernel + bias, 0)
    assert_close(td, want_td, k=6)
    assert_close(dotted, np.einsum("btu,btv->buv", want_td, a), k=3, magnitude=10)
    assert isinstance(mdl.get_layer("time_distributed").layer, L.Dense)
