"""KYC's tables and queries (schema `kyc`, SQLAlchemy Core text queries)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

from services.platform import pagination

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
OPEN_STATES = ("PENDING", "WAITING_PROVIDER", "IN_REVIEW")


# The (created_at, id) of the last row of the previous page.
Keyset = tuple[datetime, uuid.UUID]


def page_size(requested: int) -> int:
    return pagination.page_size(requested, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)


# ---------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: uuid.UUID
    user_id: uuid.UUID
    doc_type: str
    content_type: str
    size_bytes: int
    sha256: str
    version: int
    object_key: str
    number_ciphertext: bytes | None
    created_at: datetime


_DOC_COLS = (
    "id, user_id, doc_type, content_type, size_bytes, sha256, version, object_key,"
    " number_ciphertext, created_at"
)


def _doc(row: Any) -> DocumentRow:
    return DocumentRow(
        id=row.id,
        user_id=row.user_id,
        doc_type=row.doc_type,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        version=row.version,
        object_key=row.object_key,
        number_ciphertext=None if row.number_ciphertext is None else bytes(row.number_ciphertext),
        created_at=row.created_at,
    )


async def lock_user(conn: AsyncConnection, user_id: uuid.UUID, purpose: str) -> None:
    """Serialise one user's uploads (versions) or submissions within this transaction."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"kyc:{purpose}:{user_id}"}
    )


async def document_by_sha(
    conn: AsyncConnection, user_id: uuid.UUID, sha256: str
) -> DocumentRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_DOC_COLS} FROM documents WHERE user_id = :u AND sha256 = :s"),
            {"u": user_id, "s": sha256},
        )
    ).first()
    return None if row is None else _doc(row)


async def insert_document(
    conn: AsyncConnection,
    *,
    doc_id: uuid.UUID,
    user_id: uuid.UUID,
    doc_type: str,
    content_type: str,
    size_bytes: int,
    sha256: str,
    object_key: str,
    number_ciphertext: bytes | None,
) -> DocumentRow:
    row = (
        await conn.execute(
            text(
                "INSERT INTO documents (id, user_id, doc_type, content_type, size_bytes, sha256,"
                " version, object_key, number_ciphertext)"
                " VALUES (:id, :u, :t, :ct, :size, :sha,"
                "  (SELECT coalesce(max(version), 0) + 1 FROM documents"
                "   WHERE user_id = :u AND doc_type = :t),"
                "  :key, :num)"
                f" RETURNING {_DOC_COLS}"
            ),
            {
                "id": doc_id,
                "u": user_id,
                "t": doc_type,
                "ct": content_type,
                "size": size_bytes,
                "sha": sha256,
                "key": object_key,
                "num": number_ciphertext,
            },
        )
    ).one()
    return _doc(row)


async def get_document(conn: AsyncConnection, doc_id: uuid.UUID) -> DocumentRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_DOC_COLS} FROM documents WHERE id = :id"), {"id": doc_id}
        )
    ).first()
    return None if row is None else _doc(row)


async def documents_by_ids(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> list[DocumentRow]:
    rows = await conn.execute(
        text(f"SELECT {_DOC_COLS} FROM documents WHERE id = ANY(:ids) ORDER BY created_at, id"),
        {"ids": list(ids)},
    )
    return [_doc(r) for r in rows]


async def list_documents(
    conn: AsyncConnection, user_id: uuid.UUID, limit: int, after: Keyset | None
) -> list[DocumentRow]:
    params: dict[str, Any] = {"u": user_id, "limit": limit}
    cursor = " AND " + pagination.keyset_condition(after, params)
    rows = await conn.execute(
        text(
            f"SELECT {_DOC_COLS} FROM documents WHERE user_id = :u{cursor}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [_doc(r) for r in rows]


async def document_types(conn: AsyncConnection, user_id: uuid.UUID) -> set[str]:
    rows = await conn.execute(
        text("SELECT DISTINCT doc_type FROM documents WHERE user_id = :u"), {"u": user_id}
    )
    return {r.doc_type for r in rows}


# ---------------------------------------------------------------- submissions


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    id: uuid.UUID
    user_id: uuid.UUID
    state: str
    document_ids: tuple[uuid.UUID, ...]
    workflow_id: str
    decline_reasons: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


_SUB_COLS = (
    "id, user_id, state, document_ids, workflow_id, decline_reasons, created_at, updated_at,"
    " completed_at"
)


def _sub(row: Any) -> SubmissionRow:
    return SubmissionRow(
        id=row.id,
        user_id=row.user_id,
        state=row.state,
        document_ids=tuple(row.document_ids),
        workflow_id=row.workflow_id,
        decline_reasons=tuple(row.decline_reasons),
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


async def insert_submission(
    conn: AsyncConnection,
    sub_id: uuid.UUID,
    user_id: uuid.UUID,
    document_ids: Sequence[uuid.UUID],
    workflow_id: str,
) -> SubmissionRow:
    row = (
        await conn.execute(
            text(
                "INSERT INTO submissions (id, user_id, state, document_ids, workflow_id)"
                " VALUES (:id, :u, 'PENDING', :docs, :wf)"
                f" RETURNING {_SUB_COLS}"
            ),
            {"id": sub_id, "u": user_id, "docs": list(document_ids), "wf": workflow_id},
        )
    ).one()
    return _sub(row)


async def get_submission(
    conn: AsyncConnection, sub_id: uuid.UUID, *, for_update: bool = False
) -> SubmissionRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(f"SELECT {_SUB_COLS} FROM submissions WHERE id = :id{lock}"), {"id": sub_id}
        )
    ).first()
    return None if row is None else _sub(row)


async def open_submission(conn: AsyncConnection, user_id: uuid.UUID) -> SubmissionRow | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_SUB_COLS} FROM submissions WHERE user_id = :u"
                " AND state = ANY(:open) LIMIT 1"
            ),
            {"u": user_id, "open": list(OPEN_STATES)},
        )
    ).first()
    return None if row is None else _sub(row)


