"""Keep hidden tests honest in a kernel the student's code also runs in.

A submission can replace the functions a test cell relies on: ``torch.allclose = lambda *a,
**k: True``, ``numpy.testing.assert_allclose = print``, ``assert_close = lambda *a, **k: None``
in the notebook's namespace, or ``torch.Tensor.__bool__``. When grading, the kernel calls
:func:`install` at start-up (before any student code) to record the originals, and the grader
calls :func:`restore` silently before each graded cell to put them back, in the modules, in
``builtins`` and in the notebook namespace.

This defends against patching by assignment; code that rewrites this module's own records
(through ``gc`` or ``ctypes``) is out of reach of any in-process check, which is why hidden
tests also compare values and the kernel runs in a sandbox.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["PROTECTED", "install", "restore"]

#: ``module: attribute names`` recorded at start-up and restored before each graded cell.
PROTECTED: dict[str, tuple[str, ...]] = {
    "builtins": ("abs", "all", "any", "bool", "float", "int", "isinstance", "len", "max", "min", "print", "sum"),
    "math": ("isclose", "isnan", "isinf", "isfinite"),
    "numpy": ("allclose", "isclose", "array_equal", "asarray", "all", "any", "abs", "isnan", "isfinite"),
    "numpy.testing": ("assert_allclose", "assert_array_equal", "assert_equal", "assert_almost_equal"),
    "torch": ("allclose", "isclose", "equal", "all", "any", "abs", "isnan", "isfinite", "as_tensor", "tensor"),
    "torch.testing": ("assert_close",),
    "mlcraft.testing": ("assert_close", "call_without", "forbid_calls", "default_tolerances"),
    "mlcraft.testing.tolerances": ("assert_close", "default_tolerances", "_compare", "_to_tensor"),
    "mlcraft.testing.forbidden": ("call_without", "forbid_calls"),
}
# Every attribute of these classes is recorded (dunder methods included: __bool__, __eq__...).
_CLASSES = (
    ("torch", "Tensor"),
    ("numpy", "ndarray"),
    ("IPython.core.interactiveshell", "InteractiveShell"),
    ("ipykernel.zmqshell", "ZMQInteractiveShell"),
)
# Shell methods a submission could override on the running shell to hide a failing test.
_SHELL_METHODS = ("run_cell", "run_cell_async", "run_code", "run_ast_nodes", "showtraceback", "_showtraceback")

_saved: dict[str, tuple[Any, dict[str, Any]]] = {}
_saved_classes: dict[tuple[str, str], tuple[type, dict[str, Any]]] = {}


def install() -> None:
    """Import the protected modules that are installed and record their functions."""
    for name, attributes in PROTECTED.items():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        _saved[name] = (module, {a: getattr(module, a) for a in attributes if hasattr(module, a)})
    for module_name, class_name in _CLASSES:
        if module_name in sys.modules:
            cls = getattr(sys.modules[module_name], class_name)
            _saved_classes[(module_name, class_name)] = (cls, dict(vars(cls)))


def restore(namespace: dict[str, Any] | None = None) -> list[str]:
    """Put back every recorded function that was replaced; returns ``module.name`` of each.

    In ``namespace`` (the notebook's globals), the test helpers (``assert_close``...) and the
    module names ``torch``, ``np`` and ``numpy`` are rebound to the originals when they were
    replaced. Other names are the student's and are left alone.
    """
    changed: list[str] = []
    for name, (module, functions) in _saved.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module
            changed.append(name)
        for attribute, original in functions.items():
            if module.__dict__.get(attribute) is not original:
                setattr(module, attribute, original)
                changed.append(f"{name}.{attribute}")
    for (module_name, class_name), (cls, members) in _saved_classes.items():
        changed += _restore_class(cls, members, f"{module_name}.{class_name}")
    changed += _restore_shell()
    if namespace is not None:
        changed += _restore_namespace(namespace)
    return changed


def _restore_shell() -> list[str]:
    """Undo ``set_custom_exc`` (a handler that swallows errors) and per-instance method overrides."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return []
    changed = []
    if shell.custom_exceptions:
        shell.custom_exceptions = ()
        changed.append("shell.custom_exceptions")
    for name in _SHELL_METHODS:
        if name in vars(shell):
            delattr(shell, name)
            changed.append(f"shell.{name}")
    return changed


def _restore_class(cls: type, members: dict[str, Any], label: str) -> list[str]:
    changed = []
    current = dict(vars(cls))
    for attribute, original in members.items():
        if current.get(attribute) is not original:
            try:
                setattr(cls, attribute, original)
                changed.append(f"{label}.{attribute}")
            except (AttributeError, TypeError):
                continue
    # A new attribute that shadows a base class's (torch.Tensor.__bool__ lives in the C base).
    for attribute in [a for a in current if a not in members]:
        if any(hasattr(base, attribute) for base in cls.__mro__[1:]):
            try:
                delattr(cls, attribute)
                changed.append(f"{label}.{attribute}")
            except (AttributeError, TypeError):
                continue
    return changed


def _restore_namespace(namespace: dict[str, Any]) -> list[str]:
    changed = []
    helpers = _saved.get("mlcraft.testing", (None, {}))[1]
    for attribute, original in helpers.items():
        if attribute in namespace and namespace[attribute] is not original:
            namespace[attribute] = original
            changed.append(f"namespace.{attribute}")
    for alias, name in (("torch", "torch"), ("np", "numpy"), ("numpy", "numpy")):
        if alias in namespace and name in _saved and namespace[alias] is not _saved[name][0]:
            namespace[alias] = _saved[name][0]
            changed.append(f"namespace.{alias}")
    return changed
