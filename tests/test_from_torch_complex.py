"""from_torch of complex tensors as models use them: rotary embeddings written with
torch.view_as_complex (Meta's LLaMA and torchtitan), spectrograms from torch.stft, and
torch.fft. A converted complex tensor is float32 pairs (torch_common._C); only the calls that
take one convert it, others are refused. References: the modules themselves, in eval mode,
on both paths (docs/semantics.md §24)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from test_from_torch import check  # noqa: E402

import fastlayers as fl  # noqa: E402
from fastlayers.io.torch_fx import TorchConversionError  # noqa: E402


class Fn(nn.Module):
    def __init__(self, fn, **buffers):
        super().__init__()
        self.fn = fn
        for name, value in buffers.items():
            self.register_buffer(name, value)

    def forward(self, *xs):
        return self.fn(self, *xs)


# ---- rotary embeddings, as Meta's LLaMA reference code writes them -------------------------


def precompute_freqs_cis(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.polar(torch.ones_like(freqs), freqs)


def reshape_for_broadcast(freqs_cis, x):
    ndim = x.ndim
    assert 0 <= 1 < ndim
    assert freqs_cis.shape == (x.shape[1], x.shape[-1])
    shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
    return freqs_cis.view(*shape)


def apply_rotary_emb(xq, xk, freqs_cis):
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs_cis = reshape_for_broadcast(freqs_cis, xq_)
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


class RopeAttention(nn.Module):
    """A LLaMA attention block with complex rotary embeddings; freqs_cis a buffer (as
    torchtitan registers it) or a plain attribute (as Meta's reference code keeps it)."""

    def __init__(self, dim=32, heads=4, max_seq=24, buffer=True):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        freqs = precompute_freqs_cis(self.head_dim, max_seq)
        if buffer:
            self.register_buffer("freqs_cis", freqs, persistent=False)
        else:
            self.freqs_cis = freqs

    def forward(self, x):
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.heads, self.head_dim)
        xk = self.wk(x).view(bsz, seqlen, self.heads, self.head_dim)
        xv = self.wv(x).view(bsz, seqlen, self.heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, self.freqs_cis[:seqlen])
        out = F.scaled_dot_product_attention(xq.transpose(1, 2), xk.transpose(1, 2),
                                             xv.transpose(1, 2), is_causal=True)
        return self.wo(out.transpose(1, 2).contiguous().view(bsz, seqlen, -1))


@pytest.mark.parametrize("buffer", [True, False])
@pytest.mark.parametrize("seq", [1, 7, 16])
def test_complex_rotary_embedding(buffer, seq):
    torch.manual_seed(seq)
    module = RopeAttention(buffer=buffer)
    check(module, torch.randn(2, seq, 32),
          run_inputs=[(torch.randn(1, seq, 32),), (torch.randn(3, seq, 32),)])


def test_a_converted_complex_model_pickles_and_runs_without_torch_objects():
    module = RopeAttention().eval()
    x = torch.randn(2, 5, 32)
    model = pickle.loads(pickle.dumps(fl.from_torch(module, x)))
    with torch.no_grad():
        want = module(x).numpy()
    np.testing.assert_allclose(model(x.numpy()), want, rtol=2e-5, atol=2e-5)


# ---- arithmetic, parts and sizes ---------------------------------------------------------


def _z(x):
    return torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))


