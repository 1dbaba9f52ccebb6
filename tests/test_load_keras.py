"""Loading Keras files: fastlayers.load_model (.keras, legacy .h5) and model.load_weights.

tests/golden/make_golden_models.py wrote every model of tests/golden/models.npz as
models/<case>.keras, models/<case>.h5 (Keras 3's legacy writer) and
models/<case>.weights.h5, plus models/unsupported.keras (a Lambda layer and a custom
layer class). Loaded models must hold exactly Keras's weights and predict Keras's
outputs within float32 rounding (the tolerance of tests/test_models.py), on both paths.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import NUMPY_ONLY
from golden_models import CASES, assert_keras_outputs, golden

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers.io.keras_config import Unsupported, _einsum
from fastlayers.layers import (
    GRU,
    LSTM,
    Activation,
    ActivityRegularization,
    AdditiveAttention,
    Attention,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GaussianDropout,
    GaussianNoise,
    MultiHeadAttention,
    Softmax,
    SpatialDropout2D,
)

# Reading files needs h5py (the "keras" extra; also in the "test" extra, so CI runs these).
HAVE_H5PY = importlib.util.find_spec("h5py") is not None
needs_h5py = pytest.mark.skipif(not HAVE_H5PY, reason='h5py is not installed (pip install '
                                '"fastlayers[keras]")')
if HAVE_H5PY:
    import h5py

HERE = Path(__file__).parent / "golden"
MODELS = HERE / "models"
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]


def check_outputs(case: str, mdl, backend: str) -> None:
    inputs = golden(case, "inputs")
    with fl.use_backend(backend):
        got = mdl.predict(inputs if len(inputs) > 1 else inputs[0], batch_size=2)
    assert_keras_outputs(case, got)


def check_weights(case: str, mdl) -> None:
    want = golden(case, "weights")
    got = mdl.get_weights()
    assert [w.shape for w in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_every_golden_model_has_its_files():
    assert len(CASES) >= 9
    for case in CASES:
        for suffix in (".keras", ".h5", ".weights.h5"):
            assert (MODELS / f"{case}{suffix}").is_file(), f"{case}{suffix}"


@needs_h5py
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("case", CASES)
def test_load_model_predicts_like_keras(case, suffix, backend):
    mdl = fl.load_model(MODELS / f"{case}{suffix}")
    assert isinstance(mdl, (Model, Sequential))
    check_weights(case, mdl)
    check_outputs(case, mdl, backend)


@needs_h5py
def test_loaded_structure_follows_the_config():
    mdl = fl.load_model(MODELS / "shared_nested_multi.keras")
    inner = mdl.get_layer("inner")
    assert isinstance(inner, Model) and isinstance(inner.layers[1], GRU)
    assert isinstance(mdl.get_layer("shared"), Dense)
    assert mdl.get_layer("shared").activation == "tanh"
    assert [t.name for t in mdl.inputs] == ["a", "b"]
    seq = fl.load_model(MODELS / "conv_sequential.keras")
    assert isinstance(seq, Sequential)
    assert [type(x) for x in seq.layers] == [Conv2D, SpatialDropout2D, Flatten, Dense]
    conv = seq.layers[0]
    assert (conv.strides, conv.padding, conv.activation) == ((2, 2), "same", "relu")
    mixed = fl.load_model(MODELS / "mixed_layers.h5")
    kinds = {type(x) for x in mixed.layers}
    assert {Bidirectional, MultiHeadAttention, AdditiveAttention, Dropout, Activation, Softmax,
            GaussianNoise, ActivityRegularization, Sequential} <= kinds
    # Keras ops in the graph became fastlayers ops, not layers.
    att = fl.load_model(MODELS / "seed_attention.keras")
    assert [type(x).__name__ for x in att.layers].count("Dense") == 3
    assert len(att.layers) == 6  # 3 inputs + 3 Dense


# ---- load_weights into models built in code ---------------------------------------------


def _code_model(case: str):
    """The golden models written with fastlayers (auto names differ from Keras's)."""
    if case == "shared_nested_multi":
        inner_in = Input(shape=(6, 4))
        inner = Model(inner_in, GRU(4, return_sequences=True)(inner_in))
        a_in, b_in = Input(shape=(6, 4)), Input(shape=(6, 4))
        shared = Dense(4, activation="tanh")
        ha, hb = inner(shared(a_in)), shared(b_in)
        out1 = Dense(3)(Flatten()(Attention()([ha, hb])))
        return Model([a_in, b_in], [out1, LSTM(2)(hb)])
    if case == "mixed_layers":
        inp = Input(shape=(6, 4))
        bi = Bidirectional(GRU(3, return_sequences=True))(inp)
        mha = MultiHeadAttention(num_heads=2, key_dim=3)(bi, bi)
        act = Activation("relu")(Dropout(0.3)(AdditiveAttention()([mha, bi])))
        noisy = GaussianNoise(0.1)(Softmax(axis=1)(act))
        head = Sequential([Dense(3, activation="tanh"), GaussianDropout(0.2), Dense(2)])
        return Model(inp, [head(noisy), ActivityRegularization(l2=0.01)(bi)])
    if case == "conv_sequential":
        return Sequential([Input(shape=(9, 9, 2)),
                           Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                           SpatialDropout2D(0.2), Flatten(), Dense(3, activation="softmax")])
    if case == "nested_twice":
        inner_in = Input(shape=(4,))
        frozen = Dense(5, activation="relu", trainable=False)
        inner = Model(inner_in, Dense(4)(frozen(inner_in)))
        inp = Input(shape=(4,))
        once = inner(inp)
        return Model(inp, [inner(once), Dense(2)(once)])
    if case == "seed_lstm":
        inp = Input(shape=(5, 2))
        lstm, h, c = LSTM(8, return_state=True)(inp)
        return Model(inp, [Dense(2)(lstm), h, c])
    raise AssertionError(case)


@needs_h5py
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("suffix", [".weights.h5", ".h5", ".keras"])
@pytest.mark.parametrize("case", ["shared_nested_multi", "mixed_layers", "conv_sequential",
                                  "seed_lstm", "nested_twice"])
def test_load_weights_into_a_model_built_in_code(case, suffix, backend):
    mdl = _code_model(case)
    before = [w.copy() for w in mdl.get_weights()] if all(
        x.built for x in mdl.layers) else None
    mdl.load_weights(MODELS / f"{case}{suffix}")
    check_weights(case, mdl)
    if before is not None:
        assert any(not np.array_equal(a, b) for a, b in zip(before, mdl.get_weights()))
    check_outputs(case, mdl, backend)


@needs_h5py
def test_load_weights_by_path_when_names_differ(tmp_path):
    # A file whose vars groups carry names unrelated to the model's layer names: the
    # object path decides (dense, dense_1 in layer order), as in Keras.
    src = MODELS / "sequential_mlp.weights.h5"
    dst = tmp_path / "renamed.weights.h5"
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        f["layers/dense/vars"].attrs["name"] = "zzz"
        f["layers/dense_1/vars"].attrs["name"] = "aaa"
    mdl = Sequential([Input(shape=(10,)), Dense(16, activation="gelu", name="first"),
                      Dense(4, activation="softmax", name="second")])
    mdl.load_weights(dst)
    check_weights("sequential_mlp", mdl)


@needs_h5py
def test_load_weights_mismatch_leaves_the_model_unchanged():
    mdl = _code_model("conv_sequential")
    mdl.load_weights(MODELS / "conv_sequential.weights.h5")
    before = mdl.get_weights()
    wrong = Sequential([Input(shape=(9, 9, 2)), Conv2D(4, 3, strides=2, padding="same"),
                        Flatten(), Dense(5)])
    with pytest.raises(ValueError, match="shape"):
        wrong.load_weights(MODELS / "conv_sequential.weights.h5")
    with pytest.raises(ValueError, match="weights"):
        mdl.load_weights(MODELS / "seed_dense.weights.h5")  # another model's file
    for a, b in zip(before, mdl.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="layers with weights"):
        mdl.load_weights(MODELS / "shared_nested_multi.h5")
    with pytest.raises(ValueError, match="shape"):
        mdl.load_weights(MODELS / "seed_dense.h5")  # two layers, matched in order
    for a, b in zip(before, mdl.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- what cannot be loaded ----------------------------------------------------------------


@needs_h5py
def test_unsupported_layers_are_listed_in_one_error():
    with pytest.raises(NotImplementedError) as info:
        fl.load_model(MODELS / "unsupported.keras")
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "TimesTwo 'times_two'" in text and "custom class" in text
    assert "Lambda 'plus_one'" in text


def _rewrite_config(tmp_path: Path, case: str, edit) -> Path:
    """A copy of models/<case>.keras with its config.json changed by ``edit``."""
    out = tmp_path / f"{case}.keras"
    with zipfile.ZipFile(MODELS / f"{case}.keras") as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                cfg = json.loads(data)
                edit(cfg)
                data = json.dumps(cfg).encode()
            zout.writestr(name, data)
    return out


def _layer_cfg(cfg: dict, name: str) -> dict:
    return next(x for x in cfg["config"]["layers"] if x["config"].get("name") == name)


@needs_h5py
def test_arguments_that_change_the_result_are_refused(tmp_path):
    def edit(cfg):
        # (lora_rank loads from a .keras file: its kernel holds the update merged)
        _layer_cfg(cfg, "shared")["config"]["quantization_config"] = {"mode": "int8"}
        _layer_cfg(cfg, "head2")["config"]["time_major"] = True
        _layer_cfg(cfg, "head1")["config"]["dtype"] = "float16"
        _layer_cfg(cfg, "attention")["config"]["surprise"] = 1

    path = _rewrite_config(tmp_path, "shared_nested_multi", edit)
    with pytest.raises(NotImplementedError) as info:
        fl.load_model(path)
    text = str(info.value)
    assert "4 problem(s)" in text
    assert "Dense 'shared'" in text and "quantization_config" in text
    assert "LSTM 'head2'" in text and "time_major" in text
    assert "Dense 'head1'" in text and "dtype='float16'" in text
    assert "Attention 'attention'" in text and "surprise" in text


@needs_h5py
def test_subclassed_and_non_model_configs(tmp_path):
    def subclassed(cfg):
        cfg["class_name"] = "MyModel"
        cfg["module"] = "__main__"
        cfg["registered_name"] = "MyModel"

    with pytest.raises(NotImplementedError, match="MyModel.*subclassed"):
        fl.load_model(_rewrite_config(tmp_path, "seed_dense", subclassed))

    def not_a_model(cfg):
        cfg["class_name"] = "Dense"
        cfg["module"] = "keras.layers"
        cfg["registered_name"] = None

    with pytest.raises(ValueError, match="not a Keras model config"):
        fl.load_model(_rewrite_config(tmp_path, "seed_dense", not_a_model))


@needs_h5py
def test_inference_irrelevant_arguments_are_dropped(tmp_path):
    def edit(cfg):
        dense = _layer_cfg(cfg, "shared")["config"]
        dense["kernel_regularizer"] = {"class_name": "L2", "config": {"l2": 0.1}}
        dense["kernel_constraint"] = {"class_name": "MaxNorm", "config": {"max_value": 2}}
        dense["trainable"] = False
        _layer_cfg(cfg, "head2")["config"]["recurrent_dropout"] = 0.5

    mdl = fl.load_model(_rewrite_config(tmp_path, "shared_nested_multi", edit))
    assert mdl.get_layer("shared").trainable is False
    check_outputs("shared_nested_multi", mdl, "numpy")


@needs_h5py
def test_unsupported_ops_and_wrapped_layers(tmp_path):
    def edit(cfg):
        _layer_cfg(cfg, "einsum")["config"]["subscripts"] = "btd,bsd->b"
        _layer_cfg(cfg, "matmul")["class_name"] = "Cumprod"
        _layer_cfg(cfg, "matmul")["registered_name"] = "Cumprod"

    with pytest.raises(NotImplementedError) as info:
        fl.load_model(_rewrite_config(tmp_path, "seed_attention", edit))
    text = str(info.value)
    assert "Cumprod 'matmul'" in text and "without a fastlayers equivalent" in text
    assert "Einsum 'einsum'" in text and "btd,bsd->b" in text

    def wrap_dense(cfg):
        bi = _layer_cfg(cfg, "bidirectional")["config"]
        bi["layer"]["class_name"] = "ConvLSTM1D"

    with pytest.raises(NotImplementedError, match="ConvLSTM1D"):
        fl.load_model(_rewrite_config(tmp_path, "mixed_layers", wrap_dense))


@pytest.mark.parametrize("subscripts, transposed", [
    ("btd,bsd->bts", True), ("bij,bjk->bik", False), ("ij,jk->ik", False),
    ("abij,abkj->abik", True),
])
def test_einsum_as_matmul(subscripts, transposed):
    rng = np.random.default_rng(0)
    a_shape = (2, 3, 4, 5)[-len(subscripts.split(",")[0]):]
    a = rng.standard_normal(a_shape).astype(np.float32)
    b_shape = a_shape[:-2] + ((6, 5) if transposed else (5, 6))
    b = rng.standard_normal(b_shape).astype(np.float32)
    np.testing.assert_allclose(_einsum(subscripts)(a, b), np.einsum(subscripts, a, b),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("subscripts", ["bi,bi->b", "btd,bsd->bst", "bij,cjk->bik", "ii,ij->ij",
                                        "...ij,...jk->...ik", "bij->bji"])
def test_einsum_other_patterns_are_unsupported(subscripts):
    with pytest.raises(Unsupported):
        _einsum(subscripts)


# ---- a Keras 2 (tf.keras) style legacy file ---------------------------------------------


def _keras2_file(path: Path) -> None:
    """seed_lstm as tf.keras 2 writes it: Keras 2 config (class Model, list-form inbound
    nodes, batch_input_shape, time_major) and ':0' weight names."""
    w = golden("seed_lstm", "weights")
    config = {"class_name": "Model", "config": {
        "name": "model",
        "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 5, 2], "dtype": "float32",
                        "sparse": False, "ragged": False, "name": "input_1"}},
            {"class_name": "LSTM", "name": "lstm", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "lstm", "trainable": True, "dtype": "float32",
                        "return_sequences": False, "return_state": True,
                        "go_backwards": False, "stateful": False, "unroll": False,
                        "time_major": False, "units": 8, "activation": "tanh",
                        "recurrent_activation": "sigmoid", "use_bias": True,
                        "kernel_initializer": {"class_name": "GlorotUniform",
                                               "config": {"seed": None}},
                        "unit_forget_bias": True, "dropout": 0.0,
                        "recurrent_dropout": 0.0, "implementation": 2}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["lstm", 0, 0, {}]]],
             "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
                        "activation": "linear", "use_bias": True}},
        ],
        "input_layers": [["input_1", 0, 0]],
        "output_layers": [["dense", 0, 0], ["lstm", 0, 1], ["lstm", 0, 2]],
    }}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.15.0"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"input_1", b"lstm", b"dense"]
        g.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, names, arrays in (
            ("lstm", ["lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0",
                      "lstm/lstm_cell/bias:0"], w[:3]),
            ("dense", ["dense/kernel:0", "dense/bias:0"], w[3:]),
        ):
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n, a in zip(names, arrays):
                lg.create_dataset(n, data=a)


