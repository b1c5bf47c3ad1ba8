"""Models: attention and a small GPT (02_attention); a detector comes in 03_detection."""

from mlcraft.models.anchors import BACKGROUND, IGNORE, base_anchors, grid_anchors, match_anchors
from mlcraft.models.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)
from mlcraft.models.gpt import GPT, GPTConfig, load_hf_gpt2_weights
from mlcraft.models.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    apply_rotary,
    rotate_half,
    sinusoidal_encoding,
)

__all__ = [
    "BACKGROUND",
    "GPT",
    "IGNORE",
    "GPTConfig",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "apply_rotary",
    "base_anchors",
    "causal_mask",
    "grid_anchors",
    "load_hf_gpt2_weights",
    "match_anchors",
    "merge_heads",
    "rotate_half",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
    "split_heads",
]
