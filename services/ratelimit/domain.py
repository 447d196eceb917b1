"""Rate-limit rules and decisions: pure, no Redis, no gRPC, no clock of its own.

Envoy sends, per request, a list of *descriptors*; each descriptor is an ordered
list of `(key, value)` entries produced by the route's rate-limit actions, e.g.
`[("remote_address", "203.0.113.7")]`, `[("user", "<jwt sub>")]` or
`[("auth", "login"), ("remote_address", "203.0.113.7")]`.

The configuration is a tree in the shape of Envoy's reference rate-limit
service (lyft/ratelimit), so operators can read it without a new vocabulary:
a rule matches one entry by key and, when it names a value, by value too; a
rule with a value wins over a wildcard sibling. A descriptor is limited by the
rule reached after matching *all* of its entries; when an entry has no matching
rule, or the rule reached carries no limit, the descriptor is **not limited**
(answer OK). Unknown descriptors pass on purpose: Envoy's actions and this
config are deployed separately, and a new action must never start rejecting
traffic before its limit is written down.

Counting is a fixed window: the counter of a descriptor lives for one window of
its unit, aligned to the Unix epoch, and its key names the window, so a new
window is a new counter (expiry only collects garbage). Every request counts,
including the rejected ones; a request is allowed while the counter after its
own increment stays within the limit, so concurrent increments (atomic in
Redis) can never let more than the limit through in one window.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Bounds on what one request may ask for: Envoy's actions produce a handful of
# descriptors with one or two entries; anything much larger is a misconfiguration
# or abuse and must not turn into an unbounded Redis round trip.
MAX_DESCRIPTORS = 16
MAX_ENTRIES = 8
MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 512
MAX_HITS = 1_000

# Bounds on the configuration itself (it is operator input, but still checked).
MAX_RULES = 1_000
MAX_DEPTH = MAX_ENTRIES
MAX_REQUESTS_PER_UNIT = 1_000_000_000

Entry = tuple[str, str]


class Unit(enum.Enum):
    """Window lengths, in seconds; the names are Envoy's `RateLimit.Unit` names."""

    SECOND = 1
    MINUTE = 60
    HOUR = 3_600
    DAY = 86_400

    @property
    def seconds(self) -> int:
        return self.value


class ConfigError(ValueError):
    """The limits configuration is malformed; the service refuses to start."""


class InvalidRequest(ValueError):
    """A request exceeds the bounds above (the caller gets INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Limit:
    requests_per_unit: int
    unit: Unit
    # The path of rule keys that led here, e.g. "auth.remote_address": logs and
    # Envoy's `RateLimit.name` say which limit fired without echoing values.
    name: str


@dataclass(frozen=True)
class Rule:
    key: str
    value: str | None
    limit: Limit | None
    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Config:
    domain: str
    rules: tuple[Rule, ...]

    def limit_for(self, domain: str, entries: Sequence[Entry]) -> Limit | None:
        """The limit for one descriptor, or None when it is not limited."""
        if domain != self.domain or not entries:
            return None
        level = self.rules
        rule: Rule | None = None
        for key, value in entries:
            rule = _match(level, key, value)
            if rule is None:
                return None
            level = rule.children
        assert rule is not None
        return rule.limit


def _match(rules: Sequence[Rule], key: str, value: str) -> Rule | None:
    wildcard = None
    for rule in rules:
        if rule.key != key:
            continue
        if rule.value == value:
            return rule
        if rule.value is None:
            wildcard = rule
    return wildcard


@dataclass(frozen=True)
class Window:
    """Where a descriptor's counter lives for the current window."""

    key: str
    reset_after: int  # whole seconds until the window ends, 1..unit


