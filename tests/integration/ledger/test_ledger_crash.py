"""SIGKILL the ledger in the middle of a load and restart it: no acknowledged
transfer is lost and none is applied twice.

The stack's own ledger is left alone (other tests use it): this module runs a
second ledger process on a free port with exactly the stack ledger's
environment (devstack.stack.service_env), which the design allows (several
writers serialise on row locks). The load uses fixed transfer ids and retries
every request until it gets an answer, as a real caller must.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from devstack.stack import Stack
from fintech.ledger.v1 import ledger_pb2
from tests.integration.ledger.ledger_it_support import (
    Balances,
    LedgerClient,
    key,
    transfer,
)
from tests.support.processes import (
    RestartableService,
    free_port,
    service_spec,
)

pytestmark = pytest.mark.integration

LANES = 6
REQUESTS_PER_LANE = 30
TRANSFERS_PER_REQUEST = 20
WALLETS = 8
KILLS = 2
LOAD_DEADLINE_S = 90.0


@dataclass
class KillableLedger(RestartableService):
    """A second ledger process, on a free port, that the test may SIGKILL."""

    target: str = ""


@pytest.fixture
def killable(stack: Stack) -> Iterator[KillableLedger]:
    port = free_port()
    ledger = KillableLedger(
        spec=service_spec(stack, "ledger", "ledger-killable", port=port),
        target=f"127.0.0.1:{port}",
    )
    ledger.start()
    try:
        yield ledger
    finally:
        ledger.supervisor.stop_all()


async def answered(
    client: LedgerClient,
    request: list[ledger_pb2.Transfer],
    failed_attempts: dict[str, int],
    rpc_key: str | None,
) -> ledger_pb2.CreateTransfersResponse:
    """Retry until the ledger answers (it is down or restarting meanwhile).

    With `rpc_key` None each attempt has a fresh RPC idempotency key: only the
    fixed transfer ids may keep a retry of a committed batch from applying
    twice. With a key, every attempt reuses it: the record stored in the
    committed batch (or its absence, if the kill came first) must decide.
    """
    deadline = time.monotonic() + LOAD_DEADLINE_S
    while True:
        try:
            return await client.create_transfers_raw(request, idempotency_key=rpc_key or key())
        except grpc.aio.AioRpcError as exc:
            failed_attempts[exc.code().name] = failed_attempts.get(exc.code().name, 0) + 1
            # UNAVAILABLE: down; ABORTED: the ledger asks for a retry;
            # INTERNAL/UNKNOWN: the connection died mid-call. All mean "try again".
            assert exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.INTERNAL,
                grpc.StatusCode.UNKNOWN,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            ), exc
            assert time.monotonic() < deadline, f"no answer within {LOAD_DEADLINE_S}s: {exc}"
            await asyncio.sleep(0.1)


async def test_sigkill_mid_load_loses_nothing_and_doubles_nothing(
    stack: Stack, ledger: LedgerClient, killable: KillableLedger
) -> None:
    await killable.wait_ready()
    source = (await ledger.source()).name
    wallets = [(await ledger.wallet()).name for _ in range(WALLETS)]
    rng = random.Random(20261129)
    plan = [
        [
            [
                transfer(source, rng.choice(wallets), rng.randint(1, 1000), code="CRASH_LOAD")
                for _ in range(TRANSFERS_PER_REQUEST)
            ]
            for _ in range(REQUESTS_PER_LANE)
        ]
        for _ in range(LANES)
    ]
    expected_credit = {w: 0 for w in wallets}
    for requests in plan:
        for request in requests:
            for t in request:
                expected_credit[t.credit_account] += t.amount.minor_units

    acknowledged: set[str] = set()
    failed_attempts: dict[str, int] = {}  # by status code: what the kills did to callers
    replayed = 0
    total_requests = LANES * REQUESTS_PER_LANE

    progress = asyncio.Event()

    async def run_lane(requests: list[list[ledger_pb2.Transfer]], keep_key: bool) -> None:
        nonlocal replayed
        client = LedgerClient(killable.target, stack.secrets_dir)
        try:
            for request in requests:
                rpc_key = key() if keep_key else None
                response = await answered(client, request, failed_attempts, rpc_key)
                for t, result in zip(request, response.results, strict=True):
                    assert result.status.code == 0, (t.name, result.status)
                    replayed += result.replayed
                    acknowledged.add(t.name)
                progress.set()
        finally:
            await client.close()

    async def killer() -> None:
        # Kill once a third and again at two thirds of the load is acknowledged,
        # while the lanes keep firing.
        for k in range(1, KILLS + 1):
            threshold = k * total_requests * TRANSFERS_PER_REQUEST // (KILLS + 1)
            while len(acknowledged) < threshold:
                progress.clear()
                await progress.wait()
            killable.kill()
            await asyncio.sleep(0.3)  # callers see it down for a moment
            killable.start()
            await killable.wait_ready()

    # Half the lanes retry under one RPC key, half under fresh ones.
    await asyncio.gather(
        *(run_lane(requests, lane % 2 == 0) for lane, requests in enumerate(plan)), killer()
    )

    every_id = {t.name for requests in plan for request in requests for t in request}
    assert acknowledged == every_id
    # Exactly once: each wallet holds each of its transfers once, and the sums match.
    for w in wallets:
        listed = [t.name for t in await ledger.transfers_of(w)]
        assert len(listed) == len(set(listed)), f"{w} lists a transfer twice"
        assert set(listed) == {
            t.name
            for requests in plan
            for request in requests
            for t in request
            if t.credit_account == w
        }
        assert Balances.of(await ledger.account(w)) == Balances(credits_posted=expected_credit[w])
    assert Balances.of(await ledger.account(source)).debits_posted == sum(expected_credit.values())
    await ledger.assert_verifies()
    # The kills must have hit callers in flight, or this tested nothing.
    assert failed_attempts, "no request was interrupted by the kills"
    print(f"interrupted attempts by code: {failed_attempts}")
    print(f"crash load: {len(every_id)} transfers, {KILLS} kills, {replayed} replayed results")
