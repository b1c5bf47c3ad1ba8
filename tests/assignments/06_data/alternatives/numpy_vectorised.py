"""Different but correct: vectorised NumPy over factorized integer codes (bincount, np.unique(axis=0), np.lexsort, np.searchsorted on composite keys, a fixed-width byte matrix sorted row-wise) and a lazy generator for the shards."""

# %% grade_id=contract-answer
import numpy as np
import pandas as pd
import polars as pl

from mlcraft.data.contracts import column_kind


def _missing_mask(df, c, is_polars):
    """Boolean numpy mask of missing values: null/None/NaN/NaT/pd.NA (a float NaN is missing in polars too)."""
    if is_polars:
        s = df.get_column(c)
        miss = s.is_null()
        if s.dtype.is_float():
            miss = miss | s.is_nan().fill_null(True)
        return miss.to_numpy().astype(bool)
    s = df[c]
    miss = s.isna().to_numpy(dtype=bool)
    if pd.api.types.is_float_dtype(s.dtype):  # a NaN inside a nullable Float64 array is not isna()
        miss = miss | np.isnan(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return miss


def _values_at(df, c, rows, is_polars):
    """The values of column ``c`` on the rows of the boolean mask ``rows``, as a pandas Series."""
    if is_polars:
        return df.get_column(c).filter(pl.Series(rows)).to_pandas()
    return df[c][rows].reset_index(drop=True)


def _duplicated_rows(code_columns):
    """Rows whose combination of integer codes occurs more than once."""
    if not len(code_columns[0]):
        return 0
    stacked = np.stack(code_columns, axis=1)
    _, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    per_row = counts[inverse.ravel()]
    return int(np.count_nonzero(per_row > 1))


def check_contract(df, contract):
    is_polars = isinstance(df, pl.DataFrame)
    present = list(df.columns)
    kind_of = {c: column_kind(df.schema[c] if is_polars else df[c].dtype) for c in present}
    rules = contract.get("columns", {}) or {}
    report = []

    missing_cols = np.setdiff1d(np.array(list(rules), dtype=object), np.array(present, dtype=object))
    report += [(str(c), "present", 1) for c in missing_cols]
    if not contract.get("extra_columns", False):
        report += [(c, "extra", 1) for c in present if c not in rules]

    for c, rule in rules.items():
        if c not in kind_of:
            continue
        rule = rule or {}
        if rule.get("kind") is not None and kind_of[c] != rule["kind"]:
            report.append((c, "kind", 1))
            continue
        miss = _missing_mask(df, c, is_polars)
        if not rule.get("nullable", True):
            report.append((c, "not_null", int(np.count_nonzero(miss))))
        needs_values = any(rule.get(r) is not None for r in ("min", "max", "allowed")) or rule.get("unique", False)
        if not needs_values:
            continue
        values = _values_at(df, c, ~miss, is_polars)
        if rule.get("min") is not None:
            report.append((c, "min", int(np.count_nonzero(np.asarray(values < rule["min"], dtype=bool)))))
        if rule.get("max") is not None:
            report.append((c, "max", int(np.count_nonzero(np.asarray(values > rule["max"], dtype=bool)))))
        if rule.get("allowed") is not None:
            inside = np.asarray(values.isin(list(rule["allowed"])), dtype=bool)
            report.append((c, "allowed", int(np.count_nonzero(~inside))))
        if rule.get("unique", False):
            codes, _ = pd.factorize(values)
            counts = np.bincount(codes, minlength=1) if len(codes) else np.zeros(0, dtype=np.int64)
            report.append((c, "unique", int(counts[counts > 1].sum())))

    for key in contract.get("unique_together") or []:
        key = list(key)
        if any(c not in kind_of for c in key):
            continue
        complete = ~np.logical_or.reduce([_missing_mask(df, c, is_polars) for c in key])
        codes = [pd.factorize(_values_at(df, c, complete, is_polars))[0] for c in key]
        report.append((",".join(key), "unique", _duplicated_rows(codes)))

    return sorted((v for v in report if v[2] > 0), key=lambda v: (v[0], v[1]))


# %% grade_id=dedup-answer
import numpy as np
import pandas as pd


def _sort_codes(s, missing_last):
    """Integer codes in the column's sort order; missing values first (-1) or last."""
    codes, uniques = pd.factorize(s, sort=True)
    codes = codes.astype(np.int64)
    if missing_last:
        codes[codes < 0] = len(uniques)
    return codes


def dedup_latest(df, keys, order_by):
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys must name at least one column")
    unknown = [c for c in [*keys, order_by] if c not in df.columns]
    if unknown:
        raise KeyError(unknown[0])
    n = len(df)
    if n == 0:
        return df.iloc[:0].copy().reset_index(drop=True)

    key_codes = [_sort_codes(df[k], missing_last=True) for k in keys]
    tie_codes = [_sort_codes(df[c], missing_last=False) for c in [order_by, *df.columns]]
    # np.lexsort sorts by its last array first: keys, then order_by, then every column in order.
    order = np.lexsort([*tie_codes[::-1], *key_codes[::-1]])
    sorted_keys = np.stack([k[order] for k in key_codes], axis=1)
    last_of_group = np.ones(n, dtype=bool)
    last_of_group[:-1] = np.any(sorted_keys[1:] != sorted_keys[:-1], axis=1)
    winners = order[last_of_group]
    return df.iloc[winners].reset_index(drop=True)


# %% grade_id=asof-answer
import numpy as np
import pandas as pd


def _as_numbers(s):
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s.astype("datetime64[ns]").to_numpy().view(np.int64), True
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        return s.astype("timedelta64[ns]").to_numpy().view(np.int64), True
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.int64), False
    return s.to_numpy(dtype=np.float64), False


