from rest_framework.routers import SimpleRouter

from volumes.api.operator_volume_types import OperatorVolumeTypeViewSet
from volumes.api.volume_snapshots import VolumeSnapshotViewSet
from volumes.api.volume_types import VolumeTypeViewSet
from volumes.api.volumes import VolumeViewSet

router = SimpleRouter(trailing_slash=False)
router.register("volume-types", VolumeTypeViewSet, basename="volume-type")
router.register("volumes", VolumeViewSet, basename="volume")
router.register("volume-snapshots", VolumeSnapshotViewSet, basename="volume-snapshot")
router.register("admin/volume-types", OperatorVolumeTypeViewSet, basename="operator-volume-type")

urlpatterns = router.urls
