"""fastlayers.from_torch: PyTorch modules traced with torch.fx, converted, and compared with
the module's own output (eval mode) on both paths; the result pickles and runs without torch.

The reference of every case is the PyTorch module itself, called on the same inputs.
"""

from __future__ import annotations

import collections
import copy
import functools
import math
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from conftest import assert_close_to_keras, backends_of_the_test  # noqa: E402
from torch_user_models import (  # noqa: E402
    AssertNot,
    AssertsOnBatch,
    AssertsOnParameters,
    AssertsOnShapes,
    AssertsOnValues,
    AssertsShapeBelowList,
    NanoGPT,
)

import fastlayers as fl  # noqa: E402
from fastlayers import layers as L  # noqa: E402
from fastlayers.io.torch_fx import TorchConversionError, TorchModel  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))


def _np(x):
    if isinstance(x, (tuple, list)):
        return type(x)(_np(e) for e in x)
    return x.detach().numpy()


def _compare(got, want, where="out", elementwise=False):
    if want is None:
        assert got is None, f"{where}: expected None"
        return
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for key in want:
            _compare(got[key], want[key], f"{where}[{key!r}]", elementwise)
        return
    if isinstance(want, (tuple, list)):
        assert isinstance(got, type(want)), f"{where}: {type(got)} != {type(want)}"
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]", elementwise)
        return
    w = want.detach().numpy()
    assert isinstance(got, np.ndarray), f"{where}: {type(got)}"
    if w.dtype.kind in "iub":  # indices, masks: int64 (int32 too, as documented) or bool
        assert got.dtype == (np.bool_ if w.dtype.kind == "b" else np.int64), where
        np.testing.assert_array_equal(got, w, err_msg=where, strict=True)  # (shape too)
        return
    assert got.dtype == np.float32, f"{where}: dtype {got.dtype}"
    assert got.shape == w.shape, f"{where}: shape {got.shape} != {w.shape}"
    if elementwise:
        # Each element against its own size (assert_close_to_keras's rule): for an elementwise
        # function of the input, the tolerance below, scaled by the largest value, let the
        # outputs of an op with a wide range (1/x, exp) near 1 be off by tenths of a percent.
        assert_close_to_keras(got, w, rtol=2e-5, atol=2e-5, err_msg=where)
        return
    # After sums (PyTorch's run in other orders) an element's error scales with the products
    # summed, not with the element: the largest finite value stands for them (an inf in the
    # reference must not make every value close).
    scale = max(1.0, float(np.abs(w[np.isfinite(w)]).max(initial=0.0)))
    np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-5 * scale, err_msg=where)


def check(module, *inputs, run_inputs=None, elementwise=False):
    """Convert with ``inputs`` as examples, once; then on each backend of the test (both, or
    the one any_backend pins: conftest.backends_of_the_test) compare on ``run_inputs``
    (default the same), and call with the examples twice more: the second sighting of their
    shapes records a shape plan, the third runs it, with the first call's bits (the general
    executor's). ``elementwise``: the module is an elementwise function of its input (no
    sums), so each output is compared against its own size (_compare)."""
    module.eval()
    model = fl.from_torch(module, inputs)
    cases = []
    for xs in (inputs,) + tuple(run_inputs or ()):
        with torch.no_grad():
            cases.append((xs, _copied(module(*xs))))
    for backend in backends_of_the_test():
        with fl.use_backend(backend):
            first = None
            for xs, want in cases:
                got = model(*_np(xs))
                _compare(got, want, f"out ({backend})", elementwise=elementwise)
                first = got if first is None else first
            for _ in range(2):
                _same_bits(model(*_np(inputs)), first, f"out ({backend})")
    return model


def _copied(out):
    """A module's outputs, their tensors copied: a reference kept across later calls of the
    module cannot be a view of a buffer that a later forward writes."""
    if isinstance(out, torch.Tensor):
        return out.detach().clone()
    if isinstance(out, dict):  # (a ModelOutput too: _compare reads the keys, in order)
        return {key: _copied(value) for key, value in out.items()}
    if isinstance(out, (tuple, list)):  # the type kept: _compare checks it
        values = [_copied(value) for value in out]
        return type(out)(*values) if hasattr(out, "_fields") else type(out)(values)
    return out


def _same_bits(got, want, where="out"):
    if isinstance(want, dict):
        for key in want:
            _same_bits(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (tuple, list)):
        for i, (g, w) in enumerate(zip(got, want)):
            _same_bits(g, w, f"{where}[{i}]")
    elif want is not None:
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert got.tobytes() == want.tobytes(), f"{where}: the plan's bits differ"


def _randomize_bn(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        if bn.weight is not None:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return bn


class Fn(nn.Module):
    """forward(x) = fn(x) (after an optional conv, so that the channels-last layout runs)."""

    def __init__(self, fn, conv=False):
        super().__init__()
        self.fn = fn
        self.conv = nn.Conv2d(3, 4, 3, padding=1) if conv else None

    def forward(self, x):
        if self.conv is not None:
            x = self.conv(x)
        return self.fn(x)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------ dense and conv


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 7), (5, 3, 7)])
def test_linear(bias, shape):
    model = check(nn.Linear(7, 5, bias=bias), torch.randn(*shape))
    assert isinstance(model.layers[1], L.Dense)


CONV2D = [
    # cin, cout, k, stride, padding, dilation, groups, bias, (H, W)
    (3, 8, 3, 1, 0, 1, 1, True, (7, 9)),
    (3, 8, 3, 1, 1, 1, 1, False, (7, 9)),
    (4, 6, 3, 2, 1, 1, 2, True, (8, 8)),
    (4, 6, 3, 2, 1, 1, 2, True, (9, 7)),
    (3, 5, (2, 4), 1, "same", 1, 1, True, (8, 8)),
    (3, 5, 3, 1, "same", 2, 1, True, (10, 10)),
    (3, 5, 3, 2, 2, 2, 1, True, (11, 12)),  # stride and dilation together
    (4, 8, 3, 1, 1, 1, 4, True, (6, 6)),  # depthwise, multiplier 2
    (3, 4, 1, 1, 0, 1, 1, True, (1, 1)),
    (2, 3, (3, 1), (2, 1), (1, 0), 1, 1, True, (5, 4)),
    (3, 4, 5, 3, "valid", 1, 1, True, (13, 13)),
]


@pytest.mark.parametrize("cin,cout,k,s,p,d,g,bias,hw", CONV2D)
def test_conv2d(cin, cout, k, s, p, d, g, bias, hw):
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    model = check(conv, torch.randn(2, cin, *hw))
    assert any(isinstance(layer, L.Conv2D) for layer in model.layers)


@pytest.mark.parametrize("cin,cout,k,s,p,d,g", [
    (3, 5, 3, 1, 0, 1, 1), (4, 4, 3, 2, 1, 1, 2), (3, 6, 4, 1, "same", 1, 1),
    (2, 4, 3, 2, 2, 2, 2), (5, 5, 1, 1, 0, 1, 5),
])
def test_conv1d(cin, cout, k, s, p, d, g):
    model = check(nn.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g),
                  torch.randn(3, cin, 11))
    assert any(isinstance(layer, L.Conv1D) for layer in model.layers)


# ------------------------------------------------------------------ normalization


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(affine):
    check(_randomize_bn(nn.BatchNorm1d(5, affine=affine)), torch.randn(4, 5))
    check(_randomize_bn(nn.BatchNorm1d(5, affine=affine)), torch.randn(4, 5, 7))
    check(nn.Sequential(nn.Conv2d(3, 6, 3), _randomize_bn(nn.BatchNorm2d(6, affine=affine))),
          torch.randn(2, 3, 6, 5))  # folded into the conv
    check(_randomize_bn(nn.BatchNorm2d(3, affine=affine)), torch.randn(2, 3, 6, 5))  # alone


@pytest.mark.parametrize("shape,affine", [((6,), True), ((4, 6), True), ((6,), False)])
def test_layer_norm(shape, affine):
    ln = nn.LayerNorm(shape, elementwise_affine=affine, eps=1e-3)
    if affine:
        with torch.no_grad():
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-1, 1)
    check(ln, 3 * torch.randn(2, 3, 4, 6) + 1)


@pytest.mark.parametrize("make", [lambda: nn.LayerNorm((4, 8)), lambda: nn.RMSNorm((4, 8)),
                                  lambda: Fn(lambda x: F.layer_norm(x, (4, 8)))])
def test_norm_over_the_free_batch_axis_refused_clearly(make):
    """An unbatched (4, 8) example under a norm over (4, 8): the converted model's batch axis
    is free, so the norm would span it; refused by the shapes, saying so (LayerNorm said
    "gamma has shape (4, 8), expected (2, 8)"; an audit)."""
    with pytest.raises(TorchConversionError, match=r"normalized_shape \(4, 8\) is not the last "
                       r"axes of the input \(None, 8\).*norm over the batch does not convert"):
        fl.from_torch(make().eval(), torch.randn(4, 8))
    with pytest.raises(TorchConversionError, match=r"normalized_shape \(5,\) is not the last"):
        fl.from_torch(nn.LayerNorm(5), torch.randn(2, 8))


@pytest.mark.parametrize("groups,channels,shape,affine", [
    (4, 8, (2, 8, 5, 6), True),  # after a conv: channels last already
    (3, 3, (2, 3, 7), True),  # instance normalization on a sequence (N, C, L)
    (1, 6, (3, 6), True),  # (N, C): one group of all channels
    (2, 6, (1, 6, 1, 1), False),
])
def test_group_norm(groups, channels, shape, affine):
    gn = nn.GroupNorm(groups, channels, affine=affine)
    if affine:
        with torch.no_grad():
            gn.weight.uniform_(0.5, 1.5)
            gn.bias.uniform_(-1, 1)
    x = 3 * torch.randn(*shape) + 1
    model = check(gn, x)
    assert any(isinstance(layer, L.GroupNormalization) for layer in model.layers)
    if len(shape) == 4:
        check(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), gn, nn.SiLU()), x)


class NormTwice(nn.Module):
    """One weightless norm module on 4 and then 8 channels (PyTorch allows it)."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return self.norm(x), self.norm(torch.cat([x, x], 1))


@pytest.mark.parametrize("norm", [nn.GroupNorm(2, 4, affine=False), nn.InstanceNorm2d(4)])
def test_weightless_norm_on_two_channel_counts(norm):
    check(NormTwice(norm), torch.randn(2, 4, 3, 3))


@pytest.mark.parametrize("cls,shape", [(nn.InstanceNorm2d, (2, 4, 5, 3)),
                                       (nn.InstanceNorm1d, (3, 6, 7))])
@pytest.mark.parametrize("affine,running", [(False, False), (True, False), (True, True),
                                            (False, True)])
def test_instance_norm(any_backend, cls, shape, affine, running):
    norm = cls(shape[1], affine=affine, track_running_stats=running)
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1, 1)
    if running:
        _randomize_bn(norm)
    model = check(norm, 2 * torch.randn(*shape) - 1)
    kinds = {type(layer) for layer in model.layers}
    assert (L.GroupNormalization in kinds) == (not running)
    with pytest.raises(TorchConversionError, match="batched rank"):
        fl.from_torch(cls(shape[1]), torch.randn(*shape[1:]))


class FunctionalNorms(nn.Module):
    """F.group_norm and F.layer_norm with parameters, without, and with a computed weight."""

    def __init__(self, computed=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.g_weight = nn.Parameter(torch.rand(6) + 0.5)
        self.g_bias = nn.Parameter(torch.rand(6) - 0.5)
        self.l_weight = nn.Parameter(torch.rand(5) + 0.5)
        self.computed = computed

    def forward(self, x):
        h = self.conv(x)
        weight = h[0, :, 0, 0] if self.computed else self.g_weight
        a = F.group_norm(h, 3, weight, self.g_bias, eps=1e-4)
        b = F.group_norm(h, 6)
        c = F.layer_norm(x, (5,), self.l_weight)
        d = F.layer_norm(x, [4, 5], eps=1e-3)
        return a + b, c, d


def test_functional_norms(any_backend):
    model = check(FunctionalNorms(), 2 * torch.randn(2, 3, 4, 5) + 1)
    assert sum(isinstance(layer, L.GroupNormalization) for layer in model.layers) == 2
    with pytest.raises(TorchConversionError, match="weight must be a parameter or a constant, "
                                                   "got a computed tensor"):
        fl.from_torch(FunctionalNorms(computed=True), torch.randn(2, 3, 4, 5))


REDUCTIONS = {
    "global mean": lambda x: x.mean((2, 3)),
    "global mean keepdim": lambda x: torch.mean(x, dim=[-1, -2], keepdim=True) * 2,
    "channel sum keepdim": lambda x: x.sum(dim=1, keepdim=True),
    "channel amax": lambda x: torch.amax(x, 1),
    "row mean": lambda x: x.mean(dim=2),  # keeps the channels of a 4-D map: via a transpose
    "width amin": lambda x: x.amin(-1, True),
    "batch sum": lambda x: torch.sum(x, 0),
    "all": lambda x: torch.mean(x),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("conv", [False, True])
def test_reductions(name, conv):
    check(Fn(REDUCTIONS[name], conv=conv), torch.randn(2, 3, 5, 4) * 3)


def test_global_mean_reduces_the_channels_last_map_in_place():
    model = fl.from_torch(Fn(REDUCTIONS["global mean"], conv=True), torch.randn(2, 3, 5, 4))
    assert sum(isinstance(layer, L.Permute) for layer in model.layers) == 1  # the input's


REDUCTION_SPELLINGS = {
    "axis": lambda x: x.sum(axis=1),
    "torch axis tuple": lambda x: torch.mean(x, axis=(2, 3)),
    "keepdims": lambda x: x.mean(1, keepdims=True),
    "input keyword": lambda x: torch.sum(input=x, dim=1),
    "dtype float32": lambda x: x.sum(1, dtype=torch.float32),
}


@pytest.mark.parametrize("name", list(REDUCTION_SPELLINGS))
def test_reduction_spellings(name):
    check(Fn(REDUCTION_SPELLINGS[name], conv=True), torch.randn(2, 3, 5, 4))


def test_softmax_of_a_full_reduction():
    check(Fn(lambda x: torch.softmax(x.mean(), -1) * x), torch.randn(2, 3, 5, 4))
    check(Fn(lambda x: F.softmax(x.sum(), dim=0) + x.amax(), conv=True), torch.randn(2, 3, 5, 4))


def test_integer_reductions_keep_integers(any_backend):
    class Ids(nn.Module):
        def forward(self, ids):
            return ids.amax(1), ids.sum(1), torch.amin(ids, 0, keepdim=True)

    model = fl.from_torch(Ids(), torch.zeros(2, 5, dtype=torch.long))
    ids = torch.randint(0, 9, (3, 5))
    for got, want in zip(model(ids.numpy()), Ids()(ids)):
        assert got.dtype == np.int64 and np.array_equal(got, want.numpy())

    class AsFloat(nn.Module):  # dtype=torch.float32: PyTorch's float result, also a mean
        def forward(self, ids):
            return ids.sum(1, dtype=torch.float32), ids.mean(1, dtype=torch.float32)

    model = fl.from_torch(AsFloat(), torch.zeros(2, 5, dtype=torch.long))
    for got, want in zip(model(ids.numpy()), AsFloat()(ids)):
        assert got.dtype == np.float32 and np.allclose(got, want.numpy())


def test_reductions_refused():
    with pytest.raises(TorchConversionError, match="dtype"):
        fl.from_torch(Fn(lambda x: x.sum(1, dtype=torch.float64)), torch.randn(2, 3, 5, 4))
    with pytest.raises(TorchConversionError, match="for rank 4"):
        fl.from_torch(Fn(lambda x: x.mean(4)), torch.randn(2, 3, 5, 4))
    with pytest.raises(TorchConversionError, match="names an axis twice"):
        fl.from_torch(Fn(lambda x: x.sum((1, -3))), torch.randn(2, 3, 5, 4))
    with pytest.raises(TorchConversionError, match="mean of a int64 tensor"):
        fl.from_torch(Fn(lambda x: x.mean(1)), torch.zeros(2, 3, dtype=torch.long))


DTYPE_OF_A_TENSOR = {  # dtype=x.dtype, a float32 tensor's: no cast, as dtype=torch.float32
    "softmax": lambda x: torch.softmax(x.float(), dim=-1, dtype=x.dtype),  # HF Funnel's
    "F.softmax": lambda x: F.softmax(x, -1, dtype=x.dtype),
    "Tensor.softmax": lambda x: x.softmax(1, dtype=x.dtype),
    "log_softmax": lambda x: torch.log_softmax(x, 1, dtype=x.dtype),
    "Tensor.log_softmax": lambda x: x.log_softmax(-1, dtype=x.dtype),
    "softmin": lambda x: F.softmin(x, 1, dtype=x.dtype),
    "special.softmax": lambda x: torch.special.softmax(x, 1, dtype=x.dtype),
    "sum": lambda x: x.sum(1, dtype=x.dtype),
    "mean": lambda x: torch.mean(x, -1, dtype=x.dtype),
    "cumsum": lambda x: x.cumsum(1, dtype=x.dtype),
    "prod": lambda x: torch.prod(x, 1, dtype=x.dtype),
}


@pytest.mark.parametrize("name", list(DTYPE_OF_A_TENSOR))
def test_dtype_of_a_traced_tensor(name):
    """x.dtype reaches the converted call as NumPy's float32, which the float32 checks of
    softmax and the reductions refused (fuzzing find)."""
    check(Fn(DTYPE_OF_A_TENSOR[name]), torch.randn(2, 6),
          run_inputs=[(torch.randn(3, 6),), (torch.randn(1, 6),)])


def test_dtype_of_a_traced_bool_tensor_is_refused_as_torch_bool():
    with pytest.raises(TorchConversionError, match="cumsum with dtype=torch.bool"):
        fl.from_torch(Fn(lambda x: (x > 0).cumsum(1, dtype=(x > 0).dtype)), torch.randn(2, 3))


# ------------------------------------------------------------------ activations

ACT_MODULES = [nn.ReLU(), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Tanh(),
               nn.Sigmoid(), nn.Softmax(dim=1), nn.Softmax(dim=-1), nn.LeakyReLU(0.2),
               nn.LeakyReLU(), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Identity(),
               nn.ReLU6(), nn.Hardswish(), nn.Hardsigmoid(), nn.Mish(), nn.Softsign(),
               nn.SELU(), nn.LogSigmoid(), nn.Tanhshrink(), nn.ELU(), nn.CELU(), nn.Softplus(),
               nn.Hardtanh(), nn.Hardtanh(0.0, 6.0), nn.Hardshrink(), nn.Softshrink()]


@pytest.mark.parametrize("act", ACT_MODULES, ids=lambda m: repr(m))
@pytest.mark.parametrize("conv", [False, True])
def test_activation_modules(act, conv):
    x = torch.randn(2, 3, 5, 4) * 3
    check(Fn(act, conv=conv), x)


ACT_CALLS = {
    "F.relu": lambda x: F.relu(x),
    "torch.relu": lambda x: torch.relu(x),
    "Tensor.relu": lambda x: x.relu(),
    "F.gelu": lambda x: F.gelu(x),
    "F.gelu-tanh": lambda x: F.gelu(x, approximate="tanh"),
    "F.silu": lambda x: F.silu(x),
    "torch.tanh": lambda x: torch.tanh(x),
    "Tensor.tanh": lambda x: x.tanh(),
    "torch.sigmoid": lambda x: torch.sigmoid(x),
    "Tensor.sigmoid": lambda x: x.sigmoid(),
    "F.softmax": lambda x: F.softmax(x, dim=1),
    "torch.softmax": lambda x: torch.softmax(x, 2),
    "Tensor.softmax": lambda x: x.softmax(-1),
    "F.leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "F.dropout": lambda x: F.dropout(x, 0.3, training=False),
    "F.relu6": lambda x: F.relu6(x),
    "F.hardswish": lambda x: F.hardswish(x),
    "F.hardsigmoid": lambda x: F.hardsigmoid(x, inplace=False),
    "F.mish": lambda x: F.mish(x),
    "F.softsign": lambda x: F.softsign(x),
    "F.selu": lambda x: F.selu(x),
    "F.logsigmoid": lambda x: F.logsigmoid(x),
    "F.elu": lambda x: F.elu(x, 1.0),
    "F.softplus": lambda x: F.softplus(x, beta=1),
    "F.hardtanh": lambda x: F.hardtanh(x, -1.0, 1.0),
    "F.hardtanh-relu6": lambda x: F.hardtanh(x, 0.0, max_val=6.0),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 7), (4, 3)])
@pytest.mark.parametrize("conv", [False, True])
def test_prelu(channels, shape, conv):
    """One weight, or one per channel: of the input, or of the conv's channels-last output."""
    if conv:
        shape = (2, 3, 5, 4)
    act = nn.PReLU(1 if channels == 1 else (4 if conv else shape[1]))
    with torch.no_grad():
        act.weight.uniform_(-0.5, 0.5)
    check(Fn(act, conv=conv), torch.randn(*shape) * 3)


def test_prelu_with_infinite_or_nan_weights(any_backend):
    act = nn.PReLU(3)
    with torch.no_grad():
        act.weight.copy_(torch.tensor([float("inf"), float("nan"), 0.5]))
    x = torch.tensor([[1.0, 2.0, -1.0], [-3.0, 0.0, 4.0]])
    got = fl.from_torch(act, x)(x.numpy())
    np.testing.assert_array_equal(got, act(x).detach().numpy())  # x > 0 stays x, 0 * nan is nan


def test_prelu_parameters_must_match_the_channels():
    with pytest.raises(TorchConversionError, match="has 4 parameters"):
        fl.from_torch(nn.PReLU(4), torch.randn(2, 3, 5))


