"""Dependencies: what src imports is declared, private-API libraries are bounded and checked at
run time, and each extra installs what its use needs."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from mlcraft.classroom.compat import SUPPORTED, parse_version, unsupported_versions

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]

#: import name -> distribution name, where they differ
DISTRIBUTIONS = {
    "IPython": "ipython",
    "jupyter_client": "jupyter-client",
    "jupyter_core": "jupyter-core",
    "jupyter_server": "jupyter-server",
    "mlflow": "mlflow-skinny",
    "sklearn": "scikit-learn",
    "xgboost": "xgboost-cpu",
    "yaml": "pyyaml",
    "zmq": "pyzmq",
}
#: Imported by src but provided by the test runner itself (the pytest plugin).
RUNNER = {"pytest"}


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";")[0]
    for stop in "<>=![ ":
        name = name.split(stop)[0]
    return name.strip().lower()


def _declared(*groups: str) -> set[str]:
    names = {_requirement_name(r) for r in PYPROJECT["dependencies"]}
    extras = PYPROJECT["optional-dependencies"]
    pending = list(groups)
    while pending:
        group = pending.pop()
        for requirement in extras[group]:
            name = _requirement_name(requirement)
            if name == "mlcraft":
                pending += requirement.split("[")[1].split("]")[0].split(",")
            else:
                names.add(name)
    return names


def _third_party_imports(*folders: str) -> set[str]:
    return _imports_of([p for folder in folders for p in (REPO / "src" / "mlcraft" / folder).rglob("*.py")])


def _imports_of(paths: list[Path]) -> set[str]:
    """Distribution names of the third-party modules the files at ``paths`` import."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
    return {
        DISTRIBUTIONS.get(name, name).lower().replace("_", "-")
        for name in found - set(sys.stdlib_module_names) - {"mlcraft", "__future__"} - RUNNER
    }


ML_LAYERS = ("utils", "config", "ops", "data", "models", "training", "evaluation", "recipes", "inference")


@pytest.mark.parametrize(
    ("folders", "groups"),
    [
        # pycocotools and matplotlib are imported inside the functions that need them
        (ML_LAYERS, ("course",)),
        (("mlops",), ("mlops", "course")),
        (("classroom",), ("classroom",)),
    ],
    ids=["ml-layers", "mlops", "classroom"],
)
def test_everything_src_imports_is_declared(folders: tuple[str, ...], groups: tuple[str, ...]) -> None:
    missing = _third_party_imports(*folders) - _declared(*groups)
    assert not missing, f"imported by src/mlcraft/{{{','.join(folders)}}} but not declared: {sorted(missing)}"


def test_everything_lessons_and_exercises_import_is_in_the_course_extra() -> None:
    """A learner installs ``mlcraft[course]`` (the Colab cell of every notebook): that must run them all."""
    notebooks = [*(REPO / "course").glob("[0-9][0-9]_*.py"), *(REPO / "solutions").glob("*/[0-9][0-9]_*.py")]
    assert len(notebooks) >= 2
    missing = _imports_of(notebooks) - _declared("course")
    assert not missing, f"imported by a lesson or exercise but not in mlcraft[course]: {sorted(missing)}"


def test_the_serving_extra_leaves_out_the_classroom_stack() -> None:
    serving = _declared("mlops")
    assert not serving & {"nbgrader", "nbclient", "nbconvert", "jupyter-server", "ipykernel", "typer"}, serving
    assert {"fastapi", "uvicorn", "onnxruntime", "mlflow-skinny", "torch"} <= serving


def test_the_serving_modules_import_without_the_classroom_stack() -> None:
    """`pip install .[mlops]` gives a working server: the app builds with nbgrader and friends hidden."""
    code = (
        "import sys\n"
        "for name in ('nbgrader', 'nbclient', 'nbconvert', 'jupyter_server', 'ipykernel', 'typer', 'rich', "
        "'pycocotools', 'matplotlib', 'scipy', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "from mlcraft.mlops.serving import create_app\n"
        "import mlcraft.mlops, mlcraft.recipes\n"
        "app = create_app(lambda: (_ for _ in ()).throw(RuntimeError('no model here')))\n"
        "print('ok', type(app).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok FastAPI" in result.stdout, result.stderr[-2000:]


def test_without_the_classroom_extra_the_command_says_what_to_install() -> None:
    code = "import sys\nsys.modules['typer'] = None\nfrom mlcraft.classroom import main\nmain()\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "pip install 'mlcraft[classroom]'" in result.stderr and "typer" in result.stderr, result.stderr


def test_private_api_libraries_are_bounded_as_the_run_time_check_says() -> None:
    requirements = [
        *PYPROJECT["dependencies"],
        *(r for group in PYPROJECT["optional-dependencies"].values() for r in group),
    ]
    for name, (low, high) in SUPPORTED.items():
        requirement = next(r for r in requirements if _requirement_name(r) == name)
        assert requirement.replace(" ", "").startswith(f"{name}>={low},<{high}"), (requirement, low, high)


def test_installed_versions_are_supported() -> None:
    assert unsupported_versions() == [], "the environment has a library mlcraft has not been tested with"


@pytest.mark.parametrize(
    ("installed", "fails"),
    [("0.9.6", False), ("0.10.0", True), ("1.0", True), ("0.9.1", True), ("0.9.2", False), ("0.10.0rc1", True)],
)
def test_an_unknown_major_version_fails_loudly(installed: str, fails: bool) -> None:
    def lookup(name: str) -> str:
        if name != "nbgrader":
            raise PackageNotFoundError(name)
        return installed

    problems = unsupported_versions(lookup)
    assert bool(problems) is fails, problems
    if fails:
        assert (
            f"nbgrader {installed} is not supported" in problems[0]
            and "pip install 'nbgrader>=0.9.2,<0.10'" in problems[0]
        )


def test_parse_version() -> None:
    assert parse_version("2.14.1+cpu") == (2, 14, 1)
    assert parse_version("26.1.0") == (26, 1, 0)
    assert parse_version("0.10.0rc1") == (0, 10, 0)
    with pytest.raises(ValueError, match="not a version"):
        parse_version("abc")


def test_torch_and_python_lower_bounds_are_what_the_code_needs() -> None:
    assert PYPROJECT["requires-python"] == ">=3.11"
    torch_req = next(r for r in PYPROJECT["dependencies"] if _requirement_name(r) == "torch")
    assert parse_version(torch_req.split(">=")[1]) >= (2, 6), (
        "torch.load's weights_only default and export(dynamo=True)"
    )
    assert parse_version(version("torch")) >= (2, 6)
