"""Conv2DTranspose (and fl.conv2d_transpose), UpSampling1D and UpSampling2D: Keras fixtures at
edge shapes on both paths, float64 references written from the rule, PyTorch's own
conv_transpose2d and interpolate, models built in code with Keras's weights, symbolic use, and
bad arguments. Also the conv layers' channels_first row activations (Keras applies them along
the width).

Fixtures: tests/golden/decoder_layers.npz and models_decoder.npz (with the model files, which
tests/test_load_keras.py loads), made by tests/golden/make_models_decoder.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close, backends_for
from golden_models import assert_keras_outputs, golden, read_layer_cases

import fastlayers as fl
from fastlayers import Input, Model, Sequential
from fastlayers import layers as L

F32 = np.float32
BACKENDS = backends_for("conv2d_transpose")


LAYER_CASES = read_layer_cases("decoder_layers.npz")


# ------------------------------------------------------------------- Keras layer fixtures


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    meta, x, weights, _, y = LAYER_CASES[case]
    layer = getattr(L, meta["class_name"])(**meta["config"])
    if weights:
        layer.set_weights(weights)
    with fl.use_backend(backend):
        got = layer(x)
    k = max([1] + [math.prod(w.shape) // w.shape[-2] for w in weights if w.ndim == 4])
    assert_close(got, y, k=k, magnitude=float(np.abs(x).max()) + 1.0)
    if meta["class_name"] == "Conv2DTranspose" and backend == "cpp":
        assert layer._packed is not None  # packed once, used by the C++ path


def test_fixture_cases_cover_the_edges():
    names = set(LAYER_CASES)
    assert {"ct_1x1_input", "ct_1ch_prime", "ct_17ch", "ct_outpad_same", "ct_dilated_same",
            "ct_channels_first_softmax", "up2_bilinear_1px", "up1_size3_len1", "ct1_len1_k1",
            "ct1_channels_first_softmax"} <= names
    classes = {m["class_name"] for m, *_ in LAYER_CASES.values()}
    assert {"Conv2DTranspose", "Conv1DTranspose", "UpSampling2D", "UpSampling1D",
            "Conv2D"} <= classes


# ----------------------------------------------------------- the rule, written as loops


def _naive_transpose(x, kernel, bias, strides, padding, output_padding, dilation):
    """float64 loops over every input pixel and tap, with the output size and offset from
    Keras's rule (independent of fastlayers' geometry code)."""
    n, h, w, c = x.shape
    kh, kw, f, _ = kernel.shape

    def axis(size, k, s, d, op):
        ke = (k - 1) * d + 1
        if padding == "valid":
            return (size - 1) * s + ke + (max(ke, s) - ke if op is None else op), 0
        total = s + ke - 2 if op is None else ke + ke % 2 - 2 + op
        before = min((total + 1) // 2, ke - 1)
        return (size * s if op is None else (size - 1) * s + ke % 2 + op), ke - 1 - before

    ops = (None, None) if output_padding is None else output_padding
    oh, top = axis(h, kh, strides[0], dilation[0], ops[0])
    ow, left = axis(w, kw, strides[1], dilation[1], ops[1])
    y = np.zeros((n, oh, ow, f))
    xd, kd = x.astype(np.float64), kernel.astype(np.float64)
    for i, j, a, b in itertools.product(range(h), range(w), range(kh), range(kw)):
        r = i * strides[0] + a * dilation[0] - top
        q = j * strides[1] + b * dilation[1] - left
        if 0 <= r < oh and 0 <= q < ow:
            y[:, r, q] += xd[:, i, j] @ kd[a, b].T
    return y + (0.0 if bias is None else bias)


GRID = [
    # (input (N, H, W, C), kernel (kh, kw), filters, strides, padding, output_padding, dilation)
    ((1, 1, 1, 1), (1, 1), 1, (1, 1), "valid", None, (1, 1)),
    ((2, 5, 7, 3), (3, 3), 4, (2, 2), "same", None, (1, 1)),
    ((1, 7, 5, 2), (4, 4), 3, (2, 2), "same", None, (1, 1)),
    ((1, 3, 11, 5), (2, 3), 2, (3, 2), "valid", (2, 1), (1, 1)),
    ((2, 4, 4, 1), (5, 5), 1, (3, 3), "same", (0, 2), (1, 1)),
    ((1, 6, 5, 4), (3, 2), 3, (1, 1), "same", None, (2, 3)),
    ((1, 2, 3, 2), (3, 3), 2, (1, 1), "valid", (0, 0), (3, 1)),
    ((1, 13, 1, 3), (1, 3), 5, (2, 1), "same", (1, 0), (1, 1)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, ksize, f, strides, padding, op, dil", GRID)
def test_op_matches_the_rule(shape, ksize, f, strides, padding, op, dil, backend, rng):
    x = rng.standard_normal(shape).astype(F32)
    kernel = rng.standard_normal((*ksize, f, shape[3])).astype(F32)
    bias = rng.standard_normal(f).astype(F32)
    want = _naive_transpose(x, kernel, bias, strides, padding, op, dil)
    with fl.use_backend(backend):
        got = fl.conv2d_transpose(x, kernel, bias, strides=strides, padding=padding,
                                  output_padding=op, dilation_rate=dil)
    assert_close(got, want, k=ksize[0] * ksize[1] * shape[3], magnitude=4.0)


@pytest.mark.skipif(NUMPY_ONLY, reason="NumPy-only run requested")
@pytest.mark.parametrize("shape, ksize, strides, op", [
    ((1, 2, 3, 2), (2, 2), (2, 2), 0),
    ((2, 3, 5, 3), (4, 3), (4, 3), 0),
    ((1, 4, 6, 3), (4, 4), (4, 4), 1),
    ((1, 5, 2, 4), (3, 2), (3, 5), 0),
])
def test_phases_that_start_inside_the_input(shape, ksize, strides, op, rng, monkeypatch):
    """Keras's "same" offset with an explicit output_padding can put a phase's first output
    row one row past its convolution's first row: the C++ path then reads x from that row on
    (a copy of x without it). Each case reaches that branch (the spans are recorded)."""
    from fastlayers._cpp import conv2d as cpp_conv2d

    spans = []
    real = cpp_conv2d._phase_span

    def record(*args):
        spans.append(real(*args))
        return spans[-1]

    monkeypatch.setattr(cpp_conv2d, "_phase_span", record)
    x = rng.standard_normal(shape).astype(F32)
    kernel = rng.standard_normal((*ksize, 5, shape[3])).astype(F32)
    bias = rng.standard_normal(5).astype(F32)
    with fl.use_backend("cpp"):
        got = fl.conv2d_transpose(x, kernel, bias, strides=strides, padding="same",
                                  output_padding=op, activation="tanh")
    assert max(span[3] for span in spans if span is not None) > 0
    want = np.tanh(_naive_transpose(x, kernel, bias, strides, "same", (op, op), (1, 1)))
    assert_close(got, want, k=ksize[0] * ksize[1] * shape[3], magnitude=4.0)


@pytest.mark.skipif(NUMPY_ONLY, reason="NumPy-only run requested")
@pytest.mark.parametrize("c, f", [(1, 1), (7, 5), (16, 15), (17, 16), (16, 17), (33, 31)])
def test_paths_agree_at_gemm_tile_edges(c, f, rng):
    """Channels and kh*kw*filters columns around the GEMM tiles (16 floats a vector); the C++
    layer (packed once), the C++ op (raw kernel) and NumPy agree, and the two C++ calls give
    the same bits."""
    x = rng.standard_normal((3, 6, 5, c)).astype(F32)
    layer = L.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu", seed=1)
    layer.build(x.shape)
    kernel, bias = layer.get_weights()
    with fl.use_backend("cpp"):
        packed = layer(x)
        raw = fl.conv2d_transpose(x, kernel, bias, strides=2, padding="same", activation="relu")
    with fl.use_backend("numpy"):
        ref = layer(x)
    np.testing.assert_array_equal(packed, raw)
    assert_close(packed, ref, k=9 * c)
    assert_close(ref, np.maximum(_naive_transpose(x, kernel, bias, (2, 2), "same", None, (1, 1)),
                                 0), k=9 * c)


@pytest.mark.skipif(NUMPY_ONLY, reason="NumPy-only run requested")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, ksize, f, padding, op, rows", [
    ((2, 5, 7, 3), (2, 2), 4, "valid", None, True),     # U-Net's 2x2 stride 2
    ((1, 3, 4, 16), (2, 2), 17, "same", None, True),    # kw * F = 34 columns
    ((1, 4, 3, 5), (2, 3), 16, "valid", None, True),    # kw * F = 48, a rectangle
    ((3, 1, 1, 2), (3, 3), 1, "same", None, True),      # 1 pixel, 1 filter
    ((1, 13, 11, 7), (1, 1), 5, "valid", None, True),   # 1x1 stride 1: plain 1x1 conv
    ((2, 4, 5, 3), (2, 2), 3, "valid", (1, 0), False),  # output_padding: phases
    ((1, 4, 5, 3), (2, 2), 3, "same", (0, 1), False),   # an offset: phases
])
def test_kernel_equal_to_strides_writes_whole_rows(shape, ksize, f, padding, op, rows, threads,
                                                   rng):
    """With kernel == strides (and no offset or output_padding) the layer packs RowBlocks: one
    1x1 GEMM per kernel row writing whole output rows in place. Each phase (ry, rx) of the
    result has the bits of core.conv2d on x with that tap; the rule (float64 loops) agrees; a
    layer packed once gives the raw op's bits; otherwise the phases run."""
    from fastlayers import _backend
    from fastlayers._cpp.conv2d import RowBlocks

    x = rng.standard_normal(shape).astype(F32)
    kernel = rng.standard_normal((*ksize, f, shape[3])).astype(F32)
    bias = rng.standard_normal(f).astype(F32)
    layer = L.Conv2DTranspose(f, ksize, strides=ksize, padding=padding, output_padding=op,
                              activation="tanh")
    layer.build(shape)
    layer.set_weights([kernel, bias])
    old = fl.get_num_threads()
    try:
        fl.set_num_threads(threads)
        with fl.use_backend("cpp"):
            got = layer(x)
            raw = fl.conv2d_transpose(x, kernel, bias, strides=ksize, padding=padding,
                                      output_padding=op, activation="tanh")
    finally:
        fl.set_num_threads(old)
    assert isinstance(layer._packed, RowBlocks)
    np.testing.assert_array_equal(got, raw)
    want = np.tanh(_naive_transpose(x, kernel, bias, ksize, padding, op, (1, 1)))
    assert_close(got, want, k=shape[3], magnitude=4.0)
    if rows:
        tanh = _backend.cpp_activation_ids()["tanh"]
        for ry, rx in itertools.product(range(ksize[0]), range(ksize[1])):
            tap = np.ascontiguousarray(kernel[ry, rx].T[None, None])  # (1, 1, C, F)
            phase = _backend._core.conv2d(x, tap, bias, (1, 1), (1, 1), (0, 0, 0, 0), 1, tanh)
            np.testing.assert_array_equal(got[:, ry::ksize[0], rx::ksize[1]], phase)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, s, op, d", [(3, 2, 1, 1), (2, 2, 0, 1), (4, 3, 2, 1),
                                         (3, 1, 0, 2), (1, 2, 1, 1)])
