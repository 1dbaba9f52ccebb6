"""GroupNormalization: Keras fixtures at edge shapes, a float64 reference written from the
definition, PyTorch's own nn.GroupNorm through from_torch, models built in code with Keras's
weights, symbolic use, and bad arguments, on both paths: the C++ driver
(csrc/ops/group_norm.cpp, also checked against NumPy at its chunk edges and for thread counts)
and fastlayers/_numpy/normalization.py.

Fixtures: tests/golden/groupnorm_layers.npz and models_groupnorm.npz (with the model files,
which tests/test_load_keras.py loads), made by tests/golden/make_models_groupnorm.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, parallel_regions
from golden_models import assert_keras_outputs, golden, read_layer_cases

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
LAYER_CASES = read_layer_cases("groupnorm_layers.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    meta, x, weights, _, y = LAYER_CASES[case]
    layer = L.GroupNormalization(**meta["config"])
    if weights:
        layer.set_weights(weights)
    with fl.use_backend(backend):
        got = layer(x)
    scale = max([1.0] + [float(np.abs(w[np.isfinite(w)]).max(initial=0.0)) for w in weights])
    assert_close(got, y, k=x.size // x.shape[0], magnitude=4 * scale)


def test_fixture_cases_cover_the_edges():
    assert {"gn_image_instance", "gn_image_g1", "gn_one_pixel", "gn_vector", "gn_image_prime",
            "gn_channels_first", "gn_axis_middle", "gn_no_affine", "gn_5d"} <= set(LAYER_CASES)


def _reference(x, gamma, beta, groups, axis, epsilon):
    """float64 loops over samples and groups, from the definition."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    c = x.shape[-1]
    y = np.empty_like(x)
    size = c // groups
    for n in range(x.shape[0]):
        for g in range(groups):
            part = x[n, ..., g * size:(g + 1) * size]
            mean = part.mean()
            var = ((part - mean) ** 2).mean()
            y[n, ..., g * size:(g + 1) * size] = (part - mean) / np.sqrt(var + epsilon)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return np.moveaxis(y, -1, axis)


@pytest.mark.parametrize(
    "shape,groups,axis",
    [
        ((1, 1, 1), 1, -1),  # one value per group: the output is beta
        ((3, 2, 13), 13, -1),  # prime channels, instance normalization
        ((2, 5, 7, 12), 3, -1),
        ((2, 12, 5, 7), 4, 1),
        ((4, 6), 6, 1),
        ((1, 17, 16), 16, -1),  # tile sizes 16 and 17
        ((2, 3, 3, 96), 32, -1),  # Keras's default groups
    ],
)
def test_against_float64_reference(rng, shape, groups, axis):
    x = (rng.standard_normal(shape) * 3 + 50).astype(F32)  # an offset the variance must survive
    c = shape[axis]
    gamma = rng.standard_normal(c).astype(F32)
    beta = rng.standard_normal(c).astype(F32)
    layer = L.GroupNormalization(groups, axis=axis, epsilon=1e-5)
    layer.build(shape)
    layer.set_weights([gamma, beta])
    got = layer(x)
    want = _reference(x, gamma.astype(np.float64), beta.astype(np.float64), groups, axis, 1e-5)
    # (x - mean) is exact in float32 up to one rounding, then two products and a sum: a few
    # float32 ulps of the output, with some cancellation against beta
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * max(1.0, np.abs(gamma).max()))


