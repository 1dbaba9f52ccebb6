"""A layer called directly again and again (``layer(x)``, Layer.__call__): from the third call
with an array of the same shape it runs the runner a model's shape plan would use (the
checks skipped, docs/architecture.md §14). It must give exactly the checked call's bits, and
must never be used when anything it bound in has changed: weights, a config attribute, the
backend, the input's dtype, shape or layout.
"""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
from conftest import NUMPY_ONLY

import fastlayers as fl
from fastlayers.layers import (
    GRU,
    LSTM,
    Add,
    Average,
    AveragePooling2D,
    Bidirectional,
    Concatenate,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling3D,
    LayerNormalization,
    Maximum,
    MaxPooling2D,
    Minimum,
    Multiply,
    Permute,
    Reshape,
    SeparableConv2D,
    SimpleRNN,
    Softmax,
    Subtract,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from fastlayers.models import shape_plan

pytestmark = pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(),
                                reason="direct calls skip the checks on the C++ path only")

F32 = np.float32


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.standard_normal(w.shape).astype(F32) * F32(0.3)
                       for w in layer.get_weights()])


def checked(layer, x):
    """The general call: every argument checked."""
    with shape_plan.disabled():
        return layer(x)


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def assert_same(a, b) -> None:
    a, b = as_list(a), as_list(b)
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert type(u) is np.ndarray and u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


def direct_runner(layer):
    """The runner the layer's direct calls use now (None: the checked call; absent: none)."""
    entry = layer.__dict__.get("_direct")
    return None if entry is None else entry[3]


class Counting:
    """Wraps a runner and counts its calls (to see which path a call took)."""

    def __init__(self, run):
        self.run, self.calls = run, 0

    def __call__(self, *args):
        self.calls += 1
        return self.run(*args)


def count_direct_runner(layer) -> Counting:
    entry = layer.__dict__["_direct"]
    spy = Counting(entry[3])
    layer.__dict__["_direct"] = entry[:3] + (spy,)
    return spy


def calls_equal_checked(layer, x, times=4):
    """``times`` direct calls, each with the checked call's bits; returns the last."""
    want = checked(layer, x)
    for _ in range(times):
        got = layer(x)
        assert_same(got, want)
    return got


