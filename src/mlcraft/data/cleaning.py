"""Reproducible cleaning (06_data): deduplicate by key with the latest version winning, times in UTC,
one unit per column. Each step is a pure function of the table's content, so running it on the
same rows in another order, or running it twice, gives the same table (idempotence is a test).

``drop_duplicates(keep="last")`` after ``sort_values`` is the usual recipe and it is not
reproducible: when two versions of a key share the latest timestamp, the winner is whichever came
last in the file, and the file's order is not data. :func:`dedup_latest` breaks such ties with a
hash of each row's content (:func:`mlcraft.data.fingerprint.row_hashes`), so the result does not
depend on row order.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mlcraft.data.fingerprint import row_hashes

__all__ = ["dedup_latest", "to_utc"]


def dedup_latest(frame: pd.DataFrame, keys: str | Sequence[str], order_by: str) -> pd.DataFrame:
    """One row per key: the one with the greatest ``order_by`` (e.g. an ingestion time or a version).

    - Ties on ``order_by`` go to the row whose content hashes highest: arbitrary but fixed, the
      same whatever the input order.
    - A missing ``order_by`` loses to any present one.
    - Missing key values form a key of their own (as in ``drop_duplicates``).
    - The result is sorted by the keys (missing last) with a fresh ``RangeIndex``; columns and
      dtypes are the input's. Applying it to its own result returns an equal table.

    Raises:
        KeyError: a key or ``order_by`` column is missing.
        ValueError: no key column is given.
    """
    key_list = [keys] if isinstance(keys, str) else list(keys)
    if not key_list:
        raise ValueError("dedup_latest needs at least one key column")
    lacking = [c for c in [*key_list, order_by] if c not in frame.columns]
    if lacking:
        raise KeyError(f"no column {lacking} in the table (columns: {list(frame.columns)})")
    if frame.empty:
        return frame.reset_index(drop=True)
    work = frame.reset_index(drop=True)
    tie = "__dedup_tie__"
    present = "__dedup_has_order__"
    ranked = work.assign(**{tie: row_hashes(work), present: work[order_by].notna()})
    ranked = ranked.sort_values([present, order_by, tie], ascending=True, na_position="first", kind="stable")
    latest = ranked.drop_duplicates(subset=key_list, keep="last")
    latest = latest.sort_values(key_list, na_position="last", kind="stable")
    return latest.drop(columns=[tie, present]).reset_index(drop=True)


def to_utc(times: pd.Series, *, assume: str | None = None) -> pd.Series:
    """``times`` as timezone-aware UTC.

    Zone-aware datetimes are converted. Strings with UTC offsets (``"2024-03-01T10:00:00+01:00"``)
    are parsed with their offsets, and may mix offsets. Naive datetimes or strings without an
    offset are only accepted with ``assume`` (an IANA zone such as ``"Europe/Oslo"``) saying where
    they were recorded; guessing is how a dataset ends up an hour off twice a year.

    Raises:
        ValueError: naive times without ``assume``, or strings that mix naive and offset forms.
    """
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        return times.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(times.dtype):
        if assume is None:
            raise ValueError("naive datetimes: say where they were recorded with assume='Area/City' (or 'UTC')")
        return times.dt.tz_localize(assume, ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC")
    text = times.astype("string")
    has_offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=False).to_numpy(dtype=bool)
    present = text.notna().to_numpy(dtype=bool)
    if has_offset[present].all():
        return pd.to_datetime(text, utc=True, format="ISO8601")
    if has_offset.any():
        raise ValueError(
            f"{int(has_offset.sum())} time(s) carry a UTC offset and {int((present & ~has_offset).sum())} do not; "
            "clean them to one form first"
        )
    return to_utc(pd.to_datetime(text, format="ISO8601"), assume=assume)
