from rest_framework.routers import SimpleRouter

from images.api.exports import ExportViewSet
from images.api.images import ImageViewSet
from images.api.operator_image_stores import ImageStoreViewSet
from images.api.operator_images import OperatorImageViewSet

router = SimpleRouter(trailing_slash=False)
router.register("images", ImageViewSet, basename="image")
router.register("exports", ExportViewSet, basename="export")
router.register("admin/images", OperatorImageViewSet, basename="operator-image")
router.register("admin/image-stores", ImageStoreViewSet, basename="operator-image-store")

urlpatterns = router.urls
