"""Access tokens for tests, signed with the stack's generated dev key.

Tokens carry exactly the claims identity issues (docs/CONVENTIONS.md "Auth"),
so every service and Envoy accept them; the roles make a caller a user, a
backoffice operator or a service.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import jwt

from services.platform.settings import DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER

DEFAULT_LIFETIME_S = 300


def mint_token(
    secrets_dir: Path,
    roles: Sequence[str],
    *,
    subject: str | None = None,
    lifetime_s: int = DEFAULT_LIFETIME_S,
) -> str:
    jwks = json.loads((secrets_dir / "jwks.json").read_text())
    now = int(time.time())
    claims = {
        "iss": DEFAULT_JWT_ISSUER,
        "aud": DEFAULT_JWT_AUDIENCE,
        "sub": subject or str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "roles": list(roles),
        "iat": now,
        "exp": now + lifetime_s,
        "jti": str(uuid.uuid4()),
    }
    key = (secrets_dir / "jwt_signing_key.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": jwks["keys"][0]["kid"]})
