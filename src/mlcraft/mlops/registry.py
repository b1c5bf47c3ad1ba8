"""Model registry: versions, aliases (``champion``/``challenger``), promotion and rollback.

Follows MLflow 3's registry model (https://mlflow.org/docs/latest/ml/model-registry/): every
registration of a logged model creates a new immutable *version* of a registered model; an
*alias* is a movable pointer to one version, and ``models:/<name>@<alias>`` resolves through it.
Deploying is moving ``champion``; rolling back is moving it back, with no copy of any weights.

Every move made through :func:`set_alias` (and so :func:`promote`) appends the version the alias
left to a JSON list in the registered model's tag ``mlcraft.alias_history.<alias>``;
:func:`rollback` pops it. The history lives in the registry, so any process can roll back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from mlcraft.mlops.tracking import Tracking, import_mlflow
from mlcraft.utils.logging import get_logger

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "AliasMove",
    "LoadedModel",
    "TorchPredictor",
    "alias_history",
    "alias_version",
    "load_model_by_alias",
    "promote",
    "register_model",
    "rollback",
    "set_alias",
]

log = get_logger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
_HISTORY_TAG = "mlcraft.alias_history."
_CLASS_NAMES_TAG = "class_names"


@dataclass(frozen=True)
class AliasMove:
    """An alias moved from ``previous`` (None: it pointed nowhere) to ``current``."""

    name: str
    alias: str
    previous: str | None
    current: str


def _client(tracking: Tracking) -> MlflowClient:
    return tracking.client()


def register_model(
    tracking: Tracking,
    model_uri: str,
    name: str,
    *,
    alias: str | None = None,
    class_names: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the logged model at ``model_uri`` (``ModelInfo.model_uri``, ``models:/m-...``) as a
    new version of ``name`` (created on first use); returns the version.

    ``class_names`` are stored as the version tag ``class_names`` (a JSON list) so a server can
    answer with labels. ``alias`` (e.g. ``"challenger"``) is pointed at the new version.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking)
    try:  # through the client rather than mlflow.register_model, which prints to stderr
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    all_tags = dict(tags or {})
    if class_names is not None:
        all_tags[_CLASS_NAMES_TAG] = json.dumps(list(class_names))
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    run_id = client.get_logged_model(model_id).source_run_id if model_id is not None else None
    record = client.create_model_version(name, source=model_uri, run_id=run_id, tags=all_tags, model_id=model_id)
    version = str(record.version)
    log.info("registered", name=name, version=version, source=model_uri)
    if alias is not None:
        set_alias(tracking, name, alias, version)
    return version


def alias_version(tracking: Tracking, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points to, or None if the alias is not set."""
    model = _client(tracking).get_registered_model(name)
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def alias_history(tracking: Tracking, name: str, alias: str) -> list[str]:
    """Versions ``alias`` pointed to before, oldest first (what :func:`rollback` goes back through)."""
    model = _client(tracking).get_registered_model(name)
    raw = model.tags.get(_HISTORY_TAG + alias)
    return [str(v) for v in json.loads(raw)] if raw else []


def _write_history(client: MlflowClient, name: str, alias: str, history: list[str]) -> None:
    client.set_registered_model_tag(name, _HISTORY_TAG + alias, json.dumps(history))


