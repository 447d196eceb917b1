"""Benchmark: ledger throughput and latency against the database's own limit.

In one run, on one Postgres with durability on (fsync, synchronous_commit,
full_page_writes at their defaults; the `bench` profile does not relax them):
1. pgbench's built-in TPC-B-like rate with 16 clients (the reference: what the
   database does with small durable transactions);
2. ledger transfers/s through gRPC, batches of 1,000, between many accounts;
3. transfers/s with one transfer per request from 64 concurrent clients;
4. the same, every transfer debiting one hot account;
5. p50/p99 latency of (3) at half its measured rate, open loop, each latency
   taken from the request's scheduled start (no coordinated omission);
6. the ceiling: (3)'s load against a do-nothing LedgerService in its own
   process (bench/noop_ledger.py: decode, echo, no interceptors, no database),
   what a Python gRPC server and this generator reach before any ledger work;
7. the database's ceiling for (2): Postgres alone storing the rows of
   1,000-transfer batches, generated server-side (bench/ledger_db_floor.py),
   with two sessions at once and with one (the ceiling of serialised writes);
8. what one event costs JetStream and its Python publisher, alone
   (bench/event_publish_floor.py).
Each phase starts once the ledger's outbox relay has published the previous
phase's events (the wait after (2) and (3) is printed as *_outbox_drain_s).
Prints `name: value` lines, then the ratios (2)/(1), (3)/(1), (4)/(3), (6)/(1),
(3)/(6), (7)/(1) and (2)/(7), then what (2), (3), (6), (7) and (8) cost the
machine per transfer (bench/proc_cpu.py), by part of the stack, against the
budget: all the machine's cores divided by the target rate.

Starts its own stack (profile `bench`, port base 12000, like edge_latency.py)
unless LEDGER_BENCH_TARGET (host:port of a ledger), LEDGER_BENCH_SECRETS_DIR,
LEDGER_BENCH_PG_ADMIN_URL and LEDGER_BENCH_NATS_URL name a running one. The
load generator is Python in this process and shares the machine's cores with
the stack, so the ledger figures are a floor. Every phase is bounded in time
and in request count.

    python bench/ledger_throughput.py [--seconds 10] [--pgbench-seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from bench.event_publish_floor import event_floor_run  # noqa: E402
from bench.ledger_db_floor import db_floor_run  # noqa: E402
from bench.loadgen import bench_stack, open_loop, percentile  # noqa: E402
from bench.proc_cpu import CpuCost, CpuSnapshot, cpu_by_part  # noqa: E402
from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc  # noqa: E402
from fintech.type.v1 import money_pb2  # noqa: E402
from services.platform.service_token import ServiceTokenSigner, service_channel  # noqa: E402
from services.platform.settings import DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER  # noqa: E402

BENCH_PORT_BASE = 12000  # below 32768: ephemeral ports start there
PGBENCH_CLIENTS = 16
PGBENCH_SCALE = 16  # one branch row per client: TPC-B's own contention, not more
PGBENCH_DATABASE = "pgbench_reference"
BATCH = 1000
BATCH_CLIENTS = 4  # concurrent batch senders: the writer may merge them (up to 8,000)
SINGLE_CLIENTS = 64
CHANNELS = 8  # the 64 clients share 8 HTTP/2 connections
ACCOUNTS = 1000
FUNDING = 10**12  # minor units per wallet: no transfer here ever lacks funds
MAX_IN_FLIGHT = 512  # bounds the open-loop generator if the ledger stalls
CALL_TIMEOUT_S = 30.0
WARMUP_SECONDS = 1.0
CREATE_TRANSFERS = "/fintech.ledger.v1.LedgerService/CreateTransfers"
MAX_DRAIN_SECONDS = 300.0
DRAIN_POLL_SECONDS = 0.25


# ------------------------------------------------------------------ pgbench


def pgbench_bin() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))


def pgbench_tps(admin_url: str, seconds: int) -> tuple[float, dict[str, str]]:
    """Initialise a separate database and run TPC-B-like with 16 clients; its tps."""
    maintenance = with_database(admin_url, "postgres")
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=10) as conn:
        settings = {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "full_page_writes", "wal_level")
        }
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (PGBENCH_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {PGBENCH_DATABASE}")
    url = with_database(admin_url, PGBENCH_DATABASE)
    binary = str(pgbench_bin())
    subprocess.run(
        [binary, "-i", "-q", "-s", str(PGBENCH_SCALE), url],
        check=True,
        capture_output=True,
        timeout=600,
    )
    run = subprocess.run(
        [binary, "-c", str(PGBENCH_CLIENTS), "-j", "2", "-T", str(seconds), url],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", run.stdout)
    assert match, run.stdout
    return float(match.group(1)), settings


# ------------------------------------------------------------------ ledger load


def money(minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="BRL", minor_units=minor)


def posted(debit: str, credit: str, amount: int = 1) -> ledger_pb2.Transfer:
    return ledger_pb2.Transfer(
        name=f"transfers/{uuid.uuid4()}",
        debit_account=debit,
        credit_account=credit,
        amount=money(amount),
        kind=ledger_pb2.TRANSFER_KIND_POSTED,
        code="BENCH",
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class RequestEncoder:
    """CreateTransfersRequest bytes built by concatenation, not by protobuf objects.

    The load generator shares the cores with the ledger; building 1,000
    Transfer messages per request in Python would make it the bottleneck and
    measure the generator. Every field but the id is fixed per (debit, credit)
    pair, so each pair's serialized fields are made once and a fresh id is
    prepended per transfer (protobuf accepts fields in any order).
    `self_check` proves the bytes parse to the intended message.
    """

    NAME_TAG = b"\x0a"  # Transfer.name: field 1, length-delimited
    TRANSFERS_TAG = b"\x0a"  # CreateTransfersRequest.transfers: field 1

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], bytes] = {}

    def _tail(self, debit: str, credit: str) -> bytes:
        tail = self._tails.get((debit, credit))
        if tail is None:
            t = posted(debit, credit)
            t.ClearField("name")
            tail = self._tails[(debit, credit)] = t.SerializeToString()
        return tail

    def request(self, pairs: list[tuple[str, str]]) -> bytes:
        parts = []
        for debit, credit in pairs:
            name = f"transfers/{uuid.uuid4()}".encode()
            body = self.NAME_TAG + _varint(len(name)) + name + self._tail(debit, credit)
            parts.append(self.TRANSFERS_TAG + _varint(len(body)) + body)
        return b"".join(parts)

    def self_check(self, debit: str, credit: str) -> None:
        parsed = ledger_pb2.CreateTransfersRequest.FromString(self.request([(debit, credit)] * 2))
        assert len(parsed.transfers) == 2
        expected = posted(debit, credit)
        expected.name = parsed.transfers[0].name
        assert parsed.transfers[0] == expected, parsed
        assert parsed.transfers[0].name != parsed.transfers[1].name


@dataclass
class Ledger:
    stubs: list[ledger_pb2_grpc.LedgerServiceStub]
    channels: list[grpc.aio.Channel]
    encoder: RequestEncoder

    @classmethod
    def open(cls, target: str, secrets_dir: Path, channels: int) -> Ledger:
        signer = ServiceTokenSigner.from_files(
            secrets_dir / "jwt_signing_key.pem",
            secrets_dir / "jwks.json",
            service="bench",
            issuer=DEFAULT_JWT_ISSUER,
            audience=DEFAULT_JWT_AUDIENCE,
        )
        chans = [service_channel(target, signer) for _ in range(channels)]
        return cls([ledger_pb2_grpc.LedgerServiceStub(c) for c in chans], chans, RequestEncoder())

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.channels))

    async def create(self, transfers: list[ledger_pb2.Transfer], stub: int = 0) -> int:
        """Send one request; the number of transfers that succeeded."""
        response = await self.stubs[stub % len(self.stubs)].CreateTransfers(
            ledger_pb2.CreateTransfersRequest(transfers=transfers),
            metadata=(("idempotency-key", uuid.uuid4().hex),),
            timeout=CALL_TIMEOUT_S,
        )
        return sum(1 for r in response.results if r.status.code == 0)

    async def create_pairs(self, pairs: list[tuple[str, str]], stub: int = 0) -> int:
        """As `create`, from pre-encoded bytes (the same request on the wire)."""
        call = self.channels[stub % len(self.channels)].unary_unary(
            CREATE_TRANSFERS,
            request_serializer=None,  # already bytes
            response_deserializer=ledger_pb2.CreateTransfersResponse.FromString,
        )
        response = await call(
            self.encoder.request(pairs),
            metadata=(("idempotency-key", uuid.uuid4().hex),),
            timeout=CALL_TIMEOUT_S,
        )
        return sum(1 for r in response.results if r.status.code == 0)

    async def open_accounts(self, n: int, kind: int, no_overdraft: bool) -> list[str]:
        limiter = asyncio.Semaphore(16)

        async def one(i: int) -> str:
            async with limiter:
                account = await self.stubs[i % len(self.stubs)].CreateAccount(
                    ledger_pb2.CreateAccountRequest(
                        account=ledger_pb2.Account(
                            owner=f"users/{uuid.uuid4()}",
                            currency_code="BRL",
                            kind=kind,  # type: ignore[arg-type]
                            display_name="bench",
                            flags=ledger_pb2.AccountFlags(
                                debits_must_not_exceed_credits=no_overdraft
                            ),
                        )
                    ),
                    metadata=(("idempotency-key", uuid.uuid4().hex),),
                    timeout=CALL_TIMEOUT_S,
                )
                return str(account.name)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def closed_loop(
    workers: int, seconds: float, work: Callable[[int], Awaitable[int]]
) -> tuple[float, int]:
    """`workers` loops calling work(worker) until `seconds` pass; transfers/s, errors."""
    done = 0
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            try:
                # Not `done += await ...`: that reads `done` before awaiting and
                # loses the other workers' updates made meanwhile.
                n = await work(worker)
            except grpc.aio.AioRpcError:
                errors += 1
            else:
                done += n

    began = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(workers)))
    return done / (time.perf_counter() - began), errors


async def costed(
    work: Callable[[], Awaitable[tuple[float, int]]],
    settle: Callable[[], Awaitable[float]] | None = None,
) -> tuple[float, int, float, CpuCost]:
    """Run a closed-loop phase, then `settle` (wait until its events are
    published), and account the machine's CPU over both to the phase's
    transfers: (transfers/s, errors, settle's answer, the cost)."""
    before = CpuSnapshot.take()
    began = time.perf_counter()
    rate, errors = await work()
    transfers = rate * (time.perf_counter() - began)
    settled = await settle() if settle is not None else 0.0
    seconds = time.perf_counter() - began
    machine_s, parts = cpu_by_part(before, CpuSnapshot.take())
    return rate, errors, settled, CpuCost(transfers, seconds, machine_s, parts)


async def drain_outbox(admin_url: str) -> float:
    """Wait until the ledger's relay has published every event; the seconds waited.

    Each phase starts from a quiet ledger: a backlog of phase (2)'s 1,000-event
    batches would otherwise be published during phase (3) and be charged to
    it. The wait after a phase is printed: it is the part of that phase's
    work (publishing its events) that its own rate left undone.
    """
    began = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*) FROM ledger.outbox_events WHERE published_at IS NULL"
            )
            row = await cur.fetchone()
            waited = time.perf_counter() - began
            if row is not None and row[0] == 0:
                return waited
            assert waited < MAX_DRAIN_SECONDS, f"the outbox still holds {row} events"
            await asyncio.sleep(DRAIN_POLL_SECONDS)


