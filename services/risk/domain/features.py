"""Statement features for the scorecard (pure; every rule is in docs/RISK_MODEL.md).

Window: the `months` complete calendar months before `as_of`'s month
(`statements.window_months`). Transactions after the window (the running month)
are ignored; transactions before it only feed the running balance.

Money stays in integer minor units. Ratios are `Decimal` quantized to 4 decimal
places with ROUND_HALF_EVEN, computed in a local 28-digit context so the
result never depends on the caller's decimal context.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from services.risk.domain.statements import (
    MAX_TRANSACTIONS,
    Month,
    StatementTransaction,
    bucket_by_month,
    first_day,
    last_day,
    month_of,
    normalize_text,
    sort_key,
    tokens,
    window_months,
)

CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)
RATIO_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)
ONE = Decimal(1)

# Credits of these types are income by nature (salary and salary portability).
SALARY_TYPES = frozenset({"FOLHA_PAGAMENTO", "PORTABILIDADE_SALARIO"})
# Debits of these types are obligations by nature (card bills, loan instalments)
# even when the issuer's name varies from month to month.
OBLIGATION_TYPES = frozenset({"CARTAO", "OPERACAO_CREDITO"})
# A counterparty seen in this many distinct months of the window is "recurring".
RECURRING_MIN_MONTHS = 3

# Gambling keyword rules, applied to the tokens of description and counterparty
# (lower case, accents removed, split on anything not a letter or digit).
GAMBLING_WORDS = frozenset(
    {
        "aposta", "apostas", "apostar", "bet", "bets", "cassino", "casino", "bingo",
        "roleta", "poker", "blaze", "stake", "parimatch", "tigrinho", "sportsbook",
    }
)  # fmt: skip
# Brand names ending in "bet" (sportingbet, pixbet, estrelabet, vaidebet...) are
# caught by the suffix rule; these ordinary words also end in "bet" and are not.
BET_SUFFIX_EXCEPTIONS = frozenset({"alphabet", "alfabet", "sorbet", "gibbet", "barbet"})
# Brand names starting with "bet" (betano, bet365, betnacional, betfair); a
# prefix rule would catch people named Beto/Betânia, so they are listed.
GAMBLING_PREFIXED = ("betano", "bet365", "betnacional", "betfair", "betway", "betsson", "betclic")

# Cap for ratio features: beyond this the signal is saturated and an outlier
# must not dominate the logistic.
RATIO_CAP = Decimal(10)
# Balance volatility is measured against the monthly income, but never against
# less than R$ 1.000,00, so a customer without detectable income is not
# divided by zero or by a tiny figure.
VOLATILITY_SCALE_FLOOR_MINOR = 100_000


@dataclass(frozen=True)
class Features:
    """Scorecard inputs derived from statements. Customers never see these."""

    months_of_history: int  # months of the window from the first month with activity
    monthly_income_minor: int  # median of monthly salary-like credit totals
    income_stability: Decimal  # 1 - CV of monthly income, clamped to [0, 1]
    recurring_obligations_minor: int  # median of monthly recurring debit totals
    obligations_to_income: Decimal  # obligations / income, [0, 10]
    balance_volatility: Decimal  # std of daily balance / max(income, R$1.000), [0, 10]
    days_in_overdraft: int  # days some account ended below zero
    gambling_share: Decimal  # share of debits to gambling, [0, 1]
    transaction_count: int  # transactions inside the window

    def __post_init__(self) -> None:
        for name in INT_FIELDS:
            value = getattr(self, name)
            assert type(value) is int and value >= 0, f"{name} must be a non-negative int"
        for name in DECIMAL_FIELDS:
            value = getattr(self, name)
            assert isinstance(value, Decimal) and value.is_finite(), f"{name} must be Decimal"
            assert ZERO <= value <= RATIO_CAP, f"{name} out of range"
        assert self.income_stability <= ONE and self.gambling_share <= ONE

    def as_strings(self) -> dict[str, str]:
        """Name → decimal string, in declaration order (the proto `Feature` list)."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> Features:
        """Inverse of `as_strings` (replay of a stored decision)."""
        assert set(values) == set(FEATURE_NAMES), "feature names differ"
        kwargs: dict[str, int | Decimal] = {}
        for name in INT_FIELDS:
            kwargs[name] = int(values[name])
        for name in DECIMAL_FIELDS:
            kwargs[name] = Decimal(values[name])
        return cls(**kwargs)  # type: ignore[arg-type]


