"""`python -m services.payments`: PaymentsService and its Temporal worker.

Environment beyond the platform's: FINTECH_PSP_URL (the PSP), FINTECH_TARGET_LEDGER,
FINTECH_PAYMENTS_SETTLEMENT_WAIT_S (how long
a payout waits for the settlement webhook before querying the status; 10).
The webhook HMAC key is `webhook_hmac_secret` and the PSP's OAuth2 client
credentials are `provider_clients.json` ("psp") in FINTECH_SECRETS_DIR. The
Temporal worker (task queue `payments`) runs beside the API (role `all`) or,
in the dev stack, in its own `payments_worker` process (role `worker`); the
workflow starter stays with the API, which hands it each committed payment.
"""

from __future__ import annotations

import base64
import os
import uuid

import grpc

from services.payments import api, workflows
from services.payments.ledger_gateway import LedgerGateway
from services.payments.psp import PspClient
from services.payments.service import PaymentsService
from services.payments.starter import WorkflowStarter
from services.payments.workflows import TASK_QUEUE, CardWorkflow, PaymentActivities, PayoutWorkflow
from services.platform import temporal
from services.platform.app import ServiceContext, run_service
from services.platform.crypto import FieldCipher
from services.platform.http_client import DbCallLog
from services.platform.settings import required_env

# Activities are I/O bound (ledger, PSP, short transactions); the DB pool
# (devstack.topology.DB_POOL_SIZES: 30) is shared with the RPCs and webhooks,
# so they get at most half of it.
MAX_CONCURRENT_ACTIVITIES = 15


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    assert settings.secrets_dir is not None, "payments needs FINTECH_SECRETS_DIR"
    cipher = FieldCipher.from_file(settings.secret_path("pii_keys.json"))
    secret = base64.b64decode(settings.secret_path("webhook_hmac_secret").read_text().strip())
    client_id, client_secret = settings.provider_client("psp")
    psp = PspClient(
        required_env("FINTECH_PSP_URL"), client_id, client_secret, call_log=DbCallLog(ctx.db)
    )
    ledger = LedgerGateway(ctx.service_channel(required_env("FINTECH_TARGET_LEDGER")))
    client = await temporal.connect(settings)
    wait_s = float(os.environ.get("FINTECH_PAYMENTS_SETTLEMENT_WAIT_S", "10"))
    assert 0.5 <= wait_s <= 3600, "FINTECH_PAYMENTS_SETTLEMENT_WAIT_S within 0.5..3600"

    async def start(payment_id: uuid.UUID, method: str) -> None:
        await workflows.start(client, workflows.workflow_for(method), payment_id, wait_s)

    starter = WorkflowStarter(ctx.db, start)
    service = PaymentsService(ctx.db, cipher, ledger, psp, client, secret, starter)
    activities = PaymentActivities(ctx.db, ledger, psp, cipher)

    async def worker() -> None:
        await temporal.run_worker(
            client,
            TASK_QUEUE,
            [PayoutWorkflow, CardWorkflow],
            activities.activities(),
            max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        )

    ctx.add_worker(worker)
    ctx.add_background(starter.run)
    return api.register(server, service)


if __name__ == "__main__":
    run_service("payments", setup)
