"""Helpers of the loans integration tests and bench: a borrower, typed clients
(loans and ledger over gRPC with minted tokens), the test clock, wallet top-ups.

The borrower is the simulators' documented salaried customer: registered and
logged in through Envoy, its Open Finance statements imported through risk
(so risk's Score approves it), KYC marked approved with the admin role (the
KYC issue's flow is not what these tests are about), and its wallet topped up
from bank cash on the ledger when a test needs money to pay with.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from temporalio.client import Client

from devstack.stack import Stack
from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.loans.v1 import loans_pb2, loans_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain import chart
from services.loans.ledger_gateway import receivable_id
from services.loans.workflows import ACCRUAL_WORKFLOW
from services.platform.errors import ErrorDetails, details_from_rpc_error
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.integration.edge import EdgeClient
from tests.integration.risk.risk_it_cpfs import SALARIED_CPF
from tests.integration.risk.risk_it_support import (
    Bank,
    OpenFinanceApp,
    customer,
    months_ago,
    simulator_urls,
)
from tests.support import kyc_events
from tests.support.tokens import mint_token

CALL_TIMEOUT_S = 20.0
POLL_S = 0.25
TOKEN_REFRESH_S = 120.0


def admin_sql(stack: Stack, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    admin = database_url(stack.infra.pg_admin_url, DEFAULT_DATABASE)
    with psycopg.connect(admin, connect_timeout=10, autocommit=True) as conn:
        cur = conn.execute(sql, tuple(params))  # type: ignore[arg-type]
        return list(cur.fetchall()) if cur.description else []


def set_clock_offset(stack: Stack, days: int) -> None:
    """Move the loans service's "today" (FINTECH_LOANS_TEST_CLOCK=1 processes only)."""
    admin_sql(stack, "UPDATE loans.test_clock SET offset_days = %s WHERE id", (days,))


async def run_accrual(stack: Stack) -> None:
    """The daily job now (offer expiry, then accrual), under the test's own workflow id."""
    client = await Client.connect(stack.infra.temporal_address)
    await client.execute_workflow(
        ACCRUAL_WORKFLOW, id=f"test-accrual-{uuid.uuid4()}", task_queue="loans"
    )


def approve_kyc(stack: Stack, user: str) -> None:
    # The kyc service's own event: identity and risk both follow it.
    kyc_events.approve_kyc(stack, user)


def receivable_id_of(loan_id: str) -> uuid.UUID:
    """The ledger account loans opens for a loan (a fixed function of its id)."""
    return receivable_id(uuid.UUID(loan_id))


def brl(minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="BRL", minor_units=minor)


def rpc_error(call: Any) -> ErrorDetails:
    try:
        call()
    except grpc.RpcError as exc:
        return details_from_rpc_error(exc)
    raise AssertionError("the call succeeded")


class Tokens:
    def __init__(self, stack: Stack, roles: list[str], subject: str) -> None:
        self._stack = stack
        self._roles = roles
        self._subject = subject
        self._cached: tuple[str, float] | None = None

    def metadata(self, key: str | None = None) -> list[tuple[str, str]]:
        if self._cached is None or self._cached[1] < time.monotonic():
            token = mint_token(self._stack.secrets_dir, self._roles, subject=self._subject)
            self._cached = (token, time.monotonic() + TOKEN_REFRESH_S)
        md = [("authorization", f"Bearer {self._cached[0]}")]
        if key is not None:
            md.append(("idempotency-key", key))
        return md


