"""Keras 3 ops recorded in a functional model (x + y, x[:, 0], ops.mean, ops.gelu, ...):
the model saved by Keras itself loads with fastlayers.load_model and predicts Keras's outputs,
output by output, on both paths (fastlayers/io/keras_ops.py). Needs keras (the CI step that
installs torch and keras runs it) and h5py."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl

keras = pytest.importorskip("keras")
if importlib.util.find_spec("h5py") is None:
    pytest.skip('h5py is not installed (pip install "fastlayers[keras]")',
                allow_module_level=True)

ops, L = keras.ops, keras.layers
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def _outputs(i, j):
    """Every op once, on inputs (B, 10, 16); ints and bools as Keras makes them."""
    return {
        "add": i + j, "sub number": i - 1.0, "number mul": 2.0 * i, "div": i / 3.0,
        "int add": i + 1, "neg": -i, "abs": ops.abs(i), "sqrt": ops.sqrt(ops.abs(i)),
        "square": ops.square(i), "exp": ops.exp(i), "log": ops.log(ops.abs(i) + 1),
        "maximum": ops.maximum(i, j), "minimum number": ops.minimum(i, 0.5),
        "mean": ops.mean(i, axis=1), "sum keepdims": ops.sum(i, axis=-1, keepdims=True),
        "max": ops.max(i, axis=1), "min": ops.min(i, axis=-1),
        "reshape": ops.reshape(i, (-1, 160)), "transpose": ops.transpose(i, (0, 2, 1)),
        "squeeze": ops.squeeze(ops.expand_dims(i, 1), 1), "clip": ops.clip(i, -1, 1),
        "cast": ops.cast(i > 0, "float32"), "tanh": ops.tanh(i), "sigmoid": ops.sigmoid(i),
        "relu": ops.relu(i), "gelu": ops.gelu(i), "gelu exact": ops.gelu(i, approximate=False),
        "silu": ops.silu(i), "getitem": i[:, 0], "getitem slices": i[:, 1:3, ::2],
        "getitem ellipsis": i[..., -1], "power": ops.power(i, 2), "pow": i ** 3,
        "stack": ops.stack([i, j], axis=1), "split": ops.split(i, 2, axis=-1)[1],
        "take": ops.take(i, [0, 2], axis=1), "where": ops.where(i > 0, i, j),
        "rsqrt": ops.rsqrt(ops.abs(i) + 1), "erf": ops.erf(i), "log_softmax": ops.log_softmax(i),
        "argmax": ops.argmax(i, axis=-1), "norm": ops.norm(i, axis=-1), "var": ops.var(i, axis=-1),
        "std": ops.std(i, axis=1), "cumsum": ops.cumsum(i, axis=1), "tile": ops.tile(i, (1, 2, 1)),
        "repeat": ops.repeat(i, 2, axis=1), "flip": ops.flip(i, axis=1),
        "pad": ops.pad(i, ((0, 0), (1, 1), (0, 0))), "sin": ops.sin(i), "cos": ops.cos(i),
        "floor": ops.floor(i * 3), "round": ops.round(i * 3), "sign": ops.sign(i),
        "greater": ops.greater(i, 0), "logical_and": ops.logical_and(i > 0, j > 0),
        "moveaxis": ops.moveaxis(i, 1, 2), "swapaxes": ops.swapaxes(i, 1, 2),
        "expm1": ops.expm1(i), "log1p": ops.log1p(ops.abs(i)), "reciprocal": ops.reciprocal(i + 10),
        "leaky_relu": ops.leaky_relu(i), "elu": ops.elu(i, alpha=0.5), "softplus": ops.softplus(i),
        "hard_sigmoid": ops.hard_sigmoid(i), "matmul": ops.matmul(i, ops.transpose(j, (0, 2, 1))),
        "stop_gradient": ops.stop_gradient(i),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    i, j = keras.Input((10, 16)), keras.Input((10, 16))
    outs = _outputs(i, j)
    model = keras.Model([i, j], list(outs.values()))
    path = tmp_path_factory.mktemp("keras_ops") / "ops.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 10, 16)).astype(np.float32) for _ in range(2)]
    xs[0][0, 0, :4] = 0.0  # signs, roundings and logs meet zeros
    return path, list(outs), xs, model.predict(xs, verbose=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_ops_load_and_predict_like_keras(saved, backend):
    path, names, xs, want = saved
    model = fl.load_model(path)
    with fl.use_backend(backend):
        got = model(xs)
    assert len(got) == len(want)
    for name, g, w in zip(names, got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, name
        assert g.dtype == w.dtype, f"{name}: {g.dtype} against Keras's {w.dtype}"
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5, err_msg=name)


def test_ops_on_int32_tensors_keep_keras_dtypes(tmp_path):
    """An int32 input: + 1, * 2, maximum, ** 2, sum, cumsum, clip, where stay int32 (the
    Python ints are weak, as in Keras); / and + 1.5, floor and mean give float32."""
    i = keras.Input((3,), dtype="int32")
    outs = [i + 1, i * 2, i - i, i / 2, i + 1.5, ops.maximum(i, 1), i > 1, ops.abs(i),
            ops.sum(i, axis=-1), -i, i ** 2, ops.square(i), ops.sign(i), ops.floor(i),
            ops.argmax(i, axis=-1), ops.cumsum(i, axis=-1), ops.max(i, axis=-1),
            ops.clip(i, 0, 2), ops.where(i > 1, i, 0), ops.take(i, [0, 1], axis=1),
            ops.mean(i, axis=-1)]
    model = keras.Model(i, outs)
    model.save(tmp_path / "int.keras")
    x = np.array([[1, -2, 3], [0, 5, -7]], np.int32)
    for k, (g, w) in enumerate(zip(fl.load_model(tmp_path / "int.keras")(x),
                                   model.predict(x, verbose=0))):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=str(k))


def test_more_dtypes_and_configs(tmp_path):
    """Bool and int inputs through logical_not, abs, relu; cumsum to a dtype; squeeze and
    flip over several axes; a Frobenius norm over two axes."""
    i = keras.Input((1, 1, 4))
    k = keras.Input((4,), dtype="int32")
    v = keras.Input((2, 3, 4))
    small = ops.cast(k * 0 + 100, "int8")
    outs = [ops.logical_not(i > 0), ops.abs(i > 0), ops.relu(k - 2), ops.relu(i),
            ops.cumsum(i * 3, axis=-1, dtype="int32"), ops.squeeze(i, axis=(1, 2)),
            ops.flip(v, axis=(1, 3)), ops.norm(v, axis=(1, 2)), ops.norm(i, ord=2, axis=-1),
            ops.ceil(k), ops.relu6(k * 2), ops.sum(small, axis=-1), ops.cumsum(small, axis=-1),
            ops.cumsum(k > 2, axis=-1), ops.sum(k > 2, axis=-1), (k > 2) + 1,
            ops.square(k > 2), ops.sign(k > 2), ops.where(k > 2, 0, 1),
            ops.matmul(k, ops.transpose(k)), ops.pad(i, ((0, 0), (0, 0), (0, 0), (1, 0)),
                                                     constant_values=-0.0),
            ops.square(small), ops.matmul(small, ops.transpose(small)), ops.sum(small, axis=()),
            ops.where(k > 2, True, 0), ops.mean(k, axis=())]
    model = keras.Model([i, k, v], outs)
    model.save(tmp_path / "more.keras")
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((3, 1, 1, 4)).astype(np.float32),
          np.array([[1, 2, 3, 4], [0, -5, 9, 2], [7, 7, 7, 7]], np.int32),
          rng.standard_normal((3, 2, 3, 4)).astype(np.float32)]
    for k_, (g, w) in enumerate(zip(fl.load_model(tmp_path / "more.keras")(xs),
                                    model.predict(xs, verbose=0))):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (k_, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-6, err_msg=str(k_))
        assert np.array_equal(np.signbit(g), np.signbit(w)), k_  # -0.0 padding stays -0.0


def test_normalize_logsumexp_one_hot_sort_and_top_k(tmp_path):
    """The ops of embedding and ranking heads: L2 and other normalizations, logsumexp, one-hot
    codes of int inputs, sort, argsort and top_k (values and int32 indices), as Keras
    computes them (no ties in the inputs: Keras leaves their order open)."""
    i, n = keras.Input((5, 6)), keras.Input((4,), dtype="int32")
    values, indices = ops.top_k(i, 3)
    outs = [ops.normalize(i), ops.normalize(i, axis=1, order=1), ops.normalize(i, order=3),
            ops.normalize(i, axis=[1, 2]), ops.normalize(i * 0.0, epsilon=1e-3),
            ops.logsumexp(i, axis=-1), ops.logsumexp(i * 100.0, axis=(1, 2), keepdims=True),
            ops.logsumexp(i, axis=1), ops.one_hot(n, 9), ops.one_hot(n, 9, axis=1),
            ops.one_hot(n, 9, dtype="int32"), ops.sort(i), ops.sort(i, axis=1),
            ops.argsort(i), ops.argsort(n, axis=-1), ops.sort(n), values, indices,
            ops.top_k(n, 2)[1], ops.top_k(i, 6, sorted=True)[0]]
    model = keras.Model([i, n], outs)
    model.save(tmp_path / "heads.keras")
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((3, 5, 6)).astype(np.float32),
          np.array([[1, 8, 3, -1], [0, 5, 2, 7], [6, 4, -3, 2]], np.int32)]
    want = [keras.ops.convert_to_numpy(w) for w in model(xs)]
    for backend in BACKENDS:
        with fl.use_backend(backend):
            got = fl.load_model(tmp_path / "heads.keras")(xs)
        for k, (g, w, spec) in enumerate(zip(got, want, model.outputs)):
            # the dtype Keras declares (top_k's indices: int32; its torch backend's are int64)
            assert g.dtype == spec.dtype and g.shape == w.shape, (k, g.dtype, spec.dtype)
            np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-6, err_msg=str(k))
    # An index past num_classes: a row of zeros (Keras's backends but torch, which raises).
    codes = fl.load_model(tmp_path / "heads.keras")(
        [xs[0], np.array([[9, 100, 0, -5]] * 3, np.int32)])[8]
    np.testing.assert_array_equal(codes[0], np.eye(9, dtype=np.float32)[[0, 0, 0, 0]] * [
        [0], [0], [1], [0]])


def test_top_k_with_nan_and_bad_k(tmp_path):
    """torch.topk ranks NaN above every number; a k past the axis is a clear error."""
    from fastlayers.io import keras_ops

    x = np.array([[1.0, np.nan, np.inf, -2.0]], np.float32)
    values, indices = keras_ops.OPS["TopK"]({"k": 3}, x)
    import torch
    ref = torch.topk(torch.from_numpy(x), 3)
    np.testing.assert_array_equal(values, ref.values.numpy())
    np.testing.assert_array_equal(indices, ref.indices.numpy())
    with pytest.raises(ValueError, match="top_k with k=5"):
        keras_ops.OPS["TopK"]({"k": 5}, x)


def test_legacy_h5_ops_named_like_layers(tmp_path):
    """Keras 3's legacy .h5 writer saves ops without their module: x * y + 1.0 and a reshape
    are the Multiply / Add / Reshape ops there, not the layers of those names."""
    i, j = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([i, j], [i * j + 1.0, ops.reshape(i, (-1, 2, 2)), ops.maximum(i, j)])
    model.save(tmp_path / "ops.h5")
    xs = [np.arange(8, dtype=np.float32).reshape(2, 4), np.full((2, 4), 0.5, np.float32)]
    for g, w in zip(fl.load_model(tmp_path / "ops.h5")(xs), model.predict(xs, verbose=0)):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_a_transformer_block_with_residual_adds(tmp_path):
    i = keras.Input((7, 16))
    x = L.LayerNormalization()(i + L.MultiHeadAttention(2, 8)(i, i))
    x = L.LayerNormalization()(x + L.Dense(16)(L.Dense(32, activation="gelu")(x)))
    model = keras.Model(i, ops.mean(x, axis=1) * 2.0)
    model.save(tmp_path / "block.keras")
    x = np.random.default_rng(1).standard_normal((2, 7, 16)).astype(np.float32)
    np.testing.assert_allclose(fl.load_model(tmp_path / "block.keras")(x),
                               model.predict(x, verbose=0), rtol=2e-5, atol=2e-5)


def test_ops_without_an_equivalent_are_listed(tmp_path):
    i = keras.Input((5, 3))
    keras.Model(i, [ops.cumprod(i), i + 1, ops.norm(i[:, 0], ord=2), ops.norm(i, ord=1, axis=1),
                    ops.pad(i, ((0, 0), (1, 1), (0, 0)), mode="reflect"),
                    ops.normalize(i, axis=None, order=1), ops.logsumexp(i, axis=())]).save(
        tmp_path / "cumprod.keras")
    with pytest.raises(NotImplementedError) as info:
        fl.load_model(tmp_path / "cumprod.keras")
    text = str(info.value)
    assert "6 problem(s)" in text and "Cumprod 'cumprod'" in text, text
    assert "normalize with order=1 over axis=None" in text, text
    assert "logsumexp over axis=()" in text, text
    assert "norm with ord=2, axis=None" in text and "norm with ord=1" in text, text
    assert "pad in mode 'reflect'" in text, text
    keras.Model(i, [ops.max(i, axis=1, initial=0.0), ops.min(i, axis=1, initial=0.0),
                    ops.std(i, axis=())]).save(tmp_path / "initial.keras")
    with pytest.raises(NotImplementedError, match="max with an initial value") as info:
        fl.load_model(tmp_path / "initial.keras")
    assert "std over axis=()" in str(info.value)
    n = keras.Input((3,), dtype="int32")
    keras.Model(n, ops.cast(n, "int8") + 1000).save(tmp_path / "wrap.keras")
    with pytest.raises(NotImplementedError, match="outside its integer tensor's range"):
        fl.load_model(tmp_path / "wrap.keras")
    j = keras.Input((5,))
    keras.Model(j, ops.where(j > 0)).save(tmp_path / "where.keras")
    with pytest.raises(NotImplementedError, match="where\\(condition\\)"):
        fl.load_model(tmp_path / "where.keras")


def test_the_config_records_what_the_loader_reads(saved):
    """The op classes of the saved config are the ones keras_ops implements (a Keras version
    that renamed one would show here rather than as a load failure)."""
    from fastlayers.io import keras_ops

    config = json.loads(zipfile.ZipFile(saved[0]).read("config.json"))
    recorded = {c["class_name"] for c in config["config"]["layers"]
                if str(c.get("module", "")).startswith("keras.src.ops")}
    assert recorded - set(keras_ops.OPS) <= {"ExpandDims", "Matmul"}  # the older op table


def test_sort_and_argsort_of_a_scalar():
    from fastlayers.io import keras_ops

    x = np.float32(2.5)
    assert keras_ops.OPS["Sort"]({"axis": -1}, x) == x
    assert keras_ops.OPS["Argsort"]({"axis": -1}, x).dtype == np.int32
    assert keras_ops.OPS["Argsort"]({"axis": -1}, x) == 0


# The activation functions at parameters other than Keras's defaults (an audit as a drop-in
# user: fastlayers.activations.leaky_relu(x, negative_slope=0.1) raised a bare TypeError).
_PARAMETER_CASES = [
    ("relu", (), {"negative_slope": 0.1}), ("relu", (), {"max_value": 6.0}),
    ("relu", (0.3, 2.0, 0.5), {}), ("relu", (), {"threshold": 1.0}),
    ("relu", (), {"negative_slope": 0.2}), ("relu", (0.0, 6.0), {"threshold": 0.0}),
    ("leaky_relu", (0.1,), {}), ("leaky_relu", (), {"negative_slope": 0.0}),
    ("elu", (), {"alpha": 0.5}), ("celu", (2.0,), {}), ("gelu", (), {"approximate": True}),
    ("hard_shrink", (), {"threshold": 1.0}), ("soft_shrink", (0.25,), {}),
    ("squareplus", (), {"b": 1.0}), ("threshold", (0.5, -7.0), {}),
    ("relu", (), {}), ("gelu", (False,), {}),
]


@pytest.mark.parametrize("name, args, kwargs", _PARAMETER_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_activation_functions_take_keras_parameters(backend, name, args, kwargs):
    """Against keras.activations itself, at the same arguments: finite inputs, NaN, and +inf
    but for gelu, whose limit there fastlayers gives where Keras gives NaN (as at -inf for
    gelu and squareplus: docs/semantics.md §15, so -inf is left out)."""
    rng = np.random.default_rng(len(name) + len(args) + len(kwargs))
    special = [np.nan] if name == "gelu" else [np.nan, np.inf]
    x = np.concatenate([rng.normal(size=61).astype(np.float32) * 4,
                        np.float32([-1, -0.5, 0, 0.5, 1, 2, 6, 6.5, *special])])
    want = np.asarray(getattr(keras.activations, name)(ops.convert_to_tensor(x), *args,
                                                        **kwargs))
    with fl.use_backend(backend):
        got = getattr(fl.activations, name)(x, *args, **kwargs)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_activation_function_parameters_are_checked():
    x = np.ones(3, np.float32)
    A = fl.activations
    for call, exc, match in [
            (lambda: A.relu(x, foo=1), TypeError, "unexpected argument 'foo'"),
            (lambda: A.relu(x, 1, 2, 3, 4), TypeError, "takes 4 positional arguments"),
            (lambda: A.tanh(x, 1), TypeError, "takes 1 positional argument "),
            (lambda: A.relu(x, 0.1, negative_slope=0.2), TypeError, "twice"),
            (lambda: A.elu(x, alpha="a"), TypeError, "alpha must be a real number"),
            (lambda: A.elu(x, alpha=float("nan")), ValueError, "alpha must be finite"),
            (lambda: A.relu(x, max_value=float("inf")), ValueError, "max_value"),
            (lambda: A.gelu(x, approximate=1), TypeError, "approximate must be a bool"),
            (lambda: A.threshold(x, "a", 0.0), TypeError, "threshold must be a real")]:
        with pytest.raises(exc, match=match):
            call()
    # The defaults given explicitly are the plain call, bit for bit (the core's kernel).
    y = np.linspace(-3, 3, 37, dtype=np.float32)
    np.testing.assert_array_equal(A.leaky_relu(y, 0.2), A.leaky_relu(y))
    np.testing.assert_array_equal(A.relu(y, max_value=None), A.relu(y))


def _same_code(lib, dense, act):
    """One model written once for Keras and for fastlayers: operators, indexing and
    activation functions on symbolic tensors (an audit: each raised on fastlayers' tensors)."""
    i, j = lib.Input((6, 4)), lib.Input((6, 4))
    h = dense(4)(i)
    return lib.Model([i, j], [
        h + j, 2.0 * h, h - 1, 1 - h, h / 2, 3 / (abs(h) + 1), -h, abs(h), h ** 2, 2 ** h,
        h[:, 0], h[..., 1:3], h[:, None, 0], h[:, ::2, -1], (h @ h[:, 0, :, None])[..., 0],
        act.gelu(h), act.leaky_relu(h, negative_slope=0.1), act.softmax(h, axis=1),
        act.relu(h, max_value=0.5)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_symbolic_tensor_operators_as_keras(backend):
    import pickle

    km = _same_code(keras, L.Dense, keras.activations)
    fm = _same_code(fl, fl.layers.Dense, fl.activations)
    rng = np.random.default_rng(2)
    km.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in km.get_weights()])
    fm.set_weights(km.get_weights())
    x, y = rng.normal(size=(2, 3, 6, 4)).astype(np.float32)
    want = km.predict([x, y], verbose=0)
    with fl.use_backend(backend):
        got = fm.predict([x, y], batch_size=2)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    again = pickle.loads(pickle.dumps(fm))
    for g, w in zip(again([x, y]), fm([x, y])):
        np.testing.assert_array_equal(g, w)
    # Keras's dtype rules: a Python int is weak against an int tensor, a float is not.
    ki, fi = keras.Input((3,), dtype="int32"), fl.Input((3,), dtype="int32")
    ids = np.arange(6, dtype=np.int32).reshape(2, 3)
    for g, w in zip(fl.Model(fi, [fi + 1, fi * 2.0, fi[:, 1], -fi])(ids),
                    keras.Model(ki, [ki + 1, ki * 2.0, ki[:, 1], -ki]).predict(ids, verbose=0)):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_symbolic_tensor_misuse_says_what():
    i = fl.Input((3,))
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(i)
    with pytest.raises(TypeError, match="index arrays and masks are not supported"):
        i[[0, 1]]
    with pytest.raises(TypeError, match="no truth value"):
        bool(i)
    model = fl.Model(i, np.float32(3) * i[:, 1:])  # a NumPy scalar defers to the tensor
    np.testing.assert_array_equal(model(np.ones((2, 3), np.float32)), np.full((2, 2), 3.0))
    with pytest.raises(ValueError, match="get_item"):
        fl.Model(fl.Input((3,)), fl.Input((3,))[:, 5])


def test_symbolic_operators_with_numpy_scalars_and_integer_products():
    """A NumPy scalar operand is weak, as Keras takes a Python number (int32 * np.int64(2)
    stays int32; it was int64), and int32 @ int32 is int32 (it was float32), against Keras."""
    rng = np.random.default_rng(6)
    a = rng.integers(-5, 5, size=(2, 2, 3)).astype(np.int32)
    b = rng.integers(-5, 5, size=(2, 3, 4)).astype(np.int32)
    i, j = fl.Input((2, 3), dtype="int32"), fl.Input((3, 4), dtype="int32")
    got = fl.Model([i, j], [i * np.int64(2), i + np.int32(1), i @ j])([a, b])
    ki, kj = keras.Input((2, 3), dtype="int32"), keras.Input((3, 4), dtype="int32")
    want = keras.Model([ki, kj], [ki * np.int64(2), ki + np.int32(1), ki @ kj]).predict(
        [a, b], verbose=0)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.int32
        np.testing.assert_array_equal(g, w)
    # int8 wraps around as Keras's does (100 * 2 = -56), in int8
    small = np.array([[1, -2, 100]], np.int8)
    k8 = keras.Input((3,), dtype="int8")
    want8 = keras.Model(k8, k8 * np.int64(2)).predict(small, verbose=0)
    f8 = fl.Input((3,), dtype="int8")
    got8 = fl.Model(f8, f8 * np.int64(2))(small)
    assert got8.dtype == np.int8
    np.testing.assert_array_equal(got8, want8.astype(np.int8))
    np.testing.assert_array_equal(got8, [[2, -4, -56]])
