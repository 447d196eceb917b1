"""What identity publishes (through the outbox, in the transaction of the change).

Events carry resource names, not PII (LGPD): a consumer that needs personal
data asks identity over gRPC. The outbox wraps them in the EventEnvelope and
derives the subject from each message's event_type option
(services.platform.events), so no subjects are kept here.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from fintech.events.v1 import identity_events_pb2
from services.identity.service_views import UserView


def _ts(view_time: object) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(view_time)  # type: ignore[arg-type]
    return stamp


def registered_event(view: UserView) -> identity_events_pb2.UserRegistered:
    return identity_events_pb2.UserRegistered(
        user=f"users/{view.id}", create_time=_ts(view.created_at)
    )


def profile_updated_event(
    view: UserView, changed_fields: list[str]
) -> identity_events_pb2.UserProfileUpdated:
    return identity_events_pb2.UserProfileUpdated(
        user=f"users/{view.id}", changed_fields=changed_fields, update_time=_ts(view.updated_at)
    )


def mfa_changed_event(user_id: object, enabled: bool) -> identity_events_pb2.UserMfaChanged:
    return identity_events_pb2.UserMfaChanged(user=f"users/{user_id}", mfa_enabled=enabled)


def session_revoked_event(session: str, reason: str) -> identity_events_pb2.SessionRevoked:
    """`reason`: LOGOUT, DEVICE_REVOKED or REFRESH_TOKEN_REUSE (the contract's words)."""
    assert reason in ("LOGOUT", "DEVICE_REVOKED", "REFRESH_TOKEN_REUSE"), reason
    return identity_events_pb2.SessionRevoked(session=session, reason=reason)
