"""Models: attention and a small GPT (02_attention), an FCOS-style detector (03_detection), a tabular
MLP (07_mlops). Models import ops, config and utils only; their training runs are in
:mod:`mlcraft.recipes`."""

from mlcraft.models.anchors import BACKGROUND, IGNORE, base_anchors, grid_anchors, match_anchors
from mlcraft.models.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)
from mlcraft.models.detection_loss import (
    FcosTargets,
    detection_loss,
    detection_losses,
    fcos_targets,
    sigmoid_focal_loss,
)
from mlcraft.models.detector import DetectorConfig, ShapesDetector, fasterrcnn_for_shapes, feature_points, postprocess
from mlcraft.models.gpt import GPT, GPTConfig, load_hf_gpt2_weights
from mlcraft.models.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    apply_rotary,
    rotate_half,
    sinusoidal_encoding,
)
from mlcraft.models.tabular import TabularMLP, TabularMLPConfig, predict_proba

__all__ = [
    "BACKGROUND",
    "GPT",
    "IGNORE",
    "DetectorConfig",
    "FcosTargets",
    "GPTConfig",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "ShapesDetector",
    "TabularMLP",
    "TabularMLPConfig",
    "apply_rotary",
    "base_anchors",
    "causal_mask",
    "detection_loss",
    "detection_losses",
    "fasterrcnn_for_shapes",
    "fcos_targets",
    "feature_points",
    "grid_anchors",
    "load_hf_gpt2_weights",
    "match_anchors",
    "merge_heads",
    "postprocess",
    "predict_proba",
    "rotate_half",
    "scaled_dot_product_attention",
    "sigmoid_focal_loss",
    "sinusoidal_encoding",
    "split_heads",
]
