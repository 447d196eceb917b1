"""KYC's gRPC servicer: protobuf <-> service, no rules.

Access: method policies (contract) demand role "backoffice" for the review
RPCs and "service" for ScreenName; ownership is checked in the service layer.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from fintech.kyc.v1 import kyc_pb2, kyc_pb2_grpc
from services.kyc import events
from services.kyc.service import KycService
from services.platform.auth import current_principal
from services.platform.errors import invalid_argument
from services.platform.handlers import metadata_value

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _idempotency_key(context: Context) -> str:
    # The interceptor already refused a mutating call without one.
    key = metadata_value(context, "idempotency-key")
    if not key:
        raise invalid_argument("IDEMPOTENCY_KEY_REQUIRED", "idempotency-key metadata required")
    return key


def _doc_type(value: int) -> str:
    if value == kyc_pb2.DOCUMENT_TYPE_UNSPECIFIED or value not in kyc_pb2.DocumentType.values():
        return ""
    return kyc_pb2.DocumentType.Name(value).removeprefix("DOCUMENT_TYPE_")  # type: ignore[arg-type]


class KycApi(kyc_pb2_grpc.KycServiceServicer):
    def __init__(self, service: KycService) -> None:
        self._service = service

    async def UploadDocument(
        self, request: kyc_pb2.UploadDocumentRequest, context: Context
    ) -> kyc_pb2.Document:
        row = await self._service.upload_document(
            current_principal(),
            _doc_type(request.document.type),
            request.document.document_number,
            request.content,
        )
        return events.document_message(row)

    async def GetDocument(
        self, request: kyc_pb2.GetDocumentRequest, context: Context
    ) -> kyc_pb2.Document:
        return events.document_message(
            await self._service.get_document(current_principal(), request.name)
        )

    async def ListDocuments(
        self, request: kyc_pb2.ListDocumentsRequest, context: Context
    ) -> kyc_pb2.ListDocumentsResponse:
        rows, token = await self._service.list_documents(
            current_principal(), request.page_size, request.page_token
        )
        return kyc_pb2.ListDocumentsResponse(
            documents=[events.document_message(r) for r in rows], next_page_token=token
        )

    async def CreateSubmission(
        self, request: kyc_pb2.CreateSubmissionRequest, context: Context
    ) -> kyc_pb2.Submission:
        sub, checks = await self._service.create_submission(
            current_principal(), list(request.submission.documents), _idempotency_key(context)
        )
        return events.submission_message(sub, checks)

    async def GetSubmission(
        self, request: kyc_pb2.GetSubmissionRequest, context: Context
    ) -> kyc_pb2.Submission:
        sub, checks = await self._service.get_submission(current_principal(), request.name)
        return events.submission_message(sub, checks)

    async def ListSubmissions(
        self, request: kyc_pb2.ListSubmissionsRequest, context: Context
    ) -> kyc_pb2.ListSubmissionsResponse:
        pairs, token = await self._service.list_submissions(
            current_principal(), request.page_size, request.page_token
        )
        return kyc_pb2.ListSubmissionsResponse(
            submissions=[events.submission_message(s, c) for s, c in pairs],
            next_page_token=token,
        )

    async def GetKycStatus(
        self, request: kyc_pb2.GetKycStatusRequest, context: Context
    ) -> kyc_pb2.KycStatus:
        view = await self._service.status(current_principal(), request.user)
        msg = kyc_pb2.KycStatus(
            user=events.user_name(view.user_id),
            state=events.kyc_state(view.state),
            missing_documents=[events.doc_type_enum(d) for d in view.missing_documents],
            pending_checks=[events.check_type_enum(c) for c in view.pending_checks],
        )
        if view.submission is not None:
            msg.submission = events.submission_name(view.submission.id)
            msg.decline_reasons.extend(view.submission.decline_reasons)
        if view.update_time is not None:
            msg.update_time.CopyFrom(events.ts(view.update_time))
        return msg

    async def ListReviewCases(
        self, request: kyc_pb2.ListReviewCasesRequest, context: Context
    ) -> kyc_pb2.ListReviewCasesResponse:
        state = "OPEN"
        if request.state != kyc_pb2.REVIEW_STATE_UNSPECIFIED:
            if request.state not in kyc_pb2.ReviewState.values():
                raise invalid_argument("STATE_INVALID", "unknown state", [("state", "unknown")])
            state = kyc_pb2.ReviewState.Name(request.state).removeprefix("REVIEW_STATE_")
        pairs, token = await self._service.list_reviews(
            state, request.page_size, request.page_token
        )
        return kyc_pb2.ListReviewCasesResponse(
            review_cases=[events.review_message(r, c) for r, c in pairs], next_page_token=token
        )

    async def GetReviewCase(
        self, request: kyc_pb2.GetReviewCaseRequest, context: Context
    ) -> kyc_pb2.ReviewCase:
        review, checks, views = await self._service.get_review(current_principal(), request.name)
        return events.review_message(review, checks, views)

    async def ApproveReviewCase(
        self, request: kyc_pb2.ApproveReviewCaseRequest, context: Context
    ) -> kyc_pb2.ReviewCase:
        review, checks = await self._service.decide_review(
            current_principal(), request.name, True, request.reason
        )
        return events.review_message(review, checks)

    async def DeclineReviewCase(
        self, request: kyc_pb2.DeclineReviewCaseRequest, context: Context
    ) -> kyc_pb2.ReviewCase:
        review, checks = await self._service.decide_review(
            current_principal(), request.name, False, request.reason
        )
        return events.review_message(review, checks)

    async def ScreenName(
        self, request: kyc_pb2.ScreenNameRequest, context: Context
    ) -> kyc_pb2.ScreenNameResponse:
        hits = self._service.screen_name(request.full_name, request.birth_date, request.threshold)
        return kyc_pb2.ScreenNameResponse(
            hits=[
                kyc_pb2.ScreeningHit(
                    list=h.list_name,
                    entry_id=h.entry_id,
                    matched_name=h.matched_name,
                    score=f"{h.score:.4f}",
                )
                for h in hits
            ],
            lists_version=self._service.lists_version,
        )


def service_name() -> str:
    return kyc_pb2.DESCRIPTOR.services_by_name["KycService"].full_name


def register(server: grpc.aio.Server, service: KycService) -> None:
    kyc_pb2_grpc.add_KycServiceServicer_to_server(KycApi(service), server)
