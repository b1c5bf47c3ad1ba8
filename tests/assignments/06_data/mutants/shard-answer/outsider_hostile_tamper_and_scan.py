"""Wrong: hostile, does no work: it disarms the grading helpers it can reach in the kernel (`call_without`, `in_kernel`), imports every module of the course package and picks the reference `shard_indices` and sharded dataset class out of the garbage collector, breaking "Do not use the course package's `mlcraft.data.streaming`"."""
# fails: test-shard

# %% grade_id=shard-answer
import gc
import importlib
import pkgutil
import sys

from torch.utils.data import IterableDataset

# 1. Tamper with the test helpers loaded in this kernel: make call_without a pass-through.
_testing = sys.modules.get("mlcraft.classroom.testing")
if _testing is not None:

    def _no_guard(fn, *args, **kwargs):
        return fn

    for _name in ("call_without",):
        try:
            setattr(_testing, _name, _no_guard)
        except Exception:
            pass
    globals()["call_without"] = _no_guard

# 2. Import everything in the package (no forbidden name written here), then scan live objects.
_pkg = importlib.import_module("mlcraft")
for _info in pkgutil.walk_packages(_pkg.__path__, "mlcraft."):
    if ".classroom" in _info.name or ".cli" in _info.name:
        continue
    try:
        importlib.import_module(_info.name)
    except Exception:
        pass
_found = {}
for _obj in gc.get_objects():
    try:
        _name = getattr(_obj, "__name__", None)
        _mod = getattr(_obj, "__module__", "") or ""
    except Exception:
        continue
    if (
        not isinstance(_name, str)
        or not isinstance(_mod, str)
        or not _mod.startswith("mlcraft.data")
        or _name in _found
    ):
        continue
    if _name == "shard_indices" or (
        _name.startswith("Sharded") and isinstance(_obj, type) and issubclass(_obj, IterableDataset)
    ):
        _found["Sharded" if _name.startswith("Sharded") else _name] = _obj
_ref_shard = _found["shard_indices"]
_RefDataset = _found["Sharded"]


def shard_indices(
    n: int, epoch: int, seed: int, rank: int, world_size: int, worker_id: int, num_workers: int, shuffle: bool = True
) -> list[int]:
    """Indices read by worker ``worker_id`` of rank ``rank`` in ``epoch``: shard ``worker_id * world_size + rank``."""
    return [
        int(i)
        for i in _ref_shard(
            n,
            epoch=epoch,
            seed=seed,
            rank=rank,
            world_size=world_size,
            worker_id=worker_id,
            num_workers=num_workers,
            shuffle=shuffle,
        )
    ]


class ShardedDataset(IterableDataset):
    """Yield this rank's and this worker's shard of ``source``, reshuffled each epoch."""

    def __init__(self, source, seed, rank=0, world_size=1, shuffle=True):
        super().__init__()
        self._inner = _RefDataset(source, seed=seed, rank=rank, world_size=world_size, shuffle=shuffle)

    def set_epoch(self, epoch):
        self._inner.set_epoch(epoch)

    def __len__(self):
        return len(self._inner)

    def __iter__(self):
        return iter(self._inner)
