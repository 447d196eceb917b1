"""The KYC process against failure: a provider outage mid-process (waits,
shows WAITING_PROVIDER, resumes by itself, no extra provider calls beyond the
retry policy), the bureau down (its cached last good answer serves; without
one the check waits), the kyc process SIGKILLed mid-process (resumes on
restart without asking a provider twice), and duplicate events (applied once)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
import pytest

from devstack.procs import Supervisor
from devstack.stack import Stack
from fintech.events.v1 import kyc_events_pb2
from services.identity.kyc_consumer import CONSUMER
from services.kyc.providers import KYC_RESILIENCE
from services.platform.events import EventEnvelope
from tests.integration.edge import EdgeClient
from tests.integration.kyc.kyc_it_support import (
    Db,
    KycApp,
    Sim,
    customer,
    generated_person,
    submission_check,
)
from tests.support.processes import (
    port_of,
    service_pid,
    service_spec,
    sigkill,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 14.0  # longer than the breaker's reset (10 s): it opens, probes, reopens
VALIDATE = "/v1/validate/pf"


def wait_for(what: str, probe: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_provider_outage_waits_then_resumes(edge: EdgeClient, db: Db, sims: dict[str, Sim]) -> None:
    person = generated_person()
    app = KycApp(edge, customer(edge, person))
    doc = app.identity_document(person)
    since = db.last_call_id()
    began = time.monotonic()
    with sims["receita"].faulty(outage=True):
        created = app.submit([doc])
        assert created.status_code == 200, created.text
        name = created.json()["name"]
        wait_for("WAITING_PROVIDER", lambda: app.status()["state"] == "KYC_STATE_WAITING_PROVIDER")
        status = app.status()
        assert status["pending_checks"][0] == "CHECK_TYPE_CPF_SITUATION"
        assert status["submission"] == name
        states = {c["type"]: c["state"] for c in app.submission(name)["checks"]}
        assert states["CHECK_TYPE_CPF_SITUATION"] == "CHECK_STATE_WAITING_PROVIDER"
        app.wait_kyc_status("KYC_STATUS_WAITING_PROVIDER")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - began)))
        outage = time.monotonic() - began
    done = app.wait_submission(name, timeout_s=60.0)
    assert done["state"] == "KYC_STATE_APPROVED", done
    app.wait_kyc_status("KYC_STATUS_APPROVED")

    calls = db.calls("receita", since)
    answered = [c for c in calls if c[0] == 200]
    failed = [c for c in calls if c[0] != 200]
    assert len(answered) == 1, calls  # the CPF was asked once it could answer, once
    assert failed and all(status == 503 for status, _ in failed), failed
    # Without the breaker the workflow's retries (1, 2, 4, 8, 10 s...) would each
    # send max_attempts calls; with it, after fail_max failures at most one probe
    # per reset period gets through.
    cfg = KYC_RESILIENCE
    probes = int(outage / cfg.breaker_reset_seconds) + 1
    assert len(failed) <= cfg.breaker_fail_max + cfg.max_attempts * probes, calls
    # Other providers were asked once each, after the recovery.
    assert [s for s, _ in db.calls("bureau", since)] == [200]
    assert db.calls("govdocs", since, VALIDATE) == [(200, None)]


def _checks(sub: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in sub["checks"]}


def test_bureau_down_is_answered_from_the_cached_report(
    edge: EdgeClient, db: Db, sims: dict[str, Sim]
) -> None:
    person = generated_person()
    app = KycApp(edge, customer(edge, person))
    doc = app.identity_document(person)
    first = app.submit([doc])
    assert first.status_code == 200, first.text
    answered = app.wait_submission(first.json()["name"])
    assert answered["state"] == "KYC_STATE_APPROVED", answered
    assert _checks(answered)["CHECK_TYPE_BUREAU"]["from_cache"] is False

    since = db.last_call_id()
    with sims["bureau"].faulty(outage=True):
        again = app.submit([doc])
        assert again.status_code == 200, again.text
        done = app.wait_submission(again.json()["name"], timeout_s=30.0)
        states = {t: c["state"] for t, c in _checks(done).items()}
    # Completed during the outage, on the answer the bureau gave the first time.
    assert done["state"] == "KYC_STATE_APPROVED", done
    assert set(states.values()) == {"CHECK_STATE_PASSED"}, states
    assert _checks(done)["CHECK_TYPE_BUREAU"]["from_cache"] is True
    assert submission_check(db, done["name"], "BUREAU") == submission_check(
        db, answered["name"], "BUREAU"
    )
    # The bureau was asked (fresh first), failed within one client call's
    # retries, and was not waited for.
    calls = db.calls("bureau", since)
    assert calls and all(status == 503 for status, _ in calls), calls
    assert len(calls) <= KYC_RESILIENCE.max_attempts, calls
    assert app.status()["state"] == "KYC_STATE_APPROVED"


def test_bureau_down_without_a_cached_report_waits(
    edge: EdgeClient, db: Db, sims: dict[str, Sim]
) -> None:
    person = generated_person()  # a CPF never asked before: nothing cached
    app = KycApp(edge, customer(edge, person))
    doc = app.identity_document(person)
    since = db.last_call_id()
    with sims["bureau"].faulty(outage=True):
        created = app.submit([doc])
        assert created.status_code == 200, created.text
        name = created.json()["name"]

        def only_the_bureau_waits() -> bool:
            status = app.status()
            return status["state"] == "KYC_STATE_WAITING_PROVIDER" and status["pending_checks"] == [
                "CHECK_TYPE_BUREAU"
            ]

        wait_for("the bureau check to wait", only_the_bureau_waits)
        app.wait_kyc_status("KYC_STATUS_WAITING_PROVIDER")
        bureau = _checks(app.submission(name))["CHECK_TYPE_BUREAU"]
        assert bureau["state"] == "CHECK_STATE_WAITING_PROVIDER"
    done = app.wait_submission(name, timeout_s=60.0)
    assert done["state"] == "KYC_STATE_APPROVED", done
    assert _checks(done)["CHECK_TYPE_BUREAU"]["from_cache"] is False
    calls = db.calls("bureau", since)
    assert [s for s, _ in calls if s == 200] == [200], calls  # asked once it could answer


def test_kyc_killed_mid_process_resumes(
    stack: Stack, edge: EdgeClient, db: Db, sims: dict[str, Sim], service_restarts: Supervisor
) -> None:
    person = generated_person()
    app = KycApp(edge, customer(edge, person))
    doc = app.identity_document(person)
    since = db.last_call_id()
    port = port_of(stack.grpc_targets["kyc"])
    with sims["govdocs"].faulty(latency_ms=3000):
        created = app.submit([doc])
        assert created.status_code == 200, created.text
        name = created.json()["name"]

        def cpf_done() -> bool:
            checks = {c["type"]: c["state"] for c in app.submission(name)["checks"]}
            return checks["CHECK_TYPE_CPF_SITUATION"] == "CHECK_STATE_PASSED"

        wait_for("the CPF check", cpf_done)
        time.sleep(0.5)  # inside the (slow) document check now
        sigkill(service_pid("kyc", port))  # no drain, no graceful anything
    proc = service_restarts.start(
        service_spec(stack, "kyc", "kyc-restarted")
    )  # from the test's main thread (PDEATHSIG)
    service_restarts.wait_ready([proc])
    done = app.wait_submission(name, timeout_s=90.0)
    assert done["state"] == "KYC_STATE_APPROVED", done
    # The CPF answered before the kill was not asked again; the document check
    # lost with the process was asked again exactly once after the restart.
    assert [s for s, _ in db.calls("receita", since)] == [200]
    assert db.calls("govdocs", since, VALIDATE) == [(200, None)]
    assert [s for s, _ in db.calls("bureau", since)] == [200]


async def test_duplicate_kyc_events_apply_once(
    stack: Stack, edge: EdgeClient, db: Db, sims: dict[str, Sim]
) -> None:
    person = generated_person()
    app = KycApp(edge, customer(edge, person))
    doc = await asyncio.to_thread(app.identity_document, person)
    created = await asyncio.to_thread(app.submit, [doc])
    name = created.json()["name"]
    done = await asyncio.to_thread(app.wait_submission, name)
    assert done["state"] == "KYC_STATE_APPROVED"
    await asyncio.to_thread(app.wait_kyc_status, "KYC_STATUS_APPROVED")

    # The submission's kyc.requested event, exactly as the outbox published it.
    rows = db.rows(
        "SELECT payload FROM kyc.outbox_events WHERE type = 'kyc.requested'"
        " ORDER BY created_at DESC LIMIT 200"
    )
    envelopes = [EventEnvelope.FromString(bytes(r[0])) for r in rows]
    requested = next(e for e in envelopes if e.subject == name)
    payload = kyc_events_pb2.KycRequested()
    assert requested.payload.Unpack(payload) and payload.user == app.user

    # Redelivered (no Nats-Msg-Id, so JetStream's own dedup does not hide it):
    # re-applied it would set the approved customer back to PENDING.
    nc = await nats.connect(stack.infra.nats_url)
    try:
        js = nc.jetstream()
        for _ in range(2):
            await js.publish(f"fintech.events.{requested.event_type}", rows_payload(requested))
        deadline = time.monotonic() + 30
        while True:
            info = await js.consumer_info("FINTECH", CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            assert time.monotonic() < deadline, info
            await asyncio.sleep(0.2)
    finally:
        await nc.close()
    me = await asyncio.to_thread(app.me)
    assert me["kyc_status"] == "KYC_STATUS_APPROVED"
    handled = db.scalar(
        "SELECT count(*) FROM identity.processed_events WHERE consumer = %s AND event_id = %s",
        CONSUMER,
        requested.event_id,
    )
    assert handled == 1


def rows_payload(envelope: EventEnvelope) -> bytes:
    return envelope.SerializeToString(deterministic=True)
