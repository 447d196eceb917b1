from datetime import date

import pytest

from services.identity.domain.errors import InvalidInput
from services.identity.domain.registration import Address, age_on, validate_registration

TODAY = date(2026, 11, 28)
GOOD = dict(
    full_name="  Maria   da Silva ",
    email=" Maria.Silva@Example.COM ",
    phone_number="+5511987654321",
    birth_date="1990-05-17",
    cpf="111.444.777-35",
    password="correct horse battery",
    address=Address(),
    today=TODAY,
)


def fields(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {v.field: v.description for v in exc.value.violations}


def test_valid_registration_is_normalised() -> None:
    reg = validate_registration(**GOOD)  # type: ignore[arg-type]
    assert reg.full_name == "Maria da Silva"
    assert reg.email == "maria.silva@example.com"
    assert reg.cpf == "11144477735"
    assert reg.birth_date == date(1990, 5, 17)


def test_every_problem_is_reported_at_once() -> None:
    bad = dict(
        GOOD,
        full_name="",
        email="not-an-email",
        phone_number="11987654321",
        birth_date="17/05/1990",
        cpf="111.444.777-36",
        password="short",
    )
    with pytest.raises(InvalidInput) as exc:
        validate_registration(**bad)  # type: ignore[arg-type]
    found = fields(exc)
    assert set(found) == {
        "user.full_name",
        "user.email",
        "user.phone_number",
        "user.birth_date",
        "user.cpf",
        "password",
    }
    assert "check digits" in found["user.cpf"]


@pytest.mark.parametrize(
    ("birth", "ok"),
    [
        ("2008-11-28", True),
        ("2008-11-29", False),
        ("2010-01-01", False),
        ("2030-01-01", False),
        ("1899-12-31", False),
    ],
)
def test_must_be_an_adult(birth: str, ok: bool) -> None:
    args = dict(GOOD, birth_date=birth)
    if ok:
        validate_registration(**args)  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidInput) as exc:
            validate_registration(**args)  # type: ignore[arg-type]
        assert "user.birth_date" in fields(exc)


def test_age_on_birthday_boundary() -> None:
    assert age_on(date(2000, 2, 29), date(2018, 2, 28)) == 17
    assert age_on(date(2000, 2, 29), date(2018, 3, 1)) == 18


@pytest.mark.parametrize(
    "password",
    ["1234567890", "aaaaaaaaaaaa", "maria.silva-2026!", "x11144477735y", "a" * 129],
)
def test_weak_passwords_rejected(password: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_registration(**dict(GOOD, password=password))  # type: ignore[arg-type]
    assert "password" in fields(exc)


def test_partial_address_rejected_with_each_field_named() -> None:
    address = Address(street="Rua A", state="XX", postal_code="123")
    with pytest.raises(InvalidInput) as exc:
        validate_registration(**dict(GOOD, address=address))  # type: ignore[arg-type]
    assert {
        "user.address.number",
        "user.address.city",
        "user.address.state",
        "user.address.postal_code",
    } <= set(fields(exc))


def test_complete_address_normalised() -> None:
    address = Address(
        street="Av. Paulista", number="1000", city="São Paulo", state="sp", postal_code="01310-100"
    )
    reg = validate_registration(**dict(GOOD, address=address))  # type: ignore[arg-type]
    assert reg.address.state == "SP" and reg.address.postal_code == "01310100"
