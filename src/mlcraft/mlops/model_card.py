"""A model card rendered from what the registry and the training run recorded, and nothing else.

Sections follow M. Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019,
https://arxiv.org/abs/1810.03993): model details, intended use, limitations, training data,
metrics, evaluation of the shipped artifact, caveats. Every value is read from the MLflow
registry (registered model, model version) or from the version's run; a field nobody logged is
printed as ``not recorded``, so the card shows what is missing instead of inventing it.

Where a card field comes from (the first that has it wins):

- ``intended_use``, ``limitations``, ``caveats``: a tag of that name on the model version, then
  on the registered model, then on the run. No fallback: without such a tag the section reads
  ``not recorded`` (the model's description is shown in the details, not passed off as a use).
- facts about one version's build, which a registered-model tag would wrongly attach to every
  version: ``git_commit`` (a tag on the version, then on the run, or MLflow's
  ``mlflow.source.git.commit`` run tag) and the training data (tags on the version, then tags
  and params of the run, whose key starts with ``data.``, e.g. ``data.fingerprint``).
- metrics: the run's metrics (latest value of each); release checks: run metrics and version
  tags whose key starts with ``onnx.`` or ``quantization.``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlcraft.mlops.tracking import Tracking, import_mlflow

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["NOT_RECORDED", "model_card"]

NOT_RECORDED = "not recorded"
_CHECK_PREFIXES = ("onnx.", "quantization.")


def _cell(value: object) -> str:
    """A value as one Markdown table cell: pipes escaped, line breaks as spaces."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split()) or NOT_RECORDED


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    if not rows:
        return f"_{NOT_RECORDED}_"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _folded(summary: str, body: str) -> str:
    """``body`` inside an HTML ``<details>`` block (Jupyter and GitHub render the Markdown inside)."""
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _format_number(value: float) -> str:
    return f"{value:.6g}"


def _resolve(client: MlflowClient, name: str, version_or_alias: str | int) -> Any:
    from mlflow.exceptions import MlflowException

    key = str(version_or_alias)
    try:
        if key.isdigit():
            return client.get_model_version(name, key)
        return client.get_model_version_by_alias(name, key)
    except MlflowException as err:
        raise ValueError(f"cannot resolve {name!r} version or alias {key!r}: {err.message}") from err


def _input_schema(client: MlflowClient, source: str | None) -> str:
    """The logged model's input schema from its MLmodel file, or ``not recorded``."""
    from mlflow.exceptions import MlflowException

    if not source or not source.startswith("models:/m-"):
        return NOT_RECORDED
    mlflow = import_mlflow()
    try:
        logged = client.get_logged_model(source.removeprefix("models:/"))
        with tempfile.TemporaryDirectory(prefix="mlcraft-card-") as folder:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{logged.artifact_location}/MLmodel", dst_path=folder, tracking_uri=client.tracking_uri
            )
            signature = mlflow.models.Model.load(path).signature
    except (MlflowException, OSError):
        return NOT_RECORDED
    if signature is None:
        return NOT_RECORDED
    return "; ".join(_describe_input(spec) for spec in json.loads(signature.inputs.to_json()))


def _describe_input(spec: Mapping[str, Any]) -> str:
    """``{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8]}}`` -> ``tensor float32 [-1, 8]``."""
    if spec.get("type") == "tensor":
        tensor = spec.get("tensor-spec", {})
        text = f"tensor {tensor.get('dtype')} {tensor.get('shape')}"
    else:
        text = str(spec.get("type"))
    return f"{spec['name']}: {text}" if spec.get("name") else text


