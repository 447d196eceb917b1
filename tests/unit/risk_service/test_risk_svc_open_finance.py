"""The Open Finance client: spec mapping, paging, headers and retries (no network)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from services.platform.http_client import ResilienceConfig
from services.risk.open_finance import (
    PAGE_SIZE,
    BankError,
    MalformedResponseError,
    OpenFinanceClient,
    amount_minor,
    consent_from,
    next_page,
    transaction_from,
)

FAST = ResilienceConfig(
    timeout_seconds=2.0,
    max_attempts=4,
    backoff_base_seconds=0.001,
    backoff_max_seconds=0.002,
    max_retry_after_seconds=1.0,
)


def test_amounts_are_signed_centavos() -> None:
    assert amount_minor("1000.0400", "CREDITO") == 100_004
    assert amount_minor("12.34", "DEBITO") == -1234
    assert amount_minor("0.005", "CREDITO") == 0  # half-even below a centavo
    with pytest.raises(MalformedResponseError):
        amount_minor("-1.00", "CREDITO")
    with pytest.raises(MalformedResponseError):
        amount_minor("1.00", "SIDEWAYS")
    with pytest.raises(MalformedResponseError):
        amount_minor("abc", "DEBITO")


def test_next_page_follows_links_next_only_forwards() -> None:
    assert next_page({"links": {"next": "http://b/x?page=3&page-size=1000"}}, 2) == 3
    assert next_page({"links": {"self": "http://b/x?page=2"}}, 2) is None
    assert next_page({}, 1) is None
    with pytest.raises(MalformedResponseError):
        next_page({"links": {"next": "http://b/x?page=1"}}, 1)


def test_revoked_and_expired_consents_map_to_our_states() -> None:
    def body(code: str) -> dict[str, Any]:
        return {
            "data": {
                "consentId": "urn:bancoex:1",
                "status": "REJECTED",
                "permissions": ["ACCOUNTS_READ"],
                "expirationDateTime": "2027-01-01T00:00:00Z",
                "rejection": {"rejectedBy": "USER", "reason": {"code": code}},
            }
        }

    assert consent_from(body("CUSTOMER_MANUALLY_REVOKED")).our_state == "REVOKED"
    assert consent_from(body("CONSENT_MAX_DATE_REACHED")).our_state == "EXPIRED"
    assert consent_from(body("CONSENT_EXPIRED")).our_state == "REJECTED"
    parsed = consent_from(body("CONSENT_EXPIRED"))
    assert parsed.expire_at == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(MalformedResponseError):
        consent_from({"data": {"status": "AUTHORISED"}})


def test_transaction_mapping_follows_the_accounts_spec() -> None:
    tx = transaction_from(
        "acc-1",
        {
            "transactionId": "T1",
            "creditDebitType": "DEBITO",
            "transactionName": "PIX ENVIADO",
            "type": "PIX",
            "transactionAmount": {"amount": "50.10", "currency": "BRL"},
            "transactionDateTime": "2026-03-01T10:00:00.000Z",
            "partieCnpjCpf": "12345678901",
        },
    )
    assert (tx.account_id, tx.transaction_id, tx.amount_minor, tx.type) == (
        "acc-1",
        "T1",
        -5010,
        "PIX",
    )
    assert tx.booked_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert tx.counterparty == "12345678901"
    with pytest.raises(MalformedResponseError):
        transaction_from("acc-1", {"transactionId": "T2"})


def _tx_item(n: int) -> dict[str, Any]:
    return {
        "transactionId": f"T{n}",
        "creditDebitType": "CREDITO",
        "transactionName": "x",
        "type": "PIX",
        "transactionAmount": {"amount": "1.00", "currency": "BRL"},
        "transactionDateTime": "2026-01-01T00:00:00.000Z",
    }


async def test_pages_carry_consent_token_interaction_id_and_page_size() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params["page"])
        links = {"next": str(request.url.copy_set_param("page", "2"))} if page == 1 else {}
        return httpx.Response(200, json={"data": [_tx_item(page)], "links": links, "meta": {}})

    client = OpenFinanceClient("http://bank", config=FAST, transport=httpx.MockTransport(handler))
    try:
        first = await client.transactions_page(
            "urn:bancoex:C1", "acc-1", date(2026, 1, 1), date(2026, 2, 1), 1
        )
        second = await client.transactions_page(
            "urn:bancoex:C1", "acc-1", date(2026, 1, 1), date(2026, 2, 1), 2
        )
    finally:
        await client.aclose()
    assert first.next_page == 2 and second.next_page is None
    assert [t.transaction_id for t in first.items + second.items] == ["T1", "T2"]
    for request in seen:
        assert request.headers["authorization"] == "Bearer urn:bancoex:C1"
        assert request.headers["x-fapi-interaction-id"]
        assert request.url.params["page-size"] == str(PAGE_SIZE)
        assert request.url.params["fromBookingDate"] == "2026-01-01"
        assert request.url.path == "/open-banking/accounts/v2/accounts/acc-1/transactions"
    ids = {r.headers["x-fapi-interaction-id"] for r in seen}
    assert len(ids) == len(seen)  # one interaction id per request


async def test_rate_limits_and_5xx_are_retried_then_answered() -> None:
    answers = [
        httpx.Response(429, headers={"retry-after": "0"}, json={"errors": []}),
        httpx.Response(503, json={"errors": []}),
        httpx.Response(200, json={"data": [{"accountId": "a1", "type": "CONTA_DEPOSITO_A_VISTA"}]}),
    ]
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return answers.pop(0)

    client = OpenFinanceClient("http://bank", config=FAST, transport=httpx.MockTransport(handler))
    try:
        page = await client.accounts_page("urn:bancoex:C1", 1)
    finally:
        await client.aclose()
    assert calls == 3
    assert [a.account_id for a in page.items] == ["a1"]


async def test_a_refused_read_is_a_bank_error_with_the_spec_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "NAO_AUTORIZADO", "title": "t", "detail": "revogado"}]}
        return httpx.Response(401, content=json.dumps(body))

    client = OpenFinanceClient("http://bank", config=FAST, transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(BankError) as caught:
            await client.accounts_page("urn:bancoex:C1", 1)
    finally:
        await client.aclose()
    assert caught.value.status == 401
    assert caught.value.code == "NAO_AUTORIZADO"


async def test_consent_creation_sends_the_cpf_permissions_and_expiry() -> None:
    captured: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        captured["body"] = json.loads(request.content)
        captured["auth"] = request.headers.get("authorization")
        return httpx.Response(
            201,
            json={"data": {"consentId": "urn:bancoex:9", "status": "AWAITING_AUTHORISATION"}},
        )

    client = OpenFinanceClient("http://bank", config=FAST, transport=httpx.MockTransport(handler))
    try:
        consent = await client.create_consent(
            cpf="12345678909",
            permissions=["ACCOUNTS_READ"],
            expire_at=datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC),
            request_key="k1",
        )
    finally:
        await client.aclose()
    assert consent.consent_id == "urn:bancoex:9"
    data = captured["body"]["data"]
    assert data["loggedUser"]["document"] == {"identification": "12345678909", "rel": "CPF"}
    assert data["expirationDateTime"] == "2027-01-02T03:04:05Z"
    assert captured["auth"].startswith("Bearer ")
