"""Tests for mlcraft.classroom.testing.tolerances: assert_close and default_tolerances."""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np
import pytest
import torch

from mlcraft.classroom.testing.tolerances import assert_close, default_tolerances


class AssertCloseOptions(TypedDict, total=False):
    """Keyword arguments of ``assert_close`` that tests pass through ``**kwargs`` (all but ``msg``)."""

    rtol: float | None
    atol: float | None
    check_dtype: bool
    check_device: bool


# The documented defaults: torch.testing.assert_close's per-dtype values on the CPU
# (https://pytorch.org/docs/stable/testing.html), float32 loosened to 1e-4 on accelerators.
CPU_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
    torch.complex64: (1.3e-6, 1e-5),
    torch.complex128: (1e-7, 1e-7),
}
ACCELERATOR_FLOAT32 = (1e-4, 1e-5)
EXACT_DTYPES = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def documented_tolerances(dtype: torch.dtype, device: torch.device) -> tuple[float, float]:
    if dtype == torch.float32 and device.type != "cpu":
        return ACCELERATOR_FLOAT32
    return CPU_TOLERANCES.get(dtype, (0.0, 0.0))


# --------------------------------------------------------------------------- default_tolerances


@pytest.mark.parametrize("dtype", list(CPU_TOLERANCES), ids=str)
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "cpu:0"], ids=str)
def test_default_tolerances_cpu(dtype: torch.dtype, device: str | torch.device) -> None:
    assert default_tolerances(dtype, device) == CPU_TOLERANCES[dtype]


@pytest.mark.parametrize("dtype", list(CPU_TOLERANCES), ids=str)
def test_default_tolerances_default_device_is_cpu(dtype: torch.dtype) -> None:
    assert default_tolerances(dtype) == CPU_TOLERANCES[dtype]


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0), "mps"], ids=str)
@pytest.mark.parametrize("dtype", list(CPU_TOLERANCES), ids=str)
def test_default_tolerances_accelerator(dtype: torch.dtype, device: str | torch.device) -> None:
    expected = ACCELERATOR_FLOAT32 if dtype == torch.float32 else CPU_TOLERANCES[dtype]
    assert default_tolerances(dtype, device) == expected