class LoansClient:
    """LoansService over gRPC as one caller (a customer, or backoffice)."""

    def __init__(self, stack: Stack, subject: str, roles: list[str]) -> None:
        self.channel = grpc.insecure_channel(stack.grpc_targets["loans"])
        self.stub = loans_pb2_grpc.LoansServiceStub(self.channel)
        self.tokens = Tokens(stack, roles, subject)

    def close(self) -> None:
        self.channel.close()

    def simulate(self, principal: int, term: int, **kw: Any) -> loans_pb2.Quote:
        request = loans_pb2.SimulateLoanRequest(
            principal=brl(principal),
            term_months=term,
            amortization_system=kw.pop("system", loans_pb2.AMORTIZATION_SYSTEM_PRICE),
            **kw,
        )
        reply: loans_pb2.Quote = self.stub.SimulateLoan(
            request, metadata=self.tokens.metadata(), timeout=CALL_TIMEOUT_S
        )
        return reply

    def create(self, quote: str, key: str | None = None, pix_key: str = "") -> loans_pb2.Loan:
        reply: loans_pb2.Loan = self.stub.CreateLoan(
            loans_pb2.CreateLoanRequest(
                quote=quote, disbursement=loans_pb2.Disbursement(pix_key=pix_key)
            ),
            metadata=self.tokens.metadata(key or uuid.uuid4().hex),
            timeout=CALL_TIMEOUT_S,
        )
        return reply

    def get(self, name: str) -> loans_pb2.Loan:
        reply: loans_pb2.Loan = self.stub.GetLoan(
            loans_pb2.GetLoanRequest(name=name),
            metadata=self.tokens.metadata(),
            timeout=CALL_TIMEOUT_S,
        )
        return reply

    def wait_state(self, name: str, states: set[int], timeout_s: float = 60.0) -> loans_pb2.Loan:
        deadline = time.monotonic() + timeout_s
        loan = self.get(name)
        while loan.state not in states:
            assert time.monotonic() < deadline, (
                f"{name} stuck in {loans_pb2.LoanState.Name(loan.state)}"
            )
            time.sleep(POLL_S)
            loan = self.get(name)
        return loan

    def pay(self, name: str, amount: int = 0, *, payoff: bool = False) -> loans_pb2.LoanPayment:
        reply: loans_pb2.LoanPayment = self.stub.PayLoan(
            loans_pb2.PayLoanRequest(name=name, amount=brl(amount), payoff=payoff),
            metadata=self.tokens.metadata(uuid.uuid4().hex),
            timeout=CALL_TIMEOUT_S,
        )
        return reply

    def payoff_quote(self, name: str) -> loans_pb2.PayoffQuote:
        reply: loans_pb2.PayoffQuote = self.stub.GetPayoffQuote(
            loans_pb2.GetPayoffQuoteRequest(name=f"{name}/payoffQuote"),
            metadata=self.tokens.metadata(),
            timeout=CALL_TIMEOUT_S,
        )
        return reply

    def events(self, name: str) -> list[loans_pb2.LoanEvent]:
        reply = self.stub.ListLoanEvents(
            loans_pb2.ListLoanEventsRequest(parent=name, page_size=500),
            metadata=self.tokens.metadata(),
            timeout=CALL_TIMEOUT_S,
        )
        return list(reply.loan_events)


