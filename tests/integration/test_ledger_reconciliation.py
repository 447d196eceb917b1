"""Reconciliation against the real ledger process (docs/PSP_SETTLEMENT_REPORT.md).

Transfers are booked through CreateTransfers with external references; a PSP
report with matched, mismatched, missing and duplicate lines is imported with
CreateReconciliation; the items and counts are read back through the API.

The stack's database outlives a test session and other tests book transfers
on PSP clearing too, so every check is about this test's own references (a
fresh prefix per session); run-wide counts are checked against the items the
API lists, not against fixed numbers.

Run beside other sessions with:
    FINTECH_TEST_PROFILE=ledgerrec FINTECH_TEST_PORT_BASE=24000 \
        python -m pytest tests/integration/test_ledger_reconciliation.py
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fintech.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain.reconciliation import ReportFormat, ReportLine, render_report
from services.platform.errors import ErrorDetails, details_from_rpc_error
from services.platform.service_token import ServiceTokenSigner
from services.platform.settings import DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER
from tests.support.tokens import mint_token as user_token

pytestmark = pytest.mark.integration

CALL_TIMEOUT_S = 30.0
SERVING_DEADLINE_S = 60.0
L = ledger_pb2
PSP_CLEARING = "accounts/00000000-0000-4000-8000-000000000101"
BANK_CASH = "accounts/00000000-0000-4000-8000-000000000103"
FEE_REVENUE = "accounts/00000000-0000-4000-8000-000000000104"
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@dataclass
class Client:
    stub: ledger_pb2_grpc.LedgerServiceStub
    service_token: str
    backoffice_token: str
    user_token: str
    pg_admin_url: str

    def meta(self, token: str, *, mutating: bool = False) -> tuple[tuple[str, str], ...]:
        pairs = [("authorization", f"Bearer {token}")]
        if mutating:
            pairs.append(("idempotency-key", uuid.uuid4().hex))
        return tuple(pairs)

    async def import_report(
        self, content: bytes, fmt: int, report_date: str, *, token: str | None = None
    ) -> ledger_pb2.Reconciliation:
        return await self.stub.CreateReconciliation(
            L.CreateReconciliationRequest(
                source="psp",
                report_date=report_date,
                format=fmt,  # type: ignore[arg-type]
                content=content,
            ),
            metadata=self.meta(token or self.service_token, mutating=True),
            timeout=CALL_TIMEOUT_S,
        )

    async def items(
        self, name: str, status: int = 0, page_size: int = 7
    ) -> list[ledger_pb2.ReconciliationItem]:
        """Every item of a run, page by page (small pages: the keyset paging is exercised)."""
        found: list[ledger_pb2.ReconciliationItem] = []
        token = ""
        for _ in range(10_000):
            page = await self.stub.ListReconciliationItems(
                L.ListReconciliationItemsRequest(
                    parent=name,
                    status=status,  # type: ignore[arg-type]
                    page_size=page_size,
                    page_token=token,
                ),
                metadata=self.meta(self.backoffice_token),
                timeout=CALL_TIMEOUT_S,
            )
            assert len(page.items) <= page_size
            found.extend(page.items)
            token = page.next_page_token
            if not token:
                return found
        raise AssertionError("pagination did not end")


async def rpc_error(call: Any) -> ErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return details_from_rpc_error(exc.value)


@pytest.fixture(scope="module")
async def client(stack: Any) -> AsyncIterator[Client]:
    signer = ServiceTokenSigner.from_files(
        stack.secrets_dir / "jwt_signing_key.pem",
        stack.secrets_dir / "jwks.json",
        service="test",
        issuer=DEFAULT_JWT_ISSUER,
        audience=DEFAULT_JWT_AUDIENCE,
    )
    async with grpc.aio.insecure_channel(stack.grpc_targets["ledger"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + SERVING_DEADLINE_S
        while True:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, "ledger not SERVING"
            await asyncio.sleep(0.5)
        yield Client(
            ledger_pb2_grpc.LedgerServiceStub(channel),
            signer.token(),
            user_token(stack.secrets_dir, ["backoffice"]),
            user_token(stack.secrets_dir, ["user"]),
            stack.infra.pg_admin_url,
        )


def transfer(
    debit: str, credit: str, amount: int, ref: str, *, kind: int = L.TRANSFER_KIND_POSTED
) -> ledger_pb2.Transfer:
    return L.Transfer(
        name=f"transfers/{uuid.uuid4()}",
        debit_account=debit,
        credit_account=credit,
        amount=money_pb2.Money(currency_code="BRL", minor_units=amount),
        kind=kind,  # type: ignore[arg-type]
        code="PIX_PAYOUT",
        external_reference=ref,
        description="reconciliation test",
    )


async def book(client: Client, transfers: Sequence[ledger_pb2.Transfer]) -> None:
    response = await client.stub.CreateTransfers(
        L.CreateTransfersRequest(transfers=transfers),
        metadata=client.meta(client.service_token, mutating=True),
        timeout=CALL_TIMEOUT_S,
    )
    assert [r.status.code for r in response.results] == [0] * len(transfers), response


@dataclass(frozen=True)
class Scenario:
    prefix: str
    transfers: dict[str, list[str]]  # reference -> transfer names booked under it
    lines: list[ReportLine]
    report_date: str


@pytest.fixture(scope="module")
async def scenario(client: Client) -> Scenario:
    p = f"rec-{uuid.uuid4().hex[:12]}-"
    booked: dict[str, list[str]] = {}

    def out(ref: str, amount: int) -> ledger_pb2.Transfer:
        # A payout: money leaves through PSP clearing.
        t = transfer(PSP_CLEARING, BANK_CASH, amount, p + ref)
        booked.setdefault(ref, []).append(t.name)
        return t

    pending = transfer(BANK_CASH, PSP_CLEARING, 8000, p + "g", kind=L.TRANSFER_KIND_PENDING)
    await book(
        client,
        [
            out("a", 10000),  # matched one-to-one
            out("b", 5000),  # the PSP says 4000: amount mismatch
            out("d", 3000),  # not in the report
            out("e", 1000),  # with e2: one line settles both
            out("e", 2000),
            out("f", 6000),  # two partial settlements
            # Not a PSP movement: never compared, whatever its reference.
            transfer(BANK_CASH, FEE_REVENUE, 900, p + "h"),
            pending,
        ],
    )
    # The reservation posted for less, by a POST_PENDING without a reference:
    # it inherits the reservation's, and only the posting is compared.
    post = L.Transfer(
        name=f"transfers/{uuid.uuid4()}",
        kind=L.TRANSFER_KIND_POST_PENDING,
        pending_transfer=pending.name,
        amount=money_pb2.Money(currency_code="BRL", minor_units=7000),
        code="PIX_RECEIPT",
    )
    await book(client, [post])
    booked["g"] = [post.name]
    settled = datetime.now(UTC)

    def line(psp: str, ref: str, amount: int) -> ReportLine:
        return ReportLine(0, p + psp, p + ref, amount, "BRL", "PIX_OUT", settled)

    lines = [
        line("E-a", "a", 10000),  # file line 2
        line("E-b", "b", 4000),  # 3
        line("E-c", "c", 777),  # 4: nothing of ours
        line("E-e", "e", 3000),  # 5
        line("E-f1", "f", 2500),  # 6
        line("E-f2", "f", 3500),  # 7
        line("E-g", "g", 7000),  # 8
        line("E-a", "a", 10000),  # 9: the PSP repeats line 2
    ]
    return Scenario(p, booked, lines, datetime.now(SAO_PAULO).date().isoformat())


def own(items: Sequence[ledger_pb2.ReconciliationItem], prefix: str) -> dict[str, list[Any]]:
    """This test's items by reference suffix: [(status, report_line, report, ledger, transfers)]."""
    mine: dict[str, list[Any]] = {}
    for item in items:
        if not item.external_reference.startswith(prefix):
            continue
        mine.setdefault(item.external_reference.removeprefix(prefix), []).append(
            (
                L.MatchStatus.Name(item.status).removeprefix("MATCH_STATUS_"),
                item.report_line,
                item.report_amount.minor_units if item.HasField("report_amount") else None,
                item.ledger_amount.minor_units if item.HasField("ledger_amount") else None,
                sorted(item.transfers),
            )
        )
    return mine


