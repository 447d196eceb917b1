"""KYC decision rules: each check's verdict from its provider's answer, and the
overall decision from the verdicts. Pure: no I/O, no framework.

Verdicts: PASSED, FAILED (a decline reason, customer-readable code),
NEEDS_REVIEW (a human decides). The decision: any FAILED → DECLINED with every
failed reason; else any NEEDS_REVIEW → IN_REVIEW; else APPROVED. A failed CPF
situation ends the process early (no point in asking the other providers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

PASSED = "PASSED"
FAILED = "FAILED"
NEEDS_REVIEW = "NEEDS_REVIEW"
VERDICTS = frozenset({PASSED, FAILED, NEEDS_REVIEW})

APPROVED = "APPROVED"
DECLINED = "DECLINED"
IN_REVIEW = "IN_REVIEW"

CPF_SITUATION = "CPF_SITUATION"
DOCUMENT = "DOCUMENT"
BUREAU = "BUREAU"
SCREENING = "SCREENING"
# The order the workflow runs them in.
CHECK_ORDER = (CPF_SITUATION, DOCUMENT, BUREAU, SCREENING)

# Receita situations that end the relationship; the others are reviewed.
_CPF_DECLINE = {
    "SUSPENSA": "CPF_SUSPENDED",
    "CANCELADA": "CPF_CANCELLED",
    "TITULAR_FALECIDO": "CPF_HOLDER_DECEASED",
    "NULA": "CPF_NULL",
}
_CPF_REVIEW = {"PENDENTE_DE_REGULARIZACAO": "CPF_PENDING_REGULARIZATION"}

# Name similarity from the gov document check (0..1): at or above NAME_MATCH
# the name is the registered one (abbreviations, missing particles); between
# NAME_REVIEW and NAME_MATCH a human compares the document; below, it is
# another person.
NAME_MATCH = 0.90
NAME_REVIEW = 0.75

# Bureau: KYC uses it as a footprint/fraud signal, not for credit. A score at
# or below LOW_SCORE or many negative records sends the case to a human.
LOW_BUREAU_SCORE = 200
MANY_NEGATIVE_RECORDS = 5

# Screening: a sanctions hit this strong with a matching birth date is the
# listed person; weaker sanctions hits and every PEP hit go to a human.
SANCTIONS_LISTS = frozenset({"ofac-sdn", "un-consolidated"})
PEP_LISTS = frozenset({"br-pep"})
SANCTIONS_CERTAIN = 0.97


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str
    reason: str = ""

    def __post_init__(self) -> None:
        assert self.state in VERDICTS, self.state
        # A pass has no reason; anything else must say why.
        assert (self.state == PASSED) == (self.reason == ""), (self.state, self.reason)


@dataclass(frozen=True, slots=True)
class CpfAnswer:
    found: bool
    situation: str = ""
    birth_date: date | None = None


def cpf_verdict(answer: CpfAnswer, registered_birth_date: date) -> Verdict:
    if not answer.found:
        return Verdict(FAILED, "CPF_NOT_FOUND")
    if answer.situation in _CPF_DECLINE:
        return Verdict(FAILED, _CPF_DECLINE[answer.situation])
    if answer.situation in _CPF_REVIEW:
        return Verdict(NEEDS_REVIEW, _CPF_REVIEW[answer.situation])
    if answer.situation != "REGULAR":
        return Verdict(NEEDS_REVIEW, "CPF_SITUATION_UNKNOWN")
    if answer.birth_date is not None and answer.birth_date != registered_birth_date:
        return Verdict(NEEDS_REVIEW, "BIRTH_DATE_DIVERGES_FROM_RECEITA")
    return Verdict(PASSED)


@dataclass(frozen=True, slots=True)
class DocumentAnswer:
    found: bool
    name_similarity: float = 0.0
    birth_date_match: bool = False
    number_match: bool = False


def document_verdict(answer: DocumentAnswer) -> Verdict:
    if not answer.found:
        return Verdict(FAILED, "CPF_NOT_FOUND")
    if not answer.number_match:
        return Verdict(FAILED, "DOCUMENT_NUMBER_MISMATCH")
    if not answer.birth_date_match:
        return Verdict(FAILED, "BIRTH_DATE_MISMATCH")
    if answer.name_similarity >= NAME_MATCH:
        return Verdict(PASSED)
    if answer.name_similarity >= NAME_REVIEW:
        return Verdict(NEEDS_REVIEW, "NAME_PARTIAL_MATCH")
    return Verdict(FAILED, "NAME_MISMATCH")


@dataclass(frozen=True, slots=True)
class BureauAnswer:
    score: int | None  # None: the bureau has no file on the CPF
    negative_records: int


def bureau_verdict(answer: BureauAnswer) -> Verdict:
    if answer.score is None:
        return Verdict(NEEDS_REVIEW, "NO_BUREAU_RECORD")
    assert 0 <= answer.score <= 1000 and answer.negative_records >= 0
    if answer.score <= LOW_BUREAU_SCORE:
        return Verdict(NEEDS_REVIEW, "LOW_BUREAU_SCORE")
    if answer.negative_records >= MANY_NEGATIVE_RECORDS:
        return Verdict(NEEDS_REVIEW, "MANY_NEGATIVE_RECORDS")
    return Verdict(PASSED)


@dataclass(frozen=True, slots=True)
class ScreeningMatch:
    list_name: str
    score: float
    dob_match: bool | None


def screening_verdict(matches: Sequence[ScreeningMatch]) -> Verdict:
    """`matches`: the hits at or above the screening threshold."""
    sanctions = [m for m in matches if m.list_name in SANCTIONS_LISTS]
    if any(m.score >= SANCTIONS_CERTAIN and m.dob_match is True for m in sanctions):
        return Verdict(FAILED, "SANCTIONS_MATCH")
    if sanctions:
        return Verdict(NEEDS_REVIEW, "POSSIBLE_SANCTIONS_MATCH")
    if any(m.list_name in PEP_LISTS for m in matches):
        return Verdict(NEEDS_REVIEW, "PEP_MATCH")
    return Verdict(PASSED)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str
    reasons: tuple[str, ...] = field(default=())


def stops_early(check: str, verdict: Verdict) -> bool:
    """After a failed CPF situation no other provider is asked."""
    return check == CPF_SITUATION and verdict.state == FAILED


def decide(verdicts: Sequence[tuple[str, Verdict]]) -> Decision:
    """The overall decision from (check, verdict) pairs in CHECK_ORDER."""
    checks = [c for c, _ in verdicts]
    assert checks, "a decision needs at least one check"
    assert len(set(checks)) == len(checks), "one verdict per check"
    assert all(c in CHECK_ORDER for c in checks), checks
    failed = tuple(v.reason for _, v in verdicts if v.state == FAILED)
    if failed:
        return Decision(DECLINED, failed)
    # Every check must have run unless the process stopped early on a failure.
    assert set(checks) == set(CHECK_ORDER), f"missing checks: {set(CHECK_ORDER) - set(checks)}"
    review = tuple(v.reason for _, v in verdicts if v.state == NEEDS_REVIEW)
    if review:
        return Decision(IN_REVIEW, review)
    return Decision(APPROVED)