@pytest.mark.parametrize("dtype", EXACT_DTYPES, ids=str)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_default_tolerances_exact_for_integers_and_bool(dtype: torch.dtype, device: str) -> None:
    assert default_tolerances(dtype, device) == (0.0, 0.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_default_rtol_covers_a_few_ulps(dtype: torch.dtype) -> None:
    # Oracle: the relative tolerance should sit between 1 and 16 machine epsilons of the dtype
    # on the CPU, so that rounding passes and real errors fail.
    eps = torch.finfo(dtype).eps
    rtol, _ = default_tolerances(dtype, "cpu")
    assert eps <= rtol <= 16 * eps


# --------------------------------------------------------------------------- within / just outside

# (expected, just inside, just outside) per dtype, the bounds fixed by the documented tolerances.
# Each tuple is checked against a float64 oracle below, after rounding to the dtype.
CPU_CASES: dict[torch.dtype, list[tuple[float, float, float]]] = {
    torch.float64: [(1.0, 1.0 + 1.9e-7, 1.0 + 2.1e-7), (-100.0, -100.0 - 1.0e-5, -100.0 - 1.02e-5)],
    torch.float32: [(1.0, 1.0 + 1.1e-5, 1.0 + 1.2e-5), (-100.0, -100.000135, -100.000145)],
    torch.float16: [(1.0, 1.0 + 2**-10, 1.0 + 2**-9), (-100.0, -100.0625, -100.125)],
    torch.bfloat16: [(1.0, 1.0 + 2**-6, 1.0 + 3 * 2**-7), (-100.0, -101.5, -102.0)],
}
ACCELERATOR_FLOAT32_CASES = [(1.0, 1.0 + 1.05e-4, 1.0 + 1.15e-4), (-100.0, -100.0099, -100.0101)]


def _cases(dtype: torch.dtype, device: torch.device) -> list[tuple[float, float, float]]:
    if dtype == torch.float32 and device.type != "cpu":
        return ACCELERATOR_FLOAT32_CASES
    return CPU_CASES[dtype]


def _within(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    """Float64 oracle of ``|a - e| <= atol + rtol * |e|``."""
    a = actual.detach().cpu().to(torch.float64)
    e = expected.detach().cpu().to(torch.float64)
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all())


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_passes_within_and_fails_just_outside_default_tolerance(dtype: torch.dtype, device: torch.device) -> None:
    rtol, atol = documented_tolerances(dtype, device)
    for exp, inside, outside in _cases(dtype, device):
        e = torch.tensor([exp], dtype=dtype, device=device)
        a_in = torch.tensor([inside], dtype=dtype, device=device)
        a_out = torch.tensor([outside], dtype=dtype, device=device)
        # guard the test data itself against rounding to the dtype
        assert not torch.equal(a_in, e)
        assert _within(a_in, e, rtol, atol)
        assert not _within(a_out, e, rtol, atol)

        assert_close(a_in, e)
        assert_close(e, e.clone())
        with pytest.raises(AssertionError):
            assert_close(a_out, e)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_large_tensor_with_one_bad_element_fails(dtype: torch.dtype, device: torch.device) -> None:
    rtol, atol = documented_tolerances(dtype, device)
    g = torch.Generator().manual_seed(0)
    expected = torch.randn(64, 32, generator=g, dtype=torch.float64).to(dtype).to(device)
    assert_close(expected.clone(), expected)
    bad = expected.clone()
    bad[17, 3] = bad[17, 3] + 4 * (atol + rtol * bad[17, 3].abs()) + 1
    with pytest.raises(AssertionError, match=r"17, 3"):
        assert_close(bad, expected)


def test_explicit_tolerances_override_defaults(device: torch.device) -> None:
    e = torch.tensor([1.0], dtype=torch.float32, device=device)
    a = torch.tensor([1.05], dtype=torch.float32, device=device)
    with pytest.raises(AssertionError):
        assert_close(a, e)
    assert_close(a, e, rtol=0.1, atol=0.0)
    assert_close(a, e, rtol=0.0, atol=0.06)
    with pytest.raises(AssertionError):
        assert_close(a, e, rtol=0.0, atol=0.04)
    with pytest.raises(AssertionError):
        assert_close(
            torch.tensor([1.0 + 1e-7], dtype=torch.float64),
            torch.tensor([1.0], dtype=torch.float64),
            rtol=0.0,
            atol=0.0,
        )


@pytest.mark.parametrize("kwargs", [{"rtol": 1e-3}, {"atol": 1e-3}, {"rtol": 0.0}, {"atol": 0.0}], ids=str)
def test_only_one_tolerance_raises(kwargs: AssertCloseOptions) -> None:
    x = torch.ones(3)
    with pytest.raises(ValueError, match="pass both rtol and atol or neither"):
        assert_close(x, x, **kwargs)


@pytest.mark.parametrize(
    ("rtol", "atol"), [(-1e-3, 0.0), (0.0, -1e-9), (math.nan, 0.0), (0.0, math.inf), (math.inf, math.inf)]
)
def test_invalid_tolerances_raise(rtol: float, atol: float) -> None:
    x = torch.ones(3)
    with pytest.raises(ValueError, match="tolerances must be finite and >= 0"):
        assert_close(x, x, rtol=rtol, atol=atol)


def test_integer_tensors_compare_exactly(device: torch.device) -> None:
    e = torch.tensor([1, 2, 3], device=device)
    assert_close(e.clone(), e)
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1, 2, 4], device=device), e)


def test_bool_tensors_compare_exactly(device: torch.device) -> None:
    e = torch.tensor([True, False], device=device)
    assert_close(e.clone(), e)
    with pytest.raises(AssertionError):
        assert_close(~e, e)


def test_complex_tensors(device: torch.device) -> None:
    e = torch.tensor([1 + 1j, -2 + 0.5j], dtype=torch.complex128, device=device)
    assert_close(e + 1e-9, e)
    with pytest.raises(AssertionError):
        assert_close(e + 1e-3j, e)


# --------------------------------------------------------------------------- shape / dtype / device


