"""A contract disbursed days after its quote (an accepted counter-offer) is
recomputed for the day the money moves; and a payout never answered is asked
about once more before it is told as failed."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loans.domain.calendar import add_months
from services.loans.domain.schedule import (
    MAX_FIRST_DUE_DAYS,
    MIN_FIRST_DUE_DAYS,
    FeePolicy,
    IofMode,
    QuoteTerms,
    System,
    first_due_in_policy,
    quote,
    redate,
)
from services.loans.payout import PayoutCheck, PayoutRefusedError, confirm_payout
from services.loans.remote import RemoteUnavailableError

D0 = date(2026, 3, 10)
RATE = Decimal("0.0229")
FEES = FeePolicy()


def offer(
    first_due: date,
    *,
    system: System = System.PRICE,
    mode: IofMode = IofMode.FINANCED,
    principal: int = 8_000_00,
    term: int = 12,
) -> QuoteTerms:
    return quote(
        principal=principal,
        term_months=term,
        system=system,
        monthly_rate=RATE,
        disbursement_date=D0,
        first_due_date=first_due,
        iof_mode=mode,
        fees=FEES,
    )


def fresh(terms: QuoteTerms, disbursement: date, first_due: date) -> QuoteTerms:
    """What a quote simulated on `disbursement` with the same choices gives."""
    return quote(
        principal=terms.principal,
        term_months=terms.term_months,
        system=terms.system,
        monthly_rate=terms.monthly_rate,
        disbursement_date=disbursement,
        first_due_date=first_due,
        iof_mode=terms.iof_mode,
        fees=FEES,
    )


def test_same_day_changes_nothing() -> None:
    terms = offer(add_months(D0, 1))
    assert redate(terms, D0, FEES) is terms
    assert redate(terms, D0 - timedelta(days=1), FEES) is terms  # never backdated


@pytest.mark.parametrize("mode", list(IofMode))
@pytest.mark.parametrize("system", list(System))
def test_three_days_later_keeps_the_due_date_and_recomputes_iof_and_cet(
    system: System, mode: IofMode
) -> None:
    terms = offer(add_months(D0, 1), system=system, mode=mode)
    later = D0 + timedelta(days=3)
    dated = redate(terms, later, FEES)
    assert dated == fresh(terms, later, terms.first_due_date)
    assert dated.disbursement_date == later
    assert dated.first_due_date == terms.first_due_date  # 28 days out: still in policy
    assert [r.due_date for r in dated.schedule] == [r.due_date for r in terms.schedule]
    # Three days fewer to every due date: less IOF, a shorter first period.
    assert dated.iof < terms.iof
    assert dated.schedule[0].interest < terms.schedule[0].interest
    assert dated.cet_monthly != terms.cet_monthly
    assert (dated.principal, dated.term_months, dated.system, dated.iof_mode) == (
        terms.principal,
        terms.term_months,
        system,
        mode,
    )


def test_a_first_due_date_now_too_close_moves_by_the_days_that_passed() -> None:
    terms = offer(D0 + timedelta(days=MIN_FIRST_DUE_DAYS))
    later = D0 + timedelta(days=3)
    dated = redate(terms, later, FEES)
    assert dated.first_due_date == terms.first_due_date + timedelta(days=3)
    assert dated == fresh(terms, later, terms.first_due_date + timedelta(days=3))
    # The same gap as quoted, so the same IOF days for every installment.
    assert (dated.first_due_date - later) == (terms.first_due_date - D0)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(MIN_FIRST_DUE_DAYS, MAX_FIRST_DUE_DAYS),
    st.integers(1, 7),
    st.sampled_from(list(System)),
    st.sampled_from(list(IofMode)),
    st.integers(100_00, 50_000_00),
    st.integers(1, 48),
)
def test_redated_terms_are_a_fresh_quote_in_policy(
    gap: int, shift: int, system: System, mode: IofMode, principal: int, term: int
) -> None:
    terms = offer(
        D0 + timedelta(days=gap), system=system, mode=mode, principal=principal, term=term
    )
    later = D0 + timedelta(days=shift)
    dated = redate(terms, later, FEES)
    assert first_due_in_policy(later, dated.first_due_date)
    assert dated.first_due_date in (terms.first_due_date, terms.first_due_date + timedelta(shift))
    kept = first_due_in_policy(later, terms.first_due_date)
    assert (dated.first_due_date == terms.first_due_date) == kept
    assert dated == fresh(terms, later, dated.first_due_date)
    assert sum(r.amortization for r in dated.schedule) == dated.financed_amount


class Payments:
    """The Payout interface as payments' possible behaviours after a lost answer."""

    def __init__(self, *, holds: str = "", refuses: str = "", silent: bool = False) -> None:
        self.holds = holds
        self.refuses = refuses
        self.silent = silent
        self.calls: list[tuple[uuid.UUID, str, str, int]] = []

    async def pay_out(
        self, loan_id: uuid.UUID, user_id: str, pix_key: str, amount_minor: int
    ) -> str:
        self.calls.append((loan_id, user_id, pix_key, amount_minor))
        if self.silent:
            raise RemoteUnavailableError("payments", "no answer after 3 attempts")
        if self.refuses:
            raise PayoutRefusedError(self.refuses)
        return self.holds


LOAN = uuid.UUID("3f1c7a52-5a8e-4c8e-9d7e-0a1b2c3d4e5f")


async def test_a_payment_payments_accepted_is_recorded_as_requested() -> None:
    payments = Payments(holds="payments/7d0c")
    check = await confirm_payout(
        payments, LOAN, "u1", "ana@example.com", 1_200_00, unanswered="PAYOUT_UNAVAILABLE"
    )
    assert check == PayoutCheck(payment="payments/7d0c")
    assert payments.calls == [(LOAN, "u1", "ana@example.com", 1_200_00)]  # asked once


async def test_a_refusal_on_the_last_ask_is_the_reason() -> None:
    check = await confirm_payout(
        Payments(refuses="FAILED_PRECONDITION"), LOAN, "u1", "k", 1_00,
        unanswered="PAYOUT_UNAVAILABLE",
    )  # fmt: skip
    assert check == PayoutCheck(reason="FAILED_PRECONDITION")


async def test_silence_again_keeps_the_unanswered_reason() -> None:
    payments = Payments(silent=True)
    check = await confirm_payout(payments, LOAN, "u1", "k", 1_00, unanswered="PAYOUT_UNAVAILABLE")
    assert check == PayoutCheck(reason="PAYOUT_UNAVAILABLE")
    assert len(payments.calls) == 1
