"""Cross-layer models (issue 12): masks from Embedding(mask_zero=True) and Masking flowing
through the merging, shape, wrapper, convolution and pooling layers, in Sequential,
functional, nested and multi-input/output models, compared with Keras 3.

The models are written once in tests/integ_models.py for both APIs;
tests/golden/make_models_integ.py ran them with Keras (torch backend) into integ.npz and
models_integ.npz (whose model files tests/test_load_keras.py also loads). Here each case is
built with fastlayers, given Keras's weights and run on both paths, called directly and
through ``predict`` with batches that split the inputs. docs/semantics.md §18-§22 state the
rules.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import golden_models
import numpy as np
import pytest
from conftest import NUMPY_ONLY
from integ_models import CASES

import fastlayers as fl
from fastlayers import Model, Sequential
from fastlayers import layers as L

BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
GOLDEN = golden_models.read(("integ.npz", "models_integ.npz"))


def golden(case: str, part: str) -> list[np.ndarray]:
    return golden_models.parts(GOLDEN, case, part)


def _inputs(case: str):
    inputs = golden(case, "inputs")
    return inputs if len(inputs) > 1 else inputs[0]


def _as_list(out) -> list[np.ndarray]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def assert_like_keras(case: str, got) -> None:
    got = _as_list(got)
    want = golden(case, "out")
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == np.float32, (i, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * max(1.0, float(np.nanmax(
            np.abs(w)))), err_msg=f"{case} output {i}")


def _model(case: str):
    mdl = CASES[case](fl)
    weights = golden(case, "weights")
    assert [w.shape for w in mdl.get_weights()] == [w.shape for w in weights]
    mdl.set_weights(weights)
    return mdl


def _all_layers(mdl):
    for layer in mdl.layers:
        yield layer
        if isinstance(layer, (Model, Sequential)):
            yield from _all_layers(layer)
        if isinstance(layer, L.TimeDistributed):
            yield layer.layer


def test_every_case_has_keras_outputs():
    assert sorted({k.split(".")[0] for k in GOLDEN}) == sorted(CASES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_cross_layer_models_like_keras(case, backend):
    mdl = _model(case)
    x = _inputs(case)
    with fl.use_backend(backend):
        assert_like_keras(case, mdl(x))
        # predict splits the batch (2 + 2 + 1 or 2 + 1; one by one; 3 + rest): the masks
        # are split with it.
        for batch_size in (2, 1, 3):
            assert_like_keras(case, mdl.predict(x, batch_size=batch_size))


def test_layers_in_keras_order():
    """model.layers (and so get_weights) in Keras's order: Keras's graph also holds the
    ops that computed implicit masks, and their depth counts (models/_mask_graph.py)."""
    import json

    for case in sorted(CASES):
        want = [{"Functional": "Model"}.get(name, name)
                for name in json.loads(str(GOLDEN[f"{case}.layer_classes"]))]
        mdl = CASES[case](fl)
        assert [type(layer).__name__ for layer in mdl.layers] == want, case


# Which outputs depend on a mask: removing the masks (Embedding's mask_zero off, a Masking
# value no step has) must change exactly these, so the fixtures can fail both ways (a mask
# lost, or a mask kept where Keras drops it).
MASKED_OUTPUTS = {
    "integ_emb_pool": {0, 1},  # Conv1D / MaxPooling1D drop the mask: outputs 2-4 unmasked
    "integ_merge_lstm": {0, 1, 2, 3, 4, 5, 6},  # 7: a feature concat with an unmasked input
    "integ_td": {0, 1, 2},
    "integ_seq_masking_td_gru": {0},
    "integ_bilstm_attention": {0},
    "integ_shape_drop": {3, 4},  # Reshape, Permute drop it; 3 pools the masked tensor
    "integ_multi_nested": {0, 1, 2},
    "integ_cnn": set(),
    "integ_more_merges": {1, 2, 3, 5, 6},  # 0: Average with an unmasked input; 4: Dot
    "integ_seq_text": {0},
    "integ_td_embedding": set(),  # TimeDistributed keeps its input's mask (none)
    "integ_mask_ops": {0, 1},
    "integ_mha_merges": {0, 1},
    "integ_masking_merges": {1, 2, 3},  # 0: Average with an unmasked branch has no mask
}


def _unmask(mdl) -> None:
    for layer in _all_layers(mdl):
        if isinstance(layer, L.Embedding):
            layer.mask_zero = layer.supports_masking = False
        if isinstance(layer, L.Masking):
            layer.mask_value = 12345.0


def test_masked_outputs_list_is_complete():
    assert sorted(MASKED_OUTPUTS) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_depend_on_the_masks_as_in_keras(case):
    mdl = _model(case)
    _unmask(mdl)
    got = _as_list(mdl(_inputs(case)))
    changed = {i for i, (g, w) in enumerate(zip(got, golden(case, "out")))
               if not np.allclose(g, w, atol=1e-4, equal_nan=True)}
    assert changed == MASKED_OUTPUTS[case]


def test_time_distributed_embedding_mask_would_change_the_result():
    """integ_td_embedding can fail: its TimeDistributed(LSTM) given the Embedding's mask
    (which Keras does not pass on) computes something else."""
    mdl = _model("integ_td_embedding")
    grid, _ = golden("integ_td_embedding", "inputs")
    td_emb = next(la for la in mdl.layers if isinstance(la, L.TimeDistributed)
                  and isinstance(la.layer, L.Embedding))
    td_lstm = next(la for la in mdl.layers if isinstance(la, L.TimeDistributed)
                   and isinstance(la.layer, L.LSTM))
    masked = td_lstm(td_emb(grid), mask=grid != 0)
    unmasked = td_lstm(td_emb(grid))
    want = golden("integ_td_embedding", "out")[0]
    np.testing.assert_allclose(unmasked, want, rtol=2e-5, atol=2e-5)
    assert not np.allclose(masked, want, atol=1e-4)


def test_padding_values_do_not_leak_where_masked():
    """Where every reader of an Embedding honours its mask, the padding row's vector
    (row 0) cannot change the outputs; where the mask is dropped it does."""
    for case, unaffected in (("integ_bilstm_attention", {0}), ("integ_seq_text", {0}),
                             ("integ_emb_pool", {0, 1}), ("integ_td", {0, 1, 2})):
        mdl = _model(case)
        x = _inputs(case)
        before = _as_list(mdl(x))
        for layer in _all_layers(mdl):
            if isinstance(layer, L.Embedding):
                (table,) = layer.get_weights()
                table = table.copy()
                table[0] = 7.0
                layer.set_weights([table])
        after = _as_list(mdl(x))
        for i, (b, a) in enumerate(zip(before, after)):
            same = np.allclose(b, a, atol=1e-6, equal_nan=True)
            assert same == (i in unaffected), (case, i)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_pickle_and_copy_round_trip(case, backend):
    mdl = _model(case)
    x = _inputs(case)
    with fl.use_backend(backend):
        want = _as_list(mdl(x))
        for clone in (pickle.loads(pickle.dumps(mdl)), copy.deepcopy(mdl)):
            got = _as_list(clone(x))
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)  # bitwise (NaN where Keras has NaN)
            assert [type(a) for a in clone.layers] == [type(b) for b in mdl.layers]


def test_summary_and_weights(capsys):
    for case in sorted(CASES):
        mdl = _model(case)
        mdl.summary()
        assert "Total params" in capsys.readouterr().out
        assert sum(w.size for w in mdl.get_weights()) == sum(
            w.size for w in golden(case, "weights"))


# ---- loading the mask ops Keras records -------------------------------------------------


def _loaded_mask_ops(path: Path) -> list[str]:
    return sorted({n.label for n in _nodes(fl.load_model(path)) if n.layer is None})


def _nodes(mdl):
    seen, out = set(), []
    for t in mdl.outputs:
        stack = [t]
        while stack:
            node = stack.pop().node
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            out.append(node)
            stack.extend(node.inputs)
    return out


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_loaded_merge_mask_ops(suffix):
    """integ_mask_ops's graph holds the mask ops of Concatenate, Add and Attention; the
    loader rebuilds them (a legacy .h5 names no module: a Concatenate config without
    "trainable" is the op, with it the layer), and the loaded model pickles."""
    pytest.importorskip("h5py")
    path = golden_models.GOLDEN_DIR / "models" / f"integ_mask_ops{suffix}"
    assert _loaded_mask_ops(path) == [
        "keras_any", "keras_concatenate", "keras_convert_to_tensor", "keras_expand_dims",
        "keras_full_like", "keras_logical_or", "keras_not_equal"]
    mdl = fl.load_model(path)
    assert sum(isinstance(la, L.Concatenate) for la in mdl.layers) == 1
    x = _inputs("integ_mask_ops")
    assert_like_keras("integ_mask_ops", mdl(x))
    clone = pickle.loads(pickle.dumps(mdl))
    for g, w in zip(clone(x), mdl(x)):
        np.testing.assert_array_equal(g, w)


def test_mask_op_configs():
    from fastlayers.io import keras_config as kc

    def op(cls, **config):
        return kc.OPS[cls]({"class_name": cls, "config": {"name": "x", **config}})

    m = np.array([[True, False, True]])
    np.testing.assert_array_equal(op("ExpandDims", axis=-1)(m), m[..., None])
    np.testing.assert_array_equal(op("LogicalOr")(m, ~m), np.ones_like(m))
    z = op("ZerosLike", dtype="bool")(np.ones((2, 3), np.float32))
    o = op("OnesLike", dtype="bool")(np.ones((2, 3), np.float32))
    assert z.dtype == o.dtype == np.bool_ and not z.any() and o.all()
    assert op("OnesLike")(np.zeros(2, np.float32)).dtype == np.float32
    np.testing.assert_array_equal(op("Concatenate", axis=1)([m, ~m]), np.hstack([m, ~m]))
    np.testing.assert_array_equal(op("ConvertToTensor", dtype=None)(m), m)
    assert op("ConvertToTensor", dtype="float32")(m).dtype == np.float32
    with pytest.raises(kc.Unsupported, match="sparse"):
        op("ConvertToTensor", sparse=True)
    with pytest.raises(kc.Unsupported, match="expand_dims"):
        op("ExpandDims", axis=[0, 1])
    # Module-less (legacy .h5) configs: Concatenate is the op without "trainable".
    assert kc._is_op({"class_name": "Concatenate", "config": {"name": "c", "axis": 1}})
    assert not kc._is_op({"class_name": "Concatenate",
                          "config": {"name": "c", "axis": 1, "trainable": True}})
    assert not kc._is_op({"class_name": "Softmax", "config": {"name": "s", "axis": -1}})
    assert kc._is_op({"class_name": "Add", "config": {"name": "a"}})  # Keras 3's legacy .h5
    assert not kc._is_op({"class_name": "Add", "config": {"name": "a", "trainable": True}})
    assert kc._is_op({"class_name": "LogicalOr", "config": {"name": "o"}})


def test_bad_inputs_name_the_layer():
    mdl = _model("integ_merge_lstm")
    a, b = golden("integ_merge_lstm", "inputs")
    bad = b.copy()
    bad[0, 0] = 11  # outside [0, input_dim)
    with pytest.raises(ValueError, match="Embedding"):
        mdl([a, bad])
    with pytest.raises(ValueError, match="input 'b'"):
        mdl([a, b[:, :5]])  # 5 steps where the Input says 7
    td = _model("integ_td")
    ids, grid = golden("integ_td", "inputs")
    with pytest.raises(ValueError, match="input 'grid'"):
        # the grid input has rank 3 (a last axis of 1 would be squeezed, as Keras does)
        td([ids, np.repeat(grid[:, :, :, None], 2, axis=-1)])
