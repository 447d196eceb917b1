"""Bad input through Envoy: a clear 4xx with a reason, and nothing stored half-way."""

from __future__ import annotations

import uuid

import pytest

from simulators.receita.people import Person
from tests.integration.edge import EdgeClient, error_reason, field_violations
from tests.integration.kyc.kyc_it_support import (
    Db,
    KycApp,
    customer,
    generated_person,
    pdf_bytes,
    png_bytes,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def person() -> Person:
    return generated_person()


@pytest.fixture
def app(edge: EdgeClient, person: Person) -> KycApp:
    return KycApp(edge, customer(edge, person))


def documents_of(db: Db, app: KycApp) -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM kyc.documents WHERE user_id = %s",
            app.user.removeprefix("users/"),
        )
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "EMPTY_FILE"),
        (b"just some text named cnh.pdf", "UNSUPPORTED_FILE_TYPE"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "UNSUPPORTED_FILE_TYPE"),
        (pdf_bytes()[:-8], "CORRUPTED_FILE"),
        (b"%PDF-1.7\n%%EOF\n", "CORRUPTED_FILE"),
        (png_bytes()[:30], "CORRUPTED_FILE"),
    ],
)
def test_rejected_files(app: KycApp, db: Db, content: bytes, reason: str) -> None:
    got = app.upload("DOCUMENT_TYPE_PROOF_OF_ADDRESS", content)
    assert got.status_code == 400, got.text
    assert error_reason(got) == reason
    assert "content" in field_violations(got)
    assert documents_of(db, app) == 0


def test_oversize_file(app: KycApp, db: Db) -> None:
    big = pdf_bytes() + b"\x00" * (10 * 1024 * 1024)
    got = app.upload("DOCUMENT_TYPE_PROOF_OF_ADDRESS", big)
    # Envoy or the service refuses it; either way a 4xx and nothing stored.
    assert 400 <= got.status_code < 500, got.status_code
    assert documents_of(db, app) == 0


def test_document_fields(app: KycApp, person: Person, db: Db) -> None:
    no_type = app.upload("DOCUMENT_TYPE_UNSPECIFIED", png_bytes())
    assert no_type.status_code == 400 and "document.type" in field_violations(no_type)
    no_number = app.upload("DOCUMENT_TYPE_CNH", png_bytes())
    assert error_reason(no_number) == "DOCUMENT_NUMBER_REQUIRED"
    bad_number = app.upload("DOCUMENT_TYPE_CNH", png_bytes(), number="12ab")
    assert error_reason(bad_number) == "DOCUMENT_NUMBER_INVALID"
    no_key = app.edge.request(
        "POST",
        "/v1/kyc/documents",
        token=app.session.access_token,
        json={"document": {"type": "DOCUMENT_TYPE_RG", "document_number": person.rg}},
    )
    assert no_key.status_code == 400 and error_reason(no_key) == "IDEMPOTENCY_KEY_REQUIRED"
    assert documents_of(db, app) == 0


def test_upload_dedup_versions_and_ownership(
    edge: EdgeClient, app: KycApp, person: Person, db: Db
) -> None:
    content = pdf_bytes()
    first = app.upload("DOCUMENT_TYPE_PROOF_OF_ADDRESS", content)
    assert first.status_code == 200, first.text
    doc = first.json()
    assert doc["content_type"] == "application/pdf" and doc["version"] == 1
    assert int(doc["size_bytes"]) == len(content) and len(doc["sha256"]) == 64
    # The same bytes (another request): the same document.
    again = app.upload("DOCUMENT_TYPE_PROOF_OF_ADDRESS", content)
    assert again.status_code == 200 and again.json()["name"] == doc["name"]
    second = app.upload("DOCUMENT_TYPE_PROOF_OF_ADDRESS", pdf_bytes())
    assert second.json()["version"] == 2
    assert documents_of(db, app) == 2
    # At rest: the object key is random and the row holds no bytes.
    key = db.scalar("SELECT object_key FROM kyc.documents WHERE id = %s", doc["name"].split("/")[1])
    assert key.startswith("documents/") and person.cpf not in key

    other = KycApp(edge, customer(edge, generated_person()))
    assert other.call("GET", f"/v1/kyc/{doc['name']}").status_code == 404
    cnh = other.identity_document(generated_person())
    stolen = other.submit([cnh, doc["name"]])
    assert stolen.status_code == 404 and error_reason(stolen) == "DOCUMENT_NOT_FOUND"
    listed = app.call("GET", "/v1/kyc/documents?page_size=1")
    assert listed.status_code == 200 and len(listed.json()["documents"]) == 1
    assert listed.json()["next_page_token"]


def test_bad_submissions(app: KycApp, person: Person, db: Db) -> None:
    empty = app.submit([])
    assert empty.status_code == 400 and error_reason(empty) == "DOCUMENTS_REQUIRED"
    assert "submission.documents" in field_violations(empty)
    malformed = app.submit(["documents/not-a-uuid"])
    assert malformed.status_code == 400 and error_reason(malformed) == "NAME_INVALID"
    missing = app.submit([f"documents/{uuid.uuid4()}"])
    assert missing.status_code == 404 and error_reason(missing) == "DOCUMENT_NOT_FOUND"
    proof = app.upload("DOCUMENT_TYPE_PROOF_OF_ADDRESS", png_bytes()).json()["name"]
    only_proof = app.submit([proof])
    assert error_reason(only_proof) == "IDENTITY_DOCUMENT_REQUIRED"
    user_id = app.user.removeprefix("users/")
    assert db.scalar("SELECT count(*) FROM kyc.submissions WHERE user_id = %s", user_id) == 0
    assert app.status()["state"] == "KYC_STATE_NOT_STARTED"
