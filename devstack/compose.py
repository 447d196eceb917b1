"""`python -m devstack compose-config`: the files compose.yaml mounts, in `.state/compose/`.

compose.yaml runs the stack of `make run` as containers; what it cannot build
from the image alone is rendered here, from the same generators as the local
stack, so both edges have the same routes, JWT rules and filters:

- `secrets/`: the dev secrets (devstack/devsecrets.py). Every Python service
  mounts the directory; Envoy mounts only its certificate, key and the JWKS.
- `envoy.yaml`: envoy/envoy.template.yaml rendered for containers: upstreams by
  compose service name (STRICT_DNS clusters), file paths as mounted inside the
  Envoy container (ENVOY_FILES), listener and admin on all interfaces.
- `ratelimit.yaml`: the `run` profile's limits.

Re-running keeps the secrets (tokens and encrypted PII stay valid) and
re-renders the two configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from devstack.devsecrets import ensure_secrets
from devstack.edge import (
    DESCRIPTOR_SET,
    REPO_ROOT,
    EdgeInputs,
    render_envoy_config,
    render_ratelimit_config,
)
from devstack.stack import JWT_AUDIENCE, JWT_ISSUER
from devstack.topology import DEFAULT_RUN_PORT_BASE, SERVICES, Ports

COMPOSE_DIR = REPO_ROOT / ".state" / "compose"
# compose publishes the `run` stack's ports, and runs its rate limits.
PROFILE = "run"
PORTS = Ports(DEFAULT_RUN_PORT_BASE)

ENVOY_ETC = PurePosixPath("/etc/envoy")
ENVOY_CONFIG = ENVOY_ETC / "envoy.yaml"
ENVOY_DESCRIPTOR_SET = ENVOY_ETC / "api.binpb"
# Envoy's own secrets, mounted one by one into ENVOY_ETC: never the signing key
# or the other services' credentials.
ENVOY_SECRET_FILES = ("server.pem", "server_key.pem", "jwks.json")
# Container logs are stdout; nothing to mount, nothing that fills a disk inside.
ENVOY_ACCESS_LOG = PurePosixPath("/dev/stdout")
# Inside a container 127.0.0.1 is the container itself: the published ports
# reach only what listens on the container's interfaces.
CONTAINER_LISTEN_ADDRESS = "0.0.0.0"

RATELIMIT_CONFIG = PurePosixPath("/etc/fintech/ratelimit.yaml")

# Upstream -> compose service name: each upstream is the container named after it.
UPSTREAM_HOSTS = {name: name for name in (*SERVICES, "ratelimit")}


@dataclass(frozen=True)
class ComposeFiles:
    root: Path

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def envoy_config(self) -> Path:
        return self.root / "envoy.yaml"

    @property
    def ratelimit_config(self) -> Path:
        return self.root / "ratelimit.yaml"


def container_edge_inputs(descriptor_set: Path = DESCRIPTOR_SET) -> EdgeInputs:
    return EdgeInputs(
        profile=PROFILE,
        ports=PORTS,
        # Path, not PurePosixPath: EdgeInputs' type; only ever formatted into the config.
        secrets_dir=Path(ENVOY_ETC),
        access_log=Path(ENVOY_ACCESS_LOG),
        descriptor_set=descriptor_set,
        envoy_descriptor_set=Path(ENVOY_DESCRIPTOR_SET),
        jwt_issuer=JWT_ISSUER,
        jwt_audience=JWT_AUDIENCE,
        upstream_hosts=UPSTREAM_HOSTS,
    )


def render_container_envoy_config(descriptor_set: Path = DESCRIPTOR_SET) -> str:
    config: dict[str, Any] = yaml.safe_load(
        render_envoy_config(container_edge_inputs(descriptor_set))
    )
    # The template binds to 127.0.0.1 (right for the local stack, where nothing
    # else on the machine should reach the edge); rebinding here keeps it unchanged.
    config["admin"]["address"]["socket_address"]["address"] = CONTAINER_LISTEN_ADDRESS
    for listener in config["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["address"] = CONTAINER_LISTEN_ADDRESS
    return yaml.safe_dump(config, sort_keys=False, width=120)


def write_compose_config(root: Path = COMPOSE_DIR) -> ComposeFiles:
    files = ComposeFiles(root)
    root.mkdir(parents=True, exist_ok=True)
    ensure_secrets(files.secrets_dir)
    files.envoy_config.write_text(render_container_envoy_config())
    files.ratelimit_config.write_text(render_ratelimit_config(PROFILE))
    return files
