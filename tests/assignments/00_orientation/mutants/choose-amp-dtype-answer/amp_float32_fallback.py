"""Falls back to float32 for an unknown device type instead of raising ValueError."""

# fails: test-choose-amp-dtype
# %% grade_id=choose-amp-dtype-answer
import torch


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    if device_type == "cpu":
        return torch.bfloat16
    if device_type == "cuda":
        return torch.bfloat16 if bf16_supported else torch.float16
    if device_type == "mps":
        return torch.float16
    return torch.float32
