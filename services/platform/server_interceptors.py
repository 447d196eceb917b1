"""The two outermost server interceptors: error conversion and observability.

Chain order (CONVENTIONS): errors → metrics/logging/tracing → auth → idempotency.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from services.platform.errors import AppError, dependency_error, internal_error
from services.platform.handlers import AroundInterceptor, Next, metadata_value
from services.platform.logs import clean_request_id, request_id_var
from services.platform.metrics import observe_rpc

log = logging.getLogger("services.platform.rpc")

REQUEST_ID_KEY = "x-request-id"


class ErrorInterceptor(AroundInterceptor):
    """Turns AppError into a rich google.rpc.Status and anything else into INTERNAL."""

    def __init__(self, domain: str) -> None:
        assert domain.endswith(".fintech.local"), domain
        self.domain = domain

    async def around(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        call_next: Next,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        try:
            return await call_next(request)
        except AppError as exc:
            await context.abort_with_status(exc.to_grpc_status(self.domain))
        except grpc.aio.AbortError:
            raise  # the handler already chose its status
        except Exception:
            # The traceback was logged by ObservabilityInterceptor (inside the
            # request scope); the caller learns nothing but "internal error".
            await context.abort_with_status(internal_error().to_grpc_status(self.domain))


class ObservabilityInterceptor(AroundInterceptor):
    """Request id, one log line per RPC, Prometheus counters/latency, and a
    downstream call's transient failure reported as UNAVAILABLE (not INTERNAL)."""

    async def around(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        call_next: Next,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        token = request_id_var.set(clean_request_id(metadata_value(context, REQUEST_ID_KEY)))
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        reason = None
        try:
            return await _dependency_failures_as_unavailable(call_next, request)
        except AppError as exc:
            code, reason = exc.code, exc.reason
            raise
        except grpc.aio.AbortError:
            aborted = context.code()
            code = aborted if isinstance(aborted, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
            raise
        except Exception:
            code, reason = grpc.StatusCode.INTERNAL, "INTERNAL"
            log.exception("unhandled error in %s", method)
            raise
        finally:
            elapsed = time.perf_counter() - started
            observe_rpc(method, code.name, elapsed)
            level = logging.INFO if code is grpc.StatusCode.OK else logging.WARNING
            if code is grpc.StatusCode.INTERNAL:
                level = logging.ERROR
            log.log(
                level,
                "rpc %s %s",
                method,
                code.name,
                extra={
                    "grpc_method": method,
                    "grpc_code": code.name,
                    "reason": reason,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            request_id_var.reset(token)


async def _dependency_failures_as_unavailable(call_next: Next, request: Any) -> Any:
    """A transient failure of a downstream call the handler let through becomes
    UNAVAILABLE `DEPENDENCY_UNAVAILABLE` (errors.dependency_error), so clients
    retry instead of seeing INTERNAL; any other is left to become INTERNAL."""
    try:
        return await call_next(request)
    except grpc.aio.AioRpcError as exc:
        mapped = dependency_error(exc)
        if mapped is None:
            raise
        log.warning("a downstream call failed: %s %s", exc.code().name, exc.details())
        raise mapped from exc