@pytest.mark.skipif(NUMPY_ONLY, reason="NumPy-only run requested")
@pytest.mark.parametrize("shape,groups,axis,affine,splits", [
    ((1, 1, 1, 5), 5, -1, True, False),  # one value per group
    ((2, 255, 6), 3, -1, True, False),  # pixels around the C++ driver's 256-pixel chunks
    ((2, 256, 6), 2, -1, False, False),
    ((3, 257, 7), 7, -1, True, False),
    ((1, 9, 57, 32), 32, -1, True, False),  # 513 pixels, one channel per group
    ((2, 12, 5, 7), 4, 1, True, False),  # channels first: moved last and back
    ((4, 13), 1, 1, False, False),
    ((1, 2048, 32), 4, -1, True, True),  # large enough to be split over threads
    ((4, 64, 64, 32), 8, -1, False, True),
])
def test_cpp_path_matches_numpy_and_threads_agree(rng, shape, groups, axis, affine, splits):
    """The C++ driver (csrc/ops/group_norm.cpp) against the NumPy path, with an offset mean;
    the same bits for 1, 2 and 3 threads (fixed chunks merged in a fixed order). The cases
    marked ``splits`` do run on several threads (their parallel regions are counted)."""
    x = (rng.standard_normal(shape) * 2 + 30).astype(F32)
    layer = L.GroupNormalization(groups, axis=axis, center=affine, scale=affine)
    layer.build(shape)
    if affine:
        c = shape[axis]
        layer.set_weights([rng.standard_normal(c).astype(F32), rng.standard_normal(c).astype(F32)])
    with fl.use_backend("numpy"):
        want = layer(x)
    old = fl.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 3):
            fl.set_num_threads(threads)
            with fl.use_backend("cpp"), parallel_regions() as regions:
                outs.append(layer(x))
            assert regions() > 0 or not (splits and threads > 1), f"{threads} threads: no split"
    finally:
        fl.set_num_threads(old)
    assert_close(outs[0], want, k=x.size // x.shape[0], magnitude=8.0)
    for got in outs[1:]:
        assert np.array_equal(got, outs[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [0.1, 3.0, 12345.678, -2e36])
def test_a_constant_group_gives_beta(backend, value):
    """A constant group's mean is that constant exactly (sums in double, rounded once), so its
    output is beta; a float32 sum of the group drifted (0.94 for 256 values of 12345.678) and
    overflowed for 2e36."""
    layer = L.GroupNormalization(4, epsilon=1e-3)
    x = np.full((2, 300, 8), value, F32)
    layer.build(x.shape)
    beta = np.arange(8, dtype=F32)
    layer.set_weights([np.full(8, 2.0, F32), beta])
    with fl.use_backend(backend):
        np.testing.assert_array_equal(layer(x), np.broadcast_to(beta, x.shape))


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_offset_small_spread(rng, backend):
    x = (1e4 + 1e-2 * rng.standard_normal((2, 700, 6))).astype(F32)
    layer = L.GroupNormalization(3, epsilon=0.0, center=False, scale=False)
    with fl.use_backend(backend):
        got = layer(x)
    want = _reference(x, None, None, 3, -1, 0.0)
    # x - mean is rounded once (the mean as hi + lo floats): a float32 mean was up to half a
    # float32 step at 1e4 (about 5e-4, 5 % of the spread) off, and every output with it.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [1e-19, 1e20, 1e30, 2e38])
def test_extreme_spreads(rng, backend, scale):
    """The variance and 1 / sqrt(var + epsilon) in double: a float32 variance overflowed for
    deviations above ~1.8e19 (the output was beta), and squares of 1e-19 are below FLT_MIN.
    Near float32's max, 1 / sqrt(var) is below FLT_MIN, and the C++ path multiplies in double
    (FTZ flushed the float factor: all zeros; a review)."""
    x = (scale * np.clip(rng.standard_normal((2, 40, 6)), -1.5, 1.5)).astype(F32)
    layer = L.GroupNormalization(3, epsilon=0.0, center=False, scale=False)
    with fl.use_backend(backend):
        got = layer(x)
    want = _reference(x, None, None, 3, -1, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_gamma_at_large_spreads(rng, backend):
    """1 / sqrt(var) a normal float but its product with a small gamma a denormal: the C++
    path's float32 factor was flushed to zero (FTZ) and the output was beta. Multiplied in
    double now."""
    x = (1e36 * np.clip(rng.standard_normal((2, 40, 6)), -1.5, 1.5)).astype(F32)
    layer = L.GroupNormalization(3, epsilon=1e-3)
    layer.build(x.shape)
    gamma = np.array([1.0, 1e-4, 2.0, -3e-5, 0.5, 1e-30], F32)
    beta = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 0.0], F32)  # (gamma 1e-30: ~1e-30 out)
    layer.set_weights([gamma, beta])
    with fl.use_backend(backend):
        got = layer(x)
    want = _reference(x, gamma, beta, 3, -1, 1e-3)
    assert np.all(got[..., [1, 3, 5]] != beta[[1, 3, 5]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-35)
    x[0, 0, 0] = np.nan  # a NaN sample next to it: the NumPy path's check was for all samples
    with fl.use_backend(backend):
        got = layer(x)
    assert np.isnan(got[0, :, :2]).all()
    np.testing.assert_allclose(got[1], _reference(x, gamma, beta, 3, -1, 1e-3)[1], rtol=1e-5,
                               atol=1e-35)


@pytest.mark.skipif(NUMPY_ONLY, reason="NumPy-only run requested")
def test_core_group_norm_rejects_bad_arguments():
    from fastlayers import _backend

    core = _backend._core
    x = np.ones((2, 5, 6), np.float32)
    with pytest.raises(ValueError, match=r"groups \(4\) must divide the number of channels"):
        core.group_norm_nhwc(x, None, None, 4, 1e-3)
    with pytest.raises(ValueError, match="groups"):
        core.group_norm_nhwc(x, None, None, 0, 1e-3)
    with pytest.raises(ValueError, match="epsilon"):
        core.group_norm_nhwc(x, None, None, 2, -1.0)
    with pytest.raises(ValueError, match="gamma"):
        core.group_norm_nhwc(x, np.ones(5, np.float32), None, 2, 1e-3)
    with pytest.raises(ValueError, match="ndim"):
        core.group_norm_nhwc(x[0], None, None, 2, 1e-3)
    with pytest.raises(ValueError, match="C-contiguous"):
        core.group_norm_nhwc(np.ones((2, 5, 12), np.float32)[..., ::2], None, None, 2, 1e-3)
    with pytest.raises(TypeError, match="float32"):
        core.group_norm_nhwc(x.astype(np.float64), None, None, 2, 1e-3)
    assert core.group_norm_nhwc(np.ones((0, 5, 6), np.float32), None, None, 2, 1e-3).shape == (
        0, 5, 6)


def test_groups_minus_one_becomes_the_channel_count_and_round_trips(rng):
    layer = L.GroupNormalization(-1, center=False)
    x = rng.standard_normal((2, 4, 6)).astype(F32)
    y = layer(x)
    assert layer.groups == 6 and layer.get_config()["groups"] == 6
    assert [w.shape for w in layer.get_weights()] == [(6,)]
    again = L.GroupNormalization.from_config(layer.get_config())
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x), y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(layer))(x), y)
    # Instance normalization: every (sample, channel) has mean 0 over the steps.
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-6)


