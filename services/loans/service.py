"""Loans' use cases: simulate, apply, offers, cancel, pay, payoff, reads.

Transactions: mutating handlers run inside the idempotency interceptor's
transaction (`db.transaction()` joins it), so a state change, its history row,
its outbox event and the stored response commit together. The loan process
(decision, funding) runs in the Temporal workflow of workflows.py, started by
CreateLoan with the loan's id as workflow id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client as TemporalClient
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from fintech.loans.v1 import loans_pb2
from services.loans import events, store, terms, wire
from services.loans.clock import LOCAL_ZONE, Clock, local_day
from services.loans.domain import charges, state
from services.loans.domain.calendar import add_months
from services.loans.domain.schedule import (
    FeePolicy,
    IofMode,
    QuoteError,
    QuoteTerms,
    System,
    quote,
    redate,
    validate,
)
from services.loans.ledger_gateway import (
    DEFAULTED,
    INTEREST_INCOME,
    Ledger,
    LedgerRejectedError,
    Leg,
    step_id,
)
from services.loans.payout import pix_key_type
from services.loans.remote import CallPolicy, RemoteService, RemoteUnavailableError
from services.loans.risk_gateway import CachedBands
from services.platform import pagination
from services.platform.auth import Principal, current_principal, require_owner
from services.platform.crypto import FieldCipher
from services.platform.db import Database
from services.platform.errors import (
    AppError,
    failed_precondition,
    invalid_argument,
    permission_denied,
    unavailable,
)

log = logging.getLogger(__name__)

TASK_QUEUE = "loans"
LOAN_WORKFLOW = "LoanProcess"
QUOTE_TTL = timedelta(minutes=30)
QUOTE_CACHE_ENTRIES = 1024  # ~25 KB each (terms, JSON, message): ~25 MB at most
CURRENCY = "BRL"
MAX_PIX_KEY_CHARS = 77  # DICT: the longest key type (e-mail) is 77 characters
IDENTITY_TIMEOUT_SECONDS = 2.0
PIX_CONTEXT = b"loans.pix_key"
BACKOFFICE = "backoffice"
# Loans that block a new application: an unpaid default.
BLOCKING_STATES = ("DEFAULTED",)


def workflow_id(loan_id: uuid.UUID) -> str:
    return f"loan-{loan_id}"


def parse_id(name: str, prefix: str, field: str, suffix: str = "") -> uuid.UUID:
    if name.startswith(prefix) and name.endswith(suffix):
        core = name[len(prefix) : len(name) - len(suffix)]
        try:
            return uuid.UUID(core)
        except ValueError:
            pass
    raise invalid_argument(
        "NAME_INVALID",
        f"{field} must be {prefix}{{id}}{suffix}",
        [(field, f"must be {prefix}{{id}}{suffix}")],
    )


def _after(token: str, listing: str) -> store.Keyset | None:
    return pagination.decode_time_id(token, listing) if token else None


def _next_token(rows: Sequence[Any], limit: int, listing: str) -> str:
    """Rows were fetched with limit + 1: one more means another page, after row `limit`."""
    if len(rows) <= limit:
        return ""
    return pagination.encode_time_id(listing, rows[limit - 1].created_at, rows[limit - 1].id)


class KycDirectory(Protocol):
    async def kyc_status(self, user_id: str) -> str: ...


class GrpcKycDirectory:
    """The customer's KYC status from identity (loans reads it, never stores it)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._remote = RemoteService(
            "identity", CallPolicy(timeout_seconds=IDENTITY_TIMEOUT_SECONDS)
        )

    async def kyc_status(self, user_id: str) -> str:
        try:
            user = await self._remote.call(
                self._stub.GetUser, identity_pb2.GetUserRequest(name=f"users/{user_id}")
            )
        except RemoteUnavailableError as exc:
            raise unavailable("IDENTITY_UNAVAILABLE", "identity is not answering") from exc
        except grpc.aio.AioRpcError:
            return "UNKNOWN"  # refused: treated as not approved (the safe side)
        return identity_pb2.KycStatus.Name(user.kyc_status).removeprefix("KYC_STATUS_")


