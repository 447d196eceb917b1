"""Phase (8) of bench/ledger_throughput.py: what one event costs JetStream and its publisher, alone.

The ledger publishes one event per transfer: its outbox relay
(services.platform.outbox) sends each to JetStream with a `Nats-Msg-Id`,
pipelined in batches of the relay's size, and awaits every acknowledgement.
This sends as many messages of the same size, with the same headers and the
same pipelining, from this process to a scratch stream on the stack's NATS
(file storage, the relay stream's duplicate window), and measures the
machine's CPU per event: the client's (nats-py, this process: `python`) and
the server's (`nats-server`). No database, no ledger code: added to the
database floor (7), it is what a batched transfer costs before the ledger
does anything of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import nats
from nats.js.api import StorageType, StreamConfig

from bench.proc_cpu import CpuCost, CpuSnapshot, cpu_by_part
from services.platform import outbox

STREAM = "BENCH_EVENT_FLOOR"
SUBJECT = "benchfloor.ledger.transfer.posted"
EVENTS = 40_000
MAX_EVENTS = 200_000
BATCH = outbox.MAX_BATCH_SIZE  # the relay's pipelining
PAYLOAD_BYTES = 420  # a transfer event's envelope (ledger_db_floor.EVENT_PAYLOAD_BYTES)
ACK_TIMEOUT_S = 30.0


async def event_floor_run(nats_url: str, events: int = EVENTS) -> CpuCost:
    assert 0 < events <= MAX_EVENTS
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=[f"{SUBJECT.split('.', 1)[0]}.>"],
                storage=StorageType.FILE,
                duplicate_window=outbox.DEFAULT_DUPLICATE_WINDOW_SECONDS,
            )
        )
        try:
            payload = os.urandom(PAYLOAD_BYTES)
            base_headers = {
                "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
                "x-request-id": uuid.uuid4().hex,
                outbox.EVENT_TYPE_HEADER: "fintech.ledger.v1.TransferPosted",
            }
            before = CpuSnapshot.take()
            began = time.perf_counter()
            for start in range(0, events, BATCH):
                acks = [
                    await js.publish_async(
                        SUBJECT,
                        payload,
                        stream=STREAM,
                        headers={**base_headers, outbox.MSG_ID_HEADER: str(uuid.uuid4())},
                    )
                    for _ in range(min(BATCH, events - start))
                ]
                stored = await asyncio.wait_for(asyncio.gather(*acks), ACK_TIMEOUT_S)
                assert not any(ack.duplicate for ack in stored)
            seconds = time.perf_counter() - began
            machine_s, parts = cpu_by_part(before, CpuSnapshot.take())
        finally:
            await js.delete_stream(STREAM)
    finally:
        await nc.close()
    return CpuCost(events, seconds, machine_s, parts)
