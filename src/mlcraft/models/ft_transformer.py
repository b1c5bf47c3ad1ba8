"""FT-Transformer: a feature tokenizer followed by a pre-norm transformer over feature tokens.

Follows Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data" (NeurIPS 2021,
https://arxiv.org/abs/2106.11959), section 3.3, in the form of the authors' reference package
``rtdl_revisiting_models.FTTransformer`` (0.0.2, without Linformer compression), which
:func:`load_rtdl_weights` copies into this model; the tests check the outputs agree.

- Tokenizer: numerical feature j -> ``x_j * W_j + b_j``; categorical feature j with code c ->
  ``E[offset_j + c] + b_j`` (one embedding table, each feature's codes shifted by the
  cardinalities before it). A learned [CLS] token goes **first** (the paper appends it at the end;
  with no positional information the order changes nothing but which row is read out).
- Blocks (pre-norm): ``x + attention(LN(x))``, then ``x + FFN(LN(x))``; the first block skips
  its first LayerNorm (the paper found removing it necessary for good performance).
  FFN: ``Linear(d, 2h) -> ReGLU -> dropout -> Linear(h, d)``.
- The last block computes only the [CLS] row (it is the only one read out).
- Head on the [CLS] token: ``LayerNorm -> ReLU -> Linear``.

Why not :class:`mlcraft.models.attention.MultiHeadAttention`: it is self-attention over one
input with a fused QKV projection and always an output projection. Here the last block attends
from the [CLS] row alone to every token (queries and keys come from different tensors), and with
one head the reference has no output projection. :class:`FeatureAttention` is built from the same
module's :func:`split_heads`, :func:`scaled_dot_product_attention` and :func:`merge_heads`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, model_validator
from torch import nn

from mlcraft.config.base import FrozenConfig
from mlcraft.models.attention import merge_heads, scaled_dot_product_attention, split_heads

__all__ = ["FTTransformer", "FTTransformerConfig", "FeatureAttention", "FeatureTokenizer", "load_rtdl_weights"]


class FTTransformerConfig(FrozenConfig):
    """Shape and dropout of an :class:`FTTransformer`; defaults are the paper's 3-block default."""

    n_num_features: int = Field(default=0, ge=0)  # numerical columns
    cat_cardinalities: tuple[int, ...] = ()  # distinct codes of each categorical column (codes 0..c-1)
    d_out: int = Field(default=1, ge=1)  # outputs: 1 for regression / binary, C for C classes
    n_blocks: int = Field(default=3, ge=1)  # transformer blocks
    d_block: int = Field(default=192, ge=1)  # width of every token
    n_heads: int = Field(default=8, ge=1)  # attention heads (must divide d_block)
    attention_dropout: float = Field(default=0.2, ge=0.0, lt=1.0)  # on the attention weights
    ffn_d_hidden_multiplier: float = Field(default=4 / 3, gt=0.0)  # ReGLU width h = int(d_block * this)
    ffn_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)  # on the FFN's hidden ReGLU output
    residual_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # on both residual branches

    @model_validator(mode="after")
    def _check_shapes(self) -> FTTransformerConfig:
        if self.n_num_features == 0 and not self.cat_cardinalities:
            raise ValueError("need at least one feature: n_num_features=0 and cat_cardinalities=()")
        if any(c < 1 for c in self.cat_cardinalities):
            raise ValueError(f"every cardinality must be >= 1, got cat_cardinalities={self.cat_cardinalities}")
        if self.d_block % self.n_heads:
            raise ValueError(f"d_block ({self.d_block}) must be divisible by n_heads ({self.n_heads})")
        if self.ffn_d_hidden < 1:
            raise ValueError(f"int(d_block * ffn_d_hidden_multiplier) must be >= 1, got {self.ffn_d_hidden}")
        return self

    @property
    def ffn_d_hidden(self) -> int:
        """Width ``h`` of the ReGLU output (the first FFN layer has ``2 h`` outputs)."""
        return int(self.d_block * self.ffn_d_hidden_multiplier)

    @property
    def n_tokens(self) -> int:
        """[CLS] plus one token per feature."""
        return 1 + self.n_num_features + len(self.cat_cardinalities)


