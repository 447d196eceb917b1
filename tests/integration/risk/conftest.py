"""Fixtures of the risk / Open Finance integration tests (`stack` comes from tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.integration.edge import EdgeClient
from tests.integration.risk.risk_it_support import Bank, RiskClient, simulator_urls

SIMULATOR_READY_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def bank(stack: Stack) -> Iterator[Bank]:
    """The stack's Open Finance data-holder simulator, faults reset before and after."""
    open_finance_url, _ = simulator_urls(stack)
    sim = Bank(open_finance_url)
    deadline = time.monotonic() + SIMULATOR_READY_TIMEOUT_S
    while not sim.healthy():
        if time.monotonic() > deadline:
            pytest.fail(f"Open Finance simulator not healthy at {open_finance_url}", pytrace=False)
        time.sleep(0.5)
    # A previous, interrupted run may have left faults switched on.
    sim.reset_faults()
    yield sim
    sim.reset_faults()
    sim.close()


@pytest.fixture(scope="session")
def risk(stack: Stack) -> Iterator[RiskClient]:
    client = RiskClient(stack.grpc_targets["risk"], stack.secrets_dir)
    yield client
    client.close()


@pytest.fixture
def edge(stack: Stack) -> Iterator[EdgeClient]:
    """An app client from its own loopback address (no rate-limit bleed between tests)."""
    client = EdgeClient(stack.https_url, str(stack.ca_file))
    yield client
    client.close()
