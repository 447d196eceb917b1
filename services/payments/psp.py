"""Client of the PSP (simulators/psp in development): OAuth2 client credentials,
DICT, payouts, PIX charges, card charges, settlement reports.

Every call goes through ResilientHttpClient (timeout, retries with jittered
backoff, circuit breaker, bulkhead, `third_party_calls` log). POSTs carry an
Idempotency-Key (our payment reference), so the client may retry them and
the PSP answers a retry with the first result. Business refusals (4xx) are
`PspRejectedError` with the PSP's code; everything else is a ProviderError
(unavailable, breaker open), which the workflow retries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from aiobreaker import CircuitBreakerState

from services.platform.http_client import (
    CallLog,
    ProviderError,
    ResilienceConfig,
    ResilientHttpClient,
)

PROVIDER = "psp"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
TOKEN_REFRESH_MARGIN_S = 30
# Payouts wait in the workflow when the PSP is down; the breaker keeps us from
# hammering it meanwhile and lets a probe through every few seconds.
CONFIG = ResilienceConfig(
    timeout_seconds=3.0,
    max_attempts=3,
    backoff_base_seconds=0.1,
    backoff_max_seconds=1.0,
    breaker_fail_max=5,
    breaker_reset_seconds=3.0,
    max_concurrency=64,
    bulkhead_wait_seconds=2.0,
)


class PspRejectedError(Exception):
    """The PSP refused the request for a business reason (no retry helps)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class MalformedPspResponseError(ProviderError):
    pass


@dataclass(frozen=True, slots=True)
class PspPayout:
    id: str
    status: str  # ACCEPTED | SETTLED | FAILED
    end_to_end_id: str
    failure_reason: str


@dataclass(frozen=True, slots=True)
class DictEntry:
    key: str
    key_type: str
    name: str
    ispb: str
    account: str


def _payout(data: Any) -> PspPayout:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise MalformedPspResponseError(PROVIDER, "payout without id")
    status = data.get("status")
    if status not in ("ACCEPTED", "SETTLED", "FAILED"):
        raise MalformedPspResponseError(PROVIDER, f"unknown payout status {status!r}")
    return PspPayout(
        id=data["id"],
        status=status,
        end_to_end_id=str(data.get("end_to_end_id") or ""),
        failure_reason=str(data.get("failure_reason") or ""),
    )


class PspClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        call_log: CallLog | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = ResilientHttpClient(
            PROVIDER, base_url, config=CONFIG, call_log=call_log, transport=transport
        )
        self._client_id = client_id
        self._client_secret = client_secret
        self._token = ""
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    @property
    def breaker_open(self) -> bool:
        return bool(self.http.breaker.current_state == CircuitBreakerState.OPEN)

    async def _bearer(self, force: bool = False) -> str:
        async with self._token_lock:
            if force or not self._token or time.monotonic() > self._token_expires:
                response = await self.http.request(
                    "POST",
                    TOKEN_PATH,
                    content=(
                        f"grant_type=client_credentials&client_id={quote(self._client_id)}"
                        f"&client_secret={quote(self._client_secret)}"
                    ).encode(),
                    headers={
                        "content-type": "application/x-www-form-urlencoded",
                        # Token requests are safe to repeat.
                        "idempotency-key": "oauth-token",
                    },
                    endpoint=TOKEN_PATH,
                )
                if response.status_code != 200:
                    raise ProviderError(PROVIDER, f"token endpoint answered {response.status_code}")
                body = response.json()
                self._token = str(body["access_token"])
                ttl = int(body.get("expires_in", 300))
                self._token_expires = time.monotonic() + max(1, ttl - TOKEN_REFRESH_MARGIN_S)
            return self._token

    async def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json_body: Any = None,
        idempotency_key: str | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        for attempt in (1, 2):
            headers = {"authorization": f"Bearer {await self._bearer(force=attempt == 2)}"}
            if idempotency_key:
                headers["idempotency-key"] = idempotency_key
            response = await self.http.request(
                method, path, json_body=json_body, headers=headers, endpoint=endpoint, params=params
            )
            if response.status_code != 401:
                return response
        return response

    @staticmethod
    def _raise_for_business(response: httpx.Response) -> None:
        if 200 <= response.status_code < 300:
            return
        try:
            err = response.json().get("error", {})
            code, message = str(err.get("code", "")), str(err.get("message", ""))
        except (ValueError, AttributeError):
            code, message = "", response.text[:200]
        raise PspRejectedError(
            response.status_code, code or f"HTTP_{response.status_code}", message
        )

    async def lookup_key(self, key: str) -> DictEntry | None:
        response = await self._call("GET", f"/v1/dict/{quote(key, safe='')}", "/v1/dict/{key}")
        if response.status_code == 404:
            return None
        self._raise_for_business(response)
        d = response.json()
        return DictEntry(
            key=str(d["key"]),
            key_type=str(d["key_type"]),
            name=str(d.get("name", "")),
            ispb=str(d.get("ispb", "")),
            account=str(d.get("account", "")),
        )

    async def create_payout(self, body: dict[str, Any]) -> PspPayout:
        ref = body["external_reference"]
        response = await self._call(
            "POST", "/v1/payouts", "/v1/payouts", json_body=body, idempotency_key=ref
        )
        self._raise_for_business(response)
        return _payout(response.json())

    async def find_payout(self, external_reference: str) -> PspPayout | None:
        response = await self._call(
            "GET",
            "/v1/payouts",
            "/v1/payouts?external_reference",
            params={"external_reference": external_reference},
        )
        self._raise_for_business(response)
        items = response.json().get("payouts", [])
        return _payout(items[0]) if items else None

    async def put_cob(self, txid: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._call(
            "PUT", f"/v1/cob/{txid}", "/v1/cob/{txid}", json_body=body, idempotency_key=txid
        )
        self._raise_for_business(response)
        data: dict[str, Any] = response.json()
        return data

    async def delete_cob(self, txid: str) -> dict[str, Any]:
        response = await self._call("DELETE", f"/v1/cob/{txid}", "/v1/cob/{txid}")
        self._raise_for_business(response)
        data: dict[str, Any] = response.json()
        return data

    async def card_call(
        self, path: str, endpoint: str, body: dict[str, Any], key: str
    ) -> dict[str, Any]:
        response = await self._call("POST", path, endpoint, json_body=body, idempotency_key=key)
        self._raise_for_business(response)
        data: dict[str, Any] = response.json()
        return data

    async def settlement_report(self, day: str) -> bytes:
        response = await self._call(
            "GET",
            f"/v1/settlements/{day}",
            "/v1/settlements/{date}",
            params={"format": "json"},
        )
        self._raise_for_business(response)
        return response.content
