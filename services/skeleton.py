"""Serve a service's whole v1 contract before its behaviour exists.

Services whose behaviour belongs to a later issue still start, pass health
checks and answer reflection with every v1 service and method, so clients,
Envoy and grpcurl can be built against the contract now. Each method answers
through the platform's placeholder servicer: status UNIMPLEMENTED with an
ErrorInfo reason NOT_IMPLEMENTED.

Generic on purpose (one place instead of one copy per service): the generated
modules are discovered under `fintech.<service>.v1`, so a proto file added to a
service's v1 package is served without touching the service.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import grpc

from services.platform.app import ServiceContext, Setup
from services.platform.unimplemented import unimplemented_servicer

# A v1 package holds a handful of files; this bounds discovery against a
# misplaced tree rather than any real contract.
MAX_CONTRACT_MODULES = 32


def contract_modules(service: str) -> list[ModuleType]:
    """Every generated `fintech.<service>.v1.*_pb2_grpc` module, in name order."""
    package = importlib.import_module(f"fintech.{service}.v1")
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.endswith("_pb2_grpc")
    )
    if not 0 < len(names) <= MAX_CONTRACT_MODULES:
        raise RuntimeError(
            f"expected 1..{MAX_CONTRACT_MODULES} gRPC modules for {service}, found {names}"
        )
    return [importlib.import_module(f"{package.__name__}.{name}") for name in names]


def register_contract(server: grpc.aio.Server, grpc_module: ModuleType) -> list[str]:
    """Add the platform's placeholder servicer for each service of one generated file."""
    # The `_pb2` sibling holds the file descriptor; importing it also puts the
    # methods' policy options in the default pool, where the platform reads them.
    messages = importlib.import_module(grpc_module.__name__.removesuffix("_grpc"))
    names = []
    for service in messages.DESCRIPTOR.services_by_name.values():
        base = getattr(grpc_module, f"{service.name}Servicer")
        add_to_server = getattr(grpc_module, f"add_{service.name}Servicer_to_server")
        add_to_server(unimplemented_servicer(base, service.full_name), server)
        names.append(service.full_name)
    return names


def contract_only_setup(service: str) -> Setup:
    """A `run_service` setup serving `service`'s whole v1 contract with placeholders."""

    async def setup(ctx: ServiceContext, server: grpc.aio.Server) -> list[str]:
        names = [
            name
            for module in contract_modules(service)
            for name in register_contract(server, module)
        ]
        if not names:
            raise RuntimeError(f"fintech.{service}.v1 declares no gRPC service")
        return names

    return setup
