"""A FastAPI service for a registered model: validated requests, versioned responses, health,
readiness, request logs and Prometheus metrics.

Structure follows FastAPI's guides (https://fastapi.tiangolo.com/advanced/events/ for the
``lifespan`` that loads the model once at start-up; https://fastapi.tiangolo.com/tutorial/handling-errors/
for the validation handler) and the Prometheus text exposition format
(https://prometheus.io/docs/instrumenting/exposition_formats/).

Endpoints:

- ``GET /health``: liveness, 200 whenever the process answers.
- ``GET /ready``: readiness, 200 once a model is loaded, 503 (with the reason) otherwise.
- ``POST /predict`` ``{"features": [f_1, ..., f_F]}`` and ``POST /predict/batch``
  ``{"instances": [[...], ...]}``: class, label and probabilities, with the model name and version.
- ``GET /metrics``: request counts, latency histogram, rows predicted, per-class counts.
- ``POST /admin/reload`` (only with ``allow_reload=True``): load again, e.g. after an alias moved.

Bad input (NaN, infinities, values outside float32, wrong length or type, empty or oversized
batch, missing or extra fields, malformed JSON) is answered with 422 and a message naming the
field and the problem; it never reaches the model. Every response carries ``X-Model-Version``
and ``X-Request-ID``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mlcraft.mlops.prometheus import ServingMetrics
from mlcraft.utils.logging import get_logger

__all__ = [
    "BatchPredictRequest",
    "BatchPredictResponse",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "Predictor",
    "ReadyResponse",
    "ServingMetrics",
    "app_from_env",
    "create_app",
    "format_validation_errors",
]

log = get_logger(__name__)

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_FEATURES = 10_000  # schema-level cap on a row's length, before the model's own check
MAX_BATCH_CAP = 100_000  # schema-level cap on a batch, before the app's max_batch_size


def _within_float32(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"{value:g} is outside the float32 range of the model (|x| <= {FLOAT32_MAX:.3g})")
    return value


# A finite number that survives the cast to float32: strict (no strings, no booleans).
Feature = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_within_float32)]


class Predictor(Protocol):
    """What the service needs from a model (e.g. :class:`mlcraft.mlops.registry.TorchPredictor`)."""

    name: str
    version: str
    n_features: int
    class_names: tuple[str, ...]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """float32 ``[B, F]`` -> probabilities ``[B, C]``."""
        ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Strict):
    """One row of raw features, in the model's column order."""

    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)


class BatchPredictRequest(_Strict):
    """Rows of raw features; at most the service's ``max_batch_size`` rows."""

    instances: list[Annotated[list[Feature], Field(min_length=1, max_length=MAX_FEATURES)]] = Field(
        min_length=1, max_length=MAX_BATCH_CAP
    )


class Prediction(BaseModel):
    class_index: int
    label: str
    probabilities: list[float]  # one per class, summing to 1


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    prediction: Prediction


class BatchPredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class ReadyResponse(BaseModel):
    ready: bool
    model_name: str | None = None
    model_version: str | None = None
    detail: str | None = None


def format_validation_errors(errors: Sequence[Any], limit: int = 5) -> str:
    """``"body.features.2: Input should be a finite number; ..."``: one clause per error, field
    first, at most ``limit`` clauses (then ``"... and N more"``)."""
    parts = []
    for error in errors[:limit]:
        location = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else str(error.get("msg", "invalid")))
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more")
    return "; ".join(parts)


def _public_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """An error entry without its ``input``; invalid JSON gets a readable message and location."""
    loc, msg, kind = list(error.get("loc", ())), str(error.get("msg", "")), str(error.get("type", ""))
    if kind == "json_invalid":  # FastAPI puts the character offset in loc and the parser's reason in ctx
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        msg, loc = f"invalid JSON at character {loc[-1]}: {reason}", ["body"]
    return {"loc": loc, "msg": msg, "type": kind}


