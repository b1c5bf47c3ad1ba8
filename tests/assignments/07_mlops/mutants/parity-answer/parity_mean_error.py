"""Reports the mean absolute error instead of the largest: it understates a graph that is wrong on some
rows only, and can average a large error on a few rows down below ``atol``."""

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
    error = max(float(np.abs(one - eager).mean()), float(np.abs(whole - eager).mean()))
    if error > atol:
        raise AssertionError(f"ONNX parity failed: {error:.3e} > {atol:.1e}")
    return error
