# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 06 — Data engineering: contracts, dedup, point-in-time joins, safe merges, fingerprints, sharded loading
#
# **You will be able to**
# - check a table against a data contract and report every broken rule as `(column, rule, n_bad)`,
#   for pandas and polars tables alike;
# - deduplicate by key with the latest version winning, so that row order never changes the result;
# - join point-in-time features with an as-of join and a maximum age, without seeing the future;
# - merge two tables with the cardinality checked first, and an error that names the offending keys;
# - fingerprint a table's content so that row order does not matter and any value, dtype or name does;
# - shard a dataset across DataLoader workers and training processes, each item once per epoch.
#
# **Prerequisites**: lesson `06_data` (sections 2, 5, 6, 7, 9 and 10 above all); lessons
# `00_orientation` and `01_training_loops` (the DataLoader); pandas `merge`, `sort_values`,
# `groupby`, `drop_duplicates`; PyTorch's `IterableDataset`. Polars is welcome where a task says so.
#
# **Time**: reading 15 min; exercises 2–3 h; the reference solution runs top to bottom in about
# 30 seconds on a 2-core CPU, hidden tests included.
#
# **Further reading**: the pandas user guide, *Merge, join, concatenate and compare* (`validate=`,
# `merge_asof`) and *Duplicate labels*; the polars user guide, *Joins* (`join_asof`); the pandera
# documentation, *DataFrame Schemas*; Kaufman et al. (2012), *Leakage in data mining: formulation,
# detection, and avoidance*; Sculley et al. (2015), *Hidden technical debt in machine learning
# systems*; Steele, Lea and Flood (2014), *Fast splittable pseudorandom number generators*
# (SplitMix64); the PyTorch documentation, *torch.utils.data* (`IterableDataset`, `get_worker_info`)
# and `DistributedSampler`.
#
# Six functions (and one class), each the core of something a data pipeline for ML needs:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `check_contract(df, contract)` | 3 |
# | 2 | `dedup_latest(df, keys, order_by)` | 3 |
# | 3 | `asof_join(left, right, left_on, right_on, by=None, max_age=None)` | 3 |
# | 4 | `safe_merge(left, right, on, how="left", validate="many_to_one")` | 2 |
# | 5 | `fingerprint(df)` | 3 |
# | 6 | `shard_indices(...)` and `ShardedDataset` | 3 |
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Run the notebook from top to bottom before you
# submit, and do not change or delete the test cells.
#
# Tables are pandas DataFrames (Task 1 also takes polars DataFrames). Where a task allows it you
# may work in polars inside your function (`pl.from_pandas(df)`, then `.to_pandas()`), as long as
# what you return is what the task asks for. Nothing here needs a GPU.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (tables, arrays, numbers, strings...) and check what comes back against answers the grader
# computes itself. So return exactly what each task asks for; nothing else in your notebook can
# change a test's verdict.
#
# Previous: lesson [`06_data`](../../course/06_data.ipynb) · Next: lesson
# [`07_mlops`](../../course/07_mlops.ipynb).


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"],
        check=True,
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import hashlib
import math

import numpy as np
import pandas as pd
import polars as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mlcraft.classroom.testing import call_without, grading_seed, in_kernel
from mlcraft.data.contracts import column_kind

# column_kind(dtype) names the kind of a pandas or polars dtype: "int", "float", "bool", "string",
# "datetime", "category" or "other". Task 1 uses it.
print(column_kind(pd.Series([1, 2]).dtype), column_kind(pl.Series([1.5]).dtype), column_kind(pd.Series(["a"]).dtype))
print(f"pandas {pd.__version__}, polars {pl.__version__}, torch {torch.__version__}")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-contract", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Check a data contract (3 points)
#
# A data contract says what a table must look like before a pipeline trusts it. Here a contract
# is a plain dictionary:
#
# ```python
# contract = {
#     "columns": {
#         "user_id": {"kind": "int", "nullable": False, "unique": True},
#         "amount": {"kind": "float", "min": 0.0, "max": 500.0},
#         "country": {"kind": "string", "allowed": ["NO", "SE", "DK"]},
#         "day": {},
#     },
#     "unique_together": [["country", "day"]],  # optional, default []; keys are lists or tuples
#     "extra_columns": False,                   # optional, default False
# }
# ```
#
# Each column's rule may give any of: `kind` (one of `"int"`, `"float"`, `"bool"`, `"string"`,
# `"datetime"`, `"category"`; absent or `None`: any kind), `nullable` (default `True`), `min` and
# `max` (inclusive bounds; numbers, or `pd.Timestamp`s for a datetime column; absent or `None`: no
# bound), `allowed` (a list or set of the only values allowed; absent or `None`: any value) and
# `unique` (default `False`).
#
# Write `check_contract(df, contract)` that returns **every violation as a tuple
# `(column, rule, n_bad)`, in a list sorted by `(column, rule)`**. `df` is a pandas **or a polars**
# DataFrame; both must work.
#
# - **Missing values** are `None`, `NaN`, `NaT` and `pd.NA` in pandas, and `null` **and `NaN`** in
#   polars: a float NaN is as missing as a null.
# - **Column rules**, one per column (`n_bad` is 1): `"present"`, a column of the contract is not in
#   `df` (its other rules are then skipped); `"extra"`, a column of `df` is not in the contract and
#   `extra_columns` is false; `"kind"`, the column's kind (`column_kind(dtype)`, with the dtype of
#   the table you were given, pandas or polars) is not the rule's. A column of the wrong kind has
#   none of its other rules checked.
# - **Row rules** count rows: `"not_null"` the missing values when `nullable` is false; `"min"` the
#   values below `min`; `"max"` the values above `max`; `"allowed"` the values not in `allowed`;
#   `"unique"` every row whose value appears more than once (a value on 3 rows counts 3).
#   **Missing values are never below, above, outside `allowed` or duplicates**: only `"not_null"`
#   counts them.
# - **`unique_together`**: each key (two or more columns) is reported under the column name
#   `"a,b"` (the key's columns joined by commas, in the key's order) with rule `"unique"`, counting
#   every row whose combination of values appears more than once; rows with a missing value in
#   any of the key's columns are ignored. A key with a column missing from `df` is skipped (that
#   column is already reported as `"present"`).
# - A rule that finds nothing is not reported. An empty table breaks no row rule.
#
# Do not call the course package's `mlcraft.data.contracts.check_contract`.


# %% nbgrader={"grade": false, "grade_id": "contract-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_contract(df, contract: dict) -> list[tuple[str, str, int]]:
    """Every violation of ``contract`` by ``df`` (pandas or polars), as sorted ``(column, rule, n_bad)``."""
    ### BEGIN SOLUTION
    if isinstance(df, pl.DataFrame):
        kinds = {name: column_kind(dtype) for name, dtype in df.schema.items()}
        table = df.to_pandas()
    else:
        kinds = {name: column_kind(df[name].dtype) for name in df.columns}
        table = df
    rules = contract["columns"]
    found = []
    for name, rule in rules.items():
        if name not in table.columns:
            found.append((name, "present", 1))
            continue
        if rule.get("kind") is not None and kinds[name] != rule["kind"]:
            found.append((name, "kind", 1))
            continue
        values = table[name]
        missing = values.isna().to_numpy(dtype=bool)
        present = values[~missing]
        counts = []
        if not rule.get("nullable", True):
            counts.append(("not_null", int(missing.sum())))
        if rule.get("min") is not None:
            counts.append(("min", int((present < rule["min"]).sum())))
        if rule.get("max") is not None:
            counts.append(("max", int((present > rule["max"]).sum())))
        if rule.get("allowed") is not None:
            counts.append(("allowed", int((~present.isin(list(rule["allowed"]))).sum())))
        if rule.get("unique", False):
            counts.append(("unique", int(present.duplicated(keep=False).sum())))
        found += [(name, r, n) for r, n in counts if n > 0]
    if not contract.get("extra_columns", False):
        found += [(name, "extra", 1) for name in table.columns if name not in rules]
    for key in contract.get("unique_together", []):
        key = list(key)
        if all(c in table.columns for c in key):
            rows = table[key]
            complete = rows[~rows.isna().any(axis=1)]
            n_bad = int(complete.duplicated(keep=False).sum())
            if n_bad:
                found.append((",".join(key), "unique", n_bad))
    return sorted(found)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-contract", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
orders_1 = pd.DataFrame(
    {
        "user_id": [1, 2, 2, 4, 5],
        "amount": [10.0, -1.0, np.nan, 900.0, 20.0],
        "country": ["NO", "SE", "FI", None, "NO"],
        "day": [1, 1, 2, 2, 1],
        "note": ["", "", "", "", ""],
    }
)
contract_1 = {
    "columns": {
        "user_id": {"kind": "int", "nullable": False, "unique": True},
        "amount": {"kind": "float", "min": 0.0, "max": 500.0},
        "country": {"kind": "string", "allowed": ["NO", "SE", "DK"]},
        "day": {},
        "signup": {"kind": "datetime"},
    },
    "unique_together": [["country", "day"]],
}
got_1 = check_contract(orders_1, contract_1)
want_1 = [
    ("amount", "max", 1),  # 900.0
    ("amount", "min", 1),  # -1.0 (the NaN is neither)
    ("country", "allowed", 1),  # "FI" (None is not checked)
    ("country,day", "unique", 2),  # ("NO", 1) twice
    ("note", "extra", 1),
    ("signup", "present", 1),
    ("user_id", "unique", 2),  # 2 twice
]
assert [tuple(v) for v in got_1] == want_1, f"expected {want_1}, got {got_1}"
# The same table in polars: same answer.
got_1_pl = check_contract(pl.from_pandas(orders_1), contract_1)
assert [tuple(v) for v in got_1_pl] == want_1, f"polars: expected {want_1}, got {got_1_pl}"
assert check_contract(orders_1.iloc[:0], {"columns": {c: {"nullable": False} for c in orders_1}}) == [], (
    "an empty table breaks no row rule"
)
### BEGIN HIDDEN TESTS
from mlcraft.data.contracts import ColumnRule, Contract
from mlcraft.data.contracts import check_contract as _contract_reference

