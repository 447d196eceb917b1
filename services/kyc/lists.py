"""Loads the screening lists once at start-up (the real OFAC SDN snapshot, the
UN consolidated and Brazilian PEP files) and builds the immutable index.

Paths: FINTECH_KYC_OFAC_DIR (default `../shared/data/sanctions/ofac-sdn`
beside the repository), FINTECH_KYC_UN_CSV and FINTECH_KYC_PEP_CSV (default
the samples in services/kyc/data/). A missing list stops the service: KYC
without sanctions screening must not approve anyone.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from services.kyc.domain.screening import (
    ScreeningIndex,
    build_index,
    load_br_pep,
    load_ofac_sdn,
    load_un_consolidated,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OFAC_DIR = REPO_ROOT.parent / "shared" / "data" / "sanctions" / "ofac-sdn"
DATA_DIR = Path(__file__).with_name("data")


@dataclass(frozen=True, slots=True)
class ScreeningLists:
    index: ScreeningIndex
    version: str  # digest of the loaded files: which lists a decision used


def _paths() -> tuple[Path, Path, Path]:
    return (
        Path(os.environ.get("FINTECH_KYC_OFAC_DIR") or DEFAULT_OFAC_DIR),
        Path(os.environ.get("FINTECH_KYC_UN_CSV") or DATA_DIR / "un_consolidated_sample.csv"),
        Path(os.environ.get("FINTECH_KYC_PEP_CSV") or DATA_DIR / "br_pep_sample.csv"),
    )


def load_lists() -> ScreeningLists:
    ofac, un, pep = _paths()
    entries = [*load_ofac_sdn(ofac), *load_un_consolidated(un), *load_br_pep(pep)]
    digest = hashlib.sha256()
    for path in (ofac / "sdn.csv", ofac / "alt.csv", un, pep):
        digest.update(path.read_bytes())
    return ScreeningLists(build_index(entries), digest.hexdigest()[:16])
