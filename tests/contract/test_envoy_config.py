"""The rendered edge config: valid for Envoy, and derived from the contracts.

Needs no running server: the config is rendered into a temp dir with freshly
generated secrets and checked by `envoy --mode validate` and by reading it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.contract import Rpc, edge_rpcs, load_rpcs, transcoded_services
from devstack.devsecrets import Secrets, ensure_secrets
from devstack.edge import (
    AUTH_DESCRIPTOR,
    DESCRIPTOR_SET,
    EdgeInputs,
    render_envoy_config,
    render_ratelimit_config,
)
from devstack.topology import SERVICES, Ports

ENVOY = str(Path(sys.executable).parent / "envoy")


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    return ensure_secrets(tmp_path_factory.mktemp("edge") / "secrets")


@pytest.fixture(scope="module")
def rendered(secrets: Secrets, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("edge-config") / "envoy.yaml"
    out.write_text(
        render_envoy_config(
            EdgeInputs(
                profile="test",
                ports=Ports(27000),
                secrets_dir=secrets.dir,
                access_log=out.parent / "access.log",
            )
        )
    )
    return out


@pytest.fixture(scope="module")
def config(rendered: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(rendered.read_text())
    return data


@pytest.fixture(scope="module")
def rpcs() -> list[Rpc]:
    return load_rpcs(DESCRIPTOR_SET)


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def _filter(config: dict[str, Any], name: str) -> dict[str, Any]:
    for f in _hcm(config)["http_filters"]:
        if f["name"] == name:
            typed: dict[str, Any] = f["typed_config"]
            return typed
    raise AssertionError(f"filter {name} missing")


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = _hcm(config)["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def _first_route(config: dict[str, Any], path: str) -> dict[str, Any] | None:
    """Envoy's first-match semantics for the path/prefix matchers we generate."""
    for route in _routes(config):
        m = route["match"]
        if m.get("path") == path or ("prefix" in m and path.startswith(m["prefix"])):
            return route
    return None


def _first_jwt_rule(config: dict[str, Any], path: str) -> dict[str, Any]:
    for rule in _filter(config, "envoy.filters.http.jwt_authn")["rules"]:
        m = rule["match"]
        if m.get("path") == path or ("prefix" in m and path.startswith(m["prefix"])):
            return dict(rule)
    raise AssertionError(f"no jwt rule matches {path}")


def test_rendered_config_passes_envoy_validation(rendered: Path) -> None:
    done = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(rendered), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK" in done.stdout + done.stderr


def test_http_filters_run_in_the_documented_order(config: dict[str, Any]) -> None:
    names = [f["name"] for f in _hcm(config)["http_filters"]]
    assert names == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.health_check",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.rbac",
        "envoy.filters.http.ratelimit",
        "envoy.filters.http.router",
    ]


def test_service_tokens_are_refused_at_the_edge(config: dict[str, Any]) -> None:
    [rbac] = [f for f in _hcm(config)["http_filters"] if f["name"] == "envoy.filters.http.rbac"]
    rules = rbac["typed_config"]["rules"]
    assert rules["action"] == "DENY"
    [policy] = rules["policies"].values()
    [principal] = policy["principals"]
    matcher = principal["metadata"]
    # The verified claims jwt_authn stored, never a header a client could send.
    assert matcher["filter"] == "envoy.filters.http.jwt_authn"
    assert [p["key"] for p in matcher["path"]] == ["jwt_payload", "roles"]
    assert matcher["value"]["list_match"]["one_of"]["string_match"] == {"exact": "service"}


