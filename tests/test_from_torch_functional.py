"""from_torch of functional normalizations, distances and order statistics as hand-written
models call them: F.batch_norm (running or batch statistics), F.instance_norm, F.prelu,
nn.LocalResponseNorm / F.local_response_norm, torch.cdist, nn.Bilinear / F.bilinear,
nn.CosineSimilarity, nn.PairwiseDistance, torch.median / nanmedian, torch.quantile /
nanquantile, and forwards with keyword-only arguments. References: the modules themselves,
in eval mode, on both paths (docs/semantics.md §24)."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from test_from_torch import check  # noqa: E402

import fastlayers as fl  # noqa: E402
from fastlayers.io.torch_fx import TorchConversionError  # noqa: E402


class Conv(nn.Module):
    """fn(conv(x), *rest) or fn(x, *rest): the conv makes the first input channels-last."""

    def __init__(self, fn, channels=None):
        super().__init__()
        self.fn = fn
        self.conv = nn.Conv2d(channels, channels, 1) if channels else nn.Identity()

    def forward(self, x, *rest):
        return self.fn(self.conv(x), *rest)


class Stats(nn.Module):
    """F.batch_norm / F.instance_norm with parameters and buffers of `c` channels."""

    def __init__(self, c, fn, conv=False):
        super().__init__()
        g = torch.Generator().manual_seed(c)
        self.register_buffer("mean", torch.randn(c, generator=g))
        self.register_buffer("var", torch.rand(c, generator=g) + 0.5)
        self.weight = nn.Parameter(torch.rand(c, generator=g) + 0.5)
        self.bias = nn.Parameter(torch.randn(c, generator=g))
        self.conv = nn.Conv2d(c, c, 1) if conv else nn.Identity()
        self.fn = fn

    def forward(self, x):
        return self.fn(self, self.conv(x))


BATCH_NORMS = {
    "eval": lambda m, x: F.batch_norm(x, m.mean, m.var, m.weight, m.bias, False, 0.1, 1e-3),
    "eval, no affine": lambda m, x: F.batch_norm(x, m.mean, m.var),
    "eval, by keyword": lambda m, x: F.batch_norm(x, m.mean, m.var, weight=m.weight,
                                                  training=m.training, eps=0.5),
    "batch statistics": lambda m, x: F.batch_norm(x, None, None, m.weight, m.bias, True),
    "batch statistics, running ones given": lambda m, x: F.batch_norm(
        x, m.mean.clone(), m.var.clone(), training=True, eps=1e-2),
    "instance": lambda m, x: F.instance_norm(x),
    "instance, affine": lambda m, x: F.instance_norm(x, weight=m.weight, bias=m.bias, eps=0.1),
    "instance, running statistics": lambda m, x: F.instance_norm(
        x, m.mean, m.var, m.weight, m.bias, use_input_stats=False),
}


# (PyTorch's instance_norm by the input's statistics takes (N, C, *) of rank 3 or more)
@pytest.mark.parametrize("name,shape,conv", [
    (name, shape, conv) for name in BATCH_NORMS
    for shape, conv in [((4, 5), False), ((3, 5, 7), False), ((2, 5, 4, 3), False),
                        ((2, 5, 4, 3), True)]
    if len(shape) >= 3 or not name.startswith("instance") or "running" in name])
def test_functional_batch_and_instance_norm(name, shape, conv):
    x = torch.randn(*shape) * 2 + 1
    check(Stats(shape[1], BATCH_NORMS[name], conv), x,
          run_inputs=[(torch.randn(1 + shape[0], *shape[1:]),)])


def test_functional_norm_problems():
    with pytest.raises(TorchConversionError, match="needs running_mean and running_var"):
        fl.from_torch(Conv(lambda x: F.batch_norm(x, None, None)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="statistics for 4 channels, the input has 3"):
        fl.from_torch(Stats(4, lambda m, x: F.batch_norm(x[:, :3], m.mean, m.var)),
                      torch.randn(2, 4))
    # a BatchNorm module after a conv of other channels (broken in PyTorch too) is not folded
    # into the conv, so the message names the mismatch (it was NumPy's broadcast error)
    for order in ((0, 1, 2), (0, 2, 1)):
        parts = [nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4), nn.ReLU()]
        with pytest.raises(TorchConversionError,
                           match="statistics for 4 channels, the input has 8"):
            fl.from_torch(nn.Sequential(*(parts[i] for i in order)).eval(),
                          torch.randn(1, 3, 8, 8))
    with pytest.raises(TorchConversionError, match="running_mean must be a parameter"):
        fl.from_torch(Conv(lambda x: F.batch_norm(x, x.mean(0), x.var(0) + 1)),
                      torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="rank 3 or more"):
        fl.from_torch(Conv(lambda x: F.instance_norm(x.flatten(1))), torch.randn(2, 3, 4))
    # one value per channel: no batch variance (PyTorch raises too)
    model = fl.from_torch(Conv(lambda x: F.batch_norm(x, None, None, training=True)),
                          torch.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(np.ones((1, 3), np.float32))


@pytest.mark.parametrize("channels,alpha", [(None, 1), (4, 1), (4, 4), (None, 4)])
def test_functional_prelu(channels, alpha):
    class PReLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1) if channels else nn.Identity()
            self.a = nn.Parameter(torch.linspace(-0.5, 0.5, alpha))

        def forward(self, x):
            return F.prelu(self.conv(x), self.a)

    check(PReLU(), torch.randn(2, 4, 3, 5))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("shape,conv", [((2, 6, 4, 5), None), ((2, 6, 4, 5), 6),
                                        ((3, 6, 7), None), ((2, 3, 2, 2, 2), None)])
def test_local_response_norm(size, shape, conv):
    check(Conv(nn.LocalResponseNorm(size), conv), torch.randn(*shape) * 3)
    check(Conv(lambda x: F.local_response_norm(x, size, alpha=0.3, beta=0.6, k=2.0), conv),
          torch.randn(*shape) * 3)


class Dist(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x, y):
        return torch.cdist(x, y, **self.kw)


@pytest.mark.parametrize("kw", [{}, {"p": 1.0}, {"p": 0.0}, {"p": float("inf")}, {"p": 3.0},
                                {"p": 0.5}, {"compute_mode": "use_mm_for_euclid_dist"}])
@pytest.mark.parametrize("xs,ys", [((3, 5, 4), (3, 7, 4)), ((2, 1, 6, 3), (4, 5, 3)),
                                   ((5, 1), (2, 1))])
def test_cdist(kw, xs, ys):
    x = torch.randn(*xs).round(decimals=1)  # some equal entries (p = 0 counts the others)
    y = torch.randn(*ys).round(decimals=1)
    y.view(-1)[:2] = x.view(-1)[:2]
    check(Dist(**kw), x, y, run_inputs=[(torch.randn(*xs), torch.randn(*ys))])


def test_cdist_large_and_with_itself(any_backend):
    """Above 4M multiply-adds a p = 2 cdist is sqrt(|a|² + |b|² - 2 a·b) in float64; the
    distance of a row to itself stays near 0 (about 4e-6 at norms of 80, where PyTorch's
    float32 form of the same gives 6e-2); compute_mode can ask for either form."""
    x, y = torch.randn(2, 130, 256), torch.randn(2, 140, 256)
    check(Dist(), x, y)
    x = torch.randn(1, 300, 64) * 10
    model = fl.from_torch(Dist().eval(), (x, x))
    got = model(x.numpy(), x.numpy())
    want = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-4)
    assert np.abs(np.diagonal(got[0])).max() < 1e-4
    exact = fl.from_torch(Dist(compute_mode="donot_use_mm_for_euclid_dist").eval(), (x, x))
    assert np.abs(np.diagonal(exact(x.numpy(), x.numpy())[0])).max() == 0.0
    small = torch.randn(1, 6, 3)
    forced = fl.from_torch(Dist(compute_mode="use_mm_for_euclid_dist").eval(), (small, small))
    np.testing.assert_allclose(forced(small.numpy(), small.numpy()),
                               torch.cdist(small, small).numpy(), rtol=1e-5, atol=1e-5)


class Pairs(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = nn.Conv2d(6, 6, 1) if conv else nn.Identity()
        self.cos = nn.CosineSimilarity(dim=1, eps=1e-3)
        self.cos_last = nn.CosineSimilarity(dim=-1)
        self.dist = nn.PairwiseDistance()
        self.dist1 = nn.PairwiseDistance(p=1.0, eps=0.0, keepdim=True)

    def forward(self, x, y):
        x = self.conv(x)
        return (self.cos(x, y), self.cos_last(x, y), self.dist(x, y), self.dist1(x, y),
                self.dist(x.flatten(1), y.flatten(1)))


@pytest.mark.parametrize("conv", [False, True])
def test_cosine_similarity_and_pairwise_distance_modules(conv):
    x, y = torch.randn(2, 6, 3, 4), torch.randn(2, 6, 3, 4)
    y[0, :, 0, 0] = 0.0  # a zero vector: the eps of each
    check(Pairs(conv), x, y)


class Bilinear(nn.Module):
    def __init__(self, bias, functional):
        super().__init__()
        self.bl = nn.Bilinear(5, 3, 4, bias=bias)
        self.functional = functional

    def forward(self, x, y):
        if self.functional:
            return F.bilinear(x, y, self.bl.weight * 2, self.bl.bias)
        return self.bl(x, y)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("lead", [(6,), (2, 7), (1,)])
def test_bilinear(bias, functional, lead):
    check(Bilinear(bias, functional), torch.randn(*lead, 5), torch.randn(*lead, 3),
          run_inputs=[(torch.randn(3, *lead[1:], 5), torch.randn(3, *lead[1:], 3))])


ORDER_STATS = {
    "median": lambda y: (y.median(), torch.median(y, 1).values, y.median(-1, True).values),
    "median indices": lambda y: (torch.median(y, 2).indices, y.median(dim=1).indices),
    "nanmedian": lambda y: (torch.nanmedian(y.masked_fill(y > 1, float("nan")), 1).values,
                            y.masked_fill(y > 0.5, float("nan")).nanmedian()),
    "median of a NaN slice": lambda y: torch.median(
        y.masked_fill(y > 1.5, float("nan")), -1).values,
    "median of integers": lambda y: (y * 3).long().median(1)[0].float(),
    "quantile": lambda y: (torch.quantile(y, 0.3), y.quantile(0.25, dim=1),
                           torch.quantile(y, 0.9, -1, keepdim=True),
                           torch.quantile(y, 0.5, None, True)),
    "quantile of several q": lambda y: (
        torch.quantile(y, torch.tensor([0.1, 0.5, 1.0]), dim=2),
        y.quantile(torch.tensor([0.0, 0.75]), keepdim=True)),
    "quantile interpolations": lambda y: tuple(
        torch.quantile(y, 0.35, 1, interpolation=m)
        for m in ("linear", "lower", "higher", "midpoint", "nearest")),
    "nanquantile": lambda y: (
        torch.nanquantile(y.masked_fill(y > 1, float("nan")), 0.4, 1),
        y.masked_fill(y > 0, float("nan")).nanquantile(torch.tensor([0.2, 0.8]), 2),
        torch.quantile(y.masked_fill(y > 1, float("nan")), 0.4, 1)),
}


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("name", list(ORDER_STATS))
def test_order_statistics(name, conv):
    fn = ORDER_STATS[name]
    check(Conv(fn, 3 if conv else None), torch.randn(2, 3, 5, 6),
          run_inputs=[(torch.randn(3, 3, 5, 6),)])


def test_order_statistic_problems():
    with pytest.raises(TorchConversionError, match="quantile with q=a computed tensor"):
        fl.from_torch(Conv(lambda y: y.quantile(y.mean().sigmoid())), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="interpolation='cubic'"):
        fl.from_torch(Conv(lambda y: y.quantile(0.5, interpolation="cubic")),
                      torch.randn(2, 3))
    model = fl.from_torch(Conv(lambda y: y.median(1).values), torch.randn(2, 3))
    np.testing.assert_array_equal(model(np.array([[3, 1, 2]], np.float32)), [2.0])


@pytest.mark.parametrize("fn,message", [
    (lambda x, y: torch.cdist(x, y, p=-1.0), "cdist with p=-1.0"),
    (lambda x, y: torch.cdist(x, y, compute_mode="fast"), "compute_mode='fast'"),
    (lambda x, y: F.local_response_norm(x, 0), "local_response_norm with size=0"),
    (lambda x, y: F.local_response_norm(x[:, 0], 2), "rank 3 or more, got rank 2"),
])
def test_distance_and_lrn_problems(fn, message):
    with pytest.raises(TorchConversionError, match=re.escape(message)):
        fl.from_torch(Conv(fn), (torch.randn(2, 3, 4), torch.randn(2, 5, 4)))


class KeywordOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, y=None, *, scale=2.0, shift=None):
        out = self.lin(x) * scale
        if y is not None:
            out = out + y
        return out if shift is None else out + shift


class KeywordRequired(nn.Module):
    def forward(self, x, *, scale):
        return x * scale


def test_keyword_only_arguments_keep_their_defaults(any_backend):
    check(KeywordOnly(), torch.randn(2, 4))
    check(KeywordOnly(), torch.randn(2, 4), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"keyword-only arguments without defaults \(scale\)"):
        fl.from_torch(KeywordRequired(), torch.randn(2, 4))


# ---- found by an audit as a user (session 35): non-finite values, constants, defaults ------


def test_local_response_norm_keeps_non_finite_values_to_their_windows():
    """A NaN or inf reaches only the channels whose window holds it, and a large square
    does not swamp small ones further on (a running sum over channels did both)."""
    x = torch.tensor([1.0, float("inf"), 2.0, 3.0, float("nan"), 4.0, 5.0, 0.5, 0.25])
    y = torch.zeros(9)
    y[0], y[6:] = 3e6, torch.tensor([0.01, 0.02, 0.01])
    check(Conv(nn.LocalResponseNorm(3, alpha=1.0, k=1e-4)), torch.stack([
        x.view(9, 1, 1).expand(9, 2, 2), y.view(9, 1, 1).expand(9, 2, 2)]))
    check(Conv(nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)), torch.stack([x, y]).view(2, 9, 1))


@pytest.mark.parametrize("p", [0.0, 1.0, 2.0, 3.0, float("inf")])
def test_cdist_of_non_finite_values(any_backend, p):
    """PyTorch's rules: NaN propagates, but for p = inf, whose running max skips it."""
    x = torch.tensor([[[1.0, 2.0, 0.0], [float("inf"), 0.0, 1.0], [0.5, -1.0, 2.0]]])
    y = torch.tensor([[[1.0, 5.0, 0.0], [float("nan"), 2.0, 1.0], [float("inf"), 0.0, 1.0],
                       [float("nan")] * 3]])
    want = Dist(p=p)(x, y).numpy()
    got = fl.from_torch(Dist(p=p).eval(), (x, y))(x.numpy(), y.numpy())
    # (check()'s tolerance scales with the largest value: inf here) NaN and inf where
    # PyTorch has them, the finite values to float32 rounding
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert finite.any() and not finite.all()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6)
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])


