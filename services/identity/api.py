"""gRPC servicer: protobuf <-> service layer. No business rules live here."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import timestamp_pb2

from fintech.identity.v1 import identity_pb2, identity_pb2_grpc
from services.identity.domain.registration import Address
from services.identity.service import (
    UPDATABLE_PATHS,
    IdentityService,
    ProfileChanges,
    Tokens,
    UserView,
    etag_of,
)
from services.identity.store import DeviceRow
from services.platform.auth import current_principal
from services.platform.errors import invalid_argument

USER_PREFIX = "users/"
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
_KYC_STATUS = {
    name: identity_pb2.KycStatus.Value(f"KYC_STATUS_{name}")
    for name in ("NOT_STARTED", "PENDING", "WAITING_PROVIDER", "IN_REVIEW", "APPROVED", "DECLINED")
}


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _user_ref(name: str, field: str = "name") -> str:
    """The {user} segment of `users/{user}` (`me` allowed)."""
    if not name.startswith(USER_PREFIX) or "/" in name[len(USER_PREFIX) :] or name == USER_PREFIX:
        raise invalid_argument(
            "NAME_INVALID",
            f"{field} must look like users/me or users/{{id}}",
            [(field, "must be users/me or users/{id}")],
        )
    return name[len(USER_PREFIX) :]


def _address_from(msg: identity_pb2.Address) -> Address:
    return Address(
        street=msg.street,
        number=msg.number,
        complement=msg.complement,
        district=msg.district,
        city=msg.city,
        state=msg.state,
        postal_code=msg.postal_code,
        country=msg.country or "BR",
    )


def user_message(view: UserView) -> identity_pb2.User:
    msg = identity_pb2.User(
        name=f"{USER_PREFIX}{view.id}",
        full_name=view.full_name,
        email=view.email,
        phone_number=view.phone_number,
        birth_date=view.birth_date.isoformat(),
        cpf_masked=view.cpf_masked,
        kyc_status=_KYC_STATUS[view.kyc_status],
        mfa_enabled=view.mfa_enabled,
        create_time=_ts(view.created_at),
        update_time=_ts(view.updated_at),
        etag=etag_of(view),
    )
    if not view.address.is_empty():
        a = view.address
        msg.address.CopyFrom(
            identity_pb2.Address(
                street=a.street,
                number=a.number,
                complement=a.complement,
                district=a.district,
                city=a.city,
                state=a.state,
                postal_code=a.postal_code,
                country=a.country,
            )
        )
    return msg


def _device_message(user_id: str, row: DeviceRow) -> identity_pb2.Device:
    return identity_pb2.Device(
        name=f"{USER_PREFIX}{user_id}/devices/{row.client_device_id}",
        display_name=row.display_name,
        create_time=_ts(row.created_at),
        last_seen_time=_ts(row.last_seen_at),
        revoked=row.revoked_at is not None,
    )


def _tokens_message(tokens: Tokens) -> identity_pb2.LoginResponse:
    return identity_pb2.LoginResponse(
        access_token=tokens.access_token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
        access_token_expire_time=_ts(tokens.access_expires_at),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=_ts(tokens.refresh_expires_at),
        session=f"{USER_PREFIX}{tokens.user_id}/sessions/{tokens.session_id}",
        user=f"{USER_PREFIX}{tokens.user_id}",
    )


def _client_address(context: Context) -> str:
    """The end user's address: Envoy's x-envoy-external-address, else the TCP peer.

    Envoy overwrites that header for external requests, so a client cannot
    spoof it to dodge the per-address lockout.
    """
    for key, value in context.invocation_metadata() or ():
        if key == "x-envoy-external-address" and value:
            return str(value)[:64]
    return (context.peer() or "unknown")[:64]


def _profile_changes(request: identity_pb2.UpdateUserRequest) -> ProfileChanges:
    user = request.user
    if request.HasField("update_mask") and request.update_mask.paths:
        paths: set[str] = set()
        bad = []
        for path in request.update_mask.paths:
            top = path.split(".", 1)[0]
            if top in UPDATABLE_PATHS:
                paths.add(top)
            else:
                bad.append(
                    (
                        "update_mask",
                        f"{path!r} cannot be updated; allowed: "
                        + ", ".join(sorted(UPDATABLE_PATHS)),
                    )
                )
        if bad:
            raise invalid_argument(
                "UPDATE_MASK_INVALID", "update_mask names fields that cannot be updated", bad
            )
    else:
        # No mask: every updatable field the caller actually sent (AIP-134).
        paths = {p for p in ("full_name", "phone_number") if getattr(user, p)}
        if user.HasField("address"):
            paths.add("address")
    return ProfileChanges(
        full_name=user.full_name,
        phone_number=user.phone_number,
        address=_address_from(user.address),
        paths=frozenset(paths),
        etag=user.etag,
    )


class IdentityApi(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, service: IdentityService) -> None:
        self._service = service

    async def CreateUser(
        self, request: identity_pb2.CreateUserRequest, context: Context
    ) -> identity_pb2.User:
        u = request.user
        view = await self._service.register(
            full_name=u.full_name,
            email=u.email,
            phone_number=u.phone_number,
            birth_date=u.birth_date,
            cpf=u.cpf,
            password=request.password,
            address=_address_from(u.address) if u.HasField("address") else Address(),
        )
        return user_message(view)

    async def GetUser(
        self, request: identity_pb2.GetUserRequest, context: Context
    ) -> identity_pb2.User:
        view = await self._service.get_user(current_principal(), _user_ref(request.name))
        return user_message(view)

    async def UpdateUser(
        self, request: identity_pb2.UpdateUserRequest, context: Context
    ) -> identity_pb2.User:
        ref = _user_ref(request.user.name, "user.name")
        view = await self._service.update_profile(
            current_principal(), ref, _profile_changes(request)
        )
        return user_message(view)

    async def Login(
        self, request: identity_pb2.LoginRequest, context: Context
    ) -> identity_pb2.LoginResponse:
        tokens = await self._service.login(
            email=request.email,
            password=request.password,
            device_id=request.device_id,
            device_name=request.device_name,
            totp_code=request.totp_code,
            client_address=_client_address(context),
        )
        return _tokens_message(tokens)

    async def RefreshToken(
        self, request: identity_pb2.RefreshTokenRequest, context: Context
    ) -> identity_pb2.LoginResponse:
        tokens = await self._service.refresh(
            refresh_token=request.refresh_token, device_id=request.device_id
        )
        return _tokens_message(tokens)

    async def Logout(
        self, request: identity_pb2.LogoutRequest, context: Context
    ) -> identity_pb2.LogoutResponse:
        await self._service.logout(current_principal(), request.all_sessions)
        return identity_pb2.LogoutResponse()

    async def EnrollMfa(
        self, request: identity_pb2.EnrollMfaRequest, context: Context
    ) -> identity_pb2.EnrollMfaResponse:
        secret, uri = await self._service.enroll_mfa(current_principal(), _user_ref(request.name))
        return identity_pb2.EnrollMfaResponse(secret=secret, otpauth_uri=uri)

    async def ConfirmMfa(
        self, request: identity_pb2.ConfirmMfaRequest, context: Context
    ) -> identity_pb2.User:
        view = await self._service.confirm_mfa(
            current_principal(), _user_ref(request.name), request.code
        )
        return user_message(view)

    async def DisableMfa(
        self, request: identity_pb2.DisableMfaRequest, context: Context
    ) -> identity_pb2.User:
        view = await self._service.disable_mfa(
            current_principal(), _user_ref(request.name), request.code
        )
        return user_message(view)

    async def ListDevices(
        self, request: identity_pb2.ListDevicesRequest, context: Context
    ) -> identity_pb2.ListDevicesResponse:
        principal = current_principal()
        ref = _user_ref(request.parent, "parent")
        page = await self._service.list_devices(
            principal, ref, request.page_size, request.page_token
        )
        owner = principal.subject if ref == "me" else ref
        return identity_pb2.ListDevicesResponse(
            devices=[_device_message(owner, d) for d in page.devices],
            next_page_token=page.next_page_token,
        )

    async def RevokeDevice(
        self, request: identity_pb2.RevokeDeviceRequest, context: Context
    ) -> identity_pb2.Device:
        parts = request.name.split("/")
        if len(parts) != 4 or parts[0] != "users" or parts[2] != "devices" or not parts[3]:
            raise invalid_argument(
                "NAME_INVALID",
                "name must be users/{user}/devices/{device}",
                [("name", "must be users/{user}/devices/{device}")],
            )
        principal = current_principal()
        row = await self._service.revoke_device(principal, parts[1], parts[3])
        return _device_message(str(row.user_id), row)

    async def GetUserIdentity(
        self, request: identity_pb2.GetUserIdentityRequest, context: Context
    ) -> identity_pb2.UserIdentity:
        view, cpf = await self._service.get_identity(current_principal(), _user_ref(request.name))
        public = user_message(view)
        return identity_pb2.UserIdentity(
            name=public.name,
            full_name=view.full_name,
            cpf=cpf,
            birth_date=view.birth_date.isoformat(),
            email=view.email,
            phone_number=view.phone_number,
            address=public.address,
        )

    async def GetJwks(
        self, request: identity_pb2.GetJwksRequest, context: Context
    ) -> identity_pb2.GetJwksResponse:
        return identity_pb2.GetJwksResponse(jwks_json=self._service.jwks())
