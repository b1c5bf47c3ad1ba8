"""Dynamic int8 quantization of an exported ONNX model, what it computes, and how far it moves
the outputs.

Follows ONNX Runtime's quantization guide
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html): *dynamic*
quantization stores each weight matrix of a ``MatMul``/``Gemm`` as int8 with one scale per
tensor (symmetric, ``scale = max|W| / 127``) and quantizes the activations at run time, per
tensor, to uint8 (``DynamicQuantizeLinear``: ``scale = (max(x, 0) - min(x, 0)) / 255``, a zero
point that maps 0 exactly). The product is an integer matrix product rescaled to float.
:func:`simulate_dynamic_int8_matmul` does the same arithmetic in NumPy float64, as a reference.

Two consequences a release has to check: the weights shrink about 4x (the file less, since the
graph and biases stay float32), and a row's output depends on the *other rows of its batch*,
since the activation scale is taken over the whole batch tensor.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlcraft.utils.logging import get_logger

__all__ = ["QuantizationReport", "compare_quantized", "quantize_dynamic_int8", "simulate_dynamic_int8_matmul"]

log = get_logger(__name__)


def quantize_dynamic_int8(
    source: str | Path, target: str | Path, *, per_channel: bool = False, preprocess: bool = True
) -> Path:
    """Write a dynamically int8-quantized copy of the ONNX model ``source`` to ``target``.

    Weights are ``QuantType.QInt8`` (per output column with ``per_channel``). With
    ``preprocess`` the model first goes through ``quant_pre_process`` (shape inference and graph
    optimization, the step ONNX Runtime recommends before quantizing). Returns ``target``.

    Raises:
        FileNotFoundError: if ``source`` does not exist.
        ValueError: if ``target`` is ``source``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(f"no ONNX model at {source}")
    if target.resolve() == source.resolve():
        raise ValueError(f"target must differ from source ({source}): quantization writes a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        model_input = source
        if preprocess:
            model_input = Path(tmp) / "preprocessed.onnx"
            quant_pre_process(str(source), str(model_input))
        # Without preprocessing, quantize_dynamic logs a warning recommending it (on the root logger).
        quantize_dynamic(str(model_input), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)
    log.info("int8 quantization", source=str(source), target=str(target), bytes=target.stat().st_size)
    return target


def simulate_dynamic_int8_matmul(x: np.ndarray, weight: np.ndarray, *, per_channel: bool = False) -> np.ndarray:
    """``x @ weight`` the way onnxruntime's dynamic int8 ``MatMul`` computes it, in float64.

    Args:
        x: ``[B, K]`` activations; quantized to uint8 with one scale and zero point over the whole array.
        weight: ``[K, N]`` (``nn.Linear.weight.T``); quantized to int8 symmetric, one scale per
            tensor, or per output column with ``per_channel``.
    Returns ``[B, N]`` float64. Rounding is half to even, as in onnxruntime.
    """
    x = np.asarray(x, dtype=np.float32)
    weight = np.asarray(weight, dtype=np.float32)
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"expected x [B, K] and weight [K, N], got {x.shape} and {weight.shape}")
    low, high = min(0.0, float(x.min(initial=0.0))), max(0.0, float(x.max(initial=0.0)))
    x_scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
    x_zero = np.clip(np.rint(-low / x_scale), 0, 255)
    x_q = np.clip(np.rint(x / x_scale) + x_zero, 0, 255)  # uint8 values, (B, K)
    absmax = np.abs(weight).max(axis=0) if per_channel else np.abs(weight).max()  # (N,) or ()
    w_scale = (2.0 * absmax / 254.0).astype(np.float32)
    w_scale = np.where(w_scale == 0, np.float32(1.0), w_scale)
    w_q = np.clip(np.rint(weight / w_scale), -127, 127)  # int8 values, (K, N)
    # The integer product in float64: every term and partial sum is an integer of magnitude at most
    # K * 255 * 127, exact while that is below 2**53 (K < 2.7e11). In float32 (the dtype of x_q and
    # w_q) it would be exact only below 2**24, i.e. K <= 518: same-sign inputs with K = 4096 would err.
    integer_product = (x_q - x_zero).astype(np.float64) @ w_q.astype(np.float64)  # (B, N)
    product: np.ndarray = integer_product * (np.float64(x_scale) * w_scale.astype(np.float64))
    return product


