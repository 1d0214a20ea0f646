"""The instance operations' handlers (DESIGN §2 step 4-5): lifecycle, resize and snapshot,
built from the shared steps. `register()` puts them in the operation registry."""

from __future__ import annotations

from compute.worker import interfaces, lifecycle, migrate, resize, snapshot, targets, volumes
from operations import registry


def register() -> None:
    """Declare the `instance` target type and its actions (ComputeConfig.ready)."""
    registry.register_target(
        registry.TargetType(
            name="instance",
            load=targets.load_instance,
            settle=targets.settle_instance,
            abandon=targets.abandon_instance,
        )
    )
    for action in (
        registry.Action("instance.create", lifecycle.run_create),
        registry.Action("instance.delete", lifecycle.run_delete),
        registry.Action("instance.start", lifecycle.run_start),
        registry.Action("instance.stop", lifecycle.run_stop),
        registry.Action("instance.reboot", lifecycle.run_reboot),
        registry.Action("instance.rebuild", lifecycle.run_rebuild),
        registry.Action("instance.resize", resize.run_resize),
        registry.Action("instance.revert_resize", resize.run_revert_resize),
        registry.Action("instance.migrate", migrate.run_migrate, migrate.abandon_migrate),
        registry.Action("instance.snapshot", snapshot.run_snapshot, snapshot.abandon_snapshot),
        registry.Action(
            "instance.attach_interface",
            interfaces.run_attach_interface,
            interfaces.abandon_attach_interface,
        ),
        registry.Action("instance.detach_interface", interfaces.run_detach_interface),
        registry.Action(
            "instance.attach_volume",
            volumes.run_attach_volume,
            volumes.abandon_volume_operation,
        ),
        registry.Action(
            "instance.detach_volume",
            volumes.run_detach_volume,
            volumes.abandon_volume_operation,
        ),
    ):
        registry.register_action(action)
