"""Identity end to end: a mobile client over HTTPS/JSON through the real Envoy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import nats
import pyotp
import pytest

from devstack.stack import Stack
from fintech.events.v1 import envelope_pb2, identity_events_pb2
from tests.integration.edge import (
    PASSWORD,
    EdgeClient,
    error_reason,
    field_violations,
    new_user_body,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack: Stack) -> Iterator[EdgeClient]:
    edge = EdgeClient(stack.https_url, str(stack.ca_file))
    yield edge
    edge.close()


def test_register_login_and_read_own_profile(client: EdgeClient) -> None:
    body = new_user_body(
        address={
            "street": "Av. Paulista",
            "number": "1000",
            "city": "São Paulo",
            "state": "SP",
            "postal_code": "01310-100",
        }
    )
    created = client.register(body)
    assert created.status_code == 200, created.text
    user = created.json()
    assert user["name"].startswith("users/")
    cpf = body["user"]["cpf"]
    # Input only: the edge prints primitive fields, so "cpf" is present but empty.
    assert user.get("cpf", "") == "", "the CPF must never come back"
    assert cpf not in created.text
    assert user["cpf_masked"] == f"***.{cpf[3:6]}.{cpf[6:9]}-**"
    assert user["kyc_status"] == "KYC_STATUS_NOT_STARTED"

    login = client.login(body["user"]["email"].upper())  # e-mail is case-insensitive
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]

    me = client.request("GET", "/v1/users/me", token=tokens["access_token"])
    assert me.status_code == 200, me.text
    profile = me.json()
    assert profile["name"] == user["name"]
    assert profile["email"] == body["user"]["email"]
    assert profile["address"]["postal_code"] == "01310100"
    assert profile["address"]["state"] == "SP"


def test_update_profile_with_mask_and_reject_immutable_fields(client: EdgeClient) -> None:
    session, _ = client.signed_up()
    patched = client.request(
        "PATCH",
        "/v1/users/me",
        token=session.access_token,
        idempotency_key=str(uuid.uuid4()),
        params={"update_mask": "phone_number"},
        json={"phone_number": "+5521912345678", "full_name": "ignored because not in mask"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["phone_number"] == "+5521912345678"
    assert patched.json()["full_name"] == "Maria da Silva"

    immutable = client.request(
        "PATCH",
        "/v1/users/me",
        token=session.access_token,
        idempotency_key=str(uuid.uuid4()),
        params={"update_mask": "email"},
        json={"email": "other@example.com"},
    )
    assert immutable.status_code == 400
    assert error_reason(immutable) == "UPDATE_MASK_INVALID"


def test_refresh_rotates_and_reuse_revokes_the_whole_family(client: EdgeClient) -> None:
    session, _ = client.signed_up()
    first = client.request(
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": session.refresh_token, "device_id": session.device_id},
    )
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != session.refresh_token

    # The old token again: reuse. The family (the rotated token too) is revoked.
    reuse = client.request(
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": session.refresh_token, "device_id": session.device_id},
    )
    assert reuse.status_code == 401
    assert error_reason(reuse) == "REFRESH_TOKEN_REUSED"
    after = client.request(
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": rotated["refresh_token"], "device_id": session.device_id},
    )
    assert after.status_code == 401
    assert error_reason(after) == "REFRESH_TOKEN_REVOKED"
    # ... and so is the access token issued with it (checked by the service via Redis).
    me = client.request("GET", "/v1/users/me", token=rotated["access_token"])
    assert me.status_code == 401
    assert error_reason(me) == "TOKEN_REVOKED"


def test_refresh_token_is_bound_to_its_device(client: EdgeClient) -> None:
    session, _ = client.signed_up()
    other = client.request(
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": session.refresh_token, "device_id": "another-device"},
    )
    assert other.status_code == 401
    assert error_reason(other) == "REFRESH_TOKEN_WRONG_DEVICE"


def test_logout_revokes_the_access_token(client: EdgeClient) -> None:
    session, _ = client.signed_up()
    out = client.request("POST", "/v1/auth/logout", token=session.access_token, json={})
    assert out.status_code == 200, out.text
    me = client.request("GET", "/v1/users/me", token=session.access_token)
    assert me.status_code == 401
    assert error_reason(me) == "TOKEN_REVOKED"
    refresh = client.request(
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": session.refresh_token, "device_id": session.device_id},
    )
    assert refresh.status_code == 401


def test_totp_enrolment_then_login_requires_the_code(client: EdgeClient) -> None:
    session, body = client.signed_up()
    enrol = client.request("POST", "/v1/users/me/mfa:enroll", token=session.access_token, json={})
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(secret)

    wrong = client.request(
        "POST",
        "/v1/users/me/mfa:confirm",
        token=session.access_token,
        json={"code": "000000" if totp.now() != "000000" else "111111"},
    )
    assert wrong.status_code == 400 and error_reason(wrong) == "MFA_CODE_INVALID"
    confirm = client.request(
        "POST", "/v1/users/me/mfa:confirm", token=session.access_token, json={"code": totp.now()}
    )
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["mfa_enabled"] is True

    email = body["user"]["email"]
    without = client.login(email)
    assert without.status_code == 401 and error_reason(without) == "MFA_REQUIRED"
    # The confirmation consumed the current step: wait for the next code.
    step = int(time.time()) // 30
    while int(time.time()) // 30 == step:
        time.sleep(0.5)
    with_code = client.login(email, totp_code=totp.at(datetime.now(UTC)))
    assert with_code.status_code == 200, with_code.text
    replay = client.login(email, totp_code=totp.at(datetime.now(UTC)))
    assert replay.status_code == 401 and error_reason(replay) == "MFA_CODE_INVALID"


def test_another_users_resources_are_never_visible(stack: Stack) -> None:
    alice_client = EdgeClient(stack.https_url, str(stack.ca_file))
    bob_client = EdgeClient(stack.https_url, str(stack.ca_file))
    alice, _ = alice_client.signed_up()
    bob, _ = bob_client.signed_up()
    for path in (
        f"/v1/{alice.user_name}",
        f"/v1/{alice.user_name}/devices",
        f"/v1/users/{uuid.uuid4()}",
    ):
        response = bob_client.request("GET", path, token=bob.access_token)
        assert response.status_code == 403, (path, response.text)
        assert "Maria" not in response.text
    revoke = bob_client.request(
        "POST",
        f"/v1/{alice.user_name}/devices/{alice.device_id}:revoke",
        token=bob.access_token,
        idempotency_key=str(uuid.uuid4()),
        json={},
    )
    assert revoke.status_code == 403
    # Alice is untouched.
    assert alice_client.request("GET", "/v1/users/me", token=alice.access_token).status_code == 200
    alice_client.close()
    bob_client.close()


def test_devices_listed_paginated_and_revocable(client: EdgeClient) -> None:
    session, body = client.signed_up()
    for _ in range(2):
        assert client.login(body["user"]["email"]).status_code == 200
    page1 = client.request(
        "GET", "/v1/users/me/devices", token=session.access_token, params={"page_size": 2}
    )
    assert page1.status_code == 200, page1.text
    assert len(page1.json()["devices"]) == 2
    token = page1.json()["next_page_token"]
    page2 = client.request(
        "GET",
        "/v1/users/me/devices",
        token=session.access_token,
        params={"page_size": 2, "page_token": token},
    )
    names = [d["name"] for d in page1.json()["devices"] + page2.json()["devices"]]
    assert len(names) == len(set(names)) == 3
    bad = client.request(
        "GET", "/v1/users/me/devices", token=session.access_token, params={"page_token": "garbage"}
    )
    assert bad.status_code == 400 and error_reason(bad) == "PAGE_TOKEN_INVALID"

    own_device = f"{session.user_name}/devices/{session.device_id}"
    revoked = client.request(
        "POST",
        f"/v1/{own_device}:revoke",
        token=session.access_token,
        idempotency_key=str(uuid.uuid4()),
        json={},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked"] is True
    # Its session is gone: the access token and the refresh token stop working.
    assert client.request("GET", "/v1/users/me", token=session.access_token).status_code == 401
    refresh = client.request(
        "POST",
        "/v1/auth/refresh",
        json={"refresh_token": session.refresh_token, "device_id": session.device_id},
    )
    assert refresh.status_code == 401


def test_register_is_idempotent_per_key(client: EdgeClient) -> None:
    body = new_user_body()
    missing = client.request("POST", "/v1/users", json=body)
    assert missing.status_code == 400 and error_reason(missing) == "IDEMPOTENCY_KEY_REQUIRED"
    key = str(uuid.uuid4())
    first = client.register(body, key=key)
    again = client.register(body, key=key)
    assert first.status_code == again.status_code == 200
    assert first.json()["name"] == again.json()["name"]  # one user, the stored response
    other = client.register(new_user_body(), key=key)
    assert other.status_code == 409 and error_reason(other) == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda b: b["user"].update(cpf="111.444.777-36"), "INVALID_ARGUMENT", "user.cpf"),
        (
            lambda b: b["user"].update(birth_date="2015-01-01"),
            "INVALID_ARGUMENT",
            "user.birth_date",
        ),
        (
            lambda b: b["user"].update(phone_number="11987654321"),
            "INVALID_ARGUMENT",
            "user.phone_number",
        ),
        (lambda b: b.update(password="123"), "INVALID_ARGUMENT", "password"),
    ],
)
def test_bad_registration_gives_400_with_field_and_stores_nothing(
    client: EdgeClient,
    mutate,
    reason: str,
    field: str,  # type: ignore[no-untyped-def]
) -> None:
    body = new_user_body()
    mutate(body)
    response = client.register(body)
    assert response.status_code == 400, response.text
    assert error_reason(response) == reason
    assert field in field_violations(response)
    # Nothing was stored: the same e-mail registers fine once the input is corrected.
    corrected = client.register(new_user_body(email=body["user"]["email"]))
    assert corrected.status_code == 200, corrected.text


def test_duplicate_email_and_cpf_are_conflicts(client: EdgeClient) -> None:
    body = new_user_body()
    assert client.register(body).status_code == 200
    dup_email = new_user_body(email=body["user"]["email"].upper())
    response = client.register(dup_email)
    assert response.status_code == 409 and error_reason(response) == "EMAIL_ALREADY_REGISTERED"
    dup_cpf = new_user_body(cpf=body["user"]["cpf"])
    response = client.register(dup_cpf)
    assert response.status_code == 409 and error_reason(response) == "CPF_ALREADY_REGISTERED"


def test_malformed_json_and_wrong_types_are_400(client: EdgeClient) -> None:
    key = str(uuid.uuid4())
    broken = client.request(
        "POST",
        "/v1/users",
        idempotency_key=key,
        content=b'{"user": {"email": ',
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400
    wrong_type = client.request(
        "POST", "/v1/users", idempotency_key=key, json={"user": {"email": 5, "full_name": ["x"]}}
    )
    assert wrong_type.status_code == 400


def test_wrong_password_is_401_and_repeated_failures_lock_the_account(
    client: EdgeClient,
) -> None:
    _, body = client.signed_up()
    email = body["user"]["email"]
    for _ in range(5):
        wrong = client.login(email, password="not the password at all")
        assert wrong.status_code in (401, 429)
    locked = client.login(email)  # even the right password is refused while locked
    assert locked.status_code == 429, locked.text
    assert error_reason(locked) == "LOGIN_LOCKED"
    unknown = client.login(f"nobody-{uuid.uuid4().hex}@example.com", password=PASSWORD)
    assert unknown.status_code in (401, 429)


def test_login_burst_from_one_address_is_rate_limited_at_the_edge(stack: Stack) -> None:
    burst = EdgeClient(stack.https_url, str(stack.ca_file))
    statuses = [burst.login(f"burst-{uuid.uuid4().hex}@example.com").status_code for _ in range(40)]
    burst.close()
    assert 429 in statuses, statuses
    assert set(statuses) <= {401, 429}, statuses
    # A different address is not affected by that burst.
    other = EdgeClient(stack.https_url, str(stack.ca_file))
    assert other.login(f"x-{uuid.uuid4().hex}@example.com").status_code == 401
    other.close()


async def test_registration_publishes_user_registered_exactly_once(stack: Stack) -> None:
    client = EdgeClient(stack.https_url, str(stack.ca_file))
    body = new_user_body()
    key = str(uuid.uuid4())
    created = client.register(body, key=key)
    assert client.register(body, key=key).status_code == 200  # a retried request
    client.close()
    assert created.status_code == 200, created.text
    user_name = created.json()["name"]

    nc = await nats.connect(stack.infra.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            "fintech.events.user.registered",
            ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
        )
        matches = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                if matches:
                    break
                continue
            envelope = envelope_pb2.EventEnvelope.FromString(msg.data)
            if envelope.subject != user_name:
                continue
            matches += 1
            assert envelope.event_type == "user.registered"
            assert envelope.source == "identity"
            assert msg.headers and envelope.event_id == msg.headers.get("Nats-Msg-Id")
            event = identity_events_pb2.UserRegistered()
            assert envelope.payload.Unpack(event)
            assert event.user == user_name
        assert matches == 1, f"user.registered for {user_name} seen {matches} times"
    finally:
        await nc.close()


async def _envelopes_about(nats_url: str, event_type: str, aggregate: str) -> list[Any]:
    """Every envelope of `event_type` about `aggregate` in the stream (waits up to 15 s)."""
    nc = await nats.connect(nats_url)
    found: list[Any] = []
    try:
        sub = await nc.jetstream().subscribe(
            f"fintech.events.{event_type}",
            ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                if found:
                    break
                continue
            envelope = envelope_pb2.EventEnvelope.FromString(msg.data)
            if envelope.subject == aggregate:
                found.append(envelope)
    finally:
        await nc.close()
    return found


async def test_logout_and_mfa_changes_are_announced(stack: Stack) -> None:
    client = EdgeClient(stack.https_url, str(stack.ca_file))
    session, _ = client.signed_up()
    login_body = jwt.decode(session.access_token, options={"verify_signature": False})
    session_name = f"{session.user_name}/sessions/{login_body['sid']}"
    enrol = client.request("POST", "/v1/users/me/mfa:enroll", token=session.access_token, json={})
    code = pyotp.TOTP(enrol.json()["secret"]).now()
    confirm = client.request(
        "POST", "/v1/users/me/mfa:confirm", token=session.access_token, json={"code": code}
    )
    assert confirm.status_code == 200, confirm.text
    assert (
        client.request("POST", "/v1/auth/logout", token=session.access_token, json={}).status_code
        == 200
    )
    client.close()

    revoked = await _envelopes_about(stack.infra.nats_url, "user.session_revoked", session_name)
    assert len(revoked) == 1
    event = identity_events_pb2.SessionRevoked()
    assert revoked[0].payload.Unpack(event)
    assert (event.session, event.reason) == (session_name, "LOGOUT")

    mfa_events = await _envelopes_about(stack.infra.nats_url, "user.mfa_changed", session.user_name)
    assert len(mfa_events) == 1
    changed = identity_events_pb2.UserMfaChanged()
    assert mfa_events[0].payload.Unpack(changed) and changed.mfa_enabled is True
