"""Strict parsing of PSP settlement reports (docs/PSP_SETTLEMENT_REPORT.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain import reconciliation as rec
from services.ledger.domain.reconciliation import ReportError, ReportFormat, parse_report

CSV = ReportFormat.CSV
JSON = ReportFormat.JSON
HEADER = "psp_reference,external_reference,amount,currency,type,settled_at"
BRT = timezone(timedelta(hours=-3))


def csv_report(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def json_line(**overrides: object) -> dict[str, object]:
    line: dict[str, object] = {
        "psp_reference": "E1",
        "external_reference": "payments/1",
        "amount": 12345,
        "currency": "BRL",
        "type": "PIX_OUT",
        "settled_at": "2026-11-28T14:03:00-03:00",
    }
    line.update(overrides)
    return line


def problems(content: bytes, fmt: ReportFormat = CSV) -> dict[str, str]:
    with pytest.raises(ReportError) as exc:
        parse_report(content, fmt)
    return {p.path: p.problem for p in exc.value.problems}


# --- good reports ---------------------------------------------------------------------


def test_csv_lines_are_parsed_with_file_line_numbers() -> None:
    content = csv_report(
        "E1,payments/1,12345,BRL,PIX_OUT,2026-11-28T14:03:00-03:00",
        'E2,"ref, with comma",1,BRL,FEE,2026-11-28T17:03:00.123456789Z',
    )
    lines = parse_report(content, CSV)
    assert lines == [
        rec.ReportLine(
            2,
            "E1",
            "payments/1",
            12345,
            "BRL",
            "PIX_OUT",
            datetime(2026, 11, 28, 14, 3, tzinfo=BRT),
        ),
        rec.ReportLine(
            3,
            "E2",
            "ref, with comma",
            1,
            "BRL",
            "FEE",
            datetime(2026, 11, 28, 17, 3, 0, 123456, tzinfo=UTC),
        ),
    ]


def test_csv_columns_in_any_order_crlf_and_bom() -> None:
    header = "amount,type,currency,settled_at,external_reference,psp_reference"
    content = (
        b"\xef\xbb\xbf"
        + (header + "\r\n" + "500,PIX_IN,BRL,2026-11-28T10:00:00Z,charge/9,E9\r\n").encode()
    )
    [line] = parse_report(content, CSV)
    assert (line.line, line.psp_reference, line.external_reference, line.amount) == (
        2,
        "E9",
        "charge/9",
        500,
    )


def test_header_only_is_a_day_without_settlements() -> None:
    assert parse_report(csv_report(), CSV) == []
    assert parse_report(b'{"lines": []}', JSON) == []


def test_json_lines_numbered_by_position_and_amount_may_be_a_digit_string() -> None:
    doc = {
        "version": 1,
        "report_date": "2026-11-28",
        "lines": [json_line(), json_line(psp_reference="E2", amount="9999999999999")],
    }
    lines = parse_report(json.dumps(doc).encode(), JSON)
    assert [(ln.line, ln.amount) for ln in lines] == [(1, 12345), (2, 9999999999999)]
    content = json.dumps(doc).encode()
    assert parse_report(content, JSON, report_date="2026-11-28") == lines
    with pytest.raises(ReportError) as exc:
        parse_report(content, JSON, report_date="2026-11-27")
    assert [p.path for p in exc.value.problems] == ["content.report_date"]
    assert "'2026-11-28', not 2026-11-27" in exc.value.problems[0].problem


# --- bad reports: every problem names its line and field ----------------------------


@pytest.mark.parametrize(
    ("row", "path", "fragment"),
    [
        ("E1,payments/1,12.50,BRL,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].amount", "12.50"),
        ("E1,payments/1,-5,BRL,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].amount", "positive"),
        ("E1,payments/1,0,BRL,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].amount", "positive"),
        ("E1,payments/1,007,BRL,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].amount", "007"),
        ("E1,payments/1, 7,BRL,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].amount", "positive"),
        ("E1,payments/1,1e3,BRL,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].amount", "1e3"),
        (
            "E1,payments/1,10000000000001,BRL,PIX_OUT,2026-11-28T14:03:00Z",
            "content.line[2].amount",
            "at most",
        ),
        ("E1,payments/1,5,brl,PIX_OUT,2026-11-28T14:03:00Z", "content.line[2].currency", "ISO"),
        ("E1,payments/1,5,BRL,PIX,2026-11-28T14:03:00Z", "content.line[2].type", "unknown type"),
        ("E1,payments/1,5,BRL,PIX_OUT,2026-11-28 14:03:00", "content.line[2].settled_at", "RFC"),
        ("E1,payments/1,5,BRL,PIX_OUT,2026-11-28T14:03:00", "content.line[2].settled_at", "RFC"),
        ("E1,payments/1,5,BRL,PIX_OUT,2026-02-30T14:03:00Z", "content.line[2].settled_at", "range"),
        (
            "E1,,5,BRL,PIX_OUT,2026-11-28T14:03:00Z",
            "content.line[2].external_reference",
            "required",
        ),
        (
            "E1, payments/1,5,BRL,PIX_OUT,2026-11-28T14:03:00Z",
            "content.line[2].external_reference",
            "whitespace",
        ),
        (
            ",payments/1,5,BRL,PIX_OUT,2026-11-28T14:03:00Z",
            "content.line[2].psp_reference",
            "required",
        ),
        (
            "E" + "x" * 128 + ",payments/1,5,BRL,PIX_OUT,2026-11-28T14:03:00Z",
            "content.line[2].psp_reference",
            "longer than 128",
        ),
        ("E1,payments/1,5,BRL,PIX_OUT", "content.line[2]", "has 5 fields"),
    ],
)
def test_bad_csv_field_is_named(row: str, path: str, fragment: str) -> None:
    found = problems(csv_report(row))
    assert list(found) == [path]
    assert fragment in found[path]


def test_every_bad_line_is_reported_with_its_file_line() -> None:
    content = csv_report(
        "E1,payments/1,100,BRL,PIX_OUT,2026-11-28T14:03:00Z",
        "E2,payments/2,1.5,BRL,PIX_OUT,2026-11-28T14:03:00Z",
        "",
        "E4,payments/4,100,XX,NOPE,2026-11-28T14:03:00Z",
    )
    assert set(problems(content)) == {
        "content.line[3].amount",
        "content.line[4]",
        "content.line[5].currency",
        "content.line[5].type",
    }


def test_quoted_multiline_field_is_numbered_where_the_record_starts() -> None:
    content = csv_report(
        'E1,"two\nlines",100,BRL,PIX_OUT,2026-11-28T14:03:00Z',
        "E2,payments/2,bad,BRL,PIX_OUT,2026-11-28T14:03:00Z",
    )
    found = problems(content)
    # Line 2-3 is the multi-line record (a control character in a reference
    # is refused too); the next record starts on file line 4.
    assert set(found) == {"content.line[2].external_reference", "content.line[4].amount"}
    assert "control character" in found["content.line[2].external_reference"]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (HEADER.replace(",currency", ""), "missing column 'currency'"),
        (HEADER + ",note", "unknown column 'note'"),
        (HEADER + ",amount", "appears twice"),
        (HEADER.upper(), "unknown column 'PSP_REFERENCE'"),
    ],
)
def test_bad_header(header: str, fragment: str) -> None:
    with pytest.raises(ReportError) as exc:
        parse_report(csv_report(header=header), CSV)
    assert all(p.path == "content.line[1].header" for p in exc.value.problems)
    assert any(fragment in p.problem for p in exc.value.problems)


def test_invalid_utf8_names_the_line() -> None:
    content = csv_report("E1,payments/1,100,BRL,PIX_OUT,2026-11-28T14:03:00Z") + b"E2,\xff\n"
    assert "content.line[3]" in problems(content)


def test_malformed_csv_quoting_is_an_error() -> None:
    found = problems(csv_report('E1,"unterminated,100,BRL,PIX_OUT,2026-11-28T14:03:00Z'))
    assert any("malformed CSV" in text for text in found.values())


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        ({"lines": [json_line(amount=123.45)]}, "content.line[1].amount", "123.45"),
        ({"lines": [json_line(amount=1e3)]}, "content.line[1].amount", "integer minor units"),
        ({"lines": [json_line(amount=True)]}, "content.line[1].amount", "string or an integer"),
        ({"lines": [json_line(amount=-1)]}, "content.line[1].amount", "positive"),
        ({"lines": [json_line(amount="12.5")]}, "content.line[1].amount", "12.5"),
        ({"lines": [json_line(currency=None)]}, "content.line[1].currency", "required"),
        ({"lines": [json_line(note="x")]}, "content.line[1].note", "unknown key"),
        ({"lines": [json_line(), "E2"]}, "content.line[2]", "must be an object"),
        ({"lines": [json_line()], "extra": 1}, "content.extra", "unknown key"),
        ({"lines": [json_line()], "version": 2}, "content.version", "must be 1"),
        ({"lines": [json_line()], "report_date": 20261128}, "content.report_date", "string"),
        ({"lines": "nope"}, "content.lines", "required"),
        ({}, "content.lines", "required"),
    ],
)
def test_bad_json_field_is_named(doc: dict[str, object], path: str, fragment: str) -> None:
    found = problems(json.dumps(doc).encode(), JSON)
    assert path in found, found
    assert fragment in found[path]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"lines": [}', "invalid JSON at line 1"),
        (b"[]", "must be an object"),
        (b'{"lines": [], "lines": []}', "duplicate key 'lines'"),
        (b'{"lines": [{"amount": NaN}]}', "NaN is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_json(content: bytes, fragment: str) -> None:
    found = problems(content, JSON)
    assert list(found) == ["content"]
    assert fragment in found["content"]


# --- limits -----------------------------------------------------------------------


def test_empty_and_oversized_reports_are_refused() -> None:
    assert "empty" in problems(b"")["content"]
    assert "empty" in problems(b"\xef\xbb\xbf")["content"]
    big = b"x" * (rec.MAX_REPORT_BYTES + 1)
    assert "larger than" in problems(big)["content"]
    assert "larger than" in problems(big, JSON)["content"]


def test_report_limit_fits_the_platform_message_cap() -> None:
    from services.platform.app import MAX_MESSAGE_BYTES

    assert rec.MAX_REPORT_BYTES < MAX_MESSAGE_BYTES
    # Sums of a whole report fit int64 (Money.minor_units).
    assert rec.MAX_LINE_AMOUNT * rec.MAX_REPORT_LINES <= rec.MAX_INT64


def test_too_many_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec, "MAX_REPORT_LINES", 3)
    row = "E{},payments/1,1,BRL,FEE,2026-11-28T14:03:00Z"
    assert parse_report(csv_report(*(row.format(i) for i in range(3))), CSV)
    found = problems(csv_report(*(row.format(i) for i in range(4))))
    assert "more than 3 lines" in found["content"]
    doc = {"lines": [json_line(psp_reference=f"E{i}") for i in range(4)]}
    assert "more than 3 lines" in problems(json.dumps(doc).encode(), JSON)["content"]


def test_error_list_is_capped() -> None:
    rows = [f"E{i},payments/{i},bad,BRL,FEE,2026-11-28T14:03:00Z" for i in range(200)]
    with pytest.raises(ReportError) as exc:
        parse_report(csv_report(*rows), CSV)
    assert len(exc.value.problems) == rec.MAX_PARSE_ERRORS
    assert "(and more)" in str(exc.value)


# --- rendering round-trips --------------------------------------------------------------

references = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=rec.MAX_REFERENCE_CHARS,
)
report_lines = st.builds(
    rec.ReportLine,
    line=st.just(0),
    psp_reference=references,
    external_reference=references,
    amount=st.integers(1, rec.MAX_LINE_AMOUNT),
    currency=st.sampled_from(["BRL", "USD"]),
    type=st.sampled_from(sorted(rec.SETTLEMENT_TYPES)),
    settled_at=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, BRT]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(report_lines, max_size=20), st.sampled_from(list(ReportFormat)))
def test_render_then_parse_gives_the_lines_back(
    lines: list[rec.ReportLine], fmt: ReportFormat
) -> None:
    content = rec.render_report(lines, fmt, report_date="2026-11-28")
    parsed = parse_report(content, fmt)
    first = 2 if fmt is CSV else 1
    # CSV numbers by file line: a reference holding a line break spans lines.
    assert [
        (p.psp_reference, p.external_reference, p.amount, p.currency, p.type, p.settled_at)
        for p in parsed
    ] == [
        (ln.psp_reference, ln.external_reference, ln.amount, ln.currency, ln.type, ln.settled_at)
        for ln in lines
    ]
    if fmt is JSON or not any("\n" in ln.psp_reference + ln.external_reference for ln in lines):
        assert [p.line for p in parsed] == list(range(first, first + len(lines)))
