"""Risk's use cases: Open Finance consents and imports, credit decisions.

Transactions: handlers run inside the idempotency interceptor's transaction
(`db.transaction()` joins it), so a consent's row, its history entry, its
audit row, its event and the stored response commit together. Bank calls
happen inside that transaction too: if the bank fails, nothing is stored and
the client's retry (same idempotency key) runs again.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client as TemporalClient
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from services.platform import audit, pagination
from services.platform.auth import Principal, require_owner
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
from services.risk import events, store
from services.risk.bureau import BureauClient, BureauError
from services.risk.domain.decision import Applicant, RiskDecision, decide
from services.risk.domain.features import Features, compute_features
from services.risk.domain.rules import Reason
from services.risk.domain.scorecard import ScorecardModel, UnknownModelVersion, load_model
from services.risk.domain.statements import first_day, window_months
from services.risk.open_finance import BankConsent, BankError, OpenFinanceClient

log = logging.getLogger(__name__)

TASK_QUEUE = "risk"
IMPORT_WORKFLOW = "StatementImport"
# Brazilian business day: a decision "today" is today in São Paulo.
LOCAL_ZONE = ZoneInfo("America/Sao_Paulo")
MAX_CONSENT_DAYS = 366  # the spec's 12 months, with the leap day
MAX_DATA_HOLDER_CHARS = 128
MAX_PERMISSIONS = 32
DEFAULT_IMPORT_DAYS = 365
MAX_IMPORT_DAYS = 366
# Loans may rely on a decision for 72 hours; after that the data is stale.
DECISION_VALID_SECONDS = 72 * 3600
MAX_REQUEST_MINOR = 100_000_000_00  # R$ 100 million: far beyond any consumer loan
MAX_TERM_MONTHS = 120
FEATURE_MONTHS = 12
FEATURE_CACHE_ENTRIES = 10_000  # ~1 KB each: ~10 MB at most
PERSON_CACHE_SECONDS = 30.0
PERSON_CACHE_ENTRIES = 10_000
IDENTITY_TIMEOUT_SECONDS = 2.0
SCORE_CURRENCY = "BRL"
# Permissions an import needs (accounts v2: list accounts, read transactions).
IMPORT_PERMISSIONS = ("ACCOUNTS_READ", "ACCOUNTS_TRANSACTIONS_READ")
KNOWN_PERMISSIONS = frozenset(
    {
        "ACCOUNTS_READ",
        "ACCOUNTS_BALANCES_READ",
        "ACCOUNTS_TRANSACTIONS_READ",
        "ACCOUNTS_OVERDRAFT_LIMITS_READ",
        "RESOURCES_READ",
        "CUSTOMERS_PERSONAL_IDENTIFICATIONS_READ",
        "CUSTOMERS_PERSONAL_ADITTIONALINFO_READ",
        "CREDIT_CARDS_ACCOUNTS_READ",
        "CREDIT_CARDS_ACCOUNTS_BILLS_READ",
        "CREDIT_CARDS_ACCOUNTS_BILLS_TRANSACTIONS_READ",
        "CREDIT_CARDS_ACCOUNTS_LIMITS_READ",
        "CREDIT_CARDS_ACCOUNTS_TRANSACTIONS_READ",
        "LOANS_READ",
        "LOANS_SCHEDULED_INSTALMENTS_READ",
        "LOANS_PAYMENTS_READ",
        "LOANS_WARRANTIES_READ",
        "FINANCINGS_READ",
        "UNARRANGED_ACCOUNTS_OVERDRAFT_READ",
    }
)
# Why an import cannot read under a consent in that state.
_CONSENT_BLOCK_REASON = {
    "AWAITING_AUTHORISATION": "CONSENT_NOT_AUTHORISED",
    "REJECTED": "CONSENT_REJECTED",
    "REVOKED": "CONSENT_REVOKED",
    "EXPIRED": "CONSENT_EXPIRED",
}
_IMPORT_NAMESPACE = uuid.UUID("0b5d6f0e-7f4e-4d0c-9f55-2f1c1a4d6e31")
_CPF_CONTEXT = b"risk.consents.cpf"


def local_today() -> date:
    return datetime.now(LOCAL_ZONE).date()


def parse_id(name: str, prefix: str, field: str) -> uuid.UUID:
    """`prefix{uuid}` → the uuid (INVALID_ARGUMENT otherwise)."""
    if name.startswith(prefix):
        try:
            return uuid.UUID(name[len(prefix) :])
        except ValueError:
            pass
    raise invalid_argument(
        "NAME_INVALID", f"{field} must be {prefix}{{id}}", [(field, f"must be {prefix}{{id}}")]
    )


def import_id_for(subject: str, idempotency_key: str) -> uuid.UUID:
    """The same request (caller + idempotency key) always names the same import,
    so a retry after a lost answer finds the workflow already started."""
    return uuid.uuid5(_IMPORT_NAMESPACE, f"{subject}\n{idempotency_key}")


def workflow_id(import_id: uuid.UUID) -> str:
    return f"risk-statement-import-{import_id}"


def consent_block_reason(row: store.ConsentRow, now: datetime) -> str | None:
    """None when reads are allowed under the consent, else the reason code."""
    if row.state == "AUTHORISED" and row.expire_at <= now:
        return "CONSENT_EXPIRED"
    return _CONSENT_BLOCK_REASON.get(row.state)


def missing_permissions(row: store.ConsentRow) -> list[str]:
    return [p for p in IMPORT_PERMISSIONS if p not in row.permissions]


# ---------------------------------------------------------------- decisions' inputs


def applicant_to_json(applicant: Applicant) -> dict[str, Any]:
    return {
        "birth_date": applicant.birth_date.isoformat(),
        "cpf_status": applicant.cpf_status,
        "kyc_status": applicant.kyc_status,
        "bureau_score": applicant.bureau_score,
        "bureau_negative_records": applicant.bureau_negative_records,
    }


def applicant_from_json(data: dict[str, Any]) -> Applicant:
    return Applicant(
        birth_date=date.fromisoformat(str(data["birth_date"])),
        cpf_status=str(data["cpf_status"]),
        kyc_status=str(data["kyc_status"]),
        bureau_score=None if data["bureau_score"] is None else int(data["bureau_score"]),
        bureau_negative_records=int(data["bureau_negative_records"]),
    )


def reasons_to_json(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    return [
        {
            "code": r.code,
            "description": r.description,
            "contribution": "" if r.contribution is None else str(r.contribution),
            "hard_rule": r.hard_rule,
        }
        for r in reasons
    ]


def outputs_of(decision: RiskDecision) -> dict[str, Any]:
    """The stored output columns of a decision (also what replay compares)."""
    return {
        "outcome": decision.outcome,
        "probability_of_default": str(decision.probability_of_default),
        "score": decision.score,
        "band": decision.band,
        "max_amount_minor": decision.max_amount_minor,
        "monthly_rate": str(decision.monthly_rate),
        "annual_rate": str(decision.annual_rate),
        "reasons": reasons_to_json(decision.reasons),
    }


def stored_outputs(row: store.DecisionRow) -> dict[str, Any]:
    return {
        "outcome": row.outcome,
        "probability_of_default": row.probability_of_default,
        "score": row.score,
        "band": row.band,
        "max_amount_minor": row.max_amount_minor,
        "monthly_rate": row.monthly_rate,
        "annual_rate": row.annual_rate,
        "reasons": list(row.reasons),
    }


def recompute(row: store.DecisionRow, model: ScorecardModel) -> RiskDecision:
    """The decision again from the stored inputs (pure: no clock, no I/O)."""
    return decide(
        applicant_from_json(row.applicant),
        Features.from_strings(row.features),
        model,
        row.requested_amount_minor,
        row.decided_on,
    )


def replayed_row(row: store.DecisionRow, model: ScorecardModel) -> store.DecisionRow:
    """The stored row with recomputed outputs (not stored; ids and times kept)."""
    return dataclasses.replace(
        row, model_version=model.version, **outputs_of(recompute(row, model))
    )


def model_or_error(version: str | None) -> ScorecardModel:
    try:
        return load_model(version or None)
    except UnknownModelVersion as exc:
        raise invalid_argument(
            "MODEL_VERSION_UNKNOWN",
            f"no scorecard version {version!r}",
            [("model_version", "unknown version")],
        ) from exc


# ---------------------------------------------------------------- identity


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What identity knows of a customer that never changes (KYC is not here:
    risk follows it from the kyc service's events, services/risk/kyc_projection.py)."""

    cpf: str
    birth_date: date


