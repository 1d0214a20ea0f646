"""Second-factor enrolment and reset (/api/v1/auth/mfa…, /api/v1/admin/users/{id}/mfa-reset).

Enrolment is for the account's own *session*, never a token: a token holder must not be able
to bind the account to an authenticator of its own. See tenants.mfa for the policy.
"""

from __future__ import annotations

from typing import Any

import django_otp
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from iaas.api.serializers import StrictCharField, StrictSerializer
from iaas.errors import NotFoundError
from tenants import mfa_enrolment
from tenants.context import actor_from_request
from tenants.mfa import mfa_enrolled, mfa_required, recovery_codes_left, session_verified
from tenants.models import ApiToken
from tenants.permissions import IsOperator


class SessionOnly(BasePermission):
    """A signed-in session (tokens are refused: they cannot enrol or reset a factor)."""

    message = "Manage your second factor from a signed-in session, not with a token."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated) and not isinstance(
            request.auth, ApiToken
        )


MfaStatusSerializer = inline_serializer(
    "MfaStatus",
    {
        "required": serializers.BooleanField(),
        "enrolled": serializers.BooleanField(),
        "verified": serializers.BooleanField(help_text="This session passed its second factor."),
        "recovery_codes_left": serializers.IntegerField(),
    },
)


class OtpTokenSerializer(StrictSerializer):
    otp_token = StrictCharField(max_length=32)


RecoveryCodesSerializer = inline_serializer(
    "MfaRecoveryCodes",
    {"recovery_codes": serializers.ListField(child=serializers.CharField())},
)


def _status(request: Request) -> dict[str, Any]:
    user = request.user
    return {
        "required": mfa_required(user),
        "enrolled": mfa_enrolled(user),
        "verified": session_verified(request._request),
        "recovery_codes_left": recovery_codes_left(user),
    }


class MfaView(APIView):
    """Your second factor: its status (GET) and its removal (DELETE, from a session that
    passed it; your account then signs in with its password alone, into an enrol-only session
    if MFA is required of you)."""

    permission_classes = [IsAuthenticated, SessionOnly]
    mfa_enrolment_view = True
    audit_resource = "mfa"

    @extend_schema(responses=MfaStatusSerializer)
    def get(self, request: Request) -> Response:
        return Response(_status(request))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        if not session_verified(request._request):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied(
                "Sign in with your second factor before removing it.", code="mfa_required"
            )
        mfa_enrolment.mfa_reset(
            actor=actor_from_request(request), user=request.user, by_operator=False
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpEnrolView(APIView):
    """Start enrolling an authenticator app: returns its secret and otpauth:// URI (shown
    once); confirm with a code at `auth/mfa/totp/confirm`."""

    permission_classes = [IsAuthenticated, SessionOnly]
    mfa_enrolment_view = True
    audit_resource = "mfa"

    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "MfaTotpEnrolment",
                {"secret": serializers.CharField(), "uri": serializers.CharField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        enrolment = mfa_enrolment.totp_begin(actor=actor_from_request(request), user=request.user)
        return Response(
            {"secret": enrolment.secret, "uri": enrolment.uri}, status=status.HTTP_201_CREATED
        )


class TotpConfirmView(APIView):
    """Confirm the authenticator app with one of its codes: the session is now verified and
    the answer holds ten one-time recovery codes (shown once)."""

    permission_classes = [IsAuthenticated, SessionOnly]
    mfa_enrolment_view = True
    audit_resource = "mfa"

    @extend_schema(request=OtpTokenSerializer, responses={200: RecoveryCodesSerializer})
    def post(self, request: Request) -> Response:
        serializer = OtpTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device, codes = mfa_enrolment.totp_confirm(
            actor=actor_from_request(request),
            user=request.user,
            code=serializer.validated_data["otp_token"],
        )
        # A new session key for the now-verified session (as Django does at sign-in).
        request._request.session.cycle_key()
        django_otp.login(request._request, device)
        return Response({"recovery_codes": codes})


class RecoveryCodesView(APIView):
    """New recovery codes, from a session that passed its second factor (the old codes stop
    working)."""

    permission_classes = [IsAuthenticated, SessionOnly]
    audit_resource = "mfa"

    @extend_schema(request=None, responses={200: RecoveryCodesSerializer})
    def post(self, request: Request) -> Response:
        if not session_verified(request._request):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("Sign in with your second factor first.", code="mfa_required")
        codes = mfa_enrolment.recovery_codes_regenerate(
            actor=actor_from_request(request), user=request.user
        )
        return Response({"recovery_codes": codes})


class OperatorMfaResetView(APIView):
    """Remove an account's second factor (a lost phone and no recovery code left): the account
    then signs in with its password alone and must enrol again. Audited."""

    permission_classes = [IsOperator]
    audit_resource = "mfa"

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, user_id: int) -> Response:
        user = get_user_model().objects.filter(pk=user_id).first()
        if user is None:
            raise NotFoundError("No such user.")
        mfa_enrolment.mfa_reset(actor=actor_from_request(request), user=user, by_operator=True)
        return Response(status=status.HTTP_204_NO_CONTENT)