@dataclass(frozen=True, slots=True)
class SimulateInput:
    principal_minor: int
    currency: str
    term_months: int
    system: int
    first_due_date: str
    iof_payment: int


@dataclass(frozen=True, slots=True)
class QuoteKey:
    """Everything a quote depends on (the domain's `quote` is a pure function)."""

    principal: int
    term_months: int
    system: System
    rate: Decimal
    disbursement: date
    first_due: date
    mode: IofMode
    fees: FeePolicy


class QuoteCache:
    """Computed quotes by their inputs, least recently used out first.

    Customers simulate the same round amounts and terms at the same band rate
    all day; a hit skips the schedule, IOF and CET and the building of the
    48-row message (a copy of the template is ~50 µs instead of ~4 ms). The
    domain function is pure, so a hit is exactly what recomputing gives; the
    key holds the dates, so nothing survives into the next day's quotes.
    """

    def __init__(self, max_entries: int = QUOTE_CACHE_ENTRIES) -> None:
        assert 1 <= max_entries <= 1_000_000
        self._max = max_entries
        self._entries: OrderedDict[QuoteKey, tuple[QuoteTerms, str, loans_pb2.Quote]] = (
            OrderedDict()
        )

    def get(self, key: QuoteKey) -> tuple[QuoteTerms, str, loans_pb2.Quote]:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found
        computed = quote(
            principal=key.principal,
            term_months=key.term_months,
            system=key.system,
            monthly_rate=key.rate,
            disbursement_date=key.disbursement,
            first_due_date=key.first_due,
            iof_mode=key.mode,
            fees=key.fees,
        )
        entry = (computed, json.dumps(terms.to_json(computed)), wire.quote_message(computed))
        self._entries[key] = entry
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return entry