@pytest.mark.parametrize("act", [
    nn.ELU(alpha=0.5), nn.CELU(alpha=2.5), nn.Softplus(beta=2), nn.Softplus(beta=0.5,
                                                                              threshold=3),
    nn.Hardtanh(0.0, 5.0), nn.Hardtanh(-2.5, 0.5), nn.Hardshrink(0.3), nn.Softshrink(1.5),
    lambda x: F.elu(x, 0.5), lambda x: F.celu(x, alpha=0.7), lambda x: F.softplus(x, 1, 10),
    lambda x: F.hardtanh(x, max_val=6.0), lambda x: F.hardshrink(x, lambd=2.0),
    lambda x: F.softshrink(x, 0.25),
])
def test_activation_parameters_without_a_keras_equivalent(act):
    """Activation modules and functions at parameter values no Keras activation takes (they
    were refused) run PyTorch's formula at those values (torch_param_activation), after a
    conv too (channels-last)."""
    torch.manual_seed(5)
    check(Fn(act), torch.randn(2, 3, 5, 4) * 3, run_inputs=[(torch.randn(3, 3, 5, 4) * 3,)])
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), act if isinstance(act, nn.Module) else Fn(act))
    check(conv, torch.randn(2, 3, 6, 6) * 3)


@pytest.mark.parametrize("act,message", [
    (nn.CELU(alpha=0.0), "alpha=0.0 (numbers, and not an alpha or beta of 0"),
    (lambda x: F.softplus(x, beta=0), "beta=0 (numbers, and not an alpha or beta of 0"),
])
def test_activation_parameters_refused(act, message):
    with pytest.raises(TorchConversionError, match=re.escape(message)):
        fl.from_torch(Fn(act), torch.randn(2, 3, 5, 4))


def test_bad_function_arguments_are_listed_with_the_other_problems():
    with pytest.raises(TorchConversionError) as info:
        fl.from_torch(Fn(lambda x: torch.msort(F.celu(x, 0.0))), torch.randn(2, 3, 5, 4))
    msg = str(info.value)
    assert "2 module(s) or call(s)" in msg and "alpha=0.0" in msg and "msort" in msg


@pytest.mark.parametrize("name", list(ACT_CALLS))
@pytest.mark.parametrize("conv", [False, True])
def test_activation_calls(name, conv):
    check(Fn(ACT_CALLS[name], conv=conv), torch.randn(2, 3, 5, 4) * 3)


def test_activation_fused_into_layer():
    model = fl.from_torch(nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Linear(3, 2), nn.Tanh()),
                          torch.randn(2, 4))
    acts = [layer.activation for layer in model.layers if isinstance(layer, L.Dense)]
    assert acts == ["gelu", "tanh"]


@pytest.mark.parametrize("bias", [True, False])
def test_batch_norm_folded_into_conv(bias):
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=bias), _randomize_bn(nn.BatchNorm2d(6)),
                        nn.ReLU())
    model = check(net, torch.randn(2, 3, 5, 5))
    (conv,) = [layer for layer in model.layers if isinstance(layer, L.Conv2D)]
    assert conv.activation == "relu" and conv.use_bias
    labels = [row[0] for row in model._summary_rows()]
    assert not any("scale_shift" in label or "activation" in label for label in labels), labels
    seq = nn.Sequential(nn.Conv1d(3, 4, 3), _randomize_bn(nn.BatchNorm1d(4)), nn.SiLU())
    check(seq, torch.randn(2, 3, 9))


class _TracedConv(nn.Conv2d):
    """A conv subclass whose forward calls F.conv2d itself (HF EfficientNet's depthwise
    conv): traced through, so no BatchNorm folds into it."""

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


@pytest.mark.parametrize("act, name", [(nn.ReLU(), "relu"), (nn.SiLU(), "silu"),
                                       (nn.Sigmoid(), "sigmoid"), (nn.Hardswish(), "hard_silu"),
                                       (nn.Softmax(dim=1), None)])
def test_batch_norm_alone_takes_the_activation_after_it(act, name, monkeypatch):
    """A BatchNorm no conv folds (DenseNet's BN -> ReLU -> conv; after a conv traced as
    F.conv2d) runs the elementwise activation after it in its one pass (torch_scale_shift's
    activation, the core's channel_affine with the activation's id); PyTorch's values, and
    the activation node is gone from the graph. A softmax (no elementwise kernel) stays a
    node of its own."""
    from fastlayers._cpp import normalization as cpp_norm

    calls = []
    real = cpp_norm.channel_affine
    monkeypatch.setattr(cpp_norm, "channel_affine",
                        lambda x, s, b, ax, a=0: calls.append(a) or real(x, s, b, ax, a))
    pre = nn.Sequential(_randomize_bn(nn.BatchNorm2d(3)), act, nn.Conv2d(3, 4, 3))
    traced = nn.Sequential(_TracedConv(3, 5, 3, groups=1), _randomize_bn(nn.BatchNorm2d(5)), act)
    for net in (pre, traced):
        model = check(net, torch.randn(2, 3, 6, 7))
        labels = [row[0] for row in model._summary_rows()]
        assert any("scale_shift" in label for label in labels), labels
        fused = not any("activation" in label or "softmax" in label for label in labels)
        assert fused == (name is not None), labels
    if "cpp" in backends_of_the_test():  # (check ran the model on the C++ path too)
        want = {fl._backend.cpp_activation_ids()[name]} if name is not None else {0}
        assert set(calls) == want


@pytest.mark.parametrize("name", ["relu", "gelu", "hard_silu", "leaky_relu"])
def test_scale_shift_with_an_activation_is_the_two_ops(any_backend, name, rng):
    """torch_scale_shift(x, s, b, name) has the bits of the affine, then torch_activation:
    fused on C++ where the core's kernel is PyTorch's function, applied after the affine
    otherwise (leaky_relu: torch_activation's slope is PyTorch's 0.01, the core's Keras's
    0.2), and on NumPy."""
    from fastlayers.io.torch_ops import torch_activation, torch_scale_shift

    x = rng.standard_normal((2, 5, 4, 7)).astype(np.float32)
    s, b = rng.standard_normal(7).astype(np.float32), rng.standard_normal(7).astype(np.float32)
    got = torch_scale_shift(x, s, b, name)
    want = torch_activation(torch_scale_shift(x, s, b), name)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(torch_scale_shift(x, s, b), (x * s + b).astype(np.float32))


class _PadThenConv(nn.Module):
    """HF MobileNetV2 / EfficientNet: F.pad (TF's "same", often by 0) before a conv with
    padding 0, depthwise and strided too."""

    def __init__(self, pads, stride, groups):
        super().__init__()
        self.pads = pads
        self.conv = nn.Conv2d(4, 4 if groups == 4 else 6, 3, stride=stride, groups=groups)

    def forward(self, x):
        return torch.relu(self.conv(F.pad(x, self.pads)))


def test_pads_that_stay_pad_ops():
    """Only +0.0 around a float32 NHWC image becomes a ZeroPadding2D: -0.0 keeps its sign
    (1 / pad gives -inf at the border, as PyTorch) and an integer or bool tensor its dtype."""
    x = torch.randn(2, 3, 5, 4)  # (Fn's conv first: the channels-last layout)
    check(Fn(lambda h: 1 / F.pad(h, (1, 1, 1, 1), value=-0.0), conv=True), x)
    check(Fn(lambda h: F.pad((h * 1e3).long() + 1, (1, 1, 1, 1)), conv=True), x)
    check(Fn(lambda h: F.pad(h > 0, (0, 1, 2, 0)), conv=True), x)


@pytest.mark.parametrize("pads, stride, groups", [
    ((0, 0, 0, 0), 1, 1), ((1, 1, 1, 1), 1, 1), ((0, 1, 0, 1), 2, 4), ((2, 1, 0, 3), 2, 1),
])
def test_zero_padding_before_a_conv_is_a_layer_the_conv_absorbs(pads, stride,
                                                                 groups):
    """F.pad by zeros around an NHWC image converts to a ZeroPadding2D, which the "valid"
    conv after it runs inside itself (no padded copy; models/folding.py); a pad by 0 is no
    node at all. PyTorch's values either way."""
    from fastlayers.models import folding

    net = nn.Sequential(nn.Conv2d(3, 4, 1), _PadThenConv(pads, stride, groups))
    model = check(net, torch.randn(2, 3, 9, 8))
    inner = model.inner
    pads_in = [layer for layer in inner.layers if isinstance(layer, L.ZeroPadding2D)]
    labels = [row[0] for row in inner._summary_rows()]
    assert not any("torch_pad" in label for label in labels), labels
    if pads == (0, 0, 0, 0):
        assert pads_in == []
    else:
        assert len(pads_in) == 1
        folds = [f.fold for f in folding.functional_plan(inner).values() if f.fold is not None]
        assert any(f.pad is pads_in[0] for f in folds)


# ------------------------------------------------------------------ pooling and reshapes

POOLS = [nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(3, 2, ceil_mode=True),
         nn.MaxPool2d(2, stride=1, dilation=2), nn.AvgPool2d(2), nn.AvgPool2d(3, 2, 1),
         nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.AvgPool2d(3, 2, ceil_mode=True),
         nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
         nn.AvgPool2d(2, divisor_override=3), nn.AdaptiveAvgPool2d(1),
         nn.AdaptiveAvgPool2d((1, 1))]


@pytest.mark.parametrize("pool", POOLS, ids=lambda m: repr(m))
@pytest.mark.parametrize("hw", [(7, 7), (8, 6), (3, 3)])
def test_pooling(pool, hw):
    check(nn.Sequential(nn.Conv2d(3, 4, 1), pool), torch.randn(2, 3, *hw))


# Windows larger than the input, which ceil_mode allows (the cells past the input and its
# padding count for nothing): HF EfficientNet's pooler is AvgPool2d(1280, ceil_mode=True).
BIG_WINDOWS = [nn.AvgPool2d(1280, ceil_mode=True), nn.MaxPool2d(1000, ceil_mode=True),
               nn.AvgPool2d((9, 40), stride=(4, 40), padding=(2, 3), ceil_mode=True,
                            count_include_pad=False),
               nn.AvgPool2d((9, 40), stride=(4, 40), padding=(2, 3), ceil_mode=True),
               nn.AvgPool2d(30, ceil_mode=True, divisor_override=7)]


@pytest.mark.parametrize("pool", BIG_WINDOWS, ids=lambda m: repr(m))
def test_pooling_windows_larger_than_the_input(pool):
    check(nn.Sequential(nn.Conv2d(3, 4, 1), pool), torch.randn(2, 3, 10, 11))


POOLER_CHILD = """
import resource, numpy as np
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from fastlayers.io.torch_ops import torch_pool2d
x = np.random.default_rng(0).standard_normal((2, 7, 7, 1280), dtype=np.float32)
y = torch_pool2d(x, "avg", (1280, 1280), (1280, 1280), (0, 0), (1, 1), True)
want = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
assert y.shape == (2, 1, 1, 1280) and np.abs(y - want).max() < 1e-5, np.abs(y - want).max()
print("ok")
"""


def test_efficientnet_pooler_stays_small():
    """The pooler at its real size (batch 2, 1280 channels, a 7x7 map) within 3 GiB of
    address space: it padded the input to 1280x1280 (15.6 GiB) and looped over 1280^2 taps."""
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-c", POOLER_CHILD], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def _pool_loop(x, kind, k, s, p, ceil_mode):
    """PyTorch's pooling as padded taps folded in order (max: np.maximum; average without
    padding: float32 sum, then the window's size), the reference of torch_pool2d."""
    from fastlayers.io.torch_ops import _pool_geometry

    n, h, w, c = x.shape
    oh, eh = _pool_geometry(h, k, s, p, 1, ceil_mode)
    ow, ew = _pool_geometry(w, k, s, p, 1, ceil_mode)
    xp = np.pad(x, ((0, 0), (p, p + eh), (p, p + ew), (0, 0)),
                constant_values=-np.inf if kind == "max" else 0.0)
    acc = None
    for a in range(k):
        for b in range(k):
            tap = xp[:, a:a + (oh - 1) * s + 1:s, b:b + (ow - 1) * s + 1:s]
            acc = tap.copy() if acc is None else (np.maximum(acc, tap) if kind == "max"
                                                   else acc + tap)
    return acc if kind == "max" else acc / np.float32(k * k)


@pytest.mark.parametrize("kind, k, s, p, ceil_mode", [
    ("max", 3, 2, 1, False), ("max", 3, 2, 1, True), ("max", 2, 2, 0, False),
    ("max", 3, 1, 1, False), ("avg", 2, 2, 0, False), ("avg", 3, 2, 0, False)])
def test_torch_pool2d_gives_the_bits_of_its_taps(any_backend, kind, k, s, p, ceil_mode):
    """torch_pool2d runs the pooling layers' op (C++ under auto) where it computes the same
    thing: padded max pools and unpadded averages, bit for bit with the taps folded in order
    (NaN, inf, zeros of both signs included; not denormals, which C++ flushes, nor a NaN's
    sign where NaNs of both signs meet in an average: not in this data)."""
    from fastlayers.io.torch_ops import torch_pool2d

    x = np.random.default_rng(5).standard_normal((2, 9, 8, 5)).astype(np.float32)
    flat = x.reshape(-1)
    flat[::7], flat[3::11], flat[5::97], flat[6::89] = 0.0, -0.0, np.nan, np.inf
    got = torch_pool2d(x, kind, (k, k), (s, s), (p, p), ceil_mode=ceil_mode)
    want = _pool_loop(x, kind, k, s, p, ceil_mode)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_pooling_calls():
    check(Fn(lambda x: F.max_pool2d(x, 2), conv=True), torch.randn(2, 3, 6, 6))
    check(Fn(lambda x: F.avg_pool2d(x, 3, 2, 1), conv=True), torch.randn(2, 3, 7, 6))
    check(Fn(lambda x: F.adaptive_avg_pool2d(x, 1), conv=True), torch.randn(2, 3, 5, 6))


RESHAPES = {
    "Flatten": nn.Flatten(),
    "Flatten(0,-2)": nn.Flatten(0, -2),
    "torch.flatten": lambda x: torch.flatten(x, 1),
    "torch.flatten-all": lambda x: torch.flatten(x),
    "Tensor.flatten": lambda x: x.flatten(2),
    "view(size(0), -1)": lambda x: x.view(x.size(0), -1),
    "view(shape[0], C, -1)": lambda x: x.view(x.shape[0], 4, -1),
    "reshape(-1, 10)": lambda x: x.reshape(-1, 10),
    "reshape tuple": lambda x: x.reshape((x.size(0), 2, 2, -1)),
    "torch.reshape": lambda x: torch.reshape(x, (-1, 4, 5)),
    "reshape(shape=)": lambda x: x.reshape(shape=(x.size(0), 4, -1)),
    "view(size=)": lambda x: x.view(size=(-1, 20)),
    "contiguous view": lambda x: x.contiguous().view(x.size()[0], -1),
    "permute": lambda x: x.permute(0, 2, 3, 1),
    "permute(dims=)": lambda x: x.permute(dims=(0, 3, 1, 2)),
    "transpose": lambda x: x.transpose(1, -1),
    "transpose(dim0=, dim1=)": lambda x: x.transpose(dim0=2, dim1=1),
    "flatten(start_dim=)": lambda x: x.flatten(start_dim=2),
    "flatten(end_dim=)": lambda x: x.flatten(1, end_dim=2),
    "expand(size=)": lambda x: x[:, :1].expand(size=(-1, 3, -1, -1)),
    "repeat(repeats=)": lambda x: x.repeat(repeats=(1, 2, 1, 1)),
    "index": lambda x: x[:, 1:3, ..., -1],
    "index None": lambda x: x[:, None, 0],
    "slice channels": lambda x: x[:, 1:3],  # slices stay in the channels-last layout
    "slice spatial": lambda x: x[..., 1:, ::2],
    "slice all": lambda x: x[1:, :-1, 2:4, :],
    "global pool flatten": lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1),
}


@pytest.mark.parametrize("name", list(RESHAPES))
def test_reshapes_after_conv(name):
    # after a conv the tensor is NHWC inside: each reshape must see PyTorch's C, H, W order
    check(Fn(RESHAPES[name], conv=True), torch.randn(2, 3, 5, 4))


@pytest.mark.parametrize("fn", [
    lambda x: x.div(2.0, rounding_mode="floor"),
    lambda x: torch.div(x, x + 9, rounding_mode="trunc"),
    lambda x: x.div(-0.5, rounding_mode="trunc") + x.div(x.abs() + 1, rounding_mode="floor"),
])
def test_division_rounding(fn):
    # floor and trunc division (refused before), as methods and functions
    check(Fn(fn), torch.randn(2, 3) * 5, run_inputs=[(torch.randn(3, 3) * 5,)])


def test_arguments_a_handler_does_not_take():
    # a call PyTorch accepts with an argument the converter does not know: named, not a bare
    # TypeError from inside the converter
    with pytest.raises(TorchConversionError,
                       match=r"\(torch.cumsum\) with these arguments: .*'out'"):
        fl.from_torch(Fn(lambda x: torch.cumsum(x, 1, out=None)).eval(), torch.randn(2, 3))


def test_conv_flatten_linear():
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(6 * 3 * 3, 10), nn.Softmax(dim=1))
    check(net, torch.randn(4, 3, 8, 8))


# ------------------------------------------------------------------ recurrent


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers,bidir,batch_first,bias", [
    (1, False, True, True), (1, False, False, True), (2, True, True, True),
    (2, True, False, False), (3, False, False, True), (1, True, True, True),
])
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent(cls, layers, bidir, batch_first, bias, with_state):
    rnn = cls(5, 6, num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias)
    x = torch.randn(3, 7, 5) if batch_first else torch.randn(7, 3, 5)
    inputs = (x,)
    if with_state:
        h = torch.randn(layers * (2 if bidir else 1), 3, 6)
        inputs = (x, (h, torch.randn_like(h)) if cls is nn.LSTM else h)
    model = check(rnn, *inputs)
    kinds = {type(layer) for layer in model.layers}
    assert (L.Bidirectional in kinds) == bidir
    assert {nn.LSTM: L.LSTM, nn.GRU: L.GRU, nn.RNN: L.SimpleRNN}[cls] in kinds or bidir


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_nonlinearity(nonlinearity):
    rnn = nn.RNN(4, 5, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
    model = check(rnn, torch.randn(2, 6, 4), run_inputs=[(torch.randn(3, 6, 4),)])
    cells = [layer for layer in model.layers if isinstance(layer, L.SimpleRNN)]
    assert len(cells) == 2 and {c.activation for c in cells} == {nonlinearity}


class ProjectedLstm(nn.Module):
    """nn.LSTM(proj_size=P) as speech models use it, with or without an initial state."""

    def __init__(self, state, **kw):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, proj_size=3, **kw)
        self.state = state

    def forward(self, x, h0=None, c0=None):
        return self.lstm(x, (h0, c0)) if self.state else self.lstm(x)


@pytest.mark.parametrize("kw", [
    {"batch_first": True}, {"num_layers": 2, "batch_first": True},
    {"bidirectional": True, "batch_first": True}, {"num_layers": 2, "bidirectional": True},
    {"bias": False, "batch_first": True},
])
@pytest.mark.parametrize("state", [False, True])
def test_lstm_with_projections(kw, state):
    """h and the outputs have proj_size units, c hidden_size (torch_lstm_projected)."""
    module = ProjectedLstm(state, **kw)
    first = kw.get("batch_first", False)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)

    def inputs(b):
        x = torch.randn(b, 7, 6) if first else torch.randn(7, b, 6)
        return (x, torch.randn(layers, b, 3), torch.randn(layers, b, 8)) if state else (x,)

    check(module, *inputs(2), run_inputs=[inputs(1), inputs(3)])


class UnpackedState(nn.Module):
    """An LSTM state given as one tuple input and unpacked in forward: fx's state[0] and
    state[1] reach the LSTM, not the input itself."""

    def __init__(self, batch_first):
        super().__init__()
        self.lstm = nn.LSTM(6, 4, batch_first=batch_first)

    def forward(self, x, state):
        h, c = state
        return self.lstm(x, (h, c))[0]


@pytest.mark.parametrize("batch_first", [True, False])
def test_lstm_state_unpacked_from_a_tuple_input_keeps_the_batch_free(batch_first):
    """The state's batch is its axis 1, as when the tuple reaches the LSTM whole (the batch
    was fixed at the examples' and the layers axis left free: fuzzing find)."""
    def inputs(b):
        x = torch.randn(b, 5, 6) if batch_first else torch.randn(5, b, 6)
        return (x, (torch.randn(1, b, 4), torch.randn(1, b, 4)))

    check(UnpackedState(batch_first), *inputs(2), run_inputs=[inputs(3), inputs(1)])


def test_lstm_with_projections_checks_its_states_and_takes_an_empty_batch(any_backend):
    module = ProjectedLstm(True, batch_first=True)
    x, h0, c0 = torch.randn(2, 7, 6), torch.randn(1, 2, 3), torch.randn(1, 2, 8)
    model = check(module, x, h0, c0)
    for b in (1, 3):
        with pytest.raises(ValueError, match="initial state h0"):
            model(np.zeros((2, 7, 6), np.float32), np.zeros((1, b, 3), np.float32),
                  np.zeros((1, 2, 8), np.float32))
    empty = [np.zeros(s, np.float32) for s in ((0, 7, 6), (1, 0, 3), (1, 0, 8))]
    out, (h, c) = model(*empty)
    assert out.shape == (0, 7, 3) and h.shape == (1, 0, 3) and c.shape == (1, 0, 8)


