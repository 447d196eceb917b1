"""Credit decision: hard rules first, then the scorecard (pure and deterministic).

Same (applicant, features, model, requested amount, today) → the same
`RiskDecision`, field for field and reason for reason, which is what
`ReplayDecision` relies on. The scorecard runs even after a hard-rule decline so
that PD, score and band are always recorded (and comparable in a re-score);
only the outcome, amount and rates say "declined".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.risk.domain.features import Features
from services.risk.domain.rules import Reason, hard_rule_reasons
from services.risk.domain.scorecard import (
    LOW_SCORE_REASON,
    ScorecardModel,
    list_models,
    load_model,
    score,
)

__all__ = [
    "APPROVED",
    "APPROVED_REDUCED",
    "DECLINED",
    "MAX_REQUESTED_AMOUNT_MINOR",
    "Applicant",
    "RiskDecision",
    "decide",
    "list_models",
    "load_model",
]

APPROVED = "APPROVED"
DECLINED = "DECLINED"
APPROVED_REDUCED = "APPROVED_REDUCED"
# R$ 1 bilhão: far above any band; larger means a unit mix-up upstream.
MAX_REQUESTED_AMOUNT_MINOR = 100_000_000_000


@dataclass(frozen=True)
class Applicant:
    birth_date: date
    cpf_status: str  # Receita Federal situation, "REGULAR" passes
    kyc_status: str  # "APPROVED" or "KYC_STATE_APPROVED" passes
    bureau_score: int | None  # 0..1000; None when the bureau has none
    bureau_negative_records: int

    def __post_init__(self) -> None:
        assert self.bureau_score is None or (
            type(self.bureau_score) is int and 0 <= self.bureau_score <= 1000
        ), "bureau score is 0..1000"
        assert type(self.bureau_negative_records) is int and self.bureau_negative_records >= 0
        assert self.bureau_negative_records <= 1_000_000
        assert len(self.cpf_status) <= 64 and len(self.kyc_status) <= 64


@dataclass(frozen=True)
class RiskDecision:
    outcome: str  # APPROVED | DECLINED | APPROVED_REDUCED
    probability_of_default: Decimal  # 4 dp
    score: int  # 0..1000
    band: str  # A..E
    max_amount_minor: int  # 0 when declined
    monthly_rate: Decimal  # 4 dp; 0 when declined
    annual_rate: Decimal  # (1 + monthly)^12 - 1, 4 dp; 0 when declined
    reasons: tuple[Reason, ...]  # most important first; never empty when declined
    model_version: str


def decide(
    applicant: Applicant,
    features: Features,
    model: ScorecardModel,
    requested_amount_minor: int,
    today: date,
) -> RiskDecision:
    assert type(requested_amount_minor) is int, "money is integer minor units"
    assert 0 < requested_amount_minor <= MAX_REQUESTED_AMOUNT_MINOR, "requested amount"

    result = score(model, features, applicant.bureau_score, applicant.bureau_negative_records)
    hard = hard_rule_reasons(
        birth_date=applicant.birth_date,
        cpf_status=applicant.cpf_status,
        kyc_status=applicant.kyc_status,
        bureau_score=applicant.bureau_score,
        bureau_negative_records=applicant.bureau_negative_records,
        features=features,
        limits=model.limits,
        today=today,
    )
    band = result.band
    if hard or band.declines:
        reasons = hard or result.reasons or (LOW_SCORE_REASON,)
        decision = RiskDecision(
            outcome=DECLINED,
            probability_of_default=result.probability_of_default,
            score=result.score,
            band=band.name,
            max_amount_minor=0,
            monthly_rate=Decimal("0.0000"),
            annual_rate=Decimal("0.0000"),
            reasons=reasons,
            model_version=model.version,
        )
    else:
        decision = RiskDecision(
            outcome=(
                APPROVED_REDUCED if requested_amount_minor > band.max_amount_minor else APPROVED
            ),
            probability_of_default=result.probability_of_default,
            score=result.score,
            band=band.name,
            max_amount_minor=band.max_amount_minor,
            monthly_rate=band.monthly_rate,
            annual_rate=band.annual_rate,
            reasons=result.reasons,
            model_version=model.version,
        )
    assert decision.outcome != DECLINED or decision.reasons, "every decline has a reason"
    return decision
