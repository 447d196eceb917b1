"""Password policy (NIST SP 800-63B style: length and a block list, no composition games)."""

from __future__ import annotations

MIN_LENGTH = 10
MAX_LENGTH = 128  # bounds argon2 work per request

# The most common passwords of Brazilian leaks plus obvious patterns. A real
# deployment adds a breached-password check; this list keeps the worst out.
_BLOCKED = frozenset(
    {
        "1234567890",
        "12345678910",
        "0123456789",
        "qwertyuiop",
        "senha12345",
        "senhasenha",
        "password12",
        "passwordpassword",
        "brasil2024",
        "brasil2025",
        "brasil2026",
        "aaaaaaaaaa",
        "abcdefghij",
        "abc1234567",
        "iloveyou12",
        "flamengo10",
        "corinthians",
        "palmeiras10",
    }
)


def password_problems(password: str, *, email: str, cpf_digits: str | None) -> list[str]:
    """Every reason the password is not acceptable (empty list = acceptable)."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"must have at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in _BLOCKED or len(set(password)) < 4:
        problems.append("is too common or too repetitive")
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        problems.append("must not contain the e-mail address")
    if cpf_digits and cpf_digits in "".join(ch for ch in password if ch.isdigit()):
        problems.append("must not contain the CPF")
    return problems
