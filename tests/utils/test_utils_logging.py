"""Tests for mlcraft.utils.logging: configure_logging and get_logger."""

from __future__ import annotations

import json
import re
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
