"""Who am I, and session sign-in and sign-out (/api/v1/me, /api/v1/auth/…)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, login, logout
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from iaas.api.errors import error_body
from iaas.api.schema import error_response
from iaas.api.serializers import StrictCharField, StrictSerializer
from tenants.context import source_address
from tenants.mfa import mfa_enrolled, mfa_required, session_verified
from tenants.models import Membership, Role
from tenants.operators import is_operator
from tenants.signin import Realm, audit_refused_signin, lockout_seconds, refusal_reason
from tenants.throttles import AnonymousRateThrottle, SignInRateThrottle


class LoginSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)
    otp_token = StrictCharField(
        max_length=32,
        required=False,
        help_text="The code of the account's authenticator app, or one of its recovery codes: "
        "required once the account has enrolled a second factor.",
    )


# Refusals of the auth backend, as API errors (status, message).
REFUSALS = {
    "invalid_credentials": (401, "Wrong username or password."),
    "mfa_token_required": (
        401,
        "This account signs in with a second factor: send otp_token with the code of its "
        "authenticator app (or a recovery code).",
    ),
    "invalid_mfa_token": (401, "That one-time code is not valid."),
}


MeMfaSerializer = inline_serializer(
    "MeMfa",
    {
        "required": serializers.BooleanField(help_text="This account must use a second factor."),
        "enrolled": serializers.BooleanField(),
        "verified": serializers.BooleanField(help_text="This session passed its second factor."),
    },
    read_only=True,
)


class MeTenantSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    slug = serializers.SlugField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class MeSerializer(serializers.Serializer):
    """The caller's account (the fields declare its shape for the schema)."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    is_operator = serializers.BooleanField(read_only=True)
    mfa = MeMfaSerializer
    tenants = MeTenantSerializer(many=True, read_only=True)

    def to_representation(self, user: Any) -> dict[str, Any]:
        memberships = Membership.objects.filter(user=user).select_related("tenant")
        request = self.context.get("request")
        return {
            "id": user.pk,
            "username": user.get_username(),
            "is_operator": is_operator(user),
            "mfa": {
                "required": mfa_required(user),
                "enrolled": mfa_enrolled(user),
                "verified": request is not None and session_verified(request._request),
            },
            "tenants": [
                {
                    "id": str(m.tenant.pk),
                    "slug": m.tenant.slug,
                    "name": m.tenant.name,
                    "role": m.role,
                }
                for m in memberships
            ],
        }


class MeView(APIView):
    """The caller's account and the tenants it belongs to."""

    permission_classes = [IsAuthenticated]
    mfa_enrolment_view = True  # a session that must still enrol may see who it is

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user, context={"request": request}).data)


class LoginView(APIView):
    """Session sign-in of tenant users (the portal's API), with the second factor once
    enrolled, throttled with lockout (see tenants.signin). Operators sign in on
    `admin/auth/login`."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonymousRateThrottle, SignInRateThrottle]
    audit_resource = "auth"
    realm = Realm.TENANT

    @extend_schema(
        request=LoginSerializer,
        responses={
            200: MeSerializer,
            401: error_response(
                "Wrong username or password (`invalid_credentials`), or a second factor "
                "missing (`mfa_token_required`) or wrong (`invalid_mfa_token`)."
            ),
            429: error_response(
                "Too many failed sign-ins for this username or address (`locked_out`), or "
                "too many attempts (`throttled`): wait `Retry-After` seconds."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        address = source_address(request)
        wait = lockout_seconds(username, address, self.realm)
        if wait is not None:
            audit_refused_signin(username, address, "locked_out")
            response = Response(
                error_body(
                    "locked_out",
                    f"Too many failed sign-ins; try again in {wait} seconds.",
                    {"retry_after": wait},
                ),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
            response["Retry-After"] = str(wait)
            return response
        user = authenticate(
            request._request,
            username=username,
            password=serializer.validated_data["password"],
            otp_token=serializer.validated_data.get("otp_token") or None,
            realm=self.realm,
        )
        if user is None:  # the auth backend has audited the refusal
            code = refusal_reason(request._request) or "invalid_credentials"
            if code == "locked_out":  # locked between the check above and the backend's
                return Response(
                    error_body("locked_out", "Too many failed sign-ins; try again later."),
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                )
            http_status, message = REFUSALS.get(code, REFUSALS["invalid_credentials"])
            return Response(error_body(code, message), status=http_status)
        # Audited by tenants.signin.audit_signin; a second factor, if used, is stored in the
        # session by django-otp's user_logged_in handler.
        login(request._request, user)
        return Response(MeSerializer(user, context={"request": request}).data)


class OperatorLoginView(LoginView):
    """Session sign-in of operators (their own path and lockout: nobody on the tenant path can
    lock an operator out), with their second factor."""

    realm = Realm.OPERATOR


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]
    mfa_enrolment_view = True

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