_forbidden_contract = ("mlcraft.data.contracts.check_contract", "mlcraft.data.contracts._column_violations")


def _as_contract(spec):
    columns = {}
    for name, rule in spec["columns"].items():
        rule = dict(rule)
        if rule.get("allowed") is not None:
            rule["allowed"] = frozenset(rule["allowed"])
        columns[name] = ColumnRule(**rule)
    return Contract(
        columns=columns,
        unique_together=tuple(tuple(k) for k in spec.get("unique_together", [])),
        extra_columns=spec.get("extra_columns", False),
    )


def _check_contract_case(name, frame, spec):
    got = call_without(check_contract, frame, spec, forbidden=_forbidden_contract)
    assert isinstance(got, list), f"{name}: return a list of (column, rule, n_bad) tuples, got {type(got).__name__}"
    for v in got:
        assert isinstance(v, tuple) and len(v) == 3, f"{name}: each violation is a tuple (column, rule, n_bad), got {v!r}"
        assert isinstance(v[2], (int, np.integer)) and not isinstance(v[2], (bool, np.bool_)), (
            f"{name}: n_bad should be an integer, got {v[2]!r} ({type(v[2]).__name__})"
        )
    got = [(str(c), str(r), int(n)) for c, r, n in got]
    want = [tuple(v) for v in _contract_reference(frame, _as_contract(spec))]
    assert got == want, f"{name}: expected {want}, got {got}"


_rng = np.random.default_rng(grading_seed("test-contract", 6))
_n = 60
_ts = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(_rng.integers(0, 40, _n), unit="D")
_big = pd.DataFrame(
    {
        "id": _rng.integers(0, 50, _n),
        "score": np.where(_rng.random(_n) < 0.1, np.nan, _rng.normal(0, 2, _n)),
        "flag": _rng.random(_n) < 0.5,
        "zone": pd.Series(_rng.choice(["a", "b", "c", "d"], _n)).where(_rng.random(_n) > 0.1, None),
        "at": pd.Series(_ts).where(_rng.random(_n) > 0.1),
        "level": pd.Categorical(_rng.choice(["low", "mid", "high"], _n)),
    }
)
_big_spec = {
    "columns": {
        "id": {"kind": "int", "nullable": False, "unique": True, "min": 3, "max": 45},
        "score": {"kind": "float", "nullable": False, "min": -1.0, "max": 1.5, "unique": True},
        "flag": {"kind": "bool"},
        "zone": {"kind": "string", "nullable": False, "allowed": {"a", "b", "c"}},
        "at": {
            "kind": "datetime",
            "nullable": False,
            "min": pd.Timestamp("2024-03-10", tz="UTC"),
            "max": pd.Timestamp("2024-04-01", tz="UTC"),
        },
        "level": {"kind": "category", "allowed": ["low", "mid"]},
    },
    "unique_together": [["zone", "flag"], ["id", "zone"]],
}
_contract_cases = {
    "the example": (orders_1, contract_1),
    "the example in polars": (pl.from_pandas(orders_1), contract_1),
    "every rule on random data": (_big, _big_spec),
    "every rule on random data, in polars": (pl.from_pandas(_big), _big_spec),
    "an empty table": (_big.iloc[:0], _big_spec),
    "an empty polars table": (pl.from_pandas(_big.iloc[:0]), _big_spec),
    "extra columns allowed": (orders_1, {"columns": {"user_id": {}}, "extra_columns": True}),
    "extra columns refused (the default)": (orders_1, {"columns": {"user_id": {}}}),
    "every column missing": (orders_1[[]], {"columns": {"b": {"kind": "int"}, "a": {}}}),
    "wrong kinds skip the value rules": (
        pd.DataFrame({"x": ["1", "2", "2", None], "y": [1.0, 2.0, 2.0, 3.0]}),
        {"columns": {"x": {"kind": "int", "nullable": False, "unique": True}, "y": {"kind": "int", "unique": True}}},
    ),
    "no kind given: any kind, value rules apply": (
        pd.DataFrame({"x": [5, 1, 9, 9]}),
        {"columns": {"x": {"min": 2, "max": 8, "unique": True}}},
    ),
    "bounds are inclusive": (pd.DataFrame({"x": [0.0, 1.0, 2.0]}), {"columns": {"x": {"min": 0.0, "max": 2.0}}}),
    "each optional rule alone: nullable": (pd.DataFrame({"x": [1.0, np.nan, None]}), {"columns": {"x": {"nullable": False}}}),
    "each optional rule alone: min": (pd.DataFrame({"x": [1.0, np.nan, -3.0]}), {"columns": {"x": {"min": 0.0}}}),
    "each optional rule alone: max": (pd.DataFrame({"x": [1.0, np.nan, 7.0]}), {"columns": {"x": {"max": 5.0}}}),
    "each optional rule alone: allowed": (pd.DataFrame({"x": ["a", None, "z", "z"]}), {"columns": {"x": {"allowed": ["a"]}}}),
    "each optional rule alone: unique": (pd.DataFrame({"x": [1.0, np.nan, np.nan, 1.0, 2.0]}), {"columns": {"x": {"unique": True}}}),
    "a value on three rows counts three": (pd.DataFrame({"k": [7, 7, 7, 8]}), {"columns": {"k": {"unique": True}}}),
    "an int column with nulls in polars stays int": (
        pl.DataFrame({"k": [1, None, 3]}, schema={"k": pl.Int64}),
        {"columns": {"k": {"kind": "int", "nullable": False}}},
    ),
    "NaN in a polars float column is missing": (
        pl.DataFrame({"v": [1.0, float("nan"), None, 4.0]}),
        {"columns": {"v": {"kind": "float", "nullable": False, "max": 2.0}}},
    ),
    "polars strings with nulls": (
        pl.DataFrame({"s": ["a", None, "b", "b"]}),
        {"columns": {"s": {"kind": "string", "allowed": ["a"], "unique": True}}},
    ),
    "a key with a missing column is skipped": (
        pd.DataFrame({"a": [1, 1], "b": [2, 2]}),
        {"columns": {"a": {}, "b": {}, "c": {}}, "unique_together": [["a", "c"], ["b", "a"]]},
    ),
    "keys given as tuples": (
        pd.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "x"], "c": [0, 0, 0]}),
        {"columns": {"a": {}, "b": {}, "c": {}}, "unique_together": (("a", "b"), ("b", "c"))},
    ),
    "a key's rows with a missing value are ignored": (
        pd.DataFrame({"a": [1, 1, 1, None], "b": ["x", "x", None, "x"]}),
        {"columns": {"a": {}, "b": {}}, "unique_together": [["a", "b"]]},
    ),
    "one row": (pd.DataFrame({"a": [np.nan]}), {"columns": {"a": {"nullable": False, "min": 0.0, "unique": True}}}),
}
for _name, (_frame, _spec) in _contract_cases.items():
    _check_contract_case(_name, _frame, _spec)
