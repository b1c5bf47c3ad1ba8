"""Jobs for the fork-server tests (``test_grading_launcher.py``): the job file is JSON saying what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Changed by every job; a child that saw another job's change would report it.
STATE = {"jobs_seen": 0}


def run(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    STATE["jobs_seen"] += 1
    out = {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "cwd": os.getcwd()}
    out["jobs_seen"] = STATE["jobs_seen"]
    out["open_fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else []
    if job.get("spawn"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        out["grandchild"] = child.pid
    Path(argv[0]).with_suffix(".out").write_text(json.dumps(out), encoding="utf-8")
    print(job.get("stderr", ""), file=sys.stderr)
    print("to stdout, which goes nowhere")
    time.sleep(float(job.get("sleep", 0)))
    if job.get("raise"):
        raise RuntimeError(job["raise"])
    if "exit" in job:
        sys.exit(job["exit"])
    return int(job.get("code", 0))
