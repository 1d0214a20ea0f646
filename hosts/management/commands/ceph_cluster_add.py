"""`manage.py ceph_cluster_add NAME --zone fr-par-1 --monitor 10.0.0.1:6789 [--monitor …]
--pool volumes --user andromede --key-file /etc/andromede/ceph-NAME.key`"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hosts.models import Zone
from hosts.services.ceph import ceph_cluster_create
from iaas.audit import Actor
from iaas.errors import DomainError


class Command(BaseCommand):
    help = (
        "Declare a Ceph cluster serving RBD volumes to the hosts of a zone. The key file "
        "(0600, the key as `ceph auth get-key` prints it, or a keyring) must be on every "
        "machine that runs a worker; only its path is recorded."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--zone", required=True)
        parser.add_argument("--monitor", action="append", required=True, help="host:port")
        parser.add_argument("--pool", required=True, help="the RADOS pool of the images")
        parser.add_argument("--user", required=True, help="the cephx user (client.NAME)")
        parser.add_argument("--key-file", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        zone = Zone.objects.filter(name=options["zone"]).first()
        if zone is None:
            raise CommandError(f"No zone named {options['zone']!r}.")
        try:
            cluster = ceph_cluster_create(
                actor=Actor.system("manage.py ceph_cluster_add"),
                name=options["name"],
                zone=zone,
                monitors=options["monitor"],
                rados_pool=options["pool"],
                user=options["user"],
                key_file=options["key_file"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Ceph cluster {cluster.name} serves zone {zone.name}.")
