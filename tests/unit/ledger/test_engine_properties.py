"""Property tests: random sequences of transfers, holds, posts, voids, expiries
and retries (plain and in linked chains) keep the ledger's invariants."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger.domain.engine import WorkingSet, apply_batch, chains, expire
from services.ledger.domain.model import (
    AccountState,
    Balances,
    Rejected,
    Side,
    TransferKind,
    TransferSpec,
    TransferState,
)
from services.ledger.domain.reasons import invalid
from tests.unit.ledger.ledger_support import NOW, account, spec

ACCOUNTS = 6


@dataclass(frozen=True)
class Op:
    """A generated operation; indices are resolved against the run's state."""

    kind: str  # posted, pending, post, void, retry, mutate, reject, tick
    debit: int
    credit: int
    amount: int
    target: int  # which earlier pending / transfer it refers to
    timeout: int
    linked: bool


ops = st.builds(
    Op,
    kind=st.sampled_from(
        ["posted", "posted", "pending", "post", "void", "retry", "mutate", "reject", "tick"]
    ),
    debit=st.integers(0, ACCOUNTS - 1),
    credit=st.integers(0, ACCOUNTS - 1),
    amount=st.integers(0, 600),
    target=st.integers(0, 50),
    timeout=st.sampled_from([0, 0, 5, 30]),
    linked=st.booleans(),
)
batches = st.lists(st.lists(ops, min_size=1, max_size=8), min_size=1, max_size=12)


def _accounts() -> list[AccountState]:
    # Two constrained each way, two free; one USD account to exercise mismatches.
    return [
        account(no_overdraft=True),
        account(no_overdraft=True),
        account(no_credit_overrun=True),
        account(),
        account(),
        account(currency="USD"),
    ]


def _to_item(
    op: Op,
    accounts: list[AccountState],
    sent: list[TransferSpec],
    pendings: list[uuid.UUID],
    i: int,
) -> TransferSpec | Rejected | None:
    debit, credit = accounts[op.debit], accounts[op.credit]
    if op.kind in ("posted", "pending"):
        if debit.id == credit.id:
            credit = accounts[(op.credit + 1) % ACCOUNTS]
        kind = TransferKind.POSTED if op.kind == "posted" else TransferKind.PENDING
        return spec(
            kind,
            debit.id,
            credit.id,
            max(op.amount, 1),
            timeout_seconds=op.timeout if kind == TransferKind.PENDING else 0,
            linked=op.linked,
        )
    if op.kind in ("post", "void") and pendings:
        target = pendings[op.target % len(pendings)]
        kind = TransferKind.POST_PENDING if op.kind == "post" else TransferKind.VOID_PENDING
        return spec(
            kind,
            None,
            None,
            op.amount if op.kind == "post" else 0,
            currency="",
            pending_id=target,
            linked=op.linked,
        )
    if op.kind == "retry" and sent:
        return replace(sent[op.target % len(sent)], linked=op.linked)
    if op.kind == "mutate" and sent:
        original = sent[op.target % len(sent)]
        return replace(original, code=original.code + "X", linked=op.linked)
    if op.kind == "reject":
        return Rejected(invalid(i, "amount.minor_units", "AMOUNT_INVALID", "generated"), op.linked)
    return None


def _check_invariants(ws: WorkingSet, start: dict[uuid.UUID, AccountState]) -> None:
    # debits == credits per currency, posted and pending separately.
    totals: dict[str, Counter[str]] = {}
    for a in ws.accounts.values():
        t = totals.setdefault(a.currency, Counter())
        b = a.balances
        t["dp"] += b.debits_posted
        t["cp"] += b.credits_posted
        t["dpe"] += b.debits_pending
        t["cpe"] += b.credits_pending
    for t in totals.values():
        assert t["dp"] == t["cp"] and t["dpe"] == t["cpe"]
    # Flags hold.
    for a in ws.accounts.values():
        b = a.balances
        if a.debits_must_not_exceed_credits:
            assert b.debits_posted + b.debits_pending <= b.credits_posted
        if a.credits_must_not_exceed_debits:
            assert b.credits_posted + b.credits_pending <= b.debits_posted
    # Balances equal the sum of entries (from zero), and the last entry's balances.
    sums: dict[uuid.UUID, list[int]] = {a: [0, 0, 0, 0] for a in start}
    last: dict[uuid.UUID, Balances] = {}
    for op in ws.applied:
        for e in op.entries:
            s = sums[e.account_id]
            if e.side == Side.DEBIT:
                s[0] += e.posted_delta
                s[2] += e.pending_delta
            else:
                s[1] += e.posted_delta
                s[3] += e.pending_delta
            last[e.account_id] = e.balances
    for account_id, (dp, cp, dpe, cpe) in sums.items():
        assert ws.accounts[account_id].balances == Balances(dp, cp, dpe, cpe)
        if account_id in last:
            assert last[account_id] == ws.accounts[account_id].balances
    # Each reservation resolved at most once; journal sequence dense from 1.
    resolutions = Counter(
        op.resolved.id if op.resolved else op.transfer.id
        for op in ws.applied
        if op.resolved is not None or op.expiry
    )
    assert all(n == 1 for n in resolutions.values())
    assert [op.journal_seq for op in ws.applied] == list(range(1, len(ws.applied) + 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_random_operation_sequences_keep_the_invariants(batch_ops: list[list[Op]]) -> None:
    accounts = _accounts()
    start = {a.id: a for a in accounts}
    ws = WorkingSet(start, {}, now=NOW, next_seq=1)
    # Fund the constrained accounts so that some debits succeed.
    ws.accounts[accounts[0].id] = replace(accounts[0])
    funding = [spec(TransferKind.POSTED, accounts[3].id, a.id, 1_000) for a in accounts[:2]]
    funding.append(spec(TransferKind.POSTED, accounts[2].id, accounts[4].id, 1_000))
    assert all(x.failure is None for x in apply_batch(ws, funding))
    sent: list[TransferSpec] = list(funding)
    pendings: list[uuid.UUID] = []
    for ops_ in batch_ops:
        items: list[TransferSpec | Rejected] = []
        for op in ops_:
            if op.kind == "tick":
                ws.now += timedelta(seconds=10)
                expire(ws, [p for p in pendings])
                continue
            item = _to_item(op, accounts, sent, pendings, len(items))
            if item is not None:
                items.append(item)
        if not items:
            continue
        snapshot = (dict(ws.accounts), len(ws.applied))
        results = apply_batch(ws, items)
        for chain in chains(items):
            outcomes = {results[i].failure is None for i in chain}
            assert len(outcomes) == 1, "a linked chain is all or nothing"
        if all(r.replayed or r.failure is not None for r in results):
            assert (dict(ws.accounts), len(ws.applied)) == snapshot, "replays have no effect"
        for item, res in zip(items, results, strict=True):
            if res.failure is None and isinstance(item, TransferSpec) and not res.replayed:
                sent.append(item)
                if item.kind == TransferKind.PENDING:
                    pendings.append(item.id)
            if res.replayed:
                assert res.transfer is not None and isinstance(item, TransferSpec)
                assert res.transfer.id == item.id
        _check_invariants(ws, start)
    for pending_id in pendings:
        assert ws.transfers[pending_id].kind == TransferKind.PENDING
        state = ws.transfers[pending_id].state
        assert state in set(TransferState)
