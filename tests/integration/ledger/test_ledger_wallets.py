"""identity's user.registered → exactly one BRL wallet, however often it arrives.

Registration goes through identity's real CreateUser RPC; the extra deliveries
are envelopes published straight to JetStream with fresh event ids (what a
re-publishing producer would send: the consumer's processed_events table does
not catch them, only the wallet's uniqueness per owner does).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from devstack.stack import Stack
from fintech.events.v1 import identity_events_pb2
from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from fintech.ledger.v1 import ledger_pb2
from tests.integration.edge import PASSWORD, new_user_body
from tests.integration.ledger.ledger_it_support import L, LedgerClient, key
from tests.support.events import publish_events

pytestmark = pytest.mark.integration

WALLET_DEADLINE_S = 20.0


async def register(stack: Stack) -> str:
    body = new_user_body()
    async with grpc.aio.insecure_channel(stack.grpc_targets["identity"]) as channel:
        user = await identity_pb2_grpc.IdentityServiceStub(channel).CreateUser(
            identity_pb2.CreateUserRequest(
                user=identity_pb2.User(**body["user"]), password=PASSWORD
            ),
            metadata=(("idempotency-key", key()),),
            timeout=20,
        )
    assert user.name.startswith("users/"), user
    return str(user.name)


async def wallets_of(ledger: LedgerClient, owner: str) -> list[ledger_pb2.Account]:
    page = await ledger.stub.ListAccounts(
        ledger_pb2.ListAccountsRequest(owner=owner, kind=L.ACCOUNT_KIND_USER_WALLET, page_size=50),
        timeout=10,
    )
    return list(page.accounts)


async def wait_for_wallet(ledger: LedgerClient, owner: str) -> list[ledger_pb2.Account]:
    deadline = time.monotonic() + WALLET_DEADLINE_S
    while True:
        found = await wallets_of(ledger, owner)
        if found:
            return found
        assert time.monotonic() < deadline, f"no wallet for {owner} after {WALLET_DEADLINE_S}s"
        await asyncio.sleep(0.2)


async def publish_registered(nats_url: str, user: str, times: int) -> None:
    """identity's user.registered, `times` times, each with its own event id."""
    event = identity_events_pb2.UserRegistered(user=user)
    await publish_events(nats_url, "identity", [(user, event)] * times)


async def test_registration_opens_exactly_one_brl_wallet(
    stack: Stack, ledger: LedgerClient
) -> None:
    user = await register(stack)
    [wallet] = await wait_for_wallet(ledger, user)
    assert wallet.owner == user
    assert wallet.currency_code == "BRL"
    assert wallet.kind == L.ACCOUNT_KIND_USER_WALLET
    assert wallet.flags.debits_must_not_exceed_credits
    assert not wallet.flags.credits_must_not_exceed_debits
    assert not wallet.closed
    assert wallet.available_balance.minor_units == 0

    # The same registration delivered three more times under new event ids.
    await publish_registered(stack.infra.nats_url, user, times=3)
    # A marker after them: once its wallet exists the consumer has seen the
    # duplicates too (one durable consumer, delivered in stream order), and
    # a short grace covers handlers still finishing.
    marker = f"users/{uuid.uuid4()}"
    await publish_registered(stack.infra.nats_url, marker, times=1)
    await wait_for_wallet(ledger, marker)
    await asyncio.sleep(0.5)
    assert [w.name for w in await wallets_of(ledger, user)] == [wallet.name]
