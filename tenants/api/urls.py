from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.api import views

router = SimpleRouter(trailing_slash=False)
router.register("tokens", views.TokenViewSet, basename="token")
router.register("members", views.MembershipViewSet, basename="member")
router.register("audit-events", views.TenantAuditEventViewSet, basename="audit-event")
router.register("admin/tenants", views.OperatorTenantViewSet, basename="operator-tenant")
router.register(
    "admin/audit-events", views.OperatorAuditEventViewSet, basename="operator-audit-event"
)

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("tenant", views.CurrentTenantView.as_view(), name="tenant"),
    path("quotas", views.QuotaView.as_view(), name="quotas"),
    *router.urls,
]