### END HIDDEN TESTS
print("check_contract: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-dedup", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Keep the latest version of each key, whatever the row order (3 points)
#
# An event log holds several versions of the same record (a retry, a correction). Cleaning keeps
# one per key, the latest. `sort_values(order_by).drop_duplicates(keys, keep="last")` is the usual
# recipe, and it is not reproducible: when two versions share the latest `order_by`, the winner is
# whichever came last in the file, and the file's order is not data.
#
# Write `dedup_latest(df, keys, order_by)` that returns a new pandas DataFrame with one row per key:
#
# - `keys` is a column name or a list of column names (one or more); `order_by` is a column name
#   (a version number, a time...).
# - **The winner.** Among a key's rows, order the rows by `order_by`, then break ties by every
#   column in `df`'s column order (the first column first), with **missing values sorting before
#   any value**; the **last** row in that order wins. So a missing `order_by` loses to any present
#   one, and two versions with the same `order_by` are decided by their content, never by their
#   position. (Comparing values of one column needs no more than pandas' or polars' sort.)
# - **Missing key values** form a key of their own, as in `drop_duplicates`: all the missing values
#   of a key column count as one value (pandas' `groupby` drops them by default: do not lose those
#   rows).
# - **The result** has the same columns in the same order with the same dtypes as `df`, its rows
#   sorted by `keys` (the first key column first; missing keys last), and a fresh index `0 .. n-1`.
#   So the result does not depend on the order of `df`'s rows, and `dedup_latest` of the result is
#   the result itself.
# - `df` itself is left unchanged. An empty `df` gives an empty result with its columns.
# - Raise `KeyError` if a column of `keys` or `order_by` is not in `df`, and `ValueError` if `keys`
#   is an empty list.
#
# You may work in pandas or in polars. Do not call the course package's
# `mlcraft.data.cleaning.dedup_latest`.


# %% nbgrader={"grade": false, "grade_id": "dedup-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dedup_latest(df: pd.DataFrame, keys, order_by: str) -> pd.DataFrame:
    """One row per key: the latest by ``order_by``, ties broken by content; sorted by ``keys``."""
    ### BEGIN SOLUTION
    key_list = [keys] if isinstance(keys, str) else list(keys)
    if not key_list:
        raise ValueError("dedup_latest needs at least one key column")
    ranking = [order_by] + [c for c in df.columns if c != order_by]
    ranked = df.sort_values(ranking, na_position="first", kind="stable")
    latest = ranked.drop_duplicates(subset=key_list, keep="last")
    latest = latest.sort_values(key_list, na_position="last", kind="stable")
    return latest.reset_index(drop=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-dedup", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
events_2 = pd.DataFrame(
    {
        "user": ["b", "a", "b", "a", "a", None],
        "version": [1, 2, 2, 2, 1, 5],
        "amount": [10.0, 7.0, 12.0, 9.0, 5.0, 1.0],
    }
)
got_2 = dedup_latest(events_2, "user", "version")
want_2 = pd.DataFrame({"user": ["a", "b", None], "version": [2, 2, 5], "amount": [9.0, 12.0, 1.0]})
want_2["user"] = want_2["user"].astype(events_2["user"].dtype)
# "a" has two rows at version 2: amounts 7.0 and 9.0; the tie goes to the larger content, 9.0.
pd.testing.assert_frame_equal(got_2, want_2)
pd.testing.assert_frame_equal(dedup_latest(events_2.iloc[::-1], "user", "version"), want_2, obj="reversed rows")
pd.testing.assert_frame_equal(dedup_latest(got_2, ["user"], "version"), want_2, obj="applied twice")
### BEGIN HIDDEN TESTS
_forbidden_dedup = ("mlcraft.data.cleaning.dedup_latest", "mlcraft.data.fingerprint.row_hashes")


def _dedup_reference(frame, keys, order_by):
    """The statement, row by row: group by key (missing keys equal), keep the maximum under the stated order."""
    key_list = [keys] if isinstance(keys, str) else list(keys)
    ranking = [order_by] + [c for c in frame.columns if c != order_by]

    def missing(v):
        return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))

    def rank_of(row):  # missing sorts before any value
        return tuple((0,) if missing(row[c]) else (1, row[c]) for c in ranking)

    def key_of(row):
        return tuple(None if missing(row[c]) else row[c] for c in key_list)

    best = {}
    for position in range(len(frame)):
        row = frame.iloc[position]
        k = key_of(row)
        if k not in best or rank_of(row) >= rank_of(frame.iloc[best[k]]):
            best[k] = position
    order = sorted(best, key=lambda k: tuple((1,) if v is None else (0, v) for v in k))
    return frame.iloc[[best[k] for k in order]].reset_index(drop=True)


def _check_dedup(name, frame, keys, order_by):
    before = frame.copy()
    got = call_without(dedup_latest, frame, keys, order_by, forbidden=_forbidden_dedup)
    pd.testing.assert_frame_equal(frame, before, obj=f"{name}: the input df (it must be left unchanged)")
    assert isinstance(got, pd.DataFrame), f"{name}: return a pandas DataFrame, got {type(got).__name__}"
    want = _dedup_reference(frame, keys, order_by)
    pd.testing.assert_frame_equal(got, want, check_index_type="equiv", obj=f"{name}: the result")
    return got


_rng = np.random.default_rng(grading_seed("test-dedup", 8))
_m = 80
_log = pd.DataFrame(
    {
        "shop": _rng.choice(["x", "y"], _m),
        "user": _rng.integers(0, 12, _m),
        "ts": pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(_rng.integers(0, 4, _m), unit="h"),
        "amount": np.round(_rng.normal(20, 5, _m), 0),
        "note": pd.Series(_rng.choice(["ok", "retry", "fix"], _m)).where(_rng.random(_m) > 0.2, None),
    }
)
_log_gaps = _log.assign(ts=_log["ts"].where(_rng.random(_m) > 0.15), user=_log["user"].where(_rng.random(_m) > 0.1))
_dedup_cases = {
    "the example": (events_2, "user", "version"),
    "the example, keys as a list": (events_2, ["user"], "version"),
    "one key column, many ties on the time": (_log, "user", "ts"),
    "two key columns": (_log, ["shop", "user"], "ts"),
    "two key columns, the other order": (_log, ["user", "shop"], "ts"),
    "missing times and missing keys": (_log_gaps, ["shop", "user"], "ts"),
    "a missing order_by loses to any present one": (
        pd.DataFrame({"k": [1, 1, 1], "v": [np.nan, 0.0, np.nan], "x": [9, 1, 8]}),
        "k",
        "v",
    ),
    "every order_by missing: the content decides": (
        pd.DataFrame({"k": [1, 1, 2], "v": [np.nan, np.nan, np.nan], "x": [3, 8, 1]}),
        "k",
        "v",
    ),
    "a tie decided by a later column": (
        pd.DataFrame({"k": ["a", "a", "a"], "v": [2, 2, 2], "x": [1, 1, 1], "y": ["p", "r", "q"]}),
        "k",
        "v",
    ),
    "the order_by column is not the first one": (
        pd.DataFrame({"x": [9, 1, 5], "k": [1, 1, 1], "v": [1, 2, 2]}),
        "k",
        "v",
    ),
    "identical rows": (pd.DataFrame({"k": [1, 1, 1], "v": [2, 2, 2]}), "k", "v"),
    "one row": (pd.DataFrame({"k": [1], "v": [2.0]}), ["k"], "v"),
    "an empty table": (_log.iloc[:0], ["shop", "user"], "ts"),
    "a non-default index": (_log.set_axis(np.arange(_m) * 3 + 100), "user", "ts"),
    "nullable dtypes (Int64, boolean, string) keep their dtypes": (
        pd.DataFrame(
            {
                "k": pd.array([1, 1, None, 2, None], dtype="Int64"),
                "v": pd.array([3, None, 1, 2, 4], dtype="Int64"),
                "ok": pd.array([True, None, False, True, True], dtype="boolean"),
                "s": pd.array(["a", "b", None, "c", "d"], dtype="string"),
            }
        ),
        "k",
        "v",
    ),
}
for _name, (_frame, _keys, _order_by) in _dedup_cases.items():
    _check_dedup(_name, _frame, _keys, _order_by)

# Permutation invariance and idempotence on the biggest case.
_want = _check_dedup("missing times and missing keys", _log_gaps, ["shop", "user"], "ts")
for _seed in range(3):
    _shuffled = _log_gaps.sample(frac=1.0, random_state=_seed)
    _check_dedup(f"the same rows shuffled (seed {_seed})", _shuffled, ["shop", "user"], "ts")
_check_dedup("applied to its own result", _want, ["shop", "user"], "ts")

for _name, _args, _error in (
    ("an unknown key column", ("nope", "ts"), KeyError),
    ("an unknown order_by column", ("user", "nope"), KeyError),
    ("an empty list of keys", ([], "ts"), ValueError),
):
    try:
        dedup_latest(_log, *_args)
    except _error:
        pass
    else:
        raise AssertionError(f"{_name}: dedup_latest should raise {_error.__name__}")