RUNNER_CASES = {
    "dense-relu": (lambda: Dense(7, activation="relu"), (5, 11)),
    "dense-3d": (lambda: Dense(4, activation="tanh"), (2, 3, 6)),
    "dense-1x1": (lambda: Dense(1), (1, 1)),
    "conv-same": (lambda: Conv2D(5, 3, padding="same", activation="relu"), (2, 7, 6, 3)),
    "conv-stride": (lambda: Conv2D(4, 2, strides=2), (1, 9, 9, 2)),
    # Conv3D: the depth stacking planned once (depth taps past both ends with "same", a
    # depth stride, a depth dilation, groups)
    "conv3d-same": (lambda: Conv3D(4, 3, padding="same", activation="relu"), (2, 5, 6, 4, 3)),
    "conv3d-stride": (lambda: Conv3D(3, (2, 3, 2), strides=(2, 1, 2)), (1, 7, 6, 6, 2)),
    "conv3d-dilated-groups": (lambda: Conv3D(4, (3, 2, 2), dilation_rate=(2, 1, 1), groups=2,
                                             padding="same"), (2, 6, 5, 4, 4)),
    "conv3d-one-depth": (lambda: Conv3D(2, (1, 2, 2)), (3, 1, 4, 4, 1)),
    "conv3d-even-same": (lambda: Conv3D(2, (2, 3, 3), padding="same"), (1, 4, 5, 5, 2)),
    # 16+ channels per group: the C++ runner reads x in place (no stacking)
    "conv3d-in-place": (lambda: Conv3D(20, 3, strides=(2, 1, 1), padding="same",
                                       activation="relu"), (2, 5, 6, 4, 16)),
    "conv3d-in-place-groups": (lambda: Conv3D(6, (2, 3, 2), dilation_rate=(2, 1, 1), groups=2),
                               (1, 6, 5, 4, 32)),
    "maxpool": (lambda: MaxPooling2D(2), (2, 7, 7, 3)),
    "avgpool": (lambda: AveragePooling2D(3, strides=2, padding="same"), (1, 9, 8, 5)),
    "lstm-last": (lambda: LSTM(6), (3, 5, 4)),
    "lstm-seq-back": (lambda: LSTM(5, return_sequences=True, go_backwards=True), (2, 7, 3)),
    "lstm-state": (lambda: LSTM(4, return_state=True), (2, 3, 5)),
    "lstm-seq-state": (lambda: LSTM(3, return_sequences=True, return_state=True), (1, 1, 2)),
    "gru-after": (lambda: GRU(5, return_sequences=True), (2, 6, 3)),
    "gru-before": (lambda: GRU(4, reset_after=False, return_state=True), (3, 4, 2)),
    "gru-hard": (lambda: GRU(3, recurrent_activation="hard_sigmoid"), (1, 13, 5)),
    "simple-rnn-last": (lambda: SimpleRNN(7), (3, 5, 4)),
    "simple-rnn-seq-back-relu": (lambda: SimpleRNN(17, activation="relu", return_sequences=True,
                                                   go_backwards=True), (2, 6, 3)),
    "simple-rnn-state": (lambda: SimpleRNN(4, return_state=True), (1, 1, 2)),
    "depthwise-same": (lambda: DepthwiseConv2D(3, padding="same", activation="relu"),
                       (2, 7, 6, 5)),
    "depthwise-mult-stride": (lambda: DepthwiseConv2D((3, 2), strides=2, depth_multiplier=3),
                              (1, 9, 8, 4)),
    "depthwise-dilated-rows": (lambda: DepthwiseConv2D(3, dilation_rate=2, padding="same"),
                               (3, 8, 9, 40)),
    "separable-same": (lambda: SeparableConv2D(6, 3, padding="same", activation="relu6"),
                       (2, 7, 6, 5)),
    "depthwise-softmax": (lambda: DepthwiseConv2D(2, activation="softmax"), (1, 5, 5, 3)),
    "separable-mult-stride": (lambda: SeparableConv2D(4, 2, strides=2, depth_multiplier=2,
                                                      use_bias=False), (1, 9, 9, 3)),
    # Conv2DTranspose: the phases (stride 2 'same', an output_padding, a dilation, groups,
    # a stride larger than the kernel: pixels of the bias alone) and the row blocks (k = s)
    "convT-same": (lambda: Conv2DTranspose(4, 3, strides=2, padding="same",
                                           activation="relu"), (2, 5, 6, 3)),
    "convT-rows": (lambda: Conv2DTranspose(3, 2, strides=2, activation="tanh"), (1, 4, 5, 6)),
    "convT-output-padding": (lambda: Conv2DTranspose(2, 3, strides=2, output_padding=1),
                             (1, 4, 4, 2)),
    "convT-dilated-groups": (lambda: Conv2DTranspose(4, 3, dilation_rate=2, groups=2,
                                                     activation="softmax"), (2, 5, 4, 4)),
    # 'same' with output_padding=0: a phase starts one input row and column in (the runner's
    # own x sliced, not the one it was planned with)
    "convT-skip-rows": (lambda: Conv2DTranspose(3, 2, strides=2, padding="same",
                                                output_padding=0), (1, 3, 3, 2)),
    "convT-sparse": (lambda: Conv2DTranspose(3, 1, strides=3, activation="relu"), (1, 3, 4, 2)),
    "conv1d-same": (lambda: Conv1D(5, 3, padding="same", activation="relu"), (2, 9, 4)),
    "conv1d-causal-dilated": (lambda: Conv1D(3, 3, padding="causal", dilation_rate=2),
                              (1, 11, 2)),
    "conv1d-stride-groups": (lambda: Conv1D(4, 2, strides=2, groups=2), (3, 7, 6)),
    "zeropad1d": (lambda: ZeroPadding1D((2, 1)), (2, 5, 3)),
    "zeropad2d": (lambda: ZeroPadding2D(((1, 0), (2, 3))), (1, 4, 3, 2)),
    "zeropad3d": (lambda: ZeroPadding3D(1), (1, 2, 3, 2, 2)),
    "layernorm-last": (lambda: LayerNormalization(epsilon=1e-5), (3, 4, 7)),
    "layernorm-two-axes": (lambda: LayerNormalization(axis=[-2, -1], center=False), (2, 5, 3)),
    "layernorm-one": (lambda: LayerNormalization(scale=False), (1, 1)),
    "reshape": (lambda: Reshape((-1, 2)), (3, 4, 5)),
    "permute": (lambda: Permute((3, 1, 2)), (2, 3, 4, 5)),
    "permute-size-one": (lambda: Permute((2, 1)), (2, 1, 6)),  # the transpose is contiguous
    # global pooling (channels last: the kernel on the (N, pixels, C) view; keepdims)
    "gap2d": (lambda: GlobalAveragePooling2D(), (2, 5, 7, 3)),
    "gap2d-keepdims": (lambda: GlobalAveragePooling2D(keepdims=True), (1, 3, 2, 17)),
    "gmp1d": (lambda: GlobalMaxPooling1D(), (3, 11, 4)),
    "gap1d-keepdims": (lambda: GlobalAveragePooling1D(keepdims=True), (2, 1, 5)),
    "gmp3d": (lambda: GlobalMaxPooling3D(), (1, 2, 3, 4, 6)),
    "softmax-layer": (lambda: Softmax(), (2, 3, 9)),
    "upsampling1d": (lambda: UpSampling1D(3), (2, 5, 4)),
    "upsampling2d": (lambda: UpSampling2D((2, 3)), (1, 4, 3, 2)),
    "upsampling2d-bilinear": (lambda: UpSampling2D(2, interpolation="bilinear"), (2, 3, 5, 3)),
    # Bidirectional: the two layers' runners, each merge mode
    "bidirectional-lstm-seq": (lambda: Bidirectional(LSTM(4, return_sequences=True)),
                               (2, 6, 3)),
    "bidirectional-gru-sum": (lambda: Bidirectional(GRU(3), merge_mode="sum"), (3, 5, 2)),
    "bidirectional-simple-rnn": (lambda: Bidirectional(SimpleRNN(3)), (2, 4, 5)),
    "bidirectional-lstm-ave": (lambda: Bidirectional(LSTM(2, return_sequences=True),
                                                     merge_mode="ave"), (1, 1, 4)),
    "bidirectional-gru-mul": (lambda: Bidirectional(
        GRU(5, reset_after=False, return_sequences=True), merge_mode="mul"), (2, 4, 3)),
}


