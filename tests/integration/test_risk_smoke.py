"""Risk service smoke test on the dev stack (gRPC straight to the risk process).

One customer: consent → authorisation → statement import (then a re-import
that adds nothing) → Score returns a recorded decision with reason codes;
someone else cannot read the consent; after revocation an import is refused
with FAILED_PRECONDITION and the reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from google.protobuf import timestamp_pb2

from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from fintech.risk.v1 import open_finance_pb2, open_finance_pb2_grpc, risk_pb2, risk_pb2_grpc
from fintech.type.v1 import money_pb2
from services.platform.errors import details_from_rpc_error
from tests.integration.edge import fresh_cpf, new_user_body
from tests.support.tokens import mint_token

pytestmark = pytest.mark.integration

TIMEOUT_S = 15.0
IMPORT_DEADLINE_S = 90.0
PERMISSIONS = ["ACCOUNTS_READ", "ACCOUNTS_TRANSACTIONS_READ", "RESOURCES_READ"]
TERMINAL = {open_finance_pb2.IMPORT_STATE_SUCCEEDED, open_finance_pb2.IMPORT_STATE_FAILED}


def _meta(token: str, *, mutating: bool = False) -> list[tuple[str, str]]:
    metadata = [("authorization", f"Bearer {token}")]
    if mutating:
        metadata.append(("idempotency-key", uuid.uuid4().hex))
    return metadata


@pytest.fixture
async def channels(stack: Any) -> AsyncIterator[tuple[grpc.aio.Channel, grpc.aio.Channel]]:
    async with (
        grpc.aio.insecure_channel(stack.grpc_targets["risk"]) as risk,
        grpc.aio.insecure_channel(stack.grpc_targets["identity"]) as identity,
    ):
        yield risk, identity


async def _new_customer(identity: grpc.aio.Channel) -> str:
    body = new_user_body(cpf=fresh_cpf())
    request = identity_pb2.CreateUserRequest(password=body["password"])
    for field, value in body["user"].items():
        setattr(request.user, field, value)
    user = await identity_pb2_grpc.IdentityServiceStub(identity).CreateUser(
        request, metadata=[("idempotency-key", uuid.uuid4().hex)], timeout=TIMEOUT_S
    )
    return user.name.removeprefix("users/")


async def _wait_import(
    stub: open_finance_pb2_grpc.OpenFinanceServiceStub, name: str, token: str
) -> open_finance_pb2.StatementImport:
    deadline = time.monotonic() + IMPORT_DEADLINE_S
    while True:
        current = await stub.GetStatementImport(
            open_finance_pb2.GetStatementImportRequest(name=name),
            metadata=_meta(token),
            timeout=TIMEOUT_S,
        )
        if current.state in TERMINAL:
            return current
        assert time.monotonic() < deadline, f"import stuck: {current}"
        await _sleep(0.25)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def _start_import(
    stub: open_finance_pb2_grpc.OpenFinanceServiceStub, consent: str, token: str
) -> open_finance_pb2.StatementImport:
    request = open_finance_pb2.CreateStatementImportRequest()
    request.statement_import.consent = consent
    return await stub.CreateStatementImport(
        request, metadata=_meta(token, mutating=True), timeout=TIMEOUT_S
    )


async def test_consent_import_score_and_revocation(
    stack: Any, channels: tuple[grpc.aio.Channel, grpc.aio.Channel]
) -> None:
    risk_channel, identity_channel = channels
    user_id = await _new_customer(identity_channel)
    token = mint_token(stack.secrets_dir, ["user"], subject=user_id)
    stub = open_finance_pb2_grpc.OpenFinanceServiceStub(risk_channel)

    expire = timestamp_pb2.Timestamp()
    expire.FromDatetime(datetime.now(UTC) + timedelta(days=90))
    create = open_finance_pb2.CreateConsentRequest()
    create.consent.data_holder = "bancoex"
    create.consent.permissions.extend(PERMISSIONS)
    create.consent.expire_time.CopyFrom(expire)
    consent = await stub.CreateConsent(
        create, metadata=_meta(token, mutating=True), timeout=TIMEOUT_S
    )
    assert consent.state == open_finance_pb2.CONSENT_STATE_AWAITING_AUTHORISATION
    assert consent.user == f"users/{user_id}"
    assert consent.consent_id.startswith("urn:")
    state = parse_qs(urlsplit(consent.authorisation_uri).query)["state"][0]

    # Someone else cannot see it, whether or not it exists.
    stranger = mint_token(stack.secrets_dir, ["user"], subject=str(uuid.uuid4()))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.GetConsent(
            open_finance_pb2.GetConsentRequest(name=consent.name),
            metadata=_meta(stranger),
            timeout=TIMEOUT_S,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    authorised = await stub.AuthoriseConsent(
        open_finance_pb2.AuthoriseConsentRequest(
            name=consent.name, authorisation_code="code-from-redirect", state=state
        ),
        metadata=_meta(token, mutating=True),
        timeout=TIMEOUT_S,
    )
    assert authorised.state == open_finance_pb2.CONSENT_STATE_AUTHORISED
    assert [h.state for h in authorised.history] == [
        open_finance_pb2.CONSENT_STATE_AWAITING_AUTHORISATION,
        open_finance_pb2.CONSENT_STATE_AUTHORISED,
    ]

    first = await _wait_import(stub, (await _start_import(stub, consent.name, token)).name, token)
    assert first.state == open_finance_pb2.IMPORT_STATE_SUCCEEDED, first
    assert first.accounts_imported >= 1
    assert first.transactions_imported > 0
    assert first.pages_fetched >= first.accounts_imported + 1

    # A second import reads the same statements and stores nothing twice.
    again = await _wait_import(stub, (await _start_import(stub, consent.name, token)).name, token)
    assert again.state == open_finance_pb2.IMPORT_STATE_SUCCEEDED, again
    assert again.transactions_imported == 0
    assert again.transactions_skipped == first.transactions_imported

    service = mint_token(stack.secrets_dir, ["service"], subject="service:risk-smoke")
    risk = risk_pb2_grpc.RiskServiceStub(risk_channel)
    decision = await risk.Score(
        risk_pb2.ScoreRequest(
            user=f"users/{user_id}",
            requested_amount=money_pb2.Money(currency_code="BRL", minor_units=100_000),
            term_months=12,
            reference="quotes/smoke",
        ),
        metadata=_meta(service, mutating=True),
        timeout=TIMEOUT_S,
    )
    assert decision.name.startswith("decisions/")
    assert decision.outcome != risk_pb2.OUTCOME_UNSPECIFIED
    assert decision.reason_codes, decision
    assert all(r.code and r.description for r in decision.reason_codes)
    features = {f.name: f.value for f in decision.features}
    assert int(features["transaction_count"]) > 0, features
    replay = await risk.ReplayDecision(
        risk_pb2.ReplayDecisionRequest(name=decision.name),
        metadata=_meta(service),
        timeout=TIMEOUT_S,
    )
    assert replay.identical, replay

    revoked = await stub.RevokeConsent(
        open_finance_pb2.RevokeConsentRequest(name=consent.name),
        metadata=_meta(token, mutating=True),
        timeout=TIMEOUT_S,
    )
    assert revoked.state == open_finance_pb2.CONSENT_STATE_REVOKED
    assert revoked.history[-1].reason == "CUSTOMER_MANUALLY_REVOKED"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _start_import(stub, consent.name, token)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_from_rpc_error(refused.value).reason == "CONSENT_REVOKED"
