"""compose.yaml stays in step with the local stack (devstack): names, env, ports, health."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from devstack import stack as devstack_stack
from devstack.topology import EDGE, INFRA, SERVICES, Ports

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "compose.yaml").read_text())
CONTAINERS: dict[str, Any] = COMPOSE["services"]
PORTS = Ports(base=17000)  # `make run`'s base: compose publishes the same host ports
PYTHON_CONTAINERS = (*SERVICES, "ratelimit")
# Published port names per container; the metrics ports stay internal.
PORT_NAMES = {
    "postgres": ("postgres",),
    "redis": ("redis",),
    "nats": ("nats", "nats_monitor"),
    "temporal": ("temporal", "temporal_ui"),
    "s3": ("s3",),
    "envoy": ("envoy", "envoy_admin"),
    **{name: (name,) for name in PYTHON_CONTAINERS},
}


def dev_env_keys(name: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The FINTECH_* keys the dev stack gives `name` (its own env builders, a stub infra)."""
    for key in [k for k in os.environ if k.startswith("FINTECH_")]:
        monkeypatch.delenv(key)
    infra: Any = SimpleNamespace(
        config=SimpleNamespace(root=Path("/repo"), ports=PORTS),
        secrets=SimpleNamespace(dir=Path("/secrets"), db_password=lambda service: "pw"),
        service_database_url=lambda role, password: f"postgresql://{role}:{password}@db/fintech",
        redis_url="redis://r",
        nats_url="nats://n",
        temporal_address="t:1",
        s3_endpoint="http://s",
    )
    if name == "ratelimit":
        env = devstack_stack.ratelimit_env(infra, Path("/limits.yaml"))
    else:
        env = devstack_stack.service_env(infra, name)
    return {k for k in env if k.startswith("FINTECH_")}


def published(container: str) -> list[tuple[int, int]]:
    pairs = []
    for spec in CONTAINERS[container].get("ports", []):
        host, _, inner = str(spec).rpartition(":")
        pairs.append((int(host), int(inner)))
    return pairs


def test_the_same_parts_as_the_topology() -> None:
    assert set(CONTAINERS) == {*SERVICES, *INFRA, *EDGE}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_every_container_has_a_healthcheck(name: str) -> None:
    check = CONTAINERS[name].get("healthcheck")
    assert check and check.get("test"), name
    assert check["test"][0] in ("CMD", "CMD-SHELL")


@pytest.mark.parametrize("name", SERVICES)
def test_services_wait_for_healthy_infrastructure(name: str) -> None:
    depends = CONTAINERS[name]["depends_on"]
    for needed in ("postgres", "nats", "redis"):
        assert depends[needed]["condition"] == "service_healthy", (name, needed)


def test_ratelimit_waits_for_redis_and_envoy_for_everything() -> None:
    assert CONTAINERS["ratelimit"]["depends_on"]["redis"]["condition"] == "service_healthy"
    envoy_deps = CONTAINERS["envoy"]["depends_on"]
    assert set(envoy_deps) == set(PYTHON_CONTAINERS)
    assert all(d["condition"] == "service_healthy" for d in envoy_deps.values())


@pytest.mark.parametrize("name", PYTHON_CONTAINERS)
def test_python_containers_run_their_module_from_the_one_image(name: str) -> None:
    container = CONTAINERS[name]
    assert container["command"] == ["python", "-m", f"services.{name}"]
    assert container["build"]["dockerfile"] == "Dockerfile"
    assert (Path(__file__).parents[2] / "Dockerfile").exists()


@pytest.mark.parametrize("name", PYTHON_CONTAINERS)
def test_env_keys_match_the_dev_stack(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = CONTAINERS[name]["environment"]
    compose_keys = {k for k in env if k.startswith("FINTECH_")}
    assert compose_keys == dev_env_keys(name, monkeypatch)
    # Wiring that only compose needs is namespaced apart from the service settings.
    assert all(k.startswith(("FINTECH_", "COMPOSE_")) for k in env)
    assert env["FINTECH_SERVICE"] == name
    assert env["FINTECH_GRPC_HOST"] == "0.0.0.0"
    assert int(env["FINTECH_GRPC_PORT"]) == PORTS[name]
    assert int(env["FINTECH_METRICS_PORT"]) == PORTS.metrics(name)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_uses_its_own_role_and_schema(name: str) -> None:
    env = CONTAINERS[name]["environment"]
    assert env["FINTECH_DATABASE_URL"].startswith(f"postgresql://{name}_svc:")
    assert env["FINTECH_DATABASE_URL"].endswith("/fintech")
    assert env["FINTECH_DB_SCHEMA"] == name
    for other in SERVICES:
        assert env[f"FINTECH_TARGET_{other.upper()}"] == f"{other}:{PORTS[other]}"


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_published_ports_follow_the_topology_offsets(name: str) -> None:
    allowed = {PORTS[p] for p in PORT_NAMES[name]}
    host_ports = [host for host, _ in published(name)]
    assert host_ports, f"{name} publishes no port"
    assert set(host_ports) <= allowed, name
    assert len(host_ports) == len(set(host_ports))


@pytest.mark.parametrize("name", PYTHON_CONTAINERS)
def test_python_containers_listen_where_they_are_published(name: str) -> None:
    assert published(name) == [(PORTS[name], PORTS[name])]


def test_each_container_publishes_its_main_port_once() -> None:
    """Helper ports (SeaweedFS's master/volume/filer, Temporal's extras) stay
    inside; the port named after each part is its interface and is published."""
    host_ports = [host for name in CONTAINERS for host, _ in published(name)]
    assert len(host_ports) == len(set(host_ports))
    for name in CONTAINERS:
        assert PORTS[name] in {host for host, _ in published(name)}, name
