"""Guests that use volumes, through the API only (tests/e2e/test_volume_*.py): probe
scripts the test image's init runs (user data, output on the serial console), and a
tenant's view of operations and consoles."""

from __future__ import annotations

from typing import Any

from tests.support.fault_lab import wait_for

GIB_SECTORS = 2 * 1024 * 1024  # 512-byte sectors in a GiB, as /sys/block/*/size counts

# Wait (up to ~110 s) for /dev/vdb: the first disk hot-plugged after the root disk vda.
WAIT_FOR_DISK = """\
i=0
while [ ! -b /dev/vdb ] && [ $i -lt 110 ]; do sleep 1; i=$((i+1)); done
[ -b /dev/vdb ] || { echo "VOLTEST no-disk"; exit 1; }
echo "VOLTEST seen size=$(cat /sys/block/vdb/size)"
"""
# Write `MARKER-{token}` at the start of /dev/vdb, say so, and say when the disk is gone
# (each line ends with $round: empty, unless the probe loops over rounds).
WRITE_MARKER = """\
printf 'MARKER-%s\\n' "{token}" | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null
sync
echo "VOLTEST written$round"
i=0
while [ -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 1; i=$((i+1)); done
[ -b /dev/vdb ] && echo "VOLTEST still-there$round" || echo "VOLTEST gone$round"
"""
WRITER = "#!/bin/sh\n" + WAIT_FOR_DISK + WRITE_MARKER
#: The writer, for two disks plugged in one after the other: `VOLTEST written-1`, `gone-1`,
#: then `written-2`, `gone-2` (all within the 120 s the image gives a probe).
WRITER_TWICE = "#!/bin/sh\nfor round in -1 -2; do\n" + WAIT_FOR_DISK + WRITE_MARKER + "done\n"


class TenantView:
    """What a tenant's API client sees of operations and consoles."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def settled(self, answer: Any, timeout: float = 90) -> dict[str, Any]:
        """The operation of a 202, once it ends: it must have succeeded."""
        assert answer.status_code == 202, answer.content
        return self.operation_done(answer.json()["operation"], timeout)

    def operation_done(self, operation: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
        """`operation` (as an answer shows it), once it ends: it must have succeeded."""
        done = wait_for(
            lambda: (
                (body := self.client.get(f"/api/v1/operations/{operation['id']}").json())["status"]
                in ("succeeded", "failed")
                and body
            ),
            timeout,
            f"{operation['action']} to finish",
            every=0.5,
        )
        assert done["status"] == "succeeded", done
        return dict(done)

    def console(self, instance_id: str) -> str:
        return str(self.client.get(f"/api/v1/instances/{instance_id}/console").json()["output"])

    def says(self, instance_id: str, line: str, timeout: float = 60) -> str:
        """Wait for a probe line starting with `line` on the guest's console; the line."""

        def found() -> str | None:
            for text in self.console(instance_id).splitlines():
                if text.strip().startswith(line):
                    return text.strip()
            return None

        try:
            return str(wait_for(found, timeout, f"{line!r} on the console", every=0.5))
        except AssertionError:
            raise AssertionError(
                f"no {line!r} on the console of {instance_id}:\n{self.console(instance_id)[-3000:]}"
            ) from None

    def volume(self, volume_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/api/v1/volumes/{volume_id}").json())

    def attach(self, instance_id: str, volume_id: str) -> Any:
        return self.client.post(
            f"/api/v1/instances/{instance_id}/volumes", {"volume": volume_id}, format="json"
        )

    def detach(self, instance_id: str, volume_id: str) -> Any:
        return self.client.delete(f"/api/v1/instances/{instance_id}/volumes/{volume_id}")