### END HIDDEN TESTS
print("dedup_latest: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-asof", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — Point-in-time features: an as-of join with a maximum age (3 points)
#
# A label at time `t` may only use features known at or before `t`. Joining each label to the
# *latest* feature row at or before its time is an as-of join; joining on the entity alone (or to
# the newest row) lets the model see the future, and the lesson measured how much that flatters it.
#
# Write `asof_join(left, right, left_on, right_on, by=None, max_age=None)` returning a new pandas
# DataFrame:
#
# - `left` (the labels) and `right` (the features) are pandas DataFrames; `left_on` and `right_on`
#   name their time columns (datetimes, or numbers), which are different names; `by` is `None`, a
#   column name or a list of column names that both tables have (the entity), and no other column
#   name is in both tables. `max_age` is `None` or a `pd.Timedelta` (a number for numeric times).
# - **The match.** For each left row, the right row with the same `by` values whose `right_on` is
#   **at or before** the left row's `left_on` and latest among those; if `max_age` is given, only
#   right rows with `left_on - right_on <= max_age` count (so `max_age=0` keeps exact matches only).
#   If several right rows share that latest time, the one that comes last in `right` wins. A left
#   row with a missing time, or with no match, gets missing values in the right's columns; right rows
#   with a missing time are ignored.
# - **The result** has `left`'s rows **in `left`'s order and with `left`'s index**, and `left`'s
#   columns followed by `right`'s columns other than `by`, in `right`'s order (as
#   `pd.merge_asof(left, right, left_on=..., right_on=..., by=..., tolerance=max_age)` gives them).
#   Its values are those of that call on sorted inputs (a right column that gets missing values may
#   change dtype, as in pandas: the tests compare values, not dtypes).
# - **Neither table needs to be sorted**; `pd.merge_asof` requires both sorted by time, so sort
#   first and put the rows back in `left`'s order after.
# - Raise `ValueError` if `max_age` is negative.
#
# You may use `pd.merge_asof` or polars' `join_asof`. Do not call the course package's
# `mlcraft.data.joins.asof_join`.


# %% nbgrader={"grade": false, "grade_id": "asof-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def asof_join(left: pd.DataFrame, right: pd.DataFrame, left_on: str, right_on: str, by=None, max_age=None) -> pd.DataFrame:
    """Each left row with the latest right row (same ``by``) at or before its time, within ``max_age``."""
    ### BEGIN SOLUTION
    if max_age is not None and max_age < max_age * 0:
        raise ValueError(f"max_age must be >= 0, got {max_age}")
    by_keys = None if by is None else ([by] if isinstance(by, str) else list(by))
    row = "__row__"
    lhs = left.assign(**{row: np.arange(len(left))})
    timed = lhs[lhs[left_on].notna()].sort_values(left_on, kind="stable")
    rhs = right[right[right_on].notna()].sort_values(right_on, kind="stable")
    joined = pd.merge_asof(
        timed, rhs, left_on=left_on, right_on=right_on, by=by_keys, tolerance=max_age, direction="backward"
    )
    untimed = lhs[lhs[left_on].isna()]
    joined = pd.concat([joined, untimed], ignore_index=True).sort_values(row, kind="stable")
    joined.index = left.index
    return joined.drop(columns=row)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-asof", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
day = pd.Timestamp("2024-06-01", tz="UTC")
labels_3 = pd.DataFrame(
    {"user": [1, 2, 1, 1], "label_time": day + pd.to_timedelta([5, 3, 1, 9], unit="D"), "y": [1, 0, 0, 1]},
    index=[10, 11, 12, 13],
)
features_3 = pd.DataFrame(
    {
        "feature_time": day + pd.to_timedelta([4, 0, 2, 5, 3], unit="D"),
        "user": [1, 1, 1, 1, 2],
        "spend": [40.0, 0.0, 20.0, 50.0, 7.0],
    }
)
got_3 = asof_join(labels_3, features_3, "label_time", "feature_time", by="user")
# Row 10 (day 5): the feature of day 5 itself (at or before). Row 11 (user 2, day 3): day 3.
# Row 12 (day 1): day 0. Row 13 (day 9): the latest, day 5.
assert list(got_3.index) == [10, 11, 12, 13], f"keep left's index and order, got {list(got_3.index)}"
assert list(got_3.columns) == ["user", "label_time", "y", "feature_time", "spend"], f"got columns {list(got_3.columns)}"
assert got_3["spend"].tolist() == [50.0, 7.0, 0.0, 50.0], f"expected spend [50, 7, 0, 50], got {got_3['spend'].tolist()}"
got_3b = asof_join(labels_3, features_3, "label_time", "feature_time", by="user", max_age=pd.Timedelta(days=2))
# Row 13 (day 9): its latest feature is 4 days old, too old for max_age=2 days.
assert got_3b["spend"].isna().tolist() == [False, False, False, True], f"got spend {got_3b['spend'].tolist()}"
### BEGIN HIDDEN TESTS
from mlcraft.data.joins import asof_join as _asof_reference

_forbidden_asof = ("mlcraft.data.joins.asof_join",)


def _check_asof(name, left, right, left_on, right_on, by=None, max_age=None):
    got = call_without(asof_join, left, right, left_on, right_on, by=by, max_age=max_age, forbidden=_forbidden_asof)
    assert isinstance(got, pd.DataFrame), f"{name}: return a pandas DataFrame, got {type(got).__name__}"
    want = _asof_reference(left, right, left_on=left_on, right_on=right_on, by=by, max_age=max_age)
    assert list(got.columns) == list(want.columns), f"{name}: expected columns {list(want.columns)}, got {list(got.columns)}"
    assert list(got.index) == list(want.index), f"{name}: the result should have left's index in left's order"
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_index_type=False, obj=f"{name}: the result")
    # The leak probe: no joined feature is stamped after its label, nor older than max_age.
    matched = got[got[right_on].notna()]
    assert (matched[right_on] <= matched[left_on]).all(), f"{name}: a joined feature is later than its label"
    if max_age is not None:
        assert (matched[left_on] - matched[right_on] <= max_age).all(), f"{name}: a joined feature is older than max_age"


_rng = np.random.default_rng(grading_seed("test-asof", 3))
_nl, _nr = 70, 90
_labels = pd.DataFrame(
    {
        "user": _rng.integers(0, 6, _nl),
        "label_time": day + pd.to_timedelta(_rng.integers(0, 30 * 24, _nl), unit="h"),
        "y": _rng.integers(0, 2, _nl),
    },
    index=_rng.permutation(1000)[:_nl],
)
_features = pd.DataFrame(
    {
        "user": _rng.integers(0, 7, _nr),
        "feature_time": day + pd.to_timedelta(_rng.integers(0, 30 * 24, _nr), unit="h"),
        "spend": np.round(_rng.gamma(2.0, 10.0, _nr), 2),
        "visits": _rng.integers(0, 9, _nr),
    }
)
_features_ties = pd.concat([_features, _features.iloc[:30].assign(spend=-1.0)], ignore_index=True)
_labels_gaps = _labels.assign(label_time=_labels["label_time"].where(_rng.random(_nl) > 0.15))
_features_gaps = _features.assign(feature_time=_features["feature_time"].where(_rng.random(_nr) > 0.15))
_exact = _labels.assign(label_time=_features["feature_time"].iloc[:_nl].to_numpy(), user=_features["user"].iloc[:_nl].to_numpy())
_shop_l = _labels.assign(shop=_rng.choice(["x", "y"], _nl))
_shop_r = _features.assign(shop=_rng.choice(["x", "y"], _nr))[["shop", "feature_time", "user", "spend"]]
_anyone = _features.drop(columns="user")  # without by, no column name is in both tables
_asof_cases = {
    "the example": (labels_3, features_3, "label_time", "feature_time", "user", None),
    "the example, max_age 2 days": (labels_3, features_3, "label_time", "feature_time", "user", pd.Timedelta(days=2)),
    "unsorted inputs, per user": (_labels, _features, "label_time", "feature_time", "user", None),
    "unsorted inputs, no by": (_labels, _anyone, "label_time", "feature_time", None, None),
    "by given as a list": (_labels, _features, "label_time", "feature_time", ["user"], None),
    "by with two columns": (_shop_l, _shop_r, "label_time", "feature_time", ["user", "shop"], None),
    "max_age given alone": (_labels, _anyone, "label_time", "feature_time", None, pd.Timedelta(hours=20)),
    "max_age and by": (_labels, _features, "label_time", "feature_time", "user", pd.Timedelta(hours=36)),
    "exact matches count (at or before)": (_exact, _features, "label_time", "feature_time", "user", None),
    "max_age exactly on the boundary": (
        pd.DataFrame({"t": [10.0, 20.5, 10.0, 6.0]}),  # ages 3 (on the boundary), 3.5 (just past it), 3, none
        pd.DataFrame({"s": [17.0, 7.0], "v": [1.0, 2.0]}),
        "t",
        "s",
        None,
        3.0,
    ),
    "max_age 0: exact matches only": (_exact, _features, "label_time", "feature_time", "user", pd.Timedelta(0)),
    "max_age 0 where most labels have no exact match": (
        pd.concat([_exact.iloc[:10], _labels.iloc[10:]]), _features, "label_time", "feature_time", "user", pd.Timedelta(0),
    ),
    "max_age 0 with numeric times": (
        pd.DataFrame({"t": [10.0, 11.0, 12.0]}), pd.DataFrame({"s": [10.0, 12.0], "v": [1.0, 2.0]}), "t", "s", None, 0.0,
    ),
    "ties on the latest time: the last in right wins": (_labels, _features_ties, "label_time", "feature_time", "user", None),
    "missing label times and feature times": (_labels_gaps, _features_gaps, "label_time", "feature_time", "user", None),
    "an entity with no features": (
        _labels.assign(user=_labels["user"] + 100), _features, "label_time", "feature_time", "user", None,
    ),
    "every label before every feature": (
        _labels.assign(label_time=day - pd.Timedelta(days=1)), _features, "label_time", "feature_time", "user", None,
    ),
    "one label": (_labels.iloc[:1], _features, "label_time", "feature_time", "user", None),
    "no features": (_labels, _features.iloc[:0], "label_time", "feature_time", "user", None),
    "no labels": (_labels.iloc[:0], _features, "label_time", "feature_time", "user", None),
    "numeric times": (
        pd.DataFrame({"k": [1, 1, 2, 1], "t": [5, 1, 7, 3]}, index=[3, 2, 1, 0]),
        pd.DataFrame({"k": [1, 2, 1, 1], "s": [3, 2, 0, 6], "v": [30.0, 20.0, 0.0, 60.0]}),
        "t",
        "s",
        "k",
        None,
    ),
}
for _name, (_l, _r, _lo, _ro, _by, _age) in _asof_cases.items():
    _check_asof(_name, _l, _r, _lo, _ro, _by, _age)

for _bad in (pd.Timedelta(hours=-1), pd.Timedelta(microseconds=-1)):
    try:
        asof_join(labels_3, features_3, "label_time", "feature_time", by="user", max_age=_bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"max_age={_bad} should raise ValueError")