@pytest.mark.parametrize("case", sorted(RUNNER_CASES))
def test_runner_calls_give_the_checked_bits(case):
    make, shape = RUNNER_CASES[case]
    layer = make()
    x = np.random.default_rng(1).standard_normal(shape).astype(F32)
    layer(x)
    if layer.get_weights():
        randomize(layer)
    got = calls_equal_checked(layer, x)
    assert direct_runner(layer) is not None  # the runner, not the checked call, ran
    outs = got if isinstance(got, (list, tuple)) else [got]
    assert not any(np.shares_memory(g, x) for g in outs)
    # another batch of the same shape: computed afresh, not remembered
    y = np.random.default_rng(2).standard_normal(shape).astype(F32)
    assert_same(layer(y), checked(layer, y))


def test_return_state_never_returns_one_array_twice():
    layer = LSTM(4, return_state=True)
    x = np.ones((2, 3, 5), F32)
    for _ in range(4):
        out, h, c = layer(x)
    assert direct_runner(layer) is not None
    assert not np.shares_memory(out, h)
    np.testing.assert_array_equal(out, h)


def test_flatten_output_never_shares_the_input():
    layer = Flatten()
    x = np.arange(24, dtype=F32).reshape(2, 3, 4)
    for _ in range(4):
        out = layer(x)
        assert out.shape == (2, 12) and not np.shares_memory(out, x)
    assert direct_runner(layer) is None  # its runner returns a view: the checked call runs


def test_new_weights_and_attributes_are_used_at_once():
    layer = Dense(3, activation="relu")
    x = np.random.default_rng(3).standard_normal((4, 5)).astype(F32)
    layer(x)
    randomize(layer, 1)
    first = calls_equal_checked(layer, x)
    randomize(layer, 2)  # set_weights: the runner's packed kernel is stale
    second = layer(x)
    assert_same(second, checked(layer, x))
    assert not np.array_equal(first, second)
    calls_equal_checked(layer, x)
    layer.activation = "linear"
    linear = layer(x)
    assert (linear < 0).any() and not (second < 0).any()
    assert_same(linear, checked(layer, x))
    calls_equal_checked(layer, x)


