"""PSP settlement reports: strict parsing (CSV, JSON) and matching against ledger movements.

Pure: no I/O, no clock. The format and the matching rules are specified in
docs/PSP_SETTLEMENT_REPORT.md; this module is their only implementation, so
the PSP simulator renders reports with `render_report` from here too.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --- limits -------------------------------------------------------------------

# The platform's gRPC servers accept messages up to 8 MiB
# (services.platform.app.MAX_MESSAGE_BYTES); the report travels inside one
# request with a few other small fields, hence 64 KiB of headroom. A bigger
# day has to be split by the PSP (several reports, each its own run).
MAX_REPORT_BYTES = 8 * 1024 * 1024 - 64 * 1024
MAX_REPORT_LINES = 100_000
# Bounds what one bad file can make us collect and send back; the platform
# caps field violations at 100 (services.platform.errors.MAX_VIOLATIONS).
MAX_PARSE_ERRORS = 50
MAX_REFERENCE_CHARS = 128
# 10^13 centavos = R$ 100 billion per line. With MAX_REPORT_LINES lines the
# report total stays below 10^18 < 2^63, so every sum fits a signed 64-bit
# column and the proto's int64 Money.
MAX_LINE_AMOUNT = 10**13
MAX_INT64 = 2**63 - 1

CSV_COLUMNS = ("psp_reference", "external_reference", "amount", "currency", "type", "settled_at")
JSON_TOP_LEVEL_KEYS = frozenset({"version", "report_date", "lines"})
JSON_VERSION = 1

SETTLEMENT_TYPES = frozenset(
    {"PIX_OUT", "PIX_IN", "TED_OUT", "TED_IN", "CARD_CAPTURE", "REFUND", "FEE"}
)

_CURRENCY = re.compile(r"[A-Z]{3}")
_MINOR_UNITS = re.compile(r"[1-9][0-9]{0,18}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_UTF8_BOM = "\ufeff"


class ReportFormat(enum.Enum):
    CSV = "CSV"
    JSON = "JSON"


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One settlement the PSP reports. `line`: CSV file line (header = 1) or JSON position."""

    line: int
    psp_reference: str
    external_reference: str
    amount: int
    currency: str
    type: str
    settled_at: datetime


@dataclass(frozen=True, slots=True)
class LineProblem:
    """What is wrong where: line 0 means the report as a whole."""

    line: int
    field: str
    problem: str

    @property
    def path(self) -> str:
        """The field-violation path of the API: `content.line[7].amount`."""
        if self.line == 0:
            return "content" if not self.field else f"content.{self.field}"
        line = f"content.line[{self.line}]"
        return f"{line}.{self.field}" if self.field else line

    def __str__(self) -> str:
        where = "report" if self.line == 0 else f"line {self.line}"
        return f"{where}: {self.field or 'content'}: {self.problem}"


class ReportError(ValueError):
    """The report is rejected as a whole; `problems` lists up to MAX_PARSE_ERRORS of them."""

    def __init__(self, problems: Sequence[LineProblem]) -> None:
        assert problems
        self.problems = tuple(problems[:MAX_PARSE_ERRORS])
        more = len(problems) - len(self.problems)
        summary = "; ".join(str(p) for p in self.problems[:3])
        if len(self.problems) > 3 or more:
            summary += " (and more)"
        super().__init__(f"invalid settlement report: {summary}")


