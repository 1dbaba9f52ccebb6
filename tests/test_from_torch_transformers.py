"""from_torch on HuggingFace transformers models, against PyTorch's own outputs.

Each model is built from a small config with random weights (no download), converted the
way a user would (``fl.from_torch(model, (input_ids, attention_mask))``, the model itself,
decorated forward and ModelOutput included), and compared with the model's outputs at the
example batch, at other batch sizes, and with padding, on both paths. Skipped without
transformers (CI installs it: .ci/run). What makes these convert: docs/semantics.md §24.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from conftest import backends_of_the_test  # noqa: E402
from test_from_torch import _copied  # noqa: E402

import fastlayers as fl  # noqa: E402

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _text(name, **config):
    def build(attn):
        model_cls = getattr(transformers, name)
        cfg = model_cls.config_class(**{**SMALL, "vocab_size": 50, **config},
                                     attn_implementation=attn)
        return model_cls(cfg)
    return build


class _MaskByKeyword(torch.nn.Module):
    """A user's wrapper of a model whose second positional argument is not the mask."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask=attention_mask, use_cache=False)[0]


_DEBERTA_V3 = dict(relative_attention=True, position_buckets=8, max_relative_positions=16,
                   pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm")

TEXT = {
    "BertModel": _text("BertModel"),
    "BertForSequenceClassification": _text("BertForSequenceClassification"),
    "DistilBertModel": lambda attn: transformers.DistilBertModel(transformers.DistilBertConfig(
        dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=50, attn_implementation=attn)),
    "RobertaModel": _text("RobertaModel"),
    # forward(input_ids, past_key_values, ...): the mask goes by keyword (_MaskByKeyword)
    "GPT2LMHeadModel": lambda attn: _MaskByKeyword(transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=32,
                                use_cache=False, attn_implementation=attn))),
    "LlamaModel": _text("LlamaModel", num_key_value_heads=2, use_cache=False),
    # rotary tables by repeat_interleave
    "GPTJModel": lambda attn: _MaskByKeyword(transformers.GPTJModel(transformers.GPTJConfig(
        n_embd=32, n_layer=2, n_head=4, rotary_dim=4, vocab_size=50, n_positions=32,
        bos_token_id=0, eos_token_id=0, attn_implementation=attn))),
    # builtin abs() in its sliding-window mask
    "ModernBertModel": _text("ModernBertModel", global_attn_every_n_layers=2,
                             local_attention=8, pad_token_id=0, bos_token_id=1,
                             eos_token_id=2, cls_token_id=1, sep_token_id=2),
    # torch.tensor of a size, constant 0-d tensors as slice bounds and clamp limits
    "DebertaModel": _text("DebertaModel", relative_attention=True, max_relative_positions=16,
                          pos_att_type=["p2c", "c2p"]),
    # DeBERTa v3's configuration: batch and heads merged into one axis, repeat(B*H // H)
    "DebertaV2Model": _text("DebertaV2Model", **_DEBERTA_V3),
    "DebertaV2ForSequenceClassification": _text("DebertaV2ForSequenceClassification",
                                                num_labels=3, **_DEBERTA_V3),
    # a size check of (B * heads, T, S) scores; alibi of batch x heads
    "BloomModel": lambda attn: _MaskByKeyword(transformers.BloomModel(transformers.BloomConfig(
        hidden_size=32, n_layer=2, n_head=4, vocab_size=50, attn_implementation=attn))),
    # torch.tensor(finfo.min, dtype=w.dtype)
    "GPTNeoModel": lambda attn: _MaskByKeyword(transformers.GPTNeoModel(transformers.GPTNeoConfig(
        hidden_size=32, num_layers=2, num_heads=4, vocab_size=50, window_size=4,
        attention_types=[[["global", "local"], 1]], attn_implementation=attn))),
    # torch.eye of a size
    "XLNetModel": lambda attn: transformers.XLNetModel(transformers.XLNetConfig(
        d_model=32, n_layer=2, n_head=4, d_inner=64, vocab_size=50, attn_implementation=attn)),
    "T5EncoderModel": lambda attn: transformers.T5EncoderModel(transformers.T5Config(
        d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=50,
        attn_implementation=attn)),
}

