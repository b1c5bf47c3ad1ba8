"""Tests for mlcraft.classroom.testing.devices and the mlcraft.classroom.testing.pytest_plugin (gpu marker, device fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import mlcraft.classroom.testing.pytest_plugin as plugin
from mlcraft.classroom.testing.devices import DEVICE, available_devices, cuda_available

# --------------------------------------------------------------------------- devices


def test_cuda_available_follows_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cuda_available() is torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cuda_available() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cuda_available() is False


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [
        (False, False, ["cpu"]),
        (True, False, ["cpu", "cuda"]),
        (False, True, ["cpu", "mps"]),
        (True, True, ["cpu", "cuda", "mps"]),
    ],
)
def test_available_devices(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: list[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    devices = available_devices()
    assert all(isinstance(d, torch.device) for d in devices)
    assert devices == [torch.device(t) for t in expected]


def test_available_devices_without_mps_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(torch.backends, "mps")
    assert available_devices() == [torch.device("cpu")]


def test_module_device_is_the_best_device_present() -> None:
    """DEVICE against an independent reading of what this machine has (CUDA, then MPS, then CPU)."""
    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available():
        expected = "cuda"
    elif mps is not None and mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert isinstance(DEVICE, torch.device) and DEVICE.type == expected, DEVICE
    assert DEVICE in available_devices()


def test_module_device_is_cpu_when_cuda_is_hidden() -> None:
    """In a process that sees no GPU, test cells run on the CPU (this can fail on a CPU-only machine)."""
    code = "from mlcraft.classroom.testing import DEVICE; print(DEVICE.type)"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert result.stdout.strip() in ("cpu", "mps"), result.stdout


# --------------------------------------------------------------------------- the device fixture


def test_device_fixture_gives_a_usable_device(device: torch.device, request: pytest.FixtureRequest) -> None:
    assert isinstance(device, torch.device)
    assert device in available_devices()
    assert request.node.callspec.id == device.type
    x = torch.arange(4.0, device=device)
    assert x.device.type == device.type
    assert (x * 2).sum().item() == 12.0


# --------------------------------------------------------------------------- plugin hooks


class _FakeConfig:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def addinivalue_line(self, name: str, line: str) -> None:
        self.lines.append((name, line))


class _FakeItem:
    def __init__(self, *keywords: str) -> None:
        self.keywords = dict.fromkeys(keywords, True)
        self.markers: list[pytest.MarkDecorator] = []

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker)

    def get_closest_marker(self, name: str) -> object | None:
        return self.keywords.get(name)


def test_pytest_configure_registers_gpu_marker() -> None:
    config = _FakeConfig()
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    assert len(config.lines) == 1
    name, line = config.lines[0]
    assert name == "markers"
    assert line.startswith("gpu:")


def test_modifyitems_skips_gpu_items_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "cuda_available", lambda: False)
    gpu_item, cpu_item = _FakeItem("test_a", "gpu"), _FakeItem("test_b")
    # Duck-typed stand-ins for pytest's Config and Items.
    plugin.pytest_collection_modifyitems(_FakeConfig(), [gpu_item, cpu_item])  # type: ignore[arg-type, list-item]
    assert [m.mark.name for m in gpu_item.markers] == ["skip"]
    assert "CUDA" in gpu_item.markers[0].mark.kwargs["reason"]
    assert cpu_item.markers == []


def test_modifyitems_keeps_gpu_items_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "cuda_available", lambda: True)
    gpu_item = _FakeItem("test_a", "gpu")
    plugin.pytest_collection_modifyitems(_FakeConfig(), [gpu_item])  # type: ignore[arg-type, list-item]
    assert gpu_item.markers == []


# --------------------------------------------------------------------------- plugin in a real (inner) session

INNER_TESTS = textwrap.dedent(
    """
    import pytest

    @pytest.mark.gpu
    def test_marked():
        pass

    @pytest.mark.parametrize("name", ["gpu", "cpu"])
    def test_param(name):
        pass

    def test_plain():
        pass

    def test_uses_device(device):
        pass
    """
)


class _Outcomes:
    def __init__(self) -> None:
        self.by_test: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::")[-1]
        if report.when == "call" or report.outcome != "passed":
            self.by_test[name] = report.outcome


def _run_inner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda: bool) -> dict[str, str]:
    """Run INNER_TESTS in-process with only the mlcraft plugin, faking CUDA presence."""
    monkeypatch.setattr(plugin, "cuda_available", lambda: cuda)
    module = f"test_inner_plugin_{'cuda' if cuda else 'nocuda'}"
    (tmp_path / f"{module}.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.delitem(sys.modules, module, raising=False)
    outcomes = _Outcomes()
    args = [
        str(tmp_path),
        "-c",
        str(tmp_path / "pytest.ini"),
        "--rootdir",
        str(tmp_path),
        "-p",
        "mlcraft.classroom.testing.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "--strict-markers",
        "-q",
    ]
    exit_code = pytest.main(args, plugins=[outcomes])
    sys.modules.pop(module, None)
    assert exit_code == pytest.ExitCode.OK
    return outcomes.by_test


def test_inner_session_without_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = _run_inner(tmp_path, monkeypatch, cuda=False)
    assert outcomes["test_marked"] == "skipped"
    assert outcomes["test_plain"] == "passed"
    assert outcomes["test_param[cpu]"] == "passed"
    # the device fixture is parametrized over the devices present at import time
    assert {k for k in outcomes if k.startswith("test_uses_device")} == {
        f"test_uses_device[{d.type}]" for d in available_devices()
    }


def test_inner_session_with_cuda_runs_gpu_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = _run_inner(tmp_path, monkeypatch, cuda=True)
    assert outcomes["test_marked"] == "passed"
    assert outcomes["test_param[gpu]"] == "passed"


def test_unmarked_test_with_gpu_param_id_is_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = _run_inner(tmp_path, monkeypatch, cuda=False)
    assert outcomes["test_param[gpu]"] == "passed"
