"""The event log: seeded, and each fault the module promises is present at about its rate and can be
undone by the cleaning steps (to_utc, dedup_latest); the unit change is visible only through
client_version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlcraft.data.cleaning import dedup_latest, to_utc
from mlcraft.data.events import ZONES, EventLogConfig, make_event_log
from mlcraft.data.fingerprint import frame_fingerprint


@pytest.fixture(scope="module")
def log():  # type: ignore[no-untyped-def]
    return make_event_log(EventLogConfig(n_users=200, seed=3))


def test_the_same_config_gives_the_same_log_and_another_seed_another() -> None:
    small = EventLogConfig(n_users=20, days=5, seed=1)
    a, b = make_event_log(small), make_event_log(small)
    assert frame_fingerprint(a.events) == frame_fingerprint(b.events)
    assert frame_fingerprint(a.users) == frame_fingerprint(b.users)
    other = make_event_log(small.model_copy(update={"seed": 2}))
    assert frame_fingerprint(other.events) != frame_fingerprint(a.events)


def test_columns_and_dtypes(log) -> None:  # type: ignore[no-untyped-def]
    assert list(log.users.columns) == ["user_id", "zone", "country", "signup_at"]
    assert list(log.events.columns) == [
        "event_id", "user_id", "session_id", "kind", "event_time", "ingested_at", "amount", "device", "client_version",
    ]  # fmt: skip
    assert log.events["user_id"].dtype == np.int64 and log.events["amount"].dtype == np.float64
    assert str(log.events["ingested_at"].dt.tz) == "UTC"
    assert set(log.events["kind"]) == {"view", "add_to_cart", "purchase"}
    assert log.events["user_id"].isin(log.users["user_id"]).all()
    assert log.events["ingested_at"].is_monotonic_increasing, "rows come in ingestion order"


def test_event_times_carry_the_users_zone_offsets_across_dst(log) -> None:  # type: ignore[no-untyped-def]
    offsets = set(log.events["event_time"].str[-6:])
    assert {"+00:00", "+01:00", "+02:00", "-05:00", "-04:00", "+09:00"} <= offsets, offsets
    assert set(log.users["zone"]) <= set(ZONES)
    utc = to_utc(log.events["event_time"])
    zone = log.events["user_id"].map(dict(zip(log.users["user_id"], log.users["zone"], strict=True)))
    for name in ZONES:
        rows = zone == name
        local = utc[rows].dt.tz_convert(name).dt.strftime("%Y-%m-%dT%H:%M:%S")
        assert (local == log.events.loc[rows, "event_time"].str[:19]).all(), f"{name}: local time and offset disagree"


def test_faults_are_there_at_about_their_rates(log) -> None:  # type: ignore[no-untyped-def]
    events = log.events
    n_unique = events["event_id"].nunique()
    assert 0.015 < (len(events) - n_unique) / n_unique < 0.05, "duplicate_rate 0.03"
    delay = events["ingested_at"] - to_utc(events["event_time"])
    assert (delay >= pd.Timedelta(0)).all(), "nothing is ingested before it happens"
    late = (delay > pd.Timedelta("1h")).mean()
    assert 0.03 < late < 0.08, f"late_rate 0.05, got {late:.3f}"
    assert 0.005 < events["device"].isna().mean() < 0.04
    purchases = events[events["kind"] == "purchase"]
    assert purchases["amount"].notna().all() and events.loc[events["kind"] != "purchase", "amount"].isna().all()


def test_the_unit_change_shows_only_in_client_version(log) -> None:  # type: ignore[no-untyped-def]
    purchases = log.events[log.events["kind"] == "purchase"]
    day = (to_utc(purchases["event_time"]) - pd.Timestamp("2024-03-01", tz="UTC")).dt.days
    assert (purchases["client_version"] == np.where(day >= 14, "2.x", "1.x")).all()
    medians = purchases.groupby("client_version")["amount"].median()
    assert 50 < medians["1.x"] / medians["2.x"] < 200, "cents before, dollars after"
    never = make_event_log(EventLogConfig(n_users=30, days=5, unit_change_day=None))
    assert set(never.events["client_version"]) == {"1.x"}


def test_retries_are_undone_by_dedup_latest(log) -> None:  # type: ignore[no-untyped-def]
    events = log.events
    clean = dedup_latest(events, "event_id", "ingested_at")
    assert clean["event_id"].is_unique and len(clean) == events["event_id"].nunique()
    retried = events[events["event_id"].duplicated(keep=False)]
    latest = retried.sort_values("ingested_at").groupby("event_id").tail(1).set_index("event_id")
    kept = clean.set_index("event_id").loc[latest.index]
    pd.testing.assert_frame_equal(kept[["amount", "ingested_at"]], latest[["amount", "ingested_at"]])
    assert (retried.groupby("event_id")["amount"].nunique() > 1).any(), "some retried purchases corrected the amount"


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValidationError):
        EventLogConfig(n_users=0)
    with pytest.raises(ValidationError):
        EventLogConfig(duplicate_rate=1.5)
