"""Ledger use cases between the API and the domain/store.

Writes of money go through the single writer (writer.py); reads use the
service's pool. RPC-level idempotency: CreateTransfers is `mutating`, and its
idempotency record (the platform's `idempotency_keys` row, with the
serialised response) is stored by the writer in the batch transaction that
commits its transfers, so the stored answer and the effect commit together.
The transfer ids are a second, finer idempotency: a retry with a new RPC key
but the same transfer ids gets `replayed` results with the original transfers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

import grpc
from google.protobuf import message
from sqlalchemy import text

from fintech.events.v1 import ledger_events_pb2
from services.ledger import queries, wire
from services.ledger.domain import reasons as r
from services.ledger.domain.model import (
    MAX_BATCH_TRANSFERS,
    Balances,
    TransferRecord,
    TransferResult,
)
from services.ledger.domain.validation import (
    ACCOUNT_PREFIX,
    TRANSFER_PREFIX,
    TransferInput,
    parse_name,
    parse_transfer,
)
from services.ledger.verify import Report, verify
from services.ledger.views import AccountView, EntryView
from services.ledger.writer import LedgerWriter, Recorded
from services.platform import audit, outbox, pagination
from services.platform.auth import Principal
from services.platform.db import Database
from services.platform.errors import (
    AppError,
    already_exists,
    failed_precondition,
    invalid_argument,
    not_found,
    permission_denied,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = queries.MAX_PAGE_SIZE
PRIVILEGED_ROLES = frozenset({"backoffice", "service"})
USER_PREFIX = "users/"
ACCOUNT_KINDS = frozenset(
    {
        "USER_WALLET", "LOAN_RECEIVABLE", "PSP_CLEARING", "PSP_SETTLEMENT", "BANK_CASH",
        "FEE_REVENUE", "IOF_PAYABLE", "INTEREST_INCOME", "SUSPENSE", "LOAN_FUNDING",
        "PENALTY_INCOME", "LOAN_DEFAULTED", "LOSS_PROVISION",
    }
)  # fmt: skip


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str


def page_size(requested: int) -> int:
    return pagination.page_size(requested, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)


def _before_seq(token: str, listing: str) -> int | None:
    """Journal-ordered listings (newest first) resume below the last journal_seq served."""
    return pagination.decode_int(token, listing, minimum=1) if token else None


def account_id_of(name: str, field: str = "name") -> uuid.UUID:
    account = parse_name(name, ACCOUNT_PREFIX)
    if account is None:
        raise invalid_argument(
            r.NAME_INVALID,
            f"{field} must be accounts/{{uuid}}",
            [(field, "must be accounts/{uuid}")],
        )
    return account


def is_privileged(principal: Principal) -> bool:
    return not principal.roles.isdisjoint(PRIVILEGED_ROLES)


def _owns(principal: Principal, account: AccountView | None) -> bool:
    return account is not None and account.owner == f"{USER_PREFIX}{principal.subject}"


class LedgerService:
    def __init__(self, db: Database, writer: LedgerWriter) -> None:
        self._db = db
        self._writer = writer

    # -- transfers --------------------------------------------------------

    async def create_transfers(
        self, inputs: Sequence[TransferInput], recorded: Recorded
    ) -> message.Message:
        """Apply a request's transfers; returns `recorded.respond(results)`, stored with them."""
        if not inputs:
            raise invalid_argument(
                r.BATCH_EMPTY, "transfers must not be empty", [("transfers", "empty")]
            )
        if len(inputs) > MAX_BATCH_TRANSFERS:
            raise invalid_argument(
                r.BATCH_TOO_LARGE,
                f"at most {MAX_BATCH_TRANSFERS} transfers per request",
                [("transfers", f"{len(inputs)} > {MAX_BATCH_TRANSFERS}")],
            )
        items = [parse_transfer(i, raw) for i, raw in enumerate(inputs)]
        return await self._writer.submit_recorded(items, recorded)

    async def get_transfer(self, name: str) -> TransferRecord:
        transfer_id = parse_name(name, TRANSFER_PREFIX)
        if transfer_id is None:
            raise invalid_argument(
                r.NAME_INVALID,
                "name must be transfers/{uuid}",
                [("name", "must be transfers/{uuid}")],
            )
        async with self._db.transaction() as conn:
            transfer = await queries.get_transfer(conn, transfer_id)
        if transfer is None:
            raise not_found("TRANSFER_NOT_FOUND", f"{name} does not exist")
        return transfer

    async def list_transfers(
        self, *, external_reference: str, account: str, state: str, size: int, token: str
    ) -> Page[TransferRecord]:
        limit = page_size(size)
        account_id = account_id_of(account, "account") if account else None
        listing = f"transfers:{external_reference}:{account_id or ''}:{state}"
        async with self._db.transaction() as conn:
            rows = await queries.list_transfers(
                conn,
                external_reference=external_reference,
                account=account_id,
                state=state,
                before_seq=_before_seq(token, listing),
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, pagination.encode_token(listing, rows[-1].journal_seq) if more else "")

    # -- accounts ---------------------------------------------------------

    async def list_accounts(
        self, principal: Principal, *, owner: str, kind: str, size: int, token: str
    ) -> Page[AccountView]:
        limit = page_size(size)
        mine = f"{USER_PREFIX}{principal.subject}"
        if owner == "users/me":
            owner = mine
        if not is_privileged(principal):
            if owner and owner != mine:
                raise permission_denied(message="customers may only list their own accounts")
            owner = mine  # the filter is implied
        listing = f"accounts:{owner}:{kind}"
        after = pagination.decode_id(token, listing) if token else None
        async with self._db.transaction() as conn:
            rows = await queries.list_accounts(
                conn, owner=owner, kind=kind, after=after, limit=limit + 1
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, pagination.encode_token(listing, str(rows[-1].id)) if more else "")

    async def get_account(self, principal: Principal, name: str) -> AccountView:
        account_id = account_id_of(name)
        async with self._db.transaction() as conn:
            account = await queries.get_account(conn, account_id)
        return self._visible(principal, account, name)

    def _visible(self, principal: Principal, account: AccountView | None, name: str) -> AccountView:
        if not is_privileged(principal):
            # Someone else's account and a missing one look the same to a customer.
            if not _owns(principal, account):
                raise permission_denied(message="not the owner of this account")
        if account is None:
            raise not_found(r.ACCOUNT_NOT_FOUND, f"{name} does not exist")
        return account

    async def balance_as_of(
        self, principal: Principal, name: str, as_of: datetime | None
    ) -> tuple[AccountView, Balances, datetime]:
        prefix, _, suffix = name.rpartition("/")
        if suffix != "balance":
            raise invalid_argument(
                r.NAME_INVALID,
                "name must be accounts/{uuid}/balance",
                [("name", "must be accounts/{uuid}/balance")],
            )
        account = await self.get_account(principal, prefix)
        if as_of is None:
            async with self._db.transaction() as conn:
                now = (await conn.execute(text("SELECT now()"))).scalar_one()
                account = await queries.get_account(conn, account.id) or account
            return account, account.balances, now
        async with self._db.transaction() as conn:
            balances = await queries.balance_as_of(conn, account.id, as_of)
        return account, balances, as_of

    async def list_entries(
        self,
        principal: Principal,
        parent: str,
        *,
        start: datetime | None,
        end: datetime | None,
        size: int,
        token: str,
    ) -> tuple[AccountView, Page[EntryView]]:
        limit = page_size(size)
        account = await self.get_account(principal, parent)
        window = f"{start.isoformat() if start else ''}:{end.isoformat() if end else ''}"
        listing = f"entries:{account.id}:{window}"
        async with self._db.transaction() as conn:
            rows = await queries.list_entries(
                conn,
                account.id,
                start=start,
                end=end,
                before_seq=_before_seq(token, listing),
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = pagination.encode_token(listing, rows[-1].journal_seq) if more else ""
        return account, Page(rows, next_token)

    async def create_account(
        self, principal: Principal, view: AccountView, *, client_id: str
    ) -> AccountView:
        violations = []
        if view.kind not in ACCOUNT_KINDS:
            violations.append(("account.kind", "required"))
        if (
            not (view.owner.startswith(USER_PREFIX) or view.owner.startswith("system/"))
            or len(view.owner) > 128
        ):
            violations.append(("account.owner", "must be users/{id} or system/{role}"))
        if len(view.currency) != 3 or not view.currency.isalpha() or not view.currency.isupper():
            violations.append(("account.currency_code", "ISO 4217, e.g. BRL"))
        if view.debits_must_not_exceed_credits and view.credits_must_not_exceed_debits:
            violations.append(("account.flags", "at most one balance constraint"))
        if len(view.ledger_code) > 32 or len(view.display_name) > 100:
            violations.append(("account", "ledger_code ≤ 32 and display_name ≤ 100 characters"))
        if view.kind == "USER_WALLET":
            violations.append(("account.kind", "wallets are opened from user.registered"))
        if client_id:
            try:
                view = _with_id(view, uuid.UUID(client_id))
            except ValueError:
                violations.append(("account_id", "must be a UUID"))
        if violations:
            raise invalid_argument("ACCOUNT_INVALID", "the account is invalid", violations)
        async with self._db.transaction() as conn:
            created = await queries.insert_account(conn, view)
            if created is None:
                existing = await queries.get_account(conn, view.id)
                assert existing is not None
                if (existing.owner, existing.currency, existing.kind) != (
                    view.owner,
                    view.currency,
                    view.kind,
                ):
                    raise already_exists(
                        "ACCOUNT_EXISTS_WITH_DIFFERENT_FIELDS",
                        "account_id is taken by another account",
                    )
                return existing
            await outbox.add_event(
                conn,
                event=ledger_events_pb2.AccountOpened(account=wire.account_message(created)),
                aggregate=f"accounts/{created.id}",
            )
            await audit.record(
                conn,
                "account",
                str(created.id),
                "open",
                {"owner": created.owner, "kind": created.kind},
                principal.subject,
            )
        return created

    async def close_account(self, principal: Principal, name: str, reason: str) -> AccountView:
        account_id = account_id_of(name)
        if not reason.strip() or len(reason) > 500:
            raise invalid_argument(
                "REASON_REQUIRED", "reason is required (≤ 500 characters)", [("reason", "required")]
            )
        async with self._db.transaction() as conn:
            closed = await queries.close_account(conn, account_id)
            if closed is None:
                current = await queries.get_account(conn, account_id)
                if current is None:
                    raise not_found(r.ACCOUNT_NOT_FOUND, f"{name} does not exist")
                if current.closed_at is not None:
                    raise failed_precondition(r.ACCOUNT_CLOSED, f"{name} is already closed")
                raise failed_precondition(
                    "ACCOUNT_NOT_EMPTY", f"{name} has a balance or pending transfers"
                )
            await audit.record(
                conn, "account", str(account_id), "close", {"reason": reason}, principal.subject
            )
        return closed

    async def verify(self, max_discrepancies: int) -> Report:
        if max_discrepancies < 0:
            raise invalid_argument(
                "MAX_DISCREPANCIES_INVALID",
                "must not be negative",
                [("max_discrepancies", "negative")],
            )
        async with self._db.separate_transaction() as conn:
            return await verify(conn, min(max_discrepancies or 100, 10_000))


def _with_id(view: AccountView, account_id: uuid.UUID) -> AccountView:
    return replace(view, id=account_id)


def result_error(result: TransferResult) -> AppError | None:
    """The per-transfer failure as the platform's AppError (for its rich status)."""
    f = result.failure
    if f is None:
        return None
    return AppError(
        grpc.StatusCode[f.code.value],
        f.reason,
        f.message,
        violations=[(f.field, f.message)] if f.field else (),
        metadata=f.metadata,
    )
