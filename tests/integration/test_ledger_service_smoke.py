"""Ledger end to end, a few checks: wallet from user.registered, a funded posted
transfer with its replay, the customer's statement through the edge,
ownership, and VerifyLedger. The deep checks live in tests/integration/ledger/."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import nats
import nats.js.errors
import psycopg
import pytest

from devstack.stack import Stack
from devstack.topology import db_role
from fintech.events.v1 import envelope_pb2
from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain.chart import BANK_CASH, FEE_REVENUE
from services.platform.errors import details_from_status
from services.platform.service_token import ServiceTokenSigner, service_channel
from services.platform.settings import DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER
from tests.integration.edge import EdgeClient, error_reason

pytestmark = pytest.mark.integration
WALLET_WAIT_S = 30.0


@pytest.fixture
def client(stack: Stack) -> Iterator[EdgeClient]:
    edge = EdgeClient(stack.https_url, str(stack.ca_file))
    yield edge
    edge.close()


@pytest.fixture
async def ledger(stack: Stack) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceStub]:
    signer = ServiceTokenSigner.from_files(
        stack.secrets_dir / "jwt_signing_key.pem",
        stack.secrets_dir / "jwks.json",
        service="test",
        issuer=DEFAULT_JWT_ISSUER,
        audience=DEFAULT_JWT_AUDIENCE,
    )
    channel = service_channel(stack.grpc_targets["ledger"], signer)
    yield ledger_pb2_grpc.LedgerServiceStub(channel)
    await channel.close()


def _wallet(client: EdgeClient, token: str) -> dict[str, object]:
    deadline = time.monotonic() + WALLET_WAIT_S
    while True:
        listed = client.request("GET", "/v1/accounts", token=token)
        assert listed.status_code == 200, listed.text
        accounts = listed.json().get("accounts", [])
        if accounts:
            assert len(accounts) == 1, accounts
            return dict(accounts[0])
        assert time.monotonic() < deadline, "no wallet after user.registered"
        time.sleep(0.3)


def _transfer(debit: str, credit: str, amount: int, name: str) -> ledger_pb2.Transfer:
    return ledger_pb2.Transfer(
        name=name,
        debit_account=debit,
        credit_account=credit,
        amount=money_pb2.Money(currency_code="BRL", minor_units=amount),
        kind=ledger_pb2.TRANSFER_KIND_POSTED,
        code="SMOKE_FUNDING",
        external_reference=f"smoke-{uuid.uuid4().hex[:8]}",
    )


async def _create(
    ledger: ledger_pb2_grpc.LedgerServiceStub, *transfers: ledger_pb2.Transfer
) -> ledger_pb2.CreateTransfersResponse:
    return await ledger.CreateTransfers(
        ledger_pb2.CreateTransfersRequest(transfers=list(transfers)),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
        timeout=20,
    )


async def _last_event(stack: Stack, subject: str) -> envelope_pb2.EventEnvelope:
    nc = await nats.connect(stack.infra.nats_url)
    try:
        deadline = time.monotonic() + WALLET_WAIT_S
        while True:
            try:
                msg = await nc.jetstream().get_last_msg("FINTECH", subject)
                return envelope_pb2.EventEnvelope.FromString(msg.data or b"")
            except nats.js.errors.NotFoundError:
                assert time.monotonic() < deadline, f"nothing published on {subject}"
                await asyncio.sleep(0.3)
    finally:
        await nc.close()


async def test_reservation_expires_through_the_writer(
    stack: Stack, ledger: ledger_pb2_grpc.LedgerServiceStub
) -> None:
    hold = _transfer(f"accounts/{BANK_CASH.id}", f"accounts/{FEE_REVENUE.id}", 5, _name())
    hold.kind = ledger_pb2.TRANSFER_KIND_PENDING
    hold.timeout.seconds = 1
    [made] = (await _create(ledger, hold)).results
    assert made.status.code == 0 and made.transfer.state == ledger_pb2.TRANSFER_STATE_PENDING
    deadline = time.monotonic() + 15
    while True:
        got = await ledger.GetTransfer(ledger_pb2.GetTransferRequest(name=hold.name), timeout=10)
        if got.state == ledger_pb2.TRANSFER_STATE_EXPIRED:
            break
        assert time.monotonic() < deadline, "the reservation never expired"
        await asyncio.sleep(0.5)
    post = ledger_pb2.Transfer(
        name=_name(),
        kind=ledger_pb2.TRANSFER_KIND_POST_PENDING,
        pending_transfer=hold.name,
        code="CAPTURE",
    )
    [late] = (await _create(ledger, post)).results
    assert details_from_status(late.status).reason == "PENDING_TRANSFER_ALREADY_RESOLVED"
    envelope = await _last_event(stack, "fintech.events.ledger.transfer.expired")
    assert envelope.subject.startswith("transfers/")


def _name() -> str:
    return f"transfers/{uuid.uuid4()}"


async def test_wallet_funding_statement_ownership_and_verify(
    stack: Stack, client: EdgeClient, ledger: ledger_pb2_grpc.LedgerServiceStub
) -> None:
    session, _ = client.signed_up()
    wallet = _wallet(client, session.access_token)
    assert wallet["owner"] == session.user_name
    assert wallet["kind"] == "ACCOUNT_KIND_USER_WALLET"
    assert wallet["currency_code"] == "BRL"
    assert wallet["flags"]["debits_must_not_exceed_credits"] is True  # type: ignore[index]
    wallet_name = str(wallet["name"])

    bank = f"accounts/{BANK_CASH.id}"
    funding = _transfer(bank, wallet_name, 10_000, f"transfers/{uuid.uuid4()}")
    first = await _create(ledger, funding)
    [result] = first.results
    assert result.status.code == 0, result.status
    assert result.transfer.state == ledger_pb2.TRANSFER_STATE_POSTED
    assert result.transfer.journal_sequence > 0
    # Same transfer id under a new RPC key: replayed, not applied twice.
    [again] = (await _create(ledger, funding)).results
    assert again.replayed and again.transfer == result.transfer

    overdraft = _transfer(
        wallet_name, f"accounts/{FEE_REVENUE.id}", 10_001, f"transfers/{uuid.uuid4()}"
    )
    [refused] = (await _create(ledger, overdraft)).results
    details = details_from_status(refused.status)
    assert (details.code, details.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
    )

    account = client.request("GET", f"/v1/{wallet_name}", token=session.access_token).json()
    assert account["available_balance"]["minor_units"] == "10000"
    statement = client.request("GET", f"/v1/{wallet_name}/entries", token=session.access_token)
    assert statement.status_code == 200, statement.text
    [entry] = statement.json()["entries"]
    assert entry["transfer"] == funding.name
    assert entry["direction"] == "DIRECTION_CREDIT"
    assert entry["running_balance"]["minor_units"] == "10000"
    assert entry["counterparty_account"] == bank

    as_of = client.request(
        "GET",
        f"/v1/{wallet_name}/balance",
        token=session.access_token,
        params={"as_of_time": "2000-01-01T00:00:00Z"},
    ).json()
    assert as_of["credits_posted"].get("minor_units", "0") == "0", as_of
    now = client.request("GET", f"/v1/{wallet_name}/balance", token=session.access_token).json()
    assert now["credits_posted"]["minor_units"] == "10000", now

    other = client.request("GET", f"/v1/{bank}", token=session.access_token)
    assert other.status_code == 403 and error_reason(other) == "PERMISSION_DENIED"
    missing = client.request("GET", f"/v1/accounts/{uuid.uuid4()}", token=session.access_token)
    assert missing.status_code == 403, "a missing account looks like someone else's"

    # The writer's bulk outbox rows reach JetStream as platform envelopes.
    envelope = await _last_event(stack, "fintech.events.ledger.transfer.posted")
    assert envelope.source == "ledger" and envelope.subject.startswith("transfers/")

    report = await ledger.VerifyLedger(ledger_pb2.VerifyLedgerRequest(), timeout=60)
    assert report.ok, report.discrepancies
    assert report.journal_records_checked >= 1


def _verify_cli(stack: Stack) -> subprocess.CompletedProcess[str]:
    infra = stack.infra
    url = infra.service_database_url(db_role("ledger"), infra.secrets.db_password("ledger"))
    env = {**os.environ, "FINTECH_DATABASE_URL": url, "PYTHONPATH": ".:gen"}
    return subprocess.run(
        [sys.executable, "-m", "services.ledger.verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_verify_cli_reports_a_tampered_balance(
    stack: Stack, ledger: ledger_pb2_grpc.LedgerServiceStub
) -> None:
    clean = _verify_cli(stack)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    opened = await ledger.CreateAccount(
        ledger_pb2.CreateAccountRequest(
            account=ledger_pb2.Account(
                owner="system/smoke-tamper",
                currency_code="BRL",
                kind=ledger_pb2.ACCOUNT_KIND_SUSPENSE,
            )
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
        timeout=20,
    )
    account_id = opened.name.removeprefix("accounts/")
    tamper = "UPDATE ledger.accounts SET credits_posted = credits_posted + %s WHERE id = %s"
    # Nobody else uses this account; the finally puts the balance back.
    with psycopg.connect(stack.infra.pg_admin_url, autocommit=True) as conn:
        conn.execute(tamper, (7, account_id))
        try:
            broken = _verify_cli(stack)
        finally:
            conn.execute(tamper, (-7, account_id))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"BALANCE_MISMATCH accounts/{account_id}: credits_posted: stored 7" in broken.stdout
    assert "UNBALANCED_CURRENCY BRL" in broken.stdout
