"""Fixtures of the KYC integration tests (`stack` comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.integration.edge import EdgeClient
from tests.integration.kyc.kyc_it_support import Db, Sim


@pytest.fixture(scope="session")
def sims(stack: Stack) -> Iterator[dict[str, Sim]]:
    """receita, govdocs and bureau simulators, faults reset before and after."""
    found = {name: Sim(stack.simulator_urls[name]) for name in ("receita", "govdocs", "bureau")}
    for sim in found.values():
        sim.reset()  # an interrupted run may have left an outage on
    yield found
    for sim in found.values():
        sim.reset()
        sim.close()


@pytest.fixture(scope="session")
def db(stack: Stack) -> Db:
    return Db(stack.infra.pg_admin_url)


@pytest.fixture
def edge(stack: Stack) -> Iterator[EdgeClient]:
    client = EdgeClient(stack.https_url, str(stack.ca_file))
    yield client
    client.close()
