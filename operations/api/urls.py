from rest_framework.routers import SimpleRouter

from operations.api.operations import OperationViewSet

router = SimpleRouter(trailing_slash=False)
router.register("operations", OperationViewSet, basename="operation")

urlpatterns = router.urls