async def ledger_phases(
    target: str, secrets_dir: Path, admin_url: str, seconds: float, cpu: dict[str, CpuCost]
) -> dict[str, float]:
    """Phases (2) to (5); what (2) and (3) cost the machine goes into `cpu`."""
    ledger = Ledger.open(target, secrets_dir, CHANNELS)
    rng = random.Random(7)
    out: dict[str, float] = {}
    try:
        source = (
            await ledger.open_accounts(1, ledger_pb2.ACCOUNT_KIND_BANK_CASH, no_overdraft=False)
        )[0]
        # Wallet-like accounts (no overdraft): real USER_WALLETs are opened only
        # from user.registered, and the engine treats accounts by their flags.
        wallets = await ledger.open_accounts(ACCOUNTS, ledger_pb2.ACCOUNT_KIND_SUSPENSE, True)
        hot = wallets[0]
        funded = await ledger.create([posted(source, w, FUNDING) for w in wallets])
        assert funded == ACCOUNTS, f"funding: {funded}/{ACCOUNTS}"

        ledger.encoder.self_check(wallets[0], wallets[1])
        # A pool of random pairs: every wallet is debited and credited, and
        # each pair's fixed bytes are encoded once.
        pairs: list[tuple[str, str]] = []
        for _ in range(4 * ACCOUNTS):
            debit, credit = rng.sample(wallets, 2)
            pairs.append((debit, credit))

        def pair() -> tuple[str, str]:
            return pairs[rng.randrange(len(pairs))]

        # (2) batches of 1,000 between random wallets, several senders at once.
        async def batch(worker: int) -> int:
            return await ledger.create_pairs([pair() for _ in range(BATCH)], worker)

        await drain_outbox(admin_url)  # the funding's events
        await closed_loop(BATCH_CLIENTS, WARMUP_SECONDS, batch)

        def drain() -> Awaitable[float]:
            return drain_outbox(admin_url)

        (
            out["batched_transfers_per_s"],
            out["batched_errors"],
            out["batched_outbox_drain_s"],
            cpu["batched"],
        ) = await costed(lambda: closed_loop(BATCH_CLIENTS, seconds, batch), drain)

        # (3) one transfer per request, 64 clients, random wallets.
        async def single(worker: int) -> int:
            return await ledger.create_pairs([pair()], worker)

        await closed_loop(SINGLE_CLIENTS, WARMUP_SECONDS, single)
        (
            out["single_transfers_per_s"],
            out["single_errors"],
            out["single_outbox_drain_s"],
            cpu["single"],
        ) = await costed(lambda: closed_loop(SINGLE_CLIENTS, seconds, single), drain)

        # (4) the same, every transfer debiting the same (constrained) wallet.
        others = wallets[1:]

        async def hot_single(worker: int) -> int:
            return await ledger.create_pairs([(hot, rng.choice(others))], worker)

        out["hot_account_transfers_per_s"], out["hot_account_errors"] = await closed_loop(
            SINGLE_CLIENTS, seconds, hot_single
        )
        await drain_outbox(admin_url)

        # (5) latency of (3) at half its measured rate, open loop.
        rate = max(1.0, out["single_transfers_per_s"] / 2)

        async def succeeded(i: int) -> bool:
            try:
                return await single(i) == 1
            except grpc.aio.AioRpcError:
                return False

        latencies, errors = await open_loop(succeeded, rate, seconds, MAX_IN_FLIGHT)
        out["half_rate_per_s"] = rate
        out["half_rate_requests"] = len(latencies)
        out["half_rate_errors"] = errors
        out["half_rate_p50_ms"] = percentile(latencies, 50)
        out["half_rate_p99_ms"] = percentile(latencies, 99)

        verify = await ledger.stubs[0].VerifyLedger(
            ledger_pb2.VerifyLedgerRequest(max_discrepancies=5), timeout=600
        )
        out["verify_ok_after_load"] = float(verify.ok)
    finally:
        await ledger.close()
    return out


