"""Ledger value types (pure): accounts, transfers, entries, results, failures.

TigerBeetle's model (docs/LEDGER.md "Semantics"): an account carries four
balances; a transfer is immutable once stored, except that a PENDING
transfer's state moves exactly once to POSTED, VOIDED or EXPIRED.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

INT64_MAX = 2**63 - 1
# The documented batch limit of CreateTransfers (proto comment and LEDGER.md).
MAX_BATCH_TRANSFERS = 8_000
MAX_CODE_CHARS = 64
MAX_REFERENCE_CHARS = 128
MAX_DESCRIPTION_CHARS = 512
# A reservation longer than this is a bug in the caller, not a business need.
MAX_TIMEOUT_SECONDS = 90 * 24 * 3600


class TransferKind(StrEnum):
    POSTED = "POSTED"
    PENDING = "PENDING"
    POST_PENDING = "POST_PENDING"
    VOID_PENDING = "VOID_PENDING"


class TransferState(StrEnum):
    PENDING = "PENDING"
    POSTED = "POSTED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


class Side(StrEnum):
    DEBIT = "D"
    CREDIT = "C"


class Code(StrEnum):
    """gRPC status code names (the service maps them to grpc.StatusCode)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"


@dataclass(frozen=True, slots=True)
class Balances:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def __post_init__(self) -> None:
        for value in (
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
        ):
            assert 0 <= value <= INT64_MAX, f"balance out of range: {value}"

    def is_zero(self) -> bool:
        return self == ZERO


ZERO = Balances()


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the engine needs of an account: identity, constraints, balances."""

    id: uuid.UUID
    currency: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    closed: bool
    balances: Balances = ZERO

    def __post_init__(self) -> None:
        assert not (self.debits_must_not_exceed_credits and self.credits_must_not_exceed_debits), (
            "an account may carry one balance constraint at most"
        )


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """A validated request transfer (domain/validation.py builds it from the wire).

    For POST_PENDING / VOID_PENDING the accounts and currency may be absent
    (None / ""): they are then taken from the pending transfer; an amount of
    0 on POST_PENDING means the full pending amount.
    """

    id: uuid.UUID
    kind: TransferKind
    debit_account: uuid.UUID | None
    credit_account: uuid.UUID | None
    amount: int
    currency: str
    pending_id: uuid.UUID | None = None
    timeout_seconds: int = 0
    linked: bool = False
    code: str = ""
    external_reference: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A stored transfer. `amount` is what moved: the posted amount of a
    POST_PENDING, the released amount of a VOID_PENDING."""

    id: uuid.UUID
    kind: TransferKind
    debit_account: uuid.UUID
    credit_account: uuid.UUID
    amount: int
    currency: str
    pending_id: uuid.UUID | None
    timeout_seconds: int
    expires_at: datetime | None
    linked: bool
    code: str
    external_reference: str
    description: str
    state: TransferState
    posted_amount: int | None
    created_at: datetime
    resolved_at: datetime | None
    journal_seq: int

    def __post_init__(self) -> None:
        assert 0 < self.amount <= INT64_MAX, self.amount
        assert self.debit_account != self.credit_account
        assert self.journal_seq > 0
        assert (self.state == TransferState.PENDING) == (
            self.kind == TransferKind.PENDING and self.resolved_at is None
        ), (self.kind, self.state)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one transfer failed: a status code name, a stable reason, the field."""

    code: Code
    reason: str
    message: str
    field: str = ""  # the request path, e.g. "transfers[3].amount"
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request transfer that failed parsing; it still takes part in its chain."""

    failure: Failure
    linked: bool


@dataclass(frozen=True, slots=True)
class TransferResult:
    index: int
    failure: Failure | None
    transfer: TransferRecord | None = None
    replayed: bool = False

    def __post_init__(self) -> None:
        assert (self.failure is None) == (self.transfer is not None), self


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """One account side of an applied operation, with that account's
    balances right after it (statement running balance, balance as of t)."""

    account_id: uuid.UUID
    transfer_id: uuid.UUID
    counterparty_id: uuid.UUID
    journal_seq: int
    side: Side
    amount: int
    posted_delta: int  # added to <side>s_posted
    pending_delta: int  # added to <side>s_pending (negative when released)
    state: TransferState
    balances: Balances
    created_at: datetime

    def __post_init__(self) -> None:
        assert 0 < self.amount <= INT64_MAX
        assert self.posted_delta >= 0


@dataclass(frozen=True, slots=True)
class Applied:
    """One applied operation = one journal record, two entries, one event.

    `transfer` is the created transfer (or, for an expiry, the expired
    pending); `resolved` is the pending a POST/VOID resolved, after resolution.
    """

    journal_seq: int
    transfer: TransferRecord
    resolved: TransferRecord | None
    entries: tuple[EntryRecord, EntryRecord]
    expiry: bool = False


def credit_normal_available(balances: Balances) -> int:
    return balances.credits_posted - balances.debits_posted - balances.debits_pending


def debit_normal_available(balances: Balances) -> int:
    return balances.debits_posted - balances.credits_posted - balances.credits_pending
