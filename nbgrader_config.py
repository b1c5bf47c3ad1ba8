"""nbgrader configuration for the mlcraft course.

Instructor sources live in ``solutions/``, the learner release in ``exercises/``. Everything
nbgrader writes while grading (gradebook, submitted/autograded/feedback folders) lives outside
the repository, under ``$MLCRAFT_GRADING_DIR`` (default: ``~/.local/share/mlcraft/classroom/grading``),
so no gradebook or student work can be committed by accident.

The Jupytext ``.py`` twins of the assignment sources hold the solutions and hidden tests:
they are ignored here so ``generate_assignment`` never copies them into ``exercises/``.
"""

from pathlib import Path

from mlcraft.classroom.grading.paths import grading_dir, nbgrader_ignore_patterns

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (injected by traitlets)

_root = Path(__file__).resolve().parent
_grading = grading_dir()
_grading.mkdir(parents=True, exist_ok=True)

c.CourseDirectory.root = str(_root)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = str(_grading / "submitted")
c.CourseDirectory.autograded_directory = str(_grading / "autograded")
c.CourseDirectory.feedback_directory = str(_grading / "feedback")
c.CourseDirectory.db_url = f"sqlite:///{_grading / 'gradebook.db'}"
c.CourseDirectory.ignore = nbgrader_ignore_patterns(_root / "solutions")

# A learner who deletes a graded cell must not silently score 0 for it: restore it.
c.OverwriteCells.add_missing_cells = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ExecutePreprocessor.timeout = 120
