"""Shape plans (fastlayers/models/shape_plan.py): a model called again with inputs of the same
dtypes, shapes and layout runs the plan its first call recorded. The plan must give exactly
the general executor's bits, and must never be used when anything it bound in has changed:
weights, backend, folding, the inputs' dtype, shape or layout, a Sequential's stack.
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
import weakref

import numpy as np
import pytest
from conftest import NUMPY_ONLY, parallel_regions
from golden_models import CASES, assert_keras_outputs, golden

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers.layers import (
    LSTM,
    BatchNormalization,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    MaxPooling2D,
)
from fastlayers.models import folding, shape_plan

pytestmark = pytest.mark.skipif(NUMPY_ONLY or not fl.core_available(),
                                reason="shape plans serve the C++ path only")

HAVE_H5PY = importlib.util.find_spec("h5py") is not None
F32 = np.float32


def plans(model) -> dict:
    return shape_plan.plans_of(model)


def runner_steps(model) -> int:
    """How many steps of the model's plans run a runner (not a node's general call)."""
    n = 0
    for plan in plans(model).values():
        n += sum(shape_plan.is_runner_step(run) for run, _, _ in plan.steps)
    return n


def general(model, x):
    with shape_plan.disabled():
        return model(x)


def assert_same(a, b) -> None:
    a = a if isinstance(a, (list, tuple)) else [a]
    b = b if isinstance(b, (list, tuple)) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


def seed_attention():
    rng = np.random.default_rng(0)
    q_in, k_in, v_in = Input((None, 32)), Input((None, 32)), Input((None, 32))
    q, k, v = Dense(4)(q_in), Dense(4)(k_in), Dense(4)(v_in)
    score = fl.matmul(q, k, transpose_b=True)
    attention = fl.softmax(score)
    model = Model([q_in, k_in, v_in], [score, attention, fl.matmul(attention, v)])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    xs = [rng.random((3, 16, 32), dtype=F32), rng.random((3, 7, 32), dtype=F32),
          rng.random((3, 7, 32), dtype=F32)]
    return model, xs


def small_cnn(flatten_first=False, hw=(9, 11), filters=5):
    rng = np.random.default_rng(1)
    inp = Input((*hw, 3))
    x = Conv2D(filters, 3, activation="relu", padding="same")(inp)
    x = MaxPooling2D()(x)
    x = Conv2D(7, 2, strides=2, activation="gelu")(x)
    x = Dense(4, activation="tanh")(Flatten()(x))
    model = Model(inp, Dense(3, activation="softmax")(x))
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    return model, rng.random((2, *hw, 3), dtype=F32)


def makes_masks(model) -> bool:
    """Whether a layer of the model (nested models included) creates an implicit mask: such
    models are never planned."""
    from fastlayers.layers import Masking

    for layer in model.layers:
        if isinstance(layer, Masking) or getattr(layer, "mask_zero", False):
            return True
        if hasattr(layer, "layers") and makes_masks(layer):
            return True
    return False

# ------------------------------------------------------------------------------- same bits


def test_seed_attention_plan_runs_runners_and_gives_the_same_bits():
    model, xs = seed_attention()
    want = general(model, xs)
    first = model(xs)  # the signature is seen
    assert not plans(model)
    second = model(xs)  # the second sighting records
    assert len(plans(model)) == 1
    assert runner_steps(model) == 6  # three Dense, two matmul, softmax: no general call
    for _ in range(3):
        assert_same(model(xs), want)
    assert_same(first, want)
    assert_same(second, want)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_cnn_plan_same_bits_any_threads(threads):
    """The plan gives the general executor's bits at 1 thread, on a CNN large enough for
    its convolutions to be split over 2 or 3 threads (the parallel regions are counted)."""
    model, x = small_cnn(hw=(40, 44), filters=32)
    before = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        want = general(model, x)
        want_rows = np.concatenate([general(model, x[i:i + 1]) for i in range(2)])
        fl.set_num_threads(threads)
        with parallel_regions() as regions:
            model(x)
            model(x)
            assert plans(model)
            assert_same(model(x), want)
            assert_same(model.predict(x, batch_size=1), want_rows)
        assert threads == 1 or NUMPY_ONLY or regions() > 0
    finally:
        fl.set_num_threads(before)


@pytest.mark.skipif(not HAVE_H5PY, reason='h5py is not installed (pip install "fastlayers[keras]")')
@pytest.mark.parametrize("case", CASES)
def test_every_golden_model_plan_equals_general(case):
    """Every Keras fixture model: the calls after the first (plan, where one is recorded)
    give the general executor's bits, and Keras's outputs within float32 rounding."""
    from golden_models import GOLDEN_DIR

    model = fl.load_model(GOLDEN_DIR / "models" / f"{case}.keras")
    inputs = golden(case, "inputs")
    x = inputs if len(inputs) > 1 else inputs[0]
    with fl.use_backend("cpp"):
        want = general(model, x)
        for _ in range(3):
            got = model(x)
            assert_same(got, want)
    # The cases with no implicit mask run a recorded plan, and it runs runners.
    if not makes_masks(model):
        assert len(plans(model)) == 1
        if any(type(layer) in (Dense, Conv2D, Flatten, MaxPooling2D) for layer in model.layers):
            assert runner_steps(model) > 0
    assert_keras_outputs(case, got if isinstance(got, list) else [got] if not isinstance(
        got, tuple) else list(got))


# ------------------------------------------------------------------------ when plans apply


def test_no_plan_for_other_dtypes_layouts_or_masks():
    model, x = small_cnn()
    for _ in range(2):
        model(x.astype(np.float64))
        model(np.asfortranarray(x))
        model(x[:, ::-1])
    assert not plans(model)
    model(x, mask=None)
    model(x)
    assert len(plans(model)) == 1
    # a shape of its own gets a plan of its own; at most MAX_PLANS are kept, newest last
    for b in range(1, shape_plan.MAX_PLANS + 3):
        model(np.ones((b, 9, 11, 3), F32))
        model(np.ones((b, 9, 11, 3), F32))
    assert len(plans(model)) == shape_plan.MAX_PLANS
    assert list(plans(model))[-1][-1] == (shape_plan.MAX_PLANS + 2, 9, 11, 3)


def test_shapes_that_keep_evicting_each_other_stop_the_recording():
    inp = Input((3,))
    model = Model(inp, Dense(2)(inp))
    for _ in range(5):
        for b in range(1, shape_plan.MAX_PLANS + 2):  # one shape more than the cache holds
            x = np.ones((b, 3), F32)
            assert_same(model(x), general(model, x))
    evicted = model.__dict__["_shape_plans"]["evicted"]
    assert evicted > 2 * shape_plan.MAX_PLANS
    model(np.ones((99, 3), F32))
    model(np.ones((99, 3), F32))
    assert (99, 3) not in [k[-1] for k in plans(model)]
    assert model.__dict__["_shape_plans"]["evicted"] == evicted


def test_masks_keep_the_general_executor():
    ids = Input((6,), dtype="int32")
    seq = LSTM(3, return_sequences=True)(Embedding(9, 4, mask_zero=True)(ids))
    out = GlobalAveragePooling1D()(seq)
    model = Model(ids, out)
    x = np.array([[1, 2, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8]], np.int32)
    want = general(model, x)
    assert_same(model(x), want)
    assert_same(model(x), want)
    assert not plans(model)  # Embedding's mask: never planned


def test_plan_follows_set_weights_backend_and_folding():
    model, x = small_cnn()
    model(x)
    model(x)
    new = [w * F32(0.5) for w in model.get_weights()]
    model.set_weights(new)
    assert_same(model(x), general(model, x))
    with fl.use_backend("numpy"):
        got = model(x)
    with fl.use_backend("numpy"), shape_plan.disabled():
        want = model(x)
    assert_same(got, want)

    inp = Input((5,))
    y = BatchNormalization()(Dense(4)(inp))
    bn_model = Model(inp, Dense(2)(y))
    rng = np.random.default_rng(3)
    bn_model.set_weights([rng.random(w.shape).astype(F32) + F32(0.5)
                          for w in bn_model.get_weights()])
    xb = rng.random((3, 5), dtype=F32)
    folded = bn_model(xb)
    folded_again = bn_model(xb)  # the plan holds the folded pair
    with folding.disabled():
        unfolded = bn_model(xb)
        unfolded_again = bn_model(xb)  # a plan of its own, not the folded one
        assert_same(unfolded_again, general(bn_model, xb))
    assert_same(folded_again, folded)
    assert_same(unfolded_again, unfolded)
    np.testing.assert_allclose(folded, unfolded, rtol=1e-5, atol=1e-5)


def test_flatten_of_the_input_does_not_share_its_memory():
    inp = Input((2, 3))
    model = Model(inp, Flatten()(inp))
    x = np.arange(12, dtype=F32).reshape(2, 2, 3)
    for _ in range(3):
        y = model(x)
        assert not np.shares_memory(y, x)
        assert_same(y, x.reshape(2, 6))


def test_a_model_output_and_its_flatten_do_not_share_memory():
    inp = Input((2, 3))
    h = Dense(3)(inp)
    model = Model(inp, [h, Flatten()(h)])
    x = np.ones((2, 2, 3), F32)
    for _ in range(3):
        h_out, flat = model(x)
        assert not np.shares_memory(h_out, flat)


def test_wrong_inputs_still_raise_after_a_plan():
    model, x = small_cnn()
    model(x)
    model(x)
    with pytest.raises(ValueError, match="expected shape"):
        model(np.ones((2, 9, 12, 3), F32))
    with pytest.raises(TypeError):
        model(np.array([["a"]]))


def test_sequential_plan_and_add():
    rng = np.random.default_rng(4)
    model = Sequential([Input((4, 4, 2)), Flatten(), Dense(3, activation="relu")])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    x = rng.random((2, 4, 4, 2), dtype=F32)
    want = general(model, x)
    assert_same(model(x), want)
    assert_same(model(x), want)
    assert plans(model)
    model.add(Dense(2))
    assert not plans(model)
    assert model(x).shape == (2, 2)
    assert_same(model(x), general(model, x))


def _shares_any(out, inputs) -> bool:
    outs = out if isinstance(out, (list, tuple)) else [out]
    return any(np.shares_memory(o, x) for o in outs for x in inputs)


def test_merges_norms_and_shape_layers_run_as_runners():
    """Merge layers (a list of tensors), LayerNormalization, Reshape and Permute run their
    runners, with the general executor's bits; read straight from the model's inputs, no
    output shares their memory."""
    from fastlayers.layers import (
        Add,
        Average,
        Concatenate,
        LayerNormalization,
        Maximum,
        Minimum,
        Multiply,
        Permute,
        Reshape,
        Subtract,
    )

    rng = np.random.default_rng(11)
    a, b, c = Input((3, 4)), Input((3, 4)), Input((1, 4))
    merged = [Add()([a, b, c]), Subtract()([a, c]), Multiply()([c, b]), Maximum()([a, b]),
              Minimum()([b, a, c]), Concatenate(axis=1)([a, c, b]), Average()([a, b])]
    norms = [LayerNormalization()(a), LayerNormalization(axis=[1, 2], center=False)(b),
             LayerNormalization(axis=1)(a)]  # the middle axis: no runner
    shaped = [Reshape((4, 3))(a), Reshape((-1,))(b), Permute((2, 1))(c), Permute((2, 1))(a)]
    model = Model([a, b, c], merged + norms + shaped)
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    xs = [rng.standard_normal((2, 3, 4), dtype=F32), rng.standard_normal((2, 3, 4), dtype=F32),
          rng.standard_normal((2, 1, 4), dtype=F32)]
    want = general(model, xs)
    model(xs)
    model(xs)
    # all but Average (its division after the chain) and the norm over the middle axis
    assert runner_steps(model) == len(merged) + len(norms) + len(shaped) - 2
    for _ in range(2):
        got = model(xs)
        assert_same(got, want)
        assert not _shares_any(got, xs)


def test_layer_norm_op_with_constants_in_any_position():
    """fl.layer_norm in a graph with gamma and beta as positional or keyword constants, or
    gamma None and beta given: the plan's runner gives the general call's bits."""
    rng = np.random.default_rng(12)
    i = Input((5, 6))
    gamma, beta = rng.standard_normal(6).astype(F32), rng.standard_normal(6).astype(F32)
    outs = [fl.layer_norm(i, gamma, beta, -1, 1e-5), fl.layer_norm(i, None, beta),
            fl.layer_norm(i, gamma=gamma, epsilon=0.5),
            fl.layer_norm(i, np.ones((5, 6), F32), None, (1, 2)),
            fl.layer_norm(i, axis=1)]  # the middle axis: the general call
    model = Model(i, outs)
    x = rng.standard_normal((3, 5, 6), dtype=F32)
    want = general(model, x)
    model(x)
    model(x)
    assert runner_steps(model) == 4
    assert_same(model(x), want)
    assert_same(model(x), want)


def test_sequential_without_input_builds_then_plans():
    model = Sequential([Dense(3), Dense(2, activation="sigmoid")])
    x = np.random.default_rng(5).random((4, 6), dtype=F32)
    first = model(x)  # builds the layers: the weights change while it runs
    assert_same(model(x), first)
    assert_same(model(x), first)
    assert_same(first, general(model, x))


def test_pickle_and_copy_leave_the_plans_behind():
    import copy

    model, xs = seed_attention()
    want = model(xs)
    model(xs)
    assert plans(model)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert not plans(other)
        assert_same(other(xs), want)
        assert_same(other(xs), want)


# ------------------------------------------------- what the checks convert, and what changes


def calls_equal_general(model, x, times=4):
    want = general(model, x)
    for _ in range(times):
        assert_same(model(x), want)
    return want


def test_layer_norm_keyword_constants_the_checks_convert():
    """gamma / beta given by keyword as float64, float16, ints or a strided float32 array:
    the checks convert them, so the general call serves every call."""
    i = Input((5, 6))
    f32 = np.arange(12, dtype=F32)[::2]  # strided
    model = Model(i, [fl.layer_norm(i, gamma=np.linspace(0.5, 2, 6)),
                      fl.layer_norm(i, beta=np.ones(6, np.float16)),
                      fl.layer_norm(i, gamma=np.arange(6)), fl.layer_norm(i, gamma=f32)])
    calls_equal_general(model, np.random.default_rng(13).standard_normal((2, 5, 6), dtype=F32))


def test_layers_called_on_a_list_that_do_not_take_one():
    """Only the merges and Concatenate get their list of inputs as a runner's arguments; a
    layer called on a one-tensor list keeps its own rule."""
    from fastlayers.layers import LayerNormalization

    a = Input((3, 4))
    model = Model(a, [LayerNormalization()([a]), Dense(2)([a])])
    calls_equal_general(model, np.random.default_rng(14).standard_normal((2, 3, 4), dtype=F32))


@pytest.mark.parametrize("dtype", ["float64", "int32"])
def test_inputs_the_checks_convert_keep_the_general_call(dtype):
    rng = np.random.default_rng(6)
    i = Input((4,), dtype=dtype)
    model = Model(i, fl.softmax(Dense(3)(i)))
    x = (rng.random((2, 4)) * 5).astype(dtype)
    calls_equal_general(model, x)
    seq = Sequential([Input((4, 4, 2), dtype=dtype), Conv2D(3, 2), MaxPooling2D(), Flatten(),
                      Dense(2)])
    calls_equal_general(seq, (rng.random((2, 4, 4, 2)) * 5).astype(dtype))


def test_op_constants_that_need_converting():
    i = Input((3, 4))
    w64 = np.random.default_rng(7).random((1, 4, 2))
    model = Model(i, [fl.matmul(i, w64), fl.matmul(i, [[[1.0, 2.0]] * 4])])
    calls_equal_general(model, np.ones((1, 3, 4), F32))


class _Widen(fl.layers.Layer):
    """A user's layer returning float64, or a Fortran-order float32 array."""

    def __init__(self, fortran=False, **kwargs):
        super().__init__(**kwargs)
        self.fortran = fortran

    def call(self, x):
        return np.asfortranarray(x * 2) if self.fortran else x.astype(np.float64)


