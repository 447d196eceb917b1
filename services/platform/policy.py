"""Method policy: the `fintech.api.v1.method_policy` option of each RPC.

Read from the default descriptor pool, so the service's `_pb2` module (and
`fintech.api.v1.options_pb2`) must be imported before the first call. A
method without the option is authenticated, not mutating, not internal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import descriptor_pool


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    mutating: bool = False
    public: bool = False
    internal: bool = False
    roles: frozenset[str] = frozenset()


DEFAULT_POLICY = MethodPolicy()

PolicyLookup = Callable[[str], MethodPolicy]

# Infrastructure services answered by every server: never authenticated,
# never mutating (health probes and grpcurl must work without a token).
INFRASTRUCTURE_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
INFRASTRUCTURE_POLICY = MethodPolicy(public=True)


def split_full_method(full_method: str) -> tuple[str, str]:
    """'/pkg.Service/Method' → ('pkg.Service', 'Method')."""
    parts = full_method.split("/")
    if len(parts) != 3 or parts[0] != "" or not parts[1] or not parts[2]:
        raise ValueError(f"not a full gRPC method name: {full_method!r}")
    return parts[1], parts[2]


@functools.lru_cache(maxsize=4096)
def policy_for(full_method: str) -> MethodPolicy:
    service, method = split_full_method(full_method)
    if service in INFRASTRUCTURE_SERVICES:
        return INFRASTRUCTURE_POLICY
    try:
        desc = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return DEFAULT_POLICY
    options = desc.GetOptions()
    # Imported lazily: gen/ is produced by `make gen`, and modules that never
    # look a policy up (migrate, crypto) must not depend on it.
    from fintech.api.v1 import options_pb2

    if not options.HasExtension(options_pb2.method_policy):
        return DEFAULT_POLICY
    raw = options.Extensions[options_pb2.method_policy]
    return MethodPolicy(
        mutating=raw.mutating,
        public=raw.public,
        internal=raw.internal,
        roles=frozenset(raw.roles),
    )


def static_policies(
    policies: dict[str, MethodPolicy], default: MethodPolicy = DEFAULT_POLICY
) -> PolicyLookup:
    """A lookup over a fixed table (tests, or services without generated options)."""

    def lookup(full_method: str) -> MethodPolicy:
        service, _ = split_full_method(full_method)
        if service in INFRASTRUCTURE_SERVICES:
            return INFRASTRUCTURE_POLICY
        return policies.get(full_method, default)

    return lookup
