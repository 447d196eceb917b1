"""compose.yaml stays in step with the local stack (devstack): names, env, ports, health,
and the files `python -m devstack compose-config` writes for it (no Docker engine here:
compose is only ever read, and Envoy's config checked by `envoy --mode validate`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from devstack import stack as devstack_stack
from devstack.compose import COMPOSE_DIR, ENVOY_ACCESS_LOG, ComposeFiles, write_compose_config
from devstack.edge import EdgeInputs, render_envoy_config
from devstack.topology import (
    EDGE,
    INFRA,
    SERVICES,
    SIMULATORS,
    WORKER_PROCESSES,
    Ports,
    process_role,
)

REPO = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
CONTAINERS: dict[str, Any] = COMPOSE["services"]
PORTS = Ports(base=17000)  # `make run`'s base: compose publishes the same host ports
# The edge's upstreams, and the split services' worker processes (no upstream).
UPSTREAM_CONTAINERS = (*SERVICES, "ratelimit")
SERVICE_PROCESSES = (*SERVICES, *WORKER_PROCESSES)
PYTHON_CONTAINERS = (*UPSTREAM_CONTAINERS, *WORKER_PROCESSES)
# Published port names per container; the metrics ports stay internal.
PORT_NAMES = {
    "postgres": ("postgres",),
    "redis": ("redis",),
    "nats": ("nats", "nats_monitor"),
    "temporal": ("temporal", "temporal_ui"),
    "s3": ("s3",),
    "envoy": ("envoy", "envoy_admin"),
    **{name: (name,) for name in PYTHON_CONTAINERS},
    **{f"sim_{name}": (f"sim_{name}",) for name in SIMULATORS},
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
        # [host_ip:]host_port:container_port
        *_, host, inner = str(spec).split(":")
        pairs.append((int(host), int(inner)))
    return pairs


def test_the_same_parts_as_the_topology() -> None:
    assert set(CONTAINERS) == {
        *SERVICE_PROCESSES,
        *INFRA,
        *EDGE,
        *(f"sim_{s}" for s in SIMULATORS),
    }


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_every_container_has_a_healthcheck(name: str) -> None:
    check = CONTAINERS[name].get("healthcheck")
    assert check and check.get("test"), name
    assert check["test"][0] in ("CMD", "CMD-SHELL")


@pytest.mark.parametrize("name", SERVICE_PROCESSES)
def test_services_wait_for_healthy_infrastructure(name: str) -> None:
    depends = CONTAINERS[name]["depends_on"]
    for needed in ("postgres", "nats", "redis"):
        assert depends[needed]["condition"] == "service_healthy", (name, needed)


def test_ratelimit_waits_for_redis_and_envoy_for_everything() -> None:
    assert CONTAINERS["ratelimit"]["depends_on"]["redis"]["condition"] == "service_healthy"
    envoy_deps = CONTAINERS["envoy"]["depends_on"]
    assert set(envoy_deps) == set(UPSTREAM_CONTAINERS)
    assert all(d["condition"] == "service_healthy" for d in envoy_deps.values())


@pytest.mark.parametrize("name", PYTHON_CONTAINERS)
def test_python_containers_run_their_module_from_the_one_image(name: str) -> None:
    container = CONTAINERS[name]
    module = WORKER_PROCESSES.get(name, name)
    assert container["command"] == ["python", "-m", f"services.{module}"]
    assert container["build"]["dockerfile"] == "Dockerfile"
    assert (Path(__file__).parents[2] / "Dockerfile").exists()


@pytest.mark.parametrize("name", PYTHON_CONTAINERS)
def test_env_keys_match_the_dev_stack(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = CONTAINERS[name]["environment"]
    compose_keys = {k for k in env if k.startswith("FINTECH_")}
    assert compose_keys == dev_env_keys(name, monkeypatch)
    # Wiring that only compose needs is namespaced apart from the service settings.
    assert all(k.startswith(("FINTECH_", "COMPOSE_")) for k in env)
    assert env["FINTECH_SERVICE"] == WORKER_PROCESSES.get(name, name)
    assert env["FINTECH_GRPC_HOST"] == "0.0.0.0"
    assert int(env["FINTECH_GRPC_PORT"]) == PORTS[name]
    assert int(env["FINTECH_METRICS_PORT"]) == PORTS.metrics(name)


@pytest.mark.parametrize("name", SERVICE_PROCESSES)
def test_process_roles_match_the_dev_stack(name: str) -> None:
    """A split service is an api and a worker container; the rest run both in one."""
    role = CONTAINERS[name]["environment"]["FINTECH_PROCESS_ROLE"]
    assert role == process_role(name)
    if name in WORKER_PROCESSES:
        # The worker waits for its API container, which has applied the migrations.
        depends = CONTAINERS[name]["depends_on"]
        assert depends[WORKER_PROCESSES[name]]["condition"] == "service_healthy"
        assert CONTAINERS[name]["environment"]["COMPOSE_MIGRATE_ADMIN_URL"] == ""


@pytest.mark.parametrize("name", SERVICE_PROCESSES)
def test_each_service_uses_its_own_role_and_schema(name: str) -> None:
    env = CONTAINERS[name]["environment"]
    service = WORKER_PROCESSES.get(name, name)
    assert env["FINTECH_DATABASE_URL"].startswith(f"postgresql://{service}_svc:")
    assert env["FINTECH_DATABASE_URL"].endswith("/fintech")
    assert env["FINTECH_DB_SCHEMA"] == service
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


# --- The files of `python -m devstack compose-config` (devstack/compose.py) ---

ENVOY = str(Path(sys.executable).parent / "envoy")
FILE_KEYS = ("filename", "proto_descriptor")


def binds(container: str) -> dict[str, dict[str, Any]]:
    """Container path -> the long-form bind mounting it (the form compose.yaml uses for
    generated files: Docker then refuses a missing source instead of creating a directory)."""
    mounts = {}
    for volume in CONTAINERS[container].get("volumes", []):
        if isinstance(volume, str):  # short form: fine for named volumes only
            assert not volume.startswith((".", "/")), f"{container}: {volume} is a short-form bind"
            continue
        if volume["type"] == "bind":
            mounts[volume["target"]] = volume
    return mounts


def host_path(source: str, files: ComposeFiles) -> Path:
    """A bind source on this machine, with .state/compose/ redirected to the test's copy."""
    path = Path(os.path.normpath(REPO / source))
    if path.is_relative_to(COMPOSE_DIR):
        return files.root / path.relative_to(COMPOSE_DIR)
    return path


