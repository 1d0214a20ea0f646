"""Words the portal shows for the API's codes (statuses, roles, verbs), in the user's language.

The API keeps its English codes; the portal never shows a raw code where a word exists. A
code without an entry is shown as it is (a new status is never hidden)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

STATUS: dict[str, Promise] = {
    "building": _("building"),
    "active": _("active"),
    "stopped": _("stopped"),
    "error": _("error"),
    "deleting": _("deleting"),
    "deleted": _("deleted"),
    "resizing": _("resizing"),
    "verify_resize": _("resize to confirm"),
    "queued": _("queued"),
    "running": _("running"),
    "succeeded": _("succeeded"),
    "failed": _("failed"),
    "saving": _("saving"),
    "creating": _("creating"),
    "available": _("available"),
    "attaching": _("attaching"),
    "in-use": _("in use"),
    "detaching": _("detaching"),
    "extending": _("extending"),
    "exporting": _("exporting"),
    "enabled": _("enabled"),
    "disabled": _("disabled"),
    "maintenance": _("maintenance"),
    "draining": _("draining"),
    "down": _("down"),
    "up": _("up"),
    "pending": _("pending"),
    "accepted": _("accepted"),
    "revoked": _("revoked"),
    "expired": _("expired"),
    "suspended": _("suspended"),
    "declined": _("declined"),
    "success": _("success"),
    "refused": _("refused"),
}

TASK_STATE: dict[str, Promise] = {
    "spawning": _("spawning"),
    "deleting": _("deleting"),
    "starting": _("starting"),
    "stopping": _("stopping"),
    "rebooting": _("rebooting"),
    "rebuilding": _("rebuilding"),
    "snapshotting": _("taking a snapshot"),
    "resizing": _("resizing"),
    "confirming": _("confirming the resize"),
    "reverting_resize": _("reverting the resize"),
    "attaching_nic": _("attaching a network interface"),
    "detaching_nic": _("detaching a network interface"),
    "attaching_vol": _("attaching a volume"),
    "detaching_vol": _("detaching a volume"),
    "migrating": _("moving to another host"),
}

POWER: dict[str, Promise] = {
    "running": pgettext_lazy("power state", "running"),
    "shutoff": pgettext_lazy("power state", "powered off"),
    "paused": pgettext_lazy("power state", "paused"),
    "crashed": pgettext_lazy("power state", "crashed"),
    "shutdown": pgettext_lazy("power state", "shutting down"),
    "suspended": pgettext_lazy("power state", "suspended"),
    "blocked": pgettext_lazy("power state", "blocked"),
    "nostate": pgettext_lazy("power state", "unknown"),
}

ROLE: dict[str, Promise] = {
    "reader": _("reader"),
    "member": _("member"),
    "admin": _("administrator"),
}

# The tone of a status badge (a CSS class): good, busy, bad or idle.
TONE = {
    "active": "good", "available": "good", "succeeded": "good", "in-use": "good",
    "enabled": "good", "up": "good", "accepted": "good",
    "error": "bad", "failed": "bad", "down": "bad", "revoked": "idle", "expired": "idle",
    "stopped": "idle", "deleted": "idle", "disabled": "idle", "maintenance": "busy",
    "draining": "busy",
    "success": "good", "refused": "bad", "declined": "idle",
}  # fmt: skip


def status_label(code: str | None) -> str:
    if not code:
        return ""
    return str(STATUS.get(code, code))


def task_label(code: str | None) -> str:
    if not code:
        return ""
    return str(TASK_STATE.get(code, code))


def power_label(code: str | None) -> str:
    return str(POWER.get(code, code)) if code else ""


def role_label(code: str) -> str:
    return str(ROLE.get(code, code))


def tone(code: str | None) -> str:
    return TONE.get(code or "", "busy")


QUOTA: dict[str, Promise] = {
    "keypairs": _("Keypairs"),
    "images": _("Images"),
    "image_gb": _("Image storage (GiB)"),
    "instances": _("Instances"),
    "vcpus": _("vCPUs"),
    "ram_mb": _("Memory (MiB)"),
    "disk_gb": _("Instance disks (GiB)"),
    "server_groups": _("Server groups"),
    "networks": _("Networks"),
    "subnets": _("Subnets"),
    "ports": _("Ports"),
    "routers": _("Routers"),
    "security_groups": _("Security groups"),
    "security_group_rules": _("Security group rules"),
    "floating_ips": _("Floating IPs"),
    "volumes": _("Volumes"),
    "volume_gb": _("Volume storage (GiB)"),
    "volume_snapshots": _("Volume snapshots"),
}

ACTION: dict[str, Promise] = {
    "instance.create": _("create the instance"),
    "instance.delete": _("delete the instance"),
    "instance.start": _("start"),
    "instance.stop": _("stop"),
    "instance.reboot": _("reboot"),
    "instance.rebuild": _("rebuild"),
    "instance.resize": _("resize"),
    "instance.snapshot": _("snapshot"),
    "instance.revert_resize": _("revert the resize"),
    "instance.confirm_resize": _("confirm the resize"),
    "instance.attach_interface": _("attach a network interface"),
    "instance.detach_interface": _("detach a network interface"),
    "instance.attach_volume": _("attach a volume"),
    "instance.detach_volume": _("detach a volume"),
    "instance.migrate": _("move to another host"),
    "volume.create": _("create the volume"),
    "volume.delete": _("delete the volume"),
    "volume.export": _("export the volume"),
    "volume.extend": _("extend the volume"),
    "volume.attach": _("attach the volume"),
    "volume.detach": _("detach the volume"),
    "volume_snapshot.create": _("snapshot the volume"),
    "volume_snapshot.delete": _("delete the volume snapshot"),
    "volume_snapshot.export": _("export the volume snapshot"),
    "membership.invite": _("invite a member"),
    "membership.create": _("add a member"),
    "membership.update": _("change a member's role"),
    "membership.delete": _("remove a member"),
    "membership.decline": _("decline an invitation"),
    "token.create": _("create an API token"),
    "token.revoke": _("revoke an API token"),
    "quota.update": _("change a quota"),
    "tenant.create": _("create the tenant"),
}


def quota_label(resource: str) -> str:
    return str(QUOTA.get(resource, resource))


def action_label(action: str) -> str:
    return str(ACTION.get(action, action))
