"""bench/proc_cpu.py's CpuCost: what a phase cost the machine, per transfer."""

from __future__ import annotations

import os

from bench.proc_cpu import CpuCost


def test_a_phase_is_costed_per_transfer_by_part_against_the_budget_of_its_target() -> None:
    phase = CpuCost(
        transfers=2_000,
        seconds=4.0,
        machine_s=1.0,
        parts={"ledger": 0.6, "postgres": 0.32, "redis-server": 0.005},
    )
    lines = dict(line.split(": ", 1) for line in phase.lines("single", target_per_s=10_000))
    cores = os.cpu_count() or 1
    assert lines == {
        "cpu_per_transfer_us_single": "500",
        "machine_busy_cores_single": f"0.25 of {cores}",
        "cpu_per_transfer_us_single_ledger": "300",
        "cores_single_ledger": "0.15",
        "cpu_per_transfer_us_single_postgres": "160",
        "cores_single_postgres": "0.08",
        # All the machine's cores at the target rate: 100 us each per transfer.
        "cpu_budget_per_transfer_us_at_target_single": str(100 * cores),
    }  # a part under 1% of the machine's CPU is left out
