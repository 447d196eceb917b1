"""Property test: random programs of transfers, holds, posts (full and partial),
voids, expiries, retries and linked chains, run by several concurrent clients
against the real ledger and Postgres; afterwards the books must add up.

A program is abstract (account indexes, amounts, references to earlier holds);
ids are minted fresh when it runs, so hypothesis replaying or shrinking an
example never collides with an earlier run in the same database. Each example
opens its own five accounts, so the expected balances are exactly what these
clients saw acknowledged, whatever order the ledger applied them in.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from devstack.stack import Stack
from fintech.ledger.v1 import ledger_pb2
from tests.integration.ledger.ledger_it_support import (
    LINKED_FAILURE_REASONS,
    PENDING,
    POST_PENDING,
    POSTED,
    VOID_PENDING,
    Balances,
    L,
    LedgerClient,
    Model,
    Outcome,
    assert_entries_match,
    assert_flags_hold,
    transfer,
)

pytestmark = pytest.mark.integration

LANES = 4
FUNDING = 1000
# Account indexes in a program: 0 unconstrained source, 1-3 no-overdraft
# wallets, 4 an account whose credits may not exceed its debits.
SOURCE, RECEIVABLE = 0, 4
ACCOUNTS = 5

# Failures a correct ledger may answer to the well-formed requests built here.
ALLOWED_REASONS = {
    "INSUFFICIENT_FUNDS",
    "CREDITS_EXCEED_DEBITS",
    "PENDING_TRANSFER_NOT_FOUND",
    "PENDING_TRANSFER_NOT_PENDING",
    "PENDING_TRANSFER_ALREADY_RESOLVED",
    "PENDING_TRANSFER_EXPIRED",
    *LINKED_FAILURE_REASONS,
}


# -- programs -------------------------------------------------------------------

pair = st.tuples(st.integers(0, ACCOUNTS - 1), st.integers(1, ACCOUNTS - 1)).map(
    # (debit, offset) → two distinct accounts: debit = credit is bad input, tested elsewhere.
    lambda p: (p[0], (p[0] + p[1]) % ACCOUNTS)
)
amount = st.integers(1, 700)
op = st.one_of(
    st.tuples(st.just("post"), pair, amount),
    st.tuples(st.just("hold"), pair, amount, st.sampled_from([0, 0, 1])),
    st.tuples(st.just("post_pending"), st.integers(0, 50), st.sampled_from([0, 1, 50, 100])),
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("retry"), st.integers(0, 50)),
    st.tuples(st.just("duplicate"), st.integers(0, 50)),
    st.tuples(st.just("chain"), st.lists(st.tuples(pair, amount), min_size=2, max_size=3)),
    st.tuples(st.just("pause"), st.sampled_from([0.05, 1.2])),
)
programs = st.lists(st.lists(op, min_size=1, max_size=7), min_size=2, max_size=LANES)


# -- running a program ----------------------------------------------------------


@dataclass
class Run:
    accounts: list[str]
    holds: list[ledger_pb2.Transfer]
    # (lane, transfer, outcome) in the order each lane saw its answers.
    attempts: list[tuple[int, ledger_pb2.Transfer, Outcome]] = field(default_factory=list)
    # Every single transfer any lane sent: `duplicate` re-sends one of them,
    # possibly while its own lane is still waiting for the original.
    sent_by_anyone: list[ledger_pb2.Transfer] = field(default_factory=list)
    chains: list[list[tuple[ledger_pb2.Transfer, Outcome]]] = field(default_factory=list)


def _hold_ops(program: list[list[tuple]]) -> list[tuple]:  # type: ignore[type-arg]
    return [o for lane in program for o in lane if o[0] == "hold"]


async def run_lane(
    lane_index: int,
    client: LedgerClient,
    lane: list[tuple],  # type: ignore[type-arg]
    run: Run,
    hold_of: dict[int, ledger_pb2.Transfer],
) -> None:
    sent: list[ledger_pb2.Transfer] = []
    acc = run.accounts
    for o in lane:
        batch: list[ledger_pb2.Transfer]
        match o:
            case ("post", (d, c), a):
                batch = [transfer(acc[d], acc[c], a)]
            case ("hold", _, _, _):
                batch = [hold_of[id(o)]]
            case ("post_pending", ref, percent):
                if not run.holds:
                    continue
                hold = run.holds[ref % len(run.holds)]
                part = math.ceil(hold.amount.minor_units * percent / 100)
                batch = [_resolution(hold, POST_PENDING, part)]
            case ("void", ref):
                if not run.holds:
                    continue
                batch = [_resolution(run.holds[ref % len(run.holds)], VOID_PENDING, 0)]
            case ("retry", ref):
                if not sent:
                    continue
                batch = [sent[ref % len(sent)]]  # same id, same fields
            case ("duplicate", ref):
                if not run.sent_by_anyone:
                    continue
                batch = [run.sent_by_anyone[ref % len(run.sent_by_anyone)]]
            case ("chain", links):
                batch = [
                    transfer(acc[d], acc[c], a, linked=i < len(links) - 1)
                    for i, ((d, c), a) in enumerate(links)
                ]
            case ("pause", seconds):
                await asyncio.sleep(seconds)  # lets 1 s holds expire mid-run
                continue
            case _:
                raise AssertionError(o)
        outcomes = await client.submit(batch)
        pairs = list(zip(batch, outcomes, strict=True))
        run.attempts.extend((lane_index, t, o) for t, o in pairs)
        if len(batch) > 1:
            run.chains.append(pairs)
        else:
            sent.append(batch[0])
            run.sent_by_anyone.append(batch[0])


def _resolution(hold: ledger_pb2.Transfer, kind: int, amount: int) -> ledger_pb2.Transfer:
    return transfer(
        hold.debit_account,
        hold.credit_account,
        amount,
        kind=kind,
        pending=hold.name,
    )


SETTLE_TIMEOUT_S = 20.0


async def settle_timed_holds(ledger: LedgerClient, run: Run) -> None:
    """Wait until no hold with a timeout is still pending.

    The ledger expires due holds on a one-second tick. The checks read
    transfers and balances one after the other; a hold expiring between two
    of those reads would look like a discrepancy that the ledger never had.
    """
    timed = [h.name for h in run.holds if h.timeout.seconds > 0]
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while timed:
        states = [await ledger.get_transfer(name) for name in timed]
        timed = [
            name
            for name, stored in zip(timed, states, strict=True)
            if stored is not None and stored.state == L.TRANSFER_STATE_PENDING
        ]
        if not timed:
            return
        assert time.monotonic() < deadline, f"holds never expired: {timed}"
        await asyncio.sleep(0.25)


async def open_books(ledger: LedgerClient) -> list[str]:
    source = (await ledger.source()).name
    wallets = [(await ledger.wallet()).name for _ in range(3)]
    receivable = (
        await ledger.create_account(L.ACCOUNT_KIND_LOAN_RECEIVABLE, no_credit_beyond_debits=True)
    ).name
    # Every wallet starts with money; the receivable starts "owed" money, so
    # credits to it (repayments) are possible up to that amount.
    funding = [transfer(source, w, FUNDING, code="FUNDING") for w in wallets]
    funding.append(transfer(receivable, wallets[0], FUNDING // 2, code="FUNDING"))
    await ledger.submit_ok(funding)
    return [source, *wallets, receivable]


# -- checking the books ---------------------------------------------------------


async def check(ledger: LedgerClient, run: Run, journal_before: int) -> None:
    by_id: dict[str, list[tuple[int, Outcome]]] = {}
    spec: dict[str, ledger_pb2.Transfer] = {}
    for lane, t, o in run.attempts:
        by_id.setdefault(t.name, []).append((lane, o))
        spec[t.name] = t
        if not o.ok:
            assert o.error is not None
            assert o.code in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.NOT_FOUND,
            ), (t, o.error)
            assert o.reason in ALLOWED_REASONS, (t, o.error)

    # What the example exercised (`--hypothesis-show-statistics` prints it).
    for _, t, o in run.attempts:
        kind = L.TransferKind.Name(t.kind).removeprefix("TRANSFER_KIND_")
        event(f"{kind}: {'replayed' if o.replayed else 'ok' if o.ok else o.reason}")

    # Linked chains: all members succeed or none does.
    for chain in run.chains:
        assert len({o.ok for _, o in chain}) == 1, chain

    # Each id applied at most once, whichever lanes sent it; within a lane
    # (where each attempt starts after the previous answer) every attempt
    # after an applied one replays it. Across lanes the order in which answers
    # arrived says nothing about the order the ledger applied them in.
    applied: dict[str, ledger_pb2.Transfer] = {}
    for name, attempts in by_id.items():
        outcomes = [o for _, o in attempts]
        fresh = [o for o in outcomes if o.ok and not o.replayed]
        assert len(fresh) <= 1, (name, outcomes)
        if any(o.ok for o in outcomes):
            assert len(fresh) == 1, (name, outcomes)
        for lane in {lane for lane, _ in attempts}:
            seen = [o for lane_of, o in attempts if lane_of == lane]
            if any(o.ok for o in seen):
                first = next(i for i, o in enumerate(seen) if o.ok)
                assert all(o.ok and o.replayed for o in seen[first + 1 :]), (name, seen)
        stored = await ledger.get_transfer(name)
        assert (stored is not None) == bool(fresh), (name, outcomes)
        if stored is not None:
            applied[name] = stored

    sequences = [t.journal_sequence for t in applied.values()]
    assert all(s > 0 for s in sequences)
    assert len(set(sequences)) == len(sequences), "two transfers share a journal position"

    # Expected balances from what was acknowledged, pendings by final state,
    # and each pending resolved at most once, consistently with that state.
    model = Model()
    for name, t in applied.items():
        request = spec[name]
        if request.kind == POSTED:
            model.add_posted(
                request.debit_account, request.credit_account, request.amount.minor_units
            )
        elif request.kind == PENDING:
            resolutions = [
                (spec[n].kind, spec[n].amount.minor_units)
                for n in applied
                if spec[n].pending_transfer == name
            ]
            assert len(resolutions) <= 1, (name, resolutions)
            debit, credit, full = (
                request.debit_account,
                request.credit_account,
                request.amount.minor_units,
            )
            if t.state == L.TRANSFER_STATE_PENDING:
                assert not resolutions, (name, resolutions)
                model.add_pending(debit, credit, full)
            elif t.state == L.TRANSFER_STATE_POSTED:
                assert [k for k, _ in resolutions] == [POST_PENDING], (name, resolutions)
                requested = resolutions[0][1] or full
                assert t.posted_amount.minor_units == requested, (t, resolutions)
                model.add_posted(debit, credit, requested)
            elif t.state == L.TRANSFER_STATE_VOIDED:
                assert [k for k, _ in resolutions] == [VOID_PENDING], (name, resolutions)
            else:
                assert t.state == L.TRANSFER_STATE_EXPIRED, t
                event("a hold expired")
                assert not resolutions, (name, resolutions)
                assert request.timeout.seconds > 0, "a pending without timeout expired"

    # The funding batch is not in run.attempts: add it from the ledger itself
    # (it is the same for every example: three wallets and the receivable).
    model.add_posted(run.accounts[SOURCE], run.accounts[1], FUNDING)
    model.add_posted(run.accounts[SOURCE], run.accounts[2], FUNDING)
    model.add_posted(run.accounts[SOURCE], run.accounts[3], FUNDING)
    model.add_posted(run.accounts[RECEIVABLE], run.accounts[1], FUNDING // 2)

    totals = Balances()
    for name in run.accounts:
        account = await ledger.account(name)
        assert_flags_hold(account)
        actual = Balances.of(account)
        assert actual == model.balances.get(name, Balances()), (
            name,
            actual,
            model.balances.get(name),
        )
        assert_entries_match(account, await ledger.entries(name))
        # The stored balances equal the ledger's own recomputation from entries.
        assert await ledger.balance_now(name) == actual, name
        totals.debits_posted += actual.debits_posted
        totals.credits_posted += actual.credits_posted
        totals.debits_pending += actual.debits_pending
        totals.credits_pending += actual.credits_pending
    # A closed system of five accounts: debits = credits, posted and pending.
    assert totals.debits_posted == totals.credits_posted, totals
    assert totals.debits_pending == totals.credits_pending, totals

    report = await ledger.assert_verifies()
    assert report.journal_records_checked >= journal_before + len(applied) + 4


@pytest.fixture(scope="module")
async def lanes(stack: Stack) -> AsyncIterator[list[LedgerClient]]:
    """One client (own channel, own connection) per concurrent lane."""
    clients = [LedgerClient(stack.grpc_targets["ledger"], stack.secrets_dir) for _ in range(LANES)]
    yield clients
    await asyncio.gather(*(c.close() for c in clients))


@settings(
    max_examples=12,
    deadline=None,
    database=None,  # no .hypothesis/ in the repository; failures print the program
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(program=programs)
# Always run once, whatever hypothesis draws: a hold that expires while a post
# races it, a debit blocked by a hold, a chain sunk by its last member, a
# void racing a partial post, and retries and cross-lane duplicates.
@example(
    program=[
        [
            ("hold", (1, 2), 600, 1),
            ("post", (1, 3), 700),
            ("pause", 1.2),
            ("post_pending", 0, 100),
            ("retry", 1),
        ],
        [
            ("post", (2, 1), 300),
            ("retry", 0),
            ("duplicate", 0),
            ("chain", [((3, 0), 900), ((3, 4), 200)]),
        ],
        [("hold", (3, 4), 100, 0), ("void", 1), ("post_pending", 1, 50), ("duplicate", 2)],
    ]
)
async def test_random_concurrent_programs_keep_the_books(
    ledger: LedgerClient,
    lanes: list[LedgerClient],
    program: list[list[tuple]],  # type: ignore[type-arg]
) -> None:
    journal_before = (await ledger.verify()).journal_records_checked
    accounts = await open_books(ledger)
    hold_of: dict[int, ledger_pb2.Transfer] = {}
    for o in _hold_ops(program):
        _, (d, c), a, timeout = o
        hold_of[id(o)] = transfer(accounts[d], accounts[c], a, kind=PENDING, timeout_s=timeout)
    run = Run(accounts=accounts, holds=list(hold_of.values()))
    await asyncio.gather(
        *(run_lane(i, lanes[i], lane, run, hold_of) for i, lane in enumerate(program))
    )
    await settle_timed_holds(ledger, run)
    await check(ledger, run, journal_before)
