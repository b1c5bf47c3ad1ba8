"""Calls ``numpy.percentile`` instead of writing the interpolation: right values, caught by the
hidden forbidden-call check."""

# fails: test-latency
# %% grade_id=latency-answer
import numpy as np


def latency_percentiles(seconds) -> dict[str, float]:
    """Mean, p50, p90 and p99 of latencies given in seconds, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no latencies to summarize")
    if np.isnan(ms).any() or (ms < 0).any():
        raise ValueError(f"latencies must be >= 0 and not NaN, got {ms.min() / 1000.0}")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"mean": float(ms.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}
