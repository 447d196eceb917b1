"""Person/entity name normalisation and string similarity for screening (pure).

Everything here is deterministic and free of I/O so the matcher can be tested
exhaustively and reused by the loaders and the screening core alike.
"""

from __future__ import annotations

import re
import unicodedata

# Titles carry no identity: "Dr. Ayman AL ZAWAHIRI" must match "Ayman al-Zawahiri".
HONORIFICS = frozenset(
    {
        "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "sr", "sra", "srta", "dona", "dom",
        "shaykh", "sheikh", "sheik", "shaikh", "haji", "hajji", "mullah", "maulana", "mawlawi",
        "gen", "general", "col", "colonel", "capt", "captain", "rev", "mme", "mlle",
    }
)  # fmt: skip

# Connectors vary freely between sources ("Maria da Silva" / "Maria Silva",
# "al-Zawahiri" / "Zawahiri", "bin Laden" / "Laden") and are so common that
# matching on them would only add noise.
PARTICLES = frozenset(
    {
        "de", "da", "do", "das", "dos", "del", "della", "di", "du", "la", "le", "van", "von",
        "der", "den", "e", "y", "al", "el", "bin", "ibn", "bint", "ben", "ul", "ad", "ar", "as",
    }
)  # fmt: skip

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_DOUBLE = re.compile(r"(.)\1+")
_VOWELS = re.compile(r"[aeiou]")
_HARD_C = re.compile(r"c(?![eih])")

# Transliteration folds: spellings that the same name takes in different
# romanisations (Muhammad/Mohamed, Hussein/Husayn, Souza/Sousa, Luiz/Luis,
# Yusuf/Jusuf is NOT folded: j/y differ too often between unrelated names).
_FOLDS: tuple[tuple[str, str], ...] = (
    ("ph", "f"),
    ("ck", "k"),
    ("kh", "k"),
    ("th", "t"),
    ("gh", "g"),
    ("dh", "d"),
    ("ou", "u"),
    ("oo", "u"),
    ("ee", "i"),
    ("ey", "ei"),
    ("y", "i"),
    ("z", "s"),
    ("w", "v"),
    ("q", "k"),
)

MAX_NAME_CHARS = 512  # longer input is not a name; bound the work per query


def strip_accents(text: str) -> str:
    """NFKD-decompose and drop combining marks: 'João Ñúñez' -> 'Joao Nunez'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def reorder_surname_first(name: str) -> str:
    """OFAC writes individuals as 'SURNAME, Given'; turn it into 'Given SURNAME'.

    Only a single comma is treated as the separator: entity names such as
    'ANGLO-CARIBBEAN CO., LTD.' contain commas that are not name order.
    """
    parts = name.split(",")
    if len(parts) != 2:
        return name
    surname, given = parts[0].strip(), parts[1].strip()
    if not surname or not given or given.lower().rstrip(".") in {"ltd", "inc", "sa", "s.a", "co"}:
        return name
    return f"{given} {surname}"


def fold_token(token: str) -> str:
    """Transliteration-tolerant spelling of one lower-case ASCII token."""
    folded = token
    for src, dst in _FOLDS:
        folded = folded.replace(src, dst)
    # A hard c is a k (Victor/Viktor, Carlos/Karlos); c before e/i/h keeps its sound.
    folded = _HARD_C.sub("k", folded)
    # Doubled letters ("Mohammed", "Hussein") are the commonest spelling variant.
    return _DOUBLE.sub(r"\1", folded)


def skeleton(token: str) -> str:
    """Consonant skeleton of a folded token ('usama' -> 'sm', 'muhamad' -> 'mhmd')."""
    return _VOWELS.sub("", token)


def tokens(name: str) -> tuple[str, ...]:
    """Folded, de-duplicated, sorted identity tokens of a name.

    Sorted so that word order never matters; honorifics, particles and
    punctuation are dropped. Returns () for a name with no usable token.
    """
    assert len(name) <= MAX_NAME_CHARS, "name too long to screen"
    plain = strip_accents(reorder_surname_first(name)).casefold()
    words = _NON_ALNUM.sub(" ", plain).split()
    kept = {fold_token(w) for w in words if w not in HONORIFICS and w not in PARTICLES}
    kept.discard("")
    return tuple(sorted(kept))


def jaro(a: str, b: str) -> float:
    """Jaro similarity (0..1) of two strings."""
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if la == 0 or lb == 0:
        return 0.0
    window = max(max(la, lb) // 2 - 1, 0)
    a_matched = [False] * la
    b_matched = [False] * lb
    matches = 0
    for i, ch in enumerate(a):
        lo, hi = max(0, i - window), min(lb, i + window + 1)
        for j in range(lo, hi):
            if not b_matched[j] and b[j] == ch:
                a_matched[i] = b_matched[j] = True
                matches += 1
                break
    if matches == 0:
        return 0.0
    # Transpositions: matched characters that appear in a different order.
    transpositions = 0
    j = 0
    for i in range(la):
        if a_matched[i]:
            while not b_matched[j]:
                j += 1
            if a[i] != b[j]:
                transpositions += 1
            j += 1
    m = float(matches)
    return (m / la + m / lb + (m - transpositions / 2) / m) / 3.0


def jaro_winkler(a: str, b: str, prefix_scale: float = 0.1) -> float:
    """Jaro-Winkler similarity: Jaro boosted by a common prefix of up to 4 chars."""
    assert 0.0 <= prefix_scale <= 0.25, "prefix_scale above 0.25 can exceed 1.0"
    sim = jaro(a, b)
    prefix = 0
    for ca, cb in zip(a[:4], b[:4], strict=False):
        if ca != cb:
            break
        prefix += 1
    return sim + prefix * prefix_scale * (1.0 - sim)


SKELETON_MATCH = 0.9  # same consonant skeleton (>= 3 consonants): a transliteration


def token_similarity(a: str, b: str) -> float:
    """Similarity of two folded tokens: Jaro-Winkler, lifted for equal skeletons."""
    sim = jaro_winkler(a, b)
    if sim < SKELETON_MATCH:
        ska = skeleton(a)
        if len(ska) >= 3 and ska == skeleton(b):
            return SKELETON_MATCH
    return sim
