"""Matching rules of reconciliation (docs/PSP_SETTLEMENT_REPORT.md "Matching rules")."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.reconciliation import (
    LedgerMovement,
    MatchItem,
    MatchRule,
    MatchStatus,
    ReportLine,
    match,
    summarize,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MATCHED = MatchStatus.MATCHED
MISSING_IN_LEDGER = MatchStatus.MISSING_IN_LEDGER
MISSING_IN_REPORT = MatchStatus.MISSING_IN_REPORT
AMOUNT_MISMATCH = MatchStatus.AMOUNT_MISMATCH


def line(n: int, ref: str, amount: int, *, psp: str | None = None, cur: str = "BRL") -> ReportLine:
    return ReportLine(n, psp or f"E{n}", ref, amount, cur, "PIX_OUT", T0)


def mv(tid: str, ref: str, amount: int, *, minute: int = 0, cur: str = "BRL") -> LedgerMovement:
    return LedgerMovement(tid, ref, amount, cur, T0 + timedelta(minutes=minute))


def shape(items: list[MatchItem]) -> list[tuple[str, str, tuple[int, ...], tuple[str, ...]]]:
    return [(i.status.value, i.rule.value, i.report_lines, i.transfer_ids) for i in items]


def test_one_to_one_match_and_mismatch() -> None:
    items = match(
        [line(2, "r1", 100), line(3, "r2", 100)], [mv("t1", "r1", 100), mv("t2", "r2", 90)]
    )
    assert shape(items) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("t1",)),
        ("AMOUNT_MISMATCH", "SUM_DIFFERS", (3,), ("t2",)),
    ]
    assert (items[1].report_amount, items[1].ledger_amount) == (100, 90)


def test_missing_on_either_side() -> None:
    items = match([line(2, "theirs", 100)], [mv("t1", "ours", 100)])
    assert shape(items) == [
        ("MISSING_IN_LEDGER", "NO_TRANSFER", (2,), ()),
        ("MISSING_IN_REPORT", "NO_LINE", (), ("t1",)),
    ]
    assert items[0].ledger_amount is None and items[1].report_amount is None


def test_one_line_settles_several_transfers() -> None:
    items = match([line(2, "r", 150)], [mv("t1", "r", 100), mv("t2", "r", 50, minute=1)])
    assert shape(items) == [("MATCHED", "AGGREGATE", (2,), ("t1", "t2"))]
    assert items[0].report_amount == items[0].ledger_amount == 150


def test_partial_settlements_of_one_transfer() -> None:
    items = match([line(2, "r", 60), line(5, "r", 40)], [mv("t1", "r", 100)])
    assert shape(items) == [("MATCHED", "AGGREGATE", (2, 5), ("t1",))]


def test_exact_pairs_take_precedence_over_sums() -> None:
    items = match(
        [line(2, "r", 100), line(3, "r", 50)], [mv("t1", "r", 50), mv("t2", "r", 100, minute=1)]
    )
    assert shape(items) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("t2",)),
        ("MATCHED", "ONE_TO_ONE", (3,), ("t1",)),
    ]


def test_the_oldest_transfer_of_the_amount_pairs_first() -> None:
    items = match([line(2, "r", 100)], [mv("late", "r", 100, minute=5), mv("early", "r", 100)])
    assert shape(items) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("early",)),
        ("MISSING_IN_REPORT", "NO_LINE", (), ("late",)),
    ]


def test_leftovers_after_pairs() -> None:
    # A second settlement of the same payment under another PSP id.
    assert shape(match([line(2, "r", 100), line(3, "r", 100)], [mv("t1", "r", 100)])) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("t1",)),
        ("MISSING_IN_LEDGER", "NO_TRANSFER", (3,), ()),
    ]
    # A pair, then what is left disagrees.
    assert shape(
        match([line(2, "r", 100), line(3, "r", 30)], [mv("t1", "r", 100), mv("t2", "r", 50)])
    ) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("t1",)),
        ("AMOUNT_MISMATCH", "SUM_DIFFERS", (3,), ("t2",)),
    ]
    # A pair, then the rest sums up.
    assert shape(
        match(
            [line(2, "r", 100), line(3, "r", 100)],
            [mv("a", "r", 100), mv("b", "r", 50, minute=1), mv("c", "r", 50, minute=2)],
        )
    ) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("a",)),
        ("MATCHED", "AGGREGATE", (3,), ("b", "c")),
    ]


def test_duplicate_psp_reference_is_flagged_and_kept_out_of_the_group() -> None:
    items = match([line(2, "r", 100, psp="E1"), line(3, "r", 100, psp="E1")], [mv("t1", "r", 100)])
    assert shape(items) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("t1",)),
        ("MISSING_IN_LEDGER", "DUPLICATE_LINE", (3,), ()),
    ]
    assert items[1].duplicate_of == 2
    assert summarize(items).duplicate_line_count == 1


def test_currency_difference_is_an_amount_mismatch() -> None:
    items = match([line(2, "r", 100, cur="USD")], [mv("t1", "r", 100)])
    assert shape(items) == [("AMOUNT_MISMATCH", "CURRENCY_DIFFERS", (2,), ("t1",))]
    assert (items[0].report_currency, items[0].ledger_currency) == ("USD", "BRL")


def test_mixed_currencies_in_one_reference_match_per_currency() -> None:
    items = match(
        [line(2, "r", 100), line(3, "r", 7, cur="USD")],
        [mv("t1", "r", 100), mv("t2", "r", 7, cur="USD")],
    )
    assert shape(items) == [
        ("MATCHED", "ONE_TO_ONE", (2,), ("t1",)),
        ("MATCHED", "ONE_TO_ONE", (3,), ("t2",)),
    ]


def test_item_order_is_report_lines_then_ledger_by_time() -> None:
    items = match(
        [line(9, "z", 1), line(2, "a", 1)],
        [mv("t-late", "x", 1, minute=9), mv("t-early", "y", 1, minute=1)],
    )
    assert [i.report_lines or i.transfer_ids for i in items] == [
        (2,),
        (9,),
        ("t-early",),
        ("t-late",),
    ]


def test_summary_counts_items_and_totals_per_currency() -> None:
    items = match(
        [line(2, "r1", 100), line(3, "r2", 100), line(4, "r3", 5, cur="USD")],
        [mv("t1", "r1", 100), mv("t2", "r2", 90), mv("t3", "r4", 1)],
    )
    summary = summarize(items)
    assert summary.counts == {
        MATCHED: 1,
        MISSING_IN_LEDGER: 1,
        MISSING_IN_REPORT: 1,
        AMOUNT_MISMATCH: 1,
    }
    assert (summary.line_count, summary.transfer_count) == (3, 3)
    brl, usd = summary.totals["BRL"], summary.totals["USD"]
    assert (brl.report_amount, brl.ledger_amount, brl.matched_amount) == (200, 191, 100)
    assert (usd.report_amount, usd.ledger_amount, usd.matched_amount) == (5, 0, 0)


def test_empty_inputs() -> None:
    assert match([], []) == []
    assert summarize([]).counts == dict.fromkeys(MatchStatus, 0)


# --- properties -------------------------------------------------------------------------

# Few references and amounts, so that groups collide and every rule fires.
REFS = st.sampled_from(["r1", "r2", "r3", "r4", ""])
AMOUNTS = st.sampled_from([10, 20, 30, 50, 100])
CURRENCIES = st.sampled_from(["BRL", "BRL", "BRL", "USD"])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[ReportLine], list[LedgerMovement]]:
    raw_lines = draw(
        st.lists(st.tuples(REFS, AMOUNTS, CURRENCIES, st.integers(0, 30)), max_size=25)
    )
    lines = [
        # psp ids from a small pool: some lines are duplicates
        ReportLine(n, f"E{psp}", ref or "r0", amount, cur, "PIX_OUT", T0)
        for n, (ref, amount, cur, psp) in enumerate(raw_lines, start=2)
    ]
    raw_mv = draw(st.lists(st.tuples(REFS, AMOUNTS, CURRENCIES, st.integers(0, 60)), max_size=25))
    movements = [
        LedgerMovement(f"t{i}", ref, amount, cur, T0 + timedelta(minutes=minute))
        for i, (ref, amount, cur, minute) in enumerate(raw_mv)
    ]
    return draw(st.permutations(lines)), movements


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_every_line_and_transfer_lands_in_exactly_one_item(
    scenario: tuple[list[ReportLine], list[LedgerMovement]],
) -> None:
    lines, movements = scenario
    items = match(lines, movements)
    line_uses = Counter(n for i in items for n in i.report_lines)
    transfer_uses = Counter(t for i in items for t in i.transfer_ids)
    assert line_uses == Counter(ln.line for ln in lines)
    assert transfer_uses == Counter(m.transfer_id for m in movements)
    assert all(count == 1 for count in [*line_uses.values(), *transfer_uses.values()])


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_totals_reconcile_and_statuses_keep_their_meaning(
    scenario: tuple[list[ReportLine], list[LedgerMovement]],
) -> None:
    lines, movements = scenario
    items = match(lines, movements)
    summary = summarize(items)
    for currency in {ln.currency for ln in lines} | {m.currency for m in movements}:
        totals = summary.totals[currency]
        assert totals.report_amount == sum(ln.amount for ln in lines if ln.currency == currency)
        assert totals.ledger_amount == sum(m.amount for m in movements if m.currency == currency)
        assert totals.matched_amount <= min(totals.report_amount, totals.ledger_amount)
    assert sum(summary.counts.values()) == len(items)
    for item in items:
        assert item.lines or item.movements
        # One reference per item, and every member carries it.
        assert {ln.external_reference for ln in item.lines} <= {item.external_reference}
        assert {m.external_reference for m in item.movements} <= {item.external_reference}
        if item.status is MATCHED:
            assert item.lines and item.movements
            assert item.report_amount == item.ledger_amount
            assert item.report_currency == item.ledger_currency
            assert {ln.currency for ln in item.lines} == {m.currency for m in item.movements}
        elif item.status is MISSING_IN_LEDGER:
            assert item.lines and not item.movements
        elif item.status is MISSING_IN_REPORT:
            assert item.movements and not item.lines
        else:
            assert item.lines and item.movements
            assert (item.report_amount, item.report_currency) != (
                item.ledger_amount,
                item.ledger_currency,
            )
        if item.rule is MatchRule.DUPLICATE_LINE:
            assert item.duplicate_of is not None and item.duplicate_of < item.report_lines[0]


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_a_report_made_from_the_ledger_matches_completely(
    scenario: tuple[list[ReportLine], list[LedgerMovement]],
) -> None:
    _, movements = scenario
    lines = [
        ReportLine(n, f"E{n}", m.external_reference or "r0", m.amount, m.currency, "PIX_OUT", T0)
        for n, m in enumerate(movements, start=2)
    ]
    referenced = [
        LedgerMovement(
            m.transfer_id, m.external_reference or "r0", m.amount, m.currency, m.created_at
        )
        for m in movements
    ]
    items = match(lines, referenced)
    assert all(i.status is MATCHED for i in items)
    assert summarize(items).counts[MATCHED] == len(items)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_matching_is_deterministic_whatever_the_input_order(
    scenario: tuple[list[ReportLine], list[LedgerMovement]],
) -> None:
    lines, movements = scenario
    assert shape(match(lines, movements)) == shape(
        match(list(reversed(lines)), list(reversed(movements)))
    )
