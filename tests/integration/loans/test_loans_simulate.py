"""SimulateLoan and GetQuote through the real stack (Envoy, risk, Postgres, Redis)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest

from devstack.stack import Stack
from fintech.loans.v1 import loans_pb2
from services.loans.domain.schedule import FeePolicy, IofMode, System, quote
from tests.integration.edge import EdgeClient, error_reason, field_violations
from tests.integration.loans.loans_it_support import (
    Borrower,
    LoansClient,
    admin_sql,
    rpc_error,
    set_clock_offset,
)
from tests.support.tokens import mint_token

pytestmark = pytest.mark.integration

PRINCIPAL = 2_000_00  # R$ 2.000,00: inside every approving band's limit


def as_int(value: Any) -> int:
    return int(value or 0)


@pytest.fixture
def edge(stack: Stack) -> Any:
    client = EdgeClient(stack.https_url, str(stack.ca_file))
    yield client
    client.close()


def test_simulate_through_envoy_matches_the_domain_to_the_centavo(
    stack: Stack, borrower: Borrower, edge: EdgeClient
) -> None:
    token = mint_token(stack.secrets_dir, ["user"], subject=borrower.user_id)
    body = {
        "principal": {"currency_code": "BRL", "minor_units": str(PRINCIPAL)},
        "term_months": 12,
        "amortization_system": "AMORTIZATION_SYSTEM_PRICE",
    }
    reply = edge.request("POST", "/v1/loans:simulate", token=token, json=body)
    assert reply.status_code == 200, reply.text
    q = reply.json()
    assert q["name"].startswith("quotes/") and q["user"] == borrower.user
    assert q["risk_band"] in {"A", "B", "C", "D"}
    assert q["iof_payment"] == "IOF_PAYMENT_FINANCED"  # the default
    created = date.fromisoformat(q["schedule"][0]["due_date"])
    # Recompute from the quote's own inputs: the service must agree to the centavo.
    rate = Decimal(q["monthly_rate"])
    assert rate > 0
    expected = quote(
        principal=PRINCIPAL,
        term_months=12,
        system=System.PRICE,
        monthly_rate=rate,
        disbursement_date=_disbursement(q),
        first_due_date=created,
        iof_mode=IofMode.FINANCED,
        fees=FeePolicy(),
    )
    assert as_int(q["iof"]["minor_units"]) == expected.iof
    assert as_int(q["fees"]["minor_units"]) == expected.fees
    assert as_int(q["financed_amount"]["minor_units"]) == expected.financed_amount
    assert as_int(q["disbursed_amount"]["minor_units"]) == PRINCIPAL
    assert as_int(q["total_payable"]["minor_units"]) == expected.total_payable
    assert q["cet_monthly"] == str(expected.cet_monthly)
    assert q["cet_annual"] == str(expected.cet_annual)
    assert Decimal(q["cet_monthly"]) > rate  # IOF and the fee cost more than the rate
    amounts = [as_int(r["amount"]["minor_units"]) for r in q["schedule"]]
    assert amounts == [r.amount for r in expected.schedule]
    assert as_int(q["schedule"][-1]["balance"].get("minor_units")) == 0
    assert q["expire_time"] > q["create_time"]

    again = edge.request("GET", f"/v1/loans/{q['name']}", token=token)
    assert again.status_code == 200, again.text
    assert again.json() == q


def _disbursement(q: dict[str, Any]) -> date:
    """The quote's disbursement day: São Paulo's date of its creation."""
    created = datetime.fromisoformat(q["create_time"].replace("Z", "+00:00"))
    return created.astimezone(ZoneInfo("America/Sao_Paulo")).date()


def test_sac_and_upfront_iof(loans: LoansClient) -> None:
    q = loans.simulate(
        PRINCIPAL,
        6,
        system=loans_pb2.AMORTIZATION_SYSTEM_SAC,
        iof_payment=loans_pb2.IOF_PAYMENT_UPFRONT,
    )
    amort = [r.amortization.minor_units for r in q.schedule]
    assert len(set(amort[:-1])) == 1 and sum(amort) == PRINCIPAL
    assert q.financed_amount.minor_units == PRINCIPAL
    assert q.disbursed_amount.minor_units == PRINCIPAL - q.iof.minor_units - q.fees.minor_units
    assert sum(r.iof.minor_units for r in q.schedule) == q.iof.minor_units


def test_invalid_simulation_names_the_fields(
    stack: Stack, borrower: Borrower, edge: EdgeClient
) -> None:
    token = mint_token(stack.secrets_dir, ["user"], subject=borrower.user_id)
    body = {
        "principal": {"currency_code": "USD", "minor_units": "100"},
        "term_months": 60,
        "first_due_date": "2020-01-01",
    }
    reply = edge.request("POST", "/v1/loans:simulate", token=token, json=body)
    assert reply.status_code == 400, reply.text
    assert error_reason(reply) == "SIMULATION_INVALID"
    fields = field_violations(reply)
    assert {"principal.currency_code", "amortization_system"} <= set(fields)


def test_above_the_band_limit_is_refused_with_the_limit(loans: LoansClient) -> None:
    err = rpc_error(lambda: loans.simulate(900_000_00, 12))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "AMOUNT_ABOVE_LIMIT"
    assert 0 < int(err.metadata["max_amount_minor"]) < 900_000_00


def test_quote_expires_and_kyc_is_required(
    stack: Stack, borrower: Borrower, loans: LoansClient, clock: None
) -> None:
    q = loans.simulate(PRINCIPAL, 12)
    set_clock_offset(stack, 1)  # a day later: the 30-minute quote is gone
    err = rpc_error(lambda: loans.create(q.name))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "QUOTE_EXPIRED")
    set_clock_offset(stack, 0)
    q = loans.simulate(PRINCIPAL, 12)
    # Identity's copy only (what loans asks); risk's projection keeps APPROVED, so
    # the refusal is loans' own eligibility rule, not a risk decline.
    set_identity_kyc(stack, borrower.user_id, "PENDING")
    try:
        err = rpc_error(lambda: loans.create(q.name))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "KYC_NOT_APPROVED")
    finally:
        set_identity_kyc(stack, borrower.user_id, "APPROVED")


def set_identity_kyc(stack: Stack, user_id: str, status: str) -> None:
    admin_sql(stack, "UPDATE identity.users SET kyc_status = %s WHERE id = %s", (status, user_id))


def test_someone_elses_quote_is_not_visible(stack: Stack, loans: LoansClient) -> None:
    q = loans.simulate(PRINCIPAL, 3)
    stranger = LoansClient(stack, "00000000-0000-4000-8000-00000000abcd", ["user"])
    try:
        err = rpc_error(
            lambda: stranger.stub.GetQuote(
                loans_pb2.GetQuoteRequest(name=q.name), metadata=stranger.tokens.metadata()
            )
        )
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        stranger.close()
