"""The idempotency interceptor (CONVENTIONS "Idempotency").

For a mutating RPC it opens the transaction the handler joins through
`db.transaction()`, takes a transaction-scoped advisory lock on the scope
(subject, method, key), replays a stored response, rejects a reused key with
a different request, and stores the response in the same transaction as the
effect. A handler that fails rolls everything back, so a retry runs again.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message, message_factory
from sqlalchemy import text

from services.platform import errors
from services.platform.auth import optional_principal
from services.platform.db import Database
from services.platform.handlers import AroundInterceptor, Next, metadata_value
from services.platform.policy import PolicyLookup, policy_for, split_full_method

METADATA_KEY = "idempotency-key"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
ANONYMOUS = "anonymous"

_SELECT = text(
    "SELECT request_hash, response, response_type FROM idempotency_keys"
    " WHERE subject = :subject AND method = :method AND key = :key"
)
_INSERT = text(
    "INSERT INTO idempotency_keys (subject, method, key, request_hash, response, response_type)"
    " VALUES (:subject, :method, :key, :request_hash, :response, :response_type)"
)
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:lock_id)")


def request_hash(request: message.Message) -> bytes:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


def advisory_lock_id(namespace: str, subject: str, method: str, key: str) -> int:
    """A signed 64-bit lock id; advisory locks are database-wide, hence the namespace."""
    digest = hashlib.sha256("\x1f".join((namespace, subject, method, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def output_class(full_method: str) -> type[message.Message]:
    service, method = split_full_method(full_method)
    desc = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    return message_factory.GetMessageClass(desc.output_type)


def validate_key(key: str | None) -> str:
    if key is None or key == "":
        raise errors.invalid_argument(
            errors.IDEMPOTENCY_KEY_REQUIRED,
            "this method requires the idempotency-key metadata",
            violations=[(METADATA_KEY, "required")],
        )
    if not KEY_PATTERN.fullmatch(key):
        raise errors.invalid_argument(
            errors.IDEMPOTENCY_KEY_INVALID,
            "idempotency-key must be 1-128 characters of [A-Za-z0-9_.:-]",
            violations=[(METADATA_KEY, "1-128 characters of [A-Za-z0-9_.:-]")],
        )
    return key


class IdempotencyInterceptor(AroundInterceptor):
    def __init__(
        self, db: Database, namespace: str, policy_lookup: PolicyLookup = policy_for
    ) -> None:
        self.db = db
        self.namespace = namespace
        self.policy_lookup = policy_lookup

    def applies_to(self, method: str) -> bool:
        return self.policy_lookup(method).mutating

    async def around(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        call_next: Next,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        # A replayable response must be a single message: a mutating streaming
        # RPC is a contract bug, refused rather than silently not deduplicated.
        assert not handler.request_streaming and not handler.response_streaming, method
        key = validate_key(metadata_value(context, METADATA_KEY))
        principal = optional_principal()
        subject = principal.subject if principal else ANONYMOUS
        digest = request_hash(request)
        scope = {"subject": subject, "method": method, "key": key}
        async with self.db.transaction() as conn:
            locked = await conn.scalar(
                _TRY_LOCK,
                {"lock_id": advisory_lock_id(self.namespace, subject, method, key)},
            )
            if not locked:
                raise in_flight_error()
            stored = (await conn.execute(_SELECT, scope)).first()
            if stored is not None:
                if bytes(stored.request_hash) != digest:
                    raise errors.already_exists(
                        errors.IDEMPOTENCY_KEY_REUSED,
                        "idempotency-key was already used with a different request",
                    )
                cls = output_class(method)
                assert stored.response_type == cls.DESCRIPTOR.full_name, stored.response_type
                return cls.FromString(bytes(stored.response))
            response = await call_next(request)
            assert isinstance(response, message.Message), type(response)
            await conn.execute(
                _INSERT,
                {
                    **scope,
                    "request_hash": digest,
                    "response": response.SerializeToString(deterministic=True),
                    "response_type": response.DESCRIPTOR.full_name,
                },
            )
            return response


def in_flight_error() -> errors.AppError:
    return errors.AppError(
        grpc.StatusCode.ABORTED,
        errors.IDEMPOTENCY_REQUEST_IN_FLIGHT,
        "a request with this idempotency-key is in flight; retry later",
    )
