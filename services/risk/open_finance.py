"""Client for an Open Finance Brasil data holder (consents v3, accounts v2).

Built on the platform's ResilientHttpClient: per-call timeout, retries with
backoff + jitter on 5xx/429 (honouring Retry-After), a circuit breaker, a
bulkhead and the `third_party_calls` log with PII redacted. Every request
carries a fresh `x-fapi-interaction-id` (the FAPI correlation id the bank
echoes). The bearer token on accounts calls is the consent id: that is how
the simulator stands in for the OAuth access token bound to the consent
(docs/RISK.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from services.platform.http_client import CallLog, ResilienceConfig, ResilientHttpClient
from services.risk.domain.statements import StatementTransaction

PROVIDER = "open_finance"
CONSENTS_PATH = "/open-banking/consents/v3/consents"
ACCOUNTS_PATH = "/open-banking/accounts/v2/accounts"
PAGE_SIZE = 1000  # the spec's maximum: fewest round trips for a 12-month history
MAX_PAGES = 10_000  # a bank whose links.next never ends must not loop us forever
INTERACTION_HEADER = "x-fapi-interaction-id"
# Consents calls carry the TPP's client-credentials token. The simulator only
# checks that one is present; a real directory-issued token would be fetched
# through OAuth client credentials and injected here.
DEFAULT_CLIENT_TOKEN = "risk-tpp-client"  # noqa: S105 - a placeholder identity, not a secret
MAX_ERROR_BODY_CHARS = 300

T = TypeVar("T")

# The bank's consent status → ours (consents v3 has no REVOKED/EXPIRED: a
# revoked or expired consent is REJECTED with a rejection reason).
_REJECTION_STATE = {
    "CUSTOMER_MANUALLY_REVOKED": "REVOKED",
    "CONSENT_MAX_DATE_REACHED": "EXPIRED",
}

DEFAULT_RESILIENCE = ResilienceConfig(
    timeout_seconds=10.0,
    max_attempts=5,
    backoff_base_seconds=0.2,
    backoff_max_seconds=5.0,
    max_retry_after_seconds=30.0,
    breaker_fail_max=10,
    breaker_reset_seconds=15.0,
    max_concurrency=16,
    bulkhead_wait_seconds=5.0,
)


class BankError(Exception):
    """The bank answered with a non-retryable error status."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"HTTP {status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class MalformedResponseError(Exception):
    """The bank's body does not follow the spec."""


@dataclass(frozen=True, slots=True)
class BankConsent:
    consent_id: str
    status: str  # the bank's: AWAITING_AUTHORISATION | AUTHORISED | REJECTED
    permissions: tuple[str, ...]
    expire_at: datetime | None
    rejection_reason: str
    rejected_by: str
    authorisation_uri: str

    @property
    def our_state(self) -> str:
        if self.status == "REJECTED":
            return _REJECTION_STATE.get(self.rejection_reason, "REJECTED")
        return self.status


@dataclass(frozen=True, slots=True)
class BankAccount:
    account_id: str
    brand_name: str
    company_cnpj: str
    account_type: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    page: int
    next_page: int | None  # None on the last page


def parse_time(value: str) -> datetime:
    """ISO-8601 with a `Z` (the spec's form) → aware datetime."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise MalformedResponseError(f"bad date-time {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def amount_minor(amount: str, credit_debit: str) -> int:
    """`"1000.0400"` + CREDITO/DEBITO → signed centavos (credit > 0, debit < 0).

    The spec allows up to 4 decimals; centavos are exact for BRL, and the
    sub-centavo part (never used by the banks we know) is rounded half-even.
    """
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError) as exc:
        raise MalformedResponseError(f"bad amount {amount!r}") from exc
    if not value.is_finite() or value < 0:
        raise MalformedResponseError(f"bad amount {amount!r}")
    minor = int((value * 100).quantize(Decimal(1)))
    if credit_debit == "CREDITO":
        return minor
    if credit_debit == "DEBITO":
        return -minor
    raise MalformedResponseError(f"bad creditDebitType {credit_debit!r}")


def next_page(body: Mapping[str, Any], current: int) -> int | None:
    """The page number `links.next` points at, or None on the last page."""
    links = body.get("links") or {}
    target = links.get("next") if isinstance(links, Mapping) else None
    if not target:
        return None
    query = parse_qs(urlsplit(str(target)).query)
    try:
        number = int(query.get("page", [""])[0])
    except ValueError as exc:
        raise MalformedResponseError(f"links.next without a page: {target!r}") from exc
    if number <= current:
        raise MalformedResponseError(f"links.next goes backwards: {target!r}")
    return number


def consent_from(body: Mapping[str, Any]) -> BankConsent:
    data = body.get("data")
    if not isinstance(data, Mapping) or not data.get("consentId") or not data.get("status"):
        raise MalformedResponseError("consent without data.consentId/status")
    rejection = data.get("rejection") or {}
    reason = rejection.get("reason") or {} if isinstance(rejection, Mapping) else {}
    expiry = data.get("expirationDateTime")
    links = body.get("links") or {}
    return BankConsent(
        consent_id=str(data["consentId"]),
        status=str(data["status"]),
        permissions=tuple(str(p) for p in data.get("permissions") or ()),
        expire_at=parse_time(str(expiry)) if expiry else None,
        rejection_reason=str(reason.get("code", "")) if isinstance(reason, Mapping) else "",
        rejected_by=str(rejection.get("rejectedBy", "")) if isinstance(rejection, Mapping) else "",
        # Not in consents v3 (real banks answer through OAuth PAR); the
        # simulator may offer the page where the customer authorises.
        authorisation_uri=str(data.get("authorisationUri") or links.get("authorisation") or ""),
    )


def account_from(item: Mapping[str, Any]) -> BankAccount:
    if not item.get("accountId"):
        raise MalformedResponseError("account without accountId")
    return BankAccount(
        account_id=str(item["accountId"]),
        brand_name=str(item.get("brandName", ""))[:80],
        company_cnpj=str(item.get("companyCnpj", ""))[:14],
        account_type=str(item.get("type", ""))[:64],
    )


def transaction_from(account_id: str, item: Mapping[str, Any]) -> StatementTransaction:
    try:
        amount = item["transactionAmount"]
        return StatementTransaction(
            account_id=account_id,
            transaction_id=str(item["transactionId"]),
            booked_at=parse_time(str(item["transactionDateTime"])),
            amount_minor=amount_minor(str(amount["amount"]), str(item["creditDebitType"])),
            currency=str(amount.get("currency", "BRL")),
            type=str(item["type"]),
            description=str(item.get("transactionName", ""))[:200],
            counterparty=str(item.get("partieCnpjCpf", ""))[:14],
        )
    except (KeyError, TypeError) as exc:
        raise MalformedResponseError(f"transaction missing {exc}") from exc


def _error_code(response: httpx.Response) -> tuple[str, str]:
    """The spec's error body: {"errors": [{"code", "title", "detail"}]}."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0] if errors else {}
        return str(first.get("code", "")), str(first.get("detail", ""))[:MAX_ERROR_BODY_CHARS]
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", response.text[:MAX_ERROR_BODY_CHARS]


class OpenFinanceClient:
    def __init__(
        self,
        base_url: str,
        *,
        call_log: CallLog | None = None,
        config: ResilienceConfig = DEFAULT_RESILIENCE,
        transport: httpx.AsyncBaseTransport | None = None,
        client_token: str = DEFAULT_CLIENT_TOKEN,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_token = client_token
        self._http = ResilientHttpClient(
            PROVIDER, self.base_url, config=config, call_log=call_log, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {INTERACTION_HEADER: str(uuid.uuid4())}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if idempotency_key is not None:
            # Lets the platform client retry a POST: a retried create may leave
            # an unused consent at the bank, which expires on its own (60 min).
            headers["idempotency-key"] = idempotency_key
        response = await self._http.request(
            method, path, json_body=json_body, params=params, headers=headers, endpoint=endpoint
        )
        if response.status_code >= 400:
            code, detail = _error_code(response)
            raise BankError(response.status_code, code, detail)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Mapping[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise MalformedResponseError("not JSON") from exc
        if not isinstance(body, Mapping):
            raise MalformedResponseError("not a JSON object")
        return body

    async def create_consent(
        self, *, cpf: str, permissions: Sequence[str], expire_at: datetime, request_key: str
    ) -> BankConsent:
        body = {
            "data": {
                "loggedUser": {"document": {"identification": cpf, "rel": "CPF"}},
                "permissions": list(permissions),
                "expirationDateTime": format_time(expire_at),
            }
        }
        response = await self._call(
            "POST",
            CONSENTS_PATH,
            CONSENTS_PATH,
            token=self._client_token,
            json_body=body,
            idempotency_key=request_key,
        )
        return consent_from(self._json(response))

    async def get_consent(self, consent_id: str) -> BankConsent:
        response = await self._call(
            "GET",
            f"{CONSENTS_PATH}/{quote(consent_id, safe='')}",
            CONSENTS_PATH + "/{id}",
            token=self._client_token,
        )
        return consent_from(self._json(response))

    async def revoke_consent(self, consent_id: str) -> None:
        await self._call(
            "DELETE",
            f"{CONSENTS_PATH}/{quote(consent_id, safe='')}",
            CONSENTS_PATH + "/{id}",
            token=self._client_token,
        )

    async def authorise(self, consent_id: str, redirect_state: str) -> None:
        """The simulated customer approval at the bank (and its redirect back):
        the bank marks the consent AUTHORISED."""
        await self._call(
            "POST",
            f"/__sim/consents/{quote(consent_id, safe='')}/authorise",
            "/__sim/consents/{id}/authorise",
            json_body={"state": redirect_state, "approve": True},
            idempotency_key=f"authorise:{consent_id}",
        )

    async def accounts_page(self, consent_id: str, page: int) -> Page[BankAccount]:
        response = await self._call(
            "GET",
            ACCOUNTS_PATH,
            ACCOUNTS_PATH,
            token=consent_id,
            params={"page": str(page), "page-size": str(PAGE_SIZE)},
        )
        body = self._json(response)
        items = tuple(account_from(item) for item in body.get("data") or ())
        return Page(items, page, next_page(body, page))

    async def transactions_page(
        self, consent_id: str, account_id: str, from_date: date, to_date: date, page: int
    ) -> Page[StatementTransaction]:
        response = await self._call(
            "GET",
            f"{ACCOUNTS_PATH}/{quote(account_id, safe='')}/transactions",
            ACCOUNTS_PATH + "/{accountId}/transactions",
            token=consent_id,
            params={
                "fromBookingDate": from_date.isoformat(),
                "toBookingDate": to_date.isoformat(),
                "page": str(page),
                "page-size": str(PAGE_SIZE),
            },
        )
        body = self._json(response)
        items = tuple(transaction_from(account_id, item) for item in body.get("data") or ())
        return Page(items, page, next_page(body, page))
