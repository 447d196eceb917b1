"""What the stack is made of and where each part listens.

The single description of the topology: the process supervisor, the Envoy
config generator, compose.yaml's consistency test and the README all read it.
Ports are `base + offset` so that two stacks (run and test) never collide and
none of them uses a standard port (5432, 6379, 4222 may be taken).
"""

from __future__ import annotations

from dataclasses import dataclass

# Business services, in start order. Each is `python -m services.<name>`.
SERVICES: tuple[str, ...] = ("identity", "kyc", "risk", "loans", "ledger", "payments")

# Services whose background work runs in a second process, `<svc>_worker`
# (FINTECH_PROCESS_ROLE=worker: Temporal workers, event consumers, the outbox
# relay), beside `<svc>` (role api). In one process, payments' replies waited
# behind workflow activations and activities on one core and one event loop;
# split, the OS spreads them over the cores and the worker yields the CPU
# (closed-loop acceptance 30 -> 60/s, bench/README.md). The ledger was
# measured split too (its relay in the worker) and gained nothing: it stays
# one process.
SPLIT_SERVICES: tuple[str, ...] = ("payments",)
WORKER_SUFFIX = "_worker"
# Worker process -> its service (same module, role, schema and secrets).
WORKER_PROCESSES: dict[str, str] = {f"{s}{WORKER_SUFFIX}": s for s in SPLIT_SERVICES}

# Infrastructure servers, each from a wheel unless an env var points at an existing one.
INFRA: tuple[str, ...] = ("postgres", "redis", "nats", "temporal", "s3")

# The edge.
EDGE: tuple[str, ...] = ("ratelimit", "envoy")

# Third-party simulators (simulators/<name>), HTTP servers that speak the real
# providers' APIs with fault injection. Each service learns a simulator's base
# URL from FINTECH_<NAME>_URL.
SIMULATORS: tuple[str, ...] = ("open_finance", "bureau", "receita", "govdocs", "psp")

PORT_OFFSETS: dict[str, int] = {
    "envoy": 443,
    "envoy_admin": 901,
    "postgres": 10,
    "redis": 11,
    "nats": 12,
    "nats_monitor": 13,
    "temporal": 14,
    "temporal_ui": 15,
    "s3": 16,
    "seaweed_master": 17,
    "seaweed_volume": 18,
    "seaweed_filer": 19,
    "ratelimit": 20,
    "identity": 31,
    "kyc": 32,
    "risk": 33,
    "loans": 34,
    "ledger": 35,
    "payments": 36,
    "payments_worker": 38,
    "sim_open_finance": 50,
    "sim_bureau": 51,
    "sim_psp": 52,
    "sim_receita": 53,
    "sim_govdocs": 54,
    # Extensions (devstack): ports the servers above would otherwise pick themselves,
    # pinned so that the run and test stacks never collide (SeaweedFS defaults its
    # gRPC ports to http port + 10000, which lands on the other profile's range).
    "seaweed_master_grpc": 41,
    "seaweed_volume_grpc": 42,
    "seaweed_filer_grpc": 43,
    "seaweed_s3_grpc": 44,
    "temporal_http": 45,
    "temporal_metrics": 46,
}

METRICS_OFFSET = 100  # a service's /metrics listens on its gRPC port + 100

DEFAULT_RUN_PORT_BASE = 17000
DEFAULT_TEST_PORT_BASE = 27000

DATABASE_NAME = "fintech"

# Database connections per service process (FINTECH_DB_POOL_SIZE). A mutating
# RPC holds a connection for its whole duration (its idempotency record shares
# the effect's transaction): the ledger serves many concurrent writers while
# its batching writer commits, and risk's Score waits on identity and the
# bureau inside that transaction. kyc's CreateSubmission starts its workflow
# inside that transaction while the KYC worker's activities (same process)
# write check results; payments' API (CreatePayment, webhooks) and its
# worker's activities and PSP call log each have a pool of their own.
# Postgres runs with max_connections=300, far above the sum.
# A worker process has its own pool (payments': at most 15 activities at
# once, their step records and the relay).
DB_POOL_SIZES: dict[str, int] = {
    "ledger": 48,
    "risk": 30,
    "kyc": 30,
    "payments": 30,
    "payments_worker": 30,
}
DEFAULT_DB_POOL_SIZE = 10


@dataclass(frozen=True)
class Ports:
    base: int

    def __getitem__(self, name: str) -> int:
        return self.base + PORT_OFFSETS[name]

    def metrics(self, service: str) -> int:
        return self[service] + METRICS_OFFSET


def simulator_url_env(simulator: str) -> str:
    """The environment variable that carries a simulator's base URL to the services."""
    assert simulator in SIMULATORS, simulator
    return f"FINTECH_{simulator.upper()}_URL"


def process_role(process: str) -> str:
    """FINTECH_PROCESS_ROLE of a service process (services.platform.settings)."""
    if process in WORKER_PROCESSES:
        return "worker"
    assert process in SERVICES, process
    return "api" if process in SPLIT_SERVICES else "all"


def db_role(service: str) -> str:
    return f"{service}_svc"
