"""Offline re-score: how would every customer's latest decision change under another model?

    python -m services.risk.rescore --model v2 [--database-url URL] [--examples 5]

Reads each customer's latest stored decision (inputs included), recomputes it
with the given scorecard version from those same inputs, and prints counts
per outcome transition (e.g. APPROVED -> DECLINED), band moves and a few
examples. Stores nothing: a new model is judged before it is activated.
`--model` takes a full version ("scorecard-v2") or its suffix ("v2").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from services.platform.db import Database
from services.risk import store
from services.risk.domain.scorecard import ScorecardModel, UnknownModelVersion, load_model
from services.risk.service import recompute

BATCH = 500
DEFAULT_MAX_CUSTOMERS = 1_000_000
MAX_EXAMPLES = 100


@dataclass(frozen=True, slots=True)
class Change:
    decision: str
    user: str
    from_outcome: str
    to_outcome: str
    from_band: str
    to_band: str
    from_score: int
    to_score: int


@dataclass
class Report:
    model_version: str
    customers: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    bands: Counter[tuple[str, str]] = field(default_factory=Counter)
    score_delta_total: int = 0
    examples: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(n for (a, b), n in self.transitions.items() if a != b)


def resolve_model(name: str) -> ScorecardModel:
    for candidate in (name, f"scorecard-{name}"):
        try:
            return load_model(candidate)
        except UnknownModelVersion:
            continue
    raise SystemExit(f"unknown model version {name!r}")


def compare(
    report: Report, rows: Iterable[store.DecisionRow], model: ScorecardModel, max_examples: int
) -> None:
    """Add each decision's would-be outcome under `model` to `report`."""
    for row in rows:
        again = recompute(row, model)
        report.customers += 1
        report.transitions[(row.outcome, again.outcome)] += 1
        report.bands[(row.band, again.band)] += 1
        report.score_delta_total += again.score - row.score
        moved = row.outcome != again.outcome or row.band != again.band
        if moved and len(report.examples) < max_examples:
            report.examples.append(
                Change(
                    decision=f"decisions/{row.id}",
                    user=f"users/{row.user_id}",
                    from_outcome=row.outcome,
                    to_outcome=again.outcome,
                    from_band=row.band,
                    to_band=again.band,
                    from_score=row.score,
                    to_score=again.score,
                )
            )


def render(report: Report, out: TextIO) -> None:
    print(f"model: {report.model_version}", file=out)
    print(f"customers: {report.customers}", file=out)
    print(f"outcome_changed: {report.changed}", file=out)
    mean = report.score_delta_total / report.customers if report.customers else 0.0
    print(f"mean_score_delta: {mean:.1f}", file=out)
    print("outcome transitions (stored -> rescored: count):", file=out)
    for (before, after), count in sorted(report.transitions.items()):
        print(f"  {before} -> {after}: {count}", file=out)
    print("band transitions:", file=out)
    for (before, after), count in sorted(report.bands.items()):
        if before != after:
            print(f"  {before} -> {after}: {count}", file=out)
    print("examples:", file=out)
    for c in report.examples:
        print(
            f"  {c.decision} {c.user}: {c.from_outcome}/{c.from_band}/{c.from_score}"
            f" -> {c.to_outcome}/{c.to_band}/{c.to_score}",
            file=out,
        )


async def rescore(
    db: Database, model: ScorecardModel, *, max_customers: int, max_examples: int
) -> Report:
    report = Report(model.version)
    after = ""
    while report.customers < max_customers:
        async with db.transaction() as conn:
            rows = await store.latest_decisions(
                conn, after, min(BATCH, max_customers - report.customers)
            )
        if not rows:
            break
        compare(report, rows, model, max_examples)
        after = rows[-1].user_id
    return report


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.risk.rescore", description=__doc__)
    parser.add_argument("--model", required=True, help="version to re-score with, e.g. v2")
    parser.add_argument("--database-url", default=os.environ.get("FINTECH_DATABASE_URL", ""))
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument("--max-customers", type=int, default=DEFAULT_MAX_CUSTOMERS)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or FINTECH_DATABASE_URL is required")
    if not 0 <= args.examples <= MAX_EXAMPLES:
        parser.error(f"--examples must be 0..{MAX_EXAMPLES}")
    if not 1 <= args.max_customers <= DEFAULT_MAX_CUSTOMERS:
        parser.error(f"--max-customers must be 1..{DEFAULT_MAX_CUSTOMERS}")
    model = resolve_model(args.model)

    async def run() -> Report:
        # A batch job: long statements allowed, a small pool.
        db = Database(
            args.database_url, pool_size=2, statement_timeout_ms=60_000, application_name="rescore"
        )
        try:
            return await rescore(
                db, model, max_customers=args.max_customers, max_examples=args.examples
            )
        finally:
            await db.close()

    render(asyncio.run(run()), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
