"""Grade one submission in its own process: ``python -m mlcraft.grading.worker MODULE STUDENT [--no-feedback]``.

Run with the grading workspace as working directory (its ``nbgrader_config.py`` is read from
there). Before autograding, the submitted notebook is compared with the source cells in the
gradebook (:mod:`mlcraft.grading.tamper`). Prints one JSON line ``{"ok": bool, "stage": str,
"log": str, "tampered": [...], "events": [...]}`` and exits 0 when autograding and feedback
generation succeeded, 1 otherwise. Running each submission in a fresh process means a
submission that crashes nbgrader cannot take the others down.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.apps import NbGraderAPI
from traitlets.config.loader import PyFileConfigLoader

from mlcraft.grading.tamper import detect_tampering

EVENTS_FILE = "events.json"


def _tampering(config: Any, module: str, student: str) -> list[str]:
    submitted = Path(config.CourseDirectory.submitted_directory) / student / module / f"{module}.ipynb"
    nb = nbformat.read(submitted, as_version=4)
    return [str(t) for t in detect_tampering(nb, config.CourseDirectory.db_url, module, module)]


def main(argv: list[str]) -> int:
    feedback = "--no-feedback" not in argv
    argv = [a for a in argv if a != "--no-feedback"]
    if len(argv) != 2:
        print("usage: python -m mlcraft.grading.worker MODULE STUDENT [--no-feedback]", file=sys.stderr)
        return 2
    module, student = argv
    config = PyFileConfigLoader("nbgrader_config.py", path=str(Path.cwd())).load_config()
    tampered = _tampering(config, module, student)
    api = NbGraderAPI(config=config)
    result = api.autograde(module, student, force=True, create=True)
    stage = "autograde"
    if result.get("success") and feedback:
        result = api.generate_feedback(module, student, force=True)
        stage = "feedback"
    ok = bool(result.get("success"))
    log = str(result.get("log", "")) + str(result.get("error", ""))
    events_file = Path.cwd() / EVENTS_FILE
    events = json.loads(events_file.read_text(encoding="utf-8")) if events_file.is_file() else []
    payload = {"ok": ok, "stage": stage, "log": log[-4000:], "tampered": tampered, "events": events}
    print(json.dumps(payload))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
