"""Helpers for the platform integration tests: an isolated schema/role per test
module, a tiny echo service registered in the default descriptor pool, and
throwaway event messages with a per-run event type."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import psycopg
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, wrappers_pb2
from psycopg import sql

from fintech.api.v1 import options_pb2
from services.platform.migrate import DEFAULT_DATABASE, database_url, migrate, role_name

REPO = Path(__file__).resolve().parents[3]
MIGRATIONS = REPO / "migrations"
PACKAGE = "fintech.platformit.v1"
SERVICE = f"{PACKAGE}.EchoService"
METHODS = ("Echo", "Slow", "Fail")


def _register() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(SERVICE)
        return
    except KeyError:
        pass
    fdp = descriptor_pb2.FileDescriptorProto(
        name="fintech/platformit/v1/echo.proto",
        package=PACKAGE,
        dependency=[wrappers_pb2.DESCRIPTOR.name],
        syntax="proto3",
    )
    svc = fdp.service.add(name="EchoService")
    for name in METHODS:
        svc.method.add(
            name=name,
            input_type=".google.protobuf.StringValue",
            output_type=".google.protobuf.StringValue",
        )
    pool.AddSerializedFile(fdp.SerializeToString())


_register()


def event_class_for_run(run: str) -> type[message.Message]:
    """`ThingHappened {string thing = 1}` with event type `platformtest.<run>.thing_happened`.

    Events always go to `fintech.events.<event_type>`, inside the real FINTECH
    stream (`fintech.>`; JetStream refuses a second stream overlapping it), so
    each test run gets its own event type and thus its own subjects: nothing a
    real consumer subscribes to, and purgeable afterwards.
    """
    package = f"fintech.platformit.v1.r{run}"
    pool = descriptor_pool.Default()
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"fintech/platformit/v1/events_{run}.proto",
        package=package,
        dependency=[options_pb2.DESCRIPTOR.name],
        syntax="proto3",
    )
    msg = fdp.message_type.add(name="ThingHappened")
    msg.field.add(
        name="thing",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    msg.options.Extensions[options_pb2.event_type] = f"platformtest.{run}.thing_happened"
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.ThingHappened"))


@dataclass
class ServiceSchema:
    """A throwaway service: schema + role `<name>_svc`, migrated like a real one."""

    name: str
    password: str
    admin_url: str  # connected to the fintech database

    @property
    def role(self) -> str:
        return role_name(self.name)

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin_url)
        netloc = f"{quote(self.role, safe='')}:{quote(self.password, safe='')}@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.name))
            )
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (self.role,)
            ).fetchone()
            if exists:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(self.role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(self.role)))


def provision(
    pg_admin_url: str, prefix: str = "pt", migrations_dir: Path = MIGRATIONS
) -> ServiceSchema:
    name = f"{prefix}{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    migrate(pg_admin_url, name, password, migrations_dir)
    return ServiceSchema(name, password, database_url(pg_admin_url, DEFAULT_DATABASE))


Behavior = Callable[[wrappers_pb2.StringValue, grpc.aio.ServicerContext], Awaitable[Any]]


def echo_handlers(behaviors: dict[str, Behavior]) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
            for name, fn in behaviors.items()
        },
    )


async def start_server(
    interceptors: Sequence[grpc.aio.ServerInterceptor], behaviors: dict[str, Behavior]
) -> tuple[grpc.aio.Server, grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=list(interceptors))
    server.add_generic_rpc_handlers([echo_handlers(behaviors)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


def stub(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/{method}",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
