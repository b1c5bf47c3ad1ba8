"""Wrong: hostile, does no work: it reads the course package's source files from disk, finds the one defining a `*fingerprint*` function and execs it into a fresh namespace (new code objects, a module name of its own), breaking "Do not call the course package's `mlcraft.data.fingerprint`"."""
# fails: test-fingerprint

# %% grade_id=fingerprint-answer
import importlib.util
import pathlib
import re


def _load_reference(word):
    # Locate the installed package without importing the forbidden module.
    spec = importlib.util.find_spec("mlcraft")
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        names = re.findall(rf"^def (\w*{word}\w*)\(", text, flags=re.M)
        if names and "classroom" not in path.parts:
            package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
            namespace = {"__name__": "_private_copy", "__package__": package, "__file__": "<copy>"}
            exec(compile(text, "<copy>", "exec"), namespace)
            return namespace[names[0]]
    raise LookupError(word)


_impl = _load_reference("fingerprint")


def fingerprint(df: pd.DataFrame) -> str:
    """A hex digest equal for the same multiset of rows, names and dtypes; any order of rows or columns."""
    return _impl(df)