def test_matches_torch_conv_transpose2d(k, s, op, d, backend, rng):
    """PyTorch's own conv_transpose2d (padding 0) is Keras's "valid" with that output_padding;
    its weight (in, out, kh, kw) is the Keras kernel transposed."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 5, 4, 3)).astype(F32)
    kernel = rng.standard_normal((k, k, 6, 3)).astype(F32)
    bias = rng.standard_normal(6).astype(F32)
    want = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
        torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()),
        torch.from_numpy(bias), stride=s, output_padding=op, dilation=d,
    ).numpy().transpose(0, 2, 3, 1)
    with fl.use_backend(backend):
        got = fl.conv2d_transpose(x, kernel, bias, strides=s, output_padding=op, dilation_rate=d)
    assert_close(got, want, k=k * k * 3, magnitude=4.0)


def test_valid_without_output_padding_covers_a_stride_larger_than_the_kernel(rng):
    """Keras's "valid" output is (H - 1)*s + max(k, s): with k < s the last s - k rows get
    no tap, only the bias."""
    x = rng.standard_normal((1, 3, 2, 2)).astype(F32)
    y = fl.conv2d_transpose(x, np.ones((1, 1, 1, 2), F32), np.array([7.0], F32), strides=3)
    assert y.shape == (1, 9, 6, 1)
    hit = np.zeros((9, 6), bool)
    hit[::3, ::3] = True
    np.testing.assert_array_equal(y[0, ~hit, 0], 7.0)
    assert_close(y[0, ::3, ::3, 0], x.sum(-1)[0] + 7.0)


# ---------------------------------------------------------------------------- UpSampling


@pytest.mark.parametrize("size", [(2, 2), (1, 3), (4, 1), (3, 5)])
@pytest.mark.parametrize("shape", [(2, 4, 5, 3), (1, 1, 1, 2), (1, 7, 2, 1)])
def test_bilinear_matches_torch_interpolate(size, shape, rng, any_backend):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(F32)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), scale_factor=size, mode="bilinear",
        align_corners=False,
    ).numpy().transpose(0, 2, 3, 1)
    got = L.UpSampling2D(size, interpolation="bilinear")(x)
    assert_close(got, want, magnitude=2.0)


def test_nearest_repeats_each_pixel(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    got = L.UpSampling2D((2, 3))(x)
    np.testing.assert_array_equal(got, x.repeat(2, axis=1).repeat(3, axis=2))
    np.testing.assert_array_equal(L.UpSampling1D(4)(x[:, 0]), x[:, 0].repeat(4, axis=1))
    # channels_first is the same on the transposed layout
    cf = L.UpSampling2D((2, 3), data_format="channels_first")(x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(cf, got.transpose(0, 3, 1, 2))


def test_bilinear_keeps_constants_and_interpolates_a_ramp(any_backend):
    """Interpolation weights sum to 1 (a constant stays exact), and the clamped edges repeat
    the border value."""
    x = np.full((1, 3, 4, 2), 0.3, F32)
    np.testing.assert_array_equal(L.UpSampling2D(3, interpolation="bilinear")(x), F32(0.3))
    ramp = np.arange(4, dtype=F32).reshape(1, 1, 4, 1)
    y = L.UpSampling2D((1, 2), interpolation="bilinear")(ramp)[0, 0, :, 0]
    np.testing.assert_allclose(y, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3], rtol=1e-6)


# ------------------------------------------------------------------------------- models


def _code_model(case):
    if case == "decoder_unet":
        inp = Input(shape=(8, 12, 3), name="image")
        d1 = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
        d2 = L.Conv2D(6, 3, padding="same", activation="relu")(L.MaxPooling2D(2)(d1))
        b = L.Conv2D(8, 3, padding="same", activation="relu")(L.MaxPooling2D(2)(d2))
        u2 = L.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(b)
        u1 = L.UpSampling2D(2, interpolation="bilinear")(L.Concatenate()([u2, d2]))
        h = L.Conv2D(4, 3, padding="same", activation="relu")(L.Concatenate()([u1, d1]))
        return Model(inp, L.Conv2D(2, 1, activation="softmax")(h))
    return Sequential(
        [
            Input(shape=(6, 6, 2)),
            L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            L.Flatten(),
            L.Dense(3 * 3 * 5, activation="relu"),
            L.Reshape((3, 3, 5)),
            L.Conv2DTranspose(4, 3, strides=2, output_padding=1, activation="tanh"),
            L.Conv2DTranspose(3, 2, dilation_rate=2, padding="same"),
            L.UpSampling2D((1, 2)),
            L.Conv2DTranspose(2, (2, 3), strides=(2, 1), padding="valid", use_bias=False),
            L.Reshape((-1, 2)),
            L.UpSampling1D(2),
        ]
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["decoder_unet", "decoder_autoencoder"])
def test_model_built_in_code_with_keras_weights(case, backend):
    mdl = _code_model(case)
    mdl.set_weights(golden(case, "weights"))
    with fl.use_backend(backend):
        assert_keras_outputs(case, mdl.predict(golden(case, "inputs")[0]))
        assert_keras_outputs(case, mdl(golden(case, "inputs")[0]))  # the shape plan's run


def test_symbolic_shapes_with_unknown_sizes(rng):
    inp = Input(shape=(None, None, 3))
    h = L.Conv2DTranspose(4, 3, strides=2, padding="same", seed=1)(inp)
    h = L.UpSampling2D((1, 3), interpolation="bilinear")(h)
    out = fl.conv2d_transpose(h, np.ones((2, 2, 5, 4), F32), strides=2)
    assert h.shape == (None, None, None, 4) and out.shape == (None, None, None, 5)
    mdl = Model(inp, out)
    x = rng.standard_normal((2, 3, 4, 3)).astype(F32)
    assert mdl(x).shape == (2, 12, 48, 5)
    assert mdl(x[:1, :1, :2]).shape == (1, 4, 24, 5)


@pytest.mark.parametrize("layer", [
    L.Conv2DTranspose(3, (2, 3), strides=(2, 1), padding="same", output_padding=(1, 0),
                      dilation_rate=1, activation="relu", use_bias=False, seed=3),
    L.Conv1DTranspose(3, 4, strides=3, padding="same", output_padding=1, activation="tanh",
                      data_format="channels_first", seed=3),
    L.UpSampling2D((2, 3), data_format="channels_first", interpolation="bilinear"),
    L.UpSampling1D(3),
])
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_keras_config_values_are_read():
    from fastlayers.io.keras_config import Unsupported, make_layer

    layer = make_layer({"class_name": "Conv2DTranspose", "config": {
        "name": "up", "filters": 3, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same",
        "output_padding": [1, 1], "data_format": "channels_last", "dilation_rate": [1, 1],
        "activation": "linear", "use_bias": True, "kernel_regularizer": None}})
    assert (layer.strides, layer.output_padding, layer.padding) == ((2, 2), (1, 1), "same")
    layer = make_layer({"class_name": "UpSampling2D", "config": {
        "name": "u", "size": [2, 2], "interpolation": "bilinear", "data_format": "channels_last"}})
    assert layer.interpolation == "bilinear"
    with pytest.raises(Unsupported, match="lanczos3"):
        make_layer({"class_name": "UpSampling2D", "config": {"interpolation": "lanczos3"}})


# ------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("make, error, match", [
    (lambda: L.Conv2DTranspose(0, 3), ValueError, "filters"),
    (lambda: L.Conv2DTranspose(2, 3, padding="causal"), ValueError, "padding"),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError, "output_padding"),
    (lambda: L.Conv2DTranspose(2, 3, output_padding=-1), ValueError, "output_padding"),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), ValueError, "dilation_rate"),
    (lambda: L.Conv2DTranspose(4, 3, groups=3), ValueError, "groups must be >= 1 and divide"),
    (lambda: L.Conv2DTranspose(4, 3, groups=2.0), TypeError, "groups must be an int"),
    (lambda: L.Conv3DTranspose(4, 3, groups=2), ValueError, "and 1 in 3D"),
    (lambda: L.Conv1DTranspose(2, (3, 3)), ValueError, "kernel_size"),
    (lambda: L.Conv1DTranspose(2, 3, strides=2, output_padding=2), ValueError, "output_padding"),
    (lambda: L.Conv1DTranspose(2, 3, strides=2, dilation_rate=2), ValueError, "dilation_rate"),
    (lambda: L.UpSampling2D(0), ValueError, "size"),
    (lambda: L.UpSampling2D((2, 2, 2)), ValueError, "size"),
    (lambda: L.UpSampling2D(interpolation="bicubic"), NotImplementedError, "bicubic"),
    (lambda: L.UpSampling2D(interpolation="bogus"), ValueError, "unknown"),
    (lambda: L.UpSampling2D(interpolation=3), TypeError, "interpolation"),
    (lambda: L.UpSampling1D(2.5), TypeError, "size"),
])
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_attribute_assignment_is_refused():
    layer = L.Conv2DTranspose(2, 3, strides=2)
    with pytest.raises(ValueError, match="output_padding"):
        layer.output_padding = (2, 2)
    assert layer.output_padding is None
    up = L.UpSampling2D()
    up.size = 3
    assert up.size == (3, 3)


def test_strides_assigned_after_build_take_effect(rng, any_backend):
    """The C++ path packs one kernel per stride phase: a new stride repacks them."""
    x = rng.standard_normal((1, 3, 4, 2)).astype(F32)
    layer = L.Conv2DTranspose(3, 3, strides=2, padding="same", seed=2)
    assert layer(x).shape == (1, 6, 8, 3)
    layer.strides = 3
    kernel, bias = layer.get_weights()
    want = _naive_transpose(x, kernel, bias, (3, 3), "same", None, (1, 1))
    assert_close(layer(x), want, k=18, magnitude=4.0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: fl.conv2d_transpose(np.ones((3, 3, 2)), np.ones((3, 3, 4, 2))), ValueError, "rank"),
    (lambda: fl.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4, 3))), ValueError,
     "in_channels"),
    (lambda: fl.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4))), ValueError, "rank"),
    (lambda: fl.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4, 2)), np.ones(3)),
     ValueError, "bias"),
    (lambda: fl.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4, 2)), padding=3),
     TypeError, "padding"),
    (lambda: fl.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4, 2)), strides=2**30),
     ValueError, "too large"),
    (lambda: fl.conv2d_transpose(np.ones((1, 1, 1, 2)), np.ones((2, 2, 4, 2)), padding="same",
                                 output_padding=0), ValueError, "empty"),
    (lambda: fl.conv2d_transpose(np.ones((1, 0, 3, 2)), np.ones((3, 3, 4, 2))), ValueError,
     "empty"),
    (lambda: fl.conv2d_transpose(np.ones((1, 3, 3, 2)), np.ones((3, 3, 4, 2)), activation="nope"),
     ValueError, "nope"),
    (lambda: fl.conv2d_transpose(np.array([["a"]]), np.ones((3, 3, 4, 2))), TypeError, "x"),
    (lambda: L.Conv2DTranspose(2, 3)(np.ones((1, 3, 3))), ValueError, "rank"),
    (lambda: L.UpSampling2D()(np.ones((1, 3, 3))), ValueError, "rank"),
    (lambda: L.UpSampling2D(2**20)(np.ones((1, 3, 3, 2))), ValueError, "too large"),
    (lambda: L.UpSampling1D()(np.ones((1, 3))), ValueError, "rank"),
    (lambda: L.Conv1DTranspose(2, 3)(np.ones((1, 3, 3, 1))), ValueError, "rank"),
])
def test_bad_calls(call, error, match, any_backend):
    with pytest.raises(error, match=match):
        call()


def test_conv1d_transpose_messages_use_its_own_arguments(any_backend):
    with pytest.raises(ValueError, match=r"output_padding \(1,\) and strides \(1,\)"):
        L.Conv1DTranspose(2, 3, output_padding=1)
    with pytest.raises(ValueError, match=r"strides \(2,\) and dilation_rate \(2,\)"):
        L.Conv1DTranspose(2, 3, strides=2, dilation_rate=2)
    layer = L.Conv1DTranspose(2, 3)
    layer(np.ones((1, 4, 3), F32))
    with pytest.raises(ValueError, match=r"2 channels, but the kernel \(3, 2, 3\)"):
        layer(np.ones((1, 4, 2), F32))


def test_channels_must_match_the_weights(any_backend):
    layer = L.Conv2DTranspose(2, 3)
    layer(np.ones((1, 3, 3, 4), F32))
    with pytest.raises(ValueError, match="in_channels"):
        layer(np.ones((1, 3, 3, 5), F32))


def test_empty_batch(any_backend):
    assert L.Conv2DTranspose(4, 3, strides=2)(np.ones((0, 3, 3, 2), F32)).shape == (0, 7, 7, 4)
    assert L.UpSampling2D(interpolation="bilinear")(np.ones((0, 3, 3, 2), F32)).shape == (
        0, 6, 6, 2)


# --------------------------------------- conv layers: channels_first and row activations


@pytest.mark.parametrize("make", [
    lambda act: L.Conv2D(4, 3, data_format="channels_first", activation=act, seed=1),
    lambda act: L.Conv1D(4, 3, data_format="channels_first", activation=act, seed=1),
    lambda act: L.DepthwiseConv2D(3, data_format="channels_first", activation=act, seed=1),
    lambda act: L.SeparableConv2D(4, 3, data_format="channels_first", activation=act, seed=1),
    lambda act: L.Conv2DTranspose(4, 3, data_format="channels_first", activation=act, seed=1),
])
@pytest.mark.parametrize("act", ["softmax", "log_softmax", "relu",
                                 lambda t: t / (1.0 + np.abs(t).sum(-1, keepdims=True))])
def test_channels_first_activation_acts_on_the_last_axis(make, act, rng, any_backend):
    """Keras applies the activation to the (N, F, ...) output: a row activation or callable
    runs along the width, not the filters (it ran over the filters before)."""
    layer = make(act)
    linear = type(layer).from_config({**layer.get_config(), "activation": None})
    x = rng.standard_normal((2, 4, 6, 7) if "1D" not in type(layer).__name__ else (2, 4, 7))
    x = x.astype(F32)
    got = layer(x)
    linear.set_weights(layer.get_weights())
    z = linear(x)
    if callable(act):
        want = act(z)
    elif act == "relu":
        want = np.maximum(z, 0)
    else:
        shifted = z - z.max(-1, keepdims=True)
        log = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        want = np.exp(log) if act == "softmax" else log
    assert_close(got, want, k=8, magnitude=4.0)


# ---------------------------------------------------------------- from_torch (torch extra)


def _torch_check(module, x, backend):
    """from_torch(module) against the module itself on x; returns the converted model."""
    torch = pytest.importorskip("torch")
    module.eval()
    model = fl.from_torch(module, (x,))
    with torch.no_grad():
        want = module(x).numpy()
    with fl.use_backend(backend):
        got = model(x.numpy())
    assert got.shape == want.shape and got.dtype == F32
    finite_max = np.abs(want[np.isfinite(want)]).max(initial=0.0)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * max(1.0, finite_max))
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cin, cout, k, s, p, op, d, bias", [
    (3, 4, 3, 2, 1, 1, 1, True),  # the usual x2 upsampling: H -> 2H
    (2, 5, 4, 2, 1, 0, 1, False),
    (4, 3, (3, 2), (3, 1), (0, 1), (2, 0), 1, True),
    (3, 2, 3, 1, 2, 0, 2, True),  # dilated, padding cropped
    (1, 1, 1, 1, 0, 0, 1, True),
])
def test_from_torch_conv_transpose2d(cin, cout, k, s, p, op, d, bias, backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op,
                                    dilation=d, bias=bias)
    model = _torch_check(conv, torch.randn(2, cin, 5, 7), backend)
    assert any(isinstance(layer, L.Conv2DTranspose) for layer in model.layers)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cin, cout, k, s, p, op, d", [
    (3, 4, 3, 2, 1, 1, 1), (2, 5, 4, 3, 0, 2, 1), (3, 2, 3, 1, 2, 0, 2), (1, 1, 1, 1, 0, 0, 1),
])
def test_from_torch_conv_transpose1d(cin, cout, k, s, p, op, d, backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(cin, cout, k, stride=s, padding=p, output_padding=op,
                                    dilation=d)
    model = _torch_check(conv, torch.randn(2, cin, 7), backend)
    assert any(isinstance(layer, L.Conv1DTranspose) for layer in model.layers)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank, cin, cout, k, s, p, op, d, groups, bias", [
    (2, 4, 6, 3, 2, 1, 1, 1, 2, True),  # grouped
    (2, 5, 5, 4, 2, 1, 0, 1, 5, False),  # depthwise x2 upsampling (CenterNet's IDAUp)
    (2, 6, 3, (3, 2), (3, 1), (0, 1), (2, 0), 1, 3, True),  # one output channel per group
    (2, 3, 2, 3, 2, 1, 1, 2, 1, True),  # a stride and a dilation (Keras refuses both)
    (2, 2, 3, 3, 2, 0, (2, 1), (3, 1), 1, False),  # output_padding 2: below the dilation
    (2, 7, 7, 1, 1, 0, 0, 1, 7, True),
    (1, 4, 8, 3, 2, 1, 1, 1, 4, True),
    (1, 3, 3, 4, 3, 2, 2, 2, 3, False),
])
def test_from_torch_conv_transpose_beyond_keras(rank, cin, cout, k, s, p, op, d, groups, bias,
                                                backend):
    """Groups (the transposed layers' groups extension: grouped phase convolutions), a stride
    with a dilation, and output_padding below the dilation but not the stride (the
    convolution a transposed one is the gradient of: the input dilated by zeros,
    torch_dilate_pad, then a grouped Conv), after a conv (channels-last) too."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cls = torch.nn.ConvTranspose1d if rank == 1 else torch.nn.ConvTranspose2d
    up = cls(cin, cout, k, stride=s, padding=p, output_padding=op, dilation=d, groups=groups,
             bias=bias)
    shape = (2, cin, 7) if rank == 1 else (2, cin, 5, 6)
    _torch_check(up, torch.randn(*shape), backend)
    conv = (torch.nn.Conv1d if rank == 1 else torch.nn.Conv2d)(cin, cin, 1)
    _torch_check(torch.nn.Sequential(conv, torch.nn.ReLU(), up), torch.randn(*shape), backend)


def test_from_torch_depthwise_bilinear_upsampling():
    """CenterNet's IDAUp: a depthwise ConvTranspose2d(o, o, 2f, stride f, padding f // 2,
    groups o) whose kernel is fixed to bilinear interpolation (fill_up_weights), with an
    output_size as U-Nets pass to match a skip connection."""
    torch = pytest.importorskip("torch")
    import math

    from test_from_torch import check

    class Up(torch.nn.Module):
        def __init__(self, o, f):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(o, o, f * 2, stride=f, padding=f // 2,
                                               output_padding=0, groups=o, bias=False)
            w = self.up.weight.data
            c = math.ceil(w.size(2) / 2)
            c0 = (2 * c - 1 - c % 2) / (2. * c)
            for i in range(w.size(2)):
                for j in range(w.size(3)):
                    w[0, 0, i, j] = (1 - abs(i / c - c0)) * (1 - abs(j / c - c0))
            for ch in range(1, w.size(0)):
                w[ch, 0] = w[0, 0]

        def forward(self, x, skip):
            return self.up(x, output_size=skip.size()) + skip

    x = torch.randn(2, 16, 5, 7)
    for f in (2, 4):
        check(Up(16, f), x, torch.randn(2, 16, 5 * f, 7 * f))


def test_from_torch_conv_transpose_output_size_takes_pytorchs_rule():
    """With output_size PyTorch allows output_padding below the stride only (the dilation
    does not widen it, as it does for the module's own output_padding)."""
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(2, 2, 3, stride=1, dilation=3)

        def forward(self, x):
            return self.up(x, output_size=(12, 12))

    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError):
        M()(x)
    with pytest.raises(TorchConversionError, match="output_size"):
        fl.from_torch(M(), (x,))


