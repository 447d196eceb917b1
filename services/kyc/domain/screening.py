"""Sanctions / PEP screening: fuzzy name matching against an immutable list index.

Layout (details and column formats in docs/SCREENING.md):
- loaders (`load_ofac_sdn`, `load_un_consolidated`, `load_br_pep`) are the only
  functions here that touch files; they return `ListEntry` tuples;
- `build_index(entries)` turns entries into a `ScreeningIndex` (immutable);
- `screen(name, birth_date, index, threshold)` is pure.

Matching: every list name (primary and aliases) is normalised into folded,
sorted tokens (services.kyc.domain.names). A query is compared token by token
with Jaro-Winkler; tokens are aligned one-to-one, best pairs first (so word
order and a missing middle name do not matter), and the alignment is scored
as a length-weighted coverage of both names (see `name_score`).

Blocking: a query token is only compared with list tokens that share a
3-character key (its first three letters or the first three consonants of its
skeleton), and a list name is only scored when enough of its tokens were
found that way. This keeps one query against 50,000 entries within a few
milliseconds without giving up transliteration tolerance.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType

from services.kyc.domain.names import MAX_NAME_CHARS, skeleton, token_similarity, tokens

LIST_OFAC_SDN = "ofac-sdn"
LIST_UN = "un-consolidated"
LIST_BR_PEP = "br-pep"

# Decision threshold on the combined score (0..1), chosen on the labelled set
# (tests/unit/kyc/screening_labelled.csv): the weakest true match scores 0.898
# and the non-matches cluster below 0.87 (three near-misses score 0.91-0.98
# and stay false positives: Jaro-Winkler rewards shared prefixes). 0.88 keeps
# recall at 1.0; a false positive costs a human review, a miss costs a breach.
DEFAULT_THRESHOLD = 0.88
# Two tokens below this similarity are treated as different words.
TOKEN_MIN_SIMILARITY = 0.84
MAX_HITS_LIMIT = 100
DEFAULT_MAX_HITS = 10
# Weight of the shorter name's coverage: a query "Nicolas Maduro" fully
# explains the list name "MADURO MOROS, Nicolas" except for one surname, so
# the shorter side dominates; the longer side's coverage keeps a one-word
# alias ("PACHO") from matching every customer who carries that word.
SHORT_SIDE_WEIGHT = 0.75
# Birth-date evidence: a list date of birth that agrees lifts the score a
# little; one that disagrees by more than a year lowers it enough that an
# exact name match alone (1.0) falls below the threshold: the customer's date
# of birth is verified against government records before screening, and a
# namesake is the commonest false positive of name screening.
DOB_MATCH_BONUS = 0.02
DOB_MISMATCH_PENALTY = 0.15

_KEY_CHARS = 3
MAX_BUCKET = 150  # tokens per blocking key before it is refined (speed bound)
_MAX_REFINE = 4  # at most 3 extra prefix characters


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A list date of birth; lists often give only the year (or month and year)."""

    year: int
    month: int | None = None
    day: int | None = None


@dataclass(frozen=True, slots=True)
class ListEntry:
    list_name: str
    entry_id: str
    primary_name: str
    aliases: tuple[str, ...] = ()
    entity_type: str = "individual"  # individual | entity | vessel | aircraft
    programs: tuple[str, ...] = ()
    birth_dates: tuple[BirthDate, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    list_name: str
    entry_id: str
    primary_name: str
    matched_name: str  # the primary name or the alias that matched
    score: float
    programs: tuple[str, ...]
    entity_type: str
    dob_match: bool | None  # None: no usable date on one side


@dataclass(frozen=True, slots=True)
class _IndexedName:
    entry: int  # position in ScreeningIndex.entries
    raw: str
    token_ids: tuple[int, ...]
    weight: int  # total characters of its tokens


@dataclass(frozen=True, slots=True)
class ScreeningIndex:
    entries: tuple[ListEntry, ...]
    names: tuple[_IndexedName, ...]
    vocab: tuple[str, ...]  # distinct folded tokens
    key_to_vocab: MappingProxyType[str, tuple[int, ...]]
    split_keys: frozenset[str]
    vocab_to_names: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.entries)


def _key_sources(token: str) -> tuple[tuple[str, str], ...]:
    skel = skeleton(token)
    return (("p", token), ("s", skel)) if len(skel) >= 2 else (("p", token),)


def _leaf_key(kind: str, text: str, split: frozenset[str]) -> str:
    """The shortest prefix key of `text` whose bucket was not split for size."""
    length = _KEY_CHARS
    while f"{kind}:{text[:length]}" in split and length < len(text):
        length += 1
    return f"{kind}:{text[:length]}"


