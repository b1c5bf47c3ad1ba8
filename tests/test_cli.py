"""The `mlcraft` command: exit codes and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlcraft.classroom.cli import app, settings_option_name
from mlcraft.classroom.grading.settings import GradeSettings

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _course_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLCRAFT_COURSE_ROOT", str(REPO))
    monkeypatch.setenv("MLCRAFT_GRADING_DIR", str(tmp_path / "grading"))


def test_doctor_reports_versions_device_and_extensions() -> None:
    result = runner.invoke(app, ["doctor"])
    for item in ("torch", "nbgrader", "jupytext", "device", "AMP dtype", "jupytext pairing (server)", "nbgrader (lab)"):
        assert item in result.output, item
    assert result.exit_code in (0, 1)
    assert (result.exit_code == 0) == ("problem:" not in result.output)


def test_check_missing_notebook_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "absent.ipynb")])
    assert result.exit_code == 2
    assert "no such notebook" in result.output


def test_check_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    result = runner.invoke(app, ["check", str(broken)])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output and "line 1" in result.output


def test_check_notebook_without_graded_cells_is_rejected(tmp_path: Path) -> None:
    plain = tmp_path / "plain.ipynb"
    plain.write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["check", str(plain)])
    assert result.exit_code == 2
    assert "no autograded cells" in result.output


def test_grade_missing_folder_and_unknown_module(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grade", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "no such folder" in result.output
    (tmp_path / "class" / "ann" / "00_orientation").mkdir(parents=True)
    result = runner.invoke(app, ["grade", str(tmp_path / "class"), "--module", "42_nope"])
    assert result.exit_code == 2 and "unknown module 42_nope" in result.output


def test_grade_rejects_bad_limits_before_grading(tmp_path: Path) -> None:
    (tmp_path / "class" / "ann" / "00_orientation").mkdir(parents=True)
    result = runner.invoke(app, ["grade", str(tmp_path / "class"), "--sandbox", "docker"])
    assert result.exit_code == 2 and "--sandbox" in result.output and "docker" in result.output, result.output
    result = runner.invoke(app, ["grade", str(tmp_path / "class"), "--memory-mb", "100"])
    assert result.exit_code == 2 and "memory-mb" in result.output and "512" in result.output, result.output
    result = runner.invoke(app, ["grade", str(tmp_path / "class"), "--workers", "65"])
    assert result.exit_code == 2 and "--workers" in result.output and "64" in result.output, result.output


def test_grade_options_are_the_grade_settings() -> None:
    """Every GradeSettings field is an option of `mlcraft grade` with the field's default and bounds."""
    import re

    result = runner.invoke(app, ["grade", "--help"], terminal_width=250, env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    for name, field in GradeSettings.model_fields.items():
        option = "--" + settings_option_name(name)
        line = next((line for line in text.splitlines() if f"{option} " in line), None)
        assert line is not None, f"{option} missing from `mlcraft grade --help`"
        bounds = {type(b).__name__: getattr(b, type(b).__name__.lower()) for b in field.metadata}
        if "Ge" in bounds:
            assert f"[{bounds['Ge']}<=x<={bounds['Le']}]" in line, line
    assert "--force" in text and "--module" in text
    # the defaults reach GradeSettings unchanged when no option is given
    assert GradeSettings().cell_timeout_s == 120 and settings_option_name("cell_timeout_s") == "cell-timeout"


def test_readme_limits_table_matches_the_grade_settings() -> None:
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\s*\| `--([a-z-]+)(?: [A-Z])?` \| ([^|]+) \|", readme, flags=re.M)
    assert len(rows) >= 10, rows
    fields = {settings_option_name(name): field for name, field in GradeSettings.model_fields.items()}
    for option, default in rows:
        assert option in fields, f"README documents --{option}, which `mlcraft grade` does not have"
        assert default.strip() == str(fields[option].default), f"README's default of --{option}"
    undocumented = set(fields) - {option for option, _ in rows} - {"workers", "sandbox", "feedback"}
    assert not undocumented, f"limits missing from README's table: {sorted(undocumented)}"


def test_release_unknown_module() -> None:
    result = runner.invoke(app, ["release", "42_nope"])
    assert result.exit_code == 2
    assert "unknown module 42_nope" in result.output and "00_orientation" in result.output


def test_outside_a_course_the_error_says_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCRAFT_COURSE_ROOT")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["release"])
    assert result.exit_code == 2
    assert "MLCRAFT_COURSE_ROOT" in result.output


@pytest.mark.slow
def test_check_on_the_blank_release_fails_with_a_table() -> None:
    result = runner.invoke(app, ["check", str(REPO / "exercises" / "00_orientation" / "00_orientation.ipynb")])
    assert result.exit_code == 1, result.output
    assert "test-logsumexp" in result.output and "fail" in result.output
    assert "score: 0 /" in result.output and "hidden tests" in result.output


def test_the_grades_table_prints_submission_text_as_text() -> None:
    from rich.console import Console

    from mlcraft.classroom.cli import grades_table
    from mlcraft.classroom.grading.classroom import Status, SubmissionResult

    hostile = "tampered: [/oops] [bold green]graded 10 / 10[/bold green] [link=https://evil.example/]x[/link] (forged)"
    result = SubmissionResult("ann", "00_orientation", Status.TAMPERED, 10.0, 10.0, detail=hostile)
    console = Console(record=True, width=400, color_system=None)
    console.print(grades_table([result]))  # malformed markup raised MarkupError here before
    text = console.export_text()
    assert "[/oops] [bold green]graded 10 / 10[/bold green]" in text and "[link=https://evil.example/]" in text
