"""The idempotency interceptor (CONVENTIONS "Idempotency").

For a mutating RPC it opens the transaction the handler joins through
`db.transaction()`, takes a transaction-scoped advisory lock on the scope
(subject, method, key), replays a stored response, rejects a reused key with
a different request, and stores the response in the same transaction as the
effect. A handler that fails rolls everything back, so a retry runs again.

Some handlers commit their effect in a transaction of their own, not the
caller's: the ledger's single writer applies many calls in one batch
transaction (group commit). For such methods (`own_record`) the interceptor
opens no transaction and takes no lock: it hands the handler a `Claim`, and
the handler stores the record in the transaction that commits the effect,
using `Claim.replay` and `Claim.row` so the semantics stay the platform's
(replay, ALREADY_EXISTS on a different request, ABORTED while in flight).
The handler must serialise the calls that could share a key (the ledger's
writer does: one batch at a time, under its journal-head lock).
"""

from __future__ import annotations

import contextvars
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
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

SELECT_RECORD = text(
    "SELECT request_hash, response, response_type FROM idempotency_keys"
    " WHERE subject = :subject AND method = :method AND key = :key"
)
INSERT_RECORD = text(
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


def replay_stored(
    method: str, digest: bytes, stored_hash: bytes, response: bytes, response_type: str
) -> message.Message:
    """The stored first response for a repeated key, or ALREADY_EXISTS if the request differs."""
    if stored_hash != digest:
        raise errors.already_exists(
            errors.IDEMPOTENCY_KEY_REUSED,
            "idempotency-key was already used with a different request",
        )
    cls = output_class(method)
    assert response_type == cls.DESCRIPTOR.full_name, response_type
    return cls.FromString(response)


# The columns of one idempotency_keys row, in table order (without created_at).
RECORD_COLUMNS = ("subject", "method", "key", "request_hash", "response", "response_type")
Record = tuple[str, str, str, bytes, bytes, str]


@dataclass(slots=True)
class Claim:
    """A mutating call whose handler stores its idempotency record itself."""

    subject: str
    method: str
    key: str
    request_hash: bytes
    # Set by the handler once its record is committed (or replayed): the
    # interceptor checks it, so a handler that forgets to store fails loudly.
    recorded: bool = field(default=False, compare=False)

    @property
    def scope(self) -> tuple[str, str, str]:
        return (self.subject, self.method, self.key)

    def replay(self, stored_hash: bytes, response: bytes, response_type: str) -> message.Message:
        return replay_stored(self.method, self.request_hash, stored_hash, response, response_type)

    def row(self, response: message.Message) -> Record:
        """The record to store with the effect, in the same transaction."""
        return (
            self.subject,
            self.method,
            self.key,
            self.request_hash,
            response.SerializeToString(deterministic=True),
            response.DESCRIPTOR.full_name,
        )


_claim: contextvars.ContextVar[Claim | None] = contextvars.ContextVar(
    "fintech_idempotency_claim", default=None
)


def current_claim() -> Claim:
    """The claim of the running call, for a handler of an `own_record` method."""
    claim = _claim.get()
    assert claim is not None, "not inside an own_record method's call"
    return claim


class IdempotencyInterceptor(AroundInterceptor):
    def __init__(
        self,
        db: Database,
        namespace: str,
        policy_lookup: PolicyLookup = policy_for,
        own_record: Iterable[str] = (),
    ) -> None:
        self.db = db
        self.namespace = namespace
        self.policy_lookup = policy_lookup
        # Full method names whose handlers store their own record (see module doc).
        self.own_record = frozenset(own_record)
        for method in self.own_record:
            assert self.policy_lookup(method).mutating, f"{method} is not mutating"

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
        if method in self.own_record:
            return await self._handler_records(
                Claim(subject, method, key, digest), call_next, request
            )
        scope = {"subject": subject, "method": method, "key": key}
        async with self.db.transaction() as conn:
            locked = await conn.scalar(
                _TRY_LOCK,
                {"lock_id": advisory_lock_id(self.namespace, subject, method, key)},
            )
            if not locked:
                raise in_flight_error()
            stored = (await conn.execute(SELECT_RECORD, scope)).first()
            if stored is not None:
                return replay_stored(
                    method,
                    digest,
                    bytes(stored.request_hash),
                    bytes(stored.response),
                    stored.response_type,
                )
            response = await call_next(request)
            assert isinstance(response, message.Message), type(response)
            await conn.execute(
                INSERT_RECORD,
                {
                    **scope,
                    "request_hash": digest,
                    "response": response.SerializeToString(deterministic=True),
                    "response_type": response.DESCRIPTOR.full_name,
                },
            )
            return response

    @staticmethod
    async def _handler_records(claim: Claim, call_next: Next, request: Any) -> Any:
        token = _claim.set(claim)
        try:
            response = await call_next(request)
        finally:
            _claim.reset(token)
        # A handler that answered without storing (or replaying) its record
        # would make the key unprotected: a bug, never a silent success.
        assert claim.recorded, f"{claim.method} answered without storing its idempotency record"
        return response


def in_flight_error() -> errors.AppError:
    return errors.AppError(
        grpc.StatusCode.ABORTED,
        errors.IDEMPOTENCY_REQUEST_IN_FLIGHT,
        "a request with this idempotency-key is in flight; retry later",
    )
