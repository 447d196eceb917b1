"""Shared helpers for the platform unit tests: a tiny echo service registered in
the default descriptor pool, an in-process grpc.aio server, and ES256 keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2

PACKAGE = "fintech.platformunit.v1"
SERVICE = f"{PACKAGE}.EchoService"
METHODS = ("Echo", "Fail", "Crash", "Admin", "Internal", "Public", "Stream")
ISSUER = "https://identity.fintech.local"
AUDIENCE = "fintech-api"


def _register() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(SERVICE)
        return
    except KeyError:
        pass
    fdp = descriptor_pb2.FileDescriptorProto(
        name="fintech/platformunit/v1/echo.proto",
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
            server_streaming=name == "Stream",
        )
    pool.AddSerializedFile(fdp.SerializeToString())


_register()

# Unary behaviours return awaitables, streaming ones async iterators.
Behavior = Callable[[wrappers_pb2.StringValue, grpc.aio.ServicerContext], Any]


async def start_server(
    interceptors: Sequence[grpc.aio.ServerInterceptor], behaviors: dict[str, Behavior]
) -> tuple[grpc.aio.Server, grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=list(interceptors))
    handlers = {}
    for name, fn in behaviors.items():
        factory = (
            grpc.unary_stream_rpc_method_handler
            if name == "Stream"
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[name] = factory(
            fn,
            request_deserializer=wrappers_pb2.StringValue.FromString,
            response_serializer=wrappers_pb2.StringValue.SerializeToString,
        )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


def stub(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/{method}",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )


class KeyPair:
    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:8]
        self.private = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(
            self.private.public_key(), as_dict=True
        )
        data.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return data

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "sid": "session-1",
            "roles": ["customer"],
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": overrides.pop("kid", self.kid)}
        for key, value in overrides.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        return jwt.encode(claims, self.private, algorithm="ES256", headers=headers)


def jwks(*pairs: KeyPair) -> dict[str, Any]:
    return {"keys": [p.jwk() for p in pairs]}
