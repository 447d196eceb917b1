"""`python -m services.kyc`: KycService and the KYC process worker.

Environment beyond the platform's: FINTECH_RECEITA_URL, FINTECH_GOVDOCS_URL
(its OAuth2 client credentials: `provider_clients.json` ("govdocs") in the
secrets dir), FINTECH_BUREAU_URL,
FINTECH_TARGET_IDENTITY, FINTECH_S3_ENDPOINT with `s3_credentials.json` in the
secrets dir, and optionally FINTECH_KYC_BUCKET and the screening list paths
(services/kyc/lists.py). The Temporal worker runs in this process on task
queue `kyc`.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc

from services.kyc import api
from services.kyc.calllog import KycCallLog
from services.kyc.lists import load_lists
from services.kyc.objectstore import Credentials, ObjectStore
from services.kyc.providers import BureauClient, GovDocsClient, ReceitaClient
from services.kyc.service import TASK_QUEUE, GrpcIdentityDirectory, KycService
from services.kyc.workflows import KycActivities, KycWorkflow
from services.platform import temporal
from services.platform.app import ServiceContext, run_service
from services.platform.crypto import FieldCipher
from services.platform.http_client import DbCallLog
from services.platform.settings import required_env

log = logging.getLogger(__name__)

# Checks are I/O bound (one provider call each); 64 at a time keeps the DB
# pool and the providers' bulkheads the limits that matter.
MAX_CONCURRENT_CHECKS = 64
# A workflow task stays open while its local activities (the checks' fast
# path) run, so this bounds how many submissions progress at once.
MAX_CONCURRENT_PROCESSES = 100
DEFAULT_BUCKET = "kyc-documents"
VIEW_SWEEP_SECONDS = 30.0


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    # Every provider attempt is already in third_party_calls (redacted); httpx's
    # own INFO line per request would repeat it in the log (with the URL).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    assert settings.secrets_dir is not None, "kyc needs FINTECH_SECRETS_DIR for its keys"
    cipher = FieldCipher.from_file(settings.secret_path("pii_keys.json"))
    lists = await asyncio.to_thread(load_lists)  # a few seconds for the OFAC snapshot
    log.info("screening lists loaded: %d entries (version %s)", len(lists.index), lists.version)
    objects = ObjectStore(
        required_env("FINTECH_S3_ENDPOINT"),
        os.environ.get("FINTECH_KYC_BUCKET", DEFAULT_BUCKET),
        Credentials.from_file(settings.secret_path("s3_credentials.json")),
    )
    await objects.ensure_bucket()
    call_log = KycCallLog(DbCallLog(ctx.db))
    receita = ReceitaClient(required_env("FINTECH_RECEITA_URL"), call_log=call_log)
    govdocs_id, govdocs_secret = settings.provider_client("govdocs")
    govdocs = GovDocsClient(
        required_env("FINTECH_GOVDOCS_URL"), govdocs_id, govdocs_secret, call_log=call_log
    )
    bureau = BureauClient(required_env("FINTECH_BUREAU_URL"), ctx.redis, cipher, call_log=call_log)
    identity = GrpcIdentityDirectory(ctx.service_channel(required_env("FINTECH_TARGET_IDENTITY")))
    client = await temporal.connect(settings)
    service = KycService(ctx.db, cipher, objects, client, lists)
    activities = KycActivities(ctx.db, service, identity, receita, govdocs, bureau, lists)

    async def worker() -> None:
        await temporal.run_worker(
            client,
            TASK_QUEUE,
            [KycWorkflow],
            activities.activities(),
            max_concurrent_activities=MAX_CONCURRENT_CHECKS,
            max_concurrent_workflow_tasks=MAX_CONCURRENT_PROCESSES,
        )

    async def sweeper() -> None:
        while True:
            try:
                await service.sweep_views()
            except Exception as exc:  # the next round tries again
                log.warning("view sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(VIEW_SWEEP_SECONDS)

    ctx.add_worker(worker)
    ctx.add_worker(sweeper)
    api.register(server, service)
    return [api.service_name()]


if __name__ == "__main__":
    run_service("kyc", setup)
