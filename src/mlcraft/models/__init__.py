"""Models: attention and a small GPT (02_attention), an FCOS-style detector (03_detection), gradient
boosting, an FT-Transformer and an anomaly autoencoder (05_tabular), a tabular MLP (07_mlops).
Models import ops, config and utils only; their training runs are in :mod:`mlcraft.recipes`."""

from mlcraft.models.anchors import BACKGROUND, IGNORE, base_anchors, grid_anchors, match_anchors
from mlcraft.models.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)
from mlcraft.models.autoencoder import TabularAutoencoder, TabularAutoencoderConfig
from mlcraft.models.boosting import GradientBoosting, GradientBoostingConfig
from mlcraft.models.detection_loss import (
    FcosTargets,
    detection_loss,
    detection_losses,
    fcos_targets,
    sigmoid_focal_loss,
)
from mlcraft.models.detector import DetectorConfig, ShapesDetector, fasterrcnn_for_shapes, feature_points, postprocess
from mlcraft.models.ft_transformer import (
    FeatureAttention,
    FeatureTokenizer,
    FTTransformer,
    FTTransformerConfig,
    load_rtdl_weights,
)
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
    "FTTransformer",
    "FTTransformerConfig",
    "FcosTargets",
    "FeatureAttention",
    "FeatureTokenizer",
    "GPTConfig",
    "GradientBoosting",
    "GradientBoostingConfig",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "ShapesDetector",
    "TabularAutoencoder",
    "TabularAutoencoderConfig",
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
    "load_rtdl_weights",
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
