"""Inference: generation with a KV cache (02_attention); export and serving come in 07_mlops."""

from mlcraft.inference.generate import filter_logits, generate, sample_next

__all__ = ["filter_logits", "generate", "sample_next"]
