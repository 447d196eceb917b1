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
# write check results; payments likewise (CreatePayment starts the payout
# workflow in it; activities, webhooks and the PSP call log share the pool).
# Postgres runs with max_connections=300, far above the sum.
DB_POOL_SIZES: dict[str, int] = {"ledger": 48, "risk": 30, "kyc": 30, "payments": 30}
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


def db_role(service: str) -> str:
    return f"{service}_svc"
