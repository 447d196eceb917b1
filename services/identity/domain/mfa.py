"""TOTP (RFC 6238) enrolment and verification, with replay protection.

A code is accepted for the current 30-second step or one step either side
(clock drift), and never twice: the caller stores the step of the last
accepted code and passes it back.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime

import pyotp

ISSUER_NAME = "Fintech"
STEP_SECONDS = 30
DRIFT_STEPS = 1
_CODE = re.compile(r"^\d{6}$")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER_NAME)


@dataclass(frozen=True)
class TotpResult:
    accepted: bool
    step: int  # the time step of the accepted code (meaningful when accepted)


def verify_totp(secret: str, code: str, now: datetime, last_used_step: int | None) -> TotpResult:
    code = code.strip()
    if not _CODE.match(code):
        return TotpResult(False, 0)
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_used_step is not None and step <= last_used_step:
            continue  # replay of an already used (or older) code
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return TotpResult(True, step)
    return TotpResult(False, 0)
