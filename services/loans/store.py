"""SQL for loans' tables (migrations/loans/0002_loans.sql). Rows in, rows out; no rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, INTEGER, JSONB, TEXT
from sqlalchemy.ext.asyncio import AsyncConnection

from services.loans.domain.charges import Installment
from services.platform import pagination

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_EVENTS_PAGE_SIZE = 500
DEFAULT_EVENTS_PAGE_SIZE = 50
ACCRUAL_BATCH = 200  # loans per accrual activity page


# The (created_at, id) of the last row of the previous page (newest first).
Keyset = tuple[datetime, uuid.UUID]


def page_size(
    requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    return pagination.page_size(requested, default=default, maximum=maximum)


# ---------------------------------------------------------------- quotes


@dataclass(frozen=True, slots=True)
class QuoteRow:
    id: uuid.UUID
    user_id: str
    risk_band: str
    risk_decision: str
    max_amount_minor: int
    terms: dict[str, Any]
    created_at: datetime
    expire_at: datetime


_QUOTE_COLS = (
    "id, user_id, risk_band, risk_decision, max_amount_minor, terms, created_at, expire_at"
)

_INSERT_QUOTE = text(
    "INSERT INTO quotes (id, user_id, principal_minor, term_months, system, iof_mode,"
    " disbursement_date, first_due_date, monthly_rate, risk_band, risk_decision,"
    " max_amount_minor, terms, created_at, expire_at) VALUES (:id, :user_id, :principal,"
    " :term, :system, :iof_mode, :disbursement, :first_due, :rate, :band, :decision, :max_amount,"
    " CAST(:terms AS jsonb), :created_at, :expire_at)"
)


async def insert_quote(conn: AsyncConnection, **values: Any) -> None:
    """`terms` is the JSON text (serialized once per distinct quote, see QuoteCache);
    nothing is read back: SimulateLoan's hot path is one round trip here."""
    await conn.execute(_INSERT_QUOTE, values)


async def get_quote(conn: AsyncConnection, quote_id: uuid.UUID) -> QuoteRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_QUOTE_COLS} FROM quotes WHERE id = :id"), {"id": quote_id}
        )
    ).first()
    return None if row is None else QuoteRow(*row)


# ---------------------------------------------------------------- loans


@dataclass(frozen=True, slots=True)
class LoanRow:
    id: uuid.UUID
    user_id: str
    quote_id: uuid.UUID
    state: str
    requested_principal: int
    approved_principal: int
    terms: dict[str, Any]
    decline_reasons: list[str]
    risk_decision: str
    pix_key_ciphertext: bytes | None
    receivable_account: str
    wallet_account: str
    funded_on: date | None
    defaulted_on: date | None
    accrued_through: date | None
    created_at: datetime
    updated_at: datetime
    fund_time: datetime | None
    close_time: datetime | None
    # migrations/loans/0003: the PIX payout's progress and the counter-offer's deadline.
    payout_payment: str | None = None
    payout_state: str | None = None
    offer_expire_time: datetime | None = None


_LOAN_COLS = (
    "id, user_id, quote_id, state, requested_principal, approved_principal, terms,"
    " decline_reasons, risk_decision, pix_key_ciphertext, receivable_account, wallet_account,"
    " funded_on, defaulted_on, accrued_through, created_at, updated_at, fund_time, close_time,"
    " payout_payment, payout_state, offer_expire_time"
)


def _loan(row: Any) -> LoanRow:
    return LoanRow(*row)


_INSERT_LOAN = text(
    "INSERT INTO loans (id, user_id, quote_id, state, requested_principal, terms,"
    " pix_key_ciphertext) VALUES (:id, :user_id, :quote_id, 'APPLIED', :principal, :terms,"
    f" :pix) ON CONFLICT (quote_id) DO NOTHING RETURNING {_LOAN_COLS}"
).bindparams(bindparam("terms", type_=JSONB))


async def insert_loan(conn: AsyncConnection, **values: Any) -> LoanRow | None:
    """None when the quote already has a loan."""
    row = (await conn.execute(_INSERT_LOAN, values)).first()
    return None if row is None else _loan(row)