def walk(node: Any, parent: Any = None) -> Iterator[tuple[Any, Any, Any]]:
    """(container, key, value) for every value of a parsed config, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield node, key, value
        if isinstance(value, dict | list):
            yield from walk(value, node)


def is_file_ref(container: Any, key: Any) -> bool:
    if key in FILE_KEYS:
        return True
    # The file access logger's `path` (a route's `path` is a URL path, not a file).
    return (
        key == "path"
        and isinstance(container, dict)
        and str(container.get("@type", "")).endswith(".FileAccessLog")
    )


def file_refs(config: Any) -> set[str]:
    return {value for c, key, value in walk(config) if is_file_ref(c, key)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ComposeFiles:
    return write_compose_config(tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def envoy_config(files: ComposeFiles) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(files.envoy_config.read_text())
    return data


def test_compose_config_writes_every_generated_file_compose_mounts(files: ComposeFiles) -> None:
    sources = {mount["source"] for name in CONTAINERS for mount in binds(name).values()}
    generated = [s for s in sources if s.startswith("./.state/compose/")]
    assert generated, "compose.yaml mounts nothing from .state/compose/"
    for source in sorted(sources):
        path = host_path(source, files)
        assert path.exists(), f"{source} is mounted but not written ({path})"


def test_every_file_the_envoy_config_references_is_mounted_into_envoy(
    envoy_config: dict[str, Any],
) -> None:
    mounts = binds("envoy")
    refs = file_refs(envoy_config) - {str(ENVOY_ACCESS_LOG)}  # the container's log stream
    assert len(refs) >= 4, refs  # certificate, key, JWKS, descriptor set
    for ref in sorted(refs):
        assert ref in mounts, f"{ref} is not mounted into the envoy container"
        assert mounts[ref]["read_only"] is True, ref
    # Only what it reads: the rest of the secrets (signing key, DB passwords) stay out.
    assert set(mounts) == refs | {"/etc/envoy/envoy.yaml"}


def test_envoy_runs_the_mounted_rendered_config() -> None:
    command = CONTAINERS["envoy"]["command"]
    config_path = command[command.index("-c") + 1]
    assert config_path == "/etc/envoy/envoy.yaml"
    assert binds("envoy")[config_path]["source"] == "./.state/compose/envoy.yaml"


def test_ratelimit_reads_the_rendered_limits(files: ComposeFiles) -> None:
    target = CONTAINERS["ratelimit"]["environment"]["FINTECH_RATELIMIT_CONFIG"]
    mount = binds("ratelimit")[target]
    assert host_path(mount["source"], files) == files.ratelimit_config
    limits = yaml.safe_load(files.ratelimit_config.read_text())
    assert limits["domain"] == "fintech-edge"


@pytest.mark.parametrize("name", SERVICE_PROCESSES)
def test_services_read_the_generated_secrets(name: str, files: ComposeFiles) -> None:
    target = CONTAINERS[name]["environment"]["FINTECH_SECRETS_DIR"]
    mount = binds(name)[target]
    assert host_path(mount["source"], files) == files.secrets_dir
    assert mount["read_only"] is True


def test_the_container_envoy_config_validates(
    files: ComposeFiles, envoy_config: dict[str, Any], tmp_path: Path
) -> None:
    """Validated as the container sees it: each mounted path swapped for its host
    source, so a wrong mount fails here. The clusters name compose services, which
    do not resolve on this machine: validation mode does not resolve STRICT_DNS hosts."""
    mounts = binds("envoy")
    seen = set()
    config = yaml.safe_load(files.envoy_config.read_text())
    for container, key, value in list(walk(config)):
        if is_file_ref(container, key) and value in mounts:
            container[key] = str(host_path(mounts[value]["source"], files))
            seen.add(value)
    assert len(seen) >= 4, seen
    as_mounted = tmp_path / "envoy.yaml"
    as_mounted.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(as_mounted), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK" in done.stdout + done.stderr


def test_every_cluster_is_a_compose_service_on_its_grpc_port(envoy_config: dict[str, Any]) -> None:
    targets = set()
    for cluster in envoy_config["static_resources"]["clusters"]:
        # Docker's DNS names each container by its service; STATIC takes only IPs.
        assert cluster["type"] == "STRICT_DNS", cluster["name"]
        for group in cluster["load_assignment"]["endpoints"]:
            for lb in group["lb_endpoints"]:
                address = lb["endpoint"]["address"]["socket_address"]
                host, port = address["address"], address["port_value"]
                assert host in CONTAINERS, f"{cluster['name']}: no compose service {host}"
                assert port == int(CONTAINERS[host]["environment"]["FINTECH_GRPC_PORT"])
                targets.add(host)
    assert targets == set(UPSTREAM_CONTAINERS)


def test_envoy_listens_on_its_published_ports_on_all_interfaces(
    envoy_config: dict[str, Any],
) -> None:
    inner_ports = {inner for _, inner in published("envoy")}
    admin = envoy_config["admin"]["address"]["socket_address"]
    (listener,) = envoy_config["static_resources"]["listeners"]
    https = listener["address"]["socket_address"]
    assert {admin["port_value"], https["port_value"]} == inner_ports
    assert {PORTS["envoy"], PORTS["envoy_admin"]} == inner_ports
    # 127.0.0.1 would be the container's own loopback, out of reach of published ports.
    assert admin["address"] == https["address"] == "0.0.0.0"


def _without_addresses_and_paths(config: dict[str, Any]) -> dict[str, Any]:
    for container, key, _ in list(walk(config)):
        if is_file_ref(container, key):
            container[key] = "<file>"
        elif key == "socket_address":
            container[key] = {**container[key], "address": "<address>"}
    for cluster in config["static_resources"]["clusters"]:
        cluster["type"] = "<by address>"  # STATIC for IPs, STRICT_DNS for names
    return config


def test_same_edge_as_the_local_stack_but_addresses_and_paths(
    envoy_config: dict[str, Any], tmp_path: Path
) -> None:
    local = yaml.safe_load(
        render_envoy_config(
            EdgeInputs(
                profile="run",
                ports=PORTS,
                secrets_dir=tmp_path / "secrets",
                access_log=tmp_path / "access.log",
                jwt_issuer=devstack_stack.JWT_ISSUER,
                jwt_audience=devstack_stack.JWT_AUDIENCE,
            )
        )
    )
    container = yaml.safe_load(yaml.safe_dump(envoy_config))
    # The normalisation must not hide what it is not about: the file references
    # differ before it, the routes, JWT rules and filters do not.
    assert file_refs(local).isdisjoint(file_refs(container))
    local_hcm, container_hcm = _hcm(local), _hcm(container)
    assert local_hcm["route_config"] == container_hcm["route_config"]
    assert [f["name"] for f in local_hcm["http_filters"]] == [
        f["name"] for f in container_hcm["http_filters"]
    ]
    assert _jwt_rules(local) == _jwt_rules(container)
    assert _without_addresses_and_paths(local) == _without_addresses_and_paths(container)


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    (listener,) = config["static_resources"]["listeners"]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def _jwt_rules(config: dict[str, Any]) -> list[Any]:
    (jwt,) = [
        f for f in _hcm(config)["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn"
    ]
    rules: list[Any] = jwt["typed_config"]["rules"]
    assert len(rules) > 1  # public RPCs exempt, then the catch-all requirement
    return rules
