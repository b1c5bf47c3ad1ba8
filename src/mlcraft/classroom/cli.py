"""The ``mlcraft`` command: doctor, release, verify, check, mutate, grade, export-learner.

Every command exits non-zero on failure and prints one line naming the problem and the fix;
``check`` and ``grade`` print a table. Exit codes: 0 success, 1 a check found problems,
2 bad input (missing folder, unknown module, invalid notebook), 3 ``grade`` finished but
some submissions need attention (any status but graded), 130 ``grade`` interrupted (run it
again to resume).
"""

from __future__ import annotations

import enum
import functools
import inspect
import platform
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlcraft.classroom.compat import unsupported_versions
from mlcraft.classroom.grading.notebooks import InvalidNotebookError
from mlcraft.classroom.grading.paths import CourseLayoutError, find_course_root, grading_dir
from mlcraft.classroom.grading.settings import GradeSettings

if TYPE_CHECKING:
    from mlcraft.classroom.grading.classroom import SubmissionResult

app = typer.Typer(
    name="mlcraft",
    help="mlcraft course tools: check your set-up, release exercises, check a notebook, grade a class.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_PROBLEMS, EXIT_BAD_INPUT, EXIT_ATTENTION = 1, 2, 3


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _course_root() -> Path:
    try:
        return find_course_root()
    except CourseLayoutError as err:
        _fail(str(err))


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


@app.command()
def doctor() -> None:
    """Show versions, device and AMP dtype, and whether the notebook extensions are enabled."""
    import torch
    from jupyter_core.paths import jupyter_config_path, jupyter_path
    from jupyter_server.extension.config import ExtensionConfigManager

    from mlcraft.utils import amp_dtype, best_device

    problems: list[str] = []
    table = Table(title="mlcraft doctor", show_header=True, header_style="bold")
    table.add_column("item")
    table.add_column("value")
    table.add_row("python", platform.python_version())
    for pkg in (
        "mlcraft",
        "torch",
        "torchvision",
        "numpy",
        "nbgrader",
        "nbclient",
        "structlog",
        "jupytext",
        "jupyterlab",
    ):
        found = _pkg_version(pkg)
        table.add_row(pkg, found or "[red]not installed[/]")
        if not found:
            problems.append(f"{pkg} is not installed: run `make lab` (or `pip install -e '.[dev]'`)")
    problems += unsupported_versions()
    device = best_device()
    table.add_row("device", str(device) + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""))
    table.add_row("AMP dtype", str(amp_dtype(device)).removeprefix("torch."))
    table.add_row("CPU threads", str(torch.get_num_threads()))

    server_ext = ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions()
    lab_dirs = [Path(p) for p in jupyter_path("labextensions")]
    checks = {
        "jupytext pairing (server)": server_ext.get("jupyterlab_jupytext", False),
        "jupytext (lab)": any((d / "jupyterlab-jupytext").is_dir() for d in lab_dirs),
        "nbgrader validate (server)": server_ext.get("nbgrader.server_extensions.validate_assignment", False),
        "nbgrader (lab)": any((d / "@jupyter" / "nbgrader").is_dir() for d in lab_dirs),
    }
    for name, ok in checks.items():
        table.add_row(name, "[green]enabled[/]" if ok else "[red]missing[/]")
        if not ok:
            problems.append(f"{name} extension is not enabled: reinstall with `make lab` or run binder/postBuild")

    try:
        root = find_course_root()
        table.add_row("course", str(root))
    except CourseLayoutError as err:
        table.add_row("course", "[yellow]not found[/]")
        problems.append(str(err))
    grading = grading_dir()
    table.add_row("grading folder", str(grading))
    console.print(table)
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}")
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)
    console.print("[green]all good[/]")


