"""Tests for mlcraft.data.streaming: shards against a plain loop over permutation positions, a real
DataLoader with workers in two simulated ranks, token windows read from a real ``np.memmap`` file,
and ragged collation against a loop over Python lists."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch.utils.data import DataLoader

from mlcraft.data import streaming
from mlcraft.data.streaming import MemmapTokenStream, ShardedIterableDataset, collate_ragged, shard_indices

GRID = [(world_size, num_workers) for world_size in (1, 2, 3) for num_workers in (1, 2, 3)]
SIZES = [0, 1, 5, 7, 100]
Shards = dict[tuple[int, int], list[int]]


def _reference_shards(order: list[int], world_size: int, num_workers: int) -> Shards:
    """The stated layout as a loop: position ``p`` of the order goes to shard ``p % S``, and shard
    ``s`` belongs to worker ``s // world_size`` of rank ``s % world_size`` (worker-major)."""
    shards: Shards = {(r, w): [] for r in range(world_size) for w in range(num_workers)}
    for position, item in enumerate(order):
        shard = position % (world_size * num_workers)
        shards[(shard % world_size, shard // world_size)].append(item)
    return shards


def _all_shards(n: int, world_size: int, num_workers: int, **kwargs: Any) -> Shards:
    return {
        (r, w): shard_indices(n, rank=r, world_size=world_size, worker_id=w, num_workers=num_workers, **kwargs).tolist()
        for r in range(world_size)
        for w in range(num_workers)
    }


def _merged_order(shards: Shards, world_size: int, num_workers: int) -> list[int]:
    """Undo the striding: the permutation that ``shards`` were cut from."""
    size = world_size * num_workers
    total = sum(len(s) for s in shards.values())
    return [shards[((p % size) % world_size, (p % size) // world_size)][p // size] for p in range(total)]


def _fake_worker(monkeypatch: pytest.MonkeyPatch, worker_id: int, num_workers: int) -> None:
    """Make the datasets believe they run in DataLoader worker ``worker_id`` of ``num_workers``."""
    info = SimpleNamespace(id=worker_id, num_workers=num_workers)
    monkeypatch.setattr(streaming, "get_worker_info", lambda: info)


# --------------------------------------------------------------------------- shard_indices


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("world_size", "num_workers"), GRID)
def test_shards_partition_items_each_epoch(n: int, world_size: int, num_workers: int) -> None:
    single = {epoch: shard_indices(n, epoch=epoch, seed=7).tolist() for epoch in (0, 1)}  # S = 1: the permutation
    for epoch in (0, 1):
        case = f"n={n} world_size={world_size} num_workers={num_workers} epoch={epoch}"
        shards = _all_shards(n, world_size, num_workers, epoch=epoch, seed=7)
        for key in shards:
            one = shard_indices(
                n, epoch=epoch, seed=7, rank=key[0], world_size=world_size, worker_id=key[1], num_workers=num_workers
            )
            assert one.dtype == np.int64 and one.ndim == 1, f"{case} shard {key}: {one.dtype} {one.shape}"
        counts = Counter(item for shard in shards.values() for item in shard)
        assert counts == Counter(range(n)), f"{case}: not every item exactly once: {counts}"
        order = _merged_order(shards, world_size, num_workers)
        assert order == single[epoch], f"{case}: the permutation depends on the number of shards"
        assert shards == _reference_shards(order, world_size, num_workers), f"{case}: not strided by rank, worker"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("world_size", "num_workers"), GRID)
def test_no_shuffle_is_strided_range(n: int, world_size: int, num_workers: int) -> None:
    shards = _all_shards(n, world_size, num_workers, epoch=3, seed=5, shuffle=False)
    expected = _reference_shards(list(range(n)), world_size, num_workers)
    assert shards == expected, f"n={n} world_size={world_size} num_workers={num_workers}"


def test_reshuffled_per_epoch_and_reproducible_by_seed() -> None:
    orders = [shard_indices(100, epoch=epoch, seed=11).tolist() for epoch in range(3)]
    assert len({tuple(order) for order in orders}) == 3, "epochs 0, 1, 2 share an order"
    assert all(order != list(range(100)) for order in orders), "shuffle=True left the identity order"
    assert shard_indices(100, epoch=1, seed=11).tolist() == orders[1], "same seed and epoch, different order"
    assert shard_indices(100, epoch=1, seed=12).tolist() != orders[1], "seed 12 gave seed 11's order"
    numpy_args: dict[str, Any] = {"epoch": np.int32(1), "seed": np.uint8(11), "world_size": np.int64(1)}
    numpy_ints = shard_indices(np.int64(100), **numpy_args)  # type: ignore[arg-type]
    assert numpy_ints.tolist() == orders[1], "numpy integer arguments changed the order"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": -1}, ValueError, r"n must be >= 0, got -1"),
        ({"n": 5.0}, TypeError, r"n must be an int, got float 5\.0"),
        ({"n": True}, TypeError, r"n must be an int, got bool True"),
        ({"epoch": -2}, ValueError, r"epoch must be >= 0, got -2"),
        ({"epoch": 1.5}, TypeError, r"epoch must be an int, got float"),
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"seed": None}, TypeError, r"seed must be an int, got NoneType"),
        ({"world_size": 0}, ValueError, r"world_size must be >= 1, got 0"),
        ({"world_size": False}, TypeError, r"world_size must be an int, got bool"),
        ({"rank": -1, "world_size": 2}, ValueError, r"rank must be >= 0, got -1"),
        ({"rank": 2, "world_size": 2}, ValueError, r"rank must be in \[0, world_size\) = \[0, 2\), got 2"),
        ({"rank": 1.0, "world_size": 2}, TypeError, r"rank must be an int, got float"),
        ({"num_workers": 0}, ValueError, r"num_workers must be >= 1, got 0"),
        ({"worker_id": -1, "num_workers": 3}, ValueError, r"worker_id must be >= 0, got -1"),
        ({"worker_id": 3, "num_workers": 3}, ValueError, r"worker_id must be in \[0, num_workers\) = \[0, 3\), got 3"),
        ({"shuffle": 1}, TypeError, r"shuffle must be a bool, got int 1"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else "",
)
def test_shard_indices_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    arguments: dict[str, Any] = {"n": 10, "epoch": 0, "seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        shard_indices(**arguments)


# --------------------------------------------------------------------------- ShardedIterableDataset


@pytest.mark.parametrize(("world_size", "num_workers"), GRID)
def test_sharded_dataset_yields_each_item_once(
    monkeypatch: pytest.MonkeyPatch, world_size: int, num_workers: int
) -> None:
    source = [f"item-{i}" for i in range(7)]
    seen: list[str] = []
    for rank in range(world_size):
        dataset = ShardedIterableDataset(source, seed=4, rank=rank, world_size=world_size)
        dataset.set_epoch(2)
        for worker in range(num_workers):
            _fake_worker(monkeypatch, worker, num_workers)
            items = list(dataset)
            expected = shard_indices(
                7, epoch=2, seed=4, rank=rank, world_size=world_size, worker_id=worker, num_workers=num_workers
            )
            assert items == [source[i] for i in expected], f"rank {rank} worker {worker} of {world_size}x{num_workers}"
            seen += items
    assert Counter(seen) == Counter(source), f"{world_size}x{num_workers}: {Counter(seen)}"


def test_sharded_dataset_rank_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    source = list(range(20, 29))
    dataset = ShardedIterableDataset(source, seed=1)
    assert (dataset.rank, dataset.world_size, dataset.epoch) == (0, 1, 0)
    assert list(dataset) == [source[i] for i in shard_indices(9, epoch=0, seed=1)], "main process, no dist"
    assert [*ShardedIterableDataset(source, shuffle=False)] == source, "shuffle=False"
    assert len(dataset) == 9, "one rank: every item"
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    from_dist = ShardedIterableDataset(source, seed=1)
    assert (from_dist.rank, from_dist.world_size) == (2, 3), "rank and world size not read from torch.distributed"
    assert list(from_dist) == [source[i] for i in shard_indices(9, epoch=0, seed=1, rank=2, world_size=3)]
    explicit = ShardedIterableDataset(source, rank=0, world_size=2)
    assert (explicit.rank, explicit.world_size) == (0, 2), "explicit rank and world size must win"


def test_dataloader_workers_in_two_ranks_read_each_item_once() -> None:
    # The real thing: two worker processes per simulated rank, the epoch set before each loop.
    source = list(range(1000, 1050))
    world_size, num_workers, seed = 2, 2, 3
    datasets = [ShardedIterableDataset(source, seed=seed, rank=r, world_size=world_size) for r in range(world_size)]
    loaders = [DataLoader(dataset, batch_size=None, num_workers=num_workers) for dataset in datasets]
    yielded: dict[tuple[int, int], list[int]] = {}
    for epoch in (0, 1):
        for rank, (dataset, loader) in enumerate(zip(datasets, loaders, strict=True)):
            dataset.set_epoch(epoch)
            items = [int(item) for item in loader]
            yielded[(epoch, rank)] = items
            for worker in range(num_workers):
                shard = [
                    source[i]
                    for i in shard_indices(
                        50, epoch=epoch, seed=seed, rank=rank, world_size=2, worker_id=worker, num_workers=2
                    )
                ]
                in_loader = [item for item in items if item in shard]
                assert in_loader == shard, f"epoch {epoch} rank {rank} worker {worker}: order or items differ"
        everything = yielded[(epoch, 0)] + yielded[(epoch, 1)]
        assert Counter(everything) == Counter(source), f"epoch {epoch}: {Counter(everything) - Counter(source)}"
    for rank in range(world_size):
        assert yielded[(0, rank)] != yielded[(1, rank)], f"rank {rank}: set_epoch did not reach the workers"


def test_sharded_dataset_validation() -> None:
    with pytest.raises(TypeError, match=r"source must have __len__ and __getitem__, got int"):
        ShardedIterableDataset(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"seed must be >= 0, got -3"):
        ShardedIterableDataset([1], seed=-3)
    with pytest.raises(TypeError, match=r"shuffle must be a bool, got str 'yes'"):
        ShardedIterableDataset([1], shuffle="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size\) = \[0, 2\), got 2"):
        ShardedIterableDataset([1], rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"world_size must be >= 1, got 0"):
        ShardedIterableDataset([1], rank=0, world_size=0)
    dataset = ShardedIterableDataset([1])
    with pytest.raises(ValueError, match=r"epoch must be >= 0, got -1"):
        dataset.set_epoch(-1)
    with pytest.raises(TypeError, match=r"epoch must be an int, got float 1\.0"):
        dataset.set_epoch(1.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- MemmapTokenStream

BLOCK = 5


def _token_file(path: Path, n_tokens: int, dtype: type[np.integer[Any]] = np.uint16) -> tuple[NDArray[Any], list[int]]:
    """A read-only memmap of ``n_tokens`` distinct ids (so ``x[0]`` names its window), and the ids as a list."""
    values = np.random.default_rng(n_tokens).permutation(n_tokens) + 7
    writer = np.memmap(path, dtype=dtype, mode="w+", shape=(n_tokens,))
    writer[:] = values
    writer.flush()
    del writer
    return np.memmap(path, dtype=dtype, mode="r"), [int(v) for v in values]


def _reference_windows(tokens: list[int], block: int) -> dict[int, tuple[list[int], list[int]]]:
    """Window start -> (x, y), as a loop: starts 0, T, 2T, ... while T + 1 tokens remain."""
    windows, start = {}, 0
    while start + block + 1 <= len(tokens):
        windows[start] = (tokens[start : start + block], tokens[start + 1 : start + block + 1])
        start += block
    return windows


def _check_windows(pairs: list[tuple[torch.Tensor, torch.Tensor]], tokens: list[int], case: str) -> list[int]:
    """Every pair is a reference window; returns the window starts in yield order."""
    position = {token: p for p, token in enumerate(tokens)}
    reference = _reference_windows(tokens, BLOCK)
    starts = []
    for x, y in pairs:
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (BLOCK,), f"{case}: {x.dtype} {x.shape}"
        start = position[int(x[0])]
        assert start in reference, f"{case}: window at {start} is not a full window of {len(tokens)} tokens"
        assert (x.tolist(), y.tolist()) == reference[start], f"{case}: window at {start} has wrong tokens"
        starts.append(start)
    return starts


@pytest.mark.parametrize("n_tokens", [BLOCK + 1, 2 * BLOCK, 2 * BLOCK + 1, 103])
@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 1), (2, 3), (3, 2)])
def test_memmap_stream_every_window_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_tokens: int, world_size: int, num_workers: int
) -> None:
    tokens, values = _token_file(tmp_path / "tokens.bin", n_tokens)
    case = f"N={n_tokens} T={BLOCK} {world_size}x{num_workers}"
    starts = []
    for rank in range(world_size):
        stream = MemmapTokenStream(tokens, BLOCK, seed=2, rank=rank, world_size=world_size)
        for worker in range(num_workers):
            _fake_worker(monkeypatch, worker, num_workers)
            starts += _check_windows(list(stream), values, case)
    reference = _reference_windows(values, BLOCK)
    assert stream.num_windows == len(reference), case
    assert sorted(starts) == sorted(reference), f"{case}: windows {sorted(starts)} != {sorted(reference)}"


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64])
def test_memmap_stream_epochs_and_dtypes(tmp_path: Path, dtype: type[np.integer[Any]]) -> None:
    tokens, values = _token_file(tmp_path / "tokens.bin", 103, dtype)
    stream = MemmapTokenStream(tokens, BLOCK, seed=9)
    epochs = []
    for epoch in (0, 1, 0):
        stream.set_epoch(epoch)
        epochs.append(_check_windows(list(stream), values, f"{dtype.__name__} epoch {epoch}"))
    assert epochs[0] != epochs[1], "set_epoch did not reshuffle the windows"
    assert epochs[0] == epochs[2], "epoch 0 is not reproducible"
    in_order = _check_windows(list(MemmapTokenStream(tokens, BLOCK, shuffle=False)), values, "shuffle=False")
    assert in_order == list(range(0, 100, BLOCK)), f"shuffle=False order: {in_order}"
    plain = MemmapTokenStream(np.asarray(values, dtype=dtype), BLOCK, seed=9)
    assert _check_windows(list(plain), values, "in-memory array") == epochs[0], "ndarray and memmap disagree"


