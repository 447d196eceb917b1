"""PaymentsService gRPC servicer: protobuf <-> service, no rules.

Access: ownership is checked in the service layer (a customer sees only their
own payments and charges; backoffice reads any); the method policies already
demand roles for RefundPayment/UpdatePaymentLimits/ReconcilePayments and
`service` for the internal CreateServicePayment.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from fintech.payments.v1 import payments_pb2 as P
from fintech.payments.v1 import payments_pb2_grpc
from services.payments import store, wire
from services.payments.domain import webhooks
from services.payments.domain.bank_account import (
    OUR_BANK_CODE,
    OUR_BRANCH,
    OUR_ISPB,
    format_account,
)
from services.payments.domain.rules import charge_id_for, payment_id_for
from services.payments.service import PaymentInput, PaymentsService, _user_id, validate_payment
from services.platform.auth import current_principal, require_role
from services.platform.errors import invalid_argument
from services.platform.handlers import metadata_value

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
SERVICE_NAME = P.DESCRIPTOR.services_by_name["PaymentsService"].full_name
_KEY_TYPES = {v: k.removeprefix("PIX_KEY_TYPE_") for k, v in P.PixKeyType.items()}
_ACCOUNT_TYPES = {v: k.removeprefix("BANK_ACCOUNT_TYPE_") for k, v in P.BankAccountType.items()}


def _idempotency_key(context: Context) -> str:
    key = metadata_value(context, "idempotency-key")
    if not key:  # the interceptor already refused a mutating call without one
        raise invalid_argument("IDEMPOTENCY_KEY_REQUIRED", "idempotency-key metadata required")
    return key


def _input(p: P.Payment) -> PaymentInput:
    method = P.PaymentMethod.Name(p.method).removeprefix("PAYMENT_METHOD_")
    instrument = p.WhichOneof("instrument")
    pix = bank = card = None
    if instrument == "pix":
        pix = {"key_type": _KEY_TYPES.get(p.pix.key_type, "UNSPECIFIED"), "key": p.pix.key}
    elif instrument == "bank_account":
        b = p.bank_account
        bank = {
            "bank_code": b.bank_code,
            "branch": b.branch,
            "account_number": b.account_number,
            "account_type": _ACCOUNT_TYPES.get(b.account_type, "UNSPECIFIED"),
            "holder_name": b.holder_name,
            "holder_document": b.holder_document,
        }
    elif instrument == "card":
        card = {"card_token": p.card.card_token, "installments": p.card.installments}
    return validate_payment(
        method,
        p.amount.minor_units,
        p.amount.currency_code,
        p.description,
        pix,
        bank,
        card,
    )


def _payment(pair: tuple[store.PaymentRow, list[store.StepRow]]) -> P.Payment:
    return wire.payment_message(*pair)


def _limits(user_id: str, limits: Any, used: int) -> P.PaymentLimits:
    return P.PaymentLimits(
        name=f"users/{user_id}/paymentLimits",
        per_payment_limit=wire.money(limits.per_payment),
        daily_limit=wire.money(limits.daily),
        daily_used=wire.money(used),
        daily_remaining=wire.money(max(0, limits.daily - used)),
        nightly_limit=wire.money(limits.nightly),
    )


class PaymentsApi(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, service: PaymentsService) -> None:
        self._s = service

    async def CreatePayment(self, request: P.CreatePaymentRequest, context: Context) -> P.Payment:
        principal = current_principal()
        data = _input(request.payment)
        pid = payment_id_for(principal.subject, _idempotency_key(context))
        return _payment(
            await self._s.create_payment(
                principal.subject, pid, data, performed_by=principal.subject
            )
        )

    async def CreateServicePayment(
        self, request: P.CreateServicePaymentRequest, context: Context
    ) -> P.Payment:
        principal = require_role("service")
        user_id = _user_id(request.user, "user")
        ref = request.external_reference
        if not 1 <= len(ref) <= 128:
            raise invalid_argument(
                "INVALID_ARGUMENT",
                "external_reference is required",
                violations=[("external_reference", "1-128 characters")],
            )
        data = _input(request.payment)
        # The caller's reference is the natural key: one payment per reference.
        pid = payment_id_for(f"service:{user_id}", ref)
        return _payment(
            await self._s.create_payment(
                user_id,
                pid,
                data,
                external_reference=ref,
                performed_by=f"service:{principal.subject}",
                # The customer's limits guard payments the customer starts; a
                # service payout (a loan disbursed to the borrower's own key) is
                # decided by that service's own rules.
                enforce_limits=False,
            )
        )

    async def GetPayment(self, request: P.GetPaymentRequest, context: Context) -> P.Payment:
        return _payment(await self._s.get_payment(request.name))

    async def ListPayments(
        self, request: P.ListPaymentsRequest, context: Context
    ) -> P.ListPaymentsResponse:
        state = (
            P.PaymentState.Name(request.state).removeprefix("PAYMENT_STATE_")
            if request.state
            else None
        )
        method = (
            P.PaymentMethod.Name(request.method).removeprefix("PAYMENT_METHOD_")
            if request.method
            else None
        )
        rows, token = await self._s.list_payments(
            current_principal(),
            state,
            method,
            store.page_size(request.page_size),
            request.page_token,
        )
        return P.ListPaymentsResponse(
            payments=[wire.payment_message(r) for r in rows], next_page_token=token
        )

    async def CancelPayment(self, request: P.CancelPaymentRequest, context: Context) -> P.Payment:
        return _payment(await self._s.cancel_payment(request.name))

    async def ConfirmPaymentChallenge(
        self, request: P.ConfirmPaymentChallengeRequest, context: Context
    ) -> P.Payment:
        return _payment(await self._s.confirm_challenge(request.name, request.challenge_response))

    async def RefundPayment(self, request: P.RefundPaymentRequest, context: Context) -> P.Payment:
        return _payment(
            await self._s.refund(
                request.name,
                request.amount.minor_units,
                request.amount.currency_code,
                request.reason,
                _idempotency_key(context),
            )
        )

    async def CreatePixCharge(
        self, request: P.CreatePixChargeRequest, context: Context
    ) -> P.PixCharge:
        principal = current_principal()
        c = request.pix_charge
        row = await self._s.create_charge(
            principal,
            charge_id_for(principal.subject, _idempotency_key(context)),
            c.amount.minor_units,
            c.amount.currency_code,
            c.description,
            c.expiration_seconds,
        )
        return wire.charge_message(row)

    async def GetPixCharge(self, request: P.GetPixChargeRequest, context: Context) -> P.PixCharge:
        return wire.charge_message(await self._s.get_charge(request.name))

    async def ListPixCharges(
        self, request: P.ListPixChargesRequest, context: Context
    ) -> P.ListPixChargesResponse:
        state = (
            P.PixChargeState.Name(request.state).removeprefix("PIX_CHARGE_STATE_")
            if request.state
            else None
        )
        rows, token = await self._s.list_charges(
            current_principal(), state, store.page_size(request.page_size), request.page_token
        )
        return P.ListPixChargesResponse(
            pix_charges=[wire.charge_message(r) for r in rows], next_page_token=token
        )

    async def CancelPixCharge(
        self, request: P.CancelPixChargeRequest, context: Context
    ) -> P.PixCharge:
        return wire.charge_message(await self._s.cancel_charge(request.name))

    async def GetPaymentLimits(
        self, request: P.GetPaymentLimitsRequest, context: Context
    ) -> P.PaymentLimits:
        return _limits(*await self._s.get_limits(request.name))

    async def GetBankAccount(
        self, request: P.GetBankAccountRequest, context: Context
    ) -> P.BankAccount:
        user_id, number = await self._s.get_bank_account(request.name)
        return P.BankAccount(
            name=f"users/{user_id}/bankAccount",
            bank_code=OUR_BANK_CODE,
            ispb=OUR_ISPB,
            branch=OUR_BRANCH,
            account_number=format_account(number),
            account_type=P.BANK_ACCOUNT_TYPE_PAYMENT,
        )

    async def UpdatePaymentLimits(
        self, request: P.UpdatePaymentLimitsRequest, context: Context
    ) -> P.PaymentLimits:
        pl = request.payment_limits
        return _limits(
            *await self._s.update_limits(
                pl.name,
                pl.per_payment_limit.minor_units,
                pl.daily_limit.minor_units,
                pl.nightly_limit.minor_units,
                request.reason,
            )
        )

    async def HandlePspWebhook(
        self, request: P.HandlePspWebhookRequest, context: Context
    ) -> P.HandlePspWebhookResponse:
        duplicate = await self._s.handle_webhook(
            bytes(request.body.data),
            metadata_value(context, webhooks.TIMESTAMP_HEADER) or "",
            metadata_value(context, webhooks.SIGNATURE_HEADER) or "",
        )
        return P.HandlePspWebhookResponse(duplicate=duplicate)

    async def ReconcilePayments(
        self, request: P.ReconcilePaymentsRequest, context: Context
    ) -> P.ReconcilePaymentsResponse:
        name, checked, mismatches = await self._s.reconcile(request.report_date)
        return P.ReconcilePaymentsResponse(
            reconciliation=name,
            payments_checked=checked,
            mismatches=[
                P.PaymentMismatch(
                    payment=payment,
                    state=P.PaymentState.Value(f"PAYMENT_STATE_{state}"),
                    match_status=status,
                    detail=detail,
                )
                for payment, state, status, detail in mismatches
            ],
        )


def register(server: grpc.aio.Server, service: PaymentsService) -> list[str]:
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(PaymentsApi(service), server)
    return [SERVICE_NAME]
