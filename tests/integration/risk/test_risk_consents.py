"""Open Finance consent lifecycle through the edge: create, authorise, revoke,
expire, ownership and the LGPD history. Reads after revocation or expiry are
checked twice: through the risk service (import refused) and at the bank itself
(the consent id no longer opens the accounts API).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from tests.integration.edge import EdgeClient, error_reason, fresh_cpf
from tests.integration.risk.risk_it_support import (
    AUTHORISED,
    AWAITING,
    EXPIRED,
    FAILED,
    PERMISSIONS,
    REVOKED,
    Bank,
    OpenFinanceApp,
    customer,
    parse_time,
)

pytestmark = pytest.mark.integration

FAILED_PRECONDITION = 9  # google.rpc.Code in the edge's JSON status body


def app_for(edge: EdgeClient) -> OpenFinanceApp:
    return OpenFinanceApp(edge, customer(edge, fresh_cpf()))


def history_states(consent: dict) -> list[str]:
    return [entry["state"] for entry in consent.get("history", [])]


def assert_refused(response, *, what: str) -> str:
    """A read refused as FAILED_PRECONDITION with a reason; returns the reason."""
    assert response.status_code == 400, (what, response.status_code, response.text)
    assert response.json().get("code") == FAILED_PRECONDITION, (what, response.text)
    reason = error_reason(response)
    assert reason, (what, response.text)
    return reason


def test_consent_is_created_awaiting_then_authorised_with_history(
    edge: EdgeClient, bank: Bank
) -> None:
    app = app_for(edge)
    created = app.create_consent()
    assert created.status_code == 200, created.text
    consent = created.json()
    assert consent["name"].startswith("consents/")
    assert consent["user"] == app.user
    assert consent["state"] == AWAITING
    assert consent["consent_id"].startswith("urn:"), consent
    assert urlsplit(consent["authorisation_uri"]).scheme in {"http", "https"}, consent
    assert sorted(consent["permissions"]) == sorted(PERMISSIONS)
    assert history_states(consent) == [AWAITING]
    # Not authorised yet: the bank must refuse reads with this consent.
    assert bank.read_all(consent["consent_id"], None, None).status != 200

    code, state = bank.authorise(consent)
    authorised = app.authorise(consent["name"], code, state)
    assert authorised.status_code == 200, authorised.text
    assert authorised.json()["state"] == AUTHORISED
    assert authorised.json()["authorisation_uri"] in ("", consent["authorisation_uri"])

    fetched = app.get_consent(consent["name"])
    assert fetched.status_code == 200, fetched.text
    record = fetched.json()
    assert record["state"] == AUTHORISED
    assert history_states(record) == [AWAITING, AUTHORISED]
    times = [parse_time(entry["time"]) for entry in record["history"]]
    assert times == sorted(times), record["history"]
    assert bank.read_all(consent["consent_id"], None, None).status == 200

    listed = app.call("GET", "/v1/open-finance/consents")
    assert listed.status_code == 200, listed.text
    assert consent["name"] in [c["name"] for c in listed.json()["consents"]]


def test_authorisation_with_a_forged_state_is_refused(edge: EdgeClient, bank: Bank) -> None:
    app = app_for(edge)
    consent = app.create_consent().json()
    code, state = bank.authorise(consent)
    forged = app.authorise(consent["name"], code, "not-the-state-we-sent")
    assert forged.status_code in (400, 403), forged.text
    assert error_reason(forged), forged.text
    # The genuine redirect (the state the app sent) still completes it. (The
    # service may also learn the bank-side approval by itself, so the state in
    # between is not asserted.)
    genuine = app.authorise(consent["name"], code, state)
    assert genuine.status_code == 200, genuine.text
    assert genuine.json()["state"] == AUTHORISED


def test_revoked_consent_stops_every_read(edge: EdgeClient, bank: Bank) -> None:
    app = app_for(edge)
    consent = app.authorised_consent(bank)
    revoked = app.revoke(consent["name"])
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == REVOKED

    record = app.get_consent(consent["name"]).json()
    assert history_states(record) == [AWAITING, AUTHORISED, REVOKED]
    last = record["history"][-1]
    assert last["reason"], last  # e.g. CUSTOMER_MANUALLY_REVOKED (LGPD: why it ended)
    assert last["actor"] == "customer", last

    # Through the service: an import under a revoked consent is refused...
    reason = assert_refused(app.start_import(consent["name"]), what="import after revoke")
    assert "REVOKED" in reason or "NOT_AUTHORISED" in reason, reason
    # ...and at the bank: revocation reached the data holder, not just our table.
    assert bank.read_all(consent["consent_id"], None, None).status in (401, 403, 422)
    # Revoking again does not resurrect or re-record anything.
    again = app.revoke(consent["name"])
    assert again.status_code in (200, 400), again.text
    assert history_states(app.get_consent(consent["name"]).json()) == [
        AWAITING,
        AUTHORISED,
        REVOKED,
    ]


def test_expired_consent_stops_reads(edge: EdgeClient, bank: Bank) -> None:
    app = app_for(edge)
    lifetime = timedelta(seconds=6)
    consent = app.authorised_consent(bank, expire_in=lifetime)
    assert bank.read_all(consent["consent_id"], None, None).status == 200
    # Real time rather than the simulator's clock: the risk service and the bank
    # must both see the consent expire (advancing one clock would test neither).
    remaining = (parse_time(consent["expire_time"]) - datetime.now(UTC)).total_seconds()
    time.sleep(max(0.0, remaining) + 1.5)

    started = app.start_import(consent["name"])
    if started.status_code == 200:
        # Accepted as a workflow: it must then fail, saying why.
        finished, _ = app.wait_import(started.json()["name"], timeout_s=30)
        assert finished["state"] == FAILED, finished
        assert "EXPIRED" in finished["failure_reason"], finished
    else:
        reason = assert_refused(started, what="import after expiry")
        assert "EXPIRED" in reason or "NOT_AUTHORISED" in reason, reason
    assert bank.read_all(consent["consent_id"], None, None).status in (401, 403, 422)
    record = app.get_consent(consent["name"]).json()
    assert record["state"] == EXPIRED, record
    assert history_states(record)[-1] == EXPIRED


def test_a_user_cannot_see_or_use_another_users_consent(edge: EdgeClient, bank: Bank) -> None:
    owner = app_for(edge)
    consent = owner.authorised_consent(bank)
    other = app_for(edge)

    assert other.get_consent(consent["name"]).status_code == 403
    assert other.revoke(consent["name"]).status_code == 403
    assert other.start_import(consent["name"]).status_code == 403
    listed = other.call("GET", "/v1/open-finance/consents")
    assert listed.status_code == 200, listed.text
    assert consent["name"] not in [c["name"] for c in listed.json().get("consents", [])]
    # The owner's consent is untouched by the attempts.
    assert owner.get_consent(consent["name"]).json()["state"] == AUTHORISED
    # Nor can the other user follow the owner's import (it holds statement data).
    started = owner.start_import(consent["name"])
    assert started.status_code == 200, started.text
    peek = other.call("GET", f"/v1/open-finance/{started.json()['name']}")
    assert peek.status_code == 403, peek.text
