"""Due-soon and overdue notices of a caught-up accrual range (charges.notices):
the same notices, on the same days, as a job that ran every day."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.loans.domain.calendar import next_business_day
from services.loans.domain.charges import (
    DUE_SOON_DAYS,
    Bucket,
    Installment,
    Notice,
    bucket_for,
    notices,
)
from tests.unit.loans.test_loans_charges import D0
from tests.unit.loans.test_loans_charges import installments as price_installments


def installments(n: int) -> list[Installment]:
    return price_installments(5_000_00, n)


def paid(inst: Installment) -> Installment:
    return replace(inst, interest_due=0, principal_due=0)


def daily(
    insts: list[Installment], first: date, last: date
) -> tuple[list[Notice], dict[int, Bucket], set[int]]:
    """The job run once a day from `first` to `last`, carrying what it told."""
    buckets: dict[int, Bucket] = {}
    sent: set[int] = set()
    out: list[Notice] = []
    day = first
    while day <= last:
        told = notices(insts, day, day, buckets, sent)
        out.extend(told)
        sent |= {n.number for n in told if not n.overdue}
        buckets = {i.number: bucket_for(i.days_past_due(day)) for i in insts}
        day += timedelta(days=1)
    return out, buckets, sent


def test_a_catch_up_over_a_due_date_still_says_due_soon_and_overdue() -> None:
    [inst] = installments(1)
    due = inst.due_date
    grace_end = next_business_day(due)
    # Before: judged on the last day only, a run from 5 days before the due date
    # to 10 days after it sent no "due soon" (the due date was behind it).
    got = notices([inst], due - timedelta(days=5), due + timedelta(days=10), {}, set())
    assert got == [
        Notice(1, due - timedelta(days=DUE_SOON_DAYS), overdue=False),
        Notice(1, grace_end + timedelta(days=1), overdue=True, bucket=Bucket.DPD_1_30),
    ]


def test_a_long_catch_up_tells_each_bucket_once() -> None:
    [inst] = installments(1)
    due = inst.due_date
    got = notices([inst], due + timedelta(days=1), due + timedelta(days=95), {}, {1})
    assert [(n.bucket, (n.day - due).days) for n in got if n.overdue] == [
        (Bucket.DPD_1_30, (next_business_day(due) - due).days + 1),
        (Bucket.DPD_31_60, 31),
        (Bucket.DPD_61_90, 61),
        (Bucket.DPD_90_PLUS, 91),
    ]
    assert not [n for n in got if not n.overdue]  # "due soon" was sent before


def test_what_was_told_before_is_not_told_again_and_settled_is_never_told() -> None:
    insts = installments(2)
    due1, due2 = insts[0].due_date, insts[1].due_date
    first, last = due1 + timedelta(days=45), due1 + timedelta(days=70)
    told = {1: Bucket.DPD_31_60, 2: bucket_for(insts[1].days_past_due(first - timedelta(days=1)))}
    assert told[2] == Bucket.DPD_1_30
    assert notices(insts, first, last, told, {1, 2}) == [
        Notice(1, due1 + timedelta(days=61), overdue=True, bucket=Bucket.DPD_61_90),
        Notice(2, due2 + timedelta(days=31), overdue=True, bucket=Bucket.DPD_31_60),
    ]
    assert notices([paid(i) for i in insts], D0, last, {}, set()) == []


@st.composite
def ranges(draw: st.DrawFn) -> tuple[list[Installment], date, date, date]:
    insts = installments(draw(st.integers(min_value=1, max_value=6)))
    insts = [paid(i) if draw(st.booleans()) else i for i in insts]
    span = (insts[-1].due_date - D0).days + 120
    a = D0 + timedelta(days=draw(st.integers(min_value=0, max_value=span)))
    b = a + timedelta(days=draw(st.integers(min_value=0, max_value=150)))
    c = b + timedelta(days=draw(st.integers(min_value=1, max_value=150)))
    return insts, a, b, c


@settings(max_examples=150, deadline=None)
@given(ranges())
def test_a_caught_up_range_tells_what_daily_runs_would(
    data: tuple[list[Installment], date, date, date],
) -> None:
    insts, first, mid, last = data
    once = notices(insts, first, last, {}, set())
    every_day, _, _ = daily(insts, first, last)
    assert once == every_day
    # Each notice at most once per installment and kind (due soon; each bucket).
    kinds = [(n.number, n.overdue, n.bucket) for n in once]
    assert len(kinds) == len(set(kinds))
    assert all(n.bucket != Bucket.CURRENT for n in once if n.overdue)
    assert all(first <= n.day <= last for n in once)
    # Split in two runs, the second starting from what the first told: the same.
    head = notices(insts, first, mid, {}, set())
    buckets = {i.number: bucket_for(i.days_past_due(mid)) for i in insts}
    sent = {n.number for n in head if not n.overdue}
    assert head + notices(insts, mid + timedelta(days=1), last, buckets, sent) == once