class _Shrinks(fl.layers.Layer):
    """A user's layer whose output shape depends on the values: keeps the rows whose sum is
    positive (for the guards: the plan must notice and fall back)."""

    def call(self, x):
        return np.ascontiguousarray(x[:, : 1 + int(x.sum() > 0)])


@pytest.mark.parametrize("fortran", [False, True])
def test_custom_layer_outputs_that_need_converting(fortran):
    i = Input((5, 4))
    model = Model(i, Dense(3)(_Widen(fortran)(i)))
    calls_equal_general(model, np.random.default_rng(8).random((2, 5, 4)).astype(F32))


def test_value_dependent_shapes_fall_back_to_the_general_executor():
    i = Input((4, 6))
    model = Model(i, Dense(2)(_Shrinks()(i)))
    pos, neg = np.ones((1, 4, 6), F32), -np.ones((1, 4, 6), F32)
    calls_equal_general(model, neg)  # records with one row kept
    assert plans(model)
    assert_same(model(pos), general(model, pos))  # two rows: the guard trips
    assert model(pos).shape == (1, 2, 2)


def test_changed_layer_attributes_and_overridden_call():
    rng = np.random.default_rng(9)
    i = Input((5,))
    d = Dense(3, activation="relu")
    model = Model(i, d(i))
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    x = rng.standard_normal((4, 5)).astype(F32)
    relu = calls_equal_general(model, x)
    d.activation = "linear"  # the Keras habit: logits from the last layer
    linear = calls_equal_general(model, x)
    assert (linear < 0).any() and not (relu < 0).any()

    class Doubled(Dense):
        def call(self, inputs, training=None):
            return super().call(inputs) * 2

    i2 = Input((5,))
    twice = Doubled(3)
    m2 = Model(i2, twice(i2))
    m2.set_weights(model.get_weights())
    got = calls_equal_general(m2, x)
    assert_same(got, linear * 2)


