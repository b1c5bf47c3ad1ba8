"""Tests for mlcraft.models.llama: RMSNorm, SwiGLU, GroupedQueryAttention, LlamaBlock,
llama_block_config_from_hf and load_hf_llama_layer.

Oracles: Hugging Face's ``LlamaDecoderLayer`` (and its ``LlamaRMSNorm``, ``LlamaMLP``) built from a
tiny random ``LlamaConfig`` (hidden 64, 4 heads, 2 kv heads, intermediate 172, eager attention) with
randomised weights copied in, to 1e-5 in float32; ``torch.nn.RMSNorm``; float64 formulas written here.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, TypedDict

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import ValidationError
from torch import nn

from mlcraft.classroom.testing import assert_close
from mlcraft.models.attention import sliding_window_mask
from mlcraft.models.llama import (
    GroupedQueryAttention,
    LlamaBlock,
    LlamaBlockConfig,
    RMSNorm,
    SwiGLU,
    llama_block_config_from_hf,
    load_hf_llama_layer,
)

pytestmark = pytest.mark.usefixtures("isolate_torch")


class Tolerances(TypedDict):
    rtol: float
    atol: float


F32: Tolerances = {"rtol": 1e-5, "atol": 1e-5}


def _randn(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _hf_config(**overrides: Any) -> Any:
    transformers = pytest.importorskip("transformers")
    fields: dict[str, Any] = {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 172,
        "num_hidden_layers": 1,
        "vocab_size": 50,
        "max_position_embeddings": 128,
    }
    # eager: the written-out attention, which adds the mask we pass (the public spelling of the setting)
    config = transformers.LlamaConfig(**(fields | {"attn_implementation": "eager"} | overrides))
    assert config._attn_implementation == "eager"
    return config


def _hf_layer(config: Any) -> nn.Module:
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    layer = LlamaDecoderLayer(config, layer_idx=0).eval()
    # HF initialises the norms to 1: randomise everything so a swapped tensor cannot hide.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in layer.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            param.copy_(1.0 + 0.1 * noise if name.endswith("layernorm.weight") else 0.1 * noise)
    return layer


def _hf_forward(layer: nn.Module, config: Any, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """HF 5.x: the layer takes (cos, sin) from LlamaRotaryEmbedding and an additive (B, 1, T, T) mask."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    b, t, _ = x.shape
    position_ids = (torch.arange(t) if positions is None else positions)[None].expand(b, t)
    cos_sin = LlamaRotaryEmbedding(config)(x, position_ids)
    mask = torch.full((t, t), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)[None, None].expand(b, 1, t, t)
    with torch.no_grad():
        out: torch.Tensor = layer(x, attention_mask=mask, position_ids=position_ids, position_embeddings=cos_sin)
    return out


def _pair(**overrides: Any) -> tuple[LlamaBlock, nn.Module, Any]:
    config = _hf_config(**overrides)
    hf_layer = _hf_layer(config)
    block = load_hf_llama_layer(LlamaBlock(llama_block_config_from_hf(config)).eval(), hf_layer)
    return block, hf_layer, config


# --------------------------------------------------------------------------- parity with Hugging Face


def test_block_matches_hf_llama_decoder_layer() -> None:
    block, hf_layer, config = _pair()
    x = _randn(0, 2, 11, 64)
    with torch.no_grad():
        fresh = LlamaBlock(block.config)(x)
        ours = block(x)
    expected = _hf_forward(hf_layer, config, x)
    assert (fresh - expected).abs().max() > 1e-2, "an uncopied block must differ (else the check is vacuous)"
    assert_close(ours, expected, **F32, msg="LlamaBlock vs LlamaDecoderLayer")


def test_block_matches_hf_at_shifted_positions_other_theta_and_eps() -> None:
    block, hf_layer, config = _pair(
        rope_parameters={"rope_type": "default", "rope_theta": 500_000.0}, rms_norm_eps=1e-3
    )
    assert (block.config.rope_base, block.config.norm_eps) == (500_000.0, 1e-3)
    x = _randn(1, 1, 6, 64)
    positions = torch.arange(40, 46)
    with torch.no_grad():
        ours = block(x, positions=positions)
    assert_close(ours, _hf_forward(hf_layer, config, x, positions), **F32, msg="positions 40..45, theta 5e5")


def test_multi_query_and_multi_head_variants_match_hf() -> None:
    for kv_heads in (1, 4):
        block, hf_layer, config = _pair(num_key_value_heads=kv_heads)
        x = _randn(2, 2, 5, 64)
        with torch.no_grad():
            ours = block(x)
        assert_close(ours, _hf_forward(hf_layer, config, x), **F32, msg=f"n_kv_heads={kv_heads}")


def test_rmsnorm_matches_hf_and_torch() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    x = _randn(3, 2, 5, 64) * 3.0
    ours, hf, torch_norm = RMSNorm(64, eps=1e-6), LlamaRMSNorm(64, eps=1e-6), nn.RMSNorm(64, eps=1e-6)
    with torch.no_grad():
        weight = 1.0 + 0.1 * _randn(4, 64)
        for norm in (ours, hf, torch_norm):
            norm.weight.copy_(weight)
        assert_close(ours(x), hf(x), **F32, msg="vs LlamaRMSNorm")
        assert_close(ours(x), torch_norm(x), **F32, msg="vs torch.nn.RMSNorm")
        x64 = x.double()
        formula = x64 / x64.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * weight.double()
        assert_close(ours(x).double(), formula, **F32, msg="vs the float64 formula")