@pytest.mark.parametrize(
    ("actual_shape", "expected_shape"), [((3,), (1, 3)), ((1,), ()), ((2, 3), (3, 2)), ((0,), (1,)), ((3,), (1,))]
)
def test_shape_mismatch_fails_without_broadcasting(
    actual_shape: tuple[int, ...], expected_shape: tuple[int, ...], device: torch.device
) -> None:
    a = torch.ones(actual_shape, device=device)
    e = torch.ones(expected_shape, device=device)
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_close(a, e)


def test_empty_tensors_are_close(device: torch.device) -> None:
    assert_close(torch.empty(0, 3, device=device), torch.empty(0, 3, device=device))


@pytest.mark.parametrize(
    ("actual_dtype", "expected_dtype"),
    [(torch.float32, torch.float64), (torch.float16, torch.bfloat16), (torch.int64, torch.float32)],
    ids=str,
)
def test_dtype_mismatch_fails_by_default(
    actual_dtype: torch.dtype, expected_dtype: torch.dtype, device: torch.device
) -> None:
    a = torch.ones(3, dtype=actual_dtype, device=device)
    e = torch.ones(3, dtype=expected_dtype, device=device)
    with pytest.raises(AssertionError, match="dtype mismatch"):
        assert_close(a, e)
    assert_close(a, e, check_dtype=False)


def test_check_dtype_false_uses_less_precise_tolerance(device: torch.device) -> None:
    # fp16 vs fp64: the fp16 tolerance applies, whichever side has the fp16 tensor.
    half = torch.tensor([1.0 + 2**-10], dtype=torch.float16, device=device)
    exact = torch.tensor([1.0], dtype=torch.float64, device=device)
    assert_close(half, exact, check_dtype=False)
    assert_close(exact, half, check_dtype=False)
    # ... but still fails outside the fp16 tolerance
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0 + 2**-9], dtype=torch.float16, device=device), exact, check_dtype=False)
    # and two float64 values that far apart fail
    with pytest.raises(AssertionError):
        assert_close(half.to(torch.float64), exact)


def test_check_dtype_false_still_fails_on_values(device: torch.device) -> None:
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0], device=device), torch.tensor([2.0], dtype=torch.float64), check_dtype=False)


@pytest.mark.gpu
def test_check_device() -> None:
    on_gpu = torch.ones(3, device="cuda")
    on_cpu = torch.ones(3)
    assert_close(on_gpu, on_cpu)  # expected is moved to actual's device
    with pytest.raises(AssertionError, match="device mismatch"):
        assert_close(on_gpu, on_cpu, check_device=True)
    with pytest.raises(AssertionError):
        assert_close(on_gpu, on_cpu + 1)


@pytest.mark.gpu
def test_float32_on_cuda_uses_accelerator_tolerance() -> None:
    e = torch.tensor([1.0], device="cuda")
    assert_close(torch.tensor([1.0 + 5e-5], device="cuda"), e)
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0 + 5e-5]), e.cpu())


# --------------------------------------------------------------------------- special values


def test_nan_equals_nan(device: torch.device) -> None:
    e = torch.tensor([1.0, math.nan, 3.0], device=device)
    assert_close(e.clone(), e)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [([math.nan], [1.0]), ([1.0], [math.nan]), ([math.nan, 1.0], [1.0, math.nan])],
    ids=["nan-vs-num", "num-vs-nan", "nan-positions-differ"],
)
def test_nan_only_matches_nan(actual: list[float], expected: list[float], device: torch.device) -> None:
    with pytest.raises(AssertionError):
        assert_close(torch.tensor(actual, device=device), torch.tensor(expected, device=device))


def test_inf_matches_same_sign_inf_only(device: torch.device) -> None:
    pos = torch.tensor([math.inf], device=device)
    neg = torch.tensor([-math.inf], device=device)
    assert_close(pos.clone(), pos)
    assert_close(neg.clone(), neg)
    with pytest.raises(AssertionError):
        assert_close(pos, neg)
    with pytest.raises(AssertionError):
        assert_close(neg, pos)
    with pytest.raises(AssertionError):
        assert_close(pos, torch.tensor([torch.finfo(torch.float32).max], device=device))


# --------------------------------------------------------------------------- input types


def test_numpy_arrays_accepted() -> None:
    e = np.array([1.0, 2.0, 3.0])
    assert_close(e.copy(), e)
    assert_close(e, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert_close(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), e)
    with pytest.raises(AssertionError):
        assert_close(e + 1e-3, e)
    with pytest.raises(AssertionError, match="dtype mismatch"):
        assert_close(e.astype(np.float32), e)


