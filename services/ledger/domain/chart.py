"""The chart of system accounts (BRL), created by migrations/ledger/0001_ledger.sql.

Other services reference these fixed ids (e.g. payments debits PSP_CLEARING);
the migration inserts exactly these rows, and tests/unit/ledger/test_chart.py
checks that both agree. System accounts carry no balance constraint: they are
the ledger's counterparts and may run either way (bank cash is debited to
fund wallets, revenue accounts are credited).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SystemAccount:
    id: uuid.UUID
    owner: str  # system/<role>
    kind: str  # AccountKind name without the ACCOUNT_KIND_ prefix
    ledger_code: str
    display_name: str
    credit_normal: bool


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


PSP_CLEARING = SystemAccount(
    _id(101), "system/psp-clearing", "PSP_CLEARING", "1.1.02", "PSP clearing", False
)
PSP_SETTLEMENT = SystemAccount(
    _id(102), "system/psp-settlement", "PSP_SETTLEMENT", "1.1.03", "PSP settlement", False
)
BANK_CASH = SystemAccount(_id(103), "system/bank-cash", "BANK_CASH", "1.1.01", "Bank cash", False)
FEE_REVENUE = SystemAccount(
    _id(104), "system/fee-revenue", "FEE_REVENUE", "3.1.01", "Fee revenue", True
)
IOF_PAYABLE = SystemAccount(
    _id(105), "system/iof-payable", "IOF_PAYABLE", "2.1.02", "IOF payable", True
)
INTEREST_INCOME = SystemAccount(
    _id(106), "system/interest-income", "INTEREST_INCOME", "3.1.02", "Interest income", True
)
PENALTY_INCOME = SystemAccount(
    _id(107), "system/penalty-income", "PENALTY_INCOME", "3.1.03", "Penalty income", True
)
SUSPENSE = SystemAccount(_id(108), "system/suspense", "SUSPENSE", "2.1.09", "Suspense", True)
LOAN_FUNDING = SystemAccount(
    _id(109), "system/loan-funding", "LOAN_FUNDING", "2.2.01", "Loan funding", True
)
LOAN_RECEIVABLE_CONTROL = SystemAccount(
    _id(110),
    "system/loan-receivable",
    "LOAN_RECEIVABLE",
    "1.2.01",
    "Loan receivable control",
    False,
)
LOAN_DEFAULTED = SystemAccount(
    _id(111), "system/loan-defaulted", "LOAN_DEFAULTED", "1.2.02", "Loans defaulted", False
)
LOSS_PROVISION = SystemAccount(
    _id(112), "system/loss-provision", "LOSS_PROVISION", "1.2.09", "Loss provision", True
)

SYSTEM_ACCOUNTS: tuple[SystemAccount, ...] = (
    PSP_CLEARING,
    PSP_SETTLEMENT,
    BANK_CASH,
    FEE_REVENUE,
    IOF_PAYABLE,
    INTEREST_INCOME,
    PENALTY_INCOME,
    SUSPENSE,
    LOAN_FUNDING,
    LOAN_RECEIVABLE_CONTROL,
    LOAN_DEFAULTED,
    LOSS_PROVISION,
)
SYSTEM_CURRENCY = "BRL"
WALLET_LEDGER_CODE = "2.1.01"
WALLET_DISPLAY_NAME = "Carteira"

# Credit-normal kinds (liabilities, income): balance = credits - debits.
CREDIT_NORMAL_KINDS = frozenset(
    {"USER_WALLET", *(a.kind for a in SYSTEM_ACCOUNTS if a.credit_normal)}
)

assert len({a.id for a in SYSTEM_ACCOUNTS}) == len(SYSTEM_ACCOUNTS)
assert len({a.owner for a in SYSTEM_ACCOUNTS}) == len(SYSTEM_ACCOUNTS)
