"""PIX payout of a funded loan, through payments' internal CreateServicePayment.

Funding always credits the wallet first (the ledger chain); when the customer
gave a PIX key, the loan process then asks payments to pay the disbursed
amount out of the wallet to that key. Payments owns the PIX flow (DICT, PSP,
settlement, failures and refunds); a payout that fails leaves the money in
the customer's wallet, so the loan is never half-funded either way. The call
is idempotent by the loan (external_reference + idempotency key).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Protocol

import grpc

from fintech.payments.v1 import payments_pb2, payments_pb2_grpc
from fintech.type.v1 import money_pb2
from services.loans.remote import CallPolicy, RemoteService, RemoteUnavailableError

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+55\d{10,11}$")
_CPF = re.compile(r"^\d{11}$")
_CNPJ = re.compile(r"^[A-Z0-9]{12}\d{2}$")


def pix_key_type(key: str) -> int | None:
    """The DICT key type of `key` (payments_pb2.PixKeyType), or None if it is none."""
    if _PHONE.match(key):
        return payments_pb2.PIX_KEY_TYPE_PHONE
    if _CPF.match(key):
        return payments_pb2.PIX_KEY_TYPE_CPF
    if _CNPJ.match(key):
        return payments_pb2.PIX_KEY_TYPE_CNPJ
    if _EMAIL.match(key):
        return payments_pb2.PIX_KEY_TYPE_EMAIL
    try:
        if uuid.UUID(key).version == 4 and len(key) == 36:
            return payments_pb2.PIX_KEY_TYPE_EVP
    except ValueError:
        pass
    return None


class PayoutRefusedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Payout(Protocol):
    async def pay_out(
        self, loan_id: uuid.UUID, user_id: str, pix_key: str, amount_minor: int
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class PayoutCheck:
    """What payments says when asked once more: its payment's name, or why not."""

    payment: str = ""
    reason: str = ""


async def confirm_payout(
    payout: Payout,
    loan_id: uuid.UUID,
    user_id: str,
    pix_key: str,
    amount_minor: int,
    *,
    unanswered: str,
) -> PayoutCheck:
    """Before a payout that was never answered is told as failed, ask payments once more.

    The request may have reached payments even though no answer reached us (a
    slow call past its deadline, an answer lost with the connection). The call
    is idempotent by the loan, so the same request returns the payment payments
    holds (or takes it now, which is the payout the customer asked for). A
    refusal is payments' answer; silence again leaves `unanswered` as the reason.
    """
    try:
        return PayoutCheck(payment=await payout.pay_out(loan_id, user_id, pix_key, amount_minor))
    except PayoutRefusedError as exc:
        return PayoutCheck(reason=exc.reason)
    except RemoteUnavailableError:
        return PayoutCheck(reason=unanswered)


class NoPayout:
    """No payments service: the money stays in the wallet."""

    async def pay_out(
        self, loan_id: uuid.UUID, user_id: str, pix_key: str, amount_minor: int
    ) -> str:
        raise PayoutRefusedError("PAYOUT_UNAVAILABLE")


class GrpcPayout:
    def __init__(self, channel: grpc.aio.Channel, remote: RemoteService | None = None) -> None:
        self._stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        self._remote = remote or RemoteService("payments", CallPolicy(timeout_seconds=10.0))

    async def pay_out(
        self, loan_id: uuid.UUID, user_id: str, pix_key: str, amount_minor: int
    ) -> str:
        """The payment's name; PayoutRefusedError when payments says no."""
        key_type = pix_key_type(pix_key)
        if key_type is None:
            raise PayoutRefusedError("PIX_KEY_INVALID")
        request = payments_pb2.CreateServicePaymentRequest(
            user=f"users/{user_id}",
            payment=payments_pb2.Payment(
                method=payments_pb2.PAYMENT_METHOD_PIX,
                amount=money_pb2.Money(currency_code="BRL", minor_units=amount_minor),
                description="Loan disbursement",
                pix=payments_pb2.PixDestination(key_type=key_type, key=pix_key),  # type: ignore[arg-type]
            ),
            external_reference=f"loans/{loan_id}",
        )
        try:
            reply = await self._remote.call(
                self._stub.CreateServicePayment,
                request,
                metadata=(("idempotency-key", f"loans-payout-{loan_id}"),),
            )
        except grpc.aio.AioRpcError as exc:
            raise PayoutRefusedError(exc.code().name) from exc
        return str(reply.name)
