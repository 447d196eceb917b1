"""Killing and restarting a service process in failure tests.

A failure test SIGKILLs a service (no drain, nothing graceful) and starts a
replacement with exactly the stack's environment for that service
(devstack.stack.service_env), on the stack's port or a free one. Replacements
are spawned from the test's main thread (their PDEATHSIG is tied to it) and
stopped by the supervisor at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.infra import grpc_serving
from devstack.procs import ManagedProcess, ProcessSpec, Supervisor
from devstack.stack import Stack, service_env
from devstack.topology import WORKER_PROCESSES

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_of(target: str) -> int:
    return int(target.rsplit(":", 1)[1])


def service_spec(stack: Stack, process: str, name: str, *, port: int | None = None) -> ProcessSpec:
    """A service process as the stack runs it (on `port` when given): `process`
    is a service or a split service's worker (devstack.topology.WORKER_PROCESSES)."""
    env = service_env(stack.infra, process)
    if port is not None:
        env["FINTECH_GRPC_PORT"] = str(port)
        env["FINTECH_METRICS_PORT"] = "0"
    target = f"127.0.0.1:{env['FINTECH_GRPC_PORT']}"
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-m", f"services.{WORKER_PROCESSES.get(process, process)}"],
        env=env,
        cwd=stack.infra.config.root,
        log_path=stack.logs_dir / f"{name}.log",
        ready=lambda: grpc_serving(target),
        ready_timeout_s=READY_TIMEOUT_S,
        stop_timeout_s=STOP_TIMEOUT_S,
    )


def service_pid(service: str, port: int) -> int:
    """The process serving `service` on `port` (the stack's, or a replacement)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"services.{service}".encode() in cmd and f"FINTECH_GRPC_PORT={port}".encode() in env:
            return int(entry.name)
    raise AssertionError(f"no {service} process on port {port}")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def sigkill(pid: int) -> None:
    """SIGKILL `pid` and wait until it is gone (a zombie counts: it serves nothing)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while not _gone(pid):
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.05)


@dataclass
class RestartableService:
    """A service process of the test's own that it may SIGKILL and start again."""

    spec: ProcessSpec
    supervisor: Supervisor = field(default_factory=Supervisor)
    proc: ManagedProcess | None = None

    def start(self) -> None:
        self.proc = self.supervisor.start(self.spec)

    async def wait_ready(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(self.supervisor.wait_ready, [self.proc])

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)  # no drain, no graceful anything
        self.proc.popen.wait(timeout=KILL_TIMEOUT_S)
        self.supervisor.processes.remove(self.proc)
        self.proc = None
