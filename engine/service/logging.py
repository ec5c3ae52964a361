"""Service logs: one JSON object per line, carrying event id, pipeline and connector; secrets masked.

The event id and pipeline of the work in hand travel in context variables, so every log line written
while an event runs (including the connectors' own) carries them without being passed along.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from engine.redaction import Redactor

__all__ = ["JsonFormatter", "ServiceRedactingFilter", "event_context", "setup_logging"]

_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("mesbridge_event_id", default=None)
_pipeline: contextvars.ContextVar[str | None] = contextvars.ContextVar("mesbridge_pipeline", default=None)

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class event_context:  # noqa: N801 - used as a function: `with event_context(name):`
    """Within the block, log records carry this pipeline and event id (a class, not a generator: it
    is entered on every request)."""

    __slots__ = ("pipeline", "event_id", "_tokens")

    def __init__(self, pipeline: str | None, event_id: str | None = None) -> None:
        self.pipeline = pipeline
        self.event_id = event_id

    def __enter__(self) -> None:
        self._tokens = (_pipeline.set(self.pipeline), _event_id.set(self.event_id))

    def __exit__(self, *exc: object) -> None:
        pipeline, event_id = self._tokens
        _pipeline.reset(pipeline)
        _event_id.reset(event_id)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "pipeline", None) is None:
            record.pipeline = _pipeline.get()
        if getattr(record, "event_id", None) is None:
            record.event_id = _event_id.get()
        return True


class ServiceRedactingFilter(logging.Filter):
    """Masks secrets known to the environment and to the current connectors (tokens obtained at run
    time) in the message and in every extra field."""

    def __init__(self, redactors: Callable[[], list[Redactor]]) -> None:
        super().__init__()
        self.redactors = redactors

    def _clean(self, value: Any) -> Any:
        for redactor in self.redactors():
            value = redactor.redact(value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self._clean(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str | dict | list):
                setattr(record, key, self._clean(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._clean("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every extra field given."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal: time level [pipeline event] message."""

    def format(self, record: logging.LogRecord) -> str:
        where = " ".join(
            str(v) for v in (getattr(record, "pipeline", None), getattr(record, "event_id", None)) if v
        )
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} {f'[{where}] ' if where else ''}{record.getMessage()}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup_logging(
    level: str,
    fmt: str,
    redactors: Callable[[], list[Redactor]],
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route the `mesbridge` and `uvicorn` loggers to one handler on stderr; return the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.addFilter(ServiceRedactingFilter(redactors))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("mesbridge", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "_mesbridge", False):
                logger.removeHandler(old)
        handler._mesbridge = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    return handler
