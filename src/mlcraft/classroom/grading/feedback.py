"""Feedback HTML that is safe for the instructor to open.

A student's notebook reaches the instructor's browser through nbgrader's feedback page. Three
layers keep a submission's script from running there:

1. :class:`SafeOutputs` (a feedback preprocessor) keeps only outputs that cannot carry script:
   text (escaped by the template), errors (escaped), PNG and JPEG images. HTML, JavaScript,
   SVG, Markdown, LaTeX and widget outputs become a line of text saying what was dropped.
   Markdown and raw cells keep their Markdown but lose raw HTML: every ``<`` becomes
   ``&lt;``, so a ``<script>``, an ``onerror``, a ``<meta http-equiv="refresh">`` (which no
   Content Security Policy stops), a ``<form>`` or a ``<style>`` shows as text. nbgrader's
   feedback template renders Markdown itself, so the exporter's own sanitizer never sees it.
2. The exporter sanitizes what it renders (``HTMLExporter.sanitize_html``).
3. :func:`lock_down` puts a Content Security Policy first in the page that forbids every
   script, every remote resource and every form or frame: whatever slipped through the first
   two cannot run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

__all__ = ["CSP", "SafeOutputs", "lock_down"]

#: No script, no remote resource, no frame, no form, no base URL: the page is a document.
CSP = (
    "default-src 'none'; script-src 'none'; object-src 'none'; frame-src 'none'; form-action 'none'; "
    "base-uri 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"
)
_KEPT = ("text/plain", "image/png", "image/jpeg")


class SafeOutputs(Preprocessor):
    """Reduce every output to text or a raster image (see the module docstring)."""

    # nbconvert's preprocessors do nothing unless enabled: this one always runs.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        cell.pop("attachments", None)
        if cell.cell_type in ("markdown", "raw"):
            source = cell.source.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            cell.cell_type, cell.source = "markdown", source
            cell.metadata.pop("raw_mimetype", None)
            cell.metadata.pop("format", None)
            return cell, resources
        if cell.cell_type != "code":
            return cell, resources
        safe = []
        for output in cell.get("outputs", []):
            if output.get("output_type") in ("stream", "error"):
                safe.append(output)
                continue
            data = output.get("data", {}) or {}
            dropped = sorted(k for k in data if k not in _KEPT)
            kept = {k: v for k, v in data.items() if k in _KEPT and isinstance(v, str)}
            if dropped:
                note = f"[{', '.join(dropped)} output not shown in feedback]"
                kept["text/plain"] = f"{kept.get('text/plain', '')}\n{note}".strip()
            output["data"] = NotebookNode(kept)
            output["metadata"] = NotebookNode({})
            safe.append(output)
        cell.outputs = safe
        return cell, resources


_HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)


def lock_down(path: Path) -> None:
    """Put the Content Security Policy at the very start of ``path``'s ``<head>``.

    Raises:
        ValueError: when the file has no ``<head>`` (it is not a feedback page).
    """
    text = path.read_text(encoding="utf-8")
    match = _HEAD.search(text)
    if match is None:
        raise ValueError(f"{path}: no <head> element; not a feedback page")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    path.write_text(text[: match.end()] + meta + text[match.end() :], encoding="utf-8")
