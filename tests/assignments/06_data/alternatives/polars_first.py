"""Different but correct: polars does the work (native polars frames, sort/group_by/join_asof, canonical string expressions), pandas only at the edges."""

# %% grade_id=contract-answer
import pandas as pd
import polars as pl


def _pl_column(df, col):
    """The column as a polars Series with every missing value as null, or None if polars cannot hold it."""
    if isinstance(df, pl.DataFrame):
        s = df.get_column(col)
    else:
        try:
            s = pl.from_pandas(df[col].reset_index(drop=True), nan_to_null=True)
        except Exception:
            return None
    if s.dtype.is_float():
        s = s.fill_nan(None)  # in polars a float NaN is as missing as a null
    return s


def _py_values(df, col):
    """Fallback: the column as Python values, missing ones as None."""
    out = []
    for v in df[col].tolist():
        if v is None or v is pd.NA:
            out.append(None)
            continue
        try:
            out.append(None if bool(v != v) else v)
        except Exception:
            out.append(v)
    return out


def _datetime_ns(s: pl.Series) -> pl.Series:
    if s.dtype == pl.Date:
        s = s.cast(pl.Datetime("ns"))
    return s.dt.epoch("ns")


def _row_rules(s, rule, name):
    """Row-rule violations of one column given as a polars Series (nulls = missing)."""
    found = []
    if len(s) == 0:
        return found
    missing = s.is_null()
    present = s.filter(~missing)
    if rule.get("nullable", True) is False and missing.sum() > 0:
        found.append((name, "not_null", int(missing.sum())))
    is_dt = present.dtype == pl.Date or isinstance(present.dtype, pl.Datetime)
    for key, op in (("min", "lt"), ("max", "gt")):
        bound = rule.get(key)
        if bound is None or len(present) == 0:
            continue
        if is_dt:
            values, b = _datetime_ns(present), pd.Timestamp(bound).value
        else:
            values, b = present, bound
        bad = (values < b) if op == "lt" else (values > b)
        n = int(bad.sum())
        if n:
            found.append((name, key, n))
    allowed = rule.get("allowed")
    if allowed is not None and len(present):
        allowed = list(allowed)
        if is_dt:
            ok = {pd.Timestamp(a).value for a in allowed if a is not None and not pd.isna(a)}
            counts = _datetime_ns(present).value_counts().rows()
            n = sum(c for v, c in counts if v not in ok)
        else:
            counts = present.value_counts().rows()
            n = sum(c for v, c in counts if v not in allowed)
        if n:
            found.append((name, "allowed", int(n)))
    if rule.get("unique", False) and len(present):
        n = int(present.is_duplicated().sum())
        if n:
            found.append((name, "unique", n))
    return found


def _row_rules_py(values, rule, name):
    """The same rules over Python values (for columns polars cannot hold)."""
    found = []
    present = [v for v in values if v is not None]
    n_missing = len(values) - len(present)
    if rule.get("nullable", True) is False and n_missing:
        found.append((name, "not_null", n_missing))
    if rule.get("min") is not None:
        n = sum(1 for v in present if v < rule["min"])
        if n:
            found.append((name, "min", n))
    if rule.get("max") is not None:
        n = sum(1 for v in present if v > rule["max"])
        if n:
            found.append((name, "max", n))
    if rule.get("allowed") is not None:
        allowed = list(rule["allowed"])
        n = sum(1 for v in present if v not in allowed)
        if n:
            found.append((name, "allowed", n))
    if rule.get("unique", False):
        from collections import Counter

        counts = Counter(present)
        n = sum(c for c in counts.values() if c > 1)
        if n:
            found.append((name, "unique", n))
    return found