async def test_report_is_matched_stored_and_listed(client: Client, scenario: Scenario) -> None:
    content = render_report(scenario.lines, ReportFormat.CSV)
    run = await client.import_report(content, L.REPORT_FORMAT_CSV, scenario.report_date)
    assert run.name.startswith("reconciliations/")
    assert (run.source, run.report_date) == ("psp", scenario.report_date)
    assert len(run.report_sha256) == 64

    items = await client.items(run.name)
    t = scenario.transfers
    assert own(items, scenario.prefix) == {
        "a": [
            ("MATCHED", 2, 10000, 10000, t["a"]),
            ("MISSING_IN_LEDGER", 9, 10000, None, []),  # the duplicate line
        ],
        "b": [("AMOUNT_MISMATCH", 3, 4000, 5000, t["b"])],
        "c": [("MISSING_IN_LEDGER", 4, 777, None, [])],
        "e": [("MATCHED", 5, 3000, 3000, sorted(t["e"]))],
        "f": [("MATCHED", 6, 6000, 6000, t["f"])],
        "g": [("MATCHED", 8, 7000, 7000, t["g"])],
        "d": [("MISSING_IN_REPORT", 0, None, 3000, t["d"])],
    }
    # Item names are stable and numbered in order.
    numbers = [int(i.name.rsplit("/", 1)[1]) for i in items]
    assert numbers == list(range(1, len(items) + 1))
    assert all(i.name.startswith(run.name + "/items/") for i in items)

    # The counts are the items per status; the status filter lists exactly those.
    got = await client.stub.GetReconciliation(
        L.GetReconciliationRequest(name=run.name),
        metadata=client.meta(client.backoffice_token),
        timeout=CALL_TIMEOUT_S,
    )
    assert got == run
    for status, count in (
        (L.MATCH_STATUS_MATCHED, run.matched_count),
        (L.MATCH_STATUS_MISSING_IN_LEDGER, run.missing_in_ledger_count),
        (L.MATCH_STATUS_MISSING_IN_REPORT, run.missing_in_report_count),
        (L.MATCH_STATUS_AMOUNT_MISMATCH, run.amount_mismatch_count),
    ):
        filtered = await client.items(run.name, status, page_size=3)
        assert len(filtered) == count
        assert {i.status for i in filtered} <= {status}
    # Other tests' transfers on PSP clearing may only add MISSING_IN_REPORT items.
    assert (run.matched_count, run.missing_in_ledger_count, run.amount_mismatch_count) == (4, 2, 1)
    assert run.missing_in_report_count >= 1

    listed = await client.stub.ListReconciliations(
        L.ListReconciliationsRequest(page_size=100),
        metadata=client.meta(client.backoffice_token),
        timeout=CALL_TIMEOUT_S,
    )
    assert run.name in [r.name for r in listed.reconciliations]
    times = [r.create_time.ToDatetime() for r in listed.reconciliations]
    assert times == sorted(times, reverse=True)

    # Importing the same bytes again returns the first run, unchanged.
    again = await client.import_report(content, L.REPORT_FORMAT_CSV, scenario.report_date)
    assert again == run
    # The same bytes presented as another day's report are refused.
    yesterday = (datetime.fromisoformat(scenario.report_date) - timedelta(days=1)).date()
    error = await rpc_error(
        client.import_report(content, L.REPORT_FORMAT_CSV, yesterday.isoformat())
    )
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REPORT_ALREADY_IMPORTED")
    assert error.metadata["reconciliation"] == run.name

    # Stored as received, with its checksum, and audited.
    stored = await asyncio.to_thread(stored_run, client.pg_admin_url, run.name)
    assert bytes(stored["content"]) == content
    assert stored["report_sha256"] == run.report_sha256 == hashlib.sha256(content).hexdigest()
    assert (stored["line_count"], stored["duplicate_line_count"]) == (8, 1)
    assert stored["audit_actions"] == ["reconciliation.created"]


