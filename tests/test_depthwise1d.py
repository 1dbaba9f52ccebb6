"""DepthwiseConv1D and SeparableConv1D (DepthwiseConv2D and SeparableConv2D on a height of 1)
and the identity layers Identity, AlphaDropout, SpatialDropout3D: Keras fixtures at edge
shapes on both paths, a float64 reference from the definition, models, and bad arguments.

Fixtures: tests/golden/depthwise1d_layers.npz and models_depthwise1d.npz (with the model
files, which tests/test_load_keras.py loads), made by tests/golden/make_models_depthwise1d.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close
from golden_models import read_layer_cases, run_layer_case

import fastlayers as fl
from fastlayers import Input, Model
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
LAYER_CASES = read_layer_cases("depthwise1d_layers.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    got, y, x, weights = run_layer_case(LAYER_CASES, case, backend)
    k = max([1] + [int(np.prod(w.shape[:-1])) for w in weights])
    assert_close(got, y, k=k, magnitude=float(np.abs(x).max()))


def test_fixture_cases_cover_the_edges():
    assert {"dw1d_channels_first", "dw1d_kernel_is_input", "dw1d_prime_channels",
            "sep1d_channels_first", "sep1d_one_step", "identity", "alpha_dropout",
            "spatial_dropout_3d"} <= set(LAYER_CASES)


def _depthwise_reference(x, kernel, bias, stride, dilation, padding):
    """float64 loops from the definition: output channel c * m + j of step t sums
    x[t * stride + a * dilation - left, c] * kernel[a, c, j] over the taps a."""
    n, steps, c = x.shape
    k, _, m = kernel.shape
    span = (k - 1) * dilation + 1
    if padding == "same":
        out = -(-steps // stride)
        total = max((out - 1) * stride + span - steps, 0)
        left = total // 2
    else:
        out = (steps - span) // stride + 1
        left = 0
    y = np.zeros((n, out, c * m))
    for t in range(out):
        for a in range(k):
            s = t * stride + a * dilation - left
            if 0 <= s < steps:
                y[:, t] += (x[:, s, :, None] * kernel[a]).reshape(n, c * m)
    return y if bias is None else y + bias


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k,stride,dilation,padding,m", [
    (1, 1, 1, "valid", 1), (3, 1, 1, "same", 2), (4, 2, 1, "same", 1), (2, 1, 3, "valid", 3),
    (5, 3, 1, "valid", 1), (3, 1, 2, "same", 1)])
def test_depthwise_against_the_definition(rng, backend, k, stride, dilation, padding, m):
    x = rng.standard_normal((2, 17, 5)).astype(F32)
    layer = L.DepthwiseConv1D(k, strides=stride, dilation_rate=dilation, padding=padding,
                              depth_multiplier=m)
    kernel = rng.standard_normal((k, 5, m)).astype(F32)
    bias = rng.standard_normal(5 * m).astype(F32)
    layer.set_weights([kernel, bias])
    with fl.use_backend(backend):
        got = layer(x)
    want = _depthwise_reference(x.astype(np.float64), kernel.astype(np.float64), bias,
                                stride, dilation, padding)
    assert_close(got, want.astype(F32), k=k, magnitude=4.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_separable_is_depthwise_then_pointwise(rng, backend):
    """The depthwise step has no bias: the layer's bias is added once, after the pointwise."""
    x = rng.standard_normal((3, 12, 4)).astype(F32)
    dw = rng.standard_normal((3, 4, 2)).astype(F32)
    pw = rng.standard_normal((1, 8, 5)).astype(F32)
    bias = np.full(5, 10.0, F32)
    sep = L.SeparableConv1D(5, 3, depth_multiplier=2, padding="same")
    sep.set_weights([dw, pw, bias])
    step = L.DepthwiseConv1D(3, depth_multiplier=2, padding="same", use_bias=False)
    step.set_weights([dw])
    with fl.use_backend(backend):
        got = sep(x)
        mid = step(x)
    assert_close(got, (mid @ pw[0] + bias).astype(F32), k=24, magnitude=8.0)


def test_weights_shapes_and_build_from_set_weights():
    layer = L.SeparableConv1D(6, 3, depth_multiplier=2)
    layer(np.zeros((1, 5, 4), F32))
    assert [w.shape for w in layer.get_weights()] == [(3, 4, 2), (1, 8, 6), (6,)]
    d = L.DepthwiseConv1D(2, data_format="channels_first")
    d.set_weights([np.ones((2, 3, 1), F32), np.zeros(3, F32)])
    np.testing.assert_array_equal(d(np.ones((1, 3, 4), F32)), np.full((1, 3, 3), 2.0))


@pytest.mark.parametrize("make, x, error, fragment", [
    (lambda: L.DepthwiseConv1D(3), np.zeros((2, 5), F32), ValueError, "rank 3"),
    (lambda: L.DepthwiseConv1D(3), np.zeros((1, 2, 5, 3), F32), ValueError, "rank 3"),
    (lambda: L.DepthwiseConv1D(6), np.zeros((1, 5, 3), F32), ValueError, "smaller than"),
    (lambda: L.SeparableConv1D(2, 3), np.zeros((1, 5, 3), np.complex64), TypeError, "real"),
])
def test_bad_inputs(make, x, error, fragment):
    with pytest.raises(error, match=fragment):
        make()(x)


