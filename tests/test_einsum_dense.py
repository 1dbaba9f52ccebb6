"""EinsumDense: Keras fixtures (one layer per kind of equation) on both paths, a float64
reference from numpy.einsum, which equations take the GEMM, symbolic models, and bad
arguments.

Fixtures: tests/golden/einsum_dense_layers.npz and models_einsum_dense.npz (with the model
files, which tests/test_load_keras.py loads), made by tests/golden/make_models_einsum_dense.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import NUMPY_ONLY, assert_close
from golden_models import read_layer_cases, run_layer_case

import fastlayers as fl
from fastlayers import Input, Model
from fastlayers import layers as L

F32 = np.float32
BACKENDS = ["numpy"] if NUMPY_ONLY else ["numpy", "cpp"]
LAYER_CASES = read_layer_cases("einsum_dense_layers.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras(case, backend):
    got, y, x, _ = run_layer_case(LAYER_CASES, case, backend)
    assert_close(got, y, k=32, magnitude=float(np.abs(x).max()))


def test_fixture_cases_cover_the_equations():
    assert {"ed_heads_in", "ed_heads_out", "ed_left_ellipsis", "ed_right_ellipsis",
            "ed_batched_kernel", "ed_transposed_kernel", "ed_permuted_output",
            "ed_bias_on_free_axis", "ed_softmax_heads", "ed_dense_no_bias"} <= set(LAYER_CASES)


# equation, output_shape, bias_axes, input shape, whether it is a matrix product
EQUATIONS = [
    ("ab,bc->ac", 7, "c", (3, 5), True),
    ("abc,cd->abd", (None, 6), "d", (2, 4, 5), True),
    ("abc,cde->abde", (None, 3, 4), "de", (2, 5, 6), True),
    ("abc,cde->abde", (None, 3, 4), "e", (2, 5, 6), True),
    ("abcd,cde->abe", (None, 7), "e", (2, 5, 3, 4), True),
    ("...b,bc->...c", 7, "c", (2, 3, 6), True),
    ("ab...,bc->ac...", (7,), "c", (2, 6, 3, 4), False),
    ("abc,cd->abd", (4, 6), "b", (2, 4, 5), False),  # bias on a kept input axis: added after
    ("abc,cd->abd", (4, 6), "bd", (2, 4, 5), False),
    ("abc,bcd->abd", (4, 3), "d", (2, 4, 5), False),
    ("abc,dc->abd", (None, 3), None, (2, 4, 5), False),
    ("abc,cd->adb", (6, 4), "d", (2, 4, 5), False),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("equation,output_shape,bias_axes,shape,gemm", EQUATIONS)
def test_against_numpy_einsum(rng, backend, equation, output_shape, bias_axes, shape, gemm):
    layer = L.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="tanh",
                          seed=1)
    x = rng.standard_normal(shape).astype(F32)
    layer.build(shape)
    weights = layer.get_weights()
    want = np.einsum(equation, x.astype(np.float64), weights[0].astype(np.float64))
    if bias_axes:
        want = want + weights[1]
    with fl.use_backend(backend):
        got = layer(x)
    assert_close(got, np.tanh(want).astype(F32), k=8)
    folded = gemm and (bias_axes is None or bias_axes in ("c", "d", "de", "e"))
    assert (layer._packed is not None) == (folded and fl.core_available())


@pytest.mark.parametrize("backend", BACKENDS)
def test_axis_activations_run_on_the_output_axes(rng, backend):
    """softmax over the last output axis, not over the GEMM's flattened columns."""
    layer = L.EinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="e", activation="softmax")
    x = rng.standard_normal((2, 4, 5)).astype(F32)
    with fl.use_backend(backend):
        y = layer(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-6)
    linear = L.EinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="e")
    linear.set_weights(layer.get_weights())
    z = linear(x)
    want = np.exp(z - z.max(-1, keepdims=True))
    assert_close(y, (want / want.sum(-1, keepdims=True)).astype(F32), k=3)


def test_weights_shapes_follow_keras():
    layer = L.EinsumDense("abc,cde->abde", (None, 4, 5), bias_axes="de")
    layer.build((2, 3, 6))
    assert [w.shape for w in layer.get_weights()] == [(6, 4, 5), (4, 5)]
    right = L.EinsumDense("ab...,bc->ac...", (7,), bias_axes="c")
    right.build((2, 6, 3, 4))
    assert [w.shape for w in right.get_weights()] == [(6, 7), (7, 1, 1)]
    fresh = L.EinsumDense("ab...,bc->ac...", (7,), bias_axes="c")
    fresh.set_weights(right.get_weights())  # builds from the weights alone
    x = np.ones((1, 6, 3, 4), F32)
    np.testing.assert_array_equal(fresh(x), right(x))


