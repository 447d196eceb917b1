"""`GET /v1/scores/{cpf}`, deterministic from the CPF (docs/SIMULATORS.md)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from services.brazil.documents import normalize_cpf
from simulators.common import CLOCK_KEY, SimulatorConfig, build_app

NEGATIVE_TYPES = ("PROTESTO", "PEFIN", "REFIN", "CHEQUE_SEM_FUNDO", "ACAO_JUDICIAL")
CREDITORS = (
    "BANCO ALFA S.A.",
    "FINANCEIRA BETA S.A.",
    "VAREJO GAMA LTDA",
    "TELEFONIA DELTA S.A.",
    "ENERGIA EPSILON S.A.",
    "CARTOES ZETA S.A.",
)
MAX_CPF_PATH = 14  # "000.000.000-00"


@dataclass(frozen=True)
class FixedProfile:
    score: int
    negatives: tuple[tuple[str, int, str, int], ...]  # (type, cents, creditor, days ago)


# Same CPFs as the Open Finance fixed customers (docs/SIMULATORS.md), plus two
# bureau-only extremes.
FIXED: dict[str, FixedProfile] = {
    "11144477735": FixedProfile(820, ()),  # stable salaried
    "52998224725": FixedProfile(610, (("PEFIN", 45_000, "TELEFONIA DELTA S.A.", 200),)),
    "12345678909": FixedProfile(
        480,
        (("PEFIN", 120_000, "CARTOES ZETA S.A.", 90), ("REFIN", 310_000, "BANCO ALFA S.A.", 150)),
    ),
    "98765432100": FixedProfile(
        350,
        (
            ("REFIN", 520_000, "BANCO ALFA S.A.", 60),
            ("PROTESTO", 89_000, "VAREJO GAMA LTDA", 120),
            ("CHEQUE_SEM_FUNDO", 35_000, "FINANCEIRA BETA S.A.", 300),
        ),
    ),
    "24681357928": FixedProfile(500, ()),  # thin file: middling score, nothing known
    "13579246828": FixedProfile(760, ()),  # heavy (benchmark) customer
    "31415926590": FixedProfile(950, ()),  # excellent
    "27182818205": FixedProfile(
        120,
        tuple(
            (t, 100_000 * (i + 1), CREDITORS[i], 30 * (i + 1)) for i, t in enumerate(NEGATIVE_TYPES)
        ),
    ),  # very poor, five records
}


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _record(kind: str, cents: int, creditor: str, on: date) -> dict[str, Any]:
    return {"type": kind, "amount": _money(cents), "creditor": creditor, "date": on.isoformat()}


def score_for(cpf: str, today: date) -> dict[str, Any]:
    """The bureau's answer for a valid CPF at the simulator's `today`."""
    seed = int.from_bytes(hashlib.sha256(f"bureau|{cpf}".encode()).digest()[:8], "big")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    fixed = FIXED.get(cpf)
    if fixed is not None:
        score = fixed.score
        records = [_record(k, c, cr, today - timedelta(days=d)) for k, c, cr, d in fixed.negatives]
    else:
        # Unknown CPFs get a generated thin profile: mid-range score, rarely a record.
        score = rng.randint(350, 700)
        records = []
        if rng.random() < 0.2:
            records.append(
                _record(
                    rng.choice(NEGATIVE_TYPES),
                    rng.randint(5_000, 300_000),
                    rng.choice(CREDITORS),
                    today - timedelta(days=rng.randint(30, 700)),
                )
            )
    updated = datetime.combine(today - timedelta(days=seed % 30), datetime.min.time(), tzinfo=UTC)
    return {
        "cpf": cpf,
        "score": score,
        "negative_records": records,
        "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def error_body(
    request: web.Request, status: int, code: str, title: str, detail: str
) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{title}: {detail}"}}


async def get_score(request: web.Request) -> web.Response:
    raw = request.match_info["cpf"]
    cpf = normalize_cpf(raw) if len(raw) <= MAX_CPF_PATH else None
    if cpf is None:
        return web.json_response(
            error_body(request, 400, "INVALID_CPF", "Invalid CPF", "check digits do not match"),
            status=400,
        )
    return web.json_response(score_for(cpf, request.app[CLOCK_KEY].now().date()))


def make_app() -> web.Application:
    app = build_app(SimulatorConfig(name="bureau", error_body=error_body))
    app.router.add_get("/v1/scores/{cpf}", get_score)
    return app
