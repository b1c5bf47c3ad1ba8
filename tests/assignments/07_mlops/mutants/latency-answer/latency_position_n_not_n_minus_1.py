"""Places the q-th percentile at position ``n q / 100`` instead of ``(n - 1) q / 100`` (clipped to the
last value): every percentile is pulled towards the slower requests."""

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
        pos = min(n * q / 100.0, n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"mean": sum(ms) / n, "p50": percentile(50), "p90": percentile(90), "p99": percentile(99)}
