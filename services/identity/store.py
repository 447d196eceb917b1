"""Identity's tables and queries (SQLAlchemy Core text, psycopg 3).

Every function takes the caller's connection so that the caller decides the
transaction; nothing here commits. Rows come back as plain dataclasses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform import pagination

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class UserRow:
    id: uuid.UUID
    email: str
    phone_number: str
    full_name: str
    birth_date: date
    cpf_ciphertext: bytes
    address_ciphertext: bytes | None
    password_hash: str
    roles: list[str]
    kyc_status: str
    mfa_enabled: bool
    mfa_secret_ciphertext: bytes | None
    mfa_pending_ciphertext: bytes | None
    mfa_last_step: int | None
    created_at: datetime
    updated_at: datetime
    version: int


_USER_COLUMNS = (
    "id, email, phone_number, full_name, birth_date, cpf_ciphertext, address_ciphertext, "
    "password_hash, roles, kyc_status, mfa_enabled, mfa_secret_ciphertext, "
    "mfa_pending_ciphertext, mfa_last_step, created_at, updated_at, version"
)


def _user(row: object) -> UserRow:
    return UserRow(**row._mapping)  # type: ignore[attr-defined]


async def email_or_cpf_taken(conn: AsyncConnection, email: str, cpf_hash: bytes) -> set[str]:
    """Which of the unique fields already belong to someone ('email', 'cpf')."""
    result = await conn.execute(
        text(
            "SELECT email = :email AS e, cpf_hash = :cpf AS c FROM users "
            "WHERE email = :email OR cpf_hash = :cpf"
        ),
        {"email": email, "cpf": cpf_hash},
    )
    taken: set[str] = set()
    for e, c in result.all():
        if e:
            taken.add("email")
        if c:
            taken.add("cpf")
    return taken


async def insert_user(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    email: str,
    phone_number: str,
    full_name: str,
    birth_date: date,
    cpf_ciphertext: bytes,
    cpf_hash: bytes,
    address_ciphertext: bytes | None,
    password_hash: str,
) -> UserRow:
    result = await conn.execute(
        text(
            "INSERT INTO users (id, email, phone_number, full_name, birth_date, cpf_ciphertext, "
            "cpf_hash, address_ciphertext, password_hash) VALUES "
            "(:id, :email, :phone, :name, :birth, :cpf_ct, :cpf_hash, :addr_ct, :pw) "
            "RETURNING " + _USER_COLUMNS
        ),
        {
            "id": user_id,
            "email": email,
            "phone": phone_number,
            "name": full_name,
            "birth": birth_date,
            "cpf_ct": cpf_ciphertext,
            "cpf_hash": cpf_hash,
            "addr_ct": address_ciphertext,
            "pw": password_hash,
        },
    )
    return _user(result.one())


async def get_user(
    conn: AsyncConnection, user_id: uuid.UUID, *, for_update: bool = False
) -> UserRow | None:
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(
        text(f"SELECT {_USER_COLUMNS} FROM users WHERE id = :id{lock}"),
        {"id": user_id},
    )
    row = result.one_or_none()
    return _user(row) if row else None


async def get_user_by_email(conn: AsyncConnection, email: str) -> UserRow | None:
    result = await conn.execute(
        text(f"SELECT {_USER_COLUMNS} FROM users WHERE email = :email"),
        {"email": email},
    )
    row = result.one_or_none()
    return _user(row) if row else None


async def update_profile(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    *,
    full_name: str,
    phone_number: str,
    address_ciphertext: bytes | None,
) -> UserRow:
    result = await conn.execute(
        text(
            "UPDATE users SET full_name = :name, phone_number = :phone, "
            "address_ciphertext = :addr_ct, updated_at = now(), "
            "version = version + 1 WHERE id = :id RETURNING " + _USER_COLUMNS
        ),
        {"id": user_id, "name": full_name, "phone": phone_number, "addr_ct": address_ciphertext},
    )
    return _user(result.one())


async def set_mfa_pending(conn: AsyncConnection, user_id: uuid.UUID, ciphertext: bytes) -> None:
    await conn.execute(
        text("UPDATE users SET mfa_pending_ciphertext = :ct, updated_at = now() WHERE id = :id"),
        {"id": user_id, "ct": ciphertext},
    )


async def confirm_mfa(conn: AsyncConnection, user_id: uuid.UUID, step: int) -> UserRow:
    result = await conn.execute(
        text(
            "UPDATE users SET mfa_secret_ciphertext = mfa_pending_ciphertext, "
            "mfa_pending_ciphertext = NULL, mfa_enabled = true, mfa_last_step = :step, "
            "updated_at = now(), version = version + 1 WHERE id = :id RETURNING " + _USER_COLUMNS
        ),
        {"id": user_id, "step": step},
    )
    return _user(result.one())


async def disable_mfa(conn: AsyncConnection, user_id: uuid.UUID) -> UserRow:
    result = await conn.execute(
        text(
            "UPDATE users SET mfa_secret_ciphertext = NULL, "
            "mfa_enabled = false, mfa_last_step = NULL, updated_at = now(), "
            "version = version + 1 WHERE id = :id RETURNING " + _USER_COLUMNS
        ),
        {"id": user_id},
    )
    return _user(result.one())


async def record_mfa_step(conn: AsyncConnection, user_id: uuid.UUID, step: int) -> None:
    await conn.execute(
        text("UPDATE users SET mfa_last_step = :step WHERE id = :id"),
        {"id": user_id, "step": step},
    )


async def set_kyc_status(conn: AsyncConnection, user_id: uuid.UUID, status: str) -> None:
    await conn.execute(
        text(
            "UPDATE users SET kyc_status = :s, updated_at = now(), version = version + 1 "
            "WHERE id = :id"
        ),
        {"id": user_id, "s": status},
    )


# --- devices -----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    id: uuid.UUID
    user_id: uuid.UUID
    client_device_id: str
    display_name: str
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None


_DEVICE_COLUMNS = (
    "id, user_id, client_device_id, display_name, created_at, last_seen_at, revoked_at"
)


async def upsert_device(
    conn: AsyncConnection, user_id: uuid.UUID, client_device_id: str, display_name: str
) -> DeviceRow:
    """The device row, created on first sign-in; `last_seen_at` refreshed."""
    result = await conn.execute(
        text(
            "INSERT INTO devices (id, user_id, client_device_id, display_name) "
            "VALUES (:id, :user, :cdid, :dname) "
            "ON CONFLICT (user_id, client_device_id) DO UPDATE SET last_seen_at = now(), "
            "display_name = CASE WHEN EXCLUDED.display_name = '' THEN devices.display_name "
            "ELSE EXCLUDED.display_name END "
            "RETURNING " + _DEVICE_COLUMNS
        ),
        {"id": uuid.uuid4(), "user": user_id, "cdid": client_device_id, "dname": display_name},
    )
    return DeviceRow(**result.one()._mapping)


async def get_device(
    conn: AsyncConnection, user_id: uuid.UUID, client_device_id: str
) -> DeviceRow | None:
    result = await conn.execute(
        text(
            f"SELECT {_DEVICE_COLUMNS} FROM devices "
            "WHERE user_id = :user AND client_device_id = :cdid"
        ),
        {"user": user_id, "cdid": client_device_id},
    )
    row = result.one_or_none()
    return DeviceRow(**row._mapping) if row else None


async def list_devices(
    conn: AsyncConnection, user_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[DeviceRow]:
    """Newest first, keyset-paginated on (created_at, id) so pages never shift."""
    assert 0 < limit <= MAX_PAGE_SIZE + 1
    params: dict[str, object] = {"user": user_id, "limit": limit}
    where = f"user_id = :user AND {pagination.keyset_condition(after, params)}"
    result = await conn.execute(
        text(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE {where} "
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [DeviceRow(**row._mapping) for row in result.all()]


async def reinstate_device(conn: AsyncConnection, device_id: uuid.UUID) -> None:
    await conn.execute(
        text("UPDATE devices SET revoked_at = NULL WHERE id = :id"), {"id": device_id}
    )


async def revoke_device(conn: AsyncConnection, device_id: uuid.UUID) -> DeviceRow:
    result = await conn.execute(
        text(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = :id "
            "RETURNING " + _DEVICE_COLUMNS
        ),
        {"id": device_id},
    )
    return DeviceRow(**result.one()._mapping)


# --- sessions ----------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    id: uuid.UUID
    user_id: uuid.UUID
    device_id: uuid.UUID
    client_device_id: str
    current_token_hash: str
    generation: int
    expires_at: datetime
    revoked_at: datetime | None
    device_revoked_at: datetime | None


async def insert_session(
    conn: AsyncConnection,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID,
    token_hash: str,
    expires_at: datetime,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO sessions (id, user_id, device_id, current_token_hash, expires_at) "
            "VALUES (:id, :user, :device, :hash, :exp)"
        ),
        {
            "id": session_id,
            "user": user_id,
            "device": device_id,
            "hash": token_hash,
            "exp": expires_at,
        },
    )


async def get_session_for_update(conn: AsyncConnection, session_id: uuid.UUID) -> SessionRow | None:
    # FOR UPDATE OF s: two concurrent refreshes with the same token serialise
    # here, so exactly one rotates and the other sees a retired token.
    result = await conn.execute(
        text(
            "SELECT s.id, s.user_id, s.device_id, d.client_device_id, s.current_token_hash, "
            "s.generation, s.expires_at, s.revoked_at, d.revoked_at AS device_revoked_at "
            "FROM sessions s JOIN devices d ON d.id = s.device_id WHERE s.id = :id "
            "FOR UPDATE OF s"
        ),
        {"id": session_id},
    )
    row = result.one_or_none()
    return SessionRow(**row._mapping) if row else None


async def retired_hashes(conn: AsyncConnection, session_id: uuid.UUID) -> frozenset[str]:
    result = await conn.execute(
        text("SELECT token_hash FROM retired_refresh_tokens WHERE session_id = :id"),
        {"id": session_id},
    )
    return frozenset(r[0] for r in result.all())


async def is_retired_anywhere(conn: AsyncConnection, token_hash: str) -> uuid.UUID | None:
    result = await conn.execute(
        text("SELECT session_id FROM retired_refresh_tokens WHERE token_hash = :h"),
        {"h": token_hash},
    )
    row = result.one_or_none()
    return row[0] if row else None


async def rotate_session(
    conn: AsyncConnection, session_id: uuid.UUID, old_hash: str, new_hash: str
) -> None:
    await conn.execute(
        text("INSERT INTO retired_refresh_tokens (token_hash, session_id) VALUES (:h, :id)"),
        {"h": old_hash, "id": session_id},
    )
    await conn.execute(
        text(
            "UPDATE sessions SET current_token_hash = :new, generation = generation + 1 "
            "WHERE id = :id"
        ),
        {"new": new_hash, "id": session_id},
    )
    await conn.execute(
        text(
            "UPDATE devices SET last_seen_at = now() "
            "WHERE id = (SELECT device_id FROM sessions WHERE id = :id)"
        ),
        {"id": session_id},
    )


async def revoke_sessions(
    conn: AsyncConnection,
    *,
    reason: str,
    session_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Revoke by session, by user (all) or by device; returns (session, user) newly revoked."""
    assert [session_id, user_id, device_id].count(None) == 2, "exactly one selector"
    value: uuid.UUID | None
    if session_id is not None:
        where, value = "id = :v", session_id
    elif user_id is not None:
        where, value = "user_id = :v", user_id
    else:
        where, value = "device_id = :v", device_id
    result = await conn.execute(
        text(
            f"UPDATE sessions SET revoked_at = now(), revoke_reason = :reason "
            f"WHERE {where} AND revoked_at IS NULL RETURNING id, user_id"
        ),
        {"v": value, "reason": reason},
    )
    return [(r[0], r[1]) for r in result.all()]
