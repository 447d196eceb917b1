"""The transfer semantics, in memory (pure): apply_batch and expire.

The writer loads the accounts and transfers a batch touches into a
`WorkingSet`, runs every request of the batch through `apply_batch` in
arrival order (each transfer sees the effect of those before it), then
writes `ws.applied` in bulk. Linked chains are all-or-nothing through an undo
log, so a failed chain costs only what it touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from services.ledger.domain import reasons as r
from services.ledger.domain.model import (
    INT64_MAX,
    MAX_BATCH_TRANSFERS,
    AccountState,
    Applied,
    Balances,
    EntryRecord,
    Failure,
    Rejected,
    Side,
    TransferKind,
    TransferRecord,
    TransferResult,
    TransferSpec,
    TransferState,
)

_MISSING = object()


class WorkingSet:
    """The slice of the ledger one batch sees, plus what the batch applied."""

    def __init__(
        self,
        accounts: Mapping[uuid.UUID, AccountState],
        transfers: Mapping[uuid.UUID, TransferRecord],
        *,
        now: datetime,
        next_seq: int,
    ) -> None:
        assert now.tzinfo is not None, "now must be timezone-aware"
        assert next_seq >= 1
        self.accounts = dict(accounts)
        self.transfers = dict(transfers)
        self.now = now
        self.next_seq = next_seq
        self.applied: list[Applied] = []
        # (kind, key, previous value) while a linked chain is open; None otherwise.
        self._undo: list[tuple[str, uuid.UUID, object]] | None = None

    # -- mutation with undo ------------------------------------------------

    def _set_account(self, account: AccountState) -> None:
        if self._undo is not None:
            self._undo.append(("a", account.id, self.accounts[account.id]))
        self.accounts[account.id] = account

    def _set_transfer(self, transfer: TransferRecord) -> None:
        if self._undo is not None:
            self._undo.append(("t", transfer.id, self.transfers.get(transfer.id, _MISSING)))
        self.transfers[transfer.id] = transfer

    def _begin(self) -> tuple[int, int]:
        assert self._undo is None, "chains do not nest"
        self._undo = []
        return len(self.applied), self.next_seq

    def _commit(self) -> None:
        assert self._undo is not None
        self._undo = None

    def _rollback(self, mark: tuple[int, int]) -> None:
        assert self._undo is not None
        for kind, key, previous in reversed(self._undo):
            if kind == "a":
                assert isinstance(previous, AccountState)
                self.accounts[key] = previous
            elif previous is _MISSING:
                del self.transfers[key]
            else:
                assert isinstance(previous, TransferRecord)
                self.transfers[key] = previous
        del self.applied[mark[0] :]
        self.next_seq = mark[1]
        self._undo = None

    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq


def chains(items: Sequence[TransferSpec | Rejected]) -> list[range]:
    """Index ranges of the request's chains (an unlinked transfer is a chain of one)."""
    out: list[range] = []
    start = 0
    for i, item in enumerate(items):
        if not item.linked:
            out.append(range(start, i + 1))
            start = i + 1
    if start < len(items):
        out.append(range(start, len(items)))  # open chain: the caller fails it whole
    return out


def apply_batch(ws: WorkingSet, items: Sequence[TransferSpec | Rejected]) -> list[TransferResult]:
    """Apply one request's transfers in order; one result per item, same order."""
    assert 0 < len(items) <= MAX_BATCH_TRANSFERS, len(items)
    results: list[TransferResult] = []
    for chain in chains(items):
        last = items[chain[-1]]
        if last.linked:
            results.extend(TransferResult(i, r.chain_open(i)) for i in chain)
        elif len(chain) == 1:
            results.append(_apply_item(ws, chain[0], items[chain[0]]))
        else:
            results.extend(_apply_chain(ws, chain, items))
    assert [res.index for res in results] == list(range(len(items)))
    return results


