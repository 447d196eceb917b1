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

import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.infra import grpc_serving
from devstack.procs import ProcessSpec, Supervisor
from devstack.stack import Stack, service_env
from fintech.loans.v1 import loans_pb2
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.integration.loans.loans_it_support import (
    Borrower,
    LedgerClient,
    LoansClient,
    receivable_id_of,
)

pytestmark = pytest.mark.integration

PRINCIPAL = 1_500_00
LOCK_WAIT_S = 30.0
ATTEMPTS = 3


def loans_pid(port: int) -> int:
    """The process serving loans on `port` (the stack's, or a restarted one)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"services.loans" in cmd and f"FINTECH_GRPC_PORT={port}".encode() in env:
            return int(entry.name)
    raise AssertionError(f"no loans process on port {port}")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="session")
def loans_restarts(stack: Stack) -> Iterator[Supervisor]:
    supervisor = Supervisor()
    yield supervisor
    supervisor.stop_all()


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
    loans_restarts: Supervisor,
) -> None:  # fmt: skip
    wallet = ledger.wallet(borrower.user)
    target = stack.grpc_targets["loans"]
    port = int(target.rsplit(":", 1)[1])
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
        pid = loans_pid(port)
        os.kill(pid, signal.SIGKILL)  # no drain, no graceful anything
        deadline = time.monotonic() + 10
        while not _gone(pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        held.rollback()
        held.close()
    # Dead process, ledger moved, loan row still FUNDING: the dangerous state.
    spec = ProcessSpec(
        name=f"loans-restarted-{uuid.uuid4().hex[:6]}",
        argv=[sys.executable, "-m", "services.loans"],
        env=service_env(stack.infra, "loans"),
        cwd=stack.infra.config.root,
        log_path=stack.logs_dir / "loans-restarted.log",
        ready=lambda: grpc_serving(target),
        ready_timeout_s=60.0,
        stop_timeout_s=15.0,
    )
    proc = loans_restarts.start(spec)  # from the test's main thread (PDEATHSIG)
    loans_restarts.wait_ready([proc])
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