def test_memmap_stream_dataloader_two_ranks(tmp_path: Path) -> None:
    tokens, values = _token_file(tmp_path / "tokens.bin", 201)
    starts = []
    for rank in range(2):
        stream = MemmapTokenStream(tokens, BLOCK, seed=5, rank=rank, world_size=2)
        stream.set_epoch(1)
        pairs = list(DataLoader(stream, batch_size=None, num_workers=2))
        starts += _check_windows(pairs, values, f"DataLoader rank {rank}")
    assert sorted(starts) == list(range(0, 200, BLOCK)), f"windows read: {sorted(starts)}"


def test_memmap_stream_pickles_without_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.bin"
    _, values = _token_file(path, 20_000)
    offset = 3 * np.dtype(np.uint16).itemsize
    tokens = np.memmap(path, dtype=np.uint16, mode="r", offset=offset, shape=(1_000,))  # tokens 3 .. 1002
    stream = MemmapTokenStream(tokens, BLOCK, seed=1, rank=1, world_size=2)
    stream.set_epoch(4)
    blob = pickle.dumps(stream)
    assert len(blob) < 1_000, f"pickled stream is {len(blob)} bytes: the tokens were copied"
    clone = pickle.loads(blob)
    assert isinstance(clone.tokens, np.memmap) and clone.tokens.mode == "r", type(clone.tokens)
    assert clone.tokens.tolist() == values[3:1003], "reopened memmap ignores the offset or shape"
    assert (clone.epoch, clone.rank, clone.world_size) == (4, 1, 2)
    assert [(x.tolist(), y.tolist()) for x, y in clone] == [(x.tolist(), y.tolist()) for x, y in stream]
    sliced = MemmapTokenStream(tokens[10:], BLOCK)  # a slice's offset is not its own: pickled as data
    assert pickle.loads(pickle.dumps(sliced)).tokens.tolist() == values[13:1003]