def test_flatten_after_an_identity_layer_does_not_share_the_input():
    from fastlayers.layers import Dropout

    x = np.arange(24, dtype=F32).reshape(2, 3, 4)
    i = Input((3, 4))
    for model in (Model(i, Flatten()(Dropout(0.5)(i))),
                  Sequential([Input((3, 4)), Dropout(0.5), Flatten()])):
        for _ in range(3):
            y = model(x)
            assert not np.shares_memory(y, x)
            assert_same(y, x.reshape(2, 12))
    j = Input((3, 4))
    h = Dense(2)(j)
    two = Model(j, [Dropout(0.1)(h), Flatten()(h)])
    for _ in range(3):
        a, b = two(x)
        assert not np.shares_memory(a, b)


def test_new_weights_clear_the_plans_and_recording_goes_on():
    """Each set_weights drops the model's old plans (their packed weights with them) without
    counting evictions, so a model whose weights change keeps getting plans."""
    rng = np.random.default_rng(10)
    i = Input((6,))
    model = Model(i, Dense(4)(i))
    x = rng.random((2, 6), dtype=F32)
    for _ in range(3 * shape_plan.MAX_PLANS):
        model.set_weights([rng.standard_normal(w.shape).astype(F32)
                           for w in model.get_weights()])
        calls_equal_general(model, x, times=3)
        assert len(plans(model)) == 1
    assert model.__dict__["_shape_plans"]["evicted"] == 0


