"""Pytest plugin: the ``gpu`` marker and a ``device`` fixture parametrized over the devices present.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["mlcraft.classroom.testing.pytest_plugin"]``.
"""

from __future__ import annotations

import pytest
import torch

from mlcraft.classroom.testing.devices import available_devices, cuda_available


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped where there is none")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="no CUDA device present")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


@pytest.fixture(params=available_devices(), ids=lambda d: d.type)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device present: ``cpu`` always, ``cuda``/``mps`` where available."""
    dev: torch.device = request.param
    return dev