async def latest_submission(conn: AsyncConnection, user_id: uuid.UUID) -> SubmissionRow | None:
    row = (
        await conn.execute(
            text(
                f"SELECT {_SUB_COLS} FROM submissions WHERE user_id = :u"
                " ORDER BY created_at DESC, id DESC LIMIT 1"
            ),
            {"u": user_id},
        )
    ).first()
    return None if row is None else _sub(row)


async def list_submissions(
    conn: AsyncConnection, user_id: uuid.UUID, limit: int, after: Keyset | None
) -> list[SubmissionRow]:
    params: dict[str, Any] = {"u": user_id, "limit": limit}
    cursor = " AND " + pagination.keyset_condition(after, params)
    rows = await conn.execute(
        text(
            f"SELECT {_SUB_COLS} FROM submissions WHERE user_id = :u{cursor}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [_sub(r) for r in rows]


async def set_submission_state(
    conn: AsyncConnection,
    sub_id: uuid.UUID,
    state: str,
    *,
    decline_reasons: Sequence[str] = (),
    complete: bool = False,
) -> SubmissionRow:
    row = (
        await conn.execute(
            text(
                "UPDATE submissions SET state = :s, decline_reasons = :r, updated_at = now(),"
                " completed_at = CASE WHEN :c THEN now() ELSE completed_at END"
                f" WHERE id = :id RETURNING {_SUB_COLS}"
            ).bindparams(bindparam("r", type_=ARRAY(Text))),
            {"id": sub_id, "s": state, "r": list(decline_reasons), "c": complete},
        )
    ).one()
    return _sub(row)


# ---------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class CheckRow:
    check_type: str
    state: str
    reason: str
    from_cache: bool
    evidence: dict[str, Any]
    completed_at: datetime | None


async def upsert_check(
    conn: AsyncConnection,
    sub_id: uuid.UUID,
    check_type: str,
    state: str,
    *,
    reason: str = "",
    from_cache: bool = False,
    evidence: dict[str, Any] | None = None,
    complete: bool = False,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO submission_checks (submission_id, check_type, state, reason, from_cache,"
            " evidence, completed_at)"
            " VALUES (:id, :t, :s, :r, :fc, :ev, CASE WHEN :c THEN now() END)"
            " ON CONFLICT (submission_id, check_type) DO UPDATE SET state = EXCLUDED.state,"
            " reason = EXCLUDED.reason, from_cache = EXCLUDED.from_cache,"
            " evidence = EXCLUDED.evidence, completed_at = EXCLUDED.completed_at,"
            " updated_at = now()"
        ).bindparams(bindparam("ev", type_=JSONB)),
        {
            "id": sub_id,
            "t": check_type,
            "s": state,
            "r": reason,
            "fc": from_cache,
            "ev": evidence or {},
            "c": complete,
        },
    )


async def checks_of(conn: AsyncConnection, sub_id: uuid.UUID) -> list[CheckRow]:
    rows = await conn.execute(
        text(
            "SELECT check_type, state, reason, from_cache, evidence, completed_at"
            " FROM submission_checks WHERE submission_id = :id"
        ),
        {"id": sub_id},
    )
    return [
        CheckRow(r.check_type, r.state, r.reason, r.from_cache, dict(r.evidence), r.completed_at)
        for r in rows
    ]


async def checks_for(
    conn: AsyncConnection, sub_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CheckRow]]:
    rows = await conn.execute(
        text(
            "SELECT submission_id, check_type, state, reason, from_cache, evidence, completed_at"
            " FROM submission_checks WHERE submission_id = ANY(:ids)"
        ),
        {"ids": list(sub_ids)},
    )
    found: dict[uuid.UUID, list[CheckRow]] = {i: [] for i in sub_ids}
    for r in rows:
        found[r.submission_id].append(
            CheckRow(
                r.check_type, r.state, r.reason, r.from_cache, dict(r.evidence), r.completed_at
            )
        )
    return found


# ---------------------------------------------------------------- results


async def upsert_result(
    conn: AsyncConnection,
    sub_id: uuid.UUID,
    user_id: uuid.UUID,
    outcome: str,
    reasons: Sequence[str],
    decided_by: str,
    checks: list[dict[str, Any]],
) -> None:
    await conn.execute(
        text(
            "INSERT INTO kyc_results (submission_id, user_id, outcome, reasons, decided_by, checks)"
            " VALUES (:id, :u, :o, :r, :by, :checks)"
            " ON CONFLICT (submission_id) DO UPDATE SET outcome = EXCLUDED.outcome,"
            " reasons = EXCLUDED.reasons, decided_by = EXCLUDED.decided_by,"
            " updated_at = now()"
        ).bindparams(bindparam("checks", type_=JSONB), bindparam("r", type_=ARRAY(Text))),
        {
            "id": sub_id,
            "u": user_id,
            "o": outcome,
            "r": list(reasons),
            "by": decided_by,
            "checks": checks,
        },
    )


# ---------------------------------------------------------------- review queue


@dataclass(frozen=True, slots=True)
class ReviewRow:
    id: uuid.UUID
    submission_id: uuid.UUID
    user_id: uuid.UUID
    state: str
    reasons: tuple[str, ...]
    screening_hits: list[dict[str, Any]]
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None


_REVIEW_COLS = (
    "id, submission_id, user_id, state, reasons, screening_hits, decided_by, decision_reason,"
    " created_at, decided_at"
)


def _review(row: Any) -> ReviewRow:
    return ReviewRow(
        id=row.id,
        submission_id=row.submission_id,
        user_id=row.user_id,
        state=row.state,
        reasons=tuple(row.reasons),
        screening_hits=list(row.screening_hits),
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


async def insert_review(
    conn: AsyncConnection,
    review_id: uuid.UUID,
    sub_id: uuid.UUID,
    user_id: uuid.UUID,
    reasons: Sequence[str],
    screening_hits: list[dict[str, Any]],
) -> ReviewRow:
    """The submission's case (an existing one is returned unchanged: activity retries)."""
    await conn.execute(
        text(
            "INSERT INTO review_queue (id, submission_id, user_id, state, reasons, screening_hits)"
            " VALUES (:id, :sub, :u, 'OPEN', :r, :hits) ON CONFLICT (submission_id) DO NOTHING"
        ).bindparams(bindparam("hits", type_=JSONB), bindparam("r", type_=ARRAY(Text))),
        {"id": review_id, "sub": sub_id, "u": user_id, "r": list(reasons), "hits": screening_hits},
    )
    row = (
        await conn.execute(
            text(f"SELECT {_REVIEW_COLS} FROM review_queue WHERE submission_id = :sub"),
            {"sub": sub_id},
        )
    ).one()
    return _review(row)


async def get_review(
    conn: AsyncConnection, review_id: uuid.UUID, *, for_update: bool = False
) -> ReviewRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(f"SELECT {_REVIEW_COLS} FROM review_queue WHERE id = :id{lock}"),
            {"id": review_id},
        )
    ).first()
    return None if row is None else _review(row)


