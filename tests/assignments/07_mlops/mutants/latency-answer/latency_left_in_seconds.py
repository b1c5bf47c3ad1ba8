"""Forgets to convert seconds to milliseconds: every number is 1000 times too small."""

# fails: test-latency
# %% grade_id=latency-answer
import math


def latency_percentiles(seconds) -> dict[str, float]:
    """Mean, p50, p90 and p99 of latencies (linear interpolation)."""
    values = [float(s) for s in seconds]
    if not values:
        raise ValueError("no latencies to summarize")
    for value in values:
        if math.isnan(value) or value < 0:
            raise ValueError(f"latencies must be >= 0 and not NaN, got {value}")
    ordered = sorted(values)
    n = len(ordered)

    def percentile(q: float) -> float:
        pos = (n - 1) * q / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"mean": sum(values) / n, "p50": percentile(50), "p90": percentile(90), "p99": percentile(99)}
