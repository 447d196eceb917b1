"""Temporal client and worker wiring (long-running processes: payments, loans, KYC)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from services.platform.settings import Settings, SettingsError

log = logging.getLogger(__name__)

MAX_CONCURRENT_ACTIVITIES = 100
MAX_CONCURRENT_WORKFLOW_TASKS = 100
DEFAULT_GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# Long polls held open per worker. With the SDK's default (5 workflow-task
# polls, a fifth of them on the shared queue) one poll at a time took new
# workflows' first tasks, and under a burst (50 KYC submissions at once) they
# queued in Temporal for seconds. Half of 16 polls take first tasks, half
# continue cached workflows.
WORKFLOW_TASK_POLLS = 16
NONSTICKY_TO_STICKY_POLL_RATIO = 0.5
ACTIVITY_TASK_POLLS = 10
CONNECT_TIMEOUT = timedelta(seconds=10)


async def connect(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise SettingsError("FINTECH_TEMPORAL_ADDRESS is not set")
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        # Trace context flows from the RPC that starts a workflow into its activities.
        interceptors=[TracingInterceptor()],
        connect_timeout=CONNECT_TIMEOUT,
        identity=f"{settings.service}@fintech",
    )


def build_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., object]],
    *,
    max_concurrent_activities: int = 20,
    max_concurrent_workflow_tasks: int = 20,
    graceful_shutdown: timedelta = DEFAULT_GRACEFUL_SHUTDOWN,
) -> Worker:
    assert workflows or activities, "a worker with nothing to run"
    assert 1 <= max_concurrent_activities <= MAX_CONCURRENT_ACTIVITIES
    assert 1 <= max_concurrent_workflow_tasks <= MAX_CONCURRENT_WORKFLOW_TASKS
    for activity in activities:
        # Sync activities would need a thread pool; the platform runs async ones only.
        assert asyncio.iscoroutinefunction(activity), f"{activity} must be async"
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=graceful_shutdown,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(WORKFLOW_TASK_POLLS),
        nonsticky_to_sticky_poll_ratio=NONSTICKY_TO_STICKY_POLL_RATIO,
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(ACTIVITY_TASK_POLLS),
    )


async def run_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., object]],
    *,
    stop: asyncio.Event | None = None,
    max_concurrent_activities: int = 20,
    max_concurrent_workflow_tasks: int = 20,
    graceful_shutdown: timedelta = DEFAULT_GRACEFUL_SHUTDOWN,
) -> None:
    """Run a worker until `stop` is set (or the task is cancelled), then shut down
    gracefully: running activities get `graceful_shutdown` to finish."""
    worker = build_worker(
        client,
        task_queue,
        workflows,
        activities,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        graceful_shutdown=graceful_shutdown,
    )
    runner = asyncio.create_task(worker.run(), name=f"temporal-worker-{task_queue}")
    waiter = asyncio.create_task((stop or asyncio.Event()).wait())
    try:
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # a worker that stopped on its own failed: surface it
            return
    finally:
        waiter.cancel()
        if not runner.done():
            log.info("shutting down temporal worker on %s", task_queue)
            await worker.shutdown()
            await asyncio.gather(runner, return_exceptions=True)


ONE_LOCAL_ATTEMPT = RetryPolicy(maximum_attempts=1)


async def local_then_durable(
    name: str,
    *args: Any,
    start_to_close: timedelta,
    retry: RetryPolicy,
    deadline: timedelta | None = None,
) -> Any:
    """Workflow code: run activity `name` once as a local activity, then, if
    that attempt fails, as a regular activity under `retry`.

    A local activity runs in this worker with no round trip through the
    Temporal server: its result is a marker in the workflow task being
    completed anyway, where a regular activity costs four history writes (the
    dev server's single history shard is what limited payments and KYC). The
    regular activity that follows a failure is durable across worker restarts
    and waits out an outage under `retry` (within `deadline`, if given).

    The activity must be re-entrant: a workflow task lost with its worker runs
    its local activities again, so a second run after the first took effect
    must change nothing twice and let the workflow carry on. A failed local
    activity surfaces as its ApplicationError in this SDK, a regular one as
    ActivityError; only the durable run's failure reaches the caller.
    """
    try:
        return await workflow.execute_local_activity(
            name,
            args=list(args),
            start_to_close_timeout=start_to_close,
            retry_policy=ONE_LOCAL_ATTEMPT,
        )
    except (ActivityError, ApplicationError):
        pass
    return await workflow.execute_activity(
        name,
        args=list(args),
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=deadline,
        retry_policy=retry,
    )
