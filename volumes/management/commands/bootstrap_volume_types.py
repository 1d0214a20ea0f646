"""`manage.py bootstrap_volume_types`: the embedded default's volume type, so a volume can
be created right after `make run` without naming a type (settings.VOLUME_DEFAULT_TYPE,
"standard": qcow2 files in each host's directory pool, not encrypted, public). Idempotent:
a type of that name, as an operator may have changed it, is left as it is."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from iaas.audit import Actor
from volumes.services.volume_types import volume_type_ensure

#: The embedded default's largest volume, in GiB (the tenant quota `volume_gb` still applies).
DEFAULT_MAX_SIZE_GB = 100


class Command(BaseCommand):
    help = "Declare the default volume type (directory backend) if it is missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-size-gb", type=int, default=DEFAULT_MAX_SIZE_GB)

    def handle(self, *args: Any, **options: Any) -> None:
        volume_type, created = volume_type_ensure(
            actor=Actor.system("bootstrap_volume_types"),
            name=settings.VOLUME_DEFAULT_TYPE,
            max_size_gb=options["max_size_gb"],
            description="qcow2 files on the host's own disk",
        )
        self.stdout.write(
            f"volume type {volume_type.name}: {volume_type.backend}, up to "
            f"{volume_type.max_size_gb} GiB{' (declared now)' if created else ''}, the default"
        )
