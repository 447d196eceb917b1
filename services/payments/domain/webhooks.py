"""PSP webhook signatures: HMAC-SHA256 over `<timestamp>.<raw body>`.

Headers `x-psp-timestamp` (Unix seconds) and `x-psp-signature` (`v1=<hex>`).
The timestamp is signed too and must be recent, so a captured notification
cannot be replayed later; the event id deduplicates within the window.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-psp-signature"
TIMESTAMP_HEADER = "x-psp-timestamp"
SCHEME = "v1="
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    assert secret, "an empty key signs nothing"
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> str | None:
    """None when authentic and fresh, else the reason it is refused."""
    if len(body) > MAX_BODY_BYTES:
        return "BODY_TOO_LARGE"
    ts = timestamp_header.strip()
    if not ts.isdigit() or len(ts) > 12:
        return "TIMESTAMP_INVALID"
    if abs(now - int(ts)) > tolerance:
        return "TIMESTAMP_STALE"
    expected = sign(secret, int(ts), body)
    # Several signatures may be sent during a key rotation, comma separated.
    candidates = [s.strip() for s in signature_header.split(",") if s.strip()][:4]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        return "SIGNATURE_INVALID"
    return None
