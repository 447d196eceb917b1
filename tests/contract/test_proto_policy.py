"""Contract rules every RPC obeys, read from gen/api.binpb (what Envoy loads)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from google.protobuf import descriptor

from tools import openapi

ROOT = Path(__file__).resolve().parents[2]
OWN_PREFIX = "fintech."

# (verb, concrete URL) the mobile app relies on (issues 2-7).
MOBILE_ROUTES = [
    ("post", "/v1/users"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/users/me"),
    ("patch", "/v1/users/me"),
    ("get", "/v1/accounts"),
    ("get", "/v1/accounts/0b6a1f4e/entries"),
    ("post", "/v1/payments"),
    ("get", "/v1/payments/0b6a1f4e"),
    ("get", "/v1/payments"),
    ("post", "/v1/payments/0b6a1f4e:cancel"),
    ("post", "/v1/pix/charges"),
    ("get", "/v1/users/me/bankAccount"),
    ("post", "/v1/kyc/documents"),
    ("get", "/v1/kyc/status"),
    ("post", "/v1/kyc/submissions"),
    ("post", "/v1/loans:simulate"),
    ("post", "/v1/loans"),
    ("get", "/v1/loans/0b6a1f4e"),
    ("post", "/v1/open-finance/consents"),
    ("post", "/v1/open-finance/consents/0b6a1f4e:revoke"),
    ("post", "/v1/open-finance/imports"),
    ("post", "/v1/webhooks/psp"),
]

# Exactly these need no access token; anything else public is a leak.
PUBLIC_METHODS = {
    "fintech.identity.v1.IdentityService.CreateUser",
    "fintech.identity.v1.IdentityService.Login",
    "fintech.identity.v1.IdentityService.RefreshToken",
    "fintech.payments.v1.PaymentsService.HandlePspWebhook",
}

SERVICES = {
    "fintech.identity.v1.IdentityService",
    "fintech.kyc.v1.KycService",
    "fintech.risk.v1.RiskService",
    "fintech.risk.v1.OpenFinanceService",
    "fintech.loans.v1.LoansService",
    "fintech.ledger.v1.LedgerService",
    "fintech.payments.v1.PaymentsService",
}


@cache
def api() -> openapi.Api:
    return openapi.load((ROOT / "gen" / "api.binpb").read_bytes())


def methods() -> Iterator[descriptor.MethodDescriptor]:
    for service in api().services():
        if service.full_name.startswith(OWN_PREFIX):
            yield from service.methods


def template_regex(template: str) -> re.Pattern[str]:
    """HttpRule template → regex over concrete URL paths."""
    out, pos = [], 0
    for match in re.finditer(r"\{([^}=]+)(?:=([^}]*))?\}", template):
        out.append(re.escape(template[pos : match.start()]))
        sub = match.group(2) or "*"
        out.append("/".join("[^/:]+" if seg == "*" else re.escape(seg) for seg in sub.split("/")))
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def routes() -> list[tuple[str, re.Pattern[str], str]]:
    return [
        (b.verb, template_regex(b.template), m.full_name)
        for m in methods()
        for b in openapi.http_bindings(api(), m)
    ]


def test_all_services_are_in_the_descriptor_set() -> None:
    names = {s.full_name for s in api().services()}
    assert names >= SERVICES


def test_every_rpc_has_a_method_policy() -> None:
    missing = [
        m.full_name for m in methods() if not api().method_options(m).HasExtension(api().policy_ext)
    ]
    assert missing == []


def test_http_rules_match_internal_flag() -> None:
    problems = []
    for m in methods():
        policy = openapi.method_policy(api(), m)
        bindings = openapi.http_bindings(api(), m)
        if policy.internal:
            if bindings:
                problems.append(f"{m.full_name}: internal but routed")
            if policy.public:
                problems.append(f"{m.full_name}: internal and public")
        elif len(bindings) != 1:
            problems.append(f"{m.full_name}: {len(bindings)} http rules, want 1")
        elif not bindings[0].template.startswith("/v1/"):
            problems.append(f"{m.full_name}: {bindings[0].template} not under /v1/")
    assert problems == []


def test_reads_are_not_mutating() -> None:
    offenders = [
        m.full_name
        for m in methods()
        if m.name.startswith(("Get", "List")) and openapi.method_policy(api(), m).mutating
    ]
    assert offenders == []
    # And the GET verb never goes with a mutating method.
    for m in methods():
        for b in openapi.http_bindings(api(), m):
            if b.verb == "get":
                assert not openapi.method_policy(api(), m).mutating, m.full_name


def test_public_methods_are_exactly_the_expected_ones() -> None:
    public = {m.full_name for m in methods() if openapi.method_policy(api(), m).public}
    assert public == PUBLIC_METHODS


def test_backoffice_and_internal_surfaces_exist() -> None:
    roles = {m.full_name: set(openapi.method_policy(api(), m).roles) for m in methods()}
    internal = {m.full_name for m in methods() if openapi.method_policy(api(), m).internal}
    assert "backoffice" in roles["fintech.kyc.v1.KycService.ApproveReviewCase"]
    assert {
        "fintech.ledger.v1.LedgerService.CreateTransfers",
        "fintech.risk.v1.RiskService.Score",
        "fintech.identity.v1.IdentityService.GetJwks",
    } <= internal


@pytest.mark.parametrize(("verb", "url"), MOBILE_ROUTES)
def test_mobile_route_exists_once(verb: str, url: str) -> None:
    matches = [name for v, rx, name in routes() if v == verb and rx.fullmatch(url)]
    assert len(matches) == 1, f"{verb.upper()} {url}: {matches}"


def test_no_two_rules_claim_the_same_url() -> None:
    # A sample URL of each rule must resolve to that rule only, or Envoy's
    # transcoder would route one of them to the wrong method.
    all_routes = routes()
    for m in methods():
        for b in openapi.http_bindings(api(), m):
            sample = re.sub(
                r"\{([^}=]+)(?:=([^}]*))?\}",
                lambda mt: (mt.group(2) or "*").replace("*", "id1"),
                b.template,
            )
            owners = [n for v, rx, n in all_routes if v == b.verb and rx.fullmatch(sample)]
            assert owners == [m.full_name], f"{b.verb.upper()} {sample}: {owners}"


def _enums() -> Iterator[descriptor.EnumDescriptor]:
    def nested(msg: descriptor.Descriptor) -> Iterator[descriptor.EnumDescriptor]:
        yield from msg.enum_types
        for sub in msg.nested_types:
            yield from nested(sub)

    for file in api().files:
        if not file.package.startswith(OWN_PREFIX):
            continue
        fd = api().pool.FindFileByName(file.name)
        yield from fd.enum_types_by_name.values()
        for msg in fd.message_types_by_name.values():
            yield from nested(msg)


def test_enum_zero_values_are_unspecified() -> None:
    enums = list(_enums())
    assert len(enums) > 10
    bad = [e.full_name for e in enums if not e.values_by_number[0].name.endswith("_UNSPECIFIED")]
    assert bad == []


def test_every_list_paginates() -> None:
    F = descriptor.FieldDescriptor
    lists = [m for m in methods() if m.name.startswith("List")]
    assert len(lists) >= 10
    for m in lists:
        fields = m.input_type.fields_by_name
        assert fields["page_size"].type == F.TYPE_INT32, m.full_name
        assert fields["page_token"].type == F.TYPE_STRING, m.full_name
        assert m.output_type.fields_by_name["next_page_token"].type == F.TYPE_STRING


def test_money_is_always_the_shared_message() -> None:
    # Amount-like fields must be fintech.type.v1.Money, never a float/int.
    F = descriptor.FieldDescriptor
    money_words = ("amount", "balance", "principal", "fee", "limit")
    bad = []
    for file in api().files:
        if not file.package.startswith(OWN_PREFIX):
            continue
        fd = api().pool.FindFileByName(file.name)
        stack = list(fd.message_types_by_name.values())
        while stack:
            msg = stack.pop()
            stack.extend(msg.nested_types)
            for fld in msg.fields:
                if fld.name.endswith("_count"):
                    continue  # counters of amounts, not amounts
                if any(w in fld.name for w in money_words) and fld.type in (
                    F.TYPE_DOUBLE,
                    F.TYPE_FLOAT,
                    F.TYPE_INT64,
                    F.TYPE_INT32,
                    F.TYPE_STRING,
                ):
                    bad.append(f"{msg.full_name}.{fld.name}")
    assert bad == []


def test_generated_module_exposes_the_same_policy() -> None:
    # The platform reads policies from the default pool via the _pb2 modules.
    from fintech.api.v1 import options_pb2
    from fintech.identity.v1 import identity_pb2

    service = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"]
    login = service.methods_by_name["Login"].GetOptions().Extensions[options_pb2.method_policy]
    create = (
        service.methods_by_name["CreateUser"].GetOptions().Extensions[options_pb2.method_policy]
    )
    assert (login.public, login.mutating) == (True, False)
    assert (create.public, create.mutating) == (True, True)
