"""PII never reaches logs, audit data or call records."""

from __future__ import annotations

import io
import json
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from services.platform.logs import JsonFormatter, configure_logging, request_id_var
from services.platform.redaction import (
    REDACTED,
    RedactingFilter,
    _redact_all,
    redact_text,
    redact_value,
)

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def test_text_patterns() -> None:
    text = (
        f"cpf 123.456.789-09 raw 12345678909 cnpj 12.345.678/0001-95 mail ana.silva@example.com.br "
        f"phone +55 11 91234-5678 auth Bearer abc.def token {JWT} password=hunter2 "
        f'"secret": "s3"'
    )
    out = redact_text(text)
    for leaked in (
        "123.456.789-09",
        "12345678909",
        "12.345.678/0001-95",
        "ana.silva@example.com.br",
        "91234-5678",
        "abc.def",
        JWT,
        "hunter2",
        '"s3"',
    ):
        assert leaked not in out, leaked
    assert out.startswith("cpf [REDACTED]")


def test_ordinary_text_is_kept() -> None:
    text = "payment 42 of 1000 centavos, order id 7f3a, 2026-11-29"
    assert redact_text(text) == text


def test_nested_values_and_sensitive_keys() -> None:
    data = {
        "name": "Ana",
        "cpf": "anything",
        "password_hash": "x",
        "profile": {"email": "a@b.co", "cpf_number": 12345678909, "age": 30},
        "items": [{"access_token": "t"}, "call 123.456.789-09"],
        "blob": b"\x00\x01",
    }
    out = redact_value(data)
    assert out["name"] == "Ana"
    assert out["cpf"] == REDACTED and out["password_hash"] == REDACTED
    assert out["profile"] == {"email": REDACTED, "cpf_number": REDACTED, "age": 30}
    assert out["items"][0]["access_token"] == REDACTED
    assert out["items"][1] == f"call {REDACTED}"
    assert out["blob"] == "<2 bytes>"
    assert redact_value(12345678909) == REDACTED


def test_json_log_line_has_context_and_no_pii() -> None:
    stream = io.StringIO()
    handler = configure_logging("unit", "INFO", stream)
    token = request_id_var.set("req-123")
    try:
        log = logging.getLogger("unit.test")
        try:
            raise ValueError("bad cpf 123.456.789-09")
        except ValueError:
            log.exception(
                "user %s failed with password=%s", "ana@example.com", "pw123", extra={"cpf": "1"}
            )
    finally:
        request_id_var.reset(token)
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue().strip()
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["service"] == "unit" and entry["request_id"] == "req-123"
    assert entry["level"] == "ERROR" and entry["cpf"] == REDACTED
    for leaked in ("ana@example.com", "pw123", "123.456.789-09"):
        assert leaked not in line
    assert "ValueError" in entry["exc"]


def test_filter_rewrites_record_for_other_handlers() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "login %s", ("ana@example.com",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == f"login {REDACTED}"
    assert JsonFormatter("svc").format(record).count(REDACTED) == 1


# -- the fast path: text no pattern can match is returned without substituting --

# Pieces that make (or nearly make) each pattern match, and the Unicode case
# equivalents re's IGNORECASE honours (long s ~ "s", Kelvin sign ~ "k",
# dotless i ~ "i"), written as escapes.
_PIECES = st.sampled_from(
    [
        "123.456.789-09", "12345678909", "1234567890", "12.345.678/0001-95", "+55 11 91234-5678",
        "+55 (11) 1234-567", "ana@example.com", "a@b", "eyJ", JWT, "Bearer x", "BASIC y",
        "bearer", "password=", "PassWord: v", "pa\u017f\u017fword=x", "api_\u212aey=1",
        "Author\u0131zation: z", "tok\u212an=t", "secret", "apikey", "/svc.v1.S/Method", "OK",
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661", " ", "-", ".",
    ]
)  # fmt: skip
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=8).map("".join)


@settings(max_examples=600, deadline=None)
@given(_TEXT)
def test_fast_path_redacts_exactly_as_every_pattern_would(text: str) -> None:
    assert redact_text(text) == _redact_all(text)


def test_fast_path_keeps_plain_log_text_untouched() -> None:
    for text in ("/fintech.ledger.v1.LedgerService/CreateTransfers", "OK", "12.345", ""):
        assert redact_text(text) == text
