"""The statement import as a Temporal workflow (task queue `risk`).

The workflow pages through the consent's accounts, then each account's
transactions, one activity per page: a bank error or rate limit retries
only that page (Temporal's retry policy, backoff up to a minute), and a
page stored by an attempt whose completion got lost is not counted twice
(`import_pages`). A consent that is revoked, expired or missing a
permission fails the import at once (non-retryable) with that reason.
Workflow id = `risk-statement-import-{import id}` (service.workflow_id).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.platform.db import Database
    from services.platform.http_client import ProviderError
    from services.risk import events, store
    from services.risk.open_finance import BankError, MalformedResponseError, OpenFinanceClient
    from services.risk.service import IMPORT_WORKFLOW, consent_block_reason, missing_permissions

log = logging.getLogger(__name__)

MAX_PAGES_PER_RESOURCE = 1000  # 1,000 pages of 1,000 lines: far beyond any 12-month statement
MAX_ACCOUNTS = 100
PAGE_TIMEOUT = timedelta(seconds=60)
IMPORT_DEADLINE = timedelta(hours=2)
# Errors that no retry can fix.
FATAL_ERRORS = [
    "CONSENT_REVOKED",
    "CONSENT_EXPIRED",
    "CONSENT_REJECTED",
    "CONSENT_NOT_AUTHORISED",
    "CONSENT_PERMISSION_MISSING",
    "BANK_REJECTED_REQUEST",
    "MALFORMED_RESPONSE",
    "TOO_MANY_PAGES",
    "IMPORT_NOT_FOUND",
]
PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=30,
    non_retryable_error_types=FATAL_ERRORS,
)
# The first activity may run before CreateStatementImport's transaction commits.
START_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
)
FINISH_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=50)


def _fatal(reason: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=reason, non_retryable=True)


@workflow.defn(name=IMPORT_WORKFLOW)
class StatementImportWorkflow:
    @workflow.run
    async def run(self, import_id: str) -> str:
        try:
            await workflow.execute_activity(
                "risk.import.check",
                import_id,
                start_to_close_timeout=PAGE_TIMEOUT,
                retry_policy=START_RETRY,
            )
        except ActivityError:
            # No row (the creating transaction rolled back): nothing to record.
            return "NOT_FOUND"
        try:
            accounts: list[str] = []
            page: int | None = 1
            while page is not None:
                result = await self._page(import_id, "", page)
                accounts.extend(result["account_ids"])
                page = result["next_page"]
                if len(accounts) > MAX_ACCOUNTS:
                    raise _fatal("TOO_MANY_PAGES", "more accounts than an import handles")
            for account_id in dict.fromkeys(accounts):
                page = 1
                while page is not None:
                    page = (await self._page(import_id, account_id, page))["next_page"]
        except ActivityError as err:
            cause = err.cause
            reason = cause.type if isinstance(cause, ApplicationError) and cause.type else ""
            await self._finish(import_id, "FAILED", reason or "PROVIDER_UNAVAILABLE")
            return "FAILED"
        except ApplicationError as err:
            await self._finish(import_id, "FAILED", err.type or "IMPORT_FAILED")
            return "FAILED"
        await self._finish(import_id, "SUCCEEDED", "")
        return "SUCCEEDED"

    async def _page(self, import_id: str, resource: str, page: int) -> dict[str, Any]:
        if page > MAX_PAGES_PER_RESOURCE:
            raise _fatal("TOO_MANY_PAGES", "the bank keeps sending pages")
        result: dict[str, Any] = await workflow.execute_activity(
            "risk.import.page",
            args=[import_id, resource, page],
            start_to_close_timeout=PAGE_TIMEOUT,
            schedule_to_close_timeout=IMPORT_DEADLINE,
            retry_policy=PAGE_RETRY,
        )
        return result

    async def _finish(self, import_id: str, state: str, reason: str) -> None:
        await workflow.execute_activity(
            "risk.import.finish",
            args=[import_id, state, reason],
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=FINISH_RETRY,
        )


class ImportActivities:
    """The import's side effects: bank reads and idempotent upserts."""

    def __init__(self, db: Database, bank: OpenFinanceClient) -> None:
        self._db = db
        self._bank = bank

    def activities(self) -> list[Any]:
        return [self.check, self.page, self.finish]

    async def _load(self, import_id: str) -> tuple[store.ImportRow, store.ConsentRow]:
        async with self._db.transaction() as conn:
            row = await store.get_import(conn, uuid.UUID(import_id))
            if row is None:
                raise ApplicationError("import not visible yet", type="IMPORT_NOT_FOUND")
            consent = await store.get_consent(conn, row.consent_id)
        assert consent is not None, "imports reference their consent"
        return row, consent

    @activity.defn(name="risk.import.check")
    async def check(self, import_id: str) -> None:
        await self._load(import_id)

    async def _consent_ended_at_bank(self, consent: store.ConsentRow) -> str:
        """After a 401/403: the bank's verdict, recorded locally; the reason to fail with."""
        try:
            bank = await self._bank.get_consent(consent.bank_consent_id)
        except (ProviderError, BankError, MalformedResponseError):
            return "CONSENT_NOT_AUTHORISED"
        state = bank.our_state
        if state != consent.state and state in events.ENDED_STATES:
            async with self._db.transaction() as conn:
                locked = await store.get_consent(conn, consent.id, for_update=True)
                if locked is not None and locked.state not in events.ENDED_STATES:
                    row = await store.set_consent_state(
                        conn,
                        consent.id,
                        state,
                        actor="customer" if state == "REVOKED" else "bank",
                        reason=bank.rejection_reason,
                        performed_by="service:risk",
                    )
                    history = await store.consent_history(conn, row.id)
                    await events.consent_changed(conn, row, history)
        return {"REVOKED": "CONSENT_REVOKED", "EXPIRED": "CONSENT_EXPIRED"}.get(
            state, "CONSENT_REJECTED" if state == "REJECTED" else "CONSENT_NOT_AUTHORISED"
        )

    @activity.defn(name="risk.import.page")
    async def page(self, import_id: str, resource: str, page: int) -> dict[str, Any]:
        """Fetch and store one page; `resource` "" = the accounts list, else an account id."""
        row, consent = await self._load(import_id)
        if row.state in ("SUCCEEDED", "FAILED"):
            raise _fatal("IMPORT_NOT_FOUND", "the import already finished")
        blocked = consent_block_reason(consent, datetime.now(UTC))
        if blocked is not None:
            raise _fatal(blocked, f"consent is {consent.state.lower()}")
        if missing_permissions(consent):
            raise _fatal("CONSENT_PERMISSION_MISSING", "consent lacks a needed permission")
        try:
            if resource:
                tx_page = await self._bank.transactions_page(
                    consent.bank_consent_id, resource, row.from_date, row.to_date, page
                )
            else:
                acc_page = await self._bank.accounts_page(consent.bank_consent_id, page)
        except ProviderError as exc:
            async with self._db.transaction() as conn:
                await store.set_import_state(conn, row.id, "WAITING_PROVIDER")
            raise ApplicationError(str(exc), type="PROVIDER_UNAVAILABLE") from exc
        except BankError as exc:
            if exc.status == 401:  # the bank no longer honours the consent
                raise _fatal(await self._consent_ended_at_bank(consent), str(exc)) from exc
            if exc.status == 403:
                raise _fatal("CONSENT_PERMISSION_MISSING", str(exc)) from exc
            raise _fatal("BANK_REJECTED_REQUEST", str(exc)) from exc
        except MalformedResponseError as exc:
            raise _fatal("MALFORMED_RESPONSE", str(exc)) from exc
        async with self._db.transaction() as conn:
            first_time = await store.claim_page(conn, row.id, resource or "accounts", page)
            if resource:
                new = await store.insert_transactions(
                    conn, row.user_id, consent.id, row.id, tx_page.items
                )
                if first_time:
                    await store.add_progress(
                        conn, row.id, imported=new, skipped=len(tx_page.items) - new, pages=1
                    )
                return {"account_ids": [], "next_page": tx_page.next_page}
            await store.upsert_accounts(conn, row.user_id, consent.id, acc_page.items)
            if first_time:
                await store.add_progress(conn, row.id, accounts=len(acc_page.items), pages=1)
            return {
                "account_ids": [a.account_id for a in acc_page.items],
                "next_page": acc_page.next_page,
            }

    @activity.defn(name="risk.import.finish")
    async def finish(self, import_id: str, state: str, reason: str) -> None:
        async with self._db.transaction() as conn:
            row = await store.set_import_state(conn, uuid.UUID(import_id), state, reason)
            if row is not None:  # None: already finished by an earlier attempt
                await events.import_completed(conn, row)
