"""Quotes: DOMAIN.md's worked examples to the centavo, and schedule properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loans.domain.calendar import add_months, due_dates
from services.loans.domain.schedule import (
    MAX_FIRST_DUE_DAYS,
    MIN_FIRST_DUE_DAYS,
    FeePolicy,
    IofMode,
    QuoteError,
    System,
    amortize,
    annual_from_monthly,
    first_period_months,
    iof_minor,
    price_installment,
    quote,
    round_minor,
    solve_cet_monthly,
)

D0 = date(2026, 3, 10)


def monthly(n: int, start: date = D0) -> list[date]:
    return [add_months(start, k) for k in range(1, n + 1)]


def pct(rate: Decimal) -> Decimal:
    """As BACEN prints rates: percent with two decimals."""
    return (rate * 100).quantize(Decimal("0.01"))


# ------------------------------------------------------------ DOMAIN.md examples


def test_price_example_installment_is_1113_27() -> None:
    assert price_installment(10_000_00, Decimal("0.02"), 10) == 1_113_27
    rows = amortize(10_000_00, Decimal("0.02"), 10, System.PRICE, monthly(10))
    assert [r.amount for r in rows[:-1]] == [1_113_27] * 9
    # First month: interest 2% of 10,000.00; amortization is the rest.
    assert (rows[0].interest, rows[0].amortization, rows[0].balance) == (200_00, 913_27, 9_086_73)
    # The last installment absorbs the residue of nine roundings.
    assert rows[-1].amount == 1_113_22
    assert rows[-1].balance == 0


def test_sac_example_installments_1200_to_1020() -> None:
    rows = amortize(10_000_00, Decimal("0.02"), 10, System.SAC, monthly(10))
    assert [r.amount for r in rows] == [1_200_00 - 20_00 * k for k in range(10)]
    assert {r.amortization for r in rows} == {1_000_00}
    assert rows[-1].amount == 1_020_00 and rows[-1].balance == 0


def test_iof_example_single_repayment_after_180_days() -> None:
    assert iof_minor(100_000_00, 180) == 1_856_00


def test_iof_days_are_capped_at_365() -> None:
    assert iof_minor(100_000_00, 365) == iof_minor(100_000_00, 900)
    # 0.38% + 0.0082% x 365 = 3.373%
    assert iof_minor(100_000_00, 365) == 3_373_00


def test_cet_bacen_example() -> None:
    assert price_installment(1_000_00, Decimal("0.009489"), 5) == 205_73
    cet = solve_cet_monthly(940_00, [205_73] * 5)
    assert pct(cet) == Decimal("3.08")
    assert pct(annual_from_monthly(cet)) == Decimal("43.93")


def test_cet_bacen_example_through_a_quote() -> None:
    """The same example as a whole quote: IOF and fee upfront (FC0 = 940.00 there;
    here IOF follows the rule, so FC0 differs and so does the CET)."""
    terms = quote(
        principal=1_000_00,
        term_months=5,
        system=System.PRICE,
        monthly_rate=Decimal("0.009489"),
        disbursement_date=D0,
        first_due_date=add_months(D0, 1),
        iof_mode=IofMode.UPFRONT,
        fees=FeePolicy(rate=Decimal("0.05"), cap_minor=50_00),
    )
    assert [r.amount for r in terms.schedule[:-1]] == [205_73] * 4
    assert terms.fees == 50_00
    expected_iof = sum(iof_minor(r.amortization, (r.due_date - D0).days) for r in terms.schedule)
    assert terms.iof == expected_iof
    assert terms.disbursed_amount == 1_000_00 - 50_00 - expected_iof
    cet = solve_cet_monthly(terms.disbursed_amount, [r.amount for r in terms.schedule])
    assert terms.cet_monthly == cet.quantize(Decimal("0.000001"))


def test_annual_rate_is_compound() -> None:
    assert annual_from_monthly(Decimal("0.02")) == Decimal("0.268242")


# ------------------------------------------------------------ dates


def test_due_dates_keep_the_day_and_clamp_to_month_end() -> None:
    assert due_dates(date(2027, 1, 31), 4) == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
    ]


def test_first_period_is_whole_months_on_anniversaries() -> None:
    assert first_period_months(date(2026, 1, 31), date(2026, 2, 28)) == 1
    assert first_period_months(D0, add_months(D0, 2)) == 2
    assert first_period_months(D0, D0 + timedelta(days=45)) == Decimal(45) / 30


def test_irregular_first_period_interest() -> None:
    terms = quote(
        principal=10_000_00,
        term_months=10,
        system=System.SAC,
        monthly_rate=Decimal("0.02"),
        disbursement_date=D0,
        first_due_date=D0 + timedelta(days=45),
        iof_mode=IofMode.UPFRONT,
    )
    # 45 days = 1.5 months: 10,000.00 x (1.02^1.5 - 1) = 301.4950… → 301.50.
    assert terms.schedule[0].interest == round_minor(
        Decimal(10_000_00) * (Decimal("1.02") ** Decimal("1.5") - 1)
    )
    assert terms.schedule[0].interest == 301_50


# ------------------------------------------------------------ modes


def test_financed_iof_and_fee_are_added_to_the_schedule() -> None:
    t = quote(
        principal=5_000_00,
        term_months=12,
        system=System.PRICE,
        monthly_rate=Decimal("0.0349"),
        disbursement_date=D0,
        first_due_date=add_months(D0, 1),
        iof_mode=IofMode.FINANCED,
        fees=FeePolicy(),
    )
    assert t.fees == 50_00  # 1% of 5,000.00, under the 100.00 cap
    assert t.financed_amount == 5_000_00 + 50_00 + t.iof
    assert t.disbursed_amount == 5_000_00
    # IOF base: the credit made available (5,050.00), per installment.
    base = amortize(5_050_00, Decimal("0.0349"), 12, System.PRICE, monthly(12))
    assert t.iof == sum(iof_minor(r.amortization, (r.due_date - D0).days) for r in base)
    assert t.total_payable == sum(r.amount for r in t.schedule)
    assert t.cet_monthly > Decimal("0.0349")


def test_upfront_iof_and_fee_are_deducted_from_the_disbursement() -> None:
    t = quote(
        principal=5_000_00,
        term_months=12,
        system=System.PRICE,
        monthly_rate=Decimal("0.0349"),
        disbursement_date=D0,
        first_due_date=add_months(D0, 1),
        iof_mode=IofMode.UPFRONT,
        fees=FeePolicy(),
    )
    assert t.financed_amount == 5_000_00
    assert t.disbursed_amount == 5_000_00 - 50_00 - t.iof
    assert t.cet_monthly > Decimal("0.0349")


def test_fee_cap() -> None:
    assert FeePolicy().fee(50_000_00) == 100_00
    assert FeePolicy().fee(1_234_56) == 12_35  # 12.3456 → 12.35


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"principal": 99_99}, "principal.minor_units"),
        ({"term_months": 0}, "term_months"),
        ({"term_months": 49}, "term_months"),
        ({"first_due_date": D0 + timedelta(days=MIN_FIRST_DUE_DAYS - 1)}, "first_due_date"),
        ({"first_due_date": D0 + timedelta(days=MAX_FIRST_DUE_DAYS + 1)}, "first_due_date"),
        ({"monthly_rate": Decimal(0)}, "monthly_rate"),
    ],
)
def test_out_of_policy_input_is_refused(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "principal": 1_000_00,
        "term_months": 12,
        "system": System.PRICE,
        "monthly_rate": Decimal("0.02"),
        "disbursement_date": D0,
        "first_due_date": add_months(D0, 1),
    }
    args.update(kwargs)
    with pytest.raises(QuoteError) as raised:
        quote(**args)  # type: ignore[arg-type]
    assert field in [f for f, _ in raised.value.violations]


# ------------------------------------------------------------ properties

principals = st.integers(min_value=100_00, max_value=1_000_000_00)
terms_ = st.integers(min_value=1, max_value=48)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.15"), places=4)
systems = st.sampled_from(list(System))
modes = st.sampled_from(list(IofMode))
first_due_days = st.integers(min_value=MIN_FIRST_DUE_DAYS, max_value=MAX_FIRST_DUE_DAYS)
fee_rates = st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("0.03")])


@settings(max_examples=300, deadline=None)
@given(principals, terms_, rates, systems)
def test_amortizations_sum_to_principal_and_balance_reaches_zero(
    principal: int, n: int, rate: Decimal, system: System
) -> None:
    rows = amortize(principal, rate, n, system, monthly(n))
    assert sum(r.amortization for r in rows) == principal
    assert rows[-1].balance == 0
    assert all(r.amortization >= 0 and r.interest >= 0 for r in rows)
    assert all(r.amount == r.interest + r.amortization for r in rows)
    balances = [principal] + [r.balance for r in rows]
    assert all(
        a - r.amortization == b for a, b, r in zip(balances, balances[1:], rows, strict=False)
    )
    assert balances == sorted(balances, reverse=True)


@settings(max_examples=300, deadline=None)
@given(principals, terms_, rates)
def test_price_installments_equal_except_the_last_by_the_residue(
    principal: int, n: int, rate: Decimal
) -> None:
    rows = amortize(principal, rate, n, System.PRICE, monthly(n))
    pmt = price_installment(principal, rate, n)
    assert {r.amount for r in rows[:-1]} <= {pmt}
    # Residue: each of the n roundings (interest, installment) is at most half a
    # centavo and compounds at the rate until the end: s = Σ (1+i)^k < n(1+i)^n.
    bound = ((1 + rate) ** n - 1) / rate + 1
    assert abs(rows[-1].amount - pmt) <= bound


@settings(max_examples=300, deadline=None)
@given(principals, terms_, rates)
def test_sac_amortization_is_constant_except_the_last(
    principal: int, n: int, rate: Decimal
) -> None:
    rows = amortize(principal, rate, n, System.SAC, monthly(n))
    assert {r.amortization for r in rows[:-1]} <= {principal // n}
    assert 0 <= rows[-1].amortization - principal // n < n
    # Interest falls with the balance; only the last may rise, by the remainder.
    head = [r.amount for r in rows[:-1]]
    assert head == sorted(head, reverse=True)


@settings(max_examples=200, deadline=None)
@given(principals, terms_, rates, systems, modes, first_due_days, fee_rates)
def test_quote_invariants_and_cet_at_least_contract_rate(
    principal: int,
    n: int,
    rate: Decimal,
    system: System,
    mode: IofMode,
    days: int,
    fee_rate: Decimal,
) -> None:
    try:
        t = quote(
            principal=principal,
            term_months=n,
            system=system,
            monthly_rate=rate,
            disbursement_date=D0,
            first_due_date=D0 + timedelta(days=days),
            iof_mode=mode,
            fees=FeePolicy(rate=fee_rate),
        )
    except QuoteError:
        pytest.fail("every generated input is within policy")
    assert t.iof > 0
    assert t.iof == sum(r.iof for r in t.schedule)
    assert t.financed_amount == sum(r.amortization for r in t.schedule)
    assert t.total_payable == sum(r.amount for r in t.schedule)
    assert t.schedule[-1].balance == 0
    assert t.disbursed_amount > 0
    if mode is IofMode.FINANCED:
        assert t.financed_amount == principal + t.fees + t.iof
        assert t.disbursed_amount == principal
    else:
        assert t.disbursed_amount == principal - t.fees - t.iof
    # IOF or fees > 0 → the borrower pays more than the contract rate. The CET is
    # printed with 6 decimals; the rate has 4, so rounding cannot flip the order.
    assert t.cet_monthly >= rate
    assert t.cet_annual >= annual_from_monthly(rate)
    # The CET discounts the installments back to exactly what was received.
    cet = solve_cet_monthly(
        t.disbursed_amount,
        [r.amount for r in t.schedule],
        first_period_months(D0, t.first_due_date),
    )
    assert abs(cet - t.cet_monthly) <= Decimal("0.0000005")


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1_000, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=48),
)
def test_cet_solver_roots_the_equation(received: int, payments: list[int]) -> None:
    total = sum(payments)
    if total <= received // 2 or total > received * 1000:
        return  # outside the solver's documented bracket
    try:
        r = solve_cet_monthly(received, payments)
    except ValueError:
        return  # > 1000% a month: documented refusal
    pv = sum((Decimal(p) / (1 + r) ** (k + 1) for k, p in enumerate(payments)), Decimal(0))
    assert abs(pv - received) < Decimal("0.0001")
