"""Tests for mlcraft.mlops.export: ONNX export with a dynamic batch axis, parity through
onnxruntime, and the eager vs onnxruntime measurements (structure only; speed lives in benchmarks/)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import cast

import numpy as np
import onnx
import pytest
import torch

from mlcraft.mlops.export import (
    check_onnx_parity,
    compare_runtimes,
    export_onnx,
    memory_footprint,
    onnx_session,
    rss_bytes,
)
from mlcraft.models.tabular import TabularMLP


@pytest.fixture(scope="module")
def onnx_path(trained_model: TabularMLP, live_rows: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A single-row example: the exporter must still keep the batch axis dynamic.
    return export_onnx(trained_model, torch.from_numpy(live_rows[:1]), tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_export_has_a_named_dynamic_batch_axis(onnx_path: Path) -> None:
    model = onnx.load(str(onnx_path))
    [inp] = model.graph.input
    [out] = model.graph.output
    assert inp.name == "features" and out.name == "logits"
    in_dims = inp.type.tensor_type.shape.dim
    assert in_dims[0].dim_param == "batch" and in_dims[0].dim_value == 0, f"batch axis not symbolic: {in_dims[0]}"
    assert in_dims[1].dim_value == 8
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [p.name for p in onnx_path.parent.iterdir()] == ["model.onnx"], "no external data file, no leftovers"


def test_parity_with_eager_on_every_row_and_batch_size(
    trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray
) -> None:
    report = check_onnx_parity(trained_model, onnx_path, live_rows)
    assert report.passed, str(report)
    assert report.max_abs_error <= 1e-5, f"fp32 parity {report.max_abs_error:.3e} > 1e-5"
    assert report.batch_sizes == (1, 7, 300) and report.n_rows == 300
    assert report.argmax_agreement == 1.0
    assert "parity ok" in str(report)


def test_parity_catches_a_model_that_differs(trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray) -> None:
    changed = copy.deepcopy(trained_model)
    with torch.no_grad():
        cast(torch.nn.Linear, changed.net[-1]).bias[0] += 1e-3  # the output layer
    report = check_onnx_parity(changed, onnx_path, live_rows)
    assert not report.passed and report.max_abs_error == pytest.approx(1e-3, rel=1e-2), str(report)


def test_parity_checks_all_rows_not_just_the_first(
    trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray
) -> None:
    class WrongAfterFirstRow(torch.nn.Module):  # right on row 0, wrong on every other row
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = trained_model(x)
            out[1:] += 0.5
            return out

    report = check_onnx_parity(WrongAfterFirstRow(), onnx_path, live_rows, batch_sizes=[1])
    assert not report.passed and report.max_abs_error == pytest.approx(0.5, rel=1e-4), str(report)


def test_parity_rejects_bad_inputs(trained_model: TabularMLP, onnx_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[N >= 1, F\]"):
        check_onnx_parity(trained_model, onnx_path, np.zeros((0, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[B, F\]"):
        export_onnx(trained_model, torch.zeros(8), onnx_path.parent / "bad.onnx")


def test_compare_runtimes_reports_both_runtimes(
    trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray
) -> None:
    session = onnx_session(onnx_path)
    results = compare_runtimes(trained_model, session, live_rows, batch_sizes=(1, 64), repeats=10, warmup=2)
    assert [r.batch_size for r in results] == [1, 64]
    for r in results:
        assert r.eager.count == r.onnx.count == 10
        assert 0 < r.eager.p50_ms <= r.eager.p99_ms and 0 < r.onnx.p50_ms <= r.onnx.p99_ms
        assert r.onnx_rows_per_s == pytest.approx(r.batch_size / (r.onnx.p50_ms / 1000))
        assert r.speedup_p50 == pytest.approx(r.eager.p50_ms / r.onnx.p50_ms)
    with pytest.raises(ValueError, match="batch size"):
        compare_runtimes(trained_model, session, live_rows, batch_sizes=(301,), repeats=1)


def test_memory_footprint(trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray) -> None:
    footprint = memory_footprint(trained_model, onnx_path, live_rows[:64])
    expected = sum(t.numel() * 4 for t in [*trained_model.parameters(), *trained_model.buffers()])
    assert footprint.torch_parameter_bytes == expected
    assert footprint.onnx_file_bytes == onnx_path.stat().st_size
    # The file holds the same float32 weights plus the graph.
    assert expected <= footprint.onnx_file_bytes < expected + 100_000
    if sys.platform == "linux":  # /proc/self/statm is there: the growth is measured, not None
        assert footprint.onnx_session_rss_bytes is not None
        assert 0 <= footprint.onnx_session_rss_bytes < 2 << 30, footprint.onnx_session_rss_bytes


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/statm")
def test_rss_bytes_reads_this_process() -> None:
    import resource

    rss = rss_bytes()
    assert rss is not None and rss > 10 << 20, rss  # a Python process with torch loaded holds well over 10 MiB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    assert rss <= peak * 1.01, (rss, peak)


@pytest.mark.parametrize(
    ("readings", "grown"), [((100, 300), 200), ((300, 100), 0), ((None, 5), None), ((5, None), None)]
)
def test_memory_footprint_clamps_rss_growth(
    monkeypatch: pytest.MonkeyPatch,
    trained_model: TabularMLP,
    onnx_path: Path,
    live_rows: np.ndarray,
    readings: tuple[int | None, int | None],
    grown: int | None,
) -> None:
    import mlcraft.mlops.export as export

    values = iter(readings)
    monkeypatch.setattr(export, "rss_bytes", lambda: next(values))
    assert memory_footprint(trained_model, onnx_path, live_rows[:4]).onnx_session_rss_bytes == grown


def test_onnx_predictor_matches_the_eager_model(
    trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray
) -> None:
    from mlcraft.data.tabular import CLASS_NAMES
    from mlcraft.mlops.export import OnnxPredictor
    from mlcraft.models.tabular import predict_proba

    predictor = OnnxPredictor(onnx_path, name="tabular", version="3", class_names=CLASS_NAMES)
    assert predictor.n_features == 8 and predictor.class_names == CLASS_NAMES
    got = predictor.predict_proba(live_rows)
    assert got.dtype == np.float32 and got.shape == (300, 3)
    np.testing.assert_allclose(got, predict_proba(trained_model, live_rows), rtol=0, atol=1e-6)


def test_parity_accepts_a_torch_export_module(
    trained_model: TabularMLP, onnx_path: Path, live_rows: np.ndarray
) -> None:
    """The registry stores torch.export graphs, which refuse .eval(); parity and timing take them as they are."""
    example = torch.from_numpy(live_rows[:4])
    exported = torch.export.export(trained_model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    report = check_onnx_parity(exported.module(), onnx_path, live_rows)
    assert report.passed, str(report)
