"""Tests for mlcraft.classroom.testing.forbidden: forbid_calls, call_without, ForbiddenCallError."""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import operator
import statistics
import sys
import types
from collections.abc import Callable
from math import fsum as aliased_fsum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats  # type: ignore[import-untyped]  # no scipy-stubs in the environment
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional spelling learners use
from numpy.linalg import norm as aliased_norm
from torch import logsumexp as aliased_logsumexp

from mlcraft.classroom.testing.forbidden import ForbiddenCallError, call_without, forbid_calls, forbidden_family
from mlcraft.utils.device import amp_dtype

# --------------------------------------------------------------------------- learner-style functions


def lse_direct(x: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(x, dim=-1)


def lse_alias(x: torch.Tensor) -> torch.Tensor:
    return aliased_logsumexp(x, -1)


def lse_method(x: torch.Tensor) -> torch.Tensor:
    return x.logsumexp(-1)


def lse_nested(x: torch.Tensor) -> torch.Tensor:
    def helper(y: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(y, -1)

    return helper(x) * 1.0


def lse_manual(x: torch.Tensor) -> torch.Tensor:
    m = x.amax(dim=-1, keepdim=True)
    return (m + (x - m).exp().sum(dim=-1, keepdim=True).log()).squeeze(-1)


def softmax_functional(x: torch.Tensor) -> torch.Tensor:
    return F.softmax(x, dim=-1)


def softmax_method(x: torch.Tensor) -> torch.Tensor:
    return x.softmax(-1)


def softmax_manual(x: torch.Tensor) -> torch.Tensor:
    z = (x - x.amax(dim=-1, keepdim=True)).exp()
    return z / z.sum(dim=-1, keepdim=True)


@pytest.fixture
def logits() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 7, generator=g, dtype=torch.float64) * 30  # large values: naive exp overflows


# --------------------------------------------------------------------------- call_without catches


@pytest.mark.parametrize("fn", [lse_direct, lse_alias, lse_method, lse_nested], ids=lambda f: f.__name__)
def test_call_without_catches_logsumexp_spellings(
    fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor
) -> None:
    with pytest.raises(ForbiddenCallError, match=rf"^{fn.__name__} calls torch\.logsumexp: "):
        call_without(fn, logits, forbidden=("torch.logsumexp",))


@pytest.mark.parametrize("fn", [softmax_functional, softmax_method], ids=lambda f: f.__name__)
def test_call_without_catches_functional_softmax(
    fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor
) -> None:
    with pytest.raises(ForbiddenCallError, match=r"calls torch\.nn\.functional\.softmax"):
        call_without(fn, logits, forbidden=["torch.nn.functional.softmax"])


def test_forbidden_error_is_an_assertion_error() -> None:
    assert issubclass(ForbiddenCallError, AssertionError)
    with pytest.raises(AssertionError):
        call_without(lse_direct, torch.ones(3), forbidden=("torch.logsumexp",))


def test_call_without_catches_on_device(device: torch.device) -> None:
    x = torch.ones(2, 3, device=device)
    for fn in (lse_direct, lse_alias, lse_method):
        with pytest.raises(ForbiddenCallError, match=r"torch\.logsumexp"):
            call_without(fn, x, forbidden=("torch.logsumexp",))


def test_error_names_every_forbidden_function_used_once_sorted(logits: torch.Tensor) -> None:
    def both(x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(x, -1) + F.softmax(x, -1).sum(-1) + torch.logsumexp(x, -1)

    with pytest.raises(ForbiddenCallError) as info:
        call_without(both, logits, forbidden=("torch.nn.functional.softmax", "torch.logsumexp", "torch.tanh"))
    message = str(info.value)
    assert "both calls torch.logsumexp, torch.nn.functional.softmax:" in message
    assert message.count("torch.logsumexp") == 1
    assert "torch.tanh" not in message


def test_error_message_for_a_callable_without_name() -> None:
    class Impl:
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            return torch.logsumexp(x, -1)

    with pytest.raises(ForbiddenCallError, match=r"calls torch\.logsumexp"):
        call_without(Impl(), torch.ones(3), forbidden=("torch.logsumexp",))


# --------------------------------------------------------------------------- call_without passes


def test_hand_written_logsumexp_passes_and_returns_value(logits: torch.Tensor) -> None:
    result = call_without(lse_manual, logits, forbidden=("torch.logsumexp", "torch.nn.functional.softmax"))
    # oracle computed outside the guarded call
    torch.testing.assert_close(result, torch.logsumexp(logits, dim=-1), rtol=1e-12, atol=1e-12)
    assert result.dtype == torch.float64
    assert torch.isfinite(result).all()


def test_hand_written_softmax_passes_and_returns_value(logits: torch.Tensor) -> None:
    result = call_without(
        softmax_manual, logits, forbidden=("torch.nn.functional.softmax", "torch.softmax", "torch.logsumexp")
    )
    torch.testing.assert_close(result, torch.softmax(logits, dim=-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(result.sum(-1), torch.ones(4, dtype=torch.float64))


def test_call_without_passes_args_and_kwargs() -> None:
    def scaled_sum(x: torch.Tensor, scale: float, *, offset: float = 0.0) -> torch.Tensor:
        return x.sum() * scale + offset

    out = call_without(scaled_sum, torch.arange(4.0), 2.0, offset=1.5, forbidden=("torch.logsumexp",))
    assert out.item() == 13.5


def test_call_without_returns_non_tensor_results() -> None:
    sentinel = object()
    assert call_without(lambda: sentinel, forbidden=("math.fsum",)) is sentinel


def test_call_without_with_no_forbidden_targets() -> None:
    out = call_without(lse_direct, torch.zeros(2), forbidden=())
    torch.testing.assert_close(out, torch.tensor(math.log(2.0)))


def test_other_torch_functions_are_not_flagged(logits: torch.Tensor) -> None:
    def uses_neighbours(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.log_softmax(x, -1).exp().sum(-1) + torch.special.expit(x).mean(-1)
        return out

    out = call_without(uses_neighbours, logits, forbidden=("torch.logsumexp", "torch.nn.functional.softmax"))
    assert out.shape == (4,)


def test_exception_in_fn_propagates_unchanged() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise KeyError("learner bug")

    original = torch.logsumexp
    with pytest.raises(KeyError, match="learner bug"):
        call_without(broken, torch.ones(3), forbidden=("torch.logsumexp",))
    assert torch.logsumexp is original


# --------------------------------------------------------------------------- non-torch targets


def total_fsum(xs: list[float]) -> float:
    return math.fsum(xs)


def total_fsum_alias(xs: list[float]) -> float:
    return aliased_fsum(xs)


def norm_np(v: np.ndarray) -> float:
    return float(np.linalg.norm(v))


def norm_np_alias(v: np.ndarray) -> float:
    return float(aliased_norm(v))


@pytest.mark.parametrize("fn", [total_fsum, total_fsum_alias], ids=lambda f: f.__name__)
def test_math_fsum_is_caught(fn: Callable[[list[float]], float]) -> None:
    with pytest.raises(ForbiddenCallError, match=rf"^{fn.__name__} calls math\.fsum"):
        call_without(fn, [0.1] * 10, forbidden=("math.fsum",))


@pytest.mark.parametrize("fn", [norm_np, norm_np_alias], ids=lambda f: f.__name__)
def test_numpy_linalg_norm_is_caught(fn: Callable[[np.ndarray], float]) -> None:
    with pytest.raises(ForbiddenCallError, match=rf"^{fn.__name__} calls numpy\.linalg\.norm"):
        call_without(fn, np.array([3.0, 4.0]), forbidden=("numpy.linalg.norm",))


def test_python_function_from_the_package_is_caught_when_imported_by_name() -> None:
    def pick_dtype() -> torch.dtype:
        return amp_dtype("cpu")  # imported with `from mlcraft.utils.device import amp_dtype`

    with pytest.raises(ForbiddenCallError, match=r"pick_dtype calls mlcraft\.utils\.amp_dtype"):
        call_without(pick_dtype, forbidden=("mlcraft.utils.amp_dtype",))
    assert call_without(lambda: torch.bfloat16, forbidden=("mlcraft.utils.amp_dtype",)) is torch.bfloat16


def test_numpy_hand_written_norm_passes() -> None:
    def norm(v: np.ndarray) -> float:
        return float(np.sqrt((v * v).sum()))

    assert call_without(norm, np.array([3.0, 4.0]), forbidden=("numpy.linalg.norm",)) == 5.0


def test_math_hand_written_sum_passes() -> None:
    assert call_without(lambda xs: sum(xs), [1.0, 2.0, 3.5], forbidden=("math.fsum",)) == 6.5


# --------------------------------------------------------------------------- forbid_calls


@pytest.mark.parametrize(
    ("target", "call"),
    [
        ("torch.logsumexp", lambda: lse_direct(torch.ones(3))),
        ("torch.logsumexp", lambda: lse_alias(torch.ones(3))),
        ("torch.logsumexp", lambda: lse_method(torch.ones(3))),
        ("torch.nn.functional.softmax", lambda: softmax_functional(torch.ones(3))),
        ("torch.nn.functional.softmax", lambda: softmax_method(torch.ones(3))),
        ("math.fsum", lambda: total_fsum([1.0])),
        ("numpy.linalg.norm", lambda: norm_np(np.ones(2))),
    ],
    ids=["direct", "alias", "method", "F.softmax", "softmax-method", "math.fsum", "np.linalg.norm"],
)
def test_forbid_calls_records_only_inside_the_block(target: str, call: Callable[[], object]) -> None:
    with forbid_calls(target) as calls:
        assert calls == []
        call()
        assert calls
        assert set(calls) == {target}
    n = len(calls)
    call()
    call()
    assert len(calls) == n  # nothing is recorded once the block is left


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: lse_method(torch.ones(3)), id="method"),
        pytest.param(
            lambda: lse_direct(torch.ones(3)),
            id="direct",
        ),
        pytest.param(
            lambda: lse_alias(torch.ones(3)),
            id="alias",
        ),
    ],
)
def test_forbid_calls_one_entry_per_call(call: Callable[[], object]) -> None:
    # forbid_calls documents "one entry per call"
    with forbid_calls("torch.logsumexp") as calls:
        call()
        call()
    assert calls == ["torch.logsumexp"] * 2


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: softmax_method(torch.ones(3)), id="method"),
        pytest.param(
            lambda: softmax_functional(torch.ones(3)),
            id="F.softmax",
        ),
    ],
)
def test_forbid_calls_one_entry_per_softmax_call(call: Callable[[], object]) -> None:
    with forbid_calls("torch.nn.functional.softmax") as calls:
        call()
    assert calls == ["torch.nn.functional.softmax"]


