"""Models: attention, a small GPT and a LLaMA-style block (02_attention), an FCOS-style detector
(03_detection), a BERT-style encoder, pooling, LoRA and LSTM/GRU text models (04_nlp; the packaged
MiniLM loads from :mod:`mlcraft.models.sentence_encoder`), gradient boosting, an FT-Transformer and
an anomaly autoencoder (05_tabular), a tabular MLP (07_mlops). Models import ops, config and utils
only; their training runs are in :mod:`mlcraft.recipes`."""

from mlcraft.models.anchors import BACKGROUND, IGNORE, base_anchors, grid_anchors, match_anchors
from mlcraft.models.attention import (
    MultiHeadAttention,
    causal_mask,
    kv_cache_bytes,
    merge_heads,
    online_softmax_attention,
    repeat_kv,
    scaled_dot_product_attention,
    sliding_window_mask,
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
from mlcraft.models.encoder import (
    Encoder,
    EncoderBlock,
    EncoderConfig,
    SequenceClassifier,
    TokenClassifier,
    encoder_config_from_hf,
    load_hf_bert_weights,
)
from mlcraft.models.ft_transformer import (
    FeatureAttention,
    FeatureTokenizer,
    FTTransformer,
    FTTransformerConfig,
    load_rtdl_weights,
)
from mlcraft.models.gpt import GPT, GPTConfig, load_hf_gpt2_weights
from mlcraft.models.llama import (
    GroupedQueryAttention,
    LlamaBlock,
    LlamaBlockConfig,
    RMSNorm,
    SwiGLU,
    llama_block_config_from_hf,
    load_hf_llama_layer,
)
from mlcraft.models.lora import LoRALinear, apply_lora, count_parameters, merge_lora
from mlcraft.models.pooling import cls_pool, last_token_pool, masked_mean_pool
from mlcraft.models.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    apply_rotary,
    rotate_half,
    sinusoidal_encoding,
)
from mlcraft.models.recurrent import RNNClassifier, RNNTagger
from mlcraft.models.tabular import TabularMLP, TabularMLPConfig, predict_proba

__all__ = [
    "BACKGROUND",
    "GPT",
    "IGNORE",
    "DetectorConfig",
    "Encoder",
    "EncoderBlock",
    "EncoderConfig",
    "FTTransformer",
    "FTTransformerConfig",
    "FcosTargets",
    "FeatureAttention",
    "FeatureTokenizer",
    "GPTConfig",
    "GradientBoosting",
    "GradientBoostingConfig",
    "GroupedQueryAttention",
    "LearnedPositionalEmbedding",
    "LlamaBlock",
    "LlamaBlockConfig",
    "LoRALinear",
    "MultiHeadAttention",
    "RMSNorm",
    "RNNClassifier",
    "RNNTagger",
    "RotaryEmbedding",
    "SequenceClassifier",
    "ShapesDetector",
    "SwiGLU",
    "TabularAutoencoder",
    "TabularAutoencoderConfig",
    "TabularMLP",
    "TabularMLPConfig",
    "TokenClassifier",
    "apply_lora",
    "apply_rotary",
    "base_anchors",
    "causal_mask",
    "cls_pool",
    "count_parameters",
    "detection_loss",
    "detection_losses",
    "encoder_config_from_hf",
    "fasterrcnn_for_shapes",
    "fcos_targets",
    "feature_points",
    "grid_anchors",
    "kv_cache_bytes",
    "last_token_pool",
    "llama_block_config_from_hf",
    "load_hf_bert_weights",
    "load_hf_gpt2_weights",
    "load_hf_llama_layer",
    "load_rtdl_weights",
    "masked_mean_pool",
    "match_anchors",
    "merge_heads",
    "merge_lora",
    "online_softmax_attention",
    "postprocess",
    "predict_proba",
    "repeat_kv",
    "rotate_half",
    "scaled_dot_product_attention",
    "sigmoid_focal_loss",
    "sinusoidal_encoding",
    "sliding_window_mask",
    "split_heads",
]