def test_rmsnorm_bf16_normalises_in_float32_like_hf() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    x = (_randn(5, 3, 64) * 100.0).bfloat16()  # mean of squares ~1e4: fine in float32
    ours, hf = RMSNorm(64).bfloat16(), LlamaRMSNorm(64).bfloat16()
    with torch.no_grad():
        out = ours(x)
        assert out.dtype == torch.bfloat16
        assert torch.equal(out, hf(x)), "same float32 recipe, same bits"


def test_swiglu_matches_hf_mlp_and_formula() -> None:
    from transformers.models.llama.modeling_llama import LlamaMLP

    config = _hf_config()
    hf_mlp = LlamaMLP(config)  # type: ignore[no-untyped-call]
    ours = SwiGLU(64, 172)
    ours.load_state_dict(hf_mlp.state_dict())
    x = _randn(6, 2, 3, 64)
    with torch.no_grad():
        assert_close(ours(x), hf_mlp(x), **F32, msg="vs LlamaMLP")
        gate, up = x @ ours.gate_proj.weight.T, x @ ours.up_proj.weight.T
        formula = (gate * torch.sigmoid(gate) * up) @ ours.down_proj.weight.T  # silu(z) = z σ(z)
        assert_close(ours(x), formula, **F32, msg="vs down(silu(gate) * up)")


# --------------------------------------------------------------------------- behaviour


def test_block_is_causal() -> None:
    block = LlamaBlock(LlamaBlockConfig()).eval()
    x = _randn(7, 2, 9, 64)
    changed = x.clone()
    changed[:, 6] += 10.0  # change a future token
    with torch.no_grad():
        before, after = block(x), block(changed)
    assert torch.equal(after[:, :6], before[:, :6]), "earlier outputs must not move"
    assert (after[:, 6:] - before[:, 6:]).abs().amax() > 1e-3, "later outputs must"


def test_block_with_a_sliding_window_sees_only_the_window() -> None:
    block = LlamaBlock(LlamaBlockConfig()).eval()
    x = _randn(8, 1, 10, 64)
    changed = x.clone()
    changed[:, 2] += 10.0
    mask = sliding_window_mask(10, 3)  # position i sees i-2..i
    with torch.no_grad():
        before, after = block(x, attn_mask=mask), block(changed, attn_mask=mask)
    moved = (after - before).abs().amax(dim=-1)[0]  # (T,)
    assert torch.equal(moved > 0, torch.tensor([i in (2, 3, 4) for i in range(10)])), moved


def test_gqa_module_equals_per_head_float64_loop() -> None:
    config = LlamaBlockConfig(d_model=32, n_heads=4, n_kv_heads=2, d_ff=48)
    attn = GroupedQueryAttention(config).double().eval()
    x = _randn(9, 1, 5, 32, dtype=torch.float64)
    with torch.no_grad():
        cos, sin = attn.rope(torch.arange(5), dtype=torch.float64)
        q = attn.q_proj(x).view(1, 5, 4, 8).transpose(1, 2)
        k = attn.k_proj(x).view(1, 5, 2, 8).transpose(1, 2)
        v = attn.v_proj(x).view(1, 5, 2, 8).transpose(1, 2)
        heads = []
        for h in range(4):
            qh = q[:, h] * cos + torch.cat((-q[:, h, :, 4:], q[:, h, :, :4]), -1) * sin  # rotate-half RoPE
            kh = k[:, h // 2] * cos + torch.cat((-k[:, h // 2, :, 4:], k[:, h // 2, :, :4]), -1) * sin
            heads.append(F.scaled_dot_product_attention(qh, kh, v[:, h // 2], is_causal=True))
        expected = attn.o_proj(torch.cat(heads, dim=-1))
        assert_close(attn(x), expected, rtol=1e-12, atol=1e-12)


def test_block_runs_in_bf16_close_to_float32() -> None:
    block = LlamaBlock(LlamaBlockConfig()).eval()
    x = _randn(10, 2, 7, 64)
    with torch.no_grad():
        ref = block(x)
        out = block.bfloat16()(x.bfloat16())
    assert out.dtype == torch.bfloat16
    assert_close(out.float(), ref, rtol=5e-2, atol=5e-2, msg="bf16 block vs float32")


def test_block_trains_and_handles_edge_shapes() -> None:
    block = LlamaBlock(LlamaBlockConfig())
    x = _randn(11, 2, 4, 64).requires_grad_()
    block(x).sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in block.parameters())
    with torch.no_grad():
        assert block(_randn(12, 0, 4, 64)).shape == (0, 4, 64), "empty batch"
        one = _randn(13, 3, 1, 64)
        assert block(one).shape == (3, 1, 64), "T = 1"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"n_heads": 4, "n_kv_heads": 3}, r"n_kv_heads \(3\) must divide n_heads \(4\)"),
        ({"d_model": 64, "n_heads": 5, "n_kv_heads": 1}, r"d_model \(64\) must be divisible by n_heads \(5\)"),
        ({"d_model": 12, "n_heads": 4, "n_kv_heads": 2}, r"head_dim \(3\) must be even"),
        ({"n_kv_heads": 0}, "greater than or equal to 1"),
    ],
)
def test_config_rejects_bad_shapes(fields: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LlamaBlockConfig(**fields)
    assert issubclass(ValidationError, ValueError)


def test_block_rejects_bad_input_and_unsupported_hf_configs() -> None:
    block = LlamaBlock(LlamaBlockConfig())
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 64\), got \(2, 3, 32\)"):
        block(torch.zeros(2, 3, 32))
    with pytest.raises(ValueError, match="position 2048 >= max_positions 2048"):
        block(torch.zeros(1, 1, 64), positions=torch.tensor([2048]))
    with pytest.raises(ValueError, match=r"\['attention_bias', 'hidden_act'\]"):
        llama_block_config_from_hf(_hf_config(attention_bias=True, hidden_act="gelu"))
    scaled = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10_000.0}
    with pytest.raises(ValueError, match=r"\['rope_type'\] \(rope types \['linear'\]"):
        llama_block_config_from_hf(_hf_config(rope_parameters=scaled))
    with pytest.raises(ValueError, match=r"\['attention_dropout'\] .* attention_dropout 0.1\)"):
        llama_block_config_from_hf(_hf_config(attention_dropout=0.1))