VISION = {
    "ViTForImageClassification": lambda attn: transformers.ViTForImageClassification(
        transformers.ViTConfig(**SMALL, image_size=16, patch_size=4, num_labels=3,
                               attn_implementation=attn)),
    "CLIPVisionModel": lambda attn: transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        **SMALL, image_size=16, patch_size=4, attn_implementation=attn)),
    "SwinModel": lambda attn: transformers.SwinModel(transformers.SwinConfig(
        image_size=16, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[2, 2],
        window_size=4, attn_implementation=attn)),
    "SiglipVisionModel": lambda attn: transformers.SiglipVisionModel(
        transformers.SiglipVisionConfig(**SMALL, image_size=16, patch_size=4,
                                        attn_implementation=attn)),
    # unfolds patches with the batch times the patch area as one axis
    "MobileViTModel": lambda attn: transformers.MobileViTModel(transformers.MobileViTConfig(
        image_size=16, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
        num_attention_heads=2)),
    # is_causal = q_length > 1 and ...: a flag known at conversion
    "SegformerModel": lambda attn: transformers.SegformerModel(transformers.SegformerConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
        sr_ratios=[2, 1, 1, 1], decoder_hidden_size=32, attn_implementation=attn)),
    # its relative position index built in forward by item assignment
    "BeitModel": lambda attn: transformers.BeitModel(transformers.BeitConfig(
        **SMALL, image_size=16, patch_size=4, use_relative_position_bias=True,
        attn_implementation=attn)),
    "ConvNextModel": lambda attn: transformers.ConvNextModel(transformers.ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)),
    "ResNetModel": lambda attn: transformers.ResNetModel(transformers.ResNetConfig(
        hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8)),
}


# no attention, or transformers refuses sdpa for it
_NO_SDPA = ("ConvNextModel", "ResNetModel", "MobileViTModel")


