"""Devices for parametrized tests and GPU-aware nbgrader test cells.

Test cells use ``DEVICE`` (the best device present), so the same cell runs on CUDA on Colab
and on the CPU elsewhere. Pytest suites parametrize over ``available_devices()`` and mark
CUDA-only tests with ``pytest.mark.gpu`` (skipped where no CUDA device exists; see the
``mlcraft.classroom.testing.pytest_plugin``).
"""

from __future__ import annotations

import torch

from mlcraft.utils.device import best_device

__all__ = ["DEVICE", "available_devices", "cuda_available"]


def cuda_available() -> bool:
    """Whether a CUDA device is usable in this process."""
    return torch.cuda.is_available()


def available_devices() -> list[torch.device]:
    """``[cpu]`` plus ``cuda`` (and ``mps``) when present: the list to parametrize tests over."""
    devices = [torch.device("cpu")]
    if cuda_available():
        devices.append(torch.device("cuda"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(torch.device("mps"))
    return devices


#: The device test cells run on: CUDA when present, else MPS, else CPU.
DEVICE: torch.device = best_device()