class Bank(nn.Module):
    """Distances and cosines to a parameter bank (class centres, a VQ codebook, a cosine
    classifier) and from a buffer."""

    def __init__(self):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(10, 8))
        self.codebook = nn.Embedding(16, 8)
        self.register_buffer("memory", torch.randn(6, 8))

    def forward(self, z):
        return (torch.cdist(z, self.centers), torch.cdist(z, self.codebook.weight).argmin(-1),
                torch.cdist(self.memory.unsqueeze(0), z.unsqueeze(0), p=1.0)[0],
                F.cosine_similarity(z.unsqueeze(1), self.centers.unsqueeze(0), dim=-1),
                nn.CosineSimilarity(dim=-1)(self.memory[:1], z))


def test_distances_to_parameters_and_buffers():
    check(Bank(), torch.randn(4, 8), run_inputs=[(torch.randn(7, 8),)])


@pytest.mark.parametrize("module", [lambda: Conv(lambda x: F.instance_norm(x)),
                                    lambda: nn.InstanceNorm1d(3)])
def test_instance_norm_of_one_position_is_refused(module):
    with pytest.raises(TorchConversionError, match="more than 1 spatial element"):
        fl.from_torch(module(), torch.randn(2, 3, 1))


def test_instance_norm_after_global_pooling_is_refused():
    net = Conv(lambda x: F.instance_norm(F.adaptive_avg_pool2d(x, 1)))
    with pytest.raises(TorchConversionError, match=r"\(None, 3, 1, 1\) has one per channel"):
        fl.from_torch(net, torch.randn(2, 3, 4, 4))