def _random_norms(model):
    """BatchNorm running statistics away from their init (0 and 1), so a wrong use shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def _compare(got, want):
    if isinstance(want, dict):  # a ModelOutput: the converted model returns a dict
        assert isinstance(got, dict) and list(got) == list(want.keys())
        for key in want.keys():
            _compare(got[key], want[key])
        return
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _compare(g, w)
        return
    w = want.detach().numpy()
    assert got.shape == w.shape
    scale = max(1.0, float(np.abs(w[np.isfinite(w)]).max(initial=0.0)))
    np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-5 * scale)


def _check(model, examples, *others):
    """Convert once; on each backend of the test (both, or the one any_backend pins: a
    converted model picks its path at every call), compare on every input; then the same
    after a pickle round trip (a model handed to worker processes)."""
    model.eval()
    converted = fl.from_torch(model, examples)
    again = pickle.loads(pickle.dumps(converted))
    cases = []
    for inputs in (examples, *others):
        with torch.no_grad():
            cases.append(([t.numpy() for t in inputs], _copied(model(*inputs))))
    _on_each_backend([(m, cases) for m in (converted, again)])
    return converted


def _on_each_backend(models_and_cases):
    """Each (converted model, [(input arrays, PyTorch's outputs)]) compared on each backend of
    the test; a failure names the backend."""
    for backend in backends_of_the_test():
        with fl.use_backend(backend):
            for m, cases in models_and_cases:
                for arrays, want in cases:
                    try:
                        _compare(m(*arrays), want)
                    except AssertionError as e:
                        raise AssertionError(f"on the {backend} path: {e}") from e


def _ids(b, t=12):
    g = torch.Generator().manual_seed(b)
    ids = torch.randint(0, 50, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[0, t - 3:] = 0  # padding at the end of the first row
    return ids, mask


# transformers refuses sdpa for these
_EAGER_ONLY = ("DebertaModel", "DebertaV2Model", "DebertaV2ForSequenceClassification",
               "BloomModel", "GPTNeoModel", "XLNetModel")


@pytest.mark.parametrize("name,attn", [(n, a) for n in TEXT for a in ("eager", "sdpa")
                                       if a == "eager" or n not in _EAGER_ONLY])
def test_text_models_with_padding_masks(name, attn):
    torch.manual_seed(0)
    _check(TEXT[name](attn), _ids(2), _ids(3), _ids(1))


def test_a_model_output_as_a_layer_of_a_model(any_backend):
    """A converted BERT (its forward returns a ModelOutput, a dict here) as the encoder of a
    fastlayers Model, with a Dense head on its pooled output."""
    torch.manual_seed(0)
    bert = TEXT["BertModel"]("sdpa").eval()
    ids, mask = _ids(2)
    encoder = fl.from_torch(bert, (ids, mask))
    in_ids, in_mask = fl.Input((12,), dtype="int64"), fl.Input((12,), dtype="int64")
    outputs = encoder(in_ids, in_mask)
    assert "last_hidden_state" in outputs and "pooler_output" in outputs
    head = fl.layers.Dense(3, activation="softmax")
    model = fl.Model([in_ids, in_mask], head(outputs["pooler_output"]))
    ids3, mask3 = _ids(3)
    with torch.no_grad():
        pooled = bert(ids3, attention_mask=mask3)["pooler_output"].numpy()
    got = model([ids3.numpy(), mask3.numpy()])
    np.testing.assert_allclose(got, head(pooled), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["BertModel", "DistilBertModel", "T5EncoderModel"])
def test_text_models_without_masks(name):
    torch.manual_seed(0)
    _check(TEXT[name]("eager"), (_ids(2)[0],), (_ids(3)[0],))


@pytest.mark.parametrize("name,attn", [(n, a) for n in VISION for a in ("eager", "sdpa")
                                       if a == "eager" or n not in _NO_SDPA])
def test_vision_models(name, attn):
    torch.manual_seed(0)
    model = _random_norms(VISION[name](attn))
    _check(model, (torch.randn(2, 3, 16, 16),), (torch.randn(3, 3, 16, 16),))


def _audio(b, mask):
    g = torch.Generator().manual_seed(b)
    x = torch.randn(b, 400, generator=g)
    if not mask:
        return (x,)
    m = torch.ones(b, 400, dtype=torch.long)
    m[0, 300:] = 0  # the first row padded
    x[0, 300:] = 0
    return x, m


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("name", ["Wav2Vec2Model", "HubertModel"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_audio_models(name, attn, mask):
    """Raw audio through the convolutional feature encoder and transformer; with a padding
    mask, its frames' mask is built by item assignment, mask[(arange(b), lengths - 1)] = 1,
    from lengths computed with torch.div(..., rounding_mode="floor")."""
    torch.manual_seed(0)
    model_cls = getattr(transformers, name)
    model = model_cls(model_cls.config_class(
        **SMALL, conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3),
        feat_extract_norm="layer", num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, attn_implementation=attn))
    _check(model, _audio(2, mask), _audio(1, mask), _audio(3, mask))


DECODERS = {
    "LlamaModel": TEXT["LlamaModel"],
    "Qwen2Model": _text("Qwen2Model", num_key_value_heads=2, use_cache=False),
    "MistralModel": _text("MistralModel", num_key_value_heads=2, use_cache=False),
    "GPT2LMHeadModel": lambda attn: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=32, use_cache=False,
        attn_implementation=attn)),
}


@pytest.mark.parametrize("rows", [1, 2])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", list(DECODERS))
def test_decoders_without_a_mask(name, attn, rows):
    """Called without attention_mask, decoders expand their position ids only when the batch
    is not 1 (masking_utils): converted on the path of 2 or more rows, checked by from_torch
    at batch 1, and compared here at 1-3 rows."""
    torch.manual_seed(0)
    _check(DECODERS[name](attn), (_ids(rows)[0],), (_ids(1)[0],), (_ids(3)[0],))


def _phi3_longrope(attn):
    return transformers.Phi3Model(transformers.Phi3Config(
        **SMALL, vocab_size=50, num_key_value_heads=2, pad_token_id=0, use_cache=False,
        max_position_embeddings=64, original_max_position_embeddings=16,
        rope_scaling={"rope_type": "longrope", "short_factor": [1.0, 1.3, 1.9, 2.4],
                      "long_factor": [2.5, 3.5, 5.0, 7.0]},
        attn_implementation=attn))


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("t", [12, 16, 17, 20])
def test_phi3_longrope(t, attn, mask):
    """Phi-3's longrope RoPE writes its inv_freq buffer with the short or the long factors
    (inv_freq.copy_(torch.where(seq_len > 16, long, short))) before every read of it, so
    each call computes from what it wrote: converted at sequences up to the original length
    and past it. Converting leaves the module as it was: its buffer, and the long factors'
    tensor its first call caches as an attribute (a Proxy of the trace, before)."""
    torch.manual_seed(0)
    model = _phi3_longrope(attn).eval()
    rotary = model.rotary_emb
    before = rotary.inv_freq.clone()
    pick = (lambda b: _ids(b, t)) if mask else (lambda b: _ids(b, t)[:1])
    converted = fl.from_torch(model, pick(2))
    assert torch.equal(rotary.inv_freq, before)
    # (from_torch's check of a batch of one calls the module itself, which caches them)
    assert not isinstance(getattr(rotary, "long_inv_freq", None), torch.fx.Proxy)
    cases = []
    for inputs in (pick(2), pick(1), pick(3), pick(2)):
        with torch.no_grad():
            cases.append(([x.numpy() for x in inputs], _copied(model(*inputs))))
    # once PyTorch has cached the long factors, converting again reads them
    assert type(rotary.long_inv_freq) is torch.Tensor
    again = fl.from_torch(model, pick(2))
    with torch.no_grad():
        cases_again = [([x.numpy() for x in pick(3)], _copied(model(*pick(3))))]
    _on_each_backend([(converted, cases), (again, cases_again)])


def _moe(name, **experts):
    def build(attn):
        model_cls = getattr(transformers, name)
        return model_cls(model_cls.config_class(
            **SMALL, vocab_size=50, num_key_value_heads=2, pad_token_id=0, use_cache=False,
            attn_implementation=attn, **experts))
    return build


MOE = {
    "MixtralModel": _moe("MixtralModel", num_local_experts=4, num_experts_per_tok=2),
    "MixtralForCausalLM": _moe("MixtralForCausalLM", num_local_experts=5,
                               num_experts_per_tok=2),
    # a shared expert beside the routed ones, behind a sigmoid gate
    "Qwen2MoeModel": _moe("Qwen2MoeModel", num_experts=4, num_experts_per_tok=2,
                          moe_intermediate_size=16, shared_expert_intermediate_size=32),
    "Qwen3MoeModel": _moe("Qwen3MoeModel", num_experts=6, num_experts_per_tok=3,
                          moe_intermediate_size=16, head_dim=8, norm_topk_prob=True),
    "OlmoeModel": _moe("OlmoeModel", num_experts=4, num_experts_per_tok=2),
    "GraniteMoeModel": _moe("GraniteMoeModel", num_local_experts=4, num_experts_per_tok=2),
}


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", list(MOE))
def test_mixture_of_experts_models(name, attn, mask):
    """Mixture-of-experts decoders: the router's softmax and torch.topk (its values divided
    in place by their sum) convert as ops; the experts module, which routes tokens by their
    values (nonzero, a loop over the experts hit), converts whole to layers.Experts."""
    torch.manual_seed(0)
    model = MOE[name](attn)
    pick = (lambda b: _ids(b)) if mask else (lambda b: _ids(b)[:1])
    converted = _check(model, pick(2), pick(1), pick(3))
    kinds = [type(layer).__name__ for layer in converted.layers]
    assert kinds.count("Experts") == SMALL["num_hidden_layers"]


def test_experts_with_their_own_gate_are_refused():
    """GPT-OSS's experts clamp and interleave their gate (_apply_gate): refused by name."""
    model = transformers.GptOssModel(transformers.GptOssConfig(
        **SMALL, vocab_size=50, num_key_value_heads=2, num_local_experts=4,
        num_experts_per_tok=2, head_dim=8, use_cache=False))
    with pytest.raises(fl.io.torch_fx.TorchConversionError,
                       match=r"GptOssExperts\): its own gate \(GptOssExperts._apply_gate\)"):
        fl.from_torch(model.eval(), _ids(2)[:1])


class _Seq2Seq(torch.nn.Module):
    """A user's wrapper calling an encoder-decoder with both its inputs."""

    def __init__(self, model, source):
        super().__init__()
        self.model, self.source = model, source

    def forward(self, source, decoder_input_ids):
        return self.model(**{self.source: source}, decoder_input_ids=decoder_input_ids,
                          use_cache=False)[0]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_whisper_encoder_and_decoder(attn):
    """The whole Whisper model, log-mel features and decoder tokens: its decoder's position
    table is indexed by position ids repeated over the batch (self.weight[position_ids]),
    an Embedding's lookup."""
    torch.manual_seed(0)
    model = transformers.WhisperModel(transformers.WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8,
        max_source_positions=16, vocab_size=50, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1, attn_implementation=attn))

    def inputs(b):
        g = torch.Generator().manual_seed(b)
        return torch.randn(b, 8, 32, generator=g), torch.randint(1, 50, (b, 5), generator=g)

    _check(_Seq2Seq(model, "input_features"), inputs(2), inputs(1), inputs(3))


@pytest.mark.parametrize("name", ["LlamaForCausalLM", "Qwen2Model", "GPT2LMHeadModel"])
def test_decoders_with_their_default_use_cache(any_backend, name):
    """A decoder as loaded (its config's use_cache=True, so PyTorch returns a KV cache besides
    the logits) converts from input_ids alone, or with the mask where the forward takes it
    second: traced as called with use_cache=False, its output without the cache."""
    torch.manual_seed(0)
    if name == "GPT2LMHeadModel":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=32))
    else:
        model = _text(name, num_key_value_heads=2)("sdpa")
    model.eval()
    assert model.config.use_cache
    calls = [(_ids(2)[0],), (_ids(1)[0],), (_ids(3)[0],)]
    if name != "GPT2LMHeadModel":
        calls.append(_ids(3))
    for examples in calls[:1] + calls[3:]:
        converted = fl.from_torch(model, examples)
        for inputs in calls[:3] if len(examples) == 1 else calls[3:]:
            with torch.no_grad():
                want = model(*inputs, use_cache=False)
                assert "past_key_values" in model(*inputs)  # what the plain call gives
            got = converted(*[x.numpy() for x in inputs])
            _compare(got, want)