def test_a_stateful_layer_elsewhere_leaves_plans_alone():
    from fastlayers.layers import LSTM as LSTMLayer

    i = Input((6,))
    model = Model(i, Dense(4)(i))
    x = np.ones((2, 6), F32)
    stateful = LSTMLayer(3, stateful=True)
    seq = np.ones((1, 2, 5), F32)
    for _ in range(4):
        model(x)
        stateful(seq)  # assigns its states on every call
    assert len(plans(model)) == 1


def test_a_signature_whose_plan_went_stale_is_not_recorded_again():
    i = Input((4, 6))
    model = Model(i, Dense(2)(_Shrinks()(i)))
    pos, neg = np.ones((1, 4, 6), F32), -np.ones((1, 4, 6), F32)
    model(neg)
    model(neg)  # records
    assert plans(model)
    model(pos)  # the guard trips: dropped
    for _ in range(3):
        assert_same(model(pos), general(model, pos))
    assert not plans(model)


# ------------------------------------------------------------- intermediates freed early


class _Probe(fl.layers.Layer):
    """A user's layer (a general step in a plan) that notes a weak reference to its input and
    whether the arrays noted by the probes before it are still alive when it runs."""

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def call(self, x):
        self.log.append((self.name, [r() is not None for _, r in self.refs]))
        self.refs.append((self.name, weakref.ref(x)))
        return x * np.float32(1.5)


