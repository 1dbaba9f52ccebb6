#!/usr/bin/env python
"""Make tests/golden/layers.npz: Keras layer classes run with weights set by set_weights.

Run by hand (never in CI) from the repository root, in an environment with Keras
and a backend (see make_golden.py; always pin torch when installing it):

    KERAS_BACKEND=torch python tests/golden/make_golden_layers.py

The committed file was made with Keras 3.15.1 and torch 2.13.0+cpu; it records the
versions under ``__meta__.versions`` (a JSON string). The masked-RNN cases follow
the torch backend's rule for masked steps (docs/semantics.md §6).

Each case ``<case>`` stores

    <case>.layer           0-d str: the layer class name (Keras's and fastlayers')
    <case>.config          0-d str: json of the constructor kwargs, as both Keras and
                           fastlayers.layers take them. For Bidirectional, "layer" (and
                           optionally "backward_layer") is {"class_name": ..., "config": ...}.
    <case>.weights.<i>     the weights in Keras get_weights order
    <case>.inputs.<name>   each array call argument by keyword (a list as <name>.<i>)
    <case>.call            0-d str: json of the non-array call kwargs; the key
                           "sequential_calls": "<name>" means the layer is called once per
                           element of the list input <name> (a stateful layer), and the
                           outputs of all calls are stored one after the other
    <case>.out.<i>         the outputs, flattened in call order (tuples unpacked)

Weights are random (uniform in [-0.5, 0.5], seeded), set with set_weights after
Keras built the layer, so biases and scales are nonzero. Inputs are float32.

The arrays are deterministic; the .npz bytes are not (zip timestamps).
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
F32 = np.float32
CASE_NAME = re.compile(r"^[a-z0-9_]+$")
MAX_BYTES = 300_000


def versions():
    v = {
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    if v["keras_backend"] == "torch":
        import torch

        v["torch"] = torch.__version__
    return v


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def keras_layer(class_name, config):
    """The Keras layer for a fixture config (nested layers for Bidirectional)."""
    config = dict(config)
    if class_name == "Bidirectional":
        inner = config.pop("layer")
        backward = config.pop("backward_layer", None)
        return keras.layers.Bidirectional(
            keras_layer(inner["class_name"], inner["config"]),
            backward_layer=None
            if backward is None
            else keras_layer(backward["class_name"], backward["config"]),
            **config,
        )
    return getattr(keras.layers, class_name)(**config)


def flat_outputs(result):
    if isinstance(result, (list, tuple)):
        return [to_np(r) for r in result]
    return [to_np(result)]


class Fixture:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.arrays = {}
        self.cases = []

    def uniform(self, shape, lo=-1.0, hi=1.0):
        return self.rng.uniform(lo, hi, size=shape).astype(F32)

    def add(self, case, class_name, config, inputs, call=None, build=None):
        """Make the Keras layer, build it, set random weights, call it and store the case.

        inputs: keyword -> array or list of arrays. build: a function(layer) that builds
        the layer (default: one call with the inputs, whose result is discarded).
        """
        call = dict(call or {})
        if not CASE_NAME.match(case) or case in self.cases:
            raise ValueError(f"bad or duplicate case name {case!r}")
        layer = keras_layer(class_name, config)
        seq = call.get("sequential_calls")
        calls = [{**inputs, seq: x} for x in inputs[seq]] if seq else [inputs]
        kwargs = {k: v for k, v in call.items() if k != "sequential_calls"}
        if build is not None:
            build(layer)
        else:
            layer(**calls[0], **kwargs)
        weights = [self.uniform(w.shape, -0.5, 0.5) for w in layer.get_weights()]
        layer.set_weights(weights)
        if getattr(layer, "stateful", False):
            layer.reset_states()
        outs = []
        for c in calls:
            outs.extend(flat_outputs(layer(**c, **kwargs)))
        for i, o in enumerate(outs):
            if o.dtype != F32 or not np.isfinite(o).all():
                raise AssertionError(f"{case}: output {i} dtype {o.dtype} / not finite")
        p = f"{case}."
        self.arrays[p + "layer"] = np.array(class_name)
        self.arrays[p + "config"] = np.array(json.dumps(config, sort_keys=True))
        self.arrays[p + "call"] = np.array(json.dumps(call, sort_keys=True))
        for i, w in enumerate(weights):
            self.arrays[f"{p}weights.{i}"] = w
        for name, v in inputs.items():
            if isinstance(v, (list, tuple)):
                for j, a in enumerate(v):
                    self.arrays[f"{p}inputs.{name}.{j}"] = np.asarray(a)
            else:
                self.arrays[f"{p}inputs.{name}"] = np.asarray(v)
        for i, o in enumerate(outs):
            self.arrays[f"{p}out.{i}"] = o
        self.cases.append(case)
        print(f"{case:48s} {class_name:20s} outputs {[o.shape for o in outs]}")

    def write(self, path):
        self.arrays["__meta__.versions"] = np.array(json.dumps(versions(), sort_keys=True))
        np.savez_compressed(path, **self.arrays)
        size = path.stat().st_size
        print(f"wrote {path} ({len(self.cases)} cases, {size} bytes)")
        if size > MAX_BYTES:
            sys.exit(f"{path} is {size} bytes, more than {MAX_BYTES}")


B, T, F, U = 3, 5, 3, 4


def seq_mask():
    m = np.ones((B, T), bool)
    m[1, -2:] = False  # trailing padding
    m[2, 0] = False  # a leading and a middle masked step
    m[2, 2] = False
    return m


def rnn_config(cls, **kw):
    return {"class_name": cls, "config": {"units": U, **kw}}


def bidirectional_cases(fx):
    n_states = {"LSTM": 2, "GRU": 1}
    for cls in ("LSTM", "GRU"):
        for merge in ("concat", "sum", "ave", "mul", None):
            tag = f"{cls.lower()}_{merge or 'none'}"
            x = fx.uniform((B, T, F))
            fx.add(
                f"bidi_{tag}_seq_state_mask",
                "Bidirectional",
                {
                    "layer": rnn_config(cls, return_sequences=True, return_state=True),
                    "merge_mode": merge,
                },
                {"sequences": x, "mask": seq_mask()},
            )
            x = fx.uniform((B, T, F))
            h0 = [fx.uniform((B, U)) for _ in range(2 * n_states[cls])]
            fx.add(
                f"bidi_{tag}_last_state_h0",
                "Bidirectional",
                {"layer": rnn_config(cls, return_state=True), "merge_mode": merge},
                {"sequences": x, "initial_state": h0},
            )
            x = fx.uniform((B, T, F))
            fx.add(
                f"bidi_{tag}_last_mask",
                "Bidirectional",
                {"layer": rnn_config(cls), "merge_mode": merge},
                {"sequences": x, "mask": seq_mask()},
            )
            if merge not in ("concat", None):
                continue  # the plain sequence case, for two merge modes only (file size)
            x = fx.uniform((B, T, F))
            fx.add(
                f"bidi_{tag}_seq",
                "Bidirectional",
                {"layer": rnn_config(cls, return_sequences=True), "merge_mode": merge},
                {"sequences": x},
            )
    # initial state and mask together (leading masked steps with a nonzero state)
    fx.add(
        "bidi_lstm_concat_seq_state_mask_h0",
        "Bidirectional",
        {"layer": rnn_config("LSTM", return_sequences=True, return_state=True)},
        {
            "sequences": fx.uniform((B, T, F)),
            "mask": seq_mask(),
            "initial_state": [fx.uniform((B, U)) for _ in range(4)],
        },
    )
    # custom backward layers: other units / activation / reset_after
    fx.add(
        "bidi_lstm_custom_backward",
        "Bidirectional",
        {
            "layer": rnn_config("LSTM", return_sequences=True),
            "backward_layer": {
                "class_name": "LSTM",
                "config": {
                    "units": 3,
                    "activation": "relu",
                    "go_backwards": True,
                    "return_sequences": True,
                },
            },
            "merge_mode": "concat",
        },
        {"sequences": fx.uniform((B, T, F)), "mask": seq_mask()},
    )
    fx.add(
        "bidi_gru_custom_backward_state",
        "Bidirectional",
        {
            "layer": rnn_config("GRU", return_state=True),
            "backward_layer": {
                "class_name": "GRU",
                "config": {
                    "units": U,
                    "reset_after": False,
                    "go_backwards": True,
                    "return_state": True,
                },
            },
            "merge_mode": "sum",
        },
        {"sequences": fx.uniform((B, T, F))},
    )
    fx.add(
        "bidi_lstm_stateful_two_calls",
        "Bidirectional",
        {"layer": rnn_config("LSTM", return_sequences=True, stateful=True), "merge_mode": "ave"},
        {"sequences": [fx.uniform((B, T, F)), fx.uniform((B, T, F))]},
        call={"sequential_calls": "sequences"},
    )


def other_cases(fx):
    # Dense
    fx.add(
        "dense_relu_rank3",
        "Dense",
        {"units": 5, "activation": "relu"},
        {"inputs": fx.uniform((2, 3, 4))},
    )
    fx.add(
        "dense_no_bias_gelu",
        "Dense",
        {"units": 3, "activation": "gelu", "use_bias": False},
        {"inputs": fx.uniform((4, 6))},
    )
    # Flatten
    fx.add(
        "flatten_channels_first",
        "Flatten",
        {"data_format": "channels_first"},
        {"inputs": fx.uniform((2, 3, 4, 2))},
    )
    fx.add("flatten_channels_last", "Flatten", {}, {"inputs": fx.uniform((2, 3, 4, 2))})
    # Conv2D
    fx.add(
        "conv2d_same_stride2_relu",
        "Conv2D",
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"},
        {"inputs": fx.uniform((2, 8, 7, 3))},
    )
    fx.add(
        "conv2d_channels_first_groups_dilation",
        "Conv2D",
        {
            "filters": 4,
            "kernel_size": [3, 2],
            "padding": "same",
            "groups": 2,
            "dilation_rate": [2, 1],
            "data_format": "channels_first",
        },
        {"inputs": fx.uniform((2, 4, 7, 6))},
    )
    fx.add(
        "conv2d_channels_first_stride_valid",
        "Conv2D",
        {
            "filters": 5,
            "kernel_size": 2,
            "strides": [2, 1],
            "data_format": "channels_first",
            "activation": "tanh",
        },
        {"inputs": fx.uniform((2, 3, 6, 5))},
    )
    # LSTM
    fx.add(
        "lstm_seq_state_mask_h0",
        "LSTM",
        {"units": U, "return_sequences": True, "return_state": True},
        {
            "sequences": fx.uniform((B, T, F)),
            "mask": seq_mask(),
            "initial_state": [fx.uniform((B, U)), fx.uniform((B, U))],
        },
    )
    fx.add(
        "lstm_backwards_mask",
        "LSTM",
        {"units": U, "go_backwards": True},
        {"sequences": fx.uniform((B, T, F)), "mask": seq_mask()},
    )
    fx.add(
        "lstm_zero_output_for_mask_backwards",
        "LSTM",
        {"units": U, "go_backwards": True, "return_sequences": True, "zero_output_for_mask": True},
        {"sequences": fx.uniform((B, T, F)), "mask": seq_mask()},
    )
    fx.add(
        "lstm_no_bias_relu_hard_sigmoid",
        "LSTM",
        {
            "units": U,
            "use_bias": False,
            "activation": "relu",
            "recurrent_activation": "hard_sigmoid",
            "return_sequences": True,
        },
        {"sequences": fx.uniform((B, T, F))},
    )
    fx.add(
        "lstm_stateful_two_calls",
        "LSTM",
        {"units": U, "stateful": True, "return_state": True},
        {"sequences": [fx.uniform((B, T, F)), fx.uniform((B, T, F))]},
        call={"sequential_calls": "sequences"},
    )
    # GRU
    fx.add(
        "gru_reset_before_seq_state_h0",
        "GRU",
        {"units": U, "reset_after": False, "return_sequences": True, "return_state": True},
        {"sequences": fx.uniform((B, T, F)), "initial_state": [fx.uniform((B, U))]},
    )
    fx.add(
        "gru_backwards_mask_seq",
        "GRU",
        {"units": U, "go_backwards": True, "return_sequences": True},
        {"sequences": fx.uniform((B, T, F)), "mask": seq_mask()},
    )
    fx.add(
        "gru_stateful_two_calls",
        "GRU",
        {"units": U, "stateful": True},
        {"sequences": [fx.uniform((B, T, F)), fx.uniform((B, T, F))]},
        call={"sequential_calls": "sequences"},
    )
    # Attention
    tq, tv, d = 4, 5, 3
    qmask = np.ones((2, tq), bool)
    qmask[1, -1] = False
    vmask = np.ones((2, tv), bool)
    vmask[0, -2:] = False
    fx.add(
        "attention_scale_masks_causal_scores",
        "Attention",
        {"use_scale": True},
        {
            "inputs": [fx.uniform((2, tq, d)), fx.uniform((2, tv, 2)), fx.uniform((2, tv, d))],
            "mask": [qmask, vmask],
        },
        call={"return_attention_scores": True, "use_causal_mask": True},
    )
    fx.add(
        "attention_concat_scale_key",
        "Attention",
        {"use_scale": True, "score_mode": "concat"},
        {"inputs": [fx.uniform((2, tq, d)), fx.uniform((2, tv, 4)), fx.uniform((2, tv, d))]},
    )
    fx.add(
        "attention_dot",
        "Attention",
        {},
        {"inputs": [fx.uniform((2, tq, d)), fx.uniform((2, tv, d))]},
    )
    # AdditiveAttention
    fx.add(
        "additive_attention_scale_key_masks_scores",
        "AdditiveAttention",
        {},
        {
            "inputs": [fx.uniform((2, tq, d)), fx.uniform((2, tv, 2)), fx.uniform((2, tv, d))],
            "mask": [qmask, vmask],
        },
        call={"return_attention_scores": True},
    )
    fx.add(
        "additive_attention_no_scale_causal",
        "AdditiveAttention",
        {"use_scale": False},
        {"inputs": [fx.uniform((2, tq, d)), fx.uniform((2, tv, d))]},
        call={"use_causal_mask": True},
    )
    # MultiHeadAttention
    t, s, dq = 4, 5, 6
    x = fx.uniform((2, t, dq))
    fx.add(
        "mha_self", "MultiHeadAttention", {"num_heads": 2, "key_dim": 3}, {"query": x, "value": x}
    )
    amask = fx.rng.random((2, t, s)) > 0.3
    amask[:, :, 0] = True
    fx.add(
        "mha_key_value_dim_output_shape_mask_causal_scores",
        "MultiHeadAttention",
        {"num_heads": 2, "key_dim": 3, "value_dim": 4, "output_shape": 7},
        {
            "query": fx.uniform((2, t, dq)),
            "value": fx.uniform((2, s, 5)),
            "key": fx.uniform((2, s, 4)),
            "attention_mask": amask,
        },
        call={"return_attention_scores": True, "use_causal_mask": True},
    )
    kmask = np.ones((2, s), bool)
    kmask[1, 0] = False
    fx.add(
        "mha_no_bias_value_key_masks",
        "MultiHeadAttention",
        {"num_heads": 3, "key_dim": 2, "use_bias": False},
        {
            "query": fx.uniform((2, t, dq)),
            "value": fx.uniform((2, s, 4)),
            "key": fx.uniform((2, s, 4)),
            "value_mask": vmask,
            "key_mask": kmask,
        },
    )
    fx.add(
        "mha_sliding_window_causal",
        "MultiHeadAttention",
        {"num_heads": 2, "key_dim": 2, "sliding_window": 2},
        {"query": x, "value": x},
        call={"use_causal_mask": True},
    )
    full = np.ones((2, t, s), bool)
    full[0, 1, :] = False  # a fully masked row
    for name, dropout in (("fused", 0.0), ("dropout_path", 0.1)):
        fx.add(
            f"mha_fully_masked_row_{name}",
            "MultiHeadAttention",
            {"num_heads": 2, "key_dim": 2, "dropout": dropout},
            {
                "query": fx.uniform((2, t, dq)),
                "value": fx.uniform((2, s, 4)),
                "attention_mask": full,
            },
        )
    # Softmax
    sm = fx.rng.random((2, 1, 5)) > 0.3
    sm[1, 0, :] = False  # a fully masked slice
    fx.add(
        "softmax_mask_broadcast",
        "Softmax",
        {},
        {"inputs": fx.uniform((2, 3, 5), -3, 3), "mask": sm},
    )
    fx.add(
        "softmax_axis_tuple_mask",
        "Softmax",
        {"axis": [1, 2]},
        {"inputs": fx.uniform((2, 3, 4), -3, 3), "mask": fx.rng.random((2, 3, 4)) > 0.2},
    )


def main():
    fx = Fixture(20240611)
    bidirectional_cases(fx)
    other_cases(fx)
    fx.write(HERE / "layers.npz")


if __name__ == "__main__":
    main()
