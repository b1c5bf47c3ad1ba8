"""What the grader and the grading kernel share: paths, message types, limits and a data-only codec.

The kernel runs the student's code and can be made to say anything, so the grader only ever
takes *data* from it, in the tagged JSON tree plus binary buffers defined here:

- ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bytearray``;
- ``list``, ``tuple``, ``set``, ``frozenset`` and ``dict`` of data; ``slice``, ``range``, ``...``;
- torch tensors (subclasses arrive as plain tensors), dtypes, devices and sizes; NumPy arrays
  and scalars of number, string, datetime and timedelta dtypes; ``pathlib`` paths; exceptions
  (as built-in classes or safe stand-ins, see :func:`exception_class`);
- pandas ``DataFrame``, ``Series`` and ``Index`` with number, nullable, datetime (naive or with a
  time zone), timedelta, string, category and plain-object columns, and the scalars
  ``Timestamp``, ``Timedelta``, ``NaT`` and ``NA``; polars ``DataFrame`` and ``Series`` of
  numbers, booleans, strings, categoricals (as strings), dates, datetimes, durations and nulls
  (see :mod:`mlcraft.classroom.grading.frames`; pandas and polars are imported only when met).

There is no pickle and no object the student's code could have written a method for:
:func:`decode` builds fresh built-in objects, plain tensors, arrays and tables, and refuses
anything deeper, larger or stranger than the limits below with a :class:`DataError`.

A value is encoded as ``(tree, buffers)``: ``tree`` is JSON (``None``, ``bool``, ``str``, a
small ``int``, a finite ``float``, or a ``{"t": tag, ...}`` node), ``buffers`` hold the raw
bytes of tensors, arrays and ``bytes`` (referred to by index, ``"b"``).
"""

from __future__ import annotations

import builtins
import math
import pathlib
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "DATA_LIMITS",
    "KERNEL_CONNECTION_FILE",
    "KERNEL_IP",
    "KERNEL_MODULE",
    "KERNEL_WORKDIR",
    "REPLY_TYPE",
    "REQUEST_TYPE",
    "SANDBOX_SCRATCH",
    "DataError",
    "DataLimits",
    "decode",
    "encode",
    "encode_into",
    "exception_class",
    "shift_buffers",
]

# --- the sandbox's fixed layout (inside the kernel's own mount namespace) --------------------
#: The kernel's only writable space: one size-capped tmpfs (its working folder, /dev/shm and
#: the sockets live in it).
SANDBOX_SCRATCH = "/tmp"
#: The kernel's working folder; files an assignment ships beside the notebook appear here.
KERNEL_WORKDIR = "/tmp/work"
#: Where the kernel binds its sockets (ipc transport) and reads its connection file.
KERNEL_IP = "/tmp/.ipc/kernel"
KERNEL_CONNECTION_FILE = "/tmp/.ipc/kernel.json"
#: ``python -m KERNEL_MODULE -f CONNECTION_FILE`` starts the grading kernel.
KERNEL_MODULE = "mlcraft.classroom.grading.kernel"

# --- messages on the kernel's shell channel ---------------------------------------------------
#: A request from the grader: ``{"op": "call" | "run" | "describe", ...}`` (see ``mlcraft.classroom.grading.agent``).
REQUEST_TYPE = "mlcraft_request"
#: The kernel's answer: ``{"status": "ok" | "raised" | "error", ...}``.
REPLY_TYPE = "mlcraft_reply"


@dataclass(frozen=True)
class DataLimits:
    """How much data one message may carry; anything beyond is refused, never truncated."""

    max_depth: int = 48  # nesting of containers
    max_nodes: int = 2_000_000  # values in one message, containers included
    max_bytes: int = 256 * 2**20  # raw bytes of all tensors, arrays and bytes
    max_text: int = 16 * 2**20  # characters of all strings
    max_int_digits: int = 4096  # hex digits of one big int


DATA_LIMITS = DataLimits()


class DataError(ValueError):
    """A value cannot be sent (encoding) or a message does not hold valid data (decoding)."""


