"""Tests for mlcraft.utils.device: best_device, amp_dtype, needs_grad_scaler."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mlcraft.utils.device import amp_dtype, best_device, needs_grad_scaler


def _fake_bf16(supported: bool, seen: list[dict[str, object]] | None = None) -> Callable[..., bool]:
    """A stand-in for ``torch.cuda.is_bf16_supported`` that records how it was called."""

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        if seen is not None:
            seen.append({"including_emulation": including_emulation})
        return supported

    return is_bf16_supported


# --------------------------------------------------------------------------- best_device


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [
        (True, True, "cuda"),  # cuda wins over mps
        (True, False, "cuda"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ],
)
def test_best_device_priority(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    dev = best_device()
    assert isinstance(dev, torch.device)
    assert dev == torch.device(expected)


def test_best_device_without_mps_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # Older or stripped-down torch builds have no torch.backends.mps at all.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(torch.backends, "mps")
    assert best_device() == torch.device("cpu")


def test_best_device_matches_this_machine() -> None:
    dev = best_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev == torch.device("cpu")


# --------------------------------------------------------------------------- amp_dtype


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "cpu:0", torch.device("cpu", 0)], ids=str)
def test_amp_dtype_cpu_is_bfloat16(device: str | torch.device) -> None:
    assert amp_dtype(device) is torch.bfloat16


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda"), torch.device("cuda", 0)], ids=str)
def test_amp_dtype_cuda_with_bf16_card(monkeypatch: pytest.MonkeyPatch, device: str | torch.device) -> None:
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", _fake_bf16(True, seen))
    assert amp_dtype(device) is torch.bfloat16
    # Native support only: emulated bf16 on pre-Ampere cards is slow.
    assert seen == [{"including_emulation": False}]


@pytest.mark.parametrize("device", ["cuda", torch.device("cuda", 0)], ids=str)
def test_amp_dtype_cuda_without_bf16_is_float16(monkeypatch: pytest.MonkeyPatch, device: str | torch.device) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", _fake_bf16(False))
    dtype = amp_dtype(device)
    assert dtype is torch.float16
    assert needs_grad_scaler(dtype) is True


def test_amp_dtype_cuda_emulated_bf16_only_is_float16(monkeypatch: pytest.MonkeyPatch) -> None:
    # A card that supports bf16 only through emulation (e.g. a T4) must get fp16.
    def emulated_only(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated_only)
    assert amp_dtype("cuda") is torch.float16


def test_amp_dtype_cuda_when_cuda_absent_is_float16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", _fake_bf16(True))
    assert amp_dtype("cuda") is torch.float16


@pytest.mark.parametrize("device", ["mps", torch.device("mps")], ids=str)
def test_amp_dtype_mps_is_float16(device: str | torch.device) -> None:
    assert amp_dtype(device) is torch.float16


@pytest.mark.parametrize("device", ["meta", "xla", torch.device("meta")], ids=str)
def test_amp_dtype_unknown_device_type_raises(device: str | torch.device) -> None:
    with pytest.raises(ValueError, match="no autocast dtype known for device type"):
        amp_dtype(device)


# Explicit ids: a bare "gpu" id would make the gpu-marker plugin skip this test on CPU-only
# machines (it checks ``"gpu" in item.keywords``, which includes parametrize ids).
@pytest.mark.parametrize("device", ["gpu", "", "cuda:x", "CPU!"], ids=lambda s: f"bad-{s!r}")
def test_amp_dtype_bad_device_string_raises_value_error(device: str) -> None:
    with pytest.raises(ValueError, match="unknown device"):
        amp_dtype(device)


@pytest.mark.parametrize("device", [0, None, 1.5, ["cpu"]], ids=repr)
def test_amp_dtype_bad_type_raises_type_error(device: object) -> None:
    with pytest.raises(TypeError, match=r"must be a torch\.device or a str"):
        amp_dtype(device)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_amp_dtype_real_cuda_matches_hardware() -> None:
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    assert amp_dtype("cuda") is expected
    assert best_device().type == "cuda"


# --------------------------------------------------------------------------- needs_grad_scaler


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.float16, True),
        (torch.bfloat16, False),
        (torch.float32, False),
        (torch.float64, False),
    ],
    ids=str,
)
def test_needs_grad_scaler(dtype: torch.dtype, expected: bool) -> None:
    assert needs_grad_scaler(dtype) is expected


def test_cpu_amp_never_needs_grad_scaler() -> None:
    assert needs_grad_scaler(amp_dtype("cpu")) is False
