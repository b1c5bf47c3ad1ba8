"""A small GPT: pre-norm transformer decoder with learned positions and tied embeddings.

Architecture of GPT-2 (Radford et al., 2019) as written in nanoGPT and in Hugging Face's
``GPT2LMHeadModel``; :func:`load_hf_gpt2_weights` copies a ``GPT2LMHeadModel`` into it and the
tests check the logits agree to 1e-5. Supports a key/value cache for incremental decoding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, model_validator
from torch import nn

from mlcraft.config.base import FrozenConfig
from mlcraft.models.attention import MultiHeadAttention

__all__ = ["GPT", "Block", "GPTConfig", "KVCache", "load_hf_gpt2_weights"]

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # one (keys, values) (B, H, T, D) pair per layer


class GPTConfig(FrozenConfig):
    """Shape of the model."""

    vocab_size: int = Field(default=256, ge=2)  # tokens the embedding knows
    block_size: int = Field(default=128, ge=1)  # longest context, in tokens
    n_layer: int = Field(default=4, ge=1)  # transformer blocks
    n_head: int = Field(default=4, ge=1)  # attention heads per block
    d_model: int = Field(default=128, ge=1)  # width of the residual stream
    dropout: float = Field(default=0.0, ge=0, lt=1)  # on embeddings, attention weights and residual branches
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2 has them)
    layer_norm_eps: float = Field(default=1e-5, gt=0)  # GPT-2 uses 1e-5
    tie_weights: bool = True  # share the token embedding with the output head

    @model_validator(mode="after")
    def _heads_divide_width(self) -> GPTConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        return self


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GPT-2's GELU is the tanh approximation ("gelu_new").
        out: torch.Tensor = self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))
        return out


class Block(nn.Module):
    """Pre-norm block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = MultiHeadAttention(
            config.d_model, config.n_head, dropout=config.dropout, bias=config.bias, causal=True
        )
        self.ln2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, new_cache = self.attn(self.ln1(x), kv_cache=kv_cache)
        x = x + self.resid_dropout(attended)
        return x + self.mlp(self.ln2(x)), new_cache


class GPT(nn.Module):
    """``forward(idx)`` maps token ids ``(B, T)`` to next-token logits ``(B, T, vocab_size)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, param in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Logits ``(B, T, vocab)``. With ``kv_cache`` (from :meth:`forward_with_cache`), ``idx``
        holds only the new tokens."""
        return self.forward_with_cache(idx, kv_cache)[0]

    def forward_with_cache(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Logits for the new tokens ``idx`` ``(B, T)`` and the cache extended by them."""
        past = 0 if not kv_cache else kv_cache[0][0].shape[2]
        t = idx.shape[1]
        if past + t > self.config.block_size:
            raise ValueError(f"sequence of {past + t} tokens exceeds block_size {self.config.block_size}")
        positions = torch.arange(past, past + t, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(positions))  # (B, T, C)
        new_cache: KVCache = []
        for layer, block in enumerate(self.blocks):
            x, layer_cache = block(x, kv_cache[layer] if kv_cache else None)
            new_cache.append(layer_cache)
        logits: torch.Tensor = self.lm_head(self.ln_f(x))  # (B, T, vocab)
        return logits, new_cache


_HF_GPT2_NAMES = {
    "ln_1": "ln1",
    "ln_2": "ln2",
    "attn.c_attn": "attn.qkv",
    "attn.c_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc",
    "mlp.c_proj": "mlp.proj",
}
_HF_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@torch.no_grad()
def load_hf_gpt2_weights(model: GPT, hf_model: nn.Module) -> GPT:
    """Copy the weights of a Hugging Face ``GPT2LMHeadModel`` of the same shape into ``model``.

    HF's GPT-2 stores its linear layers as ``Conv1D`` with weights ``(in, out)``: transposed
    relative to ``nn.Linear``. Raises ``RuntimeError`` (from ``load_state_dict``) on any
    missing, unexpected or mis-shaped tensor.
    """
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in hf_model.state_dict().items():
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue  # causal-mask buffers of older transformers versions
        key = name.removeprefix("transformer.")
        if key.startswith("h."):
            _, layer, rest = key.split(".", 2)
            if rest.endswith(_HF_CONV1D):
                tensor = tensor.t()
            for hf_name, ours in _HF_GPT2_NAMES.items():
                if rest.startswith(hf_name + "."):
                    rest = ours + rest[len(hf_name) :]
                    break
            key = f"blocks.{layer}.{rest}"
        elif key == "wpe.weight":
            tensor = tensor[: model.config.block_size]
        mapped[key] = tensor
    model.load_state_dict(mapped, strict=True)
    return model
