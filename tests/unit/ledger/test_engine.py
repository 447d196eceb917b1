"""Example tests of the transfer semantics: one per rule and error reason."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from services.ledger.domain import reasons as r
from services.ledger.domain.engine import apply_batch, expire
from services.ledger.domain.model import (
    INT64_MAX,
    Balances,
    Code,
    Rejected,
    TransferState,
)
from tests.unit.ledger.ledger_support import (
    NOW,
    account,
    pending,
    post,
    posted,
    void,
    working_set,
)


def test_posted_transfer_moves_posted_balances_and_writes_two_entries() -> None:
    bank, wallet = account(), account(no_overdraft=True)
    ws = working_set([bank, wallet])
    [res] = apply_batch(ws, [posted(bank, wallet, 1_000)])
    assert res.failure is None and res.transfer is not None
    assert res.transfer.state == TransferState.POSTED and res.transfer.journal_seq == 1
    assert ws.accounts[bank.id].balances == Balances(debits_posted=1_000)
    assert ws.accounts[wallet.id].balances == Balances(credits_posted=1_000)
    [op] = ws.applied
    debit_entry, credit_entry = op.entries
    assert (debit_entry.account_id, credit_entry.account_id) == (bank.id, wallet.id)
    assert credit_entry.balances == Balances(credits_posted=1_000)


def test_insufficient_funds_changes_nothing() -> None:
    wallet, other = account(no_overdraft=True), account()
    ws = working_set([wallet, other])
    [res] = apply_batch(ws, [posted(wallet, other, 1)])
    assert res.failure is not None
    assert (res.failure.code, res.failure.reason) == (
        Code.FAILED_PRECONDITION,
        r.INSUFFICIENT_FUNDS,
    )
    assert res.failure.field == "transfers[0].debit_account"
    assert ws.accounts[wallet.id].balances == Balances() and not ws.applied


def test_pending_counts_against_available_at_once() -> None:
    bank, wallet, shop = account(), account(no_overdraft=True), account()
    ws = working_set([bank, wallet, shop])
    results = apply_batch(
        ws, [posted(bank, wallet, 100), pending(wallet, shop, 80), posted(wallet, shop, 30)]
    )
    assert [x.failure is None for x in results] == [True, True, False]
    assert results[2].failure is not None and results[2].failure.reason == r.INSUFFICIENT_FUNDS


def test_credits_must_not_exceed_debits() -> None:
    src, capped = account(), account(no_credit_overrun=True)
    ws = working_set([src, capped])
    [res] = apply_batch(ws, [posted(src, capped, 5)])
    assert res.failure is not None and res.failure.reason == r.CREDITS_EXCEED_DEBITS
    assert res.failure.field == "transfers[0].credit_account"


def test_partial_post_releases_the_rest_and_full_post_is_amount_zero() -> None:
    bank, wallet, shop = account(), account(no_overdraft=True), account()
    ws = working_set([bank, wallet, shop])
    hold1, hold2 = pending(wallet, shop, 60), pending(wallet, shop, 30)
    results = apply_batch(
        ws, [posted(bank, wallet, 100), hold1, hold2, post(hold1.id, 40), post(hold2.id)]
    )
    assert all(x.failure is None for x in results)
    assert ws.accounts[wallet.id].balances == Balances(
        debits_posted=70, credits_posted=100, debits_pending=0
    )
    assert ws.transfers[hold1.id].state == TransferState.POSTED
    assert ws.transfers[hold1.id].posted_amount == 40
    assert ws.transfers[hold2.id].posted_amount == 30


def test_post_more_than_pending_fails() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    hold = pending(a, b, 10)
    res = apply_batch(ws, [hold, post(hold.id, 11)])[1]
    assert res.failure is not None and res.failure.reason == r.AMOUNT_EXCEEDS_PENDING
    assert res.failure.field == "transfers[1].amount.minor_units"


def test_void_releases_and_second_resolution_fails() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    hold = pending(a, b, 10)
    results = apply_batch(ws, [hold, void(hold.id), post(hold.id)])
    assert results[1].failure is None
    assert results[2].failure is not None
    assert results[2].failure.reason == r.PENDING_TRANSFER_ALREADY_RESOLVED
    assert results[2].failure.metadata == {"state": "VOIDED"}
    assert ws.accounts[a.id].balances == Balances()


def test_resolving_unknown_or_non_pending_transfer() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    plain = posted(a, b, 5)
    results = apply_batch(ws, [plain, post(uuid.uuid4()), void(plain.id)])
    assert results[1].failure is not None
    assert (results[1].failure.code, results[1].failure.reason) == (
        Code.NOT_FOUND,
        r.PENDING_TRANSFER_NOT_FOUND,
    )
    assert results[2].failure is not None
    assert results[2].failure.reason == r.PENDING_TRANSFER_NOT_PENDING


def test_post_naming_other_accounts_than_the_pending_fails() -> None:
    a, b, c = account(), account(), account()
    ws = working_set([a, b, c])
    hold = pending(a, b, 10)
    res = apply_batch(ws, [hold, replace(post(hold.id), credit_account=c.id)])[1]
    assert res.failure is not None and res.failure.reason == r.PENDING_TRANSFER_MISMATCH
    assert res.failure.field == "transfers[1].credit_account"


def test_expiry_releases_due_reservations_once() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    hold = pending(a, b, 10, timeout_seconds=60)
    apply_batch(ws, [hold])
    assert ws.transfers[hold.id].expires_at == NOW + timedelta(seconds=60)
    assert expire(ws, [hold.id]) == []  # not due yet
    ws.now = NOW + timedelta(seconds=60)
    [op] = expire(ws, [hold.id])
    assert op.expiry and op.transfer.state == TransferState.EXPIRED
    assert ws.accounts[a.id].balances == Balances()
    assert expire(ws, [hold.id]) == []
    res = apply_batch(ws, [post(hold.id)])[0]
    assert res.failure is not None and res.failure.reason == r.PENDING_TRANSFER_ALREADY_RESOLVED


def test_post_after_deadline_but_before_the_ticker_fails_as_expired() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    hold = pending(a, b, 10, timeout_seconds=1)
    apply_batch(ws, [hold])
    ws.now = NOW + timedelta(seconds=1)
    res = apply_batch(ws, [post(hold.id)])[0]
    assert res.failure is not None and res.failure.reason == r.PENDING_TRANSFER_EXPIRED


def test_unknown_closed_and_currency_mismatch_accounts() -> None:
    brl, usd, closed = account(), account(currency="USD"), account(closed=True)
    ws = working_set([brl, usd, closed])
    ghost = account()
    results = apply_batch(ws, [posted(brl, ghost, 1), posted(brl, closed, 1), posted(brl, usd, 1)])
    reasons = [(x.failure.code, x.failure.reason, x.failure.field) for x in results if x.failure]
    assert reasons == [
        (Code.NOT_FOUND, r.ACCOUNT_NOT_FOUND, "transfers[0].credit_account"),
        (Code.FAILED_PRECONDITION, r.ACCOUNT_CLOSED, "transfers[1].credit_account"),
        (Code.INVALID_ARGUMENT, r.CURRENCY_MISMATCH, "transfers[2].amount.currency_code"),
    ]


def test_balance_overflow_is_refused() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    results = apply_batch(ws, [posted(a, b, INT64_MAX), posted(a, b, 1)])
    assert results[0].failure is None
    assert results[1].failure is not None and results[1].failure.reason == r.OVERFLOW


def test_linked_chain_is_all_or_nothing() -> None:
    bank, wallet, shop = account(), account(no_overdraft=True), account()
    ws = working_set([bank, wallet, shop])
    apply_batch(ws, [posted(bank, wallet, 50)])
    before = dict(ws.accounts)
    chain = [
        posted(wallet, shop, 30, linked=True),
        pending(wallet, shop, 10, linked=True),
        posted(wallet, shop, 20),  # 30 + 10 + 20 > 50
        posted(bank, shop, 1),  # not in the chain
    ]
    results = apply_batch(ws, chain)
    assert [x.failure.reason if x.failure else None for x in results] == [
        r.LINKED_EVENT_FAILED,
        r.LINKED_EVENT_FAILED,
        r.INSUFFICIENT_FUNDS,
        None,
    ]
    assert results[0].failure is not None and results[0].failure.metadata == {"failed_index": "2"}
    assert ws.accounts[wallet.id] == before[wallet.id]
    assert chain[0].id not in ws.transfers and chain[1].id not in ws.transfers
    assert [op.journal_seq for op in ws.applied] == [1, 2]


def test_open_chain_fails_every_member() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    results = apply_batch(
        ws, [posted(a, b, 1), posted(a, b, 1, linked=True), posted(a, b, 1, linked=True)]
    )
    assert results[0].failure is None
    assert [x.failure.reason for x in results[1:] if x.failure] == [r.LINKED_EVENT_CHAIN_OPEN] * 2


def test_rejected_item_sinks_its_chain() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    bad = Rejected(r.invalid(1, "amount.minor_units", r.AMOUNT_INVALID, "bad"), linked=False)
    results = apply_batch(ws, [posted(a, b, 1, linked=True), bad])
    assert results[0].failure is not None and results[0].failure.reason == r.LINKED_EVENT_FAILED
    assert results[1].failure is not None and results[1].failure.reason == r.AMOUNT_INVALID
    assert not ws.applied


def test_replay_returns_the_original_without_effect() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    t = posted(a, b, 7)
    first = apply_batch(ws, [t])[0]
    balances = dict(ws.accounts)
    again = apply_batch(ws, [t, t])
    assert all(x.replayed and x.transfer == first.transfer for x in again)
    assert ws.accounts == balances and len(ws.applied) == 1


def test_full_post_replay_with_amount_zero_matches() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    hold = pending(a, b, 10)
    p = post(hold.id)
    apply_batch(ws, [hold, p])
    [res] = apply_batch(ws, [p])
    assert res.replayed and res.transfer is not None and res.transfer.amount == 10


def test_same_id_different_fields_names_the_first_differing_field() -> None:
    a, b = account(), account()
    ws = working_set([a, b])
    t = posted(a, b, 7)
    apply_batch(ws, [t])
    for changed, name in (
        (replace(t, amount=8), "amount.minor_units"),
        (replace(t, code="OTHER"), "code"),
        (replace(t, credit_account=a.id, debit_account=b.id), "debit_account"),
        (replace(t, description="x"), "description"),
    ):
        [res] = apply_batch(ws, [changed])
        assert res.failure is not None
        assert res.failure.code == Code.ALREADY_EXISTS
        assert res.failure.reason == r.TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS
        assert res.failure.field == f"transfers[0].{name}"
        assert res.failure.metadata == {"field": name}
