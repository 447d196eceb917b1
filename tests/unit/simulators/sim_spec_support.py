"""Open Finance spec conformance helpers for the simulator tests.

The official specs live outside the repository, in ../shared/specs (copied
unchanged from OpenBanking-Brasil/openapi); every response the tests see is
validated against the schema the spec declares for that path, method and status.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[3]
SPEC_DIR = REPO_ROOT / ".." / "shared" / "specs" / "open-finance-brasil"
SPECS = {
    "consents": ("consents-3.3.1.yml", "/open-banking/consents/v3"),
    "accounts": ("accounts-2.4.2.yml", "/open-banking/accounts/v2"),
}


@lru_cache(maxsize=1)
def _registry() -> tuple[Registry, dict[str, dict[str, Any]]]:
    if not SPEC_DIR.is_dir():
        pytest.fail(f"Open Finance specs not found at {SPEC_DIR.resolve()} (expected ../shared)")
    registry: Registry = Registry()
    docs: dict[str, dict[str, Any]] = {}
    for api, (filename, _) in SPECS.items():
        path = SPEC_DIR / filename
        if not path.is_file():
            pytest.fail(f"missing spec file {path.resolve()}")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        docs[api] = doc
        registry = registry.with_resource(
            f"urn:spec:{api}", Resource.from_contents(doc, default_specification=DRAFT202012)
        )
    return registry, docs


def _deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str]


def check(api: str, template: str, method: str, response: Response) -> None:
    """Assert `response` matches the spec for `template` (path below the API base)."""
    registry, docs = _registry()
    doc = docs[api]
    operation = doc["paths"][template][method.lower()]
    responses = operation["responses"]
    declared = responses.get(str(response.status))
    assert declared is not None, f"{method} {template}: status {response.status} not in spec"
    declared = _deref(doc, declared)
    # Every declared response header the spec marks required must be present.
    for name, header in (declared.get("headers") or {}).items():
        if header.get("required"):
            assert name.lower() in {h.lower() for h in response.headers}, f"missing header {name}"
    content = declared.get("content")
    if not content:
        assert response.body in (None, b"", ""), "spec declares no body"
        return
    schema_node = next(iter(content.values()))["schema"]
    pointer = schema_node.get("$ref")
    schema = {"$ref": f"urn:spec:{api}{pointer}"} if pointer else schema_node
    validator = Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(response.body), key=lambda e: list(e.path))
    assert not errors, f"{method} {template} {response.status}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )
