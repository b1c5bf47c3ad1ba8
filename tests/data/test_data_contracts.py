"""check_contract against a row-by-row reference written here and against pandera on the same table,
in pandas and polars, with NaN and None, missing and extra columns, keys, and empty frames."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import polars as pl
import pytest
from pydantic import ValidationError

from mlcraft.data.contracts import ColumnRule, Contract, Violation, check_contract, column_kind


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _reference(
    rows: list[dict[str, Any]], names: list[str], kinds: dict[str, str], contract: Contract
) -> list[Violation]:
    """The rules of the module's docstring, one Python value at a time."""
    out = []
    for name, rule in contract.columns.items():
        if name not in names:
            out.append(Violation(name, "present", 1))
            continue
        if rule.kind is not None and kinds[name] != rule.kind:
            out.append(Violation(name, "kind", 1))
            continue
        values = [r[name] for r in rows]
        present = [v for v in values if not _is_missing(v)]
        counts = Counter(present)
        bad = {
            "not_null": 0 if rule.nullable else len(values) - len(present),
            "min": sum(v < rule.min for v in present) if rule.min is not None else 0,
            "max": sum(v > rule.max for v in present) if rule.max is not None else 0,
            "allowed": sum(v not in rule.allowed for v in present) if rule.allowed is not None else 0,
            "unique": sum(counts[v] > 1 for v in present) if rule.unique else 0,
        }
        out += [Violation(name, r, n) for r, n in bad.items() if n]
    if not contract.extra_columns:
        out += [Violation(n, "extra", 1) for n in names if n not in contract.columns]
    for key in contract.unique_together:
        if all(c in names for c in key):
            keys = [tuple(r[c] for c in key) for r in rows if not any(_is_missing(r[c]) for c in key)]
            counts = Counter(keys)
            n = sum(counts[k] > 1 for k in keys)
            if n:
                out.append(Violation(",".join(key), "unique", n))
    return sorted(out)


CONTRACT = Contract(
    columns={
        "user_id": ColumnRule(kind="int", nullable=False),
        "amount": ColumnRule(kind="float", min=0.0, max=500.0),
        "country": ColumnRule(kind="string", nullable=False, allowed=frozenset({"NO", "PE", "JP"})),
        "event_id": ColumnRule(kind="string", unique=True),
    },
    unique_together=(("user_id", "country"),),
)


def _events(seed: int, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.choice([-1.0, 0.0, 10.0, 500.0, 500.5, np.nan], n)
    country = pd.Series(rng.choice(np.array(["NO", "PE", "JP", "XX", None], dtype=object), n), dtype=object)
    event_id = pd.Series([f"e{i}" for i in rng.integers(0, n, n)], dtype=object)
    event_id[rng.random(n) < 0.1] = None
    return pd.DataFrame({"user_id": rng.integers(0, 8, n), "amount": amount, "country": country, "event_id": event_id})


def _kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {c: column_kind(frame[c].dtype) for c in frame.columns}


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_the_reference_loop(seed: int) -> None:
    frame = _events(seed)
    want = _reference(frame.to_dict("records"), list(frame.columns), _kinds(frame), CONTRACT)
    assert want, "the generated table should break something"
    assert check_contract(frame, CONTRACT) == want


@pytest.mark.parametrize("seed", range(3))
def test_pandas_and_polars_agree(seed: int) -> None:
    frame = _events(seed)
    assert check_contract(pl.from_pandas(frame), CONTRACT) == check_contract(frame, CONTRACT)


def test_pandera_finds_the_same_counts() -> None:
    frame = _events(7)
    schema = pa.DataFrameSchema(
        {
            "user_id": pa.Column(int, nullable=False),
            "amount": pa.Column(float, [pa.Check.ge(0.0), pa.Check.le(500.0)], nullable=True),
            "country": pa.Column(object, pa.Check.isin(["NO", "PE", "JP"]), nullable=False),
            "event_id": pa.Column(object, nullable=True, unique=True),
        },
        strict=True,
    )
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schema.validate(frame, lazy=True)
    cases = caught.value.failure_cases
    names = {
        "not_nullable": "not_null",
        "greater_than_or_equal_to(0.0)": "min",
        "less_than_or_equal_to(500.0)": "max",
        "isin(['NO', 'PE', 'JP'])": "allowed",
        "field_uniqueness": "unique",
    }
    pandera = sorted(
        Violation(str(c), names[k], int(n)) for (c, k), n in cases.groupby(["column", "check"]).size().items()
    )
    mine = [v for v in check_contract(frame, CONTRACT) if v.column != "user_id,country"]
    assert mine == pandera


def test_nan_and_none_are_both_missing_in_pandas_and_polars() -> None:
    contract = Contract(columns={"x": ColumnRule(kind="float", nullable=False, min=0.0)})
    pandas_frame = pd.DataFrame({"x": [1.0, np.nan, None, -1.0]})
    polars_frame = pl.DataFrame({"x": [1.0, float("nan"), None, -1.0]})
    want = [Violation("x", "min", 1), Violation("x", "not_null", 2)]
    assert check_contract(pandas_frame, contract) == want
    assert check_contract(polars_frame, contract) == want


def test_an_int_column_with_a_null_is_float_in_pandas_but_int_in_polars() -> None:
    contract = Contract(columns={"n": ColumnRule(kind="int")})
    assert check_contract(pd.DataFrame({"n": [1, None]}), contract) == [Violation("n", "kind", 1)]
    assert check_contract(pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}), contract) == []
    assert check_contract(pl.DataFrame({"n": [1, None]}), contract) == []


