"""JSON logs: one line per record with service, trace/span ids and request id.

Every string that reaches the output passes through PII redaction, including
exception tracebacks (a driver error can quote a CPF from a failed INSERT).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from typing import Any

from opentelemetry import trace

from services.platform.redaction import (
    REDACTED,
    RedactingFilter,
    is_sensitive_key,
    redact_text,
    redact_value,
)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fintech_request_id", default=None
)
MAX_REQUEST_ID_CHARS = 128
MAX_LINE_CHARS = 16_384

# LogRecord attributes that are not "extra" fields.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """Accept a caller's x-request-id only when it is short and printable."""
    if value and len(value) <= MAX_REQUEST_ID_CHARS and value.isprintable() and " " not in value:
        return value
    return new_request_id()


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "msg": redact_text(record.getMessage()),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = REDACTED if is_sensitive_key(key) else redact_value(value)
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        line = json.dumps(entry, default=str, ensure_ascii=False)
        return line[:MAX_LINE_CHARS]


def configure_logging(service: str, level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Route the root logger to one JSON handler (replacing earlier handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
