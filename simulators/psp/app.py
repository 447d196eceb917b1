"""PSP simulator: what payments talks to for money in and out (docs/PAYMENTS.md).

API (bearer token from `POST /oauth2/token`, client credentials):
- `GET /v1/dict/{key}`: DICT lookup (404 for unknown keys);
- `POST /v1/payouts` (PIX by key or TED by account; idempotent by
  `external_reference`), `GET /v1/payouts/{id}`, `GET /v1/payouts?external_reference=`;
- `PUT /v1/cob/{txid}`, `GET /v1/cob/{txid}`, `DELETE /v1/cob/{txid}`: PIX charges;
- `POST /v1/card/charges`, `.../{id}/challenge`, `.../{id}/capture`, `.../{id}/refund`;
- `POST /v1/pix/{e2eid}/devolucao/{id}`: refund of a received PIX;
- the payout status (`GET /v1/payouts...`) carries `returned` and `returns`;
- `GET /v1/settlements/{date}?format=csv|json`: the daily report in the ledger's format.
Admin: `POST /__admin/psp` (PSP faults), `POST /__admin/dict` (register a key),
`POST /__admin/cob/{txid}/pay` (a simulated payer pays a charge),
`POST /__admin/payouts/{e2eid}/devolucao/{id}` (the receiving bank returns
part or all of a settled PIX payout: `payout.returned`).

Every settlement is notified by an HMAC-signed webhook (services.payments.domain.webhooks,
the same code that verifies it) to FINTECH_PSP_WEBHOOK_URL, retried until 2xx.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import random
import re
import secrets
import ssl
import string
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from services.ledger.domain.reconciliation import ReportFormat, ReportLine, render_report
from services.payments.domain import webhooks
from services.payments.domain.pix import ISPB, TXID, KeyType, end_to_end_id, normalize_key
from simulators.common import CLOCK_KEY, Clock, SimulatorConfig, build_app
from simulators.common.credentials import client_credentials

log = logging.getLogger("simulators.psp")

DEFAULT_CLIENT_ID = "fintech-payments"
DEFAULT_CLIENT_SECRET = "psp-dev-secret"  # noqa: S105 - documented dev default
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
TOKEN_TTL_SECONDS = 600
MAX_TOKENS = 10_000
PSP_ISPB = "13370001"  # the PSP itself
CLIENT_ISPB = "12345678"  # the fintech (payer of our payouts; on-us keys live here)
MAX_AMOUNT = 10**13
MAX_OBJECTS = 200_000  # payouts + charges kept in memory
MAX_WEBHOOK_ATTEMPTS = 12
MAX_RETURNS_PER_PAYOUT = 100
# Reasons of a devolução (BACEN's PIX rules): operational error, fraud, asked by
# the receiving customer, cash-related service.
RETURN_REASONS = frozenset({"BE08", "FR01", "MD06", "SL02"})
_RETURN_ID = re.compile(r"[a-zA-Z0-9]{1,35}")
WEBHOOK_TIMEOUT_S = 5.0
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
CHALLENGE_CODE = "123456"
_ALNUM = string.ascii_letters + string.digits

# A small DICT: known keys of people at other institutions.
SEED_DICT: dict[str, dict[str, str]] = {
    "11144477735": {"type": "CPF", "name": "Maria da Silva", "ispb": "60701190"},
    "52998224725": {"type": "CPF", "name": "Joao Pereira", "ispb": "00360305"},
    "11222333000181": {"type": "CNPJ", "name": "Padaria Pao Bom Ltda", "ispb": "60746948"},
    "ana@example.com": {"type": "EMAIL", "name": "Ana Souza", "ispb": "00000000"},
    "+5511987654321": {"type": "PHONE", "name": "Carlos Lima", "ispb": "90400888"},
    "0f6f1a52-7c4e-4d1b-9a3e-2b5c8d7e9f10": {
        "type": "EVP",
        "name": "Beatriz Costa",
        "ispb": "18236120",
    },
}


@dataclass(frozen=True)
class PspFaults:
    """PSP-level faults on top of simulators.common's per-request ones."""

    settle_delay_ms: int = 50
    reject_rate: float = 0.0  # accepted, then FAILED at settlement
    timeout_after_accept_rate: float = 0.0  # payout stored, then 504 after a hang
    timeout_after_accept_ms: int = 6000
    webhook_duplicate_rate: float = 0.0
    webhook_drop_rate: float = 0.0  # never arrives (the status query still knows)
    webhook_delay_ms: int = 0  # each webhook waits uniform(0, this): reorders them
    webhook_out_of_order_rate: float = 0.0  # final notification before "processing"
    # Centavos added to every payout line of the settlement report: the PSP
    # reporting an amount that is not what was paid out (reconciliation tests).
    report_payout_skew: int = 0
    seed: int = 0

    @classmethod
    def from_json(cls, body: Any) -> PspFaults:
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            if name not in body:
                continue
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if name.endswith("_rate"):
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"{name} must be within 0..1")
                values[name] = float(value)
            else:
                if not isinstance(value, int) or (name != "seed" and not 0 <= value <= 60_000):
                    raise ValueError(f"{name} must be an integer within 0..60000")
                values[name] = value
            del spec
        return cls(**values)


