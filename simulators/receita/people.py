"""The simulated population: one person per valid CPF, fixed or generated.

Receita (name, birth date, CPF situation) and the gov document check (the same
name and birth date plus CNH/RG numbers) both read this module, so the two
simulators never contradict each other about who a CPF belongs to.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta

from simulators.govdocs.cnh import cnh_check_digits

SITUACOES = (
    "REGULAR",
    "SUSPENSA",
    "CANCELADA",
    "TITULAR_FALECIDO",
    "PENDENTE_DE_REGULARIZACAO",
    "NULA",
)

FIRST_NAMES = (
    "ANA", "BRUNO", "CARLA", "DIEGO", "EDUARDA", "FELIPE", "GABRIELA", "HEITOR",
    "ISABELA", "JOÃO", "LARISSA", "MARCOS", "NATÁLIA", "OTÁVIO", "PATRÍCIA", "RAFAEL",
    "SÔNIA", "TIAGO", "VITÓRIA", "WAGNER",
)  # fmt: skip
SURNAMES = (
    "SILVA", "SANTOS", "OLIVEIRA", "SOUZA", "RODRIGUES", "FERREIRA", "ALVES", "PEREIRA",
    "LIMA", "GOMES", "COSTA", "RIBEIRO", "MARTINS", "CARVALHO", "ARAÚJO", "MELO",
    "BARBOSA", "CONCEIÇÃO", "ROCHA", "DIAS",
)  # fmt: skip
# Generated birth dates are fixed calendar dates (not relative to the clock), so a
# CPF's record never changes; the range keeps everyone an adult.
BIRTH_FROM = date(1950, 1, 1)
BIRTH_SPAN_DAYS = (date(2005, 12, 31) - BIRTH_FROM).days


@dataclass(frozen=True)
class Person:
    cpf: str
    nome: str
    data_nascimento: date
    situacao: str
    cnh: str  # 11 digits, valid DENATRAN check digits
    rg: str
    ano_obito: int | None = None


# One identity per CPF situation, plus the CPFs the Open Finance and bureau
# simulators already use (all REGULAR, so a KYC happy path can use them).
# CNH numbers were computed with simulators.govdocs.cnh.cnh_check_digits.
FIXED: dict[str, Person] = {
    p.cpf: p
    for p in (
        Person("11144477735", "ANA BEATRIZ SOUZA LIMA", date(1988, 3, 14), "REGULAR",
               "02650306461", "123456789"),
        Person("52998224725", "JOSÉ CARLOS DA SILVA", date(1979, 11, 2), "REGULAR",
               "12345678900", "MG1234567"),
        Person("12345678909", "MARCOS ANTÔNIO PEREIRA", date(1992, 7, 30), "REGULAR",
               "98765432109", "203344556"),
        Person("98765432100", "PATRÍCIA GOMES RIBEIRO", date(1983, 1, 9), "REGULAR",
               "11122233369", "304455667"),
        Person("10000000108", "CARLOS EDUARDO SUSPENSO", date(1975, 5, 20), "SUSPENSA",
               "20000000180", "405566778"),
        Person("10000000280", "MARIA CANCELADA ROCHA", date(1969, 8, 1), "CANCELADA",
               "30000000270", "506677889"),
        Person("10000000361", "JOÃO FALECIDO MARTINS", date(1940, 2, 11), "TITULAR_FALECIDO",
               "40000000369", "607788990", ano_obito=2021),
        Person("10000000442", "LUCIA PENDENTE ALVES", date(1995, 12, 24),
               "PENDENTE_DE_REGULARIZACAO", "50000000458", "708899001"),
        Person("10000000523", "PEDRO NULO DIAS", date(1990, 6, 6), "NULA",
               "60000000547", "809900112"),
        # Screening identities (KYC's PEP and sanctions paths), REGULAR at Receita:
        # the name and birth date of OFAC SDN entry 4149 ("CAVIEDES CRUZ,
        # Leonardo", DOB 23 Nov 1952) in ../shared/data/sanctions/ofac-sdn ...
        Person("40050060007", "LEONARDO CAVIEDES CRUZ", date(1952, 11, 23), "REGULAR",
               "70000000195", "910011223"),
        # ... and the first row of services/kyc/data/br_pep_sample.csv (a federal
        # deputy; the CPF fits the file's mask ***.104.227-**).
        Person("12310422738", "ARISTIDES QUINTELA DE VASCONCELOS", date(1961, 4, 9), "REGULAR",
               "70000000201", "011122334"),
    )
}  # fmt: skip
SANCTIONED_CPF = "40050060007"
PEP_CPF = "12310422738"

# A valid CPF that Receita has no record of (404 on both simulators).
NOT_FOUND_CPFS = frozenset({"10000000604"})


def rng_for(namespace: str, key: str) -> random.Random:
    """A RNG seeded from the document number alone: same input, same data, any process."""
    seed = int.from_bytes(hashlib.sha256(f"{namespace}|{key}".encode()).digest()[:8], "big")
    return random.Random(seed)  # noqa: S311 - synthetic data, not security


def person_for(cpf: str) -> Person | None:
    """The person behind a valid CPF (11 digits), or None when Receita has no record."""
    if cpf in NOT_FOUND_CPFS:
        return None
    fixed = FIXED.get(cpf)
    if fixed is not None:
        return fixed
    rng = rng_for("person", cpf)
    nome = " ".join((rng.choice(FIRST_NAMES), rng.choice(SURNAMES), rng.choice(SURNAMES)))
    born = BIRTH_FROM + timedelta(days=rng.randint(0, BIRTH_SPAN_DAYS))
    cnh_base = "".join(str(rng.randint(0, 9)) for _ in range(9))
    rg = "".join(str(rng.randint(0, 9)) for _ in range(9))
    # Unknown CPFs are REGULAR: a generated identity should pass KYC's CPF step;
    # the other situations are reached through the fixed identities.
    return Person(cpf, nome, born, "REGULAR", cnh_base + cnh_check_digits(cnh_base), rg)
