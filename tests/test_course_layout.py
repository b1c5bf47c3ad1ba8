"""Invariants of the course tree that the release and sync checks do not cover."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jupytext
import pytest
from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

from mlcraft.classroom.grading.paths import list_modules
from mlcraft.course import MODULES as COURSE_MODULES
from mlcraft.course import module_table

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "mlcraft"
LESSONS = sorted((REPO / "course").glob("*.py"))
SOURCES = sorted((REPO / "solutions").glob("*/*.py"))
MODULES = list_modules(REPO / "solutions")


def test_every_module_has_a_lesson_a_source_and_a_release() -> None:
    assert MODULES
    for module in MODULES:
        assert (REPO / "course" / f"{module}.py").is_file(), module
        assert (REPO / "course" / f"{module}.ipynb").is_file(), module
        assert (REPO / "solutions" / module / f"{module}.py").is_file(), module
        assert (REPO / "exercises" / module / f"{module}.ipynb").is_file(), module


@pytest.mark.parametrize("path", LESSONS + SOURCES, ids=lambda p: p.name)
def test_first_code_cell_installs_on_colab_only(path: Path) -> None:
    nb = jupytext.read(path)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert 'if "google.colab" in sys.modules:' in first.source, f"{path}: first code cell must be the Colab set-up cell"
    assert "mlcraft[course] @ git+" in first.source, (
        f"{path}: Colab installs the [course] extra, not the classroom stack"
    )
    assert "pip" in first.source


def test_course_and_solutions_are_paired_exercises_are_not() -> None:
    for folder in ("course", "solutions/00_orientation"):
        config_file = find_jupytext_configuration_file(str(REPO / folder))
        assert config_file is not None, folder
        config = load_jupytext_configuration_file(config_file)
        assert "py:percent" in str(config.formats), folder
    for release in (REPO / "exercises").glob("*/*.ipynb"):
        assert find_jupytext_configuration_file(str(release.parent)) is None, f"{release} would be paired"
        assert "jupytext" not in jupytext.read(release).metadata


def test_exercises_hold_only_notebooks_and_no_gradebook_is_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in tracked if f.startswith("exercises/") and not f.endswith(".ipynb")]
    assert not [f for f in tracked if Path(f).name == "gradebook.db" or f.startswith(".venv/")]


@pytest.mark.parametrize("module", MODULES)
def test_every_assignment_has_a_spec_table_naming_every_test_cell(module: str) -> None:
    from nbgrader.utils import is_grade, is_solution

    from mlcraft.classroom.grading.notebooks import read_notebook

    spec = REPO / "tests" / "assignments" / module / "SPEC.md"
    assert spec.is_file(), f"{module}: write the spec-clause table {spec.relative_to(REPO)} (CONTRIBUTING.md)"
    text = spec.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("|") and line.strip("|-: ")]
    clauses = rows[1:]  # the first row is the header
    assert len(clauses) >= 10, f"{module}: SPEC.md has only {len(clauses)} clauses"
    for row in clauses:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) >= 3 and cells[-1], f"{module}: a clause without its check: {row}"
    nb = read_notebook(REPO / "solutions" / module / f"{module}.ipynb")
    tests = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if is_grade(c) and not is_solution(c)]
    missing = [t for t in tests if t not in text]
    assert not missing, f"{module}: SPEC.md never names test cell(s) {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_every_assignment_has_enough_mutants_and_a_valid_equivalents_list(module: str) -> None:
    from mlcraft.classroom.grading.mutate import EQUIVALENTS_FILE, generate_mutants, load_equivalents
    from mlcraft.classroom.grading.notebooks import read_notebook

    mutants = generate_mutants(read_notebook(REPO / "solutions" / module / f"{module}.ipynb"))
    assert len(mutants) >= 150, f"{module}: only {len(mutants)} mutants; mutation testing needs more to mean much"
    listed = load_equivalents(REPO / "tests" / "assignments" / module / EQUIVALENTS_FILE)
    generated = {m.id for m in mutants}
    stale = sorted(set(listed) - generated)
    assert not stale, f"{module}: {EQUIVALENTS_FILE} lists mutants that are no longer generated: {stale}"


# ----------------------------------------------------------------------------- the module map
def test_the_module_map_lists_exactly_the_modules_on_disk() -> None:
    assert list(COURSE_MODULES) == MODULES, "mlcraft.course.MODULES and solutions/ disagree"
    for module in COURSE_MODULES.values():
        for path in (module.lesson, module.solution, module.exercise, module.grading_tests, *module.tests):
            assert (REPO / path).exists(), f"{module.id}: {path} does not exist"
        for source in module.sources:
            assert (SRC / source).is_file(), f"{module.id}: src/mlcraft/{source} does not exist"


def test_every_reference_file_belongs_to_exactly_one_module() -> None:
    owners: dict[str, list[str]] = {}
    for module in COURSE_MODULES.values():
        for source in module.sources:
            owners.setdefault(source, []).append(module.id)
    shared = {"course.py"}  # the map itself
    files = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "__init__.py" and path.relative_to(SRC).parts[0] != "classroom"
    } - shared
    unowned = sorted(files - set(owners))
    twice = {source: ids for source, ids in owners.items() if len(ids) > 1}
    assert not unowned, f"add these files to a module's sources in mlcraft.course: {unowned}"
    assert not twice, f"files listed under more than one module: {twice}"


def _mlcraft_imports(path: Path) -> set[str]:
    """``mlcraft.<package>`` of every ``from mlcraft...`` import in a notebook's source."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlcraft."):
            found.add(".".join(node.module.split(".")[:2]))
        elif isinstance(node, ast.Import):
            found |= {".".join(a.name.split(".")[:2]) for a in node.names if a.name.startswith("mlcraft.")}
    return found


