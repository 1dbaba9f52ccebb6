"""from_torch of spatial transformers: F.affine_grid (2-D sizes) and F.grid_sample (4-D
inputs, every mode, padding_mode and align_corners), as PyTorch's Spatial Transformer
Networks tutorial writes them. References: the modules themselves, in eval mode, on both
paths (docs/semantics.md §24)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from test_from_torch import check  # noqa: E402

import fastlayers as fl  # noqa: E402
from fastlayers.io.torch_fx import TorchConversionError  # noqa: E402
from fastlayers.io.torch_ops import torch_affine_grid, torch_grid_sample  # noqa: E402

# (PyTorch warns that align_corners=None means False since 1.3,
# and that align_corners=True on a size of 1 changed in 1.3)
pytestmark = [pytest.mark.filterwarnings("ignore:Default grid_sample and affine_grid"),
              pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid")]

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")


class Sample(nn.Module):
    """grid_sample(x or conv(x), grid): the conv makes the input channels-last."""

    def __init__(self, channels, conv, **kw):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1) if conv else nn.Identity()
        self.kw = kw

    def forward(self, x, grid):
        return F.grid_sample(self.conv(x), grid, **self.kw)


def _grid(n, ho, wo, seed, reach=1.3):
    """Random positions a little past the image, with the edges and the centre exactly."""
    g = torch.Generator().manual_seed(seed)
    grid = (torch.rand(n, ho, wo, 2, generator=g) * 2 - 1) * reach
    grid[0, 0, 0] = torch.tensor([-1.0, -1.0])
    grid[-1, -1, -1] = torch.tensor([1.0, 1.0])
    if wo > 1:
        grid[0, 0, 1] = torch.tensor([0.0, 0.0])
    return grid


# input (H, W) -> output (H_out, W_out): one pixel, primes, a tile size and one past it
SIZES = [((1, 1), (2, 3)), ((5, 7), (3, 11)), ((16, 15), (17, 1)), ((2, 1), (4, 4))]


@pytest.mark.parametrize("mode,padding,align_corners", list(itertools.product(
    MODES, PADDINGS, (False, True))))
def test_grid_sample_matches_pytorch(mode, padding, align_corners):
    for i, ((h, w), (ho, wo)) in enumerate(SIZES):
        conv = i % 2 == 1
        c = 3 if conv else 1 + i
        x = torch.randn(2, c, h, w)
        module = Sample(c, conv, mode=mode, padding_mode=padding, align_corners=align_corners)
        check(module, x, _grid(2, ho, wo, i),
              run_inputs=[(torch.randn(3, c, h, w), _grid(3, ho, wo, 10 + i, reach=4.0))])


def test_grid_sample_defaults_and_keywords():
    x = torch.randn(2, 4, 6, 5)
    for kw in ({}, {"align_corners": None}, {"mode": "nearest"},
               {"padding_mode": "border", "align_corners": True}):
        check(Sample(4, False, **kw), x, _grid(2, 3, 7, 1))


def test_nearest_rounds_ties_to_even(any_backend):
    """Positions exactly halfway between pixels: PyTorch rounds them to the even pixel."""
    w = 4  # without align_corners, g = -0.75 + 0.25 k lands on k / 2 - 0.5
    xs = torch.arange(-1.0, 1.01, 0.25)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1)[None]
    x = torch.arange(16.0).reshape(1, 1, 4, w)
    model = check(Sample(1, False, mode="nearest", align_corners=False), x, grid)
    got = model(x.numpy(), grid.numpy())
    # -1 -> -0.5 -> 0 (even); -0.5 -> 0.5 -> 0; 0 -> 1.5 -> 2; 0.5 -> 2.5 -> 2
    assert got[0, 0, 0, [0, 2, 4, 6]].tolist() == [0.0, 0.0, 2.0, 2.0]


def test_non_finite_positions_read_as_pytorch_reads_them():
    """A NaN or infinite position: NaN in the bicubic mode and the bilinear one with zeros
    padding; 0 in the nearest mode with zeros padding; else the clamped edge (NaN to 0)."""
    grid = _grid(1, 2, 4, 3)
    grid[0, 0, 1] = torch.tensor([float("nan"), 0.2])
    grid[0, 1, 2] = torch.tensor([float("inf"), -0.3])
    grid[0, 1, 3] = torch.tensor([0.1, float("-inf")])
    x = torch.randn(1, 2, 3, 5)
    for mode, padding in itertools.product(MODES, PADDINGS):
        with torch.no_grad():
            want = F.grid_sample(x, grid, mode=mode, padding_mode=padding,
                                 align_corners=False)
        nan = mode == "bicubic" or (mode, padding) == ("bilinear", "zeros")
        assert torch.isnan(want).any() == nan
        check(Sample(2, False, mode=mode, padding_mode=padding, align_corners=False), x, grid)


class Stn(nn.Module):
    """PyTorch's Spatial Transformer Networks tutorial: a localization net regresses theta,
    affine_grid(theta, x.size()) and grid_sample warp the input, a small CNN classifies."""

    def __init__(self, align_corners=None, mode="bilinear", padding="zeros"):
        super().__init__()
        self.kw = dict(align_corners=align_corners)
        self.sample = dict(mode=mode, padding_mode=padding, **self.kw)
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)
        self.localization = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=7), nn.MaxPool2d(2, stride=2), nn.ReLU(True),
            nn.Conv2d(8, 10, kernel_size=5), nn.MaxPool2d(2, stride=2), nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(10 * 3 * 3, 32), nn.ReLU(True),
                                    nn.Linear(32, 3 * 2))
        with torch.no_grad():  # the tutorial starts from the identity; a trained one moves
            self.fc_loc[2].weight.normal_(0, 0.05)
            self.fc_loc[2].bias.copy_(torch.tensor([1.0, 0.1, 0, -0.1, 0.9, 0.05]))

    def stn(self, x):
        xs = self.localization(x)
        xs = xs.view(-1, 10 * 3 * 3)
        theta = self.fc_loc(xs)
        theta = theta.view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), **self.kw)
        return F.grid_sample(x, grid, **self.sample)

    def forward(self, x):
        x = self.stn(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


@pytest.mark.parametrize("kw", [{}, {"align_corners": True, "padding": "border"},
                                {"mode": "bicubic", "padding": "reflection"}])
def test_spatial_transformer_tutorial(kw):
    torch.manual_seed(0)
    check(Stn(**kw), torch.randn(4, 1, 28, 28),
          run_inputs=[(torch.randn(1, 1, 28, 28),), (torch.randn(7, 1, 28, 28),)])


class AffineWarp(nn.Module):
    """theta from a linear layer of the pooled input; the warped image at (H_out, W_out)."""

    def __init__(self, channels, out_hw, align_corners, warp=True):
        super().__init__()
        self.loc = nn.Linear(channels, 6)
        self.out_hw = out_hw
        self.align_corners = align_corners
        self.warp = warp

    def forward(self, x):
        theta = self.loc(x.mean((2, 3))).view(-1, 2, 3)
        size = (x.size(0), x.size(1), *self.out_hw)
        grid = F.affine_grid(theta, size, align_corners=self.align_corners)
        return F.grid_sample(x, grid, align_corners=self.align_corners) if self.warp else grid


@pytest.mark.parametrize("out_hw", [(1, 1), (1, 5), (2, 2), (13, 8), (28, 28)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_pytorch(out_hw, align_corners):
    x = torch.randn(3, 4, 6, 7)
    check(AffineWarp(4, out_hw, align_corners, warp=False), x,
          run_inputs=[(torch.randn(5, 4, 6, 7),)])
    check(AffineWarp(4, out_hw, align_corners), x, run_inputs=[(torch.randn(1, 4, 6, 7),)])


class ConvGrid(nn.Module):
    """A grid a conv predicts, (N, 2, H, W) moved to (N, H, W, 2) (an optical-flow warp)."""

    def __init__(self, mode):
        super().__init__()
        self.flow = nn.Conv2d(3, 2, 3, padding=1)
        self.mode = mode

    def forward(self, x):
        grid = torch.tanh(self.flow(x)).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode=self.mode, padding_mode="border",
                             align_corners=True)


@pytest.mark.parametrize("mode", MODES)
def test_grid_from_a_conv(mode):
    check(ConvGrid(mode), torch.randn(2, 3, 9, 10), run_inputs=[(torch.randn(1, 3, 9, 10),)])


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


@pytest.mark.parametrize("fn,inputs,message", [
    (lambda x, g: F.grid_sample(x, g), ((1, 2, 3, 4, 5), (1, 2, 2, 2, 3)),
     "only a float 4-D"),
    (lambda t, x: F.affine_grid(t, x.size()), ((2, 3, 4), (2, 1, 3, 4, 5)),
     "only a 2-D size"),
    (lambda t, x: F.affine_grid(t, (x.size(0), 1, x.size(2), x.size(2) + 1)),
     ((2, 2, 3), (2, 1, 3, 4)), None),
])
def test_what_does_not_convert_is_refused(fn, inputs, message):
    xs = tuple(torch.rand(*s) * 2 - 1 for s in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn(*xs)
        except Exception:  # noqa: BLE001 (PyTorch refuses it too: nothing to compare)
            pytest.fail("the case must run in PyTorch")
        if message is None:  # converts: a size computed from the input's own
            check(Fn(fn), *xs)
            return
        with pytest.raises(TorchConversionError, match=message):
            fl.from_torch(Fn(fn), xs)


def test_bad_modes_are_refused_as_pytorch_refuses_them():
    x, g = torch.randn(1, 1, 3, 3), torch.zeros(1, 2, 2, 2)
    for kw in ({"mode": "area"}, {"padding_mode": "wrap"}):
        with pytest.raises(ValueError):
            F.grid_sample(x, g, **kw)
        value = next(iter(kw.values()))
        with pytest.raises((TorchConversionError, ValueError), match=f"mode.*{value}"):
            fl.from_torch(Fn(lambda a, b, kw=kw: F.grid_sample(a, b, **kw)), (x, g))


def test_ops_check_their_inputs():
    """The converted model's ops raise a ValueError on arrays of the wrong shape."""
    x = np.zeros((2, 3, 4, 1), np.float32)
    with pytest.raises(ValueError, match="batch of 2 and the grid's 3 differ"):
        torch_grid_sample(x, np.zeros((3, 2, 2, 2), np.float32), "bilinear", "zeros", False)
    with pytest.raises(ValueError, match=r"last axis \(3,\)"):
        torch_grid_sample(x, np.zeros((2, 2, 2, 3), np.float32), "bilinear", "zeros", False)
    with pytest.raises(ValueError, match="ranks 3 and 4"):
        torch_grid_sample(x[0], np.zeros((2, 2, 2, 2), np.float32), "bilinear", "zeros", False)
    base = np.zeros((4, 5, 2), np.float32)
    with pytest.raises(ValueError, match=r"\(N, 2, 3\)"):
        torch_affine_grid(np.zeros((2, 3, 2), np.float32), base, None)
    with pytest.raises(ValueError, match="batch 3"):
        torch_affine_grid(np.zeros((2, 2, 3), np.float32), base, 3)