def test_missing_and_extra_columns() -> None:
    frame = pd.DataFrame({"user_id": [1], "amount": [2.0], "country": ["NO"], "b": [0], "a": [0]})
    assert check_contract(frame, CONTRACT) == [
        Violation("a", "extra", 1),
        Violation("b", "extra", 1),
        Violation("event_id", "present", 1),
    ]
    relaxed = CONTRACT.model_copy(update={"extra_columns": True})
    assert check_contract(frame, relaxed) == [Violation("event_id", "present", 1)]


def test_a_wrong_kind_skips_the_value_rules() -> None:
    frame = pd.DataFrame({"amount": ["-5", "900"]})
    contract = Contract(columns={"amount": ColumnRule(kind="float", min=0.0, max=1.0, nullable=False)})
    assert check_contract(frame, contract) == [Violation("amount", "kind", 1)]


def test_keys_unique_together_ignore_rows_with_a_missing_part() -> None:
    contract = Contract(columns={"a": ColumnRule(), "b": ColumnRule()}, unique_together=(("a", "b"),))
    frame = pd.DataFrame({"a": [1, 1, 1, 2, None, None], "b": ["x", "x", "y", "x", "z", "z"]})
    assert check_contract(frame, contract) == [Violation("a,b", "unique", 2)]


def test_an_empty_frame_breaks_only_column_rules() -> None:
    empty = _events(0).iloc[:0]
    assert check_contract(empty, CONTRACT) == []
    assert check_contract(empty.drop(columns="amount"), CONTRACT) == [Violation("amount", "present", 1)]
    assert check_contract(pl.from_pandas(empty), CONTRACT) == []


def test_boundaries_are_inclusive() -> None:
    contract = Contract(columns={"x": ColumnRule(min=0.0, max=1.0)})
    assert check_contract(pd.DataFrame({"x": [0.0, 1.0]}), contract) == []
    below, above = np.nextafter(0.0, -1.0), np.nextafter(1.0, 2.0)
    assert check_contract(pd.DataFrame({"x": [below, above]}), contract) == [
        Violation("x", "max", 1),
        Violation("x", "min", 1),
    ]


def test_categories_and_datetimes() -> None:
    contract = Contract(
        columns={
            "c": ColumnRule(kind="category", allowed=frozenset({"a"})),
            "t": ColumnRule(kind="datetime", min=pd.Timestamp("2024-01-01", tz="UTC")),
        }
    )
    frame = pd.DataFrame(
        {"c": pd.Categorical(["a", "b", None]), "t": pd.to_datetime(["2023-12-31", "2024-01-01", None], utc=True)}
    )
    assert check_contract(frame, contract) == [Violation("c", "allowed", 1), Violation("t", "min", 1)]


def test_bad_contracts_and_frames_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match=r"min 2\.0 is above max 1\.0"):
        ColumnRule(min=2.0, max=1.0)
    with pytest.raises(ValidationError, match="lacks: \\['z'\\]"):
        Contract(columns={"a": ColumnRule()}, unique_together=(("a", "z"),))
    with pytest.raises(ValidationError, match="two columns or more"):
        Contract(columns={"a": ColumnRule()}, unique_together=(("a",),))
    with pytest.raises(TypeError, match="pandas or polars DataFrame, got dict"):
        check_contract({"a": [1]}, CONTRACT)
    with pytest.raises(ValueError, match="repeated"):
        check_contract(pd.DataFrame([[1, 2]], columns=["a", "a"]), CONTRACT)
