"""Everything above the infrastructure: migrations, services, rate limiter, Envoy.

Environment given to each business service (`python -m services.<svc>`),
per docs/CONVENTIONS.md:
  PYTHONPATH=<repo>:<repo>/gen, PYTHONUNBUFFERED=1,
  FINTECH_SERVICE=<svc>, FINTECH_PROCESS_ROLE (all, or api and worker for the
  two processes of a split service, topology.SPLIT_SERVICES),
  FINTECH_GRPC_HOST=127.0.0.1, FINTECH_GRPC_PORT,
  FINTECH_METRICS_PORT (gRPC port + 100), FINTECH_DATABASE_URL (role <svc>_svc),
  FINTECH_DB_SCHEMA=<svc>, FINTECH_REDIS_URL, FINTECH_NATS_URL,
  FINTECH_TEMPORAL_ADDRESS, FINTECH_S3_ENDPOINT, FINTECH_JWT_ISSUER,
  FINTECH_JWT_AUDIENCE, FINTECH_SECRETS_DIR, FINTECH_LOG_LEVEL, and
  FINTECH_TARGET_<SVC> = 127.0.0.1:<port> for every service (how services find
  each other; an addition to the conventions).
The rate-limit service (`python -m services.ratelimit`) gets PYTHONPATH,
FINTECH_SERVICE=ratelimit, FINTECH_GRPC_HOST, FINTECH_GRPC_PORT,
FINTECH_METRICS_PORT, FINTECH_REDIS_URL, FINTECH_LOG_LEVEL and
FINTECH_RATELIMIT_CONFIG (path of the rendered envoy/ratelimit.yaml).
"""

from __future__ import annotations

import importlib.util
import os
import ssl
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.devsecrets import OAUTH_PROVIDERS
from devstack.edge import EdgeInputs, render_envoy_config, render_ratelimit_config
from devstack.infra import (
    PROBE_TIMEOUT_S,
    TIER_EDGE,
    TIER_SERVICES,
    Infra,
    grpc_serving,
    venv_bin,
)
from devstack.procs import ProcessSpec, Supervisor, run_checked
from devstack.topology import (
    DB_POOL_SIZES,
    DEFAULT_DB_POOL_SIZE,
    SERVICES,
    SIMULATORS,
    WORKER_PROCESSES,
    Ports,
    db_role,
    process_role,
    simulator_url_env,
)

SERVICE_READY_TIMEOUT_S = 60.0
ENVOY_READY_TIMEOUT_S = 30.0
MIGRATION_TIMEOUT_S = 120.0
JWT_ISSUER = os.environ.get("FINTECH_JWT_ISSUER", "https://identity.fintech.local")
JWT_AUDIENCE = os.environ.get("FINTECH_JWT_AUDIENCE", "fintech-api")


@dataclass
class Stack:
    https_url: str
    ca_file: Path
    grpc_targets: dict[str, str]
    secrets_dir: Path
    infra: Infra
    ratelimit_target: str
    envoy_admin_url: str
    envoy_config: Path
    logs_dir: Path
    simulator_urls: dict[str, str] = field(default_factory=dict)
    ready_seconds: float = 0.0


@dataclass
class StackHandle:
    stack: Stack
    supervisor: Supervisor = field(default_factory=Supervisor)

    def stop(self) -> None:
        self.supervisor.stop_all()


def _base_env(infra: Infra, name: str) -> dict[str, str]:
    root = infra.config.root
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": f"{root}{os.pathsep}{root / 'gen'}",
            "PYTHONUNBUFFERED": "1",
            "FINTECH_SERVICE": name,
            "FINTECH_GRPC_HOST": "127.0.0.1",
            "FINTECH_LOG_LEVEL": os.environ.get("FINTECH_LOG_LEVEL", "INFO"),
            "FINTECH_REDIS_URL": infra.redis_url,
        }
    )
    return env


