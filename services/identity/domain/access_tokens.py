"""The claims of an access token (signing happens in the adapter)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from services.identity.domain.refresh_tokens import ACCESS_TOKEN_TTL

MAX_ACCESS_TOKEN_TTL = timedelta(minutes=15)


def access_claims(
    *,
    user_id: str,
    session_id: str,
    roles: list[str],
    issuer: str,
    audience: str,
    now: datetime,
    ttl: timedelta = ACCESS_TOKEN_TTL,
) -> dict[str, object]:
    assert timedelta(0) < ttl <= MAX_ACCESS_TOKEN_TTL, "access tokens live at most 15 minutes"
    issued = int(now.timestamp())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "sid": session_id,
        "roles": sorted(roles),
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl.total_seconds()),
        "jti": str(uuid.uuid4()),
    }