# torch and numpy dtypes that travel; anything else (quantized, object arrays...) is refused.
_TORCH_DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.complex64,
        torch.complex128,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    )
}
_NUMPY_KINDS = set("biufcSUmM")  # bool, ints, floats, complex, bytes, str, timedelta, datetime
_SCALARS = (type(None), bool, str)


class _Budget:
    """The node and text counts of one message, shared by encoding and decoding."""

    limits: DataLimits
    nodes: int
    text: int

    def add_nodes(self, count: int) -> None:
        self.nodes += count
        if self.nodes > self.limits.max_nodes:
            raise DataError(f"more than {self.limits.max_nodes} values in one message")

    def add_text(self, count: int) -> None:
        self.text += count
        if self.text > self.limits.max_text:
            raise DataError(f"more than {self.limits.max_text} characters of text in one message")


class _Encoder(_Budget):
    def __init__(self, limits: DataLimits) -> None:
        self.limits = limits
        self.buffers: list[bytes] = []
        self.nodes = 0
        self.nbytes = 0
        self.text = 0

    def reserve(self, nbytes: int) -> None:
        """Refuse data past the byte limit before it is copied: a huge tensor fails at once."""
        if self.nbytes + nbytes > self.limits.max_bytes:
            raise DataError(f"more than {self.limits.max_bytes} bytes of tensor/array data in one value")

    def buffer(self, data: bytes) -> int:
        """The index of a new buffer holding ``data``."""
        self.reserve(len(data))
        self.nbytes += len(data)
        self.buffers.append(data)
        return len(self.buffers) - 1

    def encode(self, value: Any, depth: int = 0) -> Any:
        self.add_nodes(1)
        if depth > self.limits.max_depth:
            raise DataError(f"nested deeper than {self.limits.max_depth} levels (a cycle?)")
        kind = type(value)
        if value is None or kind is bool:
            return value
        if kind is str:
            self.add_text(len(value))
            return value
        if kind is int:
            if -(2**53) < value < 2**53:
                return value
            digits = format(value, "x")
            if len(digits) > self.limits.max_int_digits:
                raise DataError(f"an int with more than {self.limits.max_int_digits} hex digits")
            return {"t": "int", "v": digits}
        if kind is float:
            return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
        if kind is complex:
            return {"t": "complex", "v": [self.encode(value.real, depth + 1), self.encode(value.imag, depth + 1)]}
        if kind in (list, tuple, set, frozenset):
            items = sorted(value, key=repr) if kind in (set, frozenset) else value
            return {"t": kind.__name__, "v": [self.encode(v, depth + 1) for v in items]}
        if kind is dict:
            pairs = [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()]
            return {"t": "dict", "v": pairs}
        if kind in (bytes, bytearray):
            return {"t": kind.__name__, "b": self.buffer(bytes(value))}
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, np.ndarray):
            return self._array(value)
        if isinstance(value, np.generic):
            return {"t": "npscalar", "v": self._array(np.asarray(value))}
        if kind is torch.dtype:
            return {"t": "dtype", "v": str(value).removeprefix("torch.")}
        if kind is torch.device:
            return {"t": "device", "v": str(value)}
        if kind is torch.Size:
            return {"t": "size", "v": [int(d) for d in value]}
        if isinstance(value, pathlib.PurePath):
            return {"t": "path", "v": str(value)}
        if kind is slice:
            return {"t": "slice", "v": [self.encode(getattr(value, a), depth + 1) for a in ("start", "stop", "step")]}
        if kind is range:
            return {"t": "range", "v": [value.start, value.stop, value.step]}
        if value is Ellipsis:
            return {"t": "ellipsis"}
        if isinstance(value, BaseException):
            return self._exception(value)
        if "pandas" in sys.modules or "polars" in sys.modules:  # neither is imported for this
            from mlcraft.classroom.grading import frames

            node = frames.encode_value(self, value, depth)
            if node is not None:
                return node
        raise DataError(
            f"a {kind.__module__}.{kind.__qualname__} cannot be sent as data: use numbers, strings, bytes, "
            "tensors, NumPy arrays, pandas or polars tables, dtypes, devices, paths and lists, tuples, sets "
            "or dicts of them"
        )

    def _tensor(self, value: torch.Tensor) -> dict[str, Any]:
        with torch._C.DisableTorchFunctionSubclass():
            if value.layout != torch.strided or value.is_quantized:
                raise DataError(f"a {value.layout} tensor cannot be sent; convert it to a dense tensor first")
            dtype = str(value.dtype).removeprefix("torch.")
            if dtype not in _TORCH_DTYPES:
                raise DataError(f"tensors of dtype {value.dtype} cannot be sent")
            node = {
                "t": "tensor",
                "dtype": dtype,
                "shape": [int(d) for d in value.shape],
                "strides": [int(d) for d in value.stride()],  # layout: contiguous or not is observable
                "device": str(value.device),
                "requires_grad": bool(value.requires_grad),
                "parameter": isinstance(value, torch.nn.Parameter),
            }
            if value.device.type != "meta":
                self.reserve(value.numel() * value.element_size())
                flat = value.detach().resolve_conj().resolve_neg().to("cpu").contiguous().reshape(-1)
                node["b"] = self.buffer(flat.view(torch.uint8).numpy().tobytes())
            return node

    def _array(self, value: np.ndarray) -> dict[str, Any]:
        if value.dtype.kind not in _NUMPY_KINDS or value.dtype.fields is not None:
            raise DataError(f"NumPy arrays of dtype {value.dtype} cannot be sent")
        self.reserve(value.nbytes)
        data = np.ascontiguousarray(value).tobytes()
        return {"t": "ndarray", "dtype": value.dtype.str, "shape": list(value.shape), "b": self.buffer(data)}

    def _exception(self, value: BaseException) -> dict[str, Any]:
        mro = [[c.__module__, c.__qualname__] for c in type(value).__mro__ if issubclass(c, BaseException)]
        message = str(value)[:10_000]
        return {"t": "exception", "mro": mro, "message": message}