def test_recurrent_batch_is_free():
    rnn = nn.LSTM(4, 5, num_layers=2)  # seq-first: the batch is axis 1
    model = fl.from_torch(rnn, (torch.randn(6, 2, 4),))
    for shape in [(6, 1, 4), (6, 5, 4)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            _compare(model(x.numpy()), rnn(x))
    with pytest.raises(ValueError, match="predict splits every input along axis 0"):
        model.predict(np.zeros((6, 2, 4), np.float32))
    gru = nn.GRU(4, 5, batch_first=True)
    batch_first = fl.from_torch(gru, (torch.randn(2, 6, 4),))
    x = torch.randn(7, 6, 4)
    with torch.no_grad():
        _compare(batch_first.predict(x.numpy(), batch_size=3), gru(x))


# ------------------------------------------------------------------ attention


def _mha_case(batch_first, kdim=None):
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=kdim)
    q = torch.randn(2, 5, 8)
    k = torch.randn(2, 6, kdim or 8)
    v = torch.randn(2, 6, kdim or 8)
    if not batch_first:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    return mha, q, k, v


class MHA(nn.Module):
    def __init__(self, mha, **kw):
        super().__init__()
        self.mha = mha
        self.kw = kw

    def forward(self, q, k, v, kpm, am):
        return self.mha(q, k, v, key_padding_mask=kpm, attn_mask=am, **self.kw)


def _masks(kind):
    kpm = torch.zeros(2, 6, dtype=torch.bool)
    kpm[0, 4:] = True
    if kind.startswith("float"):  # a float padding mask too: -inf where blocked
        kpm = torch.zeros(2, 6).masked_fill(kpm, float("-inf"))
    if kind == "bool":
        am = torch.rand(5, 6) > 0.6
        am[:, 0] = False
    elif kind == "float":
        am = torch.randn(5, 6)
    elif kind == "float-inf":
        am = torch.triu(torch.full((5, 6), float("-inf")), diagonal=1)
    else:  # per head (B * N, T, S)
        am = torch.rand(4, 5, 6) > 0.6
        am[..., 0] = False
    return kpm, am


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kdim", [None, 5])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_multihead_attention(batch_first, kdim, need_weights, average):
    mha, q, k, v = _mha_case(batch_first, kdim)
    check(MHA(mha, need_weights=need_weights, average_attn_weights=average), q, k, v,
          *_masks("bool"))


@pytest.mark.parametrize("mask", ["bool", "float", "float-inf", "per-head"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_masks(mask, need_weights):
    mha, q, k, v = _mha_case(True)
    check(MHA(mha, need_weights=need_weights), q, k, v, *_masks(mask))


def test_multihead_attention_plain_call():
    mha, q, k, v = _mha_case(False)
    check(mha, q, k, v)
    check(nn.MultiheadAttention(8, 4, bias=False, batch_first=True), q.transpose(0, 1),
          k.transpose(0, 1), v.transpose(0, 1))


@pytest.mark.parametrize("mask", ["bool", "float"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_packed_projections_keep_the_bits(mask, need_weights):
    """A converted MultiheadAttention packs its projections for the C++ path on first use
    (MultiheadAttentionWeights): the bits are those of the same weights read in place (a
    plain dict), on both mask branches of the op, before and after a pickle, which keeps
    the arrays alone."""
    from fastlayers.io import torch_ops

    rng = np.random.default_rng(3)
    e, n = 24, 3
    w = {f"w{c}": rng.standard_normal((e, e), dtype=np.float32) / 5 for c in "qkvo"}
    w.update({f"b{c}": rng.standard_normal(e, dtype=np.float32) for c in "qkvo"})
    packed = torch_ops.MultiheadAttentionWeights(w)
    q, k, v = (rng.standard_normal((2, t, e), dtype=np.float32) for t in (17, 13, 13))
    kpm = np.zeros((2, 13), bool)
    kpm[1, 9:] = True
    am = rng.random((17, 13)) > 0.7
    am[:, 0] = False
    if mask == "float":
        am = np.where(am, np.float32(-1e4), np.float32(0.5))
        kpm = np.where(kpm, np.float32(-np.inf), np.float32(0))

    def run(weights):
        return torch_ops.torch_multihead_attention(
            q, k, v, kpm, am, weights=weights, num_heads=n, need_weights=need_weights,
            average=False)

    if not fl.core_available():
        pytest.skip("packing is the C++ path's; this build has NumPy's alone")
    with fl.use_backend("cpp"):
        want = run(dict(w))
        for weights in (packed, pickle.loads(pickle.dumps(packed))):
            assert weights._packed is None
            got = run(weights)
            assert weights._packed is not None
            for g, r in zip(*(x if need_weights else (x,) for x in (got, want))):
                np.testing.assert_array_equal(g, r)
    with torch.no_grad():  # and PyTorch's
        ref = nn.MultiheadAttention(e, n, batch_first=True).eval()
        ref.in_proj_weight.copy_(torch.from_numpy(np.concatenate([w[f"w{c}"].T for c in "qkv"])))
        ref.in_proj_bias.copy_(torch.from_numpy(np.concatenate([w[f"b{c}"] for c in "qkv"])))
        ref.out_proj.weight.copy_(torch.from_numpy(w["wo"].T))
        ref.out_proj.bias.copy_(torch.from_numpy(w["bo"]))
        out = ref(*(torch.from_numpy(x) for x in (q, k, v)), key_padding_mask=torch.from_numpy(kpm),
                  attn_mask=torch.from_numpy(am), need_weights=False)[0]
    _compare(got[0] if need_weights else got, out)


class Encoder(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, mask, kpm):
        return self.layer(x, src_mask=mask, src_key_padding_mask=kpm)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layer(norm_first, activation, batch_first):
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation=activation, norm_first=norm_first,
                                       batch_first=batch_first)
    x = torch.randn(3, 5, 8) if batch_first else torch.randn(5, 3, 8)
    model = check(layer, x)
    # the feed-forward activation runs in linear1's epilogue
    assert [d.activation for d in model.layers if isinstance(d, L.Dense)] == [
        activation, None]
    mask = torch.rand(5, 5) > 0.7
    mask.fill_diagonal_(False)
    kpm = torch.zeros(3, 5, dtype=torch.bool)
    kpm[1, 3:] = True
    check(Encoder(layer), x, mask, kpm)


class Stack(nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, x, kpm):
        return self.enc(x, src_key_padding_mask=kpm)


@pytest.mark.parametrize("batch_first,norm_first", [(True, False), (False, False),
                                                    (True, True)])
@pytest.mark.parametrize("nested", [True, False])
def test_transformer_encoder(batch_first, norm_first, nested):
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=batch_first, norm_first=norm_first)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=nested)
    x = torch.randn(3, 5, 8) if batch_first else torch.randn(5, 3, 8)
    check(enc, x)
    at_end = torch.zeros(3, 5, dtype=torch.bool)
    at_end[1, 3:] = True  # padding at the end: PyTorch's nested path zeroes those steps
    inside = at_end.clone()
    inside[2, 1] = True  # padding inside a row: no nested path
    check(Stack(enc), x, at_end, run_inputs=[(x, inside)])
    mask = torch.rand(5, 5) > 0.7
    mask.fill_diagonal_(False)
    check(enc, x, mask)


class Decoder(nn.Module):
    """A decoder layer or stack called with every mask by keyword (causal tgt_mask as
    nn.Transformer.generate_square_subsequent_mask makes it, or a bool one)."""

    def __init__(self, dec, causal_flag=False):
        super().__init__()
        self.dec, self.causal_flag = dec, causal_flag

    def forward(self, tgt, memory, tgt_mask, tgt_kpm, memory_kpm):
        return self.dec(tgt, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_kpm,
                        memory_key_padding_mask=memory_kpm, tgt_is_causal=self.causal_flag)


def _decoder_inputs(batch_first, t=5, s=7, b=3, e=8):
    tgt = torch.randn(b, t, e) if batch_first else torch.randn(t, b, e)
    memory = torch.randn(b, s, e) if batch_first else torch.randn(s, b, e)
    tgt_kpm = torch.zeros(b, t, dtype=torch.bool)
    tgt_kpm[1, 4:] = True
    memory_kpm = torch.zeros(b, s, dtype=torch.bool)
    memory_kpm[2, 3:] = True
    return tgt, memory, tgt_kpm, memory_kpm


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_decoder_layer(norm_first, activation, batch_first):
    layer = nn.TransformerDecoderLayer(8, 2, 16, activation=activation, norm_first=norm_first,
                                       batch_first=batch_first)
    tgt, memory, tgt_kpm, memory_kpm = _decoder_inputs(batch_first)
    check(layer, tgt, memory)
    causal = nn.Transformer.generate_square_subsequent_mask(5)  # float: -inf above the diagonal
    check(Decoder(layer, causal_flag=True), tgt, memory, causal, tgt_kpm, memory_kpm)
    blocked = torch.rand(5, 5) > 0.6
    blocked.fill_diagonal_(False)
    check(Decoder(layer), tgt, memory, blocked, tgt_kpm, memory_kpm)


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_decoder_and_transformer(batch_first):
    layer = nn.TransformerDecoderLayer(8, 2, 16, batch_first=batch_first)
    dec = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8))
    tgt, memory, tgt_kpm, memory_kpm = _decoder_inputs(batch_first)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    check(Decoder(dec), tgt, memory, causal, tgt_kpm, memory_kpm)
    # the seq2seq model of PyTorch's translation tutorial: nn.Transformer between embeddings
    net = Seq2Seq(batch_first)
    src = torch.randint(0, 20, (3, 7) if batch_first else (7, 3))
    tgt_ids = torch.randint(0, 20, (3, 5) if batch_first else (5, 3))
    src_kpm = torch.zeros(3, 7, dtype=torch.bool)
    src_kpm[0, 5:] = True
    check(net, src, tgt_ids, causal, src_kpm, tgt_kpm,
          run_inputs=[(src[:, :1] if not batch_first else src[:1], tgt_ids[:, :1] if not
                       batch_first else tgt_ids[:1], causal, src_kpm[:1], tgt_kpm[:1])])


class Seq2Seq(nn.Module):
    def __init__(self, batch_first, vocab=20, d=8):
        super().__init__()
        self.src_emb, self.tgt_emb = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        self.transformer = nn.Transformer(d, 2, 2, 2, 16, dropout=0.1, batch_first=batch_first)
        self.generator = nn.Linear(d, vocab)

    def forward(self, src, tgt, tgt_mask, src_kpm, tgt_kpm):
        out = self.transformer(self.src_emb(src), self.tgt_emb(tgt), tgt_mask=tgt_mask,
                               src_key_padding_mask=src_kpm, tgt_key_padding_mask=tgt_kpm,
                               memory_key_padding_mask=src_kpm)
        return self.generator(out)


class SeqFirstTagger(nn.Module):
    """Token ids (T, B) through an Embedding scaled by sqrt(d) into a seq-first LSTM: the
    batch axis (1) is found through the Embedding and the scaling."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(30, 6), nn.LSTM(6, 5), nn.Linear(5, 3)

    def forward(self, ids):
        h, _ = self.rnn(self.emb(ids) * math.sqrt(6))
        return self.out(h)


def test_seq_first_ids_through_an_embedding():
    check(SeqFirstTagger(), torch.randint(0, 30, (7, 2)),
          run_inputs=[(torch.randint(0, 30, (7, 5)),)])


class MemoryMasked(nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.dec = dec

    def forward(self, tgt, memory, memory_mask):
        return self.dec(tgt, memory, memory_mask=memory_mask)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_transformer_decoder_memory_mask(kind):
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 2)
    tgt, memory, _, _ = _decoder_inputs(True)
    mask = torch.rand(5, 7) > 0.6
    mask[:, 0] = False  # every query keeps a key
    if kind == "float":
        mask = torch.zeros(5, 7).masked_fill(mask, float("-inf"))
    check(MemoryMasked(dec), tgt, memory, mask)


def test_transformer_refusals():
    tf = nn.Transformer(8, 2, 1, 1, 16, batch_first=True, custom_decoder=nn.Identity())
    with pytest.raises(TorchConversionError, match="a custom_encoder or custom_decoder"):
        fl.from_torch(tf.eval(), (torch.randn(2, 3, 8), torch.randn(2, 4, 8)))

    class CausalWithoutMask(nn.Module):
        def __init__(self):
            super().__init__()
            self.dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 1)

        def forward(self, tgt, memory):
            return self.dec(tgt, memory, tgt_is_causal=True)

    with pytest.raises(TorchConversionError, match="tgt_is_causal needs tgt_mask"):
        fl.from_torch(CausalWithoutMask().eval(), (torch.randn(4, 2, 8), torch.randn(3, 2, 8)))


@pytest.mark.parametrize("fn,message", [
    (lambda m, x: m.enc(x, is_causal=True), "is_causal needs mask"),
    (lambda m, x: m.enc.layers[0](x, is_causal=True), "is_causal needs src_mask"),
    (lambda m, x: m.mha(x, x, x, is_causal=True, need_weights=False)[0],
     "is_causal needs attn_mask"),
    (lambda m, x: m.dec(x, x, memory_is_causal=True), "memory_is_causal needs memory_mask"),
])
def test_causal_hints_without_their_mask_are_refused(fn, message):
    class Hinted(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
            self.dec = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)

        def forward(self, x):
            return fn(self, x)

    with pytest.raises(TorchConversionError, match=re.escape(message)):
        fl.from_torch(Hinted().eval(), torch.randn(2, 5, 8))


class ViewByAnotherBatch(nn.Module):
    def forward(self, x, y):
        return x.view(y.shape[0], 5)


def test_a_view_no_batch_size_fits_is_refused_at_conversion():
    # x (B, 6) viewed as (B', 5) with B' read from y: no batch sizes make 6 B = 5 B'
    with pytest.raises(ValueError, match="cannot reshape"):
        fl.from_torch(ViewByAnotherBatch().eval(), (torch.randn(2, 6), torch.randn(2, 3)))


class BroadcastsAtBatchOne(nn.Module):
    """(B, 5) + (B, 6, 1): broadcasts at batch 1 only, so the shapes found with the batch
    free let it convert; PyTorch fails on the (2, ...) examples."""

    def forward(self, a, b):
        return a + b[:, :, None]


class Float64Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3).double()

    def forward(self, x):
        return self.lin(x) + x[:, :3]


def test_a_module_pytorch_cannot_run_on_its_examples_is_refused_at_conversion():
    """It converted, and failed when called with NumPy's broadcast error (fuzzing find)."""
    with pytest.raises(TorchConversionError, match=r"BroadcastsAtBatchOne fails in PyTorch on "
                       r"its example inputs .*must match the size of tensor b \(6\).*"
                       r"return a \+ b\[:, :, None\].*was add \(operator\.add\)"):
        fl.from_torch(BroadcastsAtBatchOne(), (torch.randn(2, 5), torch.randn(2, 6)))
    # A module PyTorch runs on its examples converts as before: a float64 one too (the
    # converted model computes in float32).
    module = Float64Linear().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    model = fl.from_torch(module, x)
    with torch.no_grad():
        for xs in (x, torch.randn(3, 4, dtype=torch.float64)):
            np.testing.assert_allclose(model(xs.numpy()), module(xs).numpy(), rtol=1e-5,
                                       atol=1e-6)


def test_the_example_run_check_accepts_a_module_pytorch_runs_in_either_dtype():
    """_refuse_failing_module (run when a call failed while tracing) refuses only a module
    that fails on the examples both in the converted model's dtypes and as given: a float64
    module given float64 examples fails in float32 only, a float32 one given float64
    examples as given only; both convert. (A review find: the second run had no test.)"""
    from fastlayers.io import torch_fx

    x64 = np.random.default_rng(0).standard_normal((2, 4))
    for module in (Float64Linear().eval(), nn.Linear(4, 3).eval()):
        # (conv and node name the failing call in the error only)
        assert torch_fx._refuse_failing_module(torch, module, [x64], None, None) is None
    with pytest.raises(TorchConversionError, match="fails in PyTorch on its example inputs"):
        torch_fx._refuse_failing_module(torch, BroadcastsAtBatchOne(),
                                        [np.ones((2, 5), np.float32), np.ones((2, 6))],
                                        type("Conv", (), {"_where": lambda self, n: "add"})(),
                                        type("Node", (), {"op": "call_function",
                                                          "target": torch.add})())


def test_transformer_decoder_causal_flag_needs_its_mask():
    class Flagged(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)

        def forward(self, tgt, memory):
            return self.layer(tgt, memory, tgt_is_causal=True)

    with pytest.raises(TorchConversionError, match="tgt_is_causal needs tgt_mask"):
        fl.from_torch(Flagged().eval(), (torch.randn(2, 3, 8), torch.randn(2, 4, 8)))


class SDPA(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **self.kw)


def _sdpa_mask(kind, t, s):
    if kind == "none":
        return None
    if kind == "bool":  # (T, S), broadcast over batch and heads; row 1 fully blocked, row 0
        m = torch.rand(t, s) > 0.4  # too once the causal mask is applied
        m[:, 0] = True
        m[1] = False
        m[0, 0], m[0, 1:] = False, True
        return m
    if kind == "bool-4d":  # (B, 1, T, S); one row fully blocked in one batch entry
        m = torch.rand(2, 1, t, s) > 0.4
        m[..., 0] = True
        m[1, 0, t - 1] = False
        return m
    if kind == "bool-keys":  # (B, 1, 1, S): a padding mask, all keys of entry 1 blocked
        m = torch.rand(2, 1, 1, s) > 0.3
        m[0, ..., 0] = True
        m[1] = False
        return m
    if kind == "float":
        return torch.randn(t, s)
    m = torch.randn(2, 3, t, s)  # float with -inf, one row all -inf
    m[0, 1, 2] = float("-inf")
    m[1, :, :, 1:3] = float("-inf")
    return m


