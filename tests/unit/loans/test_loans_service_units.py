"""Service-side helpers without servers: quote JSON, remote-call policy, band cache,
wire shapes."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest

from fintech.loans.v1 import loans_pb2
from fintech.payments.v1 import payments_pb2
from services.loans import store, terms, wire
from services.loans.domain.calendar import add_months
from services.loans.domain.schedule import FeePolicy, IofMode, System, quote
from services.loans.payout import pix_key_type
from services.loans.remote import CallPolicy, RemoteService, RemoteUnavailableError
from services.loans.risk_gateway import CachedBands, RiskBand
from services.loans.service import QuoteCache, QuoteKey

D0 = date(2026, 5, 4)


def sample_terms() -> Any:
    return quote(
        principal=2_500_00,
        term_months=6,
        system=System.SAC,
        monthly_rate=Decimal("0.0229"),
        disbursement_date=D0,
        first_due_date=add_months(D0, 1),
        iof_mode=IofMode.UPFRONT,
        fees=FeePolicy(),
    )


def test_terms_json_round_trip() -> None:
    t = sample_terms()
    assert terms.from_json(json.loads(json.dumps(terms.to_json(t)))) == t


class FakeError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


async def no_sleep(_: float) -> None:
    return None


async def test_transient_errors_are_retried_and_answers_are_not() -> None:
    calls: list[str] = []

    async def flaky(request: str, **kw: Any) -> str:
        calls.append(request)
        if len(calls) < 3:
            raise FakeError(grpc.StatusCode.UNAVAILABLE)
        return "ok"

    remote = RemoteService("x", CallPolicy(attempts=3), sleep=no_sleep)
    assert await remote.call(flaky, "r") == "ok" and len(calls) == 3

    async def refuses(request: str, **kw: Any) -> str:
        calls.append(request)
        raise FakeError(grpc.StatusCode.FAILED_PRECONDITION)

    calls.clear()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await remote.call(refuses, "r")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION and len(calls) == 1


async def test_breaker_opens_on_transient_failures_only() -> None:
    async def down(request: str, **kw: Any) -> str:
        raise FakeError(grpc.StatusCode.UNAVAILABLE)

    remote = RemoteService("y", CallPolicy(attempts=1, breaker_fail_max=2), sleep=no_sleep)
    for _ in range(2):
        with pytest.raises(RemoteUnavailableError):
            await remote.call(down, "r")
    called = False

    async def up(request: str, **kw: Any) -> str:
        nonlocal called
        called = True
        return "ok"

    with pytest.raises(RemoteUnavailableError, match="breaker open"):
        await remote.call(up, "r")
    assert not called  # failing fast: the service was not even asked


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: str, ex: int) -> None:
        assert ex > 0
        self.data[key] = value.encode()

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)


class CountingRisk:
    def __init__(self) -> None:
        self.calls = 0

    async def score(
        self, user_id: str, amount_minor: int, term_months: int, *, key: str, reference: str
    ) -> RiskBand:
        self.calls += 1
        return RiskBand("APPROVED", "B", "0.0229", 3_000_000, "decisions/1", ("X: y",))


async def test_band_cache_asks_risk_once() -> None:
    risk = CountingRisk()
    redis = FakeRedis()
    now = [0.0]
    bands = CachedBands(risk, redis, clock=lambda: now[0])  # type: ignore[arg-type]
    first = await bands.band("u1", 100_00, 12, "k1")
    second = await bands.band("u1", 900_00, 24, "k2")
    assert first == second and risk.calls == 1
    assert second.rate == Decimal("0.0229") and not second.declined
    # Another process (no local copy) finds it in Redis.
    other = CachedBands(risk, redis)  # type: ignore[arg-type]
    assert await other.band("u1", 100_00, 12, "k3") == first and risk.calls == 1
    await bands.forget("u1")
    await bands.band("u1", 100_00, 12, "k4")
    assert risk.calls == 2


def test_loan_message_outstanding_and_states() -> None:
    t = sample_terms()
    loan_id = uuid.uuid4()
    now = datetime(2026, 5, 4, 15, tzinfo=UTC)
    row = store.LoanRow(
        id=loan_id, user_id="u1", quote_id=uuid.uuid4(), state="FUNDED",
        requested_principal=t.principal, approved_principal=t.principal,
        terms=terms.to_json(t), decline_reasons=[], risk_decision="decisions/1",
        pix_key_ciphertext=None, receivable_account="accounts/r", wallet_account="accounts/w",
        funded_on=D0, defaulted_on=None, accrued_through=D0, created_at=now, updated_at=now,
        fund_time=now, close_time=None,
    )  # fmt: skip
    starts = [D0, *(r.due_date for r in t.schedule[:-1])]
    insts = [
        store.InstallmentRow(
            loan_id,
            r.number,
            r.due_date,
            s,
            r.amount,
            r.interest,
            r.amortization,
            r.interest,
            r.amortization,
            0,
            0,
            False,
            Decimal(0),
            0,
            0,
            0,
            0,
            None,
            False,
            "CURRENT",
        )
        for r, s in zip(t.schedule, starts, strict=True)
    ]
    msg = wire.loan_message(row, insts, D0)
    assert msg.state == loans_pb2.LOAN_STATE_FUNDED
    assert msg.outstanding_principal.minor_units == t.financed_amount
    assert msg.outstanding_total.minor_units == t.financed_amount  # nothing accrued on day 0
    assert msg.delinquency_bucket == loans_pb2.DELINQUENCY_BUCKET_CURRENT
    assert {i.state for i in msg.installments} == {loans_pb2.INSTALLMENT_STATE_UPCOMING}
    late = wire.loan_message(row, insts, add_months(D0, 1).replace(day=20))
    assert late.installments[0].state == loans_pb2.INSTALLMENT_STATE_OVERDUE
    assert late.days_past_due == 16 and late.delinquency_bucket == (
        loans_pb2.DELINQUENCY_BUCKET_DPD_1_30
    )
    assert not msg.disbursement.pix_key  # PII never echoed


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("11144477735", "CPF"),
        ("11222333000181", "CNPJ"),
        ("AB12CD34EF5601", "CNPJ"),
        ("+5511987654321", "PHONE"),
        ("maria@example.com", "EMAIL"),
        (str(uuid.UUID(int=0x1234, version=4)), "EVP"),
        ("not a key", None),
        ("5511987654321", None),
    ],
)
def test_pix_key_types(key: str, kind: str | None) -> None:
    expected = None if kind is None else payments_pb2.PixKeyType.Value(f"PIX_KEY_TYPE_{kind}")
    assert pix_key_type(key) == expected


def test_quote_cache_returns_what_the_domain_computes_and_is_bounded() -> None:
    cache = QuoteCache(max_entries=2)
    key = QuoteKey(
        2_500_00, 6, System.SAC, Decimal("0.0229"), D0, add_months(D0, 1), IofMode.UPFRONT,
        FeePolicy(),
    )  # fmt: skip
    computed, as_json, template = cache.get(key)
    assert computed == sample_terms()
    assert terms.from_json(json.loads(as_json)) == computed
    assert template == wire.quote_message(computed)
    assert cache.get(key)[2] is template  # a hit
    for principal in (1_000_00, 1_100_00):
        cache.get(dataclasses.replace(key, principal=principal))
    assert cache.get(key)[2] is not template  # evicted, recomputed
