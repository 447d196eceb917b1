"""Every HTTP rule is routed by the real Envoy; JWT and validation behave at the edge.

Tokens are minted here with the stack's generated signing key.
"""

from __future__ import annotations

import re
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.contract import HttpBinding, Rpc, edge_rpcs, load_rpcs
from devstack.edge import AUTH_LIMIT_PER_MINUTE, DESCRIPTOR_SET
from devstack.stack import JWT_AUDIENCE, JWT_ISSUER, Stack

pytestmark = pytest.mark.integration


def _tls(stack: Stack) -> ssl.SSLContext:
    """Trust exactly the stack's generated dev CA."""
    return ssl.create_default_context(cafile=str(stack.ca_file))


_VAR = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")
# Answered by Envoy itself: the route or the method was not found.
ENVOY_NOT_ROUTED = "Could not resolve"
UPSTREAM_HEADER = "x-envoy-upstream-service-time"
EDGE_DOMAIN = "edge.fintech.local"


def _status(resp: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    """(code, ErrorInfo reason, body) of a google.rpc.Status JSON error body."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.text
    body = resp.json()
    info = [d for d in body.get("details", []) if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert len(info) == 1, body
    return body["code"], info[0]["reason"], body


def concrete_path(template: str) -> str:
    """An HttpRule path template with every variable filled (`users/*` -> `users/x1`)."""

    def fill(m: re.Match[str]) -> str:
        pattern = m.group(2) or "*"
        return pattern.replace("**", "x1/x2").replace("*", "x1")

    return _VAR.sub(fill, template)


def mint(stack: Stack, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "roles": ["user"],
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    key = (stack.secrets_dir / "jwt_signing_key.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": stack.infra.secrets.jwt_kid})


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.https_url, verify=_tls(stack), timeout=15) as c:
        yield c


def _bindings() -> list[tuple[Rpc, HttpBinding]]:
    return [(r, b) for r in edge_rpcs(load_rpcs(DESCRIPTOR_SET)) for b in r.http]


def _request(client: httpx.Client, binding: HttpBinding, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    path = concrete_path(binding.path)
    if binding.body:
        return client.request(binding.verb, path, json={}, headers=headers)
    return client.request(binding.verb, path, headers=headers)


@pytest.mark.parametrize(
    ("rpc", "binding"),
    _bindings(),
    ids=lambda v: v.grpc_path if isinstance(v, Rpc) else f"{v.verb} {v.path}",
)
def test_every_http_rule_reaches_its_service(
    stack: Stack, client: httpx.Client, rpc: Rpc, binding: HttpBinding
) -> None:
    token = None if rpc.public else mint(stack)
    resp = _request(client, binding, token)
    assert ENVOY_NOT_ROUTED not in resp.text, resp.text
    # The router forwarded it and the service answered (any status of its own).
    assert UPSTREAM_HEADER in resp.headers, (resp.status_code, resp.text)
    assert resp.status_code != 401, resp.text


@pytest.mark.parametrize(
    ("rpc", "binding"),
    [(r, b) for r, b in _bindings() if not r.public],
    ids=lambda v: v.grpc_path if isinstance(v, Rpc) else f"{v.verb} {v.path}",
)
def test_protected_rules_need_a_token(client: httpx.Client, rpc: Rpc, binding: HttpBinding) -> None:
    resp = _request(client, binding, None)
    assert resp.status_code == 401
    assert UPSTREAM_HEADER not in resp.headers
    # Envoy's own reply is a google.rpc.Status like the services' errors.
    assert resp.json() == {
        "code": 16,
        "message": "Jwt is missing",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "TOKEN_MISSING",
                "domain": EDGE_DOMAIN,
                "metadata": {"cause": "jwt_authn_access_denied{Jwt_is_missing}"},
            }
        ],
    }


def _protected_get(stack: Stack) -> str:
    for rpc, binding in _bindings():
        if not rpc.public and binding.verb == "GET":
            return concrete_path(binding.path)
    raise AssertionError("no protected GET rule in the contract")


def test_unknown_path_is_404(client: httpx.Client) -> None:
    resp = client.get("/v1/definitely-not-an-api", headers={"authorization": "Bearer x"})
    assert resp.status_code == 404
    assert UPSTREAM_HEADER not in resp.headers
    assert _status(resp)[:2] == (5, "NOT_FOUND")


def test_internal_methods_are_not_reachable(stack: Stack, client: httpx.Client) -> None:
    internal = [r for r in load_rpcs(DESCRIPTOR_SET) if r.internal]
    assert internal, "the contract has no internal RPC to check"
    for rpc in internal:
        resp = client.post(
            rpc.grpc_path,
            content=b"",
            headers={"authorization": f"Bearer {mint(stack, roles=['service'])}"},
        )
        assert resp.status_code == 404, rpc.grpc_path
        assert UPSTREAM_HEADER not in resp.headers
        assert _status(resp)[:2] == (5, "NOT_FOUND"), rpc.grpc_path


def test_unknown_query_parameter_is_400(stack: Stack, client: httpx.Client) -> None:
    path = _protected_get(stack)
    resp = client.get(
        path, params={"no_such_param": "1"}, headers={"authorization": f"Bearer {mint(stack)}"}
    )
    assert resp.status_code == 400, resp.text
    assert UPSTREAM_HEADER not in resp.headers
    assert _status(resp)[:2] == (3, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    "case",
    ["tampered", "expired", "wrong_audience", "wrong_issuer", "foreign_key", "too_long_lived"],
)
def test_bad_tokens_are_rejected_at_the_edge(stack: Stack, client: httpx.Client, case: str) -> None:
    now = int(time.time())
    if case == "tampered":
        header, payload, sig = mint(stack).split(".")
        forged = jwt.utils.base64url_encode(
            jwt.utils.base64url_decode(payload).replace(b'"user"', b'"backoffice"')
        ).decode()
        token = f"{header}.{forged}.{sig}"
    elif case == "expired":
        token = mint(stack, iat=now - 1200, exp=now - 300)
    elif case == "wrong_audience":
        token = mint(stack, aud="someone-else")
    elif case == "wrong_issuer":
        token = mint(stack, iss="https://evil.example")
    elif case == "foreign_key":
        other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        claims = jwt.decode(mint(stack), options={"verify_signature": False})
        token = jwt.encode(
            claims, other, algorithm="ES256", headers={"kid": stack.infra.secrets.jwt_kid}
        )
    else:
        token = mint(stack, exp=now + 3600)  # CONVENTIONS: access tokens live <= 15 min
    resp = client.get(_protected_get(stack), headers={"authorization": f"Bearer {token}"})
    assert resp.status_code == 401, (case, resp.text)
    # The edge's reply or the service's: the same shape, a reason a client acts on.
    code, reason, _ = _status(resp)
    assert (code, reason) == (16, "TOKEN_EXPIRED" if case == "expired" else "TOKEN_INVALID")
    assert UPSTREAM_HEADER not in resp.headers


def test_credential_endpoints_are_rate_limited_per_address(stack: Stack) -> None:
    credential = [
        b
        for r, b in _bindings()
        if r.public and r.package == "fintech.identity.v1" and b.verb == "POST"
    ]
    assert credential
    binding = credential[0]
    limit = AUTH_LIMIT_PER_MINUTE["test"]
    # A source address of its own, so this burst uses (and exhausts) a fresh bucket.
    transport = httpx.HTTPTransport(verify=_tls(stack), local_address="127.0.0.77")
    statuses: list[int] = []
    with httpx.Client(base_url=stack.https_url, transport=transport, timeout=15) as burst:
        for _ in range(2 * limit + 5):
            last = burst.post(concrete_path(binding.path), json={})
            statuses.append(last.status_code)
            if statuses[-1] == 429:
                break
    assert statuses[-1] == 429, statuses
    assert _status(last)[:2] == (8, "RATE_LIMITED")
    # Fixed windows: a burst straddling a minute boundary may get up to 2x through.
    assert limit <= len(statuses) - 1 <= 2 * limit, len(statuses)
    # Another address is not affected.
    with httpx.Client(base_url=stack.https_url, verify=_tls(stack), timeout=15) as other:
        assert other.post(concrete_path(binding.path), json={}).status_code != 429