def test_from_torch_grouped_conv_transpose3d_is_refused():
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    with pytest.raises(TorchConversionError, match="groups=2"):
        fl.from_torch(torch.nn.ConvTranspose3d(4, 4, 3, groups=2), (torch.randn(1, 4, 3, 3, 3),))


def _decoder_module(torch):
    """ConvTranspose2d, nn.Upsample (bilinear), F.interpolate (nearest), a Conv2d."""

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(3, 4, 2, stride=2)
            self.resize = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.out = torch.nn.Conv2d(4, 2, 3, padding=1)

        def forward(self, x):
            h = torch.relu(self.up(x))
            h = self.resize(h)
            h = torch.nn.functional.interpolate(h, scale_factor=(1, 3), mode="nearest")
            return self.out(h)

    return Decoder()


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_torch_decoder(backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    model = _torch_check(_decoder_module(torch), torch.randn(2, 3, 3, 4), backend)
    assert sum(isinstance(layer, L.UpSampling2D) for layer in model.layers) == 2


@pytest.mark.parametrize("make, match", [
    (lambda nn: nn.Upsample(scale_factor=1.5, mode="bilinear"), "scale_factor=1.5"),
    (lambda nn: nn.Upsample(scale_factor=(2, 2, 2), mode="trilinear"), "mode='trilinear'"),
    (lambda nn: nn.Upsample(scale_factor=2, mode="nearest", align_corners=True),
     "align_corners=True with mode='nearest'"),  # (bilinear's converts)
])
def test_from_torch_refuses_what_it_cannot_convert(make, match):
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    with pytest.raises(TorchConversionError, match=match):
        fl.from_torch(make(torch.nn), (torch.randn(1, 4, 3, 3),))


def test_from_torch_upsample_to_a_size(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rng.standard_normal((1, 2, 3, 4)).astype(F32))
    _torch_check(torch.nn.Upsample(size=(6, 12)), x, "numpy")
    # (off whole factors PyTorch's legacy nearest picks its own rows: converted as it picks)
    _torch_check(torch.nn.Upsample(size=(7, 12)), x, "numpy")


def test_from_torch_conv_transpose2d_output_size(rng):
    """A call's output_size is PyTorch's way to pick the output_padding: converted to it
    (a layer per output_padding, the weights shared), or refused when Keras cannot do it."""
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    class M(torch.nn.Module):
        def __init__(self, size):
            super().__init__()
            self.size = size
            self.up = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)

        def forward(self, x):
            return self.up(x, output_size=self.size(x))

    x = torch.from_numpy(rng.standard_normal((2, 3, 5, 6)).astype(F32))
    _torch_check(M(lambda x: [x.shape[2] * 2, x.shape[3] * 2]), x, "numpy")
    _torch_check(M(lambda x: (9, 12)), x, "numpy")
    with pytest.raises(TorchConversionError, match="output_size"):
        fl.from_torch(M(lambda x: (13, 12)), (x,))
    with pytest.raises(TorchConversionError, match="output_size"):  # PyTorch takes 2 or 4
        fl.from_torch(M(lambda x: (2, 10, 12)), (x,))