def test_a_fixed_batch_in_the_size_is_refused_as_fixing_the_batch_axis():
    """affine_grid(theta, (4, C, H, W)) runs in PyTorch at batch 4 alone; a converted model
    leaves the batch free, so the conversion says where the batch is fixed."""
    for n in (1, 4):
        module = Fn(lambda t, n=n: F.affine_grid(t, (n, 1, 5, 6), align_corners=False))
        with pytest.raises(TorchConversionError, match=f"batch {n} written in its size"):
            fl.from_torch(module, (torch.randn(n, 2, 3),))


class NearestWarp(nn.Module):
    def __init__(self, out_hw, align_corners, padding):
        super().__init__()
        self.out_hw, self.align_corners, self.padding = out_hw, align_corners, padding

    def forward(self, x, theta):
        grid = F.affine_grid(theta, (x.size(0), x.size(1), *self.out_hw),
                             align_corners=self.align_corners)
        return F.grid_sample(x, grid, mode="nearest", padding_mode=self.padding,
                             align_corners=self.align_corners)


@pytest.mark.parametrize("align_corners", [False, True])
def test_nearest_sampling_of_an_affine_grid_takes_pytorchs_side_of_ties(any_backend,
                                                                        align_corners):
    """Simple transforms (identity, zoom, shift) put positions exactly halfway between two
    pixels, where the last bit of the grid decides which one is read: the grid's positions
    are PyTorch's own (taken at conversion), so the pixels are PyTorch's."""
    thetas = torch.tensor([[[1, 0, 0], [0, 1, 0]], [[0.5, 0, 0], [0, 0.5, 0]],
                           [[2, 0, 0], [0, 2, 0]], [[1, 0, 0.25], [0, 1, -0.25]],
                           [[0.8, 0, 0], [0, 1.25, 0]]])
    for (h, w), out_hw in [((100, 100), (50, 75)), ((28, 28), (17, 40)), ((64, 48), (33, 25))]:
        x = torch.randn(5, 1, h, w)
        for padding in ("zeros", "border"):
            model = check(NearestWarp(out_hw, align_corners, padding), x, thetas)
            with torch.no_grad():
                want = NearestWarp(out_hw, align_corners, padding)(x, thetas).numpy()
            np.testing.assert_array_equal(model(x.numpy(), thetas.numpy()), want)


