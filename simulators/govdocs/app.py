"""Datavalid-like document check: `POST /oauth2/token`, `POST /v1/validate/pf`.

docs/SIMULATORS.md ("Gov document check") documents the shapes. Records come
from simulators.receita.people, so Receita and this simulator agree on every
CPF's name and birth date.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from difflib import SequenceMatcher
from typing import Any

from aiohttp import web

from services.brazil.documents import normalize_cpf
from simulators.common import CLOCK_KEY, SimulatorConfig, build_app
from simulators.common.credentials import client_credentials
from simulators.govdocs.cnh import normalize_cnh
from simulators.receita.people import person_for

DEFAULT_CLIENT_ID = "fintech-kyc"
DEFAULT_CLIENT_SECRET = "govdocs-dev-secret"  # noqa: S105 - documented dev default
DEFAULT_TOKEN_TTL_SECONDS = 3600
# Issued tokens live in memory; beyond this many the oldest are forgotten (a
# client holding one gets 401 and asks again, as after an expiry).
MAX_TOKENS = 10_000
MAX_NAME_CHARS = 200
RG_PATTERN = re.compile(r"^[0-9A-Z]{4,14}$")
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret


@dataclass
class OAuthState:
    client_id: str
    client_secret: str
    ttl_seconds: int
    max_tokens: int = MAX_TOKENS
    tokens: dict[str, datetime] = field(default_factory=dict)  # token -> expires at

    def issue(self, now: datetime) -> str:
        if len(self.tokens) >= self.max_tokens:
            for token, expires in list(self.tokens.items()):
                if expires <= now:
                    del self.tokens[token]
            while len(self.tokens) >= self.max_tokens:
                del self.tokens[next(iter(self.tokens))]  # dicts keep insertion order
        token = secrets.token_urlsafe(32)
        self.tokens[token] = now + timedelta(seconds=self.ttl_seconds)
        return token


OAUTH_KEY = web.AppKey("oauth", OAuthState)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, field_name: str) -> None:
        super().__init__(message)
        self.code, self.message, self.field_name = code, message, field_name


def error_body(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> dict[str, Any]:
    # The token endpoint speaks RFC 6749 §5.2, so injected faults there do too.
    if request.path == TOKEN_PATH:
        kind = "temporarily_unavailable" if status in (429, 503, 504) else "server_error"
        return {"error": kind, "error_description": f"{title}: {detail}"}
    return {"error": {"code": code, "message": f"{title}: {detail}"}}


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    response = web.json_response({"error": error, "error_description": description}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="govdocs"'
    # RFC 6749 §5.1: token responses (and their errors) must not be cached.
    response.headers["Cache-Control"] = "no-store"
    return response


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


async def issue_token(request: web.Request) -> web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        return _oauth_error(
            400, "invalid_request", "body must be application/x-www-form-urlencoded"
        )
    form = await request.post()
    grant_type = form.get("grant_type")
    if grant_type is None:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
    # Datavalid clients send HTTP Basic; form fields are accepted too (RFC 6749 §2.3.1).
    creds = _basic_credentials(request.headers.get("Authorization", ""))
    if creds is None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return _oauth_error(401, "invalid_client", "client credentials are required")
        creds = (client_id, secret)
    state = request.app[OAUTH_KEY]
    # Constant-time comparison: a habit worth keeping even in a simulator.
    id_ok = hmac.compare_digest(creds[0].encode(), state.client_id.encode())
    secret_ok = hmac.compare_digest(creds[1].encode(), state.client_secret.encode())
    if not (id_ok and secret_ok):
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    token = state.issue(request.app[CLOCK_KEY].now())
    response = web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": state.ttl_seconds}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _token_problem(request: web.Request) -> str | None:
    """None when the request carries a live bearer token, else why not."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing bearer token"
    expires = request.app[OAUTH_KEY].tokens.get(token.strip())
    if expires is None:
        return "unknown token"
    if expires <= request.app[CLOCK_KEY].now():
        return "token expired"
    return None