def stored_run(admin_url: str, name: str) -> dict[str, Any]:
    run_id = name.removeprefix("reconciliations/")
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "SELECT content, report_sha256, line_count, duplicate_line_count"
            " FROM ledger.reconciliations WHERE id = %s",
            (run_id,),
        ).fetchone()
        assert row is not None
        actions = conn.execute(
            "SELECT action FROM ledger.audit_logs WHERE entity = 'reconciliation'"
            " AND entity_id = %s",
            (run_id,),
        ).fetchall()
    return {
        "content": row[0],
        "report_sha256": row[1],
        "line_count": row[2],
        "duplicate_line_count": row[3],
        "audit_actions": [a[0] for a in actions],
    }


async def test_json_report_gives_the_same_result(client: Client, scenario: Scenario) -> None:
    content = render_report(scenario.lines, ReportFormat.JSON, report_date=scenario.report_date)
    run = await client.import_report(content, L.REPORT_FORMAT_JSON, scenario.report_date)
    mine = own(await client.items(run.name), scenario.prefix)
    # JSON numbers lines by position: the same lines shifted by the CSV header.
    assert [row[1] for row in mine["a"]] == [1, 8]
    assert mine["e"][0][0] == "MATCHED" and mine["d"][0][0] == "MISSING_IN_REPORT"


