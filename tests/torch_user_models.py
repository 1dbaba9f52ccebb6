"""PyTorch modules written as users write them, for tests/test_from_torch.py.

They live outside the test module because pytest rewrites the ``assert`` statements of test
modules, and ``from_torch`` must see a forward's plain ``assert`` as Python compiles it.
"""

from __future__ import annotations

import math

import torch

nn = torch.nn
F = torch.nn.functional


class NanoGPT(nn.Module):
    """A decoder-only transformer written as nanoGPT's model.py writes one (a user's module,
    not a torch.nn one): its LayerNorm through F.layer_norm(x, self.weight.shape, ...), the
    fused q/k/v Linear split into heads by view and transpose, F.scaled_dot_product_attention
    (``flash``) or the explicit path (q @ k^T / math.sqrt(k.size(-1)), a masked_fill of a
    sliced tril buffer, softmax, @ v), a GELU MLP, nn.ModuleDict / ModuleList, Dropout,
    tied embedding and head weights, ``assert t <= block_size``, positions from
    torch.arange(..., device=idx.device), and the last position's logits x[:, [-1], :]
    when no targets are given."""

    class LayerNorm(nn.Module):
        def __init__(self, ndim):
            super().__init__()
            self.weight = nn.Parameter(torch.rand(ndim) + 0.5)
            self.bias = nn.Parameter(torch.randn(ndim) * 0.1)

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)

    class Attention(nn.Module):
        def __init__(self, d, h, block_size, flash):
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.attn_dropout, self.resid_dropout = nn.Dropout(0.1), nn.Dropout(0.1)
            self.n_head, self.n_embd, self.dropout, self.flash = h, d, 0.1, flash
            self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                                 .view(1, 1, block_size, block_size))

        def forward(self, x):
            B, T, C = x.size()  # noqa: N806 (nanoGPT's names)
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            if self.flash:
                y = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0,
                    is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
                att = self.attn_dropout(F.softmax(att, dim=-1))
                y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.resid_dropout(self.c_proj(y))

    class Block(nn.Module):
        def __init__(self, d, h, block_size, flash):
            super().__init__()
            self.ln_1, self.ln_2 = NanoGPT.LayerNorm(d), NanoGPT.LayerNorm(d)
            self.attn = NanoGPT.Attention(d, h, block_size, flash)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d),
                                     nn.Dropout(0.1))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    def __init__(self, flash=True, vocab=50, block_size=16, d=32, h=4, n=2):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, d), wpe=nn.Embedding(block_size, d), drop=nn.Dropout(0.1),
            h=nn.ModuleList([NanoGPT.Block(d, h, block_size, flash) for _ in range(n)]),
            ln_f=NanoGPT.LayerNorm(d)))
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx, targets=None):
        device = idx.device
        b, t = idx.size()
        assert t <= self.block_size, f"Cannot forward sequence of length {t}"
        pos = torch.arange(0, t, dtype=torch.long, device=device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            return self.lm_head(x), None
        return self.lm_head(x[:, [-1], :]), None


class AssertsOnValues(nn.Module):
    """An assert on tensor values, which a conversion cannot check."""

    def forward(self, x):
        assert x.sum() > -1e9
        return x


class AssertsOnBatch(nn.Module):
    """Asserts about the batch size, which PyTorch checks at run time (not at conversion)."""

    def forward(self, x, y):
        assert x.size(0) == y.size(0)
        assert x.shape == y.shape, "same shapes"
        assert x.size(0) <= 8
        return x + y


class AssertNot(nn.Module):
    """``assert not``, and an assert on a tuple of sizes (Python's tuple comparison)."""

    def forward(self, x):
        assert not x.size(1) > 5
        assert x.shape[1:] == (4, 3)
        return x * 2


class AssertsOnShapes(nn.Module):
    """Whole-shape asserts: checked on the sizes the examples fix."""

    def forward(self, x, y):
        assert x.shape == y.shape, "same shapes"
        return x + y


class AssertsOnParameters(nn.Module):
    """Asserts on a parameter's shape (known at conversion), and a shape against a list
    (never equal in PyTorch: a torch.Size is a tuple)."""

    def __init__(self, rows=4, against_list=False):
        super().__init__()
        self.w = nn.Parameter(torch.randn(rows, 3))
        self.against_list = against_list

    def forward(self, x):
        assert not self.w.shape[0] > 5
        assert self.w.shape[0] == 4, "four rows"
        if self.against_list:
            assert x.shape[1:] == [4, 3]
        return x + self.w


class AssertsShapeBelowList(nn.Module):
    """An ordering of a shape against a list: a TypeError in Python and PyTorch."""

    def forward(self, x):
        assert x.shape[1:] < [5, 5]
        return x
