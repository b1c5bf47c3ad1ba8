"""Tests for mlcraft.utils.logging: configure_logging and get_logger."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from mlcraft.utils.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", json=True)
    get_logger("x").info("evt", k=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n")
    (record,) = _json_lines(err)
    assert record["event"] == "evt"
    assert record["k"] == 1
    assert record["level"] == "info"


def test_json_timestamp_is_iso_utc(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    before = datetime.now(UTC)
    get_logger("x").info("evt")
    after = datetime.now(UTC)
    (record,) = _json_lines(capsys.readouterr().err)
    stamp = str(record["timestamp"])
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp[:-1]).replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= parsed <= after


@pytest.mark.parametrize("method", ["debug", "info", "warning", "error", "critical"])
def test_debug_level_emits_every_level(capsys: pytest.CaptureFixture[str], method: str) -> None:
    configure_logging("DEBUG", json=True)
    getattr(get_logger("x"), method)("evt")
    (record,) = _json_lines(capsys.readouterr().err)
    assert record["level"] == method


@pytest.mark.parametrize("level", ["WARNING", "warning", "Warning", "WARN"])
def test_level_filters_lower_events(capsys: pytest.CaptureFixture[str], level: str) -> None:
    configure_logging(level, json=True)
    log = get_logger("x")
    log.debug("dropped-debug")
    log.info("dropped-info")
    log.warning("kept-warning")
    log.error("kept-error")
    events = [r["event"] for r in _json_lines(capsys.readouterr().err)]
    assert events == ["kept-warning", "kept-error"]


def test_default_level_is_info(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    log = get_logger("x")
    log.debug("dropped")
    log.info("kept")
    assert [r["event"] for r in _json_lines(capsys.readouterr().err)] == ["kept"]


@pytest.mark.parametrize("level", ["verbose", "TRACE", "", "10", "Level 5"])
def test_unknown_level_raises(level: str) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level)


def test_unknown_level_leaves_configuration_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ERROR", json=True)
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("chatty", json=False)
    log = get_logger("x")
    log.info("still-filtered")
    log.error("still-json")
    assert [r["event"] for r in _json_lines(capsys.readouterr().err)] == ["still-json"]


def test_console_renderer_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    get_logger("x").info("evt", k=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert "evt" in err
    assert "k=1" in err
    assert "info" in err
    assert "\x1b[" not in err  # colors=False: no ANSI escapes in files or CI logs
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)


def test_bound_context_is_rendered(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("x", run=3, split="train").info("evt", k=1)
    (record,) = _json_lines(capsys.readouterr().err)
    assert record["run"] == 3
    assert record["split"] == "train"
    assert record["k"] == 1


def test_contextvars_are_merged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    structlog.contextvars.bind_contextvars(request_id="abc")
    get_logger("x").info("evt")
    (record,) = _json_lines(capsys.readouterr().err)
    assert record["request_id"] == "abc"


def test_reconfigure_switches_renderer(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("x").info("first")
    configure_logging("INFO", json=False)
    get_logger("x").info("second")
    lines = capsys.readouterr().err.splitlines()
    assert json.loads(lines[0])["event"] == "first"
    assert re.search(r"\bsecond\b", lines[1])
    assert not lines[1].lstrip().startswith("{")


def test_logger_name_is_in_output(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("mlcraft.some_module").info("evt")
    (record,) = _json_lines(capsys.readouterr().err)
    assert "mlcraft.some_module" in record.values()


_TRAIN_THREE_TIMES = textwrap.dedent(
    """
    import sys

    if sys.argv[1] == "training-first":
        from mlcraft.training import Trainer
        from mlcraft.utils import configure_logging
    else:
        from mlcraft.utils import configure_logging

        configure_logging("ERROR", json=True)
        from mlcraft.training import Trainer
    import torch
    from torch.utils.data import TensorDataset

    from mlcraft.config import TrainingConfig

    x = torch.randn(64, 3)
    for level in ("INFO", "WARNING", "INFO"):
        configure_logging(level, json=True)
        cfg = TrainingConfig(batch_size=32, max_steps=2, log_every=1, progress=False)
        Trainer(torch.nn.Linear(3, 1), cfg, TensorDataset(x, x), torch.nn.functional.mse_loss, device="cpu").fit()
        print("--- " + level, file=sys.stderr, flush=True)
    """
)


@pytest.mark.parametrize("order", ["training-first", "logging-first"])
def test_levels_apply_whatever_the_import_order(order: str) -> None:
    """A module-level logger imported before or after configure_logging follows every later call."""
    done = subprocess.run(
        [sys.executable, "-c", _TRAIN_THREE_TIMES, order], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    per_level: list[int] = []
    count = 0
    for line in done.stderr.splitlines():
        if line.startswith("--- "):
            per_level.append(count)
            count = 0
        elif line.startswith("{") and json.loads(line).get("logger_name") == "mlcraft.training.trainer":
            count += 1
    assert per_level == [2, 0, 2], done.stderr[-2000:]  # two INFO step lines, none at WARNING, two again