def service_env(infra: Infra, process: str) -> dict[str, str]:
    """The environment a service process runs with in this stack: `process` is
    a service (`python -m services.<service>`) or a split service's worker
    (`<service>_worker`, the same module in the worker role)."""
    ports = infra.config.ports
    service = WORKER_PROCESSES.get(process, process)
    env = _base_env(infra, service)
    env.update(
        {
            "FINTECH_PROCESS_ROLE": process_role(process),
            "FINTECH_GRPC_PORT": str(ports[process]),
            "FINTECH_METRICS_PORT": str(ports.metrics(process)),
            "FINTECH_DATABASE_URL": infra.service_database_url(
                db_role(service), infra.secrets.db_password(service)
            ),
            "FINTECH_DB_SCHEMA": service,
            "FINTECH_DB_POOL_SIZE": str(DB_POOL_SIZES.get(process, DEFAULT_DB_POOL_SIZE)),
            "FINTECH_NATS_URL": infra.nats_url,
            "FINTECH_TEMPORAL_ADDRESS": infra.temporal_address,
            "FINTECH_S3_ENDPOINT": infra.s3_endpoint,
            "FINTECH_JWT_ISSUER": JWT_ISSUER,
            "FINTECH_JWT_AUDIENCE": JWT_AUDIENCE,
            "FINTECH_SECRETS_DIR": str(infra.secrets.dir),
        }
    )
    for other in SERVICES:
        env[f"FINTECH_TARGET_{other.upper()}"] = f"127.0.0.1:{ports[other]}"
    for simulator in SIMULATORS:
        env[simulator_url_env(simulator)] = simulator_url(ports, simulator)
    return env


def simulator_url(ports: Ports, simulator: str) -> str:
    return f"http://127.0.0.1:{ports['sim_' + simulator]}"


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:  # noqa: S310 - loopback
        return int(resp.status) == 200


def _simulator_env(simulator: str, infra: Infra) -> dict[str, str]:
    env = _base_env(infra, f"sim_{simulator}")
    if simulator in OAUTH_PROVIDERS:
        # The provider accepts exactly the pair the service reads from the
        # secrets dir (devsecrets: provider_clients.json), generated per stack.
        env["FINTECH_PROVIDER_CLIENTS_FILE"] = str(infra.secrets.dir / "provider_clients.json")
    if simulator == "psp":
        # The PSP notifies payments through the edge (Envoy's HMAC-authenticated
        # webhook route), trusting the dev CA, signing with the shared key.
        ports = infra.config.ports
        env["FINTECH_PSP_WEBHOOK_URL"] = f"https://127.0.0.1:{ports['envoy']}/v1/webhooks/psp"
        env["FINTECH_PSP_WEBHOOK_SECRET_FILE"] = str(infra.secrets.dir / "webhook_hmac_secret")
        env["FINTECH_PSP_WEBHOOK_CA_FILE"] = str(infra.secrets.ca_cert)
    return env


def _simulator_spec(simulator: str, infra: Infra) -> ProcessSpec:
    ports = infra.config.ports
    health = simulator_url(ports, simulator) + "/__health"
    return ProcessSpec(
        name=f"sim_{simulator}",
        argv=[
            sys.executable,
            "-m",
            f"simulators.{simulator}",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["sim_" + simulator]),
        ],
        env=_simulator_env(simulator, infra),
        cwd=infra.config.root,
        log_path=infra.config.logs_dir / f"sim_{simulator}.log",
        ready=lambda: http_ok(health),
        ready_timeout_s=SERVICE_READY_TIMEOUT_S,
        stop_timeout_s=10.0,
        tier=TIER_SERVICES,
    )


def ratelimit_env(infra: Infra, config_path: Path) -> dict[str, str]:
    ports = infra.config.ports
    env = _base_env(infra, "ratelimit")
    env.update(
        {
            "FINTECH_GRPC_PORT": str(ports["ratelimit"]),
            "FINTECH_METRICS_PORT": str(ports.metrics("ratelimit")),
            "FINTECH_RATELIMIT_CONFIG": str(config_path),
        }
    )
    return env


def run_migrations(infra: Infra) -> None:
    """Each service's schema, role and tables, as the admin role (idempotent).

    Sequential on purpose: concurrent GRANTs on the same database row fail with
    "tuple concurrently updated", and six runs take a few seconds at most.
    """
    base_env = _base_env(infra, "migrate")
    for service in SERVICES:
        # Secrets travel in the environment, never on the command line (ps).
        env = {
            **base_env,
            "FINTECH_MIGRATE_ADMIN_URL": infra.pg_admin_url,
            "FINTECH_MIGRATE_PASSWORD": infra.secrets.db_password(service),
        }
        run_checked(
            [
                sys.executable,
                "-m",
                "services.platform.migrate",
                "--service",
                service,
                "--migrations-dir",
                str(infra.config.root / "migrations"),
            ],
            env=env,
            timeout_s=MIGRATION_TIMEOUT_S,
            what=f"migrations of {service}",
            cwd=infra.config.root,
        )