NORMS = {
    "pairwise_distance p": lambda y: (nn.PairwiseDistance(p=3.0)(y[:, 0], y[:, 1]),
                                      F.pairwise_distance(y[:, 0], y[:, 1], p=0.5),
                                      F.pairwise_distance(y[:, 0], y[:, 2], p=0.0)),
    "norm p": lambda y: (y.norm(p=3, dim=-1), torch.linalg.vector_norm(y, 0, dim=(1, 2)),
                         torch.linalg.vector_norm(y, float("-inf"), dim=-1),
                         torch.norm(y, p=-1.5, dim=1), y.norm(p=0.5)),
}


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("name", list(NORMS))
def test_norms_of_any_order(name, conv):
    x = torch.randn(2, 3, 5, 6)
    x[0, 0, 0, :2] = 0.0  # zeros for p = 0 and negative orders
    x[1, 1, 2, 3] = float("nan")
    check(Conv(NORMS[name], 3 if conv else None), x)


_SHIFT = torch.tensor([1.0, 2.0, 3.0])


class Defaults(nn.Module):
    """Defaults fx's concrete_args cannot hold: traced through a call of the module."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, scales=(0.5, 2.0), *, shift=_SHIFT,
                opts={"square": True}):  # noqa: B006 - a default read, never written
        y = self.lin(x) * scales[0] + scales[1] + shift
        return y * y if opts["square"] else y


def test_tuple_tensor_and_dict_defaults():
    check(Defaults(), torch.randn(2, 4))


def test_pytorch_argument_names():
    w = torch.randn(3, 5, 4)
    check(Conv(lambda x: (
        torch.median(input=x, dim=1).values, torch.nanmedian(input=x),
        torch.quantile(input=x, q=0.3, dim=2), torch.cdist(x1=x, x2=x, p=1.0),
        F.local_response_norm(input=x, size=3), F.batch_norm(input=x, running_mean=None,
                                                            running_var=None, training=True),
        F.instance_norm(input=x), F.bilinear(input1=x, input2=x[..., :4], weight=w))),
        torch.randn(2, 6, 5))


def test_quantile_out_of_range_is_refused_at_conversion():
    with pytest.raises(TorchConversionError, match=r"needs q in \[0, 1\], got 1.5"):
        fl.from_torch(Conv(lambda y: y.quantile(1.5, dim=1)), torch.randn(2, 3))
    with pytest.raises(TorchConversionError, match="needs q in"):
        fl.from_torch(Conv(lambda y: torch.nanquantile(y, torch.tensor([0.2, -0.1]))),
                      torch.randn(2, 3))


def test_shapes_are_checked_at_conversion():
    with pytest.raises(TorchConversionError, match="with the same M, got"):
        fl.from_torch(Dist(), (torch.randn(2, 3, 4), torch.randn(2, 5, 6)))
    with pytest.raises(TorchConversionError, match=r"bilinear needs inputs \(\*, 5\) and "
                                                   r"\(\*, 3\), got \(None, 4\)"):
        fl.from_torch(Bilinear(True, False), (torch.randn(2, 4), torch.randn(2, 3)))


class Scalars(nn.Module):
    """float() / int() of one-element parameters and buffers (a learned temperature, a
    stored count), also of a submodule's: their values, fixed at conversion."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.temperature = nn.Parameter(torch.tensor([0.25]))
        self.register_buffer("keep", torch.tensor(3))
        self.inner = nn.Module()
        self.inner.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        y = self.lin(x)[:, :int(self.keep)] / float(self.temperature)
        return y * float(self.inner.scale)


