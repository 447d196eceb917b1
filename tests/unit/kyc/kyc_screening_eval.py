"""Shared by the screening tests and bench/kyc_screening.py: the labelled set."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from services.kyc.domain.screening import ScreeningIndex, screen

REPO_ROOT = Path(__file__).resolve().parents[3]
LABELLED_CSV = Path(__file__).with_name("screening_labelled.csv")
OFAC_DIR = REPO_ROOT / ".." / "shared" / "data" / "sanctions" / "ofac-sdn"


def ofac_dir() -> Path:
    """The real OFAC snapshot beside the repository; a clear error if absent."""
    for name in ("sdn.csv", "alt.csv", "add.csv"):
        if not (OFAC_DIR / name).is_file():
            raise FileNotFoundError(
                f"OFAC SDN snapshot missing: expected {OFAC_DIR.resolve() / name} "
                "(../shared/data/sanctions/ofac-sdn next to the repository)"
            )
    return OFAC_DIR


@dataclass(frozen=True)
class Labelled:
    query: str
    birth_date: date | None
    expected: tuple[str, str] | None  # (list, id) or None for a non-match
    note: str


def load_labelled() -> list[Labelled]:
    with LABELLED_CSV.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [
        Labelled(
            query=r["query"],
            birth_date=date.fromisoformat(r["birth_date"]) if r["birth_date"] else None,
            expected=(r["expected_list"], r["expected_id"]) if r["expected_id"] else None,
            note=r["note"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Evaluation:
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    false_negatives: int
    mistakes: tuple[str, ...]


def evaluate(index: ScreeningIndex, threshold: float) -> Evaluation:
    """Row-level precision/recall.

    A row is predicted positive when screening returns any hit. It is a true
    positive when the labelled entry is among the hits; a hit on a
    non-match row (or only on other entries) is a false positive; a labelled
    match with no hit on its entry is a false negative.
    """
    tp = fp = fn = 0
    mistakes: list[str] = []
    for row in load_labelled():
        hits = screen(row.query, row.birth_date, index, threshold)
        got = {(h.list_name, h.entry_id) for h in hits}
        if row.expected is not None and row.expected in got:
            tp += 1
            continue
        if hits:
            fp += 1
            mistakes.append(f"FP {row.query!r}: {hits[0].matched_name} {hits[0].score}")
        if row.expected is not None:
            fn += 1
            mistakes.append(f"FN {row.query!r} (expected {row.expected[1]})")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return Evaluation(precision, recall, tp, fp, fn, tuple(mistakes))