async def _loan_where(
    conn: AsyncConnection, column: str, value: object, for_update: bool
) -> LoanRow | None:
    """The loan whose unique `column` (an identifier of ours, never input) is `value`."""
    assert column in ("id", "payout_payment"), column
    lock = " FOR UPDATE" if for_update else ""
    sql = f"SELECT {_LOAN_COLS} FROM loans WHERE {column} = :v{lock}"
    row = (await conn.execute(text(sql), {"v": value})).first()
    return None if row is None else _loan(row)


async def get_loan(
    conn: AsyncConnection, loan_id: uuid.UUID, *, for_update: bool = False
) -> LoanRow | None:
    return await _loan_where(conn, "id", loan_id, for_update)


async def loan_for_quote(conn: AsyncConnection, quote_id: uuid.UUID) -> LoanRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_LOAN_COLS} FROM loans WHERE quote_id = :q"), {"q": quote_id}
        )
    ).first()
    return None if row is None else _loan(row)


_UPDATABLE = frozenset(
    {
        "state",
        "approved_principal",
        "terms",
        "decline_reasons",
        "risk_decision",
        "receivable_account",
        "wallet_account",
        "funded_on",
        "defaulted_on",
        "accrued_through",
        "fund_time",
        "close_time",
        "payout_payment",
        "payout_state",
        "offer_expire_time",
    }
)


async def update_loan(conn: AsyncConnection, loan_id: uuid.UUID, **changes: Any) -> LoanRow:
    assert changes and set(changes) <= _UPDATABLE, changes
    sets = ", ".join(f"{k} = :{k}" for k in changes)
    stmt = text(
        f"UPDATE loans SET {sets}, updated_at = now() WHERE id = :id RETURNING {_LOAN_COLS}"
    )
    json_cols = [bindparam(k, type_=JSONB) for k in ("terms", "decline_reasons") if k in changes]
    if json_cols:
        stmt = stmt.bindparams(*json_cols)
    return _loan((await conn.execute(stmt, {"id": loan_id, **changes})).one())


async def user_has_loan_in(conn: AsyncConnection, user_id: str, states: Sequence[str]) -> bool:
    found = await conn.scalar(
        text("SELECT 1 FROM loans WHERE user_id = :u AND state = ANY(:s) LIMIT 1").bindparams(
            bindparam("s", type_=ARRAY(TEXT))
        ),
        {"u": user_id, "s": list(states)},
    )
    return found is not None


