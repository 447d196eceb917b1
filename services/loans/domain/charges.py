"""Installments after funding: late charges, payment allocation, early payoff,
delinquency buckets (pure).

Late charges (CDC art. 52 §1º; Lei 9.298/1996): a fine of 2% of the overdue
installment, once, and default interest of 1% a month pro rata die (simple,
1/30 of 1% per calendar day) on the overdue amount (the installment's unpaid
interest + principal; charges never bear charges). An installment due on a
weekend or holiday may be paid on the next business day without charges;
once that day has passed, days past due count from the contractual due date.

Default interest accrues daily on the unpaid amount of that day, kept exact
(`Decimal`) and booked as the change of its half-even rounding, so the daily
postings always sum to the rounded total however many days it runs.

Allocation (Fineract's default order): over the oldest open installments
first; within each, penalties (fine, then default interest) → interest →
principal. A regular payment may cover what is due plus the next installment
at face value; anything more is an early payoff.

Early payoff (CDC art. 52 §2º, proportional reduction of future interest):
everything due is paid in full; of the installments not yet due, the principal
is paid and their interest is waived except the current period's interest
accrued pro rata die (linear over the period's days).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from services.loans.domain.calendar import next_business_day
from services.loans.domain.schedule import round_minor

FINE_RATE = Decimal("0.02")
DEFAULT_INTEREST_MONTHLY = Decimal("0.01")
DEFAULT_INTEREST_DAILY = DEFAULT_INTEREST_MONTHLY / Decimal(30)
DEFAULT_AFTER_DAYS = 90
MAX_INSTALLMENTS = 600


class Bucket(enum.Enum):
    CURRENT = "CURRENT"
    DPD_1_30 = "DPD_1_30"
    DPD_31_60 = "DPD_31_60"
    DPD_61_90 = "DPD_61_90"
    DPD_90_PLUS = "DPD_90_PLUS"


def bucket_for(days_past_due: int) -> Bucket:
    assert days_past_due >= 0
    if days_past_due == 0:
        return Bucket.CURRENT
    if days_past_due <= 30:
        return Bucket.DPD_1_30
    if days_past_due <= 60:
        return Bucket.DPD_31_60
    if days_past_due <= DEFAULT_AFTER_DAYS:
        return Bucket.DPD_61_90
    return Bucket.DPD_90_PLUS


def is_defaulted(days_past_due: int) -> bool:
    """More than 90 days past due."""
    return days_past_due > DEFAULT_AFTER_DAYS


def fine_for(overdue_minor: int) -> int:
    assert overdue_minor >= 0
    return round_minor(Decimal(overdue_minor) * FINE_RATE)


def default_interest_for(overdue_minor: int, days: int) -> int:
    """Default interest on a constant overdue amount for `days` days."""
    assert overdue_minor >= 0 and days >= 0
    return round_minor(Decimal(overdue_minor) * DEFAULT_INTEREST_DAILY * days)


@dataclass(frozen=True, slots=True)
class Installment:
    """An installment's contract and what is still unpaid of each part."""

    number: int
    due_date: date
    period_start: date  # previous due date, or the disbursement date
    scheduled_interest: int
    scheduled_principal: int
    interest_due: int
    principal_due: int
    fine_due: int = 0
    default_interest_due: int = 0
    fine_charged: bool = False
    default_interest_exact: Decimal = Decimal(0)  # accrued so far, unrounded

    def __post_init__(self) -> None:
        assert 0 <= self.interest_due <= self.scheduled_interest, self
        assert 0 <= self.principal_due <= self.scheduled_principal, self
        assert self.fine_due >= 0 and self.default_interest_due >= 0, self
        assert self.period_start < self.due_date, self

    @property
    def base_due(self) -> int:
        """What bears charges: unpaid interest + principal."""
        return self.interest_due + self.principal_due

    @property
    def penalties_due(self) -> int:
        return self.fine_due + self.default_interest_due

    @property
    def outstanding(self) -> int:
        return self.base_due + self.penalties_due

    @property
    def settled(self) -> bool:
        return self.outstanding == 0

    def chargeable_on(self, day: date) -> bool:
        """Late charges apply on `day` (past the due date and its business-day grace)."""
        return self.base_due > 0 and day > next_business_day(self.due_date)

    def days_past_due(self, as_of: date) -> int:
        if not self.chargeable_on(as_of):
            return 0
        return (as_of - self.due_date).days