def test_memmap_stream_validation(tmp_path: Path) -> None:
    tokens, _ = _token_file(tmp_path / "tokens.bin", 20)
    with pytest.raises(TypeError, match=r"tokens must be a numpy array or memmap, got list"):
        MemmapTokenStream([1, 2, 3], 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tokens must be 1-D, got shape \(4, 5\)"):
        MemmapTokenStream(np.zeros((4, 5), dtype=np.int64), 2)
    with pytest.raises(TypeError, match=r"integer dtype that fits int64, got float32"):
        MemmapTokenStream(np.zeros(20, dtype=np.float32), 2)
    with pytest.raises(TypeError, match=r"integer dtype that fits int64, got uint64"):
        MemmapTokenStream(np.zeros(20, dtype=np.uint64), 2)
    with pytest.raises(ValueError, match=r"block_size must be >= 1, got 0"):
        MemmapTokenStream(tokens, 0)
    with pytest.raises(TypeError, match=r"block_size must be an int, got bool True"):
        MemmapTokenStream(tokens, True)
    with pytest.raises(ValueError, match=r"need at least block_size \+ 1 = 21 tokens, got 20"):
        MemmapTokenStream(tokens, 20)
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size\) = \[0, 1\), got 1"):
        MemmapTokenStream(tokens, 2, rank=1, world_size=1)


