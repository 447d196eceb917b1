"""Page sizes and page tokens for every List RPC (AIP-158), in one place.

Listings are keyset-paginated: a token carries the sort key of the last row
served, so a deep page costs one index range scan. A token is opaque to
clients and valid only for the listing that produced it: `listing` names the
query *and its filters* (e.g. f"devices:{user_id}",
f"reconciliation-items:{run}:{status}"), and a token presented to another
listing is refused rather than silently applied to it.

Errors: a negative page_size → INVALID_ARGUMENT `PAGE_SIZE_INVALID`; a
malformed, oversized or foreign token → INVALID_ARGUMENT `PAGE_TOKEN_INVALID`,
each with a field violation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from services.platform.errors import AppError, invalid_argument

PAGE_SIZE_INVALID = "PAGE_SIZE_INVALID"
PAGE_TOKEN_INVALID = "PAGE_TOKEN_INVALID"  # noqa: S105 - an error reason, not a secret
# Our own tokens are a listing name plus a short sort key: far below this.
MAX_TOKEN_CHARS = 1024
MAX_PAGE_SIZE_LIMIT = 10_000

Cursor = tuple[str | int, ...]


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """0 → `default`; above `maximum` → `maximum` (AIP-158 lets us clamp)."""
    assert 1 <= default <= maximum <= MAX_PAGE_SIZE_LIMIT, (default, maximum)
    if requested < 0:
        raise invalid_argument(
            PAGE_SIZE_INVALID, "page_size must not be negative", [("page_size", "must be >= 0")]
        )
    return min(requested or default, maximum)


def _tag(listing: str) -> str:
    """A short digest of the listing: tokens stay small whatever the filters
    are, and do not echo filter values back."""
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def encode_token(listing: str, *cursor: str | int) -> str:
    """The opaque token of the page after `cursor`, valid only for `listing`."""
    assert listing and cursor
    raw = json.dumps([_tag(listing), *cursor], separators=(",", ":"))
    token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    assert len(token) <= MAX_TOKEN_CHARS, listing
    return token


def bad_token() -> AppError:
    return invalid_argument(
        PAGE_TOKEN_INVALID,
        "page_token is not valid for this listing",
        [("page_token", "use the next_page_token of the previous page, with the same filters")],
    )


def decode_token(token: str, listing: str, arity: int) -> Cursor:
    """The `arity` cursor values `encode_token(listing, ...)` put in `token`."""
    assert arity >= 1
    if len(token) > MAX_TOKEN_CHARS:
        raise bad_token()
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise bad_token() from None
    if not isinstance(data, list) or len(data) != arity + 1 or data[0] != _tag(listing):
        raise bad_token()
    cursor = tuple(data[1:])
    for value in cursor:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise bad_token()
    return cursor


def encode_time_id(listing: str, moment: datetime, row_id: uuid.UUID) -> str:
    """Token for the common (created_at, id) keyset."""
    return encode_token(listing, moment.isoformat(), str(row_id))


def decode_time_id(token: str, listing: str) -> tuple[datetime, uuid.UUID]:
    moment, row_id = decode_token(token, listing, 2)
    try:
        parsed = datetime.fromisoformat(str(moment))
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed, uuid.UUID(str(row_id))
    except ValueError:
        raise bad_token() from None


def decode_int(token: str, listing: str, *, minimum: int = 0) -> int:
    """Token for an integer keyset (a sequence number, an item number)."""
    (value,) = decode_token(token, listing, 1)
    if not isinstance(value, int) or not minimum <= value < 2**63:
        raise bad_token()
    return value


def decode_id(token: str, listing: str) -> uuid.UUID:
    """Token for a uuid keyset."""
    (value,) = decode_token(token, listing, 1)
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise bad_token() from None


def keyset_condition(
    after: tuple[datetime, uuid.UUID] | None,
    params: dict[str, Any],
    *,
    oldest_first: bool = False,
) -> str:
    """The SQL condition for the rows after `after` in (created_at, id) order.

    Binds `:after_at`/`:after_id` into `params`; "TRUE" on the first page.
    Newest-first listings (the default) resume below the last row served.
    """
    if after is None:
        return "TRUE"
    params["after_at"], params["after_id"] = after
    return f"(created_at, id) {'>' if oldest_first else '<'} (:after_at, :after_id)"
