"""The simulators' fixed customers (docs/SIMULATORS.md), by documented profile.

Copied rather than imported from simulators/: the tests state what the
documentation promises, so a simulator that changes a profile fails them.
"""

from __future__ import annotations

SALARIED_CPF = "11144477735"  # stable salary (FOLHA_PAGAMENTO): approvable
FREELANCER_CPF = "52998224725"  # irregular income
HEAVY_CPF = "13579246828"  # 3 accounts x 12 months, ~3,000 transactions: many pages

# Profiles the documentation says must be declined, each for its own reasons.
DECLINED_CPFS: dict[str, str] = {
    "gambler": "12345678909",
    "overdraft": "98765432100",
    "thin_file": "24681357928",
}
