"""A seeded e-commerce event log with the faults real ones have (06_data).

Users browse in sessions; a session is a run of ``view`` and ``add_to_cart`` events and sometimes
ends in a ``purchase``. Users differ in how often they come and how often they buy (log-normal
factors), so a user's past says something about their future, as in real logs. What makes it realistic, each fault at a rate the config sets:

- **mixed time zones**: ``event_time`` is the device's local time as an ISO string with its UTC
  offset (``"2024-03-10T09:15:02+09:00"``); users live in five zones, two with daylight saving;
- **duplicates**: the client retries, so some events arrive twice with the same ``event_id``, a
  later ``ingested_at`` and, for a purchase, sometimes a corrected amount (the later one is right);
- **late events**: ``ingested_at`` is normally seconds after the event, for some events hours or
  days (offline phones), which matters for point-in-time features;
- **nulls**: ``device`` and ``country`` are sometimes missing;
- **a unit change**: from ``unit_change_day`` on, a new client release reports ``amount`` in
  dollars instead of cents, in the same column, with nothing in the data saying so except
  ``client_version``.

Everything is drawn from one ``numpy`` generator seeded by the config, so a config is a data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ZONES", "EventLog", "EventLogConfig", "make_event_log"]

#: The users' time zones (two with daylight saving) and how often each occurs.
ZONES = {"UTC": 0.15, "Europe/Oslo": 0.3, "America/Lima": 0.2, "Asia/Tokyo": 0.2, "America/New_York": 0.15}
COUNTRIES = {"UTC": "GB", "Europe/Oslo": "NO", "America/Lima": "PE", "Asia/Tokyo": "JP", "America/New_York": "US"}
DEVICES = np.array(["ios", "android", "web"])


class EventLogConfig(BaseModel):
    """How big the log is and how faulty."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_users: int = Field(default=300, ge=1)
    days: int = Field(default=35, ge=1)
    start: str = "2024-03-01"  # first day, UTC; 35 days cross America's (10 March) and Europe's (31 March) DST changes
    sessions_per_user_day: float = Field(default=0.4, gt=0)  # Poisson mean
    events_per_session: float = Field(default=4.0, gt=0)  # Poisson mean of views and cart adds (at least 1)
    purchase_rate: float = Field(default=0.25, ge=0, le=1)  # share of sessions that end in a purchase
    user_spread: float = Field(
        default=0.8, ge=0, le=3
    )  # sigma of the users' log-normal activity and propensity; 0: all alike
    duplicate_rate: float = Field(default=0.03, ge=0, le=1)  # share of events sent twice
    late_rate: float = Field(default=0.05, ge=0, le=1)  # share of events ingested hours to days late
    null_rate: float = Field(default=0.02, ge=0, le=1)  # share of missing device and country values
    unit_change_day: int | None = Field(default=14, ge=0)  # from this day on amounts are in dollars; None: never
    seed: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class EventLog:
    """The users table (one row per user) and the raw events (as ingested, in ingestion order)."""

    users: pd.DataFrame
    events: pd.DataFrame