@dataclass
class Payout:
    id: str
    external_reference: str
    method: str  # PIX | TED
    amount: int
    currency: str
    destination: dict[str, Any]
    end_to_end_id: str
    status: str  # ACCEPTED | SETTLED | FAILED
    created_at: datetime
    failure_reason: str = ""
    settled_at: datetime | None = None
    refunded: int = 0  # returned by the receiving bank (devoluções), in total
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Cob:
    txid: str
    amount: int
    key: str
    external_reference: str
    description: str
    expires_at: datetime
    status: str = "ATIVA"  # CONCLUIDA, REMOVIDA_PELO_USUARIO_RECEBEDOR, REMOVIDA_PELO_PSP
    end_to_end_id: str = ""
    paid_at: datetime | None = None
    payer_name: str = ""
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class CardCharge:
    id: str
    external_reference: str
    amount: int
    currency: str
    brand: str
    last4: str
    status: str  # REQUIRES_CHALLENGE | AUTHORIZED | CAPTURED | DECLINED | REFUNDED
    created_at: datetime
    captured_at: datetime | None = None
    refunded: int = 0
    refund_ids: set[str] = field(default_factory=set)


@dataclass
class PspState:
    client_id: str
    client_secret: str
    tokens: dict[str, datetime] = field(default_factory=dict)
    dict_keys: dict[str, dict[str, str]] = field(default_factory=lambda: dict(SEED_DICT))
    payouts: dict[str, Payout] = field(default_factory=dict)
    payouts_by_ref: dict[str, str] = field(default_factory=dict)
    cobs: dict[str, Cob] = field(default_factory=dict)
    cards: dict[str, CardCharge] = field(default_factory=dict)
    cards_by_ref: dict[str, str] = field(default_factory=dict)
    faults: PspFaults = field(default_factory=PspFaults)
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Report lines per São Paulo business date.
    settlements: list[ReportLine] = field(default_factory=list)
    webhooks_sent: int = 0

    def count(self) -> int:
        return len(self.payouts) + len(self.cobs) + len(self.cards)


STATE_KEY = web.AppKey("psp_state", PspState)
WEBHOOK_KEY: web.AppKey[WebhookSender] = web.AppKey("psp_webhooks")


class WebhookSender:
    """Signs and delivers notifications; retries with backoff until a 2xx."""

    def __init__(self, url: str, secret: bytes, ca_file: str | None) -> None:
        self.url = url
        self.secret = secret
        self.ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, event: dict[str, Any]) -> bool:
        if not self.url or not self.secret:
            return False
        body = json.dumps(event, separators=(",", ":")).encode()
        for attempt in range(1, MAX_WEBHOOK_ATTEMPTS + 1):
            ts = int(time.time())
            headers = {
                "content-type": "application/json",
                webhooks.TIMESTAMP_HEADER: str(ts),
                webhooks.SIGNATURE_HEADER: webhooks.sign(self.secret, ts, body),
            }
            try:
                session = await self.session()
                async with session.post(self.url, data=body, headers=headers, ssl=self.ssl) as r:
                    if 200 <= r.status < 300:
                        return True
                    log.info(json.dumps({"sim": "psp", "webhook": event["id"], "status": r.status}))
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info(json.dumps({"sim": "psp", "webhook": event["id"], "error": str(exc)}))
            await asyncio.sleep(min(10.0, 0.2 * 2 ** (attempt - 1)))
        return False