@dataclass(frozen=True, slots=True)
class DayAccrual:
    number: int
    fine: int
    default_interest: int


def accrue_day(
    installments: Sequence[Installment], day: date
) -> tuple[list[Installment], list[DayAccrual]]:
    """Charges for calendar day `day` (the day's end): the fine once when an
    installment first becomes chargeable, and one day of default interest.

    The first chargeable day also catches up the days since the due date (a
    weekend due date paid late owes interest from the due date). Idempotency
    per day is the caller's (one accrual per loan and day).
    """
    out: list[Installment] = []
    booked: list[DayAccrual] = []
    for inst in installments:
        if not inst.chargeable_on(day):
            out.append(inst)
            continue
        fine = 0 if inst.fine_charged else fine_for(inst.base_due)
        days = 1 if inst.fine_charged else (day - inst.due_date).days
        exact = inst.default_interest_exact + Decimal(inst.base_due) * DEFAULT_INTEREST_DAILY * days
        mora = round_minor(exact) - round_minor(inst.default_interest_exact)
        out.append(
            replace(
                inst,
                fine_due=inst.fine_due + fine,
                fine_charged=True,
                default_interest_exact=exact,
                default_interest_due=inst.default_interest_due + mora,
            )
        )
        if fine or mora:
            booked.append(DayAccrual(inst.number, fine, mora))
    return out, booked


def loan_days_past_due(installments: Sequence[Installment], as_of: date) -> int:
    return max((i.days_past_due(as_of) for i in installments), default=0)


DUE_SOON_DAYS = 3
MAX_NOTICE_DAYS = 400  # a run catches up at most this many days (workflows.py)


@dataclass(frozen=True, slots=True)
class Notice:
    """Tell the customer about installment `number` as of `day`: due soon, or
    overdue in (newly entered) `bucket`."""

    number: int
    day: date
    overdue: bool
    bucket: Bucket = Bucket.CURRENT


def notices(
    installments: Sequence[Installment],
    first: date,
    last: date,
    buckets: Mapping[int, Bucket],
    due_soon_sent: AbstractSet[int],
) -> list[Notice]:
    """The notices of every day from `first` to `last`, as if the job had run
    each day: "due soon" once per installment, DUE_SOON_DAYS before its due date
    or later (never for a settled one); "overdue" each time an installment
    enters a new bucket (at most once per bucket: days past due only grow while
    nothing is paid). `buckets` and `due_soon_sent` are what was told before
    `first`. Ordered by day, then installment; due soon before overdue."""
    assert first <= last and (last - first).days < MAX_NOTICE_DAYS
    out: list[Notice] = []
    for inst in installments:
        if inst.settled:
            continue
        soon = inst.number in due_soon_sent
        told = buckets.get(inst.number, Bucket.CURRENT)
        day = first
        while day <= last:
            if not soon and 0 <= (inst.due_date - day).days <= DUE_SOON_DAYS:
                out.append(Notice(inst.number, day, overdue=False))
                soon = True
            dpd = inst.days_past_due(day)
            bucket = bucket_for(dpd)
            if bucket != told and dpd > 0:
                out.append(Notice(inst.number, day, overdue=True, bucket=bucket))
            told = bucket
            day += timedelta(days=1)
    out.sort(key=lambda n: (n.day, n.number, n.overdue))
    return out


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    fine: int = 0
    default_interest: int = 0
    interest: int = 0
    principal: int = 0
    interest_discount: int = 0

    @property
    def total(self) -> int:
        return self.fine + self.default_interest + self.interest + self.principal


@dataclass(frozen=True, slots=True)
class Allocation:
    amount: int
    parts: tuple[Part, ...]
    installments: tuple[Installment, ...] = field(repr=False)  # after the payment

    @property
    def penalties(self) -> int:
        return sum(p.fine + p.default_interest for p in self.parts)

    @property
    def interest(self) -> int:
        return sum(p.interest for p in self.parts)

    @property
    def principal(self) -> int:
        return sum(p.principal for p in self.parts)

    @property
    def interest_discount(self) -> int:
        return sum(p.interest_discount for p in self.parts)

    @property
    def settles_loan(self) -> bool:
        return all(i.settled for i in self.installments)