def test_from_torch_conv_transpose2d_padding_that_leaves_nothing():
    torch = pytest.importorskip("torch")
    from fastlayers.io.torch_fx import TorchConversionError

    with pytest.raises(TorchConversionError, match="1 \\(ConvTranspose2d\\).*leaves no output"):
        fl.from_torch(torch.nn.Sequential(torch.nn.Identity(), torch.nn.ConvTranspose2d(
            3, 4, 3, padding=2)), (torch.randn(2, 3, 2, 2),))


@pytest.mark.parametrize("factors", [(2, 2), (3, 3), (2, 5), (4, 3)])
def test_bilinear_infinities_follow_torch(factors):
    """Factors of 2 or more on both axes: PyTorch's pattern of inf and NaN (docs/semantics.md
    §25), and its finite values to a float32 step or two."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 1)).astype(F32)
    x[0, 1, 1, 0] = np.inf
    x[0, 2, 3, 0] = -np.inf
    got = L.UpSampling2D(factors, interpolation="bilinear")(x)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), scale_factor=factors,
        mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=3e-7, atol=3e-7)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling_returns_a_new_array(interpolation):
    x = np.ones((1, 2, 2, 1), F32)
    y = L.UpSampling2D(1, interpolation=interpolation)(x)
    assert not np.shares_memory(x, y)


def test_conv1d_transpose_is_conv2d_transpose_of_height_1(rng, any_backend):
    x = rng.standard_normal((2, 9, 3)).astype(F32)
    one = L.Conv1DTranspose(4, 3, strides=2, padding="same", output_padding=1, seed=4)
    y = one(x)
    kernel, bias = one.get_weights()
    two = fl.conv2d_transpose(x[:, None], kernel[None], bias, strides=(1, 2), padding="same",
                              output_padding=(0, 1))
    np.testing.assert_array_equal(y, two[:, 0])
    one.strides = 3  # its phases are repacked for the new stride
    want = fl.conv2d_transpose(x[:, None], kernel[None], bias, strides=(1, 3), padding="same",
                               output_padding=(0, 1))
    np.testing.assert_array_equal(one(x), want[:, 0])
    assert one.get_config()["strides"] == (3,)



@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c, f, groups, k, s, padding", [
    (5, 5, 5, 4, 2, "same"),  # depthwise x2 upsampling
    (6, 9, 3, 3, 2, "valid"),
    (4, 2, 2, 2, 3, "valid"),  # a kernel smaller than the stride: rows of bias only
    (8, 8, 4, 3, 1, "same"),
    (3, 6, 3, 5, 2, "same"),
])
def test_grouped_conv2d_transpose_is_its_groups_apart(backend, c, f, groups, k, s, padding):
    """conv2d_transpose with groups (kernel (k, k, F / groups, C)) equals each group of input
    channels transposed-convolved alone with its kernel slice, the results concatenated; the
    layer and its 1-D form give the same; bias and activation after."""
    rng = np.random.default_rng(c * 10 + groups)
    x = rng.standard_normal((2, 5, 4, c)).astype(np.float32)
    kernel = rng.standard_normal((k, k, f // groups, c)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    cg = c // groups
    with fl.use_backend(backend):
        parts = [fl.conv2d_transpose(x[..., g * cg:(g + 1) * cg],
                                     kernel[..., g * cg:(g + 1) * cg], strides=s,
                                     padding=padding) for g in range(groups)]
        want = np.maximum(np.concatenate(parts, axis=-1) + bias, 0)
        got = fl.conv2d_transpose(x, kernel, bias, strides=s, padding=padding,
                                  activation="relu", groups=groups)
        layer = L.Conv2DTranspose(f, k, strides=s, padding=padding, activation="relu",
                                  groups=groups)
        layer.set_weights([kernel, bias])
        from_layer = layer(x)
        layer1 = L.Conv1DTranspose(f, k, strides=s, padding=padding, groups=groups)
        layer1.set_weights([kernel[0], bias])
        one_d = layer1(x[:, 0])
        want1 = np.concatenate(
            [fl.conv2d_transpose(x[:, :1, :, g * cg:(g + 1) * cg],
                                 kernel[:1, ..., g * cg:(g + 1) * cg], strides=(1, s),
                                 padding=padding) for g in range(groups)], axis=-1)[:, 0] + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(from_layer, got)
    np.testing.assert_allclose(one_d, want1, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="groups must be >= 1 and divide the"):
        fl.conv2d_transpose(x, kernel, strides=s, groups=c + 1)
    with pytest.raises(ValueError, match="bias"):
        fl.conv2d_transpose(x, kernel, bias[:-1], strides=s, groups=groups)
