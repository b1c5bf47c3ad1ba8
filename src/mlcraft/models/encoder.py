"""A BERT encoder built from the course's attention block, with classification heads.

Follows Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding" (NAACL 2019, https://arxiv.org/abs/1810.04805), in the form of Hugging Face's
``transformers.BertModel``, which :func:`load_hf_bert_weights` copies into :class:`Encoder`; the
tests check the last hidden states agree (1e-5 in float32, 1e-10 in float64).

- Embeddings: ``LN(token + position + segment)`` then dropout. Positions are absolute ``0..T-1``
  whatever the padding side (as in ``BertModel``).
- Blocks are **post-norm** (the original Transformer and BERT; GPT-2 moved to pre-norm):
  ``x = LN(x + drop(attn(x, mask)))``, then ``x = LN(x + drop(W2 gelu(W1 x)))`` with the exact (erf) GELU.
- Attention is :class:`mlcraft.models.attention.MultiHeadAttention`: HF's separate ``query``,
  ``key``, ``value`` weights are stacked into its fused ``qkv`` projection.
- Padding: ``attention_mask`` (B, T) hides padded **keys** from every query. Padded positions still
  get (meaningless) outputs; pool with the mask. A row with no real token attends to every position
  so that its outputs stay finite (fused kernels return NaN for a query that sees no key).
- No pooler (BERT's ``tanh`` layer over [CLS]): :class:`SequenceClassifier` reads [CLS] or the
  masked mean straight from the last hidden state.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, model_validator
from torch import nn

from mlcraft.config.base import FrozenConfig
from mlcraft.models.attention import MultiHeadAttention
from mlcraft.models.pooling import cls_pool, masked_mean_pool

__all__ = [
    "Encoder",
    "EncoderBlock",
    "EncoderConfig",
    "SequenceClassifier",
    "TokenClassifier",
    "encoder_config_from_hf",
    "load_hf_bert_weights",
]


class EncoderConfig(FrozenConfig):
    """Shape of a BERT-style encoder. Defaults: a small 2-layer model of width 128."""

    vocab_size: int = Field(ge=1)  # token ids 0..vocab_size-1
    max_positions: int = Field(default=512, ge=1)  # longest input, in tokens (learned positions)
    type_vocab_size: int = Field(default=2, ge=1)  # segment ids 0..type_vocab_size-1 (sentence A / B)
    d_model: int = Field(default=128, ge=1)  # width of every token vector
    n_heads: int = Field(default=2, ge=1)  # attention heads (must divide d_model)
    n_layers: int = Field(default=2, ge=1)  # encoder blocks
    d_ff: int = Field(default=512, ge=1)  # hidden width of the feed-forward layer (BERT: 4 * d_model)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)  # on embeddings, attention weights and both residual branches
    layer_norm_eps: float = Field(default=1e-12, gt=0.0)  # BERT uses 1e-12
    pad_id: int = Field(default=0, ge=0)  # padding token: its embedding row starts at 0 and gets no gradient

    @model_validator(mode="after")
    def _check_shapes(self) -> EncoderConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id ({self.pad_id}) must be < vocab_size ({self.vocab_size})")
        return self


class EncoderBlock(nn.Module):
    """Post-norm block: ``x = LN(x + drop(attn(x)))``, then ``x = LN(x + drop(ffn(x)))``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.d_model, config.d_ff)
        self.ffn_out = nn.Linear(config.d_ff, config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, T, D); ``attn_mask`` boolean, True = attend, broadcastable to (B, H, T, T). Returns (B, T, D)."""
        attended, _ = self.attn(x, attn_mask)  # (B, T, D)
        x = self.norm1(x + self.dropout(attended))
        hidden = F.gelu(self.ffn_in(x))  # (B, T, d_ff), exact erf GELU as BERT
        out: torch.Tensor = self.norm2(x + self.dropout(self.ffn_out(hidden)))  # (B, T, D)
        return out


class Encoder(nn.Module):
    """Token ids ``(B, T)`` -> contextual vectors ``(B, T, d_model)`` (BERT's last hidden state)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_id)
        self.position_embedding = nn.Embedding(config.max_positions, config.d_model)
        self.type_embedding = nn.Embedding(config.type_vocab_size, config.d_model)
        self.embedding_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layers))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation: N(0, 0.02) weights, zero biases, LayerNorm (1, 0), zero padding row."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a batch.

        Args:
            input_ids (Tensor[B, T]): integer token ids in ``[0, vocab_size)``, ``T <= max_positions``.
            attention_mask (Tensor[B, T] | None): 1 on real tokens, 0 on padding (bool, int or float);
                None: every position is real (as ``BertModel``; the pad id is not looked at).
            token_type_ids (Tensor[B, T] | None): segment ids in ``[0, type_vocab_size)``; None: all 0.

        Returns:
            Tensor[B, T, d_model] in the parameters' dtype. Rows are independent; a real position's
            output does not depend on what the padded positions hold.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
        if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
            raise TypeError(f"input_ids must have an integer dtype, got {input_ids.dtype}")
        b, t = input_ids.shape
        if t > self.config.max_positions:
            raise ValueError(f"sequence of {t} tokens exceeds max_positions {self.config.max_positions}")
        for name, extra in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if extra is not None and tuple(extra.shape) != (b, t):
                raise ValueError(f"{name} must have the shape of input_ids {(b, t)}, got {tuple(extra.shape)}")
        positions = torch.arange(t, device=input_ids.device)  # (T,)
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = self.token_embedding(input_ids) + self.type_embedding(types) + self.position_embedding(positions)
        x = self.dropout(self.embedding_norm(x))  # (B, T, D)
        mask = None
        if attention_mask is not None:
            real = attention_mask != 0  # (B, T)
            real = real | ~real.any(dim=1, keepdim=True)  # a row with no real token attends everywhere (finite outputs)
            mask = real[:, None, None, :]  # (B, 1, 1, T): every query sees the real keys
        for block in self.blocks:
            x = block(x, mask)  # (B, T, D)
        out: torch.Tensor = x
        return out


