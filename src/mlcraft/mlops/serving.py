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

Structure: the model sits in a :class:`ModelHolder`, which swaps the (model, load error) pair
whole on reload, so a request sees the old model or the new one, never a mix. The routes are
module-level functions on an ``APIRouter``; they get the holder, the metrics and the batch limit
from ``app.state`` through FastAPI dependencies. :func:`create_app` only wires these together.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, NamedTuple, Protocol

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mlcraft.mlops.prometheus import ServingMetrics
from mlcraft.utils.logging import get_logger

__all__ = [
    "BatchPredictRequest",
    "BatchPredictResponse",
    "ModelHolder",
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


class _Loaded(NamedTuple):
    """What :class:`ModelHolder` swaps as one value: the model served (``None`` before any
    successful load) and why there is none (``None`` once a model is loaded)."""

    predictor: Predictor | None
    error: str | None


class ModelHolder:
    """The model a service answers with, loaded by ``loader`` and swapped whole on reload.

    The predictor and the load error sit in one immutable pair behind one attribute: a load
    replaces the pair in a single assignment, so a request reads the old model or the new one,
    never a mix, and readers take no lock. Loads are serialized by a lock. A load that raises
    keeps the previous predictor, if there is one (and the service stays ready); with none, its
    error becomes the reason the service is not ready.
    """

    def __init__(self, loader: Callable[[], Predictor]) -> None:
        self._loader = loader
        self._loaded = _Loaded(predictor=None, error="not loaded yet")
        self._load_lock = threading.Lock()

    @property
    def predictor(self) -> Predictor | None:
        """The model being served, or ``None`` before the first successful load."""
        return self._loaded.predictor

    @property
    def error(self) -> str | None:
        """Why no model is served (``None`` once one is, even after a later failed load)."""
        return self._loaded.error

    def load(self) -> str | None:
        """Call the loader; on failure keep serving the previous model (if any) and return the error."""
        with self._load_lock:
            try:
                predictor = self._loader()
            except Exception as err:  # a broken registry or file must not crash the process
                error = f"{type(err).__name__}: {err}"
                if self._loaded.predictor is None:
                    self._loaded = _Loaded(predictor=None, error=error)
                log.error("model load failed", error=error)
                return error
            self._loaded = _Loaded(predictor=predictor, error=None)  # one assignment: requests see old or new
        log.info("model ready", model=predictor.name, version=predictor.version, features=predictor.n_features)
        return None

    def current(self) -> Predictor:
        """The model to answer with; raises the not-ready error (a 503) when there is none."""
        loaded = self._loaded
        if loaded.predictor is None:
            raise _ModelNotReadyError(loaded.error)
        return loaded.predictor

    def readiness(self) -> ReadyResponse:
        """What ``/ready`` reports, from one read of the pair."""
        predictor, error = self._loaded
        if predictor is None:
            return ReadyResponse(ready=False, detail=error)
        return ReadyResponse(ready=True, model_name=predictor.name, model_version=predictor.version)


# What create_app puts on ``app.state``, read back by the lifespan, the middleware and the routes.
async def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.model_holder
    return holder


async def _metrics(request: Request) -> ServingMetrics:
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


async def _max_batch_size(request: Request) -> int:
    max_batch_size: int = request.app.state.max_batch_size
    return max_batch_size


# Async dependencies: they only read app.state, so they run on the event loop (no thread hop).
_HolderDep = Annotated[ModelHolder, Depends(_holder)]
_MetricsDep = Annotated[ServingMetrics, Depends(_metrics)]
_MaxBatchSizeDep = Annotated[int, Depends(_max_batch_size)]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    holder: ModelHolder = app.state.model_holder
    holder.load()
    yield
    log.info("shutdown")


async def _on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_public_error(e) for e in exc.errors()]  # the input is not echoed: it may be huge or sensitive
    return JSONResponse(status_code=422, content={"message": format_validation_errors(errors), "detail": errors})


async def _on_not_ready(request: Request, exc: _ModelNotReadyError) -> JSONResponse:
    return JSONResponse(status_code=503, content={"message": f"model not ready: {exc.reason}"})


async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware: request id and model version headers, request metrics and one log line per request."""
    metrics, holder = await _metrics(request), await _holder(request)
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
    predictor = holder.predictor
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


def _score(predictor: Predictor, rows: list[list[float]], metrics: ServingMetrics) -> list[Prediction]:
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


def _ready_or_503(holder: ModelHolder) -> ReadyResponse | JSONResponse:
    readiness = holder.readiness()
    if not readiness.ready:
        return JSONResponse(status_code=503, content=readiness.model_dump())
    return readiness


# The routes: module-level functions taking what they need as dependencies. The function names
# are kept as they were (they make the OpenAPI operation ids).
_router = APIRouter()


@_router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@_router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
def ready(holder: _HolderDep) -> ReadyResponse | JSONResponse:
    return _ready_or_503(holder)


@_router.post("/predict", response_model=PredictResponse)
def predict(request: PredictRequest, holder: _HolderDep, metrics: _MetricsDep) -> PredictResponse:
    predictor = holder.current()
    if len(request.features) != predictor.n_features:
        raise _invalid(
            ("features",),
            f"expected {predictor.n_features} features, got {len(request.features)}",
            "wrong_number_of_features",
        )
    [prediction] = _score(predictor, [request.features], metrics)
    return PredictResponse(model_name=predictor.name, model_version=predictor.version, prediction=prediction)


@_router.post("/predict/batch", response_model=BatchPredictResponse)
def predict_batch(
    request: BatchPredictRequest, holder: _HolderDep, metrics: _MetricsDep, max_batch_size: _MaxBatchSizeDep
) -> BatchPredictResponse:
    predictor = holder.current()
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
    predictions = _score(predictor, request.instances, metrics)
    return BatchPredictResponse(model_name=predictor.name, model_version=predictor.version, predictions=predictions)


@_router.get("/metrics", response_class=PlainTextResponse)
def prometheus_metrics(holder: _HolderDep, metrics: _MetricsDep) -> str:
    predictor = holder.predictor
    name, version = (predictor.name, predictor.version) if predictor is not None else (None, None)
    return metrics.render(name, version)


_admin_router = APIRouter()  # included only with allow_reload=True


@_admin_router.post("/admin/reload", response_model=ReadyResponse)
def reload(holder: _HolderDep) -> ReadyResponse | JSONResponse:
    error = holder.load()
    if error is None:
        return _ready_or_503(holder)
    predictor = holder.predictor
    still = f"; still serving version {predictor.version}" if predictor is not None else ""
    return JSONResponse(
        status_code=503,
        content=ReadyResponse(ready=predictor is not None, detail=f"reload failed: {error}{still}").model_dump(),
    )


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
    app = FastAPI(title=title, lifespan=_lifespan)
    app.state.model_holder = ModelHolder(loader)
    app.state.metrics = ServingMetrics()
    app.state.max_batch_size = max_batch_size
    app.exception_handler(RequestValidationError)(_on_invalid)
    app.exception_handler(_ModelNotReadyError)(_on_not_ready)
    app.middleware("http")(_observe)
    app.include_router(_router)
    if allow_reload:
        app.include_router(_admin_router)
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
