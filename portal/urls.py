"""The portal's URL map: sign-in and account pages, every tenant page under /t/<tenant>/,
and the operator console under /ops/. Each area's module lists its own patterns; the
browser tests visit every pattern listed here (tests/browser), so a new page is checked
for accessibility and isolation as soon as it is mounted."""

from django.urls import include, path

from portal.views import (
    account,
    auth,
    dashboard,
    floating_ips,
    networks,
    routers,
    security_groups,
)

app_name = "portal"

tenant_patterns = [
    *dashboard.urlpatterns,
    *networks.urlpatterns,
    *routers.urlpatterns,
    *security_groups.urlpatterns,
    *floating_ips.urlpatterns,
]

urlpatterns = [
    *auth.urlpatterns,
    *account.urlpatterns,
    path("t/<slug:tenant>/", include(tenant_patterns)),
]