def _grpc_spec(name: str, port: int, env: dict[str, str], infra: Infra, tier: int) -> ProcessSpec:
    target = f"127.0.0.1:{port}"
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-m", f"services.{WORKER_PROCESSES.get(name, name)}"],
        env=env,
        cwd=infra.config.root,
        log_path=infra.config.logs_dir / f"{name}.log",
        ready=lambda: grpc_serving(target),
        ready_timeout_s=SERVICE_READY_TIMEOUT_S,
        # The platform drains in-flight calls for up to 10 s on SIGTERM.
        stop_timeout_s=15.0,
        tier=tier,
    )


def _available(simulator: str) -> bool:
    return importlib.util.find_spec(f"simulators.{simulator}") is not None


def https_ok(url: str, ca_file: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S, context=ctx) as resp:  # noqa: S310
        return int(resp.status) == 200


def start_stack(infra: Infra) -> StackHandle:
    """Migrate, start services + rate limiter together, then Envoy; stop all on failure."""
    cfg = infra.config
    ports = cfg.ports
    handle = StackHandle(
        stack=Stack(
            https_url=f"https://127.0.0.1:{ports['envoy']}",
            ca_file=infra.secrets.ca_cert,
            grpc_targets={s: f"127.0.0.1:{ports[s]}" for s in SERVICES},
            secrets_dir=infra.secrets.dir,
            infra=infra,
            ratelimit_target=f"127.0.0.1:{ports['ratelimit']}",
            envoy_admin_url=f"http://127.0.0.1:{ports['envoy_admin']}",
            envoy_config=cfg.state_dir / "envoy.yaml",
            logs_dir=cfg.logs_dir,
            simulator_urls={sim: simulator_url(ports, sim) for sim in SIMULATORS},
        )
    )
    try:
        run_migrations(infra)
        rl_config = cfg.state_dir / "ratelimit.yaml"
        rl_config.write_text(render_ratelimit_config(cfg.profile))
        specs = [
            _grpc_spec(p, ports[p], service_env(infra, p), infra, TIER_SERVICES)
            for p in (*SERVICES, *WORKER_PROCESSES)
        ]
        # The simulators start with the services; a service that calls one at
        # start-up retries until it answers (its resilient client does).
        specs += [_simulator_spec(sim, infra) for sim in SIMULATORS if _available(sim)]
        specs.append(
            _grpc_spec(
                "ratelimit",
                ports["ratelimit"],
                ratelimit_env(infra, rl_config),
                infra,
                # Stopped together with the services: each drains for up to 10 s,
                # in parallel rather than one tier after the other.
                TIER_SERVICES,
            )
        )
        handle.supervisor.start_all(specs)

        envoy_config = handle.stack.envoy_config
        envoy_config.write_text(
            render_envoy_config(
                EdgeInputs(
                    profile=cfg.profile,
                    ports=ports,
                    secrets_dir=infra.secrets.dir,
                    access_log=cfg.logs_dir / "envoy-access.log",
                    jwt_issuer=JWT_ISSUER,
                    jwt_audience=JWT_AUDIENCE,
                )
            )
        )
        healthz = handle.stack.https_url + "/healthz"
        ca_file = handle.stack.ca_file
        handle.supervisor.start_all(
            [
                ProcessSpec(
                    name="envoy",
                    argv=[
                        venv_bin("envoy"),
                        "-c",
                        str(envoy_config),
                        # Two stacks (run, test) side by side: no shared hot-restart memory.
                        "--disable-hot-restart",
                        "--concurrency",
                        "2",
                        "--log-level",
                        "warn",
                    ],
                    log_path=cfg.logs_dir / "envoy.log",
                    ready=lambda: https_ok(healthz, ca_file),
                    ready_timeout_s=ENVOY_READY_TIMEOUT_S,
                    tier=TIER_EDGE,
                )
            ]
        )
    except BaseException:
        handle.stop()
        raise
    return handle
