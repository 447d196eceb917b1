"""Open Finance Brasil data holder: consents v3.3.1 and accounts v2.4.2.

Simplifications (docs/SIMULATORS.md): no mTLS, no FAPI signing, no OAuth
server. Consent endpoints accept any `Authorization: Bearer ...`; resource
endpoints take the consent id itself as the bearer token.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from services.brazil.documents import normalize_cpf
from simulators.common import CLOCK_KEY, SimulatorConfig, build_app
from simulators.common.app import Handler
from simulators.open_finance import consents as cs
from simulators.open_finance.customers import (
    BANK_CNPJ,
    BANK_NAME,
    COMPE_CODE,
    Account,
    Customer,
    Transaction,
    account_overdraft_used,
    balance_cents,
    customer_for,
    transactions_for,
)

CONSENTS_BASE = "/open-banking/consents/v3"
ACCOUNTS_BASE = "/open-banking/accounts/v2"
CONSENTS_VERSION = "3.3.1"
ACCOUNTS_VERSION = "2.4.2"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 25
MAX_PAGE = 2_147_483_647
MAX_CONSENT_DURATION = timedelta(days=366)  # v3: at most 12 months ahead
CURRENT_WINDOW_DAYS = 7  # transactions-current: the last 7 days

STORE_KEY = web.AppKey("consents", cs.ConsentStore)

PERMISSIONS = frozenset(
    {
        "ACCOUNTS_READ",
        "ACCOUNTS_BALANCES_READ",
        "ACCOUNTS_TRANSACTIONS_READ",
        "ACCOUNTS_OVERDRAFT_LIMITS_READ",
        "CREDIT_CARDS_ACCOUNTS_READ",
        "CREDIT_CARDS_ACCOUNTS_BILLS_READ",
        "CREDIT_CARDS_ACCOUNTS_BILLS_TRANSACTIONS_READ",
        "CREDIT_CARDS_ACCOUNTS_LIMITS_READ",
        "CREDIT_CARDS_ACCOUNTS_TRANSACTIONS_READ",
        "CUSTOMERS_PERSONAL_IDENTIFICATIONS_READ",
        "CUSTOMERS_PERSONAL_ADITTIONALINFO_READ",
        "CUSTOMERS_BUSINESS_IDENTIFICATIONS_READ",
        "CUSTOMERS_BUSINESS_ADITTIONALINFO_READ",
        "FINANCINGS_READ",
        "FINANCINGS_SCHEDULED_INSTALMENTS_READ",
        "FINANCINGS_PAYMENTS_READ",
        "FINANCINGS_WARRANTIES_READ",
        "INVOICE_FINANCINGS_READ",
        "INVOICE_FINANCINGS_SCHEDULED_INSTALMENTS_READ",
        "INVOICE_FINANCINGS_PAYMENTS_READ",
        "INVOICE_FINANCINGS_WARRANTIES_READ",
        "LOANS_READ",
        "LOANS_SCHEDULED_INSTALMENTS_READ",
        "LOANS_PAYMENTS_READ",
        "LOANS_WARRANTIES_READ",
        "UNARRANGED_ACCOUNTS_OVERDRAFT_READ",
        "UNARRANGED_ACCOUNTS_OVERDRAFT_SCHEDULED_INSTALMENTS_READ",
        "UNARRANGED_ACCOUNTS_OVERDRAFT_PAYMENTS_READ",
        "UNARRANGED_ACCOUNTS_OVERDRAFT_WARRANTIES_READ",
        "RESOURCES_READ",
        "BANK_FIXED_INCOMES_READ",
        "CREDIT_FIXED_INCOMES_READ",
        "FUNDS_READ",
        "VARIABLE_INCOMES_READ",
        "TREASURE_TITLES_READ",
        "EXCHANGES_READ",
    }
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EXPIRATION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_URN = re.compile(r"^urn:[a-zA-Z0-9][a-zA-Z0-9-]{0,31}:[a-zA-Z0-9()+,\-.:=@;$_!*'%/?#]+$")
_ACCOUNT_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,99}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ApiError(Exception):
    """Raised by handlers; rendered as the spec's ResponseError."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail


# --- formatting -----------------------------------------------------------------


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _amount(cents: int) -> dict[str, str]:
    return {"amount": _money(cents), "currency": "BRL"}


def _now(request: web.Request) -> datetime:
    return request.app[CLOCK_KEY].now()


def error_body(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {"requestDateTime": _ts(_now(request))}
    if request.path.startswith(ACCOUNTS_BASE):
        # accounts' ResponseError.meta is `Meta`, which requires the totals too.
        meta.update(totalRecords=1, totalPages=1)
    return {
        "errors": [{"code": code[:255], "title": title[:255], "detail": detail[:2048]}],
        "meta": meta,
    }


# --- middleware -----------------------------------------------------------------


def _is_api(path: str) -> bool:
    return path.startswith("/open-banking/") or path.startswith("/__sim/")


@web.middleware
async def fapi_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo `x-fapi-interaction-id` (generate one when absent, per the spec a bad
    value is answered 400 with a fresh id), add `x-v`, and turn every failure on
    the API paths into the spec's ResponseError body."""
    if not _is_api(request.path):
        return await handler(request)
    given = request.headers.get("x-fapi-interaction-id")
    interaction_id = given if given and _UUID.match(given) else str(uuid.uuid4())
    try:
        if given is not None and not _UUID.match(given):
            raise ApiError(
                400,
                "PARAMETRO_INVALIDO",
                "Cabecalho invalido",
                "x-fapi-interaction-id deve ser um UUID RFC4122",
            )
        response = await handler(request)
    except ApiError as exc:
        response = web.json_response(
            error_body(request, exc.status, exc.code, exc.title, exc.detail), status=exc.status
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "NAO_ENCONTRADO", 405: "METODO_NAO_PERMITIDO", 413: "PAYLOAD_MUITO_GRANDE"}
        response = web.json_response(
            error_body(request, exc.status, code.get(exc.status, "ERRO"), exc.reason, exc.reason),
            status=exc.status,
        )
    response.headers["x-fapi-interaction-id"] = interaction_id
    if request.path.startswith(CONSENTS_BASE):
        response.headers["x-v"] = CONSENTS_VERSION
    elif request.path.startswith(ACCOUNTS_BASE):
        response.headers["x-v"] = ACCOUNTS_VERSION
    return response


# --- consents -------------------------------------------------------------------


def _require_client_token(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip() or len(header) > 2048:
        raise ApiError(401, "NAO_AUTORIZADO", "Nao autorizado", "Authorization Bearer ausente")


def _consent_json(request: web.Request, consent: cs.Consent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "consentId": consent.consent_id,
        "creationDateTime": _ts(consent.created_at),
        "status": consent.status,
        "statusUpdateDateTime": _ts(consent.status_updated_at),
        "permissions": list(consent.permissions),
    }
    if consent.expires_at is not None:
        data["expirationDateTime"] = _ts(consent.expires_at)
    if consent.rejection is not None:
        data["rejection"] = {
            "rejectedBy": consent.rejection.rejected_by,
            "reason": {
                "code": consent.rejection.code,
                "additionalInformation": consent.rejection.additional_information,
            },
        }
    self_url = str(
        request.url.with_path(f"{CONSENTS_BASE}/consents/{consent.consent_id}").with_query(None)
    )
    return {
        "data": data,
        "links": {"self": self_url},
        "meta": {"requestDateTime": _ts(_now(request))},
    }


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ApiError(400, "PARAMETRO_INVALIDO", "Corpo invalido", "JSON invalido") from exc


def _unprocessable(code: str, detail: str) -> ApiError:
    return ApiError(422, code, "Consentimento invalido", detail)


async def create_consent(request: web.Request) -> web.Response:
    _require_client_token(request)
    body = await _json_body(request)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ApiError(400, "PARAMETRO_NAO_INFORMADO", "Campo ausente", "data e obrigatorio")
    document = (
        (data.get("loggedUser") or {}).get("document")
        if isinstance(data.get("loggedUser"), dict)
        else None
    )
    if (
        not isinstance(document, dict)
        or document.get("rel") != "CPF"
        or not isinstance(document.get("identification"), str)
    ):
        raise ApiError(
            400,
            "PARAMETRO_NAO_INFORMADO",
            "Campo ausente",
            "loggedUser.document com rel CPF e obrigatorio",
        )
    cpf = normalize_cpf(document["identification"])
    if cpf is None or cpf != document["identification"]:
        raise ApiError(
            400,
            "PARAMETRO_INVALIDO",
            "CPF invalido",
            "loggedUser.document.identification deve ser um CPF de 11 digitos",
        )
    permissions = data.get("permissions")
    if (
        not isinstance(permissions, list)
        or not 1 <= len(permissions) <= len(PERMISSIONS)
        or not all(isinstance(p, str) and p in PERMISSIONS for p in permissions)
    ):
        raise ApiError(
            400,
            "PARAMETRO_INVALIDO",
            "Permissoes invalidas",
            "permissions deve ser uma lista nao vazia de permissoes conhecidas",
        )
    now = _now(request)
    expires_at = None
    raw_expiration = data.get("expirationDateTime")
    if raw_expiration is not None:
        if not isinstance(raw_expiration, str) or not _EXPIRATION.match(raw_expiration):
            raise _unprocessable("DATA_EXPIRACAO_INVALIDA", "expirationDateTime mal formatado")
        try:
            expires_at = datetime.strptime(raw_expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _unprocessable("DATA_EXPIRACAO_INVALIDA", "expirationDateTime invalido") from exc
        if not now < expires_at <= now + MAX_CONSENT_DURATION:
            raise _unprocessable(
                "DATA_EXPIRACAO_INVALIDA",
                "expirationDateTime deve estar no futuro e em ate 12 meses",
            )
    # Order-preserving de-duplication: the response lists what was granted.
    unique = tuple(dict.fromkeys(permissions))
    consent = request.app[STORE_KEY].create(cpf, unique, now.replace(microsecond=0), expires_at)
    return web.json_response(
        _consent_json(request, consent), status=201, content_type="application/json"
    )


def _consent_from_path(request: web.Request) -> cs.Consent:
    consent_id = request.match_info["consentId"]
    if len(consent_id) > 256 or not _URN.match(consent_id):
        raise ApiError(400, "PARAMETRO_INVALIDO", "consentId invalido", "consentId deve ser URN")
    consent = request.app[STORE_KEY].get(consent_id, _now(request))
    if consent is None:
        raise ApiError(
            404, "NAO_ENCONTRADO", "Consentimento nao encontrado", "consentId desconhecido"
        )
    return consent


async def get_consent(request: web.Request) -> web.Response:
    _require_client_token(request)
    consent = _consent_from_path(request)
    return web.json_response(_consent_json(request, consent), content_type="application/json")


async def delete_consent(request: web.Request) -> web.Response:
    _require_client_token(request)
    consent = _consent_from_path(request)
    if consent.status == cs.REJECTED:
        raise ApiError(
            422,
            "CONSENTIMENTO_EM_STATUS_REJEITADO",
            "Consentimento rejeitado",
            "O consentimento ja esta rejeitado",
        )
    consent.revoke(_now(request).replace(microsecond=0))
    return web.Response(status=204)


async def authorise_consent(request: web.Request) -> web.Response:
    """What the customer's approval at the bank (and the redirect back) would do.

    Body (all optional): {"redirect_uri": str, "state": str, "approve": bool}.
    Returns {"consentId", "status", "redirect_url"} with `code`+`state` (or
    `error=access_denied` when approve is false) appended to redirect_uri.
    """
    body = await _json_body(request) if request.can_read_body else {}
    if not isinstance(body, dict):
        raise ApiError(400, "PARAMETRO_INVALIDO", "Corpo invalido", "esperado um objeto JSON")
    redirect_uri = body.get("redirect_uri", "https://tpp.example/callback")
    state = body.get("state", "")
    approve = body.get("approve", True)
    if not (
        isinstance(redirect_uri, str)
        and redirect_uri.startswith(("http://", "https://"))
        and len(redirect_uri) <= 1024
        and isinstance(state, str)
        and len(state) <= 512
        and isinstance(approve, bool)
    ):
        raise ApiError(
            400,
            "PARAMETRO_INVALIDO",
            "Parametros invalidos",
            "redirect_uri (http/https, <= 1024), state (<= 512), approve (bool)",
        )
    consent = _consent_from_path(request)
    if consent.status != cs.AWAITING:
        raise ApiError(
            422,
            "CONSENTIMENTO_EM_STATUS_INVALIDO",
            "Status invalido",
            f"consentimento em status {consent.status}",
        )
    now = _now(request).replace(microsecond=0)
    params: dict[str, str] = {}
    if approve:
        consent.authorise(now)
        params["code"] = consent.authorisation_code or ""
    else:
        consent.refuse(now)
        params["error"] = "access_denied"
    if state:
        params["state"] = state
    separator = "&" if "?" in redirect_uri else "?"
    return web.json_response(
        {
            "consentId": consent.consent_id,
            "status": consent.status,
            "redirect_url": f"{redirect_uri}{separator}{urlencode(params)}",
        }
    )


# --- accounts -------------------------------------------------------------------


def _consent_for_read(request: web.Request, permission: str) -> cs.Consent:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    consent = request.app[STORE_KEY].get(token, _now(request)) if token else None
    if consent is None:
        raise ApiError(
            401,
            "NAO_AUTORIZADO",
            "Nao autorizado",
            "token ausente ou desconhecido (o token e o consentId)",
        )
    if consent.status != cs.AUTHORISED:
        reason = f" ({consent.rejection.code})" if consent.rejection else ""
        raise ApiError(
            401,
            "NAO_AUTORIZADO",
            "Consentimento invalido",
            f"consentimento em status {consent.status}{reason}",
        )
    if permission not in consent.permissions:
        raise ApiError(
            403, "PERMISSAO_AUSENTE", "Proibido", f"o consentimento nao inclui {permission}"
        )
    return consent


def _page_params(request: web.Request) -> tuple[int, int]:
    def parse(name: str, default: int, low: int, high: int, code: str) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or len(raw) > 10:
            raise ApiError(400, "PARAMETRO_INVALIDO", "Parametro invalido", f"{name} invalido")
        value = int(raw)
        if not low <= value <= high:
            raise ApiError(422, code, "Parametro invalido", f"{name} deve estar em {low}..{high}")
        return value

    page = parse("page", 1, 1, MAX_PAGE, "NUMERO_PAGINA_INVALIDO")
    size = parse("page-size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, "TAMANHO_PAGINA_INVALIDO")
    return page, size


def _paginate(
    request: web.Request, items: list[Any], *, with_last: bool
) -> tuple[list[Any], dict[str, str], dict[str, Any]]:
    page, size = _page_params(request)
    total = len(items)
    pages = max(1, -(-total // size))
    chunk = items[(page - 1) * size : page * size]

    def url(number: int) -> str:
        return str(request.url.update_query({"page": str(number), "page-size": str(size)}))

    links = {"self": str(request.url), "first": url(1)}
    if page > 1:
        links["prev"] = url(min(page - 1, pages))
    if page < pages:
        links["next"] = url(page + 1)
    if with_last:
        links["last"] = url(pages)
    meta = {"totalRecords": total, "totalPages": pages, "requestDateTime": _ts(_now(request))}
    return chunk, links, meta


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "brandName": BANK_NAME,
        "companyCnpj": BANK_CNPJ,
        "type": account.type,
        "compeCode": COMPE_CODE,
        "branchCode": account.branch_code,
        "number": account.number,
        "checkDigit": account.check_digit,
        "accountId": account.account_id,
    }


def _find_account(request: web.Request, customer: Customer) -> int:
    account_id = request.match_info["accountId"]
    if not _ACCOUNT_ID.match(account_id):
        raise ApiError(400, "PARAMETRO_INVALIDO", "accountId invalido", "accountId mal formatado")
    for index, account in enumerate(customer.accounts):
        if account.account_id == account_id:
            return index
    raise ApiError(
        404, "NAO_ENCONTRADO", "Conta nao encontrada", "accountId nao pertence ao consentimento"
    )


def _single(request: web.Request, data: dict[str, Any]) -> web.Response:
    meta = {"totalRecords": 1, "totalPages": 1, "requestDateTime": _ts(_now(request))}
    return web.json_response(
        {"data": data, "links": {"self": str(request.url)}, "meta": meta},
        content_type="application/json",
    )


async def list_accounts(request: web.Request) -> web.Response:
    consent = _consent_for_read(request, "ACCOUNTS_READ")
    accounts = list(customer_for(consent.cpf).accounts)
    wanted = request.query.get("accountType")
    if wanted is not None:
        accounts = [a for a in accounts if a.type == wanted]
    chunk, links, meta = _paginate(request, accounts, with_last=True)
    return web.json_response(
        {"data": [_account_json(a) for a in chunk], "links": links, "meta": meta},
        content_type="application/json",
    )


async def get_account(request: web.Request) -> web.Response:
    consent = _consent_for_read(request, "ACCOUNTS_READ")
    customer = customer_for(consent.cpf)
    account = customer.accounts[_find_account(request, customer)]
    return _single(
        request,
        {
            "compeCode": COMPE_CODE,
            "branchCode": account.branch_code,
            "number": account.number,
            "checkDigit": account.check_digit,
            "type": account.type,
            "subtype": "INDIVIDUAL",
            "currency": "BRL",
        },
    )


async def get_balances(request: web.Request) -> web.Response:
    consent = _consent_for_read(request, "ACCOUNTS_BALANCES_READ")
    customer = customer_for(consent.cpf)
    index = _find_account(request, customer)
    now = _now(request)
    return _single(
        request,
        {
            "availableAmount": _amount(balance_cents(customer, index, now.date())),
            "blockedAmount": _amount(0),
            "automaticallyInvestedAmount": _amount(0),
            "updateDateTime": _ts(now),
        },
    )


async def get_overdraft_limits(request: web.Request) -> web.Response:
    consent = _consent_for_read(request, "ACCOUNTS_OVERDRAFT_LIMITS_READ")
    customer = customer_for(consent.cpf)
    index = _find_account(request, customer)
    account = customer.accounts[index]
    data: dict[str, Any] = {}
    if account.type == "CONTA_DEPOSITO_A_VISTA":
        data = {
            "overdraftContractedLimit": _amount(account.overdraft_limit_cents),
            "overdraftUsedLimit": _amount(account_overdraft_used(customer, index)),
            "unarrangedOverdraftAmount": _amount(0),
        }
    return _single(request, data)


def _parse_date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(
            400, "PARAMETRO_INVALIDO", "Data invalida", f"{name} deve ser AAAA-MM-DD"
        ) from exc


def _transaction_json(tx: Transaction) -> dict[str, Any]:
    item: dict[str, Any] = {
        "transactionId": tx.transaction_id,
        "completedAuthorisedPaymentType": "TRANSACAO_EFETIVADA",
        "creditDebitType": "CREDITO" if tx.credit else "DEBITO",
        "transactionName": tx.name,
        "type": tx.type,
        "transactionAmount": _amount(tx.amount_cents),
        "transactionDateTime": _ts_ms(tx.booked_at),
    }
    if tx.counterparty_document:
        item["partieCnpjCpf"] = tx.counterparty_document
        item["partiePersonType"] = (
            "PESSOA_NATURAL" if len(tx.counterparty_document) == 11 else "PESSOA_JURIDICA"
        )
    return item


async def _transactions(request: web.Request, *, current: bool) -> web.Response:
    consent = _consent_for_read(request, "ACCOUNTS_TRANSACTIONS_READ")
    customer = customer_for(consent.cpf)
    index = _find_account(request, customer)
    today = _now(request).date()
    start, end = _parse_date(request, "fromBookingDate"), _parse_date(request, "toBookingDate")
    if end is not None and start is None:
        raise ApiError(
            422,
            "PARAMETRO_INVALIDO",
            "Parametro invalido",
            "fromBookingDate e obrigatorio quando toBookingDate e informado",
        )
    # The spec: absent dates mean "today".
    start = start or today
    end = end or today
    if start > end:
        raise ApiError(
            422,
            "PARAMETRO_INVALIDO",
            "Periodo invalido",
            "fromBookingDate posterior a toBookingDate",
        )
    if current and (start < today - timedelta(days=CURRENT_WINDOW_DAYS) or end > today):
        raise ApiError(
            422,
            "PARAMETRO_INVALIDO",
            "Periodo invalido",
            "transactions-current cobre apenas os ultimos 7 dias",
        )
    indicator = request.query.get("creditDebitIndicator")
    if indicator not in (None, "CREDITO", "DEBITO"):
        raise ApiError(
            400,
            "PARAMETRO_INVALIDO",
            "Parametro invalido",
            "creditDebitIndicator deve ser CREDITO ou DEBITO",
        )
    now = _now(request)
    selected = [
        tx
        for tx in transactions_for(customer, index, today)
        if start <= tx.booked_at.date() <= end
        and tx.booked_at <= now
        and (indicator is None or (indicator == "CREDITO") == tx.credit)
    ]
    chunk, links, meta = _paginate(request, selected, with_last=False)
    return web.json_response(
        {"data": [_transaction_json(t) for t in chunk], "links": links, "meta": meta},
        content_type="application/json",
    )


async def list_transactions(request: web.Request) -> web.Response:
    return await _transactions(request, current=False)


async def list_current_transactions(request: web.Request) -> web.Response:
    return await _transactions(request, current=True)


async def _reset(app: web.Application) -> None:
    app[STORE_KEY].clear()


def make_app() -> web.Application:
    config = SimulatorConfig(
        name="open_finance",
        error_body=error_body,
        reset_state=_reset,
        middlewares=(fapi_middleware,),
    )
    app = build_app(config)
    app[STORE_KEY] = cs.ConsentStore()
    r = app.router
    r.add_post(f"{CONSENTS_BASE}/consents", create_consent)
    r.add_get(f"{CONSENTS_BASE}/consents/{{consentId}}", get_consent)
    r.add_delete(f"{CONSENTS_BASE}/consents/{{consentId}}", delete_consent)
    r.add_post("/__sim/consents/{consentId}/authorise", authorise_consent)
    r.add_get(f"{ACCOUNTS_BASE}/accounts", list_accounts)
    r.add_get(f"{ACCOUNTS_BASE}/accounts/{{accountId}}", get_account)
    r.add_get(f"{ACCOUNTS_BASE}/accounts/{{accountId}}/balances", get_balances)
    r.add_get(f"{ACCOUNTS_BASE}/accounts/{{accountId}}/transactions", list_transactions)
    r.add_get(
        f"{ACCOUNTS_BASE}/accounts/{{accountId}}/transactions-current", list_current_transactions
    )
    r.add_get(f"{ACCOUNTS_BASE}/accounts/{{accountId}}/overdraft-limits", get_overdraft_limits)
    return app