class LedgerClient:
    """The ledger as a service sees it (role `service`)."""

    def __init__(self, stack: Stack) -> None:
        self.channel = grpc.insecure_channel(stack.grpc_targets["ledger"])
        self.stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)
        self.tokens = Tokens(stack, ["service", "backoffice"], "service:loans-tests")

    def close(self) -> None:
        self.channel.close()

    def account(self, name: str) -> ledger_pb2.Account:
        reply: ledger_pb2.Account = self.stub.GetAccount(
            ledger_pb2.GetAccountRequest(name=name),
            metadata=self.tokens.metadata(),
            timeout=CALL_TIMEOUT_S,
        )
        return reply

    def net_debit(self, name: str) -> int:
        a = self.account(name)
        return int(a.debits_posted.minor_units - a.credits_posted.minor_units)

    def net_credit(self, name: str) -> int:
        return -self.net_debit(name)

    def net_debit_or_none(self, name: str) -> int | None:
        """None while the account does not exist yet."""
        try:
            return self.net_debit(name)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                return None
            raise

    def transfer(self, name: str) -> ledger_pb2.Transfer:
        reply: ledger_pb2.Transfer = self.stub.GetTransfer(
            ledger_pb2.GetTransferRequest(name=name),
            metadata=self.tokens.metadata(),
            timeout=CALL_TIMEOUT_S,
        )
        return reply

    def wallet(self, user: str, timeout_s: float = 30.0) -> str:
        """The user's wallet (opened asynchronously from user.registered)."""
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.stub.ListAccounts(
                ledger_pb2.ListAccountsRequest(
                    owner=user, kind=ledger_pb2.ACCOUNT_KIND_USER_WALLET
                ),
                metadata=self.tokens.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            if reply.accounts:
                return str(reply.accounts[0].name)
            assert time.monotonic() < deadline, f"no wallet for {user}"
            time.sleep(POLL_S)

    def top_up(self, wallet: str, amount: int) -> None:
        """Money in from bank cash (as a PIX received would bring it)."""
        reply = self.stub.CreateTransfers(
            ledger_pb2.CreateTransfersRequest(
                transfers=[
                    ledger_pb2.Transfer(
                        name=f"transfers/{uuid.uuid4()}",
                        debit_account=f"accounts/{chart.BANK_CASH.id}",
                        credit_account=wallet,
                        amount=brl(amount),
                        kind=ledger_pb2.TRANSFER_KIND_POSTED,
                        code="test.top_up",
                    )
                ]
            ),
            metadata=self.tokens.metadata(uuid.uuid4().hex),
            timeout=CALL_TIMEOUT_S,
        )
        assert reply.results[0].status.code == 0, reply.results[0].status

    def verify(self) -> ledger_pb2.VerifyLedgerResponse:
        reply: ledger_pb2.VerifyLedgerResponse = self.stub.VerifyLedger(
            ledger_pb2.VerifyLedgerRequest(),
            metadata=self.tokens.metadata(),
            timeout=60.0,
        )
        return reply


@dataclass(frozen=True)
class Borrower:
    user: str  # users/{id}
    user_id: str


def prepare_borrower(stack: Stack, cpf: str = SALARIED_CPF) -> Borrower:
    """The salaried customer, approvable by risk: statements imported, KYC approved."""
    open_finance_url, _ = simulator_urls(stack)
    bank = Bank(open_finance_url)
    edge = EdgeClient(stack.https_url, str(stack.ca_file))
    try:
        deadline = time.monotonic() + 30
        while not bank.healthy():
            assert time.monotonic() < deadline, "Open Finance simulator not healthy"
            time.sleep(0.5)
        bank.reset_faults()
        app = OpenFinanceApp(edge, customer(edge, cpf))
        consent = app.authorised_consent(bank)
        app.import_all(consent["name"], from_date=months_ago(12), to_date=months_ago(0))
        approve_kyc(stack, app.user)
        return Borrower(user=app.user, user_id=app.user.removeprefix("users/"))
    finally:
        edge.close()
        bank.close()


def settle_open_loans(stack: Stack, borrower: Borrower) -> None:
    """Pay off whatever an interrupted earlier run left owing (the profile's
    database survives between runs), so clock jumps cannot default it."""
    loans = LoansClient(stack, borrower.user_id, ["user"])
    ledger = LedgerClient(stack)
    try:
        wallet = ledger.wallet(borrower.user)
        for state in (loans_pb2.LOAN_STATE_FUNDED, loans_pb2.LOAN_STATE_DEFAULTED):
            reply = loans.stub.ListLoans(
                loans_pb2.ListLoansRequest(state=state, page_size=100),
                metadata=loans.tokens.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            for loan in reply.loans:
                ledger.top_up(wallet, loans.payoff_quote(loan.name).payoff_amount.minor_units)
                loans.pay(loan.name, payoff=True)
    finally:
        loans.close()
        ledger.close()
