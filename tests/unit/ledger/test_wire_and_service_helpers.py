"""Protobuf conversions, per-transfer statuses and the service's pure helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest

from fintech.ledger.v1 import ledger_pb2
from fintech.type.v1 import money_pb2
from services.ledger import api, service, wire
from services.ledger.domain import reasons as r
from services.ledger.domain.model import (
    Balances,
    Rejected,
    TransferKind,
    TransferRecord,
    TransferResult,
    TransferSpec,
    TransferState,
)
from services.ledger.domain.validation import parse_transfer
from services.ledger.views import AccountView, available, posted_balance
from services.platform import pagination
from services.platform.auth import Principal
from services.platform.errors import AppError, details_from_status

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(**kw: object) -> TransferRecord:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "kind": TransferKind.PENDING,
        "debit_account": uuid.uuid4(),
        "credit_account": uuid.uuid4(),
        "amount": 500,
        "currency": "BRL",
        "pending_id": None,
        "timeout_seconds": 30,
        "expires_at": None,
        "linked": False,
        "code": "HOLD",
        "external_reference": "ref-1",
        "description": "card hold",
        "state": TransferState.POSTED,
        "posted_amount": 300,
        "created_at": NOW,
        "resolved_at": NOW,
        "journal_seq": 9,
    }
    fields.update(kw)
    return TransferRecord(**fields)  # type: ignore[arg-type]


def test_transfer_message_round_trips_through_the_request_parser() -> None:
    record = _record()
    msg = wire.transfer_message(record)
    assert msg.state == ledger_pb2.TRANSFER_STATE_POSTED
    assert msg.posted_amount.minor_units == 300 and msg.timeout.seconds == 30
    assert msg.journal_sequence == 9 and msg.HasField("resolve_time")
    spec = parse_transfer(0, wire.transfer_input(msg))
    assert isinstance(spec, TransferSpec)
    assert (spec.id, spec.kind, spec.amount) == (record.id, TransferKind.PENDING, 500)


def test_unknown_kind_number_is_rejected_as_kind_invalid() -> None:
    msg = ledger_pb2.Transfer(
        name=f"transfers/{uuid.uuid4()}",
        debit_account=f"accounts/{uuid.uuid4()}",
        credit_account=f"accounts/{uuid.uuid4()}",
        amount=money_pb2.Money(currency_code="BRL", minor_units=1),
        kind=99,  # type: ignore[arg-type]
        code="X",
    )
    out = parse_transfer(0, wire.transfer_input(msg))
    assert isinstance(out, Rejected) and out.failure.reason == r.KIND_INVALID


def test_failed_result_carries_a_rich_status_with_the_field_violation() -> None:
    failure = r.precondition(4, "debit_account", r.INSUFFICIENT_FUNDS, "insufficient funds")
    msg = api.result_message(TransferResult(4, failure), "ledger.fintech.local")
    details = details_from_status(msg.status)
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (details.reason, details.domain) == (r.INSUFFICIENT_FUNDS, "ledger.fintech.local")
    assert details.violations == (("transfers[4].debit_account", "insufficient funds"),)
    assert msg.index == 4 and not msg.HasField("transfer")


def test_successful_result_has_code_zero_and_the_transfer() -> None:
    record = _record()
    msg = api.result_message(TransferResult(0, None, record, replayed=True), "d")
    assert msg.status.code == 0 and msg.replayed
    assert msg.transfer.name == f"transfers/{record.id}"


def test_a_batch_builds_each_transfer_message_once_for_its_response_and_its_event() -> None:
    messages = wire.TransferMessages()
    record = _record()
    first = messages.of(record)
    assert messages.of(record) is first  # the event reuses the response's message
    assert first == wire.transfer_message(record)
    twin = _record(id=record.id)  # another record object: built anew, not confused
    assert messages.of(twin) is not first
    response = api.result_message(TransferResult(0, None, record), "d", messages)
    assert response.transfer == first
    assert messages.of(record) == wire.transfer_message(record), "copying leaves it intact"


def test_page_tokens_are_opaque_and_checked() -> None:
    token = pagination.encode_token("entries:a", 42)
    assert service._before_seq(token, "entries:a") == 42
    assert service._before_seq("", "entries:a") is None
    for bad_token in (pagination.encode_token("entries:a", "x; DROP"), token + "x", "%%%"):
        with pytest.raises(AppError) as bad:
            service._before_seq(bad_token, "entries:a")
        assert bad.value.reason == "PAGE_TOKEN_INVALID"
    with pytest.raises(AppError):  # a token of another account or time window
        service._before_seq(token, "entries:b")
    assert service.page_size(0) == service.DEFAULT_PAGE_SIZE
    assert service.page_size(10_000) == service.MAX_PAGE_SIZE


def test_customers_see_only_their_accounts_and_missing_looks_the_same() -> None:
    svc = service.LedgerService.__new__(service.LedgerService)
    customer = Principal("u1", "s1", frozenset())
    mine = AccountView.wallet(uuid.uuid4(), "users/u1", NOW)
    theirs = AccountView.wallet(uuid.uuid4(), "users/u2", NOW)
    assert svc._visible(customer, mine, "accounts/x") is mine
    for account in (theirs, None):
        with pytest.raises(AppError) as denied:
            svc._visible(customer, account, "accounts/x")
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    backoffice = Principal("b1", "s2", frozenset({"backoffice"}))
    assert svc._visible(backoffice, theirs, "accounts/x") is theirs
    with pytest.raises(AppError) as missing:
        svc._visible(backoffice, None, "accounts/x")
    assert missing.value.reason == r.ACCOUNT_NOT_FOUND


def test_balances_in_the_normal_direction() -> None:
    b = Balances(debits_posted=30, credits_posted=100, debits_pending=20)
    assert available("USER_WALLET", b) == 50 and posted_balance("USER_WALLET", b) == 70
    assert posted_balance("BANK_CASH", Balances(debits_posted=100, credits_posted=40)) == 60
    account = wire.account_message(AccountView.wallet(uuid.uuid4(), "users/u1", NOW))
    assert account.kind == ledger_pb2.ACCOUNT_KIND_USER_WALLET
    assert account.flags.debits_must_not_exceed_credits and not account.closed
