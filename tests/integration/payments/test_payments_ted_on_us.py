"""TED to one of our own customers' accounts: the account details a customer
reads (GetBankAccount), and a TED naming them settling on-us, wallet to
wallet, without the PSP; every refusal leaving the ledger as it was."""

from __future__ import annotations

import asyncio
import re
import uuid

import grpc
import pytest

from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from services.payments.domain.bank_account import format_account
from services.platform.errors import details_from_rpc_error
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    FEE_REVENUE_ACCOUNT,
    Customer,
    PaymentsClient,
    Psp,
    balances,
    copy_payment_unstarted,
    new_customers,
)

pytestmark = pytest.mark.integration

FUND = 100_000  # R$ 1.000,00
TED_FEE = 390
SWEEP_DEADLINE_S = 60.0  # the starter's sweep runs every 2 s, then the payout itself


async def bank_account(client: PaymentsClient, name: str = "users/me/bankAccount") -> P.BankAccount:
    return await client.stub.GetBankAccount(
        P.GetBankAccountRequest(name=name), metadata=client.md(), timeout=20
    )


async def ted(
    c: Customer, amount: int, account: str, bank_code: str = "999", branch: str = "0001"
) -> P.Payment:
    """A TED from `c`, waited for until it is final."""
    return await c.client.wait((await c.client.pay_ted(amount, bank_code, branch, account)).name)


async def used_today(c: Customer) -> int:
    limits = await c.client.stub.GetPaymentLimits(
        P.GetPaymentLimitsRequest(name="users/me/paymentLimits"), metadata=c.client.md(), timeout=20
    )
    return limits.daily_used.minor_units


async def test_account_details_are_assigned_once_and_only_the_owner_reads_them(
    stack: Stack, ledger: LedgerClient
) -> None:
    a, b = await new_customers(stack, ledger, 2, 0)
    first = await bank_account(a.client)
    assert first.name == f"users/{a.user_id}/bankAccount"
    assert (first.bank_code, first.ispb, first.branch) == ("999", "12345678", "0001")
    assert first.account_type == P.BANK_ACCOUNT_TYPE_PAYMENT
    assert re.fullmatch(r"[0-9]{9}-[0-9X]", first.account_number), first
    # Asked again, by name or as `me`: the same number.
    assert await bank_account(a.client, first.name) == first
    assert (await bank_account(b.client)).account_number != first.account_number
    # Another customer may not read it.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await bank_account(b.client, first.name)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The backoffice reads it, but its looking opens no account for anyone.
    ops = PaymentsClient(stack, "ops-ted", roles=("backoffice",))
    assert await bank_account(ops, first.name) == first
    [c] = await new_customers(stack, ledger, 1, 0)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await bank_account(ops, f"users/{c.user_id}/bankAccount")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert details_from_rpc_error(missing.value).reason == "BANK_ACCOUNT_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await bank_account(ops, f"users/{c.user_id}/paymentLimits")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await ops.close()


async def test_concurrent_first_calls_assign_one_number(stack: Stack, ledger: LedgerClient) -> None:
    [c] = await new_customers(stack, ledger, 1, 0)
    got = await asyncio.gather(*(bank_account(c.client) for _ in range(10)))
    assert len({a.account_number for a in got}) == 1, got


