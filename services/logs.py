"""Structured logging: readable text by default, one JSON object per line on demand.

Context such as job id and trace id travels in `extra=` and is printed by both formats.
Every record goes through `RedactSecrets` first: its message, arguments, extra fields and
traceback leave with values that look like credentials masked (DESIGN §12).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from domain.redaction import redact_text, redact_value

CONTEXT_KEYS = (
    "service", "job_id", "trace_id", "aggregate_id", "worker_id", "seq", "subject", "instance",
)  # fmt: skip


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in CONTEXT_KEYS if getattr(record, k, None) is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        ctx = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{moment} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ctx:
            line += f"  [{ctx}]"
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


_STANDARD: frozenset[str] = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class RedactSecrets(logging.Filter):
    """Masks values that look like credentials in a record before any handler formats it:
    the message with its arguments put in, every `extra=` field, the traceback's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format: logging reports it when the handler formats
            return True
        record.msg, record.args = redact_text(message), None
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                setattr(record, key, redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted (not the one at setup),
    so a replaced or closed stream (as in an embedding program or a test) is never used."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


LIBRARIES = ("nats", "httpx", "httpcore", "anthropic", "uvicorn", "asyncio")
"""Libraries whose INFO lines (one per HTTP request, say) are noise in our logs: they speak at
WARNING and above unless the level asked for is DEBUG."""


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Route all logs to stderr in the chosen format."""
    handler = _Stderr()
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(
            root.level if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
        )
