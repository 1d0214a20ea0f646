"""The volume operations' handlers (DESIGN §2 step 4-5). `register()` puts them in the
operation registry."""

from __future__ import annotations

from operations import registry
from volumes.worker import handlers, targets


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
    for action in (
        registry.Action("volume.create", handlers.run_create),
        registry.Action("volume.extend", handlers.run_extend),
        registry.Action("volume.delete", handlers.run_delete),
    ):
        registry.register_action(action)
