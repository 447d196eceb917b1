"""The idempotency interceptor through a real grpc.aio server and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy import text

from services.platform import audit, errors
from services.platform.auth import AuthInterceptor
from services.platform.db import Database
from services.platform.errors import details_from_rpc_error
from services.platform.idempotency import (
    INSERT_RECORD,
    RECORD_COLUMNS,
    SELECT_RECORD,
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
    stub,
)

pytestmark = pytest.mark.integration

MUTATING = MethodPolicy(mutating=True, public=True)
POLICIES = static_policies({f"/{SERVICE}/{m}": MUTATING for m in ("Echo", "Slow", "Fail")})


@pytest.fixture(scope="module")
def schema(infra) -> Iterator[ServiceSchema]:  # type: ignore[no-untyped-def]
    svc = provision(infra.pg_admin_url, "ptidem")
    yield svc
    svc.drop()


@pytest.fixture
async def env(schema: ServiceSchema) -> AsyncIterator[tuple[Database, grpc.aio.Channel]]:
    db = Database(schema.url, pool_size=4)

    async def effect(request: wrappers_pb2.StringValue, action: str) -> wrappers_pb2.StringValue:
        async with db.transaction() as conn:  # joins the interceptor's transaction
            await audit.record(conn, "echo", request.value, action, {"v": request.value}, "test")
        return wrappers_pb2.StringValue(value=f"{request.value}:{uuid.uuid4()}")

    async def echo(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        return await effect(request, "echo")

    async def slow(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        await asyncio.sleep(0.5)
        return await effect(request, "slow")

    async def fail(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        await effect(request, "fail")
        if request.value.startswith("boom"):
            raise errors.failed_precondition("NOT_YET", "try again")
        return wrappers_pb2.StringValue(value="ok")

    server, channel = await start_server(
        [
            ErrorInterceptor("ptidem.fintech.local"),
            ObservabilityInterceptor(),
            AuthInterceptor(None, POLICIES),
            IdempotencyInterceptor(db, schema.name, POLICIES),
        ],
        {"Echo": echo, "Slow": slow, "Fail": fail},
    )
    yield db, channel
    await channel.close()
    await server.stop(None)
    await db.close()


async def call(channel: grpc.aio.Channel, method: str, value: str, key: str | None) -> str:
    metadata = (("idempotency-key", key),) if key is not None else ()
    try:
        return str(
            (
                await stub(channel, method)(
                    wrappers_pb2.StringValue(value=value), metadata=metadata
                )
            ).value
        )
    except grpc.aio.AioRpcError as exc:
        details = details_from_rpc_error(exc)
        return f"{details.code.name}/{details.reason}"


async def effects(db: Database, entity_id: str) -> int:
    return int(
        await db.scalar(
            text("SELECT count(*) FROM audit_logs WHERE entity_id = :id"), {"id": entity_id}
        )
    )


async def stored(db: Database, key: str) -> int:
    return int(
        await db.scalar(text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key})
    )


async def test_same_key_same_request_replays_stored_response(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    key, value = f"k-{uuid.uuid4()}", f"v-{uuid.uuid4()}"
    first = await call(channel, "Echo", value, key)
    assert first.startswith(value + ":")
    assert await call(channel, "Echo", value, key) == first
    assert await effects(db, value) == 1
    row = await db.fetch_one(
        text("SELECT subject, method, response_type FROM idempotency_keys WHERE key = :k"),
        {"k": key},
    )
    assert tuple(row) == ("anonymous", f"/{SERVICE}/Echo", "google.protobuf.StringValue")


async def test_same_key_different_request_is_rejected(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    key = f"k-{uuid.uuid4()}"
    assert ":" in await call(channel, "Echo", "first", key)
    assert await call(channel, "Echo", "second", key) == "ALREADY_EXISTS/IDEMPOTENCY_KEY_REUSED"
    assert await effects(db, "second") == 0


async def test_concurrent_same_key_is_aborted(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    key, value = f"k-{uuid.uuid4()}", f"slow-{uuid.uuid4()}"
    first = asyncio.create_task(call(channel, "Slow", value, key))
    await asyncio.sleep(0.2)
    second = await call(channel, "Slow", value, key)
    assert second == "ABORTED/IDEMPOTENCY_REQUEST_IN_FLIGHT"
    result = await first
    assert result.startswith(value + ":")
    assert await call(channel, "Slow", value, key) == result  # after commit: replay
    assert await effects(db, value) == 1


async def test_failed_handler_stores_nothing_and_retry_runs(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    key, value = f"k-{uuid.uuid4()}", f"boom-{uuid.uuid4()}"
    assert await call(channel, "Fail", value, key) == "FAILED_PRECONDITION/NOT_YET"
    assert await stored(db, key) == 0
    assert await effects(db, value) == 0  # the effect rolled back with the failure
    assert await call(channel, "Fail", value, key) == "FAILED_PRECONDITION/NOT_YET"
    ok_value = f"fine-{uuid.uuid4()}"
    assert await call(channel, "Fail", ok_value, key) == "ok"
    assert await stored(db, key) == 1


async def test_missing_or_malformed_key(env) -> None:  # type: ignore[no-untyped-def]
    db, channel = env
    assert await call(channel, "Echo", "x", None) == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_REQUIRED"
    assert (
        await call(channel, "Echo", "x", "has space") == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_INVALID"
    )
    assert await call(channel, "Echo", "x", "k" * 129) == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_INVALID"
    assert await effects(db, "x") == 0


# -- own_record methods: the handler stores its idempotency record itself ------
# (the ledger's writer does, in its batch transaction). A minimal handler does
# the same in its own transaction: the interceptor opens none, hands over a
# Claim, and refuses an answer whose record was never stored.

# The test service's methods (platform_it_support), in these roles: Echo
# records its own answer, Fail answers without a record, Slow only reads.
OWN = f"/{SERVICE}/Echo"
FORGETS = f"/{SERVICE}/Fail"
READ = f"/{SERVICE}/Slow"
OWN_POLICIES = static_policies({OWN: MUTATING, FORGETS: MUTATING, READ: MethodPolicy(public=True)})


@pytest.fixture
async def own_env(schema: ServiceSchema) -> AsyncIterator[tuple[Database, grpc.aio.Channel]]:
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
                    SELECT_RECORD, dict(zip(("subject", "method", "key"), claim.scope, strict=True))
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
                await conn.execute(INSERT_RECORD, dict(zip(RECORD_COLUMNS, record, strict=True)))
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
            ErrorInterceptor("ptidem.fintech.local"),
            ObservabilityInterceptor(),
            AuthInterceptor(None, OWN_POLICIES),
            IdempotencyInterceptor(db, schema.name, OWN_POLICIES, own_record=[OWN, FORGETS]),
        ],
        {"Echo": own, "Fail": forgets},
    )
    yield db, channel
    await channel.close()
    await server.stop(None)
    await db.close()


async def test_own_record_replays_and_rejects_a_reused_key(own_env) -> None:  # type: ignore[no-untyped-def]
    db, channel = own_env
    key, value = f"k-{uuid.uuid4()}", f"v-{uuid.uuid4()}"
    first = await call(channel, "Echo", value, key)
    assert first.startswith(value + ":")
    assert await call(channel, "Echo", value, key) == first
    assert await call(channel, "Echo", "other", key) == "ALREADY_EXISTS/IDEMPOTENCY_KEY_REUSED"
    assert await effects(db, value) == 1
    assert await effects(db, "other") == 0
    assert await stored(db, key) == 1


async def test_own_record_still_requires_a_valid_key(own_env) -> None:  # type: ignore[no-untyped-def]
    db, channel = own_env
    value = f"v-{uuid.uuid4()}"
    assert await call(channel, "Echo", value, None) == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_REQUIRED"
    assert (
        await call(channel, "Echo", value, "bad key!") == "INVALID_ARGUMENT/IDEMPOTENCY_KEY_INVALID"
    )
    assert await effects(db, value) == 0


async def test_an_answer_without_a_stored_record_is_an_internal_error(own_env) -> None:  # type: ignore[no-untyped-def]
    db, channel = own_env
    key, value = f"k-{uuid.uuid4()}", f"v-{uuid.uuid4()}"
    assert (await call(channel, "Fail", value, key)).startswith("INTERNAL/")
    assert await stored(db, key) == 0


def test_own_record_is_only_for_mutating_methods(schema: ServiceSchema) -> None:
    with pytest.raises(AssertionError, match="not mutating"):
        IdempotencyInterceptor(
            Database(schema.url, pool_size=1),
            schema.name,
            OWN_POLICIES,
            own_record=[READ],
        )
