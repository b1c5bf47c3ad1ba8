"""Streaming datasets sharded over ranks and DataLoader workers, each item read once per epoch.

An ``IterableDataset`` replicated into every DataLoader worker of every rank yields every item
``world_size * num_workers`` times unless each copy reads its own shard (the warning in
https://pytorch.org/docs/stable/data.html#torch.utils.data.IterableDataset). The recipe here
is ``torch.utils.data.DistributedSampler``'s (https://pytorch.org/docs/stable/data.html#torch.utils.data.distributed.DistributedSampler)
carried down to the worker level, without its padding:

- :func:`shard_indices`: one permutation of ``0 .. n-1`` per ``(seed, epoch)``, the same in
  every process, cut into ``world_size * num_workers`` strided shards.
- :class:`ShardedIterableDataset`: any sized, indexable source, read through its shard.
- :class:`MemmapTokenStream`: next-token windows over a token file opened with ``np.memmap``,
  as nanoGPT's ``get_batch`` (https://github.com/karpathy/nanoGPT/blob/master/train.py) reads
  them, but each window once per epoch instead of random offsets.
- :func:`collate_ragged`: pad 1-D tensors of different lengths into one batch with a mask.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from numbers import Real
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch.utils.data import IterableDataset, get_worker_info

__all__ = ["MemmapTokenStream", "ShardedIterableDataset", "collate_ragged", "shard_indices"]

T_co = TypeVar("T_co", covariant=True)


class SizedIndexable(Protocol[T_co]):
    """What :class:`ShardedIterableDataset` reads: ``len(source)`` and ``source[i]`` for ``0 <= i < len``."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> T_co: ...


def _check_int(value: object, name: str, minimum: int = 0) -> int:
    """``value`` as an ``int >= minimum``; Python and NumPy integers pass, bools and floats do not."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_rank(rank: int, world_size: int, rank_name: str = "rank", size_name: str = "world_size") -> tuple[int, int]:
    """``(rank, world_size)`` as ints, validated: ``0 <= rank < world_size``."""
    world_size = _check_int(world_size, size_name, minimum=1)
    rank = _check_int(rank, rank_name)
    if rank >= world_size:
        raise ValueError(f"{rank_name} must be in [0, {size_name}) = [0, {world_size}), got {rank}")
    return rank, world_size


def shard_indices(
    n: int,
    *,
    epoch: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    worker_id: int = 0,
    num_workers: int = 1,
    shuffle: bool = True,
) -> NDArray[np.int64]:
    """The item indices that worker ``worker_id`` of rank ``rank`` reads in ``epoch``.

    Args:
        n: number of items, ``n >= 0``.
        epoch: ``>= 0``; each epoch has its own order.
        seed: ``>= 0``; the same ``(seed, epoch)`` gives the same order on every machine.
        rank, world_size: this process among the training processes, ``0 <= rank < world_size``.
        worker_id, num_workers: this DataLoader worker among its rank's, ``0 <= worker_id < num_workers``.
        shuffle: ``False`` keeps the order ``0 .. n-1`` (``epoch`` and ``seed`` are then unused).

    Returns:
        int64 array[M]: ``permutation[s::S]`` with ``s = worker_id * world_size + rank`` and
        ``S = world_size * num_workers``, where ``permutation`` is
        ``np.random.default_rng((seed, epoch)).permutation(n)`` (``arange(n)`` when not shuffling).
        ``M`` is ``len(range(s, n, S))``: shards differ in size by at most one, and are empty where
        ``n < S``.

    Invariant: over all ``S`` pairs ``(rank, worker_id)`` every index in ``range(n)`` appears exactly
    once. The layout is worker-major, so the items of one rank over all its workers are
    ``permutation[rank::world_size]``, whatever ``num_workers`` is: ranks differ by at most one
    item, as with ``DistributedSampler(drop_last=True)`` minus the dropping. Memory: every call
    draws the full permutation, ``8 n`` bytes, and keeps only its shard.
    """
    n = _check_int(n, "n")
    epoch = _check_int(epoch, "epoch")
    seed = _check_int(seed, "seed")
    rank, world_size = _check_rank(rank, world_size)
    worker_id, num_workers = _check_rank(worker_id, num_workers, "worker_id", "num_workers")
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__} {shuffle!r}")
    order = np.random.default_rng((seed, epoch)).permutation(n) if shuffle else np.arange(n)  # (n,)
    shard = worker_id * world_size + rank  # worker-major: a rank's items do not depend on num_workers
    return np.ascontiguousarray(order[shard :: world_size * num_workers], dtype=np.int64)  # (M,)


def _worker() -> tuple[int, int]:
    """``(worker_id, num_workers)`` of the DataLoader worker this runs in; ``(0, 1)`` in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values win; otherwise torch.distributed's when it is initialized, else ``(0, 1)``."""
    initialized = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    return _check_rank(rank, world_size)


