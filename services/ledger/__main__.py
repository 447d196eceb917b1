"""`python -m services.ledger`: the ledger service (wiring only)."""

from __future__ import annotations

import grpc

from services.ledger import api, events
from services.ledger.service import LedgerService
from services.ledger.writer import LedgerWriter
from services.ledger.writer_connection import WriterConnection
from services.platform.app import ServiceContext, run_service
from services.platform.consumer import DurableConsumer


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    assert settings.database_url, "the ledger needs FINTECH_DATABASE_URL"
    writer = LedgerWriter(WriterConnection(settings.database_url))
    service = LedgerService(ctx.db, writer)
    api.register(server, ctx.db, service, settings)
    ctx.add_background(writer.run)
    ctx.add_background(writer.run_expiry_ticker)
    consumer = DurableConsumer(
        ctx.db, ctx.nats.jetstream(), events.wallet_consumer_settings(), events.open_wallet
    )
    ctx.add_worker(consumer.run)
    return [api.service_name()]


if __name__ == "__main__":
    # CreateTransfers stores its RPC idempotency record in the writer's batch
    # transaction, with the transfers it answers for (see writer.py).
    run_service("ledger", setup, own_record=[api.CREATE_TRANSFERS])
