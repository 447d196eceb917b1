import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.devsecrets import jwk_for
from services.identity.signing import TokenSigner


def test_tokens_carry_the_published_kid_and_verify_with_the_jwks() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwk_for(key.public_key())
    signer = TokenSigner(key, json.dumps({"keys": [jwk]}))
    token = signer.sign({"sub": "u1"})
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    public = jwt.PyJWK.from_dict(jwk, algorithm="ES256").key
    assert jwt.decode(token, public, algorithms=["ES256"])["sub"] == "u1"


def test_refuses_a_key_that_is_not_published() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = jwk_for(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(ValueError, match="not in the JWKS"):
        TokenSigner(key, json.dumps({"keys": [other]}))
