"""Hard rules: conditions that decline regardless of the score.

Each rule has a stable code (the proto `ReasonCode.code`) and a pt-BR text a
customer can read. The limits live in the scorecard model file, so a replay
with the same model version applies the same limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.risk.domain.features import Features

# Statuses as the KYC service and the Receita Federal name them. KYC may send
# its proto enum name (KYC_STATE_APPROVED) or the short one (APPROVED).
KYC_APPROVED = "APPROVED"
CPF_REGULAR = "REGULAR"


@dataclass(frozen=True)
class Reason:
    """One factor behind a decision (proto `ReasonCode`)."""

    code: str
    description: str  # pt-BR, customer-readable
    contribution: Decimal | None  # log-odds contribution; None for hard rules
    hard_rule: bool


@dataclass(frozen=True)
class HardRuleLimits:
    min_age_years: int
    min_monthly_income_minor: int
    min_months_of_history: int
    max_bureau_negative_records: int
    min_bureau_score: int  # only applied when a bureau score exists

    def __post_init__(self) -> None:
        assert 18 <= self.min_age_years <= 100, "legal age is at least 18"
        assert 0 <= self.min_monthly_income_minor <= 100_000_000
        assert 0 <= self.min_months_of_history <= 36
        assert 0 <= self.max_bureau_negative_records <= 1_000
        assert 0 <= self.min_bureau_score <= 1_000


# Rule order is the order reasons are reported in: identity and legal capacity
# first, then credit history, then the statements.
HARD_RULE_TEXTS: dict[str, str] = {
    "KYC_NOT_APPROVED": "Sua verificação de identidade ainda não foi aprovada.",
    "UNDER_MINIMUM_AGE": "É preciso ter pelo menos 18 anos para contratar crédito.",
    "CPF_IRREGULAR": "Seu CPF não está em situação regular na Receita Federal.",
    "BUREAU_NEGATIVE_RECORDS": "Há registros de dívidas em atraso no seu nome.",
    "BUREAU_SCORE_TOO_LOW": "Sua pontuação de crédito no birô está abaixo do mínimo.",
    "INSUFFICIENT_HISTORY": "O histórico de movimentação da sua conta é curto demais.",
    "INCOME_BELOW_FLOOR": "A renda identificada nos seus extratos está abaixo do mínimo.",
}


def age_in_years(birth_date: date, today: date) -> int:
    """Completed years; someone born on 29 Feb turns a year older on 1 Mar."""
    assert birth_date <= today, "birth date in the future"
    years = today.year - birth_date.year
    if (today.month, today.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def normalized_kyc_status(status: str) -> str:
    return status.strip().upper().removeprefix("KYC_STATE_")


def hard_rule_reasons(
    *,
    birth_date: date,
    cpf_status: str,
    kyc_status: str,
    bureau_score: int | None,
    bureau_negative_records: int,
    features: Features,
    limits: HardRuleLimits,
    today: date,
) -> tuple[Reason, ...]:
    """Every hard rule the applicant breaks, in `HARD_RULE_TEXTS` order."""
    broken: set[str] = set()
    if normalized_kyc_status(kyc_status) != KYC_APPROVED:
        broken.add("KYC_NOT_APPROVED")
    if birth_date > today or age_in_years(birth_date, today) < limits.min_age_years:
        broken.add("UNDER_MINIMUM_AGE")
    if cpf_status.strip().upper() != CPF_REGULAR:
        broken.add("CPF_IRREGULAR")
    if bureau_negative_records > limits.max_bureau_negative_records:
        broken.add("BUREAU_NEGATIVE_RECORDS")
    if bureau_score is not None and bureau_score < limits.min_bureau_score:
        broken.add("BUREAU_SCORE_TOO_LOW")
    if features.months_of_history < limits.min_months_of_history:
        broken.add("INSUFFICIENT_HISTORY")
    if features.monthly_income_minor < limits.min_monthly_income_minor:
        broken.add("INCOME_BELOW_FLOOR")
    return tuple(
        Reason(code=code, description=text, contribution=None, hard_rule=True)
        for code, text in HARD_RULE_TEXTS.items()
        if code in broken
    )