def _apply_chain(
    ws: WorkingSet, chain: range, items: Sequence[TransferSpec | Rejected]
) -> list[TransferResult]:
    mark = ws._begin()
    results: list[TransferResult] = []
    for i in chain:
        result = _apply_item(ws, i, items[i])
        if result.failure is not None:
            ws._rollback(mark)
            return [result if j == i else TransferResult(j, r.linked_failed(j, i)) for j in chain]
        results.append(result)
    ws._commit()
    return results


def _apply_item(ws: WorkingSet, index: int, item: TransferSpec | Rejected) -> TransferResult:
    if isinstance(item, Rejected):
        return TransferResult(index, item.failure)
    existing = ws.transfers.get(item.id)
    if existing is not None:
        differing = first_difference(item, existing, ws.transfers)
        if differing is not None:
            return TransferResult(index, r.exists_with_different_field(index, differing))
        return TransferResult(index, None, existing, replayed=True)
    outcome = (
        _create(ws, index, item)
        if item.kind in (TransferKind.POSTED, TransferKind.PENDING)
        else _resolve(ws, index, item)
    )
    if isinstance(outcome, Failure):
        return TransferResult(index, outcome)
    return TransferResult(index, None, outcome)


def first_difference(
    spec: TransferSpec, stored: TransferRecord, transfers: Mapping[uuid.UUID, TransferRecord]
) -> str | None:
    """The first request field (wire name) on which a retry differs from the stored transfer.

    Fields a POST/VOID may omit (accounts, currency, amount) are compared only
    when given; POST_PENDING amount 0 means "the full pending amount".
    """
    resolves = spec.kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)
    if spec.kind != stored.kind:
        return "kind"
    if spec.debit_account is not None and spec.debit_account != stored.debit_account:
        return "debit_account"
    if spec.credit_account is not None and spec.credit_account != stored.credit_account:
        return "credit_account"
    if spec.kind != TransferKind.VOID_PENDING and spec.amount != stored.amount:
        full = transfers.get(spec.pending_id) if spec.pending_id else None
        full_post = (
            spec.kind == TransferKind.POST_PENDING
            and spec.amount == 0
            and full is not None
            and full.amount == stored.amount
        )
        if not full_post:
            return "amount.minor_units"
    if (spec.currency or not resolves) and spec.currency != stored.currency:
        return "amount.currency_code"
    if spec.pending_id != stored.pending_id:
        return "pending_transfer"
    if spec.timeout_seconds != stored.timeout_seconds:
        return "timeout"
    if spec.linked != stored.linked:
        return "linked"
    for name in ("code", "external_reference", "description"):
        if getattr(spec, name) != getattr(stored, name):
            return name
    return None


def _account_checks(
    ws: WorkingSet, index: int, spec: TransferSpec
) -> tuple[AccountState, AccountState] | Failure:
    assert spec.debit_account is not None and spec.credit_account is not None
    accounts = []
    for name, account_id in (
        ("debit_account", spec.debit_account),
        ("credit_account", spec.credit_account),
    ):
        account = ws.accounts.get(account_id)
        if account is None:
            return r.not_found(index, name, r.ACCOUNT_NOT_FOUND, f"{name} does not exist")
        if account.closed:
            return r.precondition(index, name, r.ACCOUNT_CLOSED, f"{name} is closed")
        if account.currency != spec.currency:
            return r.invalid(
                index,
                "amount.currency_code",
                r.CURRENCY_MISMATCH,
                f"{name} is in {account.currency}, the transfer in {spec.currency}",
            )
        accounts.append(account)
    return accounts[0], accounts[1]


