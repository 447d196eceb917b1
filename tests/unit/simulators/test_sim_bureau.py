"""Bureau simulator: deterministic scores, fixed CPFs, validation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simulators.bureau.app import make_app


@pytest.fixture
async def bureau() -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(make_app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _score(client: TestClient, cpf: str) -> tuple[int, dict]:
    async with client.get(f"/v1/scores/{cpf}") as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("cpf", "score", "records"),
    [
        ("11144477735", 820, 0),
        ("52998224725", 610, 1),
        ("12345678909", 480, 2),
        ("98765432100", 350, 3),
        ("24681357928", 500, 0),
        ("13579246828", 760, 0),
        ("31415926590", 950, 0),
        ("27182818205", 120, 5),
    ],
)
async def test_fixed_cpfs(bureau: TestClient, cpf: str, score: int, records: int) -> None:
    status, body = await _score(bureau, cpf)
    assert status == 200
    assert body["cpf"] == cpf and body["score"] == score
    assert len(body["negative_records"]) == records
    for record in body["negative_records"]:
        assert set(record) == {"type", "amount", "creditor", "date"}
        assert float(record["amount"]) > 0


async def test_deterministic_and_formatted_cpf_accepted(bureau: TestClient) -> None:
    first = await _score(bureau, "30000000205")
    again = await _score(bureau, "30000000205")
    formatted = await _score(bureau, "300.000.002-05")
    assert first == again == formatted
    other = TestClient(TestServer(make_app()))
    await other.start_server()
    try:
        assert await _score(other, "30000000205") == first
    finally:
        await other.close()


async def test_unknown_cpf_gets_thin_generated_profile(bureau: TestClient) -> None:
    for base in ("200000001", "400000003", "500000004", "600000005"):
        from services.brazil.documents import cpf_check_digits

        cpf = base + cpf_check_digits(base)
        status, body = await _score(bureau, cpf)
        assert status == 200
        assert 350 <= body["score"] <= 700
        assert len(body["negative_records"]) <= 1
        assert body["updated_at"].endswith("Z")


@pytest.mark.parametrize("cpf", ["11144477736", "00000000000", "123", "1114447773a", "9" * 40])
async def test_invalid_cpf_is_400(bureau: TestClient, cpf: str) -> None:
    status, body = await _score(bureau, cpf)
    assert status == 400
    assert body["error"]["code"] == "INVALID_CPF"
