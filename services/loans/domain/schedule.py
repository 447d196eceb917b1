"""Loan quotes: Price and SAC schedules, IOF, fees and CET (pure).

Units and rounding (stated once, used everywhere):
- Money is integer centavos. Rates are `Decimal` fractions ("0.02" = 2%).
- Every money amount derived from a rate is rounded to the centavo **half-even**
  exactly once, where it is computed: an installment's interest, the Price
  installment, an installment's IOF, the fee. Everything else is a sum or a
  difference of rounded integers, so totals always equal the sum of the parts.
- The last installment absorbs the rounding residue: its amortization is the
  whole remaining balance, so the balance ends at exactly zero.

Periods: installments are monthly. The first period is one month when the
first due date is the disbursement date plus whole months; otherwise it is
`days / 30` months and its interest compounds at the monthly rate for that
fraction, `(1 + i)^(days/30) - 1` (the market's 30-day-month convention).
The Price installment is level over that calendar:
PMT = P · (1+i)^(t1 - 1) · i / (1 - (1+i)^-n)  (= DOMAIN.md's formula when t1 = 1).

IOF (Decreto 6.306/2007, individuals): 0.38% of the credit plus 0.0082% per day
on each installment's amortization for the days from disbursement to its due
date, capped at 365. Computed per installment as
round(A_j · (0.0038 + 0.000082 · min(d_j, 365))) so the quote's IOF is the sum
of the installments' (Σ A_j = the credit, so the 0.38% part is the same).
The IOF base is the credit made available (principal plus financed fees); when
the IOF is financed it is added to the financed amount without a gross-up (no
IOF on the IOF).

Fees and IOF are paid the same way (`IofPayment`): financed (added to what the
schedule amortizes; the wallet receives the whole principal) or upfront
(deducted from what the wallet receives).

CET (Res. CMN 3.517/2007): the rate that equates what the borrower actually
receives (FC0) with the installments. Solved per month over the schedule's
periods, cet_monthly, and annualised as (1 + cet_monthly)^12 - 1; this is the
form of BACEN's published example (1,000.00 at 0.9489% a.m., 5 x 205.73, fee
50 + IOF 10 → 3.08% a.m., 43.93% a.a.), which tests/unit/loans checks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from services.loans.domain.calendar import add_months, due_dates

ZERO = Decimal(0)
ONE = Decimal(1)
CENTAVO = Decimal(1)  # amounts are already in centavos: quantize to the unit
RATE_PLACES = Decimal("0.000001")  # rates leave the domain with 6 decimals (0.0001%)
DAYS_PER_MONTH = Decimal(30)
IOF_FIXED_RATE = Decimal("0.0038")
IOF_DAILY_RATE = Decimal("0.000082")  # individuals; companies pay 0.0041%/day
IOF_MAX_DAYS = 365

MIN_TERM_MONTHS = 1
MAX_TERM_MONTHS = 48
MIN_PRINCIPAL_MINOR = 100_00  # R$ 100: below it the installments round to nothing
MAX_PRINCIPAL_MINOR = 1_000_000_00  # R$ 1 million: far above any band's limit
MAX_MONTHLY_RATE = Decimal("0.2")
MIN_FIRST_DUE_DAYS = 15  # policy: the first installment 15 to 60 days out
MAX_FIRST_DUE_DAYS = 60
# CET solver bounds: rates in (-50%, 1000%] a month; far beyond any real loan.
CET_MAX_ITERATIONS = 100
CET_TOLERANCE = Decimal("1e-18")
_V_LOW = ONE / Decimal(11)
_V_HIGH = Decimal(2)


class System(enum.Enum):
    PRICE = "PRICE"
    SAC = "SAC"


class IofMode(enum.Enum):
    FINANCED = "FINANCED"
    UPFRONT = "UPFRONT"


class QuoteError(ValueError):
    """Invalid input; `violations` are (field, description) pairs."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {d}" for f, d in violations))
        self.violations = violations


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """Origination fee: `rate` of the principal, rounded half-even, capped."""

    rate: Decimal = Decimal("0.01")
    cap_minor: int = 100_00

    def fee(self, principal_minor: int) -> int:
        assert ZERO <= self.rate < ONE and self.cap_minor >= 0
        return min(round_minor(Decimal(principal_minor) * self.rate), self.cap_minor)


