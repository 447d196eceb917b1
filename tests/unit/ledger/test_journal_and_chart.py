"""The journal hash chain detects edits, and the chart constants match the migration."""

from __future__ import annotations

import re
from pathlib import Path

from services.ledger.domain.chart import SYSTEM_ACCOUNTS
from services.ledger.domain.engine import apply_batch
from services.ledger.domain.journal import GENESIS_HASH, chain_hash, journal_records, verify_chain
from tests.unit.ledger.ledger_support import account, pending, post, posted, working_set

MIGRATION = Path(__file__).parents[3] / "migrations" / "ledger" / "0001_ledger.sql"


def _journal() -> list[tuple[int, bytes, bytes, bytes]]:
    a, b = account(), account()
    ws = working_set([a, b])
    hold = pending(a, b, 5)
    apply_batch(ws, [posted(a, b, 1), hold, post(hold.id, 3)])
    records = journal_records(ws.applied, GENESIS_HASH)
    assert records[0].hash == chain_hash(GENESIS_HASH, records[0].record)
    assert [r.seq for r in records] == [1, 2, 3]
    return [(r.seq, r.record, r.prev_hash, r.hash) for r in records]


def test_intact_chain_verifies() -> None:
    breaks, last_seq, _ = verify_chain(_journal(), 0, GENESIS_HASH)
    assert breaks == [] and last_seq == 3


def test_edited_record_is_reported_once_at_its_seq() -> None:
    rows = _journal()
    seq, record, prev, digest = rows[1]
    rows[1] = (seq, record.replace(b'"amount":5', b'"amount":6'), prev, digest)
    breaks, _, _ = verify_chain(rows, 0, GENESIS_HASH)
    assert [b.seq for b in breaks] == [2]


def test_deleted_record_is_a_gap() -> None:
    rows = _journal()
    del rows[1]
    breaks, _, _ = verify_chain(rows, 0, GENESIS_HASH)
    assert {b.seq for b in breaks} == {3}
    assert any("gap" in b.detail for b in breaks)


def test_chart_constants_match_the_migration() -> None:
    sql = MIGRATION.read_text()
    rows = re.findall(
        r"\('([0-9a-f-]{36})', '(system/[a-z-]+)', 'BRL', '([A-Z_]+)', '([0-9.]+)'", sql
    )
    assert sorted(rows) == sorted(
        (str(a.id), a.owner, a.kind, a.ledger_code) for a in SYSTEM_ACCOUNTS
    )
    assert len(rows) == 12