def test_float_and_int_of_parameters():
    check(Scalars(), torch.randn(2, 4))


def test_float_of_a_computed_value_says_what_converts():
    net = Conv(lambda x: x * float(x.sum()))
    with pytest.raises(TorchConversionError, match=r"float\(\) of a traced value.*\.item\(\) "
                                                   "is computed at conversion"):
        fl.from_torch(net, torch.randn(2, 3))


class Quantile(nn.Module):
    def __init__(self, q, interpolation):
        super().__init__()
        self.q, self.interpolation = q, interpolation

    def forward(self, y):
        return torch.quantile(y, self.q, dim=1, interpolation=self.interpolation)


@pytest.mark.parametrize("n,q,interpolation", [
    (101, 0.3, "higher"), (101, 0.55, "higher"), (26, 0.28, "higher"), (51, 0.58, "lower"),
    (46, 0.7, "nearest"), (101, 0.6, "midpoint"), (11, 0.3, "linear"), (2, 0.5, "nearest")])
def test_quantile_ranks_are_pytorchs_float32_ones(n, q, interpolation):
    """PyTorch's rank q·(n - 1) is a float32 product (0.3 · 100 = 30.000001, so "higher"
    picks 31): with values equal to their ranks, each result names the rank taken."""
    y = torch.arange(n, dtype=torch.float32)[None].repeat(2, 1)
    check(Quantile(q, interpolation), y)
    check(Quantile(torch.tensor([q, 1 - q]), interpolation), y)


