from django.urls import path
from rest_framework.routers import SimpleRouter

from hosts.api.operator_hosts import HostViewSet
from hosts.api.operator_zones import ZoneViewSet
from hosts.api.residency import ResidencyView

router = SimpleRouter(trailing_slash=False)
router.register("admin/zones", ZoneViewSet, basename="operator-zone")
router.register("admin/hosts", HostViewSet, basename="operator-host")

urlpatterns = [path("residency", ResidencyView.as_view(), name="residency"), *router.urls]
