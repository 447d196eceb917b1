"""Identity's use cases: the service layer between the API and the domain.

Each public method is one use case. It validates with the pure domain, reads
and writes through `store` inside one transaction (the idempotency
interceptor's, when the RPC is mutating), and records the audit entry and the
outbox event in that same transaction. Errors are AppErrors with a stable
reason; nothing here knows about protobuf.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

import argon2
import grpc
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.brazil.documents import mask_cpf
from services.identity import store
from services.identity.domain import lockout, mfa
from services.identity.domain.access_tokens import access_claims
from services.identity.domain.errors import InvalidInput, Violation
from services.identity.domain.refresh_tokens import (
    ACCESS_TOKEN_TTL,
    REFRESH_TOKEN_TTL,
    RefreshOutcome,
    SessionState,
    decide_refresh,
    new_refresh_token,
    parse_refresh_token,
    token_hash,
)
from services.identity.domain.registration import (
    Address,
    check_address,
    check_full_name,
    check_phone,
    normalize_address,
    normalize_email,
    validate_registration,
)
from services.identity.events import (
    mfa_changed_event,
    profile_updated_event,
    registered_event,
    session_revoked_event,
)
from services.identity.service_views import UserView
from services.identity.signing import TokenSigner
from services.platform import audit, outbox, pagination
from services.platform.auth import REVOKED_SESSION_PREFIX, Principal
from services.platform.crypto import FieldCipher
from services.platform.db import Database
from services.platform.errors import (
    AppError,
    already_exists,
    failed_precondition,
    invalid_argument,
    not_found,
    unauthenticated,
    unavailable,
)

DEFAULT_PAGE_SIZE = 20
UPDATABLE_PATHS = frozenset({"full_name", "phone_number", "address"})
MAX_DEVICE_ID_LENGTH = 128
MAX_DEVICE_NAME_LENGTH = 100
# AES-GCM associated data per column: a ciphertext moved to another column won't open.
CPF_CONTEXT = b"identity.users.cpf"
ADDRESS_CONTEXT = b"identity.users.address"
MFA_CONTEXT = b"identity.users.mfa"
# Revocation entries only need to outlive the access tokens they cancel.
REVOCATION_TTL = ACCESS_TOKEN_TTL + timedelta(minutes=6)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    session_id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True)
class ProfileChanges:
    full_name: str
    phone_number: str
    address: Address
    paths: frozenset[str]  # the top-level paths the caller asked to change
    etag: str


@dataclass(frozen=True)
class DevicePage:
    devices: list[store.DeviceRow]
    next_page_token: str


class IdentityService:
    def __init__(
        self,
        *,
        db: Database,
        redis: Redis,
        cipher: FieldCipher,
        signer: TokenSigner,
        issuer: str,
        audience: str,
        hasher: argon2.PasswordHasher | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._redis = redis
        self._cipher = cipher
        self._signer = signer
        self._issuer = issuer
        self._audience = audience
        self._hasher = hasher or argon2.PasswordHasher()  # argon2id, RFC 9106 defaults
        self._clock = clock
        # Verifying against this when the e-mail is unknown keeps the answer's
        # timing the same as for a wrong password (no account enumeration).
        self._dummy_hash = self._hasher.hash("dummy password for timing")

    # --- registration and profile -----------------------------------------

    async def register(
        self,
        *,
        full_name: str,
        email: str,
        phone_number: str,
        birth_date: str,
        cpf: str,
        password: str,
        address: Address,
    ) -> UserView:
        try:
            reg = validate_registration(
                full_name=full_name,
                email=email,
                phone_number=phone_number,
                birth_date=birth_date,
                cpf=cpf,
                password=password,
                address=address,
                today=self._clock().date(),
            )
        except InvalidInput as exc:
            raise _invalid(exc.violations) from exc
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        cpf_hash = self._cipher.lookup_hash(reg.cpf)
        cpf_ct = self._cipher.encrypt(reg.cpf, context=CPF_CONTEXT)
        addr_ct = self._encrypt_address(reg.address)
        user_id = uuid.uuid4()
        async with self._db.transaction() as conn:
            taken = await store.email_or_cpf_taken(conn, reg.email, cpf_hash)
            _raise_if_taken(taken)
            try:
                async with conn.begin_nested():
                    row = await store.insert_user(
                        conn,
                        user_id=user_id,
                        email=reg.email,
                        phone_number=reg.phone_number,
                        full_name=reg.full_name,
                        birth_date=reg.birth_date,
                        cpf_ciphertext=cpf_ct,
                        cpf_hash=cpf_hash,
                        address_ciphertext=addr_ct,
                        password_hash=password_hash,
                    )
            except IntegrityError as exc:
                # A concurrent registration won the race for the same e-mail or CPF.
                _raise_if_taken({"email"} if "email" in str(exc.orig) else {"cpf"})
                raise
            view = self._view(row)
            await audit.record(
                conn,
                entity="user",
                entity_id=str(user_id),
                action="registered",
                data={"email": reg.email},
                performed_by=str(user_id),
            )
            await outbox.add_event(conn, event=registered_event(view), aggregate=f"users/{view.id}")
        return view

    async def get_user(self, principal: Principal, user_ref: str) -> UserView:
        user_id = _resolve_user(principal, user_ref)
        async with self._db.transaction() as conn:
            row = await _existing_user(conn, user_id)
        return self._view(row)

    async def update_profile(
        self, principal: Principal, user_ref: str, changes: ProfileChanges
    ) -> UserView:
        user_id = _resolve_user(principal, user_ref)
        if not changes.paths:
            raise invalid_argument(
                "NOTHING_TO_UPDATE",
                "no updatable field given",
                [("update_mask", "name at least one of " + ", ".join(sorted(UPDATABLE_PATHS)))],
            )
        async with self._db.transaction() as conn:
            row = await _existing_user(conn, user_id, for_update=True)
            if changes.etag and changes.etag != _etag(row.version):
                raise AppError(
                    grpc.StatusCode.ABORTED,
                    "ETAG_MISMATCH",
                    "the profile changed since it was read; read it again",
                )
            current = self._view(row)
            name, phone, address = current.full_name, current.phone_number, current.address
            violations: list[Violation] = []
            if "full_name" in changes.paths:
                name, found = check_full_name(changes.full_name, "user.full_name")
                violations += found
            if "phone_number" in changes.paths:
                phone, found = check_phone(changes.phone_number, "user.phone_number")
                violations += found
            if "address" in changes.paths:
                violations += check_address(changes.address, "user.address")
                address = normalize_address(changes.address)
            if violations:
                raise _invalid(violations)
            row = await store.update_profile(
                conn,
                user_id,
                full_name=name,
                phone_number=phone,
                address_ciphertext=self._encrypt_address(address),
            )
            view = self._view(row)
            await audit.record(
                conn,
                entity="user",
                entity_id=str(user_id),
                action="profile_updated",
                data={"fields": sorted(changes.paths)},
                performed_by=principal.subject,
            )
            await outbox.add_event(
                conn,
                event=profile_updated_event(view, sorted(changes.paths)),
                aggregate=f"users/{view.id}",
            )
        return view

    # --- sessions ---------------------------------------------------------------

    async def login(
        self,
        *,
        email: str,
        password: str,
        device_id: str,
        device_name: str,
        totp_code: str,
        client_address: str,
    ) -> Tokens:
        email = normalize_email(email)
        violations = []
        if not email:
            violations.append(Violation("email", "is required"))
        if not password:
            violations.append(Violation("password", "is required"))
        violations += _device_violations(device_id, device_name)
        if violations:
            raise _invalid(violations)
        account_key = "acct:" + self._cipher.lookup_hash(email).hex()
        address_key = "addr:" + client_address
        await self._refuse_if_locked(account_key, address_key)

        async with self._db.transaction() as conn:
            user = await store.get_user_by_email(conn, email)
        hash_to_check = user.password_hash if user else self._dummy_hash
        password_ok = await asyncio.to_thread(self._verify_password, hash_to_check, password)
        if user is None or not password_ok:
            await self._record_failure(account_key, address_key)
            raise unauthenticated("INVALID_CREDENTIALS", "e-mail or password is wrong")

        now = self._clock()
        mfa_step: int | None = None
        if user.mfa_enabled:
            if not totp_code.strip():
                raise unauthenticated("MFA_REQUIRED", "this account needs a TOTP code (totp_code)")
            secret = self._decrypt_secret(user.mfa_secret_ciphertext)
            result = mfa.verify_totp(secret, totp_code, now, user.mfa_last_step)
            if not result.accepted:
                await self._record_failure(account_key, address_key)
                raise unauthenticated("MFA_CODE_INVALID", "the TOTP code is wrong or was used")
            mfa_step = result.step
        await self._clear_failures(account_key)

        session_id = uuid.uuid4()
        refresh = new_refresh_token(str(session_id))
        refresh_expires = now + REFRESH_TOKEN_TTL
        async with self._db.transaction() as conn:
            device = await store.upsert_device(conn, user.id, device_id, device_name.strip())
            if device.revoked_at is not None:
                # A fresh password (and MFA) proof re-admits a revoked device.
                await store.reinstate_device(conn, device.id)
            await store.insert_session(
                conn,
                session_id=session_id,
                user_id=user.id,
                device_id=device.id,
                token_hash=token_hash(refresh),
                expires_at=refresh_expires,
            )
            if mfa_step is not None:
                await store.record_mfa_step(conn, user.id, mfa_step)
            await audit.record(
                conn,
                entity="session",
                entity_id=str(session_id),
                action="created",
                data={"device": device_id},
                performed_by=str(user.id),
            )
        return self._tokens(user, session_id, refresh, refresh_expires, now)

    async def refresh(self, *, refresh_token: str, device_id: str) -> Tokens:
        violations = _device_violations(device_id, "")
        parsed = parse_refresh_token(refresh_token)
        if parsed is None:
            violations.append(Violation("refresh_token", "is not a refresh token"))
        if violations:
            raise _invalid(violations)
        assert parsed is not None
        try:
            session_id = uuid.UUID(parsed.session_id)
        except ValueError as exc:
            raise _invalid([Violation("refresh_token", "is not a refresh token")]) from exc
        presented = token_hash(refresh_token)
        now = self._clock()
        new_token = new_refresh_token(str(session_id))
        async with self._db.transaction() as conn:
            row = await store.get_session_for_update(conn, session_id)
            state = None
            if row is not None:
                state = SessionState(
                    current_token_hash=row.current_token_hash,
                    retired_token_hashes=await store.retired_hashes(conn, session_id),
                    device_id=row.client_device_id,
                    expires_at=row.expires_at,
                    revoked=row.revoked_at is not None or row.device_revoked_at is not None,
                )
            outcome = decide_refresh(state, presented, device_id, now)
            if outcome is RefreshOutcome.REUSED:
                assert row is not None
                revoked = await _revoke_sessions(conn, "REFRESH_TOKEN_REUSE", session_id=session_id)
                await audit.record(
                    conn,
                    entity="session",
                    entity_id=str(session_id),
                    action="revoked_on_reuse",
                    data={},
                    performed_by="system",
                )
            elif outcome is RefreshOutcome.ROTATE:
                assert row is not None
                await store.rotate_session(conn, session_id, presented, token_hash(new_token))
                user = await store.get_user(conn, row.user_id)
                assert user is not None
        # Outside the transaction: the revocation above must be committed even
        # though the caller gets an error.
        if outcome is RefreshOutcome.REUSED:
            await self._revoke_in_redis(revoked or [session_id])
            raise unauthenticated(
                "REFRESH_TOKEN_REUSED",
                "this refresh token was already used; the session is revoked",
            )
        if outcome is not RefreshOutcome.ROTATE:
            reason = {
                RefreshOutcome.REVOKED: ("REFRESH_TOKEN_REVOKED", "the session was revoked"),
                RefreshOutcome.EXPIRED: ("REFRESH_TOKEN_EXPIRED", "the refresh token expired"),
                RefreshOutcome.WRONG_DEVICE: (
                    "REFRESH_TOKEN_WRONG_DEVICE",
                    "the refresh token belongs to another device",
                ),
                RefreshOutcome.UNKNOWN: ("REFRESH_TOKEN_INVALID", "unknown refresh token"),
            }[outcome]
            raise unauthenticated(*reason)
        assert row is not None and user is not None
        return self._tokens(user, session_id, new_token, row.expires_at, now)

    async def logout(self, principal: Principal, all_sessions: bool) -> None:
        user_id = uuid.UUID(principal.subject)
        async with self._db.transaction() as conn:
            if all_sessions:
                revoked = await _revoke_sessions(conn, "LOGOUT", user_id=user_id)
            else:
                revoked = await _revoke_sessions(
                    conn, "LOGOUT", session_id=uuid.UUID(principal.session_id)
                )
            await audit.record(
                conn,
                entity="session",
                entity_id=principal.session_id,
                action="logout_all" if all_sessions else "logout",
                data={"sessions": len(revoked)},
                performed_by=principal.subject,
            )
        # The caller's own session too, even if it was already revoked in the DB.
        await self._revoke_in_redis([*revoked, uuid.UUID(principal.session_id)])

    # --- MFA ----------------------------------------------------------------------

    async def enroll_mfa(self, principal: Principal, user_ref: str) -> tuple[str, str]:
        user_id = _resolve_user(principal, user_ref, owner_only=True)
        secret = mfa.new_secret()
        async with self._db.transaction() as conn:
            row = await _existing_user(conn, user_id, for_update=True)
            if row.mfa_enabled:
                raise failed_precondition("MFA_ALREADY_ENABLED", "MFA is already enabled")
            await store.set_mfa_pending(
                conn, user_id, self._cipher.encrypt(secret, context=MFA_CONTEXT)
            )
            await _audit_user(conn, user_id, "mfa_enrolment_started", principal)
        return secret, mfa.provisioning_uri(secret, row.email)

    async def confirm_mfa(self, principal: Principal, user_ref: str, code: str) -> UserView:
        user_id = _resolve_user(principal, user_ref, owner_only=True)
        async with self._db.transaction() as conn:
            row = await _existing_user(conn, user_id, for_update=True)
            if row.mfa_enabled and row.mfa_pending_ciphertext is None:
                return self._view(row)  # already confirmed: idempotent
            if row.mfa_pending_ciphertext is None:
                raise failed_precondition("MFA_NOT_ENROLLED", "call EnrollMfa first")
            secret = self._decrypt_secret(row.mfa_pending_ciphertext)
            result = mfa.verify_totp(secret, code, self._clock(), row.mfa_last_step)
            if not result.accepted:
                raise invalid_argument(
                    "MFA_CODE_INVALID",
                    "the TOTP code is wrong",
                    [("code", "does not match the pending secret")],
                )
            row = await store.confirm_mfa(conn, user_id, result.step)
            await outbox.add_event(
                conn, event=mfa_changed_event(row.id, True), aggregate=f"users/{row.id}"
            )
            await _audit_user(conn, user_id, "mfa_enabled", principal)
        return self._view(row)

    async def disable_mfa(self, principal: Principal, user_ref: str, code: str) -> UserView:
        user_id = _resolve_user(principal, user_ref, owner_only=True)
        async with self._db.transaction() as conn:
            row = await _existing_user(conn, user_id, for_update=True)
            if not row.mfa_enabled:
                return self._view(row)  # already off: idempotent
            secret = self._decrypt_secret(row.mfa_secret_ciphertext)
            result = mfa.verify_totp(secret, code, self._clock(), row.mfa_last_step)
            if not result.accepted:
                raise invalid_argument(
                    "MFA_CODE_INVALID",
                    "the TOTP code is wrong or was used",
                    [("code", "does not match")],
                )
            row = await store.disable_mfa(conn, user_id)
            await outbox.add_event(
                conn, event=mfa_changed_event(row.id, False), aggregate=f"users/{row.id}"
            )
            await _audit_user(conn, user_id, "mfa_disabled", principal)
        return self._view(row)

    # --- devices ------------------------------------------------------------------

    async def list_devices(
        self, principal: Principal, user_ref: str, page_size: int, page_token: str
    ) -> DevicePage:
        user_id = _resolve_user(principal, user_ref)
        size = pagination.page_size(
            page_size, default=DEFAULT_PAGE_SIZE, maximum=store.MAX_PAGE_SIZE
        )
        listing = f"devices:{user_id}"
        after = pagination.decode_time_id(page_token, listing) if page_token else None
        async with self._db.transaction() as conn:
            rows = await store.list_devices(conn, user_id, size + 1, after)
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            next_token = pagination.encode_time_id(listing, rows[-1].created_at, rows[-1].id)
        return DevicePage(devices=rows, next_page_token=next_token)

    async def revoke_device(
        self, principal: Principal, user_ref: str, client_device_id: str
    ) -> store.DeviceRow:
        user_id = _resolve_user(principal, user_ref)
        async with self._db.transaction() as conn:
            device = await store.get_device(conn, user_id, client_device_id)
            if device is None:
                raise not_found("DEVICE_NOT_FOUND", "no such device")
            device = await store.revoke_device(conn, device.id)
            revoked = await _revoke_sessions(conn, "DEVICE_REVOKED", device_id=device.id)
            await audit.record(
                conn,
                entity="device",
                entity_id=str(device.id),
                action="revoked",
                data={"sessions": len(revoked)},
                performed_by=principal.subject,
            )
        await self._revoke_in_redis(revoked)
        return device

    async def get_identity(self, principal: Principal, user_id: str) -> tuple[UserView, str]:
        """The profile plus the unmasked CPF, for other services' verifications only."""
        # The interceptor already demands role "service" for internal RPCs;
        # checked again here because this is the one place the raw CPF leaves.
        if not principal.is_service:
            raise AppError(
                grpc.StatusCode.PERMISSION_DENIED,
                "PERMISSION_DENIED",
                "internal to the platform's services",
            )
        try:
            wanted = uuid.UUID(user_id)
        except ValueError as exc:
            raise invalid_argument(
                "NAME_INVALID", "not a user name", [("name", "must be users/{uuid}")]
            ) from exc
        async with self._db.transaction() as conn:
            row = await _existing_user(conn, wanted)
            await _audit_user(conn, wanted, "identity_disclosed", principal)
        return self._view(row), self._cipher.decrypt_text(row.cpf_ciphertext, context=CPF_CONTEXT)

    def jwks(self) -> str:
        return self._signer.jwks_json

    # --- helpers --------------------------------------------------------------------

    def _tokens(
        self,
        user: store.UserRow,
        session_id: uuid.UUID,
        refresh: str,
        refresh_expires: datetime,
        now: datetime,
    ) -> Tokens:
        claims = access_claims(
            user_id=str(user.id),
            session_id=str(session_id),
            roles=list(user.roles),
            issuer=self._issuer,
            audience=self._audience,
            now=now,
        )
        return Tokens(
            access_token=self._signer.sign(claims),
            access_expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),  # type: ignore[call-overload]
            refresh_token=refresh,
            refresh_expires_at=refresh_expires,
            session_id=session_id,
            user_id=user.id,
        )

    def _verify_password(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (argon2.exceptions.VerifyMismatchError, argon2.exceptions.InvalidHashError):
            return False

    def _encrypt_address(self, address: Address) -> bytes | None:
        if address.is_empty():
            return None
        plain = json.dumps(asdict(address), sort_keys=True)
        return self._cipher.encrypt(plain, context=ADDRESS_CONTEXT)

    def _decrypt_secret(self, ciphertext: bytes | None) -> str:
        assert ciphertext is not None, "MFA secret missing"
        return self._cipher.decrypt_text(ciphertext, context=MFA_CONTEXT)

    def _view(self, row: store.UserRow) -> UserView:
        cpf = self._cipher.decrypt_text(row.cpf_ciphertext, context=CPF_CONTEXT)
        address = Address()
        if row.address_ciphertext is not None:
            plain = self._cipher.decrypt_text(row.address_ciphertext, context=ADDRESS_CONTEXT)
            address = replace(Address(), **json.loads(plain))
        return UserView(
            id=row.id,
            full_name=row.full_name,
            email=row.email,
            phone_number=row.phone_number,
            birth_date=row.birth_date,
            cpf_masked=mask_cpf(cpf),
            address=address,
            kyc_status=row.kyc_status,
            mfa_enabled=row.mfa_enabled,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
        )

    async def _refuse_if_locked(self, account_key: str, address_key: str) -> None:
        async with _redis_required("login lockout"):
            ttls = [await self._redis.ttl(f"login:lock:{k}") for k in (account_key, address_key)]
        remaining = max(ttls)
        if remaining > 0:
            raise AppError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "LOGIN_LOCKED",
                f"too many failed logins; try again in {remaining} s",
                metadata={"retry_after_seconds": str(remaining)},
            )

    async def _record_failure(self, account_key: str, address_key: str) -> None:
        async with _redis_required("login lockout"):
            await self._count_failures(account_key, address_key)

    async def _count_failures(self, account_key: str, address_key: str) -> None:
        for key, free in (
            (account_key, lockout.FREE_ATTEMPTS),
            (address_key, lockout.ADDRESS_FREE_ATTEMPTS),
        ):
            counter = f"login:fail:{key}"
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, lockout.FAILURE_MEMORY_SECONDS)
                failures, _ = await pipe.execute()
            seconds = lockout.lock_seconds(int(failures), free)
            if seconds:
                await self._redis.set(f"login:lock:{key}", "1", ex=seconds)

    async def _clear_failures(self, account_key: str) -> None:
        async with _redis_required("login lockout"):
            await self._redis.delete(f"login:fail:{account_key}", f"login:lock:{account_key}")

    async def _revoke_in_redis(self, session_ids: list[uuid.UUID]) -> None:
        if not session_ids:
            return
        ttl = int(REVOCATION_TTL.total_seconds())
        async with (
            _redis_required("session revocation"),
            self._redis.pipeline(transaction=False) as pipe,
        ):
            for sid in set(session_ids):
                pipe.set(f"{REVOKED_SESSION_PREFIX}{sid}", "1", ex=ttl)
            await pipe.execute()


