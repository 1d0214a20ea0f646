"""A tenant driving the cloud through the API in the hypervisor lane's end-to-end tests
(tests/e2e/test_volume_attach.py, test_volume_snapshots.py): wait for operations to end,
read a guest's console, wait for a probe's line on it."""

from __future__ import annotations

import time
from typing import Any

#: A probe's first lines (a guest's user data, `#!/bin/sh`): wait up to ~110 s for /dev/vdb,
#: the first disk hot-plugged after the root disk vda, and say its size in sectors.
WAIT_FOR_VDB = """\
i=0
while [ ! -b /dev/vdb ] && [ $i -lt 110 ]; do sleep 1; i=$((i+1)); done
[ -b /dev/vdb ] || { echo "VOLTEST no-disk"; exit 1; }
echo "VOLTEST seen size=$(cat /sys/block/vdb/size)"
"""


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """`check()` once it answers something true, polled every 0.5 s; AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class TenantApi:
    """`client` (a tenant's API client) as an end-to-end test uses it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def settled(self, answer: Any, timeout: float = 90) -> dict[str, Any]:
        """The operation of a 202, once it ends: it must have succeeded."""
        assert answer.status_code == 202, answer.content
        return self.operation_done(answer.json()["operation"], timeout)

    def operation_done(self, operation: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
        client = self.client
        done = wait_for(
            lambda: (
                (body := client.get(f"/api/v1/operations/{operation['id']}").json())["status"]
                in ("succeeded", "failed")
                and body
            ),
            timeout,
            f"{operation['action']} to finish",
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
            return str(wait_for(found, timeout, f"{line!r} on the console"))
        except AssertionError:
            raise AssertionError(
                f"no {line!r} on the console of {instance_id}:\n{self.console(instance_id)[-3000:]}"
            ) from None
