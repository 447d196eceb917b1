"""CNH (Carteira Nacional de Habilitação) register number check digits.

DENATRAN rule for the 11-digit register number (9 base digits + 2 check digits),
as used by the usual open-source validators (validate-docbr, js-brasil):

1. d1 = (sum of base[i] * (9 - i), i = 0..8) mod 11; if d1 >= 10, d1 = 0 and a
   discount of 2 applies to d2 (otherwise the discount is 0).
2. d2 = (sum of base[i] * (1 + i), i = 0..8) mod 11, minus the discount; a
   negative result gets 11 added; if d2 >= 10, d2 = 0.

Numbers with all digits equal pass the arithmetic but are rejected (as CPFs are).
Worked example: 026503064 → d1 = 116 mod 11 = 6, d2 = 144 mod 11 = 1 → 02650306461.
"""

from __future__ import annotations

CNH_LENGTH = 11


def cnh_check_digits(base: str) -> str:
    """The two check digits for the nine base digits of a CNH number."""
    assert len(base) == 9 and base.isdigit()
    digits = [int(c) for c in base]
    first = sum(d * (9 - i) for i, d in enumerate(digits)) % 11
    discount = 0
    if first >= 10:
        first, discount = 0, 2
    second = sum(d * (1 + i) for i, d in enumerate(digits)) % 11 - discount
    if second < 0:
        second += 11
    if second >= 10:
        second = 0
    return f"{first}{second}"


def normalize_cnh(text: str) -> str | None:
    """The 11 digits of a valid CNH number (spaces, dots and dashes allowed), or None."""
    digits = "".join(c for c in text.strip() if c not in " .-")
    if len(digits) != CNH_LENGTH or not digits.isascii() or not digits.isdigit():
        return None
    if digits == digits[0] * CNH_LENGTH:
        return None
    return digits if cnh_check_digits(digits[:9]) == digits[9:] else None