@needs_h5py
@pytest.mark.parametrize("backend", BACKENDS)
def test_keras2_legacy_h5(tmp_path, backend):
    path = tmp_path / "keras2.h5"
    _keras2_file(path)
    mdl = fl.load_model(path)
    check_weights("seed_lstm", mdl)
    check_outputs("seed_lstm", mdl, backend)


@needs_h5py
def test_keras2_sequential_with_batch_input_shape(tmp_path):
    w = golden("sequential_mlp", "weights")
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "Dense", "config": {"name": "dense", "batch_input_shape": [None, 10],
                                           "dtype": "float32", "units": 16,
                                           "activation": "gelu", "use_bias": True}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 4,
                                           "activation": "softmax", "use_bias": True}},
    ]}}
    path = tmp_path / "seq2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"dense", b"dense_1"]
        for layer, arrays in (("dense", w[:2]), ("dense_1", w[2:])):
            names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n, a in zip(names, arrays):
                lg.create_dataset(n, data=a)
    mdl = fl.load_model(path)
    assert isinstance(mdl, Sequential) and len(mdl.layers) == 2
    check_weights("sequential_mlp", mdl)
    check_outputs("sequential_mlp", mdl, "numpy")


@needs_h5py
def test_keras2_13_weights_layout_is_refused(tmp_path):
    path = tmp_path / "old.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("_layer_checkpoint_dependencies/dense/vars").create_dataset(
            "0", data=np.ones((10, 16), np.float32))
    mdl = Sequential([Input(shape=(10,)), Dense(16)])
    with pytest.raises(NotImplementedError, match="Keras 2.13"):
        mdl.load_weights(path)
    with pytest.raises(ValueError, match="not a Keras 3 weights file"):
        with h5py.File(tmp_path / "empty.h5", "w"):
            pass
        mdl.load_weights(tmp_path / "empty.h5")


