"""Access-token verification, the auth interceptor and ownership/role helpers.

Tokens are ES256 JWTs from identity (CONVENTIONS "Auth"); keys come from the
JWKS file in FINTECH_SECRETS_DIR and are selected by `kid`. A session listed
under Redis `revoked:sid:<sid>` is rejected even when its token is still
within its 15-minute lifetime.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
import jwt
from redis.asyncio import Redis

from services.platform import errors
from services.platform.handlers import AroundInterceptor, Next, metadata_value
from services.platform.policy import PolicyLookup, policy_for

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
MAX_TOKEN_LIFETIME_SECONDS = 15 * 60
DEFAULT_LEEWAY_SECONDS = 5
MAX_TOKEN_CHARS = 8192
SERVICE_ROLE = "service"
REVOKED_SESSION_PREFIX = "revoked:sid:"
JWKS_RELOAD_MIN_INTERVAL_SECONDS = 5.0
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "iat", "exp", "jti")
# Tokens whose signature and claims were already checked, until they expire.
# A caller (a service token, an app session) sends the same token for minutes;
# checking its ECDSA signature once instead of on every call takes the check
# off the hot path. Bounded: the oldest entries go first.
VERIFIED_TOKEN_CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    session_id: str
    roles: frozenset[str]
    token_id: str = ""

    @property
    def is_service(self) -> bool:
        return SERVICE_ROLE in self.roles


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "fintech_principal", default=None
)


def current_principal() -> Principal:
    """The authenticated caller of the current RPC (UNAUTHENTICATED when none)."""
    principal = _principal.get()
    if principal is None:
        raise errors.unauthenticated(errors.TOKEN_MISSING, "authentication required")
    return principal


def optional_principal() -> Principal | None:
    return _principal.get()


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    """Bind a principal to the current context (the interceptor, workers and tests)."""
    return _principal.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _principal.reset(token)


def require_owner(user_id: str) -> Principal:
    """The caller must be `user_id` itself; services acting on a user's behalf pass too."""
    principal = current_principal()
    if principal.subject != user_id and not principal.is_service:
        # Same answer as for a missing resource owner: never confirm it exists.
        raise errors.permission_denied(errors.PERMISSION_DENIED, "not the owner of this resource")
    return principal


def require_role(*roles: str) -> Principal:
    assert roles, "require_role needs at least one role"
    principal = current_principal()
    if principal.roles.isdisjoint(roles):
        raise errors.permission_denied(errors.PERMISSION_DENIED, "missing required role")
    return principal