class LoansService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        bands: CachedBands,
        kyc: KycDirectory,
        ledger: Ledger,
        temporal: TemporalClient | None,
        cipher: FieldCipher | None,
        fees: FeePolicy | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._bands = bands
        self._kyc = kyc
        self._ledger = ledger
        self._temporal = temporal
        self._cipher = cipher
        self._fees = fees or FeePolicy()
        self._quotes = QuoteCache()

    @property
    def clock(self) -> Clock:
        return self._clock

    # ------------------------------------------------------------ simulation

    async def simulate(self, principal: Principal, req: SimulateInput) -> loans_pb2.Quote:
        if principal.is_service:
            raise permission_denied("PERMISSION_DENIED", "a simulation is the customer's")
        now = await self._clock.now()
        today = local_day(now)
        bad: list[tuple[str, str]] = []
        if req.currency != CURRENCY:
            bad.append(("principal.currency_code", "must be BRL"))
        if req.system not in wire.SYSTEM_FROM_PROTO:
            bad.append(("amortization_system", "PRICE or SAC is required"))
        if req.iof_payment not in (0, *wire.IOF_TO_PROTO.values()):
            bad.append(("iof_payment", "FINANCED or UPFRONT"))
        first_due = add_months(today, 1)
        if req.first_due_date:
            try:
                first_due = date.fromisoformat(req.first_due_date)
            except ValueError:
                bad.append(("first_due_date", "must be YYYY-MM-DD"))
        if not bad:
            try:
                # Policy checks before asking risk: a bad request costs no decision.
                validate(req.principal_minor, req.term_months, Decimal("0.01"), today, first_due)
            except QuoteError as exc:
                bad.extend(exc.violations)
        if bad:
            raise invalid_argument("SIMULATION_INVALID", "the simulation request is invalid", bad)
        system = wire.SYSTEM_FROM_PROTO[req.system]  # type: ignore[index]
        mode = (
            IofMode.UPFRONT
            if req.iof_payment == loans_pb2.IOF_PAYMENT_UPFRONT
            else IofMode.FINANCED
        )
        user_id = principal.subject
        band = await self._bands.band(
            user_id, req.principal_minor, req.term_months, key=f"loans-sim-{uuid.uuid4()}"
        )
        if band.declined:
            raise failed_precondition(
                "CREDIT_DECLINED",
                "no credit offer for this customer now: " + "; ".join(band.reasons[:3]),
            )
        if req.principal_minor > band.max_amount_minor:
            raise AppError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "AMOUNT_ABOVE_LIMIT",
                f"the most this customer may borrow now is {band.max_amount_minor} centavos",
                violations=[("principal.minor_units", f"at most {band.max_amount_minor}")],
                metadata={"max_amount_minor": str(band.max_amount_minor)},
            )
        try:
            computed, terms_json, template = self._quotes.get(
                QuoteKey(
                    req.principal_minor, req.term_months, system, band.rate, today,
                    first_due, mode, self._fees,
                )
            )  # fmt: skip
        except QuoteError as exc:
            raise invalid_argument("SIMULATION_INVALID", str(exc), exc.violations) from exc
        quote_id = uuid.uuid4()
        expire = now + QUOTE_TTL
        async with self._db.transaction() as conn:
            await store.insert_quote(
                conn,
                id=quote_id,
                user_id=user_id,
                principal=computed.principal,
                term=computed.term_months,
                system=computed.system.value,
                iof_mode=computed.iof_mode.value,
                disbursement=computed.disbursement_date,
                first_due=computed.first_due_date,
                rate=str(computed.monthly_rate),
                band=band.band,
                decision=band.decision,
                max_amount=band.max_amount_minor,
                terms=terms_json,
                created_at=now,
                expire_at=expire,
            )
        msg = loans_pb2.Quote()
        msg.CopyFrom(template)
        msg.name = f"{wire.QUOTE_PREFIX}{quote_id}"
        msg.user = f"{wire.USER_PREFIX}{user_id}"
        msg.risk_band = band.band
        msg.create_time.CopyFrom(wire.ts(now))
        msg.expire_time.CopyFrom(wire.ts(expire))
        return msg

    async def get_quote(self, name: str) -> loans_pb2.Quote:
        quote_id = parse_id(name, wire.QUOTE_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_quote(conn, quote_id)
        if row is None:
            raise permission_denied("PERMISSION_DENIED", "not your quote")
        require_owner(row.user_id)
        return wire.stored_quote_message(row)

    # ------------------------------------------------------------ application

    async def create_loan(
        self, principal: Principal, quote_name: str, pix_key: str
    ) -> loans_pb2.Loan:
        quote_id = parse_id(quote_name, wire.QUOTE_PREFIX, "quote")
        if pix_key and (len(pix_key) > MAX_PIX_KEY_CHARS or pix_key_type(pix_key) is None):
            raise invalid_argument(
                "DISBURSEMENT_INVALID",
                "the PIX key is not a valid DICT key",
                [("disbursement.pix_key", "CPF, CNPJ, +55 phone, e-mail or random key (EVP)")],
            )
        now = await self._clock.now()
        today = local_day(now)
        async with self._db.transaction() as conn:
            q = await store.get_quote(conn, quote_id)
            if q is None:
                raise permission_denied("PERMISSION_DENIED", "not your quote")
            require_owner(q.user_id)
            existing = await store.loan_for_quote(conn, quote_id)
            if existing is not None:
                # Natural key: one loan per quote; applying again returns it.
                return await self._loan_message(conn, existing, today)
            if q.expire_at <= now:
                raise failed_precondition("QUOTE_EXPIRED", "the quote expired; simulate again")
            # Eligibility, each refusal with its own reason.
            if await store.user_has_loan_in(conn, q.user_id, BLOCKING_STATES):
                raise failed_precondition(
                    "DEFAULTED_LOAN_EXISTS", "a loan in default must be settled first"
                )
            kyc = await self._kyc.kyc_status(q.user_id)
            if kyc != "APPROVED":
                raise failed_precondition(
                    "KYC_NOT_APPROVED", "identity verification must be approved first"
                )
            contract = terms.from_json(q.terms)
            if contract.principal > q.max_amount_minor:
                raise failed_precondition(
                    "AMOUNT_ABOVE_LIMIT", "the amount is above this customer's limit"
                )
            cipher = self._cipher
            pix = None
            if pix_key:
                assert cipher is not None, "PIX keys need the PII cipher"
                pix = cipher.encrypt(pix_key, PIX_CONTEXT)
            row = await store.insert_loan(
                conn,
                id=uuid.uuid4(),
                user_id=q.user_id,
                quote_id=q.id,
                principal=contract.principal,
                terms=q.terms,
                pix=pix,
            )
            if row is None:  # a concurrent application of the same quote won
                raced = await store.loan_for_quote(conn, quote_id)
                assert raced is not None
                return await self._loan_message(conn, raced, today)
            await events.transition(
                conn,
                row,
                today,
                actor=principal.subject,
                detail=f"quote {quote_id} accepted",
                amount_minor=contract.principal,
            )
            await self._start_process(row.id)
            return await self._loan_message(conn, row, today)

    async def _start_process(self, loan_id: uuid.UUID) -> None:
        if self._temporal is None:
            raise unavailable("WORKFLOWS_UNAVAILABLE", "loans need FINTECH_TEMPORAL_ADDRESS")
        try:
            # Started before our commit: its first activity retries until the
            # row is visible; the same id means never a second process.
            await self._temporal.start_workflow(
                LOAN_WORKFLOW,
                str(loan_id),
                id=workflow_id(loan_id),
                task_queue=TASK_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass

    async def _loan_message(
        self, conn: AsyncConnection, row: store.LoanRow, today: date
    ) -> loans_pb2.Loan:
        insts = await store.installments(conn, row.id)
        return wire.loan_message(row, insts, today)

    async def _owned(
        self,
        conn: AsyncConnection,
        loan_id: uuid.UUID,
        *,
        for_update: bool = False,
        read: bool = False,
    ) -> store.LoanRow:
        """The caller's loan (services too); backoffice may `read` anyone's."""
        row = await store.get_loan(conn, loan_id, for_update=for_update)
        if row is None:
            # Same answer as someone else's loan: ids cannot be probed.
            raise permission_denied("PERMISSION_DENIED", "not your loan")
        if not (read and BACKOFFICE in current_principal().roles):
            require_owner(row.user_id)
        return row

    async def get_loan(self, name: str) -> loans_pb2.Loan:
        loan_id = parse_id(name, wire.LOAN_PREFIX, "name")
        today = await self._clock.today()
        async with self._db.transaction() as conn:
            row = await self._owned(conn, loan_id, read=True)
            return await self._loan_message(conn, row, today)

    async def list_loans(
        self, principal: Principal, user: str, state_filter: int, size: int, token: str
    ) -> loans_pb2.ListLoansResponse:
        user_id: str | None = principal.subject
        if BACKOFFICE in principal.roles or principal.is_service:
            user_id = str(parse_id(user, wire.USER_PREFIX, "user")) if user else None
        elif user and user not in (f"{wire.USER_PREFIX}{principal.subject}", "users/me"):
            raise permission_denied("PERMISSION_DENIED", "customers list only their own loans")
        state_name = None
        if state_filter:
            value = loans_pb2.LoanState.ValueType(state_filter)
            state_name = loans_pb2.LoanState.Name(value).removeprefix("LOAN_STATE_")
        limit = store.page_size(size)
        listing = f"loans:{user_id or ''}:{state_name or ''}"
        after = _after(token, listing)
        today = await self._clock.today()
        async with self._db.transaction() as conn:
            rows = await store.list_loans(conn, user_id, state_name, limit + 1, after)
            loans = [await self._loan_message(conn, r, today) for r in rows[:limit]]
        return loans_pb2.ListLoansResponse(
            loans=loans, next_page_token=_next_token(rows, limit, listing)
        )

    async def accept_offer(self, principal: Principal, name: str) -> loans_pb2.Loan:
        loan_id = parse_id(name, wire.LOAN_PREFIX, "name")
        now = await self._clock.now()
        today = local_day(now)
        async with self._db.transaction() as conn:
            row = await self._owned(conn, loan_id, for_update=True)
            if row.state in ("FUNDING", "FUNDED", "PAID"):
                return await self._loan_message(conn, row, today)  # accepted already
            lapsed = row.offer_expire_time is not None and row.offer_expire_time <= now
            if lapsed and row.state in ("OFFERED", "CANCELLED"):
                # Expired by the loans clock, whether or not the daily sweep ran yet.
                raise failed_precondition(
                    "OFFER_EXPIRED", "the offer expired; simulate and apply again"
                )
            if row.state != "OFFERED":
                raise failed_precondition("NO_OFFER", f"a {row.state} loan has no offer to accept")
            # The contract is fixed here (funding posts exactly these terms, also
            # when retried), so it is dated today: the offer may be days old and
            # its IOF days, first period and CET counted from the quote's day.
            offered = terms.from_json(row.terms)
            try:
                contract = redate(offered, today, self._fees)
            except QuoteError as exc:  # only if the stored offer was out of policy
                raise failed_precondition(
                    "OFFER_INVALID", "the offer no longer fits the policy; simulate again"
                ) from exc
            row = await store.update_loan(
                conn, row.id, **funding_changes(row.state, offered, contract)
            )
            await events.transition(
                conn,
                row,
                today,
                actor=principal.subject,
                detail=f"counter-offer accepted; terms dated {contract.disbursement_date}",
                amount_minor=row.approved_principal,
            )
            await self._signal(row.id, "offer_accepted")
            return await self._loan_message(conn, row, today)

    async def cancel_loan(self, principal: Principal, name: str) -> loans_pb2.Loan:
        loan_id = parse_id(name, wire.LOAN_PREFIX, "name")
        now = await self._clock.now()
        today = local_day(now)
        async with self._db.transaction() as conn:
            row = await self._owned(conn, loan_id, for_update=True)
            if row.state == "CANCELLED":
                return await self._loan_message(conn, row, today)
            if row.state not in state.CANCELLABLE:
                raise failed_precondition(
                    "LOAN_NOT_CANCELLABLE", f"a {row.state} loan cannot be cancelled"
                )
            row = await store.update_loan(
                conn, row.id, state=state.transition(row.state, "CANCELLED"), close_time=now
            )
            await events.transition(
                conn, row, today, actor=principal.subject, reason="CUSTOMER_CANCELLED"
            )
            await self._signal(row.id, "cancelled")
            return await self._loan_message(conn, row, today)

    async def _signal(self, loan_id: uuid.UUID, signal: str) -> None:
        """Wake the loan's workflow; the database already holds the decision, so a
        lost signal only delays it until the workflow's next check."""
        if self._temporal is None:
            return
        try:
            await self._temporal.get_workflow_handle(workflow_id(loan_id)).signal(signal)
        except Exception as exc:
            log.info("loan %s: signal %s not delivered: %s", loan_id, signal, type(exc).__name__)

    # ------------------------------------------------------------ repayment

    async def _repaying(
        self, conn: AsyncConnection, loan_id: uuid.UUID
    ) -> tuple[store.LoanRow, list[store.InstallmentRow]]:
        row = await self._owned(conn, loan_id, for_update=True)
        if row.state not in state.REPAYING:
            raise failed_precondition("LOAN_NOT_REPAYING", f"a {row.state} loan takes no payments")
        insts = await store.installments(conn, row.id, for_update=True)
        return row, insts

    async def payoff_quote(self, name: str) -> loans_pb2.PayoffQuote:
        loan_id = parse_id(name, wire.LOAN_PREFIX, "name", "/payoffQuote")
        now = await self._clock.now()
        today = local_day(now)
        async with self._db.transaction() as conn:
            row = await self._owned(conn, loan_id, read=True)
            if row.state not in state.REPAYING:
                raise failed_precondition("LOAN_NOT_REPAYING", f"a {row.state} loan has no payoff")
            insts = await store.installments(conn, row.id)
        result = charges.payoff([i.domain() for i in insts if not i.domain().settled], today)
        local_midnight = now.astimezone(LOCAL_ZONE).replace(hour=23, minute=59, second=59)
        return loans_pb2.PayoffQuote(
            name=f"{wire.LOAN_PREFIX}{row.id}/payoffQuote",
            payoff_amount=wire.brl(result.amount),
            principal=wire.brl(result.principal),
            accrued_interest=wire.brl(result.accrued_interest),
            penalties=wire.brl(result.penalties),
            interest_discount=wire.brl(result.interest_discount),
            expire_time=wire.ts(local_midnight),
        )

    async def pay(
        self,
        principal: Principal,
        name: str,
        amount_minor: int,
        currency: str,
        payoff: bool,
        request_key: str,
    ) -> loans_pb2.LoanPayment:
        loan_id = parse_id(name, wire.LOAN_PREFIX, "name")
        if not payoff:
            bad = []
            if currency != CURRENCY:
                bad.append(("amount.currency_code", "must be BRL"))
            if amount_minor <= 0:
                bad.append(("amount.minor_units", "must be positive"))
            if bad:
                raise invalid_argument("PAYMENT_INVALID", "the payment is invalid", bad)
        now = await self._clock.now()
        today = local_day(now)
        payment_id = uuid.uuid5(loan_id, f"{principal.subject}\n{request_key}")
        async with self._db.transaction() as conn:
            done = await store.get_payment(conn, payment_id)
            row, insts = await self._repaying(conn, loan_id)
            if done is not None:
                return wire.payment_message(done, await self._loan_message(conn, row, today))
            open_ = [i.domain() for i in insts]
            if payoff:
                result = charges.payoff([i for i in open_ if not i.settled], today)
                allocation = result.allocation
            else:
                try:
                    allocation = charges.allocate(open_, amount_minor, today)
                except ValueError as exc:
                    limit = charges.payable_without_payoff(open_, today)
                    raise AppError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "PAYMENT_EXCEEDS_DUE",
                        f"at most {limit} centavos may be paid now; use payoff for the rest",
                        metadata={"max_amount_minor": str(limit)},
                    ) from exc
            transfers = await self._post_payment(row, payment_id, allocation)
            before = {i.number: i for i in open_}
            after = {i.number: i for i in allocation.installments}
            for part in allocation.parts:
                await store.save_installment(
                    conn,
                    row.id,
                    after[part.number],
                    paid_now=part.total,
                    waived_now=part.interest_discount,
                )
                assert before[part.number].outstanding - part.total - part.interest_discount == (
                    after[part.number].outstanding
                )
            paid = await store.insert_payment(
                conn,
                id=payment_id,
                loan_id=row.id,
                amount=allocation.amount,
                penalties=allocation.penalties,
                interest=allocation.interest,
                principal=allocation.principal,
                interest_discount=allocation.interest_discount,
                payoff=payoff,
                paid_on=today,
                numbers=[p.number for p in allocation.parts],
                transfers=transfers,
            )
            if allocation.settles_loan:
                row = await store.update_loan(
                    conn, row.id, state=state.transition(row.state, "PAID"), close_time=now
                )
            loan_msg = await self._loan_message(conn, row, today)
            msg = wire.payment_message(paid, loan_msg)
            await events.payment_received(conn, row, msg, principal.subject)
            if row.state == "PAID":
                await events.transition(
                    conn, row, today, actor=principal.subject, detail="paid off"
                )
            return msg

    async def _post_payment(
        self, row: store.LoanRow, payment_id: uuid.UUID, allocation: charges.Allocation
    ) -> list[str]:
        """Wallet → receivable (principal and accrued penalties) and interest income,
        linked: the payment is booked whole or not at all."""
        receivable = row.receivable_account
        if row.state == "DEFAULTED":
            receivable = DEFAULTED
        legs = [
            Leg(
                step_id(row.id, f"payment/{payment_id}/principal"),
                row.wallet_account,
                receivable,
                allocation.principal + allocation.penalties,
                "loan.repayment",
                "principal and charges",
            ),
            Leg(
                step_id(row.id, f"payment/{payment_id}/interest"),
                row.wallet_account,
                INTEREST_INCOME,
                allocation.interest,
                "loan.interest",
                "interest",
            ),
        ]
        try:
            return await self._ledger.post(legs, f"{wire.LOAN_PREFIX}{row.id}")
        except LedgerRejectedError as exc:
            if exc.reason == "INSUFFICIENT_FUNDS":
                raise failed_precondition(
                    "INSUFFICIENT_FUNDS", "the wallet balance does not cover the payment"
                ) from exc
            raise failed_precondition(exc.reason, "the ledger refused the payment") from exc
        except RemoteUnavailableError as exc:
            raise unavailable("LEDGER_UNAVAILABLE", "the ledger is not answering") from exc

    async def list_payments(
        self, parent: str, size: int, token: str
    ) -> loans_pb2.ListLoanPaymentsResponse:
        loan_id = parse_id(parent, wire.LOAN_PREFIX, "parent")
        limit = store.page_size(size)
        listing = f"loan-payments:{loan_id}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            await self._owned(conn, loan_id, read=True)
            rows = await store.list_payments(conn, loan_id, limit + 1, after)
        return loans_pb2.ListLoanPaymentsResponse(
            loan_payments=[wire.payment_message(r, None) for r in rows[:limit]],
            next_page_token=_next_token(rows, limit, listing),
        )

    async def list_events(
        self, parent: str, size: int, token: str
    ) -> loans_pb2.ListLoanEventsResponse:
        loan_id = parse_id(parent, wire.LOAN_PREFIX, "parent")
        limit = store.page_size(size, store.DEFAULT_EVENTS_PAGE_SIZE, store.MAX_EVENTS_PAGE_SIZE)
        listing = f"loan-events:{loan_id}"
        after = pagination.decode_int(token, listing, minimum=1) if token else 0
        async with self._db.transaction() as conn:
            if await store.get_loan(conn, loan_id) is None:
                raise permission_denied("PERMISSION_DENIED", "no such loan")
            rows = await store.list_events(conn, loan_id, limit + 1, after)
        more = len(rows) > limit
        next_token = pagination.encode_token(listing, rows[limit - 1].seq) if more else ""
        return loans_pb2.ListLoanEventsResponse(
            loan_events=[wire.event_message(r) for r in rows[:limit]], next_page_token=next_token
        )


def funding_changes(current: str, stored: QuoteTerms, contract: QuoteTerms) -> dict[str, Any]:
    """The update that fixes a loan's contract as funding begins: the move to
    FUNDING, and the re-dated terms when they differ from the stored ones."""
    changes: dict[str, Any] = {"state": state.transition(current, "FUNDING")}
    if contract != stored:
        changes["terms"] = terms.to_json(contract)
    return changes


def counter_offer(contract: QuoteTerms, approved_minor: int, fees: FeePolicy) -> QuoteTerms:
    """The same terms for a lower principal (same rate, dates and IOF choice)."""
    return quote(
        principal=approved_minor,
        term_months=contract.term_months,
        system=contract.system,
        monthly_rate=contract.monthly_rate,
        disbursement_date=contract.disbursement_date,
        first_due_date=contract.first_due_date,
        iof_mode=contract.iof_mode,
        fees=fees,
    )


def installment_rows(loan_id: uuid.UUID, contract: QuoteTerms) -> Sequence[dict[str, object]]:
    starts = [contract.disbursement_date, *(r.due_date for r in contract.schedule[:-1])]
    return [
        {
            "loan_id": loan_id,
            "number": r.number,
            "due_date": r.due_date,
            "period_start": start,
            "amount": r.amount,
            "interest": r.interest,
            "principal": r.amortization,
        }
        for r, start in zip(contract.schedule, starts, strict=True)
    ]
