"""Payments' view of the ledger: wallets and the transfers of a payment.

Every transfer id derives from the payment id (domain.rules.transfer_id), so
a step that runs twice sends the same ids and the ledger replays instead of
moving money twice. Calls carry this service's token (role `service`) and a
deadline; the idempotency-key metadata is the first transfer's id.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain.chart import FEE_REVENUE, PSP_CLEARING
from services.payments.domain.rules import transfer_id
from services.platform.errors import details_from_status

CALL_TIMEOUT_S = 10.0
RECONCILIATION_PAGE_SIZE = 1000  # the ledger's maximum page
MAX_RECONCILIATION_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class AmountMismatch:
    """A reference the PSP report and the ledger both hold, with different amounts."""

    external_reference: str
    report_minor: int
    ledger_minor: int


MAX_CACHED_WALLETS = 100_000
# A reservation outlives any plausible settlement wait; if a payment were ever
# abandoned, the ledger releases the funds by itself after this.
RESERVATION_TIMEOUT_S = 7 * 24 * 3600
PSP_CLEARING_ACCOUNT = f"accounts/{PSP_CLEARING.id}"
FEE_REVENUE_ACCOUNT = f"accounts/{FEE_REVENUE.id}"

L = ledger_pb2


class LedgerRefusedError(Exception):
    """A transfer was refused for a business reason (e.g. INSUFFICIENT_FUNDS)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


@dataclass(frozen=True, slots=True)
class Leg:
    purpose: str
    debit: str
    credit: str
    amount: int
    kind: int
    pending_purpose: str = ""
    code: str = "PAYMENT"


def _money(amount: int, currency: str = "BRL") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, minor_units=amount)