def encode(value: Any, limits: DataLimits = DATA_LIMITS) -> tuple[Any, list[bytes]]:
    """``(tree, buffers)`` for ``value``.

    Raises:
        DataError: for a value that is not data (a module, a function, a custom object), or one
            past ``limits``.
    """
    encoder = _Encoder(limits)
    return encoder.encode(value), encoder.buffers


# --- decoding: the trusted side --------------------------------------------------------------
_BUILTIN_EXCEPTIONS = {
    name: obj for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
}
# An exception class made for a remote type is cached so that two raises compare equal.
_REMOTE_CLASSES: dict[tuple[str, str, type], type[Exception]] = {}


def exception_class(mro: list[list[str]]) -> type[Exception]:
    """The local class for a remote exception with this MRO (``[[module, qualname], ...]``).

    Built-in exceptions map to themselves (``ValueError`` is ``ValueError``), except those that
    are not ``Exception`` subclasses (``SystemExit``, ``KeyboardInterrupt``): those, like any
    other class, become a new subclass of the first built-in ``Exception`` in the MRO, with the
    remote name. So ``except ValueError`` catches a remote ``pydantic.ValidationError``, and a
    remote ``KeyboardInterrupt`` can never pass for the grader's own.
    """
    if not mro or not all(isinstance(e, list) and len(e) == 2 and all(isinstance(s, str) for s in e) for e in mro):
        raise DataError("malformed exception")
    module, name = mro[0]
    if module == "builtins" and name in _BUILTIN_EXCEPTIONS and issubclass(_BUILTIN_EXCEPTIONS[name], Exception):
        return _BUILTIN_EXCEPTIONS[name]  # type: ignore[return-value]
    base: type[Exception] = Exception
    for base_module, base_name in mro[1:]:
        candidate = _BUILTIN_EXCEPTIONS.get(base_name) if base_module == "builtins" else None
        if candidate is not None and issubclass(candidate, Exception):
            base = candidate
            break
    key = (module[:200], name[:200], base)
    if key not in _REMOTE_CLASSES:
        clean = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name.rpartition(".")[2]) or "RemoteError"
        cls = type(clean, (base,), {"__module__": key[0], "__qualname__": key[1]})
        _REMOTE_CLASSES[key] = cls
    return _REMOTE_CLASSES[key]