@needs_h5py
def test_bfloat16_weights_are_refused(tmp_path):
    dst = tmp_path / "bf16.weights.h5"
    dst.write_bytes((MODELS / "sequential_mlp.weights.h5").read_bytes())
    with h5py.File(dst, "r+") as f:
        f["layers/dense/vars/0"].attrs["dtype"] = "bfloat16"
    mdl = Sequential([Input(shape=(10,)), Dense(16), Dense(4)])
    with pytest.raises(NotImplementedError, match="bfloat16"):
        mdl.load_weights(dst)


# ---- bad inputs, missing h5py ----------------------------------------------------------


def test_bad_paths(tmp_path):
    with pytest.raises(TypeError, match="file path"):
        fl.load_model(123)
    with pytest.raises(FileNotFoundError):
        fl.load_model(tmp_path / "nope.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither"):
        fl.load_model(junk)
    z = tmp_path / "other.keras"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="config.json"):
        fl.load_model(z)


@needs_h5py
def test_weights_only_file_is_not_a_model():
    with pytest.raises(ValueError, match="no model config"):
        fl.load_model(MODELS / "seed_dense.weights.h5")


def test_missing_h5py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes "import h5py" fail
    with pytest.raises(ImportError, match=r'pip install "fastlayers\[keras\]"'):
        fl.load_model(MODELS / "seed_dense.keras")
    mdl = _code_model("conv_sequential")
    with pytest.raises(ImportError, match=r"fastlayers\[keras\]"):
        mdl.load_weights(MODELS / "conv_sequential.weights.h5")


