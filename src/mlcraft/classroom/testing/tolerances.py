"""Tolerance-aware comparisons for tests and nbgrader test cells.

Tolerances follow ``torch.testing.assert_close``'s defaults per dtype, loosened on
accelerators, where reductions run in a different order (TF32 matmuls on Ampere+, fused
kernels). The comparison is done with functions captured at import time, so a notebook that
monkeypatches ``torch.allclose`` or ``numpy.allclose`` cannot make a wrong answer pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["assert_close", "default_tolerances"]

# dtype -> (rtol, atol); same values as torch.testing for the CPU.
_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
    torch.complex64: (1.3e-6, 1e-5),
    torch.complex128: (1e-7, 1e-7),
}
# On accelerators float32 matmuls may use TF32 (10-bit mantissa) and other reduction orders.
_ACCELERATOR_FLOAT32 = (1e-4, 1e-5)

# Captured once, so later monkeypatching of the public names (torch.allclose, torch.isclose,
# torch.testing.assert_close, numpy.allclose...) has no effect on the comparison below.
_as_tensor = torch.as_tensor
_Tensor = torch.Tensor
_abs, _isnan, _isinf, _isfinite = torch.abs, torch.isnan, torch.isinf, torch.isfinite
_logical_and, _logical_or, _logical_not = torch.logical_and, torch.logical_or, torch.logical_not
_eq, _le, _where, _argmax = torch.eq, torch.le, torch.where, torch.argmax
_count, _any = torch.count_nonzero, torch.any
_unravel = torch.unravel_index


def default_tolerances(dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[float, float]:
    """``(rtol, atol)`` for comparing values of ``dtype`` computed on ``device``.

    Integer and bool dtypes compare exactly: ``(0.0, 0.0)``.
    """
    if isinstance(device, torch.device):
        dev_type = device.type
    else:
        try:
            dev_type = torch.device(device).type
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"unknown device {device!r}: expected e.g. 'cpu' or 'cuda'") from err
    if dtype == torch.float32 and dev_type != "cpu":
        return _ACCELERATOR_FLOAT32
    return _TOLERANCES.get(dtype, (0.0, 0.0))


def _to_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, _Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic, list, tuple, int, float, bool, complex)):
        return _as_tensor(np.asarray(value))
    raise TypeError(f"{name} must be a tensor, an array or a number, got {type(value).__name__}")


def assert_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    check_device: bool = False,
    msg: str = "",
) -> None:
    """Assert ``actual`` matches ``expected`` elementwise: ``|a - e| <= atol + rtol * |e|``.

    - Tolerances default to :func:`default_tolerances` of the *less precise* dtype of the two
      and of ``actual``'s device; pass both ``rtol`` and ``atol`` to override.
    - Shapes must match exactly (no broadcasting). NaN equals NaN only where both have it;
      ``inf`` must match ``inf`` of the same sign.
    - ``check_dtype`` (default on) requires the same dtype; ``check_device`` requires the same
      device; otherwise ``expected`` is moved to ``actual``'s device before comparing.

    Raises:
        AssertionError: with the largest mismatch, its index and ``msg``.
        TypeError: for inputs that are not tensors, arrays or numbers.
        ValueError: if only one of ``rtol`` / ``atol`` is given.
    """
    if (rtol is None) != (atol is None):
        raise ValueError(f"pass both rtol and atol or neither (got rtol={rtol}, atol={atol})")
    a = _to_tensor(actual, "actual")
    e = _to_tensor(expected, "expected")
    prefix = f"{msg}: " if msg else ""
    if tuple(a.shape) != tuple(e.shape):
        raise AssertionError(f"{prefix}shape mismatch: actual {tuple(a.shape)} vs expected {tuple(e.shape)}")
    if check_dtype and a.dtype != e.dtype:
        raise AssertionError(f"{prefix}dtype mismatch: actual {a.dtype} vs expected {e.dtype}")
    if check_device and a.device != e.device:
        raise AssertionError(f"{prefix}device mismatch: actual {a.device} vs expected {e.device}")
    e = e.to(a.device)
    if rtol is None or atol is None:
        rtol_a, atol_a = default_tolerances(a.dtype, a.device)
        rtol_e, atol_e = default_tolerances(e.dtype, a.device)
        rtol, atol = max(rtol_a, rtol_e), max(atol_a, atol_e)
    if not (math.isfinite(rtol) and math.isfinite(atol) and rtol >= 0 and atol >= 0):
        raise ValueError(f"tolerances must be finite and >= 0, got rtol={rtol}, atol={atol}")
    _compare(a, e, rtol, atol, prefix)


def _compare(a: torch.Tensor, e: torch.Tensor, rtol: float, atol: float, prefix: str) -> None:
    """Elementwise ``|a - e| <= atol + rtol * |e|`` in float64 (complex128), NaN == NaN, inf == inf."""
    wide = torch.complex128 if (a.is_complex() or e.is_complex()) else torch.float64
    a64, e64 = a.detach().to("cpu", wide), e.detach().to("cpu", wide)
    both_nan = _logical_and(_isnan(a64), _isnan(e64))
    same_inf = _logical_and(_logical_or(_isinf(a64), _isinf(e64)), _eq(a64, e64))
    diff = _abs(a64 - e64)
    within = _le(diff, atol + rtol * _abs(e64))
    finite = _logical_and(_isfinite(a64), _isfinite(e64))
    ok = _logical_or(_logical_or(both_nan, same_inf), _logical_and(finite, within))
    if not bool(_any(_logical_not(ok))):
        return
    bad = int(_count(_logical_not(ok)))
    # Rank mismatches by absolute difference; NaN against a number counts as infinitely far.
    inf64, zero64 = _as_tensor(float("inf"), dtype=torch.float64), _as_tensor(0.0, dtype=torch.float64)
    diff = _where(ok, zero64, _where(_isnan(diff), inf64, diff))
    worst = int(_argmax(diff.reshape(-1)))
    index = tuple(int(i) for i in _unravel(_as_tensor(worst), tuple(a.shape))) if a.dim() else ()
    raise AssertionError(
        f"{prefix}values are not close: {bad} of {a.numel()} elements differ "
        f"(rtol={rtol:g}, atol={atol:g}); worst at index {index}: actual {a64.reshape(-1)[worst].item()} "
        f"vs expected {e64.reshape(-1)[worst].item()}"
    )
