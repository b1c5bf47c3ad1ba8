"""Mutation operators: small wrong versions of a reference answer, made from its syntax tree.

:func:`mutants_of` turns the source of one answer cell into every mutant the operators below
make of the code between its ``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers (the
whole cell when it has none). Each mutant changes one thing, the kind of slip a learner
makes:

======================  ==========================================================================
operator                change
======================  ==========================================================================
``compare``             ``<``↔``<=``, ``>``↔``>=``, ``<``↔``>``, ``==``↔``!=``, ``is``↔``is not``,
                        ``in``↔``not in``
``condition``           an ``if``/``while``/conditional expression's test negated
``arith``               ``+``↔``-``, ``*``↔``/``, ``/``→``//``, ``//``→``/``, ``**``→``*``,
                        ``@``→``*``, ``%``→``//``; one operand dropped (``x + eps`` → ``x``);
                        operands of ``-``, ``/``, ``//``, ``%``, ``**``, ``@`` swapped
``augassign``           ``x += y`` → ``x -= y`` (and the like) or ``x = y``
``unary``               ``-x`` → ``x``, ``not x`` → ``x``
``boolop``              ``and``↔``or``; one operand dropped
``constant``            a number → 0, n+1, n-1, 2n (n/2 for floats); ``True``↔``False``
``string``              a string compared with something → another string the cell compares with
``variable``            a local name read → another local name bound before it (the wrong variable;
                        at most the three bound nearest before the use)
``dim``                 a reduction's positional ``dim``/``axis`` dropped (``x.sum(1)`` → ``x.sum()``)
``keyword``             a keyword argument dropped (``dim=``, ``keepdim=``, ``dtype=``, ``device=``...)
``swap-args``           two neighbouring positional arguments swapped
``unwrap``              a cast, copy or reduction removed: ``.to(...)``, ``.float()``, ``.clone()``,
                        ``.detach()``, ``.squeeze()``, ``.sum(...)``, ``.amax(...)``..., ``float(x)``
``rename``              a function or dtype swapped for its sibling: ``min``↔``max``,
                        ``argmin``↔``argmax``, ``sum``↔``mean``, ``any``↔``all``,
                        ``softmax``↔``log_softmax``, ``floor``↔``ceil``, ``float64``→``float32``...
``slice``               a slice bound dropped (``x[1:]`` → ``x[:]``, ``x[:n]`` → ``x[:]``) or a
                        subscript ``x[i]`` replaced by ``x``
``drop``                a statement removed (a ``raise``, an assignment, an in-place update, a call)
``unguard``             a ``with`` block (``torch.no_grad()``) or ``try`` block replaced by its body
``raise-type``          the raised exception class changed (``ValueError`` → ``RuntimeError``)
``return-input``        ``return result`` → ``return <the function's first argument>``
======================  ==========================================================================

Not mutated: strings, f-strings, type annotations, docstrings, ``assert`` statements, imports,
and calls to ``print`` and loggers (dropping them changes nothing a test should see).
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["OPERATORS", "MutantSource", "mutants_of", "solution_lines"]

OPERATORS = (
    "compare",
    "condition",
    "arith",
    "augassign",
    "unary",
    "boolop",
    "constant",
    "string",
    "variable",
    "dim",
    "slice",
    "keyword",
    "swap-args",
    "unwrap",
    "rename",
    "drop",
    "unguard",
    "raise-type",
    "return-input",
)

_BEGIN, _END = "### BEGIN SOLUTION", "### END SOLUTION"

_COMPARE: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
_ARITH: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Div,),
    ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div,),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
    ast.MatMult: (ast.Mult,),
    ast.BitAnd: (ast.BitOr,),
    ast.BitOr: (ast.BitAnd,),
}
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)
# Calls whose positional argument after the input is a dimension.
_DIM_METHODS = {
    "sum", "mean", "prod", "std", "var", "norm", "max", "min", "amax", "amin", "argmax", "argmin",
    "all", "any", "softmax", "log_softmax", "logsumexp", "cumsum", "cumprod", "squeeze", "unsqueeze",
    "cat", "concat", "concatenate", "stack", "flatten", "sort", "argsort", "median", "nansum", "nanmean",
}  # fmt: skip
# Methods that return (a cast or copy of) their receiver: removed, the receiver is used as is.
_UNWRAP_METHODS = {
    "to", "float", "double", "half", "bfloat16", "long", "int", "bool", "clone", "detach", "copy",
    "contiguous", "cpu", "cuda", "squeeze", "unsqueeze", "item", "tolist", "numpy", "astype", "abs",
    "sqrt", "exp", "log", "view_as", "type_as", "flatten", "reshape", "view", "t",
    "sum", "mean", "amax", "amin", "prod", "logsumexp", "cumsum", "norm", "relu", "sigmoid", "softmax",
}  # fmt: skip
# Functions that return (a cast of) their first argument.
_UNWRAP_FUNCTIONS = {
    "float", "int", "bool", "abs", "round", "list", "tuple", "sorted", "as_tensor", "tensor", "asarray",
    "array", "from_numpy", "sqrt", "exp", "log", "clamp", "clip", "nan_to_num", "squeeze", "abs_",
}  # fmt: skip
_RENAMES = {
    "min": "max", "max": "min", "amin": "amax", "amax": "amin", "argmin": "argmax", "argmax": "argmin",
    "minimum": "maximum", "maximum": "minimum", "sum": "mean", "mean": "sum", "any": "all", "all": "any",
    "softmax": "log_softmax", "log_softmax": "softmax", "floor": "ceil", "ceil": "floor",
    "float64": "float32", "double": "float", "int64": "int32", "float16": "bfloat16", "bfloat16": "float16",
    "zeros": "ones", "ones": "zeros", "zeros_like": "ones_like", "ones_like": "zeros_like",
    "relu": "gelu", "gelu": "relu", "exp": "log", "log": "exp", "log1p": "log", "expm1": "exp",
    "triu": "tril", "tril": "triu", "nonzero": "any", "lt": "le", "le": "lt", "gt": "ge", "ge": "gt",
    "isfinite": "isnan", "isnan": "isinf", "isinf": "isnan", "isclose": "eq",
    "eval": "train", "train": "eval", "no_grad": "enable_grad", "inference_mode": "enable_grad",
}  # fmt: skip
_TYPE_NAMES = {"list", "tuple", "dict", "set", "type", "Optional", "Union", "Callable", "Literal"}
_EXCEPTIONS = {"ValueError": "RuntimeError", "TypeError": "ValueError", "KeyError": "ValueError"}
_QUIET_CALLS = {"print", "debug", "info", "warning", "warn", "error", "exception", "log", "pprint", "display"}


@dataclass(frozen=True)
class MutantSource:
    """One mutant of a cell: its whole source and what changed."""

    key: str  # stable id within the cell: operator and a digest of the change
    operator: str
    line: int  # first changed line of the unparsed cell (1-based)
    source: str  # the mutated cell (unparsed: comments are gone, behaviour is not)
    diff: str  # unified diff from the unparsed original, 1 line of context
    change: str  # the changed lines, "old  ->  new", for lists and reports


def solution_lines(source: str) -> set[int]:
    """Line numbers (1-based) between the solution markers; every line when there are none."""
    lines = source.splitlines()
    if not any(line.strip() == _BEGIN for line in lines):
        return set(range(1, len(lines) + 1))
    inside, found = False, set()
    for number, line in enumerate(lines, start=1):
        if line.strip() == _BEGIN:
            inside = True
        elif line.strip() == _END:
            inside = False
        elif inside:
            found.add(number)
    return found


Edit = Callable[[ast.AST], "ast.AST | list[ast.stmt] | None"]


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    """id(child) -> (parent, field, index in the field's list or None)."""
    found: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        found[id(item)] = (parent, name, index)
            elif isinstance(value, ast.AST):
                found[id(value)] = (parent, name, None)
    return found


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: annotations, docstrings, asserts, f-strings, quiet calls."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                mark(arg.annotation)
            mark(node.args.vararg.annotation if node.args.vararg else None)
            mark(node.args.kwarg.annotation if node.args.kwarg else None)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                mark(default)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])  # docstring
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, (ast.Assert, ast.JoinedStr, ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal)):
            mark(node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and _call_name(node.value) in _QUIET_CALLS:
            mark(node)
    return skip


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _number_variants(value: float | int) -> list[float | int]:
    if isinstance(value, int):
        out: list[float | int] = [0, value + 1, value - 1, 2 * value]
    elif abs(value) < 1e-3:
        out = [0.0, 1.0]
    else:
        out = [0.0, value + 1, value - 1, 2 * value, value / 2]
    seen: list[float | int] = []
    for v in out:
        if v != value and v not in seen:
            seen.append(v)
    return seen


@dataclass(frozen=True)
class _Context:
    """What edits need to know beyond the node: tables over the whole cell."""

    first_args: dict[int, str]  # id(return statement) -> its function's first argument
    compared_strings: tuple[str, ...]  # strings the cell compares with
    alternatives: dict[int, tuple[str, ...]]  # id(local name read) -> other locals bound before it


def _compared_strings(tree: ast.Module) -> tuple[str, ...]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in (node.left, *node.comparators):
                if isinstance(part, ast.Constant) and isinstance(part.value, str) and part.value not in found:
                    found.append(part.value)
    return tuple(found)


def _local_alternatives(tree: ast.Module) -> dict[int, tuple[str, ...]]:
    """For each read of a function's local name, up to three other locals bound before it."""
    found: dict[int, tuple[str, ...]] = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        bound: dict[str, int] = {}  # name -> line of its first binding
        for arg in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]:
            if arg.arg not in ("self", "cls"):
                bound.setdefault(arg.arg, fn.lineno)
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.setdefault(node.id, node.lineno)
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in bound):
                continue
            before = sorted((line, name) for name, line in bound.items() if name != node.id and line < node.lineno)
            others = tuple(name for _, name in reversed(before[-3:]))
            if others:
                found[id(node)] = others
    return found


