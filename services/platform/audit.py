"""Append-only audit trail, written in the caller's transaction.

`data` passes through PII redaction first: the audit log records *that* a CPF
changed, never the CPF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform.logs import request_id_var
from services.platform.redaction import redact_value
from services.platform.tracing import current_trace_id

MAX_FIELD_CHARS = 200

_INSERT = text(
    "INSERT INTO audit_logs (entity, entity_id, action, data, performed_by, trace_id, request_id)"
    " VALUES (:entity, :entity_id, :action, :data, :performed_by, :trace_id, :request_id)"
    " RETURNING id"
).bindparams(bindparam("data", type_=JSONB))


async def record(
    conn: AsyncConnection,
    entity: str,
    entity_id: str,
    action: str,
    data: Mapping[str, Any],
    performed_by: str,
) -> int:
    """Append one audit row; returns its id."""
    for name, value in (("entity", entity), ("entity_id", entity_id), ("action", action)):
        assert value and len(value) <= MAX_FIELD_CHARS, f"audit {name} must be 1-200 chars"
    assert performed_by, "every change has an author (a user id or service:<name>)"
    row_id = await conn.scalar(
        _INSERT,
        {
            "entity": entity,
            "entity_id": entity_id,
            "action": action,
            "data": redact_value(dict(data)),
            "performed_by": performed_by,
            "trace_id": current_trace_id(),
            "request_id": request_id_var.get(),
        },
    )
    assert row_id is not None
    return int(row_id)