def test_embedding_bag_include_last_offset_must_end_at_the_ids():
    """PyTorch's contract (it does not check it, and its modes then disagree)."""
    class Bags(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = nn.EmbeddingBag(10, 3, mode="max", include_last_offset=True)

        def forward(self, ids, offsets):
            return self.bag(ids, offsets)

    model = fl.from_torch(Bags(), (torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2, 5])))
    with pytest.raises(ValueError, match="the last offset must be the number of ids, 5"):
        model(np.array([1, 2, 3, 4, 5]), np.array([0, 2, 3]))


def test_a_split_batch_axis_is_refused_in_a_pytorch_users_words():
    """A prototypical network's view(n_way, -1, d) of the support set's batch axis: the
    error names the call and the batch axis, not the hint for fastlayers.Input."""
    class Proto(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(4, 6)

        def forward(self, support, query):
            z = self.enc(support)
            return torch.cdist(self.enc(query), z.view(5, -1, z.size(-1)).mean(1))

    with pytest.raises(ValueError) as info:
        fl.from_torch(Proto(), (torch.randn(15, 4), torch.randn(7, 4)))
    msg = str(info.value)
    assert "view (Tensor.view): cannot reshape" in msg, msg
    assert "fixes or splits the batch axis" in msg, msg
    assert "give Input" not in msg


class SyncBnNet(nn.Module):
    """Conv1d / Conv2d / Conv3d blocks and a head, as convert_sync_batchnorm leaves a model
    trained with DistributedDataParallel: every BatchNorm a SyncBatchNorm."""

    def __init__(self):
        super().__init__()
        self.c2 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.c1 = nn.Sequential(nn.Conv1d(8, 6, 3), nn.BatchNorm1d(6))
        self.c3 = nn.Sequential(nn.Conv3d(2, 4, 1), nn.BatchNorm3d(4), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(6 * 8 + 4, 5), nn.BatchNorm1d(5))

    def forward(self, x, v):
        y = self.c2(x).mean(2)  # (N, 8, W)
        y = self.c1(y).flatten(1)
        z = self.c3(v).mean((2, 3, 4))
        return self.head(torch.cat([y, z], 1))


def test_sync_batch_norm_converts_as_batch_norm():
    model = nn.SyncBatchNorm.convert_sync_batchnorm(SyncBnNet())
    bns = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert len(bns) == 4
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for bn in bns:
            bn.running_mean.uniform_(-1, 1, generator=g)
            bn.running_var.uniform_(0.5, 2, generator=g)
            bn.weight.uniform_(0.5, 1.5, generator=g)
            bn.bias.uniform_(-0.5, 0.5, generator=g)
    converted = check(model, torch.randn(2, 3, 5, 10), torch.randn(2, 2, 3, 4, 5),
                      run_inputs=[(torch.randn(3, 3, 5, 10), torch.randn(3, 2, 3, 4, 5))])
    # the three after convs folded into them; the head's (after a Linear) an affine op
    text = []
    converted.summary(print_fn=text.append)
    assert "\n".join(text).count("torch_scale_shift") == 1, text
    # one alone, after no conv, of rank 2 and 4
    for shape in ((4, 7), (2, 7, 3, 5)):
        bn = nn.SyncBatchNorm(7).eval()
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1, generator=g)
            bn.running_var.uniform_(0.5, 2, generator=g)
        check(bn, torch.randn(*shape))