def _token_keys(token: str, split: frozenset[str]) -> set[str]:
    return {_leaf_key(kind, text, split) for kind, text in _key_sources(token)}


def _split_keys(vocab: Sequence[str]) -> frozenset[str]:
    """Prefix keys whose bucket would exceed MAX_BUCKET tokens.

    A crowded 3-character block ('mar', 'abd', or a list full of similar
    made-up words) would cost one Jaro-Winkler call per token in it; such a
    block is refined to longer prefixes until it is small, so the comparisons
    per query token stay bounded (about 2 x MAX_BUCKET). The price: inside a
    refined block a typo in the first few letters is only found through the
    other key (prefix vs consonant skeleton).
    """
    split: set[str] = set()
    for length in range(_KEY_CHARS, _KEY_CHARS + _MAX_REFINE):
        counts: dict[str, int] = {}
        frozen = frozenset(split)
        for tok in vocab:
            for kind, text in _key_sources(tok):
                key = _leaf_key(kind, text, frozen)
                if len(key) - 2 == length:  # only buckets at this depth
                    counts[key] = counts.get(key, 0) + 1
        split.update(k for k, n in counts.items() if n > MAX_BUCKET)
    return frozenset(split)


def build_index(entries: Iterable[ListEntry]) -> ScreeningIndex:
    entry_list = tuple(entries)
    vocab_ids: dict[str, int] = {}
    names: list[_IndexedName] = []
    postings: list[list[int]] = []
    for e_idx, entry in enumerate(entry_list):
        seen: set[tuple[str, ...]] = set()
        for raw in (entry.primary_name, *entry.aliases):
            toks = tokens(raw[:MAX_NAME_CHARS])
            if not toks or toks in seen:
                continue  # aliases often differ only in punctuation/order
            seen.add(toks)
            ids = []
            for tok in toks:
                tid = vocab_ids.setdefault(tok, len(vocab_ids))
                if tid == len(postings):
                    postings.append([])
                ids.append(tid)
                postings[tid].append(len(names))
            names.append(_IndexedName(e_idx, raw, tuple(ids), sum(len(t) for t in toks)))
    vocab = tuple(sorted(vocab_ids, key=vocab_ids.__getitem__))
    split = _split_keys(vocab)
    keys: dict[str, list[int]] = {}
    for tid, tok in enumerate(vocab):
        for key in _token_keys(tok, split):
            keys.setdefault(key, []).append(tid)
    return ScreeningIndex(
        entries=entry_list,
        names=tuple(names),
        vocab=vocab,
        key_to_vocab=MappingProxyType({k: tuple(v) for k, v in keys.items()}),
        split_keys=split,
        vocab_to_names=tuple(tuple(p) for p in postings),
    )


def name_score(
    query_weights: Sequence[int],
    cand_weights: Sequence[int],
    pairs: Iterable[tuple[float, int, int]],
) -> float:
    """Combined score of one query name against one list name.

    `pairs` are (similarity, query token position, candidate token position)
    for token pairs at or above TOKEN_MIN_SIMILARITY. Tokens are aligned
    one-to-one, best pairs first; each side's coverage is the
    character-weighted mean similarity of its tokens (unaligned tokens count
    0). The shorter name's coverage dominates (missing middle names are
    normal); the longer name's coverage tempers it.
    """
    used_q: set[int] = set()
    used_c: set[int] = set()
    matched = 0.0
    q_cov = 0.0
    c_cov = 0.0
    for sim, qi, ci in sorted(pairs, reverse=True):
        if qi in used_q or ci in used_c:
            continue
        used_q.add(qi)
        used_c.add(ci)
        q_cov += sim * query_weights[qi]
        c_cov += sim * cand_weights[ci]
        matched += 1
    if matched == 0:
        return 0.0
    q_cov /= sum(query_weights)
    c_cov /= sum(cand_weights)
    if len(query_weights) <= len(cand_weights):
        short, long_ = q_cov, c_cov
    else:
        short, long_ = c_cov, q_cov
    return short * (SHORT_SIDE_WEIGHT + (1.0 - SHORT_SIDE_WEIGHT) * long_)


def _dob_match(birth_date: date | None, entry: ListEntry) -> bool | None:
    if birth_date is None or not entry.birth_dates:
        return None
    close = False
    for bd in entry.birth_dates:
        if bd.year == birth_date.year and bd.month in (None, birth_date.month):
            if bd.day in (None, birth_date.day):
                return True
        if abs(bd.year - birth_date.year) <= 1:
            close = True  # lists give approximate years; do not penalise
    return None if close else False


