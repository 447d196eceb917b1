"""Refresh-token rotation with reuse detection (OAuth 2.0 Security BCP §4.14).

Each session holds exactly one live refresh token; using it yields a new one
and retires the old. Presenting a retired token means it was copied: the whole
session (the token family) is revoked, for the thief and the owner alike.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

REFRESH_TOKEN_TTL = timedelta(days=30)
ACCESS_TOKEN_TTL = timedelta(minutes=10)  # the issue caps it at 15 minutes
TOKEN_BYTES = 32


@dataclass(frozen=True)
class ParsedRefreshToken:
    session_id: str
    secret: str


def new_refresh_token(session_id: str) -> str:
    """`<session id>.<random>`: the id lets us find the session without a lookup index."""
    return f"{session_id}.{secrets.token_urlsafe(TOKEN_BYTES)}"


def parse_refresh_token(token: str) -> ParsedRefreshToken | None:
    session_id, sep, secret = token.strip().partition(".")
    if not sep or not session_id or len(secret) < TOKEN_BYTES or len(token) > 256:
        return None
    return ParsedRefreshToken(session_id=session_id, secret=secret)


def token_hash(token: str) -> str:
    """We store only this; a database leak yields no usable refresh token."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode()


class RefreshOutcome(enum.Enum):
    ROTATE = "rotate"
    REUSED = "reused"  # a retired token: revoke the family
    REVOKED = "revoked"  # the session was already revoked (logout, earlier reuse)
    EXPIRED = "expired"
    WRONG_DEVICE = "wrong_device"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SessionState:
    current_token_hash: str
    retired_token_hashes: frozenset[str]
    device_id: str
    expires_at: datetime
    revoked: bool


def decide_refresh(
    session: SessionState | None, presented_hash: str, device_id: str, now: datetime
) -> RefreshOutcome:
    if session is None:
        return RefreshOutcome.UNKNOWN
    if presented_hash in session.retired_token_hashes:
        # Checked before `revoked`: reuse on a revoked family is still reuse
        # and is reported as such (the answer is the same rejection).
        return RefreshOutcome.REUSED
    if not hmac.compare_digest(presented_hash, session.current_token_hash):
        return RefreshOutcome.UNKNOWN
    if session.revoked:
        return RefreshOutcome.REVOKED
    if now >= session.expires_at:
        return RefreshOutcome.EXPIRED
    if not hmac.compare_digest(device_id, session.device_id):
        # A token is bound to the device it was issued to.
        return RefreshOutcome.WRONG_DEVICE
    return RefreshOutcome.ROTATE
