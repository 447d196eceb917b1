"""Fixtures of the loans integration tests (`stack` comes from tests/conftest.py).

The loans process must honour the test clock: the stack's services inherit
this process's environment, so the variable is set here, before any stack
starts (conftest modules load at collection, fixtures run later).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from services.loans.clock import TEST_CLOCK_ENV
from tests.integration.loans.loans_it_support import (
    Borrower,
    LedgerClient,
    LoansClient,
    prepare_borrower,
    set_clock_offset,
    settle_open_loans,
)
from tests.integration.payments.payments_it_support import psp  # noqa: F401 - a fixture

os.environ[TEST_CLOCK_ENV] = "1"


@pytest.fixture(scope="session")
def borrower(stack: Stack) -> Borrower:
    set_clock_offset(stack, 0)
    borrower = prepare_borrower(stack)
    settle_open_loans(stack, borrower)
    return borrower


@pytest.fixture(scope="session")
def loans(stack: Stack, borrower: Borrower) -> Iterator[LoansClient]:
    client = LoansClient(stack, borrower.user_id, ["user"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def backoffice(stack: Stack) -> Iterator[LoansClient]:
    client = LoansClient(stack, "backoffice-tests", ["backoffice"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def ledger(stack: Stack) -> Iterator[LedgerClient]:
    client = LedgerClient(stack)
    yield client
    client.close()


@pytest.fixture
def clock(stack: Stack) -> Iterator[None]:
    """A test that moves the clock puts it back."""
    set_clock_offset(stack, 0)
    yield
    set_clock_offset(stack, 0)


@pytest.fixture(autouse=True)
def _settled(stack: Stack, borrower: Borrower) -> Iterator[None]:
    """Whatever a test leaves owing (a failed one, say) is paid off after it, so the
    next test's clock jumps and system-account deltas see only its own loans."""
    yield
    settle_open_loans(stack, borrower)
