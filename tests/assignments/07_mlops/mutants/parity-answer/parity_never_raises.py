"""Computes the error right but returns it without comparing it with ``atol``: a broken export passes unless the caller reads the number."""

# fails: test-parity
# %% grade_id=parity-answer
import numpy as np
import onnxruntime as ort
import torch
from torch import nn


def check_parity(model: nn.Module, onnx_path, inputs: torch.Tensor, atol: float = 1e-5) -> float:
    """Largest |eager - onnxruntime|; AssertionError above ``atol``."""
    if inputs.dim() != 2 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be (N >= 1, F), got shape {tuple(inputs.shape)}")
    model.eval()
    with torch.no_grad():
        eager = model(inputs).cpu().double().numpy()
    x = inputs.cpu().numpy().astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    one = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    whole = session.run(None, {name: x})[0]
    return max(float(np.abs(one - eager).max()), float(np.abs(whole - eager).max()))