def _probed(kind):
    """Dense layers with probes between them; in the functional model a skip connection
    (probe p1's input is also read by the Add at the end; p2's only by p2) and a second
    output that a later node reads too (p3's input)."""
    # (deques: a list given to a custom layer becomes its own tracked copy, as in Keras)
    log, refs = collections.deque(), collections.deque()
    probes = [_Probe(log, name=f"p{i}") for i in range(1, 4)]
    for p in probes:
        p.refs = refs
    rng = np.random.default_rng(11)
    if kind == "sequential":
        model = Sequential([Input((6,)), Dense(64), probes[0], Dense(64), probes[1], Dense(64),
                            probes[2], Dense(2)])
    else:
        i = Input((6,))
        a = Dense(64)(i)
        b = Dense(64)(probes[0](a))
        c = Dense(64)(probes[1](b))
        d = probes[2](c)
        model = Model(i, [Dense(2)(fl.layers.Add()([d, a])), c])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    return model, log, refs, rng.random((256, 6), dtype=F32)


@pytest.mark.parametrize("kind, executor", [
    ("sequential", "plan"), ("functional", "plan"), ("sequential", "general"),
    ("functional", "general"),
])
def test_each_intermediate_is_freed_after_its_last_reader(kind, executor):
    model, log, refs, x = _probed(kind)
    want = general(model, x)
    model(x)
    model(x)  # recorded
    assert plans(model)
    log.clear()
    refs.clear()
    got = model(x) if executor == "plan" else general(model, x)
    assert_same(got, want)
    names = [name for name, _ in log]
    assert names == ["p1", "p2", "p3"]
    alive = dict(log)
    # When p2 runs, p1's input (Dense output a) has been dropped in the Sequential (p1 was
    # its last reader); the functional model keeps it for the Add.
    assert alive["p2"] == [kind == "functional"]
    # When p3 runs, p2's input (b) is gone in both (p2 was its last reader).
    assert alive["p3"] == [kind == "functional", False]