def check_contract(df, contract: dict) -> list[tuple[str, str, int]]:
    """Every violation of ``contract`` by ``df`` (pandas or polars), as sorted ``(column, rule, n_bad)``."""
    is_polars = isinstance(df, pl.DataFrame)
    columns = list(df.columns)
    dtypes = dict(zip(columns, (df.dtypes if is_polars else list(df.dtypes))))
    rules = contract.get("columns", {}) or {}
    violations = []
    for name, rule in rules.items():
        rule = rule or {}
        if name not in dtypes:
            violations.append((name, "present", 1))
            continue
        kind = rule.get("kind")
        if kind is not None and column_kind(dtypes[name]) != kind:
            violations.append((name, "kind", 1))
            continue
        s = _pl_column(df, name)
        if s is None:
            violations.extend(_row_rules_py(_py_values(df, name), rule, name))
        else:
            violations.extend(_row_rules(s, rule, name))
    if not contract.get("extra_columns", False):
        violations.extend((c, "extra", 1) for c in columns if c not in rules)
    for key in contract.get("unique_together", []) or []:
        key = list(key)
        if any(c not in dtypes for c in key):
            continue
        label = ",".join(str(c) for c in key)
        series = [_pl_column(df, c) for c in key]
        if any(s is None for s in series):
            from collections import Counter

            cols = [_py_values(df, c) for c in key]
            combos = [t for t in zip(*cols) if all(v is not None for v in t)]
            n = sum(c for c in Counter(combos).values() if c > 1)
        else:
            frame = pl.DataFrame({f"k{i}": s for i, s in enumerate(series)})
            names = frame.columns
            frame = frame.filter(pl.all_horizontal([pl.col(c).is_not_null() for c in names]))
            counts = frame.group_by(names).len()
            n = int(counts.filter(pl.col("len") > 1)["len"].sum()) if counts.height else 0
        if n:
            violations.append((label, "unique", int(n)))
    return sorted(((c, r, int(n)) for c, r, n in violations), key=lambda v: (str(v[0]), v[1]))


# %% grade_id=dedup-answer
import pandas as pd
import polars as pl


def _dedup_frame(df: pd.DataFrame) -> pl.DataFrame:
    """``df`` as a polars frame with positional names c0, c1, ...; missing values are nulls and
    categorical columns are their category codes (pandas sorts categories in category order)."""
    data = {}
    for i in range(df.shape[1]):
        s = df.iloc[:, i].reset_index(drop=True)
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = pl.Series(f"c{i}", s.cat.codes.to_numpy().astype("int64"))
            ps = codes.to_frame().select(pl.when(pl.col(f"c{i}") >= 0).then(pl.col(f"c{i}"))).to_series()
        else:
            ps = pl.from_pandas(s, nan_to_null=True)
            if ps.dtype.is_float():
                ps = ps.fill_nan(None)
        data[f"c{i}"] = ps.alias(f"c{i}")
    return pl.DataFrame(data, height=len(df)).with_row_index("__pos")


def dedup_latest(df: pd.DataFrame, keys, order_by: str) -> pd.DataFrame:
    """One row per key: the latest by ``order_by``, ties broken by content; sorted by ``keys``."""
    keys = list(keys) if isinstance(keys, (list, tuple)) else [keys]
    if not keys:
        raise ValueError("keys must name at least one column")
    columns = list(df.columns)
    for c in keys + [order_by]:
        if c not in columns:
            raise KeyError(c)
    frame = _dedup_frame(df)
    all_cols = [f"c{i}" for i in range(len(columns))]
    key_cols = [f"c{columns.index(k)}" for k in keys]
    order_col = f"c{columns.index(order_by)}"
    ranked = frame.sort([order_col] + all_cols, nulls_last=False, maintain_order=True)
    winners = ranked.group_by(key_cols, maintain_order=True).agg(pl.col("__pos").last())
    winners = winners.sort(key_cols, nulls_last=True, maintain_order=True)
    positions = winners["__pos"].to_list()
    return df.iloc[positions].reset_index(drop=True)


# %% grade_id=asof-answer
import datetime

import numpy as np
import pandas as pd
import polars as pl


def _is_timedelta_like(x) -> bool:
    return isinstance(x, (pd.Timedelta, datetime.timedelta, np.timedelta64))


