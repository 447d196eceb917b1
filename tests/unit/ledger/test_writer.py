"""The writer's queueing: group commit, batch limit, failure isolation.

The database part (`_apply`) is replaced by a fake that records the batches;
what is tested is which jobs share a batch and who gets which outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.ledger.domain.model import Rejected, TransferResult
from services.ledger.domain.reasons import invalid
from services.ledger.writer import LedgerWriter, Outcome, _Job
from services.ledger.writer_connection import WriterConnection


def _items(n: int, tag: str = "ok") -> list[Rejected]:
    # Rejected items are cheap stand-ins; the fake reads the tag from the message.
    return [Rejected(invalid(i, "name", "NAME_INVALID", tag), False) for i in range(n)]


class FakeWriter(LedgerWriter):
    def __init__(self, max_batch: int) -> None:
        super().__init__(
            WriterConnection("postgresql://fake@127.0.0.1:1/none"), max_batch=max_batch
        )
        self.batches: list[list[int]] = []

    async def _apply(self, jobs: list[_Job]) -> list[Outcome]:
        self.batches.append([job.size for job in jobs])
        outcomes: list[Outcome] = []
        for job in jobs:
            assert job.items is not None
            if any(isinstance(i, Rejected) and i.failure.message == "boom" for i in job.items):
                raise RuntimeError("CHECK constraint violated")
            outcomes.append(
                [TransferResult(i, invalid(i, "name", "X", "x")) for i in range(job.size)]
            )
        return outcomes


@pytest.fixture
async def writer() -> AsyncIterator[FakeWriter]:
    w = FakeWriter(max_batch=10)
    task = asyncio.create_task(w.run())
    yield w
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await w.db.close()


async def test_concurrent_requests_share_batches_within_the_limit(writer: FakeWriter) -> None:
    results = await asyncio.gather(*(writer.submit(_items(3)) for _ in range(7)))
    assert [len(r) for r in results] == [3] * 7
    assert sum(len(b) for b in writer.batches) == 7
    assert all(sum(b) <= 10 for b in writer.batches)
    assert len(writer.batches) < 7, "waiting requests are grouped into one transaction"


async def test_a_failing_job_fails_only_its_caller_and_the_writer_goes_on(
    writer: FakeWriter,
) -> None:
    good, bad, other = await asyncio.gather(
        writer.submit(_items(2)),
        writer.submit(_items(2, "boom")),
        writer.submit(_items(2)),
        return_exceptions=True,
    )
    assert isinstance(bad, RuntimeError)
    assert isinstance(good, list) and isinstance(other, list)
    assert len(await writer.submit(_items(1))) == 1
