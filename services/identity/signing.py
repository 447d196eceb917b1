"""Signs access tokens with the ES256 key from the secrets directory.

The dev stack generates the key pair at start-up (never committed) and writes
the public half as jwks.json for Envoy and every service. The `kid` is the
RFC 7638 thumbprint, so a rotated key gets a new kid without coordination.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ec_public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    # RFC 7638: the thumbprint hashes the required members in lexicographic order.
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return {**jwk, "kid": _b64(hashlib.sha256(canonical).digest()), "alg": "ES256", "use": "sig"}


class TokenSigner:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey, jwks_json: str) -> None:
        assert isinstance(private_key.curve, ec.SECP256R1), "ES256 needs a P-256 key"
        self._key = private_key
        self.kid = ec_public_jwk(private_key.public_key())["kid"]
        self.jwks_json = jwks_json
        published = {k.get("kid") for k in json.loads(jwks_json).get("keys", [])}
        # A token signed with an unpublished key would be rejected by Envoy and
        # every service: refuse to start instead of failing every login.
        assert self.kid in published, "the signing key's kid is not in jwks.json"

    @classmethod
    def from_secrets_dir(cls, secrets_dir: Path) -> TokenSigner:
        pem = (secrets_dir / "jwt_signing_key.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(key, (secrets_dir / "jwks.json").read_text())

    def sign(self, claims: dict[str, object]) -> str:
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
