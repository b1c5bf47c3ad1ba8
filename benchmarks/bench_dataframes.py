"""One pipeline in pandas, polars (lazy), DuckDB and Dask on a generated event log, same run: wall time
and peak memory as ratios to pandas, results checked equal.

The log (``--rows`` events, 10M by default, and 100k users) is written once as Parquet in
``--parts`` files into a temporary folder. The pipeline is 06_data's: keep purchases, convert the
amount to dollars where the client reported cents (``client_version == "1.x"``), join the users'
country, and aggregate per country and UTC day: revenue, purchases and distinct buyers. Each
engine runs in a fresh process (so imports, caches and allocator state do not leak between them)
and its peak resident memory is that process's ``VmHWM`` (Linux), which counts Arrow, polars and
DuckDB buffers that ``tracemalloc`` would not see. Times are the median of ``--repeats`` runs in
that process (the first one, reading cold files, is reported apart).

    python benchmarks/bench_dataframes.py [--rows 10000000] [--parts 8] [--repeats 3] [--engines pandas,polars,duckdb,dask]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ENGINES = ("pandas", "polars", "duckdb", "dask")
USERS = 100_000
START = pd.Timestamp("2024-03-01", tz="UTC")
DAYS = 35


def write_log(folder: Path, rows: int, parts: int, seed: int = 0) -> None:
    """Events as ``parts`` Parquet files, and a users file; vectorized, chunk by chunk."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": np.arange(USERS, dtype=np.int64),
            "country": pd.Categorical(rng.choice(["NO", "PE", "JP", "US", "GB"], USERS)).astype(str),
        }
    )
    users.to_parquet(folder / "users.parquet", index=False)
    (folder / "events").mkdir()
    for part, size in enumerate(np.diff(np.linspace(0, rows, parts + 1).astype(np.int64))):
        seconds = rng.integers(0, DAYS * 86_400, size)
        purchase = rng.random(size) < 0.06
        version = np.where(seconds >= 14 * 86_400, "2.x", "1.x")
        price = np.round(rng.lognormal(3.5, 0.6, size), 2)
        events = pd.DataFrame(
            {
                "user_id": rng.integers(0, USERS, size),
                "event_at": START + pd.to_timedelta(seconds, unit="s"),
                "kind": np.where(purchase, "purchase", np.where(rng.random(size) < 0.3, "add_to_cart", "view")),
                "amount": np.where(purchase, np.where(version == "1.x", np.round(price * 100), price), np.nan),
                "client_version": version,
            }
        )
        events.to_parquet(folder / "events" / f"part-{part:03d}.parquet", index=False)


def run_pandas(folder: Path) -> pd.DataFrame:
    events = pd.read_parquet(folder / "events", columns=["user_id", "event_at", "kind", "amount", "client_version"])
    users = pd.read_parquet(folder / "users.parquet")
    buys = events[events["kind"] == "purchase"]
    dollars = np.where(buys["client_version"] == "1.x", buys["amount"] / 100, buys["amount"])
    buys = buys.assign(dollars=dollars, day=buys["event_at"].dt.floor("D"))
    joined = buys.merge(users, on="user_id", how="left", validate="many_to_one")
    out = joined.groupby(["country", "day"], as_index=False).agg(
        revenue=("dollars", "sum"), purchases=("dollars", "size"), buyers=("user_id", "nunique")
    )
    return out


def run_polars(folder: Path) -> pd.DataFrame:
    import polars as pl

    users = pl.scan_parquet(folder / "users.parquet")
    query = (
        pl.scan_parquet(folder / "events" / "*.parquet")
        .filter(pl.col("kind") == "purchase")
        .with_columns(
            dollars=pl.when(pl.col("client_version") == "1.x").then(pl.col("amount") / 100).otherwise(pl.col("amount")),
            day=pl.col("event_at").dt.truncate("1d"),
        )
        .join(users, on="user_id", how="left")
        .group_by(["country", "day"])
        .agg(revenue=pl.col("dollars").sum(), purchases=pl.len(), buyers=pl.col("user_id").n_unique())
    )
    return query.collect().to_pandas()


def run_duckdb(folder: Path) -> pd.DataFrame:
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            f"""
            SELECT u.country, date_trunc('day', e.event_at) AS day,
                   sum(CASE WHEN e.client_version = '1.x' THEN e.amount / 100 ELSE e.amount END) AS revenue,
                   count(*) AS purchases, count(DISTINCT e.user_id) AS buyers
            FROM read_parquet('{folder / "events" / "*.parquet"}') e
            LEFT JOIN read_parquet('{folder / "users.parquet"}') u USING (user_id)
            WHERE e.kind = 'purchase'
            GROUP BY ALL
            """
        ).df()


