"""SQL for payments' tables (migrations/payments/0002_payments.sql). Rows in, rows out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform import pagination

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_STEPS = 16


def page_size(requested: int) -> int:
    return pagination.page_size(requested, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class StepRow:
    step: str
    state: str
    attempts: int
    started_at: datetime
    ended_at: datetime | None
    last_error: str


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: uuid.UUID
    user_id: str
    method: str
    direction: str
    amount: int
    currency: str
    fee: int
    description: str
    instrument_ciphertext: bytes | None
    instrument_public: dict[str, Any]
    state: str
    failure_reason: str
    failure_message: str
    on_us: bool
    submitted: bool
    psp_reference: str
    end_to_end_id: str
    counterparty_user_id: str
    external_reference: str
    pix_charge_id: uuid.UUID | None
    refunded: int
    limit_day: date
    limit_night: date | None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None


_PAYMENT_COLUMNS = ", ".join(PaymentRow.__dataclass_fields__)


def _payment(row: Any) -> PaymentRow:
    data = dict(row._mapping)
    data["instrument_ciphertext"] = (
        bytes(data["instrument_ciphertext"]) if data["instrument_ciphertext"] else None
    )
    return PaymentRow(**data)


_INSERT_PAYMENT = text(
    "INSERT INTO payments (id, user_id, method, direction, amount, currency, fee, description,"
    " instrument_ciphertext, instrument_public, state, on_us, external_reference, pix_charge_id,"
    " limit_day, limit_night, counterparty_user_id, end_to_end_id, psp_reference, settled_at)"
    " VALUES (:id, :user_id, :method, :direction, :amount, :currency, :fee, :description,"
    " :instrument_ciphertext, :instrument_public, :state, :on_us, :external_reference,"
    " :pix_charge_id, :limit_day, :limit_night, :counterparty_user_id, :end_to_end_id,"
    " :psp_reference,"
    " CASE WHEN :state = 'SETTLED' THEN now() END)"
    f" ON CONFLICT (id) DO NOTHING RETURNING {_PAYMENT_COLUMNS}"
).bindparams(bindparam("instrument_public", type_=JSONB))


async def insert_payment(conn: AsyncConnection, **values: Any) -> tuple[PaymentRow, bool]:
    """(row, created); an existing id returns the stored row unchanged."""
    defaults = {
        "pix_charge_id": None,
        "external_reference": "",
        "on_us": False,
        "counterparty_user_id": "",
        "end_to_end_id": "",
        "psp_reference": "",
        "instrument_ciphertext": None,
        "limit_night": None,
    }
    row = (await conn.execute(_INSERT_PAYMENT, {**defaults, **values})).first()
    if row is not None:
        return _payment(row), True
    existing = await get_payment(conn, values["id"])
    assert existing is not None
    return existing, False


async def get_payment(
    conn: AsyncConnection, payment_id: uuid.UUID, *, for_update: bool = False
) -> PaymentRow | None:
    sql = f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE id = :id"
    row = (
        await conn.execute(text(sql + (" FOR UPDATE" if for_update else "")), {"id": payment_id})
    ).first()
    return _payment(row) if row is not None else None


async def get_payments(
    conn: AsyncConnection, payment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PaymentRow]:
    """The payments among `payment_ids` that exist, by id (one statement)."""
    if not payment_ids:
        return {}
    rows = await conn.execute(
        text(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE id = ANY(:ids)"),
        {"ids": list(payment_ids)},
    )
    return {payment.id: payment for payment in map(_payment, rows)}


async def list_payments(
    conn: AsyncConnection,
    user_id: str,
    *,
    state: str | None,
    method: str | None,
    size: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[PaymentRow]:
    where = ["user_id = :user_id"]
    params: dict[str, Any] = {"user_id": user_id, "limit": size + 1}
    if state:
        where.append("state = :state")
        params["state"] = state
    if method:
        where.append("method = :method")
        params["method"] = method
    where.append(pagination.keyset_condition(after, params))
    sql = (
        f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    return [_payment(r) for r in (await conn.execute(text(sql), params)).all()]


async def set_state(
    conn: AsyncConnection,
    payment_id: uuid.UUID,
    state: str,
    *,
    from_states: tuple[str, ...],
    reason: str = "",
    message: str = "",
    psp_reference: str | None = None,
    end_to_end_id: str | None = None,
) -> PaymentRow | None:
    """Move to `state` only from one of `from_states` (the machine's guard, enforced
    in SQL so that two racing writers cannot both win); None if it was not there."""
    sets = ["state = :state", "updated_at = now()"]
    params: dict[str, Any] = {"id": payment_id, "state": state, "from": list(from_states)}
    if reason:
        sets += ["failure_reason = :reason", "failure_message = :message"]
        params["reason"], params["message"] = reason, message[:500]
    if state == "SETTLED":
        sets.append("settled_at = now()")
    if psp_reference is not None:
        sets.append("psp_reference = :psp_reference")
        params["psp_reference"] = psp_reference
    if end_to_end_id is not None:
        sets.append("end_to_end_id = :e2e")
        params["e2e"] = end_to_end_id
    sql = (
        f"UPDATE payments SET {', '.join(sets)} WHERE id = :id AND state = ANY(:from)"
        f" RETURNING {_PAYMENT_COLUMNS}"
    )
    row = (await conn.execute(text(sql), params)).first()
    return _payment(row) if row is not None else None


async def add_refund(
    conn: AsyncConnection, payment_id: uuid.UUID, amount: int
) -> PaymentRow | None:
    """Count a refund: PARTIALLY_REFUNDED, or REFUNDED once all of it went back."""
    row = (
        await conn.execute(
            text(
                "UPDATE payments SET refunded = refunded + :a, updated_at = now(),"
                " state = CASE WHEN refunded + :a = amount THEN 'REFUNDED'"
                "  ELSE 'PARTIALLY_REFUNDED' END"
                " WHERE id = :id AND state IN ('SETTLED','PARTIALLY_REFUNDED')"
                f" AND refunded + :a <= amount RETURNING {_PAYMENT_COLUMNS}"
            ),
            {"id": payment_id, "a": amount},
        )
    ).first()
    return _payment(row) if row is not None else None


async def mark_submitted(conn: AsyncConnection, payment_id: uuid.UUID) -> bool:
    """Begin the PSP submission (cancel is refused from here on); False if cancelled."""
    row = (
        await conn.execute(
            text(
                "UPDATE payments SET submitted = true, updated_at = now()"
                " WHERE id = :id AND state = 'PENDING' RETURNING id"
            ),
            {"id": payment_id},
        )
    ).first()
    return row is not None


async def set_counterparty(
    conn: AsyncConnection,
    payment_id: uuid.UUID,
    *,
    on_us: bool,
    counterparty: str,
    public: dict[str, Any],
) -> None:
    await conn.execute(
        text(
            "UPDATE payments SET on_us = :on_us, counterparty_user_id = :cp,"
            " instrument_public = instrument_public || :public, updated_at = now() WHERE id = :id"
        ).bindparams(bindparam("public", type_=JSONB)),
        {"id": payment_id, "on_us": on_us, "cp": counterparty, "public": public},
    )


# ---------------------------------------------------------------- steps


async def step_started(conn: AsyncConnection, payment_id: uuid.UUID, step: str) -> None:
    await conn.execute(
        text(
            "INSERT INTO payment_steps (payment_id, step, seq, state, attempts)"
            " VALUES (:id, :step, (SELECT count(*) FROM payment_steps WHERE payment_id = :id),"
            "  'RUNNING', 1)"
            " ON CONFLICT (payment_id, step) DO UPDATE SET"
            "  attempts = payment_steps.attempts + 1,"
            "  state = CASE WHEN payment_steps.state IN ('SUCCEEDED','SKIPPED')"
            "   THEN payment_steps.state ELSE 'RUNNING' END"
        ),
        {"id": payment_id, "step": step},
    )


async def step_finished(
    conn: AsyncConnection, payment_id: uuid.UUID, step: str, state: str, error: str = ""
) -> None:
    await conn.execute(
        text(
            "INSERT INTO payment_steps"
            " (payment_id, step, seq, state, attempts, ended_at, last_error)"
            " VALUES (:id, :step, (SELECT count(*) FROM payment_steps WHERE payment_id = :id),"
            "  :state, CASE WHEN :state = 'SKIPPED' THEN 0 ELSE 1 END,"
            "  CASE WHEN :state IN ('SUCCEEDED','FAILED','SKIPPED') THEN clock_timestamp() END,"
            "  :error)"
            " ON CONFLICT (payment_id, step) DO UPDATE SET state = :state,"
            "  ended_at = CASE WHEN :state IN ('SUCCEEDED','FAILED','SKIPPED')"
            "   THEN coalesce(payment_steps.ended_at, clock_timestamp()) END,"
            "  last_error = CASE WHEN :error = '' THEN payment_steps.last_error ELSE :error END"
        ),
        {"id": payment_id, "step": step, "state": state, "error": error[:200]},
    )


async def steps_of(conn: AsyncConnection, payment_id: uuid.UUID) -> list[StepRow]:
    rows = await conn.execute(
        text(
            "SELECT step, state, attempts, started_at, ended_at, last_error FROM payment_steps"
            " WHERE payment_id = :id ORDER BY seq LIMIT :limit"
        ),
        {"id": payment_id, "limit": MAX_STEPS},
    )
    return [StepRow(**dict(r._mapping)) for r in rows.all()]


# ---------------------------------------------------------------- limits


async def limits_of(conn: AsyncConnection, user_id: str) -> tuple[int, int, int] | None:
    row = (
        await conn.execute(
            text("SELECT per_payment, daily, nightly FROM payment_limits WHERE user_id = :u"),
            {"u": user_id},
        )
    ).first()
    return (int(row.per_payment), int(row.daily), int(row.nightly)) if row else None


async def upsert_limits(
    conn: AsyncConnection, user_id: str, per_payment: int, daily: int, nightly: int
) -> None:
    await conn.execute(
        text(
            "INSERT INTO payment_limits (user_id, per_payment, daily, nightly)"
            " VALUES (:u, :p, :d, :n) ON CONFLICT (user_id) DO UPDATE SET"
            " per_payment = :p, daily = :d, nightly = :n, updated_at = now()"
        ),
        {"u": user_id, "p": per_payment, "d": daily, "n": nightly},
    )


# The two usage tables and their period columns (identifiers, never input).
_USAGE = {"day": "daily_usage", "night": "night_usage"}


async def _consume(
    conn: AsyncConnection, period: str, user_id: str, when: date, amount: int, limit: int
) -> bool:
    """Add `amount` to the period's usage only if it stays within `limit` (one
    statement: the row lock serialises concurrent payments of one user)."""
    if amount > limit:
        return False
    table = _USAGE[period]
    row = (
        await conn.execute(
            text(
                f"INSERT INTO {table} (user_id, {period}, used) VALUES (:u, :d, :a)"
                f" ON CONFLICT (user_id, {period}) DO UPDATE SET used = {table}.used + :a"
                f" WHERE {table}.used + :a <= :limit RETURNING used"
            ),
            {"u": user_id, "d": when, "a": amount, "limit": limit},
        )
    ).first()
    return row is not None


async def consume_daily(
    conn: AsyncConnection, user_id: str, day: date, amount: int, limit: int
) -> bool:
    return await _consume(conn, "day", user_id, day, amount, limit)


async def consume_nightly(
    conn: AsyncConnection, user_id: str, night: date, amount: int, limit: int
) -> bool:
    return await _consume(conn, "night", user_id, night, amount, limit)


async def release_limit(conn: AsyncConnection, row: PaymentRow) -> None:
    """Give a failed/cancelled payment's amount back to the day's (and night's)
    usage. Only customer-started payouts consumed it (service payouts carry the
    caller's external reference and skip the limits)."""
    if row.direction != "OUTBOUND" or row.external_reference:
        return
    periods = [("day", row.limit_day)]
    if row.limit_night is not None:
        periods.append(("night", row.limit_night))
    for period, when in periods:
        table = _USAGE[period]
        await conn.execute(
            text(
                f"UPDATE {table} SET used = greatest(used - :a, 0)"
                f" WHERE user_id = :u AND {period} = :d"
            ),
            {"u": row.user_id, "d": when, "a": row.amount + row.fee},
        )


async def used_on(conn: AsyncConnection, user_id: str, day: date) -> int:
    value = await conn.scalar(
        text("SELECT used FROM daily_usage WHERE user_id = :u AND day = :d"),
        {"u": user_id, "d": day},
    )
    return int(value or 0)


# ---------------------------------------------------------------- bank accounts


async def bank_account_number(conn: AsyncConnection, user_id: str) -> int:
    """The customer's account number, assigned from the sequence on first use."""
    number = await conn.scalar(
        text(
            "WITH ins AS (INSERT INTO bank_accounts (user_id, number)"
            "  SELECT :u, nextval('bank_account_numbers')"
            "  WHERE NOT EXISTS (SELECT 1 FROM bank_accounts WHERE user_id = :u)"
            "  ON CONFLICT (user_id) DO NOTHING RETURNING number)"
            " SELECT number FROM ins UNION ALL"
            " SELECT number FROM bank_accounts WHERE user_id = :u"
        ),
        {"u": user_id},
    )
    if number is None:
        # A concurrent first call inserted it after this statement's snapshot
        # was taken: it has committed (ON CONFLICT waited for it), so a new
        # statement sees it.
        number = await bank_account_of(conn, user_id)
    assert number is not None, user_id
    return int(number)


async def bank_account_of(conn: AsyncConnection, user_id: str) -> int | None:
    number = await conn.scalar(
        text("SELECT number FROM bank_accounts WHERE user_id = :u"), {"u": user_id}
    )
    return None if number is None else int(number)


async def bank_account_owner(conn: AsyncConnection, number: int) -> str | None:
    return await conn.scalar(
        text("SELECT user_id FROM bank_accounts WHERE number = :n"), {"n": number}
    )


# ---------------------------------------------------------------- PIX charges


@dataclass(frozen=True, slots=True)
class ChargeRow:
    id: uuid.UUID
    user_id: str
    amount: int
    currency: str
    description: str
    txid: str
    br_code: str
    state: str
    payment_id: uuid.UUID | None
    end_to_end_id: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None


_CHARGE_COLUMNS = ", ".join(ChargeRow.__dataclass_fields__)


async def insert_charge(conn: AsyncConnection, **values: Any) -> tuple[ChargeRow, bool]:
    row = (
        await conn.execute(
            text(
                "INSERT INTO pix_charges (id, user_id, amount, description, txid, br_code, state,"
                " expires_at) VALUES (:id, :user_id, :amount, :description, :txid, :br_code,"
                " 'ACTIVE', :expires_at) ON CONFLICT (id) DO NOTHING"
                f" RETURNING {_CHARGE_COLUMNS}"
            ),
            values,
        )
    ).first()
    if row is not None:
        return ChargeRow(**dict(row._mapping)), True
    existing = await get_charge(conn, values["id"])
    assert existing is not None
    return existing, False


async def get_charge(
    conn: AsyncConnection,
    charge_id: uuid.UUID | None = None,
    *,
    txid: str | None = None,
    for_update: bool = False,
) -> ChargeRow | None:
    column, value = ("id", charge_id) if txid is None else ("txid", txid)
    sql = f"SELECT {_CHARGE_COLUMNS} FROM pix_charges WHERE {column} = :v"
    row = (
        await conn.execute(text(sql + (" FOR UPDATE" if for_update else "")), {"v": value})
    ).first()
    return ChargeRow(**dict(row._mapping)) if row is not None else None


async def list_charges(
    conn: AsyncConnection,
    user_id: str,
    *,
    state: str | None,
    size: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[ChargeRow]:
    where = ["user_id = :user_id"]
    params: dict[str, Any] = {"user_id": user_id, "limit": size + 1}
    if state:
        where.append("state = :state")
        params["state"] = state
    where.append(pagination.keyset_condition(after, params))
    sql = (
        f"SELECT {_CHARGE_COLUMNS} FROM pix_charges WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    return [ChargeRow(**dict(r._mapping)) for r in (await conn.execute(text(sql), params)).all()]


async def set_charge_state(
    conn: AsyncConnection,
    charge_id: uuid.UUID,
    state: str,
    *,
    payment_id: uuid.UUID | None = None,
    end_to_end_id: str = "",
) -> ChargeRow | None:
    row = (
        await conn.execute(
            text(
                "UPDATE pix_charges SET state = :state,"
                " payment_id = coalesce(:pid, payment_id),"
                " end_to_end_id = CASE WHEN :e2e = '' THEN end_to_end_id ELSE :e2e END,"
                " paid_at = CASE WHEN :state = 'COMPLETED' THEN now() ELSE paid_at END"
                f" WHERE id = :id AND state = 'ACTIVE' RETURNING {_CHARGE_COLUMNS}"
            ),
            {"id": charge_id, "state": state, "pid": payment_id, "e2e": end_to_end_id},
        )
    ).first()
    return ChargeRow(**dict(row._mapping)) if row is not None else None


# ---------------------------------------------------------------- webhooks


async def record_webhook(
    conn: AsyncConnection, event_id: str, kind: str, body: dict[str, Any]
) -> bool:
    """True when first seen; a repeat only counts the delivery."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO psp_webhooks (event_id, type, body) VALUES (:id, :type, :body)"
                " ON CONFLICT (event_id) DO UPDATE SET deliveries = psp_webhooks.deliveries + 1"
                " RETURNING deliveries"
            ).bindparams(bindparam("body", type_=JSONB)),
            {"id": event_id, "type": kind, "body": body},
        )
    ).first()
    assert row is not None
    return int(row.deliveries) == 1


async def payout_return_recorded(conn: AsyncConnection, end_to_end_id: str, return_id: str) -> bool:
    """Whether this return (devolução id, unique within its payout's
    endToEndId) was already credited or refused."""
    found = await conn.scalar(
        text("SELECT 1 FROM payout_returns WHERE end_to_end_id = :e2e AND return_id = :id"),
        {"e2e": end_to_end_id[:64], "id": return_id},
    )
    return found is not None


async def record_payout_return(
    conn: AsyncConnection,
    *,
    return_id: str,
    payment_id: uuid.UUID | None,
    end_to_end_id: str,
    amount: int,
    state: str,
    reason: str,
    event_id: str,
) -> bool:
    """Record a return as CREDITED or REFUSED; False if it already was."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO payout_returns (return_id, payment_id, end_to_end_id, amount, state,"
                " reason, event_id) VALUES (:rid, :pid, :e2e, :amount, :state, :reason, :event)"
                " ON CONFLICT (end_to_end_id, return_id) DO NOTHING RETURNING return_id"
            ),
            {
                "rid": return_id,
                "pid": payment_id,
                "e2e": end_to_end_id[:64],
                "amount": amount,
                "state": state,
                "reason": reason[:64],
                "event": event_id,
            },
        )
    ).first()
    return row is not None


async def payments_of_day(
    conn: AsyncConnection, start: datetime, end: datetime
) -> list[PaymentRow]:
    """PSP payments created or settled in [start, end) (bounded: the report's own limit)."""
    sql = (
        f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE on_us = false AND"
        " ((settled_at >= :s AND settled_at < :e) OR (created_at >= :s AND created_at < :e))"
        " ORDER BY created_at LIMIT 100000"
    )
    return [_payment(r) for r in (await conn.execute(text(sql), {"s": start, "e": end})).all()]