NO_FEES = FeePolicy(rate=ZERO, cap_minor=0)


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    due_date: date
    amount: int
    interest: int
    amortization: int
    balance: int  # after this installment
    iof: int = 0


@dataclass(frozen=True, slots=True)
class QuoteTerms:
    principal: int
    term_months: int
    system: System
    monthly_rate: Decimal
    disbursement_date: date
    first_due_date: date
    iof_mode: IofMode
    iof: int
    fees: int
    financed_amount: int
    disbursed_amount: int
    total_payable: int
    cet_monthly: Decimal
    cet_annual: Decimal
    schedule: tuple[Row, ...]

    @property
    def annual_rate(self) -> Decimal:
        return annual_from_monthly(self.monthly_rate)


def round_minor(value: Decimal) -> int:
    """Half-even to the centavo (values are already in centavos)."""
    return int(value.quantize(CENTAVO, rounding=ROUND_HALF_EVEN))


def round_rate(value: Decimal) -> Decimal:
    return value.quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN)


def annual_from_monthly(monthly: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 34
        return round_rate((ONE + monthly) ** 12 - ONE)


def first_period_months(disbursement: date, first_due: date) -> Decimal:
    """Whole months when the first due date is a monthly anniversary, else days / 30."""
    assert first_due > disbursement
    for k in (1, 2, 3):
        if add_months(disbursement, k) == first_due:
            return Decimal(k)
    return Decimal((first_due - disbursement).days) / DAYS_PER_MONTH


def _growth(rate: Decimal, months: Decimal) -> Decimal:
    """(1 + rate)^months - 1, exact for whole months."""
    if months == months.to_integral_value():
        return (ONE + rate) ** int(months) - ONE
    return (ONE + rate) ** months - ONE


def price_installment(principal: int, rate: Decimal, n: int, t1: Decimal = ONE) -> int:
    """The level installment, rounded half-even."""
    assert principal > 0 and n >= 1 and rate >= 0
    if rate == 0:
        return round_minor(Decimal(principal) / n)
    with localcontext() as ctx:
        ctx.prec = 34
        head = ONE + _growth(rate, t1 - ONE) if t1 != ONE else ONE
        pmt = Decimal(principal) * head * rate / (ONE - (ONE + rate) ** -n)
    return round_minor(pmt)


def amortize(
    principal: int,
    rate: Decimal,
    n: int,
    system: System,
    dates: list[date],
    t1: Decimal = ONE,
) -> list[Row]:
    """The schedule (without IOF). Invariants are asserted, not hoped for."""
    assert principal > 0 and 1 <= n == len(dates) and ZERO <= rate < MAX_MONTHLY_RATE
    rows: list[Row] = []
    balance = principal
    with localcontext() as ctx:
        ctx.prec = 34
        first_growth = _growth(rate, t1)
        pmt = price_installment(principal, rate, n, t1) if system is System.PRICE else 0
        sac_amortization = principal // n  # the last installment takes the remainder
        for k in range(1, n + 1):
            growth = first_growth if k == 1 else rate
            interest = round_minor(Decimal(balance) * growth)
            if k == n:
                amortization = balance
            elif system is System.PRICE:
                amortization = min(max(pmt - interest, 0), balance)
            else:
                amortization = sac_amortization
            balance -= amortization
            rows.append(
                Row(k, dates[k - 1], interest + amortization, interest, amortization, balance)
            )
    assert balance == 0 and sum(r.amortization for r in rows) == principal
    return rows


def iof_minor(amortization: int, days: int) -> int:
    """IOF on one amortization paid `days` after disbursement (days capped at 365)."""
    assert amortization >= 0 and days >= 0
    capped = min(days, IOF_MAX_DAYS)
    return round_minor(Decimal(amortization) * (IOF_FIXED_RATE + IOF_DAILY_RATE * capped))


def _with_iof(rows: list[Row], iofs: list[int]) -> tuple[Row, ...]:
    return tuple(
        Row(r.number, r.due_date, r.amount, r.interest, r.amortization, r.balance, iof)
        for r, iof in zip(rows, iofs, strict=True)
    )


def solve_cet_monthly(
    received: int, payments: list[int], t1: Decimal = ONE, guess: Decimal | None = None
) -> Decimal:
    """Monthly rate r with Σ payments_j / (1+r)^(t1 + j - 1) = received.

    Solved for v = 1/(1+r) by Newton's method on a bracket, falling back to
    bisection whenever a step would leave it; bounded iterations. `guess` (a
    rate near the answer, e.g. the contract rate) saves iterations.
    """
    assert received > 0 and payments and all(p >= 0 for p in payments)
    with localcontext() as ctx:
        ctx.prec = 40
        fc0 = Decimal(received)
        flows = [Decimal(p) for p in payments]
        fractional = t1 != t1.to_integral_value()

        def value_and_slope(v: Decimal) -> tuple[Decimal, Decimal]:
            # S(v) = Σ FC_j v^(j-1) and S'(v) by Horner, then times v^t1.
            s = ZERO
            ds = ZERO
            for fc in reversed(flows):
                ds = ds * v + s
                s = s * v + fc
            head = v**t1 if fractional else v ** int(t1)
            dhead = t1 * head / v
            return head * s - fc0, dhead * s + head * ds

        lo, hi = _V_LOW, _V_HIGH
        f_lo, _ = value_and_slope(lo)
        f_hi, _ = value_and_slope(hi)
        if f_lo > 0 or f_hi < 0:
            raise ValueError("CET outside (-50%, 1000%] a month")
        v = ONE / (ONE + guess) if guess is not None and guess > -ONE / 2 else (lo + hi) / 2
        if not lo < v < hi:
            v = (lo + hi) / 2
        for _ in range(CET_MAX_ITERATIONS):
            f, slope = value_and_slope(v)
            if f > 0:
                hi = v
            else:
                lo = v
            step = f / slope if slope != 0 else ZERO
            nxt = v - step
            if not lo < nxt < hi:
                nxt = (lo + hi) / 2
            if abs(nxt - v) < CET_TOLERANCE:
                v = nxt
                break
            v = nxt
        return ONE / v - ONE


def first_due_in_policy(disbursement_date: date, first_due_date: date) -> bool:
    """The first installment falls 15 to 60 days after the disbursement."""
    days = (first_due_date - disbursement_date).days
    return MIN_FIRST_DUE_DAYS <= days <= MAX_FIRST_DUE_DAYS


def validate(
    principal: int,
    term_months: int,
    monthly_rate: Decimal,
    disbursement_date: date,
    first_due_date: date,
) -> None:
    bad: list[tuple[str, str]] = []
    if not MIN_PRINCIPAL_MINOR <= principal <= MAX_PRINCIPAL_MINOR:
        bad.append(("principal.minor_units", "must be R$ 100.00 to R$ 1,000,000.00"))
    if not MIN_TERM_MONTHS <= term_months <= MAX_TERM_MONTHS:
        bad.append(("term_months", f"must be {MIN_TERM_MONTHS} to {MAX_TERM_MONTHS}"))
    if not ZERO < monthly_rate < MAX_MONTHLY_RATE:
        bad.append(("monthly_rate", "must be above 0 and below 20% a month"))
    if not first_due_in_policy(disbursement_date, first_due_date):
        bad.append(
            (
                "first_due_date",
                f"must be {MIN_FIRST_DUE_DAYS} to {MAX_FIRST_DUE_DAYS} days from today",
            )
        )
    if bad:
        raise QuoteError(bad)


def quote(
    *,
    principal: int,
    term_months: int,
    system: System,
    monthly_rate: Decimal,
    disbursement_date: date,
    first_due_date: date,
    iof_mode: IofMode = IofMode.FINANCED,
    fees: FeePolicy = NO_FEES,
) -> QuoteTerms:
    """The full quote. Raises QuoteError for out-of-policy input."""
    validate(principal, term_months, monthly_rate, disbursement_date, first_due_date)
    dates = due_dates(first_due_date, term_months)
    t1 = first_period_months(disbursement_date, first_due_date)
    fee = fees.fee(principal)
    days = [(d - disbursement_date).days for d in dates]
    if iof_mode is IofMode.FINANCED:
        # IOF on the credit made available (principal + financed fee), then
        # the schedule is rebuilt over the credit plus the IOF.
        base_rows = amortize(principal + fee, monthly_rate, term_months, system, dates, t1)
        base_iofs = [iof_minor(r.amortization, d) for r, d in zip(base_rows, days, strict=True)]
        iof = sum(base_iofs)
        financed = principal + fee + iof
        disbursed = principal
        rows = amortize(financed, monthly_rate, term_months, system, dates, t1)
        iofs = base_iofs
    else:
        rows = amortize(principal, monthly_rate, term_months, system, dates, t1)
        iofs = [iof_minor(r.amortization, d) for r, d in zip(rows, days, strict=True)]
        iof = sum(iofs)
        financed = principal
        disbursed = principal - fee - iof
        if disbursed <= 0:
            raise QuoteError([("principal.minor_units", "too small to pay IOF and fees upfront")])
    schedule = _with_iof(rows, iofs)
    total = sum(r.amount for r in schedule)
    cet = solve_cet_monthly(disbursed, [r.amount for r in schedule], t1, guess=monthly_rate)
    terms = QuoteTerms(
        principal=principal,
        term_months=term_months,
        system=system,
        monthly_rate=monthly_rate,
        disbursement_date=disbursement_date,
        first_due_date=first_due_date,
        iof_mode=iof_mode,
        iof=iof,
        fees=fee,
        financed_amount=financed,
        disbursed_amount=disbursed,
        total_payable=total,
        cet_monthly=round_rate(cet),
        cet_annual=annual_from_monthly(cet),
        schedule=schedule,
    )
    assert terms.financed_amount == sum(r.amortization for r in schedule)
    assert terms.iof == sum(r.iof for r in schedule)
    assert terms.disbursed_amount + (0 if iof_mode is IofMode.FINANCED else fee + iof) == principal
    return terms


def redate(terms: QuoteTerms, disbursement_date: date, fees: FeePolicy) -> QuoteTerms:
    """The same contract disbursed on a later day: recomputed for that day.

    IOF counts the days from the disbursement to each due date and the first
    period's interest and the CET run from the disbursement, so a contract
    accepted days after its quote (a counter-offer) must be dated by the day
    the money moves. The customer's choices stay: principal, term, system, IOF
    mode, rate, and the first due date while it is still 15 to 60 days away;
    otherwise it moves by the days that passed, which keeps the quoted gap (in
    the policy, since the quote was). A day not after the quoted one changes
    nothing. Raises QuoteError only for terms that were out of policy already.
    """
    shift = (disbursement_date - terms.disbursement_date).days
    if shift <= 0:
        return terms
    first_due = terms.first_due_date
    if not first_due_in_policy(disbursement_date, first_due):
        first_due += timedelta(days=shift)
    return quote(
        principal=terms.principal,
        term_months=terms.term_months,
        system=terms.system,
        monthly_rate=terms.monthly_rate,
        disbursement_date=disbursement_date,
        first_due_date=first_due,
        iof_mode=terms.iof_mode,
        fees=fees,
    )