def encoder_config_from_hf(hf_config: Any) -> EncoderConfig:
    """The :class:`EncoderConfig` of a ``transformers.BertConfig`` (an encoder with absolute positions
    and the erf GELU). ``dropout`` is the config's ``hidden_dropout_prob``; attention dropout is the
    same value in every BERT checkpoint we load. Raises ``ValueError`` for an architecture this
    encoder cannot reproduce (decoder, relative positions, another activation)."""
    activation = getattr(hf_config, "hidden_act", "gelu")
    if activation != "gelu":
        raise ValueError(f"only hidden_act='gelu' (erf GELU) is supported, got {activation!r}")
    position_type = getattr(hf_config, "position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"only absolute position embeddings are supported, got {position_type!r}")
    if getattr(hf_config, "is_decoder", False):
        raise ValueError("the config describes a decoder (is_decoder=True); Encoder is bidirectional")
    pad_id = getattr(hf_config, "pad_token_id", None)
    return EncoderConfig(
        vocab_size=hf_config.vocab_size,
        max_positions=hf_config.max_position_embeddings,
        type_vocab_size=hf_config.type_vocab_size,
        d_model=hf_config.hidden_size,
        n_heads=hf_config.num_attention_heads,
        n_layers=hf_config.num_hidden_layers,
        d_ff=hf_config.intermediate_size,
        dropout=hf_config.hidden_dropout_prob,
        layer_norm_eps=hf_config.layer_norm_eps,
        pad_id=0 if pad_id is None else pad_id,
    )


_HF_EMBEDDINGS = {
    "word_embeddings": "token_embedding",
    "position_embeddings": "position_embedding",
    "token_type_embeddings": "type_embedding",
    "LayerNorm": "embedding_norm",
}
_HF_LAYER = {
    "attention.output.dense": "attn.proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "norm2",
}


@torch.no_grad()
def load_hf_bert_weights(model: Encoder, hf_bert: nn.Module) -> Encoder:
    """Copy the weights of a Hugging Face ``BertModel`` (or any ``BertFor*`` model: its ``base_model``
    is used) of the same shape into ``model``, in place; returns ``model``.

    The separate ``query``, ``key``, ``value`` projections are stacked into ``attn.qkv``
    (``[W_q; W_k; W_v]`` along the output dimension). The pooler is not copied. Position embeddings
    are cut to ``model.config.max_positions``. Raises ``RuntimeError`` (from ``load_state_dict``)
    on any missing, unexpected or mis-shaped tensor.
    """
    base = getattr(hf_bert, "base_model", hf_bert)
    mapped: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # (layer, "weight" | "bias") -> query/key/value
    for name, tensor in base.state_dict().items():
        if name.startswith("pooler.") or name in ("embeddings.position_ids", "embeddings.token_type_ids"):
            continue  # the pooler, and index buffers of older transformers versions
        if name.startswith("embeddings."):
            module, param = name.removeprefix("embeddings.").rsplit(".", 1)
            if module == "position_embeddings":
                tensor = tensor[: model.config.max_positions]
            mapped[f"{_HF_EMBEDDINGS.get(module, module)}.{param}"] = tensor
        elif name.startswith("encoder.layer."):
            layer, rest = name.removeprefix("encoder.layer.").split(".", 1)
            module, param = rest.rsplit(".", 1)
            if module.startswith("attention.self."):
                qkv.setdefault((layer, param), {})[module.removeprefix("attention.self.")] = tensor
            else:
                mapped[f"blocks.{layer}.{_HF_LAYER.get(module, module)}.{param}"] = tensor
        else:
            mapped[name] = tensor  # unknown: load_state_dict reports it as unexpected
    for (layer, param), parts in qkv.items():
        if sorted(parts) != ["key", "query", "value"]:
            raise RuntimeError(f"layer {layer}: expected query, key and value {param}, found {sorted(parts)}")
        stacked = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)  # (3 D, D) or (3 D,)
        mapped[f"blocks.{layer}.attn.qkv.{param}"] = stacked
    model.load_state_dict(mapped, strict=True)
    return model


