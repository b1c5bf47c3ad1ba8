"""Latency percentiles from raw timings, and a timing loop.

Percentiles use linear interpolation between order statistics (Hyndman & Fan's definition 7,
numpy's default ``method="linear"``, ``statistics.quantiles(method="inclusive")``). Tail
latency is the point of a p99: a mean hides the slow requests users notice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["LatencySummary", "percentile", "summarize_latencies", "time_calls"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (``0 <= q <= 100``) of ``samples`` by linear interpolation.

    Raises:
        ValueError: for empty ``samples``, NaN samples or ``q`` outside ``[0, 100]``.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if len(samples) == 0:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(float(s) for s in samples)
    if any(math.isnan(s) for s in ordered):
        raise ValueError("samples contain NaN")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencySummary:
    """Summary of ``count`` latencies, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.3f} ms  p99 {self.p99_ms:.3f} ms  (n={self.count})"


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary:
    """Mean, p50, p90, p99 and max of latencies given in seconds, reported in milliseconds."""
    if len(seconds) == 0:
        raise ValueError("no latencies to summarize")
    ms = [1000.0 * float(s) for s in seconds]
    return LatencySummary(
        count=len(ms),
        mean_ms=math.fsum(ms) / len(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms),
    )


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 5) -> list[float]:
    """Wall time in seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (CPU work)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
