"""Signs access tokens with the ES256 key from the secrets directory.

The dev stack generates the key pair at start-up (never committed) and writes
the public half as jwks.json for Envoy and every service. The `kid` put in
each token is the one jwks.json publishes for this key (an RFC 7638
thumbprint), so a rotated key gets a new kid without coordination.
"""

from __future__ import annotations

import json
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.platform.service_token import kid_for_public_key


class TokenSigner:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey, jwks_json: str) -> None:
        assert isinstance(private_key.curve, ec.SECP256R1), "ES256 needs a P-256 key"
        self._key = private_key
        # Raises when the key is not published: a token signed with it would be
        # rejected by Envoy and every service, so refuse to start instead.
        self.kid = kid_for_public_key(private_key.public_key(), json.loads(jwks_json))
        self.jwks_json = jwks_json

    @classmethod
    def from_secrets_dir(cls, secrets_dir: Path) -> TokenSigner:
        pem = (secrets_dir / "jwt_signing_key.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(key, (secrets_dir / "jwks.json").read_text())

    def sign(self, claims: dict[str, object]) -> str:
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
