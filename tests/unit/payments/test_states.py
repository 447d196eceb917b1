"""The payment state machine: only documented transitions, terminal states stay put."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.states import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransitionError,
    RefundExceedsError,
    State,
    after_refund,
    can_transition,
    cancellable,
    is_terminal,
    transition,
)

states = st.sampled_from(list(State))

# The machine as documented in payments.proto (PaymentState), written out again
# here so the test does not read the table it checks.
DOCUMENTED = {
    ("PENDING", "PROCESSING"),
    ("PENDING", "REQUIRES_ACTION"),
    ("PENDING", "SETTLED"),
    ("PENDING", "FAILED"),
    ("PENDING", "CANCELLED"),
    ("PROCESSING", "SETTLED"),
    ("PROCESSING", "FAILED"),
    ("PROCESSING", "REQUIRES_ACTION"),
    ("REQUIRES_ACTION", "PROCESSING"),
    ("REQUIRES_ACTION", "FAILED"),
    ("REQUIRES_ACTION", "CANCELLED"),
    ("SETTLED", "PARTIALLY_REFUNDED"),
    ("SETTLED", "REFUNDED"),
    ("PARTIALLY_REFUNDED", "PARTIALLY_REFUNDED"),
    ("PARTIALLY_REFUNDED", "REFUNDED"),
}


@given(states, states)
def test_transition_allowed_iff_documented(a: State, b: State) -> None:
    assert can_transition(a, b) == ((a.value, b.value) in DOCUMENTED)
    if can_transition(a, b):
        assert transition(a, b) is b
    else:
        with pytest.raises(InvalidTransitionError):
            transition(a, b)


@given(st.lists(states, max_size=30))
def test_any_walk_never_leaves_failed_or_cancelled(path: list[State]) -> None:
    current = State.PENDING
    for target in path:
        if can_transition(current, target):
            before = current
            current = transition(current, target)
            assert before not in (State.FAILED, State.CANCELLED, State.REFUNDED)
    # Once settled, money never goes back to pending/processing.
    if current in (State.SETTLED, State.PARTIALLY_REFUNDED, State.REFUNDED):
        assert all(not can_transition(current, s) for s in (State.PENDING, State.PROCESSING))


@given(states, st.booleans())
def test_cancel_only_before_submission(state: State, submitted: bool) -> None:
    assert cancellable(state, submitted) == (
        not submitted and state in (State.PENDING, State.REQUIRES_ACTION)
    )


def test_terminal_states_have_no_exit_but_refunds() -> None:
    for s in TERMINAL:
        assert is_terminal(s)
        assert TRANSITIONS[s] <= {State.PARTIALLY_REFUNDED, State.REFUNDED}
    assert not is_terminal(State.PENDING) and not is_terminal(State.PROCESSING)


@st.composite
def _refunds(draw: st.DrawFn) -> tuple[int, int, int]:
    amount = draw(st.integers(1, 10**13))
    refunded = draw(st.integers(0, amount))
    more = draw(st.one_of(st.integers(-2, amount - refunded + 2), st.integers(-(10**14), 10**14)))
    return amount, refunded, more


@given(states, _refunds())
def test_refund_or_return_within_what_is_left(state: State, refund: tuple[int, int, int]) -> None:
    # Both an inbound refund and a returned payout go through after_refund.
    amount, refunded, more = refund
    refundable = state in (State.SETTLED, State.PARTIALLY_REFUNDED)
    if not refundable:
        with pytest.raises(InvalidTransitionError):
            after_refund(state, amount, refunded, more)
    elif not 0 < more <= amount - refunded:
        with pytest.raises(RefundExceedsError) as err:
            after_refund(state, amount, refunded, more)
        assert err.value.remaining == amount - refunded
    else:
        target = after_refund(state, amount, refunded, more)
        assert (state.value, target.value) in DOCUMENTED
        assert (target is State.REFUNDED) == (refunded + more == amount)


def test_returns_until_nothing_is_left() -> None:
    state, refunded = State.SETTLED, 0
    for part, expected in ((30, State.PARTIALLY_REFUNDED), (50, State.PARTIALLY_REFUNDED)):
        state = after_refund(state, 100, refunded, part)
        refunded += part
        assert state is expected
    with pytest.raises(RefundExceedsError):
        after_refund(state, 100, refunded, 21)  # 20 left
    assert after_refund(state, 100, refunded, 20) is State.REFUNDED
    with pytest.raises(InvalidTransitionError):
        after_refund(State.REFUNDED, 100, 100, 1)
