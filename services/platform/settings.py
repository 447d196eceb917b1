"""Service settings read from the environment (names pinned in docs/CONVENTIONS.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The gRPC port is always given (FINTECH_GRPC_PORT): the dev stack and compose
# own the port plan (devstack/topology.py), so a service never guesses one.
METRICS_PORT_OFFSET = 100
# Connections per service process. A mutating RPC holds one for its whole
# duration (the idempotency record shares the effect's transaction), so a
# service expecting many concurrent writers (the ledger) gets a bigger pool.
DEFAULT_DB_POOL_SIZE = 10
MAX_DB_POOL_SIZE = 50
DEFAULT_JWT_ISSUER = "https://identity.fintech.local"
DEFAULT_JWT_AUDIENCE = "fintech-api"
LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    service: str
    grpc_host: str
    grpc_port: int
    metrics_port: int
    database_url: str | None
    db_schema: str
    db_pool_size: int
    redis_url: str | None
    nats_url: str | None
    temporal_address: str | None
    temporal_namespace: str
    s3_endpoint: str | None
    jwt_issuer: str
    jwt_audience: str
    secrets_dir: Path | None
    log_level: str
    # "" (no exporter) or "console"; traces are still propagated without one.
    otel_exporter: str
    shutdown_grace_seconds: float

    @property
    def error_domain(self) -> str:
        return f"{self.service}.fintech.local"

    @property
    def grpc_address(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    def secret_path(self, name: str) -> Path:
        if self.secrets_dir is None:
            raise SettingsError("FINTECH_SECRETS_DIR is not set")
        return self.secrets_dir / name

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        if not service.isidentifier() or service != service.lower():
            raise SettingsError(f"service name must be a lowercase identifier: {service!r}")

        grpc_port = _port(env, "FINTECH_GRPC_PORT", None)
        metrics_port = _port(env, "FINTECH_METRICS_PORT", grpc_port + METRICS_PORT_OFFSET)
        log_level = env.get("FINTECH_LOG_LEVEL", "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"FINTECH_LOG_LEVEL must be one of {sorted(LOG_LEVELS)}")
        exporter = env.get("FINTECH_OTEL_EXPORTER", "").lower()
        if exporter not in ("", "console"):
            raise SettingsError("FINTECH_OTEL_EXPORTER must be empty or 'console'")
        pool_size = _bounded_int(
            env, "FINTECH_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE, MAX_DB_POOL_SIZE
        )
        schema = env.get("FINTECH_DB_SCHEMA", service)
        if not schema.isidentifier():
            raise SettingsError(f"FINTECH_DB_SCHEMA is not an identifier: {schema!r}")
        secrets = env.get("FINTECH_SECRETS_DIR")
        grace = float(env.get("FINTECH_SHUTDOWN_GRACE_SECONDS", "10"))
        if not 0 < grace <= 60:
            raise SettingsError("FINTECH_SHUTDOWN_GRACE_SECONDS must be in (0, 60]")
        return cls(
            service=service,
            grpc_host=env.get("FINTECH_GRPC_HOST", "127.0.0.1"),
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            database_url=env.get("FINTECH_DATABASE_URL") or None,
            db_schema=schema,
            db_pool_size=pool_size,
            redis_url=env.get("FINTECH_REDIS_URL") or None,
            nats_url=env.get("FINTECH_NATS_URL") or None,
            temporal_address=env.get("FINTECH_TEMPORAL_ADDRESS") or None,
            temporal_namespace=env.get("FINTECH_TEMPORAL_NAMESPACE", "default"),
            s3_endpoint=env.get("FINTECH_S3_ENDPOINT") or None,
            jwt_issuer=env.get("FINTECH_JWT_ISSUER", DEFAULT_JWT_ISSUER),
            jwt_audience=env.get("FINTECH_JWT_AUDIENCE", DEFAULT_JWT_AUDIENCE),
            secrets_dir=Path(secrets) if secrets else None,
            log_level=log_level,
            otel_exporter=exporter,
            shutdown_grace_seconds=grace,
        )


def _bounded_int(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if not 1 <= value <= maximum:
        raise SettingsError(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def _port(env: Mapping[str, str], name: str, default: int | None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise SettingsError(f"{name} is required")
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name} out of range: {value}")
    return value


def required_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """A service-specific variable (a provider's URL, another service's address)
    that has no safe default: missing or blank stops start-up with its name."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required")
    return value
