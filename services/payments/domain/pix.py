"""PIX keys (DICT), endToEndId and txid rules (../shared/DOMAIN.md, PIX)."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import UTC, datetime

from services.brazil.documents import normalize_cnpj, normalize_cpf


class KeyType(enum.Enum):
    CPF = "CPF"
    CNPJ = "CNPJ"
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    EVP = "EVP"


_PHONE = re.compile(r"\+55[1-9][0-9]{9,10}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,200}\.[A-Za-z]{2,24}")
_EVP = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
E2E_ID = re.compile(r"E[0-9]{8}[0-9]{12}[A-Za-z0-9]{11}")
TXID = re.compile(r"[a-zA-Z0-9]{26,35}")
ISPB = re.compile(r"[0-9]{8}")
MAX_EMAIL = 77  # DICT's limit for e-mail keys


def normalize_key(key_type: KeyType, key: str) -> str | None:
    """The key as DICT stores it, or None when it is not a valid key of that type."""
    key = key.strip()
    if key_type is KeyType.CPF:
        return normalize_cpf(key)
    if key_type is KeyType.CNPJ:
        return normalize_cnpj(key)
    if key_type is KeyType.PHONE:
        return key if _PHONE.fullmatch(key) else None
    if key_type is KeyType.EMAIL:
        lowered = key.lower()
        return lowered if len(lowered) <= MAX_EMAIL and _EMAIL.fullmatch(lowered) else None
    lowered = key.lower()
    return lowered if _EVP.fullmatch(lowered) else None


def end_to_end_id(ispb: str, when: datetime, suffix: str) -> str:
    """`E` + ISPB (8) + yyyyMMddHHmm (UTC) + 11 alphanumerics = 32 characters."""
    if not ISPB.fullmatch(ispb):
        raise ValueError("ISPB must be 8 digits")
    if len(suffix) != 11 or not suffix.isalnum() or not suffix.isascii():
        raise ValueError("suffix must be 11 ASCII alphanumerics")
    stamp = when.astimezone(UTC).strftime("%Y%m%d%H%M")
    value = f"E{ispb}{stamp}{suffix}"
    assert len(value) == 32
    return value


def is_end_to_end_id(value: str) -> bool:
    if not E2E_ID.fullmatch(value):
        return False
    try:
        datetime.strptime(value[9:21], "%Y%m%d%H%M")
    except ValueError:
        return False
    return True


def txid_for(charge_id: uuid.UUID) -> str:
    """A txid (32 hex chars, within [a-zA-Z0-9]{26,35}) derived from the charge id:
    re-creating the same charge at the PSP after a lost answer reuses it."""
    value = charge_id.hex
    assert TXID.fullmatch(value)
    return value
