"""ONNX export with a dynamic batch axis, a parity check against eager PyTorch, and eager vs
onnxruntime latency, throughput and memory.

Export uses PyTorch's ``torch.export``-based ONNX exporter (``torch.onnx.export(..., dynamo=True)``,
https://docs.pytorch.org/docs/stable/onnx_export.html) with ``dynamic_shapes`` naming axis 0
``batch``; the result is checked with ``onnx.checker`` and run with onnxruntime's CPU provider
(https://onnxruntime.ai/docs/api/python/api_summary.html).

Parity is checked on every row of a held-out input set, at several batch sizes (1, an odd size
and the whole set): an export that is right on one example can still be wrong on a batch (a
batch axis frozen to the example's size, a reduction over the wrong axis).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlcraft.mlops.timing import LatencySummary, summarize_latencies
from mlcraft.utils.logging import get_logger

__all__ = [
    "MemoryFootprint",
    "OnnxPredictor",
    "ParityReport",
    "RuntimeComparison",
    "check_onnx_parity",
    "compare_runtimes",
    "export_onnx",
    "memory_footprint",
    "onnx_session",
    "rss_bytes",
]

log = get_logger(__name__)

INPUT_NAME, OUTPUT_NAME = "features", "logits"


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    input_name: str = INPUT_NAME,
    output_name: str = OUTPUT_NAME,
    opset_version: int = 20,
) -> Path:
    """Export ``model`` (put in eval mode) to ``path`` with axis 0 of input and output named ``batch``.

    Args:
        example: float32 ``[B, F]``; a single row is repeated to two (``torch.export``
            specializes a size-1 axis to a constant, which would freeze the batch size).
    Returns the path; the file is self-contained (weights inside, no external data file).
    """
    if example.dim() != 2:
        raise ValueError(f"example must be [B, F], got shape {tuple(example.shape)}")
    if example.shape[0] < 2:
        example = example.expand(2, -1).contiguous()
    model = model.eval()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch")
    # Written to a temporary name and renamed, so a failed export never leaves a half file at `path`.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp) / target.name
        torch.onnx.export(
            model,
            (example,),
            str(tmp_path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: batch},),
            opset_version=opset_version,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        import onnx

        onnx.checker.check_model(str(tmp_path))
        os.replace(tmp_path, target)
    log.info("onnx export", path=str(target), bytes=target.stat().st_size, opset=opset_version)
    return target


def _eval_mode(model: nn.Module) -> nn.Module:
    """``model.eval()``; modules from ``torch.export`` (what the registry stores) have no train/eval
    switch (they were exported in eval mode) and raise on ``eval()``, so they are left as they are."""
    try:
        return model.eval()
    except NotImplementedError:
        return model


def onnx_session(path: str | Path, *, threads: int = 1) -> Any:
    """An onnxruntime CPU ``InferenceSession`` with all graph optimizations and ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _run_session(session: Any, features: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    outputs: list[np.ndarray] = session.run(None, {name: np.ascontiguousarray(features, dtype=np.float32)})
    return outputs[0]


class OnnxPredictor:
    """Class probabilities from an exported model run by onnxruntime (the serving ``Predictor`` protocol)."""

    def __init__(
        self, path: str | Path, *, name: str, version: str, class_names: Sequence[str], threads: int = 1
    ) -> None:
        self.session = onnx_session(path, threads=threads)
        self.name, self.version, self.class_names = name, version, tuple(class_names)
        shape = self.session.get_inputs()[0].shape  # ["batch", F]
        self.n_features = int(shape[1])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[B, F]`` float32 -> ``[B, C]`` float32 probabilities (a numerically stable softmax)."""
        logits = _run_session(self.session, features).astype(np.float64)  # (B, C)
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        probabilities: np.ndarray = (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)
        return probabilities


@dataclass(frozen=True)
class ParityReport:
    """Eager PyTorch vs onnxruntime outputs on ``n_rows`` rows at each of ``batch_sizes``."""

    max_abs_error: float  # max over every row, output and batch size
    mean_abs_error: float  # mean over every element compared
    argmax_agreement: float  # fraction of rows whose predicted class is the same
    n_rows: int
    batch_sizes: tuple[int, ...]
    atol: float

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.atol

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"ONNX parity {verdict}: max |eager - onnxruntime| = {self.max_abs_error:.3e} (atol {self.atol:.0e}) "
            f"over {self.n_rows} rows at batch sizes {list(self.batch_sizes)}; argmax agreement {self.argmax_agreement:.4f}"
        )


def check_onnx_parity(
    model: nn.Module,
    session_or_path: Any,
    inputs: np.ndarray | torch.Tensor,
    *,
    batch_sizes: Sequence[int] | None = None,
    atol: float = 1e-5,
) -> ParityReport:
    """Compare ``model(x)`` with the ONNX model on every row of ``inputs`` (``[N, F]``, N >= 1).

    Each batch size in ``batch_sizes`` (default ``(1, 7, N)``, clipped to N) splits all N rows
    into chunks of that size (the last may be smaller). Both run in float32 on the CPU.
    """
    x = np.ascontiguousarray(torch.as_tensor(inputs).detach().cpu().numpy(), dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"inputs must be [N >= 1, F], got shape {x.shape}")
    n = x.shape[0]
    sizes = tuple(sorted({min(max(int(b), 1), n) for b in (batch_sizes or (1, 7, n))}))
    session = onnx_session(session_or_path) if isinstance(session_or_path, str | Path) else session_or_path
    model = _eval_mode(model)
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy().astype(np.float64)  # (N, C)
    max_abs, abs_sum, count, agree = 0.0, 0.0, 0, 0
    for size in sizes:
        got = np.concatenate([_run_session(session, x[i : i + size]) for i in range(0, n, size)]).astype(np.float64)
        if got.shape != reference.shape:
            raise ValueError(f"ONNX output shape {got.shape} != eager {reference.shape} at batch size {size}")
        error = np.abs(got - reference)
        max_abs = max(max_abs, float(error.max()))
        abs_sum += float(error.sum())
        count += error.size
        agree += int((got.argmax(-1) == reference.argmax(-1)).sum())
    return ParityReport(max_abs, abs_sum / count, agree / (n * len(sizes)), n, sizes, atol)


@dataclass(frozen=True)
class RuntimeComparison:
    """Eager PyTorch vs onnxruntime at one batch size, timed in alternation in the same process."""

    batch_size: int
    eager: LatencySummary
    onnx: LatencySummary

    @property
    def eager_rows_per_s(self) -> float:
        return self.batch_size / (self.eager.p50_ms / 1000.0)

    @property
    def onnx_rows_per_s(self) -> float:
        return self.batch_size / (self.onnx.p50_ms / 1000.0)

    @property
    def speedup_p50(self) -> float:
        """eager p50 / onnxruntime p50 (> 1: onnxruntime is faster)."""
        return self.eager.p50_ms / self.onnx.p50_ms

    @property
    def speedup_p99(self) -> float:
        return self.eager.p99_ms / self.onnx.p99_ms


def compare_runtimes(
    model: nn.Module,
    session: Any,
    inputs: np.ndarray,
    *,
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = 200,
    warmup: int = 20,
) -> list[RuntimeComparison]:
    """Latency of one forward pass (eager under ``torch.inference_mode`` vs ``session.run``) per batch size.

    Calls alternate eager, onnx, eager, ... so machine noise falls on both alike. Throughput is
    rows per second at the median latency. Thread counts are the caller's choice
    (``torch.set_num_threads`` and :func:`onnx_session`'s ``threads``): set them equal.
    """
    import time

    model = _eval_mode(model)
    results = []
    for size in batch_sizes:
        if not 1 <= size <= inputs.shape[0]:
            raise ValueError(f"batch size {size} must be in [1, {inputs.shape[0]}] (rows of inputs)")
        x_np = np.ascontiguousarray(inputs[:size], dtype=np.float32)
        x_torch = torch.from_numpy(x_np)

        def eager(x: torch.Tensor = x_torch) -> None:
            with torch.inference_mode():
                model(x)

        def ort_run(x: np.ndarray = x_np) -> None:
            _run_session(session, x)

        for _ in range(warmup):
            eager()
            ort_run()
        times: dict[str, list[float]] = {"eager": [], "onnx": []}
        for i in range(repeats):
            order = (("eager", eager), ("onnx", ort_run)) if i % 2 == 0 else (("onnx", ort_run), ("eager", eager))
            for name, fn in order:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        results.append(RuntimeComparison(size, summarize_latencies(times["eager"]), summarize_latencies(times["onnx"])))
    return results


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux ``/proc/self/statm``); None where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class MemoryFootprint:
    """What each runtime holds for the model."""

    torch_parameter_bytes: int  # parameters and buffers of the eager model
    onnx_file_bytes: int  # the .onnx file (weights + graph)
    onnx_session_rss_bytes: int | None  # growth of this process's RSS when the session was created and first run


def memory_footprint(model: nn.Module, onnx_path: str | Path, example: np.ndarray) -> MemoryFootprint:
    """Model bytes in each runtime. The RSS growth is a process-level measurement (allocator
    caches, the onnxruntime library itself on first use): treat it as an upper bound."""
    tensors = [*model.parameters(), *model.buffers()]
    torch_bytes = sum(t.numel() * t.element_size() for t in tensors)
    before = rss_bytes()
    session = onnx_session(onnx_path)
    _run_session(session, example)
    after = rss_bytes()
    grown = None if before is None or after is None else max(after - before, 0)
    return MemoryFootprint(torch_bytes, Path(onnx_path).stat().st_size, grown)
