"""Loans's gRPC servicer: protobuf <-> service, no rules.

Access: method policies (contract) demand a token everywhere and the
backoffice role for ListLoanEvents; ownership is checked in the service.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from fintech.loans.v1 import loans_pb2, loans_pb2_grpc
from services.loans.service import LoansService, SimulateInput
from services.platform.auth import current_principal
from services.platform.errors import invalid_argument
from services.platform.handlers import metadata_value

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
IDEMPOTENCY_METADATA = "idempotency-key"


def _idempotency_key(context: Context) -> str:
    # The interceptor already refused a mutating call without one.
    key = metadata_value(context, IDEMPOTENCY_METADATA)
    if not key:
        raise invalid_argument("IDEMPOTENCY_KEY_REQUIRED", "idempotency-key metadata required")
    return key


class LoansApi(loans_pb2_grpc.LoansServiceServicer):
    def __init__(self, service: LoansService) -> None:
        self._service = service

    async def SimulateLoan(
        self, request: loans_pb2.SimulateLoanRequest, context: Context
    ) -> loans_pb2.Quote:
        return await self._service.simulate(
            current_principal(),
            SimulateInput(
                principal_minor=request.principal.minor_units,
                currency=request.principal.currency_code,
                term_months=request.term_months,
                system=request.amortization_system,
                first_due_date=request.first_due_date,
                iof_payment=request.iof_payment,
            ),
        )

    async def GetQuote(
        self, request: loans_pb2.GetQuoteRequest, context: Context
    ) -> loans_pb2.Quote:
        return await self._service.get_quote(request.name)

    async def CreateLoan(
        self, request: loans_pb2.CreateLoanRequest, context: Context
    ) -> loans_pb2.Loan:
        return await self._service.create_loan(
            current_principal(), request.quote, request.disbursement.pix_key
        )

    async def GetLoan(self, request: loans_pb2.GetLoanRequest, context: Context) -> loans_pb2.Loan:
        return await self._service.get_loan(request.name)

    async def ListLoans(
        self, request: loans_pb2.ListLoansRequest, context: Context
    ) -> loans_pb2.ListLoansResponse:
        return await self._service.list_loans(
            current_principal(), request.user, request.state, request.page_size, request.page_token
        )

    async def AcceptLoanOffer(
        self, request: loans_pb2.AcceptLoanOfferRequest, context: Context
    ) -> loans_pb2.Loan:
        return await self._service.accept_offer(current_principal(), request.name)

    async def CancelLoan(
        self, request: loans_pb2.CancelLoanRequest, context: Context
    ) -> loans_pb2.Loan:
        return await self._service.cancel_loan(current_principal(), request.name)

    async def PayLoan(
        self, request: loans_pb2.PayLoanRequest, context: Context
    ) -> loans_pb2.LoanPayment:
        return await self._service.pay(
            current_principal(),
            request.name,
            request.amount.minor_units,
            request.amount.currency_code,
            request.payoff,
            _idempotency_key(context),
        )

    async def GetPayoffQuote(
        self, request: loans_pb2.GetPayoffQuoteRequest, context: Context
    ) -> loans_pb2.PayoffQuote:
        return await self._service.payoff_quote(request.name)

    async def ListLoanPayments(
        self, request: loans_pb2.ListLoanPaymentsRequest, context: Context
    ) -> loans_pb2.ListLoanPaymentsResponse:
        return await self._service.list_payments(
            request.parent, request.page_size, request.page_token
        )

    async def ListLoanEvents(
        self, request: loans_pb2.ListLoanEventsRequest, context: Context
    ) -> loans_pb2.ListLoanEventsResponse:
        return await self._service.list_events(
            request.parent, request.page_size, request.page_token
        )


def service_names() -> list[str]:
    return [loans_pb2.DESCRIPTOR.services_by_name["LoansService"].full_name]


def register(server: grpc.aio.Server, service: LoansService) -> None:
    loans_pb2_grpc.add_LoansServiceServicer_to_server(LoansApi(service), server)
