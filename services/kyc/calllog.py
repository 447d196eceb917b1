"""The call log KYC's provider clients write through: the platform's DbCallLog
plus redaction of the Portuguese PII fields these providers use (`nome`,
`data_nascimento`, document `numero`), which the platform's English key list
does not know. Applied recursively; a body cut short by the platform's size
cap (not JSON any more) is scrubbed by pattern instead.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from services.platform.http_client import CallLog, CallRecord
from services.platform.redaction import REDACTED

PII_KEYS = frozenset({"nome", "data_nascimento", "numero", "ano_obito", "access_token"})
MAX_DEPTH = 8
_PAIR = re.compile(r'("(?:' + "|".join(sorted(PII_KEYS)) + r')"\s*:\s*)("[^"]*"?|[^,}\s]+)')


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {k: (REDACTED if k in PII_KEYS else _scrub(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    return value


def scrub_body(body: str | None) -> str | None:
    if not body:
        return body
    try:
        parsed = json.loads(body)
    except ValueError:
        return _PAIR.sub(lambda m: m.group(1) + f'"{REDACTED}"', body)
    return json.dumps(_scrub(parsed), ensure_ascii=False)


class KycCallLog:
    def __init__(self, inner: CallLog) -> None:
        self._inner = inner

    async def record(self, call: CallRecord) -> None:
        await self._inner.record(
            dataclasses.replace(
                call, request=scrub_body(call.request), response=scrub_body(call.response)
            )
        )
