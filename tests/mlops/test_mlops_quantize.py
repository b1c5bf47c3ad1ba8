"""Tests for mlcraft.mlops.quantize: onnxruntime's dynamic int8 model against a NumPy float64
simulation of the same arithmetic, the size and accuracy report against direct computation,
and the batch dependence that per-tensor activation scales cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mlcraft.mlops.export import export_onnx
from mlcraft.mlops.quantize import compare_quantized, quantize_dynamic_int8, simulate_dynamic_int8_matmul
from mlcraft.models.tabular import TabularMLP


def _linear_graph(path: Path, weights: list[np.ndarray], biases: list[np.ndarray]) -> Path:
    """An ONNX MLP: MatMul + Add per layer, Relu between layers; input ``x`` [batch, K]."""
    nodes, inits, current = [], [], "x"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
        ]
        current = f"a{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", weights[0].shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", weights[-1].shape[1]])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {session.get_inputs()[0].name: x})[0]
    return out


@pytest.fixture
def layer(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    b = rng.normal(size=32).astype(np.float32)
    return _linear_graph(tmp_path / "layer.onnx", [w], [b]), w, b


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_layer_matches_the_numpy_simulation(
    layer: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path, per_channel: bool
) -> None:
    path, w, b = layer
    int8 = quantize_dynamic_int8(path, tmp_path / "layer_int8.onnx", per_channel=per_channel)
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops, ops
    x = (np.random.default_rng(1).normal(size=(16, 64)) * 3 + 1).astype(np.float32)  # not centred: zero point != 128
    got = _run(int8, x).astype(np.float64)
    simulated = simulate_dynamic_int8_matmul(x, w, per_channel=per_channel) + b
    exact = x.astype(np.float64) @ w.astype(np.float64) + b
    # The simulation reproduces onnxruntime to float32 rounding; both are far from the float result.
    np.testing.assert_allclose(got, simulated, rtol=0, atol=1e-4 * np.abs(simulated).max())
    assert np.abs(got - exact).max() > 100 * np.abs(got - simulated).max()


def test_per_channel_scales_are_used_for_per_channel() -> None:
    """One column with large weights: per-tensor scales crush the small columns, per-channel does not."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(32, 4)).astype(np.float32) * np.array([100.0, 0.01, 0.01, 0.01], dtype=np.float32)
    x = rng.normal(size=(8, 32)).astype(np.float32)
    exact = x.astype(np.float64) @ w
    per_tensor = simulate_dynamic_int8_matmul(x, w)
    per_channel = simulate_dynamic_int8_matmul(x, w, per_channel=True)
    small = slice(1, 4)
    assert (
        np.abs(per_tensor[:, small] - exact[:, small]).max()
        > 10 * np.abs(per_channel[:, small] - exact[:, small]).max()
    )


@pytest.mark.parametrize("per_channel", [False, True])
def test_simulation_integer_product_is_exact_for_long_same_sign_rows(per_channel: bool) -> None:
    """Inputs already on the integer grid (x in 0..255 with max 255, w in 0..127 with every column's
    max 127) have scale 1 and zero point 0, so the simulation must return the exact integer product.
    With K = 4096 and same-sign terms the sums reach about 3.4e7, beyond 2**24: a float32 product
    rounds them, a float64 (or int64) one does not."""
    rng = np.random.default_rng(6)
    k = 4096
    x = rng.integers(0, 256, size=(3, k))
    x[0, 0] = 255
    w = rng.integers(0, 128, size=(k, 5))
    w[0, :] = 127
    exact = x @ w  # int64, (3, 5)
    assert exact.max() > 2**24
    simulated = simulate_dynamic_int8_matmul(x.astype(np.float32), w.astype(np.float32), per_channel=per_channel)
    assert simulated.dtype == np.float64
    np.testing.assert_array_equal(simulated, exact.astype(np.float64), err_msg="integer product not exact")


def test_simulation_handles_all_zero_inputs_and_rejects_bad_shapes() -> None:
    w = np.ones((3, 2), dtype=np.float32)
    np.testing.assert_array_equal(simulate_dynamic_int8_matmul(np.zeros((2, 3)), w), np.zeros((2, 2)))
    np.testing.assert_array_equal(simulate_dynamic_int8_matmul(np.ones((2, 3)), np.zeros((3, 2))), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"expected x \[B, K\] and weight \[K, N\], got \(2, 4\) and \(3, 2\)"):
        simulate_dynamic_int8_matmul(np.ones((2, 4)), w)