async def list_reviews(
    conn: AsyncConnection, state: str, limit: int, after: Keyset | None
) -> list[ReviewRow]:
    params: dict[str, Any] = {"s": state, "limit": limit}
    # The review queue is worked oldest first.
    cursor = " AND " + pagination.keyset_condition(after, params, oldest_first=True)
    rows = await conn.execute(
        text(
            f"SELECT {_REVIEW_COLS} FROM review_queue WHERE state = :s{cursor}"
            " ORDER BY created_at, id LIMIT :limit"
        ),
        params,
    )
    return [_review(r) for r in rows]


async def decide_review(
    conn: AsyncConnection, review_id: uuid.UUID, state: str, decided_by: str, reason: str
) -> ReviewRow:
    row = (
        await conn.execute(
            text(
                "UPDATE review_queue SET state = :s, decided_by = :by, decision_reason = :r,"
                f" decided_at = now() WHERE id = :id RETURNING {_REVIEW_COLS}"
            ),
            {"id": review_id, "s": state, "by": decided_by, "r": reason},
        )
    ).one()
    return _review(row)


# ---------------------------------------------------------------- reviewer views


async def add_view(conn: AsyncConnection, object_key: str, expire_at: datetime) -> None:
    await conn.execute(
        text("INSERT INTO document_views (object_key, expire_at) VALUES (:k, :e)"),
        {"k": object_key, "e": expire_at},
    )


async def expired_views(conn: AsyncConnection, limit: int) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT object_key FROM document_views WHERE expire_at < now()"
            " ORDER BY expire_at LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [r.object_key for r in rows]


async def drop_view(conn: AsyncConnection, object_key: str) -> None:
    await conn.execute(text("DELETE FROM document_views WHERE object_key = :k"), {"k": object_key})
