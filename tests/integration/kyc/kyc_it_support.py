"""Helpers for the KYC integration tests and bench/kyc_completion.py.

Views of the system: the customer's app through Envoy (`KycApp`), a back-office
analyst through Envoy with role `backoffice`, the simulators' admin API
(`Sim`), and Postgres read directly as the admin role to count what the
service recorded (`Db`) — checks against the store, not the service's word.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from devstack.stack import Stack
from services.brazil.documents import cpf_check_digits
from simulators.govdocs.app import name_similarity
from simulators.receita.people import Person, person_for
from tests.integration.edge import EdgeClient, MobileApp, Session
from tests.support.tokens import mint_token

POLL_S = 0.2
TERMINAL = frozenset({"KYC_STATE_APPROVED", "KYC_STATE_DECLINED", "KYC_STATE_IN_REVIEW"})


def key() -> str:
    return uuid.uuid4().hex


def png_bytes(seed: bytes = b"") -> bytes:
    """A valid 2x2 PNG; `seed` goes into a text chunk so each test has its own bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x10\x20\x30" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", b"Comment\x00" + (seed or uuid.uuid4().hex.encode()))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(seed: str = "") -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R >> endobj\n"
        + f"% {seed or uuid.uuid4().hex}\n".encode()
        + b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_generated = iter(range(int(uuid.uuid4().int % 10**7) * 97, 10**9))


def generated_person() -> Person:
    """A fresh valid CPF whose simulated person is REGULAR (generated, not fixed)."""
    while True:
        body = f"{next(_generated) % 10**9:09d}"
        if len(set(body)) == 1:
            continue
        cpf = body + cpf_check_digits(body)
        person = person_for(cpf)
        if person is not None and person.situacao == "REGULAR" and not cpf.startswith("1000000"):
            return person


def partial_name(person: Person) -> str:
    """A spelling of the person's name that the gov check scores in [0.75, 0.90)."""
    words = person.nome.split()
    candidates = [
        " ".join(words[:-1]),
        " ".join([words[0], words[-1]]),
        " ".join(w[:-1] + "X" for w in words),
        " ".join(w[:-2] + "XX" for w in words),
        " ".join([*words[:-1], words[-1][::-1]]),
    ]
    for name in candidates:
        if 0.76 <= name_similarity(name, person.nome) < 0.89:
            return name
    raise AssertionError(f"no partial spelling of {person.nome}")


def customer(edge: EdgeClient, person: Person, full_name: str | None = None) -> Session:
    """The customer with this person's CPF, registered on first use."""
    return edge.returning_customer(
        f"kyc-it-{person.cpf}@example.com",
        cpf=person.cpf,
        full_name=(full_name or person.nome).title(),
        birth_date=person.data_nascimento.isoformat(),
    )


class KycApp(MobileApp):
    """The mobile app's KYC calls through Envoy, as one customer."""

    def upload(self, doc_type: str, content: bytes, number: str = "", **kw: Any) -> httpx.Response:
        document: dict[str, Any] = {"type": doc_type}
        if number:
            document["document_number"] = number
        return self.call(
            "POST",
            "/v1/kyc/documents",
            mutating=True,
            json={"document": document, "content": b64(content)},
            **kw,
        )

    def submit(self, documents: list[str], **kw: Any) -> httpx.Response:
        return self.call(
            "POST", "/v1/kyc/submissions", mutating=True, json={"documents": documents}, **kw
        )

    def submission(self, name: str) -> dict[str, Any]:
        got = self.call("GET", f"/v1/kyc/{name}")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    def status(self) -> dict[str, Any]:
        got = self.call("GET", "/v1/kyc/status")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    def me(self) -> dict[str, Any]:
        got = self.call("GET", "/v1/users/me")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    def wait_submission(
        self, name: str, states: frozenset[str] = TERMINAL, timeout_s: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            sub = self.submission(name)
            if sub["state"] in states:
                return sub
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} still {sub['state']} after {timeout_s}s: {sub}")
            time.sleep(POLL_S)

    def wait_kyc_status(self, status: str, timeout_s: float = 30.0) -> None:
        """identity's profile mirrors KYC through events: eventually."""
        deadline = time.monotonic() + timeout_s
        while (current := self.me()["kyc_status"]) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"identity kyc_status {current}, expected {status}")
            time.sleep(POLL_S)

    def identity_document(self, person: Person) -> str:
        up = self.upload("DOCUMENT_TYPE_CNH", png_bytes(), number=person.cnh)
        assert up.status_code == 200, up.text
        return str(up.json()["name"])


def backoffice_token(stack: Stack) -> str:
    return mint_token(stack.secrets_dir, ["backoffice"], subject=f"analyst-{uuid.uuid4().hex[:8]}")


MAX_QUEUE_PAGES = 50


def open_review_case(edge: EdgeClient, analyst: str, user: str) -> dict[str, Any] | None:
    """The customer's open case in the back office's review queue, or None."""
    path = "/v1/kyc/reviewCases?page_size=100"
    for _ in range(MAX_QUEUE_PAGES):
        queue = edge.request("GET", path, token=analyst)
        assert queue.status_code == 200, queue.text
        body = queue.json()
        mine = [c for c in body.get("review_cases", []) if c["user"] == user]
        if mine:
            assert len(mine) == 1, mine  # one submission in progress per customer
            return mine[0]
        if not body.get("next_page_token"):
            return None
        path = f"/v1/kyc/reviewCases?page_size=100&page_token={body['next_page_token']}"
    raise AssertionError(f"review queue longer than {MAX_QUEUE_PAGES} pages")


def decide_review(
    edge: EdgeClient, analyst: str, case_name: str, *, approve: bool, reason: str
) -> httpx.Response:
    verb = "approve" if approve else "decline"
    return edge.request(
        "POST",
        f"/v1/kyc/{case_name}:{verb}",
        token=analyst,
        idempotency_key=f"{verb}-{uuid.uuid4().hex}",
        json={"reason": reason},
    )


def submission_check(db: Db, submission: str, check: str) -> dict[str, Any]:
    """The evidence KYC stored for one check of `submissions/{id}`."""
    evidence = db.scalar(
        "SELECT evidence FROM kyc.submission_checks WHERE submission_id = %s AND check_type = %s",
        submission.removeprefix("submissions/"),
        check,
    )
    assert isinstance(evidence, dict), evidence
    return evidence


class Sim:
    """A provider simulator's admin API (faults)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def set_faults(self, **faults: Any) -> None:
        got = self.http.post("/__admin/faults", json=faults)
        assert got.status_code == 200, got.text

    def reset(self) -> None:
        self.set_faults()

    @contextmanager
    def faulty(self, **faults: Any) -> Iterator[None]:
        self.set_faults(**faults)
        try:
            yield
        finally:
            self.reset()


@dataclass
class Db:
    url: str

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, *params: Any) -> Any:
        found = self.rows(sql, *params)
        return found[0][0] if found else None

    def calls(
        self, provider: str, since_id: int, endpoint: str = ""
    ) -> list[tuple[int | None, str | None]]:
        """(status, error) of every recorded attempt to `provider` after row `since_id`."""
        return [
            (r[0], r[1])
            for r in self.rows(
                "SELECT status, error FROM kyc.third_party_calls WHERE provider = %s AND id > %s"
                " AND (%s = '' OR endpoint = %s) ORDER BY id",
                provider,
                since_id,
                endpoint,
                endpoint,
            )
        ]

    def last_call_id(self) -> int:
        return int(self.scalar("SELECT coalesce(max(id), 0) FROM kyc.third_party_calls"))
