"""Stateless validation of request transfers: each reason with its field path."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from services.ledger.domain import reasons as r
from services.ledger.domain.model import MAX_TIMEOUT_SECONDS, Rejected, TransferKind, TransferSpec
from services.ledger.domain.validation import TransferInput, parse_transfer

A, B, T = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
GOOD = TransferInput(
    name=f"transfers/{T}",
    kind="POSTED",
    debit_account=f"accounts/{A}",
    credit_account=f"accounts/{B}",
    amount=100,
    currency="BRL",
    code="PIX_PAYOUT",
)


def test_good_input_becomes_a_spec() -> None:
    spec = parse_transfer(0, GOOD)
    assert isinstance(spec, TransferSpec)
    assert (spec.id, spec.debit_account, spec.credit_account, spec.amount) == (T, A, B, 100)


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"name": "transfers/not-a-uuid"}, r.NAME_INVALID, "name"),
        ({"name": str(T)}, r.NAME_INVALID, "name"),
        ({"kind": ""}, r.KIND_INVALID, "kind"),
        ({"debit_account": "accounts/x"}, r.NAME_INVALID, "debit_account"),
        ({"credit_account": f"accounts/{A}"}, r.SAME_ACCOUNT, "credit_account"),
        ({"amount": 0}, r.AMOUNT_INVALID, "amount.minor_units"),
        ({"amount": -5}, r.AMOUNT_INVALID, "amount.minor_units"),
        ({"amount": 2**63}, r.OVERFLOW, "amount.minor_units"),
        ({"currency": "brl"}, r.CURRENCY_INVALID, "amount.currency_code"),
        ({"timeout_seconds": 5}, r.TIMEOUT_INVALID, "timeout"),
        ({"code": " "}, r.CODE_REQUIRED, "code"),
        ({"description": "x" * 513}, r.FIELD_TOO_LONG, "description"),
        ({"pending_transfer": f"transfers/{T}"}, r.PENDING_TRANSFER_REQUIRED, "pending_transfer"),
    ],
)
def test_each_malformed_field_is_named(change: dict[str, object], reason: str, field: str) -> None:
    out = parse_transfer(3, replace(GOOD, **change))  # type: ignore[arg-type]
    assert isinstance(out, Rejected)
    assert out.failure.reason == reason
    assert out.failure.field == f"transfers[3].{field}"


def test_pending_timeout_bounds() -> None:
    pending = replace(GOOD, kind="PENDING")
    assert isinstance(parse_transfer(0, replace(pending, timeout_seconds=60)), TransferSpec)
    too_long = replace(pending, timeout_seconds=MAX_TIMEOUT_SECONDS + 1)
    assert isinstance(parse_transfer(0, too_long), Rejected)
    assert isinstance(parse_transfer(0, replace(pending, timeout_nanos=5)), Rejected)


def test_post_pending_may_omit_accounts_amount_and_currency() -> None:
    raw = TransferInput(
        name=f"transfers/{uuid.uuid4()}",
        kind="POST_PENDING",
        debit_account="",
        credit_account="",
        amount=0,
        currency="",
        pending_transfer=f"transfers/{T}",
        code="CAPTURE",
    )
    spec = parse_transfer(0, raw)
    assert isinstance(spec, TransferSpec)
    assert spec.kind == TransferKind.POST_PENDING and spec.pending_id == T
    missing = parse_transfer(0, replace(raw, pending_transfer=""))
    assert isinstance(missing, Rejected)
    assert missing.failure.reason == r.PENDING_TRANSFER_REQUIRED


def test_rejected_keeps_the_linked_flag() -> None:
    out = parse_transfer(0, replace(GOOD, amount=0, linked=True))
    assert isinstance(out, Rejected) and out.linked