async def test_ted_to_our_customer_settles_on_us_with_the_fee_linked(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    payer, payee = await new_customers(stack, ledger, 2, FUND)
    details = await bank_account(payee.client)
    fee_before = (await balances(ledger, FEE_REVENUE_ACCOUNT))[1]
    p = await ted(payer, 40_00, details.account_number, details.bank_code, details.branch)
    assert p.state == P.PAYMENT_STATE_SETTLED and p.on_us, p
    assert p.fee.minor_units == TED_FEE
    steps = {s.step: s.state for s in p.steps}
    assert steps["transfer"] == P.STEP_STATE_SUCCEEDED
    assert steps["psp_submit"] == P.STEP_STATE_SKIPPED
    assert "reserve" not in steps
    assert await balances(ledger, payer.wallet) == (40_00 + TED_FEE, FUND, 0, 0)
    assert await balances(ledger, payee.wallet) == (0, FUND + 40_00, 0, 0)
    assert (await balances(ledger, FEE_REVENUE_ACCOUNT))[1] - fee_before >= TED_FEE
    # The same account named by our ISPB, without the leading zeros.
    number = details.account_number.lstrip("0")
    p = await ted(payer, 10_00, number, "12345678", "1")
    assert p.state == P.PAYMENT_STATE_SETTLED and p.on_us, p
    assert await balances(ledger, payee.wallet) == (0, FUND + 50_00, 0, 0)
    await ledger.assert_verifies()


async def test_refusals_move_no_money_and_give_the_limit_back(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    payer, payee = await new_customers(stack, ledger, 2, 50_00)
    own = await bank_account(payer.client)
    theirs = await bank_account(payee.client)
    # To oneself.
    p = await ted(payer, 10_00, own.account_number)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "SAME_ACCOUNT"), p
    # A well-formed number that no customer holds (the largest is never assigned here).
    nobody = format_account(999_999_999)
    p = await ted(payer, 10_00, nobody)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "RECIPIENT_NOT_FOUND"), p
    # The amount fits the balance, the amount and the fee do not: the linked
    # fee sinks the transfer too.
    p = await ted(payer, 50_00, theirs.account_number)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "INSUFFICIENT_FUNDS"), p
    assert await balances(ledger, payer.wallet) == (0, 50_00, 0, 0)
    assert await balances(ledger, payee.wallet) == (0, 50_00, 0, 0)
    assert await used_today(payer) == 0
    await ledger.assert_verifies()


@pytest.mark.parametrize(
    "change",
    [{"branch": "0002"}, {"account_number": "000001234-9"}],
    ids=["another-branch", "bad-check-digit"],
)
async def test_a_payment_accepted_before_the_checks_fails_plainly(
    stack: Stack, ledger: LedgerClient, psp: Psp, change: dict[str, str]
) -> None:
    # Written straight into the table, as CreatePayment accepted a TED to our
    # bank before it checked branches and check digits: the workflow (started
    # by the sweep) fails it instead of retrying an activity forever.
    payer, payee = await new_customers(stack, ledger, 2, FUND)
    details = await bank_account(payee.client)
    template = await ted(payer, 10_00, details.account_number)
    assert template.state == P.PAYMENT_STATE_SETTLED, template
    copied = copy_payment_unstarted(
        stack, uuid.UUID(template.name.removeprefix("payments/")), change
    )
    p = await payer.client.wait(f"payments/{copied}", deadline_s=SWEEP_DEADLINE_S)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "RECIPIENT_NOT_FOUND"), p
    assert await balances(ledger, payer.wallet) == (10_00 + TED_FEE, FUND, 0, 0)
    assert await balances(ledger, payee.wallet) == (0, FUND + 10_00, 0, 0)


@pytest.mark.parametrize(
    ("branch", "account", "field"),
    [
        ("0002", None, "payment.bank_account.branch"),
        ("0001", "typo", "payment.bank_account.account_number"),
        ("0001", "1234567890-1", "payment.bank_account.account_number"),
    ],
)
async def test_a_mistyped_account_of_ours_is_refused_at_once(
    stack: Stack, ledger: LedgerClient, branch: str, account: str | None, field: str
) -> None:
    payer, payee = await new_customers(stack, ledger, 2, FUND)
    number = (await bank_account(payee.client)).account_number
    if account == "typo":  # the last digit of the number changed: the check digit no longer fits
        body, digit = number.split("-")
        account = f"{body[:-1]}{(int(body[-1]) + 1) % 10}-{digit}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payer.client.pay_ted(10_00, "999", branch, account or number)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(details_from_rpc_error(refused.value).violations)
    assert list(violations) == [field], violations
    assert await balances(ledger, payer.wallet) == (0, FUND, 0, 0)