# --------------------------------------------------------------------------- collate_ragged


def _ragged(dtype: torch.dtype, lengths: list[int], device: str = "cpu") -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(sum(lengths))
    return [(torch.randn(n, generator=generator) * 50).to(dtype).to(device) for n in lengths]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float32, torch.bfloat16, torch.bool], ids=str)
@pytest.mark.parametrize("lengths", [[3, 0, 5, 1], [4], [0, 0], [2, 2, 2]], ids=str)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_collate_ragged_matches_loop(dtype: torch.dtype, lengths: list[int], device: str) -> None:
    batch = _ragged(dtype, lengths, device)
    pad = -1 if dtype != torch.bool else 1
    padded, got_lengths, mask = collate_ragged(batch, padding_value=pad)
    longest = max(lengths)
    expected_rows, expected_mask = [], []
    for item in batch:  # the loop: real values, then the padding value
        row = item.cpu().tolist()
        expected_rows.append(row + [pad] * (longest - len(row)))
        expected_mask.append([True] * len(row) + [False] * (longest - len(row)))
    expected = torch.tensor(expected_rows, dtype=torch.float64).reshape(len(batch), longest)
    case = f"dtype={dtype} lengths={lengths}"
    assert padded.dtype == dtype and padded.device.type == device, f"{case}: {padded.dtype} on {padded.device}"
    torch.testing.assert_close(padded.cpu().double(), expected, rtol=0, atol=0, msg=f"{case}: padded values")
    assert got_lengths.dtype == torch.int64 and got_lengths.tolist() == lengths, f"{case}: {got_lengths}"
    assert mask.dtype == torch.bool and mask.cpu().tolist() == expected_mask, f"{case}: mask"