def test_forbid_calls_values_are_unchanged_inside(logits: torch.Tensor) -> None:
    expected = torch.logsumexp(logits, -1)
    with forbid_calls("torch.logsumexp", "torch.nn.functional.softmax") as calls:
        got_direct = torch.logsumexp(logits, -1)
        got_method = logits.logsumexp(-1)
        got_softmax = F.softmax(logits, -1)
    assert calls
    assert torch.equal(got_direct, expected)
    assert torch.equal(got_method, expected)
    assert torch.equal(got_softmax, torch.softmax(logits, -1))


TARGETS = [
    ("torch.logsumexp", torch, "logsumexp"),
    ("torch.nn.functional.softmax", F, "softmax"),
    ("math.fsum", math, "fsum"),
    ("numpy.linalg.norm", np.linalg, "norm"),
]


@pytest.mark.parametrize(("target", "owner", "attr"), TARGETS, ids=[t[0] for t in TARGETS])
def test_forbid_calls_restores_attribute(target: str, owner: object, attr: str) -> None:
    original = getattr(owner, attr)
    with forbid_calls(target):
        pass
    assert getattr(owner, attr) is original


@pytest.mark.parametrize(("target", "owner", "attr"), TARGETS, ids=[t[0] for t in TARGETS])
def test_forbid_calls_restores_attribute_when_body_raises(target: str, owner: object, attr: str) -> None:
    original = getattr(owner, attr)
    with pytest.raises(RuntimeError, match="boom"), forbid_calls(target):
        raise RuntimeError("boom")
    assert getattr(owner, attr) is original