CALLS = {
    "z * w": lambda m, x, y: torch.view_as_real(_z(x) * _z(y)),
    "z / w": lambda m, x, y: torch.view_as_real(_z(x) / _z(y)),
    "z + real": lambda m, x, y: torch.view_as_real(_z(x) + y[..., :3]),
    "real - z": lambda m, x, y: torch.view_as_real(y[..., :3] - _z(x)),
    "number * z, z - number": lambda m, x, y: torch.view_as_real(2.5 * _z(x) - 1),
    "z * complex buffer, broadcast": lambda m, x, y: torch.view_as_real(
        _z(x).mul(m.c).div(m.c[0])),
    "torch.mul, torch.add": lambda m, x, y: torch.view_as_real(
        torch.add(torch.mul(_z(x), _z(y)), _z(y))),
    "abs, angle": lambda m, x, y: (_z(x).abs(), torch.angle(_z(x)), torch.abs(_z(y))),
    "real, imag": lambda m, x, y: (_z(x).real, _z(x).imag * 2, torch.real(_z(y))),
    "conj": lambda m, x, y: torch.view_as_real(_z(x).conj().resolve_conj() * torch.conj(_z(y))),
    "sizes": lambda m, x, y: torch.view_as_real(_z(x)).reshape(
        _z(x).shape[0], _z(x).size(1), _z(x).dim(), -1),
}


@pytest.mark.parametrize("name", CALLS)
def test_complex_arithmetic_and_parts(name):
    g = torch.Generator().manual_seed(3)
    c = torch.complex(torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g))
    check(Fn(CALLS[name], c=c), torch.randn(2, 4, 6), torch.randn(2, 4, 6),
          run_inputs=[(torch.randn(3, 4, 6), torch.randn(3, 4, 6))])


# ---- FFTs ----------------------------------------------------------------------------------

FFTS = {
    "rfft": lambda m, x: torch.view_as_real(torch.fft.rfft(x)),
    "rfft n ortho": lambda m, x: torch.fft.rfft(x, n=12, norm="ortho").abs(),
    "rfft odd n, dim 1": lambda m, x: torch.view_as_real(torch.fft.rfft(x, n=5, dim=1)),
    "fft of real, forward": lambda m, x: torch.view_as_real(torch.fft.fft(x, norm="forward")),
    "fft of complex": lambda m, x: torch.view_as_real(torch.fft.fft(_z(x))),
    "ifft of fft": lambda m, x: torch.fft.ifft(torch.fft.fft(x)).real,
    "irfft of rfft": lambda m, x: torch.fft.irfft(torch.fft.rfft(x), n=x.shape[-1]),
    "irfft of a filtered rfft": lambda m, x: torch.fft.irfft(torch.fft.rfft(x) * m.f, n=10),
}


@pytest.mark.parametrize("name", FFTS)
def test_ffts(name):
    f = torch.linspace(0, 1, 6)  # a low-pass gain on the 6 rfft bins of 10 samples
    check(Fn(FFTS[name], f=f), torch.randn(2, 3, 10),
          run_inputs=[(torch.randn(1, 3, 10),)])


# ---- stft: spectrograms ------------------------------------------------------------------