@contextlib.asynccontextmanager
async def _redis_required(purpose: str) -> AsyncIterator[None]:
    """Redis down: fail closed with UNAVAILABLE (retryable), never INTERNAL.

    Lockout and revocation are security controls; skipping them silently would
    let a brute force or a revoked token through while Redis is away. Every
    caller is safe to retry (logout is idempotent; a failed login changed nothing).
    """
    try:
        yield
    except (RedisError, OSError) as exc:
        raise unavailable(
            "DEPENDENCY_UNAVAILABLE", f"{purpose} is temporarily unavailable; retry shortly"
        ) from exc


async def _revoke_sessions(
    conn: AsyncConnection,
    reason: str,
    *,
    session_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke sessions and announce each one (user.session_revoked), in one transaction."""
    revoked = await store.revoke_sessions(
        conn, reason=reason.lower(), session_id=session_id, user_id=user_id, device_id=device_id
    )
    for sid, uid in revoked:
        name = f"users/{uid}/sessions/{sid}"
        await outbox.add_event(conn, event=session_revoked_event(name, reason), aggregate=name)
    return [sid for sid, _ in revoked]


async def _existing_user(
    conn: AsyncConnection, user_id: uuid.UUID, *, for_update: bool = False
) -> store.UserRow:
    row = await store.get_user(conn, user_id, for_update=for_update)
    if row is None:
        raise not_found("USER_NOT_FOUND", "user not found")
    return row


async def _audit_user(
    conn: AsyncConnection, user_id: uuid.UUID, action: str, principal: Principal
) -> None:
    await audit.record(
        conn,
        entity="user",
        entity_id=str(user_id),
        action=action,
        data={},
        performed_by=principal.subject,
    )


def _etag(version: int) -> str:
    return f'W/"{version}"'


def etag_of(view: UserView) -> str:
    return _etag(view.version)


def _resolve_user(principal: Principal, user_ref: str, *, owner_only: bool = False) -> uuid.UUID:
    """`me` or the caller's own id; backoffice and services may read others unless owner_only.

    Any other id is PERMISSION_DENIED whether or not it exists, so ids cannot
    be probed (AIP-193).
    """
    if user_ref in ("", "me"):
        return uuid.UUID(principal.subject)
    try:
        wanted = uuid.UUID(user_ref)
    except ValueError as exc:
        raise invalid_argument(
            "NAME_INVALID", "not a user name", [("name", "must be users/me or users/{uuid}")]
        ) from exc
    if str(wanted) == principal.subject:
        return wanted
    if not owner_only and ("backoffice" in principal.roles or principal.is_service):
        # Operators and the platform's own services (risk reads the KYC status).
        return wanted
    raise AppError(
        grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "you may only access your own user"
    )


def _device_violations(device_id: str, device_name: str) -> list[Violation]:
    found = []
    if not device_id.strip():
        found.append(Violation("device_id", "is required"))
    elif len(device_id) > MAX_DEVICE_ID_LENGTH or not device_id.replace("-", "").isalnum():
        found.append(Violation("device_id", "must be up to 128 letters, digits or '-'"))
    if len(device_name) > MAX_DEVICE_NAME_LENGTH:
        found.append(Violation("device_name", f"must have at most {MAX_DEVICE_NAME_LENGTH} chars"))
    return found


def _raise_if_taken(taken: set[str]) -> None:
    if "email" in taken:
        raise already_exists("EMAIL_ALREADY_REGISTERED", "this e-mail is already registered")
    if "cpf" in taken:
        raise already_exists("CPF_ALREADY_REGISTERED", "this CPF is already registered")


def _invalid(violations: list[Violation]) -> AppError:
    return invalid_argument(
        "INVALID_ARGUMENT",
        "the request has invalid fields",
        [(v.field, v.description) for v in violations],
    )
