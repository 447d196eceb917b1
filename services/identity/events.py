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
