"""Model definition without running the layers: Dense, the convolutions, 2D pooling,
UpSampling2D and Concatenate compute their output shape on symbolic inputs known but for the
batch (``Layer._symbolic_output_shape``) instead of running on zeros. Checked here: the shape
equals the real output's (every Keras layer fixture of the conv, pooling and upsampling
classes; Dense and Concatenate on a few shapes), the layer is built exactly as a zero run
builds it, no layer call happens, and what is wrong is still reported at definition (by the
zero run the hook falls back to).
"""

from __future__ import annotations

import numpy as np
import pytest
from golden_models import read_layer_cases

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

F32 = np.float32
HOOKED = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv1DTranspose",
          "MaxPooling2D",
          "AveragePooling2D", "UpSampling2D"}
CASES = {
    f"{file}:{name}": case
    for file in ("convpool_layers.npz", "decoder_layers.npz")
    for name, case in read_layer_cases(file).items()
    if case[0]["class_name"] in HOOKED
}


def _no_calls(monkeypatch, layer):
    """Make the ``call`` of ``layer``'s class fail (patched where it is defined, so that the
    hook still counts as the call's own), so that a zero run during definition is caught."""
    owner = next(c for c in type(layer).__mro__ if "call" in c.__dict__)

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{self.name} was run during the model definition")

    monkeypatch.setattr(owner, "call", refuse)


@pytest.mark.parametrize("case", sorted(CASES))
def test_shape_without_a_run_equals_the_real_output(case, monkeypatch):
    meta, x, weights, _, y = CASES[case]
    layer = getattr(L, meta["class_name"])(**meta["config"])
    with monkeypatch.context() as m:
        _no_calls(m, layer)
        sym = layer(Input(shape=x.shape[1:]))
    assert sym.shape == (None, *y.shape[1:])
    if weights:
        layer.set_weights(weights)
    assert layer(x).shape == y.shape


@pytest.mark.parametrize("make, shapes", [
    (lambda: L.Dense(5, activation="softmax", seed=1), [(7,)]),
    (lambda: L.Dense(3, seed=1), [(4, 6, 7)]),
    (lambda: L.Concatenate(), [(3, 4), (3, 2), (3, 1)]),
    (lambda: L.Concatenate(axis=1), [(3, 4), (2, 4)]),
    (lambda: L.Concatenate(axis=-2), [(5, 3, 4), (5, 1, 4)]),
])
def test_dense_and_concatenate_shapes(make, shapes, rng, monkeypatch):
    layer = make()
    inputs = [Input(shape=s) for s in shapes]
    with monkeypatch.context() as m:
        _no_calls(m, layer)
        sym = layer(inputs if len(inputs) > 1 else inputs[0])
    xs = [rng.standard_normal((2, *s)).astype(F32) for s in shapes]
    real = layer(xs if len(xs) > 1 else xs[0])
    assert sym.shape == (None, *real.shape[1:])


