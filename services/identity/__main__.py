"""Entrypoint: `python -m services.identity` (settings from FINTECH_* env vars)."""

from __future__ import annotations

import grpc

from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from services.identity import kyc_consumer
from services.identity.api import IdentityApi
from services.identity.service import IdentityService
from services.identity.signing import TokenSigner
from services.platform.app import ServiceContext, run_service
from services.platform.consumer import DurableConsumer
from services.platform.crypto import FieldCipher


async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
    settings = ctx.settings
    assert settings.secrets_dir is not None, "identity needs FINTECH_SECRETS_DIR for its keys"
    service = IdentityService(
        db=ctx.db,
        redis=ctx.redis,
        cipher=FieldCipher.from_file(settings.secret_path("pii_keys.json")),
        signer=TokenSigner.from_secrets_dir(settings.secrets_dir),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityApi(service), server)
    # users.kyc_status follows the kyc service's events (kyc_consumer.py).
    consumer = DurableConsumer(
        ctx.db, ctx.nats.jetstream(), kyc_consumer.consumer_settings(), kyc_consumer.apply_kyc_event
    )
    ctx.add_worker(consumer.run)
    return [identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name]


if __name__ == "__main__":
    run_service("identity", setup)