class LedgerGateway:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        self._wallets: OrderedDict[str, str] = OrderedDict()

    async def wallet_of(self, user_id: str) -> str | None:
        """`accounts/{id}` of the user's BRL wallet, or None when they have none."""
        cached = self._wallets.get(user_id)
        if cached is not None:
            return cached
        reply = await self._stub.ListAccounts(
            L.ListAccountsRequest(owner=f"users/{user_id}", kind=L.ACCOUNT_KIND_USER_WALLET),
            timeout=CALL_TIMEOUT_S,
        )
        wallet = next((a.name for a in reply.accounts if a.currency_code == "BRL"), None)
        if wallet is not None:
            # A wallet never changes id: cache for good (bounded, oldest out).
            self._wallets[user_id] = wallet
            if len(self._wallets) > MAX_CACHED_WALLETS:
                self._wallets.popitem(last=False)
        return wallet

    async def apply(
        self,
        payment_id: uuid.UUID,
        legs: list[Leg],
        *,
        external_reference: str,
        description: str,
    ) -> list[ledger_pb2.Transfer]:
        """Apply `legs` as one linked chain; LedgerRefusedError if it was refused."""
        assert 1 <= len(legs) <= 4
        transfers = []
        for i, leg in enumerate(legs):
            t = L.Transfer(
                name=f"transfers/{transfer_id(payment_id, leg.purpose)}",
                kind=leg.kind,  # type: ignore[arg-type]
                code=leg.code,
                external_reference=external_reference,
                description=description[:512],
                linked=i < len(legs) - 1,
            )
            if leg.pending_purpose:
                t.pending_transfer = f"transfers/{transfer_id(payment_id, leg.pending_purpose)}"
            else:
                t.debit_account, t.credit_account = leg.debit, leg.credit
                t.amount.CopyFrom(_money(leg.amount))
            if leg.kind == L.TRANSFER_KIND_PENDING:
                t.timeout.CopyFrom(duration_pb2.Duration(seconds=RESERVATION_TIMEOUT_S))
            transfers.append(t)
        reply = await self._stub.CreateTransfers(
            L.CreateTransfersRequest(transfers=transfers),
            timeout=CALL_TIMEOUT_S,
            metadata=(("idempotency-key", transfers[0].name.split("/")[1] + "-" + str(len(legs))),),
        )
        failures = [r for r in reply.results if r.status.code != 0]
        if failures:
            # The failing member carries the real reason; the others LINKED_EVENT_FAILED.
            first = next(
                (
                    r
                    for r in failures
                    if details_from_status(r.status).reason != "LINKED_EVENT_FAILED"
                ),
                failures[0],
            )
            details = details_from_status(first.status)
            raise LedgerRefusedError(details.reason or "LEDGER_REFUSED", first.status.message)
        return [r.transfer for r in reply.results]

    async def get_transfer(self, payment_id: uuid.UUID, purpose: str) -> ledger_pb2.Transfer | None:
        try:
            return await self._stub.GetTransfer(
                L.GetTransferRequest(name=f"transfers/{transfer_id(payment_id, purpose)}"),
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                return None
            raise

    async def amount_mismatches(self, reconciliation: str, limit: int) -> list[AmountMismatch]:
        """The run's AMOUNT_MISMATCH items (reference and both amounts), at most `limit`."""
        assert 0 < limit <= MAX_RECONCILIATION_ITEMS
        found: list[AmountMismatch] = []
        token = ""
        while len(found) < limit:
            page = await self._stub.ListReconciliationItems(
                L.ListReconciliationItemsRequest(
                    parent=reconciliation,
                    status=L.MATCH_STATUS_AMOUNT_MISMATCH,
                    page_size=min(RECONCILIATION_PAGE_SIZE, limit - len(found)),
                    page_token=token,
                ),
                timeout=CALL_TIMEOUT_S,
            )
            found.extend(
                AmountMismatch(
                    item.external_reference,
                    item.report_amount.minor_units,
                    item.ledger_amount.minor_units,
                )
                for item in page.items
            )
            token = page.next_page_token
            if not token:
                break
        return found[:limit]

    async def reconcile(self, report_date: str, content: bytes, key: str) -> str:
        reply = await self._stub.CreateReconciliation(
            L.CreateReconciliationRequest(
                source="psp",
                report_date=report_date,
                format=L.REPORT_FORMAT_JSON,
                content=content,
            ),
            timeout=60.0,
            metadata=(("idempotency-key", key),),
        )
        return str(reply.name)


def on_us_legs(wallet: str, payee_wallet: str, amount: int, fee: int, method: str) -> list[Leg]:
    """Wallet to wallet at once (POSTED), with our fee linked: both or neither."""
    code = f"{method}_ON_US"
    legs = [Leg("on_us", wallet, payee_wallet, amount, L.TRANSFER_KIND_POSTED, code=code)]
    if fee:
        legs.append(Leg("on_us_fee", wallet, FEE_REVENUE_ACCOUNT, fee, L.TRANSFER_KIND_POSTED))
    return legs


def reserve_legs(wallet: str, amount: int, fee: int) -> list[Leg]:
    legs = [Leg("reserve", wallet, PSP_CLEARING_ACCOUNT, amount, L.TRANSFER_KIND_PENDING)]
    if fee:
        legs.append(Leg("reserve_fee", wallet, FEE_REVENUE_ACCOUNT, fee, L.TRANSFER_KIND_PENDING))
    return legs


def post_legs(fee: int) -> list[Leg]:
    legs = [Leg("post", "", "", 0, L.TRANSFER_KIND_POST_PENDING, "reserve")]
    if fee:
        legs.append(Leg("post_fee", "", "", 0, L.TRANSFER_KIND_POST_PENDING, "reserve_fee"))
    return legs


def void_legs(fee: int) -> list[Leg]:
    legs = [Leg("void", "", "", 0, L.TRANSFER_KIND_VOID_PENDING, "reserve")]
    if fee:
        legs.append(Leg("void_fee", "", "", 0, L.TRANSFER_KIND_VOID_PENDING, "reserve_fee"))
    return legs
