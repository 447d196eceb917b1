"""Stateless checks of request transfers (pure): wire values → TransferSpec.

Everything that can be decided without the database is decided here, so the
engine only sees well-formed specs; a malformed transfer becomes `Rejected`
and still takes part in its linked chain.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

from services.ledger.domain import reasons as r
from services.ledger.domain.model import (
    INT64_MAX,
    MAX_CODE_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_REFERENCE_CHARS,
    MAX_TIMEOUT_SECONDS,
    Failure,
    Rejected,
    TransferKind,
    TransferSpec,
)

CURRENCY = re.compile(r"[A-Z]{3}")
UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
ACCOUNT_PREFIX = "accounts/"
TRANSFER_PREFIX = "transfers/"


@dataclass(frozen=True, slots=True)
class TransferInput:
    """A request transfer as it came off the wire (kind as its enum name)."""

    name: str
    kind: str  # "POSTED", "PENDING", "POST_PENDING", "VOID_PENDING" or anything else
    debit_account: str
    credit_account: str
    amount: int
    currency: str
    pending_transfer: str = ""
    timeout_seconds: int = 0
    timeout_nanos: int = 0
    linked: bool = False
    code: str = ""
    external_reference: str = ""
    description: str = ""


def parse_name(name: str, prefix: str) -> uuid.UUID | None:
    """`<prefix><uuid>` → UUID; None when malformed."""
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    if not UUID_TEXT.fullmatch(rest):
        return None
    return uuid.UUID(rest)


class _Invalid(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def parse_transfer(index: int, raw: TransferInput) -> TransferSpec | Rejected:
    try:
        return _parse(index, raw)
    except _Invalid as exc:
        return Rejected(exc.failure, raw.linked)


def _fail(index: int, name: str, reason: str, message: str) -> _Invalid:
    return _Invalid(r.invalid(index, name, reason, message))


def _parse(i: int, raw: TransferInput) -> TransferSpec:
    transfer_id = parse_name(raw.name, TRANSFER_PREFIX)
    if transfer_id is None:
        raise _fail(i, "name", r.NAME_INVALID, "name must be transfers/{uuid} (client-chosen)")
    try:
        kind = TransferKind(raw.kind)
    except ValueError:
        raise _fail(
            i, "kind", r.KIND_INVALID, "kind must be POSTED, PENDING, POST_PENDING or VOID_PENDING"
        ) from None
    resolves = kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)
    debit = _account(i, "debit_account", raw.debit_account, optional=resolves)
    credit = _account(i, "credit_account", raw.credit_account, optional=resolves)
    if debit is not None and debit == credit:
        raise _fail(i, "credit_account", r.SAME_ACCOUNT, "debit and credit account are the same")
    _amount(i, kind, raw.amount)
    if raw.currency or not resolves:
        if not CURRENCY.fullmatch(raw.currency):
            raise _fail(
                i,
                "amount.currency_code",
                r.CURRENCY_INVALID,
                "currency_code must be ISO 4217 (e.g. BRL)",
            )
    pending_id = None
    if resolves:
        pending_id = parse_name(raw.pending_transfer, TRANSFER_PREFIX)
        if pending_id is None:
            raise _fail(
                i,
                "pending_transfer",
                r.PENDING_TRANSFER_REQUIRED,
                "pending_transfer must be transfers/{uuid}",
            )
    elif raw.pending_transfer:
        raise _fail(
            i,
            "pending_transfer",
            r.PENDING_TRANSFER_REQUIRED,
            "only POST_PENDING and VOID_PENDING name a pending transfer",
        )
    _timeout(i, kind, raw.timeout_seconds, raw.timeout_nanos)
    code = raw.code.strip()
    if not code:
        raise _fail(i, "code", r.CODE_REQUIRED, "code is required (e.g. PIX_PAYOUT)")
    for name, value, limit in (
        ("code", raw.code, MAX_CODE_CHARS),
        ("external_reference", raw.external_reference, MAX_REFERENCE_CHARS),
        ("description", raw.description, MAX_DESCRIPTION_CHARS),
    ):
        if len(value) > limit:
            raise _fail(i, name, r.FIELD_TOO_LONG, f"{name} is longer than {limit} characters")
    return TransferSpec(
        id=transfer_id,
        kind=kind,
        debit_account=debit,
        credit_account=credit,
        amount=raw.amount,
        currency=raw.currency,
        pending_id=pending_id,
        timeout_seconds=raw.timeout_seconds,
        linked=raw.linked,
        code=raw.code,
        external_reference=raw.external_reference,
        description=raw.description,
    )


def _account(i: int, name: str, value: str, *, optional: bool) -> uuid.UUID | None:
    if optional and not value:
        return None
    account = _account_id(value)
    if account is None:
        raise _fail(i, name, r.NAME_INVALID, f"{name} must be accounts/{{uuid}}")
    return account


@lru_cache(maxsize=65_536)
def _account_id(name: str) -> uuid.UUID | None:
    # Account names repeat across a batch (2 per transfer, over far fewer
    # accounts); parsing a UUID is pure Python. Bounded: at most 64k entries.
    return parse_name(name, ACCOUNT_PREFIX)


def _amount(i: int, kind: TransferKind, amount: int) -> None:
    if amount > INT64_MAX:
        raise _fail(i, "amount.minor_units", r.OVERFLOW, "amount exceeds 2^63-1")
    if kind == TransferKind.VOID_PENDING:
        return  # ignored: the whole reservation is released
    if kind == TransferKind.POST_PENDING and amount == 0:
        return  # the full pending amount
    if amount <= 0:
        raise _fail(
            i, "amount.minor_units", r.AMOUNT_INVALID, "amount must be positive (minor units)"
        )


def _timeout(i: int, kind: TransferKind, seconds: int, nanos: int) -> None:
    if seconds == 0 and nanos == 0:
        return
    if kind != TransferKind.PENDING:
        raise _fail(i, "timeout", r.TIMEOUT_INVALID, "only PENDING transfers have a timeout")
    if nanos != 0 or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise _fail(
            i,
            "timeout",
            r.TIMEOUT_INVALID,
            f"timeout must be whole seconds in 1..{MAX_TIMEOUT_SECONDS}",
        )