class IdentityDirectory(Protocol):
    async def person(self, user_id: str) -> PersonFacts: ...


class GrpcIdentityDirectory:
    """Identity's internal GetUserIdentity over gRPC with this service's token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)

    async def person(self, user_id: str) -> PersonFacts:
        try:
            ident: identity_pb2.UserIdentity = await self._stub.GetUserIdentity(
                identity_pb2.GetUserIdentityRequest(name=f"users/{user_id}"),
                timeout=IDENTITY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise not_found("USER_NOT_FOUND", "no such user") from exc
            raise unavailable("IDENTITY_UNAVAILABLE", "identity is not answering") from exc
        try:
            birth = date.fromisoformat(ident.birth_date)
        except ValueError as exc:
            raise unavailable("IDENTITY_UNAVAILABLE", "identity sent no birth date") from exc
        return PersonFacts(cpf=ident.cpf, birth_date=birth)


class CachedIdentityDirectory:
    """Identity facts kept for PERSON_CACHE_SECONDS per user (bounded, LRU).

    Score is on the loan path and the same customer is scored repeatedly
    within seconds; CPF and birth date do not change, so asking identity
    again would only add a cross-service call to every decision. The KYC
    status is not cached here: it comes from risk's own projection, updated
    by every kyc event.
    """

    def __init__(
        self,
        inner: IdentityDirectory,
        *,
        ttl_seconds: float = PERSON_CACHE_SECONDS,
        max_entries: int = PERSON_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert 0 < ttl_seconds <= 300 and 1 <= max_entries <= 1_000_000
        self._inner = inner
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, PersonFacts]] = OrderedDict()

    async def person(self, user_id: str) -> PersonFacts:
        now = self._clock()
        found = self._entries.get(user_id)
        if found is not None and found[0] > now:
            self._entries.move_to_end(user_id)
            return found[1]
        facts = await self._inner.person(user_id)
        self._entries[user_id] = (now + self._ttl, facts)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return facts


# ---------------------------------------------------------------- Open Finance


def page_size(requested: int) -> int:
    return pagination.page_size(
        requested, default=store.DEFAULT_PAGE_SIZE, maximum=store.MAX_PAGE_SIZE
    )


def _after(token: str, listing: str) -> store.Keyset | None:
    return pagination.decode_time_id(token, listing) if token else None


def _next_token(rows: Sequence[Any], limit: int, listing: str) -> str:
    """Rows were fetched with limit + 1: one more means another page, after row `limit`."""
    if len(rows) <= limit:
        return ""
    last = rows[limit - 1]
    return pagination.encode_time_id(listing, last.created_at, last.id)


def _bank_unavailable(exc: Exception) -> AppError:
    return unavailable("DATA_HOLDER_UNAVAILABLE", f"the bank is not answering ({exc})")


def _bank_refused(exc: BankError) -> AppError:
    return failed_precondition(
        "DATA_HOLDER_REJECTED", f"the bank refused: {exc.code or exc.status}"
    )


class OpenFinanceService:
    def __init__(
        self,
        db: Database,
        cipher: FieldCipher,
        bank: OpenFinanceClient,
        identity: IdentityDirectory,
        temporal: TemporalClient | None,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._bank = bank
        self._identity = identity
        self._temporal = temporal

    # -- consents

    async def create_consent(
        self,
        principal: Principal,
        *,
        data_holder: str,
        permissions: Sequence[str],
        expire_at: datetime | None,
        request_key: str,
    ) -> tuple[store.ConsentRow, list[store.HistoryRow]]:
        now = datetime.now(UTC)
        perms = list(dict.fromkeys(permissions))  # dedupe, keep order
        bad: list[tuple[str, str]] = []
        if not data_holder.strip() or len(data_holder) > MAX_DATA_HOLDER_CHARS:
            bad.append(("consent.data_holder", f"required, at most {MAX_DATA_HOLDER_CHARS} chars"))
        if not perms or len(perms) > MAX_PERMISSIONS:
            bad.append(("consent.permissions", f"1 to {MAX_PERMISSIONS} permission codes"))
        unknown = [p for p in perms if p not in KNOWN_PERMISSIONS]
        if unknown:
            bad.append(("consent.permissions", "unknown codes: " + ", ".join(unknown[:5])))
        if expire_at is None:
            bad.append(("consent.expire_time", "required"))
        elif not now < expire_at <= now + timedelta(days=MAX_CONSENT_DAYS):
            bad.append(("consent.expire_time", "must be in the future and at most 12 months ahead"))
        if bad:
            raise invalid_argument("CONSENT_INVALID", "the consent request is invalid", bad)
        assert expire_at is not None
        if principal.is_service:
            raise permission_denied("PERMISSION_DENIED", "a consent is given by the customer")
        person = await self._identity.person(principal.subject)
        try:
            bank = await self._bank.create_consent(
                cpf=person.cpf, permissions=perms, expire_at=expire_at, request_key=request_key
            )
        except ProviderError as exc:
            raise _bank_unavailable(exc) from exc
        except BankError as exc:
            raise _bank_refused(exc) from exc
        consent_id = uuid.uuid4()
        redirect_state = secrets.token_urlsafe(24)
        uri = self._authorisation_uri(bank, redirect_state)
        async with self._db.transaction() as conn:
            row = await store.insert_consent(
                conn,
                consent_id=consent_id,
                user_id=principal.subject,
                data_holder=data_holder.strip(),
                permissions=perms,
                expire_at=bank.expire_at or expire_at,
                state="AWAITING_AUTHORISATION",
                bank_consent_id=bank.consent_id,
                authorisation_uri=uri,
                redirect_state=redirect_state,
                cpf_ciphertext=self._cipher.encrypt(person.cpf, _CPF_CONTEXT),
                cpf_hash=self._cipher.lookup_hash(person.cpf),
                performed_by=principal.subject,
            )
            history = await store.consent_history(conn, row.id)
            await audit.record(
                conn,
                "consent",
                str(row.id),
                "created",
                {"permissions": perms, "expire_at": row.expire_at.isoformat()},
                principal.subject,
            )
            await events.consent_changed(conn, row, history)
        return row, history

    def _authorisation_uri(self, bank: BankConsent, redirect_state: str) -> str:
        """The bank's page where the customer authorises (with our CSRF state)."""
        base = bank.authorisation_uri or (
            f"{self._bank.base_url}/__sim/consents/{bank.consent_id}/authorise"
        )
        joiner = "&" if "?" in base else "?"
        return base + joiner + urlencode({"consent_id": bank.consent_id, "state": redirect_state})

    async def _owned(
        self, conn: AsyncConnection, consent_id: uuid.UUID, *, for_update: bool = False
    ) -> store.ConsentRow:
        row = await store.get_consent(conn, consent_id, for_update=for_update)
        if row is None:
            # Same answer as someone else's consent: ids cannot be probed.
            raise permission_denied("PERMISSION_DENIED", "not your consent")
        require_owner(row.user_id)
        return row

    async def _expire_if_due(
        self, conn: AsyncConnection, row: store.ConsentRow
    ) -> store.ConsentRow:
        if row.state == "AUTHORISED" and row.expire_at <= datetime.now(UTC):
            row = await store.set_consent_state(
                conn,
                row.id,
                "EXPIRED",
                actor="system",
                reason="CONSENT_MAX_DATE_REACHED",
                performed_by="service:risk",
            )
            await events.consent_changed(conn, row, await store.consent_history(conn, row.id))
        return row

    async def _sync_from_bank(
        self, conn: AsyncConnection, row: store.ConsentRow, bank: BankConsent, performed_by: str
    ) -> store.ConsentRow:
        """Record the bank's view when it moved (e.g. not authorised in 60 min → REJECTED)."""
        state = bank.our_state
        if state == row.state or state not in ("AUTHORISED", *events.ENDED_STATES):
            return row
        actor = "customer" if state in ("AUTHORISED", "REVOKED") else "bank"
        row = await store.set_consent_state(
            conn,
            row.id,
            state,
            actor=actor,
            reason=bank.rejection_reason,
            performed_by=performed_by,
            expire_at=bank.expire_at,
        )
        await audit.record(
            conn,
            "consent",
            str(row.id),
            state.lower(),
            {"reason": bank.rejection_reason},
            performed_by,
        )
        await events.consent_changed(conn, row, await store.consent_history(conn, row.id))
        return row

    async def get_consent(self, name: str) -> tuple[store.ConsentRow, list[store.HistoryRow]]:
        consent_id = parse_id(name, events.CONSENT_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await self._owned(conn, consent_id, for_update=True)
            row = await self._expire_if_due(conn, row)
            if row.state == "AWAITING_AUTHORISATION":
                try:
                    bank = await self._bank.get_consent(row.bank_consent_id)
                    # Only endings are taken from the bank here (e.g. not authorised
                    # within 60 min → REJECTED). AUTHORISED is recorded only by
                    # AuthoriseConsent, whose redirect `state` proves it is this
                    # customer's callback.
                    if bank.our_state in events.ENDED_STATES:
                        row = await self._sync_from_bank(conn, row, bank, "service:risk")
                except (ProviderError, BankError) as exc:
                    # A read still answers with what we know; the bank is asked again next time.
                    log.info("consent %s: bank status unavailable: %s", row.id, exc)
            return row, await store.consent_history(conn, row.id)

    async def list_consents(
        self, principal: Principal, state: str | None, size: int, token: str
    ) -> tuple[list[tuple[store.ConsentRow, list[store.HistoryRow]]], str]:
        limit = page_size(size)
        listing = f"consents:{principal.subject}:{state or ''}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            rows = await store.list_consents(conn, principal.subject, state, limit + 1, after)
            page = [(r, await store.consent_history(conn, r.id)) for r in rows[:limit]]
        return page, _next_token(rows, limit, listing)

    async def authorise_consent(
        self, principal: Principal, name: str, authorisation_code: str, redirect_state: str
    ) -> tuple[store.ConsentRow, list[store.HistoryRow]]:
        consent_id = parse_id(name, events.CONSENT_PREFIX, "name")
        # The code proves a redirect happened; it is not exchanged for a token
        # because the simulated bank's bearer token is the consent id itself
        # (docs/RISK.md). The `state` check below is what ties the callback to
        # this customer's consent.
        if not authorisation_code or len(authorisation_code) > 512:
            raise invalid_argument(
                "AUTHORISATION_CODE_INVALID",
                "authorisation_code is required",
                [("authorisation_code", "1-512 chars")],
            )
        async with self._db.transaction() as conn:
            row = await self._owned(conn, consent_id, for_update=True)
            if not secrets.compare_digest(redirect_state.encode(), row.redirect_state.encode()):
                raise invalid_argument(
                    "STATE_MISMATCH",
                    "the redirect's state does not match this consent",
                    [("state", "must echo the state of the authorisation link")],
                )
            row = await self._expire_if_due(conn, row)
            if row.state == "AUTHORISED":
                return row, await store.consent_history(conn, row.id)
            if row.state != "AWAITING_AUTHORISATION":
                raise failed_precondition(
                    _CONSENT_BLOCK_REASON[row.state], f"the consent is {row.state.lower()}"
                )
            try:
                try:
                    await self._bank.authorise(row.bank_consent_id, row.redirect_state)
                except BankError as exc:
                    # 422: the bank already moved it (authorised by an earlier
                    # attempt, or rejected); its GET below says which.
                    if exc.status != 422:
                        raise
                bank = await self._bank.get_consent(row.bank_consent_id)
            except ProviderError as exc:
                raise _bank_unavailable(exc) from exc
            except BankError as exc:
                raise _bank_refused(exc) from exc
            row = await self._sync_from_bank(conn, row, bank, principal.subject)
            if row.state != "AUTHORISED":
                raise failed_precondition(
                    _CONSENT_BLOCK_REASON.get(row.state, "CONSENT_NOT_AUTHORISED"),
                    f"the bank reports the consent as {bank.status}",
                )
            return row, await store.consent_history(conn, row.id)

    async def revoke_consent(
        self, principal: Principal, name: str
    ) -> tuple[store.ConsentRow, list[store.HistoryRow]]:
        consent_id = parse_id(name, events.CONSENT_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await self._owned(conn, consent_id, for_update=True)
            row = await self._expire_if_due(conn, row)
            if row.state in events.ENDED_STATES:
                return row, await store.consent_history(conn, row.id)  # already ended: no-op
            try:
                await self._bank.revoke_consent(row.bank_consent_id)
            except ProviderError as exc:
                raise _bank_unavailable(exc) from exc
            except BankError as exc:
                # 404/422: the bank already ended it; we still stop reading.
                log.info("consent %s: bank refused revocation: %s", row.id, exc)
            row = await store.set_consent_state(
                conn,
                row.id,
                "REVOKED",
                actor="customer",
                reason="CUSTOMER_MANUALLY_REVOKED",
                performed_by=principal.subject,
            )
            await audit.record(conn, "consent", str(row.id), "revoked", {}, principal.subject)
            history = await store.consent_history(conn, row.id)
            await events.consent_changed(conn, row, history)
            return row, history

    # -- imports

    async def create_import(
        self,
        principal: Principal,
        *,
        consent_name: str,
        from_booking_date: str,
        to_booking_date: str,
        idempotency_key: str,
    ) -> store.ImportRow:
        consent_id = parse_id(consent_name, events.CONSENT_PREFIX, "statement_import.consent")
        today = local_today()
        from_date, to_date = _import_range(from_booking_date, to_booking_date, today)
        if self._temporal is None:
            raise unavailable("WORKFLOWS_UNAVAILABLE", "imports need FINTECH_TEMPORAL_ADDRESS")
        import_id = import_id_for(principal.subject, idempotency_key)
        async with self._db.transaction() as conn:
            consent = await self._owned(conn, consent_id, for_update=True)
            consent = await self._expire_if_due(conn, consent)
            blocked = consent_block_reason(consent, datetime.now(UTC))
            if blocked is not None:
                raise failed_precondition(blocked, f"the consent is {consent.state.lower()}")
            missing = missing_permissions(consent)
            if missing:
                raise failed_precondition(
                    "CONSENT_PERMISSION_MISSING", "the consent lacks " + ", ".join(missing)
                )
            row, created = await store.insert_import(
                conn,
                import_id=import_id,
                consent_id=consent.id,
                user_id=consent.user_id,
                from_date=from_date,
                to_date=to_date,
            )
            if created:
                await events.import_started(conn, row)
                await audit.record(
                    conn,
                    "statement_import",
                    str(row.id),
                    "started",
                    {"consent": str(consent.id)},
                    principal.subject,
                )
            try:
                # Started before our commit: the first activity retries until the
                # row is visible (workflows.py). Same id ⇒ never a second run.
                await self._temporal.start_workflow(
                    IMPORT_WORKFLOW,
                    str(row.id),
                    id=workflow_id(row.id),
                    task_queue=TASK_QUEUE,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                pass
        return row

    async def get_import(self, name: str) -> store.ImportRow:
        import_id = parse_id(name, events.IMPORT_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_import(conn, import_id)
        if row is None:
            raise permission_denied("PERMISSION_DENIED", "not your import")
        require_owner(row.user_id)
        return row

    async def list_imports(
        self, principal: Principal, consent_name: str, size: int, token: str
    ) -> tuple[list[store.ImportRow], str]:
        consent_id = (
            parse_id(consent_name, events.CONSENT_PREFIX, "consent") if consent_name else None
        )
        limit = page_size(size)
        listing = f"imports:{principal.subject}:{consent_id or ''}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            rows = await store.list_imports(conn, principal.subject, consent_id, limit + 1, after)
        return rows[:limit], _next_token(rows, limit, listing)


def _import_range(from_text: str, to_text: str, today: date) -> tuple[date, date]:
    bad: list[tuple[str, str]] = []
    from_date = to_date = today
    try:
        to_date = date.fromisoformat(to_text) if to_text else today
    except ValueError:
        bad.append(("statement_import.to_booking_date", "must be YYYY-MM-DD"))
    try:
        from_date = (
            date.fromisoformat(from_text) if from_text else to_date - timedelta(DEFAULT_IMPORT_DAYS)
        )
    except ValueError:
        bad.append(("statement_import.from_booking_date", "must be YYYY-MM-DD"))
    if not bad:
        # The bank books in UTC and the customer lives in São Paulo: a day of slack.
        if to_date > today + timedelta(days=1):
            bad.append(("statement_import.to_booking_date", "cannot be in the future"))
        if from_date > to_date:
            bad.append(("statement_import.from_booking_date", "must not be after to_booking_date"))
        if (to_date - from_date).days > MAX_IMPORT_DAYS:
            bad.append(("statement_import.from_booking_date", "at most 12 months before the end"))
    if bad:
        raise invalid_argument("IMPORT_RANGE_INVALID", "the booking date range is invalid", bad)
    return from_date, to_date


# ---------------------------------------------------------------- Risk


class FeatureCache:
    """Features per (user, day, statements version), least recently used out first.

    Computing features reads ~3,000 statement lines and walks them in Python
    (milliseconds); the statements only change when an import stores pages,
    which changes the version, so a hit is exactly what a recomputation gives.
    """

    def __init__(self, max_entries: int = FEATURE_CACHE_ENTRIES) -> None:
        assert 1 <= max_entries <= 1_000_000
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, date, object], Features] = OrderedDict()

    def get(self, key: tuple[str, date, object]) -> Features | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[str, date, object], features: Features) -> None:
        self._entries[key] = features
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class RiskService:
    def __init__(
        self,
        db: Database,
        identity: IdentityDirectory,
        bureau: BureauClient,
        cache: FeatureCache | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._bureau = bureau
        self._cache = cache or FeatureCache()

    async def local_inputs(self, user_id: str, today: date) -> tuple[Features, str]:
        """Features from the imported statements and the KYC status, one round trip."""
        window = window_months(today, FEATURE_MONTHS)
        since = datetime.combine(first_day(window[0]), datetime.min.time(), LOCAL_ZONE)
        until = datetime.combine(today, datetime.min.time(), LOCAL_ZONE) + timedelta(days=1)
        async with self._db.transaction() as conn:
            version, kyc_status = await store.scoring_state(conn, user_id)
            key = (user_id, today, version)
            cached = self._cache.get(key)
            if cached is not None:
                return cached, kyc_status
            transactions = await store.user_transactions(conn, user_id, since, until)
        features = compute_features(transactions, today, FEATURE_MONTHS)
        self._cache.put(key, features)
        return features, kyc_status

    async def score(
        self,
        *,
        user_name: str,
        amount_minor: int,
        currency: str,
        term_months: int,
        reference: str,
    ) -> store.DecisionRow:
        bad: list[tuple[str, str]] = []
        user_id = ""
        try:
            user_id = str(parse_id(user_name, events.USER_PREFIX, "user"))
        except AppError:
            bad.append(("user", "must be users/{id}"))
        if currency != SCORE_CURRENCY:
            bad.append(("requested_amount.currency_code", "must be BRL"))
        if not 0 < amount_minor <= MAX_REQUEST_MINOR:
            bad.append(("requested_amount.minor_units", "must be positive and at most R$ 100M"))
        if not 1 <= term_months <= MAX_TERM_MONTHS:
            bad.append(("term_months", f"1 to {MAX_TERM_MONTHS}"))
        if len(reference) > 200:
            bad.append(("reference", "at most 200 chars"))
        if bad:
            raise invalid_argument("SCORE_REQUEST_INVALID", "the score request is invalid", bad)
        today = local_today()
        person = await self._identity.person(user_id)
        try:
            report = await self._bureau.fetch(person.cpf)
        except BureauError as exc:
            # Deciding without the bureau would approve people with debts in arrears.
            raise unavailable("BUREAU_UNAVAILABLE", "the credit bureau is not answering") from exc
        features, kyc_status = await self.local_inputs(user_id, today)
        applicant = Applicant(
            birth_date=person.birth_date,
            cpf_status=report.cpf_status,
            kyc_status=kyc_status,
            bureau_score=report.score,
            bureau_negative_records=report.negative_records,
        )
        model = load_model(None)
        decision = decide(applicant, features, model, amount_minor, today)
        async with self._db.transaction() as conn:
            row = await store.insert_decision(
                conn,
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "reference": reference,
                    "requested_amount_minor": amount_minor,
                    "currency": currency,
                    "term_months": term_months,
                    "decided_on": today,
                    "model_version": model.version,
                    "applicant": applicant_to_json(applicant),
                    "features": features.as_strings(),
                    "valid_seconds": DECISION_VALID_SECONDS,
                    **outputs_of(decision),
                },
            )
            # No audit row: the decision is itself an immutable record of every
            # input and output (plus its event), and Score is on the loan path.
            await events.decision_made(conn, row)
        return row

    async def get_decision(self, name: str) -> store.DecisionRow:
        decision_id = parse_id(name, events.DECISION_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_decision(conn, decision_id)
        if row is None:
            raise not_found("DECISION_NOT_FOUND", "no such decision")
        return row

    async def list_decisions(
        self, user_name: str, size: int, token: str
    ) -> tuple[list[store.DecisionRow], str]:
        user_id = str(parse_id(user_name, events.USER_PREFIX, "user")) if user_name else None
        limit = page_size(size)
        listing = f"decisions:{user_id or ''}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            rows = await store.list_decisions(conn, user_id, limit + 1, after)
        return rows[:limit], _next_token(rows, limit, listing)

    async def replay(
        self, name: str, model_version: str
    ) -> tuple[store.DecisionRow, store.DecisionRow, bool]:
        row = await self.get_decision(name)
        model = model_or_error(model_version or row.model_version)
        again = replayed_row(row, model)
        return row, again, stored_outputs(row) == stored_outputs(again)
