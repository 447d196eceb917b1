"""Process supervision: start servers, wait until they are healthy, stop them.

Design choices (why):
- Every child runs in its own session/process group so that stopping it also
  stops whatever it forked (Postgres backends, Temporal's helpers).
- Every child gets PR_SET_PDEATHSIG=SIGKILL, so killing the runner (even with
  SIGKILL) never leaves orphans holding ports. The signal is tied to the *thread*
  that forked the child, so children are always spawned from the caller's thread
  (the main thread of `python -m devstack` or of pytest), never from workers.
- Readiness is polled from a single thread: independent servers are started
  back-to-back and then waited on together, which is the parallelism we need
  without thread/fork interactions.
- One flock per state dir: a second runner fails fast without touching anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 40
LOG_TAIL_MAX_BYTES = 64 * 1024
POLL_INTERVAL_S = 0.2
DEFAULT_STOP_TIMEOUT_S = 15.0

_libc = ctypes.CDLL(None, use_errno=True)


class StartupError(RuntimeError):
    """A server exited or did not become healthy in time; carries its log tail."""


class AlreadyRunning(RuntimeError):
    """Another runner holds the state dir lock."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log (bounded read, logs can be large)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_MAX_BYTES))
            data = f.read()
    except FileNotFoundError:
        return "(no log written)"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ProcessSpec:
    name: str
    argv: Sequence[str]
    log_path: Path
    ready: Callable[[], bool]
    ready_timeout_s: float
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: int | None = None
    group: int | None = None
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    # Processes of the same tier are stopped together; tiers in reverse start order.
    tier: int = 0


@dataclass
class ManagedProcess:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    started_at: float
    ready: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid


def _make_child_setup(parent_pid: int) -> Callable[[], None]:
    def setup() -> None:
        # Runs in the child after fork and after any setuid, just before exec:
        # a uid change would clear PDEATHSIG, so it is set here, after it.
        if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        # The parent may have died between fork and prctl; then nobody would stop us.
        if os.getppid() != parent_pid:
            os._exit(125)

    return setup


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class Supervisor:
    """Owns the processes it started; `stop_all` is safe to call more than once."""

    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as log:
            log.write(f"\n--- devstack: starting {spec.name}: {' '.join(spec.argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(spec.env) if spec.env is not None else None,
                cwd=spec.cwd,
                user=spec.user,
                group=spec.group,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_make_child_setup(os.getpid()),  # PDEATHSIG: see module doc
            )
        proc = ManagedProcess(spec=spec, popen=popen, started_at=time.monotonic())
        self.processes.append(proc)
        return proc

    def wait_ready(self, procs: Sequence[ManagedProcess]) -> None:
        """Poll every probe until all are healthy; raise with the log tail otherwise."""
        pending = [p for p in procs if not p.ready]
        while pending:
            for proc in list(pending):
                code = proc.popen.poll()
                if code is not None:
                    raise StartupError(
                        f"{proc.spec.name} exited with code {code} before becoming ready; "
                        f"log {proc.spec.log_path}:\n{log_tail(proc.spec.log_path)}"
                    )
                try:
                    healthy = proc.spec.ready()
                except Exception:  # a probe failing is "not ready yet"
                    healthy = False
                if healthy:
                    proc.ready = True
                    pending.remove(proc)
                elif time.monotonic() - proc.started_at > proc.spec.ready_timeout_s:
                    raise StartupError(
                        f"{proc.spec.name} not ready after {proc.spec.ready_timeout_s:.0f}s; "
                        f"log {proc.spec.log_path}:\n{log_tail(proc.spec.log_path)}"
                    )
            if pending:
                time.sleep(POLL_INTERVAL_S)

    def start_all(self, specs: Sequence[ProcessSpec]) -> list[ManagedProcess]:
        """Start independent servers together, then wait for all of them."""
        procs = [self.start(s) for s in specs]
        self.wait_ready(procs)
        return procs

    def dead(self) -> list[ManagedProcess]:
        return [p for p in self.processes if p.popen.poll() is not None]

    def stop_all(self) -> None:
        """SIGTERM each tier (last started first), wait, then SIGKILL what is left."""
        tiers = sorted({p.spec.tier for p in self.processes}, reverse=True)
        for tier in tiers:
            group = [p for p in self.processes if p.spec.tier == tier]
            for proc in group:
                if proc.popen.poll() is None:
                    _signal_group(proc.pid, signal.SIGTERM)
            for proc in group:
                deadline = proc.spec.stop_timeout_s
                try:
                    proc.popen.wait(timeout=deadline)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
                # The leader is gone; anything it forked into its group goes too.
                _signal_group(proc.pid, signal.SIGKILL)
        self.processes.clear()


class StateLock:
    """An exclusive flock on `<state>/devstack.lock`, held while the stack runs."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "devstack.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = self.path.read_text().strip() or "unknown"
            raise AlreadyRunning(
                f"another devstack (pid {holder}) is already running with state dir "
                f"{self.path.parent}; stop it first (Ctrl-C in its terminal or "
                f"`python -m devstack down --profile {self.path.parent.name}`)"
            ) from None
        # Only the holder writes: the pid tells the next runner who has it.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def run_checked(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float,
    what: str,
    user: int | None = None,
    group: int | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a short command to completion; raise StartupError with its output on failure."""
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            capture_output=True,
            timeout=timeout_s,
            user=user,
            group=group,
            cwd=cwd,
            check=False,
            preexec_fn=_make_child_setup(os.getpid()),  # PDEATHSIG: see module doc
        )
    except subprocess.TimeoutExpired as exc:
        raise StartupError(f"{what} timed out after {timeout_s:.0f}s") from exc
    out = (done.stdout + done.stderr).decode("utf-8", errors="replace")
    if done.returncode != 0:
        tail = "\n".join(out.splitlines()[-LOG_TAIL_LINES:])
        raise StartupError(f"{what} failed with code {done.returncode}:\n{tail}")
    return out