@pytest.mark.parametrize("module", MODULES)
def test_a_lesson_imports_only_code_of_its_module_or_earlier_ones(module: str) -> None:
    ids = list(COURSE_MODULES)
    allowed = {package for earlier in ids[: ids.index(module) + 1] for package in COURSE_MODULES[earlier].packages}
    imported = _mlcraft_imports(REPO / COURSE_MODULES[module].lesson)
    assert imported, f"lesson {module} imports nothing from mlcraft"
    assert imported <= allowed, f"lesson {module} imports {sorted(imported - allowed)}, not in its module map entry"
    own = set(COURSE_MODULES[module].packages)
    assert imported & own, f"lesson {module} imports none of its own packages {sorted(own)}"
    solution_imports = _mlcraft_imports(REPO / COURSE_MODULES[module].solution) - {"mlcraft.classroom"}
    assert solution_imports <= allowed, f"assignment {module} imports {sorted(solution_imports - allowed)}"


def test_contributing_shows_the_module_map() -> None:
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    start, end = "<!-- module-map:start -->\n", "<!-- module-map:end -->"
    assert start in text and end in text, "CONTRIBUTING.md lost its module-map markers"
    shown = text.split(start, 1)[1].split(end, 1)[0]
    assert shown == module_table(), "CONTRIBUTING.md's module table is stale: paste mlcraft.course.module_table()"


def test_make_help_lists_every_target() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:")).split()[1:]
    result = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("make ")}
    assert set(phony) == listed, (
        f"make help misses {sorted(set(phony) - listed)}, lists unknown {sorted(listed - set(phony))}"
    )


def test_habits_files_exist() -> None:
    assert "MIT License" in (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "## [Unreleased]" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    hooks = (REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert "repo: local" in hooks and "https://" not in hooks, "hooks must be local: nothing can be fetched offline"
    for hook in ("ruff check", "ruff format", "mypy", "mlcraft verify"):
        assert hook in hooks, hook


# ----------------------------------------------------------------------------- mutants by grade id
@pytest.mark.parametrize("module", MODULES)
def test_mutants_are_filed_under_the_answer_cell_they_break(module: str) -> None:
    from mlcraft.classroom.grading.notebooks import read_notebook
    from mlcraft.classroom.grading.validity import load_variants

    folder = REPO / "tests" / "assignments" / module
    load_variants(folder)  # raises on a loose file, a wrong folder or a duplicate name
    nb = read_notebook(REPO / "solutions" / module / f"{module}.ipynb")
    answers = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    folders = {p.name for p in (folder / "mutants").iterdir() if p.is_dir()}
    assert folders <= answers, f"{module}: mutant folders that are no answer cell: {sorted(folders - answers)}"


def test_a_misfiled_mutant_is_refused(tmp_path: Path) -> None:
    from mlcraft.classroom.grading.validity import load_variants

    body = '"""A mistake."""\n# fails: test-x\n# %% grade_id=x-answer\ndef f():\n    return 1\n'
    (tmp_path / "mutants").mkdir()
    (tmp_path / "mutants" / "loose.py").write_text(body)
    with pytest.raises(ValueError, match="under the answer cell it breaks"):
        load_variants(tmp_path)
    (tmp_path / "mutants" / "loose.py").unlink()
    (tmp_path / "mutants" / "y-answer").mkdir()
    (tmp_path / "mutants" / "y-answer" / "wrong.py").write_text(body)
    with pytest.raises(ValueError, match="filed under 'y-answer' but replaces"):
        load_variants(tmp_path)
    (tmp_path / "mutants" / "y-answer" / "wrong.py").rename(tmp_path / "mutants" / "y-answer" / "x.py")
    (tmp_path / "mutants" / "x-answer").mkdir()
    (tmp_path / "mutants" / "y-answer" / "x.py").rename(tmp_path / "mutants" / "x-answer" / "one.py")
    (tmp_path / "mutants" / "y-answer" / "one.py").write_text(body.replace("x-answer", "y-answer"))
    with pytest.raises(ValueError, match="unique"):
        load_variants(tmp_path)
    (tmp_path / "mutants" / "y-answer" / "one.py").rename(tmp_path / "mutants" / "y-answer" / "two.py")
    assert [v.name for v in load_variants(tmp_path)] == ["one", "two"]
