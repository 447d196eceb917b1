"""The error model: AppError → google.rpc.Status with ErrorInfo and BadRequest.

Handlers raise AppError; the error interceptor (server_interceptors.py) turns
it into a rich status. Anything else becomes INTERNAL with a fixed message, so
stack traces, SQL and driver messages never reach a caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

INTERNAL_MESSAGE = "internal error"
MAX_VIOLATIONS = 100
MAX_MESSAGE_CHARS = 1024

# Platform reasons (CONVENTIONS "Errors").
IDEMPOTENCY_KEY_REQUIRED = "IDEMPOTENCY_KEY_REQUIRED"
IDEMPOTENCY_KEY_INVALID = "IDEMPOTENCY_KEY_INVALID"
IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
IDEMPOTENCY_REQUEST_IN_FLIGHT = "IDEMPOTENCY_REQUEST_IN_FLIGHT"
TOKEN_MISSING = "TOKEN_MISSING"  # noqa: S105 - an error reason, not a secret
TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105 - an error reason, not a secret
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 - an error reason, not a secret
TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105 - an error reason, not a secret
PERMISSION_DENIED = "PERMISSION_DENIED"
INTERNAL = "INTERNAL"
AUTH_UNAVAILABLE = "AUTH_UNAVAILABLE"
DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"


class AppError(Exception):
    """An error meant for the caller: a gRPC code, a stable reason and a message."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        *,
        violations: Sequence[tuple[str, str]] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        assert code is not grpc.StatusCode.OK, "an error cannot carry OK"
        assert reason and reason.isupper(), f"reason must be UPPER_SNAKE: {reason!r}"
        assert len(violations) <= MAX_VIOLATIONS
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message[:MAX_MESSAGE_CHARS]
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        return f"AppError({self.code.name}, {self.reason!r}, {self.message!r})"

    def to_status(self, domain: str) -> status_pb2.Status:
        details: list[any_pb2.Any] = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=domain)
        info.metadata.update(self.metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
            packed_bad = any_pb2.Any()
            packed_bad.Pack(bad)
            details.append(packed_bad)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)

    def to_grpc_status(self, domain: str) -> grpc.Status:
        return rpc_status.to_status(self.to_status(domain))


def internal_error() -> AppError:
    return AppError(grpc.StatusCode.INTERNAL, INTERNAL, INTERNAL_MESSAGE)


def invalid_argument(
    reason: str, message: str, violations: Sequence[tuple[str, str]] = ()
) -> AppError:
    return AppError(grpc.StatusCode.INVALID_ARGUMENT, reason, message, violations=violations)


def not_found(reason: str, message: str) -> AppError:
    return AppError(grpc.StatusCode.NOT_FOUND, reason, message)


def already_exists(reason: str, message: str) -> AppError:
    return AppError(grpc.StatusCode.ALREADY_EXISTS, reason, message)


def failed_precondition(reason: str, message: str) -> AppError:
    return AppError(grpc.StatusCode.FAILED_PRECONDITION, reason, message)


def permission_denied(
    reason: str = PERMISSION_DENIED, message: str = "permission denied"
) -> AppError:
    return AppError(grpc.StatusCode.PERMISSION_DENIED, reason, message)


def unauthenticated(reason: str, message: str) -> AppError:
    return AppError(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def unavailable(reason: str, message: str) -> AppError:
    return AppError(grpc.StatusCode.UNAVAILABLE, reason, message)


# A downstream call that failed with one of these may succeed if tried again.
TRANSIENT_DEPENDENCY_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def dependency_error(exc: grpc.aio.AioRpcError) -> AppError | None:
    """A handler's downstream gRPC call failed and the handler let it through.

    A transient failure is this call's UNAVAILABLE: the handler's transaction
    rolled back and every call between our services carries an idempotency
    key, so the client's retry is safe. Anything else (our request was
    refused) is a bug here: None, and it stays INTERNAL.
    """
    if exc.code() not in TRANSIENT_DEPENDENCY_CODES:
        return None
    return unavailable(
        DEPENDENCY_UNAVAILABLE, "a service this call needs is unavailable; retry shortly"
    )


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """What a client can read back from a rich status (used by tests and callers)."""

    code: grpc.StatusCode
    message: str
    reason: str | None
    domain: str | None
    metadata: Mapping[str, str]
    violations: tuple[tuple[str, str], ...]


def details_from_status(status: status_pb2.Status) -> ErrorDetails:
    reason = domain = None
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return ErrorDetails(
        code=_code_from_int(status.code),
        message=status.message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        violations=tuple(violations),
    )


def details_from_rpc_error(error: grpc.aio.AioRpcError | grpc.RpcError) -> ErrorDetails:
    """Decode the rich status a platform server attached to a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else ""
        return ErrorDetails(code, details or "", None, None, {}, ())
    return details_from_status(status)


def _code_from_int(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


assert code_pb2.INTERNAL == grpc.StatusCode.INTERNAL.value[0]