def make_event_log(config: EventLogConfig | None = None) -> EventLog:
    """Draw a users table and an event log; see the module for what is in them.

    ``users``: ``user_id`` (int64), ``zone`` (str), ``country`` (str, nullable), ``signup_at``
    (UTC). ``events``: ``event_id`` (str), ``user_id`` (int64), ``session_id`` (int64), ``kind``
    (``view``/``add_to_cart``/``purchase``), ``event_time`` (local ISO string with offset),
    ``ingested_at`` (UTC), ``amount`` (float64, purchases only: cents before the unit change,
    dollars after), ``device`` (str, nullable), ``client_version`` (``"1.x"`` before the change,
    ``"2.x"`` after).
    """
    cfg = config or EventLogConfig()
    rng = np.random.default_rng(cfg.seed)
    start = pd.Timestamp(cfg.start, tz="UTC")
    zones = np.array(list(ZONES))
    user_zone = rng.choice(zones, size=cfg.n_users, p=np.array(list(ZONES.values())))
    country = pd.Series([COUNTRIES[z] for z in user_zone], dtype=object)
    country[rng.random(cfg.n_users) < cfg.null_rate] = None
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, cfg.n_users + 1, dtype=np.int64),
            "zone": user_zone,
            "country": country,
            "signup_at": start - pd.to_timedelta(rng.integers(1, 365 * 24 * 3600, cfg.n_users), unit="s"),
        }
    )

    # Sessions: a Poisson number per user and day, each at a random second of that day.
    # Users differ: how often they come (activity) and how likely a visit ends in a purchase
    # (propensity), each a log-normal factor with mean 1, so the past predicts the future a little.
    activity = rng.lognormal(-0.5 * cfg.user_spread**2, cfg.user_spread, cfg.n_users)  # (U,)
    propensity = rng.lognormal(-0.5 * cfg.user_spread**2, cfg.user_spread, cfg.n_users)  # (U,)
    n_sessions = rng.poisson(cfg.sessions_per_user_day * activity[:, None], size=(cfg.n_users, cfg.days))  # (U, D)
    user_idx, day_idx = np.nonzero(n_sessions)
    repeat = n_sessions[user_idx, day_idx]
    s_user, s_day = np.repeat(user_idx, repeat), np.repeat(day_idx, repeat)
    s_start = s_day * 86_400 + rng.integers(0, 86_400, len(s_user))  # seconds from start
    n_browse = np.maximum(1, rng.poisson(cfg.events_per_session, len(s_user)))
    buys = rng.random(len(s_user)) < np.minimum(cfg.purchase_rate * propensity[s_user], 0.95)
    n_events = n_browse + buys

    # Events: views and cart adds a minute or so apart, then the purchase if any.
    e_session = np.repeat(np.arange(len(s_user)), n_events)
    first = np.repeat(np.cumsum(n_events) - n_events, n_events)
    position = np.arange(len(e_session)) - first
    gaps = rng.exponential(60.0, len(e_session)).astype(np.int64) + 1
    before = np.concatenate([[0], np.cumsum(gaps)[np.cumsum(n_events)[:-1] - 1]])  # gaps of earlier sessions
    offsets = np.cumsum(gaps) - np.repeat(before, n_events)  # seconds since the session started
    seconds = s_start[e_session] + offsets
    is_purchase = buys[e_session] & (position == n_events[e_session] - 1)
    kind = np.where(is_purchase, "purchase", np.where(rng.random(len(e_session)) < 0.3, "add_to_cart", "view"))
    event_at = start + pd.to_timedelta(seconds, unit="s")
    day = seconds // 86_400
    dollars = cfg.unit_change_day is not None and cfg.unit_change_day < cfg.days
    after_change = (day >= cfg.unit_change_day) if dollars else np.zeros(len(day), dtype=bool)
    price = np.round(rng.lognormal(3.5, 0.6, len(e_session)), 2)  # dollars
    amount = np.where(is_purchase, np.where(after_change, price, np.round(price * 100)), np.nan)
    device = pd.Series(rng.choice(DEVICES, len(e_session)), dtype=object)
    device[rng.random(len(e_session)) < cfg.null_rate] = None
    delay_s = rng.exponential(3.0, len(e_session))
    late = rng.random(len(e_session)) < cfg.late_rate
    delay_s[late] = rng.uniform(3600, 3 * 86_400, late.sum())

    events = pd.DataFrame(
        {
            "event_id": [f"ev-{cfg.seed}-{i:08d}" for i in range(len(e_session))],
            "user_id": users["user_id"].to_numpy()[s_user[e_session]],
            "session_id": e_session.astype(np.int64) + 1,
            "kind": kind,
            "event_at": event_at,
            "ingested_at": event_at + pd.to_timedelta(np.round(delay_s * 1000), unit="ms"),
            "amount": amount,
            "device": device,
            "client_version": np.where(after_change, "2.x", "1.x"),
        }
    )

    # Retries: the same event again, a little later, a purchase sometimes with a corrected amount.
    again = events[rng.random(len(events)) < cfg.duplicate_rate].copy()
    again["ingested_at"] += pd.to_timedelta(rng.uniform(1, 600, len(again)), unit="s")
    fix = (again["kind"] == "purchase").to_numpy() & (rng.random(len(again)) < 0.5)
    again.loc[fix, "amount"] = np.round(again.loc[fix, "amount"] * 0.9, 2)
    events = pd.concat([events, again], ignore_index=True)
    events = events.sort_values("ingested_at", kind="stable").reset_index(drop=True)

    zone_of = dict(zip(users["user_id"], users["zone"], strict=True))
    local = pd.Series(index=events.index, dtype=object)
    for zone, rows in events.groupby(events["user_id"].map(zone_of)).groups.items():
        stamps = events.loc[rows, "event_at"].dt.tz_convert(str(zone)).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
        local[rows] = stamps.str.replace(r"([+-]\d\d)(\d\d)$", r"\1:\2", regex=True)
    events.insert(4, "event_time", local)
    return EventLog(users=users, events=events.drop(columns="event_at"))
