"""Our account numbers: check digit, formatting and parsing what a payer types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.bank_account import (
    ACCOUNT_DIGITS,
    MAX_ACCOUNT_NUMBER,
    OUR_BANK_CODE,
    OUR_ISPB,
    check_digit,
    format_account,
    is_our_bank,
    is_our_branch,
    parse_account,
)

numbers = st.integers(min_value=1, max_value=MAX_ACCOUNT_NUMBER)


def test_check_digit_by_hand() -> None:
    # 1234: 4*2 + 3*3 + 2*4 + 1*5 = 30, 30 % 11 = 8.
    assert check_digit(1234) == "8"
    assert format_account(1234) == "000001234-8"
    # 5: 5*2 = 10 -> "X".
    assert check_digit(5) == "X"
    assert format_account(5) == "000000005-X"


@given(numbers)
def test_formatted_numbers_parse_back(number: int) -> None:
    text = format_account(number)
    assert len(text) == ACCOUNT_DIGITS + 2
    assert parse_account(text) == number
    # Without the hyphen, without the leading zeros, lower-case x: the same account.
    body, digit = text.split("-")
    assert parse_account(body + digit) == number
    assert parse_account(f"{number}-{digit.lower()}") == number


@given(numbers, st.data())
def test_any_single_wrong_digit_is_refused(number: int, data: st.DataObject) -> None:
    body = f"{number:0{ACCOUNT_DIGITS}d}"
    at = data.draw(st.integers(min_value=0, max_value=ACCOUNT_DIGITS - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != body[at]]))
    typo = body[:at] + wrong + body[at + 1 :]
    if int(typo) == 0:
        return  # not an account at all; refused for that reason below
    assert parse_account(f"{typo}-{check_digit(number)}") is None


@given(numbers, st.data())
def test_swapping_two_adjacent_different_digits_is_refused(
    number: int, data: st.DataObject
) -> None:
    body = f"{number:0{ACCOUNT_DIGITS}d}"
    at = data.draw(st.integers(min_value=0, max_value=ACCOUNT_DIGITS - 2))
    if body[at] == body[at + 1]:
        return
    swapped = body[:at] + body[at + 1] + body[at] + body[at + 2 :]
    assert parse_account(f"{swapped}-{check_digit(number)}") is None


@pytest.mark.parametrize(
    "text", ["", "-", "abc-1", "000000000-0", "1234567890-1", "1234-", "1234-88", "12 34-8"]
)
def test_malformed_or_out_of_range_is_refused(text: str) -> None:
    assert parse_account(text) is None


def test_our_bank_and_branch() -> None:
    assert is_our_bank(OUR_BANK_CODE) and is_our_bank(OUR_ISPB)
    assert not is_our_bank("341") and not is_our_bank("60701190")
    assert is_our_branch("1") and is_our_branch("0001") and is_our_branch("00001")
    assert not is_our_branch("0002") and not is_our_branch("") and not is_our_branch("1a")
