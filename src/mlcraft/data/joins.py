"""Joins that cannot explode or see the future (06_data).

- :func:`safe_merge`: ``pandas.merge`` with the cardinality checked first (``validate=`` in
  pandas raises without saying which keys broke it), missing keys refused (pandas matches NaN
  keys with each other, SQL never does), and the row count checked after: a left join on a
  unique right key keeps exactly the left's rows.
- :func:`asof_join`: point-in-time features, each left row joined to the latest right row at or
  before its time (``pandas.merge_asof(direction="backward")``), optionally within a maximum age
  and per entity (``by``); the inputs need not be sorted and the result keeps the left's order and
  index. Fitting a model on features stamped after the label's time is the classic future leak;
  :func:`assert_point_in_time` is the probe a test runs on the joined table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["JoinError", "asof_join", "assert_point_in_time", "safe_merge"]

Cardinality = Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many"]
_SHOWN = 5  # offending keys named in a message


class JoinError(ValueError):
    """A join's keys break what was promised; the message names the keys and counts."""


def _keys(on: str | Sequence[str]) -> list[str]:
    keys = [on] if isinstance(on, str) else list(on)
    if not keys:
        raise ValueError("on= needs at least one column")
    return keys


def _repeated(frame: pd.DataFrame, keys: list[str], side: str) -> str | None:
    counts = frame.groupby(keys, dropna=False, sort=True).size()
    repeated = counts[counts > 1].sort_values(ascending=False, kind="stable")
    if repeated.empty:
        return None
    shown = ", ".join(f"{key!r}: {n} rows" for key, n in repeated.head(_SHOWN).items())
    more = f" and {len(repeated) - _SHOWN} more" if len(repeated) > _SHOWN else ""
    return (
        f"{side} has {len(repeated)} key(s) of {keys} on more than one row ({int(repeated.sum())} rows): {shown}{more}"
    )


def safe_merge(
    left: pd.DataFrame,
    right: pd.DataFrame,
    on: str | Sequence[str],
    *,
    how: Literal["inner", "left", "right", "outer"] = "left",
    validate: Cardinality = "many_to_one",
    allow_null_keys: bool = False,
) -> pd.DataFrame:
    """``left.merge(right, on=on, how=how)`` after checking the promised cardinality and the keys.

    Raises:
        JoinError: a side that must be unique on ``on`` is not (the message names up to five keys
            and their row counts); a key column holds a missing value and ``allow_null_keys`` is
            False (the message counts them per side); or the result's row count breaks the
            cardinality's invariant (a bug in this function, never in the data).
        KeyError: ``on`` names a column one side lacks.
    """
    keys = _keys(on)
    for side, frame in (("left", left), ("right", right)):
        lacking = [k for k in keys if k not in frame.columns]
        if lacking:
            raise KeyError(f"{side} has no column {lacking} (columns: {list(frame.columns)})")
    if not allow_null_keys:
        nulls = {side: int(f[keys].isna().any(axis=1).sum()) for side, f in (("left", left), ("right", right))}
        if any(nulls.values()):
            raise JoinError(
                f"missing values in the keys {keys}: {nulls['left']} left row(s), {nulls['right']} right row(s); "
                "pandas would match them with each other. Drop or fill them first, or pass allow_null_keys=True"
            )
    problems = []
    if validate in ("one_to_one", "one_to_many"):
        problems.append(_repeated(left, keys, "left"))
    if validate in ("one_to_one", "many_to_one"):
        problems.append(_repeated(right, keys, "right"))
    found = [p for p in problems if p]
    if found:
        raise JoinError(f"{validate} join on {keys}: " + "; ".join(found))
    merged = left.merge(right, on=keys, how=how)
    if how == "left" and validate in ("one_to_one", "many_to_one") and len(merged) != len(left):
        raise JoinError(f"a {validate} left join kept {len(merged)} rows of {len(left)}")
    return merged


def asof_join(
    left: pd.DataFrame,
    right: pd.DataFrame,
    *,
    left_on: str,
    right_on: str,
    by: str | Sequence[str] | None = None,
    max_age: pd.Timedelta | float | None = None,
    allow_exact_matches: bool = True,
) -> pd.DataFrame:
    """For each left row, the right row (of the same ``by`` entity) with the latest ``right_on`` at or
    before its ``left_on`` (strictly before if ``allow_exact_matches`` is False), no older than
    ``max_age`` (a ``pd.Timedelta``, or a number for numeric times); right columns are missing where there is none. Equal to ``pandas.merge_asof``
    with ``direction="backward"`` on sorted inputs; here the inputs may come in any order and the
    result has the left's rows in the left's order, with its index. A left row with a missing time
    matches nothing; right rows with a missing time are ignored.

    Raises:
        KeyError: a named column is missing.
        ValueError: ``max_age`` is negative.
    """
    by_keys = [] if by is None else _keys(by)
    for side, frame, cols in (("left", left, [left_on, *by_keys]), ("right", right, [right_on, *by_keys])):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise KeyError(f"{side} has no column {lacking} (columns: {list(frame.columns)})")
    zero = 0 if isinstance(max_age, int | float) else pd.Timedelta(0)  # numeric times take a numeric max_age
    if max_age is not None and max_age < zero:
        raise ValueError(f"max_age must be >= 0, got {max_age}")
    order = "__asof_row__"
    if order in left.columns:
        raise ValueError(f"left has a column named {order!r}, which asof_join uses internally")
    lhs = left.assign(**{order: np.arange(len(left))})
    timed = lhs[lhs[left_on].notna()].sort_values(left_on, kind="stable")
    rhs = right[right[right_on].notna()].sort_values(right_on, kind="stable")
    joined = pd.merge_asof(
        timed,
        rhs,
        left_on=left_on,
        right_on=right_on,
        by=by_keys or None,
        tolerance=max_age,
        allow_exact_matches=allow_exact_matches,
        direction="backward",
    )
    untimed = lhs[lhs[left_on].isna()]
    if len(untimed):
        joined = pd.concat([joined, untimed], ignore_index=True)
    joined = joined.sort_values(order, kind="stable")
    joined.index = left.index
    return joined.drop(columns=order)


def assert_point_in_time(
    joined: pd.DataFrame, *, label_time: str, feature_time: str, max_age: pd.Timedelta | None = None
) -> None:
    """The leak probe: every joined feature is stamped at or before its row's label time (and within
    ``max_age``). Rows without a feature are fine.

    Raises:
        AssertionError: naming how many rows see the future (or stale data) and the first of them.
    """
    matched = joined[joined[feature_time].notna() & joined[label_time].notna()]
    future = matched[matched[feature_time] > matched[label_time]]
    if len(future):
        first = future.iloc[0]
        raise AssertionError(
            f"{len(future)} row(s) use features from after their label time, e.g. row {future.index[0]!r}: "
            f"{feature_time}={first[feature_time]} > {label_time}={first[label_time]}"
        )
    if max_age is not None:
        stale = matched[matched[label_time] - matched[feature_time] > max_age]
        if len(stale):
            raise AssertionError(f"{len(stale)} row(s) use features older than {max_age}, e.g. row {stale.index[0]!r}")