@contextlib.contextmanager
def noop_server() -> Iterator[str]:
    """bench/noop_ledger.py in its own process; yields its target."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("noop_ledger.py"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def noop_phase(
    target: str, secrets_dir: Path, seconds: float, cpu: dict[str, CpuCost]
) -> float:
    """(6): phase (3)'s load, one transfer per request, against the no-op
    server; what it cost the machine goes into `cpu`."""
    ledger = Ledger.open(target, secrets_dir, CHANNELS)
    rng = random.Random(7)
    names = [f"accounts/{uuid.uuid4()}" for _ in range(ACCOUNTS)]
    pairs = [tuple(rng.sample(names, 2)) for _ in range(4 * ACCOUNTS)]

    async def single(worker: int) -> int:
        debit, credit = pairs[rng.randrange(len(pairs))]
        return await ledger.create_pairs([(debit, credit)], worker)

    try:
        await closed_loop(SINGLE_CLIENTS, WARMUP_SECONDS, single)
        rps, errors, _, cpu["noop"] = await costed(
            lambda: closed_loop(SINGLE_CLIENTS, seconds, single)
        )
    finally:
        await ledger.close()
    assert errors == 0, errors
    return rps


def measure(
    target: str, secrets_dir: Path, admin_url: str, nats_url: str, args: argparse.Namespace
) -> None:
    tps, settings = pgbench_tps(admin_url, args.pgbench_seconds)
    for name, value in settings.items():
        print(f"postgres_{name}: {value}")
    print(f"pgbench_clients: {PGBENCH_CLIENTS}")
    print(f"pgbench_scale: {PGBENCH_SCALE}")
    print(f"pgbench_tpcb_tps: {tps:.0f}")
    cpu: dict[str, CpuCost] = {}
    results = asyncio.run(ledger_phases(target, secrets_dir, admin_url, args.seconds, cpu))
    with noop_server() as noop_target:
        noop_rps = asyncio.run(noop_phase(noop_target, secrets_dir, args.seconds, cpu))
    floor = asyncio.run(db_floor_run(admin_url, args.seconds))
    floor_tps = floor.per_s
    cpu["db_floor"] = floor
    serial_floor_tps = asyncio.run(db_floor_run(admin_url, args.seconds, writers=1)).per_s
    cpu["event_floor"] = asyncio.run(event_floor_run(nats_url))
    print(f"ledger_batch_size: {BATCH}")
    print(f"ledger_batched_transfers_per_s: {results['batched_transfers_per_s']:.0f}")
    print(f"ledger_batched_errors: {results['batched_errors']:.0f}")
    print(f"ledger_batched_outbox_drain_s: {results['batched_outbox_drain_s']:.1f}")
    print(f"ledger_single_clients: {SINGLE_CLIENTS}")
    print(f"ledger_single_transfers_per_s: {results['single_transfers_per_s']:.0f}")
    print(f"ledger_single_errors: {results['single_errors']:.0f}")
    print(f"ledger_single_outbox_drain_s: {results['single_outbox_drain_s']:.1f}")
    print(f"ledger_hot_account_transfers_per_s: {results['hot_account_transfers_per_s']:.0f}")
    print(f"ledger_hot_account_errors: {results['hot_account_errors']:.0f}")
    print(f"ledger_half_rate_per_s: {results['half_rate_per_s']:.0f}")
    print(f"ledger_half_rate_requests: {results['half_rate_requests']:.0f}")
    print(f"ledger_half_rate_errors: {results['half_rate_errors']:.0f}")
    print(f"ledger_half_rate_p50_ms: {results['half_rate_p50_ms']:.2f}")
    print(f"ledger_half_rate_p99_ms: {results['half_rate_p99_ms']:.2f}")
    print(f"ledger_verify_ok_after_load: {bool(results['verify_ok_after_load'])}")
    print(f"noop_grpc_single_requests_per_s: {noop_rps:.0f}")
    print(f"db_floor_batched_transfers_per_s: {floor_tps:.0f}")
    print(f"db_floor_one_session_transfers_per_s: {serial_floor_tps:.0f}")
    batched_ratio = results["batched_transfers_per_s"] / tps
    single_ratio = results["single_transfers_per_s"] / tps
    hot_ratio = results["hot_account_transfers_per_s"] / max(
        results["single_transfers_per_s"], 1e-9
    )
    print(f"ratio_batched_over_pgbench: {batched_ratio:.2f} (target >= 5)")
    print(f"ratio_single_over_pgbench: {single_ratio:.2f} (target >= 0.5)")
    print(f"ratio_hot_over_single: {hot_ratio:.2f} (target >= 0.5)")
    # The ceiling: above 0.5 the single-transfer target is reachable in
    # principle; below it no Python gRPC service reaches it on this machine.
    print(f"ratio_noop_single_over_pgbench: {noop_rps / tps:.2f}")
    print(f"ratio_single_over_noop: {results['single_transfers_per_s'] / noop_rps:.2f}")
    # The database's own ceiling for (2): below 5, target (2) is out of reach
    # of any implementation storing these rows on this machine.
    print(f"ratio_db_floor_over_pgbench: {floor_tps / tps:.2f}")
    # The same with one session: the ceiling of serialised writes (the ledger's).
    print(f"ratio_db_floor_one_session_over_pgbench: {serial_floor_tps / tps:.2f}")
    print(f"ratio_batched_over_db_floor: {results['batched_transfers_per_s'] / floor_tps:.2f}")
    # Where the CPU goes, per transfer (per request for the no-op server), and
    # the budget: all the machine's cores divided by the target rate. A part
    # whose own cost is above the budget rules the target out for this design
    # on this machine, whatever the others do.
    for phase, target_per_s in (
        ("batched", 5 * tps),
        ("db_floor", 5 * tps),
        ("event_floor", 5 * tps),
        ("single", 0.5 * tps),
        ("noop", 0.5 * tps),
    ):
        for line in cpu[phase].lines(phase, target_per_s):
            print(line)
    # What a batched transfer costs before any ledger code runs: its rows in
    # Postgres (7) and its event in JetStream, published from Python (8).
    floor_us = cpu["db_floor"].per_transfer_us + cpu["event_floor"].per_transfer_us
    print(f"cpu_floor_per_transfer_us_rows_and_event: {floor_us:.0f}")
    print(f"ratio_floor_over_budget_batched: {floor_us / cpu['batched'].budget_us(5 * tps):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per ledger phase")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument(
        "--keep-state", action="store_true", help="reuse .state/bench instead of a cold start"
    )
    args = parser.parse_args()
    assert 0 < args.seconds <= 120 and 0 < args.pgbench_seconds <= 120

    reuse = os.environ.get("LEDGER_BENCH_TARGET")
    if reuse:
        measure(
            reuse,
            Path(os.environ["LEDGER_BENCH_SECRETS_DIR"]),
            os.environ["LEDGER_BENCH_PG_ADMIN_URL"],
            os.environ["LEDGER_BENCH_NATS_URL"],
            args,
        )
        return 0

    with bench_stack("bench", BENCH_PORT_BASE, keep_state=args.keep_state) as bench:
        stack = bench.stack
        measure(
            stack.grpc_targets["ledger"],
            stack.secrets_dir,
            stack.infra.pg_admin_url,
            stack.infra.nats_url,
            args,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