def run_dask(folder: Path) -> pd.DataFrame:
    import dask
    import dask.dataframe as dd

    with dask.config.set(scheduler="threads"):
        events = dd.read_parquet(
            str(folder / "events"), columns=["user_id", "event_at", "kind", "amount", "client_version"]
        )
        users = pd.read_parquet(folder / "users.parquet")  # small side: broadcast
        buys = events[events["kind"] == "purchase"]
        buys = buys.assign(
            dollars=buys["amount"].where(buys["client_version"] != "1.x", buys["amount"] / 100),
            day=buys["event_at"].dt.floor("D"),
        )
        joined = buys.merge(users, on="user_id", how="left")
        groups = joined.groupby(["country", "day"])
        sums = groups.agg(revenue=("dollars", "sum"), purchases=("dollars", "size"))
        buyers = groups["user_id"].nunique().rename("buyers")  # nunique is not a named aggregation in dask
        out = dask.compute(sums, buyers)
        return out[0].join(out[1]).reset_index()


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """One form for every engine's result: sorted rows, UTC days, float revenue, int counts."""
    out = frame[["country", "day", "revenue", "purchases", "buyers"]].copy()
    day = pd.to_datetime(out["day"])
    out["day"] = day.dt.tz_localize("UTC") if day.dt.tz is None else day.dt.tz_convert("UTC")
    out["day"] = out["day"].astype("datetime64[us, UTC]")
    out["country"] = out["country"].astype(str)
    out["revenue"] = out["revenue"].astype("float64")
    out[["purchases", "buyers"]] = out[["purchases", "buyers"]].astype("int64")
    return out.sort_values(["country", "day"]).reset_index(drop=True)


def child(engine: str, folder: Path, repeats: int) -> None:
    run = {"pandas": run_pandas, "polars": run_polars, "duckdb": run_duckdb, "dask": run_dask}[engine]
    times = []
    result = None
    for _ in range(repeats + 1):
        start = time.perf_counter()
        result = run(folder)
        times.append(time.perf_counter() - start)
    assert result is not None
    normalized(result).to_parquet(folder / f"result-{engine}.parquet", index=False)
    print(json.dumps({"cold": times[0], "warm": statistics.median(times[1:]), "peak_mib": _peak_mib()}))


def _peak_mib() -> float:
    """This process's peak resident memory since it started (``VmHWM``). Not ``ru_maxrss``: that one
    keeps the high-water mark of the forked parent's pages from before ``exec``, so every child of
    a parent holding 500 MiB would report at least 500 MiB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: an upper bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.repeats)
        return
    engines = [e.strip() for e in args.engines.split(",")]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown or "pandas" not in engines:
        parser.error(f"--engines takes some of {', '.join(ENGINES)}, pandas included (the baseline); got {unknown}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_log(folder, args.rows, args.parts)
        size = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
        print(f"{args.rows:,} events in {args.parts} Parquet files ({size / 2**20:.0f} MiB), {USERS:,} users; "
              f"written in {time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs")  # fmt: skip
        figures = {}
        for engine in engines:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", engine, "--folder", str(folder), "--repeats", str(args.repeats)],
                stdout=subprocess.PIPE,
                text=True,
            )
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"{engine} failed (exit {proc.returncode})")
            figures[engine] = json.loads(out.strip().splitlines()[-1])
        base = pd.read_parquet(folder / "result-pandas.parquet")
        for engine in engines:
            got = pd.read_parquet(folder / f"result-{engine}.parquet")
            pd.testing.assert_frame_equal(got, base, check_exact=False, rtol=1e-9, obj=f"{engine} vs pandas")
        print(f"results equal to pandas ({len(base)} rows: country x day) for {', '.join(engines)}")
        print(f"{'engine':<8} {'cold s':>8} {'warm s':>8} {'peak MiB':>9}   ratios to pandas (warm time, peak memory)")
        ref = figures["pandas"]
        for engine in engines:
            f = figures[engine]
            print(f"{engine:<8} {f['cold']:8.2f} {f['warm']:8.2f} {f['peak_mib']:9.0f}   "
                  f"{f['warm'] / ref['warm']:.2f}  {f['peak_mib'] / ref['peak_mib']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
