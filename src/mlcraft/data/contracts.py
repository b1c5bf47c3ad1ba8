"""Data contracts by hand (06_data): what a table must look like before a pipeline trusts it.

A contract names each column's kind, whether it may be missing, its range, its allowed values and
whether it is unique, plus keys that must be unique together, and whether other columns may be
present. :func:`check_contract` returns every violation as ``(column, rule, n_bad)``, sorted, so a
test can compare the whole list and a log line can carry it; nothing is raised for bad data (the
caller decides: stop at ingest, drop rows in training, alert in serving). The same contract in
`pandera <https://pandera.readthedocs.io/>`_ is the library route; the lesson writes both.

Conventions, each a rule of :func:`check_contract`:

- **Missing** is ``None``, ``NaN``, ``NaT`` and ``pd.NA`` in pandas, and ``null`` and ``NaN`` in
  polars: a float NaN is as missing as a null (pandas cannot tell them apart after most
  operations, so a contract that did would depend on how the table was built).
- Column-level rules (``"present"``, ``"extra"``, ``"kind"``) count one per column. When a column's
  kind is wrong its value rules are not checked (a range over strings has no meaning).
- Row-level rules count rows: ``"not_null"`` the missing values; ``"min"``/``"max"`` the values
  below/above the inclusive bound; ``"allowed"`` the values outside the set; ``"unique"`` every
  row whose value (or key, for ``unique_together``, reported under ``"a,b"``) appears more than
  once. Missing values are never out of range, outside the set or duplicates: the ``not_null``
  rule is the only one that counts them (SQL's ``UNIQUE`` treats NULLs the same way).
- Rules that find nothing are not reported; the list is sorted by ``(column, rule)``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcraft.data.fingerprint import unique_column_names

__all__ = ["ColumnRule", "Contract", "Kind", "Violation", "check_contract", "column_kind"]

Kind = Literal["int", "float", "bool", "string", "datetime", "category"]


class ColumnRule(BaseModel):
    """What one column must hold. Bounds of a datetime column are ``pd.Timestamp``s in its time zone."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    kind: Kind | None = None  # None: any kind
    nullable: bool = True  # False: no missing value allowed
    min: float | pd.Timestamp | None = None  # inclusive lower bound (numbers or datetimes)
    max: float | pd.Timestamp | None = None  # inclusive upper bound
    allowed: frozenset[Any] | None = None  # the only values allowed (missing ones aside)
    unique: bool = False  # no value twice (missing ones aside)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min!r} is above max {self.max!r}")
        return self


class Contract(BaseModel):
    """A table's contract: one rule per column, keys unique together, and whether other columns may exist."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: dict[str, ColumnRule]
    unique_together: tuple[tuple[str, ...], ...] = ()  # e.g. (("user_id", "day"),)
    extra_columns: bool = False  # True: columns the contract does not name are allowed
    name: str = Field(default="table", min_length=1)  # for messages and logs

    @model_validator(mode="after")
    def _keys_are_columns(self) -> Contract:
        for key in self.unique_together:
            if len(key) < 2:
                raise ValueError(f"unique_together key {key!r} needs two columns or more (use ColumnRule.unique)")
            unknown = [c for c in key if c not in self.columns]
            if unknown:
                raise ValueError(f"unique_together key {key!r} names columns the contract lacks: {unknown}")
        return self


class Violation(NamedTuple):
    """One broken rule: the column (or ``"a,b"`` for a key), the rule and how many columns or rows break it."""

    column: str
    rule: str
    n_bad: int


def column_kind(dtype: Any) -> str:
    """The kind of a pandas or polars dtype: int, float, bool, string, datetime, category, or other."""
    module = type(dtype).__module__
    if module.startswith("polars"):
        return _polars_kind(dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype):  # str, string[...] and object
        return "string"
    return "other"


def _polars_kind(dtype: Any) -> str:
    import polars as pl

    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype in (pl.String, pl.Utf8):
        return "string"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return "datetime"
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return "category"
    return "other"


def _as_pandas(frame: Any) -> tuple[pd.DataFrame, dict[str, str]]:
    """The frame as pandas (values) and each column's kind, read from the original library's dtypes."""
    if isinstance(frame, pd.DataFrame):
        names = unique_column_names(frame)
        return frame.set_axis(names, axis=1), {
            n: column_kind(frame[c].dtype) for n, c in zip(names, frame.columns, strict=True)
        }
    if type(frame).__module__.startswith("polars") and hasattr(frame, "schema"):
        kinds = {name: _polars_kind(dtype) for name, dtype in frame.schema.items()}
        return frame.to_pandas(), kinds
    raise TypeError(f"expected a pandas or polars DataFrame, got {type(frame).__name__}")


def _missing(values: pd.Series) -> NDArray[np.bool_]:
    """None, NaN, NaT and pd.NA (polars' nulls and NaNs arrive as NaN or None)."""
    mask: NDArray[np.bool_] = values.isna().to_numpy(dtype=bool)
    return mask


def check_contract(frame: Any, contract: Contract) -> list[Violation]:
    """Every violation of ``contract`` by ``frame`` (pandas or polars), sorted; see the module's rules.

    Raises:
        TypeError: if ``frame`` is not a pandas or polars DataFrame.
        ValueError: if it has two columns of the same name.
    """
    table, kinds = _as_pandas(frame)
    found: list[Violation] = []
    for name, rule in contract.columns.items():
        if name not in table.columns:
            found.append(Violation(name, "present", 1))
            continue
        found += _column_violations(name, table[name], kinds[name], rule)
    if not contract.extra_columns:
        found += [Violation(c, "extra", 1) for c in table.columns if c not in contract.columns]
    for key in contract.unique_together:
        if all(c in table.columns for c in key):
            rows = table[list(key)]
            complete = rows[~rows.isna().any(axis=1)]
            n_bad = int(complete.duplicated(keep=False).sum())
            if n_bad:
                found.append(Violation(",".join(key), "unique", n_bad))
    return sorted(found)


def _column_violations(name: str, values: pd.Series, kind: str, rule: ColumnRule) -> list[Violation]:
    if rule.kind is not None and kind != rule.kind:
        return [Violation(name, "kind", 1)]
    found: list[Violation] = []
    missing = _missing(values)
    if not rule.nullable and missing.any():
        found.append(Violation(name, "not_null", int(missing.sum())))
    present = values[~missing]
    if kind == "category":
        present = present.astype(object)
    if rule.min is not None:
        found.append(Violation(name, "min", int((present < rule.min).sum())))
    if rule.max is not None:
        found.append(Violation(name, "max", int((present > rule.max).sum())))
    if rule.allowed is not None:
        found.append(Violation(name, "allowed", int((~present.isin(list(rule.allowed))).sum())))
    if rule.unique:
        found.append(Violation(name, "unique", int(present.duplicated(keep=False).sum())))
    return [v for v in found if v.n_bad > 0]
