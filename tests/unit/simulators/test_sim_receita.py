"""Receita simulator: CPF situations, CNPJ lookup (BrasilAPI shape), faults, runner."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.brazil.documents import cnpj_check_digits, cpf_check_digits, is_valid_cpf
from simulators.common.app import CONFIG_KEY
from simulators.receita.app import make_app
from simulators.receita.people import FIXED, SITUACOES

REPO_ROOT = Path(__file__).resolve().parents[3]

# Every documented field of BrasilAPI's CNPJ body the clients read.
BRASILAPI_FIELDS = {
    "cnpj", "razao_social", "nome_fantasia", "situacao_cadastral",
    "descricao_situacao_cadastral", "data_situacao_cadastral", "cnae_fiscal",
    "cnae_fiscal_descricao", "cnaes_secundarios", "qsa", "logradouro", "numero",
    "complemento", "bairro", "cep", "uf", "municipio", "codigo_municipio_ibge",
    "data_inicio_atividade", "capital_social", "natureza_juridica", "porte",
}  # fmt: skip


async def _start(app: Any) -> TestClient:
    server = TestServer(app)
    await server.start_server(access_log=None)
    client = TestClient(server)
    await client.start_server()
    return client


@pytest.fixture
async def receita() -> AsyncIterator[TestClient]:
    app = make_app()
    app[CONFIG_KEY].timeout_hang_seconds = 0.5  # the contract's 35 s, shortened for tests
    client = await _start(app)
    try:
        yield client
    finally:
        await client.close()


async def _get(client: TestClient, path: str) -> tuple[int, Any]:
    async with client.get(path) as resp:
        return resp.status, await resp.json()


def _cpf(base: str) -> str:
    return base + cpf_check_digits(base)


def _cnpj(base: str) -> str:
    return base + cnpj_check_digits(base)


@pytest.mark.parametrize(
    ("cpf", "situacao", "nome"),
    [
        ("11144477735", "REGULAR", "ANA BEATRIZ SOUZA LIMA"),
        ("52998224725", "REGULAR", "JOSÉ CARLOS DA SILVA"),
        ("10000000108", "SUSPENSA", "CARLOS EDUARDO SUSPENSO"),
        ("10000000280", "CANCELADA", "MARIA CANCELADA ROCHA"),
        ("10000000361", "TITULAR_FALECIDO", "JOÃO FALECIDO MARTINS"),
        ("10000000442", "PENDENTE_DE_REGULARIZACAO", "LUCIA PENDENTE ALVES"),
        ("10000000523", "NULA", "PEDRO NULO DIAS"),
    ],
)
async def test_fixed_cpf_identities(
    receita: TestClient, cpf: str, situacao: str, nome: str
) -> None:
    status, body = await _get(receita, f"/v1/cpf/{cpf}")
    assert status == 200
    assert body["cpf"] == cpf and body["situacao"] == situacao and body["nome"] == nome
    assert body["data_nascimento"] == FIXED[cpf].data_nascimento.isoformat()
    assert body["descricao_situacao"]
    assert body["consultado_em"].endswith("Z")
    assert (body["ano_obito"] is not None) == (situacao == "TITULAR_FALECIDO")


def test_every_situation_has_a_fixed_identity() -> None:
    assert {p.situacao for p in FIXED.values()} == set(SITUACOES)
    assert all(is_valid_cpf(cpf) for cpf in FIXED)


async def test_cpf_not_found_is_404(receita: TestClient) -> None:
    status, body = await _get(receita, "/v1/cpf/10000000604")
    assert status == 404
    assert body["error"]["code"] == "CPF_NOT_FOUND"


async def test_unknown_cpf_is_generated_regular_and_deterministic(receita: TestClient) -> None:
    cpf = _cpf("300000002")
    first = await _get(receita, f"/v1/cpf/{cpf}")
    formatted = await _get(receita, f"/v1/cpf/{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}")
    other = await _start(make_app())  # a fresh process-equivalent: same data from the CPF alone
    try:
        again = await _get(other, f"/v1/cpf/{cpf}")
    finally:
        await other.close()
    for result in (first, formatted, again):
        assert result[0] == 200
        body = {k: v for k, v in result[1].items() if k != "consultado_em"}
        assert body == {k: v for k, v in first[1].items() if k != "consultado_em"}
    assert first[1]["situacao"] == "REGULAR"
    assert len(first[1]["nome"].split()) == 3
    # Different CPFs get different people.
    _, other_body = await _get(receita, f"/v1/cpf/{_cpf('400000003')}")
    assert (other_body["nome"], other_body["data_nascimento"]) != (
        first[1]["nome"],
        first[1]["data_nascimento"],
    )


@pytest.mark.parametrize("cpf", ["11144477736", "00000000000", "123", "1114447773a", "9" * 40])
async def test_invalid_cpf_is_400(receita: TestClient, cpf: str) -> None:
    status, body = await _get(receita, f"/v1/cpf/{cpf}")
    assert status == 400
    assert body["error"]["code"] == "INVALID_CPF"
    assert "check digits" in body["error"]["message"]


@pytest.mark.parametrize(
    ("cnpj", "code", "descricao", "razao"),
    [
        ("11222333000181", 2, "ATIVA", "EMPRESA EXEMPLO COMERCIO LTDA"),
        ("11444777000161", 8, "BAIXADA", "ANTIGA INDUSTRIA TEXTIL LTDA"),
        ("55666777000181", 3, "SUSPENSA", "TRANSPORTES SUSPENSOS LTDA"),
        ("99888777000100", 4, "INAPTA", "CONSULTORIA INAPTA EIRELI"),
        ("12ABC345000188", 2, "ATIVA", "NOVA ERA TECNOLOGIA S.A."),
    ],
)
async def test_fixed_companies(
    receita: TestClient, cnpj: str, code: int, descricao: str, razao: str
) -> None:
    status, body = await _get(receita, f"/api/cnpj/v1/{cnpj}")
    assert status == 200
    assert BRASILAPI_FIELDS <= set(body)
    assert body["cnpj"] == cnpj and body["razao_social"] == razao
    assert body["situacao_cadastral"] == code
    assert body["descricao_situacao_cadastral"] == descricao
    assert isinstance(body["cnae_fiscal"], int) and body["cnae_fiscal_descricao"]
    assert body["qsa"], "every company has at least one partner"
    for partner in body["qsa"]:
        assert partner["nome_socio"]
        # Partners' CPFs are masked as in the open data: never the full number.
        assert partner["cnpj_cpf_do_socio"].startswith("***")
        assert partner["cnpj_cpf_do_socio"].endswith("**")
    assert len(body["cep"]) == 8 and len(body["uf"]) == 2


async def test_company_partners_are_the_receita_people(receita: TestClient) -> None:
    _, company = await _get(receita, "/api/cnpj/v1/11222333000181")
    names = {p["nome_socio"] for p in company["qsa"]}
    assert names == {"ANA BEATRIZ SOUZA LIMA", "JOSÉ CARLOS DA SILVA"}


async def test_alphanumeric_cnpj_accepted_in_any_case_and_format(receita: TestClient) -> None:
    upper = await _get(receita, "/api/cnpj/v1/12ABC345000188")
    lower = await _get(receita, "/api/cnpj/v1/12abc345000188")
    dotted = await _get(receita, "/api/cnpj/v1/12.ABC.345-000188")
    assert upper == lower == dotted
    assert upper[1]["cnpj"] == "12ABC345000188"


async def test_unknown_cnpj_generated_active_and_deterministic(receita: TestClient) -> None:
    for base in ("123456780001", "AB12CD340001"):
        cnpj = _cnpj(base)
        first = await _get(receita, f"/api/cnpj/v1/{cnpj}")
        again = await _get(receita, f"/api/cnpj/v1/{cnpj}")
        assert first == again
        assert first[0] == 200 and first[1]["cnpj"] == cnpj
        assert first[1]["situacao_cadastral"] == 2
        # Partners are distinct known people who together hold the capital.
        partners = first[1]["qsa"]
        assert partners and all(p["nome_socio"] for p in partners)
        assert len({p["cnpj_cpf_do_socio"] for p in partners}) == len(partners)
        assert sum(p["percentual_capital_social"] for p in partners) == pytest.approx(100, abs=0.02)


async def test_cnpj_not_found_is_404(receita: TestClient) -> None:
    status, body = await _get(receita, "/api/cnpj/v1/33400689000109")
    assert status == 404
    assert body == {
        "name": "NotFoundError",
        "message": "CNPJ 33400689000109 não encontrado.",
        "type": "not_found",
    }


@pytest.mark.parametrize(
    "cnpj",
    ["11222333000182", "12ABC345000189", "00000000000000", "123", "12ABC3450001AB", "9" * 30],
)
async def test_invalid_cnpj_is_400(receita: TestClient, cnpj: str) -> None:
    status, body = await _get(receita, f"/api/cnpj/v1/{cnpj}")
    assert status == 400
    assert body["name"] == "BadRequestError" and body["type"] == "bad_request"
    assert "inválido" in body["message"]


async def test_faults_use_each_api_error_shape(receita: TestClient) -> None:
    async with receita.post("/__admin/faults", json={"outage": True}) as resp:
        assert resp.status == 200
    status, cpf_body = await _get(receita, "/v1/cpf/11144477735")
    assert status == 503 and cpf_body["error"]["code"] == "SERVICE_UNAVAILABLE"
    status, cnpj_body = await _get(receita, "/api/cnpj/v1/11222333000181")
    assert status == 503 and set(cnpj_body) == {"name", "message", "type"}
    assert (await _get(receita, "/__health"))[0] == 200  # control paths are never faulted
    async with receita.post("/__admin/reset") as resp:
        assert resp.status == 200
    assert (await _get(receita, "/v1/cpf/11144477735"))[0] == 200


async def test_seeded_error_rate_is_reproducible(receita: TestClient) -> None:
    async def run() -> list[int]:
        async with receita.post("/__admin/faults", json={"error_rate": 0.5, "seed": 7}) as resp:
            assert resp.status == 200
        return [(await _get(receita, "/v1/cpf/11144477735"))[0] for _ in range(12)]

    first = await run()
    assert first == await run()
    assert {200} < set(first) <= {200, 500, 503}


async def test_rate_limit_and_timeout(receita: TestClient) -> None:
    async with receita.post("/__admin/faults", json={"rate_limit_rate": 1.0}) as resp:
        assert resp.status == 200
    async with receita.get("/api/cnpj/v1/11222333000181") as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    async with receita.post("/__admin/faults", json={"timeout_rate": 1.0}) as resp:
        assert resp.status == 200
    status, _ = await _get(receita, "/v1/cpf/11144477735")
    assert status == 504


async def test_access_log_masks_cpf(receita: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="simulators"):
        await _get(receita, "/v1/cpf/11144477735")
    assert "11144477735" not in caplog.text
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "simulators"]
    assert lines[-1]["sim"] == "receita" and lines[-1]["path"] == "/v1/cpf/***.444.777-**"


def test_process_runner() -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.receita", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        event = json.loads(proc.stdout.readline())
        assert event["event"] == "listening" and event["sim"] == "receita"
        port = event["address"][1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__health", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
