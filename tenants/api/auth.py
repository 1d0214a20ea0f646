"""Who am I, and session sign-in and sign-out (/api/v1/me, /api/v1/auth/…)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, login, logout
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from iaas.api.errors import error_body
from iaas.api.serializers import StrictCharField, StrictSerializer
from tenants.context import source_address
from tenants.models import Membership
from tenants.signin import audit_refused_signin, lockout_seconds


class LoginSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)


class MeSerializer(serializers.Serializer):
    def to_representation(self, user: Any) -> dict[str, Any]:
        memberships = Membership.objects.filter(user=user).select_related("tenant")
        return {
            "id": user.pk,
            "username": user.get_username(),
            "is_operator": bool(user.is_staff),
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

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class LoginView(APIView):
    """Session sign-in for the portal, throttled with lockout (see tenants.signin)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    audit_resource = "auth"

    @extend_schema(request=LoginSerializer, responses=MeSerializer)
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        address = source_address(request)
        wait = lockout_seconds(username, address)
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
        password = serializer.validated_data["password"]
        user = authenticate(request._request, username=username, password=password)
        if user is None:  # the auth backend has audited the refusal
            return Response(
                error_body("invalid_credentials", "Wrong username or password."),
                status=status.HTTP_401_UNAUTHORIZED,
            )
        login(request._request, user)  # audited by tenants.signin.audit_signin
        return Response(MeSerializer(user).data)


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
