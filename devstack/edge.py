"""Renders envoy/envoy.template.yaml for one stack, from the topology and the contracts.

Routing model (all decisions on the gRPC path, i.e. after transcoding):
- one exact route per HTTP-annotated, non-internal RPC, with its own timeout;
  GET-mapped (safe) RPCs get a retry policy, nothing else is ever retried;
- internal RPCs get an explicit 404 (also blocks native gRPC calls to them);
- then one prefix route `/fintech.<svc>.v1.` per service (native gRPC callers of
  non-internal methods without HTTP rules), no retries;
- nothing else matches, so Envoy answers 404.
JWT: public RPCs are exempt by exact gRPC path, everything else requires the
provider. Rate limits (domain `fintech-edge`), as descriptors sent to the
rate-limit service:
- `[("remote_address", <client ip>)]` on every route;
- `[("user", <verified sub>)]` on every route, taken from jwt_authn's verified
  payload (absent on public routes, then not sent);
- `[("auth", "credentials"), ("remote_address", <client ip>)]` on the public
  RPCs of the identity package (register, login, refresh): the much tighter
  limit against credential stuffing.
The limits themselves live in envoy/ratelimit.yaml (rendered per profile).
"""

from __future__ import annotations

import ipaddress
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml

from devstack.contract import Rpc, edge_rpcs, load_rpcs, transcoded_services
from devstack.topology import SERVICES, Ports

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "envoy" / "envoy.template.yaml"
RATELIMIT_TEMPLATE = REPO_ROOT / "envoy" / "ratelimit.yaml"
DESCRIPTOR_SET = REPO_ROOT / "gen" / "api.binpb"
JWT_PROVIDER = "fintech"
RATELIMIT_DOMAIN = "fintech-edge"
AUTH_DESCRIPTOR = ("auth", "credentials")
CREDENTIAL_PACKAGE = "fintech.identity.v1"
LOCAL_HOST = "127.0.0.1"

SAFE_TIMEOUT = "5s"
UNSAFE_TIMEOUT = "15s"
PREFIX_TIMEOUT = "15s"
SAFE_RETRIES = 2
SAFE_PER_TRY_TIMEOUT = "2s"

# Test profile: logins and registrations across a whole test session come from
# 127.0.0.1, so the per-address credential limit is looser there (tests that need
# a fresh bucket connect from another 127.0.0.0/8 source address).
AUTH_LIMIT_PER_MINUTE = {"run": 10, "test": 120}  # any profile but `run` is a test one
ADDRESS_LIMIT_PER_SECOND = 300
USER_LIMIT_PER_SECOND = 300
EDGE_ERROR_DOMAIN = "edge.fintech.local"


@dataclass(frozen=True)
class LocalReply:
    """How Envoy answers one kind of its own replies: a google.rpc.Status."""

    status: int  # the HTTP status Envoy chose
    code: grpc.StatusCode  # the body's google.rpc.Code
    reason: str  # ErrorInfo.reason: what a client acts on
    cause: str = ""  # only when Envoy's response code details contain this
    becomes: int = 0  # the HTTP status sent instead, when not `status`


