"""The RPC surface as Envoy sees it: read from the descriptor set `gen/api.binpb`.

The edge config and its contract tests read HTTP rules and method policies from
the same file Envoy's transcoder loads, not from the generated Python, so what is
checked is what is served. Options are decoded through a private descriptor pool
built from the set itself (the extensions need no generated module).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

POLICY_EXTENSION = "fintech.api.v1.method_policy"
HTTP_EXTENSION = "google.api.http"
_PACKAGE = re.compile(r"^fintech\.([a-z_]+)\.v(\d+)$")
HTTP_VERBS = ("get", "put", "post", "delete", "patch")
MAX_DESCRIPTOR_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class HttpBinding:
    verb: str  # upper-case HTTP method
    path: str  # template, e.g. /v1/{name=users/*}
    body: str


@dataclass(frozen=True)
class Rpc:
    package: str
    service: str  # full name, e.g. fintech.identity.v1.IdentityService
    method: str
    http: tuple[HttpBinding, ...]
    mutating: bool
    public: bool
    internal: bool
    roles: tuple[str, ...]

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def owner(self) -> str:
        """The topology service name that owns the package (`identity`)."""
        m = _PACKAGE.match(self.package)
        assert m is not None, self.package
        return m.group(1)

    @property
    def safe(self) -> bool:
        """Retry-safe at the edge: every HTTP binding is a GET."""
        return bool(self.http) and all(b.verb == "GET" for b in self.http)


def _bindings(rule: Any) -> list[HttpBinding]:
    """HttpRule (a message class of the private pool, hence untyped) -> bindings."""
    out: list[HttpBinding] = []
    pattern = rule.WhichOneof("pattern")
    if pattern in HTTP_VERBS:
        out.append(HttpBinding(pattern.upper(), getattr(rule, pattern), rule.body))
    elif pattern == "custom":
        out.append(HttpBinding(rule.custom.kind.upper(), rule.custom.path, rule.body))
    for extra in rule.additional_bindings:
        out.extend(_bindings(extra))
    return out


def load_rpcs(descriptor_set: Path) -> list[Rpc]:
    """Every RPC of every `fintech.<svc>.vN` service in the descriptor set."""
    data = descriptor_set.read_bytes()
    assert len(data) <= MAX_DESCRIPTOR_BYTES, "descriptor set unexpectedly large"
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    # Any: extensions of a private pool are not typed as the generated ones are.
    policy_ext: Any = None
    http_ext: Any = None
    with contextlib.suppress(KeyError):
        policy_ext = pool.FindExtensionByName(POLICY_EXTENSION)
    with contextlib.suppress(KeyError):
        http_ext = pool.FindExtensionByName(HTTP_EXTENSION)
    options_cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.protobuf.MethodOptions")
    )
    rpcs: list[Rpc] = []
    for f in fds.file:
        if not _PACKAGE.match(f.package):
            continue
        for svc in f.service:
            for m in svc.method:
                opts = options_cls.FromString(m.options.SerializeToString())
                policy = (
                    opts.Extensions[policy_ext]
                    if policy_ext is not None and opts.HasExtension(policy_ext)
                    else None
                )
                http = (
                    _bindings(opts.Extensions[http_ext])
                    if http_ext is not None and opts.HasExtension(http_ext)
                    else []
                )
                rpcs.append(
                    Rpc(
                        package=f.package,
                        service=f"{f.package}.{svc.name}",
                        method=m.name,
                        http=tuple(http),
                        # No option: authenticated, not mutating, not internal (CONVENTIONS).
                        mutating=bool(policy and policy.mutating),
                        public=bool(policy and policy.public),
                        internal=bool(policy and policy.internal),
                        roles=tuple(policy.roles) if policy else (),
                    )
                )
    return rpcs


def edge_rpcs(rpcs: list[Rpc]) -> list[Rpc]:
    """What Envoy exposes: HTTP-annotated, not internal."""
    return [r for r in rpcs if r.http and not r.internal]


def transcoded_services(rpcs: list[Rpc]) -> list[str]:
    """Services given to the transcoder: non-internal ones with at least one HTTP rule."""
    return sorted({r.service for r in edge_rpcs(rpcs)})
