"""Checkpoints that resume a run exactly, written atomically and read back safely.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
``torch.load(..., weights_only=True)`` can read it: no pickled code runs on load. It is written
to a temporary file in the target folder, flushed to disk, then ``os.replace``d over the target,
so a crash mid-write never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlcraft.utils.files import atomic_write

__all__ = ["FORMAT_VERSION", "capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint"]

#: Bumped whenever the layout of the checkpoint dict changes incompatibly.
FORMAT_VERSION = 1


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (when present) every CUDA generator, in a weights_only-safe form."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`. The state may have been loaded onto any device
    (``map_location="cuda"``): generator states are host tensors, so they go back to the CPU."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": npy["key"].cpu().numpy().astype(np.uint32), "pos": npy["pos"]},
            "has_gauss": npy["has_gauss"],
            "gauss": npy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    target = Path(path)
    with atomic_write(target) as handle:
        torch.save({"format_version": FORMAT_VERSION, **payload}, handle)
    return target


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it was written by an incompatible format version.
    """
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such checkpoint")
    payload = torch.load(target, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict):
        raise ValueError(f"{target}: not an mlcraft checkpoint (holds a {type(payload).__name__}, not a dict)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{target}: checkpoint format {version!r}, this version of mlcraft reads {FORMAT_VERSION}")
    return dict(payload)
