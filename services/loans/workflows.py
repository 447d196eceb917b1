"""The loan process and the daily accrual, as Temporal workflows (task queue `loans`).

LoanProcess (workflow id `loan-{id}`): decide (risk Score) → APPROVED, OFFERED
or DECLINED; an offer waits for the customer (AcceptLoanOffer / CancelLoan
signal, or it expires) → FUNDING → fund → FUNDED, or compensate → CANCELLED.
Every activity reads the loan row first and acts only from the state it
expects, so a retried or replayed activity never repeats an effect; every
ledger transfer id is derived from the loan (ledger_gateway.step_id), so a
funding retried after a crash (even a SIGKILL between the ledger's commit and
ours) re-submits the same transfers and the ledger replays them. The funding
legs are one linked chain: the ledger applies all of them or none, so there is
no half-funded loan to clean up; a refusal compensates the loan to CANCELLED.

LoansDailyAccrual (cron, workflow id `loans-daily-accrual`): first cancels the
counter-offers whose 7 days ran out by the loans clock (OFFER_EXPIRED; the
loan's workflow is woken by a signal, else its own 7-day timer ends it), then
for every loan still owing, accrues each day since the last accrual up to
today (the loans clock) — fine, default interest, notifications, buckets, default after 90
days — one loan per transaction, one day per `accruals` row: restart-safe.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    import grpc

    from services.loans import events, store, terms
    from services.loans.clock import Clock, local_day
    from services.loans.domain import charges, state
    from services.loans.domain.schedule import MIN_PRINCIPAL_MINOR, FeePolicy, QuoteError, redate
    from services.loans.ledger_gateway import (
        DEFAULTED,
        FEE_REVENUE,
        FUNDING,
        IOF_PAYABLE,
        PENALTY_INCOME,
        Ledger,
        LedgerRejectedError,
        Leg,
        step_id,
    )
    from services.loans.payout import NoPayout, Payout, PayoutRefusedError, confirm_payout
    from services.loans.remote import RemoteUnavailableError
    from services.loans.risk_gateway import RiskGateway
    from services.loans.service import (
        LOAN_WORKFLOW,
        PIX_CONTEXT,
        counter_offer,
        funding_changes,
        installment_rows,
        workflow_id,
    )
    from services.loans.wire import BUCKET_TO_PROTO
    from services.platform.crypto import FieldCipher
    from services.platform.db import Database
    from services.platform.errors import AppError

log = logging.getLogger(__name__)

ACCRUAL_WORKFLOW = "LoansDailyAccrual"
ACCRUAL_WORKFLOW_ID = "loans-daily-accrual"
ACCRUAL_CRON = "0 4 * * *"  # 04:00 UTC = 01:00 in São Paulo: after the day closed
OFFER_TTL = timedelta(days=7)
MAX_ACCRUAL_DAYS_PER_RUN = charges.MAX_NOTICE_DAYS
MAX_ACCRUAL_LOANS_PER_RUN = 100_000
MAX_OFFER_EXPIRY_PAGES = 500  # of store.ACCRUAL_BATCH offers each
# A loan step is a few RPCs with their own deadlines (risk 10 s x 3 attempts at
# worst). A worker that dies mid-step is noticed when this runs out and the
# step is retried on another (or the restarted) worker.
ACTIVITY_TIMEOUT = timedelta(seconds=45)
FUNDING_TIMEOUT = timedelta(seconds=20)  # ledger calls only: 5 s deadlines
FATAL = ["LOAN_NOT_FOUND", "FUNDING_REFUSED"]
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=30,
    non_retryable_error_types=FATAL,
)
SYSTEM = "system"


def _fatal(reason: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=reason, non_retryable=True)


@workflow.defn(name=LOAN_WORKFLOW)
class LoanProcess:
    def __init__(self) -> None:
        self._customer_acted = False

    @workflow.signal
    def offer_accepted(self) -> None:
        self._customer_acted = True

    @workflow.signal
    def cancelled(self) -> None:
        self._customer_acted = True

    async def _act(self, name: str, *args: Any) -> str:
        result: str = await workflow.execute_activity(
            name,
            args=[*args],
            start_to_close_timeout=FUNDING_TIMEOUT if name == "loans.fund" else ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=timedelta(hours=2),
            retry_policy=RETRY,
        )
        return result

    @workflow.run
    async def run(self, loan_id: str) -> str:
        try:
            current = await self._act("loans.decide", loan_id)
        except ActivityError:
            return await self._act("loans.cancel", loan_id, "DECISION_UNAVAILABLE")
        if current == "OFFERED":
            try:
                await workflow.wait_condition(lambda: self._customer_acted, timeout=OFFER_TTL)
            except TimeoutError:
                pass
            current = await self._act("loans.settle_offer", loan_id)
        if current == "APPROVED":
            current = await self._act("loans.begin_funding", loan_id)
        if current == "FUNDING":
            try:
                current = await self._act("loans.fund", loan_id)
            except ActivityError:
                current = await self._act("loans.cancel", loan_id, "FUNDING_FAILED")
        if current == "FUNDED":
            try:
                await self._act("loans.payout", loan_id)
            except ActivityError:
                # Payments never answered: the money stays in the wallet (funded
                # either way); the history says the payout was not made.
                await self._act("loans.payout_failed", loan_id, "PAYOUT_UNAVAILABLE")
        return current


@workflow.defn(name=ACCRUAL_WORKFLOW)
class LoansDailyAccrual:
    @workflow.run
    async def run(self) -> int:
        # patched: a run started by the previous code replays without this step.
        if workflow.patched("expire-offers"):
            await workflow.execute_activity(
                "loans.expire_offers",
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RETRY,
            )
        today: str = await workflow.execute_activity(
            "loans.today", start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
        )
        after = ""
        done = 0
        while done < MAX_ACCRUAL_LOANS_PER_RUN:
            page: dict[str, Any] = await workflow.execute_activity(
                "loans.accrue_page",
                args=[after, today],
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RETRY,
            )
            done += int(page["loans"])
            after = str(page["last"])
            if not after:
                break
        return done


class LoanActivities:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        risk: RiskGateway,
        ledger: Ledger,
        fees: FeePolicy | None = None,
        *,
        payout: Payout | None = None,
        cipher: FieldCipher | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._risk = risk
        self._ledger = ledger
        self._fees = fees or FeePolicy()
        self._payout = payout or NoPayout()
        self._cipher = cipher

    def activities(self) -> list[Any]:
        return [
            self.payout,
            self.payout_failed,
            self.decide,
            self.settle_offer,
            self.begin_funding,
            self.fund,
            self.cancel,
            self.today,
            self.accrue_page,
            self.expire_offers,
        ]

    async def _row(self, conn: Any, loan_id: str, *, lock: bool = True) -> store.LoanRow:
        row = await store.get_loan(conn, uuid.UUID(loan_id), for_update=lock)
        if row is None:
            # The creating transaction may not have committed yet: retried.
            raise ApplicationError("loan not visible yet", type="LOAN_NOT_VISIBLE")
        return row

    # -- decision

    @activity.defn(name="loans.decide")
    async def decide(self, loan_id: str) -> str:
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id, lock=False)
        if row.state != "APPLIED":
            return row.state
        try:
            band = await self._risk.score(
                row.user_id,
                row.requested_principal,
                int(row.terms["term_months"]),
                key=f"loans-decision-{row.id}",
                reference=f"loans/{row.id}",
            )
        except AppError as exc:
            if exc.code == grpc.StatusCode.UNAVAILABLE:
                raise ApplicationError(exc.message, type="RISK_UNAVAILABLE") from exc
            band = None
            reasons = [f"{exc.reason}: {exc.message}"]
        today = await self._clock.today()
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.state != "APPLIED":
                return row.state
            changes: dict[str, Any] = {}
            if band is None or band.declined or band.max_amount_minor < MIN_PRINCIPAL_MINOR:
                reasons = list(band.reasons) if band is not None else reasons
                if band is not None and not band.declined:
                    reasons = reasons or ["AMOUNT_LIMIT: the limit is below the smallest loan"]
                changes = {
                    "state": "DECLINED",
                    "decline_reasons": reasons or ["DECLINED: credit policy"],
                    "close_time": await self._clock.now(),
                }
            elif band.max_amount_minor >= row.requested_principal:
                changes = {"state": "APPROVED", "approved_principal": row.requested_principal}
            else:
                contract = terms.from_json(row.terms)
                try:
                    offer = counter_offer(contract, band.max_amount_minor, self._fees)
                except QuoteError:
                    offer = None
                if offer is None:
                    changes = {
                        "state": "DECLINED",
                        "decline_reasons": ["AMOUNT_LIMIT: no offer fits the terms"],
                        "close_time": await self._clock.now(),
                    }
                else:
                    changes = {
                        "state": "OFFERED",
                        "approved_principal": band.max_amount_minor,
                        "terms": terms.to_json(offer),
                        # By the loans clock (the test clock in tests); swept daily.
                        "offer_expire_time": await self._clock.now() + OFFER_TTL,
                    }
            if band is not None:
                changes["risk_decision"] = band.decision
            changes["state"] = state.transition(row.state, changes["state"])
            row = await store.update_loan(conn, row.id, **changes)
            await events.transition(
                conn,
                row,
                today,
                actor=SYSTEM,
                detail=f"risk band {band.band if band else '-'}: {row.state.lower()}",
                amount_minor=row.approved_principal or None,
            )
            return row.state

    @activity.defn(name="loans.settle_offer")
    async def settle_offer(self, loan_id: str) -> str:
        """After the wait: the customer's choice as stored, or the offer expires."""
        today = await self._clock.today()
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.state != "OFFERED":
                return row.state
            row = await store.update_loan(
                conn,
                row.id,
                state=state.transition(row.state, "CANCELLED"),
                close_time=await self._clock.now(),
            )
            await events.transition(conn, row, today, actor=SYSTEM, reason="OFFER_EXPIRED")
            return row.state

    @activity.defn(name="loans.expire_offers")
    async def expire_offers(self) -> int:
        """Counter-offers past their deadline by the loans clock → CANCELLED
        OFFER_EXPIRED, one loan per transaction (a retry finds only the rest)."""
        expired = 0
        for _ in range(MAX_OFFER_EXPIRY_PAGES):
            now = await self._clock.now()
            async with self._db.transaction() as conn:
                ids = await store.lapsed_offer_ids(conn, now, store.ACCRUAL_BATCH)
            for loan_id in ids:
                activity.heartbeat(str(loan_id))
                if await self._expire_offer(loan_id, now):
                    expired += 1
                    await self._wake(loan_id)
            if len(ids) < store.ACCRUAL_BATCH:
                break
        return expired

    async def _expire_offer(self, loan_id: uuid.UUID, now: datetime) -> bool:
        async with self._db.transaction() as conn:
            row = await store.get_loan(conn, loan_id, for_update=True)
            if row is None or row.state != "OFFERED" or row.offer_expire_time is None:
                return False  # accepted or cancelled meanwhile
            if row.offer_expire_time > now:
                return False
            row = await store.update_loan(
                conn, row.id, state=state.transition(row.state, "CANCELLED"), close_time=now
            )
            await events.transition(conn, row, local_day(now), actor=SYSTEM, reason="OFFER_EXPIRED")
            return True

    @staticmethod
    async def _wake(loan_id: uuid.UUID) -> None:
        """The loan's workflow is waiting for the customer: end its wait. The row
        holds the decision, so a lost signal only leaves it to its 7-day timer."""
        try:
            handle = activity.client().get_workflow_handle(workflow_id(loan_id))
            await handle.signal("cancelled")
        except Exception as exc:
            log.info("loan %s: expiry signal not delivered: %s", loan_id, type(exc).__name__)

    @activity.defn(name="loans.begin_funding")
    async def begin_funding(self, loan_id: str) -> str:
        today = await self._clock.today()
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.state != "APPROVED":
                return row.state
            # Funding posts exactly these terms, so they are dated by the day
            # the money moves: a quote made before midnight (it lives 30
            # minutes) may be approved after it, and its IOF days, first period
            # and CET would count from the day before. (AcceptLoanOffer does
            # the same for a counter-offer.)
            quoted = terms.from_json(row.terms)
            try:
                contract = redate(quoted, today, self._fees)
            except QuoteError:
                # Only for terms out of policy already, which a quote never is:
                # funding as quoted beats a loan stuck in APPROVED.
                log.error("loan %s: its quote cannot be re-dated; funded as quoted", row.id)
                contract = quoted
            row = await store.update_loan(
                conn, row.id, **funding_changes(row.state, quoted, contract)
            )
            await events.transition(
                conn,
                row,
                today,
                actor=SYSTEM,
                detail=f"funding started; terms dated {contract.disbursement_date}",
            )
            return row.state

    # -- funding

    @activity.defn(name="loans.fund")
    async def fund(self, loan_id: str) -> str:
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id, lock=False)
        if row.state != "FUNDING":
            return row.state
        contract = terms.from_json(row.terms)
        try:
            receivable = await self._ledger.open_receivable(row.id, row.user_id)
            wallet = await self._ledger.wallet_of(row.user_id)
            legs = [
                Leg(step_id(row.id, "funding/1"), receivable, FUNDING, contract.financed_amount,
                    "loan.funding", "financed amount"),
                Leg(step_id(row.id, "funding/2"), FUNDING, wallet, contract.disbursed_amount,
                    "loan.disbursement", "credit to the wallet"),
                Leg(step_id(row.id, "funding/3"), FUNDING, IOF_PAYABLE, contract.iof,
                    "loan.iof", "IOF withheld"),
                Leg(step_id(row.id, "funding/4"), FUNDING, FEE_REVENUE, contract.fees,
                    "loan.fee", "origination fee"),
            ]  # fmt: skip
            transfers = await self._ledger.post(legs, f"loans/{row.id}")
        except LedgerRejectedError as exc:
            raise _fatal("FUNDING_REFUSED", str(exc)) from exc
        except RemoteUnavailableError as exc:
            raise ApplicationError(str(exc), type="LEDGER_UNAVAILABLE") from exc
        except grpc.aio.AioRpcError as exc:
            # An answer, not an outage (e.g. the receivable refused): no retry helps.
            raise _fatal("FUNDING_REFUSED", f"{exc.code().name}: {exc.details()}") from exc
        today = await self._clock.today()
        now = await self._clock.now()
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.state != "FUNDING":
                return row.state
            await store.insert_installments(conn, installment_rows(row.id, contract))
            row = await store.update_loan(
                conn,
                row.id,
                state=state.transition(row.state, "FUNDED"),
                receivable_account=receivable,
                wallet_account=wallet,
                funded_on=today,
                accrued_through=today,
                fund_time=now,
            )
            await events.transition(
                conn,
                row,
                today,
                actor=SYSTEM,
                detail="funded",
                amount_minor=contract.disbursed_amount,
                transfers=transfers,
            )
            return row.state

    # -- payout

    @activity.defn(name="loans.payout")
    async def payout(self, loan_id: str) -> str:
        """PIX the disbursed amount out of the wallet when the customer asked.

        REQUESTING is committed before payments is asked, so payments' event
        about a payment not recorded here yet is retried by the payout consumer
        (payout_consumer.py) instead of dropped."""
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if (
                row.pix_key_ciphertext is None
                or row.state != "FUNDED"
                or row.payout_state not in (None, "REQUESTING")
            ):
                return "NO_PAYOUT"
            if row.payout_state is None:
                row = await store.update_loan(conn, row.id, payout_state="REQUESTING")
        key = self._pix_key(row)
        amount = int(row.terms["disbursed_amount"])
        try:
            payment = await self._payout.pay_out(row.id, row.user_id, key, amount)
        except PayoutRefusedError as exc:
            await self._record_payout_failed(loan_id, exc.reason)
            return "REFUSED"
        except RemoteUnavailableError as exc:
            raise ApplicationError(str(exc), type="PAYMENTS_UNAVAILABLE") from exc
        await self._record_payout_requested(loan_id, payment, amount)
        return payment

    def _pix_key(self, row: store.LoanRow) -> str:
        assert self._cipher is not None, "a stored PIX key needs the PII cipher"
        assert row.pix_key_ciphertext is not None
        return self._cipher.decrypt_text(bytes(row.pix_key_ciphertext), PIX_CONTEXT)

    @activity.defn(name="loans.payout_failed")
    async def payout_failed(self, loan_id: str, reason: str) -> str:
        """The workflow gave up on loans.payout (payments never answered in time).

        REQUESTING means the request may have reached payments all the same, so
        payments is asked once more (confirm_payout) before a failure is told:
        a payment it holds is recorded as requested, and the payout consumer
        follows its real outcome. Never raises for payments' silence: this is
        the workflow's last step about the payout."""
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id, lock=False)
        if row.payout_state != "REQUESTING" or row.pix_key_ciphertext is None:
            return await self._record_payout_failed(loan_id, reason)
        amount = int(row.terms["disbursed_amount"])
        check = await confirm_payout(
            self._payout, row.id, row.user_id, self._pix_key(row), amount, unanswered=reason
        )
        if check.payment:
            await self._record_payout_requested(loan_id, check.payment, amount)
            return check.payment
        return await self._record_payout_failed(loan_id, check.reason)

    async def _record_payout_requested(self, loan_id: str, payment: str, amount: int) -> None:
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.payout_state == "REQUESTING":
                row = await store.update_loan(
                    conn, row.id, payout_state="REQUESTED", payout_payment=payment
                )
                await events.history(
                    conn, row, "loan.payout_requested", actor=SYSTEM, detail=payment,
                    amount_minor=amount,
                )  # fmt: skip

    async def _record_payout_failed(self, loan_id: str, reason: str) -> str:
        """The payout was never made (refused, or payments never answered)."""
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.payout_state in (None, "REQUESTING"):
                row = await store.update_loan(conn, row.id, payout_state="FAILED")
                await events.history(
                    conn, row, "loan.payout_failed", actor=SYSTEM,
                    detail=f"{reason}: the money stays in the wallet",
                )  # fmt: skip
        return reason

    @activity.defn(name="loans.cancel")
    async def cancel(self, loan_id: str, reason: str) -> str:
        """Compensation: the loan ends CANCELLED; the funding chain moved nothing
        (linked: all or none), so there is nothing on the ledger to reverse."""
        today = await self._clock.today()
        async with self._db.transaction() as conn:
            row = await self._row(conn, loan_id)
            if row.state in state.CLOSED or not state.can_transition(row.state, "CANCELLED"):
                return row.state
            row = await store.update_loan(
                conn,
                row.id,
                state=state.transition(row.state, "CANCELLED"),
                close_time=await self._clock.now(),
            )
            await events.transition(conn, row, today, actor=SYSTEM, reason=reason)
            return row.state

    # -- daily accrual

    @activity.defn(name="loans.today")
    async def today(self) -> str:
        return (await self._clock.today()).isoformat()

    @activity.defn(name="loans.accrue_page")
    async def accrue_page(self, after: str, today: str) -> dict[str, Any]:
        async with self._db.transaction() as conn:
            ids = await store.repaying_loan_ids(
                conn, uuid.UUID(after) if after else None, store.ACCRUAL_BATCH
            )
        day = date.fromisoformat(today)
        for loan_id in ids:
            activity.heartbeat(str(loan_id))
            await self.accrue_loan(loan_id, day)
        last = str(ids[-1]) if len(ids) == store.ACCRUAL_BATCH else ""
        return {"loans": len(ids), "last": last}

    async def accrue_loan(self, loan_id: uuid.UUID, today: date) -> None:
        """Every day from the last accrued one to `today`, in one transaction."""
        async with self._db.transaction() as conn:
            row = await store.get_loan(conn, loan_id, for_update=True)
            if row is None or row.state not in state.REPAYING:
                return
            start = (row.accrued_through or row.funded_on or today) + timedelta(days=1)
            if start > today:
                return
            rows = await store.installments(conn, row.id, for_update=True)
            insts = [r.domain() for r in rows]
            totals = {r.number: [0, 0] for r in rows}
            day = start
            days = 0
            booked_days: list[tuple[date, int, int]] = []
            while day <= today and days < MAX_ACCRUAL_DAYS_PER_RUN:
                insts, booked = charges.accrue_day(insts, day)
                fine = sum(b.fine for b in booked)
                mora = sum(b.default_interest for b in booked)
                for b in booked:
                    totals[b.number][0] += b.fine
                    totals[b.number][1] += b.default_interest
                booked_days.append((day, fine, mora))
                day += timedelta(days=1)
                days += 1
            last_day = day - timedelta(days=1)
            target = DEFAULTED if row.state == "DEFAULTED" else row.receivable_account
            legs = [
                Leg(step_id(row.id, f"accrual/{d.isoformat()}"), target, PENALTY_INCOME, f + m,
                    "loan.charges", f"fine {f}, default interest {m} on {d.isoformat()}")
                for d, f, m in booked_days
                if f + m > 0
            ]  # fmt: skip
            transfers: dict[date, str] = {}
            if legs:
                names = await self._post_chunks(legs, f"loans/{row.id}")
                charged = [d for d, f, m in booked_days if f + m > 0]
                transfers = dict(zip(charged, names, strict=True))
            for d, f, m in booked_days:
                recorded = await store.claim_accrual(
                    conn, row.id, d, f, m, [transfers[d]] if d in transfers else []
                )
                assert recorded, "the loan row lock makes each day's accrual unique"
                if f + m > 0:
                    await events.charges_accrued(conn, row, d, f, m, [transfers[d]])
            by_number = {i.number: i for i in insts}
            # Judged for each day of the caught-up range, as daily runs would have.
            notices = charges.notices(
                insts,
                start,
                last_day,
                {r.number: charges.Bucket(r.overdue_bucket) for r in rows},
                {r.number for r in rows if r.due_soon_notified},
            )
            told_soon = {n.number for n in notices if not n.overdue}
            for r in rows:
                inst = by_number[r.number]
                bucket = charges.bucket_for(inst.days_past_due(last_day))
                notify_soon = r.number in told_soon
                fine_added, mora_added = totals[r.number]
                if (
                    inst != r.domain()
                    or bucket.value != r.overdue_bucket
                    or notify_soon
                    or fine_added
                    or mora_added
                ):  # only rows that changed: most installments of most loans did not
                    await store.save_installment(
                        conn,
                        row.id,
                        inst,
                        fine_added=fine_added,
                        default_interest_added=mora_added,
                        bucket=bucket.value,
                        due_soon_notified=True if notify_soon else None,
                    )
            if notices:
                fresh = {i.number: i for i in await store.installments(conn, row.id)}
                for n in notices:
                    await events.installment_notice(
                        conn, row, fresh[n.number], n.day, overdue=n.overdue,
                        bucket=BUCKET_TO_PROTO[n.bucket],
                    )  # fmt: skip
            row = await store.update_loan(conn, row.id, accrued_through=last_day)
            if row.state == "FUNDED" and charges.is_defaulted(
                charges.loan_days_past_due(insts, last_day)
            ):
                await self._default(conn, row, insts, last_day)

    async def _post_chunks(self, legs: list[Leg], reference: str) -> list[str]:
        names: list[str] = []
        for i in range(0, len(legs), 8):
            names.extend(await self._ledger.post(legs[i : i + 8], reference))
        return names

    async def _default(
        self, conn: Any, row: store.LoanRow, insts: list[charges.Installment], day: date
    ) -> None:
        """> 90 days past due: the receivable leaves the performing book."""
        owed = sum(i.principal_due + i.penalties_due for i in insts)
        transfers = []
        if owed > 0:
            transfers = await self._ledger.post(
                [
                    Leg(step_id(row.id, "default"), DEFAULTED, row.receivable_account, owed,
                        "loan.default", "moved to defaulted loans")
                ],
                f"loans/{row.id}",
            )  # fmt: skip
        row = await store.update_loan(
            conn, row.id, state=state.transition(row.state, "DEFAULTED"), defaulted_on=day
        )
        await events.transition(
            conn, row, day, actor=SYSTEM, detail="over 90 days past due", amount_minor=owed,
            transfers=transfers,
        )  # fmt: skip


async def ensure_accrual_schedule(client: Any) -> None:
    """Start the daily cron workflow once (its id is fixed; a second start is a no-op)."""
    try:
        await client.start_workflow(
            ACCRUAL_WORKFLOW,
            id=ACCRUAL_WORKFLOW_ID,
            task_queue="loans",
            cron_schedule=ACCRUAL_CRON,
        )
    except WorkflowAlreadyStartedError:
        pass
