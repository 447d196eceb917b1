"""Fixtures of the ledger integration tests (the `stack` fixture comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devstack.stack import Stack
from tests.integration.ledger.ledger_it_support import LedgerClient, wait_serving


@pytest.fixture(scope="session")
async def ledger(stack: Stack) -> AsyncIterator[LedgerClient]:
    """A client of the stack's ledger with a service token (role `service`)."""
    client = LedgerClient(stack.grpc_targets["ledger"], stack.secrets_dir)
    await wait_serving(client)
    yield client
    await client.close()
