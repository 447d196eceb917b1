"""PIX keys, endToEndId, txid, limits, fees and derived ids."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.pix import (
    TXID,
    KeyType,
    end_to_end_id,
    is_end_to_end_id,
    normalize_key,
    txid_for,
)
from services.payments.domain.rules import (
    TRANSFER_PURPOSES,
    Limits,
    fee_for,
    limit_violation,
    night_of,
    payment_id_for,
    payout_return_id_for,
    transfer_id,
)


@pytest.mark.parametrize(
    ("kt", "raw", "expected"),
    [
        (KeyType.CPF, "111.444.777-35", "11144477735"),
        (KeyType.CPF, "111.444.777-36", None),
        (KeyType.CNPJ, "11.222.333/0001-81", "11222333000181"),
        (KeyType.PHONE, "+5511987654321", "+5511987654321"),
        (KeyType.PHONE, "11987654321", None),
        (KeyType.EMAIL, "Ana@Example.com", "ana@example.com"),
        (KeyType.EMAIL, "not-an-email", None),
        (
            KeyType.EVP,
            "0F6F1A52-7C4E-4D1B-9A3E-2B5C8D7E9F10",
            "0f6f1a52-7c4e-4d1b-9a3e-2b5c8d7e9f10",
        ),
        (KeyType.EVP, "0f6f1a52-7c4e-1d1b-9a3e-2b5c8d7e9f10", None),  # not v4
    ],
)
def test_keys(kt: KeyType, raw: str, expected: str | None) -> None:
    assert normalize_key(kt, raw) == expected


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        min_size=11,
        max_size=11,
    ),
)
def test_end_to_end_id_shape(when: datetime, suffix: str) -> None:
    e2e = end_to_end_id("12345678", when, suffix)
    assert len(e2e) == 32 and e2e[0] == "E" and e2e[1:9] == "12345678"
    assert e2e[9:21] == when.strftime("%Y%m%d%H%M")
    assert is_end_to_end_id(e2e)


def test_end_to_end_id_rejects() -> None:
    assert not is_end_to_end_id("E1234567820261328140300000000001")  # month 13
    with pytest.raises(ValueError):
        end_to_end_id("1234567", datetime.now(UTC), "A" * 11)


@given(st.uuids())
def test_txid_derived_and_valid(u: uuid.UUID) -> None:
    assert TXID.fullmatch(txid_for(u)) and txid_for(u) == txid_for(u)


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
)
def test_limits(amount: int, used: int) -> None:
    limits = Limits(per_payment=500_000, daily=2_000_000, nightly=100_000)
    reason = limit_violation(amount, limits, used)
    if amount > limits.per_payment:
        assert reason == "PAYMENT_LIMIT_EXCEEDED"
    elif used + amount > limits.daily:
        assert reason == "DAILY_LIMIT_EXCEEDED"
    else:
        assert reason is None


SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize(
    ("wall", "night"),
    [
        ("2026-03-05T19:59:59", None),
        ("2026-03-05T20:00:00", date(2026, 3, 5)),
        ("2026-03-05T23:59:59", date(2026, 3, 5)),
        ("2026-03-06T00:00:00", date(2026, 3, 5)),
        ("2026-03-06T05:59:59", date(2026, 3, 5)),
        ("2026-03-06T06:00:00", None),
        ("2026-03-06T12:00:00", None),
        ("2027-01-01T02:00:00", date(2026, 12, 31)),  # a night spans the new year
    ],
)
def test_night_period_boundaries(wall: str, night: date | None) -> None:
    assert night_of(datetime.fromisoformat(wall).replace(tzinfo=SAO_PAULO)) == night


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)))
def test_a_night_runs_from_20h_to_6h_and_is_named_by_its_first_day(naive: datetime) -> None:
    local = naive.replace(tzinfo=SAO_PAULO)
    night = night_of(local)
    clock = naive.time()
    if clock.hour >= 20:
        assert night == naive.date()
    elif clock.hour < 6:
        assert night == naive.date() - timedelta(days=1)
    else:
        assert night is None
    # The same instant seen from UTC belongs to the same night.
    assert night_of(local.astimezone(UTC).astimezone(SAO_PAULO)) == night


def test_fees_and_ids() -> None:
    assert fee_for("PIX", 100) == 0 and fee_for("TED", 10_000) == 390
    a = payment_id_for("u1", "k1")
    assert a == payment_id_for("u1", "k1") != payment_id_for("u2", "k1")
    # Every purpose gives the payment another transfer id.
    assert len({transfer_id(a, p) for p in TRANSFER_PURPOSES}) == len(TRANSFER_PURPOSES)
    # One credit per returned payout's devolução: the same id each time it is
    # notified, another for another return or another payment.
    r = payout_return_id_for(a, "D1")
    assert r == payout_return_id_for(a, "D1")
    assert (
        len(
            {
                r,
                payout_return_id_for(a, "D2"),
                payout_return_id_for(payment_id_for("u2", "k1"), "D1"),
            }
        )
        == 3
    )
    assert transfer_id(r, "return_credit") not in {transfer_id(a, p) for p in TRANSFER_PURPOSES}