async def test_bad_report_names_line_and_field(client: Client, scenario: Scenario) -> None:
    content = (
        b"psp_reference,external_reference,amount,currency,type,settled_at\n"
        b"E1,r1,100,BRL,PIX_OUT,2026-11-28T10:00:00Z\n"
        b"E2,r2,1.50,BRL,PIX_OUT,2026-11-28T10:00:00Z\n"
    )
    error = await rpc_error(
        client.import_report(content, L.REPORT_FORMAT_CSV, scenario.report_date)
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REPORT_INVALID")
    assert [field for field, _ in error.violations] == ["content.line[3].amount"]
    stated = json.dumps({"report_date": "2020-01-01", "lines": []}).encode()
    error = await rpc_error(
        client.import_report(stated, L.REPORT_FORMAT_JSON, scenario.report_date)
    )
    assert [field for field, _ in error.violations] == ["content.report_date"]
    error = await rpc_error(client.import_report(b"x", 0, "2026-13-01"))
    assert {field for field, _ in error.violations} == {"format", "report_date"}


async def test_roles(client: Client, scenario: Scenario) -> None:
    content = render_report(scenario.lines[:1], ReportFormat.CSV)
    for call in (
        client.import_report(
            content, L.REPORT_FORMAT_CSV, scenario.report_date, token=client.user_token
        ),
        client.stub.ListReconciliations(
            L.ListReconciliationsRequest(), metadata=client.meta(client.user_token)
        ),
    ):
        error = await rpc_error(call)
        assert error.code is grpc.StatusCode.PERMISSION_DENIED
    # A backoffice operator may import too.
    run = await client.import_report(
        content, L.REPORT_FORMAT_CSV, scenario.report_date, token=client.backoffice_token
    )
    assert run.matched_count >= 1
    missing = f"reconciliations/{uuid.uuid4()}"
    error = await rpc_error(
        client.stub.GetReconciliation(
            L.GetReconciliationRequest(name=missing), metadata=client.meta(client.backoffice_token)
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "RECONCILIATION_NOT_FOUND")


async def test_a_report_at_the_line_limit_is_imported(client: Client, scenario: Scenario) -> None:
    """100,000 lines (the documented maximum) through gRPC, the parser and the item store."""
    from services.ledger.domain.reconciliation import MAX_REPORT_BYTES, MAX_REPORT_LINES

    settled = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    lines = [
        ReportLine(0, f"{tag}{i}", f"{tag}-{i}", 1 + i % 1000, "BRL", "PIX_IN", settled)
        for i in range(MAX_REPORT_LINES)
    ]
    content = render_report(lines, ReportFormat.CSV)
    assert len(content) <= MAX_REPORT_BYTES
    started = time.monotonic()
    run = await client.import_report(content, L.REPORT_FORMAT_CSV, scenario.report_date)
    elapsed = time.monotonic() - started
    assert run.missing_in_ledger_count == MAX_REPORT_LINES
    page = await client.stub.ListReconciliationItems(
        L.ListReconciliationItemsRequest(
            parent=run.name, status=L.MATCH_STATUS_MISSING_IN_LEDGER, page_size=5000
        ),
        metadata=client.meta(client.backoffice_token),
        timeout=CALL_TIMEOUT_S,
    )
    assert len(page.items) == 1000  # the documented page-size cap
    assert page.items[-1].report_line == 1001 and page.next_page_token
    print(f"reconciliation of {MAX_REPORT_LINES} lines: {elapsed:.1f} s")
    assert elapsed < CALL_TIMEOUT_S


async def test_concurrent_imports_of_one_report_make_one_run(
    client: Client, scenario: Scenario
) -> None:
    content = render_report(
        [
            ReportLine(
                0,
                f"{scenario.prefix}E-x",
                f"{scenario.prefix}a",
                1,
                "BRL",
                "FEE",
                datetime.now(UTC),
            )
        ],
        ReportFormat.CSV,
    )
    runs = await asyncio.gather(
        *(
            client.import_report(content, L.REPORT_FORMAT_CSV, scenario.report_date)
            for _ in range(6)
        )
    )
    assert len({r.name for r in runs}) == 1
    assert all(r == runs[0] for r in runs)
