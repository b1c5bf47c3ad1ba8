"""Reports as p99 the mean of the slowest 1% of requests (at least one): a tail average, not a
percentile, and higher than the p99 whenever the tail is uneven."""

# fails: test-latency
# %% grade_id=latency-answer
import math


def latency_percentiles(seconds) -> dict[str, float]:
    """Mean, p50, p90 and p99 of latencies given in seconds, in milliseconds."""
    ms = [1000.0 * float(s) for s in seconds]
    if not ms:
        raise ValueError("no latencies to summarize")
    for value in ms:
        if math.isnan(value) or value < 0:
            raise ValueError(f"latencies must be >= 0 and not NaN, got {value / 1000.0}")
    ordered = sorted(ms)
    n = len(ordered)

    def percentile(q: float) -> float:
        pos = (n - 1) * q / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    tail = ordered[-max(1, n // 100) :]
    return {"mean": sum(ms) / n, "p50": percentile(50), "p90": percentile(90), "p99": sum(tail) / len(tail)}
