"""`python -m services.loans`: LoansService and the loans Temporal worker.

Environment beyond the platform's: FINTECH_TARGET_RISK, FINTECH_TARGET_LEDGER,
FINTECH_TARGET_IDENTITY and FINTECH_TARGET_PAYMENTS (gRPC addresses; without
payments no PIX payout is made and the money stays in the wallet; with it,
loans follows the payouts' outcomes from payments' events), and
FINTECH_LOANS_TEST_CLOCK=1 (tests only: honour loans.test_clock, see
services/loans/clock.py). The worker for task queue `loans` (loan process,
daily accrual) runs inside this process.
"""

from __future__ import annotations

import logging
import os

import grpc

from services.loans import api, payout_consumer
from services.loans.clock import Clock
from services.loans.ledger_gateway import GrpcLedger
from services.loans.payout import GrpcPayout, NoPayout
from services.loans.risk_gateway import CachedBands, GrpcRiskGateway
from services.loans.service import TASK_QUEUE, GrpcKycDirectory, LoansService
from services.loans.workflows import (
    LoanActivities,
    LoanProcess,
    LoansDailyAccrual,
    ensure_accrual_schedule,
)
from services.platform import temporal
from services.platform.app import ServiceContext, run_service
from services.platform.consumer import DurableConsumer
from services.platform.crypto import FieldCipher
from services.platform.settings import required_env

log = logging.getLogger(__name__)

# Funding and accrual activities wait on the ledger; 8 at a time leaves the
# DB pool (10) room for RPCs on a shared 2-core box.
MAX_CONCURRENT_ACTIVITIES = 8


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    assert settings.secrets_dir is not None, "loans needs FINTECH_SECRETS_DIR for its PII keys"
    cipher = FieldCipher.from_file(settings.secret_path("pii_keys.json"))
    clock = Clock(ctx.db)
    if clock.is_test:
        log.warning("loans runs with the TEST clock (FINTECH_LOANS_TEST_CLOCK=1)")
    risk = GrpcRiskGateway(ctx.service_channel(required_env("FINTECH_TARGET_RISK")))
    ledger = GrpcLedger(ctx.service_channel(required_env("FINTECH_TARGET_LEDGER")))
    kyc = GrpcKycDirectory(ctx.service_channel(required_env("FINTECH_TARGET_IDENTITY")))
    client = await temporal.connect(settings)
    service = LoansService(ctx.db, clock, CachedBands(risk, ctx.redis), kyc, ledger, client, cipher)
    payments = os.environ.get("FINTECH_TARGET_PAYMENTS", "").strip()
    payout = GrpcPayout(ctx.service_channel(payments)) if payments else NoPayout()
    activities = LoanActivities(ctx.db, clock, risk, ledger, payout=payout, cipher=cipher)

    async def worker() -> None:
        await ensure_accrual_schedule(client)
        await temporal.run_worker(
            client,
            TASK_QUEUE,
            [LoanProcess, LoansDailyAccrual],
            activities.activities(),
            max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        )

    ctx.add_worker(worker)
    if payments:
        # The payout's outcome: payments' payment.settled / payment.failed.
        for consumer_settings in payout_consumer.consumer_settings():
            consumer = DurableConsumer(
                ctx.db, ctx.nats.jetstream(), consumer_settings, payout_consumer.apply_payment_event
            )
            ctx.add_worker(consumer.run)
    api.register(server, service)
    return api.service_names()


if __name__ == "__main__":
    run_service("loans", setup)
