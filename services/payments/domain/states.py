"""The payment state machine (payments.proto, `PaymentState`).

PENDING -> PROCESSING -> SETTLED -> PARTIALLY_REFUNDED / REFUNDED;
PENDING -> CANCELLED; PENDING | PROCESSING | REQUIRES_ACTION -> FAILED;
PROCESSING <-> REQUIRES_ACTION (card challenge); PENDING -> SETTLED (on-us,
settled at once without the PSP). Nothing leaves a terminal state except a
settled payment being refunded.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    REQUIRES_ACTION = "REQUIRES_ACTION"
    SETTLED = "SETTLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset(
        {State.PROCESSING, State.REQUIRES_ACTION, State.SETTLED, State.FAILED, State.CANCELLED}
    ),
    State.PROCESSING: frozenset({State.SETTLED, State.FAILED, State.REQUIRES_ACTION}),
    State.REQUIRES_ACTION: frozenset({State.PROCESSING, State.FAILED, State.CANCELLED}),
    State.SETTLED: frozenset({State.PARTIALLY_REFUNDED, State.REFUNDED}),
    State.PARTIALLY_REFUNDED: frozenset({State.PARTIALLY_REFUNDED, State.REFUNDED}),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
    State.REFUNDED: frozenset(),
}

# States in which the payment's money is final (no reservation open).
TERMINAL: frozenset[State] = frozenset(
    {State.SETTLED, State.FAILED, State.CANCELLED, State.PARTIALLY_REFUNDED, State.REFUNDED}
)
# States that count against the daily limit (money left or is leaving).
COUNTS_AGAINST_LIMIT: frozenset[State] = frozenset(
    {
        State.PENDING,
        State.PROCESSING,
        State.REQUIRES_ACTION,
        State.SETTLED,
        State.PARTIALLY_REFUNDED,
        State.REFUNDED,
    }
)


class InvalidTransitionError(ValueError):
    def __init__(self, current: State, target: State) -> None:
        super().__init__(f"a payment cannot go from {current.value} to {target.value}")
        self.current, self.target = current, target


def can_transition(current: State, target: State) -> bool:
    return target in TRANSITIONS[current]


def transition(current: State, target: State) -> State:
    """`target` when the machine allows it, else InvalidTransitionError."""
    if not can_transition(current, target):
        raise InvalidTransitionError(current, target)
    return target


def is_terminal(state: State) -> bool:
    return state in TERMINAL


class RefundExceedsError(ValueError):
    """More than what is still refundable (the amount minus what went back)."""

    def __init__(self, remaining: int) -> None:
        super().__init__(f"at most {remaining} can still go back")
        self.remaining = remaining


def after_refund(current: State, amount: int, refunded: int, more: int) -> State:
    """The state after `more` of a payment of `amount` goes back (our refund of an
    inbound payment, or the receiver's return of a payout), `refunded` having gone
    back before: REFUNDED once all of it did, else PARTIALLY_REFUNDED.
    InvalidTransitionError when `current` cannot be refunded at all;
    RefundExceedsError unless 0 < more <= amount - refunded."""
    assert 0 <= refunded <= amount
    target = State.REFUNDED if refunded + more == amount else State.PARTIALLY_REFUNDED
    if not can_transition(current, State.PARTIALLY_REFUNDED):
        raise InvalidTransitionError(current, target)
    if not 0 < more <= amount - refunded:
        raise RefundExceedsError(amount - refunded)
    return transition(current, target)


def cancellable(state: State, submitted: bool) -> bool:
    """Cancel works until the submission to the PSP has begun: once we have sent
    it we cannot know whether the PSP accepted, so the payment is no longer ours
    to cancel (it settles or fails on the PSP's word)."""
    return can_transition(state, State.CANCELLED) and not submitted
