"""KYC end to end through Envoy with the real stack and the provider simulators:
each decision path, identity's mirror of the status, the review desk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from devstack.stack import Stack
from services.kyc.domain.rules import SANCTIONS_CERTAIN
from services.kyc.objectstore import Credentials, presigned_get_url
from services.kyc.service import VIEW_URL_SECONDS
from simulators.receita.people import FIXED, PEP_CPF, SANCTIONED_CPF, Person
from tests.integration.edge import EdgeClient, error_reason
from tests.integration.kyc.kyc_it_support import (
    Db,
    KycApp,
    Sim,
    backoffice_token,
    customer,
    decide_review,
    generated_person,
    open_review_case,
    partial_name,
    png_bytes,
    submission_check,
)

pytestmark = pytest.mark.integration


def test_approved_path(edge: EdgeClient, db: Db, sims: dict[str, Sim]) -> None:
    person = generated_person()
    app = KycApp(edge, customer(edge, person))
    assert app.status()["state"] == "KYC_STATE_NOT_STARTED"
    assert app.status()["missing_documents"] == ["DOCUMENT_TYPE_CNH"]
    doc = app.identity_document(person)
    since = db.last_call_id()
    created = app.submit([doc])
    assert created.status_code == 200, created.text
    sub = created.json()
    assert sub["state"] in ("KYC_STATE_PENDING", "KYC_STATE_APPROVED")
    done = app.wait_submission(sub["name"])
    assert done["state"] == "KYC_STATE_APPROVED", done
    assert [c["state"] for c in done["checks"]] == ["CHECK_STATE_PASSED"] * 4
    assert app.status()["state"] == "KYC_STATE_APPROVED"
    assert app.status()["missing_documents"] == []
    app.wait_kyc_status("KYC_STATUS_APPROVED")
    sub_id = sub["name"].removeprefix("submissions/")
    assert db.scalar("SELECT outcome FROM kyc.kyc_results WHERE submission_id = %s", sub_id) == (
        "APPROVED"
    )
    # One answered call per provider (plus the OAuth token, at most once).
    assert [s for s, _ in db.calls("receita", since)] == [200]
    assert [s for s, _ in db.calls("bureau", since)] == [200]
    assert db.calls("govdocs", since).count((200, None)) in (1, 2)
    # The call records hold no PII.
    records = db.rows(
        "SELECT coalesce(request, '') || coalesce(response, '') FROM kyc.third_party_calls"
        " WHERE id > %s",
        since,
    )
    text = " ".join(r[0] for r in records)
    for secret in (person.cpf, person.nome, person.cnh, person.data_nascimento.isoformat()):
        assert secret not in text


@pytest.mark.parametrize(
    ("cpf", "reason"),
    [("10000000108", "CPF_SUSPENDED"), ("10000000361", "CPF_HOLDER_DECEASED")],
)
def test_declined_path(edge: EdgeClient, db: Db, cpf: str, reason: str) -> None:
    person = FIXED[cpf]
    app = KycApp(edge, customer(edge, person))
    doc = app.identity_document(person)
    since = db.last_call_id()
    created = app.submit([doc])
    assert created.status_code == 200, created.text
    done = app.wait_submission(created.json()["name"])
    assert done["state"] == "KYC_STATE_DECLINED", done
    assert done["decline_reasons"] == [reason]
    states = {c["type"]: c["state"] for c in done["checks"]}
    assert states["CHECK_TYPE_CPF_SITUATION"] == "CHECK_STATE_FAILED"
    # Stopped at the CPF: the other providers were never asked.
    assert db.calls("govdocs", since) == [] and db.calls("bureau", since) == []
    status = app.status()
    assert status["state"] == "KYC_STATE_DECLINED" and status["decline_reasons"] == [reason]
    app.wait_kyc_status("KYC_STATUS_DECLINED")


def test_review_path_and_backoffice(edge: EdgeClient, stack: Stack, db: Db) -> None:
    person = generated_person()
    # Registered under a spelling the gov check only half matches.
    app = KycApp(edge, customer(edge, person, full_name=partial_name(person)))
    content = png_bytes()
    up = app.upload("DOCUMENT_TYPE_CNH", content, number=person.cnh)
    assert up.status_code == 200, up.text
    created = app.submit([up.json()["name"]])
    assert created.status_code == 200, created.text
    done = app.wait_submission(created.json()["name"])
    assert done["state"] == "KYC_STATE_IN_REVIEW", done
    app.wait_kyc_status("KYC_STATUS_IN_REVIEW")
    # A second submission while a human reviews is refused.
    again = app.submit([up.json()["name"]])
    assert again.status_code == 400 and error_reason(again) == "SUBMISSION_IN_PROGRESS"

    # The customer is no analyst.
    denied = app.call("GET", "/v1/kyc/reviewCases")
    assert denied.status_code == 403, denied.text

    analyst = backoffice_token(stack)
    found = open_review_case(edge, analyst, app.user)
    assert found is not None
    case_name = found["name"]
    assert found["review_reasons"] == ["NAME_PARTIAL_MATCH"]

    case = edge.request("GET", f"/v1/kyc/{case_name}", token=analyst)
    assert case.status_code == 200, case.text
    views = case.json()["documents"]
    assert len(views) == 1
    # The signed link serves the original bytes; the stored object is ciphertext.
    fetched = httpx.get(views[0]["download_uri"], timeout=10.0)
    assert fetched.status_code == 200 and fetched.content == content
    unsigned = httpx.get(views[0]["download_uri"].split("?")[0], timeout=10.0)
    assert unsigned.status_code in (401, 403)
    expired_link_is_refused(stack, views[0])

    no_reason = edge.request(
        "POST", f"/v1/kyc/{case_name}:approve", token=analyst, idempotency_key="k" * 20, json={}
    )
    assert no_reason.status_code == 400 and error_reason(no_reason) == "REASON_REQUIRED"
    approved = edge.request(
        "POST",
        f"/v1/kyc/{case_name}:approve",
        token=analyst,
        idempotency_key=f"approve-{case_name[-12:]}",
        json={"reason": "CNH photo checked: name abbreviated on registration"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "REVIEW_STATE_APPROVED"
    assert approved.json()["decided_by"].startswith("analyst-")
    twice = edge.request(
        "POST",
        f"/v1/kyc/{case_name}:decline",
        token=analyst,
        idempotency_key="another-key-1234",
        json={"reason": "changed my mind"},
    )
    assert twice.status_code == 400 and error_reason(twice) == "REVIEW_CASE_ALREADY_DECIDED"
    assert app.submission(created.json()["name"])["state"] == "KYC_STATE_APPROVED"
    app.wait_kyc_status("KYC_STATUS_APPROVED")
    case_id = case_name.removeprefix("reviewCases/")
    actions = [
        r[0]
        for r in db.rows(
            "SELECT action FROM kyc.audit_logs WHERE entity = 'review_case' AND entity_id = %s"
            " ORDER BY id",
            case_id,
        )
    ]
    assert actions == ["viewed", "approved"]


def expired_link_is_refused(stack: Stack, view: dict[str, Any]) -> None:
    """The reviewer's link lives VIEW_URL_SECONDS; past that the store refuses it.

    Rather than wait five minutes, the same view is signed again by the
    service's own signing function with a clock VIEW_URL_SECONDS + 1 s in the
    past; signed now with the same credentials it is served (so the refusal is
    the expiry, not a bad signature)."""
    link = urlsplit(view["download_uri"])
    query = dict(parse_qsl(link.query))
    assert query["X-Amz-Expires"] == str(VIEW_URL_SECONDS)
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expire_at = datetime.fromisoformat(view["expire_time"].replace("Z", "+00:00"))
    assert abs((expire_at - signed_at).total_seconds() - VIEW_URL_SECONDS) <= 2
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60

    endpoint = f"{link.scheme}://{link.netloc}"
    creds = Credentials.from_file(stack.secrets_dir / "s3_credentials.json")
    path = unquote(link.path)
    now = datetime.now(UTC)
    fresh = httpx.get(presigned_get_url(endpoint, path, creds, VIEW_URL_SECONDS, now), timeout=10)
    assert fresh.status_code == 200, fresh.text
    past = now - timedelta(seconds=VIEW_URL_SECONDS + 1)
    stale = httpx.get(presigned_get_url(endpoint, path, creds, VIEW_URL_SECONDS, past), timeout=10)
    assert stale.status_code == 403, (stale.status_code, stale.text)
    assert "AccessDenied" in stale.text and "expired" in stale.text.lower(), stale.text


def _screened(app: KycApp, person: Person) -> dict[str, Any]:
    doc = app.identity_document(person)
    created = app.submit([doc])
    assert created.status_code == 200, created.text
    done = app.wait_submission(created.json()["name"])
    checks = {c["type"]: (c["state"], c["reason"]) for c in done["checks"]}
    # Only the screening stands in the way: the CPF, document and bureau pass.
    assert {t: s for t, (s, _) in checks.items() if t != "CHECK_TYPE_SCREENING"} == {
        "CHECK_TYPE_CPF_SITUATION": "CHECK_STATE_PASSED",
        "CHECK_TYPE_DOCUMENT": "CHECK_STATE_PASSED",
        "CHECK_TYPE_BUREAU": "CHECK_STATE_PASSED",
    }, done
    return done


def test_sanctioned_name_is_declined(edge: EdgeClient, stack: Stack, db: Db) -> None:
    # Receita's record carries the name and birth date of a real OFAC SDN entry.
    person = FIXED[SANCTIONED_CPF]
    app = KycApp(edge, customer(edge, person))
    done = _screened(app, person)
    assert done["state"] == "KYC_STATE_DECLINED", done
    assert done["decline_reasons"] == ["SANCTIONS_MATCH"]
    screening = {c["type"]: c for c in done["checks"]}["CHECK_TYPE_SCREENING"]
    assert (screening["state"], screening["reason"]) == ("CHECK_STATE_FAILED", "SANCTIONS_MATCH")
    app.wait_kyc_status("KYC_STATUS_DECLINED")
    # The matched entry is recorded: SDN entry 4149 by its primary name, birth date matching.
    hit = submission_check(db, done["name"], "SCREENING")["hits"][0]
    assert (hit["list"], hit["entry_id"], hit["matched_name"], hit["dob_match"]) == (
        "ofac-sdn",
        "4149",
        "CAVIEDES CRUZ, Leonardo",
        True,
    )
    assert float(hit["score"]) >= SANCTIONS_CERTAIN
    # A certain sanctions match is declined outright: nothing waits for a human.
    assert open_review_case(edge, backoffice_token(stack), app.user) is None


def test_pep_goes_to_human_review(edge: EdgeClient, stack: Stack, db: Db) -> None:
    person = FIXED[PEP_CPF]
    app = KycApp(edge, customer(edge, person))
    analyst = backoffice_token(stack)
    # A run interrupted mid-test leaves this fixed customer's case open: close it.
    left = open_review_case(edge, analyst, app.user)
    if left is not None:
        closed = decide_review(edge, analyst, left["name"], approve=False, reason="left by a run")
        assert closed.status_code == 200, closed.text
    done = _screened(app, person)
    assert done["state"] == "KYC_STATE_IN_REVIEW", done
    screening = {c["type"]: c for c in done["checks"]}["CHECK_TYPE_SCREENING"]
    assert (screening["state"], screening["reason"]) == ("CHECK_STATE_NEEDS_REVIEW", "PEP_MATCH")
    app.wait_kyc_status("KYC_STATUS_IN_REVIEW")

    case = open_review_case(edge, analyst, app.user)
    assert case is not None and case["submission"] == done["name"]
    assert case["review_reasons"] == ["PEP_MATCH"]
    [hit] = case["screening_hits"]
    assert (hit["list"], hit["matched_name"]) == ("br-pep", "ARISTIDES QUINTELA DE VASCONCELOS")
    reason = "PEP onboarding not approved by compliance"
    declined = decide_review(edge, analyst, case["name"], approve=False, reason=reason)
    assert declined.status_code == 200, declined.text
    assert app.submission(done["name"])["state"] == "KYC_STATE_DECLINED"
    app.wait_kyc_status("KYC_STATUS_DECLINED")
