"""Stable error reasons of the ledger (ErrorInfo.reason) and their failures.

One place for the strings clients match on; each helper names the request
field (`transfers[i].<field>`) the failure is about.
"""

from __future__ import annotations

from services.ledger.domain.model import Code, Failure

BATCH_EMPTY = "BATCH_EMPTY"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
NAME_INVALID = "NAME_INVALID"
AMOUNT_INVALID = "AMOUNT_INVALID"
CURRENCY_INVALID = "CURRENCY_INVALID"
KIND_INVALID = "KIND_INVALID"
CODE_REQUIRED = "CODE_REQUIRED"
FIELD_TOO_LONG = "FIELD_TOO_LONG"
TIMEOUT_INVALID = "TIMEOUT_INVALID"
SAME_ACCOUNT = "SAME_ACCOUNT"
PENDING_TRANSFER_REQUIRED = "PENDING_TRANSFER_REQUIRED"
OVERFLOW = "OVERFLOW"
ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
CREDITS_EXCEED_DEBITS = "CREDITS_EXCEED_DEBITS"
PENDING_TRANSFER_NOT_FOUND = "PENDING_TRANSFER_NOT_FOUND"
PENDING_TRANSFER_NOT_PENDING = "PENDING_TRANSFER_NOT_PENDING"
PENDING_TRANSFER_ALREADY_RESOLVED = "PENDING_TRANSFER_ALREADY_RESOLVED"
PENDING_TRANSFER_EXPIRED = "PENDING_TRANSFER_EXPIRED"
PENDING_TRANSFER_MISMATCH = "PENDING_TRANSFER_MISMATCH"
AMOUNT_EXCEEDS_PENDING = "AMOUNT_EXCEEDS_PENDING"
LINKED_EVENT_FAILED = "LINKED_EVENT_FAILED"
LINKED_EVENT_CHAIN_OPEN = "LINKED_EVENT_CHAIN_OPEN"
TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS = "TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS"


def path(index: int, name: str) -> str:
    return f"transfers[{index}].{name}"


def invalid(index: int, name: str, reason: str, message: str) -> Failure:
    return Failure(Code.INVALID_ARGUMENT, reason, message, path(index, name))


def precondition(index: int, name: str, reason: str, message: str) -> Failure:
    return Failure(Code.FAILED_PRECONDITION, reason, message, path(index, name))


def not_found(index: int, name: str, reason: str, message: str) -> Failure:
    return Failure(Code.NOT_FOUND, reason, message, path(index, name))


def exists_with_different_field(index: int, name: str) -> Failure:
    return Failure(
        Code.ALREADY_EXISTS,
        TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS,
        f"transfer already exists with a different {name}",
        path(index, name),
        {"field": name},
    )


def linked_failed(index: int, failed_index: int) -> Failure:
    return Failure(
        Code.FAILED_PRECONDITION,
        LINKED_EVENT_FAILED,
        f"linked transfer transfers[{failed_index}] failed",
        path(index, "linked"),
        {"failed_index": str(failed_index)},
    )


def chain_open(index: int) -> Failure:
    return Failure(
        Code.INVALID_ARGUMENT,
        LINKED_EVENT_CHAIN_OPEN,
        "the last transfer of the request is linked: the chain is never closed",
        path(index, "linked"),
    )