def test_forbid_calls_restores_all_targets_and_stops_recording_after_raise() -> None:
    originals = (torch.logsumexp, F.softmax, math.fsum)
    with (
        pytest.raises(ValueError, match="inner"),
        forbid_calls("torch.logsumexp", "torch.nn.functional.softmax", "math.fsum") as calls,
    ):
        raise ValueError("inner")
    assert all(a is b for a, b in zip((torch.logsumexp, F.softmax, math.fsum), originals, strict=True))
    # no detector is left behind: none of the spellings is seen any more
    lse_direct(torch.ones(2))
    lse_alias(torch.ones(2))
    lse_method(torch.ones(2))
    softmax_functional(torch.ones(2))
    total_fsum_alias([1.0])
    assert calls == []


class _ProfileSpy:
    """A profile function standing in for a debugger or profiler that was active before."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, frame: object, event: str, arg: object) -> None:
        self.events.append(event)


@pytest.mark.parametrize("raises", [False, True], ids=["normal-exit", "body-raises"])
def test_forbid_calls_restores_previous_profile_function(raises: bool) -> None:
    previous = sys.getprofile()
    spy = _ProfileSpy()
    sys.setprofile(spy)
    try:
        if raises:
            with pytest.raises(RuntimeError, match="boom"), forbid_calls("math.fsum"):
                raise RuntimeError("boom")
        else:
            with forbid_calls("math.fsum") as calls:
                before = len(spy.events)
                lse_manual(torch.ones(3))  # a Python call: the spy keeps receiving events
                seen_inside = spy.events[before:]
            assert calls == []
            assert "call" in seen_inside
            assert "return" in seen_inside
        restored = sys.getprofile()
    finally:
        sys.setprofile(previous)
    assert restored is spy


def test_forbid_calls_leaves_no_profile_function_behind() -> None:
    previous = sys.getprofile()
    with forbid_calls("math.fsum"):
        pass
    assert sys.getprofile() is previous


def test_forbid_calls_wrapper_keeps_name() -> None:
    with forbid_calls("torch.nn.functional.softmax", "math.fsum"):
        assert F.softmax.__name__ == "softmax"
        assert math.fsum.__name__ == "fsum"


def test_forbid_calls_nested_blocks() -> None:
    original = torch.logsumexp
    with forbid_calls("torch.logsumexp") as outer:
        with forbid_calls("torch.logsumexp") as inner:
            lse_alias(torch.ones(2))
        assert set(inner) == {"torch.logsumexp"}
        n_inner = len(inner)
        lse_alias(torch.ones(2))
        assert len(inner) == n_inner  # the inner block is over
    assert torch.logsumexp is original
    assert set(outer) == {"torch.logsumexp"}
    assert len(outer) >= 2  # the outer block saw the calls made inside the inner block too


# --------------------------------------------------------------------------- bad targets


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("nodots", "must be a dotted path"),
        ("", "must be a dotted path"),
        ("torch.not_a_function", r"'torch\.not_a_function' does not exist"),
        ("torch.nn.functional.not_a_function", "does not exist"),
        ("math.not_a_function", "does not exist"),
        ("math.pi", "not callable"),
    ],
)
def test_bad_target_raises_value_error(target: str, match: str) -> None:
    with pytest.raises(ValueError, match=match), forbid_calls(target):
        pytest.fail("the block must not run")


@pytest.mark.parametrize("target", [None, 42, ("torch", "logsumexp")], ids=repr)
def test_non_string_target_raises(target: object) -> None:
    with pytest.raises((TypeError, ValueError)), forbid_calls(target):  # type: ignore[arg-type]
        pytest.fail("the block must not run")


def test_bad_target_does_not_call_fn_and_patches_nothing() -> None:
    called = []
    original = torch.logsumexp
    with pytest.raises(ValueError, match="does not exist"):
        call_without(lambda: called.append(1), forbidden=("torch.logsumexp", "torch.not_a_function"))
    assert called == []
    assert torch.logsumexp is original


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("torch.no_such_module.fn", id="missing-submodule"),
        pytest.param("no_such_package_xyz.fn", id="missing-package"),
        pytest.param("no_such_package_xyz.sub.fn", id="missing-nested-package"),
    ],
)
def test_missing_module_target_raises_value_error(target: str) -> None:
    with pytest.raises(ValueError, match="does not exist"), forbid_calls(target):
        pass


def test_a_look_alike_function_of_the_learners_own_is_not_the_library_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "def helper(x):\n    if abs(x) > 3.0:\n        raise ValueError(f'{x} too large')\n    return x\n"
    (tmp_path / "mlcraft_lib_probe.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    mlcraft_lib_probe = importlib.import_module("mlcraft_lib_probe")  # written just above, unknown to mypy

    learner: dict[str, Any] = {}
    exec(compile(source, "<learner cell>", "exec"), learner)  # the same text, written in a notebook
    copy = types.FunctionType(mlcraft_lib_probe.helper.__code__.replace(co_name="renamed"), {"abs": abs})
    for fn, flagged in ((learner["helper"], False), (mlcraft_lib_probe.helper, True), (copy, True)):
        with forbid_calls("mlcraft_lib_probe.helper") as calls:
            fn(1.0)
        assert calls == (["mlcraft_lib_probe.helper"] if flagged else []), fn


def test_a_copy_of_a_documented_library_function_compiled_elsewhere_is_the_library_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        'def helper(x):\n    """Clip-check x."""\n    if abs(x) > 3.0:\n        raise ValueError(x)\n    return x\n'
    )
    (tmp_path / "mlcraft_lib_probe_doc.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("mlcraft_lib_probe_doc")
    # A submission that reads the library's file and execs it under another name and file.
    copied: dict[str, Any] = {"__name__": "_private_copy"}
    exec(compile((tmp_path / "mlcraft_lib_probe_doc.py").read_text(), "<copy>", "exec"), copied)
    # The same code with another docstring is the learner's own.
    own: dict[str, Any] = {}
    exec(compile(source.replace("Clip-check x.", "Mine."), "<learner cell>", "exec"), own)
    for fn, flagged in ((copied["helper"], True), (own["helper"], False)):
        with forbid_calls("mlcraft_lib_probe_doc.helper") as calls:
            fn(1.0)
        assert calls == (["mlcraft_lib_probe_doc.helper"] if flagged else []), fn


# --- every way to reach a forbidden function -------------------------------------------------
def _in_a_thread(fn: Callable[[], object]) -> Callable[[], None]:
    import threading

    def run() -> None:
        threading.Thread(target=fn).start()

    return run


class _Holder:
    def p50(self, x: list[float]) -> Any:  # numpy types np.median as Any
        return np.median(x)


_X = [3.0, 1.0, 2.0, 5.0]
_QUANTILE = forbidden_family("quantile")


@pytest.mark.parametrize(
    ("label", "fn", "forbidden"),
    [
        ("module function", lambda: np.percentile(_X, 90), _QUANTILE),
        ("nan variant of the family", lambda: np.nanpercentile(_X, 90), _QUANTILE),
        ("alias", lambda: __import__("numpy").quantile(_X, 0.9), _QUANTILE),
        ("getattr", lambda: getattr(np, "percentile")(_X, 90), _QUANTILE),  # noqa: B009
        ("functools.partial", lambda: functools.partial(np.percentile, q=90)(_X), _QUANTILE),
        ("map", lambda: list(map(np.median, [_X, _X])), _QUANTILE),
        ("method of an object", lambda: _Holder().p50(_X), _QUANTILE),
        ("tensor method", lambda: torch.tensor(_X).quantile(0.9), _QUANTILE),
        ("torch function", lambda: torch.quantile(torch.tensor(_X), 0.9), _QUANTILE),
        ("kthvalue", lambda: torch.tensor(_X).kthvalue(2), _QUANTILE),
        ("operator.methodcaller", lambda: operator.methodcaller("median")(torch.tensor(_X)), _QUANTILE),
        ("pandas method", lambda: pd.Series(_X).quantile(0.9), _QUANTILE),
        ("scipy.stats", lambda: scipy.stats.scoreatpercentile(_X, 90), _QUANTILE),
        ("statistics", lambda: statistics.quantiles(_X, n=10), _QUANTILE),
        ("in a thread", _in_a_thread(lambda: np.percentile(_X, 90)), _QUANTILE),
        ("builtin function", lambda: sorted(_X), ("builtins.sorted",)),
        ("bound C method", lambda: list(_X).sort(), ("builtins.list.sort",)),
        ("bound numpy C method", lambda: np.array(_X).sort(), ("numpy.ndarray.sort",)),
        ("C function of a module", lambda: math.fsum(_X), ("math.fsum",)),
        ("plain Python method under torch", lambda: torch.cuda.is_bf16_supported(), ("torch.cuda.is_bf16_supported",)),
        (
            "module call runs forward",
            lambda: torch.nn.MultiheadAttention(4, 1)(*[torch.zeros(1, 2, 4)] * 3),
            ("torch.nn.MultiheadAttention.forward",),
        ),
        ("code object copy", lambda: _copied_percentile()(_X, 90), ("numpy.percentile",)),
    ],
)
def test_every_way_to_reach_a_forbidden_function_is_seen(
    label: str, fn: Callable[[], object], forbidden: tuple[str, ...]
) -> None:
    import time

    with pytest.raises(ForbiddenCallError):
        call_without(fn, forbidden=forbidden)
        time.sleep(0.2)  # a thread started by fn has finished
        raise AssertionError(f"{label}: not seen")


def _copied_percentile() -> types.FunctionType:
    import types

    plain = inspect.unwrap(np.percentile)
    copy = types.FunctionType(plain.__code__.replace(co_name="p"), plain.__globals__, "p", plain.__defaults__)
    copy.__kwdefaults__ = plain.__kwdefaults__
    return copy


def test_the_same_work_written_out_is_not_flagged() -> None:
    def p90(values: list[float]) -> float:
        ordered: list[float] = []
        for v in values:
            ordered.insert(sum(1 for o in ordered if o <= v), v)
        return ordered[int(0.9 * (len(ordered) - 1))]

    assert call_without(p90, _X, forbidden=(*_QUANTILE, "builtins.sorted", "builtins.list.sort")) == 3.0


def test_forbidden_family_names_only_what_exists_and_rejects_unknown_families() -> None:
    assert "numpy.nanpercentile" in _QUANTILE and "torch.Tensor.quantile" in _QUANTILE
    assert set(forbidden_family("histogram")) >= {"numpy.histogram", "torch.histc", "pandas.cut"}
    with pytest.raises(ValueError, match="no family 'nope'"):
        forbidden_family("nope")
