"""Inference: generation with a KV cache (02), export and serving (07_mlops)."""
