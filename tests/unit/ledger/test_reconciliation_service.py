"""Reconciliation use cases and API mapping that need no database."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest

from fintech.ledger.v1 import ledger_pb2
from services.ledger import reconciliation as svc
from services.ledger.domain import reconciliation as rec
from services.ledger.reconciliation_api import item_message, reconciliation_message
from services.platform import pagination
from services.platform.auth import Principal, reset_principal, set_principal
from services.platform.errors import AppError

TODAY = date(2026, 11, 28)
GOOD = svc.ImportRequest("psp", "2026-11-28", rec.ReportFormat.CSV, b"x")


class NoDatabase:
    """Any use of the database fails the test: validation must come first."""

    def transaction(self) -> None:
        raise AssertionError("the database must not be touched")


@pytest.fixture
def service() -> svc.ReconciliationService:
    return svc.ReconciliationService(NoDatabase(), today=lambda: TODAY)  # type: ignore[arg-type]


@pytest.fixture
def backoffice() -> Iterator[Principal]:
    principal = Principal("u1", "s1", frozenset({"backoffice"}))
    token = set_principal(principal)
    yield principal
    reset_principal(token)


async def app_error(coro: object) -> AppError:
    with pytest.raises(AppError) as exc:
        await coro  # type: ignore[misc]
    return exc.value


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"source": ""}, "source"),
        ({"source": "PSP"}, "source"),
        ({"source": "p" * 65}, "source"),
        ({"report_date": ""}, "report_date"),
        ({"report_date": "28/11/2026"}, "report_date"),
        ({"report_date": "20261128"}, "report_date"),
        ({"report_date": "2026-11-30"}, "report_date"),  # after tomorrow
        ({"report_date": "2019-12-31"}, "report_date"),
        ({"format": None}, "format"),
        ({"content": b""}, "content"),
        ({"content": b"x" * (rec.MAX_REPORT_BYTES + 1)}, "content"),
    ],
)
async def test_bad_request_fields_are_named(
    service: svc.ReconciliationService,
    backoffice: Principal,
    overrides: dict[str, object],
    field: str,
) -> None:
    request = _replace(overrides)
    error = await app_error(service.create(request))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error.violations] == [field]


def _replace(overrides: dict[str, object]) -> svc.ImportRequest:
    return dataclasses.replace(GOOD, **overrides)  # type: ignore[arg-type]


async def test_tomorrow_is_the_latest_report_date(
    service: svc.ReconciliationService, backoffice: Principal
) -> None:
    assert service._validate(_replace({"report_date": "2026-11-29"})) == (
        date(2026, 11, 29),
        rec.ReportFormat.CSV,
    )


async def test_every_use_case_needs_backoffice_or_service(
    service: svc.ReconciliationService,
) -> None:
    token = set_principal(Principal("u2", "s2", frozenset({"user"})))
    try:
        for call in (
            service.create(GOOD),
            service.get(f"reconciliations/{uuid.uuid4()}"),
            service.list(0, ""),
            service.list_items(f"reconciliations/{uuid.uuid4()}", None, 0, ""),
        ):
            error = await app_error(call)
            assert error.code is grpc.StatusCode.PERMISSION_DENIED
    finally:
        reset_principal(token)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "reconciliations/",
        "reconciliations/not-a-uuid",
        f"reconciliation/{uuid.UUID(int=1)}",
        f"reconciliations/{{{uuid.UUID(int=1)}}}",
        f"reconciliations/{uuid.UUID(int=1).hex}",
        f"reconciliations/{uuid.UUID(int=1)}/items",
    ],
)
async def test_malformed_names(
    service: svc.ReconciliationService, backoffice: Principal, name: str
) -> None:
    error = await app_error(service.get(name))
    assert (error.code, error.reason, error.violations[0][0]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "NAME_INVALID",
        "name",
    )
    error = await app_error(service.list_items(name, None, 0, ""))
    assert error.violations[0][0] == "parent"


async def test_page_tokens_are_bound_to_their_listing(
    service: svc.ReconciliationService, backoffice: Principal
) -> None:
    run = uuid.uuid4()
    # Items of a missing run: the token is refused before the run is looked up.
    token = pagination.encode_token(f"reconciliation-items:{run}:MATCHED", 7)
    for status in (None, rec.MatchStatus.AMOUNT_MISMATCH):
        error = await app_error(service.list_items(f"reconciliations/{run}", status, 10, token))
        assert error.reason == "PAGE_TOKEN_INVALID"
    other_run = uuid.uuid4()
    error = await app_error(
        service.list_items(f"reconciliations/{other_run}", rec.MatchStatus.MATCHED, 10, token)
    )
    assert error.reason == "PAGE_TOKEN_INVALID"
    naive = pagination.encode_token(svc.RUNS_LISTING, "2026-11-28T00:00:00", str(run))
    error = await app_error(service.list(10, naive))
    assert error.reason == "PAGE_TOKEN_INVALID"
    error = await app_error(service.list(-1, ""))
    assert error.reason == "PAGE_SIZE_INVALID"


def test_the_day_is_a_sao_paulo_day() -> None:
    start, end = svc.day_window(TODAY)
    assert start.astimezone(UTC) == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert end - start == timedelta(days=1)


def _run() -> svc.RunRow:
    return svc.RunRow(
        id=uuid.UUID(int=5),
        source="psp",
        report_date=TODAY,
        format="CSV",
        report_sha256="ab" * 32,
        window_start=datetime(2026, 11, 28, 3, tzinfo=UTC),
        window_end=datetime(2026, 11, 29, 3, tzinfo=UTC),
        line_count=4,
        transfer_count=3,
        duplicate_line_count=0,
        matched_count=1,
        missing_in_ledger_count=2,
        missing_in_report_count=3,
        amount_mismatch_count=4,
        totals={},
        created_by="u1",
        created_at=datetime(2026, 11, 29, 1, tzinfo=UTC),
    )


def test_run_and_item_messages() -> None:
    msg = reconciliation_message(_run())
    assert msg.name == f"reconciliations/{uuid.UUID(int=5)}"
    assert (msg.report_date, msg.report_sha256) == ("2026-11-28", "ab" * 32)
    assert (
        msg.matched_count,
        msg.missing_in_ledger_count,
        msg.missing_in_report_count,
        msg.amount_mismatch_count,
    ) == (1, 2, 3, 4)
    t1, t2 = uuid.UUID(int=8), uuid.UUID(int=9)
    item = item_message(
        svc.ItemRow(
            uuid.UUID(int=5),
            3,
            "MATCHED",
            "AGGREGATE",
            "r",
            [4, 7],
            ["E4", "E7"],
            [t1, t2],
            150,
            "BRL",
            150,
            "BRL",
            None,
        )
    )
    assert item.name == f"reconciliations/{uuid.UUID(int=5)}/items/3"
    assert item.status == ledger_pb2.MATCH_STATUS_MATCHED
    assert item.report_line == 4
    assert list(item.transfers) == [f"transfers/{t1}", f"transfers/{t2}"]
    assert (item.report_amount.minor_units, item.ledger_amount.currency_code) == (150, "BRL")
    missing = item_message(
        svc.ItemRow(
            uuid.UUID(int=5),
            4,
            "MISSING_IN_REPORT",
            "NO_LINE",
            "r",
            [],
            [],
            [t1],
            None,
            None,
            9,
            "BRL",
            None,
        )
    )
    assert missing.report_line == 0 and not missing.HasField("report_amount")
    assert missing.status == ledger_pb2.MATCH_STATUS_MISSING_IN_REPORT
