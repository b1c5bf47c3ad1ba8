"""Always returns bfloat16 on CUDA, ignoring whether the card supports it."""

# fails: test-choose-amp-dtype
# %% grade_id=choose-amp-dtype-answer
import torch


def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps")."""
    if device_type in ("cpu", "cuda"):
        return torch.bfloat16
    if device_type == "mps":
        return torch.float16
    raise ValueError(f"no autocast dtype known for device type {device_type!r}")