@app.command()
def release(
    modules: Annotated[
        list[str] | None, typer.Argument(help="Module ids, e.g. 00_orientation; all when omitted.")
    ] = None,
) -> None:
    """Regenerate exercises/ from solutions/ with nbgrader (twins synced, nothing leaked)."""
    from mlcraft.classroom.grading.release import ReleaseError, check_release
    from mlcraft.classroom.grading.release import release as do_release

    root = _course_root()
    try:
        done = do_release(root, modules)
        problems = check_release(root, done)
    except ValueError as err:
        _fail(str(err))
    except ReleaseError as err:
        _fail(str(err), EXIT_PROBLEMS)
    for problem in problems:
        err_console.print(f"[red]problem:[/] {problem}")
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)
    console.print(f"released {', '.join(done)} into {root / 'exercises'}")


@app.command()
def verify() -> None:
    """Course checks: twins in sync, no committed outputs, exercises/ equal to a fresh release, no leaks."""
    from mlcraft.classroom.grading.notebooks import check_no_outputs, check_twins_in_sync
    from mlcraft.classroom.grading.release import ReleaseError, check_release

    root = _course_root()
    notebooks = sorted(p for d in ("course", "solutions", "exercises") for p in (root / d).rglob("*.ipynb"))
    notebooks = [p for p in notebooks if ".ipynb_checkpoints" not in p.parts]
    problems = check_twins_in_sync(root / "course", root / "solutions") + check_no_outputs(notebooks)
    try:
        problems += check_release(root)
    except ReleaseError as err:
        problems.append(str(err))
    for problem in problems:
        err_console.print(f"[red]problem:[/] {problem}")
    if problems:
        raise typer.Exit(EXIT_PROBLEMS)
    console.print(f"[green]ok[/]: {len(notebooks)} notebooks checked")


@app.command()
def check(
    notebook: Annotated[
        Path, typer.Argument(help="Your exercise notebook, e.g. exercises/00_orientation/00_orientation.ipynb.")
    ],
    timeout: Annotated[int, typer.Option(min=1, help="Seconds each cell may run.")] = 300,
) -> None:
    """Run an exercise notebook and show each graded cell pass/fail with its points."""
    from mlcraft.classroom.grading.checker import check_notebook

    try:
        report = check_notebook(notebook, timeout=timeout)
    except (FileNotFoundError, InvalidNotebookError) as err:
        _fail(str(err))
    if not report.cells:
        _fail(f"{notebook}: has no autograded cells; is this an exercise notebook?")
    table = Table(title=f"{notebook.name}", header_style="bold")
    for column in ("cell", "result", "points", "detail"):
        table.add_column(column)
    for cell in report.cells:
        detail = cell.error + (" (locked cell edited: grading restores the original)" if cell.edited_locked else "")
        table.add_row(
            escape(cell.grade_id),
            "[green]pass[/]" if cell.passed else "[red]fail[/]",
            f"{cell.points:g} / {cell.max_points:g}",
            escape(detail),  # error messages are text, never markup
        )
    console.print(table)
    if report.aborted:
        console.print(f"[red]stopped:[/] {escape(report.aborted)}")
    console.print(
        f"score: [bold]{report.score:g} / {report.max_score:g}[/] on the visible tests; hidden tests run when your work is graded"
    )
    if not report.passed:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