def test_a_mask_where_the_forward_takes_its_cache():
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=32)).eval()
    with pytest.raises(ValueError, match=r"takes \(input_ids, cache, \.\.\.\) in that order, "
                                         r"so example 2 would be its 'cache'"):
        fl.from_torch(model, _ids(2))


def test_a_composite_model_whose_text_config_holds_use_cache():
    """Gemma 3's image-and-text model takes use_cache, which only its text_config holds:
    traced with use_cache=False too (second review, 2026-12-06)."""
    torch.manual_seed(0)
    model = transformers.Gemma3ForConditionalGeneration(transformers.Gemma3Config(
        text_config=dict(vocab_size=300, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=8, max_position_embeddings=64),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, image_size=28, patch_size=14),
        mm_tokens_per_image=4, image_token_index=299, boi_token_index=297,
        eoi_token_index=298)).eval()
    assert getattr(model.config, "use_cache", None) is None
    ids = torch.randint(1, 290, (2, 7), generator=torch.Generator().manual_seed(0))
    converted = fl.from_torch(model, ids)
    with torch.no_grad():
        want = model(ids, use_cache=False)
    _compare(converted(ids.numpy()), want)


def test_a_wrapper_around_a_decoder_that_keeps_its_cache_default():
    """A user's wrapper calling a GPT-2 or Llama LM without use_cache=False (their configs
    default to True): the HuggingFace models inside are traced with their configs' use_cache
    False (restored after). It failed with "cat must be a tensor, got ndarray" inside the
    cache code (audit as a PyTorch user, session 37)."""
    torch.manual_seed(0)
    tiny = dict(vocab_size=100, num_hidden_layers=2, num_attention_heads=4)
    lms = [transformers.GPT2LMHeadModel(transformers.GPT2Config(
               n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=100)),
           transformers.LlamaForCausalLM(transformers.LlamaConfig(
               hidden_size=32, intermediate_size=64, num_key_value_heads=2, **tiny))]

    class Wrapper(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, ids, mask):
            return self.lm(ids, attention_mask=mask).logits

    ids = torch.randint(0, 100, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :3] = 0
    for lm in lms:
        wrapper = Wrapper(lm.eval())
        model = fl.from_torch(wrapper, (ids, mask))
        assert lm.config.use_cache is True  # restored
        with torch.no_grad():
            want = wrapper(ids, mask).numpy()
        np.testing.assert_allclose(model(ids.numpy(), mask.numpy()), want, rtol=1e-4,
                                   atol=1e-5)