def _time_as_number(s: pd.Series) -> pl.Series:
    """Times as polars numbers: datetimes as UTC nanoseconds, durations as nanoseconds; missing = null."""
    ps = pl.from_pandas(s.reset_index(drop=True), nan_to_null=True)
    if isinstance(ps.dtype, pl.Datetime) or ps.dtype == pl.Date:
        if ps.dtype == pl.Date:
            ps = ps.cast(pl.Datetime("ns"))
        return ps.dt.epoch("ns")
    if isinstance(ps.dtype, pl.Duration):
        return ps.dt.total_nanoseconds()
    if ps.dtype.is_float():
        ps = ps.fill_nan(None)
    return ps


def asof_join(
    left: pd.DataFrame, right: pd.DataFrame, left_on: str, right_on: str, by=None, max_age=None
) -> pd.DataFrame:
    """Each left row with the latest right row (same ``by``) at or before its time, within ``max_age``."""
    if max_age is not None:
        if _is_timedelta_like(max_age):
            if pd.Timedelta(max_age) < pd.Timedelta(0):
                raise ValueError(f"max_age must not be negative, got {max_age}")
        elif max_age < 0:
            raise ValueError(f"max_age must not be negative, got {max_age}")
    by_cols = [] if by is None else (list(by) if isinstance(by, (list, tuple)) else [by])
    n_left, n_right = len(left), len(right)

    lt, rt = _time_as_number(left[left_on]), _time_as_number(right[right_on])
    if lt.dtype != rt.dtype:
        lt, rt = lt.cast(pl.Float64), rt.cast(pl.Float64)

    # One group id per distinct `by` combination over both tables; missing values form a group
    # of their own (as pandas' merge_asof matches them).
    if by_cols:
        lb = pl.DataFrame({f"b{j}": pl.from_pandas(left[c].reset_index(drop=True)) for j, c in enumerate(by_cols)})
        rb = pl.DataFrame({f"b{j}": pl.from_pandas(right[c].reset_index(drop=True)) for j, c in enumerate(by_cols)})
        lb = lb.with_columns([pl.col(c).fill_nan(None) for c in lb.columns if lb[c].dtype.is_float()])
        rb = rb.with_columns([pl.col(c).fill_nan(None) for c in rb.columns if rb[c].dtype.is_float()])
        both = pl.concat([lb, rb], how="vertical_relaxed").with_row_index("__r")
        names = [c for c in both.columns if c != "__r"]
        groups = (
            both.group_by(names, maintain_order=True)
            .agg(pl.col("__r"))
            .with_row_index("__g")
            .explode("__r")
            .sort("__r")
        )
        gid = groups["__g"].cast(pl.Int64)
        lg, rg = gid[:n_left], gid[n_left:]
    else:
        lg = pl.zeros(n_left, dtype=pl.Int64, eager=True)
        rg = pl.zeros(n_right, dtype=pl.Int64, eager=True)

    lf = (
        pl.DataFrame({"__lpos": pl.int_range(n_left, eager=True, dtype=pl.Int64), "__g": lg, "__t": lt})
        .filter(pl.col("__t").is_not_null())
        .sort("__t", maintain_order=True)
    )
    rf = (
        pl.DataFrame({"__rpos": pl.int_range(n_right, eager=True, dtype=pl.Int64), "__g": rg, "__rt": rt})
        .filter(pl.col("__rt").is_not_null())
        # several rows at one time: the last in `right` wins, so keep only that one
        .unique(subset=["__g", "__rt"], keep="last", maintain_order=True)
        .sort("__rt", maintain_order=True)
    )
    joined = lf.join_asof(rf, left_on="__t", right_on="__rt", by="__g", strategy="backward", check_sortedness=False)
    if max_age is not None:
        # the latest match is the youngest: if it is too old, every older one is too
        limit = pd.Timedelta(max_age).value if _is_timedelta_like(max_age) else max_age
        joined = joined.with_columns(
            pl.when(pl.col("__t") - pl.col("__rt") <= limit).then(pl.col("__rpos")).otherwise(None).alias("__rpos")
        )

    positions = np.full(n_left, -1, dtype=np.int64)
    if joined.height:
        matched = joined.select("__lpos", pl.col("__rpos").fill_null(-1))
        positions[matched["__lpos"].to_numpy()] = matched["__rpos"].to_numpy()

    right_part = right.drop(columns=by_cols).reset_index(drop=True).reindex(positions).reset_index(drop=True)
    out = pd.concat([left.reset_index(drop=True), right_part], axis=1)
    out.index = left.index
    return out