def test_the_backend_in_force_decides():
    layer = Dense(6, activation="gelu")
    x = np.random.default_rng(4).standard_normal((3, 8)).astype(F32)
    calls_equal_checked(layer, x)
    spy = count_direct_runner(layer)
    layer(x)
    assert spy.calls == 1  # the runner serves the C++ path
    with fl.use_backend("numpy"):
        want = fl.dense(x, *layer.get_weights(), activation="gelu")
        for _ in range(3):
            got = layer(x)
            np.testing.assert_array_equal(got, want)  # the NumPy path ...
    assert spy.calls == 1  # ... not the runner
    np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-6)
    assert spy.calls == 2


def test_without_the_core_the_checked_call_runs(monkeypatch):
    from fastlayers import _backend

    layer = Dense(4, activation="relu")
    x = np.random.default_rng(15).standard_normal((3, 5)).astype(F32)
    c_result = calls_equal_checked(layer, x)
    spy = count_direct_runner(layer)
    monkeypatch.setattr(_backend, "_core", None)  # as in a NumPy-only install
    got = layer(x)
    assert spy.calls == 0
    np.testing.assert_allclose(got, c_result, rtol=1e-5, atol=1e-6)


# Layers called on a list of arrays (``_list_runner``: the merges and Concatenate): the key
# holds every array's shape; their runner takes the arrays.
LIST_CASES = {
    "add": (Add, [(3, 4), (3, 4)]),
    "add-three-broadcast": (Add, [(2, 3, 4), (2, 1, 4), (2, 3, 1)]),
    "subtract": (Subtract, [(2, 5), (2, 5)]),
    "multiply-broadcast": (Multiply, [(2, 1, 6), (2, 4, 6)]),
    "maximum-three": (Maximum, [(1, 7), (1, 7), (1, 7)]),
    "minimum": (Minimum, [(3, 2, 2), (3, 2, 2)]),
    "concatenate-last": (Concatenate, [(2, 3, 4), (2, 3, 1), (2, 3, 5)]),
    "concatenate-axis1": (lambda: Concatenate(axis=1), [(2, 1, 4), (2, 6, 4)]),
}


def list_inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(F32) for s in shapes]


@pytest.mark.parametrize("case", sorted(LIST_CASES))
def test_list_layers_run_their_runner_with_the_checked_bits(case):
    make, shapes = LIST_CASES[case]
    layer = make()
    xs = list_inputs(shapes, 11)
    got = calls_equal_checked(layer, xs)
    assert direct_runner(layer) is not None
    spy = count_direct_runner(layer)
    assert_same(layer(tuple(xs)), got)  # a tuple of the same arrays: the same key
    assert spy.calls == 1
    assert not any(np.shares_memory(got, x) for x in xs)
    ys = list_inputs(shapes, 12)  # other values, the same shapes: computed afresh
    assert_same(layer(ys), checked(layer, ys))
    assert spy.calls == 2


def test_list_layers_take_the_checked_call_for_anything_else():
    layer = Add()
    xs = list_inputs([(2, 3), (2, 3)], 13)
    calls_equal_checked(layer, xs)
    spy = count_direct_runner(layer)
    others = [
        [xs[0], xs[1].astype(np.float64)],  # converted by the checks
        [xs[0], np.ones((2, 6), F32)[:, ::2]],  # not C-contiguous
        [xs[0], xs[1], xs[0]],  # three arrays
        [xs[0][:, :1], xs[1]],  # another shape (broadcast)
        [xs[0].tolist(), xs[1]],
    ]
    for other in others:
        want = checked(layer, other)
        assert_same(layer(other), want)
        np.testing.assert_array_equal(
            want, checked(layer, [np.asarray(o, F32) for o in other]))
    assert spy.calls == 0
    with pytest.raises(ValueError, match="different batch sizes"):
        layer([xs[0], np.ones((3, 3), F32)])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        Subtract()([xs[0], xs[1], xs[0]])
    with pytest.raises(ValueError, match="list of inputs"):
        layer(xs[0])


def test_a_merge_subclass_with_its_own_merge_keeps_it():
    class Difference(Add):  # a user's layer: Add's checks, its own values
        def _merge(self, xs, masks):
            return xs[0] - xs[1]

    layer = Difference()
    xs = list_inputs([(2, 3), (2, 3)], 17)
    for _ in range(4):
        np.testing.assert_array_equal(layer(xs), xs[0] - xs[1])
    assert "_direct" in layer.__dict__ and direct_runner(layer) is None


