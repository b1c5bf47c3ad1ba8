"""Handles CUDA itself but hands the other device types to the course package's ``amp_dtype``."""

# fails: test-choose-amp-dtype
# %% grade_id=choose-amp-dtype-answer
import torch

from mlcraft.utils import amp_dtype


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    if device_type == "cuda":
        return torch.bfloat16 if bf16_supported else torch.float16
    return amp_dtype(device_type)