class _Two(fl.layers.Layer):
    """A user's layer with two outputs, noting weak references to both."""

    def __init__(self, refs, **kwargs):
        super().__init__(**kwargs)
        self.refs = refs

    def call(self, x):
        a, b = x * np.float32(2), x * np.float32(3)
        self.refs.extend([("a", weakref.ref(a)), ("b", weakref.ref(b))])
        return [a, b]


@pytest.mark.parametrize("executor", ["plan", "general"])
def test_an_output_nothing_reads_is_dropped_at_once(executor):
    log, refs = collections.deque(), collections.deque()
    probe = _Probe(log, name="p")
    probe.refs = refs
    i = Input((6,))
    a, _unused = _Two(refs)(i)
    model = Model(i, Dense(2)(probe(a)))
    x = np.random.default_rng(12).random((4, 6), dtype=F32)
    want = general(model, x)
    model(x)
    model(x)
    assert plans(model)
    log.clear()
    refs.clear()
    assert_same(model(x) if executor == "plan" else general(model, x), want)
    assert list(log) == [("p", [True, False])]  # the probe's input alive, the unused output gone


class _Varying(fl.layers.Layer):
    """A user's layer whose number of outputs is a setting: [x * 2, x * 3][:n]."""

    n = 2

    def call(self, x):
        return [x * np.float32(2), x * np.float32(3)][: self.n]


def test_a_step_whose_output_count_changes_drops_the_plan():
    layer = _Varying()
    i = Input((5,))
    a, _unused = layer(i)
    model = Model(i, Dense(2)(a))
    x = np.random.default_rng(13).random((3, 5), dtype=F32)
    want = general(model, x)
    model(x)
    model(x)
    assert plans(model)
    layer.n = 1  # the unused second output is gone: the general executor does not need it
    assert_same(model(x), want)
    assert not plans(model)


def test_a_single_input_given_as_a_list_records_a_plan():
    model, x = small_cnn()
    want = general(model, x)
    for _ in range(3):
        assert_same(model([x]), want)
    assert len(plans(model)) == 1
    assert_same(model(x), want)  # the same signature: the same plan
    assert len(plans(model)) == 1
    # Nested lists of numbers are one array (also with a batch of one, a list of one entry):
    # the general path converts them.
    assert_same(model(x.tolist()), want)
    assert_same(model(x[:1].tolist()), general(model, x[:1]))


def test_identity_pooling_and_recurrent_wrappers_run_as_runners():
    """Dropout (its input, fresh, read by it alone), global pooling, the Softmax layer,
    UpSampling and Bidirectional run their runners inside a plan, with the general
    executor's bits. A Dropout on a model input, or whose output is a model output, keeps
    its general call (its runner hands back its input), and no output shares an input's
    memory."""
    from fastlayers.layers import (
        GRU,
        Bidirectional,
        Dropout,
        GlobalMaxPooling1D,
        Softmax,
        SpatialDropout1D,
        UpSampling1D,
    )

    rng = np.random.default_rng(21)
    i = Input((12, 3))
    h = Dense(6)(i)
    h = Dropout(0.3)(h)  # runner: Dense's output is fresh and read by the Dropout alone
    h = SpatialDropout1D(0.2)(h)  # a view of that private array, read by this one alone
    h = UpSampling1D(2)(h)
    seq = Bidirectional(LSTM(4, return_sequences=True))(h)
    pooled = GlobalMaxPooling1D()(seq)
    last = Bidirectional(GRU(3), merge_mode="ave")(h)
    out = Softmax()(Dense(5)(pooled))
    raw = Dropout(0.1)(i)  # on the model input: general
    model = Model(i, [out, last, GlobalAveragePooling1D()(raw), Dropout(0.2)(last)])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) * F32(0.5)
                       for w in model.get_weights()])
    x = rng.standard_normal((2, 12, 3)).astype(F32)
    want = general(model, x)
    model(x)
    model(x)
    # every node but the Dropout on the input and the one that reads a model output
    assert sum(len(p.steps) for p in plans(model).values()) == 12
    assert runner_steps(model) == 12 - 2
    for _ in range(2):
        got = model(x)
        assert_same(got, want)
        assert not any(np.shares_memory(g, x) for g in got[:3])


