"""Absurd arguments on both paths: huge, negative and zero sizes, strides, dilation, padding,
units, heads and thread counts, and huge 0-stride broadcast inputs. Each gives a clear
ValueError or TypeError naming the op (or layer) - never a crash, a signed overflow, NumPy's
"Maximum allowed dimension exceeded" or pybind11's "incompatible function arguments"
(issue 14, defect 5). The compiled entry points (fastlayers._core) are checked on their own
too: they are callable directly, without the Python checks in front."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import NUMPY_ONLY, backends_for

import fastlayers as fl
from fastlayers import _checks
from fastlayers import layers as L
from fastlayers._checks import MAX_ELEMENTS

F32 = np.float32
BACKENDS = backends_for("conv2d")
X = np.ones((1, 5, 5, 2), F32)
K = np.ones((3, 3, 2, 4), F32)
Q = np.ones((1, 4, 8), F32)
SEQ = np.ones((1, 3, 4), F32)
LK, LR = np.ones((4, 8), F32), np.ones((2, 8), F32)


def _huge(shape):
    """A float32 0-stride view of an absurd shape (no memory behind it)."""
    return np.broadcast_to(F32(1), shape)


# (case id, callable, exception type, text the message must contain)
FUNCTIONAL = [
    ("conv_dilation_2**62", lambda: fl.conv2d(X, K, dilation_rate=(2**62, 1)), ValueError,
     "conv2d: dilation_rate"),
    ("conv_dilation_2**62_same",
     lambda: fl.conv2d(X, K, dilation_rate=(2**62, 1), padding="same"), ValueError,
     "conv2d: dilation_rate"),
    ("conv_dilation_2**63", lambda: fl.conv2d(X, K, dilation_rate=2**63), ValueError,
     "conv2d: dilation_rate"),
    ("conv_dilation_-1", lambda: fl.conv2d(X, K, dilation_rate=(-1, 1)), ValueError,
     "conv2d: dilation_rate"),
    ("conv_dilation_0", lambda: fl.conv2d(X, K, dilation_rate=0), ValueError,
     "conv2d: dilation_rate"),
    ("conv_dilated_kernel_2**31",
     lambda: fl.conv2d(X, np.ones((5, 1, 2, 4), F32), dilation_rate=(2**30, 1), padding="same"),
     ValueError, "conv2d: the dilated kernel"),
    ("conv_strides_2**62", lambda: fl.conv2d(X, K, strides=2**62), ValueError,
     "conv2d: strides"),
    ("conv_strides_2**64", lambda: fl.conv2d(X, K, strides=(2**64, 1)), ValueError,
     "conv2d: strides"),
    ("conv_strides_0", lambda: fl.conv2d(X, K, strides=0), ValueError, "conv2d: strides"),
    ("conv_strides_-3", lambda: fl.conv2d(X, K, strides=(1, -3)), ValueError,
     "conv2d: strides"),
    ("conv_strides_float", lambda: fl.conv2d(X, K, strides=1.5), TypeError, "conv2d: strides"),
    ("conv_padding_full", lambda: fl.conv2d(X, K, padding="full"), ValueError,
     "conv2d: padding"),
    ("conv_padding_int", lambda: fl.conv2d(X, K, padding=2**62), TypeError, "conv2d: padding"),
    ("conv_groups_0", lambda: fl.conv2d(X, K, groups=0), ValueError, "conv2d: groups"),
    ("conv_groups_-1", lambda: fl.conv2d(X, K, groups=-1), ValueError, "conv2d: groups"),
    ("conv_groups_2**62", lambda: fl.conv2d(X, K, groups=2**62), ValueError, "conv2d"),
    ("conv_groups_2**64", lambda: fl.conv2d(X, K, groups=2**64), ValueError, "conv2d"),
    ("conv_huge_broadcast_x", lambda: fl.conv2d(_huge((1, 2**20, 2**20, 2)), K), ValueError,
     "conv2d: x"),
    ("dense_huge_broadcast_x", lambda: fl.dense(_huge((2**30, 2**20, 4)), LK), ValueError,
     "dense: x"),
    ("matmul_huge_broadcast", lambda: fl.matmul(_huge((2**40, 4, 8)), Q[0].T), ValueError,
     "matmul: a"),
    ("lstm_huge_broadcast_T", lambda: fl.lstm(_huge((1, 2**40, 4)), LK, LR), ValueError,
     "lstm: x"),
    ("gru_huge_broadcast_B", lambda: fl.gru(_huge((2**40, 3, 4)), np.ones((4, 6), F32),
                                            np.ones((2, 6), F32)), ValueError, "gru: x"),
    ("softmax_axis_2**62", lambda: fl.softmax(Q, 2**62), ValueError, "softmax: axis"),
    ("softmax_huge_broadcast", lambda: fl.softmax(_huge((2**40, 2**10))), ValueError,
     "softmax: x"),
    ("sdpa_scale_10**400", lambda: fl.scaled_dot_product_attention(Q, Q, Q, scale=10**400),
     ValueError, "scaled_dot_product_attention: scale"),
    ("sdpa_scale_str", lambda: fl.scaled_dot_product_attention(Q, Q, Q, scale="1"), TypeError,
     "scaled_dot_product_attention: scale"),
    ("sdpa_huge_broadcast_q", lambda: fl.scaled_dot_product_attention(_huge((2**40, 4, 8)), Q, Q),
     ValueError, "scaled_dot_product_attention: q"),
    ("attention_scale_10**400", lambda: fl.attention(Q, Q, scale=10**400), ValueError,
     "attention: scale"),
    ("attention_huge_broadcast_v", lambda: fl.attention(Q, _huge((1, 2**40, 8))), ValueError,
     "attention"),
    # the merged ops
    ("conv1d_dilation_2**62", lambda: fl.conv1d(SEQ, np.ones((3, 4, 2), F32),
                                                dilation_rate=2**62), ValueError,
     "conv1d: dilation_rate"),
    ("conv1d_strides_2**64", lambda: fl.conv1d(SEQ, np.ones((3, 4, 2), F32), strides=2**64),
     ValueError, "conv1d: strides"),
    ("depthwise_dilation_2**62", lambda: fl.depthwise_conv2d(
        X, np.ones((3, 3, 2, 1), F32), dilation_rate=2**62, padding="same"), ValueError,
     "depthwise_conv2d: dilation_rate"),
    ("depthwise_strides_2**64", lambda: fl.depthwise_conv2d(X, np.ones((3, 3, 2, 1), F32),
                                                             strides=2**64), ValueError,
     "depthwise_conv2d: strides"),
    ("layer_norm_epsilon_10**400", lambda: fl.layer_norm(SEQ, epsilon=10**400), ValueError,
     "layer_norm: epsilon"),
    # (the layers raised a bare OverflowError: they now check epsilon as the function does)
    ("LayerNormalization_epsilon_10**400",
     lambda: fl.layers.LayerNormalization(epsilon=10**400), ValueError,
     "LayerNormalization: epsilon is too large for a float"),
    ("GroupNormalization_epsilon_Fraction",
     lambda: fl.layers.GroupNormalization(epsilon=__import__("fractions").Fraction(10**400)),
     ValueError, "GroupNormalization: epsilon is too large for a float"),
    # (said "groups must be >= 1, got 0": conv2d's check, of an argument the user never gave)
    ("depthwise_no_channels", lambda: fl.depthwise_conv2d(
        np.zeros((2, 7, 7, 0), F32), np.zeros((3, 3, 0, 2), F32)), ValueError,
     "depthwise_conv2d: x has no channels, shape (2, 7, 7, 0)"),
    # two 4 MiB inputs whose batch axes broadcast to 2**40 outputs (was NumPy's MemoryError)
    ("matmul_broadcast_output_2**40", lambda: fl.matmul(
        np.ones((2**20, 1, 1, 1), F32), np.ones((1, 2**20, 1, 1), F32)), ValueError,
     "matmul: the output (1048576, 1048576, 1, 1) is too large (1099511627776 elements"),
    ("matmul_transposed_output_2**40", lambda: fl.matmul(
        np.ones((2**20, 1, 1, 1), F32), np.ones((1, 2**20, 1, 1), F32), transpose_b=True),
     ValueError, "matmul: the output (1048576, 1048576, 1, 1) is too large"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL])
def test_functional_absurd_arguments(backend, case):
    _, fn, exc, text = case
    with fl.use_backend(backend), pytest.raises(exc) as info:
        fn()
    assert text in str(info.value)
    assert "incompatible function arguments" not in str(info.value)


LAYERS = [
    ("Dense_units_2**62", lambda: L.Dense(2**62)(np.ones((2, 3), F32)), "Dense"),
    ("Dense_units_-1", lambda: L.Dense(-1), "Dense: units"),
    ("Dense_units_0", lambda: L.Dense(0), "Dense: units"),
    ("Conv2D_filters_2**62", lambda: L.Conv2D(2**62, 3)(X), "Conv2D"),
    ("Conv2D_kernel_2**62", lambda: L.Conv2D(2, 2**62)(X), "Conv2D"),
    ("Conv2D_strides_2**64", lambda: L.Conv2D(2, 3, strides=2**64)(X), "strides"),
    ("Conv2D_dilation_2**62", lambda: L.Conv2D(2, 3, dilation_rate=2**62)(X), "dilation_rate"),
    ("LSTM_units_2**62", lambda: L.LSTM(2**62)(SEQ), "LSTM"),
    ("LSTM_units_-2", lambda: L.LSTM(-2), "LSTM: units"),
    ("GRU_units_0", lambda: L.GRU(0), "GRU: units"),
    ("MHA_heads_0", lambda: L.MultiHeadAttention(0, 4), "MultiHeadAttention: num_heads"),
    ("MHA_heads_2**62", lambda: L.MultiHeadAttention(2**62, 4)(SEQ, SEQ), "MultiHeadAttention"),
    ("MHA_key_dim_2**62", lambda: L.MultiHeadAttention(2, 2**62)(SEQ, SEQ), "MultiHeadAttention"),
    ("MHA_key_dim_-1", lambda: L.MultiHeadAttention(2, -1), "MultiHeadAttention: key_dim"),
    # the merged layers: sizes NumPy cannot allocate name the layer, not only NumPy's words
    # (paddings up to 2**36: the constructors refuse larger ones, see below)
    ("ZeroPadding2D_2**35", lambda: L.ZeroPadding2D(2**35)(X), "ZeroPadding2D 'zero_padding2d"),
    ("ZeroPadding1D_2**36", lambda: L.ZeroPadding1D(2**36)(SEQ), "ZeroPadding1D 'zero_padding1d"),
    ("RepeatVector_2**40", lambda: L.RepeatVector(2**40)(LR), "RepeatVector 'repeat_vector"),
    ("RepeatVector_2**63", lambda: L.RepeatVector(2**63)(LR), "RepeatVector 'repeat_vector"),
    ("Cropping2D_2**62", lambda: L.Cropping2D(2**62)(X), "Cropping2D"),
    ("MaxPooling2D_2**62", lambda: L.MaxPooling2D(2**62)(X), "MaxPooling2D"),
    ("MaxPooling2D_2**70_same", lambda: L.MaxPooling2D(2**70, padding="same")(X),
     "MaxPooling2D: pool_size must be <= 2147483647"),
    ("AveragePooling1D_strides_2**31", lambda: L.AveragePooling1D(2, strides=2**31)(SEQ),
     "AveragePooling1D: strides must be <= 2147483647"),
    ("Conv1D_filters_2**40", lambda: L.Conv1D(2**40, 3)(SEQ), "Conv1D"),
    ("SeparableConv2D_multiplier_2**40",
     lambda: L.SeparableConv2D(4, 3, depth_multiplier=2**40)(X), "SeparableConv2D"),
    ("Embedding_2**40", lambda: L.Embedding(2**40, 2**40)(np.array([[1]])), "Embedding"),
    ("GlobalAveragePooling1D_huge_broadcast",
     lambda: L.GlobalAveragePooling1D()(_huge((2**20, 2**20, 2**10))), "GlobalAveragePooling1D"),
    # weights beyond the size limit of arrays: refused before the initializer allocates
    # (kernel sizes up to 2**31 - 1: the constructors refuse larger ones, see below)
    ("Conv2D_kernel_2**31_same", lambda: L.Conv2D(4, (2**31 - 1, 64), padding="same")(X),
     "Conv2D 'conv2d"),
    ("DepthwiseConv2D_kernel_2**31_same",
     lambda: L.DepthwiseConv2D((2**31 - 1, 64), padding="same")(X), "weight 'kernel' of shape"),
    ("SeparableConv2D_kernel_2**31_same",
     lambda: L.SeparableConv2D(4, (64, 2**31 - 1), padding="same")(X),
     "weight 'depthwise_kernel' of shape (64, 2147483647, 2, 1) is too large"),
    ("LSTM_units_2**40", lambda: L.LSTM(2**40)(SEQ), "weight 'kernel' of shape (4, 4398046511104)"),
    ("Conv2D_build_channels_first_2**31",
     lambda: L.Conv2D(4, 3, data_format="channels_first").build((None, 2**31, 2**31, 3)),
     "weight 'kernel' of shape (3, 3, 2147483648, 4) is too large"),
    ("PReLU_build_2**31", lambda: L.PReLU().build((None, 2**31, 2**31, 3)),
     "PReLU 'p_re_lu"),
    # Embedding: the index range check would scan a huge broadcast view element by element
    ("Embedding_huge_broadcast_indices",
     lambda: L.Embedding(10, 4)(np.broadcast_to(np.int64(1), (2, 2**40))),
     "inputs of shape (2, 1099511627776) is too large"),
    ("Embedding_huge_output",
     lambda: L.Embedding(10, 4)(np.broadcast_to(np.int64(1), (2, 2**35))),
     "the output for inputs of shape (2, 34359738368) is too large"),
    # Sizes the kernels take as int32, refused by the constructors (a stride of 2**63 reached
    # the transposed convolutions' weight packing: IndexError; fuzz campaign of 2026-12-05).
    ("Conv2DTranspose_strides_2**63",
     lambda: L.Conv2DTranspose(3, 3, strides=2**63), "strides must be <= 2147483647"),
    ("Conv1DTranspose_strides_2**63",
     lambda: L.Conv1DTranspose(3, 3, strides=2**63), "strides must be <= 2147483647"),
    ("Conv3DTranspose_kernel_2**40",
     lambda: L.Conv3DTranspose(3, 2**40), "kernel_size must be <= 2147483647"),
    ("DepthwiseConv2D_dilation_2**63",
     lambda: L.DepthwiseConv2D(3, dilation_rate=2**63), "dilation_rate must be <= 2147483647"),
    # A fixed input size beyond the limit: the layer's symbolic call says so by name, before
    # NumPy tries to allocate its zero run (a raw MemoryError; also from a model file's
    # batch_shape).
    ("Dense_on_Input_batch_2**35",
     lambda: L.Dense(2)(fl.Input(shape=(5, 3), batch_size=2**35)),
     "the input of shape (34359738368, 5, 3) is too large"),
    # Paddings beyond int64 made NumPy's pad raise a bare TypeError ("pad_width must be of
    # integral type"); beyond 2**36 they could never be allocated (the review of 3235bd8)
    ("ZeroPadding2D_2**63", lambda: L.ZeroPadding2D(2**63),
     "ZeroPadding2D: padding must be <= 68719476736"),
    ("ZeroPadding1D_pair_2**63", lambda: L.ZeroPadding1D((1, 2**63)),
     "ZeroPadding1D: padding must be <= 68719476736"),
    ("ZeroPadding3D_2**37", lambda: L.ZeroPadding3D(((0, 0), (2**37, 0), (0, 0))),
     "ZeroPadding3D: padding[1] must be <= 68719476736"),
    ("Flatten_on_Input_2**36", lambda: L.Flatten()(fl.Input(shape=(2**36,))),
     "the input of shape (None, 68719476736) is too large"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_absurd_arguments(backend, case):
    _, fn, text = case
    with fl.use_backend(backend), pytest.raises(ValueError) as info:
        fn()
    assert text in str(info.value)


# Masks given as huge broadcast views: their shape and size are checked before the mask is
# converted to bool or copied (which would allocate terabytes, or gigabytes and then fail).
_R = lambda *shape: np.ones(shape, F32)  # noqa: E731
_MB = lambda shape: np.broadcast_to(True, shape)  # noqa: E731
MASKS = [
    ("lstm", lambda m: fl.lstm(_R(2, 5, 3), _R(3, 16), _R(4, 16), mask=m), (5,),
     "lstm: mask"),
    ("gru", lambda m: fl.gru(_R(2, 5, 3), _R(3, 12), _R(4, 12), mask=m), (5,), "gru: mask"),
    ("softmax", lambda m: fl.softmax(_R(2, 3, 4), mask=m), (3, 4), "softmax: mask"),
    ("attention_query_mask", lambda m: fl.attention(_R(2, 3, 4), _R(2, 5, 4), query_mask=m),
     (3,), "attention: query_mask"),
    ("additive_attention_value_mask",
     lambda m: fl.additive_attention(_R(2, 3, 4), _R(2, 5, 4), value_mask=m), (5,),
     "additive_attention: value_mask"),
    ("sdpa", lambda m: fl.scaled_dot_product_attention(_R(2, 3, 4), _R(2, 5, 4), _R(2, 5, 6),
                                                       mask=m), (3, 5),
     "scaled_dot_product_attention: mask"),
    ("LSTM", lambda m: L.LSTM(4)(_R(2, 5, 3), mask=m), (5,), "LSTM 'lstm"),
    ("GRU", lambda m: L.GRU(4)(_R(2, 5, 3), mask=m), (5,), "GRU 'gru"),
    ("Bidirectional", lambda m: L.Bidirectional(L.LSTM(2))(_R(2, 5, 3), mask=m), (5,),
     "mask"),
    ("Softmax", lambda m: L.Softmax()(_R(2, 5, 3), mask=m), (5, 3), "mask"),
    ("TimeDistributed", lambda m: L.TimeDistributed(L.Dense(2))(_R(2, 5, 3), mask=m), (5,),
     "TimeDistributed 'time_distributed"),
    ("GlobalAveragePooling1D", lambda m: L.GlobalAveragePooling1D()(_R(2, 5, 3), mask=m), (5,),
     "GlobalAveragePooling1D 'global_average_pooling1d"),
    ("MultiHeadAttention",
     lambda m: L.MultiHeadAttention(2, 3)(_R(2, 3, 4), _R(2, 5, 4), attention_mask=m), (3, 5),
     "MultiHeadAttention 'multi_head_attention"),
    ("MultiHeadAttention_value_mask",
     lambda m: L.MultiHeadAttention(2, 3)(_R(2, 3, 4), _R(2, 5, 4), value_mask=m), (5,),
     "MultiHeadAttention 'multi_head_attention"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lead", [2**40, 2**31, 2**28], ids=lambda n: f"lead_{n}")
@pytest.mark.parametrize("case", MASKS, ids=[c[0] for c in MASKS])
def test_huge_broadcast_masks(backend, lead, case):
    """2**40 rows: beyond the size limit ("too large"); 2**31 and 2**28 rows (over 2**30
    elements): under it, a wrong shape, refused before the copy of gigabytes (the test would
    take seconds and gigabytes otherwise)."""
    _, fn, tail, text = case
    with fl.use_backend(backend), pytest.raises(ValueError) as info:
        fn(_MB((lead, *tail)))
    message = str(info.value)
    assert text in message and str(lead) in message
    assert ("too large" in message) == (lead * math.prod(tail) > MAX_ELEMENTS)


# Pooling windows far larger than the input with padding "same": the window is clipped to
# the input on both paths, so the cost does not grow with pool_size. Run in a child with a
# timeout, so that a regression (hours of work) fails instead of hanging the suite.
_POOL_CHILD = """
import numpy as np, fastlayers as fl
from fastlayers import layers as L
x4 = np.arange(75, dtype=np.float32).reshape(1, 5, 5, 3) - 30
x3 = np.arange(42, dtype=np.float32).reshape(2, 7, 3) - 20
for backend in {backends}:
    with fl.use_backend(backend):
        cases = [
            (L.MaxPooling2D(2**20, padding="same")(x4), x4.max(axis=(1, 2), keepdims=True)),
            (L.AveragePooling2D(2**31 - 1, padding="same")(x4),
             x4.mean(axis=(1, 2), keepdims=True)),
            (L.MaxPooling1D(2**24, padding="same")(x3), x3.max(axis=1, keepdims=True)),
            (L.AveragePooling1D(2**31 - 1, strides=1, padding="same")(x3)[:, :1],
             x3.mean(axis=1, keepdims=True)),
            (L.MaxPooling2D((2**30, 3), strides=(1, 2), padding="same")(x4)[:, 2:3, :1],
             x4[:, :, :2].max(axis=(1, 2), keepdims=True)),
        ]
        for got, want in cases:
            np.testing.assert_allclose(got, want, rtol=1e-6)
        y = L.MaxPooling1D(2**24, padding="same")(fl.Input((5, 3)))
        assert y.shape == (None, 1, 3), y.shape
