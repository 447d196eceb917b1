"""Helpers for the risk / Open Finance integration tests and the risk bench.

Three independent views of the same system:
- the app's view: OpenFinanceService through Envoy over HTTPS/JSON, with the
  user's own access token (`OpenFinanceApp`);
- the lender's view: RiskService over gRPC with a service token (`RiskClient`);
- the bank's view: the Open Finance data-holder simulator, read directly with
  the consent id as bearer token (the simulator's documented simplification),
  and its admin API for faults and clock (`Bank`).
Counting transactions at the bank ourselves means an import is checked against
the source, not against numbers the risk service reports about itself.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import grpc
import httpx

from devstack.stack import Stack
from fintech.risk.v1 import risk_pb2, risk_pb2_grpc
from fintech.type.v1 import money_pb2
from services.platform.errors import ErrorDetails, details_from_rpc_error
from tests.integration.edge import EdgeClient, MobileApp, Session
from tests.support.tokens import mint_token

# Offsets of the simulators in the dev stack's port plan (docs/RISK.md).
OPEN_FINANCE_PORT_OFFSET = 50
BUREAU_PORT_OFFSET = 51

PERMISSIONS = ("ACCOUNTS_READ", "ACCOUNTS_TRANSACTIONS_READ", "RESOURCES_READ")
# The data holder id the risk service knows the simulator by.
DATA_HOLDER = "bancoex"

AWAITING = "CONSENT_STATE_AWAITING_AUTHORISATION"
AUTHORISED = "CONSENT_STATE_AUTHORISED"
REJECTED = "CONSENT_STATE_REJECTED"
REVOKED = "CONSENT_STATE_REVOKED"
EXPIRED = "CONSENT_STATE_EXPIRED"

RUNNING = "IMPORT_STATE_RUNNING"
WAITING_PROVIDER = "IMPORT_STATE_WAITING_PROVIDER"
SUCCEEDED = "IMPORT_STATE_SUCCEEDED"
FAILED = "IMPORT_STATE_FAILED"
IMPORT_TERMINAL = frozenset({SUCCEEDED, FAILED})

BRAZIL = ZoneInfo("America/Sao_Paulo")
BANK_PAGE_SIZE = 1000  # the accounts API's maximum page-size
CALL_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.25


def simulator_urls(stack: Stack) -> tuple[str, str]:
    """(open finance, bureau) base URLs of this stack's simulators.

    Taken from the stack when the dev stack exposes them, otherwise from the
    documented port plan (base + 50 / + 51).
    """
    urls = getattr(stack, "simulator_urls", None)
    if isinstance(urls, Mapping) and "open_finance" in urls and "bureau" in urls:
        return str(urls["open_finance"]), str(urls["bureau"])
    base = stack.infra.config.ports.base
    return (
        f"http://127.0.0.1:{base + OPEN_FINANCE_PORT_OFFSET}",
        f"http://127.0.0.1:{base + BUREAU_PORT_OFFSET}",
    )


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def key() -> str:
    return uuid.uuid4().hex


def as_int(value: Any) -> int:
    """int64 fields arrive as JSON strings (proto3 JSON mapping), int32 as numbers; absent = 0."""
    return int(value or 0)


# --- the bank (simulator) -------------------------------------------------------------


@dataclass(frozen=True)
class BankRead:
    status: int
    accounts: int
    transactions: int
    pages: int


class Bank:
    """The data-holder simulator: admin API (faults, clock) and direct reads."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=CALL_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def healthy(self) -> bool:
        try:
            return self.http.get("/__health").status_code == 200
        except httpx.HTTPError:
            return False

    def set_faults(self, **faults: Any) -> None:
        response = self.http.post("/__admin/faults", json=faults)
        assert response.status_code in (200, 204), response.text

    def reset_faults(self) -> None:
        self.set_faults()

    def faults(self) -> dict[str, Any]:
        response = self.http.get("/__admin/faults")
        assert response.status_code == 200, response.text
        return dict(response.json())

    @contextmanager
    def faulty(self, **faults: Any) -> Iterator[None]:
        """Faults for the duration of a block; always reset, even when the test fails."""
        self.set_faults(**faults)
        try:
            yield
        finally:
            self.reset_faults()

    def advance_clock(self, seconds: int) -> None:
        response = self.http.post("/__admin/clock", json={"advance_seconds": seconds})
        assert response.status_code in (200, 204), response.text

    def authorise(self, consent: Mapping[str, Any]) -> tuple[str, str]:
        """Play the customer at the bank: approve, return (authorisation code, state).

        `POST /__sim/consents/{id}/authorise` is what the customer's approval
        at the bank does. The customer's browser arrives there from the
        consent's authorisation URL, so its `redirect_uri` and `state` query
        parameters are what the bank gets; the answer's `redirect_url` is the
        redirect back to the app, carrying `code` and the echoed `state`.
        """
        query = parse_qs(urlsplit(consent["authorisation_uri"]).query)
        sent = {name: query[name][0] for name in ("redirect_uri", "state") if query.get(name)}
        response = self.http.post(f"/__sim/consents/{consent['consent_id']}/authorise", json=sent)
        assert response.status_code == 200, response.text
        back = parse_qs(urlsplit(response.json()["redirect_url"]).query)
        code = (back.get("code") or [""])[0]
        state = (back.get("state") or [sent.get("state", "")])[0]
        assert code, f"no authorisation code in the redirect: {response.text}"
        return code, state

    def read_all(self, consent_id: str, from_date: str | None, to_date: str | None) -> BankRead:
        """Page through every account's transactions as a bank client would.

        Returns the first non-200 status met (reads refused), or the totals.
        """
        headers = {
            "authorization": f"Bearer {consent_id}",
            "x-fapi-interaction-id": str(uuid.uuid4()),
        }
        accounts_resp = self.http.get("/open-banking/accounts/v2/accounts", headers=headers)
        if accounts_resp.status_code != 200:
            return BankRead(accounts_resp.status_code, 0, 0, 0)
        account_ids = [a["accountId"] for a in accounts_resp.json()["data"]]
        total = pages = 0
        params: dict[str, Any] = {"page-size": BANK_PAGE_SIZE}
        if from_date:
            params["fromBookingDate"] = from_date
        if to_date:
            params["toBookingDate"] = to_date
        for account_id in account_ids:
            page = 1
            while True:
                resp = self.http.get(
                    f"/open-banking/accounts/v2/accounts/{account_id}/transactions",
                    headers=headers,
                    params={**params, "page": page},
                )
                if resp.status_code != 200:
                    return BankRead(resp.status_code, len(account_ids), total, pages)
                body = resp.json()
                total += len(body["data"])
                pages += 1
                if not body.get("links", {}).get("next") or not body["data"]:
                    break
                page += 1
        return BankRead(200, len(account_ids), total, pages)


