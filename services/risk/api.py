"""Risk's gRPC servicers (RiskService, OpenFinanceService): protobuf <-> service, no rules.

Access: the method policies (contract) already demand role "service" for
Score and backoffice/service for decision reads; consent and import reads
are checked for ownership in the service layer.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, TypeAlias

import grpc

from fintech.risk.v1 import open_finance_pb2, open_finance_pb2_grpc, risk_pb2, risk_pb2_grpc
from services.platform import pagination
from services.platform.auth import current_principal
from services.platform.errors import invalid_argument
from services.platform.handlers import metadata_value
from services.risk import events
from services.risk.domain.scorecard import list_models
from services.risk.service import OpenFinanceService, RiskService, page_size
from services.risk.store import ConsentRow, HistoryRow

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
IDEMPOTENCY_METADATA = "idempotency-key"


def _consent(pair: tuple[ConsentRow, list[HistoryRow]]) -> open_finance_pb2.Consent:
    return events.consent_message(*pair)


def _idempotency_key(context: Context) -> str:
    # The interceptor already refused a mutating call without one.
    key = metadata_value(context, IDEMPOTENCY_METADATA)
    if not key:
        raise invalid_argument("IDEMPOTENCY_KEY_REQUIRED", "idempotency-key metadata required")
    return key


class OpenFinanceApi(open_finance_pb2_grpc.OpenFinanceServiceServicer):
    def __init__(self, service: OpenFinanceService) -> None:
        self._service = service

    async def CreateConsent(
        self, request: open_finance_pb2.CreateConsentRequest, context: Context
    ) -> open_finance_pb2.Consent:
        c = request.consent
        expire = c.expire_time.ToDatetime(tzinfo=UTC) if c.HasField("expire_time") else None
        pair = await self._service.create_consent(
            current_principal(),
            data_holder=c.data_holder,
            permissions=list(c.permissions),
            expire_at=expire,
            request_key=_idempotency_key(context),
        )
        return _consent(pair)

    async def GetConsent(
        self, request: open_finance_pb2.GetConsentRequest, context: Context
    ) -> open_finance_pb2.Consent:
        return _consent(await self._service.get_consent(request.name))

    async def ListConsents(
        self, request: open_finance_pb2.ListConsentsRequest, context: Context
    ) -> open_finance_pb2.ListConsentsResponse:
        state = None
        if request.state != open_finance_pb2.CONSENT_STATE_UNSPECIFIED:
            state = open_finance_pb2.ConsentState.Name(request.state).removeprefix("CONSENT_STATE_")
        page, token = await self._service.list_consents(
            current_principal(), state, request.page_size, request.page_token
        )
        return open_finance_pb2.ListConsentsResponse(
            consents=[_consent(p) for p in page], next_page_token=token
        )

    async def AuthoriseConsent(
        self, request: open_finance_pb2.AuthoriseConsentRequest, context: Context
    ) -> open_finance_pb2.Consent:
        pair = await self._service.authorise_consent(
            current_principal(), request.name, request.authorisation_code, request.state
        )
        return _consent(pair)

    async def RevokeConsent(
        self, request: open_finance_pb2.RevokeConsentRequest, context: Context
    ) -> open_finance_pb2.Consent:
        return _consent(await self._service.revoke_consent(current_principal(), request.name))

    async def CreateStatementImport(
        self, request: open_finance_pb2.CreateStatementImportRequest, context: Context
    ) -> open_finance_pb2.StatementImport:
        s = request.statement_import
        row = await self._service.create_import(
            current_principal(),
            consent_name=s.consent,
            from_booking_date=s.from_booking_date,
            to_booking_date=s.to_booking_date,
            idempotency_key=_idempotency_key(context),
        )
        return events.import_message(row)

    async def GetStatementImport(
        self, request: open_finance_pb2.GetStatementImportRequest, context: Context
    ) -> open_finance_pb2.StatementImport:
        return events.import_message(await self._service.get_import(request.name))

    async def ListStatementImports(
        self, request: open_finance_pb2.ListStatementImportsRequest, context: Context
    ) -> open_finance_pb2.ListStatementImportsResponse:
        rows, token = await self._service.list_imports(
            current_principal(), request.consent, request.page_size, request.page_token
        )
        return open_finance_pb2.ListStatementImportsResponse(
            statement_imports=[events.import_message(r) for r in rows], next_page_token=token
        )


class RiskApi(risk_pb2_grpc.RiskServiceServicer):
    def __init__(self, service: RiskService) -> None:
        self._service = service

    async def Score(self, request: risk_pb2.ScoreRequest, context: Context) -> risk_pb2.Decision:
        row = await self._service.score(
            user_name=request.user,
            amount_minor=request.requested_amount.minor_units,
            currency=request.requested_amount.currency_code,
            term_months=request.term_months,
            reference=request.reference,
        )
        # Score's callers are services (loans): they get the full record.
        return events.decision_message(row, with_features=True)

    async def GetDecision(
        self, request: risk_pb2.GetDecisionRequest, context: Context
    ) -> risk_pb2.Decision:
        row = await self._service.get_decision(request.name)
        return events.decision_message(row, with_features=True)

    async def ListDecisions(
        self, request: risk_pb2.ListDecisionsRequest, context: Context
    ) -> risk_pb2.ListDecisionsResponse:
        rows, token = await self._service.list_decisions(
            request.user, request.page_size, request.page_token
        )
        return risk_pb2.ListDecisionsResponse(
            decisions=[events.decision_message(r, with_features=True) for r in rows],
            next_page_token=token,
        )

    async def ReplayDecision(
        self, request: risk_pb2.ReplayDecisionRequest, context: Context
    ) -> risk_pb2.ReplayDecisionResponse:
        original, replayed, identical = await self._service.replay(
            request.name, request.model_version
        )
        return risk_pb2.ReplayDecisionResponse(
            original=events.decision_message(original, with_features=True),
            replayed=events.decision_message(replayed, with_features=True),
            identical=identical,
        )

    async def ListModelVersions(
        self, request: risk_pb2.ListModelVersionsRequest, context: Context
    ) -> risk_pb2.ListModelVersionsResponse:
        models = list_models()  # newest first, a handful of files
        # The list is a handful of files, fixed per release: an offset is a stable cursor.
        start = pagination.decode_int(request.page_token, "models") if request.page_token else 0
        size = page_size(request.page_size)
        chosen = models[start : start + size]
        token = (
            pagination.encode_token("models", start + size) if start + size < len(models) else ""
        )
        versions = []
        for m in chosen:
            msg = risk_pb2.ModelVersion(
                version=m.version,
                active=m.active,
                coefficients={t.name: str(t.coefficient) for t in m.terms},
                intercept=str(m.intercept),
            )
            if m.activated_at is not None:  # a candidate never activated has no time
                msg.activate_time.CopyFrom(events.ts(m.activated_at))
            versions.append(msg)
        return risk_pb2.ListModelVersionsResponse(model_versions=versions, next_page_token=token)


def service_names() -> list[str]:
    return [
        risk_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name,
        open_finance_pb2.DESCRIPTOR.services_by_name["OpenFinanceService"].full_name,
    ]


def register(server: grpc.aio.Server, risk: RiskService, open_finance: OpenFinanceService) -> None:
    risk_pb2_grpc.add_RiskServiceServicer_to_server(RiskApi(risk), server)
    open_finance_pb2_grpc.add_OpenFinanceServiceServicer_to_server(
        OpenFinanceApi(open_finance), server
    )
