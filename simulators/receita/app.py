"""`GET /v1/cpf/{cpf}` and `GET /api/cnpj/v1/{cnpj}` (docs/SIMULATORS.md, "Receita")."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from services.brazil.documents import cpf_check_digits, normalize_cnpj, normalize_cpf
from simulators.common import CLOCK_KEY, SimulatorConfig, build_app
from simulators.receita.people import SURNAMES, person_for, rng_for

# Longest formatted inputs ("000.000.000-00", "00.000.000/0000-00"); longer paths
# are rejected before any parsing.
MAX_CPF_PATH = 14
MAX_CNPJ_PATH = 18
CNPJ_PREFIX = "/api/cnpj/"

SITUACAO_DESCRICAO = {
    "REGULAR": "Regular",
    "SUSPENSA": "Suspensa",
    "CANCELADA": "Cancelada",
    "TITULAR_FALECIDO": "Titular Falecido",
    "PENDENTE_DE_REGULARIZACAO": "Pendente de Regularização",
    "NULA": "Nula",
}
# BrasilAPI / Receita open-data codes.
SITUACAO_CADASTRAL = {2: "ATIVA", 3: "SUSPENSA", 4: "INAPTA", 8: "BAIXADA"}
# situacao_cadastral -> (motivo code, description) shown with it.
MOTIVO = {
    2: (0, ""),
    3: (15, "INEXISTENCIA DE FATO"),
    4: (63, "OMISSAO DE DECLARACOES"),
    8: (1, "EXTINCAO POR ENCERRAMENTO LIQUIDACAO VOLUNTARIA"),
}
CNAES = (
    (6201501, "Desenvolvimento de programas de computador sob encomenda"),
    (
        4712100,
        "Comércio varejista de mercadorias em geral, com predominância de produtos alimentícios",
    ),
    (5611201, "Restaurantes e similares"),
    (4781400, "Comércio varejista de artigos do vestuário e acessórios"),
    (
        7020400,
        "Atividades de consultoria em gestão empresarial, exceto consultoria técnica específica",
    ),
    (4930202, "Transporte rodoviário de carga, exceto produtos perigosos, intermunicipal"),
)
CITIES = (
    ("SAO PAULO", "SP", 7107, 3550308, "01310100", "PAULISTA"),
    ("RIO DE JANEIRO", "RJ", 6001, 3304557, "20040002", "RIO BRANCO"),
    ("BELO HORIZONTE", "MG", 4123, 3106200, "30130010", "AFONSO PENA"),
    ("CURITIBA", "PR", 7535, 4106902, "80020000", "MARECHAL DEODORO"),
    ("RECIFE", "PE", 2531, 2611606, "50030230", "GUARARAPES"),
)
TRADE_WORDS = ("ALFA", "HORIZONTE", "NOVA ERA", "BOM SABOR", "RAPIDO", "PRIME", "AURORA")


@dataclass(frozen=True)
class FixedCompany:
    razao_social: str
    nome_fantasia: str
    situacao: int
    cnae: int
    partners: tuple[str, ...]  # CPFs of the partners (people.py gives their names)
    opened: date
    situacao_since: date


FIXED_COMPANIES: dict[str, FixedCompany] = {
    "11222333000181": FixedCompany("EMPRESA EXEMPLO COMERCIO LTDA", "EXEMPLO", 2, 4712100,
                                   ("11144477735", "52998224725"), date(2010, 4, 12), date(2010, 4, 12)),  # noqa: E501
    "11444777000161": FixedCompany("ANTIGA INDUSTRIA TEXTIL LTDA", "", 8, 4781400,
                                   ("12345678909",), date(1998, 2, 3), date(2019, 9, 30)),
    "55666777000181": FixedCompany("TRANSPORTES SUSPENSOS LTDA", "TRANSUSP", 3, 4930202,
                                   ("98765432100",), date(2005, 6, 1), date(2023, 3, 15)),
    "99888777000100": FixedCompany("CONSULTORIA INAPTA EIRELI", "", 4, 7020400,
                                   ("10000000108",), date(2012, 1, 20), date(2022, 11, 8)),
    "12ABC345000188": FixedCompany("NOVA ERA TECNOLOGIA S.A.", "NOVA ERA", 2, 6201501,
                                   ("11144477735",), date(2026, 7, 15), date(2026, 7, 15)),
}  # fmt: skip
# Valid CNPJs with no record (404).
NOT_FOUND_CNPJS = frozenset({"33400689000109"})


def _brasilapi_error(status: int, message: str) -> dict[str, Any]:
    name, kind = {
        400: ("BadRequestError", "bad_request"),
        404: ("NotFoundError", "not_found"),
    }.get(status, ("InternalError", "internal"))
    return {"name": name, "message": message, "type": kind}


def error_body(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> dict[str, Any]:
    # Injected faults answer in the shape of the API that was called, so clients
    # exercise their real error parsing.
    if request.path.startswith(CNPJ_PREFIX):
        return _brasilapi_error(status, f"{title}: {detail}")
    return {"error": {"code": code, "message": f"{title}: {detail}"}}


def cpf_situation(cpf: str, now_iso: str) -> dict[str, Any] | None:
    person = person_for(cpf)
    if person is None:
        return None
    return {
        "cpf": cpf,
        "nome": person.nome,
        "situacao": person.situacao,
        "descricao_situacao": SITUACAO_DESCRICAO[person.situacao],
        "data_nascimento": person.data_nascimento.isoformat(),
        "ano_obito": person.ano_obito,
        "consultado_em": now_iso,
    }


def _qsa_entry(cpf: str, share_pct: float, since: date) -> dict[str, Any]:
    person = person_for(cpf)
    assert person is not None, cpf
    age = since.year - person.data_nascimento.year
    return {
        "identificador_de_socio": 2,  # 2 = pessoa física
        "nome_socio": person.nome,
        # The open data masks a partner's CPF the same way (first 3 and last 2 hidden).
        "cnpj_cpf_do_socio": f"***{cpf[3:9]}**",
        "codigo_qualificacao_socio": 49,
        "qualificacao_socio": "Sócio-Administrador",
        "percentual_capital_social": share_pct,
        "data_entrada_sociedade": since.isoformat(),
        "cpf_representante_legal": "***000000**",
        "nome_representante_legal": "",
        "codigo_qualificacao_representante_legal": 0,
        "qualificacao_representante_legal": None,
        "faixa_etaria": "Entre 31 a 40 anos" if age < 41 else "Entre 41 a 50 anos",
        "codigo_faixa_etaria": 4 if age < 41 else 5,
        "pais": None,
        "codigo_pais": None,
    }


def _generated_company(rng: random.Random) -> FixedCompany:
    word = rng.choice(TRADE_WORDS)
    cnae = rng.choice(CNAES)[0]
    partners: list[str] = []
    wanted = rng.randint(1, 2)
    while len(partners) < wanted:
        base = "".join(str(rng.randint(0, 9)) for _ in range(9))
        cpf = base + cpf_check_digits(base)
        # A partner must be a person Receita knows (the not-found CPFs are not).
        if normalize_cpf(cpf) is not None and person_for(cpf) is not None:
            partners.append(cpf)
    opened = date(2000, 1, 1) + timedelta(days=rng.randint(0, 9000))
    razao = f"{word} {rng.choice(SURNAMES)} LTDA"
    # Unknown CNPJs are active companies; the other situations are fixed identities.
    return FixedCompany(razao, word, 2, cnae, tuple(partners), opened, opened)


def cnpj_record(cnpj: str) -> dict[str, Any] | None:
    """BrasilAPI's `GET /api/cnpj/v1/{cnpj}` body for a valid CNPJ, or None (not found)."""
    if cnpj in NOT_FOUND_CNPJS:
        return None
    rng = rng_for("company", cnpj)
    company = FIXED_COMPANIES.get(cnpj) or _generated_company(rng)
    city, uf, municipio, ibge, cep, street = rng.choice(CITIES)
    cnae_desc = dict(CNAES)[company.cnae]
    secondary = [c for c in CNAES if c[0] != company.cnae][: rng.randint(0, 2)]
    motivo, motivo_desc = MOTIVO[company.situacao]
    share = round(100.0 / len(company.partners), 2)
    capital = rng.randint(10, 5000) * 1000
    return {
        "cnpj": cnpj,
        "identificador_matriz_filial": 1,
        "descricao_identificador_matriz_filial": "MATRIZ",
        "razao_social": company.razao_social,
        "nome_fantasia": company.nome_fantasia,
        "situacao_cadastral": company.situacao,
        "descricao_situacao_cadastral": SITUACAO_CADASTRAL[company.situacao],
        "data_situacao_cadastral": company.situacao_since.isoformat(),
        "motivo_situacao_cadastral": motivo,
        "descricao_motivo_situacao_cadastral": motivo_desc,
        "nome_cidade_no_exterior": "",
        "codigo_natureza_juridica": 2062,
        "natureza_juridica": "Sociedade Empresária Limitada",
        "data_inicio_atividade": company.opened.isoformat(),
        "cnae_fiscal": company.cnae,
        "cnae_fiscal_descricao": cnae_desc,
        "cnaes_secundarios": [{"codigo": c, "descricao": d} for c, d in secondary],
        "descricao_tipo_de_logradouro": "AVENIDA",
        "logradouro": street,
        "numero": str(rng.randint(1, 3000)),
        "complemento": f"SALA {rng.randint(1, 40)}" if rng.random() < 0.5 else "",
        "bairro": "CENTRO",
        "cep": cep,
        "uf": uf,
        "codigo_municipio": municipio,
        "codigo_municipio_ibge": ibge,
        "municipio": city,
        "ddd_telefone_1": f"11{rng.randint(30000000, 39999999)}",
        "ddd_telefone_2": "",
        "ddd_fax": "",
        "email": None,
        "qualificacao_do_responsavel": 49,
        "capital_social": capital,
        "codigo_porte": 1 if capital < 360_000 else 5,
        "porte": "MICRO EMPRESA" if capital < 360_000 else "DEMAIS",
        "descricao_porte": "MICRO EMPRESA" if capital < 360_000 else "DEMAIS",
        "opcao_pelo_simples": capital < 360_000,
        "data_opcao_pelo_simples": company.opened.isoformat() if capital < 360_000 else None,
        "data_exclusao_do_simples": None,
        "opcao_pelo_mei": False,
        "data_opcao_pelo_mei": None,
        "data_exclusao_do_mei": None,
        "situacao_especial": "",
        "data_situacao_especial": None,
        "ente_federativo_responsavel": "",
        "pais": None,
        "codigo_pais": None,
        "qsa": [_qsa_entry(cpf, share, company.opened) for cpf in company.partners],
    }


