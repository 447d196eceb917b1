"""Field encryption for PII at rest (AES-256-GCM) and keyed lookup hashes.

Ciphertext layout: version byte, key-id length, key id, 12-byte nonce, GCM
ciphertext+tag. The key id travels with the ciphertext so keys can rotate:
new writes use the active key, old rows still decrypt with theirs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
MAX_KEY_ID_BYTES = 64
MAX_KEYS = 64


class CryptoError(Exception):
    pass


class UnknownKeyError(CryptoError):
    pass


class DecryptionError(CryptoError):
    """Tampered or truncated ciphertext, or the wrong context."""


class FieldCipher:
    def __init__(self, keys: Mapping[str, bytes], active: str, hash_key: bytes) -> None:
        assert 1 <= len(keys) <= MAX_KEYS
        assert active in keys, "the active key must be one of the keys"
        for kid, key in keys.items():
            assert 1 <= len(kid.encode()) <= MAX_KEY_ID_BYTES, kid
            assert len(key) == KEY_BYTES, f"key {kid} must be 32 bytes"
        assert len(hash_key) == KEY_BYTES, "hash key must be 32 bytes"
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active
        self._hash_key = hash_key

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FieldCipher:
        try:
            raw_keys = data["keys"]
            assert isinstance(raw_keys, Mapping)
            keys = {str(k): base64.b64decode(str(v), validate=True) for k, v in raw_keys.items()}
            return cls(
                keys, str(data["active"]), base64.b64decode(str(data["hash_key"]), validate=True)
            )
        except (KeyError, ValueError, AssertionError) as exc:
            raise CryptoError("malformed PII key file") from exc

    @classmethod
    def from_file(cls, path: Path) -> FieldCipher:
        return cls.from_json(json.loads(path.read_text()))

    def encrypt(self, plaintext: str | bytes, context: bytes = b"") -> bytes:
        """Encrypt with the active key; `context` (e.g. b"identity.users.cpf") is bound as AAD
        so a ciphertext copied into another column does not decrypt."""
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        kid = self.active.encode()
        nonce = os.urandom(NONCE_BYTES)
        header = bytes([FORMAT_VERSION, len(kid)]) + kid
        sealed = self._aead[self.active].encrypt(nonce, data, header + context)
        return header + nonce + sealed

    def decrypt(self, blob: bytes, context: bytes = b"") -> bytes:
        kid, header, rest = _split(blob)
        aead = self._aead.get(kid)
        if aead is None:
            raise UnknownKeyError(f"no key with id {kid!r}")
        nonce, sealed = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, sealed, header + context)
        except InvalidTag as exc:
            raise DecryptionError("ciphertext failed authentication") from exc

    def decrypt_text(self, blob: bytes, context: bytes = b"") -> str:
        return self.decrypt(blob, context).decode()

    def needs_rotation(self, blob: bytes) -> bool:
        return key_id_of(blob) != self.active

    def lookup_hash(self, value: str | bytes) -> bytes:
        """Keyed HMAC-SHA256 for equality lookups/uniqueness; normalise `value` first."""
        data = value.encode() if isinstance(value, str) else value
        return hmac.new(self._hash_key, data, hashlib.sha256).digest()


def key_id_of(blob: bytes) -> str:
    return _split(blob)[0]


def _split(blob: bytes) -> tuple[str, bytes, bytes]:
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise DecryptionError("unknown ciphertext format")
    kid_len = blob[1]
    header_len = 2 + kid_len
    if kid_len == 0 or len(blob) < header_len + NONCE_BYTES + 16:
        raise DecryptionError("truncated ciphertext")
    try:
        kid = blob[2:header_len].decode()
    except UnicodeDecodeError as exc:
        raise DecryptionError("corrupt key id") from exc
    return kid, blob[:header_len], blob[header_len:]
