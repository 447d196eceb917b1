"""Bad input to CreateTransfers: the documented code, reason and field violation,
and nothing written (no transfer stored, no balance moved)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import grpc
import pytest

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from tests.integration.ledger.ledger_it_support import (
    INT64_MAX,
    MAX_BATCH,
    PENDING,
    POST_PENDING,
    Balances,
    L,
    LedgerClient,
    Outcome,
    key,
    resolve,
    transfer,
)
from tests.support.tokens import mint_token as user_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def accounts(ledger: LedgerClient) -> tuple[str, str]:
    """A funded wallet and the unconstrained account that funded it."""
    source = await ledger.source()
    wallet = await ledger.wallet()
    await ledger.fund(source.name, wallet.name, 10_000)
    return source.name, wallet.name


async def snapshot(ledger: LedgerClient, names: Sequence[str]) -> list[Balances]:
    return [Balances.of(await ledger.account(n)) for n in names]


async def rejected(
    ledger: LedgerClient, transfers: Sequence[ledger_pb2.Transfer], touched: Sequence[str]
) -> list[Outcome]:
    """Submit, require every transfer to fail, and require that nothing changed."""
    before = await snapshot(ledger, touched)
    outcomes = await ledger.submit(transfers)
    assert all(not o.ok for o in outcomes), outcomes
    assert await snapshot(ledger, touched) == before
    for t in transfers:
        if t.name.startswith("transfers/") and _is_uuid(t.name.removeprefix("transfers/")):
            assert await ledger.get_transfer(t.name) is None, f"{t.name} was stored"
    return outcomes


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def assert_error(
    outcome: Outcome, code: grpc.StatusCode, reason: str | None, field: str | None = None
) -> None:
    assert outcome.error is not None
    assert outcome.code == code, outcome.error
    if reason is not None:
        assert outcome.reason == reason, outcome.error
    if field is not None:
        # `transfers[0].amount` is named by `transfers[0].amount` itself or by
        # one of its subfields (`transfers[0].amount.minor_units`).
        fields = [f for f, _ in outcome.error.violations]
        assert any(f == field or f.startswith(field + ".") for f in fields), outcome.error


@pytest.mark.parametrize("amount", [0, -1, -INT64_MAX])
async def test_non_positive_amount(
    ledger: LedgerClient, accounts: tuple[str, str], amount: int
) -> None:
    source, wallet = accounts
    [outcome] = await rejected(ledger, [transfer(source, wallet, amount)], accounts)
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, None, "transfers[0].amount")


async def test_missing_amount(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, wallet = accounts
    t = transfer(source, wallet, 1)
    t.ClearField("amount")
    [outcome] = await rejected(ledger, [t], accounts)
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, None, "transfers[0].amount")


async def test_balance_overflow_is_refused(ledger: LedgerClient) -> None:
    # Its own currency and accounts: int64-sized balances stay out of the BRL
    # books the other tests reason about.
    source = (await ledger.source(currency="USD")).name
    target = (await ledger.create_account(L.ACCOUNT_KIND_SUSPENSE, currency="USD")).name
    [first] = await ledger.submit([transfer(source, target, INT64_MAX, currency="USD", code="MAX")])
    assert first.ok, first.error
    [outcome] = await rejected(
        ledger, [transfer(source, target, 1, currency="USD")], (source, target)
    )
    # Documented as a validation failure with reason OVERFLOW.
    assert outcome.reason == "OVERFLOW", outcome.error
    assert outcome.code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    ), outcome.error


async def test_unknown_account(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, _ = accounts
    ghost = f"accounts/{uuid.uuid4()}"
    [outcome] = await rejected(ledger, [transfer(source, ghost, 5)], (source,))
    assert_error(outcome, grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    [outcome] = await rejected(ledger, [transfer(ghost, source, 5)], (source,))
    assert_error(outcome, grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")


async def test_closed_account(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, _ = accounts
    closed = await ledger.wallet()
    backoffice = user_token(ledger.secrets_dir, ["backoffice"])
    # A plain channel: the service channel would replace the backoffice token.
    async with grpc.aio.insecure_channel(ledger.target) as channel:
        result = await ledger_pb2_grpc.LedgerServiceStub(channel).CloseAccount(
            ledger_pb2.CloseAccountRequest(name=closed.name, reason="integration test"),
            metadata=(("idempotency-key", key()), ("authorization", f"Bearer {backoffice}")),
            timeout=10,
        )
    assert result.closed
    for t in (transfer(source, closed.name, 5), transfer(closed.name, source, 5)):
        [outcome] = await rejected(ledger, [t], (source, closed.name))
        assert_error(outcome, grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_CLOSED")


async def test_currency_mismatch(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, wallet = accounts
    usd = (await ledger.create_account(L.ACCOUNT_KIND_SUSPENSE, currency="USD")).name
    # Accounts in different currencies, and a BRL transfer naming a USD account.
    [outcome] = await rejected(ledger, [transfer(usd, wallet, 5)], (usd, wallet))
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, "CURRENCY_MISMATCH")
    [outcome] = await rejected(
        ledger, [transfer(source, wallet, 5, currency="USD")], (source, wallet)
    )
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, "CURRENCY_MISMATCH")


async def test_debit_equals_credit(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    _, wallet = accounts
    [outcome] = await rejected(ledger, [transfer(wallet, wallet, 5)], (wallet,))
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, "SAME_ACCOUNT")
    assert outcome.error is not None and outcome.error.violations, outcome.error


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "transfers/not-a-uuid"),
        ("name", ""),
        ("name", f"accounts/{uuid.uuid4()}"),
        ("debit_account", "accounts/not-a-uuid"),
        ("credit_account", f"users/{uuid.uuid4()}"),
        ("credit_account", ""),
    ],
)
async def test_malformed_ids(
    ledger: LedgerClient, accounts: tuple[str, str], field: str, value: str
) -> None:
    source, wallet = accounts
    t = transfer(source, wallet, 5)
    setattr(t, field, value)
    [outcome] = await rejected(ledger, [t], accounts)
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, None, f"transfers[0].{field}")


async def test_malformed_pending_reference(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, wallet = accounts
    t = transfer(source, wallet, 5, kind=POST_PENDING, pending="transfers/xyz")
    [outcome] = await rejected(ledger, [t], accounts)
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, None, "transfers[0].pending_transfer")


async def test_unspecified_kind(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, wallet = accounts
    t = transfer(source, wallet, 5, kind=L.TRANSFER_KIND_UNSPECIFIED)
    [outcome] = await rejected(ledger, [t], accounts)
    assert_error(outcome, grpc.StatusCode.INVALID_ARGUMENT, None, "transfers[0].kind")


async def test_post_more_than_pending(ledger: LedgerClient, accounts: tuple[str, str]) -> None:
    source, wallet = accounts
    hold = transfer(wallet, source, 100, kind=PENDING)
    await ledger.submit_ok([hold])
    before = await snapshot(ledger, accounts)
    [outcome] = await ledger.submit([resolve(hold, POST_PENDING, 101)])
    assert not outcome.ok and outcome.error is not None
    assert await snapshot(ledger, accounts) == before
    stored = await ledger.get_transfer(hold.name)
    assert stored is not None and stored.state == L.TRANSFER_STATE_PENDING


async def test_oversize_batch_fails_as_a_whole(
    ledger: LedgerClient, accounts: tuple[str, str]
) -> None:
    source, wallet = accounts
    batch = [transfer(source, wallet, 1) for _ in range(MAX_BATCH + 1)]
    before = await snapshot(ledger, accounts)
    outcomes = await ledger.submit(batch)
    assert outcomes[0].whole_request, "a batch over the limit must fail as a whole"
    assert outcomes[0].code == grpc.StatusCode.INVALID_ARGUMENT, outcomes[0].error
    assert await snapshot(ledger, accounts) == before
    assert await ledger.get_transfer(batch[0].name) is None
    assert await ledger.get_transfer(batch[-1].name) is None


async def test_empty_batch(ledger: LedgerClient) -> None:
    # The contract allows 1 to 8,000 transfers: an empty request is refused.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.create_transfers_raw([])
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_one_bad_transfer_does_not_sink_the_batch(
    ledger: LedgerClient, accounts: tuple[str, str]
) -> None:
    source, wallet = accounts
    good_1, bad, good_2 = (
        transfer(source, wallet, 7),
        transfer(source, wallet, 0),
        transfer(wallet, source, 3),
    )
    before = Balances.of(await ledger.account(wallet))
    outcomes = await ledger.submit([good_1, bad, good_2])
    assert [o.ok for o in outcomes] == [True, False, True], outcomes
    assert not outcomes[1].whole_request
    assert_error(outcomes[1], grpc.StatusCode.INVALID_ARGUMENT, None, "transfers[1].amount")
    after = Balances.of(await ledger.account(wallet))
    assert after.credits_posted - before.credits_posted == 7
    assert after.debits_posted - before.debits_posted == 3
    assert await ledger.get_transfer(bad.name) is None


async def test_open_linked_chain_writes_nothing(
    ledger: LedgerClient, accounts: tuple[str, str]
) -> None:
    source, wallet = accounts
    chain = [transfer(source, wallet, 1, linked=True), transfer(source, wallet, 2, linked=True)]
    outcomes = await rejected(ledger, chain, accounts)
    if not outcomes[0].whole_request:
        assert {o.reason for o in outcomes} == {"LINKED_EVENT_CHAIN_OPEN"}, outcomes
    else:
        assert outcomes[0].code == grpc.StatusCode.INVALID_ARGUMENT, outcomes[0].error
