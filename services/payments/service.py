"""Payments use cases: create/cancel/read payments, PIX charges, webhooks, limits,
reconciliation. Protobuf stays in api.py; rules in domain/; SQL in store.py."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client

from fintech.ledger.v1 import ledger_pb2
from services.brazil.documents import normalize_cnpj, normalize_cpf
from services.payments import store, wire
from services.payments.domain import brcode, webhooks
from services.payments.domain.bank_account import (
    OUR_BRANCH,
    is_our_bank,
    is_our_branch,
    parse_account,
)
from services.payments.domain.pix import KeyType, normalize_key, txid_for
from services.payments.domain.rules import (
    DEFAULT_LIMITS,
    FEES,
    MAX_AMOUNT_MINOR,
    MAX_DESCRIPTION,
    Limits,
    external_reference,
    fee_for,
    limit_violation,
    night_of,
    payout_return_id_for,
    refund_id_for,
    workflow_id,
)
from services.payments.domain.states import (
    InvalidTransitionError,
    RefundExceedsError,
    State,
    after_refund,
    cancellable,
)
from services.payments.ledger_gateway import (
    PSP_CLEARING_ACCOUNT,
    LedgerGateway,
    LedgerRefusedError,
    Leg,
)
from services.payments.psp import PspClient, PspRejectedError
from services.payments.starter import WorkflowStarter
from services.platform import audit, pagination
from services.platform.auth import Principal, current_principal, require_owner, require_role
from services.platform.clock import OffsetClock
from services.platform.crypto import FieldCipher
from services.platform.db import Database
from services.platform.errors import (
    AppError,
    failed_precondition,
    invalid_argument,
    not_found,
    permission_denied,
    unavailable,
)
from services.platform.http_client import ProviderError

log = logging.getLogger(__name__)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
# Tests only (see services/platform/clock.py): honour payments.test_clock.
TEST_CLOCK_ENV = "FINTECH_PAYMENTS_TEST_CLOCK"
RECEIVER_NAME = "FINTECH PAGAMENTOS"
RECEIVER_CITY = "SAO PAULO"
# Our own receiving PIX key (EVP) at the PSP; the txid tells the charges apart.
RECEIVER_KEY = "8b8f0b1e-3d4c-4e5f-9a6b-7c8d9e0f1a2b"
DEFAULT_CHARGE_EXPIRY_S = 3600
MAX_CHARGE_EXPIRY_S = 30 * 86400
MAX_MISMATCHES = 1000
MAX_RETURN_ID = 64
# Who the audit names for a return: the receiving bank, through the PSP.
RETURN_AUTHOR = "service:psp"
_BANK_CODE = re.compile(r"[0-9]{3}|[0-9]{8}")
_BRANCH = re.compile(r"[0-9]{1,5}")
_ACCOUNT = re.compile(r"[0-9]{1,12}-?[0-9Xx]")
_CARD_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class PaymentInput:
    """A validated CreatePayment request (instrument kept apart: it is PII)."""

    method: str
    amount: int
    currency: str
    description: str
    instrument: dict[str, Any]  # encrypted at rest
    public: dict[str, Any]  # what may be shown back


def business_day(now: datetime) -> date:
    return now.astimezone(SAO_PAULO).date()


def _mask(value: str, keep: int = 4) -> str:
    return "*" * max(0, len(value) - keep) + value[-keep:]


def validate_payment(
    method: str,
    amount: int,
    currency: str,
    description: str,
    pix: dict[str, Any] | None,
    bank: dict[str, Any] | None,
    card: dict[str, Any] | None,
) -> PaymentInput:
    """INVALID_ARGUMENT with every field violation, or the normalized input."""
    problems: list[tuple[str, str]] = []
    if method not in ("PIX", "TED", "CARD"):
        problems.append(("payment.method", "must be PIX, TED or CARD"))
    if currency != "BRL":
        problems.append(("payment.amount.currency_code", "only BRL is supported"))
    if not 0 < amount <= MAX_AMOUNT_MINOR:
        problems.append(("payment.amount.minor_units", f"must be within 1..{MAX_AMOUNT_MINOR}"))
    elif amount <= FEES.get(method, 0):
        # A transfer that would cost more in fee than it moves is almost
        # certainly a mistake (centavos typed as reais); refuse it plainly.
        problems.append(
            (
                "payment.amount.minor_units",
                f"must be more than the {method} fee, {FEES[method]} minor units",
            )
        )
    if len(description) > MAX_DESCRIPTION:
        problems.append(("payment.description", f"at most {MAX_DESCRIPTION} characters"))
    instrument: dict[str, Any] = {}
    public: dict[str, Any] = {}
    if method == "PIX":
        if pix is None:
            problems.append(("payment.pix", "required for PIX"))
        else:
            try:
                kt = KeyType(pix["key_type"])
            except ValueError:
                kt = None
                problems.append(("payment.pix.key_type", "required"))
            key = normalize_key(kt, pix["key"]) if kt is not None else None
            if kt is not None and key is None:
                problems.append(("payment.pix.key", f"not a valid {kt.value} key"))
            if kt is not None and key is not None:
                instrument = {"key_type": kt.value, "key": key}
                public = {"key_type": kt.value, "key_masked": _mask(key)}
    elif method == "TED":
        if bank is None:
            problems.append(("payment.bank_account", "required for TED"))
        else:
            checks = (
                ("bank_code", _BANK_CODE, "3-digit COMPE code or 8-digit ISPB"),
                ("branch", _BRANCH, "1-5 digits"),
                ("account_number", _ACCOUNT, "digits with a check digit, e.g. 12345-6"),
            )
            for name, pattern, what in checks:
                if not pattern.fullmatch(str(bank.get(name, ""))):
                    problems.append((f"payment.bank_account.{name}", what))
            if is_our_bank(str(bank.get("bank_code", ""))):
                # One of our own accounts (TED on-us): we know our branch and
                # our check digits, so a typo is refused here, not paid to
                # nobody later.
                branch = str(bank.get("branch", ""))
                if _BRANCH.fullmatch(branch) and not is_our_branch(branch):
                    problems.append(("payment.bank_account.branch", f"our branch is {OUR_BRANCH}"))
                typed = str(bank.get("account_number", ""))
                if _ACCOUNT.fullmatch(typed) and parse_account(typed) is None:
                    problems.append(
                        (
                            "payment.bank_account.account_number",
                            "not one of our account numbers (9 digits and a matching check digit)",
                        )
                    )
            if bank.get("account_type") not in ("CHECKING", "SAVINGS", "PAYMENT"):
                problems.append(("payment.bank_account.account_type", "required"))
            holder = str(bank.get("holder_name", "")).strip()
            if not 1 <= len(holder) <= 100:
                problems.append(("payment.bank_account.holder_name", "1-100 characters"))
            doc = str(bank.get("holder_document", ""))
            normalized = normalize_cpf(doc) or normalize_cnpj(doc)
            if normalized is None:
                problems.append(("payment.bank_account.holder_document", "a valid CPF or CNPJ"))
            else:
                instrument = {**bank, "holder_name": holder, "holder_document": normalized}
                public = {
                    k: bank.get(k, "")
                    for k in ("bank_code", "branch", "account_number", "account_type")
                } | {
                    "holder_name": holder,
                    "holder_document_masked": "***" + normalized[3:-2] + "**",
                }
    elif method == "CARD":
        if card is None or not _CARD_TOKEN.fullmatch(str(card.get("card_token", ""))):
            problems.append(("payment.card.card_token", "required"))
        elif not 0 <= int(card.get("installments", 0)) <= 12:
            problems.append(("payment.card.installments", "within 1..12"))
        else:
            instrument = {"card_token": card["card_token"]}
            public = {"installments": max(1, int(card.get("installments", 0)))}
    if problems:
        raise invalid_argument("INVALID_ARGUMENT", "the payment is not valid", violations=problems)
    return PaymentInput(method, amount, currency, description, instrument, public)


def parse_name(name: str, prefix: str, field: str) -> uuid.UUID:
    if not name.startswith(prefix):
        raise invalid_argument(
            "INVALID_ARGUMENT",
            f"{field} must be {prefix}{{id}}",
            violations=[(field, f"must be {prefix}{{id}}")],
        )
    try:
        return uuid.UUID(name[len(prefix) :])
    except ValueError as exc:
        raise invalid_argument(
            "INVALID_ARGUMENT", f"{field} is malformed", violations=[(field, "malformed id")]
        ) from exc


def _user_id(user: str, field: str) -> str:
    if not user.startswith("users/") or not 1 <= len(user) - 6 <= 64:
        raise invalid_argument(
            "INVALID_ARGUMENT",
            f"{field} must be users/{{id}}",
            violations=[(field, "must be users/{id}")],
        )
    return user[6:]


class PaymentsService:
    def __init__(
        self,
        db: Database,
        cipher: FieldCipher,
        ledger: LedgerGateway,
        psp: PspClient,
        temporal: Client | None,
        webhook_secret: bytes,
        starter: WorkflowStarter,
        *,
        default_limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._db = db
        # The limits' clock (day and night); tests move it, see platform/clock.py.
        self._clock = OffsetClock(db, TEST_CLOCK_ENV)
        self._cipher = cipher
        self._ledger = ledger
        self._psp = psp
        self._temporal = temporal
        self._starter = starter
        self._webhook_secret = webhook_secret
        self._default_limits = default_limits

    # --- payments ----------------------------------------------------------------------

    async def _limits(self, conn: Any, user_id: str) -> Limits:
        stored = await store.limits_of(conn, user_id)
        return Limits(*stored) if stored else self._default_limits

    async def create_payment(
        self,
        user_id: str,
        payment_id: uuid.UUID,
        data: PaymentInput,
        *,
        external_reference: str = "",
        performed_by: str,
        enforce_limits: bool = True,
    ) -> tuple[store.PaymentRow, list[store.StepRow]]:
        if self._temporal is None:
            raise unavailable("WORKFLOWS_UNAVAILABLE", "payments need FINTECH_TEMPORAL_ADDRESS")
        wallet = await self._ledger.wallet_of(user_id)
        if wallet is None:
            raise failed_precondition("WALLET_NOT_FOUND", "the customer has no wallet")
        outbound = data.method != "CARD"
        fee = fee_for(data.method, data.amount) if outbound else 0
        now = await self._clock.now()
        day = business_day(now)
        night = night_of(now.astimezone(SAO_PAULO))
        async with self._db.transaction() as conn:
            existing = await store.get_payment(conn, payment_id)
            if existing is not None:
                if existing.user_id != user_id or existing.amount != data.amount:
                    raise AppError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        "PAYMENT_EXISTS_WITH_DIFFERENT_FIELDS",
                        "this reference already names another payment",
                    )
                row = existing
            else:
                consumed_night = None
                if outbound and enforce_limits:
                    limits = await self._limits(conn, user_id)
                    # Per-payment limit here; the daily and night ones atomically
                    # in consume_* (a refusal rolls back what was consumed).
                    total = data.amount + fee
                    violation = limit_violation(total, limits, 0)
                    if violation is None and not await store.consume_daily(
                        conn, user_id, day, total, limits.daily
                    ):
                        violation = "DAILY_LIMIT_EXCEEDED"
                    if violation is None and night is not None:
                        if not await store.consume_nightly(
                            conn, user_id, night, total, limits.nightly
                        ):
                            violation = "NIGHTLY_LIMIT_EXCEEDED"
                        consumed_night = night
                    if violation is not None:
                        raise failed_precondition(
                            violation, "the payment exceeds the customer's limit"
                        )
                ciphertext = self._cipher.encrypt(json.dumps(data.instrument), payment_id.bytes)
                row, _ = await store.insert_payment(
                    conn,
                    id=payment_id,
                    user_id=user_id,
                    method=data.method,
                    direction="OUTBOUND" if outbound else "INBOUND",
                    amount=data.amount,
                    currency=data.currency,
                    fee=fee,
                    description=data.description,
                    instrument_ciphertext=ciphertext,
                    instrument_public=data.public,
                    state="PENDING",
                    external_reference=external_reference,
                    limit_day=day,
                    limit_night=consumed_night,
                )
                await wire.payment_event(conn, row)
                await audit.record(
                    conn,
                    "payment",
                    str(payment_id),
                    "created",
                    {"method": data.method, "amount": data.amount},
                    performed_by,
                )
            # The workflow starts once this commits (starter.py; its sweep
            # covers a start lost with the process); the same id never starts
            # a second workflow.
            method = data.method
            self._db.after_commit(lambda: self._starter.submit(payment_id, method))
            steps = [] if existing is None else await store.steps_of(conn, payment_id)
        return row, steps

    async def get_payment(self, name: str) -> tuple[store.PaymentRow, list[store.StepRow]]:
        pid = parse_name(name, wire.PAYMENT_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_payment(conn, pid)
            if row is None:
                raise permission_denied("PERMISSION_DENIED", "not your payment")
            self._require_access(row.user_id)
            return row, await store.steps_of(conn, pid)

    @staticmethod
    def _require_access(user_id: str) -> Principal:
        principal = current_principal()
        if "backoffice" in principal.roles:
            return principal
        return require_owner(user_id)

    async def list_payments(
        self, principal: Principal, state: str | None, method: str | None, size: int, token: str
    ) -> tuple[list[store.PaymentRow], str]:
        listing = f"payments:{principal.subject}:{state or ''}:{method or ''}"
        after = pagination.decode_time_id(token, listing) if token else None
        async with self._db.transaction() as conn:
            rows = await store.list_payments(
                conn, principal.subject, state=state, method=method, size=size, after=after
            )
        return _page(rows, size, listing)

    async def cancel_payment(self, name: str) -> tuple[store.PaymentRow, list[store.StepRow]]:
        pid = parse_name(name, wire.PAYMENT_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_payment(conn, pid, for_update=True)
            if row is None:
                raise permission_denied("PERMISSION_DENIED", "not your payment")
            principal = self._require_access(row.user_id)
            if row.state != "CANCELLED":
                if not cancellable(State(row.state), row.submitted):
                    raise failed_precondition(
                        "PAYMENT_NOT_CANCELLABLE",
                        f"a {row.state.lower()} payment cannot be cancelled",
                    )
                moved = await store.set_state(
                    conn,
                    pid,
                    "CANCELLED",
                    from_states=("PENDING", "REQUIRES_ACTION"),
                    reason="CANCELLED_BY_USER",
                    message="cancelled",
                )
                assert moved is not None, "locked row changed under us"
                row = moved
                await store.release_limit(conn, row)
                await wire.payment_event(conn, row)
                await audit.record(conn, "payment", str(pid), "cancelled", {}, principal.subject)
            steps = await store.steps_of(conn, pid)
        if self._temporal is not None and row.method == "CARD":
            try:
                await self._temporal.get_workflow_handle(workflow_id(pid)).signal("cancel")
            except Exception as exc:  # the workflow sees CANCELLED at its next step anyway
                log.info("cancel signal for %s not delivered: %s", pid, type(exc).__name__)
        return row, steps

    async def confirm_challenge(
        self, name: str, response: str
    ) -> tuple[store.PaymentRow, list[store.StepRow]]:
        pid = parse_name(name, wire.PAYMENT_PREFIX, "name")
        if not 1 <= len(response) <= 64:
            raise invalid_argument(
                "INVALID_ARGUMENT",
                "challenge_response is required",
                violations=[("challenge_response", "1-64 characters")],
            )
        row, steps = await self.get_payment(name)
        if row.state != "REQUIRES_ACTION":
            raise failed_precondition(
                "PAYMENT_NOT_AWAITING_CHALLENGE", f"the payment is {row.state.lower()}"
            )
        assert self._temporal is not None
        await self._temporal.get_workflow_handle(workflow_id(pid)).signal("challenge", response)
        return row, steps

    # --- refunds -----------------------------------------------------------------------

    async def refund(
        self, name: str, amount: int, currency: str, reason: str, request_key: str
    ) -> tuple[store.PaymentRow, list[store.StepRow]]:
        """Refund a settled inbound payment (card top-up, PIX received) in full or in
        part: reserve the amount on the wallet, have the PSP refund it (idempotent by
        our refund id), post the reservation, count it. Runs in the RPC's
        transaction (the payment row stays locked: one refund at a time)."""
        principal = require_role("backoffice")
        pid = parse_name(name, wire.PAYMENT_PREFIX, "name")
        problems = []
        if not 1 <= len(reason.strip()) <= 200:
            problems.append(("reason", "1-200 characters"))
        if currency not in ("", "BRL") or amount < 0:
            problems.append(("amount", "a non-negative BRL amount (unset: the rest)"))
        if problems:
            raise invalid_argument("INVALID_ARGUMENT", "invalid refund", violations=problems)
        refund_id = refund_id_for(pid, request_key)
        async with self._db.transaction() as conn:
            row = await store.get_payment(conn, pid, for_update=True)
            if row is None:
                raise not_found("PAYMENT_NOT_FOUND", "no such payment")
            if row.direction != "INBOUND" or row.state not in ("SETTLED", "PARTIALLY_REFUNDED"):
                raise failed_precondition(
                    "PAYMENT_NOT_REFUNDABLE", "only settled inbound payments can be refunded"
                )
            remaining = row.amount - row.refunded
            amount = amount or remaining
            if not 0 < amount <= remaining:
                raise failed_precondition(
                    "REFUND_EXCEEDS_PAYMENT", f"at most {remaining} can still be refunded"
                )
            wallet = await self._ledger.wallet_of(row.user_id)
            assert wallet is not None, "a settled inbound payment credited this wallet"
            reference = (
                f"{wire.CHARGE_PREFIX}{row.pix_charge_id}"
                if row.pix_charge_id
                else external_reference(pid)
            )
            await store.step_started(conn, pid, "refund")
            try:
                await self._ledger.apply(
                    refund_id,
                    [
                        Leg(
                            "refund_reserve",
                            wallet,
                            PSP_CLEARING_ACCOUNT,
                            amount,
                            ledger_pb2.TRANSFER_KIND_PENDING,
                            code="REFUND",
                        )
                    ],
                    external_reference=reference,
                    description=reason,
                )
            except LedgerRefusedError as exc:
                raise failed_precondition(exc.reason, "the wallet cannot fund the refund") from exc
            try:
                if row.method == "CARD":
                    await self._psp.card_call(
                        f"/v1/card/charges/{row.psp_reference}/refund",
                        "/v1/card/charges/{id}/refund",
                        {"amount": amount, "refund_id": refund_id.hex},
                        refund_id.hex,
                    )
                else:
                    await self._psp.card_call(
                        f"/v1/pix/{row.end_to_end_id}/devolucao/{refund_id.hex}",
                        "/v1/pix/{e2eid}/devolucao/{id}",
                        {"amount": amount},
                        refund_id.hex,
                    )
            except PspRejectedError as exc:
                await self._ledger.apply(
                    refund_id,
                    [
                        Leg(
                            "refund_void",
                            "",
                            "",
                            0,
                            ledger_pb2.TRANSFER_KIND_VOID_PENDING,
                            "refund_reserve",
                        )
                    ],
                    external_reference=reference,
                    description="refund refused",
                )
                raise failed_precondition("PSP_REJECTED", exc.code) from exc
            except ProviderError as exc:
                # Unknown outcome: the reservation stays; a retry with the same key
                # repeats the same PSP refund id and finishes (or the ledger
                # releases the hold when it expires).
                raise unavailable("PSP_UNAVAILABLE", "the PSP is unavailable; retry") from exc
            await self._ledger.apply(
                refund_id,
                [
                    Leg(
                        "refund_post",
                        "",
                        "",
                        0,
                        ledger_pb2.TRANSFER_KIND_POST_PENDING,
                        "refund_reserve",
                    )
                ],
                external_reference=reference,
                description=reason,
            )
            moved = await store.add_refund(conn, pid, amount)
            assert moved is not None, "the locked payment accepted this refund above"
            await store.step_finished(conn, pid, "refund", "SUCCEEDED")
            await wire.payment_event(conn, moved)
            await audit.record(
                conn,
                "payment",
                str(pid),
                "refunded",
                {"amount": amount, "reason": reason[:200]},
                principal.subject,
            )
            return moved, await store.steps_of(conn, pid)

    # --- limits ------------------------------------------------------------------------

    async def get_limits(self, name: str) -> tuple[str, Limits, int]:
        user_id = self._singleton_owner(name, "paymentLimits")
        self._require_access(user_id)
        async with self._db.transaction() as conn:
            limits = await self._limits(conn, user_id)
            used = await store.used_on(conn, user_id, business_day(await self._clock.now()))
        return user_id, limits, used

    async def update_limits(
        self, name: str, per_payment: int, daily: int, nightly: int, reason: str
    ) -> tuple[str, Limits, int]:
        principal = require_role("backoffice")
        user_id = self._singleton_owner(name, "paymentLimits")
        problems = [
            (f"payment_limits.{f}.minor_units", f"must be within 1..{MAX_AMOUNT_MINOR}")
            for f, v in (
                ("per_payment_limit", per_payment),
                ("daily_limit", daily),
                ("nightly_limit", nightly),
            )
            if not 0 < v <= MAX_AMOUNT_MINOR
        ]
        if not reason.strip():
            problems.append(("reason", "required"))
        if problems:
            raise invalid_argument("INVALID_ARGUMENT", "invalid limits", violations=problems)
        async with self._db.transaction() as conn:
            await store.upsert_limits(conn, user_id, per_payment, daily, nightly)
            await audit.record(
                conn,
                "payment_limits",
                user_id,
                "updated",
                {
                    "per_payment": per_payment,
                    "daily": daily,
                    "nightly": nightly,
                    "reason": reason[:200],
                },
                principal.subject,
            )
        return await self.get_limits(name)

    @staticmethod
    def _singleton_owner(name: str, singleton: str) -> str:
        """The user of `users/{user}/{singleton}` (`me`: the caller)."""
        m = re.fullmatch(rf"users/([^/]{{1,64}})/{singleton}", name)
        if m is None:
            shape = f"users/{{user}}/{singleton}"
            problem = f"must be {shape}"
            raise invalid_argument(
                "INVALID_ARGUMENT", f"name {problem}", violations=[("name", problem)]
            )
        return current_principal().subject if m.group(1) == "me" else m.group(1)

    # --- bank account (TED on-us) ----------------------------------------------------

    async def get_bank_account(self, name: str) -> tuple[str, int]:
        """The owner and number of `users/{user}/bankAccount`. Only the owner
        (or the backoffice) may read it; only the owner's first read assigns
        it, so the backoffice looking does not open accounts."""
        user_id = self._singleton_owner(name, "bankAccount")
        principal = self._require_access(user_id)
        if principal.subject != user_id:
            async with self._db.transaction() as conn:
                number = await store.bank_account_of(conn, user_id)
            if number is None:
                raise not_found("BANK_ACCOUNT_NOT_FOUND", "the customer has not asked for one yet")
            return user_id, number
        if await self._ledger.wallet_of(user_id) is None:
            raise failed_precondition("WALLET_NOT_FOUND", "the customer has no wallet")
        async with self._db.transaction() as conn:
            return user_id, await store.bank_account_number(conn, user_id)

    # --- PIX charges -------------------------------------------------------------------

    async def create_charge(
        self,
        principal: Principal,
        charge_id: uuid.UUID,
        amount: int,
        currency: str,
        description: str,
        expiry_s: int,
    ) -> store.ChargeRow:
        problems = []
        if currency != "BRL":
            problems.append(("pix_charge.amount.currency_code", "only BRL"))
        if not 0 < amount <= MAX_AMOUNT_MINOR:
            problems.append(
                ("pix_charge.amount.minor_units", f"must be within 1..{MAX_AMOUNT_MINOR}")
            )
        if len(description) > MAX_DESCRIPTION:
            problems.append(("pix_charge.description", f"at most {MAX_DESCRIPTION} characters"))
        expiry_s = expiry_s or DEFAULT_CHARGE_EXPIRY_S
        if not 60 <= expiry_s <= MAX_CHARGE_EXPIRY_S:
            problems.append(("pix_charge.expiration_seconds", f"within 60..{MAX_CHARGE_EXPIRY_S}"))
        if problems:
            raise invalid_argument(
                "INVALID_ARGUMENT", "the charge is not valid", violations=problems
            )
        if await self._ledger.wallet_of(principal.subject) is None:
            raise failed_precondition("WALLET_NOT_FOUND", "the customer has no wallet")
        txid = txid_for(charge_id)
        key = RECEIVER_KEY
        code = brcode.build(
            key=key,
            amount_minor=amount,
            name=RECEIVER_NAME,
            city=RECEIVER_CITY,
            txid=txid,
            description=description,
        )
        try:
            await self._psp.put_cob(
                txid,
                {
                    "amount": amount,
                    "key": key,
                    "description": description,
                    "expiration_seconds": expiry_s,
                    "external_reference": f"{wire.CHARGE_PREFIX}{charge_id}",
                },
            )
        except PspRejectedError as exc:
            raise failed_precondition("PSP_REJECTED", exc.code) from exc
        except ProviderError as exc:
            raise unavailable("PSP_UNAVAILABLE", "the PSP is unavailable; retry shortly") from exc
        async with self._db.transaction() as conn:
            row, created = await store.insert_charge(
                conn,
                id=charge_id,
                user_id=principal.subject,
                amount=amount,
                description=description,
                txid=txid,
                br_code=code,
                expires_at=datetime.now(UTC) + timedelta(seconds=expiry_s),
            )
            if created:
                await audit.record(
                    conn,
                    "pix_charge",
                    str(charge_id),
                    "created",
                    {"amount": amount},
                    principal.subject,
                )
        return row

    async def get_charge(self, name: str) -> store.ChargeRow:
        cid = parse_name(name, wire.CHARGE_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_charge(conn, cid)
        if row is None:
            raise permission_denied("PERMISSION_DENIED", "not your charge")
        self._require_access(row.user_id)
        return row

    async def list_charges(
        self, principal: Principal, state: str | None, size: int, token: str
    ) -> tuple[list[store.ChargeRow], str]:
        listing = f"pix-charges:{principal.subject}:{state or ''}"
        after = pagination.decode_time_id(token, listing) if token else None
        async with self._db.transaction() as conn:
            rows = await store.list_charges(
                conn, principal.subject, state=state, size=size, after=after
            )
        return _page(rows, size, listing)

    async def cancel_charge(self, name: str) -> store.ChargeRow:
        row = await self.get_charge(name)
        if row.state == "REMOVED_BY_USER":
            return row
        if row.state != "ACTIVE":
            raise failed_precondition("CHARGE_NOT_ACTIVE", f"the charge is {row.state.lower()}")
        try:
            await self._psp.delete_cob(row.txid)
        except PspRejectedError as exc:
            raise failed_precondition("CHARGE_NOT_ACTIVE", exc.code) from exc
        except ProviderError as exc:
            raise unavailable("PSP_UNAVAILABLE", "the PSP is unavailable; retry shortly") from exc
        async with self._db.transaction() as conn:
            moved = await store.set_charge_state(conn, row.id, "REMOVED_BY_USER")
            current = moved or await store.get_charge(conn, row.id)
        assert current is not None
        return current

    # --- webhooks ----------------------------------------------------------------------

    async def handle_webhook(self, body: bytes, timestamp: str, signature: str) -> bool:
        """Verify, record (dedup by event id), apply; True when it was a duplicate.
        Returns only after the notification is committed: the PSP's 2xx means durable."""
        problem = webhooks.verify(self._webhook_secret, timestamp, signature, body, time.time())
        if problem is not None:
            # 403, not 401: there is no credential to present again; the request
            # is simply not from our PSP (or not any more: a stale replay).
            raise permission_denied(f"WEBHOOK_{problem}", "the notification is not authentic")
        try:
            event = json.loads(body)
            event_id, kind, data = str(event["id"]), str(event["type"]), event["data"]
            assert isinstance(data, dict)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise invalid_argument(
                "INVALID_ARGUMENT",
                "malformed notification",
                violations=[("body", "JSON with id, type, data")],
            ) from exc
        if not 1 <= len(event_id) <= 128:
            raise invalid_argument(
                "INVALID_ARGUMENT", "bad event id", violations=[("body.id", "1-128 chars")]
            )
        signal: tuple[uuid.UUID, str, str] | None = None
        async with self._db.transaction() as conn:
            first = await store.record_webhook(conn, event_id, kind, event)
            if kind == "pix.received":
                # Idempotent by itself (charge state + derived transfer id), so a
                # duplicate that raced the first one cannot credit twice either.
                await self._charge_paid(conn, data)
            elif kind == "payout.returned":
                # Idempotent by itself too (one payout_returns row per return id +
                # a ledger transfer id derived from it).
                await self._payout_returned(conn, event_id, data)
            elif first and kind in ("payout.settled", "payout.failed"):
                ref = str(data.get("external_reference", ""))
                if ref.startswith(wire.PAYMENT_PREFIX):
                    try:
                        signal = (
                            uuid.UUID(ref[len(wire.PAYMENT_PREFIX) :]),
                            str(data.get("status")),
                            str(data.get("failure_reason") or ""),
                        )
                    except ValueError:
                        signal = None
        if signal is not None and self._temporal is not None:
            pid, status, reason = signal
            try:
                await self._temporal.get_workflow_handle(workflow_id(pid)).signal(
                    "psp_status", args=[status, reason]
                )
            except Exception as exc:
                # Recorded already; the workflow's status query will find the outcome.
                log.info("settlement signal for %s not delivered: %s", pid, type(exc).__name__)
        return not first

    async def _charge_paid(self, conn: Any, data: dict[str, Any]) -> None:
        txid = str(data.get("txid", ""))
        charge = await store.get_charge(conn, txid=txid, for_update=True)
        if charge is None:
            log.warning("PIX received for an unknown txid")
            return
        if charge.state == "COMPLETED":
            return
        amount = data.get("amount")
        if not isinstance(amount, int) or amount != charge.amount:
            raise failed_precondition("AMOUNT_MISMATCH", "the PSP reports another amount")
        wallet = await self._ledger.wallet_of(charge.user_id)
        if wallet is None:
            raise failed_precondition("WALLET_NOT_FOUND", "the receiver has no wallet")
        payment_id = uuid.uuid5(charge.id, "received")
        e2e = str(data.get("end_to_end_id", ""))[:32]
        try:
            await self._ledger.apply(
                payment_id,
                [
                    Leg(
                        "credit",
                        PSP_CLEARING_ACCOUNT,
                        wallet,
                        charge.amount,
                        ledger_pb2.TRANSFER_KIND_POSTED,
                        code="PIX_IN",
                    )
                ],
                external_reference=f"{wire.CHARGE_PREFIX}{charge.id}",
                description=charge.description or "PIX recebido",
            )
        except LedgerRefusedError as exc:
            raise failed_precondition(exc.reason, exc.message) from exc
        payment, created = await store.insert_payment(
            conn,
            id=payment_id,
            user_id=charge.user_id,
            method="PIX",
            direction="INBOUND",
            amount=charge.amount,
            currency=charge.currency,
            fee=0,
            description=charge.description,
            instrument_public={},
            state="SETTLED",
            pix_charge_id=charge.id,
            limit_day=business_day(datetime.now(UTC)),
            end_to_end_id=e2e,
            psp_reference=e2e,
        )
        moved = await store.set_charge_state(
            conn, charge.id, "COMPLETED", payment_id=payment_id, end_to_end_id=e2e
        )
        if created:
            await store.step_finished(conn, payment_id, "credit", "SUCCEEDED")
            await wire.payment_event(conn, payment)
        if moved is not None:
            await wire.charge_paid_event(conn, moved)

    async def _payout_returned(self, conn: Any, event_id: str, data: dict[str, Any]) -> None:
        """The receiving institution returned (part of) one of our settled payouts
        (a PIX devolução): credit the wallet with it once, or record the refusal
        (unknown payment, more than is left, ...) without crediting anything."""
        return_id = str(data.get("id", ""))
        if not 1 <= len(return_id) <= MAX_RETURN_ID:
            raise invalid_argument(
                "INVALID_ARGUMENT",
                "a return needs its id",
                violations=[("body.data.id", f"1-{MAX_RETURN_ID} characters")],
            )
        e2e = str(data.get("end_to_end_id", ""))[:64]
        raw = data.get("amount")
        amount = raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
        ref = str(data.get("external_reference", ""))
        pid: uuid.UUID | None = None
        if ref.startswith(wire.PAYMENT_PREFIX):
            try:
                pid = uuid.UUID(ref[len(wire.PAYMENT_PREFIX) :])
            except ValueError:
                pid = None
        # The row lock serialises every notification of returns of this payment.
        row = await store.get_payment(conn, pid, for_update=True) if pid else None
        if await store.payout_return_recorded(conn, e2e, return_id):
            return
        reason = ""
        target = None
        if not 0 < amount <= MAX_AMOUNT_MINOR:
            reason = "RETURN_AMOUNT_INVALID"
        elif row is None or row.direction != "OUTBOUND":
            reason = "PAYMENT_NOT_FOUND"
        elif e2e and row.end_to_end_id and e2e != row.end_to_end_id:
            reason = "END_TO_END_ID_MISMATCH"
        elif row.state in ("PENDING", "PROCESSING", "REQUIRES_ACTION"):
            # The PSP settled it and our settlement has not been applied yet: no
            # 2xx, so the PSP delivers the return again once we caught up.
            raise failed_precondition(
                "PAYMENT_NOT_SETTLED", "the payout is not settled here yet; deliver again"
            )
        else:
            try:
                target = after_refund(State(row.state), row.amount, row.refunded, amount)
            except InvalidTransitionError:
                reason = "PAYMENT_NOT_RETURNABLE"
            except RefundExceedsError:
                reason = "RETURN_EXCEEDS_PAYMENT"
        if target is None or row is None:
            log.warning("payout return %s refused: %s", return_id, reason)
            await store.record_payout_return(
                conn,
                return_id=return_id,
                payment_id=row.id if row is not None else None,
                end_to_end_id=e2e,
                amount=amount if 0 <= amount <= MAX_AMOUNT_MINOR else 0,
                state="REFUSED",
                reason=reason,
                event_id=event_id,
            )
            await audit.record(
                conn,
                "payment" if row is not None else "payout_return",
                str(row.id) if row is not None else return_id,
                "return_refused",
                {"return_id": return_id, "amount": amount, "reason": reason},
                RETURN_AUTHOR,
            )
            return
        wallet = await self._ledger.wallet_of(row.user_id)
        if wallet is None:
            raise failed_precondition("WALLET_NOT_FOUND", "the payer has no wallet")
        await store.step_started(conn, row.id, "return")
        try:
            # PSP clearing -> wallet under the payout's own reference, so the
            # report's REFUND line of this return matches it.
            await self._ledger.apply(
                payout_return_id_for(row.id, return_id),
                [
                    Leg(
                        "return_credit",
                        PSP_CLEARING_ACCOUNT,
                        wallet,
                        amount,
                        ledger_pb2.TRANSFER_KIND_POSTED,
                        code="PIX_RETURN",
                    )
                ],
                external_reference=external_reference(row.id),
                description=f"devolucao {return_id}",
            )
        except LedgerRefusedError as exc:
            raise failed_precondition(exc.reason, exc.message) from exc
        moved = await store.add_refund(conn, row.id, amount)
        assert moved is not None and moved.state == target.value, "the locked row allowed it"
        await store.record_payout_return(
            conn,
            return_id=return_id,
            payment_id=row.id,
            end_to_end_id=e2e,
            amount=amount,
            state="CREDITED",
            reason=str(data.get("reason", ""))[:64],
            event_id=event_id,
        )
        await store.step_finished(conn, row.id, "return", "SUCCEEDED")
        await wire.payment_event(conn, moved)
        await audit.record(
            conn,
            "payment",
            str(row.id),
            "returned",
            {"return_id": return_id, "amount": amount},
            RETURN_AUTHOR,
        )

    # --- reconciliation ------------------------------------------------------------------

    async def reconcile(self, report_date: str) -> tuple[str, int, list[tuple[str, str, str, str]]]:
        try:
            day = date.fromisoformat(report_date)
        except ValueError as exc:
            raise invalid_argument(
                "INVALID_ARGUMENT",
                "report_date must be YYYY-MM-DD",
                violations=[("report_date", "YYYY-MM-DD")],
            ) from exc
        try:
            content = await self._psp.settlement_report(day.isoformat())
        except ProviderError as exc:
            raise unavailable("PSP_UNAVAILABLE", "the PSP report is unavailable") from exc
        key = "psp-report-" + hashlib.sha256(content).hexdigest()[:48]
        reconciliation = await self._ledger.reconcile(day.isoformat(), content, key)
        # Amounts are the ledger's to compare (its run matched every reference
        # and amount): its AMOUNT_MISMATCH items are read back for our payments.
        amount_items = await self._ledger.amount_mismatches(reconciliation, MAX_MISMATCHES)
        lines = json.loads(content)["lines"]
        start = datetime.combine(day, dtime(0), tzinfo=SAO_PAULO)
        end = start + timedelta(days=1)
        reported: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            reported.setdefault(str(line["external_reference"]), []).append(line)
        mismatches: list[tuple[str, str, str, str]] = []
        async with self._db.transaction() as conn:
            ours = await store.payments_of_day(conn, start, end)
            checked = 0
            by_ref = {}
            for p in ours:
                ref = (
                    f"{wire.CHARGE_PREFIX}{p.pix_charge_id}"
                    if p.pix_charge_id
                    else f"{wire.PAYMENT_PREFIX}{p.id}"
                )
                by_ref[ref] = p
            for ref, p in by_ref.items():
                checked += 1
                in_report = ref in reported
                settled = p.state in ("SETTLED", "PARTIALLY_REFUNDED", "REFUNDED")
                if (
                    settled
                    and not in_report
                    and p.settled_at is not None
                    and start <= p.settled_at < end
                ):
                    mismatches.append(
                        (
                            f"{wire.PAYMENT_PREFIX}{p.id}",
                            p.state,
                            "MISSING_IN_REPORT",
                            "settled here, absent from the PSP report",
                        )
                    )
                elif in_report and not settled:
                    mismatches.append(
                        (
                            f"{wire.PAYMENT_PREFIX}{p.id}",
                            p.state,
                            "STATE_DISAGREES",
                            f"the PSP settled it; here it is {p.state}",
                        )
                    )
            # Payments the report or the ledger's run name beyond the day's own
            # (settled another day, or unknown), read in one statement.
            others = await _payments_named(
                conn,
                [
                    ref
                    for ref in (*reported, *(i.external_reference for i in amount_items))
                    if ref not in by_ref
                ],
            )
            for ref in reported:
                if ref not in by_ref and ref.startswith(wire.PAYMENT_PREFIX):
                    other = others.get(ref)
                    checked += 1
                    if other is None:
                        mismatches.append(
                            (ref, "UNSPECIFIED", "MISSING_IN_PAYMENTS", "unknown payment")
                        )
                    elif other.state not in ("SETTLED", "PARTIALLY_REFUNDED", "REFUNDED"):
                        mismatches.append(
                            (
                                ref,
                                other.state,
                                "STATE_DISAGREES",
                                f"the PSP settled it; here it is {other.state}",
                            )
                        )
            flagged = {m[0] for m in mismatches}
            for item in amount_items:
                ref = item.external_reference
                payment = by_ref.get(ref) or others.get(ref)
                if payment is None:
                    continue  # not a payment's reference: the ledger's run lists it
                name = f"{wire.PAYMENT_PREFIX}{payment.id}"
                if name in flagged:
                    continue
                flagged.add(name)
                mismatches.append(
                    (
                        name,
                        payment.state,
                        "AMOUNT_DISAGREES",
                        f"the PSP reports {item.report_minor} centavos,"
                        f" the ledger holds {item.ledger_minor}",
                    )
                )
        return reconciliation, checked, mismatches[:MAX_MISMATCHES]


async def _payments_named(
    conn: AsyncConnection, references: Iterable[str]
) -> dict[str, store.PaymentRow]:
    """The existing payments among `payments/{uuid}` references, by reference;
    a malformed or unknown reference is simply absent."""
    ids: dict[uuid.UUID, str] = {}
    for ref in references:
        if ref.startswith(wire.PAYMENT_PREFIX):
            try:
                ids[uuid.UUID(ref[len(wire.PAYMENT_PREFIX) :])] = ref
            except ValueError:
                continue
    found = await store.get_payments(conn, list(ids))
    return {ids[payment_id]: payment for payment_id, payment in found.items()}


Paged = TypeVar("Paged", store.PaymentRow, store.ChargeRow)


def _page(rows: list[Paged], size: int, listing: str) -> tuple[list[Paged], str]:
    """Rows were fetched with size + 1: one more means another page, after row `size`."""
    if len(rows) <= size:
        return rows, ""
    last = rows[size - 1]
    return rows[:size], pagination.encode_time_id(listing, last.created_at, last.id)