def test_simple_rnn_runs_as_a_runner():
    """SimpleRNN (its C++ driver through functional.recurrent_runner) runs its runner inside a
    plan - with sequences, with its state, and in a Bidirectional - with the general
    executor's bits; the returned state is an array of its own."""
    from fastlayers.layers import Bidirectional, SimpleRNN

    rng = np.random.default_rng(22)
    i = Input((9, 4))
    seq = SimpleRNN(5, return_sequences=True)(i)
    both = Bidirectional(SimpleRNN(3, activation="relu"))(seq)
    out, h = SimpleRNN(6, return_state=True)(seq)
    model = Model(i, [Dense(2)(both), out, h])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) * F32(0.5)
                       for w in model.get_weights()])
    x = rng.standard_normal((3, 9, 4)).astype(F32)
    want = general(model, x)
    model(x)
    model(x)
    steps = sum(len(p.steps) for p in plans(model).values())
    assert steps == 4 and runner_steps(model) == steps
    for _ in range(2):
        got = model(x)
        assert_same(got, want)
        assert not np.shares_memory(got[1], got[2])


@pytest.mark.parametrize("kind", ["self", "cross-key", "dropout", "window"])
def test_multi_head_attention_runs_as_a_runner(kind):
    """MultiHeadAttention on (query, value) or (query, value, key), no mask: its runner
    (the checked arguments of the recorded shapes bound) gives the general executor's bits;
    with a causal mask it keeps its general call."""
    from fastlayers.layers import MultiHeadAttention

    rng = np.random.default_rng(31)
    q, v, k = Input((5, 8)), Input((7, 6)), Input((7, 4))
    if kind == "self":
        out = MultiHeadAttention(2, 4)(q, q)
    elif kind == "cross-key":
        out = MultiHeadAttention(3, 2, value_dim=5, output_shape=9)(q, v, k)
    elif kind == "dropout":  # the softmax path (fully masked rows attend to nothing)
        out = MultiHeadAttention(2, 3, dropout=0.2)(q, v)
    else:
        out = MultiHeadAttention(2, 4, sliding_window=2)(q, q)
    causal = MultiHeadAttention(2, 4)(q, q, use_causal_mask=True)
    model = Model([q, v, k], [Dense(3)(out), causal])
    model.set_weights([rng.standard_normal(w.shape).astype(F32) * F32(0.4)
                       for w in model.get_weights()])
    xs = [rng.standard_normal(s).astype(F32) for s in ((2, 5, 8), (2, 7, 6), (2, 7, 4))]
    want = general(model, xs)
    model(xs)
    model(xs)
    assert runner_steps(model) == 2  # the attention and the Dense; the causal one general
    for _ in range(2):
        assert_same(model(xs), want)


def test_attention_with_a_query_mask_keeps_its_general_call():
    """A query mask (MultiHeadAttention's fourth positional argument, which
    GroupQueryAttention reads) keeps the general call; GroupQueryAttention without one runs
    the runner it inherits. Bits as the general executor's on every call."""
    from fastlayers.layers import GroupQueryAttention, MultiHeadAttention

    rng = np.random.default_rng(32)
    q, v, qm = Input((5, 8)), Input((7, 8)), Input((5,))
    outs = [MultiHeadAttention(2, 4)(q, v, v, qm), GroupQueryAttention(4, 4, 2)(q, v, v, qm),
            GroupQueryAttention(4, 4, 2)(q, v)]
    model = Model([q, v, qm], outs)
    model.set_weights([rng.standard_normal(w.shape).astype(F32) * F32(0.4)
                       for w in model.get_weights()])
    xs = [rng.standard_normal((2, 5, 8)).astype(F32), rng.standard_normal((2, 7, 8)).astype(F32),
          (rng.random((2, 5)) > 0.3).astype(F32)]
    want = general(model, xs)
    for _ in range(4):
        assert_same(model(xs), want)
    assert runner_steps(model) == 1  # the unmasked GroupQueryAttention


