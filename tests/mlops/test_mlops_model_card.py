"""Tests for mlcraft.mlops.model_card on a real SQLite registry: every field comes from the
registry or the run (change it there and the card changes), missing fields read "not recorded",
and bad names fail with ValueError."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from mlcraft.mlops.model_card import NOT_RECORDED, model_card
from mlcraft.mlops.registry import register_model, set_alias
from mlcraft.mlops.tracking import Tracking, setup_tracking

_names = itertools.count()


@pytest.fixture(scope="module")
def tracking(store_root: Path) -> Tracking:
    return setup_tracking("cards", root=store_root, activate=False)


def _section(card: str, title: str) -> str:
    """The text of the section whose heading starts with ``title`` (up to the next heading)."""
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |^---)", card, flags=re.M | re.S)
    assert match is not None, f"no section {title!r} in:\n{card}"
    return match.group(1)


def _bare_version(tracking: Tracking, *, with_run: bool = True) -> tuple[str, str, str | None]:
    """A registered model with one version (source need not be a real model for a card)."""
    client = tracking.client()
    name = f"card-{next(_names)}"
    client.create_registered_model(name)
    run_id = None
    if with_run:
        run = client.create_run(tracking.experiment_id, run_name=f"run-{name}")
        run_id = run.info.run_id
    record = client.create_model_version(name, source="file:///nowhere/model", run_id=run_id)
    return name, str(record.version), run_id


def test_every_field_comes_from_the_registry_or_run(tracking: Tracking) -> None:
    client = tracking.client()
    name, version, run_id = _bare_version(tracking)
    assert run_id is not None
    client.update_registered_model(name, description="Scores churn risk for the retention team.")
    client.set_tag(run_id, "intended_use", "Weekly churn review.")  # the run is the last level looked at
    client.set_registered_model_tag(name, "limitations", "Trained on synthetic rows only.")
    client.set_model_version_tag(name, version, "caveats", "Accuracy falls when income drifts.")
    client.set_model_version_tag(name, version, "onnx.parity_max_abs_error", "5.7e-06")
    client.set_tag(run_id, "mlflow.source.git.commit", "0123abcd")
    client.set_tag(run_id, "data.fingerprint", "sha256:feedbeef")
    client.log_param(run_id, "train.lr", "0.03")
    client.log_param(run_id, "data.rows", "1600")
    client.log_metric(run_id, "val_accuracy", 0.5, step=0)
    client.log_metric(run_id, "val_accuracy", 0.8125, step=1)  # the latest value is the one shown
    client.log_metric(run_id, "quantization.int8_accuracy", 0.81)
    set_alias(tracking, name, "champion", version)
    card = model_card(tracking, name, version)

    assert card.startswith(f"# Model card: {name} version {version}\n")
    details = _section(card, "Model details")
    assert "| aliases | champion |" in details
    assert f"| training run | `{run_id}` (run-{name}) |" in details
    assert "| git commit | 0123abcd |" in details
    assert "| source | file:///nowhere/model |" in details
    assert re.search(r"\| created \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \|", details)
    assert _section(card, "Intended use").strip() == "Weekly churn review."
    assert _section(card, "Limitations").strip() == "Trained on synthetic rows only."
    assert _section(card, "Caveats").strip() == "Accuracy falls when income drifts."
    data = _section(card, "Training data")
    assert "| data.fingerprint | sha256:feedbeef |" in data and "| data.rows | 1600 |" in data
    params = _section(card, "Training parameters")
    assert "| train.lr | 0.03 |" in params and "data.rows" not in params
    metrics = _section(card, "Metrics")
    assert "| val_accuracy | 0.8125 |" in metrics and "quantization" not in metrics
    checks = _section(card, "Release checks")
    assert "| onnx.parity_max_abs_error | 5.7e-06 | version tag |" in checks
    assert "| quantization.int8_accuracy | 0.81 | run metric |" in checks
    assert "| model description | Scores churn risk for the retention team. |" in details
    assert NOT_RECORDED not in card.split("---")[0].replace("| version description | not recorded |", "")
    client.update_model_version(name, version, description="Retrained on March data.")
    assert "| version description | Retrained on March data. |" in model_card(tracking, name, version)


def test_changing_a_tag_changes_the_card(tracking: Tracking) -> None:
    client = tracking.client()
    name, version, run_id = _bare_version(tracking)
    assert run_id is not None
    client.set_registered_model_tag(name, "intended_use", "batch scoring, once a day")
    before = model_card(tracking, name, version)
    assert _section(before, "Intended use").strip() == "batch scoring, once a day"
    client.set_registered_model_tag(name, "intended_use", "online scoring")
    after = model_card(tracking, name, version)
    assert _section(after, "Intended use").strip() == "online scoring" and "batch scoring" not in after
    # A version tag overrides the registered model's tag of the same key.
    client.set_model_version_tag(name, version, "intended_use", "version-specific use")
    assert _section(model_card(tracking, name, version), "Intended use").strip() == "version-specific use"
    # The same data key on the version and on its run: one row, the version's value.
    client.set_model_version_tag(name, version, "data.window", "2024-03")
    client.set_tag(run_id, "data.window", "2024-01")
    data = _section(model_card(tracking, name, version), "Training data")
    assert data.count("data.window") == 1 and "| data.window | 2024-03 |" in data


def test_intended_use_does_not_fall_back_to_the_description(tracking: Tracking) -> None:
    client = tracking.client()
    name, version, _ = _bare_version(tracking)
    client.update_registered_model(name, description="Scores churn risk.")
    card = model_card(tracking, name, version)
    assert _section(card, "Intended use").strip() == NOT_RECORDED
    assert "| model description | Scores churn risk. |" in _section(card, "Model details")


def test_build_facts_on_the_registered_model_are_not_shown_for_its_versions(tracking: Tracking) -> None:
    """A git commit or a data fingerprint describes one version's build: a tag on the registered
    model would attach it to every version, so the card reads them only from the version and its run."""
    client = tracking.client()
    name, first, run_id = _bare_version(tracking)
    assert run_id is not None
    client.set_registered_model_tag(name, "git_commit", "model-level-commit")
    client.set_registered_model_tag(name, "data.fingerprint", "sha256:model-level")
    client.set_registered_model_tag(name, "caveats", "Applies to every version.")  # documentation: shown
    card = model_card(tracking, name, first)
    assert "| git commit | not recorded |" in _section(card, "Model details")
    assert _section(card, "Training data").strip() == f"_{NOT_RECORDED}_"
    assert "model-level" not in card
    assert _section(card, "Caveats").strip() == "Applies to every version."
    # The version's own tag and its run's tag are read.
    client.set_model_version_tag(name, first, "git_commit", "version-commit")
    client.set_tag(run_id, "data.fingerprint", "sha256:run-level")
    card = model_card(tracking, name, first)
    assert "| git commit | version-commit |" in card and "| data.fingerprint | sha256:run-level |" in card


def test_missing_fields_read_not_recorded(tracking: Tracking) -> None:
    name, version, _ = _bare_version(tracking, with_run=False)
    card = model_card(tracking, name, version)
    for title in ("Intended use", "Limitations", "Caveats"):
        assert _section(card, title).strip() == NOT_RECORDED, title
    for title in ("Training data", "Training parameters", "Metrics", "Release checks"):
        assert _section(card, title).strip() == f"_{NOT_RECORDED}_", title
    details = _section(card, "Model details")
    for field in ("training run", "git commit", "inputs", "model description", "version description"):
        assert f"| {field} | {NOT_RECORDED} |" in details, field
    assert "| aliases | none |" in details


def test_alias_and_version_give_the_same_card_and_client_works_too(tracking: Tracking) -> None:
    name, version, _ = _bare_version(tracking)
    set_alias(tracking, name, "challenger", version)
    by_version = model_card(tracking, name, int(version))
    assert model_card(tracking, name, "challenger") == by_version
    assert model_card(tracking.client(), name, version) == by_version


def test_a_logged_model_shows_its_input_schema(logged: tuple[Tracking, str]) -> None:
    tracking, uri = logged
    version = register_model(tracking, uri, "card-with-signature")
    details = _section(model_card(tracking, "card-with-signature", version), "Model details")
    assert "| inputs | tensor float32 [-1, 8] |" in details


def test_table_cells_are_escaped(tracking: Tracking) -> None:
    client = tracking.client()
    name, version, run_id = _bare_version(tracking)
    assert run_id is not None
    client.log_param(run_id, "note", "a | b\nc")
    params = _section(model_card(tracking, name, version), "Training parameters")
    assert "| note | a \\| b c |" in params


def test_unknown_model_version_or_alias_raise_value_error(tracking: Tracking) -> None:
    name, _, _ = _bare_version(tracking)
    with pytest.raises(ValueError, match=r"'nope'"):
        model_card(tracking, name, "nope")
    with pytest.raises(ValueError, match=r"'9'"):
        model_card(tracking, name, 9)
    with pytest.raises(ValueError, match="no-such-model"):
        model_card(tracking, "no-such-model", 1)
