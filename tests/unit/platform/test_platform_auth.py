"""Token verification, the auth interceptor and the ownership/role helpers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from google.protobuf import wrappers_pb2

from services.platform import errors
from services.platform.auth import (
    AuthInterceptor,
    Jwks,
    Principal,
    TokenVerifier,
    current_principal,
    require_owner,
    require_role,
    reset_principal,
    set_principal,
)
from services.platform.errors import AppError, details_from_rpc_error
from services.platform.policy import MethodPolicy, static_policies
from services.platform.server_interceptors import ErrorInterceptor
from services.platform.service_token import ServiceTokenSigner, kid_for_public_key
from tests.unit.platform.platform_unit_support import (
    AUDIENCE,
    ISSUER,
    SERVICE,
    KeyPair,
    jwks,
    start_server,
    stub,
)


class SetRevocations:
    def __init__(self, revoked: set[str] | None = None, broken: bool = False) -> None:
        self.revoked = revoked or set()
        self.broken = broken

    async def is_revoked(self, session_id: str) -> bool:
        if self.broken:
            raise ConnectionError("redis down")
        return session_id in self.revoked


KEY = KeyPair("k-current")
OTHER = KeyPair("k-other")


def verifier(revocations: SetRevocations | None = None) -> TokenVerifier:
    return TokenVerifier(
        Jwks.from_dict(jwks(KEY)),
        issuer=ISSUER,
        audience=AUDIENCE,
        revocations=revocations or SetRevocations(),
    )


async def reason_of(token: str, v: TokenVerifier | None = None) -> str:
    with pytest.raises(AppError) as exc:
        await (v or verifier()).verify(token)
    assert exc.value.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)
    return exc.value.reason


async def test_valid_token_gives_principal() -> None:
    principal = await verifier().verify(KEY.token(roles=["customer", "backoffice"]))
    assert principal.subject == "user-1" and principal.session_id == "session-1"
    assert principal.roles == frozenset({"customer", "backoffice"})


async def test_expired_token() -> None:
    now = int(time.time())
    assert await reason_of(KEY.token(iat=now - 900, exp=now - 60)) == errors.TOKEN_EXPIRED


async def test_small_leeway_accepts_just_expired_token() -> None:
    now = int(time.time())
    assert (await verifier().verify(KEY.token(iat=now - 600, exp=now - 2))).subject == "user-1"


async def test_tampered_token() -> None:
    header, _, signature = KEY.token().split(".")
    forged = json.dumps({"sub": "admin"}).encode()
    import base64

    bad_payload = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    assert await reason_of(f"{header}.{bad_payload}.{signature}") == errors.TOKEN_INVALID
    assert await reason_of("not-a-jwt") == errors.TOKEN_INVALID


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"sid": None},
        {"jti": None},
        {"exp": int(time.time()) + 3600},  # longer than 15 minutes
        {"roles": "admin"},
    ],
)
async def test_bad_claims_are_invalid(claims: dict[str, object]) -> None:
    assert await reason_of(KEY.token(**claims)) == errors.TOKEN_INVALID


async def test_unknown_kid_and_key_mismatch() -> None:
    assert await reason_of(OTHER.token()) == errors.TOKEN_INVALID
    # Right kid, wrong key: the signature does not verify.
    assert await reason_of(OTHER.token(kid=KEY.kid)) == errors.TOKEN_INVALID


async def test_revoked_session() -> None:
    v = verifier(SetRevocations({"session-1"}))
    assert await reason_of(KEY.token(), v) == errors.TOKEN_REVOKED
    assert (await v.verify(KEY.token(sid="session-2"))).session_id == "session-2"


async def test_revocation_store_down_fails_closed() -> None:
    assert (
        await reason_of(KEY.token(), verifier(SetRevocations(broken=True)))
        == errors.AUTH_UNAVAILABLE
    )


async def test_a_verified_token_is_remembered_but_still_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v = verifier()
    now = int(time.time())
    token = KEY.token(iat=now - 60, exp=now + 30)
    assert (await v.verify(token)).subject == "user-1"
    calls = []
    monkeypatch.setattr(v, "_decode", lambda t: calls.append(t) or {})
    assert (await v.verify(token)).subject == "user-1"
    assert calls == [], "the second call is answered without re-checking the signature"
    later = now + 30 + 6  # past exp and the 5 s leeway: the full check runs again
    monkeypatch.setattr(time, "time", lambda: float(later))
    with pytest.raises(KeyError):  # the stub's {} has no claims: it was called
        await v.verify(token)
    assert calls == [token]


async def test_remembered_tokens_do_not_vouch_for_other_strings() -> None:
    v = verifier()
    token = KEY.token()
    await v.verify(token)
    header, payload, _signature = token.split(".")
    # Same claims, another signature: not the remembered string, fully checked.
    other_signature = OTHER.token(kid=KEY.kid).split(".")[2]
    assert await reason_of(f"{header}.{payload}.{other_signature}", v) == errors.TOKEN_INVALID


async def test_remembered_token_is_dropped_when_its_key_is_retired() -> None:
    keys = jwks(KEY)
    v = TokenVerifier(
        Jwks.from_dict(keys), issuer=ISSUER, audience=AUDIENCE, revocations=SetRevocations()
    )
    token = KEY.token()
    await v.verify(token)
    v.jwks = Jwks.from_dict({"keys": []})  # the key was rotated out
    assert await reason_of(token, v) == errors.TOKEN_INVALID


async def test_revocation_is_checked_on_every_call_even_when_remembered() -> None:
    revocations = SetRevocations()
    v = verifier(revocations)
    token = KEY.token()
    await v.verify(token)
    revocations.revoked.add("session-1")  # logged out a moment later
    assert await reason_of(token, v) == errors.TOKEN_REVOKED


async def test_jwks_file_reloads_for_new_kid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(KEY)))
    keys = Jwks(path)
    assert keys.key(OTHER.kid) is None
    path.write_text(json.dumps(jwks(KEY, OTHER)))
    monkeypatch.setattr(keys, "_loaded_at", float("-inf"))
    assert keys.key(OTHER.kid) is not None


def test_require_owner_and_role() -> None:
    token = set_principal(Principal("user-1", "s", frozenset({"customer"})))
    try:
        assert require_owner("user-1").subject == "user-1"
        with pytest.raises(AppError) as denied:
            require_owner("user-2")
        assert denied.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert require_role("customer", "backoffice").subject == "user-1"
        with pytest.raises(AppError):
            require_role("backoffice")
    finally:
        reset_principal(token)
    with pytest.raises(AppError) as missing:
        current_principal()
    assert missing.value.reason == errors.TOKEN_MISSING


def test_service_token_signer_kid_matches_jwks(tmp_path: Path) -> None:
    pem = tmp_path / "jwt_signing_key.pem"
    pem.write_bytes(
        KEY.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    jwks_path = tmp_path / "jwks.json"
    jwks_path.write_text(json.dumps(jwks(OTHER, KEY)))
    signer = ServiceTokenSigner.from_files(
        pem, jwks_path, service="kyc", issuer=ISSUER, audience=AUDIENCE
    )
    assert signer.kid == KEY.kid
    assert signer.token() == signer.token()  # cached
    with pytest.raises(ValueError):
        kid_for_public_key(KEY.private.public_key(), jwks(OTHER))


async def test_service_token_verifies_with_service_role() -> None:
    signer = ServiceTokenSigner(
        KEY.private, KEY.kid, service="loans", issuer=ISSUER, audience=AUDIENCE
    )
    principal = await verifier().verify(signer.mint())
    assert principal.is_service and principal.subject == "service:loans"


async def test_a_service_token_skips_the_revocation_list_and_a_user_session_does_not() -> None:
    """Only user sessions can be revoked (logout): a service token's session is
    its service, so the list is not asked; with the list down, user tokens
    still fail closed, and a service-role token naming another session is checked."""
    down = verifier(SetRevocations(broken=True))
    signer = ServiceTokenSigner(
        KEY.private, KEY.kid, service="payments", issuer=ISSUER, audience=AUDIENCE
    )
    assert (await down.verify(signer.mint())).subject == "service:payments"
    assert await reason_of(KEY.token(), down) == errors.AUTH_UNAVAILABLE
    other_session = KEY.token(sub="service:payments", sid="session-9", roles=["service"])
    assert await reason_of(other_session, down) == errors.AUTH_UNAVAILABLE


POLICIES = static_policies(
    {
        f"/{SERVICE}/Public": MethodPolicy(public=True),
        f"/{SERVICE}/Admin": MethodPolicy(roles=frozenset({"backoffice"})),
        f"/{SERVICE}/Internal": MethodPolicy(internal=True),
    }
)


async def test_interceptor_enforces_policy_over_grpc() -> None:
    async def whoami(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        from services.platform.auth import optional_principal

        principal = optional_principal()
        return wrappers_pb2.StringValue(value=principal.subject if principal else "anonymous")

    revocations = SetRevocations({"revoked-session"})
    server, channel = await start_server(
        [ErrorInterceptor("unit.fintech.local"), AuthInterceptor(verifier(revocations), POLICIES)],
        {name: whoami for name in ("Echo", "Public", "Admin", "Internal")},
    )
    signer = ServiceTokenSigner(
        KEY.private, KEY.kid, service="loans", issuer=ISSUER, audience=AUDIENCE
    )

    async def call(method: str, token: str | None) -> str:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        try:
            reply = await stub(channel, method)(wrappers_pb2.StringValue(), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return str(details_from_rpc_error(exc).reason)
        return str(reply.value)

    try:
        assert await call("Public", None) == "anonymous"
        assert await call("Echo", None) == errors.TOKEN_MISSING
        assert await call("Echo", KEY.token()) == "user-1"
        assert await call("Echo", KEY.token(sid="revoked-session")) == errors.TOKEN_REVOKED
        assert await call("Echo", OTHER.token()) == errors.TOKEN_INVALID
        assert await call("Admin", KEY.token()) == errors.PERMISSION_DENIED
        assert await call("Admin", KEY.token(roles=["backoffice"])) == "user-1"
        assert await call("Internal", KEY.token()) == errors.PERMISSION_DENIED
        assert await call("Internal", signer.token()) == "service:loans"
    finally:
        await channel.close()
        await server.stop(None)
