"""Benchmark: sanctions/PEP name screening against a 50,000-entry index.

No stack needed (the matcher is pure). Builds the index from the real OFAC
SDN snapshot plus deterministic synthetic entries up to --entries, then
screens --names query names one at a time on one core and prints `name: value`
lines: index size and build time, per-name latency p50/p99/max, names per
second, and the labelled-set precision/recall measured on this same 50k index
(so the synthetic filler must not create false positives either).

Synthetic entries mix real SDN name words (30%, so common words such as
MOHAMMED or RODRIGUEZ get realistically long postings) with invented
syllable words (70%); queries are 50% common Brazilian customer names, 25%
perturbed real SDN names and 25% perturbed synthetic entries.

    python bench/kyc_screening.py [--entries 50000] [--names 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from bench.loadgen import percentile  # noqa: E402
from services.kyc.domain.screening import (  # noqa: E402
    DEFAULT_THRESHOLD,
    ListEntry,
    build_index,
    load_ofac_sdn,
    screen,
)
from tests.unit.kyc.kyc_screening_eval import evaluate, ofac_dir  # noqa: E402

_SYLLABLES = (
    "ka", "lo", "ru", "ve", "mi", "tan", "bor", "sel", "dra", "qui", "zen", "pa", "to", "ni",
    "gor", "fal", "wen", "shu", "ri", "mar", "dun", "ek", "os", "lan", "vi", "tho", "bra", "yul",
)  # fmt: skip
BR_GIVEN = (
    "Maria", "Jose", "Ana", "Joao", "Antonio", "Francisca", "Carlos", "Paulo", "Pedro", "Lucas",
    "Luiz", "Marcos", "Luis", "Gabriel", "Rafael", "Daniel", "Marcelo", "Bruno", "Eduardo",
    "Felipe", "Juliana", "Fernanda", "Patricia", "Aline", "Camila", "Amanda", "Bruna", "Larissa",
)  # fmt: skip
BR_SURNAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima",
    "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares",
    "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira",
)  # fmt: skip


def _word(rng: random.Random, real_words: list[str]) -> str:
    if rng.random() < 0.3:
        return rng.choice(real_words)
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).upper()


def synthetic_entries(count: int, real_words: list[str], seed: int) -> list[ListEntry]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        surname = " ".join(_word(rng, real_words) for _ in range(rng.randint(1, 2)))
        given = " ".join(_word(rng, real_words).title() for _ in range(rng.randint(1, 2)))
        aliases = (f"{given} {surname}",) if rng.random() < 0.2 else ()
        out.append(
            ListEntry(
                list_name="synthetic",
                entry_id=f"syn-{n}",
                primary_name=f"{surname}, {given}",
                aliases=aliases,
                programs=("SYNTHETIC",),
            )
        )
    return out


def _perturb(name: str, rng: random.Random) -> str:
    """Drop the comma order, swap two letters or drop one, sometimes an accent."""
    words = name.replace(",", " ").split()
    rng.shuffle(words)
    text = " ".join(words)
    if len(text) > 4 and rng.random() < 0.6:
        i = rng.randrange(1, len(text) - 2)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if rng.random() < 0.3:
        text = text.replace("a", "á", 1).replace("e", "é", 1)
    return text


def queries(count: int, entries: list[ListEntry], seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    out = []
    for n in range(count):
        kind = n % 4
        if kind in (0, 1):
            out.append(
                f"{rng.choice(BR_GIVEN)} {rng.choice(BR_SURNAMES)} {rng.choice(BR_SURNAMES)}"
            )
        else:
            out.append(_perturb(rng.choice(entries).primary_name[:120], rng))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--names", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    assert 1 <= args.names <= 1_000_000

    sdn = list(load_ofac_sdn(ofac_dir()))
    real_words = sorted({w for e in sdn for w in e.primary_name.replace(",", " ").split()})
    filler = synthetic_entries(max(0, args.entries - len(sdn)), real_words, args.seed)
    t0 = time.perf_counter()
    index = build_index([*sdn, *filler])
    build_s = time.perf_counter() - t0
    # The index lives as long as the process: move it out of the collector's
    # generations so a full collection does not land inside a timed query.
    gc.collect()
    gc.freeze()

    names = queries(args.names, [*sdn[::3], *filler[::50]], args.seed)
    latencies = []
    hits_total = 0
    t_all = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        hits_total += len(screen(name, None, index, DEFAULT_THRESHOLD))
        latencies.append((time.perf_counter() - t) * 1000)
    total_s = time.perf_counter() - t_all
    latencies.sort()
    ev = evaluate(index, DEFAULT_THRESHOLD)

    print(f"index_entries: {len(index)}")
    print(f"index_names: {len(index.names)}")
    print(f"index_build_s: {build_s:.2f}")
    print(f"threshold: {DEFAULT_THRESHOLD}")
    print(f"names_screened: {len(names)}")
    print(f"screen_p50_ms: {percentile(latencies, 50):.3f}")
    print(f"screen_p99_ms: {percentile(latencies, 99):.3f}")
    print(f"screen_max_ms: {latencies[-1]:.3f}")
    print(f"names_per_s: {len(names) / total_s:.0f}")
    print(f"hits_per_name: {hits_total / len(names):.3f}")
    print(f"precision: {ev.precision:.3f}")
    print(f"recall: {ev.recall:.3f}")


if __name__ == "__main__":
    main()
