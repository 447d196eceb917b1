"""The loans process SIGKILLed mid-funding leaves no half-funded loan.

The kill lands at the worst moment: the ledger has applied the funding chain
but loans has not recorded it. The test holds the loan's row lock as soon as
the loan enters FUNDING, so the funding activity posts to the ledger and then
waits on that lock to record FUNDED; the process is killed right there. After
a restart the workflow retries the step: the same transfer ids are replayed by
the ledger (not applied twice) and the loan ends FUNDED with the money moved
exactly once. Partial chains are impossible either way (linked transfers).
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from devstack.procs import Supervisor
from devstack.stack import Stack
from fintech.loans.v1 import loans_pb2
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.integration.loans.loans_it_support import (
    Borrower,
    LedgerClient,
    LoansClient,
    receivable_id_of,
)
from tests.support.processes import (
    port_of,
    service_pid,
    service_spec,
    sigkill,
)

pytestmark = pytest.mark.integration

PRINCIPAL = 1_500_00
LOCK_WAIT_S = 30.0
ATTEMPTS = 3


def hold_when_funding(stack: Stack, loan_id: str) -> psycopg.Connection | None:
    """An open transaction holding the loan's row lock while it is FUNDING, or None
    when the loan got past FUNDING before we could catch it."""
    admin = database_url(stack.infra.pg_admin_url, DEFAULT_DATABASE)
    deadline = time.monotonic() + LOCK_WAIT_S
    while time.monotonic() < deadline:
        conn = psycopg.connect(admin, connect_timeout=10)
        row = conn.execute(
            "SELECT state FROM loans.loans WHERE id = %s FOR UPDATE", (loan_id,)
        ).fetchone()
        state = row[0] if row else None
        if state == "FUNDING":
            return conn
        conn.rollback()
        conn.close()
        if state not in (None, "APPLIED", "APPROVED"):
            return None
        time.sleep(0.005)
    raise AssertionError("the loan never reached FUNDING")


def test_killed_mid_funding_leaves_no_half_funded_loan(
    stack: Stack, borrower: Borrower, loans: LoansClient, ledger: LedgerClient,
    service_restarts: Supervisor,
) -> None:  # fmt: skip
    wallet = ledger.wallet(borrower.user)
    port = port_of(stack.grpc_targets["loans"])
    held = None
    for _ in range(ATTEMPTS):
        q = loans.simulate(PRINCIPAL, 3)
        wallet_before = ledger.net_credit(wallet)
        loan = loans.create(q.name)
        loan_id = loan.name.removeprefix("loans/")
        held = hold_when_funding(stack, loan_id)
        if held is not None:
            break
        _settle(loans, ledger, wallet, loan.name)  # too fast for us: try another loan
    assert held is not None, "never caught a loan in FUNDING"
    receivable = f"accounts/{receivable_id_of(loan_id)}"
    try:
        # The activity is now blocked on our lock after (or while) posting.
        deadline = time.monotonic() + 15
        while ledger.net_debit_or_none(receivable) != q.financed_amount.minor_units:
            assert time.monotonic() < deadline, "the funding chain never reached the ledger"
            time.sleep(0.05)
        sigkill(service_pid("loans", port))  # no drain, no graceful anything
    finally:
        held.rollback()
        held.close()
    # Dead process, ledger moved, loan row still FUNDING: the dangerous state.
    spec = service_spec(stack, "loans", f"loans-restarted-{uuid.uuid4().hex[:6]}")
    proc = service_restarts.start(spec)  # from the test's main thread (PDEATHSIG)
    service_restarts.wait_ready([proc])
    funded = loans.wait_state(loan.name, {loans_pb2.LOAN_STATE_FUNDED}, timeout_s=120)
    # Exactly once: the receivable holds the financed amount, the wallet got the
    # principal once, and the books balance.
    assert ledger.net_debit(funded.receivable_account) == q.financed_amount.minor_units
    assert ledger.net_credit(wallet) - wallet_before == PRINCIPAL
    verdict = ledger.verify()
    assert verdict.ok, list(verdict.discrepancies)[:5]
    _settle(loans, ledger, wallet, loan.name)


def _settle(loans: LoansClient, ledger: LedgerClient, wallet: str, name: str) -> None:
    """Pay the loan off so later tests' clock jumps do not push it into default."""
    loan = loans.wait_state(
        name, {loans_pb2.LOAN_STATE_FUNDED, loans_pb2.LOAN_STATE_CANCELLED}, timeout_s=120
    )
    if loan.state == loans_pb2.LOAN_STATE_FUNDED:
        ledger.top_up(wallet, loans.payoff_quote(name).payoff_amount.minor_units)
        assert loans.pay(name, payoff=True).loan.state == loans_pb2.LOAN_STATE_PAID
