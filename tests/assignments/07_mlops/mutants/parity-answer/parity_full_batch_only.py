"""Runs the ONNX graph on the full batch only: a graph that is wrong at batch size 1 (or whose batch axis is fixed to N) passes."""

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
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    error = float(np.abs(got - eager).max())
    if error > atol:
        raise AssertionError(f"ONNX parity failed: {error:.3e} > {atol:.1e}")
    return error