def test_importing_fastlayers_does_not_import_h5py():
    code = "import sys, fastlayers; print('h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ---- damaged files and malformed configs (fuzz campaign, defect 9) ------------------------
# Each is a ValueError naming the file and what is wrong, chained from the low-level error.


def test_a_directory_is_not_a_model_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fl.load_model(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        Sequential([Input(shape=(3,)), Dense(2)]).load_weights(tmp_path)


def _set(path: list, value):
    """An edit for _rewrite_config: cfg[path[0]][path[1]]... = value."""
    def edit(cfg):
        for key in path[:-1]:
            cfg = cfg[key]
        cfg[path[-1]] = value
    return edit


MALFORMED = [  # (case id, edit of seed_dense's config.json, message fragment)
    ("output_layers_short", _set(["config", "output_layers"], ["dense_1", 0]),
     "a tensor reference is"),
    ("input_layers_short", _set(["config", "input_layers"], ["input_layer", 0]),
     "a tensor reference is"),
    ("output_layers_str", _set(["config", "output_layers"], "dense_1"),
     "input_layers / output_layers hold"),
    ("output_layers_unknown", _set(["config", "output_layers"], ["nope", 0, 0]),
     "a node the config does not make"),
    ("output_tensor_index", _set(["config", "output_layers"], ["dense_1", 0, 3]),
     "names output 3 of a node with 1 output"),
    ("no_layers", lambda cfg: cfg["config"].pop("layers"), "needs 'layers'"),
    ("layer_config_list", _set(["config", "layers", 1, "config"], []),
     "the config of layer 'Dense' must be an object"),
    ("model_config_list", _set(["config"], []), "the config of Functional"),
    ("keras_history_short",
     _set(["config", "layers", 2, "inbound_nodes", 0, "args", 0, "config", "keras_history"],
          ["dense", 0]), "a tensor reference is"),
    ("inbound_kwargs_int", _set(["config", "layers", 2, "inbound_nodes", 0, "kwargs"], 5),
     "an inbound node's kwargs must be an object"),
    ("inbound_nodes_dict", _set(["config", "layers", 2, "inbound_nodes"], {}),
     "inbound_nodes of 'flatten' must be a list"),
    ("dtype_config_float", _set(["config", "layers", 1, "config", "dtype", "config"], 1.5),
     "the config of dtype"),
]


@needs_h5py
@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_configs_are_value_errors(tmp_path, case):
    _, edit, text = case
    path = _rewrite_config(tmp_path, "seed_dense", edit)
    with pytest.raises(ValueError, match="malformed Keras config") as info:
        fl.load_model(path)
    assert str(path) in str(info.value) and text in str(info.value)


@needs_h5py
@pytest.mark.parametrize("layer, value", [(7, 2**31), (18, 10**29)], ids=["expand_dims", "any"])
def test_an_axis_too_large_for_c_is_a_value_error(tmp_path, layer, value):
    """An integer config value beyond C's int (OverflowError inside NumPy) is a ValueError
    naming the file, like every other malformed config."""
    out = _rewrite_config(tmp_path, "integ_mask_ops",
                          _set(["config", "layers", layer, "config", "axis"], value))
    with pytest.raises(ValueError, match="OverflowError") as info:
        fl.load_model(out)
    assert str(out) in str(info.value)


def _zip(path: Path, config: bytes, weights: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", weights)
    return path


@needs_h5py
def test_damaged_files_are_value_errors(tmp_path):
    keras_file = MODELS / "seed_dense.keras"
    with zipfile.ZipFile(keras_file) as zf:
        config, weights = zf.read("config.json"), zf.read("model.weights.h5")
    h5 = (MODELS / "seed_dense.h5").read_bytes()
    deep = b"[" * 100_000 + b"]" * 100_000
    crc = bytearray(_zip(tmp_path / "crc.keras", config, weights).read_bytes())
    crc[crc.index(b'"units"') + 1] ^= 0x20  # "Units": the stored CRC no longer matches
    cases = {  # file name -> (bytes, message fragment)
        "crc.keras": (bytes(crc), "BadZipFile"),
        "deep.keras": (_zip(tmp_path / "d.keras", deep, weights).read_bytes(),
                       "config.json is not valid JSON"),
        "weights_garbage.keras": (_zip(tmp_path / "g.keras", config, b"x" * 500).read_bytes(),
                                  "not a valid Keras file"),
        "weights_empty.keras": (_zip(tmp_path / "e.keras", config, b"").read_bytes(),
                                "not a valid Keras file"),
        "signature_garbage.h5": (b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8,
                                 "not a valid Keras file"),
        "truncated.h5": (h5[: len(h5) // 2], "not a valid Keras file"),
    }
    for name, (data, text) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as info:
            fl.load_model(path)
        assert str(path) in str(info.value) and text in str(info.value), name
        assert info.value.__cause__ is not None, name  # chained from the reader's error
    with pytest.raises(ValueError, match="truncated.h5"):
        Sequential([Input(shape=(3,)), Dense(2)]).load_weights(tmp_path / "truncated.h5")


@needs_h5py
def test_bit_flipped_h5_files_load_or_raise_clear_errors(tmp_path):
    """A flipped bit either fails with a clear error (anything else - KeyError, OSError,
    RuntimeError from h5py - fails the test) or gives a model that runs: HDF5 keeps no
    checksum, so a flip in a weight's data is a different weight, and the model must still
    take an input of its shape and return float32 rows. Both outcomes occur."""
    data = (MODELS / "seed_dense.h5").read_bytes()
    rng = np.random.default_rng(0)
    loaded = refused = 0
    for k in range(40):
        flipped = bytearray(data)
        for i in rng.integers(0, len(data), 4):
            flipped[i] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"flip{k}.h5"
        path.write_bytes(bytes(flipped))
        try:
            model = fl.load_model(path)
        except (ValueError, NotImplementedError):
            refused += 1
            continue
        loaded += 1
        shape = model.input_shape
        if all(isinstance(d, int) and 0 < d <= 1 << 16 for d in shape[1:]):
            y = model(np.zeros((2, *shape[1:]), np.float32))
            assert y.dtype == np.float32 and y.shape[0] == 2, k
    assert loaded and refused, (loaded, refused)


def test_the_documented_class_list_is_the_loaders():
    """docs/semantics.md §29 lists every Keras class name load_model reads (aliases in
    brackets): the same set as the loader's table, no more, no less."""
    import re

    from fastlayers.io.keras_config import LAYER_CLASSES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "semantics.md").read_text()
    section = doc.split("## 29. The Keras classes `load_model` reads", 1)[1].split("\n## ")[0]
    listed = set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", section.split("\n\n", 2)[2]))
    assert listed == set(LAYER_CLASSES), (sorted(listed - set(LAYER_CLASSES)),
                                          sorted(set(LAYER_CLASSES) - listed))
