from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.api.audit_events import TenantAuditEventViewSet
from tenants.api.auth import LoginView, LogoutView, MeView, OperatorLoginView
from tenants.api.invitations import InvitationViewSet
from tenants.api.members import MembershipViewSet
from tenants.api.mfa import (
    MfaView,
    OperatorMfaResetView,
    RecoveryCodesView,
    TotpConfirmView,
    TotpEnrolView,
)
from tenants.api.operator_audit_events import OperatorAuditEventViewSet
from tenants.api.operator_tenants import OperatorTenantViewSet
from tenants.api.tenant import CurrentTenantView, QuotaView
from tenants.api.tokens import TokenViewSet

router = SimpleRouter(trailing_slash=False)
router.register("tokens", TokenViewSet, basename="token")
router.register("members", MembershipViewSet, basename="member")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("audit-events", TenantAuditEventViewSet, basename="audit-event")
router.register("admin/tenants", OperatorTenantViewSet, basename="operator-tenant")
router.register("admin/audit-events", OperatorAuditEventViewSet, basename="operator-audit-event")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("auth/login", LoginView.as_view(), name="auth-login"),
    path("auth/logout", LogoutView.as_view(), name="auth-logout"),
    path("auth/mfa", MfaView.as_view(), name="auth-mfa"),
    path("auth/mfa/totp", TotpEnrolView.as_view(), name="auth-mfa-totp"),
    path("auth/mfa/totp/confirm", TotpConfirmView.as_view(), name="auth-mfa-totp-confirm"),
    path("auth/mfa/recovery-codes", RecoveryCodesView.as_view(), name="auth-mfa-recovery-codes"),
    path("admin/auth/login", OperatorLoginView.as_view(), name="operator-auth-login"),
    path(
        "admin/users/<int:user_id>/mfa-reset",
        OperatorMfaResetView.as_view(),
        name="operator-user-mfa-reset",
    ),
    path("tenant", CurrentTenantView.as_view(), name="tenant"),
    path("quotas", QuotaView.as_view(), name="quotas"),
    *router.urls,
]
