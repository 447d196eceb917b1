"""RiskService.Score as the loans service calls it (gRPC, service token), on the
simulators' fixed customers after a real Open Finance import: the salaried
profile is approved, the documented bad profiles are declined with reasons,
and the same inputs always give the same decision (replay included).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from devstack.stack import Stack
from fintech.risk.v1 import risk_pb2
from tests.integration.edge import EdgeClient
from tests.integration.risk.risk_it_cpfs import DECLINED_CPFS, SALARIED_CPF
from tests.integration.risk.risk_it_support import (
    Bank,
    OpenFinanceApp,
    RiskClient,
    customer,
    decision_outcome,
    explain,
    key,
    months_ago,
    rpc_error,
)
from tests.support.kyc_events import approve_kyc
from tests.support.tokens import mint_token

pytestmark = pytest.mark.integration

# What each documented profile must be declined for (docs/SIMULATORS.md, the
# bureau table, and the rules of docs/RISK_MODEL.md): at least one of these
# codes, whatever else is listed.
PROFILE_REASONS: dict[str, frozenset[str]] = {
    # 3 negative bureau records (> 2) and a checking account always negative.
    "overdraft": frozenset({"BUREAU_NEGATIVE_RECORDS", "FREQUENT_OVERDRAFT"}),
    # < 30 transactions a year: too little history or income to go on.
    "thin_file": frozenset({"INSUFFICIENT_HISTORY", "INCOME_BELOW_FLOOR", "SHORT_HISTORY"}),
    # Betting PIX every month; a hard rule (if any) lists only hard rules.
    "gambler": frozenset({"GAMBLING_SPENDING"}),
}
SMALL_LOAN_MINOR = 100_000  # R$ 1.000,00 over 12 months: within any approving band
TERM_MONTHS = 12


@pytest.fixture(scope="module")
def scored_users(stack: Stack, bank: Bank) -> Iterator[dict[str, str]]:
    """users/{id} of each fixed customer, with 12 months of statements imported."""
    edge = EdgeClient(stack.https_url, str(stack.ca_file))
    users: dict[str, str] = {}
    try:
        for profile, cpf in {"salaried": SALARIED_CPF, **DECLINED_CPFS}.items():
            app = OpenFinanceApp(edge, customer(edge, cpf))
            consent = app.authorised_consent(bank)
            app.import_all(consent["name"], from_date=months_ago(12), to_date=months_ago(0))
            users[profile] = app.user
            # The kyc service's approval, as its event: each decision below then
            # reflects the customer's own risk, not a missing KYC.
            approve_kyc(stack, app.user)
        yield users
    finally:
        edge.close()


def test_salaried_profile_is_approved(risk: RiskClient, scored_users: dict[str, str]) -> None:
    decision = risk.score(scored_users["salaried"], SMALL_LOAN_MINOR, TERM_MONTHS)
    assert decision.outcome == risk_pb2.OUTCOME_APPROVED, explain(decision)
    assert decision.user == scored_users["salaried"]
    assert decision.max_amount.minor_units >= SMALL_LOAN_MINOR
    assert decision.band in {"A", "B", "C", "D", "E"}
    assert 0 <= float(decision.probability_of_default) <= 1
    assert 0 <= decision.score <= 1000
    assert float(decision.monthly_rate) > 0
    assert decision.model_version and decision.name.startswith("decisions/")
    assert decision.features, "the decision records its inputs"


@pytest.mark.parametrize("profile", sorted(DECLINED_CPFS))
def test_bad_profiles_are_declined_with_readable_reasons(
    risk: RiskClient, scored_users: dict[str, str], profile: str
) -> None:
    decision = risk.score(scored_users[profile], SMALL_LOAN_MINOR, TERM_MONTHS)
    assert decision.outcome == risk_pb2.OUTCOME_DECLINED, (profile, explain(decision))
    assert decision.max_amount.minor_units == 0
    assert decision.reason_codes, f"{profile}: a decline without reasons"
    for reason in decision.reason_codes:
        assert reason.code and reason.code.isupper(), reason
        assert reason.description.strip(), reason
        # Scorecard factors carry their contribution; hard rules do not.
        assert bool(reason.contribution) != reason.hard_rule, reason
    codes = {r.code for r in decision.reason_codes}
    by_hard_rule = all(r.hard_rule for r in decision.reason_codes)
    if profile != "gambler" or not by_hard_rule:
        # The decline names what is wrong with this profile, not just anything.
        assert codes & PROFILE_REASONS[profile], (profile, explain(decision))


@pytest.mark.parametrize("profile", ["salaried", "gambler"])
def test_same_inputs_same_decision_and_replay_is_identical(
    risk: RiskClient, scored_users: dict[str, str], profile: str
) -> None:
    user = scored_users[profile]
    first = risk.score(user, SMALL_LOAN_MINOR, TERM_MONTHS)
    second = risk.score(user, SMALL_LOAN_MINOR, TERM_MONTHS)
    assert first.name != second.name  # two requests, two recorded decisions...
    assert decision_outcome(first) == decision_outcome(second)  # ...with one answer

    stored = risk.get_decision(first.name)
    assert decision_outcome(stored) == decision_outcome(first)
    assert {(f.name, f.value) for f in stored.features} == {
        (f.name, f.value) for f in first.features
    }
    replay = risk.replay(first.name)
    assert replay.identical, replay
    assert decision_outcome(replay.replayed) == decision_outcome(first)
    assert replay.original.name == first.name


def test_retried_score_with_the_same_key_is_the_same_decision(
    risk: RiskClient, scored_users: dict[str, str]
) -> None:
    # A retry is the same request (same reference) under the same key.
    idempotency_key, reference = key(), f"quotes/{key()}"
    user = scored_users["salaried"]
    first = risk.score(user, SMALL_LOAN_MINOR, TERM_MONTHS, idempotency_key, reference)
    retry = risk.score(user, SMALL_LOAN_MINOR, TERM_MONTHS, idempotency_key, reference)
    assert retry.name == first.name
    assert decision_outcome(retry) == decision_outcome(first)
    # The same key for a different request is refused, not silently answered.
    other = rpc_error(
        lambda: risk.score(user, SMALL_LOAN_MINOR * 2, TERM_MONTHS, idempotency_key, reference)
    )
    assert other.code == grpc.StatusCode.ALREADY_EXISTS, other


def test_score_is_internal_only(
    stack: Stack, risk: RiskClient, scored_users: dict[str, str]
) -> None:
    # A customer's own token must not reach Score (users never see raw features).
    user_id = scored_users["salaried"].removeprefix("users/")
    token = mint_token(stack.secrets_dir, ["user"], subject=user_id)
    request = risk_pb2.ScoreRequest(user=scored_users["salaried"], term_months=TERM_MONTHS)
    request.requested_amount.currency_code = "BRL"
    request.requested_amount.minor_units = SMALL_LOAN_MINOR
    error = rpc_error(
        lambda: risk.stub.Score(
            request,
            metadata=[("authorization", f"Bearer {token}"), ("idempotency-key", key())],
            timeout=10,
        )
    )
    assert error.code == grpc.StatusCode.PERMISSION_DENIED, error
