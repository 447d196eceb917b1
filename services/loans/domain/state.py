"""The loan's state machine (the contract's LoanState, without the prefix).

APPLIED → APPROVED → FUNDING → FUNDED → PAID; APPLIED → OFFERED (lower amount)
→ FUNDING | CANCELLED; APPLIED → DECLINED; APPLIED|APPROVED|OFFERED → CANCELLED;
FUNDED → DEFAULTED → PAID. FUNDING → CANCELLED is the compensation of a
funding that could not complete (nothing stays half-funded).
"""

from __future__ import annotations

TRANSITIONS: dict[str, frozenset[str]] = {
    "APPLIED": frozenset({"APPROVED", "OFFERED", "DECLINED", "CANCELLED"}),
    "APPROVED": frozenset({"FUNDING", "CANCELLED"}),
    "OFFERED": frozenset({"FUNDING", "CANCELLED"}),
    "FUNDING": frozenset({"FUNDED", "CANCELLED"}),
    "FUNDED": frozenset({"PAID", "DEFAULTED"}),
    "DEFAULTED": frozenset({"PAID"}),
    "DECLINED": frozenset(),
    "CANCELLED": frozenset(),
    "PAID": frozenset(),
}
STATES = frozenset(TRANSITIONS)
CLOSED = frozenset({"DECLINED", "CANCELLED", "PAID"})
# States in which the customer still owes money.
REPAYING = frozenset({"FUNDED", "DEFAULTED"})
CANCELLABLE = frozenset({"APPLIED", "APPROVED", "OFFERED"})


class TransitionError(ValueError):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a {current} loan cannot become {target}")
        self.current = current
        self.target = target


def can_transition(current: str, target: str) -> bool:
    assert current in STATES and target in STATES, (current, target)
    return target in TRANSITIONS[current]


def transition(current: str, target: str) -> str:
    """`target` when allowed, else TransitionError."""
    if not can_transition(current, target):
        raise TransitionError(current, target)
    return target