def test_inputs_whose_batches_disagree_say_so():
    """A converted BertModel called with a mask of another batch than its ids (HuggingFace
    broadcasts a (1, T) mask): the model follows the code traced for the examples, and its
    mask indexing fails. A ValueError that says why, not a raw IndexError (audit as a
    PyTorch user, session 37)."""
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=64)).eval()
    model = fl.from_torch(bert, (torch.randint(0, 100, (2, 8)),
                                 torch.ones(2, 8, dtype=torch.long)))
    ids = np.random.default_rng(0).integers(0, 100, (3, 8))
    assert model(ids, np.ones((3, 8), np.int64))["last_hidden_state"].shape == (3, 8, 32)
    for batch in (1, 2):
        with pytest.raises(ValueError, match="give the inputs the same batch sizes"):
            model(ids, np.ones((batch, 8), np.int64))


class _Penultimate(torch.nn.Module):
    """SDXL's use of a CLIP text encoder: the penultimate layer's hidden states."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, ids):
        return self.enc(ids, output_hidden_states=True).hidden_states[-2]


def test_hidden_states_of_a_model_never_called_before(any_backend):
    """transformers 5 installs its hidden-state capturing hooks on a model's first call and
    marks the model. Traced first, the mark was put back and the hooks were not, so the next
    call installed a second set: the converted model and the module itself gave another
    layer's states (0.6 off; a PyTorch-user audit). The hooks the trace installed are
    removed with the mark."""
    import copy

    torch.manual_seed(0)
    enc = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=16)).eval()
    net = _Penultimate(enc).eval()
    pristine = copy.deepcopy(net)
    ids = torch.randint(0, 50, (2, 12))
    converted = fl.from_torch(net, ids)
    with torch.no_grad():
        want = pristine(ids).numpy()
        after = net(ids).numpy()
        states = net.enc(ids, output_hidden_states=True).hidden_states
    np.testing.assert_array_equal(after, want)  # the module is as it was
    assert len(states) == 4
    np.testing.assert_allclose(converted(ids.numpy()), want, rtol=1e-5, atol=1e-5)
