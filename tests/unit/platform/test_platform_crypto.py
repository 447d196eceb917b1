"""AES-GCM field encryption with key ids, rotation and keyed lookup hashes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from services.platform.crypto import (
    CryptoError,
    DecryptionError,
    FieldCipher,
    UnknownKeyError,
    key_id_of,
)


def _cipher(active: str = "k1", *kids: str) -> FieldCipher:
    keys = {kid: bytes([i + 1]) * 32 for i, kid in enumerate(kids or ("k1",))}
    return FieldCipher(keys, active, b"h" * 32)


def test_round_trip_records_key_id_and_uses_fresh_nonces() -> None:
    cipher = _cipher()
    a = cipher.encrypt("123.456.789-09", b"users.cpf")
    b = cipher.encrypt("123.456.789-09", b"users.cpf")
    assert a != b
    assert key_id_of(a) == "k1"
    assert cipher.decrypt_text(a, b"users.cpf") == "123.456.789-09"
    assert b"123.456.789" not in a


def test_rotation_decrypts_old_key_and_encrypts_with_new() -> None:
    old = _cipher("k1", "k1")
    blob = old.encrypt(b"secret")
    rotated = _cipher("k2", "k1", "k2")
    assert rotated.decrypt(blob) == b"secret"
    assert rotated.needs_rotation(blob)
    assert key_id_of(rotated.encrypt(b"secret")) == "k2"


def test_unknown_key_id_is_rejected() -> None:
    blob = _cipher("k2", "k1", "k2").encrypt(b"x")
    with pytest.raises(UnknownKeyError):
        _cipher("k1", "k1").decrypt(blob)


@pytest.mark.parametrize("position", [-1, -20, 5])
def test_tampering_is_detected(position: int) -> None:
    cipher = _cipher()
    blob = bytearray(cipher.encrypt(b"payload-bytes"))
    blob[position] ^= 0x01
    with pytest.raises(CryptoError):
        cipher.decrypt(bytes(blob))


def test_wrong_context_fails_authentication() -> None:
    cipher = _cipher()
    blob = cipher.encrypt(b"x", b"users.cpf")
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, b"users.rg")


def test_truncated_and_foreign_blobs_are_rejected() -> None:
    cipher = _cipher()
    with pytest.raises(DecryptionError):
        cipher.decrypt(cipher.encrypt(b"x")[:10])
    with pytest.raises(DecryptionError):
        cipher.decrypt(b"\x07garbage-garbage-garbage-garbage")


def test_lookup_hash_is_keyed_and_deterministic() -> None:
    a = _cipher().lookup_hash("12345678909")
    assert a == _cipher().lookup_hash("12345678909")
    assert a != _cipher().lookup_hash("12345678908")
    other = FieldCipher({"k1": b"\x01" * 32}, "k1", b"z" * 32)
    assert other.lookup_hash("12345678909") != a


def test_from_file_and_malformed_file(tmp_path: Path) -> None:
    good = {
        "active": "k1",
        "keys": {"k1": base64.b64encode(os.urandom(32)).decode()},
        "hash_key": base64.b64encode(os.urandom(32)).decode(),
    }
    path = tmp_path / "pii_keys.json"
    path.write_text(json.dumps(good))
    cipher = FieldCipher.from_file(path)
    assert cipher.decrypt(cipher.encrypt(b"ok")) == b"ok"
    path.write_text(json.dumps({**good, "active": "missing"}))
    with pytest.raises(CryptoError):
        FieldCipher.from_file(path)
    path.write_text(json.dumps({**good, "hash_key": "not base64!"}))
    with pytest.raises(CryptoError):
        FieldCipher.from_file(path)
