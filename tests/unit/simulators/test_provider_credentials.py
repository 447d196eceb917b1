"""OAuth2 client credentials: generated per stack, shared by service and simulator."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from devstack.devsecrets import OAUTH_PROVIDERS, ensure_secrets, provider_client
from services.platform.settings import Settings, SettingsError
from simulators.common.credentials import client_credentials


def test_each_stack_gets_its_own_private_client_pairs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    ensure_secrets(first)
    ensure_secrets(second)
    path = first / "provider_clients.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for provider in OAUTH_PROVIDERS:
        ident, secret = provider_client(first, provider)
        assert ident == OAUTH_PROVIDERS[provider] and len(secret) >= 32
        assert provider_client(second, provider)[1] != secret  # random, per stack
    before = path.read_text()
    ensure_secrets(first)  # a restart keeps the pairs the running services know
    assert path.read_text() == before


def test_service_and_simulator_read_the_same_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_secrets(tmp_path)
    settings = Settings.from_env(
        "payments", {"FINTECH_GRPC_PORT": "1", "FINTECH_SECRETS_DIR": str(tmp_path)}
    )
    monkeypatch.setenv("FINTECH_PROVIDER_CLIENTS_FILE", str(tmp_path / "provider_clients.json"))
    assert settings.provider_client("psp") == client_credentials("psp", "x", "y")
    with pytest.raises(SettingsError, match="no client credentials for bank"):
        settings.provider_client("bank")


def test_a_lone_simulator_uses_its_environment_or_its_fake_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FINTECH_PROVIDER_CLIENTS_FILE", raising=False)
    monkeypatch.delenv("FINTECH_PSP_CLIENT_ID", raising=False)
    monkeypatch.delenv("FINTECH_PSP_CLIENT_SECRET", raising=False)
    assert client_credentials("psp", "fake-id", "fake-secret") == ("fake-id", "fake-secret")
    monkeypatch.setenv("FINTECH_PSP_CLIENT_SECRET", "s3cret")
    assert client_credentials("psp", "fake-id", "fake-secret") == ("fake-id", "s3cret")


def test_the_file_lists_only_known_providers(tmp_path: Path) -> None:
    ensure_secrets(tmp_path)
    assert set(json.loads((tmp_path / "provider_clients.json").read_text())) == set(OAUTH_PROVIDERS)
