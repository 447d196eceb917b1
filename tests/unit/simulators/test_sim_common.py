"""Shared simulator machinery: faults, admin API, clock, logging, process runner."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators.bureau.app import make_app as make_bureau
from simulators.common.app import CONFIG_KEY, mask_cpfs
from simulators.open_finance.app import make_app as make_bank

REPO_ROOT = Path(__file__).resolve().parents[3]
SCORE = "/v1/scores/11144477735"


@pytest.fixture
async def sim() -> AsyncIterator[TestClient]:
    app = make_bureau()
    app[CONFIG_KEY].timeout_hang_seconds = 2.0  # the contract's 30 s, shortened for tests
    # access_log=None as in production (simulators.common.app): aiohttp's own access
    # log would print the raw path, CPF included.
    server = TestServer(app)
    await server.start_server(access_log=None)
    client = TestClient(server)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _faults(client: TestClient, body: dict) -> tuple[int, dict]:
    async with client.post("/__admin/faults", json=body) as resp:
        return resp.status, await resp.json()


async def _statuses(client: TestClient, n: int) -> list[int]:
    out = []
    for _ in range(n):
        async with client.get(SCORE) as resp:
            out.append(resp.status)
    return out


async def test_health_and_fault_settings_round_trip(sim: TestClient) -> None:
    async with sim.get("/__health") as resp:
        assert resp.status == 200
    async with sim.get("/__admin/faults") as resp:
        assert await resp.json() == {
            "latency_ms": 0,
            "error_rate": 0.0,
            "timeout_rate": 0.0,
            "rate_limit_rate": 0.0,
            "outage": False,
            "seed": 0,
        }
    status, body = await _faults(sim, {"error_rate": 0.25, "seed": 3})
    assert status == 200 and body["error_rate"] == 0.25 and body["seed"] == 3
    async with sim.get("/__admin/faults") as resp:
        assert (await resp.json())["error_rate"] == 0.25
    _, cleared = await _faults(sim, {})
    assert cleared["error_rate"] == 0.0 and cleared["seed"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 1.5},
        {"latency_ms": -1},
        {"latency_ms": 10**9},
        {"outage": "yes"},
        {"bogus": 1},
        {"seed": "x"},
        {"timeout_rate": True},
    ],
)
async def test_invalid_fault_settings_rejected(sim: TestClient, body: dict) -> None:
    status, _ = await _faults(sim, body)
    assert status == 400


async def test_error_rate_is_deterministic_per_seed(sim: TestClient) -> None:
    await _faults(sim, {"error_rate": 0.5, "seed": 7})
    first = await _statuses(sim, 40)
    await _faults(sim, {"error_rate": 0.5, "seed": 7})
    second = await _statuses(sim, 40)
    await _faults(sim, {"error_rate": 0.5, "seed": 8})
    third = await _statuses(sim, 40)
    assert first == second
    assert first != third
    failures = [s for s in first if s != 200]
    assert set(failures) <= {500, 503}
    assert 8 <= len(failures) <= 32
    async with sim.get(SCORE) as resp:
        if resp.status != 200:
            assert (await resp.json())["error"]["code"] == "INTERNAL_ERROR"


async def test_rate_limit_has_retry_after(sim: TestClient) -> None:
    await _faults(sim, {"rate_limit_rate": 1.0})
    async with sim.get(SCORE) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1


async def test_latency(sim: TestClient) -> None:
    await _faults(sim, {"latency_ms": 200})
    started = time.perf_counter()
    assert await _statuses(sim, 1) == [200]
    assert time.perf_counter() - started >= 0.2


async def test_outage_spares_health_and_admin(sim: TestClient) -> None:
    await _faults(sim, {"outage": True})
    assert await _statuses(sim, 3) == [503, 503, 503]
    async with sim.get("/__health") as resp:
        assert resp.status == 200
    await _faults(sim, {})
    assert await _statuses(sim, 1) == [200]


async def test_timeout_never_answers_in_time(sim: TestClient) -> None:
    await _faults(sim, {"timeout_rate": 1.0})
    with pytest.raises(asyncio.TimeoutError):
        async with sim.get(SCORE, timeout=aiohttp.ClientTimeout(total=0.5)):
            pass
    await _faults(sim, {})
    assert await _statuses(sim, 1) == [200]


async def test_open_finance_faults_use_spec_error_body() -> None:
    client = TestClient(TestServer(make_bank()))
    await client.start_server()
    try:
        await _faults(client, {"error_rate": 1.0})
        async with client.get("/open-banking/accounts/v2/accounts") as resp:
            assert resp.status in (500, 503)
            assert resp.headers["x-fapi-interaction-id"]
            body = await resp.json()
        assert body["errors"][0]["code"] == "INTERNAL_ERROR"
        assert {"requestDateTime", "totalRecords", "totalPages"} <= set(body["meta"])
    finally:
        await client.close()


async def test_clock_and_reset() -> None:
    client = TestClient(TestServer(make_bank()))
    await client.start_server()
    try:
        async with client.post("/__admin/clock", json={"advance_seconds": 3600}) as resp:
            assert resp.status == 200
            assert (await resp.json())["offset_seconds"] == 3600
        async with client.post("/__admin/clock", json={"advance_seconds": -5}) as resp:
            assert resp.status == 400
        async with client.post("/__admin/clock", json={}) as resp:
            assert resp.status == 400
        created = await client.post(
            "/open-banking/consents/v3/consents",
            headers={"Authorization": "Bearer t"},
            json={
                "data": {
                    "loggedUser": {"document": {"identification": "11144477735", "rel": "CPF"}},
                    "permissions": ["ACCOUNTS_READ"],
                }
            },
        )
        consent_id = (await created.json())["data"]["consentId"]
        await _faults(client, {"outage": True})
        async with client.post("/__admin/reset") as resp:
            assert resp.status == 200
        async with client.get("/__admin/clock") as resp:
            assert (await resp.json())["offset_seconds"] == 0
        async with client.get("/__admin/faults") as resp:
            assert (await resp.json())["outage"] is False
        async with client.get(
            f"/open-banking/consents/v3/consents/{consent_id}",
            headers={"Authorization": "Bearer t"},
        ) as resp:
            assert resp.status == 404  # state dropped
    finally:
        await client.close()


async def test_body_size_limited(sim: TestClient) -> None:
    async with sim.post(
        "/__admin/faults",
        data=b"{" + b" " * 200_000 + b"}",
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413


def test_mask_cpfs() -> None:
    assert mask_cpfs("/v1/scores/11144477735?x=1") == "/v1/scores/***.444.777-**?x=1"
    assert mask_cpfs("cpf 111.444.777-35 end") == "cpf ***.444.777-** end"
    assert mask_cpfs("id 123456789012345") == "id 123456789012345"  # longer runs untouched


async def test_access_log_is_json_and_masks_cpf(
    sim: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="simulators"):
        await _statuses(sim, 1)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "simulators"]
    assert lines and lines[-1]["status"] == 200 and lines[-1]["method"] == "GET"
    assert "11144477735" not in caplog.text
    assert lines[-1]["path"] == "/v1/scores/***.444.777-**"


def test_process_runner_serves_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.bureau", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        event = json.loads(line)
        assert event["event"] == "listening"
        port = event["address"][1]

        async def health() -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/__health") as resp,
            ):
                return resp.status

        assert asyncio.run(health()) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
