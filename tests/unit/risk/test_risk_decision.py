"""Hard rules, bands, outcomes and model files: worked examples."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from services.risk.domain.decision import (
    APPROVED,
    APPROVED_REDUCED,
    DECLINED,
    decide,
    list_models,
    load_model,
)
from services.risk.domain.rules import age_in_years
from services.risk.domain.scorecard import (
    Band,
    UnknownModelVersion,
    parse_model,
    score,
)
from tests.unit.risk.risk_support import TODAY, good_applicant, good_features

MODEL = load_model("scorecard-v1")


def _codes(decision: Any) -> list[str]:
    return [r.code for r in decision.reasons]


def test_a_strong_applicant_is_approved_in_band_a() -> None:
    d = decide(good_applicant(), good_features(), MODEL, 1_000_000, TODAY)
    assert d.outcome == APPROVED and d.band == "A"
    assert d.max_amount_minor == 5_000_000
    assert d.monthly_rate == Decimal("0.0149") and d.annual_rate == Decimal("0.1942")
    assert d.model_version == "scorecard-v1"
    # score = round((1 - PD) * 1000): PD 0.0093 → 991.
    assert d.probability_of_default == Decimal("0.0093") and d.score == 991
    assert d.reasons == ()  # nothing worse than the reference applicant


def test_more_than_the_band_allows_is_approved_reduced() -> None:
    d = decide(good_applicant(), good_features(), MODEL, 5_000_001, TODAY)
    assert d.outcome == APPROVED_REDUCED and d.max_amount_minor == 5_000_000


@pytest.mark.parametrize(
    ("applicant_changes", "feature_changes", "code"),
    [
        ({"kyc_status": "IN_REVIEW"}, {}, "KYC_NOT_APPROVED"),
        ({"kyc_status": "KYC_STATE_DECLINED"}, {}, "KYC_NOT_APPROVED"),
        ({"birth_date": date(2008, 11, 30)}, {}, "UNDER_MINIMUM_AGE"),
        ({"cpf_status": "SUSPENSA"}, {}, "CPF_IRREGULAR"),
        ({"bureau_negative_records": 3}, {}, "BUREAU_NEGATIVE_RECORDS"),
        ({"bureau_score": 199}, {}, "BUREAU_SCORE_TOO_LOW"),
        ({}, {"months_of_history": 5}, "INSUFFICIENT_HISTORY"),
        ({}, {"monthly_income_minor": 99_999}, "INCOME_BELOW_FLOOR"),
    ],
)
def test_each_hard_rule_declines_with_its_reason(
    applicant_changes: dict[str, Any], feature_changes: dict[str, Any], code: str
) -> None:
    d = decide(
        good_applicant(**applicant_changes), good_features(**feature_changes), MODEL, 100_000, TODAY
    )
    assert d.outcome == DECLINED and _codes(d) == [code]
    assert all(r.hard_rule and r.contribution is None and r.description for r in d.reasons)
    assert d.max_amount_minor == 0 and d.monthly_rate == 0 and d.annual_rate == 0


def test_hard_rules_at_their_limits_pass() -> None:
    d = decide(
        good_applicant(
            birth_date=date(2008, 11, 29),
            kyc_status="KYC_STATE_APPROVED",
            bureau_negative_records=2,
            bureau_score=200,
        ),
        good_features(months_of_history=6, monthly_income_minor=100_000),
        MODEL,
        100_000,
        TODAY,
    )
    assert not any(r.hard_rule for r in d.reasons)


def test_all_broken_rules_are_reported_in_a_fixed_order() -> None:
    d = decide(
        good_applicant(kyc_status="PENDING", cpf_status="CANCELADA", birth_date=date(2010, 1, 1)),
        good_features(monthly_income_minor=0, months_of_history=0),
        MODEL,
        100_000,
        TODAY,
    )
    assert _codes(d) == [
        "KYC_NOT_APPROVED",
        "UNDER_MINIMUM_AGE",
        "CPF_IRREGULAR",
        "INSUFFICIENT_HISTORY",
        "INCOME_BELOW_FLOOR",
    ]


def test_age_counts_completed_years() -> None:
    assert age_in_years(date(2008, 11, 29), date(2026, 11, 29)) == 18
    assert age_in_years(date(2008, 11, 30), date(2026, 11, 29)) == 17
    assert age_in_years(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_in_years(date(2008, 2, 29), date(2026, 3, 1)) == 18


@pytest.mark.parametrize(
    ("changes", "band"),
    [
        ({}, "A"),
        ({"income_stability": Decimal("0.6"), "monthly_income_minor": 300_000}, "B"),
        ({"income_stability": Decimal("0.4"), "monthly_income_minor": 200_000}, "C"),
        ({"income_stability": Decimal("0.3"), "days_in_overdraft": 40}, "D"),
        ({"income_stability": Decimal("0"), "days_in_overdraft": 90}, "E"),
    ],
)
def test_bands(changes: dict[str, Any], band: str) -> None:
    d = decide(good_applicant(bureau_score=600), good_features(**changes), MODEL, 100_000, TODAY)
    expected = {b.name: b for b in MODEL.bands}[band]
    assert d.band == band
    assert d.score >= expected.min_score
    if band == "E":
        assert d.outcome == DECLINED and d.reasons and not d.reasons[0].hard_rule
        assert d.max_amount_minor == 0
    else:
        assert d.outcome == APPROVED
        assert d.max_amount_minor == expected.max_amount_minor
        assert d.monthly_rate == expected.monthly_rate


def test_scorecard_decline_names_the_factors_that_pushed_pd_up() -> None:
    features = good_features(income_stability=Decimal("0.2"), gambling_share=Decimal("0.3"))
    d = decide(good_applicant(bureau_score=400), features, MODEL, 100_000, TODAY)
    assert d.outcome == DECLINED
    # Contributions vs the reference applicant: stability (0.8-0.2)/0.1*0.25 = 1.5,
    # gambling 30*0.04 = 1.2, bureau (600-400)/100*0.45 = 0.9.
    assert _codes(d) == ["UNSTABLE_INCOME", "GAMBLING_SPENDING", "LOW_BUREAU_SCORE"]
    assert [r.contribution for r in d.reasons] == [
        Decimal("1.5000"),
        Decimal("1.2000"),
        Decimal("0.9000"),
    ]


def test_pd_and_score_of_the_reference_applicant() -> None:
    # Every term at its baseline: log-odds = intercept = -2.9 → PD 0.0522 → score 948.
    reference = good_features(
        monthly_income_minor=300_000,
        income_stability=Decimal("0.8"),
        obligations_to_income=Decimal("0.3"),
        balance_volatility=Decimal("0.5"),
    )
    result = score(MODEL, reference, 600, 0)
    assert result.log_odds == Decimal("-2.9")
    assert result.probability_of_default == Decimal("0.0522")
    assert result.score == 948 and result.band.name == "B" and result.reasons == ()
    # An unknown bureau score counts as the reference value.
    assert score(MODEL, reference, None, 0).log_odds == Decimal("-2.9")


def test_annual_rate_is_compounded_monthly() -> None:
    band = Band(name="A", min_score=0, max_amount_minor=1, monthly_rate=Decimal("0.0200"))
    assert band.annual_rate == Decimal("0.2682")  # 1.02^12 - 1 = 0.26824...


def test_models_are_listed_and_one_is_active() -> None:
    versions = [m.version for m in list_models()]
    assert versions == ["scorecard-v2", "scorecard-v1"]
    assert load_model().version == "scorecard-v1"
    assert load_model("scorecard-v2").coefficients() != load_model().coefficients()
    with pytest.raises(UnknownModelVersion):
        load_model("scorecard-v0")


def _v1_document() -> dict[str, Any]:
    path = resources.files("services.risk").joinpath("models/scorecard-v1.json")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_a_model_with_a_sign_that_breaks_monotonicity_is_rejected() -> None:
    doc = copy.deepcopy(_v1_document())
    for term in doc["terms"]:
        if term["feature"] == "income_stability":
            term["coefficient"] = "0.1"
    with pytest.raises(AssertionError, match="wrong sign"):
        parse_model(doc)


def test_a_model_whose_better_band_costs_more_is_rejected() -> None:
    doc = copy.deepcopy(_v1_document())
    doc["bands"][0]["monthly_rate"] = "0.0500"
    with pytest.raises(AssertionError, match="lower rate"):
        parse_model(doc)


def test_requested_amount_must_be_positive_integer_minor_units() -> None:
    with pytest.raises(AssertionError):
        decide(good_applicant(), good_features(), MODEL, 0, TODAY)
    with pytest.raises(AssertionError):
        decide(good_applicant(), good_features(), MODEL, 100.0, TODAY)  # type: ignore[arg-type]


def test_the_domain_reads_no_clock_and_does_no_io() -> None:
    # `today`/`as_of` are parameters so a replay recomputes the same decision;
    # only scorecard.list_models reads files (the shipped model versions).
    folder = resources.files("services.risk").joinpath("domain")
    for name in ("statements", "features", "rules", "scorecard", "decision"):
        source = folder.joinpath(f"{name}.py").read_text(encoding="utf-8")
        for forbidden in (".now(", ".today(", "time.time", "open(", "socket", "asyncpg", "http"):
            assert forbidden not in source, f"{name}.py uses {forbidden}"