# Tags decoded by mlcraft.classroom.grading.frames (imported, with pandas or polars, only when met).
_FRAME_TAGS = frozenset(
    {"pd_dataframe", "pd_series", "pd_index", "pd_timestamp", "pd_timedelta", "pd_nat", "pd_na"}
    | {"pl_dataframe", "pl_series"}
)


class _Decoder(_Budget):
    def __init__(self, buffers: list[Any], limits: DataLimits) -> None:
        self.buffers = buffers
        self.limits = limits
        self.nodes = 0
        self.text = 0
        self.nbytes = 0
        if sum(len(b) for b in buffers) > limits.max_bytes:
            raise DataError(f"more than {limits.max_bytes} bytes of data")

    def buffer(self, node: dict[str, Any]) -> bytes:
        """The bytes of the buffer ``node["b"]`` names; each use counts toward ``max_bytes`` (a tree
        could name one buffer many times)."""
        index = node.get("b")
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise DataError(f"bad buffer index {index!r}")
        data = bytes(self.buffers[index])
        self.nbytes += len(data)
        if self.nbytes > self.limits.max_bytes:
            raise DataError(f"more than {self.limits.max_bytes} bytes of data (buffers used more than once?)")
        return data

    def decode(self, node: Any, depth: int = 0) -> Any:
        self.add_nodes(1)
        if depth > self.limits.max_depth:
            raise DataError(f"nested deeper than {self.limits.max_depth} levels")
        kind = type(node)
        if node is None or kind in (bool, int):
            return node
        if kind is float:
            if not math.isfinite(node):
                raise DataError("a non-finite float outside a float node")
            return node
        if kind is str:
            self.add_text(len(node))
            return node
        if kind is not dict or type(node.get("t")) is not str:
            raise DataError(f"not a data node: {kind.__name__}")
        tag = node["t"]
        if tag in _FRAME_TAGS:
            from mlcraft.classroom.grading import frames

            return frames.decode_node(self, node, depth)
        handler = getattr(self, f"_d_{tag}", None)
        if handler is None:
            raise DataError(f"unknown data tag {tag[:40]!r}")
        return handler(node, depth)

    def _items(self, node: dict[str, Any], depth: int) -> list[Any]:
        items = node.get("v")
        if type(items) is not list:
            raise DataError(f"{node['t']} node without a list")
        return [self.decode(v, depth + 1) for v in items]

    def _d_list(self, node: dict[str, Any], depth: int) -> list[Any]:
        return self._items(node, depth)

    def _d_tuple(self, node: dict[str, Any], depth: int) -> tuple[Any, ...]:
        return tuple(self._items(node, depth))

    def _d_set(self, node: dict[str, Any], depth: int) -> set[Any]:
        return set(self._hashable(self._items(node, depth)))

    def _d_frozenset(self, node: dict[str, Any], depth: int) -> frozenset[Any]:
        return frozenset(self._hashable(self._items(node, depth)))

    @staticmethod
    def _hashable(items: list[Any]) -> list[Any]:
        for item in items:
            try:
                hash(item)
            except TypeError:
                raise DataError(f"unhashable set member or dict key of type {type(item).__name__}") from None
        return items

    def _d_dict(self, node: dict[str, Any], depth: int) -> dict[Any, Any]:
        pairs = node.get("v")
        if type(pairs) is not list or not all(type(p) is list and len(p) == 2 for p in pairs):
            raise DataError("dict node without [key, value] pairs")
        keys = self._hashable([self.decode(p[0], depth + 1) for p in pairs])
        return dict(zip(keys, (self.decode(p[1], depth + 1) for p in pairs), strict=True))

    def _d_int(self, node: dict[str, Any], depth: int) -> int:
        digits = node.get("v")
        if type(digits) is not str or not 0 < len(digits.lstrip("-")) <= self.limits.max_int_digits:
            raise DataError("bad int node")
        try:
            return int(digits, 16)
        except ValueError:
            raise DataError("bad int node") from None

    def _d_float(self, node: dict[str, Any], depth: int) -> float:
        if node.get("v") not in ("nan", "inf", "-inf"):
            raise DataError("bad float node")
        return float(node["v"])

    def _d_complex(self, node: dict[str, Any], depth: int) -> complex:
        parts = self._items(node, depth)
        if len(parts) != 2 or not all(type(p) is float for p in parts):
            raise DataError("bad complex node")
        return complex(parts[0], parts[1])

    def _d_bytes(self, node: dict[str, Any], depth: int) -> bytes:
        return self.buffer(node)

    def _d_bytearray(self, node: dict[str, Any], depth: int) -> bytearray:
        return bytearray(self.buffer(node))

    def _d_dtype(self, node: dict[str, Any], depth: int) -> torch.dtype:
        dtype = _TORCH_DTYPES.get(node.get("v"))  # type: ignore[arg-type]
        if dtype is None:
            raise DataError(f"unknown dtype {str(node.get('v'))[:40]!r}")
        return dtype

    def _d_device(self, node: dict[str, Any], depth: int) -> torch.device:
        return _device(node.get("v"))

    def _d_size(self, node: dict[str, Any], depth: int) -> torch.Size:
        return torch.Size(_shape(node.get("v")))

    def _d_path(self, node: dict[str, Any], depth: int) -> pathlib.Path:
        text = node.get("v")
        if type(text) is not str or "\0" in text:
            raise DataError("bad path node")
        return pathlib.Path(text)

    def _d_slice(self, node: dict[str, Any], depth: int) -> slice:
        parts = self._items(node, depth)
        if len(parts) != 3:
            raise DataError("bad slice node")
        return slice(*parts)

    def _d_range(self, node: dict[str, Any], depth: int) -> range:
        parts = node.get("v")
        if type(parts) is not list or len(parts) != 3 or not all(type(p) is int for p in parts) or parts[2] == 0:
            raise DataError("bad range node")
        return range(*parts)

    def _d_ellipsis(self, node: dict[str, Any], depth: int) -> Any:
        return Ellipsis

    def _d_tensor(self, node: dict[str, Any], depth: int) -> torch.Tensor:
        dtype = _TORCH_DTYPES.get(node.get("dtype"))  # type: ignore[arg-type]
        if dtype is None:
            raise DataError(f"unknown tensor dtype {str(node.get('dtype'))[:40]!r}")
        shape = _shape(node.get("shape"))
        device = _device(node.get("device"))
        if device.type == "meta":
            tensor = torch.empty(shape, dtype=dtype, device="meta")
        else:
            data = self.buffer(node)
            itemsize = torch.empty((), dtype=dtype).element_size()
            count = math.prod(shape)
            if len(data) != count * itemsize:
                raise DataError(
                    f"tensor of shape {shape} and dtype {dtype} needs {count * itemsize} bytes, got {len(data)}"
                )
            flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
            tensor = _with_layout(flat.view(dtype).reshape(shape).to(device), node.get("strides"))
        if node.get("requires_grad") is True and (dtype.is_floating_point or dtype.is_complex):
            tensor.requires_grad_(True)
        if node.get("parameter") is True:
            tensor = torch.nn.Parameter(tensor, requires_grad=tensor.requires_grad)
        return tensor

    def _d_ndarray(self, node: dict[str, Any], depth: int) -> np.ndarray:
        try:
            dtype = np.dtype(str(node.get("dtype")))
        except TypeError:
            raise DataError(f"unknown array dtype {str(node.get('dtype'))[:40]!r}") from None
        if dtype.kind not in _NUMPY_KINDS or dtype.fields is not None:
            raise DataError(f"arrays of dtype {dtype} are not data")
        shape = _shape(node.get("shape"))
        data = self.buffer(node)
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise DataError(f"array of shape {shape} and dtype {dtype} has {len(data)} bytes")
        array: np.ndarray = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        return array

    def _d_npscalar(self, node: dict[str, Any], depth: int) -> Any:
        inner = node.get("v")
        if type(inner) is not dict or inner.get("t") != "ndarray":
            raise DataError("bad NumPy scalar node")
        array = self._d_ndarray(inner, depth + 1)
        if array.shape != ():
            raise DataError("a NumPy scalar must have shape ()")
        return array[()]

    def _d_exception(self, node: dict[str, Any], depth: int) -> Exception:
        message = node.get("message")
        if type(message) is not str:
            raise DataError("bad exception node")
        cls = exception_class(node.get("mro"))  # type: ignore[arg-type]
        try:
            return cls(message)
        except Exception:  # a built-in with another signature (UnicodeDecodeError...)
            return exception_class([["mlcraft", cls.__name__], ["builtins", "Exception"]])(message)


