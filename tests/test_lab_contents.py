"""The contents manager `make lab` serves the course with (mlcraft.classroom.lab): a notebook read
without ``language_info`` gets exactly what the local kernel reports, so JupyterLab's update on
kernel start changes nothing and the notebook opens unmodified; pairing still works; files on
disk are not touched by reading. The browser test ``test_the_lab_opens_clean`` checks the result
in JupyterLab itself."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from mlcraft.classroom.lab import PYTHON_LANGUAGE_INFO, CourseContentsManager, fill_language_info

REPO = Path(__file__).resolve().parents[1]


def _notebook(**metadata: Any) -> dict[str, Any]:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.metadata.update(metadata)
    return dict(notebook)


def test_a_python_notebook_without_language_info_gets_the_kernels() -> None:
    notebook = _notebook(kernelspec={"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"})
    assert fill_language_info(notebook)
    assert notebook["metadata"]["language_info"] == PYTHON_LANGUAGE_INFO
    assert notebook["metadata"]["language_info"] is not PYTHON_LANGUAGE_INFO  # a copy: edits stay local


def test_a_notebook_without_kernelspec_is_taken_as_python() -> None:
    notebook: dict[str, Any] = {"cells": []}
    assert fill_language_info(notebook)
    assert notebook["metadata"]["language_info"]["name"] == "python"


@pytest.mark.parametrize(
    "metadata",
    [
        {"language_info": {"name": "python", "version": "3.9.0"}},  # a learner's saved work: kept
        {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}},  # another language
    ],
)
def test_other_notebooks_are_left_alone(metadata: dict[str, Any]) -> None:
    notebook = _notebook(**metadata)
    before = json.dumps(notebook, sort_keys=True)
    assert not fill_language_info(notebook)
    assert json.dumps(notebook, sort_keys=True) == before


def test_language_info_equals_what_a_started_kernel_reports() -> None:
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.kernel_info(reply=True, timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["content"]["language_info"] == PYTHON_LANGUAGE_INFO


def test_the_manager_pairs_and_fills_without_writing(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    for name in ("jupytext.toml", "00_orientation.ipynb", "00_orientation.py"):
        shutil.copy(REPO / "course" / name, course / name)
    marker = "# paired-text-marker"
    py = course / "00_orientation.py"
    py.write_text(py.read_text(encoding="utf-8") + f"\n# %%\n{marker}\n", encoding="utf-8")
    on_disk = {path.name: path.read_bytes() for path in course.iterdir()}

    manager = CourseContentsManager(root_dir=str(tmp_path))
    model = asyncio.run(manager.get("course/00_orientation.ipynb"))

    assert model["type"] == "notebook"
    assert model["content"]["metadata"]["language_info"] == PYTHON_LANGUAGE_INFO
    assert marker in model["content"]["cells"][-1]["source"], "the cells come from the newer .py twin"
    assert {path.name: path.read_bytes() for path in course.iterdir()} == on_disk, "reading wrote a file"
    listing = asyncio.run(manager.get("course/00_orientation.ipynb", content=False))
    assert listing["content"] is None


def test_the_shipped_server_config_selects_the_manager() -> None:
    config = json.loads((REPO / "jupyter" / "jupyter_server_config.json").read_text(encoding="utf-8"))
    assert config["ServerApp"]["contents_manager_class"] == "mlcraft.classroom.lab.CourseContentsManager"
