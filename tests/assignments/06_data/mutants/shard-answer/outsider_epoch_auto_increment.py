"""Wrong: `__iter__` advances the epoch by itself after each pass, so iterating twice without `set_epoch` gives two different orders and the pass after `set_epoch(e)` + one iteration is not epoch `e`, breaking "`set_epoch(epoch)` sets the epoch used by the next iteration (it starts at 0)" (the order must be the one of `shard_indices` for the set epoch)."""
# fails: test-shard

# %% grade_id=shard-answer
import numpy as np
from torch.utils.data import IterableDataset, get_worker_info


def shard_indices(
    n: int, epoch: int, seed: int, rank: int, world_size: int, worker_id: int, num_workers: int, shuffle: bool = True
) -> list[int]:
    """Indices read by worker ``worker_id`` of rank ``rank`` in ``epoch``: shard ``worker_id * world_size + rank``."""
    if n < 0 or epoch < 0 or seed < 0:
        raise ValueError("n, epoch and seed must be non-negative")
    if not 0 <= rank < world_size:
        raise ValueError("rank out of range")
    if not 0 <= worker_id < num_workers:
        raise ValueError("worker_id out of range")
    order = np.random.default_rng((seed, epoch)).permutation(n) if shuffle else np.arange(n)
    S = world_size * num_workers
    s = worker_id * world_size + rank
    return [int(i) for i in order[s::S]]


class ShardedDataset(IterableDataset):
    """Yield this rank's and this worker's shard of ``source``, reshuffled each epoch."""

    def __init__(self, source, seed, rank=0, world_size=1, shuffle=True):
        super().__init__()
        self.source, self.seed, self.rank, self.world_size, self.shuffle = source, seed, rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return len(range(self.rank, len(self.source), self.world_size))

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = self.epoch
        self.epoch += 1
        for i in shard_indices(len(self.source), epoch, self.seed, self.rank, self.world_size, wid, nw, self.shuffle):
            yield self.source[i]
