"""The KYC process as a Temporal workflow (task queue `kyc`, one per submission).

Steps: CPF situation (Receita) → document check (gov docs, OAuth2), bureau and
sanctions/PEP screening (at once, once the CPF passed) → decision. Each check
is one activity (`kyc.check`) that asks its provider, applies the pure rule
(services.kyc.domain.rules) and stores the verdict; a check already stored is
not asked again (a retry after a lost completion or a killed worker costs no
provider call).

Each check first runs as a local activity (one attempt, no round trip through
the Temporal server: the happy path writes a handful of history events in
all). When that attempt fails (provider down) the activity has already marked
the check and the submission WAITING_PROVIDER, and the workflow schedules the
same check as a regular activity with PROVIDER_RETRY: Temporal keeps retrying
it (backoff up to 10 s, for up to a week, durable across worker restarts)
while the breaker protects the provider, and the first attempt that gets
through puts the submission back to PENDING and the process goes on.
Workflow id = `kyc-{user id}-{submission id}` (service.workflow_id).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.kyc import events, store
    from services.kyc.domain import rules
    from services.kyc.domain.screening import screen
    from services.kyc.lists import ScreeningLists
    from services.kyc.providers import (
        BureauClient,
        GovDocsClient,
        ProviderDown,
        ProviderRejected,
        ReceitaClient,
    )
    from services.kyc.service import (
        IDENTITY_DOCS,
        WORKFLOW,
        IdentityDirectory,
        KycService,
        Person,
        check_json,
    )
    from services.platform.db import Database
    from services.platform.errors import AppError
    from services.platform.temporal import local_then_durable

log = logging.getLogger(__name__)

# Beyond the provider client's own bound (2 attempts x 5 s + backoff + bulkhead wait):
# an attempt lost with a killed worker is retried after this long.
CHECK_TIMEOUT = timedelta(seconds=20)
# A provider outage may last; the process waits for it, within reason.
PROCESS_DEADLINE = timedelta(days=7)
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # unlimited within PROCESS_DEADLINE
    non_retryable_error_types=["SUBMISSION_NOT_FOUND"],
)
# The first activity may run before CreateSubmission's transaction commits.
START_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
)
FINISH_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=50)
MAX_STORED_HITS = 10


# Not sandboxed: the body only sequences activities (no clock, randomness or
# I/O), and the sandbox re-imports modules for every run, which under 50
# concurrent starts costs more CPU than the whole process on two cores.
@workflow.defn(name=WORKFLOW, sandboxed=False)
class KycWorkflow:
    @workflow.run
    async def run(self, submission_id: str) -> str:
        # Local activities run in this worker without a round trip through the
        # Temporal server per step (its persistence is where 50 concurrent
        # submissions queued up: ~14 history writes each with plain activities).
        try:
            await workflow.execute_local_activity(
                "kyc.start",
                submission_id,
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=START_RETRY,
            )
        except (ActivityError, ApplicationError):
            # (A failed local activity surfaces as its ApplicationError in this SDK.)
            return "NOT_FOUND"  # the creating transaction rolled back
        # The CPF situation is the gate (rules.stops_early: a failed CPF means
        # no other provider is asked); the checks after it do not depend on
        # each other's answers, so they run at once: the same decision, one
        # provider round trip instead of three.
        first = await self._check(submission_id, rules.CPF_SITUATION)
        if first != rules.FAILED:
            await asyncio.gather(*(self._check(submission_id, c) for c in rules.CHECK_ORDER[1:]))
        outcome: str = await workflow.execute_local_activity(
            "kyc.decide",
            submission_id,
            start_to_close_timeout=CHECK_TIMEOUT,
            retry_policy=FINISH_RETRY,
        )
        return outcome

    async def _check(self, submission_id: str, check: str) -> str:
        """Fast path: one local attempt (the HTTP client already retried inside
        it). Slow path, when that fails (provider or identity down): a regular
        activity with PROVIDER_RETRY, durable in the workflow's history, that
        waits out the outage. The check's stored result makes a repeat cost no
        provider call."""
        result: str = await local_then_durable(
            "kyc.check",
            submission_id,
            check,
            start_to_close=CHECK_TIMEOUT,
            retry=PROVIDER_RETRY,
            deadline=PROCESS_DEADLINE,
        )
        return result


class KycActivities:
    def __init__(
        self,
        db: Database,
        service: KycService,
        identity: IdentityDirectory,
        receita: ReceitaClient,
        govdocs: GovDocsClient,
        bureau: BureauClient,
        lists: ScreeningLists,
    ) -> None:
        self._db = db
        self._service = service
        self._identity = identity
        self._receita = receita
        self._govdocs = govdocs
        self._bureau = bureau
        self._lists = lists

    def activities(self) -> list[Any]:
        return [self.start, self.check, self.decide]

    async def _submission(self, submission_id: str) -> store.SubmissionRow:
        async with self._db.transaction() as conn:
            sub = await store.get_submission(conn, uuid.UUID(submission_id))
        if sub is None:
            raise ApplicationError("submission not visible yet", type="SUBMISSION_NOT_FOUND")
        return sub

    @activity.defn(name="kyc.start")
    async def start(self, submission_id: str) -> None:
        await self._submission(submission_id)

    @activity.defn(name="kyc.check")
    async def check(self, submission_id: str, check: str) -> str:
        assert check in rules.CHECK_ORDER, check
        async with self._db.transaction() as conn:
            sub = await store.get_submission(conn, uuid.UUID(submission_id))
            if sub is None:
                raise ApplicationError("no such submission", type="SUBMISSION_NOT_FOUND")
            stored = {c.check_type: c for c in await store.checks_of(conn, sub.id)}
        done = stored.get(check)
        if done is not None and done.completed_at is not None:
            return done.state  # already answered: never ask the provider twice
        try:
            person = await self._identity.person(sub.user_id)
        except AppError as exc:
            raise ApplicationError(str(exc), type=exc.reason) from exc
        try:
            verdict, evidence, from_cache = await self._run(sub, check, person)
        except ProviderDown as exc:
            await self._waiting(sub.id, check)
            raise ApplicationError(str(exc), type="PROVIDER_UNAVAILABLE") from exc
        except ProviderRejected as exc:
            # An answer no retry can change: a human looks at it.
            log.warning("kyc %s: %s answer unusable: %s", check, exc.provider, exc)
            verdict = rules.Verdict(rules.NEEDS_REVIEW, "PROVIDER_ANSWER_UNUSABLE")
            evidence, from_cache = {"provider": exc.provider}, False
        async with self._db.transaction() as conn:
            locked = await store.get_submission(conn, sub.id, for_update=True)
            assert locked is not None
            await store.upsert_check(
                conn,
                sub.id,
                check,
                verdict.state,
                reason=verdict.reason,
                from_cache=from_cache,
                evidence=evidence,
                complete=True,
            )
            if locked.state == "WAITING_PROVIDER":
                now = await store.checks_of(conn, sub.id)
                # Back to PENDING once no check waits for a provider any more.
                if not any(c.state == "WAITING_PROVIDER" for c in now):
                    back = await store.set_submission_state(conn, sub.id, "PENDING")
                    pending = [c.check_type for c in now if c.completed_at is None]
                    await events.status_changed(conn, back, pending)
        return verdict.state

    async def _waiting(self, sub_id: uuid.UUID, check: str) -> None:
        async with self._db.transaction() as conn:
            locked = await store.get_submission(conn, sub_id, for_update=True)
            assert locked is not None
            await store.upsert_check(conn, sub_id, check, "WAITING_PROVIDER")
            if locked.state == "PENDING":
                waiting = await store.set_submission_state(conn, sub_id, "WAITING_PROVIDER")
                await events.status_changed(conn, waiting, [check])

    async def _run(
        self, sub: store.SubmissionRow, check: str, person: Person
    ) -> tuple[rules.Verdict, dict[str, Any], bool]:
        if check == rules.CPF_SITUATION:
            answer = await self._receita.cpf(person.cpf)
            verdict = rules.cpf_verdict(answer, person.birth_date)
            return verdict, {"found": answer.found, "situation": answer.situation}, False
        if check == rules.DOCUMENT:
            async with self._db.transaction() as conn:
                docs = await store.documents_by_ids(conn, sub.document_ids)
            doc = next(d for d in docs if d.doc_type in IDENTITY_DOCS)
            doc_answer = await self._govdocs.validate(
                person.cpf,
                person.full_name,
                person.birth_date,
                doc.doc_type,
                self._service.decrypt_number(doc),
                request_key=f"{sub.id}:{doc.id}",
            )
            return (
                rules.document_verdict(doc_answer),
                {
                    "document": str(doc.id),
                    "name_similarity": round(doc_answer.name_similarity, 4),
                    "birth_date_match": doc_answer.birth_date_match,
                    "number_match": doc_answer.number_match,
                },
                False,
            )
        if check == rules.BUREAU:
            result = await self._bureau.report(person.cpf)
            return (
                rules.bureau_verdict(result.answer),
                {
                    "score": result.answer.score,
                    "negative_records": result.answer.negative_records,
                },
                result.from_cache,
            )
        hits = screen(person.full_name, person.birth_date, self._lists.index)
        matches = [rules.ScreeningMatch(h.list_name, h.score, h.dob_match) for h in hits]
        return (
            rules.screening_verdict(matches),
            {
                "lists_version": self._lists.version,
                "hits": [
                    {
                        "list": h.list_name,
                        "entry_id": h.entry_id,
                        "matched_name": h.matched_name,
                        "score": f"{h.score:.4f}",
                        "dob_match": h.dob_match,
                    }
                    for h in hits[:MAX_STORED_HITS]
                ],
            },
            False,
        )

    @activity.defn(name="kyc.decide")
    async def decide(self, submission_id: str) -> str:
        sub_id = uuid.UUID(submission_id)
        async with self._db.transaction() as conn:
            sub = await store.get_submission(conn, sub_id, for_update=True)
            assert sub is not None
            if sub.state not in ("PENDING", "WAITING_PROVIDER"):
                return sub.state  # decided by an earlier attempt
            checks = await store.checks_of(conn, sub_id)
            verdicts = [
                (c, rules.Verdict(row.state, row.reason))
                for c in rules.CHECK_ORDER
                for row in checks
                if row.check_type == c and row.completed_at is not None
            ]
            decision = rules.decide(verdicts)
            # Checks never run (the process stopped early) are left PENDING.
            done = await store.set_submission_state(
                conn,
                sub_id,
                decision.outcome,
                decline_reasons=decision.reasons if decision.outcome == rules.DECLINED else (),
                complete=decision.outcome != rules.IN_REVIEW,
            )
            await store.upsert_result(
                conn,
                sub_id,
                sub.user_id,
                decision.outcome,
                decision.reasons,
                "service:kyc",
                [check_json(c) for c in checks],
            )
            if decision.outcome == rules.APPROVED:
                await events.approved(conn, done)
            elif decision.outcome == rules.DECLINED:
                await events.declined(conn, done, decision.reasons)
            else:
                screening = next((c for c in checks if c.check_type == rules.SCREENING), None)
                hits = list(screening.evidence.get("hits", [])) if screening else []
                review = await store.insert_review(
                    conn, uuid.uuid4(), sub_id, sub.user_id, decision.reasons, hits
                )
                await events.review_required(conn, done, review)
            return decision.outcome
