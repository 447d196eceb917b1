"""The whole stack comes up and is reachable the way the README says."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.contract import load_rpcs
from devstack.edge import DESCRIPTOR_SET
from devstack.stack import Stack
from devstack.topology import SERVICES, WORKER_PROCESSES
from services.platform.app import WORKER_NICENESS
from tests.support.processes import port_of, service_pid
from tests.support.tokens import mint_token

pytestmark = pytest.mark.integration


def _tls(stack: Stack) -> ssl.SSLContext:
    """Trust exactly the stack's generated dev CA."""
    return ssl.create_default_context(cafile=str(stack.ca_file))


GRPCURL = str(Path(sys.executable).parent / "grpcurl")
REPO = Path(__file__).resolve().parents[2]


def _services_of(owner: str) -> dict[str, set[str]]:
    """Full service name -> method names, for one owner, from the descriptor set."""
    out: dict[str, set[str]] = {}
    for rpc in load_rpcs(DESCRIPTOR_SET):
        if rpc.owner == owner:
            out.setdefault(rpc.service, set()).add(rpc.method)
    return out


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_serving(stack: Stack, service: str) -> None:
    with grpc.insecure_channel(stack.grpc_targets[service]) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def _grpcurl_list(target: str, *service: str) -> list[str]:
    """What `grpcurl list` shows through reflection: services, or one's methods."""
    return subprocess.run(
        [GRPCURL, "-plaintext", target, "list", *service],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()


@pytest.mark.parametrize("service", SERVICES)
def test_reflection_lists_the_full_v1_contract(stack: Stack, service: str) -> None:
    target = stack.grpc_targets[service]
    listed = _grpcurl_list(target)
    expected = _services_of(service)
    assert expected, f"gen/api.binpb has no fintech.{service}.v1 service"
    for full_name, methods in expected.items():
        assert full_name in listed
        described = _grpcurl_list(target, full_name)
        assert {f"{full_name}.{m}" for m in methods} <= set(described)


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


@pytest.mark.parametrize("worker", sorted(WORKER_PROCESSES))
def test_split_services_run_their_work_in_a_lower_priority_worker(
    stack: Stack, worker: str
) -> None:
    """A split service's worker serves health and reflection only (its API is the
    service's own process) and yields the CPU to the API processes."""
    service = WORKER_PROCESSES[worker]
    target = f"127.0.0.1:{stack.infra.config.ports[worker]}"
    with grpc.insecure_channel(target) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    listed = _grpcurl_list(target)
    assert "grpc.health.v1.Health" in listed
    assert not set(_services_of(service)) & set(listed)
    worker_pid = service_pid(service, stack.infra.config.ports[worker])
    api_pid = service_pid(service, port_of(stack.grpc_targets[service]))
    # os.nice is relative to what the stack was started with (a CI runner may be niced).
    assert _niceness(worker_pid) == min(19, _niceness(api_pid) + WORKER_NICENESS)


def test_healthz_over_https_with_the_dev_ca(stack: Stack) -> None:
    with httpx.Client(verify=_tls(stack), timeout=10) as client:
        resp = client.get(stack.https_url + "/healthz")
    assert resp.status_code == 200
    assert resp.headers["x-request-id"]


def test_tls_offers_http2_and_http11(stack: Stack) -> None:
    port = int(stack.https_url.rsplit(":", 1)[1])
    for proto in ("h2", "http/1.1"):
        ctx = ssl.create_default_context(cafile=str(stack.ca_file))
        ctx.set_alpn_protocols([proto])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == proto


def test_plain_http_is_not_served(stack: Stack) -> None:
    plain = stack.https_url.replace("https://", "http://")
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.TransportError):
        client.get(plain + "/healthz")


def test_access_log_is_json_with_the_request_id(stack: Stack) -> None:
    with httpx.Client(verify=_tls(stack), timeout=10) as client:
        resp = client.get(stack.https_url + "/v1/no-such-thing")
    request_id = resp.headers["x-request-id"]
    log = stack.logs_dir / "envoy-access.log"
    deadline = time.monotonic() + 20  # Envoy flushes access logs periodically
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if entry["request_id"] == request_id:
                    assert entry["method"] == "GET"
                    assert entry["path"] == "/v1/no-such-thing"
                    assert entry["status"] == 404
                    assert "duration_ms" in entry and "upstream_cluster" in entry
                    return
        time.sleep(0.5)
    raise AssertionError(f"request {request_id} not in {log}")


def test_a_second_runner_on_the_same_state_dir_refuses(stack: Stack) -> None:
    lock = stack.infra.state_dir / "devstack.lock"
    holder = lock.read_text()
    cfg = stack.infra.config
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack",
            "run",
            "--profile",
            cfg.profile,
            "--port-base",
            str(cfg.port_base),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode != 0
    assert "already running" in done.stderr
    # Nothing was touched: same lock holder, the stack still answers.
    assert lock.read_text() == holder
    with httpx.Client(verify=_tls(stack), timeout=10) as client:
        assert client.get(stack.https_url + "/healthz").status_code == 200


def test_service_tokens_are_refused_at_the_edge_and_user_tokens_pass(stack: Stack) -> None:
    """A service token is valid inside (services accept it over gRPC) but the
    edge refuses it: services let the service role read any customer's data."""
    user = mint_token(stack.secrets_dir, ["user"])
    service = mint_token(stack.secrets_dir, ["service"], subject="service:payments")
    with httpx.Client(verify=_tls(stack), timeout=10) as client:
        as_user = client.get(
            stack.https_url + "/v1/payments", headers={"authorization": f"Bearer {user}"}
        )
        as_service = client.get(
            stack.https_url + "/v1/payments", headers={"authorization": f"Bearer {service}"}
        )
    assert as_user.status_code == 200, as_user.text
    # Envoy's RBAC filter refuses it (its 403 is answered as 401 invalid_token,
    # like any token not valid for this API), before any service sees it.
    assert as_service.status_code == 401, as_service.text
    assert "RBAC" in as_service.text
