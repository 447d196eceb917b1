"""SQL for risk's tables (migrations/risk/0001_risk.sql). Rows in, rows out; no rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform import pagination
from services.projections import kyc_status
from services.risk.domain.statements import StatementTransaction

MAX_PAGE_SIZE = 100
# The (created_at, id) of the last row of the previous page (newest first).
Keyset = tuple[datetime, uuid.UUID]
DEFAULT_PAGE_SIZE = 20
# 12 months of a heavy user; Score never reads more than this many lines.
MAX_SCORE_TRANSACTIONS = 100_000


# ---------------------------------------------------------------- consents


@dataclass(frozen=True, slots=True)
class ConsentRow:
    id: uuid.UUID
    user_id: str
    data_holder: str
    permissions: list[str]
    expire_at: datetime
    state: str
    bank_consent_id: str
    authorisation_uri: str
    redirect_state: str
    cpf_ciphertext: bytes
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryRow:
    state: str
    actor: str
    reason: str
    created_at: datetime


_CONSENT_COLS = (
    "id, user_id, data_holder, permissions, expire_at, state, bank_consent_id,"
    " authorisation_uri, redirect_state, cpf_ciphertext, created_at, updated_at"
)

_INSERT_CONSENT = text(
    "INSERT INTO consents (id, user_id, data_holder, permissions, expire_at, state,"
    " bank_consent_id, authorisation_uri, redirect_state, cpf_ciphertext, cpf_hash)"
    " VALUES (:id, :user_id, :data_holder, :permissions, :expire_at, :state,"
    " :bank_consent_id, :authorisation_uri, :redirect_state, :cpf_ciphertext, :cpf_hash)"
    f" RETURNING {_CONSENT_COLS}"
).bindparams(bindparam("permissions", type_=ARRAY(TEXT)))

_INSERT_HISTORY = text(
    "INSERT INTO consent_history (consent_id, state, actor, reason, performed_by, permissions,"
    " expire_at) SELECT id, state, :actor, :reason, :performed_by, permissions, expire_at"
    " FROM consents WHERE id = :id"
)


async def insert_consent(
    conn: AsyncConnection,
    *,
    consent_id: uuid.UUID,
    user_id: str,
    data_holder: str,
    permissions: Sequence[str],
    expire_at: datetime,
    state: str,
    bank_consent_id: str,
    authorisation_uri: str,
    redirect_state: str,
    cpf_ciphertext: bytes,
    cpf_hash: bytes,
    performed_by: str,
) -> ConsentRow:
    row = (
        await conn.execute(
            _INSERT_CONSENT,
            {
                "id": consent_id,
                "user_id": user_id,
                "data_holder": data_holder,
                "permissions": list(permissions),
                "expire_at": expire_at,
                "state": state,
                "bank_consent_id": bank_consent_id,
                "authorisation_uri": authorisation_uri,
                "redirect_state": redirect_state,
                "cpf_ciphertext": cpf_ciphertext,
                "cpf_hash": cpf_hash,
            },
        )
    ).one()
    await conn.execute(
        _INSERT_HISTORY,
        {"id": consent_id, "actor": "customer", "reason": "", "performed_by": performed_by},
    )
    return ConsentRow(**row._mapping)


async def get_consent(
    conn: AsyncConnection, consent_id: uuid.UUID, *, for_update: bool = False
) -> ConsentRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await conn.execute(
            text(f"SELECT {_CONSENT_COLS} FROM consents WHERE id = :id{lock}"), {"id": consent_id}
        )
    ).first()
    return ConsentRow(**row._mapping) if row is not None else None


async def set_consent_state(
    conn: AsyncConnection,
    consent_id: uuid.UUID,
    state: str,
    *,
    actor: str,
    reason: str,
    performed_by: str,
    expire_at: datetime | None = None,
) -> ConsentRow:
    """Move a consent to `state` and append the transition to its history."""
    row = (
        await conn.execute(
            text(
                "UPDATE consents SET state = :state, updated_at = now(),"
                " expire_at = COALESCE(:expire_at, expire_at)"
                f" WHERE id = :id RETURNING {_CONSENT_COLS}"
            ),
            {"id": consent_id, "state": state, "expire_at": expire_at},
        )
    ).one()
    await conn.execute(
        _INSERT_HISTORY,
        {"id": consent_id, "actor": actor, "reason": reason, "performed_by": performed_by},
    )
    return ConsentRow(**row._mapping)


async def consent_history(conn: AsyncConnection, consent_id: uuid.UUID) -> list[HistoryRow]:
    rows = await conn.execute(
        text(
            "SELECT state, actor, reason, created_at FROM consent_history"
            " WHERE consent_id = :id ORDER BY id LIMIT 1000"
        ),
        {"id": consent_id},
    )
    return [HistoryRow(**r._mapping) for r in rows]


async def list_consents(
    conn: AsyncConnection, user_id: str, state: str | None, limit: int, after: Keyset | None
) -> list[ConsentRow]:
    params: dict[str, Any] = {"user_id": user_id, "limit": limit, "state": state}
    cursor = " AND " + pagination.keyset_condition(after, params)
    rows = await conn.execute(
        text(
            f"SELECT {_CONSENT_COLS} FROM consents WHERE user_id = :user_id"
            " AND (CAST(:state AS text) IS NULL OR state = :state)"
            f"{cursor} ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [ConsentRow(**r._mapping) for r in rows]


# ---------------------------------------------------------------- imports


@dataclass(frozen=True, slots=True)
class ImportRow:
    id: uuid.UUID
    consent_id: uuid.UUID
    user_id: str
    from_date: date
    to_date: date
    state: str
    accounts_imported: int
    transactions_imported: int
    transactions_skipped: int
    pages_fetched: int
    failure_reason: str
    created_at: datetime
    completed_at: datetime | None


_IMPORT_COLS = (
    "id, consent_id, user_id, from_date, to_date, state, accounts_imported,"
    " transactions_imported, transactions_skipped, pages_fetched, failure_reason,"
    " created_at, completed_at"
)


async def insert_import(
    conn: AsyncConnection,
    *,
    import_id: uuid.UUID,
    consent_id: uuid.UUID,
    user_id: str,
    from_date: date,
    to_date: date,
) -> tuple[ImportRow, bool]:
    """The new import (True), or the one a retried request already created (False)."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO statement_imports (id, consent_id, user_id, from_date, to_date, state)"
                " VALUES (:id, :consent_id, :user_id, :from_date, :to_date, 'RUNNING')"
                f" ON CONFLICT (id) DO NOTHING RETURNING {_IMPORT_COLS}"
            ),
            {
                "id": import_id,
                "consent_id": consent_id,
                "user_id": user_id,
                "from_date": from_date,
                "to_date": to_date,
            },
        )
    ).first()
    if row is not None:
        return ImportRow(**row._mapping), True
    existing = await get_import(conn, import_id)
    assert existing is not None
    return existing, False


