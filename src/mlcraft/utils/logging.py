"""Structured logging set-up (structlog).

Library code calls ``get_logger(__name__)`` and logs events with key-value context; the
application (CLI, lesson, training script) calls ``configure_logging`` once.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Route structlog output to stderr, human-readable by default, JSON lines with ``json=True``.

    Raises:
        TypeError: if ``level`` is not a string (e.g. ``logging.INFO``; pass ``"INFO"``).
        ValueError: for a level name the ``logging`` module does not know.
    """
    if not isinstance(level, str):
        raise TypeError(f"level must be a level name such as 'INFO', got {type(level).__name__} {level!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **context: Any) -> Any:
    """A structlog logger whose events carry ``logger_name=name`` (the module) and any extra context.

    The logger stays lazy: it picks up the configuration in force when it first logs, so a
    module-level ``log = get_logger(__name__)`` follows a later :func:`configure_logging`,
    whatever the import order. (``.bind()`` would freeze the configuration at import time.)
    """
    values = {"logger_name": name, **context} if name else dict(context)
    return structlog.get_logger(**values)
