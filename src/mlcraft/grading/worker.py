"""Grade one submission in its own process: ``python -m mlcraft.grading.worker MODULE STUDENT``.

Run with the grading workspace as working directory (its ``nbgrader_config.py`` is read from
there). Prints one JSON line ``{"ok": bool, "stage": str, "log": str}`` and exits 0 when both
autograding and feedback generation succeeded, 1 otherwise. Running each submission in a
fresh process means a submission that crashes nbgrader cannot take the others down.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from traitlets.config.loader import PyFileConfigLoader


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m mlcraft.grading.worker MODULE STUDENT", file=sys.stderr)
        return 2
    module, student = argv
    config = PyFileConfigLoader("nbgrader_config.py", path=str(Path.cwd())).load_config()
    api = NbGraderAPI(config=config)
    result = api.autograde(module, student, force=True, create=True)
    stage = "autograde"
    if result.get("success"):
        result = api.generate_feedback(module, student, force=True)
        stage = "feedback"
    ok = bool(result.get("success"))
    log = str(result.get("log", "")) + str(result.get("error", ""))
    print(json.dumps({"ok": ok, "stage": stage, "log": log[-4000:]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
