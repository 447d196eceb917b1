"""Statement features: worked examples for each rule, then properties of generated statements."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.risk.domain.features import FEATURE_NAMES, Features, compute_features, is_gambling
from services.risk.domain.statements import (
    StatementTransaction,
    bucket_by_month,
    normalize_text,
    window_months,
)
from tests.unit.risk.risk_support import AS_OF, monthly, salaried_history, tx


def test_window_is_the_complete_months_before_as_of() -> None:
    months = window_months(date(2026, 11, 29), 12)
    assert months[0] == (2025, 11) and months[-1] == (2026, 10) and len(months) == 12
    assert window_months(date(2026, 1, 1), 1) == ((2025, 12),)


def test_buckets_keep_empty_months_and_drop_outside_ones() -> None:
    months = window_months(AS_OF, 3)
    inside = tx(date(2026, 9, 3), 100)
    outside = tx(date(2026, 11, 2), 100)
    buckets = bucket_by_month([outside, inside], months)
    assert buckets == {(2026, 8): [], (2026, 9): [inside], (2026, 10): []}


def test_steady_salary_and_rent() -> None:
    f = compute_features(salaried_history(salary=500_000, rent=150_000), AS_OF)
    assert f == Features(
        months_of_history=12,
        monthly_income_minor=500_000,
        income_stability=Decimal("1.0000"),
        recurring_obligations_minor=150_000,
        obligations_to_income=Decimal("0.3000"),
        balance_volatility=f.balance_volatility,
        days_in_overdraft=0,
        gambling_share=Decimal("0.0000"),
        transaction_count=24,
    )
    assert Decimal(0) < f.balance_volatility <= Decimal(10)


def test_income_is_the_median_of_monthly_totals_and_stability_falls_with_variation() -> None:
    amounts = [100_000, 300_000] * 6
    txs = [tx(d, a, type="FOLHA_PAGAMENTO") for d, a in zip(monthly(5), amounts, strict=True)]
    f = compute_features(txs, AS_OF)
    # Even count: the middle pair (100_000, 300_000) averages to 200_000.
    assert f.monthly_income_minor == 200_000
    # mean 200_000, population std 100_000 → CV 0.5 → stability 0.5.
    assert f.income_stability == Decimal("0.5000")


def test_recurring_counterparty_credits_count_as_income_only_from_three_months() -> None:
    three = [tx(d, 200_000, counterparty="Cliente Fiel ME") for d in monthly(15)[:3]]
    two = [tx(d, 900_000, counterparty="Avulso") for d in monthly(16)[:2]]
    f = compute_features(three + two, AS_OF)
    # Income months: 3 of 12 with 200_000 → median of nine zeros and three 200_000 = 0.
    assert f.monthly_income_minor == 0
    every_month = [tx(d, 200_000, counterparty="CLIENTE FIEL ME") for d in monthly(15)]
    assert compute_features(every_month + two, AS_OF).monthly_income_minor == 200_000


def test_card_bills_are_obligations_even_from_a_one_off_issuer() -> None:
    txs = [*salaried_history(salary=400_000, rent=0 + 1)]
    txs += [
        tx(d, -80_000, type="CARTAO", counterparty=f"Banco {i}") for i, d in enumerate(monthly(20))
    ]
    f = compute_features(txs, AS_OF)
    assert f.recurring_obligations_minor == 80_001
    one_off = [tx(date(2026, 6, 2), -500_000, type="PIX", counterparty="Loja de Móveis")]
    assert compute_features(txs + one_off, AS_OF).recurring_obligations_minor == 80_001


def test_days_in_overdraft_from_the_running_balance() -> None:
    txs = [tx(date(2026, 3, 10), -10_000), tx(date(2026, 3, 20), 10_000)]
    f = compute_features(txs, AS_OF)
    assert f.days_in_overdraft == 10  # 10..19 March end below zero
    assert f.months_of_history == 8  # March..October
    covered = compute_features(txs, AS_OF, opening_balances_minor={"acc-1": 10_000})
    assert covered.days_in_overdraft == 0


def test_overdraft_counts_a_day_when_any_account_is_negative() -> None:
    txs = [
        tx(date(2026, 10, 1), 50_000, account_id="a"),
        tx(date(2026, 10, 30), -1, account_id="b"),
    ]
    assert compute_features(txs, AS_OF).days_in_overdraft == 2  # 30 and 31 October


def test_transactions_before_the_window_feed_only_the_balance() -> None:
    early = tx(date(2024, 1, 5), 1_000_000, type="FOLHA_PAGAMENTO")
    later = tx(date(2026, 10, 3), -20_000)
    f = compute_features([early, later], AS_OF)
    assert f.monthly_income_minor == 0 and f.days_in_overdraft == 0
    assert f.transaction_count == 1 and f.months_of_history == 1


def test_running_month_is_ignored() -> None:
    assert compute_features([tx(date(2026, 11, 2), 500_000)], AS_OF) == compute_features([], AS_OF)


def test_empty_statement() -> None:
    f = compute_features([], AS_OF)
    assert f.months_of_history == 0 and f.monthly_income_minor == 0
    assert f.income_stability == Decimal(0)


def test_duplicate_lines_count_once() -> None:
    line = tx(date(2026, 10, 5), 300_000, type="FOLHA_PAGAMENTO", transaction_id="dup")
    assert compute_features([line, line], AS_OF) == compute_features([line], AS_OF)


@pytest.mark.parametrize(
    ("description", "counterparty"),
    [
        ("PIX ENVIADO", "Betano Apostas"),
        ("Pagamento aposta esportiva", ""),
        ("", "SPORTINGBET"),
        ("pix bet365", ""),
        ("Cassino Royal", ""),
        ("deposito", "EstrelaBet LTDA"),
        ("", "Blaze.com"),
    ],
)
def test_gambling_keywords(description: str, counterparty: str) -> None:
    assert is_gambling(tx(AS_OF, -100, description=description, counterparty=counterparty))


@pytest.mark.parametrize(
    ("description", "counterparty"),
    [
        ("PIX", "Beto Ferreira"),
        ("Conta de luz", "Casa Lotérica Centro"),
        ("", "Alphabet Inc"),
        ("Feira", "Beterraba & Cia"),
        ("Mercado", "Betânia Alimentos"),
    ],
)
def test_not_gambling(description: str, counterparty: str) -> None:
    assert not is_gambling(tx(AS_OF, -100, description=description, counterparty=counterparty))


def test_gambling_share_of_debits_and_winnings_are_not_income() -> None:
    txs = [
        tx(date(2026, 10, 3), -100_000, counterparty="Betano"),
        tx(date(2026, 10, 4), -300_000, counterparty="Supermercado Bom"),
    ] + [tx(d, 400_000, counterparty="PIXBET PREMIOS") for d in monthly(25)]
    f = compute_features(txs, AS_OF)
    assert f.gambling_share == Decimal("0.2500")
    assert f.monthly_income_minor == 0


def test_normalize_text() -> None:
    assert normalize_text("  Pagamento - CASSINO Ação!! ") == "pagamento cassino acao"


def test_features_round_trip_through_strings() -> None:
    f = compute_features(salaried_history(), AS_OF)
    strings = f.as_strings()
    assert tuple(strings) == FEATURE_NAMES
    assert all(isinstance(v, str) for v in strings.values())
    assert Features.from_strings(strings) == f


def test_money_must_be_integer() -> None:
    with pytest.raises(AssertionError):
        tx(AS_OF, 10.5)  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        tx(AS_OF, True)  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

TYPES = ["PIX", "TED", "FOLHA_PAGAMENTO", "BOLETO", "CARTAO", "SAQUE", "OPERACAO_CREDITO"]
NAMES = ["ACME LTDA", "Imobiliária Sol", "Betano", "Mercado", "Maria", "", "Cassino X"]
START = date(2025, 6, 1)


@st.composite
def statements(draw: st.DrawFn) -> list[StatementTransaction]:
    n = draw(st.integers(min_value=0, max_value=60))
    out = []
    for i in range(n):
        out.append(
            tx(
                START + timedelta(days=draw(st.integers(0, 600))),
                draw(st.integers(-5_000_000, 5_000_000).filter(bool)),
                type=draw(st.sampled_from(TYPES)),
                counterparty=draw(st.sampled_from(NAMES)),
                account_id=draw(st.sampled_from(["a", "b", "c"])),
                transaction_id=f"g{i}",
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(statements(), st.integers(min_value=0, max_value=10_000))
def test_generated_statements_give_features_within_bounds(
    txs: list[StatementTransaction], seed: int
) -> None:
    f = compute_features(txs, AS_OF)
    assert 0 <= f.months_of_history <= 12
    assert 0 <= f.days_in_overdraft <= 366
    assert Decimal(0) <= f.income_stability <= Decimal(1)
    assert Decimal(0) <= f.gambling_share <= Decimal(1)
    assert Decimal(0) <= f.obligations_to_income <= Decimal(10)
    assert Decimal(0) <= f.balance_volatility <= Decimal(10)
    for name in ("monthly_income_minor", "recurring_obligations_minor", "transaction_count"):
        value = getattr(f, name)
        assert type(value) is int and value >= 0
    for name in ("income_stability", "gambling_share", "obligations_to_income"):
        assert getattr(f, name) == getattr(f, name).quantize(Decimal("0.0001"))
    # The bank's order must not matter.
    shuffled = list(txs)
    random.Random(seed).shuffle(shuffled)
    assert compute_features(shuffled, AS_OF) == f
    assert Features.from_strings(f.as_strings()) == f