def set_alias(tracking: Tracking, name: str, alias: str, version: str | int) -> AliasMove:
    """Point ``name@alias`` at ``version``, recording where it pointed before.

    Raises:
        ValueError: if ``version`` is not a version of ``name``.
    """
    client = _client(tracking)
    version = str(version)
    existing = {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    if version not in existing:
        raise ValueError(f"model {name!r} has no version {version}; versions: {sorted(existing, key=int)}")
    previous = alias_version(tracking, name, alias)
    client.set_registered_model_alias(name, alias, version)
    if previous is not None and previous != version:
        _write_history(client, name, alias, [*alias_history(tracking, name, alias), previous])
    log.info("alias moved", name=name, alias=alias, previous=previous, current=version)
    return AliasMove(name, alias, previous, version)


def promote(tracking: Tracking, name: str, *, source: str = CHALLENGER, target: str = CHAMPION) -> AliasMove:
    """Move ``target`` (``champion``) to the version ``source`` (``challenger``) points to, and remove ``source``.

    Raises:
        ValueError: if ``source`` is not set.
    """
    version = alias_version(tracking, name, source)
    if version is None:
        raise ValueError(f"model {name!r} has no {source!r} alias to promote")
    move = set_alias(tracking, name, target, version)
    _client(tracking).delete_registered_model_alias(name, source)
    return move


def rollback(tracking: Tracking, name: str, *, alias: str = CHAMPION, to_version: str | int | None = None) -> AliasMove:
    """Move ``alias`` back to the version it pointed to before (or to ``to_version``).

    Rolling back to the previous version pops it from the history, so two rollbacks in a row go
    two versions back. Raises ``ValueError`` if there is nothing to roll back to.
    """
    client = _client(tracking)
    current = alias_version(tracking, name, alias)
    if current is None:
        raise ValueError(f"model {name!r} has no {alias!r} alias to roll back")
    history = alias_history(tracking, name, alias)
    if to_version is None:
        if not history:
            raise ValueError(f"{name}@{alias} has no earlier version to roll back to (it is at version {current})")
        target = history.pop()
    else:
        target = str(to_version)
    client.set_registered_model_alias(name, alias, target)
    _write_history(client, name, alias, history)
    log.warning("rollback", name=name, alias=alias, previous=current, current=target)
    return AliasMove(name, alias, current, target)


class TorchPredictor:
    """Class probabilities from a torch module that maps float32 ``[B, F]`` to logits ``[B, C]``."""

    def __init__(
        self, module: nn.Module, *, name: str, version: str, n_features: int, class_names: Sequence[str]
    ) -> None:
        self.module, self.name, self.version = module, name, version
        self.n_features, self.class_names = n_features, tuple(class_names)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[B, F]`` float32 -> ``[B, C]`` float32 probabilities (softmax of the logits)."""
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        with torch.inference_mode():
            return torch.softmax(self.module(x), dim=-1).numpy()


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version loaded for inference."""

    module: nn.Module  # the exported graph (``torch.export``), batch axis dynamic
    name: str
    version: str
    alias: str | None
    run_id: str | None
    n_features: int
    class_names: tuple[str, ...]

    def predictor(self) -> TorchPredictor:
        return TorchPredictor(
            self.module, name=self.name, version=self.version, n_features=self.n_features, class_names=self.class_names
        )


def _shape(spec: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in spec.inputs[0].shape)


def load_model_by_alias(tracking: Tracking, name: str, alias: str = CHAMPION) -> LoadedModel:
    """Resolve ``name@alias`` to its version, then load that exact version (``models:/name/version``).

    Resolving first means the version reported is the version loaded, even if the alias moves
    meanwhile. Raises ``ValueError`` if the alias is not set.
    """
    mlflow = import_mlflow()
    tracking.activate()
    client = _client(tracking)
    version = alias_version(tracking, name, alias)
    if version is None:
        raise ValueError(f"model {name!r} has no alias {alias!r}")
    record = client.get_model_version(name, version)
    uri = f"models:/{name}/{version}"
    info = mlflow.models.get_model_info(uri)
    if info.signature is None:
        raise ValueError(f"{uri} has no signature; log it with mlflow.pytorch.log_model(..., signature=...)")
    in_shape, out_shape = _shape(info.signature.inputs), _shape(info.signature.outputs)
    raw_names = record.tags.get(_CLASS_NAMES_TAG)
    class_names = tuple(json.loads(raw_names)) if raw_names else tuple(str(i) for i in range(out_shape[-1]))
    module = mlflow.pytorch.load_model(uri)
    log.info("model loaded", name=name, alias=alias, version=version)
    return LoadedModel(module, name, version, alias, record.run_id, in_shape[-1], class_names)