def test_listener_is_tls_only_with_h2_and_http11(config: dict[str, Any], secrets: Secrets) -> None:
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 27443}
    chains = listener["filter_chains"]
    assert len(chains) == 1, "a second (plaintext) chain would serve plain HTTP"
    tls = chains[0]["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["alpn_protocols"] == ["h2", "http/1.1"]
    assert tls["tls_certificates"][0]["certificate_chain"]["filename"] == str(secrets.server_cert)


def test_transcoder_serves_every_mobile_facing_service(
    config: dict[str, Any], rpcs: list[Rpc]
) -> None:
    transcoder = _filter(config, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["proto_descriptor"] == str(DESCRIPTOR_SET)
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["print_options"]["preserve_proto_field_names"] is True
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True
    assert transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True
    exposed = edge_rpcs(rpcs)
    assert exposed, "the descriptor set has no HTTP-annotated RPC"
    assert set(transcoder["services"]) == {r.service for r in exposed}
    assert transcoder["services"] == transcoded_services(rpcs)


def test_every_http_annotated_rpc_has_its_own_route(
    config: dict[str, Any], rpcs: list[Rpc]
) -> None:
    for rpc in edge_rpcs(rpcs):
        route = _first_route(config, rpc.grpc_path)
        assert route is not None, rpc.grpc_path
        assert route["match"] == {"path": rpc.grpc_path}
        action = route["route"]
        assert action["cluster"] == f"svc_{rpc.owner}"
        assert action["timeout"]
        # Retries only where a replay cannot double an effect.
        assert ("retry_policy" in action) == rpc.safe, rpc.grpc_path
        if rpc.safe:
            assert not rpc.mutating


def test_internal_rpcs_are_not_routed(config: dict[str, Any], rpcs: list[Rpc]) -> None:
    internal = [r for r in rpcs if r.internal]
    for rpc in internal:
        assert not rpc.http, f"{rpc.grpc_path} is internal but has an HTTP rule"
        route = _first_route(config, rpc.grpc_path)
        assert route is not None
        assert route["direct_response"] == {"status": 404}, rpc.grpc_path


def test_public_rpcs_are_exempt_from_jwt_and_the_rest_require_it(
    config: dict[str, Any], rpcs: list[Rpc]
) -> None:
    assert any(r.public for r in rpcs), "register/login/refresh should be public"
    for rpc in rpcs:
        rule = _first_jwt_rule(config, rpc.grpc_path)
        if rpc.public and not rpc.internal:
            assert "requires" not in rule, rpc.grpc_path
        else:
            assert rule["requires"] == {"provider_name": "fintech"}, rpc.grpc_path
    assert _first_jwt_rule(config, "/anything/else")["requires"] == {"provider_name": "fintech"}


def test_jwt_provider_matches_conventions(config: dict[str, Any], secrets: Secrets) -> None:
    provider = _filter(config, "envoy.filters.http.jwt_authn")["providers"]["fintech"]
    assert provider["issuer"] == "https://identity.fintech.local"
    assert provider["audiences"] == ["fintech-api"]
    assert provider["local_jwks"]["filename"] == str(secrets.jwks)
    assert provider["forward"] is True
    assert {"header_name": "x-jwt-sub", "claim_name": "sub"} in provider["claim_to_headers"]
    # A wrong audience is an invalid token: 401 like the others, not jwt_authn's 403.
    mapper = _hcm(config)["local_reply_config"]["mappers"][0]
    assert mapper["filter"]["status_code_filter"]["comparison"]["value"]["default_value"] == 403
    assert mapper["status_code"] == 401
    # Clients cannot smuggle an identity header past the edge.
    mutation = _filter(config, "envoy.filters.http.header_mutation")
    removed = {m["remove"] for m in mutation["mutations"]["request_mutations"]}
    assert "x-jwt-sub" in removed


def test_every_local_reply_is_a_google_rpc_status(config: dict[str, Any]) -> None:
    """Envoy's own replies carry the services' error shape: a gRPC code, the
    message, and an ErrorInfo whose reason a client can act on."""
    local = _hcm(config)["local_reply_config"]
    formats = [m["body_format_override"]["json_format"] for m in local["mappers"]]
    formats.append(local["body_format"]["json_format"])
    for body in formats:
        assert set(body) == {"code", "message", "details"}, body
        assert isinstance(body["code"], int) and 0 < body["code"] <= 16, body
        (info,) = body["details"]
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", info["reason"]), info
        assert info["domain"] == "edge.fintech.local"


def test_rate_limits_per_address_per_user_and_tighter_on_credentials(
    config: dict[str, Any], rpcs: list[Rpc]
) -> None:
    rl = _filter(config, "envoy.filters.http.ratelimit")
    assert rl["domain"] == "fintech-edge"
    assert rl["failure_mode_deny"] is False
    credential = {r.grpc_path for r in rpcs if r.public and r.package == "fintech.identity.v1"}
    assert credential, "identity has no public (credential) RPC"
    for rpc in edge_rpcs(rpcs):
        route = _first_route(config, rpc.grpc_path)
        assert route is not None
        actions = [lim["actions"] for lim in route["route"]["rate_limits"]]
        assert [{"remote_address": {}}] in actions
        assert any(a[0].get("metadata", {}).get("descriptor_key") == "user" for a in actions)
        auth = [a for a in actions if "generic_key" in a[0]]
        if rpc.grpc_path in credential:
            key, value = AUTH_DESCRIPTOR
            assert auth == [
                [
                    {"generic_key": {"descriptor_key": key, "descriptor_value": value}},
                    {"remote_address": {}},
                ]
            ]
        else:
            assert auth == []
    limits = yaml.safe_load(render_ratelimit_config("run"))
    by_key = {d["key"]: d for d in limits["descriptors"]}
    auth_limit = by_key["auth"]["descriptors"][0]["rate_limit"]
    assert auth_limit["unit"] == "minute" and auth_limit["requests_per_unit"] <= 20


def test_clusters_are_h2_health_checked_and_bounded(config: dict[str, Any]) -> None:
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert set(clusters) == {f"svc_{s}" for s in SERVICES} | {"ratelimit"}
    ports = Ports(27000)
    for service in SERVICES:
        c = clusters[f"svc_{service}"]
        opts = c["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        assert "http2_protocol_options" in opts["explicit_http_config"]
        assert c["health_checks"][0]["grpc_health_check"] == {"service_name": ""}
        assert c["circuit_breakers"]["thresholds"][0]["max_requests"] > 0
        assert c["outlier_detection"]["consecutive_5xx"] > 0
        endpoint = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        assert endpoint["address"]["socket_address"]["port_value"] == ports[service]
    health = _filter(config, "envoy.filters.http.health_check")
    assert set(health["cluster_min_healthy_percentages"]) == {f"svc_{s}" for s in SERVICES}


def test_access_log_is_json_with_request_id(config: dict[str, Any]) -> None:
    hcm = _hcm(config)
    assert hcm["generate_request_id"] is True
    assert hcm["preserve_external_request_id"] is False
    fmt = hcm["access_log"][0]["typed_config"]["log_format"]["json_format"]
    for key in ("request_id", "method", "path", "status", "duration_ms", "upstream_cluster"):
        assert key in fmt, key


def test_jwks_kid_is_the_rfc7638_thumbprint_and_secrets_are_private(secrets: Secrets) -> None:
    key = serialization.load_pem_private_key(secrets.jwt_signing_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    jwk = json.loads(secrets.jwks.read_text())["keys"][0]
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    assert jwk["kid"] == base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    size = 32
    x = int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="), "big")
    assert x == key.public_key().public_numbers().x and len(jwk["x"]) == 43 == (size * 4 + 2) // 3
    for path in secrets.dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    pii = json.loads(secrets.pii_keys.read_text())
    assert len(base64.b64decode(pii["keys"][pii["active"]])) == 32
    assert len(base64.b64decode(pii["hash_key"])) == 32
    # Generated once: a second call reuses every file.
    before = {p.name: p.read_bytes() for p in secrets.dir.iterdir()}
    ensure_secrets(secrets.dir)
    assert {p.name: p.read_bytes() for p in secrets.dir.iterdir()} == before
