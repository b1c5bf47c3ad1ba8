"""Read the learner's source for library calls a task forbids, outside the learner's kernel.

The dynamic check (:func:`mlcraft.testing.forbidden.watch_calls`) runs in the learner's kernel
and a hostile submission can switch it off; this check reads the submitted text instead, in
the grader. For a function under test it follows the learner's own functions and classes the
function refers to (by name, through the notebook's top-level definitions), and reports:

- a use of a forbidden function, however spelled: ``torch.logsumexp(x)``, ``x.logsumexp()``,
  ``F.softmax``, ``getattr(torch, "softmax")``, ``from torch import logsumexp as lse`` (in the
  function or at the notebook's top level) then ``lse(x)``; for a forbidden method of a class
  (``torch.nn.MultiheadAttention.forward``), any use of the class;
- a construct that hides what is called, which this check cannot see through: ``eval``,
  ``exec``, ``compile``, ``__import__``, ``importlib``, ``globals()``, ``vars()``, a ``getattr``
  whose name is not a literal, ``sys.modules``, ``__code__``, ``__globals__``, ``__dict__``,
  ``__builtins__``, ``import *``.

Calls to the learner's *own* functions of the same name (its ``softmax`` in its
``logsumexp``) are allowed.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

__all__ = ["LearnerSource", "forbidden_key", "parse_cell"]

_ESCAPE_CALLS = {"eval", "exec", "compile", "__import__", "globals", "vars", "locals"}
_ESCAPE_ATTRIBUTES = {"__code__", "__globals__", "__dict__", "__builtins__", "__getattribute__", "__closure__"}


def parse_cell(source: str) -> ast.Module | None:
    """The cell's Python AST (IPython magics and shell escapes translated), or None."""
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))  # type: ignore[no-untyped-call]
    except (SyntaxError, ValueError, ImportError):
        return None


def forbidden_key(dotted: str) -> str:
    """The name whose use betrays ``dotted``: its last part, or its class for a method."""
    from mlcraft.testing.forbidden import resolve_target

    module_path, _, attr = dotted.rpartition(".")
    _, _, owner_name = module_path.rpartition(".")
    try:
        target = resolve_target(dotted)
    except ValueError:
        return attr
    qualname = getattr(target, "__qualname__", "")
    if owner_name and "." in qualname and qualname.split(".")[-2] == owner_name and owner_name[:1].isupper():
        return owner_name
    if inspect.ismethoddescriptor(target) and owner_name[:1].isupper():
        return owner_name
    return attr


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


@dataclass
class LearnerSource:
    """The learner's cells in notebook order, as ``(label, source)``."""

    cells: list[tuple[str, str]]
    _parsed: list[tuple[str, ast.Module | None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._parsed = [(label, parse_cell(source)) for label, source in self.cells]

    def _tables(self) -> tuple[dict[str, tuple[str, ast.AST]], dict[str, str], list[tuple[str, ast.AST]]]:
        """Top-level definitions (last wins), import aliases, and every top-level statement."""
        defs: dict[str, tuple[str, ast.AST]] = {}
        aliases: dict[str, str] = {}
        statements: list[tuple[str, ast.AST]] = []
        for label, tree in self._parsed:
            if tree is None:
                continue
            for node in tree.body:
                statements.append((label, node))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    defs[node.name] = (label, node)
                    aliases.pop(node.name, None)
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    aliases.update(_import_aliases(node))
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    origin = _dotted(node.value)  # `sm = torch.softmax`, `F2 = F`
                    if origin is not None:
                        head, _, rest = origin.partition(".")
                        base = aliases.get(head, head)
                        aliases[node.targets[0].id] = f"{base}.{rest}" if rest else base
        return defs, aliases, statements

    def forbidden_uses(self, entries: Iterable[str], forbidden: Iterable[str]) -> list[str]:
        """What, in the learner's code reachable from ``entries``, uses a ``forbidden`` function
        or hides what it calls; one line each, naming the cell and line."""
        keys: dict[str, list[str]] = {}
        for target in forbidden:
            keys.setdefault(forbidden_key(target), []).append(target)
        defs, aliases, _ = self._tables()
        found: list[str] = []
        seen: set[str] = set()
        todo = [e for e in entries if e in defs]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            label, node = defs[name]
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and sub.id in defs and sub.id not in seen:
                    todo.append(sub.id)
                problem = _check(sub, keys, aliases, defs)
                if problem:
                    found.append(f"{problem} (cell {label!r}, line {getattr(sub, 'lineno', '?')})")
        # Aliases taken at the top level and used by reachable code were checked through
        # `aliases`; a top-level `import *` hides everything.
        for label, tree in self._parsed:
            for node in tree.body if tree is not None else []:
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    found.append(f"uses 'from {node.module} import *', which hides what is called (cell {label!r})")
        return sorted(set(found))


def _import_aliases(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    out = {}
    for alias in node.names:
        if isinstance(node, ast.Import):
            out[(alias.asname or alias.name).split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif alias.name != "*":
            out[alias.asname or alias.name] = f"{node.module or ''}.{alias.name}"
    return out


def _origin_matches(origin: str, keys: dict[str, list[str]]) -> str | None:
    """The forbidden target an imported path stands for (the exact path when it is one)."""
    parts = origin.split(".")
    for targets in keys.values():
        if origin in targets:
            return origin
    for key, targets in keys.items():
        if key in parts[1:]:
            return next((t for t in targets if origin.startswith(t.rpartition(".")[0])), " or ".join(targets))
    return None


def _check(node: ast.AST, keys: dict[str, list[str]], aliases: dict[str, str], defs: Collection[str]) -> str:
    """A problem with one AST node, or ''."""
    if isinstance(node, ast.Attribute):
        base = node.value.id if isinstance(node.value, ast.Name) else ""
        if node.attr in keys and base not in ("self", "cls"):
            module = aliases.get(base, base) if base else ""
            named = [t for t in keys[node.attr] if module and t.startswith(module + ".")]
            which = named[0] if len(named) == 1 else " or ".join(keys[node.attr])
            return f"uses {which} (as .{node.attr})"
        if node.attr in _ESCAPE_ATTRIBUTES:
            return f"uses {node.attr}, which hides what is called"
        if node.attr == "modules" and base == "sys":
            return "uses sys.modules, which hides what is called"
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id in defs:
            return ""
        origin = aliases.get(node.id)
        if origin is not None:
            target = _origin_matches(origin, keys)
            if target is not None:
                return f"uses {target} (imported as {node.id})"
        if node.id == "importlib" or (origin or "").startswith("importlib"):
            return "uses importlib, which hides what is called"
    elif isinstance(node, ast.Import | ast.ImportFrom):
        for alias_name, origin in _import_aliases(node).items():
            target = _origin_matches(origin, keys)
            if target is not None:
                return f"imports {target} (as {alias_name})"
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return f"uses 'from {node.module} import *', which hides what is called"
        if any(a.name.split(".")[0] == "importlib" for a in node.names) or (
            isinstance(node, ast.ImportFrom) and (node.module or "").startswith("importlib")
        ):
            return "uses importlib, which hides what is called"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name in _ESCAPE_CALLS and name not in defs:
            return f"calls {name}(), which hides what is called"
        if name in ("getattr", "hasattr", "setattr", "attrgetter", "methodcaller") and name not in defs:
            literal = [a for a in node.args[1:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in ("attrgetter", "methodcaller"):
                literal = [a for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if not literal:
                return f"calls {name}() with a computed name, which hides what is called"
            for part in str(literal[0].value).split("."):
                if part in keys:
                    return f"uses {' or '.join(keys[part])} (through {name})"
    return ""