INT_FIELDS = (
    "months_of_history",
    "monthly_income_minor",
    "recurring_obligations_minor",
    "days_in_overdraft",
    "transaction_count",
)
DECIMAL_FIELDS = (
    "income_stability",
    "obligations_to_income",
    "balance_volatility",
    "gambling_share",
)
FEATURE_NAMES = tuple(f.name for f in dataclasses.fields(Features))


def compute_features(
    transactions: Sequence[StatementTransaction],
    as_of: date,
    months: int = 12,
    *,
    opening_balances_minor: Mapping[str, int] | None = None,
) -> Features:
    """Features over the `months` complete months before `as_of`'s month.

    `opening_balances_minor` is each account's balance before its earliest
    transaction given here; accounts without one start at zero (statements do
    not carry balances, see docs/RISK_MODEL.md).
    """
    assert len(transactions) <= MAX_TRANSACTIONS, "too many transactions"
    txs = _deduplicated(transactions)
    window = window_months(as_of, months)
    window_start, window_end = first_day(window[0]), last_day(window[-1])
    in_window = [tx for tx in txs if window_start <= tx.booked_on <= window_end]

    active = sorted({month_of(tx.booked_on) for tx in in_window})
    if not active:
        return Features(0, 0, ZERO, 0, ZERO, ZERO, 0, ZERO, 0)
    history = tuple(m for m in window if m >= active[0])
    buckets = bucket_by_month(in_window, history)

    gambling = {(tx.account_id, tx.transaction_id) for tx in in_window if is_gambling(tx)}
    credit_months = _counterparty_months(in_window, credits=True, skip=gambling)
    debit_months = _counterparty_months(in_window, credits=False, skip=gambling)

    income_by_month = [
        sum(
            tx.amount_minor
            for tx in buckets[m]
            if tx.is_credit
            and (tx.account_id, tx.transaction_id) not in gambling
            and _is_income(tx, credit_months)
        )
        for m in history
    ]
    obligations_by_month = [
        -sum(
            tx.amount_minor
            for tx in buckets[m]
            if tx.is_debit
            and (tx.account_id, tx.transaction_id) not in gambling
            and _is_obligation(tx, debit_months)
        )
        for m in history
    ]
    income = median_minor(income_by_month)
    obligations = median_minor(obligations_by_month)

    debits_total = -sum(tx.amount_minor for tx in in_window if tx.is_debit)
    gambling_total = -sum(
        tx.amount_minor
        for tx in in_window
        if tx.is_debit and (tx.account_id, tx.transaction_id) in gambling
    )

    daily_totals, overdraft_days = _daily_balances(
        txs, first_day(history[0]), window_end, opening_balances_minor or {}
    )
    scale = max(income, VOLATILITY_SCALE_FLOOR_MINOR)
    volatility = _ratio(_pstdev(daily_totals), Decimal(scale), cap=RATIO_CAP)

    return Features(
        months_of_history=len(history),
        monthly_income_minor=income,
        income_stability=income_stability(income_by_month),
        recurring_obligations_minor=obligations,
        obligations_to_income=(
            _ratio(Decimal(obligations), Decimal(income), cap=RATIO_CAP)
            if income > 0
            else (RATIO_CAP if obligations > 0 else ZERO)
        ),
        balance_volatility=volatility,
        days_in_overdraft=overdraft_days,
        gambling_share=_ratio(Decimal(gambling_total), Decimal(debits_total), cap=ONE)
        if debits_total > 0
        else ZERO,
        transaction_count=len(in_window),
    )


def is_gambling(tx: StatementTransaction) -> bool:
    """Keyword rules on description and counterparty (docs/RISK_MODEL.md)."""
    return _text_is_gambling(tx.description) or _text_is_gambling(tx.counterparty)


# Cached for the same reason as `normalize_text`: the texts repeat.
@functools.lru_cache(maxsize=16_384)
def _text_is_gambling(text: str) -> bool:
    for token in tokens(text):
        if token in GAMBLING_WORDS or token.startswith(GAMBLING_PREFIXED):
            return True
        if len(token) > 3 and token.endswith("bet") and token not in BET_SUFFIX_EXCEPTIONS:
            return True
    return False


