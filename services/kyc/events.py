"""KYC's wire shapes (rows → protobuf) and the events it writes to the outbox.

Events carry resource names and reason codes, never PII (LGPD).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from fintech.events.v1 import kyc_events_pb2
from fintech.kyc.v1 import kyc_pb2
from services.kyc.domain.rules import CHECK_ORDER
from services.kyc.store import CheckRow, DocumentRow, ReviewRow, SubmissionRow
from services.platform import outbox

USER_PREFIX = "users/"
DOCUMENT_PREFIX = "documents/"
SUBMISSION_PREFIX = "submissions/"
REVIEW_PREFIX = "reviewCases/"


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def user_name(user_id: object) -> str:
    return f"{USER_PREFIX}{user_id}"


def submission_name(sub_id: object) -> str:
    return f"{SUBMISSION_PREFIX}{sub_id}"


def review_name(review_id: object) -> str:
    return f"{REVIEW_PREFIX}{review_id}"


def doc_type_enum(doc_type: str) -> kyc_pb2.DocumentType.ValueType:
    return kyc_pb2.DocumentType.Value(f"DOCUMENT_TYPE_{doc_type}")


def kyc_state(state: str) -> kyc_pb2.KycState.ValueType:
    return kyc_pb2.KycState.Value(f"KYC_STATE_{state}")


def check_type_enum(check: str) -> kyc_pb2.CheckType.ValueType:
    return kyc_pb2.CheckType.Value(f"CHECK_TYPE_{check}")


def document_message(row: DocumentRow) -> kyc_pb2.Document:
    return kyc_pb2.Document(
        name=f"{DOCUMENT_PREFIX}{row.id}",
        user=user_name(row.user_id),
        type=doc_type_enum(row.doc_type),
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        version=row.version,
        create_time=ts(row.created_at),
    )


def check_messages(checks: Sequence[CheckRow]) -> list[kyc_pb2.CheckResult]:
    by_type = {c.check_type: c for c in checks}
    out = []
    for check in CHECK_ORDER:  # contract order, whatever the row order
        row = by_type.get(check)
        if row is None:
            continue
        msg = kyc_pb2.CheckResult(
            type=check_type_enum(check),
            state=kyc_pb2.CheckState.Value(f"CHECK_STATE_{row.state}"),
            reason=row.reason,
            from_cache=row.from_cache,
        )
        if row.completed_at is not None:
            msg.complete_time.CopyFrom(ts(row.completed_at))
        out.append(msg)
    return out


def submission_message(row: SubmissionRow, checks: Sequence[CheckRow]) -> kyc_pb2.Submission:
    msg = kyc_pb2.Submission(
        name=submission_name(row.id),
        user=user_name(row.user_id),
        documents=[f"{DOCUMENT_PREFIX}{d}" for d in row.document_ids],
        state=kyc_state(row.state),
        checks=check_messages(checks),
        decline_reasons=list(row.decline_reasons),
        create_time=ts(row.created_at),
    )
    if row.completed_at is not None:
        msg.complete_time.CopyFrom(ts(row.completed_at))
    return msg


def hit_messages(hits: Sequence[dict[str, Any]]) -> list[kyc_pb2.ScreeningHit]:
    return [
        kyc_pb2.ScreeningHit(
            list=str(h.get("list", "")),
            entry_id=str(h.get("entry_id", "")),
            matched_name=str(h.get("matched_name", "")),
            score=str(h.get("score", "")),
        )
        for h in hits
    ]


def review_message(
    row: ReviewRow,
    checks: Sequence[CheckRow],
    documents: Sequence[kyc_pb2.DocumentView] = (),
) -> kyc_pb2.ReviewCase:
    msg = kyc_pb2.ReviewCase(
        name=review_name(row.id),
        submission=submission_name(row.submission_id),
        user=user_name(row.user_id),
        state=kyc_pb2.ReviewState.Value(f"REVIEW_STATE_{row.state}"),
        review_reasons=list(row.reasons),
        checks=check_messages(checks),
        screening_hits=hit_messages(row.screening_hits),
        documents=list(documents),
        decided_by=row.decided_by or "",
        decision_reason=row.decision_reason or "",
        create_time=ts(row.created_at),
    )
    if row.decided_at is not None:
        msg.decide_time.CopyFrom(ts(row.decided_at))
    return msg


# ---------------------------------------------------------------- outbox


async def requested(conn: AsyncConnection, sub: SubmissionRow) -> None:
    await outbox.add_event(
        conn,
        event=kyc_events_pb2.KycRequested(
            user=user_name(sub.user_id), submission=submission_name(sub.id)
        ),
        aggregate=submission_name(sub.id),
    )


async def status_changed(conn: AsyncConnection, sub: SubmissionRow, pending: Sequence[str]) -> None:
    await outbox.add_event(
        conn,
        event=kyc_events_pb2.KycStatusChanged(
            user=user_name(sub.user_id),
            submission=submission_name(sub.id),
            state=kyc_state(sub.state),
            pending_checks=[check_type_enum(c) for c in pending],
        ),
        aggregate=submission_name(sub.id),
    )


async def approved(conn: AsyncConnection, sub: SubmissionRow, decided_by: str = "") -> None:
    await outbox.add_event(
        conn,
        event=kyc_events_pb2.KycApproved(
            user=user_name(sub.user_id), submission=submission_name(sub.id), decided_by=decided_by
        ),
        aggregate=submission_name(sub.id),
    )


async def declined(
    conn: AsyncConnection, sub: SubmissionRow, reasons: Sequence[str], decided_by: str = ""
) -> None:
    await outbox.add_event(
        conn,
        event=kyc_events_pb2.KycDeclined(
            user=user_name(sub.user_id),
            submission=submission_name(sub.id),
            reasons=list(reasons),
            decided_by=decided_by,
        ),
        aggregate=submission_name(sub.id),
    )


async def review_required(conn: AsyncConnection, sub: SubmissionRow, review: ReviewRow) -> None:
    await outbox.add_event(
        conn,
        event=kyc_events_pb2.KycReviewRequired(
            user=user_name(sub.user_id),
            submission=submission_name(sub.id),
            review_case=review_name(review.id),
            reasons=list(review.reasons),
        ),
        aggregate=submission_name(sub.id),
    )