def _spawn(app: web.Application, coro: Any) -> None:
    state = app[STATE_KEY]
    task = asyncio.get_running_loop().create_task(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


def _now(app: web.Application) -> datetime:
    clock: Clock = app[CLOCK_KEY]
    return clock.now()


def _suffix() -> str:
    # Not from the faults' RNG: it restarts at every fault change, so two payouts
    # of the same minute (two tests) would share an endToEndId.
    return "".join(secrets.choice(_ALNUM) for _ in range(11))


def _event(kind: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": kind,
        "created_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": data,
    }


async def _notify(app: web.Application, events: list[dict[str, Any]]) -> None:
    """Send `events` in order, applying the webhook faults."""
    state = app[STATE_KEY]
    f, rng = state.faults, state.rng
    if len(events) > 1 and rng.random() < f.webhook_out_of_order_rate:
        events = list(reversed(events))
    sender = app[WEBHOOK_KEY]
    for event in events:
        if rng.random() < f.webhook_drop_rate:
            continue
        copies = 2 if rng.random() < f.webhook_duplicate_rate else 1
        delay = rng.uniform(0, f.webhook_delay_ms / 1000) if f.webhook_delay_ms else 0.0
        for _ in range(copies):
            _spawn(app, _deliver_later(app, sender, event, delay))


async def _deliver_later(
    app: web.Application, sender: WebhookSender, event: dict[str, Any], delay: float
) -> None:
    if delay:
        await asyncio.sleep(delay)
    if await sender.deliver(event):
        app[STATE_KEY].webhooks_sent += 1


def _payout_json(p: Payout) -> dict[str, Any]:
    return {
        "id": p.id,
        "external_reference": p.external_reference,
        "method": p.method,
        "amount": p.amount,
        "currency": p.currency,
        "end_to_end_id": p.end_to_end_id,
        "status": p.status,
        "failure_reason": p.failure_reason,
        "recipient": {
            k: v for k, v in p.destination.items() if k in ("name", "ispb", "key_type", "bank")
        },
        "created_at": p.created_at.isoformat(),
        "settled_at": p.settled_at.isoformat() if p.settled_at else None,
        "returned": p.refunded,
        "returns": list(p.returns.values()),
    }


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def error_body(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> dict[str, Any]:
    if request.path == TOKEN_PATH:
        return {"error": "temporarily_unavailable", "error_description": f"{title}: {detail}"}
    return {"error": {"code": code, "message": f"{title}: {detail}"}}


# --- OAuth2 ----------------------------------------------------------------------


async def issue_token(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            client_id = secret = None
    state = request.app[STATE_KEY]
    if not (
        isinstance(client_id, str)
        and isinstance(secret, str)
        and hmac.compare_digest(client_id.encode(), state.client_id.encode())
        and hmac.compare_digest(secret.encode(), state.client_secret.encode())
    ):
        return web.json_response({"error": "invalid_client"}, status=401)
    now = _now(request.app)
    if len(state.tokens) >= MAX_TOKENS:
        state.tokens = {t: e for t, e in state.tokens.items() if e > now}
        while len(state.tokens) >= MAX_TOKENS:
            del state.tokens[next(iter(state.tokens))]
    token = secrets.token_urlsafe(32)
    state.tokens[token] = now + timedelta(seconds=TOKEN_TTL_SECONDS)
    response = web.json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECONDS}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def bearer_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)  # type: ignore[no-any-return]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expires = (
        request.app[STATE_KEY].tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    )
    if expires is None or expires <= _now(request.app):
        return _error(401, "UNAUTHORIZED", "missing, unknown or expired bearer token")
    return await handler(request)  # type: ignore[no-any-return]


# --- DICT and payouts ---------------------------------------------------------------


def _lookup(state: PspState, key: str) -> tuple[str, dict[str, str]] | None:
    for kt in KeyType:
        normalized = normalize_key(kt, key)
        if normalized is not None and normalized in state.dict_keys:
            entry = state.dict_keys[normalized]
            if entry["type"] == kt.value:
                return normalized, entry
    return None


async def get_dict_key(request: web.Request) -> web.Response:
    found = _lookup(request.app[STATE_KEY], request.match_info["key"])
    if found is None:
        return _error(404, "PIX_KEY_NOT_FOUND", "no such key in DICT")
    key, entry = found
    return web.json_response(
        {
            "key": key,
            "key_type": entry["type"],
            "name": entry["name"],
            "ispb": entry["ispb"],
            "account": entry.get("account", ""),
        }
    )