# %% grade_id=safe-merge-answer
import pandas as pd
import polars as pl

_VALIDATE = {
    "one_to_one": ("left", "right"),
    "1:1": ("left", "right"),
    "one_to_many": ("left",),
    "1:m": ("left",),
    "many_to_one": ("right",),
    "m:1": ("right",),
    "many_to_many": (),
    "m:m": (),
}


def _key_frame(table: pd.DataFrame, cols) -> pl.DataFrame:
    """The key columns as polars columns (pandas' factorize codes where polars cannot hold them)."""
    data = {}
    for j, c in enumerate(cols):
        s = table[c].reset_index(drop=True)
        try:
            ps = pl.from_pandas(s, nan_to_null=True)
            if ps.dtype.is_float():
                ps = ps.fill_nan(None)
        except Exception:
            codes = pd.factorize(s, use_na_sentinel=True)[0]
            ps = (
                pl.Series(codes.astype("int64"))
                .to_frame("x")
                .select(pl.when(pl.col("x") >= 0).then(pl.col("x")))
                .to_series()
            )
        data[f"k{j}"] = ps.alias(f"k{j}")
    return pl.DataFrame(data, height=len(table)).with_row_index("__r")


def safe_merge(
    left: pd.DataFrame, right: pd.DataFrame, on, how: str = "left", validate: str = "many_to_one"
) -> pd.DataFrame:
    """``left.merge(right, on=on, how=how)`` after checking missing keys and the promised uniqueness."""
    cols = list(on) if isinstance(on, (list, tuple)) else [on]
    tables = {"left": left, "right": right}
    for name, table in tables.items():
        for c in cols:
            if c not in table.columns:
                raise KeyError(f"{name} has no key column {c!r}")
    if validate not in _VALIDATE:
        raise ValueError(f"unknown validate={validate!r}")
    frames = {name: _key_frame(table, cols) for name, table in tables.items()}
    for name, frame in frames.items():
        nulls = frame.drop("__r").null_count().row(0)
        bad = [c for c, n in zip(cols, nulls) if n]
        if bad:
            raise ValueError(f"{name}: missing values in key column(s) {bad}; SQL never matches missing keys")
    problems = []
    for name in _VALIDATE[validate]:
        frame, table = frames[name], tables[name]
        names = [c for c in frame.columns if c != "__r"]
        dup = (
            frame.group_by(names)
            .agg(pl.len().alias("n"), pl.col("__r").first().alias("first"))
            .filter(pl.col("n") > 1)
            .sort("first")
        )
        for first, n in dup.select("first", "n").iter_rows():
            values = [str(table[c].iloc[first]) for c in cols]
            key = f"'{values[0]}'" if len(values) == 1 else "(" + ", ".join(f"'{v}'" for v in values) + ")"
            problems.append(f"{name}: key {key} on {n} rows")
    if problems:
        raise ValueError(f"{validate} merge: keys not unique: " + "; ".join(problems))
    return left.merge(right, on=on, how=how)


# %% grade_id=fingerprint-answer
import hashlib

import numpy as np
import pandas as pd
import polars as pl


def _py_token(v) -> str:
    if v is None or v is pd.NA:
        return "N"
    try:
        if bool(v != v):
            return "N"
    except Exception:
        pass
    if isinstance(v, float) and v == 0.0:
        v = 0.0
    text = repr(v) if not isinstance(v, str) else v
    return f"{type(v).__name__}{len(text)}:{text}"