def test_list_layers_without_a_runner_keep_the_checked_call():
    # Average has no runner (its values are not a chain of one ufunc); arrays of different
    # ranks are expanded by the checked call alone
    for layer, shapes in ((Average(), [(2, 3), (2, 3)]), (Add(), [(2, 3, 4), (2, 4)])):
        xs = list_inputs(shapes, 14)
        calls_equal_checked(layer, xs)
        assert "_direct" in layer.__dict__ and direct_runner(layer) is None


def test_depthwise_layers_without_a_runner_keep_the_checked_call():
    # channels_first (with a row activation too, which the layer applies after the layout
    # is restored)
    cases = [(DepthwiseConv2D(3, data_format="channels_first"), (2, 4, 6, 5)),
             (DepthwiseConv2D(2, activation="softmax", data_format="channels_first"),
              (1, 3, 5, 5)),
             (SeparableConv2D(3, 2, data_format="channels_first"), (1, 2, 5, 4)),
             (SeparableConv2D(3, 2, activation="softmax", data_format="channels_first"),
              (2, 2, 4, 4))]
    for layer, shape in cases:
        x = np.random.default_rng(15).standard_normal(shape).astype(F32)
        layer(x)
        randomize(layer)
        calls_equal_checked(layer, x)
        assert "_direct" in layer.__dict__ and direct_runner(layer) is None


def test_layers_whose_runner_does_not_apply_keep_the_checked_call():
    # channels_first global pooling and upsampling (NumPy's layout moves), a softmax over
    # two axes, Bidirectional around a SimpleRNN with a callable activation (NumPy's: no
    # runner), with two outputs or its states
    from fastlayers.layers import Dropout
    cases = [(GlobalAveragePooling2D(data_format="channels_first"), (2, 3, 4, 5)),
             (UpSampling2D(2, data_format="channels_first"), (1, 2, 3, 3)),
             (Softmax(axis=(1, 2)), (2, 3, 4)),
             (Bidirectional(SimpleRNN(3, activation=np.tanh)), (2, 4, 5)),
             (Bidirectional(GRU(3), merge_mode=None), (2, 4, 5)),
             (Bidirectional(LSTM(2, return_state=True)), (1, 3, 2)),
             (Dropout(0.5), (2, 3))]  # its runner returns its input: kept for plans only
    for layer, shape in cases:
        x = np.random.default_rng(16).standard_normal(shape).astype(F32)
        layer(x)
        randomize(layer)
        calls_equal_checked(layer, x)
        assert "_direct" in layer.__dict__ and direct_runner(layer) is None, layer


def test_a_transposed_conv_with_a_non_finite_kernel_keeps_the_checked_call():
    # the NumPy path (the C++ phases would make NaN from 0 * inf, docs/semantics.md §15)
    layer = Conv2DTranspose(2, 3, strides=2)
    x = np.random.default_rng(16).standard_normal((1, 3, 3, 2)).astype(F32)
    layer(x)
    kernel, bias = layer.get_weights()
    kernel[1, 1, 0, 0] = np.inf
    layer.set_weights([kernel, bias])
    want = calls_equal_checked(layer, x)
    assert "_direct" in layer.__dict__ and direct_runner(layer) is None
    assert np.isinf(want).any() and not np.isnan(want).all()


def test_other_shapes_dtypes_and_layouts_take_the_checked_call():
    layer = Dense(3)
    x = np.random.default_rng(5).standard_normal((4, 5)).astype(F32)
    calls_equal_checked(layer, x)
    recorded = layer.__dict__["_direct"]
    for other in (x[:3], x.astype(np.float64), np.asfortranarray(x), x.tolist(),
                  x.astype(">f4")):
        want = checked(layer, other)
        assert_same(layer(other), want)
        np.testing.assert_allclose(want, checked(layer, np.asarray(other, F32)), rtol=1e-6)
    assert layer.__dict__["_direct"] is recorded  # one signature kept; the others did not evict it
    with pytest.raises(ValueError, match=r"kernel has shape \(5, 3\), expected \(6, units\)"):
        layer(np.ones((4, 6), F32))  # wrong inputs still get the checked call's error
    with pytest.raises(ValueError, match=r"kernel has shape \(5, 3\), expected \(0, units\)"):
        layer(np.ones((4, 5, 0), F32))


