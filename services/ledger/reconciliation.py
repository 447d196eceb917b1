"""Reconciliation runs: SQL and use cases (CreateReconciliation and the three reads).

The rules live in services/ledger/domain/reconciliation.py; this module loads
the ledger side, stores the run with its items and pages through them. The
format and the rules are documented in docs/PSP_SETTLEMENT_REPORT.md.

A run is written in the caller's transaction (the idempotency interceptor
opens it for CreateReconciliation), so the run, its items, the audit row and
the stored RPC response commit together or not at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.domain import reconciliation as rec
from services.platform import audit, pagination
from services.platform.auth import require_role
from services.platform.db import Database
from services.platform.errors import AppError, failed_precondition, invalid_argument, not_found

ROLES = ("backoffice", "service")
SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Settlement days are Brazilian business days: the report's date is a day in
# São Paulo time (UTC-3, no DST since 2019), not a UTC day.
BUSINESS_TZ = ZoneInfo("America/Sao_Paulo")
EARLIEST_REPORT_DATE = date(2020, 1, 1)
# A line may settle a transfer booked up to a week before the report's day
# (weekends, holidays, slow PSP) or on the next day (we booked a receipt
# after the PSP's cut-off). Beyond that, a match is more likely a reused
# reference than a late settlement.
LOOKBACK = timedelta(days=7)
LOOKAHEAD = timedelta(days=1)
# Movements of the accounts that mirror the PSP: money in flight to or from it.
RECONCILED_ACCOUNT_KINDS = ("PSP_CLEARING",)
# Bounds the memory of one run (a movement is ~200 bytes in Python).
MAX_LEDGER_MOVEMENTS = 200_000
# Items go in by chunks so that no single statement nears the statement timeout.
ITEM_INSERT_CHUNK = 5_000
DEFAULT_RUN_PAGE = 20
MAX_RUN_PAGE = 100
DEFAULT_ITEM_PAGE = 100
MAX_ITEM_PAGE = 1_000
RUNS_LISTING = "reconciliations"

RUN_PREFIX = "reconciliations/"
REPORT_ALREADY_IMPORTED = "REPORT_ALREADY_IMPORTED"
REPORT_INVALID = "REPORT_INVALID"
RECONCILIATION_NOT_FOUND = "RECONCILIATION_NOT_FOUND"
RECONCILIATION_TOO_LARGE = "RECONCILIATION_TOO_LARGE"
NAME_INVALID = "NAME_INVALID"
PAGE_SIZE_INVALID = "PAGE_SIZE_INVALID"
PAGE_TOKEN_INVALID = "PAGE_TOKEN_INVALID"  # noqa: S105 - an error reason, not a secret
INVALID_ARGUMENT = "INVALID_ARGUMENT"


@dataclass(frozen=True, slots=True)
class RunRow:
    id: uuid.UUID
    source: str
    report_date: date
    format: str
    report_sha256: str
    window_start: datetime
    window_end: datetime
    line_count: int
    transfer_count: int
    duplicate_line_count: int
    matched_count: int
    missing_in_ledger_count: int
    missing_in_report_count: int
    amount_mismatch_count: int
    totals: dict[str, dict[str, int]]
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ItemRow:
    reconciliation_id: uuid.UUID
    item_no: int
    status: str
    rule: str
    external_reference: str
    report_lines: list[int]
    psp_references: list[str]
    transfer_ids: list[uuid.UUID]
    report_amount: int | None
    report_currency: str | None
    ledger_amount: int | None
    ledger_currency: str | None
    duplicate_of_line: int | None


@dataclass(frozen=True, slots=True)
class Created:
    run: RunRow
    created: bool  # False: the same report was imported before, this is that run


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunRow]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: list[ItemRow]
    next_page_token: str


# --- SQL ----------------------------------------------------------------------------

# SQL is written out in full, never assembled: every value is a bound parameter
# and what a statement does can be read in one place.

_RUN_BY_SHA = text(
    "SELECT id, source, report_date, format, report_sha256, window_start, window_end,"
    " line_count, transfer_count, duplicate_line_count, matched_count,"
    " missing_in_ledger_count, missing_in_report_count, amount_mismatch_count, totals,"
    " created_by, created_at FROM reconciliations WHERE report_sha256 = :sha"
)
_RUN_BY_ID = text(
    "SELECT id, source, report_date, format, report_sha256, window_start, window_end,"
    " line_count, transfer_count, duplicate_line_count, matched_count,"
    " missing_in_ledger_count, missing_in_report_count, amount_mismatch_count, totals,"
    " created_by, created_at FROM reconciliations WHERE id = :id"
)
_RUNS_FIRST_PAGE = text(
    "SELECT id, source, report_date, format, report_sha256, window_start, window_end,"
    " line_count, transfer_count, duplicate_line_count, matched_count,"
    " missing_in_ledger_count, missing_in_report_count, amount_mismatch_count, totals,"
    " created_by, created_at FROM reconciliations"
    " ORDER BY created_at DESC, id DESC LIMIT :limit"
)
_RUNS_NEXT_PAGE = text(
    "SELECT id, source, report_date, format, report_sha256, window_start, window_end,"
    " line_count, transfer_count, duplicate_line_count, matched_count,"
    " missing_in_ledger_count, missing_in_report_count, amount_mismatch_count, totals,"
    " created_by, created_at FROM reconciliations"
    " WHERE (created_at, id) < (:after_ts, :after_id)"
    " ORDER BY created_at DESC, id DESC LIMIT :limit"
)
_ITEMS = text(
    "SELECT reconciliation_id, item_no, status, rule, external_reference, report_lines,"
    " psp_references, transfer_ids, report_amount, report_currency, ledger_amount,"
    " ledger_currency, duplicate_of_line FROM reconciliation_items"
    " WHERE reconciliation_id = :run AND item_no > :after ORDER BY item_no LIMIT :limit"
)
_ITEMS_WITH_STATUS = text(
    "SELECT reconciliation_id, item_no, status, rule, external_reference, report_lines,"
    " psp_references, transfer_ids, report_amount, report_currency, ledger_amount,"
    " ledger_currency, duplicate_of_line FROM reconciliation_items"
    " WHERE reconciliation_id = :run AND status = :status AND item_no > :after"
    " ORDER BY item_no LIMIT :limit"
)
_RECONCILED_ACCOUNTS = text("SELECT id FROM accounts WHERE kind = ANY(:kinds)").bindparams(
    bindparam("kinds", type_=ARRAY(TEXT))
)
# Posted money only: a POSTED transfer, or the POST_PENDING transfer that
# posted a reservation (it carries the posted amount). Reservations and voids
# move no settled money. A POST_PENDING without a reference of its own takes
# its reservation's: the payment that reserved is the one the PSP settles.
_MOVEMENTS_IN_WINDOW = text(
    "SELECT t.id, COALESCE(NULLIF(t.external_reference, ''), p.external_reference, '') AS ref,"
    " t.amount, t.currency, t.created_at"
    " FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id"
    " WHERE t.kind IN ('POSTED', 'POST_PENDING') AND t.state = 'POSTED'"
    " AND (t.debit_account_id = ANY(:accounts) OR t.credit_account_id = ANY(:accounts))"
    " AND t.created_at >= :start AND t.created_at < :end LIMIT :limit"
).bindparams(bindparam("accounts", type_=ARRAY(UUID)))
# Movements around the day that the report names (late or early settlement).
# The `<> ''` conditions let the planner use the partial reference index.
_MOVEMENTS_BY_REFERENCE = text(
    "SELECT t.id, t.external_reference AS ref, t.amount, t.currency, t.created_at"
    " FROM transfers t"
    " WHERE t.external_reference <> '' AND t.external_reference = ANY(:refs)"
    " AND t.kind IN ('POSTED', 'POST_PENDING') AND t.state = 'POSTED'"
    " AND (t.debit_account_id = ANY(:accounts) OR t.credit_account_id = ANY(:accounts))"
    " AND t.created_at >= :start AND t.created_at < :end"
    " UNION ALL"
    " SELECT t.id, p.external_reference AS ref, t.amount, t.currency, t.created_at"
    " FROM transfers p JOIN transfers t ON t.pending_id = p.id"
    " WHERE p.external_reference <> '' AND p.external_reference = ANY(:refs)"
    " AND t.external_reference = '' AND t.kind = 'POST_PENDING' AND t.state = 'POSTED'"
    " AND (t.debit_account_id = ANY(:accounts) OR t.credit_account_id = ANY(:accounts))"
    " AND t.created_at >= :start AND t.created_at < :end"
    " LIMIT :limit"
).bindparams(bindparam("accounts", type_=ARRAY(UUID)), bindparam("refs", type_=ARRAY(TEXT)))
_INSERT_RUN = text(
    "INSERT INTO reconciliations (id, source, report_date, format, report_sha256, content,"
    " window_start, window_end, line_count, transfer_count, duplicate_line_count,"
    " matched_count, missing_in_ledger_count, missing_in_report_count,"
    " amount_mismatch_count, totals, created_by) VALUES (:id, :source, :report_date, :format,"
    " :sha, :content, :window_start, :window_end, :line_count, :transfer_count,"
    " :duplicate_line_count, :matched, :missing_in_ledger, :missing_in_report,"
    " :amount_mismatch, :totals, :created_by)"
    " ON CONFLICT (report_sha256) DO NOTHING RETURNING id, source, report_date, format,"
    " report_sha256, window_start, window_end, line_count, transfer_count,"
    " duplicate_line_count, matched_count, missing_in_ledger_count, missing_in_report_count,"
    " amount_mismatch_count, totals, created_by, created_at"
).bindparams(bindparam("totals", type_=JSONB))
# One statement per chunk: jsonb_to_recordset turns JSON arrays into the
# integer[]/text[]/uuid[] columns, which unnest() cannot do for ragged arrays.
_INSERT_ITEMS = text(
    "INSERT INTO reconciliation_items (reconciliation_id, item_no, status, rule,"
    " external_reference, report_lines, psp_references, transfer_ids, report_amount,"
    " report_currency, ledger_amount, ledger_currency, duplicate_of_line)"
    " SELECT :run, x.item_no, x.status, x.rule, x.external_reference, x.report_lines,"
    " x.psp_references, x.transfer_ids, x.report_amount, x.report_currency,"
    " x.ledger_amount, x.ledger_currency, x.duplicate_of_line"
    " FROM jsonb_to_recordset(:items) AS x(item_no integer, status text, rule text,"
    " external_reference text, report_lines integer[], psp_references text[],"
    " transfer_ids uuid[], report_amount bigint, report_currency text, ledger_amount bigint,"
    " ledger_currency text, duplicate_of_line integer)"
).bindparams(bindparam("items", type_=JSONB))


def _run(row: Any) -> RunRow:
    return RunRow(**row._mapping)


def _item(row: Any) -> ItemRow:
    return ItemRow(**row._mapping)


async def find_run_by_sha(conn: AsyncConnection, sha: str) -> RunRow | None:
    row = (await conn.execute(_RUN_BY_SHA, {"sha": sha})).first()
    return _run(row) if row else None


async def get_run(conn: AsyncConnection, run_id: uuid.UUID) -> RunRow | None:
    row = (await conn.execute(_RUN_BY_ID, {"id": run_id})).first()
    return _run(row) if row else None


async def load_movements(
    conn: AsyncConnection,
    window: tuple[datetime, datetime],
    references: Sequence[str],
) -> list[rec.LedgerMovement]:
    """Ledger movements of the window, plus those of the lookback range the report names."""
    accounts = list(
        (
            await conn.execute(_RECONCILED_ACCOUNTS, {"kinds": list(RECONCILED_ACCOUNT_KINDS)})
        ).scalars()
    )
    if not accounts:
        return []
    limit = MAX_LEDGER_MOVEMENTS + 1
    rows = list(
        (
            await conn.execute(
                _MOVEMENTS_IN_WINDOW,
                {"accounts": accounts, "start": window[0], "end": window[1], "limit": limit},
            )
        ).all()
    )
    if references:
        rows += (
            await conn.execute(
                _MOVEMENTS_BY_REFERENCE,
                {
                    "accounts": accounts,
                    "refs": list(references),
                    "start": window[0] - LOOKBACK,
                    "end": window[1] + LOOKAHEAD,
                    "limit": limit,
                },
            )
        ).all()
    movements: dict[uuid.UUID, rec.LedgerMovement] = {}
    for row in rows:
        movements[row.id] = rec.LedgerMovement(
            transfer_id=str(row.id),
            external_reference=row.ref,
            amount=int(row.amount),
            currency=row.currency,
            created_at=row.created_at,
        )
    if len(movements) > MAX_LEDGER_MOVEMENTS:
        raise failed_precondition(
            RECONCILIATION_TOO_LARGE,
            f"more than {MAX_LEDGER_MOVEMENTS} ledger transfers to compare; split the report",
        )
    return list(movements.values())


async def insert_run(
    conn: AsyncConnection,
    *,
    run_id: uuid.UUID,
    source: str,
    report_date: date,
    fmt: rec.ReportFormat,
    sha: str,
    content: bytes,
    window: tuple[datetime, datetime],
    summary: rec.Summary,
    created_by: str,
) -> RunRow | None:
    """The stored run, or None when a concurrent import of the same bytes committed first."""
    counts = summary.counts
    row = (
        await conn.execute(
            _INSERT_RUN,
            {
                "id": run_id,
                "source": source,
                "report_date": report_date,
                "format": fmt.value,
                "sha": sha,
                "content": content,
                "window_start": window[0],
                "window_end": window[1],
                "line_count": summary.line_count,
                "transfer_count": summary.transfer_count,
                "duplicate_line_count": summary.duplicate_line_count,
                "matched": counts[rec.MatchStatus.MATCHED],
                "missing_in_ledger": counts[rec.MatchStatus.MISSING_IN_LEDGER],
                "missing_in_report": counts[rec.MatchStatus.MISSING_IN_REPORT],
                "amount_mismatch": counts[rec.MatchStatus.AMOUNT_MISMATCH],
                "totals": {
                    c: {
                        "report": t.report_amount,
                        "ledger": t.ledger_amount,
                        "matched": t.matched_amount,
                    }
                    for c, t in summary.totals.items()
                },
                "created_by": created_by,
            },
        )
    ).first()
    return _run(row) if row else None


async def insert_items(
    conn: AsyncConnection, run_id: uuid.UUID, items: Sequence[rec.MatchItem]
) -> None:
    for start in range(0, len(items), ITEM_INSERT_CHUNK):
        chunk = [
            {
                "item_no": start + offset + 1,
                "status": item.status.value,
                "rule": item.rule.value,
                "external_reference": item.external_reference,
                "report_lines": list(item.report_lines),
                "psp_references": [ln.psp_reference for ln in item.lines],
                "transfer_ids": list(item.transfer_ids),
                "report_amount": item.report_amount,
                "report_currency": item.report_currency,
                "ledger_amount": item.ledger_amount,
                "ledger_currency": item.ledger_currency,
                "duplicate_of_line": item.duplicate_of,
            }
            for offset, item in enumerate(items[start : start + ITEM_INSERT_CHUNK])
        ]
        await conn.execute(_INSERT_ITEMS, {"run": run_id, "items": chunk})


async def list_runs(
    conn: AsyncConnection, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[RunRow]:
    """Newest first, keyset on (created_at, id) so pages never shift."""
    assert 0 < limit <= MAX_RUN_PAGE + 1
    if after is None:
        result = await conn.execute(_RUNS_FIRST_PAGE, {"limit": limit})
    else:
        result = await conn.execute(
            _RUNS_NEXT_PAGE, {"limit": limit, "after_ts": after[0], "after_id": after[1]}
        )
    return [_run(row) for row in result.all()]


async def list_items(
    conn: AsyncConnection, run_id: uuid.UUID, status: str | None, limit: int, after: int
) -> list[ItemRow]:
    """In item order, keyset on item_no (the status index serves the filtered case)."""
    assert 0 < limit <= MAX_ITEM_PAGE + 1
    params: dict[str, Any] = {"run": run_id, "after": after, "limit": limit}
    if status is None:
        result = await conn.execute(_ITEMS, params)
    else:
        result = await conn.execute(_ITEMS_WITH_STATUS, {**params, "status": status})
    return [_item(row) for row in result.all()]


# --- use cases ----------------------------------------------------------------------


def day_window(report_date: date) -> tuple[datetime, datetime]:
    """[start, end) of the report's business day in São Paulo, as aware datetimes."""
    start = datetime.combine(report_date, time.min, tzinfo=BUSINESS_TZ)
    end = datetime.combine(report_date + timedelta(days=1), time.min, tzinfo=BUSINESS_TZ)
    return start, end


