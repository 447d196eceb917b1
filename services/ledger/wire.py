"""Domain ↔ protobuf conversions shared by the servicer and the events."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from google.protobuf import duration_pb2, timestamp_pb2

from fintech.ledger.v1 import ledger_pb2
from fintech.type.v1 import money_pb2
from services.ledger.domain.model import TransferKind, TransferRecord, TransferState
from services.ledger.domain.validation import TransferInput
from services.ledger.views import AccountView, available

KIND_TO_PROTO = {k: ledger_pb2.TransferKind.Value(f"TRANSFER_KIND_{k.value}") for k in TransferKind}
STATE_TO_PROTO = {
    s: ledger_pb2.TransferState.Value(f"TRANSFER_STATE_{s.value}") for s in TransferState
}
_KIND_PREFIX = "TRANSFER_KIND_"


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    seconds, nanos = _ts_parts(moment)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


@lru_cache(maxsize=4096)
def _ts_parts(moment: datetime) -> tuple[int, int]:
    # Every transfer of a writer batch carries the batch's now(): converting
    # it once (FromDatetime is pure Python) instead of per event and per
    # response is a visible share of a 1,000-transfer batch. Keyed by the
    # datetime's value, so the result is exactly FromDatetime's.
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp.seconds, stamp.nanos


def money(currency: str, minor_units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, minor_units=minor_units)


def transfer_message(t: TransferRecord) -> ledger_pb2.Transfer:
    msg = ledger_pb2.Transfer(
        name=f"transfers/{t.id}",
        debit_account=f"accounts/{t.debit_account}",
        credit_account=f"accounts/{t.credit_account}",
        amount=money(t.currency, t.amount),
        kind=KIND_TO_PROTO[t.kind],
        pending_transfer=f"transfers/{t.pending_id}" if t.pending_id else "",
        linked=t.linked,
        code=t.code,
        external_reference=t.external_reference,
        description=t.description,
        state=STATE_TO_PROTO[t.state],
        create_time=ts(t.created_at),
        journal_sequence=t.journal_seq,
    )
    if t.timeout_seconds:
        msg.timeout.CopyFrom(duration_pb2.Duration(seconds=t.timeout_seconds))
    if t.resolved_at is not None:
        msg.resolve_time.CopyFrom(ts(t.resolved_at))
    if t.posted_amount is not None:
        msg.posted_amount.CopyFrom(money(t.currency, t.posted_amount))
    return msg


class TransferMessages:
    """A writer batch's Transfer messages, each built once.

    A created transfer appears twice in a batch's output: in the caller's
    response and in its event. Both copy the message into their parent, so
    one build serves both (~25 µs a transfer). Keyed by the record object
    itself; the returned message must not be modified.
    """

    def __init__(self) -> None:
        self._built: dict[int, tuple[TransferRecord, ledger_pb2.Transfer]] = {}

    def of(self, t: TransferRecord) -> ledger_pb2.Transfer:
        hit = self._built.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        msg = transfer_message(t)
        self._built[id(t)] = (t, msg)  # holding t keeps its id from being reused
        return msg


def transfer_input(msg: ledger_pb2.Transfer) -> TransferInput:
    kind_name = ledger_pb2.TransferKind.Name(msg.kind) if msg.kind in KIND_TO_PROTO.values() else ""
    return TransferInput(
        name=msg.name,
        kind=kind_name.removeprefix(_KIND_PREFIX),
        debit_account=msg.debit_account,
        credit_account=msg.credit_account,
        amount=msg.amount.minor_units,
        currency=msg.amount.currency_code,
        pending_transfer=msg.pending_transfer,
        timeout_seconds=msg.timeout.seconds,
        timeout_nanos=msg.timeout.nanos,
        linked=msg.linked,
        code=msg.code,
        external_reference=msg.external_reference,
        description=msg.description,
    )


def account_message(view: AccountView) -> ledger_pb2.Account:
    b = view.balances
    msg = ledger_pb2.Account(
        name=f"accounts/{view.id}",
        owner=view.owner,
        currency_code=view.currency,
        kind=ledger_pb2.AccountKind.Value(f"ACCOUNT_KIND_{view.kind}"),
        ledger_code=view.ledger_code,
        display_name=view.display_name,
        flags=ledger_pb2.AccountFlags(
            debits_must_not_exceed_credits=view.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=view.credits_must_not_exceed_debits,
        ),
        debits_posted=money(view.currency, b.debits_posted),
        credits_posted=money(view.currency, b.credits_posted),
        debits_pending=money(view.currency, b.debits_pending),
        credits_pending=money(view.currency, b.credits_pending),
        available_balance=money(view.currency, available(view.kind, b)),
        closed=view.closed_at is not None,
        create_time=ts(view.created_at),
    )
    if view.closed_at is not None:
        msg.close_time.CopyFrom(ts(view.closed_at))
    return msg
