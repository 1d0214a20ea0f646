"""`manage.py host_add NAME --zone Z --uri qemu+ssh://root@h/system --ssh root@h[:22]
[--fingerprint SHA256:…] [--storage-root /var/lib/andromede] [--domain-type kvm|qemu]`

Onboards a hypervisor host in this process (see hosts.services.onboarding.host_onboard): an
operator's command, not the internet-facing API. A remote host is onboarded only with
--fingerprint: without it nothing is recorded and the fingerprint the host presents is
printed — compare it with the host's own out of band, then run the command again with it.
Remote libvirt URIs are qemu+ssh (pinned to that key) or qemu+tls; qemu+tcp is refused.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hosts import selectors
from hosts.services.onboarding import HostRegistration, host_onboard
from iaas.audit import Actor
from iaas.errors import DomainError


def _parse_ssh(value: str) -> tuple[str, str, int]:
    user, _, rest = value.rpartition("@")
    host, _, port = rest.partition(":")
    if not host:
        raise CommandError("--ssh is [user@]host[:port]")
    try:
        return user or "root", host, int(port or 22)
    except ValueError as exc:
        raise CommandError("--ssh port must be a number") from exc


class Command(BaseCommand):
    help = "Onboard a hypervisor host: pin its SSH key, check libvirt, create its pools."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--zone", required=True)
        parser.add_argument("--uri", required=True, help="libvirt URI")
        parser.add_argument("--ssh", default="", help="[user@]host[:port]; omit for this machine")
        parser.add_argument("--fingerprint", default="", help="expected SSH host key SHA256:…")
        parser.add_argument("--storage-root", default="/var/lib/andromede")
        parser.add_argument("--domain-type", default="", choices=["", "kvm", "qemu"])

    def handle(self, *args: Any, **options: Any) -> None:
        zone = selectors.zone_find(options["zone"])
        if zone is None:
            raise CommandError(f"no zone named {options['zone']!r} (manage.py zone_add)")
        username, ssh_host, ssh_port = ("root", "", 22)
        if options["ssh"]:
            username, ssh_host, ssh_port = _parse_ssh(options["ssh"])
        registration = HostRegistration(
            name=options["name"],
            zone=zone,
            libvirt_uri=options["uri"],
            storage_root=options["storage_root"].rstrip("/"),
            ssh_host=ssh_host,
            ssh_port=ssh_port,
            ssh_username=username,
            expected_fingerprint=options["fingerprint"],
            domain_type=options["domain_type"],
        )
        try:
            host = host_onboard(actor=Actor.system("manage.py host_add"), registration=registration)
        except DomainError as exc:
            if exc.code == "host_key_unconfirmed":
                presented = exc.details.get("presented", "")
                raise CommandError(
                    f"{exc.code}: {exc.message}\nNothing was recorded. Once verified, run again "
                    f"with --fingerprint {presented}"
                ) from exc
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(
            f"host {host.name} enabled in {zone.name}: {host.domain_type}, {host.cpus} CPUs, "
            f"{host.memory_mb} MiB, {host.disk_gb} GiB"
            + (f", SSH host key {host.ssh_host_key_fingerprint}" if host.ssh_host else "")
        )
