"""Customers generated deterministically from the CPF (docs/SIMULATORS.md).

Every month of every account is generated from its own RNG seeded by
(CPF, account, year, month), so a month's transactions (and their ids) do not
change when the simulator's "today" moves; only the 12-month window slides.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

BANK_NAME = "Banco Simulado S.A."
BANK_CNPJ = "11222333000181"
COMPE_CODE = "341"
HISTORY_DAYS = 365
MAX_ACCOUNTS = 3


class Profile(StrEnum):
    STABLE_SALARIED = "STABLE_SALARIED"
    IRREGULAR_FREELANCER = "IRREGULAR_FREELANCER"
    GAMBLER = "GAMBLER"
    CHRONIC_OVERDRAFT = "CHRONIC_OVERDRAFT"
    THIN_FILE = "THIN_FILE"
    HEAVY = "HEAVY"


# The fixed customers documented in docs/SIMULATORS.md (valid CPFs).
FIXED_PROFILES: dict[str, Profile] = {
    "11144477735": Profile.STABLE_SALARIED,
    "52998224725": Profile.IRREGULAR_FREELANCER,
    "12345678909": Profile.GAMBLER,
    "98765432100": Profile.CHRONIC_OVERDRAFT,
    "24681357928": Profile.THIN_FILE,
    "13579246828": Profile.HEAVY,
}
HEAVY_CPF = "13579246828"

# Counterparties a "flagged category" rule can match on (bets/apostas).
GAMBLING_COUNTERPARTIES = (
    "BETANO APOSTAS ESPORTIVAS",
    "BLAZE APOSTAS ONLINE",
    "SPORTINGBET APOSTAS",
    "ESTRELABET BET",
)


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    booked_at: datetime
    credit: bool
    amount_cents: int  # positive; `credit` carries the sign
    type: str  # EnumTransactionTypes
    name: str  # transactionName
    counterparty_document: str | None  # 11 (CPF) or 14 (CNPJ) digits


@dataclass(frozen=True)
class Account:
    account_id: str
    branch_code: str
    number: str
    check_digit: str
    type: str  # EnumAccountType
    overdraft_limit_cents: int


@dataclass(frozen=True)
class Customer:
    cpf: str
    profile: Profile
    accounts: tuple[Account, ...]


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_seed(*parts))  # noqa: S311 - synthetic data, not security


def profile_for(cpf: str) -> Profile:
    if cpf in FIXED_PROFILES:
        return FIXED_PROFILES[cpf]
    generated = [p for p in Profile if p is not Profile.HEAVY]
    return generated[_seed("profile", cpf) % len(generated)]


@lru_cache(maxsize=4096)
def customer_for(cpf: str) -> Customer:
    profile = profile_for(cpf)
    rng = _rng("accounts", cpf)
    if profile is Profile.HEAVY:
        count = 3
    elif profile is Profile.THIN_FILE:
        count = 1
    else:
        count = rng.randint(1, MAX_ACCOUNTS)
    accounts = []
    for index in range(count):
        number = f"{rng.randrange(10**9, 10**10)}"
        accounts.append(
            Account(
                account_id=hashlib.sha256(f"acct|{cpf}|{index}".encode()).hexdigest()[:32],
                branch_code=f"{rng.randrange(1, 9999):04d}",
                number=number,
                check_digit=str(rng.randrange(10)),
                # The first account is the checking account salaries land in.
                type="CONTA_DEPOSITO_A_VISTA"
                if index == 0
                else rng.choice(
                    ["CONTA_POUPANCA", "CONTA_PAGAMENTO_PRE_PAGA", "CONTA_DEPOSITO_A_VISTA"]
                ),
                overdraft_limit_cents=(
                    300_000 if profile is Profile.CHRONIC_OVERDRAFT and index == 0 else 0
                ),
            )
        )
    return Customer(cpf=cpf, profile=profile, accounts=tuple(accounts))


def _cnpj(rng: random.Random) -> str:
    return f"{rng.randrange(10**13, 10**14)}"


def _cpf(rng: random.Random) -> str:
    return f"{rng.randrange(10**10, 10**11)}"


class _Month:
    """Collects one account-month of transactions with stable ids."""

    def __init__(self, cpf: str, account: Account, year: int, month: int) -> None:
        self.rng = _rng("month", cpf, account.account_id, year, month)
        self.year, self.month = year, month
        self.prefix = hashlib.sha256(f"{account.account_id}|{year}-{month}".encode()).hexdigest()
        self.items: list[Transaction] = []
        self.days = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days

    def add(
        self,
        day: int,
        credit: bool,
        cents: int,
        type_: str,
        name: str,
        doc: str | None = None,
    ) -> None:
        day = max(1, min(day, self.days))
        seconds = self.rng.randrange(7 * 3600, 22 * 3600)
        booked = datetime(self.year, self.month, day, tzinfo=UTC) + timedelta(seconds=seconds)
        tid = f"TX{self.prefix[:16]}{len(self.items):05d}"
        self.items.append(Transaction(tid, booked, credit, max(cents, 1), type_, name, doc))

    def day(self) -> int:
        return self.rng.randint(1, self.days)


def _salary(m: _Month, cents: int, employer: str, doc: str) -> None:
    m.add(5, True, cents, "FOLHA_PAGAMENTO", f"SALARIO {employer}", doc)


def _living_costs(m: _Month, income_cents: int, pix_count: int) -> None:
    r = m.rng
    m.add(10, False, int(income_cents * 0.30), "BOLETO", "ALUGUEL IMOBILIARIA LAR", _cnpj(r))
    m.add(15, False, r.randint(9_000, 25_000), "CONVENIO_ARRECADACAO", "CONTA LUZ ENEL", None)
    m.add(18, False, r.randint(8_000, 15_000), "BOLETO", "INTERNET VIVO FIBRA", _cnpj(r))
    card = int(income_cents * r.uniform(0.15, 0.35))
    m.add(20, False, card, "CARTAO", "PAGAMENTO FATURA CARTAO", None)
    m.add(1, False, 3_990, "PACOTE_TARIFA_SERVICOS", "TARIFA PACOTE SERVICOS", None)
    for _ in range(pix_count):
        m.add(m.day(), False, r.randint(1_500, 25_000), "PIX", "PIX ENVIADO MERCADO", _cpf(r))
    for _ in range(max(1, pix_count // 4)):
        m.add(m.day(), True, r.randint(2_000, 30_000), "PIX", "PIX RECEBIDO AMIGO", _cpf(r))


def _generate_month(customer: Customer, index: int, year: int, month: int) -> list[Transaction]:
    account = customer.accounts[index]
    m = _Month(customer.cpf, account, year, month)
    r = m.rng
    p = customer.profile
    if index > 0:
        # Secondary accounts: transfers in/out and interest, plus volume for HEAVY.
        m.add(
            m.day(),
            True,
            r.randint(10_000, 80_000),
            "TRANSFERENCIA_MESMA_INSTITUICAO",
            "TRANSFERENCIA ENTRE CONTAS",
            customer.cpf,
        )
        m.add(
            28,
            True,
            r.randint(100, 3_000),
            "RENDIMENTO_APLIC_FINANCEIRA",
            "RENDIMENTO POUPANCA",
            None,
        )
        extra = 80 if p is Profile.HEAVY else r.randint(0, 4)
        for _ in range(extra):
            m.add(
                m.day(),
                r.random() < 0.3,
                r.randint(500, 40_000),
                r.choice(["PIX", "PIX", "CARTAO", "TED", "SAQUE"]),
                "MOVIMENTACAO DIVERSA",
                _cpf(r),
            )
        return m.items
    if p is Profile.STABLE_SALARIED:
        _salary(m, 650_000, "ACME TECNOLOGIA LTDA", "12345678000195")
        _living_costs(m, 650_000, pix_count=12)
    elif p is Profile.HEAVY:
        _salary(m, 1_250_000, "GRANDE VAREJO S.A.", "33000167000101")
        _living_costs(m, 1_250_000, pix_count=70)
    elif p is Profile.IRREGULAR_FREELANCER:
        # Some months nothing comes in, others several clients pay.
        for _ in range(r.choice([0, 1, 1, 2, 3, 4])):
            m.add(
                m.day(),
                True,
                r.randint(80_000, 700_000),
                r.choice(["PIX", "TED"]),
                "RECEBIMENTO CLIENTE PROJETO",
                _cnpj(r),
            )
        _living_costs(m, 350_000, pix_count=10)
    elif p is Profile.GAMBLER:
        _salary(m, 420_000, "LOGISTICA RAPIDA LTDA", "45678901000123")
        _living_costs(m, 420_000, pix_count=8)
        for _ in range(r.randint(8, 20)):
            house = r.choice(GAMBLING_COUNTERPARTIES)
            m.add(m.day(), False, r.randint(2_000, 60_000), "PIX", f"PIX ENVIADO {house}", _cnpj(r))
        for _ in range(r.randint(0, 3)):
            house = r.choice(GAMBLING_COUNTERPARTIES)
            m.add(
                m.day(),
                True,
                r.randint(5_000, 120_000),
                "PIX",
                f"PIX RECEBIDO {house} PREMIO",
                _cnpj(r),
            )
    elif p is Profile.CHRONIC_OVERDRAFT:
        _salary(m, 280_000, "COMERCIO BAIRRO LTDA", "98765432000198")
        _living_costs(m, 330_000, pix_count=10)  # spends more than earns
        m.add(
            28,
            False,
            r.randint(4_000, 18_000),
            "ENCARGOS_JUROS_CHEQUE_ESPECIAL",
            "JUROS CHEQUE ESPECIAL",
            None,
        )
        m.add(
            28, False, r.randint(500, 2_500), "TARIFA_SERVICOS_AVULSOS", "IOF CHEQUE ESPECIAL", None
        )
    elif p is Profile.THIN_FILE:
        if r.random() < 0.5:
            m.add(m.day(), True, r.randint(20_000, 90_000), "DEPOSITO", "DEPOSITO EM DINHEIRO")
        if r.random() < 0.5:
            m.add(m.day(), False, r.randint(5_000, 40_000), "SAQUE", "SAQUE CAIXA 24H")
    return m.items


def transactions_for(customer: Customer, index: int, today: date) -> list[Transaction]:
    """Booked transactions of one account over the HISTORY_DAYS ending `today`, oldest first."""
    start = today - timedelta(days=HISTORY_DAYS)
    return list(_cached_window(customer.cpf, index, start, today))


@lru_cache(maxsize=256)
def _cached_window(cpf: str, index: int, start: date, end: date) -> tuple[Transaction, ...]:
    customer = customer_for(cpf)
    items: list[Transaction] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        items.extend(_generate_month(customer, index, year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    kept = [t for t in items if start < t.booked_at.date() <= end]
    kept.sort(key=lambda t: (t.booked_at, t.transaction_id))
    return tuple(kept)


def balance_cents(customer: Customer, index: int, today: date) -> int:
    """Closing balance of the window. The opening balance is chosen so that the
    running balance never goes below a cushion, except for CHRONIC_OVERDRAFT's
    checking account, which is kept negative (it lives in the overdraft)."""
    running = 0
    lowest = 0
    for t in transactions_for(customer, index, today):
        running += t.amount_cents if t.credit else -t.amount_cents
        lowest = min(lowest, running)
    if customer.profile is Profile.CHRONIC_OVERDRAFT and index == 0:
        return -min(account_overdraft_used(customer, index), 299_900)
    cushion = 5_000 if customer.profile is Profile.THIN_FILE else 150_000
    return cushion - lowest + running


def account_overdraft_used(customer: Customer, index: int) -> int:
    """Cents of contracted overdraft in use today (deterministic per CPF)."""
    account = customer.accounts[index]
    if account.overdraft_limit_cents == 0:
        return 0
    return _rng("overdraft", customer.cpf, index).randint(
        account.overdraft_limit_cents // 2, account.overdraft_limit_cents - 100
    )
