"""Logistic scorecard with versioned coefficients (`services/risk/models/*.json`).

    z  = intercept + sum(coef_i * (min(x_i, cap_i) - baseline_i) / scale_i)
    PD = 1 / (1 + e^-z)                      (float only here: exp has no Decimal
                                              equivalent we need; PD rounded to
                                              4 dp half-even right after)
    score = round_half_even((1 - PD) * 1000)

The linear part is exact Decimal arithmetic. `baseline` is a documented
reference applicant, so the intercept is that applicant's log-odds and each
term's value is its contribution relative to the reference: the reasons are
the terms that push the log-odds up the most. Loading asserts that every
coefficient has the sign that keeps the score monotone (more income, more
stable income, higher bureau score, longer history never raise PD).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from importlib import resources
from typing import Any

from services.risk.domain.features import Features
from services.risk.domain.rules import HardRuleLimits, Reason

CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)
PD_QUANTUM = Decimal("0.0001")
RATE_QUANTUM = Decimal("0.0001")
CONTRIBUTION_QUANTUM = Decimal("0.0001")
# e^50 is far beyond any meaningful odds; clamping keeps math.exp finite.
MAX_ABS_LOG_ODDS = Decimal(50)
MAX_REASONS = 5
MAX_MODEL_FILES = 100
BAND_NAMES = ("A", "B", "C", "D", "E")

# Scorecard inputs: the statement features plus the bureau's two figures.
# Sign each coefficient must have: -1 lowers PD as the value grows.
TERM_SIGNS: dict[str, int] = {
    "monthly_income_minor": -1,
    "income_stability": -1,
    "obligations_to_income": 1,
    "balance_volatility": 1,
    "days_in_overdraft": 1,
    "gambling_share": 1,
    "bureau_score": -1,
    "bureau_negative_records": 1,
    "months_of_history": -1,
}

# What a customer reads when a term is among the top factors (pt-BR).
REASON_TEXTS: dict[str, tuple[str, str]] = {
    "monthly_income_minor": (
        "LOW_INCOME",
        "A renda mensal identificada nos seus extratos é baixa.",
    ),
    "income_stability": ("UNSTABLE_INCOME", "Sua renda varia muito de um mês para outro."),
    "obligations_to_income": (
        "HIGH_OBLIGATIONS",
        "Suas contas fixas mensais comprometem boa parte da sua renda.",
    ),
    "balance_volatility": ("HIGH_BALANCE_VOLATILITY", "O saldo da sua conta oscila muito."),
    "days_in_overdraft": (
        "FREQUENT_OVERDRAFT",
        "Sua conta ficou com saldo negativo em muitos dias.",
    ),
    "gambling_share": (
        "GAMBLING_SPENDING",
        "Uma parte relevante dos seus gastos vai para apostas e jogos.",
    ),
    "bureau_score": ("LOW_BUREAU_SCORE", "Sua pontuação de crédito no birô é baixa."),
    "bureau_negative_records": (
        "BUREAU_NEGATIVE_RECORD_PRESENT",
        "Há registro de dívida em atraso no seu nome.",
    ),
    "months_of_history": ("SHORT_HISTORY", "Seu histórico de movimentação bancária é curto."),
}
LOW_SCORE_REASON = Reason(
    code="SCORE_BELOW_CUTOFF",
    description="Sua pontuação de crédito ficou abaixo do mínimo para aprovação.",
    contribution=None,
    hard_rule=False,
)


class UnknownModelVersion(KeyError):
    """No model file with that version."""


@dataclass(frozen=True)
class Term:
    name: str
    coefficient: Decimal
    baseline: Decimal
    scale: Decimal
    cap: Decimal

    def value(self, x: Decimal) -> Decimal:
        """Scaled distance from the baseline; values above `cap` count as `cap`."""
        return CTX.divide(CTX.subtract(min(x, self.cap), self.baseline), self.scale)

    def contribution(self, x: Decimal) -> Decimal:
        return CTX.multiply(self.coefficient, self.value(x))


@dataclass(frozen=True)
class Band:
    name: str
    min_score: int
    max_amount_minor: int  # 0 = the band declines
    monthly_rate: Decimal

    @property
    def declines(self) -> bool:
        return self.max_amount_minor == 0

    @property
    def annual_rate(self) -> Decimal:
        """(1 + m)^12 - 1, 4 dp half-even (compound, as rates are quoted in Brazil)."""
        compounded = CTX.power(CTX.add(Decimal(1), self.monthly_rate), 12)
        return CTX.subtract(compounded, Decimal(1)).quantize(RATE_QUANTUM, context=CTX)


@dataclass(frozen=True)
class ScorecardModel:
    version: str
    active: bool
    created_at: datetime
    activated_at: datetime | None  # None = never activated (e.g. a candidate for re-score)
    description: str
    intercept: Decimal
    terms: tuple[Term, ...]
    bands: tuple[Band, ...]  # best first
    limits: HardRuleLimits
    max_reasons: int

    def coefficients(self) -> dict[str, str]:
        """Feature name → coefficient as a decimal string (proto `ModelVersion`)."""
        return {term.name: str(term.coefficient) for term in self.terms}

    def band_for(self, score: int) -> Band:
        for band in self.bands:
            if score >= band.min_score:
                return band
        raise AssertionError("the last band starts at 0")


@dataclass(frozen=True)
class ScoreResult:
    log_odds: Decimal
    probability_of_default: Decimal  # 4 dp
    score: int  # 0..1000
    band: Band
    reasons: tuple[Reason, ...]  # terms pushing PD up, largest first


def term_inputs(
    features: Features, bureau_score: int | None, bureau_negative_records: int
) -> dict[str, Decimal | None]:
    """The value of each scorecard input; None = unknown (counted at the baseline)."""
    assert bureau_score is None or 0 <= bureau_score <= 1000, "bureau score is 0..1000"
    assert 0 <= bureau_negative_records <= 1_000_000
    return {
        "monthly_income_minor": Decimal(features.monthly_income_minor),
        "income_stability": features.income_stability,
        "obligations_to_income": features.obligations_to_income,
        "balance_volatility": features.balance_volatility,
        "days_in_overdraft": Decimal(features.days_in_overdraft),
        "gambling_share": features.gambling_share,
        "bureau_score": None if bureau_score is None else Decimal(bureau_score),
        "bureau_negative_records": Decimal(bureau_negative_records),
        "months_of_history": Decimal(features.months_of_history),
    }


def score(
    model: ScorecardModel,
    features: Features,
    bureau_score: int | None,
    bureau_negative_records: int,
) -> ScoreResult:
    inputs = term_inputs(features, bureau_score, bureau_negative_records)
    contributions: list[tuple[int, Term, Decimal]] = []
    log_odds = model.intercept
    for index, term in enumerate(model.terms):
        x = inputs[term.name]
        # An unknown bureau score is neither rewarded nor punished: the
        # applicant counts as the reference applicant for that term.
        c = Decimal(0) if x is None else term.contribution(x)
        log_odds = CTX.add(log_odds, c)
        contributions.append((index, term, c))

    clamped = min(max(log_odds, -MAX_ABS_LOG_ODDS), MAX_ABS_LOG_ODDS)
    pd_float = 1.0 / (1.0 + math.exp(-float(clamped)))
    pd = Decimal(pd_float).quantize(PD_QUANTUM, rounding=ROUND_HALF_EVEN, context=CTX)
    points = CTX.multiply(CTX.subtract(Decimal(1), pd), Decimal(1000))
    score_value = int(points.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=CTX))
    assert 0 <= score_value <= 1000

    # Largest push first; equal pushes keep the model's term order, so the
    # reason order is a pure function of the inputs.
    pushing_up = sorted(
        (item for item in contributions if item[2] > 0), key=lambda item: (-item[2], item[0])
    )
    reasons = tuple(
        Reason(
            code=REASON_TEXTS[term.name][0],
            description=REASON_TEXTS[term.name][1],
            contribution=c.quantize(CONTRIBUTION_QUANTUM, rounding=ROUND_HALF_EVEN, context=CTX),
            hard_rule=False,
        )
        for _, term, c in pushing_up[: model.max_reasons]
    )
    return ScoreResult(
        log_odds=log_odds,
        probability_of_default=pd,
        score=score_value,
        band=model.band_for(score_value),
        reasons=reasons,
    )


# ---------------------------------------------------------------- loading


def parse_model(data: Mapping[str, Any]) -> ScorecardModel:
    """Build and validate a model from its JSON document (docs/RISK_MODEL.md)."""
    terms = tuple(
        Term(
            name=str(t["feature"]),
            coefficient=Decimal(str(t["coefficient"])),
            baseline=Decimal(str(t["baseline"])),
            scale=Decimal(str(t["scale"])),
            cap=Decimal(str(t["cap"])),
        )
        for t in data["terms"]
    )
    names = [t.name for t in terms]
    assert sorted(names) == sorted(TERM_SIGNS), f"terms must be exactly {sorted(TERM_SIGNS)}"
    for t in terms:
        assert t.scale > 0 and t.cap > 0, f"{t.name}: scale and cap must be positive"
        assert t.coefficient.is_finite() and abs(t.coefficient) <= 10, f"{t.name}: coefficient"
        # Zero is allowed (term switched off); a wrong sign would break monotonicity.
        assert t.coefficient * TERM_SIGNS[t.name] >= 0, f"{t.name}: coefficient has wrong sign"

    bands = tuple(
        Band(
            name=str(b["band"]),
            min_score=int(b["min_score"]),
            max_amount_minor=int(b["max_amount_minor"]),
            monthly_rate=Decimal(str(b["monthly_rate"])),
        )
        for b in data["bands"]
    )
    assert tuple(b.name for b in bands) == BAND_NAMES, "bands are A..E, best first"
    assert bands[-1].min_score == 0 and bands[0].min_score <= 1000
    for better, worse in itertools.pairwise(bands):
        assert better.min_score > worse.min_score, "band cut-offs strictly decreasing"
        assert better.max_amount_minor >= worse.max_amount_minor, "better band, larger amount"
        assert worse.declines or better.monthly_rate <= worse.monthly_rate, (
            "better band, lower rate"
        )
    for b in bands:
        assert 0 <= b.max_amount_minor <= 100_000_000_00, f"band {b.name}: amount"
        assert Decimal(0) <= b.monthly_rate < Decimal("0.2"), f"band {b.name}: rate"
        assert b.monthly_rate == b.monthly_rate.quantize(RATE_QUANTUM), "rates have 4 dp"
        assert b.declines == (b.monthly_rate == 0), f"band {b.name}: declining band has no rate"

    h = data["hard_rules"]
    model = ScorecardModel(
        version=str(data["version"]),
        active=bool(data["active"]),
        created_at=datetime.fromisoformat(str(data["created_at"])),
        activated_at=(
            None
            if data.get("activated_at") is None
            else datetime.fromisoformat(str(data["activated_at"]))
        ),
        description=str(data.get("description", "")),
        intercept=Decimal(str(data["intercept"])),
        terms=terms,
        bands=bands,
        limits=HardRuleLimits(
            min_age_years=int(h["min_age_years"]),
            min_monthly_income_minor=int(h["min_monthly_income_minor"]),
            min_months_of_history=int(h["min_months_of_history"]),
            max_bureau_negative_records=int(h["max_bureau_negative_records"]),
            min_bureau_score=int(h["min_bureau_score"]),
        ),
        max_reasons=int(data["max_reasons"]),
    )
    assert model.version and len(model.version) <= 64
    assert model.created_at.tzinfo is not None, "created_at needs a time zone"
    assert model.activated_at is None or model.activated_at.tzinfo is not None
    assert not model.active or model.activated_at is not None, "active model was activated"
    assert 1 <= model.max_reasons <= MAX_REASONS
    assert abs(model.intercept) <= 20
    return model


@functools.cache
def list_models() -> tuple[ScorecardModel, ...]:
    """Every model file, newest first (by `created_at`). Exactly one is active."""
    folder = resources.files("services.risk").joinpath("models")
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".json")),
        key=lambda entry: entry.name,
    )
    assert 0 < len(files) <= MAX_MODEL_FILES
    models = [parse_model(json.loads(entry.read_text(encoding="utf-8"))) for entry in files]
    for entry, model in zip(files, models, strict=True):
        assert entry.name == f"{model.version}.json", f"{entry.name}: file name != version"
    assert sum(m.active for m in models) == 1, "exactly one active model"
    return tuple(sorted(models, key=lambda m: (m.created_at, m.version), reverse=True))


def load_model(version: str | None = None) -> ScorecardModel:
    """The model with that version; None = the active one."""
    for model in list_models():
        if model.active if version is None else model.version == version:
            return model
    raise UnknownModelVersion(version)
