"""Helpers for the ledger integration tests: a gRPC client with a service token,
transfer builders, outcome decoding and an independent recomputation of
balances from what the tests themselves saw acknowledged.

Everything talks to the real ledger process over gRPC; nothing here reads the
ledger's tables, so the checks do not share code (or bugs) with the service.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import duration_pb2
from google.rpc import status_pb2

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.type.v1 import money_pb2
from services.platform.errors import ErrorDetails, details_from_rpc_error, details_from_status
from services.platform.service_token import ServiceTokenSigner, service_channel
from services.platform.settings import DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER

CALL_TIMEOUT_S = 20.0
MAX_BATCH = 8000  # the documented CreateTransfers limit (ledger.proto)
INT64_MAX = 2**63 - 1
BRL = "BRL"

L = ledger_pb2
POSTED = L.TRANSFER_KIND_POSTED
PENDING = L.TRANSFER_KIND_PENDING
POST_PENDING = L.TRANSFER_KIND_POST_PENDING
VOID_PENDING = L.TRANSFER_KIND_VOID_PENDING

# Per-transfer failures a well-formed request may legitimately get under
# concurrency; anything else (INTERNAL, UNKNOWN, INVALID_ARGUMENT for input we
# built correctly) is a bug.
BUSINESS_FAILURES = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ABORTED,
    }
)
# The reason of a linked-chain member that failed only because another member
# did (docs/LEDGER.md and ledger.proto agree on the name).
LINKED_FAILURE_REASONS = frozenset({"LINKED_EVENT_FAILED"})


def signer_for(secrets_dir: Path) -> ServiceTokenSigner:
    return ServiceTokenSigner.from_files(
        secrets_dir / "jwt_signing_key.pem",
        secrets_dir / "jwks.json",
        service="test",
        issuer=DEFAULT_JWT_ISSUER,
        audience=DEFAULT_JWT_AUDIENCE,
    )


def brl(minor: int, currency: str = BRL) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, minor_units=minor)


def new_transfer_name() -> str:
    return f"transfers/{uuid.uuid4()}"


def key() -> str:
    return uuid.uuid4().hex


def transfer(
    debit: str,
    credit: str,
    amount: int,
    *,
    kind: int = POSTED,
    name: str | None = None,
    pending: str = "",
    timeout_s: int = 0,
    linked: bool = False,
    code: str = "TEST",
    currency: str = BRL,
    external_reference: str = "",
) -> ledger_pb2.Transfer:
    t = ledger_pb2.Transfer(
        name=name or new_transfer_name(),
        debit_account=debit,
        credit_account=credit,
        amount=brl(amount, currency),
        kind=kind,  # type: ignore[arg-type]
        pending_transfer=pending,
        linked=linked,
        code=code,
        external_reference=external_reference,
        description="integration test",
    )
    if timeout_s:
        t.timeout.CopyFrom(duration_pb2.Duration(seconds=timeout_s))
    return t


def resolve(
    pending: ledger_pb2.Transfer, kind: int, amount: int = 0, name: str | None = None
) -> ledger_pb2.Transfer:
    """A POST_PENDING/VOID_PENDING of `pending` (same accounts and currency)."""
    return transfer(
        pending.debit_account,
        pending.credit_account,
        amount,
        kind=kind,
        name=name,
        pending=pending.name,
        currency=pending.amount.currency_code,
    )


@dataclass(frozen=True)
class Outcome:
    """One transfer's result: ok (with the stored transfer) or the error."""

    ok: bool
    replayed: bool
    transfer: ledger_pb2.Transfer | None
    error: ErrorDetails | None
    whole_request: bool = False  # the RPC itself failed (applies to every index)

    @property
    def reason(self) -> str | None:
        return self.error.reason if self.error else None

    @property
    def code(self) -> grpc.StatusCode:
        return self.error.code if self.error else grpc.StatusCode.OK


def _result_outcome(result: ledger_pb2.CreateTransferResult) -> Outcome:
    status: status_pb2.Status = result.status
    if status.code == 0:
        return Outcome(True, result.replayed, result.transfer, None)
    return Outcome(False, False, None, details_from_status(status))