@pytest.mark.parametrize("mask", ["none", "bool", "bool-4d", "bool-keys", "float", "float-inf"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t,s", [(5, 5), (4, 7), (7, 3)])
def test_scaled_dot_product_attention(mask, causal, t, s):
    # PyTorch's CPU kernels: boolean True = takes part, float masks added, is_causal top-left
    # aligned (with a mask too), and 0 for a row left with no key. (A mask with is_causal
    # runs in PyTorch's default kernel, which needs Ev = E; its math kernel refuses them.)
    ev = 8 if causal and mask != "none" else 5
    q, k, v = torch.randn(2, 3, t, 8), torch.randn(2, 3, s, 8), torch.randn(2, 3, s, ev)
    m = _sdpa_mask(mask, t, s)
    check(SDPA(is_causal=causal), q, k, v, *(() if m is None else (m,)))


@pytest.mark.parametrize("kw", [{"scale": 0.3}, {"enable_gqa": True}, {"scale": 2.0,
                                                                        "enable_gqa": True}])
def test_scaled_dot_product_attention_scale_and_gqa(kw):
    heads_kv = 2 if kw.get("enable_gqa") else 6
    q = torch.randn(2, 6, 5, 8)
    k, v = torch.randn(2, heads_kv, 9, 8), torch.randn(2, heads_kv, 9, 4)
    check(SDPA(**kw), q, k, v, torch.rand(5, 9) > 0.3,
          run_inputs=[(q[:1], k[:1], v[:1], torch.rand(5, 9) > 0.5)])


def test_scaled_dot_product_attention_refusals():
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(TorchConversionError, match="dropout_p=0.1"):
        fl.from_torch(SDPA(dropout_p=0.1), (q, q, q, torch.ones(3, 3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="enable_gqa with 3 query heads"):
        fl.from_torch(SDPA(enable_gqa=True), (torch.randn(1, 3, 3, 4), q, q))


@pytest.mark.parametrize("flash", [True, False])
def test_decoder_only_transformer(any_backend, flash):
    ids = torch.randint(0, 50, (3, 12))
    model = check(NanoGPT(flash), ids, run_inputs=[(torch.randint(0, 50, (1, 12)),)])
    with pytest.raises(ValueError, match="expected shape"):  # the examples fix T
        model(np.zeros((1, 11), np.int64))
    with pytest.raises(ValueError, match="assert fails for the examples"):
        fl.from_torch(NanoGPT(flash), torch.randint(0, 50, (1, 17)))


def test_asserts_on_the_batch_size_are_left_to_run_time(any_backend):
    x, y = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    check(AssertsOnBatch(), x, y, run_inputs=[(x[:1], y[:1])])
    check(AssertNot(), x)
    with pytest.raises(ValueError, match="assert fails for the examples"):
        fl.from_torch(AssertNot(), torch.randn(2, 6, 3))  # not 6 > 5
    with pytest.raises(ValueError, match="assert fails for the examples"):
        fl.from_torch(AssertNot(), torch.randn(2, 4, 2))  # (4, 2) != (4, 3)
    # asserts on a parameter's shape, checked at conversion
    check(AssertsOnParameters(), x)
    for bad in (AssertsOnParameters(rows=5), AssertsOnParameters(against_list=True)):
        with pytest.raises(ValueError, match="assert fails for the examples"):
            fl.from_torch(bad, x)
    with pytest.raises(TorchConversionError, match="lt of a tuple and a list"):
        fl.from_torch(AssertsShapeBelowList(), x)
    # a known size that differs fails a whole-shape assert at conversion
    with pytest.raises(ValueError, match="assert fails for the examples"):
        fl.from_torch(AssertsOnShapes(), (torch.randn(2, 4, 3), torch.randn(2, 4, 1)))
    check(AssertsOnShapes(), x, y)
    with pytest.raises(TorchConversionError, match="comparison with the batch size"):
        fl.from_torch(Fn(lambda x: x * (x.size(0) == 2)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="comparison with the batch size"):
        fl.from_torch(Fn(lambda x: torch.where(x.size(0) == 2, x, -x)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="tensor compared with the batch size"):
        fl.from_torch(Fn(lambda x: x.masked_fill(x > x.size(0), 0.0)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="arithmetic on a size known only at run"):
        fl.from_torch(Fn(lambda x: x * x.size(0)), torch.randn(2, 3))


class Buffers(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.register_buffer("buf", torch.randn(4, 3))
        self.register_buffer("ints", torch.arange(12).view(4, 3))
        self.register_buffer("neg", torch.tensor(-2.5))
        self.register_buffer("pe", torch.randn(1, 16, 3))
        self.register_buffer("cube", torch.randn(4, 3, 2, 5))

    def forward(self, x):
        return self.fn(self, x)


BUFFERS = {  # on x (B, 4, 3): what reads buffers alone is PyTorch's; buffers sliced by sizes
    "sum, softmax, gelu": lambda m, x: x + m.buf.sum() + m.buf.softmax(-1) + F.gelu(m.buf),
    "flip, tril, long, //": lambda m, x: x * m.buf.flip(0) + (m.ints // 2).float() + m.buf[
        :3, :3].tril().sum(),
    "bool and ~": lambda m, x: x.masked_fill(~(m.buf > 0).bool(), 0.0),
    "len and item in Python": lambda m, x: x * len(m.buf) + m.neg.item(),
    "0-d fill value": lambda m, x: x.masked_fill(x > 0, m.neg),
    "sliced by a size": lambda m, x: x + m.pe[:, : x.size(1)].transpose(1, 2)[..., :4].transpose(
        1, 2)[:, :, :3],
    "list and int index": lambda m, x: x + m.buf[[0, 2, 1, 3], 1][:, None],
    # sliced by a size, so traced with buffers as graph attributes: what reads buffers alone
    # (flip, sum: no converter of their own) is computed by PyTorch at conversion
    "buffer math beside a slice by a size": lambda m, x: x + m.pe[:, : x.size(1)] + m.buf.flip(
        0) * m.buf.sum(),
    # a list and an int index of a buffer (PyTorch's rule, not NumPy's, which moves the
    # list's axis first), the int read from x's size
    "list and int index by a size": lambda m, x: x + m.cube[:, [0, 2], :, x.size(2) - 3]
    .reshape(-1)[:12].reshape(4, 3) + m.pe[:, : x.size(1)],
    # buffers as tensors while tracing, indexed by a size (Tensor.__getitem__)
    "a buffer indexed by a size": lambda m, x: x + m.buf[x.size(1) - 3] + m.cube[
        ..., x.size(2) - 1].sum(-1)[:, :, None][:, 0],
    # a table's rows picked by integers computed from x: an Embedding's lookup
    "rows of a buffer by a tensor": lambda m, x: x + m.buf[x.argmax(-1)],
    "rows by positions repeated over the batch": lambda m, x: x + m.buf[
        torch.arange(4).unsqueeze(0).repeat(x.size(0), 1)],
    # a named tuple of results (max's values) computed by PyTorch at conversion
    "max(0).values beside a slice by a size": lambda m, x: x + m.pe[:, : x.size(1)]
    + m.buf.max(0).values,
    "F.normalize beside a slice by a size": lambda m, x: x + m.pe[:, : x.size(1)]
    + F.normalize(m.buf, dim=-1),
    # & of buffer comparisons (operator.and_ is not an in-place call), an eval dropout
    "& and dropout(training=False) beside a slice": lambda m, x: x.masked_fill(
        (m.buf > 0) & (m.ints > 3), 0.0) + m.pe[:, : x.size(1)] + F.dropout(m.buf, 0.1, False),
}


@pytest.mark.parametrize("name", list(BUFFERS))
def test_buffers(name):
    check(Buffers(BUFFERS[name]), torch.randn(2, 4, 3), run_inputs=[(torch.randn(1, 4, 3),)])


def test_in_place_and_random_calls_on_buffers_are_refused():
    # traced with buffers as graph attributes (the slice by a size): folding an in-place
    # call would change a copy, a random one would be drawn once at conversion
    for fn in (lambda m, x: x + m.pe[:, : x.size(1)] + m.buf.clone().mul_(2),
               lambda m, x: x + m.pe[:, : x.size(1)] + torch.rand_like(m.buf),
               lambda m, x: x + m.pe[:, : x.size(1)] + F.gumbel_softmax(m.buf),
               lambda m, x: x + m.pe[:, : x.size(1)] + F.rrelu(m.buf, training=True),
               lambda m, x: x + m.pe[:, : x.size(1)] + F.dropout(m.buf, 0.5),
               lambda m, x: x + m.pe[:, : x.size(1)] + torch.native_dropout(m.buf, 0.5, True)[0],
               lambda m, x: x + m.pe[:, : x.size(1)] + torch.feature_dropout(m.buf, 0.5,
                                                                               train=True)):
        with pytest.raises(TorchConversionError, match="in-place or random"):
            fl.from_torch(Buffers(fn), torch.randn(2, 4, 3))
    # dropouts that do not train fold: the identity
    check(Buffers(lambda m, x: x + m.pe[:, : x.size(1)] + torch.dropout(m.buf, 0.5, train=False)
                  + F.rrelu(m.buf)), torch.randn(2, 4, 3))
    # on a tensor, F.dropout's default training=True drops at random even in eval mode
    with pytest.raises(TorchConversionError, match="training=True"):
        fl.from_torch(Fn(lambda x: F.dropout(x, 0.5)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="indexed by the batch size"):
        fl.from_torch(Buffers(lambda m, x: x + m.buf[x.size(0)]), torch.randn(2, 4, 3))
    # indexed by a tensor: a 2-D table's rows by integers only
    for fn in (lambda m, x: x + m.cube[x.argmax(-1)][..., 0, 0],
               lambda m, x: x + m.buf[x.argmax(-1), 1:][..., None],
               lambda m, x: x + m.buf[x > 0][:1, :1].sum()):
        with pytest.raises(TorchConversionError, match="indexed by a tensor other than"):
            fl.from_torch(Buffers(fn), torch.randn(2, 4, 3))
    # a row number out of range fails as the Embedding's lookup does (PyTorch's IndexError;
    # PyTorch wraps a negative one, fastlayers refuses it)
    model = fl.from_torch(Buffers(lambda m, x: m.buf[(x * 3).long()]), torch.rand(2, 4))
    with pytest.raises(ValueError, match="out of range"):
        model(np.full((1, 4), 2.0, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        model(np.full((1, 4), -0.5, np.float32))


class Overwrites(nn.Module):
    """A buffer written with copy_ inside the forward (HuggingFace's longrope RoPE), then
    read; ``how`` picks what is written and whether it is read before the write."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.register_buffer("freq", torch.tensor([1.0, 2.0, 3.0]))
        self.register_buffer("pe", torch.randn(1, 8, 3))
        self.register_buffer("view", self.freq[:2])
        self.scale = nn.Parameter(torch.tensor([0.5, 1.5, 2.5]))

    def forward(self, x):  # (B, T, 3)
        t = x.size(1)
        pos = torch.arange(t)
        if self.how == "read_before":  # (its value would be what the last call wrote)
            x = x * self.freq
        if self.how == "view_before":  # a view taken before the write, read after it
            view = self.freq[:2]
            self.freq.copy_(x[0, 0].abs())
            return x[..., :2] * view
        if self.how == "registered_view":  # a buffer that is a view of the written one
            self.freq.copy_(x[0, 0].abs())
            return x[..., :2] * self.view
        if self.how == "constant_after":  # a constant write runs while traced: no fx node
            self.freq.copy_(x[0, 0].abs())
            y = x * self.freq
            self.freq.copy_(self.pe[0, 0] * 2)
            return y + x * self.freq
        if self.how == "parameter":
            self.scale.copy_(self.freq)
        elif self.how == "computed":
            y = x * 2
            y.copy_(x)
            return y
        elif self.how == "inputs":  # a value computed from x: the same shape
            self.freq.copy_(x[0, 0].abs())
        elif self.how == "cached":  # a plain attribute set by the forward, read after
            self.cache = torch.where(pos.max() + 1 > 4, self.pe[0, 0] * 2, self.pe[0, 1])
            self.freq.copy_(self.cache)
        else:  # a 0-d value, broadcast as PyTorch's copy_ does; picked by the length
            self.freq.copy_(torch.where(pos.max() + 1 > 4, torch.tensor(7.0), torch.tensor(0.5)))
        return x * self.freq + self.pe[:, :t] + self.freq.sum()


def test_buffer_overwritten_before_it_is_read(any_backend):
    for how in ("constant", "cached", "inputs"):
        for t in (3, 6):
            module = Overwrites(how).eval()
            check(module, torch.randn(2, t, 3), run_inputs=[(torch.randn(3, t, 3),)])
            vars(module).pop("cache", None)  # (set by PyTorch's own calls in check)
            before = module.freq.clone()
            model = fl.from_torch(module, torch.randn(2, t, 3))
            assert torch.equal(module.freq, before), "the module's buffer is restored"
            assert "cache" not in vars(module), "the traced forward's attribute is removed"
            if how == "inputs":  # (the first sample's first row: PyTorch's own result)
                x = torch.randn(3, t, 3)
                with torch.no_grad():
                    want = module(x)
                np.testing.assert_allclose(model(x.numpy()), want.numpy(), rtol=1e-6)
    for how, message in (("read_before", "which the forward reads before it"),
                         ("parameter", "into the parameter 'scale'"),
                         ("computed", "into a computed tensor"),
                         # from the review of 2026-12-06: each was converted, silently wrong
                         ("view_before", "whose memory '_tensor_constant0' shares"),
                         ("registered_view", "whose memory 'view' shares"),
                         ("constant_after", "writes its buffer")):
        with pytest.raises(TorchConversionError, match=message):
            fl.from_torch(Overwrites(how), torch.randn(2, 4, 3))


class BatchNormAfterCopy(nn.Module):
    """copy_ into a buffer that a module converted whole reads (second review, 2026-12-06:
    converted with the old running_mean, silently wrong)."""

    def __init__(self, before):
        super().__init__()
        self.bn, self.before = nn.BatchNorm1d(4).eval(), before

    def forward(self, x):
        if self.before:
            y = self.bn(x)
            self.bn.running_mean.copy_(x.mean(0))
            return y
        self.bn.running_mean.copy_(x.mean(0))
        return self.bn(x)


class LayerNormWeightAsBuffer(nn.Module):
    """A LayerNorm whose weight is a non-persistent buffer, written before the LayerNorm
    reads it (third review, 2026-12-06: not refused, silently wrong)."""

    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(4)
        weight = self.ln.weight.detach().clone()
        del self.ln.weight
        self.ln.register_buffer("weight", weight, persistent=False)

    def forward(self, x):
        self.ln.weight.copy_(x.mean(0))
        return self.ln(x)


def test_copy_into_a_buffer_a_whole_module_reads_is_refused():
    for before in (False, True):
        with pytest.raises(TorchConversionError, match="which the module 'bn' reads"):
            fl.from_torch(BatchNormAfterCopy(before), torch.randn(3, 4))
    with pytest.raises(TorchConversionError, match="which the module 'ln' reads"):
        fl.from_torch(LayerNormWeightAsBuffer(), torch.randn(3, 4))


class CountsCalls(nn.Module):
    """A tensor held as a plain attribute, written in place by the forward: that runs while
    tracing, with no graph node (noticed by the second review, 2026-12-06: it was left
    changed, and the converted model used the trace's value)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.count = torch.zeros(())

    def forward(self, x):
        self.count.add_(1)
        return self.lin(x) * self.count


def test_a_tensor_attribute_written_in_place_is_refused_and_put_back():
    module = CountsCalls()
    with pytest.raises(TorchConversionError, match=r"tensor attribute\(s\) \['count'\] in place"):
        fl.from_torch(module, torch.randn(2, 3))
    assert float(module.count) == 0.0
    # tensors that cannot be compared as bytes (quantized, a conjugate view), left untouched:
    # converted (the fourth review, 2026-12-06: a segfault and a bare RuntimeError)
    for held in (torch.quantize_per_tensor(torch.randn(3), 0.1, 0, torch.qint8),
                 torch.randn(3, dtype=torch.cfloat).conj()):
        other = Fn(lambda x: x * 2)
        other.held = held
        check(other, torch.randn(2, 3))


class _Fixed(dict):
    """A dict whose contents cannot change (as a HuggingFace ModelOutput's update raises)."""

    def update(self, *args, **kwargs):
        raise RuntimeError("fixed")

    def clear(self):
        raise RuntimeError("fixed")


class FillsAttributes(nn.Module):
    """A forward that fills containers held as attributes in place while traced."""

    def __init__(self):
        super().__init__()
        self.stats, self.history = {"calls": 0}, [1]
        self._memo, self.nested = {}, {"scale": []}
        self.queue = collections.deque()
        self.by_key, self.counts = collections.defaultdict(list), collections.Counter()
        self.pair = ([], [])  # a tuple's lists (third review, 2026-12-06)
        self.labels = _Fixed({0: "neg"})  # never written: left alone

    def forward(self, x):
        y = x * 2
        self.stats["mean"] = y.mean()
        self.history.append(y.shape[0])
        self._memo["scale"] = y.sum()
        self.nested["scale"].append(y.max())
        self.queue.append(y.min())
        self.by_key["k"].append(y)
        self.counts["calls"] += 1
        self.pair[0].append(y)
        return y


def test_attributes_filled_in_place_are_put_back():
    module = FillsAttributes()
    check(module, torch.randn(2, 3))
    for name in ("stats", "history", "_memo", "nested", "queue", "counts"):
        vars(module)[name] = type(vars(module)[name])()  # what PyTorch's own calls wrote
    module.by_key, module.pair = collections.defaultdict(list), ([], [])
    module.stats["calls"], module.history[:] = 0, [1]
    module.nested["scale"] = inner = []
    fl.from_torch(module, torch.randn(2, 3))
    assert module.stats == {"calls": 0} and module.history == [1]  # no Proxy left behind
    assert module._memo == {} and module.nested == {"scale": []} and not module.queue
    assert module.nested["scale"] is inner and dict(module.labels) == {0: "neg"}
    assert not module.by_key and not module.counts and module.pair == ([], [])
    module(torch.randn(2, 3))  # the module still runs


TOPK = {
    "values and indices": lambda x: torch.topk(x, 3).values * torch.topk(x, 3).indices,
    "smallest along dim 1, by keyword": lambda x: torch.topk(x, k=2, dim=1,
                                                             largest=False)[0].sum(1),
    # (unsorted: PyTorch's order is unspecified, so only what does not depend on it)
    "method, unsorted": lambda x: x.topk(4, sorted=False)[0].sum(-1, keepdim=True)
    - x.topk(1).values,
    # a router: softmax, topk, the values divided in place by their sum (Mixtral's)
    "router": lambda x: _router(x),
    "on a conv's channels (channels-last inside)": lambda x: torch.topk(
        nn.functional.conv2d(x[:, None, :3, :4], torch.ones(5, 1, 2, 2)), 2, dim=1).values,
    # integers (distinct: of equal values PyTorch's choice is unspecified)
    "integers": lambda x: torch.topk((x * 1e4).round().long(), 3)[0].float() * 1e-4,
}


def _router(x):
    probs = torch.softmax(x, dim=-1)
    top, index = torch.topk(probs, 2, dim=-1)
    top /= top.sum(dim=-1, keepdim=True)
    return top * index


@pytest.mark.parametrize("name", list(TOPK))
def test_topk(name):
    check(Fn(TOPK[name]), torch.randn(3, 6, 7), run_inputs=[(torch.randn(1, 6, 7),)])


def test_topk_refusals_and_errors():
    with pytest.raises(TorchConversionError, match="topk with a k that is not a number"):
        fl.from_torch(Fn(lambda x: torch.topk(x, torch.tensor(2))[0]), torch.randn(2, 5))
    # along the batch axis: k more than a batch's rows fails at run time, as in PyTorch
    model = fl.from_torch(Fn(lambda x: torch.topk(x, 2, dim=0)[0]), torch.randn(3, 5))
    with pytest.raises(ValueError, match="k = 2 is out of range for an axis of size 1"):
        model(np.ones((1, 5), np.float32))


def test_list_indexing_refusals():
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(TorchConversionError, match="one list of ints without an int index"):
        fl.from_torch(Fn(lambda x: x[:, [0, 2], :, 0]), x)  # NumPy would move the list's axis
    with pytest.raises(TorchConversionError, match="one list of ints"):
        fl.from_torch(Fn(lambda x: x[:, [True, False, True]]), x)
    check(Fn(lambda x: x[:, [0, 2]] * 2), x)


def test_asserts_on_tensor_values_are_refused():
    with pytest.raises(TorchConversionError, match="assert on tensor values"):
        fl.from_torch(AssertsOnValues(), torch.randn(2, 3))


class LlamaBlock(nn.Module):
    """A Llama-style decoder block written by hand: RMSNorm from pow, mean and rsqrt (with
    float() and type_as), rotary embeddings from cos / sin buffers and rotate_half (slices,
    neg, cat), causal attention from @, a masked_fill of a tril buffer and softmax, and a
    SwiGLU MLP."""

    def __init__(self, d=32, h=4, t=12):
        super().__init__()
        self.h = h
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.w1, self.w3 = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, 3 * d, bias=False)
        self.w2 = nn.Linear(3 * d, d, bias=False)
        self.g1, self.g2 = nn.Parameter(torch.rand(d) + 0.5), nn.Parameter(torch.rand(d) + 0.5)
        hd = d // h
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        emb = torch.outer(torch.arange(t).float(), inv).repeat(1, 2)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())
        self.register_buffer("mask", torch.tril(torch.ones(t, t)).view(1, 1, t, t))

    @staticmethod
    def rms(x, g):
        return (x.float() * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)).type_as(x) * g

    @staticmethod
    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def forward(self, x):
        b, t, c = x.shape
        y = self.rms(x, self.g1)
        q, k, v = (w(y).view(b, t, self.h, c // self.h).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))
        cos, sin = self.cos[:t], self.sin[:t]  # buffers sliced by a size read from x
        q = q * cos + self.rotate_half(q) * sin
        k = k * cos + self.rotate_half(k) * sin
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.h))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(b, t, c)
        x = x + self.wo(y)
        y = self.rms(x, self.g2)
        return x + self.w2(F.silu(self.w1(y)) * self.w3(y))


def test_llama_style_block():
    check(LlamaBlock(), torch.randn(3, 10, 32), run_inputs=[(torch.randn(1, 10, 32),)])


UNARY_INPUTS = {"log": "positive", "sqrt": "positive", "rsqrt": "positive",
                "reciprocal": "positive", "log1p": "positive"}


@pytest.mark.parametrize("name", ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal",
                                  "square", "sin", "cos", "log1p", "expm1"])
@pytest.mark.parametrize("form", ["torch", "method"])
@pytest.mark.parametrize("conv", [False, True])
def test_elementwise_functions(name, form, conv):
    def fn(x):
        if UNARY_INPUTS.get(name) == "positive":
            x = x * x + 0.5
        return getattr(torch, name)(x) if form == "torch" else getattr(x, name)()

    check(Fn(fn, conv), torch.randn(2, 3, 5, 4), elementwise=not conv)


ARITHMETIC = {
    "x ** 2": lambda x: x ** 2,
    "x ** 0.5": lambda x: (x * x) ** 0.5,
    "2 ** x": lambda x: 2 ** x,
    "torch.pow": lambda x: torch.pow(x, 3),
    "Tensor.pow": lambda x: x.pow(x * 0 + 2),
    # PyTorch's scalar powers: 2 and 3 multiplied, +-0.5 by sqrt, -1 and -2 divided (GPT-2's
    # gelu takes x ** 3.0); 2.5 NumPy's power
    "scalar powers": lambda x: (torch.pow(x, 3.0) + x ** 2.0 + (x.abs() + 1) ** -0.5
                                + (x.abs() + 1) ** -1 + (x.abs() + 1) ** -2.0
                                + (x.abs() + 1) ** 2.5),
    "-x": lambda x: -x + 1,
    "clamp": lambda x: torch.clamp(x, min=-0.5, max=0.7),
    "clamp min": lambda x: x.clamp(min=0.1),
    "clip": lambda x: x.clip(-0.3, 0.3),
    "clamp_min / clamp_max": lambda x: x.clamp_min(-0.2).clamp_max(0.4),
    "comparisons": lambda x: (x > 0).float() + (x <= 0.5).float() * 2 + x.eq(x).float(),
    "masked_fill": lambda x: x.masked_fill(x < 0, -3.0),
    "type_as": lambda x: (x > 0).type_as(x) * x,
}


@pytest.mark.parametrize("name", list(ARITHMETIC))
@pytest.mark.parametrize("conv", [False, True])
def test_elementwise_arithmetic(name, conv):
    check(Fn(ARITHMETIC[name], conv), torch.randn(2, 3, 5, 4), elementwise=not conv)


class TinyViT(nn.Module):
    """A vision transformer as timm writes one: patches by a strided conv, flatten(2) and
    transpose, a class token expanded to the batch (cls_token.expand(B, -1, -1)),
    position embeddings, encoder layers, the class token's LayerNorm and head."""

    def __init__(self, d=16, patch=4, img=16, classes=5):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, 4, 32, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def test_vision_transformer():
    check(TinyViT(), torch.randn(2, 3, 16, 16), run_inputs=[(torch.randn(3, 3, 16, 16),)])


class ShapeOps(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.randn(6, 4))
        self.b = nn.Parameter(torch.randn(6))

    def forward(self, x):
        return self.fn(self, x)


SHAPE_OPS = {  # on x (B, 3, 4)
    "unsqueeze / squeeze": lambda m, x: x.unsqueeze(1).unsqueeze(-1).squeeze(-1).squeeze(1),
    "torch.unsqueeze / squeeze": lambda m, x: torch.squeeze(torch.unsqueeze(x, 2), 2) * 2,
    "squeeze a size > 1 (no-op)": lambda m, x: x.squeeze(2),
    "squeeze()": lambda m, x: x[:, :1].squeeze(1) + m.w[:1, :4].squeeze(),
    "stack": lambda m, x: torch.stack([x, x * 2, -x], dim=1),
    "stack -1": lambda m, x: torch.stack((x, x + 1), -1),
    "F.linear": lambda m, x: F.linear(x, m.w, m.b),
    "F.linear no bias": lambda m, x: F.linear(x, m.w),
    "bmm": lambda m, x: torch.bmm(x, x.transpose(1, 2)),
    "einsum": lambda m, x: torch.einsum("bij,kj->bik", x, m.w),
    "einsum list": lambda m, x: torch.einsum("bij,bkj->bik", [x, x]),
    "where": lambda m, x: torch.where(x > 0, x, x * 0.1),
    "where scalar": lambda m, x: torch.where(x > 0, x, 0.0),
    "expand": lambda m, x: m.b[:4].view(1, 1, 4).expand(x.size(0), 3, -1) + x,
    "unbind": lambda m, x: x.unbind(1)[2] * 2 + torch.unbind(x, dim=-2)[0],
    "new_zeros / new_ones / new_full": lambda m, x: (
        x + x.new_zeros(x.size(0), 3, 4) + x.new_ones((1, 4)) * 2 + x.new_full((3, 1), 0.5)
        + x.new_full(size=(4,), fill_value=2.0)),
    "addmm": lambda m, x: torch.addmm(m.b, x.reshape(-1, 4), m.w.T).view(x.size(0), 3, 6),
    "addmm of tensors": lambda m, x: torch.addmm(x[:, 0], x[:, 1], m.w[:4, :4]),
    "unbind -1": lambda m, x: torch.stack(x.unbind(-1)[::-1], dim=1),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops(name):
    check(ShapeOps(SHAPE_OPS[name]), torch.randn(2, 3, 4),
          run_inputs=[(torch.randn(5, 3, 4),)])


class HFBertSelfAttention(nn.Module):
    """BERT's self-attention as HuggingFace's modeling_bert writes it: the extended mask
    (1.0 - mask[:, None, None, :].to(dtype=x.dtype)) * torch.finfo(x.dtype).min, heads by
    x.size()[:-1] + (heads, head_size), matmul / math.sqrt, softmax, and the output dense,
    residual and LayerNorm (eps 1e-12)."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads, self.head_size = heads, d // heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.dense, self.norm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-12)

    def split_heads(self, x):
        return x.view(x.size()[:-1] + (self.heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden, attention_mask):
        mask = attention_mask[:, None, None, :].to(dtype=hidden.dtype)
        mask = (1.0 - mask) * torch.finfo(hidden.dtype).min
        q, k = self.split_heads(self.query(hidden)), self.split_heads(self.key(hidden))
        v = self.split_heads(self.value(hidden))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + mask
        ctx = torch.matmul(nn.functional.softmax(scores, dim=-1), v)
        ctx = ctx.permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.size()[:-2] + (self.heads * self.head_size,))
        return self.norm(self.dense(ctx) + hidden)


class HFGPT2Attention(nn.Module):
    """GPT-2's attention as HuggingFace's modeling_gpt2 writes it: Conv1D layers
    (torch.addmm(bias, x.view(-1, x.size(-1)), weight)), a causal bool buffer sliced by the
    query and key lengths, torch.where with a torch.full mask value of
    torch.finfo(w.dtype).min in w's dtype and device."""

    class Conv1D(nn.Module):
        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
            self.bias = nn.Parameter(torch.randn(nf) * 0.1)

        def forward(self, x):
            size_out = x.size()[:-1] + (self.nf,)
            return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)

    def __init__(self, d=32, heads=4, positions=16):
        super().__init__()
        self.d, self.heads = d, heads
        self.c_attn = HFGPT2Attention.Conv1D(3 * d, d)
        self.c_proj = HFGPT2Attention.Conv1D(d, d)
        causal = torch.tril(torch.ones((positions, positions), dtype=torch.bool))
        self.register_buffer("bias", causal.view(1, 1, positions, positions), persistent=False)

    def forward(self, x):
        q, k, v = self.c_attn(x).split(self.d, dim=2)
        q, k, v = (t.view(t.size()[:-1] + (self.heads, self.d // self.heads)).permute(0, 2, 1, 3)
                   for t in (q, k, v))
        w = torch.matmul(q, k.transpose(-1, -2)) / torch.full(
            [], v.size(-1) ** 0.5, dtype=q.dtype, device=q.device)
        ql, kl = q.size(-2), k.size(-2)
        causal = self.bias[:, :, kl - ql:kl, :kl]
        mask_value = torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype, device=w.device)
        w = nn.functional.softmax(torch.where(causal, w.to(w.dtype), mask_value), dim=-1)
        out = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        return self.c_proj(out.view(out.size()[:-2] + (self.d,)))


def test_huggingface_style_attention():
    masks = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    check(HFBertSelfAttention(), torch.randn(2, 7, 32), masks,
          run_inputs=[(torch.randn(1, 7, 32), torch.tensor([[1, 1, 0, 1, 1, 1, 0]]))])
    check(HFGPT2Attention(), torch.randn(2, 9, 32), run_inputs=[(torch.randn(3, 9, 32),)])
    assert isinstance(torch.finfo(torch.float32), torch.finfo)  # the real one, restored


class ShapeIdioms(nn.Module):
    """What current HuggingFace code (transformers 4.48+) does with what the examples fix:
    a star-unpacked shape ``(*x.shape[:-1], -1, d)``, a loop over ``x.chunk()``, branches
    on a rank and a dtype, and on sizes (a channel check, padding to a multiple of 4),
    and ``int(math.ceil(...))`` of a size."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 12)
        self.channels = 12
        self.register_buffer("positions", torch.arange(40.0).reshape(1, 40, 1) / 40)

    def forward(self, x, mask):
        if x.dtype != self.lin.weight.dtype:
            x = x.to(self.lin.weight.dtype)
        if x.shape[-1] != self.channels:
            raise ValueError("channels")
        if mask.ndim == 2:
            mask = mask[:, :, None]
        t = x.shape[1]
        h = self.lin(x) * mask + self.positions[:, :t]
        heads = h.view(*h.shape[:-1], -1, 4).transpose(1, 2)  # (B, 3, T, 4)
        parts = [p * (i + 1) for i, p in enumerate(heads.chunk(3, dim=1))]
        h = torch.cat([*parts], dim=1).transpose(1, 2).reshape(*h.shape)
        if t % 4 != 0:
            h = nn.functional.pad(h, (0, 0, 0, 4 - t % 4))
        n = int(math.ceil(t / 4) * 4)
        return h.reshape(h.shape[0], n // 4, 48)


@pytest.mark.parametrize("t", [7, 8])
def test_what_the_examples_fix_is_known_while_tracing(any_backend, t):
    x, mask = torch.randn(2, t, 12), (torch.rand(2, t) > 0.3).float()
    check(ShapeIdioms(), x, mask, run_inputs=[(torch.randn(3, t, 12), torch.ones(3, t))])
    # float64 examples: the trace sees the float32 the converted model computes in, so
    # `x.dtype != weight.dtype` is False there as in the model (no cast left in the graph)
    module = ShapeIdioms().eval()
    model = fl.from_torch(module, (x.double(), mask.double()))
    with torch.no_grad():
        _compare(model(x.double().numpy(), mask.double().numpy()), module(x, mask))


class HFMaskFunctions(nn.Module):
    """How HuggingFace's masking_utils (transformers 5) makes a 4-D mask from a (B, S)
    padding mask: index tensors from torch.arange, of the batch size too, broadcast by
    None-indexing, the padding mask gathered with them (``padding_mask[batch_idx, kv_idx]``)
    and expanded to the batch size; and GPT-2's sequence classification pooling, one row per
    sample picked by index tensors (``logits[torch.arange(batch), last]``)."""

    def forward(self, x, padding_mask, last):
        b, s = padding_mask.shape
        batch_idx = torch.arange(b, device=x.device)[:, None, None, None]
        q_idx = torch.arange(s)[None, None, :, None]
        kv_idx = torch.arange(s)[None, None, None, :]
        allowed = (kv_idx <= q_idx) & padding_mask.bool()[batch_idx, kv_idx]
        allowed = allowed.expand(b, -1, s, s)
        scores = (x @ x.transpose(-1, -2))[:, None]
        probs = torch.where(allowed, scores, torch.finfo(scores.dtype).min).softmax(-1)
        out = (probs @ x[:, None])[:, 0]  # (B, S, D)
        pairs = torch.tensor([[0, 1], [2, 1]])
        # an int selects its axis first (NumPy alone would move the index's axes first)
        x4 = x[:, None].expand(b, 2, s, x.shape[-1])
        return (out[torch.arange(b), last], out[:, pairs], x4[:, 0, :, pairs],
                x4[0, :, pairs], x4[:, pairs % 2, 1])


def test_index_tensors_and_arange_of_the_batch_size(any_backend):
    def inputs(b):
        mask = torch.ones(b, 6, dtype=torch.long)
        mask[0, 4:] = 0
        return torch.randn(b, 6, 5), mask, torch.randint(0, 6, (b,))

    model = check(HFMaskFunctions(), *inputs(2), run_inputs=[inputs(3), inputs(1)])
    xs = [t.numpy() for t in inputs(3)]
    again = pickle.loads(pickle.dumps(model))  # the index tensors' places in the key
    for got, want in zip(again(*xs), model(*xs)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TorchConversionError, match="boolean mask"):
        fl.from_torch(Fn(lambda x: x[x > 0]), torch.randn(2, 3))


def _returns_tuple(forward):
    """A decorator as HuggingFace's can_return_tuple: forward(self, *args, **kwargs)."""

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        return out if kwargs.get("return_dict", True) else tuple(out.values())

    return wrapper


class _Rotate(nn.Module):  # a module that is no submodule of the converted one (below)
    def forward(self, x):
        return torch.cat([-x[..., 2:], x[..., :2]], dim=-1)


_ROTATE = _Rotate()


class DecoratedForward(nn.Module):
    """A forward behind a ``functools.wraps`` decorator, calling a module made from a
    function outside the model (HuggingFace 5's apply_rotary_pos_emb under the kernels
    package), casting a constant to a traced tensor's dtype, and returning a dict."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("scale", torch.arange(4, dtype=torch.int64))

    @_returns_tuple
    def forward(self, x, mask=None):
        h = _ROTATE(self.lin(x)) * self.scale.to(x.dtype)
        if mask is not None:
            h = h * mask[..., None]
        return {"hidden": h, "pooled": h.mean(1)}


def test_decorated_forwards_and_modules_outside_the_model():
    x, mask = torch.randn(2, 3, 4), torch.ones(2, 3)
    check(DecoratedForward(), x, run_inputs=[(torch.randn(3, 3, 4),)])
    check(DecoratedForward(), x, mask, run_inputs=[(torch.randn(1, 3, 4), torch.zeros(1, 3))])


class BatchBranch(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x):
        if self.how == "if":
            if x.shape[0] > 4:
                return x * 2
            return x
        if self.how == "one":  # PyTorch computes another value at batch 1
            if x.shape[0] > 1:
                return x * 2
            return x
        if self.how == "squeeze":  # and another shape
            if x.size(0) == 1:
                return x[0]
            return x
        if self.how == "fails":  # PyTorch refuses batch 1
            if 1 == x.shape[0]:
                raise ValueError("two or more rows")
            return x + 1
        if self.how == "int":
            return x.reshape(int(x.shape[0]), -1)
        if x.sum() > 0:  # "value": a tensor's values decide
            return x
        return -x


class MergedHeads(nn.Module):
    """Batch and heads merged into one axis (B * H, T, d), as DeBERTa v2 and older attention
    code keep them, then split again by -1 or by the batch read back (size(0) // H), and
    constants repeated to the merged axis by a size read at run time."""

    def __init__(self, heads, split="-1"):
        super().__init__()
        self.heads, self.split = heads, split
        self.rel = nn.Parameter(torch.randn(1, 5, 8))

    def forward(self, x):  # (B, H, T, d)
        y = x.reshape(-1, 5, 8)
        rel = self.rel.repeat(y.size(0), 1, 1)  # one per merged row
        z = torch.bmm(y, (y + rel).transpose(1, 2))
        if self.split == "-1":
            return z.view(-1, self.heads, 5, 5)
        b = z.size(0) // self.heads
        pos = self.rel.expand(self.heads, 5, 8).repeat(b, 1, 1)  # (B * H, 5, 8)
        return (z @ pos).view(b * 1 + 0, self.heads * 5, 8)


@pytest.mark.parametrize("heads", [1, 4, 12])
@pytest.mark.parametrize("split", ["-1", "batch"])
def test_batch_and_heads_merged_into_one_axis(heads, split):
    """Twelve heads failed to convert (the merged axis tried as 2, 1, 8 and 16 rows, none a
    multiple of 12), four gave the split a fixed batch of 2 in the summary: unknown sizes
    now carry their multiple of the batch (_symbolic.SymbolicTensor.mult)."""
    module = MergedHeads(heads, split)
    model = check(module, torch.randn(2, heads, 5, 8),
                  run_inputs=[(torch.randn(1, heads, 5, 8),), (torch.randn(3, heads, 5, 8),)])
    assert model.inner.outputs[0].shape[0] is None


@pytest.mark.parametrize("fn,message", [
    (lambda y: y.view(y.size(0) // 0, -1), "a positive int for //"),
    (lambda y: y.view(y.size(0) / 2, -1), "arithmetic on a size known only at run time"),
    (lambda y: y.view(3 - y.size(0), -1), "arithmetic on a size known only at run time"),
    (lambda y: y.repeat(y.size(0) * 0.5, 1, 1), "an int for +, - and *"),
])
def test_arithmetic_on_the_batch_size_refused(fn, message):
    with pytest.raises(TorchConversionError, match=re.escape(message)):
        fl.from_torch(Fn(fn).eval(), torch.randn(2, 3, 4))


class OlderAttentionCode(nn.Module):
    """What HuggingFace's older attention code does: checks a (B * H, T, T) scores axis
    against bsz * H (XGLM, BLOOM), a constant of a traced tensor's dtype (GPT-Neo), torch.eye
    of a size (XLNet), an sdpa flag computed from sizes (``q_length > 1 and ...``, false
    here: fx passes the comparison itself, SegFormer)."""

    def forward(self, x):  # (B, H, T, d)
        b, h, t, d = x.shape
        y = x.reshape(b * h, t, d)
        s = torch.bmm(y, y.transpose(1, 2)) + torch.eye(t) * 2
        if s.size() != (b * h, t, t):
            raise ValueError("not reached")
        s = torch.maximum(s, torch.tensor(torch.finfo(s.dtype).min, dtype=s.dtype))
        q = s.view(b, h, t, t)
        return F.scaled_dot_product_attention(q, q, q, is_causal=t > 8 and True)


def test_older_attention_code():
    check(OlderAttentionCode(), torch.randn(2, 3, 4, 5),
          run_inputs=[(torch.randn(1, 3, 4, 5),), (torch.randn(3, 3, 4, 5),)])


class ItemAssignment(nn.Module):
    """x[key] = value on constants built in forward from sizes (BEiT's relative position
    index), on tensors computed from the input, and the refused cases."""

    def __init__(self, how="index"):
        super().__init__()
        self.how = how
        self.register_buffer("table", torch.arange(12.0))

    def forward(self, x):  # (B, T, 4)
        t = x.shape[1]
        if self.how == "input":  # on tensors computed from the input: an op
            y = x * 1.0
            y[:, 0] = 0.0  # a slice
            y[y > 1] = -1.0  # a boolean mask
            rows = torch.arange(y.size(0))
            y[rows, (rows + 1).clamp(max=t - 1)] = x[:, 0] * 2  # index tensors, a tensor value
            z = x * 2
            z[:, 1] += 3  # through a view, then written back (z[k] += v)
            return y + z
        if self.how == "buffer":
            self.table[0] = 1.0
            return x
        if self.how == "through_view":  # a write through a view; the base read after it
            z = x * 2
            z[0][1] = 5.0
            return z
        if self.how == "const_index":  # z[:, idx] += v with a constant index tensor
            z = x * 2
            z[:, torch.tensor([1, 3, 1])] += 1.5
            return z
        if self.how == "int_beside":  # NumPy would move the indexed axis first
            z = x * 2
            z[0, torch.tensor([1, 3])] = x[0, :2] * 0 + 1
            return z
        if self.how == "tuple_beside":  # a tuple is an index array too
            z = x * 2
            z[0, (1, 3)] = x[0, :2] * 0 + 1
            return z
        if self.how == "false_key":  # x[False] is not x[0]: no write-back
            z = x * 2
            t = z[0]
            t += 1
            z[False] = t
            return z
        if self.how == "long_copy":  # .long() of a float tensor is a copy
            z = (x * 4).long()
            w = x.long()
            w += 1
            return (z + w).float()
        if self.how == "long_alias":  # .long() of an int64 tensor is that tensor
            z = (x > 0).long()
            w = z.long()
            w[:, 0] = 7
            return x + z
        if self.how == "traced_view":  # a view taken before z[k] += v, read after it
            z = x * 2
            v = z[:, 2]
            z[:, 1] += 3
            return z + v[:, None]
        coords = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij"))
        rel = (coords[0] - coords[1]).contiguous()
        view = rel[0]  # a view in PyTorch
        rel[:, 0] += t - 1  # through getitem, iadd and setitem
        index = torch.zeros(size=(t + 1,) * 2, dtype=rel.dtype)
        index[1:, 1:] = rel
        index[0, :] = 11
        if self.how == "view":
            return x * view[0]  # read after the write: PyTorch sees it through the view
        return x + self.table[index.clamp(0, 11)][1:, 1:].sum(1)[:, None]


def test_item_assignment(any_backend):
    for how in ("index", "input", "const_index", "long_copy"):
        check(ItemAssignment(how), torch.randn(2, 5, 1) * 2,
              run_inputs=[(torch.randn(3, 5, 1) * 2,), (torch.randn(1, 5, 1) * 2,)])
    for how, message in (("view", "getitem_3, which shares its memory in PyTorch, is read "
                                  "after it"),
                         ("traced_view", "which shares its memory in PyTorch, is read after"),
                         ("through_view", "which shares its memory in PyTorch, is read after"),
                         ("int_beside", "an int beside index arrays"),
                         ("tuple_beside", "an int beside index arrays"),
                         ("false_key", "which shares its memory in PyTorch"),
                         ("long_alias", "long, which shares its memory in PyTorch"),
                         ("buffer", "writes its buffer")):
        with pytest.raises(TorchConversionError, match=message):
            fl.from_torch(ItemAssignment(how), torch.randn(2, 5, 1))


class StepLoop(nn.Module):
    """A recurrent cell called over the time steps in a Python loop (unrolled by the trace:
    range() of a size the examples fix), with or without an initial state."""

    def __init__(self, kind, state):
        super().__init__()
        self.kind, self.state = kind, state
        self.cell = {"lstm": nn.LSTMCell(4, 6), "gru": nn.GRUCell(4, 6),
                     "rnn": nn.RNNCell(4, 6, nonlinearity="relu")}[kind]

    def forward(self, x):  # (B, T, 4)
        h = torch.ones(x.size(0), 6) * 0.5 if self.state else None
        if self.kind == "lstm" and self.state:
            h = (h, -h)
        outs = []
        assert isinstance(range(2), range)  # still a type while tracing
        for t in range(x.size(1)):
            h = self.cell(x[:, t], h)
            outs.append(h[0] if self.kind == "lstm" else h)
        return torch.stack(outs, 1), h


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("state", [False, True])
def test_recurrent_cells_in_a_loop(kind, state):
    check(StepLoop(kind, state), torch.randn(2, 5, 4), run_inputs=[(torch.randn(1, 5, 4),),
                                                                   (torch.randn(3, 5, 4),)])


def test_a_loop_over_the_batch_is_refused():
    with pytest.raises(TorchConversionError,
                       match=r"test_from_torch\.py:\d+ decides on the batch size \(an if, "
                             r"int\(\), float\(\) or range"):
        fl.from_torch(Fn(lambda x: torch.stack([x[i] * i for i in range(x.size(0))])),
                      torch.randn(2, 5))


class TensorOfSizes(nn.Module):
    """torch.tensor of sizes, and constant 0-d tensors as bounds (DeBERTa's attention)."""

    def __init__(self, batch=False):
        super().__init__()
        self.batch = batch

    def forward(self, x):
        if self.batch:
            return x / torch.tensor(x.size(0))
        span = torch.tensor(min(max(x.size(1), x.size(2)), 3))
        scale = torch.sqrt(torch.tensor(x.size(-1), dtype=torch.float) * 2)
        return torch.clamp(x[:, 4 - span:4 + span] / scale, -span, span * 0.5)


def test_torch_tensor_of_sizes(any_backend):
    check(TensorOfSizes(), torch.randn(2, 7, 5), run_inputs=[(torch.randn(3, 7, 5) * 4,)])
    with pytest.raises(TorchConversionError, match="decides on the batch size"):
        fl.from_torch(TensorOfSizes(batch=True), torch.randn(2, 7, 5))


class ExpandUnlessOneRow(nn.Module):
    """HuggingFace's masking code (masking_utils): position ids (1, T), expanded to the batch
    unless it is 1, which computes the same at batch 1."""

    def forward(self, x):
        pos = torch.arange(x.shape[1]).unsqueeze(0)
        if x.shape[0] != pos.shape[0]:
            pos = pos.expand(x.shape[0], -1)
        return x + pos.unsqueeze(-1).float()


@pytest.mark.parametrize("rows", [1, 2])
def test_a_test_of_batch_one_converts_on_the_path_of_two_rows(rows):
    """Converted from 1-row examples too (traced again with 2 rows), and run at 1-3 rows."""
    check(ExpandUnlessOneRow(), torch.randn(rows, 5, 3),
          run_inputs=[(torch.randn(1, 5, 3),), (torch.randn(3, 5, 3),)])


def test_branches_on_the_batch_size_or_values_are_refused():
    x = torch.randn(2, 3, 4)
    for how in ("if", "int"):
        with pytest.raises(TorchConversionError, match="decides on the batch size"):
            fl.from_torch(BatchBranch(how), x)
    # a test of whether the batch is 1 is converted on the path of 2 or more rows, and
    # refused when that path computes otherwise at batch 1, which PyTorch is run on
    for how, found in (("one", "other values"), ("squeeze", "outputs of other shapes"),
                       ("fails", "fails on 1 row")):
        for rows in (1, 2) if how != "fails" else (2,):  # (1 row fails while tracing)
            with pytest.raises(TorchConversionError,
                               match=rf"test_from_torch\.py:\d+ decide.*batch size is 1.*{found}"):
                fl.from_torch(BatchBranch(how), torch.randn(rows, 3, 4))
    # the trace's error says where in the forward it came from
    with pytest.raises(TorchConversionError, match=r"test_from_torch\.py:\d+: if x\.sum\(\) > 0"):
        fl.from_torch(BatchBranch("value"), x)
    # without examples nothing is fixed while tracing: the star-unpacked shape is refused
    with pytest.raises(TorchConversionError, match="could not trace"):
        fl.from_torch(Fn(lambda x: nn.functional.linear(x, torch.ones(4, 4)).view(
            *x.shape[:-1], 2, 2)))


class Powers(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(0.5))  # a 0-d tensor exponent: std::pow

    def forward(self, x):
        return torch.stack([x ** 2, x ** 3.0, x ** -0.5, x ** -1, x ** -2.0, x ** 0.5,
                            x ** 2.5, x.pow(self.p)], dim=1)


def test_scalar_powers_are_pytorchs(any_backend):
    """2, 3, -0.5, -1 and -2 give PyTorch's bits (its kernel multiplies, divides and takes
    a square root there), also at 0, -0, inf, -inf, NaN and past float32's range; 0.5 as
    PyTorch's square root, within an ulp (NumPy's is correctly rounded); another power, and
    a 0-d tensor as exponent, NumPy's power: within an ulp of PyTorch's on positive finite
    bases (at -0 and -inf a 0-d exponent of 0.5 is NumPy's sqrt, not std::pow: not claimed)."""
    special = [0.0, -0.0, 1.5, -2.25, float("inf"), float("-inf"), float("nan"), 3e30, 1e-30,
               -7.0]
    x = torch.tensor([special, special[::-1]])
    module = Powers().eval()
    model = fl.from_torch(module, x)
    got = model(x.numpy())
    with torch.no_grad():
        want = module(x).numpy()
    np.testing.assert_array_equal(got[:, :5], want[:, :5])
    np.testing.assert_allclose(got[:, 5], want[:, 5], rtol=3e-7, atol=0, equal_nan=True)
    zeros = want[:, 5] == 0
    assert (np.signbit(got[:, 5][zeros]) == np.signbit(want[:, 5][zeros])).all()
    ordinary = (x > 0).numpy() & np.isfinite(x.numpy())
    for k in (6, 7):
        np.testing.assert_allclose(got[:, k][ordinary], want[:, k][ordinary], rtol=3e-7)


class _Cache:  # a value fx cannot record (HuggingFace's DynamicCache)
    pass


def test_an_output_fx_cannot_record_is_named():
    with pytest.raises(TorchConversionError, match="use_cache=False"):
        fl.from_torch(Fn(lambda x: (x * 2, _Cache())), torch.randn(2, 3))


class WritesItsParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))

    def forward(self, x):
        w = self.w
        w.mul_(2)
        return x * w


def test_the_examples_run_leaves_the_module_unchanged():
    module = WritesItsParameter()
    with pytest.raises(TorchConversionError):
        fl.from_torch(module, torch.randn(2, 4))
    assert torch.equal(module.w.detach(), torch.ones(4))


def test_addmm_with_beta_or_alpha_refused():
    with pytest.raises(TorchConversionError, match="addmm with beta=2"):
        fl.from_torch(ShapeOps(lambda m, x: torch.addmm(m.b, x[:, 0], m.w[:, :4].T, beta=2)),
                      torch.randn(2, 3, 4))


EXTREMES = {  # after a conv (the channels-last layout) and without; int results as floats
    "max(dim).values": lambda y: y.max(dim=1).values,
    "max(dim).indices": lambda y: y.max(1).indices.float(),
    "torch.max keepdim [0]": lambda y: torch.max(y, 2, keepdim=True)[0],
    "torch.min(dim=-1)[1]": lambda y: torch.min(y, dim=-1)[1].float(),
    "max()": lambda y: y.max() + y,
    "min()": lambda y: torch.min(y) * y,
    "argmax": lambda y: y.argmax(1).float(),
    "argmax flat": lambda y: torch.argmax(y).float() + y,
    "argmin keepdim": lambda y: y.argmin(dim=-1, keepdim=True).float(),
    "maximum": lambda y: torch.maximum(y, y.flip(-1)),
    "torch.max(y, other)": lambda y: torch.max(y, y * 2),
    "Tensor.min(other)": lambda y: y.min(torch.zeros_like(y)),
    "Tensor.maximum": lambda y: y.maximum(y.mean(1, keepdim=True)),
}


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_max_min_argmax(name, conv):
    check(Fn(EXTREMES[name], conv=conv), torch.randn(2, 3, 5, 6),
          run_inputs=[(torch.randn(3, 3, 5, 6),)])


def test_max_indices_are_int64_and_follow_nans():
    """Indices as PyTorch returns them: int64, the first extreme, a NaN's where one is."""
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, float("nan"), 5.0, float("nan")]])
    net = Fn(lambda y: (torch.max(y, 1), y.argmin(1), torch.min(y, 0).indices)).eval()
    got = fl.from_torch(net, x)(x.numpy())
    (values, indices), argmin, min_indices = net(x)
    for g, w in ((got[0][1], indices), (got[1], argmin), (got[2], min_indices)):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, w.numpy())
    np.testing.assert_array_equal(got[0][0], values.numpy())


TENSOR_OPS = {  # on y (B, C, 5, 6), after a conv or not; int and bool results as floats
    "torch.transpose / permute": lambda y: torch.permute(torch.transpose(y, 1, 3), (0, 2, 1, 3)),
    "t / T / mT": lambda y: (y[0, 0].t(), y[0, 0].T.T.T, y.mT, y[:, 0, 0].t()),
    "view_as / reshape_as / expand_as": lambda y: (
        y.reshape(-1).view_as(y), y.flatten(1).reshape_as(y), y[:, :1].expand_as(y)),
    "type": lambda y: y.type(torch.int64).type(torch.float32),
    "var / std": lambda y: (y.var(-1, keepdim=True), torch.std(y, dim=(1, 2), keepdim=True)),
    "var unbiased=False / correction": lambda y: (
        y.var(1, unbiased=False), torch.var(y, 1, correction=2), y.std(-1, False)),
    "var_mean / std_mean / var()": lambda y: (
        torch.var_mean(y, 2), torch.std_mean(y, (2, 3)), y.var()),
    "prod / logsumexp": lambda y: (
        y.prod(-1), torch.logsumexp(y, 1), y.logsumexp((2, 3), keepdim=True)),
    "any / all": lambda y: ((y > 0).any(-1).float(), torch.all(y > -1, dim=1).float(),
                            (y > 0).any().float()),
    "norm / linalg.norm / vector_norm": lambda y: (
        y.norm(dim=-1), torch.linalg.norm(y, dim=1), torch.norm(y, p=1, dim=-1),
        torch.linalg.vector_norm(y, ord=float("inf"), dim=-1), y.norm(),
        torch.linalg.norm(y, dim=(2, 3)), torch.linalg.norm(y, "fro", dim=(1, 3)),
        torch.linalg.norm(y[0, 0], 1, dim=0)),
    "sign / floor / ceil / round / trunc": lambda y: (
        torch.sign(y), (y * 3).floor(), (y * 3).ceil(), torch.round(y * 4), torch.trunc(y * 2)),
    "erf / atan / tan / log2 / exp2": lambda y: (
        torch.erf(y), torch.atan(y), torch.tan(y / 4), torch.log2(y.abs() + 1), torch.exp2(y)),
    "asin / acos / sinh / cosh / log10": lambda y: (
        torch.asin(y.clamp(-1, 1)), y.clamp(-1, 1).acos(), y.sinh(), torch.cosh(y),
        torch.log10(y.abs() + 1)),
    "isnan / isinf / isfinite / logical_not / nan_to_num": lambda y: (
        torch.isnan(y / y).float(), torch.isinf(1 / y).float(), (y / y).isfinite().float(),
        torch.logical_not(y > 0).float(), torch.nan_to_num(y / y.round(), nan=2.0),
        (1 / y).nan_to_num()),
    "cosine_similarity": lambda y: (
        F.cosine_similarity(y, y.flip(-1), dim=-1), F.cosine_similarity(y, y[:, :1], eps=1e-3)),
    "one_hot": lambda y: F.one_hot(y.argmax(-1), 6).float(),
    "tril / triu": lambda y: (torch.tril(y), y.triu(1), torch.triu(y, diagonal=-1)),
    "gather / index_select": lambda y: (
        y.gather(-1, y.argmax(-1, keepdim=True).expand(-1, -1, -1, 3)),
        torch.index_select(y, 3, torch.tensor([0, 5, 2]))),
    "index by a constant tensor": lambda y: y[:, :, torch.tensor([2, 0])] * 2,
    "F.embedding": lambda y: F.embedding(y[:, 0].argmax(1), torch.arange(24.0).view(6, 4)),
    "rounded division": lambda y: (
        torch.div(y, 0.7, rounding_mode="floor"), torch.div(y, -0.7, rounding_mode="trunc"),
        y // 0.3, torch.div((y * 4).long(), 3, rounding_mode="floor").float(),
        torch.div((y * 4).long(), -3, rounding_mode="trunc").float(),
        ((y * 4).long() // -3).float()),
    "diff / outer": lambda y: (
        torch.diff(y, dim=-1), torch.diff(y, n=2, dim=2), torch.outer(y[0, 0, 0], y[0, 0, 1]),
        torch.diff(y, prepend=y[..., :1] - 1), torch.diff(y, 2, 1, y[:, :2], y[:, -1:] * 3)),
    "clamp with tensor bounds": lambda y: (
        y.clamp(min=y.mean(1, keepdim=True)), torch.clamp(y, y.mean(), y.abs())),
    "log_softmax method / new_tensor": lambda y: (y.log_softmax(1),
                                                 y + y.new_tensor([1.0, 2, 3, 4, 5, 6])),
}


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("name", list(TENSOR_OPS))
def test_more_tensor_ops(name, conv):
    x = torch.randn(2, 3, 5, 6)
    x[0, 0, 0, :3] = 0.0  # signs, roundings and divisions meet zeros
    check(Fn(TENSOR_OPS[name], conv=conv), x, run_inputs=[(torch.randn(3, 3, 5, 6),)])


def test_integer_and_bool_results_keep_pytorchs_dtypes():
    """Each result with PyTorch's dtype and values exactly (check() compares float32 only)."""
    net = Fn(lambda y: (
        (y * 3).round().long().prod(-1), (y > 0).any(-1), torch.all(y > -2, dim=()),
        torch.isnan(y / y), F.one_hot((y > 0).long().sum(-1), 4), y.argmax(1),
        torch.max(y, -1).indices, (y * 2).long().sign(), (y * 2).long().floor(),
        y.new_tensor([1, 2], dtype=torch.long) + (y > 0).long().sum(-1, keepdim=True),
        y + y.new_tensor([0.5]),
        torch.roll(y, 4, 1), torch.var(y, 1, correction=5), torch.std(y[:, :0], 1),
        y.bool(), (y * 3).long().any(dim=()), torch.all(y, dim=()), torch.sign(y > 0),
        (y > 0).square()))
    x = torch.randn(3, 4)
    x[0, 0] = 0.0
    got = fl.from_torch(net.eval(), x)(x.numpy())
    for i, (g, w) in enumerate(zip(got, net(x))):
        w = w.numpy()
        assert g.dtype == w.dtype and g.shape == w.shape, (i, g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=2e-6, err_msg=str(i))
    y = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    rolled = fl.from_torch(Fn(lambda v: torch.roll(v, 4, 1)).eval(), torch.from_numpy(y))(y)
    assert not np.shares_memory(rolled, y)  # a full turn is still a new array


@pytest.mark.parametrize("fn,message", [
    (lambda y: y.msort(), "msort"),  # (argsort converts since session 32)
    (lambda y: torch.linalg.norm(y, 2, dim=(1, 2)), "over two dims (a matrix norm"),
    (lambda y: torch.linalg.norm(y[0], float("inf")), "over two dims (a matrix norm"),
    (lambda y: y.var(dim=(1, -2)), "names an axis twice"),
    (lambda y: y.log_softmax(1, dtype=torch.float64), "log_softmax with dtype=torch.float64"),
    (lambda y: F.softmax(y, 1, dtype=torch.float64), "softmax with dtype=torch.float64"),
    (lambda y: F.softmin(y, 1, dtype=torch.float64), "softmin with dtype=torch.float64"),
    (lambda y: torch.log_softmax(y, 1, torch.float64), "log_softmax with dtype=torch.float64"),
    (lambda y: y / y.numel(), "numel of a tensor with the batch axis"),
    (lambda y: F.one_hot(y.argmax(-1)).float(), "one_hot with num_classes=-1"),
    (lambda y: y.norm(p="nuc", dim=(1, 2)), "norm with p='nuc'"),
    (lambda y: torch.diff(y, n=0), "diff with n < 1"),
])
def test_more_tensor_op_refusals(fn, message):
    with pytest.raises(TorchConversionError, match=re.escape(message)):
        fl.from_torch(Fn(fn).eval(), torch.randn(2, 3, 4))


def test_gather_and_one_hot_check_their_indices_at_run_time():
    one_hot = fl.from_torch(Fn(lambda ids: F.one_hot(ids, 4).float()).eval(),
                            torch.tensor([[0, 3], [1, 2]]))
    np.testing.assert_array_equal(one_hot(np.array([[3, 0]])), [[[0, 0, 0, 1], [1, 0, 0, 0]]])
    with pytest.raises(ValueError, match="one_hot: class values must be in"):
        one_hot(np.array([[4, 0]]))
    gather = fl.from_torch(Fn(lambda i: (i * 1.5).gather(1, i)).eval(), torch.tensor([[0, 1]]))
    np.testing.assert_array_equal(gather(np.array([[1, 1]])), [[1.5, 1.5]])
    with pytest.raises(ValueError, match="out of range for size 2"):
        gather(np.array([[0, 2]]))


class TextCNN(nn.Module):
    """Kim's CNN for sentences: an Embedding, Conv1d of several widths, max over time."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 8)
        self.convs = nn.ModuleList([nn.Conv1d(8, 6, k) for k in (2, 3, 4)])
        self.fc = nn.Linear(18, 2)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)
        return self.fc(torch.cat([torch.max(F.relu(c(x)), dim=2)[0] for c in self.convs], 1))


def test_text_cnn():
    check(TextCNN(), torch.randint(0, 30, (3, 9)), run_inputs=[(torch.randint(0, 30, (1, 9)),)])


class ShiftedWindowAttention(nn.Module):
    """Swin's shifted-window attention as its authors write it: a cyclic shift by roll, the
    window partition (B, H, W, C) -> (B * nW, ws * ws, C) by view / permute, q, k, v by
    unbind, a relative position bias parameter, and the window reverse, whose view reads B
    from the input while the windows' first axis is B * nW."""

    def __init__(self, d=16, ws=4, heads=2, shift=2):
        super().__init__()
        self.ws, self.heads, self.shift = ws, heads, shift
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.bias = nn.Parameter(torch.randn(heads, ws * ws, ws * ws) * 0.1)

    def forward(self, x):  # (B, H, W, C)
        B, H, W, C = x.shape
        ws, s = self.ws, self.shift
        x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        win = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(
            -1, ws * ws, C)
        n = win.shape[0]
        qkv = self.qkv(win).reshape(n, ws * ws, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * (C // self.heads) ** -0.5) @ k.transpose(-2, -1) + self.bias.unsqueeze(0)
        y = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, ws * ws, C)
        y = self.proj(y).view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
        return torch.roll(y.reshape(B, H, W, C), shifts=(s, s), dims=(1, 2))


def test_shifted_window_attention():
    check(ShiftedWindowAttention(), torch.randn(2, 8, 8, 16),
          run_inputs=[(torch.randn(1, 8, 8, 16),), (torch.randn(3, 8, 8, 16),)])
    check(ShiftedWindowAttention(d=8, ws=2, heads=1, shift=1), torch.randn(2, 6, 4, 8),
          run_inputs=[(torch.randn(5, 6, 4, 8),)])


def test_shape_op_refusals():
    with pytest.raises(TorchConversionError, match="unbind along an axis whose size is known"):
        fl.from_torch(Fn(lambda x: x.unbind(0)[0]).eval(), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="squeeze\\(\\) of a tensor with an axis free"):
        fl.from_torch(Fn(lambda x: x.squeeze()), torch.randn(1, 3))
    with pytest.raises(TorchConversionError, match="squeeze of the axis free"):
        fl.from_torch(Fn(lambda x: x.squeeze(0)), torch.randn(1, 3))
    with pytest.raises(TorchConversionError, match="torch.where\\(condition\\)"):
        fl.from_torch(Fn(lambda x: torch.where(x > 0)[0]), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="F.linear needs a 2-D parameter"):
        fl.from_torch(Fn(lambda x: F.linear(x, x)), torch.randn(3, 3))


def test_comparisons_in_pytorchs_dtype():
    # a float32 tensor against a Python float compares in float32 (0.1 is not float64's
    # 0.1), an int64 tensor against a float in float32 (16777217 -> 16777216)
    x = torch.full((2, 3), 0.1)
    for fn in (lambda x: (x == 0.1).float(), lambda x: (x > 0.1).float() - (x >= 0.1).float(),
               lambda x: x.masked_fill(x <= 0.1, -1.0), lambda x: torch.where(x < 0.1, 1.0, 2.0)):
        check(Fn(fn), x)
    ids = torch.full((2, 3), 16777217, dtype=torch.int64)
    check(Fn(lambda i: (i > 16777216.5).float()), ids)


def test_integer_elementwise():
    ids = torch.randint(-5, 9, (2, 6))
    for fn in (lambda i: (i.clamp(min=0.5, max=7.5) * 1.0),  # promoted to float, as PyTorch
               # int64 squares, exact where float32 would round: (i + 2^24 + 1)^2 - (2^24 + 1)^2
               lambda i: (torch.square(i + 16777217) - 281475010265089).float(),
               lambda i: i.masked_fill(i < 0, 3).float(),
               lambda i: torch.where(i > 2, i, -i).float()):
        check(Fn(fn), ids)


class Constants(nn.Module):
    """Shape and elementwise methods of parameters, in PyTorch's keyword forms."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.randn(3, 4))
        self.u = nn.Parameter(torch.randn(1, 4, 1))

    def forward(self, x):
        return self.fn(self, x)


CONSTANTS = {  # on x (B, 4, 3)
    "size(dim=)": lambda m, x: x * m.w.size(dim=0) + m.w.size(1),
    "squeeze((0, 2))": lambda m, x: x + m.u.squeeze((0, 2))[:, None],
    "squeeze(dim)": lambda m, x: x + m.u.squeeze(0),
    "squeeze()": lambda m, x: x + m.u.squeeze()[:, None],
    "unsqueeze": lambda m, x: x + m.w.transpose(0, 1).unsqueeze(0),
    "transpose(dim0=, dim1=)": lambda m, x: x + m.w.transpose(dim0=0, dim1=1),
    "permute(dims=)": lambda m, x: x + m.w.permute(dims=(1, 0)),
    "view(size=)": lambda m, x: x + m.w.view(size=(4, 3)),
    "reshape": lambda m, x: x + m.w.reshape(4, 3),
    "clamp": lambda m, x: x + m.w.clamp(min=0).T,
    "clamp_min": lambda m, x: x + m.w.clamp_min(0.2).T,
    "masked_fill": lambda m, x: x + m.w.masked_fill(m.w > 0, 0.0).T,
    "masked_fill by x": lambda m, x: m.w.T.masked_fill(x > 0, 0.0),
    "type_as": lambda m, x: (x > 0).type_as(m.w) * x,
}


@pytest.mark.parametrize("name", list(CONSTANTS))
def test_methods_of_parameters(name):
    check(Constants(CONSTANTS[name]), torch.randn(2, 4, 3), run_inputs=[(torch.randn(1, 4, 3),)])


CREATIONS = {  # on x (B, 4, 3); Constants has w (3, 4). (fx computes creations of constant
    # sizes itself, and cannot call torch.zeros(x.size(0), 4, 3) with several proxies.)
    "zeros of x's shape, batch included": lambda m, x: torch.zeros(x.shape) + 1,
    "ones of x.size()": lambda m, x: x * torch.ones(x.size()) * 2,
    "full int": lambda m, x: torch.full((x.size(0), 4, 3), 2) * x,
    "full float keyword": lambda m, x: torch.full(size=x.shape, fill_value=0.5) + x,
    "zeros_like": lambda m, x: torch.zeros_like(x) + x * 2,
    "ones_like bool": lambda m, x: torch.ones_like(x > 0).float() + x,
    "full_like": lambda m, x: torch.full_like(x, 0.25) * x,
    "to dtype": lambda m, x: (x * 10).to(torch.long).to(torch.float32) * x,
    "to device": lambda m, x: x.to(x.device) + 1,
    "to other": lambda m, x: (x > 0).to(x) * x + (x * 10).to(torch.long).to(x),
    "to dtype=": lambda m, x: (x > 0).to(dtype=torch.float32) - x,
    "detach / clone": lambda m, x: x.detach().clone() * 3 + torch.clone(x),
    "repeat": lambda m, x: x.repeat(1, 2, 1)[:, 1:5] + m.w.repeat(2, 1)[1:5, :3],
    # int32 computed as int64 (RoBERTa's position ids: mask.int(), cumsum, .long())
    "int32 casts": lambda m, x: (x * 3).int().float() + (x > 0).int().cumsum(1).long(),
    "builtin abs": lambda m, x: abs(x - 0.5) * abs(x.shape[1] - 9),  # ModernBERT's abs()
    # GPT-J's rotary tables, BLOOM's alibi scores
    "repeat_interleave": lambda m, x: (x.repeat_interleave(2, dim=-1)[..., :3]
                                       + torch.repeat_interleave(x, 3, dim=1)[:, ::3]),
    "baddbmm": lambda m, x: (torch.baddbmm(x, x, x.transpose(1, 2)[:, :, :3], beta=0.5,
                                           alpha=0.25)[:, :, :3]
                             + x.baddbmm(x, x[:, :3] * 0 + 1) + torch.baddbmm(
                                 x * float("nan"), x, x[:, :3], beta=0)),
}


@pytest.mark.parametrize("name", list(CREATIONS))
def test_creation_and_casts(name):
    check(Constants(CREATIONS[name]), torch.randn(2, 4, 3), run_inputs=[(torch.randn(1, 4, 3),)])


def test_casts_it_cannot_make_and_parameters_indexed_by_tensors():
    for dtype in (torch.int16, torch.float16, torch.uint8):
        with pytest.raises(TorchConversionError, match="a cast to"):
            fl.from_torch(Fn(lambda x, d=dtype: x.to(d).float()), torch.randn(2, 3))
    # a 2-D parameter's rows by integers: an Embedding's lookup; other ranks are refused
    check(Constants(lambda m, x: m.w[(x > 0).to(torch.long)]), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="indexed by a tensor other than"):
        fl.from_torch(Constants(lambda m, x: m.u[(x > 0).to(torch.long)]), torch.randn(2, 3))


def test_run_time_sizes_are_read_without_a_transpose():
    # the batch size read from a channels-last conv output costs no transpose back
    def layout_ops(fn):
        model = fl.from_torch(Fn(fn, conv=True), torch.randn(2, 3, 5, 4))
        return sum(type(layer).__name__ == "Permute" for layer in model.layers)

    assert layout_ops(lambda y: y.view(y.size(0), -1)) == layout_ops(lambda y: y.flatten(1))
    check(Fn(lambda y: torch.zeros_like(y) + y.view(y.size(0), -1).sum(), conv=True),
          torch.randn(2, 3, 5, 4))


def test_keyword_forms_and_empty_chunks():
    check(Fn(lambda x: x.split(split_size=2, dim=1)[1] * 2), torch.randn(2, 5))
    check(Fn(lambda x: x.matmul(other=x.transpose(0, 1))), torch.randn(3, 4))
    # an empty axis: PyTorch gives `chunks` empty pieces
    check(Fn(lambda x: torch.cat(x.chunk(3, dim=1), dim=-1) + 1), torch.randn(2, 0, 3))


def test_more_refusals():
    with pytest.raises(TorchConversionError, match="masked_fill with a tensor value"):
        fl.from_torch(Fn(lambda x: x.masked_fill(x > 0, x.amax())), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="squeeze with dim=4"):
        fl.from_torch(Fn(lambda x: x.squeeze(4)), torch.randn(2, 3, 1))
    with pytest.raises(TorchConversionError, match="repeat with fewer sizes"):
        fl.from_torch(Fn(lambda x: x.repeat(2)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="neg of a size known only at run time"):
        fl.from_torch(Fn(lambda x: x * -x.size(0)), torch.randn(2, 3))

    class TwoInputs(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(ValueError, match=r"no example input for \['y'\]"):
        fl.from_torch(TwoInputs(), (torch.randn(2, 3),))

    class Positions(nn.Module):  # ids past the table: PyTorch's IndexError at run time
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(8, 4)

        def forward(self, x):
            return x + self.emb(torch.arange(x.size(1)))

    with pytest.raises(TorchConversionError, match="emb.*computed by PyTorch at conversion.*"
                                                   "index out of range"):
        fl.from_torch(Positions(), torch.randn(2, 12, 4))


MORE_OPS = {  # on x (B, 3, 5, 4); conv: the channels-last layout
    "F.normalize": lambda x: F.normalize(x, dim=1),
    "F.normalize p=1, dim=-1": lambda x: F.normalize(x, p=1.0, dim=-1),
    "F.normalize below eps": lambda x: F.normalize(x * 1e-14, dim=2) * 1e12 + F.normalize(
        x * 0, dim=1),  # x / eps where the norm is below it, 0 for zeros
    "torch.flip": lambda x: torch.flip(x, [1, 3]),
    "Tensor.flip": lambda x: x.flip(2) - x.flip(dims=(1,)),
    "torch.cumsum": lambda x: torch.cumsum(x, dim=1),
    "Tensor.cumsum": lambda x: x.cumsum(-1),
    "torch.roll": lambda x: torch.roll(x, 2, 1),
    "Tensor.roll, two axes": lambda x: x.roll((1, -1), (2, 3)),
    "roll flattened": lambda x: torch.roll(x, 3),
    "roll past the size, one axis twice": lambda x: x.roll((11, -7, 2), (-1, 1, -1)),
    "F.normalize p=inf, p=3": lambda x: F.normalize(x, p=float("inf"), dim=1) + F.normalize(
        x, p=3.0, dim=(2, 3)),
    "Tensor.flip varargs": lambda x: x.flip(1, 3),
}


@pytest.mark.parametrize("name", list(MORE_OPS))
@pytest.mark.parametrize("conv", [False, True])
def test_normalize_flip_cumsum_roll(name, conv):
    check(Fn(MORE_OPS[name], conv), torch.randn(2, 3, 5, 4))


def test_integer_cumsum_and_roll_refusal(any_backend):
    # int64 sums, exact where float32 would round (2^24 + 1 is not a float32)
    ids = torch.randint(0, 5, (2, 6))
    check(Fn(lambda i: ((i + 16777217).cumsum(1) - 16777217 * torch.arange(1, 7)).float()), ids)
    with pytest.raises(TorchConversionError, match="roll by a size known only at run time"):
        fl.from_torch(Fn(lambda x: x.roll(x.size(0), 1)), torch.randn(2, 3))


def test_elementwise_refusals():
    with pytest.raises(TorchConversionError, match="masked_fill with a tensor value"):
        fl.from_torch(Fn(lambda x: x.masked_fill(x > 0, x)), torch.randn(2, 3))


SPLITS = {  # (split, parts) of an axis of 5 (dim 1) or 7 (the last)
    "Tensor.split": (lambda x: x.split(2, dim=1), 3),
    "uneven": (lambda x: x.split(3, 1), 2),
    "sections": (lambda x: torch.split(x, [1, 3, 1], dim=1), 3),
    "last axis": (lambda x: x.split(4, dim=-1), 2),
    "chunk": (lambda x: x.chunk(2, dim=1), 2),
    "chunk uneven": (lambda x: torch.chunk(x, 3, -1), 3),
    "chunk more than size": (lambda x: x.chunk(8, dim=1), 5),
}


@pytest.mark.parametrize("name", list(SPLITS))
@pytest.mark.parametrize("conv", [False, True])
def test_split_and_chunk(name, conv):
    # conv: the channels-last layout (dim 1 is the stored last axis)
    split, parts = SPLITS[name]
    module = Fn(lambda x: tuple(split(x)[i] * (i + 1) for i in range(parts)), conv)
    if conv:
        module.conv = nn.Conv2d(3, 5, 3, padding=1)
    check(module, torch.randn(2, 3 if conv else 5, 5, 7))


def test_split_refusals():
    with pytest.raises(TorchConversionError, match="known only at run time"):
        fl.from_torch(Fn(lambda x: x.split(1, dim=0)[0]), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match=r"split sections \[1, 1\]"):
        fl.from_torch(Fn(lambda x: torch.split(x, [1, 1], dim=1)[0]), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="chunk"):
        fl.from_torch(Fn(lambda x: x.chunk(2, dim=0)[0]), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="arange needs bounds known"):
        fl.from_torch(Fn(lambda x: x + torch.arange(x.size(0), 9)), torch.randn(2, 3))
    # up to the batch size: an op (test_index_tensors_and_arange_of_the_batch_size)
    check(Fn(lambda x: x * torch.arange(x.size(0))[:, None]), torch.randn(2, 3),
          run_inputs=[(torch.randn(4, 3),)])


MATMULS = {
    "x @ x^T": lambda x, w: x @ x.transpose(-1, -2),
    "torch.matmul": lambda x, w: torch.matmul(x, w),
    "Tensor.matmul": lambda x, w: x.matmul(w),
    "constant @ x": lambda x, w: w.transpose(0, 1) @ x.transpose(-1, -2),
    "vector": lambda x, w: x @ w[:, 0],
}


class MatMul(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.randn(6, 3))

    def forward(self, x):
        return self.fn(x, self.w)


@pytest.mark.parametrize("name", list(MATMULS))
def test_matmul(name):
    check(MatMul(MATMULS[name]), torch.randn(2, 4, 6), run_inputs=[(torch.randn(1, 4, 6),)])


# ------------------------------------------------------------------ embedding, merges


def test_embedding_lstm_classifier():
    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 6, padding_idx=0)
            self.lstm = nn.LSTM(6, 8, batch_first=True)
            self.fc = nn.Linear(8, 3)

        def forward(self, ids):
            out, (h, c) = self.lstm(self.emb(ids))
            return self.fc(out[:, -1]), h

    ids = torch.randint(0, 20, (4, 9))
    check(Classifier(), ids, run_inputs=[(torch.randint(0, 20, (1, 9)),)])


MERGES = {
    "x + y": lambda a, b: a + b,
    "torch.add": lambda a, b: torch.add(a, b),
    "torch.add alpha": lambda a, b: torch.add(a, b, alpha=0.5),
    "Tensor.add": lambda a, b: a.add(b),
    "Tensor.add other= alpha": lambda a, b: a.add(other=b, alpha=2),
    "Tensor.sub alpha": lambda a, b: a.sub(b, alpha=2),
    "Tensor.sub number alpha": lambda a, b: a.sub(1.5, alpha=-3) + b,
    "torch.sub alpha": lambda a, b: torch.sub(a, b, alpha=0.5),
    "torch.sub keywords": lambda a, b: torch.sub(input=a, other=b, alpha=3),
    "Tensor.mul other=": lambda a, b: a.mul(other=b),
    "Tensor.div": lambda a, b: a.div(b.abs() + 1),
    "torch.div": lambda a, b: torch.div(a, 4.0) + b,
    "x * y": lambda a, b: a * b,
    "torch.mul": lambda a, b: torch.mul(a, b),
    "x - y / 2": lambda a, b: a - b / 2,
    "scalar": lambda a, b: 2 * a + 1 - b * 0.5,
    "torch.cat": lambda a, b: torch.cat([a, b], dim=1),
    "torch.cat -1": lambda a, b: torch.cat((a, b), -1),
    "torch.concat": lambda a, b: torch.concat([a, b, a], dim=2),
}


class Merge(nn.Module):
    def __init__(self, fn, conv_a, conv_b):
        super().__init__()
        self.fn = fn
        self.a = nn.Conv2d(4, 4, 1) if conv_a else None
        self.b = nn.Conv2d(4, 4, 1) if conv_b else None

    def forward(self, x, y):
        if self.a is not None:
            x = self.a(x)
        if self.b is not None:
            y = self.b(y)
        return self.fn(x, y)


@pytest.mark.parametrize("name", list(MERGES))
@pytest.mark.parametrize("conv_a,conv_b", [(False, False), (True, True), (True, False)])
def test_merges(name, conv_a, conv_b):
    # layouts: both PyTorch's, both channels-last inside, or one of each
    check(Merge(MERGES[name], conv_a, conv_b), torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5))


class Buffered(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("shift", torch.randn(4, 1, 1))
        self.scale = nn.Parameter(torch.randn(4, 3, 3))

    def forward(self, x):
        y = self.conv(x)
        return (y + self.shift) * self.scale, x[:, :2] * 3


def test_constants_broadcast_in_either_layout():
    check(Buffered(), torch.randn(2, 3, 5, 5))


# ------------------------------------------------------------------ a user's module


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.branch = nn.Conv2d(c, c // 2, 1)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        b = torch.sigmoid(self.branch(x))
        y = torch.cat([y[:, : y.size(1) // 2] * b, y[:, y.size(1) // 2:]], dim=1)
        return F.relu(y + x)


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.SiLU())
        self.blocks = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 5)
        self.aux = nn.Linear(8 * 4 * 4, 2)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        f = self.blocks(self.stem(x))
        logits = self.head(self.drop(torch.flatten(self.pool(f), 1)))
        aux = self.aux(f.view(f.size(0), -1))
        return {"logits": logits, "probs": logits.softmax(-1)}, [aux, F.gelu(aux)]


def test_user_module(any_backend):
    net = UserNet()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            _randomize_bn(m)
    model = check(net, torch.randn(2, 3, 8, 8), run_inputs=[(torch.randn(5, 3, 8, 8),),
                                                             (torch.randn(1, 3, 8, 8),)])
    model.summary(print_fn=lambda s: None)
    out = model.predict(np.random.default_rng(0).standard_normal((7, 3, 8, 8)).astype("f"),
                        batch_size=3)
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(
            np.random.default_rng(0).standard_normal((7, 3, 8, 8)).astype("f")))
    _compare(out, want)


def test_keras_layers_used_where_they_match():
    model = fl.from_torch(UserNet(), torch.randn(2, 3, 8, 8))
    kinds = {type(layer) for layer in model.layers}
    assert {L.Conv2D, L.Dense, L.Add, L.Multiply, L.Concatenate, L.Reshape, L.Permute} <= kinds
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, stride=2), nn.MaxPool2d(2),
                        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1))
    kinds = {type(layer) for layer in fl.from_torch(net, torch.randn(1, 3, 16, 16)).layers}
    assert {L.ZeroPadding2D, L.MaxPooling2D, L.AveragePooling2D,
            L.GlobalAveragePooling2D} <= kinds
    emb = fl.from_torch(nn.Embedding(5, 3), torch.zeros(1, 4, dtype=torch.long))
    assert any(isinstance(layer, L.Embedding) for layer in emb.layers)
    with pytest.raises(ValueError):
        emb(np.array([[0, 5]]))  # an id outside the table
    # a merge that broadcasts over the batch axis (Keras's merges never do) stays an op
    one = fl.from_torch(Merge(MERGES["x + y"], False, False),
                        (torch.randn(2, 4, 3, 5), torch.randn(1, 4, 3, 5)))
    assert not any(isinstance(layer, L.Add) for layer in one.layers)
    x, y = torch.randn(3, 4, 3, 5), torch.randn(1, 4, 3, 5)
    _compare(one(x.numpy(), y.numpy()), x + y)


@pytest.mark.parametrize("k, p, d, stride, same", [
    (3, 1, 1, 1, True), (5, 2, 1, 1, True), (3, 2, 2, 1, True), ((3, 5), (1, 2), 1, 1, True),
    (3, 1, 1, 2, False), (4, 1, 1, 1, False), (3, 2, 1, 1, False), ((3, 5), (1, 1), 1, 1, False),
])
def test_symmetric_stride_one_padding_is_keras_same(any_backend, k, p, d, stride, same):
    """Stride 1 with p on both sides of an odd (dilated) kernel is Keras's "same": the
    Conv2D pads itself, with no ZeroPadding2D copy of the input, and gives the bits of the
    explicit zero padding (the padding taps are zeros in the same FMA chains). Other
    paddings keep the ZeroPadding2D."""
    conv = nn.Conv2d(3, 4, k, padding=p, dilation=d, stride=stride)
    x = torch.randn(2, 3, 9, 8)
    model = fl.from_torch(conv, x)
    kinds = {type(layer) for layer in model.layers}
    layer = next(layer for layer in model.layers if isinstance(layer, L.Conv2D))
    assert (L.ZeroPadding2D not in kinds) == same
    assert layer.padding == ("same" if same else "valid")
    _compare(model(x.numpy()), conv(x))
    if same:
        xl = np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1))
        ph, pw = (p, p) if isinstance(p, int) else p
        ref = L.Conv2D(4, k, dilation_rate=d)
        ref.build((None, 9 + 2 * ph, 8 + 2 * pw, 3))
        ref.set_weights(layer.get_weights())
        want = ref(np.pad(xl, ((0, 0), (ph, ph), (pw, pw), (0, 0))))
        np.testing.assert_array_equal(layer(xl), want)


def test_training_mode_is_restored_and_stats_untouched():
    net = UserNet().train()
    before = [b.clone() for b in net.buffers()]
    fl.from_torch(net, torch.randn(2, 3, 8, 8))
    assert all(m.training for m in net.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))


def test_shapes_inferred_without_examples(any_backend):
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    model = fl.from_torch(net)
    x = torch.randn(5, 6)
    with torch.no_grad():
        _compare(model(x.numpy()), net(x))
    lstm = nn.LSTM(3, 4)
    model = fl.from_torch(lstm)
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        _compare(model(x.numpy()), lstm(x))
    with pytest.raises(ValueError, match="example_inputs"):
        fl.from_torch(nn.Conv2d(3, 4, 3))


# ------------------------------------------------------------------ pickling, no torch


def _child(code, tmp_path, *files):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=SRC)
    done = subprocess.run([sys.executable, str(script), *map(str, files)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


BLOCK_TORCH = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
try:
    import torch  # noqa
except ImportError:
    pass
else:
    raise SystemExit("torch imported")
"""


def test_pickle_runs_without_torch(tmp_path):
    net = UserNet().eval()
    model = fl.from_torch(net, torch.randn(2, 3, 8, 8))
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    want = model(x)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    np.save(tmp_path / "x.npy", x)
    _child(BLOCK_TORCH + """
import pickle, numpy as np
import fastlayers as fl
model = pickle.loads(open(sys.argv[1], "rb").read())
(d, lst) = model(np.load(sys.argv[2]))
np.savez(sys.argv[3], logits=d["logits"], probs=d["probs"], aux0=lst[0], aux1=lst[1])
assert "torch" not in sys.modules or sys.modules["torch"] is None
""", tmp_path, tmp_path / "model.pkl", tmp_path / "x.npy", tmp_path / "out.npz")
    got = np.load(tmp_path / "out.npz")
    d, lst = want
    for key, ref in [("logits", d["logits"]), ("probs", d["probs"]), ("aux0", lst[0]),
                     ("aux1", lst[1])]:
        np.testing.assert_array_equal(got[key], ref)  # bitwise


def test_models_pickled_when_the_ops_lived_in_torch_fx_still_load():
    """A converted model's ops moved from io/torch_fx.py to io/torch_ops.py: a pickle that
    names them in torch_fx (written before the move) loads them from there."""
    from fastlayers.io import torch_fx, torch_ops

    ops = [name for name in vars(torch_ops) if name.startswith("torch_")]
    assert len(ops) > 40 and all(getattr(torch_fx, n) is getattr(torch_ops, n) for n in ops)
    model = fl.from_torch(_SmallOps().eval(), torch.randn(2, 3, 8))
    old = pickle.dumps(model, protocol=2).replace(b"fastlayers.io.torch_ops\n",
                                                  b"fastlayers.io.torch_fx\n")
    assert b"fastlayers.io.torch_fx\ntorch_layer_norm" in old
    x = np.random.default_rng(3).standard_normal((2, 3, 8)).astype(np.float32)
    for got, want in zip(pickle.loads(old)(x), model(x)):
        np.testing.assert_array_equal(got, want)


def test_pickle_and_deepcopy_in_process(any_backend):
    rnn = nn.GRU(4, 5, num_layers=2, bidirectional=True)
    model = fl.from_torch(rnn, (torch.randn(6, 2, 4),))
    x = np.random.default_rng(2).standard_normal((6, 3, 4)).astype(np.float32)
    out, h = model(x)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        out2, h2 = clone(x)
        np.testing.assert_array_equal(out2, out)
        np.testing.assert_array_equal(h2, h)
    assert isinstance(model, TorchModel)
    assert len(model.get_weights()) == 2 * 2 * 3


class _TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(6, 3)

    def forward(self, x, y):
        s = torch.tanh(self.a(x)) + self.b(y)
        return s, s * x[:, :3]


def test_converted_module_as_a_layer_of_a_model(any_backend):
    """A TorchModel called on symbolic tensors is one layer of a functional Model or a
    Sequential (it raised NotImplementedError); the composition matches the modules'."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.standard_normal((5, 6)).astype(np.float32)
    mod = _TwoInTwoOut().eval()
    tm = fl.from_torch(mod, (torch.from_numpy(x[:2]), torch.from_numpy(y[:2])))
    head = L.Dense(2, activation="relu")
    head.build((None, 3))
    head.set_weights([rng.standard_normal((3, 2)).astype(np.float32),
                      rng.standard_normal(2).astype(np.float32)])
    with torch.no_grad():
        s, p = mod(torch.from_numpy(x), torch.from_numpy(y))
    want_head = head(s.numpy())

    ix, iy = fl.Input((4,)), fl.Input((6,))
    out_s, out_p = tm(ix, iy)
    assert tuple(out_s.shape) == (None, 3) and tuple(out_p.shape) == (None, 3)
    model = fl.Model([ix, iy], [head(out_s), out_p])
    got_head, got_p = model([x, y])
    np.testing.assert_allclose(got_head, want_head, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_p, p.numpy(), rtol=1e-5, atol=1e-5)
    assert "TorchModel" in _summary_text(model)

    one = fl.from_torch(nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval(), torch.randn(2, 4))
    seq = fl.Sequential([fl.Input((4,)), one, head])
    with torch.no_grad():
        want = head(one.inner(x))
    np.testing.assert_array_equal(seq(x), want)
    # predict's batches of 2, each computed alone (on the NumPy backend BLAS's sums may change
    # with the batch size, docs/scaling.md §3)
    want_in_twos = np.concatenate([head(one.inner(x[i:i + 2])) for i in range(0, len(x), 2)])
    np.testing.assert_array_equal(seq.predict(x, batch_size=2, verbose=0), want_in_twos)

    # A Keras mask reaching it is not passed into the module, and none comes out.
    emb = L.Embedding(10, 4, mask_zero=True)
    ids = fl.Input((4,), dtype="int32")
    seq_out = fl.from_torch(nn.Linear(4, 3).eval(), torch.randn(2, 4, 4))(emb(ids))
    pooled = L.GlobalAveragePooling1D()(seq_out)
    tokens = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], np.int32)
    got = fl.Model(ids, pooled)(tokens)
    assert got.shape == (2, 3)
    full = fl.Model(ids, seq_out)(tokens).mean(axis=1)
    np.testing.assert_allclose(got, full, rtol=1e-6, atol=1e-6)


class _DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return {"main": self.a(x), "aux": (torch.tanh(self.b(x)), None)}


def test_converted_module_returning_a_dict_as_a_layer(any_backend):
    """A TorchModel whose module returns a dict (a HuggingFace ModelOutput), here with a
    tuple holding a None inside, is one layer of a Model: the symbolic call returns that
    structure of symbolic tensors (it raised 'must return arrays, got dict'), the model
    matches the module's outputs, and it runs after a pickle and through predict."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    mod = _DictOut().eval()
    tm = fl.from_torch(mod, torch.from_numpy(x[:2]))
    inp = fl.Input((4,))
    out = tm(inp)
    assert list(out) == ["main", "aux"] and out["aux"][1] is None
    assert tuple(out["main"].shape) == (None, 3) and tuple(out["aux"][0].shape) == (None, 2)
    head = L.Dense(1)
    joined = L.Concatenate()([out["main"], out["aux"][0]])
    model = fl.Model(inp, [head(joined), out["aux"][0]])
    with torch.no_grad():
        want = mod(torch.from_numpy(x))
    want_joined = np.concatenate([want["main"].numpy(), want["aux"][0].numpy()], axis=1)
    for m in (model, pickle.loads(pickle.dumps(model))):
        got_head, got_aux = m(x)
        np.testing.assert_allclose(got_aux, want["aux"][0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_head, head(want_joined), rtol=1e-5, atol=1e-5)
        got_head2, got_aux2 = m.predict(x, batch_size=2, verbose=0)  # (NumPy's BLAS: ulps)
        np.testing.assert_allclose(got_head2, got_head, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got_aux2, got_aux, rtol=1e-6, atol=1e-6)
    as_dict = fl.Model(inp, {"m": out["main"], "a": out["aux"][0]})(x)
    np.testing.assert_allclose(as_dict["m"], want["main"].numpy(), rtol=1e-5, atol=1e-6)


class _KeyedLayer(L.Layer):
    """A layer returning a dict, whose keys a test changes after the model is recorded."""

    keys = ("p", "q")

    def call(self, x):
        return {k: x * (i + 1) for i, k in enumerate(self.keys)}


def test_a_layer_whose_output_structure_changes_is_refused():
    inp = fl.Input((3,))
    layer = _KeyedLayer()
    out = layer(inp)
    model = fl.Model(inp, [out["q"], out["p"]])
    x = np.ones((2, 3), np.float32)
    q, p = model(x)
    np.testing.assert_array_equal(q, 2 * x)
    np.testing.assert_array_equal(p, x)
    layer.keys = ("p", "r")
    with pytest.raises(ValueError, match="returned dict where the model recorded"):
        model(x)


def _summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def test_import_fastlayers_does_not_import_torch(tmp_path):
    out = _child("""
import sys
import fastlayers
print("torch" in sys.modules)
""", tmp_path)
    assert out.strip() == "False"


def test_the_first_conversion_of_a_process_keeps_no_module_alive(tmp_path):
    """torch.overrides and torch._dynamo cache their tables of torch's functions on first use;
    computed while a trace had torch.tensor patched, they held the trace, and through it the
    whole PyTorch model, for the life of the process (a 2 GB model stayed in memory after its
    conversion), and torch.compile's table lacked torch.tensor."""
    out = _child("""
import gc, weakref
import torch
import fastlayers as fl
class Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):  # a torch function of a traced tensor: fx asks torch.overrides
        return torch.tanh(self.lin(x)) + torch.tensor(x.shape[1])

module = Module()
model = fl.from_torch(module, torch.randn(2, 4))
alive = weakref.ref(module.lin.weight)
del module
gc.collect()
import torch._dynamo.trace_rules as rules
print(alive() is None, model(torch.randn(2, 4).numpy()).shape,
      torch.tensor in rules.get_torch_obj_rule_map())
""", tmp_path)
    assert out.strip() == "True (2, 3) True"


def test_from_torch_without_torch_names_the_extra(tmp_path):
    out = _child(BLOCK_TORCH + """
import fastlayers as fl
try:
    fl.from_torch(object())
except ImportError as e:
    print(e)
""", tmp_path)
    assert "fastlayers[torch]" in out


# ------------------------------------------------------------------ errors


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer3 = nn.Sequential(nn.Linear(4, 4), nn.LPPool3d(2, 1))
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.lstm = nn.MultiheadAttention(4, 2, add_bias_kv=True)

    def forward(self, x, img):
        y = torch.kthvalue(self.layer3(x), 2, keepdim=True).values.msort()
        return torch.nonzero(y), self.pool(img), self.lstm(x, x, x)


def test_unsupported_lists_every_offender():
    with pytest.raises(TorchConversionError) as info:
        fl.from_torch(Unsupported(), (torch.randn(2, 4), torch.randn(1, 1, 4, 4)))
    msg = str(info.value)
    for part in ["layer3.1 (torch.nn.LPPool3d)",
                 "kthvalue (torch.kthvalue)", "msort (Tensor.msort)", "nonzero (torch.nonzero)",
                 "pool (torch.nn.MaxPool2d): return_indices=True",
                 "lstm (torch.nn.MultiheadAttention): add_bias_kv=True",
                 "6 module(s) or call(s)"]:
        assert part in msg, (part, msg)
    assert isinstance(info.value, NotImplementedError)


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fl.from_torch(lambda x: x)

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(TorchConversionError, match="could not trace Branchy"):
        fl.from_torch(Branchy(), torch.randn(2, 3))
    model = fl.from_torch(nn.Linear(3, 2), torch.randn(2, 3))
    with pytest.raises(ValueError, match="expected 1 positional inputs, got 2"):
        model(np.zeros((2, 3), "f"), np.zeros((2, 3), "f"))
    with pytest.raises(ValueError, match="expected shape"):
        model(np.zeros((2, 4), "f"))
    with pytest.raises(ValueError, match="2 example inputs"):
        fl.from_torch(Fn(torch.relu), (torch.randn(2, 3), torch.randn(2, 3)))


def test_predict_batches_and_checks(capsys):
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    model = fl.from_torch(net, torch.randn(1, 3))
    x = torch.randn(5, 3)
    with torch.no_grad():
        _compare(model.predict(x.numpy(), batch_size=2, verbose=1), net(x))
    assert "3/3" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.predict(x.numpy(), batch_size=0)
    # one input as a tuple or list of one array, as for several inputs (a shape error before:
    # it was taken for one (1, 5, 3) array); nested Python data stays one array
    whole = model.predict(x.numpy(), batch_size=2)
    for wrapped in ((x.numpy(),), [x.numpy()], (x,)):
        np.testing.assert_array_equal(model.predict(wrapped, batch_size=2), whole)
    np.testing.assert_array_equal(model.predict([x[0].tolist()]), whole[:1])
    # one sample's row in a list is a batch of one, as before (a review)
    np.testing.assert_array_equal(model.predict([x[0].numpy()]), whole[:1])
    two = fl.from_torch(Merge(MERGES["x + y"], False, False),
                        (torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)))
    with pytest.raises(ValueError, match="same batch size"):
        two.predict((np.zeros((2, 4, 3, 5), "f"), np.zeros((3, 4, 3, 5), "f")))
    assert two.predict((np.ones((3, 4, 3, 5), "f"), np.ones((3, 4, 3, 5), "f"))).shape == (
        3, 4, 3, 5)
    # a list of the inputs, as Keras's predict takes them (it was "expected 2 positional
    # inputs, got 1")
    pair = [np.random.default_rng(1).standard_normal((5, 4, 3, 5)).astype("f") for _ in "ab"]
    np.testing.assert_array_equal(two.predict(pair, batch_size=2),
                                  two.predict(tuple(pair), batch_size=2))
    with pytest.raises(ValueError, match="expected 2 inputs, got a list of 3 arrays"):
        two.predict(pair + pair[:1])
    # verbose as Model.predict (Keras) takes it: checked, 2 one line (it drew the bar for
    # any value but 0 / False / None / "silent"; an audit)
    for bad in ("bogus", 7, -1):
        with pytest.raises(ValueError, match="verbose must be"):
            model.predict(x.numpy(), batch_size=2, verbose=bad)
    capsys.readouterr()
    model.predict(x.numpy(), batch_size=2, verbose=2)
    assert capsys.readouterr().err.startswith("3/3 - ")
    # batches from a generator, iterator or DataLoader: refused by name (the message was
    # "same batch size; got shapes [()]")
    for source in ((x[i:i + 2].numpy() for i in range(0, 5, 2)), iter([x.numpy()]),
                   torch.utils.data.DataLoader(x, batch_size=2)):
        with pytest.raises(TypeError, match="call the model on each batch"):
            model.predict(source)


def test_empty_batch_through_a_view_with_minus_one():
    """x.view(B, T, -1, d) (BERT's head split) of 0 rows: -1 is fixed by the examples, so it
    is written as its number (NumPy cannot infer -1 beside a size 0: the converted model
    refused an empty batch, which chunked predictions over workers meet; an audit)."""
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(32, 32)

        def forward(self, x):
            return self.q(x).view(x.size(0), x.size(1), -1, 8).transpose(1, 2)

    net = Heads().eval()
    model = fl.from_torch(net, torch.randn(1, 16, 32))
    x = torch.randn(3, 16, 32)
    with torch.no_grad():
        _compare(model(x.numpy()), net(x))
        _compare(model(x[:0].numpy()), net(x)[:0])
    assert model.predict(x[:0].numpy()).shape == (0, 4, 16, 8)
    parts = [model.predict(c) for c in np.array_split(x.numpy(), 4)]
    np.testing.assert_array_equal(np.concatenate(parts), model(x.numpy()))

    class Unflat(nn.Module):  # the same split written with unflatten (a review)
        def forward(self, x):
            return x.unflatten(-1, (-1, 8)).transpose(1, 2)

    model = fl.from_torch(Unflat().eval(), torch.randn(1, 16, 32))
    _compare(model(x[:0].numpy()), Unflat()(x[:0]))
    _compare(model(x.numpy()), Unflat()(x))


# ------------------------------------------- 1-D pools, pads, shuffles, log-softmax & co.


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("make", [
    lambda: nn.MaxPool1d(2),
    lambda: nn.MaxPool1d(3, stride=2, padding=1),
    lambda: nn.MaxPool1d(3, stride=2, dilation=2, ceil_mode=True),
    lambda: nn.AvgPool1d(3, stride=2),
    lambda: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
    lambda: nn.AvgPool1d(4, stride=3, padding=2, ceil_mode=True),
    lambda: Fn(lambda x: F.max_pool1d(x, 3, 1, 1)),
    lambda: Fn(lambda x: F.avg_pool1d(x, (2,), (2,))),
], ids=range(8))
def test_pool1d(make, conv):
    pool = make()
    module = nn.Sequential(nn.Conv1d(3, 4, 3), pool) if conv else pool
    model = check(module, torch.randn(2, 3, 17), run_inputs=[(torch.randn(5, 3, 17),)])
    kinds = {type(la).__name__ for la in model.layers}
    if isinstance(pool, nn.MaxPool1d) and pool.padding == 0 and pool.dilation == 1 \
            and not pool.ceil_mode:
        assert "MaxPooling1D" in kinds  # Keras's own layer when it computes the same


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("make", [
    lambda: nn.LogSoftmax(dim=1), lambda: nn.LogSoftmax(dim=-1), lambda: nn.Softmin(dim=1),
    lambda: nn.Softmax2d(), lambda: Fn(lambda x: F.log_softmax(x, dim=2)),
    lambda: Fn(lambda x: torch.log_softmax(x, -1)), lambda: Fn(lambda x: F.softmin(x, 1)),
], ids=range(7))
def test_log_softmax_softmin_softmax2d(make, conv):
    x = torch.randn(2, 3, 5, 6) * 4
    check(Fn(make(), conv=conv), x)


def test_log_softmax_of_large_logits_stays_finite():
    x = torch.tensor([[1000.0, 0.0, -1000.0]])
    check(nn.LogSoftmax(dim=1), x)


@pytest.mark.parametrize("conv", [False, True])
def test_pads_1d(conv):
    for pad in (nn.ReflectionPad1d((2, 1)), nn.ReplicationPad1d(3), nn.CircularPad1d(2),
                nn.ZeroPad1d(2), nn.ConstantPad1d((0, 3), -1.0)):
        module = nn.Sequential(nn.Conv1d(3, 4, 3), pad) if conv else pad
        check(module, torch.randn(2, 3, 9))


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("make", [
    lambda: nn.ZeroPad2d((1, 2, 3, 0)), lambda: nn.ConstantPad2d(1, 0.5),
    lambda: nn.ReflectionPad2d(2), lambda: nn.ReplicationPad2d((1, 1, 2, 0)),
    lambda: nn.CircularPad2d(1), lambda: nn.ZeroPad1d(2), lambda: nn.ConstantPad1d((0, 3), -1),
    lambda: Fn(lambda x: F.pad(x, (1, 1, 0, 2), mode="reflect")),
    lambda: Fn(lambda x: F.pad(x, (0, 0, 1, 2), value=3.0)),
    lambda: Fn(lambda x: F.pad(x, (1, 1, 0, 0, 2, 0))),  # the channels too
    lambda: Fn(lambda x: F.pad(x, (2, 2, 1, 1), mode="circular")),
], ids=range(11))
def test_pads(make, conv):
    check(Fn(make(), conv=conv), torch.randn(2, 3, 5, 6))


@pytest.mark.parametrize("fn, match", [
    (lambda x: F.pad(x, (1, 1), mode="reflect"), "reflect padding of 1 axes"),
    (lambda x: F.pad(x, (6, 0, 0, 0), mode="reflect"), "PyTorch refuses it too"),
    (lambda x: F.pad(x, (-1, 0)), "negative padding"),
    (lambda x: F.pad(x, (1, 1, 1)), "pad \\(1, 1, 1\\)"),
])
def test_pads_refused(fn, match):
    with pytest.raises(TorchConversionError, match=match):
        fl.from_torch(Fn(fn), (torch.randn(1, 2, 4, 6),))


@pytest.mark.parametrize("conv", [False, True])
def test_pixel_shuffle_and_channel_shuffle(conv):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1) if conv else None
            self.up = nn.PixelShuffle(2)
            self.down = nn.PixelUnshuffle(2)
            self.shuffle = nn.ChannelShuffle(4)

        def forward(self, x):
            h = self.conv(x) if conv else x
            return self.up(h), self.down(self.up(h)), self.shuffle(h), F.pixel_shuffle(h, 2)

    x = torch.randn(2, 8, 4, 6) if not conv else torch.randn(2, 3, 4, 6)
    check(Net(), x)


def test_pixel_shuffle_refusals():
    with pytest.raises(TorchConversionError, match="pixel_shuffle by 2"):
        fl.from_torch(Fn(lambda x: F.pixel_shuffle(x, 2)), (torch.randn(1, 6, 4, 4),))
    with pytest.raises(TorchConversionError, match="ChannelShuffle"):
        fl.from_torch(nn.ChannelShuffle(4), (torch.randn(1, 6, 4, 4),))


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("make", [
    lambda: nn.GLU(dim=1), lambda: nn.GLU(), lambda: Fn(lambda x: F.glu(x, 2)),
    lambda: nn.Threshold(0.1, -2.0), lambda: Fn(lambda x: F.threshold(x, -0.5, 7.0)),
    lambda: nn.RReLU(0.1, 0.3), lambda: nn.FeatureAlphaDropout(0.2),
], ids=range(7))
def test_glu_threshold_rrelu(make, conv):
    x = torch.randn(2, 3 if conv else 4, 6, 8)
    x[0, 0, 0, 0] = float("nan")
    check(Fn(make(), conv=conv), x)


@pytest.mark.parametrize("conv", [False, True])
def test_unflatten(conv):
    check(Fn(nn.Unflatten(1, (2, -1)), conv=conv), torch.randn(2, 3 if conv else 4, 3, 5))
    check(nn.Unflatten(-1, (2, 3)), torch.randn(2, 5, 6))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("kwargs", [{"padding": 1}, {"padding": 2, "stride": 2},
                                    {"padding": "same", "dilation": 2}, {"padding": (1, 2)}])
def test_conv_padding_modes(mode, kwargs):
    """PyTorch pads with F.pad in the module's mode, then convolves without padding."""
    check(nn.Conv2d(3, 4, 3, padding_mode=mode, **kwargs), torch.randn(2, 3, 9, 10))
    check(nn.Conv1d(3, 4, 4, padding="same", padding_mode=mode), torch.randn(2, 3, 9))


class _SmallOps(nn.Module):
    """LayerNorm, arithmetic with numbers on either side, permute and reshape: the small
    ops of a converted transformer, whose plan runs runners for them."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        y = self.norm(x + self.lin(x))
        z = (2.0 - y) * 0.5 + y / 3 - y ** 2
        w = z.permute(2, 0, 1).reshape(8, -1)  # the batch axis moved: torch_* ops
        return z / 0.0, w, z.permute(0, 2, 1), torch.softmax(z @ z.transpose(1, 2), -1)


def test_small_ops_of_a_converted_model_run_as_plan_runners():
    if not fl.core_available() or fl.get_backend() == "numpy":
        pytest.skip("shape plans serve the C++ path only")
    from fastlayers.models import shape_plan

    torch.manual_seed(1)
    net = _SmallOps().eval()
    x = torch.randn(3, 5, 8)
    x[0, 0, 0] = 0.0
    model = fl.from_torch(net, x)
    xn = x.numpy()
    with shape_plan.disabled():
        want = model(xn)
    for _ in range(3):
        got = model(xn)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    (plan,) = shape_plan.plans_of(model.inner).values()
    general = [run for run, _, _ in plan.steps if not shape_plan.is_runner_step(run)]
    assert not general, f"{len(general)} of {len(plan.steps)} steps run the general call"
    with torch.no_grad():
        for g, w in zip(got, net(x)):
            np.testing.assert_allclose(g, w.numpy(), rtol=2e-5, atol=2e-5)


def test_a_converted_model_records_and_replays_a_shape_plan():
    """TorchModel calls its inner functional model with a list of one array per input: a
    single-input model then records a shape plan as model(x) would (the checks once), with
    the same bits as the general executor."""
    if not fl.core_available() or fl.get_backend() == "numpy":
        pytest.skip("shape plans serve the C++ path only")
    from fastlayers.models import shape_plan

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.ReLU6(), nn.Flatten()).eval()
    x = torch.randn(2, 3, 9, 9)
    model = fl.from_torch(net, x)
    xn = x.numpy()
    with shape_plan.disabled():
        want = model(xn)
    for _ in range(3):
        np.testing.assert_array_equal(model(xn), want)
    assert shape_plan.plans_of(model.inner)
    with torch.no_grad():
        np.testing.assert_allclose(want, net(x).numpy(), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("shape", [(3, 5), (3072, 768), (17, 1031)])
def test_a_linear_weight_becomes_its_transposed_kernel_with_or_without_the_core(shape,
                                                                                 monkeypatch):
    """io.torch_common._kernel_of: the (in, out) kernel of an (out, in) weight, a new
    C-contiguous float32 array, bit for bit the transpose whether the core's blocked
    transpose makes it (4096 elements or more) or NumPy does (small, or without the core)."""
    from fastlayers import _backend
    from fastlayers.io.torch_common import _kernel_of

    w = torch.randn(shape)
    want = w.numpy().T
    for core in (True, False):
        if not core:
            monkeypatch.setattr(_backend, "core_available", lambda: False)
        for src in (w, w.numpy(), w.numpy().astype(np.float64)):
            got = _kernel_of(src)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert not np.shares_memory(got, w.numpy())
            np.testing.assert_array_equal(got, want.astype(np.float32))
