from rest_framework.routers import SimpleRouter

from compute.api.flavors import FlavorViewSet
from compute.api.instances import InstanceViewSet
from compute.api.keypairs import KeyPairViewSet
from compute.api.operator_flavors import OperatorFlavorViewSet
from compute.api.operator_host_drain import HostDrainViewSet
from compute.api.server_groups import ServerGroupViewSet

router = SimpleRouter(trailing_slash=False)
router.register("keypairs", KeyPairViewSet, basename="keypair")
router.register("server-groups", ServerGroupViewSet, basename="server-group")
router.register("flavors", FlavorViewSet, basename="flavor")
router.register("instances", InstanceViewSet, basename="instance")
router.register("admin/flavors", OperatorFlavorViewSet, basename="operator-flavor")
router.register("admin/hosts", HostDrainViewSet, basename="operator-host-drain")

urlpatterns = router.urls