def _invalid(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", *loc), "msg": message}])


class _ModelNotReadyError(Exception):
    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason or "unknown"


def create_app(
    loader: Callable[[], Predictor],
    *,
    max_batch_size: int = 256,
    allow_reload: bool = False,
    title: str = "mlcraft model service",
) -> FastAPI:
    """Build the service. ``loader`` is called once at start-up (in the lifespan) and on reload.

    A loader that raises leaves the service up but not ready: ``/ready`` and the predict
    endpoints answer 503 with the error, ``/health`` still answers 200.
    """
    if not 1 <= max_batch_size <= MAX_BATCH_CAP:
        raise ValueError(f"max_batch_size must be in [1, {MAX_BATCH_CAP}], got {max_batch_size}")
    metrics = ServingMetrics()
    state: dict[str, Any] = {"predictor": None, "error": "not loaded yet"}
    reload_lock = threading.Lock()

    def load() -> str | None:
        """Load a model; on failure keep serving the previous one (if any) and return the error."""
        try:
            predictor = loader()
        except Exception as err:  # a broken registry or file must not crash the process
            error = f"{type(err).__name__}: {err}"
            if state["predictor"] is None:
                state["error"] = error
            log.error("model load failed", error=error)
            return error
        state["predictor"], state["error"] = predictor, None  # one assignment: requests see old or new
        log.info("model ready", model=predictor.name, version=predictor.version, features=predictor.n_features)
        return None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        load()
        yield
        log.info("shutdown")

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.metrics = metrics

    def current() -> Predictor:
        predictor: Predictor | None = state["predictor"]
        if predictor is None:
            raise _ModelNotReadyError(state["error"])
        return predictor

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_public_error(e) for e in exc.errors()]  # the input is not echoed: it may be huge or sensitive
        return JSONResponse(status_code=422, content={"message": format_validation_errors(errors), "detail": errors})

    @app.exception_handler(_ModelNotReadyError)
    async def on_not_ready(request: Request, exc: _ModelNotReadyError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"message": f"model not ready: {exc.reason}"})

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as err:  # a bug or a model failure: still counted and logged, then a 500
            path = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.observe_request(request.method, path, 500, time.perf_counter() - start)
            log.error("request failed", method=request.method, path=path, request_id=request_id, error=repr(err))
            raise
        seconds = time.perf_counter() - start
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the route template: bounded label values
        predictor: Predictor | None = state["predictor"]
        version = predictor.version if predictor is not None else "none"
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Model-Version"] = version
        metrics.observe_request(request.method, path, response.status_code, seconds)
        log.info(
            "request",
            method=request.method,
            path=path,
            status=response.status_code,
            latency_ms=round(seconds * 1000, 3),
            request_id=request_id,
            model_version=version,
        )
        return response

    def score(predictor: Predictor, rows: list[list[float]]) -> list[Prediction]:
        probabilities = predictor.predict_proba(np.asarray(rows, dtype=np.float32))  # (B, C)
        if not np.isfinite(probabilities).all():  # finite inputs, non-finite outputs: the model's fault
            raise RuntimeError("the model produced non-finite probabilities")
        indices = probabilities.argmax(axis=-1)
        predictions = [
            Prediction(class_index=int(i), label=predictor.class_names[int(i)], probabilities=p.tolist())
            for i, p in zip(indices, probabilities, strict=True)
        ]
        metrics.observe_predictions([p.label for p in predictions])
        return predictions

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
    def ready() -> Any:
        predictor: Predictor | None = state["predictor"]
        if predictor is None:
            return JSONResponse(status_code=503, content=ReadyResponse(ready=False, detail=state["error"]).model_dump())
        return ReadyResponse(ready=True, model_name=predictor.name, model_version=predictor.version)

    @app.post("/predict", response_model=PredictResponse)
    def predict(request: PredictRequest) -> PredictResponse:
        predictor = current()
        if len(request.features) != predictor.n_features:
            raise _invalid(
                ("features",),
                f"expected {predictor.n_features} features, got {len(request.features)}",
                "wrong_number_of_features",
            )
        [prediction] = score(predictor, [request.features])
        return PredictResponse(model_name=predictor.name, model_version=predictor.version, prediction=prediction)

    @app.post("/predict/batch", response_model=BatchPredictResponse)
    def predict_batch(request: BatchPredictRequest) -> BatchPredictResponse:
        predictor = current()
        if len(request.instances) > max_batch_size:
            raise _invalid(
                ("instances",),
                f"batch of {len(request.instances)} rows exceeds the limit of {max_batch_size}",
                "batch_too_large",
            )
        for index, row in enumerate(request.instances):
            if len(row) != predictor.n_features:
                raise _invalid(
                    ("instances", index),
                    f"expected {predictor.n_features} features, got {len(row)}",
                    "wrong_number_of_features",
                )
        predictions = score(predictor, request.instances)
        return BatchPredictResponse(model_name=predictor.name, model_version=predictor.version, predictions=predictions)

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus_metrics() -> str:
        predictor: Predictor | None = state["predictor"]
        name, version = (predictor.name, predictor.version) if predictor is not None else (None, None)
        return metrics.render(name, version)

    if allow_reload:

        @app.post("/admin/reload", response_model=ReadyResponse)
        def reload() -> Any:
            with reload_lock:
                error = load()
            if error is None:
                return ready()
            predictor: Predictor | None = state["predictor"]
            still = f"; still serving version {predictor.version}" if predictor is not None else ""
            return JSONResponse(
                status_code=503,
                content=ReadyResponse(
                    ready=predictor is not None, detail=f"reload failed: {error}{still}"
                ).model_dump(),
            )

    return app


