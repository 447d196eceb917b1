"""aiohttp application skeleton every simulator uses, and its process runner.

Contract (docs/RISK.md): `python -m simulators.<name> --host H --port P`,
`GET /__health`, `/__admin/faults`, `/__admin/clock`, graceful SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from simulators.common.clock import Clock
from simulators.common.faults import FaultDecision, FaultInjector, FaultSettings

log = logging.getLogger("simulators")

# Request bodies are small JSON documents; anything larger is a client bug.
MAX_BODY_BYTES = 64 * 1024
# "Accept and never answer within 30 s" (docs/RISK.md): hang a little longer than that.
DEFAULT_TIMEOUT_HANG_SECONDS = 35.0
RETRY_AFTER_SECONDS = 1
SHUTDOWN_GRACE_SECONDS = 5.0

CLOCK_KEY = web.AppKey("clock", Clock)
FAULTS_KEY = web.AppKey("faults", FaultInjector)
CONFIG_KEY: web.AppKey[SimulatorConfig] = web.AppKey("config")

# (request, status, code, title, detail) -> JSON body in the API's own error shape.
ErrorBodyFactory = Callable[[web.Request, int, str, str, str], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CPF_RUN = re.compile(r"(?<!\d)(\d{3})\.?(\d{3})\.?(\d{3})-?(\d{2})(?!\d)")


def mask_cpfs(text: str) -> str:
    """Replace anything shaped like a CPF by `***.444.777-**` (LGPD: logs never hold
    a CPF in clear; the middle digits keep lines correlatable while debugging)."""
    return _CPF_RUN.sub(lambda m: f"***.{m.group(2)}.{m.group(3)}-**", text)


def default_error_body(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> dict[str, Any]:
    return {"error": {"code": code, "title": title, "detail": detail}}


async def _no_reset(app: web.Application) -> None:
    return None


@dataclass
class SimulatorConfig:
    name: str
    error_body: ErrorBodyFactory = default_error_body
    timeout_hang_seconds: float = DEFAULT_TIMEOUT_HANG_SECONDS
    # Called by `POST /__admin/reset` to drop the simulator's own state.
    reset_state: Callable[[web.Application], Awaitable[None]] = field(default=_no_reset)
    # API middlewares that must also wrap injected faults (e.g. header echo).
    middlewares: tuple[Any, ...] = ()


def _is_control_path(path: str) -> bool:
    # Health and admin must keep working during an outage, or tests could not end it.
    return path == "/__health" or path.startswith("/__admin/")


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    interaction_id = request.headers.get("x-fapi-interaction-id", "")
    try:
        response = await handler(request)
        status = response.status
        # The API may have generated the id; log the one the client received.
        interaction_id = response.headers.get("x-fapi-interaction-id", interaction_id)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # client went away (e.g. gave up on an injected timeout)
        raise
    finally:
        config = request.app[CONFIG_KEY]
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "sim": config.name,
            "method": request.method,
            "path": mask_cpfs(request.path_qs),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "interaction_id": interaction_id[:64],
        }
        log.info(json.dumps(line, separators=(",", ":")))


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_control_path(request.path):
        return await handler(request)
    decision: FaultDecision = request.app[FAULTS_KEY].decide()
    config = request.app[CONFIG_KEY]
    if decision.latency_ms:
        await asyncio.sleep(decision.latency_ms / 1000)
    if decision.kind is None:
        return await handler(request)
    if decision.kind == "timeout":
        await asyncio.sleep(config.timeout_hang_seconds)
        return _fault_response(request, 504, "GATEWAY_TIMEOUT", "Timeout", "injected timeout")
    if decision.kind == "rate_limit":
        response = _fault_response(
            request, 429, "TOO_MANY_REQUESTS", "Too many requests", "injected rate limit"
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if decision.kind == "outage":
        return _fault_response(request, 503, "SERVICE_UNAVAILABLE", "Outage", "injected outage")
    return _fault_response(
        request, decision.status, "INTERNAL_ERROR", "Internal error", "injected error"
    )


def _fault_response(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> web.Response:
    body = request.app[CONFIG_KEY].error_body(request, status, code, title, detail)
    return web.json_response(body, status=status, content_type="application/json")


async def _read_json(request: web.Request) -> Any:
    if request.content_length is None and not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"invalid JSON: {exc.msg}"}), content_type="application/json"
        ) from exc


def _admin_error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "simulator": request.app[CONFIG_KEY].name})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS_KEY].settings.as_json())


async def set_faults(request: web.Request) -> web.Response:
    try:
        settings = FaultSettings.from_json(await _read_json(request))
    except ValueError as exc:
        return _admin_error(str(exc))
    request.app[FAULTS_KEY].configure(settings)
    return web.json_response(settings.as_json())


def _clock_json(clock: Clock) -> dict[str, Any]:
    return {
        "now": clock.now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "offset_seconds": clock.offset_seconds,
    }


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(request.app[CLOCK_KEY]))


async def advance_clock(request: web.Request) -> web.Response:
    body = await _read_json(request)
    seconds = body.get("advance_seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return _admin_error("advance_seconds (number) is required")
    clock = request.app[CLOCK_KEY]
    try:
        clock.advance(float(seconds))
    except ValueError as exc:
        return _admin_error(str(exc))
    return web.json_response(_clock_json(clock))


async def reset_all(request: web.Request) -> web.Response:
    """Faults off, clock back to real time, simulator state dropped (test isolation)."""
    app = request.app
    app[FAULTS_KEY].configure(FaultSettings())
    app[CLOCK_KEY].reset()
    await app[CONFIG_KEY].reset_state(app)
    return web.json_response({"reset": True})


def build_app(config: SimulatorConfig, clock: Clock | None = None) -> web.Application:
    """The skeleton; the caller adds its API routes to the returned app."""
    app = web.Application(
        middlewares=[access_log_middleware, *config.middlewares, fault_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONFIG_KEY] = config
    app[CLOCK_KEY] = clock or Clock()
    app[FAULTS_KEY] = FaultInjector()
    app.router.add_get("/__health", health)
    app.router.add_get("/__admin/faults", get_faults)
    app.router.add_post("/__admin/faults", set_faults)
    app.router.add_get("/__admin/clock", get_clock)
    app.router.add_post("/__admin/clock", advance_clock)
    app.router.add_post("/__admin/reset", reset_all)
    return app


def _parse_args(name: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m simulators.{name}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    return parser.parse_args(argv)


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0] if runner.addresses else (host, port)
    log.info(
        json.dumps({"sim": app[CONFIG_KEY].name, "event": "listening", "address": list(bound)})
    )
    await stop.wait()
    log.info(json.dumps({"sim": app[CONFIG_KEY].name, "event": "stopping"}))
    # cleanup() stops accepting, then waits up to shutdown_timeout for in-flight requests.
    await runner.cleanup()


def run(name: str, make_app: Callable[[], web.Application], argv: list[str] | None = None) -> None:
    args = _parse_args(name, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    asyncio.run(_serve(make_app(), args.host, args.port))
