"""The payment state machine: only documented transitions, terminal states stay put."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.states import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransitionError,
    State,
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
