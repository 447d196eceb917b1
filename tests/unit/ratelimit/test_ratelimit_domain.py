"""Matching, windows and decisions of the rate limiter, without Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from devstack import edge
from devstack.edge import render_ratelimit_config
from services.ratelimit import domain
from services.ratelimit.domain import ConfigError, Limit, Unit

LIMITS_FILE = Path(__file__).parents[3] / "services" / "ratelimit" / "limits.yaml"

CONFIG = domain.parse_config(
    {
        "domain": "fintech",
        "descriptors": [
            {"key": "remote_address", "rate_limit": {"unit": "minute", "requests_per_unit": 600}},
            {"key": "user", "rate_limit": {"unit": "minute", "requests_per_unit": 300}},
            {
                "key": "auth",
                "descriptors": [
                    {
                        "key": "remote_address",
                        "rate_limit": {"unit": "minute", "requests_per_unit": 10},
                    }
                ],
            },
            {
                "key": "auth",
                "value": "refresh",
                "descriptors": [
                    {
                        "key": "remote_address",
                        "rate_limit": {"unit": "second", "requests_per_unit": 2},
                    }
                ],
            },
        ],
    }
)


def limit_of(*entries: tuple[str, str], domain_name: str = "fintech") -> Limit | None:
    return CONFIG.limit_for(domain_name, list(entries))


def per_minute(limit: Limit | None) -> float:
    assert limit is not None
    return limit.requests_per_unit * 60 / limit.unit.seconds


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(lambda: yaml.safe_load(LIMITS_FILE.read_text()), id="default"),
        pytest.param(lambda: yaml.safe_load(render_ratelimit_config("run")), id="edge-run"),
    ],
)
def test_shipped_limits_cover_envoys_descriptors_with_a_tight_auth_limit(
    document: Callable[[], object],
) -> None:
    """The default file and the one the dev stack renders both match what
    Envoy sends (devstack/edge.py) and keep the credential limit far tighter."""
    config = domain.parse_config(document())
    name = edge.RATELIMIT_DOMAIN
    address = ("remote_address", "203.0.113.7")
    auth = config.limit_for(name, [edge.AUTH_DESCRIPTOR, address])
    per_address = config.limit_for(name, [address])
    per_user = config.limit_for(name, [("user", "u-1")])
    assert per_minute(auth) * 10 <= min(per_minute(per_address), per_minute(per_user))


def test_top_level_keys_match_any_value() -> None:
    limit = limit_of(("remote_address", "198.51.100.1"))
    assert limit == Limit(600, Unit.MINUTE, "remote_address")
    assert limit_of(("user", "any-user")) == Limit(300, Unit.MINUTE, "user")


def test_nested_rule_needs_every_entry_to_match() -> None:
    assert limit_of(("auth", "login"), ("remote_address", "1.2.3.4")) == Limit(
        10, Unit.MINUTE, "auth.remote_address"
    )
    # `auth` alone carries no limit of its own: a global counter per endpoint
    # would let one client lock everybody out.
    assert limit_of(("auth", "login")) is None
    assert limit_of(("auth", "login"), ("user", "u")) is None


def test_rule_with_a_value_wins_over_wildcard() -> None:
    refresh = limit_of(("auth", "refresh"), ("remote_address", "1.2.3.4"))
    assert refresh == Limit(2, Unit.SECOND, "auth.remote_address")


@pytest.mark.parametrize(
    "entries",
    [
        [("unknown", "x")],
        [("remote_address", "1.2.3.4"), ("extra", "y")],
        [],
    ],
)
def test_unknown_descriptors_are_not_limited(entries: list[tuple[str, str]]) -> None:
    assert CONFIG.limit_for("fintech", entries) is None


def test_other_domains_are_not_limited() -> None:
    assert limit_of(("remote_address", "1.2.3.4"), domain_name="other") is None


def test_window_key_depends_on_entries_domain_unit_and_window() -> None:
    limit = Limit(10, Unit.MINUTE, "x")
    base = domain.window_for("fintech", [("a", "b")], limit, now=120.0)
    assert domain.window_for("fintech", [("a", "b")], limit, now=179.9).key == base.key
    assert domain.window_for("fintech", [("a", "b")], limit, now=180.0).key != base.key
    assert domain.window_for("other", [("a", "b")], limit, now=120.0).key != base.key
    # Separators inside values cannot make two descriptors share a counter.
    split = domain.window_for("fintech", [("a:b", "c")], limit, now=120.0)
    other_split = domain.window_for("fintech", [("a", "b:c")], limit, now=120.0)
    assert split.key != other_split.key
    hourly = domain.window_for("fintech", [("a", "b")], Limit(10, Unit.HOUR, "x"), now=120.0)
    assert hourly.key != base.key


def test_window_key_is_bounded_whatever_the_value() -> None:
    limit = Limit(1, Unit.DAY, "x")
    window = domain.window_for("fintech", [("user", "v" * 512)], limit, now=1e9)
    assert len(window.key) < 80


@given(
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    unit=st.sampled_from(list(Unit)),
)
def test_reset_is_within_one_window_and_lands_on_its_end(now: float, unit: Unit) -> None:
    window = domain.window_for("d", [("k", "v")], Limit(1, unit, "k"), now)
    # Just before the reset time it is still the same window (so the reset is
    # never later than the window's end) ...
    later = domain.window_for("d", [("k", "v")], Limit(1, unit, "k"), now + window.reset_after - 1)
    assert later.key == window.key or window.reset_after == 1
    # ... and at the reset time the next window has begun (never earlier).
    after = domain.window_for("d", [("k", "v")], Limit(1, unit, "k"), now + window.reset_after)
    assert after.key != window.key


@given(
    limit=st.integers(min_value=1, max_value=50),
    arrivals=st.lists(
        st.tuples(st.floats(min_value=0, max_value=600, allow_nan=False), st.integers(1, 5)),
        max_size=200,
    ),
)
def test_never_more_than_the_limit_allowed_per_window(
    limit: int, arrivals: list[tuple[float, int]]
) -> None:
    """Simulates the Redis counters: whatever the arrivals, each window admits ≤ limit hits."""
    rule = Limit(limit, Unit.MINUTE, "k")
    counters: Counter[str] = Counter()
    admitted: Counter[str] = Counter()
    for now, hits in sorted(arrivals):
        window = domain.window_for("d", [("k", "v")], rule, now)
        counters[window.key] += hits
        decision = domain.decide(rule, counters[window.key], window.reset_after)
        assert decision.remaining == max(0, limit - counters[window.key])
        if not decision.over_limit:
            admitted[window.key] += hits
    assert all(n <= limit for n in admitted.values())


def test_decide_allows_up_to_the_limit_then_rejects() -> None:
    limit = Limit(3, Unit.SECOND, "k")
    decisions = [domain.decide(limit, count, 1) for count in range(1, 6)]
    assert [d.over_limit for d in decisions] == [False, False, False, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]


def test_headers_follow_the_tightest_limit() -> None:
    loose = domain.decide(Limit(100, Unit.MINUTE, "a"), 10, 50)
    tight = domain.decide(Limit(10, Unit.MINUTE, "b"), 8, 30)
    assert domain.response_headers([loose, tight]) == [
        ("x-ratelimit-limit", "10"),
        ("x-ratelimit-remaining", "2"),
        ("x-ratelimit-reset", "30"),
    ]
    over = domain.decide(Limit(5, Unit.SECOND, "c"), 6, 1)
    headers = dict(domain.response_headers([loose, tight, over]))
    assert headers == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": "1",
        "retry-after": "1",
    }
    assert domain.response_headers([]) == []


@pytest.mark.parametrize(
    ("descriptors", "hits"),
    [
        ([[("k", "v")]] * (domain.MAX_DESCRIPTORS + 1), 1),
        ([[("k", "v")] * (domain.MAX_ENTRIES + 1)], 1),
        ([[("k" * (domain.MAX_KEY_LENGTH + 1), "v")]], 1),
        ([[("", "v")]], 1),
        ([[("k", "v" * (domain.MAX_VALUE_LENGTH + 1))]], 1),
        ([[("k", "v")]], domain.MAX_HITS + 1),
        ([[("k", "v")]], 0),
    ],
)
def test_oversized_requests_are_invalid(
    descriptors: list[list[tuple[str, str]]], hits: int
) -> None:
    with pytest.raises(domain.InvalidRequest):
        domain.validate_request(descriptors, hits)


def test_bounded_requests_are_valid() -> None:
    entries = [("k" * domain.MAX_KEY_LENGTH, "v" * domain.MAX_VALUE_LENGTH)] * domain.MAX_ENTRIES
    domain.validate_request([entries] * domain.MAX_DESCRIPTORS, domain.MAX_HITS)


def _rule(**fields: object) -> dict[str, object]:
    return {"key": "k", **fields}


@pytest.mark.parametrize(
    "document",
    [
        None,
        {"domain": "d"},
        {
            "domain": "",
            "descriptors": [_rule(rate_limit={"unit": "second", "requests_per_unit": 1})],
        },
        {"domain": "d", "descriptors": []},
        {"domain": "d", "descriptors": [_rule()]},
        {
            "domain": "d",
            "descriptors": [_rule(rate_limit={"unit": "week", "requests_per_unit": 1})],
        },
        {
            "domain": "d",
            "descriptors": [_rule(rate_limit={"unit": "second", "requests_per_unit": 0})],
        },
        {
            "domain": "d",
            "descriptors": [_rule(rate_limit={"unit": "second", "requests_per_unit": True})],
        },
        {"domain": "d", "descriptors": [_rule(rate_limit={"unit": "second"})]},
        {
            "domain": "d",
            "descriptors": [_rule(ratelimit={"unit": "second", "requests_per_unit": 1})],
        },
        {
            "domain": "d",
            "descriptors": [
                _rule(rate_limit={"unit": "second", "requests_per_unit": 1}),
                _rule(rate_limit={"unit": "minute", "requests_per_unit": 1}),
            ],
        },
        {
            "domain": "d",
            "descriptors": [_rule(value=3, rate_limit={"unit": "second", "requests_per_unit": 1})],
        },
    ],
)
def test_malformed_config_is_rejected(document: object) -> None:
    with pytest.raises(ConfigError):
        domain.parse_config(document)


def test_config_nesting_is_bounded() -> None:
    node: dict[str, object] = _rule(rate_limit={"unit": "second", "requests_per_unit": 1})
    for _ in range(domain.MAX_DEPTH):
        node = _rule(descriptors=[node])
    with pytest.raises(ConfigError, match="deeper"):
        domain.parse_config({"domain": "d", "descriptors": [node]})