def _amount(body: dict[str, Any]) -> int | None:
    value = body.get("amount")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT:
        return None
    return value


async def create_payout(request: web.Request) -> web.Response:
    app = request.app
    state = app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "BAD_REQUEST", "invalid JSON")
    if not isinstance(body, dict):
        return _error(400, "BAD_REQUEST", "body must be an object")
    ref = body.get("external_reference")
    amount = _amount(body)
    method = body.get("method")
    if not isinstance(ref, str) or not 1 <= len(ref) <= 128 or amount is None:
        return _error(400, "BAD_REQUEST", "external_reference and a positive amount are required")
    if body.get("currency", "BRL") != "BRL" or method not in ("PIX", "TED"):
        return _error(400, "BAD_REQUEST", "method PIX or TED in BRL")
    existing = state.payouts_by_ref.get(ref)
    if existing is not None:
        # Idempotent by our reference: a retry after a lost answer finds the first.
        payout = state.payouts[existing]
        if payout.amount != amount or payout.method != method:
            return _error(409, "CONFLICT", "external_reference reused with other fields")
        return web.json_response(_payout_json(payout), status=200)
    if state.count() >= MAX_OBJECTS:
        return _error(503, "CAPACITY", "simulator is full; reset it")
    destination: dict[str, Any]
    if method == "PIX":
        found = _lookup(state, str(body.get("pix_key", "")))
        if found is None:
            return _error(422, "PIX_KEY_NOT_FOUND", "the PIX key is not in DICT")
        key, entry = found
        destination = {"key": key, "key_type": entry["type"], **entry}
    else:
        account = body.get("bank_account")
        if not isinstance(account, dict) or not all(
            isinstance(account.get(k), str) and account.get(k)
            for k in ("bank_code", "branch", "account_number")
        ):
            return _error(400, "BAD_REQUEST", "bank_account with bank_code/branch/account_number")
        if account["bank_code"] == "000":
            return _error(422, "INVALID_BANK", "unknown bank code")
        destination = {"bank": account["bank_code"], "name": str(account.get("holder_name", ""))}
    now = _now(app)
    payout = Payout(
        id=f"po_{uuid.uuid4().hex}",
        external_reference=ref,
        method=method,
        amount=amount,
        currency="BRL",
        destination=destination,
        end_to_end_id=end_to_end_id(CLIENT_ISPB, now, _suffix()) if method == "PIX" else "",
        status="ACCEPTED",
        created_at=now,
    )
    state.payouts[payout.id] = payout
    state.payouts_by_ref[ref] = payout.id
    _spawn(app, _settle_payout(app, payout))
    if state.rng.random() < state.faults.timeout_after_accept_rate:
        # Accepted and stored, but the caller never hears it: only the status
        # query (or a retry with the same reference) tells it so.
        await asyncio.sleep(state.faults.timeout_after_accept_ms / 1000)
        return _error(504, "GATEWAY_TIMEOUT", "injected timeout after accept")
    return web.json_response(_payout_json(payout), status=201)


async def _settle_payout(app: web.Application, payout: Payout) -> None:
    state = app[STATE_KEY]
    await asyncio.sleep(state.faults.settle_delay_ms / 1000)
    processing = _event("payout.processing", _payout_json(payout), _now(app))
    if state.rng.random() < state.faults.reject_rate:
        payout.status, payout.failure_reason = "FAILED", "REJECTED_BY_RECEIVER"
        final = _event("payout.failed", _payout_json(payout), _now(app))
    else:
        payout.status, payout.settled_at = "SETTLED", _now(app)
        state.settlements.append(
            ReportLine(
                line=0,
                psp_reference=payout.end_to_end_id or payout.id,
                external_reference=payout.external_reference,
                amount=payout.amount,
                currency=payout.currency,
                type=f"{payout.method}_OUT",
                settled_at=payout.settled_at,
            )
        )
        final = _event("payout.settled", _payout_json(payout), _now(app))
    await _notify(app, [processing, final])


async def get_payout(request: web.Request) -> web.Response:
    payout = request.app[STATE_KEY].payouts.get(request.match_info["id"])
    if payout is None:
        return _error(404, "NOT_FOUND", "no such payout")
    return web.json_response(_payout_json(payout))