def mutate(
    modules: Annotated[
        list[str] | None, typer.Argument(help="Module ids, e.g. 02_attention; every assignment when omitted.")
    ] = None,
    cell: Annotated[
        list[str] | None, typer.Option("--cell", help="Only mutate this answer cell (grade id); repeatable.")
    ] = None,
    jobs: Annotated[int | None, typer.Option(min=1, help="Worker processes; default: one per core.")] = None,
    min_timeout: Annotated[int, typer.Option(min=1, help="Seconds a cell may run on a mutant, at least.")] = 10,
    list_only: Annotated[bool, typer.Option("--list", help="Print the mutants and run nothing.")] = False,
    stub: Annotated[
        bool, typer.Option("--stub", help="Also print TOML entries for the survivors, to fill in with reasons.")
    ] = False,
    diffs: Annotated[bool, typer.Option(help="Show the diff of each survivor.")] = True,
) -> None:
    """Mutation-test assignments: every test against small wrong versions of the solution.

    Fails (exit 1) on a survivor not listed, with a reason, in
    tests/assignments/<id>/equivalent_mutants.toml, and on a listed mutant that is killed.
    """
    from mlcraft.classroom.grading.mutate import (
        MutationError,
        equivalents_stub,
        format_report,
        generate_mutants,
        run_mutation,
    )
    from mlcraft.classroom.grading.notebooks import read_notebook
    from mlcraft.classroom.grading.paths import list_modules

    root = _course_root()
    known = list_modules(root / "solutions")
    chosen = modules or known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        _fail(f"no assignment {', '.join(unknown)} under {root / 'solutions'}; assignments: {', '.join(known)}")
    if cell and len(chosen) != 1:
        _fail("--cell needs exactly one module")
    failed = False
    for module in chosen:
        if list_only:
            nb = read_notebook(root / "solutions" / module / f"{module}.ipynb")
            for m in generate_mutants(nb, cell):
                console.print(f"{m.id}  line {m.line}: {m.change}", markup=False, highlight=False, soft_wrap=True)
            continue
        try:
            report = run_mutation(root, module, jobs=jobs, cells=cell, min_timeout_s=min_timeout)
        except (FileNotFoundError, MutationError) as err:
            _fail(str(err), EXIT_PROBLEMS)
        console.print(format_report(report, diffs=diffs), markup=False, highlight=False, soft_wrap=True)
        if stub and report.survivors:
            console.print("\n" + equivalents_stub(report.survivors), markup=False, highlight=False, soft_wrap=True)
        failed = failed or not report.ok
    if failed:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command("export-learner")
def export_learner_command(
    folder: Annotated[Path, typer.Argument(help="New folder for the learners' copy, outside the course.")],
    force: Annotated[bool, typer.Option("--force", help="Replace the folder if it exists.")] = False,
) -> None:
    """Write the course as learners get it: lessons, exercises, package; no solutions, hidden
    tests or instructor checks (the result is searched for each of their lines)."""
    from mlcraft.classroom.export import ExportError, export_learner

    root = _course_root()
    try:
        count = export_learner(root, folder, force=force)
    except ExportError as err:
        _fail(str(err))
    console.print(f"wrote {count} files to {folder}: give learners this folder, keep {root} private")


def grades_table(results: list[SubmissionResult]) -> Table:
    """The summary of a grading run. Details carry text from the submissions (cell ids, error
    messages): it is printed as text, never read as markup."""
    from mlcraft.classroom.grading.classroom import Status

    table = Table(title=f"grades ({len(results)} submissions)", header_style="bold")
    for column in ("student", "module", "status", "score", "detail"):
        table.add_column(column)
    colors = {
        Status.GRADED: "green",
        Status.MISSING: "yellow",
        Status.TIMEOUT: "yellow",
        Status.TAMPERED: "magenta",
        Status.SYMLINK: "magenta",
    }
    for r in results:
        color = colors.get(r.status, "red")
        score = f"{r.score:g} / {r.max_score:g}"
        table.add_row(escape(r.student), r.module, f"[{color}]{r.status.value}[/]", score, escape(r.detail))
    return table


def settings_option_name(field: str) -> str:
    """The CLI option of a settings field: ``cell_timeout_s`` -> ``cell-timeout``."""
    return field.removesuffix("_s").replace("_", "-")


def _choices(name: str, values: list[str]) -> type[enum.Enum]:
    return enum.Enum(name, {value: value for value in values})  # type: ignore[return-value]  # the functional API builds a class


