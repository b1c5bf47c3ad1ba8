"""Tests for mlcraft.models.gpt: GPTConfig, GPT (forward, KV cache, weight tying) and
load_hf_gpt2_weights, against Hugging Face's GPT2LMHeadModel built from a tiny random config."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
import torch
from pydantic import ValidationError

from mlcraft.classroom.testing import assert_close
from mlcraft.models.gpt import GPT, Block, GPTConfig, load_hf_gpt2_weights

VOCAB, BLOCK, WIDTH, LAYERS, HEADS = 61, 16, 32, 2, 4


pytestmark = pytest.mark.usefixtures("isolate_torch")


def _config(**overrides: Any) -> GPTConfig:
    fields: dict[str, Any] = {
        "vocab_size": VOCAB,
        "block_size": BLOCK,
        "n_layer": LAYERS,
        "n_head": HEADS,
        "d_model": WIDTH,
    }
    return GPTConfig(**(fields | overrides))


def _tokens(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def _hf_model(n_positions: int = BLOCK, n_layer: int = LAYERS) -> Any:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=n_positions,
        n_embd=WIDTH,
        n_layer=n_layer,
        n_head=HEADS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config)
    # HF initialises biases to 0 and LayerNorms to (1, 0): randomise everything, so a swapped or
    # untransposed tensor cannot hide behind a symmetric value.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in hf.parameters():
            param.copy_(0.1 * torch.randn(param.shape, generator=gen))
    return hf.eval()


def _loaded(hf: Any, **overrides: Any) -> GPT:
    torch.manual_seed(2)
    return load_hf_gpt2_weights(GPT(_config(**overrides)), hf).eval()


# --------------------------------------------------------------------------- GPTConfig


def test_config_defaults_are_valid() -> None:
    config = GPTConfig()
    assert config.d_model % config.n_head == 0
    assert config.tie_weights


@pytest.mark.parametrize(("d_model", "n_head"), [(30, 4), (10, 3), (7, 2)])
def test_config_width_not_divisible_by_heads_raises(d_model: int, n_head: int) -> None:
    with pytest.raises(ValidationError, match="divisible"):
        GPTConfig(d_model=d_model, n_head=n_head)


@pytest.mark.parametrize(
    "bad",
    [{"vocab_size": 1}, {"block_size": 0}, {"n_layer": 0}, {"dropout": 1.0}, {"dropout": -0.1}, {"layer_norm_eps": 0}],
)
def test_config_rejects_out_of_range_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GPTConfig(**bad)


def test_config_is_frozen_and_strict() -> None:
    config = GPTConfig()
    with pytest.raises(ValidationError):
        config.d_model = 64
    assert config.d_model == 128
    with pytest.raises(ValidationError):
        GPTConfig(n_embd=64)  # type: ignore[call-arg]  # HF's name, not ours


# --------------------------------------------------------------------------- structure


def _block(model: GPT, index: int) -> Block:
    """``model.blocks[index]``, typed: ``nn.ModuleList`` indexing gives a plain ``nn.Module``."""
    return cast(Block, model.blocks[index])


def test_weight_tying() -> None:
    model = GPT(_config())
    assert model.lm_head.weight is model.wte.weight
    untied = GPT(_config(tie_weights=False))
    assert untied.lm_head.weight is not untied.wte.weight
    assert untied.num_parameters() == model.num_parameters() + VOCAB * WIDTH


def test_parameter_count_matches_formula() -> None:
    c, v, p, n = WIDTH, VOCAB, BLOCK, LAYERS
    per_block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c)
    assert GPT(_config()).num_parameters() == v * c + p * c + n * per_block + 2 * c


def test_residual_projections_use_scaled_init() -> None:
    """GPT-2 init: std 0.02 everywhere, 0.02 / sqrt(2 n_layer) on residual projections. With
    64² = 4096 samples a sample std is within ~1% of the truth; 10% leaves a wide margin."""
    torch.manual_seed(0)
    model = GPT(_config(d_model=64, n_layer=8))
    scaled = 0.02 / math.sqrt(16)
    assert _block(model, 0).attn.proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
    assert _block(model, 3).mlp.proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
    assert _block(model, 0).attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.equal(_block(model, 0).attn.qkv.bias, torch.zeros_like(_block(model, 0).attn.qkv.bias))


def test_forward_shapes_and_dtype() -> None:
    model = GPT(_config()).eval()
    logits = model(_tokens(3, 5))
    assert logits.shape == (3, 5, VOCAB)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_block_size_overflow_raises() -> None:
    model = GPT(_config()).eval()
    model(_tokens(1, BLOCK))  # exactly block_size is fine
    with pytest.raises(ValueError, match="block_size"):
        model(_tokens(1, BLOCK + 1))
    _, cache = model.forward_with_cache(_tokens(1, BLOCK - 2))
    _, cache = model.forward_with_cache(_tokens(1, 2), cache)  # fills the block exactly
    with pytest.raises(ValueError, match="block_size"):
        model.forward_with_cache(_tokens(1, 1), cache)


def test_is_causal_future_tokens_do_not_change_past_logits() -> None:
    model = GPT(_config()).eval()
    idx = _tokens(2, 10)
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB
    a, b = model(idx), model(changed)
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


# --------------------------------------------------------------------------- KV cache


@pytest.mark.parametrize("prefill", [1, 5])
def test_kv_cache_prefill_then_steps_equals_full_forward(device: torch.device, prefill: int) -> None:
    torch.manual_seed(0)
    model = GPT(_config()).to(device).eval()
    idx = _tokens(2, BLOCK, seed=3).to(device)
    with torch.no_grad():
        full = model(idx)
        logits, cache = model.forward_with_cache(idx[:, :prefill])
        pieces = [logits]
        for t in range(prefill, BLOCK):
            step, cache = model.forward_with_cache(idx[:, t : t + 1], cache)
            pieces.append(step)
    assert len(cache) == LAYERS
    assert cache[0][0].shape == (2, HEADS, BLOCK, WIDTH // HEADS)
    assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_forward_with_empty_cache_list_is_a_fresh_start() -> None:
    model = GPT(_config()).eval()
    idx = _tokens(1, 4)
    assert torch.equal(model.forward_with_cache(idx, [])[0], model(idx))


# --------------------------------------------------------------------------- Hugging Face parity


@pytest.mark.parametrize("t", [BLOCK, 5], ids=["full-length", "shorter"])
def test_logits_match_hugging_face_gpt2_float32(t: int) -> None:
    hf = _hf_model()
    ours = _loaded(hf)
    idx = _tokens(2, t, seed=4)
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert got.shape == expected.shape == (2, t, VOCAB)
    assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_logits_match_hugging_face_gpt2_float64() -> None:
    hf = _hf_model().double()
    ours = _loaded(hf).double()
    idx = _tokens(2, BLOCK, seed=5)
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert got.dtype == expected.dtype == torch.float64
    assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_load_hf_keeps_weights_tied_and_copies_values() -> None:
    hf = _hf_model()
    ours = _loaded(hf)
    assert ours.lm_head.weight is ours.wte.weight
    assert torch.equal(ours.wte.weight, hf.transformer.wte.weight)
    # Conv1D stores (in, out): ours is the transpose.
    assert torch.equal(_block(ours, 1).attn.qkv.weight, hf.transformer.h[1].attn.c_attn.weight.t())
    assert torch.equal(_block(ours, 0).mlp.proj.weight, hf.transformer.h[0].mlp.c_proj.weight.t())
    assert torch.equal(_block(ours, 0).ln2.bias, hf.transformer.h[0].ln_2.bias)


def test_parameter_count_matches_hugging_face() -> None:
    hf = _hf_model()
    assert GPT(_config()).num_parameters() == hf.num_parameters()


def test_load_hf_crops_longer_position_table() -> None:
    hf = _hf_model(n_positions=2 * BLOCK)
    ours = _loaded(hf)
    assert torch.equal(ours.wpe.weight, hf.transformer.wpe.weight[:BLOCK])
    idx = _tokens(1, BLOCK, seed=6)
    with torch.no_grad():
        assert_close(ours(idx), hf(idx).logits, rtol=1e-5, atol=1e-5)


def test_load_hf_into_untied_model() -> None:
    hf = _hf_model()
    ours = _loaded(hf, tie_weights=False)
    assert torch.equal(ours.lm_head.weight, hf.lm_head.weight)
    idx = _tokens(1, 7, seed=7)
    with torch.no_grad():
        assert_close(ours(idx), hf(idx).logits, rtol=1e-5, atol=1e-5)


def test_load_hf_shape_mismatch_raises() -> None:
    hf = _hf_model(n_layer=1)
    with pytest.raises(RuntimeError):
        load_hf_gpt2_weights(GPT(_config()), hf)  # ours has 2 layers: missing keys
    hf = _hf_model(n_positions=BLOCK // 2)
    with pytest.raises(RuntimeError):
        load_hf_gpt2_weights(GPT(_config()), hf)  # position table too short