async def find_payouts(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    ref = request.query.get("external_reference", "")
    found = state.payouts_by_ref.get(ref)
    items = [_payout_json(state.payouts[found])] if found else []
    return web.json_response({"payouts": items})


# --- PIX charges (cob) -------------------------------------------------------------


def _cob_json(c: Cob) -> dict[str, Any]:
    return {
        "txid": c.txid,
        "amount": c.amount,
        "key": c.key,
        "external_reference": c.external_reference,
        "description": c.description,
        "status": c.status,
        "expires_at": c.expires_at.isoformat(),
        "end_to_end_id": c.end_to_end_id,
        "paid_at": c.paid_at.isoformat() if c.paid_at else None,
    }


async def put_cob(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    txid = request.match_info["txid"]
    if not TXID.fullmatch(txid):
        return _error(400, "TXID_INVALID", "txid must be [a-zA-Z0-9]{26,35}")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "BAD_REQUEST", "invalid JSON")
    amount = _amount(body) if isinstance(body, dict) else None
    if amount is None or not isinstance(body.get("external_reference"), str):
        return _error(400, "BAD_REQUEST", "amount and external_reference are required")
    existing = state.cobs.get(txid)
    if existing is not None:
        if existing.amount != amount:
            return _error(409, "CONFLICT", "txid reused with another amount")
        return web.json_response(_cob_json(existing))
    if state.count() >= MAX_OBJECTS:
        return _error(503, "CAPACITY", "simulator is full; reset it")
    seconds = body.get("expiration_seconds", 3600)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 60 <= seconds <= 86400 * 30:
        return _error(400, "BAD_REQUEST", "expiration_seconds within 60..2592000")
    cob = Cob(
        txid=txid,
        amount=amount,
        key=str(body.get("key", "")),
        external_reference=body["external_reference"],
        description=str(body.get("description", ""))[:140],
        expires_at=_now(request.app) + timedelta(seconds=seconds),
    )
    state.cobs[txid] = cob
    return web.json_response(_cob_json(cob), status=201)


async def get_cob(request: web.Request) -> web.Response:
    cob = request.app[STATE_KEY].cobs.get(request.match_info["txid"])
    if cob is None:
        return _error(404, "NOT_FOUND", "no such cob")
    if cob.status == "ATIVA" and cob.expires_at <= _now(request.app):
        cob.status = "REMOVIDA_PELO_PSP"
    return web.json_response(_cob_json(cob))


async def delete_cob(request: web.Request) -> web.Response:
    cob = request.app[STATE_KEY].cobs.get(request.match_info["txid"])
    if cob is None:
        return _error(404, "NOT_FOUND", "no such cob")
    if cob.status == "CONCLUIDA":
        return _error(422, "COB_PAID", "a paid charge cannot be removed")
    cob.status = "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    return web.json_response(_cob_json(cob))


async def admin_pay_cob(request: web.Request) -> web.Response:
    """A payer at another bank pays the charge (PIX recebido)."""
    app = request.app
    state = app[STATE_KEY]
    cob = state.cobs.get(request.match_info["txid"])
    if cob is None:
        return web.json_response({"error": "no such cob"}, status=404)
    now = _now(app)
    if cob.status == "ATIVA" and cob.expires_at <= now:
        cob.status = "REMOVIDA_PELO_PSP"
    if cob.status != "ATIVA":
        return web.json_response({"error": f"cob is {cob.status}"}, status=422)
    cob.status, cob.paid_at = "CONCLUIDA", now
    cob.end_to_end_id = end_to_end_id("60701190", now, _suffix())
    cob.payer_name = "Pagador Simulado"
    state.settlements.append(
        ReportLine(
            line=0,
            psp_reference=cob.end_to_end_id,
            external_reference=cob.external_reference,
            amount=cob.amount,
            currency="BRL",
            type="PIX_IN",
            settled_at=now,
        )
    )
    await _notify(app, [_event("pix.received", _cob_json(cob), now)])
    return web.json_response(_cob_json(cob))


async def pix_refund(request: web.Request) -> web.Response:
    """Devolução of a received PIX (API Pix `/pix/{e2eid}/devolucao/{id}`)."""
    app = request.app
    state = app[STATE_KEY]
    e2e, refund_id = request.match_info["e2eid"], request.match_info["id"]
    cob = next((c for c in state.cobs.values() if c.end_to_end_id == e2e), None)
    if cob is None:
        return _error(404, "NOT_FOUND", "no received PIX with that endToEndId")
    body = await request.json()
    amount = _amount(body) if isinstance(body, dict) else None
    if amount is None:
        return _error(400, "BAD_REQUEST", "amount is required")
    if refund_id in cob.refunds:
        return web.json_response(cob.refunds[refund_id])
    refunded = sum(int(r["amount"]) for r in cob.refunds.values())
    if refunded + amount > cob.amount:
        return _error(422, "REFUND_EXCEEDS", "more than was received")
    now = _now(app)
    refund = {"id": refund_id, "e2eid": e2e, "amount": amount, "status": "DEVOLVIDO"}
    cob.refunds[refund_id] = refund
    state.settlements.append(
        ReportLine(
            0, f"D{e2e[1:]}{refund_id}"[:128], cob.external_reference, amount, "BRL", "REFUND", now
        )
    )
    await _notify(app, [_event("pix.refunded", dict(refund), now)])
    return web.json_response(refund, status=201)


async def admin_return_payout(request: web.Request) -> web.Response:
    """The receiving bank returns (part of) a settled PIX payout: a devolução with
    its own id and endToEndId (`D...`), notified as `payout.returned` and listed
    in the report as a REFUND under the payout's reference. Idempotent by id."""
    app = request.app
    state = app[STATE_KEY]
    e2e, return_id = request.match_info["e2eid"], request.match_info["id"]
    if not _RETURN_ID.fullmatch(return_id):
        return web.json_response({"error": "id must be [a-zA-Z0-9]{1,35}"}, status=400)
    payout = next((p for p in state.payouts.values() if p.end_to_end_id == e2e), None)
    if payout is None:
        return web.json_response({"error": "no PIX payout with that endToEndId"}, status=404)
    try:
        body = await request.json()
    except ValueError:
        body = None
    amount = _amount(body) if isinstance(body, dict) else None
    reason = body.get("reason", "MD06") if isinstance(body, dict) else None
    if amount is None or reason not in RETURN_REASONS:
        return web.json_response(
            {"error": f"amount and a reason in {sorted(RETURN_REASONS)}"}, status=400
        )
    existing = payout.returns.get(return_id)
    if existing is not None:
        if existing["amount"] != amount:
            return web.json_response({"error": "id reused with another amount"}, status=409)
        return web.json_response(existing)
    if payout.status != "SETTLED":
        return web.json_response({"error": f"payout is {payout.status}"}, status=422)
    if payout.refunded + amount > payout.amount:
        left = payout.amount - payout.refunded
        return web.json_response({"error": f"at most {left} can still be returned"}, status=422)
    if len(payout.returns) >= MAX_RETURNS_PER_PAYOUT:
        return web.json_response({"error": "too many returns"}, status=422)
    now = _now(app)
    ispb = str(payout.destination.get("ispb", ""))
    ispb = ispb if ISPB.fullmatch(ispb) else PSP_ISPB
    record = {
        "id": return_id,
        "rtr_id": "D" + end_to_end_id(ispb, now, _suffix())[1:],
        "end_to_end_id": e2e,
        "payout_id": payout.id,
        "external_reference": payout.external_reference,
        "amount": amount,
        "reason": reason,
        "status": "DEVOLVIDO",
        "returned_at": now.isoformat(),
    }
    payout.returns[return_id] = record
    payout.refunded += amount
    state.settlements.append(
        ReportLine(0, record["rtr_id"], payout.external_reference, amount, "BRL", "REFUND", now)
    )
    await _notify(app, [_event("payout.returned", dict(record), now)])
    return web.json_response(record, status=201)


# --- cards ----------------------------------------------------------------------------


def _card_json(c: CardCharge) -> dict[str, Any]:
    data = asdict(c)
    data["refund_ids"] = sorted(c.refund_ids)
    data["created_at"] = c.created_at.isoformat()
    data["captured_at"] = c.captured_at.isoformat() if c.captured_at else None
    return data


async def create_card_charge(request: web.Request) -> web.Response:
    """Authorize: tokens `tok_ok_*` pass, `tok_challenge_*` need a challenge
    (code 123456), `tok_declined_*` are declined."""
    state = request.app[STATE_KEY]
    body = await request.json()
    amount = _amount(body) if isinstance(body, dict) else None
    token, ref = body.get("card_token"), body.get("external_reference")
    if amount is None or not isinstance(token, str) or not isinstance(ref, str):
        return _error(400, "BAD_REQUEST", "card_token, amount and external_reference")
    if ref in state.cards_by_ref:
        return web.json_response(_card_json(state.cards[state.cards_by_ref[ref]]))
    if token.startswith("tok_declined"):
        return _error(422, "CARD_DECLINED", "the issuer declined the card")
    if not token.startswith(("tok_ok", "tok_challenge")):
        return _error(422, "CARD_TOKEN_INVALID", "unknown card token")
    charge = CardCharge(
        id=f"ch_{uuid.uuid4().hex}",
        external_reference=ref,
        amount=amount,
        currency="BRL",
        brand="VISA",
        last4="4242",
        status="REQUIRES_CHALLENGE" if token.startswith("tok_challenge") else "AUTHORIZED",
        created_at=_now(request.app),
    )
    state.cards[charge.id] = charge
    state.cards_by_ref[ref] = charge.id
    return web.json_response(_card_json(charge), status=201)


def _card(request: web.Request) -> CardCharge | None:
    return request.app[STATE_KEY].cards.get(request.match_info["id"])


async def card_challenge(request: web.Request) -> web.Response:
    charge = _card(request)
    if charge is None:
        return _error(404, "NOT_FOUND", "no such charge")
    body = await request.json()
    if charge.status == "AUTHORIZED":
        return web.json_response(_card_json(charge))
    if charge.status != "REQUIRES_CHALLENGE":
        return _error(422, "INVALID_STATE", f"charge is {charge.status}")
    if not isinstance(body, dict) or body.get("response") != CHALLENGE_CODE:
        charge.status = "DECLINED"
        return _error(422, "CHALLENGE_FAILED", "wrong challenge response")
    charge.status = "AUTHORIZED"
    return web.json_response(_card_json(charge))


async def card_capture(request: web.Request) -> web.Response:
    app = request.app
    charge = _card(request)
    if charge is None:
        return _error(404, "NOT_FOUND", "no such charge")
    if charge.status == "CAPTURED":
        return web.json_response(_card_json(charge))
    if charge.status != "AUTHORIZED":
        return _error(422, "INVALID_STATE", f"charge is {charge.status}")
    now = _now(app)
    charge.status, charge.captured_at = "CAPTURED", now
    app[STATE_KEY].settlements.append(
        ReportLine(
            0, charge.id, charge.external_reference, charge.amount, "BRL", "CARD_CAPTURE", now
        )
    )
    await _notify(app, [_event("card.captured", _card_json(charge), now)])
    return web.json_response(_card_json(charge))


async def card_refund(request: web.Request) -> web.Response:
    app = request.app
    charge = _card(request)
    if charge is None:
        return _error(404, "NOT_FOUND", "no such charge")
    body = await request.json()
    amount = _amount(body) if isinstance(body, dict) else None
    refund_id = str(body.get("refund_id", "")) if isinstance(body, dict) else ""
    if refund_id and refund_id in charge.refund_ids:
        return web.json_response(_card_json(charge))  # a retry of a refund already made
    if amount is None or charge.status != "CAPTURED" or charge.refunded + amount > charge.amount:
        return _error(422, "REFUND_INVALID", "refund of a captured charge, within its amount")
    charge.refunded += amount
    if refund_id:
        charge.refund_ids.add(refund_id)
    now = _now(app)
    app[STATE_KEY].settlements.append(
        ReportLine(
            0,
            f"{charge.id}-r{charge.refunded}",
            charge.external_reference,
            amount,
            "BRL",
            "REFUND",
            now,
        )
    )
    await _notify(app, [_event("card.refunded", _card_json(charge), now)])
    return web.json_response(_card_json(charge))


# --- settlement report -----------------------------------------------------------------


async def settlement_report(request: web.Request) -> web.Response:
    try:
        day = date.fromisoformat(request.match_info["date"])
    except ValueError:
        return _error(400, "BAD_REQUEST", "date must be YYYY-MM-DD")
    fmt = request.query.get("format", "csv").upper()
    if fmt not in ("CSV", "JSON"):
        return _error(400, "BAD_REQUEST", "format csv or json")
    skew = request.app[STATE_KEY].faults.report_payout_skew
    lines = [
        replace(ln, amount=ln.amount + skew) if skew and ln.type.endswith("_OUT") else ln
        for ln in request.app[STATE_KEY].settlements
        if ln.settled_at.astimezone(SAO_PAULO).date() == day
    ]
    content = render_report(lines, ReportFormat[fmt], report_date=day.isoformat())
    return web.Response(
        body=content, content_type="text/csv" if fmt == "CSV" else "application/json"
    )


# --- admin -------------------------------------------------------------------------------


async def admin_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.method == "POST":
        try:
            state.faults = PspFaults.from_json(await request.json())
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        state.rng = random.Random(state.faults.seed)  # noqa: S311 - simulation
    data = asdict(state.faults)
    data["webhooks_delivered"] = state.webhooks_sent
    return web.json_response(data)


async def admin_dict(request: web.Request) -> web.Response:
    """Register a DICT key, e.g. one of our own customers' keys (ispb 12345678,
    account = the customer's id) for on-us payments."""
    body = await request.json()
    if not isinstance(body, dict):
        return web.json_response({"error": "object expected"}, status=400)
    try:
        kt = KeyType(body.get("key_type"))
    except ValueError:
        return web.json_response({"error": "key_type invalid"}, status=400)
    key = normalize_key(kt, str(body.get("key", "")))
    if key is None:
        return web.json_response({"error": "key invalid for its type"}, status=400)
    request.app[STATE_KEY].dict_keys[key] = {
        "type": kt.value,
        "name": str(body.get("name", ""))[:100],
        "ispb": str(body.get("ispb", CLIENT_ISPB)),
        "account": str(body.get("account", "")),
    }
    return web.json_response({"key": key, "key_type": kt.value}, status=201)


async def _reset(app: web.Application) -> None:
    state = app[STATE_KEY]
    for task in list(state.tasks):
        task.cancel()
    fresh = PspState(client_id=state.client_id, client_secret=state.client_secret)
    tokens = state.tokens  # clients keep their tokens across a reset
    # The app is frozen once serving: reset the state object in place.
    for name in PspState.__dataclass_fields__:
        setattr(state, name, getattr(fresh, name))
    state.tokens = tokens


def _webhook_secret() -> bytes:
    path = os.environ.get("FINTECH_PSP_WEBHOOK_SECRET_FILE", "")
    if path and Path(path).exists():
        return base64.b64decode(Path(path).read_text().strip())
    return b""


def make_app() -> web.Application:
    app = build_app(
        SimulatorConfig(
            name="psp", error_body=error_body, reset_state=_reset, middlewares=(bearer_middleware,)
        ),
    )
    client_id, client_secret = client_credentials("psp", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    app[STATE_KEY] = PspState(client_id=client_id, client_secret=client_secret)
    app[WEBHOOK_KEY] = WebhookSender(
        os.environ.get("FINTECH_PSP_WEBHOOK_URL", ""),
        _webhook_secret(),
        os.environ.get("FINTECH_PSP_WEBHOOK_CA_FILE") or None,
    )

    async def _close(app: web.Application) -> None:
        for task in list(app[STATE_KEY].tasks):
            task.cancel()
        await app[WEBHOOK_KEY].close()

    app.on_cleanup.append(_close)
    r = app.router
    r.add_post(TOKEN_PATH, issue_token)
    r.add_get("/v1/dict/{key}", get_dict_key)
    r.add_post("/v1/payouts", create_payout)
    r.add_get("/v1/payouts", find_payouts)
    r.add_get("/v1/payouts/{id}", get_payout)
    r.add_put("/v1/cob/{txid}", put_cob)
    r.add_get("/v1/cob/{txid}", get_cob)
    r.add_delete("/v1/cob/{txid}", delete_cob)
    r.add_post("/v1/pix/{e2eid}/devolucao/{id}", pix_refund)
    r.add_post("/v1/card/charges", create_card_charge)
    r.add_post("/v1/card/charges/{id}/challenge", card_challenge)
    r.add_post("/v1/card/charges/{id}/capture", card_capture)
    r.add_post("/v1/card/charges/{id}/refund", card_refund)
    r.add_get("/v1/settlements/{date}", settlement_report)
    r.add_get("/__admin/psp", admin_faults)
    r.add_post("/__admin/psp", admin_faults)
    r.add_post("/__admin/dict", admin_dict)
    r.add_post("/__admin/cob/{txid}/pay", admin_pay_cob)
    r.add_post("/__admin/payouts/{e2eid}/devolucao/{id}", admin_return_payout)
    return app