def screen(
    name: str,
    birth_date: date | None,
    index: ScreeningIndex,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    max_hits: int = DEFAULT_MAX_HITS,
    entity_types: frozenset[str] | None = None,
) -> list[Hit]:
    """Entries whose best name scores >= threshold, best first, at most max_hits.

    One hit per entry (its best-matching name). `entity_types` restricts the
    kinds of entries (KYC of a person screens individuals and unknown-type
    entries; a company screening would pass {"entity"}).
    """
    assert 0.0 < threshold <= 1.0, "threshold must be in (0, 1]"
    assert 1 <= max_hits <= MAX_HITS_LIMIT, "max_hits out of range"
    q_tokens = tokens(name)
    if not q_tokens:
        return []
    q_weights = [len(t) for t in q_tokens]

    # 1. fuzzy-expand each query token over the vocabulary, within its blocks.
    vocab = index.vocab
    token_hits: dict[int, list[tuple[int, float]]] = {}  # vocab id -> [(q pos, sim)]
    for qi, qt in enumerate(q_tokens):
        seen: set[int] = set()
        for key in _token_keys(qt, index.split_keys):
            for tid in index.key_to_vocab.get(key, ()):
                if tid in seen:
                    continue
                seen.add(tid)
                word = vocab[tid]
                # Length gate: beyond this gap the pair cannot be a spelling variant.
                if abs(len(word) - len(qt)) > max(3, len(qt) // 2):
                    continue
                sim = token_similarity(qt, word)
                if sim >= TOKEN_MIN_SIMILARITY:
                    token_hits.setdefault(tid, []).append((qi, sim))

    # 2. gather list names through the postings; count distinct query tokens.
    found: dict[int, set[int]] = {}
    for tid, expansions in token_hits.items():
        q_positions = {qi for qi, _ in expansions}
        for n_idx in index.vocab_to_names[tid]:
            found.setdefault(n_idx, set()).update(q_positions)

    # 3. score the names that could reach the threshold at all.
    best: dict[int, tuple[float, str]] = {}
    for n_idx, q_found in found.items():
        cand: _IndexedName = index.names[n_idx]
        if len(q_found) < min(2, len(q_tokens), len(cand.token_ids)):
            continue  # one shared word between multi-word names is not a match
        entry = index.entries[cand.entry]
        if entity_types is not None and entry.entity_type not in entity_types:
            continue
        pairs = [
            (sim, qi, ci)
            for ci, tid in enumerate(cand.token_ids)
            for qi, sim in token_hits.get(tid, ())
        ]
        c_weights = [len(vocab[tid]) for tid in cand.token_ids]
        score = name_score(q_weights, c_weights, pairs)
        if score > best.get(cand.entry, (-1.0, ""))[0]:
            best[cand.entry] = (score, cand.raw)

    hits: list[Hit] = []
    for e_idx, (score, matched) in best.items():
        entry = index.entries[e_idx]
        dob = _dob_match(birth_date, entry)
        if dob is True:
            score = min(1.0, score + DOB_MATCH_BONUS)
        elif dob is False:
            score -= DOB_MISMATCH_PENALTY
        if score >= threshold:
            hits.append(
                Hit(
                    list_name=entry.list_name,
                    entry_id=entry.entry_id,
                    primary_name=entry.primary_name,
                    matched_name=matched,
                    score=round(score, 4),
                    programs=entry.programs,
                    entity_type=entry.entity_type,
                    dob_match=dob,
                )
            )
    hits.sort(key=lambda h: (-h.score, h.list_name, h.entry_id))
    return hits[:max_hits]


# ---------------------------------------------------------------- loaders (I/O)

_OFAC_EMPTY = "-0-"
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
)}  # fmt: skip
_DOB = re.compile(r"\bDOB (?:circa )?((?:\d{1,2} )?(?:[A-Z][a-z]{2} )?\d{4})")
MAX_LIST_ROWS = 2_000_000  # a list file bigger than this is not a sanctions list


def _ofac_field(value: str) -> str:
    value = value.strip()
    return "" if value == _OFAC_EMPTY else value


def parse_birth_date(text: str) -> BirthDate | None:
    """'23 Nov 1962' / 'Nov 1962' / '1962' / '1962-11-23' -> BirthDate."""
    text = text.strip()
    iso = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if iso:
        return BirthDate(int(iso[1]), int(iso[2]), int(iso[3]))
    parts = text.split()
    if not parts or not parts[-1].isdigit() or len(parts[-1]) != 4:
        return None
    year = int(parts[-1])
    month = _MONTHS.get(parts[-2].lower()[:3]) if len(parts) >= 2 else None
    day = int(parts[0]) if len(parts) == 3 and parts[0].isdigit() else None
    return BirthDate(year, month, day)


