"""Late charges, allocation, early payoff, buckets and the state machine."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loans.domain import state
from services.loans.domain.calendar import (
    add_months,
    easter,
    is_business_day,
    next_business_day,
)
from services.loans.domain.charges import (
    Bucket,
    Installment,
    accrue_day,
    allocate,
    bucket_for,
    default_interest_for,
    fine_for,
    is_defaulted,
    loan_days_past_due,
    payable_without_payoff,
    payoff,
)
from services.loans.domain.schedule import System, amortize

D0 = date(2026, 3, 10)


def installments(principal: int = 10_000_00, n: int = 10) -> list[Installment]:
    dates = [add_months(D0, k) for k in range(1, n + 1)]
    rows = amortize(principal, Decimal("0.02"), n, System.PRICE, dates)
    starts = [D0, *dates[:-1]]
    return [
        Installment(
            number=r.number,
            due_date=r.due_date,
            period_start=s,
            scheduled_interest=r.interest,
            scheduled_principal=r.amortization,
            interest_due=r.interest,
            principal_due=r.amortization,
        )
        for r, s in zip(rows, starts, strict=True)
    ]


# ------------------------------------------------------------ calendar


def test_easter_and_holidays() -> None:
    assert easter(2026) == date(2026, 4, 5)
    assert easter(2027) == date(2027, 3, 28)
    assert not is_business_day(date(2026, 4, 3))  # Good Friday
    assert not is_business_day(date(2026, 2, 17))  # Carnival Tuesday
    assert not is_business_day(date(2026, 11, 20))  # Consciência Negra (Friday)
    assert next_business_day(date(2026, 11, 20)) == date(2026, 11, 23)
    assert next_business_day(date(2026, 11, 24)) == date(2026, 11, 24)


# ------------------------------------------------------------ charges


def test_fine_and_default_interest_figures() -> None:
    assert fine_for(1_113_27) == 22_27  # 2% of 1,113.27 = 22.2654
    # 1% a month pro rata die: 1,113.27 x 0.01 x 10/30 = 3.7109
    assert default_interest_for(1_113_27, 10) == 3_71
    assert default_interest_for(1_113_27, 30) == 11_13  # a whole month: 1%


def test_daily_accrual_sums_to_the_pro_rata_total() -> None:
    insts = installments()
    first = insts[0]
    day = first.due_date
    fines = moras = 0
    for _ in range(45):
        day += timedelta(days=1)
        insts, booked = accrue_day(insts, day)
        fines += sum(b.fine for b in booked if b.number == 1)
        moras += sum(b.default_interest for b in booked if b.number == 1)
    days = (day - first.due_date).days
    assert fines == fine_for(first.base_due) == insts[0].fine_due
    assert moras == default_interest_for(first.base_due, days) == insts[0].default_interest_due
    # Only the first installment was overdue for all 45 days; the second for 14.
    second_days = (day - insts[1].due_date).days
    assert insts[1].default_interest_due == default_interest_for(insts[1].base_due, second_days)


def test_weekend_or_holiday_due_date_has_grace_until_next_business_day() -> None:
    due = date(2026, 11, 15)  # Sunday and a holiday
    inst = Installment(1, due, date(2026, 10, 15), 100_00, 900_00, 100_00, 900_00)
    assert inst.days_past_due(date(2026, 11, 16)) == 0  # Monday: still on time
    assert accrue_day([inst], date(2026, 11, 16))[1] == []
    _, booked = accrue_day([inst], date(2026, 11, 17))
    assert inst.days_past_due(date(2026, 11, 17)) == 2  # counted from the due date
    assert booked[0].fine == 20_00
    assert booked[0].default_interest == default_interest_for(1_000_00, 2)


def test_buckets() -> None:
    cases = {
        0: Bucket.CURRENT,
        1: Bucket.DPD_1_30,
        30: Bucket.DPD_1_30,
        31: Bucket.DPD_31_60,
        60: Bucket.DPD_31_60,
        61: Bucket.DPD_61_90,
        90: Bucket.DPD_61_90,
        91: Bucket.DPD_90_PLUS,
    }
    for days, bucket in cases.items():
        assert bucket_for(days) is bucket
    assert not is_defaulted(90) and is_defaulted(91)


def test_loan_days_past_due_is_the_oldest() -> None:
    insts = installments()
    as_of = insts[2].due_date + timedelta(days=5)
    assert loan_days_past_due(insts, as_of) == (as_of - insts[0].due_date).days


# ------------------------------------------------------------ allocation


def test_allocation_order_penalties_interest_principal() -> None:
    insts = installments()
    day = insts[0].due_date + timedelta(days=10)
    insts, _ = accrue_day(insts, day)
    first = insts[0]
    penalties = first.fine_due + first.default_interest_due
    paid = allocate(insts, penalties + 50_00, day)
    part = paid.parts[0]
    assert (part.fine, part.default_interest) == (first.fine_due, first.default_interest_due)
    assert part.interest == 50_00 and part.principal == 0
    assert paid.installments[0].interest_due == first.interest_due - 50_00


def test_regular_payment_is_bounded_by_due_plus_next() -> None:
    insts = installments()
    day = insts[0].due_date - timedelta(days=3)
    assert payable_without_payoff(insts, day) == insts[0].outstanding
    with pytest.raises(ValueError, match="pay the loan off"):
        allocate(insts, insts[0].outstanding + 1, day)
    with pytest.raises(ValueError):
        allocate(insts, 0, day)


@st.composite
def loan_states(draw: st.DrawFn) -> tuple[list[Installment], date, int]:
    n = draw(st.integers(min_value=1, max_value=24))
    principal = draw(st.integers(min_value=100_00, max_value=100_000_00))
    insts = installments(principal, n)
    last_due = insts[-1].due_date
    as_of = D0 + timedelta(
        days=draw(st.integers(min_value=1, max_value=(last_due - D0).days + 120))
    )
    day = D0
    while day < as_of:
        day += timedelta(days=1)
        insts, _ = accrue_day(insts, day)
    limit = payable_without_payoff(insts, as_of)
    amount = draw(st.integers(min_value=1, max_value=max(limit, 1)))
    return insts, as_of, amount


@settings(max_examples=150, deadline=None)
@given(loan_states())
def test_allocation_pays_oldest_first_and_each_in_order(
    data: tuple[list[Installment], date, int],
) -> None:
    insts, as_of, amount = data
    if payable_without_payoff(insts, as_of) < amount:
        return
    result = allocate(insts, amount, as_of)
    assert result.penalties + result.interest + result.principal == amount
    before = {i.number: i for i in insts}
    touched = [p.number for p in result.parts]
    assert touched == sorted(touched)
    for part in result.parts[:-1]:  # every installment but the last touched is settled
        assert result.installments[part.number - 1].settled
    for part in result.parts:
        b = before[part.number]
        # Within an installment: a later part is paid only when the earlier ones are.
        if part.default_interest:
            assert part.fine == b.fine_due
        if part.interest:
            assert part.fine + part.default_interest == b.penalties_due
        if part.principal:
            assert part.interest == b.interest_due


@settings(max_examples=150, deadline=None)
@given(loan_states())
def test_payoff_waives_only_future_interest(data: tuple[list[Installment], date, int]) -> None:
    insts, as_of, _ = data
    quote = payoff(insts, as_of)
    owed = sum(i.outstanding for i in insts)
    assert quote.amount + quote.interest_discount == owed
    assert quote.principal == sum(i.principal_due for i in insts)
    assert quote.penalties == sum(i.penalties_due for i in insts)
    due_interest = sum(i.interest_due for i in insts if i.due_date <= as_of)
    assert quote.accrued_interest >= due_interest
    assert quote.allocation.settles_loan
    # Nothing is waived on installments already due.
    for part, inst in zip(quote.allocation.parts, [i for i in insts if not i.settled], strict=True):
        if inst.due_date <= as_of:
            assert part.interest_discount == 0


def test_payoff_on_disbursement_day_and_mid_period() -> None:
    insts = installments()
    on_day = payoff(insts, D0 + timedelta(days=0))
    assert on_day.amount == 10_000_00 and on_day.accrued_interest == 0
    mid = D0 + timedelta(days=15)  # 15 of 31 days of the first period (March)
    q = payoff(insts, mid)
    assert q.accrued_interest == round(Decimal(200_00) * 15 / 31)
    assert q.amount == 10_000_00 + q.accrued_interest
    assert q.interest_discount == sum(i.scheduled_interest for i in insts) - q.accrued_interest


# ------------------------------------------------------------ state machine


def test_state_machine() -> None:
    assert state.transition("APPLIED", "OFFERED") == "OFFERED"
    assert state.can_transition("FUNDING", "CANCELLED")
    assert state.can_transition("DEFAULTED", "PAID")
    for closed in state.CLOSED:
        assert not state.TRANSITIONS[closed]
    with pytest.raises(state.TransitionError):
        state.transition("FUNDED", "CANCELLED")
    with pytest.raises(state.TransitionError):
        state.transition("DECLINED", "APPROVED")