print("ok")
"""


def test_pooling_huge_window_same_padding():
    path = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (path, os.environ.get("PYTHONPATH")) if p))
    r = subprocess.run([sys.executable, "-c", _POOL_CHILD.format(backends=BACKENDS)], env=env,
                       capture_output=True, text=True, timeout=60, cwd=os.path.dirname(path))
    assert r.returncode == 0 and r.stdout.split() == ["ok"], r.stderr[-2000:]


@pytest.mark.parametrize(
    "n,exc", [(2**40, ValueError), (2**70, ValueError), (-1, ValueError), (0, ValueError),
              (1.5, TypeError), ("2", TypeError)], ids=str)
def test_set_num_threads_absurd(n, exc):
    before = fl.get_num_threads()
    with pytest.raises(exc, match="set_num_threads"):
        fl.set_num_threads(n)
    assert fl.get_num_threads() == before


# ----------------------------------------------- the compiled entry points on their own

CORE = [
    ("strides_2**64", dict(strides=(2**64, 1)), "conv2d: strides"),
    ("strides_-2**64", dict(strides=(1, -(2**64))), "conv2d: strides"),
    ("strides_0", dict(strides=(0, 1)), "conv2d: strides"),
    ("dilation_2**62", dict(dilation=(2**62, 1)), "conv2d: the dilated kernel height overflows"),
    ("dilation_2**62_padded", dict(dilation=(2**62, 1), pads=(2**62, 2**62, 0, 0)),
     "conv2d: the dilated kernel height overflows"),
    ("dilation_2**63", dict(dilation=(1, 2**63)), "conv2d: dilation"),
    ("pads_2**62", dict(pads=(2**62, 2**62, 0, 0)), "conv2d: the padded height overflows"),
    ("pads_huge_output", dict(pads=(0, 2**40, 0, 2**40)), "conv2d: the output size overflows"),
    ("pads_-1", dict(pads=(0, 0, -1, 0)), "conv2d: pads"),
    ("pads_3", dict(pads=(0, 0, 0)), "conv2d: pads"),
    ("pads_str", dict(pads="0000"), "conv2d: pads"),
    ("groups_2**64", dict(groups=2**64), "conv2d: groups"),
    ("groups_0", dict(groups=0), "conv2d: groups"),
    ("groups_2**62", dict(groups=2**62), "groups"),
]


@pytest.mark.skipif(NUMPY_ONLY, reason="needs the compiled core")
@pytest.mark.parametrize("case", CORE, ids=[c[0] for c in CORE])
def test_core_conv2d_absurd_arguments(case):
    from fastlayers import _core

    _, kw, text = case
    args = dict(strides=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0), groups=1)
    args.update(kw)
    with pytest.raises((ValueError, TypeError)) as info:
        _core.conv2d(X, K, None, args["strides"], args["dilation"], args["pads"], args["groups"])
    assert text in str(info.value)
    assert "incompatible function arguments" not in str(info.value)


@pytest.mark.skipif(NUMPY_ONLY, reason="needs the compiled core")
@pytest.mark.parametrize("n", [2**40, 2**70, -(2**70), 0])
def test_core_set_num_threads_absurd(n):
    from fastlayers import _core

    before = _core.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        _core.set_num_threads(n)
    assert _core.get_num_threads() == before


# Python ints beyond int64 (and NumPy uint64) where a size or count is taken: a clear
# ValueError, not OverflowError / MemoryError (fuzz campaign, defect 7).
@pytest.mark.parametrize("target", [(2**70,), (2**32, 2**32), (-1, 2**70), (np.uint64(2**63),)],
                         ids=str)
def test_reshape_huge_target_shape(target):
    with pytest.raises(ValueError, match="Reshape 'reshape.*cannot reshape"):
        L.Reshape(target)(np.ones((2, 3), F32))


def _small_model():
    return fl.Sequential([fl.Input(shape=(3,)), L.Dense(2)])


def test_predict_refuses_outputs_beyond_the_limit_after_one_batch():
    """predict ran batch after batch of a 2**40-row 0-stride view, keeping every output, until
    memory ran out (fuzz campaign of 2026-12-05). The input may stream (a memmap), but the
    outputs are kept: their total, projected from the first batch, is limited."""
    model = _small_model()
    x = _huge((2**40, 3))
    with pytest.raises(ValueError, match="input 'input_layer.*too large"):
        model(x)
    with pytest.raises(ValueError, match=r"predict: the output of 1099511627776 input rows "
                                         r"is too large \(2199023255552 elements"):
        model.predict(x)
    # a small broadcast view runs as its copy
    x_ok = _huge((5, 3))
    np.testing.assert_array_equal(model.predict(x_ok, batch_size=2), model(np.ones((5, 3), F32)))


@pytest.mark.parametrize("batch_size, exc, text", [
    (-1, ValueError, "batch_size must be a positive integer, got -1"),
    (0, ValueError, "batch_size must be a positive integer, got 0"),
    (True, ValueError, "batch_size must be a positive integer, got True"),
    (2.0, ValueError, "batch_size must be a positive integer"),
    (2**63, ValueError, "Input: batch_size 9223372036854775808 is too large"),
], ids=str)
def test_input_refuses_a_bad_batch_size(batch_size, exc, text):
    """Input(batch_size=-1) built a model of shape (-1, ...) that refused every array."""
    with pytest.raises(exc, match=text):
        fl.Input(shape=(3,), batch_size=batch_size)


def test_symbolic_zero_run_never_tries_a_refused_size_at_a_smaller_fill(monkeypatch):
    """The zero run retries an unknown dimension at 1 when 2 fails; the size refusal must hold
    for that retry too (the review of e9e246a: np.zeros((1, 2**36)) was attempted)."""
    real, sizes = np.zeros, []

    def spy(shape, *args, **kwargs):
        sizes.append(math.prod(shape) if isinstance(shape, tuple) else shape)
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(np, "zeros", spy)
    with pytest.raises(ValueError, match="the input of shape .None, 68719476736. is too large"):
        L.Flatten()(fl.Input(shape=(2**36,)))
    assert max(sizes, default=0) < 2**30


def test_embedding_names_itself_when_its_output_cannot_be_allocated(monkeypatch):
    layer = L.Embedding(10, 4)
    layer(np.array([[1]]))

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 48.0 GiB")

    monkeypatch.setattr(np, "take", no_memory)
    with pytest.raises(ValueError, match=r"Embedding 'embedding.*: the output of shape "
                                         r"\(2, 3, 4\) is too large to create"):
        layer(np.ones((2, 3), np.int64))


@pytest.mark.parametrize("backend", backends_for("matmul"))
def test_matmul_names_itself_when_its_output_cannot_be_allocated(backend, monkeypatch):
    """An output under the size limit that this host cannot hold (2**34 floats, 64 GiB, say:
    the allocation made to fail here)."""
    from fastlayers._cpp import dense as cpp_dense
    from fastlayers._numpy import dense as np_dense

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 64.0 GiB")

    monkeypatch.setattr(cpp_dense, "matmul", no_memory)
    monkeypatch.setattr(np_dense, "matmul", no_memory)
    a, b = np.ones((2, 1, 3, 4), F32), np.ones((1, 5, 4, 6), F32)
    with fl.use_backend(backend), pytest.raises(
            ValueError, match=r"matmul: the output \(2, 5, 3, 6\) is too large to create"):
        fl.matmul(a, b)


def test_input_batch_size_of_numpy_int():
    inp = fl.Input(shape=(3,), batch_size=np.int64(4))
    assert inp.shape == (4, 3) and type(inp.shape[0]) is int


@pytest.mark.parametrize("batch_size", [2**70, np.uint64(2**63), np.int64(2**62)], ids=str)
def test_predict_huge_batch_size_is_one_batch(batch_size):
    model = _small_model()
    x = np.ones((5, 3), F32)
    np.testing.assert_array_equal(model.predict(x, batch_size=batch_size), model(x))


@pytest.mark.parametrize("line_length", [2**40, 2**70, np.uint64(2**63), 10_001, 0, -5, 1.5,
                                         "80"], ids=str)
def test_summary_absurd_line_length(line_length):
    with pytest.raises(ValueError, match="line_length must be"):
        _small_model().summary(print_fn=lambda s: None, line_length=line_length)


def test_summary_line_length_widens_the_table():
    lines = []
    _small_model().summary(print_fn=lines.append, line_length=np.int64(120))
    assert len(lines[0].splitlines()[1]) == 120


@pytest.mark.parametrize("backend", BACKENDS)
def test_size_limit_counts_only_what_is_converted(backend, monkeypatch, tmp_path):
    # An array passed on as it is (float32, C-contiguous, aligned; an np.memmap too) costs
    # nothing and is not counted; one that must be converted is (limit lowered to 50 here).
    monkeypatch.setattr(_checks, "MAX_ELEMENTS", 50)
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=(10, 8))
    mm[:] = 1.0
    kernel = np.ones((8, 3), np.float32)
    with fl.use_backend(backend):
        np.testing.assert_array_equal(fl.dense(mm, kernel), np.full((10, 3), 8.0, np.float32))
        with pytest.raises(ValueError, match=r"x of shape \(10, 8\) is too large"):
            fl.dense(np.ones((10, 8)), kernel)  # float64: converted, so counted