def _v4_config(**overrides: Any) -> SimpleNamespace:
    """The attributes a transformers 4.x ``LlamaConfig`` has: ``rope_theta`` and ``rope_scaling``, no
    ``rope_parameters``."""
    fields: dict[str, Any] = {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 172,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "rope_theta": 500_000.0,
        "rope_scaling": None,
    }
    return SimpleNamespace(**(fields | overrides))


@pytest.mark.parametrize(
    "rope_scaling",
    [
        {"type": "linear", "factor": 2.0},  # before transformers 4.45
        {"type": "dynamic", "factor": 4.0},
        {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192},  # 4.45 and later
        {"rope_type": "default", "type": "yarn", "factor": 2.0},  # contradictory spellings: the scaled one wins
    ],
)
def test_config_from_hf_rejects_scaled_rope_in_every_spelling(rope_scaling: dict[str, Any]) -> None:
    scaled = next(str(v) for k, v in rope_scaling.items() if k in ("type", "rope_type") and v != "default")
    with pytest.raises(ValueError, match=rf"\['rope_type'\] \(rope types \[.*'{scaled}'.*\]"):
        llama_block_config_from_hf(_v4_config(rope_scaling=rope_scaling))


def test_config_from_hf_reads_a_v4_config_without_scaling() -> None:
    for rope_scaling in (None, {}, {"rope_type": "default"}, {"type": "default"}):
        config = llama_block_config_from_hf(_v4_config(rope_scaling=rope_scaling))
        assert (config.rope_base, config.n_kv_heads, config.d_ff) == (500_000.0, 2, 172), rope_scaling
    with pytest.raises(ValueError, match=r"\['attention_dropout'\]"):
        llama_block_config_from_hf(_v4_config(attention_dropout=0.1))


def test_rope_tables_match_hf_at_short_positions_and_drift_at_long_ones() -> None:
    """Pins the module docstring: float64 angles here, float32 in HF's LlamaRotaryEmbedding."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = _hf_config(max_position_embeddings=40_000)
    hf_rope = LlamaRotaryEmbedding(config)
    ours = LlamaBlock(llama_block_config_from_hf(config)).attn.rope
    gaps = {}
    for start in (0, 30_000):
        positions = torch.arange(start, start + 64)
        hf_cos, hf_sin = hf_rope(torch.zeros(1, 64, 64), positions[None])
        cos, sin = ours(positions)
        gaps[start] = max((cos - hf_cos[0]).abs().max().item(), (sin - hf_sin[0]).abs().max().item())
    assert gaps[0] < 2e-6, f"positions 0..63: tables differ by {gaps[0]:.1e}"
    assert gaps[30_000] > 1e-4, f"positions 30000..30063: float32 angles should be off by ~5e-4, got {gaps[30_000]:.1e}"
    float64_angles = torch.arange(30_000, 30_064, dtype=torch.float64)[:, None] * ours.inv_freq
    assert_close(cos[:, :8], float64_angles.cos().float(), rtol=0, atol=1e-6, msg="ours are the float64 angles")


def test_loader_rejects_mismatched_layers() -> None:
    config = _hf_config()
    hf_layer = _hf_layer(config)
    other = LlamaBlock(LlamaBlockConfig(n_kv_heads=4))  # k/v projections of the wrong width
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_hf_llama_layer(other, hf_layer)
    hf_layer.register_buffer("extra", torch.zeros(1))
    with pytest.raises(ValueError, match=r"\['extra'\]"):
        load_hf_llama_layer(LlamaBlock(LlamaBlockConfig()), hf_layer)