def window_for(domain: str, entries: Sequence[Entry], limit: Limit, now: float) -> Window:
    """The counter of `entries` for the window containing `now` (Unix seconds).

    The key hashes the entries: their values come from clients (addresses,
    user ids), so they never shape the Redis key space, and JSON encoding keeps
    `("a:b", "c")` and `("a", "b:c")` apart.
    """
    unit = limit.unit.seconds
    index = math.floor(now / unit)
    window_end = (index + 1) * unit
    reset_after = max(1, math.ceil(window_end - now))
    canonical = json.dumps([domain, [list(e) for e in entries]], separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    key = f"ratelimit:{limit.unit.name.lower()}:{index}:{digest}"
    return Window(key=key, reset_after=reset_after)


@dataclass(frozen=True)
class Decision:
    limit: Limit
    over_limit: bool
    remaining: int
    reset_after: int


def decide(limit: Limit, count_after: int, reset_after: int) -> Decision:
    """Judge one descriptor given its counter *after* this request's increment."""
    return Decision(
        limit=limit,
        over_limit=count_after > limit.requests_per_unit,
        remaining=max(0, limit.requests_per_unit - count_after),
        reset_after=reset_after,
    )


def response_headers(decisions: Sequence[Decision]) -> list[tuple[str, str]]:
    """`x-ratelimit-*` headers for the most restrictive limit that applied.

    The tightest limit is the one that fires first (over the limit, then fewest
    remaining, then the later reset), so it is the one a client must respect.
    `retry-after` is added only when the request is rejected.
    """
    if not decisions:
        return []
    tightest = min(decisions, key=lambda d: (not d.over_limit, d.remaining, -d.reset_after))
    headers = [
        ("x-ratelimit-limit", str(tightest.limit.requests_per_unit)),
        ("x-ratelimit-remaining", str(tightest.remaining)),
        ("x-ratelimit-reset", str(tightest.reset_after)),
    ]
    if tightest.over_limit:
        headers.append(("retry-after", str(tightest.reset_after)))
    return headers


def validate_request(descriptors: Sequence[Sequence[Entry]], hits: int) -> None:
    if len(descriptors) > MAX_DESCRIPTORS:
        raise InvalidRequest(f"at most {MAX_DESCRIPTORS} descriptors per request")
    if not 1 <= hits <= MAX_HITS:
        raise InvalidRequest(f"hits_addend must be between 1 and {MAX_HITS}")
    for entries in descriptors:
        if len(entries) > MAX_ENTRIES:
            raise InvalidRequest(f"at most {MAX_ENTRIES} entries per descriptor")
        for key, value in entries:
            if not 0 < len(key) <= MAX_KEY_LENGTH or len(value) > MAX_VALUE_LENGTH:
                raise InvalidRequest("descriptor entry key or value out of bounds")


# --- configuration (the parsed YAML document) -------------------------------------------

_RULE_FIELDS = frozenset({"key", "value", "rate_limit", "descriptors"})
_LIMIT_FIELDS = frozenset({"unit", "requests_per_unit"})


def parse_config(document: Any) -> Config:
    """Build a Config from the YAML document (see limits.yaml); strict on purpose.

    A typo in a limits file must stop the service at start-up rather than
    silently leave an endpoint unlimited.
    """
    if not isinstance(document, Mapping) or set(document) != {"domain", "descriptors"}:
        raise ConfigError("the document must have exactly `domain` and `descriptors`")
    domain = document["domain"]
    if not isinstance(domain, str) or not domain:
        raise ConfigError("`domain` must be a non-empty string")
    counter = [0]
    rules = _parse_rules(document["descriptors"], path=(), counter=counter)
    return Config(domain=domain, rules=rules)


def _parse_rules(items: Any, path: tuple[str, ...], counter: list[int]) -> tuple[Rule, ...]:
    if len(path) >= MAX_DEPTH:
        raise ConfigError(f"descriptors nest deeper than {MAX_DEPTH} levels")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"`descriptors` under {'.'.join(path) or 'the root'} must be a list")
    rules: list[Rule] = []
    seen: set[tuple[str, str | None]] = set()
    for item in items:
        counter[0] += 1
        if counter[0] > MAX_RULES:
            raise ConfigError(f"more than {MAX_RULES} rules")
        rule = _parse_rule(item, path, counter)
        if (rule.key, rule.value) in seen:
            raise ConfigError(f"duplicate rule {rule.key}={rule.value} under {'.'.join(path)}")
        seen.add((rule.key, rule.value))
        rules.append(rule)
    return tuple(rules)


def _parse_rule(item: Any, path: tuple[str, ...], counter: list[int]) -> Rule:
    if not isinstance(item, Mapping) or not set(item) <= _RULE_FIELDS or "key" not in item:
        raise ConfigError(f"a rule needs `key` and only {sorted(_RULE_FIELDS)}: {item!r}")
    key, value = item["key"], item.get("value")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ConfigError(f"bad rule key {key!r}")
    if value is not None and (not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH):
        raise ConfigError(f"bad rule value {value!r}")
    here = (*path, key)
    limit = _parse_limit(item["rate_limit"], ".".join(here)) if "rate_limit" in item else None
    children = _parse_rules(item["descriptors"], here, counter) if "descriptors" in item else ()
    if limit is None and not children:
        raise ConfigError(f"rule {'.'.join(here)} has neither a rate_limit nor descriptors")
    return Rule(key=key, value=value, limit=limit, children=children)


def _parse_limit(item: Any, name: str) -> Limit:
    if not isinstance(item, Mapping) or set(item) != _LIMIT_FIELDS:
        raise ConfigError(f"rate_limit of {name} needs exactly {sorted(_LIMIT_FIELDS)}")
    unit_name, requests = item["unit"], item["requests_per_unit"]
    if not isinstance(unit_name, str) or unit_name.upper() not in Unit.__members__:
        raise ConfigError(f"rate_limit of {name}: unit must be one of {list(Unit.__members__)}")
    valid = isinstance(requests, int) and not isinstance(requests, bool)
    if not valid or not 0 < requests <= MAX_REQUESTS_PER_UNIT:
        raise ConfigError(f"rate_limit of {name}: requests_per_unit must be a positive integer")
    return Limit(requests_per_unit=requests, unit=Unit[unit_name.upper()], name=name)
