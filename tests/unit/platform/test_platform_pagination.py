"""Page sizes and page tokens shared by every List RPC (AIP-158)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.platform import pagination
from services.platform.errors import AppError

MOMENT = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def reason(call: object) -> str:
    assert callable(call)
    with pytest.raises(AppError) as caught:
        call()
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value.reason


def test_page_size_defaults_clamps_and_refuses_negative() -> None:
    assert pagination.page_size(0, default=20, maximum=100) == 20
    assert pagination.page_size(7, default=20, maximum=100) == 7
    assert pagination.page_size(10_000, default=20, maximum=100) == 100
    assert reason(lambda: pagination.page_size(-1, default=20, maximum=100)) == "PAGE_SIZE_INVALID"


@given(
    listing=st.text(min_size=1, max_size=60),
    cursor=st.lists(
        st.one_of(st.text(max_size=40), st.integers(0, 2**63 - 1)), min_size=1, max_size=3
    ),
)
def test_tokens_round_trip_for_their_own_listing_only(
    listing: str, cursor: list[str | int]
) -> None:
    token = pagination.encode_token(listing, *cursor)
    assert pagination.decode_token(token, listing, len(cursor)) == tuple(cursor)
    assert reason(lambda: pagination.decode_token(token, listing + "x", len(cursor))) == (
        "PAGE_TOKEN_INVALID"
    )
    # Another arity is another listing's shape too.
    assert reason(lambda: pagination.decode_token(token, listing, len(cursor) + 1)) == (
        "PAGE_TOKEN_INVALID"
    )


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "x" * (pagination.MAX_TOKEN_CHARS + 1),
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(json.dumps(["devices", True]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["devices", [1]]).encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert reason(lambda: pagination.decode_token(token, "devices", 1)) == "PAGE_TOKEN_INVALID"


def test_time_id_keyset_round_trips_and_needs_an_aware_time() -> None:
    row_id = uuid.uuid4()
    token = pagination.encode_time_id("devices:u1", MOMENT, row_id)
    assert pagination.decode_time_id(token, "devices:u1") == (MOMENT, row_id)
    naive = pagination.encode_token("devices:u1", "2026-11-29T03:00:00", str(row_id))
    assert reason(lambda: pagination.decode_time_id(naive, "devices:u1")) == "PAGE_TOKEN_INVALID"
    not_an_id = pagination.encode_token("devices:u1", MOMENT.isoformat(), "nope")
    assert reason(lambda: pagination.decode_time_id(not_an_id, "devices:u1")) == (
        "PAGE_TOKEN_INVALID"
    )


def test_int_and_id_keysets() -> None:
    assert pagination.decode_int(pagination.encode_token("seq", 42), "seq") == 42
    low = pagination.encode_token("seq", 0)
    assert reason(lambda: pagination.decode_int(low, "seq", minimum=1)) == "PAGE_TOKEN_INVALID"
    text_value = pagination.encode_token("seq", "42")
    assert reason(lambda: pagination.decode_int(text_value, "seq")) == "PAGE_TOKEN_INVALID"
    row_id = uuid.uuid4()
    assert pagination.decode_id(pagination.encode_token("acc", str(row_id)), "acc") == row_id


def test_keyset_condition_binds_the_cursor_and_orders_both_ways() -> None:
    params: dict[str, object] = {}
    assert pagination.keyset_condition(None, params) == "TRUE" and params == {}
    row_id = uuid.uuid4()
    newest = pagination.keyset_condition((MOMENT, row_id), params)
    assert newest == "(created_at, id) < (:after_at, :after_id)"
    assert params == {"after_at": MOMENT, "after_id": row_id}
    oldest = pagination.keyset_condition((MOMENT, row_id), {}, oldest_first=True)
    assert oldest == "(created_at, id) > (:after_at, :after_id)"
