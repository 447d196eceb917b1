"""Money moves for loans, through the ledger (docs/LOANS.md has the postings).

Every transfer id is derived from the loan and the step (uuid5), so a retried
activity re-submits the same ids and the ledger replays instead of moving the
money twice. The legs of one step are a linked chain: all or nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.rpc import error_details_pb2

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain import chart
from services.loans.remote import CallPolicy, RemoteService

CURRENCY = "BRL"
ACCOUNT_PREFIX = "accounts/"
TRANSFER_PREFIX = "transfers/"
MAX_LEGS = 8
LOANS_NAMESPACE = uuid.UUID("6f1f3c52-2b8e-4c59-9a0e-7d4a1b2c3d4e")
RECEIVABLE_LEDGER_CODE = "1.2.01"


def account(system: chart.SystemAccount) -> str:
    return f"{ACCOUNT_PREFIX}{system.id}"


FUNDING = account(chart.LOAN_FUNDING)
IOF_PAYABLE = account(chart.IOF_PAYABLE)
FEE_REVENUE = account(chart.FEE_REVENUE)
INTEREST_INCOME = account(chart.INTEREST_INCOME)
PENALTY_INCOME = account(chart.PENALTY_INCOME)
DEFAULTED = account(chart.LOAN_DEFAULTED)


def step_id(loan_id: uuid.UUID, step: str) -> uuid.UUID:
    """The stable id of a loan's transfer (e.g. step "funding/1", "payment/<id>/2")."""
    return uuid.uuid5(LOANS_NAMESPACE, f"{loan_id}/{step}")


def receivable_id(loan_id: uuid.UUID) -> uuid.UUID:
    return step_id(loan_id, "receivable-account")


@dataclass(frozen=True, slots=True)
class Leg:
    id: uuid.UUID
    debit: str
    credit: str
    amount: int
    code: str
    description: str = ""


class LedgerRejectedError(Exception):
    """The ledger refused the step (e.g. INSUFFICIENT_FUNDS); nothing moved."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class Ledger(Protocol):
    async def open_receivable(self, loan_id: uuid.UUID, user_id: str) -> str: ...

    async def wallet_of(self, user_id: str) -> str: ...

    async def post(self, legs: Sequence[Leg], reference: str) -> list[str]: ...

    async def balance(self, account_name: str) -> tuple[int, int]: ...


class GrpcLedger:
    def __init__(self, channel: grpc.aio.Channel, remote: RemoteService | None = None) -> None:
        self._stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        self._remote = remote or RemoteService("ledger", CallPolicy(timeout_seconds=5.0))

    async def open_receivable(self, loan_id: uuid.UUID, user_id: str) -> str:
        account_id = receivable_id(loan_id)
        request = ledger_pb2.CreateAccountRequest(
            account=ledger_pb2.Account(
                owner=f"users/{user_id}",
                currency_code=CURRENCY,
                kind=ledger_pb2.ACCOUNT_KIND_LOAN_RECEIVABLE,
                ledger_code=RECEIVABLE_LEDGER_CODE,
                display_name=f"Loan {loan_id}",
                # An asset: the customer can never repay more than is owed.
                flags=ledger_pb2.AccountFlags(credits_must_not_exceed_debits=True),
            ),
            account_id=str(account_id),
        )
        reply = await self._remote.call(
            self._stub.CreateAccount,
            request,
            metadata=(("idempotency-key", f"loans-receivable-{loan_id}"),),
        )
        assert reply.name == f"{ACCOUNT_PREFIX}{account_id}", reply.name
        return str(reply.name)

    async def wallet_of(self, user_id: str) -> str:
        reply = await self._remote.call(
            self._stub.ListAccounts,
            ledger_pb2.ListAccountsRequest(
                owner=f"users/{user_id}", kind=ledger_pb2.ACCOUNT_KIND_USER_WALLET, page_size=2
            ),
        )
        wallets = [a.name for a in reply.accounts if a.currency_code == CURRENCY]
        if len(wallets) != 1:
            raise LedgerRejectedError("WALLET_NOT_FOUND", "the customer has no BRL wallet")
        return str(wallets[0])

    async def post(self, legs: Sequence[Leg], reference: str) -> list[str]:
        legs = [leg for leg in legs if leg.amount > 0]  # a zero fee is no transfer
        assert 1 <= len(legs) <= MAX_LEGS
        transfers = [
            ledger_pb2.Transfer(
                name=f"{TRANSFER_PREFIX}{leg.id}",
                debit_account=leg.debit,
                credit_account=leg.credit,
                amount=money_pb2.Money(currency_code=CURRENCY, minor_units=leg.amount),
                kind=ledger_pb2.TRANSFER_KIND_POSTED,
                linked=i < len(legs) - 1,
                code=leg.code,
                external_reference=reference,
                description=leg.description,
            )
            for i, leg in enumerate(legs)
        ]
        key = f"loans-{legs[0].id}"
        reply = await self._remote.call(
            self._stub.CreateTransfers,
            ledger_pb2.CreateTransfersRequest(transfers=transfers),
            metadata=(("idempotency-key", key),),
        )
        failed = [r for r in reply.results if r.status.code != 0]
        if failed:
            # The root cause, not the LINKED_EVENT_FAILED of its companions.
            reasons = [_reason(r.status) for r in failed]
            root = next((r for r in reasons if r != "LINKED_EVENT_FAILED"), reasons[0])
            raise LedgerRejectedError(root, failed[0].status.message)
        return [str(r.transfer.name) for r in reply.results]

    async def balance(self, account_name: str) -> tuple[int, int]:
        """(debits_posted, credits_posted) of an account."""
        reply = await self._remote.call(
            self._stub.GetAccount, ledger_pb2.GetAccountRequest(name=account_name)
        )
        return int(reply.debits_posted.minor_units), int(reply.credits_posted.minor_units)


def _reason(status: object) -> str:
    for detail in getattr(status, "details", []):
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return "LEDGER_REJECTED"