# The first match wins (Envoy's mappers). jwt_authn answers 403 for a wrong
# audience, and the RBAC filter for a service token: both are tokens not valid
# for this API (RFC 6750: 401 invalid_token); no other filter here answers 403
# locally, and the services' own replies are not local replies. An expired
# token is told apart because the client should refresh it, not log in again.
LOCAL_REPLIES = (
    LocalReply(403, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID", becomes=401),
    LocalReply(401, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING", cause="Jwt_is_missing"),
    LocalReply(401, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED", cause="Jwt_is_expired"),
    LocalReply(401, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
    LocalReply(429, grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
    LocalReply(404, grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    LocalReply(400, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    LocalReply(413, grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_TOO_LARGE"),
    LocalReply(503, grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
    LocalReply(504, grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
)
CEL_FILTER_TYPE = (
    "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
)
# Any other reply Envoy makes itself.
OTHER_LOCAL_REPLY = LocalReply(0, grpc.StatusCode.UNKNOWN, "EDGE_ERROR")


@dataclass(frozen=True)
class EdgeInputs:
    profile: str
    ports: Ports
    secrets_dir: Path
    access_log: Path
    descriptor_set: Path = DESCRIPTOR_SET
    jwt_issuer: str = "https://identity.fintech.local"
    jwt_audience: str = "fintech-api"
    # Where Envoy reaches each upstream (a SERVICES name or "ratelimit"); absent
    # ones are on 127.0.0.1. compose.yaml names them by container (devstack/compose.py).
    upstream_hosts: Mapping[str, str] = field(default_factory=dict)
    # The descriptor set's path as Envoy sees it, when Envoy runs where
    # `descriptor_set` (read here for the routes) has another path: a container.
    envoy_descriptor_set: Path | None = None


def is_credential_rpc(rpc: Rpc) -> bool:
    return rpc.public and rpc.package == CREDENTIAL_PACKAGE


def _rate_limits(rpc: Rpc | None) -> list[dict[str, object]]:
    limits: list[dict[str, object]] = [
        {"actions": [{"remote_address": {}}]},
        {
            "actions": [
                {
                    "metadata": {
                        "descriptor_key": "user",
                        "metadata_key": {
                            "key": "envoy.filters.http.jwt_authn",
                            "path": [{"key": "jwt_payload"}, {"key": "sub"}],
                        },
                        "source": "DYNAMIC",
                        "skip_if_absent": True,
                    }
                }
            ]
        },
    ]
    if rpc is not None and is_credential_rpc(rpc):
        key, value = AUTH_DESCRIPTOR
        limits.append(
            {
                "actions": [
                    {"generic_key": {"descriptor_key": key, "descriptor_value": value}},
                    {"remote_address": {}},
                ]
            }
        )
    return limits


def _cluster_name(service: str) -> str:
    return f"svc_{service}"


def build_routes(rpcs: Sequence[Rpc]) -> list[dict[str, object]]:
    routes: list[dict[str, object]] = []
    for rpc in sorted(edge_rpcs(list(rpcs)), key=lambda r: r.grpc_path):
        assert rpc.owner in SERVICES, f"{rpc.service} belongs to no known service"
        action: dict[str, object] = {
            "cluster": _cluster_name(rpc.owner),
            "timeout": SAFE_TIMEOUT if rpc.safe else UNSAFE_TIMEOUT,
            "rate_limits": _rate_limits(rpc),
        }
        if rpc.safe:
            action["retry_policy"] = {
                "retry_on": "connect-failure,refused-stream,reset,unavailable",
                "num_retries": SAFE_RETRIES,
                "per_try_timeout": SAFE_PER_TRY_TIMEOUT,
                "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
            }
        routes.append(
            {
                "name": f"{rpc.service}.{rpc.method}",
                "match": {"path": rpc.grpc_path},
                "route": action,
            }
        )
    for rpc in sorted((r for r in rpcs if r.internal), key=lambda r: r.grpc_path):
        routes.append(
            {
                "name": f"internal:{rpc.service}.{rpc.method}",
                "match": {"path": rpc.grpc_path},
                "direct_response": {"status": 404},
            }
        )
    for service in SERVICES:
        routes.append(
            {
                "name": f"grpc:{service}",
                "match": {
                    "prefix": f"/fintech.{service}.v1.",
                    "grpc": {},
                },
                "route": {
                    "cluster": _cluster_name(service),
                    "timeout": PREFIX_TIMEOUT,
                    "rate_limits": _rate_limits(None),
                },
            }
        )
    return routes


def build_jwt_rules(rpcs: Sequence[Rpc]) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = [
        {"match": {"path": r.grpc_path}}
        for r in sorted(rpcs, key=lambda r: r.grpc_path)
        if r.public and not r.internal
    ]
    rules.append({"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}})
    return rules


def _h2_options() -> dict[str, object]:
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {
                "http2_protocol_options": {
                    "max_concurrent_streams": 1000,
                    "connection_keepalive": {"interval": "30s", "timeout": "5s"},
                }
            },
            "common_http_protocol_options": {"idle_timeout": "300s"},
        }
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cluster(name: str, host: str, port: int, *, health: bool) -> dict[str, object]:
    cluster: dict[str, object] = {
        "name": name,
        # STATIC takes only IP literals; a host name (a compose service) is
        # resolved, and re-resolved so that a restarted container's new address is picked up.
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": 32768,
        "typed_extension_protocol_options": _h2_options(),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": host, "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 1024,
                    "max_pending_requests": 1024,
                    "max_requests": 1024,
                    "max_retries": 16,
                }
            ]
        },
    }
    if health:
        cluster["health_checks"] = [
            {
                "timeout": "1s",
                "interval": "2s",
                "no_traffic_interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": ""},
            }
        ]
        cluster["outlier_detection"] = {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 5,
            "interval": "5s",
            "base_ejection_time": "15s",
            "max_ejection_percent": 100,
        }
    return cluster


def build_clusters(ports: Ports, hosts: Mapping[str, str] | None = None) -> list[dict[str, object]]:
    hosts = hosts or {}
    clusters = [
        _cluster(_cluster_name(s), hosts.get(s, LOCAL_HOST), ports[s], health=True)
        for s in SERVICES
    ]
    # The limiter is health-checked too so that Envoy skips it (fail-open) fast when down.
    clusters.append(
        _cluster("ratelimit", hosts.get("ratelimit", LOCAL_HOST), ports["ratelimit"], health=True)
    )
    return clusters


def _status_body(reply: LocalReply) -> dict[str, object]:
    """The JSON body format: Envoy's message, and its response code details as the cause."""
    return {
        "json_format": {
            "code": reply.code.value[0],
            "message": "%LOCAL_REPLY_BODY%",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reply.reason,
                    "domain": EDGE_ERROR_DOMAIN,
                    "metadata": {"cause": "%RESPONSE_CODE_DETAILS%"},
                }
            ],
        }
    }


def _local_reply_filter(reply: LocalReply) -> dict[str, object]:
    status: dict[str, object] = {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {
                    "default_value": reply.status,
                    "runtime_key": f"edge.local_reply_{reply.status}",
                },
            }
        }
    }
    if not reply.cause:
        return status
    cause = {
        "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": CEL_FILTER_TYPE,
                "expression": f"response.code_details.contains('{reply.cause}')",
            },
        }
    }
    return {"and_filter": {"filters": [status, cause]}}


def build_local_reply_config() -> dict[str, object]:
    mappers: list[dict[str, object]] = []
    for reply in LOCAL_REPLIES:
        mapper: dict[str, object] = {"filter": _local_reply_filter(reply)}
        if reply.becomes:
            mapper["status_code"] = reply.becomes
        mapper["body_format_override"] = _status_body(reply)
        mappers.append(mapper)
    return {"mappers": mappers, "body_format": _status_body(OTHER_LOCAL_REPLY)}


def render_envoy_config(inputs: EdgeInputs) -> str:
    rpcs = load_rpcs(inputs.descriptor_set)
    services = transcoded_services(rpcs)
    assert services, f"no HTTP-annotated service in {inputs.descriptor_set}"
    values: dict[str, object] = {
        "PROFILE": inputs.profile,
        "ADMIN_PORT": inputs.ports["envoy_admin"],
        "HTTPS_PORT": inputs.ports["envoy"],
        "SERVER_CERT": str(inputs.secrets_dir / "server.pem"),
        "SERVER_KEY": str(inputs.secrets_dir / "server_key.pem"),
        "ACCESS_LOG": str(inputs.access_log),
        "ROUTES": build_routes(rpcs),
        "HEALTHY_PERCENTAGES": {_cluster_name(s): {"value": 100.0} for s in SERVICES},
        "PROTO_DESCRIPTOR": str(inputs.envoy_descriptor_set or inputs.descriptor_set),
        "TRANSCODED_SERVICES": services,
        "JWT_ISSUER": inputs.jwt_issuer,
        "JWT_AUDIENCE": inputs.jwt_audience,
        "JWKS_FILE": str(inputs.secrets_dir / "jwks.json"),
        "JWT_RULES": build_jwt_rules(rpcs),
        "CLUSTERS": build_clusters(inputs.ports, inputs.upstream_hosts),
        "LOCAL_REPLY_CONFIG": build_local_reply_config(),
    }
    text = string.Template(TEMPLATE.read_text()).substitute(
        {k: json.dumps(v) for k, v in values.items()}
    )
    # Round-trip through YAML: fails here, with a line number, on a template error.
    config = yaml.safe_load(text)
    return yaml.safe_dump(config, sort_keys=False, width=120)


def render_ratelimit_config(profile: str) -> str:
    text = string.Template(RATELIMIT_TEMPLATE.read_text()).substitute(
        AUTH_PER_MINUTE=AUTH_LIMIT_PER_MINUTE["run" if profile == "run" else "test"],
        ADDRESS_PER_SECOND=ADDRESS_LIMIT_PER_SECOND,
        USER_PER_SECOND=USER_LIMIT_PER_SECOND,
    )
    config = yaml.safe_load(text)
    assert config["domain"] == RATELIMIT_DOMAIN
    return yaml.safe_dump(config, sort_keys=False)