@dataclass(frozen=True, slots=True)
class ImportRequest:
    source: str
    report_date: str
    format: rec.ReportFormat | None
    content: bytes


class ReconciliationService:
    def __init__(self, db: Database, *, today: Callable[[], date] | None = None) -> None:
        self._db = db
        # Injectable for tests: the latest report date accepted is tomorrow.
        self._today = today or (lambda: datetime.now(BUSINESS_TZ).date())

    async def create(self, request: ImportRequest) -> Created:
        principal = require_role(*ROLES)
        report_date, fmt = self._validate(request)
        content = request.content
        sha = hashlib.sha256(content).hexdigest()
        async with self._db.transaction() as conn:
            existing = await find_run_by_sha(conn, sha)
            if existing is not None:
                return Created(_same_report(existing, request.source, report_date, fmt), False)
            try:
                # Parsing and matching are CPU work on up to 100,000 lines; a
                # thread keeps the event loop (and the ledger's writer) running.
                lines = await asyncio.to_thread(
                    rec.parse_report, content, fmt, report_date=report_date.isoformat()
                )
            except rec.ReportError as exc:
                raise invalid_argument(
                    REPORT_INVALID, str(exc), [(p.path, p.problem) for p in exc.problems]
                ) from exc
            window = day_window(report_date)
            references = sorted({ln.external_reference for ln in lines})
            movements = await load_movements(conn, window, references)
            items = await asyncio.to_thread(rec.match, lines, movements)
            summary = rec.summarize(items)
            assert summary.line_count == len(lines)
            assert summary.transfer_count == len(movements)
            run_id = uuid.uuid4()
            stored = await insert_run(
                conn,
                run_id=run_id,
                source=request.source,
                report_date=report_date,
                fmt=fmt,
                sha=sha,
                content=content,
                window=window,
                summary=summary,
                created_by=principal.subject,
            )
            if stored is None:
                # A concurrent import of the same bytes committed while we matched.
                winner = await find_run_by_sha(conn, sha)
                assert winner is not None
                return Created(_same_report(winner, request.source, report_date, fmt), False)
            await insert_items(conn, run_id, items)
            await audit.record(
                conn,
                "reconciliation",
                str(run_id),
                "reconciliation.created",
                {
                    "source": request.source,
                    "report_date": report_date.isoformat(),
                    "format": fmt.value,
                    "report_sha256": sha,
                    "lines": summary.line_count,
                    "transfers": summary.transfer_count,
                    "matched": summary.counts[rec.MatchStatus.MATCHED],
                    "missing_in_ledger": summary.counts[rec.MatchStatus.MISSING_IN_LEDGER],
                    "missing_in_report": summary.counts[rec.MatchStatus.MISSING_IN_REPORT],
                    "amount_mismatch": summary.counts[rec.MatchStatus.AMOUNT_MISMATCH],
                },
                principal.subject,
            )
            return Created(stored, True)

    def _validate(self, request: ImportRequest) -> tuple[date, rec.ReportFormat]:
        violations: list[tuple[str, str]] = []
        if not SOURCE.fullmatch(request.source):
            violations.append(("source", "required: 1-64 of [a-z0-9_.-], e.g. psp"))
        report_date: date | None = None
        try:
            report_date = date.fromisoformat(request.report_date)
            if len(request.report_date) != 10:
                raise ValueError("not YYYY-MM-DD")
        except ValueError:
            violations.append(("report_date", "required: a date YYYY-MM-DD"))
            report_date = None
        if report_date is not None:
            latest = self._today() + timedelta(days=1)
            if not EARLIEST_REPORT_DATE <= report_date <= latest:
                violations.append(
                    ("report_date", f"must be between {EARLIEST_REPORT_DATE} and {latest}")
                )
        if request.format is None:
            violations.append(("format", "required: REPORT_FORMAT_CSV or REPORT_FORMAT_JSON"))
        if not request.content:
            violations.append(("content", "required: the report file"))
        elif len(request.content) > rec.MAX_REPORT_BYTES:
            violations.append(("content", f"at most {rec.MAX_REPORT_BYTES} bytes"))
        if violations:
            raise invalid_argument(INVALID_ARGUMENT, "the request has invalid fields", violations)
        assert report_date is not None and request.format is not None
        return report_date, request.format

    async def get(self, name: str) -> RunRow:
        require_role(*ROLES)
        run_id = parse_run_name(name, "name")
        async with self._db.transaction() as conn:
            run = await get_run(conn, run_id)
        if run is None:
            raise not_found(RECONCILIATION_NOT_FOUND, f"{name} does not exist")
        return run

    async def list(self, page_size: int, page_token: str) -> RunPage:
        require_role(*ROLES)
        size = pagination.page_size(page_size, default=DEFAULT_RUN_PAGE, maximum=MAX_RUN_PAGE)
        after = pagination.decode_time_id(page_token, RUNS_LISTING) if page_token else None
        async with self._db.transaction() as conn:
            rows = await list_runs(conn, size + 1, after)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = pagination.encode_time_id(RUNS_LISTING, rows[-1].created_at, rows[-1].id)
        return RunPage(rows, token)

    async def list_items(
        self, parent: str, status: rec.MatchStatus | None, page_size: int, page_token: str
    ) -> ItemPage:
        require_role(*ROLES)
        run_id = parse_run_name(parent, "parent")
        size = pagination.page_size(page_size, default=DEFAULT_ITEM_PAGE, maximum=MAX_ITEM_PAGE)
        status_name = status.value if status is not None else None
        # A token is only valid for the listing that produced it (AIP-158):
        # same run, same status filter.
        listing = f"reconciliation-items:{run_id}:{status_name or ''}"
        after = pagination.decode_int(page_token, listing, minimum=1) if page_token else 0
        async with self._db.transaction() as conn:
            if await get_run(conn, run_id) is None:
                raise not_found(RECONCILIATION_NOT_FOUND, f"{parent} does not exist")
            rows = await list_items(conn, run_id, status_name, size + 1, after)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = pagination.encode_token(listing, rows[-1].item_no)
        return ItemPage(rows, token)


def _same_report(run: RunRow, source: str, report_date: date, fmt: rec.ReportFormat) -> RunRow:
    """The earlier run of these bytes, unless the caller now says they are another report."""
    if (run.source, run.report_date, run.format) != (source, report_date, fmt.value):
        raise AppError(
            grpc.StatusCode.ALREADY_EXISTS,
            REPORT_ALREADY_IMPORTED,
            f"this report was already imported as {RUN_PREFIX}{run.id} "
            f"(source {run.source}, date {run.report_date}, format {run.format})",
            metadata={"reconciliation": f"{RUN_PREFIX}{run.id}"},
        )
    return run


def parse_run_name(name: str, field: str) -> uuid.UUID:
    try:
        if not name.startswith(RUN_PREFIX):
            raise ValueError(name)
        raw = name[len(RUN_PREFIX) :]
        run_id = uuid.UUID(raw)
        if str(run_id) != raw.lower():
            raise ValueError(name)  # braces, urn: or missing dashes: not our names
        return run_id
    except ValueError as exc:
        raise invalid_argument(
            NAME_INVALID,
            f"{field} must look like reconciliations/{{uuid}}",
            [(field, "must be reconciliations/{uuid}")],
        ) from exc