class _EpochShards:
    """The seed/epoch/rank state shared by the two datasets below."""

    def _init_shards(self, seed: int, shuffle: bool, rank: int | None, world_size: int | None) -> None:
        self.seed = _check_int(seed, "seed")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__} {shuffle!r}")
        self.shuffle = shuffle
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (``>= 0``) from the next iterator on, as ``DistributedSampler.set_epoch``.

        With ``DataLoader(num_workers > 0)`` each worker holds a copy of the dataset taken when the
        iterator is created (``iter(loader)``, i.e. the ``for`` loop), so call this before the loop;
        with ``persistent_workers=True`` the copies are taken once and a later call is not seen.
        """
        self.epoch = _check_int(epoch, "epoch")

    def _my_indices(self, n: int) -> NDArray[np.int64]:
        worker_id, num_workers = _worker()
        return shard_indices(
            n,
            epoch=self.epoch,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
            worker_id=worker_id,
            num_workers=num_workers,
            shuffle=self.shuffle,
        )


class ShardedIterableDataset(_EpochShards, IterableDataset[T_co]):
    """Yield this process's shard of ``source`` (see :func:`shard_indices`), in permuted order.

    Args:
        source: anything with ``len()`` and integer ``[]`` (a list, a map-style ``Dataset``, an array);
            its length is read when each iterator starts.
        seed: ``>= 0``, shared by all ranks. shuffle: ``False`` reads ``0 .. n-1`` in order.
        rank, world_size: default to ``torch.distributed``'s when it is initialized, else ``0`` and ``1``.

    The DataLoader worker id and count come from ``torch.utils.data.get_worker_info()`` inside
    ``__iter__``. Use ``DataLoader(ds, batch_size=..., num_workers=...)`` without a sampler, and call
    :meth:`set_epoch` before each epoch's loop.

    ``len()`` is the number of items this rank yields per epoch over all its workers,
    ``len(range(rank, n, world_size))``, whatever ``num_workers`` is (the layout is worker-major).
    Ranks differ by at most one item; under DDP, where every rank must run the same number of
    steps, stop all ranks at the shortest (``n // world_size`` items) or use
    ``DistributedDataParallel.join()``.
    """

    def __init__(
        self,
        source: SizedIndexable[T_co],
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(f"source must have __len__ and __getitem__, got {type(source).__name__}")
        self.source = source
        self._init_shards(seed, shuffle, rank, world_size)

    def __len__(self) -> int:
        return len(range(self.rank, len(self.source), self.world_size))

    def __iter__(self) -> Iterator[T_co]:
        for index in self._my_indices(len(self.source)):
            yield self.source[int(index)]


class MemmapTokenStream(_EpochShards, IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Next-token windows ``(x, y)`` of a 1-D token array, each window once per epoch, sharded.

    Args:
        tokens (array[N]): token ids, an integer ``np.memmap`` (or any 1-D integer ndarray); uint64 is refused.
        block_size: ``T >= 1``, the length of ``x`` and ``y``.
        seed, shuffle, rank, world_size: as in :class:`ShardedIterableDataset`.

    Window ``i`` starts at ``i * T`` and is yielded as ``x = tokens[iT : iT+T]`` and
    ``y = tokens[iT+1 : iT+T+1]``, both ``LongTensor[T]`` (int64 copies, not sharing memory). Only
    windows whose ``T + 1`` tokens all exist are used: ``max(0, (N - 1) // T)`` of them, so the last
    ``(N - 1) % T`` tokens of the file (before the final one) are never read as ``x``. The windows
    are sharded with :func:`shard_indices`.

    Each window is read from the array on its own, so a memmap is never loaded whole. A directly
    opened ``np.memmap`` (not a slice of one) is reopened read-only by filename when the dataset is
    pickled (DataLoader workers under the ``spawn`` start method); any other array is pickled whole.
    """

    def __init__(
        self,
        tokens: NDArray[Any],
        block_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not isinstance(tokens, np.ndarray):
            raise TypeError(f"tokens must be a numpy array or memmap, got {type(tokens).__name__}")
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
        if tokens.dtype.kind not in "iu" or tokens.dtype == np.uint64:
            raise TypeError(f"tokens must have an integer dtype that fits int64, got {tokens.dtype}")
        self.block_size = _check_int(block_size, "block_size", minimum=1)
        if len(tokens) < self.block_size + 1:
            raise ValueError(f"need at least block_size + 1 = {self.block_size + 1} tokens, got {len(tokens)}")
        self.tokens = tokens
        self.num_windows = (len(tokens) - 1) // self.block_size
        self._init_shards(seed, shuffle, rank, world_size)

    def __len__(self) -> int:
        """The windows this rank yields per epoch over all its workers."""
        return len(range(self.rank, self.num_windows, self.world_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.block_size
        for index in self._my_indices(self.num_windows):
            start = int(index) * size
            window = torch.from_numpy(np.array(self.tokens[start : start + size + 1], dtype=np.int64))  # (T + 1,)
            yield window[:-1].clone(), window[1:]  # (T,), (T,)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        tokens = self.tokens
        if isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.filename is not None:
            state["tokens"] = None
            state["_memmap_args"] = (tokens.filename, tokens.dtype, tokens.offset, tokens.shape)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        memmap_args = state.pop("_memmap_args", None)
        self.__dict__.update(state)
        if memmap_args is not None:
            filename, dtype, offset, shape = memmap_args
            self.tokens = np.memmap(filename, dtype=dtype, mode="r", offset=offset, shape=shape)


def collate_ragged(
    batch: Sequence[torch.Tensor], padding_value: float = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad 1-D tensors of different lengths into one batch (a ``DataLoader`` ``collate_fn``).

    Args:
        batch: ``B >= 1`` tensors of shape ``(L_b,)``, one dtype and one device; ``L_b = 0`` is allowed.
        padding_value: written after each sequence; must be a whole number for integer and bool dtypes.

    Returns:
        ``(padded, lengths, mask)``: ``padded`` (Tensor[B, T]) of the input dtype with
        ``T = max L_b`` and ``padded[b, :L_b] == batch[b]``; ``lengths`` (Tensor[B]) int64 ``L_b``;
        ``mask`` (Tensor[B, T]) bool, ``True`` on real positions (``mask.sum(1) == lengths``).
        All on the input device.
    """
    if not isinstance(batch, Sequence) or isinstance(batch, torch.Tensor):
        raise TypeError(f"batch must be a list or tuple of tensors, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch (B == 0)")
    for position, item in enumerate(batch):
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"batch[{position}] must be a tensor, got {type(item).__name__}")
        if item.dim() != 1:
            raise ValueError(f"batch[{position}] must be 1-D, got shape {tuple(item.shape)}")
    dtypes = sorted({str(item.dtype) for item in batch})
    if len(dtypes) > 1:
        raise TypeError(f"batch must have one dtype, got {dtypes}")
    devices = sorted({str(item.device) for item in batch})
    if len(devices) > 1:
        raise ValueError(f"batch must be on one device, got {devices}")
    dtype, device = batch[0].dtype, batch[0].device
    exact = dtype.is_floating_point or dtype.is_complex
    if isinstance(padding_value, bool) or not isinstance(padding_value, Real):
        raise TypeError(f"padding_value must be an int or float, got {type(padding_value).__name__}")
    if not exact and not float(padding_value).is_integer():
        raise ValueError(f"padding_value {padding_value} is not a whole number, needed for dtype {dtype}")
    lengths = torch.tensor([item.numel() for item in batch], dtype=torch.int64, device=device)  # (B,)
    longest = max(item.numel() for item in batch)
    padded = torch.full((len(batch), longest), padding_value, dtype=dtype, device=device)  # (B, T)
    for row, item in enumerate(batch):
        padded[row, : item.numel()] = item
    mask = torch.arange(longest, device=device) < lengths[:, None]  # (B, T)
    return padded, lengths, mask
