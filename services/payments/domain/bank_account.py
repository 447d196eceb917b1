"""Our customers' bank account numbers (agência + conta), so that a TED can
name one of them (pure).

Each customer's wallet is reachable by TED as branch `OUR_BRANCH`, account
`NNNNNNNNN-D`: a 9-digit number taken from a sequence when the customer first
asks for it, and a check digit. A TED addressed to our bank (by COMPE code or
ISPB) is on-us: it never leaves the ledger. Its check digit is verified when the
payment is created, so a mistyped number is refused at once instead of failing
later as an unknown recipient; other banks' check digits follow each bank's own
rule, which we cannot know, so they are not checked.
"""

from __future__ import annotations

import re

OUR_ISPB = "12345678"
# A COMPE code no real bank holds: the simulated world's code for us.
OUR_BANK_CODE = "999"
OUR_BRANCH = "0001"
ACCOUNT_DIGITS = 9
MAX_ACCOUNT_NUMBER = 10**ACCOUNT_DIGITS - 1

# Modulo 11 with weights 2..9 from the rightmost digit, the scheme most
# Brazilian banks use for account check digits. 11 is prime and every weight is
# below it, so any single wrong digit and any swap of two adjacent different
# digits change the remainder. Remainder 10 is written "X".
_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9)
_TYPED = re.compile(r"([0-9]{1,12})-?([0-9Xx])")


def check_digit(number: int) -> str:
    assert 0 < number <= MAX_ACCOUNT_NUMBER, number
    digits = str(number)
    total = sum(int(d) * _WEIGHTS[i % len(_WEIGHTS)] for i, d in enumerate(reversed(digits)))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def format_account(number: int) -> str:
    """`000001234-5`: zero-padded, as the customer reads it in the app."""
    return f"{number:0{ACCOUNT_DIGITS}d}-{check_digit(number)}"


def is_our_bank(bank_code: str) -> bool:
    return bank_code in (OUR_BANK_CODE, OUR_ISPB)


def is_our_branch(branch: str) -> bool:
    """Leading zeros are not significant: "1" and "0001" name the same branch."""
    return branch.isdigit() and int(branch) == int(OUR_BRANCH)


def parse_account(text: str) -> int | None:
    """The number of one of our accounts, or None when `text` cannot be one
    (malformed, out of range, or a check digit that does not match)."""
    m = _TYPED.fullmatch(text)
    if m is None:
        return None
    number = int(m.group(1))
    if not 0 < number <= MAX_ACCOUNT_NUMBER or check_digit(number) != m.group(2).upper():
        return None
    return number