class LinspaceWarp(nn.Module):
    """A flow warp whose base grid is made in forward from torch.linspace of the sizes."""

    def forward(self, x, flow):
        n, c, h, w = x.shape
        gy, gx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w),
                                indexing="ij")
        grid = torch.stack((gx, gy), -1)[None] + flow.permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="nearest", align_corners=True)


def test_a_base_grid_from_linspace():
    x, flow = torch.randn(2, 3, 8, 9), torch.randn(2, 2, 8, 9) * 0.1
    check(LinspaceWarp(), x, flow, run_inputs=[(torch.randn(1, 3, 8, 9),
                                                torch.randn(1, 2, 8, 9) * 0.1)])


def test_an_empty_batch(any_backend):
    x, grid = torch.randn(2, 3, 4, 5), _grid(2, 3, 6, 1)
    module = Sample(3, False, align_corners=False)
    model = check(module, x, grid)
    got = model(np.zeros((0, 3, 4, 5), np.float32), np.zeros((0, 3, 6, 2), np.float32))
    assert got.shape == (0, 3, 3, 6)


def test_positions_past_the_integer_range_read_nothing():
    """Positions of 1e10 and more are outside every image (PyTorch's conversion to int32
    gives its minimum), so an infinite pixel at the origin is not read at weight 0."""
    x = torch.randn(1, 2, 4, 5)
    x[0, :, 0, 0] = float("inf")
    grid = torch.tensor([[[[1e10, 1e10], [-1e10, 0.5], [3e9, -3e9], [-0.5, 0.5]]]])
    for mode, padding in itertools.product(MODES, PADDINGS):
        check(Sample(2, False, mode=mode, padding_mode=padding, align_corners=False), x, grid)


@pytest.mark.parametrize("mode", MODES)
def test_both_paths_give_the_same_bits(mode):
    """The taps are added by the core's resample_axis on the C++ path, in NumPy's order
    (no conv before: a conv's products are BLAS's on the NumPy path)."""
    x = torch.randn(2, 5, 9, 7)
    x[0, 1, 2, 3] = float("inf")
    grid = _grid(2, 6, 11, 4, reach=1.4)
    grid[1, 2, 3] = torch.tensor([float("nan"), 0.0])
    model = fl.from_torch(Sample(5, False, mode=mode, padding_mode="zeros",
                                 align_corners=False), (x, grid))
    outs = []
    for backend in ("numpy", "cpp"):
        with fl.use_backend(backend):
            outs.append(model(x.numpy(), grid.numpy()))
    assert outs[0].tobytes() == outs[1].tobytes()
