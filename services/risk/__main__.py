"""`python -m services.risk`: RiskService + OpenFinanceService and the import worker.

Environment beyond the platform's: FINTECH_OPEN_FINANCE_URL (the data
holder), FINTECH_BUREAU_URL (credit bureau), FINTECH_TARGET_IDENTITY
(identity's gRPC address). The Temporal worker for statement imports runs
inside this process on task queue `risk`, next to the durable consumer of the
kyc events that keeps risk's KYC status projection (kyc_projection.py).
"""

from __future__ import annotations

import grpc

from services.platform import temporal
from services.platform.app import ServiceContext, run_service
from services.platform.consumer import DurableConsumer
from services.platform.crypto import FieldCipher
from services.platform.http_client import DbCallLog
from services.platform.settings import required_env
from services.risk import api, kyc_projection
from services.risk.bureau import BureauClient
from services.risk.open_finance import OpenFinanceClient
from services.risk.service import (
    TASK_QUEUE,
    CachedIdentityDirectory,
    GrpcIdentityDirectory,
    OpenFinanceService,
    RiskService,
)
from services.risk.workflows import ImportActivities, StatementImportWorkflow

# Imports are I/O bound (bank pages, one upsert each); 8 at a time keeps the
# DB pool (10) free for RPCs on a shared 2-core box.
MAX_CONCURRENT_IMPORT_ACTIVITIES = 8


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    assert settings.secrets_dir is not None, "risk needs FINTECH_SECRETS_DIR for its PII keys"
    cipher = FieldCipher.from_file(settings.secret_path("pii_keys.json"))
    call_log = DbCallLog(ctx.db)
    bank = OpenFinanceClient(required_env("FINTECH_OPEN_FINANCE_URL"), call_log=call_log)
    bureau = BureauClient(required_env("FINTECH_BUREAU_URL"), ctx.redis, cipher, call_log=call_log)
    identity = CachedIdentityDirectory(
        GrpcIdentityDirectory(ctx.service_channel(required_env("FINTECH_TARGET_IDENTITY")))
    )
    client = await temporal.connect(settings)
    open_finance = OpenFinanceService(ctx.db, cipher, bank, identity, client)
    risk = RiskService(ctx.db, identity, bureau)
    activities = ImportActivities(ctx.db, bank)

    async def worker() -> None:
        await temporal.run_worker(
            client,
            TASK_QUEUE,
            [StatementImportWorkflow],
            activities.activities(),
            max_concurrent_activities=MAX_CONCURRENT_IMPORT_ACTIVITIES,
        )

    ctx.add_worker(worker)
    # The KYC status Score needs, kept locally from the kyc events.
    kyc_consumer = DurableConsumer(
        ctx.db,
        ctx.nats.jetstream(),
        kyc_projection.consumer_settings(),
        kyc_projection.apply_kyc_event,
    )
    ctx.add_worker(kyc_consumer.run)
    api.register(server, risk, open_finance)
    return api.service_names()


if __name__ == "__main__":
    run_service("risk", setup)