def test_kwargs_masks_and_initial_states_take_the_checked_call():
    layer = LSTM(3, return_sequences=True)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 4)).astype(F32)
    calls_equal_checked(layer, x)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    masked = layer(x, mask=mask)
    np.testing.assert_array_equal(masked[0, 3:], np.repeat(masked[0, 2:3], 2, axis=0))
    h0 = rng.standard_normal((2, 3)).astype(F32)
    c0 = rng.standard_normal((2, 3)).astype(F32)
    started = layer(x, initial_state=[h0, c0])
    with shape_plan.disabled():
        assert_same(started, layer(x, initial_state=[h0, c0]))
    assert not np.array_equal(started, layer(x))


def test_stateful_layers_keep_their_states_moving():
    layer = LSTM(3, stateful=True)
    x = np.random.default_rng(7).standard_normal((2, 4, 5)).astype(F32)
    twin = LSTM(3, stateful=True)
    layer(x)
    twin(x)
    twin.set_weights(layer.get_weights())
    twin.reset_states()
    layer.reset_states()
    outs = [layer(x) for _ in range(5)]
    with shape_plan.disabled():
        wants = [twin(x) for _ in range(5)]
    for got, want in zip(outs, wants):
        assert_same(got, want)
    assert not np.array_equal(outs[0], outs[-1])  # each call starts where the last ended
    assert direct_runner(layer) is None


def test_a_subclass_that_overrides_call_keeps_its_call():
    class Doubled(Dense):
        def call(self, inputs, training=None):
            return super().call(inputs) * 2

    layer = Doubled(3)
    plain = Dense(3)
    x = np.random.default_rng(8).standard_normal((2, 4)).astype(F32)
    layer(x)
    plain(x)
    randomize(layer)
    plain.set_weights(layer.get_weights())
    for _ in range(4):
        assert_same(layer(x), plain(x) * 2)
    assert direct_runner(layer) is None


def test_a_call_replaced_on_the_object_is_never_skipped():
    layer = Dense(3)
    x = np.random.default_rng(14).standard_normal((2, 4)).astype(F32)
    layer(x)
    real = layer.call
    seen = []

    def spy(*args, **kwargs):  # a patch or a mock on one layer object
        seen.append(1)
        return real(*args, **kwargs) * 0

    layer.call = spy
    for i in range(5):
        assert not layer(x).any()
        assert len(seen) == i + 1
    assert direct_runner(layer) is None


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copies_leave_the_runner_behind(how):
    layer = Conv2D(3, 3, activation="relu")
    x = np.random.default_rng(9).standard_normal((1, 6, 6, 2)).astype(F32)
    layer(x)
    randomize(layer)
    want = calls_equal_checked(layer, x)
    twin = pickle.loads(pickle.dumps(layer)) if how == "pickle" else copy.deepcopy(layer)
    assert "_direct" not in twin.__dict__ and "_direct_seen" not in twin.__dict__
    assert_same(calls_equal_checked(twin, x), want)
    assert direct_runner(twin) is not None and direct_runner(twin) is not direct_runner(layer)