def test_numpy_scalars_accepted() -> None:
    assert_close(np.float32(1.0), np.float32(1.0))
    with pytest.raises(AssertionError):
        assert_close(np.float32(1.0), np.float32(1.001))


@pytest.mark.parametrize(("good", "bad"), [(3, 4), (1.5, 1.5001), (True, False), (1 + 2j, 1 + 3j)], ids=repr)
def test_python_numbers_accepted(good: complex, bad: complex) -> None:
    assert_close(good, good)
    with pytest.raises(AssertionError):
        assert_close(bad, good)


def test_python_float_vs_float32_tensor_needs_check_dtype_false() -> None:
    t = torch.tensor(0.5)
    with pytest.raises(AssertionError, match="dtype mismatch"):
        assert_close(t, 0.5)
    assert_close(t, 0.5, check_dtype=False)


def test_lists_accepted() -> None:
    assert_close([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(AssertionError):
        assert_close([1.0, 2.0], [1.0, 2.5])


@pytest.mark.parametrize("bad", ["1.0", None, {"a": 1}, object(), {1.0}], ids=lambda v: type(v).__name__)
def test_unsupported_type_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="actual must be a tensor, an array or a number"):
        assert_close(bad, 1.0)
    with pytest.raises(TypeError, match="expected must be a tensor, an array or a number"):
        assert_close(1.0, bad)


# --------------------------------------------------------------------------- messages


def test_msg_appears_in_error() -> None:
    with pytest.raises(AssertionError, match=r"^my_softmax row sums: .*not close") as info:
        assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]), msg="my_softmax row sums")
    assert "index (1,)" in str(info.value)


@pytest.mark.parametrize(
    ("actual", "expected", "kwargs", "what"),
    [
        (torch.ones(2), torch.ones(3), {}, "shape mismatch"),
        (torch.ones(2), torch.ones(2, dtype=torch.float64), {}, "dtype mismatch"),
    ],
    ids=["shape", "dtype"],
)
def test_msg_prefixes_structural_errors(
    actual: torch.Tensor, expected: torch.Tensor, kwargs: AssertCloseOptions, what: str
) -> None:
    with pytest.raises(AssertionError, match=rf"^exercise 3: {what}"):
        assert_close(actual, expected, msg="exercise 3", **kwargs)


def test_no_msg_no_prefix() -> None:
    with pytest.raises(AssertionError, match=r"^shape mismatch"):
        assert_close(torch.ones(2), torch.ones(3))


# --------------------------------------------------------------------------- monkeypatch resistance


def _always_true(*args: object, **kwargs: object) -> bool:
    return True


def _never_raise(*args: object, **kwargs: object) -> None:
    return None


@pytest.mark.parametrize(
    "patches",
    [
        [(torch, "allclose", _always_true)],
        [(np, "allclose", _always_true)],
        [(torch.testing, "assert_close", _never_raise)],
        [(np.testing, "assert_allclose", _never_raise)],
        [
            (torch, "allclose", _always_true),
            (np, "allclose", _always_true),
            (torch.testing, "assert_close", _never_raise),
            (np.testing, "assert_allclose", _never_raise),
        ],
    ],
    ids=["torch.allclose", "numpy.allclose", "torch.testing.assert_close", "numpy.testing.assert_allclose", "all"],
)
def test_monkeypatching_public_comparisons_cannot_make_wrong_value_pass(
    monkeypatch: pytest.MonkeyPatch, patches: list[tuple[object, str, object]], device: torch.device
) -> None:
    for owner, name, fake in patches:
        monkeypatch.setattr(owner, name, fake)
    for owner, name, fake in patches:
        assert getattr(owner, name) is fake  # the patches took effect
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0], device=device), torch.tensor([2.0], device=device))
    with pytest.raises(AssertionError):
        assert_close(np.array([1.0]), np.array([2.0]))
    # and a right value still passes
    assert_close(torch.tensor([1.0], device=device), torch.tensor([1.0], device=device))


def test_monkeypatching_torch_isclose_cannot_make_wrong_value_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "isclose", lambda a, b, **k: torch.ones_like(a, dtype=torch.bool))
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0]), torch.tensor([2.0]))
