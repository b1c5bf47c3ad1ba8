"""`mlcraft check` vs nbgrader's own validator on the same answered exercise notebook.

Both execute the notebook in a fresh kernel and score its test cells; the ratio shows what
our scoring and reporting add on top of execution. Prints the median of ``--repeats`` runs.

    python benchmarks/bench_check.py [--module 00_orientation] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.validator import Validator

from mlcraft.classroom.grading.checker import check_notebook
from mlcraft.classroom.grading.notebooks import read_notebook
from mlcraft.classroom.grading.validity import build_submission

REPO = Path(__file__).resolve().parents[1]


def _median_seconds(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="00_orientation")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    source = read_notebook(REPO / "solutions" / args.module / f"{args.module}.ipynb")
    released = read_notebook(REPO / "exercises" / args.module / f"{args.module}.ipynb")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.module}.ipynb"
        nbformat.write(build_submission(source, released), path)

        def ours() -> None:
            report = check_notebook(path)
            assert report.passed, report

        def peer() -> None:
            result = Validator().validate(str(path))
            assert not result.get("failed"), result

        t_ours = _median_seconds(ours, args.repeats)
        t_peer = _median_seconds(peer, args.repeats)
    print(f"module {args.module}, median of {args.repeats}")
    print(f"  mlcraft check        {t_ours:7.2f} s")
    print(f"  nbgrader Validator   {t_peer:7.2f} s")
    print(f"  ratio ours/peer      {t_ours / t_peer:7.2f}x")


if __name__ == "__main__":
    main()
