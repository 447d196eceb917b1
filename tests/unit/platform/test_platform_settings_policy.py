"""Settings from the environment and method policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.platform.policy import (
    DEFAULT_POLICY,
    INFRASTRUCTURE_POLICY,
    MethodPolicy,
    policy_for,
    split_full_method,
    static_policies,
)
from services.platform.settings import Settings, SettingsError
from tests.unit.platform.platform_unit_support import SERVICE


def test_settings_defaults() -> None:
    s = Settings.from_env("identity", {"FINTECH_GRPC_PORT": "17031"})
    assert (s.grpc_host, s.grpc_port, s.metrics_port) == ("127.0.0.1", 17031, 17131)
    assert s.db_schema == "identity" and s.error_domain == "identity.fintech.local"
    assert s.jwt_issuer == "https://identity.fintech.local" and s.jwt_audience == "fintech-api"
    assert s.database_url is None and s.secrets_dir is None and s.log_level == "INFO"
    assert s.process_role == "all" and s.serves_api and s.runs_work


def test_settings_read_every_variable() -> None:
    env = {
        "FINTECH_GRPC_HOST": "0.0.0.0",
        "FINTECH_GRPC_PORT": "27032",
        "FINTECH_METRICS_PORT": "0",
        "FINTECH_DATABASE_URL": "postgresql://kyc_svc:pw@127.0.0.1:27010/fintech",
        "FINTECH_DB_SCHEMA": "kyc_test",
        "FINTECH_REDIS_URL": "redis://127.0.0.1:27011/0",
        "FINTECH_NATS_URL": "nats://127.0.0.1:27012",
        "FINTECH_TEMPORAL_ADDRESS": "127.0.0.1:27014",
        "FINTECH_S3_ENDPOINT": "http://127.0.0.1:27016",
        "FINTECH_JWT_ISSUER": "iss",
        "FINTECH_JWT_AUDIENCE": "aud",
        "FINTECH_SECRETS_DIR": "/tmp/secrets",
        "FINTECH_LOG_LEVEL": "debug",
        "FINTECH_PROCESS_ROLE": "worker",
    }
    s = Settings.from_env("kyc", env)
    assert s.grpc_address == "0.0.0.0:27032" and s.metrics_port == 0
    assert s.db_schema == "kyc_test" and s.redis_url and s.nats_url and s.temporal_address
    assert s.secret_path("jwks.json") == Path("/tmp/secrets/jwks.json")
    assert s.log_level == "DEBUG" and (s.jwt_issuer, s.jwt_audience) == ("iss", "aud")
    assert s.process_role == "worker" and not s.serves_api and s.runs_work


@pytest.mark.parametrize(
    ("service", "env"),
    [
        ("kyc", {}),  # the port is always given
        ("kyc", {"FINTECH_GRPC_PORT": "http"}),
        ("kyc", {"FINTECH_GRPC_PORT": "70000"}),
        ("kyc", {"FINTECH_LOG_LEVEL": "LOUD"}),
        ("kyc", {"FINTECH_DB_SCHEMA": "kyc; drop"}),
        ("kyc", {"FINTECH_GRPC_PORT": "1", "FINTECH_PROCESS_ROLE": "both"}),
        ("Bad-Name", {"FINTECH_GRPC_PORT": "1"}),
    ],
)
def test_settings_reject_bad_values(service: str, env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(service, env)


def test_policy_lookup_defaults_and_static_table() -> None:
    assert split_full_method("/a.B/C") == ("a.B", "C")
    with pytest.raises(ValueError):
        split_full_method("a.B/C")
    assert policy_for("/grpc.health.v1.Health/Check") == INFRASTRUCTURE_POLICY
    assert policy_for("/no.such.Service/Method") == DEFAULT_POLICY
    # A method in the pool without the option: authenticated, not mutating.
    assert policy_for(f"/{SERVICE}/Echo") == DEFAULT_POLICY
    lookup = static_policies({"/a.B/C": MethodPolicy(mutating=True)})
    assert lookup("/a.B/C").mutating and not lookup("/a.B/D").mutating
    assert lookup("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").public


def test_policy_for_reads_the_contract_option() -> None:
    # Importing the generated module puts its descriptors (and options) in the pool.
    from fintech.identity.v1 import identity_pb2  # noqa: F401

    create = policy_for("/fintech.identity.v1.IdentityService/CreateUser")
    assert create.mutating and create.public and not create.internal
    update = policy_for("/fintech.identity.v1.IdentityService/UpdateUser")
    assert update.mutating and not update.public
    jwks_policy = policy_for("/fintech.identity.v1.IdentityService/GetJwks")
    assert jwks_policy.internal and not jwks_policy.mutating
    assert policy_for("/fintech.identity.v1.IdentityService/GetUser") == DEFAULT_POLICY


def test_db_pool_size_is_bounded() -> None:
    base = {"FINTECH_GRPC_PORT": "1"}
    assert Settings.from_env("kyc", base).db_pool_size == 10
    assert Settings.from_env("kyc", {**base, "FINTECH_DB_POOL_SIZE": "48"}).db_pool_size == 48
    for bad in ("0", "51", "many"):
        with pytest.raises(SettingsError):
            Settings.from_env("kyc", {**base, "FINTECH_DB_POOL_SIZE": bad})


def test_required_env_names_what_is_missing() -> None:
    from services.platform.settings import SettingsError, required_env

    assert required_env("FINTECH_X_URL", {"FINTECH_X_URL": " http://x "}) == "http://x"
    for env in ({}, {"FINTECH_X_URL": "  "}):
        with pytest.raises(SettingsError, match="FINTECH_X_URL"):
            required_env("FINTECH_X_URL", env)