def test_symbolic_model_and_pickle(rng):
    inp = Input((6, 8))
    heads = L.EinsumDense("abc,cde->abde", (None, 2, 4), bias_axes="de")(inp)
    out = L.EinsumDense("abcd,cde->abe", (None, 5), bias_axes="e")(heads)
    assert tuple(heads.shape) == (None, 6, 2, 4) and tuple(out.shape) == (None, 6, 5)
    model = Model(inp, out)
    x = rng.standard_normal((3, 6, 8)).astype(F32)
    y = model.predict(x)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(x), y)


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"equation": "ab->b", "output_shape": 3}, ValueError, "invalid einsum equation"),
    ({"equation": "ab,bc->ac...", "output_shape": 3}, ValueError, "invalid einsum equation"),
    ({"equation": "aab,bc->ac", "output_shape": 3}, ValueError, "repeats a letter"),
    ({"equation": "ab,bc->az", "output_shape": 3}, ValueError, "output letter 'z'"),
    ({"equation": "ab,bcz->ac", "output_shape": 3}, ValueError, "kernel letter 'z'"),
    ({"equation": "ab,bc->ac", "output_shape": 3, "bias_axes": "b"}, ValueError,
     "bias letters"),
    ({"equation": "ab,bc->ac", "output_shape": 0}, ValueError, "output_shape"),
    ({"equation": "ab,bc->ac", "output_shape": "3"}, ValueError, "output_shape"),
    ({"equation": 5, "output_shape": 3}, TypeError, "equation"),
    ({"equation": "ab,bc->ac", "output_shape": 3, "lora_rank": 4}, NotImplementedError,
     "lora_rank"),
    ({"equation": "ab,bc->ac", "output_shape": 3, "activation": "nope"}, ValueError,
     "activation"),
])
def test_bad_arguments(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        L.EinsumDense(**kwargs)


def test_bad_inputs_and_weights():
    layer = L.EinsumDense("abc,cd->abd", (None, 6), bias_axes="d")
    with pytest.raises(ValueError, match="do not fit the equation"):
        layer(np.zeros((2, 5), F32))
    layer(np.zeros((2, 3, 5), F32))
    with pytest.raises(ValueError, match="need kernel"):
        layer(np.zeros((2, 3, 4), F32))
    with pytest.raises(ValueError, match="output_shape"):
        L.EinsumDense("abc,cd->abd", (None, 6, 2))(np.zeros((2, 3, 5), F32))
    with pytest.raises(ValueError, match="does not fit the output"):
        L.EinsumDense("abc,cd->abd", (3,))(np.zeros((2, 3, 5), F32))
    with pytest.raises(ValueError, match="output_shape says"):
        L.EinsumDense("abc,cd->abd", (4, 6))(np.zeros((2, 3, 5), F32))
    with pytest.raises(ValueError, match="kernel must have 2 axes"):
        L.EinsumDense("abc,cd->abd", (None, 6)).set_weights([np.zeros((5, 6, 1), F32)])
    with pytest.raises(ValueError, match="build needs"):
        L.EinsumDense("abc,bcd->abd", (None, 3)).build((2, None, 5))
    empty = L.EinsumDense("abc,cd->abd", (None, 6))(np.zeros((0, 3, 5), F32))
    assert empty.shape == (0, 3, 6)


def test_default_kernel_has_keras_fans():
    """glorot_uniform with Keras's fans: the input letters' sizes in, the output's out
    ("abc,cde->abde" on 64 features to 8 x 8: limit sqrt(6 / (64 + 64)) = 0.2165)."""
    layer = L.EinsumDense("abc,cde->abde", (None, 8, 8), seed=0)
    layer.build((2, 3, 64))
    kernel = layer.get_weights()[0]
    assert 0.19 < np.abs(kernel).max() <= np.sqrt(6 / 128)


def test_an_empty_contracted_axis_gives_the_bias(backend="numpy"):
    layer = L.EinsumDense("abc,cd->abd", (None, 6), bias_axes="d")
    layer.build((2, 3, 0))
    layer.set_weights([np.zeros((0, 6), F32), np.arange(6, dtype=F32)])
    y = layer(np.zeros((2, 3, 0), F32))
    np.testing.assert_array_equal(y, np.broadcast_to(np.arange(6, dtype=F32), (2, 3, 6)))


def test_left_ellipsis_keeps_the_leading_axes_in_order(rng):
    inp = Input((3, 4, 5))
    out = L.EinsumDense("...c,cd->...d", 7)(inp)
    assert tuple(out.shape) == (None, 3, 4, 7)
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    layer = Model(inp, out).layers[1]
    np.testing.assert_allclose(Model(inp, out).predict(x), x @ layer.get_weights()[0],
                               rtol=1e-5, atol=1e-6)


def test_a_new_equation_then_new_weights():
    """The equation changed on a built layer whose weights do not fit it: refused at a call
    until set_weights gives weights that do."""
    x = np.ones((2, 4, 3), F32)
    layer = L.EinsumDense("abc,cd->abd", (4, 5), bias_axes="b", seed=0)
    layer(x)
    layer.equation = "abc,cde->abde"
    layer.output_shape = (4, 5, 2)
    with pytest.raises(ValueError, match="need kernel"):
        layer(x)
    layer.set_weights([np.ones((3, 5, 2), F32), np.zeros((4, 1, 1), F32)])
    np.testing.assert_array_equal(layer(x), np.full((2, 4, 5, 2), 3.0, F32))