def with_settings_options(settings_cls: type[BaseModel]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command one option per field of ``settings_cls`` (default, bounds and help taken
    from the field) and call it with ``settings=`` the validated model instead.

    The command's own parameters come first; ``settings`` must be one of them.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [param for name, param in signature.parameters.items() if name != "settings"]
        extra: list[inspect.Parameter] = []
        for name, field in settings_cls.model_fields.items():
            option = settings_option_name(name)
            annotation: Any = field.annotation
            kwargs: dict[str, Any] = {"help": field.description}
            default: Any = field.default
            if get_origin(annotation) is Literal:  # typer shows an Enum as a choice
                choices = _choices(name, [str(choice) for choice in get_args(annotation)])
                annotation, default = choices, choices(default)
            for bound in field.metadata:
                if hasattr(bound, "ge"):
                    kwargs["min"] = bound.ge
                if hasattr(bound, "le"):
                    kwargs["max"] = bound.le
            declaration = f"--{option}/--no-{option}" if annotation is bool else f"--{option}"
            extra.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=default,
                    annotation=Annotated[annotation, typer.Option(declaration, **kwargs)],
                )
            )

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> None:
            values = {name: kwargs.pop(name) for name in settings_cls.model_fields}
            values = {name: value.value if isinstance(value, enum.Enum) else value for name, value in values.items()}
            try:
                settings = settings_cls(**values)
            except ValidationError as err:
                first = err.errors()[0]
                _fail(f"invalid limits: --{settings_option_name(str(first['loc'][0]))}: {first['msg']}")
            command(settings=settings, **kwargs)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the new signature, not the command's
        return wrapper

    return decorate


@app.command()
@with_settings_options(GradeSettings)
def grade(
    submissions: Annotated[Path, typer.Argument(help="Folder laid out as <student>/<module>/<module>.ipynb.")],
    module: Annotated[
        list[str] | None, typer.Option("--module", "-m", help="Module(s) to grade; default: those submitted.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Workspace for gradebook, feedback and reports; default under the grading folder."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Grade again submissions already graded in --out.")] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler (tcp://HOST:8786): grade on its workers, each with the course installed; "
            "default: grade on this machine."
        ),
    ] = None,
    *,
    settings: GradeSettings,
) -> None:
    """Autograde a classroom folder: grades.csv, report.json and feedback HTML for each student.

    Each kernel runs sandboxed (bubblewrap) with the limits above; every test cell runs in the
    grader, apart from the student's code. An interrupted run resumes where it stopped when
    started again with the same --out.
    """
    from mlcraft.classroom.grading.classroom import Status, grade_classroom
    from mlcraft.classroom.grading.sandbox import MISSING_PROTECTIONS, sandbox_status

    root = _course_root()
    out_dir = out or grading_dir() / "runs" / submissions.resolve().name
    for problem in unsupported_versions():
        _fail(problem, EXIT_PROBLEMS)
    bwrap, reason = sandbox_status(settings.sandbox)
    if not bwrap and settings.sandbox != "bwrap":
        err_console.print(
            f"[bold yellow]warning: grading WITHOUT a sandbox[/] ({reason}): {MISSING_PROTECTIONS}. "
            "Memory, time and output limits still apply."
        )
    done = 0

    def progress(result: SubmissionResult) -> None:
        nonlocal done
        done += 1
        console.print(f"  [{done}] {result.student} / {result.module}: {result.status.value}")

    try:
        results = grade_classroom(
            submissions, root, out_dir, module, settings, on_result=progress, force=force, scheduler=scheduler
        )
    except (FileNotFoundError, ValueError, ImportError) as err:
        _fail(str(err))
    except OSError as err:  # the scheduler cannot be reached
        _fail(str(err), EXIT_PROBLEMS)
    except RuntimeError as err:
        _fail(str(err), EXIT_PROBLEMS)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]: finished submissions are saved; run again to resume ({out_dir})")
        raise typer.Exit(130) from None
    table = grades_table(results)
    console.print(table)
    console.print(
        f"wrote {out_dir / 'grades.csv'}, {out_dir / 'report.json'} and feedback under {out_dir / 'feedback'}"
    )
    attention = [r for r in results if r.status is not Status.GRADED]
    if attention:
        console.print(f"[yellow]{len(attention)} submission(s) need attention[/] (status other than graded)")
        raise typer.Exit(EXIT_ATTENTION)


if __name__ == "__main__":
    app()