class LogMel(nn.Module):
    """A log-mel front end as audio classifiers write it: stft, power, a mel matrix, log,
    then a conv and a linear head."""

    def __init__(self, n_fft=64, hop=16, mels=10, **stft):
        super().__init__()
        self.n_fft, self.hop, self.stft = n_fft, hop, stft
        self.register_buffer("window", torch.hann_window(stft.pop("win_length", n_fft)))
        g = torch.Generator().manual_seed(0)
        self.register_buffer("mel", torch.rand(n_fft // 2 + 1, mels, generator=g))
        self.conv = nn.Conv1d(mels, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        spec = torch.stft(x, self.n_fft, self.hop, win_length=self.window.numel(),
                          window=self.window, return_complex=True, **self.stft)
        power = spec.abs() ** 2
        mel = torch.matmul(power.transpose(1, 2), self.mel).transpose(1, 2)
        return self.head(self.conv(torch.log(mel + 1e-6)).mean(-1))


@pytest.mark.parametrize("stft", [
    {}, {"center": False}, {"pad_mode": "constant"}, {"pad_mode": "replicate"},
    {"pad_mode": "circular"}, {"normalized": True}, {"win_length": 48},
])
def test_log_mel_spectrogram(stft):
    torch.manual_seed(1)
    check(LogMel(**stft), torch.randn(2, 401), run_inputs=[(torch.randn(3, 401),)])


STFTS = {
    "no window": lambda m, x: torch.stft(x, 16, return_complex=True).abs(),
    "hop, hamming window, pairs": lambda m, x: torch.stft(
        x, 16, hop_length=5, window=torch.hamming_window(16), return_complex=False),
    "two-sided, real and imag": lambda m, x: (lambda s: (s.real, s.imag))(torch.stft(
        x, 8, 3, window=torch.hann_window(8), onesided=False, return_complex=True)),
    "short window": lambda m, x: torch.view_as_real(torch.stft(
        x, 20, 7, win_length=9, window=torch.hann_window(9), return_complex=True)),
}


@pytest.mark.parametrize("name", STFTS)
def test_stft(name):
    check(Fn(STFTS[name]), torch.randn(2, 53), run_inputs=[(torch.randn(1, 53),)])


# ---- what does not convert ---------------------------------------------------------------


@pytest.mark.parametrize("fn,message", [
    (lambda m, x: _z(x) * 2, "complex tensor; a converted model returns float32"),
    (lambda m, x: torch.view_as_real(torch.exp(_z(x))), r"exp.*of a complex tensor"),
    (lambda m, x: _z(x).sum(1).abs(), r"sum.*of a complex tensor"),
    (lambda m, x: torch.view_as_real(_z(x)[:, torch.tensor([0, 2])]),
     "indexing a complex tensor"),
    (lambda m, x: torch.stft(x[:, 0], 4, window=torch.hann_window(4) * x[:, 0, 0].mean(),
                             return_complex=True).abs(), "window must be a parameter"),
])
def test_what_does_not_convert_is_refused(fn, message):
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        fn(None, x)  # PyTorch runs it
    with pytest.raises(TorchConversionError, match=message):
        fl.from_torch(Fn(fn), x)


def test_stft_of_a_signal_shorter_than_its_padding_is_a_value_error():
    """Reflect padding by n_fft // 2 needs more samples, and a frame needs n_fft: a
    ValueError, as PyTorch raises (the op alone: a converted model fixes the length)."""
    from fastlayers.io.torch_ops import torch_stft

    window = np.hanning(16).astype(np.float32)
    with pytest.raises(ValueError, match="reflect padding"):
        torch_stft(np.zeros((2, 5), np.float32), 16, 4, window, True, "reflect", False, True)
    with pytest.raises(ValueError, match="shorter than n_fft"):
        torch_stft(np.zeros((2, 15), np.float32), 16, 4, window, False, "reflect", False, True)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        torch_stft(np.zeros((2, 3, 40), np.float32), 16, 4, window, True, "reflect", False,
                   True)


# ---- from the audit: complex constants with real tensors, constants made in forward --------


class Gain(nn.Module):
    """A real tensor times a complex parameter (a learned complex gain per bin)."""

    def __init__(self, fn):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, dtype=torch.cfloat))
        self.phi = nn.Parameter(torch.randn(16))
        self.fn = fn

    def forward(self, x):
        return self.fn(self, x)


GAINS = {
    "|x w|": lambda m, x: (x * m.w).abs(),
    "ifft(x w).real": lambda m, x: torch.fft.ifft(x * m.w).real,
    "|x e^(i phi) + x|^2": lambda m, x: (x * torch.exp(1j * m.phi) + x).abs() ** 2,
    "|x + 2j|": lambda m, x: (x + 2j).abs(),
    "x (1 + 1j) * conj(w)": lambda m, x: torch.view_as_real(x * (1 + 1j) * m.w.conj()),
    "imag of conj(w) times x": lambda m, x: x * m.w.conj().imag,
}


@pytest.mark.parametrize("name", GAINS)
def test_real_tensors_with_complex_constants(name):
    check(Gain(GAINS[name]), torch.randn(3, 16), run_inputs=[(torch.randn(1, 16),)])


@pytest.mark.parametrize("fn", [lambda m, x: x * m.w, lambda m, x: x * 1j,
                                lambda m, x: torch.where(x > 0, x, m.w).abs()])
def test_complex_results_of_real_tensors_are_refused_where_they_do_not_convert(fn):
    with pytest.raises(TorchConversionError, match="complex tensor"):
        fl.from_torch(Gain(fn), torch.randn(3, 16))


class NamedLikeAMethod(nn.Module):
    def __init__(self):
        super().__init__()
        self.conj = nn.Identity()

    def forward(self, x):
        return torch.view_as_real(self.conj(_z(x)))


def test_a_module_applied_to_a_complex_tensor_is_refused_whatever_its_name():
    with pytest.raises(TorchConversionError, match=r"conj \(Identity\) of a complex tensor"):
        fl.from_torch(NamedLikeAMethod(), torch.randn(2, 4, 6))


class RopeInForward(nn.Module):
    """The rotary frequencies made in forward from the sequence length (torch.polar of
    arange and outer), as some training code writes them."""

    def forward(self, x):  # x (B, T, H, 8)
        f = 1.0 / (10000.0 ** (torch.arange(0, 8, 2)[:4].float() / 8))
        f = torch.outer(torch.arange(x.shape[1], device=x.device), f).float()
        fc = torch.polar(torch.ones_like(f), f)
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * fc[:, None, :]).flatten(3)