def _uniform_rsqrt(tensor: torch.Tensor, d: int) -> None:
    """The reference's initialisation of tokens: ``U(-1/sqrt(d), 1/sqrt(d))``."""
    nn.init.uniform_(tensor, -(d**-0.5), d**-0.5)


class FeatureTokenizer(nn.Module):
    """Numerical ``(B, F_num)`` and categorical ``(B, F_cat)`` features -> tokens ``(B, F_num + F_cat, D)``."""

    cat_offsets: torch.Tensor  # (F_cat,) int64: first row of each feature in cat_embedding

    def __init__(self, n_num_features: int, cat_cardinalities: tuple[int, ...], d_token: int) -> None:
        super().__init__()
        self.n_num_features, self.cat_cardinalities = n_num_features, cat_cardinalities
        self.num_weight = nn.Parameter(torch.empty(n_num_features, d_token))  # (F_num, D)
        self.num_bias = nn.Parameter(torch.empty(n_num_features, d_token))  # (F_num, D)
        self.cat_embedding = nn.Embedding(sum(cat_cardinalities), d_token)  # (sum of cardinalities, D)
        self.cat_bias = nn.Parameter(torch.empty(len(cat_cardinalities), d_token))  # (F_cat, D)
        offsets = torch.tensor((0, *cat_cardinalities[:-1]), dtype=torch.long).cumsum(0)[: len(cat_cardinalities)]
        self.register_buffer("cat_offsets", offsets, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        d = self.num_weight.shape[1]
        for tensor in (self.num_weight, self.num_bias, self.cat_embedding.weight, self.cat_bias):
            _uniform_rsqrt(tensor, d)

    def forward(self, x_num: torch.Tensor | None, x_cat: torch.Tensor | None) -> torch.Tensor:
        """``x_num`` float ``(B, F_num)`` (cast to the parameters' dtype), ``x_cat`` integer codes
        ``(B, F_cat)`` with ``0 <= x_cat[:, j] < cat_cardinalities[j]``; each ``None`` exactly when
        there are no features of its kind. Returns ``(B, F_num + F_cat, D)``, numerical tokens first.
        The range check reads ``x_cat`` back (a device sync on GPUs)."""
        tokens: list[torch.Tensor] = []
        batch = _check_input("x_num", x_num, self.n_num_features, floating=True)
        if x_num is not None:
            x = x_num.to(self.num_weight.dtype)
            tokens.append(x[..., None] * self.num_weight + self.num_bias[None])  # (B, F_num, D)
        batch_cat = _check_input("x_cat", x_cat, len(self.cat_cardinalities), floating=False)
        if x_cat is not None:
            if batch is not None and batch_cat != batch:
                raise ValueError(f"x_num has {batch} rows but x_cat has {batch_cat}")
            limits = torch.tensor(self.cat_cardinalities, device=x_cat.device)
            bad = (x_cat < 0) | (x_cat >= limits)
            if bad.any():
                row, col = (int(i) for i in bad.nonzero()[0])
                raise ValueError(
                    f"x_cat[{row}, {col}] = {int(x_cat[row, col])} is outside 0..{self.cat_cardinalities[col] - 1} "
                    f"(cardinality {self.cat_cardinalities[col]})"
                )
            tokens.append(self.cat_embedding(x_cat + self.cat_offsets) + self.cat_bias)  # (B, F_cat, D)
        return torch.cat(tokens, dim=1)  # (B, F_num + F_cat, D)


def _check_input(name: str, x: torch.Tensor | None, n_features: int, *, floating: bool) -> int | None:
    """Batch size of ``x`` ``(B, n_features)``; ``x`` must be None exactly when ``n_features == 0``."""
    if n_features == 0:
        if x is not None:
            raise ValueError(f"the model has no {name} features, so {name} must be None")
        return None
    if x is None:
        raise ValueError(f"the model has {n_features} {name} features, so {name} must be given")
    if x.dim() != 2 or x.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (B, {n_features}), got {tuple(x.shape)}")
    if x.is_floating_point() != floating:
        kind = "a floating" if floating else "an integer"
        raise TypeError(f"{name} must have {kind} dtype, got {x.dtype}")
    return x.shape[0]


class FeatureAttention(nn.Module):
    """Multi-head attention with separate Q, K, V projections (zero-initialised biases) and an
    output projection only when ``n_heads > 1``: the reference's ``MultiheadAttention``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q, self.k, self.v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model) if n_heads > 1 else None
        for layer in (self.q, self.k, self.v, self.out):
            if layer is not None:
                nn.init.zeros_(layer.bias)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        """Queries from ``x_q`` ``(B, T_q, D)`` attend to ``x_kv`` ``(B, T, D)``; returns ``(B, T_q, D)``."""
        q = split_heads(self.q(x_q), self.n_heads)  # (B, H, T_q, D/H)
        k = split_heads(self.k(x_kv), self.n_heads)  # (B, H, T, D/H)
        v = split_heads(self.v(x_kv), self.n_heads)  # (B, H, T, D/H)
        dropout_p = self.dropout if self.training else 0.0
        attended = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # (B, H, T_q, D/H)
        out = merge_heads(attended)  # (B, T_q, D)
        if self.out is not None:
            out = self.out(out)  # (B, T_q, D)
        return out


class FeedForward(nn.Module):
    """``Linear(d, 2h) -> ReGLU -> dropout -> Linear(h, d)``; ReGLU(a, b) = ``a * relu(b)``
    (Shazeer 2020, "GLU Variants Improve Transformer"), ``a, b`` the two halves of the first output."""

    def __init__(self, d_model: int, d_hidden: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, 2 * d_hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.linear1(x).chunk(2, dim=-1)  # 2 x (B, T, h)
        out: torch.Tensor = self.linear2(self.dropout(a * F.relu(b)))  # (B, T, D)
        return out


class FTBlock(nn.Module):
    """Pre-norm block; ``first=True`` drops the LayerNorm before attention."""

    def __init__(self, config: FTTransformerConfig, first: bool) -> None:
        super().__init__()
        d = config.d_block
        self.attention_norm: nn.Module = nn.Identity() if first else nn.LayerNorm(d)
        self.attention = FeatureAttention(d, config.n_heads, config.attention_dropout)
        self.attention_residual_dropout = nn.Dropout(config.residual_dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = FeedForward(d, config.ffn_d_hidden, config.ffn_dropout)
        self.ffn_residual_dropout = nn.Dropout(config.residual_dropout)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """``(B, T, D) -> (B, T, D)``, or ``(B, 1, D)`` (the [CLS] row only) with ``cls_only``."""
        normed = self.attention_norm(x)
        query, residual = (normed[:, :1], x[:, :1]) if cls_only else (normed, x)
        x = residual + self.attention_residual_dropout(self.attention(query, normed))
        out: torch.Tensor = x + self.ffn_residual_dropout(self.ffn(self.ffn_norm(x)))
        return out


class FTTransformer(nn.Module):
    """``forward(x_num, x_cat)`` -> ``(B, d_out)`` from the [CLS] token after the last block.

    Inputs as in :meth:`FeatureTokenizer.forward`. Dropouts act in training mode only.
    """

    def __init__(self, config: FTTransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FTTransformerConfig(n_num_features=1)
        self.cls_token = nn.Parameter(torch.empty(config.d_block))  # (D,)
        _uniform_rsqrt(self.cls_token, config.d_block)
        self.tokenizer = FeatureTokenizer(config.n_num_features, config.cat_cardinalities, config.d_block)
        self.blocks = nn.ModuleList(FTBlock(config, first=i == 0) for i in range(config.n_blocks))
        self.head = nn.Sequential()
        self.head.add_module("normalization", nn.LayerNorm(config.d_block))
        self.head.add_module("activation", nn.ReLU())
        self.head.add_module("linear", nn.Linear(config.d_block, config.d_out))

    def forward(self, x_num: torch.Tensor | None = None, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        features = self.tokenizer(x_num, x_cat)  # (B, F, D)
        cls = self.cls_token.expand(features.shape[0], 1, -1)  # (B, 1, D)
        x = torch.cat([cls, features], dim=1)  # (B, 1 + F, D)
        for i, block in enumerate(self.blocks):
            x = block(x, cls_only=i == len(self.blocks) - 1)  # last: (B, 1, D)
        out: torch.Tensor = self.head(x[:, 0])  # (B, d_out)
        return out


_RTDL_BLOCK_NAMES = {
    "attention.W_q.": "attention.q.",
    "attention.W_k.": "attention.k.",
    "attention.W_v.": "attention.v.",
    "attention.W_out.": "attention.out.",
    "attention_normalization.": "attention_norm.",
    "ffn_normalization.": "ffn_norm.",
    "ffn.linear1.": "ffn.linear1.",
    "ffn.linear2.": "ffn.linear2.",
}


@torch.no_grad()
def load_rtdl_weights(model: FTTransformer, reference: nn.Module) -> FTTransformer:
    """Copy an ``rtdl_revisiting_models.FTTransformer`` of the same shape into ``model``.

    The reference keeps one ``nn.Embedding`` per categorical feature; they are stacked into
    ``tokenizer.cat_embedding`` in feature order. Raises ``ValueError`` for a reference with
    Linformer compression or a ReLU feed-forward, and ``RuntimeError`` (from ``load_state_dict``)
    on any missing, unexpected or mis-shaped tensor.
    """
    state = reference.state_dict()
    if any("key_compression" in name or "value_compression" in name for name in state):
        raise ValueError("the reference uses Linformer compression, which this FT-Transformer does not have")
    activations = [m for name, m in reference.named_modules() if name.endswith("ffn.activation")]
    if any(isinstance(m, nn.ReLU) for m in activations):
        raise ValueError("the reference's feed-forward uses ReLU; this FT-Transformer uses ReGLU, as in the paper")
    mapped: dict[str, torch.Tensor] = {"cls_token": state["cls_embedding.weight"]}
    embeddings = [state[f"cat_embeddings.embeddings.{j}.weight"] for j in range(len(model.config.cat_cardinalities))]
    mapped["tokenizer.cat_embedding.weight"] = (
        torch.cat(embeddings) if embeddings else model.tokenizer.cat_embedding.weight
    )
    for ours, theirs in [("num_weight", "cont_embeddings.weight"), ("num_bias", "cont_embeddings.bias")]:
        mapped[f"tokenizer.{ours}"] = state.get(theirs, getattr(model.tokenizer, ours))
    mapped["tokenizer.cat_bias"] = state.get("cat_embeddings.bias", model.tokenizer.cat_bias)
    for name, tensor in state.items():
        if name.startswith("backbone.blocks."):
            _, _, layer, rest = name.split(".", 3)
            for theirs_prefix, ours_prefix in _RTDL_BLOCK_NAMES.items():
                if rest.startswith(theirs_prefix):
                    mapped[f"blocks.{layer}.{ours_prefix}{rest.removeprefix(theirs_prefix)}"] = tensor
                    break
            else:
                raise ValueError(f"no counterpart for the reference's {name}")
        elif name.startswith("backbone.output."):
            mapped[f"head.{name.removeprefix('backbone.output.')}"] = tensor
    model.load_state_dict(mapped, strict=True)
    return model