def model_card(registry_or_client: Tracking | MlflowClient, name: str, version_or_alias: str | int) -> str:
    """Markdown model card of ``name`` at a version (``2``, ``"2"``) or alias (``"champion"``).

    ``registry_or_client`` is a :class:`~mlcraft.mlops.tracking.Tracking` handle or an
    ``mlflow.MlflowClient`` bound to the store. Values are read at call time; change a tag and
    the next card changes.

    Raises:
        ValueError: if the model, version or alias does not exist.
    """
    client = registry_or_client.client() if isinstance(registry_or_client, Tracking) else registry_or_client
    from mlflow.exceptions import MlflowException

    version = _resolve(client, name, version_or_alias)
    model = client.get_registered_model(name)
    run = None
    if version.run_id:
        try:
            run = client.get_run(version.run_id)
        except MlflowException:  # a run deleted since: the card says so rather than failing
            run = None
    run_tags: Mapping[str, str] = run.data.tags if run is not None else {}
    params: Mapping[str, str] = run.data.params if run is not None else {}
    metrics: Mapping[str, float] = run.data.metrics if run is not None else {}
    version_tags, model_tags = dict(version.tags or {}), dict(model.tags or {})
    levels = (version_tags, model_tags, dict(run_tags))  # documentation facts: the first that has it wins
    build_levels = (version_tags, dict(run_tags))  # facts about this version's build: never the model's tags

    def tag(*keys: str, among: tuple[dict[str, str], ...] = levels) -> str | None:
        for level in among:
            for key in keys:
                if level.get(key):
                    return str(level[key])
        return None

    aliases = sorted(a for a, v in (model.aliases or {}).items() if str(v) == str(version.version))
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    run_text = NOT_RECORDED
    if version.run_id:
        run_text = f"`{version.run_id}`" + (f" ({run.info.run_name})" if run is not None else " (run not found)")
    details = [
        ("name", name),
        ("version", version.version),
        ("aliases", ", ".join(aliases) or "none"),
        ("created", created),
        ("training run", run_text),
        ("source", version.source or NOT_RECORDED),
        ("git commit", tag("git_commit", "mlflow.source.git.commit", among=build_levels) or NOT_RECORDED),
        ("inputs", _input_schema(client, version.source)),
        ("model description", model.description or NOT_RECORDED),
        ("version description", version.description or NOT_RECORDED),
    ]
    intended = tag("intended_use") or NOT_RECORDED
    data: dict[str, str] = {}  # first level that has a key wins: version tags, run tags, run params
    for level in (*build_levels, dict(params)):
        for key, value in level.items():
            if key.startswith("data."):
                data.setdefault(key, str(value))
    data_rows = sorted(data.items())
    train_rows = [(k, v) for k, v in sorted(params.items()) if not k.startswith("data.")]
    metric_rows = [(k, _format_number(v)) for k, v in sorted(metrics.items()) if not k.startswith(_CHECK_PREFIXES)]
    check_rows = [
        (k, _format_number(v), "run metric") for k, v in sorted(metrics.items()) if k.startswith(_CHECK_PREFIXES)
    ]
    check_rows += [(k, v, "version tag") for k, v in sorted(version_tags.items()) if k.startswith(_CHECK_PREFIXES)]
    parts = [
        f"# Model card: {name} version {version.version}",
        "## Model details",
        _table(("field", "value"), list(details)),
        "## Intended use",
        _cell(intended),
        "## Limitations",
        _cell(tag("limitations") or NOT_RECORDED),
        "## Training data",
        _table(("key", "value"), list(data_rows)),
        "## Training parameters",
        _folded(f"{len(train_rows)} params of the run", _table(("param", "value"), list(train_rows)))
        if train_rows
        else _table(("param", "value"), []),
        "## Metrics (from the training run)",
        _table(("metric", "value"), list(metric_rows)),
        "## Release checks (ONNX parity, quantization)",
        _table(("check", "value", "recorded as"), list(check_rows)),
        "## Caveats",
        _cell(tag("caveats") or NOT_RECORDED),
        "---",
        f"_Read from the registry at `{client.tracking_uri}`; '{NOT_RECORDED}' marks a field nobody logged._",
    ]
    return "\n\n".join(parts) + "\n"
