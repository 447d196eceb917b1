"""PII redaction for logs, audit data and third-party call records (LGPD).

Two layers: values under sensitive keys are replaced whole, and free text is
scrubbed by pattern (CPF/CNPJ-like numbers, e-mails, phone numbers, JWTs,
bearer tokens, `password=` pairs). Patterns over-redact on purpose: a lost
digit string in a log costs nothing, a leaked CPF is a reportable incident.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
MAX_DEPTH = 16
MAX_ITEMS = 1000

SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "cpf",
    "cnpj",
    "rg",
    "document_number",
    "otp",
    "totp",
    "pin",
    "cvv",
    "card_number",
    "pan",
    "private_key",
    "api_key",
    "apikey",
)
_SENSITIVE_KEY = re.compile(
    r"(^|[_\-.])(" + "|".join(re.escape(p) for p in SENSITIVE_KEY_PARTS) + r")($|[_\-.])",
    re.IGNORECASE,
)

_PATTERNS: tuple[re.Pattern[str], ...] = (
    # JWT (three base64url segments, header starts with eyJ).
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    # Bearer / Basic credentials.
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    # key=value / "key": "value" pairs with a sensitive key.
    re.compile(
        r"(?i)(\"?(?:password|passwd|secret|token|api[_-]?key|authorization)\"?\s*[:=]\s*)"
        r"(\"[^\"]*\"|'[^']*'|[^\s,;&}]+)"
    ),
    # E-mail addresses.
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    # CNPJ (14 digits, optionally punctuated) before CPF so it is taken whole.
    re.compile(r"(?<![\w])\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}(?![\w])"),
    # CPF (11 digits, optionally punctuated).
    re.compile(r"(?<![\w])\d{3}\.?\d{3}\.?\d{3}-?\d{2}(?![\w])"),
    # Phone numbers in E.164 (+55 11 91234-5678 and compact forms).
    re.compile(r"\+\d{1,3}[\s-]?\(?\d{2}\)?[\s-]?\d{4,5}-?\d{4}(?!\d)"),
)


# Cheap necessary conditions for any of _PATTERNS to match (checked by a
# property test against the full substitution): the keyword patterns need one
# of these words, e-mails an "@", JWTs "eyJ", and CPF, CNPJ and phone numbers
# at least 11 digits. Most log text (method names, codes, ids, durations)
# meets none, and seven substitutions per string were most of an access log
# line's cost.
_KEYWORD_WORDS = ("bearer", "basic", "passw", "secret", "token", "api", "authorization")
# For non-ASCII text: the patterns' own engine and flags, so the same case
# folding (re's IGNORECASE also equates e.g. the long s, U+017F, with "s",
# which lower() does not).
_KEYWORDS = re.compile("(?i)" + "|".join(_KEYWORD_WORDS))
_NON_DIGITS = re.compile(r"\D+")
_MIN_NUMBER_DIGITS = 11


def _has_keyword(text: str) -> bool:
    if text.isascii():  # ASCII: IGNORECASE is exactly lower()
        lower = text.lower()
        return any(word in lower for word in _KEYWORD_WORDS)
    return _KEYWORDS.search(text) is not None


def _may_need_redaction(text: str) -> bool:
    return (
        "@" in text
        or "eyJ" in text
        or _has_keyword(text)
        or len(_NON_DIGITS.sub("", text)) >= _MIN_NUMBER_DIGITS
    )


def redact_text(text: str) -> str:
    if not _may_need_redaction(text):
        return text  # no pattern can match: every substitution would be a no-op
    return _redact_all(text)


def _redact_all(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


@functools.lru_cache(maxsize=4096)  # log field and JSON keys repeat endlessly
def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Return a JSON-friendly copy of `value` with sensitive keys and patterns redacted."""
    if _depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = "truncated"
                break
            key = str(k)
            out[key] = REDACTED if is_sensitive_key(key) else redact_value(v, _depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, int) and not isinstance(value, bool):
            # An 11/14-digit integer is as much a CPF/CNPJ as the string form.
            return redact_text(str(value)) if len(str(abs(value))) in (11, 14) else value
        return value
    return redact_text(str(value))


class RedactingFilter(logging.Filter):
    """Scrub the rendered message of every record before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not drop the record
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        return True
