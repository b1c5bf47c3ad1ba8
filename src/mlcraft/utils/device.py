"""Device and mixed-precision dtype selection.

Follows the PyTorch AMP recipe (https://pytorch.org/docs/stable/amp.html): bf16 where the
hardware runs it natively (every CPU autocast path, Ampere-or-newer CUDA), fp16 with a
``GradScaler`` on older CUDA cards, whose narrow exponent range needs loss scaling.
"""

from __future__ import annotations

import torch

__all__ = ["amp_dtype", "best_device", "needs_grad_scaler"]


def best_device() -> torch.device:
    """Return the fastest device present: ``cuda`` first, then Apple ``mps``, then ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _as_device(device: torch.device | str) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"unknown device {device!r}: expected e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'") from err
    raise TypeError(f"device must be a torch.device or a str, got {type(device).__name__}")


def amp_dtype(device: torch.device | str) -> torch.dtype:
    """The autocast dtype to use on ``device``.

    - ``cpu``: ``torch.bfloat16`` (the only low-precision dtype CPU autocast supports well).
    - ``cuda``: ``torch.bfloat16`` when the card supports it (compute capability >= 8.0),
      otherwise ``torch.float16``, which must be paired with a ``GradScaler``.
    - ``mps``: ``torch.float16``.

    Raises:
        ValueError: for a device type autocast does not know.
    """
    dev = _as_device(device)
    if dev.type == "cpu":
        return torch.bfloat16
    if dev.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return torch.bfloat16
        return torch.float16
    if dev.type == "mps":
        return torch.float16
    raise ValueError(f"no autocast dtype known for device type {dev.type!r}; use 'cpu', 'cuda' or 'mps'")


def needs_grad_scaler(dtype: torch.dtype) -> bool:
    """fp16 has 5 exponent bits: small gradients underflow to zero unless the loss is scaled."""
    return dtype == torch.float16