def app_from_env() -> FastAPI:
    """The service configured from environment variables, for
    ``uvicorn --factory mlcraft.mlops.serving:app_from_env`` (the command of ``docker/Dockerfile``).

    - ``MLCRAFT_TRACKING_URI`` (required): the registry's store, ``sqlite:///...`` or ``http://...``.
    - ``MLCRAFT_MODEL_NAME`` (required) and ``MLCRAFT_MODEL_ALIAS`` (default ``champion``).
    - ``MLCRAFT_ONNX_PATH`` (optional): serve this exported file with onnxruntime instead of the
      registered PyTorch model (name, version and labels still come from the registry).
    - ``MLCRAFT_MAX_BATCH`` (default 256), ``MLCRAFT_ALLOW_RELOAD`` (``1`` to enable ``/admin/reload``),
      ``MLCRAFT_LOG_LEVEL`` (default ``INFO``); logs are JSON lines on stderr.
    """
    import os

    from mlcraft.utils.logging import configure_logging

    configure_logging(os.environ.get("MLCRAFT_LOG_LEVEL", "INFO"), json=True)
    missing = [key for key in ("MLCRAFT_TRACKING_URI", "MLCRAFT_MODEL_NAME") if not os.environ.get(key)]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (see mlcraft.mlops.serving.app_from_env)")
    uri, name = os.environ["MLCRAFT_TRACKING_URI"], os.environ["MLCRAFT_MODEL_NAME"]
    alias = os.environ.get("MLCRAFT_MODEL_ALIAS", "champion")
    onnx_path = os.environ.get("MLCRAFT_ONNX_PATH")

    def loader() -> Predictor:
        from mlcraft.mlops.registry import load_model_by_alias
        from mlcraft.mlops.tracking import registry_tracking

        loaded = load_model_by_alias(registry_tracking(uri), name, alias)
        if onnx_path:
            from mlcraft.mlops.export import OnnxPredictor

            return OnnxPredictor(onnx_path, name=loaded.name, version=loaded.version, class_names=loaded.class_names)
        return loaded.predictor()

    return create_app(
        loader,
        max_batch_size=int(os.environ.get("MLCRAFT_MAX_BATCH", "256")),
        allow_reload=os.environ.get("MLCRAFT_ALLOW_RELOAD", "0") == "1",
    )
