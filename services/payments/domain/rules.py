"""Limits, fees and derived identifiers of payments (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

MAX_AMOUNT_MINOR = 10**13  # R$ 100 billion: any sum of a day stays far inside int64
MAX_DESCRIPTION = 140
# Fees in centavos, booked to fee revenue linked with the payout. PIX is free for
# individuals (BACEN); TED carries a flat fee.
FEES: dict[str, int] = {"PIX": 0, "TED": 390, "CARD": 0}

_NAMESPACE = uuid.UUID("6f1b8d0e-2a7c-4f57-9d5e-0b6a3c2e9f11")


@dataclass(frozen=True, slots=True)
class Limits:
    per_payment: int
    daily: int
    nightly: int

    def __post_init__(self) -> None:
        assert 0 < self.per_payment <= MAX_AMOUNT_MINOR
        assert 0 < self.daily <= MAX_AMOUNT_MINOR
        assert 0 < self.nightly <= MAX_AMOUNT_MINOR


DEFAULT_LIMITS = Limits(per_payment=5_000_00, daily=20_000_00, nightly=1_000_00)


# BACEN's night period for PIX (Res. BCB 1/2020 as amended): 20:00 to 06:00,
# local time, when a lower limit applies to outbound payments.
NIGHT_STARTS = time(20, 0)
NIGHT_ENDS = time(6, 0)


def night_of(local: datetime) -> date | None:
    """The night `local` (a Sao Paulo wall-clock time) falls in, named by the
    date on which it started, or None in daytime."""
    assert local.tzinfo is not None, "a wall-clock time needs its zone"
    clock = local.timetz().replace(tzinfo=None)
    if clock >= NIGHT_STARTS:
        return local.date()
    if clock < NIGHT_ENDS:
        return local.date() - timedelta(days=1)
    return None


def limit_violation(amount: int, limits: Limits, used_today: int) -> str | None:
    """None if `amount` fits, else the reason (FAILED_PRECONDITION)."""
    assert amount > 0 and used_today >= 0
    if amount > limits.per_payment:
        return "PAYMENT_LIMIT_EXCEEDED"
    if used_today + amount > limits.daily:
        return "DAILY_LIMIT_EXCEEDED"
    return None


def fee_for(method: str, amount: int) -> int:
    fee = FEES[method]
    assert 0 <= fee < amount or fee == 0
    return fee


def payment_id_for(subject: str, idempotency_key: str) -> uuid.UUID:
    """The same request (caller + idempotency key) always names the same payment, so
    a retry after a lost answer finds it (and its workflow) instead of a second one."""
    return uuid.uuid5(_NAMESPACE, f"payment\n{subject}\n{idempotency_key}")


def charge_id_for(subject: str, idempotency_key: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"charge\n{subject}\n{idempotency_key}")


# What each of a payment's ledger transfers is for; the transfer's id is
# derived from the payment and its purpose.
TRANSFER_PURPOSES = frozenset(
    {
        "reserve",
        "reserve_fee",
        "post",
        "post_fee",
        "void",
        "void_fee",
        "on_us",
        "on_us_fee",
        "credit",
        "refund_reserve",
        "refund_post",
        "refund_void",
        "return_credit",
    }
)


def transfer_id(payment_id: uuid.UUID, purpose: str) -> uuid.UUID:
    """Ledger transfer ids derived from the payment: a retried step re-sends the
    same id and the ledger replays instead of moving money twice."""
    assert purpose in TRANSFER_PURPOSES, purpose
    return uuid.uuid5(_NAMESPACE, f"transfer\n{payment_id}\n{purpose}")


def refund_id_for(payment_id: uuid.UUID, idempotency_key: str) -> uuid.UUID:
    """One refund per (payment, request key): a retried RefundPayment repeats the
    same ledger transfers and the same PSP refund id instead of refunding twice."""
    return uuid.uuid5(_NAMESPACE, f"refund\n{payment_id}\n{idempotency_key}")


def payout_return_id_for(payment_id: uuid.UUID, return_id: str) -> uuid.UUID:
    """One wallet credit per devolução of a payout (the PSP's return id): every
    notification of the same return re-sends the same ledger transfer id."""
    return uuid.uuid5(_NAMESPACE, f"return\n{payment_id}\n{return_id}")


def workflow_id(payment_id: uuid.UUID) -> str:
    return f"payment-{payment_id}"


def external_reference(payment_id: uuid.UUID) -> str:
    """What we send the PSP and book on PSP clearing: the report's join key."""
    return f"payments/{payment_id}"