@pytest.mark.parametrize("make", [
    lambda: L.Dense(4, seed=5),
    lambda: L.Conv2D(4, 3, strides=2, padding="same", seed=5),
    lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same", seed=5),
    lambda: L.SeparableConv2D(4, 3, depth_multiplier=2, seed=5),
    lambda: L.DepthwiseConv2D(3, depth_multiplier=3, seed=5),
])
def test_weights_are_those_a_zero_run_makes(make, monkeypatch):
    """The hook builds the layer with the shape a zero run would use (batch 2), so seeded
    initializers give the same weights as calling the layer on an array."""
    defined, called = make(), make()
    with monkeypatch.context() as m:
        _no_calls(m, defined)
        defined(Input(shape=(9, 7, 3)))
    called(np.zeros((2, 9, 7, 3), F32))
    for a, b in zip(defined.get_weights(), called.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_large_unet_is_defined_without_running_it(monkeypatch):
    """Defining a U-Net on 4096 x 4096 images used to run every layer on batches of 2 and 3
    such images (GiB of zeros, seconds of convolutions)."""
    inp = Input(shape=(4096, 4096, 3))
    d1 = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    d2 = L.Conv2D(16, 3, padding="same", activation="relu")(L.MaxPooling2D(2)(d1))
    u = L.Conv2DTranspose(8, 2, strides=2)(d2)
    u2 = L.UpSampling2D(1, interpolation="bilinear")(L.AveragePooling2D(1)(u))
    h = L.Concatenate()([u2, d1])
    out = L.SeparableConv2D(2, 3, padding="same")(L.DepthwiseConv2D(3, padding="same")(h))
    model = Model(inp, out)
    for layer in model.layers:
        _no_calls(monkeypatch, layer)
    assert out.shape == (None, 4096, 4096, 2)
    assert h.shape == (None, 4096, 4096, 16)


@pytest.mark.parametrize("define, match", [
    (lambda: L.Conv2D(2, 5)(Input(shape=(3, 3, 1))), "smaller than"),
    (lambda: L.MaxPooling2D(4)(Input(shape=(3, 8, 1))), "smaller than pool_size"),
    (lambda: L.Conv2D(4, 3, groups=2)(Input(shape=(5, 5, 3))), "divisible"),
    (lambda: L.Concatenate()([Input(shape=(4, 4, 2)), Input(shape=(5, 4, 2))]), "matching"),
    (lambda: L.Conv2DTranspose(2, 2, padding="same", output_padding=0)(Input(shape=(1, 1, 2))),
     "empty"),
])
def test_what_is_wrong_is_still_reported_at_definition(define, match):
    with pytest.raises(ValueError, match=match):
        define()


def test_a_shared_layer_checks_its_channels():
    conv = L.Conv2D(4, 3)
    conv(Input(shape=(8, 8, 3)))
    with pytest.raises(ValueError, match="expected"):
        conv(Input(shape=(8, 8, 5)))


def test_unknown_sizes_and_other_dtypes_still_run_on_zeros(monkeypatch):
    """The hook serves only shapes known but for the batch, of float32 tensors."""
    seen = []
    call = L.Conv2D.call

    def counting(self, inputs, training=None):
        seen.append(inputs.shape)
        return call(self, inputs, training)

    monkeypatch.setattr(L.Conv2D, "call", counting)
    L.Conv2D(2, 3, padding="same", seed=1)(Input(shape=(None, 6, 3)))
    assert len(seen) == 3  # the unknown sizes as 2, then as 3 and 9 (a spatial one unknown)
    seen.clear()
    L.Conv2D(2, 3, seed=1)(Input(shape=(6, 6, 3), dtype="int32"))
    assert len(seen) == 2
    seen.clear()
    L.Conv2D(2, 3, seed=1)(Input(shape=(6, 6, 3)))
    assert seen == []


def test_concatenate_along_the_batch_axis_runs_on_zeros():
    out = L.Concatenate(axis=0)([Input(shape=(3,)), Input(shape=(3,))])
    assert out.shape == (None, 3)
    x = np.ones((2, 3), F32)
    assert Model([out.node.inputs[0], out.node.inputs[1]], out)([x, x]).shape == (4, 3)


def test_models_still_match_keras_after_definition_by_shapes(rng):
    x = rng.standard_normal((2, 10, 12, 3)).astype(F32)
    inp = Input(shape=(10, 12, 3))
    h = L.Conv2D(4, 3, padding="same", seed=1)(inp)
    h = L.Concatenate()([L.UpSampling2D(2)(L.MaxPooling2D(2)(h)), h])
    model = Model(inp, L.Conv2DTranspose(2, 3, strides=2, seed=2)(h))
    want = model.layers[-1](np.concatenate(
        [model.layers[3](model.layers[2](model.layers[1](x))), model.layers[1](x)], axis=-1))
    with fl.use_backend("numpy"):
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_an_overridden_call_is_run_not_guessed():
    """A subclass's own call (or one replaced on the object) may return another shape: the
    hook of the class it derives from does not speak for it."""

    class FirstTwo(L.Dense):
        def call(self, inputs, training=None):
            return super().call(inputs)[..., :2]

    assert FirstTwo(5, seed=1)(Input(shape=(4,))).shape == (None, 2)
    conv = L.Conv2D(4, 3, seed=1)
    object.__setattr__(conv, "call", lambda x, training=None: np.zeros((len(x), 4), F32))
    assert conv(Input(shape=(6, 6, 3))).shape == (None, 4)


@pytest.mark.parametrize("act", ["glu ", " GLU", "\tglu"])
def test_glu_in_any_spelling_halves_the_width(act):
    assert L.Dense(4, activation=act, seed=1)(Input(shape=(3,))).shape == (None, 2)
    assert L.Conv2D(4, 1, activation=act, seed=1)(Input(shape=(5, 5, 3))).shape == (
        None, 5, 5, 2)


def test_units_and_filters_assigned_after_build_follow_the_weights():
    dense = L.Dense(3, seed=1)
    dense(np.ones((2, 4), F32))
    dense.units = 7  # the kernel stays (4, 3): a call still gives 3 columns
    assert dense(np.ones((1, 4), F32)).shape == (1, 3)
    assert dense(Input(shape=(4,))).shape == (None, 3)
    conv = L.Conv2DTranspose(4, 3, seed=1)
    conv(np.ones((1, 3, 3, 2), F32))
    conv.filters = 8
    assert conv(Input(shape=(3, 3, 2))).shape == (None, 5, 5, 4)


def test_a_list_goes_to_the_zero_run_unless_the_layer_takes_one():
    with pytest.raises(ValueError, match="rank"):
        L.UpSampling2D()([Input(shape=(4, 4, 2)) for _ in range(4)])


def test_sizes_beyond_the_limit_are_still_refused_at_definition():
    with pytest.raises(ValueError, match="too large"):
        L.UpSampling2D((100000, 100000))(Input(shape=(10, 10, 1)))



@pytest.mark.parametrize("make, shape, want", [
    # two neighbouring sizes give the same output here: the third one tells
    (lambda: L.MaxPooling2D(2), (None, None, 3), (None, None, None, 3)),
    (lambda: L.AveragePooling1D(3), (None, 4), (None, None, 4)),
    (lambda: L.MaxPooling3D(2), (None, 8, 8, 3), (None, None, 4, 4, 3)),
    # a valid 3x3 or 5x5 kernel refuses sizes 2 and 1: 8 is tried next
    (lambda: L.Conv2D(4, 5, seed=0), (None, None, 3), (None, None, None, 4)),
    (lambda: L.Conv2D(4, 3, strides=2, seed=0), (12, None, 3), (None, 5, None, 4)),
])
def test_unknown_spatial_sizes_stay_unknown(make, shape, want):
    assert tuple(make()(Input(shape=shape)).shape) == want


def test_a_model_with_unknown_image_sizes_runs_at_any_size(rng):
    inp = Input(shape=(None, None, 3))
    h = L.Conv2D(4, 3, activation="relu", seed=0)(inp)
    h = L.MaxPooling2D(2)(h)
    out = L.GlobalAveragePooling2D()(L.Conv2D(5, 5, seed=1)(h))
    model = Model(inp, out)
    for size in ((14, 15), (31, 20)):
        x = rng.standard_normal((2, *size, 3)).astype(np.float32)
        step = x
        for layer in model.layers[1:]:
            step = layer(step)
        np.testing.assert_array_equal(model.predict(x), step)


def test_sizes_no_try_fits_are_reported_with_the_sizes_tried():
    with pytest.raises(ValueError, match="tried as 2, 1, 8 and 16"):
        L.Conv2D(2, 17)(Input(shape=(None, None, 3)))


@pytest.mark.parametrize("make, shape", [
    (lambda: L.Dense(2, name="d"), (None,)),  # the placeholder 2 was the kernel's input size
    (lambda: L.Dense(3, name="d"), (5, None)),
    (lambda: L.LSTM(3, name="d"), (None, None)),
    (lambda: L.GRU(3, name="d"), (4, None)),
    (lambda: L.LayerNormalization(name="d"), (7, None)),
    (lambda: L.Conv1D(2, 3, name="d"), (9, None)),
])
def test_weights_of_an_unknown_dimension_are_refused_at_definition(make, shape):
    """A layer whose weights depend on an unknown input dimension is refused where it is
    called on symbolic inputs, as Keras refuses it; it was built for the placeholder size of
    the zero run (Dense on Input((None,)) got a (2, 2) kernel and ran on random weights for
    inputs of 2 features; a Keras-user audit). The layer is left unbuilt and still works on
    an input of known sizes."""
    layer = make()
    with pytest.raises(ValueError, match="d: its weights depend on an input dimension that "
                                         r"is unknown \(None\)"):
        layer(Input(shape=shape))
    assert not layer.built and layer.get_weights() == []
    known = tuple(8 if d is None else d for d in shape)
    out = layer(Input(shape=known))
    assert layer.built and out.shape[0] is None
    x = np.random.default_rng(0).normal(size=(2, *known)).astype(F32)
    assert np.isfinite(layer(x)).all()


@pytest.mark.parametrize("make, shape", [
    (lambda: L.Bidirectional(L.LSTM(3)), (None, None)),
    (lambda: L.TimeDistributed(L.Dense(3)), (4, None)),
    (lambda: Sequential([L.Dense(3)]), (None,)),
])
def test_wrapped_weights_of_an_unknown_dimension_are_refused(make, shape):
    """The refusal reaches the layers inside a wrapper or a nested model (they stayed built
    for the placeholder size; a review)."""
    layer = make()
    with pytest.raises(ValueError, match=r"its weights depend on an input dimension"):
        layer(Input(shape=shape))
    known = tuple(5 if d is None else d for d in shape)
    x = np.random.default_rng(0).normal(size=(2, *known)).astype(F32)
    assert np.isfinite(layer(x)).all()


def test_reshape_with_minus_one_of_unknown_sizes():
    """Reshape((-1, 4, 2)) of (None, None, 4) is (None, None, 4, 2), as Keras computes it (the
    zero runs made it (None, 1, 4, None), and a Dense after it was refused; a review)."""
    inp = Input(shape=(None, 4))
    y = L.Reshape((-1, 4, 2))(inp)
    assert y.shape == (None, None, 4, 2)
    model = Model(inp, L.Dense(3, seed=1)(y))
    x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype(F32)
    assert model(x).shape == (2, 3, 4, 3)
    assert L.Reshape((-1, 4, 2))(Input(shape=(6, 4))).shape == (None, 3, 4, 2)
    ids = L.Reshape((-1, 4, 2))(Input(shape=(None, 4), dtype="int32"))  # (any dtype)
    assert ids.shape == (None, None, 4, 2) and ids.dtype == np.float32
