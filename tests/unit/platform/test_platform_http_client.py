"""Resilient HTTP client against a real local HTTP server (no httpx mocks)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from services.platform.http_client import (
    BulkheadFullError,
    CallRecord,
    CircuitOpenError,
    ProviderUnavailableError,
    ResilienceConfig,
    ResilientHttpClient,
    backoff_delay,
    retry_after_seconds,
)


@dataclass
class Script:
    """Per-path scripted responses: (status, headers, body, delay); the last repeats."""

    responses: dict[str, list[tuple[int, dict[str, str], bytes, float]]] = field(
        default_factory=dict
    )
    hits: dict[str, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)


class ScriptedServer:
    def __init__(self) -> None:
        self.script = Script()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                self.script.bodies.append(await reader.readexactly(length) if length else b"")
                count = self.script.hits.get(path, 0)
                self.script.hits[path] = count + 1
                plan = self.script.responses[path]
                status, headers, body, delay = plan[min(count, len(plan) - 1)]
                if delay:
                    await asyncio.sleep(delay)
                extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def http() -> AsyncIterator[tuple[ScriptedServer, str]]:
    server = ScriptedServer()
    url = await server.start()
    yield server, url
    await server.close()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.sleeps: list[float] = []

    async def record(self, call: CallRecord) -> None:
        self.calls.append(call)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def client(url: str, rec: Recorder, **config: object) -> ResilientHttpClient:
    return ResilientHttpClient(
        "psp",
        url,
        config=ResilienceConfig(**{"timeout_seconds": 1.0, "max_attempts": 3, **config}),  # type: ignore[arg-type]
        call_log=rec,
        sleep=rec.sleep,
        rand=lambda: 1.0,
    )


Reply = tuple[int, dict[str, str], bytes, float]
OK: Reply = (200, {}, b'{"ok": true}', 0.0)
UNAVAILABLE: Reply = (503, {}, b"down", 0.0)


async def test_get_retries_5xx_then_succeeds(http: tuple[ScriptedServer, str]) -> None:
    server, url = http
    server.script.responses["/status"] = [UNAVAILABLE, UNAVAILABLE, OK]
    rec = Recorder()
    async with client(url, rec) as c:
        response = await c.request("GET", "/status")
    assert response.status_code == 200 and server.script.hits["/status"] == 3
    assert rec.sleeps == [0.1, 0.2]  # base * 2**(attempt-1) with jitter factor 1.0
    assert [(r.attempt, r.status) for r in rec.calls] == [(1, 503), (2, 503), (3, 200)]


async def test_post_without_idempotency_key_is_not_retried(
    http: tuple[ScriptedServer, str],
) -> None:
    server, url = http
    server.script.responses["/pay"] = [UNAVAILABLE, OK]
    rec = Recorder()
    async with client(url, rec) as c:
        with pytest.raises(ProviderUnavailableError) as exc:
            await c.request("POST", "/pay", json_body={"amount": 1})
        assert exc.value.response is not None and exc.value.response.status_code == 503
        assert server.script.hits["/pay"] == 1
        response = await c.request(
            "POST", "/pay", json_body={"amount": 1}, headers={"Idempotency-Key": "k-1"}
        )
    assert response.status_code == 200 and server.script.hits["/pay"] == 2


async def test_429_honours_retry_after_and_gives_up_when_too_long(
    http: tuple[ScriptedServer, str],
) -> None:
    server, url = http
    server.script.responses["/limited"] = [(429, {"Retry-After": "2"}, b"", 0.0), OK]
    server.script.responses["/later"] = [(429, {"Retry-After": "3600"}, b"", 0.0)]
    rec = Recorder()
    async with client(url, rec) as c:
        assert (await c.request("GET", "/limited")).status_code == 200
        assert rec.sleeps == [2.0]
        with pytest.raises(ProviderUnavailableError):
            await c.request("GET", "/later")
    assert server.script.hits["/later"] == 1


async def test_timeouts_are_retried_then_reported(http: tuple[ScriptedServer, str]) -> None:
    server, url = http
    server.script.responses["/slow"] = [(200, {}, b"", 0.5)]
    rec = Recorder()
    async with client(url, rec, timeout_seconds=0.1, max_attempts=2) as c:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError) as exc:
            await c.request("GET", "/slow")
    assert "Timeout" in str(exc.value)
    assert time.monotonic() - started < 1.0
    assert [r.error for r in rec.calls] == ["ReadTimeout", "ReadTimeout"]


async def test_connect_errors_are_retried() -> None:
    rec = Recorder()
    async with client("http://127.0.0.1:9", rec, max_attempts=3) as c:
        with pytest.raises(ProviderUnavailableError) as exc:
            await c.request("GET", "/x")
    assert "ConnectError" in str(exc.value)
    assert len(rec.calls) == 3 and all(r.status is None for r in rec.calls)


async def test_breaker_opens_and_fails_fast(http: tuple[ScriptedServer, str]) -> None:
    server, url = http
    server.script.responses["/down"] = [UNAVAILABLE]
    rec = Recorder()
    async with client(url, rec, breaker_fail_max=2, max_attempts=5) as c:
        with pytest.raises(CircuitOpenError):
            await c.request("GET", "/down")
        assert server.script.hits["/down"] == 2
        with pytest.raises(CircuitOpenError):
            await c.request("GET", "/down")
        assert server.script.hits["/down"] == 2  # failed fast, provider not called


async def test_client_errors_do_not_count_against_the_breaker(
    http: tuple[ScriptedServer, str],
) -> None:
    server, url = http
    server.script.responses["/bad"] = [(400, {}, b'{"error": "bad"}', 0.0)]
    rec = Recorder()
    async with client(url, rec, breaker_fail_max=1) as c:
        for _ in range(3):
            assert (await c.request("GET", "/bad")).status_code == 400
    assert server.script.hits["/bad"] == 3 and rec.sleeps == []


async def test_bulkhead_caps_concurrency(http: tuple[ScriptedServer, str]) -> None:
    server, url = http
    server.script.responses["/slow"] = [(200, {}, b"", 0.3)]
    rec = Recorder()
    async with client(url, rec, max_concurrency=1, bulkhead_wait_seconds=0.05) as c:
        results = await asyncio.gather(
            c.request("GET", "/slow"), c.request("GET", "/slow"), return_exceptions=True
        )
    assert sum(isinstance(r, BulkheadFullError) for r in results) == 1
    assert server.script.hits["/slow"] == 1


async def test_call_log_is_redacted(http: tuple[ScriptedServer, str]) -> None:
    server, url = http
    server.script.responses["/kyc"] = [
        (200, {}, b'{"name": "Ana", "email": "ana@example.com"}', 0.0)
    ]
    rec = Recorder()
    async with client(url, rec) as c:
        await c.request(
            "POST", "/kyc", json_body={"cpf": "123.456.789-09", "note": "tax id 12345678909"}
        )
    assert b"123.456.789-09" in server.script.bodies[0]  # the provider got the real value
    (call,) = rec.calls
    assert call.provider == "psp" and call.endpoint == "/kyc" and call.method == "POST"
    assert call.request is not None and call.response is not None
    assert "123.456.789-09" not in call.request and "12345678909" not in call.request
    assert json.loads(call.response)["name"] == "Ana"
    assert "ana@example.com" not in call.response


def test_backoff_and_retry_after_parsing() -> None:
    assert backoff_delay(1, 0.1, 2.0, lambda: 1.0) == pytest.approx(0.1)
    assert backoff_delay(10, 0.1, 2.0, lambda: 1.0) == 2.0
    assert backoff_delay(3, 0.1, 2.0, lambda: 0.0) == 0.0
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after_seconds(future) or 0) <= 31