def counterparty_key(tx: StatementTransaction) -> str:
    """Who is on the other side; the description stands in when the bank omits it."""
    return normalize_text(tx.counterparty) or normalize_text(tx.description)


def median_minor(values: Sequence[int]) -> int:
    """Median in minor units; an even count averages the middle pair, half-even."""
    assert values, "median of nothing"
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    pair = Decimal(ordered[mid - 1] + ordered[mid])
    return int(CTX.divide(pair, Decimal(2)).quantize(ONE, rounding=ROUND_HALF_EVEN))


def income_stability(monthly_totals: Sequence[int]) -> Decimal:
    """1 - coefficient of variation (population), clamped to [0, 1], 4 dp.

    Fewer than two months, or no income at all, gives 0: stability cannot be
    shown, and the scorecard must not reward its absence.
    """
    if len(monthly_totals) < 2:
        return ZERO
    mean = CTX.divide(Decimal(sum(monthly_totals)), Decimal(len(monthly_totals)))
    if mean <= 0:
        return ZERO
    cv = CTX.divide(_pstdev(monthly_totals), mean)
    return _quantize(min(max(ONE - cv, ZERO), ONE))


def _deduplicated(transactions: Sequence[StatementTransaction]) -> list[StatementTransaction]:
    # The import is idempotent, but a duplicated line would double income; the
    # first by (booked_at, account, id) wins so the choice is deterministic.
    seen: dict[tuple[str, str], StatementTransaction] = {}
    for tx in sorted(transactions, key=sort_key):
        seen.setdefault((tx.account_id, tx.transaction_id), tx)
    return sorted(seen.values(), key=sort_key)


def _counterparty_months(
    txs: Sequence[StatementTransaction], *, credits: bool, skip: set[tuple[str, str]]
) -> dict[str, int]:
    months: dict[str, set[Month]] = defaultdict(set)
    for tx in txs:
        if (tx.is_credit if credits else tx.is_debit) and (
            tx.account_id,
            tx.transaction_id,
        ) not in skip:
            key = counterparty_key(tx)
            if key:
                months[key].add(month_of(tx.booked_on))
    return {key: len(seen) for key, seen in months.items()}


def _is_income(tx: StatementTransaction, credit_months: Mapping[str, int]) -> bool:
    if tx.type in SALARY_TYPES:
        return True
    return credit_months.get(counterparty_key(tx), 0) >= RECURRING_MIN_MONTHS


def _is_obligation(tx: StatementTransaction, debit_months: Mapping[str, int]) -> bool:
    if tx.type in OBLIGATION_TYPES:
        return True
    return debit_months.get(counterparty_key(tx), 0) >= RECURRING_MIN_MONTHS


def _daily_balances(
    txs: Sequence[StatementTransaction],
    start: date,
    end: date,
    opening: Mapping[str, int],
) -> tuple[list[int], int]:
    """End-of-day combined balance for each day in [start, end], and overdraft days.

    Each account's balance is its opening balance plus every transaction booked
    up to that day (including those before `start`). A day is an overdraft day
    when any account ends it below zero.
    """
    accounts = sorted({tx.account_id for tx in txs} | set(opening))
    balance = {acc: opening.get(acc, 0) for acc in accounts}
    index = 0
    totals: list[int] = []
    overdraft = 0
    day = start
    while day <= end:
        while index < len(txs) and txs[index].booked_on <= day:
            balance[txs[index].account_id] += txs[index].amount_minor
            index += 1
        totals.append(sum(balance.values()))
        if any(value < 0 for value in balance.values()):
            overdraft += 1
        day += timedelta(days=1)
    return totals, overdraft


def _pstdev(values: Sequence[int]) -> Decimal:
    if len(values) < 2:
        return ZERO
    n = Decimal(len(values))
    mean = CTX.divide(Decimal(sum(values)), n)
    variance = CTX.divide(sum((CTX.power(Decimal(v) - mean, 2) for v in values), ZERO), n)
    return CTX.sqrt(variance)


def _ratio(numerator: Decimal, denominator: Decimal, *, cap: Decimal) -> Decimal:
    assert denominator > 0
    return _quantize(min(max(CTX.divide(numerator, denominator), ZERO), cap))


def _quantize(value: Decimal) -> Decimal:
    return value.quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN, context=CTX)