def test_sync_batch_norm_without_running_statistics_is_refused():
    bn = nn.SyncBatchNorm(3, track_running_stats=False).eval()
    with pytest.raises(TorchConversionError, match="track_running_stats=False"):
        fl.from_torch(bn, torch.randn(2, 3, 4))


@pytest.mark.parametrize("dims,kw", [
    (2, dict(norm_type=2, kernel_size=2)),
    (2, dict(norm_type=3.0, kernel_size=(3, 2), stride=(1, 2))),
    (2, dict(norm_type=1, kernel_size=3, stride=2, ceil_mode=True)),
    (2, dict(norm_type=0.5, kernel_size=2)),
    (2, dict(norm_type=float("inf"), kernel_size=3, stride=1)),
    (2, dict(norm_type=-float("inf"), kernel_size=2)),
    (1, dict(norm_type=2, kernel_size=3)),
    (1, dict(norm_type=4.0, kernel_size=2, stride=1, ceil_mode=True)),
    (1, dict(norm_type=float("inf"), kernel_size=5, stride=3, ceil_mode=True)),
])
@pytest.mark.parametrize("module", [False, True])
def test_lp_pool(dims, kw, module):
    """nn.LPPool1d / LPPool2d and F.lp_pool1d / lp_pool2d, after a conv (channels-last) or
    on the input; odd powers of negative values give NaN, as in PyTorch."""
    shape = (2, 3, 7) if dims == 1 else (2, 3, 7, 6)
    if module:
        fn = (nn.LPPool1d if dims == 1 else nn.LPPool2d)(**kw)
    else:
        fn = Conv(functools.partial(F.lp_pool1d if dims == 1 else F.lp_pool2d, **kw))
    x = torch.randn(*shape)
    check(fn, x, run_inputs=[(torch.randn(1, *shape[1:]),)])
    conv = nn.Conv1d(3, 3, 1) if dims == 1 else nn.Conv2d(3, 3, 1)
    check(nn.Sequential(conv, fn), x)  # on the channels-last layout
    check(nn.Sequential(conv, fn), x.abs())


def test_lp_pool_refusals():
    with pytest.raises(TorchConversionError, match="norm_type"):
        fl.from_torch(Conv(lambda x: F.lp_pool2d(x, 0, 2)), torch.randn(1, 2, 4, 4))
    with pytest.raises(TorchConversionError, match=r"lp_pool2d needs a batched 4-D"):
        fl.from_torch(nn.LPPool2d(2, 2), torch.randn(2, 4, 4))