def test_constants_made_in_forward():
    check(RopeInForward(), torch.randn(2, 6, 3, 8), run_inputs=[(torch.randn(1, 6, 3, 8),)])
    for make in (lambda x: torch.hann_window(64, device=x.device),
                 lambda x: torch.hann_window(64, dtype=x.dtype),
                 lambda x: torch.blackman_window(64, periodic=False)):
        check(Fn(lambda m, x, make=make: torch.stft(x, 64, 16, window=make(x),
                                                     return_complex=True).abs()),
              torch.randn(2, 400))
    check(Fn(lambda m, x: x + torch.linspace(0, 1000, 10, dtype=torch.bfloat16)),
          torch.randn(2, 10))


class WhisperLogMel(nn.Module):
    """OpenAI Whisper's log_mel_spectrogram: the last frame dropped from the complex stft,
    the method form of stft."""

    def __init__(self, method):
        super().__init__()
        self.register_buffer("window", torch.hann_window(400))
        g = torch.Generator().manual_seed(0)
        self.register_buffer("filters", torch.rand(20, 201, generator=g))
        self.method = method

    def forward(self, audio):
        if self.method:
            stft = audio.stft(400, 160, window=self.window, return_complex=True)
        else:
            stft = torch.stft(audio, 400, 160, window=self.window, return_complex=True)
        magnitudes = stft[..., :-1].abs() ** 2
        mel_spec = self.filters @ magnitudes
        log_spec = torch.clamp(mel_spec, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0


@pytest.mark.parametrize("method", [False, True])
def test_whisper_log_mel_spectrogram(method):
    check(WhisperLogMel(method), torch.randn(2, 4000))


COMPLEX_INDEXES = {
    "[..., :-1]": lambda z: z[..., :-1],
    "[:, 1]": lambda z: z[:, 1],
    "[:, None, ::2]": lambda z: z[:, None, ::2],
    "[0]": lambda z: z[0],
}


@pytest.mark.parametrize("name", COMPLEX_INDEXES)
def test_indexing_a_complex_tensor(name):
    index = COMPLEX_INDEXES[name]
    check(Fn(lambda m, x: torch.view_as_real(index(_z(x)))), torch.randn(2, 4, 6))


def test_a_signal_too_short_for_its_stft_is_refused_at_conversion():
    module = Fn(lambda m, x: torch.stft(x, 32, 8, window=torch.hann_window(32),
                                        return_complex=True).abs())
    with pytest.raises(TorchConversionError, match="too short"):
        fl.from_torch(module, torch.randn(2, 10))


# ---- from the review: writes through complex views, keyword forms, complex inputs ---------


@pytest.mark.parametrize("fn", [
    lambda m, x: (lambda z: (torch.view_as_real(z).__setitem__((..., 1), 0), z.abs())[1])(
        torch.fft.fft(x)),
    lambda m, x: (lambda z: (z.imag.mul_(0), z.abs())[1])(torch.fft.fft(x)),
    lambda m, x: (lambda y: (lambda z: (y.mul_(2), z.abs())[1])(
        torch.view_as_complex(y.reshape(-1, 4, 2))))(x * 1),
])
def test_writes_through_complex_views_are_refused(fn):
    """view_as_real, view_as_complex and imag share memory in PyTorch: a write through one
    that the other is read after cannot be followed, and is refused as for real views."""
    x = torch.randn(3, 8)
    with torch.no_grad():
        fn(None, x)
    with pytest.raises(TorchConversionError, match="shares its memory"):
        fl.from_torch(Fn(fn), x)


KEYWORD_FORMS = {
    "fft(input=z)": lambda m, x: torch.view_as_real(torch.fft.fft(input=_z(x))),
    "abs(input=z)": lambda m, x: torch.abs(input=_z(x)),
    "mul(z, other=w)": lambda m, x: torch.view_as_real(torch.mul(_z(x), other=_z(x))),
    "view_as_real(input=z)": lambda m, x: torch.view_as_real(input=_z(x) + 1),
    "add(z, w, alpha=1)": lambda m, x: torch.view_as_real(torch.add(_z(x), _z(x), alpha=1)),
}


@pytest.mark.parametrize("name", KEYWORD_FORMS)
def test_complex_calls_by_keyword(name):
    check(Fn(KEYWORD_FORMS[name]), torch.randn(2, 4, 6))


def test_complex_calls_with_arguments_they_do_not_take_are_refused_with_the_call():
    fn = Fn(lambda m, x: torch.fft.irfft(torch.fft.rfft(x), out=None))
    with pytest.raises(TorchConversionError, match=r"irfft.*with these arguments"):
        fl.from_torch(fn, torch.randn(2, 8))
    fn = Fn(lambda m, x: torch.view_as_real(torch.add(_z(x), _z(x), alpha=2)))
    with pytest.raises(TorchConversionError, match="of a complex tensor"):
        fl.from_torch(fn, torch.randn(2, 4, 6))


def test_a_complex_example_input_is_refused_at_conversion():
    with pytest.raises(TorchConversionError, match="complex example input"):
        fl.from_torch(Fn(lambda m, z: z.abs()), torch.randn(2, 4, dtype=torch.cfloat))


def test_random_draws_of_sizes_in_forward_are_listed_with_the_rest():
    """A constant made in forward converts (computed at conversion), but not a random draw:
    the check lists it with every other call that does not convert."""
    fn = Fn(lambda m, x: torch.randn(x.shape[1]) + torch.special.gammaln(x))
    with pytest.raises(TorchConversionError, match=r"2 module\(s\) or call\(s\)") as info:
        fl.from_torch(fn, torch.randn(2, 5))
    assert "randn" in str(info.value) and "gammaln" in str(info.value)


def test_calls_of_known_numbers_without_a_converter_are_computed_at_conversion(any_backend):
    """torch.logspace of a size the examples fix has no converter of its own: PyTorch
    computes it when converting, as any call of known values."""
    check(Fn(lambda m, x: x * torch.logspace(0, 1, x.shape[1])), torch.randn(2, 5),
          run_inputs=[(torch.randn(3, 5),)])
    with pytest.raises(TorchConversionError, match="known only at run time"):
        fl.from_torch(Fn(lambda m, x: x[:, :1] * torch.logspace(0, 1, x.shape[0])),
                      torch.randn(2, 5))