class _Problems:
    """Collects problems up to the cap; beyond it parsing stops (the report is bad anyway)."""

    def __init__(self) -> None:
        self.items: list[LineProblem] = []

    def add(self, line: int, field_name: str, problem: str) -> None:
        self.items.append(LineProblem(line, field_name, problem))
        if len(self.items) >= MAX_PARSE_ERRORS:
            raise ReportError(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ReportError(self.items)


# --- parsing ----------------------------------------------------------------------


def parse_report(
    content: bytes, fmt: ReportFormat, *, report_date: str | None = None
) -> list[ReportLine]:
    """Every line of the report, or ReportError naming each bad line and field.

    `report_date` ("YYYY-MM-DD"): the date the importer says the report is
    for; a JSON report that states another date is refused (CSV has no place
    for it).
    """
    if not content:
        raise ReportError([LineProblem(0, "", "the report is empty")])
    if len(content) > MAX_REPORT_BYTES:
        raise ReportError(
            [LineProblem(0, "", f"the report is larger than {MAX_REPORT_BYTES} bytes")]
        )
    text = _decode(content)
    if fmt is ReportFormat.CSV:
        return _parse_csv(text)
    stated, lines = _parse_json(text)
    if report_date is not None and stated is not None and stated != report_date:
        raise ReportError(
            [LineProblem(0, "report_date", f"the report says {stated[:10]!r}, not {report_date}")]
        )
    return lines


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise ReportError([LineProblem(line, "", f"not valid UTF-8 (byte {exc.start})")]) from exc
    # Spreadsheet tools put a BOM in front of UTF-8 files; it is not data.
    return text.removeprefix(_UTF8_BOM)


def _parse_csv(text: str) -> list[ReportLine]:
    problems = _Problems()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ReportError([LineProblem(1, "header", f"malformed CSV: {exc}")]) from exc
    if header is None:
        raise ReportError([LineProblem(0, "", "the report is empty")])
    _check_header(header, problems)
    problems.raise_if_any()
    index = {name: i for i, name in enumerate(header)}
    lines: list[ReportLine] = []
    seen_lines = 1  # csv.reader.line_num after the previous record
    while True:
        start = seen_lines + 1  # a quoted field may span lines: report where the record starts
        try:
            row = next(reader, None)
        except csv.Error as exc:
            problems.add(reader.line_num, "", f"malformed CSV: {exc}")
            break  # the reader's position is unreliable after a syntax error
        seen_lines = reader.line_num
        if row is None:
            break
        if len(lines) >= MAX_REPORT_LINES:
            raise ReportError(
                [LineProblem(0, "", f"the report has more than {MAX_REPORT_LINES} lines")]
            )
        if not row:
            problems.add(start, "", "blank line")
            continue
        if len(row) != len(header):
            problems.add(start, "", f"has {len(row)} fields, the header has {len(header)}")
            continue
        parsed = _line(start, {name: row[i] for name, i in index.items()}, problems)
        if parsed is not None:
            lines.append(parsed)
    problems.raise_if_any()
    return lines


def _check_header(header: list[str], problems: _Problems) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.add(1, "header", f"column {name!r} appears twice")
        elif name not in CSV_COLUMNS:
            problems.add(1, "header", f"unknown column {name!r}; expected {', '.join(CSV_COLUMNS)}")
        seen.add(name)
    for name in CSV_COLUMNS:
        if name not in seen:
            problems.add(1, "header", f"missing column {name!r}")


def _parse_json(text: str) -> tuple[str | None, list[ReportLine]]:
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_keep_float,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise ReportError(
            [LineProblem(0, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
        ) from exc
    except _JsonValueError as exc:
        raise ReportError([LineProblem(0, "", str(exc))]) from exc
    except RecursionError as exc:
        raise ReportError([LineProblem(0, "", "JSON nested too deeply")]) from exc
    if not isinstance(doc, dict):
        raise ReportError([LineProblem(0, "", "the JSON report must be an object")])
    problems = _Problems()
    for key in sorted(set(doc) - JSON_TOP_LEVEL_KEYS):
        problems.add(0, key, "unknown key")
    version = doc.get("version", JSON_VERSION)
    if type(version) is not int or version != JSON_VERSION:
        problems.add(0, "version", f"must be {JSON_VERSION}")
    report_date = doc.get("report_date")
    if report_date is not None and not isinstance(report_date, str):
        problems.add(0, "report_date", 'must be a "YYYY-MM-DD" string')
        report_date = None
    raw_lines = doc.get("lines")
    if not isinstance(raw_lines, list):
        problems.add(0, "lines", "required: an array of settlement lines")
        raw_lines = []
    if len(raw_lines) > MAX_REPORT_LINES:
        raise ReportError(
            [LineProblem(0, "", f"the report has more than {MAX_REPORT_LINES} lines")]
        )
    lines: list[ReportLine] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not isinstance(raw, dict):
            problems.add(number, "", "must be an object")
            continue
        extra = sorted(set(raw) - set(CSV_COLUMNS))
        for key in extra:
            problems.add(number, key, "unknown key")
        fields: dict[str, str] = {}
        missing = False
        for name in CSV_COLUMNS:
            value = raw.get(name)
            if value is None:
                problems.add(number, name, "required")
                missing = True
            elif name == "amount" and type(value) is int:
                fields[name] = str(value)  # the same digit rules as CSV apply below
            elif isinstance(value, str):
                fields[name] = value
            elif isinstance(value, _NonInteger):
                problems.add(
                    number, name, f"must be integer minor units, got the number {value.text[:40]}"
                )
                missing = True
            else:
                problems.add(
                    number,
                    name,
                    "must be a string" + (" or an integer" if name == "amount" else ""),
                )
                missing = True
        if missing or extra:
            continue
        parsed = _line(number, fields, problems)
        if parsed is not None:
            lines.append(parsed)
    problems.raise_if_any()
    return report_date, lines


class _JsonValueError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JsonValueError(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


@dataclass(frozen=True, slots=True)
class _NonInteger:
    """A JSON number with a fraction or exponent, kept as text so the line can be named."""

    text: str


def _keep_float(text: str) -> Any:
    # Money is never a binary float: "12.5" would silently be 12 or 1250.
    return _NonInteger(text)


def _reject_constant(text: str) -> Any:
    raise _JsonValueError(f"{text} is not valid JSON")


def _line(number: int, raw: Mapping[str, str], problems: _Problems) -> ReportLine | None:
    """One line's fields, validated; problems go to `problems` (None when any)."""
    before = len(problems.items)
    psp_reference = _reference(number, "psp_reference", raw["psp_reference"], problems)
    external_reference = _reference(
        number, "external_reference", raw["external_reference"], problems
    )
    amount = 0
    text = raw["amount"]
    if not _MINOR_UNITS.fullmatch(text):
        problems.add(
            number, "amount", f"must be a positive integer of minor units, got {text[:40]!r}"
        )
    else:
        amount = int(text)
        if amount > MAX_LINE_AMOUNT:
            problems.add(number, "amount", f"must be at most {MAX_LINE_AMOUNT}")
    currency = raw["currency"]
    if not _CURRENCY.fullmatch(currency):
        problems.add(
            number, "currency", f"must be an ISO 4217 code like BRL, got {currency[:40]!r}"
        )
    kind = raw["type"]
    if kind not in SETTLEMENT_TYPES:
        problems.add(
            number,
            "type",
            f"unknown type {kind[:40]!r}; one of {', '.join(sorted(SETTLEMENT_TYPES))}",
        )
    settled_at = _timestamp(number, raw["settled_at"], problems)
    if len(problems.items) > before or settled_at is None:
        return None
    return ReportLine(
        line=number,
        psp_reference=psp_reference,
        external_reference=external_reference,
        amount=amount,
        currency=currency,
        type=kind,
        settled_at=settled_at,
    )


def _reference(number: int, name: str, value: str, problems: _Problems) -> str:
    # The ledger accepts any text up to 128 characters as a reference, so the
    # report must be able to carry any of them; but padding or a control
    # character is a PSP bug that would otherwise surface as a silent
    # MISSING_IN_LEDGER, so it fails here, loudly.
    if not value:
        problems.add(number, name, "required")
    elif len(value) > MAX_REFERENCE_CHARS:
        problems.add(number, name, f"longer than {MAX_REFERENCE_CHARS} characters")
    elif value != value.strip():
        problems.add(number, name, "has leading or trailing whitespace")
    elif any(unicodedata.category(ch) == "Cc" for ch in value):
        problems.add(number, name, "contains a control character")
    return value


def _timestamp(number: int, value: str, problems: _Problems) -> datetime | None:
    problem = "must be an RFC 3339 timestamp with offset, e.g. 2026-11-28T14:03:00-03:00"
    if not _RFC3339.fullmatch(value):
        problems.add(number, "settled_at", problem)
        return None
    try:
        # fromisoformat takes at most 6 fraction digits; RFC 3339 allows more.
        normal = re.sub(r"(\.\d{6})\d+", r"\1", value.upper())
        return datetime.fromisoformat(normal)
    except ValueError:
        problems.add(number, "settled_at", problem + " (out of range)")
        return None


# --- rendering (the PSP simulator and the tests) -------------------------------------


def render_report(
    lines: Iterable[ReportLine], fmt: ReportFormat, *, report_date: str | None = None
) -> bytes:
    """A report in the documented format; `parse_report` gives back the same lines."""
    if fmt is ReportFormat.CSV:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for ln in lines:
            writer.writerow(
                [
                    ln.psp_reference,
                    ln.external_reference,
                    str(ln.amount),
                    ln.currency,
                    ln.type,
                    ln.settled_at.isoformat(),
                ]
            )
        return out.getvalue().encode()
    doc: dict[str, Any] = {"version": JSON_VERSION}
    if report_date is not None:
        doc["report_date"] = report_date
    doc["lines"] = [
        {
            "psp_reference": ln.psp_reference,
            "external_reference": ln.external_reference,
            "amount": ln.amount,
            "currency": ln.currency,
            "type": ln.type,
            "settled_at": ln.settled_at.isoformat(),
        }
        for ln in lines
    ]
    return json.dumps(doc, separators=(",", ":")).encode()


# --- matching ---------------------------------------------------------------------


class MatchStatus(enum.Enum):
    MATCHED = "MATCHED"
    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"
    MISSING_IN_REPORT = "MISSING_IN_REPORT"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"


class MatchRule(enum.Enum):
    """Which rule produced an item (stored with it, for the operator)."""

    DUPLICATE_LINE = "DUPLICATE_LINE"  # same psp_reference as an earlier line
    CURRENCY_DIFFERS = "CURRENCY_DIFFERS"
    ONE_TO_ONE = "ONE_TO_ONE"
    AGGREGATE = "AGGREGATE"  # several lines and/or several transfers, equal sums
    NO_TRANSFER = "NO_TRANSFER"
    NO_LINE = "NO_LINE"
    SUM_DIFFERS = "SUM_DIFFERS"


@dataclass(frozen=True, slots=True)
class LedgerMovement:
    """Posted money under an external reference, as the store loaded it."""

    transfer_id: str
    external_reference: str
    amount: int
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MatchItem:
    status: MatchStatus
    rule: MatchRule
    external_reference: str
    lines: tuple[ReportLine, ...] = ()
    movements: tuple[LedgerMovement, ...] = ()
    duplicate_of: int | None = None

    @property
    def report_lines(self) -> tuple[int, ...]:
        return tuple(ln.line for ln in self.lines)

    @property
    def transfer_ids(self) -> tuple[str, ...]:
        return tuple(m.transfer_id for m in self.movements)

    @property
    def report_amount(self) -> int | None:
        return sum(ln.amount for ln in self.lines) if self.lines else None

    @property
    def report_currency(self) -> str | None:
        return self.lines[0].currency if self.lines else None

    @property
    def ledger_amount(self) -> int | None:
        return sum(m.amount for m in self.movements) if self.movements else None

    @property
    def ledger_currency(self) -> str | None:
        return self.movements[0].currency if self.movements else None


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    report_amount: int = 0
    ledger_amount: int = 0
    matched_amount: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    counts: Mapping[MatchStatus, int]
    line_count: int
    transfer_count: int
    duplicate_line_count: int
    totals: Mapping[str, CurrencyTotals] = field(default_factory=dict)


def match(lines: Sequence[ReportLine], movements: Sequence[LedgerMovement]) -> list[MatchItem]:
    """Items covering every line and every movement exactly once (rules: see the doc).

    Order: items with report lines by their first line, then ledger-only items
    by (created_at, transfer id) - stable, so item numbers are reproducible.
    """
    items: list[MatchItem] = []
    first_line_of: dict[str, int] = {}
    by_reference_lines: dict[str, list[ReportLine]] = defaultdict(list)
    for ln in sorted(lines, key=lambda x: x.line):
        first = first_line_of.get(ln.psp_reference)
        if first is not None:
            # The PSP settled one id twice: money it claims we have no second
            # transfer for. Counting it in the group would hide it.
            items.append(
                MatchItem(
                    MatchStatus.MISSING_IN_LEDGER,
                    MatchRule.DUPLICATE_LINE,
                    ln.external_reference,
                    lines=(ln,),
                    duplicate_of=first,
                )
            )
            continue
        first_line_of[ln.psp_reference] = ln.line
        by_reference_lines[ln.external_reference].append(ln)
    by_reference_movements: dict[str, list[LedgerMovement]] = defaultdict(list)
    for mv in sorted(movements, key=lambda m: (m.created_at, m.transfer_id)):
        by_reference_movements[mv.external_reference].append(mv)
    for reference in by_reference_lines.keys() | by_reference_movements.keys():
        items.extend(
            _match_reference(
                reference,
                by_reference_lines.get(reference, []),
                by_reference_movements.get(reference, []),
            )
        )
    items.sort(key=_item_order)
    return items


def _item_order(item: MatchItem) -> tuple[int, int, datetime | None, str]:
    if item.lines:
        return (0, min(item.report_lines), None, "")
    first = item.movements[0]
    return (1, 0, first.created_at, first.transfer_id)


def _match_reference(
    reference: str, lines: list[ReportLine], movements: list[LedgerMovement]
) -> Iterator[MatchItem]:
    if not movements:
        for ln in lines:
            yield MatchItem(
                MatchStatus.MISSING_IN_LEDGER, MatchRule.NO_TRANSFER, reference, lines=(ln,)
            )
        return
    if not lines:
        for mv in movements:
            yield MatchItem(
                MatchStatus.MISSING_IN_REPORT, MatchRule.NO_LINE, reference, movements=(mv,)
            )
        return
    report_currencies = {ln.currency for ln in lines}
    ledger_currencies = {mv.currency for mv in movements}
    if len(report_currencies) == 1 and len(ledger_currencies) == 1:
        if report_currencies != ledger_currencies:
            # Same reference, money in another currency: an amount mismatch,
            # shown whole so that both amounts keep their own currency.
            yield MatchItem(
                MatchStatus.AMOUNT_MISMATCH,
                MatchRule.CURRENCY_DIFFERS,
                reference,
                lines=tuple(lines),
                movements=tuple(movements),
            )
            return
        yield from _match_amounts(reference, lines, movements)
        return
    # Mixed currencies inside one reference: each currency is its own group,
    # so sums never add centavos to cents.
    for currency in sorted(report_currencies | ledger_currencies):
        yield from _match_reference_one_currency(
            reference,
            [ln for ln in lines if ln.currency == currency],
            [mv for mv in movements if mv.currency == currency],
        )


def _match_reference_one_currency(
    reference: str, lines: list[ReportLine], movements: list[LedgerMovement]
) -> Iterator[MatchItem]:
    if lines and movements:
        yield from _match_amounts(reference, lines, movements)
    else:
        yield from _match_reference(reference, lines, movements)


def _match_amounts(
    reference: str, lines: list[ReportLine], movements: list[LedgerMovement]
) -> Iterator[MatchItem]:
    """Rule 3 (one currency, both sides present): exact pairs, then sums."""
    waiting: dict[int, list[LedgerMovement]] = defaultdict(list)
    for mv in movements:
        waiting[mv.amount].append(mv)
    left_lines: list[ReportLine] = []
    for ln in lines:
        candidates = waiting.get(ln.amount)
        if candidates:
            mv = candidates.pop(0)
            yield MatchItem(
                MatchStatus.MATCHED, MatchRule.ONE_TO_ONE, reference, lines=(ln,), movements=(mv,)
            )
        else:
            left_lines.append(ln)
    unpaired = {id(mv) for group in waiting.values() for mv in group}
    left_movements = [mv for mv in movements if id(mv) in unpaired]
    if not left_lines and not left_movements:
        return
    if not left_movements:
        for ln in left_lines:
            yield MatchItem(
                MatchStatus.MISSING_IN_LEDGER, MatchRule.NO_TRANSFER, reference, lines=(ln,)
            )
        return
    if not left_lines:
        for mv in left_movements:
            yield MatchItem(
                MatchStatus.MISSING_IN_REPORT, MatchRule.NO_LINE, reference, movements=(mv,)
            )
        return
    equal = sum(ln.amount for ln in left_lines) == sum(mv.amount for mv in left_movements)
    yield MatchItem(
        MatchStatus.MATCHED if equal else MatchStatus.AMOUNT_MISMATCH,
        MatchRule.AGGREGATE if equal else MatchRule.SUM_DIFFERS,
        reference,
        lines=tuple(left_lines),
        movements=tuple(left_movements),
    )


def summarize(items: Sequence[MatchItem]) -> Summary:
    counts = dict.fromkeys(MatchStatus, 0)
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"report": 0, "ledger": 0, "matched": 0}
    )
    lines = transfers = duplicates = 0
    for item in items:
        counts[item.status] += 1
        lines += len(item.lines)
        transfers += len(item.movements)
        duplicates += item.rule is MatchRule.DUPLICATE_LINE
        for ln in item.lines:
            totals[ln.currency]["report"] += ln.amount
        for mv in item.movements:
            totals[mv.currency]["ledger"] += mv.amount
        if item.status is MatchStatus.MATCHED:
            amount = item.report_amount
            assert amount is not None and amount == item.ledger_amount
            totals[item.lines[0].currency]["matched"] += amount
    return Summary(
        counts=counts,
        line_count=lines,
        transfer_count=transfers,
        duplicate_line_count=duplicates,
        totals={
            c: CurrencyTotals(t["report"], t["ledger"], t["matched"])
            for c, t in sorted(totals.items())
        },
    )