def test_report_on_an_mlp_against_direct_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(16, 256)).astype(np.float32) / 4, rng.normal(size=(256, 256)).astype(np.float32) / 16]
    weights.append(rng.normal(size=(256, 3)).astype(np.float32) / 16)
    biases = [np.zeros(256, np.float32), np.zeros(256, np.float32), np.zeros(3, np.float32)]
    fp32 = _linear_graph(tmp_path / "mlp.onnx", weights, biases)
    int8 = quantize_dynamic_int8(fp32, tmp_path / "mlp_int8.onnx")
    x = rng.normal(size=(300, 16)).astype(np.float32)
    a, b = _run(fp32, x).astype(np.float64), _run(int8, x).astype(np.float64)
    labels = a.argmax(-1)
    labels[:30] = (labels[:30] + 1) % 3  # 10% of labels disagree with fp32
    report = compare_quantized(fp32, int8, x, labels)
    assert report.fp32_bytes == fp32.stat().st_size and report.int8_bytes == int8.stat().st_size
    assert report.size_ratio < 0.3, report  # 4-byte weights become 1 byte; the weights dominate
    assert report.max_abs_logit_diff == pytest.approx(float(np.abs(a - b).max()), rel=1e-12)
    assert 0 < report.max_abs_logit_diff < 0.05 * np.abs(a).max()
    assert report.argmax_agreement == pytest.approx(float((a.argmax(-1) == b.argmax(-1)).mean()))
    assert report.fp32_accuracy == pytest.approx(0.9)
    assert report.int8_accuracy == pytest.approx(float((b.argmax(-1) == labels).mean()))
    assert report.fp32_accuracy is not None and report.int8_accuracy is not None
    assert report.accuracy_drop == pytest.approx(report.fp32_accuracy - report.int8_accuracy)
    assert (report.n_rows, report.batch_size) == (300, 300)
    assert "argmax agreement" in str(report) and "accuracy fp32 0.9000" in str(report)
    no_labels = compare_quantized(fp32, int8, x)
    assert no_labels.fp32_accuracy is None and no_labels.accuracy_drop is None
    assert no_labels.max_abs_logit_diff == report.max_abs_logit_diff


def test_int8_output_of_a_row_depends_on_its_batch(tmp_path: Path) -> None:
    """The activation scale is per batch tensor: the same row, alone or with a large row beside it,
    gets different int8 outputs (float32 gives the same)."""
    rng = np.random.default_rng(4)
    w = rng.normal(size=(8, 4)).astype(np.float32)
    fp32 = _linear_graph(tmp_path / "small.onnx", [w], [np.zeros(4, np.float32)])
    int8 = quantize_dynamic_int8(fp32, tmp_path / "small_int8.onnx")
    row = rng.normal(size=(1, 8)).astype(np.float32)
    batch = np.concatenate([row, 50 * np.ones((1, 8), np.float32)])
    alone, together = _run(int8, row)[0], _run(int8, batch)[0]
    assert np.abs(alone - together).max() > 1e-2
    np.testing.assert_allclose(_run(fp32, row)[0], _run(fp32, batch)[0], rtol=1e-6, atol=1e-6)
    row_by_row = compare_quantized(fp32, int8, batch, batch_size=1)
    whole = compare_quantized(fp32, int8, batch)
    assert row_by_row.batch_size == 1 and row_by_row.max_abs_logit_diff != whole.max_abs_logit_diff


def test_tabular_mlp_export_quantizes_and_keeps_its_predictions(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TabularMLP().eval()
    x = np.random.default_rng(5).normal(size=(200, 8)).astype(np.float32)
    fp32 = export_onnx(model, torch.from_numpy(x[:4]), tmp_path / "tabular.onnx")
    int8 = quantize_dynamic_int8(fp32, tmp_path / "tabular_int8.onnx")
    with torch.inference_mode():
        eager = model(torch.from_numpy(x)).numpy()
    torch.testing.assert_close(
        _run(int8, x), eager, atol=0.05 * float(np.abs(eager).max()), rtol=0.0, msg="int8 vs eager"
    )
    assert compare_quantized(fp32, int8, x).argmax_agreement > 0.9


def test_bad_arguments(layer: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    path, _, _ = layer
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        quantize_dynamic_int8(tmp_path / "missing.onnx", tmp_path / "out.onnx")
    with pytest.raises(ValueError, match="target must differ from source"):
        quantize_dynamic_int8(path, path)
    int8 = quantize_dynamic_int8(path, tmp_path / "sub" / "int8.onnx")  # missing folders are created
    x = np.ones((3, 64), np.float32)
    with pytest.raises(ValueError, match=r"features must be \[N >= 1, F\], got shape \(0, 64\)"):
        compare_quantized(path, int8, x[:0])
    with pytest.raises(ValueError, match="labels has 2 entries for 3 rows"):
        compare_quantized(path, int8, x, np.zeros(2))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        compare_quantized(path, int8, x, batch_size=0)
    single = compare_quantized(path, int8, x[:1], np.zeros(1))
    assert single.n_rows == 1 and single.batch_size == 1
