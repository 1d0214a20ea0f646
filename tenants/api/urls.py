from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.api.audit_events import TenantAuditEventViewSet
from tenants.api.auth import LoginView, LogoutView, MeView
from tenants.api.members import MembershipViewSet
from tenants.api.operator_audit_events import OperatorAuditEventViewSet
from tenants.api.operator_tenants import OperatorTenantViewSet
from tenants.api.tenant import CurrentTenantView, QuotaView
from tenants.api.tokens import TokenViewSet

router = SimpleRouter(trailing_slash=False)
router.register("tokens", TokenViewSet, basename="token")
router.register("members", MembershipViewSet, basename="member")
router.register("audit-events", TenantAuditEventViewSet, basename="audit-event")
router.register("admin/tenants", OperatorTenantViewSet, basename="operator-tenant")
router.register("admin/audit-events", OperatorAuditEventViewSet, basename="operator-audit-event")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("auth/login", LoginView.as_view(), name="auth-login"),
    path("auth/logout", LogoutView.as_view(), name="auth-logout"),
    path("tenant", CurrentTenantView.as_view(), name="tenant"),
    path("quotas", QuotaView.as_view(), name="quotas"),
    *router.urls,
]
