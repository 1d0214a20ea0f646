from rest_framework.routers import SimpleRouter

from network.api.floating_ips import FloatingIPViewSet
from network.api.networks import NetworkViewSet
from network.api.ports import PortViewSet
from network.api.routers import RouterViewSet
from network.api.security_groups import SecurityGroupRuleViewSet, SecurityGroupViewSet
from network.api.subnets import SubnetViewSet

router = SimpleRouter(trailing_slash=False)
router.register("networks", NetworkViewSet, basename="network")
router.register("subnets", SubnetViewSet, basename="subnet")
router.register("ports", PortViewSet, basename="port")
router.register("routers", RouterViewSet, basename="router")
router.register("security-groups", SecurityGroupViewSet, basename="security-group")
router.register("security-group-rules", SecurityGroupRuleViewSet, basename="security-group-rule")
router.register("floating-ips", FloatingIPViewSet, basename="floating-ip")

urlpatterns = router.urls
