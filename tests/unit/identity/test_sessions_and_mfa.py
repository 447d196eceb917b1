from datetime import UTC, datetime, timedelta

import pyotp
from hypothesis import given
from hypothesis import strategies as st

from services.identity.domain import lockout, mfa
from services.identity.domain.access_tokens import access_claims
from services.identity.domain.refresh_tokens import (
    RefreshOutcome,
    SessionState,
    decide_refresh,
    new_refresh_token,
    parse_refresh_token,
    token_hash,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def session(**overrides: object) -> SessionState:
    base = dict(
        current_token_hash=token_hash("s1.current"),
        retired_token_hashes=frozenset({token_hash("s1.old")}),
        device_id="dev-1",
        expires_at=NOW + timedelta(days=1),
        revoked=False,
    )
    base.update(overrides)
    return SessionState(**base)  # type: ignore[arg-type]


def test_refresh_decisions() -> None:
    cur, old = token_hash("s1.current"), token_hash("s1.old")
    assert decide_refresh(session(), cur, "dev-1", NOW) is RefreshOutcome.ROTATE
    assert decide_refresh(session(), old, "dev-1", NOW) is RefreshOutcome.REUSED
    assert decide_refresh(session(revoked=True), old, "dev-1", NOW) is RefreshOutcome.REUSED
    assert decide_refresh(session(revoked=True), cur, "dev-1", NOW) is RefreshOutcome.REVOKED
    assert decide_refresh(session(), cur, "dev-2", NOW) is RefreshOutcome.WRONG_DEVICE
    assert decide_refresh(session(expires_at=NOW), cur, "dev-1", NOW) is RefreshOutcome.EXPIRED
    assert decide_refresh(session(), token_hash("x"), "dev-1", NOW) is RefreshOutcome.UNKNOWN
    assert decide_refresh(None, cur, "dev-1", NOW) is RefreshOutcome.UNKNOWN


def test_refresh_token_round_trip() -> None:
    token = new_refresh_token("9b2c")
    parsed = parse_refresh_token(token)
    assert parsed is not None and parsed.session_id == "9b2c"
    assert parse_refresh_token("no-dot") is None
    assert parse_refresh_token("abc.short") is None
    assert token_hash(token) != token_hash(new_refresh_token("9b2c"))


def test_lockout_backoff() -> None:
    assert [lockout.lock_seconds(n) for n in range(0, 5)] == [0, 0, 0, 0, 0]
    assert lockout.lock_seconds(5) == 30
    assert lockout.lock_seconds(6) == 60
    assert lockout.lock_seconds(100) == lockout.MAX_LOCK_SECONDS


@given(st.integers(min_value=0, max_value=10_000))
def test_lockout_is_monotonic_and_bounded(n: int) -> None:
    assert 0 <= lockout.lock_seconds(n) <= lockout.lock_seconds(n + 1) <= lockout.MAX_LOCK_SECONDS


def test_totp_accepts_current_code_once_and_tolerates_one_step_drift() -> None:
    secret = mfa.new_secret()
    totp = pyotp.TOTP(secret)
    code = totp.at(NOW)
    first = mfa.verify_totp(secret, code, NOW, last_used_step=None)
    assert first.accepted
    # the same code again is a replay
    assert not mfa.verify_totp(secret, code, NOW, last_used_step=first.step).accepted
    # previous step's code still accepted (drift), two steps back is not
    assert mfa.verify_totp(secret, totp.at(NOW - timedelta(seconds=30)), NOW, None).accepted
    assert not mfa.verify_totp(secret, totp.at(NOW - timedelta(seconds=90)), NOW, None).accepted
    assert not mfa.verify_totp(secret, "12345", NOW, None).accepted
    assert "otpauth://totp/" in mfa.provisioning_uri(secret, "a@b.com")


def test_access_claims_bounded_lifetime() -> None:
    claims = access_claims(
        user_id="u", session_id="s", roles=["user"], issuer="i", audience="a", now=NOW
    )
    assert claims["sub"] == "u" and claims["sid"] == "s" and claims["aud"] == "a"
    assert 0 < int(claims["exp"]) - int(claims["iat"]) <= 15 * 60  # type: ignore[call-overload]
    try:
        access_claims(
            user_id="u",
            session_id="s",
            roles=[],
            issuer="i",
            audience="a",
            now=NOW,
            ttl=timedelta(hours=1),
        )
    except AssertionError:
        pass
    else:
        raise AssertionError("a one-hour access token must be refused")
