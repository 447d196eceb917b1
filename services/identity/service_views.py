"""What the service layer hands to the API and to events: no CPF, no secrets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from services.identity.domain.registration import Address


@dataclass(frozen=True)
class UserView:
    """What the API may show of a user: no CPF, no secrets."""

    id: uuid.UUID
    full_name: str
    email: str
    phone_number: str
    birth_date: date
    cpf_masked: str
    address: Address
    kyc_status: str
    mfa_enabled: bool
    created_at: datetime
    updated_at: datetime
    version: int