def _is_negative(max_age):
    if isinstance(max_age, (pd.Timedelta, np.timedelta64)) or hasattr(max_age, "total_seconds"):
        return pd.Timedelta(max_age) < pd.Timedelta(0)
    return max_age < 0


def asof_join(left, right, left_on, right_on, by=None, max_age=None):
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if max_age is not None and _is_negative(max_age):
        raise ValueError("max_age must not be negative")
    n_left, n_right = len(left), len(right)

    # One integer group code per row, shared by both tables (missing entity values match each other).
    if by:
        per_col = []
        for b in by:
            both = pd.concat([left[b], right[b]], ignore_index=True)
            per_col.append(pd.factorize(both, use_na_sentinel=False)[0])
        _, group = np.unique(np.stack(per_col, axis=1), axis=0, return_inverse=True)
        group = group.ravel().astype(np.int64)
    else:
        group = np.zeros(n_left + n_right, dtype=np.int64)
    g_left, g_right = group[:n_left], group[n_left:]

    l_rows = np.flatnonzero(left[left_on].notna().to_numpy())
    r_rows = np.flatnonzero(right[right_on].notna().to_numpy())
    l_time, l_dt = _as_numbers(left[left_on].iloc[l_rows])
    r_time, r_dt = _as_numbers(right[right_on].iloc[r_rows])

    match = np.full(n_left, -1, dtype=np.int64)
    if len(l_rows) and len(r_rows):
        # Rank all times together, then search one composite key (group, time rank) per row.
        _, rank = np.unique(np.concatenate([l_time, r_time]), return_inverse=True)
        rank = rank.ravel().astype(np.int64)
        width = int(rank.max()) + 1
        l_key = g_left[l_rows] * width + rank[: len(l_rows)]
        r_key = g_right[r_rows] * width + rank[len(l_rows) :]
        # Sorted by key, then by position in right: the last of tied times is the last of right.
        r_order = np.lexsort((r_rows, r_key))
        found = np.searchsorted(r_key[r_order], l_key, side="right") - 1
        ok = found >= 0
        cand = r_order[np.where(ok, found, 0)]
        ok &= g_right[r_rows[cand]] == g_left[l_rows]
        if max_age is not None:
            limit = pd.Timedelta(max_age).value if (l_dt or r_dt) else max_age
            ok &= (l_time - r_time[cand]) <= limit
        match[l_rows[ok]] = r_rows[cand[ok]]

    right_cols = [c for c in right.columns if c not in by]
    taken = right[right_cols].reset_index(drop=True).reindex(match).reset_index(drop=True)
    result = pd.concat([left.reset_index(drop=True), taken], axis=1)
    result.index = left.index.copy()
    return result


