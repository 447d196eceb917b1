"""Open-loop load generation and percentiles shared by the benchmarks.

Open loop: requests are sent on a fixed schedule whatever the answers' speed,
and each latency is measured from its *scheduled* start, so a stalled target
shows up as latency instead of as a generator that quietly waits (no
coordinated omission).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from devstack.infra import StackConfig, open_infra
from devstack.stack import Stack, start_stack

START_DELAY_S = 0.05


@dataclass(frozen=True)
class BenchStack:
    stack: Stack
    ready_seconds: float  # from nothing running to Envoy answering /healthz


@contextmanager
def bench_stack(profile: str, port_base: int, *, keep_state: bool = False) -> Iterator[BenchStack]:
    """A whole stack of the benchmark's own (profile, ports, state), stopped on exit.

    Without `keep_state` the state directory is wiped first: a cold start, as
    on a fresh machine after install, so runs are comparable.
    """
    cfg = StackConfig.for_profile(profile, port_base)
    if not keep_state and cfg.state_dir.exists():
        shutil.rmtree(cfg.state_dir)
    began = time.perf_counter()
    infra_handle = open_infra(cfg)
    try:
        stack_handle = start_stack(infra_handle.infra)
        try:
            yield BenchStack(stack_handle.stack, time.perf_counter() - began)
        finally:
            stack_handle.stop()
    finally:
        infra_handle.stop()


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    assert sorted_values and 0 < p <= 100
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def open_loop(
    call: Callable[[int], Awaitable[bool]], rate: float, seconds: float, max_in_flight: int
) -> tuple[list[float], int]:
    """Fire call(i) every 1/rate s for `seconds`; sorted latencies (ms) and the failures.

    `call` answers whether request i succeeded. At most `max_in_flight` run at
    once; a request waiting for a slot keeps its schedule, so the wait counts.
    """
    assert rate > 0 and seconds > 0 and max_in_flight > 0
    interval = 1.0 / rate
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limiter = asyncio.Semaphore(max_in_flight)
    start = time.perf_counter() + START_DELAY_S

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        async with limiter:
            ok = await call(i)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if not ok:
            errors += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    return sorted(latencies), errors