class LedgerClient:
    """The ledger's gRPC API with a service token; every mutating call sends a key."""

    def __init__(self, target: str, secrets_dir: Path) -> None:
        self.target = target
        self.secrets_dir = secrets_dir
        self.channel = service_channel(target, signer_for(secrets_dir))
        self.stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> LedgerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes -------------------------------------------------------------

    async def create_account(
        self,
        kind: int,
        *,
        owner: str | None = None,
        currency: str = BRL,
        no_overdraft: bool = False,
        no_credit_beyond_debits: bool = False,
        account_id: str | None = None,
    ) -> ledger_pb2.Account:
        account = ledger_pb2.Account(
            owner=owner or f"users/{uuid.uuid4()}",
            currency_code=currency,
            kind=kind,  # type: ignore[arg-type]
            display_name="integration test",
            flags=ledger_pb2.AccountFlags(
                debits_must_not_exceed_credits=no_overdraft,
                credits_must_not_exceed_debits=no_credit_beyond_debits,
            ),
        )
        return await self.stub.CreateAccount(
            ledger_pb2.CreateAccountRequest(account=account, account_id=account_id or ""),
            metadata=(("idempotency-key", key()),),
            timeout=CALL_TIMEOUT_S,
        )

    async def wallet(self) -> ledger_pb2.Account:
        """A constrained, credit-normal account (no overdraft) like a user's wallet.

        Real USER_WALLETs are opened only from user.registered (CreateAccount
        refuses the kind); the engine treats any account by its flags, so a
        credit-normal kind with the wallet's flag behaves the same.
        """
        return await self.create_account(L.ACCOUNT_KIND_SUSPENSE, no_overdraft=True)

    async def source(self, currency: str = BRL) -> ledger_pb2.Account:
        """An unconstrained (asset) account money can be taken from without limit."""
        return await self.create_account(
            L.ACCOUNT_KIND_BANK_CASH,
            owner=f"system/test-{uuid.uuid4().hex[:12]}",
            currency=currency,
        )

    async def create_transfers_raw(
        self, transfers: Iterable[ledger_pb2.Transfer], idempotency_key: str | None = None
    ) -> ledger_pb2.CreateTransfersResponse:
        return await self.stub.CreateTransfers(
            ledger_pb2.CreateTransfersRequest(transfers=list(transfers)),
            metadata=(("idempotency-key", idempotency_key or key()),),
            timeout=CALL_TIMEOUT_S,
        )

    async def submit(
        self, transfers: Sequence[ledger_pb2.Transfer], idempotency_key: str | None = None
    ) -> list[Outcome]:
        """One Outcome per transfer; a failed RPC becomes the same Outcome for all."""
        try:
            response = await self.create_transfers_raw(transfers, idempotency_key)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            failed = Outcome(False, False, None, details_from_rpc_error(exc), whole_request=True)
            return [failed] * len(transfers)
        assert len(response.results) == len(transfers), (len(response.results), len(transfers))
        for i, result in enumerate(response.results):
            assert result.index == i, (i, result.index)
        return [_result_outcome(r) for r in response.results]

    async def submit_ok(self, transfers: Sequence[ledger_pb2.Transfer]) -> list[Outcome]:
        outcomes = await self.submit(transfers)
        bad = [(i, o.error) for i, o in enumerate(outcomes) if not o.ok]
        assert not bad, bad
        return outcomes

    async def fund(self, source: str, account: str, amount: int) -> None:
        await self.submit_ok([transfer(source, account, amount, code="FUNDING")])

    # -- reads --------------------------------------------------------------

    async def account(self, name: str) -> ledger_pb2.Account:
        return await self.stub.GetAccount(
            ledger_pb2.GetAccountRequest(name=name), timeout=CALL_TIMEOUT_S
        )

    async def balance_now(self, name: str) -> Balances:
        """GetAccountBalance without as_of_time: recomputed by the ledger from entries."""
        b = await self.stub.GetAccountBalance(
            ledger_pb2.GetAccountBalanceRequest(name=f"{name}/balance"), timeout=CALL_TIMEOUT_S
        )
        return Balances(
            b.debits_posted.minor_units,
            b.credits_posted.minor_units,
            b.debits_pending.minor_units,
            b.credits_pending.minor_units,
        )

    async def get_transfer(self, name: str) -> ledger_pb2.Transfer | None:
        try:
            return await self.stub.GetTransfer(
                ledger_pb2.GetTransferRequest(name=name), timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    async def entries(self, account: str) -> list[ledger_pb2.Entry]:
        """Every entry of the account, newest first (all pages)."""
        found: list[ledger_pb2.Entry] = []
        token = ""
        while True:
            page = await self.stub.ListEntries(
                ledger_pb2.ListEntriesRequest(parent=account, page_size=500, page_token=token),
                timeout=CALL_TIMEOUT_S,
            )
            found.extend(page.entries)
            token = page.next_page_token
            if not token:
                return found

    async def transfers_of(self, account: str) -> list[ledger_pb2.Transfer]:
        found: list[ledger_pb2.Transfer] = []
        token = ""
        while True:
            page = await self.stub.ListTransfers(
                ledger_pb2.ListTransfersRequest(account=account, page_size=500, page_token=token),
                timeout=CALL_TIMEOUT_S,
            )
            found.extend(page.transfers)
            token = page.next_page_token
            if not token:
                return found

    async def verify(self) -> ledger_pb2.VerifyLedgerResponse:
        return await self.stub.VerifyLedger(
            ledger_pb2.VerifyLedgerRequest(max_discrepancies=20), timeout=60.0
        )

    async def assert_verifies(self) -> ledger_pb2.VerifyLedgerResponse:
        report = await self.verify()
        assert report.ok, [
            (L.Discrepancy.Kind.Name(d.kind), d.subject, d.detail) for d in report.discrepancies
        ]
        assert not report.discrepancies
        return report


async def wait_serving(client: LedgerClient, deadline_s: float = 30.0) -> None:
    """Until CreateTransfers answers with anything but UNIMPLEMENTED/UNAVAILABLE."""
    until = time.monotonic() + deadline_s
    while True:
        try:
            await client.stub.CreateTransfers(
                ledger_pb2.CreateTransfersRequest(),
                metadata=(("idempotency-key", key()),),
                timeout=5.0,
            )
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
                return
            assert time.monotonic() < until, f"ledger not serving CreateTransfers: {exc.details()}"
        await asyncio.sleep(0.2)


# -- balances -----------------------------------------------------------------


@dataclass
class Balances:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @classmethod
    def of(cls, account: ledger_pb2.Account) -> Balances:
        return cls(
            account.debits_posted.minor_units,
            account.credits_posted.minor_units,
            account.debits_pending.minor_units,
            account.credits_pending.minor_units,
        )


@dataclass
class Model:
    """Expected balances recomputed from acknowledged transfers only.

    Order-independent (sums commute), so it holds for any interleaving the
    concurrent clients produced. Pendings are counted by their final state as
    the ledger reports it; `check_resolutions` cross-checks that state against
    the post/void results the clients saw.
    """

    balances: dict[str, Balances] = field(default_factory=dict)

    def add_posted(self, debit: str, credit: str, amount: int) -> None:
        self.balances.setdefault(debit, Balances()).debits_posted += amount
        self.balances.setdefault(credit, Balances()).credits_posted += amount

    def add_pending(self, debit: str, credit: str, amount: int) -> None:
        self.balances.setdefault(debit, Balances()).debits_pending += amount
        self.balances.setdefault(credit, Balances()).credits_pending += amount


def assert_entries_match(account: ledger_pb2.Account, entries: Sequence[ledger_pb2.Entry]) -> None:
    """The statement agrees with the balances: running balances chain and sum up.

    Entries come newest first. Each entry's running balance is the posted
    balance after it in the account's normal direction, so consecutive running
    balances differ by the entry's amount (entries that only move pending
    balances leave it unchanged), and the newest one is the account's posted
    balance.
    """
    b = Balances.of(account)
    chronological = list(reversed(entries))
    debit_total = credit_total = 0
    previous = 0
    sign: int | None = None  # +1 when credits raise the running balance
    for e in chronological:
        assert e.amount.minor_units > 0, e
        delta = e.running_balance.minor_units - previous
        previous = e.running_balance.minor_units
        if delta == 0:
            continue  # a pending reservation or a release: posted balance unchanged
        assert abs(delta) == e.amount.minor_units, (e, delta)
        direction_sign = 1 if e.direction == L.Entry.DIRECTION_CREDIT else -1
        entry_sign = (1 if delta > 0 else -1) * direction_sign
        assert sign in (None, entry_sign), ("normal direction flipped", e)
        sign = entry_sign
        if e.direction == L.Entry.DIRECTION_CREDIT:
            credit_total += e.amount.minor_units
        else:
            debit_total += e.amount.minor_units
    assert (debit_total, credit_total) == (b.debits_posted, b.credits_posted), (
        account.name,
        (debit_total, credit_total),
        b,
    )
    if chronological:
        posted_net = b.credits_posted - b.debits_posted
        assert previous in (posted_net, -posted_net), (account.name, previous, b)


def assert_flags_hold(account: ledger_pb2.Account) -> None:
    b = Balances.of(account)
    for value in (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending):
        assert value >= 0, account
    if account.flags.debits_must_not_exceed_credits:
        assert b.debits_posted + b.debits_pending <= b.credits_posted, account
    if account.flags.credits_must_not_exceed_debits:
        assert b.credits_posted + b.credits_pending <= b.debits_posted, account
