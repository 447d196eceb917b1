"""Consent state machine (consents v3.3.1) with the simulator clock.

AWAITING_AUTHORISATION --authorise--> AUTHORISED
AWAITING_AUTHORISATION --60 min / customer refuses / DELETE--> REJECTED
AUTHORISED --expirationDateTime / DELETE--> REJECTED
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

AUTHORISATION_WINDOW = timedelta(minutes=60)
# Bounded memory: a long-running dev simulator forgets its oldest consents.
MAX_CONSENTS = 50_000
URN_PREFIX = "urn:bancosimulado:"

AWAITING = "AWAITING_AUTHORISATION"
AUTHORISED = "AUTHORISED"
REJECTED = "REJECTED"


@dataclass
class Rejection:
    rejected_by: str  # EnumRejectedBy: USER | ASPSP | TPP
    code: str  # rejection.reason.code enum
    additional_information: str


@dataclass
class Consent:
    consent_id: str
    cpf: str
    permissions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    status: str = AWAITING
    status_updated_at: datetime = field(default=datetime.min)
    rejection: Rejection | None = None
    authorisation_code: str | None = None

    def refresh(self, now: datetime) -> None:
        """Apply the time-driven transitions that are due at `now`."""
        if self.status == AWAITING and now >= self.created_at + AUTHORISATION_WINDOW:
            self._reject(
                self.created_at + AUTHORISATION_WINDOW,
                Rejection(
                    "USER", "CONSENT_EXPIRED", "Consentimento nao autorizado dentro de 60 minutos"
                ),
            )
        elif self.status == AUTHORISED and self.expires_at is not None and now >= self.expires_at:
            self._reject(
                self.expires_at,
                Rejection(
                    "ASPSP",
                    "CONSENT_MAX_DATE_REACHED",
                    "Data de expiracao do consentimento atingida",
                ),
            )

    def _reject(self, at: datetime, rejection: Rejection) -> None:
        self.status = REJECTED
        self.status_updated_at = at
        self.rejection = rejection

    def authorise(self, now: datetime) -> None:
        assert self.status == AWAITING
        self.status = AUTHORISED
        self.status_updated_at = now
        self.authorisation_code = uuid.uuid4().hex

    def refuse(self, now: datetime) -> None:
        assert self.status == AWAITING
        self._reject(
            now, Rejection("USER", "CUSTOMER_MANUALLY_REJECTED", "Cliente recusou o consentimento")
        )

    def revoke(self, now: datetime) -> None:
        """DELETE by the TPP: rejects a pending consent, revokes an authorised one."""
        if self.status == AWAITING:
            self._reject(
                now,
                Rejection(
                    "USER",
                    "CUSTOMER_MANUALLY_REJECTED",
                    "Consentimento cancelado antes da autorizacao",
                ),
            )
        elif self.status == AUTHORISED:
            self._reject(
                now, Rejection("USER", "CUSTOMER_MANUALLY_REVOKED", "Consentimento revogado")
            )


class ConsentStore:
    def __init__(self) -> None:
        self._items: OrderedDict[str, Consent] = OrderedDict()

    def create(
        self, cpf: str, permissions: tuple[str, ...], now: datetime, expires_at: datetime | None
    ) -> Consent:
        consent = Consent(
            consent_id=f"{URN_PREFIX}{uuid.uuid4()}",
            cpf=cpf,
            permissions=permissions,
            created_at=now,
            expires_at=expires_at,
            status_updated_at=now,
        )
        self._items[consent.consent_id] = consent
        while len(self._items) > MAX_CONSENTS:
            self._items.popitem(last=False)
        return consent

    def get(self, consent_id: str, now: datetime) -> Consent | None:
        consent = self._items.get(consent_id)
        if consent is not None:
            consent.refresh(now)
        return consent

    def clear(self) -> None:
        self._items.clear()