def _read_rows(path: Path, *, delimiter: str = ",", encoding: str = "utf-8") -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"screening list file missing: {path}")
    with path.open(newline="", encoding=encoding) as fh:
        rows = [
            row
            for row in csv.reader(fh, delimiter=delimiter)
            # OFAC files end with a DOS end-of-file byte (0x1A) on its own line.
            if row and not (len(row) == 1 and row[0].strip("\x1a \t") == "")
        ]
    assert len(rows) <= MAX_LIST_ROWS, f"{path}: too many rows"
    return rows


def load_ofac_sdn(directory: Path) -> tuple[ListEntry, ...]:
    """OFAC legacy CSV: sdn.csv (entries) + alt.csv (aliases); no header, '-0-' empty."""
    aliases: dict[str, list[str]] = {}
    for row in _read_rows(directory / "alt.csv"):
        assert len(row) == 5, f"alt.csv: expected 5 columns, got {len(row)}"
        alt_name = _ofac_field(row[3])
        if alt_name:
            aliases.setdefault(row[0].strip(), []).append(alt_name)
    entries: list[ListEntry] = []
    for row in _read_rows(directory / "sdn.csv"):
        assert len(row) == 12, f"sdn.csv: expected 12 columns, got {len(row)}"
        ent_num = row[0].strip()
        sdn_type = _ofac_field(row[2]) or "entity"
        programs = tuple(p.strip() for p in _ofac_field(row[3]).split("] [") if p.strip())
        dobs = tuple(
            bd for bd in (parse_birth_date(m) for m in _DOB.findall(row[11])) if bd is not None
        )
        entries.append(
            ListEntry(
                list_name=LIST_OFAC_SDN,
                entry_id=ent_num,
                primary_name=_ofac_field(row[1]),
                aliases=tuple(aliases.get(ent_num, ())),
                entity_type=sdn_type,
                programs=programs,
                birth_dates=dobs,
            )
        )
    return tuple(entries)


UN_COLUMNS = (
    "reference_number", "un_list_type", "entity_type", "first_name", "second_name",
    "third_name", "fourth_name", "aliases", "date_of_birth", "nationality", "listed_on",
)  # fmt: skip


def load_un_consolidated(path: Path) -> tuple[ListEntry, ...]:
    """UN consolidated list, flattened to CSV (header row; columns UN_COLUMNS).

    Names are in the UN's given-name-first order across four parts; aliases
    and dates of birth are ';'-separated.
    """
    rows = _read_rows(path)
    assert rows and tuple(rows[0]) == UN_COLUMNS, f"{path}: header must be {UN_COLUMNS}"
    entries = []
    for row in rows[1:]:
        rec = dict(zip(UN_COLUMNS, row, strict=True))
        name = " ".join(rec[k] for k in UN_COLUMNS[3:7] if rec[k].strip())
        entries.append(
            ListEntry(
                list_name=LIST_UN,
                entry_id=rec["reference_number"],
                primary_name=name,
                aliases=tuple(a.strip() for a in rec["aliases"].split(";") if a.strip()),
                entity_type=rec["entity_type"] or "individual",
                programs=(rec["un_list_type"],) if rec["un_list_type"] else (),
                birth_dates=tuple(
                    bd
                    for bd in (parse_birth_date(d) for d in rec["date_of_birth"].split(";"))
                    if bd is not None
                ),
            )
        )
    return tuple(entries)


BR_PEP_COLUMNS = (
    "CPF", "Nome_PEP", "Sigla_Funcao", "Descricao_Funcao", "Nivel_Funcao", "Nome_Orgao",
    "Data_Inicio_Exercicio", "Data_Fim_Exercicio", "Data_Fim_Carencia",
)  # fmt: skip


def load_br_pep(path: Path) -> tuple[ListEntry, ...]:
    """Brazilian PEP list in the layout of the CGU/Portal da Transparencia export.

    ';'-separated, header row BR_PEP_COLUMNS; CPF is masked ('***.456.789-**')
    so it is not used as an id: the entry id is the row number. The 'program'
    is the function acronym and body, which is what a reviewer needs to see.
    """
    rows = _read_rows(path, delimiter=";")
    assert rows and tuple(rows[0]) == BR_PEP_COLUMNS, f"{path}: header must be {BR_PEP_COLUMNS}"
    entries = []
    for n, row in enumerate(rows[1:], start=1):
        rec = dict(zip(BR_PEP_COLUMNS, row, strict=True))
        entries.append(
            ListEntry(
                list_name=LIST_BR_PEP,
                entry_id=f"pep-{n}",
                primary_name=rec["Nome_PEP"],
                entity_type="individual",
                programs=tuple(p for p in (rec["Sigla_Funcao"], rec["Nome_Orgao"]) if p.strip()),
            )
        )
    return tuple(entries)
