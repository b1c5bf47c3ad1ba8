"""DataLoader throughput: the sharded ``IterableDataset`` against a map-style ``Dataset`` over the same
items, same run, for several ``num_workers``.

Each item costs ``--item-us`` microseconds of Python work (decoding, augmenting) and is a float
tensor of ``--item-size`` values; batches of ``--batch-size``. The map-style peer is what
``DataLoader(dataset, shuffle=True)`` does: a sampler in the main process sends indices to the
workers. The sharded dataset needs no sampler: each worker computes its own shard
(``mlcraft.data.streaming.shard_indices``). Both read every item exactly once per epoch (checked).
Prints items per second (median of ``--repeats`` epochs) and the ratio sharded / map-style.

    python benchmarks/bench_streaming.py [--items 20000] [--workers 0,1,2] [--item-us 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset

from mlcraft.data.streaming import ShardedIterableDataset


class Items(Dataset[torch.Tensor]):
    """Item ``i``: ``size`` copies of ``i`` after about ``cost_us`` microseconds of busy work."""

    def __init__(self, n: int, size: int, cost_us: float) -> None:
        self.n, self.size, self.cost_s = n, size, cost_us / 1e6

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        end = time.perf_counter() + self.cost_s
        while time.perf_counter() < end:
            pass
        return torch.full((self.size,), float(index))


def epoch_rate(loader: DataLoader[torch.Tensor], n: int) -> float:
    """Items per second over one epoch; every item must arrive exactly once."""
    seen = torch.zeros(n, dtype=torch.int64)
    start = time.perf_counter()
    for batch in loader:
        seen.index_add_(0, batch[:, 0].long(), torch.ones(len(batch), dtype=torch.int64))
    elapsed = time.perf_counter() - start
    assert bool((seen == 1).all()), f"{int((seen != 1).sum())} items not read exactly once"
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--item-size", type=int, default=256)
    parser.add_argument("--item-us", type=float, default=50.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    items = Items(args.items, args.item_size, args.item_us)
    print(f"{args.items} items of {args.item_size} floats, {args.item_us:.0f} us each, batch {args.batch_size}")
    print(f"{'workers':>7} {'map-style items/s':>18} {'sharded items/s':>16} {'ratio':>6}")
    for workers in (int(w) for w in args.workers.split(",")):
        extra = {"persistent_workers": False, "prefetch_factor": 4} if workers else {}
        sharded = ShardedIterableDataset(items, seed=0)
        loaders = {
            "map": DataLoader(items, batch_size=args.batch_size, shuffle=True, num_workers=workers, **extra),
            "sharded": DataLoader(sharded, batch_size=args.batch_size, num_workers=workers, **extra),
        }
        rates: dict[str, list[float]] = {"map": [], "sharded": []}
        for epoch in range(args.repeats):
            sharded.set_epoch(epoch)
            for name in ("map", "sharded") if epoch % 2 == 0 else ("sharded", "map"):
                rates[name].append(epoch_rate(loaders[name], args.items))
        m, s = statistics.median(rates["map"]), statistics.median(rates["sharded"])
        print(f"{workers:>7} {m:>18,.0f} {s:>16,.0f} {s / m:>6.2f}")


if __name__ == "__main__":
    main()
