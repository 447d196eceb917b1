"""A servicer whose every RPC answers UNIMPLEMENTED with ErrorInfo NOT_IMPLEMENTED.

Used by services whose behaviour belongs to a later issue: they still start,
pass health checks and expose their full contract through reflection.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool

from services.platform.errors import unimplemented

T = TypeVar("T")


def unimplemented_servicer(servicer_base: type[T], service_full_name: str) -> T:
    service = descriptor_pool.Default().FindServiceByName(service_full_name)
    namespace: dict[str, Any] = {}
    for method in service.methods:
        namespace[method.name] = _raiser(service_full_name, method.name)
    cls = type(f"Unimplemented{service.name}", (servicer_base,), namespace)
    return cls()


def _raiser(service: str, method: str) -> Any:
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise unimplemented(service, method)

    handler.__name__ = method
    return handler