def test_a_plan_keeps_no_input_array_alive():
    """The runners bind what the checks computed, never the recording call's arrays: an
    input given to the call that recorded the plan is freed once the caller drops it."""
    import gc

    from fastlayers.layers import MultiHeadAttention

    i = Input((6, 8))
    h = MultiHeadAttention(2, 4)(i, i)
    model = Model(i, GlobalAveragePooling1D()(Dense(4)(h)))
    rng = np.random.default_rng(33)
    model(rng.standard_normal((2, 6, 8)).astype(F32))
    x = rng.standard_normal((2, 6, 8)).astype(F32)
    model(x)  # the second call with these shapes records the plan
    assert runner_steps(model) == 3
    ref = weakref.ref(x)
    del x
    model(rng.standard_normal((2, 6, 8)).astype(F32))
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float32"])
def test_embedding_runs_as_a_runner_on_integer_indices(dtype):
    """An Embedding on integer indices runs its runner (the range check and the gather, on
    every call; the guard checks the recorded integer dtype); an index out of range still
    raises the call's error; float indices (checked whole by the call) keep the general
    call. Bits as the general executor's."""
    from fastlayers.layers import Bidirectional

    rng = np.random.default_rng(34)
    i = Input((6,), dtype=dtype)
    h = Bidirectional(LSTM(3, return_sequences=True))(Embedding(11, 4)(i))
    model = Model(i, Dense(2)(GlobalAveragePooling1D()(h)))
    model.set_weights([rng.standard_normal(w.shape).astype(F32) for w in model.get_weights()])
    x = rng.integers(0, 11, (2, 6)).astype(dtype)
    want = general(model, x)
    for _ in range(3):
        assert_same(model(x), want)
    assert runner_steps(model) == (4 if dtype != "float32" else 3)
    bad = x.copy()
    bad[1, 2] = 11
    with pytest.raises(ValueError, match="out of range for input_dim=11"):
        model(bad)
    y = rng.integers(0, 11, (2, 6)).astype(dtype)
    assert_same(model(y), general(model, y))


def test_a_misaligned_intermediate_falls_back_to_the_general_executor():
    """A custom layer that starts returning a misaligned view after the plan was recorded:
    the next runner's guard sends the call to the general executor (which copies), where
    the C++ runner would have refused the array."""
    from fastlayers.layers import Layer, LayerNormalization

    class Shifting(Layer):
        misaligned = False

        def call(self, x):
            x = np.asarray(x)
            if not Shifting.misaligned:
                return x.copy()
            buf = np.zeros(x.nbytes + 2, np.uint8)[2:].view(x.dtype).reshape(x.shape)
            buf[...] = x
            return buf

        def compute_output_shape(self, shape):
            return shape

    i = Input((64,))
    model = Model(i, LayerNormalization()(Dense(64)(Shifting()(i))))
    x = np.random.default_rng(35).standard_normal((4, 64)).astype(F32)
    for _ in range(3):
        model(x)
    assert runner_steps(model) == 2
    Shifting.misaligned = True
    want = general(model, x)
    assert_same(model(x), want)
    assert_same(model(x), want)


def test_an_embedding_that_remaps_its_indices_keeps_its_general_call():
    """A subclass (or a patch) of Embedding._indices, the hook its call reads indices
    through, keeps the general call in a plan: the runner would skip the remapping."""

    class Clipped(Embedding):
        def _indices(self, inputs):
            return np.clip(np.asarray(inputs), 0, self.input_dim - 1).astype(np.intp)

    i = Input((4,), dtype="int32")
    model = Model(i, Clipped(10, 3)(i))
    x = np.array([[1, 2, 3, 4]], np.int32)
    for _ in range(3):
        model(x)
    assert runner_steps(model) == 0
    far = np.array([[1, 2, 40, -3]], np.int32)
    assert_same(model(far), general(model, far))
    plain = Embedding(10, 3)
    plain._indices = Clipped._indices.__get__(plain)  # patched on the object
    j = Input((4,), dtype="int32")
    patched = Model(j, plain(j))
    for _ in range(3):
        patched(x)
    assert runner_steps(patched) == 0
    assert_same(patched(far), general(patched, far))