def normalize_name(name: str) -> str:
    """Upper case, accents and punctuation dropped, single spaces: 'José  da Silva' →
    'JOSE DA SILVA'. Registries disagree on accents; a match should not."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = re.sub(r"[^A-Z ]", " ", letters.upper())
    return " ".join(cleaned.split())


def name_similarity(given: str, recorded: str) -> float:
    """0..1, 1 only for the same normalized name. Ratcliff-Obershelp (difflib) on the
    normalized strings, and on their sorted words, the better of the two, so a
    reordered name ('SILVA JOSE') still scores high without being an exact match."""
    a, b = normalize_name(given), normalize_name(recorded)
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    direct = SequenceMatcher(None, a, b).ratio()
    sorted_ = SequenceMatcher(
        None, " ".join(sorted(a.split())), " ".join(sorted(b.split()))
    ).ratio()
    # Capped below 1 so that only an exact match reads as 1.0.
    return min(round(max(direct, sorted_), 4), 0.9999)


@dataclass(frozen=True)
class PfRequest:
    cpf: str
    nome: str | None
    data_nascimento: date | None
    doc_tipo: str | None
    doc_numero: str | None


def parse_pf(body: Any) -> PfRequest:
    if not isinstance(body, dict):
        raise BadRequest("INVALID_REQUEST", "body must be a JSON object", "")
    unknown = set(body) - {"cpf", "nome", "data_nascimento", "documento"}
    if unknown:
        raise BadRequest("INVALID_REQUEST", f"unknown fields: {sorted(unknown)}", "")
    raw_cpf = body.get("cpf")
    if not isinstance(raw_cpf, str) or len(raw_cpf) > 14 or normalize_cpf(raw_cpf) is None:
        raise BadRequest("INVALID_CPF", "cpf must be a valid CPF (11 digits)", "cpf")
    cpf = normalize_cpf(raw_cpf)
    assert cpf is not None
    nome = body.get("nome")
    if nome is not None and (
        not isinstance(nome, str) or not nome.strip() or len(nome) > MAX_NAME_CHARS
    ):
        raise BadRequest("INVALID_NAME", f"nome must be 1..{MAX_NAME_CHARS} characters", "nome")
    born: date | None = None
    raw_born = body.get("data_nascimento")
    if raw_born is not None:
        try:
            if not isinstance(raw_born, str) or len(raw_born) != 10:
                raise ValueError
            born = date.fromisoformat(raw_born)
        except ValueError:
            raise BadRequest(
                "INVALID_DATE", "data_nascimento must be YYYY-MM-DD", "data_nascimento"
            ) from None
    tipo = numero = None
    documento = body.get("documento")
    if documento is not None:
        tipo, numero = _parse_documento(documento)
    if nome is None and born is None and documento is None:
        raise BadRequest(
            "NOTHING_TO_VALIDATE", "send at least one of nome, data_nascimento, documento", ""
        )
    return PfRequest(cpf, nome, born, tipo, numero)


def _parse_documento(documento: Any) -> tuple[str, str]:
    if not isinstance(documento, dict) or set(documento) != {"tipo", "numero"}:
        raise BadRequest("INVALID_DOCUMENT", "documento must be {tipo, numero}", "documento")
    tipo, numero = documento["tipo"], documento["numero"]
    if tipo not in ("CNH", "RG"):
        raise BadRequest("INVALID_DOCUMENT", "documento.tipo must be CNH or RG", "documento.tipo")
    if not isinstance(numero, str) or len(numero) > 20:
        raise BadRequest(
            "INVALID_DOCUMENT", "documento.numero must be a string", "documento.numero"
        )
    if tipo == "CNH":
        cnh = normalize_cnh(numero)
        if cnh is None:
            raise BadRequest(
                "INVALID_CNH", "CNH must be 11 digits with valid check digits", "documento.numero"
            )
        return tipo, cnh
    rg = re.sub(r"[.\-/\s]", "", numero).upper()
    if not RG_PATTERN.match(rg):
        raise BadRequest("INVALID_RG", "RG must be 4..14 letters or digits", "documento.numero")
    return tipo, rg


def validate_pf(req: PfRequest) -> dict[str, Any] | None:
    """The match result, or None when the CPF has no record."""
    person = person_for(req.cpf)
    if person is None:
        return None
    result: dict[str, Any] = {
        "cpf": req.cpf,
        "cpf_disponivel": True,
        "situacao_cpf": person.situacao,
    }
    if req.nome is not None:
        similarity = name_similarity(req.nome, person.nome)
        result["nome"] = similarity == 1.0
        result["nome_similaridade"] = similarity
    if req.data_nascimento is not None:
        result["data_nascimento"] = req.data_nascimento == person.data_nascimento
    if req.doc_tipo is not None:
        recorded = person.cnh if req.doc_tipo == "CNH" else person.rg
        result["documento"] = {"tipo": req.doc_tipo, "numero": req.doc_numero == recorded}
    return result


def _error(status: int, code: str, message: str, field_name: str = "") -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field_name:
        body["field"] = field_name
    return web.json_response({"error": body}, status=status)


async def check_pf(request: web.Request) -> web.Response:
    problem = _token_problem(request)
    if problem is not None:
        response = _error(401, "INVALID_TOKEN", problem)
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "INVALID_JSON", "body must be JSON")
    try:
        req = parse_pf(body)
    except BadRequest as exc:
        return _error(400, exc.code, exc.message, exc.field_name)
    result = validate_pf(req)
    if result is None:
        return _error(404, "CPF_NOT_FOUND", "CPF not in the base", "cpf")
    return web.json_response(result)


async def _drop_tokens(app: web.Application) -> None:
    app[OAUTH_KEY].tokens.clear()


def _ttl_from_env() -> int:
    raw = os.environ.get("FINTECH_GOVDOCS_TOKEN_TTL_SECONDS", str(DEFAULT_TOKEN_TTL_SECONDS))
    ttl = int(raw)
    if not 1 <= ttl <= 86_400:
        raise ValueError("FINTECH_GOVDOCS_TOKEN_TTL_SECONDS must be within 1..86400")
    return ttl


def make_app() -> web.Application:
    app = build_app(
        SimulatorConfig(name="govdocs", error_body=error_body, reset_state=_drop_tokens)
    )
    client_id, client_secret = client_credentials(
        "govdocs", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    )
    app[OAUTH_KEY] = OAuthState(
        client_id=client_id, client_secret=client_secret, ttl_seconds=_ttl_from_env()
    )
    app.router.add_post(TOKEN_PATH, issue_token)
    app.router.add_post("/v1/validate/pf", check_pf)
    return app