class SequenceClassifier(nn.Module):
    """Encoder -> sentence vector ([CLS] or masked mean) -> dropout -> linear: logits ``(B, n_classes)``."""

    def __init__(
        self, encoder: Encoder, n_classes: int, pooling: Literal["cls", "mean"] = "cls", dropout: float = 0.1
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.encoder, self.pooling = encoder, pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.d_model, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids`` (B, T), ``attention_mask`` (B, T) 1 = real (None: all real). Returns logits (B, n_classes).
        [CLS] pooling reads position 0, so it expects right padding."""
        hidden = self.encoder(input_ids, attention_mask)  # (B, T, D)
        if self.pooling == "cls":
            pooled = cls_pool(hidden)  # (B, D)
        else:
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            pooled = masked_mean_pool(hidden, mask)  # (B, D)
        logits: torch.Tensor = self.head(self.dropout(pooled))  # (B, n_classes)
        return logits


class TokenClassifier(nn.Module):
    """Encoder -> dropout -> linear on every position: logits ``(B, T, n_labels)`` (tagging, NER)."""

    def __init__(self, encoder: Encoder, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be >= 1, got {n_labels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.d_model, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, n_labels); padded positions get logits too: leave them out of the loss
        (e.g. labels -100 with ``cross_entropy(ignore_index=-100)``)."""
        logits: torch.Tensor = self.head(self.dropout(self.encoder(input_ids, attention_mask)))  # (B, T, n_labels)
        return logits
