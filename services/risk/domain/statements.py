"""Bank-statement transactions as the risk domain sees them, and month buckets.

The Open Finance import (service side) maps each `accounts/v2` transaction to a
`StatementTransaction`: `creditDebitType` DEBITO becomes a negative amount so
that a running balance is a plain sum. Everything here is pure: `as_of` is a
parameter, never the clock.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

# One statement line never moves more than R$ 100 million: a larger figure is a
# mapping bug (reais read as centavos twice), not a customer.
MAX_ABS_AMOUNT_MINOR = 10_000_000_000
MAX_TEXT_LENGTH = 500
# 12 months x 3 accounts is ≈ 3,000 lines; 100,000 leaves room for heavy users
# while keeping the feature computation bounded.
MAX_TRANSACTIONS = 100_000
MAX_MONTHS = 36

Month = tuple[int, int]  # (year, month)


@dataclass(frozen=True)
class StatementTransaction:
    """One booked line of a customer's account statement."""

    account_id: str
    transaction_id: str
    booked_at: datetime
    amount_minor: int  # signed: credit > 0, debit < 0
    currency: str
    type: str  # PIX, TED, FOLHA_PAGAMENTO, BOLETO, CARTAO, ...
    description: str
    counterparty: str

    def __post_init__(self) -> None:
        # bool is an int subclass; money must be a real integer of minor units.
        assert type(self.amount_minor) is int, "amount_minor must be int"
        assert abs(self.amount_minor) <= MAX_ABS_AMOUNT_MINOR, "amount out of range"
        assert self.account_id and self.transaction_id, "ids are required"
        assert isinstance(self.booked_at, datetime), "booked_at must be a datetime"
        assert len(self.currency) == 3, "currency is ISO 4217"
        assert len(self.description) <= MAX_TEXT_LENGTH
        assert len(self.counterparty) <= MAX_TEXT_LENGTH

    @property
    def booked_on(self) -> date:
        """The booking day in the timestamp's own zone (the bank's booking date)."""
        return self.booked_at.date()

    @property
    def is_credit(self) -> bool:
        return self.amount_minor > 0

    @property
    def is_debit(self) -> bool:
        return self.amount_minor < 0


def month_of(day: date) -> Month:
    return (day.year, day.month)


def add_months(month: Month, delta: int) -> Month:
    index = month[0] * 12 + (month[1] - 1) + delta
    return (index // 12, index % 12 + 1)


def first_day(month: Month) -> date:
    return date(month[0], month[1], 1)


def last_day(month: Month) -> date:
    nxt = add_months(month, 1)
    return date.fromordinal(first_day(nxt).toordinal() - 1)


def window_months(as_of: date, months: int) -> tuple[Month, ...]:
    """The `months` complete calendar months before `as_of`'s month, oldest first.

    The month of `as_of` is excluded on purpose: it is partial, and a salary
    that has not arrived yet would read as a month without income.
    """
    assert 1 <= months <= MAX_MONTHS, "months out of range"
    current = month_of(as_of)
    return tuple(add_months(current, -k) for k in range(months, 0, -1))


def bucket_by_month(
    transactions: Iterable[StatementTransaction], months: Sequence[Month]
) -> dict[Month, list[StatementTransaction]]:
    """Transactions grouped by booking month; months outside `months` are dropped.

    Every requested month is present (possibly empty) so that a month without
    income counts as a zero rather than disappearing from the statistics.
    Order inside a bucket is (booked_at, account_id, transaction_id), so callers
    never depend on the order the bank returned.
    """
    buckets: dict[Month, list[StatementTransaction]] = {m: [] for m in months}
    for tx in transactions:
        bucket = buckets.get(month_of(tx.booked_on))
        if bucket is not None:
            bucket.append(tx)
    for bucket in buckets.values():
        bucket.sort(key=sort_key)
    return buckets


def sort_key(tx: StatementTransaction) -> tuple[datetime, str, str]:
    return (tx.booked_at, tx.account_id, tx.transaction_id)


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


# Pure function over a small vocabulary of counterparties and descriptions that
# repeat month after month; caching it takes most of the feature cost away.
@functools.lru_cache(maxsize=16_384)
def normalize_text(text: str) -> str:
    """Lower case, accents removed, runs of punctuation/space collapsed to one space.

    "Pagamento - CASSINO Ação" → "pagamento cassino acao". Used for keyword
    rules and to recognise the same counterparty written differently.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub(" ", ascii_only).strip()


def tokens(text: str) -> tuple[str, ...]:
    normalized = normalize_text(text)
    return tuple(normalized.split()) if normalized else ()
