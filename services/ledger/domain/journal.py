"""The tamper-evident journal (pure): record bytes and the hash chain.

hash(n) = sha256(hash(n-1) || record(n)), hash(0) = 32 zero bytes. A record
is the canonical JSON of the applied operation (sorted keys, no spaces,
integers as JSON numbers, instants as ISO 8601 UTC microseconds), so the
verifier can recompute it from the stored bytes alone and any edit to a
record, or a deleted/reordered one, breaks every later hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from services.ledger.domain.model import Applied, TransferRecord

GENESIS_HASH = bytes(32)
HASH_BYTES = 32
MAX_RECORD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class JournalRecord:
    seq: int
    transfer_id: str
    record: bytes
    prev_hash: bytes
    hash: bytes


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    assert moment.tzinfo is not None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def record_bytes(seq: int, op: str, transfer: TransferRecord) -> bytes:
    body = {
        "seq": seq,
        "op": op,
        "id": str(transfer.id),
        "kind": transfer.kind.value,
        "debit_account": str(transfer.debit_account),
        "credit_account": str(transfer.credit_account),
        "amount": transfer.amount,
        "currency": transfer.currency,
        "pending_id": str(transfer.pending_id) if transfer.pending_id else None,
        "state": transfer.state.value,
        "code": transfer.code,
        "external_reference": transfer.external_reference,
        "description": transfer.description,
        "expires_at": _instant(transfer.expires_at),
        "at": _instant(transfer.resolved_at if op == "expire" else transfer.created_at),
    }
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert len(data) <= MAX_RECORD_BYTES, len(data)
    return data


def chain_hash(prev_hash: bytes, record: bytes) -> bytes:
    assert len(prev_hash) == HASH_BYTES
    return hashlib.sha256(prev_hash + record).digest()


def journal_records(applied: Sequence[Applied], prev_hash: bytes) -> list[JournalRecord]:
    """The journal records of a batch's applied operations, chained onto prev_hash."""
    out: list[JournalRecord] = []
    for op in applied:
        data = record_bytes(op.journal_seq, "expire" if op.expiry else "transfer", op.transfer)
        digest = chain_hash(prev_hash, data)
        out.append(JournalRecord(op.journal_seq, str(op.transfer.id), data, prev_hash, digest))
        prev_hash = digest
    for a, b in pairwise(out):
        assert b.seq == a.seq + 1, "journal sequence numbers are consecutive"
    return out


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    detail: str


def verify_chain(
    rows: Iterable[tuple[int, bytes, bytes, bytes]], prev_seq: int, prev_hash: bytes
) -> tuple[list[ChainBreak], int, bytes]:
    """Walk (seq, record, prev_hash, hash) rows in seq order from (prev_seq, prev_hash).

    Returns the breaks found and where the walk ended, so a caller can walk a
    long journal page by page.
    """
    breaks: list[ChainBreak] = []
    for seq, record, stored_prev, stored_hash in rows:
        if seq != prev_seq + 1:
            breaks.append(ChainBreak(seq, f"sequence gap: expected {prev_seq + 1}, found {seq}"))
        if bytes(stored_prev) != prev_hash:
            breaks.append(ChainBreak(seq, "prev_hash does not match the previous record's hash"))
        digest = chain_hash(prev_hash, bytes(record))
        if bytes(stored_hash) != digest:
            breaks.append(ChainBreak(seq, "hash does not match sha256(prev_hash || record)"))
        # Continue from the stored hash so one edited record is reported once,
        # not as a break of every later record.
        prev_seq, prev_hash = seq, bytes(stored_hash)
    return breaks, prev_seq, prev_hash
