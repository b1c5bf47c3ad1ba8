"""A LLaMA-style decoder block: RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention.

Follows LLaMA (Touvron et al., 2023, https://arxiv.org/abs/2302.13971) as written in Hugging Face's
``transformers.models.llama.modeling_llama.LlamaDecoderLayer``:

- RMSNorm (Zhang & Sennrich, 2019, https://arxiv.org/abs/1910.07467): ``x / rms(x) * weight``, no
  mean subtraction and no bias; normalised in float32 and cast back, as Hugging Face does;
- SwiGLU MLP (Shazeer, 2020, https://arxiv.org/abs/2002.05202): ``down(silu(gate(x)) * up(x))``;
- RoPE with the rotate-half pairing (dimension i with i + D/2) of :mod:`mlcraft.models.positional`;
- grouped-query attention (Ainslie et al., 2023, https://arxiv.org/abs/2305.13245): ``n_kv_heads``
  key/value heads shared by groups of ``n_heads / n_kv_heads`` query heads;
- pre-norm residuals, no biases anywhere.

:func:`load_hf_llama_layer` copies a ``LlamaDecoderLayer`` into a :class:`LlamaBlock`; the tests
check the outputs agree to 1e-5 in float32 at positions below a few hundred.

One numerical difference is deliberate: the RoPE angles ``position * inv_freq`` are computed in
float64 here (:class:`~mlcraft.models.positional.RotaryEmbedding`) and in float32 by Hugging Face's
``LlamaRotaryEmbedding``. The float32 angle carries an error of about ``position * 6e-8`` radians,
so the cos/sin tables differ by about 1e-6 below position 100, 2e-5 at 1,000 and 5e-4 at 30,000
(see the tests): long-context outputs match Hugging Face's less closely than 1e-5, and ours are
the more accurate ones.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from pydantic import Field, model_validator
from torch import nn

from mlcraft.config.base import FrozenConfig
from mlcraft.models.attention import repeat_kv
from mlcraft.models.positional import RotaryEmbedding, apply_rotary

__all__ = [
    "GroupedQueryAttention",
    "LlamaBlock",
    "LlamaBlockConfig",
    "RMSNorm",
    "SwiGLU",
    "llama_block_config_from_hf",
    "load_hf_llama_layer",
]


class LlamaBlockConfig(FrozenConfig):
    """Shape of one block."""

    d_model: int = Field(default=64, ge=1)  # width of the residual stream (HF: hidden_size)
    n_heads: int = Field(default=4, ge=1)  # query heads (HF: num_attention_heads)
    n_kv_heads: int = Field(default=2, ge=1)  # key/value heads; must divide n_heads (HF: num_key_value_heads)
    d_ff: int = Field(default=172, ge=1)  # SwiGLU hidden width (HF: intermediate_size)
    rope_base: float = Field(default=10_000.0, gt=0)  # RoPE theta (HF: rope_parameters["rope_theta"])
    max_positions: int = Field(default=2048, ge=1)  # longest position the rotary table serves
    norm_eps: float = Field(default=1e-6, gt=0)  # RMSNorm epsilon (HF: rms_norm_eps)

    @model_validator(mode="after")
    def _heads_fit(self) -> LlamaBlockConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head_dim ({self.d_model // self.n_heads}) must be even for rotary embeddings")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) * weight`` over the last dimension ``(..., C)``.

    The statistic is computed in float32 and the result cast back to the input dtype before the
    weight multiplies it (Hugging Face's ``LlamaRMSNorm``); equal to ``torch.nn.RMSNorm`` in float32.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., C)
        out: torch.Tensor = self.weight * normed.to(x.dtype)
        return out


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``: ``(..., C) -> (..., C)`` through a gated ``d_ff`` layer."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return out


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with rotary positions and ``n_kv_heads`` shared key/value heads."""

    def __init__(self, config: LlamaBlockConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.n_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.d_model, config.n_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.n_kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_heads * config.head_dim, config.d_model, bias=False)
        self.rope = RotaryEmbedding(config.head_dim, max_positions=config.max_positions, base=config.rope_base)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` ``(B, T, C)`` -> ``(B, T, C)``.

        Args:
            positions: ``(T,)`` integer positions for RoPE; default ``0..T-1``.
            attn_mask: boolean ``(T, T)`` (True = may attend) replacing the causal mask, e.g. a
                :func:`~mlcraft.models.attention.sliding_window_mask`; default causal.
        """
        b, t, _ = x.shape
        positions = torch.arange(t, device=x.device) if positions is None else positions
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, H_kv, T, D)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, H_kv, T, D)
        cos, sin = self.rope(positions, dtype=x.dtype)  # (T, D) each
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, T, D): head h reads kv head h // n_rep
        if attn_mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        projected: torch.Tensor = self.o_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        return projected  # (B, T, C)


class LlamaBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, config: LlamaBlockConfig) -> None:
        super().__init__()
        self.config = config
        self.input_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.attn = GroupedQueryAttention(config)
        self.post_attn_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.d_ff)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.d_model:
            raise ValueError(f"expected x of shape (B, T, {self.config.d_model}), got {tuple(x.shape)}")
        x = x + self.attn(self.input_norm(x), positions, attn_mask)
        out: torch.Tensor = x + self.mlp(self.post_attn_norm(x))
        return out


def _rope_types(hf_config: Any) -> set[str]:
    """Every RoPE variant a config names, in all the spellings transformers has used.

    transformers 5 keeps RoPE settings in ``rope_parameters`` (``rope_type``); 4.x in ``rope_theta``
    and ``rope_scaling``, whose variant key was ``type`` before 4.45 and ``rope_type`` after.
    """
    found: set[str] = set()
    for settings in (getattr(hf_config, "rope_parameters", None), getattr(hf_config, "rope_scaling", None)):
        if settings:
            found |= {str(settings[key]) for key in ("rope_type", "type") if key in settings}
    return found or {"default"}


def llama_block_config_from_hf(hf_config: Any) -> LlamaBlockConfig:
    """The :class:`LlamaBlockConfig` of a ``transformers.LlamaConfig`` (transformers 4.x or 5).

    Raises ``ValueError`` for what the block does not model: biases, another activation than
    SiLU, a ``head_dim`` other than ``hidden_size / num_attention_heads``, attention dropout, or
    any RoPE variant other than ``"default"`` (``linear``, ``dynamic``, ``yarn``, ``llama3``...:
    scaled RoPE), whether spelled ``rope_parameters["rope_type"]`` (transformers 5),
    ``rope_scaling["rope_type"]`` or ``rope_scaling["type"]`` (4.x). RoPE angles are computed in
    float64, Hugging Face's in float32 (see the module docstring).
    """
    rope = dict(getattr(hf_config, "rope_parameters", None) or getattr(hf_config, "rope_scaling", None) or {})
    theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10_000.0))
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    rope_types = _rope_types(hf_config)
    problems = {
        "attention_bias": hf_config.attention_bias,
        "mlp_bias": getattr(hf_config, "mlp_bias", False),
        "hidden_act": hf_config.hidden_act != "silu",
        "head_dim": head_dim != hf_config.hidden_size // hf_config.num_attention_heads,
        "attention_dropout": getattr(hf_config, "attention_dropout", 0.0) != 0,
        "rope_type": rope_types != {"default"},
    }
    if any(problems.values()):
        raise ValueError(
            f"unsupported LlamaConfig settings: {sorted(k for k, bad in problems.items() if bad)} "
            f"(rope types {sorted(rope_types)}, attention_dropout {getattr(hf_config, 'attention_dropout', 0.0)})"
        )
    return LlamaBlockConfig(
        d_model=hf_config.hidden_size,
        n_heads=hf_config.num_attention_heads,
        n_kv_heads=hf_config.num_key_value_heads,
        d_ff=hf_config.intermediate_size,
        rope_base=theta,
        max_positions=hf_config.max_position_embeddings,
        norm_eps=hf_config.rms_norm_eps,
    )


_HF_LLAMA_NAMES = {
    "input_layernorm.weight": "input_norm.weight",
    "post_attention_layernorm.weight": "post_attn_norm.weight",
    **{f"self_attn.{p}_proj.weight": f"attn.{p}_proj.weight" for p in "qkvo"},
    **{f"mlp.{p}_proj.weight": f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")},
}


@torch.no_grad()
def load_hf_llama_layer(block: LlamaBlock, hf_layer: nn.Module) -> LlamaBlock:
    """Copy a Hugging Face ``LlamaDecoderLayer`` of the same shape into ``block``.

    Raises ``ValueError`` on an unknown tensor name and ``RuntimeError`` (from
    ``load_state_dict``) on a missing or mis-shaped tensor.
    """
    state = hf_layer.state_dict()
    unknown = sorted(set(state) - set(_HF_LLAMA_NAMES))
    if unknown:
        raise ValueError(f"tensors of the HF layer with no place in LlamaBlock: {unknown}")
    block.load_state_dict({_HF_LLAMA_NAMES[name]: tensor for name, tensor in state.items()}, strict=True)
    return block
