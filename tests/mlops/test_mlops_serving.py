"""Tests for mlcraft.mlops.serving through FastAPI's TestClient: every kind of bad input is a 422
naming the field (never a 500, never reaching the model), answers match the model, and health,
readiness, metrics, request logs and reload behave."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import structlog
from fastapi.testclient import TestClient

from mlcraft.data.tabular import CLASS_NAMES
from mlcraft.mlops.registry import TorchPredictor
from mlcraft.mlops.serving import (
    ModelHolder,
    ReadyResponse,
    _ModelNotReadyError,
    create_app,
    format_validation_errors,
)
from mlcraft.models.tabular import TabularMLP, predict_proba

MAX_BATCH = 16


class CountingPredictor(TorchPredictor):
    """A TorchPredictor that counts its calls (to prove bad input never reaches the model)."""

    calls = 0

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super().predict_proba(features)


@pytest.fixture
def predictor(trained_model: TabularMLP) -> CountingPredictor:
    return CountingPredictor(trained_model, name="tabular", version="7", n_features=8, class_names=CLASS_NAMES)


@pytest.fixture
def client(predictor: CountingPredictor) -> Iterator[TestClient]:
    with TestClient(create_app(lambda: predictor, max_batch_size=MAX_BATCH)) as test_client:
        yield test_client


ROW = "1, 2, 3, 4, 5, 6, 7, 8"
SEVEN = "1, 2, 3, 4, 5, 6, 7"
INVALID = [
    # (id, path, raw JSON body, text the message must contain)
    ("nan", "/predict", '{"features": [NaN, 2, 3, 4, 5, 6, 7, 8]}', "body.features.0: Input should be a finite number"),
    ("inf", "/predict", '{"features": [1, Infinity, 3, 4, 5, 6, 7, 8]}', "body.features.1: Input should be a finite"),
    ("-inf", "/predict", '{"features": [1, 2, -Infinity, 4, 5, 6, 7, 8]}', "body.features.2: Input should be a finite"),
    (
        "beyond float32",
        "/predict",
        '{"features": [1e39, 2, 3, 4, 5, 6, 7, 8]}',
        "body.features.0: Value error, 1e+39 is outside the float32 range",
    ),
    ("too few", "/predict", f'{{"features": [{SEVEN}]}}', "body.features: expected 8 features, got 7"),
    ("too many", "/predict", f'{{"features": [{ROW}, 9]}}', "body.features: expected 8 features, got 9"),
    (
        "string value",
        "/predict",
        '{"features": [1, 2, "x", 4, 5, 6, 7, 8]}',
        "body.features.2: Input should be a valid number",
    ),
    (
        "numeric string",
        "/predict",
        '{"features": ["1.5", 2, 3, 4, 5, 6, 7, 8]}',
        "body.features.0: Input should be a valid number",
    ),
    (
        "boolean",
        "/predict",
        '{"features": [true, 2, 3, 4, 5, 6, 7, 8]}',
        "body.features.0: Input should be a valid number",
    ),
    (
        "null value",
        "/predict",
        '{"features": [null, 2, 3, 4, 5, 6, 7, 8]}',
        "body.features.0: Input should be a valid number",
    ),
    ("nested row", "/predict", f'{{"features": [[{ROW}]]}}', "body.features.0: Input should be a valid number"),
    ("not a list", "/predict", '{"features": "1,2,3"}', "body.features: Input should be a valid list"),
    ("empty row", "/predict", '{"features": []}', "body.features: List should have at least 1 item"),
    ("missing field", "/predict", "{}", "body.features: Field required"),
    ("extra field", "/predict", f'{{"features": [{ROW}], "id": 3}}', "body.id: Extra inputs are not permitted"),
    ("malformed JSON", "/predict", '{"features": [1, 2', "body: invalid JSON at character 18: Expecting ',' delimiter"),
    ("not an object", "/predict", f"[{ROW}]", "body: Input should be a valid dictionary"),
    ("empty batch", "/predict/batch", '{"instances": []}', "body.instances: List should have at least 1 item"),
    (
        "batch too large",
        "/predict/batch",
        json.dumps({"instances": [[1.0] * 8] * (MAX_BATCH + 1)}),
        f"body.instances: batch of {MAX_BATCH + 1} rows exceeds the limit of {MAX_BATCH}",
    ),
    (
        "short row in batch",
        "/predict/batch",
        f'{{"instances": [[{ROW}], [{SEVEN}]]}}',
        "body.instances.1: expected 8 features, got 7",
    ),
    (
        "nan in batch",
        "/predict/batch",
        f'{{"instances": [[{ROW}], [1, 2, 3, NaN, 5, 6, 7, 8]]}}',
        "body.instances.1.3: Input should be a finite",
    ),
    (
        "flat batch",
        "/predict/batch",
        f'{{"instances": [{ROW}]}}',
        "body.instances.4: Input should be a valid list; ... and 3 more",
    ),
    (
        "empty row in batch",
        "/predict/batch",
        '{"instances": [[]]}',
        "body.instances.0: List should have at least 1 item",
    ),
    ("wrong field name", "/predict/batch", f'{{"features": [[{ROW}]]}}', "body.instances: Field required"),
]


@pytest.mark.parametrize(("path", "body", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, predictor: CountingPredictor, path: str, body: str, expected: str
) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, f"{path} {body[:60]!r}: status {response.status_code}, {response.text}"
    payload = response.json()
    assert expected in payload["message"], f"message {payload['message']!r} lacks {expected!r}"
    assert payload["detail"] and all({"loc", "msg", "type"} <= set(e) for e in payload["detail"])
    assert all("input" not in error for error in payload["detail"]), "the offending input is not echoed back"
    assert response.headers["x-model-version"] == "7"
    assert predictor.calls == 0, "invalid input must never reach the model"


def test_predict_matches_the_model(client: TestClient, trained_model: TabularMLP, live_rows: np.ndarray) -> None:
    expected = predict_proba(trained_model, live_rows[:1])[0]
    response = client.post("/predict", json={"features": live_rows[0].tolist()}, headers={"x-request-id": "abc123"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("tabular", "7")
    prediction = body["prediction"]
    np.testing.assert_allclose(prediction["probabilities"], expected, rtol=0, atol=1e-6)
    assert prediction["class_index"] == int(expected.argmax())
    assert prediction["label"] == CLASS_NAMES[int(expected.argmax())]
    assert response.headers["x-model-version"] == "7" and response.headers["x-request-id"] == "abc123"


def test_batch_predict_matches_the_model(client: TestClient, trained_model: TabularMLP, live_rows: np.ndarray) -> None:
    rows = live_rows[:MAX_BATCH]
    response = client.post("/predict/batch", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "7" and len(body["predictions"]) == MAX_BATCH
    got = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_allclose(got, predict_proba(trained_model, rows), rtol=0, atol=1e-6)
    assert response.headers["x-request-id"], "a request id is generated when the client sends none"


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "model_name": "tabular", "model_version": "7", "detail": None}
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/metrics"} <= set(schema["paths"])
    assert "/admin/reload" not in schema["paths"], "reload is off unless asked for"


def test_not_ready_when_the_model_fails_to_load() -> None:
    def broken() -> TorchPredictor:
        raise FileNotFoundError("no model at models:/tabular@champion")

    with TestClient(create_app(broken)) as client:
        assert client.get("/health").status_code == 200, "liveness does not depend on the model"
        ready = client.get("/ready")
        assert ready.status_code == 503 and "FileNotFoundError: no model" in ready.json()["detail"]
        response = client.post("/predict", json={"features": [1.0] * 8})
        assert response.status_code == 503 and "model not ready" in response.json()["message"]
        assert response.headers["x-model-version"] == "none"
        bad = client.post("/predict", content='{"features": [NaN]}', headers={"content-type": "application/json"})
        assert bad.status_code == 422, "bad input is a 422 whether or not a model is loaded"


def test_metrics_count_requests_rows_and_classes(client: TestClient, live_rows: np.ndarray) -> None:
    for row in live_rows[:3]:
        assert client.post("/predict", json={"features": row.tolist()}).status_code == 200
    assert client.post("/predict/batch", json={"instances": live_rows[:5].tolist()}).status_code == 200
    assert client.post("/predict", json={"features": [1.0]}).status_code == 422
    text = client.get("/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines['mlcraft_requests_total{method="POST",path="/predict",status="200"}'] == "3"
    assert lines['mlcraft_requests_total{method="POST",path="/predict",status="422"}'] == "1"
    assert lines['mlcraft_requests_total{method="POST",path="/predict/batch",status="200"}'] == "1"
    assert lines["mlcraft_rows_predicted_total"] == "8"
    assert sum(int(v) for k, v in lines.items() if k.startswith("mlcraft_predictions_total")) == 8
    assert lines['mlcraft_request_duration_seconds_count{path="/predict"}'] == "4"
    assert lines['mlcraft_request_duration_seconds_bucket{path="/predict",le="+Inf"}'] == "4"
    assert lines['mlcraft_model_info{name="tabular",version="7"}'] == "1"
    buckets = [
        int(v) for k, v in lines.items() if k.startswith('mlcraft_request_duration_seconds_bucket{path="/predict"')
    ]
    assert buckets == sorted(buckets), "histogram buckets are cumulative"


def test_every_request_is_logged_with_structure(client: TestClient) -> None:
    with structlog.testing.capture_logs() as logs:
        client.post("/predict", json={"features": [0.5] * 8}, headers={"x-request-id": "r-1"})
        client.post("/predict", json={"features": [0.5] * 3})
    requests = [entry for entry in logs if entry["event"] == "request"]
    assert [(r["path"], r["status"], r["model_version"]) for r in requests] == [
        ("/predict", 200, "7"),
        ("/predict", 422, "7"),
    ]
    assert requests[0]["request_id"] == "r-1" and requests[0]["method"] == "POST"
    assert all(r["latency_ms"] >= 0 for r in requests)


def test_reload_switches_versions_and_survives_a_failed_load(trained_model: TabularMLP) -> None:
    versions = iter(["1", "2", "broken"])

    def loader() -> TorchPredictor:
        version = next(versions)
        if version == "broken":
            raise RuntimeError("registry unreachable")
        return TorchPredictor(trained_model, name="tabular", version=version, n_features=8, class_names=CLASS_NAMES)

    with TestClient(create_app(loader, allow_reload=True)) as client:
        assert client.post("/predict", json={"features": [0.0] * 8}).json()["model_version"] == "1"
        assert client.post("/admin/reload").json()["model_version"] == "2"
        assert client.post("/predict", json={"features": [0.0] * 8}).json()["model_version"] == "2"
        failed = client.post("/admin/reload")
        assert failed.status_code == 503 and "still serving version 2" in failed.json()["detail"]
        assert client.get("/ready").json()["model_version"] == "2"


def test_bad_configuration_and_message_format() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        create_app(lambda: None, max_batch_size=0)  # type: ignore[arg-type, return-value]
    errors = [{"loc": ("body", "features", 2), "msg": "bad"}, {"loc": (), "msg": "worse"}]
    assert format_validation_errors(errors) == "body.features.2: bad; worse"
    many = [{"loc": ("body", i), "msg": "bad"} for i in range(7)]
    assert format_validation_errors(many, limit=2) == "body.0: bad; body.1: bad; ... and 5 more"


def test_a_failing_model_is_a_logged_500_not_a_crash(trained_model: TabularMLP) -> None:
    class Broken(TorchPredictor):
        def predict_proba(self, features: np.ndarray) -> np.ndarray:
            return np.full((features.shape[0], 3), np.nan, dtype=np.float32)

    broken = Broken(trained_model, name="tabular", version="9", n_features=8, class_names=CLASS_NAMES)
    with TestClient(create_app(lambda: broken), raise_server_exceptions=False) as client:
        with structlog.testing.capture_logs() as logs:
            response = client.post("/predict", json={"features": [0.0] * 8})
        assert response.status_code == 500
        assert any(e["event"] == "request failed" and "non-finite" in e["error"] for e in logs)
        assert 'path="/predict",status="500"} 1' in client.get("/metrics").text
        assert client.get("/health").status_code == 200


# ModelHolder on its own: what the routes rely on.


def _scripted_loader(outcomes: list[TorchPredictor | Exception]) -> Callable[[], TorchPredictor]:
    """A loader returning (or raising) the next outcome on each call."""
    remaining = iter(outcomes)

    def loader() -> TorchPredictor:
        outcome = next(remaining)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return loader


def _version(model: TabularMLP, version: str) -> TorchPredictor:
    return TorchPredictor(model, name="tabular", version=version, n_features=8, class_names=CLASS_NAMES)


def test_holder_before_any_load_is_not_ready() -> None:
    calls: list[int] = []
    holder = ModelHolder(lambda: calls.append(1))  # type: ignore[arg-type, return-value]
    assert calls == [], "building the holder does not load"
    assert holder.predictor is None and holder.error == "not loaded yet"
    assert holder.readiness() == ReadyResponse(ready=False, detail="not loaded yet")
    with pytest.raises(_ModelNotReadyError) as not_ready:
        holder.current()
    assert not_ready.value.reason == "not loaded yet"


def test_holder_load_serves_the_loaded_model(trained_model: TabularMLP) -> None:
    v1 = _version(trained_model, "1")
    holder = ModelHolder(_scripted_loader([v1]))
    assert holder.load() is None
    assert holder.current() is v1 and holder.predictor is v1
    assert holder.error is None
    assert holder.readiness() == ReadyResponse(ready=True, model_name="tabular", model_version="1")


def test_holder_failed_first_load_reports_the_error(trained_model: TabularMLP) -> None:
    holder = ModelHolder(
        _scripted_loader([FileNotFoundError("no model"), KeyError("alias"), _version(trained_model, "1")])
    )
    assert holder.load() == "FileNotFoundError: no model"
    with pytest.raises(_ModelNotReadyError) as not_ready:
        holder.current()
    assert not_ready.value.reason == "FileNotFoundError: no model"
    assert holder.load() == "KeyError: 'alias'", "a later failure replaces the reason"
    assert holder.readiness() == ReadyResponse(ready=False, detail="KeyError: 'alias'")
    assert holder.load() is None and holder.current().version == "1", "a later success makes it ready"
    assert holder.error is None


def test_holder_failed_reload_keeps_the_previous_model(trained_model: TabularMLP) -> None:
    v1, v2 = _version(trained_model, "1"), _version(trained_model, "2")
    seen_during_reload: list[str] = []
    outcomes: list[TorchPredictor | Exception] = [v1, RuntimeError("registry unreachable"), v2]

    def loader() -> TorchPredictor:
        if holder.predictor is not None:  # a reload: requests meanwhile still get the old model
            seen_during_reload.append(holder.current().version)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    holder = ModelHolder(loader)
    assert holder.load() is None
    assert holder.load() == "RuntimeError: registry unreachable"
    assert holder.current() is v1, "a failed reload keeps serving the previous model"
    assert holder.error is None and holder.readiness().ready, "and the service stays ready"
    assert holder.load() is None and holder.current() is v2
    assert seen_during_reload == ["1", "1"]


def test_holder_serializes_concurrent_loads(trained_model: TabularMLP) -> None:
    first_inside, release_first, second_inside = threading.Event(), threading.Event(), threading.Event()
    versions = iter(["1", "2"])

    def loader() -> TorchPredictor:
        version = next(versions)
        if version == "1":
            first_inside.set()
            release_first.wait(10)
        else:
            second_inside.set()
        return _version(trained_model, version)

    holder = ModelHolder(loader)
    threads = [threading.Thread(target=holder.load, name=f"holder-test-{i}") for i in range(2)]
    threads[0].start()
    assert first_inside.wait(10)
    threads[1].start()
    try:
        assert not second_inside.wait(0.2), "a second load must wait for the first to finish"
    finally:
        release_first.set()
        for thread in threads:
            thread.join(10)
    assert second_inside.is_set() and holder.current().version == "2", "loads apply in order"
