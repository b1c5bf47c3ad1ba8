"""Stores NumPy's state as a raw array and loads with weights_only=False: the file cannot be loaded safely, and loading can run code stored in it."""

# fails: test-checkpoint
# %% grade_id=checkpoint-answer
import os
import random
from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path, model, optimizer, scaler, step):
    """Atomically write model, optimizer, scaler, step and RNG states to ``path`` (a weights_only-safe file)."""
    path = Path(path)
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "step": int(step),
        "rng": rng,
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there if something failed


def load_checkpoint(path, model, optimizer, scaler):
    """Restore model, optimizer, scaler and RNG states from ``path``; return the saved step."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(ckpt["step"])
