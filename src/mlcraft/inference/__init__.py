"""Inference: generation with a KV cache (02_attention); lexical, dense and hybrid search (04_nlp); export and serving come in 07_mlops."""

from mlcraft.inference.generate import filter_logits, generate, sample_next
from mlcraft.inference.retrieval import DenseIndex, LexicalIndex, cosine_top_k, hybrid_search, reciprocal_rank_fusion

__all__ = [
    "DenseIndex",
    "LexicalIndex",
    "cosine_top_k",
    "filter_logits",
    "generate",
    "hybrid_search",
    "reciprocal_rank_fusion",
    "sample_next",
]
