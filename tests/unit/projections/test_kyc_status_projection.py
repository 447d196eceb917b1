"""The one mapping from kyc events to a customer's KYC status (identity and risk share it)."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from fintech.events.v1 import envelope_pb2, kyc_events_pb2
from fintech.kyc.v1 import kyc_pb2
from services.platform.consumer import Event
from services.projections.kyc_status import RUNNING, StatusChange, status_change

USER = uuid.UUID("6f1c1d1e-7a39-4b4e-9c55-0a3f0d8f5a11")


def event(event_type: str, payload: Message) -> Event:
    packed = any_pb2.Any()
    packed.Pack(payload)
    envelope = envelope_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()), event_type=event_type, payload=packed
    )
    return Event(
        id=envelope.event_id,
        subject=f"fintech.events.{event_type}",
        type=event_type,
        data=envelope.SerializeToString(),
        headers={},
        delivery=1,
        envelope=envelope,
    )


@pytest.mark.parametrize(
    ("event_type", "payload", "status"),
    [
        ("kyc.requested", kyc_events_pb2.KycRequested(user=f"users/{USER}"), "PENDING"),
        ("kyc.approved", kyc_events_pb2.KycApproved(user=f"users/{USER}"), "APPROVED"),
        ("kyc.declined", kyc_events_pb2.KycDeclined(user=f"users/{USER}"), "DECLINED"),
        (
            "kyc.review_required",
            kyc_events_pb2.KycReviewRequired(user=f"users/{USER}"),
            "IN_REVIEW",
        ),
    ],
)
def test_decisions_set_the_status_unconditionally(
    event_type: str, payload: Message, status: str
) -> None:
    assert status_change(event(event_type, payload)) == StatusChange(USER, status, ())


def test_progress_only_moves_a_running_process() -> None:
    waiting = kyc_events_pb2.KycStatusChanged(
        user=f"users/{USER}", state=kyc_pb2.KYC_STATE_WAITING_PROVIDER
    )
    change = status_change(event("kyc.status_changed", waiting))
    assert change == StatusChange(USER, "WAITING_PROVIDER", RUNNING)
    assert "APPROVED" not in RUNNING and "DECLINED" not in RUNNING


def test_progress_to_a_final_state_and_other_types_change_nothing() -> None:
    approved_progress = kyc_events_pb2.KycStatusChanged(
        user=f"users/{USER}", state=kyc_pb2.KYC_STATE_APPROVED
    )
    assert status_change(event("kyc.status_changed", approved_progress)) is None
    assert status_change(event("kyc.document_uploaded", kyc_events_pb2.KycApproved())) is None


def test_a_malformed_user_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="malformed user"):
        status_change(event("kyc.approved", kyc_events_pb2.KycApproved(user="people/1")))


def test_the_wrong_payload_type_is_refused() -> None:
    with pytest.raises(TypeError):
        status_change(event("kyc.approved", kyc_events_pb2.KycDeclined(user=f"users/{USER}")))
