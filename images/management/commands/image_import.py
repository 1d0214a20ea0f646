"""`manage.py image_import NAME PATH`: import a local image file through the image service.

    manage.py image_import andromede-test var/images/andromede-test.qcow2 \\
        --disk-format qcow2 --public --if-missing

The file goes through the same checks as an API upload (SHA-256, size limit, `qemu-img info`
with the declared format, no backing or external data file). With --if-missing, an existing
active image of that name and visibility is kept, and a queued one (an import that did not
finish) receives the file instead of a new image being created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from iaas.audit import Actor
from iaas.errors import DomainError
from images.models import Image
from images.services.images import image_create, image_upload
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Import a local disk image file (qcow2 or raw) as a public or tenant image."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("path", type=Path)
        parser.add_argument("--disk-format", choices=Image.DiskFormat.values, required=True)
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--public", action="store_true", help="a public image")
        owner.add_argument("--tenant", help="the slug of the tenant owning a private image")
        parser.add_argument("--min-disk", type=int, default=0, help="minimum disk, in GB")
        parser.add_argument("--min-ram", type=int, default=0, help="minimum RAM, in MB")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing if an active image of this name exists (idempotent imports)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("image_import")
        name: str = options["name"]
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {options['tenant']!r}")
        existing = Image.objects.filter(name=name, tenant=tenant).exclude(
            status=Image.Status.DELETED
        )
        image = None
        if options["if_missing"]:
            active = existing.filter(status=Image.Status.ACTIVE).first()
            if active is not None:
                self.stdout.write(f"image {name}: already there ({active.id})")
                return
            image = existing.filter(
                status=Image.Status.QUEUED, disk_format=options["disk_format"]
            ).first()
        try:
            if image is None:
                image = image_create(
                    actor=actor,
                    tenant=tenant,
                    name=name,
                    disk_format=options["disk_format"],
                    min_disk_gb=options["min_disk"],
                    min_ram_mb=options["min_ram"],
                )
            with path.open("rb") as stream:
                image = image_upload(
                    actor=actor, image=image, stream=stream, length=path.stat().st_size
                )
        except DomainError as exc:
            raise CommandError(f"image {name}: {exc.message}") from exc
        self.stdout.write(
            f"image {name}: {image.status} ({image.id}, {image.size_bytes} bytes, "
            f"sha256 {image.checksum_sha256})"
        )
