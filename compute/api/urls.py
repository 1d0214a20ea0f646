from rest_framework.routers import SimpleRouter

from compute.api.admin_views import HostViewSet, ZoneViewSet
from compute.api.image_views import ImageViewSet, OperatorImageViewSet
from compute.api.instance_views import (
    FlavorViewSet,
    InstanceViewSet,
    OperationViewSet,
    OperatorFlavorViewSet,
)
from compute.api.server_group_views import ServerGroupViewSet
from compute.api.views import KeyPairViewSet

router = SimpleRouter(trailing_slash=False)
router.register("keypairs", KeyPairViewSet, basename="keypair")
router.register("server-groups", ServerGroupViewSet, basename="server-group")
router.register("images", ImageViewSet, basename="image")
router.register("admin/images", OperatorImageViewSet, basename="admin-image")
router.register("admin/zones", ZoneViewSet, basename="admin-zone")
router.register("flavors", FlavorViewSet, basename="flavor")
router.register("instances", InstanceViewSet, basename="instance")
router.register("operations", OperationViewSet, basename="operation")
router.register("admin/flavors", OperatorFlavorViewSet, basename="admin-flavor")
router.register("admin/hosts", HostViewSet, basename="admin-host")

urlpatterns = router.urls
