"""KYC's third parties: Receita (CPF situation), the gov document check
(Datavalid-like, OAuth2 client credentials) and the credit bureau.

Every call goes through the platform's ResilientHttpClient (timeout, retries
with jittered backoff, circuit breaker, bulkhead) and is recorded in
`third_party_calls` with PII redacted. A provider that cannot answer raises
ProviderDown: the workflow's activity then marks the check WAITING_PROVIDER
and Temporal retries it (the step waits, it never fails for an outage). An
answer that no retry can change (malformed, refused input) raises
ProviderRejected.

Cache (Redis, TTL): only the bureau's last good answer per CPF is kept and used
as a fallback, because the bureau is a soft signal for KYC (a footprint check)
and a day-old score says the same. The CPF situation and the document match
are never answered from a cache: a decision on them needs today's answer. The
cache key is the CPF's keyed HMAC and the value holds no PII. The bureau call,
its parsing and the cache are the shared services.providers.bureau client
(risk uses it too, with its own TTL and key space); this module keeps KYC's
policy (bureau first, cache only while it is down) and error mapping.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from services.kyc.domain.rules import BureauAnswer, CpfAnswer, DocumentAnswer
from services.platform.http_client import (
    CallLog,
    ProviderError,
    ResilienceConfig,
    ResilientHttpClient,
)
from services.providers import bureau as shared_bureau

log = logging.getLogger(__name__)

RECEITA = "receita"
GOVDOCS = "govdocs"
BUREAU = shared_bureau.PROVIDER

# KYC runs in the background (a workflow), so a provider gets a little longer
# than on a request path; the workflow's retry policy is the long wait.
KYC_RESILIENCE = ResilienceConfig(
    timeout_seconds=5.0,
    max_attempts=2,
    backoff_base_seconds=0.1,
    backoff_max_seconds=0.5,
    max_retry_after_seconds=2.0,
    breaker_fail_max=5,
    breaker_reset_seconds=10.0,
    max_concurrency=64,
    bulkhead_wait_seconds=5.0,
)
BUREAU_CACHE_TTL_SECONDS = 24 * 3600
BUREAU_CACHE_PREFIX = "kyc:bureau:"
TOKEN_EXPIRY_MARGIN_SECONDS = 30


class ProviderDown(Exception):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ProviderRejected(Exception):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


def _json(provider: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderRejected(provider, "answer is not JSON") from exc
    if not isinstance(body, dict):
        raise ProviderRejected(provider, "answer is not an object")
    return body


class ReceitaClient:
    def __init__(
        self,
        base_url: str,
        *,
        call_log: CallLog | None = None,
        config: ResilienceConfig = KYC_RESILIENCE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = ResilientHttpClient(
            RECEITA, base_url.rstrip("/"), config=config, call_log=call_log, transport=transport
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def cpf(self, cpf: str) -> CpfAnswer:
        try:
            response = await self.http.request("GET", f"/v1/cpf/{cpf}", endpoint="/v1/cpf/{cpf}")
        except ProviderError as exc:
            raise ProviderDown(RECEITA, str(exc)) from exc
        if response.status_code == 404:
            return CpfAnswer(found=False)
        if response.status_code != 200:
            raise ProviderRejected(RECEITA, f"HTTP {response.status_code}")
        body = _json(RECEITA, response)
        situation = body.get("situacao")
        if not isinstance(situation, str) or not situation:
            raise ProviderRejected(RECEITA, "no situacao")
        born: date | None = None
        if isinstance(body.get("data_nascimento"), str):
            try:
                born = date.fromisoformat(body["data_nascimento"])
            except ValueError:
                born = None
        return CpfAnswer(found=True, situation=situation, birth_date=born)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float


class GovDocsClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        call_log: CallLog | None = None,
        config: ResilienceConfig = KYC_RESILIENCE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = ResilientHttpClient(
            GOVDOCS, base_url.rstrip("/"), config=config, call_log=call_log, transport=transport
        )
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._basic = f"Basic {basic}"
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _access_token(self) -> str:
        token = self._token
        if token is not None and token.expires_at > time.monotonic():
            return token.value
        async with self._lock:  # one token request for all waiting callers
            token = self._token
            if token is not None and token.expires_at > time.monotonic():
                return token.value
            try:
                response = await self.http.request(
                    "POST",
                    "/oauth2/token",
                    content=b"grant_type=client_credentials",
                    headers={
                        "authorization": self._basic,
                        "content-type": "application/x-www-form-urlencoded",
                        # A token request changes nothing: safe to retry.
                        "idempotency-key": uuid.uuid4().hex,
                    },
                )
            except ProviderError as exc:
                raise ProviderDown(GOVDOCS, str(exc)) from exc
            if response.status_code != 200:
                raise ProviderRejected(GOVDOCS, f"token endpoint answered {response.status_code}")
            body = _json(GOVDOCS, response)
            value, lifetime = body.get("access_token"), body.get("expires_in")
            if not isinstance(value, str) or not isinstance(lifetime, int) or lifetime <= 0:
                raise ProviderRejected(GOVDOCS, "malformed token answer")
            margin = min(TOKEN_EXPIRY_MARGIN_SECONDS, lifetime // 2)
            self._token = _Token(value, time.monotonic() + lifetime - margin)
            return value

    async def validate(
        self, cpf: str, name: str, birth_date: date, doc_type: str, number: str, request_key: str
    ) -> DocumentAnswer:
        assert doc_type in ("CNH", "RG")
        payload = {
            "cpf": cpf,
            "nome": name,
            "data_nascimento": birth_date.isoformat(),
            "documento": {"tipo": doc_type, "numero": number},
        }
        for _ in range(2):  # a second time only after a rejected (expired) token
            token = await self._access_token()
            try:
                response = await self.http.request(
                    "POST",
                    "/v1/validate/pf",
                    json_body=payload,
                    # A validation reads; the key lets the client retry it.
                    headers={"authorization": f"Bearer {token}", "idempotency-key": request_key},
                )
            except ProviderError as exc:
                raise ProviderDown(GOVDOCS, str(exc)) from exc
            if response.status_code == 401:
                self._token = None
                continue
            break
        if response.status_code == 404:
            return DocumentAnswer(found=False)
        if response.status_code != 200:
            raise ProviderRejected(GOVDOCS, f"HTTP {response.status_code}")
        body = _json(GOVDOCS, response)
        documento = body.get("documento")
        similarity = body.get("nome_similaridade")
        if not isinstance(documento, dict) or not isinstance(similarity, int | float):
            raise ProviderRejected(GOVDOCS, "malformed validation answer")
        return DocumentAnswer(
            found=True,
            name_similarity=float(similarity),
            birth_date_match=body.get("data_nascimento") is True,
            number_match=documento.get("numero") is True,
        )


@dataclass(frozen=True, slots=True)
class BureauResult:
    answer: BureauAnswer
    from_cache: bool


class BureauClient(shared_bureau.BureauClient):
    """KYC's policy over the shared bureau client: always ask the bureau first
    and fall back to the cached answer only while it cannot answer (module doc)."""

    CACHE_PREFIX = BUREAU_CACHE_PREFIX
    KEY_CONTEXT = "kyc.bureau:"
    CACHE_TTL_SECONDS = BUREAU_CACHE_TTL_SECONDS
    RESILIENCE = KYC_RESILIENCE

    async def report(self, cpf: str) -> BureauResult:
        """Fresh answer when the bureau answers; the cached one while it is down."""
        try:
            report = await self.ask(cpf)
        except shared_bureau.BureauUnavailable as exc:
            cached = await self.cached(cpf)
            if cached is None:
                raise ProviderDown(BUREAU, str(exc)) from exc
            report = cached
        except shared_bureau.BureauRejected as exc:
            raise ProviderRejected(BUREAU, str(exc)) from exc
        answer = BureauAnswer(score=report.score, negative_records=report.negative_records)
        return BureauResult(answer, from_cache=report.from_cache)
