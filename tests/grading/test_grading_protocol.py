"""The data-only codec the grader and the grading kernel share: what crosses, and what never does."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mlcraft.classroom.grading.protocol import DataError, DataLimits, decode, encode, encode_into, exception_class


def _roundtrip(value: Any) -> Any:
    tree, buffers = encode(value)
    # The tree is plain JSON, as it travels in a Jupyter message.
    return decode(json.loads(json.dumps(tree, allow_nan=False)), buffers)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**200),
        2**63,
        1.5,
        -0.0,
        "é two ways",
        b"\x00\xff",
        bytearray(b"ab"),
        [1, [2, (3, "x")]],
        {"a": 1, 2: [3.0], (1, "t"): None},
        {1, 2, 3},
        frozenset({"a"}),
        complex(1, -2),
        torch.float16,
        torch.device("cpu"),
        torch.Size([2, 3]),
        slice(1, None, 2),
        range(0, 10, 3),
        Ellipsis,
        Path("/tmp/a.pt"),
    ],
    ids=repr,
)
def test_plain_values_roundtrip_exactly(value: Any) -> None:
    back = _roundtrip(value)
    assert back == value and type(back) is type(value)


def test_non_finite_floats_roundtrip() -> None:
    back = _roundtrip([math.inf, -math.inf, math.nan])
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2])


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.bool, torch.complex64]
)
def test_tensors_keep_dtype_shape_values_and_layout(dtype: torch.dtype) -> None:
    base = (torch.arange(24).reshape(2, 3, 4) % 5).to(dtype)
    for tensor in (base, base.transpose(0, 2), base[:, ::2], base[:1].expand(4, 3, 4), base[0, 0, 0], base[:0]):
        back = _roundtrip(tensor)
        assert back.dtype == dtype and back.shape == tensor.shape and back.device == tensor.device
        assert torch.equal(back, tensor)
        assert back.stride() == tensor.stride() or tensor.numel() == 0, "contiguity is observable by tests"
        assert back.is_contiguous() == tensor.is_contiguous() or tensor.numel() == 0


def test_tensor_flags_and_meta_tensors() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    back = _roundtrip(p)
    assert isinstance(back, torch.nn.Parameter) and back.requires_grad
    meta = _roundtrip(torch.empty(3, 4, device="meta", dtype=torch.float16))
    assert meta.device.type == "meta" and meta.shape == (3, 4) and meta.dtype == torch.float16


def test_tensor_subclasses_arrive_as_plain_tensors() -> None:
    class Liar(torch.Tensor):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    lying = torch.zeros(3).as_subclass(Liar)
    back = _roundtrip(lying)
    assert type(back) is torch.Tensor
    assert not torch.equal(back, torch.ones(3))


def test_numpy_arrays_and_scalars_roundtrip() -> None:
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array(["ab", "c"]), np.float64(2.5), np.int8(-3)):
        back = _roundtrip(value)
        assert type(back) is type(value) and np.array_equal(back, value) and back.dtype == value.dtype


@pytest.mark.parametrize(
    "value",
    [lambda: 1, torch, object(), np.array([object()]), torch.nn.Linear(2, 2), iter([1]), (i for i in range(2))],
    ids=["function", "module", "object", "object-array", "module-instance", "iterator", "generator"],
)
def test_objects_that_are_not_data_are_refused(value: Any) -> None:
    with pytest.raises(DataError, match="cannot be sent"):
        encode(value)


def test_cycles_and_limits_are_refused_on_both_sides() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(DataError, match="deeper"):
        encode(cycle)
    small = DataLimits(max_bytes=100, max_nodes=10, max_text=5)
    for value in (torch.zeros(100), list(range(20)), "abcdefgh"):
        with pytest.raises(DataError):
            encode(value, small)
        tree, buffers = encode(value)
        with pytest.raises(DataError):
            decode(tree, buffers, small)


@pytest.mark.parametrize(
    ("tree", "buffers"),
    [
        ({"t": "pickle", "v": "gASV"}, []),
        ({"t": "tensor", "dtype": "float32", "shape": [4], "device": "cpu", "b": 0}, [b"\0" * 3]),
        ({"t": "tensor", "dtype": "float32", "shape": [4], "device": "cpu", "b": 3}, [b"\0" * 16]),
        ({"t": "tensor", "dtype": "object", "shape": [1], "device": "cpu", "b": 0}, [b"\0" * 8]),
        ({"t": "tensor", "dtype": "float32", "shape": [2], "strides": [2**40], "device": "cpu", "b": 0}, [b"\0" * 8]),
        ({"t": "tensor", "dtype": "float32", "shape": [-1], "device": "cpu", "b": 0}, [b""]),
        ({"t": "tensor", "dtype": "float32", "shape": [1], "device": "cuda:99", "b": 0}, [b"\0" * 4]),
        ({"t": "ndarray", "dtype": "|O", "shape": [1], "b": 0}, [b"\0" * 8]),
        ({"t": "dict", "v": [[{"t": "list", "v": []}, 1]]}, []),
        ({"t": "float", "v": "1e999"}, []),
        (float("nan"), []),
        ({"t": "int", "v": "f" * 5000}, []),
        ({"t": "exception", "mro": "ValueError", "message": "x"}, []),
        ([1, 2], []),
    ],
    ids=[
        "unknown-tag",
        "short-buffer",
        "bad-index",
        "bad-dtype",
        "huge-strides",
        "negative-shape",
        "missing-device",
        "object-array",
        "unhashable-key",
        "bad-float",
        "bare-nan",
        "huge-int",
        "bad-exception",
        "bare-list",
    ],
)
def test_malformed_data_is_refused(tree: Any, buffers: list[bytes]) -> None:
    with pytest.raises(DataError):
        decode(tree, buffers)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    tree: Any = 1
    for _ in range(5000):
        tree = {"t": "list", "v": [tree]}
    with pytest.raises(DataError):
        decode(tree, [])


def test_exceptions_map_to_builtins_or_safe_subclasses() -> None:
    assert exception_class([["builtins", "ValueError"], ["builtins", "Exception"]]) is ValueError
    remote = exception_class(
        [["pydantic_core", "ValidationError"], ["builtins", "ValueError"], ["builtins", "Exception"]]
    )
    assert issubclass(remote, ValueError) and remote.__name__ == "ValidationError"
    # A learner's KeyboardInterrupt or SystemExit can never pass for the grader's own.
    for name in ("KeyboardInterrupt", "SystemExit", "GeneratorExit"):
        cls = exception_class([["builtins", name], ["builtins", "BaseException"]])
        assert issubclass(cls, Exception) and cls.__name__ == name
    err = _roundtrip(ZeroDivisionError("division by zero"))
    assert type(err) is ZeroDivisionError and str(err) == "division by zero"


def test_encode_into_shifts_buffer_indices() -> None:
    buffers: list[bytes] = []
    first = encode_into(torch.ones(2), buffers)
    second = encode_into([b"x", torch.zeros(3)], buffers)
    assert torch.equal(decode(first, buffers), torch.ones(2))
    assert decode(second, buffers)[0] == b"x" and torch.equal(decode(second, buffers)[1], torch.zeros(3))


def test_a_buffer_named_many_times_counts_each_time() -> None:
    tensor = {"t": "tensor", "dtype": "float32", "shape": [25], "device": "cpu", "b": 0}
    buffers = [b"\0" * 100]
    assert len(decode({"t": "list", "v": [tensor] * 2}, buffers, DataLimits(max_bytes=200))) == 2
    with pytest.raises(DataError, match="bytes"):
        decode({"t": "list", "v": [tensor] * 3}, buffers, DataLimits(max_bytes=200))
