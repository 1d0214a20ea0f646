"""The portal's URL map: sign-in and account pages, every tenant page under /t/<tenant>/,
and the operator console under /ops/. Each area's module lists its own patterns; the
browser tests visit every pattern listed here (tests/browser), so a new page is checked
for accessibility and isolation as soon as it is mounted."""

from django.urls import include, path

from portal.views import (
    account,
    audit,
    auth,
    console,
    dashboard,
    floating_ips,
    images,
    instances,
    keypairs,
    members,
    networks,
    routers,
    security_groups,
    tenant_settings,
    tokens,
    volumes,
)

app_name = "portal"

tenant_patterns = [
    *dashboard.urlpatterns,
    *instances.urlpatterns,
    *images.urlpatterns,
    *volumes.urlpatterns,
    *keypairs.urlpatterns,
    *members.tenant_urlpatterns,
    *tokens.urlpatterns,
    *audit.urlpatterns,
    *tenant_settings.urlpatterns,
    *networks.urlpatterns,
    *routers.urlpatterns,
    *security_groups.urlpatterns,
    *floating_ips.urlpatterns,
]

urlpatterns = [
    *auth.urlpatterns,
    *account.urlpatterns,
    *console.urlpatterns,
    *members.account_urlpatterns,
    path("t/<slug:tenant>/", include(tenant_patterns)),
]