def _create(ws: WorkingSet, index: int, spec: TransferSpec) -> TransferRecord | Failure:
    checked = _account_checks(ws, index, spec)
    if isinstance(checked, Failure):
        return checked
    debit, credit = checked
    amount = spec.amount
    db, cb = debit.balances, credit.balances
    if (
        db.debits_posted + db.debits_pending + amount > INT64_MAX
        or cb.credits_posted + cb.credits_pending + amount > INT64_MAX
    ):
        return r.invalid(index, "amount.minor_units", r.OVERFLOW, "a balance would exceed 2^63-1")
    if (
        debit.debits_must_not_exceed_credits
        and db.debits_posted + db.debits_pending + amount > db.credits_posted
    ):
        return r.precondition(
            index, "debit_account", r.INSUFFICIENT_FUNDS, "insufficient funds in debit_account"
        )
    if (
        credit.credits_must_not_exceed_debits
        and cb.credits_posted + cb.credits_pending + amount > cb.debits_posted
    ):
        return r.precondition(
            index,
            "credit_account",
            r.CREDITS_EXCEED_DEBITS,
            "credit_account's credits would exceed its debits",
        )
    pending = spec.kind == TransferKind.PENDING
    seq = ws._take_seq()
    record = TransferRecord(
        id=spec.id,
        kind=spec.kind,
        debit_account=debit.id,
        credit_account=credit.id,
        amount=amount,
        currency=spec.currency,
        pending_id=None,
        timeout_seconds=spec.timeout_seconds,
        expires_at=(
            ws.now + timedelta(seconds=spec.timeout_seconds)
            if pending and spec.timeout_seconds
            else None
        ),
        linked=spec.linked,
        code=spec.code,
        external_reference=spec.external_reference,
        description=spec.description,
        state=TransferState.PENDING if pending else TransferState.POSTED,
        posted_amount=None,
        created_at=ws.now,
        resolved_at=None,
        journal_seq=seq,
    )
    posted, held = (0, amount) if pending else (amount, 0)
    entries = _move(ws, record, posted=posted, held=held, released=0)
    ws._set_transfer(record)
    ws.applied.append(Applied(seq, record, None, entries))
    return record


def _resolve(ws: WorkingSet, index: int, spec: TransferSpec) -> TransferRecord | Failure:
    assert spec.pending_id is not None
    pending = ws.transfers.get(spec.pending_id)
    if pending is None:
        return r.not_found(
            index,
            "pending_transfer",
            r.PENDING_TRANSFER_NOT_FOUND,
            "pending_transfer does not exist",
        )
    if pending.kind != TransferKind.PENDING:
        return r.precondition(
            index,
            "pending_transfer",
            r.PENDING_TRANSFER_NOT_PENDING,
            "pending_transfer is not a PENDING transfer",
        )
    if pending.state != TransferState.PENDING:
        failure = r.precondition(
            index,
            "pending_transfer",
            r.PENDING_TRANSFER_ALREADY_RESOLVED,
            f"pending_transfer is already {pending.state.value}",
        )
        return replace(failure, metadata={"state": pending.state.value})
    if pending.expires_at is not None and ws.now >= pending.expires_at:
        return r.precondition(
            index, "pending_transfer", r.PENDING_TRANSFER_EXPIRED, "pending_transfer has expired"
        )
    for name, given, actual in (
        ("debit_account", spec.debit_account, pending.debit_account),
        ("credit_account", spec.credit_account, pending.credit_account),
    ):
        if given is not None and given != actual:
            return r.invalid(
                index,
                name,
                r.PENDING_TRANSFER_MISMATCH,
                f"{name} differs from the pending transfer's",
            )
    if spec.currency and spec.currency != pending.currency:
        return r.invalid(
            index,
            "amount.currency_code",
            r.CURRENCY_MISMATCH,
            f"the pending transfer is in {pending.currency}",
        )
    post = spec.kind == TransferKind.POST_PENDING
    amount = (spec.amount or pending.amount) if post else pending.amount
    if amount > pending.amount:
        return r.invalid(
            index,
            "amount.minor_units",
            r.AMOUNT_EXCEEDS_PENDING,
            f"amount exceeds the pending amount {pending.amount}",
        )
    seq = ws._take_seq()
    state = TransferState.POSTED if post else TransferState.VOIDED
    record = TransferRecord(
        id=spec.id,
        kind=spec.kind,
        debit_account=pending.debit_account,
        credit_account=pending.credit_account,
        amount=amount,
        currency=pending.currency,
        pending_id=pending.id,
        timeout_seconds=0,
        expires_at=None,
        linked=spec.linked,
        code=spec.code,
        external_reference=spec.external_reference,
        description=spec.description,
        state=state,
        posted_amount=None,
        created_at=ws.now,
        resolved_at=None,
        journal_seq=seq,
    )
    resolved = replace(
        pending, state=state, posted_amount=amount if post else None, resolved_at=ws.now
    )
    entries = _move(ws, record, posted=amount if post else 0, held=0, released=pending.amount)
    ws._set_transfer(record)
    ws._set_transfer(resolved)
    ws.applied.append(Applied(seq, record, resolved, entries))
    return record


