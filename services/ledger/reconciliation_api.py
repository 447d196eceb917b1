"""gRPC surface of reconciliation: protobuf <-> services.ledger.reconciliation. No rules here.

`LedgerApi` (services/ledger/api.py) subclasses `ReconciliationApi`, so the
four reconciliation RPCs are served by the one LedgerService servicer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import timestamp_pb2

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain import reconciliation as rec
from services.ledger.reconciliation import (
    RUN_PREFIX,
    ImportRequest,
    ItemRow,
    ReconciliationService,
    RunRow,
)
from services.platform.db import Database
from services.platform.errors import invalid_argument

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_FORMATS = {
    ledger_pb2.REPORT_FORMAT_CSV: rec.ReportFormat.CSV,
    ledger_pb2.REPORT_FORMAT_JSON: rec.ReportFormat.JSON,
}
_STATUS_TO_PROTO = {
    s.value: ledger_pb2.MatchStatus.Value(f"MATCH_STATUS_{s.value}") for s in rec.MatchStatus
}
_STATUS_FROM_PROTO = {
    ledger_pb2.MatchStatus.Value(f"MATCH_STATUS_{s.value}"): s for s in rec.MatchStatus
}


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def reconciliation_message(run: RunRow) -> ledger_pb2.Reconciliation:
    return ledger_pb2.Reconciliation(
        name=f"{RUN_PREFIX}{run.id}",
        source=run.source,
        report_date=run.report_date.isoformat(),
        report_sha256=run.report_sha256,
        matched_count=run.matched_count,
        missing_in_ledger_count=run.missing_in_ledger_count,
        missing_in_report_count=run.missing_in_report_count,
        amount_mismatch_count=run.amount_mismatch_count,
        create_time=_ts(run.created_at),
    )


def item_message(item: ItemRow) -> ledger_pb2.ReconciliationItem:
    msg = ledger_pb2.ReconciliationItem(
        name=f"{RUN_PREFIX}{item.reconciliation_id}/items/{item.item_no}",
        status=_STATUS_TO_PROTO[item.status],
        external_reference=item.external_reference,
        transfers=[f"transfers/{t}" for t in item.transfer_ids],
        # The contract has one line number: an item settled by several lines
        # shows its first; the store keeps all of them (report_lines).
        report_line=min(item.report_lines) if item.report_lines else 0,
    )
    if item.report_amount is not None:
        assert item.report_currency is not None
        msg.report_amount.CopyFrom(
            money_pb2.Money(currency_code=item.report_currency, minor_units=item.report_amount)
        )
    if item.ledger_amount is not None:
        assert item.ledger_currency is not None
        msg.ledger_amount.CopyFrom(
            money_pb2.Money(currency_code=item.ledger_currency, minor_units=item.ledger_amount)
        )
    return msg


class ReconciliationApi(ledger_pb2_grpc.LedgerServiceServicer):
    """The reconciliation RPCs of LedgerService (roles: method_policy + require_role)."""

    def __init__(self, db: Database) -> None:
        self._reconciliation = ReconciliationService(db)

    async def CreateReconciliation(
        self, request: ledger_pb2.CreateReconciliationRequest, context: Context
    ) -> ledger_pb2.Reconciliation:
        created = await self._reconciliation.create(
            ImportRequest(
                source=request.source,
                report_date=request.report_date,
                format=_FORMATS.get(request.format),
                content=request.content,
            )
        )
        return reconciliation_message(created.run)

    async def GetReconciliation(
        self, request: ledger_pb2.GetReconciliationRequest, context: Context
    ) -> ledger_pb2.Reconciliation:
        return reconciliation_message(await self._reconciliation.get(request.name))

    async def ListReconciliations(
        self, request: ledger_pb2.ListReconciliationsRequest, context: Context
    ) -> ledger_pb2.ListReconciliationsResponse:
        page = await self._reconciliation.list(request.page_size, request.page_token)
        return ledger_pb2.ListReconciliationsResponse(
            reconciliations=[reconciliation_message(r) for r in page.runs],
            next_page_token=page.next_page_token,
        )

    async def ListReconciliationItems(
        self, request: ledger_pb2.ListReconciliationItemsRequest, context: Context
    ) -> ledger_pb2.ListReconciliationItemsResponse:
        status: rec.MatchStatus | None = None
        if request.status != ledger_pb2.MATCH_STATUS_UNSPECIFIED:
            status = _STATUS_FROM_PROTO.get(request.status)
            if status is None:
                raise invalid_argument(
                    "STATUS_INVALID",
                    "status is not a known MatchStatus",
                    [("status", "one of the MatchStatus values, or unset for all")],
                )
        page = await self._reconciliation.list_items(
            request.parent, status, request.page_size, request.page_token
        )
        return ledger_pb2.ListReconciliationItemsResponse(
            items=[item_message(i) for i in page.items], next_page_token=page.next_page_token
        )
