"""A mobile-app-like HTTPS/JSON client of the edge, for integration tests.

Each client connects from its own loopback source address (127.0.0.0/8), so
per-address rate limits and lockouts of one test never leak into another —
the way distinct phones reach the real edge.
"""

from __future__ import annotations

import itertools
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from services.brazil.documents import cpf_check_digits

_source_addresses = itertools.count(2)
_cpf_bodies = itertools.count(int(uuid.uuid4().int % 10**8) * 10 + 1)
PASSWORD = "uma senha longa e boa"


def next_source_address() -> str:
    n = next(_source_addresses)
    assert n < 250 * 250, "ran out of loopback source addresses"
    return f"127.0.{n // 250}.{n % 250 + 2}"


def fresh_cpf() -> str:
    """A valid CPF nobody in this test run has used."""
    while True:
        body = f"{next(_cpf_bodies) % 10**9:09d}"
        if len(set(body)) > 1:
            return body + cpf_check_digits(body)


def new_user_body(**overrides: Any) -> dict[str, Any]:
    user = {
        "full_name": "Maria da Silva",
        "email": f"maria.{uuid.uuid4().hex[:12]}@example.com",
        "phone_number": "+5511987654321",
        "birth_date": "1990-05-17",
        "cpf": fresh_cpf(),
    }
    user.update(overrides)
    return {"user": user, "password": PASSWORD}


@dataclass
class Session:
    user_name: str
    access_token: str
    refresh_token: str
    device_id: str


def error_reason(response: httpx.Response) -> str | None:
    """ErrorInfo.reason from the google.rpc.Status JSON body Envoy returns."""
    try:
        body = response.json()
    except ValueError:
        return None
    for detail in body.get("details", []) if isinstance(body, dict) else []:
        if detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return str(detail.get("reason"))
    return None


def field_violations(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    found: dict[str, str] = {}
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.BadRequest"):
            for violation in detail.get("field_violations", detail.get("fieldViolations", [])):
                found[violation["field"]] = violation["description"]
    return found


class EdgeClient:
    def __init__(self, base_url: str, ca_file: str, source_address: str | None = None) -> None:
        tls = ssl.create_default_context(cafile=ca_file)
        self.http = httpx.Client(
            base_url=base_url,
            timeout=15.0,
            transport=httpx.HTTPTransport(
                verify=tls, local_address=source_address or next_source_address()
            ),
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["authorization"] = f"Bearer {token}"
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        return self.http.request(method, path, headers=headers, **kwargs)

    def register(
        self, body: dict[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        return self.request(
            "POST",
            "/v1/users",
            json=body or new_user_body(),
            idempotency_key=key or str(uuid.uuid4()),
        )

    def login(
        self,
        email: str,
        password: str = PASSWORD,
        device_id: str | None = None,
        totp_code: str = "",
    ) -> httpx.Response:
        return self.request(
            "POST",
            "/v1/auth/login",
            json={
                "email": email,
                "password": password,
                "device_id": device_id or uuid.uuid4().hex,
                "device_name": "Pixel 8",
                "totp_code": totp_code,
            },
        )

    def returning_customer(self, email: str, **overrides: Any) -> Session:
        """Log in the customer registered with `email`, registering it on first use.

        Test state survives between runs (a profile's database is kept) and a
        CPF registers once, so a second run logs in instead of registering.
        """
        created = self.register(new_user_body(email=email, **overrides))
        if created.status_code == 409:
            assert error_reason(created) in {"CPF_ALREADY_REGISTERED", "EMAIL_ALREADY_REGISTERED"}
        else:
            assert created.status_code == 200, created.text
        device = uuid.uuid4().hex
        login = self.login(email, device_id=device)
        assert login.status_code == 200, login.text
        tokens = login.json()
        me = self.request("GET", "/v1/users/me", token=tokens["access_token"])
        assert me.status_code == 200, me.text
        return Session(
            user_name=me.json()["name"],
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            device_id=device,
        )

    def signed_up(self, **overrides: Any) -> tuple[Session, dict[str, Any]]:
        """Register and log in a fresh user; returns its session and registration body."""
        body = new_user_body(**overrides)
        created = self.register(body)
        assert created.status_code == 200, created.text
        device = uuid.uuid4().hex
        login = self.login(body["user"]["email"], device_id=device)
        assert login.status_code == 200, login.text
        tokens = login.json()
        return Session(
            user_name=created.json()["name"],
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            device_id=device,
        ), body


class MobileApp:
    """The mobile app's calls through Envoy as one signed-in customer."""

    def __init__(self, edge: EdgeClient, session: Session) -> None:
        self.edge = edge
        self.session = session

    @property
    def user(self) -> str:
        return self.session.user_name

    def call(self, method: str, path: str, *, mutating: bool = False, **kw: Any) -> httpx.Response:
        """A fresh idempotency key per mutating call unless `idempotency_key` is given."""
        return self.edge.request(
            method,
            path,
            token=self.session.access_token,
            idempotency_key=kw.pop("idempotency_key", uuid.uuid4().hex if mutating else None),
            **kw,
        )
