"""What CreatePayment refuses in a TED before anything is written: our own
accounts are checked against our branch and check digits, and no TED may be
worth its fee or less."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from services.payments.domain.bank_account import format_account
from services.payments.service import validate_payment
from services.platform.errors import AppError

ACCOUNT = format_account(1234)  # 000001234-8
NUMBER_FIELD = "payment.bank_account.account_number"


def ted(amount: int = 10_00, **bank: str) -> Any:
    destination = {
        "bank_code": "999",
        "branch": "0001",
        "account_number": ACCOUNT,
        "account_type": "CHECKING",
        "holder_name": "Maria Silva",
        "holder_document": "52998224725",
    } | bank
    return validate_payment("TED", amount, "BRL", "", None, destination, None)


def violations(amount: int = 10_00, **bank: str) -> dict[str, str]:
    with pytest.raises(AppError) as refused:
        ted(amount, **bank)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return dict(refused.value.violations)


def test_our_accounts_by_code_or_ispb_with_or_without_zeros_are_accepted() -> None:
    assert ted().instrument["account_number"] == ACCOUNT
    assert ted(bank_code="12345678", branch="1", account_number="1234-8").method == "TED"


def test_another_banks_account_is_not_held_to_our_check_digits() -> None:
    assert ted(bank_code="341", branch="1234", account_number="1234-0").method == "TED"


@pytest.mark.parametrize(
    ("bank", "field"),
    [
        ({"branch": "0002"}, "payment.bank_account.branch"),
        ({"account_number": "1234-9"}, NUMBER_FIELD),
        ({"account_number": "1234567890-1"}, NUMBER_FIELD),
        ({"bank_code": "12345678", "account_number": "000001243-8"}, NUMBER_FIELD),  # swapped
    ],
)
def test_a_mistyped_account_of_ours_names_its_field(bank: dict[str, str], field: str) -> None:
    assert list(violations(**bank)) == [field]


def test_a_malformed_field_is_reported_once() -> None:
    found = violations(branch="x", account_number="abc")
    assert set(found) == {"payment.bank_account.branch", "payment.bank_account.account_number"}
    assert "1-5 digits" in found["payment.bank_account.branch"]


@pytest.mark.parametrize("amount", [1, 389, 390])
def test_a_ted_worth_its_fee_or_less_is_refused(amount: int) -> None:
    found = violations(amount)
    assert list(found) == ["payment.amount.minor_units"]
    assert "390" in found["payment.amount.minor_units"]


def test_a_ted_above_its_fee_is_accepted() -> None:
    assert ted(391).amount == 391
