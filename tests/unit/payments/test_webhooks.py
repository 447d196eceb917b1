"""HMAC-SHA256 webhook signatures: authentic and fresh, or refused with a reason."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.webhooks import TOLERANCE_SECONDS, sign, verify

KEY = b"k" * 32
NOW = 1_800_000_000


def test_known_vector() -> None:
    # Computed once outside the code: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
    assert sign(b"key", 1700000000, b"{}") == (
        "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
    )


@given(st.binary(max_size=2048))
def test_signed_body_verifies(body: bytes) -> None:
    assert verify(KEY, str(NOW), sign(KEY, NOW, body), body, NOW) is None


@given(st.binary(min_size=1, max_size=512), st.integers(min_value=0, max_value=511))
def test_any_tampered_byte_is_refused(body: bytes, pos: int) -> None:
    sig = sign(KEY, NOW, body)
    i = pos % len(body)
    tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    assert verify(KEY, str(NOW), sig, tampered, NOW) == "SIGNATURE_INVALID"


def test_wrong_key_stale_and_malformed() -> None:
    body = b'{"id":"evt_1"}'
    assert verify(b"other", str(NOW), sign(KEY, NOW, body), body, NOW) == "SIGNATURE_INVALID"
    old = NOW - TOLERANCE_SECONDS - 1
    assert verify(KEY, str(old), sign(KEY, old, body), body, NOW) == "TIMESTAMP_STALE"
    assert verify(KEY, "abc", sign(KEY, NOW, body), body, NOW) == "TIMESTAMP_INVALID"
    # The timestamp is signed: moving it invalidates the signature.
    assert verify(KEY, str(NOW + 1), sign(KEY, NOW, body), body, NOW) == "SIGNATURE_INVALID"
    # Rotation: any one of several signatures may match.
    both = sign(b"old-key", NOW, body) + "," + sign(KEY, NOW, body)
    assert verify(KEY, str(NOW), both, body, NOW) is None