class Jwks:
    """The public keys of the JWKS file, reloaded (rate-limited) when a kid is unknown."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, Any] = {}
        self._loaded_at = float("-inf")
        self._load()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Jwks:
        jwks = cls.__new__(cls)
        jwks.path = Path("/nonexistent")
        jwks._loaded_at = float("inf")  # never reload a static set
        jwks._keys = _keys_from(data)
        return jwks

    def _load(self) -> None:
        self._loaded_at = time.monotonic()
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.error("cannot read JWKS %s: %s", self.path, exc)
            return
        self._keys = _keys_from(data)

    def key(self, kid: str) -> Any | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at >= JWKS_RELOAD_MIN_INTERVAL_SECONDS:
            self._load()
            key = self._keys.get(kid)
        return key


def _keys_from(data: Mapping[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for entry in data.get("keys", []):
        if entry.get("kty") != "EC" or "kid" not in entry:
            continue
        keys[entry["kid"]] = jwt.PyJWK.from_dict(entry, algorithm=ALGORITHM).key
    return keys


class RevocationList(Protocol):
    async def is_revoked(self, session_id: str) -> bool: ...


class RedisRevocationList:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self.redis.exists(REVOKED_SESSION_PREFIX + session_id))


def _is_service_session(principal: Principal) -> bool:
    """A service token's session is its service (service_token.py: sid = sub).

    Revocation is logout, and only a user session can log out: a service
    token is minted by our own process, lives SERVICE_TOKEN_LIFETIME_SECONDS
    and is refused at the edge. Skipping the revocation list for it saves a
    Redis round trip on every call between services (~8 % of the ledger's CPU
    under one transfer per request).
    """
    return principal.is_service and principal.session_id == principal.subject


class TokenVerifier:
    def __init__(
        self,
        jwks: Jwks,
        *,
        issuer: str,
        audience: str,
        revocations: RevocationList | None,
        leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        assert 0 <= leeway_seconds <= 60
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.revocations = revocations
        self.leeway = leeway_seconds
        # token → (kid, claims); see VERIFIED_TOKEN_CACHE_ENTRIES.
        self._verified: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        claims = self.decode(token)
        principal = Principal(
            subject=claims["sub"],
            session_id=claims["sid"],
            roles=frozenset(claims.get("roles") or ()),
            token_id=claims["jti"],
        )
        if self.revocations is not None and not _is_service_session(principal):
            try:
                revoked = await self.revocations.is_revoked(principal.session_id)
            except Exception as exc:
                # Fail closed: without the revocation list a logged-out token
                # would still work.
                log.error("revocation check failed: %s", type(exc).__name__)
                raise errors.unavailable(
                    errors.AUTH_UNAVAILABLE, "authentication temporarily unavailable"
                ) from exc
            if revoked:
                raise errors.unauthenticated(errors.TOKEN_REVOKED, "session revoked")
        return principal

    def decode(self, token: str) -> dict[str, Any]:
        """Signature, issuer, audience, expiry and claim-shape checks (no revocation)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise errors.unauthenticated(errors.TOKEN_INVALID, "invalid access token")
        remembered = self._verified.get(token)
        # The exact token string was verified before: same signature, same
        # claims. Still expire it on time and drop it once its key is retired.
        if remembered is not None:
            kid, claims = remembered
            if time.time() < claims["exp"] + self.leeway and self.jwks.key(kid) is not None:
                self._verified.move_to_end(token)
                return claims
            del self._verified[token]
        claims = self._decode(token)
        self._verified[token] = (str(jwt.get_unverified_header(token)["kid"]), claims)
        while len(self._verified) > VERIFIED_TOKEN_CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        invalid = errors.unauthenticated(errors.TOKEN_INVALID, "invalid access token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise invalid from exc
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise invalid
        key = self.jwks.key(header["kid"])
        if key is None:
            raise invalid
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise errors.unauthenticated(errors.TOKEN_EXPIRED, "access token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise invalid from exc
        if not _claims_well_formed(claims):
            raise invalid
        return claims


def _claims_well_formed(claims: Mapping[str, Any]) -> bool:
    roles = claims.get("roles", [])
    return (
        isinstance(claims["sub"], str)
        and bool(claims["sub"])
        and isinstance(claims["sid"], str)
        and bool(claims["sid"])
        and isinstance(roles, list)
        and all(isinstance(r, str) for r in roles)
        and isinstance(claims["iat"], int | float)
        and claims["exp"] - claims["iat"] <= MAX_TOKEN_LIFETIME_SECONDS
    )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AuthInterceptor(AroundInterceptor):
    """Authenticates every non-public RPC and enforces the method policy's roles."""

    def __init__(
        self, verifier: TokenVerifier | None, policy_lookup: PolicyLookup = policy_for
    ) -> None:
        self.verifier = verifier
        self.policy_lookup = policy_lookup

    async def around(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        call_next: Next,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        policy = self.policy_lookup(method)
        if policy.public:
            token = set_principal(None)
            try:
                return await call_next(request)
            finally:
                reset_principal(token)
        raw = bearer_token(metadata_value(context, "authorization"))
        if raw is None:
            raise errors.unauthenticated(errors.TOKEN_MISSING, "access token required")
        if self.verifier is None:
            raise errors.unauthenticated(errors.TOKEN_INVALID, "token verification not configured")
        principal = await self.verifier.verify(raw)
        if policy.internal and not principal.is_service:
            raise errors.permission_denied(errors.PERMISSION_DENIED, "internal method")
        if policy.roles and principal.roles.isdisjoint(policy.roles):
            raise errors.permission_denied(errors.PERMISSION_DENIED, "missing required role")
        token = set_principal(principal)
        try:
            return await call_next(request)
        finally:
            reset_principal(token)
