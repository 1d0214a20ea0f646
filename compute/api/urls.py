from rest_framework.routers import SimpleRouter

from compute.api.admin_views import HostViewSet, ZoneViewSet
from compute.api.views import KeyPairViewSet

router = SimpleRouter(trailing_slash=False)
router.register("keypairs", KeyPairViewSet, basename="keypair")
router.register("admin/zones", ZoneViewSet, basename="admin-zone")
router.register("admin/hosts", HostViewSet, basename="admin-host")

urlpatterns = router.urls
