"""Payment workflows on Temporal (task queue `payments`, id `payment-{payment id}`).

Payout (PIX/TED): prepare (validate, DICT, on-us?) -> reserve (ledger pending
wallet -> PSP clearing, + fee, linked) -> submit to the PSP (idempotent by our
reference; retried with backoff for as long as the PSP is down: the payment
waits and resumes) -> await settlement (webhook signal; status query when no
webhook arrives in time) -> post the reservation or void it.
On-us: prepare -> one posted wallet -> wallet transfer.
Card top-up: authorize (-> challenge) -> capture -> credit the wallet.

Every side effect is an activity that is safe to repeat: ledger transfer ids
derive from the payment id, the PSP dedups by our reference, and state
changes are guarded in SQL. Each activity records its step (attempts,
timestamps, last error) in `payment_steps`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import grpc

    from fintech.ledger.v1 import ledger_pb2
    from services.payments import store, wire
    from services.payments.domain.bank_account import (
        OUR_ISPB,
        is_our_bank,
        is_our_branch,
        parse_account,
    )
    from services.payments.domain.rules import external_reference
    from services.payments.domain.states import State, can_transition
    from services.payments.ledger_gateway import (
        PSP_CLEARING_ACCOUNT,
        LedgerGateway,
        LedgerRefusedError,
        Leg,
        on_us_legs,
        post_legs,
        reserve_legs,
        void_legs,
    )
    from services.payments.psp import PspClient, PspRejectedError
    from services.platform.crypto import FieldCipher
    from services.platform.db import Database
    from services.platform.http_client import CircuitOpenError, ProviderError
    from services.platform.temporal import local_then_durable

log = logging.getLogger(__name__)

TASK_QUEUE = "payments"
PAYOUT_WORKFLOW = "payments.payout"
CARD_WORKFLOW = "payments.card"

ACTIVITY_TIMEOUT = timedelta(seconds=20)
# The payment commits before its workflow starts (starter.py), so the first
# attempt finds it; the retry is a guard (a dropped connection), not a wait.
START_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=12,
)
# Ledger and PSP steps: retried until they succeed (a payment waits while a
# dependency is down and resumes when it is back); business refusals are
# results, not errors, so nothing non-retryable reaches this policy.
PATIENT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
    non_retryable_error_types=["PAYMENT_NOT_FOUND"],
)
MAX_POLLS = 500  # with the interval capped at 5 min: ~40 h of waiting, then give up loudly
MAX_POLL_INTERVAL_S = 300
CHALLENGE_TIMEOUT = timedelta(minutes=15)
TERMINAL_PSP = ("SETTLED", "FAILED")
# Payment states with nothing left for the workflow to do (reservation posted or voided).
RESOLVED = ("SETTLED", "FAILED", "PARTIALLY_REFUNDED", "REFUNDED")


async def _step(name: str, *args: Any, retry: RetryPolicy) -> Any:
    """One payment step, local first (every activity here is re-entrant: see
    `prepare` and docs/PAYMENTS.md)."""
    return await local_then_durable(name, *args, start_to_close=ACTIVITY_TIMEOUT, retry=retry)


@dataclass
class PayoutInput:
    payment_id: str
    settlement_wait_s: float = 10.0


def _pid(payment_id: str) -> uuid.UUID:
    return uuid.UUID(payment_id)


# Not sandboxed: the sandbox re-imports modules for every run, which costs more
# CPU than the payment itself on two cores; these workflows only call
# activities, wait and compare strings (no clock, randomness or I/O).
@workflow.defn(name=PAYOUT_WORKFLOW, sandboxed=False)
class PayoutWorkflow:
    def __init__(self) -> None:
        self._psp: tuple[str, str] | None = None

    @workflow.signal(name="psp_status")
    def psp_status(self, status: str, reason: str) -> None:
        # Only a final word counts; duplicates and late "processing" are ignored.
        if status in TERMINAL_PSP and self._psp is None:
            self._psp = (status, reason)

    @workflow.run
    async def run(self, data: PayoutInput) -> str:
        pid = data.payment_id
        try:
            prep: dict[str, Any] = await _step("payments.prepare", pid, retry=START_RETRY)
        except ActivityError:
            # No such payment. The workflow starts only after the payment has
            # committed (starter.py), so this is a guard, not a race.
            return "NOT_FOUND"
        if prep["outcome"] != "continue":
            return str(prep["outcome"])
        if prep["on_us"]:
            return str(await self._act("payments.settle_on_us", pid, prep["counterparty_wallet"]))
        reserved = await self._act("payments.reserve", pid)
        if reserved != "reserved":
            if reserved == "cancelled":
                return str(await self._act("payments.finalize", pid, "CANCELLED", ""))
            return str(reserved)
        submitted: dict[str, Any] = await self._act("payments.submit", pid)
        if submitted["outcome"] == "cancelled":
            return str(await self._act("payments.finalize", pid, "CANCELLED", ""))
        if submitted["outcome"] == "rejected":
            return str(await self._act("payments.finalize", pid, "FAILED", submitted["reason"]))
        if submitted["status"] in TERMINAL_PSP:
            self.psp_status(submitted["status"], submitted["reason"])
        wait = data.settlement_wait_s
        polls = 0
        while self._psp is None:
            try:
                await workflow.wait_condition(lambda: self._psp is not None, timeout=wait)
            except TimeoutError:
                pass
            if self._psp is not None:
                break
            polled: dict[str, Any] = await self._act("payments.poll", pid)
            if polled["status"] in TERMINAL_PSP:
                self._psp = (polled["status"], polled["reason"])
                break
            polls += 1
            if polls >= MAX_POLLS:
                # Money may have left: never void blindly. Reconciliation and an
                # operator decide; the payment stays PROCESSING.
                raise ApplicationError("no settlement news from the PSP", type="SETTLEMENT_UNKNOWN")
            wait = min(MAX_POLL_INTERVAL_S, wait * 2)
        status, reason = self._psp
        return str(
            await self._act(
                "payments.finalize",
                pid,
                "SETTLED" if status == "SETTLED" else "FAILED",
                reason or ("" if status == "SETTLED" else "PSP_FAILED"),
            )
        )

    async def _act(self, name: str, *args: Any) -> Any:
        return await _step(name, *args, retry=PATIENT_RETRY)


@workflow.defn(name=CARD_WORKFLOW, sandboxed=False)
class CardWorkflow:
    def __init__(self) -> None:
        self._challenge: str | None = None
        self._cancelled = False

    @workflow.signal(name="challenge")
    def challenge(self, response: str) -> None:
        if self._challenge is None:
            self._challenge = response

    @workflow.signal(name="cancel")
    def cancel(self) -> None:
        self._cancelled = True

    @workflow.run
    async def run(self, data: PayoutInput) -> str:
        pid = data.payment_id
        try:
            await _step("payments.prepare", pid, retry=START_RETRY)
        except ActivityError:
            return "NOT_FOUND"  # as in PayoutWorkflow.run
        result: dict[str, Any] = await self._act("payments.card_authorize", pid)
        if result["outcome"] == "challenge":
            try:
                await workflow.wait_condition(
                    lambda: self._challenge is not None or self._cancelled,
                    timeout=CHALLENGE_TIMEOUT,
                )
            except TimeoutError:
                return str(await self._act("payments.finalize", pid, "FAILED", "CHALLENGE_EXPIRED"))
            if self._challenge is None:
                return str(await self._act("payments.finalize", pid, "CANCELLED", ""))
            result = await self._act("payments.card_challenge", pid, self._challenge)
        if result["outcome"] != "authorized":
            if result["outcome"] == "cancelled":
                return str(await self._act("payments.finalize", pid, "CANCELLED", ""))
            return str(await self._act("payments.finalize", pid, "FAILED", result["reason"]))
        return str(await self._act("payments.card_capture", pid))

    async def _act(self, name: str, *args: Any) -> Any:
        return await _step(name, *args, retry=PATIENT_RETRY)


class PaymentActivities:
    """The side effects of the workflows, each safe to run more than once."""

    def __init__(
        self, db: Database, ledger: LedgerGateway, psp: PspClient, cipher: FieldCipher
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._psp = psp
        self._cipher = cipher

    def activities(self) -> list[Any]:
        return [
            self.prepare,
            self.reserve,
            self.submit,
            self.poll,
            self.finalize,
            self.settle_on_us,
            self.card_authorize,
            self.card_challenge,
            self.card_capture,
        ]

    # --- helpers -------------------------------------------------------------------

    async def _load(self, payment_id: str) -> store.PaymentRow:
        async with self._db.transaction() as conn:
            row = await store.get_payment(conn, _pid(payment_id))
        if row is None:
            raise ApplicationError("payment not visible yet", type="PAYMENT_NOT_VISIBLE")
        return row

    def _instrument(self, row: store.PaymentRow) -> dict[str, Any]:
        import json

        assert row.instrument_ciphertext is not None
        data: dict[str, Any] = json.loads(
            self._cipher.decrypt_text(row.instrument_ciphertext, row.id.bytes)
        )
        return data

    async def _step(
        self, payment_id: str, step: str, state: str | None = None, error: str = ""
    ) -> None:
        async with self._db.transaction() as conn:
            if state is None:
                await store.step_started(conn, _pid(payment_id), step)
            else:
                await store.step_finished(conn, _pid(payment_id), step, state, error)

    async def _provider_down(self, payment_id: str, step: str, exc: Exception) -> ApplicationError:
        waiting = isinstance(exc, CircuitOpenError)
        await self._step(
            payment_id, step, "WAITING_PROVIDER" if waiting else "RUNNING", type(exc).__name__
        )
        return ApplicationError(str(exc), type="PSP_UNAVAILABLE")

    async def _fail(self, payment_id: str, reason: str, message: str, step: str) -> str:
        """FAILED with a reason, before any reservation exists."""
        async with self._db.transaction() as conn:
            row = await store.set_state(
                conn,
                _pid(payment_id),
                "FAILED",
                from_states=("PENDING",),
                reason=reason,
                message=message,
            )
            await store.step_finished(conn, _pid(payment_id), step, "FAILED", reason)
            if row is not None:
                await store.release_limit(conn, row)
                await wire.payment_event(conn, row)
        return "FAILED"

    # --- payouts ---------------------------------------------------------------------

    @activity.defn(name="payments.prepare")
    async def prepare(self, payment_id: str) -> dict[str, Any]:
        row = await self._load(payment_id)
        if row.state in RESOLVED:
            return {"outcome": row.state.lower(), "on_us": False, "counterparty_wallet": ""}
        if row.state != "PENDING":
            # PROCESSING or CANCELLED: an earlier run of this workflow got
            # further. That happens when the worker died before completing the
            # workflow task whose local activities had run: they all run again.
            # The later steps see where the payment stands and finish it
            # (reserve and submit are idempotent; a cancelled one is voided).
            return {"outcome": "continue", "on_us": False, "counterparty_wallet": ""}
        await self._step(payment_id, "validate")
        outcome: dict[str, Any] = {"outcome": "continue", "on_us": False, "counterparty_wallet": ""}
        if row.direction != "OUTBOUND" or row.method not in ("PIX", "TED"):
            await self._step(payment_id, "validate", "SUCCEEDED")
            return outcome
        # Who receives: one of our customers (on-us) or another institution's.
        recipient = ""
        public: dict[str, Any] = {}
        if row.method == "PIX":
            key = str(self._instrument(row)["key"])
            try:
                entry = await self._psp.lookup_key(key)
            except ProviderError as exc:
                raise await self._provider_down(payment_id, "validate", exc) from exc
            if entry is None:
                outcome["outcome"] = await self._fail(
                    payment_id, "PIX_KEY_NOT_FOUND", "the PIX key is not registered", "validate"
                )
                return outcome
            public = {"recipient_name": entry.name, "recipient_ispb": entry.ispb}
            if entry.ispb == OUR_ISPB:
                recipient = entry.account
        else:
            bank = self._instrument(row)
            if is_our_bank(str(bank["bank_code"])):
                # CreatePayment refuses another branch or a bad check digit, but
                # a payment accepted before it did (or replayed from history)
                # must fail plainly here, not crash the activity on every retry.
                number = (
                    parse_account(str(bank["account_number"]))
                    if is_our_branch(str(bank["branch"]))
                    else None
                )
                if number is not None:
                    async with self._db.transaction() as conn:
                        recipient = await store.bank_account_owner(conn, number) or ""
                if not recipient:
                    outcome["outcome"] = await self._fail(
                        payment_id, "RECIPIENT_NOT_FOUND", "no customer has the account", "validate"
                    )
                    return outcome
                public = {"recipient_ispb": OUR_ISPB}
        counterparty_wallet = ""
        if recipient:
            if recipient == row.user_id:
                outcome["outcome"] = await self._fail(
                    payment_id, "SAME_ACCOUNT", "a payment to oneself", "validate"
                )
                return outcome
            counterparty_wallet = await self._ledger.wallet_of(recipient) or ""
            if not counterparty_wallet:
                outcome["outcome"] = await self._fail(
                    payment_id, "RECIPIENT_NOT_FOUND", "the recipient has no wallet", "validate"
                )
                return outcome
        if public:
            async with self._db.transaction() as conn:
                await store.set_counterparty(
                    conn, row.id, on_us=bool(recipient), counterparty=recipient, public=public
                )
        outcome["on_us"], outcome["counterparty_wallet"] = bool(recipient), counterparty_wallet
        await self._step(payment_id, "validate", "SUCCEEDED")
        return outcome

    @activity.defn(name="payments.settle_on_us")
    async def settle_on_us(self, payment_id: str, counterparty_wallet: str) -> str:
        row = await self._load(payment_id)
        if row.state != "PENDING":
            return row.state
        wallet = await self._ledger.wallet_of(row.user_id)
        assert wallet is not None, "CreatePayment checked the wallet"
        await self._step(payment_id, "transfer")
        async with self._db.transaction() as conn:
            if not await store.mark_submitted(conn, row.id):
                return "CANCELLED"
        try:
            await self._ledger.apply(
                row.id,
                on_us_legs(wallet, counterparty_wallet, row.amount, row.fee, row.method),
                external_reference=external_reference(row.id),
                description=row.description or row.method,
            )
        except LedgerRefusedError as exc:
            return await self._fail(payment_id, exc.reason, exc.message, "transfer")
        async with self._db.transaction() as conn:
            settled = await store.set_state(conn, row.id, "SETTLED", from_states=("PENDING",))
            await store.step_finished(conn, row.id, "transfer", "SUCCEEDED")
            await store.step_finished(conn, row.id, "psp_submit", "SKIPPED")
            if settled is not None:
                await wire.payment_event(conn, settled)
        return "SETTLED"

    @activity.defn(name="payments.reserve")
    async def reserve(self, payment_id: str) -> str:
        row = await self._load(payment_id)
        if row.state == "CANCELLED":
            return "cancelled"
        if row.state != "PENDING":
            return "reserved"  # an earlier attempt got further
        wallet = await self._ledger.wallet_of(row.user_id)
        assert wallet is not None, "CreatePayment checked the wallet"
        await self._step(payment_id, "reserve")
        try:
            await self._ledger.apply(
                row.id,
                reserve_legs(wallet, row.amount, row.fee),
                external_reference=external_reference(row.id),
                description=row.description or row.method,
            )
        except LedgerRefusedError as exc:
            return await self._fail(payment_id, exc.reason, exc.message, "reserve")
        except grpc.aio.AioRpcError as exc:
            await self._step(payment_id, "reserve", "RUNNING", exc.code().name)
            raise
        await self._step(payment_id, "reserve", "SUCCEEDED")
        return "reserved"

    @activity.defn(name="payments.submit")
    async def submit(self, payment_id: str) -> dict[str, Any]:
        row = await self._load(payment_id)
        if row.state == "CANCELLED":
            return {"outcome": "cancelled", "status": "", "reason": ""}
        if row.state == "PENDING":
            async with self._db.transaction() as conn:
                if not await store.mark_submitted(conn, row.id):
                    return {"outcome": "cancelled", "status": "", "reason": ""}
        await self._step(payment_id, "psp_submit")
        instrument = self._instrument(row)
        body: dict[str, Any] = {
            "external_reference": external_reference(row.id),
            "method": row.method,
            "amount": row.amount,
            "currency": row.currency,
            "description": row.description,
        }
        if row.method == "PIX":
            body["pix_key"] = instrument["key"]
        else:
            body["bank_account"] = {
                k: instrument[k]
                for k in (
                    "bank_code",
                    "branch",
                    "account_number",
                    "account_type",
                    "holder_name",
                    "holder_document",
                )
            }
        try:
            payout = await self._psp.create_payout(body)
        except PspRejectedError as exc:
            await self._step(payment_id, "psp_submit", "FAILED", exc.code)
            return {"outcome": "rejected", "status": "FAILED", "reason": exc.code}
        except ProviderError as exc:
            raise await self._provider_down(payment_id, "psp_submit", exc) from exc
        async with self._db.transaction() as conn:
            moved = await store.set_state(
                conn,
                row.id,
                "PROCESSING",
                from_states=("PENDING",),
                psp_reference=payout.id,
                end_to_end_id=payout.end_to_end_id,
            )
            await store.step_finished(conn, row.id, "psp_submit", "SUCCEEDED")
            await store.step_started(conn, row.id, "await_settlement")
            del moved  # PROCESSING is not announced: payment.created already was
        return {"outcome": "accepted", "status": payout.status, "reason": payout.failure_reason}

    @activity.defn(name="payments.poll")
    async def poll(self, payment_id: str) -> dict[str, str]:
        await self._step(payment_id, "await_settlement")
        try:
            payout = await self._psp.find_payout(external_reference(_pid(payment_id)))
        except ProviderError as exc:
            raise await self._provider_down(payment_id, "await_settlement", exc) from exc
        if payout is None:
            return {"status": "UNKNOWN", "reason": ""}
        return {"status": payout.status, "reason": payout.failure_reason}

    @activity.defn(name="payments.finalize")
    async def finalize(self, payment_id: str, outcome: str, reason: str) -> str:
        row = await self._load(payment_id)
        pid = row.id
        target = State(outcome)
        if row.state == outcome or not can_transition(State(row.state), target):
            if row.state in ("FAILED", "CANCELLED") and row.direction == "OUTBOUND":
                await self._void(row)  # e.g. cancelled by the API: the reservation goes too
            return row.state
        step = "post" if target is State.SETTLED else "void"
        await self._step(payment_id, step)
        if row.direction == "OUTBOUND":
            if target is State.SETTLED:
                await self._ledger.apply(
                    pid,
                    post_legs(row.fee),
                    external_reference=external_reference(pid),
                    description=row.description or row.method,
                )
            else:
                await self._void(row)
        async with self._db.transaction() as conn:
            moved = await store.set_state(
                conn,
                pid,
                outcome,
                from_states=("PENDING", "PROCESSING", "REQUIRES_ACTION"),
                reason=reason if target is not State.SETTLED else "",
                message=reason.replace("_", " ").lower(),
            )
            if row.submitted or row.psp_reference:
                await store.step_finished(
                    conn,
                    pid,
                    "await_settlement",
                    "SUCCEEDED" if target is State.SETTLED else "FAILED",
                    reason,
                )
            await store.step_finished(conn, pid, step, "SUCCEEDED")
            if moved is not None:
                if target is not State.SETTLED:
                    await store.release_limit(conn, moved)
                await wire.payment_event(conn, moved)
        return outcome

    async def _void(self, row: store.PaymentRow) -> None:
        try:
            await self._ledger.apply(
                row.id,
                void_legs(row.fee),
                external_reference=external_reference(row.id),
                description="void",
            )
        except LedgerRefusedError as exc:
            # Never reserved (failed or cancelled before the reserve step).
            if exc.reason != "PENDING_TRANSFER_NOT_FOUND":
                raise ApplicationError(str(exc), type=exc.reason) from exc

    # --- cards -------------------------------------------------------------------------

    async def _card(
        self, row: store.PaymentRow, path: str, endpoint: str, body: dict[str, Any], step: str
    ) -> dict[str, Any] | PspRejectedError:
        await self._step(str(row.id), step)
        try:
            return await self._psp.card_call(
                path, endpoint, body, f"{external_reference(row.id)}:{step}"
            )
        except PspRejectedError as exc:
            await self._step(str(row.id), step, "FAILED", exc.code)
            return exc
        except ProviderError as exc:
            raise await self._provider_down(str(row.id), step, exc) from exc

    @activity.defn(name="payments.card_authorize")
    async def card_authorize(self, payment_id: str) -> dict[str, str]:
        row = await self._load(payment_id)
        if row.state == "CANCELLED":
            return {"outcome": "cancelled", "reason": ""}
        token = str(self._instrument(row)["card_token"])
        body = {
            "card_token": token,
            "amount": row.amount,
            "currency": row.currency,
            "external_reference": external_reference(row.id),
        }
        result = await self._card(row, "/v1/card/charges", "/v1/card/charges", body, "authorize")
        if isinstance(result, PspRejectedError):
            return {"outcome": "declined", "reason": result.code}
        target = "REQUIRES_ACTION" if result["status"] == "REQUIRES_CHALLENGE" else "PROCESSING"
        async with self._db.transaction() as conn:
            await store.set_state(
                conn, row.id, target, from_states=("PENDING",), psp_reference=str(result["id"])
            )
            await store.set_counterparty(
                conn,
                row.id,
                on_us=False,
                counterparty="",
                public={"brand": result.get("brand", ""), "last4": result.get("last4", "")},
            )
            await store.step_finished(conn, row.id, "authorize", "SUCCEEDED")
            if target == "REQUIRES_ACTION":
                await store.step_started(conn, row.id, "challenge")
        return {
            "outcome": "challenge" if target == "REQUIRES_ACTION" else "authorized",
            "reason": "",
        }

    @activity.defn(name="payments.card_challenge")
    async def card_challenge(self, payment_id: str, response: str) -> dict[str, str]:
        row = await self._load(payment_id)
        if row.state == "CANCELLED":
            return {"outcome": "cancelled", "reason": ""}
        path = f"/v1/card/charges/{row.psp_reference}/challenge"
        result = await self._card(
            row, path, "/v1/card/charges/{id}/challenge", {"response": response}, "challenge"
        )
        if isinstance(result, PspRejectedError):
            return {"outcome": "declined", "reason": result.code}
        async with self._db.transaction() as conn:
            await store.set_state(conn, row.id, "PROCESSING", from_states=("REQUIRES_ACTION",))
            await store.step_finished(conn, row.id, "challenge", "SUCCEEDED")
        return {"outcome": "authorized", "reason": ""}

    @activity.defn(name="payments.card_capture")
    async def card_capture(self, payment_id: str) -> str:
        """Capture, then credit the wallet: money enters only once captured."""
        row = await self._load(payment_id)
        if row.state != "PROCESSING":
            return row.state
        path = f"/v1/card/charges/{row.psp_reference}/capture"
        result = await self._card(row, path, "/v1/card/charges/{id}/capture", {}, "capture")
        if isinstance(result, PspRejectedError):
            return await self.finalize(payment_id, "FAILED", result.code)
        wallet = await self._ledger.wallet_of(row.user_id)
        assert wallet is not None
        await self._step(payment_id, "credit")
        await self._ledger.apply(
            row.id,
            [
                Leg(
                    "credit",
                    PSP_CLEARING_ACCOUNT,
                    wallet,
                    row.amount,
                    ledger_pb2.TRANSFER_KIND_POSTED,
                    code="CARD_TOPUP",
                )
            ],
            external_reference=external_reference(row.id),
            description=row.description or "card top-up",
        )
        async with self._db.transaction() as conn:
            await store.step_finished(conn, row.id, "capture", "SUCCEEDED")
            await store.step_finished(conn, row.id, "credit", "SUCCEEDED")
            settled = await store.set_state(conn, row.id, "SETTLED", from_states=("PROCESSING",))
            if settled is not None:
                await wire.payment_event(conn, settled)
        return "SETTLED"


def workflow_for(method: str) -> str:
    """The workflow that carries a payment of this method."""
    return CARD_WORKFLOW if method == "CARD" else PAYOUT_WORKFLOW


async def start(
    client: Any, workflow_name: str, payment_id: uuid.UUID, settlement_wait_s: float
) -> None:
    """Start the payment's workflow; a second start of the same id is a no-op."""
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from services.payments.domain.rules import workflow_id

    try:
        await client.start_workflow(
            workflow_name,
            PayoutInput(str(payment_id), settlement_wait_s),
            id=workflow_id(payment_id),
            task_queue=TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass
