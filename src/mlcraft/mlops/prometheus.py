"""Serving metrics in the Prometheus text exposition format
(https://prometheus.io/docs/instrumenting/exposition_formats/), without a client library:
request counters by method, route and status; a latency histogram by route; rows predicted and
predicted classes (a shift in the class mix is an early drift signal)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

__all__ = ["LATENCY_BUCKETS", "ServingMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds


class ServingMetrics:
    """Thread-safe counters rendered in the Prometheus text format (no client library needed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}  # (method, path, status) -> count
        self.latency_buckets: dict[str, list[int]] = {}  # path -> cumulative counts per bucket
        self.latency_sum: dict[str, float] = {}
        self.latency_count: dict[str, int] = {}
        self.rows_predicted = 0
        self.class_counts: dict[str, int] = {}

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, path, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            buckets = self.latency_buckets.setdefault(path, [0] * len(LATENCY_BUCKETS))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self.latency_sum[path] = self.latency_sum.get(path, 0.0) + seconds
            self.latency_count[path] = self.latency_count.get(path, 0) + 1

    def observe_predictions(self, labels: Sequence[str]) -> None:
        with self._lock:
            self.rows_predicted += len(labels)
            for label in labels:
                self.class_counts[label] = self.class_counts.get(label, 0) + 1

    def render(self, model_name: str | None, model_version: str | None) -> str:
        with self._lock:
            lines = [
                "# HELP mlcraft_requests_total HTTP requests answered, by method, route and status.",
                "# TYPE mlcraft_requests_total counter",
            ]
            for (method, path, status), count in sorted(self.requests.items()):
                lines.append(f'mlcraft_requests_total{{method="{method}",path="{path}",status="{status}"}} {count}')
            lines += [
                "# HELP mlcraft_request_duration_seconds Time to answer a request, by route.",
                "# TYPE mlcraft_request_duration_seconds histogram",
            ]
            for path, buckets in sorted(self.latency_buckets.items()):
                for bound, count in zip(LATENCY_BUCKETS, buckets, strict=True):
                    lines.append(f'mlcraft_request_duration_seconds_bucket{{path="{path}",le="{bound}"}} {count}')
                total = self.latency_count[path]
                lines.append(f'mlcraft_request_duration_seconds_bucket{{path="{path}",le="+Inf"}} {total}')
                lines.append(f'mlcraft_request_duration_seconds_sum{{path="{path}"}} {self.latency_sum[path]:.6f}')
                lines.append(f'mlcraft_request_duration_seconds_count{{path="{path}"}} {total}')
            lines += [
                "# HELP mlcraft_rows_predicted_total Rows scored by the model.",
                "# TYPE mlcraft_rows_predicted_total counter",
                f"mlcraft_rows_predicted_total {self.rows_predicted}",
                "# HELP mlcraft_predictions_total Predicted classes (a shift here is a drift signal).",
                "# TYPE mlcraft_predictions_total counter",
            ]
            lines += [f'mlcraft_predictions_total{{label="{k}"}} {v}' for k, v in sorted(self.class_counts.items())]
            lines += ["# HELP mlcraft_model_info The model being served.", "# TYPE mlcraft_model_info gauge"]
            if model_name is not None:
                lines.append(f'mlcraft_model_info{{name="{model_name}",version="{model_version}"}} 1')
        return "\n".join(lines) + "\n"
