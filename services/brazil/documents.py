"""CPF and CNPJ (numeric and alphanumeric) check digits (../shared/DOMAIN.md).

All functions take the user's text as typed (dots, dashes, slashes and spaces
allowed) and never raise on bad input: they answer False / None.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[.\-/\s]")
_CNPJ_BODY = re.compile(r"^[0-9A-Z]{12}[0-9]{2}$")


def _strip(text: str) -> str:
    return _SEPARATORS.sub("", text.strip())


def _mod11_digit(values: list[int], weights: list[int]) -> int:
    assert len(values) == len(weights)
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def normalize_cpf(text: str) -> str | None:
    """The 11 digits of a valid CPF, or None."""
    digits = _strip(text)
    if len(digits) != 11 or not digits.isdigit():
        return None
    if digits == digits[0] * 11:  # 000.000.000-00 etc. pass the arithmetic but are invalid
        return None
    values = [int(c) for c in digits]
    first = _mod11_digit(values[:9], list(range(10, 1, -1)))
    second = _mod11_digit(values[:10], list(range(11, 1, -1)))
    if values[9] != first or values[10] != second:
        return None
    return digits


def is_valid_cpf(text: str) -> bool:
    return normalize_cpf(text) is not None


def cpf_check_digits(first_nine: str) -> str:
    """The two check digits for nine CPF digits (used by tests and simulators)."""
    assert len(first_nine) == 9 and first_nine.isdigit()
    values = [int(c) for c in first_nine]
    first = _mod11_digit(values, list(range(10, 1, -1)))
    second = _mod11_digit([*values, first], list(range(11, 1, -1)))
    return f"{first}{second}"


def mask_cpf(cpf_digits: str) -> str:
    """`***.444.777-**`: the middle six digits, the masking the Brazilian government uses."""
    assert len(cpf_digits) == 11
    return f"***.{cpf_digits[3:6]}.{cpf_digits[6:9]}-**"


_CNPJ_WEIGHTS_1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
_CNPJ_WEIGHTS_2 = [6, *_CNPJ_WEIGHTS_1]


def _cnpj_value(char: str) -> int:
    # IN RFB 2.229/2024: each character's value is its ASCII code minus 48,
    # so digits keep their value and 'A' is 17.
    return ord(char) - 48


def normalize_cnpj(text: str) -> str | None:
    """The 14 characters of a valid CNPJ (numeric or alphanumeric), upper-cased, or None."""
    body = _strip(text).upper()
    if not _CNPJ_BODY.match(body):
        return None
    if body == body[0] * 14:
        return None
    values = [_cnpj_value(c) for c in body]
    first = _mod11_digit(values[:12], _CNPJ_WEIGHTS_1)
    second = _mod11_digit(values[:13], _CNPJ_WEIGHTS_2)
    if values[12] != first or values[13] != second:
        return None
    return body


def is_valid_cnpj(text: str) -> bool:
    return normalize_cnpj(text) is not None


def cnpj_check_digits(first_twelve: str) -> str:
    assert len(first_twelve) == 12 and re.fullmatch(r"[0-9A-Z]{12}", first_twelve)
    values = [_cnpj_value(c) for c in first_twelve]
    first = _mod11_digit(values, _CNPJ_WEIGHTS_1)
    second = _mod11_digit([*values, first], _CNPJ_WEIGHTS_2)
    return f"{first}{second}"


BRAZILIAN_STATES: frozenset[str] = frozenset(
    "AC AL AP AM BA CE DF ES GO MA MT MS MG PA PB PR PE PI RJ RN RS RO RR SC SP SE TO".split()
)