def expire(ws: WorkingSet, pending_ids: Iterable[uuid.UUID]) -> list[Applied]:
    """Expire the given reservations that are still pending and due at ws.now."""
    assert ws._undo is None, "expiry never runs inside a chain"
    out: list[Applied] = []
    for pending_id in pending_ids:
        pending = ws.transfers.get(pending_id)
        if (
            pending is None
            or pending.state != TransferState.PENDING
            or pending.expires_at is None
            or pending.expires_at > ws.now
        ):
            continue  # resolved meanwhile (earlier in this batch or by another writer)
        seq = ws._take_seq()
        expired = replace(pending, state=TransferState.EXPIRED, resolved_at=ws.now)
        entries = _move(ws, expired, posted=0, held=0, released=pending.amount, seq=seq)
        ws._set_transfer(expired)
        applied = Applied(seq, expired, None, entries, expiry=True)
        ws.applied.append(applied)
        out.append(applied)
    return out


def _move(
    ws: WorkingSet,
    record: TransferRecord,
    *,
    posted: int,
    held: int,
    released: int,
    seq: int | None = None,
) -> tuple[EntryRecord, EntryRecord]:
    """Apply one operation to both accounts: +posted, +held, -released pending."""
    assert posted >= 0 and held >= 0 and released >= 0
    assert (posted > 0) + (held > 0) + (released > 0) >= 1
    seq = seq if seq is not None else record.journal_seq
    debit = ws.accounts[record.debit_account]
    credit = ws.accounts[record.credit_account]
    d, c = debit.balances, credit.balances
    new_d = Balances(
        debits_posted=d.debits_posted + posted,
        credits_posted=d.credits_posted,
        debits_pending=d.debits_pending + held - released,
        credits_pending=d.credits_pending,
    )
    new_c = Balances(
        debits_posted=c.debits_posted,
        credits_posted=c.credits_posted + posted,
        debits_pending=c.debits_pending,
        credits_pending=c.credits_pending + held - released,
    )
    # Direct construction, not dataclasses.replace (which introspects the
    # fields on every call): this runs twice per transfer.
    ws._set_account(_with_balances(debit, new_d))
    ws._set_account(_with_balances(credit, new_c))
    amount = posted or held or released
    state = record.state
    entries = (
        EntryRecord(
            account_id=debit.id,
            transfer_id=record.id,
            counterparty_id=credit.id,
            journal_seq=seq,
            side=Side.DEBIT,
            amount=amount,
            posted_delta=posted,
            pending_delta=held - released,
            state=state,
            balances=new_d,
            created_at=ws.now,
        ),
        EntryRecord(
            account_id=credit.id,
            transfer_id=record.id,
            counterparty_id=debit.id,
            journal_seq=seq,
            side=Side.CREDIT,
            amount=amount,
            posted_delta=posted,
            pending_delta=held - released,
            state=state,
            balances=new_c,
            created_at=ws.now,
        ),
    )
    return entries


def _with_balances(account: AccountState, balances: Balances) -> AccountState:
    return AccountState(
        id=account.id,
        currency=account.currency,
        debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
        closed=account.closed,
        balances=balances,
    )
