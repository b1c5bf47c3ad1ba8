"""End-to-end on a real uvicorn server on 127.0.0.1 (started and stopped by the tests): the model
served by registry alias, a bounded load test, promotion and rollback seen by clients, and the
load test's own bounds and safety checks."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from mlcraft.data.tabular import CLASS_NAMES
from mlcraft.mlops.loadtest import is_loopback, run_load_test, serve_in_background, serve_in_subprocess
from mlcraft.mlops.registry import TorchPredictor, load_model_by_alias, promote, register_model, rollback, set_alias
from mlcraft.mlops.serving import create_app
from mlcraft.mlops.tracking import Tracking


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_registry_model_served_by_uvicorn_under_bounded_load(
    logged: tuple[Tracking, str], live_rows: np.ndarray
) -> None:
    tracking, uri = logged
    name = "served"
    for _ in range(2):
        register_model(tracking, uri, name, class_names=CLASS_NAMES)
    set_alias(tracking, name, "champion", "1")
    set_alias(tracking, name, "challenger", "2")
    promote(tracking, name)  # champion: 2

    def loader() -> TorchPredictor:
        return load_model_by_alias(tracking, name, "champion").predictor()

    app = create_app(loader, max_batch_size=64, allow_reload=True)
    with serve_in_background(app) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        ready = httpx.get(f"{server.url}/ready", timeout=10).json()
        assert ready == {"ready": True, "model_name": name, "model_version": "2", "detail": None}

        payloads = [{"features": row.tolist()} for row in live_rows[:50]]
        report = run_load_test(f"{server.url}/predict", payloads, n_requests=200, concurrency=4, max_seconds=60)
        print(f"\nsingle-row load test: {report}")
        assert report.requests == report.ok == 200 and report.errors == 0, str(report)
        assert report.status_counts == {200: 200} and not report.stopped_by_deadline
        assert report.latency is not None and report.latency.count == 200
        assert 0 < report.latency.p50_ms <= report.latency.p99_ms <= report.latency.max_ms

        batches = [{"instances": live_rows[i : i + 32].tolist()} for i in range(0, 256, 32)]
        batch_report = run_load_test(f"{server.url}/predict/batch", batches, n_requests=40, concurrency=2)
        print(f"batch-of-32 load test: {batch_report}")
        assert batch_report.ok == 40 and batch_report.errors == 0

        def mixed(i: int) -> dict[str, object]:  # every other request is invalid
            return {"features": [float("nan")] * 8} if i % 2 else payloads[i % 50]

        mixed_report = run_load_test(f"{server.url}/predict", mixed, n_requests=40, concurrency=4)
        assert mixed_report.status_counts == {200: 20, 422: 20}, "bad input is a 422 under load too, never a 500"

        # Roll back: move the alias, reload, and clients see the previous version.
        rollback(tracking, name)
        assert httpx.post(f"{server.url}/admin/reload", timeout=30).json()["model_version"] == "1"
        response = httpx.post(f"{server.url}/predict", json=payloads[0], timeout=10)
        assert response.json()["model_version"] == "1" and response.headers["x-model-version"] == "1"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'mlcraft_requests_total{method="POST",path="/predict",status="422"} 20' in metrics
    assert not server.thread.is_alive(), "the server thread must be gone after the with block"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)


def _slow_app(delay: float) -> FastAPI:
    app = FastAPI()

    @app.post("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(delay)
        return {"ok": True}

    return app


def test_load_test_stops_at_its_time_bound() -> None:
    with serve_in_background(_slow_app(0.05)) as server:
        report = run_load_test(f"{server.url}/slow", [{}], n_requests=100_000, concurrency=2, max_seconds=0.5)
    assert report.stopped_by_deadline and 0 < report.requests < 100_000
    assert report.duration_s < 0.5 + 5.0, "bounded by max_seconds plus one request's timeout"
    assert report.errors == 0


def test_refused_connections_are_errors_not_crashes() -> None:
    port = _free_port()  # nothing listens there any more
    report = run_load_test(f"http://127.0.0.1:{port}/predict", [{}], n_requests=5, concurrency=2, timeout_s=2)
    assert report.requests == report.errors == 5 and report.ok == 0
    assert report.failures == {"ConnectError": 5} and report.latency is None
    assert "no answers" in str(report)


def test_load_tests_target_loopback_only() -> None:
    for url in ("http://10.0.0.1/predict", "http://192.168.1.10:8000/x", "https://example.com/predict"):
        with pytest.raises(ValueError, match="loopback"):
            run_load_test(url, [{}], n_requests=1)
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.com")
    with pytest.raises(ValueError, match="loopback"), serve_in_background(_slow_app(0.0), host="0.0.0.0"):
        pass
    with pytest.raises(ValueError, match="n_requests"):
        run_load_test("http://127.0.0.1:1/x", [{}], n_requests=0)
    with pytest.raises(ValueError, match="payloads is empty"):
        run_load_test("http://127.0.0.1:1/x", [], n_requests=1)


def test_server_that_fails_to_start_is_reported_and_cleaned_up() -> None:
    @asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("cannot start")
        yield

    with (
        pytest.raises(RuntimeError, match="exited during start-up"),
        serve_in_background(FastAPI(lifespan=failing), startup_timeout=20),
    ):
        pass


def test_port_in_use_is_an_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(OSError), serve_in_background(_slow_app(0.0), port=port):
            pass


@pytest.mark.slow  # a fresh Python process imports torch, mlflow and fastapi: 5-20 s on 2 busy cores
def test_app_from_env_in_its_own_uvicorn_process(
    logged: tuple[Tracking, str], live_rows: np.ndarray, tmp_path: Path
) -> None:
    """What the Docker image runs: ``uvicorn --factory mlcraft.mlops.serving:app_from_env``."""
    tracking, uri = logged
    version = register_model(tracking, uri, "from-env", alias="champion", class_names=CLASS_NAMES)
    env = {
        "MLCRAFT_TRACKING_URI": tracking.tracking_uri,
        "MLCRAFT_MODEL_NAME": "from-env",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }
    with serve_in_subprocess("mlcraft.mlops.serving:app_from_env", env=env, startup_timeout=120) as server:
        assert httpx.get(f"{server.url}/ready", timeout=10).json()["model_version"] == version
        response = httpx.post(f"{server.url}/predict", json={"features": live_rows[0].tolist()}, timeout=10)
        assert response.status_code == 200 and response.json()["prediction"]["label"] in CLASS_NAMES
        report = run_load_test(f"{server.url}/predict", [{"features": live_rows[0].tolist()}], n_requests=50)
        assert report.ok == 50, str(report)
        log_lines = Path(server.log_path).read_text().splitlines()
    assert server.process.returncode is not None, "the server process must have exited"
    requests = [json.loads(line) for line in log_lines if '"event": "request"' in line]
    assert len(requests) >= 52 and {"path", "status", "latency_ms", "request_id", "model_version"} <= set(requests[0])


def test_app_from_env_requires_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlcraft.mlops.serving import app_from_env

    monkeypatch.delenv("MLCRAFT_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLCRAFT_MODEL_NAME", "x")
    with pytest.raises(RuntimeError, match="MLCRAFT_TRACKING_URI"):
        app_from_env()


def test_background_server_spans_calls_and_stops_once() -> None:
    from mlcraft.mlops.loadtest import BackgroundServer

    background = BackgroundServer(_slow_app(0.0))
    with pytest.raises(RuntimeError, match="not running"):
        _ = background.url
    server = background.start()
    try:
        assert background.running and httpx.post(f"{background.url}/slow", timeout=5).json() == {"ok": True}
        with pytest.raises(RuntimeError, match="already started"):
            background.start()
    finally:
        background.stop()
    background.stop()  # idempotent
    assert not background.running and not server.thread.is_alive()
    with BackgroundServer(_slow_app(0.0)) as again:
        assert httpx.post(f"{again.url}/slow", timeout=5).status_code == 200
    assert not again.running
