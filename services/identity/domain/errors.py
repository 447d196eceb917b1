"""Domain errors. The API layer maps them to google.rpc.Status."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    field: str  # the request field path as the client sent it, e.g. "user.cpf"
    description: str


class InvalidInput(Exception):
    """One or more fields are invalid; every violation is reported at once."""

    def __init__(self, violations: list[Violation]) -> None:
        assert violations, "InvalidInput needs at least one violation"
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations
