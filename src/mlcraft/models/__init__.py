"""Models: reference architectures (attention and a small GPT in 02, a detector in 03)."""
