"""Golden JSON transcoding cases through the real Envoy: what the mobile app sees.

Each case pins the exact JSON shape (field names, enum spelling, timestamp
format, error body) so that a change of transcoder options or of the proto
JSON mapping shows up as a failing diff, not as a broken app.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.stack import Stack
from tests.integration.edge import EdgeClient, error_reason, fresh_cpf

pytestmark = pytest.mark.integration

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def normalise(value: Any) -> Any:
    """Replace run-dependent values (uuids, timestamps) by placeholders."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        if RFC3339_UTC.match(value):
            return "<timestamp>"
        return re.sub(UUID, "<uuid>", value)
    return value


@pytest.fixture
def client(stack: Stack) -> Iterator[EdgeClient]:
    edge = EdgeClient(stack.https_url, str(stack.ca_file))
    yield edge
    edge.close()


def test_register_accepts_camel_case_and_prints_snake_case(client: EdgeClient) -> None:
    email = f"golden-{uuid.uuid4().hex[:10]}@example.com"
    cpf = fresh_cpf()
    response = client.request(
        "POST",
        "/v1/users",
        idempotency_key=str(uuid.uuid4()),
        json={
            "user": {
                "fullName": "Golden Case",
                "email": email,
                "phoneNumber": "+5511987654321",
                "birthDate": "1990-05-17",
                "cpf": cpf,
            },
            "password": "uma senha longa e boa",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert normalise(response.json()) == {
        "name": "users/<uuid>",
        "full_name": "Golden Case",
        "email": email,
        "phone_number": "+5511987654321",
        "birth_date": "1990-05-17",
        "cpf": "",
        "cpf_masked": f"***.{cpf[3:6]}.{cpf[6:9]}-**",
        "kyc_status": "KYC_STATUS_NOT_STARTED",
        "mfa_enabled": False,
        "create_time": "<timestamp>",
        "update_time": "<timestamp>",
        "etag": 'W/"1"',
    }


def test_login_response_shape(client: EdgeClient) -> None:
    _, body = client.signed_up()
    response = client.login(body["user"]["email"], device_id="golden-device")
    assert response.status_code == 200
    tokens = response.json()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", tokens["access_token"])  # a compact JWT
    assert normalise({k: v for k, v in tokens.items() if not k.endswith("_token")}) == {
        "token_type": "Bearer",
        "access_token_expire_time": "<timestamp>",
        "refresh_token_expire_time": "<timestamp>",
        "session": "users/<uuid>/sessions/<uuid>",
        "user": "users/<uuid>",
    }


def test_list_with_query_parameters_and_empty_page_token(client: EdgeClient) -> None:
    session, _ = client.signed_up()
    response = client.request(
        "GET", "/v1/users/me/devices", token=session.access_token, params={"page_size": "1"}
    )
    assert response.status_code == 200, response.text
    assert normalise(response.json()) == {
        "devices": [
            {
                "name": f"users/<uuid>/devices/{session.device_id}",
                "display_name": "Pixel 8",
                "create_time": "<timestamp>",
                "last_seen_time": "<timestamp>",
                "revoked": False,
            }
        ],
        "next_page_token": "",
    }


def test_bank_account_details_as_the_app_reads_them(client: EdgeClient) -> None:
    session, _ = client.signed_up()
    # The ledger opens the wallet from `user.registered`, asynchronously.
    for _ in range(100):
        response = client.request("GET", "/v1/users/me/bankAccount", token=session.access_token)
        if response.status_code != 400 or error_reason(response) != "WALLET_NOT_FOUND":
            break
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert re.fullmatch(r"[0-9]{9}-[0-9X]", body["account_number"]), body
    assert normalise(body | {"account_number": "<number>"}) == {
        "name": "users/<uuid>/bankAccount",
        "bank_code": "999",
        "ispb": "12345678",
        "branch": "0001",
        "account_number": "<number>",
        "account_type": "BANK_ACCOUNT_TYPE_PAYMENT",
    }


def test_invalid_input_is_400_with_status_body(client: EdgeClient) -> None:
    response = client.request(
        "POST",
        "/v1/users",
        idempotency_key=str(uuid.uuid4()),
        json={
            "user": {
                "full_name": "Golden",
                "email": "not-an-email",
                "phone_number": "+5511987654321",
                "birth_date": "1990-05-17",
                "cpf": fresh_cpf(),
            },
            "password": "uma senha longa e boa",
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": 3,
        "message": "the request has invalid fields",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "INVALID_ARGUMENT",
                "domain": "identity.fintech.local",
                "metadata": {},
            },
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [
                    {
                        "field": "user.email",
                        "description": "is not a valid e-mail address",
                        "reason": "",
                    }
                ],
            },
        ],
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "reason", "domain"),
    [
        # NOT_FOUND -> 404 (a document nobody uploaded)
        (
            "GET",
            f"/v1/kyc/documents/{uuid.UUID(int=2)}",
            404,
            5,
            "DOCUMENT_NOT_FOUND",
            "kyc.fintech.local",
        ),
        # PERMISSION_DENIED -> 403
        (
            "GET",
            f"/v1/users/{uuid.UUID(int=1)}",
            403,
            7,
            "PERMISSION_DENIED",
            "identity.fintech.local",
        ),
        # INVALID_ARGUMENT from a malformed resource name -> 400
        (
            "POST",
            "/v1/users/not-a-uuid/mfa:enroll",
            400,
            3,
            "NAME_INVALID",
            "identity.fintech.local",
        ),
    ],
)
def test_grpc_status_maps_to_http_status(
    client: EdgeClient, method: str, path: str, status: int, code: int, reason: str, domain: str
) -> None:
    session, _ = client.signed_up()
    response = client.request(
        method, path, token=session.access_token, json={} if method == "POST" else None
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    info = [d for d in body["details"] if d["@type"].endswith("ErrorInfo")]
    assert info == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": domain,
            "metadata": info[0]["metadata"],
        }
    ]


def test_conflict_is_409_and_unauthenticated_is_401(client: EdgeClient) -> None:
    _, body = client.signed_up()
    again = client.register(dict(body, user=dict(body["user"], cpf=fresh_cpf())))
    assert again.status_code == 409
    assert again.json()["code"] == 6  # ALREADY_EXISTS
    wrong = client.login(body["user"]["email"], password="definitely not it")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == 16  # UNAUTHENTICATED
