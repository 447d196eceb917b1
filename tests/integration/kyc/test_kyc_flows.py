"""KYC end to end through Envoy with the real stack and the provider simulators:
each decision path, identity's mirror of the status, the review desk."""

from __future__ import annotations

import httpx
import pytest

from devstack.stack import Stack
from simulators.receita.people import FIXED
from tests.integration.edge import EdgeClient, error_reason
from tests.integration.kyc.kyc_it_support import (
    Db,
    KycApp,
    Sim,
    backoffice_token,
    customer,
    generated_person,
    partial_name,
    png_bytes,
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
    queue = edge.request("GET", "/v1/kyc/reviewCases?page_size=100", token=analyst)
    assert queue.status_code == 200, queue.text
    cases = [c for c in queue.json().get("review_cases", []) if c["user"] == app.user]
    while not cases and queue.json().get("next_page_token"):
        token = queue.json()["next_page_token"]
        queue = edge.request(
            "GET", f"/v1/kyc/reviewCases?page_size=100&page_token={token}", token=analyst
        )
        cases = [c for c in queue.json().get("review_cases", []) if c["user"] == app.user]
    assert len(cases) == 1, queue.json()
    case_name = cases[0]["name"]
    assert cases[0]["review_reasons"] == ["NAME_PARTIAL_MATCH"]

    case = edge.request("GET", f"/v1/kyc/{case_name}", token=analyst)
    assert case.status_code == 200, case.text
    views = case.json()["documents"]
    assert len(views) == 1
    # The signed link serves the original bytes; the stored object is ciphertext.
    fetched = httpx.get(views[0]["download_uri"], timeout=10.0)
    assert fetched.status_code == 200 and fetched.content == content
    unsigned = httpx.get(views[0]["download_uri"].split("?")[0], timeout=10.0)
    assert unsigned.status_code in (401, 403)

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