def test_threads_calling_one_layer_agree():
    layer = GRU(8, return_sequences=True)
    rng = np.random.default_rng(10)
    xs = [rng.standard_normal((2, 9, 4)).astype(F32) for _ in range(4)]
    layer(xs[0])
    randomize(layer)
    wants = [checked(layer, x) for x in xs]
    errors = []

    def work(k):
        try:
            for _ in range(200):
                np.testing.assert_array_equal(layer(xs[k]), wants[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert direct_runner(layer) is not None


# ------------------------------------------------------------- ops called directly: sdpa


def sdpa_checked(q, k, v, **kw):
    with shape_plan.disabled():
        return fl.scaled_dot_product_attention(q, k, v, **kw)


@pytest.mark.parametrize("shapes", [
    ((4, 1, 16, 4), (4, 1, 1, 4), (4, 1, 1, 4)),    # the seed's shape: B 4, H 1, T 16, S 1
    ((2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 6)),     # Dv != D
    ((5, 8), (13, 8), (13, 3)),                      # no leading dims
    ((2, 2, 2, 17, 16), (2, 2, 2, 17, 16), (2, 2, 2, 17, 16)),  # two batch dims
], ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_calls_again_give_the_checked_bits(shapes, causal):
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal(s).astype(F32) for s in shapes)
    want = sdpa_checked(q, k, v, is_causal=causal)
    for _ in range(4):
        got = fl.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert_same(got, want)
    kept = fl.functional._sdpa_direct[0]
    assert kept is not None and kept[0][:3] == shapes  # the runner served the last calls
    q2 = rng.standard_normal(shapes[0]).astype(F32)  # new values, same shapes
    assert_same(fl.scaled_dot_product_attention(q2, k, v, is_causal=causal),
                sdpa_checked(q2, k, v, is_causal=causal))


def test_sdpa_other_arguments_take_the_checked_call():
    rng = np.random.default_rng(12)
    q, k, v = (rng.standard_normal((2, 2, 6, 4)).astype(F32) for _ in range(3))
    for _ in range(3):
        fl.scaled_dot_product_attention(q, k, v)
    kept = fl.functional._sdpa_direct[0]
    mask = np.tril(np.ones((6, 6), bool))
    assert_same(fl.scaled_dot_product_attention(q, k, v, mask=mask),
                sdpa_checked(q, k, v, is_causal=True))  # a lower-triangular mask is causal
    assert_same(fl.scaled_dot_product_attention(q, k, v, scale=0.25),
                sdpa_checked(q, k, v, scale=0.25))
    assert not np.array_equal(fl.scaled_dot_product_attention(q, k, v, scale=0.25),
                              fl.scaled_dot_product_attention(q, k, v))
    for other in (q.astype(np.float64), np.asfortranarray(q), q[:, :, ::2]):
        np.testing.assert_allclose(fl.scaled_dot_product_attention(other, k, v),
                                   sdpa_checked(np.ascontiguousarray(other, F32), k, v),
                                   rtol=1e-6, atol=1e-7)
    assert fl.functional._sdpa_direct[0] is kept
    with pytest.raises(TypeError, match="is_causal must be a bool"):
        fl.scaled_dot_product_attention(q, k, v, is_causal=1)
    with pytest.raises(ValueError, match="expected"):
        fl.scaled_dot_product_attention(q, k[..., :3], v)  # D differs: the checks still run
    causal = sdpa_checked(q, k, v, is_causal=True)
    assert_same(fl.scaled_dot_product_attention(q, k, v, is_causal=True), causal)
    assert not np.array_equal(causal, fl.scaled_dot_product_attention(q, k, v))
    for _ in range(3):
        fl.scaled_dot_product_attention(q, k, v)
    key, run = fl.functional._sdpa_direct[0]
    spy = Counting(run)
    fl.functional._sdpa_direct[0] = (key, spy)  # the real runner is put back below
    fl.scaled_dot_product_attention(q, k, v)
    assert spy.calls == 1  # the runner serves the C++ path
    with fl.use_backend("numpy"):
        ref = fl.scaled_dot_product_attention(q, k, v, scale=0.5)  # the default: 1 / sqrt(4)
        for _ in range(3):
            np.testing.assert_array_equal(fl.scaled_dot_product_attention(q, k, v), ref)
    assert spy.calls == 1  # the NumPy path, not the runner
    fl.scaled_dot_product_attention(q, k, v)
    assert spy.calls == 2
    fl.functional._sdpa_direct[0] = (key, run)
    np.testing.assert_allclose(fl.scaled_dot_product_attention(q, k, v), ref, rtol=1e-5,
                               atol=1e-6)


def _arrays_to_check():
    """Arrays the kernels take as they are, and arrays they do not, for the fast key."""
    base = np.arange(24, dtype=F32).reshape(2, 3, 4)
    raw = np.zeros(4 * 24 + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, F32, 24, offset=1).reshape(2, 3, 4)

    class Sub(np.ndarray):
        pass

    return {
        "plain": base,
        "0-d": np.array(1.5, F32),
        "empty": np.zeros((0, 3), F32),
        "unpickled": pickle.loads(pickle.dumps(base)),  # an equal dtype object
        "read-only": np.frombuffer(base.tobytes(), F32).reshape(2, 3, 4),
        "float64": base.astype(np.float64),
        "big-endian": base.astype(">f4"),
        "fortran": np.asfortranarray(base),
        "strided": base[:, :, ::2],
        "misaligned": misaligned,
        "subclass": base.view(Sub),
        "scalar": np.float32(1.0),
        "list": [[1.0, 2.0]],
        "none": None,
    }


def test_the_fast_key_checks_what_unchanged_checks():
    """_core.plain_f32_shapes (the key of a direct op call, functional._plain_f32_key)
    accepts exactly the arrays _checks.unchanged does, and gives their shapes."""
    from fastlayers import _checks

    core = fl._backend._core
    arrays = _arrays_to_check()
    assert not arrays["misaligned"].flags.aligned  # (the cases are what they say)
    assert arrays["unpickled"].dtype is not np.dtype(F32)
    for name, x in arrays.items():
        want = ((x.shape,) if _checks.unchanged(x) else None)
        assert core.plain_f32_shapes(x) == want, name
        pair = core.plain_f32_shapes(arrays["plain"], x)  # one array that is not: None
        assert pair == (None if want is None else ((2, 3, 4), x.shape)), name
    assert core.plain_f32_shapes() == ()
    accepted = {n for n, x in arrays.items() if core.plain_f32_shapes(x) is not None}
    assert accepted == {"plain", "0-d", "empty", "unpickled", "read-only"}


def test_attention_allocates_its_output_when_given_none():
    """_core.attention with out None (the sdpa runner's call) returns a new array with the
    bits of a given out, and refuses bad shapes as with an out."""
    core = fl._backend._core
    rng = np.random.default_rng(15)
    q = rng.standard_normal((2, 3, 5, 4)).astype(F32)
    k = rng.standard_normal((2, 3, 7, 4)).astype(F32)
    v = rng.standard_normal((2, 3, 7, 6)).astype(F32)
    out = np.full((2, 3, 5, 6), np.nan, F32)
    args = (None, None, False, 0, 0.5, False, 1.0, 1.0, None)
    assert core.attention(q, k, v, out, *args) is out
    got = core.attention(q, k, v, None, *args)
    assert got.shape == (2, 3, 5, 6) and got.dtype == F32 and got.flags.c_contiguous
    assert_same(got, out)
    assert got is not core.attention(q, k, v, None, *args)  # a new array each call
    with pytest.raises(ValueError, match="expected q"):
        core.attention(q, k, v[:, :, :6], None, *args)
    with pytest.raises(TypeError, match="must be a numpy.ndarray"):
        core.attention(q, k, [1.0], None, *args)


# ------------------------------------------------------------- ops called directly: matmul


@pytest.mark.parametrize("shapes, transpose_b", [
    (((64, 16, 4), (64, 4, 1)), False),     # the seed article's attention product
    (((5, 7, 3), (5, 6, 3)), True),         # queries times keys
    (((2, 3, 4, 5), (3, 5, 2)), False),     # broadcast batch axes
    (((4, 6, 5), (1, 5, 2)), False),        # a batch axis of 1 in b
], ids=str)
def test_matmul_calls_again_give_the_checked_bits(shapes, transpose_b):
    rng = np.random.default_rng(14)
    a, b = (rng.standard_normal(s).astype(F32) for s in shapes)
    with shape_plan.disabled():
        want = fl.matmul(a, b, transpose_b=transpose_b)
    for _ in range(4):
        assert_same(fl.matmul(a, b, transpose_b=transpose_b), want)
    kept = fl.functional._matmul_direct[0]
    assert kept is not None and kept[0][:3] == (*shapes, transpose_b)  # the runner served
    a2 = rng.standard_normal(shapes[0]).astype(F32)  # new values, same shapes
    with shape_plan.disabled():
        want2 = fl.matmul(a2, b, transpose_b=transpose_b)
    assert_same(fl.matmul(a2, b, transpose_b=transpose_b), want2)
    other = np.asfortranarray(a2)  # another layout: the checked call (same values)
    assert_same(fl.matmul(other, b, transpose_b=transpose_b), want2)
    with pytest.raises(ValueError, match="do not chain"):
        short = b[..., :1, :] if not transpose_b else b[..., :1]
        fl.matmul(a, np.ascontiguousarray(short), transpose_b=transpose_b)
    assert fl.functional._matmul_direct[0] is kept


def test_sdpa_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    q, k, v = (rng.standard_normal((4, 1, 16, 4)).astype(F32) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), is_causal=True).numpy()
    for _ in range(4):
        got = fl.scaled_dot_product_attention(q, k, v, is_causal=True)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
