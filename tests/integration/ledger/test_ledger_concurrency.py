"""Concurrency and two-phase behaviour against the real ledger and Postgres:
idempotent replays from many clients, balance constraints under racing
debits, linked chains, partial posts and expiry."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from devstack.stack import Stack
from tests.integration.ledger.ledger_it_support import (
    LINKED_FAILURE_REASONS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Balances,
    L,
    LedgerClient,
    Outcome,
    key,
    resolve,
    transfer,
)

pytestmark = pytest.mark.integration

CLIENTS = 10


async def clients(stack: Stack, n: int) -> list[LedgerClient]:
    """n clients, each on its own channel (its own HTTP/2 connection)."""
    return [LedgerClient(stack.grpc_targets["ledger"], stack.secrets_dir) for _ in range(n)]


async def close_all(cs: list[LedgerClient]) -> None:
    await asyncio.gather(*(c.close() for c in cs))


async def test_same_transfer_from_ten_clients_lands_once(
    stack: Stack, ledger: LedgerClient
) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    t = transfer(source, wallet, 1234, external_reference="replay-10")
    cs = await clients(stack, CLIENTS)
    try:
        # Different RPC idempotency keys: only the transfer id de-duplicates.
        results = await asyncio.gather(*(c.submit([t]) for c in cs))
    finally:
        await close_all(cs)
    outcomes = [o for [o] in results]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert sorted(o.replayed for o in outcomes) == [False] + [True] * (CLIENTS - 1)
    stored = {(o.transfer.name, o.transfer.journal_sequence) for o in outcomes if o.transfer}
    assert len(stored) == 1, stored
    account = Balances.of(await ledger.account(wallet))
    assert account.credits_posted == 1234
    assert len(await ledger.transfers_of(wallet)) == 1


async def test_same_rpc_key_from_ten_clients_answers_once(
    stack: Stack, ledger: LedgerClient
) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    t = transfer(source, wallet, 77)
    rpc_key = key()
    cs = await clients(stack, CLIENTS)

    async def until_answered(c: LedgerClient) -> Outcome:
        # A concurrent duplicate of the same RPC key is ABORTED (in flight):
        # the documented answer is to retry, which then returns the stored one.
        for _ in range(100):
            [o] = await c.submit([t], idempotency_key=rpc_key)
            if o.code != grpc.StatusCode.ABORTED:
                return o
            assert o.reason == "IDEMPOTENCY_REQUEST_IN_FLIGHT", o.error
            await asyncio.sleep(0.05)
        raise AssertionError("still in flight after 100 retries")

    try:
        outcomes = await asyncio.gather(*(until_answered(c) for c in cs))
    finally:
        await close_all(cs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert {o.transfer.journal_sequence for o in outcomes if o.transfer} != {0}
    assert len({o.transfer.SerializeToString() for o in outcomes if o.transfer}) == 1
    assert Balances.of(await ledger.account(wallet)).credits_posted == 77


async def test_a_repeated_rpc_key_is_answered_from_the_record_stored_with_the_transfers(
    ledger: LedgerClient,
) -> None:
    """The record is written in the writer's batch: a repeat gets the stored
    answer byte for byte (`replayed` false, as first answered; a retry that
    reached the writer again would say true), and a different request under
    the key is refused without applying anything."""
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    first, other = transfer(source, wallet, 301), transfer(source, wallet, 302)
    rpc_key = key()
    answer = await ledger.create_transfers_raw([first], idempotency_key=rpc_key)
    assert answer.results[0].transfer.name == first.name
    assert not answer.results[0].replayed
    again = await ledger.create_transfers_raw([first], idempotency_key=rpc_key)
    assert again.SerializeToString(deterministic=True) == answer.SerializeToString(
        deterministic=True
    )
    [refused] = await ledger.submit([other], idempotency_key=rpc_key)
    assert refused.code == grpc.StatusCode.ALREADY_EXISTS, refused.error
    assert refused.reason == "IDEMPOTENCY_KEY_REUSED", refused.error
    assert await ledger.get_transfer(other.name) is None
    assert Balances.of(await ledger.account(wallet)) == Balances(credits_posted=301)
    # Under a fresh key the same transfer id is the (finer) idempotency.
    [by_id] = await ledger.submit([first])
    assert by_id.ok and by_id.replayed


async def test_forty_concurrent_calls_with_one_rpc_key_apply_once(
    stack: Stack, ledger: LedgerClient
) -> None:
    """Forty calls with one key at once, through the writer's batches: one is
    applied and recorded; the others replay its record or, when they share
    its batch, are ABORTED (in flight). Which of the two is a race."""
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    t = transfer(source, wallet, 88)
    rpc_key = key()
    cs = await clients(stack, CLIENTS)
    try:
        outcomes = [
            o
            for answers in await asyncio.gather(
                *(cs[i % CLIENTS].submit([t], idempotency_key=rpc_key) for i in range(40))
            )
            for o in answers
        ]
    finally:
        await close_all(cs)
    aborted = [o for o in outcomes if o.code == grpc.StatusCode.ABORTED]
    assert all(o.reason == "IDEMPOTENCY_REQUEST_IN_FLIGHT" for o in aborted), aborted
    answered = [o for o in outcomes if o.code != grpc.StatusCode.ABORTED]
    assert answered and all(o.ok and not o.replayed for o in answered), answered
    assert len({o.transfer.SerializeToString() for o in answered if o.transfer}) == 1
    assert Balances.of(await ledger.account(wallet)) == Balances(credits_posted=88)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("amount", lambda t: setattr(t.amount, "minor_units", t.amount.minor_units + 1)),
        ("code", lambda t: setattr(t, "code", "OTHER")),
        ("credit_account", None),  # filled in below: another real account
    ],
)
async def test_same_id_different_field_names_the_field(
    ledger: LedgerClient, field: str, change: object
) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    original = transfer(source, wallet, 500)
    await ledger.submit_ok([original])
    altered = L.Transfer()
    altered.CopyFrom(original)
    if change is None:
        altered.credit_account = (await ledger.wallet()).name
    else:
        change(altered)  # type: ignore[operator]
    before = Balances.of(await ledger.account(wallet))
    [o] = await ledger.submit([altered])
    assert not o.ok and o.error is not None
    assert o.code == grpc.StatusCode.ALREADY_EXISTS, o.error
    assert o.reason == "TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS", o.error
    named = (
        o.error.metadata.get("field", ""),
        o.error.message,
        *(f for f, _ in o.error.violations),
    )
    assert any(field in text for text in named), o.error
    assert Balances.of(await ledger.account(wallet)) == before
    stored = await ledger.get_transfer(original.name)
    assert stored is not None and stored.amount.minor_units == 500
    # The unchanged transfer still replays.
    [again] = await ledger.submit([original])
    assert again.ok and again.replayed


async def test_concurrent_debits_never_overdraw(stack: Stack, ledger: LedgerClient) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    sink = (await ledger.wallet()).name
    await ledger.fund(source, wallet, 1000)
    # 40 debits of 100 against 1000: exactly 10 fit, in whatever order they land.
    # Half are holds (pending counts against the balance at once).
    debits = [
        transfer(wallet, sink, 100, kind=PENDING if i % 2 else L.TRANSFER_KIND_POSTED)
        for i in range(40)
    ]
    cs = await clients(stack, 8)
    try:
        results = await asyncio.gather(*(cs[i % len(cs)].submit([t]) for i, t in enumerate(debits)))
    finally:
        await close_all(cs)
    outcomes = [o for [o] in results]
    ok = [t for t, o in zip(debits, outcomes, strict=True) if o.ok]
    failed = [(t, o) for t, o in zip(debits, outcomes, strict=True) if not o.ok]
    assert len(ok) == 10, [o.error for o in outcomes if not o.ok][:3]
    for t, o in failed:
        assert o.code == grpc.StatusCode.FAILED_PRECONDITION, o.error
        assert o.reason == "INSUFFICIENT_FUNDS", o.error
        assert await ledger.get_transfer(t.name) is None
    b = Balances.of(await ledger.account(wallet))
    held = sum(100 for t in ok if t.kind == PENDING)
    assert b == Balances(
        debits_posted=1000 - held, credits_posted=1000, debits_pending=held, credits_pending=0
    )
    await ledger.assert_verifies()


async def test_linked_chain_is_all_or_nothing(ledger: LedgerClient) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    other = (await ledger.wallet()).name
    await ledger.fund(source, wallet, 100)
    before = [Balances.of(await ledger.account(n)) for n in (wallet, other)]
    chain = [
        transfer(wallet, other, 60, linked=True),
        transfer(other, wallet, 10, linked=True),
        transfer(wallet, other, 60),  # 100 - 60 + 10 - 60 < 0: sinks the chain
    ]
    loose = transfer(source, other, 5)  # unlinked neighbour: applies on its own
    outcomes = await ledger.submit([*chain, loose])
    assert [o.ok for o in outcomes] == [False, False, False, True], outcomes
    assert outcomes[2].reason == "INSUFFICIENT_FUNDS", outcomes[2].error
    assert {outcomes[0].reason, outcomes[1].reason} <= LINKED_FAILURE_REASONS, outcomes
    for t in chain:
        assert await ledger.get_transfer(t.name) is None
    after = [Balances.of(await ledger.account(n)) for n in (wallet, other)]
    assert after[0] == before[0]
    assert after[1].credits_posted == before[1].credits_posted + 5
    # The same chain that fits applies completely.
    fits = [
        transfer(wallet, other, 60, linked=True),
        transfer(other, wallet, 10, linked=True),
        transfer(wallet, other, 50),
    ]
    assert all(o.ok for o in await ledger.submit(fits))
    assert Balances.of(await ledger.account(wallet)).debits_posted == 110


async def test_partial_post_releases_the_rest_and_resolves_once(ledger: LedgerClient) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    sink = (await ledger.wallet()).name
    await ledger.fund(source, wallet, 1000)
    hold = transfer(wallet, sink, 400, kind=PENDING)
    await ledger.submit_ok([hold])
    b = Balances.of(await ledger.account(wallet))
    assert (b.debits_pending, b.debits_posted) == (400, 0)
    post = resolve(hold, POST_PENDING, 150)
    [posted] = await ledger.submit([post])
    assert posted.ok, posted.error
    b = Balances.of(await ledger.account(wallet))
    assert (b.debits_pending, b.debits_posted) == (0, 150)
    stored = await ledger.get_transfer(hold.name)
    assert stored is not None
    assert stored.state == L.TRANSFER_STATE_POSTED
    assert stored.posted_amount.minor_units == 150
    # Resolved once: a second post and a void both fail, the retry of the
    # first post replays.
    for second in (resolve(hold, POST_PENDING, 10), resolve(hold, VOID_PENDING)):
        [o] = await ledger.submit([second])
        assert not o.ok and o.code == grpc.StatusCode.FAILED_PRECONDITION, o.error
    [again] = await ledger.submit([post])
    assert again.ok and again.replayed
    assert Balances.of(await ledger.account(wallet)) == b
    await ledger.assert_verifies()


async def test_racing_resolutions_resolve_a_pending_once(
    stack: Stack, ledger: LedgerClient
) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    sink = (await ledger.wallet()).name
    await ledger.fund(source, wallet, 1000)
    hold = transfer(wallet, sink, 300, kind=PENDING)
    await ledger.submit_ok([hold])
    racers = [resolve(hold, POST_PENDING if i % 2 else VOID_PENDING) for i in range(10)]
    cs = await clients(stack, 10)
    try:
        results = await asyncio.gather(*(c.submit([t]) for c, t in zip(cs, racers, strict=True)))
    finally:
        await close_all(cs)
    winners = [t for t, [o] in zip(racers, results, strict=True) if o.ok]
    assert len(winners) == 1, results
    stored = await ledger.get_transfer(hold.name)
    assert stored is not None
    expected_state = (
        L.TRANSFER_STATE_POSTED if winners[0].kind == POST_PENDING else L.TRANSFER_STATE_VOIDED
    )
    assert stored.state == expected_state
    b = Balances.of(await ledger.account(wallet))
    assert b.debits_pending == 0
    assert b.debits_posted == (300 if expected_state == L.TRANSFER_STATE_POSTED else 0)


async def test_pending_expires_and_releases(ledger: LedgerClient) -> None:
    source = (await ledger.source()).name
    wallet = (await ledger.wallet()).name
    sink = (await ledger.wallet()).name
    await ledger.fund(source, wallet, 500)
    hold = transfer(wallet, sink, 500, kind=PENDING, timeout_s=1)
    await ledger.submit_ok([hold])
    # Funds are reserved at once: nothing more can be debited.
    [blocked] = await ledger.submit([transfer(wallet, sink, 1)])
    assert blocked.reason == "INSUFFICIENT_FUNDS", blocked.error
    deadline = time.monotonic() + 15
    while True:
        stored = await ledger.get_transfer(hold.name)
        assert stored is not None
        if stored.state != L.TRANSFER_STATE_PENDING:
            break
        assert time.monotonic() < deadline, "pending with a 1 s timeout never expired"
        await asyncio.sleep(0.25)
    assert stored.state == L.TRANSFER_STATE_EXPIRED
    assert stored.HasField("resolve_time")
    b = Balances.of(await ledger.account(wallet))
    assert (b.debits_pending, b.debits_posted, b.credits_posted) == (0, 0, 500)
    assert Balances.of(await ledger.account(sink)).credits_pending == 0
    [late] = await ledger.submit([resolve(hold, POST_PENDING)])
    assert not late.ok and late.code == grpc.StatusCode.FAILED_PRECONDITION, late.error
    assert Balances.of(await ledger.account(wallet)) == b