def _becomes(new: ast.AST) -> Edit:
    """An edit that replaces the node with (a copy of) ``new``."""
    return lambda n: copy.deepcopy(new)


def _edits(node: ast.AST, context: _Context) -> Iterator[tuple[str, Edit]]:
    """(operator, edit) pairs for one node; an edit returns the node's replacement (a list of
    statements for a statement, None to remove it)."""
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            for new in _COMPARE.get(type(op), ()):

                def edit(n: ast.AST, k: int = k, new: type[ast.cmpop] = new) -> ast.AST:
                    assert isinstance(n, ast.Compare)
                    n.ops[k] = new()
                    return n

                yield "compare", edit
    if isinstance(node, (ast.If, ast.While, ast.IfExp)):

        def negate(n: ast.AST) -> ast.AST:
            assert isinstance(n, (ast.If, ast.While, ast.IfExp))
            n.test = ast.UnaryOp(op=ast.Not(), operand=n.test)
            return n

        yield "condition", negate
    if isinstance(node, ast.BinOp):
        for new_op in _ARITH.get(type(node.op), ()):

            def swap_op(n: ast.AST, new_op: type[ast.operator] = new_op) -> ast.AST:
                assert isinstance(n, ast.BinOp)
                n.op = new_op()
                return n

            yield "arith", swap_op
        yield "arith", lambda n: n.left  # type: ignore[attr-defined]
        yield "arith", lambda n: n.right  # type: ignore[attr-defined]
        if isinstance(node.op, _NON_COMMUTATIVE):

            def swap(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.BinOp)
                n.left, n.right = n.right, n.left
                return n

            yield "arith", swap
    if isinstance(node, ast.AugAssign):
        for new_op in _ARITH.get(type(node.op), ()):

            def swap_aug(n: ast.AST, new_op: type[ast.operator] = new_op) -> ast.AST:
                assert isinstance(n, ast.AugAssign)
                n.op = new_op()
                return n

            yield "augassign", swap_aug

        def plain(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.AugAssign)
            target = copy.deepcopy(n.target)
            target.ctx = ast.Store()
            return ast.Assign(targets=[target], value=n.value, lineno=n.lineno)

        yield "augassign", plain
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
        yield "unary", lambda n: n.operand  # type: ignore[attr-defined]
    if isinstance(node, ast.BoolOp):

        def flip(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.BoolOp)
            n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
            return n

        yield "boolop", flip
        for k in range(len(node.values)):

            def drop_value(n: ast.AST, k: int = k) -> ast.AST:
                assert isinstance(n, ast.BoolOp)
                values = [v for j, v in enumerate(n.values) if j != k]
                return values[0] if len(values) == 1 else ast.BoolOp(op=n.op, values=values)

            yield "boolop", drop_value
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            yield "constant", lambda n: ast.Constant(value=not n.value)  # type: ignore[attr-defined]
        elif isinstance(node.value, (int, float)):
            for new_value in _number_variants(node.value):
                yield "constant", _becomes(ast.Constant(value=new_value))
        elif isinstance(node.value, str) and node.value in context.compared_strings:
            for other in context.compared_strings:
                if other != node.value:
                    yield "string", _becomes(ast.Constant(value=other))
    if isinstance(node, ast.Slice):
        for bound in ("lower", "upper", "step"):
            if getattr(node, bound) is not None:

                def drop_bound(n: ast.AST, bound: str = bound) -> ast.AST:
                    setattr(n, bound, None)
                    return n

                yield "slice", drop_bound
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.ctx, ast.Load)
        and not isinstance(node.slice, ast.Slice)
        and not (isinstance(node.value, ast.Name) and node.value.id in _TYPE_NAMES)
    ):
        yield "slice", lambda n: n.value  # type: ignore[attr-defined]
    for other in context.alternatives.get(id(node), ()):
        yield "variable", _becomes(ast.Name(id=other, ctx=ast.Load()))
    if isinstance(node, ast.Call):
        yield from _call_edits(node)
    if isinstance(node, ast.Attribute) and node.attr in _RENAMES:

        def rename_attribute(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.Attribute)
            n.attr = _RENAMES[n.attr]
            return n

        yield "rename", rename_attribute
    if isinstance(node, ast.stmt):
        yield from _statement_edits(node, context.first_args)


