"""gen/openapi.yaml matches the HTTP rules and policies in gen/api.binpb."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tools import openapi

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


@cache
def api() -> openapi.Api:
    return openapi.load((ROOT / "gen" / "api.binpb").read_bytes())


@cache
def document() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "gen" / "openapi.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def rules() -> list[tuple[str, str, str, Any]]:
    """(verb, template, full method name, policy) of every HttpRule."""
    out = []
    for service in api().services():
        for method in service.methods:
            for b in openapi.http_bindings(api(), method):
                out.append(
                    (
                        b.verb,
                        b.template,
                        f"/{service.full_name}/{method.name}",
                        openapi.method_policy(api(), method),
                    )
                )
    return out


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (verb, path, op) for path, ops in document()["paths"].items() for verb, op in ops.items()
    ]


def sample_url(template: str) -> str:
    """A concrete URL the rule accepts (each wildcard filled with an id)."""
    return VARIABLE.sub(lambda m: (m.group(2) or "*").replace("*", "id7"), template)


def path_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/:]+" if p.startswith("{") else re.escape(p) for p in parts))


def test_every_http_rule_is_an_operation_with_its_verb_and_path() -> None:
    assert len(rules()) > 40
    for verb, template, grpc_method, _ in rules():
        url = sample_url(template)
        hits = [
            (v, p, op) for v, p, op in operations() if v == verb and path_regex(p).fullmatch(url)
        ]
        assert len(hits) == 1, f"{verb.upper()} {template}: {[(v, p) for v, p, _ in hits]}"
        _, path, op = hits[0]
        assert op["x-grpc-method"] == grpc_method
        service, method = grpc_method.strip("/").split("/")
        assert op["operationId"] == f"{service.rsplit('.', 1)[1]}.{method}"
        # Literal segments survive; only wildcards become parameters.
        literals = [s for s in re.split(r"\{[^}]+\}|/", path) if s]
        for literal in literals:
            assert literal in template, (literal, template)


def test_every_operation_maps_back_to_an_rpc() -> None:
    known = {(verb, grpc) for verb, _, grpc, _ in rules()}
    for verb, path, op in operations():
        assert (verb, op["x-grpc-method"]) in known, f"{verb} {path}"
    assert len(operations()) == len(rules())


def test_path_parameters_are_declared_with_a_segment_pattern() -> None:
    for verb, path, op in operations():
        names = re.findall(r"\{([^}]+)\}", path)
        params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "path"}
        assert sorted(params) == sorted(names), f"{verb} {path}"
        for p in params.values():
            assert p["required"] is True
            assert p["schema"]["pattern"] == "^[^/]+$"


def test_security_follows_public_flag() -> None:
    assert document()["security"] == [{"bearerAuth": []}]
    by_method = {grpc: policy for _, _, grpc, policy in rules()}
    for verb, path, op in operations():
        policy = by_method[op["x-grpc-method"]]
        if policy.public:
            assert op.get("security") == [], f"{verb} {path} is public"
        else:
            assert "security" not in op, f"{verb} {path} must inherit bearer auth"


def test_idempotency_key_on_mutating_operations_only() -> None:
    header = document()["components"]["parameters"]["IdempotencyKey"]
    assert (header["name"], header["in"], header["required"]) == ("Idempotency-Key", "header", True)
    ref = {"$ref": "#/components/parameters/IdempotencyKey"}
    by_method = {grpc: policy for _, _, grpc, policy in rules()}
    mutating_seen = 0
    for verb, path, op in operations():
        has_key = ref in op.get("parameters", [])
        assert has_key == by_method[op["x-grpc-method"]].mutating, f"{verb} {path}"
        mutating_seen += has_key
    assert mutating_seen > 10


def test_json_mapping_of_schemas() -> None:
    schemas = document()["components"]["schemas"]
    money = schemas["fintech.type.v1.Money"]["properties"]
    assert money["minor_units"] == {**money["minor_units"], "type": "string", "format": "int64"}
    user = schemas["fintech.identity.v1.User"]
    assert user["properties"]["create_time"]["type"] == "string"
    assert user["properties"]["create_time"]["format"] == "date-time"
    assert user["properties"]["cpf"]["writeOnly"] is True
    assert user["properties"]["cpf_masked"]["readOnly"] is True
    kyc = schemas["fintech.identity.v1.KycStatus"]
    assert kyc["type"] == "string"
    assert kyc["enum"][0] == "KYC_STATUS_UNSPECIFIED"
    # snake_case proto names, as Envoy prints them.
    assert "phone_number" in user["properties"]


def test_query_body_and_errors() -> None:
    paths = document()["paths"]
    list_entries = paths["/v1/accounts/{account}/entries"]["get"]
    names = {p.get("name") for p in list_entries["parameters"]}
    assert {"account", "page_size", "page_token", "start_time"} <= names
    update = paths["/v1/users/{user}"]["patch"]
    assert any(p.get("name") == "update_mask" and p["in"] == "query" for p in update["parameters"])
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/fintech.identity.v1.User"
    }
    # body "*" with a path variable: the body schema omits the path field.
    confirm = paths["/v1/users/{user}/mfa:confirm"]["post"]
    body_ref = confirm["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document()["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"code"}
    status = {"$ref": "#/components/schemas/google.rpc.Status"}
    for verb, path, op in operations():
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == status
        assert "200" in op["responses"], f"{verb} {path}"


def test_rendering_is_deterministic() -> None:
    binpb = (ROOT / "gen" / "api.binpb").read_bytes()
    assert openapi.render(binpb) == openapi.render(binpb)
    assert openapi.render(binpb) == (ROOT / "gen" / "openapi.yaml").read_text(encoding="utf-8")
