"""A small S3 client (SigV4, path-style) for the KYC document bucket.

Only what KYC needs: create the bucket, put/get/delete an object and presign
a GET. Written on httpx rather than adding boto3 (and its botocore/s3transfer
tree) for five calls; the signing follows AWS Signature Version 4 exactly, so
any S3-compatible store (SeaweedFS here) accepts it. Every call has a timeout
and a bounded retry for transport errors and 5xx (S3 PUT/GET/DELETE of one key
are idempotent).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

log = logging.getLogger(__name__)

REGION = "us-east-1"
SERVICE = "s3"
ALGORITHM = "AWS4-HMAC-SHA256"
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 3
MAX_PRESIGN_SECONDS = 3600
UNSIGNED = "UNSIGNED-PAYLOAD"
SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


class ObjectStoreError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    @classmethod
    def from_file(cls, path: Path) -> Credentials:
        data = json.loads(path.read_text())
        return cls(str(data["access_key_id"]), str(data["secret_access_key"]))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signing_key(secret: str, day: str, region: str = REGION) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), day)
    k = _hmac(k, region)
    k = _hmac(k, SERVICE)
    return _hmac(k, "aws4_request")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )


def sign(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_hash: str,
    creds: Credentials,
    now: datetime,
) -> str:
    """The SigV4 signature of a request (headers: lower-case names, all signed)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            canonical_query(query),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{REGION}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, _sha256(canonical.encode())])
    return hmac.new(
        signing_key(creds.secret_access_key, day), to_sign.encode(), hashlib.sha256
    ).hexdigest()


class ObjectStore:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        creds: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        assert bucket and "/" not in bucket
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self._creds = creds
        self._host = urlsplit(self.endpoint).netloc
        self._http = httpx.AsyncClient(
            base_url=self.endpoint, timeout=TIMEOUT_SECONDS, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _path(self, key: str = "") -> str:
        return f"/{self.bucket}/{key}" if key else f"/{self.bucket}"

    async def _request(
        self, method: str, key: str = "", content: bytes = b"", ok: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        path = self._path(key)
        payload_hash = _sha256(content)
        last: Exception | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            now = datetime.now(UTC)
            amz_date = now.strftime("%Y%m%dT%H%M%SZ")
            headers = {
                "host": self._host,
                "x-amz-content-sha256": payload_hash,
                "x-amz-date": amz_date,
            }
            signature = sign(method, path, {}, headers, payload_hash, self._creds, now)
            scope = f"{amz_date[:8]}/{REGION}/{SERVICE}/aws4_request"
            headers["authorization"] = (
                f"{ALGORITHM} Credential={self._creds.access_key_id}/{scope},"
                f" SignedHeaders={SIGNED_HEADERS},"
                f" Signature={signature}"
            )
            del headers["host"]  # httpx sets it from the URL, identically
            try:
                response = await self._http.request(
                    method, quote(path, safe="/-_.~"), content=content or None, headers=headers
                )
            except httpx.TransportError as exc:
                last = exc
            else:
                if response.status_code in ok:
                    return response
                if response.status_code < 500:
                    raise ObjectStoreError(
                        f"S3 {method} {path}: HTTP {response.status_code} {response.text[:200]}"
                    )
                last = ObjectStoreError(f"S3 {method} {path}: HTTP {response.status_code}")
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(random.random() * 0.2 * 2**attempt)  # noqa: S311 - jitter
        raise ObjectStoreError(f"S3 {method} {path} failed: {last}") from last

    async def ensure_bucket(self) -> None:
        await self._request("PUT", ok=(200, 409))

    async def put(self, key: str, content: bytes) -> None:
        await self._request("PUT", key, content)

    async def get(self, key: str) -> bytes:
        return (await self._request("GET", key)).content

    async def delete(self, key: str) -> None:
        await self._request("DELETE", key, ok=(200, 204, 404))

    def presign_get(self, key: str, expires_seconds: int, now: datetime | None = None) -> str:
        return presigned_get_url(self.endpoint, self._path(key), self._creds, expires_seconds, now)


def presigned_get_url(
    endpoint: str, path: str, creds: Credentials, expires_seconds: int, now: datetime | None = None
) -> str:
    """A SigV4 query-signed GET of `path` (`/bucket/key`) valid `expires_seconds`
    from `now`; the store refuses it afterwards. A function of its own so a test
    can sign with a past `now` exactly as the service signs."""
    assert 1 <= expires_seconds <= MAX_PRESIGN_SECONDS
    now = now or datetime.now(UTC)
    endpoint = endpoint.rstrip("/")
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{REGION}/{SERVICE}/aws4_request"
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{creds.access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_seconds),
        "X-Amz-SignedHeaders": "host",
    }
    host = urlsplit(endpoint).netloc
    signature = sign("GET", path, query, {"host": host}, UNSIGNED, creds, now)
    query["X-Amz-Signature"] = signature
    return f"{endpoint}{quote(path, safe='/-_.~')}?{canonical_query(query)}"
