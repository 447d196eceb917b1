"""Ledger's gRPC servicer: protobuf <-> service layer, no rules.

The four reconciliation RPCs come from ReconciliationApi (its own module);
LedgerApi adds the accounts, transfers and verification RPCs and `setup`
wires everything for `python -m services.ledger`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import timestamp_pb2

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from services.ledger import verify as verification
from services.ledger import wire
from services.ledger.domain.model import Balances, TransferResult
from services.ledger.reconciliation_api import ReconciliationApi
from services.ledger.service import LedgerService, result_error
from services.ledger.views import AccountView, EntryView, posted_balance
from services.ledger.writer import Recorded
from services.platform.auth import current_principal
from services.platform.db import Database
from services.platform.idempotency import current_claim
from services.platform.settings import Settings

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
# Stores its idempotency record with its transfers (writer.py); see __main__.
CREATE_TRANSFERS = "/fintech.ledger.v1.LedgerService/CreateTransfers"
_ENTRY_DIRECTION = {"D": ledger_pb2.Entry.DIRECTION_DEBIT, "C": ledger_pb2.Entry.DIRECTION_CREDIT}
_DISCREPANCY_KIND = {
    verification.BALANCE_MISMATCH: ledger_pb2.Discrepancy.KIND_BALANCE_MISMATCH,
    verification.UNBALANCED_CURRENCY: ledger_pb2.Discrepancy.KIND_UNBALANCED_CURRENCY,
    verification.FLAG_VIOLATION: ledger_pb2.Discrepancy.KIND_FLAG_VIOLATION,
    verification.HASH_CHAIN_BROKEN: ledger_pb2.Discrepancy.KIND_HASH_CHAIN_BROKEN,
    verification.PENDING_RESOLVED_TWICE: ledger_pb2.Discrepancy.KIND_PENDING_RESOLVED_TWICE,
}


def _time(stamp: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def result_message(
    result: TransferResult, domain: str, messages: wire.TransferMessages | None = None
) -> ledger_pb2.CreateTransferResult:
    msg = ledger_pb2.CreateTransferResult(index=result.index, replayed=result.replayed)
    error = result_error(result)
    if error is not None:
        msg.status.CopyFrom(error.to_status(domain))
    else:
        assert result.transfer is not None
        transfer = result.transfer
        msg.transfer.CopyFrom(
            messages.of(transfer) if messages else wire.transfer_message(transfer)
        )
    return msg


def entry_message(account: AccountView, e: EntryView) -> ledger_pb2.Entry:
    return ledger_pb2.Entry(
        name=f"accounts/{account.id}/entries/{e.journal_seq}",
        transfer=f"transfers/{e.transfer_id}",
        direction=_ENTRY_DIRECTION[e.side],
        amount=wire.money(account.currency, e.amount),
        state=ledger_pb2.TransferState.Value(f"TRANSFER_STATE_{e.state}"),
        running_balance=wire.money(account.currency, posted_balance(account.kind, e.balances)),
        code=e.code,
        description=e.description,
        external_reference=e.external_reference,
        counterparty_account=f"accounts/{e.counterparty_id}",
        create_time=wire.ts(e.created_at),
    )


def _kind_name(kind: ledger_pb2.AccountKind.ValueType) -> str:
    if kind == ledger_pb2.ACCOUNT_KIND_UNSPECIFIED:
        return ""
    return ledger_pb2.AccountKind.Name(kind).removeprefix("ACCOUNT_KIND_")


class LedgerApi(ReconciliationApi):
    def __init__(self, db: Database, service: LedgerService, error_domain: str) -> None:
        super().__init__(db)
        self._service = service
        self._domain = error_domain

    async def CreateTransfers(
        self, request: ledger_pb2.CreateTransfersRequest, context: Context
    ) -> ledger_pb2.CreateTransfersResponse:
        inputs = [wire.transfer_input(t) for t in request.transfers]
        response = await self._service.create_transfers(
            inputs, Recorded(current_claim(), self._transfers_response)
        )
        assert isinstance(response, ledger_pb2.CreateTransfersResponse), type(response)
        return response

    def _transfers_response(
        self, results: list[TransferResult], messages: wire.TransferMessages
    ) -> ledger_pb2.CreateTransfersResponse:
        return ledger_pb2.CreateTransfersResponse(
            results=[result_message(res, self._domain, messages) for res in results]
        )

    async def GetTransfer(
        self, request: ledger_pb2.GetTransferRequest, context: Context
    ) -> ledger_pb2.Transfer:
        return wire.transfer_message(await self._service.get_transfer(request.name))

    async def ListTransfers(
        self, request: ledger_pb2.ListTransfersRequest, context: Context
    ) -> ledger_pb2.ListTransfersResponse:
        state = ""
        if request.state:
            state = ledger_pb2.TransferState.Name(request.state).removeprefix("TRANSFER_STATE_")
        page = await self._service.list_transfers(
            external_reference=request.external_reference,
            account=request.account,
            state=state,
            size=request.page_size,
            token=request.page_token,
        )
        return ledger_pb2.ListTransfersResponse(
            transfers=[wire.transfer_message(t) for t in page.items],
            next_page_token=page.next_token,
        )

    async def ListAccounts(
        self, request: ledger_pb2.ListAccountsRequest, context: Context
    ) -> ledger_pb2.ListAccountsResponse:
        page = await self._service.list_accounts(
            current_principal(),
            owner=request.owner,
            kind=_kind_name(request.kind),
            size=request.page_size,
            token=request.page_token,
        )
        return ledger_pb2.ListAccountsResponse(
            accounts=[wire.account_message(a) for a in page.items],
            next_page_token=page.next_token,
        )

    async def GetAccount(
        self, request: ledger_pb2.GetAccountRequest, context: Context
    ) -> ledger_pb2.Account:
        return wire.account_message(
            await self._service.get_account(current_principal(), request.name)
        )

    async def GetAccountBalance(
        self, request: ledger_pb2.GetAccountBalanceRequest, context: Context
    ) -> ledger_pb2.AccountBalance:
        account, b, as_of = await self._service.balance_as_of(
            current_principal(),
            request.name,
            _time(request.as_of_time, request.HasField("as_of_time")),
        )
        cur = account.currency
        return ledger_pb2.AccountBalance(
            name=f"accounts/{account.id}/balance",
            as_of_time=wire.ts(as_of),
            debits_posted=wire.money(cur, b.debits_posted),
            credits_posted=wire.money(cur, b.credits_posted),
            debits_pending=wire.money(cur, b.debits_pending),
            credits_pending=wire.money(cur, b.credits_pending),
            available_balance=wire.money(cur, wire.available(account.kind, b)),
        )

    async def ListEntries(
        self, request: ledger_pb2.ListEntriesRequest, context: Context
    ) -> ledger_pb2.ListEntriesResponse:
        account, page = await self._service.list_entries(
            current_principal(),
            request.parent,
            start=_time(request.start_time, request.HasField("start_time")),
            end=_time(request.end_time, request.HasField("end_time")),
            size=request.page_size,
            token=request.page_token,
        )
        return ledger_pb2.ListEntriesResponse(
            entries=[entry_message(account, e) for e in page.items],
            next_page_token=page.next_token,
        )

    async def CreateAccount(
        self, request: ledger_pb2.CreateAccountRequest, context: Context
    ) -> ledger_pb2.Account:
        a = request.account
        view = AccountView(
            id=uuid.uuid4(),
            owner=a.owner,
            currency=a.currency_code,
            kind=_kind_name(a.kind),
            ledger_code=a.ledger_code,
            display_name=a.display_name,
            debits_must_not_exceed_credits=a.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=a.flags.credits_must_not_exceed_debits,
            closed_at=None,
            balances=Balances(),
            created_at=datetime.now(UTC),  # replaced by the row's created_at
        )
        created = await self._service.create_account(
            current_principal(), view, client_id=request.account_id
        )
        return wire.account_message(created)

    async def CloseAccount(
        self, request: ledger_pb2.CloseAccountRequest, context: Context
    ) -> ledger_pb2.Account:
        closed = await self._service.close_account(
            current_principal(), request.name, request.reason
        )
        return wire.account_message(closed)

    async def VerifyLedger(
        self, request: ledger_pb2.VerifyLedgerRequest, context: Context
    ) -> ledger_pb2.VerifyLedgerResponse:
        report = await self._service.verify(request.max_discrepancies)
        return verify_response(report)


def verify_response(report: verification.Report) -> ledger_pb2.VerifyLedgerResponse:
    msg = ledger_pb2.VerifyLedgerResponse(
        ok=report.ok,
        accounts_checked=report.accounts_checked,
        transfers_checked=report.transfers_checked,
        journal_records_checked=report.journal_records_checked,
    )
    if report.verify_time is not None:
        msg.verify_time.CopyFrom(wire.ts(report.verify_time))
    for d in report.discrepancies:
        item = msg.discrepancies.add(
            kind=_DISCREPANCY_KIND[d.kind], subject=d.subject, detail=d.detail
        )
        if d.expected is not None:
            item.expected.CopyFrom(wire.money(d.currency, d.expected))
        if d.actual is not None:
            item.actual.CopyFrom(wire.money(d.currency, d.actual))
    return msg


def service_name() -> str:
    return ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


def register(
    server: grpc.aio.Server, db: Database, service: LedgerService, settings: Settings
) -> None:
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        LedgerApi(db, service, settings.error_domain), server
    )