def test_empty_batch_and_masks_pass_through(rng):
    layer = L.GroupNormalization(2)
    y = layer(np.zeros((0, 3, 4), F32))
    assert y.shape == (0, 3, 4) and y.dtype == F32
    mask = rng.random((2, 3)) < 0.5
    np.testing.assert_array_equal(layer.compute_mask(np.ones((2, 3, 4), F32), mask), mask)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["groupnorm_convnet", "groupnorm_sequence"])
def test_model_built_in_code_with_keras_weights(case, backend):
    if case == "groupnorm_convnet":
        inp = Input(shape=(7, 6, 3), name="image")
        h = L.Conv2D(8, 3, padding="same")(inp)
        h = L.Activation("silu")(L.GroupNormalization(groups=4)(h))
        h = L.Conv2D(6, 3, strides=2, padding="same")(h)
        h = L.GroupNormalization(groups=-1, epsilon=1e-5, center=False)(h)
        h = L.GlobalAveragePooling2D()(L.Activation("relu")(h))
        mdl = Model(inp, L.Dense(3, activation="softmax")(h))
    else:
        mdl = Sequential([
            Input(shape=(9, 4)),
            L.Conv1D(6, 3, padding="same"),
            L.GroupNormalization(groups=2, scale=False),
            L.Dense(5),
            L.GroupNormalization(groups=1),
        ])
    mdl.set_weights(golden(case, "weights"))
    with fl.use_backend(backend):
        assert_keras_outputs(case, mdl.predict(golden(case, "inputs")[0]))


def test_symbolic_definition_does_not_run_the_layer(monkeypatch):
    inp = Input(shape=(4096, 4096, 8))
    layer = L.GroupNormalization(4)
    monkeypatch.setattr(L.GroupNormalization, "call", lambda *a, **k: 1 / 0)
    out = layer(inp)
    assert out.shape == (None, 4096, 4096, 8) and layer.built
    assert [w.shape for w in layer.get_weights()] == [(8,), (8,)]


def test_unknown_sizes():
    inp = Input(shape=(None, None, 6))
    out = L.GroupNormalization(3)(inp)
    assert out.shape == (None, None, None, 6)
    mdl = Model(inp, out)
    assert mdl(np.ones((1, 2, 5, 6), F32)).shape == (1, 2, 5, 6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="groups must be a positive integer, or -1"):
        L.GroupNormalization(0)
    with pytest.raises(ValueError, match="groups must be a positive integer, or -1"):
        L.GroupNormalization(-2)
    with pytest.raises(TypeError, match="groups must be an int"):
        L.GroupNormalization(2.0)
    with pytest.raises(TypeError, match="groups must be an int"):
        L.GroupNormalization(True)
    with pytest.raises(ValueError, match="epsilon"):
        L.GroupNormalization(2, epsilon=-1.0)
    x = np.ones((2, 3, 6), F32)
    with pytest.raises(ValueError, match=r"groups \(4\) must divide the number of channels \(6\)"):
        L.GroupNormalization(4)(x)
    with pytest.raises(ValueError, match=r"groups \(8\) must divide"):
        L.GroupNormalization(8)(x)
    with pytest.raises(ValueError, match="batch axis"):
        L.GroupNormalization(1, axis=0)(x)
    with pytest.raises(ValueError, match="batch axis"):
        L.GroupNormalization(1, axis=-3)(x)
    with pytest.raises(ValueError, match="out of range"):
        L.GroupNormalization(1, axis=3)(x)
    with pytest.raises(ValueError, match="rank >= 2"):
        L.GroupNormalization(1)(np.ones(6, F32))
    with pytest.raises(TypeError):
        L.GroupNormalization(1)(np.array(["a", "b"]).reshape(1, 2))
    layer = L.GroupNormalization(3)
    layer(x)
    with pytest.raises(ValueError, match="9 channels on axis -1, the layer was built for 6"):
        layer(np.ones((2, 3, 9), F32))
    plain = L.GroupNormalization(-1, center=False, scale=False)  # no weights to compare with
    plain(np.ones((2, 4), F32))
    with pytest.raises(ValueError, match="8 channels on axis -1, the layer was built for 4"):
        plain(np.ones((2, 8), F32))
    with pytest.raises(ValueError, match="known size"):
        L.GroupNormalization(2).build((2, 3, None))