def payable_without_payoff(installments: Sequence[Installment], as_of: date) -> int:
    """The most a regular payment may be: everything due by `as_of` plus the next
    installment at face value (paying it a few days early is normal)."""
    due = sum(i.outstanding for i in installments if i.due_date <= as_of)
    upcoming = [i for i in installments if i.due_date > as_of and not i.settled]
    return due + (upcoming[0].outstanding if upcoming else 0)


def _take(available: int, owed: int) -> int:
    return min(available, owed)


def allocate(installments: Sequence[Installment], amount: int, as_of: date) -> Allocation:
    """Allocate a regular payment; ValueError when it exceeds what may be paid."""
    assert len(installments) <= MAX_INSTALLMENTS
    if amount <= 0:
        raise ValueError("a payment must be positive")
    if amount > payable_without_payoff(installments, as_of):
        raise ValueError("more than is due: pay the loan off instead")
    left = amount
    parts: list[Part] = []
    after: list[Installment] = []
    for inst in sorted(installments, key=lambda i: i.number):
        if left == 0 or inst.settled:
            after.append(inst)
            continue
        fine = _take(left, inst.fine_due)
        left -= fine
        mora = _take(left, inst.default_interest_due)
        left -= mora
        interest = _take(left, inst.interest_due)
        left -= interest
        principal = _take(left, inst.principal_due)
        left -= principal
        parts.append(Part(inst.number, fine, mora, interest, principal))
        after.append(
            replace(
                inst,
                fine_due=inst.fine_due - fine,
                default_interest_due=inst.default_interest_due - mora,
                interest_due=inst.interest_due - interest,
                principal_due=inst.principal_due - principal,
            )
        )
    assert left == 0, "payable_without_payoff bounds the amount"
    result = Allocation(amount, tuple(parts), tuple(after))
    assert result.penalties + result.interest + result.principal == amount
    return result


@dataclass(frozen=True, slots=True)
class Payoff:
    principal: int  # every unpaid principal
    accrued_interest: int  # interest due by as_of + the current period's, pro rata
    penalties: int
    interest_discount: int  # future interest waived
    allocation: Allocation

    @property
    def amount(self) -> int:
        return self.principal + self.accrued_interest + self.penalties


def accrued_share(inst: Installment, as_of: date) -> int:
    """Interest of an installment not yet due earned by `as_of` (linear, pro rata die),
    less what was already paid of it (never negative)."""
    if as_of >= inst.due_date:
        return inst.interest_due
    if as_of <= inst.period_start:
        return 0
    elapsed = (as_of - inst.period_start).days
    period = (inst.due_date - inst.period_start).days
    earned = round_minor(Decimal(inst.scheduled_interest) * elapsed / period)
    paid = inst.scheduled_interest - inst.interest_due
    return min(max(earned - paid, 0), inst.interest_due)


def payoff(installments: Sequence[Installment], as_of: date) -> Payoff:
    """Settle everything today with the proportional reduction of future interest."""
    assert len(installments) <= MAX_INSTALLMENTS
    parts: list[Part] = []
    after: list[Installment] = []
    for inst in sorted(installments, key=lambda i: i.number):
        if inst.settled:
            after.append(inst)
            continue
        interest = accrued_share(inst, as_of)
        discount = inst.interest_due - interest
        parts.append(
            Part(
                inst.number,
                inst.fine_due,
                inst.default_interest_due,
                interest,
                inst.principal_due,
                discount,
            )
        )
        after.append(
            replace(inst, fine_due=0, default_interest_due=0, interest_due=0, principal_due=0)
        )
    total = sum(p.total for p in parts)
    allocation = Allocation(total, tuple(parts), tuple(after))
    result = Payoff(
        principal=allocation.principal,
        accrued_interest=allocation.interest,
        penalties=allocation.penalties,
        interest_discount=allocation.interest_discount,
        allocation=allocation,
    )
    assert result.amount == total and allocation.settles_loan
    return result
