"""Served requests per second on loopback: the model service under a bounded load test.

Builds a throwaway SQLite registry in a temporary folder (train, log, register, alias
``champion``), then starts ``uvicorn --factory mlcraft.mlops.serving:app_from_env`` in its own
process twice: serving the registered ``torch.export`` model, and serving its ONNX export through
onnxruntime (``MLCRAFT_ONNX_PATH``). Each gets the same bounded load test (request count and a
time limit; closed-loop clients on 127.0.0.1). The peer is the same predictor called in-process
with no HTTP: the ratio is what the web layer costs per request.

    python benchmarks/bench_serving.py [--requests 2000] [--concurrency 4] [--max-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mlcraft.data.tabular import CLASS_NAMES, make_tabular_data
from mlcraft.mlops.export import OnnxPredictor, export_onnx
from mlcraft.mlops.loadtest import LoadTestReport, run_load_test, serve_in_subprocess
from mlcraft.mlops.registry import load_model_by_alias, register_model
from mlcraft.mlops.timing import summarize_latencies
from mlcraft.mlops.tracking import log_torch_model, setup_tracking
from mlcraft.recipes.tabular import train_tabular_mlp
from mlcraft.utils import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=32, help="rows per request in the batch-endpoint run")
    args = parser.parse_args()
    configure_logging("WARNING")
    torch.set_num_threads(1)
    train, val = make_tabular_data(2000, seed=0).split(0.8)
    model = train_tabular_mlp(train, val)
    rows = make_tabular_data(1024, seed=1).features
    single = [{"features": row.tolist()} for row in rows]
    batches = [
        {"instances": rows[i : i + args.batch].tolist()} for i in range(0, len(rows) - args.batch + 1, args.batch)
    ]

    with tempfile.TemporaryDirectory() as tmp:
        tracking = setup_tracking("bench-serving", root=Path(tmp) / "mlruns")
        run = tracking.client().create_run(tracking.experiment_id)
        info = log_torch_model(model, rows[:16], run_id=run.info.run_id, tracking=tracking)
        register_model(tracking, info.model_uri, "tabular", alias="champion", class_names=CLASS_NAMES)
        onnx_path = export_onnx(model, torch.from_numpy(rows[:16]), Path(tmp) / "model.onnx")

        # The peer: the same predictors called in-process, one row at a time, no HTTP.
        predictors = {
            "torch.export": load_model_by_alias(tracking, "tabular").predictor(),
            "onnxruntime": OnnxPredictor(onnx_path, name="tabular", version="1", class_names=CLASS_NAMES),
        }
        direct: dict[str, float] = {}
        for name, predictor in predictors.items():
            times = []
            for row in rows[:500]:
                start = time.perf_counter()
                predictor.predict_proba(np.asarray([row], dtype=np.float32))
                times.append(time.perf_counter() - start)
            direct[name] = summarize_latencies(times).p50_ms

        base_env = {
            "MLCRAFT_TRACKING_URI": tracking.tracking_uri,
            "MLCRAFT_MODEL_NAME": "tabular",
            "MLCRAFT_LOG_LEVEL": "WARNING",  # per-request log lines would measure the terminal
            "OMP_NUM_THREADS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        runs: dict[str, dict[str, LoadTestReport]] = {}
        for name, extra in (("torch.export", {}), ("onnxruntime", {"MLCRAFT_ONNX_PATH": str(onnx_path)})):
            with serve_in_subprocess("mlcraft.mlops.serving:app_from_env", env={**base_env, **extra}) as server:
                bounds = {"concurrency": args.concurrency, "max_seconds": args.max_seconds}
                run_load_test(f"{server.url}/predict", single, n_requests=100, **bounds)  # warm-up
                runs[name] = {
                    "single": run_load_test(f"{server.url}/predict", single, n_requests=args.requests, **bounds),
                    "batch": run_load_test(
                        f"{server.url}/predict/batch", batches, n_requests=max(args.requests // 10, 1), **bounds
                    ),
                }

    print(f"uvicorn (1 process) on 127.0.0.1, {os.cpu_count()} CPU cores shared with the load generator")
    print(f"closed-loop load test: concurrency {args.concurrency}, at most {args.max_seconds:.0f} s per run")
    header = f"{'model runtime':<14}{'endpoint':<20}{'requests':>9}{'errors':>7}{'req/s':>9}{'rows/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    print(header)
    print("-" * len(header))
    for name, reports in runs.items():
        for endpoint, report in reports.items():
            rows_per_request = 1 if endpoint == "single" else args.batch
            assert report.latency is not None
            path = "/predict" if endpoint == "single" else f"/predict/batch({args.batch})"
            print(
                f"{name:<14}{path:<20}{report.requests:>9}{report.errors:>7}{report.rps:>9.0f}"
                f"{report.rps * rows_per_request:>10.0f}{report.latency.p50_ms:>9.2f}{report.latency.p99_ms:>9.2f}"
            )
    torch_rps, onnx_rps = runs["torch.export"]["single"].rps, runs["onnxruntime"]["single"].rps
    print(f"served req/s, onnxruntime / torch.export: {onnx_rps / torch_rps:.2f}x")
    for name, reports in runs.items():
        served = reports["single"].latency
        assert served is not None
        print(
            f"{name}: in-process predict p50 {direct[name]:.3f} ms vs served p50 {served.p50_ms:.2f} ms "
            f"({served.p50_ms / direct[name]:.0f}x: HTTP, JSON and validation)"
        )


if __name__ == "__main__":
    main()
