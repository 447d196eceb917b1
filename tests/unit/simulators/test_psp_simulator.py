"""PSP simulator: OAuth2, DICT, idempotent payouts, signed webhooks, cob, report, faults."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.ledger.domain.reconciliation import ReportFormat, parse_report
from services.payments.domain import webhooks
from services.payments.domain.pix import is_end_to_end_id
from simulators.psp.app import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, make_app

SECRET = b"s" * 32


async def _start(app: web.Application) -> TestClient:
    server = TestServer(app)
    await server.start_server(access_log=None)
    client = TestClient(server)
    await client.start_server()
    return client


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Our webhook endpoint: verifies each notification like payments does."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        problem = webhooks.verify(
            SECRET,
            request.headers[webhooks.TIMESTAMP_HEADER],
            request.headers[webhooks.SIGNATURE_HEADER],
            body,
            __import__("time").time(),
        )
        assert problem is None, problem
        received.append(json.loads(body))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    client = await _start(app)
    yield str(client.make_url("/hook")), received
    await client.close()


@pytest.fixture
async def psp(
    receiver: tuple[str, list[dict[str, Any]]], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TestClient]:
    secret_file = tmp_path / "secret"
    secret_file.write_text(base64.b64encode(SECRET).decode())
    monkeypatch.setenv("FINTECH_PSP_WEBHOOK_URL", receiver[0])
    monkeypatch.setenv("FINTECH_PSP_WEBHOOK_SECRET_FILE", str(secret_file))
    client = await _start(make_app())
    yield client
    await client.close()


async def _token(psp: TestClient) -> dict[str, str]:
    r = await psp.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )
    assert r.status == 200
    return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


async def _wait_for(received: list[dict[str, Any]], n: int) -> None:
    for _ in range(200):
        if len(received) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} webhooks, got {len(received)}")


async def test_oauth_required_and_wrong_secret(psp: TestClient) -> None:
    assert (await psp.get("/v1/dict/ana@example.com")).status == 401
    r = await psp.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "x",
        },
    )
    assert r.status == 401


async def test_dict_lookup(psp: TestClient) -> None:
    h = await _token(psp)
    r = await psp.get("/v1/dict/111.444.777-35", headers=h)
    assert r.status == 200 and (await r.json())["name"] == "Maria da Silva"
    assert (await psp.get("/v1/dict/nobody@example.com", headers=h)).status == 404


async def test_payout_settles_with_signed_webhooks_and_is_idempotent(
    psp: TestClient, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    h = await _token(psp)
    body = {
        "external_reference": "payments/1",
        "method": "PIX",
        "amount": 1234,
        "pix_key": "ana@example.com",
    }
    first = await psp.post("/v1/payouts", json=body, headers=h)
    assert first.status == 201
    payout = await first.json()
    assert is_end_to_end_id(payout["end_to_end_id"])
    again = await psp.post("/v1/payouts", json=body, headers=h)
    assert again.status == 200 and (await again.json())["id"] == payout["id"]
    await _wait_for(receiver[1], 2)
    kinds = [e["type"] for e in receiver[1]]
    assert kinds == ["payout.processing", "payout.settled"]
    status = await (await psp.get(f"/v1/payouts/{payout['id']}", headers=h)).json()
    assert status["status"] == "SETTLED"
    bad = await psp.post(
        "/v1/payouts", json={**body, "external_reference": "p2", "pix_key": "x@y.com"}, headers=h
    )
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "PIX_KEY_NOT_FOUND"


async def test_faults_reject_duplicate_and_drop(
    psp: TestClient, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    h = await _token(psp)
    assert (await psp.post("/__admin/psp", json={"reject_rate": 2})).status == 400
    await psp.post("/__admin/psp", json={"reject_rate": 1.0, "webhook_duplicate_rate": 1.0})
    body = {
        "external_reference": "r1",
        "method": "TED",
        "amount": 500,
        "bank_account": {"bank_code": "341", "branch": "1", "account_number": "1-1"},
    }
    payout = await (await psp.post("/v1/payouts", json=body, headers=h)).json()
    await _wait_for(receiver[1], 4)
    finals = [e for e in receiver[1] if e["type"] == "payout.failed"]
    assert len(finals) == 2 and finals[0]["id"] == finals[1]["id"]  # same event twice
    await psp.post("/__admin/psp", json={"webhook_drop_rate": 1.0})
    body2 = {**body, "external_reference": "r2"}
    p2 = await (await psp.post("/v1/payouts", json=body2, headers=h)).json()
    await asyncio.sleep(0.3)
    assert not [e for e in receiver[1] if e["data"]["id"] == p2["id"]]
    found = await (
        await psp.get("/v1/payouts", params={"external_reference": "r2"}, headers=h)
    ).json()
    assert found["payouts"][0]["status"] == "SETTLED"
    assert payout["status"] == "ACCEPTED"


async def test_cob_paid_once_and_report_parses(
    psp: TestClient, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    h = await _token(psp)
    txid = "a" * 32
    r = await psp.put(
        f"/v1/cob/{txid}", json={"amount": 5000, "external_reference": "charges/c1"}, headers=h
    )
    assert r.status == 201
    assert (await psp.post(f"/__admin/cob/{txid}/pay")).status == 200
    assert (await psp.post(f"/__admin/cob/{txid}/pay")).status == 422  # CONCLUIDA
    await _wait_for(receiver[1], 1)
    assert receiver[1][0]["type"] == "pix.received"
    today = (await (await psp.get(f"/v1/cob/{txid}", headers=h)).json())["paid_at"]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    day = datetime.fromisoformat(today).astimezone(ZoneInfo("America/Sao_Paulo")).date().isoformat()
    report = await psp.get(f"/v1/settlements/{day}", params={"format": "json"}, headers=h)
    lines = parse_report(await report.read(), ReportFormat.JSON, report_date=day)
    assert [(ln.external_reference, ln.amount, ln.type) for ln in lines] == [
        ("charges/c1", 5000, "PIX_IN")
    ]


async def test_card_challenge_capture(psp: TestClient) -> None:
    h = await _token(psp)
    body = {"card_token": "tok_challenge_1", "amount": 900, "external_reference": "payments/c"}
    charge = await (await psp.post("/v1/card/charges", json=body, headers=h)).json()
    assert charge["status"] == "REQUIRES_CHALLENGE"
    assert (
        await psp.post(f"/v1/card/charges/{charge['id']}/capture", json={}, headers=h)
    ).status == 422
    ok = await psp.post(
        f"/v1/card/charges/{charge['id']}/challenge", json={"response": "123456"}, headers=h
    )
    assert (await ok.json())["status"] == "AUTHORIZED"
    cap = await psp.post(f"/v1/card/charges/{charge['id']}/capture", json={}, headers=h)
    assert (await cap.json())["status"] == "CAPTURED"
    declined = await psp.post(
        "/v1/card/charges",
        json={**body, "card_token": "tok_declined", "external_reference": "x"},
        headers=h,
    )
    assert declined.status == 422


async def test_card_refund_is_idempotent_by_refund_id(psp: TestClient) -> None:
    h = await _token(psp)
    body = {"card_token": "tok_ok_1", "amount": 1000, "external_reference": "payments/r"}
    charge = await (await psp.post("/v1/card/charges", json=body, headers=h)).json()
    await psp.post(f"/v1/card/charges/{charge['id']}/capture", json={}, headers=h)
    url = f"/v1/card/charges/{charge['id']}/refund"
    first = await (await psp.post(url, json={"amount": 400, "refund_id": "r1"}, headers=h)).json()
    again = await (await psp.post(url, json={"amount": 400, "refund_id": "r1"}, headers=h)).json()
    assert first["refunded"] == again["refunded"] == 400
    too_much = await psp.post(url, json={"amount": 700, "refund_id": "r2"}, headers=h)
    assert too_much.status == 422


async def test_receiver_returns_a_settled_payout_in_parts(
    psp: TestClient, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    h = await _token(psp)
    body = {
        "external_reference": "payments/ret",
        "method": "PIX",
        "amount": 1000,
        "pix_key": "ana@example.com",
    }
    payout = await (await psp.post("/v1/payouts", json=body, headers=h)).json()
    e2e = payout["end_to_end_id"]
    url = f"/__admin/payouts/{e2e}/devolucao"
    await _wait_for(receiver[1], 2)  # processing, settled
    assert (
        await psp.post(f"/__admin/payouts/E{'0' * 31}/devolucao/d1", json={"amount": 1})
    ).status == 404
    assert (await psp.post(f"{url}/d-1", json={"amount": 1})).status == 400  # id [a-zA-Z0-9]
    assert (await psp.post(f"{url}/d1", json={"amount": 1, "reason": "XX"})).status == 400
    first = await psp.post(f"{url}/d1", json={"amount": 300})
    assert first.status == 201
    record = await first.json()
    assert record["rtr_id"].startswith("D") and is_end_to_end_id("E" + record["rtr_id"][1:])
    assert (record["end_to_end_id"], record["external_reference"]) == (e2e, "payments/ret")
    again = await psp.post(f"{url}/d1", json={"amount": 300})  # a retry: no second return
    assert again.status == 200 and (await again.json()) == record
    assert (await psp.post(f"{url}/d1", json={"amount": 301})).status == 409
    assert (await psp.post(f"{url}/d2", json={"amount": 701})).status == 422  # 700 left
    assert (await psp.post(f"{url}/d2", json={"amount": 700, "reason": "FR01"})).status == 201
    await _wait_for(receiver[1], 4)
    returned = [e for e in receiver[1] if e["type"] == "payout.returned"]
    assert [(e["data"]["id"], e["data"]["amount"]) for e in returned] == [("d1", 300), ("d2", 700)]
    status = await (
        await psp.get("/v1/payouts", params={"external_reference": "payments/ret"}, headers=h)
    ).json()
    [found] = status["payouts"]
    assert found["status"] == "SETTLED" and found["returned"] == 1000
    assert [r["id"] for r in found["returns"]] == ["d1", "d2"]
    # The report lists each return as a REFUND under the payout's reference and
    # still parses with the ledger's own parser.
    from datetime import datetime
    from zoneinfo import ZoneInfo

    day = (
        datetime.fromisoformat(found["settled_at"])
        .astimezone(ZoneInfo("America/Sao_Paulo"))
        .date()
        .isoformat()
    )
    report = await psp.get(f"/v1/settlements/{day}", params={"format": "json"}, headers=h)
    lines = parse_report(await report.read(), ReportFormat.JSON, report_date=day)
    assert [(ln.external_reference, ln.amount, ln.type) for ln in lines] == [
        ("payments/ret", 1000, "PIX_OUT"),
        ("payments/ret", 300, "REFUND"),
        ("payments/ret", 700, "REFUND"),
    ]
    assert len({ln.psp_reference for ln in lines}) == 3