def test_collate_ragged_extremes_and_meta() -> None:
    batch = [torch.tensor([1.0, float("inf")]), torch.tensor([-3.0])]
    padded, _, mask = collate_ragged(batch, padding_value=float("-inf"))
    assert padded.tolist() == [[1.0, float("inf")], [-3.0, float("-inf")]] and mask.tolist() == [[1, 1], [1, 0]]
    meta = [torch.empty(3, device="meta"), torch.empty(1, device="meta")]
    padded, lengths, mask = collate_ragged(meta)
    assert padded.shape == mask.shape == (2, 3) and lengths.shape == (2,), (padded.shape, lengths.shape)
    assert padded.device.type == lengths.device.type == mask.device.type == "meta"


def test_collate_ragged_as_collate_fn() -> None:
    source = [torch.arange(n) for n in range(7)]
    loader = DataLoader(ShardedIterableDataset(source, shuffle=False), batch_size=3, collate_fn=collate_ragged)
    batches = list(loader)
    assert [lengths.tolist() for _, lengths, _ in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    padded, _, mask = batches[1]
    assert padded.tolist() == [[0, 1, 2, 0, 0], [0, 1, 2, 3, 0], [0, 1, 2, 3, 4]]
    assert mask.sum(1).tolist() == [3, 4, 5]


@pytest.mark.parametrize(
    ("batch", "padding_value", "error", "match"),
    [
        ([], 0, ValueError, r"cannot collate an empty batch \(B == 0\)"),
        ([torch.zeros(2), torch.zeros(2, dtype=torch.int64)], 0, TypeError, r"one dtype, got \['torch.float32', 'torch.int64'\]"),
        ([torch.zeros(2), torch.zeros(2, 1)], 0, ValueError, r"batch\[1\] must be 1-D, got shape \(2, 1\)"),
        ([[1, 2]], 0, TypeError, r"batch\[0\] must be a tensor, got list"),
        (torch.zeros(2, 3), 0, TypeError, r"batch must be a list or tuple of tensors, got Tensor"),
        ([torch.zeros(2), torch.zeros(2, device="meta")], 0, ValueError, r"one device, got \['cpu', 'meta'\]"),
        ([torch.zeros(2, dtype=torch.int64)], 0.5, ValueError, r"padding_value 0\.5 is not a whole number, needed for dtype torch.int64"),
        ([torch.zeros(2)], True, TypeError, r"padding_value must be an int or float, got bool"),
        ([torch.zeros(2)], "0", TypeError, r"padding_value must be an int or float, got str"),
    ],
)  # fmt: skip
def test_collate_ragged_validation(batch: Any, padding_value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        collate_ragged(batch, padding_value=padding_value)


@pytest.mark.parametrize(("world_size", "num_workers"), GRID)
@pytest.mark.parametrize("n", SIZES)
def test_a_ranks_items_and_len_do_not_depend_on_num_workers(n: int, world_size: int, num_workers: int) -> None:
    """Worker-major layout: rank r reads permutation[r::world_size] over its workers, ranks differ by
    at most one item, and len() is that count whatever the DataLoader's num_workers."""
    order = shard_indices(n, epoch=1, seed=4)
    counts = []
    for rank in range(world_size):
        items = sorted(
            i
            for w in range(num_workers)
            for i in shard_indices(
                n, epoch=1, seed=4, rank=rank, world_size=world_size, worker_id=w, num_workers=num_workers
            ).tolist()
        )
        assert items == sorted(order[rank::world_size].tolist())
        dataset = ShardedIterableDataset(list(range(n)), seed=4, rank=rank, world_size=world_size)
        assert len(dataset) == len(items)
        counts.append(len(items))
    assert max(counts) - min(counts) <= 1


def test_memmap_stream_len_is_the_ranks_window_count(tmp_path: Path) -> None:
    tokens = np.memmap(tmp_path / "t.bin", dtype=np.uint16, mode="w+", shape=(103,))
    tokens[:] = np.arange(103)
    tokens.flush()
    streams = [MemmapTokenStream(tokens, 10, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in streams] == [4, 3, 3]  # 10 windows: 0,3,6,9 / 1,4,7 / 2,5,8
    assert sum(len(list(s)) for s in streams) == 10