async def get_cpf(request: web.Request) -> web.Response:
    raw = request.match_info["cpf"]
    cpf = normalize_cpf(raw) if len(raw) <= MAX_CPF_PATH else None
    if cpf is None:
        return web.json_response(
            error_body(request, 400, "INVALID_CPF", "Invalid CPF", "11 digits, valid check digits"),
            status=400,
        )
    now = request.app[CLOCK_KEY].now().isoformat(timespec="seconds").replace("+00:00", "Z")
    body = cpf_situation(cpf, now)
    if body is None:
        return web.json_response(
            error_body(request, 404, "CPF_NOT_FOUND", "Not found", "CPF not in the base"),
            status=404,
        )
    return web.json_response(body)


async def get_cnpj(request: web.Request) -> web.Response:
    raw = request.match_info["cnpj"]
    cnpj = normalize_cnpj(raw) if len(raw) <= MAX_CNPJ_PATH else None
    if cnpj is None:
        # BrasilAPI's wording; the raw input is capped so the body stays small.
        return web.json_response(_brasilapi_error(400, f"CNPJ {raw[:20]} inválido."), status=400)
    body = cnpj_record(cnpj)
    if body is None:
        return web.json_response(_brasilapi_error(404, f"CNPJ {cnpj} não encontrado."), status=404)
    return web.json_response(body)


def make_app() -> web.Application:
    app = build_app(SimulatorConfig(name="receita", error_body=error_body))
    app.router.add_get("/v1/cpf/{cpf}", get_cpf)
    app.router.add_get("/api/cnpj/v1/{cnpj}", get_cnpj)
    return app
