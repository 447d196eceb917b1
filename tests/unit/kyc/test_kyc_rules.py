"""KYC decision rules (services/kyc/domain/rules.py)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kyc.domain import rules
from services.kyc.domain.rules import (
    APPROVED,
    CHECK_ORDER,
    DECLINED,
    FAILED,
    IN_REVIEW,
    NEEDS_REVIEW,
    PASSED,
    BureauAnswer,
    CpfAnswer,
    DocumentAnswer,
    ScreeningMatch,
    Verdict,
    decide,
)

BORN = date(1988, 3, 14)


@pytest.mark.parametrize(
    ("situation", "state", "reason"),
    [
        ("REGULAR", PASSED, ""),
        ("SUSPENSA", FAILED, "CPF_SUSPENDED"),
        ("CANCELADA", FAILED, "CPF_CANCELLED"),
        ("TITULAR_FALECIDO", FAILED, "CPF_HOLDER_DECEASED"),
        ("NULA", FAILED, "CPF_NULL"),
        ("PENDENTE_DE_REGULARIZACAO", NEEDS_REVIEW, "CPF_PENDING_REGULARIZATION"),
        ("SOMETHING_NEW", NEEDS_REVIEW, "CPF_SITUATION_UNKNOWN"),
    ],
)
def test_cpf_situations(situation: str, state: str, reason: str) -> None:
    assert rules.cpf_verdict(CpfAnswer(True, situation, BORN), BORN) == Verdict(state, reason)


def test_cpf_not_found_and_birth_date_divergence() -> None:
    assert rules.cpf_verdict(CpfAnswer(False), BORN) == Verdict(FAILED, "CPF_NOT_FOUND")
    other = rules.cpf_verdict(CpfAnswer(True, "REGULAR", date(1990, 1, 1)), BORN)
    assert other == Verdict(NEEDS_REVIEW, "BIRTH_DATE_DIVERGES_FROM_RECEITA")


def test_document_rules() -> None:
    ok = DocumentAnswer(True, 1.0, True, True)
    assert rules.document_verdict(ok).state == PASSED
    assert rules.document_verdict(DocumentAnswer(True, 0.92, True, True)).state == PASSED
    assert rules.document_verdict(DocumentAnswer(True, 0.8, True, True)) == Verdict(
        NEEDS_REVIEW, "NAME_PARTIAL_MATCH"
    )
    assert rules.document_verdict(DocumentAnswer(True, 0.5, True, True)) == Verdict(
        FAILED, "NAME_MISMATCH"
    )
    assert rules.document_verdict(DocumentAnswer(True, 1.0, True, False)).reason == (
        "DOCUMENT_NUMBER_MISMATCH"
    )
    assert rules.document_verdict(DocumentAnswer(True, 1.0, False, True)).reason == (
        "BIRTH_DATE_MISMATCH"
    )
    assert rules.document_verdict(DocumentAnswer(False)).reason == "CPF_NOT_FOUND"


@given(st.floats(0, 1), st.booleans(), st.booleans())
def test_document_passes_only_with_every_field(sim: float, born: bool, number: bool) -> None:
    verdict = rules.document_verdict(DocumentAnswer(True, sim, born, number))
    assert (verdict.state == PASSED) == (sim >= rules.NAME_MATCH and born and number)


def test_bureau_rules() -> None:
    assert rules.bureau_verdict(BureauAnswer(820, 0)).state == PASSED
    assert rules.bureau_verdict(BureauAnswer(120, 5)).reason == "LOW_BUREAU_SCORE"
    assert rules.bureau_verdict(BureauAnswer(600, 5)).reason == "MANY_NEGATIVE_RECORDS"
    assert rules.bureau_verdict(BureauAnswer(None, 0)).reason == "NO_BUREAU_RECORD"


def test_screening_rules() -> None:
    assert rules.screening_verdict([]).state == PASSED
    certain = ScreeningMatch("ofac-sdn", 0.99, True)
    assert rules.screening_verdict([certain]) == Verdict(FAILED, "SANCTIONS_MATCH")
    # Same name, no matching birth date: a human decides.
    assert rules.screening_verdict([ScreeningMatch("ofac-sdn", 0.99, None)]).reason == (
        "POSSIBLE_SANCTIONS_MATCH"
    )
    assert rules.screening_verdict([ScreeningMatch("br-pep", 1.0, True)]).reason == "PEP_MATCH"


verdicts = st.one_of(
    st.just(Verdict(PASSED)),
    st.sampled_from(["A", "B", "C"]).map(lambda r: Verdict(FAILED, r)),
    st.sampled_from(["X", "Y"]).map(lambda r: Verdict(NEEDS_REVIEW, r)),
)


@given(st.lists(verdicts, min_size=4, max_size=4))
def test_decision_invariants(vs: list[Verdict]) -> None:
    pairs = list(zip(CHECK_ORDER, vs, strict=True))
    decision = decide(pairs)
    failed = [v.reason for v in vs if v.state == FAILED]
    review = [v.reason for v in vs if v.state == NEEDS_REVIEW]
    if failed:
        assert decision.outcome == DECLINED and list(decision.reasons) == failed
    elif review:
        assert decision.outcome == IN_REVIEW and list(decision.reasons) == review
    else:
        assert decision.outcome == APPROVED and decision.reasons == ()


def test_early_stop_declines_with_only_the_cpf_check() -> None:
    verdict = Verdict(FAILED, "CPF_SUSPENDED")
    assert rules.stops_early(rules.CPF_SITUATION, verdict)
    assert decide([(rules.CPF_SITUATION, verdict)]).outcome == DECLINED
    with pytest.raises(AssertionError):
        decide([(rules.CPF_SITUATION, Verdict(PASSED))])  # a pass must be followed by the rest


def test_a_verdict_explains_itself() -> None:
    with pytest.raises(AssertionError):
        Verdict(FAILED)
    with pytest.raises(AssertionError):
        Verdict(PASSED, "WHY")
