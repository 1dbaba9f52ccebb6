#!/usr/bin/env python
"""Make tests/golden/masks.npz, models_masks.npz and models/masks_*: Keras models whose
layers pass implicit masks (Embedding(mask_zero=True), Masking) to LSTM, GRU,
Bidirectional, the attention layers and the layers in between.

Run by hand (never in CI) from the repository root, with Keras and torch installed:

    KERAS_BACKEND=torch python tests/golden/make_models_masks.py [case ...]

As tests/golden/make_golden_models.py: each model gets seeded random weights (uniform in
[-0.5, 0.5]) with ``set_weights`` and runs on seeded inputs; the npz stores
``<case>.weights.<i>`` (Keras get_weights order), ``<case>.inputs.<i>`` and
``<case>.out.<i>``; the models of FILE_CASES are also saved as ``models/<case>.keras``,
``.h5`` (Keras 3's legacy writer) and ``.weights.h5`` and stored in models_masks.npz (the
loader tests read them), the others in masks.npz. The token inputs hold padding zeros at the end, at
the start and in the middle of the sequences, and one sequence that is all padding.
tests/test_masks.py builds the same models with fastlayers.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import Input, Model, Sequential, layers  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32
VOCAB = 11

# Padding (0) trailing, leading, in the middle, none at all, and everywhere.
TOKENS = np.array(
    [
        [3, 7, 1, 0, 0, 0, 0],
        [0, 0, 5, 2, 9, 4, 10],
        [6, 0, 8, 0, 0, 2, 1],
        [4, 4, 2, 7, 1, 3, 5],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.int32,
)


def tokens(seed: int) -> np.ndarray:
    """TOKENS with other ids at the same padding positions (the zeros stay)."""
    ids = np.random.default_rng(seed).integers(1, VOCAB, TOKENS.shape).astype(np.int32)
    return np.where(TOKENS == 0, 0, ids).astype(np.int32)


def masks_emb_lstm():
    x = TOKENS
    inp = Input(shape=(None,), dtype="int32", name="ids")
    e = layers.Embedding(VOCAB, 4, mask_zero=True)(inp)
    h = layers.LSTM(5)(e)
    return Model(inp, layers.Dense(2)(h)), [x]


def masks_emb_bigru_lstm():
    x = tokens(1)
    inp = Input(shape=(7,), dtype="int32")
    e = layers.Embedding(VOCAB, 3, mask_zero=True)(inp)
    seq = layers.Bidirectional(layers.GRU(4, return_sequences=True))(e)
    d = layers.Dropout(0.2)(layers.Dense(4, activation="tanh")(seq))  # masks pass through
    return Model(inp, layers.LSTM(3)(d)), [x]


def masks_masking_lstm():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, 3)).astype(F32)
    x[0, 4:] = 0.0  # trailing padding
    x[1, :2] = 0.0  # leading padding
    x[2, 2] = 0.0  # a step in the middle
    x[2, 3, 0] = 0.0  # a step with one zero feature is kept
    inp = Input(shape=(6, 3))
    masked = layers.Masking(mask_value=0.0)(inp)
    inner = Sequential([layers.LSTM(4, return_sequences=True), layers.Activation("relu")],
                       name="inner")
    return Model(inp, layers.GRU(2)(inner(masked))), [x]


def masks_emb_mha():
    x = tokens(3)
    inp = Input(shape=(7,), dtype="int32")
    e = layers.Embedding(VOCAB, 6, mask_zero=True)(inp)
    a = layers.MultiHeadAttention(num_heads=2, key_dim=3)(e, e)
    # Keras's MultiHeadAttention deletes the masks of the tensors it reads (at run time),
    # so e is not read again after it (docs/semantics.md §22); a keeps e's mask.
    c = layers.MultiHeadAttention(num_heads=1, key_dim=2, name="causal")(
        a, a, use_causal_mask=True)
    return Model(inp, [a, layers.Dense(2)(c)]), [x]


def masks_emb_attention():
    q = tokens(4)
    v = tokens(5)[:, ::-1].copy()  # padding at other positions than the query's
    q_in = Input(shape=(7,), dtype="int32", name="q_ids")
    v_in = Input(shape=(7,), dtype="int32", name="v_ids")
    qe = layers.Embedding(VOCAB, 4, mask_zero=True, name="q_emb")(q_in)
    ve = layers.Embedding(VOCAB, 4, mask_zero=True, name="v_emb")(v_in)
    dot = layers.Attention(use_scale=True)([qe, ve])
    add = layers.AdditiveAttention()([qe, ve, ve])
    # Attention keeps the query's mask, so the LSTM after it sees it too.
    return Model([q_in, v_in], [dot, layers.LSTM(3)(add)]), [q, v]


def masks_states():
    x = tokens(6)
    inp = Input(shape=(7,), dtype="int32")
    e = layers.Embedding(VOCAB, 3, mask_zero=True)(inp)
    seq, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(e)
    bi = layers.Bidirectional(layers.GRU(2, return_state=True), merge_mode="sum")(seq)
    out, hf, hb = bi
    bi2 = layers.Bidirectional(layers.LSTM(2, return_sequences=True), merge_mode=None)(seq)
    last = layers.GRU(2, go_backwards=True)(bi2[1])  # the mask reaches both outputs
    return Model(inp, [seq, h, c, out, hf, hb, last]), [x]


def masks_nested():
    x = tokens(7)
    inner_in = Input(shape=(7,), dtype="int32")
    inner = Model(inner_in, layers.Embedding(VOCAB, 3, mask_zero=True)(inner_in),
                  name="embed_model")
    head = Sequential([Input(shape=(7, 3)), layers.Dense(3), layers.LSTM(2)], name="head")
    inp = Input(shape=(7,), dtype="int32")
    e = inner(inp)
    flat = layers.Dense(2)(layers.Flatten()(e))  # Flatten drops the mask
    return Model(inp, [head(e), layers.LSTM(2)(e), flat]), [x]


def masks_initial_state():
    # Keras quirk: with two tensor arguments, LSTM's `mask` is not filled in, so the
    # sequences run unmasked (but the output still carries the mask).
    x = tokens(8)
    h0 = np.random.default_rng(8).standard_normal((5, 3)).astype(F32)
    inp = Input(shape=(7,), dtype="int32")
    h_in = Input(shape=(3,))
    e = layers.Embedding(VOCAB, 2, mask_zero=True)(inp)
    seq = layers.GRU(3, return_sequences=True)(e, initial_state=h_in)
    return Model([inp, h_in], [seq, layers.LSTM(2)(seq)]), [x, h0]


CASES = {f.__name__: f for f in (masks_emb_lstm, masks_emb_bigru_lstm, masks_masking_lstm,
                                   masks_emb_mha, masks_emb_attention, masks_states,
                                   masks_nested, masks_initial_state)}
# The cases also saved as model files (models_masks.npz, read by the loader tests too);
# the others go to masks.npz only, to keep the fixtures small (an HDF5 file costs ~25 KB).
FILE_CASES = ("masks_masking_lstm", "masks_emb_mha")


def main(selected: list[str]):
    unknown = sorted(set(selected) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {sorted(CASES)}")
    npzs = {True: HERE / "models_masks.npz", False: HERE / "masks.npz"}
    outs_by_file: dict[bool, dict[str, np.ndarray]] = {True: {}, False: {}}
    for with_files, npz in npzs.items():
        if selected and npz.exists():
            with np.load(npz) as old:
                outs_by_file[with_files] = {
                    k: old[k] for k in old.files if k.split(".")[0] not in selected}
    (HERE / "models").mkdir(exist_ok=True)
    for name, make in CASES.items():
        if selected and name not in selected:
            continue
        with_files = name in FILE_CASES
        out = outs_by_file[with_files]
        keras.utils.set_random_seed(0)
        model, inputs = make()
        rng = np.random.default_rng(len(name) * 7919)
        weights = [rng.uniform(-0.5, 0.5, w.shape).astype(F32) for w in model.get_weights()]
        model.set_weights(weights)
        result = model(inputs if len(inputs) > 1 else inputs[0])
        outs = result if isinstance(result, (list, tuple)) else [result]
        for i, w in enumerate(weights):
            out[f"{name}.weights.{i}"] = w
        for i, x in enumerate(inputs):
            out[f"{name}.inputs.{i}"] = x
        for i, y in enumerate(outs):
            out[f"{name}.out.{i}"] = keras.ops.convert_to_numpy(y).astype(F32)
        if with_files:
            model.save(HERE / "models" / f"{name}.keras")
            model.save(HERE / "models" / f"{name}.h5")  # Keras 3's legacy HDF5 writer
            model.save_weights(HERE / "models" / f"{name}.weights.h5")
        print(name, [tuple(o.shape) for o in outs])
    meta = {"keras": keras.__version__, "backend": keras.backend.backend(),
            "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch

        meta["torch"] = torch.__version__
    except ImportError:
        pass
    for with_files, npz in npzs.items():
        out = outs_by_file[with_files]
        out["__meta__.versions"] = np.array(json.dumps(meta))
        np.savez_compressed(npz, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
