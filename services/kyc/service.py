"""KYC's use cases: documents, submissions, status, screening, human review.

Transactions: mutating handlers run inside the idempotency interceptor's
transaction (`db.transaction()` joins it), so a submission's row, its event,
its workflow start and the stored response commit together; an upload's row
and its response too (the object is written to S3 first, so a row never points
at a missing object; an object whose row did not commit is an orphan that
holds only ciphertext).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol, TypeVar

import grpc
from temporalio.client import Client as TemporalClient
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from fintech.kyc.v1 import kyc_pb2
from services.kyc import events, store
from services.kyc.domain.files import FileRejected, sniff
from services.kyc.domain.rules import CHECK_ORDER
from services.kyc.domain.screening import DEFAULT_THRESHOLD, Hit, screen
from services.kyc.lists import ScreeningLists
from services.kyc.objectstore import ObjectStore
from services.platform import audit, pagination
from services.platform.auth import Principal
from services.platform.crypto import FieldCipher
from services.platform.db import Database
from services.platform.errors import (
    failed_precondition,
    invalid_argument,
    not_found,
    permission_denied,
    unavailable,
)

log = logging.getLogger(__name__)

P = TypeVar("P", store.DocumentRow, store.SubmissionRow, store.ReviewRow)

TASK_QUEUE = "kyc"
WORKFLOW = "KycProcess"
BACKOFFICE = "backoffice"
SERVICE = "service"
MAX_SUBMISSION_DOCUMENTS = 10
MAX_REASON_CHARS = 500
MIN_REASON_CHARS = 3
VIEW_URL_SECONDS = 300  # a reviewer's document link lives five minutes
IDENTITY_TIMEOUT_SECONDS = 2.0
PERSON_CACHE_SECONDS = 30.0
PERSON_CACHE_ENTRIES = 10_000
IDENTITY_DOCS = frozenset({"CNH", "RG"})
_DOC_TYPES = {"CNH", "RG", "PROOF_OF_ADDRESS"}
_RG = re.compile(r"^[0-9A-Z]{4,14}$")
_SUBMISSION_NS = uuid.UUID("6f1c2a8e-3b47-4e0a-9a61-0c5d7e2b9f13")
_NUMBER_CONTEXT = b"kyc.documents.number"


def content_context(object_key: str) -> bytes:
    """AAD of a stored document: the ciphertext only opens under its own key."""
    return b"kyc.documents.content:" + object_key.encode()


def parse_id(name: str, prefix: str, field: str) -> uuid.UUID:
    if name.startswith(prefix):
        try:
            return uuid.UUID(name[len(prefix) :])
        except ValueError:
            pass
    raise invalid_argument(
        "NAME_INVALID", f"{field} must be {prefix}{{id}}", [(field, f"must be {prefix}{{id}}")]
    )


def workflow_id(user_id: uuid.UUID, sub_id: uuid.UUID) -> str:
    return f"kyc-{user_id}-{sub_id}"


def submission_id_for(subject: str, idempotency_key: str) -> uuid.UUID:
    """Same caller + idempotency key → same submission (and workflow) id."""
    return uuid.uuid5(_SUBMISSION_NS, f"{subject}\n{idempotency_key}")


def normalise_number(doc_type: str, number: str) -> str:
    """CNH: 11 digits; RG: 4..14 letters/digits (punctuation dropped)."""
    cleaned = re.sub(r"[\s.\-/]", "", number).upper()
    if doc_type == "CNH" and not (len(cleaned) == 11 and cleaned.isdigit()):
        raise invalid_argument(
            "DOCUMENT_NUMBER_INVALID",
            "a CNH number has 11 digits",
            [("document.document_number", "a CNH number has 11 digits")],
        )
    if doc_type == "RG" and not _RG.match(cleaned):
        raise invalid_argument(
            "DOCUMENT_NUMBER_INVALID",
            "an RG number has 4 to 14 letters or digits",
            [("document.document_number", "4 to 14 letters or digits")],
        )
    return cleaned


def _user_id(principal: Principal) -> uuid.UUID:
    try:
        return uuid.UUID(principal.subject)
    except ValueError as exc:
        raise permission_denied("PERMISSION_DENIED", "only a customer has KYC documents") from exc


def _is_staff(principal: Principal) -> bool:
    return bool(principal.roles & {BACKOFFICE, SERVICE})


# ---------------------------------------------------------------- identity


@dataclass(frozen=True, slots=True)
class Person:
    cpf: str
    full_name: str
    birth_date: date


class IdentityDirectory(Protocol):
    async def person(self, user_id: uuid.UUID) -> Person: ...


class GrpcIdentityDirectory:
    """GetUserIdentity (internal) with this service's token; a short in-memory
    cache so one submission's four checks ask identity once. PII stays in memory."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self._cache: OrderedDict[uuid.UUID, tuple[float, Person]] = OrderedDict()

    async def person(self, user_id: uuid.UUID) -> Person:
        now = time.monotonic()
        found = self._cache.get(user_id)
        if found is not None and found[0] > now:
            return found[1]
        try:
            reply: identity_pb2.UserIdentity = await self._stub.GetUserIdentity(
                identity_pb2.GetUserIdentityRequest(name=events.user_name(user_id)),
                timeout=IDENTITY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found("USER_NOT_FOUND", "no such user") from exc
            raise unavailable("IDENTITY_UNAVAILABLE", "identity is not answering") from exc
        try:
            person = Person(reply.cpf, reply.full_name, date.fromisoformat(reply.birth_date))
        except ValueError as exc:
            raise unavailable("IDENTITY_UNAVAILABLE", "identity sent no birth date") from exc
        self._cache[user_id] = (now + PERSON_CACHE_SECONDS, person)
        while len(self._cache) > PERSON_CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return person


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class StatusView:
    user_id: uuid.UUID
    state: str
    missing_documents: tuple[str, ...]
    pending_checks: tuple[str, ...]
    submission: store.SubmissionRow | None
    update_time: datetime | None


class KycService:
    def __init__(
        self,
        db: Database,
        cipher: FieldCipher,
        objects: ObjectStore,
        temporal: TemporalClient,
        lists: ScreeningLists,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._objects = objects
        self._temporal = temporal
        self._lists = lists

    # ------------------------------------------------------------ documents

    async def upload_document(
        self, principal: Principal, doc_type: str, document_number: str, content: bytes
    ) -> store.DocumentRow:
        user_id = _user_id(principal)
        if doc_type not in _DOC_TYPES:
            raise invalid_argument(
                "DOCUMENT_TYPE_REQUIRED",
                "document.type must be CNH, RG or PROOF_OF_ADDRESS",
                [("document.type", "must be CNH, RG or PROOF_OF_ADDRESS")],
            )
        number: str | None = None
        if doc_type in IDENTITY_DOCS:
            if not document_number.strip():
                raise invalid_argument(
                    "DOCUMENT_NUMBER_REQUIRED",
                    "a CNH or RG needs its document_number",
                    [("document.document_number", "required for CNH and RG")],
                )
            number = normalise_number(doc_type, document_number)
        elif document_number:
            raise invalid_argument(
                "DOCUMENT_NUMBER_UNEXPECTED",
                "a proof of address has no document number",
                [("document.document_number", "only for CNH and RG")],
            )
        try:
            sniffed = sniff(content)
        except FileRejected as exc:
            raise invalid_argument(exc.reason, str(exc), [("content", str(exc))]) from exc
        digest = hashlib.sha256(content).hexdigest()
        async with self._db.transaction() as conn:
            await store.lock_user(conn, user_id, "documents")
            existing = await store.document_by_sha(conn, user_id, digest)
            if existing is not None:
                return existing  # the same bytes again: the same document
            doc_id = uuid.uuid4()
            object_key = f"documents/{uuid.uuid4().hex}"
            sealed = await asyncio.to_thread(
                self._cipher.encrypt, content, content_context(object_key)
            )
            await self._objects.put(object_key, sealed)
            return await store.insert_document(
                conn,
                doc_id=doc_id,
                user_id=user_id,
                doc_type=doc_type,
                content_type=sniffed.content_type,
                size_bytes=sniffed.size_bytes,
                sha256=digest,
                object_key=object_key,
                number_ciphertext=(
                    None if number is None else self._cipher.encrypt(number, _NUMBER_CONTEXT)
                ),
            )

    async def _own_document(self, principal: Principal, name: str, field: str) -> store.DocumentRow:
        doc_id = parse_id(name, events.DOCUMENT_PREFIX, field)
        async with self._db.transaction() as conn:
            row = await store.get_document(conn, doc_id)
        # Another user's document is indistinguishable from a missing one.
        if row is None or (str(row.user_id) != principal.subject and not _is_staff(principal)):
            raise not_found("DOCUMENT_NOT_FOUND", f"{name} not found")
        return row

    async def get_document(self, principal: Principal, name: str) -> store.DocumentRow:
        return await self._own_document(principal, name, "name")

    async def list_documents(
        self, principal: Principal, size: int, token: str
    ) -> tuple[list[store.DocumentRow], str]:
        user_id = _user_id(principal)
        limit = store.page_size(size)
        listing = f"documents:{user_id}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            rows = await store.list_documents(conn, user_id, limit + 1, after)
        return _page(rows, limit, listing)

    def decrypt_number(self, row: store.DocumentRow) -> str:
        assert row.number_ciphertext is not None
        return self._cipher.decrypt_text(row.number_ciphertext, _NUMBER_CONTEXT)

    # ------------------------------------------------------------ submissions

    async def create_submission(
        self, principal: Principal, document_names: Sequence[str], idempotency_key: str
    ) -> tuple[store.SubmissionRow, list[store.CheckRow]]:
        user_id = _user_id(principal)
        if not document_names:
            raise invalid_argument(
                "DOCUMENTS_REQUIRED",
                "a submission needs at least one identity document",
                [("submission.documents", "at least one document")],
            )
        if len(document_names) > MAX_SUBMISSION_DOCUMENTS:
            raise invalid_argument(
                "TOO_MANY_DOCUMENTS",
                f"at most {MAX_SUBMISSION_DOCUMENTS} documents",
                [("submission.documents", f"at most {MAX_SUBMISSION_DOCUMENTS}")],
            )
        ids = list(
            dict.fromkeys(
                parse_id(n, events.DOCUMENT_PREFIX, "submission.documents") for n in document_names
            )
        )
        sub_id = submission_id_for(principal.subject, idempotency_key)
        async with self._db.transaction() as conn:
            docs = await store.documents_by_ids(conn, ids)
            owned = {d.id for d in docs if d.user_id == user_id}
            missing = [i for i in ids if i not in owned]
            if missing:
                raise not_found("DOCUMENT_NOT_FOUND", f"documents/{missing[0]} not found")
            if not any(d.doc_type in IDENTITY_DOCS for d in docs):
                raise invalid_argument(
                    "IDENTITY_DOCUMENT_REQUIRED",
                    "a submission needs a CNH or an RG",
                    [("submission.documents", "include a CNH or an RG")],
                )
            await store.lock_user(conn, user_id, "submissions")
            if await store.open_submission(conn, user_id) is not None:
                raise failed_precondition(
                    "SUBMISSION_IN_PROGRESS", "a KYC submission is already in progress"
                )
            wf_id = workflow_id(user_id, sub_id)
            sub = await store.insert_submission(conn, sub_id, user_id, ids, wf_id)
            for check in CHECK_ORDER:
                await store.upsert_check(conn, sub_id, check, "PENDING")
            await events.requested(conn, sub)
            # Started inside the transaction: a failed start rolls the row back.
            # The workflow's first activity waits for the row to be committed.
            try:
                await self._temporal.start_workflow(
                    WORKFLOW,
                    str(sub_id),
                    id=wf_id,
                    task_queue=TASK_QUEUE,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                pass  # a retry after a lost answer: the same run goes on
            return sub, await store.checks_of(conn, sub_id)

    async def _visible_submission(
        self, principal: Principal, name: str
    ) -> tuple[store.SubmissionRow, list[store.CheckRow]]:
        sub_id = parse_id(name, events.SUBMISSION_PREFIX, "name")
        async with self._db.transaction() as conn:
            sub = await store.get_submission(conn, sub_id)
            if sub is None or (str(sub.user_id) != principal.subject and not _is_staff(principal)):
                raise not_found("SUBMISSION_NOT_FOUND", f"{name} not found")
            return sub, await store.checks_of(conn, sub_id)

    async def get_submission(
        self, principal: Principal, name: str
    ) -> tuple[store.SubmissionRow, list[store.CheckRow]]:
        return await self._visible_submission(principal, name)

    async def list_submissions(
        self, principal: Principal, size: int, token: str
    ) -> tuple[list[tuple[store.SubmissionRow, list[store.CheckRow]]], str]:
        user_id = _user_id(principal)
        limit = store.page_size(size)
        listing = f"submissions:{user_id}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            rows = await store.list_submissions(conn, user_id, limit + 1, after)
            page, next_token = _page(rows, limit, listing)
            checks = await store.checks_for(conn, [s.id for s in page])
        return [(s, checks[s.id]) for s in page], next_token

    async def status(self, principal: Principal, user: str) -> StatusView:
        if user:
            target = parse_id(user, events.USER_PREFIX, "user")
            if str(target) != principal.subject and not _is_staff(principal):
                raise permission_denied("PERMISSION_DENIED", "only your own KYC status")
        else:
            target = _user_id(principal)
        async with self._db.transaction() as conn:
            types = await store.document_types(conn, target)
            sub = await store.latest_submission(conn, target)
            checks = await store.checks_of(conn, sub.id) if sub is not None else []
        missing: list[str] = []
        if not types & IDENTITY_DOCS:
            missing.append("CNH")  # or an RG: either identity document will do
        if sub is None:
            return StatusView(target, "NOT_STARTED", tuple(missing), (), None, None)
        pending = tuple(
            c for c in CHECK_ORDER for r in checks if r.check_type == c and r.completed_at is None
        )
        if sub.state not in store.OPEN_STATES or sub.state == "IN_REVIEW":
            pending = ()
        return StatusView(target, sub.state, tuple(missing), pending, sub, sub.updated_at)

    # ------------------------------------------------------------ screening

    @property
    def lists_version(self) -> str:
        return self._lists.version

    def screen_name(self, full_name: str, birth_date: str, threshold: str) -> list[Hit]:
        if not full_name.strip():
            raise invalid_argument(
                "FULL_NAME_REQUIRED", "full_name is required", [("full_name", "required")]
            )
        if len(full_name) > 512:
            raise invalid_argument(
                "FULL_NAME_TOO_LONG", "full_name is too long", [("full_name", "at most 512")]
            )
        born: date | None = None
        if birth_date:
            try:
                born = date.fromisoformat(birth_date)
            except ValueError as exc:
                raise invalid_argument(
                    "BIRTH_DATE_INVALID", "birth_date is YYYY-MM-DD", [("birth_date", "YYYY-MM-DD")]
                ) from exc
        value = DEFAULT_THRESHOLD
        if threshold:
            try:
                value = float(Decimal(threshold))
            except InvalidOperation as exc:
                raise invalid_argument(
                    "THRESHOLD_INVALID", "threshold is a decimal", [("threshold", "decimal")]
                ) from exc
            if not 0.5 <= value <= 1.0:
                raise invalid_argument(
                    "THRESHOLD_INVALID", "threshold is 0.5..1", [("threshold", "0.5..1")]
                )
        return screen(full_name, born, self._lists.index, value)

    # ------------------------------------------------------------ backoffice

    async def list_reviews(
        self, state: str, size: int, token: str
    ) -> tuple[list[tuple[store.ReviewRow, list[store.CheckRow]]], str]:
        limit = store.page_size(size)
        listing = f"review-cases:{state}"
        after = _after(token, listing)
        async with self._db.transaction() as conn:
            rows = await store.list_reviews(conn, state, limit + 1, after)
            page, next_token = _page(rows, limit, listing)
            checks = await store.checks_for(conn, [r.submission_id for r in page])
        return [(r, checks[r.submission_id]) for r in page], next_token

    async def _review(self, name: str, *, for_update: bool = False) -> store.ReviewRow:
        review_id = parse_id(name, events.REVIEW_PREFIX, "name")
        async with self._db.transaction() as conn:
            row = await store.get_review(conn, review_id, for_update=for_update)
        if row is None:
            raise not_found("REVIEW_CASE_NOT_FOUND", f"{name} not found")
        return row

    async def get_review(
        self, principal: Principal, name: str
    ) -> tuple[store.ReviewRow, list[store.CheckRow], list[kyc_pb2.DocumentView]]:
        review = await self._review(name)
        async with self._db.transaction() as conn:
            sub = await store.get_submission(conn, review.submission_id)
            assert sub is not None, "a case references its submission"
            checks = await store.checks_of(conn, sub.id)
            docs = await store.documents_by_ids(conn, sub.document_ids)
        views = []
        expire_at = datetime.now(UTC) + timedelta(seconds=VIEW_URL_SECONDS)
        for doc in docs:
            url = await self._view_url(doc, expire_at)
            views.append(
                kyc_pb2.DocumentView(
                    document=events.document_message(doc),
                    download_uri=url,
                    expire_time=events.ts(expire_at),
                )
            )
        async with self._db.transaction() as conn:
            await audit.record(
                conn,
                "review_case",
                str(review.id),
                "viewed",
                {"documents": [str(d.id) for d in docs]},
                principal.subject,
            )
        return review, checks, views

    async def _view_url(self, doc: store.DocumentRow, expire_at: datetime) -> str:
        """A decrypted copy under a random key, presigned for VIEW_URL_SECONDS and
        deleted by the sweeper once expired (the stored object stays ciphertext)."""
        sealed = await self._objects.get(doc.object_key)
        plain = await asyncio.to_thread(
            self._cipher.decrypt, sealed, content_context(doc.object_key)
        )
        view_key = f"views/{uuid.uuid4().hex}"
        async with self._db.transaction() as conn:
            await store.add_view(conn, view_key, expire_at)
        await self._objects.put(view_key, plain)
        return self._objects.presign_get(view_key, VIEW_URL_SECONDS)

    async def sweep_views(self, batch: int = 100) -> int:
        async with self._db.transaction() as conn:
            keys = await store.expired_views(conn, batch)
        for key in keys:
            await self._objects.delete(key)
            async with self._db.transaction() as conn:
                await store.drop_view(conn, key)
        return len(keys)

    async def decide_review(
        self, principal: Principal, name: str, approve: bool, reason: str
    ) -> tuple[store.ReviewRow, list[store.CheckRow]]:
        reason = reason.strip()
        if not MIN_REASON_CHARS <= len(reason) <= MAX_REASON_CHARS:
            raise invalid_argument(
                "REASON_REQUIRED",
                f"a reason of {MIN_REASON_CHARS}..{MAX_REASON_CHARS} characters is required",
                [("reason", f"{MIN_REASON_CHARS}..{MAX_REASON_CHARS} characters")],
            )
        review_id = parse_id(name, events.REVIEW_PREFIX, "name")
        state = "APPROVED" if approve else "DECLINED"
        async with self._db.transaction() as conn:
            review = await store.get_review(conn, review_id, for_update=True)
            if review is None:
                raise not_found("REVIEW_CASE_NOT_FOUND", f"{name} not found")
            if review.state != "OPEN":
                raise failed_precondition(
                    "REVIEW_CASE_ALREADY_DECIDED", f"the case is already {review.state.lower()}"
                )
            decided = await store.decide_review(conn, review_id, state, principal.subject, reason)
            sub = await store.set_submission_state(
                conn,
                review.submission_id,
                state,
                decline_reasons=() if approve else (reason,),
                complete=True,
            )
            checks = await store.checks_of(conn, sub.id)
            await store.upsert_result(
                conn,
                sub.id,
                sub.user_id,
                state,
                () if approve else (reason,),
                principal.subject,
                [_check_json(c) for c in checks],
            )
            await audit.record(
                conn,
                "review_case",
                str(review_id),
                "approved" if approve else "declined",
                {"reason": reason, "submission": events.submission_name(sub.id)},
                principal.subject,
            )
            if approve:
                await events.approved(conn, sub, principal.subject)
            else:
                await events.declined(conn, sub, (reason,), principal.subject)
        return decided, checks


def _check_json(c: store.CheckRow) -> dict[str, object]:
    return {
        "type": c.check_type,
        "state": c.state,
        "reason": c.reason,
        "from_cache": c.from_cache,
        "evidence": c.evidence,
    }


def check_json(c: store.CheckRow) -> dict[str, object]:
    return _check_json(c)


def _after(token: str, listing: str) -> store.Keyset | None:
    return pagination.decode_time_id(token, listing) if token else None


def _page(rows: list[P], limit: int, listing: str) -> tuple[list[P], str]:
    """Rows were fetched with limit + 1: one more means another page, after row `limit`."""
    page = rows[:limit]
    more = len(rows) > limit
    token = pagination.encode_time_id(listing, page[-1].created_at, page[-1].id) if more else ""
    return page, token
