"""Properties of decisions (hypothesis): determinism, monotonicity, reasons, money."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.risk.domain.decision import (
    DECLINED,
    Applicant,
    RiskDecision,
    decide,
    list_models,
    load_model,
)
from services.risk.domain.features import Features

MODELS = list_models()
ratios = st.decimals(min_value=0, max_value=1, places=4)
wide_ratios = st.decimals(min_value=0, max_value=10, places=4)


@st.composite
def features(draw: st.DrawFn) -> Features:
    return Features(
        months_of_history=draw(st.integers(0, 12)),
        monthly_income_minor=draw(st.integers(0, 5_000_000)),
        income_stability=draw(ratios),
        recurring_obligations_minor=draw(st.integers(0, 5_000_000)),
        obligations_to_income=draw(wide_ratios),
        balance_volatility=draw(wide_ratios),
        days_in_overdraft=draw(st.integers(0, 366)),
        gambling_share=draw(ratios),
        transaction_count=draw(st.integers(0, 5_000)),
    )


@st.composite
def applicants(draw: st.DrawFn) -> Applicant:
    return Applicant(
        birth_date=draw(st.dates(date(1930, 1, 1), date(2026, 11, 29))),
        cpf_status=draw(st.sampled_from(["REGULAR", "REGULAR", "SUSPENSA", "CANCELADA"])),
        kyc_status=draw(st.sampled_from(["APPROVED", "KYC_STATE_APPROVED", "PENDING"])),
        bureau_score=draw(st.none() | st.integers(0, 1000)),
        bureau_negative_records=draw(st.integers(0, 5)),
    )


models = st.sampled_from(MODELS)
amounts = st.integers(1, 10_000_000)
days = st.dates(date(2026, 1, 1), date(2027, 12, 31))


@settings(max_examples=300, deadline=None)
@given(applicants(), features(), models, amounts, days)
def test_same_inputs_give_the_identical_decision(
    applicant: Applicant, f: Features, model: object, amount: int, today: date
) -> None:
    first = decide(applicant, f, model, amount, today)  # type: ignore[arg-type]
    # Rebuild every input from its stored form, as ReplayDecision does.
    again = decide(
        Applicant(**dataclasses.asdict(applicant)),
        Features.from_strings(f.as_strings()),
        load_model(model.version),  # type: ignore[attr-defined]
        amount,
        today,
    )
    assert again == first
    assert [r.code for r in again.reasons] == [r.code for r in first.reasons]


def _check_invariants(d: RiskDecision, amount: int) -> None:
    assert type(d.max_amount_minor) is int and type(d.score) is int
    assert 0 <= d.score <= 1000 and d.band in "ABCDE"
    assert Decimal(0) <= d.probability_of_default <= Decimal(1)
    if d.outcome == DECLINED:
        assert d.reasons, "a decline always says why"
        assert all(r.code and r.description for r in d.reasons)
        assert d.max_amount_minor == 0
    else:
        assert d.max_amount_minor > 0
        assert (d.outcome == "APPROVED_REDUCED") == (amount > d.max_amount_minor)
        assert d.annual_rate >= d.monthly_rate * 12  # compounding never lowers it


@settings(max_examples=300, deadline=None)
@given(applicants(), features(), models, amounts, days)
def test_every_decline_has_reasons_and_money_stays_integer(
    applicant: Applicant, f: Features, model: object, amount: int, today: date
) -> None:
    _check_invariants(decide(applicant, f, model, amount, today), amount)  # type: ignore[arg-type]


def _score(applicant: Applicant, f: Features, model: object) -> int:
    return decide(applicant, f, model, 100_000, date(2026, 11, 29)).score  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(applicants(), features(), models, ratios, ratios)
def test_more_stable_income_never_lowers_the_score(
    applicant: Applicant, f: Features, model: object, a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    less = dataclasses.replace(f, income_stability=low)
    more = dataclasses.replace(f, income_stability=high)
    assert _score(applicant, more, model) >= _score(applicant, less, model)


@settings(max_examples=300, deadline=None)
@given(applicants(), features(), models, st.integers(0, 10_000_000), st.integers(0, 10_000_000))
def test_higher_income_never_lowers_the_score(
    applicant: Applicant, f: Features, model: object, a: int, b: int
) -> None:
    low, high = sorted((a, b))
    less = dataclasses.replace(f, monthly_income_minor=low)
    more = dataclasses.replace(f, monthly_income_minor=high)
    assert _score(applicant, more, model) >= _score(applicant, less, model)


@settings(max_examples=300, deadline=None)
@given(applicants(), features(), models, st.integers(0, 1000), st.integers(0, 1000))
def test_higher_bureau_score_never_lowers_the_score(
    applicant: Applicant, f: Features, model: object, a: int, b: int
) -> None:
    low, high = sorted((a, b))
    less = dataclasses.replace(applicant, bureau_score=low)
    more = dataclasses.replace(applicant, bureau_score=high)
    assert _score(more, f, model) >= _score(less, f, model)


@settings(max_examples=200, deadline=None)
@given(applicants(), features(), models, ratios, st.integers(0, 1000))
def test_a_hard_rule_decline_does_not_depend_on_the_score_inputs(
    applicant: Applicant, f: Features, model: object, stability: Decimal, bureau: int
) -> None:
    d = decide(applicant, f, model, 100_000, date(2026, 11, 29))  # type: ignore[arg-type]
    if d.reasons and d.reasons[0].hard_rule and applicant.bureau_score is not None:
        better = dataclasses.replace(f, income_stability=stability)
        again = decide(applicant, better, model, 100_000, date(2026, 11, 29))  # type: ignore[arg-type]
        assert again.outcome == DECLINED
        assert [r.code for r in again.reasons] == [r.code for r in d.reasons]