def _canonical_column(s: pd.Series) -> pl.Series:
    """One canonical, self-delimiting string per value of ``s`` (no nulls, never a '|')."""
    name = "v"
    dtype = s.dtype
    s = s.reset_index(drop=True)
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.CategoricalDtype) or (
        kind == "O" and not all(isinstance(v, str) for v in s.dropna().tolist())
    ):
        return pl.Series(name, [_py_token(v) for v in s.tolist()], dtype=pl.String)
    ps = pl.from_pandas(s, nan_to_null=True).alias(name)
    col = pl.col(name)
    if ps.dtype == pl.Null:
        expr = pl.lit("N")
    elif ps.dtype.is_float():
        x = col.cast(pl.Float64).fill_nan(None)
        x = pl.when(x == 0.0).then(pl.lit(0.0, dtype=pl.Float64)).otherwise(x)  # -0.0 is 0.0
        expr = x.reinterpret(dtype=pl.Int64).cast(pl.String)  # exact bits
    elif ps.dtype.is_integer() or ps.dtype == pl.Boolean:
        expr = col.cast(pl.String)
    elif isinstance(ps.dtype, pl.Datetime):
        expr = col.dt.epoch("ns").cast(pl.String)
    elif isinstance(ps.dtype, pl.Duration):
        expr = col.dt.total_nanoseconds().cast(pl.String)
    elif ps.dtype == pl.String:
        expr = pl.concat_str([col.str.len_bytes().cast(pl.String), pl.lit(":"), col])
    else:
        return pl.Series(name, [_py_token(v) for v in s.tolist()], dtype=pl.String)
    out = ps.to_frame().select(pl.when(col.is_null()).then(pl.lit("N")).otherwise(expr).alias(name)).to_series()
    if len(out) != len(s):  # a literal expression over an all-null column
        out = pl.Series(name, ["N"] * len(s), dtype=pl.String)
    return out


def fingerprint(df: pd.DataFrame) -> str:
    """A hex digest equal for the same multiset of rows, names and dtypes; any order of rows or columns."""
    names = sorted(df.columns, key=str)
    header = []
    for c in names:
        dtype = df[c].dtype
        dtype_text = repr(dtype) if isinstance(dtype, pd.CategoricalDtype) else str(dtype)
        header.append(f"{len(str(c))}:{c}={dtype_text}")
    n = len(df)
    if names:
        cols = {f"c{i}": _canonical_column(df[c]).alias(f"c{i}") for i, c in enumerate(names)}
        rows = (
            pl.DataFrame(cols)
            .select(pl.concat_str([pl.col(k) for k in cols], separator="|").alias("row"))
            .sort("row")["row"]
            .to_list()
        )
    else:
        rows = [""] * n
    h = hashlib.sha256()
    h.update(("\x1f".join(header) + f"\x1e{n}\x1e").encode())
    for row in rows:
        h.update(row.encode() + b"\n")
    return h.hexdigest()


# %% grade_id=shard-answer
import numpy as np
from torch.utils.data import IterableDataset, get_worker_info


def shard_indices(
    n: int, epoch: int, seed: int, rank: int, world_size: int, worker_id: int, num_workers: int, shuffle: bool = True
) -> list[int]:
    """Indices read by worker ``worker_id`` of rank ``rank`` in ``epoch``: shard ``worker_id * world_size + rank``."""
    if n < 0 or epoch < 0 or seed < 0:
        raise ValueError(f"n, epoch and seed must be non-negative, got {n}, {epoch}, {seed}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    if not 0 <= worker_id < num_workers:
        raise ValueError(f"worker_id {worker_id} is not in [0, {num_workers})")
    if shuffle:
        order = [int(i) for i in np.random.default_rng((seed, epoch)).permutation(n)]
    else:
        order = list(range(n))
    shards = world_size * num_workers
    shard = worker_id * world_size + rank
    picked = []
    position = shard
    while position < n:
        picked.append(order[position])
        position += shards
    return picked


class ShardedDataset(IterableDataset):
    """Yield this rank's and this worker's shard of ``source``, reshuffled each epoch."""

    def __init__(self, source, seed, rank=0, world_size=1, shuffle=True):
        super().__init__()
        self.source = source
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        info = get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for i in shard_indices(
            len(self.source), self.epoch, self.seed, self.rank, self.world_size, worker_id, num_workers, self.shuffle
        ):
            yield self.source[i]

    def __len__(self):
        return len(range(self.rank, len(self.source), self.world_size))
