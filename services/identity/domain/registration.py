"""What a valid registration is: every field checked, every problem reported at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from services.brazil.documents import BRAZILIAN_STATES, normalize_cpf
from services.identity.domain.errors import InvalidInput, Violation
from services.identity.domain.password_policy import password_problems

MINIMUM_AGE_YEARS = 18
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit

# Deliberately simple: one @, no spaces, a dot in the domain. Ownership is
# proven later by a confirmation e-mail, not by a regex.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
# Brazilian mobile/landline in E.164: +55, two-digit area code (11-99), 8 or 9 digits.
_PHONE_BR = re.compile(r"^\+55[1-9][1-9]\d{8,9}$")
_CEP = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Address:
    street: str = ""
    number: str = ""
    complement: str = ""
    district: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = "BR"

    def is_empty(self) -> bool:
        return not any(
            (
                self.street,
                self.number,
                self.complement,
                self.district,
                self.city,
                self.state,
                self.postal_code,
            )
        )


@dataclass(frozen=True)
class Registration:
    full_name: str
    email: str  # normalised: trimmed, lower case
    phone_number: str
    birth_date: date
    cpf: str  # 11 digits
    address: Address


def normalize_email(raw: str) -> str:
    return raw.strip().lower()


def age_on(birth: date, today: date) -> int:
    had_birthday = (today.month, today.day) >= (birth.month, birth.day)
    return today.year - birth.year - (0 if had_birthday else 1)


def check_full_name(raw: str, field: str) -> tuple[str, list[Violation]]:
    name = " ".join(raw.split())
    if not name:
        return name, [Violation(field, "is required")]
    if len(name) > MAX_NAME_LENGTH:
        return name, [Violation(field, f"must have at most {MAX_NAME_LENGTH} characters")]
    if any(ch.isdigit() for ch in name):
        return name, [Violation(field, "must not contain digits")]
    return name, []


def check_email(raw: str, field: str) -> tuple[str, list[Violation]]:
    email = normalize_email(raw)
    if not email:
        return email, [Violation(field, "is required")]
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        return email, [Violation(field, "is not a valid e-mail address")]
    return email, []


def check_phone(raw: str, field: str) -> tuple[str, list[Violation]]:
    phone = raw.strip().replace(" ", "")
    if not phone:
        return phone, [Violation(field, "is required")]
    if not _PHONE_BR.match(phone):
        return phone, [
            Violation(field, "must be a Brazilian number in E.164 form, e.g. +5511987654321")
        ]
    return phone, []


def check_address(address: Address, field: str) -> list[Violation]:
    """An address is optional at registration; when given it must be complete."""
    if address.is_empty():
        return []
    problems: list[Violation] = []
    for name in ("street", "number", "city"):
        if not getattr(address, name).strip():
            problems.append(Violation(f"{field}.{name}", "is required"))
    if address.state.upper() not in BRAZILIAN_STATES:
        problems.append(Violation(f"{field}.state", "must be a Brazilian state code (UF), e.g. SP"))
    if not _CEP.match(address.postal_code.replace("-", "")):
        problems.append(Violation(f"{field}.postal_code", "must be a CEP with 8 digits"))
    if address.country not in ("", "BR"):
        problems.append(Violation(f"{field}.country", "only BR addresses are accepted"))
    return problems


def normalize_address(address: Address) -> Address:
    if address.is_empty():
        return Address()
    return Address(
        street=address.street.strip(),
        number=address.number.strip(),
        complement=address.complement.strip(),
        district=address.district.strip(),
        city=address.city.strip(),
        state=address.state.strip().upper(),
        postal_code=address.postal_code.replace("-", "").strip(),
        country="BR",
    )


def parse_birth_date(raw: str, field: str, today: date) -> tuple[date | None, list[Violation]]:
    if not raw.strip():
        return None, [Violation(field, "is required")]
    try:
        birth = date.fromisoformat(raw.strip())
    except ValueError:
        return None, [Violation(field, "must be a date in the form YYYY-MM-DD")]
    if birth > today:
        return None, [Violation(field, "must not be in the future")]
    if birth.year < 1900:
        return None, [Violation(field, "must be after 1900")]
    if age_on(birth, today) < MINIMUM_AGE_YEARS:
        return None, [
            Violation(field, f"the customer must be at least {MINIMUM_AGE_YEARS} years old")
        ]
    return birth, []


def validate_registration(
    *,
    full_name: str,
    email: str,
    phone_number: str,
    birth_date: str,
    cpf: str,
    password: str,
    address: Address,
    today: date,
) -> Registration:
    """The normalised registration, or InvalidInput listing every problem."""
    violations: list[Violation] = []
    name, found = check_full_name(full_name, "user.full_name")
    violations += found
    norm_email, found = check_email(email, "user.email")
    violations += found
    phone, found = check_phone(phone_number, "user.phone_number")
    violations += found
    birth, found = parse_birth_date(birth_date, "user.birth_date", today)
    violations += found
    cpf_digits = normalize_cpf(cpf)
    if not cpf.strip():
        violations.append(Violation("user.cpf", "is required"))
    elif cpf_digits is None:
        violations.append(Violation("user.cpf", "is not a valid CPF (check digits do not match)"))
    violations += check_address(address, "user.address")
    violations += [
        Violation("password", problem)
        for problem in password_problems(password, email=norm_email, cpf_digits=cpf_digits)
    ]
    if violations:
        raise InvalidInput(violations)
    assert birth is not None and cpf_digits is not None
    return Registration(
        full_name=name,
        email=norm_email,
        phone_number=phone,
        birth_date=birth,
        cpf=cpf_digits,
        address=normalize_address(address),
    )