def _with_layout(dense: torch.Tensor, strides: Any) -> torch.Tensor:
    """``dense`` (contiguous) re-laid out with ``strides``: a transposed, sliced or expanded
    tensor arrives as one. Strides that would need much more memory than the data are refused."""
    if strides is None:
        return dense
    if type(strides) is not list or len(strides) != dense.dim() or not all(type(s) is int and s >= 0 for s in strides):
        raise DataError(f"bad strides {str(strides)[:80]}")
    if tuple(strides) == dense.stride() or dense.numel() == 0:
        return dense
    span = 1 + sum((size - 1) * stride for size, stride in zip(dense.shape, strides, strict=True))
    if span > 4 * dense.numel() + 4096:
        raise DataError(f"strides {strides} for shape {list(dense.shape)} span {span} elements")
    where = torch.arange(span, device=dense.device).as_strided(dense.shape, strides).reshape(-1)
    storage = torch.zeros(span, dtype=dense.dtype, device=dense.device)
    storage[where] = dense.reshape(-1)  # overlapping positions (expanded dims) held equal values
    return storage.as_strided(dense.shape, strides)


def _shape(value: Any) -> tuple[int, ...]:
    if type(value) is not list or len(value) > 64 or not all(type(d) is int and 0 <= d < 2**40 for d in value):
        raise DataError(f"bad shape {str(value)[:80]}")
    return tuple(value)


def _device(text: Any) -> torch.device:
    if type(text) is not str or len(text) > 16:
        raise DataError("bad device")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DataError(f"unknown device {text!r}") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise DataError(f"device {text} does not exist here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DataError(f"device {text} does not exist here")
    if device.type not in ("cpu", "cuda", "mps", "meta"):
        raise DataError(f"device type {device.type} is not data")
    return device


def decode(tree: Any, buffers: list[Any] | None = None, limits: DataLimits = DATA_LIMITS) -> Any:
    """The value ``tree`` and ``buffers`` stand for, built from scratch.

    Raises:
        DataError: when they are not valid data or go past ``limits``.
    """
    try:
        return _Decoder(list(buffers or []), limits).decode(tree)
    except (RecursionError, MemoryError, OverflowError) as err:
        raise DataError(f"data too large or too deep ({type(err).__name__})") from None


def shift_buffers(tree: Any, offset: int) -> Any:
    """``tree`` with every buffer index moved by ``offset`` (to append its buffers to others)."""
    if not offset:
        return tree
    if isinstance(tree, dict):
        return {k: (v + offset if k == "b" else shift_buffers(v, offset)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [shift_buffers(v, offset) for v in tree]
    return tree


def encode_into(value: Any, buffers: list[bytes], limits: DataLimits = DATA_LIMITS) -> Any:
    """Encode ``value``, appending its buffers to ``buffers``; returns the tree.

    Raises:
        DataError: as :func:`encode` (``buffers`` is then unchanged).
    """
    tree, own = encode(value, limits)
    offset = len(buffers)
    buffers.extend(own)
    return shift_buffers(tree, offset)
