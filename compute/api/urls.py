from rest_framework.routers import SimpleRouter

from compute.api.views import KeyPairViewSet

router = SimpleRouter(trailing_slash=False)
router.register("keypairs", KeyPairViewSet, basename="keypair")

urlpatterns = router.urls