def test_channels_changed_after_build():
    layer = L.DepthwiseConv1D(3)
    layer(np.zeros((1, 5, 3), F32))
    with pytest.raises(ValueError, match="inputs have 4 channels, the layer was built for 3"):
        layer(np.zeros((1, 5, 4), F32))
    two_d = L.SeparableConv2D(2, 3, data_format="channels_first")
    two_d(np.zeros((1, 3, 5, 5), F32))
    with pytest.raises(ValueError, match="inputs have 2 channels, the layer was built for 3"):
        two_d(np.zeros((1, 2, 5, 5), F32))


@pytest.mark.parametrize("make, error, fragment", [
    (lambda: L.DepthwiseConv1D((3, 3)), ValueError, "kernel_size"),
    (lambda: L.DepthwiseConv1D(3, padding="causal"), ValueError, "padding"),
    (lambda: L.DepthwiseConv1D(3, strides=2, dilation_rate=2), ValueError, "strides > 1"),
    (lambda: L.SeparableConv1D(0, 3), ValueError, "filters"),
    (lambda: L.SeparableConv1D(2, 3, depth_multiplier=0), ValueError, "depth_multiplier"),
    (lambda: L.SeparableConv1D(2, 3.0), TypeError, "kernel_size"),
])
def test_bad_arguments(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


def test_in_a_symbolic_model(rng):
    inp = Input((11, 4))
    h = L.SeparableConv1D(6, 3, padding="same")(inp)
    out = L.DepthwiseConv1D(2, strides=2)(h)
    assert tuple(out.shape) == (None, 5, 6)
    model = Model(inp, out)
    x = rng.standard_normal((2, 11, 4)).astype(F32)
    sep, dw = model.layers[1], model.layers[2]
    np.testing.assert_array_equal(model.predict(x), dw(sep(x)))


def test_identity_layers_pass_their_input(rng):
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(F32)
    for layer in (L.Identity(), L.AlphaDropout(0.5), L.SpatialDropout3D(0.5)):
        np.testing.assert_array_equal(layer(x), x)
        assert layer.supports_masking
    assert L.AlphaDropout(0.2, seed=3, name="a").get_config() == {
        "name": "a", "rate": 0.2, "noise_shape": None, "seed": 3}
    assert L.SpatialDropout3D(0.1, data_format="channels_first").get_config()["data_format"] \
        == "channels_first"
    with pytest.raises(ValueError, match="rank 5|5"):
        L.SpatialDropout3D(0.1)(np.zeros((2, 3, 4), F32))
    with pytest.raises(ValueError, match="rate"):
        L.AlphaDropout(1.5)
    with pytest.raises(TypeError, match="unrecognized"):
        L.Identity(rate=0.1)


@pytest.mark.parametrize("call, fragment", [
    (lambda: L.Conv1D(2, 5)(np.ones((1, 3, 2), F32)), "input length 3 is smaller than the "
     "dilated kernel 5"),
    (lambda: fl.conv1d(np.ones((1, 3, 2), F32), np.ones((2, 2, 2), F32), dilation_rate=3),
     "input length 3 is smaller than the dilated kernel 4"),
    (lambda: L.DepthwiseConv1D(5, data_format="channels_first")(np.ones((1, 2, 3), F32)),
     "input length 3 is smaller than the dilated kernel 5"),
    (lambda: L.SeparableConv1D(2, 3, dilation_rate=2)(np.ones((1, 4, 2), F32)),
     "input length 4 is smaller than the dilated kernel 5"),
    (lambda: L.Conv1D(2, 2, dilation_rate=2**31)(np.ones((1, 3, 2), F32)),
     r"Conv1D: dilation_rate must be <= 2147483647, got 2147483648"),  # the constructor
    (lambda: fl.conv1d(np.ones((1, 8, 4), F32), np.ones((2, 4, 2), F32), strides=2,
                       dilation_rate=2), "got strides 2 and dilation_rate 2"),
    (lambda: L.Conv1D(3, 2)(np.zeros((1, 0, 4), F32)),
     r"empty steps or channel axis, shape \(1, 0, 4\)"),
    (lambda: fl.conv1d(np.ones((1, 8, 4), F32), np.ones((0, 4, 2), F32)),
     r"kernel has an empty dimension, shape \(0, 4, 2\)"),
])
def test_1d_geometry_errors_speak_of_steps(any_backend, call, fragment):
    """The 1-D layers run as 2-D convolutions on a height of 1; their errors still name the
    input's length and the kernel's, not an (H, W) of the height-1 image."""
    with pytest.raises(ValueError, match=fragment) as info:
        call()
    assert "(H, W)" not in str(info.value)
