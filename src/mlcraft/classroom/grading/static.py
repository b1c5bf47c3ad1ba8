"""Read the learner's source for library calls a task forbids, outside the learner's kernel.

The dynamic check (:func:`mlcraft.classroom.testing.forbidden.watch_calls`) runs in the learner's kernel
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
  ``__builtins__``, ``builtins``, ``get_ipython()``, ``import *``, and PyTorch's private paths
  to its kernels (``torch.ops``, ``torch._C``...);
- a function under test whose definition is nowhere in the learner's cells (made by ``exec``,
  for one): what the grader cannot read, it cannot clear.

Names are followed through their *last* binding in notebook order (a ``def``, a class, an
import, an assignment or a lambda), as the kernel holds them after running the cells top to
bottom: rebinding ``logsumexp = torch.logsumexp`` after an honest ``def`` is seen, and so is a
function defined under a cell magic (``%%capture``).

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
# PyTorch's own back doors to its kernels: torch.ops.aten.logsumexp is torch.logsumexp.
_PRIVATE_TORCH = {"ops", "_C", "_ops", "_refs", "_prims", "_decomp", "_VF"}


def parse_cell(source: str) -> ast.Module | None:
    """The cell's Python AST (IPython magics and shell escapes translated), or None.

    The body of a cell magic (``%%time``, ``%%capture``...) is read as the Python it usually
    is, so a function defined under one is seen.
    """
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    first, _, body = source.lstrip().partition("\n")
    if first.startswith("%%"):
        try:
            return ast.parse(body)
        except SyntaxError:
            pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))  # type: ignore[no-untyped-call]
    except (SyntaxError, ValueError, ImportError):
        return None


# Methods a class runs without being named (``module(x)`` runs ``forward``): forbidding one
# forbids any use of the class.
_IMPLICIT_METHODS = {"forward", "__call__", "__init__", "__new__", "__iter__", "__next__", "__enter__"}


def forbidden_key(dotted: str) -> str:
    """The name whose use betrays ``dotted``: its last part, or its class for a method that is
    called without being named (``torch.nn.MultiheadAttention.forward``). A named method
    (``torch.Tensor.quantile``) is betrayed by its name (``x.quantile``), not by its class: a
    ``torch.Tensor`` annotation is not a forbidden call."""
    from mlcraft.classroom.testing.forbidden import resolve_target

    module_path, _, attr = dotted.rpartition(".")
    _, _, owner_name = module_path.rpartition(".")
    if owner_name[:1].isupper() and attr not in _IMPLICIT_METHODS:
        return attr
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


@dataclass(frozen=True)
class _Binding:
    """The last statement that gave a top-level name its value."""

    label: str  # the cell
    node: ast.AST  # what to read: a def or class, or the assigned expression
    origin: str | None = None  # an import or a plain alias: the dotted path it stands for


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Top-level statements in order, the bodies of top-level if/for/while/with/try included."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for field_name in ("body", "orelse", "finalbody", "handlers"):
                nested = getattr(node, field_name, None)
                if isinstance(nested, list):
                    out += _statements([n for n in nested if isinstance(n, ast.stmt)])
                    for handler in nested:
                        if isinstance(handler, ast.ExceptHandler):
                            out += _statements(handler.body)
    return out


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for element in node.elts for n in _targets(element)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return []


@dataclass
class LearnerSource:
    """The learner's cells in notebook order, as ``(label, source)``."""

    cells: list[tuple[str, str]]
    _parsed: list[tuple[str, ast.Module | None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._parsed = [(label, parse_cell(source)) for label, source in self.cells]

    def _bindings(self) -> dict[str, _Binding]:
        """Each top-level name's last binding, in notebook order (what the kernel holds when
        the cells ran top to bottom): defs, classes, imports and assignments alike."""
        found: dict[str, _Binding] = {}

        def origin_of(expression: ast.AST) -> str | None:
            dotted = _dotted(expression)
            if dotted is None:
                return None
            head, _, rest = dotted.partition(".")
            known = found.get(head)
            base = known.origin if known is not None and known.origin is not None else head
            return f"{base}.{rest}" if rest else base

        for label, tree in self._parsed:
            for node in _statements(tree.body) if tree is not None else []:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    found[node.name] = _Binding(label, node)
                elif isinstance(node, ast.Import | ast.ImportFrom):
                    for name, imported in _import_aliases(node).items():
                        found[name] = _Binding(label, node, imported)
                elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [n for t in targets for n in _targets(t)]
                    plain = len(names) == 1 and not isinstance(node, ast.AugAssign)
                    alias = origin_of(node.value) if plain else None
                    for name in names:
                        found[name] = _Binding(label, node.value, alias)
                elif isinstance(node, ast.For | ast.AsyncFor | ast.With | ast.AsyncWith):
                    items = [node.target] if isinstance(node, ast.For | ast.AsyncFor) else []
                    items += [w.optional_vars for w in getattr(node, "items", []) if w.optional_vars is not None]
                    for target in items:
                        for name in _targets(target):
                            found[name] = _Binding(label, node)
        return found

    def forbidden_uses(self, entries: Collection[str], forbidden: Iterable[str]) -> list[str]:
        """What, in the learner's code reachable from ``entries``, uses a ``forbidden`` function
        or hides what it calls; one line each, naming the cell and line. An entry whose
        definition cannot be found in the learner's cells is reported too: what the grader
        cannot read, it cannot clear."""
        keys: dict[str, list[str]] = {}
        for target in forbidden:
            keys.setdefault(forbidden_key(target), []).append(target)
        bindings = self._bindings()
        aliases = {name: b.origin for name, b in bindings.items() if b.origin is not None}
        found = [
            f"defines {e} where the grader cannot read it (in a string, a magic or another file)"
            for e in entries
            if e not in bindings
        ]
        seen: set[str] = set()
        todo = [e for e in entries if e in bindings]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            binding = bindings[name]
            if binding.origin is not None:
                # An alias: where code uses it, `_check` reports it; an entry that is itself
                # an alias (`logsumexp = torch.logsumexp`) is reported here.
                matched = _origin_matches(binding.origin, keys)
                parts = binding.origin.split(".")
                if matched is not None and name in entries:
                    found.append(f"is {matched} itself (as {name}) (cell {binding.label!r})")
                elif parts[0] == "torch" and parts[1:2] and parts[1] in _PRIVATE_TORCH:
                    found.append(f"uses {binding.origin}, a private path to PyTorch's kernels (cell {binding.label!r})")
                elif parts[0] in bindings and parts[0] != name:
                    todo.append(parts[0])
                continue
            for sub in ast.walk(binding.node):
                if isinstance(sub, ast.Name) and sub.id in bindings and sub.id not in seen:
                    todo.append(sub.id)
                problem = _check(sub, keys, aliases, bindings)
                if problem:
                    found.append(f"{problem} (cell {binding.label!r}, line {getattr(sub, 'lineno', '?')})")
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
        if node.attr in _PRIVATE_TORCH and aliases.get(base, base) == "torch":
            return f"uses torch.{node.attr}, a private path to PyTorch's kernels"
        if node.attr in {"run_cell", "run_cell_magic", "run_line_magic", "import_module"} or (
            node.attr in _ESCAPE_CALLS | {"getattr"} and aliases.get(base, base) == "builtins"
        ):
            return f"uses .{node.attr}, which hides what is called"
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id in defs and node.id not in aliases:
            return ""  # the learner's own function, class or variable
        origin = aliases.get(node.id)
        if origin is not None:
            target = _origin_matches(origin, keys)
            if target is not None:
                return f"uses {target} (imported as {node.id})"
        if node.id == "importlib" or (origin or "").startswith("importlib"):
            return "uses importlib, which hides what is called"
        if node.id in ("get_ipython", "__builtins__") or origin == "builtins":
            return f"uses {node.id}, which hides what is called"
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
