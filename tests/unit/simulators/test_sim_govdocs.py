"""Gov document check simulator: CNH rule, OAuth2 flow, matches, bad input, faults."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators.common.app import CONFIG_KEY
from simulators.govdocs.app import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OAuthState,
    make_app,
    name_similarity,
    normalize_name,
)
from simulators.govdocs.cnh import cnh_check_digits, normalize_cnh
from simulators.receita.people import FIXED, person_for

PF = "/v1/validate/pf"


async def _start(app: Any) -> TestClient:
    server = TestServer(app)
    await server.start_server(access_log=None)
    client = TestClient(server)
    await client.start_server()
    return client


@pytest.fixture
async def govdocs() -> AsyncIterator[TestClient]:
    app = make_app()
    app[CONFIG_KEY].timeout_hang_seconds = 0.5
    client = await _start(app)
    try:
        yield client
    finally:
        await client.close()


def _basic(client_id: str = DEFAULT_CLIENT_ID, secret: str = DEFAULT_CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def _token(client: TestClient) -> str:
    async with client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic()},
    ) as resp:
        assert resp.status == 200
        return str((await resp.json())["access_token"])


async def _check(client: TestClient, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with client.post(PF, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


# --- CNH check digits (DENATRAN rule) ---------------------------------------


def test_cnh_worked_examples() -> None:
    # 026503064: d1 = 116 mod 11 = 6; d2 = 144 mod 11 = 1.
    assert cnh_check_digits("026503064") == "61"
    # 123456789: d1 = 165 mod 11 = 0; d2 = 285 mod 11 = 10 → 0.
    assert cnh_check_digits("123456789") == "00"


@pytest.mark.parametrize(
    ("base", "digits"),
    [
        # s1 = 3*2 + 4*1 = 10 → d1 = 0, discount 2; s2 = 3*8 + 4*9 = 60 ≡ 5 → 5 - 2 = 3.
        ("000000034", "03"),
        # s1 = 9*2 + 3 = 21 ≡ 10 → d1 = 0; s2 = 9*8 + 3*9 = 99 ≡ 0 → 0 - 2 + 11 = 9.
        ("000000093", "09"),
        # s1 = 1*3 + 8*2 + 2 = 21 ≡ 10 → d1 = 0; s2 = 7 + 64 + 18 = 89 ≡ 1 → 1 - 2 + 11 = 10 → 0.
        ("000000182", "00"),
    ],
)
def test_cnh_first_digit_ten_discounts_the_second(base: str, digits: str) -> None:
    assert cnh_check_digits(base) == digits


def test_normalize_cnh() -> None:
    # Unicode digits pass str.isdigit(); they must not pass as a CNH.
    fullwidth_cnh = "".join(chr(0xFF10 + int(c)) for c in "02650306461")
    assert normalize_cnh("02650306461") == "02650306461"
    assert normalize_cnh(" 026.503.064-61 ") == "02650306461"
    for bad in ("02650306462", "02650306471", "0265030646", "026503064610", "11111111111",
                "0265030646a", fullwidth_cnh):  # fmt: skip
        assert normalize_cnh(bad) is None, bad


def test_every_record_has_a_valid_cnh() -> None:
    for cpf in [*FIXED, "30000000205", "11144477735"]:
        person = person_for(cpf)
        assert person is not None and normalize_cnh(person.cnh) == person.cnh


# --- names -------------------------------------------------------------------


def test_name_normalization_and_similarity() -> None:
    assert normalize_name("  José  da   Silva ") == "JOSE DA SILVA"
    assert name_similarity("jose carlos da silva", "JOSÉ CARLOS DA SILVA") == 1.0
    reordered = name_similarity("SILVA JOSE CARLOS DA", "JOSÉ CARLOS DA SILVA")
    typo = name_similarity("JOSE CARLOS DA SILVAA", "JOSÉ CARLOS DA SILVA")
    other = name_similarity("MARIA APARECIDA FERNANDES", "JOSÉ CARLOS DA SILVA")
    assert 0.9 < reordered < 1.0 and 0.9 < typo < 1.0
    assert other < 0.6
    assert name_similarity("", "ANA") == 0.0


# --- OAuth2 ------------------------------------------------------------------


async def test_token_with_basic_auth_and_with_form_fields(govdocs: TestClient) -> None:
    async with govdocs.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic()},
    ) as resp:
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert len(body["access_token"]) >= 32
    async with govdocs.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["access_token"] != body["access_token"]


@pytest.mark.parametrize(
    ("data", "headers", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, {"Authorization": _basic(secret="wrong")}, 401,
         "invalid_client"),
        ({"grant_type": "client_credentials"}, {"Authorization": _basic(client_id="x")}, 401,
         "invalid_client"),
        ({"grant_type": "client_credentials"}, {}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, {"Authorization": "Basic !!notbase64"}, 401,
         "invalid_client"),
        ({"grant_type": "password"}, {"Authorization": _basic()}, 400, "unsupported_grant_type"),
        ({}, {"Authorization": _basic()}, 400, "invalid_request"),
    ],
)  # fmt: skip
async def test_token_errors(
    govdocs: TestClient, data: dict, headers: dict, status: int, error: str
) -> None:
    async with govdocs.post("/oauth2/token", data=data, headers=headers) as resp:
        assert resp.status == status
        body = await resp.json()
        assert body["error"] == error and body["error_description"]
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_token_requires_form_encoding(govdocs: TestClient) -> None:
    async with govdocs.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": _basic()},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"


async def test_credentials_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINTECH_GOVDOCS_CLIENT_ID", "kyc-svc")
    monkeypatch.setenv("FINTECH_GOVDOCS_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("FINTECH_GOVDOCS_TOKEN_TTL_SECONDS", "60")
    client = await _start(make_app())
    try:
        async with client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": _basic()},
        ) as resp:
            assert resp.status == 401  # the defaults no longer work
        async with client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": _basic("kyc-svc", "s3cret")},
        ) as resp:
            assert resp.status == 200 and (await resp.json())["expires_in"] == 60
    finally:
        await client.close()


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
async def test_check_requires_a_valid_bearer(govdocs: TestClient, token: str | None) -> None:
    status, body = await _check(govdocs, {"cpf": "11144477735", "nome": "X"}, token)
    assert status == 401 and body["error"]["code"] == "INVALID_TOKEN"


async def test_token_expires_with_the_simulator_clock(govdocs: TestClient) -> None:
    token = await _token(govdocs)
    body = {"cpf": "11144477735", "nome": "ANA BEATRIZ SOUZA LIMA"}
    assert (await _check(govdocs, body, token))[0] == 200
    async with govdocs.post("/__admin/clock", json={"advance_seconds": 3599}) as resp:
        assert resp.status == 200
    assert (await _check(govdocs, body, token))[0] == 200
    async with govdocs.post("/__admin/clock", json={"advance_seconds": 1}) as resp:
        assert resp.status == 200
    status, error = await _check(govdocs, body, token)
    assert status == 401 and error["error"]["message"] == "token expired"
    assert (await _check(govdocs, body, await _token(govdocs)))[0] == 200


async def test_reset_drops_tokens(govdocs: TestClient) -> None:
    token = await _token(govdocs)
    async with govdocs.post("/__admin/reset") as resp:
        assert resp.status == 200
    assert (await _check(govdocs, {"cpf": "11144477735", "nome": "A"}, token))[0] == 401


def test_token_store_is_bounded() -> None:
    from datetime import UTC, datetime, timedelta

    state = OAuthState("id", "secret", 60, max_tokens=3)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expired = state.issue(now)
    live = [state.issue(now + timedelta(seconds=120)) for _ in range(2)]
    # Full: the expired token goes first, and the live ones survive.
    newest = state.issue(now + timedelta(seconds=120))
    assert expired not in state.tokens and all(t in state.tokens for t in live)
    # Full of live tokens: the oldest is forgotten.
    state.issue(now + timedelta(seconds=120))
    assert len(state.tokens) == 3
    assert live[0] not in state.tokens and newest in state.tokens


# --- validation results ------------------------------------------------------


@pytest.mark.parametrize("cpf", sorted(FIXED))
async def test_fixed_identities_match_exactly(govdocs: TestClient, cpf: str) -> None:
    person = FIXED[cpf]
    token = await _token(govdocs)
    for tipo, numero in (("CNH", person.cnh), ("RG", person.rg)):
        status, body = await _check(
            govdocs,
            {
                "cpf": cpf,
                "nome": person.nome,
                "data_nascimento": person.data_nascimento.isoformat(),
                "documento": {"tipo": tipo, "numero": numero},
            },
            token,
        )
        assert status == 200
        assert body == {
            "cpf": cpf,
            "cpf_disponivel": True,
            "situacao_cpf": person.situacao,
            "nome": True,
            "nome_similaridade": 1.0,
            "data_nascimento": True,
            "documento": {"tipo": tipo, "numero": True},
        }


async def test_mismatches_are_reported_per_field(govdocs: TestClient) -> None:
    token = await _token(govdocs)
    status, body = await _check(
        govdocs,
        {
            "cpf": "529.982.247-25",
            "nome": "Jose Carlos Silva",
            "data_nascimento": "1979-11-03",
            "documento": {"tipo": "CNH", "numero": "02650306461"},  # valid, someone else's
        },
        token,
    )
    assert status == 200
    assert body["cpf"] == "52998224725"
    assert body["nome"] is False and 0.85 < body["nome_similaridade"] < 1.0
    assert body["data_nascimento"] is False
    assert body["documento"] == {"tipo": "CNH", "numero": False}


async def test_only_sent_fields_are_reported(govdocs: TestClient) -> None:
    token = await _token(govdocs)
    status, body = await _check(
        govdocs, {"cpf": "11144477735", "data_nascimento": "1988-03-14"}, token
    )
    assert status == 200
    assert body == {
        "cpf": "11144477735",
        "cpf_disponivel": True,
        "situacao_cpf": "REGULAR",
        "data_nascimento": True,
    }


async def test_generated_record_is_deterministic_and_agrees_with_receita(
    govdocs: TestClient,
) -> None:
    cpf = "30000000205"
    person = person_for(cpf)
    assert person is not None
    token = await _token(govdocs)
    request = {
        "cpf": cpf,
        "nome": person.nome,
        "data_nascimento": person.data_nascimento.isoformat(),
        "documento": {"tipo": "CNH", "numero": person.cnh},
    }
    first = await _check(govdocs, request, token)
    assert first == await _check(govdocs, request, token)
    assert first[0] == 200
    assert first[1]["nome"] and first[1]["data_nascimento"] and first[1]["documento"]["numero"]

    from simulators.receita.app import make_app as make_receita

    receita = await _start(make_receita())
    try:
        async with receita.get(f"/v1/cpf/{cpf}") as resp:
            record = await resp.json()
    finally:
        await receita.close()
    assert record["nome"] == person.nome
    assert record["data_nascimento"] == person.data_nascimento.isoformat()


async def test_unknown_cpf_is_404(govdocs: TestClient) -> None:
    status, body = await _check(govdocs, {"cpf": "10000000604", "nome": "X"}, await _token(govdocs))
    assert status == 404 and body["error"]["code"] == "CPF_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"nome": "A"}, "INVALID_CPF", "cpf"),
        ({"cpf": "11144477736", "nome": "A"}, "INVALID_CPF", "cpf"),
        ({"cpf": 11144477735, "nome": "A"}, "INVALID_CPF", "cpf"),
        ({"cpf": "11144477735"}, "NOTHING_TO_VALIDATE", None),
        ({"cpf": "11144477735", "nome": ""}, "INVALID_NAME", "nome"),
        ({"cpf": "11144477735", "nome": "A" * 201}, "INVALID_NAME", "nome"),
        ({"cpf": "11144477735", "data_nascimento": "14/03/1988"}, "INVALID_DATE",
         "data_nascimento"),
        ({"cpf": "11144477735", "data_nascimento": "1988-02-30"}, "INVALID_DATE",
         "data_nascimento"),
        ({"cpf": "11144477735", "documento": {"tipo": "CPF", "numero": "1"}},
         "INVALID_DOCUMENT", "documento.tipo"),
        ({"cpf": "11144477735", "documento": {"tipo": "CNH"}}, "INVALID_DOCUMENT", "documento"),
        ({"cpf": "11144477735", "documento": {"tipo": "CNH", "numero": "02650306462"}},
         "INVALID_CNH", "documento.numero"),
        ({"cpf": "11144477735", "documento": {"tipo": "CNH", "numero": "123"}},
         "INVALID_CNH", "documento.numero"),
        ({"cpf": "11144477735", "documento": {"tipo": "RG", "numero": "12"}},
         "INVALID_RG", "documento.numero"),
        ({"cpf": "11144477735", "nome": "A", "extra": 1}, "INVALID_REQUEST", None),
        ([1, 2], "INVALID_REQUEST", None),
    ],
)  # fmt: skip
async def test_bad_input_is_400_with_a_clear_body(
    govdocs: TestClient, body: Any, code: str, field: str | None
) -> None:
    status, error = await _check(govdocs, body, await _token(govdocs))
    assert status == 400
    assert error["error"]["code"] == code and error["error"]["message"]
    assert error["error"].get("field") == field


async def test_malformed_json_is_400(govdocs: TestClient) -> None:
    token = await _token(govdocs)
    async with govdocs.post(
        PF, data=b"{not json", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "INVALID_JSON"


# --- faults ------------------------------------------------------------------


async def test_outage_hits_token_and_check_in_their_own_shapes(govdocs: TestClient) -> None:
    token = await _token(govdocs)
    async with govdocs.post("/__admin/faults", json={"outage": True}) as resp:
        assert resp.status == 200
    async with govdocs.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic()},
    ) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"] == "temporarily_unavailable"
    status, body = await _check(govdocs, {"cpf": "11144477735", "nome": "A"}, token)
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    async with govdocs.get("/__health") as resp:
        assert resp.status == 200
    async with govdocs.post("/__admin/faults", json={}) as resp:
        assert resp.status == 200
    # The outage did not forget the token.
    assert (await _check(govdocs, {"cpf": "11144477735", "nome": "A"}, token))[0] == 200


async def test_seeded_faults_are_reproducible(govdocs: TestClient) -> None:
    token = await _token(govdocs)

    async def run() -> list[int]:
        async with govdocs.post(
            "/__admin/faults", json={"error_rate": 0.4, "rate_limit_rate": 0.2, "seed": 3}
        ) as resp:
            assert resp.status == 200
        return [
            (await _check(govdocs, {"cpf": "11144477735", "nome": "A"}, token))[0]
            for _ in range(15)
        ]

    first = await run()
    assert first == await run()
    assert 200 in first and 429 in first and ({500, 503} & set(first))


async def test_latency_is_applied(govdocs: TestClient) -> None:
    import time

    token = await _token(govdocs)
    async with govdocs.post("/__admin/faults", json={"latency_ms": 150}) as resp:
        assert resp.status == 200
    started = time.perf_counter()
    assert (await _check(govdocs, {"cpf": "11144477735", "nome": "A"}, token))[0] == 200
    assert time.perf_counter() - started >= 0.15