@dataclass(frozen=True)
class QuantizationReport:
    """float32 vs int8 ONNX model on the same rows."""

    fp32_bytes: int  # size of each file
    int8_bytes: int
    max_abs_logit_diff: float  # max over rows and outputs of |fp32 - int8|
    argmax_agreement: float  # fraction of rows with the same predicted class
    fp32_accuracy: float | None  # None without labels
    int8_accuracy: float | None
    n_rows: int
    batch_size: int  # rows per session.run (the activation scale is per batch)

    @property
    def size_ratio(self) -> float:
        """int8 file size / float32 file size (about 0.25 when the weights dominate the file)."""
        return self.int8_bytes / self.fp32_bytes

    @property
    def accuracy_drop(self) -> float | None:
        """fp32 accuracy minus int8 accuracy (positive: int8 is worse)."""
        if self.fp32_accuracy is None or self.int8_accuracy is None:
            return None
        return self.fp32_accuracy - self.int8_accuracy

    def __str__(self) -> str:
        accuracy = (
            ""
            if self.fp32_accuracy is None or self.int8_accuracy is None
            else f"; accuracy fp32 {self.fp32_accuracy:.4f} int8 {self.int8_accuracy:.4f}"
        )
        return (
            f"int8 vs fp32: {self.fp32_bytes / 1024:.1f} -> {self.int8_bytes / 1024:.1f} KiB "
            f"(x{self.size_ratio:.2f}); max |d logit| {self.max_abs_logit_diff:.3e}; "
            f"argmax agreement {self.argmax_agreement:.4f}{accuracy} ({self.n_rows} rows, batch {self.batch_size})"
        )


def _logits(session: object, features: np.ndarray, batch_size: int) -> np.ndarray:
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    chunks = [
        session.run(None, {name: features[i : i + batch_size]})[0]  # type: ignore[attr-defined]
        for i in range(0, features.shape[0], batch_size)
    ]
    return np.concatenate(chunks).astype(np.float64)


def compare_quantized(
    fp32_path: str | Path,
    int8_path: str | Path,
    features: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    batch_size: int | None = None,
) -> QuantizationReport:
    """Run both models on ``features`` (float32 ``[N, F]``, N >= 1) in batches of ``batch_size``
    (default: all N at once) and compare the outputs (``[N, C]`` logits); accuracy needs ``labels`` ``[N]``.

    Raises:
        ValueError: for empty or non-2-D features, labels of another length, or ``batch_size < 1``.
    """
    from mlcraft.mlops.export import onnx_session

    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be [N >= 1, F], got shape {x.shape}")
    n = x.shape[0]
    size = n if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    y = None if labels is None else np.asarray(labels).reshape(-1)
    if y is not None and y.shape[0] != n:
        raise ValueError(f"labels has {y.shape[0]} entries for {n} rows")
    fp32 = _logits(onnx_session(fp32_path), x, size)  # (N, C)
    int8 = _logits(onnx_session(int8_path), x, size)  # (N, C)
    if fp32.shape != int8.shape:
        raise ValueError(f"output shapes differ: fp32 {fp32.shape}, int8 {int8.shape}")
    fp32_acc = None if y is None else float((fp32.argmax(-1) == y).mean())
    int8_acc = None if y is None else float((int8.argmax(-1) == y).mean())
    return QuantizationReport(
        fp32_bytes=Path(fp32_path).stat().st_size,
        int8_bytes=Path(int8_path).stat().st_size,
        max_abs_logit_diff=float(np.abs(fp32 - int8).max()),
        argmax_agreement=float((fp32.argmax(-1) == int8.argmax(-1)).mean()),
        fp32_accuracy=fp32_acc,
        int8_accuracy=int8_acc,
        n_rows=n,
        batch_size=min(size, n),
    )