def _call_edits(node: ast.Call) -> Iterator[tuple[str, Edit]]:
    name = _call_name(node)
    positional = [a for a in node.args if not isinstance(a, ast.Starred)]
    is_method = isinstance(node.func, ast.Attribute)
    # x.sum(1) or torch.sum(x, 1): the last positional argument is the dimension.
    if (
        name in _DIM_METHODS
        and node.args
        and not isinstance(node.args[-1], ast.Starred)
        and ((is_method and not _is_module_call(node)) or len(node.args) >= 2)
    ):

        def drop_dim(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.Call)
            n.args = n.args[:-1]
            return n

        yield "dim", drop_dim
    for k in range(len(node.keywords)):
        if node.keywords[k].arg is None:
            continue

        def drop_keyword(n: ast.AST, k: int = k) -> ast.AST:
            assert isinstance(n, ast.Call)
            n.keywords = [kw for j, kw in enumerate(n.keywords) if j != k]
            return n

        yield "keyword", drop_keyword
    if len(positional) == len(node.args):
        for k in range(len(node.args) - 1):

            def swap_args(n: ast.AST, k: int = k) -> ast.AST:
                assert isinstance(n, ast.Call)
                n.args[k], n.args[k + 1] = n.args[k + 1], n.args[k]
                return n

            yield "swap-args", swap_args
    if is_method and name in _UNWRAP_METHODS and not _is_module_call(node):
        yield "unwrap", lambda n: n.func.value  # type: ignore[attr-defined]
    elif name in _UNWRAP_FUNCTIONS and node.args and not isinstance(node.args[0], ast.Starred):
        yield "unwrap", lambda n: n.args[0]  # type: ignore[attr-defined]
    if isinstance(node.func, ast.Name) and node.func.id in _RENAMES:

        def rename_call(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            n.func = ast.Name(id=_RENAMES[n.func.id], ctx=ast.Load())
            return n

        yield "rename", rename_call


def _is_module_call(node: ast.Call) -> bool:
    """``torch.sum(...)``, ``np.mean(...)``, ``F.softmax(...)``: a function called through a
    module-like name (lower-case name, or a known alias), not a method of a value."""
    func = node.func
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in {
        "torch", "np", "numpy", "F", "math", "random", "nn", "scipy", "stats", "pd", "os", "time",
    }  # fmt: skip


def _statement_edits(node: ast.stmt, function_args: dict[int, str]) -> Iterator[tuple[str, Edit]]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return
    if not isinstance(node, ast.Return):  # a dropped return is `return None`: see return-input
        yield "drop", lambda n: None
    if isinstance(node, (ast.With, ast.Try)):
        yield "unguard", lambda n: list(n.body)  # type: ignore[attr-defined]
    if isinstance(node, ast.Raise) and node.exc is not None:
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(target, ast.Name) and target.id in _EXCEPTIONS:

            def retype(n: ast.AST) -> ast.AST:
                assert isinstance(n, ast.Raise) and n.exc is not None
                exc = n.exc.func if isinstance(n.exc, ast.Call) else n.exc
                assert isinstance(exc, ast.Name)
                exc.id = _EXCEPTIONS[exc.id]
                return n

            yield "raise-type", retype
    first = function_args.get(id(node))
    if (
        isinstance(node, ast.Return)
        and first
        and node.value is not None
        and not (isinstance(node.value, ast.Name) and node.value.id == first)
    ):
        yield "return-input", lambda n: ast.Return(value=ast.Name(id=first, ctx=ast.Load()))


def _function_first_args(tree: ast.Module) -> dict[int, str]:
    """id(return statement) -> the first argument (not self/cls) of its function."""
    found: dict[int, str] = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args] if a.arg not in ("self", "cls")]
        if not args:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Return):
                found.setdefault(id(node), args[0])
    return found


