"""Event contracts and what the edge's descriptor set must contain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from tools import openapi

ROOT = Path(__file__).resolve().parents[2]

REQUIRED_EVENT_TYPES = {
    "user.registered",
    "user.profile_updated",
    "kyc.requested",
    "kyc.approved",
    "kyc.declined",
    "kyc.review_required",
    "ledger.transfer.posted",
    "ledger.transfer.pending",
    "ledger.transfer.voided",
    "ledger.transfer.expired",
    "payment.created",
    "payment.settled",
    "payment.failed",
    "payment.refunded",
    "loan.applied",
    "loan.approved",
    "loan.declined",
    "loan.funded",
    "loan.paid_off",
    "loan.defaulted",
    "risk.decision.made",
    "openfinance.consent.authorised",
    "openfinance.import.completed",
}


def _api() -> openapi.Api:
    return openapi.load((ROOT / "gen" / "api.binpb").read_bytes())


def test_every_event_message_has_a_unique_event_type() -> None:
    api = _api()
    # Any: the stubs only type extension handles of generated modules.
    ext: Any = api.pool.FindExtensionByName("fintech.api.v1.event_type")
    options_cls = api._message_options  # the pool's MessageOptions class
    seen: dict[str, str] = {}
    untyped = []
    for file in api.files:
        if file.package != "fintech.events.v1":
            continue
        for msg in file.message_type:
            if msg.name == "EventEnvelope":
                continue
            options = options_cls.FromString(msg.options.SerializeToString())
            event_type: str = options.Extensions[ext]
            if not event_type:
                untyped.append(msg.name)
                continue
            assert event_type not in seen, f"{event_type}: {seen.get(event_type)} and {msg.name}"
            seen[event_type] = msg.name
    assert untyped == []
    assert REQUIRED_EVENT_TYPES <= set(seen), REQUIRED_EVENT_TYPES - set(seen)


def test_envelope_fields() -> None:
    envelope = _api().pool.FindMessageTypeByName("fintech.events.v1.EventEnvelope")
    fields = {f.name: f for f in envelope.fields}
    assert {
        "event_id",
        "event_type",
        "source",
        "subject",
        "occur_time",
        "trace_id",
        "schema_version",
        "payload",
    } <= set(fields)
    payload, occur_time = fields["payload"].message_type, fields["occur_time"].message_type
    assert payload is not None and payload.full_name == "google.protobuf.Any"
    assert occur_time is not None and occur_time.full_name == "google.protobuf.Timestamp"


def test_descriptor_set_has_what_envoy_needs() -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "api.binpb").read_bytes())
    names = {f.name for f in fds.file}
    # http.proto for the transcoder; status + error_details so that
    # convert_grpc_status can print ErrorInfo/BadRequest details as JSON.
    assert {
        "google/api/http.proto",
        "google/api/annotations.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "google/protobuf/timestamp.proto",
    } <= names
    pool = _api().pool
    for type_name in ("google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.Status"):
        assert pool.FindMessageTypeByName(type_name).full_name == type_name