async def list_loans(
    conn: AsyncConnection, user_id: str | None, state: str | None, limit: int, after: Keyset | None
) -> list[LoanRow]:
    where = ["true"]
    params: dict[str, Any] = {"limit": limit}
    if user_id is not None:
        where.append("user_id = :user_id")
        params["user_id"] = user_id
    if state is not None:
        where.append("state = :state")
        params["state"] = state
    where.append(pagination.keyset_condition(after, params))
    sql = (
        f"SELECT {_LOAN_COLS} FROM loans WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    return [_loan(r) for r in (await conn.execute(text(sql), params)).all()]


async def repaying_loan_ids(
    conn: AsyncConnection, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    rows = await conn.execute(
        text(
            "SELECT id FROM loans WHERE state IN ('FUNDED','DEFAULTED')"
            " AND (CAST(:after AS uuid) IS NULL OR id > :after) ORDER BY id LIMIT :limit"
        ),
        {"after": after, "limit": limit},
    )
    return [r[0] for r in rows.all()]


async def loan_by_payout(
    conn: AsyncConnection, payment: str, *, for_update: bool = False
) -> LoanRow | None:
    return await _loan_where(conn, "payout_payment", payment, for_update)


async def user_has_payout_requesting(conn: AsyncConnection, user_id: str) -> bool:
    found = await conn.scalar(
        text("SELECT 1 FROM loans WHERE user_id = :u AND payout_state = 'REQUESTING' LIMIT 1"),
        {"u": user_id},
    )
    return found is not None


async def lapsed_offer_ids(conn: AsyncConnection, now: datetime, limit: int) -> list[uuid.UUID]:
    rows = await conn.execute(
        text(
            "SELECT id FROM loans WHERE state = 'OFFERED' AND offer_expire_time <= :now"
            " ORDER BY offer_expire_time, id LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [r[0] for r in rows.all()]


# ---------------------------------------------------------------- installments


@dataclass(frozen=True, slots=True)
class InstallmentRow:
    loan_id: uuid.UUID
    number: int
    due_date: date
    period_start: date
    amount: int
    scheduled_interest: int
    scheduled_principal: int
    interest_due: int
    principal_due: int
    fine_due: int
    default_interest_due: int
    fine_charged: bool
    default_interest_exact: Decimal
    fine_total: int
    default_interest_total: int
    paid_amount: int
    interest_waived: int
    paid_at: datetime | None
    due_soon_notified: bool
    overdue_bucket: str

    def domain(self) -> Installment:
        return Installment(
            number=self.number,
            due_date=self.due_date,
            period_start=self.period_start,
            scheduled_interest=self.scheduled_interest,
            scheduled_principal=self.scheduled_principal,
            interest_due=self.interest_due,
            principal_due=self.principal_due,
            fine_due=self.fine_due,
            default_interest_due=self.default_interest_due,
            fine_charged=self.fine_charged,
            default_interest_exact=Decimal(self.default_interest_exact),
        )


_INST_COLS = (
    "loan_id, number, due_date, period_start, amount, scheduled_interest, scheduled_principal,"
    " interest_due, principal_due, fine_due, default_interest_due, fine_charged,"
    " default_interest_exact, fine_total, default_interest_total, paid_amount, interest_waived,"
    " paid_at, due_soon_notified, overdue_bucket"
)


async def insert_installments(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    assert 1 <= len(rows) <= 48
    await conn.execute(
        text(
            "INSERT INTO installments (loan_id, number, due_date, period_start, amount,"
            " scheduled_interest, scheduled_principal, interest_due, principal_due) VALUES"
            " (:loan_id, :number, :due_date, :period_start, :amount, :interest, :principal,"
            " :interest, :principal) ON CONFLICT DO NOTHING"
        ),
        list(rows),
    )


async def installments(
    conn: AsyncConnection, loan_id: uuid.UUID, *, for_update: bool = False
) -> list[InstallmentRow]:
    lock = " FOR UPDATE" if for_update else ""
    rows = await conn.execute(
        text(f"SELECT {_INST_COLS} FROM installments WHERE loan_id = :id ORDER BY number{lock}"),
        {"id": loan_id},
    )
    return [InstallmentRow(*r) for r in rows.all()]


async def save_installment(
    conn: AsyncConnection,
    loan_id: uuid.UUID,
    inst: Installment,
    *,
    paid_now: int = 0,
    fine_added: int = 0,
    default_interest_added: int = 0,
    waived_now: int = 0,
    bucket: str | None = None,
    due_soon_notified: bool | None = None,
) -> None:
    await conn.execute(
        text(
            "UPDATE installments SET interest_due = :interest_due, principal_due = :principal_due,"
            " fine_due = :fine_due, default_interest_due = :mora_due, fine_charged = :fine_charged,"
            " default_interest_exact = :exact, fine_total = fine_total + :fine_added,"
            " default_interest_total = default_interest_total + :mora_added,"
            " paid_amount = paid_amount + :paid_now, interest_waived = interest_waived + :waived,"
            " paid_at = CASE WHEN :settled AND paid_at IS NULL THEN now() ELSE paid_at END,"
            " overdue_bucket = COALESCE(:bucket, overdue_bucket),"
            " due_soon_notified = COALESCE(:notified, due_soon_notified)"
            " WHERE loan_id = :loan_id AND number = :number"
        ),
        {
            "loan_id": loan_id,
            "number": inst.number,
            "interest_due": inst.interest_due,
            "principal_due": inst.principal_due,
            "fine_due": inst.fine_due,
            "mora_due": inst.default_interest_due,
            "fine_charged": inst.fine_charged,
            "exact": inst.default_interest_exact,
            "fine_added": fine_added,
            "mora_added": default_interest_added,
            "paid_now": paid_now,
            "waived": waived_now,
            "settled": inst.settled,
            "bucket": bucket,
            "notified": due_soon_notified,
        },
    )


# ---------------------------------------------------------------- payments


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: uuid.UUID
    loan_id: uuid.UUID
    amount: int
    penalties: int
    interest: int
    principal: int
    interest_discount: int
    payoff: bool
    paid_on: date
    installment_numbers: list[int]
    ledger_transfers: list[str]
    created_at: datetime


_PAY_COLS = (
    "id, loan_id, amount, penalties, interest, principal, interest_discount, payoff, paid_on,"
    " installment_numbers, ledger_transfers, created_at"
)


async def insert_payment(conn: AsyncConnection, **values: Any) -> PaymentRow:
    stmt = text(
        "INSERT INTO loan_payments (id, loan_id, amount, penalties, interest, principal,"
        " interest_discount, payoff, paid_on, installment_numbers, ledger_transfers) VALUES"
        " (:id, :loan_id, :amount, :penalties, :interest, :principal, :interest_discount, :payoff,"
        f" :paid_on, :numbers, :transfers) RETURNING {_PAY_COLS}"
    ).bindparams(
        bindparam("numbers", type_=ARRAY(INTEGER)), bindparam("transfers", type_=ARRAY(TEXT))
    )
    return PaymentRow(*(await conn.execute(stmt, values)).one())


async def get_payment(conn: AsyncConnection, payment_id: uuid.UUID) -> PaymentRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_PAY_COLS} FROM loan_payments WHERE id = :id"), {"id": payment_id}
        )
    ).first()
    return None if row is None else PaymentRow(*row)


async def list_payments(
    conn: AsyncConnection, loan_id: uuid.UUID, limit: int, after: Keyset | None
) -> list[PaymentRow]:
    params: dict[str, Any] = {"loan": loan_id, "limit": limit}
    cursor = " AND " + pagination.keyset_condition(after, params)
    rows = await conn.execute(
        text(
            f"SELECT {_PAY_COLS} FROM loan_payments WHERE loan_id = :loan{cursor}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [PaymentRow(*r) for r in rows.all()]


# ---------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    id: uuid.UUID
    loan_id: uuid.UUID
    event_type: str
    state: str
    actor: str
    detail: str
    amount_minor: int | None
    ledger_transfers: list[str]
    occur_time: datetime


_EVENT_COLS = (
    "seq, id, loan_id, event_type, state, actor, detail, amount_minor, ledger_transfers, occur_time"
)


async def insert_event(
    conn: AsyncConnection,
    *,
    loan_id: uuid.UUID,
    event_type: str,
    state: str,
    actor: str,
    detail: str = "",
    amount_minor: int | None = None,
    ledger_transfers: Sequence[str] = (),
) -> None:
    await conn.execute(
        text(
            "INSERT INTO loan_events (id, loan_id, event_type, state, actor, detail, amount_minor,"
            " ledger_transfers) VALUES (:id, :loan, :type, :state, :actor, :detail, :amount,"
            " :transfers)"
        ).bindparams(bindparam("transfers", type_=ARRAY(TEXT))),
        {
            "id": uuid.uuid4(),
            "loan": loan_id,
            "type": event_type,
            "state": state,
            "actor": actor,
            "detail": detail[:500],
            "amount": amount_minor,
            "transfers": list(ledger_transfers),
        },
    )


async def list_events(
    conn: AsyncConnection, loan_id: uuid.UUID, limit: int, after: int
) -> list[EventRow]:
    """Oldest first (a history), after event number `after` (0: from the start)."""
    rows = await conn.execute(
        text(
            f"SELECT {_EVENT_COLS} FROM loan_events WHERE loan_id = :loan AND seq > :after"
            " ORDER BY seq LIMIT :limit"
        ),
        {"loan": loan_id, "after": after, "limit": limit},
    )
    return [EventRow(*r) for r in rows.all()]


# ---------------------------------------------------------------- accruals


async def claim_accrual(
    conn: AsyncConnection,
    loan_id: uuid.UUID,
    day: date,
    fine: int,
    default_interest: int,
    transfers: Sequence[str],
) -> bool:
    """Record the accrual of (loan, day); False when it was already recorded."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO accruals (loan_id, accrual_date, fine, default_interest,"
                " ledger_transfers) VALUES (:loan, :day, :fine, :mora, :transfers)"
                " ON CONFLICT DO NOTHING RETURNING loan_id"
            ).bindparams(bindparam("transfers", type_=ARRAY(TEXT))),
            {
                "loan": loan_id,
                "day": day,
                "fine": fine,
                "mora": default_interest,
                "transfers": list(transfers),
            },
        )
    ).first()
    return row is not None
