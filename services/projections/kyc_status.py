"""A customer's KYC status as the kyc service's events tell it.

Identity (the profile's `kyc_status`) and risk (the hard rule "KYC not
approved") both follow `fintech.events.kyc.>`; both must read the same events
the same way, so the mapping is here once:

kyc.requested → PENDING, kyc.review_required → IN_REVIEW, kyc.approved →
APPROVED, kyc.declined → DECLINED, kyc.status_changed → its state
(WAITING_PROVIDER / PENDING) but only while the process is still running
(`only_from`), so a late progress event never overwrites a decision. Other
kyc.* types are not about the status: `None`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fintech.events.v1 import kyc_events_pb2
from fintech.kyc.v1 import kyc_pb2
from services.platform import outbox
from services.platform.consumer import ConsumerSettings, Event
from services.platform.events import EVENTS_SUBJECT_PREFIX

USER_PREFIX = "users/"
NOT_STARTED = "NOT_STARTED"
# The states a running process may still move between.
RUNNING: tuple[str, ...] = (NOT_STARTED, "PENDING", "WAITING_PROVIDER")
_PROGRESS = {
    kyc_pb2.KYC_STATE_PENDING: "PENDING",
    kyc_pb2.KYC_STATE_WAITING_PROVIDER: "WAITING_PROVIDER",
}


@dataclass(frozen=True, slots=True)
class StatusChange:
    user_id: uuid.UUID
    status: str
    # Apply only when the current status is one of these; empty: always.
    only_from: tuple[str, ...] = ()


def consumer_settings(durable: str) -> ConsumerSettings:
    """Every kyc event, for the durable consumer named `durable` (one per service)."""
    return ConsumerSettings(
        stream=outbox.DEFAULT_STREAM,
        durable=durable,
        filter_subject=EVENTS_SUBJECT_PREFIX + "kyc.>",
    )


def _user_id(name: str, event_id: str) -> uuid.UUID:
    if not name.startswith(USER_PREFIX):
        raise ValueError(f"kyc event {event_id} carries a malformed user {name!r}")
    return uuid.UUID(name[len(USER_PREFIX) :])


def status_change(event: Event) -> StatusChange | None:
    """What `event` does to its user's KYC status, or None when nothing."""
    if event.type == "kyc.requested":
        requested = event.unpack(kyc_events_pb2.KycRequested)
        return StatusChange(_user_id(requested.user, event.id), "PENDING")
    if event.type == "kyc.approved":
        approved = event.unpack(kyc_events_pb2.KycApproved)
        return StatusChange(_user_id(approved.user, event.id), "APPROVED")
    if event.type == "kyc.declined":
        declined = event.unpack(kyc_events_pb2.KycDeclined)
        return StatusChange(_user_id(declined.user, event.id), "DECLINED")
    if event.type == "kyc.review_required":
        review = event.unpack(kyc_events_pb2.KycReviewRequired)
        return StatusChange(_user_id(review.user, event.id), "IN_REVIEW")
    if event.type == "kyc.status_changed":
        progress = event.unpack(kyc_events_pb2.KycStatusChanged)
        status = _PROGRESS.get(progress.state)
        if status is not None:
            return StatusChange(_user_id(progress.user, event.id), status, RUNNING)
    return None