### END HIDDEN TESTS
print("asof_join: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-safe-merge", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — A merge that cannot explode silently (2 points)
#
# A left join of orders onto a customer table should keep one row per order. If the customer
# table holds a customer twice, every order of that customer is doubled, and sums downstream are
# wrong with no error. Pandas' `validate="many_to_one"` catches it, with a message that does not
# say which keys are to blame; and pandas matches missing keys with each other, which SQL never does.
#
# Write `safe_merge(left, right, on, how="left", validate="many_to_one")`:
#
# - `on` is a column name or a list of column names both tables have; `how` is `"left"`,
#   `"inner"`, `"right"` or `"outer"`; `validate` is `"one_to_one"`, `"one_to_many"`,
#   `"many_to_one"` or `"many_to_many"` (as in pandas: `"one_to_many"` promises `left` is unique on
#   `on`, `"many_to_one"` promises `right` is, `"one_to_one"` both, `"many_to_many"` nothing).
# - Raise `KeyError` if a column of `on` is missing from either table.
# - Raise `ValueError` if a key column holds a missing value in either table.
# - Raise `ValueError` if a table that `validate` promises unique on `on` is not. **The message
#   names the table (`left` or `right`), and every offending key with its row count**: each value
#   of the key (as `str(value)` would write it) and `"<count> rows"`, for instance
#   `right: key 'c7' on 3 rows` (any wording around them is yours). It names no key that is unique.
# - Otherwise return `left.merge(right, on=on, how=how)`: the same rows in the same order.
#
# Do not call the course package's `mlcraft.data.joins.safe_merge`.


# %% nbgrader={"grade": false, "grade_id": "safe-merge-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def safe_merge(left: pd.DataFrame, right: pd.DataFrame, on, how: str = "left", validate: str = "many_to_one") -> pd.DataFrame:
    """``left.merge(right, on=on, how=how)`` after checking missing keys and the promised uniqueness."""
    ### BEGIN SOLUTION
    keys = [on] if isinstance(on, str) else list(on)
    for side, frame in (("left", left), ("right", right)):
        n_missing = int(frame[keys].isna().any(axis=1).sum())  # frame[keys] raises KeyError for a missing column
        if n_missing:
            raise ValueError(f"{side} has {n_missing} row(s) with a missing key in {keys}")
    must_be_unique = {
        "one_to_one": ("left", "right"),
        "one_to_many": ("left",),
        "many_to_one": ("right",),
        "many_to_many": (),
    }[validate]
    problems = []
    for side, frame in (("left", left), ("right", right)):
        if side in must_be_unique:
            counts = frame.groupby(keys, sort=True).size()
            repeated = counts[counts > 1]
            if len(repeated):
                named = ", ".join(f"key {key!r} on {n} rows" for key, n in repeated.items())
                problems.append(f"{side}: {named}")
    if problems:
        raise ValueError(f"{validate} merge on {keys}: " + "; ".join(problems))
    return left.merge(right, on=keys, how=how)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-safe-merge", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
orders_4 = pd.DataFrame({"customer": ["c1", "c7", "c7", "c2"], "total": [10.0, 20.0, 5.0, 8.0]})
customers_4 = pd.DataFrame({"customer": ["c1", "c2", "c7", "c7", "c7"], "region": ["n", "s", "e", "w", "e"]})
try:
    safe_merge(orders_4, customers_4, on="customer")
except ValueError as error:
    message_4 = str(error)
    assert "right" in message_4 and "c7" in message_4 and "3 rows" in message_4, f"name right, 'c7' and '3 rows': {message_4}"
    assert "c1" not in message_4, f"c1 is unique in right and should not be named: {message_4}"
else:
    raise AssertionError("customers_4 holds c7 three times: a many_to_one merge should raise ValueError")
got_4 = safe_merge(orders_4, customers_4.drop_duplicates("customer"), on="customer")
pd.testing.assert_frame_equal(got_4, orders_4.merge(customers_4.drop_duplicates("customer"), on="customer", how="left"))
### BEGIN HIDDEN TESTS
_forbidden_merge = ("mlcraft.data.joins.safe_merge", "mlcraft.data.joins._repeated")


def _check_merge_ok(name, left, right, on, **kw):
    got = call_without(safe_merge, left, right, on, forbidden=_forbidden_merge, **kw)
    want = left.merge(right, on=on, how=kw.get("how", "left"))
    assert isinstance(got, pd.DataFrame), f"{name}: return a pandas DataFrame, got {type(got).__name__}"
    pd.testing.assert_frame_equal(got, want, obj=f"{name}: the merged table")


def _check_merge_refused(name, left, right, on, side, offending, unique=(), **kw):
    """``offending``: (key values, row count) pairs that must be named; ``unique``: key values that must not be."""
    try:
        call_without(safe_merge, left, right, on, forbidden=_forbidden_merge, **kw)
    except ValueError as error:
        message = str(error)
    else:
        raise AssertionError(f"{name}: safe_merge should raise ValueError ({side} is not unique on {on})")
    assert side in message, f"{name}: the message should name the table {side!r}: {message}"
    for values, count in offending:
        for value in values:
            assert str(value) in message, f"{name}: the message should name the key value {value!r}: {message}"
        assert f"{count} rows" in message, f"{name}: the message should give the key's count '{count} rows': {message}"
    for value in unique:
        assert str(value) not in message, f"{name}: {value!r} is unique and should not be named: {message}"


_rng = np.random.default_rng(grading_seed("test-safe-merge", 5))
_cust = pd.DataFrame({"cid": np.arange(5100, 5140), "tier": _rng.choice(["gold", "basic"], 40)})
_ord = pd.DataFrame({"cid": _rng.choice(_cust["cid"], 120), "amount": np.round(_rng.gamma(2.0, 30.0, 120), 2)})
_cust_dup = pd.concat([_cust, _cust[_cust["cid"].isin([5117, 5123])], _cust[_cust["cid"] == 5117]], ignore_index=True)
_pairs_l = pd.DataFrame({"shop": ["s1", "s1", "s2", "s2"], "day": [1, 2, 1, 1], "sales": [3, 4, 5, 6]})
_pairs_r = pd.DataFrame({"shop": ["s1", "s2", "s1", "s2"], "day": [1, 1, 2, 2], "staff": [7, 8, 9, 10]})
for _how in ("left", "inner", "right", "outer"):
    _check_merge_ok(f"how={_how!r}", _ord, _cust.iloc[5:], "cid", how=_how)
_check_merge_ok("on as a list", _ord, _cust, ["cid"])
_check_merge_ok("two key columns", _pairs_r, _pairs_l.drop_duplicates(["shop", "day"]), ["shop", "day"])
_check_merge_ok("one_to_one on unique keys", _cust.iloc[::-1], _cust.rename(columns={"tier": "t2"}), "cid", validate="one_to_one")
_check_merge_ok("many_to_many allows repeats on both sides", _ord, _cust_dup, "cid", validate="many_to_many")
_check_merge_ok("one_to_many with a repeated right", _cust, _ord, "cid", validate="one_to_many")
_check_merge_ok("empty left", _ord.iloc[:0], _cust, "cid")
_check_merge_ok(
    "a column both tables have besides the key (suffixes)", _ord, _cust.assign(amount=np.arange(40.0)), "cid"
)
_check_merge_ok(
    "missing values outside the key columns are fine",
    _ord.assign(amount=_ord["amount"].where(_ord.index % 3 > 0)),
    _cust.assign(tier=_cust["tier"].where(_cust.index % 4 > 0)),
    "cid",
)
_check_merge_ok("one row each", _ord.iloc[:1], _cust[_cust["cid"] == _ord["cid"].iloc[0]], "cid")

_check_merge_refused(
    "the right table repeats two keys", _ord, _cust_dup, "cid", "right", [((5117,), 3), ((5123,), 2)], unique=(5100, 5139)
)
_check_merge_refused(
    "one_to_many with a repeated left", _cust_dup, _ord, "cid", "left", [((5117,), 3)], unique=(5139,), validate="one_to_many"
)
_check_merge_refused(
    "one_to_one checks the left", _cust_dup, _cust, "cid", "left", [((5123,), 2)], validate="one_to_one"
)
_check_merge_refused(
    "one_to_one checks the right", _cust, _cust_dup, "cid", "right", [((5117,), 3)], validate="one_to_one"
)
_check_merge_refused(
    "a repeated key of two columns", _pairs_r, _pairs_l, ["shop", "day"], "right", [(("s2", 1), 2)], unique=("s1",)
)
_check_merge_refused(
    "how='inner' checks too", _ord, _cust_dup, "cid", "right", [((5123,), 2)], how="inner"
)

for _name, _l, _r, _on, _error in (
    ("a missing key in left", _ord.assign(cid=_ord["cid"].where(_ord.index != 7)), _cust, "cid", ValueError),
    ("a missing key in right", _ord, _cust.assign(cid=_cust["cid"].where(_cust.index != 3)), "cid", ValueError),
    ("missing keys on both sides", _pairs_l.assign(shop=[None, "s1", "s2", "s2"]), _pairs_r.assign(shop=[None] * 4), ["shop", "day"], ValueError),
    ("a key column left lacks", _ord, _cust.assign(z=1), ["cid", "z"], KeyError),
    ("a key column right lacks", _ord.assign(z=1), _cust, ["cid", "z"], KeyError),
):
    for _validate in ("many_to_one", "many_to_many"):
        try:
            safe_merge(_l, _r, _on, validate=_validate)
        except _error:
            pass
        else:
            raise AssertionError(f"{_name} (validate={_validate!r}): safe_merge should raise {_error.__name__}")
### END HIDDEN TESTS
print("safe_merge: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-fingerprint", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — Fingerprint a table's content (3 points)
#
# A run logs the fingerprint of the data it trained on, so a model can be traced to its exact data
# (lesson 07). Hashing the CSV file would change when rows are reordered or floats are printed
# differently, and would not change when two columns swap names.
#
# Write `fingerprint(df)` that returns a **string** (for instance a hex digest) such that two
# pandas DataFrames get **the same fingerprint exactly when they hold the same multiset of rows
# under the same column names with the same dtypes**:
#
# - **Order does not matter**: the same rows in any order, and the same columns in any order, give
#   the same fingerprint; so does the same table with another index (the index is not data).
# - **Content matters**: changing any single value, any column's dtype (`int64` vs `float64` with
#   equal values, `int32` vs `int64`, a time zone), any column name, or how many times a row
#   appears (a row twice is not a row once) changes the fingerprint; so does moving a value from
#   one row to another (two rows `(1, "a"), (2, "b")` are not `(1, "b"), (2, "a")`).
# - **Canonical values**: in a float column `-0.0` is `0.0` and every NaN is the same NaN (NaNs
#   come with different bit patterns: `np.float64("nan")` and `-np.nan` are different bytes); in
#   any column `None`, `NaN`, `NaT` and `pd.NA` are the same missing value.
# - Columns may be ints, floats, bools, strings (with missing values) and datetimes (with or
#   without a time zone, with missing values). Names are distinct strings.
# - It must be fast enough for real tables: 100,000 rows and 5 columns in a few seconds (a loop
#   over rows in Python is fine; comparing every pair of rows is not).
# - A table with no rows has a fingerprint too (its columns and dtypes still matter).
#
# Use a cryptographic hash (`hashlib`) for the final digest. Do not call the course package's
# `mlcraft.data.fingerprint`.


# %% nbgrader={"grade": false, "grade_id": "fingerprint-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fingerprint(df: pd.DataFrame) -> str:
    """A hex digest equal for the same multiset of rows, names and dtypes; any order of rows or columns."""
    ### BEGIN SOLUTION
    names = sorted(df.columns)
    header = "\x1e".join(f"{name}\x1f{df[name].dtype}" for name in names)
    columns = []
    for name in names:
        values = df[name]
        missing = values.isna().to_numpy(dtype=bool)
        if values.dtype.kind == "f":
            text = [repr(v) for v in (values.to_numpy(dtype=np.float64) + 0.0).tolist()]  # -0.0 + 0.0 is 0.0
        else:  # repr of a Timestamp holds its instant to the nanosecond and its zone
            text = values.astype(object).map(repr).to_numpy(dtype=object)
        text = np.where(missing, "\x00missing", np.asarray(text, dtype=object))
        columns.append(text)
    rows = sorted(
        hashlib.sha256("\x1f".join(cells).encode("utf-8")).digest() for cells in zip(*columns)
    ) if names else [b""] * len(df)
    digest = hashlib.sha256(header.encode("utf-8"))
    digest.update(len(df).to_bytes(8, "little"))
    for row in rows:
        digest.update(row)
    return digest.hexdigest()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-fingerprint", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
table_5 = pd.DataFrame({"id": [1, 2, 3], "score": [0.5, -0.0, np.nan], "name": ["a", "b", None]})
fp_5 = fingerprint(table_5)
assert isinstance(fp_5, str) and fp_5, f"return a non-empty string, got {fp_5!r}"
assert fingerprint(table_5.iloc[::-1]) == fp_5, "the same rows in another order: same fingerprint"
assert fingerprint(table_5[["name", "id", "score"]]) == fp_5, "the same columns in another order: same fingerprint"
assert fingerprint(table_5.assign(score=[0.5, 0.0, -np.nan])) == fp_5, "-0.0 is 0.0 and every NaN is one NaN"
assert fingerprint(table_5.assign(id=[1, 2, 4])) != fp_5, "a changed value: another fingerprint"
assert fingerprint(table_5.astype({"id": "float64"})) != fp_5, "a changed dtype: another fingerprint"
assert fingerprint(table_5.rename(columns={"name": "label"})) != fp_5, "a renamed column: another fingerprint"
### BEGIN HIDDEN TESTS
_forbidden_fp = (
    "mlcraft.data.fingerprint.frame_fingerprint",
    "mlcraft.data.fingerprint.row_hashes",
    "mlcraft.data.fingerprint._row_hashes",
    "mlcraft.data.fingerprint._column_hashes",
)


def _fp_all(frames):
    """Each table's fingerprint, each call checked for the forbidden functions."""
    got = [call_without(fingerprint, frame, forbidden=_forbidden_fp) for frame in frames]
    for value in got:
        assert isinstance(value, str) and value, f"fingerprint should return a non-empty string, got {value!r}"
    return got


_rng = np.random.default_rng(grading_seed("test-fingerprint", 11))
_k = 40
_base = pd.DataFrame(
    {
        "i": _rng.integers(-5, 5, _k),
        "f": np.round(_rng.normal(0, 1, _k), 1),
        "b": _rng.random(_k) < 0.5,
        "s": pd.Series(_rng.choice(["x", "y", "zz", "", "1"], _k)).where(_rng.random(_k) > 0.15, None),
        "t": pd.Series(pd.Timestamp("2024-03-30 23:00", tz="Europe/Oslo") + pd.to_timedelta(_rng.integers(0, 96, _k), unit="h")).where(
            _rng.random(_k) > 0.15
        ),
        "naive": pd.Timestamp("2024-01-01") + pd.to_timedelta(_rng.integers(0, 10**6, _k), unit="s"),
    }
)
_base.loc[[3, 9], "f"] = np.nan
_base.loc[5, "f"] = 0.0
_base = pd.concat([_base, _base.iloc[[0, 1]]], ignore_index=True)  # two rows appear twice

# The same content: every one of these must share the base's fingerprint.
_nan_bits = np.array([0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000ABC], dtype=np.uint64).view(np.float64)
_same = {
    "rows shuffled": _base.sample(frac=1.0, random_state=1),
    "rows reversed, new index": _base.iloc[::-1].set_axis(np.arange(len(_base)) * 7 + 3),
    "columns reordered": _base[["t", "s", "naive", "b", "f", "i"]],
    "rows and columns shuffled": _base.sample(frac=1.0, random_state=2)[["b", "naive", "i", "t", "f", "s"]],
    "-0.0 for 0.0": _base.assign(f=_base["f"].where(_base["f"] != 0.0, -0.0)),
    "NaNs with other bit patterns": _base.assign(f=np.where(_base["f"].isna(), _nan_bits[np.arange(len(_base)) % 3], _base["f"])),
}
_obj = pd.Series(["a", None, "b"], dtype=object)
_o1, _o2, _o3 = _fp_all(
    [pd.DataFrame({"o": _obj}), pd.DataFrame({"o": _obj.where(_obj.notna(), np.nan)}), pd.DataFrame({"o": _obj.fillna("None")})]
)
assert _o1 == _o2, "an object column: None and NaN are the same missing value"
assert _o1 != _o3, "an object column: a missing value is not the string 'None'"
# Different content: every one of these must differ from the base and from each other.
_swap = _base.copy()
_swap.loc[[0, 2], "s"] = _swap.loc[[2, 0], "s"].to_numpy()
_swap = _swap if not _swap.equals(_base) else _swap.assign(s="w")
_values = _base.copy()
_values.loc[0, "i"] = 99
_values_f = _base.copy()
_values_f.loc[4, "f"] = _values_f.loc[4, "f"] + 1e-12
_values_tiny = _base.copy()
_values_tiny.loc[5, "f"] = 5e-324  # was 0.0: the smallest float above it
_values_t = _base.copy()
_values_t.loc[6, "naive"] = _values_t.loc[6, "naive"] + pd.Timedelta(nanoseconds=1000)
_dup_swap = pd.concat([_base.iloc[:-2], _base.iloc[[0, 2]]], ignore_index=True)  # same size, other duplicate
_cols_swap = _base.rename(columns={"i": "i2"})
_same_dtype = pd.DataFrame({"p": [1, 2], "q": [3, 4]})
_different = {
    "one int value changed": _values,
    "one float value changed by 1e-12": _values_f,
    "0.0 made 5e-324": _values_tiny,
    "one datetime moved by a microsecond": _values_t,
    "a value moved between rows": _swap,
    "a duplicated row once more": pd.concat([_base, _base.iloc[[0]]], ignore_index=True),
    "a duplicated row once less": _base.iloc[:-1],
    "a different row duplicated": _dup_swap,
    "a column renamed": _cols_swap,
    "int64 to float64": _base.astype({"i": "float64"}),
    "int64 to int32": _base.astype({"i": "int32"}),
    "bool to int64": _base.astype({"b": "int64"}),
    "another time zone, same instants": _base.assign(t=_base["t"].dt.tz_convert("UTC")),
    "a missing string made empty": _base.assign(s=_base["s"].fillna("")),
    "a NaN made 0.0": _base.assign(f=_base["f"].fillna(0.0)),
    "a column dropped": _base.drop(columns=["b"]),
    "the rows but no columns": _base[[]],
    "the columns but no rows": _base.iloc[:0],
    "five rows but no columns": _base.iloc[:5][[]],
}
_fps = _fp_all([_base, *_same.values(), *_different.values()])
_fp_base, _fp_same, _fp_diff = _fps[0], _fps[1 : 1 + len(_same)], _fps[1 + len(_same) :]
for _name, _fp in zip(_same, _fp_same):
    assert _fp == _fp_base, f"{_name}: the same content should give the same fingerprint"
for _name, _fp in zip(_different, _fp_diff):
    assert _fp != _fp_base, f"{_name}: different content should give a different fingerprint"
_seen = {}
for _name, _fp in zip(_different, _fp_diff):
    assert _fp not in _seen, f"{_name} and {_seen.get(_fp)}: two different tables got the same fingerprint"
    _seen[_fp] = _name

# Rows that appear twice: [a, a, c] and [b, b, c] are different tables (a XOR of row hashes cancels both pairs).
_small2 = _base.iloc[:3].reset_index(drop=True)
_aac, _bbc = _fp_all([_small2.iloc[[0, 0, 2]], _small2.iloc[[1, 1, 2]]])
assert _aac != _bbc, "rows [a, a, c] and [b, b, c] should get different fingerprints"
# Names and values must not slide into each other: columns swapped with their names is the same table,
# columns swapped without their names is not.
_p, _q, _qp = _fp_all([_same_dtype, _same_dtype[["q", "p"]], _same_dtype.rename(columns={"p": "q", "q": "p"})])
assert _p == _q, "the same columns in another order: same fingerprint"
assert _p != _qp, "two columns that swap names (their values stay): a different table"
# Row boundaries: rows ("ab", "c") and ("a", "bc") are different rows.
_r1, _r2 = _fp_all([pd.DataFrame({"u": ["ab"], "v": ["c"]}), pd.DataFrame({"u": ["a"], "v": ["bc"]})])
assert _r1 != _r2, "rows ('ab', 'c') and ('a', 'bc') should get different fingerprints"
# Single-value changes across every column of a table, each one a different table.
_small = _base.iloc[:6].reset_index(drop=True)
_edits = []
for _col, _new in (("i", 77), ("f", 7.5), ("b", None), ("s", "changed"), ("naive", pd.Timestamp("2030-01-01"))):
    for _row in (0, 2, 5):
        _edited = _small.copy()
        _edited.loc[_row, _col] = (not _small.loc[_row, "b"]) if _col == "b" else _new  # a bool is flipped
        _edits.append(_edited)
_edit_fps = _fp_all([_small, *_edits])
assert len(set(_edit_fps)) == len(_edit_fps), (
    f"changing one value (in each column, rows 0, 2 and 5) should give {len(_edit_fps)} different fingerprints, "
    f"got {len(set(_edit_fps))}"
)
# Empty tables and one-row tables.
_e = _fp_all([_base.iloc[:0], _base.iloc[:0][["s", "i", "f", "b", "t", "naive"]], _base.iloc[:0].astype({"i": "int32"}), _base.iloc[:1], _base.iloc[1:2]])
assert _e[0] == _e[1], "an empty table: column order does not matter"
assert _e[0] != _e[2], "an empty table: a dtype still matters"
assert len({_e[0], _e[3], _e[4]}) == 3, "empty, one row and another row: three different fingerprints"

# 100,000 rows and 5 columns, twice (the second shuffled): the same fingerprint, in a few seconds.
_n_big = 100_000
_big_fp = pd.DataFrame(
    {
        "a": _rng.integers(0, 1000, _n_big),
        "b": _rng.normal(0, 1, _n_big),
        "c": _rng.choice(["red", "green", "blue", "grey"], _n_big),
        "d": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(_rng.integers(0, 10**7, _n_big), unit="s"),
        "e": _rng.random(_n_big) < 0.3,
    }
)
_big_fps = _fp_all([_big_fp, _big_fp.sample(frac=1.0, random_state=4)])
assert _big_fps[0] == _big_fps[1], "100,000 rows shuffled: same fingerprint"
### END HIDDEN TESTS
print("fingerprint: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-shard", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — Every item once per epoch, across DataLoader workers and training processes (3 points)
#
# A streaming dataset (`IterableDataset`) has no sampler: each DataLoader worker runs its own copy
# of `__iter__`, and under data parallel training each process (rank) runs its own DataLoader. If
# the dataset does not split itself, every worker of every rank reads every item: with 4 workers
# on 2 ranks, each item 8 times per epoch.
#
# **(a)** Write `shard_indices(n, epoch, seed, rank, world_size, worker_id, num_workers, shuffle=True)`
# returning the item indices that worker `worker_id` of rank `rank` reads in `epoch`, as a list of
# Python ints:
#
# - The epoch's order is `np.random.default_rng((seed, epoch)).permutation(n)` when `shuffle`
#   is true (a new order each epoch, the same on every machine for the same seed), and
#   `0, 1, ..., n-1` when it is false.
# - There are `S = world_size * num_workers` shards. Worker `worker_id` of rank `rank` reads shard
#   `s = worker_id * world_size + rank`: the positions `s, s + S, s + 2S, ...` of the epoch's
#   order, in that order. (This layout is *worker-major*: the items of one rank over all its
#   workers are positions `rank, rank + world_size, ...`, whatever `num_workers` is.)
# - So over all `(rank, worker_id)` pairs every index appears exactly once; shards differ in size by
#   at most one and are empty when `n < S`. `n = 0` gives `[]`.
# - Raise `ValueError` if `n`, `epoch` or `seed` is negative, if `rank` is not in
#   `[0, world_size)`, or if `worker_id` is not in `[0, num_workers)` (so `world_size` and
#   `num_workers` are at least 1).
#
# **(b)** Write the class `ShardedDataset(source, seed, rank=0, world_size=1, shuffle=True)`, an
# `IterableDataset`:
#
# - `source` is anything with `len()` and `source[i]` (a list, an array, a map-style dataset).
# - `set_epoch(epoch)` sets the epoch used by the next iteration (it starts at 0).
# - `__iter__` yields `source[i]` for each `i` of `shard_indices(...)`, in that order, with
#   `worker_id` and `num_workers` read **inside `__iter__`** from
#   `torch.utils.data.get_worker_info()` (`None` in the main process: worker 0 of 1).
# - `len(dataset)` is the number of items the rank yields per epoch over all its workers:
#   `len(range(rank, len(source), world_size))`.
#
# Do not use the course package's `mlcraft.data.streaming`.


# %% nbgrader={"grade": false, "grade_id": "shard-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shard_indices(
    n: int, epoch: int, seed: int, rank: int, world_size: int, worker_id: int, num_workers: int, shuffle: bool = True
) -> list[int]:
    """Indices read by worker ``worker_id`` of rank ``rank`` in ``epoch``: shard ``worker_id * world_size + rank``."""
    ### BEGIN SOLUTION
    for name, value in (("n", n), ("epoch", epoch), ("seed", seed)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if not 0 <= worker_id < num_workers:
        raise ValueError(f"worker_id must be in [0, {num_workers}), got {worker_id}")
    order = np.random.default_rng((seed, epoch)).permutation(n) if shuffle else np.arange(n)
    shard = worker_id * world_size + rank
    return [int(i) for i in order[shard :: world_size * num_workers]]
    ### END SOLUTION


class ShardedDataset(IterableDataset):
    """Yield this rank's and this worker's shard of ``source``, reshuffled each epoch."""

    ### BEGIN SOLUTION
    def __init__(self, source, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        self.source, self.seed, self.rank, self.world_size, self.shuffle = source, seed, rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, len(self.source), self.world_size))

    def __iter__(self):
        info = get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        indices = shard_indices(
            len(self.source), self.epoch, self.seed, self.rank, self.world_size, worker_id, num_workers, self.shuffle
        )
        for i in indices:
            yield self.source[i]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-shard", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
got_6 = shard_indices(10, epoch=0, seed=0, rank=1, world_size=2, worker_id=1, num_workers=2, shuffle=False)
assert got_6 == [3, 7], f"shard s = 1 * 2 + 1 = 3 of S = 4: positions 3 and 7, got {got_6}"
every_6 = sorted(
    i for r in range(2) for w in range(3) for i in shard_indices(11, epoch=2, seed=7, rank=r, world_size=2, worker_id=w, num_workers=3)
)
assert every_6 == list(range(11)), f"all shards together: each index once, got {every_6}"


@in_kernel
def read_epochs(source, seed, world_size, epochs):
    """Each rank's len, and what each rank's DataLoader yields in each epoch (one ShardedDataset per rank)."""
    ranks = [ShardedDataset(source, seed, rank=r, world_size=world_size) for r in range(world_size)]
    read = []
    for epoch in epochs:
        for dataset in ranks:
            dataset.set_epoch(epoch)
        read.append([list(DataLoader(dataset, batch_size=None)) for dataset in ranks])
    return [len(dataset) for dataset in ranks], read


lengths_6, epochs_6 = read_epochs(list("abcdefg"), 3, 2, [0, 1])
assert lengths_6 == [4, 3], f"7 items on 2 ranks: len 4 and 3, got {lengths_6}"
for epoch, per_rank in enumerate(epochs_6):
    together = sorted(item for items in per_rank for item in items)
    assert together == list("abcdefg"), f"epoch {epoch}: both ranks together read each item once, got {per_rank}"
assert epochs_6[0] != epochs_6[1], f"each epoch has its own order, got {epochs_6[0]} twice"
### BEGIN HIDDEN TESTS
from mlcraft.data.streaming import shard_indices as _shard_reference

_forbidden_shard = (
    "mlcraft.data.streaming.shard_indices",
    "mlcraft.data.streaming._EpochShards._my_indices",
    "mlcraft.data.streaming.ShardedIterableDataset.__iter__",
    "torch.utils.data.distributed.DistributedSampler.__iter__",
)


def _check_shard(name, n, epoch, seed, rank, world_size, worker_id, num_workers, **kw):
    got = call_without(shard_indices, n, epoch, seed, rank, world_size, worker_id, num_workers, forbidden=_forbidden_shard, **kw)
    assert isinstance(got, list), f"{name}: return a list of ints, got {type(got).__name__}"
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in got), f"{name}: return Python ints, got {got[:5]!r}"
    want = _shard_reference(
        n, epoch=epoch, seed=seed, rank=rank, world_size=world_size, worker_id=worker_id, num_workers=num_workers, **kw
    ).tolist()
    assert got == want, (
        f"{name} (n={n}, epoch={epoch}, seed={seed}, rank {rank}/{world_size}, worker {worker_id}/{num_workers}, {kw}): "
        f"expected {want[:12]}{'...' if len(want) > 12 else ''}, got {got[:12]}{'...' if len(got) > 12 else ''}"
    )


_seed6 = grading_seed("test-shard", 21)
for _n, _ws, _nw in ((0, 1, 1), (1, 1, 1), (1, 2, 2), (3, 2, 2), (10, 1, 1), (10, 2, 1), (10, 1, 3), (17, 2, 3), (24, 3, 4), (101, 4, 2)):
    for _epoch in (0, 1, 5):
        for _r in range(_ws):
            for _w in range(_nw):
                _check_shard("shuffled", _n, _epoch, _seed6, _r, _ws, _w, _nw)
    _check_shard("shuffle given alone (False)", _n, 3, _seed6, _ws - 1, _ws, _nw - 1, _nw, shuffle=False)
    _check_shard("shuffle given alone (True)", _n, 3, _seed6, 0, _ws, _nw - 1, _nw, shuffle=True)
_check_shard("seed 0, epoch 0", 50, 0, 0, 0, 1, 0, 1)
_check_shard("a large seed", 50, 2, 2**40 + 3, 1, 2, 0, 2)
_check_shard("a rank's items do not depend on the number of workers", 1000, 1, _seed6, 2, 3, 4, 5)

# Bad arguments, each alone.
for _name, _args in {
    "n < 0": (-1, 0, 0, 0, 1, 0, 1),
    "epoch < 0": (5, -1, 0, 0, 1, 0, 1),
    "seed < 0": (5, 0, -1, 0, 1, 0, 1),
    "rank = world_size": (5, 0, 0, 2, 2, 0, 1),
    "rank < 0": (5, 0, 0, -1, 2, 0, 1),
    "world_size = 0": (5, 0, 0, 0, 0, 0, 1),
    "worker_id = num_workers": (5, 0, 0, 0, 1, 3, 3),
    "worker_id < 0": (5, 0, 0, 0, 1, -1, 3),
    "num_workers = 0": (5, 0, 0, 0, 1, 0, 0),
}.items():
    for _shuffle in (True, False):
        try:
            shard_indices(*_args, shuffle=_shuffle)
        except ValueError:
            pass
        else:
            raise AssertionError(f"shard_indices with {_name} (shuffle={_shuffle}) should raise ValueError")


@in_kernel
def _run_dataset(source, seed, rank, world_size, shuffle, epochs, num_workers):
    """What ShardedDataset yields, with the DataLoader worker info of each simulated worker.

    Returns (len, {epoch: [items of worker 0, items of worker 1, ...]}). Workers are simulated the way
    a DataLoader worker process sees itself: get_worker_info() returns its id and the worker count.
    """
    import torch.utils.data._utils.worker as worker_module

    kwargs = {} if shuffle is None else {"shuffle": shuffle}
    dataset = ShardedDataset(source, seed, rank=rank, world_size=world_size, **kwargs)
    seen = {}
    for epoch in epochs:
        if epoch is not None:
            dataset.set_epoch(epoch)
        per_worker = []
        for worker_id in range(num_workers):
            previous = worker_module._worker_info
            if num_workers > 1:
                worker_module._worker_info = worker_module.WorkerInfo(
                    id=worker_id, num_workers=num_workers, seed=0, dataset=dataset
                )
            try:
                per_worker.append(list(iter(dataset)))
            finally:
                worker_module._worker_info = previous
        seen[str(epoch)] = per_worker
    return len(dataset), seen


def _check_dataset(name, n, rank, world_size, num_workers, epochs=(None, 1, 2), shuffle=None):
    source = [f"item-{i}" for i in range(n)]
    length, seen = call_without(
        _run_dataset, source, _seed6, rank, world_size, shuffle, list(epochs), num_workers, forbidden=_forbidden_shard
    )
    assert length == len(range(rank, n, world_size)), (
        f"{name}: len() should be {len(range(rank, n, world_size))} for rank {rank} of {world_size} and {n} items, got {length}"
    )
    current = 0
    for epoch in epochs:
        current = current if epoch is None else epoch
        for worker_id, items in enumerate(seen[str(epoch)]):
            want = [
                source[i]
                for i in _shard_reference(
                    n,
                    epoch=current,
                    seed=_seed6,
                    rank=rank,
                    world_size=world_size,
                    worker_id=worker_id,
                    num_workers=num_workers,
                    shuffle=shuffle is not False,
                )
            ]
            assert items == want, (
                f"{name}: epoch {current}, rank {rank}/{world_size}, worker {worker_id}/{num_workers}: "
                f"expected {want[:6]}..., got {items[:6]}..."
            )


_check_dataset("main process, rank 0 of 1", 23, 0, 1, 1)
_check_dataset("main process, rank 2 of 3", 23, 2, 3, 1)
_check_dataset("3 workers, rank 1 of 2", 40, 1, 2, 3)
_check_dataset("4 workers, one rank", 9, 0, 1, 4)
_check_dataset("more shards than items", 3, 1, 2, 3)
_check_dataset("no items", 0, 0, 2, 2)
_check_dataset("shuffle=False", 25, 1, 2, 2, shuffle=False)
_check_dataset("shuffle=True given", 25, 0, 2, 2, shuffle=True)
_check_dataset("set_epoch(0) after another epoch", 30, 1, 3, 2, epochs=(4, 0))

# A real DataLoader in the main process yields the same as the dataset itself.
@in_kernel
def _through_loader(source, seed, epoch):
    dataset = ShardedDataset(source, seed, rank=1, world_size=2)
    dataset.set_epoch(epoch)
    return [int(b) for b in DataLoader(dataset, batch_size=None)], list(iter(dataset))


_via_loader, _direct = call_without(_through_loader, list(range(31)), _seed6, 3, forbidden=_forbidden_shard)
_want_loader = _shard_reference(31, epoch=3, seed=_seed6, rank=1, world_size=2).tolist()
assert _via_loader == _want_loader and _direct == _want_loader, (
    f"DataLoader(ShardedDataset(range(31), rank=1 of 2), batch_size=None), epoch 3: expected {_want_loader[:6]}..., "
    f"got {_via_loader[:6]}..."
)
### END HIDDEN TESTS
print("ShardedDataset: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. A contract says `amount` is a `"float"` with `min=0`. A polars table holds `amount` as `Int64`
#    with a null. How many violations does your `check_contract` report, and why is the kind read
#    from the polars schema rather than from `to_pandas()`?
# 2. Why does `dedup_latest` break ties by content rather than by keeping the last row of the file?
# 3. An as-of join without `by` on a table of several users: what goes wrong?
# 4. A many-to-one left merge keeps `len(left)` rows. Is that enough to know the merge is right?
# 5. Why sort the row hashes (or use a multiset) rather than XOR them together?
# 6. With `num_workers=2` and a dataset that ignores `get_worker_info()`, how many times is each
#    item read per epoch on 4 ranks? And with a shard layout that is rank-major
#    (`s = rank * num_workers + worker_id`), what changes for a rank when you change `num_workers`?
#
# <details><summary>Answers</summary>
#
# 1. One, `("amount", "kind", 1)`; its range is not checked. Converted to pandas, an `Int64` column
#    with a null becomes `float64`, so a check on the converted table would call it a float.
# 2. The file's order is not data: a reload, a parallel read or a re-partitioned file can change it,
#    and the "latest" row with it. A content rule gives the same table every time.
# 3. Each label is joined to the latest feature row of *any* user: features of other users leak in.
# 4. No: it says no key was duplicated on the right, not that every key matched; check the share of
#    rows with missing right columns too (or use `how="inner"` and compare counts).
# 5. XOR cancels pairs: a row present twice hashes like a row absent, and two equal rows vanish.
# 6. 2 × 4 = 8 times. Rank-major gives each rank a contiguous block of shards whose items depend on
#    `num_workers`; worker-major keeps a rank's items the same for any worker count.
#
# </details>
