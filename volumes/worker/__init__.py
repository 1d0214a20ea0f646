"""The volume operations' handlers (DESIGN §2 step 4-5). `register()` puts them in the
operation registry."""

from __future__ import annotations

from operations import registry
from volumes.worker import export, handlers, snapshots, targets


def register() -> None:
    """Declare the `volume` target type and its actions (VolumesConfig.ready)."""
    registry.register_target(
        registry.TargetType(
            name="volume",
            load=targets.load_volume,
            settle=targets.settle_volume,
            abandon=targets.abandon_volume,
        )
    )
    registry.register_target(
        registry.TargetType(
            name="volume_snapshot",
            load=targets.load_volume_snapshot,
            settle=targets.settle_volume_snapshot,
            abandon=targets.abandon_volume_snapshot,
        )
    )
    for action in (
        registry.Action("volume.create", handlers.run_create),
        registry.Action("volume.extend", handlers.run_extend),
        registry.Action("volume.delete", handlers.run_delete),
        registry.Action("volume_snapshot.create", snapshots.run_create),
        registry.Action("volume_snapshot.delete", snapshots.run_delete),
        registry.Action("volume.export", export.run_export, abandon=export.abandon_export),
        registry.Action(
            "volume_snapshot.export", export.run_snapshot_export, abandon=export.abandon_export
        ),
    ):
        registry.register_action(action)