def _replace(tree: ast.Module, target: ast.AST, replacement: ast.AST | list[ast.stmt] | None) -> None:
    parent, name, index = _parents(tree)[id(target)]
    if index is None:
        assert isinstance(replacement, ast.AST)
        setattr(parent, name, replacement)
        return
    items = getattr(parent, name)
    if replacement is None:
        new: list[ast.AST] = []
    elif isinstance(replacement, list):
        new = list(replacement)
    else:
        new = [replacement]
    items[index : index + 1] = new
    if name == "body" and not items:  # a block cannot be empty
        items.append(ast.Pass())


def _change(old: str, new: str) -> tuple[int, str, str]:
    """(first changed line, diff with 1 line of context, 'old -> new' of the changed lines)."""
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    first, removed, added = 0, [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        first = first or i1 + 1
        removed += [line.strip() for line in a[i1:i2]]
        added += [line.strip() for line in b[j1:j2]]
    diff = "\n".join(difflib.unified_diff(a, b, "reference", "mutant", n=1, lineterm=""))
    change = f"{' / '.join(removed) or '(nothing)'}  ->  {' / '.join(added) or '(removed)'}"
    return first, diff, change


def mutants_of(source: str) -> list[MutantSource]:
    """Every distinct mutant of the solution region of ``source``, in source order.

    Mutants that compile to the same text as the original, or as an earlier mutant, are left
    out. Returns an empty list for a cell that is not plain Python.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    region = solution_lines(source)
    skip = _skipped(tree)
    context = _Context(_function_first_args(tree), _compared_strings(tree), _local_alternatives(tree))
    original = ast.unparse(tree)
    nodes = list(ast.walk(tree))
    found: list[MutantSource] = []
    seen = {original}
    keys: set[str] = set()
    for position, node in enumerate(nodes):
        line = getattr(node, "lineno", None)
        if line is None or line not in region or id(node) in skip:
            continue
        for operator, edit in _edits(node, context):
            mutated = copy.deepcopy(tree)
            target = list(ast.walk(mutated))[position]
            try:
                replacement = edit(target)
                _replace(mutated, target, replacement)
                ast.fix_missing_locations(mutated)
                text = ast.unparse(mutated)
                compile(text, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError, AttributeError, AssertionError):
                continue
            if text in seen:
                continue
            seen.add(text)
            first, diff, change = _change(original, text)
            digest = hashlib.sha1(f"{operator}\n{change}".encode()).hexdigest()[:8]
            key, n = f"{operator}/{digest}", 2
            while key in keys:
                key, n = f"{operator}/{digest}-{n}", n + 1
            keys.add(key)
            found.append(MutantSource(key, operator, first, text, diff, change))
    return found