async def get_import(conn: AsyncConnection, import_id: uuid.UUID) -> ImportRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_IMPORT_COLS} FROM statement_imports WHERE id = :id"),
            {"id": import_id},
        )
    ).first()
    return ImportRow(**row._mapping) if row is not None else None


async def list_imports(
    conn: AsyncConnection,
    user_id: str,
    consent_id: uuid.UUID | None,
    limit: int,
    after: Keyset | None,
) -> list[ImportRow]:
    params: dict[str, Any] = {"user_id": user_id, "limit": limit, "consent_id": consent_id}
    cursor = " AND " + pagination.keyset_condition(after, params)
    rows = await conn.execute(
        text(
            f"SELECT {_IMPORT_COLS} FROM statement_imports WHERE user_id = :user_id"
            " AND (CAST(:consent_id AS uuid) IS NULL OR consent_id = :consent_id)"
            f"{cursor} ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [ImportRow(**r._mapping) for r in rows]


async def set_import_state(
    conn: AsyncConnection, import_id: uuid.UUID, state: str, failure_reason: str = ""
) -> ImportRow | None:
    """Set the state unless the import already finished (terminal states stay)."""
    terminal = state in ("SUCCEEDED", "FAILED")
    row = (
        await conn.execute(
            text(
                "UPDATE statement_imports SET state = :state, failure_reason = :reason,"
                " updated_at = now(),"
                " completed_at = CASE WHEN :terminal THEN now() ELSE completed_at END"
                " WHERE id = :id AND state NOT IN ('SUCCEEDED', 'FAILED')"
                f" RETURNING {_IMPORT_COLS}"
            ),
            {"id": import_id, "state": state, "reason": failure_reason, "terminal": terminal},
        )
    ).first()
    return ImportRow(**row._mapping) if row is not None else None


async def claim_page(conn: AsyncConnection, import_id: uuid.UUID, resource: str, page: int) -> bool:
    """True the first time this import stores this page (so its counts are added once)."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO import_pages (import_id, resource, page)"
                " VALUES (:id, :resource, :page) ON CONFLICT DO NOTHING RETURNING page"
            ),
            {"id": import_id, "resource": resource, "page": page},
        )
    ).first()
    return row is not None


async def add_progress(
    conn: AsyncConnection,
    import_id: uuid.UUID,
    *,
    accounts: int = 0,
    imported: int = 0,
    skipped: int = 0,
    pages: int = 0,
) -> None:
    await conn.execute(
        text(
            "UPDATE statement_imports SET accounts_imported = accounts_imported + :accounts,"
            " transactions_imported = transactions_imported + :imported,"
            " transactions_skipped = transactions_skipped + :skipped,"
            " pages_fetched = pages_fetched + :pages, updated_at = now(),"
            " state = CASE WHEN state = 'WAITING_PROVIDER' THEN 'RUNNING' ELSE state END"
            " WHERE id = :id"
        ),
        {
            "id": import_id,
            "accounts": accounts,
            "imported": imported,
            "skipped": skipped,
            "pages": pages,
        },
    )


_UPSERT_ACCOUNT = text(
    "INSERT INTO of_accounts (user_id, account_id, consent_id, brand_name, company_cnpj,"
    " account_type) VALUES (:user_id, :account_id, :consent_id, :brand_name, :company_cnpj,"
    " :account_type) ON CONFLICT (user_id, account_id) DO UPDATE SET"
    " consent_id = EXCLUDED.consent_id, brand_name = EXCLUDED.brand_name,"
    " company_cnpj = EXCLUDED.company_cnpj, account_type = EXCLUDED.account_type,"
    " last_seen_at = now()"
)


async def upsert_accounts(
    conn: AsyncConnection, user_id: str, consent_id: uuid.UUID, accounts: Sequence[Any]
) -> None:
    if not accounts:
        return
    await conn.execute(
        _UPSERT_ACCOUNT,
        [
            {
                "user_id": user_id,
                "account_id": a.account_id,
                "consent_id": consent_id,
                "brand_name": a.brand_name,
                "company_cnpj": a.company_cnpj,
                "account_type": a.account_type,
            }
            for a in accounts
        ],
    )


async def insert_transactions(
    conn: AsyncConnection,
    user_id: str,
    consent_id: uuid.UUID,
    import_id: uuid.UUID,
    transactions: Sequence[StatementTransaction],
) -> int:
    """Insert what is new; returns how many rows were new (the rest were already stored)."""
    if not transactions:
        return 0
    # One statement per page with unnest: 1,000 rows in one round trip.
    result = await conn.execute(
        text(
            "INSERT INTO of_transactions (user_id, account_id, transaction_id, consent_id,"
            " import_id, booked_at, amount_minor, currency, type, description, counterparty)"
            " SELECT :user_id, t.account_id, t.transaction_id, :consent_id, :import_id,"
            " t.booked_at, t.amount_minor, t.currency, t.type, t.description, t.counterparty"
            " FROM unnest(CAST(:account_ids AS text[]), CAST(:tx_ids AS text[]),"
            " CAST(:booked AS timestamptz[]), CAST(:amounts AS bigint[]),"
            " CAST(:currencies AS text[]), CAST(:types AS text[]),"
            " CAST(:descriptions AS text[]), CAST(:counterparties AS text[]))"
            " AS t(account_id, transaction_id, booked_at, amount_minor, currency, type,"
            " description, counterparty)"
            " ON CONFLICT (user_id, account_id, transaction_id) DO NOTHING"
        ),
        {
            "user_id": user_id,
            "consent_id": consent_id,
            "import_id": import_id,
            "account_ids": [t.account_id for t in transactions],
            "tx_ids": [t.transaction_id for t in transactions],
            "booked": [t.booked_at for t in transactions],
            "amounts": [t.amount_minor for t in transactions],
            "currencies": [t.currency for t in transactions],
            "types": [t.type for t in transactions],
            "descriptions": [t.description for t in transactions],
            "counterparties": [t.counterparty for t in transactions],
        },
    )
    return int(result.rowcount or 0)


async def user_transactions(
    conn: AsyncConnection, user_id: str, since: datetime, until: datetime
) -> list[StatementTransaction]:
    rows = await conn.execute(
        text(
            "SELECT account_id, transaction_id, booked_at, amount_minor, currency, type,"
            " description, counterparty FROM of_transactions"
            " WHERE user_id = :user_id AND booked_at >= :since AND booked_at < :until"
            " ORDER BY booked_at, account_id, transaction_id LIMIT :limit"
        ),
        {"user_id": user_id, "since": since, "until": until, "limit": MAX_SCORE_TRANSACTIONS},
    )
    return [
        StatementTransaction(
            account_id=r.account_id,
            transaction_id=r.transaction_id,
            booked_at=r.booked_at,
            amount_minor=int(r.amount_minor),
            currency=r.currency,
            type=r.type,
            description=r.description,
            counterparty=r.counterparty,
        )
        for r in rows
    ]


async def scoring_state(
    conn: AsyncConnection, user_id: str
) -> tuple[tuple[int, datetime | None], str]:
    """The statements' version and the KYC status, in one round trip (Score's path).

    The version changes whenever an import stores anything for the user (each
    page bumps its import's updated_at), so cached features keyed by it are
    never stale. The KYC status is risk's projection of the kyc events
    (kyc_projection.py); no row means KYC was never started.
    """
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS n, max(updated_at) AS last,"
                " (SELECT status FROM kyc_statuses WHERE user_id = CAST(:user_id AS uuid)) AS kyc"
                " FROM statement_imports WHERE user_id = CAST(:user_id AS text)"
            ),
            {"user_id": user_id},
        )
    ).one()
    return (int(row.n), row.last), row.kyc or kyc_status.NOT_STARTED


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class DecisionRow:
    id: uuid.UUID
    user_id: str
    reference: str
    requested_amount_minor: int
    currency: str
    term_months: int
    decided_on: date
    model_version: str
    applicant: dict[str, Any]
    features: dict[str, str]
    outcome: str
    probability_of_default: str
    score: int
    band: str
    max_amount_minor: int
    monthly_rate: str
    annual_rate: str
    reasons: list[dict[str, Any]]
    created_at: datetime
    expire_at: datetime


_DECISION_COLS = (
    "id, user_id, reference, requested_amount_minor, currency, term_months, decided_on,"
    " model_version, applicant, features, outcome, probability_of_default, score, band,"
    " max_amount_minor, monthly_rate, annual_rate, reasons, created_at, expire_at"
)

_INSERT_DECISION = text(
    f"INSERT INTO decisions ({_DECISION_COLS}) VALUES (:id, :user_id, :reference,"
    " :requested_amount_minor, :currency, :term_months, :decided_on, :model_version,"
    " :applicant, :features, :outcome, :probability_of_default, :score, :band,"
    " :max_amount_minor, :monthly_rate, :annual_rate, :reasons, now(),"
    " now() + make_interval(secs => :valid_seconds))"
    f" RETURNING {_DECISION_COLS}"
).bindparams(
    bindparam("applicant", type_=JSONB),
    bindparam("features", type_=JSONB),
    bindparam("reasons", type_=JSONB),
)


async def insert_decision(conn: AsyncConnection, values: dict[str, Any]) -> DecisionRow:
    row = (await conn.execute(_INSERT_DECISION, values)).one()
    return DecisionRow(**row._mapping)


async def get_decision(conn: AsyncConnection, decision_id: uuid.UUID) -> DecisionRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_DECISION_COLS} FROM decisions WHERE id = :id"), {"id": decision_id}
        )
    ).first()
    return DecisionRow(**row._mapping) if row is not None else None


async def list_decisions(
    conn: AsyncConnection, user_id: str | None, limit: int, after: Keyset | None
) -> list[DecisionRow]:
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    cursor = " AND " + pagination.keyset_condition(after, params)
    rows = await conn.execute(
        text(
            f"SELECT {_DECISION_COLS} FROM decisions"
            " WHERE (CAST(:user_id AS text) IS NULL OR user_id = :user_id)"
            f"{cursor} ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [DecisionRow(**r._mapping) for r in rows]


async def latest_decisions(conn: AsyncConnection, after_user: str, limit: int) -> list[DecisionRow]:
    """Each customer's latest decision, by user id after `after_user` (rescore batches)."""
    rows = await conn.execute(
        text(
            f"SELECT DISTINCT ON (user_id) {_DECISION_COLS} FROM decisions"
            " WHERE user_id > :after ORDER BY user_id, created_at DESC, id DESC LIMIT :limit"
        ),
        {"after": after_user, "limit": limit},
    )
    return [DecisionRow(**r._mapping) for r in rows]
