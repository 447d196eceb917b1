"""Fixtures of the payments integration tests (`stack` comes from tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from devstack.stack import Stack
from services.payments.service import TEST_CLOCK_ENV
from tests.integration.ledger.ledger_it_support import LedgerClient, wait_serving
from tests.integration.payments.payments_it_support import psp  # noqa: F401 - a fixture

# The stack starts after collection, so its payments process inherits this:
# test_payments_night_limit.py moves the limits' clock to night and back.
os.environ[TEST_CLOCK_ENV] = "1"


@pytest.fixture(scope="session")
async def ledger(stack: Stack) -> AsyncIterator[LedgerClient]:
    client = LedgerClient(stack.grpc_targets["ledger"], stack.secrets_dir)
    await wait_serving(client)
    yield client
    await client.close()
