"""from_torch of patches and windows: nn.Unfold / F.unfold (im2col), nn.Fold / F.fold
(col2im), Tensor.unfold (sliding windows, as patchify and audio framing write it) and
interpolate(mode="area") (adaptive average pooling). References: the modules themselves, in
eval mode (docs/semantics.md §24)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from test_from_torch import check  # noqa: E402

import fastlayers as fl  # noqa: E402
from fastlayers.io.torch_fx import TorchConversionError  # noqa: E402


class Im2col(nn.Module):
    def __init__(self, conv_first, **kw):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1) if conv_first else nn.Identity()  # channels-last input
        self.unfold = nn.Unfold(**kw)

    def forward(self, x):
        return self.unfold(self.conv(x))


UNFOLD_CASES = [
    dict(kernel_size=1),
    dict(kernel_size=3),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, dilation=2, padding=1, stride=2),
    dict(kernel_size=(1, 5), dilation=(1, 2), padding=(0, 3), stride=3),
]


@pytest.mark.parametrize("kw", UNFOLD_CASES)
@pytest.mark.parametrize("conv_first", [False, True])
@pytest.mark.parametrize("hw", [(5, 7), (11, 13)])
def test_unfold_module(kw, conv_first, hw):
    torch.manual_seed(0)
    check(Im2col(conv_first, **kw), torch.randn(2, 3, *hw),
          run_inputs=[(torch.randn(1, 3, *hw),), (torch.randn(5, 3, *hw),)])


class FoldBack(nn.Module):
    """unfold, a change to the columns, fold: overlapping patches summed back."""

    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        cols = F.unfold(x, **self.kw)
        return F.fold(torch.tanh(cols) * 3.0, x.shape[-2:], **self.kw)


@pytest.mark.parametrize("kw", UNFOLD_CASES)
def test_fold_of_unfold(kw):
    torch.manual_seed(1)
    check(FoldBack(**kw), torch.randn(2, 3, 9, 10), run_inputs=[(torch.randn(3, 3, 9, 10),)])


def test_fold_module_sums_overlaps_as_pytorch(any_backend):
    torch.manual_seed(2)
    fold = nn.Fold(output_size=(6, 5), kernel_size=(3, 2), stride=1, padding=1)
    x = torch.randn(2, 4 * 6, 6 * 6)  # 4 channels, 3 x 2 taps, 6 x 6 positions
    model = check(fold, x, run_inputs=[(torch.randn(1, 24, 36),)])
    # every pixel inside is covered by several patches: the sums matter
    ones = model(np.ones((1, 24, 36), np.float32))
    assert ones.max() == 6.0 and ones.min() >= 1.0


class Patchify(nn.Module):
    """A vision transformer's patches as x.unfold(2, p, p).unfold(3, p, p) writes them."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.proj = nn.Linear(3 * p * p, 8)

    def forward(self, x):
        p = self.p
        patches = x.unfold(2, p, p).unfold(3, p, p)  # (N, C, h, w, p, p)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(x.shape[0], -1, 3 * p * p)
        return self.proj(patches)


@pytest.mark.parametrize("p, hw", [(4, (16, 12)), (1, (3, 2)), (5, (17, 11))])
def test_patchify_by_tensor_unfold(p, hw):
    torch.manual_seed(3)
    check(Patchify(p), torch.randn(2, 3, *hw), run_inputs=[(torch.randn(1, 3, *hw),)])


class Frames(nn.Module):
    """Audio framing: windows of ``size`` samples every ``step``, then a window function."""

    def __init__(self, size, step, dim):
        super().__init__()
        self.size, self.step, self.dim = size, step, dim
        self.register_buffer("window", torch.hann_window(size))

    def forward(self, x):
        return x.unfold(self.dim, self.size, self.step) * self.window


@pytest.mark.parametrize("size, step", [(8, 4), (7, 3), (16, 16), (1, 1), (31, 2)])
@pytest.mark.parametrize("dim", [1, -1])
def test_framing_by_tensor_unfold(size, step, dim):
    torch.manual_seed(4)
    check(Frames(size, step, dim), torch.randn(2, 31), run_inputs=[(torch.randn(3, 31),)])


class IntWindows(nn.Module):
    def forward(self, ids):
        return ids.unfold(1, 3, 2).sum(-1)


def test_tensor_unfold_of_integers_stays_integer(any_backend):
    ids = torch.randint(0, 100, (2, 9))
    model = check(IntWindows(), ids)
    assert model(ids.numpy()).dtype == np.int64


class Area(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return F.interpolate(torch.relu(x), mode="area", **self.kw)


@pytest.mark.parametrize("kw, shape", [
    (dict(scale_factor=0.5), (2, 3, 10, 9)),
    (dict(scale_factor=(0.4, 1.5)), (2, 3, 11, 7)),
    (dict(size=(5, 3)), (2, 3, 13, 17)),
    (dict(size=7), (2, 3, 7, 7)),
    (dict(size=(1, 1)), (2, 3, 5, 6)),
    (dict(scale_factor=0.25), (2, 4, 17)),  # 3-D: adaptive_avg_pool1d
    (dict(size=10), (2, 4, 23)),
])
def test_interpolate_area(kw, shape):
    torch.manual_seed(5)
    check(Area(**kw), torch.randn(*shape), run_inputs=[(torch.randn(1, *shape[1:]),)])


def test_upsample_module_in_area_mode():
    torch.manual_seed(6)
    check(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(size=(6, 4), mode="area")),
          torch.randn(2, 3, 11, 9))


class WritesThroughWindows(nn.Module):
    def forward(self, x):
        w = x.unfold(1, 4, 2)
        w.mul_(2.0)  # writes into x too, twice where the windows overlap
        return x + 1.0


class Bad(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_what_does_not_convert_is_refused_by_name():
    # a write through the overlapping windows into their input
    with pytest.raises(TorchConversionError, match="mul_"):
        fl.from_torch(WritesThroughWindows(), torch.randn(2, 10))
    # F.unfold of a 3-D input (PyTorch takes it as unbatched)
    with pytest.raises(TorchConversionError, match="unfold needs a batched 4-D input"):
        fl.from_torch(Bad(lambda x: F.unfold(x, 2)), torch.randn(3, 5, 5))
    # area of a 5-D input
    with pytest.raises(TorchConversionError, match="mode='area' needs a 3-D or 4-D input"):
        fl.from_torch(Bad(lambda x: F.interpolate(x, size=2, mode="area")),
                      torch.randn(1, 2, 4, 4, 4))


def test_windows_over_the_batch_axis():
    # x.unfold(0, ...) mixes the samples: a call runs as PyTorch, with a clear error where the
    # batch is smaller than a window; predict refuses to cut such a batch
    model = check(Frames(2, 1, 0), torch.randn(4, 31), run_inputs=[(torch.randn(3, 31),)])
    with pytest.raises(ValueError, match="window of 2 elements does not fit an axis of size 1"):
        model(np.zeros((1, 31), np.float32))
    with pytest.raises(ValueError, match="mixes the samples of a batch"):
        model.predict(np.zeros((5, 31), np.float32), batch_size=2)
