"""Wrong: a rank-major layout, shard s = rank * num_workers + worker_id ("Worker worker_id of rank rank reads shard s = worker_id * world_size + rank")."""
# fails: test-shard


# %% grade_id=shard-answer
def shard_indices(n, epoch, seed, rank, world_size, worker_id, num_workers, shuffle=True):
    if min(n, epoch, seed) < 0 or not 0 <= rank < world_size or not 0 <= worker_id < num_workers:
        raise ValueError("bad arguments")
    order = np.random.default_rng((seed, epoch)).permutation(n) if shuffle else np.arange(n)
    return [int(i) for i in order[rank * num_workers + worker_id :: world_size * num_workers]]


class ShardedDataset(IterableDataset):
    def __init__(self, source, seed, rank=0, world_size=1, shuffle=True):
        self.source, self.seed, self.rank, self.world_size, self.shuffle = source, seed, rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(range(self.rank, len(self.source), self.world_size))

    def __iter__(self):
        info = get_worker_info()
        w, k = (0, 1) if info is None else (info.id, info.num_workers)
        for i in shard_indices(len(self.source), self.epoch, self.seed, self.rank, self.world_size, w, k, self.shuffle):
            yield self.source[i]
