"""CPU time of every process on the machine, by part of the stack, read from /proc.

A benchmark runs alone on its machine (bench/README.md), so the whole
machine's CPU over a phase, divided by the work the phase did, is what that
work costs, and the split by process says who pays it. Linux only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
MAX_CMDLINE_BYTES = 4096


def _part(cmdline: str, role: str) -> str:
    """The stack part a process belongs to (a name stable across runs)."""
    if cmdline.startswith("postgres"):
        return "postgres"
    if "temporal" in cmdline and "start-dev" in cmdline:
        return "temporal"
    if " -m services." in cmdline:
        name = cmdline.split(" -m services.", 1)[1].split()[0]
        return f"{name}_worker" if role == "worker" else name
    if " -m simulators." in cmdline:
        return "sim_" + cmdline.split(" -m simulators.", 1)[1].split()[0]
    first = cmdline.split(" ", 1)[0]
    return Path(first).name or "other"


def _role(pid: str) -> str:
    try:
        environ = (PROC / pid / "environ").read_bytes()
    except OSError:
        return ""
    for entry in environ.split(b"\0"):
        if entry.startswith(b"FINTECH_PROCESS_ROLE="):
            return entry.split(b"=", 1)[1].decode()
    return ""


def _cpu_s(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds."""
    fields = stat[stat.rindex(")") + 2 :].split()  # the command may hold spaces and ")"
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) `pid` has used so far."""
    return _cpu_s((PROC / str(pid) / "stat").read_text())


@dataclass(frozen=True)
class CpuSnapshot:
    by_pid: dict[str, tuple[str, float]]  # pid -> (part, CPU seconds so far)
    machine_busy_s: float  # all CPUs, every state but idle and iowait

    @classmethod
    def take(cls) -> CpuSnapshot:
        by_pid: dict[str, tuple[str, float]] = {}
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                raw = (entry / "cmdline").read_bytes()[:MAX_CMDLINE_BYTES]
            except OSError:
                continue  # gone meanwhile
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            by_pid[entry.name] = (_part(cmdline, _role(entry.name)), _cpu_s(stat))
        ticks = [int(x) for x in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait
        return cls(by_pid, busy / TICKS_PER_S)


def cpu_by_part(before: CpuSnapshot, after: CpuSnapshot) -> tuple[float, dict[str, float]]:
    """(machine CPU seconds, CPU seconds by part) spent between two snapshots.
    Processes that started or ended in between count only in the machine total."""
    parts: dict[str, float] = {}
    for pid, (part, cpu_s) in after.by_pid.items():
        if pid in before.by_pid:
            parts[part] = parts.get(part, 0.0) + cpu_s - before.by_pid[pid][1]
    return after.machine_busy_s - before.machine_busy_s, parts


@dataclass(frozen=True)
class CpuCost:
    """What a benchmark phase cost the machine: the transfers (or events) it
    did, its seconds, and the CPU seconds of the machine and of each part of
    the stack over them (`cpu_by_part`)."""

    transfers: float
    seconds: float
    machine_s: float
    parts: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.transfers / self.seconds

    @property
    def per_transfer_us(self) -> float:
        """The machine's CPU per transfer, in microseconds."""
        return self.machine_s * 1e6 / max(self.transfers, 1.0)

    @staticmethod
    def budget_us(target_per_s: float) -> float:
        """All the machine's cores, per transfer, at `target_per_s`."""
        return (os.cpu_count() or 1) * 1e6 / target_per_s

    def lines(self, phase: str, target_per_s: float) -> list[str]:
        """`name: value` lines: CPU per transfer in all and by part, the cores
        busy, and the budget: the machine's CPU per transfer at the target rate."""
        per = 1e6 / max(self.transfers, 1.0)
        cores = os.cpu_count() or 1
        out = [
            f"cpu_per_transfer_us_{phase}: {self.per_transfer_us:.0f}",
            f"machine_busy_cores_{phase}: {self.machine_s / self.seconds:.2f} of {cores}",
        ]
        for part, cpu_s in sorted(self.parts.items(), key=lambda kv: -kv[1]):
            if cpu_s >= 0.01 * self.machine_s:
                out.append(f"cpu_per_transfer_us_{phase}_{part}: {cpu_s * per:.0f}")
                out.append(f"cores_{phase}_{part}: {cpu_s / self.seconds:.2f}")
        out.append(
            f"cpu_budget_per_transfer_us_at_target_{phase}: {self.budget_us(target_per_s):.0f}"
        )
        return out
