"""JSON logs, one object a line, with the current trace and span ids and no person numbers.

Every service calls `configure_logging` once at start-up. The handler it installs on the root logger
carries a `PersonDataFilter`, so a person number cannot reach the output from any logger, whether it
was in the message, its arguments, an `extra` field or an exception.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from services.common.personnummer import redact_person_numbers

__all__ = ["JsonFormatter", "PersonDataFilter", "configure_logging"]

# Everything a LogRecord carries by itself; the rest of its attributes came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# The fields this module writes itself; an `extra` field of the same name is dropped, not written.
_FIXED_FIELDS = frozenset(
    {"time", "level", "logger", "message", "service", "trace_id", "span_id", "exception", "stack"}
)
_WITHHELD = "[log message withheld: it could not be checked for person numbers]"

_installed: logging.Handler | None = None


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Sends every logger's records to `stream` (standard error by default) as JSON lines.

    Calling it again replaces the handler it installed before instead of adding a second one;
    handlers installed by others (a test runner's, for one) are left alone.
    """
    global _installed
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(PersonDataFilter())
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _installed = handler


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, service, trace ids, exception, extras."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRIBUTES and key not in _FIXED_FIELDS
        }
        entry.update(
            time=datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
            service=self.service,
        )
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = trace.format_trace_id(span_context.trace_id)
            entry["span_id"] = trace.format_span_id(span_context.span_id)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class PersonDataFilter(logging.Filter):
    """Replaces person numbers in a record's message, arguments, extra fields and exception text.

    The record is changed in place and never dropped. If a part cannot be checked, it is withheld
    rather than let through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._message(record)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES:
                setattr(record, key, _redacted_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redacted_text(record.exc_text)
        if record.stack_info:
            record.stack_info = _redacted_text(record.stack_info)
        return True

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:
            # Arguments that do not fit the format: keep the format, which is the code's own text.
            message = str(record.msg)
        return _redacted_text(message)


def _redacted_text(text: str) -> str:
    try:
        return redact_person_numbers(text)
    except Exception:
        return _WITHHELD


def _redacted_value(value: object) -> object:
    """The value itself when its text holds no person number, else its redacted text.

    Numbers, lists and mappings are checked through their text too, so a person number passed as a
    number or inside a dict is caught as well.
    """
    if value is None or isinstance(value, bool):
        return value
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        return _WITHHELD
    redacted = _redacted_text(text)
    return value if redacted == text else redacted
