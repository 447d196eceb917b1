"""`own_record` methods: the handler stores its idempotency record itself.

The ledger's writer stores CreateTransfers' record in its batch transaction;
this checks the platform side with a minimal handler doing the same in its
own transaction: the interceptor opens none, hands over a Claim, and refuses
an answer whose record was never stored.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy import text

from services.platform import audit
from services.platform.auth import AuthInterceptor
from services.platform.db import Database
from services.platform.idempotency import (
    RECORD_COLUMNS,
    IdempotencyInterceptor,
    current_claim,
)
from services.platform.policy import MethodPolicy, static_policies
from services.platform.server_interceptors import ErrorInterceptor, ObservabilityInterceptor
from tests.integration.platform.platform_it_support import (
    SERVICE,
    ServiceSchema,
    provision,
    start_server,
)
from tests.integration.platform.test_platform_idempotency import call, effects, stored

pytestmark = pytest.mark.integration

MUTATING = MethodPolicy(mutating=True, public=True)
# The test service's methods (platform_it_support), in these roles: Echo
# records its own answer, Fail answers without a record, Slow only reads.
OWN = f"/{SERVICE}/Echo"
FORGETS = f"/{SERVICE}/Fail"
READ = f"/{SERVICE}/Slow"
POLICIES = static_policies({OWN: MUTATING, FORGETS: MUTATING, READ: MethodPolicy(public=True)})
_SELECT = text(
    "SELECT request_hash, response, response_type FROM idempotency_keys"
    " WHERE subject = :subject AND method = :method AND key = :key"
)
_INSERT = text(
    "INSERT INTO idempotency_keys (subject, method, key, request_hash, response, response_type)"
    " VALUES (:subject, :method, :key, :request_hash, :response, :response_type)"
)


@pytest.fixture(scope="module")
def schema(infra) -> Iterator[ServiceSchema]:  # type: ignore[no-untyped-def]
    svc = provision(infra.pg_admin_url, "ptown")
    yield svc
    svc.drop()


@pytest.fixture
async def env(schema: ServiceSchema) -> AsyncIterator[tuple[Database, grpc.aio.Channel]]:
    db = Database(schema.url, pool_size=4)

    async def own(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        claim = current_claim()
        # No interceptor transaction to join: this one is the handler's own.
        assert db.current_connection() is None
        async with db.transaction() as conn:
            found = (
                await conn.execute(
                    _SELECT, dict(zip(("subject", "method", "key"), claim.scope, strict=True))
                )
            ).first()
            if found is not None:
                response = claim.replay(
                    bytes(found.request_hash), bytes(found.response), found.response_type
                )
                assert isinstance(response, wrappers_pb2.StringValue)
            else:
                await audit.record(conn, "own", request.value, "own", {}, "test")
                response = wrappers_pb2.StringValue(value=f"{request.value}:{uuid.uuid4()}")
                record = claim.row(response)
                await conn.execute(_INSERT, dict(zip(RECORD_COLUMNS, record, strict=True)))
        claim.recorded = True
        return response

    async def forgets(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        current_claim()
        async with db.transaction() as conn:
            await audit.record(conn, "forgets", request.value, "forgets", {}, "test")
        return wrappers_pb2.StringValue(value="answered without a record")

    server, channel = await start_server(
        [
            ErrorInterceptor("ptown.fintech.local"),
            ObservabilityInterceptor(),
            AuthInterceptor(None, POLICIES),
            IdempotencyInterceptor(db, schema.name, POLICIES, own_record=[OWN, FORGETS]),
        ],
        {"Echo": own, "Fail": forgets},
    )
    yield db, channel
    await channel.close()
    await server.stop(None)
    await db.close()


async def test_own_record_replays_and_rejects_a_reused_key(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    key, value = f"k-{uuid.uuid4()}", f"v-{uuid.uuid4()}"
    first = await call(channel, "Echo", value, key)
    assert first.startswith(value + ":")
    assert await call(channel, "Echo", value, key) == first
    assert await call(channel, "Echo", "other", key) == "ALREADY_EXISTS/IDEMPOTENCY_KEY_REUSED"
    assert await effects(db, value) == 1
    assert await effects(db, "other") == 0
    assert await stored(db, key) == 1


async def test_own_record_still_requires_a_valid_key(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    value = f"v-{uuid.uuid4()}"
    assert await call(channel, "Echo", value, None) == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_REQUIRED"
    assert (
        await call(channel, "Echo", value, "bad key!") == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_INVALID"
    )
    assert await effects(db, value) == 0


async def test_an_answer_without_a_stored_record_is_an_internal_error(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    key, value = f"k-{uuid.uuid4()}", f"v-{uuid.uuid4()}"
    assert (await call(channel, "Fail", value, key)).startswith("INTERNAL/")
    assert await stored(db, key) == 0


def test_own_record_is_only_for_mutating_methods(schema: ServiceSchema) -> None:
    with pytest.raises(AssertionError, match="not mutating"):
        IdempotencyInterceptor(
            Database(schema.url, pool_size=1),
            schema.name,
            POLICIES,
            own_record=[READ],
        )
