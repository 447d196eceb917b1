"""Service-to-service tokens: mint a short-lived `service` token and attach it.

The signing key is FINTECH_SECRETS_DIR/jwt_signing_key.pem; its `kid` is the
one whose public key in jwks.json matches, so receivers verify it with the
same TokenVerifier as user tokens.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.platform.auth import ALGORITHM, MAX_TOKEN_LIFETIME_SECONDS, SERVICE_ROLE
from services.platform.logs import request_id_var

SERVICE_TOKEN_LIFETIME_SECONDS = 5 * 60
REFRESH_BEFORE_EXPIRY_SECONDS = 60
assert SERVICE_TOKEN_LIFETIME_SECONDS <= MAX_TOKEN_LIFETIME_SECONDS


class ServiceTokenSigner:
    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        kid: str,
        *,
        service: str,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = private_key
        self.kid = kid
        self.service = service
        self.issuer = issuer
        self.audience = audience
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None

    @classmethod
    def from_files(
        cls, key_pem: Path, jwks_json: Path, *, service: str, issuer: str, audience: str
    ) -> ServiceTokenSigner:
        key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_pem} is not an EC private key")
        kid = kid_for_public_key(key.public_key(), json.loads(jwks_json.read_text()))
        return cls(key, kid, service=service, issuer=issuer, audience=audience)

    def token(self) -> str:
        """A cached token, re-minted a minute before it expires."""
        now = self._clock()
        with self._lock:
            if self._cached and self._cached[1] - REFRESH_BEFORE_EXPIRY_SECONDS > now:
                return self._cached[0]
            token = self.mint(now)
            self._cached = (token, now + SERVICE_TOKEN_LIFETIME_SECONDS)
            return token

    def mint(self, now: float | None = None) -> str:
        issued = int(self._clock() if now is None else now)
        subject = f"service:{self.service}"
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "sid": subject,
            "roles": [SERVICE_ROLE],
            "iat": issued,
            "exp": issued + SERVICE_TOKEN_LIFETIME_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


def kid_for_public_key(public_key: ec.EllipticCurvePublicKey, jwks: dict[str, Any]) -> str:
    numbers = public_key.public_numbers()
    for entry in jwks.get("keys", []):
        if entry.get("kty") != "EC" or "kid" not in entry:
            continue
        candidate = jwt.PyJWK.from_dict(entry, algorithm=ALGORITHM).key
        if candidate.public_numbers() == numbers:
            return str(entry["kid"])
    raise ValueError("the signing key's public key is not in the JWKS")


def _outgoing_metadata(metadata: Any, signer: ServiceTokenSigner) -> list[tuple[str, str | bytes]]:
    out = [(k, v) for k, v in (metadata or ()) if k != "authorization"]
    out.append(("authorization", f"Bearer {signer.token()}"))
    request_id = request_id_var.get()
    if request_id and not any(k == "x-request-id" for k, _ in out):
        out.append(("x-request-id", request_id))
    return out


def _with_metadata(details: grpc.aio.ClientCallDetails, metadata: Any) -> Any:
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=grpc.aio.Metadata(*metadata),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class ServiceTokenUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    """Attaches the service token (and the current request id) to outgoing calls."""

    def __init__(self, signer: ServiceTokenSigner) -> None:
        self.signer = signer

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def,override]
        metadata = _outgoing_metadata(client_call_details.metadata, self.signer)
        return await continuation(_with_metadata(client_call_details, metadata), request)


class ServiceTokenUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, signer: ServiceTokenSigner) -> None:
        self.signer = signer

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def,override]
        metadata = _outgoing_metadata(client_call_details.metadata, self.signer)
        return await continuation(_with_metadata(client_call_details, metadata), request)


def service_channel(target: str, signer: ServiceTokenSigner) -> grpc.aio.Channel:
    """An insecure (in-cluster) channel whose calls carry the service token."""
    return grpc.aio.insecure_channel(
        target,
        interceptors=[ServiceTokenUnaryUnary(signer), ServiceTokenUnaryStream(signer)],
    )
