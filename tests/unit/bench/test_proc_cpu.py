"""bench/proc_cpu.py: who a process is, and that its CPU time is counted."""

from __future__ import annotations

import os
import time

import pytest

from bench.proc_cpu import CpuSnapshot, _part, cpu_by_part, process_cpu_s


@pytest.mark.parametrize(
    ("cmdline", "role", "part"),
    [
        ("postgres: ledger_svc fintech 127.0.0.1(5) idle", "", "postgres"),
        ("/v/bin/temporal server start-dev --ip 127.0.0.1", "", "temporal"),
        ("/v/bin/python -m services.payments", "api", "payments"),
        ("/v/bin/python -m services.payments", "worker", "payments_worker"),
        ("/v/bin/python -m services.ledger", "all", "ledger"),
        ("/v/bin/python -m simulators.psp --port 1", "", "sim_psp"),
        ("/v/bin/envoy -c envoy.yaml", "", "envoy"),
    ],
)
def test_each_process_is_named_by_its_part_of_the_stack(cmdline: str, role: str, part: str) -> None:
    assert _part(cmdline, role) == part


def _burn(seconds: float) -> None:
    """Spend `seconds` of this process's CPU."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_spent_between_snapshots_is_counted_for_its_process() -> None:
    before = CpuSnapshot.take()
    mine = before.by_pid[str(os.getpid())][0]
    _burn(0.3)
    machine_s, parts = cpu_by_part(before, CpuSnapshot.take())
    assert parts[mine] >= 0.25
    assert machine_s >= parts[mine] - 0.05  # the machine total includes this process


def test_a_process_cpu_is_what_it_burnt() -> None:
    start = process_cpu_s(os.getpid())
    _burn(0.3)
    assert 0.25 <= process_cpu_s(os.getpid()) - start <= 2.0
