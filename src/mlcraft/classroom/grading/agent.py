"""The kernel's side of the grader's requests: call the learner's code, answer with data.

Runs inside the student's kernel (:mod:`mlcraft.classroom.grading.kernel`), where nothing is trusted: a
submission may replace any of this. That costs it nothing but its own points, because the
grader takes only data from the answer (:mod:`mlcraft.classroom.grading.protocol`) and decides every
verdict itself. Requests (``content`` of a ``mlcraft_request``):

- ``{"op": "describe", "names": [...]}``: for each name of the notebook's namespace, whether it
  is ``missing``, a ``module`` (and which), ``callable``, ``data`` (then its value) or another
  ``object``;
- ``{"op": "call", "name": str, "args": tree, "forbidden": [...]}``: call ``name(*args,
  **kwargs)`` (``args`` encodes ``[args, kwargs]``);
- ``{"op": "run", "source": str, "entry": str, "globals": tree, "modules": {name: module},
  "args": tree, "forbidden": [...]}``: define the test's helper functions (``source``) in a
  module that starts as a copy of the namespace plus ``globals`` (data sent by the grader) and
  the modules the test cells imported, and call ``entry``.

The answer is ``{"status": "ok", "value": tree}`` or ``{"status": "raised", "exception": tree,
"traceback": str}``, plus ``"after"`` (the arguments after the call, so the grader sees
in-place changes) and, when ``forbidden`` was given, ``"watch"`` (what the dynamic check saw);
or ``{"status": "error", "message": str}`` when the request itself could not be served.
"""

from __future__ import annotations

import importlib
import sys
import traceback
import types
from typing import Any

from mlcraft.classroom.grading.protocol import DataError, decode, encode_into

__all__ = ["serve"]

_TRACEBACK_CHARS = 20_000
_HELPERS = "mlcraft_test_helpers"
_NO_ARGS = {"t": "list", "v": [{"t": "list", "v": []}, {"t": "dict", "v": []}]}


def _describe(namespace: dict[str, Any], names: list[str], buffers: list[bytes]) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for name in names:
        if name not in namespace:
            described[name] = {"kind": "missing"}
        elif isinstance(namespace[name], types.ModuleType):
            described[name] = {"kind": "module", "module": str(getattr(namespace[name], "__name__", ""))}
        elif callable(namespace[name]):
            described[name] = {"kind": "callable"}
        else:
            try:
                described[name] = {"kind": "data", "value": encode_into(namespace[name], buffers)}
            except DataError:
                described[name] = {"kind": "object", "type": type(namespace[name]).__qualname__}
    return {"status": "ok", "names": described}


def _learner_traceback(err: BaseException) -> str:
    """The traceback without this module's frames, capped."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename != __file__]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(err), err))
    return text[-_TRACEBACK_CHARS:]


def _identity(fn: Any) -> Any:
    return fn


def _target(namespace: dict[str, Any], content: dict[str, Any], buffers: list[Any]) -> Any:
    if content.get("op") == "call":
        name = str(content.get("name"))
        if name not in namespace:
            raise NameError(f"name {name!r} is not defined")
        return namespace[name]
    # The helpers live in a module of their own (so that pickle finds them by name), which
    # starts as a copy of the notebook's namespace plus the data the grader sent.
    helpers = types.ModuleType(_HELPERS)
    scope = helpers.__dict__
    scope.update(namespace)
    scope.update(decode(content.get("globals", {"t": "dict", "v": []}), buffers))
    modules = content.get("modules") or {}
    for name, module in modules.items() if isinstance(modules, dict) else []:
        scope[str(name)] = importlib.import_module(str(module))  # modules the test cells imported
    scope["__name__"] = _HELPERS
    scope["in_kernel"] = _identity  # the test helpers' decorator: here they simply run
    sys.modules[_HELPERS] = helpers
    exec(compile(str(content.get("source", "")), "<test helpers>", "exec"), scope)
    return scope[str(content.get("entry"))]


def serve(namespace: dict[str, Any], content: dict[str, Any], buffers: list[Any]) -> tuple[dict[str, Any], list[bytes]]:
    """Serve one request against the notebook's ``namespace``; never raises."""
    out: list[bytes] = []
    try:
        if content.get("op") == "describe":
            return _describe(namespace, [str(n) for n in content.get("names", [])], out), out
        if content.get("op") not in ("call", "run"):
            return {"status": "error", "message": f"unknown request {content.get('op')!r}"}, out
        args, kwargs = decode(content.get("args", _NO_ARGS), buffers)
        forbidden = [str(f) for f in content.get("forbidden") or []]
        fn = _target(namespace, content, buffers)
    except BaseException as err:
        return {"status": "error", "message": f"{type(err).__name__}: {err}"[:2000]}, out
    reply: dict[str, Any]
    watch: dict[str, Any] = {}
    try:
        if forbidden:
            from mlcraft.classroom.testing.forbidden import watch_calls

            with watch_calls(*forbidden) as seen:
                value = fn(*args, **kwargs)
            watch = {"watched": True, "calls": sorted(set(seen.calls)), "escaped": seen.escaped}
        else:
            value = fn(*args, **kwargs)
        reply = {"status": "ok", "value": encode_into(value, out)}
    except DataError as err:
        reply = {"status": "error", "message": str(err)}
    except BaseException as err:
        try:
            reply = {"status": "raised", "exception": encode_into(err, out), "traceback": _learner_traceback(err)}
        except BaseException:
            reply = {"status": "error", "message": "an exception that cannot be described"}
    try:
        reply["after"] = encode_into([args, kwargs], out)
    except BaseException:
        reply["after"] = None
    if forbidden:
        reply["watch"] = watch
    return reply, out