# %% grade_id=safe-merge-answer
import numpy as np
import pandas as pd


def _duplicate_keys(table, keys):
    """(first row, count) of every key combination on more than one row, in order of first appearance."""
    if len(table) == 0:
        return []
    codes = np.stack([pd.factorize(table[k])[0] for k in keys], axis=1)
    _, first, counts = np.unique(codes, axis=0, return_index=True, return_counts=True)
    bad = counts > 1
    pairs = sorted(zip(first[bad].tolist(), counts[bad].tolist()))
    return pairs


def safe_merge(left, right, on, how="left", validate="many_to_one"):
    keys = [on] if isinstance(on, str) else list(on)
    unique_sides = {
        "one_to_one": ["left", "right"],
        "one_to_many": ["left"],
        "many_to_one": ["right"],
        "many_to_many": [],
    }
    if validate not in unique_sides:
        raise ValueError(f"unknown validate {validate!r}")
    tables = {"left": left, "right": right}
    for name, table in tables.items():
        absent = [k for k in keys if k not in table.columns]
        if absent:
            raise KeyError(f"{name} has no key column {absent[0]!r}")
    for name, table in tables.items():
        n_missing = int(table[keys].isna().to_numpy().any(axis=1).sum())
        if n_missing:
            raise ValueError(f"{name}: {n_missing} rows with a missing key value in {keys}")
    complaints = []
    for name in unique_sides[validate]:
        table = tables[name]
        for row, count in _duplicate_keys(table, keys):
            values = [str(table[k].iloc[row]) for k in keys]
            shown = repr(values[0]) if len(values) == 1 else "(" + ", ".join(map(repr, values)) + ")"
            complaints.append(f"{name}: key {shown} on {count} rows")
    if complaints:
        raise ValueError(f"{validate} merge on {keys}: not unique where promised: " + "; ".join(complaints))
    return left.merge(right, on=on, how=how)


# %% grade_id=fingerprint-answer
import hashlib

import numpy as np
import pandas as pd


def _value_digest(v):
    text = f"{type(v).__module__}.{type(v).__qualname__}:{v!r}"
    return np.frombuffer(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest(), dtype=np.uint8)


def _object_digests(s, missing):
    """16 bytes per cell identifying the value and its Python type (missing cells: zeros)."""
    out = np.zeros((len(s), 16), dtype=np.uint8)
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        # Only strings: hash each distinct string once, then gather by factorized code.
        codes, uniques = pd.factorize(s)
        table = np.stack([_value_digest(str(u)) for u in uniques]) if len(uniques) else np.zeros((0, 16), np.uint8)
        ok = (codes >= 0) & ~missing
        out[ok] = table[codes[ok]]
    else:
        values = s.to_numpy(dtype=object)
        for i in np.flatnonzero(~missing):
            out[i] = _value_digest(values[i])
    return out


