"""Temporal client + worker wiring with graceful stop."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.platform import temporal
from services.platform.settings import Settings, SettingsError
from tests.integration.platform.platform_it_workflows import ShoutWorkflow, shout

pytestmark = pytest.mark.integration


async def test_worker_runs_workflow_and_stops_gracefully(infra) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env(
        "pttemporal", {"FINTECH_GRPC_PORT": "1", "FINTECH_TEMPORAL_ADDRESS": infra.temporal_address}
    )
    client = await temporal.connect(settings)
    queue = f"platform-test-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    worker = asyncio.create_task(
        temporal.run_worker(client, queue, [ShoutWorkflow], [shout], stop=stop)
    )
    try:
        result = await client.execute_workflow(
            ShoutWorkflow.run, "pix", id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
        assert result == "PIX"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 15)
    assert worker.exception() is None


async def test_connect_requires_an_address() -> None:
    with pytest.raises(SettingsError):
        await temporal.connect(Settings.from_env("pttemporal", {"FINTECH_GRPC_PORT": "1"}))


def test_sync_activities_are_refused() -> None:
    def blocking(x: str) -> str:
        return x

    with pytest.raises(AssertionError):
        temporal.build_worker(None, "q", [], [blocking])  # type: ignore[arg-type]
