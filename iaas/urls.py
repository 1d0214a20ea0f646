"""URL map: the API under /api/v1/, its schema and docs, health probes, the operator admin
and the tenant portal."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated

from iaas.api import errors
from iaas.api.views import ApiRootView, healthz, readyz
from iaas.metrics.view import metrics

SIGNED_IN = [IsAuthenticated]

api_v1: list[URLPattern | URLResolver] = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("tenants.api.urls")),
    path("", include("hosts.api.urls")),
    path("", include("operations.api.urls")),
    path("", include("images.api.urls")),
    path("", include("network.api.urls")),
    path("", include("volumes.api.urls")),
    path("", include("compute.api.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # Behind authentication (review L2): the schema describes the operators' API too.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=SIGNED_IN), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=SIGNED_IN),
        name="docs",
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Operators' scrapes from internal addresses only; a 404 for anyone else (iaas/metrics).
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("portal.urls")),
]

handler400 = errors.handler400
handler403 = errors.handler403
handler404 = errors.handler404
handler500 = errors.handler500
