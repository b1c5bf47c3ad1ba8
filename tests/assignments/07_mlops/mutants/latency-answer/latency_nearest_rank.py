"""Uses the nearest-rank percentile (the ``ceil(q n / 100)``-th smallest value) instead of linear
interpolation: a valid definition, but not the one asked for, and not NumPy's."""

# fails: test-latency
# %% grade_id=latency-answer
import math


def latency_percentiles(seconds) -> dict[str, float]:
    """Mean, p50, p90 and p99 of latencies given in seconds, in milliseconds (nearest rank)."""
    ms = [1000.0 * float(s) for s in seconds]
    if not ms:
        raise ValueError("no latencies to summarize")
    for value in ms:
        if math.isnan(value) or value < 0:
            raise ValueError(f"latencies must be >= 0 and not NaN, got {value / 1000.0}")
    ordered = sorted(ms)
    n = len(ordered)

    def percentile(q: float) -> float:
        return ordered[max(math.ceil(q * n / 100.0), 1) - 1]

    return {"mean": sum(ms) / n, "p50": percentile(50), "p90": percentile(90), "p99": percentile(99)}
