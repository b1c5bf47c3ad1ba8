"""Tests for mlcraft.mlops.timing: percentiles against numpy and the standard library."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from mlcraft.mlops.timing import percentile, summarize_latencies, time_calls


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(n: int, q: float) -> None:
    samples = np.random.default_rng(n).lognormal(0.0, 1.0, n).tolist()
    expected = float(np.percentile(np.asarray(samples, dtype=np.float64), q, method="linear"))
    got = percentile(samples, q)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), f"p{q} of {n} samples: {got} != numpy {expected}"


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    samples = np.random.default_rng(0).exponential(1.0, 200).tolist()
    cuts = statistics.quantiles(samples, n=100, method="inclusive")  # p1 .. p99
    for q in (1, 50, 90, 99):
        assert percentile(samples, q) == pytest.approx(cuts[q - 1], rel=1e-12), f"p{q}"


def test_p99_sees_the_tail_that_the_mean_hides() -> None:
    samples = [0.001] * 980 + [0.5] * 20  # 2% of requests take half a second
    summary = summarize_latencies(samples)
    assert summary.p50_ms == pytest.approx(1.0)
    assert summary.p99_ms == pytest.approx(500.0)
    assert summary.mean_ms == pytest.approx(0.98 * 1.0 + 0.02 * 500.0)
    assert summary.p99_ms > 40 * summary.mean_ms, "the p99 is far above the mean"
    assert summary.max_ms == pytest.approx(500.0) and summary.count == 1000


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="NaN"):
        percentile([1.0, float("nan")], 50)
    with pytest.raises(ValueError, match="no latencies"):
        summarize_latencies([])


def test_time_calls_counts_calls() -> None:
    calls: list[int] = []
    times = time_calls(lambda: calls.append(1), repeats=7, warmup=3)
    assert len(times) == 7 and len(calls) == 10 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="repeats"):
        time_calls(lambda: None, repeats=0)
