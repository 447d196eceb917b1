"""`python -m services.ledger`: the ledger service (wiring only)."""

from __future__ import annotations

import gc

import grpc

from services.ledger import api, events
from services.ledger.service import LedgerService
from services.ledger.writer import LedgerWriter
from services.platform.app import ServiceContext, run_service
from services.platform.consumer import DurableConsumer
from services.platform.db import Database

# Cyclic GC: a 1,000-transfer batch allocates tens of thousands of tracked
# objects (records, entries, protobuf messages), freed by reference counting,
# yet each 700 allocations triggered a collection that walked them, and every
# few batches a full one over the whole heap (~10 ms of a batch's ~90 ms of
# CPU). A larger first threshold plus freezing what startup allocated (never
# garbage) keeps collections rare and small; cycles are still collected.
GC_THRESHOLDS = (50_000, 20, 10)

# The writer's own pool (see writer.py): one connection in use, one spare for
# the reconnect after a broken connection.
WRITER_POOL_SIZE = 2


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    assert settings.database_url, "the ledger needs FINTECH_DATABASE_URL"
    writer_db = Database(
        settings.database_url, pool_size=WRITER_POOL_SIZE, application_name="ledger-writer"
    )
    writer = LedgerWriter(writer_db)
    service = LedgerService(ctx.db, writer)
    api.register(server, ctx.db, service, settings)
    ctx.add_background(writer.run)
    ctx.add_background(writer.run_expiry_ticker)
    consumer = DurableConsumer(
        ctx.db, ctx.nats.jetstream(), events.wallet_consumer_settings(), events.open_wallet
    )
    ctx.add_background(consumer.run)
    gc.freeze()  # startup's objects (modules, descriptors, pools) leave the GC's walks
    gc.set_threshold(*GC_THRESHOLDS)
    return [api.service_name()]


if __name__ == "__main__":
    run_service("ledger", setup)
