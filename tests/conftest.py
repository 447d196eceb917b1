"""Session fixtures: `infra` (servers only) and `stack` (everything behind Envoy).

Both use the `test` profile: state in `.state/test/`, ports from
FINTECH_TEST_PORT_BASE (default 27000); FINTECH_TEST_PROFILE picks another
state dir. `infra` reuses existing servers named by DATABASE_URL, REDIS_URL,
NATS_URL, TEMPORAL_ADDRESS, S3_ENDPOINT and starts the rest from the wheels.
Whatever a fixture started is stopped at session end, on Ctrl-C (pytest runs
session finalizers), and on SIGTERM (turned into KeyboardInterrupt below); if
pytest itself is SIGKILLed the children die with it (PR_SET_PDEATHSIG, see
devstack/procs.py). Unit tests request neither fixture.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from devstack.infra import Infra, InfraHandle, StackConfig, open_infra
from devstack.procs import AlreadyRunning, StartupError, Supervisor
from devstack.stack import Stack, StackHandle, start_stack

# FINTECH_TEST_PROFILE (with FINTECH_TEST_PORT_BASE) lets a second test session
# run beside the first on its own state dir and ports.
TEST_PROFILE = os.environ.get("FINTECH_TEST_PROFILE", "test")


def _sigterm_to_interrupt(signum: int, frame: FrameType | None) -> None:
    # pytest tears session fixtures down on KeyboardInterrupt, not on SIGTERM.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def _infra_handle() -> Iterator[InfraHandle]:
    cfg = StackConfig.for_profile(TEST_PROFILE)
    previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        handle = open_infra(cfg)
    except (StartupError, AlreadyRunning) as exc:
        signal.signal(signal.SIGTERM, previous)
        pytest.fail(f"test infrastructure did not start: {exc}", pytrace=False)
    try:
        yield handle
    finally:
        handle.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def infra(_infra_handle: InfraHandle) -> Infra:
    """Postgres, Redis, NATS, Temporal and S3 (started here or taken from env vars)."""
    return _infra_handle.infra


@pytest.fixture(scope="session")
def stack(_infra_handle: InfraHandle) -> Iterator[Stack]:
    """infra + migrations + every service + the rate limiter + Envoy (profile `test`)."""
    try:
        handle: StackHandle = start_stack(_infra_handle.infra)
    except StartupError as exc:
        pytest.fail(f"test stack did not start: {exc}", pytrace=False)
    try:
        yield handle.stack
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def service_restarts(stack: Stack) -> Iterator[Supervisor]:
    """Replacement service processes started by failure tests (after a SIGKILL of
    the stack's own). They serve the rest of the session, so later tests find
    every service up, and stop with the stack."""
    supervisor = Supervisor()
    try:
        yield supervisor
    finally:
        supervisor.stop_all()
