"""The contents manager `make lab` serves the course with: Jupytext pairing, and notebooks that open
unmodified.

JupyterLab copies the running kernel's ``language_info`` into a notebook's metadata as soon as the
kernel is ready, and marks the notebook modified when that changes it. The course's notebooks are
stored without ``language_info`` (its Python version differs from one machine to the next), so
every lesson and exercise showed the unsaved-changes dot right after opening, before any edit.
:class:`CourseContentsManager` fills in the ``language_info`` the local Python kernel will report
when a notebook without one is read, so the kernel's update changes nothing. Files on disk are
only written by a save, as before.

It is Jupytext's contents manager (pairing ``course/*.ipynb`` with its ``.py`` twin, as
``course/jupytext.toml`` asks) on Jupyter Server's default ``AsyncLargeFileManager``; `make setup`
selects it with ``jupyter/jupyter_server_config.json``.
"""

from __future__ import annotations

import copy
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

#: What ``ipykernel`` (the ``python3`` kernel of this environment) reports as its language.
PYTHON_LANGUAGE_INFO: dict[str, Any] = copy.deepcopy(IPythonKernel.language_info)

_JupytextContentsManager: Any = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)


def fill_language_info(notebook: dict[str, Any]) -> bool:
    """Give a Python notebook without ``metadata.language_info`` the local kernel's; whether it did.

    A notebook for another language, or one that has a ``language_info`` already (a learner's saved
    work), is left as it is.
    """
    metadata = notebook.setdefault("metadata", {})
    if "language_info" in metadata:
        return False
    kernelspec = metadata.get("kernelspec") or {}
    if kernelspec.get("language", "python") != "python":
        return False
    metadata["language_info"] = copy.deepcopy(PYTHON_LANGUAGE_INFO)
    return True


class CourseContentsManager(_JupytextContentsManager):  # type: ignore[misc]
    """Jupytext's contents manager whose notebooks open unmodified in JupyterLab (see the module)."""

    async def get(
        self, path: str, content: bool = True, type: str | None = None, format: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        model: dict[str, Any] = await super().get(path, content=content, type=type, format=format, **kwargs)
        if content and model.get("type") == "notebook" and isinstance(model.get("content"), dict):
            fill_language_info(model["content"])
        return model