class BankLog:
    """The simulator's JSON access log (one line per request), read from an offset.

    Lets a test prove that the faults it switched on were actually met by the
    service's requests, rather than trusting that they were.
    """

    def __init__(self, stack: Stack) -> None:
        self.path = stack.logs_dir / "sim_open_finance.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def statuses(self, path_prefix: str = "/open-banking/") -> list[int]:
        """HTTP statuses the bank answered since this object was made."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            lines = log.read().decode(errors="replace").splitlines()
        found = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and str(entry.get("path", "")).startswith(path_prefix):
                found.append(int(entry["status"]))
        return found


# --- the app (edge) -------------------------------------------------------------------


def customer(edge: EdgeClient, cpf: str) -> Session:
    """The customer with this CPF, registered on first use."""
    return edge.returning_customer(f"risk-it-{cpf}@example.com", cpf=cpf)


class OpenFinanceApp(MobileApp):
    """The mobile app's calls to OpenFinanceService through Envoy, as one customer."""

    def create_consent(
        self,
        *,
        expire_in: timedelta = timedelta(days=90),
        permissions: Iterable[str] = PERMISSIONS,
    ) -> httpx.Response:
        body = {
            "data_holder": DATA_HOLDER,
            "permissions": list(permissions),
            "expire_time": rfc3339(datetime.now(UTC) + expire_in),
        }
        return self.call("POST", "/v1/open-finance/consents", mutating=True, json=body)

    def get_consent(self, name: str) -> httpx.Response:
        return self.call("GET", f"/v1/open-finance/{name}")

    def authorise(self, name: str, code: str, state: str) -> httpx.Response:
        return self.call(
            "POST",
            f"/v1/open-finance/{name}:authorise",
            mutating=True,
            json={"authorisation_code": code, "state": state},
        )

    def revoke(self, name: str) -> httpx.Response:
        return self.call("POST", f"/v1/open-finance/{name}:revoke", mutating=True, json={})

    def start_import(
        self, consent: str, from_date: str | None = None, to_date: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"consent": consent}
        if from_date:
            body["from_booking_date"] = from_date
        if to_date:
            body["to_booking_date"] = to_date
        return self.call("POST", "/v1/open-finance/imports", mutating=True, json=body)

    def get_import(self, name: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/open-finance/{name}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_import(
        self, name: str, timeout_s: float, until: frozenset[str] = IMPORT_TERMINAL
    ) -> tuple[dict[str, Any], set[str]]:
        """Poll the import until its state is in `until`; returns it and every state seen."""
        deadline = time.monotonic() + timeout_s
        seen: set[str] = set()
        while True:
            current = self.get_import(name)
            seen.add(current.get("state", ""))
            if current.get("state") in until:
                return current, seen
            assert time.monotonic() < deadline, f"import stuck after {timeout_s}s: {current}"
            time.sleep(POLL_INTERVAL_S)

    def authorised_consent(self, bank: Bank, **create: Any) -> dict[str, Any]:
        """create → bank authorisation → AuthoriseConsent; returns the AUTHORISED consent."""
        created = self.create_consent(**create)
        assert created.status_code == 200, created.text
        consent = created.json()
        assert consent["state"] == AWAITING, consent
        code, state = bank.authorise(consent)
        done = self.authorise(consent["name"], code, state)
        assert done.status_code == 200, done.text
        assert done.json()["state"] == AUTHORISED, done.json()
        return dict(done.json())

    def import_all(self, consent: str, timeout_s: float = 60.0, **dates: Any) -> dict[str, Any]:
        started = self.start_import(consent, **dates)
        assert started.status_code == 200, started.text
        finished, _ = self.wait_import(started.json()["name"], timeout_s)
        assert finished["state"] == SUCCEEDED, finished
        return finished


# --- the lender (gRPC, service token) -------------------------------------------------


def brl(minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="BRL", minor_units=minor)


class RiskClient:
    """RiskService over gRPC as the loans service calls it (role `service`)."""

    def __init__(self, target: str, secrets_dir: Path) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = risk_pb2_grpc.RiskServiceStub(self.channel)
        self.secrets_dir = secrets_dir
        self._token: tuple[str, float] | None = None

    def close(self) -> None:
        self.channel.close()

    def _metadata(self, idempotency_key: str | None = None) -> list[tuple[str, str]]:
        # Tokens live 5 minutes; re-mint well before that so long sessions never fail on it.
        if self._token is None or self._token[1] < time.monotonic():
            token = mint_token(self.secrets_dir, ["service"], subject="service:risk-tests")
            self._token = (token, time.monotonic() + 120)
        metadata = [("authorization", f"Bearer {self._token[0]}")]
        if idempotency_key:
            metadata.append(("idempotency-key", idempotency_key))
        return metadata

    def score(
        self,
        user: str,
        amount_minor: int,
        term_months: int = 12,
        idempotency_key: str | None = None,
        reference: str | None = None,
    ) -> risk_pb2.Decision:
        request = risk_pb2.ScoreRequest(
            user=user,
            requested_amount=brl(amount_minor),
            term_months=term_months,
            reference=reference or f"quotes/{uuid.uuid4()}",
        )
        return self.stub.Score(
            request, metadata=self._metadata(idempotency_key or key()), timeout=CALL_TIMEOUT_S
        )

    def replay(self, name: str) -> risk_pb2.ReplayDecisionResponse:
        return self.stub.ReplayDecision(
            risk_pb2.ReplayDecisionRequest(name=name),
            metadata=self._metadata(),
            timeout=CALL_TIMEOUT_S,
        )

    def get_decision(self, name: str) -> risk_pb2.Decision:
        return self.stub.GetDecision(
            risk_pb2.GetDecisionRequest(name=name),
            metadata=self._metadata(),
            timeout=CALL_TIMEOUT_S,
        )


def rpc_error(call: Any) -> ErrorDetails:
    """Run `call()` expecting a gRPC error; return its decoded status."""
    try:
        call()
    except grpc.RpcError as exc:
        return details_from_rpc_error(exc)
    raise AssertionError("the call succeeded but an error was expected")


def explain(decision: risk_pb2.Decision) -> str:
    """A readable one-line summary for assertion messages."""
    reasons = ", ".join(r.code for r in decision.reason_codes)
    outcome = risk_pb2.Outcome.Name(decision.outcome)
    return f"{outcome} score={decision.score} band={decision.band} reasons=[{reasons}]"


def decision_outcome(decision: risk_pb2.Decision) -> tuple[Any, ...]:
    """Everything a replay must reproduce (ReplayDecisionResponse.identical's list)."""
    return (
        decision.outcome,
        decision.score,
        decision.band,
        decision.probability_of_default,
        decision.max_amount.minor_units,
        decision.monthly_rate,
        decision.model_version,
        tuple((r.code, r.contribution, r.hard_rule) for r in decision.reason_codes),
    )


def today_in_brazil() -> date:
    """The customer's calendar day (booking dates are Brasília dates, UTC-3)."""
    return datetime.now(BRAZIL).date()


def months_ago(months: int, today: date | None = None) -> str:
    # Brasília's date, not UTC's: between 21:00 and 24:00 there UTC is already
    # tomorrow, and a to_booking_date in the customer's future is refused.
    today = today or today_in_brazil()
    return (today - timedelta(days=round(months * 30.44))).isoformat()
