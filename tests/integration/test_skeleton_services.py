"""kyc, risk, loans, ledger and payments before their own issues (issue 2, section 6).

Each starts in the stack, reports SERVING, exposes its whole v1 contract through
reflection, answers every RPC with UNIMPLEMENTED + ErrorInfo NOT_IMPLEMENTED, and
has its schema, role and migration chain in Postgres. The expected contract is
read from gen/api.binpb (the descriptor set Envoy loads), not from the code
under test.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from devstack.topology import SERVICES
from services.platform.policy import policy_for
from tests.support.tokens import mint_token

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Services whose behaviour still belongs to a later issue (ledger, risk, kyc, loans and
# payments have theirs): none left; the tests below then have nothing to check.
SKELETONS: tuple[str, ...] = ()
DESCRIPTOR_SET = Path(__file__).parents[2] / "gen" / "api.binpb"
CALL_TIMEOUT_S = 5.0
TOKEN_LIFETIME_S = 300


def contract() -> dict[str, dict[str, descriptor_pb2.ServiceDescriptorProto]]:
    """{svc: {full service name: its descriptor}} for the v1 packages in gen/api.binpb."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file
    found: dict[str, dict[str, descriptor_pb2.ServiceDescriptorProto]] = {s: {} for s in SKELETONS}
    for file in files:
        for svc in SKELETONS:
            if file.package == f"fintech.{svc}.v1":
                # The method policies live in the default pool once the _pb2 is imported.
                importlib.import_module(file.name.removesuffix(".proto").replace("/", ".") + "_pb2")
                for service in file.service:
                    found[svc][f"{file.package}.{service.name}"] = service
    return found


CONTRACT = contract() if DESCRIPTOR_SET.exists() else {}


@pytest.fixture(params=SKELETONS)
async def service(request: pytest.FixtureRequest, stack: Any) -> AsyncIterator[tuple[str, Any]]:
    async with grpc.aio.insecure_channel(stack.grpc_targets[request.param]) as channel:
        yield request.param, channel


def test_every_skeleton_has_a_contract() -> None:
    assert DESCRIPTOR_SET.exists(), f"{DESCRIPTOR_SET} is missing: run `make gen`"
    for svc in SKELETONS:
        assert CONTRACT[svc], f"gen/api.binpb has no service in fintech.{svc}.v1"


async def test_health_is_serving(service: tuple[str, Any]) -> None:
    svc, channel = service
    health = health_pb2_grpc.HealthStub(channel)
    for name in ["", *CONTRACT[svc]]:
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service=name), timeout=CALL_TIMEOUT_S
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, (svc, name)


async def reflect(channel: Any, request: reflection_pb2.ServerReflectionRequest) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = [
        r async for r in stub.ServerReflectionInfo(iter([request]), timeout=CALL_TIMEOUT_S)
    ]
    assert len(responses) == 1
    return responses[0]


async def test_reflection_exposes_the_whole_v1_contract(service: tuple[str, Any]) -> None:
    svc, channel = service
    listing = await reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = {s.name for s in listing.list_services_response.service}
    assert set(CONTRACT[svc]) <= listed
    # Only this service's own v1 surface besides health and reflection.
    assert {n for n in listed if n.startswith("fintech.")} == set(CONTRACT[svc])

    for full_name, expected in CONTRACT[svc].items():
        reply = await reflect(
            channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=full_name)
        )
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto
        ]
        package, _, name = full_name.rpartition(".")
        served = [s for f in files if f.package == package for s in f.service if s.name == name]
        assert len(served) == 1, full_name
        assert [m.name for m in served[0].method] == [m.name for m in expected.method]


def unimplemented_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED, (error.code(), error.details())
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1
    return infos[0]


async def call_raw(channel: Any, path: str, server_streaming: bool, token: str) -> None:
    """Call with an empty request message: every field default, valid on the wire."""
    metadata = (
        ("authorization", f"Bearer {token}"),
        ("idempotency-key", uuid.uuid4().hex),
    )
    if server_streaming:
        stream = channel.unary_stream(path)(b"", metadata=metadata, timeout=CALL_TIMEOUT_S)
        async for _ in stream:
            pytest.fail(f"{path} streamed a message")
    else:
        await channel.unary_unary(path)(b"", metadata=metadata, timeout=CALL_TIMEOUT_S)


async def test_a_user_call_answers_unimplemented_with_error_info(
    service: tuple[str, Any], stack: Any
) -> None:
    svc, channel = service
    token = mint_token(stack.secrets_dir, roles=["user"])
    # A method an ordinary user may call: neither internal nor role-restricted.
    candidates = [
        (full_name, method)
        for full_name, desc in CONTRACT[svc].items()
        for method in desc.method
        if not method.client_streaming
        and not (p := policy_for(f"/{full_name}/{method.name}")).internal
        and not p.roles
    ]
    assert candidates, f"{svc} has no method open to role user"
    full_name, method = candidates[0]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_raw(channel, f"/{full_name}/{method.name}", method.server_streaming, token)
    info = unimplemented_info(raised.value)
    assert info.reason == "NOT_IMPLEMENTED"
    assert info.domain == f"{svc}.fintech.local"
    assert method.name in raised.value.details()


async def test_every_method_answers_unimplemented(service: tuple[str, Any], stack: Any) -> None:
    svc, channel = service
    # Every role, so that role checks pass and the call reaches the handler.
    token = mint_token(stack.secrets_dir, roles=["user", "service", "backoffice"])
    for full_name, desc in CONTRACT[svc].items():
        for method in desc.method:
            assert not method.client_streaming, "client streaming is not part of any v1 contract"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call_raw(
                    channel, f"/{full_name}/{method.name}", method.server_streaming, token
                )
            assert unimplemented_info(raised.value).reason == "NOT_IMPLEMENTED", method.name


def test_schema_role_and_migration_chain(stack: Any) -> None:
    with psycopg.connect(stack.infra.pg_admin_url, connect_timeout=10) as conn:
        for svc in SERVICES:
            role = f"{svc}_svc"
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            (owns,) = conn.execute(
                "SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, svc)
            ).fetchone() or (False,)
            assert owns, f"{role} cannot use schema {svc}"
            others = [s for s in SERVICES if s != svc]
            for other in others:
                (crosses,) = conn.execute(
                    "SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, other)
                ).fetchone() or (True,)
                assert not crosses, f"{role} may use schema {other}"
            applied = {
                name
                for (name,) in conn.execute(f'SELECT name FROM "{svc}".schema_migrations')  # noqa: S608
            }
            on_disk = {
                f"{path.parent.name}/{path.name}"
                for folder in ("_platform", svc)
                for path in (REPO / "migrations" / folder).glob("*.sql")
            }
            assert applied == on_disk, f"{svc}: applied {sorted(applied)} != {sorted(on_disk)}"
