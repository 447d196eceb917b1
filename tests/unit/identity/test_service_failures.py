"""Identity fails closed, with a retryable status, when Redis is unreachable."""

import json
import os
import socket

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from devstack.devsecrets import jwk_for
from services.identity.service import IdentityService
from services.identity.signing import TokenSigner
from services.platform.crypto import FieldCipher
from services.platform.errors import AppError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


async def test_login_is_unavailable_not_internal_when_redis_is_down() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    redis = Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5)
    service = IdentityService(
        db=None,  # type: ignore[arg-type]  # never reached: lockout is checked first
        redis=redis,
        cipher=FieldCipher({"k1": os.urandom(32)}, "k1", os.urandom(32)),
        signer=TokenSigner(key, json.dumps({"keys": [jwk_for(key.public_key())]})),
        issuer="iss",
        audience="aud",
    )
    with pytest.raises(AppError) as exc:
        await service.login(
            email="a@example.com",
            password="uma senha longa",
            device_id="d1",
            device_name="",
            totp_code="",
            client_address="127.0.0.1",
        )
    assert exc.value.code is grpc.StatusCode.UNAVAILABLE
    assert exc.value.reason == "DEPENDENCY_UNAVAILABLE"
    await redis.aclose()