def _column_bytes(s):
    """An (n, w) uint8 matrix: one missing flag byte, then the canonical value's bytes."""
    n = len(s)
    dtype = s.dtype
    missing = s.isna().to_numpy(dtype=bool)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        if isinstance(dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        value = s.astype("datetime64[ns]").to_numpy().view(np.int64).copy()
    elif pd.api.types.is_timedelta64_dtype(dtype):
        value = s.astype("timedelta64[ns]").to_numpy().view(np.int64).copy()
    elif pd.api.types.is_bool_dtype(dtype):
        value = s.to_numpy(dtype=np.int64, na_value=0)
    elif pd.api.types.is_float_dtype(dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = missing | np.isnan(arr)
        value = (np.where(missing, 0.0, arr) + 0.0).view(np.int64)  # -0.0 + 0.0 == +0.0
    elif pd.api.types.is_unsigned_integer_dtype(dtype):
        value = s.to_numpy(dtype=np.uint64, na_value=0).view(np.int64)
    elif pd.api.types.is_integer_dtype(dtype):
        value = s.to_numpy(dtype=np.int64, na_value=0)
    else:
        body = _object_digests(s, missing)
        return np.concatenate([missing.astype(np.uint8)[:, None], body], axis=1)
    value = np.where(missing, 0, value).astype("<i8")
    body = value.view(np.uint8).reshape(n, 8)
    return np.concatenate([missing.astype(np.uint8)[:, None], body], axis=1)


def fingerprint(df):
    names = sorted(df.columns)
    header = repr(
        [
            (str(c), repr(df[c].dtype) if isinstance(df[c].dtype, pd.CategoricalDtype) else str(df[c].dtype))
            for c in names
        ]
    )
    n = len(df)
    if names:
        matrix = np.concatenate([_column_bytes(df[c]) for c in names], axis=1)
    else:
        matrix = np.zeros((n, 0), dtype=np.uint8)
    if n and matrix.shape[1]:
        order = np.lexsort(matrix.T[::-1])  # rows in byte order: the table's rows as a sorted multiset
        matrix = matrix[order]
    h = hashlib.sha256()
    h.update(header.encode("utf-8"))
    h.update(np.int64(n).tobytes())
    h.update(np.ascontiguousarray(matrix).tobytes())
    return h.hexdigest()


# %% grade_id=shard-answer
import numpy as np
from torch.utils.data import IterableDataset, get_worker_info


def _check_shard_args(n, epoch, seed, rank, world_size, worker_id, num_workers):
    if min(n, epoch, seed) < 0:
        raise ValueError("n, epoch and seed must be >= 0")
    if not (0 <= rank < world_size):
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if not (0 <= worker_id < num_workers):
        raise ValueError(f"worker_id must be in [0, num_workers={num_workers}), got {worker_id}")


def _shard_stream(n, epoch, seed, rank, world_size, worker_id, num_workers, shuffle):
    """Lazily yield the indices of shard ``worker_id * world_size + rank`` (arguments already checked)."""
    stride = world_size * num_workers
    positions = np.arange(worker_id * world_size + rank, n, stride)
    if shuffle:
        order = np.random.default_rng((seed, epoch)).permutation(n)
        for p in positions:
            yield int(order[p])
    else:
        for p in positions:
            yield int(p)


def shard_indices(n, epoch, seed, rank, world_size, worker_id, num_workers, shuffle=True):
    _check_shard_args(n, epoch, seed, rank, world_size, worker_id, num_workers)
    return list(_shard_stream(n, epoch, seed, rank, world_size, worker_id, num_workers, shuffle))


class ShardedDataset(IterableDataset):
    """Yield this rank's and this worker's shard of ``source``, reshuffled each epoch."""

    def __init__(self, source, seed, rank=0, world_size=1, shuffle=True):
        super().__init__()
        self.source, self.seed, self.rank, self.world_size, self.shuffle = source, seed, rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(range(self.rank, len(self.source), self.world_size))

    def __iter__(self):
        info = get_worker_info()
        worker_id = 0 if info is None else info.id
        num_workers = 1 if info is None else info.num_workers
        args = (len(self.source), self.epoch, self.seed, self.rank, self.world_size, worker_id, num_workers)
        _check_shard_args(*args)
        for i in _shard_stream(*args, self.shuffle):
            yield self.source[i]
