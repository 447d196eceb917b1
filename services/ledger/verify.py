"""Ledger verification: the VerifyLedger RPC and `python -m services.ledger.verify`.

Runs in one REPEATABLE READ, READ ONLY transaction: a consistent snapshot
while the writer keeps committing. Checks: stored balances = sums of entry
deltas (and = the last entry's balances), debits = credits per currency
(posted and pending), every flag constraint, the journal hash chain (walked
page by page, bounded memory), and no reservation resolved twice.

CLI: uses FINTECH_DATABASE_URL; prints the report; exit status 1 when any
discrepancy is found, 0 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.domain.journal import GENESIS_HASH, verify_chain
from services.platform.db import Database

DEFAULT_MAX_DISCREPANCIES = 100
MAX_DISCREPANCIES = 10_000
JOURNAL_PAGE = 5_000
VERIFY_STATEMENT_TIMEOUT_MS = 60_000

BALANCE_MISMATCH = "BALANCE_MISMATCH"
UNBALANCED_CURRENCY = "UNBALANCED_CURRENCY"
FLAG_VIOLATION = "FLAG_VIOLATION"
HASH_CHAIN_BROKEN = "HASH_CHAIN_BROKEN"
PENDING_RESOLVED_TWICE = "PENDING_RESOLVED_TWICE"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str
    subject: str
    detail: str
    currency: str = ""
    expected: int | None = None
    actual: int | None = None


@dataclass
class Report:
    max_discrepancies: int
    accounts_checked: int = 0
    transfers_checked: int = 0
    journal_records_checked: int = 0
    verify_time: datetime | None = None
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def add(self, d: Discrepancy) -> None:
        if len(self.discrepancies) < self.max_discrepancies:
            self.discrepancies.append(d)


_ACCOUNTS = text(
    "SELECT a.id, a.currency, a.debits_must_not_exceed_credits AS dmnec,"
    " a.credits_must_not_exceed_debits AS cmned,"
    " a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,"
    " coalesce(s.dp, 0) AS e_dp, coalesce(s.cp, 0) AS e_cp,"
    " coalesce(s.dpe, 0) AS e_dpe, coalesce(s.cpe, 0) AS e_cpe"
    " FROM accounts a LEFT JOIN ("
    "  SELECT account_id,"
    "   sum(posted_delta) FILTER (WHERE side = 'D') AS dp,"
    "   sum(posted_delta) FILTER (WHERE side = 'C') AS cp,"
    "   sum(pending_delta) FILTER (WHERE side = 'D') AS dpe,"
    "   sum(pending_delta) FILTER (WHERE side = 'C') AS cpe"
    "  FROM entries GROUP BY account_id) s ON s.account_id = a.id"
)
_LAST_ENTRY_MISMATCH = text(
    "SELECT a.id, l.debits_posted, l.credits_posted, l.debits_pending, l.credits_pending"
    " FROM accounts a JOIN LATERAL (SELECT * FROM entries e WHERE e.account_id = a.id"
    "  ORDER BY journal_seq DESC LIMIT 1) l ON true"
    " WHERE (l.debits_posted, l.credits_posted, l.debits_pending, l.credits_pending)"
    "  <> (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)"
)
_RESOLVED_TWICE = text(
    "SELECT p.id, p.state, count(r.id) AS resolutions FROM transfers p"
    " JOIN transfers r ON r.pending_id = p.id GROUP BY p.id, p.state"
    " HAVING count(r.id) > 1 OR p.state = 'EXPIRED' OR p.state = 'PENDING'"
)
# entries carry no foreign keys (see the migration): orphans are looked for here.
_ORPHAN_ENTRIES = text(
    "SELECT e.journal_seq, e.side, e.account_id FROM entries e"
    " LEFT JOIN transfers t ON t.id = e.transfer_id"
    " LEFT JOIN accounts a ON a.id = e.account_id"
    " WHERE t.id IS NULL OR a.id IS NULL ORDER BY e.journal_seq LIMIT :n"
)
_JOURNAL_PAGE = text(
    "SELECT seq, record, prev_hash, hash FROM journal WHERE seq > :after ORDER BY seq LIMIT :n"
)


async def verify(
    conn: AsyncConnection, max_discrepancies: int = DEFAULT_MAX_DISCREPANCIES
) -> Report:
    """Verify the ledger through `conn`, which must be a fresh transaction."""
    assert 1 <= max_discrepancies <= MAX_DISCREPANCIES
    await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    # The service pool's 5 s statement timeout suits requests, not full scans.
    await conn.execute(text(f"SET LOCAL statement_timeout = {VERIFY_STATEMENT_TIMEOUT_MS}"))
    report = Report(max_discrepancies)
    report.verify_time = (await conn.execute(text("SELECT now()"))).scalar_one()
    await _balances(conn, report)
    report.transfers_checked = int(
        (await conn.execute(text("SELECT count(*) FROM transfers"))).scalar_one()
    )
    for row in (await conn.execute(_RESOLVED_TWICE)).all():
        report.add(
            Discrepancy(
                PENDING_RESOLVED_TWICE,
                f"transfers/{row.id}",
                f"reservation in state {row.state} has {row.resolutions} post/void transfers",
            )
        )
    for row in (await conn.execute(_ORPHAN_ENTRIES, {"n": max_discrepancies})).all():
        report.add(
            Discrepancy(
                BALANCE_MISMATCH,
                f"accounts/{row.account_id}/entries/{row.journal_seq}",
                f"{row.side} entry of journal record {row.journal_seq} names a missing"
                " transfer or account",
            )
        )
    await _journal(conn, report)
    return report


async def _balances(conn: AsyncConnection, report: Report) -> None:
    totals: dict[str, list[int]] = {}
    for row in (await conn.execute(_ACCOUNTS)).all():
        report.accounts_checked += 1
        subject = f"accounts/{row.id}"
        stored = (row.debits_posted, row.credits_posted, row.debits_pending, row.credits_pending)
        summed = (row.e_dp, row.e_cp, row.e_dpe, row.e_cpe)
        names = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
        for name, want, got in zip(names, summed, stored, strict=True):
            if int(want) != int(got):
                report.add(
                    Discrepancy(
                        BALANCE_MISMATCH,
                        subject,
                        f"{name}: stored {got}, sum of entries {want}",
                        row.currency,
                        int(want),
                        int(got),
                    )
                )
        t = totals.setdefault(row.currency, [0, 0, 0, 0])
        for i, value in enumerate(stored):
            t[i] += int(value)
        debits = int(row.debits_posted) + int(row.debits_pending)
        credits = int(row.credits_posted) + int(row.credits_pending)
        if row.dmnec and debits > int(row.credits_posted):
            report.add(
                Discrepancy(
                    FLAG_VIOLATION,
                    subject,
                    f"debits_must_not_exceed_credits: debits {debits} > credits_posted"
                    f" {row.credits_posted}",
                    row.currency,
                    int(row.credits_posted),
                    debits,
                )
            )
        if row.cmned and credits > int(row.debits_posted):
            report.add(
                Discrepancy(
                    FLAG_VIOLATION,
                    subject,
                    f"credits_must_not_exceed_debits: credits {credits} > debits_posted"
                    f" {row.debits_posted}",
                    row.currency,
                    int(row.debits_posted),
                    credits,
                )
            )
    for row in (await conn.execute(_LAST_ENTRY_MISMATCH)).all():
        report.add(
            Discrepancy(
                BALANCE_MISMATCH,
                f"accounts/{row.id}",
                "stored balances differ from the balances after the account's last entry",
            )
        )
    for currency, (dp, cp, dpe, cpe) in sorted(totals.items()):
        if dp != cp:
            report.add(
                Discrepancy(
                    UNBALANCED_CURRENCY,
                    currency,
                    f"posted debits {dp} != posted credits {cp}",
                    currency,
                    dp,
                    cp,
                )
            )
        if dpe != cpe:
            report.add(
                Discrepancy(
                    UNBALANCED_CURRENCY,
                    currency,
                    f"pending debits {dpe} != pending credits {cpe}",
                    currency,
                    dpe,
                    cpe,
                )
            )


async def _journal(conn: AsyncConnection, report: Report) -> None:
    prev_seq, prev_hash = 0, GENESIS_HASH
    while True:
        rows = (await conn.execute(_JOURNAL_PAGE, {"after": prev_seq, "n": JOURNAL_PAGE})).all()
        if not rows:
            break
        breaks, prev_seq, prev_hash = verify_chain(
            ((r.seq, bytes(r.record), bytes(r.prev_hash), bytes(r.hash)) for r in rows),
            prev_seq,
            prev_hash,
        )
        report.journal_records_checked += len(rows)
        for b in breaks:
            report.add(Discrepancy(HASH_CHAIN_BROKEN, f"journal/{b.seq}", b.detail))
    head = (await conn.execute(text("SELECT seq, hash FROM journal_head"))).one()
    if int(head.seq) != prev_seq or bytes(head.hash) != prev_hash:
        report.add(
            Discrepancy(
                HASH_CHAIN_BROKEN,
                "journal_head",
                f"head is seq {head.seq}, the journal ends at seq {prev_seq}",
            )
        )


async def verify_database(url: str, max_discrepancies: int = DEFAULT_MAX_DISCREPANCIES) -> Report:
    db = Database(url, pool_size=1, statement_timeout_ms=VERIFY_STATEMENT_TIMEOUT_MS)
    try:
        async with db.separate_transaction() as conn:
            return await verify(conn, max_discrepancies)
    finally:
        await db.close()


def main() -> int:
    url = os.environ.get("FINTECH_DATABASE_URL")
    if not url:
        print("FINTECH_DATABASE_URL is not set", file=sys.stderr)
        return 2
    report = asyncio.run(verify_database(url, MAX_DISCREPANCIES))
    print(
        f"accounts_checked: {report.accounts_checked}\n"
        f"transfers_checked: {report.transfers_checked}\n"
        f"journal_records_checked: {report.journal_records_checked}\n"
        f"discrepancies: {len(report.discrepancies)}"
    )
    for d in report.discrepancies:
        print(f"{d.kind} {d.subject}: {d.detail}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
