"""Models: attention and a small GPT (02_attention); a detector comes in 03_detection."""

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
from mlcraft.models.detector import (
    DEFAULT_DETECTOR_TRAINING,
    DetectorConfig,
    ShapesDetector,
    evaluate_detector,
    fasterrcnn_for_shapes,
    feature_points,
    postprocess,
    train_detector,
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
    "DEFAULT_DETECTOR_TRAINING",
    "GPT",
    "IGNORE",
    "DetectorConfig",
    "FcosTargets",
    "GPTConfig",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "ShapesDetector",
    "apply_rotary",
    "base_anchors",
    "causal_mask",
    "detection_loss",
    "detection_losses",
    "evaluate_detector",
    "fasterrcnn_for_shapes",
    "fcos_targets",
    "feature_points",
    "grid_anchors",
    "load_hf_gpt2_weights",
    "match_anchors",
    "merge_heads",
    "postprocess",
    "rotate_half",
    "scaled_dot_product_attention",
    "sigmoid_focal_loss",
    "sinusoidal_encoding",
    "split_heads",
    "train_detector",
]
