"""`python -m devstack run|up|down|status|compose-config` — the local stack in one command.

run   start everything (profile `run`, ports 17000+), print the endpoints and
      `ready_seconds: N`, block until Ctrl-C / SIGTERM, stop everything.
up    the same in the background (for debugging): returns once ready.
down  stop a stack started by `run` or `up` on that profile.
While a stack runs, `<state>/endpoints.json` describes it.
compose-config  write what compose.yaml mounts into .state/compose/ (devstack/compose.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from devstack.compose import write_compose_config
from devstack.infra import InfraHandle, StackConfig, open_infra
from devstack.procs import AlreadyRunning, StartupError, log_tail
from devstack.stack import Stack, StackHandle, start_stack
from devstack.topology import WORKER_PROCESSES

UP_TIMEOUT_S = 300.0
DOWN_TIMEOUT_S = 120.0
WATCH_INTERVAL_S = 1.0


def endpoints(stack: Stack) -> dict[str, object]:
    infra = stack.infra
    return {
        "profile": infra.config.profile,
        "https_url": stack.https_url,
        "ca_file": str(stack.ca_file),
        "grpc_targets": stack.grpc_targets,
        "ratelimit": stack.ratelimit_target,
        "simulators": stack.simulator_urls,
        "envoy_admin": stack.envoy_admin_url,
        "postgres_admin_url": infra.pg_admin_url,
        "redis_url": infra.redis_url,
        "nats_url": infra.nats_url,
        "nats_monitor": infra.nats_monitor_url,
        "temporal_address": infra.temporal_address,
        "temporal_ui": infra.temporal_ui_url,
        "s3_endpoint": infra.s3_endpoint,
        "secrets_dir": str(stack.secrets_dir),
        "logs_dir": str(stack.logs_dir),
        "started_here": infra.started,
        "ready_seconds": round(stack.ready_seconds, 1),
        "pid": os.getpid(),
    }


def print_endpoints(stack: Stack) -> None:
    infra = stack.infra
    lines = [
        f"edge (HTTPS/JSON, gRPC): {stack.https_url}   (try {stack.https_url}/healthz)",
        f"dev CA certificate:      {stack.ca_file}",
    ]
    lines += [f"grpc {name + ':':<20}{target}" for name, target in stack.grpc_targets.items()]
    lines += [
        f"grpc {name + ':':<20}127.0.0.1:{infra.config.ports[name]}  (health and reflection only)"
        for name in WORKER_PROCESSES
    ]
    lines += [f"{'sim ' + name + ':':<25}{url}" for name, url in stack.simulator_urls.items()]
    lines += [
        f"grpc ratelimit:          {stack.ratelimit_target}",
        f"envoy admin:             {stack.envoy_admin_url}",
        f"postgres (admin):        {infra.pg_admin_url.split('@')[-1]}  "
        f"(password in {infra.secrets.dir / 'postgres_admin_password'})",
        f"redis:                   {infra.redis_url}",
        f"nats:                    {infra.nats_url}",
        f"nats monitor:            {infra.nats_monitor_url or '(external server)'}",
        f"temporal:                {infra.temporal_address}",
        f"temporal ui:             {infra.temporal_ui_url or '(not started)'}",
        f"s3:                      {infra.s3_endpoint}  "
        f"(credentials in {infra.secrets.dir / 's3_credentials.json'})",
        f"secrets:                 {stack.secrets_dir}",
        f"logs:                    {stack.logs_dir}",
        f"ready_seconds: {stack.ready_seconds:.1f}",
    ]
    print("\n".join(lines), flush=True)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def cmd_run(cfg: StackConfig) -> int:
    started = time.monotonic()
    # Signals become an exception so that a Ctrl-C during start-up also stops
    # whatever was already started (the finally blocks below).
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    infra_handle: InfraHandle | None = None
    stack_handle: StackHandle | None = None
    endpoints_file = cfg.state_dir / "endpoints.json"
    try:
        infra_handle = open_infra(cfg)
        stack_handle = start_stack(infra_handle.infra)
        stack_handle.stack.ready_seconds = time.monotonic() - started
        endpoints_file.write_text(json.dumps(endpoints(stack_handle.stack), indent=2))
        print_endpoints(stack_handle.stack)
        print("stack is up; Ctrl-C stops it", flush=True)
        while True:
            dead = stack_handle.supervisor.dead() + infra_handle.supervisor.dead()
            if dead:
                proc = dead[0]
                print(
                    f"{proc.spec.name} exited with code {proc.popen.returncode}; stopping.\n"
                    f"{log_tail(proc.spec.log_path)}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            time.sleep(WATCH_INTERVAL_S)
    except AlreadyRunning as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"devstack: start-up failed: {exc}", file=sys.stderr)
        return 1
    except _Stop:
        print("stopping...", flush=True)
        return 0
    finally:
        # Stopping must not be interrupted by a second Ctrl-C half-way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if infra_handle is not None:
            endpoints_file.unlink(missing_ok=True)
        if stack_handle is not None:
            stack_handle.stop()
        if infra_handle is not None:
            infra_handle.stop()
            print("stopped", flush=True)


def cmd_up(cfg: StackConfig) -> int:
    endpoints_file = cfg.state_dir / "endpoints.json"
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = cfg.logs_dir / "devstack.log"
    with log_path.open("ab") as log:
        start_offset = log.tell()
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack",
                "run",
                "--profile",
                cfg.profile,
                "--port-base",
                str(cfg.port_base),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cfg.root,
            start_new_session=True,  # survives this command and the terminal
        )
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        code = runner.poll()
        if code is not None:
            with log_path.open("rb") as f:
                f.seek(start_offset)
                output = f.read(64 * 1024).decode("utf-8", errors="replace")
            print(f"devstack run exited with code {code}:\n{output}", file=sys.stderr)
            return code or 1
        if endpoints_file.exists():
            with contextlib.suppress(ValueError):
                data = json.loads(endpoints_file.read_text())
                if data.get("pid") == runner.pid:
                    print(json.dumps(data, indent=2))
                    return 0
        time.sleep(0.5)
    runner.terminate()
    print(f"not ready after {UP_TIMEOUT_S:.0f}s; see {log_path}", file=sys.stderr)
    return 1


def _runner_pid(cfg: StackConfig) -> int | None:
    lock = cfg.state_dir / "devstack.lock"
    try:
        return int(lock.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def cmd_down(cfg: StackConfig) -> int:
    pid = _runner_pid(cfg)
    endpoints_file = cfg.state_dir / "endpoints.json"
    if pid is None or not endpoints_file.exists():
        print(f"no stack running on profile {cfg.profile}")
        return 0
    data = json.loads(endpoints_file.read_text())
    if data.get("pid") != pid:
        print(f"lock pid {pid} is not the runner recorded in {endpoints_file}", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("stopped")
            return 0
        time.sleep(0.5)
    print(f"runner {pid} still alive after {DOWN_TIMEOUT_S:.0f}s", file=sys.stderr)
    return 1


def cmd_status(cfg: StackConfig) -> int:
    endpoints_file = cfg.state_dir / "endpoints.json"
    if not endpoints_file.exists():
        print(f"no stack running on profile {cfg.profile}")
        return 1
    print(endpoints_file.read_text())
    return 0


def cmd_compose_config() -> int:
    files = write_compose_config()
    print(f"wrote {files.envoy_config}, {files.ratelimit_config}, secrets in {files.secrets_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["run", "up", "down", "status", "compose-config"])
    parser.add_argument(
        "--profile",
        default="run",
        help="state dir .state/<profile>; `run` (default) or a test profile such as `test`",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=None,
        help="default: FINTECH_PORT_BASE or 17000 (run), FINTECH_TEST_PORT_BASE or 27000 (test)",
    )
    args = parser.parse_args(argv)
    if args.command == "compose-config":
        # Fixed paths and ports (those compose.yaml names): no profile, no stack config.
        return cmd_compose_config()
    cfg = StackConfig.for_profile(args.profile, args.port_base)
    commands = {"run": cmd_run, "up": cmd_up, "down": cmd_down, "status": cmd_status}
    return commands[args.command](cfg)


if __name__ == "__main__":
    sys.exit(main())
